/*
 * tableam_path.c — scans of tables USING destor that read only what a plan
 * needs: the columns its target list and quals name, and the row groups
 * whose min/max statistics do not refute its quals, as the foreign tables'
 * scans do (src/table/table_scan.c).
 *
 * The table access method API hands a sequential scan neither its columns
 * nor its quals, so, as Citus columnar does, the planner is offered a
 * CustomScan ("DestorScan") next to the sequential scan.  It runs the
 * access method's own scan (snapshot, this backend's buffered rows,
 * deletions, tids: all as a sequential scan sees them), restricted with
 * am_scan_restrict; the executor evaluates the quals on each row as usual.
 *
 * Offered only to plain reads: a scan that feeds UPDATE, DELETE, MERGE or
 * row locks (FOR UPDATE, and the row marks of other tables' updates) stays
 * a sequential scan, so tuple locking and EvalPlanQual see what they always
 * saw.  enable_seqscan = off disables it as it does a sequential scan.
 */
#include "postgres.h"

#include "access/relscan.h"
#include "access/sysattr.h"
#include "access/tableam.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "nodes/extensible.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/restrictinfo.h"
#include "utils/rel.h"

#include "destor/tableam.h"

typedef struct AmScanState
{
	CustomScanState css;
	TableScanDesc scan;			/* begun at the first row, as SeqNext does */
	Bitmapset  *attrs;			/* columns read (pull_varattnos numbering) */
	int			nread;			/* of them, user columns */
	List	   *quals;			/* for pruning: the plan's quals */
} AmScanState;

static Plan *am_plan_path(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
						  List *tlist, List *clauses, List *custom_plans);
static Node *am_create_state(CustomScan *cscan);
static void am_begin(CustomScanState *node, EState *estate, int eflags);
static TupleTableSlot *am_exec(CustomScanState *node);
static void am_end(CustomScanState *node);
static void am_rescan(CustomScanState *node);
static void am_explain(CustomScanState *node, List *ancestors, ExplainState *es);

static const CustomPathMethods am_path_methods = {
	.CustomName = "DestorScan",
	.PlanCustomPath = am_plan_path,
};

static const CustomScanMethods am_scan_methods = {
	.CustomName = "DestorScan",
	.CreateCustomScanState = am_create_state,
};

static const CustomExecMethods am_exec_methods = {
	.CustomName = "DestorScan",
	.BeginCustomScan = am_begin,
	.ExecCustomScan = am_exec,
	.EndCustomScan = am_end,
	.ReScanCustomScan = am_rescan,
	.ExplainCustomScan = am_explain,
};

/* User columns among attrs (all of them for a whole-row reference). */
static int
columns_named(Relation r, Bitmapset *attrs)
{
	TupleDesc	desc = RelationGetDescr(r);
	int			n = 0;
	bool		whole = bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs);

	for (int a = 0; a < desc->natts; a++)
		if (!TupleDescAttr(desc, a)->attisdropped &&
			(whole || bms_is_member(a + 1 - FirstLowInvalidHeapAttributeNumber, attrs)))
			n++;
	return n;
}

static int
live_columns(Relation r)
{
	TupleDesc	desc = RelationGetDescr(r);
	int			n = 0;

	for (int a = 0; a < desc->natts; a++)
		if (!TupleDescAttr(desc, a)->attisdropped)
			n++;
	return n;
}

/*
 * Called by the access method's set_rel_pathlist hook for a table USING
 * destor: add a DestorScan path costed as the sequential scan, the part
 * that reads rows scaled by the share of columns read.
 */
void
am_add_scan_path(PlannerInfo *root, RelOptInfo *rel, Index rti, Relation r)
{
	CustomPath *cp;
	Path	   *seq;
	Bitmapset  *attrs = NULL;
	ListCell   *lc;
	double		share;
	int			live = live_columns(r);

	if (rel->reloptkind != RELOPT_BASEREL && rel->reloptkind != RELOPT_OTHER_MEMBER_REL)
		return;
	if (bms_is_member(rti, root->all_result_relids) || root->rowMarks != NIL ||
		root->parse->rowMarks != NIL)
		return;
	/* TABLESAMPLE keeps its own path (and its refusal) */
	if (root->simple_rte_array[rti]->tablesample != NULL)
		return;

	pull_varattnos((Node *) rel->reltarget->exprs, rti, &attrs);
	foreach(lc, rel->baserestrictinfo)
		pull_varattnos((Node *) ((RestrictInfo *) lfirst(lc))->clause, rti, &attrs);
	/*
	 * PostgreSQL 15 gives a CustomScan a virtual slot, which has ctid and
	 * tableoid but not the xmin the access method's slots give
	 */
	for (int x = -1; (x = bms_next_member(attrs, x)) >= 0;)
	{
		AttrNumber	a = x + FirstLowInvalidHeapAttributeNumber;

		if (a < 0 && a != SelfItemPointerAttributeNumber && a != TableOidAttributeNumber)
			return;
	}
	share = live > 0 ? (double) columns_named(r, attrs) / live : 1.0;

	seq = create_seqscan_path(root, rel, rel->lateral_relids, 0);
	cp = makeNode(CustomPath);
	cp->path.pathtype = T_CustomScan;
	cp->path.parent = rel;
	cp->path.pathtarget = rel->reltarget;
	cp->path.param_info = seq->param_info;
	cp->path.parallel_aware = false;
	cp->path.parallel_safe = false;
	cp->path.parallel_workers = 0;
	cp->path.rows = seq->rows;
	cp->path.startup_cost = seq->startup_cost;
	/* never above the sequential scan: pruning can only save */
	cp->path.total_cost = seq->startup_cost +
		(seq->total_cost - seq->startup_cost) * (0.2 + 0.79 * share);
	cp->path.pathkeys = NIL;
	cp->flags = 0;
	cp->custom_paths = NIL;
	cp->custom_private = NIL;
	cp->methods = &am_path_methods;
	add_path(rel, &cp->path);
}

static Plan *
am_plan_path(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path, List *tlist,
			 List *clauses, List *custom_plans)
{
	CustomScan *cscan = makeNode(CustomScan);
	List	   *quals = extract_actual_clauses(clauses, false);

	cscan->scan.plan.targetlist = tlist;
	cscan->scan.plan.qual = quals;
	cscan->scan.scanrelid = rel->relid;
	cscan->flags = best_path->flags;
	/* the same quals again, for pruning (setrefs and nestloop params fix both) */
	cscan->custom_exprs = copyObject(quals);
	cscan->custom_private = NIL;
	cscan->custom_scan_tlist = NIL;
	cscan->methods = &am_scan_methods;
	return &cscan->scan.plan;
}

static Node *
am_create_state(CustomScan *cscan)
{
	AmScanState *s = (AmScanState *) newNode(sizeof(AmScanState), T_CustomScanState);

	s->css.methods = &am_exec_methods;
	return (Node *) s;
}

static void
am_begin(CustomScanState *node, EState *estate, int eflags)
{
	AmScanState *s = (AmScanState *) node;
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;
	Index		relid = cscan->scan.scanrelid;

	pull_varattnos((Node *) cscan->scan.plan.targetlist, relid, &s->attrs);
	pull_varattnos((Node *) cscan->scan.plan.qual, relid, &s->attrs);
	s->nread = columns_named(node->ss.ss_currentRelation, s->attrs);
	s->quals = cscan->custom_exprs;
}

static TupleTableSlot *
am_next(ScanState *ss)
{
	AmScanState *s = (AmScanState *) ss;
	TupleTableSlot *slot = ss->ss_ScanTupleSlot;

	if (s->scan == NULL)
	{
		EState	   *estate = ss->ps.state;

		s->scan = table_beginscan(ss->ss_currentRelation, estate->es_snapshot, 0, NULL);
		am_scan_restrict(s->scan, s->attrs, s->quals,
						 ((Scan *) ss->ps.plan)->scanrelid);
	}
	if (table_scan_getnextslot(s->scan, ForwardScanDirection, slot))
		return slot;
	return NULL;
}

/* EvalPlanQual does not reach these scans (see the top of the file) */
static bool
am_recheck(ScanState *ss, TupleTableSlot *slot)
{
	return true;
}

static TupleTableSlot *
am_exec(CustomScanState *node)
{
	return ExecScan(&node->ss, am_next, am_recheck);
}

static void
am_end(CustomScanState *node)
{
	AmScanState *s = (AmScanState *) node;

	if (s->scan != NULL)
		table_endscan(s->scan);
	s->scan = NULL;
}

static void
am_rescan(CustomScanState *node)
{
	AmScanState *s = (AmScanState *) node;

	if (s->scan != NULL)
		table_rescan(s->scan, NULL);
	ExecScanReScan(&node->ss);
}

static void
am_explain(CustomScanState *node, List *ancestors, ExplainState *es)
{
	AmScanState *s = (AmScanState *) node;

	ExplainPropertyText("Columns Read",
						psprintf("%d of %d", s->nread, live_columns(node->ss.ss_currentRelation)),
						es);
	if (es->analyze && s->scan != NULL)
	{
		int64		total;
		int64		pruned;
		int64		read;

		am_scan_counts(s->scan, &total, &pruned, &read);
		ExplainPropertyInteger("Row Groups Read", NULL, read, es);
		ExplainPropertyInteger("Row Groups Pruned", NULL, pruned, es);
	}
}

void
tableam_path_init(void)
{
	RegisterCustomScanMethods(&am_scan_methods);
}
