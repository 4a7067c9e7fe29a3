/*
 * table_fdw.c — the foreign-data wrapper callbacks of destor tables.
 *
 * Scans read only the columns a query references, and only the segments
 * and row groups whose min/max/null statistics (in the catalog) do not
 * refute the query's conditions; the proof is the planner's own
 * predicate_refuted_by, as in Citus columnar.  Remaining conditions are
 * checked locally.  Inserts (INSERT, COPY, INSERT ... SELECT) are
 * buffered into segments.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/relation.h"
#include "access/reloptions.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "commands/vacuum.h"
#include "common/pg_prng.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/appendinfo.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "port/atomics.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "destor/cache.h"
#include "destor/catalog.h"
#include "destor/progress.h"
#include "table_internal.h"

PG_FUNCTION_INFO_V1(destor_fdw_handler);
PG_FUNCTION_INFO_V1(destor_forget_table);

/* ---------------------------------------------------------------------------
 * Planning
 * ------------------------------------------------------------------------- */
typedef struct PlanInfo
{
	TableOptions *opts;
	int64		rows;
	double		read_rows;		/* rows of the row groups pruning keeps */
	Bitmapset  *attrs;			/* referenced columns, offset by FirstLowInvalidHeapAttributeNumber */
} PlanInfo;

static double estimate_read_rows(Oid relid, Index relno, List *segments, List *quals);
static bool modify_in_progress(Oid relid);
static List *add_pending_changes(Relation rel, Snapshot snapshot, List *segments);
static List *planning_segments(TableOptions *opts);

static void
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

static void
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

static ForeignScan *
destorGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
					 ForeignPath *best_path, List *tlist, List *scan_clauses, Plan *outer_plan)
{
	PlanInfo   *pi = baserel->fdw_private;
	List	   *attnums = NIL;
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
	/* fdw_private: (attnums, wholerow); the quals go to fdw_exprs for pruning */
	return make_foreignscan(tlist, quals, baserel->relid, quals,
							list_make2(attnums, makeBoolean(wholerow)), NIL, NIL, outer_plan);
}

/* ---------------------------------------------------------------------------
 * Row identity: (segment position, row) packed into a tid; the offset keeps
 * its top bit set so that it is never the invalid offset 0.
 * ------------------------------------------------------------------------- */
static void
table_row_to_tid(uint32 seg_index, int64 row, ItemPointer tid)
{
	uint64		raw = ((uint64) seg_index << TABLE_ROW_BITS) | (uint64) row;

	ItemPointerSet(tid, (BlockNumber) (raw >> 15), (OffsetNumber) ((raw & 0x7FFF) | 0x8000));
}

static void
table_tid_to_row(ItemPointer tid, uint32 *seg_index, int64 *row)
{
	uint64		raw = ((uint64) ItemPointerGetBlockNumberNoCheck(tid) << 15) |
		(ItemPointerGetOffsetNumberNoCheck(tid) & 0x7FFF);

	*seg_index = (uint32) (raw >> TABLE_ROW_BITS);
	*row = (int64) (raw & (TABLE_MAX_SEGMENT_ROWS - 1));
}

/* ---------------------------------------------------------------------------
 * Scanning
 * ------------------------------------------------------------------------- */
typedef struct DestorScanUnit
{
	SegmentDirectory *dir;
	int			rg;
	uint32		seg_index;		/* position in the snapshot's segment list */
	int64		first_row;		/* the row group's first row in its segment */
} DestorScanUnit;

typedef struct DestorScan
{
	TableOptions *opts;
	Relation	rel;
	int			natts;
	ColumnCodec *codecs;
	bool	   *needed;			/* per attribute, 0-based */
	Index		scanrelid;
	Snapshot	snapshot;		/* what the scan sees, its catalog reads included;
								 * InvalidSnapshot: a fresh one (compaction) */
	bool		leader_only;	/* reads changes only this backend knows of */

	DestorScanUnit   *units;
	int			nunits;
	int			unit;
	int64		segs_total;
	int64		segs_pruned;
	int64		rgs_total;
	int64		rgs_pruned;

	SegmentDirectory *cur_dir;
	ObjectReader *reader;
	MemoryContext segcxt;		/* the open segment: its object and reader */
	MemoryContext rgcxt;		/* the decoded row group */
	Datum	  **values;			/* per needed attribute: the row group's values */
	bool	  **nulls;
	uint32		rg_rows;
	uint32		row;
	uint32		cur_seg_index;
	int64		cur_first_row;
	int		   *loaded;			/* attributes with values in this row group */
	int			nloaded;
	uint8	   *cur_deleted;	/* the segment's deleted rows, or NULL */

	ObjectReadStats stats_at_start;
	int64		rgs_read;
	int64		chunks_read;	/* column chunks loaded */
	int64		chunks_cached;	/* of them, found decompressed in the cache */

	struct SharedScan *shared;	/* parallel scans, while the DSM is there */
	int64		worker_rgs;		/* the workers' counters, saved at shutdown */
	int64		worker_requests;
	int64		worker_bytes;
	int64		worker_degraded;
	int64		worker_chunks;
	int64		worker_chunks_cached;
	pg_atomic_uint32 *next_unit;	/* parallel scans: shared position */
} DestorScan;

/* Shared by the participants of a parallel scan: the next row group, and
 * the workers' counters for EXPLAIN ANALYZE. */
typedef struct SharedScan
{
	pg_atomic_uint32 next_unit;
	pg_atomic_uint64 rgs_read;
	pg_atomic_uint64 requests;
	pg_atomic_uint64 bytes;
	pg_atomic_uint64 degraded;
	pg_atomic_uint64 chunks_read;
	pg_atomic_uint64 chunks_cached;
} SharedScan;

/* The constraint "stats allow col's values" as an expression, or NULL. */
static Node *
column_constraint(DestorScan *st, AttrNumber attnum, const char *min, const char *max,
				  uint64 nulls, uint64 rows)
{
	ColumnCodec *cc = &st->codecs[attnum - 1];
	TypeCacheEntry *tce;
	Var		   *var;
	Expr	   *arg;
	NullTest   *nt;
	Node	   *range = NULL;

	if (cc->dropped || !cc->has_cmp || cc->typid != cc->basetype)
		return NULL;
	var = makeVar(st->scanrelid, attnum, cc->typid, cc->typmod, cc->collation, 0);
	arg = (Expr *) var;
	if (min && max)
	{
		Oid			opintype;
		Oid			ge;
		Oid			le;
		Const	   *cmin;
		Const	   *cmax;

		tce = lookup_type_cache(cc->typid, TYPECACHE_BTREE_OPFAMILY);
		if (!OidIsValid(tce->btree_opf))
			return NULL;

		/*
		 * A type compared through a binary-compatible opclass (varchar via
		 * text) appears in quals relabeled to the opclass type: match that.
		 */
		opintype = OidIsValid(tce->btree_opintype) ? tce->btree_opintype : cc->typid;
		if (opintype != cc->typid)
			arg = (Expr *) makeRelabelType((Expr *) var, opintype, -1, cc->collation,
										   COERCE_IMPLICIT_CAST);
		ge = get_opfamily_member(tce->btree_opf, opintype, opintype, BTGreaterEqualStrategyNumber);
		le = get_opfamily_member(tce->btree_opf, opintype, opintype, BTLessEqualStrategyNumber);
		if (!OidIsValid(ge) || !OidIsValid(le))
			return NULL;
		cmin = makeConst(opintype, opintype == cc->typid ? cc->typmod : -1, cc->collation, cc->typlen,
						 InputFunctionCall(&cc->in, (char *) min, cc->ioparam, cc->typmod),
						 false, cc->typbyval);
		cmax = makeConst(opintype, opintype == cc->typid ? cc->typmod : -1, cc->collation, cc->typlen,
						 InputFunctionCall(&cc->in, (char *) max, cc->ioparam, cc->typmod),
						 false, cc->typbyval);
		range = (Node *) make_andclause(list_make2(
			make_opclause(ge, BOOLOID, false, arg, (Expr *) cmin, InvalidOid, cc->collation),
			make_opclause(le, BOOLOID, false, (Expr *) copyObject(arg), (Expr *) cmax, InvalidOid,
						  cc->collation)));
	}
	nt = makeNode(NullTest);
	nt->arg = (Expr *) copyObject(var);
	nt->argisrow = false;
	nt->location = -1;
	if (nulls == 0)
	{
		nt->nulltesttype = IS_NOT_NULL;
		return range ? (Node *) make_andclause(list_make2(range, nt)) : (Node *) nt;
	}
	if (nulls >= rows)
	{
		nt->nulltesttype = IS_NULL;
		return (Node *) nt;
	}
	if (range == NULL)
		return NULL;
	nt->nulltesttype = IS_NULL;
	return (Node *) make_orclause(list_make2(range, nt));
}

/* True if the quals prove no row of this segment (rg < 0) or row group matches. */
static bool
stats_refute(DestorScan *st, List *quals, Bitmapset *qual_attrs, SegmentDirectory *dir, int rg)
{
	List	   *constraints = NIL;
	int			x = -1;

	if (quals == NIL)
		return false;
	while ((x = bms_next_member(qual_attrs, x)) >= 0)
	{
		AttrNumber	a = x + FirstLowInvalidHeapAttributeNumber;
		Node	   *c;

		if (a <= 0 || a > dir->ncols || a > st->natts)
			continue;
		if (dir->typids[a - 1] != st->codecs[a - 1].typid)
			continue;
		if (rg < 0)
			c = column_constraint(st, a, dir->seg_min[a - 1], dir->seg_max[a - 1],
								  dir->seg_nulls[a - 1], dir->row_count);
		else
		{
			int			idx = rg * dir->ncols + (a - 1);

			c = column_constraint(st, a, dir->rg_min[idx], dir->rg_max[idx],
								  dir->chunks[idx].null_count, dir->rg_rows[rg]);
		}
		if (c)
			constraints = lappend(constraints, c);
	}
	return constraints != NIL && predicate_refuted_by(constraints, quals, false);
}

/*
 * Planning: how many rows the scan will read, after the same pruning the
 * executor does (statistics from the catalog, no provider requests).
 */
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

static void
destorBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *plan = (ForeignScan *) node->ss.ps.plan;
	DestorScan  *st = palloc0(sizeof(DestorScan));
	Relation	rel = node->ss.ss_currentRelation;
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *attnums = linitial(plan->fdw_private);
	bool		wholerow = boolVal(lsecond(plan->fdw_private));
	List	   *quals = plan->fdw_exprs;
	Bitmapset  *qual_attrs = NULL;
	List	   *segments;
	ListCell   *lc;
	int			cap = 0;
	int			guclevel;

	node->fdw_state = st;
	st->rel = rel;
	st->opts = table_get_options(RelationGetRelid(rel));
	st->natts = desc->natts;
	st->scanrelid = plan->scan.scanrelid;
	st->codecs = palloc0(sizeof(ColumnCodec) * Max(st->natts, 1));
	st->needed = palloc0(sizeof(bool) * Max(st->natts, 1));
	for (int i = 0; i < st->natts; i++)
	{
		column_codec_init(&st->codecs[i], TupleDescAttr(desc, i));
		st->needed[i] = wholerow && !st->codecs[i].dropped;
	}
	foreach(lc, attnums)
		if (lfirst_int(lc) <= st->natts)
			st->needed[lfirst_int(lc) - 1] = true;
	/* scan callbacks run in a per-tuple context: keep state in longer ones */
	st->segcxt = AllocSetContextCreate(node->ss.ps.state->es_query_cxt, "destor scan segment",
									   ALLOCSET_DEFAULT_SIZES);
	st->rgcxt = AllocSetContextCreate(node->ss.ps.state->es_query_cxt, "destor scan row group",
									  ALLOCSET_DEFAULT_SIZES);
	st->values = palloc0(sizeof(Datum *) * Max(st->natts, 1));
	st->nulls = palloc0(sizeof(bool *) * Max(st->natts, 1));
	st->loaded = palloc0(sizeof(int) * Max(st->natts, 1));
	pull_varattnos((Node *) quals, st->scanrelid, &qual_attrs);

	/* plan the reads: which segments and row groups survive the statistics
	 * (their text forms read under the settings they were written with) */
	guclevel = text_io_enter();
	/* the query's snapshot: an UPDATE or DELETE reads the same list */
	st->snapshot = node->ss.ps.state->es_snapshot;
	segments = catalog_table_segments(st->opts->table_id, st->snapshot);
	if (modify_in_progress(RelationGetRelid(rel)))
	{
		List	   *before = segments;

		segments = add_pending_changes(rel, st->snapshot, segments);

		/*
		 * Only this backend knows the changes: a parallel plan (one cached
		 * before the statement began; planning offers none meanwhile) is
		 * read by the leader alone, workers get no row group.  That needs
		 * a leader that runs the scan.
		 */
		if (segments != before && plan->scan.plan.parallel_aware)
		{
			if (!parallel_leader_participation || force_parallel_mode != FORCE_PARALLEL_OFF)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot scan destor table \"%s\" in parallel while a statement that calls the scan modifies it",
								RelationGetRelationName(rel)),
						 errhint("Set max_parallel_workers_per_gather to 0 for this statement.")));
			st->leader_only = true;
		}
	}
	if (list_length(segments) >= TABLE_MAX_SEGMENTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("destor table \"%s\" has too many segments (%d)",
						RelationGetRelationName(rel), list_length(segments)),
				 errhint("Merge small segments with destor.compact().")));
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);
		int64		first_row = 0;

		st->segs_total++;
		st->rgs_total += dir->nrowgroups;
		if (stats_refute(st, quals, qual_attrs, dir, -1))
		{
			st->segs_pruned++;
			st->rgs_pruned += dir->nrowgroups;
			continue;
		}
		for (int g = 0; g < dir->nrowgroups; first_row += dir->rg_rows[g], g++)
		{
			if (dir->nrowgroups > 1 && stats_refute(st, quals, qual_attrs, dir, g))
			{
				st->rgs_pruned++;
				continue;
			}
			if (st->nunits == cap)
			{
				cap = Max(16, cap * 2);
				st->units = st->units ? repalloc(st->units, sizeof(DestorScanUnit) * cap) :
					palloc(sizeof(DestorScanUnit) * cap);
			}
			st->units[st->nunits].dir = dir;
			st->units[st->nunits].rg = g;
			st->units[st->nunits].seg_index = foreach_current_index(lc);
			st->units[st->nunits].first_row = first_row;
			st->nunits++;
		}
	}
	text_io_leave(guclevel);
	st->stats_at_start = object_read_stats;
}

/* Decode one column chunk (already fetched into stored) of a row group. */
/*
 * Compressed chunks are cached decompressed as well (keyed by their offset
 * in the segment object), so that a warm scan skips zstd: it costs about a
 * quarter of a warm scan's time.  Chunks stored uncompressed gain nothing,
 * and chunks under half a cache page would waste most of the page they take.
 */
static bool
chunk_cacheable(ChunkEntry *e)
{
	return e->length != e->raw_length && e->raw_length >= CACHE_SPAN_MIN_BYTES &&
		e->raw_length <= cache_span_max_bytes() && e->offset <= CACHE_SPAN_MAX_TAG;
}

/* A chunk's decompressed bytes, from its stored ones (cached when worth it). */
static char *
chunk_plain(DestorScan *st, SegmentDirectory *dir, ChunkEntry *e, char *stored)
{
	char	   *raw;
	size_t		outlen;

	if (e->length == e->raw_length)
		return stored;
	raw = palloc(Max(e->raw_length, 1));
	if (codec_decompress(stored, e->length, raw, e->raw_length, &outlen) != 0 ||
		outlen != e->raw_length)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a column chunk of destor table \"%s\" does not decompress",
						RelationGetRelationName(st->rel))));
	if (chunk_cacheable(e))
		cache_insert_span(dir->object_id, e->offset, raw, e->raw_length);
	return raw;
}

/* Decode a row group's column from its decompressed chunk (left as it is). */
static void
load_column(DestorScan *st, SegmentDirectory *dir, int rg, int att, char *raw)
{
	ChunkEntry *e = &dir->chunks[rg * dir->ncols + att];
	uint32		n = dir->rg_rows[rg];
	const uint8 *p;
	const uint8 *end;
	uint32		bitmap_len = (n + 7) / 8;

	if (e->raw_length < bitmap_len)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a column chunk of destor table \"%s\" is truncated",
						RelationGetRelationName(st->rel))));
	st->values[att] = palloc(sizeof(Datum) * Max(n, 1));
	st->nulls[att] = palloc(sizeof(bool) * Max(n, 1));
	p = (const uint8 *) raw + bitmap_len;
	end = (const uint8 *) raw + e->raw_length;
	if (e->kind == VALUE_FIXED && st->codecs[att].kind == VALUE_FIXED && st->codecs[att].typbyval)
	{
		/* the common case (integers, floats, timestamps): a tight loop */
		int16		len = st->codecs[att].typlen;
		Datum	   *vals = st->values[att];
		bool	   *isnull = st->nulls[att];

		if ((uint64) (end - p) < (uint64) (n - e->null_count) * len)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("a column chunk of destor table \"%s\" is truncated",
							RelationGetRelationName(st->rel))));
		for (uint32 r = 0; r < n; r++)
		{
			Datum		aligned = 0;

			isnull[r] = e->null_count > 0 && ((raw[r / 8] >> (r % 8)) & 1);
			if (isnull[r])
			{
				vals[r] = (Datum) 0;
				continue;
			}
			memcpy(&aligned, p, len);
			vals[r] = fetch_att(&aligned, true, len);
			p += len;
		}
		return;
	}
	if (e->kind == VALUE_VARLENA && st->codecs[att].kind == VALUE_VARLENA)
	{
		/*
		 * Text, numeric, bytea, arrays, ranges, jsonb...: each value is a
		 * 4-byte length and its bytes.  The values are copied into one
		 * buffer (of the row group's context), each at a MAXALIGN'ed
		 * offset: PostgreSQL reads a varlena through its struct (arrays
		 * align their elements, ranges their bounds, numerics their
		 * digits relative to the value's start), so a value used where it
		 * lies in the chunk, at whatever offset the values before it left,
		 * reads back wrong or crashes the server.
		 */
		Datum	   *vals = st->values[att];
		bool	   *isnull = st->nulls[att];
		Size		cap = (Size) (end - p) + (Size) n * MAXIMUM_ALIGNOF;
		char	   *out = MemoryContextAllocHuge(CurrentMemoryContext, Max(cap, 1));
		char	   *o = (char *) MAXALIGN(out);

		for (uint32 r = 0; r < n; r++)
		{
			uint32		vlen;

			isnull[r] = e->null_count > 0 && ((raw[r / 8] >> (r % 8)) & 1);
			if (isnull[r])
			{
				vals[r] = (Datum) 0;
				continue;
			}
			if (end - p < 4)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("a column chunk of destor table \"%s\" is truncated",
								RelationGetRelationName(st->rel))));
			vlen = (uint32) p[0] | ((uint32) p[1] << 8) | ((uint32) p[2] << 16) | ((uint32) p[3] << 24);
			if ((uint64) (end - p - 4) < vlen || vlen > MaxAllocSize - VARHDRSZ)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("a column chunk of destor table \"%s\" is truncated",
								RelationGetRelationName(st->rel))));
			Assert(o + VARHDRSZ + vlen <= out + cap);
			SET_VARSIZE(o, vlen + VARHDRSZ);
			memcpy(VARDATA(o), p + 4, vlen);
			vals[r] = PointerGetDatum(o);
			o += MAXALIGN(VARHDRSZ + vlen);
			p += 4 + vlen;
		}
		return;
	}
	for (uint32 r = 0; r < n; r++)
	{
		bool		isnull = e->null_count > 0 && ((raw[r / 8] >> (r % 8)) & 1);

		st->nulls[att][r] = isnull;
		st->values[att][r] = isnull ? (Datum) 0 :
			value_decode(&st->codecs[att], (ValueKind) e->kind, &p, end);
	}
}

/* Does the scan load this column's chunks from this segment? */
static inline bool
chunk_needed(DestorScan *st, SegmentDirectory *dir, int a)
{
	return st->needed[a] && !st->codecs[a].dropped && a < dir->ncols && dir->kinds[a] != 0;
}

/* The byte ranges of a row group's needed chunks, merged where they
 * share blocks. */
typedef struct RangePlan
{
	int			n;				/* chunks */
	int		   *atts;
	uint64	   *offs;
	int			nranges;		/* merged ranges */
	uint64	   *roffs;
	uint64	   *rlens;
	int		   *range_of;		/* per chunk */
} RangePlan;

/*
 * Chunks in "have" (per attribute; NULL: those whose decompressed bytes
 * the cache holds right now) are left out.
 */
static void
unit_ranges(DestorScan *st, DestorScanUnit *u, RangePlan *rp, char **have)
{
	uint64	   *lens = palloc(sizeof(uint64) * Max(st->natts, 1));

	rp->n = 0;
	rp->nranges = 0;
	rp->atts = palloc(sizeof(int) * Max(st->natts, 1));
	rp->offs = palloc(sizeof(uint64) * Max(st->natts, 1));
	rp->roffs = palloc(sizeof(uint64) * Max(st->natts, 1));
	rp->rlens = palloc(sizeof(uint64) * Max(st->natts, 1));
	rp->range_of = palloc(sizeof(int) * Max(st->natts, 1));
	for (int a = 0; a < st->natts && a < u->dir->ncols; a++)
	{
		ChunkEntry *e = &u->dir->chunks[u->rg * u->dir->ncols + a];

		if (!chunk_needed(st, u->dir, a))
			continue;
		if (have ? have[a] != NULL :
			chunk_cacheable(e) && cache_contains_span(u->dir->object_id, e->offset))
			continue;
		rp->atts[rp->n] = a;
		rp->offs[rp->n] = e->offset;
		lens[rp->n] = e->length;
		rp->n++;
	}

	/*
	 * Chunks are laid out in column order; ranges closer than a block would
	 * fetch and open the same block twice, so read them as one.
	 */
	for (int i = 0; i < rp->n; i++)
	{
		int			last = rp->nranges - 1;

		if (last >= 0 && rp->offs[i] >= rp->roffs[last] &&
			rp->offs[i] <= rp->roffs[last] + rp->rlens[last] + OBJECT_BLOCK_SIZE)
			rp->rlens[last] = Max(rp->rlens[last], rp->offs[i] + lens[i] - rp->roffs[last]);
		else
		{
			rp->roffs[rp->nranges] = rp->offs[i];
			rp->rlens[rp->nranges] = lens[i];
			rp->nranges++;
		}
		rp->range_of[i] = rp->nranges - 1;
	}
}

/* A column whose type changed since the segment was written cannot be read. */
static void
check_column_type(DestorScan *st, SegmentDirectory *dir, int a)
{
	if (dir->typids[a] != st->codecs[a].typid)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of destor table \"%s\" was stored as type %s and is now %s",
						NameStr(TupleDescAttr(RelationGetDescr(st->rel), a)->attname),
						RelationGetRelationName(st->rel),
						format_type_be(dir->typids[a]),
						format_type_be(st->codecs[a].typid)),
				 errdetail("ALTER FOREIGN TABLE ... ALTER COLUMN ... TYPE does not rewrite the stored values."),
				 errhint("Change the column's type back, or copy the rows into a new table with INSERT ... SELECT and a cast.")));
}

static bool
next_rowgroup(DestorScan *st)
{
	DestorScanUnit   *u;
	MemoryContext old;

	if (st->next_unit)
	{
		/* every participant built the same list from the same snapshot */
		uint32		mine = pg_atomic_fetch_add_u32(st->next_unit, 1);

		if (mine >= (uint32) st->nunits)
			return false;
		st->unit = mine + 1;
		u = &st->units[mine];
	}
	else
	{
		if (st->unit >= st->nunits)
			return false;
		u = &st->units[st->unit++];
	}
	MemoryContextReset(st->rgcxt);
	memset(st->values, 0, sizeof(Datum *) * st->natts);
	memset(st->nulls, 0, sizeof(bool *) * st->natts);
	if (u->dir->mem_chunks)
	{
		/* rows the statement that called us still buffers: in memory */
		old = MemoryContextSwitchTo(st->rgcxt);
		for (int a = 0; a < st->natts; a++)
		{
			ChunkEntry *e;
			char	   *raw;

			if (!chunk_needed(st, u->dir, a))
				continue;
			check_column_type(st, u->dir, a);
			e = &u->dir->chunks[a];
			raw = palloc(Max(e->raw_length, 1));
			memcpy(raw, u->dir->mem_chunks[a], e->raw_length);
			if (e->kind == VALUE_TEXT)
			{
				int			guclevel = text_io_enter();

				load_column(st, u->dir, 0, a, raw);
				text_io_leave(guclevel);
			}
			else
				load_column(st, u->dir, 0, a, raw);
		}
		MemoryContextSwitchTo(old);
		st->rg_rows = u->dir->rg_rows[0];
		st->row = 0;
		st->cur_seg_index = u->seg_index;
		st->cur_first_row = 0;
		st->cur_deleted = NULL;
		st->rgs_read++;
		return true;
	}
	if (u->dir != st->cur_dir)
	{
		ObjectMeta *meta;

		if (st->reader)
			object_reader_close(st->reader);
		st->reader = NULL;
		st->cur_dir = NULL;
		MemoryContextReset(st->segcxt);
		old = MemoryContextSwitchTo(st->segcxt);
		/* read-only and under the scan's snapshot: a cursor reads on
		 * after a compaction retired the object, and the scan may run
		 * in parallel mode */
		meta = u->dir->meta ? u->dir->meta :
			catalog_get_object_at(u->dir->object_id, false, st->snapshot);
		st->reader = object_reader_open(meta);
		st->cur_dir = u->dir;
		MemoryContextSwitchTo(old);
	}
	old = MemoryContextSwitchTo(st->rgcxt);
	{
		/*
		 * Chunks the cache holds decompressed are copied from it; every
		 * other needed chunk of the row group is fetched in one batch of
		 * requests, and the next row group's are on their way while this
		 * one decodes.
		 */
		RangePlan	cur;
		RangePlan	next = {0};
		DestorScanUnit *nu = (st->next_unit == NULL && st->unit < st->nunits) ?
			&st->units[st->unit] : NULL;
		char	  **plain = palloc0(sizeof(char *) * Max(st->natts, 1));
		char	  **rbufs;

		for (int a = 0; a < st->natts; a++)
		{
			ChunkEntry *e;

			if (!chunk_needed(st, u->dir, a))
				continue;
			check_column_type(st, u->dir, a);
			st->chunks_read++;
			e = &u->dir->chunks[u->rg * u->dir->ncols + a];
			if (!chunk_cacheable(e))
				continue;
			plain[a] = palloc(e->raw_length);
			if (cache_lookup_span(u->dir->object_id, e->offset, plain[a], e->raw_length))
				st->chunks_cached++;
			else
			{
				pfree(plain[a]);
				plain[a] = NULL;
			}
		}
		unit_ranges(st, u, &cur, plain);
		if (nu && nu->dir == u->dir)
			unit_ranges(st, nu, &next, NULL);
		rbufs = palloc(sizeof(char *) * Max(cur.nranges, 1));
		for (int r = 0; r < cur.nranges; r++)
			rbufs[r] = palloc(Max(cur.rlens[r], 1));
		object_reader_read_multi_ahead(st->reader, cur.nranges, cur.roffs, cur.rlens, rbufs,
									   next.nranges, next.roffs, next.rlens);
		for (int i = 0; i < cur.n; i++)
		{
			int			a = cur.atts[i];
			int			r = cur.range_of[i];

			plain[a] = chunk_plain(st, u->dir, &u->dir->chunks[u->rg * u->dir->ncols + a],
								   rbufs[r] + (cur.offs[i] - cur.roffs[r]));
		}
		for (int a = 0; a < st->natts; a++)
		{
			int			guclevel = -1;

			if (plain[a] == NULL)
				continue;
			CHECK_FOR_INTERRUPTS();
			if (u->dir->chunks[u->rg * u->dir->ncols + a].kind == VALUE_TEXT)
				guclevel = text_io_enter();
			load_column(st, u->dir, u->rg, a, plain[a]);
			if (guclevel >= 0)
				text_io_leave(guclevel);
		}
	}
	MemoryContextSwitchTo(old);
	st->rg_rows = u->dir->rg_rows[u->rg];
	st->row = 0;
	st->cur_seg_index = u->seg_index;
	st->cur_first_row = u->first_row;
	st->cur_deleted = u->dir->deleted;
	st->rgs_read++;
	return true;
}

static TupleTableSlot *
destorIterateForeignScan(ForeignScanState *node)
{
	DestorScan  *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	ExecClearTuple(slot);
	for (;;)
	{
		int64		pos;

		while (st->row >= st->rg_rows)
		{
			if (!next_rowgroup(st))
				return slot;

			/*
			 * Columns without values in this row group (not needed,
			 * dropped, or added after it was written) are NULL for all
			 * its rows: set them once, and copy only the others per row.
			 */
			st->nloaded = 0;
			for (int a = 0; a < st->natts; a++)
			{
				if (st->values[a] == NULL)
				{
					slot->tts_isnull[a] = true;
					slot->tts_values[a] = (Datum) 0;
				}
				else
					st->loaded[st->nloaded++] = a;
			}
		}
		pos = st->cur_first_row + st->row;
		if (st->cur_deleted == NULL || !((st->cur_deleted[pos / 8] >> (pos % 8)) & 1))
			break;
		st->row++;				/* deleted */
	}
	table_row_to_tid(st->cur_seg_index, st->cur_first_row + st->row, &slot->tts_tid);
	for (int i = 0; i < st->nloaded; i++)
	{
		int			a = st->loaded[i];

		slot->tts_isnull[a] = st->nulls[a][st->row];
		slot->tts_values[a] = st->values[a][st->row];
	}
	st->row++;
	return ExecStoreVirtualTuple(slot);
}

static void
destorReScanForeignScan(ForeignScanState *node)
{
	DestorScan  *st = node->fdw_state;

	st->unit = 0;
	st->row = st->rg_rows = 0;
}

static bool
destorIsForeignScanParallelSafe(PlannerInfo *root, RelOptInfo *rel, RangeTblEntry *rte)
{
	return true;
}

static Size
destorEstimateDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt)
{
	return sizeof(SharedScan);
}

static void
destorInitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt, void *coordinate)
{
	DestorScan *st = node->fdw_state;
	SharedScan *sh = (SharedScan *) coordinate;

	/* leader_only: the counter starts past every worker's list */
	pg_atomic_init_u32(&sh->next_unit, st->leader_only ? PG_INT32_MAX : 0);
	pg_atomic_init_u64(&sh->rgs_read, 0);
	pg_atomic_init_u64(&sh->requests, 0);
	pg_atomic_init_u64(&sh->bytes, 0);
	pg_atomic_init_u64(&sh->degraded, 0);
	pg_atomic_init_u64(&sh->chunks_read, 0);
	pg_atomic_init_u64(&sh->chunks_cached, 0);
	st->shared = sh;
	st->next_unit = st->leader_only ? NULL : &sh->next_unit;
}

static void
destorReInitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt, void *coordinate)
{
	DestorScan *st = node->fdw_state;

	pg_atomic_write_u32(&((SharedScan *) coordinate)->next_unit, st->leader_only ? PG_INT32_MAX : 0);
	st->shared = (SharedScan *) coordinate;
	st->next_unit = st->leader_only ? NULL : &st->shared->next_unit;
}

static void
destorInitializeWorkerForeignScan(ForeignScanState *node, shm_toc *toc, void *coordinate)
{
	DestorScan *st = node->fdw_state;

	st->shared = (SharedScan *) coordinate;
	st->next_unit = &st->shared->next_unit;
}

/* Before the parallel DSM goes away: keep the workers' counters. */
static void
destorShutdownForeignScan(ForeignScanState *node)
{
	DestorScan *st = node->fdw_state;

	if (st && st->shared && !IsParallelWorker())
	{
		st->worker_rgs += pg_atomic_read_u64(&st->shared->rgs_read);
		st->worker_requests += pg_atomic_read_u64(&st->shared->requests);
		st->worker_bytes += pg_atomic_read_u64(&st->shared->bytes);
		st->worker_degraded += pg_atomic_read_u64(&st->shared->degraded);
		st->worker_chunks += pg_atomic_read_u64(&st->shared->chunks_read);
		st->worker_chunks_cached += pg_atomic_read_u64(&st->shared->chunks_cached);
		st->shared = NULL;
		st->next_unit = NULL;
	}
}

static void
destorEndForeignScan(ForeignScanState *node)
{
	DestorScan *st = node->fdw_state;

	if (st && st->reader)
		object_reader_close(st->reader);
	if (st)
		st->reader = NULL;
	if (st && st->shared && IsParallelWorker())
	{
		/* hand this worker's share of the work to the leader's EXPLAIN */
		pg_atomic_fetch_add_u64(&st->shared->rgs_read, st->rgs_read);
		pg_atomic_fetch_add_u64(&st->shared->requests,
								object_read_stats.requests - st->stats_at_start.requests);
		pg_atomic_fetch_add_u64(&st->shared->bytes,
								object_read_stats.bytes_fetched - st->stats_at_start.bytes_fetched);
		pg_atomic_fetch_add_u64(&st->shared->degraded,
								object_read_stats.degraded_reads - st->stats_at_start.degraded_reads);
		pg_atomic_fetch_add_u64(&st->shared->chunks_read, st->chunks_read);
		pg_atomic_fetch_add_u64(&st->shared->chunks_cached, st->chunks_cached);
	}
}

static void
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
		int64		requests = object_read_stats.requests - st->stats_at_start.requests;
		int64		bytes = object_read_stats.bytes_fetched - st->stats_at_start.bytes_fetched;
		int64		degraded = object_read_stats.degraded_reads - st->stats_at_start.degraded_reads;

		rgs += st->worker_rgs;
		requests += st->worker_requests;
		bytes += st->worker_bytes;
		degraded += st->worker_degraded;
		ExplainPropertyInteger("Row Groups Read", NULL, rgs, es);
		ExplainPropertyInteger("Provider Requests", NULL, requests, es);
		ExplainPropertyInteger("Bytes Fetched", "bytes", bytes, es);
		ExplainPropertyInteger("Degraded Reads", NULL, degraded, es);
		ExplainPropertyInteger("Column Chunks Read", NULL, st->chunks_read + st->worker_chunks, es);
		ExplainPropertyInteger("Column Chunks From Cache", NULL,
							   st->chunks_cached + st->worker_chunks_cached, es);
	}
}

/* ---------------------------------------------------------------------------
 * ANALYZE: a sample of whole row groups, picked at random, then reservoir
 * sampling over their rows; the table is not read in full unless it is
 * small.
 * ------------------------------------------------------------------------- */
/*
 * A scan of whole rows of the given segments, outside the executor (for
 * ANALYZE and compaction).  Row groups come from next_rowgroup().
 */
static DestorScan *
whole_row_scan(Relation rel, TableOptions *opts, List *segments)
{
	MemoryContext caller = CurrentMemoryContext;
	DestorScan *st = palloc0(sizeof(DestorScan));
	TupleDesc	desc = RelationGetDescr(rel);
	ListCell   *lc;
	int			nunits = 0;

	st->rel = rel;
	st->opts = opts;
	st->natts = desc->natts;
	st->codecs = palloc0(sizeof(ColumnCodec) * Max(st->natts, 1));
	st->needed = palloc0(sizeof(bool) * Max(st->natts, 1));
	for (int i = 0; i < st->natts; i++)
	{
		column_codec_init(&st->codecs[i], TupleDescAttr(desc, i));
		st->needed[i] = !st->codecs[i].dropped;
	}
	st->segcxt = AllocSetContextCreate(caller, "destor whole-row scan segment", ALLOCSET_DEFAULT_SIZES);
	st->rgcxt = AllocSetContextCreate(caller, "destor whole-row scan row group", ALLOCSET_DEFAULT_SIZES);
	st->values = palloc0(sizeof(Datum *) * Max(st->natts, 1));
	st->nulls = palloc0(sizeof(bool *) * Max(st->natts, 1));
	foreach(lc, segments)
		nunits += ((SegmentDirectory *) lfirst(lc))->nrowgroups;
	st->units = palloc(sizeof(DestorScanUnit) * Max(nunits, 1));
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);
		int64		first_row = 0;

		for (int g = 0; g < dir->nrowgroups; first_row += dir->rg_rows[g], g++)
		{
			DestorScanUnit *u = &st->units[st->nunits++];

			u->dir = dir;
			u->rg = g;
			u->seg_index = foreach_current_index(lc);
			u->first_row = first_row;
		}
	}
	return st;
}

/* The current row of a whole-row scan, or false if it is deleted. */
static bool
whole_row_current(DestorScan *st, Datum *values, bool *nulls)
{
	int64		pos = st->cur_first_row + st->row;

	if (st->cur_deleted && ((st->cur_deleted[pos / 8] >> (pos % 8)) & 1))
		return false;
	for (int a = 0; a < st->natts; a++)
	{
		nulls[a] = st->values[a] == NULL || st->nulls[a][st->row];
		values[a] = nulls[a] ? (Datum) 0 : st->values[a][st->row];
	}
	return true;
}

static void
whole_row_scan_end(DestorScan *st)
{
	if (st->reader)
		object_reader_close(st->reader);
	st->reader = NULL;
	MemoryContextDelete(st->rgcxt);
	MemoryContextDelete(st->segcxt);
}

static int
destor_acquire_sample(Relation rel, int elevel, HeapTuple *rows, int targrows,
					  double *totalrows, double *totaldeadrows)
{
	MemoryContext caller = CurrentMemoryContext;
	DestorScan *st;
	TupleDesc	desc = RelationGetDescr(rel);
	TableOptions *opts = table_get_options(RelationGetRelid(rel));
	List	   *segments;
	ListCell   *lc;
	double		live = 0;
	double		seen = 0;
	int			numrows = 0;
	Datum	   *values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(desc->natts, 1));

	segments = catalog_table_segments(opts->table_id, GetActiveSnapshot());
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);

		live += dir->row_count - dir->deleted_count;
	}
	st = whole_row_scan(rel, opts, segments);
	st->snapshot = GetActiveSnapshot();

	/* random order of row groups (Fisher-Yates) */
	for (int i = st->nunits - 1; i > 0; i--)
	{
		int			j = (int) pg_prng_uint64_range(&pg_global_prng_state, 0, i);
		DestorScanUnit tmp = st->units[i];

		st->units[i] = st->units[j];
		st->units[j] = tmp;
	}

	/* read row groups until we have seen three times the sample size */
	while (seen < 3.0 * targrows && next_rowgroup(st))
	{
		for (st->row = 0; st->row < st->rg_rows; st->row++)
		{
			MemoryContext old;

			if (!whole_row_current(st, values, nulls))
				continue;
			vacuum_delay_point();
			seen++;
			if (numrows < targrows)
			{
				old = MemoryContextSwitchTo(caller);
				rows[numrows++] = heap_form_tuple(desc, values, nulls);
				MemoryContextSwitchTo(old);
			}
			else
			{
				/* reservoir: replace a random earlier pick */
				int64		k = (int64) pg_prng_uint64_range(&pg_global_prng_state, 0, (uint64) seen - 1);

				if (k < targrows)
				{
					heap_freetuple(rows[k]);
					old = MemoryContextSwitchTo(caller);
					rows[k] = heap_form_tuple(desc, values, nulls);
					MemoryContextSwitchTo(old);
				}
			}
		}
	}
	whole_row_scan_end(st);

	*totalrows = live;
	*totaldeadrows = 0;
	ereport(elevel,
			(errmsg("\"%s\": sampled %d rows from %d of %d row groups; %.0f live rows",
					RelationGetRelationName(rel), numrows, st->unit, st->nunits, live)));
	return numrows;
}

static bool
destorAnalyzeForeignTable(Relation relation, AcquireSampleRowsFunc *func, BlockNumber *totalpages)
{
	*func = destor_acquire_sample;
	*totalpages = 1;
	return true;
}

/* ---------------------------------------------------------------------------
 * Modifying: INSERT buffers rows into new segments; DELETE marks rows in
 * per-segment bitmaps, recorded at the end of the statement; UPDATE is a
 * DELETE of the old row and an INSERT of the new one.
 * ------------------------------------------------------------------------- */
typedef struct ModifyState
{
	TableOptions *opts;
	SegmentWriter *writer;		/* INSERT, UPDATE */
	List	   *segments;		/* DELETE, UPDATE: the snapshot's segment list */
	SegmentDirectory **segarr;
	int			nsegs;
	uint8	  **deleting;		/* per segment: rows deleted by this statement */
	AttrNumber	ctid_attno;
	AttrNumber	wholerow_attno;
	bool		copy_progress;	/* a COPY FROM: reported in destor.progress */
} ModifyState;

/*
 * The modifications under way in this backend.  A function called by an
 * INSERT, UPDATE or DELETE of a destor table (or by its triggers) must see
 * the rows that statement changed so far, as with heap: its queries run
 * under snapshots with a later command id.  The statement's deletions are
 * only recorded in the catalog at its end, and its new rows partly only in
 * its writer's memory, so a scan under such a snapshot asks the statement
 * for them (add_pending_changes).  Entries are removed at the end of the
 * statement, or by the abort of the (sub)transaction that made them.
 */
typedef struct PendingModify
{
	Oid			relid;
	CommandId	cid;			/* the statement's command id */
	int			nestlevel;		/* transaction nesting level */
	ModifyState *ms;
} PendingModify;

static List *pending_modifies = NIL;	/* of PendingModify, in TopMemoryContext */

static void
pending_modify_register(Oid relid, CommandId cid, ModifyState *ms)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	PendingModify *pm = palloc(sizeof(PendingModify));

	pm->relid = relid;
	pm->cid = cid;
	pm->nestlevel = GetCurrentTransactionNestLevel();
	pm->ms = ms;
	pending_modifies = lappend(pending_modifies, pm);
	MemoryContextSwitchTo(old);
}

static void
pending_modify_forget(ModifyState *ms)
{
	ListCell   *lc;

	foreach(lc, pending_modifies)
	{
		PendingModify *pm = lfirst(lc);

		if (pm->ms == ms)
		{
			pending_modifies = foreach_delete_current(pending_modifies, lc);
			pfree(pm);
		}
	}
}

static void
pending_modify_xact_callback(XactEvent event, void *arg)
{
	list_free_deep(pending_modifies);
	pending_modifies = NIL;
}

static void
pending_modify_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(lc, pending_modifies)
	{
		PendingModify *pm = lfirst(lc);

		if (pm->nestlevel >= GetCurrentTransactionNestLevel())
		{
			pending_modifies = foreach_delete_current(pending_modifies, lc);
			pfree(pm);
		}
	}
}

static bool
modify_in_progress(Oid relid)
{
	ListCell   *lc;

	foreach(lc, pending_modifies)
		if (((PendingModify *) lfirst(lc))->relid == relid)
			return true;
	return false;
}

/*
 * add_pending_changes: the segments a scan under this snapshot reads, with
 * the changes of statements under way that it must see (those with an
 * earlier command id than the snapshot's): their deletions so far marked
 * in the directories, and the segments and buffered rows they wrote added.
 * Returns the list unchanged when no such change applies.
 */
static List *
add_pending_changes(Relation rel, Snapshot snapshot, List *segments)
{
	ListCell   *lc;

	if (snapshot == InvalidSnapshot || !IsMVCCSnapshot(snapshot))
		return segments;
	foreach(lc, pending_modifies)
	{
		PendingModify *pm = lfirst(lc);
		ModifyState *ms = pm->ms;
		ListCell   *lc2;
		bool		changed = false;

		if (pm->relid != RelationGetRelid(rel) || snapshot->curcid <= pm->cid)
			continue;
		/* deletions so far */
		for (int i = 0; i < ms->nsegs; i++)
		{
			SegmentDirectory *from = ms->segarr[i];

			if (ms->deleting[i] == NULL)
				continue;
			foreach(lc2, segments)
			{
				SegmentDirectory *dir = lfirst(lc2);
				int64		bytes = (dir->row_count + 7) / 8;

				if (dir->segment_no != from->segment_no || dir->mem_chunks)
					continue;
				if (dir->deleted == NULL)
					dir->deleted = palloc0(Max(bytes, 1));
				for (int64 b = 0; b < bytes; b++)
					dir->deleted[b] |= ms->deleting[i][b];
				dir->deleted_count = 0;
				for (int64 r = 0; r < dir->row_count; r++)
					dir->deleted_count += (dir->deleted[r / 8] >> (r % 8)) & 1;
				changed = true;
			}
		}
		/* rows written so far: segments not yet visible, buffered rows */
		if (ms->writer)
		{
			List	   *pending = segment_writer_pending(ms->writer);

			foreach(lc2, pending)
			{
				SegmentDirectory *p = lfirst(lc2);
				ListCell   *lc3;
				bool		seen = false;

				foreach(lc3, segments)
					if (!p->mem_chunks && ((SegmentDirectory *) lfirst(lc3))->segment_no == p->segment_no)
						seen = true;
				if (!seen)
				{
					segments = lappend(segments, p);
					changed = true;
				}
			}
		}
		if (changed)
			segments = list_copy(segments); /* a new list: the caller sees the change */
	}
	return segments;
}

/*
 * segments_changed_since: whether a segment of "mine" is gone from "latest"
 * or has rows deleted there that it has not (both lists in segment order).
 */
static bool
segments_changed_since(List *mine, List *latest)
{
	ListCell   *lc;
	ListCell   *lc2 = list_head(latest);

	foreach(lc, mine)
	{
		SegmentDirectory *dir = lfirst(lc);
		SegmentDirectory *now = NULL;

		while (lc2 && ((SegmentDirectory *) lfirst(lc2))->segment_no < dir->segment_no)
			lc2 = lnext(latest, lc2);
		if (lc2)
			now = lfirst(lc2);
		if (now == NULL || now->segment_no != dir->segment_no ||
			now->deleted_count != dir->deleted_count)
			return true;
	}
	return false;
}

static int
destorIsForeignRelUpdatable(Relation rel)
{
	return (1 << CMD_INSERT) | (1 << CMD_UPDATE) | (1 << CMD_DELETE);
}

static void
destorAddForeignUpdateTargets(PlannerInfo *root, Index rtindex, RangeTblEntry *target_rte,
							  Relation target_relation)
{
	Var		   *var = makeVar(rtindex, SelfItemPointerAttributeNumber, TIDOID, -1, InvalidOid, 0);

	add_row_identity_var(root, var, rtindex, "ctid");
	/* DELETE ... RETURNING returns the old row: fetch it whole */
	if (root->parse->commandType == CMD_DELETE && root->parse->returningList != NIL)
		add_row_identity_var(root, makeWholeRowVar(target_rte, rtindex, 0, false), rtindex,
							 "wholerow");
}

/*
 * DELETE and UPDATE of one table run one at a time (inserts are not held
 * up): the lock is taken while planning, before the statement's snapshot,
 * so a statement that waited sees what the one before it did.
 */
static List *
destorPlanForeignModify(PlannerInfo *root, ModifyTable *plan, Index resultRelation,
						int subplan_index)
{
	RangeTblEntry *rte = planner_rt_fetch(resultRelation, root);

	if (plan->operation == CMD_UPDATE || plan->operation == CMD_DELETE)
		LockRelationOid(rte->relid, ShareUpdateExclusiveLock);
	return NIL;
}

static SegmentWriter *
begin_insert(Relation rel, TableOptions *opts)
{
	return segment_writer_create(rel, opts);
}

static void
destorBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo, List *fdw_private,
						 int subplan_index, int eflags)
{
	CmdType		op = mtstate->operation;
	Relation	rel = rinfo->ri_RelationDesc;
	ModifyState *ms;

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	ms = palloc0(sizeof(ModifyState));
	ms->opts = table_get_options(RelationGetRelid(rel));
	if (op == CMD_INSERT || op == CMD_UPDATE)
		ms->writer = begin_insert(rel, ms->opts);
	if (op == CMD_UPDATE || op == CMD_DELETE)
	{
		EState	   *estate = mtstate->ps.state;
		Plan	   *subplan = outerPlanState(mtstate)->plan;
		ListCell   *lc;

		/*
		 * A cached plan did not lock while planning, and a REPEATABLE READ
		 * snapshot predates the lock: lock now, and if a DELETE, UPDATE or
		 * compaction committed since our snapshot changed a segment we
		 * read, fail as heap does (our deletions would miss the rows it
		 * wrote: a lost update).  The comparison is with the latest
		 * snapshot, not the transaction's (which in REPEATABLE READ is our
		 * own).  Segments added since (inserts) change nothing we delete.
		 */
		LockRelationOid(RelationGetRelid(rel), ShareUpdateExclusiveLock);
		ms->segments = catalog_table_segments(ms->opts->table_id, estate->es_snapshot);
		if (segments_changed_since(ms->segments,
								   catalog_table_segments(ms->opts->table_id, GetLatestSnapshot())))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to concurrent update of destor table \"%s\"",
							RelationGetRelationName(rel)),
					 errhint("Retry the statement.")));

		ms->nsegs = list_length(ms->segments);
		ms->segarr = palloc(sizeof(SegmentDirectory *) * Max(ms->nsegs, 1));
		ms->deleting = palloc0(sizeof(uint8 *) * Max(ms->nsegs, 1));
		foreach(lc, ms->segments)
			ms->segarr[foreach_current_index(lc)] = lfirst(lc);
		ms->ctid_attno = ExecFindJunkAttributeInTlist(subplan->targetlist, "ctid");
		if (!AttributeNumberIsValid(ms->ctid_attno))
			elog(ERROR, "destor: could not find the row identity of \"%s\"", RelationGetRelationName(rel));
		ms->wholerow_attno = ExecFindJunkAttributeInTlist(subplan->targetlist, "wholerow");
	}
	rinfo->ri_FdwState = ms;
	pending_modify_register(RelationGetRelid(rel), mtstate->ps.state->es_output_cid, ms);
}

static TupleTableSlot *
destorExecForeignInsert(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
						TupleTableSlot *planSlot)
{
	ModifyState *ms = rinfo->ri_FdwState;

	slot_getallattrs(slot);
	segment_writer_add(ms->writer, slot->tts_values, slot->tts_isnull);
	progress_add(0, 1);
	return slot;
}

/* Mark the row identified by planSlot's ctid; false if this statement
 * already deleted it (a join can produce a row twice). */
static bool
mark_deleted(ModifyState *ms, TupleTableSlot *planSlot)
{
	bool		isnull;
	Datum		d = ExecGetJunkAttribute(planSlot, ms->ctid_attno, &isnull);
	uint32		seg;
	int64		row;
	SegmentDirectory *dir;

	if (isnull)
		elog(ERROR, "destor: row identity is null");
	table_tid_to_row((ItemPointer) DatumGetPointer(d), &seg, &row);
	if (seg >= (uint32) ms->nsegs || row >= ms->segarr[seg]->row_count)
		elog(ERROR, "destor: row identity (%u, " INT64_FORMAT ") is out of range", seg, row);
	dir = ms->segarr[seg];
	if (ms->deleting[seg] == NULL)
		ms->deleting[seg] = MemoryContextAllocZero(GetMemoryChunkContext(ms),
												   Max((dir->row_count + 7) / 8, 1));
	if ((ms->deleting[seg][row / 8] >> (row % 8)) & 1)
		return false;
	ms->deleting[seg][row / 8] |= (1 << (row % 8));
	return true;
}

static TupleTableSlot *
destorExecForeignDelete(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
						TupleTableSlot *planSlot)
{
	ModifyState *ms = rinfo->ri_FdwState;

	if (!mark_deleted(ms, planSlot))
		return NULL;
	if (AttributeNumberIsValid(ms->wholerow_attno))
	{
		/* RETURNING: the old row */
		bool		isnull;
		Datum		d = ExecGetJunkAttribute(planSlot, ms->wholerow_attno, &isnull);

		ExecClearTuple(slot);
		if (!isnull)
		{
			HeapTupleHeader hdr = DatumGetHeapTupleHeader(d);
			HeapTupleData tup;

			tup.t_len = HeapTupleHeaderGetDatumLength(hdr);
			ItemPointerSetInvalid(&tup.t_self);
			tup.t_tableOid = RelationGetRelid(rinfo->ri_RelationDesc);
			tup.t_data = hdr;
			heap_deform_tuple(&tup, slot->tts_tupleDescriptor, slot->tts_values, slot->tts_isnull);
			ExecStoreVirtualTuple(slot);
		}
	}
	return slot;
}

static TupleTableSlot *
destorExecForeignUpdate(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
						TupleTableSlot *planSlot)
{
	ModifyState *ms = rinfo->ri_FdwState;

	if (!mark_deleted(ms, planSlot))
		return NULL;
	slot_getallattrs(slot);
	segment_writer_add(ms->writer, slot->tts_values, slot->tts_isnull);
	return slot;
}

static void
destorEndForeignModify(EState *estate, ResultRelInfo *rinfo)
{
	ModifyState *ms = rinfo->ri_FdwState;

	if (ms == NULL)
		return;
	pending_modify_forget(ms);
	for (int i = 0; i < ms->nsegs; i++)
		if (ms->deleting[i])
			catalog_insert_deletions(ms->opts->table_id, ms->segarr[i]->segment_no,
									 ms->deleting[i], (ms->segarr[i]->row_count + 7) / 8);
	if (ms->writer)
		segment_writer_finish(ms->writer);
	rinfo->ri_FdwState = NULL;
}

static void
destorBeginForeignInsert(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	ModifyState *ms = palloc0(sizeof(ModifyState));

	ms->opts = table_get_options(RelationGetRelid(rinfo->ri_RelationDesc));
	ms->writer = begin_insert(rinfo->ri_RelationDesc, ms->opts);
	rinfo->ri_FdwState = ms;
	pending_modify_register(RelationGetRelid(rinfo->ri_RelationDesc),
							mtstate->ps.state->es_output_cid, ms);
	/* COPY FROM builds a ModifyTableState without a plan; tuple routing has one */
	if (mtstate->ps.plan == NULL)
	{
		progress_start("copy", RelationGetRelid(rinfo->ri_RelationDesc), NULL);
		progress_set_phase("writing");
		ms->copy_progress = true;
	}
}

static void
destorEndForeignInsert(EState *estate, ResultRelInfo *rinfo)
{
	ModifyState *ms = rinfo->ri_FdwState;
	bool		copy_progress = ms && ms->copy_progress;

	destorEndForeignModify(estate, rinfo);
	if (copy_progress)
		progress_end();
}

/* ---------------------------------------------------------------------------
 * TRUNCATE and DROP: objects go when the transaction commits
 * ------------------------------------------------------------------------- */
static void
forget_table_data(const uint8 table_id[CODEC_OBJID_LEN])
{
	List	   *objects = catalog_delete_table_segments(table_id);
	ListCell   *lc;

	foreach(lc, objects)
	{
		uint8	   *id = lfirst(lc);
		ObjectMeta *meta = catalog_get_object(id, true);

		if (meta == NULL)
			continue;
		catalog_delete_object(id);
		object_delete_at_commit(meta);
	}
}

static void
destorExecForeignTruncate(List *rels, DropBehavior behavior, bool restart_seqs)
{
	ListCell   *lc;

	foreach(lc, rels)
	{
		Relation	rel = lfirst(lc);
		TableOptions *opts = table_get_options(RelationGetRelid(rel));

		forget_table_data(opts->table_id);
	}
}

/* destor.forget_table(table_id uuid): called by the sql_drop event trigger. */
Datum
destor_forget_table(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *u = PG_GETARG_UUID_P(0);

	forget_table_data(u->data);
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------------
 * Compaction: rewrite small segments and segments with many deleted rows
 * into full ones.  Readers are not blocked (they keep reading the old
 * segments under their snapshots); the old objects are retired, not
 * deleted, and destor.cleanup_orphans() removes their shards once the
 * grace period has passed.  DELETE/UPDATE wait (same lock as theirs).
 * ------------------------------------------------------------------------- */
PG_FUNCTION_INFO_V1(destor_compact);

Datum
destor_compact(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Relation	rel;
	TableOptions *opts;
	List	   *segments;
	List	   *chosen = NIL;
	List	   *small = NIL;
	ListCell   *lc;
	int64		kept = 0;
	int64		dropped = 0;
	int			written_before;
	int			written_after;
	TupleDesc	tupdesc;
	Datum		result[4];
	bool		nulls[4] = {false, false, false, false};

	/* ownership first: a role that may not compact must not queue for the lock */
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)),
					   get_rel_name(relid));
	rel = relation_open(relid, ShareUpdateExclusiveLock);
	if (rel->rd_rel->relkind != RELKIND_FOREIGN_TABLE ||
		strcmp(GetForeignDataWrapper(GetForeignServer(GetForeignTable(relid)->serverid)->fdwid)->fdwname,
			   "destor") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a destor table", RelationGetRelationName(rel))));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_FOREIGN_TABLE, RelationGetRelationName(rel));
	opts = table_get_options(relid);

	/* after the lock: a fresh look at the segments */
	segments = catalog_table_segments(opts->table_id, NULL);
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);
		int64		live = dir->row_count - dir->deleted_count;

		if (dir->deleted_count * 5 > dir->row_count)
			chosen = lappend(chosen, dir);		/* more than 20% deleted */
		else if (live < opts->segment_rows / 2)
			small = lappend(small, dir);
	}
	if (list_length(small) >= 2)
		chosen = list_concat(chosen, small);

	written_before = list_length(segments);
	if (chosen != NIL)
	{
		SegmentWriter *w;
		DestorScan *st;
		Datum	   *values;
		bool	   *isnull;
		int64		rows_total = 0;

		foreach(lc, chosen)
			rows_total += ((SegmentDirectory *) lfirst(lc))->row_count;
		progress_start("compact", relid, NULL);
		progress_set_totals(-1, rows_total);
		progress_set_phase("rewriting segments");
		w = segment_writer_create(rel, opts);
		st = whole_row_scan(rel, opts, chosen);
		values = palloc(sizeof(Datum) * Max(st->natts, 1));
		isnull = palloc(sizeof(bool) * Max(st->natts, 1));

		while (next_rowgroup(st))
		{
			for (st->row = 0; st->row < st->rg_rows; st->row++)
			{
				if (whole_row_current(st, values, isnull))
				{
					segment_writer_add(w, values, isnull);
					kept++;
				}
				else
					dropped++;
			}
			progress_add(0, st->rg_rows);
			CHECK_FOR_INTERRUPTS();
		}
		whole_row_scan_end(st);
		progress_set_phase("writing the last segment");
		segment_writer_finish(w);
		foreach(lc, chosen)
		{
			SegmentDirectory *dir = lfirst(lc);

			catalog_retire_segment(opts->table_id, dir->segment_no, dir->object_id);
		}
		progress_end();
	}
	written_after = list_length(catalog_table_segments(opts->table_id, NULL));
	relation_close(rel, NoLock);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	result[0] = Int32GetDatum(written_before);
	result[1] = Int32GetDatum(written_after);
	result[2] = Int64GetDatum(kept);
	result[3] = Int64GetDatum(dropped);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, result, nulls)));
}

Datum
destor_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *r = makeNode(FdwRoutine);

	r->GetForeignRelSize = destorGetForeignRelSize;
	r->GetForeignPaths = destorGetForeignPaths;
	r->GetForeignPlan = destorGetForeignPlan;
	r->BeginForeignScan = destorBeginForeignScan;
	r->IterateForeignScan = destorIterateForeignScan;
	r->ReScanForeignScan = destorReScanForeignScan;
	r->EndForeignScan = destorEndForeignScan;
	r->ExplainForeignScan = destorExplainForeignScan;
	r->IsForeignScanParallelSafe = destorIsForeignScanParallelSafe;
	r->EstimateDSMForeignScan = destorEstimateDSMForeignScan;
	r->InitializeDSMForeignScan = destorInitializeDSMForeignScan;
	r->ReInitializeDSMForeignScan = destorReInitializeDSMForeignScan;
	r->InitializeWorkerForeignScan = destorInitializeWorkerForeignScan;
	r->ShutdownForeignScan = destorShutdownForeignScan;
	r->IsForeignRelUpdatable = destorIsForeignRelUpdatable;
	r->BeginForeignModify = destorBeginForeignModify;
	r->ExecForeignInsert = destorExecForeignInsert;
	r->ExecForeignUpdate = destorExecForeignUpdate;
	r->ExecForeignDelete = destorExecForeignDelete;
	r->AddForeignUpdateTargets = destorAddForeignUpdateTargets;
	r->PlanForeignModify = destorPlanForeignModify;
	r->EndForeignModify = destorEndForeignModify;
	r->BeginForeignInsert = destorBeginForeignInsert;
	r->EndForeignInsert = destorEndForeignInsert;
	r->ExecForeignTruncate = destorExecForeignTruncate;
	r->AnalyzeForeignTable = destorAnalyzeForeignTable;
	PG_RETURN_POINTER(r);
}

void
table_fdw_init(void)
{
	RegisterXactCallback(pending_modify_xact_callback, NULL);
	RegisterSubXactCallback(pending_modify_subxact_callback, NULL);
}
