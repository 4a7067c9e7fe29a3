/*
 * blob_pack.c — small blobs packed into shared objects (issue 15 item 5).
 *
 * A blob of at most destor.blob_pack_threshold bytes written by blob_put,
 * blob_import or blob_from_lo is not an object of its own (n provider
 * objects, each billed per object and per request): it is appended to the
 * transaction's open pack for its pool, kept in backend memory.  A pack is
 * uploaded as one ordinary destor object (encrypted, erasure-coded; repair,
 * audit, rebalance and placement treat it like any other) when it reaches
 * destor.blob_pack_size bytes and at pre-commit, before the metadata log is
 * written (meta_pre_precommit_hook).  Only then are the blobs' rows
 * inserted: each keeps its own id, owner, ACL and SHA-256 and points at
 * (pack_id, pack_offset, pack_length).  Nothing is visible before commit;
 * an abort drops the open packs, and an uploaded pack's shards go with the
 * aborted (sub)transaction like any object written.
 *
 * Why packing and not inlining in the catalog: the providers must hold
 * every byte, and pools are recoverable from the providers alone (the
 * metadata log carries META_REC_BLOB_PACKED records, docs/METADATA_FORMAT.md).
 *
 * Reads of a blob still in an open pack are served from it (the caller's
 * own transaction is the only one that can see it); anything else that
 * needs the blob's row (delete, grants, sha256 through the catalog) first
 * uploads the pack holding it (blob_pack_settle).
 *
 * Deleting a packed blob removes its row; the pack object goes (after
 * commit, never on rollback) when its last blob goes.  compact_packs()
 * rewrites packs whose dead share is above a threshold and repoints their
 * live blobs in one transaction; the old pack is retired like any object a
 * move replaces, so readers with older snapshots keep reading it.
 *
 * Subtransactions: blobs put in a subtransaction that aborts are dropped
 * from the open pack; a pack uploaded inside a subtransaction that aborts
 * (its rows and shards go with it) is opened again, so the blobs of the
 * enclosing transaction it held are not lost.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/uuid.h"
#include "utils/snapmgr.h"

#include "destor/blob.h"
#include "destor/catalog.h"
#include "destor/meta.h"

PG_FUNCTION_INFO_V1(blob_compact_packs);

int			blob_pack_threshold = 64 * 1024;
static int	blob_pack_size = 4 * 1024 * 1024;

typedef struct PackedBlob
{
	uint8		id[CODEC_OBJID_LEN];
	Oid			owner;
	uint64		off;			/* in the open pack's buffer */
	uint64		len;
	uint8		sha256[OBJECT_SHA256_LEN];
	SubTransactionId subid;
	bool		dead;			/* put by a subtransaction that aborted */
} PackedBlob;

typedef struct OpenPack
{
	char		pool[NAMEDATALEN];
	StringInfoData buf;
	List	   *blobs;			/* of PackedBlob */
	int			live;			/* blobs not dead */
	SubTransactionId flushed_in;	/* uploaded in this subtransaction */
} OpenPack;

static MemoryContext pack_cxt = NULL;
static List *open_packs = NIL;
static List *flushed_packs = NIL;	/* uploaded in a subtransaction: kept until it ends */
static bool pack_callbacks = false;

/*
 * One pack buffer kept from transaction to transaction (in
 * TopMemoryContext, not pack_cxt): a fresh 4 MB buffer per pack cost a
 * page fault per 4 kB appended, a tenth of writing small blobs.
 */
static char *spare_buf = NULL;
static int	spare_cap = 0;

static void
pack_buf_take(StringInfo buf)
{
	int			need = blob_pack_size + Max(blob_pack_threshold, 0) + 1;

	if (spare_buf != NULL && spare_cap >= need)
	{
		buf->data = spare_buf;
		buf->maxlen = spare_cap;
		spare_buf = NULL;
	}
	else
	{
		buf->data = MemoryContextAllocHuge(TopMemoryContext, need);
		buf->maxlen = need;
	}
	buf->len = 0;
	buf->cursor = 0;
	buf->data[0] = '\0';
}

/* A pack's buffer is done with: the spare, unless one is kept already. */
static void
pack_buf_give(StringInfo buf)
{
	int			need = blob_pack_size + Max(blob_pack_threshold, 0) + 1;

	if (buf->data == NULL)
		return;
	/*
	 * Not a buffer cut to a kept pack's size (pack_keep_outer): too small;
	 * nor one of a pack size set far above the default, kept for the rest
	 * of the session.
	 */
	if (spare_buf == NULL && buf->maxlen >= need && buf->maxlen <= 2 * need &&
		buf->maxlen <= 16 * 1024 * 1024)
	{
		spare_buf = buf->data;
		spare_cap = buf->maxlen;
	}
	else
		pfree(buf->data);
	buf->data = NULL;
}

static void pack_xact_callback(XactEvent event, void *arg);
static void pack_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								  SubTransactionId parentSubid, void *arg);

/* before MarkGUCPrefixReserved("destor"): settings in postgresql.conf apply */
void
blob_pack_define_gucs(void)
{
	DefineCustomIntVariable("destor.blob_pack_threshold",
							"Blobs up to this size are packed into shared objects (0: never).",
							"blob_put, blob_import and blob_from_lo pack blobs this small with the "
							"transaction's other small blobs of the pool.",
							&blob_pack_threshold, 64 * 1024, 0, 64 * 1024 * 1024,
							PGC_USERSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("destor.blob_pack_size",
							"Size at which an open pack of small blobs is uploaded.",
							NULL,
							&blob_pack_size, 4 * 1024 * 1024, 64 * 1024, 256 * 1024 * 1024,
							PGC_USERSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
}

/* At pre-commit, before the metadata log: the packs' rows, then blob_manage's deletions. */
static void
blob_precommit(void)
{
	blob_pack_flush_all();
	blob_managed_finish();
}

void
blob_pack_init(void)
{
	meta_pre_precommit_hook = blob_precommit;
}

static MemoryContext
pack_context(void)
{
	if (pack_cxt == NULL)
		pack_cxt = AllocSetContextCreate(TopMemoryContext, "destor blob packs",
										 ALLOCSET_DEFAULT_SIZES);
	if (!pack_callbacks)
	{
		RegisterXactCallback(pack_xact_callback, NULL);
		RegisterSubXactCallback(pack_subxact_callback, NULL);
		pack_callbacks = true;
	}
	return pack_cxt;
}

/* Has destor.blobs the pack columns (ALTER EXTENSION destor UPDATE done)? */
bool
blob_pack_catalog_ready(void)
{
	Oid			nsp = get_namespace_oid("destor", true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid("blobs", nsp) : InvalidOid;

	return OidIsValid(rel) && get_attnum(rel, "pack_id") != InvalidAttrNumber;
}

/* ---------------------------------------------------------------------------
 * The catalog
 * ------------------------------------------------------------------------- */

/*
 * blob_catalog_get — a blob's row: its owner and, if packed, where it is in
 * which pack (*packed false: the blob is its own object).  False if no row.
 */
bool
blob_catalog_get(const uint8 id[CODEC_OBJID_LEN], Oid *owner, bool *packed,
				 uint8 pack[CODEC_OBJID_LEN], uint64 *off, uint64 *len)
{
	Oid			nsp;
	Relation	rel;
	Oid			pkey;
	TupleDesc	desc;
	AttrNumber	att_owner,
				att_pack,
				att_off,
				att_len;
	ScanKeyData key;
	SysScanDesc scan;
	Snapshot	snapshot;
	HeapTuple	tup;
	pg_uuid_t	uuid;
	bool		found;

	*packed = false;
	if (!blob_pack_catalog_ready())
		return catalog_get_blob(id, owner);

	/*
	 * Every blob read that misses the backend's blob cache asks this, so it
	 * reads the row through the primary key directly instead of through
	 * SPI (a catalog statement costs more than the read of a small blob:
	 * search_path pinning, planning, an executor).  It sees what such a
	 * statement would: this transaction's earlier commands and, in READ
	 * COMMITTED, what others committed so far.  No user code runs: the
	 * only operator is the index's own uuid equality.
	 */
	nsp = get_namespace_oid("destor", false);
	rel = table_open(get_relname_relid("blobs", nsp), AccessShareLock);
	pkey = RelationGetPrimaryKeyIndex(rel);
	desc = RelationGetDescr(rel);
	att_owner = get_attnum(RelationGetRelid(rel), "owner");
	att_pack = get_attnum(RelationGetRelid(rel), "pack_id");
	att_off = get_attnum(RelationGetRelid(rel), "pack_offset");
	att_len = get_attnum(RelationGetRelid(rel), "pack_length");
	if (!OidIsValid(pkey) || att_owner == InvalidAttrNumber || att_pack == InvalidAttrNumber ||
		att_off == InvalidAttrNumber || att_len == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("destor.blobs is not as destor made it"),
				 errdetail("Its primary key or one of the columns owner, pack_id, pack_offset, pack_length is missing."),
				 errhint("Run ALTER EXTENSION destor UPDATE, or restore the table.")));

	/* as SPI runs a statement: the transaction's snapshot (a fresh one in
	 * READ COMMITTED) at the current command, after the earlier ones */
	CommandCounterIncrement();
	PushCopiedSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	snapshot = GetActiveSnapshot();
	memcpy(uuid.data, id, CODEC_OBJID_LEN);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(&uuid));
	scan = systable_beginscan(rel, pkey, true, snapshot, 1, &key);
	tup = systable_getnext(scan);
	found = HeapTupleIsValid(tup);
	if (found)
	{
		bool		isnull;
		Datum		p;

		*owner = DatumGetObjectId(heap_getattr(tup, att_owner, desc, &isnull));
		p = heap_getattr(tup, att_pack, desc, &isnull);
		if (!isnull)
		{
			*packed = true;
			memcpy(pack, DatumGetUUIDP(p)->data, CODEC_OBJID_LEN);
			*off = (uint64) DatumGetInt64(heap_getattr(tup, att_off, desc, &isnull));
			*len = (uint64) DatumGetInt64(heap_getattr(tup, att_len, desc, &isnull));
		}
	}
	systable_endscan(scan);
	PopActiveSnapshot();
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Does a pack still hold a blob (its lock held by the caller)?  Stops at the
 * first: deleting a pack's thousand blobs one by one must not count the
 * rest each time.  Asked under the latest snapshot, not the transaction's:
 * packs never gain blobs after upload, and a REPEATABLE READ deleter that
 * waited for the pack's lock must see that the other deleter took the
 * pack's other blobs, or the emptied pack would stay forever.
 */
static bool
pack_has_blobs(const uint8 pack[CODEC_OBJID_LEN])
{
	static SPIPlanPtr plan = NULL;
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	bool		any;

	CommandCounterIncrement();	/* our own DELETE of the blob's row */
	catalog_enter(&cu);
	values[0] = object_id_datum(pack);
	catalog_exec_saved_at(&plan, "SELECT 1 FROM destor.blobs WHERE pack_id = $1 LIMIT 1", 1, types,
						  values, SPI_OK_SELECT, GetLatestSnapshot());
	any = SPI_processed > 0;
	catalog_leave(&cu);
	return any;
}

/*
 * The rows of a pack's blobs, in one statement (a pack holds a thousand
 * blobs of 4 kB: one INSERT each cost more than the upload).
 */
static void
pack_insert_blob_rows(List *blobs, const uint8 pack[CODEC_OBJID_LEN], const uint64 *offs)
{
	CatalogUser cu;
	Oid			types[6] = {UUIDARRAYOID, OIDARRAYOID, BYTEAARRAYOID, UUIDOID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[6];
	int			n = 0;
	Datum	   *ids = palloc(sizeof(Datum) * list_length(blobs));
	Datum	   *owners = palloc(sizeof(Datum) * list_length(blobs));
	Datum	   *shas = palloc(sizeof(Datum) * list_length(blobs));
	Datum	   *pos = palloc(sizeof(Datum) * list_length(blobs));
	Datum	   *lens = palloc(sizeof(Datum) * list_length(blobs));
	ListCell   *lc;

	foreach(lc, blobs)
	{
		PackedBlob *pb = lfirst(lc);
		bytea	   *sha;

		if (pb->dead)
			continue;
		sha = palloc(VARHDRSZ + OBJECT_SHA256_LEN);
		SET_VARSIZE(sha, VARHDRSZ + OBJECT_SHA256_LEN);
		memcpy(VARDATA(sha), pb->sha256, OBJECT_SHA256_LEN);
		ids[n] = object_id_datum(pb->id);
		owners[n] = ObjectIdGetDatum(pb->owner);
		blob_role_depend(pb->owner);
		shas[n] = PointerGetDatum(sha);
		pos[n] = Int64GetDatum((int64) offs[n]);
		lens[n] = Int64GetDatum((int64) pb->len);
		n++;
	}
	values[0] = PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[1] = PointerGetDatum(construct_array(owners, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(shas, n, BYTEAOID, -1, false, TYPALIGN_INT));
	values[3] = object_id_datum(pack);
	values[4] = PointerGetDatum(construct_array(pos, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[5] = PointerGetDatum(construct_array(lens, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	catalog_enter(&cu);
	catalog_exec("INSERT INTO destor.blobs (blob_id, owner, sha256, pack_id, pack_offset, pack_length) "
				 "SELECT r.id, r.owner, r.sha, $4, r.off, r.len "
				 "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), "
				 "pg_catalog.unnest($5), pg_catalog.unnest($6)) AS r(id, owner, sha, off, len) "
				 "ORDER BY r.off", 6, types, values, NULL, SPI_OK_INSERT);
	catalog_leave(&cu);
}

/*
 * blob_pack_retire — delete a packed blob's row (the caller checked
 * ownership); the pack object goes after commit if that was its last blob.
 * The pack's row is locked first, so a concurrent compaction or deletion
 * of its neighbours is ordered with this one; a compaction that moved the
 * blob meanwhile is followed to the new pack.
 */
void
blob_pack_retire(const uint8 id[CODEC_OBJID_LEN])
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	uint8		pack[CODEC_OBJID_LEN];
	uint64		off;
	uint64		len;
	Oid			owner;
	bool		packed;

	for (;;)
	{
		uint8		again[CODEC_OBJID_LEN];

		if (!blob_catalog_get(id, &owner, &packed, pack, &off, &len) || !packed)
			return;
		(void) catalog_lock_object(pack);
		CommandCounterIncrement();
		if (!blob_catalog_get(id, &owner, &packed, again, &off, &len) || !packed)
			return;
		if (memcmp(again, pack, CODEC_OBJID_LEN) == 0)
			break;
	}
	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	catalog_exec("DELETE FROM destor.blobs WHERE blob_id = $1", 1, types, values, NULL, SPI_OK_DELETE);
	catalog_leave(&cu);
	if (!pack_has_blobs(pack))
	{
		ObjectMeta *meta = catalog_get_object(pack, true);

		if (meta != NULL)
		{
			catalog_delete_object(pack);
			object_delete_at_commit(meta);
		}
	}
}

/* ---------------------------------------------------------------------------
 * Open packs
 * ------------------------------------------------------------------------- */

static void
pack_forget(OpenPack *op)
{
	open_packs = list_delete_ptr(open_packs, op);
	list_free_deep(op->blobs);
	pack_buf_give(&op->buf);
	pfree(op);
}

/*
 * A pack uploaded in subtransaction subid is kept in case that aborts;
 * then its own blobs (subid, or its committed children's, which carry it
 * now) are gone with it and only those of the enclosing transactions must
 * be written again.  Keep just their bytes, in a buffer of their size: a
 * loader writing gigabytes of small blobs in a PL/pgSQL block with an
 * EXCEPTION clause must not keep every pack it uploaded.
 */
static void
pack_keep_outer(OpenPack *op, SubTransactionId subid)
{
	StringInfoData keep;
	List	   *kept = NIL;
	ListCell   *lc;
	uint64		size = 0;
	MemoryContext old = MemoryContextSwitchTo(pack_context());

	foreach(lc, op->blobs)
	{
		PackedBlob *pb = lfirst(lc);

		if (!pb->dead && pb->subid != subid)
			size += pb->len;
	}
	keep.maxlen = (int) size + 1;
	keep.data = MemoryContextAllocHuge(TopMemoryContext, keep.maxlen);
	keep.len = 0;
	keep.cursor = 0;
	keep.data[0] = '\0';
	foreach(lc, op->blobs)
	{
		PackedBlob *pb = lfirst(lc);

		if (pb->dead || pb->subid == subid)
		{
			pfree(pb);
			continue;
		}
		appendBinaryStringInfo(&keep, op->buf.data + pb->off, pb->len);
		pb->off = keep.len - pb->len;
		kept = lappend(kept, pb);
	}
	list_free(op->blobs);
	op->blobs = kept;
	op->live = list_length(kept);
	pack_buf_give(&op->buf);
	op->buf = keep;
	MemoryContextSwitchTo(old);
}

/*
 * Upload an open pack: its live blobs, one after the other, as one object,
 * then their rows.  The pack leaves the open list only once all is done (an
 * ERROR leaves it open, with the rows and shards of the attempt gone with
 * the (sub)transaction).
 */
static void
pack_flush(OpenPack *op)
{
	Pool	   *pool;
	ObjectWriter *w;
	ObjectMeta *meta;
	ListCell   *lc;
	uint64		off = 0;
	uint64	   *offs;
	int			i = 0;

	if (op->live == 0)
	{
		/* nothing left: every blob's subtransaction aborted */
		pack_forget(op);
		return;
	}
	pool = pool_lookup(op->pool, false);
	w = object_writer_create(pool, true);
	offs = palloc(sizeof(uint64) * Max(list_length(op->blobs), 1));
	foreach(lc, op->blobs)
	{
		PackedBlob *pb = lfirst(lc);

		if (pb->dead)
			continue;
		object_writer_write(w, op->buf.data + pb->off, pb->len);
		offs[i++] = off;
		off += pb->len;
	}
	meta = object_writer_finish(w);
	catalog_insert_object(meta);
	pack_insert_blob_rows(op->blobs, meta->id, offs);
	CommandCounterIncrement();
	pfree(offs);

	if (GetCurrentTransactionNestLevel() > 1)
	{
		/* kept, to open again if this subtransaction aborts */
		MemoryContext old;

		pack_keep_outer(op, GetCurrentSubTransactionId());
		if (op->live == 0)
		{
			pack_forget(op);
			return;
		}
		old = MemoryContextSwitchTo(pack_context());
		open_packs = list_delete_ptr(open_packs, op);
		op->flushed_in = GetCurrentSubTransactionId();
		/* the list outlives the caller's context (a statement's, often) */
		flushed_packs = lappend(flushed_packs, op);
		MemoryContextSwitchTo(old);
	}
	else
		pack_forget(op);
}

/*
 * Upload every open pack (pre-commit, DROP OWNED, compaction).  At
 * pre-commit no snapshot is active any more: the catalog needs one.
 */
void
blob_pack_flush_all(void)
{
	bool		pushed = false;

	if (open_packs == NIL)
		return;
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	while (open_packs != NIL)
		pack_flush(linitial(open_packs));
	if (pushed)
		PopActiveSnapshot();
}

static OpenPack *
pack_for(const char *pool)
{
	ListCell   *lc;
	OpenPack   *op;
	MemoryContext old;

	foreach(lc, open_packs)
	{
		op = lfirst(lc);
		if (strcmp(op->pool, pool) == 0)
			return op;
	}
	old = MemoryContextSwitchTo(pack_context());
	op = palloc0(sizeof(OpenPack));
	strlcpy(op->pool, pool, NAMEDATALEN);
	/* its full size up front: growing it by doubling copied it again and again */
	pack_buf_take(&op->buf);
	open_packs = lappend(open_packs, op);
	MemoryContextSwitchTo(old);
	return op;
}

static void
pack_sha256(const char *data, uint64 len, uint8 out[OBJECT_SHA256_LEN])
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, out, OBJECT_SHA256_LEN) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute a SHA-256")));
	pg_cryptohash_free(ctx);
}

/*
 * blob_pack_put — pack a small blob: false (nothing done) if it is too
 * large or packing is off, else its new id in id.  Refuses content whose
 * SHA-256 is not expected (NULL: any) before anything is kept.
 */
bool
blob_pack_put(Pool *pool, const char *data, uint64 len, const uint8 *expected,
			  uint8 id[CODEC_OBJID_LEN])
{
	OpenPack   *op;
	PackedBlob *pb;
	uint8		sha[OBJECT_SHA256_LEN];
	MemoryContext old;

	if (blob_pack_threshold <= 0 || len > (uint64) blob_pack_threshold || !blob_pack_catalog_ready())
		return false;
	pool_check_writable(pool, "write a blob");
	pack_sha256(data, len, sha);
	blob_check_expected_sha256(len, sha, expected);

	if (!pg_strong_random(id, CODEC_OBJID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random blob id")));
	id[6] = (id[6] & 0x0f) | 0x40;	/* a version-4 UUID, as objects' */
	id[8] = (id[8] & 0x3f) | 0x80;
	object_id_claim(id);

	/* the rows come at pre-commit: the metadata log must be listening by then */
	meta_log_prepare();
	op = pack_for(pool->name);
	old = MemoryContextSwitchTo(pack_context());
	pb = palloc0(sizeof(PackedBlob));
	memcpy(pb->id, id, CODEC_OBJID_LEN);
	pb->owner = GetUserId();
	pb->off = op->buf.len;
	pb->len = len;
	memcpy(pb->sha256, sha, OBJECT_SHA256_LEN);
	pb->subid = GetCurrentSubTransactionId();
	appendBinaryStringInfo(&op->buf, data, len);
	op->blobs = lappend(op->blobs, pb);
	op->live++;
	MemoryContextSwitchTo(old);

	if (op->buf.len >= blob_pack_size)
		pack_flush(op);
	return true;
}

static PackedBlob *
pack_find(const uint8 id[CODEC_OBJID_LEN], OpenPack **opp)
{
	ListCell   *lc;

	foreach(lc, open_packs)
	{
		OpenPack   *op = lfirst(lc);
		ListCell   *bc;

		foreach(bc, op->blobs)
		{
			PackedBlob *pb = lfirst(bc);

			if (!pb->dead && memcmp(pb->id, id, CODEC_OBJID_LEN) == 0)
			{
				*opp = op;
				return pb;
			}
		}
	}
	return NULL;
}

/*
 * blob_pack_pending — is the blob still in one of this transaction's open
 * packs?  Then its owner, SHA-256 and a copy of its bytes (in the caller's
 * memory; bytes and sha may be NULL when not wanted).
 */
bool
blob_pack_pending(const uint8 id[CODEC_OBJID_LEN], Oid *owner, char **bytes, uint64 *len,
				  uint8 *sha)
{
	OpenPack   *op;
	PackedBlob *pb = open_packs != NIL ? pack_find(id, &op) : NULL;

	if (pb == NULL)
		return false;
	*owner = pb->owner;
	*len = pb->len;
	if (bytes)
	{
		*bytes = palloc(Max(pb->len, 1));
		memcpy(*bytes, op->buf.data + pb->off, pb->len);
	}
	if (sha)
		memcpy(sha, pb->sha256, OBJECT_SHA256_LEN);
	return true;
}

/* blob_pack_settle — upload the open pack holding the blob, if one does. */
void
blob_pack_settle(const uint8 id[CODEC_OBJID_LEN])
{
	OpenPack   *op;

	if (open_packs != NIL && pack_find(id, &op) != NULL)
		pack_flush(op);
}

/* ---------------------------------------------------------------------------
 * Transaction ends
 * ------------------------------------------------------------------------- */
static void
pack_reset(void)
{
	ListCell   *lc;

	/* the buffers are not in pack_cxt */
	foreach(lc, open_packs)
		pack_buf_give(&((OpenPack *) lfirst(lc))->buf);
	foreach(lc, flushed_packs)
		pack_buf_give(&((OpenPack *) lfirst(lc))->buf);
	open_packs = NIL;
	flushed_packs = NIL;
	if (pack_cxt != NULL)
		MemoryContextReset(pack_cxt);
}

static void
pack_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* normally done already, before the metadata log (blob_pack_init) */
			blob_pack_flush_all();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (open_packs != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that wrote small blobs"),
						 errhint("Commit the transaction instead of using two-phase commit.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			pack_reset();
			break;
		default:
			break;
	}
}

static void
pack_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, open_packs)
		{
			ListCell   *bc;

			foreach(bc, ((OpenPack *) lfirst(lc))->blobs)
				if (((PackedBlob *) lfirst(bc))->subid == mySubid)
					((PackedBlob *) lfirst(bc))->subid = parentSubid;
		}
		foreach(lc, flushed_packs)
		{
			OpenPack   *op = lfirst(lc);
			ListCell   *bc;

			foreach(bc, op->blobs)
				if (((PackedBlob *) lfirst(bc))->subid == mySubid)
					((PackedBlob *) lfirst(bc))->subid = parentSubid;
			if (op->flushed_in == mySubid)
			{
				if (GetCurrentTransactionNestLevel() <= 2)
				{
					/* up to the top level, where nothing can undo the upload */
					flushed_packs = foreach_delete_current(flushed_packs, lc);
					list_free_deep(op->blobs);
					pack_buf_give(&op->buf);
					pfree(op);
				}
				else
					op->flushed_in = parentSubid;
			}
		}
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		/* packs uploaded in it are gone with it: open again */
		foreach(lc, flushed_packs)
		{
			OpenPack   *op = lfirst(lc);

			if (op->flushed_in == mySubid)
			{
				/* not the aborting subtransaction's context: it is reset next */
				MemoryContext old = MemoryContextSwitchTo(pack_context());

				flushed_packs = foreach_delete_current(flushed_packs, lc);
				op->flushed_in = InvalidSubTransactionId;
				open_packs = lappend(open_packs, op);
				MemoryContextSwitchTo(old);
			}
		}
		foreach(lc, open_packs)
		{
			OpenPack   *op = lfirst(lc);
			ListCell   *bc;

			foreach(bc, op->blobs)
			{
				PackedBlob *pb = lfirst(bc);

				if (pb->subid == mySubid && !pb->dead)
				{
					pb->dead = true;
					op->live--;
				}
			}
		}
	}
}

/* ---------------------------------------------------------------------------
 * Compaction
 * ------------------------------------------------------------------------- */

/*
 * Rewrite one pack (locked): its live blobs, read through the shared cache
 * like any read, into a new pack; the blobs are repointed and the old pack
 * retired (its shards go after commit, or after the grace period while an
 * older snapshot may still read it).  False if the pack went meanwhile.
 */
static bool
pack_rewrite(const uint8 pack[CODEC_OBJID_LEN])
{
	CatalogUser cu;
	Oid			types[3] = {UUIDOID, UUIDOID, INT8OID};
	Datum		values[3];
	ObjectMeta *old;
	ObjectMeta *meta;
	ObjectReader *r;
	ObjectWriter *w;
	Pool	   *pool;
	uint64		n;
	uint8	   *ids;
	uint64	   *offs;
	uint64	   *lens;
	uint64		to = 0;
	char	   *buf;
	MemoryContext caller = CurrentMemoryContext;

	if (!catalog_lock_object(pack))
		return false;
	old = catalog_get_object(pack, true);
	if (old == NULL)
		return false;

	catalog_enter(&cu);
	values[0] = object_id_datum(pack);
	catalog_exec("SELECT blob_id, pack_offset, pack_length FROM destor.blobs WHERE pack_id = $1 "
				 "ORDER BY pack_offset", 1, types, values, NULL, SPI_OK_SELECT);
	n = SPI_processed;
	ids = MemoryContextAlloc(caller, CODEC_OBJID_LEN * Max(n, 1));
	offs = MemoryContextAlloc(caller, sizeof(uint64) * Max(n, 1));
	lens = MemoryContextAlloc(caller, sizeof(uint64) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		bool		isnull;

		object_id_from_datum(SPI_getbinval(t, SPI_tuptable->tupdesc, 1, &isnull), ids + i * CODEC_OBJID_LEN);
		offs[i] = (uint64) DatumGetInt64(SPI_getbinval(t, SPI_tuptable->tupdesc, 2, &isnull));
		lens[i] = (uint64) DatumGetInt64(SPI_getbinval(t, SPI_tuptable->tupdesc, 3, &isnull));
	}
	catalog_leave(&cu);

	if (n > 0)
	{
		pool = pool_lookup(old->pool, false);
		r = object_reader_open(old);
		w = object_writer_create(pool, true);
		buf = palloc(Max(blob_pack_threshold, 1));
		for (uint64 i = 0; i < n; i++)
		{
			char	   *b = lens[i] <= (uint64) Max(blob_pack_threshold, 1) ? buf : palloc(lens[i]);

			CHECK_FOR_INTERRUPTS();
			object_reader_read(r, offs[i], lens[i], b);
			object_writer_write(w, b, lens[i]);
			if (b != buf)
				pfree(b);
		}
		object_reader_close(r);
		meta = object_writer_finish(w);
		catalog_insert_object(meta);
		catalog_enter(&cu);
		for (uint64 i = 0; i < n; i++)
		{
			values[0] = object_id_datum(ids + i * CODEC_OBJID_LEN);
			values[1] = object_id_datum(meta->id);
			values[2] = Int64GetDatum((int64) to);
			catalog_exec("UPDATE destor.blobs SET pack_id = $2, pack_offset = $3 WHERE blob_id = $1",
						 3, types, values, NULL, SPI_OK_UPDATE);
			to += lens[i];
		}
		catalog_leave(&cu);
	}
	catalog_delete_object(pack);
	object_delete_at_commit(old);
	return true;
}

/*
 * blob_compact_pool_packs — rewrite the packs of a pool whose dead share
 * (bytes no blob points at) is above min_dead; how many were rewritten.
 */
int64
blob_compact_pool_packs(const char *poolname, double min_dead)
{
	CatalogUser cu;
	Oid			types[2] = {NAMEOID, FLOAT8OID};
	Datum		values[2];
	List	   *packs = NIL;
	ListCell   *lc;
	int64		done = 0;
	MemoryContext caller = CurrentMemoryContext;

	if (!blob_pack_catalog_ready())
		return 0;
	blob_pack_flush_all();
	catalog_enter(&cu);
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(poolname));
	values[1] = Float8GetDatum(min_dead);
	catalog_exec("SELECT o.object_id FROM destor.objects o JOIN destor.blobs b ON b.pack_id = o.object_id "
				 "WHERE o.pool = $1 GROUP BY o.object_id, o.size "
				 "HAVING o.size > 0 AND 1 - sum(b.pack_length)::float8 / o.size > $2 "
				 "ORDER BY o.object_id", 2, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		uint8	   *id = MemoryContextAlloc(caller, CODEC_OBJID_LEN);

		MemoryContext spi;

		object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull), id);
		spi = MemoryContextSwitchTo(caller);
		packs = lappend(packs, id);
		MemoryContextSwitchTo(spi);
	}
	catalog_leave(&cu);
	foreach(lc, packs)
	{
		CHECK_FOR_INTERRUPTS();
		if (pack_rewrite(lfirst(lc)))
			done++;
	}
	return done;
}

/* destor.compact_packs(pool name, min_dead_fraction float8) → bigint */
Datum
blob_compact_packs(PG_FUNCTION_ARGS)
{
	Name		poolname = PG_GETARG_NAME(0);
	double		min_dead = PG_GETARG_FLOAT8(1);

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to compact blob packs"),
				 errdetail("destor.compact_packs() rewrites every user's blobs; only superusers may run it.")));
	if (isnan(min_dead) || min_dead < 0 || min_dead >= 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_dead_fraction must be at least 0 and below 1, not %g", min_dead),
				 errhint("0.5 rewrites the packs at least half of whose bytes belong to deleted blobs.")));
	(void) pool_lookup(NameStr(*poolname), false);
	PG_RETURN_INT64(blob_compact_pool_packs(NameStr(*poolname), min_dead));
}
