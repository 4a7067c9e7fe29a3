/*
 * catalog.c — reading and writing destor's catalog tables through SPI.
 */
#include "postgres.h"

#include "access/xact.h"

#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "destor/catalog.h"

/*
 * catalog_spi_connect: connect SPI with search_path pinned to pg_catalog
 * (pg_temp last), so that nothing a user put in the path (an operator, a
 * function, a table) can stand in for what the statements name.  Returns
 * the GUC nest level that catalog_spi_finish restores; an ERROR in between
 * restores the setting with the (sub)transaction's abort.
 */
int
catalog_spi_connect(void)
{
	int			guc_nest_level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	return guc_nest_level;
}

void
catalog_spi_finish(int guc_nest_level)
{
	SPI_finish();
	AtEOXact_GUC(true, guc_nest_level);
}

/*
 * Catalog statements run as the bootstrap superuser with search_path
 * pinned to pg_catalog (pg_temp last): otherwise a user could put an
 * operator or function of his own in the path and have it run with
 * superuser rights.  All of it is undone on exit, or by the abort of the
 * (sub)transaction if an ERROR intervenes.
 */
void
catalog_enter(CatalogUser *cu)
{
	GetUserIdAndSecContext(&cu->saved_userid, &cu->saved_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   cu->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	cu->guc_nest_level = catalog_spi_connect();
}

void
catalog_leave(CatalogUser *cu)
{
	catalog_spi_finish(cu->guc_nest_level);
	SetUserIdAndSecContext(cu->saved_userid, cu->saved_sec_context);
}

bytea *
catalog_bytea(const void *data, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	if (len > 0)
		memcpy(VARDATA(b), data, len);
	return b;
}

static Datum
bytea_datum(const void *data, size_t len)
{
	return PointerGetDatum(catalog_bytea(data, len));
}

/*
 * The statements of the hot read path, prepared once per backend and kept
 * (parsing and planning them on every blob_read cost more than the read).
 */
static void
catalog_exec_saved(SPIPlanPtr *saved, const char *sql, int nargs, Oid *types, Datum *values,
				   int expect)
{
	catalog_exec_saved_at(saved, sql, nargs, types, values, expect, InvalidSnapshot);
}

/*
 * The same, under the given snapshot when there is one: read-only, so no
 * CommandCounterIncrement and no fresh snapshot, which is what a scan
 * needs — it may run in parallel mode (a CTAS or matview over a parallel
 * plan), and must see the catalog as its own snapshot does (a cursor
 * fetching after a concurrent compaction committed).
 */
void
catalog_exec_saved_at(SPIPlanPtr *saved, const char *sql, int nargs, Oid *types, Datum *values,
					  int expect, Snapshot snapshot)
{
	int			rc;

	if (*saved == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

		if (plan == NULL)
			elog(ERROR, "destor catalog statement failed to prepare: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "destor catalog statement could not be kept");
		*saved = plan;
	}
	if (snapshot != InvalidSnapshot)
		rc = SPI_execute_snapshot(*saved, values, NULL, snapshot, InvalidSnapshot, true, false, 0);
	else
		rc = SPI_execute_plan(*saved, values, NULL, false, 0);
	if (rc != expect)
		elog(ERROR, "destor catalog statement failed: %s", SPI_result_code_string(rc));
}

static SPIPlanPtr plan_get_object = NULL;
static SPIPlanPtr plan_get_shards = NULL;
static SPIPlanPtr plan_get_blob = NULL;

void
catalog_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "destor catalog statement failed: %s", SPI_result_code_string(rc));
}

void
catalog_insert_object(ObjectMeta *meta)
{
	CatalogUser cu;
	Oid			types[13] = {UUIDOID, NAMEOID, INT8OID, INT8OID, INT4OID, INT4OID, INT4OID,
	INT4OID, BOOLOID, BYTEAOID, INT4OID, BYTEAOID, BYTEAOID};
	Datum		values[13];
	char		nulls[13];
	int			n = meta->data_shards + meta->parity_shards;

	memset(nulls, ' ', sizeof(nulls));
	catalog_enter(&cu);
	values[0] = object_id_datum(meta->id);
	values[1] = CStringGetDatum(meta->pool);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(meta->pool));
	values[2] = Int64GetDatum(meta->size);
	values[3] = Int64GetDatum(meta->stream_size);
	values[4] = Int32GetDatum(meta->block_size);
	values[5] = Int32GetDatum(meta->chunk_size);
	values[6] = Int32GetDatum(meta->data_shards);
	values[7] = Int32GetDatum(meta->parity_shards);
	values[8] = BoolGetDatum(meta->compressed);
	if (meta->block_ends)
	{
		/* little-endian uint64 per block */
		size_t		len = sizeof(uint64) * meta->nblocks;
		bytea	   *b = palloc_extended(VARHDRSZ + len, MCXT_ALLOC_HUGE);
		uint8	   *p = (uint8 *) VARDATA(b);

		SET_VARSIZE(b, VARHDRSZ + len);
		for (int i = 0; i < meta->nblocks; i++)
			for (int k = 0; k < 8; k++)
				*p++ = (uint8) (meta->block_ends[i] >> (8 * k));
		values[9] = PointerGetDatum(b);
	}
	else
		nulls[9] = 'n';
	values[10] = Int32GetDatum(meta->key_version);
	values[11] = bytea_datum(meta->key_id, CODEC_KEY_FINGERPRINT_LEN);
	values[12] = bytea_datum(meta->wrapped_key, CODEC_WRAPPED_KEY_LEN);
	catalog_exec("INSERT INTO destor.objects (object_id, pool, size, stream_size, block_size, "
				 "chunk_size, data_shards, parity_shards, compressed, block_ends, key_version, "
				 "key_id, wrapped_key) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
				 13, types, values, nulls, SPI_OK_INSERT);

	for (int i = 0; i < n; i++)
	{
		Oid			stypes[5] = {UUIDOID, INT4OID, NAMEOID, TEXTOID, INT8OID};
		Datum		svalues[5];

		svalues[0] = values[0];
		svalues[1] = Int32GetDatum(i);
		svalues[2] = DirectFunctionCall1(namein, CStringGetDatum(meta->shards[i].provider));
		svalues[3] = CStringGetTextDatum(meta->shards[i].ok ? "ok" : "missing");
		svalues[4] = Int64GetDatum(meta->shards[i].size);
		catalog_exec("INSERT INTO destor.shards (object_id, shard_index, provider, state, size) "
					 "VALUES ($1,$2,$3,$4,$5)", 5, stypes, svalues, NULL, SPI_OK_INSERT);
	}
	catalog_leave(&cu);
}

static int64
get_int8(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

static int32
get_int4(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

static bytea *
get_bytea(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : DatumGetByteaPP(d);
}

ObjectMeta *
catalog_get_object(const uint8 id[CODEC_OBJID_LEN], bool missing_ok)
{
	return catalog_get_object_at(id, missing_ok, InvalidSnapshot);
}

/* An object's metadata as the snapshot sees it (InvalidSnapshot: a fresh one). */
ObjectMeta *
catalog_get_object_at(const uint8 id[CODEC_OBJID_LEN], bool missing_ok, Snapshot snapshot)
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	ObjectMeta *meta;
	MemoryContext caller = CurrentMemoryContext;
	HeapTuple	tup;
	TupleDesc	desc;
	bytea	   *b;
	int			n;

	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	catalog_exec_saved_at(&plan_get_object,
					   "SELECT pool::text, size, stream_size, block_size, chunk_size, data_shards, "
					   "parity_shards, compressed, block_ends, key_version, key_id, wrapped_key "
					   "FROM destor.objects WHERE object_id = $1", 1, types, values, SPI_OK_SELECT,
						  snapshot);
	if (SPI_processed == 0)
	{
		catalog_leave(&cu);
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("object %s does not exist", object_id_text(id))));
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	meta = MemoryContextAllocZero(caller, sizeof(ObjectMeta));
	memcpy(meta->id, id, CODEC_OBJID_LEN);
	{
		char	   *pool = SPI_getvalue(tup, desc, 1);

		meta->pool = MemoryContextStrdup(caller, pool ? pool : "");
	}
	meta->size = get_int8(tup, desc, 2);
	meta->stream_size = get_int8(tup, desc, 3);
	meta->block_size = get_int4(tup, desc, 4);
	meta->chunk_size = get_int4(tup, desc, 5);
	meta->data_shards = get_int4(tup, desc, 6);
	meta->parity_shards = get_int4(tup, desc, 7);
	{
		char	   *c = SPI_getvalue(tup, desc, 8);

		meta->compressed = c != NULL && strcmp(c, "t") == 0;
	}
	/* the catalog is trusted but checked: a damaged row gives an ERROR */
	if (meta->block_size <= 0 || meta->chunk_size <= 0 ||
		meta->data_shards < 1 || meta->data_shards > CODEC_RS_MAX_DATA ||
		meta->parity_shards < 0 || meta->parity_shards > CODEC_RS_MAX_PARITY ||
		meta->pool[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("catalog entry of object %s is malformed", object_id_text(id)),
				 errdetail("Its block size is %d, its chunk size %d, its shards %d+%d.", meta->block_size,
						   meta->chunk_size, meta->data_shards, meta->parity_shards)));
	meta->nblocks = meta->size == 0 ? 1 : (int) ((meta->size + meta->block_size - 1) / meta->block_size);
	b = get_bytea(tup, desc, 9);
	if (b)
	{
		const uint8 *p = (const uint8 *) VARDATA_ANY(b);

		if (VARSIZE_ANY_EXHDR(b) != sizeof(uint64) * (size_t) meta->nblocks)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("catalog entry of object %s has a malformed block index", object_id_text(id))));
		meta->block_ends = MemoryContextAllocHuge(caller, sizeof(uint64) * meta->nblocks);
		for (int i = 0; i < meta->nblocks; i++)
		{
			uint64		v = 0;

			for (int k = 0; k < 8; k++)
				v |= (uint64) p[8 * i + k] << (8 * k);
			meta->block_ends[i] = v;
		}
	}
	meta->key_version = get_int4(tup, desc, 10);
	b = get_bytea(tup, desc, 11);
	if (b == NULL || VARSIZE_ANY_EXHDR(b) != CODEC_KEY_FINGERPRINT_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("catalog entry of object %s has a malformed key id", object_id_text(id))));
	memcpy(meta->key_id, VARDATA_ANY(b), CODEC_KEY_FINGERPRINT_LEN);
	b = get_bytea(tup, desc, 12);
	if (b == NULL || VARSIZE_ANY_EXHDR(b) != CODEC_WRAPPED_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("catalog entry of object %s has a malformed wrapped key", object_id_text(id))));
	memcpy(meta->wrapped_key, VARDATA_ANY(b), CODEC_WRAPPED_KEY_LEN);

	n = meta->data_shards + meta->parity_shards;
	meta->shards = MemoryContextAllocZero(caller, sizeof(ObjectShard) * n);
	catalog_exec_saved_at(&plan_get_shards,
					   "SELECT shard_index, provider::text, state, size FROM destor.shards "
					   "WHERE object_id = $1 ORDER BY shard_index", 1, types, values, SPI_OK_SELECT,
						  snapshot);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	st = SPI_tuptable->vals[r];
		TupleDesc	sd = SPI_tuptable->tupdesc;
		int			idx = get_int4(st, sd, 1);

		if (idx < 0 || idx >= n)
			continue;
		meta->shards[idx].provider = MemoryContextStrdup(caller, SPI_getvalue(st, sd, 2));
		meta->shards[idx].ok = strcmp(SPI_getvalue(st, sd, 3), "ok") == 0;
		meta->shards[idx].size = get_int8(st, sd, 4);
	}
	for (int i = 0; i < n; i++)
		if (meta->shards[i].provider == NULL)
		{
			meta->shards[i].provider = MemoryContextStrdup(caller, "(unknown)");
			meta->shards[i].ok = false;
		}
	catalog_leave(&cu);
	return meta;
}

/* Remove an object's rows; its shards stay "retired" until deleted after
 * commit or, failing that, by cleanup_orphans after its grace period. */
void
catalog_delete_object(const uint8 id[CODEC_OBJID_LEN])
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];

	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	catalog_exec("DELETE FROM destor.objects WHERE object_id = $1", 1, types, values, NULL,
				 SPI_OK_DELETE);
	catalog_exec("INSERT INTO destor.retired (object_id) VALUES ($1) ON CONFLICT DO NOTHING",
				 1, types, values, NULL, SPI_OK_INSERT);
	catalog_leave(&cu);
}

static bool catalog_blobs_have(const char *column);

void
catalog_insert_blob(const uint8 id[CODEC_OBJID_LEN], Oid owner)
{
	catalog_insert_blob_sha256(id, owner, NULL);
}

/* A new blob and the SHA-256 of its content (NULL: not known). */
void
catalog_insert_blob_sha256(const uint8 id[CODEC_OBJID_LEN], Oid owner, const uint8 *sha256)
{
	CatalogUser cu;
	Oid			types[3] = {UUIDOID, OIDOID, BYTEAOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', sha256 ? ' ' : 'n'};
	bool		have_sha256 = catalog_blobs_have("sha256");

	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	values[1] = ObjectIdGetDatum(owner);
	values[2] = sha256 ? bytea_datum(sha256, 32) : (Datum) 0;
	if (have_sha256)
		catalog_exec("INSERT INTO destor.blobs (blob_id, owner, sha256) VALUES ($1, $2, $3)", 3,
					 types, values, nulls, SPI_OK_INSERT);
	else
		catalog_exec("INSERT INTO destor.blobs (blob_id, owner) VALUES ($1, $2)", 2, types, values,
					 NULL, SPI_OK_INSERT);
	catalog_leave(&cu);
}

bool
catalog_get_blob(const uint8 id[CODEC_OBJID_LEN], Oid *owner)
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	bool		found;

	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	catalog_exec_saved(&plan_get_blob, "SELECT owner FROM destor.blobs WHERE blob_id = $1",
					   1, types, values, SPI_OK_SELECT);
	found = SPI_processed > 0;
	if (found)
	{
		bool		isnull;

		*owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	catalog_leave(&cu);
	return found;
}

void
catalog_delete_blob(const uint8 id[CODEC_OBJID_LEN])
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];

	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	catalog_exec("DELETE FROM destor.blobs WHERE blob_id = $1", 1, types, values, NULL,
				 SPI_OK_DELETE);
	catalog_exec("INSERT INTO destor.retired (object_id) VALUES ($1) ON CONFLICT DO NOTHING",
				 1, types, values, NULL, SPI_OK_INSERT);
	catalog_exec("DELETE FROM destor.objects WHERE object_id = $1", 1, types, values, NULL,
				 SPI_OK_DELETE);
	catalog_leave(&cu);
}

/* Retired (by compaction) after cutoff: its shards must stay a while. */
bool
catalog_object_retired_after(const uint8 id[CODEC_OBJID_LEN], TimestampTz cutoff)
{
	CatalogUser cu;
	Oid			types[2] = {UUIDOID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		found;

	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	values[1] = TimestampTzGetDatum(cutoff);
	catalog_exec("SELECT 1 FROM destor.retired WHERE object_id = $1 AND retired_at > $2",
				 2, types, values, NULL, SPI_OK_SELECT);
	found = SPI_processed > 0;
	catalog_leave(&cu);
	return found;
}

void
catalog_forget_retired(TimestampTz cutoff)
{
	CatalogUser cu;
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1];

	catalog_enter(&cu);
	values[0] = TimestampTzGetDatum(cutoff);
	catalog_exec("DELETE FROM destor.retired WHERE retired_at <= $1", 1, types, values, NULL,
				 SPI_OK_DELETE);
	catalog_leave(&cu);
}

/*
 * catalog_collect_lost_tables — forget the tables whose relation is gone
 * without the DROP trigger: a temporary destor table dropped at the end of
 * its session or by DISCARD TEMP (no event trigger fires for those), or any
 * table dropped while the event triggers were disabled.  Such a binding
 * (destor.tables) names a table_id that no destor foreign table carries any
 * more; nobody can reach its segments again, yet they would stay forever.
 *
 * A table is taken when no destor foreign table has its table_id option
 * (a table carrying it but not bound may still be bound by a superuser, so
 * its data stays), and nothing of it (segment, deletion) is dated after
 * keep_after.  A transaction still running cannot be affected: the
 * relation it creates, or drops, is visible to us as it was before (and no
 * relation is dropped while a transaction writes to it: DROP waits for its
 * lock, a temporary table has one session); its binding row, if it is
 * rebinding a lost table_id, is locked by it (we skip locked rows).  Data bound to no table at all (a restore that failed
 * to create its table) is left alone: a superuser can still give it to one.
 *
 * Only segments whose objects are in this pool go (a table may have moved
 * between pools); the binding goes with the last of them.  The rows are
 * deleted here, and the ids of the segments' objects returned in the
 * caller's context: the caller removes the objects (their shards go after
 * commit).  *ntables is set to the number of tables touched.
 */
List *
catalog_collect_lost_tables(const char *pool, TimestampTz keep_after, int64 *ntables)
{
	CatalogUser cu;
	Oid			types[2] = {TIMESTAMPTZOID, NAMEOID};
	Datum		values[2];
	MemoryContext caller = CurrentMemoryContext;
	List	   *objects = NIL;
	List	   *tables = NIL;
	ListCell   *lc;

	*ntables = 0;
	catalog_enter(&cu);
	values[0] = TimestampTzGetDatum(keep_after);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(pool));
	catalog_exec("SELECT t.table_id FROM destor.tables t "
				 "WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_table ft "
				 "    JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver "
				 "    JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw "
				 "   WHERE w.fdwname = 'destor' AND EXISTS (SELECT FROM pg_catalog.unnest(ft.ftoptions) o "
				 "     WHERE pg_catalog.lower(o) = 'table_id=' OPERATOR(pg_catalog.||) t.table_id::text)) "
				 "  AND NOT EXISTS (SELECT FROM destor.segments g "
				 "   WHERE g.table_id = t.table_id AND g.created_at > $1) "
				 "  AND NOT EXISTS (SELECT FROM destor.deletions d "
				 "   WHERE d.table_id = t.table_id AND d.created_at > $1) "
				 "  AND (NOT EXISTS (SELECT FROM destor.segments g WHERE g.table_id = t.table_id) "
				 "       OR EXISTS (SELECT FROM destor.segments g JOIN destor.objects ob USING (object_id) "
				 "                   WHERE g.table_id = t.table_id AND ob.pool = $2)) "
				 "ORDER BY t.table_id FOR UPDATE OF t SKIP LOCKED",
				 2, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		pg_uuid_t  *u = DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
												   1, &isnull));
		pg_uuid_t  *copy = palloc(sizeof(pg_uuid_t));	/* SPI's context: freed at leave */

		memcpy(copy, u, sizeof(pg_uuid_t));
		tables = lappend(tables, copy);
	}
	foreach(lc, tables)
	{
		Oid			ttypes[2] = {UUIDOID, NAMEOID};
		Datum		tvalues[2];

		CHECK_FOR_INTERRUPTS();
		tvalues[0] = UUIDPGetDatum((pg_uuid_t *) lfirst(lc));
		tvalues[1] = values[1];
		catalog_exec("WITH seg AS (DELETE FROM destor.segments g USING destor.objects ob "
					 "  WHERE g.table_id = $1 AND ob.object_id = g.object_id AND ob.pool = $2 "
					 "  RETURNING g.segment_no, g.object_id), "
					 "del AS (DELETE FROM destor.deletions d USING seg "
					 "  WHERE d.table_id = $1 AND d.segment_no = seg.segment_no) "
					 "SELECT object_id FROM seg",
					 2, ttypes, tvalues, NULL, SPI_OK_SELECT);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			pg_uuid_t  *u = DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
													   1, &isnull));
			MemoryContext spi = MemoryContextSwitchTo(caller);	/* the list outlives SPI */
			uint8	   *id = palloc(CODEC_OBJID_LEN);

			memcpy(id, u->data, CODEC_OBJID_LEN);
			objects = lappend(objects, id);
			MemoryContextSwitchTo(spi);
		}
		/* the binding (and any stray deletion) goes with the table's last segment, of any pool */
		catalog_exec("DELETE FROM destor.tables t WHERE t.table_id = $1 "
					 "AND NOT EXISTS (SELECT FROM destor.segments g WHERE g.table_id = $1)",
					 1, ttypes, tvalues, NULL, SPI_OK_DELETE);
		if (SPI_processed > 0)
			catalog_exec("DELETE FROM destor.deletions WHERE table_id = $1", 1, ttypes, tvalues,
						 NULL, SPI_OK_DELETE);
		(*ntables)++;
	}
	catalog_leave(&cu);
	return objects;
}

/* The ids of a pool's objects (every pool's with pool NULL), oldest first. */
List *
catalog_list_objects(const char *pool)
{
	CatalogUser cu;
	Oid			types[1] = {NAMEOID};
	Datum		values[1];
	char		nulls[1] = {' '};
	List	   *ids = NIL;
	MemoryContext caller = CurrentMemoryContext;

	catalog_enter(&cu);
	if (pool)
		values[0] = DirectFunctionCall1(namein, CStringGetDatum(pool));
	else
		nulls[0] = 'n';
	catalog_exec("SELECT object_id FROM destor.objects WHERE $1 IS NULL OR pool = $1 "
				 "ORDER BY created_at, object_id", 1, types, values, nulls, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext spi = MemoryContextSwitchTo(caller);	/* the list outlives SPI */
		uint8	   *id = palloc(CODEC_OBJID_LEN);

		object_id_from_datum(d, id);
		ids = lappend(ids, id);
		MemoryContextSwitchTo(spi);
	}
	catalog_leave(&cu);
	return ids;
}

/*
 * Record what a check found of a shard on a provider: 'ok', 'missing' or
 * 'corrupt' (nothing if the shard has moved elsewhere meanwhile).
 */
void
catalog_set_shard_state(const uint8 id[CODEC_OBJID_LEN], int shard, const char *provider,
						const char *state)
{
	CatalogUser cu;
	Oid			types[4] = {UUIDOID, INT4OID, TEXTOID, NAMEOID};
	Datum		values[4];

	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	values[1] = Int32GetDatum(shard);
	values[2] = CStringGetTextDatum(state);
	values[3] = DirectFunctionCall1(namein, CStringGetDatum(provider));
	catalog_exec("UPDATE destor.shards SET state = $3 WHERE object_id = $1 AND shard_index = $2 "
				 "AND provider = $4 AND state IS DISTINCT FROM $3", 4, types, values, NULL, SPI_OK_UPDATE);
	catalog_leave(&cu);
}

/* Is shard "shard" of the object placed on this provider by the catalog? */
bool
catalog_shard_placed(const uint8 id[CODEC_OBJID_LEN], int shard, const char *provider)
{
	CatalogUser cu;
	Oid			types[3] = {UUIDOID, INT4OID, NAMEOID};
	Datum		values[3];
	bool		found;

	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	values[1] = Int32GetDatum(shard);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(provider));
	catalog_exec("SELECT 1 FROM destor.shards WHERE object_id = $1 AND shard_index = $2 AND provider = $3",
				 3, types, values, NULL, SPI_OK_SELECT);
	found = SPI_processed > 0;
	catalog_leave(&cu);
	return found;
}

/*
 * A shard now lives on another provider, whole.  False if it was not on
 * "from" any more (moved by someone else meanwhile): nothing changes then.
 */
bool
catalog_move_shard(const uint8 id[CODEC_OBJID_LEN], int shard, const char *from, const char *to)
{
	CatalogUser cu;
	Oid			types[4] = {UUIDOID, INT4OID, NAMEOID, NAMEOID};
	Datum		values[4];
	bool		moved;

	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	values[1] = Int32GetDatum(shard);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(to));
	values[3] = DirectFunctionCall1(namein, CStringGetDatum(from));
	catalog_exec("UPDATE destor.shards SET provider = $3, state = 'ok' "
				 "WHERE object_id = $1 AND shard_index = $2 AND provider = $4 "
				 "AND NOT EXISTS (SELECT FROM destor.shards o WHERE o.object_id = $1 AND o.provider = $3)",
				 4, types, values, NULL, SPI_OK_UPDATE);
	moved = SPI_processed == 1;
	catalog_leave(&cu);
	return moved;
}

/*
 * The shards a provider holds, as (object id, shard index) pairs: ids in
 * *ids (CODEC_OBJID_LEN bytes each), indexes in *shards.  Returns how many.
 */
int
catalog_shards_on(const char *provider, uint8 **ids, int **shards)
{
	CatalogUser cu;
	Oid			types[1] = {NAMEOID};
	Datum		values[1];
	MemoryContext caller = CurrentMemoryContext;
	int			n;

	catalog_enter(&cu);
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(provider));
	catalog_exec("SELECT s.object_id, s.shard_index FROM destor.shards s "
				 "JOIN destor.objects o USING (object_id) WHERE s.provider = $1 "
				 "ORDER BY o.created_at, s.object_id", 1, types, values, NULL, SPI_OK_SELECT);
	n = (int) SPI_processed;
	*ids = MemoryContextAlloc(caller, (Size) CODEC_OBJID_LEN * Max(n, 1));
	*shards = MemoryContextAlloc(caller, sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull),
							 *ids + (Size) i * CODEC_OBJID_LEN);
		(*shards)[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
												   2, &isnull));
	}
	catalog_leave(&cu);
	return n;
}

/*
 * Lock an object's row until the end of the transaction, so that two
 * sessions moving its shards take turns; false if it does not exist (any
 * more).  Callers read the object's placement again after this.
 */
bool
catalog_lock_object(const uint8 id[CODEC_OBJID_LEN])
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	bool		found;

	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	catalog_exec("SELECT 1 FROM destor.objects WHERE object_id = $1 FOR UPDATE", 1, types, values,
				 NULL, SPI_OK_SELECT);
	found = SPI_processed > 0;
	catalog_leave(&cu);
	return found;
}

/* ---------------------------------------------------------------------------
 * Blob owners, for DROP ROLE, REASSIGN OWNED and DROP OWNED
 * ------------------------------------------------------------------------- */

/* How many blobs a role owns (in this database). */
int64
catalog_count_blobs_of(Oid role)
{
	CatalogUser cu;
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	bool		isnull;
	int64		n;

	catalog_enter(&cu);
	values[0] = ObjectIdGetDatum(role);
	catalog_exec("SELECT count(*) FROM destor.blobs WHERE owner::oid = $1", 1, types, values, NULL,
				 SPI_OK_SELECT);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	catalog_leave(&cu);
	return n;
}

/* The blob ids (CODEC_OBJID_LEN bytes each) a query of one role's OID lists. */
static List *
blob_ids_of_role(const char *sql, Oid role)
{
	CatalogUser cu;
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(role)};
	MemoryContext caller = CurrentMemoryContext;
	List	   *ids = NIL;

	catalog_enter(&cu);
	catalog_exec(sql, 1, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext spi = MemoryContextSwitchTo(caller);
		uint8	   *id = palloc(CODEC_OBJID_LEN);

		object_id_from_datum(d, id);
		ids = lappend(ids, id);
		MemoryContextSwitchTo(spi);
	}
	catalog_leave(&cu);
	return ids;
}

/* The ids of a role's blobs (CODEC_OBJID_LEN bytes each). */
List *
catalog_blobs_of(Oid role)
{
	return blob_ids_of_role("SELECT blob_id FROM destor.blobs WHERE owner::oid = $1 ORDER BY blob_id", role);
}

/* Give a role's blobs to another role; returns how many. */
int64
catalog_reassign_blobs(Oid from, Oid to)
{
	CatalogUser cu;
	Oid			types[2] = {OIDOID, OIDOID};
	Datum		values[2];
	int64		n;

	catalog_enter(&cu);
	values[0] = ObjectIdGetDatum(from);
	values[1] = ObjectIdGetDatum(to);
	catalog_exec("UPDATE destor.blobs SET owner = $2::regrole WHERE owner::oid = $1", 2, types,
				 values, NULL, SPI_OK_UPDATE);
	n = (int64) SPI_processed;
	catalog_leave(&cu);
	return n;
}

/* ---------------------------------------------------------------------------
 * Blob privileges (issue 15): an aclitem[] per blob, NULL for the default
 * (the owner alone), as pg_largeobject_metadata.lomacl; and the SHA-256 of
 * the content, recorded when the blob was written (NULL for blobs written
 * before destor 0.2.0)
 * ------------------------------------------------------------------------- */

static SPIPlanPtr plan_get_blob_acl = NULL;

/*
 * Has destor.blobs this column?  Not before ALTER EXTENSION destor UPDATE to
 * 0.2.0: between installing this library and that update, blobs are
 * written and read as before (no hash, no grants).
 */
static bool
catalog_blobs_have(const char *column)
{
	Oid			nsp = get_namespace_oid("destor", true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid("blobs", nsp) : InvalidOid;

	return OidIsValid(rel) && get_attnum(rel, column) != InvalidAttrNumber;
}

/*
 * catalog_get_blob_acl — the blob's owner and ACL (NULL: the default),
 * copied into the caller's memory; false if there is no such blob.  A saved
 * plan: a grantee's every read asks it (see blob_acl.c).
 */
bool
catalog_get_blob_acl(const uint8 id[CODEC_OBJID_LEN], Oid *owner, Acl **acl)
{
	return catalog_get_blob_acl_ext(id, owner, acl, false);
}

static SPIPlanPtr plan_lock_blob_acl = NULL;

/*
 * The same, the blob's row locked FOR UPDATE when lock is true: a change of
 * the owner or the ACL (or a deletion) computes from the row it locked, the
 * newest committed one, never from a snapshot another session's change
 * committed after — it would overwrite that change (a revoke lost, an owner
 * change undone).  Under REPEATABLE READ such a row is a serialization
 * failure, as PostgreSQL's own GRANT fails on a concurrent update.
 */
bool
catalog_get_blob_acl_ext(const uint8 id[CODEC_OBJID_LEN], Oid *owner, Acl **acl, bool lock)
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	MemoryContext caller = CurrentMemoryContext;
	bool		found;

	if (!catalog_blobs_have("acl"))
	{
		*acl = NULL;
		return catalog_get_blob(id, owner);
	}
	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	if (lock)
		catalog_exec_saved(&plan_lock_blob_acl,
						   "SELECT owner, acl FROM destor.blobs WHERE blob_id = $1 FOR UPDATE",
						   1, types, values, SPI_OK_SELECT);
	else
		catalog_exec_saved(&plan_get_blob_acl, "SELECT owner, acl FROM destor.blobs WHERE blob_id = $1",
						   1, types, values, SPI_OK_SELECT);
	found = SPI_processed > 0;
	*acl = NULL;
	if (found)
	{
		bool		isnull;
		Datum		d;

		*owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
		{
			MemoryContext spi = MemoryContextSwitchTo(caller);

			*acl = DatumGetAclPCopy(d);
			MemoryContextSwitchTo(spi);
		}
	}
	catalog_leave(&cu);
	return found;
}

/* catalog_set_blob_owner_acl — a blob's new owner and ACL (NULL: the default). */
void
catalog_set_blob_owner_acl(const uint8 id[CODEC_OBJID_LEN], Oid owner, Acl *acl)
{
	CatalogUser cu;
	Oid			types[3] = {UUIDOID, OIDOID, ACLITEMARRAYOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', acl ? ' ' : 'n'};

	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	values[1] = ObjectIdGetDatum(owner);
	values[2] = PointerGetDatum(acl);
	catalog_exec("UPDATE destor.blobs SET owner = $2::regrole, acl = $3 WHERE blob_id = $1", 3, types,
				 values, nulls, SPI_OK_UPDATE);
	catalog_leave(&cu);
}

/* The ids of the blobs whose ACL names the role as grantee (this database). */
List *
catalog_blobs_granted_to(Oid role)
{
	if (!catalog_blobs_have("acl"))
		return NIL;
	return blob_ids_of_role("SELECT blob_id FROM destor.blobs b WHERE b.acl IS NOT NULL"
							" AND EXISTS (SELECT FROM aclexplode(b.acl) a WHERE a.grantee = $1)"
							" ORDER BY blob_id", role);
}

/*
 * catalog_get_blob_sha256 — the SHA-256 recorded for a blob's content;
 * false when none was (a blob written before destor 0.2.0) or there is no
 * such blob.
 */
bool
catalog_get_blob_sha256(const uint8 id[CODEC_OBJID_LEN], uint8 sha256[32])
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	bool		found = false;

	if (!catalog_blobs_have("sha256"))
		return false;
	catalog_enter(&cu);
	values[0] = object_id_datum(id);
	catalog_exec("SELECT sha256 FROM destor.blobs WHERE blob_id = $1", 1, types, values, NULL,
				 SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			bytea	   *b = DatumGetByteaPP(d);

			if (VARSIZE_ANY_EXHDR(b) == 32)
			{
				memcpy(sha256, VARDATA_ANY(b), 32);
				found = true;
			}
		}
	}
	catalog_leave(&cu);
	return found;
}

bool
catalog_try(CatalogTryFn fn, void *arg, ErrorData **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		ok = true;

	*error = NULL;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		/* a cancel or a shutdown stops everything, not just this step */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
		*error = edata;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}
