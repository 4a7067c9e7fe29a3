/*
 * rotate_keys.c — destor.rotate_master_key(): re-wrap every object's data
 * key under the new master key, without moving a byte on any provider.
 *
 * The server is configured for the rotation first (destor.master_key_file:
 * the new key, destor.previous_master_key_file: the old one; see
 * src/object/key_rotation.c for why), so sessions read objects of either
 * generation and wrap new ones under the new key while this runs.  The
 * catalog is walked in object id order, a batch of rows at a time: each
 * row still wrapped by the old key is re-wrapped and updated in one
 * statement per batch.  Everything happens in the caller's transaction: an
 * interrupted rotation (cancel, crash, kill -9) is rolled back whole and the
 * next call starts again; with max_keys a caller commits a large rotation in
 * pieces, each call carrying on where the committed ones stopped, since a
 * row once re-wrapped carries the new key's fingerprint and is passed over.
 * Returns the number of data keys re-wrapped.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "destor/catalog.h"
#include "destor/lease.h"
#include "destor/object.h"
#include "destor/progress.h"

PG_FUNCTION_INFO_V1(destor_rotate_master_key);

#define ROTATE_BATCH	1000	/* rows read and updated per statement */

/* How many objects still wait for the new key (for destor.progress). */
static int64
count_to_rotate(bytea *new_id)
{
	CatalogUser cu;
	Oid			types[1] = {BYTEAOID};
	Datum		values[1] = {PointerGetDatum(new_id)};
	bool		isnull;
	int64		n;

	catalog_enter(&cu);
	catalog_exec("SELECT count(*) FROM destor.objects WHERE key_id <> $1",
				 1, types, values, NULL, SPI_OK_SELECT);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	catalog_leave(&cu);
	return n;
}

/*
 * rotate_batch — re-wrap up to limit data keys of objects after *last (all
 * objects when *have_last is false) that the new key does not wrap yet;
 * *last becomes the last object id seen.  Returns the rows updated; *seen
 * the rows read (0: nothing is left).
 */
static int64
rotate_batch(const KeyRotation *kr, bytea *new_id, uint8 last[CODEC_OBJID_LEN],
			 bool *have_last, int limit, int *seen)
{
	CatalogUser cu;
	Oid			sel_types[3] = {UUIDOID, BYTEAOID, INT4OID};
	Datum		sel_values[3];
	char		sel_nulls[3] = {' ', ' ', ' '};
	Oid			upd_types[4] = {UUIDARRAYOID, BYTEAARRAYOID, BYTEAOID, BYTEAOID};
	Datum		upd_values[4];
	Datum	   *ids;
	Datum	   *wrapped;
	bytea	   *old_id = NULL;
	int			n;
	int64		updated = 0;

	catalog_enter(&cu);
	if (*have_last)
		sel_values[0] = object_id_datum(last);
	else
	{
		sel_values[0] = (Datum) 0;
		sel_nulls[0] = 'n';
	}
	sel_values[1] = PointerGetDatum(new_id);
	sel_values[2] = Int32GetDatum(limit);
	catalog_exec("SELECT object_id, key_version, key_id, wrapped_key FROM destor.objects "
				 "WHERE ($1 IS NULL OR object_id > $1) AND key_id <> $2 "
				 "ORDER BY object_id LIMIT $3",
				 3, sel_types, sel_values, sel_nulls, SPI_OK_SELECT);
	n = (int) SPI_processed;
	*seen = n;
	if (n == 0)
	{
		catalog_leave(&cu);
		return 0;
	}

	ids = palloc(sizeof(Datum) * n);
	wrapped = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		uint8		id[CODEC_OBJID_LEN];
		int			key_version;
		bytea	   *key_id;
		bytea	   *wk;
		uint8		out[CODEC_WRAPPED_KEY_LEN];

		CHECK_FOR_INTERRUPTS();
		object_id_from_datum(SPI_getbinval(tup, desc, 1, &isnull), id);
		key_version = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		key_id = DatumGetByteaPP(SPI_getbinval(tup, desc, 3, &isnull));
		wk = DatumGetByteaPP(SPI_getbinval(tup, desc, 4, &isnull));
		if (VARSIZE_ANY_EXHDR(key_id) != CODEC_KEY_FINGERPRINT_LEN ||
			VARSIZE_ANY_EXHDR(wk) != CODEC_WRAPPED_KEY_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("object %s has a malformed key in the catalog", object_id_text(id))));
		key_rotation_rewrap(kr, id, key_version, (const uint8 *) VARDATA_ANY(key_id),
							(const uint8 *) VARDATA_ANY(wk), out);
		if (old_id == NULL)
			old_id = catalog_bytea(VARDATA_ANY(key_id), CODEC_KEY_FINGERPRINT_LEN);
		ids[i] = object_id_datum(id);
		wrapped[i] = PointerGetDatum(catalog_bytea(out, CODEC_WRAPPED_KEY_LEN));
		memcpy(last, id, CODEC_OBJID_LEN);
	}
	*have_last = true;

	/*
	 * Only rows still wrapped by the old key: a row another rotation
	 * re-wrapped meanwhile (READ COMMITTED rechecks the condition on the
	 * updated row), or an object deleted meanwhile, is passed over.
	 */
	upd_values[0] = PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false,
													TYPALIGN_CHAR));
	upd_values[1] = PointerGetDatum(construct_array(wrapped, n, BYTEAOID, -1, false,
													TYPALIGN_INT));
	upd_values[2] = PointerGetDatum(old_id);
	upd_values[3] = PointerGetDatum(new_id);
	catalog_exec("UPDATE destor.objects o SET key_id = $4, wrapped_key = v.w "
				 "FROM unnest($1, $2) AS v(id, w) "
				 "WHERE o.object_id = v.id AND o.key_id = $3",
				 4, upd_types, upd_values, NULL, SPI_OK_UPDATE);
	updated = (int64) SPI_processed;
	catalog_leave(&cu);
	return updated;
}

Datum
destor_rotate_master_key(PG_FUNCTION_ARGS)
{
	char	   *path;
	int64		max_keys = PG_ARGISNULL(1) ? PG_INT64_MAX : PG_GETARG_INT64(1);
	MemoryContext batchcxt;
	MemoryContext old;
	KeyRotation *kr;
	bytea	   *new_id;
	uint8		last[CODEC_OBJID_LEN];
	bool		have_last = false;
	int64		total = 0;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser to rotate the master key")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("new_key_file must not be null")));
	path = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (max_keys < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_keys must not be negative")));
	if (!is_absolute_path(path))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("new master key file \"%s\" is not an absolute path", path),
				 errhint("destor.master_key_file names the file by its absolute path; pass the same path.")));

	/* the keys live in this context and are wiped when it goes */
	batchcxt = AllocSetContextCreate(CurrentMemoryContext, "destor key rotation",
									 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(batchcxt);
	kr = key_rotation_begin(path);
	MemoryContextSwitchTo(old);
	new_id = catalog_bytea(key_rotation_new_key_id(kr), CODEC_KEY_FINGERPRINT_LEN);

	progress_start("rotate_master_key", InvalidOid, NULL);
	progress_set_totals(-1, count_to_rotate(new_id));
	progress_set_phase("re-wrapping data keys");
	while (total < max_keys)
	{
		MemoryContext rowcxt = AllocSetContextCreate(batchcxt, "destor key rotation batch",
													 ALLOCSET_DEFAULT_SIZES);
		int			seen;
		int64		done;

		old = MemoryContextSwitchTo(rowcxt);
		done = rotate_batch(kr, new_id, last, &have_last,
							(int) Min((int64) ROTATE_BATCH, max_keys - total), &seen);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(rowcxt);
		total += done;
		progress_add(0, seen);
		if (seen == 0)
			break;
	}
	/*
	 * The writer leases this database holds are signed by a master key too;
	 * signed again under the new one, they still verify once the previous
	 * key is deleted.  Only when the whole catalog is done: a call bounded
	 * by max_keys leaves that to the last one.
	 */
	if (total < max_keys)
	{
		CatalogUser cu;

		progress_set_phase("signing writer leases");
		(void) lease_resign_held();

		/*
		 * The pools' metadata logs were written under the previous key:
		 * once it is deleted, recovery could decode nothing logged before
		 * the rotation.  Each pool this database writes logs its whole
		 * catalog again, under the new key (log_snapshot), in this
		 * transaction.
		 */
		progress_set_phase("logging the catalog under the new key");
		catalog_enter(&cu);
		catalog_exec("SELECT destor.log_snapshot(s.srvname) FROM pg_catalog.pg_foreign_server s"
					 " JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw"
					 " WHERE w.fdwname = 'destor' AND NOT EXISTS (SELECT FROM pg_catalog.unnest(s.srvoptions) o"
					 "   WHERE o = 'mode=read_only')"
					 "   AND EXISTS (SELECT FROM destor.objects ob WHERE ob.pool = s.srvname)",
					 0, NULL, NULL, NULL, SPI_OK_SELECT);
		catalog_leave(&cu);
	}
	progress_end();
	MemoryContextDelete(batchcxt);	/* wipes the keys */
	PG_RETURN_INT64(total);
}
