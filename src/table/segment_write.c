/*
 * segment_write.c — rows in, columnar segments out.
 *
 * Rows of one statement are buffered a row group at a time (bounded
 * memory): each column's values are encoded into its own buffer, with a
 * null bitmap and running min/max.  A full row group is compressed column
 * by column and streamed into the segment's object; a full segment (or the
 * end of the statement) finishes the object and records it in the catalog,
 * where it becomes visible when the transaction commits.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "catalog.h"
#include "table_internal.h"

typedef struct ColumnBuffer
{
	StringInfoData values;
	StringInfoData nulls;		/* one bit a row, 1 = null */
	uint32		null_count;
	bool		has_minmax;
	Datum		min;
	Datum		max;
	/* whole segment */
	uint64		seg_nulls;
	char	   *seg_min;		/* text forms, in the writer's context */
	char	   *seg_max;
	Datum		seg_min_d;
	Datum		seg_max_d;
	bool		seg_has_minmax;
} ColumnBuffer;

/* A row group is closed early once one column holds this many bytes. */
#define ROW_GROUP_BYTE_BUDGET (256 * 1024 * 1024)

struct SegmentWriter
{
	MemoryContext cxt;			/* lives for the statement */
	MemoryContext rgcxt;		/* one row group's values */
	Relation	rel;
	TableOptions *opts;
	Pool	   *pool;
	int			ncols;
	ColumnCodec *codecs;
	ColumnBuffer *cols;
	uint32		rg_rowcount;

	/* the segment being written */
	ObjectWriter *ow;
	uint64		seg_offset;		/* bytes written into its object */
	int64		seg_rows;
	int			nrowgroups;
	int			rgcap;
	uint32	   *rg_rows;
	ChunkEntry *chunks;
	char	  **rg_min;
	char	  **rg_max;

	bool		has_text;		/* a column stored in text form */
	int64		total_rows;
	char	   *chunkbuf;
	size_t		chunkcap;
};

static void segment_writer_flush_rowgroup(SegmentWriter *w);
static void segment_writer_finish_segment(SegmentWriter *w);

SegmentWriter *
segment_writer_create(Relation rel, TableOptions *opts)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "destor segment writer",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	SegmentWriter *w = palloc0(sizeof(SegmentWriter));
	TupleDesc	desc = RelationGetDescr(rel);

	w->cxt = cxt;
	w->rgcxt = AllocSetContextCreate(cxt, "destor row group", ALLOCSET_DEFAULT_SIZES);
	w->rel = rel;
	w->opts = opts;
	w->pool = pool_lookup(opts->pool, true);
	w->ncols = desc->natts;
	w->codecs = palloc0(sizeof(ColumnCodec) * Max(w->ncols, 1));
	w->cols = palloc0(sizeof(ColumnBuffer) * Max(w->ncols, 1));
	for (int i = 0; i < w->ncols; i++)
	{
		column_codec_init(&w->codecs[i], TupleDescAttr(desc, i));
		if (!w->codecs[i].dropped && w->codecs[i].kind == VALUE_TEXT)
			w->has_text = true;
		initStringInfo(&w->cols[i].values);
		initStringInfo(&w->cols[i].nulls);
	}
	MemoryContextSwitchTo(old);
	return w;
}

int64
segment_writer_rows(SegmentWriter *w)
{
	return w->total_rows;
}

static int
compare_datums(ColumnCodec *cc, Datum a, Datum b)
{
	return DatumGetInt32(FunctionCall2Coll(&cc->cmp, cc->collation, a, b));
}

static char *
text_form(ColumnCodec *cc, Datum d, MemoryContext cxt)
{
	char	   *s = OutputFunctionCall(&cc->out, d);
	char	   *r = MemoryContextStrdup(cxt, s);

	pfree(s);
	return r;
}

void
segment_writer_add(SegmentWriter *w, Datum *values, bool *nulls)
{
	MemoryContext old = MemoryContextSwitchTo(w->rgcxt);
	bool		full = false;
	int			guclevel = w->has_text ? text_io_enter() : -1;

	for (int i = 0; i < w->ncols; i++)
	{
		ColumnCodec *cc = &w->codecs[i];
		ColumnBuffer *cb = &w->cols[i];
		int			bit = w->rg_rowcount % 8;

		if (cc->dropped)
			continue;
		if (bit == 0)
			appendStringInfoChar(&cb->nulls, 0);
		if (nulls[i])
		{
			cb->nulls.data[cb->nulls.len - 1] |= (1 << bit);
			cb->null_count++;
			continue;
		}
		value_encode(cc, values[i], &cb->values);
		if (cc->has_cmp)
		{
			if (!cb->has_minmax)
			{
				cb->min = datumCopy(values[i], cc->typbyval, cc->typlen);
				cb->max = datumCopy(values[i], cc->typbyval, cc->typlen);
				cb->has_minmax = true;
			}
			else if (compare_datums(cc, values[i], cb->min) < 0)
				cb->min = datumCopy(values[i], cc->typbyval, cc->typlen);
			else if (compare_datums(cc, values[i], cb->max) > 0)
				cb->max = datumCopy(values[i], cc->typbyval, cc->typlen);
		}
	}
	w->rg_rowcount++;
	if (guclevel >= 0)
		text_io_leave(guclevel);
	MemoryContextSwitchTo(old);

	/* large values: close the row group early to keep memory bounded */
	for (int i = 0; i < w->ncols; i++)
		if (w->cols[i].values.len > ROW_GROUP_BYTE_BUDGET)
			full = true;
	if (full || w->rg_rowcount >= (uint32) w->opts->row_group_rows)
	{
		segment_writer_flush_rowgroup(w);
		if (w->seg_rows >= w->opts->segment_rows)
			segment_writer_finish_segment(w);
	}
}

/* Compress each column of the buffered row group into the segment object. */
static void
segment_writer_flush_rowgroup(SegmentWriter *w)
{
	MemoryContext old;
	int			rg = w->nrowgroups;
	int			guclevel;

	if (w->rg_rowcount == 0)
		return;
	old = MemoryContextSwitchTo(w->cxt);
	guclevel = text_io_enter();	/* min/max text forms */
	if (w->ow == NULL)
	{
		w->ow = object_writer_create(w->pool, false);
		w->seg_offset = 0;
	}
	if (w->nrowgroups == w->rgcap)
	{
		int			newcap = Max(8, w->rgcap * 2);
		size_t		n = (size_t) newcap * w->ncols;

		w->rg_rows = w->rg_rows ? repalloc(w->rg_rows, sizeof(uint32) * newcap) :
			palloc(sizeof(uint32) * newcap);
		w->chunks = w->chunks ? repalloc(w->chunks, sizeof(ChunkEntry) * n) :
			palloc(sizeof(ChunkEntry) * n);
		w->rg_min = w->rg_min ? repalloc(w->rg_min, sizeof(char *) * n) : palloc(sizeof(char *) * n);
		w->rg_max = w->rg_max ? repalloc(w->rg_max, sizeof(char *) * n) : palloc(sizeof(char *) * n);
		w->rgcap = newcap;
	}

	for (int i = 0; i < w->ncols; i++)
	{
		ColumnCodec *cc = &w->codecs[i];
		ColumnBuffer *cb = &w->cols[i];
		int			idx = rg * w->ncols + i;
		ChunkEntry *e = &w->chunks[idx];
		size_t		rawlen = cb->nulls.len + cb->values.len;
		size_t		bound = codec_compress_bound(rawlen);
		size_t		clen;
		const char *data;
		size_t		len;

		memset(e, 0, sizeof(ChunkEntry));
		w->rg_min[idx] = w->rg_max[idx] = NULL;
		if (cc->dropped)
			continue;

		/* one raw buffer: null bitmap, then values; compressed after it */
		if (w->chunkcap < rawlen + bound)
		{
			if (w->chunkbuf)
				pfree(w->chunkbuf);
			w->chunkcap = rawlen + bound;
			w->chunkbuf = MemoryContextAllocHuge(w->cxt, w->chunkcap);
		}
		memcpy(w->chunkbuf, cb->nulls.data, cb->nulls.len);
		memcpy(w->chunkbuf + cb->nulls.len, cb->values.data, cb->values.len);
		clen = codec_compress(w->chunkbuf, rawlen, w->chunkbuf + rawlen, bound,
							  w->opts->compression_level);
		if (clen > 0)
		{
			data = w->chunkbuf + rawlen;
			len = clen;
		}
		else
		{
			data = w->chunkbuf;
			len = rawlen;
		}
		if (rawlen > PG_UINT32_MAX || len > PG_UINT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("a row group of column \"%s\" is larger than 4 GB",
							NameStr(TupleDescAttr(RelationGetDescr(w->rel), i)->attname)),
					 errhint("Lower the table's row_group_rows option.")));
		object_writer_write(w->ow, data, len);
		e->offset = w->seg_offset;
		e->length = (uint32) len;
		e->raw_length = (uint32) rawlen;
		e->null_count = cb->null_count;
		e->kind = (uint8) cc->kind;
		w->seg_offset += len;

		cb->seg_nulls += cb->null_count;
		if (cb->has_minmax)
		{
			w->rg_min[idx] = text_form(cc, cb->min, w->cxt);
			w->rg_max[idx] = text_form(cc, cb->max, w->cxt);
			if (!cb->seg_has_minmax || compare_datums(cc, cb->min, cb->seg_min_d) < 0)
			{
				cb->seg_min_d = datumCopy(cb->min, cc->typbyval, cc->typlen);
				cb->seg_min = w->rg_min[idx];
			}
			if (!cb->seg_has_minmax || compare_datums(cc, cb->max, cb->seg_max_d) > 0)
			{
				cb->seg_max_d = datumCopy(cb->max, cc->typbyval, cc->typlen);
				cb->seg_max = w->rg_max[idx];
			}
			cb->seg_has_minmax = true;
		}
		resetStringInfo(&cb->values);
		resetStringInfo(&cb->nulls);
		cb->null_count = 0;
		cb->has_minmax = false;
	}
	text_io_leave(guclevel);
	w->rg_rows[rg] = w->rg_rowcount;
	w->nrowgroups++;
	w->seg_rows += w->rg_rowcount;
	w->total_rows += w->rg_rowcount;
	w->rg_rowcount = 0;
	MemoryContextSwitchTo(old);
	MemoryContextReset(w->rgcxt);
}

/* Close the segment's object (directory at its end) and record it. */
static void
segment_writer_finish_segment(SegmentWriter *w)
{
	SegmentDirectory dir = {0};
	bytea	   *dirb;
	ObjectMeta *meta;
	uint8		trailer[16];
	uint64		dirlen;
	MemoryContext old;

	if (w->ow == NULL)
		return;
	old = MemoryContextSwitchTo(w->cxt);
	dir.row_count = w->seg_rows;
	dir.nrowgroups = w->nrowgroups;
	dir.ncols = w->ncols;
	dir.typids = palloc(sizeof(Oid) * Max(w->ncols, 1));
	dir.kinds = palloc(sizeof(uint8) * Max(w->ncols, 1));
	dir.seg_nulls = palloc(sizeof(uint64) * Max(w->ncols, 1));
	dir.seg_min = palloc(sizeof(char *) * Max(w->ncols, 1));
	dir.seg_max = palloc(sizeof(char *) * Max(w->ncols, 1));
	for (int i = 0; i < w->ncols; i++)
	{
		dir.typids[i] = w->codecs[i].dropped ? InvalidOid : w->codecs[i].typid;
		dir.kinds[i] = w->codecs[i].dropped ? 0 : (uint8) w->codecs[i].kind;
		dir.seg_nulls[i] = w->cols[i].seg_nulls;
		dir.seg_min[i] = w->cols[i].seg_has_minmax ? w->cols[i].seg_min : NULL;
		dir.seg_max[i] = w->cols[i].seg_has_minmax ? w->cols[i].seg_max : NULL;
	}
	dir.rg_rows = w->rg_rows;
	dir.chunks = w->chunks;
	dir.rg_min = w->rg_min;
	dir.rg_max = w->rg_max;
	dirb = segment_directory_serialize(&dir);

	/* the object describes itself: directory, its length, a magic */
	object_writer_write(w->ow, VARDATA(dirb), VARSIZE(dirb) - VARHDRSZ);
	dirlen = VARSIZE(dirb) - VARHDRSZ;
	for (int b = 0; b < 8; b++)
		trailer[b] = (uint8) (dirlen >> (8 * b));
	memcpy(trailer + 8, "DSEGEND1", 8);
	object_writer_write(w->ow, (const char *) trailer, sizeof(trailer));
	meta = object_writer_finish(w->ow);
	w->ow = NULL;

	catalog_insert_object(meta);
	catalog_insert_segment(w->opts->table_id, catalog_next_segment_no(), meta->id,
						   w->seg_rows, dirb);

	/* start afresh */
	w->seg_rows = 0;
	w->nrowgroups = 0;
	w->seg_offset = 0;
	for (int i = 0; i < w->ncols; i++)
	{
		w->cols[i].seg_nulls = 0;
		w->cols[i].seg_has_minmax = false;
	}
	MemoryContextSwitchTo(old);
}

void
segment_writer_finish(SegmentWriter *w)
{
	segment_writer_flush_rowgroup(w);
	segment_writer_finish_segment(w);
	MemoryContextDelete(w->cxt);
}
