/*
 * catalog_table.c — segments of destor tables in destor.segments.
 *
 * Kept with the table layer (not in src/catalog) because it needs the
 * table's own types; it uses the same run-as-bootstrap-superuser SPI
 * access as the rest of the catalog.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "destor/catalog.h"
#include "table_internal.h"

void
catalog_insert_segment(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no,
					   const uint8 object_id[CODEC_OBJID_LEN], int64 rows, bytea *directory)
{
	CatalogUser cu;
	Oid			types[5] = {UUIDOID, INT8OID, UUIDOID, INT8OID, BYTEAOID};
	Datum		values[5];

	catalog_enter(&cu);
	values[0] = object_id_datum(table_id);
	values[1] = Int64GetDatum(segment_no);
	values[2] = object_id_datum(object_id);
	values[3] = Int64GetDatum(rows);
	values[4] = PointerGetDatum(directory);
	catalog_exec("INSERT INTO destor.segments (table_id, segment_no, object_id, row_count, directory) "
				 "VALUES ($1, $2, $3, $4, $5)", 5, types, values, NULL, SPI_OK_INSERT);
	catalog_leave(&cu);
}

int64
catalog_next_segment_no(void)
{
	CatalogUser cu;
	int64		result;
	bool		isnull;

	catalog_enter(&cu);
	catalog_exec("SELECT nextval('destor.segment_no_seq')", 0, NULL, NULL, NULL, SPI_OK_SELECT);
	result = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	catalog_leave(&cu);
	return result;
}

/* Run a read-only query under the given snapshot (or a fresh one). */
static void
catalog_query(const char *sql, int nargs, Oid *types, Datum *values, Snapshot snapshot)
{
	SPIPlanPtr	plan;
	int			rc;

	if (snapshot == NULL)
	{
		catalog_exec(sql, nargs, types, values, NULL, SPI_OK_SELECT);
		return;
	}
	plan = SPI_prepare(sql, nargs, types);
	if (plan == NULL)
		elog(ERROR, "destor catalog query failed to prepare: %s", SPI_result_code_string(SPI_result));
	rc = SPI_execute_snapshot(plan, values, NULL, snapshot, InvalidSnapshot, true, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "destor catalog query failed: %s", SPI_result_code_string(rc));
}

/*
 * Every segment of a table, in segment order, with its directory parsed
 * and its deleted rows merged, all as one snapshot sees them: a scan and
 * the DELETE or UPDATE it feeds must agree on the list.
 */
List *
catalog_table_segments(const uint8 table_id[CODEC_OBJID_LEN], Snapshot snapshot)
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	MemoryContext caller = CurrentMemoryContext;
	List	   *result = NIL;
	ListCell   *lc;

	catalog_enter(&cu);
	values[0] = object_id_datum(table_id);
	catalog_query("SELECT segment_no, object_id, directory FROM destor.segments "
				  "WHERE table_id = $1 ORDER BY segment_no", 1, types, values, snapshot);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		segno = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		Datum		oid = SPI_getbinval(tup, desc, 2, &isnull);
		bytea	   *raw = DatumGetByteaPP(SPI_getbinval(tup, desc, 3, &isnull));
		MemoryContext old = MemoryContextSwitchTo(caller);
		SegmentDirectory *dir = segment_directory_parse(raw);

		dir->segment_no = segno;
		object_id_from_datum(oid, dir->object_id);
		result = lappend(result, dir);
		MemoryContextSwitchTo(old);
	}

	/* deleted rows: OR of every visible bitmap of each segment */
	catalog_query("SELECT segment_no, rows FROM destor.deletions WHERE table_id = $1 "
				  "ORDER BY segment_no", 1, types, values, snapshot);
	lc = list_head(result);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		segno = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		bytea	   *bits = DatumGetByteaPP(SPI_getbinval(tup, desc, 2, &isnull));
		SegmentDirectory *dir = NULL;
		size_t		need;
		size_t		len = VARSIZE_ANY_EXHDR(bits);
		const uint8 *p = (const uint8 *) VARDATA_ANY(bits);

		while (lc && ((SegmentDirectory *) lfirst(lc))->segment_no < segno)
			lc = lnext(result, lc);
		if (lc == NULL)
			break;
		dir = lfirst(lc);
		if (dir->segment_no != segno)
			continue;			/* deletions of a segment this snapshot lacks */
		need = (dir->row_count + 7) / 8;
		if (dir->deleted == NULL)
			dir->deleted = MemoryContextAllocZero(caller, Max(need, 1));
		for (size_t i = 0; i < Min(len, need); i++)
			dir->deleted[i] |= p[i];
	}
	foreach(lc, result)
	{
		SegmentDirectory *dir = lfirst(lc);

		if (dir->deleted)
			for (int64 i = 0; i < dir->row_count; i++)
				dir->deleted_count += (dir->deleted[i / 8] >> (i % 8)) & 1;
	}
	catalog_leave(&cu);
	return result;
}

/*
 * One statement's deletions of a segment's rows; successors (succ_len
 * bytes, or NULL): where an UPDATE put the new versions (see
 * destor.deletions).
 */
void
catalog_insert_deletions(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no,
						 const uint8 *bitmap, size_t len, const uint8 *successors,
						 size_t succ_len)
{
	CatalogUser cu;
	Oid			types[4] = {UUIDOID, INT8OID, BYTEAOID, BYTEAOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bytea	   *b = catalog_bytea(bitmap, len);

	catalog_enter(&cu);
	values[0] = object_id_datum(table_id);
	values[1] = Int64GetDatum(segment_no);
	values[2] = PointerGetDatum(b);
	values[3] = (Datum) 0;
	if (successors != NULL && succ_len > 0)
	{
		values[3] = PointerGetDatum(catalog_bytea(successors, succ_len));
	}
	else
		nulls[3] = 'n';
	catalog_exec("INSERT INTO destor.deletions (table_id, segment_no, rows, successors) "
				 "VALUES ($1, $2, $3, $4)", 4, types, values, nulls, SPI_OK_INSERT);
	catalog_leave(&cu);
}

int64
catalog_count_deletions(const uint8 table_id[CODEC_OBJID_LEN], Snapshot snapshot)
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	bool		isnull;
	int64		n;

	catalog_enter(&cu);
	values[0] = object_id_datum(table_id);
	catalog_query("SELECT count(*) FROM destor.deletions WHERE table_id = $1", 1, types, values,
				  snapshot);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	catalog_leave(&cu);
	return n;
}

int64
catalog_table_row_count(const uint8 table_id[CODEC_OBJID_LEN])
{
	/* prepared once: the planner asks it for every plan of a table USING destor */
	static SPIPlanPtr plan = NULL;
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	bool		isnull;
	Datum		d;
	int64		result;

	catalog_enter(&cu);
	values[0] = object_id_datum(table_id);
	catalog_exec_saved_at(&plan,
						  "SELECT (coalesce(sum(row_count), 0) - "
						  "(SELECT coalesce(sum(bit_count(rows)), 0) "
						  "   FROM destor.deletions WHERE table_id = $1))::bigint "
						  "FROM destor.segments WHERE table_id = $1",
						  1, types, values, SPI_OK_SELECT, InvalidSnapshot);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	result = isnull ? 0 : DatumGetInt64(d);
	catalog_leave(&cu);
	return result;
}

/* Remove a table's segment rows (and their objects' rows); returns the
 * object ids so that the caller schedules their shards for deletion. */
List *
catalog_delete_table_segments(const uint8 table_id[CODEC_OBJID_LEN])
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	MemoryContext caller = CurrentMemoryContext;
	List	   *result = NIL;

	catalog_enter(&cu);
	values[0] = object_id_datum(table_id);
	catalog_exec("DELETE FROM destor.deletions WHERE table_id = $1", 1, types, values, NULL,
				 SPI_OK_DELETE);
	catalog_exec("DELETE FROM destor.segments WHERE table_id = $1 RETURNING object_id",
				 1, types, values, NULL, SPI_OK_DELETE_RETURNING);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(caller);
		uint8	   *id = palloc(CODEC_OBJID_LEN);

		object_id_from_datum(d, id);
		result = lappend(result, id);	/* in the caller's context: SPI's goes away */
		MemoryContextSwitchTo(old);
	}
	catalog_leave(&cu);
	return result;
}

/* Remove a segment's rows and deletions from its table (not its object). */
void
catalog_delete_segment(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no)
{
	CatalogUser cu;
	Oid			types[2] = {UUIDOID, INT8OID};
	Datum		values[2];

	catalog_enter(&cu);
	values[0] = object_id_datum(table_id);
	values[1] = Int64GetDatum(segment_no);
	catalog_exec("DELETE FROM destor.deletions WHERE table_id = $1 AND segment_no = $2",
				 2, types, values, NULL, SPI_OK_DELETE);
	catalog_exec("DELETE FROM destor.segments WHERE table_id = $1 AND segment_no = $2",
				 2, types, values, NULL, SPI_OK_DELETE);
	catalog_leave(&cu);
}

/* Retire a segment's object, which it no longer names. */
static void
catalog_retire_object(const uint8 object_id[CODEC_OBJID_LEN])
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];

	catalog_enter(&cu);
	values[0] = object_id_datum(object_id);
	catalog_exec("DELETE FROM destor.objects WHERE object_id = $1", 1, types, values,
				 NULL, SPI_OK_DELETE);
	catalog_exec("INSERT INTO destor.retired (object_id) VALUES ($1) ON CONFLICT DO NOTHING",
				 1, types, values, NULL, SPI_OK_INSERT);
	catalog_leave(&cu);
}

/*
 * A new version of a segment (VACUUM's rewrite): same number and rows, a
 * new object; the old object is retired, as compaction's are (readers with
 * older snapshots may still read it).  The deletions stay: they name the
 * same rows.  With new_object_id the old one, only the directory changes.
 */
void
catalog_replace_segment(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no,
						const uint8 old_object_id[CODEC_OBJID_LEN],
						const uint8 new_object_id[CODEC_OBJID_LEN], bytea *directory)
{
	CatalogUser cu;
	Oid			types[5] = {UUIDOID, INT8OID, UUIDOID, UUIDOID, BYTEAOID};
	Datum		values[5];

	catalog_enter(&cu);
	values[0] = object_id_datum(table_id);
	values[1] = Int64GetDatum(segment_no);
	values[2] = object_id_datum(old_object_id);
	values[3] = object_id_datum(new_object_id);
	values[4] = PointerGetDatum(directory);
	catalog_exec("UPDATE destor.segments SET object_id = $4, directory = $5 "
				 "WHERE table_id = $1 AND segment_no = $2 AND object_id = $3",
				 5, types, values, NULL, SPI_OK_UPDATE);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not rewrite destor segment " INT64_FORMAT ": it changed meanwhile",
						segment_no)));
	catalog_leave(&cu);
	if (memcmp(old_object_id, new_object_id, CODEC_OBJID_LEN) != 0)
		catalog_retire_object(old_object_id);
}

/* Take a segment out of its table; its object is retired, not deleted
 * (readers with older snapshots may still read it). */
void
catalog_retire_segment(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no,
					   const uint8 object_id[CODEC_OBJID_LEN])
{
	catalog_delete_segment(table_id, segment_no);
	catalog_retire_object(object_id);
}

/* ---------------------------------------------------------------------------
 * Table identity: destor.tables binds each table_id to the one relation
 * that owns its data (see table_options.c for the rules).
 * ------------------------------------------------------------------------- */

/* The table_id bound to a relation; false if none is. */
bool
catalog_table_id_of_rel(Oid relid, uint8 table_id[CODEC_OBJID_LEN])
{
	CatalogUser cu;
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	bool		found;

	catalog_enter(&cu);
	values[0] = ObjectIdGetDatum(relid);
	catalog_exec("SELECT table_id FROM destor.tables WHERE relid = $1", 1, types, values, NULL,
				 SPI_OK_SELECT);
	found = SPI_processed > 0;
	if (found)
	{
		bool		isnull;

		object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							 table_id);
	}
	catalog_leave(&cu);
	return found;
}

/* The relation a table_id is bound to; false if none.  *has_data: does the
 * id have segments or deletions? */
bool
catalog_rel_of_table_id(const uint8 table_id[CODEC_OBJID_LEN], Oid *relid, bool *has_data)
{
	CatalogUser cu;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	bool		found;
	bool		isnull;

	catalog_enter(&cu);
	values[0] = object_id_datum(table_id);
	catalog_exec("SELECT relid FROM destor.tables WHERE table_id = $1", 1, types, values, NULL,
				 SPI_OK_SELECT);
	found = SPI_processed > 0;
	if (found)
		*relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												1, &isnull));
	catalog_exec("SELECT EXISTS (SELECT FROM destor.segments WHERE table_id = $1) "
				 "OR EXISTS (SELECT FROM destor.deletions WHERE table_id = $1)",
				 1, types, values, NULL, SPI_OK_SELECT);
	*has_data = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	catalog_leave(&cu);
	return found;
}

/* Bind table_id to relid, replacing whatever either was bound to. */
void
catalog_bind_table(const uint8 table_id[CODEC_OBJID_LEN], Oid relid)
{
	CatalogUser cu;
	Oid			types[2] = {UUIDOID, OIDOID};
	Datum		values[2];

	catalog_enter(&cu);
	values[0] = object_id_datum(table_id);
	values[1] = ObjectIdGetDatum(relid);
	catalog_exec("DELETE FROM destor.tables WHERE table_id = $1 OR relid = $2", 2, types, values,
				 NULL, SPI_OK_DELETE);
	catalog_exec("INSERT INTO destor.tables (table_id, relid) VALUES ($1, $2)", 2, types, values,
				 NULL, SPI_OK_INSERT);
	catalog_leave(&cu);
}
