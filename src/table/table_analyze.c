/*
 * table_analyze.c — ANALYZE of destor tables: a sample of whole row groups,
 * picked at random, then reservoir sampling over their rows; the table is
 * not read in full unless it is small.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/vacuum.h"
#include "common/pg_prng.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "table_internal.h"

/*
 * destor_acquire_sample: the AcquireSampleRowsFunc.  Row groups are read in
 * random order until three times the sample size of live rows were seen;
 * totalrows is the catalog's count of live rows, not an extrapolation.
 */
static int
destor_acquire_sample(Relation rel, int elevel, HeapTuple *rows, int targrows,
					  double *totalrows, double *totaldeadrows)
{
	MemoryContext caller = CurrentMemoryContext;
	DestorScan *st;
	TupleDesc	desc = RelationGetDescr(rel);
	TableOptions *opts = table_get_options(RelationGetRelid(rel));
	List	   *segments;
	ListCell   *lc;
	double		live = 0;
	double		seen = 0;
	int			numrows = 0;
	Datum	   *values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(desc->natts, 1));

	segments = catalog_table_segments(opts->table_id, GetActiveSnapshot());
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);

		live += dir->row_count - dir->deleted_count;
	}
	st = whole_row_scan(rel, opts, segments);
	st->snapshot = GetActiveSnapshot();

	/* random order of row groups (Fisher-Yates) */
	for (int i = st->nunits - 1; i > 0; i--)
	{
		int			j = (int) pg_prng_uint64_range(&pg_global_prng_state, 0, i);
		DestorScanUnit tmp = st->units[i];

		st->units[i] = st->units[j];
		st->units[j] = tmp;
	}

	/* read row groups until we have seen three times the sample size */
	while (seen < 3.0 * targrows && next_rowgroup(st))
	{
		for (st->row = 0; st->row < st->rg_rows; st->row++)
		{
			MemoryContext old;

			if (!whole_row_current(st, values, nulls))
				continue;
			vacuum_delay_point();
			seen++;
			if (numrows < targrows)
			{
				old = MemoryContextSwitchTo(caller);
				rows[numrows++] = heap_form_tuple(desc, values, nulls);
				MemoryContextSwitchTo(old);
			}
			else
			{
				/* reservoir: replace a random earlier pick */
				int64		k = (int64) pg_prng_uint64_range(&pg_global_prng_state, 0, (uint64) seen - 1);

				if (k < targrows)
				{
					heap_freetuple(rows[k]);
					old = MemoryContextSwitchTo(caller);
					rows[k] = heap_form_tuple(desc, values, nulls);
					MemoryContextSwitchTo(old);
				}
			}
		}
	}
	whole_row_scan_end(st);

	*totalrows = live;
	*totaldeadrows = 0;
	ereport(elevel,
			(errmsg("\"%s\": sampled %d rows from %d of %d row groups; %.0f live rows",
					RelationGetRelationName(rel), numrows, st->unit, st->nunits, live)));
	return numrows;
}

bool
destorAnalyzeForeignTable(Relation relation, AcquireSampleRowsFunc *func, BlockNumber *totalpages)
{
	*func = destor_acquire_sample;
	*totalpages = 1;
	return true;
}
