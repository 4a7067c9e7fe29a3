/*
 * tableam.c — the table access method destor (issue 14, stage 1).
 *
 * CREATE TABLE t (...) USING destor stores t's rows as the segments the
 * destor foreign tables use (src/table): the same writer, catalog rows and
 * reader, so compression, encryption, erasure coding, the shared cache and
 * the metadata log come with them.  What differs is the table's identity:
 *
 *   - destor.am_tables maps the relation's relfilenode to a table_id (the
 *     key of its rows in destor.segments) and its pool.  Keyed by
 *     relfilenode, as heap's files are, so that what moves a relation's
 *     storage moves its data with it: TRUNCATE gives the relation a new
 *     relfilenode, hence a new empty table_id (the old one's segments are
 *     forgotten in the same transaction, their objects deleted at commit);
 *     ALTER TABLE's rewrite writes the new table_id and swaps relfilenodes.
 *     These table_ids are not in destor.tables (the foreign tables'
 *     bindings), so cleanup_orphans' collection of lost foreign tables
 *     never takes them.
 *   - the pool is destor.default_pool (a GUC) when the table is created,
 *     kept in destor.am_tables: SET destor.default_pool = 'archive';
 *     CREATE TABLE ... USING destor.  A GUC works unchanged with CREATE
 *     TABLE ... LIKE, CREATE TABLE AS, partitions created by tools (pg_partman)
 *     and pg_restore (SET before), where a function taking the table could
 *     only be called after it exists, and an empty table cannot be made
 *     without a pool.
 *
 * Writes: rows are buffered by one SegmentWriter per (relation,
 * subtransaction) and written when a segment fills and at the end of the
 * statement (ExecutorEnd, or finish_bulk_insert for COPY, CREATE TABLE AS
 * and ALTER TABLE's rewrite; pre-commit catches any other path).  Their
 * catalog rows commit with the transaction: until then no other snapshot
 * sees them, and after an abort (of the transaction or of the
 * subtransaction that wrote them) neither do they; their objects are
 * deleted by the object layer.  Statement, not transaction, buffering: the
 * metadata log turns the transaction's catalog changes into its log object
 * at pre-commit, and a segment recorded after that would be missing from
 * it; a statement's own functions read its buffered rows as the foreign
 * tables' do (segment_writer_pending).
 *
 * Reads: a scan reads the segments its snapshot sees plus the pending rows
 * of this backend's writers of the relation, with the foreign tables'
 * whole-row reader.  Stage 1 has no row identity that survives the
 * snapshot (the tid is the segment's position in the scan's list), so
 * everything that fetches rows by tid (indexes, UPDATE, DELETE, row locks,
 * AFTER ROW triggers, TID scans) raises FEATURE_NOT_SUPPORTED; see
 * docs/ARCHITECTURE.md, "Table access method", for what comes next.
 */
#include "postgres.h"

#include <math.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/multixact.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "catalog/storage.h"
#include "commands/defrem.h"
#include "commands/vacuum.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "optimizer/paths.h"
#include "optimizer/plancat.h"
#include "storage/smgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "destor/catalog.h"
#include "destor/tableam.h"
#include "../table/table_internal.h"

PG_FUNCTION_INFO_V1(destor_tableam_handler);

static char *default_pool = NULL;

static ExecutorEnd_hook_type prev_executor_end = NULL;
static object_access_hook_type prev_object_access = NULL;
static set_rel_pathlist_hook_type prev_set_rel_pathlist = NULL;
static const TableAmRoutine destor_am_methods;

static void am_not_supported(const char *what) pg_attribute_noreturn();

/* ---------------------------------------------------------------------------
 * destor.am_tables
 * ------------------------------------------------------------------------- */

/* The table_id and pool of the relfilenode; false if it has none. */
static bool
am_lookup(Oid relfilenode, TableOptions *opts)
{
	CatalogUser cu;
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	bool		found;
	MemoryContext caller = CurrentMemoryContext;

	catalog_enter(&cu);
	values[0] = ObjectIdGetDatum(relfilenode);
	catalog_exec("SELECT table_id, pool FROM destor.am_tables WHERE relfilenode = $1",
				 1, types, values, NULL, SPI_OK_SELECT);
	found = SPI_processed > 0;
	if (found && opts)
	{
		bool		isnull;
		Datum		pool = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							 opts->table_id);
		opts->has_table_id = true;
		opts->pool = MemoryContextStrdup(caller, NameStr(*DatumGetName(pool)));
		opts->segment_rows = TABLE_DEFAULT_SEGMENT_ROWS;
		opts->row_group_rows = TABLE_DEFAULT_ROW_GROUP_ROWS;
		opts->compression_level = TABLE_DEFAULT_COMPRESSION_LEVEL;
	}
	catalog_leave(&cu);
	return found;
}

static TableOptions *
am_options(Relation rel)
{
	TableOptions *opts = palloc0(sizeof(TableOptions));

	if (!am_lookup(rel->rd_node.relNode, opts))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("destor table \"%s\" has no storage in destor.am_tables",
						RelationGetRelationName(rel)),
				 errdetail("Its relfilenode %u names no destor data.", rel->rd_node.relNode),
				 errhint("Create the table again with CREATE TABLE ... USING destor.")));
	return opts;
}

static void
am_forget(Oid relfilenode)
{
	TableOptions opts = {0};
	CatalogUser cu;
	Oid			types[1] = {OIDOID};
	Datum		values[1];

	if (!am_lookup(relfilenode, &opts))
		return;
	forget_table_data(opts.table_id);
	catalog_enter(&cu);
	values[0] = ObjectIdGetDatum(relfilenode);
	catalog_exec("DELETE FROM destor.am_tables WHERE relfilenode = $1", 1, types, values, NULL,
				 SPI_OK_DELETE);
	catalog_leave(&cu);
}

static void
am_create(Oid relfilenode, const char *pool)
{
	CatalogUser cu;
	Oid			types[2] = {OIDOID, NAMEOID};
	Datum		values[2];

	catalog_enter(&cu);
	values[0] = ObjectIdGetDatum(relfilenode);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(pool));
	catalog_exec("INSERT INTO destor.am_tables (relfilenode, table_id, pool) "
				 "VALUES ($1, pg_catalog.gen_random_uuid(), $2)", 2, types, values, NULL,
				 SPI_OK_INSERT);
	catalog_leave(&cu);
}

/* ---------------------------------------------------------------------------
 * Writers: one per (relation, subtransaction), in TopTransactionContext
 * ------------------------------------------------------------------------- */
typedef struct AmWriter
{
	Oid			relid;
	SubTransactionId subid;
	CommandId	cid;			/* of the statement writing */
	Relation	rel;			/* a reference held by the top transaction */
	TableOptions *opts;
	SegmentWriter *writer;
} AmWriter;

static List *am_writers = NIL;
static bool am_callbacks = false;

static void
am_writer_release(AmWriter *aw, bool finish)
{
	ResourceOwner saved = CurrentResourceOwner;

	if (finish)
		segment_writer_finish(aw->writer);
	CurrentResourceOwner = TopTransactionResourceOwner;
	RelationDecrementReferenceCount(aw->rel);
	CurrentResourceOwner = saved;
}

/*
 * Write the rows of the writers of relid (InvalidOid: of every relation)
 * that belong to the current subtransaction, and to the statement of
 * command id cid (InvalidCommandId: any); drop the writers if discard
 * (TRUNCATE, DROP), without writing.
 */
static void
am_flush_writers(Oid relid, CommandId cid, bool discard)
{
	SubTransactionId cur = GetCurrentSubTransactionId();
	ListCell   *lc;

	foreach(lc, am_writers)
	{
		AmWriter   *aw = lfirst(lc);

		if (OidIsValid(relid) && aw->relid != relid)
			continue;
		if (!discard && (aw->subid != cur || (cid != InvalidCommandId && aw->cid != cid)))
			continue;
		am_writers = foreach_delete_current(am_writers, lc);
		am_writer_release(aw, !discard);
	}
}

static void
am_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* statements flush at their end: only a path without one is left */
			while (am_writers != NIL)
			{
				AmWriter   *aw = linitial(am_writers);

				am_writers = list_delete_first(am_writers);
				am_writer_release(aw, true);
			}
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (am_writers != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction with rows of a destor table not yet written")));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			/* memory and relcache references go with the transaction */
			am_writers = NIL;
			break;
		default:
			break;
	}
}

static void
am_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	foreach(lc, am_writers)
	{
		AmWriter   *aw = lfirst(lc);

		if (aw->subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			aw->subid = parentSubid;
		else if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			/* its segments' catalog rows are rolled back with it */
			am_writers = foreach_delete_current(am_writers, lc);
			am_writer_release(aw, false);
		}
	}
}

static AmWriter *
am_writer_for(Relation rel, CommandId cid)
{
	SubTransactionId cur = GetCurrentSubTransactionId();
	ListCell   *lc;
	MemoryContext old;
	ResourceOwner saved;
	AmWriter   *aw;

	foreach(lc, am_writers)
	{
		aw = lfirst(lc);
		if (aw->relid == RelationGetRelid(rel) && aw->subid == cur && aw->cid == cid)
			return aw;
	}
	if (!am_callbacks)
	{
		RegisterXactCallback(am_xact_callback, NULL);
		RegisterSubXactCallback(am_subxact_callback, NULL);
		am_callbacks = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	aw = palloc0(sizeof(AmWriter));
	aw->relid = RelationGetRelid(rel);
	aw->subid = cur;
	aw->cid = cid;
	aw->opts = am_options(rel);
	saved = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	RelationIncrementReferenceCount(rel);
	CurrentResourceOwner = saved;
	aw->rel = rel;
	aw->writer = segment_writer_create(rel, aw->opts);
	am_writers = lappend(am_writers, aw);
	MemoryContextSwitchTo(old);
	return aw;
}

/*
 * The end of a statement writes the rows it buffered.  Only its own: a
 * statement it called (a function's query) ends while it still writes, and
 * rows recorded in the catalog now would be invisible to the snapshots of
 * its later function calls that were taken before.
 */
static void
am_executor_end(QueryDesc *queryDesc)
{
	CommandId	cid = queryDesc->estate ? queryDesc->estate->es_output_cid : InvalidCommandId;
	bool		writes = queryDesc->operation != CMD_SELECT ||
		queryDesc->plannedstmt->hasModifyingCTE;

	if (prev_executor_end)
		prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (am_writers != NIL && writes && cid != InvalidCommandId)
		am_flush_writers(InvalidOid, cid, false);
}

/* ---------------------------------------------------------------------------
 * Scans
 * ------------------------------------------------------------------------- */
typedef struct AmScanDesc
{
	TableScanDescData base;
	MemoryContext cxt;
	TableOptions *opts;
	List	   *segments;
	DestorScan *st;
	bool		have_rg;
} AmScanDesc;

/*
 * The segments the snapshot sees, and the rows of this backend's writers of
 * the relation that it does not see yet (written by its own statement).
 */
static List *
am_segments(Relation rel, TableOptions *opts, Snapshot snapshot)
{
	Snapshot	snap = (snapshot != InvalidSnapshot && IsMVCCSnapshot(snapshot)) ?
		snapshot : InvalidSnapshot;
	List	   *segments = catalog_table_segments(opts->table_id, snap);
	SubTransactionId cur = GetCurrentSubTransactionId();
	ListCell   *lc;

	foreach(lc, am_writers)
	{
		AmWriter   *aw = lfirst(lc);
		ListCell   *lc2;

		if (aw->relid != RelationGetRelid(rel))
			continue;
		if (aw->subid != cur)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot read destor table \"%s\" in a subtransaction while its statement writes it",
							RelationGetRelationName(rel)),
					 errdetail("The rows the statement wrote before the subtransaction began are still buffered."),
					 errhint("Read the table in another statement, or outside the exception block.")));
		foreach(lc2, segment_writer_pending(aw->writer))
		{
			SegmentDirectory *p = lfirst(lc2);
			ListCell   *lc3;
			bool		seen = false;

			if (!p->mem_chunks)
				foreach(lc3, segments)
					if (((SegmentDirectory *) lfirst(lc3))->segment_no == p->segment_no)
						seen = true;
			if (!seen)
				segments = lappend(segments, p);
		}
	}
	return segments;
}

static void
am_scan_start(AmScanDesc *s)
{
	MemoryContext old = MemoryContextSwitchTo(s->cxt);
	Snapshot	snap = s->base.rs_snapshot;

	s->st = whole_row_scan(s->base.rs_rd, s->opts, s->segments);
	s->st->snapshot = (snap != InvalidSnapshot && IsMVCCSnapshot(snap)) ? snap : InvalidSnapshot;
	s->have_rg = false;
	MemoryContextSwitchTo(old);
}

/*
 * Columns added after the row's segment was written (ALTER TABLE ... ADD
 * COLUMN without a rewrite): their default, as heap's attmissingval gives.
 */
static void
am_missing_columns(DestorScan *st, TupleTableSlot *slot)
{
	SegmentDirectory *dir = st->units[st->unit - 1].dir;
	TupleDesc	desc = RelationGetDescr(st->rel);

	for (int a = dir->ncols; a < st->natts; a++)
		if (!TupleDescAttr(desc, a)->attisdropped)
			slot->tts_values[a] = getmissingattr(desc, a + 1, &slot->tts_isnull[a]);
}

static TableScanDesc
am_scan_begin(Relation rel, Snapshot snapshot, int nkeys, struct ScanKeyData *key,
			  ParallelTableScanDesc pscan, uint32 flags)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "destor table scan",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	AmScanDesc *s = palloc0(sizeof(AmScanDesc));

	if (pscan != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("parallel scans of destor table \"%s\" are not supported yet",
						RelationGetRelationName(rel)),
				 errhint("SET max_parallel_workers_per_gather = 0.")));
	s->base.rs_rd = rel;
	s->base.rs_snapshot = snapshot;
	s->base.rs_nkeys = nkeys;
	s->base.rs_flags = flags;
	s->base.rs_parallel = pscan;
	s->cxt = cxt;
	s->opts = am_options(rel);
	s->segments = am_segments(rel, s->opts, snapshot);
	MemoryContextSwitchTo(old);
	am_scan_start(s);
	return &s->base;
}

static void
am_scan_end(TableScanDesc sscan)
{
	AmScanDesc *s = (AmScanDesc *) sscan;

	whole_row_scan_end(s->st);
	if (sscan->rs_flags & SO_TEMP_SNAPSHOT)
		UnregisterSnapshot(sscan->rs_snapshot);
	MemoryContextDelete(s->cxt);
}

static void
am_scan_rescan(TableScanDesc sscan, struct ScanKeyData *key, bool set_params,
			   bool allow_strat, bool allow_sync, bool allow_pagemode)
{
	AmScanDesc *s = (AmScanDesc *) sscan;

	whole_row_scan_end(s->st);
	am_scan_start(s);
}

static bool
am_scan_getnextslot(TableScanDesc sscan, ScanDirection direction, TupleTableSlot *slot)
{
	AmScanDesc *s = (AmScanDesc *) sscan;
	DestorScan *st = s->st;

	if (ScanDirectionIsBackward(direction))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("backward scans of destor tables are not supported"),
				 errhint("Declare the cursor without SCROLL.")));
	if (slot->tts_tupleDescriptor->natts != st->natts)
		am_not_supported("rewriting the table (ALTER TABLE ... ADD COLUMN with a volatile default)");
	ExecClearTuple(slot);
	for (;;)
	{
		if (s->have_rg && st->row < st->rg_rows)
		{
			int64		pos = st->cur_first_row + st->row;
			bool		live = whole_row_current(st, slot->tts_values, slot->tts_isnull);

			st->row++;
			if (!live)
				continue;
			am_missing_columns(st, slot);
			ExecStoreVirtualTuple(slot);
			table_row_to_tid(st->cur_seg_index, pos, &slot->tts_tid);
			slot->tts_tableOid = RelationGetRelid(sscan->rs_rd);
			return true;
		}
		CHECK_FOR_INTERRUPTS();
		if (!next_rowgroup(st))
			return false;
		s->have_rg = true;
	}
}

static const TupleTableSlotOps *
am_slot_callbacks(Relation rel)
{
	return &TTSOpsVirtual;
}

/* ---------------------------------------------------------------------------
 * What stage 1 does not do: a clear error
 * ------------------------------------------------------------------------- */
static void
am_not_supported(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s is not supported on destor tables yet", what),
			 errdetail("Tables USING destor have no row identity that survives a statement yet."),
			 errhint("Use a heap table, or a destor foreign table (CREATE FOREIGN TABLE ... SERVER pool).")));
}

/*
 * The planner makes no parallel plans of destor tables (set_rel_pathlist
 * hook below): a parallel scan is a parallel index build.
 */
static Size
am_parallelscan_estimate(Relation rel)
{
	am_not_supported("an index (and so a primary key or unique constraint) or a parallel scan");
}

static Size
am_parallelscan_initialize(Relation rel, ParallelTableScanDesc pscan)
{
	return table_block_parallelscan_initialize(rel, pscan);
}

static void
am_parallelscan_reinitialize(Relation rel, ParallelTableScanDesc pscan)
{
	table_block_parallelscan_reinitialize(rel, pscan);
}

static struct IndexFetchTableData *
am_index_fetch_begin(Relation rel)
{
	am_not_supported("an index");
}

static void
am_index_fetch_reset(struct IndexFetchTableData *data)
{
}

static void
am_index_fetch_end(struct IndexFetchTableData *data)
{
}

static bool
am_index_fetch_tuple(struct IndexFetchTableData *scan, ItemPointer tid, Snapshot snapshot,
					 TupleTableSlot *slot, bool *call_again, bool *all_dead)
{
	am_not_supported("an index");
}

static bool
am_tuple_fetch_row_version(Relation rel, ItemPointer tid, Snapshot snapshot, TupleTableSlot *slot)
{
	am_not_supported("fetching a row by its tid (AFTER ROW triggers, foreign keys, TID scans)");
}

static bool
am_tuple_tid_valid(TableScanDesc scan, ItemPointer tid)
{
	am_not_supported("a TID scan");
}

static void
am_tuple_get_latest_tid(TableScanDesc scan, ItemPointer tid)
{
	am_not_supported("fetching a row by its tid");
}

static bool
am_tuple_satisfies_snapshot(Relation rel, TupleTableSlot *slot, Snapshot snapshot)
{
	am_not_supported("checking a row's visibility");
}

static TransactionId
am_index_delete_tuples(Relation rel, TM_IndexDeleteOp *delstate)
{
	am_not_supported("an index");
}

/* ---------------------------------------------------------------------------
 * Inserts
 * ------------------------------------------------------------------------- */
static void
am_tuple_insert(Relation rel, TupleTableSlot *slot, CommandId cid, int options,
				struct BulkInsertStateData *bistate)
{
	AmWriter   *aw;
	int64		n;

	if (IsInParallelMode())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write destor table \"%s\" from a parallel plan",
						RelationGetRelationName(rel)),
				 errdetail("Its rows are recorded in destor's catalog, which a parallel operation cannot write."),
				 errhint("SET max_parallel_workers_per_gather = 0 for CREATE TABLE ... AS.")));
	aw = am_writer_for(rel, cid);
	n = segment_writer_rows(aw->writer);

	slot_getallattrs(slot);
	segment_writer_add(aw->writer, slot->tts_values, slot->tts_isnull);
	/* not a stable identity yet (stage 1): indexes are refused */
	ItemPointerSet(&slot->tts_tid, (BlockNumber) (n >> 15), (OffsetNumber) ((n & 0x7FFF) | 0x8000));
	slot->tts_tableOid = RelationGetRelid(rel);
}

static void
am_multi_insert(Relation rel, TupleTableSlot **slots, int nslots, CommandId cid, int options,
				struct BulkInsertStateData *bistate)
{
	for (int i = 0; i < nslots; i++)
	{
		CHECK_FOR_INTERRUPTS();
		am_tuple_insert(rel, slots[i], cid, options, bistate);
	}
}

static void
am_finish_bulk_insert(Relation rel, int options)
{
	am_flush_writers(RelationGetRelid(rel), InvalidCommandId, false);
}

static void
am_tuple_insert_speculative(Relation rel, TupleTableSlot *slot, CommandId cid, int options,
							struct BulkInsertStateData *bistate, uint32 specToken)
{
	am_not_supported("INSERT ... ON CONFLICT");
}

static void
am_tuple_complete_speculative(Relation rel, TupleTableSlot *slot, uint32 specToken, bool succeeded)
{
	am_not_supported("INSERT ... ON CONFLICT");
}

static TM_Result
am_tuple_delete(Relation rel, ItemPointer tid, CommandId cid, Snapshot snapshot,
				Snapshot crosscheck, bool wait, TM_FailureData *tmfd, bool changingPart)
{
	am_not_supported("DELETE");
}

static TM_Result
am_tuple_update(Relation rel, ItemPointer otid, TupleTableSlot *slot, CommandId cid,
				Snapshot snapshot, Snapshot crosscheck, bool wait, TM_FailureData *tmfd,
				LockTupleMode *lockmode, bool *update_indexes)
{
	am_not_supported("UPDATE");
}

static TM_Result
am_tuple_lock(Relation rel, ItemPointer tid, Snapshot snapshot, TupleTableSlot *slot,
			  CommandId cid, LockTupleMode mode, LockWaitPolicy wait_policy, uint8 flags,
			  TM_FailureData *tmfd)
{
	am_not_supported("locking rows (SELECT ... FOR UPDATE/SHARE)");
}

/* ---------------------------------------------------------------------------
 * Storage: create, truncate, copy
 * ------------------------------------------------------------------------- */
static void
am_relation_set_new_filenode(Relation rel, const RelFileNode *newrnode, char persistence,
							 TransactionId *freezeXid, MultiXactId *minmulti)
{
	TableOptions old = {0};
	const char *pool;
	SMgrRelation srel;

	if (persistence != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("destor tables cannot be temporary or unlogged"),
				 errdetail("Their segments are durable on the pool's providers."),
				 errhint("Create a heap table for temporary or unlogged data.")));
	if (rel->rd_node.relNode != newrnode->relNode && am_lookup(rel->rd_node.relNode, &old))
	{
		/* TRUNCATE: the old data goes, the pool stays */
		pool = old.pool;
		am_flush_writers(RelationGetRelid(rel), InvalidCommandId, true);
		am_forget(rel->rd_node.relNode);
	}
	else
	{
		if (default_pool == NULL || default_pool[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("no pool for destor table \"%s\"", RelationGetRelationName(rel)),
					 errdetail("A table USING destor stores its rows on the pool named by destor.default_pool."),
					 errhint("SET destor.default_pool = 'name of a destor pool' before CREATE TABLE.")));
		pool = default_pool;
		(void) pool_lookup(pool, true);
	}
	am_create(newrnode->relNode, pool);

	/* an empty file, as heap's: PostgreSQL expects the relation to have one */
	srel = RelationCreateStorage(*newrnode, persistence, true);
	smgrclose(srel);
	*freezeXid = RecentXmin;
	*minmulti = GetOldestMultiXactId();
}

static void
am_relation_nontransactional_truncate(Relation rel)
{
	TableOptions opts = {0};

	/* TRUNCATE of a table created by this transaction: its catalog rows
	 * go with it if the transaction aborts */
	am_flush_writers(RelationGetRelid(rel), InvalidCommandId, true);
	if (am_lookup(rel->rd_node.relNode, &opts))
		forget_table_data(opts.table_id);
}

static void
am_relation_copy_data(Relation rel, const RelFileNode *newrnode)
{
	am_not_supported("ALTER TABLE ... SET TABLESPACE");
}

static void
am_relation_copy_for_cluster(Relation OldTable, Relation NewTable, Relation OldIndex,
							 bool use_sort, TransactionId OldestXmin, TransactionId *xid_cutoff,
							 MultiXactId *multi_cutoff, double *num_tuples,
							 double *tups_vacuumed, double *tups_recently_dead)
{
	am_not_supported("CLUSTER and VACUUM FULL");
}

static void
am_relation_vacuum(Relation rel, struct VacuumParams *params, BufferAccessStrategy bstrategy)
{
	/* nothing to reclaim: no DELETE or UPDATE yet */
}

/*
 * ANALYZE: the relation is one block of every row (as Citus columnar
 * does): the first block returns every row and acquire_sample_rows keeps a
 * random sample of them; totalrows is then exact.
 */
static bool
am_scan_analyze_next_block(TableScanDesc scan, BlockNumber blockno, BufferAccessStrategy bstrategy)
{
	return blockno == 0;
}

static bool
am_scan_analyze_next_tuple(TableScanDesc scan, TransactionId OldestXmin, double *liverows,
						   double *deadrows, TupleTableSlot *slot)
{
	if (!am_scan_getnextslot(scan, ForwardScanDirection, slot))
		return false;
	(*liverows)++;
	return true;
}

static double
am_index_build_range_scan(Relation table_rel, Relation index_rel, struct IndexInfo *index_info,
						  bool allow_sync, bool anyvisible, bool progress,
						  BlockNumber start_blockno, BlockNumber numblocks,
						  IndexBuildCallback callback, void *callback_state, TableScanDesc scan)
{
	am_not_supported("an index (and so a primary key or unique constraint)");
}

static void
am_index_validate_scan(Relation table_rel, Relation index_rel, struct IndexInfo *index_info,
					   Snapshot snapshot, struct ValidateIndexState *state)
{
	am_not_supported("an index");
}

static uint64
am_relation_size(Relation rel, ForkNumber forkNumber)
{
	TableOptions opts = {0};

	if (forkNumber != MAIN_FORKNUM || !am_lookup(rel->rd_node.relNode, &opts))
		return 0;
	return catalog_table_row_count(opts.table_id) > 0 ? BLCKSZ : 0;
}

static bool
am_relation_needs_toast_table(Relation rel)
{
	return false;
}

static void
am_relation_estimate_size(Relation rel, int32 *attr_widths, BlockNumber *pages, double *tuples,
						  double *allvisfrac)
{
	TableOptions opts = {0};
	double		rows = 0;

	if (am_lookup(rel->rd_node.relNode, &opts))
		rows = (double) catalog_table_row_count(opts.table_id);
	*tuples = rows;
	*pages = (BlockNumber) Max(1.0, ceil(rows * get_rel_data_width(rel, attr_widths) / BLCKSZ));
	*allvisfrac = 0;
}

static bool
am_scan_bitmap_next_block(TableScanDesc scan, struct TBMIterateResult *tbmres)
{
	am_not_supported("a bitmap scan");
}

static bool
am_scan_bitmap_next_tuple(TableScanDesc scan, struct TBMIterateResult *tbmres, TupleTableSlot *slot)
{
	am_not_supported("a bitmap scan");
}

static bool
am_scan_sample_next_block(TableScanDesc scan, struct SampleScanState *scanstate)
{
	am_not_supported("TABLESAMPLE");
}

static bool
am_scan_sample_next_tuple(TableScanDesc scan, struct SampleScanState *scanstate, TupleTableSlot *slot)
{
	am_not_supported("TABLESAMPLE");
}

static const TableAmRoutine destor_am_methods = {
	.type = T_TableAmRoutine,
	.slot_callbacks = am_slot_callbacks,
	.scan_begin = am_scan_begin,
	.scan_end = am_scan_end,
	.scan_rescan = am_scan_rescan,
	.scan_getnextslot = am_scan_getnextslot,
	.parallelscan_estimate = am_parallelscan_estimate,
	.parallelscan_initialize = am_parallelscan_initialize,
	.parallelscan_reinitialize = am_parallelscan_reinitialize,
	.index_fetch_begin = am_index_fetch_begin,
	.index_fetch_reset = am_index_fetch_reset,
	.index_fetch_end = am_index_fetch_end,
	.index_fetch_tuple = am_index_fetch_tuple,
	.tuple_fetch_row_version = am_tuple_fetch_row_version,
	.tuple_tid_valid = am_tuple_tid_valid,
	.tuple_get_latest_tid = am_tuple_get_latest_tid,
	.tuple_satisfies_snapshot = am_tuple_satisfies_snapshot,
	.index_delete_tuples = am_index_delete_tuples,
	.tuple_insert = am_tuple_insert,
	.tuple_insert_speculative = am_tuple_insert_speculative,
	.tuple_complete_speculative = am_tuple_complete_speculative,
	.multi_insert = am_multi_insert,
	.tuple_delete = am_tuple_delete,
	.tuple_update = am_tuple_update,
	.tuple_lock = am_tuple_lock,
	.finish_bulk_insert = am_finish_bulk_insert,
	.relation_set_new_filenode = am_relation_set_new_filenode,
	.relation_nontransactional_truncate = am_relation_nontransactional_truncate,
	.relation_copy_data = am_relation_copy_data,
	.relation_copy_for_cluster = am_relation_copy_for_cluster,
	.relation_vacuum = am_relation_vacuum,
	.scan_analyze_next_block = am_scan_analyze_next_block,
	.scan_analyze_next_tuple = am_scan_analyze_next_tuple,
	.index_build_range_scan = am_index_build_range_scan,
	.index_validate_scan = am_index_validate_scan,
	.relation_size = am_relation_size,
	.relation_needs_toast_table = am_relation_needs_toast_table,
	.relation_estimate_size = am_relation_estimate_size,
	.scan_bitmap_next_block = am_scan_bitmap_next_block,
	.scan_bitmap_next_tuple = am_scan_bitmap_next_tuple,
	.scan_sample_next_block = am_scan_sample_next_block,
	.scan_sample_next_tuple = am_scan_sample_next_tuple,
};

Datum
destor_tableam_handler(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(&destor_am_methods);
}

/* ---------------------------------------------------------------------------
 * Hooks: DROP forgets the data; no parallel plans
 * ------------------------------------------------------------------------- */
static bool
is_destor_am(Oid amoid)
{
	char	   *name = OidIsValid(amoid) ? get_am_name(amoid) : NULL;

	return name != NULL && strcmp(name, "destor") == 0;
}

/*
 * DROP TABLE (and the internal drop of ALTER TABLE's rewrite, which takes
 * the old relfilenode with it): the relfilenode's segments are forgotten in
 * the dropping transaction, their objects deleted after it commits.
 */
static void
am_object_access(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == RelationRelationId && subId == 0)
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(objectId));
		Oid			relam = InvalidOid;
		Oid			relfilenode = InvalidOid;

		if (HeapTupleIsValid(tup))
		{
			Form_pg_class form = (Form_pg_class) GETSTRUCT(tup);

			if (form->relkind == RELKIND_RELATION)
			{
				relam = form->relam;
				relfilenode = form->relfilenode;
			}
			ReleaseSysCache(tup);
		}
		/* DROP EXTENSION destor CASCADE may have taken destor.am_tables first */
		if (OidIsValid(relfilenode) && is_destor_am(relam) &&
			OidIsValid(get_relname_relid("am_tables", get_namespace_oid("destor", true))))
		{
			am_flush_writers(objectId, InvalidCommandId, true);
			am_forget(relfilenode);
		}
	}
}

/*
 * No destor table is read in a parallel worker: a worker would not see the
 * rows a statement of the leader still buffers (its functions' queries may
 * run in parallel), and parallel scans that share the row groups are not
 * built yet.  A relation that cannot be parallel keeps every plan above it
 * in the leader.
 */
static void
am_set_rel_pathlist(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	if (prev_set_rel_pathlist)
		prev_set_rel_pathlist(root, rel, rti, rte);
	if (rte->rtekind == RTE_RELATION && rte->relkind == RELKIND_RELATION)
	{
		Relation	r = RelationIdGetRelation(rte->relid);

		if (RelationIsValid(r))
		{
			if (r->rd_tableam == &destor_am_methods)
			{
				rel->consider_parallel = false;
				rel->partial_pathlist = NIL;
			}
			RelationClose(r);
		}
	}
}

void
tableam_init(void)
{
	DefineCustomStringVariable("destor.default_pool",
							   "The pool of the tables created USING destor.",
							   NULL, &default_pool, "", PGC_USERSET, 0, NULL, NULL, NULL);
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = am_executor_end;
	prev_object_access = object_access_hook;
	object_access_hook = am_object_access;
	prev_set_rel_pathlist = set_rel_pathlist_hook;
	set_rel_pathlist_hook = am_set_rel_pathlist;
}
