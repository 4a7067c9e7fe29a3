/*
 * object_read.c — random-access reads of objects, healthy or degraded: the
 * reader, the pipeline that drives a read, and its healthy path.
 *
 * A read of a plaintext range is done in windows of whole blocks, and each
 * window goes through four stages, in this order (object_reader_read):
 *
 *   1. cache   which blocks the shared cache has: copied out and marked
 *              (window_cache_stage, in this file);
 *   2. fetch   the ciphertext of the span of missing blocks.  The healthy
 *              path (fetch_healthy, in this file) asks each data shard for
 *              the one contiguous byte range that holds it; a sequential
 *              read starts the next window's fetch early (read-ahead,
 *              object_read_ahead.c).  When a shard fails, the degraded path
 *              (object_read_degraded.c) fetches whole chunks and their tags
 *              from every reachable shard; chunks that do not match are
 *              treated as missing (so a corrupt shard is identified, not
 *              just detected) and rebuilt from any k good ones;
 *   3. decode  every missing block is authenticated and opened where it
 *              lies, straight into the caller's buffer when it can be
 *              (reader_open_blocks, object_read_decode.c); a block failing
 *              authentication after a healthy fetch sends the window back
 *              to stage 2, degraded (which also finds shards that forge
 *              CRCs in format 1 objects);
 *   4. done    cache reservations not filled are given up.
 *
 * Multi-range reads (a row group's column chunks) batch stage 2 for all
 * ranges at once and may be started ahead of need (object_read_ahead.c).
 * object_read_internal.h holds the reader's state the files share.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "destor/cache.h"
#include "destor/object.h"
#include "object_read_internal.h"

ObjectReadStats object_read_stats;

static void
reader_free_cipher(void *arg)
{
	ObjectReader *r = (ObjectReader *) arg;

	/*
	 * Batches still in flight were abandoned already: each is tied to the
	 * context it was started in (provider_start), and a multi-range
	 * read-ahead's context, a child of ours, is gone by now.
	 */
	r->ahead = NULL;
	r->ahead_hedged = NULL;
	memset(r->ahead_more, 0, sizeof(r->ahead_more));
	memset(r->prefetch, 0, sizeof(r->prefetch));
	r->stream = NULL;

	if (r->cipher)
		codec_cipher_free(r->cipher);
	if (r->cipher2)
		codec_cipher_free(r->cipher2);
	r->cipher = NULL;
	r->cipher2 = NULL;
}

/*
 * object_reader_open — a reader of one object, in a memory context of its
 * own (object_reader_close deletes it).  The data key is unwrapped once,
 * into two ciphers (one for the helper thread of reader_open_blocks); a
 * reset callback frees them (transfers still writing into the reader's
 * buffers are stopped by their batches' own callbacks, which run first),
 * so an ERROR leaves nothing behind.  Shards whose
 * provider no longer exists are unreachable from the start; shards
 * recorded bad in destor.shards start as hints.
 */
ObjectReader *
object_reader_open(ObjectMeta *meta)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "destor object reader",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ObjectReader *r = palloc0(sizeof(ObjectReader));
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));
	uint8		dek[CODEC_KEY_LEN];
	ObjectGeometry g;

	r->cxt = cxt;
	r->meta = meta;
	r->k = meta->data_shards;
	r->m = meta->parity_shards;
	r->n = r->k + r->m;
	r->rs = object_rs(r->k, r->m);

	object_unwrap_key(meta, dek);

	cb->func = reader_free_cipher;
	cb->arg = r;
	MemoryContextRegisterResetCallback(cxt, cb);
	r->cipher = codec_cipher_create(dek, meta->id);
	r->cipher2 = codec_cipher_create(dek, meta->id);
	r->auth = object_chunk_auth_from_key(meta, dek);
	codec_secure_zero(dek, sizeof(dek));
	if (r->cipher == NULL || r->cipher2 == NULL || r->auth == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));

	object_geometry(meta, &g);
	r->stripe_size = g.stripe_size;
	r->nstripes = g.nstripes;
	r->last_chunk = g.last_chunk;
	r->shard_data_len = g.shard_data_len;
	r->tag_len = g.tag_len;
	r->block_overhead = CODEC_TAG_LEN + (meta->compressed ? 1 : 0);

	r->providers = palloc0(sizeof(Provider *) * r->n);
	r->keys = palloc(sizeof(char *) * r->n);
	r->health = palloc0(sizeof(ShardHealth) * r->n);
	r->slow = palloc0(sizeof(bool) * r->n);
	r->avoid = palloc0(sizeof(bool) * r->n);
	r->far = palloc0(sizeof(bool) * r->n);
	r->distant = palloc0(sizeof(bool) * r->n);
	r->unrated = palloc0(sizeof(bool) * r->n);
	r->thin = palloc0(sizeof(bool) * r->n);
	r->liar = palloc0(sizeof(bool) * r->n);
	r->bad_bytes = palloc0(sizeof(bool) * r->n);
	r->errors = palloc0(sizeof(char *) * r->n);
	for (int i = 0; i < r->n; i++)
	{
		r->keys[i] = object_shard_key(meta->id, i);
		r->providers[i] = provider_lookup_by_name(meta->shards[i].provider, true);
		if (r->providers[i] == NULL)
		{
			r->health[i] = SHARD_UNREACHABLE;
			r->errors[i] = psprintf("provider \"%s\" does not exist", meta->shards[i].provider);
		}
		else if (!meta->shards[i].ok &&
				 !provider_shard_verified(r->providers[i], r->keys[i]))
		{
			/*
			 * Recorded missing or corrupt: perhaps during an outage that is
			 * over.  A hint, not a verdict — tried when needed, and what is
			 * read from it is checked like anything else.  A record that a
			 * reader has found wrong since (provider_shard_verified) is no
			 * hint at all: that shard is read like any other.
			 */
			r->health[i] = SHARD_HINTED;
			r->errors[i] = psprintf("recorded as missing or corrupt in destor.shards");
		}
	}
	r->last_read_end = PG_UINT64_MAX;	/* the first read is not "sequential" */
	r->use_cache = cache_enabled();
	r->scratch = palloc(meta->block_size + r->block_overhead + 64);
	r->sealed = palloc(meta->block_size + r->block_overhead + 64);
	r->plain = palloc(meta->block_size);

	MemoryContextSwitchTo(old);
	return r;
}

void
object_reader_close(ObjectReader *r)
{
	object_reader_read_multi_discard(r);
	reader_ahead_discard(r);
	reader_hedged_ahead_discard(r);
	reader_prefetch_discard(r);
	MemoryContextDelete(r->cxt);
}

/*
 * A buffer for len bytes of shard d fetched from shard offset off, placed
 * so that providers may read straight into it with direct I/O (see
 * ProviderRequest.buf_aligned_io).
 */
static uint8 *
reader_shardbuf(ObjectReader *r, int set, int d, size_t len, uint64 off)
{
	/*
	 * Layout: [up to ALIGN-1 to reach alignment][off % ALIGN][len][up to
	 * ALIGN-1 to the next aligned end]: len + 3 * ALIGN bytes always do.
	 */
	size_t		need = len + 3 * PROVIDER_IO_ALIGN;

	if (r->shardbufcap[set][d] < need)
	{
		if (r->shardbuf[set][d])
			pfree(r->shardbuf[set][d]);
		r->shardbuf[set][d] = buffer_alloc_large(r->cxt, need);
		r->shardbufcap[set][d] = need;
	}
	return (uint8 *) TYPEALIGN(PROVIDER_IO_ALIGN, r->shardbuf[set][d]) + off % PROVIDER_IO_ALIGN;
}

/*
 * Range of shard d (in shard offsets) holding the stream bytes [cs, ce);
 * false if shard d holds none of them.  Every chunk of d between the first
 * and the last touched one is entirely inside [cs, ce), so the range is
 * contiguous.
 */
bool
reader_shard_range(ObjectReader *r, int d, uint64 cs, uint64 ce, uint64 *lo, uint64 *hi)
{
	uint64		s0 = cs / r->stripe_size;
	uint64		s1 = (ce - 1) / r->stripe_size;
	bool		found = false;

	for (uint64 s = s0; s <= s1; s++)
	{
		uint64		cl = chunk_len(r, s);
		uint64		a = s * r->stripe_size + d * cl;
		uint64		b = a + cl;

		a = Max(a, cs);
		b = Min(b, ce);
		if (a >= b)
			continue;
		if (!found)
			*lo = s * r->meta->chunk_size + (a - (s * r->stripe_size + d * cl));
		*hi = s * r->meta->chunk_size + (b - (s * r->stripe_size + d * cl));
		found = true;
	}
	return found;
}

void
reader_note_failure(ObjectReader *r, int i, ProviderRequest *req, ShardHealth h)
{
	if (req && req->cancelled)
		return;					/* not needed after all: says nothing of the shard */
	if (req && req->abandoned)
	{
		/* not broken, just slow — or on a thin link, which only bulk reads
		 * mind: read around it for the rest of this reader */
		if (req->thin)
			r->thin[i] = true;
		else
			r->avoid[i] = true;
		if (r->providers[i])
			elog(DEBUG1, "destor: this read goes around provider \"%s\" from now on: a request given up as %s",
				 r->providers[i]->name, req->thin ? "thin" : "late");
		return;
	}
	r->health[i] = Max(r->health[i], h);
	reader_shard_failed(r, i);
	if (r->errors[i])
		pfree(r->errors[i]);
	if (req && req->error)
		r->errors[i] = MemoryContextStrdup(r->cxt, req->error);
	else if (req)
	{
		/* formatted in the reader's context: it lives as long as the reader */
		MemoryContext old = MemoryContextSwitchTo(r->cxt);

		r->errors[i] = psprintf("short read (%llu of %llu bytes)",
								(unsigned long long) req->result_size,
								(unsigned long long) req->length);
		MemoryContextSwitchTo(old);
	}
	else
		r->errors[i] = MemoryContextStrdup(r->cxt, "shard failed its checksum");
}

/*
 * reader_shard_failed — shard i failed this reader (a request, or a chunk
 * against its tag).  Should it be recorded bad in destor.shards, a note
 * that some reader found it good since is no longer true: forget it, so
 * that the record is a hint again for every reader.
 */
void
reader_shard_failed(ObjectReader *r, int i)
{
	if (!r->meta->shards[i].ok && r->providers[i] != NULL)
		provider_forget_shard_verified(r->providers[i], r->keys[i]);
}

/*
 * Which providers to avoid as slow: those whose recent reads took more
 * than SLOW_FACTOR times, and SLOW_MARGIN_MS more than, the k-th fastest of
 * the object's providers (a provider not measured lately counts as fast as
 * the fastest measured one, so it is tried and measured).  There are always
 * k providers at least as fast as the k-th, so avoiding the slow ones never
 * leaves too few.
 * Worked out again every SLOW_RECHECK_MS of a reader's life.
 */
#define SLOW_FACTOR			3.0
#define SLOW_MARGIN_MS		200.0
#define SLOW_RECHECK_MS		100
#define SLOW_UNUSABLE_MS	1e12	/* a provider that does not exist */

/*
 * Bulk reads (a data shard's range of READ_BULK_BYTES or more: a blob
 * export's 16 MiB windows) also go around a provider whose time for its
 * share of a window (its round trip, plus OBJECT_READ_WINDOW_BYTES / k at
 * its recent rate when rates are known) is more than FAR_FACTOR times, and
 * FAR_MARGIN_MS more than, the k-th fastest: a far or thin provider is not
 * slow — small reads, one round trip each, still use a thin one — but a
 * bulk window waits for its slowest shard, and the k fastest shards
 * rebuild the window for the cost of decoding it.  A provider whose round
 * trip alone is that far above (distant) is gone around by small reads
 * too.
 */
#define FAR_FACTOR			2.0
#define FAR_MARGIN_MS		100.0
/*
 * Distant from two read times at least: a small read asks a distant
 * provider's data shard directly until then, so a second comes at once,
 * while one hiccup (a near provider's first read, with its handshake, on
 * a busy machine) kept a near provider gone around until its probe, and
 * with two such the distant one was among the k fastest (TAP 181 under
 * load).
 */
#define DISTANT_MIN_READS	2

/*
 * reader_bulk_times — turn each provider's read time (ms, a round trip)
 * into the time its share of a window takes: the round trip plus the bytes
 * at its recent large GETs' rate.  (Timed for 1 MiB, a 5 MB/s link among
 * 25 MB/s ones took 1.8x the k-th fastest's time, under FAR_FACTOR, and
 * held every 16 MiB window of an export for its 4 MiB: 0.9 s a window.)  A provider near but on a thin link
 * answers as soon as the others and then holds every bulk window for its
 * bytes; a provider whose rate is not known is ranked as fast as the
 * fastest known one, and when none is known the round trips alone decide.
 * Which providers have no rate while k others do is noted (r->unrated):
 * a bulk read goes around them, as around far ones.
 */
static void
reader_bulk_times(ObjectReader *r, double *ms)
{
	double		rate[CODEC_RS_MAX_SHARDS];
	double		best = -1;
	int			nrated = 0;

	for (int i = 0; i < r->n; i++)
	{
		rate[i] = r->providers[i] ? provider_recent_read_rate(r->providers[i]) : -1;
		best = Max(best, rate[i]);
		if (rate[i] > 0)
			nrated++;
	}
	/* (a file provider has no rate: only an all-s3 pool can go around) */
	for (int i = 0; i < r->n; i++)
		r->unrated[i] = nrated >= r->k && rate[i] <= 0 && reader_hedgeable(r);
	if (best <= 0)
		return;
	for (int i = 0; i < r->n; i++)
		if (r->providers[i] != NULL && ms[i] < SLOW_UNUSABLE_MS)
			ms[i] += ((double) OBJECT_READ_WINDOW_BYTES / Max(r->k, 1)) / (rate[i] > 0 ? rate[i] : best);
}

/* qsort's comparison of doubles, ascending */
int
reader_cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The k-th fastest of the read times ms[] (-1: not measured, counted as
 * fastest, which ms[] then holds).
 */
static double
kth_fastest(ObjectReader *r, double *ms, double fastest)
{
	double		sorted[CODEC_RS_MAX_SHARDS];

	for (int i = 0; i < r->n; i++)
	{
		if (ms[i] < 0)
			ms[i] = fastest;
		sorted[i] = ms[i];
	}
	qsort(sorted, r->n, sizeof(double), reader_cmp_double);
	return sorted[r->k - 1];
}

void
reader_check_slow_providers(ObjectReader *r)
{
	double		ms[CODEC_RS_MAX_SHARDS];
	double		sorted[CODEC_RS_MAX_SHARDS];
	double		kth;
	double		fastest = -1;
	TimestampTz now;

	if (r->m == 0)
		return;					/* nothing to read instead */
	now = GetCurrentTimestamp();
	if (r->slow_checked != 0 && !TimestampDifferenceExceeds(r->slow_checked, now, SLOW_RECHECK_MS))
		return;
	r->slow_checked = now;

	/*
	 * A provider not measured lately is presumed as fast as the fastest
	 * measured one (it is worth trying, and it gets measured then) — not
	 * 0 ms, which with m >= k would make every measured provider look slow.
	 * A provider that does not exist can serve nothing: it ranks last.
	 */
	for (int i = 0; i < r->n; i++)
	{
		ms[i] = r->providers[i] ? provider_recent_read_ms(r->providers[i]) : SLOW_UNUSABLE_MS;
		if (ms[i] >= 0 && (fastest < 0 || ms[i] < fastest))
			fastest = ms[i];
	}
	if (fastest < 0)
	{
		/* no read time measured: nothing to compare but rates, if any */
		memset(r->slow, 0, sizeof(bool) * r->n);
		for (int i = 0; i < r->n; i++)
			ms[i] = r->providers[i] ? 0 : SLOW_UNUSABLE_MS;
	}
	else
	{
		kth = kth_fastest(r, ms, fastest);
		for (int i = 0; i < r->n; i++)
		{
			bool		slow = r->providers[i] != NULL &&
				ms[i] > kth * SLOW_FACTOR && ms[i] - kth > SLOW_MARGIN_MS;

			if (slow && !r->slow[i])
				provider_mark_slow(r->providers[i]);
			r->slow[i] = slow;
		}
	}

	/*
	 * Distant: not slow, but its round trip alone far above the k-th
	 * fastest's.  Even a small read waits a whole round trip for it, where
	 * the other shards of its stripes answer in a short one (a 64 KiB block
	 * on a provider 300 ms away took 0.6 s cold in the WAN bench, the
	 * stripe from the four 80 ms away 0.09 s).  The k fastest are never
	 * distant, so the degraded path has them.  From DISTANT_MIN_READS read
	 * times; but a provider gone around is not measured, and one
	 * measured during a stall would stay distant as long as its round trip
	 * is remembered: once destor.provider_down_interval has passed without
	 * a measurement, one reader that needs it asks it again
	 * (healthy_declines).
	 */
	memset(r->distant, 0, sizeof(bool) * r->n);
	fastest = -1;
	for (int i = 0; i < r->n; i++)
	{
		ms[i] = r->providers[i] ? provider_read_ms(r->providers[i], DISTANT_MIN_READS) : SLOW_UNUSABLE_MS;
		if (ms[i] >= 0 && (fastest < 0 || ms[i] < fastest))
			fastest = ms[i];
	}
	if (fastest >= 0 && reader_hedgeable(r))
	{
		kth = kth_fastest(r, ms, fastest);
		for (int i = 0; i < r->n; i++)
			r->distant[i] = r->providers[i] != NULL &&
				ms[i] > kth * FAR_FACTOR && ms[i] - kth > FAR_MARGIN_MS;
	}

	/*
	 * Far or thin, for bulk reads: from any read time the provider has,
	 * however few — the far one loses every race it is asked in, answers
	 * rarely, and taken for as fast as the fastest it held every bulk
	 * window of an export for its round trip.  Going around it is cheap
	 * (spares); being wrong the other way is not.
	 */
	fastest = -1;
	for (int i = 0; i < r->n; i++)
	{
		ms[i] = r->providers[i] ? provider_read_ms(r->providers[i], 1) : SLOW_UNUSABLE_MS;
		if (ms[i] >= 0 && (fastest < 0 || ms[i] < fastest))
			fastest = ms[i];
	}
	for (int i = 0; i < r->n; i++)
		if (ms[i] < 0)
			ms[i] = Max(fastest, 0);

	reader_bulk_times(r, ms);
	memcpy(sorted, ms, sizeof(double) * r->n);
	qsort(sorted, r->n, sizeof(double), reader_cmp_double);
	kth = sorted[r->k - 1];
	for (int i = 0; i < r->n; i++)
	{
		bool		far = r->providers[i] != NULL &&
			((ms[i] > kth * FAR_FACTOR && ms[i] - kth > FAR_MARGIN_MS) || r->distant[i]);

		/* (why a bulk read leaves a provider out is otherwise invisible) */
		if (far && !r->far[i] && r->slow[i])
			elog(DEBUG1, "destor: bulk reads go around provider \"%s\": found slow",
				 r->providers[i]->name);
		else if (far && !r->far[i])
			elog(DEBUG1, "destor: bulk reads go around provider \"%s\": %.0f ms for its share of a window, the %d-th fastest %.0f ms%s",
				 r->providers[i]->name, ms[i], r->k, kth, r->distant[i] ? " (distant)" : "");
		r->far[i] = far;
	}
}

/* Whether the healthy path does without data shard d's bytes [a, b). */
static bool
healthy_declines(ObjectReader *r, int d, uint64 a, uint64 b)
{
	if (r->health[d] != SHARD_USABLE)
		return true;
	/* with parity to fall back on, do not wait for a provider known down or slow */
	reader_check_slow_providers(r);
	if (r->m > 0 && (r->slow[d] || r->avoid[d] || provider_is_down(r->providers[d])))
		return true;
	/*
	 * nor, for a bulk range, for a far one: the k fastest shards are
	 * sooner; nor for one whose rate is not known while k others' are:
	 * taken for as fast as the fastest, a thin link held every bulk window
	 * for its bytes (as a spare of the k known, it is asked only if one of
	 * them fails or is late); nor, for any range, for a distant one: its
	 * round trip alone outlasts the others' stripe
	 */
	if (r->m == 0)
		return false;
	if ((r->far[d] || r->unrated[d] || r->thin[d]) &&
		(b - a >= READ_BULK_BYTES || r->bulk_batch))
		return true;
	/*
	 * A distant one not measured for an interval: this reader asks it
	 * again (until its next check), and its answers measure it.
	 */
	if (r->distant[d] && !provider_claim_probe(r->providers[d]))
		return true;
	r->distant[d] = false;
	return false;
}

/*
 * reader_healthy_plan — whether the healthy path would read stream bytes
 * [cs, ce) from their data shards (reader_healthy_requests' test), and
 * whether it had better ask every shard at once (reader_runs_*, hedged):
 * on a pool of s3 providers with parity, when fewer than k of the
 * object's providers were ever measured (provider_read_time_known: a
 * backend's first reads after a restart), or when a bulk range of a data
 * shard is on a provider never measured.  Without read times a ranking is
 * a guess that a far provider would decide.  Once k are measured, a small
 * read asks a provider never measured as if it were as fast as the fastest
 * (reader_check_slow_providers): one round trip measures it, and a slow
 * one is avoided from then on; a bulk window would wait for its bytes.
 */
bool
reader_hedgeable(ObjectReader *r)
{
	if (r->m == 0)
		return false;
	for (int i = 0; i < r->n; i++)
		if (r->providers[i] == NULL || r->providers[i]->type != PROVIDER_S3)
			return false;
	return true;
}

bool
reader_healthy_plan(ObjectReader *r, uint64 cs, uint64 ce, bool *unmeasured)
{
	bool		hedgeable = reader_hedgeable(r);
	int			known = 0;

	*unmeasured = false;
	for (int i = 0; i < r->n && hedgeable; i++)
		if (provider_read_time_known(r->providers[i]))
			known++;
	for (int d = 0; d < r->k; d++)
	{
		uint64		a = 0,
					b = 0;

		if (!reader_shard_range(r, d, cs, ce, &a, &b))
			continue;
		if (healthy_declines(r, d, a, b))
			return false;
		if (hedgeable && (known < r->k || b - a >= READ_BULK_BYTES || r->bulk_batch) &&
			!provider_read_time_known(r->providers[d]))
			*unmeasured = true;
	}
	return true;
}

/*
 * The healthy-path requests for stream bytes [cs, ce) into buffer set
 * "set"; -1 if a needed data shard is unusable or its provider is down.
 */
int
reader_healthy_requests(ObjectReader *r, uint64 cs, uint64 ce, int set, ProviderRequest *reqs,
				 int *shard_of, WindowSource *src)
{
	uint8	  **buf = src->buf;
	uint64	   *lo = src->lo;
	int			nreqs = 0;

	memset(src, 0, sizeof(WindowSource));
	for (int d = 0; d < r->k; d++)
	{
		uint64		a = 0,
					b = 0;

		if (!reader_shard_range(r, d, cs, ce, &a, &b))
			continue;
		if (healthy_declines(r, d, a, b))
			return -1;
		memset(&reqs[nreqs], 0, sizeof(ProviderRequest));
		if (set >= 0)
			buf[d] = reader_shardbuf(r, set, d, b - a, a);
		else
		{
			/* a private buffer in the current context, laid out as above */
			char	   *raw = buffer_alloc_large(CurrentMemoryContext, b - a + 3 * PROVIDER_IO_ALIGN);

			buf[d] = (uint8 *) TYPEALIGN(PROVIDER_IO_ALIGN, raw) + a % PROVIDER_IO_ALIGN;
		}
		lo[d] = a;
		reader_shard_get(&reqs[nreqs], r, d, a, b - a, buf[d]);
		reqs[nreqs].no_retry = (r->m > 0);
		reqs[nreqs].hedge = (r->m > 0);
		reqs[nreqs].buf_aligned_io = true;
		shard_of[nreqs++] = d;
	}
	return nreqs;
}

/*
 * object_reader_read_on — a caller that will read on, in order, up to
 * plaintext offset end (an export, a recall), says so: its first read
 * fetches its next window ahead too, which a read alone does not (it may
 * be the only one).
 */
void
object_reader_read_on(ObjectReader *r, uint64 end)
{
	r->read_on_until = end;
}

/*
 * object_reader_poll — a caller that reads on and works between its reads
 * (writes what it read into a large object) calls it between pieces of
 * that work: the transfers in flight move, and the window after next is
 * asked for once the next one is in its last round trip.  Asked for only
 * at the next read, it left every link idle for a round trip and more
 * whenever the caller's work took longer than a window's transfer.
 */
void
object_reader_poll(ObjectReader *r)
{
	provider_poll();
	reader_ahead_poll(r);
}

/*
 * fetch_healthy — stage 2 on the healthy path: the window's ciphertext
 * [cs, ce) from the data shards only, collecting the read-ahead when it was
 * for this window.  False when a data shard is not usable, its provider is
 * down or slow, or a request failed or came back short: the caller then
 * reads the window degraded.
 */
static bool
fetch_healthy(ObjectReader *r, uint64 cs, uint64 ce, WindowSource *src, bool has_next,
			  uint64 nb0, uint64 nb1, bool *failed)
{
	ProviderRequest *reqs;
	int		   *shard_of;
	ProviderBatch *b;
	int			nreqs;
	bool		ok = true;
	bool		missing[CODEC_RS_MAX_SHARDS] = {0};

	if (r->ahead && r->ahead_cs == cs && r->ahead_ce == ce)
	{
		/* read ahead: it has been coming in while the last window opened */
		b = r->ahead;
		r->ahead = NULL;		/* finish cleans up itself if it fails */
		nreqs = r->ahead_nreqs;
		*src = r->ahead_src;
		r->cur_set ^= 1;
	}
	else
	{
		reader_ahead_discard(r);
		nreqs = reader_healthy_requests(r, cs, ce, r->cur_set, r->set_reqs[r->cur_set],
										r->set_shard_of[r->cur_set], src);
		if (nreqs < 0)
			return false;
		b = provider_start(r->set_reqs[r->cur_set], nreqs);
	}
	reqs = r->set_reqs[r->cur_set];
	shard_of = r->set_shard_of[r->cur_set];

	/*
	 * Reading on: the next window's requests go out in this one's last
	 * round trip (into the other buffer set, whose window is opened by
	 * now), so that every provider's link stays busy from one window to
	 * the next.
	 */
	if (has_next)
	{
		provider_wait_tail(b);
		reader_next_start(r, nb0, nb1);
		reader_ahead_poll(r);
	}
	provider_finish(b);
	r->slow_checked = 0;		/* what it measured counts from the next plan on */
	reader_ahead_poll(r);
	object_read_stats.requests += nreqs;
	for (int q = 0; q < nreqs; q++)
	{
		note_fetched(reqs[q].result_size);
		if (!reqs[q].ok || reqs[q].result_size != reqs[q].length)
		{
			reader_note_failure(r, shard_of[q], &reqs[q], SHARD_SUSPECT);
			failed[shard_of[q]] = true;
			missing[shard_of[q]] = reqs[q].not_found;
			ok = false;
		}
	}

	/*
	 * The next window, read ahead before this one failed, waits for the
	 * same shard (a thin provider given up here is as thin there): sent
	 * again the way its plan now says, it does not.  Unless the shard is
	 * simply not there: its request fails as fast in the read-ahead, whose
	 * other shards' bytes are then patched like this window's
	 * (reader_patch_window), where reading the window again degraded
	 * moved every one of them twice.
	 */
	if (!ok && has_next && r->ahead)
	{
		for (int q = 0; q < r->ahead_nreqs; q++)
		{
			int			d = r->set_shard_of[r->cur_set ^ 1][q];

			if (r->avoid[d] || r->thin[d] ||
				(r->health[d] != SHARD_USABLE && !(failed[d] && missing[d])))
			{
				reader_ahead_discard(r);
				reader_next_start(r, nb0, nb1);
				break;
			}
		}
	}
	return ok;
}

/*
 * Stage 1 of a window: which of blocks [b0, b1] the shared cache has.
 * Their wanted bytes are copied to dst as they are found (a page may be
 * evicted right after) and hit[] marks them, so that no later stage writes
 * them again.  Pages another backend is fetching right now are waited for
 * (once, holding no reservation of our own); the pages still missing are
 * reserved when this read fills the cache, so that others wait for us in
 * turn.  Returns false when every block was found; else the first and last
 * missing blocks.
 */
static bool
window_cache_stage(ObjectReader *r, uint64 b0, uint64 b1, uint64 offset, uint64 len, char *dst,
				   bool *hit, uint64 *first_miss, uint64 *last_miss)
{
	ObjectMeta *meta = r->meta;
	uint64		bs = meta->block_size;
	bool		waited = false;

	for (;;)
	{
		bool		busy = false;

		*first_miss = PG_UINT64_MAX;
		*last_miss = 0;
		for (uint64 b = b0; b <= b1; b++)
		{
			uint64		plen = b == (uint64) meta->nblocks - 1 ? meta->size - b * bs : bs;
			uint64		from = Max(offset, b * bs);
			uint64		to = Min(offset + len, b * bs + plen);
			CacheProbe	rc;

			if (hit[b - b0])
				continue;
			rc = cache_read(meta->id, b, (uint32) (from - b * bs), (uint32) (to - b * bs),
							dst + (from - offset));
			if (rc == CACHE_HIT)
			{
				hit[b - b0] = true;
				continue;
			}
			if (rc == CACHE_BUSY && !waited)
			{
				cache_wait(meta->id, b);
				busy = true;
			}
			*first_miss = Min(*first_miss, b);
			*last_miss = b;
		}
		if (!busy)
			break;
		waited = true;			/* look again once what we waited for is in */
	}
	if (*first_miss == PG_UINT64_MAX)
		return false;
	if (r->cache_fill)
		for (uint64 b = *first_miss; b <= *last_miss; b++)
			if (!hit[b - b0])
				(void) cache_reserve(meta->id, b);
	return true;
}

/*
 * object_reader_read — plaintext [offset, offset + len) into dst.
 *
 * Each window of up to READ_WINDOW_BLOCKS blocks goes through four stages,
 * in this order and each writing only what it owns:
 *   1. cache: the blocks the shared cache has are copied out and marked
 *      (window_cache_stage);
 *   2. fetch: the ciphertext of the span of missing blocks, from the data
 *      shards (fetch_healthy), or, when a shard fails, from any k good
 *      shards with bad chunks rebuilt (fetch_repair, in
 *      object_read_degraded.c);
 *   3. decode: every missing block is authenticated and opened, and its
 *      wanted bytes put in dst (reader_open_blocks) — cached blocks inside the
 *      span are skipped, and opening a block writes no byte outside it;
 *      a block that fails authentication after a healthy fetch sends the
 *      window back to stage 2, degraded;
 *   4. done: reservations of pages not filled are given up.
 */
void
object_reader_read(ObjectReader *r, uint64 offset, uint64 len, char *dst)
{
	ObjectMeta *meta = r->meta;
	uint64		bs = meta->block_size;
	uint64		b0;
	uint64		blast;
	MemoryContext old;

	r->bulk_batch = false;		/* (left set by an ERROR in a multi-range batch) */
	r->bytes_lied = false;		/* (or by one between a failed open and its reread) */
	/* an empty object is still one sealed (empty) block: authenticate it */
	if (len == 0 && !(meta->size == 0 && offset == 0))
		return;
	if (offset + len > meta->size || offset + len < offset)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("read of %llu bytes at offset %llu is beyond the end of object %s (%llu bytes)",
						(unsigned long long) len, (unsigned long long) offset,
						object_id_text(meta->id), (unsigned long long) meta->size)));

	old = MemoryContextSwitchTo(r->cxt);
	b0 = offset / bs;
	blast = len == 0 ? 0 : (offset + len - 1) / bs;
	while (b0 <= blast)
	{
		uint64		b1 = Min(blast, b0 + READ_WINDOW_BLOCKS - 1);
		bool		hit[READ_WINDOW_BLOCKS];
		bool		any_hit = false;
		uint64		wb0 = b0;
		uint64		wb1 = b1;
		uint64		cs,
					ce;
		WindowSource src;
		bool		healthy;
		WindowPlan	plan;
		bool		failed[CODEC_RS_MAX_DATA];
		HedgedWindow *h;
		bool		has_next;
		uint64		nb1;

		CHECK_FOR_INTERRUPTS();
		r->cache_fill = (b1 - b0 + 1) < CACHE_BULK_BLOCKS;

		/* stage 1: the cache */
		memset(hit, 0, sizeof(hit));
		if (r->use_cache && len > 0)
		{
			if (!window_cache_stage(r, b0, b1, offset, len, dst, hit, &wb0, &wb1))
			{
				b0 = b1 + 1;
				continue;
			}
			for (uint64 b = wb0; b <= wb1 && !any_hit; b++)
				any_hit = hit[b - b0];
		}

		/* stage 2: fetch the span of missing blocks */
		cs = block_cstart(r, wb0);
		ce = block_cend(r, wb1);
		plan = reader_window_plan(r, cs, ce);

		/*
		 * A window read ahead is used whichever way it was planned then:
		 * read times learnt meanwhile (a window asked of every shard while
		 * none was known) do not make its bytes in flight worth dropping.
		 */
		h = reader_hedged_take(r, wb0, wb1);
		if (h == NULL && r->ahead && r->ahead_cs == cs && r->ahead_ce == ce)
			plan = WINDOW_HEALTHY;

		/*
		 * Sequential reading: the next window is fetched while this one
		 * comes in and is opened — the next window of this read, exactly as
		 * the next turn will ask for it; or, after a whole window that
		 * continues the previous read (or of a caller that said it reads
		 * on), the next whole window.  A caller reading less than a window
		 * at a time would ask for a part of it next, and a read-ahead that
		 * does not match is dropped: 16 MiB fetched for every 1 MiB read.
		 */
		nb1 = 0;
		if (b1 < blast)
			nb1 = Min(blast, b1 + READ_WINDOW_BLOCKS);
		else if (b1 + 1 < (uint64) meta->nblocks && b1 - b0 + 1 == READ_WINDOW_BLOCKS &&
				 (offset == r->last_read_end || (b1 + 1) * bs < r->read_on_until))
			nb1 = Min((uint64) meta->nblocks - 1, b1 + READ_WINDOW_BLOCKS);
		has_next = nb1 > b1;

		/* and, for a caller reading on, the windows after that one */
		r->nmore = 0;
		if (has_next && nb1 - b1 == READ_WINDOW_BLOCKS)
		{
			uint64		e = nb1;

			while (r->nmore < READ_AHEAD_MORE && e + 1 < (uint64) meta->nblocks &&
				   (e + 1) * bs < r->read_on_until)
			{
				r->more_b0[r->nmore] = e + 1;
				r->more_b1[r->nmore] = Min((uint64) meta->nblocks - 1, e + READ_WINDOW_BLOCKS);
				e = r->more_b1[r->nmore++];
			}
		}
		reader_hedged_keep(r, b1 + 1, has_next ? nb1 : b1);

		if (h != NULL || plan != WINDOW_HEALTHY)
		{
			/*
			 * Hedged: one run of stripes from several shards, the first k
			 * answers winning — every shard while a data shard's provider
			 * is not measured yet (a far provider may stay so for a whole
			 * export: it never wins the race), the k fastest with spares
			 * while one is unusable, down or slow.
			 */
			bool		fresh = h == NULL;

			reader_ahead_discard(r);
			if (fresh)
				h = reader_hedged_start(r, wb0, wb1, plan);
			if (has_next)
			{
				/*
				 * Spread over links that bound the read, a read's first
				 * window has its next one sent at once: nothing else is in
				 * flight on them, and sent in this one's last round trip,
				 * the next one waited for new connections (this one's are
				 * busy till its end) on top of that round trip.
				 */
				bool		together = fresh && reader_hedged_plan(h) == WINDOW_BALANCED;

				if (!together)
					reader_hedged_wait_tail(h);
				reader_next_start(r, b1 + 1, nb1);
				reader_ahead_poll(r);
				/*
				 * The two end together, and the one after them then finds
				 * every connection busy: it goes out two round trips
				 * before their end, one for its new connections' set-up.
				 */
				if (together && r->ahead_hedged)
				{
					reader_hedged_wait_lead(h, 2);
					reader_hedged_wait_lead(r->ahead_hedged, 2);
					reader_ahead_start_more(r);
				}
			}
			reader_ahead_wait_for(r, h);
			reader_hedged_open(r, h, any_hit ? hit + (wb0 - b0) : NULL, offset, len, dst);
			reader_ahead_poll(r);
			if (r->use_cache)
				cache_release_reservations();
			b0 = b1 + 1;
			continue;
		}
		memset(failed, 0, sizeof(failed));
		healthy = fetch_healthy(r, cs, ce, &src, has_next, b1 + 1, nb1, failed);

		/*
		 * A data shard failed while the others came in: rebuild its part
		 * from parity, not the whole window from k shards.
		 */
		if (!healthy && src.buf[0] != NULL)
			healthy = reader_patch_window(r, cs, ce, &src, failed);

		/* stage 3: decode the missing blocks, degraded if need be */
		if (!healthy ||
			!reader_open_blocks(r, wb0, wb1, any_hit ? hit + (wb0 - b0) : NULL, &src, offset, len, dst, false))
			reader_open_window_degraded(r, wb0, wb1, any_hit ? hit + (wb0 - b0) : NULL, offset, len, dst);
		window_source_release(r, &src);
		reader_ahead_poll(r);

		/* stage 4: opened pages filled their reservations; give up any other */
		if (r->use_cache)
			cache_release_reservations();
		b0 = b1 + 1;
	}
	r->last_read_end = offset + len;
	MemoryContextSwitchTo(old);
}
