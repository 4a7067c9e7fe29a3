/*
 * table_fetch.c — where a scan's column chunks come from: the shared cache
 * (decompressed chunks), or the segment's object, fetched a batch of row
 * groups at a time.
 *
 * A batch is consecutive row groups of one segment, up to a few MiB of the
 * chunks the query needs, fetched with one set of provider requests while
 * the previous batch is decoded; a parallel participant claims a batch's
 * worth of row groups at once.  Chunks the cache holds decompressed are
 * left out of the fetch and copied from the cache when their row group is
 * decoded.
 */
#include "postgres.h"

#include "utils/memutils.h"
#include "utils/rel.h"

#include "destor/cache.h"
#include "table_internal.h"

/*
 * Compressed chunks are cached decompressed as well (keyed by their offset
 * in the segment object), so that a warm scan skips zstd: it costs about a
 * quarter of a warm scan's time, and a look-up by key reads its row's values
 * from them (scan_fetch_row_cached).  Chunks stored uncompressed gain
 * nothing.  Small chunks take a whole cache page each (see cache.h).
 */
static bool
chunk_cacheable(ChunkEntry *e)
{
	return e->length != e->raw_length && e->raw_length >= CACHE_SPAN_MIN_BYTES &&
		e->raw_length <= cache_span_max_bytes() && e->offset <= CACHE_SPAN_MAX_TAG;
}

/*
 * A chunk's plain bytes (null bitmap and values as value_codec.c lays them
 * out), from its stored ones: decompressed, and decoded if encoded — what
 * the cache keeps (when worth it), so a look-up of one row reads its value
 * at its offset in the cached chunk whatever the chunk's encoding.
 */
static char *
chunk_plain(DestorScan *st, SegmentDirectory *dir, ChunkEntry *e, char *stored)
{
	char	   *raw;
	size_t		outlen;

	if (e->length == e->raw_length && e->encoding == CHUNK_PLAIN)
		return stored;
	provider_poll();			/* the next batch keeps coming meanwhile */
	raw = palloc(Max(e->raw_length, 1));
	if (e->length == e->raw_length)
		memcpy(raw, stored, e->length);
	else if (codec_decompress(stored, e->length, raw, e->raw_length, &outlen) != 0 ||
			 outlen != e->raw_length)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a column chunk of destor table \"%s\" does not decompress",
						RelationGetRelationName(st->rel))));
	if (e->encoding != CHUNK_PLAIN)
	{
		char	   *plain = palloc(Max(e->raw_length, 1));

		chunk_decode(e, dir->rg_rows[(e - dir->chunks) / dir->ncols], raw, plain);
		pfree(raw);
		raw = plain;
	}
	if (chunk_cacheable(e))
		cache_insert_span(dir->object_id, e->offset, raw, e->raw_length);
	return raw;
}


/* The byte ranges of needed chunks, merged where they share blocks. */
typedef struct RangePlan
{
	int			n;				/* chunks, in unit and column order */
	int		   *atts;
	uint64	   *offs;
	int			nranges;		/* merged ranges */
	uint64	   *roffs;
	uint64	   *rlens;
	int		   *range_of;		/* per chunk */
} RangePlan;

/*
 * A batch: consecutive row groups of one segment whose chunks are fetched
 * in one set of requests, so that a scan moves a few MiB per provider
 * request instead of one row group's chunks (tens of KiB) — across a WAN a
 * round trip per row group, not bandwidth, bounded the scan.  The next
 * batch is fetched while this one is decoded.
 */
typedef struct ScanBatch
{
	int			first;			/* units [first, first + n) */
	int			n;
	int		   *chunk0;			/* per unit (and one past): its first chunk in plan */
	RangePlan	plan;
	char	  **rbufs;			/* per range: the fetched bytes */
} ScanBatch;

/*
 * Bytes of needed chunks a batch gathers: with k data shards each provider
 * serves about this / k per request, enough to keep a far provider's pipe
 * full (bandwidth x round trip), while a batch and the one fetched ahead
 * stay well under the memory a backend may use.
 */
#define SCAN_BATCH_BYTES	(8 * 1024 * 1024)
#define SCAN_BATCH_MAX_UNITS 1024

/*
 * Merging a batch's ranges: the largest gap of unneeded bytes read through,
 * and the largest merged range (under a read window, 16 MiB, which a
 * multi-range read fetches in one request per shard).
 */
#define SCAN_GAP_MAX_BYTES	(512 * 1024)
#define SCAN_RANGE_MAX_BYTES (12 * 1024 * 1024)

/*
 * The needed chunks of units [first, first + n) that the cache does not
 * hold decompressed, as merged ranges; chunk0[j] is unit first + j's first
 * chunk (NULL: not wanted).
 */
static void
batch_ranges(DestorScan *st, int first, int n, RangePlan *rp, int *chunk0)
{
	int			cap = Max(st->natts, 1) * n;
	uint64	   *lens = palloc(sizeof(uint64) * cap);
	uint64		needed = 0;
	uint64		gaps = 0;

	rp->n = 0;
	rp->nranges = 0;
	rp->atts = palloc(sizeof(int) * cap);
	rp->offs = palloc(sizeof(uint64) * cap);
	rp->roffs = palloc(sizeof(uint64) * cap);
	rp->rlens = palloc(sizeof(uint64) * cap);
	rp->range_of = palloc(sizeof(int) * cap);
	for (int j = 0; j < n; j++)
	{
		DestorScanUnit *u = &st->units[first + j];

		if (chunk0)
			chunk0[j] = rp->n;
		for (int a = 0; a < st->natts && a < u->dir->ncols; a++)
		{
			ChunkEntry *e = &u->dir->chunks[u->rg * u->dir->ncols + a];

			if (!chunk_needed(st, u->dir, a))
				continue;
			if (chunk_cacheable(e) && cache_contains_span(u->dir->object_id, e->offset))
				continue;
			rp->atts[rp->n] = a;
			rp->offs[rp->n] = e->offset;
			lens[rp->n] = e->length;
			rp->n++;
		}
	}
	if (chunk0)
		chunk0[n] = rp->n;

	/*
	 * Chunks are laid out in row group and column order; ranges closer than
	 * a block would fetch and open the same block twice, so read them as
	 * one.  Ranges a little further apart (the chunks of a column the query
	 * does not need between them) are read as one too, up to a quarter of
	 * the needed bytes in such gaps: a request per range costs each
	 * provider a round trip's worth of idle link, and only ranges of a MiB
	 * or more per shard tell a provider's bandwidth and go around a thin one
	 * (object_read.c); a narrow projection of a wide table still fetches
	 * little more than its columns.
	 */
	for (int i = 0; i < rp->n; i++)
		needed += lens[i];
	for (int i = 0; i < rp->n; i++)
	{
		int			last = rp->nranges - 1;
		uint64		end = last >= 0 ? rp->roffs[last] + rp->rlens[last] : 0;
		uint64		gap = last >= 0 && rp->offs[i] > end ? rp->offs[i] - end : 0;
		bool		merge = last >= 0 && rp->offs[i] >= rp->roffs[last] &&
			(gap <= OBJECT_BLOCK_SIZE ||
			 (gap <= SCAN_GAP_MAX_BYTES && (gaps + gap) * 4 <= needed &&
			  rp->offs[i] + lens[i] - rp->roffs[last] <= SCAN_RANGE_MAX_BYTES));

		if (merge && gap > OBJECT_BLOCK_SIZE)
			gaps += gap;
		if (merge)
			rp->rlens[last] = Max(rp->rlens[last], rp->offs[i] + lens[i] - rp->roffs[last]);
		else
		{
			rp->roffs[rp->nranges] = rp->offs[i];
			rp->rlens[rp->nranges] = lens[i];
			rp->nranges++;
		}
		rp->range_of[i] = rp->nranges - 1;
	}
}

/* The end of the units this participant may batch: all, or (parallel) its claim. */
static int
batch_limit(DestorScan *st)
{
	return st->next_unit ? st->claim_end : st->nunits;
}

/*
 * How many units from "first" one batch takes: row groups of one segment
 * (read from its object), until SCAN_BATCH_BYTES of needed chunks.
 */
static int
batch_extent(DestorScan *st, int first)
{
	SegmentDirectory *dir = st->units[first].dir;
	uint64		bytes = 0;
	int			n = 0;
	int			limit = batch_limit(st);

	if (st->unit_batches)
		return 1;

	while (first + n < limit && n < SCAN_BATCH_MAX_UNITS && bytes < SCAN_BATCH_BYTES)
	{
		DestorScanUnit *u = &st->units[first + n];

		if (u->dir != dir || u->dir->mem_chunks)
			break;
		for (int a = 0; a < st->natts && a < dir->ncols; a++)
			if (chunk_needed(st, dir, a))
				bytes += dir->chunks[u->rg * dir->ncols + a].length;
		n++;
	}
	return Max(n, 1);
}

/* Units a parallel participant claims at a time: one batch's worth on average. */
int
scan_claim_size(DestorScan *st)
{
	uint64		bytes = 0;

	for (int i = 0; i < st->nunits; i++)
	{
		DestorScanUnit *u = &st->units[i];

		for (int a = 0; a < st->natts && a < u->dir->ncols; a++)
			if (chunk_needed(st, u->dir, a))
				bytes += u->dir->chunks[u->rg * u->dir->ncols + a].length;
	}
	if (st->nunits == 0 || bytes == 0)
		return 1;
	return (int) Max(1, Min(SCAN_BATCH_MAX_UNITS, SCAN_BATCH_BYTES / Max(bytes / st->nunits, 1)));
}

/*
 * Whether most of the scan's needed chunks (by bytes) are not in the
 * shared cache, neither decompressed nor as the page they start in: the
 * scan will wait on the providers rather than on its CPU.
 */
bool
scan_mostly_uncached(DestorScan *st)
{
	uint64		needed = 0;
	uint64		uncached = 0;

	for (int i = 0; i < st->nunits; i++)
	{
		DestorScanUnit *u = &st->units[i];

		if (u->dir->mem_chunks)
			continue;
		for (int a = 0; a < st->natts && a < u->dir->ncols; a++)
		{
			ChunkEntry *e = &u->dir->chunks[u->rg * u->dir->ncols + a];

			if (!chunk_needed(st, u->dir, a))
				continue;
			needed += e->length;
			if (!(chunk_cacheable(e) && cache_contains_span(u->dir->object_id, e->offset)) &&
				!cache_contains(u->dir->object_id, e->offset / CACHE_PAGE_SIZE))
				uncached += e->length;
		}
	}
	return uncached * 2 > needed;
}

/*
 * Fetch the batch that starts at unit "first" (its needed chunks the cache
 * does not hold), and start fetching the batch after it if that one reads
 * the same segment.  Its chunks are opened as scan_unit_chunks needs them
 * (object_reader_read_multi_need), the later ones still coming in.
 */
static ScanBatch *
batch_fetch(DestorScan *st, int first)
{
	MemoryContext old;
	ScanBatch  *b;
	RangePlan	next[OBJECT_READ_AHEAD_MAX] = {{0}};
	ObjectReadRanges ahead[OBJECT_READ_AHEAD_MAX];
	int			nahead = 0;
	int			after;
	ObjectReadStats before;

	if (st->batchcxt == NULL)
		st->batchcxt = AllocSetContextCreate(MemoryContextGetParent(st->rgcxt),
											 "destor scan batch", ALLOCSET_DEFAULT_SIZES);
	/* the batch before, opened as it came in, writes into this context */
	scan_batch_end(st, false);
	MemoryContextReset(st->batchcxt);
	st->batch = NULL;
	old = MemoryContextSwitchTo(st->batchcxt);
	b = palloc0(sizeof(ScanBatch));
	b->first = first;
	b->n = batch_extent(st, first);
	b->chunk0 = palloc(sizeof(int) * (b->n + 1));
	batch_ranges(st, first, b->n, &b->plan, b->chunk0);
	/* the batches after it, as long as they read the same segment */
	after = first + b->n;
	while (!st->unit_batches && nahead < OBJECT_READ_AHEAD_MAX && after < batch_limit(st) &&
		   st->units[after].dir == st->units[first].dir)
	{
		int			extent = batch_extent(st, after);

		batch_ranges(st, after, extent, &next[nahead], NULL);
		ahead[nahead].n = next[nahead].nranges;
		ahead[nahead].offsets = next[nahead].roffs;
		ahead[nahead].lens = next[nahead].rlens;
		nahead++;
		after += extent;
	}
	b->rbufs = palloc(sizeof(char *) * Max(b->plan.nranges, 1));
	for (int r = 0; r < b->plan.nranges; r++)
		b->rbufs[r] = buffer_alloc_large(CurrentMemoryContext, Max(b->plan.rlens[r], 1));
	MemoryContextSwitchTo(old);
	before = object_read_stats;
	object_reader_read_multi_begin(st->reader, b->plan.nranges, b->plan.roffs, b->plan.rlens,
								   b->rbufs, nahead, ahead);
	scan_stats_since(st, &before);
	st->batch = b;
	return b;
}

/*
 * scan_unit_chunks — the decompressed chunk of every needed column of unit
 * u (NULL for the others), allocated in the current context: from its
 * batch (fetched with it, or now), else from the cache, else (evicted
 * since the batch was planned) read on its own.
 */
char	  **
scan_unit_chunks(DestorScan *st, DestorScanUnit *u)
{
	int			idx = (int) (u - st->units);
	ScanBatch  *b = st->batch;
	char	  **plain = palloc0(sizeof(char *) * Max(st->natts, 1));
	int			j;

	if (b == NULL || idx < b->first || idx >= b->first + b->n)
		b = batch_fetch(st, idx);
	j = idx - b->first;
	for (int i = b->chunk0[j]; i < b->chunk0[j + 1]; i++)
	{
		int			a = b->plan.atts[i];
		int			r = b->plan.range_of[i];
		ChunkEntry *e = &u->dir->chunks[u->rg * u->dir->ncols + a];
		ObjectReadStats before = object_read_stats;

		/* its bytes opened once in, while the batch's later ones still come */
		object_reader_read_multi_need(st->reader, b->plan.offs[i], e->length);
		scan_stats_since(st, &before);
		plain[a] = chunk_plain(st, u->dir, e, b->rbufs[r] + (b->plan.offs[i] - b->plan.roffs[r]));
	}
	for (int a = 0; a < st->natts; a++)
	{
		ChunkEntry *e;

		if (!chunk_needed(st, u->dir, a))
			continue;
		st->chunks_read++;
		if (plain[a] != NULL)
			continue;
		e = &u->dir->chunks[u->rg * u->dir->ncols + a];
		plain[a] = scan_chunk_buffer(st, a, e->raw_length);
		if (cache_lookup_span(u->dir->object_id, e->offset, plain[a], e->raw_length))
			st->chunks_cached++;
		else
		{
			char	   *stored = palloc(Max(e->length, 1));
			ObjectReadStats before = object_read_stats;

			object_reader_read(st->reader, e->offset, e->length, stored);
			scan_stats_since(st, &before);
			plain[a] = chunk_plain(st, u->dir, e, stored);
		}
	}
	return plain;
}

/*
 * The scan has no unit left (or is rescanned): the batch opened as it came
 * in ends, its requests counted in the scan's statistics before EXPLAIN
 * shows them.
 */
void
scan_batch_end(DestorScan *st, bool discard)
{
	ObjectReadStats before = object_read_stats;

	if (st->reader == NULL)
		return;
	if (discard)
		object_reader_read_multi_discard(st->reader);
	else
		object_reader_read_multi_end(st->reader);
	scan_stats_since(st, &before);
}
