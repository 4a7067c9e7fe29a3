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
#include "access/parallel.h"
#include "optimizer/cost.h"
#include "optimizer/paths.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/restrictinfo.h"
#include "utils/rel.h"

#include "destor/tableam.h"
#include "../table/table_internal.h"

typedef struct AmScanState
{
	CustomScanState css;
	TableScanDesc scan;			/* begun at the first row, as SeqNext does */
	Bitmapset  *attrs;			/* columns read (pull_varattnos numbering) */
	int			nread;			/* of them, user columns */
	List	   *quals;			/* for pruning: the plan's quals */
	void	   *shared;			/* a parallel scan's SharedScan, or NULL */
	bool		leader_only;	/* the leader buffers rows: it reads them all */
} AmScanState;

static Plan *am_plan_path(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
						  List *tlist, List *clauses, List *custom_plans);
static Node *am_create_state(CustomScan *cscan);
static void am_begin(CustomScanState *node, EState *estate, int eflags);
static TupleTableSlot *am_exec(CustomScanState *node);
static void am_end(CustomScanState *node);
static void am_rescan(CustomScanState *node);
static void am_explain(CustomScanState *node, List *ancestors, ExplainState *es);
static Size am_estimate_dsm(CustomScanState *node, ParallelContext *pcxt);
static void am_init_dsm(CustomScanState *node, ParallelContext *pcxt, void *coordinate);
static void am_reinit_dsm(CustomScanState *node, ParallelContext *pcxt, void *coordinate);
static void am_init_worker(CustomScanState *node, shm_toc *toc, void *coordinate);
static void am_shutdown(CustomScanState *node);

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
	.EstimateDSMCustomScan = am_estimate_dsm,
	.InitializeDSMCustomScan = am_init_dsm,
	.ReInitializeDSMCustomScan = am_reinit_dsm,
	.InitializeWorkerCustomScan = am_init_worker,
	.ShutdownCustomScan = am_shutdown,
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
 * The DestorScan as a partial path: the participants of a Gather share its
 * row groups (next_rowgroup's claims).  The relation's other paths are made
 * parallel-unsafe, so that no worker reads it any other way.  The table is
 * one block to the planner (relation_size), so the workers are counted
 * from its rows at the target's width instead.
 */
static void
add_partial_scan_path(PlannerInfo *root, RelOptInfo *rel, CustomPath *serial, double share)
{
	CustomPath *pp;
	ListCell   *lc;
	double		pages = rel->tuples * Max(rel->reltarget->width, 8) / BLCKSZ;
	double		divisor;
	int			workers = compute_parallel_worker(rel, pages, -1, max_parallel_workers_per_gather);

	if (workers <= 0)
		return;
	foreach(lc, rel->pathlist)
		((Path *) lfirst(lc))->parallel_safe = false;
	rel->consider_parallel = true;

	/* as cost_seqscan's get_parallel_divisor */
	divisor = workers;
	if (parallel_leader_participation && 1.0 - 0.3 * workers > 0)
		divisor += 1.0 - 0.3 * workers;
	pp = makeNode(CustomPath);
	memcpy(pp, serial, sizeof(CustomPath));
	pp->path.param_info = NULL;
	pp->path.parallel_aware = true;
	pp->path.parallel_safe = true;
	pp->path.parallel_workers = workers;
	pp->path.rows = clamp_row_est(serial->path.rows / divisor);
	pp->path.total_cost = serial->path.startup_cost +
		(serial->path.total_cost - serial->path.startup_cost) / divisor;
	add_partial_path(rel, &pp->path);
}

/*
 * Called by the access method's set_rel_pathlist hook for a table USING
 * destor: add a DestorScan path costed as the sequential scan, the part
 * that reads rows scaled by the share of columns read.
 */
void
am_add_scan_path(PlannerInfo *root, RelOptInfo *rel, Index rti, Relation r, bool parallel_ok)
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
	if (parallel_ok && rel->lateral_relids == NULL)
		add_partial_scan_path(root, rel, cp, share);
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

/* Join the parallel scan, if any, with this participant's (new) unit list. */
static void
am_attach(AmScanState *s)
{
	DestorScan *st = am_scan_destor(s->scan);

	if (s->shared == NULL)
		return;
	st->leader_only = s->leader_only;
	scan_shared_attach(st, s->shared);
}

static void
am_start(AmScanState *s, EState *estate)
{
	s->scan = table_beginscan(s->css.ss.ss_currentRelation, estate->es_snapshot, 0, NULL);
	am_scan_restrict(s->scan, s->attrs, s->quals, ((Scan *) s->css.ss.ps.plan)->scanrelid);
	am_attach(s);
}

static TupleTableSlot *
am_next(ScanState *ss)
{
	AmScanState *s = (AmScanState *) ss;
	TupleTableSlot *slot = ss->ss_ScanTupleSlot;

	if (s->scan == NULL)
	{
		EState	   *estate = ss->ps.state;

		am_start(s, estate);
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
	{
		scan_shared_publish(am_scan_destor(s->scan));
		table_endscan(s->scan);
	}
	s->scan = NULL;
}

static void
am_rescan(CustomScanState *node)
{
	AmScanState *s = (AmScanState *) node;

	if (s->scan != NULL)
	{
		table_rescan(s->scan, NULL);
		am_attach(s);
	}
	ExecScanReScan(&node->ss);
}

static Size
am_estimate_dsm(CustomScanState *node, ParallelContext *pcxt)
{
	return scan_shared_size();
}

/* The leader: its unit list decides the claims' size, so the scan starts now. */
static void
am_init_dsm(CustomScanState *node, ParallelContext *pcxt, void *coordinate)
{
	AmScanState *s = (AmScanState *) node;

	if (s->scan == NULL)
		am_start(s, node->ss.ps.state);
	s->leader_only = am_backend_buffers();
	s->shared = coordinate;
	am_scan_destor(s->scan)->leader_only = s->leader_only;
	scan_shared_init(am_scan_destor(s->scan), coordinate, pcxt->nworkers);
}

static void
am_reinit_dsm(CustomScanState *node, ParallelContext *pcxt, void *coordinate)
{
	AmScanState *s = (AmScanState *) node;

	s->shared = coordinate;
	if (s->scan != NULL)
		scan_shared_reinit(am_scan_destor(s->scan), coordinate);
}

static void
am_init_worker(CustomScanState *node, shm_toc *toc, void *coordinate)
{
	((AmScanState *) node)->shared = coordinate;
}

static void
am_shutdown(CustomScanState *node)
{
	AmScanState *s = (AmScanState *) node;

	if (s->scan != NULL)
		scan_shared_collect(am_scan_destor(s->scan));
	s->shared = NULL;
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
