/*
 * object_read_ahead.c — fetching before it is asked for.  A sequential
 * read starts the healthy fetch of its next window in the current one's
 * last round trip (provider_wait_tail), into the reader's second buffer
 * set: it comes in while the current one is opened.  Multi-range reads (a
 * row group's column chunks) fetch all their ranges in one batch of
 * provider requests, and can start the next call's batch early; ranges the
 * cache has, or too large to batch, are read the ordinary way.  A batch
 * the healthy path cannot serve from data shards alone, or whose data
 * shards are on providers not measured yet, is read as runs of whole
 * stripes from every shard, hedged (multi_prepare_runs).  A
 * read-ahead not wanted is cancelled before its memory goes
 * (provider_cancel: s3 transfers stopped, not waited for).
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "destor/cache.h"
#include "destor/object.h"
#include "object_read_internal.h"

/* Drop the windows read ahead beyond the next one from the i-th on. */
static void
reader_more_discard_from(ObjectReader *r, int i)
{
	for (int j = READ_AHEAD_MORE - 1; j >= i; j--)
	{
		HedgedWindow *h = r->ahead_more[j];

		r->ahead_more[j] = NULL;
		if (h)
			reader_hedged_discard(r, h);
	}
}

/* Drop the hedged windows read ahead (not wanted). */
void
reader_hedged_ahead_discard(ObjectReader *r)
{
	HedgedWindow *h = r->ahead_hedged;

	r->ahead_hedged = NULL;
	if (h)
		reader_hedged_discard(r, h);
	reader_more_discard_from(r, 0);
}

/* The first window after the next one read ahead is the next one now. */
static void
reader_more_shift(ObjectReader *r)
{
	r->ahead_hedged = r->ahead_more[0];
	for (int i = 0; i < READ_AHEAD_MORE - 1; i++)
		r->ahead_more[i] = r->ahead_more[i + 1];
	r->ahead_more[READ_AHEAD_MORE - 1] = NULL;
}

/*
 * The hedged window read ahead for window [b0, b1], taken over by the
 * caller; NULL when there is none.  The windows read further ahead, if
 * any, move up one — also when this window was read ahead the healthy
 * way (r->ahead), and none hedged.
 */
HedgedWindow *
reader_hedged_take(ObjectReader *r, uint64 b0, uint64 b1)
{
	HedgedWindow *h = r->ahead_hedged;

	if (h == NULL && r->ahead_more[0] != NULL)
	{
		/* the next window came the healthy way: the one after is next now */
		reader_more_shift(r);
		return NULL;
	}
	if (h == NULL || !reader_hedged_matches(h, b0, b1))
		return NULL;
	reader_more_shift(r);
	return h;
}

/*
 * Keep of the hedged windows read ahead only what continues the read: the
 * next window [nb0, nb1] (nb1 < nb0: none) and those after it, which
 * r->more_b0/more_b1 name.  A read elsewhere drops them: their transfers
 * are stopped, not waited for.
 */
void
reader_hedged_keep(ObjectReader *r, uint64 nb0, uint64 nb1)
{
	for (int i = 0; i < READ_AHEAD_MORE; i++)
		if (r->ahead_more[i] &&
			(i >= r->nmore || !reader_hedged_matches(r->ahead_more[i], r->more_b0[i], r->more_b1[i])))
		{
			/* one further on would move up into the wrong place */
			reader_more_discard_from(r, i);
			break;
		}
	if (r->ahead_hedged && (nb1 < nb0 || !reader_hedged_matches(r->ahead_hedged, nb0, nb1)))
	{
		/* a window further ahead with no next one before it would be promoted wrongly */
		reader_hedged_ahead_discard(r);
	}
}

/* The first wanted window beyond the next one not yet started, or -1. */
static int
reader_more_missing(ObjectReader *r)
{
	for (int i = 0; i < r->nmore; i++)
		if (r->ahead_more[i] == NULL)
			return i;
	return -1;
}

/*
 * reader_ahead_poll — between pieces of a window's work: once the window
 * read ahead last (the next one, healthy or hedged, or one further on) is
 * in its last round trip, start the one after it, when a caller reading
 * on wants it (r->more_b0/more_b1).  A window takes as long to open and
 * write out as a provider takes for a large part of its bytes: started
 * only when the caller's next turn comes, the window after next left every
 * link idle for a round trip and more.  Only behind one that is ending:
 * bandwidth shared with the one before would make that one later.
 */
void
reader_ahead_poll(ObjectReader *r)
{
	int			i = reader_more_missing(r);
	bool		ending;

	if (i < 0)
		return;
	if (i > 0)
		ending = reader_hedged_ending(r->ahead_more[i - 1]);
	else if (r->ahead_hedged)
		ending = reader_hedged_ending(r->ahead_hedged);
	else if (r->ahead)
		ending = provider_batch_ending(r->ahead);
	else
		return;
	if (ending)
		reader_ahead_start_more(r);
}

/* Start the first wanted window after the next one not started yet, if any. */
void
reader_ahead_start_more(ObjectReader *r)
{
	int			i = reader_more_missing(r);
	uint64		cs,
				ce;

	if (i < 0)
		return;
	cs = block_cstart(r, r->more_b0[i]);
	ce = block_cend(r, r->more_b1[i]);
	r->ahead_more[i] = reader_hedged_start(r, r->more_b0[i], r->more_b1[i],
										   reader_window_plan(r, cs, ce));
}

/*
 * Before window h is opened: wait for it, and whenever the window read
 * ahead last is two round trips from its end (new connections need one
 * for their set-up), send the one after it.  Sent only once h had been
 * opened, such a window waited for that decoding and its round trip
 * while every link was idle.
 */
void
reader_ahead_wait_for(ObjectReader *r, struct HedgedWindow *h)
{
	int			i;

	while ((i = reader_more_missing(r)) >= 0)
	{
		HedgedWindow *last = i > 0 ? r->ahead_more[i - 1] : r->ahead_hedged;

		if (last == NULL || !reader_hedged_wait_end_or_lead(h, last, 2))
			return;
		reader_ahead_start_more(r);
	}
}

/*
 * Drop a read-ahead that was started but is not wanted: its transfers are
 * stopped, not waited for (a scan under a LIMIT, a cursor closed early, a
 * read elsewhere would otherwise wait for a batch it throws away).
 */
void
reader_ahead_discard(ObjectReader *r)
{
	ProviderBatch *b = r->ahead;

	if (b == NULL)
		return;
	r->ahead = NULL;
	provider_cancel(b);
	object_read_stats.requests += r->ahead_nreqs;
}

/*
 * How the window of stream bytes [cs, ce) is best fetched: from its data
 * shards; or hedged, as a run of stripes — from every shard when a data
 * shard's provider has no measured read time, from the k fastest with
 * spares when one is unusable, down or slow.  Without parity, or off s3,
 * the healthy way is tried first and the degraded path follows if need be.
 */
WindowPlan
reader_window_plan(ObjectReader *r, uint64 cs, uint64 ce)
{
	bool		unmeasured;

	bool		healthy = reader_healthy_plan(r, cs, ce, &unmeasured);

	if (healthy && unmeasured)
		return WINDOW_HEDGED_EVERY;
	if (reader_balance_plan(r, stream_stripes(r, cs, ce), NULL))
		return WINDOW_BALANCED;
	if (healthy)
		return WINDOW_HEALTHY;
	return reader_hedgeable(r) ? WINDOW_HEDGED_DEGRADED : WINDOW_HEALTHY;
}

/* Start fetching window [b0, b1] ahead of need, the way its plan says. */
void
reader_next_start(ObjectReader *r, uint64 b0, uint64 b1)
{
	uint64		cs = block_cstart(r, b0);
	uint64		ce = block_cend(r, b1);
	WindowPlan	plan;

	/* read two ahead already (reader_ahead_poll) */
	if (r->ahead_hedged && reader_hedged_matches(r->ahead_hedged, b0, b1))
		return;
	plan = reader_window_plan(r, cs, ce);
	if (plan == WINDOW_HEALTHY)
	{
		if (r->ahead == NULL)
			reader_ahead_start(r, cs, ce);
	}
	else if (r->ahead_hedged == NULL)
		r->ahead_hedged = reader_hedged_start(r, b0, b1, plan);
}

/* Start fetching stream bytes [cs, ce) into the buffer set not in use. */
void
reader_ahead_start(ObjectReader *r, uint64 cs, uint64 ce)
{
	int			n;
	MemoryContext old;

	Assert(r->ahead == NULL);
	n = reader_healthy_requests(r, cs, ce, r->cur_set ^ 1, r->set_reqs[r->cur_set ^ 1],
								r->set_shard_of[r->cur_set ^ 1], &r->ahead_src);
	if (n <= 0)
		return;
	r->ahead_nreqs = n;
	r->ahead_cs = cs;
	r->ahead_ce = ce;
	/* tied to the reader's context: abandoned before its buffers go */
	old = MemoryContextSwitchTo(r->cxt);
	r->ahead = provider_start(r->set_reqs[r->cur_set ^ 1], n);
	MemoryContextSwitchTo(old);
}

/*
 * Several small ranges at once (say, the column chunks of a row group):
 * one parallel batch of provider requests instead of a round trip each.
 * A MultiFetch can also be started ahead of need (read-ahead of the next
 * row group while this one is decoded) and collected by the next call.
 */
typedef struct MultiFetch
{
	MemoryContext cxt;
	int			n;
	uint64	   *offsets;
	uint64	   *lens;
	ProviderRequest *reqs;
	int		   *shard_of;
	int		   *first;
	int		   *count;			/* requests per range; -1: read it on its own */
	WindowSource *srcs;
	int			nreqs;
	ProviderBatch *batch;		/* started, not yet finished */
	/* ranges read as runs of whole stripes from every shard (count -3) */
	StripeRuns *runs;
	int		   *run_of;			/* per range: its run */
	int			nruns;
	WindowSource *run_srcs;
	bool	   *run_ok;
	/* opened as the caller needs its ranges (object_reader_read_multi_begin) */
	uint64	   *opened;			/* per range: dsts hold it up to here */
	char	  **dsts;
	uint64	   *need;			/* per request: bytes a range's next blocks need */
	bool		pending;		/* read ahead, started once the batch before it ends */
	bool		measures;		/* asked of every shard: read times not known yet */
} MultiFetch;

/*
 * Runs of stripes closer than this are read as one: a stripe more of every
 * shard costs less than requests more, which queue behind the transfer
 * loop's limit of parallel connections on a WAN.
 */
#define RUN_GAP_STRIPES 2

typedef struct RangeStripes
{
	uint64		s0;
	uint64		s1;
	int			range;
} RangeStripes;

static int
cmp_range_stripes(const void *a, const void *b)
{
	const RangeStripes *x = a;
	const RangeStripes *y = b;

	if (x->s0 != y->s0)
		return x->s0 < y->s0 ? -1 : 1;
	return x->range - y->range;
}

/*
 * multi_prepare_runs — read the candidate ranges (cand[i]) of a multi-range
 * read as runs of whole stripes from every shard, in one hedged batch
 * (reader_runs_prepare): when a range's data shards are not all usable, or
 * one is on a provider whose read time is not known yet.  Before, such
 * ranges were read degraded one by one after the batch, a round trip each;
 * and a backend's first batch waited for the data shards wherever they
 * were, on a far provider too, where asking every shard lets the first k
 * answers win.  Unless every shard is asked, the runs are spread over
 * every usable shard when that pays (object_read_balance.c): a scan's
 * batch of row groups is a window too.
 */
static void
multi_prepare_runs(ObjectReader *r, MultiFetch *mf, const bool *cand, bool degraded,
				   bool every_shard)
{
	StripeSplit split;
	uint64		total = 0;
	bool		balanced;
	RangeStripes *rs = palloc(sizeof(RangeStripes) * mf->n);
	uint64	   *s0 = palloc(sizeof(uint64) * mf->n);
	uint64	   *s1 = palloc(sizeof(uint64) * mf->n);
	uint64		bs = r->meta->block_size;
	int			nrs = 0;

	for (int i = 0; i < mf->n; i++)
	{
		uint64		b0,
					b1;

		if (!cand[i])
			continue;
		b0 = mf->offsets[i] / bs;
		b1 = (mf->offsets[i] + mf->lens[i] - 1) / bs;
		rs[nrs].s0 = block_cstart(r, b0) / r->stripe_size;
		rs[nrs].s1 = (block_cend(r, b1) - 1) / r->stripe_size;
		rs[nrs].range = i;
		nrs++;
	}
	if (nrs == 0)
		return;
	qsort(rs, nrs, sizeof(RangeStripes), cmp_range_stripes);
	mf->run_of = palloc(sizeof(int) * mf->n);
	for (int x = 0; x < nrs; x++)
	{
		if (mf->nruns > 0 && rs[x].s0 <= s1[mf->nruns - 1] + 1 + RUN_GAP_STRIPES)
			s1[mf->nruns - 1] = Max(s1[mf->nruns - 1], rs[x].s1);
		else
		{
			s0[mf->nruns] = rs[x].s0;
			s1[mf->nruns] = rs[x].s1;
			mf->nruns++;
		}
		mf->run_of[rs[x].range] = mf->nruns - 1;
		mf->count[rs[x].range] = -3;
	}
	mf->run_srcs = palloc0(sizeof(WindowSource) * mf->nruns);
	mf->run_ok = palloc0(sizeof(bool) * mf->nruns);
	for (int j = 0; j < mf->nruns; j++)
		total += s1[j] - s0[j] + 1;
	balanced = !every_shard && reader_balance_plan(r, total, &split);
	mf->runs = reader_runs_prepare(r, mf->nruns, s0, s1, RUNS_USABLE, r->liar, degraded,
								   every_shard, false, balanced ? &split : NULL,
								   &mf->reqs, &mf->nreqs);
}

/*
 * Whether the candidate ranges, read as runs of stripes, would be spread
 * over every shard (object_read_balance.c): a scan's batch of row groups
 * coalesced into one large range is a bulk window too.
 */
static bool
multi_spread_pays(ObjectReader *r, MultiFetch *mf, const bool *cand)
{
	uint64		bs = r->meta->block_size;
	uint64		stripes = 0;

	for (int i = 0; i < mf->n; i++)
		if (cand[i])
			stripes += stream_stripes(r, block_cstart(r, mf->offsets[i] / bs),
									  block_cend(r, (mf->offsets[i] + mf->lens[i] - 1) / bs));
	return stripes > 0 && reader_balance_plan(r, stripes, NULL);
}

/*
 * multi_prepare — the healthy-path requests of every range of a multi-range
 * read, in one array for one batch.  A range the cache holds entirely is
 * marked to be served from it (-2); one larger than a window is read on
 * its own later (-1).  When some range's data shards are not all usable or
 * not all measured, every range to fetch is read in runs of stripes (-3).
 */
static MultiFetch *
multi_prepare(ObjectReader *r, int n, const uint64 *offsets, const uint64 *lens)
{
	ObjectMeta *meta = r->meta;
	uint64		bs = meta->block_size;
	MemoryContext cxt = AllocSetContextCreate(r->cxt, "destor multi-range read", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	MultiFetch *mf = palloc0(sizeof(MultiFetch));
	bool	   *cand;
	bool		unmeasured = false;
	bool		declined = false;	/* a range the healthy path would not read */
	uint64		total;
	int			ncand = 0;
	bool		hedge = false;	/* a range on a provider not measured yet */

	mf->cxt = cxt;
	mf->n = n;
	mf->offsets = palloc(sizeof(uint64) * n);
	mf->lens = palloc(sizeof(uint64) * n);
	memcpy(mf->offsets, offsets, sizeof(uint64) * n);
	memcpy(mf->lens, lens, sizeof(uint64) * n);
	mf->reqs = palloc0(sizeof(ProviderRequest) * n * r->k);
	mf->shard_of = palloc(sizeof(int) * n * r->k);
	mf->first = palloc(sizeof(int) * n);
	mf->count = palloc0(sizeof(int) * n);
	mf->srcs = palloc0(sizeof(WindowSource) * n);
	mf->opened = palloc(sizeof(uint64) * n);
	memcpy(mf->opened, offsets, sizeof(uint64) * n);
	cand = palloc0(sizeof(bool) * n);

	/*
	 * The batch's ranges are judged together: many ranges of a few hundred
	 * KiB each still move their total from every data shard's provider, and
	 * a far or thin one, or one never measured, sets the batch's pace.
	 */
	total = 0;
	for (int i = 0; i < n; i++)
		total += lens[i];
	r->bulk_batch = total / Max(r->k, 1) >= READ_BULK_BYTES;

	for (int i = 0; i < n; i++)
	{
		uint64		b0,
					b1;

		mf->first[i] = mf->nreqs;
		mf->count[i] = -1;
		if (lens[i] == 0)
		{
			mf->count[i] = 0;
			continue;
		}
		if (offsets[i] + lens[i] > meta->size || offsets[i] + lens[i] < offsets[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("read of %llu bytes at offset %llu is beyond the end of object %s (%llu bytes)",
							(unsigned long long) lens[i], (unsigned long long) offsets[i],
							object_id_text(meta->id), (unsigned long long) meta->size)));
		b0 = offsets[i] / bs;
		b1 = (offsets[i] + lens[i] - 1) / bs;
		if (b1 - b0 + 1 > READ_WINDOW_BLOCKS)
			continue;
		if (r->use_cache)
		{
			uint64		missing = 0;

			for (uint64 b = b0; b <= b1; b++)
				missing += !cache_contains(meta->id, b);
			if (missing == 0)
			{
				mf->count[i] = -2;	/* served from the cache when opened */
				continue;
			}
			cache_count_misses(missing);
		}
		cand[i] = true;
		ncand++;
		if (!reader_healthy_plan(r, block_cstart(r, b0), block_cend(r, b1), &unmeasured))
			declined = true;
		else if (unmeasured)
			hedge = true;
	}
	if (declined || hedge)
	{
		multi_prepare_runs(r, mf, cand, declined, hedge && !declined);
		mf->measures = hedge && !declined;
	}
	else if (reader_hedgeable(r) &&
			 ((ncand > 1 && total / Max(r->k, 1) >= READ_RUNS_MIN_BYTES) ||
			  multi_spread_pays(r, mf, cand)))
	{
		/*
		 * A batch of several ranges on the healthy path is a request per
		 * range and data shard, and one late request held the whole batch
		 * until the stall check gave it up and its range was read again
		 * around it.  As runs of stripes it is a request or two per shard:
		 * the k fastest shards are asked, the others held as spares for one
		 * that is late.
		 */
		multi_prepare_runs(r, mf, cand, false, false);
	}
	else
	{
		for (int i = 0; i < n; i++)
		{
			uint64		b0 = offsets[i] / bs;
			uint64		b1 = (offsets[i] + lens[i] - 1) / bs;

			if (!cand[i])
				continue;
			mf->count[i] = reader_healthy_requests(r, block_cstart(r, b0), block_cend(r, b1), -1,
												   mf->reqs + mf->nreqs, mf->shard_of + mf->nreqs,
												   &mf->srcs[i]);
			if (mf->count[i] > 0)
				mf->nreqs += mf->count[i];
		}
	}
	r->bulk_batch = false;
	MemoryContextSwitchTo(old);
	return mf;
}

static void
multi_start(ObjectReader *r, MultiFetch *mf)
{
	MemoryContext old = MemoryContextSwitchTo(mf->cxt);

	mf->batch = provider_start(mf->reqs, mf->nreqs);
	MemoryContextSwitchTo(old);
}

static void
multi_finish(ObjectReader *r, MultiFetch *mf)
{
	ProviderBatch *b = mf->batch;

	if (b == NULL)
		return;
	mf->batch = NULL;			/* finish cleans up itself if it fails */
	provider_finish(b);
	object_read_stats.requests += mf->nreqs;
}

/*
 * Open every range of a finished MultiFetch into dsts (repairing as
 * needed): what was not opened while it came in (mf->opened).
 */
static void
multi_open(ObjectReader *r, MultiFetch *mf, char **dsts)
{
	uint64		bs = r->meta->block_size;
	MemoryContext old = MemoryContextSwitchTo(mf->cxt);

	if (mf->runs)
		(void) reader_runs_complete(r, mf->runs, mf->run_srcs, mf->run_ok);
	for (int i = 0; i < mf->n; i++)
	{
		uint64		off = mf->opened[i];
		uint64		end = mf->offsets[i] + mf->lens[i];
		uint64		len = end > off ? end - off : 0;
		char	   *dst = dsts[i] + (off - mf->offsets[i]);
		uint64		b0,
					b1;
		bool		ok = mf->count[i] >= 0;

		for (int q = mf->first[i]; q < mf->first[i] + Max(mf->count[i], 0); q++)
		{
			note_fetched(mf->reqs[q].result_size);
			if (!mf->reqs[q].ok || mf->reqs[q].result_size != mf->reqs[q].length)
			{
				reader_note_failure(r, mf->shard_of[q], &mf->reqs[q], SHARD_SUSPECT);
				ok = false;
			}
		}
		if (len == 0)
			continue;
		b0 = off / bs;
		b1 = (off + len - 1) / bs;
		r->cache_fill = true;
		if (mf->count[i] == -2)
		{
			bool		all = true;

			for (uint64 b = b0; b <= b1 && all; b++)
			{
				uint64		plen = b == (uint64) r->meta->nblocks - 1 ? r->meta->size - b * bs : bs;
				uint64		from = Max(off, b * bs);
				uint64		to = Min(off + len, b * bs + plen);

				all = cache_lookup(r->meta->id, b, (uint32) (from - b * bs),
								   (uint32) (to - b * bs), dst + (from - off));
			}
			if (!all)
			{
				/* evicted meanwhile: read it the ordinary way */
				MemoryContextSwitchTo(r->cxt);
				object_reader_read(r, off, len, dst);
				MemoryContextSwitchTo(mf->cxt);
			}
			continue;
		}
		if (mf->count[i] == -3)
		{
			int			j = mf->run_of[i];

			/* a run short of good chunks: read around it as a single window */
			if (!mf->run_ok[j] ||
				!reader_open_blocks(r, b0, b1, NULL, &mf->run_srcs[j], off, len, dst, false))
				reader_open_window_degraded(r, b0, b1, NULL, off, len, dst);
			continue;
		}
		if (mf->count[i] < 0 && b1 - b0 + 1 > READ_WINDOW_BLOCKS)
		{
			MemoryContextSwitchTo(r->cxt);
			object_reader_read(r, off, len, dst);
			MemoryContextSwitchTo(mf->cxt);
			continue;
		}
		if (!ok || !reader_open_blocks(r, b0, b1, NULL, &mf->srcs[i], off, len, dst, false))
			reader_open_window_degraded(r, b0, b1, NULL, off, len, dst);
	}
	MemoryContextSwitchTo(old);
}

static bool
multi_matches(MultiFetch *mf, int n, const uint64 *offsets, const uint64 *lens)
{
	return mf->n == n &&
		memcmp(mf->offsets, offsets, sizeof(uint64) * n) == 0 &&
		memcmp(mf->lens, lens, sizeof(uint64) * n) == 0;
}

/* Free a multi-range read, its transfers stopped and counted, not waited for. */
static void
multi_drop(MultiFetch *mf)
{
	if (mf->batch)
	{
		provider_cancel(mf->batch);
		mf->batch = NULL;
		object_read_stats.requests += mf->nreqs;
	}
	MemoryContextDelete(mf->cxt);
}

/* Drop read-aheads from position "from" on (their transfers stopped). */
static void
prefetch_discard_from(ObjectReader *r, int from)
{
	for (int a = OBJECT_READ_AHEAD_MAX - 1; a >= from; a--)
	{
		MultiFetch *mf = r->prefetch[a];

		if (mf == NULL)
			continue;
		r->prefetch[a] = NULL;
		multi_drop(mf);
	}
}

/* Drop every read-ahead that is not wanted. */
void
reader_prefetch_discard(ObjectReader *r)
{
	prefetch_discard_from(r, 0);
}

/* Send the read-aheads held back until the batch before them ends. */
static void
prefetch_start_pending(ObjectReader *r)
{
	for (int a = 0; a < OBJECT_READ_AHEAD_MAX; a++)
		if (r->prefetch[a] && r->prefetch[a]->pending)
		{
			r->prefetch[a]->pending = false;
			multi_start(r, r->prefetch[a]);
		}
}

static bool
prefetch_pending(ObjectReader *r)
{
	for (int a = 0; a < OBJECT_READ_AHEAD_MAX; a++)
		if (r->prefetch[a] && r->prefetch[a]->pending)
			return true;
	return false;
}

/*
 * Whether a started MultiFetch can be opened as it comes in: an s3 batch
 * whose every range is read on the healthy path or as runs of stripes
 * (object_reader_read_multi_need says, range by range, whether its shards
 * serve it as they come).  Ranges from the cache or read on their own wait
 * for the end as before, and so does a batch asked of every shard because
 * read times are not known yet: it is what measures the providers, and a
 * caller working between its needs leaves the times of its requests loose
 * when the backend shares its CPU (TAP 113 under the parallel group's
 * load: a provider left without a rate, the next bulk reads went around
 * it as unrated).
 */
static bool
multi_streamable(MultiFetch *mf)
{
	if (mf->batch == NULL || mf->nreqs == 0 || mf->measures)
		return false;
	for (int q = 0; q < mf->nreqs; q++)
		if (mf->reqs[q].provider->type != PROVIDER_S3 || mf->reqs[q].op != POP_GET)
			return false;
	for (int i = 0; i < mf->n; i++)
		if (mf->count[i] < 0 && !(mf->count[i] == -3 && mf->runs != NULL))
			return false;
	return true;
}

/*
 * The batch being opened as it comes in is wanted whole now, or was
 * needed in a way it cannot serve as it comes: send the read-ahead behind
 * it in its last round trip, wait for its end, and open what is left.
 */
static void
multi_stream_complete(ObjectReader *r)
{
	MultiFetch *mf = r->stream;

	if (mf == NULL)
		return;
	r->stream = NULL;			/* mf->cxt, the reader's child, goes with it on ERROR */
	if (mf->batch && prefetch_pending(r))
		provider_wait_tail(mf->batch);
	prefetch_start_pending(r);
	multi_finish(r, mf);
	multi_open(r, mf, mf->dsts);
	MemoryContextDelete(mf->cxt);
}

/*
 * Read ranges [offsets[i], +lens[i]) into dsts[i], and start fetching what
 * the caller announces it will read next.  stream: a batch that can be
 * (multi_streamable) is left running in r->stream and its ranges opened
 * as object_reader_read_multi_need asks; its read-ahead is sent in its
 * last round trip, as it would have been here.
 */
static void
multi_read(ObjectReader *r, int n, const uint64 *offsets, const uint64 *lens, char **dsts,
		   int nahead, const ObjectReadRanges *ahead, bool stream)
{
	MultiFetch *mf;

	multi_stream_complete(r);
	nahead = Min(nahead, OBJECT_READ_AHEAD_MAX);
	while (nahead > 0 && ahead[nahead - 1].n == 0)
		nahead--;
	if (n == 0 && nahead == 0)
		return;
	reader_ahead_discard(r);
	reader_hedged_ahead_discard(r);
	r->nmore = 0;
	if (r->prefetch[0] && multi_matches(r->prefetch[0], n, offsets, lens))
	{
		mf = r->prefetch[0];
		for (int a = 0; a < OBJECT_READ_AHEAD_MAX - 1; a++)
			r->prefetch[a] = r->prefetch[a + 1];
		r->prefetch[OBJECT_READ_AHEAD_MAX - 1] = NULL;
		if (mf->pending)
		{
			mf->pending = false;
			multi_start(r, mf);
		}
	}
	else
	{
		reader_prefetch_discard(r);
		if (r->use_cache)
		{
			/*
			 * Wait for pages others are fetching only when they are fetching
			 * every page missing: a parallel scan's neighbouring claims share
			 * a page or two at their edges, and waiting for those made the
			 * middle claim wait for its neighbour's whole batch.  Then
			 * reserve what is still missing so that others wait for us.
			 */
			uint64		bs = r->meta->block_size;
			bool		others_fetch_all = true;

			for (int i = 0; i < n && others_fetch_all; i++)
				for (uint64 b = offsets[i] / bs; lens[i] > 0 && b <= (offsets[i] + lens[i] - 1) / bs; b++)
					if (!cache_contains(r->meta->id, b) && !cache_busy(r->meta->id, b))
					{
						others_fetch_all = false;
						break;
					}
			for (int i = 0; i < n && others_fetch_all; i++)
				for (uint64 b = offsets[i] / bs; lens[i] > 0 && b <= (offsets[i] + lens[i] - 1) / bs; b++)
					if (cache_busy(r->meta->id, b))
						cache_wait(r->meta->id, b);
			for (int i = 0; i < n; i++)
				for (uint64 b = offsets[i] / bs; lens[i] > 0 && b <= (offsets[i] + lens[i] - 1) / bs; b++)
					if (!cache_contains(r->meta->id, b))
						(void) cache_reserve(r->meta->id, b);
		}
		mf = multi_prepare(r, n, offsets, lens);
		multi_start(r, mf);
	}
	stream = stream && multi_streamable(mf);

	/*
	 * The next batches go out in this one's last round trip, so that every
	 * provider's link stays busy from one batch to the next.
	 */
	if (!stream && mf->batch && nahead > 0)
		provider_wait_tail(mf->batch);
	for (int a = 0; a < OBJECT_READ_AHEAD_MAX; a++)
	{
		MultiFetch *next;

		if (a < nahead && r->prefetch[a] &&
			multi_matches(r->prefetch[a], ahead[a].n, ahead[a].offsets, ahead[a].lens))
			continue;			/* in flight already */
		prefetch_discard_from(r, a);
		if (a >= nahead || ahead[a].n == 0)
			break;
		next = multi_prepare(r, ahead[a].n, ahead[a].offsets, ahead[a].lens);
		if (stream)
			next->pending = true;
		else
			multi_start(r, next);
		r->prefetch[a] = next;
	}
	if (stream)
	{
		MemoryContext old = MemoryContextSwitchTo(mf->cxt);

		mf->dsts = palloc(sizeof(char *) * Max(n, 1));
		memcpy(mf->dsts, dsts, sizeof(char *) * n);
		mf->need = palloc0(sizeof(uint64) * mf->nreqs);
		MemoryContextSwitchTo(old);
		r->stream = mf;

		/*
		 * Its pages are not held reserved while the caller works: others
		 * would wait for a cursor's idle batch.  They may fetch a page
		 * twice instead.
		 */
		if (r->use_cache)
			cache_release_reservations();
		return;
	}
	multi_finish(r, mf);
	multi_open(r, mf, dsts);
	if (r->use_cache)
		cache_release_reservations();
	MemoryContextDelete(mf->cxt);
}

void
object_reader_read_multi(ObjectReader *r, int n, const uint64 *offsets, const uint64 *lens,
						 char **dsts)
{
	multi_read(r, n, offsets, lens, dsts, 0, NULL, false);
}

/*
 * As object_reader_read_multi, and then start fetching the ranges the
 * caller will ask for next (up to OBJECT_READ_AHEAD_MAX calls ahead), so
 * that they come in while it works on these.  More than one call ahead
 * keeps a far provider's pipe full: the next batch's request is out
 * before the one before it has been received, instead of a round trip
 * after.  A read-ahead the caller no longer announces is dropped.
 */
void
object_reader_read_multi_ahead(ObjectReader *r, int n, const uint64 *offsets, const uint64 *lens,
							   char **dsts, int nahead, const ObjectReadRanges *ahead)
{
	multi_read(r, n, offsets, lens, dsts, nahead, ahead, false);
}

/*
 * As object_reader_read_multi_ahead, but dsts are filled only as the
 * caller asks (object_reader_read_multi_need), a range's blocks opened as
 * soon as its data shards' bytes are in, until object_reader_read_multi_end
 * (or the next multi-range read, or closing the reader) opens the rest;
 * dsts must stay until then.  A cold scan decodes its batch's first row
 * groups while the rest comes in: waiting for the whole batch, the decoding
 * of every row group came after the last byte, with every link idle.
 */
void
object_reader_read_multi_begin(ObjectReader *r, int n, const uint64 *offsets, const uint64 *lens,
							   char **dsts, int nahead, const ObjectReadRanges *ahead)
{
	multi_read(r, n, offsets, lens, dsts, nahead, ahead, true);
}

/* What object_reader_read_multi_need waits for: stripes s0..s1 of a range. */
typedef struct StreamWait
{
	ObjectReader *r;
	MultiFetch *mf;
	int			range;
	uint64		s0;
	uint64		s1;
} StreamWait;

/*
 * Whether they are in: each data shard's request of a healthy range has
 * its bytes (mf->need), or each stripe of a run has k chunks from any
 * shards (reader_runs_stream_in).
 */
static bool
stream_in(void *arg)
{
	StreamWait *w = arg;
	MultiFetch *mf = w->mf;

	if (mf->count[w->range] == -3)
		return reader_runs_stream_in(w->r, mf->runs, mf->run_of[w->range], w->s0, w->s1);
	for (int q = mf->first[w->range]; q < mf->first[w->range] + mf->count[w->range]; q++)
		if (mf->reqs[q].received < Min(mf->need[q], mf->reqs[q].length))
			return false;
	return true;
}

/*
 * Make bytes [offset, offset + len) of the multi-range read begun last
 * ready in their range's dst (one range holds them all).  The blocks from
 * where the range was opened so far up to them are opened once their data
 * shards' bytes are in; a range that cannot be opened so, a request that
 * ends short, or blocks that fail authentication complete the whole read
 * the ordinary way (multi_open: around bad or missing shards).
 */
void
object_reader_read_multi_need(ObjectReader *r, uint64 offset, uint64 len)
{
	MultiFetch *mf = r->stream;
	uint64		bs;

	if (mf == NULL || len == 0)
		return;
	bs = r->meta->block_size;
	for (int i = 0; i < mf->n; i++)
	{
		uint64		end = mf->offsets[i] + mf->lens[i];
		uint64		want = Min(offset + len, end);
		StreamWait	w;
		WindowSource src;
		uint64		b0,
					b1,
					cs,
					ce,
					to;
		MemoryContext old;
		bool		opened;

		if (offset < mf->offsets[i] || offset >= end)
			continue;
		if (mf->opened[i] >= want)
			return;
		if (mf->count[i] <= 0 && mf->count[i] != -3)
			break;
		b0 = mf->opened[i] / bs;
		b1 = (want - 1) / bs;
		to = Min(end, (b1 + 1) * bs);
		cs = block_cstart(r, b0);
		ce = block_cend(r, b1);
		w.r = r;
		w.mf = mf;
		w.range = i;
		w.s0 = cs / r->stripe_size;
		w.s1 = (ce - 1) / r->stripe_size;
		if (mf->count[i] > 0)
		{
			/* the healthy path: the range's data shards, as they come */
			memset(mf->need, 0, sizeof(uint64) * mf->nreqs);
			for (int q = mf->first[i]; q < mf->first[i] + mf->count[i]; q++)
			{
				uint64		a,
							b;

				if (reader_shard_range(r, mf->shard_of[q], cs, ce, &a, &b) && b > mf->reqs[q].offset)
					mf->need[q] = b - mf->reqs[q].offset;
			}
		}
		for (;;)
		{
			ProviderWaitResult res = provider_wait_until(mf->batch, stream_in, &w,
														 prefetch_pending(r));

			if (res == PROVIDER_WAIT_TAIL)
			{
				prefetch_start_pending(r);
				continue;
			}
			if (res == PROVIDER_WAIT_OVER)
			{
				multi_stream_complete(r);
				return;
			}
			break;
		}
		if (mf->count[i] > 0)
			src = mf->srcs[i];
		else if (!reader_runs_stream_ready(r, mf->runs, mf->run_of[i], w.s0, w.s1, &src))
			break;
		old = MemoryContextSwitchTo(mf->cxt);
		r->cache_fill = true;
		opened = reader_open_blocks(r, b0, b1, NULL, &src, mf->opened[i], to - mf->opened[i],
									mf->dsts[i] + (mf->opened[i] - mf->offsets[i]), false);
		MemoryContextSwitchTo(old);
		if (!opened)
			break;
		mf->opened[i] = to;
		return;
	}
	multi_stream_complete(r);
}

/* Open what is left of the multi-range read begun last (see _begin). */
void
object_reader_read_multi_end(ObjectReader *r)
{
	multi_stream_complete(r);
}

/*
 * Drop the multi-range read begun last without opening the rest: its
 * transfers are stopped, not waited for (a scan rescanned or closed).
 */
void
object_reader_read_multi_discard(ObjectReader *r)
{
	MultiFetch *mf = r->stream;

	if (mf == NULL)
		return;
	r->stream = NULL;
	multi_drop(mf);
}
