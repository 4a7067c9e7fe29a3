/*
 * meta_recover.c — destor.recover_catalog(pool): the catalog rebuilt from
 * the metadata log on the pool's providers.
 *
 * Responsible for: listing the log of the pool (meta/<instance>/ on every
 * provider the pool lists now), deciding which log objects committed (an
 * authentic commit marker, or a confirmation in another authentic log
 * object), decoding them with the master key alone, replaying their records
 * in sequence order into destor's catalog, and adopting (by default) the
 * writer's instance identity so that the recovered database carries on as
 * the pool's writer.  The tables' definitions land in
 * destor.table_definitions, which IMPORT FOREIGN SCHEMA reads
 * (table_fdw.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "destor/blob.h"
#include "destor/catalog.h"
#include "destor/lease.h"
#include "destor/meta.h"

PG_FUNCTION_INFO_V1(destor_recover_catalog);
PG_FUNCTION_INFO_V1(destor_follow_pool);
PG_FUNCTION_INFO_V1(destor_compact_log);

/* One log object found on the providers. */
typedef struct LogEntry
{
	char		instance[37];
	uint64		seq;
	uint8		log_id[CODEC_OBJID_LEN];
	Provider   *shard_provider[CODEC_RS_MAX_SHARDS];
	char	   *shard_key[CODEC_RS_MAX_SHARDS];
	uint64		shard_size[CODEC_RS_MAX_SHARDS];
	List	   *marker_providers;	/* Provider * holding a marker */
	char	   *marker_key;
	MetaDecodeResult result;
	bool		decoded;
	bool		committed;
	char	   *payload;
	size_t		payload_len;
} LogEntry;

typedef struct RecoverState
{
	Tuplestorestate *store;
	TupleDesc	desc;
	const char *pool;
	HTAB	   *blobs;			/* blob id -> BlobSeen */
	int64		records;
} RecoverState;

typedef struct BlobSeen
{
	uint8		id[CODEC_OBJID_LEN];
	char		detail[2 * NAMEDATALEN + 64];
} BlobSeen;

static void
report_row(RecoverState *st, const char *kind, const uint8 *id, const char *name,
		   const char *detail)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	values[0] = CStringGetTextDatum(kind);
	if (id)
		values[1] = object_id_datum(id);
	else
		nulls[1] = true;
	if (name)
		values[2] = CStringGetTextDatum(name);
	else
		nulls[2] = true;
	if (detail)
		values[3] = CStringGetTextDatum(detail);
	else
		nulls[3] = true;
	tuplestore_putvalues(st->store, st->desc, values, nulls);
}

/*
 * The keys under meta/ of one provider, or NIL with a WARNING when it
 * cannot be listed (a provider lost is what recovery must live with): the
 * listing runs in a subtransaction, so its failure leaves nothing behind.
 */
typedef struct LogListing
{
	Provider   *provider;
	MemoryContext cxt;
	List	   *keys;
} LogListing;

static void
list_provider_log_step(void *arg)
{
	LogListing *l = (LogListing *) arg;
	MemoryContext old = MemoryContextSwitchTo(l->cxt);

	l->keys = provider_list(l->provider, META_KEY_PREFIX);
	MemoryContextSwitchTo(old);
}

static List *
list_provider_log(Provider *p, MemoryContext cxt, int *failed)
{
	LogListing	l = {p, cxt, NIL};
	ErrorData  *ed;

	if (catalog_try(list_provider_log_step, &l, &ed))
		return l.keys;
	(*failed)++;
	ereport(WARNING,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("could not list the metadata log on provider \"%s\"", p->name),
			 errdetail("%s", ed->message),
			 errhint("Recovery goes on with the other providers: a log object needs only data_shards of its shards.")));
	FreeErrorData(ed);
	return NIL;
}

#define LOG_KEY_LEN (8 + CODEC_OBJID_LEN + 37)

typedef struct LogSlot
{
	char		key[LOG_KEY_LEN];
	LogEntry   *entry;
} LogSlot;

static LogEntry *
log_entry(HTAB *logs, const char *instance, uint64 seq, const uint8 log_id[CODEC_OBJID_LEN])
{
	char		key[LOG_KEY_LEN];
	bool		found;
	LogSlot    *slot;

	memset(key, 0, sizeof(key));
	memcpy(key, &seq, 8);
	memcpy(key + 8, log_id, CODEC_OBJID_LEN);
	strlcpy(key + 8 + CODEC_OBJID_LEN, instance, 37);
	slot = hash_search(logs, key, HASH_ENTER, &found);
	if (!found)
	{
		slot->entry = palloc0(sizeof(LogEntry));
		strlcpy(slot->entry->instance, instance, sizeof(slot->entry->instance));
		slot->entry->seq = seq;
		memcpy(slot->entry->log_id, log_id, CODEC_OBJID_LEN);
	}
	return slot->entry;
}

static int
log_entry_cmp(const ListCell *a, const ListCell *b)
{
	LogEntry   *x = lfirst(a);
	LogEntry   *y = lfirst(b);

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return memcmp(x->log_id, y->log_id, CODEC_OBJID_LEN);
}

/* Fetch every listed shard of a log object in one batch and decode it. */
static void
decode_entry(LogEntry *e, uint8 key_id_seen[CODEC_KEY_FINGERPRINT_LEN])
{
	ProviderRequest reqs[CODEC_RS_MAX_SHARDS];
	uint8	   *files[CODEC_RS_MAX_SHARDS];
	size_t		lens[CODEC_RS_MAX_SHARDS];
	int			slot_of[CODEC_RS_MAX_SHARDS];
	int			n = 0;

	memset(reqs, 0, sizeof(reqs));
	for (int i = 0; i < CODEC_RS_MAX_SHARDS; i++)
	{
		files[i] = NULL;
		lens[i] = 0;
		if (e->shard_key[i] == NULL || e->shard_size[i] == 0 ||
			e->shard_size[i] > (uint64) MaxAllocHugeSize / 2)
			continue;
		reqs[n].provider = e->shard_provider[i];
		reqs[n].op = POP_GET;
		reqs[n].key = e->shard_key[i];
		reqs[n].offset = 0;
		reqs[n].length = e->shard_size[i];
		reqs[n].buf = palloc_extended(e->shard_size[i], MCXT_ALLOC_HUGE);
		reqs[n].no_retry = false;
		slot_of[n] = i;
		n++;
	}
	provider_execute(reqs, n);
	for (int r = 0; r < n; r++)
		if (reqs[r].ok && reqs[r].result_size == reqs[r].length)
		{
			files[slot_of[r]] = (uint8 *) reqs[r].buf;
			lens[slot_of[r]] = reqs[r].length;
		}
	e->result = meta_decode_log(files, lens, CODEC_RS_MAX_SHARDS, e->log_id, e->seq,
								&e->payload, &e->payload_len, key_id_seen);
	e->decoded = e->result == META_DECODED;
}

/* Is one of the entry's commit markers authentic? */
static bool
marker_found(LogEntry *e)
{
	ListCell   *lc;

	foreach(lc, e->marker_providers)
	{
		ProviderRequest r = {0};
		uint8		buf[META_MARKER_LEN];

		r.provider = lfirst(lc);
		r.op = POP_GET;
		r.key = e->marker_key;
		r.offset = 0;
		r.length = META_MARKER_LEN;
		r.buf = (char *) buf;
		provider_execute(&r, 1);
		if (r.ok && r.result_size == META_MARKER_LEN &&
			meta_check_marker(e->log_id, e->seq, buf, META_MARKER_LEN))
			return true;
	}
	return false;
}

/* The batch header of a decoded entry: confirmations of earlier logs. */
static bool
read_batch_header(LogEntry *e, MetaReader *r, List **confirms, char **pool, uint64 *written)
{
	const uint8 *magic;
	uint32		nconf;
	char	   *pool_name;

	r->p = (const uint8 *) e->payload;
	r->end = r->p + e->payload_len;
	r->bad = false;
	magic = meta_get_fixed(r, 4);
	if (magic == NULL || memcmp(magic, META_BATCH_MAGIC, 4) != 0 ||
		meta_get_u32(r) != META_FORMAT_VERSION)
		return false;
	(void) meta_get_str(r);		/* instance */
	pool_name = meta_get_str(r);
	if (pool)
		*pool = pool_name;
	if (meta_get_u64(r) != e->seq)
		return false;
	if (written)
		*written = meta_get_u64(r);
	else
		(void) meta_get_u64(r); /* written at */
	nconf = meta_get_u32(r);
	for (uint32 i = 0; i < nconf && !r->bad; i++)
	{
		uint64		seq = meta_get_u64(r);
		const uint8 *id = meta_get_fixed(r, CODEC_OBJID_LEN);

		if (id && confirms)
		{
			LogEntry   *c = palloc0(sizeof(LogEntry));

			c->seq = seq;
			memcpy(c->log_id, id, CODEC_OBJID_LEN);
			*confirms = lappend(*confirms, c);
		}
	}
	return !r->bad;
}

static Datum
name_datum(const char *s)
{
	return DirectFunctionCall1(namein, CStringGetDatum(s));
}

static Datum
bytes_datum(const uint8 *p, uint32 len)
{
	return PointerGetDatum(catalog_bytea(p, len));
}

#define GUARD_OBJECT "EXISTS (SELECT FROM destor.objects WHERE object_id = $1)"

/* Apply one record to the catalog (SPI connected, as the catalog's user). */
/*
 * The role a recovered blob goes to: its owner's name here, else the caller
 * (a superuser takes what nobody here can own); noted for the report, with
 * suffix.
 */
static Oid
replay_blob_owner(RecoverState *st, const uint8 *id, const char *owner, const char *suffix)
{
	Oid			role = owner ? get_role_oid(owner, true) : InvalidOid;
	bool		found;
	BlobSeen   *b = hash_search(st->blobs, id, HASH_ENTER, &found);

	if (OidIsValid(role))
		snprintf(b->detail, sizeof(b->detail), "owner %s%s", owner, suffix);
	else
	{
		role = GetSessionUserId();
		snprintf(b->detail, sizeof(b->detail),
				 "owner \"%s\" does not exist here: given to \"%s\"%s",
				 owner ? owner : "(unknown)", GetUserNameFromId(role, false), suffix);
	}
	return role;
}

static void
replay_record(RecoverState *st, uint8 kind, MetaReader *r)
{
	const uint8 *id = meta_get_fixed(r, CODEC_OBJID_LEN);
	Datum		v[14];
	char		nulls[14];
	uint32		len;
	const uint8 *p;

	memset(nulls, ' ', sizeof(nulls));
	if (id == NULL)
		return;
	v[0] = object_id_datum(id);
	switch (kind)
	{
		case META_REC_OBJECT:
			{
				Oid			t[14] = {UUIDOID, NAMEOID, INT8OID, INT8OID, INT4OID, INT4OID, INT4OID,
				INT4OID, BOOLOID, BYTEAOID, INT4OID, BYTEAOID, BYTEAOID, TIMESTAMPTZOID};

				(void) meta_get_str(r);	/* the pool's name on the writer */
				v[1] = name_datum(st->pool);
				v[2] = Int64GetDatum((int64) meta_get_u64(r));
				v[3] = Int64GetDatum((int64) meta_get_u64(r));
				v[4] = Int32GetDatum((int32) meta_get_u32(r));
				v[5] = Int32GetDatum((int32) meta_get_u32(r));
				v[6] = Int32GetDatum((int32) meta_get_u32(r));
				v[7] = Int32GetDatum((int32) meta_get_u32(r));
				v[8] = BoolGetDatum(meta_get_u8(r) != 0);
				p = meta_get_bytes(r, &len);
				if (p)
					v[9] = bytes_datum(p, len);
				else
					nulls[9] = 'n';
				v[10] = Int32GetDatum((int32) meta_get_u32(r));
				p = meta_get_bytes(r, &len);
				v[11] = bytes_datum(p, len);
				p = meta_get_bytes(r, &len);
				v[12] = bytes_datum(p, len);
				v[13] = TimestampTzGetDatum((TimestampTz) meta_get_u64(r));
				if (r->bad)
					return;
				catalog_exec("INSERT INTO destor.objects (object_id, pool, size, stream_size, block_size, "
							 "chunk_size, data_shards, parity_shards, compressed, block_ends, key_version, "
							 "key_id, wrapped_key, created_at) "
							 "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) "
							 "ON CONFLICT (object_id) DO UPDATE SET pool = excluded.pool, size = excluded.size, "
							 "stream_size = excluded.stream_size, block_size = excluded.block_size, "
							 "chunk_size = excluded.chunk_size, data_shards = excluded.data_shards, "
							 "parity_shards = excluded.parity_shards, compressed = excluded.compressed, "
							 "block_ends = excluded.block_ends, key_version = excluded.key_version, "
							 "key_id = excluded.key_id, wrapped_key = excluded.wrapped_key",
							 14, t, v, nulls, SPI_OK_INSERT);
				break;
			}
		case META_REC_OBJECT_DELETE:
			catalog_exec("DELETE FROM destor.objects o WHERE object_id = $1 "
						 "AND NOT EXISTS (SELECT FROM destor.blobs b WHERE b.blob_id = o.object_id) "
						 "AND NOT EXISTS (SELECT FROM destor.blobs b WHERE b.pack_id = o.object_id) "
						 "AND NOT EXISTS (SELECT FROM destor.segments g WHERE g.object_id = o.object_id)",
						 1, (Oid[]) {UUIDOID}, v, NULL, SPI_OK_DELETE);
			break;
		case META_REC_SHARD:
			{
				Oid			t[5] = {UUIDOID, INT4OID, NAMEOID, TEXTOID, INT8OID};
				char	   *prov;
				char	   *state;

				v[1] = Int32GetDatum((int32) meta_get_u32(r));
				prov = meta_get_str(r);
				state = meta_get_str(r);
				v[4] = Int64GetDatum((int64) meta_get_u64(r));
				if (r->bad || prov == NULL || state == NULL)
					return;
				v[2] = name_datum(prov);
				v[3] = CStringGetTextDatum(state);
				catalog_exec("INSERT INTO destor.shards (object_id, shard_index, provider, state, size) "
							 "SELECT $1, $2, $3, $4, $5 WHERE " GUARD_OBJECT " "
							 "ON CONFLICT (object_id, shard_index) DO UPDATE SET provider = excluded.provider, "
							 "state = excluded.state, size = excluded.size",
							 5, t, v, NULL, SPI_OK_INSERT);
				break;
			}
		case META_REC_BLOB:
			{
				Oid			t[4] = {UUIDOID, OIDOID, TIMESTAMPTZOID, BYTEAOID};
				char	   *owner = meta_get_str(r);

				v[2] = TimestampTzGetDatum((TimestampTz) meta_get_u64(r));
				if (r->bad)
					return;
				/* the content's SHA-256, a trailing field absent from older logs */
				nulls[3] = 'n';
				if (r->p < r->end)
				{
					p = meta_get_bytes(r, &len);
					if (r->bad)
						return;
					if (p != NULL)
					{
						v[3] = bytes_datum(p, len);
						nulls[3] = ' ';
					}
				}
				v[1] = ObjectIdGetDatum(replay_blob_owner(st, id, owner, ""));
				catalog_exec("INSERT INTO destor.blobs (blob_id, owner, created_at, sha256) "
							 "SELECT $1, $2::regrole, $3, $4 WHERE " GUARD_OBJECT " "
							 "ON CONFLICT (blob_id) DO UPDATE SET owner = excluded.owner, "
							 "sha256 = coalesce(excluded.sha256, destor.blobs.sha256)",
							 4, t, v, nulls, SPI_OK_INSERT);
				break;
			}
		case META_REC_BLOB_PACKED:
			{
				/* a blob inside a pack: (pack, offset, length) and its SHA-256 */
				Oid			t[7] = {UUIDOID, OIDOID, TIMESTAMPTZOID, UUIDOID, INT8OID, INT8OID, BYTEAOID};
				char	   *owner = meta_get_str(r);
				const uint8 *pack;

				v[2] = TimestampTzGetDatum((TimestampTz) meta_get_u64(r));
				pack = meta_get_fixed(r, CODEC_OBJID_LEN);
				v[4] = Int64GetDatum((int64) meta_get_u64(r));
				v[5] = Int64GetDatum((int64) meta_get_u64(r));
				p = meta_get_bytes(r, &len);
				if (r->bad || pack == NULL)
					return;
				v[3] = object_id_datum(pack);
				if (p == NULL)
					nulls[6] = 'n';
				else
					v[6] = bytes_datum(p, len);
				v[1] = ObjectIdGetDatum(replay_blob_owner(st, id, owner, ", packed"));
				catalog_exec("INSERT INTO destor.blobs (blob_id, owner, created_at, pack_id, pack_offset, "
							 "pack_length, sha256) "
							 "SELECT $1, $2::regrole, $3, $4, $5, $6, $7 "
							 "WHERE EXISTS (SELECT FROM destor.objects WHERE object_id = $4) "
							 "ON CONFLICT (blob_id) DO UPDATE SET owner = excluded.owner, "
							 "pack_id = excluded.pack_id, pack_offset = excluded.pack_offset, "
							 "pack_length = excluded.pack_length, sha256 = excluded.sha256",
							 7, t, v, nulls, SPI_OK_INSERT);
				break;
			}
		case META_REC_BLOB_DELETE:
			catalog_exec("DELETE FROM destor.blobs WHERE blob_id = $1", 1, (Oid[]) {UUIDOID}, v,
						 NULL, SPI_OK_DELETE);
			hash_search(st->blobs, id, HASH_REMOVE, NULL);
			break;
		case META_REC_SEGMENT:
			{
				Oid			t[6] = {UUIDOID, INT8OID, UUIDOID, INT8OID, BYTEAOID, TIMESTAMPTZOID};
				const uint8 *oid;

				v[1] = Int64GetDatum((int64) meta_get_u64(r));
				oid = meta_get_fixed(r, CODEC_OBJID_LEN);
				v[3] = Int64GetDatum((int64) meta_get_u64(r));
				p = meta_get_bytes(r, &len);
				v[5] = TimestampTzGetDatum((TimestampTz) meta_get_u64(r));
				if (r->bad || oid == NULL || p == NULL)
					return;
				v[2] = object_id_datum(oid);
				v[4] = bytes_datum(p, len);
				catalog_exec("INSERT INTO destor.segments (table_id, segment_no, object_id, row_count, "
							 "directory, created_at) SELECT $1, $2, $3, $4, $5, $6 "
							 "WHERE EXISTS (SELECT FROM destor.objects WHERE object_id = $3) "
							 "ON CONFLICT (table_id, segment_no) DO UPDATE SET object_id = excluded.object_id, "
							 "row_count = excluded.row_count, directory = excluded.directory",
							 6, t, v, NULL, SPI_OK_INSERT);
				break;
			}
		case META_REC_SEGMENT_DELETE:
			v[1] = Int64GetDatum((int64) meta_get_u64(r));
			if (r->bad)
				return;
			catalog_exec("DELETE FROM destor.segments WHERE table_id = $1 AND segment_no = $2", 2,
						 (Oid[]) {UUIDOID, INT8OID}, v, NULL, SPI_OK_DELETE);
			break;
		case META_REC_DELETION:
		case META_REC_DELETION_DELETE:
			v[1] = Int64GetDatum((int64) meta_get_u64(r));
			p = meta_get_bytes(r, &len);
			if (kind == META_REC_DELETION)
				v[3] = TimestampTzGetDatum((TimestampTz) meta_get_u64(r));
			if (r->bad || p == NULL)
				return;
			v[2] = bytes_datum(p, len);
			if (kind == META_REC_DELETION)
				/* replay is idempotent: a second recovery adds no duplicate */
				catalog_exec("INSERT INTO destor.deletions (table_id, segment_no, rows, created_at) "
							 "SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM destor.deletions "
							 "WHERE table_id = $1 AND segment_no = $2 AND rows = $3)", 4,
							 (Oid[]) {UUIDOID, INT8OID, BYTEAOID, TIMESTAMPTZOID}, v, NULL,
							 SPI_OK_INSERT);
			else
				catalog_exec("DELETE FROM destor.deletions WHERE table_id = $1 AND segment_no = $2 "
							 "AND rows = $3", 3, (Oid[]) {UUIDOID, INT8OID, BYTEAOID}, v, NULL,
							 SPI_OK_DELETE);
			break;
		case META_REC_TABLE_DEF:
			{
				char	   *def = meta_get_str(r);

				if (r->bad || def == NULL)
					return;
				v[1] = name_datum(st->pool);
				v[2] = CStringGetTextDatum(def);
				catalog_exec("INSERT INTO destor.table_definitions (table_id, pool, definition) "
							 "VALUES ($1, $2, $3::jsonb) ON CONFLICT (table_id) DO UPDATE "
							 "SET pool = excluded.pool, definition = excluded.definition, updated_at = now()",
							 3, (Oid[]) {UUIDOID, NAMEOID, TEXTOID}, v, NULL, SPI_OK_INSERT);
				break;
			}
		case META_REC_TABLE_DROP:
			catalog_exec("DELETE FROM destor.table_definitions WHERE table_id = $1", 1,
						 (Oid[]) {UUIDOID}, v, NULL, SPI_OK_DELETE);
			break;
		default:
			/* a kind this version does not know (rotation's re-wraps, later ones): skipped */
			break;
	}
	st->records++;
}

static void
replay_entry(RecoverState *st, LogEntry *e)
{
	MetaReader	r;
	uint32		nrec;

	if (!read_batch_header(e, &r, NULL, NULL, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("metadata log object %llu of pool \"%s\" is malformed",
						(unsigned long long) e->seq, st->pool)));
	nrec = meta_get_u32(&r);
	for (uint32 i = 0; i < nrec && !r.bad; i++)
	{
		uint8		kind = meta_get_u8(&r);
		uint32		len;
		const uint8 *body = meta_get_bytes(&r, &len);
		MetaReader	br;

		CHECK_FOR_INTERRUPTS();
		if (body == NULL)
			break;
		br.p = body;
		br.end = body + len;
		br.bad = false;
		replay_record(st, kind, &br);
	}
	if (r.bad)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("metadata log object %llu of pool \"%s\" is malformed",
						(unsigned long long) e->seq, st->pool)));
}

static char *
hex_text(const uint8 *p, int n)
{
	char	   *s = palloc(2 * n + 1);

	for (int i = 0; i < n; i++)
		sprintf(s + 2 * i, "%02x", p[i]);
	return s;
}

/*
 * A scan of one pool's log: what is listed on its providers, decoded, and
 * which committed.  Entries whose (instance, seq, log id) a follower has
 * replayed already (destor.followed_log) are left out before any shard is
 * fetched.
 */
typedef struct LogScan
{
	List	   *entries;		/* LogEntry *, in seq order */
	List	   *instances;		/* String * of the instances listed */
	List	   *done;			/* LogEntry * a follower records without replaying */
	int			nproviders_listed;
	int			nproviders_failed;	/* could not be listed (or are not declared) */
	int			wrong_key;
	int			unreadable;
	int			uncommitted;
	int			other_pools;
	int			vanished;		/* followed log objects no longer on the providers */
	uint8		key_id_seen[CODEC_KEY_FINGERPRINT_LEN];
} LogScan;

/*
 * A log object neither marked nor confirmed while the same writer committed
 * later log objects for this long after it (the writer's clock on both
 * sides) belongs to a transaction that failed: a follower stops fetching it.
 */
#define FOLLOW_DEAD_AFTER_US	((uint64) 3600 * USECS_PER_SEC)

/* 1. list the log on every provider the pool lists: a hash of LogSlot */
static HTAB *
log_list(Pool *pool, const char *want_instance, MemoryContext work, LogScan *sc)
{
	HTAB	   *logs;
	HASHCTL		ctl;
	ListCell   *lc;
	int			i;

	memset(sc, 0, sizeof(LogScan));
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = LOG_KEY_LEN;
	ctl.entrysize = sizeof(LogSlot);
	ctl.hcxt = work;
	logs = hash_create("destor recovery logs", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	/* 1. list the log on every provider the pool lists */
	for (i = 0; i < pool->nproviders; i++)
	{
		Provider   *p = provider_lookup_by_name(pool->provider_names[i], true);
		List	   *keys;

		if (p == NULL)
		{
			sc->nproviders_failed++;
			continue;
		}
		keys = list_provider_log(p, work, &sc->nproviders_failed);
		if (keys != NIL)
			sc->nproviders_listed++;
		foreach(lc, keys)
		{
			ProviderListEntry *le = lfirst(lc);
			char		inst[37];
			uint64		seq;
			uint8		log_id[CODEC_OBJID_LEN];
			int			shard;
			LogEntry   *e;

			if (!meta_parse_key(le->key, inst, &seq, log_id, &shard))
				continue;
			if (want_instance && strcmp(inst, want_instance) != 0)
				continue;
			if (!list_member(sc->instances, makeString(pstrdup(inst))))
				sc->instances = lappend(sc->instances, makeString(pstrdup(inst)));
			e = log_entry(logs, inst, seq, log_id);
			if (shard < 0)
			{
				e->marker_providers = lappend(e->marker_providers, p);
				e->marker_key = pstrdup(le->key);
			}
			else
			{
				e->shard_provider[shard] = p;
				e->shard_key[shard] = pstrdup(le->key);
				e->shard_size[shard] = le->size;
			}
		}
	}
	return logs;
}

static List *
log_entries(HTAB *logs)
{
	HASH_SEQ_STATUS hs;
	LogSlot    *slot;
	List	   *entries = NIL;

	hash_seq_init(&hs, logs);
	while ((slot = hash_seq_search(&hs)) != NULL)
		entries = lappend(entries, slot->entry);
	list_sort(entries, log_entry_cmp);
	return entries;
}

/* Only the listing, for compaction: sc->entries, nothing decoded. */
static void
log_scan_list(Pool *pool, const char *instance, MemoryContext work, LogScan *sc)
{
	sc->entries = log_entries(log_list(pool, instance, work, sc));
}

static void
log_scan(Pool *pool, const char *poolname, const char *want_instance, bool follower,
		 MemoryContext work, LogScan *sc)
{
	HTAB	   *logs = log_list(pool, want_instance, work, sc);
	ListCell   *lc;
	uint64	   *written;
	uint64		newest = 0;
	int			i;

	/* a follower passes over what it replayed before */
	if (follower)
	{
		CatalogUser cu;
		Datum		v[1] = {name_datum(poolname)};

		catalog_enter(&cu);
		catalog_exec("SELECT instance, seq, log_id FROM destor.followed_log WHERE pool = $1", 1,
					 (Oid[]) {NAMEOID}, v, NULL, SPI_OK_SELECT);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	t = SPI_tuptable->vals[r];
			TupleDesc	d = SPI_tuptable->tupdesc;
			bool		isnull;
			char		key[LOG_KEY_LEN];
			uint64		seq = (uint64) DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
			uint8		id[CODEC_OBJID_LEN];

			object_id_from_datum(SPI_getbinval(t, d, 3, &isnull), id);
			memset(key, 0, sizeof(key));
			memcpy(key, &seq, 8);
			memcpy(key + 8, id, CODEC_OBJID_LEN);
			strlcpy(key + 8 + CODEC_OBJID_LEN, SPI_getvalue(t, d, 1), 37);
			if (hash_search(logs, key, HASH_REMOVE, NULL) == NULL &&
				(want_instance == NULL || strcmp(key + 8 + CODEC_OBJID_LEN, want_instance) == 0))
				sc->vanished++;	/* compacted away by the writer */
		}
		catalog_leave(&cu);
		MemoryContextSwitchTo(work);
	}

	/* 2. decode every log object */
	sc->entries = log_entries(logs);
	foreach(lc, sc->entries)
	{
		LogEntry   *e = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		decode_entry(e, sc->key_id_seen);
		if (e->result == META_WRONG_KEY)
			sc->wrong_key++;
		else if (!e->decoded)
			sc->unreadable++;
	}

	/* 3. which committed: a marker, or a confirmation by an authentic log */
	written = palloc0(sizeof(uint64) * (list_length(sc->entries) + 1));
	i = 0;
	foreach(lc, sc->entries)
	{
		LogEntry   *e = lfirst(lc);
		List	   *confirms = NIL;
		MetaReader	r;
		ListCell   *cc;
		char	   *batch_pool = NULL;

		i++;
		if (!e->decoded)
			continue;
		if (!read_batch_header(e, &r, &confirms, &batch_pool, &written[i - 1]) ||
			batch_pool == NULL)
		{
			e->decoded = false;
			sc->unreadable++;
			continue;
		}
		if (strcmp(batch_pool, poolname) != 0)
		{
			/* another pool sharing these providers: its log, not ours */
			e->decoded = false;
			sc->other_pools++;
			sc->done = lappend(sc->done, e);
			continue;
		}
		foreach(cc, confirms)
		{
			LogEntry   *c = lfirst(cc);
			ListCell   *ec;

			foreach(ec, sc->entries)
			{
				LogEntry   *t = lfirst(ec);

				if (t->seq == c->seq && memcmp(t->log_id, c->log_id, CODEC_OBJID_LEN) == 0)
					t->committed = true;
			}
		}
	}
	i = 0;
	foreach(lc, sc->entries)
	{
		LogEntry   *e = lfirst(lc);

		i++;
		if (e->decoded && !e->committed)
			e->committed = marker_found(e);
		if (e->decoded && e->committed)
			newest = Max(newest, written[i - 1]);
	}
	i = 0;
	foreach(lc, sc->entries)
	{
		LogEntry   *e = lfirst(lc);

		i++;
		if (!e->decoded || e->committed)
			continue;
		sc->uncommitted++;
		if (written[i - 1] + FOLLOW_DEAD_AFTER_US < newest)
			sc->done = lappend(sc->done, e);
	}
}

/* A follower records a log object as replayed (or as none of its business). */
static void
follow_record(const char *poolname, LogEntry *e)
{
	Datum		v[4];

	v[0] = name_datum(poolname);
	v[1] = CStringGetTextDatum(e->instance);
	v[2] = Int64GetDatum((int64) e->seq);
	v[3] = object_id_datum(e->log_id);
	catalog_exec("INSERT INTO destor.followed_log (pool, instance, seq, log_id) "
				 "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", 4,
				 (Oid[]) {NAMEOID, TEXTOID, INT8OID, UUIDOID}, v, NULL, SPI_OK_INSERT);
}

/*
 * 4. replay the committed entries, in sequence order, without logging the
 * rows again; a follower records each one.  Returns how many were replayed.
 */
static int
log_replay(RecoverState *st, LogScan *sc, bool follower, uint64 *max_seq)
{
	ListCell   *lc;
	int			replayed = 0;

	meta_capture_suspend(true);
	PG_TRY();
	{
		foreach(lc, sc->entries)
		{
			LogEntry   *e = lfirst(lc);

			if (!e->decoded || !e->committed)
				continue;
			replay_entry(st, e);
			if (follower)
				follow_record(st->pool, e);
			replayed++;
			*max_seq = Max(*max_seq, e->seq);
		}
		if (follower)
			foreach(lc, sc->done)
				follow_record(st->pool, lfirst(lc));
	}
	PG_FINALLY();
	{
		meta_capture_suspend(false);
	}
	PG_END_TRY();
	return replayed;
}

Datum
destor_recover_catalog(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *poolname;
	bool		adopt = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);
	char	   *want_instance = PG_ARGISNULL(2) ? NULL :
		DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(2)));
	Pool	   *pool;
	bool		follower;
	MemoryContext work;
	MemoryContext old;
	LogScan		sc;
	const char *instance;
	int			replayed;
	uint64		max_seq = 0;
	RecoverState st;
	ListCell   *lc;
	HASH_SEQ_STATUS hs;
	HASHCTL		ctl;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pool must not be NULL")));
	poolname = NameStr(*PG_GETARG_NAME(0));
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to recover the catalog of pool \"%s\"", poolname),
				 errdetail("Recovery writes catalog rows of every owner and may adopt another database's identity on the providers."),
				 errhint("Run destor.recover_catalog as a superuser.")));
	InitMaterializedSRF(fcinfo, 0);
	st.store = rsinfo->setResult;
	st.desc = rsinfo->setDesc;
	st.pool = poolname;
	st.records = 0;
	pool = pool_lookup(poolname, false);
	/* a read-only attach follows the writer: it borrows, whatever adopt says */
	follower = pool->mode == POOL_MODE_READ_ONLY;
	if (follower)
		adopt = false;

	work = AllocSetContextCreate(CurrentMemoryContext, "destor recovery", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = CODEC_OBJID_LEN;
	ctl.entrysize = sizeof(BlobSeen);
	ctl.hcxt = work;
	st.blobs = hash_create("destor recovery blobs", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	log_scan(pool, poolname, want_instance, follower, work, &sc);
	if (sc.instances == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no metadata log found on the providers of pool \"%s\"", poolname),
				 want_instance ? errdetail("No log of instance %s was found.", want_instance) :
				 errdetail("%d of its %d providers could be listed, and none holds keys under \"%s\".",
						   sc.nproviders_listed, pool->nproviders, META_KEY_PREFIX),
				 errhint("Declare the same provider servers (names, paths or endpoints, buckets, prefixes) and user mappings as the database that wrote the pool.")));
	if (list_length(sc.instances) > 1)
	{
		StringInfoData names;

		initStringInfo(&names);
		foreach(lc, sc.instances)
			appendStringInfo(&names, "%s%s", names.len ? ", " : "", strVal(lfirst(lc)));
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
				 errmsg("pool \"%s\" holds the metadata logs of %d databases", poolname,
						list_length(sc.instances)),
				 errdetail("Instances: %s.", names.data),
				 errhint("Name the one to recover: destor.recover_catalog('%s', instance => '...').",
						 poolname)));
	}
	instance = strVal(linitial(sc.instances));
	if (sc.wrong_key > 0 && sc.wrong_key + sc.unreadable == list_length(sc.entries))
	{
		uint8		master[CODEC_KEY_LEN];
		uint8		mine[CODEC_KEY_FINGERPRINT_LEN];

		keys_load_master(master, mine);
		codec_secure_zero(master, sizeof(master));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PASSWORD),
				 errmsg("the metadata log of pool \"%s\" was written under another master key", poolname),
				 errdetail("Its %d log objects were encrypted under the master key with fingerprint %s; destor.master_key_file holds the key with fingerprint %s. Nothing was recovered.",
						   sc.wrong_key, hex_text(sc.key_id_seen, CODEC_KEY_FINGERPRINT_LEN),
						   hex_text(mine, CODEC_KEY_FINGERPRINT_LEN)),
				 errhint("Set destor.master_key_file to the key of the database that wrote the pool and reload.")));
	}
	if (sc.other_pools > 0 && sc.other_pools == list_length(sc.entries) - sc.wrong_key - sc.unreadable &&
		sc.unreadable == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no metadata log of pool \"%s\" found on its providers", poolname),
				 errdetail("The %d log objects found there belong to other pools.", sc.other_pools),
				 errhint("The pool must have the name it had on the database that wrote it.")));
	if (adopt)
		lease_check_adopt(pool, instance);

	/* 4. replay, in sequence order, without logging the rows again */
	{
		CatalogUser cu;

		catalog_enter(&cu);
		replayed = log_replay(&st, &sc, follower, &max_seq);

		/* new segments must not take the numbers of recovered ones */
		catalog_exec("SELECT pg_catalog.setval('destor.segment_no_seq', "
					 "greatest((SELECT max(segment_no) FROM destor.segments), "
					 "(SELECT last_value FROM destor.segment_no_seq), 1))",
					 0, NULL, NULL, NULL, SPI_OK_SELECT);
		if (adopt && max_seq > 0)
		{
			Datum		v[1] = {Int64GetDatum((int64) max_seq)};

			catalog_exec("SELECT pg_catalog.setval('destor.meta_seq', greatest($1, "
						 "(SELECT last_value FROM destor.meta_seq)))", 1, (Oid[]) {INT8OID}, v,
						 NULL, SPI_OK_SELECT);
		}
		catalog_leave(&cu);
	}
	/* the recovered blobs' owners and grantees cannot be dropped from
	 * another database while the blobs name them (pg_shdepend) */
	(void) blob_record_all_role_dependencies();
	if (adopt)
	{
		char	   *current = meta_instance();

		if (current == NULL || strcmp(current, instance) != 0)
		{
			int			rc;

			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			rc = SPI_execute(psprintf("ALTER FOREIGN DATA WRAPPER destor_provider OPTIONS (%s instance %s)",
									  current ? "SET" : "ADD", quote_literal_cstr(instance)),
							 false, 0);
			if (rc != SPI_OK_UTILITY)
				elog(ERROR, "could not adopt instance %s", instance);
			SPI_finish();
			/* a lease this database took over names the instance it had */
			lease_adopted(pool, current, instance);
		}
	}

	/* 5. the report */
	{
		char	   *summary = psprintf("%d log objects replayed (%lld records), %d not committed (ignored), %d unreadable, %d under another master key, %d of other pools; instance %s",
									   replayed, (long long) st.records, sc.uncommitted, sc.unreadable,
									   sc.wrong_key, sc.other_pools,
									   adopt ? "adopted" : follower ? "borrowed (read-only pool: follow_pool follows it)" : "borrowed");
		BlobSeen   *b;
		CatalogUser cu;
		Oid			types[1] = {NAMEOID};
		Datum		values[1];

		report_row(&st, "log", NULL, instance, summary);
		catalog_enter(&cu);
		hash_seq_init(&hs, st.blobs);
		while ((b = hash_seq_search(&hs)) != NULL)
		{
			Datum		v[1];

			v[0] = object_id_datum(b->id);
			catalog_exec("SELECT coalesce(b.pack_length, o.size) FROM destor.blobs b "
						 "JOIN destor.objects o ON o.object_id = coalesce(b.pack_id, b.blob_id) "
						 "WHERE b.blob_id = $1", 1, (Oid[]) {UUIDOID}, v, NULL, SPI_OK_SELECT);
			if (SPI_processed > 0)
			{
				char	   *size = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
				MemoryContext spi = MemoryContextSwitchTo(work);

				report_row(&st, "blob", b->id, NULL, psprintf("%s bytes, %s", size, b->detail));
				MemoryContextSwitchTo(spi);
			}
		}
		values[0] = DirectFunctionCall1(namein, CStringGetDatum(poolname));
		catalog_exec("SELECT d.table_id, pg_catalog.quote_ident(d.definition->>'schema') "
					 "OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(d.definition->>'name'), "
					 "pg_catalog.format('%s segments, %s rows stored', "
					 "  (SELECT count(*) FROM destor.segments g WHERE g.table_id = d.table_id), "
					 "  (SELECT coalesce(sum(row_count), 0) FROM destor.segments g WHERE g.table_id = d.table_id)) "
					 "FROM destor.table_definitions d WHERE d.pool = $1 ORDER BY 2",
					 1, types, values, NULL, SPI_OK_SELECT);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			uint8		id[CODEC_OBJID_LEN];

			object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull), id);
			report_row(&st, "table", id, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2),
					   SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3));
		}
		catalog_leave(&cu);
	}
	MemoryContextSwitchTo(old);
	return (Datum) 0;
}

/*
 * follow_forget — a follower drops the catalog rows of the pool's objects
 * in the writer's namespace (the first bytes of its instance id end their
 * ids; objects this database wrote itself stay), the writer's table
 * definitions, and what it followed of that writer, before replaying the
 * writer's compacted log from its start.  Catalog rows only: nothing of
 * another namespace is ever deleted from the providers.
 */
#define FORGET_OBJECTS \
	"SELECT o.object_id FROM destor.objects o WHERE o.pool = $1 " \
	"AND substr(replace(o.object_id::text, '-', ''), 21, 12) = substr(replace($2, '-', ''), 1, 12) " \
	"AND NOT EXISTS (SELECT FROM destor.lo_tiers t WHERE t.object_id = o.object_id)"

static void
follow_forget(const char *poolname, const char *instance)
{
	CatalogUser cu;
	Datum		v[2];

	v[0] = name_datum(poolname);
	v[1] = CStringGetTextDatum(instance);
	catalog_enter(&cu);
	meta_capture_suspend(true);
	PG_TRY();
	{
		catalog_exec("DELETE FROM destor.deletions d USING destor.segments g "
					 "WHERE g.table_id = d.table_id AND g.segment_no = d.segment_no "
					 "AND g.object_id IN (" FORGET_OBJECTS ")", 2, (Oid[]) {NAMEOID, TEXTOID}, v, NULL,
					 SPI_OK_DELETE);
		catalog_exec("DELETE FROM destor.segments WHERE object_id IN (" FORGET_OBJECTS ")", 2,
					 (Oid[]) {NAMEOID, TEXTOID}, v, NULL, SPI_OK_DELETE);
		catalog_exec("DELETE FROM destor.blobs WHERE blob_id IN (" FORGET_OBJECTS ")", 2,
					 (Oid[]) {NAMEOID, TEXTOID}, v, NULL, SPI_OK_DELETE);
		catalog_exec("DELETE FROM destor.objects WHERE object_id IN (" FORGET_OBJECTS ")", 2,
					 (Oid[]) {NAMEOID, TEXTOID}, v, NULL, SPI_OK_DELETE);
		catalog_exec("DELETE FROM destor.table_definitions WHERE pool = $1", 1, (Oid[]) {NAMEOID}, v,
					 NULL, SPI_OK_DELETE);
		catalog_exec("DELETE FROM destor.followed_log WHERE pool = $1 AND instance = $2", 2,
					 (Oid[]) {NAMEOID, TEXTOID}, v, NULL, SPI_OK_DELETE);
	}
	PG_FINALLY();
	{
		meta_capture_suspend(false);
	}
	PG_END_TRY();
	catalog_leave(&cu);
}

/*
 * destor.follow_pool(pool) — a read-only attach catches up with the
 * writer: the log objects committed since its recovery or last follow are
 * replayed, in sequence order (deletions included), and recorded in
 * destor.followed_log.  New tables' definitions land in
 * destor.table_definitions: IMPORT FOREIGN SCHEMA ... LIMIT TO creates them.
 * Nothing is written to the providers.  Returns how many log objects were
 * applied.
 */
Datum
destor_follow_pool(PG_FUNCTION_ARGS)
{
	char	   *poolname = NameStr(*PG_GETARG_NAME(0));
	Pool	   *pool = pool_lookup(poolname, false);
	MemoryContext work;
	MemoryContext old;
	RecoverState st;
	List	   *instances = NIL;
	ListCell   *lc;
	HASHCTL		ctl;
	CatalogUser cu;
	Datum		v[1];
	int64		applied = 0;

	if (pool->mode != POOL_MODE_READ_ONLY)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pool \"%s\" is not declared read-only", poolname),
				 errdetail("follow_pool replays another database's log into a pool this database only reads."),
				 errhint("ALTER SERVER %s OPTIONS (ADD mode 'read_only'), then SELECT * FROM destor.recover_catalog('%s').",
						 quote_identifier(poolname), poolname)));
	work = AllocSetContextCreate(CurrentMemoryContext, "destor follow", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	st.store = NULL;
	st.desc = NULL;
	st.pool = poolname;
	st.records = 0;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = CODEC_OBJID_LEN;
	ctl.entrysize = sizeof(BlobSeen);
	ctl.hcxt = work;
	st.blobs = hash_create("destor follow blobs", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	/* one follower at a time (the worker and a session): each replays a log object once */
	catalog_enter(&cu);
	catalog_exec("LOCK TABLE destor.followed_log IN SHARE ROW EXCLUSIVE MODE", 0, NULL, NULL, NULL,
				 SPI_OK_UTILITY);
	v[0] = name_datum(poolname);
	catalog_exec("SELECT DISTINCT instance FROM destor.followed_log WHERE pool = $1", 1,
				 (Oid[]) {NAMEOID}, v, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *inst = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		MemoryContext spi = MemoryContextSwitchTo(work);

		instances = lappend(instances, pstrdup(inst));
		MemoryContextSwitchTo(spi);
	}
	catalog_leave(&cu);
	MemoryContextSwitchTo(work);
	if (instances == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pool \"%s\" has not been recovered in this database", poolname),
				 errdetail("A follower starts from the catalog recover_catalog rebuilt."),
				 errhint("Run SELECT * FROM destor.recover_catalog('%s') once, then IMPORT FOREIGN SCHEMA.",
						 poolname)));
	foreach(lc, instances)
	{
		LogScan		sc;
		uint64		max_seq = 0;

		log_scan(pool, poolname, (char *) lfirst(lc), true, work, &sc);
		if (sc.vanished > 0 && sc.nproviders_failed == 0)
		{
			/*
			 * The writer compacted its log: log objects this database
			 * followed are gone, and so may be some it never saw (with their
			 * deletions).  The log left (a snapshot and what followed it)
			 * describes the whole pool: forget the writer's rows and replay it.
			 * Only with every provider listed: log objects missing from a
			 * partial listing are not gone, and the next follow looks again.
			 */
			follow_forget(poolname, (char *) lfirst(lc));
			log_scan(pool, poolname, (char *) lfirst(lc), true, work, &sc);
		}
		catalog_enter(&cu);
		applied += log_replay(&st, &sc, true, &max_seq);
		catalog_leave(&cu);
		MemoryContextSwitchTo(work);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	PG_RETURN_INT64(applied);
}

/*
 * destor.compact_log(pool) — delete from the providers the log objects (and
 * their markers) that the latest durable log_snapshot of the pool
 * supersedes: those this database had seen committed when the snapshot
 * began (destor.meta_superseded), and those of its instance older than any
 * it wrote itself (an adopted writer's).  The snapshot must first be on
 * every provider it was written to, with its commit marker on m + 1 of
 * them (missing markers are written again): recovery and followers then
 * rebuild the same catalog from the snapshot and what followed it.
 * Returns the number of log objects deleted.
 */
Datum
destor_compact_log(PG_FUNCTION_ARGS)
{
	char	   *poolname = NameStr(*PG_GETARG_NAME(0));
	Pool	   *pool = pool_lookup(poolname, false);
	char	   *instance = meta_instance();
	MemoryContext work;
	MemoryContext old;
	CatalogUser cu;
	Datum		v[2];
	bool		isnull;
	uint64		snap_seq;
	uint8		snap_id[CODEC_OBJID_LEN];
	char	   *snap_xid;
	int64		below = -1;
	HTAB	   *superseded;
	HASHCTL		ctl;
	LogScan		sc;
	LogEntry   *snap = NULL;
	ListCell   *lc;
	int			n = pool->data_shards + pool->parity_shards;
	int			shards = 0;
	int			markers = 0;
	int64		deleted = 0;
	int			failed = 0;
	List	   *reqs = NIL;

	lease_check_write(pool);	/* read-only: refused; exclusive: ours */
	if (instance == NULL || strlen(instance) != 36)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this database has no destor instance id"),
				 errhint("Run ALTER EXTENSION destor UPDATE.")));
	work = AllocSetContextCreate(CurrentMemoryContext, "destor compaction", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);

	/* the latest snapshot whose log object committed (its meta_log row) */
	v[0] = name_datum(poolname);
	catalog_enter(&cu);
	/*
	 * Not beside repair_log(): a log shard it put after this had listed and
	 * deleted the log object would stay on its provider for good.
	 */
	catalog_exec("LOCK TABLE destor.meta_log_unstored IN SHARE UPDATE EXCLUSIVE MODE", 0, NULL, NULL,
				 NULL, SPI_OK_UTILITY);
	catalog_exec("SELECT l.seq, l.log_id, s.snapshot_xid::text, s.below_seq FROM destor.meta_snapshots s "
				 "JOIN destor.meta_log l ON l.pool = s.pool AND l.xmin::text = "
				 "(s.snapshot_xid::text::numeric % 4294967296)::text "
				 "WHERE s.pool = $1 ORDER BY l.seq DESC LIMIT 1", 1, (Oid[]) {NAMEOID}, v, NULL,
				 SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		catalog_leave(&cu);
		ereport(NOTICE,
				(errmsg("the metadata log of pool \"%s\" has no snapshot to compact to", poolname),
				 errhint("Run SELECT destor.log_snapshot('%s') first, in a transaction of its own.", poolname)));
		MemoryContextSwitchTo(old);
		PG_RETURN_INT64(0);
	}
	snap_seq = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull), snap_id);
	{
		MemoryContext spi = MemoryContextSwitchTo(work);

		snap_xid = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3));
		MemoryContextSwitchTo(spi);
	}
	{
		Datum		b = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);

		if (!isnull)
			below = DatumGetInt64(b);
	}
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = 8 + CODEC_OBJID_LEN;
	ctl.entrysize = 8 + CODEC_OBJID_LEN;
	ctl.hcxt = work;
	superseded = hash_create("destor superseded logs", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	{
		MemoryContext spi = MemoryContextSwitchTo(work);	/* v[1] outlives SPI */

		v[1] = CStringGetTextDatum(snap_xid);
		MemoryContextSwitchTo(spi);
	}
	catalog_exec("SELECT seq, log_id FROM destor.meta_superseded WHERE pool = $1 AND snapshot_xid = $2::xid8",
				 2, (Oid[]) {NAMEOID, TEXTOID}, v, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		uint8		key[8 + CODEC_OBJID_LEN];
		uint64		seq = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		memcpy(key, &seq, 8);
		object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull), key + 8);
		hash_search(superseded, key, HASH_ENTER, NULL);
	}
	catalog_leave(&cu);
	MemoryContextSwitchTo(work);

	/* list this instance's log: the snapshot must be durable before anything goes */
	log_scan_list(pool, instance, work, &sc);
	foreach(lc, sc.entries)
	{
		LogEntry   *e = lfirst(lc);

		if (e->seq == snap_seq && memcmp(e->log_id, snap_id, CODEC_OBJID_LEN) == 0)
			snap = e;
	}
	if (snap != NULL)
	{
		for (int i = 0; i < n; i++)
			if (snap->shard_key[i] != NULL)
				shards++;
		if (shards == n && marker_found(snap))
			markers = list_length(snap->marker_providers);
	}
	if (snap == NULL || shards < n || markers == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the snapshot of pool \"%s\" is not durable on its providers", poolname),
				 errdetail("Log object %llu has %d of its %d shards and %d commit markers on the providers that could be listed; nothing was deleted.",
						   (unsigned long long) snap_seq, shards, n,
						   snap ? list_length(snap->marker_providers) : 0),
				 errhint("Bring the providers back, or run SELECT destor.log_snapshot('%s') again, then compact.",
						 poolname)));
	/* markers on m + 1 providers: the snapshot's commit must outlive the loss of m */
	if (markers < pool->parity_shards + 1)
	{
		uint8	   *marker = palloc(META_MARKER_LEN);

		meta_build_marker(snap->log_id, snap->seq, marker);
		for (int i = 0; i < n && markers < pool->parity_shards + 1; i++)
		{
			ProviderRequest r = {0};

			if (list_member_ptr(snap->marker_providers, snap->shard_provider[i]))
				continue;
			r.provider = snap->shard_provider[i];
			r.op = POP_PUT;
			r.key = meta_marker_key(instance, snap->seq, snap->log_id);
			r.data = (const char *) marker;
			r.datalen = META_MARKER_LEN;
			provider_execute(&r, 1);
			if (r.ok)
				markers++;
		}
		if (markers < pool->parity_shards + 1)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not put the snapshot's commit marker of pool \"%s\" on %d providers",
							poolname, pool->parity_shards + 1),
					 errdetail("Nothing was deleted.")));
	}

	/* delete what the snapshot supersedes: every shard and marker of it */
	foreach(lc, sc.entries)
	{
		LogEntry   *e = lfirst(lc);
		uint8		key[8 + CODEC_OBJID_LEN];
		ListCell   *mc;

		if (e->seq >= snap_seq)
			continue;
		memcpy(key, &e->seq, 8);
		memcpy(key + 8, e->log_id, CODEC_OBJID_LEN);
		if (hash_search(superseded, key, HASH_FIND, NULL) == NULL)
		{
			MetaReader	r;
			char	   *batch_pool = NULL;

			if (!(below >= 0 && e->seq < (uint64) below))
				continue;
			/* older than this database's log: the adopted writer's, of this pool? */
			CHECK_FOR_INTERRUPTS();
			decode_entry(e, sc.key_id_seen);
			if (!e->decoded || !read_batch_header(e, &r, NULL, &batch_pool, NULL) ||
				batch_pool == NULL || strcmp(batch_pool, poolname) != 0)
				continue;
		}
		for (int i = 0; i < CODEC_RS_MAX_SHARDS; i++)
			if (e->shard_key[i] != NULL)
			{
				ProviderRequest *r = palloc0(sizeof(ProviderRequest));

				r->provider = e->shard_provider[i];
				r->op = POP_DELETE;
				r->key = e->shard_key[i];
				reqs = lappend(reqs, r);
			}
		foreach(mc, e->marker_providers)
		{
			ProviderRequest *r = palloc0(sizeof(ProviderRequest));

			r->provider = lfirst(mc);
			r->op = POP_DELETE;
			r->key = e->marker_key;
			reqs = lappend(reqs, r);
		}
		deleted++;
	}
	if (reqs != NIL)
	{
		ProviderRequest *batch = palloc0(sizeof(ProviderRequest) * list_length(reqs));
		int			i = 0;

		foreach(lc, reqs)
			batch[i++] = *(ProviderRequest *) lfirst(lc);
		provider_execute(batch, i);
		for (int j = 0; j < i; j++)
			if (!batch[j].ok)
			{
				if (failed++ == 0)
					ereport(WARNING,
							(errcode(ERRCODE_CONNECTION_FAILURE),
							 errmsg("could not delete \"%s\" from provider \"%s\"", batch[j].key,
									batch[j].provider->name),
							 errdetail("%s", batch[j].error ? batch[j].error : "unknown error"),
							 errhint("What is left is deleted by the next compact_log.")));
			}
	}

	/* done with this snapshot and older ones (unless something stayed) */
	if (failed == 0)
	{
		Datum		w[3] = {v[0], v[1], Int64GetDatum((int64) snap_seq)};

		catalog_enter(&cu);
		catalog_exec("DELETE FROM destor.meta_log l USING destor.meta_superseded s "
					 "WHERE s.pool = $1 AND s.snapshot_xid = $2::xid8 AND l.pool = s.pool AND l.seq = s.seq "
					 "AND l.seq < $3", 3, (Oid[]) {NAMEOID, TEXTOID, INT8OID}, w, NULL, SPI_OK_DELETE);
		catalog_exec("DELETE FROM destor.meta_superseded WHERE pool = $1 AND snapshot_xid <= $2::xid8", 2,
					 (Oid[]) {NAMEOID, TEXTOID}, v, NULL, SPI_OK_DELETE);
		catalog_exec("DELETE FROM destor.meta_snapshots WHERE pool = $1 AND snapshot_xid <= $2::xid8", 2,
					 (Oid[]) {NAMEOID, TEXTOID}, v, NULL, SPI_OK_DELETE);
		catalog_leave(&cu);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	PG_RETURN_INT64(deleted);
}
