/*
 * lo_tier.c — large objects tiered offsite under their own OIDs.
 *
 * destor.lo_tier(lo, pool) streams a large object's pages into a new object
 * of the pool, reads the object back and compares checksums, deletes the
 * pages from pg_largeobject and records the object in destor.lo_tiers; the
 * large object itself (pg_largeobject_metadata: OID, owner, ACL, comment)
 * stays, so every reference to the OID stays valid.  A recall writes the
 * pages back and keeps the object (re-tiering writes a new one and deletes
 * the old one's shards after commit).  Everything happens in the caller's
 * transaction: a rollback brings the pages back and deletes the new shards
 * (the writer tracks them), and shards are deleted only after a commit.
 *
 * Privileges are the large object's own: tiering needs UPDATE (as lo_put
 * would), recalling SELECT (as lo_get would), under the
 * lo_compat_privileges rule.  Tiering and recall of one large object are
 * serialized by the row lock on its destor.lo_tiers row, not by a
 * heavyweight lock: a transaction that reads ten thousand tiered large
 * objects (or lo_tier_all over as many) would fill the shared lock table.
 * A recall updates the row first; a second reader waits for the row, then
 * finds it recalled (READ COMMITTED: the update's recheck sees the new
 * version) or gets a serialization failure (REPEATABLE READ).  A tiering
 * locks the row (FOR UPDATE) before it reads the pages.  Two first
 * tierings of one large object (no row yet) meet on its pages: the second
 * fails with "tuple concurrently deleted", and nothing is lost.
 *
 * Pages are read and written directly (as inv_api does), not through
 * inv_open(), because a recall on behalf of a reader with SELECT only must
 * write pages the reader could not write itself: the recall changes how the
 * bytes are stored, never what they are.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xlog.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_largeobject.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/large_object.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "destor/catalog.h"
#include "destor/lo.h"
#include "destor/object.h"
#include "destor/progress.h"

PG_FUNCTION_INFO_V1(destor_lo_tier);
PG_FUNCTION_INFO_V1(destor_lo_tier_all);
PG_FUNCTION_INFO_V1(destor_lo_recall);
PG_FUNCTION_INFO_V1(destor_lo_readable);
PG_FUNCTION_INFO_V1(destor_apply_lo_tiering);

#define LO_TIER_IO		OBJECT_READ_WINDOW_BYTES	/* bytes per read of an object:
													 * a window, read ahead */

/*
 * destor.lo_tiers.loid is a bigint, not an oid: vacuumlo takes every oid
 * column of every table for references to large objects, and would never
 * unlink a tiered one.
 */
#define LO_TIERS_KEY(loid)	Int64GetDatum((int64) (loid))

static const char lo_zeros[LOBLKSIZE];

/* What destor.lo_tiers says about one large object. */
typedef struct LoTierRow
{
	bool		found;
	bool		recalled;
	uint8		id[CODEC_OBJID_LEN];
} LoTierRow;

/*
 * lo_destor_extension — the OID of extension destor in this database, if
 * schema destor and its table lo_tiers are the extension's own; else
 * InvalidOid.  destor is preloaded for the whole cluster, so in a database
 * without the extension a role that may create schemas could make a schema
 * "destor" with look-alike tables and functions: the hooks must never use
 * them (they would run its code as whoever calls lo_get, or as the
 * catalog's superuser).
 */
Oid
lo_destor_extension(void)
{
	Oid			nsp = get_namespace_oid("destor", true);
	Oid			rel;
	Oid			ext;

	if (!OidIsValid(nsp))
		return InvalidOid;
	rel = get_relname_relid("lo_tiers", nsp);
	if (!OidIsValid(rel))
		return InvalidOid;
	ext = get_extension_oid("destor", true);
	if (!OidIsValid(ext) || getExtensionOfObject(RelationRelationId, rel) != ext)
		return InvalidOid;
	return ext;
}

/* destor.lo_tiers is there, and the extension's (see lo_destor_extension). */
bool
lo_tier_catalog_ready(void)
{
	return OidIsValid(lo_destor_extension());
}

static void
lo_check_exists(Oid loid)
{
	if (!LargeObjectExists(loid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("large object %u does not exist", loid)));
}

/* The caller's privilege on the large object, as inv_open() judges it. */
static bool
lo_has_privilege(Oid loid, AclMode mode)
{
	return lo_compat_privileges ||
		pg_largeobject_aclcheck_snapshot(loid, GetUserId(), mode, NULL) == ACLCHECK_OK;
}

static void
lo_check_privilege(Oid loid, AclMode mode, const char *action)
{
	if (!lo_has_privilege(loid, mode))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for large object %u", loid),
				 errdetail("To %s a large object needs the %s privilege on it.", action,
						   mode == ACL_UPDATE ? "UPDATE" : "SELECT")));
}

static LoTierRow
lo_tier_lookup_sql(Oid loid, const char *sql)
{
	CatalogUser cu;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {LO_TIERS_KEY(loid)};
	LoTierRow	row;

	memset(&row, 0, sizeof(row));
	catalog_enter(&cu);
	catalog_exec(sql, 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		bool		isnull;

		row.found = true;
		object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							 row.id);
		row.recalled = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 2, &isnull));
	}
	catalog_leave(&cu);
	return row;
}

static LoTierRow
lo_tier_lookup(Oid loid)
{
	return lo_tier_lookup_sql(loid, "SELECT object_id, recalled_at IS NOT NULL FROM destor.lo_tiers "
							  "WHERE loid = $1");
}

/* Where the large object's bytes are, as a new snapshot sees it. */
LoTierState
lo_tier_state(Oid loid)
{
	LoTierRow	row = lo_tier_lookup(loid);

	if (!row.found)
		return LO_LOCAL;
	return row.recalled ? LO_RECALLED : LO_OFFSITE;
}

/*
 * lo_pages_to_object — every page of the large object, in order, into w
 * (holes and short pages read as zeros, as inv_read() reads them); the pages
 * are deleted as they are read.  Returns the size and the CRC-64 of the
 * bytes.  The snapshot is taken after the lock, so a writer that committed
 * meanwhile is seen.
 */
static uint64
lo_pages_to_object(Oid loid, ObjectWriter *w, uint64 *crc)
{
	Relation	rel = table_open(LargeObjectRelationId, RowExclusiveLock);
	Relation	idx = index_open(LargeObjectLOidPNIndexId, AccessShareLock);
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	uint64		pos = 0;

	*crc = 0;
	ScanKeyInit(&key, Anum_pg_largeobject_loid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(loid));
	scan = systable_beginscan_ordered(rel, idx, snap, 1, &key);
	while ((tup = systable_getnext_ordered(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_largeobject page = (Form_pg_largeobject) GETSTRUCT(tup);
		uint64		pageoff = (uint64) page->pageno * LOBLKSIZE;
		bool		isnull;
		bytea	   *data;

		CHECK_FOR_INTERRUPTS();
		while (pos < pageoff)
		{
			size_t		n = Min((uint64) LOBLKSIZE, pageoff - pos);

			object_writer_write(w, lo_zeros, n);
			*crc = codec_crc64(*crc, lo_zeros, n);
			pos += n;
		}
		data = DatumGetByteaPP(heap_getattr(tup, Anum_pg_largeobject_data,
											RelationGetDescr(rel), &isnull));
		if (!isnull)
		{
			object_writer_write(w, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
			*crc = codec_crc64(*crc, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
			pos += VARSIZE_ANY_EXHDR(data);
		}
		CatalogTupleDelete(rel, &tup->t_self);
	}
	systable_endscan_ordered(scan);
	UnregisterSnapshot(snap);
	index_close(idx, AccessShareLock);
	table_close(rel, RowExclusiveLock);
	return pos;
}

/* The CRC-64 of an object's bytes, read back from its providers. */
static uint64
lo_object_crc(ObjectMeta *meta)
{
	ObjectReader *r = object_reader_open(meta);
	char	   *buf = buffer_alloc_large(CurrentMemoryContext, LO_TIER_IO);
	uint64		crc = 0;

	object_reader_read_on(r, meta->size);
	for (uint64 off = 0; off < meta->size;)
	{
		uint64		n = Min((uint64) LO_TIER_IO, meta->size - off);

		CHECK_FOR_INTERRUPTS();
		object_reader_read(r, off, n, buf);
		crc = codec_crc64(crc, buf, n);
		off += n;
	}
	object_reader_close(r);
	pfree(buf);
	return crc;
}

/*
 * lo_tier_one — tier one large object (the caller checked nothing but that
 * it may be asked): the bytes moved, or -1 when it was tiered already.
 */
int64
lo_tier_one(Oid loid, const char *poolname)
{
	Pool	   *pool = pool_lookup(poolname, true);
	LoTierRow	old;
	ObjectWriter *w;
	ObjectMeta *meta;
	uint64		size,
				crc;
	CatalogUser cu;
	Oid			types[4] = {INT8OID, UUIDOID, NAMEOID, INT8OID};
	Datum		values[4];

	lo_check_exists(loid);
	lo_check_privilege(loid, ACL_UPDATE, "tier");
	/* locked: a recall or tiering in progress is waited for, then seen */
	old = lo_tier_lookup_sql(loid, "SELECT object_id, recalled_at IS NOT NULL FROM destor.lo_tiers "
							 "WHERE loid = $1 FOR UPDATE");
	if (old.found && !old.recalled)
		return -1;

	w = object_writer_create(pool, true);
	size = lo_pages_to_object(loid, w, &crc);
	meta = object_writer_finish(w);
	catalog_insert_object(meta);
	if (lo_object_crc(meta) != crc)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("large object %u read back from pool \"%s\" differs from what was written", loid,
						poolname),
				 errdetail("Nothing was tiered; the large object is unchanged."),
				 errhint("Check the pool's providers with destor.check_provider().")));

	values[0] = LO_TIERS_KEY(loid);
	values[1] = object_id_datum(meta->id);
	values[2] = CStringGetDatum(poolname);
	values[3] = Int64GetDatum((int64) size);
	catalog_enter(&cu);
	catalog_exec("INSERT INTO destor.lo_tiers (loid, object_id, pool, size) VALUES ($1, $2, $3, $4) "
				 "ON CONFLICT (loid) DO UPDATE SET object_id = excluded.object_id, pool = excluded.pool, "
				 "size = excluded.size, tiered_at = pg_catalog.now(), recalled_at = NULL",
				 4, types, values, NULL, SPI_OK_INSERT);
	catalog_leave(&cu);
	if (old.found)
	{
		/* recalled and tiered again: the previous object goes after commit */
		ObjectMeta *prev = catalog_get_object(old.id, true);

		if (prev)
		{
			catalog_delete_object(old.id);
			object_delete_at_commit(prev);
		}
	}
	CommandCounterIncrement();
	return (int64) size;
}

/*
 * Pages written between two looks at the reader (object_reader_poll): a
 * MiB.  A window is 8,192 pages; in blob_to_lo, writing one into a large
 * object outlasted the next window's transfer under load, and the window
 * after it was asked for only at the next read.
 */
#define LO_RECALL_POLL_PAGES	(1024 * 1024 / LOBLKSIZE)

/* An object's bytes back into pages of pg_largeobject. */
static void
lo_object_to_pages(Oid loid, ObjectMeta *meta)
{
	Relation	rel = table_open(LargeObjectRelationId, RowExclusiveLock);
	CatalogIndexState indstate = CatalogOpenIndexes(rel);
	ObjectReader *r = object_reader_open(meta);
	char	   *buf = buffer_alloc_large(CurrentMemoryContext, LO_TIER_IO);
	bytea	   *page = palloc(VARHDRSZ + LOBLKSIZE);
	int32		pageno = 0;

	object_reader_read_on(r, meta->size);
	for (uint64 off = 0; off < meta->size;)
	{
		uint64		n = Min((uint64) LO_TIER_IO, meta->size - off);

		CHECK_FOR_INTERRUPTS();
		object_reader_read(r, off, n, buf);
		for (uint64 p = 0; p < n; p += LOBLKSIZE, pageno++)
		{
			size_t		len = Min((uint64) LOBLKSIZE, n - p);
			bool		last = off + p + len == meta->size;
			Datum		values[Natts_pg_largeobject];
			bool		nulls[Natts_pg_largeobject] = {false, false, false};
			HeapTuple	tup;

			/* a page of zeros reads the same as a hole, except the last */
			if (!last && len == LOBLKSIZE && memcmp(buf + p, lo_zeros, LOBLKSIZE) == 0)
				continue;
			memcpy(VARDATA(page), buf + p, len);
			SET_VARSIZE(page, VARHDRSZ + len);
			values[Anum_pg_largeobject_loid - 1] = ObjectIdGetDatum(loid);
			values[Anum_pg_largeobject_pageno - 1] = Int32GetDatum(pageno);
			values[Anum_pg_largeobject_data - 1] = PointerGetDatum(page);
			tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
			CatalogTupleInsertWithInfo(rel, tup, indstate);
			heap_freetuple(tup);
			/* the reader moves while the pages are written (as blob_to_lo) */
			if (pageno % LO_RECALL_POLL_PAGES == 0)
				object_reader_poll(r);
		}
		off += n;
	}
	object_reader_close(r);
	pfree(buf);
	pfree(page);
	CatalogCloseIndexes(indstate);
	table_close(rel, RowExclusiveLock);
}

/*
 * lo_recall_one — the pages of a tiered large object back into
 * pg_largeobject (the caller checked the privilege): the bytes recalled, or
 * -1 when it was not tiered (or recalled already).  The row is changed
 * first: a concurrent recall waits for its lock, and in READ COMMITTED then
 * sees the recall and does nothing twice; under REPEATABLE READ its UPDATE
 * fails with a serialization failure instead.
 */
int64
lo_recall_one(Oid loid)
{
	CatalogUser cu;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {LO_TIERS_KEY(loid)};
	uint8		id[CODEC_OBJID_LEN];
	ObjectMeta *meta;
	bool		found;

	/* say why, rather than let the catalog's UPDATE fail obscurely */
	if ((XactReadOnly || RecoveryInProgress()) && lo_tier_state(loid) == LO_OFFSITE)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("large object %u is offsite and cannot be recalled in a read-only transaction", loid),
				 errdetail("A recall writes the large object's pages back into pg_largeobject."),
				 errhint("Recall it in a read-write transaction on the primary: SELECT destor.lo_recall(%u);",
						 loid)));
	catalog_enter(&cu);
	catalog_exec("UPDATE destor.lo_tiers SET recalled_at = pg_catalog.now() "
				 "WHERE loid = $1 AND recalled_at IS NULL RETURNING object_id",
				 1, types, values, NULL, SPI_OK_UPDATE_RETURNING);
	found = SPI_processed == 1;
	if (found)
	{
		bool		isnull;

		object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							 id);
	}
	catalog_leave(&cu);
	if (!found)
		return -1;
	meta = catalog_get_object(id, false);
	lo_object_to_pages(loid, meta);
	CommandCounterIncrement();
	return (int64) meta->size;
}

/*
 * lo_tier_forget — a large object is being unlinked: its row goes, and its
 * object's shards after commit (never on rollback: the deletion is
 * transactional like the unlink).
 */
void
lo_tier_forget(Oid loid)
{
	LoTierRow	row = lo_tier_lookup(loid);
	CatalogUser cu;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {LO_TIERS_KEY(loid)};
	ObjectMeta *meta;

	if (!row.found)
		return;
	catalog_enter(&cu);
	catalog_exec("DELETE FROM destor.lo_tiers WHERE loid = $1", 1, types, values, NULL,
				 SPI_OK_DELETE);
	catalog_leave(&cu);
	meta = catalog_get_object(row.id, true);
	if (meta)
	{
		catalog_delete_object(row.id);
		object_delete_at_commit(meta);
	}
}

/*
 * lo_tier_guard_drop — destor.lo_tiers is being dropped (DROP EXTENSION
 * destor, or by hand): refused while it holds the only way to the bytes of
 * a large object that is offsite.  Once it is gone, those large objects
 * would read as empty, and their shards would be orphans.
 */
void
lo_tier_guard_drop(void)
{
	CatalogUser cu;
	int64		offsite;
	bool		isnull;

	catalog_enter(&cu);
	catalog_exec("SELECT pg_catalog.count(*) FROM destor.lo_tiers WHERE recalled_at IS NULL",
				 0, NULL, NULL, NULL, SPI_OK_SELECT);
	offsite = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	catalog_leave(&cu);
	if (offsite > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop destor.lo_tiers: %lld large objects are offsite", (long long) offsite),
				 errdetail("Their bytes are only on the providers; without the table they would read as empty."),
				 errhint("Recall them first: SELECT destor.lo_recall(loid) FROM destor.lo_tiers WHERE recalled_at IS NULL;")));
}

/* ---------------------------------------------------------------------------
 * SQL functions
 * ------------------------------------------------------------------------- */
Datum
destor_lo_tier(PG_FUNCTION_ARGS)
{
	Oid			loid = PG_GETARG_OID(0);
	Name		pool = PG_GETARG_NAME(1);
	int64		n = lo_tier_one(loid, NameStr(*pool));

	if (n < 0)
	{
		ereport(NOTICE,
				(errmsg("large object %u is tiered already", loid),
				 errdetail("destor.tiered_large_objects shows where.")));
		n = 0;
	}
	PG_RETURN_INT64(n);
}

Datum
destor_lo_recall(PG_FUNCTION_ARGS)
{
	Oid			loid = PG_GETARG_OID(0);
	int64		n;

	lo_check_exists(loid);
	lo_check_privilege(loid, ACL_SELECT, "recall");
	n = lo_recall_one(loid);
	PG_RETURN_INT64(n < 0 ? 0 : n);
}

/* For the view: may the caller read the large object (superusers: all)? */
Datum
destor_lo_readable(PG_FUNCTION_ARGS)
{
	Oid			loid = PG_GETARG_OID(0);

	PG_RETURN_BOOL(LargeObjectExists(loid) && lo_has_privilege(loid, ACL_SELECT));
}

/*
 * The large objects of this database that are local (never tiered, or
 * recalled before cutoff when cutoff is given), of at least min_size bytes.
 * Read as the catalog's user: pg_largeobject is readable by superusers only.
 */
static List *
lo_candidates(int64 min_size, Interval *recalled_before, int64 *total)
{
	CatalogUser cu;
	Oid			types[3] = {INT8OID, INT4OID, INTERVALOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', recalled_before ? ' ' : 'n'};
	List	   *oids = NIL;
	MemoryContext caller = CurrentMemoryContext;

	values[0] = Int64GetDatum(min_size);
	values[1] = Int32GetDatum(LOBLKSIZE);
	values[2] = recalled_before ? IntervalPGetDatum(recalled_before) : (Datum) 0;
	*total = 0;
	catalog_enter(&cu);
	catalog_exec("SELECT m.oid, s.size FROM pg_catalog.pg_largeobject_metadata m "
				 "  LEFT JOIN destor.lo_tiers t ON t.loid = m.oid::pg_catalog.int8, "
				 "  LATERAL (SELECT COALESCE((SELECT p.pageno::pg_catalog.int8 * $2 + pg_catalog.length(p.data) "
				 "     FROM pg_catalog.pg_largeobject p WHERE p.loid = m.oid "
				 "    ORDER BY p.pageno DESC LIMIT 1), 0) AS size) s "
				 " WHERE s.size >= $1 AND (t.loid IS NULL OR (t.recalled_at IS NOT NULL "
				 "   AND ($3 IS NULL OR t.recalled_at < pg_catalog.now() - $3))) "
				 " ORDER BY m.oid",
				 3, types, values, nulls, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext spi = MemoryContextSwitchTo(caller);

		oids = lappend_oid(oids, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																 SPI_tuptable->tupdesc, 1, &isnull)));
		*total += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		MemoryContextSwitchTo(spi);
	}
	catalog_leave(&cu);
	return oids;
}

/* Tier each large object of the list the caller may update: how many were. */
static int64
lo_tier_list(List *oids, const char *pool, int64 total)
{
	ListCell   *lc;
	int64		done = 0;

	progress_start("lo_tier_all", InvalidOid, pool);
	progress_set_totals(total, list_length(oids));
	progress_set_phase("tiering");
	foreach(lc, oids)
	{
		Oid			loid = lfirst_oid(lc);
		int64		n;

		CHECK_FOR_INTERRUPTS();
		/* unlinked meanwhile, or not the caller's to move: left alone */
		if (!LargeObjectExists(loid) || !lo_has_privilege(loid, ACL_UPDATE))
		{
			progress_add(0, 1);
			continue;
		}
		n = lo_tier_one(loid, pool);
		if (n >= 0)
			done++;
		progress_add(n > 0 ? n : 0, 1);
	}
	progress_end();
	return done;
}

Datum
destor_lo_tier_all(PG_FUNCTION_ARGS)
{
	Name		pool = PG_GETARG_NAME(0);
	int64		min_size = PG_GETARG_INT64(1);
	int64		total;
	List	   *oids;

	if (min_size < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_size must not be negative")));
	(void) pool_lookup(NameStr(*pool), true);
	oids = lo_candidates(min_size, NULL, &total);
	PG_RETURN_INT64(lo_tier_list(oids, NameStr(*pool), total));
}

/*
 * destor_apply_lo_tiering — the declared rules of destor.lo_tiering_policies:
 * for each pool, large objects of at least min_size bytes, never tiered or
 * recalled more than recalled_before ago, go there.  The maintenance worker
 * calls it every round.  Each rule runs in a subtransaction: one that fails
 * (a pool that is gone, a provider down) is a WARNING, its large objects
 * stay local, and the others still run.  How many were tiered.
 */
typedef struct LoRule
{
	const char *pool;
	int64		min_size;
	Interval   *recalled_before;
	int64		done;
} LoRule;

static void
lo_apply_rule(void *arg)
{
	LoRule	   *rule = (LoRule *) arg;
	int64		total;
	List	   *oids = lo_candidates(rule->min_size, rule->recalled_before, &total);

	rule->done = lo_tier_list(oids, rule->pool, total);
}

Datum
destor_apply_lo_tiering(PG_FUNCTION_ARGS)
{
	CatalogUser cu;
	List	   *pools = NIL,
			   *sizes = NIL,
			   *ages = NIL;
	ListCell   *pc,
			   *sc,
			   *ac;
	int64		done = 0;
	MemoryContext caller = CurrentMemoryContext;

	catalog_enter(&cu);
	catalog_exec("SELECT pool, min_size, recalled_before FROM destor.lo_tiering_policies ORDER BY pool",
				 0, NULL, NULL, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(caller);
		int64	   *size = palloc(sizeof(int64));
		Interval   *age = palloc(sizeof(Interval));

		pools = lappend(pools, pstrdup(NameStr(*DatumGetName(SPI_getbinval(tup, desc, 1, &isnull)))));
		*size = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		memcpy(age, DatumGetIntervalP(SPI_getbinval(tup, desc, 3, &isnull)), sizeof(Interval));
		sizes = lappend(sizes, size);
		ages = lappend(ages, age);
		MemoryContextSwitchTo(spi);
	}
	catalog_leave(&cu);
	forthree(pc, pools, sc, sizes, ac, ages)
	{
		LoRule		rule = {lfirst(pc), *(int64 *) lfirst(sc), lfirst(ac), 0};
		ErrorData  *error;

		CHECK_FOR_INTERRUPTS();
		/* each rule in a subtransaction: one that fails is a WARNING */
		if (catalog_try(lo_apply_rule, &rule, &error))
			done += rule.done;
		else
		{
			ereport(WARNING,
					(errcode(error->sqlerrcode),
					 errmsg("large-object tiering rule of pool \"%s\" failed: %s", rule.pool,
							error->message),
					 error->detail ? errdetail("%s", error->detail) : 0,
					 error->hint ? errhint("%s", error->hint) : 0));
			FreeErrorData(error);
		}
	}
	PG_RETURN_INT64(done);
}
