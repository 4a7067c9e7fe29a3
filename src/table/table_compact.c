/*
 * table_compact.c — destor.compact(table): rewrite small segments and segments with many deleted rows
 * into full ones.  Readers are not blocked (they keep reading the old
 * segments under their snapshots); the old objects are retired, not
 * deleted, and destor.cleanup_orphans() removes their shards once the
 * grace period has passed.  DELETE/UPDATE wait (same lock as theirs).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_class.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "destor/progress.h"
#include "table_internal.h"

PG_FUNCTION_INFO_V1(destor_compact);

/*
 * destor_compact: chooses segments with more than a fifth of their rows
 * deleted, and segments under half full when there are two or more; copies
 * their live rows into new segments and retires the old ones.  Returns
 * (segments before, segments after, rows kept, rows dropped).
 */
Datum
destor_compact(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Relation	rel;
	TableOptions *opts;
	List	   *segments;
	List	   *chosen = NIL;
	List	   *small = NIL;
	ListCell   *lc;
	int64		kept = 0;
	int64		dropped = 0;
	int			written_before;
	int			written_after;
	TupleDesc	tupdesc;
	Datum		result[4];
	bool		nulls[4] = {false, false, false, false};

	/* ownership first: a role that may not compact must not queue for the lock */
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)),
					   get_rel_name(relid));
	rel = relation_open(relid, ShareUpdateExclusiveLock);
	if (rel->rd_rel->relkind != RELKIND_FOREIGN_TABLE ||
		strcmp(GetForeignDataWrapper(GetForeignServer(GetForeignTable(relid)->serverid)->fdwid)->fdwname,
			   "destor") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a destor table", RelationGetRelationName(rel))));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_FOREIGN_TABLE, RelationGetRelationName(rel));
	opts = table_get_options(relid);

	/* after the lock: a fresh look at the segments */
	segments = catalog_table_segments(opts->table_id, NULL);
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);
		int64		live = dir->row_count - dir->deleted_count;

		if (dir->deleted_count * 5 > dir->row_count)
			chosen = lappend(chosen, dir);		/* more than 20% deleted */
		else if (live < opts->segment_rows / 2)
			small = lappend(small, dir);
	}
	if (list_length(small) >= 2)
		chosen = list_concat(chosen, small);

	written_before = list_length(segments);
	if (chosen != NIL)
	{
		SegmentWriter *w;
		DestorScan *st;
		Datum	   *values;
		bool	   *isnull;
		int64		rows_total = 0;

		foreach(lc, chosen)
			rows_total += ((SegmentDirectory *) lfirst(lc))->row_count;
		progress_start("compact", relid, NULL);
		progress_set_totals(-1, rows_total);
		progress_set_phase("rewriting segments");
		w = segment_writer_create(rel, opts);
		st = whole_row_scan(rel, opts, chosen);
		values = palloc(sizeof(Datum) * Max(st->natts, 1));
		isnull = palloc(sizeof(bool) * Max(st->natts, 1));

		while (next_rowgroup(st))
		{
			for (st->row = 0; st->row < st->rg_rows; st->row++)
			{
				if (whole_row_current(st, values, isnull))
				{
					segment_writer_add(w, values, isnull);
					kept++;
				}
				else
					dropped++;
			}
			progress_add(0, st->rg_rows);
			CHECK_FOR_INTERRUPTS();
		}
		whole_row_scan_end(st);
		progress_set_phase("writing the last segment");
		segment_writer_finish(w);
		foreach(lc, chosen)
		{
			SegmentDirectory *dir = lfirst(lc);

			catalog_retire_segment(opts->table_id, dir->segment_no, dir->object_id);
		}
		progress_end();
	}
	written_after = list_length(catalog_table_segments(opts->table_id, NULL));
	relation_close(rel, NoLock);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	result[0] = Int32GetDatum(written_before);
	result[1] = Int32GetDatum(written_after);
	result[2] = Int64GetDatum(kept);
	result[3] = Int64GetDatum(dropped);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, result, nulls)));
}
