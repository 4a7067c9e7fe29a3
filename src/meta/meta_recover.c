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

#include "destor/catalog.h"
#include "destor/meta.h"

PG_FUNCTION_INFO_V1(destor_recover_catalog);

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
list_provider_log(Provider *p, MemoryContext cxt)
{
	LogListing	l = {p, cxt, NIL};
	ErrorData  *ed;

	if (catalog_try(list_provider_log_step, &l, &ed))
		return l.keys;
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
read_batch_header(LogEntry *e, MetaReader *r, List **confirms, char **pool)
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
	(void) meta_get_u64(r);		/* written at */
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
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	if (len)
		memcpy(VARDATA(b), p, len);
	return PointerGetDatum(b);
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
				Oid			t[3] = {UUIDOID, OIDOID, TIMESTAMPTZOID};
				char	   *owner = meta_get_str(r);

				v[2] = TimestampTzGetDatum((TimestampTz) meta_get_u64(r));
				if (r->bad)
					return;
				v[1] = ObjectIdGetDatum(replay_blob_owner(st, id, owner, ""));
				catalog_exec("INSERT INTO destor.blobs (blob_id, owner, created_at) "
							 "SELECT $1, $2::regrole, $3 WHERE " GUARD_OBJECT " "
							 "ON CONFLICT (blob_id) DO UPDATE SET owner = excluded.owner",
							 3, t, v, NULL, SPI_OK_INSERT);
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
				catalog_exec("INSERT INTO destor.deletions (table_id, segment_no, rows, created_at) "
							 "VALUES ($1, $2, $3, $4)", 4,
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

	if (!read_batch_header(e, &r, NULL, NULL))
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

Datum
destor_recover_catalog(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *poolname;
	bool		adopt = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);
	char	   *want_instance = PG_ARGISNULL(2) ? NULL :
		DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(2)));
	Pool	   *pool;
	MemoryContext work;
	MemoryContext old;
	HTAB	   *logs;
	HASHCTL		ctl;
	List	   *instances = NIL;
	List	   *entries = NIL;
	const char *instance;
	int			nproviders_listed = 0;
	int			wrong_key = 0,
				unreadable = 0,
				uncommitted = 0,
				other_pools = 0,
				replayed = 0;
	uint8		key_id_seen[CODEC_KEY_FINGERPRINT_LEN] = {0};

	uint64		max_seq = 0;
	RecoverState st;
	ListCell   *lc;
	HASH_SEQ_STATUS hs;
	LogSlot    *slot;

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

	work = AllocSetContextCreate(CurrentMemoryContext, "destor recovery", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = LOG_KEY_LEN;
	ctl.entrysize = sizeof(LogSlot);
	ctl.hcxt = work;
	logs = hash_create("destor recovery logs", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = CODEC_OBJID_LEN;
	ctl.entrysize = sizeof(BlobSeen);
	st.blobs = hash_create("destor recovery blobs", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	/* 1. list the log on every provider the pool lists */
	for (int i = 0; i < pool->nproviders; i++)
	{
		Provider   *p = provider_lookup_by_name(pool->provider_names[i], true);
		List	   *keys;

		if (p == NULL)
			continue;
		keys = list_provider_log(p, work);
		if (keys != NIL)
			nproviders_listed++;
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
			if (!list_member(instances, makeString(pstrdup(inst))))
				instances = lappend(instances, makeString(pstrdup(inst)));
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
	if (instances == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no metadata log found on the providers of pool \"%s\"", poolname),
				 want_instance ? errdetail("No log of instance %s was found.", want_instance) :
				 errdetail("%d of its %d providers could be listed, and none holds keys under \"%s\".",
						   nproviders_listed, pool->nproviders, META_KEY_PREFIX),
				 errhint("Declare the same provider servers (names, paths or endpoints, buckets, prefixes) and user mappings as the database that wrote the pool.")));
	if (list_length(instances) > 1)
	{
		StringInfoData names;

		initStringInfo(&names);
		foreach(lc, instances)
			appendStringInfo(&names, "%s%s", names.len ? ", " : "", strVal(lfirst(lc)));
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
				 errmsg("pool \"%s\" holds the metadata logs of %d databases", poolname,
						list_length(instances)),
				 errdetail("Instances: %s.", names.data),
				 errhint("Name the one to recover: destor.recover_catalog('%s', instance => '...').",
						 poolname)));
	}
	instance = strVal(linitial(instances));

	/* 2. decode every log object */
	hash_seq_init(&hs, logs);
	while ((slot = hash_seq_search(&hs)) != NULL)
		entries = lappend(entries, slot->entry);
	list_sort(entries, log_entry_cmp);
	foreach(lc, entries)
	{
		LogEntry   *e = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		decode_entry(e, key_id_seen);
		if (e->result == META_WRONG_KEY)
			wrong_key++;
		else if (!e->decoded)
			unreadable++;
	}
	if (wrong_key > 0 && wrong_key + unreadable == list_length(entries))
	{
		uint8		master[CODEC_KEY_LEN];
		uint8		mine[CODEC_KEY_FINGERPRINT_LEN];

		keys_load_master(master, mine);
		codec_secure_zero(master, sizeof(master));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PASSWORD),
				 errmsg("the metadata log of pool \"%s\" was written under another master key", poolname),
				 errdetail("Its %d log objects were encrypted under the master key with fingerprint %s; destor.master_key_file holds the key with fingerprint %s. Nothing was recovered.",
						   wrong_key, hex_text(key_id_seen, CODEC_KEY_FINGERPRINT_LEN),
						   hex_text(mine, CODEC_KEY_FINGERPRINT_LEN)),
				 errhint("Set destor.master_key_file to the key of the database that wrote the pool and reload.")));
	}

	/* 3. which committed: a marker, or a confirmation by an authentic log */
	foreach(lc, entries)
	{
		LogEntry   *e = lfirst(lc);
		List	   *confirms = NIL;
		MetaReader	r;
		ListCell   *cc;
		char	   *batch_pool = NULL;

		if (!e->decoded)
			continue;
		if (!read_batch_header(e, &r, &confirms, &batch_pool) || batch_pool == NULL)
		{
			e->decoded = false;
			unreadable++;
			continue;
		}
		if (strcmp(batch_pool, poolname) != 0)
		{
			/* another pool sharing these providers: its log, not ours */
			e->decoded = false;
			other_pools++;
			continue;
		}
		foreach(cc, confirms)
		{
			LogEntry   *c = lfirst(cc);
			ListCell   *ec;

			foreach(ec, entries)
			{
				LogEntry   *t = lfirst(ec);

				if (t->seq == c->seq && memcmp(t->log_id, c->log_id, CODEC_OBJID_LEN) == 0)
					t->committed = true;
			}
		}
	}
	if (other_pools > 0 && other_pools == list_length(entries) - wrong_key - unreadable &&
		unreadable == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no metadata log of pool \"%s\" found on its providers", poolname),
				 errdetail("The %d log objects found there belong to other pools.", other_pools),
				 errhint("The pool must have the name it had on the database that wrote it.")));
	foreach(lc, entries)
	{
		LogEntry   *e = lfirst(lc);

		if (e->decoded && !e->committed)
			e->committed = marker_found(e);
		if (e->decoded && !e->committed)
			uncommitted++;
	}

	/* 4. replay, in sequence order, without logging the rows again */
	{
		CatalogUser cu;

		catalog_enter(&cu);
		meta_capture_suspend(true);
		PG_TRY();
		{
			foreach(lc, entries)
			{
				LogEntry   *e = lfirst(lc);

				if (!e->decoded || !e->committed)
					continue;
				replay_entry(&st, e);
				replayed++;
				max_seq = Max(max_seq, e->seq);
			}
		}
		PG_FINALLY();
		{
			meta_capture_suspend(false);
		}
		PG_END_TRY();

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
		}
	}

	/* 5. the report */
	{
		char	   *summary = psprintf("%d log objects replayed (%lld records), %d not committed (ignored), %d unreadable, %d under another master key, %d of other pools; instance %s",
									   replayed, (long long) st.records, uncommitted, unreadable,
									   wrong_key, other_pools, adopt ? "adopted" : "borrowed");
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
