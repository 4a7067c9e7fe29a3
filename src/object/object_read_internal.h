/*
 * object_read_internal.h — what the files of the object reader share: the
 * reader's state, the shard health it keeps, where a window's ciphertext
 * lies, the stream arithmetic, and the functions one stage file calls in
 * another.  Only src/object/object_read*.c include it; see object_read.c
 * for the stages and which file holds each.
 */
#ifndef DESTOR_OBJECT_READ_INTERNAL_H
#define DESTOR_OBJECT_READ_INTERNAL_H

#include "utils/timestamp.h"

#include "destor/cache.h"
#include "destor/object.h"

#define READ_WINDOW_BLOCKS 256		/* 16 MiB of plaintext per window */

/* Reads of at least this many blocks in one go are bulk reads: they do
 * not fill the shared cache (they would only push hot pages out). */
#define CACHE_BULK_BLOCKS 64

/* A data shard's range of this many bytes or more is a bulk read: it goes
 * around far providers (object_read.c). */
#define READ_BULK_BYTES (1024 * 1024)

/*
 * Windows read ahead beyond the next one, at most.  Two: the first two
 * windows of a spread read go out together and end together, and while
 * the backend opened them one after the other (as long as a window takes
 * to move) a single window more in flight ran dry, and every link sat idle
 * for a round trip before the one after it came.
 */
#define READ_AHEAD_MORE 2
/* A multi-range batch of this much or more per data shard is read as runs
 * of stripes, hedged with spares (object_read_ahead.c) */
#define READ_RUNS_MIN_BYTES (256 * 1024)

static inline void
note_fetched(uint64 bytes)
{
	object_read_stats.bytes_fetched += bytes;
	cache_count_provider_bytes(bytes);
}

/*
 * What a reader thinks of each shard.  Ordered: a shard only gets worse
 * (note_failure takes the maximum), except that a HINTED shard whose chunks
 * turn out good becomes USABLE again.
 */
typedef enum ShardHealth
{
	SHARD_USABLE,
	SHARD_HINTED,				/* recorded missing or corrupt in destor.shards (a
								 * hint from an earlier repair or write, perhaps
								 * stale): not on the healthy path, tried in the
								 * repair path unless its provider is down or
								 * slow, so that a read can find it good */
	SHARD_SUSPECT,				/* failed or corrupt once: use only for repair */
	SHARD_UNREACHABLE			/* no provider, or fetching it failed */
} ShardHealth;

/* Where a window's ciphertext is: per shard, a buffer holding shard bytes
 * from offset lo on.  Data shards are complete; parity shards may be absent. */
typedef struct WindowSource
{
	uint8	   *buf[CODEC_RS_MAX_SHARDS];
	uint64		lo[CODEC_RS_MAX_SHARDS];
	bool		owned;			/* buffers to pfree after use */
} WindowSource;

struct ObjectReader
{
	MemoryContext cxt;
	ObjectMeta *meta;
	int			k;
	int			m;
	int			n;
	const codec_rs *rs;
	codec_cipher *cipher;
	codec_cipher *cipher2;		/* for the helper thread of open_blocks */
	ObjectChunkAuth *auth;		/* chunks against their trailer's tags */
	int			tag_len;
	Provider  **providers;
	char	  **keys;
	ShardHealth *health;
	bool	   *liar;			/* served a chunk that matched its CRC but not the
								 * ciphertext (format 1): left out from then on */
	bool	   *bad_bytes;		/* served a chunk failing its tag or CRC, or
								 * was found lying by elimination: unlike a
								 * shard whose request failed once (also
								 * SUSPECT), asked only when all else fails */
	char	  **errors;
	bool	   *slow;			/* provider much slower than the pool's others */
	bool	   *avoid;			/* a request to it was abandoned as too slow */
	bool	   *thin;			/* a request to it was given up for a thin
								 * link: bulk reads go around it (small ones
								 * do not) for the rest of this reader */
	bool	   *unrated;		/* no recent large-read rate known, while k
								 * other providers' are: a bulk read goes
								 * around it too (its link may be thin) */
	bool	   *far;			/* round trip well above the k-th fastest: bulk
								 * reads go around it (reader_check_slow_providers) */
	bool	   *distant;		/* its round trip alone is: small reads go
								 * around it too (also far) */
	TimestampTz slow_checked;	/* when slow[] was last worked out */

	uint64		stripe_size;	/* k * chunk_size */
	uint64		nstripes;
	uint64		last_chunk;		/* chunk length of the last stripe */
	uint64		shard_data_len;
	size_t		block_overhead; /* ciphertext bytes a block adds */
	uint8	   *scratch;		/* one opened block */
	uint8	   *sealed;			/* one sealed block that spans chunks */
	uint8	   *plain;			/* one decompressed block */
	/* per-data-shard fetch buffers, kept across windows: fresh 16 MiB
	 * allocations per window would be page-faulted in every time */
	uint8	   *shardbuf[2][CODEC_RS_MAX_DATA];
	size_t		shardbufcap[2][CODEC_RS_MAX_DATA];
	int			cur_set;		/* buffer set holding the window being opened */
	/* the healthy requests of the window fetched into each buffer set: a
	 * window's stay in use while the next one's are sent */
	ProviderRequest set_reqs[2][CODEC_RS_MAX_DATA];
	int			set_shard_of[2][CODEC_RS_MAX_DATA];

	/* read-ahead: the next window's healthy fetch, started early */
	ProviderBatch *ahead;
	int			ahead_nreqs;
	uint64		ahead_cs;
	uint64		ahead_ce;
	WindowSource ahead_src;
	uint64		last_read_end;	/* plaintext offset after the previous read */
	uint64		read_on_until;	/* object_reader_read_on: sequential up to here */
	bool		use_cache;		/* the shared cache exists */
	bool		cache_fill;		/* this read may fill it */
	struct HedgedWindow *ahead_hedged;	/* the next window, read ahead
										 * hedged (reader_hedged_start) */
	/*
	 * A caller reading on (object_reader_read_on) has up to
	 * READ_AHEAD_MORE windows after the next one fetched too (more_b0[i]
	 * .. more_b1[i], i < nmore, in order), each started once the one
	 * before it is near its end (reader_ahead_poll, between pieces of
	 * decoding; reader_ahead_wait_for, while waiting): the links stay busy
	 * while the backend opens a window and the caller writes it out.
	 */
	struct HedgedWindow *ahead_more[READ_AHEAD_MORE];
	uint64		more_b0[READ_AHEAD_MORE];
	uint64		more_b1[READ_AHEAD_MORE];
	int			nmore;
	bool		bytes_lied;		/* a window's blocks failed authentication
								 * (reader_open_blocks): the degraded read
								 * that follows asks every shard at once and
								 * finishes those answering, so that the liar
								 * is named */
	bool		bulk_batch;		/* a multi-range batch moving READ_BULK_BYTES or
								 * more per data shard in all: judged as one bulk
								 * read, whatever each range's size */
	struct MultiFetch *prefetch[OBJECT_READ_AHEAD_MAX];	/* multi-range
													 * read-aheads in flight,
													 * next call first */
	struct MultiFetch *stream;	/* a multi-range read opened as the caller
								 * needs its ranges (object_reader_read_multi_begin) */
};

static inline uint64
chunk_len(ObjectReader *r, uint64 stripe)
{
	return stripe == r->nstripes - 1 ? r->last_chunk : (uint64) r->meta->chunk_size;
}

static inline uint64
block_cstart(ObjectReader *r, uint64 b)
{
	if (b == 0)
		return 0;
	if (r->meta->block_ends)
		return r->meta->block_ends[b - 1];
	return b * (r->meta->block_size + r->block_overhead);
}

static inline uint64
block_cend(ObjectReader *r, uint64 b)
{
	if (r->meta->block_ends)
		return r->meta->block_ends[b];
	if (b == (uint64) r->meta->nblocks - 1)
		return r->meta->stream_size;
	return (b + 1) * (r->meta->block_size + r->block_overhead);
}

/* Request q (zeroed) reads len bytes of shard i from offset off into buf. */
static inline void
reader_shard_get(ProviderRequest *q, ObjectReader *r, int i, uint64 off, uint64 len, void *buf)
{
	q->provider = r->providers[i];
	q->op = POP_GET;
	q->key = r->keys[i];
	q->offset = off;
	q->length = len;
	q->buf = (char *) buf;
}

/* How a window is best fetched (reader_window_plan) */
typedef enum WindowPlan
{
	WINDOW_HEALTHY,				/* from the data shards */
	WINDOW_HEDGED_EVERY,		/* a run from every shard: read times unknown */
	WINDOW_HEDGED_DEGRADED,		/* a run from the k fastest, spares held */
	WINDOW_BALANCED				/* a run spread over every shard by rate
								 * (object_read_balance.c) */
} WindowPlan;

/*
 * Which stripes of a run, or of several runs taken end to end, each shard
 * serves (WINDOW_BALANCED, or a multi-range batch): count[i] stripes from
 * first[i] on, counted from the first run's first stripe and wrapping at
 * the last one's end; count 0: the shard is not asked.
 */
typedef struct StripeSplit
{
	uint64		first[CODEC_RS_MAX_SHARDS];
	uint64		count[CODEC_RS_MAX_SHARDS];
} StripeSplit;

/* object_read_balance.c */
extern bool reader_balance_plan(ObjectReader *r, uint64 nstripes, StripeSplit *split);
/* the stripes of stream bytes [cs, ce) */
static inline uint64
stream_stripes(ObjectReader *r, uint64 cs, uint64 ce)
{
	return (ce - 1) / r->stripe_size - cs / r->stripe_size + 1;
}

/* object_read.c: the driver and the healthy path */
extern void reader_note_failure(ObjectReader *r, int i, ProviderRequest *req, ShardHealth h);
extern void reader_check_slow_providers(ObjectReader *r);
extern int	reader_cmp_double(const void *a, const void *b);
extern void reader_shard_failed(ObjectReader *r, int i);
extern bool reader_healthy_plan(ObjectReader *r, uint64 cs, uint64 ce, bool *unmeasured);
extern bool reader_shard_range(ObjectReader *r, int d, uint64 cs, uint64 ce, uint64 *lo,
							   uint64 *hi);
extern int	reader_healthy_requests(ObjectReader *r, uint64 cs, uint64 ce, int set,
									ProviderRequest *reqs, int *shard_of, WindowSource *src);

/* object_read_decode.c: opening blocks into the caller's buffer */
extern bool reader_open_blocks(ObjectReader *r, uint64 b0, uint64 b1, const bool *skip,
							   WindowSource *src, uint64 offset, uint64 len, char *dst,
							   bool raise);

/* object_read_degraded.c: reading around bad shards, and runs of whole
 * stripes from every shard at once */
typedef struct StripeRuns StripeRuns;

/*
 * Which shards a run of stripes may ask, and how: those usable (shards
 * that failed this reader left out, the rest hedged); every shard, those
 * that failed included as spares of last resort (hedged: one that stalls
 * does not hold the read while others suffice); every shard, each waited
 * for (the last try, when a hedged one came up short).
 */
typedef enum RunsReach
{
	RUNS_USABLE,
	RUNS_ALL_HEDGED,
	RUNS_ALL_WAITED
} RunsReach;

extern StripeRuns *reader_runs_prepare(ObjectReader *r, int nruns, const uint64 *s0,
									   const uint64 *s1, RunsReach reach,
									   const bool *exclude, bool degraded,
									   bool every_shard, bool check_chunks,
									   const StripeSplit *split,
									   ProviderRequest **reqs, int *nreqs);
/* whether reads of r can be hedged: s3 providers only, with parity */
extern bool reader_hedgeable(ObjectReader *r);
extern bool reader_runs_stream_in(ObjectReader *r, StripeRuns *sr, int j, uint64 sa, uint64 sb);
extern bool reader_runs_stream_ready(ObjectReader *r, StripeRuns *sr, int j, uint64 sa, uint64 sb,
									 WindowSource *src);
extern bool reader_runs_complete(ObjectReader *r, StripeRuns *sr, WindowSource *srcs,
								 bool *run_ok);
extern void reader_open_window_degraded(ObjectReader *r, uint64 b0, uint64 b1,
										const bool *skip, uint64 offset, uint64 len,
										char *dst);
extern bool reader_patch_window(ObjectReader *r, uint64 cs, uint64 ce, WindowSource *src,
								const bool *failed);
extern void window_source_release(ObjectReader *r, WindowSource *src);
typedef struct HedgedWindow HedgedWindow;
extern HedgedWindow *reader_hedged_start(ObjectReader *r, uint64 b0, uint64 b1,
										 WindowPlan plan);
extern void reader_hedged_wait_tail(HedgedWindow *h);
extern void reader_hedged_wait_lead(HedgedWindow *h, double rtts);
extern bool reader_hedged_wait_end_or_lead(HedgedWindow *h, HedgedWindow *other, double rtts);
extern bool reader_hedged_ending(HedgedWindow *h);
extern bool reader_hedged_matches(HedgedWindow *h, uint64 b0, uint64 b1);
extern WindowPlan reader_hedged_plan(HedgedWindow *h);
extern void reader_hedged_discard(ObjectReader *r, HedgedWindow *h);
extern void reader_hedged_open(ObjectReader *r, HedgedWindow *h, const bool *skip,
							   uint64 offset, uint64 len, char *dst);

/* object_read_ahead.c: read-ahead and multi-range reads */
extern WindowPlan reader_window_plan(ObjectReader *r, uint64 cs, uint64 ce);
extern void reader_next_start(ObjectReader *r, uint64 b0, uint64 b1);
extern void reader_ahead_start(ObjectReader *r, uint64 cs, uint64 ce);
extern void reader_ahead_discard(ObjectReader *r);
extern void reader_hedged_ahead_discard(ObjectReader *r);
extern HedgedWindow *reader_hedged_take(ObjectReader *r, uint64 b0, uint64 b1);
extern void reader_hedged_keep(ObjectReader *r, uint64 nb0, uint64 nb1);
extern void reader_ahead_poll(ObjectReader *r);
extern void reader_ahead_start_more(ObjectReader *r);
extern void reader_ahead_wait_for(ObjectReader *r, struct HedgedWindow *h);
extern void reader_prefetch_discard(ObjectReader *r);

#endif							/* DESTOR_OBJECT_READ_INTERNAL_H */
