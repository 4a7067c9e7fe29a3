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

#include "access/detoast.h"
#include "access/htup_details.h"
#include "utils/datum.h"
#include "utils/sortsupport.h"
#include "utils/typcache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "destor/catalog.h"
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
	bool		seg_unbounded;	/* a row group of the segment kept no min/max */
} ColumnBuffer;

/*
 * Statistics keep no value wider than this (as parquet-cpp's
 * max_statistics_size): a row group's min/max are stored twice in text form
 * (in its segment's directory and in destor.segments), so a 20 MB value
 * would cost 40 MB of directory, compressed and logged with each segment.
 * Such a row group keeps no min/max for the column (its null count still
 * prunes), and neither does its segment: no range then leaves it out.
 */
#define STATS_MAX_VALUE_BYTES 4096
/* ... and no value whose own size is above this is even formatted */
#define STATS_MAX_RAW_BYTES (64 * STATS_MAX_VALUE_BYTES)

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
	int		   *delta_widths;	/* per column: column_delta_width */
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
	codec_zctx *zctx[2];		/* compression contexts of the two threads */
	SortSupportData *ssup;		/* per column: comparator for min/max */
	int64		total_rows;
	char	   *chunkbuf;
	size_t		chunkcap;
	List	   *written;		/* SegmentDirectory of each segment this writer
								 * recorded, with its ObjectMeta (in cxt) */
	SegmentNumberFn number_fn;	/* numbers segments (table AM), or NULL:
								 * destor.segment_no_seq */
	void	   *number_arg;
	int64		seg_no;			/* number_fn's number of the segment under
								 * way, or -1 */
	/* segment_writer_replace: the one segment written is a new version of
	 * segment seg_no, with these rows pruned; the caller records it */
	bool		replacing;
	int64		pruned;

	/*
	 * Segments ended whose objects' last batches are still going
	 * (object_writer_finish_start) while the next ones are encoded, oldest
	 * first (SentSegment): on a WAN a segment's shards took as long to send
	 * as the segment to encode, one after the other, and each waited a
	 * round trip of its slowest needed provider.  Recorded in order
	 * (segment_writer_record) when too many are out, at the end, or before
	 * anything reads what was recorded.
	 */
	List	   *sent;
	size_t		sent_bytes;		/* their shard bytes being sent */
};

typedef struct SentSegment
{
	ObjectWriter *ow;
	bytea	   *dir;
	int64		rows;
	int64		seg_no;			/* w->seg_no when it ended */
	size_t		bytes;			/* object_writer_finish_start's */
} SentSegment;

/*
 * Segments in flight at most, per writer: their buffers stay until they
 * are recorded (a segment of a million narrow rows, 26 MB of shards on a
 * 4+2 pool, counts 48 MiB of huge pages: one in flight), and two or three
 * smaller ones cover a far provider's round trip on a WAN.
 * Their memory is bounded per backend (sent_bytes_backend), not per
 * writer: a statement writes as many tables as it has destor partitions,
 * and five partitions' writers held 387 MB.
 */
#define SENT_SEGMENTS_MAX	3
#define SENT_BYTES_MAX		((size_t) 48 * 1024 * 1024)

/* what the segments in flight of every writer of this backend hold */
static size_t sent_bytes_backend = 0;

static void segment_writer_flush_rowgroup(SegmentWriter *w);

/* The writer's memory goes (its end, or an ERROR): what it holds with it. */
static void
writer_free_zctx(void *arg)
{
	SegmentWriter *w = (SegmentWriter *) arg;

	for (int i = 0; i < 2; i++)
	{
		codec_zctx_free(w->zctx[i]);
		w->zctx[i] = NULL;
	}
	/* segments still in flight: their writers go with the transaction */
	sent_bytes_backend -= Min(w->sent_bytes, sent_bytes_backend);
	w->sent_bytes = 0;
}
static void segment_writer_finish_segment(SegmentWriter *w, bool wait);
static void segment_writer_record(SegmentWriter *w);
static void segment_writer_record_oldest(SegmentWriter *w);

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
	w->delta_widths = palloc0(sizeof(int) * Max(w->ncols, 1));
	w->ssup = palloc0(sizeof(SortSupportData) * Max(w->ncols, 1));
	w->seg_no = -1;
	{
		MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));

		w->zctx[0] = codec_zctx_create();
		w->zctx[1] = codec_zctx_create();
		cb->func = writer_free_zctx;
		cb->arg = w;
		MemoryContextRegisterResetCallback(cxt, cb);
		if (w->zctx[0] == NULL || w->zctx[1] == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	for (int i = 0; i < w->ncols; i++)
	{
		column_codec_init(&w->codecs[i], TupleDescAttr(desc, i));
		w->delta_widths[i] = column_delta_width(&w->codecs[i]);
		if (!w->codecs[i].dropped && w->codecs[i].has_cmp)
		{
			/* SortSupport: a cheap comparator for the running min/max */
			TypeCacheEntry *tce = lookup_type_cache(w->codecs[i].typid, TYPECACHE_LT_OPR);

			w->ssup[i].ssup_cxt = cxt;
			w->ssup[i].ssup_collation = w->codecs[i].collation;
			if (OidIsValid(tce->lt_opr))
				PrepareSortSupportFromOrderingOp(tce->lt_opr, &w->ssup[i]);
			else
				w->codecs[i].has_cmp = false;
		}
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

/*
 * segment_writer_set_numbering: number this writer's segments with fn
 * instead of the global sequence.  The table access method numbers each
 * table's segments densely and gives a row its tid before the row is written
 * (segment_writer_next_row), so the number is taken when a segment begins.
 */
void
segment_writer_set_numbering(SegmentWriter *w, SegmentNumberFn fn, void *arg)
{
	w->number_fn = fn;
	w->number_arg = arg;
}

/*
 * segment_writer_next_row: where the next row added will be: its segment's
 * number (taken now if the segment has not begun) and its row in it.
 */
int64
segment_writer_next_row(SegmentWriter *w, int64 *segment_no)
{
	if (w->number_fn && w->seg_no < 0)
		w->seg_no = w->number_fn(w->number_arg);
	*segment_no = w->seg_no;
	return w->seg_rows + w->rg_rowcount;
}

/*
 * The segments this writer recorded (borrowed: they live until it
 * finishes), those sent recorded first.  Call it in the writer's own
 * subtransaction: recorded in another, a rollback there takes them.
 */
List *
segment_writer_recorded(SegmentWriter *w)
{
	segment_writer_record(w);
	return w->written;
}

/* The segments recorded so far, none recorded now (borrowed, as above). */
List *
segment_writer_written(SegmentWriter *w)
{
	return w->written;
}

/*
 * Whether segment segment_no (numbered when it began: the table AM's) has
 * ended and is still being sent, not recorded yet.
 */
bool
segment_writer_sending(SegmentWriter *w, int64 segment_no)
{
	ListCell   *lc;

	foreach(lc, w->sent)
		if (((SentSegment *) lfirst(lc))->seg_no == segment_no)
			return true;
	return false;
}

/*
 * segment_writer_unrecorded: whether segment_writer_pending (or, with
 * flush, segment_writer_flush) would record segments in the catalog now:
 * segments sent and not recorded yet, or row groups of the segment under
 * way already in its object (flush: any row).  Recorded in a subtransaction
 * that then rolls back, their rows would be lost to the statement.
 */
bool
segment_writer_unrecorded(SegmentWriter *w, bool flush)
{
	return w->sent != NIL || w->nrowgroups > 0 || (flush && w->rg_rowcount > 0);
}

/* The number of the segment under way, or -1 (none, or not numbered by fn). */
int64
segment_writer_segment_no(SegmentWriter *w)
{
	return w->seg_no;
}

#define compare_datums(w, i, a, b) ApplySortComparator((a), false, (b), false, &(w)->ssup[(i)])

/*
 * The text form of d as a statistic, in cxt, or NULL if wider than
 * STATS_MAX_VALUE_BYTES: what is stored is the text form, which can be
 * several times the value's own size (a bytea's is twice it, a bit
 * string's eight times).  A value whose own size is far above the limit
 * is not formatted at all (a 20 MB text would be copied for nothing);
 * leaving a statistic out only prunes less.
 */
static char *
stats_text_form(ColumnCodec *cc, Datum d, MemoryContext cxt)
{
	char	   *s;
	char	   *r = NULL;

	if ((cc->typlen == -1 && toast_raw_datum_size(d) > STATS_MAX_RAW_BYTES) ||
		(cc->typlen == -2 && strlen(DatumGetCString(d)) > STATS_MAX_VALUE_BYTES))
		return NULL;
	s = OutputFunctionCall(&cc->out, d);
	if (strlen(s) <= STATS_MAX_VALUE_BYTES)
		r = MemoryContextStrdup(cxt, s);
	pfree(s);
	return r;
}

void
segment_writer_add(SegmentWriter *w, Datum *values, bool *nulls)
{
	MemoryContext old;
	bool		full = false;
	int			guclevel;

	if (w->number_fn && w->seg_no < 0)
		w->seg_no = w->number_fn(w->number_arg);
	old = MemoryContextSwitchTo(w->rgcxt);
	guclevel = w->has_text ? text_io_enter() : -1;

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
		if (cc->kind == VALUE_FIXED && cc->typbyval)
		{
			/* integers, floats, dates, timestamps: the raw bytes, inline */
			StringInfo	sb = &cb->values;

			if (sb->len + 8 >= sb->maxlen)
				enlargeStringInfo(sb, 8);
			switch (cc->typlen)
			{
				case 8:
					{
						int64		v = DatumGetInt64(values[i]);

						memcpy(sb->data + sb->len, &v, 8);
						break;
					}
				case 4:
					{
						int32		v = DatumGetInt32(values[i]);

						memcpy(sb->data + sb->len, &v, 4);
						break;
					}
				case 2:
					{
						int16		v = DatumGetInt16(values[i]);

						memcpy(sb->data + sb->len, &v, 2);
						break;
					}
				default:
					sb->data[sb->len] = DatumGetChar(values[i]);
					break;
			}
			sb->len += cc->typlen;
		}
		else
			value_encode(cc, values[i], &cb->values);
		if (cc->has_cmp)
		{
			if (!cb->has_minmax)
			{
				cb->min = datumCopy(values[i], cc->typbyval, cc->typlen);
				cb->max = datumCopy(values[i], cc->typbyval, cc->typlen);
				cb->has_minmax = true;
			}
			else if (compare_datums(w, i, values[i], cb->min) < 0)
				cb->min = datumCopy(values[i], cc->typbyval, cc->typlen);
			else if (compare_datums(w, i, values[i], cb->max) > 0)
				cb->max = datumCopy(values[i], cc->typbyval, cc->typlen);
		}
	}
	w->rg_rowcount++;
	if (guclevel >= 0)
		text_io_leave(guclevel);
	MemoryContextSwitchTo(old);

	/* a replacement keeps the row groups of the segment it replaces */
	if (w->replacing)
		return;
	/* large values: close the row group early to keep memory bounded */
	for (int i = 0; i < w->ncols; i++)
		if (w->cols[i].values.len > ROW_GROUP_BYTE_BUDGET)
			full = true;
	if (full || w->rg_rowcount >= (uint32) w->opts->row_group_rows)
	{
		segment_writer_flush_rowgroup(w);
		if (w->seg_rows >= w->opts->segment_rows)
			segment_writer_finish_segment(w, false);
	}
	else if (w->sent != NIL && w->rg_rowcount % 1024 == 0)
		provider_poll();		/* the shards of segments sent keep going out */
}

/* Row groups up to this many bytes are compressed on two threads. */
#define PARALLEL_COMPRESS_MAX (64 * 1024 * 1024)

/*
 * chunk_compress: one chunk (raw: its null bitmap, then its values) zstd'ed
 * into out (outcap: codec_compress_bound(rawlen)); for a column with a delta
 * width, the delta-encoded values as well, keeping whichever is smaller, so
 * that no chunk gets larger than it was plain.  scratch: rawlen + outcap
 * bytes for the delta candidate (unused when width is 0).  Returns the
 * compressed length, 0 to store raw as it is (then *encoding is plain: an
 * encoded chunk is always compressed).  Pure C: runs on the compression
 * threads.
 */
static size_t
chunk_compress(codec_zctx *z, int level, const char *raw, size_t rawlen, size_t bitmap_len,
			   int width, char *scratch, char *out, size_t outcap, uint8 *encoding)
{
	size_t		clen = codec_compress_ctx(z, raw, rawlen, out, outcap, level);

	*encoding = CHUNK_PLAIN;
	if (width > 0 && rawlen > bitmap_len && (rawlen - bitmap_len) % width == 0)
	{
		char	   *encoded = scratch;
		char	   *packed = scratch + rawlen;
		size_t		dlen;

		memcpy(encoded, raw, bitmap_len);
		codec_delta_encode(raw + bitmap_len, (rawlen - bitmap_len) / width, width,
						   encoded + bitmap_len);
		dlen = codec_compress_ctx(z, encoded, rawlen, packed, outcap, level);
		if (dlen > 0 && (clen == 0 || dlen < clen))
		{
			memcpy(out, packed, dlen);
			clen = dlen;
			*encoding = CHUNK_DELTA;
		}
	}
	return clen;
}

/* One thread's share of a row group's columns (pure C: no palloc, no ereport). */
typedef struct CompressTask
{
	codec_zctx *z;
	int			level;
	int			n;
	int		   *cols;
	size_t	   *rawlens;
	/* per column of the row group (shared by the tasks) */
	char	  **raw;
	char	  **out;
	size_t	   *clens;
	size_t		bitmap_len;
	int		   *widths;
	char	  **scratch;
	uint8	   *encodings;
} CompressTask;

static void
compress_task_run(void *arg)
{
	CompressTask *t = (CompressTask *) arg;

	for (int j = 0; j < t->n; j++)
	{
		int			i = t->cols[j];

		t->clens[i] = chunk_compress(t->z, t->level, t->raw[i], t->rawlens[j], t->bitmap_len,
									 t->widths[i], t->scratch[i], t->out[i],
									 codec_compress_bound(t->rawlens[j]), &t->encodings[i]);
	}
}

/* Compress each column of the buffered row group into the segment object. */
static void
segment_writer_flush_rowgroup(SegmentWriter *w)
{
	MemoryContext old;
	int			rg = w->nrowgroups;
	int			guclevel;
	bool		parallel;
	char	  **raw = NULL;
	char	  **out = NULL;
	size_t	   *clens = NULL;
	uint8	   *encodings = NULL;
	size_t		bitmap_len = (w->rg_rowcount + 7) / 8;

	if (w->rg_rowcount == 0)
		return;
	old = MemoryContextSwitchTo(w->cxt);
	guclevel = text_io_enter();	/* min/max text forms */
	if (w->ow == NULL)
	{
		w->ow = object_writer_create(w->pool, false);
		object_writer_skip_sha256(w->ow);	/* chunks are authenticated; no one asks */
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

	/*
	 * Compress the columns on two threads (zstd is the costly part of
	 * writing); each chunk is its null bitmap followed by its values.
	 * Very large row groups go one column at a time to bound memory.
	 */
	{
		size_t		total = 0;
		CompressTask tasks[2];
		void	   *args[2] = {&tasks[0], &tasks[1]};
		size_t		load[2] = {0, 0};

		memset(tasks, 0, sizeof(tasks));
		for (int i = 0; i < w->ncols; i++)
			total += w->cols[i].nulls.len + w->cols[i].values.len;
		parallel = total <= PARALLEL_COMPRESS_MAX;
		if (parallel)
		{
			/* scratch of this flush: the row group context is reset after it */
			MemoryContext prev = MemoryContextSwitchTo(w->rgcxt);
			char	  **scratch = palloc0(sizeof(char *) * w->ncols);

			raw = palloc0(sizeof(char *) * w->ncols);
			out = palloc0(sizeof(char *) * w->ncols);
			clens = palloc0(sizeof(size_t) * w->ncols);
			encodings = palloc0(sizeof(uint8) * w->ncols);
			for (int t = 0; t < 2; t++)
			{
				tasks[t].z = w->zctx[t];
				tasks[t].level = w->opts->compression_level;
				tasks[t].cols = palloc(sizeof(int) * w->ncols);
				tasks[t].raw = raw;
				tasks[t].out = out;
				tasks[t].clens = clens;
				tasks[t].rawlens = palloc(sizeof(size_t) * w->ncols);
				tasks[t].bitmap_len = bitmap_len;
				tasks[t].widths = w->delta_widths;
				tasks[t].scratch = scratch;
				tasks[t].encodings = encodings;
			}
			for (int i = 0; i < w->ncols; i++)
			{
				ColumnBuffer *cb = &w->cols[i];
				size_t		rawlen = cb->nulls.len + cb->values.len;
				int			t = load[0] <= load[1] ? 0 : 1;

				if (w->codecs[i].dropped)
					continue;
				raw[i] = palloc(Max(rawlen, 1));
				memcpy(raw[i], cb->nulls.data, cb->nulls.len);
				memcpy(raw[i] + cb->nulls.len, cb->values.data, cb->values.len);
				out[i] = palloc(codec_compress_bound(rawlen));
				if (w->delta_widths[i] > 0)
					scratch[i] = palloc(rawlen + codec_compress_bound(rawlen));
				tasks[t].rawlens[tasks[t].n] = rawlen;
				tasks[t].cols[tasks[t].n++] = i;
				load[t] += rawlen;
			}
			MemoryContextSwitchTo(prev);
			codec_run_parallel(compress_task_run, args, 2);
		}
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
		uint8		encoding;

		memset(e, 0, sizeof(ChunkEntry));
		w->rg_min[idx] = w->rg_max[idx] = NULL;
		if (cc->dropped)
			continue;

		if (parallel)
		{
			clen = clens[i];
			encoding = encodings[i];
			data = clen > 0 ? out[i] : raw[i];
			len = clen > 0 ? clen : rawlen;
		}
		else
		{
			/*
			 * one buffer: the raw chunk (null bitmap, then values), its
			 * compressed form, and the delta candidate's scratch
			 */
			size_t		need = rawlen + bound + (w->delta_widths[i] > 0 ? rawlen + bound : 0);

			if (w->chunkcap < need)
			{
				if (w->chunkbuf)
					pfree(w->chunkbuf);
				w->chunkcap = need;
				w->chunkbuf = MemoryContextAllocHuge(w->cxt, w->chunkcap);
			}
			memcpy(w->chunkbuf, cb->nulls.data, cb->nulls.len);
			memcpy(w->chunkbuf + cb->nulls.len, cb->values.data, cb->values.len);
			clen = chunk_compress(w->zctx[0], w->opts->compression_level, w->chunkbuf, rawlen,
								  bitmap_len, w->delta_widths[i], w->chunkbuf + rawlen + bound,
								  w->chunkbuf + rawlen, bound, &encoding);
			data = clen > 0 ? w->chunkbuf + rawlen : w->chunkbuf;
			len = clen > 0 ? clen : rawlen;
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
		e->encoding = encoding;
		w->seg_offset += len;

		cb->seg_nulls += cb->null_count;
		if (cb->has_minmax)
		{
			char	   *mn = stats_text_form(cc, cb->min, w->cxt);
			char	   *mx = mn ? stats_text_form(cc, cb->max, w->cxt) : NULL;

			if (mx == NULL)
			{
				if (mn)
					pfree(mn);
				mn = NULL;
				cb->has_minmax = false;
				cb->seg_unbounded = true;
			}
			w->rg_min[idx] = mn;
			w->rg_max[idx] = mx;
		}
		if (cb->has_minmax)
		{
			if (!cb->seg_has_minmax || compare_datums(w, i, cb->min, cb->seg_min_d) < 0)
			{
				cb->seg_min_d = datumCopy(cb->min, cc->typbyval, cc->typlen);
				cb->seg_min = w->rg_min[idx];
			}
			if (!cb->seg_has_minmax || compare_datums(w, i, cb->max, cb->seg_max_d) > 0)
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

/*
 * Close the segment's object (directory at its end) and start its last
 * batch; record it, and every segment sent before it, now if wait, else
 * once too many are out, at the end, or when something reads the recorded
 * ones (segment_writer_record).  A segment that replaces another is
 * recorded at once: its caller decides from it.
 */
static void
segment_writer_finish_segment(SegmentWriter *w, bool wait)
{
	SegmentDirectory dir = {0};
	bytea	   *dirb;
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
		if (w->cols[i].seg_has_minmax && !w->cols[i].seg_unbounded)
		{
			dir.seg_min[i] = w->cols[i].seg_min;
			dir.seg_max[i] = w->cols[i].seg_max;
		}
		else
			dir.seg_min[i] = dir.seg_max[i] = NULL;
	}
	dir.rg_rows = w->rg_rows;
	dir.chunks = w->chunks;
	dir.rg_min = w->rg_min;
	dir.rg_max = w->rg_max;
	dir.pruned = w->replacing ? w->pruned : 0;
	dirb = segment_directory_serialize(&dir);

	/* the object describes itself: directory, its length, a magic */
	object_writer_write(w->ow, VARDATA(dirb), VARSIZE(dirb) - VARHDRSZ);
	dirlen = VARSIZE(dirb) - VARHDRSZ;
	for (int b = 0; b < 8; b++)
		trailer[b] = (uint8) (dirlen >> (8 * b));
	memcpy(trailer + 8, "DSEGEND1", 8);
	object_writer_write(w->ow, (const char *) trailer, sizeof(trailer));

	{
		SentSegment *ss = palloc(sizeof(SentSegment));

		ss->ow = w->ow;
		ss->dir = dirb;
		ss->rows = w->seg_rows;
		ss->seg_no = w->seg_no;
		ss->bytes = object_writer_finish_start(w->ow);
		w->ow = NULL;
		w->sent = lappend(w->sent, ss);
		w->sent_bytes += ss->bytes;
		sent_bytes_backend += ss->bytes;
	}
	/*
	 * The oldest are recorded while too many are out or the backend's
	 * segments in flight hold too much (this one included: with others'
	 * holding the budget, it is waited for at once); all of them if asked,
	 * or if this one is stored already (file providers: nothing to wait
	 * for, and their buffers go back now).
	 */
	if (!object_writer_sends_ahead(((SentSegment *) llast(w->sent))->ow))
		wait = true;
	while (w->sent != NIL &&
		   (wait || w->replacing || list_length(w->sent) > SENT_SEGMENTS_MAX ||
			sent_bytes_backend > SENT_BYTES_MAX))
		segment_writer_record_oldest(w);

	/* start afresh */
	w->seg_no = -1;
	w->seg_rows = 0;
	w->nrowgroups = 0;
	w->seg_offset = 0;
	for (int i = 0; i < w->ncols; i++)
	{
		w->cols[i].seg_nulls = 0;
		w->cols[i].seg_has_minmax = false;
		w->cols[i].seg_unbounded = false;
	}
	MemoryContextSwitchTo(old);
}

/*
 * segment_writer_record_oldest: wait for the oldest segment whose shards
 * are still being sent (segment_writer_finish_segment) and record it: its
 * object in destor.objects, the segment in destor.segments (numbered now,
 * in the order the segments were written, unless its number was taken
 * when it began), and its directory among the written.
 */
static void
segment_writer_record_oldest(SegmentWriter *w)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	SentSegment *ss = linitial(w->sent);
	ObjectMeta *meta;
	int64		segno;
	SegmentDirectory *written;

	w->sent = list_delete_first(w->sent);
	w->sent_bytes -= ss->bytes;
	sent_bytes_backend -= ss->bytes;
	meta = object_writer_finish_end(ss->ow);
	catalog_insert_object(meta);
	segno = w->replacing ? ss->seg_no :
		w->number_fn == NULL ? catalog_next_segment_no() :
		ss->seg_no >= 0 ? ss->seg_no : w->number_fn(w->number_arg);
	if (!w->replacing)
		catalog_insert_segment(w->opts->table_id, segno, meta->id, ss->rows, ss->dir);
	written = segment_directory_parse(ss->dir);
	written->segment_no = segno;
	memcpy(written->object_id, meta->id, CODEC_OBJID_LEN);
	written->meta = meta;
	w->written = lappend(w->written, written);
	pfree(ss);
	MemoryContextSwitchTo(old);
}

/* segment_writer_record: record every segment still being sent, in order. */
static void
segment_writer_record(SegmentWriter *w)
{
	while (w->sent != NIL)
		segment_writer_record_oldest(w);
}

/*
 * segment_writer_pending: the rows this writer holds so far, as segment
 * directories a scan can read, for a function called by the statement that
 * writes them (it must see them, as with heap, though they are not in the
 * catalog under its snapshot).  The segments recorded so far come with their
 * object's metadata (they are in the catalog under later command ids only).
 * A segment under way is finished first if row groups of it are in its
 * object already; the row group being buffered is handed over in memory
 * (mem_chunks: the null bitmap and values, as a chunk holds them, copied into
 * the caller's context).  The recorded directories belong to the writer and
 * live until segment_writer_finish.
 */
List *
segment_writer_pending(SegmentWriter *w)
{
	List	   *result;
	SegmentDirectory *mem;

	if (w->nrowgroups > 0)
	{
		segment_writer_flush_rowgroup(w);
		segment_writer_finish_segment(w, true);
	}
	segment_writer_record(w);
	result = list_copy(w->written);
	if (w->rg_rowcount == 0)
		return result;

	mem = palloc0(sizeof(SegmentDirectory));
	mem->segment_no = w->number_fn ? w->seg_no : -1;
	mem->row_count = w->rg_rowcount;
	mem->nrowgroups = 1;
	mem->ncols = w->ncols;
	mem->typids = palloc0(sizeof(Oid) * Max(w->ncols, 1));
	mem->kinds = palloc0(sizeof(uint8) * Max(w->ncols, 1));
	mem->rg_rows = palloc(sizeof(uint32));
	mem->rg_rows[0] = w->rg_rowcount;
	mem->chunks = palloc0(sizeof(ChunkEntry) * Max(w->ncols, 1));
	mem->rg_min = palloc0(sizeof(char *) * Max(w->ncols, 1));
	mem->rg_max = palloc0(sizeof(char *) * Max(w->ncols, 1));
	mem->seg_nulls = palloc0(sizeof(uint64) * Max(w->ncols, 1));
	mem->seg_min = palloc0(sizeof(char *) * Max(w->ncols, 1));
	mem->seg_max = palloc0(sizeof(char *) * Max(w->ncols, 1));
	mem->mem_chunks = palloc0(sizeof(char *) * Max(w->ncols, 1));
	for (int i = 0; i < w->ncols; i++)
	{
		ColumnBuffer *cb = &w->cols[i];
		size_t		rawlen = cb->nulls.len + cb->values.len;

		if (w->codecs[i].dropped)
			continue;
		mem->typids[i] = w->codecs[i].typid;
		mem->kinds[i] = (uint8) w->codecs[i].kind;
		mem->chunks[i].length = mem->chunks[i].raw_length = (uint32) rawlen;
		mem->chunks[i].null_count = cb->null_count;
		mem->chunks[i].kind = (uint8) w->codecs[i].kind;
		mem->seg_nulls[i] = cb->null_count;
		mem->mem_chunks[i] = MemoryContextAllocHuge(CurrentMemoryContext, Max(rawlen, 1));
		memcpy(mem->mem_chunks[i], cb->nulls.data, cb->nulls.len);
		memcpy(mem->mem_chunks[i] + cb->nulls.len, cb->values.data, cb->values.len);
	}
	return lappend(result, mem);
}

/*
 * segment_writer_flush: every row added so far into a finished segment, as
 * if the statement ended here.  A later statement of the transaction that
 * modifies the table while this one is under way (a function the writing
 * statement calls) identifies rows by segment and row, and a row still
 * buffered has no segment yet.
 */
void
segment_writer_flush(SegmentWriter *w)
{
	segment_writer_flush_rowgroup(w);
	segment_writer_finish_segment(w, true);
	segment_writer_record(w);
}

/*
 * segment_writer_replace: the rows added next are a new version of segment
 * segment_no, with pruned of its rows stored as tombstones, and only its
 * first ncols columns (the others were added since: readers give them their
 * default).  The caller closes each row group where the old segment's ends
 * (segment_writer_end_rowgroup), so that a row keeps its number, and then
 * decides from the new object (segment_writer_recorded after
 * segment_writer_flush: its object is written and in destor.objects) whether
 * it replaces the old one (catalog_replace_segment).
 */
void
segment_writer_replace(SegmentWriter *w, int64 segment_no, int ncols, int64 pruned)
{
	Assert(w->ow == NULL && w->sent == NIL && w->rg_rowcount == 0 && w->written == NIL);
	w->replacing = true;
	w->seg_no = segment_no;
	w->ncols = Min(w->ncols, Max(ncols, 0));
	w->pruned = pruned;
}

/* segment_writer_end_rowgroup: close the row group being buffered. */
void
segment_writer_end_rowgroup(SegmentWriter *w)
{
	segment_writer_flush_rowgroup(w);
}

void
segment_writer_finish(SegmentWriter *w)
{
	segment_writer_flush_rowgroup(w);
	segment_writer_finish_segment(w, true);
	segment_writer_record(w);
	MemoryContextDelete(w->cxt);
}
