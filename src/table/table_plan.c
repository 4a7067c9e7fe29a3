/*
 * table_plan.c — planning scans of destor tables: the size estimate, the
 * paths (plain, parameterized, parallel), the plan, and EXPLAIN.
 *
 * Estimates prune with the same statistics the executor uses (min/max/null
 * counts in the catalog), so a query that reads few row groups of a large
 * table is costed as such; no provider is asked while planning.  The plan
 * carries the referenced columns and the quals used for pruning.
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "table_internal.h"

/* What GetForeignRelSize learnt, for the paths and the plan. */
typedef struct PlanInfo
{
	TableOptions *opts;
	int64		rows;
	double		read_rows;		/* rows of the row groups pruning keeps */
	Bitmapset  *attrs;			/* referenced columns, offset by FirstLowInvalidHeapAttributeNumber */
} PlanInfo;

/*
 * planning_segments: the table's segments, for estimates.  Read-only under
 * the active snapshot (the one the planner's caller set), never with a
 * CommandCounterIncrement: planning can happen inside a query that runs in
 * parallel mode (a function called by a CTAS over a parallel plan).
 */
static List *
planning_segments(TableOptions *opts)
{
	return catalog_table_segments(opts->table_id,
								  ActiveSnapshotSet() ? GetActiveSnapshot() : NULL);
}

/*
 * estimate_read_rows: how many rows the scan will read, after the same
 * pruning the executor does (statistics from the catalog, no provider
 * requests).  Costs follow the rows read, not the rows the quals keep.
 */
static double
estimate_read_rows(Oid relid, Index relno, List *segments, List *quals)
{
	Relation	rel = RelationIdGetRelation(relid);
	TupleDesc	desc = RelationGetDescr(rel);
	DestorScan	st = {0};
	Bitmapset  *qual_attrs = NULL;
	ListCell   *lc;
	double		rows = 0;
	int			guclevel;

	st.rel = rel;
	st.natts = desc->natts;
	st.scanrelid = relno;
	st.codecs = palloc0(sizeof(ColumnCodec) * Max(st.natts, 1));
	for (int i = 0; i < st.natts; i++)
		column_codec_init(&st.codecs[i], TupleDescAttr(desc, i));
	pull_varattnos((Node *) quals, relno, &qual_attrs);
	guclevel = text_io_enter();
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);

		if (stats_refute(&st, quals, qual_attrs, dir, -1))
			continue;
		for (int g = 0; g < dir->nrowgroups; g++)
			if (dir->nrowgroups == 1 || !stats_refute(&st, quals, qual_attrs, dir, g))
				rows += dir->rg_rows[g];
	}
	text_io_leave(guclevel);
	RelationClose(rel);
	return rows;
}

/*
 * destorGetForeignRelSize: the table's live rows (from the catalog), the
 * columns the query references, and the rows left after pruning and after
 * the quals' selectivity.  Kept in baserel->fdw_private for the paths.
 */
void
destorGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	PlanInfo   *pi = palloc0(sizeof(PlanInfo));
	ListCell   *lc;
	double		sel;
	List	   *segments;

	pi->opts = table_get_options(foreigntableid);
	segments = planning_segments(pi->opts);
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);

		pi->rows += dir->row_count - dir->deleted_count;
	}

	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &pi->attrs);
	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst(lc);

		pull_varattnos((Node *) ri->clause, baserel->relid, &pi->attrs);
	}
	baserel->fdw_private = pi;
	baserel->tuples = pi->rows;
	pi->read_rows = estimate_read_rows(foreigntableid, baserel->relid, segments,
									   extract_actual_clauses(baserel->baserestrictinfo, false));
	sel = clauselist_selectivity(root, baserel->baserestrictinfo, 0, JOIN_INNER, NULL);
	baserel->rows = clamp_row_est(pi->rows * sel);
}

/*
 * destorGetForeignPaths: a plain path, parameterized paths for join clauses,
 * and a partial path for a parallel scan.  Reading is columnar, so the cost
 * grows with the columns fetched as well as with the rows read.
 */
void
destorGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	PlanInfo   *pi = baserel->fdw_private;
	int			ncols = Max(bms_num_members(pi->attrs), 1);
	Cost		startup = 10;
	double		read_rows = pi->read_rows;
	/* reading is columnar: cost grows with the columns fetched */
	Cost		total = startup + read_rows * (cpu_tuple_cost + 0.002 * ncols) +
		baserel->rows * cpu_tuple_cost;

	/*
	 * A rel that references other rels laterally (an outer column in the
	 * target list or quals of a LATERAL subquery pulled up into the join,
	 * kept in a PlaceHolderVar) can only be scanned once those rels' values
	 * are known: its one path must be parameterized by lateral_relids, as
	 * set_plain_rel_pathlist does for heap tables.  Otherwise the planner
	 * evaluates the outer references where they are not available (NULLs,
	 * "variable not found in subplan target lists").
	 */
	add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL, baserel->rows,
													   startup, total, NIL,
													   baserel->lateral_relids, NULL, NIL));

	/*
	 * Parameterized paths for join clauses: the scan reads the same row
	 * groups whatever the parameter's value (pruning needs constants), but
	 * with a nested loop the join clause filters at the scan, as a heap
	 * table's parameterized paths do.  Offered for every outer rel that a
	 * movable join clause links this one to.
	 */
	{
		List	   *ppi_list = NIL;
		ListCell   *lc;

		foreach(lc, baserel->joininfo)
		{
			RestrictInfo *rinfo = lfirst(lc);
			Relids		required_outer;
			ParamPathInfo *param_info;

			if (!join_clause_is_movable_to(rinfo, baserel))
				continue;
			required_outer = bms_union(rinfo->clause_relids, baserel->lateral_relids);
			required_outer = bms_del_members(required_outer, baserel->relids);
			if (bms_is_empty(required_outer))
				continue;
			param_info = get_baserel_parampathinfo(root, baserel, required_outer);
			ppi_list = list_append_unique_ptr(ppi_list, param_info);
		}
		foreach(lc, ppi_list)
		{
			ParamPathInfo *param_info = lfirst(lc);
			double		rows = param_info->ppi_rows;

			add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL, rows, startup,
															   startup + read_rows * (cpu_tuple_cost + 0.002 * ncols) +
															   rows * cpu_tuple_cost,
															   NIL, param_info->ppi_req_outer,
															   NULL, NIL));
		}
	}

	/*
	 * A parallel scan: workers take row groups from a shared counter, so
	 * each is read once.  Worth it for tables of several row groups.
	 * Partial paths cannot be parameterized: none for a lateral rel (as
	 * for heap), nor while this backend is modifying the table (a function
	 * called by that statement must see its pending changes, which only
	 * this backend has).
	 */
	if (baserel->consider_parallel && baserel->lateral_relids == NULL &&
		read_rows > 2 * pi->opts->row_group_rows && !modify_in_progress(foreigntableid))
	{
		int			workers = compute_parallel_worker(baserel, -1, -1,
													  max_parallel_workers_per_gather);
		ForeignPath *pp;

		if (workers <= 0)
			workers = Min(max_parallel_workers_per_gather,
						  (int) Min(read_rows / pi->opts->row_group_rows, 8));
		if (workers > 0)
		{
			double		share = workers + (parallel_leader_participation ? 1 : 0);

			pp = create_foreignscan_path(root, baserel, NULL, baserel->rows / share,
										 startup, startup + (total - startup) / share,
										 NIL, NULL, NULL, NIL);
			pp->path.parallel_aware = true;
			pp->path.parallel_safe = true;
			pp->path.parallel_workers = workers;
			add_partial_path(baserel, (Path *) pp);
		}
	}
}

ForeignScan *
destorGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
					 ForeignPath *best_path, List *tlist, List *scan_clauses, Plan *outer_plan)
{
	PlanInfo   *pi = baserel->fdw_private;
	List	   *attnums = NIL;
	List	   *fdw_private;
	List	   *quals = extract_actual_clauses(scan_clauses, false);
	int			x = -1;
	bool		wholerow = false;

	while ((x = bms_next_member(pi->attrs, x)) >= 0)
	{
		AttrNumber	a = x + FirstLowInvalidHeapAttributeNumber;

		if (a == 0)
			wholerow = true;
		else if (a > 0)
			attnums = lappend_int(attnums, a);
	}
	/* fdw_private: see FdwScanPrivateIndex; the quals go to fdw_exprs for pruning */
	fdw_private = list_make2(attnums, makeBoolean(wholerow));
	Assert(list_length(fdw_private) == FdwScanPrivateCount);
	return make_foreignscan(tlist, quals, baserel->relid, quals, fdw_private, NIL, NIL,
							outer_plan);
}

/*
 * destorExplainForeignScan: what pruning kept, the columns fetched, and
 * with ANALYZE what the scan read (the parallel workers' share included).
 */
void
destorExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	DestorScan  *st = node->fdw_state;
	StringInfoData cols;

	ExplainPropertyInteger("Segments", NULL, st->segs_total, es);
	ExplainPropertyInteger("Segments Pruned", NULL, st->segs_pruned, es);
	ExplainPropertyInteger("Row Groups", NULL, st->rgs_total, es);
	ExplainPropertyInteger("Row Groups Pruned", NULL, st->rgs_pruned, es);
	initStringInfo(&cols);
	for (int a = 0; a < st->natts; a++)
		if (st->needed[a] && !st->codecs[a].dropped)
			appendStringInfo(&cols, "%s%s", cols.len ? ", " : "",
							 quote_identifier(NameStr(TupleDescAttr(RelationGetDescr(st->rel), a)->attname)));
	ExplainPropertyText("Columns Fetched", cols.len ? cols.data : "(none)", es);
	if (es->analyze)
	{
		int64		rgs = st->rgs_read;
		int64		requests = st->stats.requests;
		int64		bytes = st->stats.bytes_fetched;
		int64		degraded = st->stats.degraded_reads;
		int64		hedged = st->stats.hedged_reads;

		rgs += st->worker_rgs;
		requests += st->worker_requests;
		bytes += st->worker_bytes;
		degraded += st->worker_degraded;
		hedged += st->worker_hedged;
		ExplainPropertyInteger("Row Groups Read", NULL, rgs, es);
		ExplainPropertyInteger("Provider Requests", NULL, requests, es);
		ExplainPropertyInteger("Bytes Fetched", "bytes", bytes, es);
		ExplainPropertyInteger("Degraded Reads", NULL, degraded, es);
		ExplainPropertyInteger("Hedged Reads", NULL, hedged, es);
		ExplainPropertyInteger("Column Chunks Read", NULL, st->chunks_read + st->worker_chunks, es);
		ExplainPropertyInteger("Column Chunks From Cache", NULL,
							   st->chunks_cached + st->worker_chunks_cached, es);
	}
}
