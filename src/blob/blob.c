/*
 * blob.c — blobs: large binary values stored as destor objects behind SQL
 * functions, with a small handle (type destor.blob) kept in user rows.
 *
 * Blobs have owners: only the owner (or a member of the owning role, or a
 * superuser) reads or deletes a blob.  Server-side import/export follow
 * lo_import/lo_export: they need pg_read_server_files / pg_write_server_files
 * and stream with bounded memory, whatever the size.  Large objects move to
 * blobs and back (blob_from_lo, blob_to_lo) under the large objects' own
 * privileges, also with bounded memory.
 */
#include "postgres.h"

#include <aio.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_largeobject.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "libpq/libpq-fs.h"
#include "storage/large_object.h"
#include "catalog/namespace.h"
#include "common/cryptohash.h"
#include "commands/trigger.h"
#include "storage/sinval.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "destor/blob.h"
#include "destor/cache.h"
#include "destor/catalog.h"
#include "destor/object.h"
#include "destor/progress.h"

#define BLOB_IO_CHUNK	(4 * 1024 * 1024)

#define DatumGetBlobP(d)	((BlobHandle *) DatumGetPointer(d))
#define PG_GETARG_BLOB(n)	DatumGetBlobP(PG_GETARG_DATUM(n))

PG_FUNCTION_INFO_V1(blob_in);
PG_FUNCTION_INFO_V1(blob_out);
PG_FUNCTION_INFO_V1(blob_recv);
PG_FUNCTION_INFO_V1(blob_send);
PG_FUNCTION_INFO_V1(blob_to_uuid);
PG_FUNCTION_INFO_V1(blob_put);
PG_FUNCTION_INFO_V1(blob_get);
PG_FUNCTION_INFO_V1(blob_read);
PG_FUNCTION_INFO_V1(blob_size);
PG_FUNCTION_INFO_V1(blob_delete);
PG_FUNCTION_INFO_V1(blob_import);
PG_FUNCTION_INFO_V1(blob_export);
PG_FUNCTION_INFO_V1(blob_from_lo);
PG_FUNCTION_INFO_V1(blob_to_lo);
PG_FUNCTION_INFO_V1(blob_meta_invalidate);
PG_FUNCTION_INFO_V1(blob_sha256);
PG_FUNCTION_INFO_V1(blob_verify);

/* ---------------------------------------------------------------------------
 * The handle type: a blob id, shown as a UUID
 * ------------------------------------------------------------------------- */
Datum
blob_in(PG_FUNCTION_ARGS)
{
	BlobHandle *b = palloc(sizeof(BlobHandle));

	object_id_parse(PG_GETARG_CSTRING(0), b->id);
	PG_RETURN_POINTER(b);
}

Datum
blob_out(PG_FUNCTION_ARGS)
{
	BlobHandle *b = PG_GETARG_BLOB(0);

	PG_RETURN_DATUM(DirectFunctionCall1(uuid_out, object_id_datum(b->id)));
}

Datum
blob_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	BlobHandle *b = palloc(sizeof(BlobHandle));

	memcpy(b->id, pq_getmsgbytes(buf, CODEC_OBJID_LEN), CODEC_OBJID_LEN);
	PG_RETURN_POINTER(b);
}

Datum
blob_send(PG_FUNCTION_ARGS)
{
	BlobHandle *b = PG_GETARG_BLOB(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbytes(&buf, (char *) b->id, CODEC_OBJID_LEN);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
blob_to_uuid(PG_FUNCTION_ARGS)
{
	BlobHandle *b = PG_GETARG_BLOB(0);

	PG_RETURN_DATUM(object_id_datum(b->id));
}


/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */
static BlobHandle *
blob_handle_make(const uint8 id[CODEC_OBJID_LEN])
{
	BlobHandle *b = palloc(sizeof(BlobHandle));

	memcpy(b->id, id, CODEC_OBJID_LEN);
	return b;
}

/*
 * The blob's object, after checking that it exists and the user may use it
 * for action ("read": the SELECT privilege; "write": UPDATE; anything else,
 * "delete" for one: ownership; see blob_acl.c).  A role that may not use a
 * blob learns nothing of it, not even whether it exists: both cases give
 * the same error (superusers, who may use every blob, are told which).
 */
static void
blob_check_access(BlobHandle *b, bool found, Oid owner, const char *action)
{
	if (!found && superuser())
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("blob %s does not exist", object_id_text(b->id)),
				 errhint("It may have been deleted, or created by a transaction that did not commit.")));
	if (!found || !blob_acl_permits(b->id, owner, action))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("blob does not exist or you may not %s it", action),
				 errdetail("Blob %s: %s Others are not told whether it exists.",
						   object_id_text(b->id), blob_acl_requirement(action)),
				 errhint("The blob may also have been deleted, or created by a transaction that did not commit.")));
}

/*
 * The object d's bytes are in.  A packed blob's pack is the one its row
 * names; but a compaction that committed after the row was read moved the
 * blob to a new pack and deleted the old pack's row (in READ COMMITTED the
 * two reads take fresh snapshots), so a missing pack means: read the row
 * again, as blob_pack_retire follows a move.  *owner is the row's.
 */
static void
blob_data_fill(BlobData *d, BlobHandle *b, const char *action, Oid *owner, bool packed,
			   uint8 *pack, uint64 off, uint64 len)
{
	for (int tries = 0;; tries++)
	{
		bool		found;

		d->packed = packed;
		if (!packed)
		{
			d->meta = catalog_get_object(d->id, false);
			d->base = 0;
			d->size = d->meta->size;
			return;
		}
		d->meta = catalog_get_object(pack, tries < 3);
		if (d->meta != NULL)
		{
			d->base = off;
			d->size = len;
			return;
		}
		found = blob_catalog_get(d->id, owner, &packed, pack, &off, &len);
		blob_check_access(b, found, *owner, action);
	}
}

/*
 * blob_open_data — the blob's bytes, after checking that it exists and the
 * user may use it for action.  A small blob still in this transaction's
 * open pack is read from there; for anything else it is uploaded first, so
 * that its row exists (blob_pack.c).
 */
BlobData *
blob_open_data(BlobHandle *b, const char *action)
{
	BlobData   *d = palloc0(sizeof(BlobData));
	Oid			owner = InvalidOid;
	bool		packed;
	uint8		pack[CODEC_OBJID_LEN];
	uint64		off = 0;
	uint64		len = 0;
	bool		found;

	memcpy(d->id, b->id, CODEC_OBJID_LEN);
	if (strcmp(action, "read") == 0 &&
		blob_pack_pending(b->id, &owner, &d->pending, &d->size, NULL))
	{
		blob_check_access(b, true, owner, action);
		d->packed = true;
		return d;
	}
	blob_pack_settle(b->id);
	found = blob_catalog_get(b->id, &owner, &packed, pack, &off, &len);
	if (found && strcmp(action, "delete") == 0)
	{
		Acl		   *acl;

		/*
		 * The owner of the row we will delete, locked and the newest: not
		 * the one our snapshot shows, which a concurrent owner change may
		 * have replaced (the row's place in its pack is followed by
		 * blob_pack_retire under the pack's lock).  A packed blob's pack
		 * is locked first, in the order compaction takes them (pack_rewrite:
		 * the pack, then its blobs' rows); the other order deadlocked.
		 */
		if (packed)
			(void) catalog_lock_object(pack);
		found = catalog_get_blob_acl_ext(b->id, &owner, &acl, true);
	}
	blob_check_access(b, found, owner, action);
	blob_data_fill(d, b, action, &owner, packed, pack, off, len);
	return d;
}

/* A reader of the blob's object (NULL for a pending blob: nothing to read). */
ObjectReader *
blob_data_reader(BlobData *d)
{
	return d->pending ? NULL : object_reader_open(d->meta);
}

/* The same, for a caller that reads the whole blob in order: it reads ahead from the start. */
ObjectReader *
blob_data_reader_whole(BlobData *d)
{
	ObjectReader *r = blob_data_reader(d);

	if (r != NULL)
		object_reader_read_on(r, d->base + d->size);
	return r;
}

/* n bytes of the blob at off (inside it) into dst; r from blob_data_reader. */
void
blob_data_read(BlobData *d, ObjectReader *r, uint64 off, uint64 n, char *dst)
{
	Assert(off + n <= d->size);
	if (d->pending)
		memcpy(dst, d->pending + off, n);
	else
		object_reader_read(r, d->base + off, n, dst);
}

void
blob_data_close(ObjectReader *r)
{
	if (r != NULL)
		object_reader_close(r);
}

/*
 * blob_remove — delete a blob the caller may delete: its row now, its
 * storage after commit (never on rollback): its object, or its range of a
 * pack (the pack goes with its last blob).
 */
void
blob_remove(BlobData *d)
{
	if (d->packed)
		blob_pack_retire(d->id);
	else
	{
		catalog_delete_blob(d->id);
		/* shards go only once the deletion has committed */
		object_delete_at_commit(d->meta);
	}
}

/* ---------------------------------------------------------------------------
 * The backend's cache of blob metadata, for small reads
 *
 * A blob_read of 8 KiB that the shared cache serves costs little, but
 * finding the blob did cost three catalog statements (blobs, objects,
 * shards, each through SPI as the bootstrap superuser) and opening a reader
 * (unwrapping the data key, two cipher contexts, three block-sized
 * buffers): several times the read itself.  So each backend keeps, per
 * blob it read, the blob's owner and object metadata (key, geometry,
 * placement).  A read the shared cache holds entirely is copied out of it
 * without a reader (blob_read_cached); others open a reader per call, as
 * before: a reader kept open across calls rechecks slow providers only
 * every so often, which defeated the detection of a provider turning slow
 * (TAP 007).
 *
 * Why an entry is never stale:
 *  - Every change of destor.blobs, destor.objects or destor.shards (by
 *    destor: blob_put/delete, REASSIGN/DROP OWNED, repair, move_shards,
 *    compaction; or by a superuser's own SQL, TRUNCATE included) fires a
 *    statement trigger (blob_meta_invalidate) that sends a relcache
 *    invalidation of the changed table.  PostgreSQL delivers it like a
 *    system catalog's: to this backend at the changing statement's end
 *    (CommandCounterIncrement), to every other backend when the changing
 *    transaction commits, and not at all to others if it aborts.  Our
 *    relcache callback empties the whole cache on any of the three tables
 *    (or on a cache reset).  Coarse, but blobs are read far more often than
 *    written, and correctness needs no reasoning per change.
 *  - Invalidations are accepted (AcceptInvalidationMessages) before every
 *    lookup, not only at the next lock: a statement sees the blob as a
 *    fresh catalog read would, except for the instant between another
 *    transaction's commit becoming visible and its invalidation being
 *    queued, when the read is ordered just before that commit — as
 *    PostgreSQL's own catalog caches are.
 *  - A transaction that aborts (or a subtransaction) empties the cache: an
 *    entry filled from rows that never committed (a blob created and read
 *    in a transaction that rolled back) cannot survive it.
 *  - What is cached is the owner, not the verdict: has_privs_of_role() runs
 *    on every call, so a revoked role membership takes effect at once, and
 *    an owner change (an UPDATE of destor.blobs) empties the cache.
 *  - Only reads use the cache: blob_delete and the conversions read the
 *    catalog afresh.
 * ------------------------------------------------------------------------- */
#define BLOB_CACHE_MAX		1024	/* entries; when full, start over */

typedef struct BlobCacheEntry
{
	uint8		id[CODEC_OBJID_LEN];	/* hash key */
	Oid			owner;
	BlobData	data;			/* data.meta in BlobCacheContext */
	bool		transient;		/* not in the cache: the caller's memory */
} BlobCacheEntry;

static HTAB *blob_cache = NULL;
/*
 * The metadata of the packs those blobs live in, by pack id: a pack holds
 * hundreds of small blobs, and reading its object's rows (two catalog
 * statements) for each was most of a cold small read.  Emptied with
 * blob_cache, and by the same invalidations (destor.objects, shards).
 */
typedef struct PackCacheEntry
{
	uint8		id[CODEC_OBJID_LEN];	/* hash key */
	ObjectMeta *meta;			/* in BlobCacheContext */
} PackCacheEntry;

static HTAB *pack_cache = NULL;
static MemoryContext BlobCacheContext = NULL;
/* bumped at every flush: an entry pointer taken before may be freed */
static uint64 blob_cache_gen = 1;
/* the catalog tables whose invalidation empties the cache (0: unknown) */
static Oid	blob_cache_rels[3];
static bool blob_cache_callbacks = false;
/* an entry was filled under a transaction snapshot: it goes at commit */
static bool blob_cache_xact_snapshot = false;

static void
blob_cache_flush(void)
{
	blob_cache_gen++;
	blob_cache_xact_snapshot = false;
	if (blob_cache == NULL)
		return;
	/* the hash and every entry's metadata live in BlobCacheContext */
	MemoryContextReset(BlobCacheContext);
	blob_cache = NULL;
	pack_cache = NULL;
	memset(blob_cache_rels, 0, sizeof(blob_cache_rels));
}

static void
blob_cache_relcache_cb(Datum arg, Oid relid)
{
	if (blob_cache == NULL)
		return;
	if (relid == InvalidOid || relid == blob_cache_rels[0] || relid == blob_cache_rels[1] ||
		relid == blob_cache_rels[2])
		blob_cache_flush();
}

static void
blob_cache_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			blob_cache_flush();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			/* filled from an older snapshot than later transactions' */
			if (blob_cache_xact_snapshot)
				blob_cache_flush();
			break;
		default:
			break;
	}
}

static void
blob_cache_subxact_cb(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
					  void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		blob_cache_flush();
}

/* A deep copy of meta in cxt. */
static ObjectMeta *
blob_meta_copy(MemoryContext cxt, const ObjectMeta *meta)
{
	ObjectMeta *c = MemoryContextAlloc(cxt, sizeof(ObjectMeta));
	int			n = meta->data_shards + meta->parity_shards;

	memcpy(c, meta, sizeof(ObjectMeta));
	c->pool = MemoryContextStrdup(cxt, meta->pool);
	if (meta->block_ends)
	{
		c->block_ends = MemoryContextAllocHuge(cxt, sizeof(uint64) * meta->nblocks);
		memcpy(c->block_ends, meta->block_ends, sizeof(uint64) * meta->nblocks);
	}
	c->shards = MemoryContextAlloc(cxt, sizeof(ObjectShard) * n);
	for (int i = 0; i < n; i++)
	{
		c->shards[i] = meta->shards[i];
		c->shards[i].provider = MemoryContextStrdup(cxt, meta->shards[i].provider);
	}
	return c;
}

/*
 * blob_cache_lookup — the cache entry of a blob the user may read, filled
 * from the catalog if need be; the same errors as blob_open_meta.  Any
 * catalog access (the privilege check too) may take invalidations that
 * empty the cache, so an entry is returned only if none came in between.
 * When the catalog's answer cannot be cached (an invalidation arrived
 * while reading it: the rows may already be stale), a transient entry in
 * the caller's memory is returned instead.
 */
static BlobCacheEntry *
blob_cache_lookup(BlobHandle *b, const char *action)
{
	BlobCacheEntry *e;
	bool		found;
	Oid			owner = InvalidOid;
	BlobData	d;
	bool		packed;
	uint8		pack[CODEC_OBJID_LEN];
	uint64		off = 0;
	uint64		len = 0;
	uint64		gen;
	PackCacheEntry *pe;

	if (!blob_cache_callbacks)
	{
		CacheRegisterRelcacheCallback(blob_cache_relcache_cb, (Datum) 0);
		RegisterXactCallback(blob_cache_xact_cb, NULL);
		RegisterSubXactCallback(blob_cache_subxact_cb, NULL);
		blob_cache_callbacks = true;
	}
	/* what other transactions committed so far (see above) */
	AcceptInvalidationMessages();

	/* a small blob of this transaction not uploaded yet: never cached */
	memset(&d, 0, sizeof(d));
	if (blob_pack_pending(b->id, &owner, &d.pending, &d.size, NULL))
	{
		blob_check_access(b, true, owner, action);
		e = palloc0(sizeof(BlobCacheEntry));
		memcpy(e->id, b->id, CODEC_OBJID_LEN);
		memcpy(d.id, b->id, CODEC_OBJID_LEN);
		d.packed = true;
		e->owner = owner;
		e->data = d;
		e->transient = true;
		return e;
	}

	gen = blob_cache_gen;
	if (blob_cache != NULL)
	{
		e = hash_search(blob_cache, b->id, HASH_FIND, NULL);
		if (e != NULL)
		{
			blob_check_access(b, true, e->owner, action);
			if (gen == blob_cache_gen)
				return e;
			/* emptied meanwhile: ask the catalog */
			gen = blob_cache_gen;
		}
	}

	/* not cached: the catalog, as always */
	found = blob_catalog_get(b->id, &owner, &packed, pack, &off, &len);
	blob_check_access(b, found, owner, action);
	memcpy(d.id, b->id, CODEC_OBJID_LEN);
	/* a pack whose metadata is cached: nothing more to ask the catalog */
	pe = NULL;
	if (packed && pack_cache != NULL && gen == blob_cache_gen)
		pe = hash_search(pack_cache, pack, HASH_FIND, NULL);
	if (pe != NULL)
	{
		d.packed = true;
		d.meta = pe->meta;
		d.base = off;
		d.size = len;
	}
	else
		blob_data_fill(&d, b, action, &owner, packed, pack, off, len);

	if (gen != blob_cache_gen)
	{
		e = palloc0(sizeof(BlobCacheEntry));
		memcpy(e->id, b->id, CODEC_OBJID_LEN);
		e->owner = owner;
		e->data = d;
		e->transient = true;
		return e;
	}
	if (blob_cache == NULL || hash_get_num_entries(blob_cache) >= BLOB_CACHE_MAX)
	{
		HASHCTL		ctl;
		Oid			nsp;
		Oid			rels[3];

		/* the cached pack's metadata goes with the flush below */
		if (pe != NULL)
		{
			d.meta = blob_meta_copy(CurrentMemoryContext, pe->meta);
			pe = NULL;
		}
		/* syscache look-ups first: they may take invalidations too */
		nsp = get_namespace_oid("destor", false);
		rels[0] = get_relname_relid("blobs", nsp);
		rels[1] = get_relname_relid("objects", nsp);
		rels[2] = get_relname_relid("shards", nsp);
		blob_cache_flush();
		if (BlobCacheContext == NULL)
			BlobCacheContext = AllocSetContextCreate(TopMemoryContext, "destor blob cache",
													 ALLOCSET_DEFAULT_SIZES);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = CODEC_OBJID_LEN;
		ctl.entrysize = sizeof(BlobCacheEntry);
		ctl.hcxt = BlobCacheContext;
		blob_cache = hash_create("destor blob cache", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		ctl.entrysize = sizeof(PackCacheEntry);
		pack_cache = hash_create("destor blob pack cache", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		memcpy(blob_cache_rels, rels, sizeof(rels));
		gen = blob_cache_gen;
	}
	e = hash_search(blob_cache, b->id, HASH_ENTER, &found);
	e->owner = owner;
	e->data = d;
	e->transient = false;
	if (IsolationUsesXactSnapshot())
		blob_cache_xact_snapshot = true;
	if (pe != NULL)
		return e;				/* d.meta is the cached pack's */
	if (packed)
	{
		pe = hash_search(pack_cache, pack, HASH_ENTER, &found);
		pe->meta = blob_meta_copy(BlobCacheContext, d.meta);
		e->data.meta = pe->meta;
	}
	else
		e->data.meta = blob_meta_copy(BlobCacheContext, d.meta);
	return e;
}

/*
 * blob_meta_invalidate — statement trigger on destor.blobs, destor.objects
 * and destor.shards: every backend's blob cache forgets what it knew (see
 * above).  The invalidation is transactional, like a catalog change's.
 */
Datum
blob_meta_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("destor.blob_meta_invalidate() must be called as a trigger")));
	CacheInvalidateRelcache(td->tg_relation);
	PG_RETURN_POINTER(NULL);
}

static ObjectMeta *blob_store_expect(ObjectWriter *w, const uint8 *expected_sha256);
static const uint8 *blob_arg_sha256(FunctionCallInfo fcinfo, int n);

/*
 * blob_store — finish a blob's writer and record the blob, with the SHA-256
 * of its content, as the current user's.
 */
ObjectMeta *
blob_store(ObjectWriter *w)
{
	return blob_store_expect(w, NULL);
}

/*
 * A blob being written whole (blob_put, blob_import, blob_from_lo): held in
 * memory while it is small enough to be packed (blob_pack.c), then streamed
 * to its own object.
 */
typedef struct BlobSink
{
	Pool	   *pool;
	uint64		expect;			/* its size if known ahead, else 0 */
	StringInfoData small;
	ObjectWriter *w;
} BlobSink;

static void
blob_sink_start(BlobSink *s, Pool *pool, uint64 expect)
{
	s->pool = pool;
	s->expect = expect;
	s->w = NULL;
	initStringInfo(&s->small);
}

static void
blob_sink_writer(BlobSink *s)
{
	s->w = object_writer_create(s->pool, true);
	if (s->expect > 0)
		object_writer_expect(s->w, s->expect);
}

static void
blob_sink_write(BlobSink *s, const char *data, size_t len)
{
	if (s->w == NULL && (uint64) s->small.len + len <= (uint64) Max(blob_pack_threshold, 0) &&
		blob_pack_catalog_ready())
	{
		appendBinaryStringInfo(&s->small, data, len);
		return;
	}
	if (s->w == NULL)
	{
		blob_sink_writer(s);
		if (s->small.len > 0)
			object_writer_write(s->w, s->small.data, s->small.len);
	}
	object_writer_write(s->w, data, len);
}

static BlobHandle *
blob_sink_finish(BlobSink *s, const uint8 *expected)
{
	uint8		id[CODEC_OBJID_LEN];

	if (s->w == NULL && !blob_pack_put(s->pool, s->small.data, s->small.len, expected, id))
	{
		blob_sink_writer(s);
		object_writer_write(s->w, s->small.data, s->small.len);
	}
	if (s->w != NULL)
		memcpy(id, blob_store_expect(s->w, expected)->id, CODEC_OBJID_LEN);
	pfree(s->small.data);
	return blob_handle_make(id);
}

/* ---------------------------------------------------------------------------
 * SQL functions
 * ------------------------------------------------------------------------- */
Datum
blob_put(PG_FUNCTION_ARGS)
{
	Name		poolname;
	bytea	   *data;
	const uint8 *expected;
	Pool	   *pool;
	BlobSink	sink;

	/* not STRICT since expected_sha256 may be NULL (none): the others may not */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	poolname = PG_GETARG_NAME(0);
	data = PG_GETARG_BYTEA_PP(1);
	expected = blob_arg_sha256(fcinfo, 2);
	pool = pool_lookup(NameStr(*poolname), true);
	blob_sink_start(&sink, pool, VARSIZE_ANY_EXHDR(data));
	blob_sink_write(&sink, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
	PG_RETURN_POINTER(blob_sink_finish(&sink, expected));
}

static void blob_entry_read(BlobCacheEntry *e, uint64 offset, uint64 n, char *dst);

Datum
blob_get(PG_FUNCTION_ARGS)
{
	BlobCacheEntry *e = blob_cache_lookup(PG_GETARG_BLOB(0), "read");
	uint64		size = e->data.size;
	bytea	   *result;

	if (size > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("blob %s is too large to return as bytea (%llu bytes)",
						object_id_text(e->data.id), (unsigned long long) size),
				 errhint("Use destor.blob_read() for parts of it, or destor.blob_export() to write it to a file.")));
	result = palloc(VARHDRSZ + size);
	SET_VARSIZE(result, VARHDRSZ + size);
	blob_entry_read(e, 0, size, VARDATA(result));
	PG_RETURN_BYTEA_P(result);
}

/*
 * blob_read_cached — a small read that the shared cache holds entirely,
 * copied out without opening a reader (which unwraps the data key, sets up
 * two cipher contexts and looks up every provider: most of a warm small
 * read's time).  The pages are the blocks' plaintext, keyed and laid out
 * as the reader's cache stage reads them; the caller checked the
 * privilege.  False (and dst partly written) if a block is not cached: the
 * reader then reads the whole range, and counts the miss.
 */
#define BLOB_CACHED_MAX_BLOCKS	4

static bool
blob_read_cached(const ObjectMeta *meta, uint64 offset, uint64 n, char *dst)
{
	uint64		bs = meta->block_size;
	uint64		b0 = offset / bs;
	uint64		b1 = (offset + n - 1) / bs;

	if (b1 - b0 + 1 > BLOB_CACHED_MAX_BLOCKS || !cache_enabled())
		return false;
	for (uint64 b = b0; b <= b1; b++)
	{
		uint64		plen = b == (uint64) meta->nblocks - 1 ? meta->size - b * bs : bs;
		uint64		from = Max(offset, b * bs);
		uint64		to = Min(offset + n, b * bs + plen);

		if (!cache_probe(meta->id, b, (uint32) (from - b * bs), (uint32) (to - b * bs),
						 dst + (from - offset)))
			return false;
	}
	return true;
}

/*
 * n bytes at offset (inside the blob) of the blob e describes into dst:
 * from the shared cache when it holds them all, else through a reader of
 * its own copy of the metadata (an invalidation during the read — a
 * provider look-up may take one — frees the cache's).
 */
static void
blob_entry_read(BlobCacheEntry *e, uint64 offset, uint64 n, char *dst)
{
	BlobData	d = e->data;
	ObjectReader *r;

	/* n = 0 too goes to the reader: even an empty blob is authenticated */
	if (n > 0 && !d.pending && blob_read_cached(d.meta, d.base + offset, n, dst))
		return;
	if (!e->transient && !d.pending)
		d.meta = blob_meta_copy(CurrentMemoryContext, e->data.meta);
	r = blob_data_reader(&d);
	blob_data_read(&d, r, offset, n, dst);
	blob_data_close(r);
}

Datum
blob_read(PG_FUNCTION_ARGS)
{
	int64		offset = PG_GETARG_INT64(1);
	int32		length = PG_GETARG_INT32(2);
	BlobCacheEntry *e;
	bytea	   *result;
	uint64		n;

	if (offset < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("blob offset must not be negative"),
				 errdetail("The offset given was " INT64_FORMAT ".", offset)));
	if (length < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("blob read length must not be negative"),
				 errdetail("The length given was %d.", length)));
	if (length > (int32) (MaxAllocSize - VARHDRSZ))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("blob read length %d is too large", length),
				 errhint("Read at most 1 GB at a time.")));

	e = blob_cache_lookup(PG_GETARG_BLOB(0), "read");
	/* the reader's own copy: an invalidation during the read (a provider
	 * look-up may take one) frees the cache's */
	/* like substring(): reading past the end returns what is there */
	n = (uint64) offset >= e->data.size ? 0 : Min((uint64) length, e->data.size - offset);
	result = palloc(VARHDRSZ + n);
	SET_VARSIZE(result, VARHDRSZ + n);
	if (n > 0)
		blob_entry_read(e, offset, n, VARDATA(result));
	PG_RETURN_BYTEA_P(result);
}

Datum
blob_size(PG_FUNCTION_ARGS)
{
	BlobCacheEntry *e = blob_cache_lookup(PG_GETARG_BLOB(0), "read");

	PG_RETURN_INT64((int64) e->data.size);
}

Datum
blob_delete(PG_FUNCTION_ARGS)
{
	blob_remove(blob_open_data(PG_GETARG_BLOB(0), "delete"));
	PG_RETURN_VOID();
}

Datum
blob_import(PG_FUNCTION_ARGS)
{
	Name		poolname;
	char	   *path;
	const uint8 *expected;
	Pool	   *pool;
	BlobSink	sink;
	BlobHandle *result;
	char	   *buf;
	int			fd;
	uint64		expect;

	/* not STRICT since expected_sha256 may be NULL (none): the others may not */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	poolname = PG_GETARG_NAME(0);
	path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to import a server-side file into a blob"),
				 errdetail("Only superusers and members of pg_read_server_files may read server files."),
				 errhint("Use destor.blob_put() to store data sent by the client.")));
	if (!is_absolute_path(path))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relative path not allowed for blob_import"),
				 errhint("Give the absolute path of the file on the database server.")));
	expected = blob_arg_sha256(fcinfo, 2);

	pool = pool_lookup(NameStr(*poolname), true);
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open server file \"%s\": %m", path)));

	progress_start("blob_import", InvalidOid, NameStr(*poolname));
	{
		struct stat st;

		expect = 0;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		{
			progress_set_totals((int64) st.st_size, 1);
			expect = (uint64) st.st_size;
		}
	}
	progress_set_phase("writing");
	blob_sink_start(&sink, pool, expect);
	buf = palloc(BLOB_IO_CHUNK);
	for (;;)
	{
		ssize_t		n;

		CHECK_FOR_INTERRUPTS();
		n = read(fd, buf, BLOB_IO_CHUNK);
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read server file \"%s\": %m", path)));
		}
		if (n == 0)
			break;
		blob_sink_write(&sink, buf, n);
		progress_add(n, 0);
	}
	CloseTransientFile(fd);
	pfree(buf);
	result = blob_sink_finish(&sink, expected);
	progress_add(0, 1);
	progress_end();
	PG_RETURN_POINTER(result);
}

/* ---------------------------------------------------------------------------
 * blob_export's output: two aligned buffers, so that one is written (by
 * POSIX AIO, with direct I/O where the filesystem allows) while the next
 * window of the blob is read and decrypted into the other.
 * ------------------------------------------------------------------------- */
#define EXPORT_CHUNK	OBJECT_READ_WINDOW_BYTES

typedef struct ExportWrite
{
	struct aiocb cb;
	char	   *buf;
	bool		busy;
} ExportWrite;

static void
export_wait(ExportWrite *w, bool interruptible)
{
	while (w->busy && aio_error(&w->cb) == EINPROGRESS)
	{
		const struct aiocb *list[1] = {&w->cb};
		struct timespec ts = {0, 100 * 1000 * 1000};

		(void) aio_suspend(list, 1, &ts);
		if (interruptible)
			CHECK_FOR_INTERRUPTS();
	}
}

static void
export_finish(ExportWrite *w, const char *path)
{
	int			err;
	ssize_t		n;

	if (!w->busy)
		return;
	export_wait(w, true);
	w->busy = false;
	err = aio_error(&w->cb);
	n = aio_return(&w->cb);
	if (err == 0 && (size_t) n != w->cb.aio_nbytes)
		err = ENOSPC;
	if (err != 0)
	{
		errno = err;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write server file \"%s\": %m", path)));
	}
}

static void
export_pwrite(int fd, const char *p, size_t len, off_t off, const char *path)
{
	while (len > 0)
	{
		ssize_t		w = pwrite(fd, p, len, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
		{
			if (w == 0)
				errno = ENOSPC;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write server file \"%s\": %m", path)));
		}
		p += w;
		len -= w;
		off += w;
	}
}

Datum
blob_export(PG_FUNCTION_ARGS)
{
	BlobHandle *b = PG_GETARG_BLOB(0);
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	BlobData   *meta;
	ObjectReader *r;
	ExportWrite w[2];
	uint64		off = 0;
	int			fd;
	int			flags = O_CREAT | O_WRONLY | O_TRUNC | PG_BINARY;
	bool		direct = true;
	mode_t		oumask;

	if (!has_privs_of_role(GetUserId(), ROLE_PG_WRITE_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to export a blob to a server-side file"),
				 errdetail("Only superusers and members of pg_write_server_files may write server files."),
				 errhint("Use destor.blob_get() or destor.blob_read() to fetch the data from the client.")));
	if (!is_absolute_path(path))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relative path not allowed for blob_export"),
				 errhint("Give the absolute path of the file on the database server.")));

	meta = blob_open_data(b, "read");
	r = blob_data_reader_whole(meta);
	progress_start("blob_export", InvalidOid, object_id_text(meta->id));
	progress_set_totals((int64) meta->size, 1);
	progress_set_phase("reading");

	/* read (and authenticate) the first part before touching the target, so
	 * an unreadable blob does not destroy an existing file */
	memset(w, 0, sizeof(w));
	w[0].buf = provider_alloc_aligned(CurrentMemoryContext, EXPORT_CHUNK);
	w[1].buf = provider_alloc_aligned(CurrentMemoryContext, EXPORT_CHUNK);
	blob_data_read(meta, r, 0, Min((uint64) EXPORT_CHUNK, meta->size), w[0].buf);

	oumask = umask(S_IWGRP | S_IWOTH);
	PG_TRY();
	{
		fd = OpenTransientFilePerm(path, flags | O_DIRECT, S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH);
		if (fd < 0 && errno == EINVAL)
		{
			direct = false;
			fd = OpenTransientFilePerm(path, flags, S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH);
		}
	}
	PG_FINALLY();
	{
		umask(oumask);
	}
	PG_END_TRY();
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create server file \"%s\": %m", path)));

	/* reserve the space up front: extending a file by direct writes is slow */
	if (direct && meta->size > 0)
		(void) fallocate(fd, 0, 0, (off_t) meta->size);

	PG_TRY();
	{
		int			cur = 0;

		while (off < meta->size)
		{
			uint64		n = Min((uint64) EXPORT_CHUNK, meta->size - off);
			ExportWrite *cw = &w[cur];

			export_finish(cw, path);
			if (off > 0)		/* the first part was read above */
				blob_data_read(meta, r, off, n, cw->buf);
			if (direct && n % PROVIDER_IO_ALIGN != 0)
			{
				/* the unaligned end of the file: write it through the page cache */
				int			fl;

				export_finish(&w[cur ^ 1], path);
				fl = fcntl(fd, F_GETFL);
				if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0)
					ereport(ERROR,
							(errcode_for_file_access(),
							 errmsg("could not write server file \"%s\": %m", path)));
				direct = false;
			}
			memset(&cw->cb, 0, sizeof(cw->cb));
			cw->cb.aio_fildes = fd;
			cw->cb.aio_buf = cw->buf;
			cw->cb.aio_nbytes = n;
			cw->cb.aio_offset = off;
			cw->cb.aio_sigevent.sigev_notify = SIGEV_NONE;
			if (aio_write(&cw->cb) == 0)
				cw->busy = true;
			else
				export_pwrite(fd, cw->buf, n, off, path);
			off += n;
			cur ^= 1;
			progress_add(n, 0);
		}
		export_finish(&w[0], path);
		export_finish(&w[1], path);
	}
	PG_CATCH();
	{
		/* the I/O threads may still be writing from our buffers: let them finish */
		export_wait(&w[0], false);
		export_wait(&w[1], false);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (CloseTransientFile(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close server file \"%s\": %m", path)));
	blob_data_close(r);
	progress_add(0, 1);
	progress_end();
	PG_RETURN_INT64((int64) meta->size);
}

/* ---------------------------------------------------------------------------
 * Large objects to blobs and back.  inv_open() applies the large object's
 * privileges (SELECT to read, UPDATE to write) as lo_open() does; unlinking
 * needs ownership, as lo_unlink() does.  Everything is transactional: an
 * abort keeps the large object and forgets the blob, or the reverse.
 * ------------------------------------------------------------------------- */
#define LO_IO_CHUNK		(1024 * 1024)

/*
 * inv_api keeps pg_largeobject and its index open until the end of the
 * transaction, and only lo_open() and friends arrange for them to be closed
 * then; a transaction that used inv_api only through these functions closes
 * them itself (else: relcache leak warnings, and errors in the next use).
 */
static bool lo_used = false;
static bool lo_callback_set = false;

static void
lo_xact_callback(XactEvent event, void *arg)
{
	if (!lo_used)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			close_lo_relation(true);
			lo_used = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			close_lo_relation(false);
			lo_used = false;
			break;
		default:
			break;
	}
}

static void
lo_note_use(void)
{
	if (!lo_callback_set)
	{
		RegisterXactCallback(lo_xact_callback, NULL);
		lo_callback_set = true;
	}
	lo_used = true;
}

static void
check_lo_owner(Oid lo, const char *action)
{
	if (!lo_compat_privileges && !pg_largeobject_ownercheck(lo, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of large object %u to %s it", lo, action),
				 errhint("Leave the large object in place (unlink => false), or ask its owner.")));
}

Datum
blob_from_lo(PG_FUNCTION_ARGS)
{
	Name		poolname = PG_GETARG_NAME(0);
	Oid			lo = PG_GETARG_OID(1);
	bool		unlink_lo = PG_GETARG_BOOL(2);
	Pool	   *pool = pool_lookup(NameStr(*poolname), true);
	LargeObjectDesc *desc;
	BlobSink	sink;
	BlobHandle *result;
	char	   *buf;

	/* checks existence and SELECT privilege */
	lo_note_use();
	desc = inv_open(lo, INV_READ, CurrentMemoryContext);
	if (unlink_lo)
		check_lo_owner(lo, "unlink");
	blob_sink_start(&sink, pool, 0);
	buf = palloc(LO_IO_CHUNK);
	for (;;)
	{
		int			n;

		CHECK_FOR_INTERRUPTS();
		n = inv_read(desc, buf, LO_IO_CHUNK);
		if (n <= 0)
			break;
		blob_sink_write(&sink, buf, n);
	}
	inv_close(desc);
	pfree(buf);
	result = blob_sink_finish(&sink, NULL);
	if (unlink_lo)
		inv_drop(lo);
	PG_RETURN_POINTER(result);
}

/*
 * How much of a window blob_to_lo writes into the large object between two
 * looks at the reader (object_reader_poll): writing a 16 MiB window took
 * longer than fetching the next one under load, and the window after it
 * was asked for only once the write was over.
 */
#define LO_WRITE_PIECE		(1024 * 1024)

Datum
blob_to_lo(PG_FUNCTION_ARGS)
{
	BlobHandle *b = PG_GETARG_BLOB(0);
	Oid			lo = PG_GETARG_OID(1);
	bool		delete_blob = PG_GETARG_BOOL(2);
	BlobData   *meta = blob_open_data(b, delete_blob ? "delete" : "read");
	ObjectReader *r = blob_data_reader_whole(meta);
	LargeObjectDesc *desc;
	char	   *buf = buffer_alloc_large(CurrentMemoryContext, OBJECT_READ_WINDOW_BYTES);

	if (OidIsValid(lo) && LargeObjectExists(lo))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("large object %u already exists", lo),
				 errhint("Pass 0 (the default) to have a new oid chosen, or unlink the existing large object first.")));
	lo_note_use();
	lo = inv_create(lo);
	desc = inv_open(lo, INV_WRITE, CurrentMemoryContext);
	for (uint64 off = 0; off < meta->size;)
	{
		int			n = (int) Min((uint64) OBJECT_READ_WINDOW_BYTES, meta->size - off);

		CHECK_FOR_INTERRUPTS();
		blob_data_read(meta, r, off, n, buf);
		/* written a piece at a time: the reader moves between them */
		for (int done = 0; done < n; done += LO_WRITE_PIECE)
		{
			int			len = Min(LO_WRITE_PIECE, n - done);

			if (inv_write(desc, buf + done, len) != len)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not write large object %u", lo)));
			if (r != NULL)	/* NULL: a pending blob, in memory */
				object_reader_poll(r);
		}
		off += n;
	}
	inv_close(desc);
	blob_data_close(r);
	pfree(buf);
	if (delete_blob)
		blob_remove(meta);
	PG_RETURN_OID(lo);
}


/* ---------------------------------------------------------------------------
 * Integrity a user can check (issue 15): the SHA-256 of a blob's content,
 * computed by the object writer as the data arrived and kept in
 * destor.blobs.sha256; a check of every shard and of that hash; and writes
 * that refuse content whose hash is not the one the client expected.
 *
 * Blobs written before destor 0.2.0 have no recorded hash: blob_sha256()
 * returns NULL for them (it promises no provider read, and computing the
 * hash means reading the whole blob), and blob_verify() checks their
 * shards' tags and that the content decodes — which authenticates it
 * under its data key — without a hash to compare.
 * ------------------------------------------------------------------------- */

/* Argument n, an expected SHA-256 (NULL or absent: none), checked for length. */
static const uint8 *
blob_arg_sha256(FunctionCallInfo fcinfo, int n)
{
	bytea	   *b;

	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return NULL;
	b = PG_GETARG_BYTEA_PP(n);
	if (VARSIZE_ANY_EXHDR(b) != OBJECT_SHA256_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expected_sha256 must be %d bytes, not %d",
						OBJECT_SHA256_LEN, (int) VARSIZE_ANY_EXHDR(b)),
				 errhint("Pass the raw digest, e.g. sha256(data) or decode('<64 hex digits>', 'hex').")));
	return (const uint8 *) VARDATA_ANY(b);
}

static char *
blob_sha256_hex(const uint8 *sha)
{
	char	   *hex = palloc(OBJECT_SHA256_LEN * 2 + 1);

	for (int i = 0; i < OBJECT_SHA256_LEN; i++)
		sprintf(hex + 2 * i, "%02x", sha[i]);
	return hex;
}

/*
 * blob_check_expected_sha256 — refuse content of size bytes whose SHA-256
 * (got; NULL: not known) is not expected (NULL: any).
 */
void
blob_check_expected_sha256(uint64 size, const uint8 *got, const uint8 *expected)
{
	if (expected == NULL || (got != NULL && memcmp(got, expected, OBJECT_SHA256_LEN) == 0))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("blob content does not match expected_sha256"),
			 errdetail("The %llu bytes received have SHA-256 %s; %s was expected.",
					   (unsigned long long) size, got ? blob_sha256_hex(got) : "(unknown)",
					   blob_sha256_hex(expected)),
			 errhint("Nothing was stored. Send the data again.")));
}

/*
 * blob_store_expect — blob_store, refusing (before anything is recorded)
 * content whose SHA-256 is not expected_sha256 (NULL: any).  The ERROR
 * aborts the (sub)transaction, whose abort deletes the shards just
 * written, so a refused write leaves nothing behind.
 */
static ObjectMeta *
blob_store_expect(ObjectWriter *w, const uint8 *expected_sha256)
{
	ObjectMeta *meta = object_writer_finish(w);

	if (expected_sha256 != NULL && !meta->has_sha256)
		blob_check_expected_sha256(meta->size, NULL, expected_sha256);
	blob_check_expected_sha256(meta->size, meta->sha256, expected_sha256);
	catalog_insert_object(meta);
	catalog_insert_blob_sha256(meta->id, GetUserId(), meta->has_sha256 ? meta->sha256 : NULL);
	blob_role_depend(GetUserId());
	return meta;
}

/* blob_sha256(b) — the recorded SHA-256 of the content; no provider read. */
Datum
blob_sha256(PG_FUNCTION_ARGS)
{
	BlobHandle *b = PG_GETARG_BLOB(0);
	Oid			owner = InvalidOid;
	uint64		len;
	bool		found;
	uint8		sha[OBJECT_SHA256_LEN];
	bytea	   *result;

	if (blob_pack_pending(b->id, &owner, NULL, &len, sha))
		blob_check_access(b, true, owner, "read");	/* in this transaction's open pack */
	else
	{
		found = catalog_get_blob(b->id, &owner);
		blob_check_access(b, found, owner, "read");
		if (!catalog_get_blob_sha256(b->id, sha))
			PG_RETURN_NULL();	/* written before 0.2.0: see above */
	}
	result = palloc(VARHDRSZ + OBJECT_SHA256_LEN);
	SET_VARSIZE(result, VARHDRSZ + OBJECT_SHA256_LEN);
	memcpy(VARDATA(result), sha, OBJECT_SHA256_LEN);
	PG_RETURN_BYTEA_P(result);
}

/*
 * blob_verify(b) — read every shard and check every chunk against its tag
 * (as repair(verify => true) does, nothing rebuilt), then read the content
 * and compare its SHA-256 with the recorded one.  False, with a WARNING
 * saying why, if a shard is missing, corrupt or unreachable, or the hash
 * differs; an ERROR only if the blob cannot be used at all (access, or too
 * few good shards to decode it — said as a WARNING and false too).
 */
Datum
blob_verify(PG_FUNCTION_ARGS)
{
	BlobHandle *b = PG_GETARG_BLOB(0);
	BlobData   *d;
	ObjectMeta *meta;
	int			n;
	bool		unreadable = false;
	bool		ok = true;
	ShardCheck *checks;
	uint8		want[OBJECT_SHA256_LEN];
	bool		have_want;
	pg_cryptohash_ctx *ctx;
	uint8		got[OBJECT_SHA256_LEN];
	ObjectReader *r;
	char	   *buf;

	/* a small blob of this transaction is uploaded first: its shards are checked */
	blob_pack_settle(b->id);
	d = blob_open_data(b, "read");
	meta = d->meta;				/* a packed blob's pack: all of its shards */
	n = meta->data_shards + meta->parity_shards;
	have_want = catalog_get_blob_sha256(b->id, want);
	checks = object_check_and_repair(meta, true, false, NULL, &unreadable);
	for (int i = 0; i < n; i++)
	{
		if (checks[i].found == SHARD_FOUND_OK)
			continue;
		ok = false;
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("blob shard %d is %s", i,
						checks[i].found == SHARD_FOUND_MISSING ? "missing" :
						checks[i].found == SHARD_FOUND_CORRUPT ? "corrupt" : "unreachable"),
				 errdetail("Blob %s, provider \"%s\": %s", object_id_text(b->id),
						   meta->shards[i].provider,
						   checks[i].detail ? checks[i].detail : "no detail"),
				 errhint("destor.repair() rebuilds missing and corrupt shards.")));
	}
	if (unreadable)
	{
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("blob has fewer than %d good shards and cannot be read",
						meta->data_shards),
				 errdetail("Blob %s.", object_id_text(b->id))));
		PG_RETURN_BOOL(false);
	}

	/* the content, decoded (degraded where need be) and authenticated */
	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute a SHA-256")));
	r = blob_data_reader_whole(d);
	buf = buffer_alloc_large(CurrentMemoryContext, OBJECT_READ_WINDOW_BYTES);
	for (uint64 off = 0; off < d->size;)
	{
		uint64		len = Min((uint64) OBJECT_READ_WINDOW_BYTES, d->size - off);

		CHECK_FOR_INTERRUPTS();
		blob_data_read(d, r, off, len, buf);
		if (pg_cryptohash_update(ctx, (uint8 *) buf, len) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not compute a SHA-256")));
		off += len;
	}
	blob_data_close(r);
	pfree(buf);
	if (pg_cryptohash_final(ctx, got, sizeof(got)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a SHA-256")));
	pg_cryptohash_free(ctx);
	if (have_want && memcmp(got, want, OBJECT_SHA256_LEN) != 0)
	{
		ok = false;
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("blob content does not have its recorded SHA-256"),
				 errdetail("Blob %s: recorded %s, read %s.", object_id_text(b->id),
						   blob_sha256_hex(want), blob_sha256_hex(got))));
	}
	PG_RETURN_BOOL(ok);
}
