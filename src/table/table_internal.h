/*
 * table_internal.h — what the table layer's files share: per-column codecs,
 * catalog access for segments, and the foreign-data wrapper's scan state and
 * callbacks (defined in the files named below, wired in table_fdw.c).
 */
#ifndef DESTOR_TABLE_INTERNAL_H
#define DESTOR_TABLE_INTERNAL_H

#include "access/attnum.h"
#include "catalog/pg_attribute.h"
#include "commands/explain.h"
#include "fmgr.h"
#include "foreign/fdwapi.h"
#include "lib/stringinfo.h"
#include "port/atomics.h"
#include "storage/itemptr.h"
#include "utils/snapshot.h"

#include "destor/table.h"

typedef struct ColumnCodec
{
	AttrNumber	attnum;
	bool		dropped;
	Oid			typid;			/* the column's type (maybe a domain) */
	Oid			basetype;
	int16		typlen;			/* of the base type */
	bool		typbyval;
	ValueKind	kind;
	FmgrInfo	out;			/* text form: output and input functions */
	FmgrInfo	in;
	Oid			ioparam;
	int32		typmod;
	Oid			collation;
	bool		has_cmp;		/* a btree comparison exists: keep min/max */
	FmgrInfo	cmp;
} ColumnCodec;

extern void column_codec_init(ColumnCodec *cc, Form_pg_attribute att);
extern int	text_io_enter(void);
extern void text_io_leave(int level);
extern void value_encode(ColumnCodec *cc, Datum d, StringInfo buf);
extern Datum value_decode(ColumnCodec *cc, ValueKind kind, const uint8 **p, const uint8 *end);
extern void value_codec_define_gucs(void);
extern int	column_delta_width(ColumnCodec *cc);
/* segment_format.c */
extern void chunk_decode(const ChunkEntry *e, uint32 rows, const char *in, char *out);

/* catalog_table.c */
extern void catalog_insert_segment(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no,
								   const uint8 object_id[CODEC_OBJID_LEN], int64 rows,
								   bytea *directory);
extern int64 catalog_next_segment_no(void);
/* of SegmentDirectory*, as the snapshot sees them (NULL: a fresh one) */
extern List *catalog_table_segments(const uint8 table_id[CODEC_OBJID_LEN], Snapshot snapshot);
extern void catalog_insert_deletions(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no,
									 const uint8 *bitmap, size_t len, const uint8 *successors,
									 size_t succ_len);
extern int64 catalog_count_deletions(const uint8 table_id[CODEC_OBJID_LEN], Snapshot snapshot);
extern List *catalog_delete_table_segments(const uint8 table_id[CODEC_OBJID_LEN]); /* object ids (uint8 *) */
extern void catalog_delete_segment(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no);
extern void catalog_replace_segment(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no,
									const uint8 old_object_id[CODEC_OBJID_LEN],
									const uint8 new_object_id[CODEC_OBJID_LEN], bytea *directory);
extern void catalog_retire_segment(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no,
								   const uint8 object_id[CODEC_OBJID_LEN]);
extern int64 catalog_table_row_count(const uint8 table_id[CODEC_OBJID_LEN]);
/* table identity (destor.tables) */
extern bool catalog_table_id_of_rel(Oid relid, uint8 table_id[CODEC_OBJID_LEN]);
extern bool catalog_rel_of_table_id(const uint8 table_id[CODEC_OBJID_LEN], Oid *relid,
									bool *has_data);
extern void catalog_bind_table(const uint8 table_id[CODEC_OBJID_LEN], Oid relid);

/* ---------------------------------------------------------------------------
 * The foreign-data wrapper, split by phase as postgres_fdw and Citus columnar
 * are: table_plan.c (sizes, paths, plans, EXPLAIN), table_scan.c (serial and
 * parallel scans, pruning, row assembly, whole-row scans), table_modify.c
 * (INSERT/UPDATE/DELETE, TRUNCATE, the pending-modify registry),
 * table_analyze.c, table_compact.c; table_fdw.c wires the callbacks.
 * ------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------
 * Row identity: (segment position, row) packed into a tid; the offset keeps
 * its top bit set so that it is never the invalid offset 0.
 * ------------------------------------------------------------------------- */
static inline void
table_row_to_tid(uint32 seg_index, int64 row, ItemPointer tid)
{
	uint64		raw = ((uint64) seg_index << TABLE_ROW_BITS) | (uint64) row;

	ItemPointerSet(tid, (BlockNumber) (raw >> 15), (OffsetNumber) ((raw & 0x7FFF) | 0x8000));
}

static inline void
table_tid_to_row(ItemPointer tid, uint32 *seg_index, int64 *row)
{
	uint64		raw = ((uint64) ItemPointerGetBlockNumberNoCheck(tid) << 15) |
		(ItemPointerGetOffsetNumberNoCheck(tid) & 0x7FFF);

	*seg_index = (uint32) (raw >> TABLE_ROW_BITS);
	*row = (int64) (raw & (TABLE_MAX_SEGMENT_ROWS - 1));
}

/* One row group a scan reads (it survived pruning). */
typedef struct DestorScanUnit
{
	SegmentDirectory *dir;
	int			rg;
	uint32		seg_index;		/* position in the snapshot's segment list */
	int64		first_row;		/* the row group's first row in its segment */
} DestorScanUnit;

/*
 * The state of a scan: an executor scan (destorBeginForeignScan) or a
 * whole-row scan outside the executor (whole_row_scan, for ANALYZE and
 * compaction).  Both read their row groups with next_rowgroup().
 */
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
	/* per attribute, kept from row group to row group (scan_column_buffers) */
	struct ScanColumnBuffers *bufs;
	uint32		rg_rows;
	uint32		row;
	uint32		cur_seg_index;
	int64		cur_first_row;
	int		   *loaded;			/* attributes with values in this row group */
	int			nloaded;
	uint8	   *cur_deleted;	/* the segment's deleted rows, or NULL */

	ObjectReadStats stats;		/* this scan's own fetches (scan_stats_since) */
	int64		rgs_read;
	int64		chunks_read;	/* column chunks loaded */
	int64		chunks_cached;	/* of them, found decompressed in the cache */

	struct SharedScan *shared;	/* parallel scans, while the DSM is there */
	int64		worker_rgs;		/* the workers' counters, saved at shutdown */
	int64		worker_requests;
	int64		worker_bytes;
	int64		worker_degraded;
	int64		worker_hedged;
	int64		worker_chunks;
	int64		worker_chunks_cached;
	pg_atomic_uint32 *next_unit;	/* parallel scans: shared position */

	/* row groups fetched together (table_scan.c: batches) */
	struct ScanBatch *batch;	/* the units fetched last, or NULL */
	int			claim_end;		/* parallel: units [unit, claim_end) are ours */
	int			claim_size;		/* parallel: units claimed at a time (0: not known yet) */
	bool		unit_batches;	/* fetch one unit at a time, nothing ahead (row fetches by tid) */
	MemoryContext batchcxt;		/* its plan and fetched bytes */
} DestorScan;

/* Is column a (0-based) read by the scan and stored in this segment? */
static inline bool
chunk_needed(DestorScan *st, SegmentDirectory *dir, int a)
{
	return st->needed[a] && !st->codecs[a].dropped && a < dir->ncols && dir->kinds[a] != 0;
}

/* table_fetch.c */
extern int	scan_claim_size(DestorScan *st);
extern bool scan_mostly_uncached(DestorScan *st);
extern char **scan_unit_chunks(DestorScan *st, DestorScanUnit *u);
extern void scan_batch_end(DestorScan *st, bool discard);
extern char *scan_chunk_buffer(DestorScan *st, int att, Size size);
extern bool scan_fetch_row_cached(DestorScan *st, SegmentDirectory *dir, int rg, uint32 r,
								  Datum *values, bool *isnull);
/*
 * The positions of a ForeignScan's fdw_private list, as postgres_fdw's
 * FdwScanPrivateIndex: built by destorGetForeignPlan, read by
 * destorBeginForeignScan.  (The quals used for pruning go to fdw_exprs,
 * so that setrefs.c fixes up their Vars.)
 */
enum FdwScanPrivateIndex
{
	/* Integer list of the referenced columns' attnums (> 0) */
	FdwScanPrivateAttnums,
	/* Boolean node: the whole row is referenced (all columns are read) */
	FdwScanPrivateWholeRow,
	/* the number of positions: not an index */
	FdwScanPrivateCount
};

/* table_plan.c */
extern void destorGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid);
extern void destorGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid);
extern ForeignScan *destorGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel,
										 Oid foreigntableid, ForeignPath *best_path, List *tlist,
										 List *scan_clauses, Plan *outer_plan);
extern void destorExplainForeignScan(ForeignScanState *node, ExplainState *es);

/* table_scan.c */
extern bool stats_refute(DestorScan *st, List *quals, Bitmapset *qual_attrs,
						 SegmentDirectory *dir, int rg);
extern bool next_rowgroup(DestorScan *st);
extern DestorScan *whole_row_scan(Relation rel, TableOptions *opts, List *segments);
extern bool whole_row_current(DestorScan *st, Datum *values, bool *nulls);
extern void whole_row_scan_end(DestorScan *st);
extern void destorBeginForeignScan(ForeignScanState *node, int eflags);
extern TupleTableSlot *destorIterateForeignScan(ForeignScanState *node);
extern void destorReScanForeignScan(ForeignScanState *node);
extern void destorEndForeignScan(ForeignScanState *node);
extern bool destorIsForeignScanParallelSafe(PlannerInfo *root, RelOptInfo *rel,
											RangeTblEntry *rte);
extern Size scan_shared_size(void);
extern void scan_shared_init(DestorScan *st, void *coordinate, int nworkers);
extern void scan_shared_reinit(DestorScan *st, void *coordinate);
extern void scan_shared_attach(DestorScan *st, void *coordinate);
extern void scan_shared_collect(DestorScan *st);
extern void scan_shared_publish(DestorScan *st);
extern Size destorEstimateDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt);
extern void destorInitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt,
										   void *coordinate);
extern void destorReInitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt,
											 void *coordinate);
extern void destorInitializeWorkerForeignScan(ForeignScanState *node, shm_toc *toc,
											  void *coordinate);
extern void destorShutdownForeignScan(ForeignScanState *node);

/* table_modify.c */
extern bool modify_in_progress(Oid relid);
extern List *add_pending_changes(Relation rel, Snapshot snapshot, List *segments, bool flush);
extern void table_modify_init(void);
extern int	destorIsForeignRelUpdatable(Relation rel);
extern void destorAddForeignUpdateTargets(PlannerInfo *root, Index rtindex,
										  RangeTblEntry *target_rte, Relation target_relation);
extern List *destorPlanForeignModify(PlannerInfo *root, ModifyTable *plan,
									 Index resultRelation, int subplan_index);
extern void destorBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
									 List *fdw_private, int subplan_index, int eflags);
extern TupleTableSlot *destorExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
											   TupleTableSlot *slot, TupleTableSlot *planSlot);
extern TupleTableSlot *destorExecForeignUpdate(EState *estate, ResultRelInfo *rinfo,
											   TupleTableSlot *slot, TupleTableSlot *planSlot);
extern TupleTableSlot *destorExecForeignDelete(EState *estate, ResultRelInfo *rinfo,
											   TupleTableSlot *slot, TupleTableSlot *planSlot);
extern void destorEndForeignModify(EState *estate, ResultRelInfo *rinfo);
extern void destorBeginForeignInsert(ModifyTableState *mtstate, ResultRelInfo *rinfo);
extern void destorEndForeignInsert(EState *estate, ResultRelInfo *rinfo);
extern void destorExecForeignTruncate(List *rels, DropBehavior behavior, bool restart_seqs);
/* remove a table's segments (rows now, objects after commit) */
extern void forget_table_data(const uint8 table_id[CODEC_OBJID_LEN]);

/* table_analyze.c */
extern bool destorAnalyzeForeignTable(Relation relation, AcquireSampleRowsFunc *func,
									  BlockNumber *totalpages);

/*
 * Tally what a call into the scan's reader fetched as the scan's own: the
 * backend's counters move for every scan of a query (a join's two scans,
 * each with a batch in flight).
 */
static inline void
scan_stats_since(DestorScan *st, const ObjectReadStats *before)
{
	st->stats.requests += object_read_stats.requests - before->requests;
	st->stats.bytes_fetched += object_read_stats.bytes_fetched - before->bytes_fetched;
	st->stats.degraded_reads += object_read_stats.degraded_reads - before->degraded_reads;
	st->stats.hedged_reads += object_read_stats.hedged_reads - before->hedged_reads;
	st->stats.corrupt_chunks += object_read_stats.corrupt_chunks - before->corrupt_chunks;
}

#endif							/* DESTOR_TABLE_INTERNAL_H */
