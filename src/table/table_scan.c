/*
 * table_scan.c — reading destor tables: executor scans (serial and parallel)
 * and whole-row scans outside the executor (ANALYZE, compaction).
 *
 * A scan reads only the columns a query references, and only the segments
 * and row groups whose min/max/null statistics (in the catalog) do not
 * refute the query's conditions; the proof is the planner's own
 * predicate_refuted_by, as in Citus columnar.  Remaining conditions are
 * checked by the executor.  The row groups that survive are the scan's
 * units; a parallel scan hands them out from a shared counter, a batch's
 * worth at a time.  Each row group's column chunks come from the cache
 * (decompressed) or are fetched with the other row groups of their batch
 * (table_fetch.c), then decoded into per-column arrays that rows are
 * assembled from.
 */
#include "postgres.h"

#include "access/parallel.h"
#include "port/pg_bitutils.h"
#include "access/sysattr.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/typcache.h"

#include "destor/cache.h"
#include "destor/catalog.h"
#include "table_internal.h"

/* Shared by the participants of a parallel scan: the next row group, and
 * the workers' counters for EXPLAIN ANALYZE. */
typedef struct SharedScan
{
	pg_atomic_uint32 next_unit;
	uint32		claim_size;		/* units a participant claims at a time */
	pg_atomic_uint64 rgs_read;
	pg_atomic_uint64 requests;
	pg_atomic_uint64 bytes;
	pg_atomic_uint64 degraded;
	pg_atomic_uint64 hedged;
	pg_atomic_uint64 chunks_read;
	pg_atomic_uint64 chunks_cached;
} SharedScan;

/* The constraint "stats allow col's values" as an expression, or NULL. */
static Node *
column_constraint(DestorScan *st, AttrNumber attnum, const char *min, const char *max,
				  uint64 nulls, uint64 rows)
{
	ColumnCodec *cc = &st->codecs[attnum - 1];
	TypeCacheEntry *tce;
	Var		   *var;
	Expr	   *arg;
	NullTest   *nt;
	Node	   *range = NULL;

	if (cc->dropped || !cc->has_cmp || cc->typid != cc->basetype)
		return NULL;
	var = makeVar(st->scanrelid, attnum, cc->typid, cc->typmod, cc->collation, 0);
	arg = (Expr *) var;
	if (min && max)
	{
		Oid			opintype;
		Oid			ge;
		Oid			le;
		Const	   *cmin;
		Const	   *cmax;

		tce = lookup_type_cache(cc->typid, TYPECACHE_BTREE_OPFAMILY);
		if (!OidIsValid(tce->btree_opf))
			return NULL;

		/*
		 * A type compared through a binary-compatible opclass (varchar via
		 * text) appears in quals relabeled to the opclass type: match that.
		 */
		opintype = OidIsValid(tce->btree_opintype) ? tce->btree_opintype : cc->typid;
		if (opintype != cc->typid)
			arg = (Expr *) makeRelabelType((Expr *) var, opintype, -1, cc->collation,
										   COERCE_IMPLICIT_CAST);
		ge = get_opfamily_member(tce->btree_opf, opintype, opintype, BTGreaterEqualStrategyNumber);
		le = get_opfamily_member(tce->btree_opf, opintype, opintype, BTLessEqualStrategyNumber);
		if (!OidIsValid(ge) || !OidIsValid(le))
			return NULL;
		cmin = makeConst(opintype, opintype == cc->typid ? cc->typmod : -1, cc->collation, cc->typlen,
						 InputFunctionCall(&cc->in, (char *) min, cc->ioparam, cc->typmod),
						 false, cc->typbyval);
		cmax = makeConst(opintype, opintype == cc->typid ? cc->typmod : -1, cc->collation, cc->typlen,
						 InputFunctionCall(&cc->in, (char *) max, cc->ioparam, cc->typmod),
						 false, cc->typbyval);
		range = (Node *) make_andclause(list_make2(
			make_opclause(ge, BOOLOID, false, arg, (Expr *) cmin, InvalidOid, cc->collation),
			make_opclause(le, BOOLOID, false, (Expr *) copyObject(arg), (Expr *) cmax, InvalidOid,
						  cc->collation)));
	}
	nt = makeNode(NullTest);
	nt->arg = (Expr *) copyObject(var);
	nt->argisrow = false;
	nt->location = -1;
	if (nulls == 0)
	{
		nt->nulltesttype = IS_NOT_NULL;
		return range ? (Node *) make_andclause(list_make2(range, nt)) : (Node *) nt;
	}
	if (nulls >= rows)
	{
		nt->nulltesttype = IS_NULL;
		return (Node *) nt;
	}
	if (range == NULL)
		return NULL;
	nt->nulltesttype = IS_NULL;
	return (Node *) make_orclause(list_make2(range, nt));
}

/* True if the quals prove no row of this segment (rg < 0) or row group matches. */
bool
stats_refute(DestorScan *st, List *quals, Bitmapset *qual_attrs, SegmentDirectory *dir, int rg)
{
	List	   *constraints = NIL;
	int			x = -1;

	if (quals == NIL)
		return false;
	while ((x = bms_next_member(qual_attrs, x)) >= 0)
	{
		AttrNumber	a = x + FirstLowInvalidHeapAttributeNumber;
		Node	   *c;

		if (a <= 0 || a > dir->ncols || a > st->natts)
			continue;
		if (dir->typids[a - 1] != st->codecs[a - 1].typid)
			continue;
		if (rg < 0)
			c = column_constraint(st, a, dir->seg_min[a - 1], dir->seg_max[a - 1],
								  dir->seg_nulls[a - 1], dir->row_count);
		else
		{
			int			idx = rg * dir->ncols + (a - 1);

			c = column_constraint(st, a, dir->rg_min[idx], dir->rg_max[idx],
								  dir->chunks[idx].null_count, dir->rg_rows[rg]);
		}
		if (c)
			constraints = lappend(constraints, c);
	}
	return constraints != NIL && predicate_refuted_by(constraints, quals, false);
}

/*
 * destorBeginForeignScan: set up the column codecs and contexts, and plan the
 * reads: the segments the query's snapshot sees (with the pending changes of
 * a statement of this backend that the snapshot must see), minus those and
 * the row groups that the statistics prove hold no matching row.
 */
void
destorBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *plan = (ForeignScan *) node->ss.ps.plan;
	DestorScan  *st = palloc0(sizeof(DestorScan));
	Relation	rel = node->ss.ss_currentRelation;
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *attnums = list_nth(plan->fdw_private, FdwScanPrivateAttnums);
	bool		wholerow = boolVal(list_nth(plan->fdw_private, FdwScanPrivateWholeRow));
	List	   *quals = plan->fdw_exprs;
	Bitmapset  *qual_attrs = NULL;
	List	   *segments;
	ListCell   *lc;
	int			cap = 0;
	int			guclevel;

	node->fdw_state = st;
	st->rel = rel;
	st->opts = table_get_options(RelationGetRelid(rel));
	st->natts = desc->natts;
	st->scanrelid = plan->scan.scanrelid;
	st->codecs = palloc0(sizeof(ColumnCodec) * Max(st->natts, 1));
	st->needed = palloc0(sizeof(bool) * Max(st->natts, 1));
	for (int i = 0; i < st->natts; i++)
	{
		column_codec_init(&st->codecs[i], TupleDescAttr(desc, i));
		st->needed[i] = wholerow && !st->codecs[i].dropped;
	}
	foreach(lc, attnums)
		if (lfirst_int(lc) <= st->natts)
			st->needed[lfirst_int(lc) - 1] = true;
	/* scan callbacks run in a per-tuple context: keep state in longer ones */
	st->segcxt = AllocSetContextCreate(node->ss.ps.state->es_query_cxt, "destor scan segment",
									   ALLOCSET_DEFAULT_SIZES);
	st->rgcxt = AllocSetContextCreate(node->ss.ps.state->es_query_cxt, "destor scan row group",
									  ALLOCSET_DEFAULT_SIZES);
	st->values = palloc0(sizeof(Datum *) * Max(st->natts, 1));
	st->nulls = palloc0(sizeof(bool *) * Max(st->natts, 1));
	st->loaded = palloc0(sizeof(int) * Max(st->natts, 1));
	pull_varattnos((Node *) quals, st->scanrelid, &qual_attrs);

	/* plan the reads: which segments and row groups survive the statistics
	 * (their text forms read under the settings they were written with) */
	guclevel = text_io_enter();
	/* the query's snapshot: an UPDATE or DELETE reads the same list */
	st->snapshot = node->ss.ps.state->es_snapshot;
	segments = catalog_table_segments(st->opts->table_id, st->snapshot);
	if (modify_in_progress(RelationGetRelid(rel)))
	{
		List	   *before = segments;

		segments = add_pending_changes(rel, st->snapshot, segments,
									   ExecRelationIsTargetRelation(node->ss.ps.state,
																	st->scanrelid));

		/*
		 * Only this backend knows the changes: a parallel plan (one cached
		 * before the statement began; planning offers none meanwhile) is
		 * read by the leader alone, workers get no row group.  That needs
		 * a leader that runs the scan.
		 */
		if (segments != before && plan->scan.plan.parallel_aware)
		{
			if (!parallel_leader_participation || force_parallel_mode != FORCE_PARALLEL_OFF)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot scan destor table \"%s\" in parallel while a statement that calls the scan modifies it",
								RelationGetRelationName(rel)),
						 errhint("Set max_parallel_workers_per_gather to 0 for this statement.")));
			st->leader_only = true;
		}
	}
	if (list_length(segments) >= TABLE_MAX_SEGMENTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("destor table \"%s\" has too many segments (%d)",
						RelationGetRelationName(rel), list_length(segments)),
				 errhint("Merge small segments with destor.compact().")));
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);
		int64		first_row = 0;

		st->segs_total++;
		st->rgs_total += dir->nrowgroups;
		if (stats_refute(st, quals, qual_attrs, dir, -1))
		{
			st->segs_pruned++;
			st->rgs_pruned += dir->nrowgroups;
			continue;
		}
		for (int g = 0; g < dir->nrowgroups; first_row += dir->rg_rows[g], g++)
		{
			if (dir->nrowgroups > 1 && stats_refute(st, quals, qual_attrs, dir, g))
			{
				st->rgs_pruned++;
				continue;
			}
			if (st->nunits == cap)
			{
				cap = Max(16, cap * 2);
				st->units = st->units ? repalloc(st->units, sizeof(DestorScanUnit) * cap) :
					palloc(sizeof(DestorScanUnit) * cap);
			}
			st->units[st->nunits].dir = dir;
			st->units[st->nunits].rg = g;
			st->units[st->nunits].seg_index = foreach_current_index(lc);
			st->units[st->nunits].first_row = first_row;
			st->nunits++;
		}
	}
	text_io_leave(guclevel);
}

/*
 * A column's value and null arrays and its decompressed chunk, kept from
 * row group to row group in the scan's longer-lived context.  A fresh set
 * per row group (80 kB of Datums for 10,000 float8s, and the chunk) went
 * back to the C library at each row group's reset and was faulted in again
 * at the next: half of a warm scan's time.
 */
typedef struct ScanColumnBuffers
{
	Datum	   *values;
	bool	   *nulls;
	uint32		rows;			/* capacity of values and nulls */
	char	   *raw;
	Size		raw_size;
} ScanColumnBuffers;

static ScanColumnBuffers *
scan_column_buffers(DestorScan *st, int att)
{
	if (st->bufs == NULL)
		st->bufs = MemoryContextAllocZero(MemoryContextGetParent(st->rgcxt),
										  sizeof(ScanColumnBuffers) * Max(st->natts, 1));
	return &st->bufs[att];
}

/* st->values[att] and st->nulls[att], room for n rows */
static void
scan_column_arrays(DestorScan *st, int att, uint32 n)
{
	ScanColumnBuffers *b = scan_column_buffers(st, att);

	if (b->rows < Max(n, 1))
	{
		MemoryContext cxt = MemoryContextGetParent(st->rgcxt);

		if (b->values)
		{
			pfree(b->values);
			pfree(b->nulls);
		}
		b->values = MemoryContextAllocHuge(cxt, sizeof(Datum) * Max(n, 1));
		b->nulls = MemoryContextAllocHuge(cxt, sizeof(bool) * Max(n, 1));
		b->rows = Max(n, 1);
	}
	st->values[att] = b->values;
	st->nulls[att] = b->nulls;
}

/* A buffer for a column's decompressed chunk of size bytes, valid until the next row group. */
char *
scan_chunk_buffer(DestorScan *st, int att, Size size)
{
	ScanColumnBuffers *b = scan_column_buffers(st, att);

	if (b->raw_size < Max(size, 1))
	{
		if (b->raw)
			pfree(b->raw);
		b->raw = MemoryContextAllocHuge(MemoryContextGetParent(st->rgcxt), Max(size, 1));
		b->raw_size = Max(size, 1);
	}
	return b->raw;
}

/* Decode a row group's column from its decompressed chunk (left as it is). */
/*
 * load_column: the row group's values and nulls of one column, into
 * st->values[att] and st->nulls[att] (allocated in the current context).
 * Fixed-width by-value and raw varlena chunks decode in tight loops; other
 * types go through their text form.
 */
static void
load_column(DestorScan *st, SegmentDirectory *dir, int rg, int att, char *raw)
{
	ChunkEntry *e = &dir->chunks[rg * dir->ncols + att];
	uint32		n = dir->rg_rows[rg];
	const uint8 *p;
	const uint8 *end;
	uint32		bitmap_len = (n + 7) / 8;

	if (e->raw_length < bitmap_len)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a column chunk of destor table \"%s\" is truncated",
						RelationGetRelationName(st->rel))));
	scan_column_arrays(st, att, n);
	p = (const uint8 *) raw + bitmap_len;
	end = (const uint8 *) raw + e->raw_length;
	if (e->kind == VALUE_FIXED && st->codecs[att].kind == VALUE_FIXED && st->codecs[att].typbyval)
	{
		/* the common case (integers, floats, timestamps): a tight loop */
		int16		len = st->codecs[att].typlen;
		Datum	   *vals = st->values[att];
		bool	   *isnull = st->nulls[att];

		if ((uint64) (end - p) < (uint64) (n - e->null_count) * len)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("a column chunk of destor table \"%s\" is truncated",
							RelationGetRelationName(st->rel))));
		for (uint32 r = 0; r < n; r++)
		{
			Datum		aligned = 0;

			isnull[r] = e->null_count > 0 && ((raw[r / 8] >> (r % 8)) & 1);
			if (isnull[r])
			{
				vals[r] = (Datum) 0;
				continue;
			}
			memcpy(&aligned, p, len);
			vals[r] = fetch_att(&aligned, true, len);
			p += len;
		}
		return;
	}
	if (e->kind == VALUE_VARLENA && st->codecs[att].kind == VALUE_VARLENA)
	{
		/*
		 * Text, numeric, bytea, arrays, ranges, jsonb...: each value is a
		 * 4-byte length and its bytes.  The values are copied into one
		 * buffer (of the row group's context), each at a MAXALIGN'ed
		 * offset: PostgreSQL reads a varlena through its struct (arrays
		 * align their elements, ranges their bounds, numerics their
		 * digits relative to the value's start), so a value used where it
		 * lies in the chunk, at whatever offset the values before it left,
		 * reads back wrong or crashes the server.
		 */
		Datum	   *vals = st->values[att];
		bool	   *isnull = st->nulls[att];
		Size		cap = (Size) (end - p) + (Size) n * MAXIMUM_ALIGNOF;
		char	   *out = MemoryContextAllocHuge(CurrentMemoryContext, Max(cap, 1));
		char	   *o = (char *) MAXALIGN(out);

		for (uint32 r = 0; r < n; r++)
		{
			uint32		vlen;

			isnull[r] = e->null_count > 0 && ((raw[r / 8] >> (r % 8)) & 1);
			if (isnull[r])
			{
				vals[r] = (Datum) 0;
				continue;
			}
			if (end - p < 4)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("a column chunk of destor table \"%s\" is truncated",
								RelationGetRelationName(st->rel))));
			vlen = (uint32) p[0] | ((uint32) p[1] << 8) | ((uint32) p[2] << 16) | ((uint32) p[3] << 24);
			if ((uint64) (end - p - 4) < vlen || vlen > MaxAllocSize - VARHDRSZ)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("a column chunk of destor table \"%s\" is truncated",
								RelationGetRelationName(st->rel))));
			Assert(o + VARHDRSZ + vlen <= out + cap);
			SET_VARSIZE(o, vlen + VARHDRSZ);
			memcpy(VARDATA(o), p + 4, vlen);
			vals[r] = PointerGetDatum(o);
			o += MAXALIGN(VARHDRSZ + vlen);
			p += 4 + vlen;
		}
		return;
	}
	for (uint32 r = 0; r < n; r++)
	{
		bool		isnull = e->null_count > 0 && ((raw[r / 8] >> (r % 8)) & 1);

		st->nulls[att][r] = isnull;
		st->values[att][r] = isnull ? (Datum) 0 :
			value_decode(&st->codecs[att], (ValueKind) e->kind, &p, end);
	}
}

static void check_column_type(DestorScan *st, SegmentDirectory *dir, int a);

/* The reader of a segment's object, opened once while the scan reads it. */
static void
scan_open_segment(DestorScan *st, SegmentDirectory *dir)
{
	ObjectMeta *meta;
	MemoryContext old;

	if (dir == st->cur_dir)
		return;
	if (st->reader)
	{
		ObjectReadStats before = object_read_stats;

		object_reader_close(st->reader);	/* (a read-ahead dropped counts) */
		scan_stats_since(st, &before);
	}
	st->reader = NULL;
	st->cur_dir = NULL;
	st->batch = NULL;			/* its bytes came from the old reader */
	MemoryContextReset(st->segcxt);
	old = MemoryContextSwitchTo(st->segcxt);
	/* read-only and under the scan's snapshot: a cursor reads on after a
	 * compaction retired the object, and the scan may run in parallel mode */
	meta = dir->meta ? dir->meta : catalog_get_object_at(dir->object_id, false, st->snapshot);
	st->reader = object_reader_open(meta);
	st->cur_dir = dir;
	MemoryContextSwitchTo(old);
}

/*
 * Bytes [from, from + len) of a chunk's plain form: from the cache's copy of
 * a compressed chunk, decompressed and decoded (false if it is not there),
 * or, for a plain chunk stored as it is, from the object (through the
 * cache's blocks).
 */
static bool
chunk_part(DestorScan *st, SegmentDirectory *dir, ChunkEntry *e, uint32 from, uint32 len, char *dst)
{
	if (e->length == e->raw_length && e->encoding == CHUNK_PLAIN)
	{
		ObjectReadStats before = object_read_stats;

		scan_open_segment(st, dir);
		object_reader_read(st->reader, e->offset + from, len, dst);
		scan_stats_since(st, &before);
		return true;
	}
	return cache_lookup_span_part(dir->object_id, e->offset, e->raw_length, from, len, dst);
}

/*
 * scan_fetch_row_cached — one row of a row group, read straight from the
 * chunks without decoding the row group: what an index look-up needs (one
 * value a column, not ten thousand).  Only for the kinds read in place
 * (fixed-width by-value, raw varlena), and compressed chunks only when the
 * cache holds them decompressed; false otherwise, and the caller decodes
 * the row group.  By-reference values are allocated in the current context.
 */
bool
scan_fetch_row_cached(DestorScan *st, SegmentDirectory *dir, int rg, uint32 r, Datum *values,
					  bool *isnull)
{
	uint32		n = dir->rg_rows[rg];
	uint32		bitmap_len = (n + 7) / 8;

	if (dir->mem_chunks || r >= n)
		return false;
	for (int a = 0; a < st->natts; a++)
	{
		ChunkEntry *e;
		ColumnCodec *cc = &st->codecs[a];
		uint32		before = r;		/* values stored before row r */

		values[a] = (Datum) 0;
		isnull[a] = true;
		if (cc->dropped || a >= dir->ncols)
			continue;			/* NULL; a later column's default comes from the caller */
		check_column_type(st, dir, a);
		e = &dir->chunks[rg * dir->ncols + a];
		if (e->raw_length < bitmap_len ||
			e->kind != cc->kind || (e->kind != VALUE_FIXED && e->kind != VALUE_VARLENA) ||
			(e->kind == VALUE_FIXED && !cc->typbyval))
			return false;
		if (e->null_count > 0)
		{
			uint8		bits[1024];
			uint32		upto = r / 8 + 1;	/* bitmap bytes up to row r's */

			for (uint32 got = 0; got < upto; got += sizeof(bits))
			{
				uint32		take = Min(upto - got, (uint32) sizeof(bits));

				if (!chunk_part(st, dir, e, got, take, (char *) bits))
					return false;
				for (uint32 b = 0; b < take; b++)
				{
					uint32		byte = got + b;
					uint8		v = bits[b];

					if (byte == r / 8)
					{
						if ((v >> (r % 8)) & 1)
							goto next_column;	/* NULL */
						v &= (uint8) ((1u << (r % 8)) - 1);
					}
					before -= pg_popcount((const char *) &v, 1);
				}
			}
		}
		if (e->kind == VALUE_FIXED)
		{
			int16		len = cc->typlen;
			uint64		at = (uint64) bitmap_len + (uint64) before * len;
			Datum		aligned = 0;

			if (at + len > e->raw_length ||
				!chunk_part(st, dir, e, (uint32) at, len, (char *) &aligned))
				return false;
			values[a] = fetch_att(&aligned, true, len);
		}
		else
		{
			/* a varlena chunk: 4-byte lengths and bytes; walk to the value */
			char	   *raw = palloc(Max(e->raw_length, 1));
			const uint8 *p = (const uint8 *) raw + bitmap_len;
			const uint8 *end = (const uint8 *) raw + e->raw_length;
			uint32		vlen = 0;
			char	   *v;

			if (!chunk_part(st, dir, e, 0, e->raw_length, raw))
				return false;
			for (uint32 i = 0; i <= before; i++)
			{
				if (end - p < 4)
					return false;
				vlen = (uint32) p[0] | ((uint32) p[1] << 8) | ((uint32) p[2] << 16) | ((uint32) p[3] << 24);
				if ((uint64) (end - p - 4) < vlen || vlen > MaxAllocSize - VARHDRSZ)
					return false;
				if (i < before)
					p += 4 + vlen;
			}
			v = palloc(VARHDRSZ + vlen);
			SET_VARSIZE(v, VARHDRSZ + vlen);
			memcpy(VARDATA(v), p + 4, vlen);
			values[a] = PointerGetDatum(v);
		}
		isnull[a] = false;
next_column:
		;
	}
	return true;
}

/* Does the scan load this column's chunks from this segment? */
/* A column whose type changed since the segment was written cannot be read. */
static void
check_column_type(DestorScan *st, SegmentDirectory *dir, int a)
{
	if (dir->typids[a] != st->codecs[a].typid)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of destor table \"%s\" was stored as type %s and is now %s",
						NameStr(TupleDescAttr(RelationGetDescr(st->rel), a)->attname),
						RelationGetRelationName(st->rel),
						format_type_be(dir->typids[a]),
						format_type_be(st->codecs[a].typid)),
				 errdetail("ALTER FOREIGN TABLE ... ALTER COLUMN ... TYPE does not rewrite the stored values."),
				 errhint("Change the column's type back, or copy the rows into a new table with INSERT ... SELECT and a cast.")));
}

/*
 * next_rowgroup: load the scan's next unit (its needed columns) into the
 * row group context; false when there is none left.  A parallel scan takes
 * its units from the shared counter.  Rows a statement of this backend still
 * buffers are decoded from memory; others from the cache or the segment's
 * object, opened once per segment.
 */
bool
next_rowgroup(DestorScan *st)
{
	DestorScanUnit   *u;
	MemoryContext old;

	if (st->next_unit)
	{
		/*
		 * Every participant built the same list from the same snapshot and
		 * claims the same number of units at a time from the shared
		 * counter, enough for one batch on average, so that a worker's
		 * requests are as large as a serial scan's.
		 */
		if (st->unit >= st->claim_end)
		{
			uint32		mine;

			if (st->claim_size == 0)
				st->claim_size = scan_claim_size(st);
			mine = pg_atomic_fetch_add_u32(st->next_unit, st->claim_size);
			if (mine >= (uint32) st->nunits)
			{
				scan_batch_end(st, false);
				return false;
			}
			st->unit = mine;
			st->claim_end = Min(st->nunits, (int) mine + st->claim_size);
		}
		u = &st->units[st->unit++];
	}
	else
	{
		if (st->unit >= st->nunits)
		{
			scan_batch_end(st, false);
			return false;
		}
		u = &st->units[st->unit++];
	}
	MemoryContextReset(st->rgcxt);
	memset(st->values, 0, sizeof(Datum *) * st->natts);
	memset(st->nulls, 0, sizeof(bool *) * st->natts);
	if (u->dir->mem_chunks)
	{
		/* rows the statement that called us still buffers: in memory */
		old = MemoryContextSwitchTo(st->rgcxt);
		for (int a = 0; a < st->natts; a++)
		{
			ChunkEntry *e;
			char	   *raw;

			if (!chunk_needed(st, u->dir, a))
				continue;
			check_column_type(st, u->dir, a);
			e = &u->dir->chunks[a];
			raw = palloc(Max(e->raw_length, 1));
			memcpy(raw, u->dir->mem_chunks[a], e->raw_length);
			if (e->kind == VALUE_TEXT)
			{
				int			guclevel = text_io_enter();

				load_column(st, u->dir, 0, a, raw);
				text_io_leave(guclevel);
			}
			else
				load_column(st, u->dir, 0, a, raw);
		}
		MemoryContextSwitchTo(old);
		st->rg_rows = u->dir->rg_rows[0];
		st->row = 0;
		st->cur_seg_index = u->seg_index;
		st->cur_first_row = 0;
		st->cur_deleted = NULL;
		st->rgs_read++;
		return true;
	}
	scan_open_segment(st, u->dir);
	old = MemoryContextSwitchTo(st->rgcxt);
	{
		char	  **plain;

		for (int a = 0; a < st->natts; a++)
			if (chunk_needed(st, u->dir, a))
				check_column_type(st, u->dir, a);
		plain = scan_unit_chunks(st, u);
		for (int a = 0; a < st->natts; a++)
		{
			int			guclevel = -1;

			if (plain[a] == NULL)
				continue;
			CHECK_FOR_INTERRUPTS();
			if (u->dir->chunks[u->rg * u->dir->ncols + a].kind == VALUE_TEXT)
				guclevel = text_io_enter();
			load_column(st, u->dir, u->rg, a, plain[a]);
			if (guclevel >= 0)
				text_io_leave(guclevel);
		}
	}
	MemoryContextSwitchTo(old);
	st->rg_rows = u->dir->rg_rows[u->rg];
	st->row = 0;
	st->cur_seg_index = u->seg_index;
	st->cur_first_row = u->first_row;
	st->cur_deleted = u->dir->deleted;
	st->rgs_read++;
	return true;
}

/*
 * destorIterateForeignScan: the next row that is not deleted, its tid the
 * row's identity (for UPDATE and DELETE).
 */
TupleTableSlot *
destorIterateForeignScan(ForeignScanState *node)
{
	DestorScan  *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	ExecClearTuple(slot);
	for (;;)
	{
		int64		pos;

		while (st->row >= st->rg_rows)
		{
			if (!next_rowgroup(st))
				return slot;

			/*
			 * Columns without values in this row group (not needed,
			 * dropped, or added after it was written) are NULL for all
			 * its rows: set them once, and copy only the others per row.
			 */
			st->nloaded = 0;
			for (int a = 0; a < st->natts; a++)
			{
				if (st->values[a] == NULL)
				{
					slot->tts_isnull[a] = true;
					slot->tts_values[a] = (Datum) 0;
				}
				else
					st->loaded[st->nloaded++] = a;
			}
		}
		pos = st->cur_first_row + st->row;
		if (st->cur_deleted == NULL || !((st->cur_deleted[pos / 8] >> (pos % 8)) & 1))
			break;
		st->row++;				/* deleted */
	}
	/* a batch read ahead keeps coming in while the rows go up the plan */
	if ((st->row & 1023) == 0)
		provider_poll();
	table_row_to_tid(st->cur_seg_index, st->cur_first_row + st->row, &slot->tts_tid);
	for (int i = 0; i < st->nloaded; i++)
	{
		int			a = st->loaded[i];

		slot->tts_isnull[a] = st->nulls[a][st->row];
		slot->tts_values[a] = st->values[a][st->row];
	}
	st->row++;
	return ExecStoreVirtualTuple(slot);
}

void
destorReScanForeignScan(ForeignScanState *node)
{
	DestorScan  *st = node->fdw_state;

	scan_batch_end(st, true);	/* its bytes go with the batch's context */
	st->unit = 0;
	st->claim_end = 0;
	st->row = st->rg_rows = 0;
	st->batch = NULL;
}

bool
destorIsForeignScanParallelSafe(PlannerInfo *root, RelOptInfo *rel, RangeTblEntry *rte)
{
	return true;
}

/*
 * The shared state of a parallel scan (SharedScan), for the foreign tables'
 * parallel scans and the table access method's DestorScan alike.
 */
Size
scan_shared_size(void)
{
	return sizeof(SharedScan);
}

/* The leader, once its unit list is known (st->leader_only decided). */
void
scan_shared_init(DestorScan *st, void *coordinate, int nworkers)
{
	SharedScan *sh = (SharedScan *) coordinate;

	/* leader_only: the counter starts past every worker's list */
	pg_atomic_init_u32(&sh->next_unit, st->leader_only ? PG_INT32_MAX : 0);
	pg_atomic_init_u64(&sh->rgs_read, 0);
	pg_atomic_init_u64(&sh->requests, 0);
	pg_atomic_init_u64(&sh->bytes, 0);
	pg_atomic_init_u64(&sh->degraded, 0);
	pg_atomic_init_u64(&sh->hedged, 0);
	pg_atomic_init_u64(&sh->chunks_read, 0);
	pg_atomic_init_u64(&sh->chunks_cached, 0);

	/*
	 * One batch's worth of units at a time keeps a cold scan's requests as
	 * large as a serial scan's: each claim waits for its batch's round trip,
	 * so smaller claims of a cold scan over a WAN cost a round trip each
	 * (a 20-row-group table read one row group per round trip took 12x its
	 * ideal).  A warm scan waits on its CPU instead, and a table of a few
	 * batches would go to whoever claims first: at least four claims per
	 * participant then.  A cold scan of less than a batch per participant
	 * shares the units out evenly: one claim each, fetched at once (the
	 * leader took a 1 M-row table's 85 row groups of 100 in one claim,
	 * and fetched, then decoded, alone).
	 */
	sh->claim_size = (uint32) Max(1, scan_claim_size(st));
	if (!scan_mostly_uncached(st))
		sh->claim_size = (uint32) Max(1, Min(sh->claim_size, st->nunits / (4 * (nworkers + 1))));
	else
		sh->claim_size = (uint32) Max(1, Min(sh->claim_size,
											 (st->nunits + nworkers) / (nworkers + 1)));
	scan_shared_attach(st, coordinate);
}

/* The leader, before a rescan of the parallel plan: every unit unclaimed. */
void
scan_shared_reinit(DestorScan *st, void *coordinate)
{
	pg_atomic_write_u32(&((SharedScan *) coordinate)->next_unit, st->leader_only ? PG_INT32_MAX : 0);
	scan_shared_attach(st, coordinate);
}

/* Any participant: claim units from the shared counter (a leader_only leader reads all). */
void
scan_shared_attach(DestorScan *st, void *coordinate)
{
	st->shared = (SharedScan *) coordinate;
	st->claim_size = st->shared->claim_size;
	st->next_unit = (st->leader_only && !IsParallelWorker()) ? NULL : &st->shared->next_unit;
}

Size
destorEstimateDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt)
{
	return scan_shared_size();
}

void
destorInitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt, void *coordinate)
{
	scan_shared_init(node->fdw_state, coordinate, pcxt->nworkers);
}

void
destorReInitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt, void *coordinate)
{
	scan_shared_reinit(node->fdw_state, coordinate);
}

void
destorInitializeWorkerForeignScan(ForeignScanState *node, shm_toc *toc, void *coordinate)
{
	scan_shared_attach(node->fdw_state, coordinate);
}

/* Before the parallel DSM goes away: keep the workers' counters. */
void
scan_shared_collect(DestorScan *st)
{
	if (st && st->shared && !IsParallelWorker())
	{
		st->worker_rgs += pg_atomic_read_u64(&st->shared->rgs_read);
		st->worker_requests += pg_atomic_read_u64(&st->shared->requests);
		st->worker_bytes += pg_atomic_read_u64(&st->shared->bytes);
		st->worker_degraded += pg_atomic_read_u64(&st->shared->degraded);
		st->worker_hedged += pg_atomic_read_u64(&st->shared->hedged);
		st->worker_chunks += pg_atomic_read_u64(&st->shared->chunks_read);
		st->worker_chunks_cached += pg_atomic_read_u64(&st->shared->chunks_cached);
		st->shared = NULL;
		st->next_unit = NULL;
	}
}

void
destorShutdownForeignScan(ForeignScanState *node)
{
	scan_shared_collect(node->fdw_state);
}

void
destorEndForeignScan(ForeignScanState *node)
{
	DestorScan *st = node->fdw_state;

	if (st && st->reader)
		object_reader_close(st->reader);
	if (st)
		st->reader = NULL;
	scan_shared_publish(st);
}

/* A worker at its scan's end: hand its share of the work to the leader's EXPLAIN. */
void
scan_shared_publish(DestorScan *st)
{
	if (st && st->shared && IsParallelWorker())
	{
		pg_atomic_fetch_add_u64(&st->shared->rgs_read, st->rgs_read);
		pg_atomic_fetch_add_u64(&st->shared->requests, st->stats.requests);
		pg_atomic_fetch_add_u64(&st->shared->bytes, st->stats.bytes_fetched);
		pg_atomic_fetch_add_u64(&st->shared->degraded, st->stats.degraded_reads);
		pg_atomic_fetch_add_u64(&st->shared->hedged, st->stats.hedged_reads);
		pg_atomic_fetch_add_u64(&st->shared->chunks_read, st->chunks_read);
		pg_atomic_fetch_add_u64(&st->shared->chunks_cached, st->chunks_cached);
		st->shared = NULL;
	}
}

/* ---------------------------------------------------------------------------
 * Whole-row scans
 * ------------------------------------------------------------------------- */
/*
 * A scan of whole rows of the given segments, outside the executor (for
 * ANALYZE and compaction).  Row groups come from next_rowgroup().
 */
DestorScan *
whole_row_scan(Relation rel, TableOptions *opts, List *segments)
{
	MemoryContext caller = CurrentMemoryContext;
	DestorScan *st = palloc0(sizeof(DestorScan));
	TupleDesc	desc = RelationGetDescr(rel);
	ListCell   *lc;
	int			nunits = 0;

	st->rel = rel;
	st->opts = opts;
	st->natts = desc->natts;
	st->codecs = palloc0(sizeof(ColumnCodec) * Max(st->natts, 1));
	st->needed = palloc0(sizeof(bool) * Max(st->natts, 1));
	for (int i = 0; i < st->natts; i++)
	{
		column_codec_init(&st->codecs[i], TupleDescAttr(desc, i));
		st->needed[i] = !st->codecs[i].dropped;
	}
	st->segcxt = AllocSetContextCreate(caller, "destor whole-row scan segment", ALLOCSET_DEFAULT_SIZES);
	st->rgcxt = AllocSetContextCreate(caller, "destor whole-row scan row group", ALLOCSET_DEFAULT_SIZES);
	st->values = palloc0(sizeof(Datum *) * Max(st->natts, 1));
	st->nulls = palloc0(sizeof(bool *) * Max(st->natts, 1));
	foreach(lc, segments)
		nunits += ((SegmentDirectory *) lfirst(lc))->nrowgroups;
	st->units = palloc(sizeof(DestorScanUnit) * Max(nunits, 1));
	foreach(lc, segments)
	{
		SegmentDirectory *dir = lfirst(lc);
		int64		first_row = 0;

		for (int g = 0; g < dir->nrowgroups; first_row += dir->rg_rows[g], g++)
		{
			DestorScanUnit *u = &st->units[st->nunits++];

			u->dir = dir;
			u->rg = g;
			u->seg_index = foreach_current_index(lc);
			u->first_row = first_row;
		}
	}
	return st;
}

/* The current row of a whole-row scan, or false if it is deleted. */
bool
whole_row_current(DestorScan *st, Datum *values, bool *nulls)
{
	int64		pos = st->cur_first_row + st->row;

	if (st->cur_deleted && ((st->cur_deleted[pos / 8] >> (pos % 8)) & 1))
		return false;
	for (int a = 0; a < st->natts; a++)
	{
		nulls[a] = st->values[a] == NULL || st->nulls[a][st->row];
		values[a] = nulls[a] ? (Datum) 0 : st->values[a][st->row];
	}
	return true;
}

void
whole_row_scan_end(DestorScan *st)
{
	if (st->reader)
		object_reader_close(st->reader);
	st->reader = NULL;
	st->batch = NULL;
	if (st->batchcxt)
		MemoryContextDelete(st->batchcxt);
	MemoryContextDelete(st->rgcxt);
	MemoryContextDelete(st->segcxt);
}
