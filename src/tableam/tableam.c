/*
 * tableam.c — the table access method destor (issue 14, stages 1 to 3).
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
 * whole-row reader.
 *
 * Row identity and indexes (stage 2): segments are numbered per table from
 * a counter in the relation's metapage, a row's tid is its segment number
 * and row, set at insert; index builds, index and bitmap fetches and the
 * unique checks' SnapshotDirty fetches read rows by tid (am_fetch_row).
 *
 * DELETE, UPDATE, row locks and VACUUM (stage 3): deletions are bitmaps in
 * destor.deletions, as the foreign tables' (recorded when the statement
 * ends; this backend's pending ones are merged by every read); UPDATE is a
 * delete and an insert under a new tid; a transaction that deletes, updates
 * or locks rows holds its segments' locks (am_lock_segment) until it ends,
 * which stand for heap's row locks; VACUUM removes segments with every row
 * deleted and the dead rows' index entries.  See docs/ARCHITECTURE.md,
 * "Table access method".
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/generic_xlog.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/multixact.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_am.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "catalog/storage.h"
#include "commands/defrem.h"
#include "commands/vacuum.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "access/xloginsert.h"
#include "nodes/tidbitmap.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/sinvaladt.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/fmgroids.h"
#include "utils/spccache.h"
#include "miscadmin.h"
#include "optimizer/paths.h"
#include "optimizer/plancat.h"
#include "pgstat.h"
#include "storage/smgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "destor/catalog.h"
#include "destor/tableam.h"
#include "../table/table_internal.h"

PG_FUNCTION_INFO_V1(destor_tableam_handler);

static char *default_pool = NULL;
static double vacuum_rewrite_fraction = 0.2;
static bool vacuum_full = false;	/* VACUUM FULL asked (tableam_ddl.c) */

static ExecutorEnd_hook_type prev_executor_end = NULL;
static object_access_hook_type prev_object_access = NULL;
static set_rel_pathlist_hook_type prev_set_rel_pathlist = NULL;
static const TableAmRoutine destor_am_methods;

static void am_not_supported(const char *what) pg_attribute_noreturn();
struct AmFetch;
static void am_fetch_free(struct AmFetch *f);

/* ---------------------------------------------------------------------------
 * Row identity
 *
 * A table's segments are numbered densely from 1 (the counter is in the
 * relation's metapage, below); a row's number is (segment_no << 20 | row in
 * segment), and its tid is that number laid out as heap's are: 291
 * (MaxHeapTuplesPerPage) offsets a block, offsets from 1, so that bitmaps
 * (tidbitmap.c keeps at most that many offsets a page) and every index AM
 * take them.  2^32 blocks of 291 rows: 1,191,934 segments a table.
 * ------------------------------------------------------------------------- */
#define AM_ROW_BITS			20
#define AM_ROWS_PER_BLOCK	MaxHeapTuplesPerPage
#define AM_MAX_SEGMENT_NO	((int64) (((uint64) MaxBlockNumber * AM_ROWS_PER_BLOCK) >> AM_ROW_BITS) - 1)

StaticAssertDecl(TABLE_DEFAULT_SEGMENT_ROWS <= (1 << AM_ROW_BITS),
				 "a segment's rows must fit in a row number's row bits");

static inline void
am_row_to_tid(int64 segment_no, int64 row, ItemPointer tid)
{
	uint64		rowid = ((uint64) segment_no << AM_ROW_BITS) | (uint64) row;

	ItemPointerSet(tid, (BlockNumber) (rowid / AM_ROWS_PER_BLOCK),
				   (OffsetNumber) (rowid % AM_ROWS_PER_BLOCK + 1));
}

static inline void
am_tid_to_row(ItemPointer tid, int64 *segment_no, int64 *row)
{
	uint64		rowid = (uint64) ItemPointerGetBlockNumberNoCheck(tid) * AM_ROWS_PER_BLOCK +
		(ItemPointerGetOffsetNumberNoCheck(tid) - 1);

	*segment_no = (int64) (rowid >> AM_ROW_BITS);
	*row = (int64) (rowid & ((1 << AM_ROW_BITS) - 1));
}

/* ---------------------------------------------------------------------------
 * The metapage: block 0 of the relation's file holds the next segment number.
 *
 * Not transactional, as a heap's file length is not: a number taken by a
 * transaction that aborts is never given again, so the index entries the
 * aborted rows left (they stay in the index until VACUUM, as heap's do) never
 * name a row of a later segment.  WAL-logged (generic WAL) when the number is
 * taken, before any index entry naming it: after a crash the counter is at
 * least past every number an index entry that survived can name, and
 * physical replicas have the same counter.
 * ------------------------------------------------------------------------- */
#define AM_META_MAGIC	0x44535431	/* "DST1" */

/*
 * Which transaction took segment number segment_no: its rows are indexed as
 * they are added but recorded in destor.segments only when the statement
 * ends, and another transaction's unique check must wait for it meanwhile
 * (am_fetch_nonmvcc).  Slot segment_no % AM_META_WRITERS: a slot is reused
 * after that many newer segments of the table.
 */
#define AM_META_WRITERS 960

typedef struct AmMetaWriter
{
	uint32		segment_no;
	TransactionId xid;
} AmMetaWriter;

typedef struct AmMetaPage
{
	uint32		magic;
	uint32		version;
	int64		next_segment_no;
	AmMetaWriter writers[AM_META_WRITERS];
} AmMetaPage;

StaticAssertDecl(sizeof(AmMetaPage) <= BLCKSZ - MAXALIGN(SizeOfPageHeaderData),
				 "the metapage must fit in a block");

static void
am_metapage_write(SMgrRelation srel, const RelFileNode *rnode)
{
	PGAlignedBlock buf;
	Page		page = (Page) buf.data;
	AmMetaPage *meta;

	memset(buf.data, 0, BLCKSZ);
	PageInit(page, BLCKSZ, 0);
	meta = (AmMetaPage *) PageGetContents(page);
	meta->magic = AM_META_MAGIC;
	meta->version = 1;
	meta->next_segment_no = 1;
	/* generic WAL logs the page up to pd_lower */
	((PageHeader) page)->pd_lower = ((char *) meta + sizeof(AmMetaPage)) - (char *) page;
	if (XLogIsNeeded())
		log_newpage((RelFileNode *) rnode, MAIN_FORKNUM, 0, page, true);
	PageSetChecksumInplace(page, 0);
	smgrextend(srel, MAIN_FORKNUM, 0, buf.data, false);
}

/* am_reserve_segment_no: the next segment number of the relation (arg). */
static int64
am_reserve_segment_no(void *arg)
{
	Relation	rel = (Relation) arg;
	Buffer		buf;
	GenericXLogState *state;
	Page		page;
	AmMetaPage *meta;
	int64		no;
	TransactionId xid = GetCurrentTransactionId();

	if (smgrnblocks(RelationGetSmgr(rel), MAIN_FORKNUM) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("destor table \"%s\" has no metapage", RelationGetRelationName(rel)),
				 errdetail("It was created by a development build of destor 0.2.0 that numbered segments globally."),
				 errhint("Copy its rows into a new table: CREATE TABLE ... USING destor AS TABLE ...")));
	buf = ReadBufferExtended(rel, MAIN_FORKNUM, 0, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	meta = (AmMetaPage *) PageGetContents(BufferGetPage(buf));
	if (meta->magic != AM_META_MAGIC || meta->next_segment_no > AM_MAX_SEGMENT_NO)
	{
		bool		full = meta->magic == AM_META_MAGIC;

		UnlockReleaseBuffer(buf);
		if (full)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("destor table \"%s\" has used all its segment numbers",
							RelationGetRelationName(rel)),
					 errdetail("A table USING destor has at most %lld segments, one or more per statement that inserts.",
							   (long long) AM_MAX_SEGMENT_NO),
					 errhint("Copy its rows into a new table: CREATE TABLE ... USING destor AS TABLE ...")));
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the metapage of destor table \"%s\" is corrupted",
						RelationGetRelationName(rel))));
	}
	state = GenericXLogStart(rel);
	page = GenericXLogRegisterBuffer(state, buf, 0);
	meta = (AmMetaPage *) PageGetContents(page);
	no = meta->next_segment_no++;
	meta->writers[no % AM_META_WRITERS].segment_no = (uint32) no;
	meta->writers[no % AM_META_WRITERS].xid = xid;
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
	return no;
}

/* A copy of the metapage's contents, read under a share lock; false if none. */
static bool
am_metapage_read(Relation rel, AmMetaPage *copy)
{
	Buffer		buf;

	if (smgrnblocks(RelationGetSmgr(rel), MAIN_FORKNUM) == 0)
		return false;
	buf = ReadBufferExtended(rel, MAIN_FORKNUM, 0, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	memcpy(copy, PageGetContents(BufferGetPage(buf)), sizeof(AmMetaPage));
	UnlockReleaseBuffer(buf);
	return copy->magic == AM_META_MAGIC;
}

/* The transaction that took segment number no, if the metapage still says. */
static TransactionId
am_segment_xid(Relation rel, int64 no)
{
	AmMetaPage	meta;

	if (am_metapage_read(rel, &meta) &&
		meta.writers[no % AM_META_WRITERS].segment_no == (uint32) no)
		return meta.writers[no % AM_META_WRITERS].xid;
	return InvalidTransactionId;
}

/* The highest segment number the relation has given, 0 if none (or no metapage). */
static int64
am_last_segment_no(Relation rel)
{
	AmMetaPage	meta;

	return am_metapage_read(rel, &meta) ? meta.next_segment_no - 1 : 0;
}

/* ---------------------------------------------------------------------------
 * destor.am_tables
 * ------------------------------------------------------------------------- */

/*
 * The last relfilenode found, for the rest of the same command of the same
 * transaction (am_tables cannot change under it then): a loop of look-ups
 * plans and fetches each time, and each asked the catalog twice.  Only
 * found ones: a table created later in the same command must be seen.
 */
static struct
{
	LocalTransactionId lxid;
	CommandId	cid;
	Oid			relfilenode;
	uint8		table_id[CODEC_OBJID_LEN];
	char		pool[NAMEDATALEN];
	bool		has_rows;
	double		rows;
}			am_last;

static bool
am_last_matches(Oid relfilenode)
{
	return am_last.lxid == MyProc->lxid && am_last.lxid != InvalidLocalTransactionId &&
		am_last.cid == GetCurrentCommandId(false) && am_last.relfilenode == relfilenode;
}

static void
am_options_fill(TableOptions *opts, const uint8 *table_id, const char *pool)
{
	memcpy(opts->table_id, table_id, CODEC_OBJID_LEN);
	opts->has_table_id = true;
	opts->pool = pstrdup(pool);
	opts->segment_rows = TABLE_DEFAULT_SEGMENT_ROWS;
	opts->row_group_rows = TABLE_DEFAULT_ROW_GROUP_ROWS;
	opts->compression_level = TABLE_DEFAULT_COMPRESSION_LEVEL;
}

/*
 * am_table_map: relfilenode -> its row of am_tables, per backend, so that
 * planning and opening a table (a loop of look-ups by key plans each
 * statement, on another partition each time) does not run a catalog
 * statement each time: that was most of a look-up's time.  A row of
 * am_tables never changes; it comes and goes with its relfilenode (CREATE,
 * TRUNCATE, a rewrite, DROP), which updates pg_class and so invalidates the
 * relation's relcache entry in every backend: the entries of that relation
 * go then (am_table_map_invalidate), those of a relfilenode this backend
 * forgets go at once, and all of them when a (sub)transaction aborts (its
 * rows of am_tables go with it).  Only rows this backend's snapshots saw
 * are kept, so a REPEATABLE READ transaction never finds a row committed
 * after its snapshot here (a backend's transactions follow each other).
 * The relation's oid is kept and must match: a rewrite's new relfilenode
 * is first looked up under the transient table's oid.
 */
typedef struct AmTableEntry
{
	Oid			relfilenode;	/* hash key */
	Oid			relid;
	uint8		table_id[CODEC_OBJID_LEN];
	char		pool[NAMEDATALEN];
} AmTableEntry;

static HTAB *am_table_map = NULL;

/* A backend-local hash table of entrysize-byte entries led by a keysize-byte key, in cxt. */
static HTAB *
am_hash_create(const char *name, Size keysize, Size entrysize, MemoryContext cxt)
{
	HASHCTL		ctl = {.keysize = keysize, .entrysize = entrysize, .hcxt = cxt};

	return hash_create(name, 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * Bumped by every relcache invalidation this backend takes in: a VACUUM
 * that gives segments new objects sends one for its table at commit, and a
 * kept SnapshotAny directory (AmFetch.any_dir) is looked up again then.
 */
static uint64 am_inval_generation = 0;

static void
am_table_map_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	AmTableEntry *e;

	am_inval_generation++;
	if (am_table_map == NULL)
		return;
	hash_seq_init(&seq, am_table_map);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (!OidIsValid(relid) || e->relid == relid)
			(void) hash_search(am_table_map, &e->relfilenode, HASH_REMOVE, NULL);
	}
}

/* am_table_map_invalidate, once a backend (PostgreSQL keeps a fixed number) */
static void
am_register_relcache_callback(void)
{
	static bool registered = false;

	if (!registered)
		CacheRegisterRelcacheCallback(am_table_map_invalidate, (Datum) 0);
	registered = true;
}

static void
am_table_map_forget(Oid relfilenode)
{
	if (am_table_map)
		(void) hash_search(am_table_map, &relfilenode, HASH_REMOVE, NULL);
	if (am_last.relfilenode == relfilenode)
		am_last.lxid = InvalidLocalTransactionId;
}

static void am_ensure_callbacks(void);
static void am_dir_cache_trim(void);

static void
am_table_map_remember(Oid relid, Oid relfilenode, const uint8 *table_id, const char *pool)
{
	AmTableEntry *e;

	if (!OidIsValid(relid))
		return;
	if (am_table_map == NULL)
	{
		am_table_map = am_hash_create("destor am_tables", sizeof(Oid), sizeof(AmTableEntry),
									  CacheMemoryContext);
		am_register_relcache_callback();
	}
	am_ensure_callbacks();		/* an abort empties the map */
	e = hash_search(am_table_map, &relfilenode, HASH_ENTER, NULL);
	e->relid = relid;
	memcpy(e->table_id, table_id, CODEC_OBJID_LEN);
	strlcpy(e->pool, pool, NAMEDATALEN);
}

/*
 * The table_id and pool of the relfilenode; false if it has none.  relid:
 * the relation that has it, or InvalidOid (then the catalog is asked).
 */
static bool
am_lookup(Oid relid, Oid relfilenode, TableOptions *opts)
{
	static SPIPlanPtr plan = NULL;
	CatalogUser cu;
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	bool		found;
	MemoryContext caller = CurrentMemoryContext;
	AmTableEntry *e;

	if (am_last_matches(relfilenode))
	{
		if (opts)
			am_options_fill(opts, am_last.table_id, am_last.pool);
		return true;
	}
	e = am_table_map && OidIsValid(relid) ?
		hash_search(am_table_map, &relfilenode, HASH_FIND, NULL) : NULL;
	if (e && e->relid == relid)
	{
		memcpy(am_last.table_id, e->table_id, CODEC_OBJID_LEN);
		strlcpy(am_last.pool, e->pool, NAMEDATALEN);
		if (opts)
			am_options_fill(opts, am_last.table_id, am_last.pool);
		am_last.lxid = MyProc->lxid;
		am_last.cid = GetCurrentCommandId(false);
		am_last.relfilenode = relfilenode;
		am_last.has_rows = false;
		return true;
	}
	catalog_enter(&cu);
	values[0] = ObjectIdGetDatum(relfilenode);
	/* no snapshot given: a fresh one after CommandCounterIncrement, as before */
	catalog_exec_saved_at(&plan, "SELECT table_id, pool FROM destor.am_tables WHERE relfilenode = $1",
						  1, types, values, SPI_OK_SELECT, InvalidSnapshot);
	found = SPI_processed > 0;
	if (found)
	{
		bool		isnull;
		Datum		pool = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		MemoryContext spi = MemoryContextSwitchTo(caller);

		object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							 am_last.table_id);
		strlcpy(am_last.pool, NameStr(*DatumGetName(pool)), NAMEDATALEN);
		if (opts)
			am_options_fill(opts, am_last.table_id, am_last.pool);
		MemoryContextSwitchTo(spi);
		am_last.lxid = MyProc->lxid;
		am_last.cid = GetCurrentCommandId(false);
		am_last.relfilenode = relfilenode;
		am_last.has_rows = false;
		am_table_map_remember(relid, relfilenode, am_last.table_id, am_last.pool);
	}
	catalog_leave(&cu);
	return found;
}

/*
 * Does the relfilenode have a row in am_tables that committed after this
 * transaction's snapshot (a REPEATABLE READ transaction reading a table
 * another one created, truncated or tiered since)?
 */
static bool
am_exists_since_snapshot(Oid relfilenode)
{
	static SPIPlanPtr plan = NULL;
	CatalogUser cu;
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	bool		found;

	if (!IsolationUsesXactSnapshot())
		return false;
	catalog_enter(&cu);
	values[0] = ObjectIdGetDatum(relfilenode);
	catalog_exec_saved_at(&plan, "SELECT 1 FROM destor.am_tables WHERE relfilenode = $1", 1, types,
						  values, SPI_OK_SELECT, GetLatestSnapshot());
	found = SPI_processed > 0;
	catalog_leave(&cu);
	return found;
}

static TableOptions *
am_options(Relation rel)
{
	TableOptions *opts = palloc0(sizeof(TableOptions));

	if (!am_lookup(RelationGetRelid(rel), rel->rd_node.relNode, opts) &&
		am_exists_since_snapshot(rel->rd_node.relNode))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access to destor table \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail("The table was created, truncated or tiered by a transaction that committed after this transaction's snapshot was taken."),
				 errhint("Retry the transaction.")));
	if (!opts->has_table_id)
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

	if (!am_lookup(InvalidOid, relfilenode, &opts))
		return;
	am_table_map_forget(relfilenode);
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
	List	   *deleting;		/* of AmDeletion: rows the statement deleted */
} AmWriter;

/*
 * The rows of one segment a statement deleted, recorded in destor.deletions
 * when the writer is written (the end of the statement), as the foreign
 * tables' DELETE records them.  The bitmap covers rows up to the highest
 * one deleted (catalog_table_segments merges shorter bitmaps).
 */
typedef struct AmDeletion
{
	int64		segment_no;
	int64		nbytes;
	uint8	   *rows;
	/* rows an UPDATE replaced: row (u32) and the new version's row number
	 * (u64), little-endian, as destor.deletions.successors keeps them */
	StringInfo	successors;
} AmDeletion;

#define AM_SUCCESSOR_BYTES 12

static inline bool
am_bit_is_set(const uint8 *bits, int64 nbytes, int64 row)
{
	return bits != NULL && row >= 0 && row / 8 < nbytes && ((bits[row / 8] >> (row % 8)) & 1);
}

static List *am_writers = NIL;
static List *am_lock_counts = NIL;	/* of AmLockCount, in TopTransactionContext */
/* am_claimed_deleters' copy of one segment's recorded deletions */
static MemoryContext am_claim_cxt = NULL;	/* under TopTransactionContext */
static Oid	am_claim_relid = InvalidOid;
static int64 am_claim_segment_no = 0;
static uint64 am_claim_loaded = 0;	/* am_claim_generation when read; 0: none */
static uint64 am_claim_generation = 1;
static uint8 am_claim_table_id[CODEC_OBJID_LEN];
static List *am_claim_recorded = NIL;	/* of AmRecordedDeletion */
static bool am_claim_cacheable;
/*
 * am_version_fetch_for's fetches, one a relation (storage), the most
 * recently used first, at most AM_VERSION_FETCHES (a statement writing
 * partitions fetches from each in turn), in TopTransactionContext
 */
typedef struct AmVersionFetch
{
	Oid			relid;
	Oid			relfilenode;
	struct AmFetch *fetch;
} AmVersionFetch;

#define AM_VERSION_FETCHES 16
static List *am_version_fetches = NIL;
static struct AmSuccessors *am_successors;	/* am_find_successor's */
static bool am_callbacks = false;

static void
am_writer_release(AmWriter *aw, bool finish)
{
	ResourceOwner saved = CurrentResourceOwner;
	ListCell   *lc;

	if (finish)
	{
		foreach(lc, aw->deleting)
		{
			AmDeletion *d = lfirst(lc);

			catalog_insert_deletions(aw->opts->table_id, d->segment_no, d->rows, d->nbytes,
									 d->successors ? (const uint8 *) d->successors->data : NULL,
									 d->successors ? d->successors->len : 0);
			am_claim_generation++;
		}
		segment_writer_finish(aw->writer);
	}
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
	/* the rows of am_tables it wrote are gone */
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		am_table_map_invalidate((Datum) 0, InvalidOid);
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
			/* no fetch is left that uses the directories */
			am_dir_cache_trim();
			/* memory and relcache references go with the transaction */
			am_writers = NIL;
			am_lock_counts = NIL;
			am_claim_cxt = NULL;	/* went with TopTransactionContext */
			am_version_fetches = NIL;	/* likewise */
			am_successors = NULL;	/* likewise */
			am_claim_loaded = 0;
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

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		am_claim_generation++;	/* its recorded deletions are gone */
		am_table_map_invalidate((Datum) 0, InvalidOid);	/* its am_tables rows too */
		/* its reads may have begun in the subtransaction */
		foreach(lc, am_version_fetches)
			am_fetch_free(((AmVersionFetch *) lfirst(lc))->fetch);
		am_version_fetches = NIL;
	}
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

static void
am_ensure_callbacks(void)
{
	if (!am_callbacks)
	{
		RegisterXactCallback(am_xact_callback, NULL);
		RegisterSubXactCallback(am_subxact_callback, NULL);
		am_callbacks = true;
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
	am_ensure_callbacks();
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
	segment_writer_set_numbering(aw->writer, am_reserve_segment_no, rel);
	am_writers = lappend(am_writers, aw);
	MemoryContextSwitchTo(old);
	return aw;
}

/* ---------------------------------------------------------------------------
 * Deletions of this backend's statements, not yet recorded
 * ------------------------------------------------------------------------- */

/*
 * am_pending_deleted: whether a statement of this transaction whose command
 * id is below before_cid (InvalidCommandId: any) deleted the row and has
 * not recorded it yet; *cid its command id.  A snapshot sees a deletion by
 * an earlier command of its transaction, as heap's cmax rule says.
 */
static bool
am_pending_deleted(Oid relid, int64 segment_no, int64 row, CommandId before_cid,
				   CommandId *cid)
{
	ListCell   *lc;

	foreach(lc, am_writers)
	{
		AmWriter   *aw = lfirst(lc);
		ListCell   *lc2;

		if (aw->relid != relid || aw->deleting == NIL ||
			(before_cid != InvalidCommandId && aw->cid >= before_cid))
			continue;
		foreach(lc2, aw->deleting)
		{
			AmDeletion *d = lfirst(lc2);

			if (d->segment_no == segment_no && am_bit_is_set(d->rows, d->nbytes, row))
			{
				if (cid)
					*cid = aw->cid;
				return true;
			}
		}
	}
	return false;
}

/* Mark row of segment_no deleted by the statement of aw. */
static void
am_pending_delete(AmWriter *aw, int64 segment_no, int64 row)
{
	MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(aw));
	AmDeletion *d = NULL;
	ListCell   *lc;

	foreach(lc, aw->deleting)
		if (((AmDeletion *) lfirst(lc))->segment_no == segment_no)
			d = lfirst(lc);
	if (d == NULL)
	{
		d = palloc0(sizeof(AmDeletion));
		d->segment_no = segment_no;
		aw->deleting = lappend(aw->deleting, d);
	}
	if (row / 8 >= d->nbytes)
	{
		int64		nbytes = Max(row / 8 + 1, d->nbytes * 2);

		d->rows = d->rows ? repalloc(d->rows, nbytes) : palloc(nbytes);
		memset(d->rows + d->nbytes, 0, nbytes - d->nbytes);
		d->nbytes = nbytes;
	}
	d->rows[row / 8] |= 1 << (row % 8);
	MemoryContextSwitchTo(old);
}

/* The row of segment_no that the statement of aw deleted has its new version at new_tid. */
static void
am_pending_successor(AmWriter *aw, int64 segment_no, int64 row, ItemPointer new_tid)
{
	MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(aw));
	AmDeletion *d = NULL;
	ListCell   *lc;
	int64		new_segment_no;
	int64		new_row;
	uint64		rowid;
	uint8		b[AM_SUCCESSOR_BYTES];

	am_tid_to_row(new_tid, &new_segment_no, &new_row);
	rowid = ((uint64) new_segment_no << AM_ROW_BITS) | (uint64) new_row;

	foreach(lc, aw->deleting)
		if (((AmDeletion *) lfirst(lc))->segment_no == segment_no)
			d = lfirst(lc);
	Assert(d != NULL);			/* am_pending_delete made it */
	if (d == NULL)
	{
		MemoryContextSwitchTo(old);
		return;
	}
	if (d->successors == NULL)
		d->successors = makeStringInfo();
	for (int i = 0; i < 4; i++)
		b[i] = (uint8) ((uint64) row >> (8 * i));
	for (int i = 0; i < 8; i++)
		b[4 + i] = (uint8) (rowid >> (8 * i));
	appendBinaryStringInfo(d->successors, (char *) b, AM_SUCCESSOR_BYTES);
	MemoryContextSwitchTo(old);
}

/*
 * am_dir_with_pending: dir, or a copy of it (in the current memory context)
 * with the unrecorded deletions of this transaction's statements below
 * before_cid merged into its bitmap.  dir itself is never changed: it may be
 * a writer's own.
 */
static SegmentDirectory *
am_dir_with_pending(Oid relid, SegmentDirectory *dir, CommandId before_cid)
{
	SegmentDirectory *copy = NULL;
	int64		need = (dir->row_count + 7) / 8;
	ListCell   *lc;

	foreach(lc, am_writers)
	{
		AmWriter   *aw = lfirst(lc);
		ListCell   *lc2;

		if (aw->relid != relid || aw->cid >= before_cid)
			continue;
		foreach(lc2, aw->deleting)
		{
			AmDeletion *d = lfirst(lc2);

			if (d->segment_no != dir->segment_no)
				continue;
			if (copy == NULL)
			{
				copy = palloc(sizeof(SegmentDirectory));
				memcpy(copy, dir, sizeof(SegmentDirectory));
				copy->deleted = palloc0(Max(need, 1));
				if (dir->deleted)
					memcpy(copy->deleted, dir->deleted, need);
			}
			for (int64 b = 0; b < Min(need, d->nbytes); b++)
				copy->deleted[b] |= d->rows[b];
		}
	}
	if (copy == NULL)
		return dir;
	copy->deleted_count = 0;
	for (int64 r = 0; r < copy->row_count; r++)
		copy->deleted_count += (copy->deleted[r / 8] >> (r % 8)) & 1;
	return copy;
}

/* ---------------------------------------------------------------------------
 * Segment locks and key locks: what stands for heap's row locks
 *
 * A transaction that deletes or updates rows of a segment (or locks them
 * FOR NO KEY UPDATE or FOR UPDATE) holds ExclusiveLock on the segment's lock
 * tag until it ends, one that locks rows FOR SHARE ShareLock.  The tag is a
 * tuple lock of the relation with the segment number as block and offset
 * 0, which heap never uses.  The deletions of a statement are recorded only
 * at its end, so a second deleter of a row could not see the first one's;
 * the segment lock makes it wait until the first transaction ends, then it
 * reads the recorded deletions.  Locks are per segment, not per row: two
 * transactions deleting different rows of one segment also wait for each
 * other.
 *
 * FOR KEY SHARE (a foreign key's check of a referenced row) must not wait
 * for an UPDATE that changes no key column, as heap's does not; but it must
 * keep the key from going away, also from the newer versions of the row
 * such an UPDATE writes elsewhere (heap follows the update chain to lock
 * them; destor has no link to them).  So it locks the row's key, not its
 * segment: a tag of the relation with a hash of the row's key (the columns
 * of its first unique index without expression or predicate, which no
 * non-key UPDATE changes) as block and offset AM_KEY_LOCK_OFFSET, ShareLock;
 * and whatever removes a key — DELETE, an UPDATE of a key column (heap's
 * HeapDetermineColumnsInfo tells the two kinds of UPDATE apart the same way)
 * and FOR UPDATE — takes ExclusiveLock on the same tag besides its segment
 * lock, segment first.  A non-key UPDATE, FOR NO KEY UPDATE and FOR SHARE
 * take no key lock.  Hash collisions only make unrelated rows wait.
 *
 * A transaction holds at most AM_LOCK_ESCALATE_LOCKS segment locks and as
 * many key locks of a relation (the shared lock table is small): beyond,
 * it takes one lock on the relation's whole-table tag of that kind (offset
 * 0, or AM_KEY_LOCK_OFFSET, of block InvalidBlockNumber), ExclusiveLock or
 * ShareLock, that the lockers' intent locks on the same tag
 * (RowExclusiveLock, RowShareLock) conflict with, as table locks do.  Many
 * FOR KEY SHARE locks (a big INSERT into a referencing table) so block
 * DELETEs and key UPDATEs of the whole referenced table, not its non-key
 * UPDATEs.
 * ------------------------------------------------------------------------- */
#define AM_LOCK_ESCALATE_LOCKS 64
#define AM_KEY_LOCK_OFFSET ((OffsetNumber) PG_UINT16_MAX)

typedef struct AmLockCount
{
	Oid			relid;
	int			segments;		/* segment locks taken */
	int			keys;			/* key locks taken */
} AmLockCount;


static void
am_segment_tag(LOCKTAG *tag, Relation rel, int64 segment_no)
{
	SET_LOCKTAG_TUPLE(*tag, MyDatabaseId, RelationGetRelid(rel), (BlockNumber) segment_no,
					  InvalidOffsetNumber);
}

static void
am_whole_table_tag(LOCKTAG *tag, Relation rel)
{
	SET_LOCKTAG_TUPLE(*tag, MyDatabaseId, RelationGetRelid(rel), InvalidBlockNumber,
					  InvalidOffsetNumber);
}

static void
am_key_tag(LOCKTAG *tag, Relation rel, uint32 key_hash)
{
	/* InvalidBlockNumber is the whole-table tag's */
	SET_LOCKTAG_TUPLE(*tag, MyDatabaseId, RelationGetRelid(rel),
					  key_hash == InvalidBlockNumber ? 0 : key_hash, AM_KEY_LOCK_OFFSET);
}

static void
am_all_keys_tag(LOCKTAG *tag, Relation rel)
{
	SET_LOCKTAG_TUPLE(*tag, MyDatabaseId, RelationGetRelid(rel), InvalidBlockNumber,
					  AM_KEY_LOCK_OFFSET);
}

static bool
am_lock_acquire(Relation rel, LOCKTAG *tag, LOCKMODE mode, LockWaitPolicy wait_policy,
				bool *newly)
{
	LockAcquireResult res = LockAcquire(tag, mode, false, wait_policy != LockWaitBlock);

	if (res == LOCKACQUIRE_NOT_AVAIL)
	{
		if (wait_policy == LockWaitError)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("could not obtain lock on row in relation \"%s\"",
							RelationGetRelationName(rel)),
					 errdetail("Rows of destor tables are locked a segment at a time.")));
		return false;
	}
	if (newly)
		*newly = res == LOCKACQUIRE_OK;
	return true;
}

/* This transaction's count of segment and key locks of rel */
static AmLockCount *
am_lock_count(Relation rel)
{
	AmLockCount *count;
	ListCell   *lc;
	MemoryContext old;

	foreach(lc, am_lock_counts)
		if (((AmLockCount *) lfirst(lc))->relid == RelationGetRelid(rel))
			return lfirst(lc);
	old = MemoryContextSwitchTo(TopTransactionContext);
	am_ensure_callbacks();
	count = palloc0(sizeof(AmLockCount));
	count->relid = RelationGetRelid(rel);
	am_lock_counts = lappend(am_lock_counts, count);
	MemoryContextSwitchTo(old);
	return count;
}

/* Whether the transaction holds the whole-table lock of that kind already. */
static bool
am_whole_lock_held(LOCKTAG *whole, bool exclusive)
{
	return LockHeldByMe(whole, ExclusiveLock) || (!exclusive && LockHeldByMe(whole, ShareLock));
}

/*
 * am_lock_item: one segment's or key's lock (item), or the whole table's of
 * that kind (whole) once the transaction holds many (*taken); false if
 * wait_policy is LockWaitSkip and another transaction holds it.
 */
static bool
am_lock_item(Relation rel, LOCKTAG *item, LOCKTAG *whole, int *taken, bool exclusive,
			 LockWaitPolicy wait_policy)
{
	bool		newly;

	if (am_whole_lock_held(whole, exclusive))
		return true;
	if (*taken >= AM_LOCK_ESCALATE_LOCKS)
		return am_lock_acquire(rel, whole, exclusive ? ExclusiveLock : ShareLock, wait_policy, NULL);
	if (!am_lock_acquire(rel, whole, exclusive ? RowExclusiveLock : RowShareLock, wait_policy, NULL))
		return false;
	if (!am_lock_acquire(rel, item, exclusive ? ExclusiveLock : ShareLock, wait_policy, &newly))
		return false;
	if (newly)
		(*taken)++;
	return true;
}

/*
 * am_lock_segment: the segment's lock (exclusive: to delete, update or lock
 * FOR [NO KEY] UPDATE), or the whole table's once the transaction holds
 * many; false if wait_policy is LockWaitSkip and another transaction holds
 * it.
 */
static bool
am_lock_segment(Relation rel, int64 segment_no, bool exclusive, LockWaitPolicy wait_policy)
{
	LOCKTAG		whole;
	LOCKTAG		seg;

	am_whole_table_tag(&whole, rel);
	am_segment_tag(&seg, rel, segment_no);
	return am_lock_item(rel, &seg, &whole, &am_lock_count(rel)->segments, exclusive, wait_policy);
}

/* Whether a key lock of rel needs the row's key hash (not covered by a whole-table one). */
static bool
am_key_lock_needs_hash(Relation rel, bool exclusive)
{
	LOCKTAG		whole;

	am_all_keys_tag(&whole, rel);
	return !am_whole_lock_held(&whole, exclusive) &&
		am_lock_count(rel)->keys < AM_LOCK_ESCALATE_LOCKS;
}

/*
 * am_key_index: rel's first unique index (by oid) without expressions or
 * predicate, whose columns (*attrs, if asked) key locks hash; InvalidOid if
 * it has none (then every row's key hashes alike).  The first one stays
 * the first while a key lock is held: dropping it needs an ACCESS EXCLUSIVE
 * lock, and a new index gets a higher oid.
 */
static Oid
am_key_index(Relation rel, int2vector **attrs)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Oid			result = InvalidOid;

	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;

		if (!HeapTupleIsValid(tup))
			continue;
		index = (Form_pg_index) GETSTRUCT(tup);
		if (index->indisunique && index->indisvalid &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL))
		{
			result = index->indexrelid;
			if (attrs)
				*attrs = buildint2vector(index->indkey.values, index->indnkeyatts);
			ReleaseSysCache(tup);
			break;
		}
		ReleaseSysCache(tup);
	}
	list_free(indexes);
	return result;
}

/*
 * A column's value as bytes for comparing and hashing: the datum itself if
 * passed by value, else its contents (detoasted, without the varlena
 * header, which may be short or not for one value).
 */
static const char *
am_datum_bytes(Form_pg_attribute att, Datum value, Size *len, Datum *scratch)
{
	if (att->attbyval)
	{
		*scratch = value;
		*len = sizeof(Datum);
		return (const char *) scratch;
	}
	if (att->attlen == -1)
	{
		struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(value));

		*len = VARSIZE_ANY_EXHDR(v);
		return VARDATA_ANY(v);
	}
	if (att->attlen == -2)
	{
		*len = strlen(DatumGetCString(value));
		return DatumGetCString(value);
	}
	*len = att->attlen;
	return DatumGetPointer(value);
}

/* am_key_hash: the hash of the row's key (am_key_index) that its key lock is named by. */
static uint32
am_key_hash(Relation rel, TupleTableSlot *row)
{
	int2vector *attrs = NULL;
	uint32		hash = 0;

	if (!OidIsValid(am_key_index(rel, &attrs)))
		return 0;
	slot_getallattrs(row);
	for (int i = 0; i < attrs->dim1; i++)
	{
		AttrNumber	attno = attrs->values[i];
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attno - 1);
		uint32		h = 0x9e3779b9;

		if (!row->tts_isnull[attno - 1])
		{
			Datum		scratch;
			Size		len;
			const char *bytes = am_datum_bytes(att, row->tts_values[attno - 1], &len, &scratch);

			h = DatumGetUInt32(hash_any((const unsigned char *) bytes, (int) len));
		}
		hash = hash_combine(hash, h);
	}
	pfree(attrs);
	return hash;
}

/*
 * am_update_changes_key: whether an UPDATE from old to new changes a column
 * of a unique index usable by a foreign key (or of the replica identity):
 * heap's "key columns", compared by their bytes as heap_attr_equals does
 * (a byte-different equal value counts as changed: the safe side).
 */
static bool
am_update_changes_key(Relation rel, TupleTableSlot *old, TupleTableSlot *new)
{
	Bitmapset  *keys = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_KEY);
	int			member = -1;
	bool		changed = false;

	if (keys == NULL)
		return false;
	slot_getallattrs(old);
	slot_getallattrs(new);
	while (!changed && (member = bms_next_member(keys, member)) >= 0)
	{
		AttrNumber	attno = member + FirstLowInvalidHeapAttributeNumber;
		Form_pg_attribute att;
		Datum		s1,
					s2;
		Size		l1,
					l2;
		const char *b1,
				   *b2;

		if (attno <= 0)
		{
			changed = true;		/* a system column in a key: cannot happen */
			break;
		}
		if (old->tts_isnull[attno - 1] || new->tts_isnull[attno - 1])
		{
			changed = old->tts_isnull[attno - 1] != new->tts_isnull[attno - 1];
			continue;
		}
		att = TupleDescAttr(RelationGetDescr(rel), attno - 1);
		b1 = am_datum_bytes(att, old->tts_values[attno - 1], &l1, &s1);
		b2 = am_datum_bytes(att, new->tts_values[attno - 1], &l2, &s2);
		changed = l1 != l2 || memcmp(b1, b2, l1) != 0;
	}
	bms_free(keys);
	return changed;
}

/*
 * am_segment_deleter: a transaction that holds the segment's exclusive lock
 * (or the whole table's), so may be deleting its rows without having
 * recorded them yet; InvalidTransactionId if none.  For SnapshotDirty's
 * callers, which wait for it and look again, as for heap's deleting xmax.
 */
static TransactionId
am_segment_deleter(Relation rel, int64 segment_no)
{
	LOCKTAG		tags[2];
	LOCKMODE	modes[2] = {ShareLock, RowShareLock};

	am_segment_tag(&tags[0], rel, segment_no);
	am_whole_table_tag(&tags[1], rel);
	for (int i = 0; i < 2; i++)
	{
		VirtualTransactionId *v = GetLockConflicts(&tags[i], modes[i], NULL);

		for (; VirtualTransactionIdIsValid(*v); v++)
		{
			TransactionId xid;
			TransactionId xmin;

			BackendIdGetTransactionIds(v->backendId, &xid, &xmin);
			if (TransactionIdIsValid(xid))
				return xid;
		}
	}
	return InvalidTransactionId;
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
 * Deletions in destor.deletions, one segment at a time
 * ------------------------------------------------------------------------- */
typedef bool (*AmDeletionVisitor) (HeapTupleHeader hdr, const uint8 *bits, int64 nbytes,
								   void *arg);

/*
 * am_scan_deletions: each bitmap of destor.deletions for the segment that
 * snapshot sees (heap's rules: SnapshotDirty also shows those of
 * transactions in progress), handed with its tuple header to fn until fn
 * returns false.  One index probe, as am_segment_lookup's.  segment_no -1:
 * every segment's.
 */
static void
am_scan_deletions(const uint8 *table_id, int64 segment_no, Snapshot snapshot,
				  AmDeletionVisitor fn, void *arg)
{
	Oid			nsp = get_namespace_oid("destor", false);
	Relation	delrel = table_open(get_relname_relid("deletions", nsp), AccessShareLock);
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_UUID_EQ, object_id_datum(table_id));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(segment_no));
	scan = systable_beginscan(delrel, get_relname_relid("deletions_segment_idx", nsp), true,
							  snapshot, segment_no >= 0 ? 2 : 1, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		bytea	   *bits = DatumGetByteaPP(heap_getattr(tup, 3, RelationGetDescr(delrel), &isnull));

		if (!fn(tup->t_data, (const uint8 *) VARDATA_ANY(bits), VARSIZE_ANY_EXHDR(bits), arg))
			break;
	}
	systable_endscan(scan);
	table_close(delrel, AccessShareLock);
}

static bool
am_merge_deletion(HeapTupleHeader hdr, const uint8 *bits, int64 nbytes, void *arg)
{
	SegmentDirectory *dir = arg;
	int64		need = (dir->row_count + 7) / 8;

	if (dir->deleted == NULL)
		dir->deleted = palloc0(Max(need, 1));
	for (int64 b = 0; b < Min(need, nbytes); b++)
		dir->deleted[b] |= bits[b];
	return true;
}

/*
 * am_merge_catalog_deletions: OR the segment's deletions that the MVCC
 * snapshot sees into dir's bitmap (allocated in the current memory context),
 * as catalog_table_segments does for a whole table.
 */
static bool
am_count_deleted(HeapTupleHeader hdr, const uint8 *bits, int64 nbytes, void *arg)
{
	*(int64 *) arg += pg_popcount((const char *) bits, nbytes);
	return true;
}

/*
 * am_row_count: the table's rows less its recorded deletions, as
 * catalog_table_row_count counts them, but read through the catalog's
 * indexes, not a catalog statement: the planner asks it for every plan of
 * the table, and a loop of look-ups by key plans each statement.  Under
 * the snapshot such a statement would take (after CommandCounterIncrement,
 * a fresh one in READ COMMITTED, the transaction's in REPEATABLE READ).
 */
static int64
am_row_count(const uint8 *table_id)
{
	Oid			nsp = get_namespace_oid("destor", false);
	Relation	segrel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Snapshot	snapshot;
	int64		rows = 0;
	int64		deleted = 0;

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	segrel = table_open(get_relname_relid("segments", nsp), AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, object_id_datum(table_id));
	scan = systable_beginscan(segrel, get_relname_relid("segments_pkey", nsp), true, snapshot, 1,
							  &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;

		rows += DatumGetInt64(heap_getattr(tup, 4, RelationGetDescr(segrel), &isnull));
	}
	systable_endscan(scan);
	table_close(segrel, AccessShareLock);
	am_scan_deletions(table_id, -1, snapshot, am_count_deleted, &deleted);
	UnregisterSnapshot(snapshot);
	return rows - deleted;
}

static void
am_merge_catalog_deletions(const uint8 *table_id, SegmentDirectory *dir, Snapshot snapshot)
{
	am_scan_deletions(table_id, dir->segment_no, snapshot, am_merge_deletion, dir);
	if (dir->deleted)
	{
		dir->deleted_count = 0;
		for (int64 r = 0; r < dir->row_count; r++)
			dir->deleted_count += (dir->deleted[r / 8] >> (r % 8)) & 1;
	}
}

/* Who deleted one row, as recorded in destor.deletions (am_row_deleters). */
typedef struct AmRowDeleters
{
	int64		row;
	bool		mine;			/* this transaction did */
	CommandId	my_cid;			/* ... in this command */
	TransactionId committed;	/* a committed transaction did */
	TransactionId in_progress;	/* another transaction, still running, did */
} AmRowDeleters;

static bool
am_note_deleter(HeapTupleHeader hdr, const uint8 *bits, int64 nbytes, void *arg)
{
	AmRowDeleters *rd = arg;
	TransactionId xmin = HeapTupleHeaderGetXmin(hdr);

	if (!am_bit_is_set(bits, nbytes, rd->row))
		return true;
	if (!TransactionIdIsNormal(xmin))
		rd->committed = xmin;	/* frozen */
	else if (TransactionIdIsCurrentTransactionId(xmin))
	{
		rd->mine = true;
		rd->my_cid = HeapTupleHeaderGetRawCommandId(hdr);
	}
	else if (TransactionIdIsInProgress(xmin))
		rd->in_progress = xmin;
	else if (TransactionIdDidCommit(xmin))
		rd->committed = xmin;
	return true;
}

/*
 * am_row_deleters: the recorded deletions of row of segment_no, whatever
 * snapshot would see them: this transaction's, committed ones, and those of
 * transactions in progress (deleters whose statement is still under way
 * have recorded nothing yet: see am_segment_deleter).
 */
static void
am_row_deleters(const uint8 *table_id, int64 segment_no, int64 row, AmRowDeleters *rd)
{
	SnapshotData dirty;

	InitDirtySnapshot(dirty);
	memset(rd, 0, sizeof(AmRowDeleters));
	rd->row = row;
	am_scan_deletions(table_id, segment_no, &dirty, am_note_deleter, rd);
}

/*
 * The recorded deletions of the segment am_claim_row looked at last, read
 * once for the rows after it (a DELETE goes through a segment's rows in
 * turn): the transaction holds the segment's lock, so no other transaction
 * records more meanwhile, and this one's own recordings (a statement's end,
 * a subtransaction's abort) change am_claim_generation, which drops them.
 */
typedef struct AmRecordedDeletion
{
	bool		mine;			/* else committed */
	TransactionId xmin;
	CommandId	cmin;
	int64		nbytes;
	uint8	   *rows;
} AmRecordedDeletion;

static bool
am_copy_deletion(HeapTupleHeader hdr, const uint8 *bits, int64 nbytes, void *arg)
{
	TransactionId xmin = HeapTupleHeaderGetXmin(hdr);
	AmRecordedDeletion *d;

	d = palloc0(sizeof(AmRecordedDeletion));
	d->xmin = xmin;
	if (TransactionIdIsNormal(xmin) && TransactionIdIsCurrentTransactionId(xmin))
	{
		d->mine = true;
		d->cmin = HeapTupleHeaderGetRawCommandId(hdr);
	}
	else if (TransactionIdIsNormal(xmin) && TransactionIdIsInProgress(xmin))
	{
		am_claim_cacheable = false;	/* see am_claim_row: waited for */
		return false;
	}
	else if (TransactionIdIsNormal(xmin) && !TransactionIdDidCommit(xmin))
		return true;			/* aborted */
	d->nbytes = nbytes;
	d->rows = palloc(Max(nbytes, 1));
	memcpy(d->rows, bits, nbytes);
	am_claim_recorded = lappend(am_claim_recorded, d);
	return true;
}

/*
 * am_claimed_deleters: who deleted row of segment_no by the recorded
 * deletions, from the cached copy; false if they cannot be cached (a
 * deleter still in progress).
 */
static bool
am_claimed_deleters(Relation rel, const uint8 *table_id, int64 segment_no, int64 row,
					AmRowDeleters *rd)
{
	ListCell   *lc;

	/* keyed by table_id too: TRUNCATE numbers a new table_id's segments from 1 again */
	if (am_claim_loaded != am_claim_generation || am_claim_relid != RelationGetRelid(rel) ||
		am_claim_segment_no != segment_no ||
		memcmp(am_claim_table_id, table_id, CODEC_OBJID_LEN) != 0)
	{
		MemoryContext old;

		if (am_claim_cxt == NULL)
			am_claim_cxt = AllocSetContextCreate(TopTransactionContext, "destor claimed segment",
												 ALLOCSET_DEFAULT_SIZES);
		MemoryContextReset(am_claim_cxt);
		am_claim_recorded = NIL;
		am_claim_loaded = 0;
		am_claim_cacheable = true;
		old = MemoryContextSwitchTo(am_claim_cxt);
		{
			SnapshotData dirty;

			InitDirtySnapshot(dirty);
			am_scan_deletions(table_id, segment_no, &dirty, am_copy_deletion, NULL);
		}
		MemoryContextSwitchTo(old);
		if (!am_claim_cacheable)
		{
			MemoryContextReset(am_claim_cxt);
			am_claim_recorded = NIL;
			return false;
		}
		am_claim_relid = RelationGetRelid(rel);
		am_claim_segment_no = segment_no;
		memcpy(am_claim_table_id, table_id, CODEC_OBJID_LEN);
		am_claim_loaded = am_claim_generation;
	}
	memset(rd, 0, sizeof(AmRowDeleters));
	rd->row = row;
	foreach(lc, am_claim_recorded)
	{
		AmRecordedDeletion *d = lfirst(lc);

		if (!am_bit_is_set(d->rows, d->nbytes, row))
			continue;
		if (d->mine)
		{
			rd->mine = true;
			rd->my_cid = d->cmin;
		}
		else
			rd->committed = d->xmin;
	}
	return true;
}

/* Whether a recorded deletion of row that the MVCC snapshot sees exists. */
static bool
am_note_visible_deletion(HeapTupleHeader hdr, const uint8 *bits, int64 nbytes, void *arg)
{
	AmRowDeleters *rd = arg;

	if (am_bit_is_set(bits, nbytes, rd->row))
	{
		rd->mine = true;
		return false;
	}
	return true;
}

/*
 * am_row_deleted_for: whether snapshot sees row of segment_no deleted:
 * under an MVCC snapshot the recorded deletions it sees and this
 * transaction's unrecorded ones of earlier commands; under SnapshotAny
 * none (AFTER triggers read deleted rows with it); under other snapshots
 * (SnapshotSelf, SnapshotDirty) every deletion of this transaction and of
 * committed ones.
 */
static bool
am_row_deleted_for(Relation rel, const uint8 *table_id, int64 segment_no, int64 row,
				   Snapshot snapshot)
{
	AmRowDeleters rd;

	if (snapshot == InvalidSnapshot || snapshot->snapshot_type == SNAPSHOT_ANY)
		return false;
	if (IsMVCCSnapshot(snapshot))
	{
		if (am_pending_deleted(RelationGetRelid(rel), segment_no, row, snapshot->curcid, NULL))
			return true;
		memset(&rd, 0, sizeof(rd));
		rd.row = row;
		am_scan_deletions(table_id, segment_no, snapshot, am_note_visible_deletion, &rd);
		return rd.mine;
	}
	if (am_pending_deleted(RelationGetRelid(rel), segment_no, row, InvalidCommandId, NULL))
		return true;
	am_row_deleters(table_id, segment_no, row, &rd);
	return rd.mine || TransactionIdIsValid(rd.committed);
}

/* ---------------------------------------------------------------------------
 * Scans
 * ------------------------------------------------------------------------- */
/* A parallel scan (see am_parallelscan_estimate) */
typedef struct AmParallelScan
{
	ParallelTableScanDescData base;
	pg_atomic_uint32 claimed;
} AmParallelScan;

typedef struct AmScanDesc
{
	TableScanDescData base;
	MemoryContext cxt;
	TableOptions *opts;
	List	   *segments;
	DestorScan *st;
	bool		have_rg;
	MemoryContext scancxt;		/* st and what the (re)scan made: see am_scan_start */
	/* a plan's scan (tableam_path.c): the columns it reads, the quals that
	 * prune row groups by their statistics; kept across rescans */
	bool		restricted;
	Bitmapset  *attrs;			/* pull_varattnos numbering */
	List	   *quals;
	Index		scanrelid;
	/* bitmap scans: rows fetched by tid, from the block under way */
	struct AmFetch *fetch;
	BlockNumber bm_block;
	int			bm_ntuples;		/* -1: lossy, every offset */
	int			bm_next;
	OffsetNumber bm_offsets[MaxHeapTuplesPerPage];
} AmScanDesc;

/*
 * A writer's buffered rows cannot be read in a subtransaction it does not
 * belong to: finishing its segment there would tie the rows to the
 * subtransaction (its abort would take the catalog row the writer counts on).
 */
static void
am_read_in_subxact_error(Relation rel)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot read destor table \"%s\" in a subtransaction while its statement writes it",
					RelationGetRelationName(rel)),
			 errdetail("The rows the statement wrote before the subtransaction began are still buffered."),
			 errhint("Read the table in another statement, or outside the exception block.")));
}

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
	CommandId	before = snap != InvalidSnapshot ? snap->curcid : InvalidCommandId;
	ListCell   *lc;

	foreach(lc, am_writers)
	{
		AmWriter   *aw = lfirst(lc);
		ListCell   *lc2;

		if (aw->relid != RelationGetRelid(rel))
			continue;
		/*
		 * Rows of the snapshot's own command or a later one are not seen
		 * (cmin >= curcid, as heap): an InitPlan, a CTE or a STABLE
		 * function run by an INSERT or UPDATE must not count its new rows.
		 */
		if (before != InvalidCommandId && aw->cid >= before)
			continue;
		if (aw->subid != cur)
			am_read_in_subxact_error(rel);
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
			{
				/* a copy: the writer's own has no deletions and must keep none */
				SegmentDirectory *copy = palloc(sizeof(SegmentDirectory));

				memcpy(copy, p, sizeof(SegmentDirectory));
				copy->deleted = NULL;
				copy->deleted_count = 0;
				if (snap != InvalidSnapshot)
					am_merge_catalog_deletions(opts->table_id, copy, snap);
				segments = lappend(segments, copy);
			}
		}
	}

	/* this transaction's deletions not recorded yet, of earlier commands */
	if (am_writers != NIL)
		foreach(lc, segments)
			lfirst(lc) = am_dir_with_pending(RelationGetRelid(rel), lfirst(lc), before);

	/*
	 * A segment with every row deleted is not read: VACUUM may delete its
	 * object once no snapshot sees a row of it, while this scan runs.
	 */
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);

		if (dir->row_count > 0 && dir->deleted_count == dir->row_count)
			segments = foreach_delete_current(segments, lc);
	}
	return segments;
}

/*
 * Read only the columns of s->attrs, and skip the row groups whose
 * statistics refute s->quals (as the foreign tables' scans do).  Rows the
 * statement that calls the scan still buffers have no statistics: kept.
 */
static void
am_scan_apply_restriction(AmScanDesc *s)
{
	DestorScan *st = s->st;
	Bitmapset  *qual_attrs = NULL;
	SegmentDirectory *last_dir = NULL;
	bool		last_refuted = false;
	int			kept = 0;
	int			guclevel;

	if (!bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, s->attrs))
		for (int a = 0; a < st->natts; a++)
			st->needed[a] = !st->codecs[a].dropped &&
				bms_is_member(a + 1 - FirstLowInvalidHeapAttributeNumber, s->attrs);
	if (s->quals == NIL)
		return;
	st->scanrelid = s->scanrelid;
	pull_varattnos((Node *) s->quals, s->scanrelid, &qual_attrs);
	guclevel = text_io_enter();
	for (int i = 0; i < st->nunits; i++)
	{
		DestorScanUnit *u = &st->units[i];

		st->rgs_total++;
		if (!u->dir->mem_chunks)
		{
			if (u->dir != last_dir)
			{
				last_dir = u->dir;
				last_refuted = stats_refute(st, s->quals, qual_attrs, u->dir, -1);
			}
			if (last_refuted ||
				(u->dir->nrowgroups > 1 && stats_refute(st, s->quals, qual_attrs, u->dir, u->rg)))
			{
				st->rgs_pruned++;
				continue;
			}
		}
		st->units[kept++] = *u;
	}
	text_io_leave(guclevel);
	st->nunits = kept;
}

static void
am_scan_start(AmScanDesc *s)
{
	MemoryContext old;
	Snapshot	snap = s->base.rs_snapshot;

	/* each (re)scan's state in its own context: a nested loop's rescans grew the scan's */
	if (s->scancxt != NULL)
		MemoryContextDelete(s->scancxt);
	s->scancxt = AllocSetContextCreate(s->cxt, "destor table scan state", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(s->scancxt);

	s->st = whole_row_scan(s->base.rs_rd, s->opts, s->segments);
	s->st->snapshot = (snap != InvalidSnapshot && IsMVCCSnapshot(snap)) ? snap : InvalidSnapshot;
	s->have_rg = false;
	if (s->restricted)
		am_scan_apply_restriction(s);
	MemoryContextSwitchTo(old);
}

/* See AmScanDesc.restricted; called once, right after table_beginscan. */
void
am_scan_restrict(TableScanDesc sscan, Bitmapset *attrs, List *quals, Index scanrelid)
{
	AmScanDesc *s = (AmScanDesc *) sscan;
	MemoryContext old = MemoryContextSwitchTo(s->cxt);

	s->restricted = true;
	s->attrs = bms_copy(attrs);
	s->quals = copyObject(quals);
	s->scanrelid = scanrelid;
	MemoryContextSwitchTo(s->scancxt);
	am_scan_apply_restriction(s);
	MemoryContextSwitchTo(old);
}

/* Row groups a restricted scan read and skipped so far, for EXPLAIN. */
void
am_scan_counts(TableScanDesc sscan, int64 *total, int64 *pruned, int64 *read)
{
	AmScanDesc *s = (AmScanDesc *) sscan;

	*total = s->st->rgs_total;
	*pruned = s->st->rgs_pruned;
	*read = s->st->rgs_read + s->st->worker_rgs;
}

/* The foreign tables' scan state under a scan (for its parallel share). */
DestorScan *
am_scan_destor(TableScanDesc sscan)
{
	return ((AmScanDesc *) sscan)->st;
}

/*
 * Does this backend buffer rows or deletions that only it knows of?  Then
 * a parallel scan is read by the leader alone (workers would miss them).
 */
bool
am_backend_buffers(void)
{
	return am_writers != NIL;
}

/* Is rel a table USING destor? */
bool
am_is_destor(Relation rel)
{
	return rel->rd_tableam == &destor_am_methods;
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

	s->base.rs_rd = rel;
	s->base.rs_snapshot = snapshot;
	s->base.rs_nkeys = nkeys;
	s->base.rs_flags = flags;
	s->base.rs_parallel = pscan;
	s->cxt = cxt;
	if (pscan != NULL &&
		pg_atomic_exchange_u32(&((AmParallelScan *) pscan)->claimed, 1) != 0)
	{
		/* another participant reads every row (see AmParallelScan) */
		s->opts = NULL;
		s->segments = NIL;
	}
	else
	{
		s->opts = am_options(rel);
		s->segments = (flags & SO_TYPE_BITMAPSCAN) ? NIL : am_segments(rel, s->opts, snapshot);
	}
	MemoryContextSwitchTo(old);
	am_scan_start(s);
	return &s->base;
}

static void
am_scan_end(TableScanDesc sscan)
{
	AmScanDesc *s = (AmScanDesc *) sscan;

	whole_row_scan_end(s->st);
	if (s->fetch)
		am_fetch_free(s->fetch);
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
				 errhint("Fetch forward only, or copy the rows into a temporary table and scroll through that.")));
	if (slot->tts_tupleDescriptor->natts != st->natts)
		am_not_supported("rewriting the table (ALTER TABLE ... ADD COLUMN with a volatile default)");
	ExecClearTuple(slot);
	for (;;)
	{
		if (s->have_rg && st->row < st->rg_rows)
		{
			int64		pos = st->cur_first_row + st->row;
			bool		live = whole_row_current(st, slot->tts_values, slot->tts_isnull);

			/* a batch read ahead keeps coming in meanwhile */
			if ((st->row & 1023) == 0)
				provider_poll();
			st->row++;
			if (!live)
				continue;
			am_missing_columns(st, slot);
			ExecStoreVirtualTuple(slot);
			am_row_to_tid(st->units[st->unit - 1].dir->segment_no, pos, &slot->tts_tid);
			slot->tts_tableOid = RelationGetRelid(sscan->rs_rd);
			return true;
		}
		CHECK_FOR_INTERRUPTS();
		if (!next_rowgroup(st))
			return false;
		s->have_rg = true;
	}
}

/*
 * Slots of these tables are virtual (rows are decoded from columns), but a
 * foreign key's check on UPDATE asks the old row's xmin: "was it inserted
 * by this transaction?" (RI_FKey_fk_upd_check_required), and a virtual slot
 * has no system columns, so every UPDATE of a row with a non-NULL foreign
 * key failed.  Rows keep no xmin here: it reads as this transaction's id
 * once the transaction has one — a transaction that inserted rows has one
 * (its segments' catalog rows), so the check fires whenever it must, and
 * at worst when it need not — and as FrozenTransactionId before that.
 * Other system columns stay an error.
 */
static Datum
am_slot_getsysattr(TupleTableSlot *slot, int attnum, bool *isnull)
{
	TransactionId xid;

	if (attnum != MinTransactionIdAttributeNumber)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("rows of tables USING destor have no system column other than tableoid, ctid and xmin")));
	xid = GetTopTransactionIdIfAny();
	*isnull = false;
	return TransactionIdGetDatum(TransactionIdIsValid(xid) ? xid : FrozenTransactionId);
}

static const TupleTableSlotOps *
am_slot_ops(void)
{
	static TupleTableSlotOps ops;
	static bool made = false;

	if (!made)
	{
		ops = TTSOpsVirtual;
		ops.getsysattr = am_slot_getsysattr;
		made = true;
	}
	return &ops;
}

static const TupleTableSlotOps *
am_slot_callbacks(Relation rel)
{
	return am_slot_ops();
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
			 errdetail("Tables USING destor take DML, row locks, VACUUM and btree and hash indexes, not the operations that assume heap pages."),
			 errhint("Use a heap table, or a destor foreign table (CREATE FOREIGN TABLE ... SERVER pool).")));
}

/*
 * Parallel scans.  The planner makes no parallel plans of destor tables
 * (set_rel_pathlist hook below), so the only parallel scan is a parallel
 * btree build (plan_create_index_workers asks no hook).  The first
 * participant to begin claims every row and the others read none: the build
 * runs serially inside its parallel frame, and no worker reads the catalog
 * or a provider.  btree's leader participates, so the rows are read.
 */
static Size
am_parallelscan_estimate(Relation rel)
{
	return sizeof(AmParallelScan);
}

static Size
am_parallelscan_initialize(Relation rel, ParallelTableScanDesc pscan)
{
	AmParallelScan *p = (AmParallelScan *) pscan;

	p->base.phs_relid = RelationGetRelid(rel);
	p->base.phs_syncscan = false;
	pg_atomic_init_u32(&p->claimed, 0);
	return sizeof(AmParallelScan);
}

static void
am_parallelscan_reinitialize(Relation rel, ParallelTableScanDesc pscan)
{
	pg_atomic_write_u32(&((AmParallelScan *) pscan)->claimed, 0);
}

/* ---------------------------------------------------------------------------
 * Fetching rows by tid (indexes, bitmap scans)
 *
 * An MVCC fetch reads the segments its snapshot sees (read once per
 * snapshot) and the rows this backend's writers of the table hold (the
 * statement's own, looked up only when the catalog lacks the segment).
 * Other snapshots (SnapshotDirty of the unique checks, SnapshotSelf,
 * SnapshotAny) look the segment's row up in destor.segments under that
 * snapshot, so that heap's visibility rules decide, and SnapshotDirty reports
 * the xid of a transaction still inserting it (the caller waits for it).
 * The row group a row is in is decoded once and kept for the next fetch, so
 * that a range of an index reads each row group once.
 * ------------------------------------------------------------------------- */
/* rows of one row group fetched one by one before it is decoded whole */
#define AM_SINGLE_FETCHES	16

typedef struct AmFetch
{
	Relation	rel;
	MemoryContext cxt;			/* the fetch's */
	TableOptions *opts;
	/* whether the row is there is all the caller asks (am_row_visible):
	 * its values are not read, the slot gets NULLs */
	bool		no_values;
	/* copies of segments this backend's writers recorded (theirs go when
	 * the statement ends), so that a row group of them is decoded once for
	 * all the fetches of its rows (AFTER triggers, foreign key checks) */
	List	   *own_dirs;
	/* the rows a writer still buffers (segment_writer_pending's copy, in
	 * memcxt), while it has mem_rows rows: copied once, not per fetch */
	MemoryContext memcxt;
	SegmentDirectory *mem_dir;
	int64		mem_rows;
	/* the segments of the last MVCC snapshot fetched under */
	MemoryContext listcxt;
	bool		have_list;
	Snapshot	list_snapshot;
	CommandId	list_cid;
	TransactionId list_xmin;
	TransactionId list_xmax;
	List	   *segments;
	/*
	 * SnapshotAny's segment (in anycxt), kept until a relcache invalidation
	 * comes in: a VACUUM committing meanwhile may give the segment a new
	 * object and retire this one (am_vac_rewrite), and sends one
	 */
	MemoryContext anycxt[2];	/* the most recently used first: an UPDATE
								 * re-checking rows alternates between the old
								 * versions' segment and the new ones' */
	SegmentDirectory *any_dir[2];
	LocalTransactionId any_lxid;
	uint64		any_generation;
	/* the row group decoded last (its dir is in listcxt or anycxt), or st == NULL */
	DestorScan *st;
	SegmentDirectory *st_dir;
	int			st_rg;
	/* the one decoded before it, kept while fetches alternate between two
	 * segments (an AFTER UPDATE trigger's old row and new row) */
	DestorScan *st2;
	SegmentDirectory *st2_dir;
	int			st2_rg;
	/* the row group whose one row was read from the cache last, and its values' memory */
	SegmentDirectory *single_dir;
	int			single_rg;
	int			single_count;	/* rows of it read so, in a row */
	MemoryContext rowcxt;
} AmFetch;

static AmFetch *
am_fetch_create(Relation rel)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "destor fetch",
											  ALLOCSET_DEFAULT_SIZES);
	AmFetch    *f = MemoryContextAllocZero(cxt, sizeof(AmFetch));
	MemoryContext old = MemoryContextSwitchTo(cxt);

	am_register_relcache_callback();
	f->rel = rel;
	f->cxt = cxt;
	f->opts = am_options(rel);
	f->listcxt = AllocSetContextCreate(cxt, "destor fetch segments", ALLOCSET_DEFAULT_SIZES);
	f->anycxt[0] = AllocSetContextCreate(cxt, "destor fetch any", ALLOCSET_DEFAULT_SIZES);
	f->anycxt[1] = AllocSetContextCreate(cxt, "destor fetch any", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(old);
	return f;
}

/*
 * A one-segment scan of the fetch, in a memory context of its own: its
 * arrays and buffers go when it ends (a fetch outlives many of them).
 */
static DestorScan *
am_fetch_scan_begin(AmFetch *f, SegmentDirectory *dir, Snapshot objsnap)
{
	MemoryContext cxt = AllocSetContextCreate(f->cxt, "destor fetch row group",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	DestorScan *st = whole_row_scan(f->rel, f->opts, list_make1(dir));

	MemoryContextSwitchTo(old);
	st->snapshot = objsnap;
	/* a fetch wants one row group, not a scan's batch of them */
	st->unit_batches = true;
	return st;
}

static void
am_fetch_scan_end(DestorScan *st)
{
	MemoryContext cxt = GetMemoryChunkContext(st);

	whole_row_scan_end(st);
	MemoryContextDelete(cxt);
}

static void
am_fetch_forget_rowgroup(AmFetch *f)
{
	if (f->st)
		am_fetch_scan_end(f->st);
	if (f->st2)
		am_fetch_scan_end(f->st2);
	f->st = f->st2 = NULL;
	f->st_dir = f->st2_dir = NULL;
	f->single_dir = NULL;
}

static void
am_fetch_free(AmFetch *f)
{
	am_fetch_forget_rowgroup(f);
	MemoryContextDelete(f->cxt);
}

static SegmentDirectory *
am_find_segment(List *segments, int64 segment_no)
{
	ListCell   *lc;

	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);

		if (dir->segment_no == segment_no)
			return dir;
	}
	return NULL;
}

/*
 * am_dir_cache: the directories am_segment_lookup parsed, per backend, keyed
 * by (table_id, segment_no) and valid for the catalog tuple they were parsed
 * from (its tid and xmin: a heap tuple never changes, a new version has
 * another tid), so that a look-up by key does not detoast and parse its
 * segment's directory each statement (a fifth of a look-up's time).  The
 * catalog is still probed under the caller's snapshot: visibility is
 * decided as before, only the parsing is saved.  Callers get a shallow copy
 * (their deletions merged into it), whose arrays stay valid until the
 * cache is emptied, at the end of a transaction once it holds
 * AM_DIR_CACHE_BYTES: no fetch outlives its transaction.  Past that size
 * within a transaction, directories are parsed for the caller alone.
 */
#define AM_DIR_CACHE_BYTES	(32 * 1024 * 1024)

typedef struct AmDirKey
{
	uint8		table_id[CODEC_OBJID_LEN];
	int64		segment_no;
} AmDirKey;

typedef struct AmDirEntry
{
	AmDirKey	key;
	ItemPointerData tid;		/* of the catalog tuple parsed */
	TransactionId xmin;
	SegmentDirectory *dir;		/* in am_dir_cxt; never changed */
} AmDirEntry;

static MemoryContext am_dir_cxt = NULL;
static HTAB *am_dir_cache = NULL;

static void
am_dir_cache_trim(void)
{
	if (am_dir_cxt && MemoryContextMemAllocated(am_dir_cxt, true) > AM_DIR_CACHE_BYTES)
	{
		MemoryContextReset(am_dir_cxt);
		am_dir_cache = NULL;
	}
}

/* The directory of the catalog tuple tup (of rel), parsed once. */
static SegmentDirectory *
am_dir_for(Relation segrel, HeapTuple tup, const uint8 *table_id, int64 segment_no)
{
	AmDirKey	key;
	AmDirEntry *e;
	SegmentDirectory *dir;
	bool		isnull;
	bool		found;
	MemoryContext old;

	if (am_dir_cxt == NULL)
	{
		am_dir_cxt = AllocSetContextCreate(TopMemoryContext, "destor segment directories",
										   ALLOCSET_DEFAULT_SIZES);
		am_ensure_callbacks();	/* am_dir_cache_trim at transaction end */
	}
	if (am_dir_cache == NULL)
		am_dir_cache = am_hash_create("destor segment directories", sizeof(AmDirKey),
									  sizeof(AmDirEntry), am_dir_cxt);
	memset(&key, 0, sizeof(key));
	memcpy(key.table_id, table_id, CODEC_OBJID_LEN);
	key.segment_no = segment_no;
	e = hash_search(am_dir_cache, &key, HASH_FIND, NULL);
	if (e == NULL || !ItemPointerEquals(&e->tid, &tup->t_self) ||
		e->xmin != HeapTupleHeaderGetRawXmin(tup->t_data))
	{
		bytea	   *raw = DatumGetByteaPP(heap_getattr(tup, 5, RelationGetDescr(segrel), &isnull));

		if (MemoryContextMemAllocated(am_dir_cxt, true) > AM_DIR_CACHE_BYTES)
			return segment_directory_parse(raw);	/* full: the caller's alone */
		old = MemoryContextSwitchTo(am_dir_cxt);
		dir = segment_directory_parse(raw);
		MemoryContextSwitchTo(old);
		e = hash_search(am_dir_cache, &key, HASH_ENTER, &found);
		e->tid = tup->t_self;
		e->xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
		e->dir = dir;
	}
	dir = palloc(sizeof(SegmentDirectory));
	memcpy(dir, e->dir, sizeof(SegmentDirectory));
	dir->deleted = NULL;		/* the caller's snapshot's, merged by it */
	dir->deleted_count = 0;
	return dir;
}

/*
 * am_segment_lookup: segment_no's row of destor.segments as snapshot sees it
 * (heap's visibility rules decide; SnapshotDirty sets xmin to an inserting
 * transaction still in progress): its row count, and if dir is not NULL its
 * directory parsed in the current memory context.  false if none.  One
 * primary-key probe, not the table's whole list: a point lookup in a table
 * of many segments reads one directory.
 */
static bool
am_segment_lookup(AmFetch *f, Snapshot snapshot, int64 segment_no, int64 *row_count,
				  SegmentDirectory **dir)
{
	Oid			nsp = get_namespace_oid("destor", false);
	Relation	segrel = table_open(get_relname_relid("segments", nsp), AccessShareLock);
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_UUID_EQ, object_id_datum(f->opts->table_id));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(segment_no));
	scan = systable_beginscan(segrel, get_relname_relid("segments_pkey", nsp), true, snapshot, 2, keys);
	tup = systable_getnext(scan);
	found = HeapTupleIsValid(tup);
	if (found)
	{
		TupleDesc	desc = RelationGetDescr(segrel);
		bool		isnull;

		*row_count = DatumGetInt64(heap_getattr(tup, 4, desc, &isnull));
		if (dir)
		{
			*dir = am_dir_for(segrel, tup, f->opts->table_id, segment_no);
			(*dir)->segment_no = segment_no;
			object_id_from_datum(heap_getattr(tup, 3, desc, &isnull), (*dir)->object_id);
		}
	}
	systable_endscan(scan);
	table_close(segrel, AccessShareLock);
	return found;
}

/*
 * The segment an MVCC snapshot sees, or NULL: looked up once per snapshot
 * and kept (in listcxt) while the fetches use the same snapshot, with the
 * recorded deletions the snapshot sees merged (this transaction's unrecorded
 * ones change while the snapshot stays: am_fetch_row asks for them).
 */
static SegmentDirectory *
am_fetch_segment(AmFetch *f, Snapshot snapshot, int64 segment_no)
{
	SegmentDirectory *dir;
	int64		rows;
	MemoryContext old;

	if (!(f->have_list && f->list_snapshot == snapshot && f->list_cid == snapshot->curcid &&
		  f->list_xmin == snapshot->xmin && f->list_xmax == snapshot->xmax))
	{
		am_fetch_forget_rowgroup(f);
		MemoryContextReset(f->listcxt);
		f->segments = NIL;
		f->have_list = true;
		f->list_snapshot = snapshot;
		f->list_cid = snapshot->curcid;
		f->list_xmin = snapshot->xmin;
		f->list_xmax = snapshot->xmax;
	}
	dir = am_find_segment(f->segments, segment_no);
	if (dir)
		return dir;
	old = MemoryContextSwitchTo(f->listcxt);
	if (am_segment_lookup(f, snapshot, segment_no, &rows, &dir))
	{
		am_merge_catalog_deletions(f->opts->table_id, dir, snapshot);
		f->segments = lappend(f->segments, dir);
	}
	else
		dir = NULL;
	MemoryContextSwitchTo(old);
	return dir;
}

/*
 * Store row of dir in slot; false if the segment has no such row or it is
 * deleted.  keep: dir lives in listcxt, and its decoded row group is kept
 * for the next fetch (the slot's values point into it until then);
 * otherwise (a writer's pending rows, non-MVCC fetches) it is read, the
 * slot materialized, and the row group dropped.
 */
static bool
am_fetch_from(AmFetch *f, SegmentDirectory *dir, int64 row, Snapshot objsnap, bool keep,
			  ItemPointer tid, TupleTableSlot *slot)
{
	int			rg = 0;
	int64		first = 0;
	DestorScan *st;
	MemoryContext old;

	if (row >= dir->row_count ||
		(dir->deleted && ((dir->deleted[row / 8] >> (row % 8)) & 1)))
		return false;
	while (rg < dir->nrowgroups && row >= first + dir->rg_rows[rg])
		first += dir->rg_rows[rg++];
	if (rg >= dir->nrowgroups)
		return false;
	if (f->no_values)
	{
		ExecStoreAllNullTuple(slot);
		slot->tts_tid = *tid;
		slot->tts_tableOid = RelationGetRelid(f->rel);
		return true;
	}
	if (slot->tts_tupleDescriptor->natts != RelationGetDescr(f->rel)->natts)
		am_not_supported("rewriting the table (ALTER TABLE ... ADD COLUMN with a volatile default)");
	if (f->st && f->st_dir != dir && f->st2 && f->st2_dir == dir)
	{
		/* back to the segment decoded before: swap */
		DestorScan *t = f->st;
		SegmentDirectory *tdir = f->st_dir;
		int			trg = f->st_rg;

		f->st = f->st2;
		f->st_dir = f->st2_dir;
		f->st_rg = f->st2_rg;
		f->st2 = t;
		f->st2_dir = tdir;
		f->st2_rg = trg;
	}
	if (!(f->st && f->st_dir == dir && f->st_rg == rg))
	{
		if (f->st == NULL || f->st_dir != dir)
		{
			/* the current one becomes the one before */
			if (f->st2)
				am_fetch_scan_end(f->st2);
			f->st2 = f->st;
			f->st2_dir = f->st_dir;
			f->st2_rg = f->st_rg;
			f->st = NULL;
			f->st_dir = NULL;
			f->single_dir = NULL;
			f->st = am_fetch_scan_begin(f, dir, objsnap);
			f->st_dir = dir;
			f->st_rg = -1;
		}

		/*
		 * A row group's first fetches read just the row, from the cache's
		 * decompressed chunks (a look-up by key wants one row, not ten
		 * thousand decoded, and one device's day a few rows of it); past
		 * AM_SINGLE_FETCHES in the same row group it is decoded whole and
		 * kept for the rest (a range scan).
		 */
		if (!(f->single_dir == dir && f->single_rg == rg && f->single_count >= AM_SINGLE_FETCHES))
		{
			bool		ok;

			if (f->rowcxt == NULL)
				f->rowcxt = AllocSetContextCreate(f->cxt, "destor row fetch", ALLOCSET_SMALL_SIZES);
			MemoryContextReset(f->rowcxt);
			ExecClearTuple(slot);
			old = MemoryContextSwitchTo(f->rowcxt);
			ok = scan_fetch_row_cached(f->st, dir, rg, (uint32) (row - first),
									   slot->tts_values, slot->tts_isnull);
			MemoryContextSwitchTo(old);
			if (ok)
			{
				if (f->single_dir == dir && f->single_rg == rg)
					f->single_count++;
				else
					f->single_count = 1;
				f->single_dir = dir;
				f->single_rg = rg;
				f->st->unit = rg + 1;	/* am_missing_columns asks the unit's dir */
				am_missing_columns(f->st, slot);
				ExecStoreVirtualTuple(slot);
				slot->tts_tid = *tid;
				slot->tts_tableOid = RelationGetRelid(f->rel);
				if (!keep)
					ExecMaterializeSlot(slot);
				return true;
			}
		}
		f->st_dir = dir;
		f->st_rg = -1;
		/* the units of a one-segment scan are its row groups, in order */
		f->st->unit = rg;
		if (!next_rowgroup(f->st))
			return false;
		f->st_rg = rg;
	}
	st = f->st;
	st->row = (uint32) (row - first);
	ExecClearTuple(slot);
	(void) whole_row_current(st, slot->tts_values, slot->tts_isnull);
	am_missing_columns(st, slot);
	ExecStoreVirtualTuple(slot);
	slot->tts_tid = *tid;
	slot->tts_tableOid = RelationGetRelid(f->rel);
	if (!keep)
	{
		/* the values point into the row group about to go: copy them */
		ExecMaterializeSlot(slot);
		am_fetch_scan_end(f->st);
		f->st = f->st2;
		f->st_dir = f->st2_dir;
		f->st_rg = f->st2_rg;
		f->st2 = NULL;
		f->st2_dir = NULL;
		f->single_dir = NULL;
	}
	return true;
}

/*
 * A row this backend's writers of the relation still hold (the statement's
 * own rows, not in the catalog under its snapshot): true and the row in
 * slot, or false with *mine false when no writer has the segment.
 */
static bool
am_fetch_pending(AmFetch *f, int64 segment_no, int64 row, ItemPointer tid,
				 TupleTableSlot *slot, bool *mine, CommandId *wcid)
{
	ListCell   *lc;

	*mine = false;
	*wcid = InvalidCommandId;
	foreach(lc, am_writers)
	{
		AmWriter   *aw = lfirst(lc);
		SegmentDirectory *dir;
		MemoryContext old;
		bool		found;

		if (aw->relid != RelationGetRelid(f->rel))
			continue;
		if (aw->subid == GetCurrentSubTransactionId())
			dir = am_find_segment(segment_writer_recorded(aw->writer), segment_no);
		else
		{
			/*
			 * A segment sent and not recorded yet would be recorded in
			 * this subtransaction, and a rollback of it would take the
			 * segment from the statement that wrote it (a whole segment's
			 * rows lost, the statement committed).
			 */
			if (segment_writer_sending(aw->writer, segment_no))
				am_read_in_subxact_error(f->rel);
			dir = am_find_segment(segment_writer_written(aw->writer), segment_no);
		}
		if (dir == NULL)
		{
			if (segment_writer_segment_no(aw->writer) != segment_no)
				continue;
			/* the segment under way: recorded now, or its rows in memory */
			if (aw->subid != GetCurrentSubTransactionId())
				am_read_in_subxact_error(f->rel);
			if (f->no_values)
			{
				/* the segment under way has rows up to the next one's */
				int64		next_segment_no;

				*mine = true;
				*wcid = aw->cid;
				if (row >= segment_writer_next_row(aw->writer, &next_segment_no))
					return false;
				ExecStoreAllNullTuple(slot);
				slot->tts_tid = *tid;
				slot->tts_tableOid = RelationGetRelid(f->rel);
				return true;
			}
			{
				int64		next_segment_no;
				int64		rows = segment_writer_next_row(aw->writer, &next_segment_no);

				if (f->mem_dir && f->mem_dir->segment_no == segment_no && f->mem_rows == rows)
					dir = f->mem_dir;
				else
				{
					if (f->mem_dir && (f->st_dir == f->mem_dir || f->st2_dir == f->mem_dir ||
									   f->single_dir == f->mem_dir))
						am_fetch_forget_rowgroup(f);
					f->mem_dir = NULL;
					if (f->memcxt == NULL)
						f->memcxt = AllocSetContextCreate(f->cxt, "destor fetch buffered rows",
														  ALLOCSET_DEFAULT_SIZES);
					else
						MemoryContextReset(f->memcxt);
					old = MemoryContextSwitchTo(f->memcxt);
					dir = am_find_segment(segment_writer_pending(aw->writer), segment_no);
					MemoryContextSwitchTo(old);
					if (dir && dir->mem_chunks)
					{
						f->mem_dir = dir;
						f->mem_rows = rows;
					}
				}
			}
		}
		*mine = true;
		*wcid = aw->cid;
		if (dir == NULL)
			return false;
		if (dir->mem_chunks == NULL)
		{
			/* recorded: decoded from a copy this fetch owns, and kept */
			SegmentDirectory *own = am_find_segment(f->own_dirs, segment_no);

			if (own == NULL)
			{
				old = MemoryContextSwitchTo(f->cxt);
				own = segment_directory_parse(segment_directory_serialize(dir));
				own->segment_no = dir->segment_no;
				memcpy(own->object_id, dir->object_id, CODEC_OBJID_LEN);
				own->meta = dir->meta ? object_meta_copy(dir->meta) : NULL;
				f->own_dirs = lappend(f->own_dirs, own);
				MemoryContextSwitchTo(old);
			}
			return am_fetch_from(f, own, row, InvalidSnapshot, true, tid, slot);
		}
		found = am_fetch_from(f, dir, row, InvalidSnapshot, dir == f->mem_dir, tid, slot);
		return found;
	}
	return false;
}

/* Is the row in a segment this backend's writers of rel wrote?  Their command then. */
static bool
am_pending_writer_cid(Relation rel, ItemPointer tid, CommandId *wcid)
{
	int64		segment_no;
	int64		row;
	ListCell   *lc;

	if (!ItemPointerIsValid(tid))
		return false;
	am_tid_to_row(tid, &segment_no, &row);
	foreach(lc, am_writers)
	{
		AmWriter   *aw = lfirst(lc);

		if (aw->relid != RelationGetRelid(rel))
			continue;
		if (segment_writer_segment_no(aw->writer) == segment_no ||
			segment_writer_sending(aw->writer, segment_no) ||
			am_find_segment(segment_writer_written(aw->writer), segment_no) != NULL)
		{
			*wcid = aw->cid;
			return true;
		}
	}
	return false;
}

/*
 * A row under a snapshot that is not MVCC: its segment's catalog row decides,
 * under that snapshot (SnapshotDirty sets xmin to an inserting transaction
 * still in progress).  Such a transaction's row is reported as there with no
 * values: its objects are not visible to this backend, and the callers (the
 * unique checks) wait for it and look again.  A segment another transaction
 * is still writing has no catalog row yet: the metapage names the
 * transaction that took its number, asked first (asked after the catalog,
 * the writer could record and commit in between, and the row be missed).
 */
static bool
am_fetch_nonmvcc(AmFetch *f, int64 segment_no, int64 row, Snapshot snapshot,
				 ItemPointer tid, TupleTableSlot *slot)
{
	int64		row_count = -1;
	SegmentDirectory *dir = NULL;
	Snapshot	latest;
	bool		have_values;
	MemoryContext old;

	/*
	 * SnapshotAny (an UPDATE's old row, AFTER triggers' rows): every row of
	 * a segment the latest snapshot sees, deleted or not; the segment's
	 * directory and row group are kept for the next row.
	 */
	if (snapshot->snapshot_type == SNAPSHOT_ANY)
	{
		if (f->any_lxid != MyProc->lxid || f->any_generation != am_inval_generation)
		{
			/* another transaction, or a segment may have a new object */
			if (f->any_dir[0] || f->any_dir[1])
				am_fetch_forget_rowgroup(f);
			for (int i = 0; i < 2; i++)
			{
				f->any_dir[i] = NULL;
				MemoryContextReset(f->anycxt[i]);
			}
			f->any_lxid = MyProc->lxid;
			f->any_generation = am_inval_generation;
		}
		if (f->any_dir[1] && f->any_dir[1]->segment_no == segment_no)
		{
			SegmentDirectory *d = f->any_dir[1];
			MemoryContext c = f->anycxt[1];

			f->any_dir[1] = f->any_dir[0];
			f->anycxt[1] = f->anycxt[0];
			f->any_dir[0] = d;
			f->anycxt[0] = c;
		}
		if (f->any_dir[0] == NULL || f->any_dir[0]->segment_no != segment_no)
		{
			/* the older one goes; this one comes first */
			SegmentDirectory *gone = f->any_dir[1];
			MemoryContext c = f->anycxt[1];

			if (gone && (f->st_dir == gone || f->st2_dir == gone))
				am_fetch_forget_rowgroup(f);
			MemoryContextReset(c);
			f->any_dir[1] = f->any_dir[0];
			f->anycxt[1] = f->anycxt[0];
			f->any_dir[0] = NULL;
			f->anycxt[0] = c;
			latest = RegisterSnapshot(GetLatestSnapshot());
			old = MemoryContextSwitchTo(c);
			if (am_segment_lookup(f, latest, segment_no, &row_count, &dir))
				f->any_dir[0] = dir;
			MemoryContextSwitchTo(old);
			UnregisterSnapshot(latest);
		}
		if (f->any_dir[0])
			return am_fetch_from(f, f->any_dir[0], row, InvalidSnapshot, true, tid, slot);
	}

	/* deleted by this transaction, not recorded yet (an UPDATE's old row) */
	if (snapshot->snapshot_type != SNAPSHOT_ANY &&
		am_pending_deleted(RelationGetRelid(f->rel), segment_no, row, InvalidCommandId, NULL))
		return false;
	if (snapshot->snapshot_type == SNAPSHOT_DIRTY)
	{
		TransactionId xid = am_segment_xid(f->rel, segment_no);

		if (TransactionIdIsValid(xid) && !TransactionIdIsCurrentTransactionId(xid) &&
			TransactionIdIsInProgress(xid))
		{
			snapshot->xmin = xid;
			ExecStoreAllNullTuple(slot);
			slot->tts_tid = *tid;
			slot->tts_tableOid = RelationGetRelid(f->rel);
			return true;
		}
	}
	if (!am_segment_lookup(f, snapshot, segment_no, &row_count, NULL) ||
		row < 0 || row >= row_count)
		return false;
	if (snapshot->snapshot_type != SNAPSHOT_ANY)
	{
		AmRowDeleters rd;

		/* deleted by this transaction or a committed one: no row */
		am_row_deleters(f->opts->table_id, segment_no, row, &rd);
		if (rd.mine || TransactionIdIsValid(rd.committed))
			return false;
		/* being deleted by another transaction: SnapshotDirty names it */
		if (snapshot->snapshot_type == SNAPSHOT_DIRTY)
		{
			TransactionId deleter = TransactionIdIsValid(rd.in_progress) ? rd.in_progress :
				am_segment_deleter(f->rel, segment_no);

			if (TransactionIdIsValid(deleter))
				snapshot->xmax = deleter;
		}
	}
	if (snapshot->snapshot_type == SNAPSHOT_DIRTY && TransactionIdIsValid(snapshot->xmin))
		have_values = false;
	else
	{
		/* committed, or this transaction's: its values as the latest snapshot sees them */
		am_fetch_forget_rowgroup(f);
		f->have_list = false;
		MemoryContextReset(f->listcxt);
		f->segments = NIL;
		latest = RegisterSnapshot(GetLatestSnapshot());
		old = MemoryContextSwitchTo(f->listcxt);
		if (!am_segment_lookup(f, latest, segment_no, &row_count, &dir))
			dir = NULL;
		MemoryContextSwitchTo(old);
		have_values = dir != NULL && am_fetch_from(f, dir, row, latest, false, tid, slot);
		UnregisterSnapshot(latest);
	}
	if (!have_values)
	{
		ExecStoreAllNullTuple(slot);
		slot->tts_tid = *tid;
		slot->tts_tableOid = RelationGetRelid(f->rel);
	}
	return true;
}

/* am_fetch_row: the row of tid as snapshot sees it, into slot. */
static bool
am_fetch_row(AmFetch *f, ItemPointer tid, Snapshot snapshot, TupleTableSlot *slot)
{
	int64		segment_no;
	int64		row;
	SegmentDirectory *dir;
	bool		mine;
	bool		found;
	CommandId	wcid;

	/* as HeapTupleSatisfiesDirty: no transaction to wait for unless found */
	if (snapshot != InvalidSnapshot && snapshot->snapshot_type == SNAPSHOT_DIRTY)
	{
		snapshot->xmin = snapshot->xmax = InvalidTransactionId;
		snapshot->speculativeToken = 0;
	}
	if (!ItemPointerIsValid(tid))
		return false;
	am_tid_to_row(tid, &segment_no, &row);
	if (segment_no < 1)
		return false;

	/*
	 * Rows of this command (or a later one) are invisible to an MVCC
	 * snapshot (below): said before anything is read, since an UPDATE's
	 * index scan meets every new version it writes, and reading them from
	 * the writer while it grows cost a copy of its buffered rows each.
	 */
	if (snapshot != InvalidSnapshot && IsMVCCSnapshot(snapshot) &&
		am_pending_writer_cid(f->rel, tid, &wcid) && wcid >= snapshot->curcid)
	{
		ExecClearTuple(slot);
		return false;
	}
	/* the statement's own rows */
	found = am_fetch_pending(f, segment_no, row, tid, slot, &mine, &wcid);
	if (mine)
	{
		/*
		 * Written by this command (or a later one, for a cursor's older
		 * snapshot): invisible to an MVCC snapshot, as heap's rows with
		 * cmin >= curcid are — an UPDATE fed by an index scan would
		 * otherwise find the versions it writes and update them again,
		 * without end.  Other snapshots (unique checks) see them.
		 */
		if (found && snapshot != InvalidSnapshot && IsMVCCSnapshot(snapshot) &&
			wcid >= snapshot->curcid)
		{
			ExecClearTuple(slot);
			return false;
		}
		if (found && am_row_deleted_for(f->rel, f->opts->table_id, segment_no, row,
										snapshot != InvalidSnapshot ? snapshot : SnapshotSelf))
		{
			ExecClearTuple(slot);
			return false;
		}
		return found;
	}
	if (snapshot == InvalidSnapshot || !IsMVCCSnapshot(snapshot))
		return am_fetch_nonmvcc(f, segment_no, row,
								snapshot != InvalidSnapshot ? snapshot : SnapshotSelf, tid, slot);
	dir = am_fetch_segment(f, snapshot, segment_no);
	if (dir == NULL)
		return false;			/* not visible to the snapshot: no row */
	if (am_pending_deleted(RelationGetRelid(f->rel), segment_no, row, snapshot->curcid, NULL))
		return false;			/* deleted by an earlier command, not recorded yet */
	return am_fetch_from(f, dir, row, snapshot, true, tid, slot);
}

typedef struct AmIndexFetch
{
	IndexFetchTableData base;
	AmFetch    *fetch;
} AmIndexFetch;

static struct IndexFetchTableData *
am_index_fetch_begin(Relation rel)
{
	AmIndexFetch *x = palloc0(sizeof(AmIndexFetch));

	x->base.rel = rel;
	x->fetch = am_fetch_create(rel);
	return &x->base;
}

static void
am_index_fetch_reset(struct IndexFetchTableData *data)
{
	/* keep the row group: a rescan is likely to read it again */
}

static void
am_index_fetch_end(struct IndexFetchTableData *data)
{
	AmIndexFetch *x = (AmIndexFetch *) data;

	am_fetch_free(x->fetch);
	pfree(x);
}

static bool
am_index_fetch_tuple(struct IndexFetchTableData *data, ItemPointer tid, Snapshot snapshot,
					 TupleTableSlot *slot, bool *call_again, bool *all_dead)
{
	AmIndexFetch *x = (AmIndexFetch *) data;

	/* one version a tid; never "all dead": dead rows' entries go at VACUUM
	 * (am_relation_vacuum), not when a scan meets them */
	*call_again = false;
	if (all_dead)
		*all_dead = false;
	return am_fetch_row(x->fetch, tid, snapshot, slot);
}

/*
 * am_version_fetch_for: the fetch of rows by tid outside an index, kept for
 * the transaction's next one of the same relation (storage): an UPDATE
 * fetches each old row to build its new version, AFTER triggers each
 * event's row, one after another in the same row groups.
 */
static AmFetch *
am_version_fetch_for(Relation rel)
{
	ListCell   *lc;
	AmVersionFetch *v = NULL;
	MemoryContext old;

	foreach(lc, am_version_fetches)
	{
		AmVersionFetch *x = lfirst(lc);

		if (x->relid == RelationGetRelid(rel) && x->relfilenode == rel->rd_node.relNode)
		{
			v = x;
			if (foreach_current_index(lc) > 0)
			{
				/* most recently used first */
				am_version_fetches = foreach_delete_current(am_version_fetches, lc);
				old = MemoryContextSwitchTo(TopTransactionContext);
				am_version_fetches = lcons(v, am_version_fetches);
				MemoryContextSwitchTo(old);
			}
			break;
		}
	}
	if (v == NULL)
	{
		am_ensure_callbacks();
		old = MemoryContextSwitchTo(TopTransactionContext);
		if (list_length(am_version_fetches) >= AM_VERSION_FETCHES)
		{
			AmVersionFetch *last = llast(am_version_fetches);

			am_fetch_free(last->fetch);
			pfree(last);
			am_version_fetches = list_delete_last(am_version_fetches);
		}
		v = palloc(sizeof(AmVersionFetch));
		v->relid = RelationGetRelid(rel);
		v->relfilenode = rel->rd_node.relNode;
		v->fetch = am_fetch_create(rel);
		am_version_fetches = lcons(v, am_version_fetches);
		MemoryContextSwitchTo(old);
	}
	v->fetch->rel = rel;
	return v->fetch;
}

/*
 * A row by tid outside an index: AFTER ROW triggers (their event names the
 * row, fetched with SnapshotAny when the statement ends, its rows maybe still
 * buffered), foreign keys from a destor table (the check asks whether the new
 * row is alive under SnapshotSelf), TID scans.  One version a row: the
 * latest tid is the tid.  The slot is materialized: the fetch's decoded row
 * group goes with it.
 */
static bool
am_tuple_fetch_row_version(Relation rel, ItemPointer tid, Snapshot snapshot, TupleTableSlot *slot)
{
	AmFetch    *f = am_version_fetch_for(rel);
	bool		found = am_fetch_row(f, tid, snapshot, slot);

	if (found)
		ExecMaterializeSlot(slot);
	return found;
}

static bool
am_tuple_tid_valid(TableScanDesc scan, ItemPointer tid)
{
	return ItemPointerIsValid(tid);
}

static void
am_tuple_get_latest_tid(TableScanDesc scan, ItemPointer tid)
{
	/* an UPDATE's new version is not linked from the old row: the tid
	 * names the latest version known */
}

/* Whether snapshot sees the row of tid. */
static bool
am_row_visible(Relation rel, ItemPointer tid, Snapshot snapshot)
{
	TupleTableSlot *scratch = MakeSingleTupleTableSlot(RelationGetDescr(rel), am_slot_ops());
	AmFetch    *f = am_fetch_create(rel);
	bool		found;

	f->no_values = true;
	found = am_fetch_row(f, tid, snapshot, scratch);

	am_fetch_free(f);
	ExecDropSingleTupleTableSlot(scratch);
	return found;
}

static bool
am_tuple_satisfies_snapshot(Relation rel, TupleTableSlot *slot, Snapshot snapshot)
{
	return am_row_visible(rel, &slot->tts_tid, snapshot);
}

/*
 * Index AMs ask which of their entries' rows are dead (btree before it
 * splits a page).  None is reported: VACUUM removes the entries of deleted
 * rows and aborted inserts (am_relation_vacuum); this would need the same
 * horizon test per tid inside btree's page split.
 */
static TransactionId
am_index_delete_tuples(Relation rel, TM_IndexDeleteOp *delstate)
{
	for (int i = 0; i < delstate->ndeltids; i++)
		delstate->status[delstate->deltids[i].id].knowndeletable = false;
	return InvalidTransactionId;
}

/* ---------------------------------------------------------------------------
 * Inserts
 * ------------------------------------------------------------------------- */
static void
am_check_not_parallel(Relation rel)
{
	if (IsInParallelMode())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write destor table \"%s\" from a parallel plan",
						RelationGetRelationName(rel)),
				 errdetail("Its rows are recorded in destor's catalog, which a parallel operation cannot write."),
				 errhint("SET max_parallel_workers_per_gather = 0 for CREATE TABLE ... AS.")));
}

/*
 * Inserts, updates and deletes are counted in the cumulative statistics as
 * heap counts them (pg_stat_user_tables; one UPDATE is one update, not a
 * delete and an insert): autovacuum and autoanalyze decide from them.
 */
static void
am_insert_row(Relation rel, TupleTableSlot *slot, CommandId cid)
{
	AmWriter   *aw;
	int64		segment_no;
	int64		row;

	am_check_not_parallel(rel);
	aw = am_writer_for(rel, cid);
	/* the row's tid before it is added: adding may finish its segment */
	row = segment_writer_next_row(aw->writer, &segment_no);
	slot_getallattrs(slot);
	segment_writer_add(aw->writer, slot->tts_values, slot->tts_isnull);
	am_row_to_tid(segment_no, row, &slot->tts_tid);
	slot->tts_tableOid = RelationGetRelid(rel);
}

static void
am_tuple_insert(Relation rel, TupleTableSlot *slot, CommandId cid, int options,
				struct BulkInsertStateData *bistate)
{
	am_insert_row(rel, slot, cid);
	pgstat_count_heap_insert(rel, 1);
}

static void
am_multi_insert(Relation rel, TupleTableSlot **slots, int nslots, CommandId cid, int options,
				struct BulkInsertStateData *bistate)
{
	for (int i = 0; i < nslots; i++)
	{
		CHECK_FOR_INTERRUPTS();
		am_insert_row(rel, slots[i], cid);
	}
	pgstat_count_heap_insert(rel, nslots);
}

static void
am_finish_bulk_insert(Relation rel, int options)
{
	am_flush_writers(RelationGetRelid(rel), InvalidCommandId, false);
}

/*
 * INSERT ... ON CONFLICT: the row is inserted as any other; the executor
 * checked for a conflict before.  Another transaction's row with the same
 * key can come in between (the index insertion finds it): heap then kills
 * its speculative tuple and the executor tries again, but a destor row
 * cannot be taken back yet, so the statement fails and the transaction can
 * be retried.  DO UPDATE locks the conflicting row: refused (tuple_lock).
 */
static void
am_tuple_insert_speculative(Relation rel, TupleTableSlot *slot, CommandId cid, int options,
							struct BulkInsertStateData *bistate, uint32 specToken)
{
	am_tuple_insert(rel, slot, cid, options, bistate);
}

static void
am_tuple_complete_speculative(Relation rel, TupleTableSlot *slot, uint32 specToken, bool succeeded)
{
	if (!succeeded)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not insert into destor table \"%s\": a concurrent transaction inserted the same key",
						RelationGetRelationName(rel)),
				 errdetail("INSERT ... ON CONFLICT found no conflict, then another transaction's row with the same key; a row of a destor table cannot be taken back."),
				 errhint("Retry the transaction.")));
}

/* ---------------------------------------------------------------------------
 * DELETE, UPDATE and row locks (stage 3)
 *
 * A DELETE marks the row in its statement's writer (am_pending_delete); the
 * marks are recorded in destor.deletions, one bitmap per segment, when the
 * statement ends, as the foreign tables' DELETE records them.  An UPDATE is
 * a DELETE of the old row and an INSERT of the new version, which gets a new
 * tid (every index gets an entry for it).  Before marking, the row's segment
 * is locked (am_lock_segment) and its recorded deletions read: the row may
 * have been deleted by this transaction, or by a transaction that committed
 * after the snapshot (TM_Deleted, or TM_Updated when that transaction also
 * wrote rows of the table: an UPDATE, whose new version cannot be found, so
 * that READ COMMITTED cannot re-check it and raises a serialization failure
 * from am_tuple_lock instead of skipping the row — a lost update).
 * ------------------------------------------------------------------------- */

/* Whether transaction xid recorded a segment of the table (an UPDATE's new rows). */
static bool
am_xact_wrote_rows(const uint8 *table_id, TransactionId xid)
{
	Oid			nsp = get_namespace_oid("destor", false);
	Relation	segrel = table_open(get_relname_relid("segments", nsp), AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		wrote = false;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, object_id_datum(table_id));
	scan = systable_beginscan(segrel, get_relname_relid("segments_pkey", nsp), true,
							  SnapshotSelf, 1, &key);
	while (!wrote && HeapTupleIsValid(tup = systable_getnext(scan)))
		wrote = TransactionIdEquals(HeapTupleHeaderGetXmin(tup->t_data), xid);
	systable_endscan(scan);
	table_close(segrel, AccessShareLock);
	return wrote;
}

/* What am_claim_row locks the row for, heap's four tuple lock modes */
typedef enum AmClaim
{
	AM_CLAIM_KEY_SHARE,			/* FOR KEY SHARE: the key lock, shared */
	AM_CLAIM_SHARE,				/* FOR SHARE: the segment lock, shared */
	AM_CLAIM_NO_KEY,			/* non-key UPDATE, FOR NO KEY UPDATE: the segment's */
	AM_CLAIM_KEY				/* DELETE, key UPDATE, FOR UPDATE: the segment's and the key's */
} AmClaim;

/*
 * am_key_outlived: whether the key of the row of tid, which a transaction
 * the snapshot does not see deleted, lives on in a row SnapshotSelf sees
 * (committed, or this transaction's) with the same key hash — the new
 * version a non-key UPDATE wrote, which the key lock this transaction holds
 * keeps.  A DELETE's deletion and a non-key UPDATE's look alike; the
 * key's unique index tells them apart.  False when it cannot tell (no such
 * index, a NULL in the key).
 */
static bool
am_key_outlived(Relation rel, ItemPointer tid)
{
	int2vector *attrs = NULL;
	Oid			indexoid = am_key_index(rel, &attrs);
	TupleTableSlot *old;
	TupleTableSlot *found;
	Relation	index;
	ScanKeyData *keys;
	IndexScanDesc scan;
	bool		outlived = false;
	uint32		hash;

	if (!OidIsValid(indexoid))
		return false;
	old = MakeSingleTupleTableSlot(RelationGetDescr(rel), am_slot_ops());
	if (!am_tuple_fetch_row_version(rel, tid, SnapshotAny, old))
	{
		ExecDropSingleTupleTableSlot(old);
		return false;
	}
	slot_getallattrs(old);
	index = index_open(indexoid, AccessShareLock);
	keys = palloc(sizeof(ScanKeyData) * attrs->dim1);
	for (int i = 0; i < attrs->dim1; i++)
	{
		AttrNumber	attno = attrs->values[i];
		Oid			opno;

		opno = get_opfamily_member(index->rd_opfamily[i], index->rd_opcintype[i],
								   index->rd_opcintype[i], BTEqualStrategyNumber);
		if (old->tts_isnull[attno - 1] || index->rd_rel->relam != BTREE_AM_OID ||
			!OidIsValid(opno))
		{
			index_close(index, AccessShareLock);
			ExecDropSingleTupleTableSlot(old);
			return false;
		}
		ScanKeyEntryInitialize(&keys[i], 0, i + 1, BTEqualStrategyNumber, index->rd_opcintype[i],
							   index->rd_indcollation[i], get_opcode(opno),
							   old->tts_values[attno - 1]);
	}
	hash = am_key_hash(rel, old);
	found = MakeSingleTupleTableSlot(RelationGetDescr(rel), am_slot_ops());
	scan = index_beginscan(rel, index, SnapshotSelf, attrs->dim1, 0);
	index_rescan(scan, keys, attrs->dim1, NULL, 0);
	while (!outlived && index_getnext_slot(scan, ForwardScanDirection, found))
		outlived = am_key_hash(rel, found) == hash;
	index_endscan(scan);
	index_close(index, AccessShareLock);
	ExecDropSingleTupleTableSlot(found);
	ExecDropSingleTupleTableSlot(old);
	return outlived;
}

/*
 * am_claim_key: the key lock of the row of tid for am_claim_row; row is
 * that row if the caller has it (else it is fetched when the hash is
 * needed).  False with *result set if the lock is not taken.
 */
static bool
am_claim_key(Relation rel, ItemPointer tid, bool exclusive, TupleTableSlot *row,
			 LockWaitPolicy wait_policy, TM_Result *result)
{
	uint32		hash = 0;
	LOCKTAG		whole;
	LOCKTAG		key;

	if (am_key_lock_needs_hash(rel, exclusive))
	{
		TupleTableSlot *scratch = row;

		if (scratch == NULL)
			scratch = MakeSingleTupleTableSlot(RelationGetDescr(rel), am_slot_ops());
		if (row == NULL && !am_tuple_fetch_row_version(rel, tid, SnapshotAny, scratch))
		{
			ExecDropSingleTupleTableSlot(scratch);
			*result = TM_Deleted;
			return false;
		}
		hash = am_key_hash(rel, scratch);
		if (row == NULL)
			ExecDropSingleTupleTableSlot(scratch);
	}
	am_all_keys_tag(&whole, rel);
	am_key_tag(&key, rel, hash);
	if (!am_lock_item(rel, &key, &whole, &am_lock_count(rel)->keys, exclusive, wait_policy))
	{
		*result = TM_WouldBlock;
		return false;
	}
	return true;
}

/*
 * am_claim_row: lock the row (see "Segment locks and key locks" for what
 * each mode locks) and say whether the row may be changed or locked: TM_Ok;
 * TM_SelfModified (this transaction deleted it; tmfd->cmax the command);
 * TM_Deleted or TM_Updated (a transaction the snapshot does not see deleted
 * it); TM_WouldBlock (LockWaitSkip and the row is locked).  row: the row
 * of tid if the caller has fetched it, else NULL.
 */
static TM_Result
am_claim_row(Relation rel, const uint8 *table_id, ItemPointer tid, Snapshot snapshot,
			 AmClaim mode, TupleTableSlot *row, LockWaitPolicy wait_policy, TM_FailureData *tmfd)
{
	int64		segment_no;
	int64		row_no;
	CommandId	cid;
	AmRowDeleters rd;
	TM_Result	result;

	am_tid_to_row(tid, &segment_no, &row_no);
	if (!ItemPointerIsValid(tid) || segment_no < 1)
		elog(ERROR, "invalid tid (%u,%u) for destor table \"%s\"",
			 ItemPointerGetBlockNumberNoCheck(tid), ItemPointerGetOffsetNumberNoCheck(tid),
			 RelationGetRelationName(rel));
	tmfd->ctid = *tid;
	tmfd->xmax = InvalidTransactionId;
	tmfd->cmax = InvalidCommandId;
	tmfd->traversed = false;

	/* an xid, so that SnapshotDirty's callers can wait for this transaction */
	(void) GetCurrentTransactionId();
	/* segment first, then key: a key lock is never held while waiting for a segment */
	if (mode != AM_CLAIM_KEY_SHARE &&
		!am_lock_segment(rel, segment_no, mode != AM_CLAIM_SHARE, wait_policy))
		return TM_WouldBlock;
	if ((mode == AM_CLAIM_KEY_SHARE || mode == AM_CLAIM_KEY) &&
		!am_claim_key(rel, tid, mode == AM_CLAIM_KEY, row, wait_policy, &result))
		return result;

	/*
	 * Every other transaction that deleted rows of the segment has ended:
	 * it held the segment's lock.  (A deleter still running would be one
	 * that holds only the whole-table lock: the lock above waited for it.)
	 * Not so for FOR KEY SHARE, which took no segment lock: a deleter of
	 * the row still running can only be a non-key UPDATE (anything that
	 * removes the key holds the key lock), whose new version keeps the key
	 * — the row is locked as heap locks it, without waiting; and the
	 * recorded deletions are read afresh, not from the claimed segment's
	 * copy, which only a segment lock keeps current.
	 */
	if (am_pending_deleted(RelationGetRelid(rel), segment_no, row_no, InvalidCommandId, &cid))
	{
		tmfd->xmax = GetCurrentTransactionId();
		tmfd->cmax = cid;
		return TM_SelfModified;
	}
	if (mode == AM_CLAIM_KEY_SHARE)
		am_row_deleters(table_id, segment_no, row_no, &rd);
	else
		for (;;)
		{
			if (am_claimed_deleters(rel, table_id, segment_no, row_no, &rd))
				break;
			am_row_deleters(table_id, segment_no, row_no, &rd);
			if (!TransactionIdIsValid(rd.in_progress) || rd.mine || TransactionIdIsValid(rd.committed))
				break;
			/* cannot happen while the lock is held; wait as heap would */
			XactLockTableWait(rd.in_progress, rel, tid, XLTW_Delete);
		}
	if (rd.mine)
	{
		tmfd->xmax = GetCurrentTransactionId();
		tmfd->cmax = rd.my_cid;
		return TM_SelfModified;
	}
	if (TransactionIdIsValid(rd.committed))
	{
		/*
		 * FOR KEY SHARE of a row a non-key UPDATE replaced after the
		 * snapshot: the key lives on in the new version, locked now; heap
		 * locks the row too.
		 */
		if (mode == AM_CLAIM_KEY_SHARE && am_key_outlived(rel, tid))
			return TM_Ok;
		tmfd->xmax = rd.committed;
		if (TransactionIdIsNormal(rd.committed) &&
			(snapshot == InvalidSnapshot || !IsMVCCSnapshot(snapshot) ||
			 XidInMVCCSnapshot(rd.committed, snapshot)))
		{
			if (am_xact_wrote_rows(table_id, rd.committed))
				return TM_Updated;

			/*
			 * A partition's row may have been moved to another partition
			 * by an UPDATE (a DELETE here and an INSERT there, maybe into
			 * a heap partition): nothing recorded tells that from a
			 * DELETE, and skipping the row would lose this statement's
			 * change of it silently.  Fail as for a concurrent update
			 * (heap fails a moved row too; a plain DELETE it would skip).
			 */
			if (rel->rd_rel->relispartition)
				return TM_Updated;
		}
		return TM_Deleted;
	}
	return TM_Ok;
}

/*
 * am_delete_row: DELETE, or the deletion of an UPDATE's old row (mode
 * AM_CLAIM_KEY or AM_CLAIM_NO_KEY; row the old row if fetched, else NULL).
 */
static TM_Result
am_delete_row(Relation rel, ItemPointer tid, CommandId cid, Snapshot snapshot,
			  Snapshot crosscheck, bool wait, TM_FailureData *tmfd, AmClaim mode,
			  TupleTableSlot *row)
{
	AmWriter   *aw;
	TM_Result	result;
	int64		segment_no;
	int64		row_no;

	am_check_not_parallel(rel);
	aw = am_writer_for(rel, cid);
	result = am_claim_row(rel, aw->opts->table_id, tid, snapshot, mode, row,
						  wait ? LockWaitBlock : LockWaitSkip, tmfd);
	if (result != TM_Ok)
		return result;

	/*
	 * A REPEATABLE READ foreign-key action (crosscheck: the transaction's
	 * snapshot) must not change a row that snapshot does not see.
	 */
	if (crosscheck != InvalidSnapshot &&
		!am_row_visible(rel, tid, crosscheck))
		return TM_Updated;
	am_tid_to_row(tid, &segment_no, &row_no);
	am_pending_delete(aw, segment_no, row_no);
	return TM_Ok;
}

static TM_Result
am_tuple_delete(Relation rel, ItemPointer tid, CommandId cid, Snapshot snapshot,
				Snapshot crosscheck, bool wait, TM_FailureData *tmfd, bool changingPart)
{
	TM_Result	result = am_delete_row(rel, tid, cid, snapshot, crosscheck, wait, tmfd,
										   AM_CLAIM_KEY, NULL);

	if (result == TM_Ok)
		pgstat_count_heap_delete(rel);
	return result;
}

/*
 * UPDATE: the old row deleted, the new version inserted with a new tid.  An
 * UPDATE that changes no key column is heap's FOR NO KEY UPDATE: it takes
 * no key lock, so foreign keys' FOR KEY SHARE neither waits for it nor
 * fails after it.
 */
static TM_Result
am_tuple_update(Relation rel, ItemPointer otid, TupleTableSlot *slot, CommandId cid,
				Snapshot snapshot, Snapshot crosscheck, bool wait, TM_FailureData *tmfd,
				LockTupleMode *lockmode, bool *update_indexes)
{
	TM_Result	result;
	TupleTableSlot *old = MakeSingleTupleTableSlot(RelationGetDescr(rel), am_slot_ops());
	bool		key_changed = true;

	*update_indexes = false;
	/* a row version never changes: read before any lock, as heap reads it */
	if (am_tuple_fetch_row_version(rel, otid, SnapshotAny, old))
		key_changed = am_update_changes_key(rel, old, slot);
	*lockmode = key_changed ? LockTupleExclusive : LockTupleNoKeyExclusive;
	result = am_delete_row(rel, otid, cid, snapshot, crosscheck, wait, tmfd,
						   key_changed ? AM_CLAIM_KEY : AM_CLAIM_NO_KEY,
						   key_changed && !TTS_EMPTY(old) ? old : NULL);
	ExecDropSingleTupleTableSlot(old);
	if (result != TM_Ok)
		return result;
	am_insert_row(rel, slot, cid);
	{
		int64		segment_no;
		int64		row_no;

		am_tid_to_row(otid, &segment_no, &row_no);
		am_pending_successor(am_writer_for(rel, cid), segment_no, row_no, &slot->tts_tid);
	}
	pgstat_count_heap_update(rel, false);
	*update_indexes = true;
	return TM_Ok;
}

/*
 * The successors of one segment's rows (destor.deletions.successors), as
 * the latest snapshot saw them when loaded: row -> new row number, and the
 * transactions whose deletions of the segment were read, so that a row
 * such a transaction deleted without a successor is known to have none.
 * Kept for the transaction (a READ COMMITTED UPDATE of many rows another
 * transaction updated follows them in a row), loaded again when a row's
 * deleter is not among those read.
 */
typedef struct AmSuccessorEntry
{
	int64		row;			/* hash key */
	uint64		rowid;
} AmSuccessorEntry;

typedef struct AmSuccessors
{
	MemoryContext cxt;
	uint8		table_id[CODEC_OBJID_LEN];
	int64		segment_no;
	HTAB	   *rows;
	List	   *deleters;		/* TransactionIds read (32 bits, kept as an oid list) */
} AmSuccessors;

static AmSuccessors *am_successors = NULL;	/* in TopTransactionContext */
StaticAssertDecl(sizeof(TransactionId) == sizeof(Oid), "xids are kept in an oid list");

static void
am_successors_load(const uint8 *table_id, int64 segment_no)
{
	Oid			nsp = get_namespace_oid("destor", false);
	Relation	delrel = table_open(get_relname_relid("deletions", nsp), AccessShareLock);
	AttrNumber	succ_att = get_attnum(RelationGetRelid(delrel), "successors");
	Snapshot	latest = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	HASHCTL		ctl = {0};
	MemoryContext old;

	if (am_successors == NULL)
	{
		am_ensure_callbacks();
		am_successors = MemoryContextAllocZero(TopTransactionContext, sizeof(AmSuccessors));
		am_successors->cxt = AllocSetContextCreate(TopTransactionContext, "destor successors",
												   ALLOCSET_DEFAULT_SIZES);
	}
	MemoryContextReset(am_successors->cxt);
	memcpy(am_successors->table_id, table_id, CODEC_OBJID_LEN);
	am_successors->segment_no = segment_no;
	am_successors->deleters = NIL;
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(AmSuccessorEntry);
	ctl.hcxt = am_successors->cxt;
	am_successors->rows = hash_create("destor successors", 1024, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_UUID_EQ, object_id_datum(table_id));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(segment_no));
	scan = systable_beginscan(delrel, get_relname_relid("deletions_segment_idx", nsp), true,
							  latest, 2, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d;
		bytea	   *pairs;
		const uint8 *p;
		size_t		len;

		old = MemoryContextSwitchTo(am_successors->cxt);
		am_successors->deleters = lappend_oid(am_successors->deleters,
											  (Oid) HeapTupleHeaderGetXmin(tup->t_data));
		MemoryContextSwitchTo(old);
		if (succ_att == InvalidAttrNumber)
			continue;
		d = heap_getattr(tup, succ_att, RelationGetDescr(delrel), &isnull);
		if (isnull)
			continue;
		pairs = DatumGetByteaPP(d);
		p = (const uint8 *) VARDATA_ANY(pairs);
		len = VARSIZE_ANY_EXHDR(pairs);
		for (size_t off = 0; off + AM_SUCCESSOR_BYTES <= len; off += AM_SUCCESSOR_BYTES)
		{
			int64		r = 0;
			uint64		rowid = 0;
			AmSuccessorEntry *e;

			for (int i = 0; i < 4; i++)
				r |= (int64) p[off + i] << (8 * i);
			for (int i = 0; i < 8; i++)
				rowid |= (uint64) p[off + 4 + i] << (8 * i);
			e = hash_search(am_successors->rows, &r, HASH_ENTER, NULL);
			e->rowid = rowid;
		}
		/* a detoasted copy goes now, not with the query */
		if ((Pointer) pairs != DatumGetPointer(d))
			pfree(pairs);
	}
	systable_endscan(scan);
	UnregisterSnapshot(latest);
	table_close(delrel, AccessShareLock);
}

/*
 * am_find_successor: where the committed UPDATE that deleted tid's row (its
 * transaction: deleter) put its new version; false if it recorded none (a
 * DELETE, or a partition's row moved elsewhere).
 */
static bool
am_find_successor(const uint8 *table_id, ItemPointer tid, TransactionId deleter,
				  ItemPointer next)
{
	int64		segment_no;
	int64		row;
	AmSuccessorEntry *e;

	am_tid_to_row(tid, &segment_no, &row);
	if (am_successors == NULL || am_successors->segment_no != segment_no ||
		memcmp(am_successors->table_id, table_id, CODEC_OBJID_LEN) != 0)
		am_successors_load(table_id, segment_no);
	else if (hash_search(am_successors->rows, &row, HASH_FIND, NULL) == NULL &&
			 !(TransactionIdIsValid(deleter) &&
			   list_member_oid(am_successors->deleters, (Oid) deleter)))
		am_successors_load(table_id, segment_no);	/* its deletions came since */
	e = hash_search(am_successors->rows, &row, HASH_FIND, NULL);
	if (e == NULL)
		return false;			/* the deleter recorded no successor */
	am_row_to_tid((int64) (e->rowid >> AM_ROW_BITS),
				  (int64) (e->rowid & ((1 << AM_ROW_BITS) - 1)), next);
	return true;
}

/*
 * Row locks: the row's segment lock (see am_lock_segment), ShareLock for FOR
 * SHARE, ExclusiveLock for FOR NO KEY UPDATE and FOR UPDATE, and its key
 * lock, ShareLock for FOR KEY SHARE, ExclusiveLock for FOR UPDATE, held to
 * the end of the transaction; the row (FOR KEY SHARE: its key) then cannot
 * be deleted or updated by another transaction until this one ends, which
 * is what foreign keys referencing the table and BEFORE UPDATE triggers
 * need.
 * A row a concurrent UPDATE replaced is followed to its latest version
 * (TUPLE_LOCK_FLAG_FIND_LAST_VERSION, READ COMMITTED's re-check) along the
 * links each UPDATE recorded (am_find_successor).
 */
static TM_Result
am_tuple_lock(Relation rel, ItemPointer tid, Snapshot snapshot, TupleTableSlot *slot,
			  CommandId cid, LockTupleMode mode, LockWaitPolicy wait_policy, uint8 flags,
			  TM_FailureData *tmfd)
{
	/* the kept fetch's options: no catalog query per row */
	TableOptions *opts = am_version_fetch_for(rel)->opts;
	TM_Result	result;
	CommandId	wcid;
	AmClaim		claim;

	/*
	 * A row this very command wrote (ON CONFLICT DO UPDATE meeting a row it
	 * inserted or updated itself): heap's tuple is invisible to the lock,
	 * and the executor raises "cannot affect row a second time".
	 */
	if (am_pending_writer_cid(rel, tid, &wcid) && wcid >= cid)
		return TM_Invisible;

	claim = mode == LockTupleKeyShare ? AM_CLAIM_KEY_SHARE :
		mode == LockTupleShare ? AM_CLAIM_SHARE :
		mode == LockTupleNoKeyExclusive ? AM_CLAIM_NO_KEY : AM_CLAIM_KEY;
	result = am_claim_row(rel, opts->table_id, tid, snapshot, claim, NULL, wait_policy, tmfd);

	/*
	 * READ COMMITTED's re-check (EvalPlanQual): the row's latest version,
	 * along the links each UPDATE recorded (am_find_successor), locked in
	 * turn; a version whose deleter was a plain DELETE is gone.
	 */
	while (result == TM_Updated && (flags & TUPLE_LOCK_FLAG_FIND_LAST_VERSION))
	{
		ItemPointerData next;

		CHECK_FOR_INTERRUPTS();
		if (!am_find_successor(opts->table_id, tid, tmfd->xmax, &next))
		{
			if (rel->rd_rel->relispartition)
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update"),
						 errdetail("A concurrent transaction deleted or moved the row of destor table \"%s\" to another partition.",
								   RelationGetRelationName(rel)),
						 errhint("Retry the transaction.")));
			return TM_Deleted;
		}
		*tid = next;
		tmfd->traversed = true;
		/* the version's own deleter, if any, is concurrent too: no snapshot */
		result = am_claim_row(rel, opts->table_id, tid, InvalidSnapshot, claim, NULL,
							  wait_policy, tmfd);
		if (result == TM_Ok)
			tmfd->traversed = true;
	}
	if (result != TM_Ok)
		return result;
	if (!am_tuple_fetch_row_version(rel, tid, SnapshotAny, slot))
		return TM_Deleted;
	return TM_Ok;
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
	if (rel->rd_node.relNode != newrnode->relNode &&
		am_lookup(RelationGetRelid(rel), rel->rd_node.relNode, &old))
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

	/* a file, as heap's: PostgreSQL expects the relation to have one; it
	 * holds the metapage */
	srel = RelationCreateStorage(*newrnode, persistence, true);
	am_metapage_write(srel, newrnode);
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
	if (am_lookup(RelationGetRelid(rel), rel->rd_node.relNode, &opts))
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

/*
 * VACUUM (stage 3): segments whose rows are all deleted, by deletions every
 * snapshot sees (committed before the oldest transaction still running),
 * are removed with their deletions, and their objects deleted after commit;
 * then every index loses the entries of rows deleted so (in those segments
 * and in others) and of segments an aborted or crashed writer took.
 * Scans never open a segment whose rows they all see deleted (am_segments),
 * so a reader that began before this VACUUM committed does not need the
 * object.
 *
 * A segment with more than destor.vacuum_rewrite_fraction of its rows dead
 * (and not pruned by an earlier VACUUM) is rewritten (am_vac_rewrite): a
 * new object where the dead rows are tombstones, NULL in every column, and
 * every other row keeps its values and its number.  Heap's pruning keeps
 * line pointers for the same reason: a row's tid is what its index entries
 * name, so rows are not moved and no index entry of a live row changes,
 * while the dead rows' entries go below.  The deletions stay (they hide the
 * tombstones); the old object is retired, for readers with older snapshots,
 * until cleanup_orphans' grace period ends.
 */
typedef struct AmVacSegment
{
	int64		segment_no;
	bool		reclaimed;		/* every row deleted: removed */
	int64		nbytes;
	uint8	   *dead;			/* rows deleted for every snapshot */
} AmVacSegment;

typedef struct AmVacState
{
	Relation	rel;
	TransactionId oldest_xmin;
	AmVacSegment *segs;			/* in segment order */
	int			nsegs;
	int64		last_segment_no;	/* the metapage's, when VACUUM began */
	/* the last segment number without a catalog row asked about */
	int64		asked_no;
	bool		asked_dead;
	double		dead_entries;
} AmVacState;

static bool
am_vac_note_deletion(HeapTupleHeader hdr, const uint8 *bits, int64 nbytes, void *arg)
{
	AmVacState *vs = arg;
	AmVacSegment *seg = &vs->segs[vs->nsegs];
	TransactionId xmin = HeapTupleHeaderGetXmin(hdr);

	/* only deletions that no snapshot can miss */
	if (TransactionIdIsNormal(xmin) &&
		(!TransactionIdPrecedes(xmin, vs->oldest_xmin) || !TransactionIdDidCommit(xmin)))
		return true;
	if (nbytes > seg->nbytes)
	{
		seg->dead = seg->dead ? repalloc(seg->dead, nbytes) : palloc(nbytes);
		memset(seg->dead + seg->nbytes, 0, nbytes - seg->nbytes);
		seg->nbytes = nbytes;
	}
	for (int64 b = 0; b < nbytes; b++)
		seg->dead[b] |= bits[b];
	return true;
}

static int
am_vac_compare(const void *a, const void *b)
{
	int64		x = ((const AmVacSegment *) a)->segment_no;
	int64		y = ((const AmVacSegment *) b)->segment_no;

	return x < y ? -1 : x > y;
}

/* The index bulk-delete callback: whether the entry's row is dead for all. */
static bool
am_vac_entry_dead(ItemPointer tid, void *arg)
{
	AmVacState *vs = arg;
	AmVacSegment key;
	AmVacSegment *seg;
	int64		row;
	bool		dead;

	am_tid_to_row(tid, &key.segment_no, &row);
	seg = bsearch(&key, vs->segs, vs->nsegs, sizeof(AmVacSegment), am_vac_compare);
	if (seg)
		dead = seg->reclaimed || am_bit_is_set(seg->dead, seg->nbytes, row);
	else if (key.segment_no == vs->asked_no)
		dead = vs->asked_dead;
	else
	{
		/*
		 * No catalog row: a segment being written (its transaction is in
		 * progress or committed after VACUUM read the catalog), or one whose
		 * writer aborted or crashed, which the metapage names while its slot
		 * is not reused.  Only the latter's entries are dead; a segment the
		 * metapage no longer names keeps its entries.
		 */
		TransactionId xid = key.segment_no >= 1 && key.segment_no <= vs->last_segment_no ?
			am_segment_xid(vs->rel, key.segment_no) : InvalidTransactionId;

		dead = TransactionIdIsNormal(xid) && TransactionIdPrecedes(xid, vs->oldest_xmin) &&
			!TransactionIdIsInProgress(xid) && !TransactionIdDidCommit(xid);
		vs->asked_no = key.segment_no;
		vs->asked_dead = dead;
	}
	if (dead)
		vs->dead_entries++;
	return dead;
}

/*
 * am_vac_segment_idle: no other transaction holds the segment's lock (or
 * the whole table's), as when it deletes, updates or locks rows of it.
 * Such a segment is left for a later VACUUM, as heap's VACUUM leaves a page
 * it cannot get a cleanup lock on: the transaction keeps reading the
 * segment's object as it found it.  The locks are not kept: a transaction
 * that comes later looks the segment up again.
 */
static bool
am_vac_segment_idle(Relation rel, int64 segment_no)
{
	LOCKTAG		whole;
	LOCKTAG		seg;
	bool		idle = false;

	am_whole_table_tag(&whole, rel);
	am_segment_tag(&seg, rel, segment_no);
	if (LockAcquire(&whole, RowShareLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
	{
		if (LockAcquire(&seg, ShareLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
		{
			idle = true;
			LockRelease(&seg, ShareLock, false);
		}
		LockRelease(&whole, RowShareLock, false);
	}
	return idle;
}

/*
 * am_vac_rewrite: segment dir again without its dead rows' values (dead:
 * the rows deleted for every snapshot, ndead of them).  Row groups keep
 * their sizes, so every row keeps its number; row groups with no live row
 * are not read; only the columns the segment has are written (those added
 * since keep coming from their default).  The new object replaces the old
 * one only if its chunks are smaller (tombstones can make regular values
 * compress worse); otherwise it is dropped and the old directory notes the
 * dead rows as dealt with, so that only more dead rows make the segment due
 * again.  Adds the segment's stored bytes before and after; true if the
 * segment was replaced.
 */
static bool
am_vac_rewrite(Relation rel, TableOptions *opts, SegmentDirectory *dir, const uint8 *dead,
			   int64 dead_bytes, int64 ndead, int64 *bytes_before, int64 *bytes_after)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			natts = desc->natts;
	SegmentDirectory readdir = *dir;
	SegmentWriter *w;
	DestorScan *st;
	Datum	   *values = palloc(sizeof(Datum) * Max(natts, 1));
	bool	   *isnull = palloc(sizeof(bool) * Max(natts, 1));
	bool	   *allnull = palloc(sizeof(bool) * Max(natts, 1));
	bool	   *live_rg = palloc0(sizeof(bool) * Max(dir->nrowgroups, 1));
	int64		first = 0;
	int			keep = 0;
	int64		before = 0;
	int64		after = 0;
	SegmentDirectory *nd = NULL;
	bool		replaced;

	/* whole_row_current skips the rows this bitmap names: the dead ones */
	readdir.deleted = palloc0((dir->row_count + 7) / 8 + 1);
	memcpy(readdir.deleted, dead, Min(dead_bytes, (dir->row_count + 7) / 8));
	for (int g = 0; g < dir->nrowgroups; first += dir->rg_rows[g], g++)
		for (int64 r = first; r < first + dir->rg_rows[g] && !live_rg[g]; r++)
			live_rg[g] = !am_bit_is_set(readdir.deleted, (dir->row_count + 7) / 8, r);
	for (int a = 0; a < natts; a++)
		allnull[a] = true;

	w = segment_writer_create(rel, opts);
	segment_writer_replace(w, dir->segment_no, dir->ncols, ndead);
	st = whole_row_scan(rel, opts, list_make1(&readdir));
	for (int u = 0; u < st->nunits; u++)
		if (live_rg[st->units[u].rg])
			st->units[keep++] = st->units[u];
	st->nunits = keep;
	for (int g = 0; g < dir->nrowgroups; g++)
	{
		uint32		rows = dir->rg_rows[g];

		CHECK_FOR_INTERRUPTS();
		if (live_rg[g] && (!next_rowgroup(st) || st->rg_rows != rows))
			elog(ERROR, "destor segment " INT64_FORMAT " changed while VACUUM rewrote it",
				 dir->segment_no);
		for (uint32 r = 0; r < rows; r++)
		{
			st->row = r;
			if (live_rg[g] && whole_row_current(st, values, isnull))
				segment_writer_add(w, values, isnull);
			else
				segment_writer_add(w, values, allnull);
		}
		segment_writer_end_rowgroup(w);
	}
	whole_row_scan_end(st);
	segment_writer_flush(w);
	for (int i = 0; i < dir->nrowgroups * dir->ncols; i++)
		before += dir->chunks[i].length;
	if (list_length(segment_writer_recorded(w)) == 1)
		nd = linitial(segment_writer_recorded(w));
	if (nd == NULL || nd->row_count != dir->row_count || nd->nrowgroups != dir->nrowgroups)
		elog(ERROR, "destor segment " INT64_FORMAT " was rewritten with other row groups",
			 dir->segment_no);
	for (int i = 0; i < nd->nrowgroups * nd->ncols; i++)
		after += nd->chunks[i].length;
	replaced = after < before;
	if (replaced)
		catalog_replace_segment(opts->table_id, dir->segment_no, dir->object_id, nd->object_id,
								segment_directory_serialize(nd));
	else
	{
		/* not smaller: the new object goes after commit, the old one stays */
		SegmentDirectory noted = *dir;

		catalog_delete_object(nd->object_id);
		object_delete_at_commit(nd->meta);
		noted.pruned = ndead;
		catalog_replace_segment(opts->table_id, dir->segment_no, dir->object_id, dir->object_id,
								segment_directory_serialize(&noted));
		after = before;
	}
	*bytes_before += before;
	*bytes_after += after;
	segment_writer_finish(w);
	pfree(readdir.deleted);
	pfree(live_rg);
	pfree(values);
	pfree(isnull);
	pfree(allnull);
	return replaced;
}

/* VACUUM FULL of a table USING destor: every segment with newly dead rows
 * is rewritten (tableam_ddl.c turns the statement into a plain VACUUM) */
void
am_set_vacuum_full(bool on)
{
	vacuum_full = on;
}

/*
 * am_vacuum_joins_snapshots: lazy VACUUM's transaction is left out of other
 * backends' snapshots (PROC_IN_VACUUM: it is not supposed to write).  This
 * one changes destor's catalog, and a reader whose snapshot does not list
 * its xid as running would take its deletions for an aborted transaction's
 * and mark them so (hint bits), keeping the removed segment's row alive
 * after commit.  So the flag goes before the first catalog change (before
 * the transaction has an xid); the transaction then counts as VACUUM FULL's
 * does.
 */
static void
am_vacuum_joins_snapshots(void)
{
	if (!(MyProc->statusFlags & PROC_IN_VACUUM))
		return;
	Assert(!TransactionIdIsValid(GetTopTransactionIdIfAny()));
	LWLockAcquire(ProcArrayLock, LW_EXCLUSIVE);
	MyProc->statusFlags &= ~PROC_IN_VACUUM;
	ProcGlobal->statusFlags[MyProc->pgxactoff] = MyProc->statusFlags;
	LWLockRelease(ProcArrayLock);
}

static void
am_relation_vacuum(Relation rel, struct VacuumParams *params, BufferAccessStrategy bstrategy)
{
	TableOptions *opts = am_options(rel);
	AmVacState vs = {0};
	List	   *segments;
	ListCell   *lc;
	int			nreclaimed = 0;
	int			nrewritten = 0;
	int			nkept = 0;		/* due, but a rewrite was not smaller */
	int64		rows_pruned = 0;
	int64		bytes_before = 0;
	int64		bytes_after = 0;
	int64		live_rows = 0;
	int64		recently_dead = 0;	/* deleted, but not for every snapshot yet */
	int			nindexes;
	Relation   *indexes;

	am_flush_writers(RelationGetRelid(rel), InvalidCommandId, false);
	vs.rel = rel;
	vs.oldest_xmin = GetOldestNonRemovableTransactionId(rel);
	vs.last_segment_no = am_last_segment_no(rel);
	vs.asked_no = -1;
	segments = catalog_table_segments(opts->table_id, NULL);
	vs.segs = palloc0(sizeof(AmVacSegment) * Max(list_length(segments), 1));
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);
		AmVacSegment *seg = &vs.segs[vs.nsegs];
		SnapshotData dirty;
		int64		dead = 0;

		CHECK_FOR_INTERRUPTS();
		seg->segment_no = dir->segment_no;
		if (dir->deleted_count > 0)
		{
			InitDirtySnapshot(dirty);
			am_scan_deletions(opts->table_id, dir->segment_no, &dirty, am_vac_note_deletion, &vs);
			for (int64 r = 0; r < dir->row_count; r++)
				dead += am_bit_is_set(seg->dead, seg->nbytes, r);
		}
		live_rows += dir->row_count - dir->deleted_count;
		recently_dead += dir->deleted_count - dead;
		if (dir->row_count > 0 && dead == dir->row_count)
		{
			ObjectMeta *meta = catalog_get_object(dir->object_id, true);

			am_vacuum_joins_snapshots();
			catalog_delete_segment(opts->table_id, dir->segment_no);
			if (meta)
			{
				catalog_delete_object(dir->object_id);
				object_delete_at_commit(meta);
			}
			seg->reclaimed = true;
			nreclaimed++;
		}
		else if (dead > dir->pruned &&
				 (vacuum_full ||
				  ((double) (dead - dir->pruned) > vacuum_rewrite_fraction * dir->row_count &&
				   vacuum_rewrite_fraction < 1.0)) &&
				 am_vac_segment_idle(rel, dir->segment_no))
		{
			am_vacuum_joins_snapshots();
			if (am_vac_rewrite(rel, opts, dir, seg->dead, seg->nbytes, dead, &bytes_before,
							   &bytes_after))
			{
				nrewritten++;
				rows_pruned += dead - dir->pruned;
			}
			else
				nkept++;
		}
		vs.nsegs++;
	}

	/* backends keeping a rewritten segment's directory look it up again */
	if (nrewritten > 0)
		CacheInvalidateRelcache(rel);

	/* the indexes' entries of dead rows */
	vac_open_indexes(rel, RowExclusiveLock, &nindexes, &indexes);
	for (int i = 0; i < nindexes; i++)
	{
		IndexVacuumInfo ivinfo = {0};
		IndexBulkDeleteResult *stats;

		ivinfo.index = indexes[i];
		ivinfo.message_level = DEBUG2;
		ivinfo.estimated_count = true;
		ivinfo.num_heap_tuples = rel->rd_rel->reltuples;
		ivinfo.strategy = bstrategy;
		stats = index_bulk_delete(&ivinfo, NULL, am_vac_entry_dead, &vs);
		stats = index_vacuum_cleanup(&ivinfo, stats);
		if (stats)
			pfree(stats);
	}
	vac_close_indexes(nindexes, indexes, NoLock);
	/* as heap's VACUUM: autovacuum's next decision starts from these */
	pgstat_report_vacuum(RelationGetRelid(rel), rel->rd_rel->relisshared, live_rows,
						 recently_dead);
	ereport(params->options & VACOPT_VERBOSE ? INFO : DEBUG2,
			(errmsg("destor table \"%s\": %d of %d segments reclaimed, %d rewritten without their " INT64_FORMAT " dead rows, %.0f index entries removed",
					RelationGetRelationName(rel), nreclaimed, vs.nsegs, nrewritten, rows_pruned,
					vs.dead_entries),
			 nrewritten > 0 || nkept > 0 ?
			 errdetail("The rewritten segments' column chunks went from " INT64_FORMAT " to " INT64_FORMAT " bytes; %d segments were left as they were, a rewrite not being smaller.",
					   bytes_before, bytes_after, nkept) : 0));
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

/*
 * am_index_build_range_scan: every row, with its tid, to the index AM's
 * callback (CREATE INDEX, REINDEX, ALTER TABLE's rebuilds).  The table is
 * locked against writers (ShareLock or stronger), so a fresh snapshot sees
 * every row that can ever be visible; expression and partial indexes are
 * evaluated as heap's build does.  CONCURRENTLY would need a validation pass
 * over the rows written meanwhile: refused.  BRIN summarizes block ranges,
 * which mean nothing here: only btree and hash are taken.
 */
static double
am_index_build_range_scan(Relation table_rel, Relation index_rel, struct IndexInfo *index_info,
						  bool allow_sync, bool anyvisible, bool progress,
						  BlockNumber start_blockno, BlockNumber numblocks,
						  IndexBuildCallback callback, void *callback_state, TableScanDesc scan)
{
	Oid			indam = index_rel->rd_rel->relam;
	EState	   *estate;
	ExprContext *econtext;
	ExprState  *predicate;
	TupleTableSlot *slot;
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	Snapshot	snapshot = InvalidSnapshot;
	double		rows = 0;

	if (indam != BTREE_AM_OID && indam != HASH_AM_OID)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("index access method \"%s\" is not supported on destor tables",
						get_am_name(indam)),
				 errdetail("Tables USING destor take btree and hash indexes."),
				 errhint("Create a btree or hash index.")));
	if (index_info->ii_Concurrent)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("CREATE INDEX CONCURRENTLY and REINDEX CONCURRENTLY are not supported on destor tables"),
				 errhint("Leave out CONCURRENTLY: the build locks out writers, not readers.")));
	if (start_blockno != 0 || numblocks != InvalidBlockNumber)
		am_not_supported("an index build over a range of blocks");

	estate = CreateExecutorState();
	econtext = GetPerTupleExprContext(estate);
	slot = table_slot_create(table_rel, NULL);
	econtext->ecxt_scantuple = slot;
	predicate = ExecPrepareQual(index_info->ii_Predicate, estate);
	if (scan == NULL)
	{
		snapshot = RegisterSnapshot(GetLatestSnapshot());
		scan = table_beginscan_strat(table_rel, snapshot, 0, NULL, true, false);
	}
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(econtext->ecxt_per_tuple_memory);
		rows += 1;
		if (predicate != NULL && !ExecQual(predicate, econtext))
			continue;
		FormIndexDatum(index_info, slot, estate, values, isnull);
		callback(index_rel, &slot->tts_tid, values, isnull, true, callback_state);
	}
	table_endscan(scan);
	if (snapshot != InvalidSnapshot)
		UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(slot);
	FreeExecutorState(estate);
	index_info->ii_ExpressionsState = NIL;
	index_info->ii_PredicateState = NULL;
	return rows;
}

static void
am_index_validate_scan(Relation table_rel, Relation index_rel, struct IndexInfo *index_info,
					   Snapshot snapshot, struct ValidateIndexState *state)
{
	am_not_supported("CREATE INDEX CONCURRENTLY");
}

static uint64
am_relation_size(Relation rel, ForkNumber forkNumber)
{
	TableOptions opts = {0};

	if (forkNumber != MAIN_FORKNUM ||
		!am_lookup(RelationGetRelid(rel), rel->rd_node.relNode, &opts))
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

	if (am_lookup(RelationGetRelid(rel), rel->rd_node.relNode, &opts))
	{
		/* the same command plans the table again (a function's loop): counted once */
		if (am_last_matches(rel->rd_node.relNode) && am_last.has_rows)
			rows = am_last.rows;
		else
		{
			rows = (double) am_row_count(opts.table_id);
			if (am_last_matches(rel->rd_node.relNode))
			{
				am_last.rows = rows;
				am_last.has_rows = true;
			}
		}
	}
	*tuples = rows;
	*pages = (BlockNumber) Max(1.0, ceil(rows * get_rel_data_width(rel, attr_widths) / BLCKSZ));
	*allvisfrac = 0;
}

/*
 * Bitmap scans: each tid of the block is fetched as an index scan fetches
 * it; a lossy block tries all its offsets (a row number past a segment's
 * rows, or of a segment the snapshot does not see, is no row).
 */
static bool
am_scan_bitmap_next_block(TableScanDesc scan, struct TBMIterateResult *tbmres)
{
	AmScanDesc *s = (AmScanDesc *) scan;

	if (s->fetch == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(s->cxt);

		s->fetch = am_fetch_create(scan->rs_rd);
		MemoryContextSwitchTo(old);
	}
	s->bm_block = tbmres->blockno;
	s->bm_ntuples = tbmres->ntuples;
	s->bm_next = 0;
	if (tbmres->ntuples > 0)
		memcpy(s->bm_offsets, tbmres->offsets, sizeof(OffsetNumber) * tbmres->ntuples);
	return tbmres->ntuples != 0;
}

static bool
am_scan_bitmap_next_tuple(TableScanDesc scan, struct TBMIterateResult *tbmres, TupleTableSlot *slot)
{
	AmScanDesc *s = (AmScanDesc *) scan;
	int			n = s->bm_ntuples >= 0 ? s->bm_ntuples : AM_ROWS_PER_BLOCK;

	while (s->bm_next < n)
	{
		ItemPointerData tid;
		OffsetNumber off = s->bm_ntuples >= 0 ? s->bm_offsets[s->bm_next] :
			(OffsetNumber) (s->bm_next + 1);

		s->bm_next++;
		CHECK_FOR_INTERRUPTS();
		ItemPointerSet(&tid, s->bm_block, off);
		if (am_fetch_row(s->fetch, &tid, scan->rs_snapshot, slot))
			return true;
	}
	return false;
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
 * A bitmap heap scan prefetches the blocks of its tids (PrefetchBuffer) when
 * effective_io_concurrency is above 0.  A table USING destor keeps no rows
 * in its file, so each prefetch is a wasted posix_fadvise system call: they
 * took most of a small bitmap scan's time (one device's day: 4x heap, 1.3x
 * without them), and a block past the first 1 GB file of a relation whose
 * file is one block long fails to open ("previous segment is only 1
 * blocks").  So while prefetching is on, the relation gets no bitmap paths:
 * the index paths a bitmap path was built on are offered instead (add_path
 * dropped those it dominated), and the sequential scan.
 */
static void
am_remove_bitmap_paths(PlannerInfo *root, RelOptInfo *rel)
{
	List	   *index_paths = NIL;
	bool		removed = false;
	ListCell   *lc;

	foreach(lc, rel->pathlist)
		if (IsA(lfirst(lc), BitmapHeapPath))
		{
			Path	   *qual = ((BitmapHeapPath *) lfirst(lc))->bitmapqual;

			if (IsA(qual, IndexPath) && ((IndexPath *) qual)->indexinfo->amhasgettuple)
				index_paths = lappend(index_paths, qual);
			rel->pathlist = foreach_delete_current(rel->pathlist, lc);
			removed = true;
		}

	if (!removed)
		return;
	/* set_rel_pathlist picks the cheapest after the hook */
	foreach(lc, index_paths)
		if (!list_member_ptr(rel->pathlist, lfirst(lc)))
			add_path(rel, lfirst(lc));
	add_path(rel, create_seqscan_path(root, rel, rel->lateral_relids, 0));
}

/*
 * A destor table is read in parallel workers only by the DestorScan's
 * partial path (tableam_path.c), which shares its row groups between the
 * participants, or leaves them all to the leader when the leader buffers
 * rows a worker would not see (a function's query run by a statement that
 * writes the table).  Any other path of the relation stays out of workers:
 * a Parallel Seq Scan through the access method's parallel scan would have
 * one participant read every row, and a worker running a plain scan would
 * not see the leader's buffered rows.
 */
static void
am_set_rel_pathlist(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	if (prev_set_rel_pathlist)
		prev_set_rel_pathlist(root, rel, rti, rte);
	/* not the append relation of an inheritance parent: its own rows are a child */
	if (rte->rtekind == RTE_RELATION && rte->relkind == RELKIND_RELATION && !rte->inh)
	{
		Relation	r = RelationIdGetRelation(rte->relid);

		if (RelationIsValid(r))
		{
			if (r->rd_tableam == &destor_am_methods)
			{
				bool		parallel_ok = rel->consider_parallel;

				rel->consider_parallel = false;
				rel->partial_pathlist = NIL;
				if (get_tablespace_io_concurrency(r->rd_rel->reltablespace) > 0)
					am_remove_bitmap_paths(root, rel);
				am_add_scan_path(root, rel, rti, r, parallel_ok);
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
	DefineCustomRealVariable("destor.vacuum_rewrite_fraction",
							 "VACUUM rewrites a segment of a table USING destor once this fraction of its rows is newly dead.",
							 "The rewrite drops the dead rows' values and keeps every row's number; 1 turns rewrites off.",
							 &vacuum_rewrite_fraction, 0.2, 0.0, 1.0, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = am_executor_end;
	prev_object_access = object_access_hook;
	object_access_hook = am_object_access;
	prev_set_rel_pathlist = set_rel_pathlist_hook;
	set_rel_pathlist_hook = am_set_rel_pathlist;
	tableam_path_init();
	tableam_ddl_init();
}
