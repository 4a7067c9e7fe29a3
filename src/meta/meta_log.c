/*
 * meta_log.c — writing the metadata log of each pool.
 *
 * Responsible for: capturing every change of destor's catalog rows (row
 * triggers on objects, shards, blobs, segments, deletions and tables call
 * destor_meta_capture), noting tables whose definition DDL changed (an
 * event trigger calls destor_meta_note_table), and at pre-commit turning
 * the captured changes of each pool into one log object on that pool's
 * providers (meta_format.c); after commit an authenticated commit marker
 * goes next to it, at abort its shards are deleted.
 *
 * Why triggers: they see every change whichever code path makes it (the C
 * catalog functions, the SQL of the DROP event trigger, cascades, REASSIGN
 * OWNED), so nothing that recovery needs can be forgotten by a caller, and
 * a (sub)transaction's changes are dropped exactly when its rows are.
 *
 * Cost: a transaction that changes no destor row pays nothing; one that
 * does pays one small PUT per shard of its log object at pre-commit and
 * one tiny PUT per provider after commit, whatever it wrote (a COPY of a
 * million rows adds one segment record).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "destor/catalog.h"
#include "destor/meta.h"

PG_FUNCTION_INFO_V1(destor_meta_capture);
PG_FUNCTION_INFO_V1(destor_meta_note_table);
PG_FUNCTION_INFO_V1(destor_repair_log);

/* One captured change: an encoded record and what tells its pool. */
typedef struct MetaPending
{
	SubTransactionId subid;
	uint8		kind;
	bool		has_object;		/* object_id tells the pool */
	bool		has_table;		/* table_id tells it (deletions), or is touched */
	uint8		object_id[CODEC_OBJID_LEN];
	uint8		table_id[CODEC_OBJID_LEN];
	char	   *pool;			/* known from the row itself (objects) */
	StringInfoData rec;			/* kind, length, body */
} MetaPending;

typedef struct MetaNote
{
	SubTransactionId subid;
	Oid			relid;
} MetaNote;

/* End-of-transaction work on one provider: a log shard written. */
typedef struct MetaWritten
{
	Provider   *provider;
	char	   *shard_key;		/* deleted at abort */
	char	   *marker_key;		/* put after commit, if put_marker */
	bool		put_marker;
	uint8		marker[META_MARKER_LEN];
} MetaWritten;

static MemoryContext meta_cxt = NULL;
static List *pending = NIL;
static List *notes = NIL;
static List *written = NIL;
static bool callbacks_registered = false;
static int	capture_suspended = 0;

/* run at pre-commit before the log is written (blob_pack.c) */
void		(*meta_pre_precommit_hook) (void) = NULL;

static void meta_xact_callback(XactEvent event, void *arg);
static void meta_keep_unstored(const char *poolname, uint64 seq, ProviderRequest *reqs, int n,
							   MetaShards *sh);
static void meta_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								  SubTransactionId parentSubid, void *arg);

static MemoryContext
meta_context(void)
{
	if (meta_cxt == NULL)
		meta_cxt = AllocSetContextCreate(TopMemoryContext, "destor metadata log",
										 ALLOCSET_DEFAULT_SIZES);
	if (!callbacks_registered)
	{
		RegisterXactCallback(meta_xact_callback, NULL);
		RegisterSubXactCallback(meta_subxact_callback, NULL);
		callbacks_registered = true;
	}
	return meta_cxt;
}

/*
 * meta_log_prepare — be ready to log this transaction's changes made at
 * pre-commit (open blob packs uploaded then): the end-of-transaction
 * callbacks must be registered before pre-commit starts, or they would not
 * run for it.
 */
void
meta_log_prepare(void)
{
	(void) meta_context();
}

/* Recovery replays rows without logging them again. */
void
meta_capture_suspend(bool suspend)
{
	capture_suspended += suspend ? 1 : -1;
	if (capture_suspended < 0)
		capture_suspended = 0;
}

/*
 * meta_instance — this database's instance id (option "instance" of the
 * destor_provider wrapper) as text, or NULL when it has none.
 */
char *
meta_instance(void)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapperByName("destor_provider", true);
	ListCell   *lc;

	if (fdw == NULL)
		return NULL;
	foreach(lc, fdw->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "instance") == 0)
			return pstrdup(defGetString(def));
	}
	return NULL;
}

/* ---------------------------------------------------------------------------
 * Capture
 * ------------------------------------------------------------------------- */

static Datum
row_attr(HeapTuple tup, TupleDesc desc, const char *name, bool *isnull)
{
	int			att = SPI_fnumber(desc, name);

	if (att <= 0)
		elog(ERROR, "destor catalog table has no column \"%s\"", name);
	return heap_getattr(tup, att, desc, isnull);
}

static void
put_uuid_attr(StringInfo s, HeapTuple tup, TupleDesc desc, const char *name, uint8 *copy)
{
	bool		isnull;
	Datum		d = row_attr(tup, desc, name, &isnull);
	uint8		id[CODEC_OBJID_LEN] = {0};

	if (!isnull)
		object_id_from_datum(d, id);
	appendBinaryStringInfo(s, (const char *) id, CODEC_OBJID_LEN);
	if (copy)
		memcpy(copy, id, CODEC_OBJID_LEN);
}

static void
put_int8_attr(StringInfo s, HeapTuple tup, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		d = row_attr(tup, desc, name, &isnull);

	meta_put_u64(s, isnull ? 0 : (uint64) DatumGetInt64(d));
}

static void
put_int4_attr(StringInfo s, HeapTuple tup, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		d = row_attr(tup, desc, name, &isnull);

	meta_put_u32(s, isnull ? 0 : (uint32) DatumGetInt32(d));
}

static void
put_bytea_attr(StringInfo s, HeapTuple tup, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		d = row_attr(tup, desc, name, &isnull);

	if (isnull)
		meta_put_null(s);
	else
	{
		bytea	   *b = DatumGetByteaPP(d);

		meta_put_bytes(s, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
	}
}

static void
put_name_attr(StringInfo s, HeapTuple tup, TupleDesc desc, const char *name, char **copy)
{
	bool		isnull;
	Datum		d = row_attr(tup, desc, name, &isnull);

	if (isnull)
		meta_put_null(s);
	else
	{
		meta_put_str(s, NameStr(*DatumGetName(d)));
		if (copy)
			*copy = pstrdup(NameStr(*DatumGetName(d)));
	}
}

static void
put_text_attr(StringInfo s, HeapTuple tup, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		d = row_attr(tup, desc, name, &isnull);

	meta_put_str(s, isnull ? NULL : TextDatumGetCString(d));
}

/*
 * destor_meta_capture — AFTER ROW trigger of the catalog tables: encode the
 * change as a record of the transaction's log.  New rows (INSERT, UPDATE)
 * are records that put the row; old rows of a DELETE are records that
 * remove it.  Deleted shard rows are not recorded: they only ever go with
 * their object (ON DELETE CASCADE), and so they do at replay.
 */
Datum
destor_meta_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *table;
	TupleDesc	desc;
	HeapTuple	tup;
	bool		del;
	MetaPending *p;
	StringInfoData body;
	MemoryContext old;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!TRIGGER_FIRED_AFTER(td->tg_event))
		elog(ERROR, "destor_meta_capture must be an AFTER ROW trigger");
	if (capture_suspended > 0)
		return PointerGetDatum(NULL);

	table = RelationGetRelationName(td->tg_relation);
	desc = RelationGetDescr(td->tg_relation);
	del = TRIGGER_FIRED_BY_DELETE(td->tg_event);
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

	old = MemoryContextSwitchTo(meta_context());
	p = palloc0(sizeof(MetaPending));
	p->subid = GetCurrentSubTransactionId();
	initStringInfo(&body);

	if (strcmp(table, "objects") == 0)
	{
		bool		isnull;

		p->has_object = true;
		put_uuid_attr(&body, tup, desc, "object_id", p->object_id);
		{
			StringInfoData ignore;

			initStringInfo(&ignore);
			put_name_attr(&ignore, tup, desc, "pool", &p->pool);
			if (!del)
				appendBinaryStringInfo(&body, ignore.data, ignore.len);
			pfree(ignore.data);
		}
		if (del)
			p->kind = META_REC_OBJECT_DELETE;
		else
		{
			p->kind = META_REC_OBJECT;
			put_int8_attr(&body, tup, desc, "size");
			put_int8_attr(&body, tup, desc, "stream_size");
			put_int4_attr(&body, tup, desc, "block_size");
			put_int4_attr(&body, tup, desc, "chunk_size");
			put_int4_attr(&body, tup, desc, "data_shards");
			put_int4_attr(&body, tup, desc, "parity_shards");
			meta_put_u8(&body, DatumGetBool(row_attr(tup, desc, "compressed", &isnull)) ? 1 : 0);
			put_bytea_attr(&body, tup, desc, "block_ends");
			put_int4_attr(&body, tup, desc, "key_version");
			put_bytea_attr(&body, tup, desc, "key_id");
			put_bytea_attr(&body, tup, desc, "wrapped_key");
			put_int8_attr(&body, tup, desc, "created_at");
		}
	}
	else if (strcmp(table, "shards") == 0)
	{
		if (del)
		{
			MemoryContextSwitchTo(old);
			return PointerGetDatum(NULL);
		}
		p->kind = META_REC_SHARD;
		p->has_object = true;
		put_uuid_attr(&body, tup, desc, "object_id", p->object_id);
		put_int4_attr(&body, tup, desc, "shard_index");
		put_name_attr(&body, tup, desc, "provider", NULL);
		put_text_attr(&body, tup, desc, "state");
		put_int8_attr(&body, tup, desc, "size");
	}
	else if (strcmp(table, "blobs") == 0)
	{
		bool		packed = false;

		p->has_object = true;
		put_uuid_attr(&body, tup, desc, "blob_id", p->object_id);
		/* a packed blob (issue 15 item 5) is no object: its pack tells the pool */
		if (SPI_fnumber(desc, "pack_id") > 0)
		{
			bool		isnull;
			Datum		pack = row_attr(tup, desc, "pack_id", &isnull);

			if (!isnull)
			{
				packed = true;
				object_id_from_datum(pack, p->object_id);
			}
		}
		if (del)
			p->kind = META_REC_BLOB_DELETE;
		else
		{
			bool		isnull;
			Datum		owner = row_attr(tup, desc, "owner", &isnull);
			char	   *name = isnull ? NULL : GetUserNameFromId(DatumGetObjectId(owner), true);

			p->kind = packed ? META_REC_BLOB_PACKED : META_REC_BLOB;
			meta_put_str(&body, name);	/* the role's name: oids mean nothing elsewhere */
			put_int8_attr(&body, tup, desc, "created_at");
			if (packed)
			{
				put_uuid_attr(&body, tup, desc, "pack_id", NULL);
				put_int8_attr(&body, tup, desc, "pack_offset");
				put_int8_attr(&body, tup, desc, "pack_length");
				put_bytea_attr(&body, tup, desc, "sha256");
			}
			else if (SPI_fnumber(desc, "sha256") > 0)
			{
				/* a trailing field: readers that stop after created_at skip it */
				put_bytea_attr(&body, tup, desc, "sha256");
			}
		}
	}
	else if (strcmp(table, "segments") == 0)
	{
		p->has_table = true;
		put_uuid_attr(&body, tup, desc, "table_id", p->table_id);
		put_int8_attr(&body, tup, desc, "segment_no");
		p->has_object = true;
		put_uuid_attr(&body, tup, desc, "object_id", p->object_id);
		if (del)
		{
			/* the object id helps find the pool only; the record is (table, segment) */
			body.len -= CODEC_OBJID_LEN;
			p->kind = META_REC_SEGMENT_DELETE;
		}
		else
		{
			p->kind = META_REC_SEGMENT;
			put_int8_attr(&body, tup, desc, "row_count");
			put_bytea_attr(&body, tup, desc, "directory");
			put_int8_attr(&body, tup, desc, "created_at");
		}
	}
	else if (strcmp(table, "deletions") == 0)
	{
		p->has_table = true;
		put_uuid_attr(&body, tup, desc, "table_id", p->table_id);
		put_int8_attr(&body, tup, desc, "segment_no");
		put_bytea_attr(&body, tup, desc, "rows");
		if (del)
			p->kind = META_REC_DELETION_DELETE;
		else
		{
			p->kind = META_REC_DELETION;
			put_int8_attr(&body, tup, desc, "created_at");
		}
	}
	else if (strcmp(table, "tables") == 0)
	{
		/* a binding made or dropped: its definition is recorded at pre-commit */
		uint8		ignore_id[CODEC_OBJID_LEN];
		StringInfoData ignore;

		initStringInfo(&ignore);
		put_uuid_attr(&ignore, tup, desc, "table_id", ignore_id);
		memcpy(p->table_id, ignore_id, CODEC_OBJID_LEN);
		p->has_table = true;
		p->kind = 0;			/* touches the table, records nothing itself */
	}
	else
		elog(ERROR, "destor_meta_capture fired for unexpected table \"%s\"", table);

	if (p->kind != 0)
	{
		initStringInfo(&p->rec);
		meta_put_u8(&p->rec, p->kind);
		meta_put_bytes(&p->rec, body.data, body.len);
	}
	pfree(body.data);
	pending = lappend(pending, p);
	MemoryContextSwitchTo(old);
	return PointerGetDatum(NULL);
}

/* destor.meta_note_table(regclass): DDL changed this table's definition. */
Datum
destor_meta_note_table(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	MemoryContext old;
	MetaNote   *n;

	/* only DDL by the table's owner concerns it (what the event trigger calls) */
	if (capture_suspended > 0 || get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE ||
		!pg_class_ownercheck(relid, GetUserId()))
		PG_RETURN_VOID();
	old = MemoryContextSwitchTo(meta_context());
	n = palloc(sizeof(MetaNote));
	n->subid = GetCurrentSubTransactionId();
	n->relid = relid;
	notes = lappend(notes, n);
	MemoryContextSwitchTo(old);
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------------
 * Pre-commit: one log object per pool
 * ------------------------------------------------------------------------- */

typedef struct IdPool
{
	uint8		id[CODEC_OBJID_LEN];	/* hash key */
	char		pool[NAMEDATALEN];	/* "" when unknown */
	bool		touched;		/* tables: definition to check */
	bool		def_done;
} IdPool;

typedef struct PoolBatch
{
	char	   *pool;
	StringInfoData records;
	uint32		nrecords;
} PoolBatch;

static HTAB *
id_hash(const char *name)
{
	HASHCTL		ctl;

	ctl.keysize = CODEC_OBJID_LEN;
	ctl.entrysize = sizeof(IdPool);
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(name, 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* where the batches of the transaction being committed live: SPI calls
 * leave CurrentMemoryContext in SPI's context, freed at catalog_leave */
static MemoryContext batch_cxt = NULL;

static PoolBatch *
batch_for(List **batches, const char *pool)
{
	ListCell   *lc;
	PoolBatch  *b;
	MemoryContext old;

	foreach(lc, *batches)
	{
		b = lfirst(lc);
		if (strcmp(b->pool, pool) == 0)
			return b;
	}
	old = MemoryContextSwitchTo(batch_cxt);
	b = palloc0(sizeof(PoolBatch));
	b->pool = pstrdup(pool);
	initStringInfo(&b->records);
	*batches = lappend(*batches, b);
	MemoryContextSwitchTo(old);
	return b;
}

/* SPI answer's first column as text, or NULL */
static char *
spi_text(int row, int col)
{
	if (SPI_processed <= (uint64) row)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/* The pool of an object, from the catalog ("" when not there). */
static void
object_pool_lookup(IdPool *e)
{
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	char	   *pool;

	values[0] = object_id_datum(e->id);
	catalog_exec("SELECT pool::text FROM destor.objects WHERE object_id = $1", 1, types, values,
				 NULL, SPI_OK_SELECT);
	pool = spi_text(0, 1);
	strlcpy(e->pool, pool ? pool : "", NAMEDATALEN);
}

/*
 * The definition of a table as recovery needs it, as JSON (names, types as
 * text with their typmods, NOT NULL, collations that are not the type's,
 * dropped columns as placeholders so attribute numbers stay right, the
 * table's options including table_id), and the pool it lives in.
 */
#define META_TABLE_DEF_SQL \
	"SELECT s.srvname::text, pg_catalog.jsonb_build_object(" \
	"  'schema', n.nspname::text, 'name', c.relname::text, 'server', s.srvname::text, " \
	"  'options', coalesce(ft.ftoptions, '{}'::text[]), " \
	"  'columns', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(" \
	"      'name', a.attname::text, 'attnum', a.attnum, 'dropped', a.attisdropped, " \
	"      'type', CASE WHEN a.attisdropped THEN NULL ELSE pg_catalog.format_type(a.atttypid, a.atttypmod) END, " \
	"      'not_null', a.attnotnull, " \
	"      'collation', (SELECT pg_catalog.quote_ident(cn.nspname) OPERATOR(pg_catalog.||) '.' " \
	"                           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(co.collname) " \
	"                      FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace " \
	"                      JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid " \
	"                     WHERE co.oid = a.attcollation AND a.attcollation OPERATOR(pg_catalog.<>) ty.typcollation)) " \
	"      ORDER BY a.attnum) FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0), " \
	"    '[]'::jsonb))::text " \
	"FROM destor.tables t JOIN pg_catalog.pg_class c ON c.oid = t.relid " \
	"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace " \
	"JOIN pg_catalog.pg_foreign_table ft ON ft.ftrelid = c.oid " \
	"JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver " \
	"WHERE t.table_id = $1"

/*
 * Record a touched table's definition if it changed since it was last
 * logged (destor.table_definitions keeps what was), or its drop if it has
 * no relation any more; fills in the table's pool.
 */
static void
table_definition_records(IdPool *e, List **batches)
{
	Oid			types[3] = {UUIDOID, NAMEOID, TEXTOID};
	Datum		values[3];
	char	   *server;
	char	   *def;
	char	   *logged_pool;
	char	   *logged_def;

	values[0] = object_id_datum(e->id);
	catalog_exec("SELECT pool::text, definition::text FROM destor.table_definitions "
				 "WHERE table_id = $1", 1, types, values, NULL, SPI_OK_SELECT);
	logged_pool = spi_text(0, 1);
	logged_def = spi_text(0, 2);
	catalog_exec(META_TABLE_DEF_SQL, 1, types, values, NULL, SPI_OK_SELECT);
	server = spi_text(0, 1);
	def = spi_text(0, 2);

	/* a reader's definitions are the writer's, as followed: its own DDL changes none */
	if ((server && pool_name_read_only(server)) || (!server && logged_pool && pool_name_read_only(logged_pool)))
		return;
	if (server && def)
	{
		strlcpy(e->pool, server, NAMEDATALEN);
		if (logged_def == NULL || strcmp(logged_def, def) != 0)
		{
			PoolBatch  *b = batch_for(batches, server);
			StringInfoData body;

			initStringInfo(&body);
			appendBinaryStringInfo(&body, (const char *) e->id, CODEC_OBJID_LEN);
			meta_put_str(&body, def);
			meta_put_u8(&b->records, META_REC_TABLE_DEF);
			meta_put_bytes(&b->records, body.data, body.len);
			b->nrecords++;
			values[1] = DirectFunctionCall1(namein, CStringGetDatum(server));
			values[2] = CStringGetTextDatum(def);
			catalog_exec("INSERT INTO destor.table_definitions (table_id, pool, definition) "
						 "VALUES ($1, $2, $3::jsonb) ON CONFLICT (table_id) DO UPDATE "
						 "SET pool = excluded.pool, definition = excluded.definition, updated_at = now()",
						 3, types, values, NULL, SPI_OK_INSERT);
		}
	}
	else if (logged_pool)
	{
		/* bound to no relation any more: dropped (or forgotten) */
		PoolBatch  *b = batch_for(batches, logged_pool);

		strlcpy(e->pool, logged_pool, NAMEDATALEN);
		meta_put_u8(&b->records, META_REC_TABLE_DROP);
		meta_put_bytes(&b->records, e->id, CODEC_OBJID_LEN);
		b->nrecords++;
		catalog_exec("DELETE FROM destor.table_definitions WHERE table_id = $1", 1, types, values,
					 NULL, SPI_OK_DELETE);
	}
	else if (e->pool[0] == '\0')
	{
		catalog_exec("SELECT o.pool::text FROM destor.segments g JOIN destor.objects o USING (object_id) "
					 "WHERE g.table_id = $1 LIMIT 1", 1, types, values, NULL, SPI_OK_SELECT);
		server = spi_text(0, 1);
		strlcpy(e->pool, server ? server : "", NAMEDATALEN);
	}
}

static void
meta_write_batch(PoolBatch *b, const char *instance)
{
	Pool	   *pool;
	uint8		log_id[CODEC_OBJID_LEN];
	uint64		seq;
	StringInfoData payload;
	CatalogUser cu;
	Oid			types[3] = {NAMEOID, INT8OID, UUIDOID};
	Datum		values[3];
	bool		isnull;
	MetaShards *sh;
	char	  **names;
	ProviderRequest *reqs;
	bool	   *marker_to;
	int			n;
	int			ok = 0;
	MemoryContext old;
	MemoryContext caller;

	if (GetForeignServerByName(b->pool, true) == NULL)
		return;					/* the pool is gone: nothing can be logged on it */
	pool = pool_lookup(b->pool, false);
	if (pool->mode == POOL_MODE_READ_ONLY)
		return;					/* a reader never writes to the providers (the writer logs) */
	n = pool->data_shards + pool->parity_shards;
	if (codec_random_bytes(log_id, CODEC_OBJID_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate an id for a metadata log object")));

	caller = CurrentMemoryContext;
	catalog_enter(&cu);
	MemoryContextSwitchTo(caller);	/* not SPI's: the payload outlives it */
	catalog_exec("SELECT nextval('destor.meta_seq')", 0, NULL, NULL, NULL, SPI_OK_SELECT);
	seq = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											   &isnull));

	/* batch header: who, where, which, and the logs this one knows committed */
	MemoryContextSwitchTo(caller);
	initStringInfo(&payload);
	appendBinaryStringInfo(&payload, META_BATCH_MAGIC, 4);
	meta_put_u32(&payload, META_FORMAT_VERSION);
	meta_put_str(&payload, instance);
	meta_put_str(&payload, b->pool);
	meta_put_u64(&payload, seq);
	meta_put_u64(&payload, (uint64) GetCurrentTimestamp());
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(b->pool));
	values[1] = Int32GetDatum(META_MAX_CONFIRMS);
	catalog_exec("SELECT seq, log_id FROM destor.meta_log WHERE pool = $1 "
				 "ORDER BY seq DESC LIMIT $2::int", 2, (Oid[]) {NAMEOID, INT4OID}, values, NULL,
				 SPI_OK_SELECT);
	meta_put_u32(&payload, (uint32) SPI_processed);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		uint8		id[CODEC_OBJID_LEN];

		meta_put_u64(&payload, (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
																	 SPI_tuptable->tupdesc, 1,
																	 &isnull)));
		object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull),
							 id);
		appendBinaryStringInfo(&payload, (const char *) id, CODEC_OBJID_LEN);
	}
	meta_put_u32(&payload, b->nrecords);
	appendBinaryStringInfo(&payload, b->records.data, b->records.len);

	values[1] = Int64GetDatum((int64) seq);
	values[2] = object_id_datum(log_id);
	catalog_exec("INSERT INTO destor.meta_log (pool, seq, log_id) VALUES ($1, $2, $3)", 3, types,
				 values, NULL, SPI_OK_INSERT);
	catalog_leave(&cu);

	sh = meta_encode_log(payload.data, payload.len, seq, log_id, pool->data_shards,
						 pool->parity_shards);
	names = palloc0(sizeof(char *) * n);
	placement_choose(log_id, pool, names);
	reqs = palloc0(sizeof(ProviderRequest) * n);
	for (int i = 0; i < n; i++)
	{
		reqs[i].provider = provider_lookup_by_name(names[i], false);
		reqs[i].op = POP_PUT;
		reqs[i].key = meta_shard_key(instance, seq, log_id, i);
		reqs[i].data = (const char *) sh->shards[i];
		reqs[i].datalen = sh->shard_len;
	}

	/*
	 * Hedged, as the objects' shards are: once write_quorum shards of the
	 * log are stored, one still stalled is given up, as one that failed
	 * would be (any k of them decode the log).  Waited for, a provider that
	 * held every request held every commit of the pool (30 s each in TAP
	 * 101), after the writes themselves had gone around it.
	 */
	(void) provider_hedge_writes(reqs, n, pool->write_quorum);
	provider_execute(reqs, n);

	/*
	 * One marker is proof enough: m + 1 of them survive the loss of m
	 * providers.  The session waits for them after its commit, so they go
	 * to the providers that stored their log shard soonest, not the first
	 * in placement order (a far provider held every commit a round trip).
	 */
	marker_to = palloc0(sizeof(bool) * n);
	for (int c = 0; c <= pool->parity_shards; c++)
	{
		int			best = -1;

		for (int i = 0; i < n; i++)
			if (reqs[i].ok && !marker_to[i] &&
				(best < 0 || reqs[i].latency_ms < reqs[best].latency_ms))
				best = i;
		if (best < 0)
			break;
		marker_to[best] = true;
	}
	old = MemoryContextSwitchTo(meta_context());
	for (int i = 0; i < n; i++)
	{
		MetaWritten *w = palloc0(sizeof(MetaWritten));

		w->provider = provider_copy(reqs[i].provider, meta_cxt);
		w->shard_key = pstrdup(reqs[i].key);
		w->marker_key = meta_marker_key(instance, seq, log_id);
		w->put_marker = marker_to[i];
		written = lappend(written, w);
		if (reqs[i].ok)
			ok++;
	}
	MemoryContextSwitchTo(old);
	/* the marker is built now: the master key file cannot be read after commit */
	{
		uint8		marker[META_MARKER_LEN];
		ListCell   *lc;

		meta_build_marker(log_id, seq, marker);
		foreach(lc, written)
			memcpy(((MetaWritten *) lfirst(lc))->marker, marker, META_MARKER_LEN);
	}
	if (ok < pool->write_quorum)
	{
		int			bad = 0;

		while (bad < n && reqs[bad].ok)
			bad++;
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not write the metadata log of pool \"%s\": %d of %d shards written, write_quorum is %d",
						b->pool, ok, n, pool->write_quorum),
				 errdetail("Provider \"%s\": %s", reqs[bad < n ? bad : 0].provider->name,
						   reqs[bad < n ? bad : 0].error ? reqs[bad < n ? bad : 0].error : "unknown error"),
				 errhint("The transaction is rolled back: what it wrote could not be recovered without its log.")));
	}
	if (ok < n)
		meta_keep_unstored(b->pool, seq, reqs, n, sh);
}

/*
 * The log shards this commit goes on without (given up once write_quorum
 * were stored, or failed) are kept with the transaction, in
 * destor.meta_log_unstored, until repair_log() has put them: a log object
 * short of a shard survives the loss of fewer providers than the pool
 * promises, and nothing else ever writes it again.
 */
static void
meta_keep_unstored(const char *poolname, uint64 seq, ProviderRequest *reqs, int n, MetaShards *sh)
{
	CatalogUser cu;
	Oid			types[6] = {NAMEOID, INT8OID, INT4OID, NAMEOID, TEXTOID, BYTEAOID};
	Datum		values[6];

	catalog_enter(&cu);
	for (int i = 0; i < n; i++)
	{
		bytea	   *shard;

		if (reqs[i].ok)
			continue;
		shard = catalog_bytea(sh->shards[i], sh->shard_len);
		values[0] = DirectFunctionCall1(namein, CStringGetDatum(poolname));
		values[1] = Int64GetDatum((int64) seq);
		values[2] = Int32GetDatum(i);
		values[3] = DirectFunctionCall1(namein, CStringGetDatum(reqs[i].provider->name));
		values[4] = CStringGetTextDatum(reqs[i].key);
		values[5] = PointerGetDatum(shard);
		catalog_exec("INSERT INTO destor.meta_log_unstored (pool, seq, shard_index, provider, shard_key, shard) "
					 "VALUES ($1, $2, $3, $4, $5, $6)", 6, types, values, NULL, SPI_OK_INSERT);
		pfree(shard);
	}
	catalog_leave(&cu);
}

#define REPAIR_LOG_BATCH 32

/*
 * destor.repair_log(pool) — put the log shards commits went on without
 * (destor.meta_log_unstored) on their providers, REPAIR_LOG_BATCH at a
 * time; a shard put is forgotten, one whose provider is down or fails
 * again (a WARNING) waits for the next call, and those of read-only pools
 * are left.  Returns the number put.  The maintenance worker calls it
 * every round.
 *
 * The providers are looked up as the caller (their user mappings are the
 * caller's, as for the commit and for repair()), not as the catalog's
 * user.  A lock that compact_log takes too keeps the two apart: a shard
 * put after compaction had listed and deleted its log object would stay
 * on the provider for good.
 */
Datum
destor_repair_log(PG_FUNCTION_ARGS)
{
	MemoryContext work = AllocSetContextCreate(CurrentMemoryContext, "destor repair_log",
											   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(work);
	Datum		poolarg = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	int64		put = 0;
	int64		after_seq = -1;
	char		after_pool[NAMEDATALEN] = "";
	int			after_index = -1;
	bool		locked = false;

	/* a snapshot older than the lock could see rows compaction deleted */
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("destor.repair_log() must run in a READ COMMITTED transaction"),
				 errhint("Call it outside REPEATABLE READ and SERIALIZABLE transactions.")));
	for (;;)
	{
		CatalogUser cu;
		ProviderRequest reqs[REPAIR_LOG_BATCH];
		char	   *pools[REPAIR_LOG_BATCH];
		int64		seqs[REPAIR_LOG_BATCH];
		int			indexes[REPAIR_LOG_BATCH];
		char	   *providers[REPAIR_LOG_BATCH];
		char	   *keys[REPAIR_LOG_BATCH];
		bytea	   *shards[REPAIR_LOG_BATCH];
		int			nrows;
		int			nreqs = 0;
		Datum		values[4];
		char		nulls[4] = {' ', ' ', ' ', ' '};
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(work);
		memset(reqs, 0, sizeof(reqs));
		/* in key order, from after the last row seen: a row left stays behind us */
		values[0] = poolarg;
		nulls[0] = PG_ARGISNULL(0) ? 'n' : ' ';
		values[1] = DirectFunctionCall1(namein, CStringGetDatum(after_pool));
		nulls[1] = after_pool[0] ? ' ' : 'n';
		values[2] = Int64GetDatum(after_seq);
		values[3] = Int32GetDatum(after_index);
		catalog_enter(&cu);
		if (!locked)
		{
			/* self-conflicting, but not with the commits that add rows */
			catalog_exec("LOCK TABLE destor.meta_log_unstored IN SHARE UPDATE EXCLUSIVE MODE", 0, NULL,
						 NULL, NULL, SPI_OK_UTILITY);
			locked = true;
		}
		catalog_exec("SELECT pool::text, seq, shard_index, provider::text, shard_key, shard "
					 "FROM destor.meta_log_unstored "
					 "WHERE ($1::name IS NULL OR pool = $1) "
					 "AND ($2::name IS NULL OR (pool::text, seq, shard_index) > ($2::text, $3, $4)) "
					 "ORDER BY pool::text, seq, shard_index LIMIT " CppAsString2(REPAIR_LOG_BATCH),
					 4, (Oid[]) {NAMEOID, NAMEOID, INT8OID, INT4OID}, values, nulls, SPI_OK_SELECT);
		nrows = (int) SPI_processed;
		for (int r = 0; r < nrows; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	td = SPI_tuptable->tupdesc;
			MemoryContext spi = MemoryContextSwitchTo(work);

			pools[r] = TextDatumGetCString(SPI_getbinval(tup, td, 1, &isnull));
			seqs[r] = DatumGetInt64(SPI_getbinval(tup, td, 2, &isnull));
			indexes[r] = DatumGetInt32(SPI_getbinval(tup, td, 3, &isnull));
			providers[r] = TextDatumGetCString(SPI_getbinval(tup, td, 4, &isnull));
			keys[r] = TextDatumGetCString(SPI_getbinval(tup, td, 5, &isnull));
			shards[r] = DatumGetByteaPCopy(SPI_getbinval(tup, td, 6, &isnull));
			MemoryContextSwitchTo(spi);
		}
		catalog_leave(&cu);
		if (nrows == 0)
			break;
		strlcpy(after_pool, pools[nrows - 1], NAMEDATALEN);
		after_seq = seqs[nrows - 1];
		after_index = indexes[nrows - 1];

		/* the requests, as the caller; rows kept in step with them */
		for (int r = 0; r < nrows; r++)
		{
			ForeignServer *server = GetForeignServerByName(providers[r], true);
			Provider   *p;

			if (pool_name_read_only(pools[r]) || server == NULL ||
				strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "destor_provider") != 0)
				continue;		/* a reader writes nothing; a provider gone is not ours to guess */
			p = provider_lookup(server->serverid);
			if (provider_is_down(p))
				continue;
			reqs[nreqs].provider = p;
			reqs[nreqs].op = POP_PUT;
			reqs[nreqs].key = keys[r];
			reqs[nreqs].data = VARDATA(shards[r]);
			reqs[nreqs].datalen = VARSIZE(shards[r]) - VARHDRSZ;
			pools[nreqs] = pools[r];
			seqs[nreqs] = seqs[r];
			indexes[nreqs] = indexes[r];
			nreqs++;
		}
		provider_execute(reqs, nreqs);
		catalog_enter(&cu);
		for (int i = 0; i < nreqs; i++)
		{
			if (!reqs[i].ok)
			{
				ereport(WARNING,
						(errcode(ERRCODE_WARNING),
						 errmsg("could not put metadata log shard \"%s\" on provider \"%s\"",
								reqs[i].key, reqs[i].provider->name),
						 errdetail("%s", reqs[i].error ? reqs[i].error : "unknown error"),
						 errhint("It is kept; the next call of destor.repair_log() tries again.")));
				continue;
			}
			values[0] = DirectFunctionCall1(namein, CStringGetDatum(pools[i]));
			values[1] = Int64GetDatum(seqs[i]);
			values[2] = Int32GetDatum(indexes[i]);
			catalog_exec("DELETE FROM destor.meta_log_unstored WHERE pool = $1 AND seq = $2 AND shard_index = $3",
						 3, (Oid[]) {NAMEOID, INT8OID, INT4OID}, values, NULL, SPI_OK_DELETE);
			put += SPI_processed;
		}
		catalog_leave(&cu);
		if (nrows < REPAIR_LOG_BATCH)
			break;
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	PG_RETURN_INT64(put);
}

static void
meta_precommit(void)
{
	MemoryContext work;
	MemoryContext old;
	HTAB	   *objects;
	HTAB	   *tables;
	List	   *batches = NIL;
	ListCell   *lc;
	char	   *instance;
	CatalogUser cu;

	if (pending == NIL && notes == NIL)
		return;
	instance = meta_instance();
	if (instance == NULL || strlen(instance) != 36)
		return;					/* installed before instance ids: no log */

	work = AllocSetContextCreate(CurrentMemoryContext, "destor metadata log batch",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	batch_cxt = work;
	/* no portal is left at pre-commit: the catalog statements need a snapshot */
	PushActiveSnapshot(GetTransactionSnapshot());
	objects = id_hash("destor log objects");
	tables = id_hash("destor log tables");

	catalog_enter(&cu);
	MemoryContextSwitchTo(work);	/* not SPI's: the batches outlive it */
	/* pools of objects: from their own rows first, else the catalog */
	foreach(lc, pending)
	{
		MetaPending *p = lfirst(lc);
		IdPool	   *e;
		bool		found;

		if (p->pool)
		{
			e = hash_search(objects, p->object_id, HASH_ENTER, &found);
			strlcpy(e->pool, p->pool, NAMEDATALEN);
		}
	}
	foreach(lc, pending)
	{
		MetaPending *p = lfirst(lc);
		IdPool	   *e;
		bool		found;

		if (p->has_object)
		{
			e = hash_search(objects, p->object_id, HASH_ENTER, &found);
			if (!found)
				object_pool_lookup(e);
		}
		if (p->has_table)
		{
			e = hash_search(tables, p->table_id, HASH_ENTER, &found);
			if (!found)
			{
				e->pool[0] = '\0';
				e->def_done = false;
			}
			e->touched = true;
			if (p->has_object && e->pool[0] == '\0')
			{
				IdPool	   *o = hash_search(objects, p->object_id, HASH_FIND, NULL);

				if (o && o->pool[0])
					strlcpy(e->pool, o->pool, NAMEDATALEN);
			}
		}
	}
	foreach(lc, notes)
	{
		MetaNote   *n = lfirst(lc);
		Oid			types[1] = {OIDOID};
		Datum		values[1];

		values[0] = ObjectIdGetDatum(n->relid);
		catalog_exec("SELECT table_id FROM destor.tables WHERE relid = $1", 1, types, values, NULL,
					 SPI_OK_SELECT);
		if (SPI_processed > 0)
		{
			bool		isnull;
			uint8		id[CODEC_OBJID_LEN];
			IdPool	   *e;
			bool		found;

			object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											   &isnull), id);
			e = hash_search(tables, id, HASH_ENTER, &found);
			if (!found)
			{
				e->pool[0] = '\0';
				e->def_done = false;
			}
			e->touched = true;
		}
	}

	/*
	 * Definitions of touched tables first (they also fill in the pools of
	 * tables known by id only); at replay they are independent of the row
	 * records, which follow in the order they were made.
	 */
	{
		HASH_SEQ_STATUS st;
		IdPool	   *e;

		hash_seq_init(&st, tables);
		while ((e = hash_seq_search(&st)) != NULL)
			if (e->touched && !e->def_done)
			{
				table_definition_records(e, &batches);
				e->def_done = true;
			}
	}
	foreach(lc, pending)
	{
		MetaPending *p = lfirst(lc);
		const char *pool = NULL;
		PoolBatch  *b;

		if (p->kind == 0)
			continue;
		if (p->pool)
			pool = p->pool;
		else if (p->has_object)
		{
			IdPool	   *e = hash_search(objects, p->object_id, HASH_FIND, NULL);

			if (e && e->pool[0])
				pool = e->pool;
		}
		if (pool == NULL && p->has_table)
		{
			IdPool	   *e = hash_search(tables, p->table_id, HASH_FIND, NULL);

			if (e && e->pool[0])
				pool = e->pool;
		}
		if (pool == NULL)
		{
			elog(DEBUG1, "destor: a catalog change of kind %d belongs to no pool and is not logged",
				 p->kind);
			continue;
		}
		b = batch_for(&batches, pool);
		appendBinaryStringInfo(&b->records, p->rec.data, p->rec.len);
		b->nrecords++;
	}
	catalog_leave(&cu);

	foreach(lc, batches)
	{
		PoolBatch  *b = lfirst(lc);

		if (b->nrecords > 0)
			meta_write_batch(b, instance);
	}
	PopActiveSnapshot();
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
}

/* ---------------------------------------------------------------------------
 * End of transaction
 * ------------------------------------------------------------------------- */

#define META_END_OF_XACT_TIMEOUT_MS 2000

/*
 * Run a batch of small requests at end of transaction: interrupts held,
 * one try, short timeouts, nothing thrown (what fails is reported and left:
 * a missing marker is made up for by the next log object's confirmations,
 * a log shard left after an abort is never confirmed, so never replayed).
 */
static void
meta_quick_batch(ProviderRequest *reqs, int n, const char *what)
{
	int			connect_ms = destor_connect_timeout_ms;
	int			request_ms = destor_request_timeout_ms;
	int			retries = destor_max_retries;
	MemoryContext cxt = CurrentMemoryContext;

	if (n == 0)
		return;
	HOLD_INTERRUPTS();
	destor_connect_timeout_ms = Min(destor_connect_timeout_ms, META_END_OF_XACT_TIMEOUT_MS);
	destor_request_timeout_ms = Min(destor_request_timeout_ms, META_END_OF_XACT_TIMEOUT_MS);
	destor_max_retries = 0;
	PG_TRY();
	{
		provider_execute(reqs, n);
		for (int i = 0; i < n; i++)
			if (!reqs[i].ok)
				ereport(WARNING,
						(errcode(ERRCODE_WARNING),
						 errmsg("could not %s \"%s\" on provider \"%s\"", what, reqs[i].key,
								reqs[i].provider->name),
						 errdetail("%s", reqs[i].error ? reqs[i].error : "unknown error")));
	}
	PG_CATCH();
	{
		/* best effort, see above; nothing allocated inside is used after */
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
	}
	PG_END_TRY();
	destor_connect_timeout_ms = connect_ms;
	destor_request_timeout_ms = request_ms;
	destor_max_retries = retries;
	RESUME_INTERRUPTS();
}

static void
meta_end_work(bool committed)
{
	MemoryContext work;
	MemoryContext old;
	ProviderRequest *reqs;
	int			n = 0;
	ListCell   *lc;

	if (written == NIL)
		return;
	work = AllocSetContextCreate(meta_cxt, "destor metadata log end", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(work);
	reqs = palloc0(sizeof(ProviderRequest) * list_length(written));
	foreach(lc, written)
	{
		MetaWritten *w = lfirst(lc);

		if (provider_is_down(w->provider) || (committed && !w->put_marker))
			continue;
		reqs[n].provider = w->provider;
		if (committed)
		{
			reqs[n].op = POP_PUT;
			reqs[n].key = w->marker_key;
			reqs[n].data = (const char *) w->marker;
			reqs[n].datalen = META_MARKER_LEN;
		}
		else
		{
			reqs[n].op = POP_DELETE;
			reqs[n].key = w->shard_key;
		}
		n++;
	}
	meta_quick_batch(reqs, n, committed ? "put metadata log commit marker" :
					 "delete metadata log shard");
	MemoryContextSwitchTo(old);
}

static void
meta_reset(void)
{
	pending = NIL;
	notes = NIL;
	written = NIL;
	if (meta_cxt)
		MemoryContextReset(meta_cxt);
}

static void
meta_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* work that adds catalog rows at commit (open blob packs) first */
			if (meta_pre_precommit_hook)
				meta_pre_precommit_hook();
			meta_precommit();
			pending = NIL;
			notes = NIL;
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (pending != NIL || notes != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that changed destor's catalog"),
						 errhint("Commit the transaction instead of using two-phase commit.")));
			break;
		case XACT_EVENT_COMMIT:
			meta_end_work(true);
			meta_reset();
			break;
		case XACT_EVENT_ABORT:
			meta_end_work(false);
			meta_reset();
			break;
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			meta_reset();
			break;
		default:
			break;
	}
}

static void
meta_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, pending)
			if (((MetaPending *) lfirst(lc))->subid == mySubid)
				((MetaPending *) lfirst(lc))->subid = parentSubid;
		foreach(lc, notes)
			if (((MetaNote *) lfirst(lc))->subid == mySubid)
				((MetaNote *) lfirst(lc))->subid = parentSubid;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, pending)
			if (((MetaPending *) lfirst(lc))->subid == mySubid)
				pending = foreach_delete_current(pending, lc);
		foreach(lc, notes)
			if (((MetaNote *) lfirst(lc))->subid == mySubid)
				notes = foreach_delete_current(notes, lc);
	}
}
