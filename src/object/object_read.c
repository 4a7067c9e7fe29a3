/*
 * object_read.c — random-access reads of objects, healthy or degraded.
 *
 * A read of a plaintext range is done in windows of whole blocks.  For
 * each window, the healthy path fetches, from each data shard, the single
 * contiguous byte range that holds the window's ciphertext, and opens the
 * GCM blocks where they lie: no decoding, and for blocks that fill their
 * chunk (every block not compressed) no copying either.  If a shard cannot
 * be fetched, or a block fails authentication, the window is read again by
 * the repair path: whole chunks of the window's stripes plus their CRCs
 * from every reachable shard; chunks whose CRC does not match are treated
 * as missing (so a corrupt shard is identified, not just detected), and
 * missing data chunks are rebuilt from any k good ones.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "destor/cache.h"
#include "destor/object.h"

#define READ_WINDOW_BLOCKS 256		/* 16 MiB of plaintext per window */

ObjectReadStats object_read_stats;

/* Reads of at least this many blocks in one go are bulk reads: they do
 * not fill the shared cache (they would only push hot pages out). */
#define CACHE_BULK_BLOCKS 64

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
								 * repair path when the others are not enough */
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
	char	  **errors;
	bool	   *slow;			/* provider much slower than the pool's others */
	bool	   *avoid;			/* a request to it was abandoned as too slow */
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

	/* read-ahead: the next window's healthy fetch, started early */
	ProviderBatch *ahead;
	ProviderRequest ahead_reqs[CODEC_RS_MAX_DATA];
	int			ahead_shard_of[CODEC_RS_MAX_DATA];
	int			ahead_nreqs;
	uint64		ahead_cs;
	uint64		ahead_ce;
	WindowSource ahead_src;
	uint64		last_read_end;	/* plaintext offset after the previous read */
	bool		use_cache;		/* the shared cache exists */
	bool		cache_fill;		/* this read may fill it */
	struct MultiFetch *prefetch;	/* multi-range read-ahead in flight */
};

static void ahead_discard(ObjectReader *r);
static void prefetch_discard(ObjectReader *r);
static void prefetch_abandon(ObjectReader *r);
struct MultiFetch;

static void
reader_free_cipher(void *arg)
{
	ObjectReader *r = (ObjectReader *) arg;

	/* error cleanup: transfers may still be writing into our buffers */
	if (r->ahead)
		provider_abandon(r->ahead);
	r->ahead = NULL;
	prefetch_abandon(r);

	if (r->cipher)
		codec_cipher_free(r->cipher);
	if (r->cipher2)
		codec_cipher_free(r->cipher2);
	r->cipher = NULL;
	r->cipher2 = NULL;
}

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
	r->liar = palloc0(sizeof(bool) * r->n);
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
		else if (!meta->shards[i].ok)
		{
			/*
			 * Recorded missing or corrupt: perhaps during an outage that is
			 * over.  A hint, not a verdict — tried when needed, and what is
			 * read from it is checked like anything else.
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
	ahead_discard(r);
	prefetch_discard(r);
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
		r->shardbuf[set][d] = MemoryContextAllocHuge(r->cxt, need);
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
static bool
shard_range(ObjectReader *r, int d, uint64 cs, uint64 ce, uint64 *lo, uint64 *hi)
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

/* Copy the stream bytes [cs, ce) out of per-data-shard buffers. */
static void
assemble(ObjectReader *r, uint64 cs, uint64 ce, uint8 **buf, uint64 *buf_lo, uint8 *out)
{
	uint64		s0 = cs / r->stripe_size;
	uint64		s1 = (ce - 1) / r->stripe_size;

	for (uint64 s = s0; s <= s1; s++)
	{
		uint64		cl = chunk_len(r, s);

		for (int d = 0; d < r->k; d++)
		{
			uint64		a = s * r->stripe_size + d * cl;
			uint64		b = a + cl;
			uint64		shard_off;

			a = Max(a, cs);
			b = Min(b, ce);
			if (a >= b)
				continue;
			shard_off = s * r->meta->chunk_size + (a - (s * r->stripe_size + d * cl));
			memcpy(out + (a - cs), buf[d] + (shard_off - buf_lo[d]), b - a);
		}
	}
}

static void
note_failure(ObjectReader *r, int i, ProviderRequest *req, ShardHealth h)
{
	if (req && req->abandoned)
	{
		/* not broken, just slow: read around it for the rest of this reader */
		r->avoid[i] = true;
		return;
	}
	r->health[i] = Max(r->health[i], h);
	if (r->errors[i])
		pfree(r->errors[i]);
	r->errors[i] = MemoryContextStrdup(r->cxt, req && req->error ? req->error :
									   req ? psprintf("short read (%llu of %llu bytes)",
													  (unsigned long long) req->result_size,
													  (unsigned long long) req->length) :
									   "shard failed its checksum");
}

/*
 * A chunk fetched from shard i does not match its tag: the shard is not
 * used again by this reader, and the provider is named — in the server log
 * and in the message of an error, should the read fail.  For objects of
 * format 2 the tag is keyed, so the provider served bytes the writer did
 * not write (bit rot, or a provider that lies); format 1 has only a CRC.
 */
static void
note_corrupt_chunk(ObjectReader *r, int i, uint64 stripe)
{
	const char *what = r->meta->key_version == OBJECT_FORMAT_CRC ?
		"does not match its checksum" : "failed authentication";

	r->health[i] = Max(r->health[i], SHARD_SUSPECT);
	if (r->errors[i])
		pfree(r->errors[i]);
	r->errors[i] = MemoryContextStrdup(r->cxt,
									   psprintf("its chunk of stripe %llu %s",
												(unsigned long long) stripe, what));
	ereport(LOG,
			(errmsg("destor: shard %d of object %s on provider \"%s\" is corrupt at stripe %llu: its chunk %s",
					i, object_id_text(r->meta->id), r->meta->shards[i].provider,
					(unsigned long long) stripe, what)));
	provider_stats_note_bad_chunk(r->meta->shards[i].provider);
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
#define SLOW_MARGIN_MS		50.0
#define SLOW_RECHECK_MS		100
#define SLOW_UNUSABLE_MS	1e12	/* a provider that does not exist */

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

static void
check_slow_providers(ObjectReader *r)
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
		memset(r->slow, 0, sizeof(bool) * r->n);
		return;					/* nothing measured: nothing to compare */
	}
	for (int i = 0; i < r->n; i++)
	{
		if (ms[i] < 0)
			ms[i] = fastest;
		sorted[i] = ms[i];
	}
	qsort(sorted, r->n, sizeof(double), cmp_double);
	kth = sorted[r->k - 1];
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
 * The healthy-path requests for stream bytes [cs, ce) into buffer set
 * "set"; -1 if a needed data shard is unusable or its provider is down.
 */
static int
healthy_requests(ObjectReader *r, uint64 cs, uint64 ce, int set, ProviderRequest *reqs,
				 int *shard_of, WindowSource *src)
{
	uint8	  **buf = src->buf;
	uint64	   *lo = src->lo;
	int			nreqs = 0;

	memset(src, 0, sizeof(WindowSource));
	for (int d = 0; d < r->k; d++)
	{
		uint64		a,
					b;

		if (!shard_range(r, d, cs, ce, &a, &b))
			continue;
		if (r->health[d] != SHARD_USABLE)
			return -1;
		/* with parity to fall back on, do not wait for a provider known down or slow */
		check_slow_providers(r);
		if (r->m > 0 && (r->slow[d] || r->avoid[d] || provider_is_down(r->providers[d])))
			return -1;
		memset(&reqs[nreqs], 0, sizeof(ProviderRequest));
		if (set >= 0)
			buf[d] = reader_shardbuf(r, set, d, b - a, a);
		else
		{
			/* a private buffer in the current context, laid out as above */
			char	   *raw = palloc(b - a + 3 * PROVIDER_IO_ALIGN);

			buf[d] = (uint8 *) TYPEALIGN(PROVIDER_IO_ALIGN, raw) + a % PROVIDER_IO_ALIGN;
		}
		lo[d] = a;
		reqs[nreqs].provider = r->providers[d];
		reqs[nreqs].op = POP_GET;
		reqs[nreqs].key = r->keys[d];
		reqs[nreqs].offset = a;
		reqs[nreqs].length = b - a;
		reqs[nreqs].buf = (char *) buf[d];
		reqs[nreqs].no_retry = (r->m > 0);
		reqs[nreqs].hedge = (r->m > 0);
		reqs[nreqs].buf_aligned_io = true;
		shard_of[nreqs++] = d;
	}
	return nreqs;
}

/* Collect a read-ahead that was started but is not wanted. */
static void
ahead_discard(ObjectReader *r)
{
	ProviderBatch *b = r->ahead;

	if (b == NULL)
		return;
	r->ahead = NULL;			/* finish cleans up itself if it fails */
	provider_finish(b);
	object_read_stats.requests += r->ahead_nreqs;
}

/* Start fetching stream bytes [cs, ce) into the buffer set not in use. */
static void
ahead_start(ObjectReader *r, uint64 cs, uint64 ce)
{
	int			n;

	Assert(r->ahead == NULL);
	n = healthy_requests(r, cs, ce, r->cur_set ^ 1, r->ahead_reqs, r->ahead_shard_of,
						 &r->ahead_src);
	if (n <= 0)
		return;
	r->ahead_nreqs = n;
	r->ahead_cs = cs;
	r->ahead_ce = ce;
	r->ahead = provider_start(r->ahead_reqs, n);
}

static bool
fetch_healthy(ObjectReader *r, uint64 cs, uint64 ce, WindowSource *src)
{
	ProviderRequest local_reqs[CODEC_RS_MAX_DATA];
	int			local_shard_of[CODEC_RS_MAX_DATA];
	ProviderRequest *reqs = local_reqs;
	int		   *shard_of = local_shard_of;
	int			nreqs;
	bool		ok = true;

	if (r->ahead && r->ahead_cs == cs && r->ahead_ce == ce)
	{
		/* read ahead: it has been coming in while the last window opened */
		provider_finish(r->ahead);
		r->ahead = NULL;
		reqs = r->ahead_reqs;
		shard_of = r->ahead_shard_of;
		nreqs = r->ahead_nreqs;
		*src = r->ahead_src;
		r->cur_set ^= 1;
	}
	else
	{
		ahead_discard(r);
		nreqs = healthy_requests(r, cs, ce, r->cur_set, reqs, shard_of, src);
		if (nreqs < 0)
			return false;
		provider_execute(reqs, nreqs);
	}
	object_read_stats.requests += nreqs;
	for (int q = 0; q < nreqs; q++)
	{
		note_fetched(reqs[q].result_size);
		if (!reqs[q].ok || reqs[q].result_size != reqs[q].length)
		{
			note_failure(r, shard_of[q], &reqs[q], SHARD_SUSPECT);
			ok = false;
		}
	}
	return ok;
}

static void
raise_unreadable(ObjectReader *r, uint64 stripe, int good)
{
	StringInfoData detail;
	char	  **names = palloc(sizeof(char *) * r->n);
	int			nbad = 0;

	initStringInfo(&detail);
	for (int i = 0; i < r->n; i++)
	{
		if (r->health[i] == SHARD_USABLE)
			continue;
		names[nbad++] = r->meta->shards[i].provider;
		appendStringInfo(&detail, "%sshard %d on \"%s\": %s", detail.len ? "; " : "", i,
						 r->meta->shards[i].provider, r->errors[i] ? r->errors[i] : "unavailable");
	}
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
			 errmsg("could not read object %s: %d of %d shards of stripe %llu are usable, %d are needed",
					object_id_text(r->meta->id), good, r->n, (unsigned long long) stripe, r->k),
			 errdetail("Unavailable or corrupt: %s. %s.", object_name_list(names, nbad), detail.data),
			 errhint("Bring the failed providers back (check them with destor.check_provider()); data is readable again once %d shards are.",
					 r->k)));
}

/*
 * Repair path: whole chunks of stripes [s0, s1] and their tags from every
 * reachable shard not excluded; chunks that do not match their tags are
 * treated as missing and rebuilt from any k good ones.  Fills src with the
 * stream [cs, ce).
 */
static void
fetch_repair(ObjectReader *r, uint64 cs, uint64 ce, WindowSource *src, bool include_down,
			 const bool *exclude)
{
	uint64		s0 = cs / r->stripe_size;
	uint64		s1 = (ce - 1) / r->stripe_size;
	uint64		nstr = s1 - s0 + 1;
	uint64		lo = s0 * r->meta->chunk_size;
	uint64		hi = s1 * r->meta->chunk_size + chunk_len(r, s1);
	ProviderRequest *reqs = palloc0(sizeof(ProviderRequest) * 2 * r->n);
	int		   *shard_of = palloc(sizeof(int) * 2 * r->n);
	uint8	   *buf[CODEC_RS_MAX_SHARDS];
	uint8	   *tagbuf[CODEC_RS_MAX_SHARDS];
	bool		fetched[CODEC_RS_MAX_SHARDS];
	uint64		lov[CODEC_RS_MAX_SHARDS];
	int			nreqs = 0;
	int			candidates = 0;
	bool		skipped_some = false;
	bool		skip[CODEC_RS_MAX_SHARDS];

	/*
	 * Shards recorded bad, providers known to be down, then those found
	 * slow, are left out while enough others remain; if the others turn out
	 * not to be enough, the window is read again with them included.
	 */
	for (int i = 0; i < r->n; i++)
	{
		skip[i] = (r->health[i] == SHARD_UNREACHABLE) || (exclude && exclude[i]);
		if (!skip[i])
			candidates++;
	}
	if (!include_down)
	{
		for (int i = 0; i < r->n && candidates > r->k; i++)
		{
			if (!skip[i] && r->health[i] == SHARD_HINTED)
			{
				skip[i] = true;
				skipped_some = true;
				candidates--;
			}
		}
		check_slow_providers(r);
		for (int i = 0; i < r->n && candidates > r->k; i++)
		{
			if (!skip[i] && provider_is_down(r->providers[i]))
			{
				skip[i] = true;
				skipped_some = true;
				candidates--;
			}
		}
		for (int i = 0; i < r->n && candidates > r->k; i++)
		{
			if (!skip[i] && (r->slow[i] || r->avoid[i]))
			{
				skip[i] = true;
				skipped_some = true;
				candidates--;
			}
		}
	}

	object_read_stats.degraded_reads++;
	for (int i = 0; i < r->n; i++)
	{
		buf[i] = palloc(hi - lo);
		tagbuf[i] = palloc(nstr * r->tag_len);
		lov[i] = lo;
		fetched[i] = false;
		if (skip[i])
			continue;
		reqs[nreqs].provider = r->providers[i];
		reqs[nreqs].op = POP_GET;
		reqs[nreqs].key = r->keys[i];
		reqs[nreqs].offset = lo;
		reqs[nreqs].length = hi - lo;
		reqs[nreqs].buf = (char *) buf[i];
		shard_of[nreqs++] = i;
		reqs[nreqs].provider = r->providers[i];
		reqs[nreqs].op = POP_GET;
		reqs[nreqs].key = r->keys[i];
		reqs[nreqs].offset = r->shard_data_len + s0 * r->tag_len;
		reqs[nreqs].length = nstr * r->tag_len;
		reqs[nreqs].buf = (char *) tagbuf[i];
		shard_of[nreqs++] = i;
	}
	provider_execute(reqs, nreqs);
	object_read_stats.requests += nreqs;
	for (int q = 0; q < nreqs; q += 2)
	{
		int			i = shard_of[q];

		note_fetched(reqs[q].result_size + reqs[q + 1].result_size);
		if (!reqs[q].ok || reqs[q].result_size != reqs[q].length)
			note_failure(r, i, &reqs[q], SHARD_UNREACHABLE);
		else if (!reqs[q + 1].ok || reqs[q + 1].result_size != reqs[q + 1].length)
			note_failure(r, i, &reqs[q + 1], SHARD_UNREACHABLE);
		else
			fetched[i] = true;
	}

	for (uint64 s = s0; s <= s1; s++)
	{
		uint64		cl = chunk_len(r, s);
		uint64		off = (s - s0) * r->meta->chunk_size;
		uint8	   *chunks[CODEC_RS_MAX_SHARDS];
		bool		present[CODEC_RS_MAX_SHARDS];
		int			good = 0;

		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < r->n; i++)
		{
			chunks[i] = buf[i] + off;
			present[i] = false;
			if (!fetched[i])
				continue;
			if (object_chunk_verify(r->auth, i, s, chunks[i], cl,
									tagbuf[i] + (s - s0) * r->tag_len))
			{
				present[i] = true;
				good++;
			}
			else
			{
				/* this provider served a chunk its writer did not write */
				object_read_stats.corrupt_chunks++;
				note_corrupt_chunk(r, i, s);
			}
		}
		if (good < r->k && skipped_some)
		{
			/* not enough without the providers known down: try them too */
			for (int i = 0; i < r->n; i++)
			{
				pfree(buf[i]);
				pfree(tagbuf[i]);
			}
			pfree(reqs);
			pfree(shard_of);
			fetch_repair(r, cs, ce, src, true, exclude);
			return;
		}
		if (good < r->k)
			raise_unreadable(r, s, good);
		if (good < r->n && codec_rs_reconstruct(r->rs, cl, chunks, present) != 0)
			raise_unreadable(r, s, good);
	}
	/* a shard recorded bad whose chunks all matched their tags is good */
	for (int i = 0; i < r->n; i++)
	{
		if (fetched[i] && r->health[i] == SHARD_HINTED)
		{
			r->health[i] = SHARD_USABLE;
			if (r->errors[i])
				pfree(r->errors[i]);
			r->errors[i] = NULL;
		}
	}
	memset(src, 0, sizeof(WindowSource));
	for (int i = 0; i < r->n; i++)
	{
		src->buf[i] = buf[i];
		src->lo[i] = lov[i];
		pfree(tagbuf[i]);
	}
	src->owned = true;
	pfree(reqs);
	pfree(shard_of);
}

static void
window_source_release(ObjectReader *r, WindowSource *src)
{
	if (src->owned)
		for (int i = 0; i < r->n; i++)
			if (src->buf[i])
				pfree(src->buf[i]);
	src->owned = false;
}

/*
 * The sealed bytes [a, e) of the stream: in place when they lie in one
 * chunk, else gathered into r->sealed.
 */
static const uint8 *
sealed_bytes(ObjectReader *r, WindowSource *src, uint64 a, uint64 e)
{
	uint64		s = a / r->stripe_size;
	uint64		cl = chunk_len(r, s);
	uint64		inner = a - s * r->stripe_size;
	int			d = (int) (inner / cl);
	uint64		off = inner % cl;

	if (off + (e - a) <= cl)
		return src->buf[d] + (s * r->meta->chunk_size + off - src->lo[d]);
	assemble(r, a, e, src->buf, src->lo, r->sealed);
	return r->sealed;
}

/*
 * Opening blocks in parallel.  The bulk of a large read is blocks that are
 * wanted whole, stored raw and lying in one chunk: they open straight from
 * the shard buffer into dst.  Two threads take one contiguous half each;
 * every other block (window edges, compressed or chunk-spanning blocks) is
 * left to the sequential pass.  Like the sequential pass, a task writes
 * only the bytes of dst that belong to the blocks it opens (a compressed
 * object's flag byte goes to a variable), so the two halves, the cached
 * blocks and the window's neighbours never touch each other's bytes.
 * Tasks are pure C: no palloc, no ereport.
 */
#define PARALLEL_OPEN_MIN_BLOCKS 16

typedef struct OpenTask
{
	ObjectReader *r;
	codec_cipher *cipher;
	WindowSource *src;
	uint64		b0;				/* first block of the window */
	uint64		from_block;		/* this task's blocks, inclusive */
	uint64		to_block;
	const bool *skip;			/* per window block: supplied by the cache */
	uint64		offset;
	uint64		len;
	char	   *dst;
	bool	   *done;			/* per window block: opened by a task */
	bool		failed;
} OpenTask;

static void
open_task_run(void *arg)
{
	OpenTask   *t = (OpenTask *) arg;
	ObjectReader *r = t->r;
	ObjectMeta *meta = r->meta;
	uint64		bs = meta->block_size;

	for (uint64 b = t->from_block; b <= t->to_block; b++)
	{
		uint64		a = block_cstart(r, b);
		uint64		e = block_cend(r, b);
		bool		last = (b == (uint64) meta->nblocks - 1);
		uint64		plen = last ? meta->size - b * bs : bs;
		uint64		s = a / r->stripe_size;
		uint64		cl = chunk_len(r, s);
		uint64		inner = a - s * r->stripe_size;
		int			d = (int) (inner / cl);
		uint64		off = inner % cl;
		char	   *out = t->dst + (b * bs - t->offset);
		uint8		flag = 0;

		if ((t->skip && t->skip[b - t->b0]) ||
			e - a != plen + r->block_overhead || b * bs < t->offset ||
			b * bs + plen > t->offset + t->len || off + (e - a) > cl)
			continue;
		if (codec_cipher_decrypt_block_split(t->cipher, b, last,
											 t->src->buf[d] + (s * meta->chunk_size + off - t->src->lo[d]),
											 e - a, (uint8 *) out, plen, &flag) != 0 ||
			flag != 0)
		{
			t->failed = true;
			return;
		}
		t->done[b - t->b0] = true;
	}
}

/* Returns the per-block "done" flags, or NULL when nothing was done. */
static bool *
open_blocks_parallel(ObjectReader *r, uint64 b0, uint64 b1, const bool *skip, WindowSource *src,
					 uint64 offset, uint64 len, char *dst)
{
	uint64		nb = b1 - b0 + 1;
	uint64		mid = b0 + nb / 2;
	bool	   *done;
	OpenTask	tasks[2];
	void	   *args[2] = {&tasks[0], &tasks[1]};

	if (nb < PARALLEL_OPEN_MIN_BLOCKS)
		return NULL;
	done = palloc0(sizeof(bool) * nb);
	for (int i = 0; i < 2; i++)
	{
		tasks[i].r = r;
		tasks[i].cipher = i == 0 ? r->cipher : r->cipher2;
		tasks[i].src = src;
		tasks[i].b0 = b0;
		tasks[i].from_block = i == 0 ? b0 : mid;
		tasks[i].to_block = i == 0 ? mid - 1 : b1;
		tasks[i].skip = skip;
		tasks[i].offset = offset;
		tasks[i].len = len;
		tasks[i].dst = dst;
		tasks[i].done = done;
		tasks[i].failed = false;
	}
	codec_run_parallel(open_task_run, args, 2);
	if (tasks[0].failed || tasks[1].failed)
	{
		/* let the sequential pass find and report what is wrong */
		pfree(done);
		return NULL;
	}
	return done;
}

/*
 * The decode stage of a window: open every block of [b0, b1] that the cache
 * did not supply (skip: per window block, NULL for none) from the window's
 * fetched shards, and put its wanted bytes in dst.  A block wanted whole and
 * stored raw opens straight into its place in dst; any other block opens
 * into scratch and its wanted part is copied.  Either way, opening block b
 * writes only b's bytes of dst: never a cached block's, never a neighbour's
 * (the flag byte of a compressed object's block goes to a variable).
 * False on an authentication failure when !raise.
 */
static bool
open_blocks(ObjectReader *r, uint64 b0, uint64 b1, const bool *skip, WindowSource *src,
			uint64 offset, uint64 len, char *dst, bool raise)
{
	ObjectMeta *meta = r->meta;
	uint64		bs = meta->block_size;
	bool	   *done = open_blocks_parallel(r, b0, b1, skip, src, offset, len, dst);

	if (done && r->use_cache && r->cache_fill)
	{
		/* the helper threads opened these in place: whole blocks in dst */
		for (uint64 b = b0; b <= b1; b++)
			if (done[b - b0])
				cache_insert(meta->id, b, dst + (b * bs - offset),
							 (uint32) (b == (uint64) meta->nblocks - 1 ? meta->size - b * bs : bs));
	}

	for (uint64 b = b0; b <= b1; b++)
	{
		uint64		a = block_cstart(r, b);
		uint64		e = block_cend(r, b);
		bool		last = (b == (uint64) meta->nblocks - 1);
		uint64		plen = last ? meta->size - b * bs : bs;
		uint64		from = Max(offset, b * bs);
		uint64		to = Min(offset + len, b * bs + plen);
		const uint8 *plain;
		uint8	   *out = r->scratch;
		uint8		flag = 0;
		size_t		outlen;
		bool		in_place;

		if ((done && done[b - b0]) || (skip && skip[b - b0]))
			continue;

		if (e < a + CODEC_TAG_LEN + (meta->compressed ? 1 : 0) ||
			e - a > bs + r->block_overhead)
			goto corrupt;

		/* a block stored raw and wanted whole opens straight into dst */
		in_place = (e - a == plen + r->block_overhead) && from == b * bs &&
			to == b * bs + plen;
		if (in_place)
			out = (uint8 *) dst + (from - offset);

		/* the payload without its flag byte into out, the flag apart */
		outlen = e - a - r->block_overhead;
		if (codec_cipher_decrypt_block_split(r->cipher, b, last, sealed_bytes(r, src, a, e),
											 e - a, out, outlen, &flag) != 0)
		{
	corrupt:
			if (!raise)
				return false;
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("block %llu of object %s failed authentication",
							(unsigned long long) b, object_id_text(meta->id)),
					 errdetail("Every chunk read matches its tag, yet the ciphertext they make up does not verify, whichever shards are left out."),
					 errhint("The object cannot be recovered from the remaining shards; restore it from a backup.")));
		}
		plain = out;
		if (meta->compressed && flag == 1)
		{
			if (in_place)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("block %llu of object %s is marked compressed but is not smaller",
								(unsigned long long) b, object_id_text(meta->id))));
			if (codec_decompress(out, outlen, r->plain, bs, &outlen) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("block %llu of object %s does not decompress",
								(unsigned long long) b, object_id_text(meta->id))));
			plain = r->plain;
		}
		else if (flag != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("block %llu of object %s has an unknown payload flag %d",
							(unsigned long long) b, object_id_text(meta->id), flag)));
		if (outlen != plen)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("block %llu of object %s has %zu bytes, expected %llu",
							(unsigned long long) b, object_id_text(meta->id), outlen,
							(unsigned long long) plen)));
		if (from < to && !in_place)
			memcpy(dst + (from - offset), plain + (from - b * bs), to - from);
		if (r->use_cache && r->cache_fill)
			cache_insert(meta->id, b, (const char *) plain, (uint32) plen);
	}
	if (done)
		pfree(done);
	return true;
}

/*
 * Format 1 objects only carry CRCs, which a provider can recompute: a chunk
 * changed together with its CRC passes as good, and the block it is part of
 * fails authentication.  Then every set of up to m of the shards read is
 * left out in turn (fewest first, at most ELIMINATION_TRIES sets) until the
 * window opens; the shards left out are the liars, named in the log and
 * left out for the rest of this reader.  (Format 2 tags are keyed: a chunk
 * that passes is the one written, so this never finds anything to do.)
 */
#define ELIMINATION_TRIES 64

static bool
open_by_elimination(ObjectReader *r, uint64 b0, uint64 b1, const bool *skip, uint64 offset,
					uint64 len, char *dst)
{
	uint64		cs = block_cstart(r, b0);
	uint64		ce = block_cend(r, b1);
	int			tries = 0;
	int			cand[CODEC_RS_MAX_SHARDS];
	int			ncand = 0;

	for (int i = 0; i < r->n; i++)
		if (r->health[i] != SHARD_UNREACHABLE && !r->liar[i])
			cand[ncand++] = i;
	for (int size = 1; size <= r->m && ncand - size >= r->k; size++)
	{
		int			pick[CODEC_RS_MAX_PARITY];

		/* every size-element subset of cand, in lexicographic order */
		for (int j = 0; j < size; j++)
			pick[j] = j;
		for (;;)
		{
			bool		exclude[CODEC_RS_MAX_SHARDS];
			WindowSource src;
			bool		ok;
			int			j;

			CHECK_FOR_INTERRUPTS();
			if (++tries > ELIMINATION_TRIES)
				return false;
			memcpy(exclude, r->liar, sizeof(bool) * r->n);
			for (j = 0; j < size; j++)
				exclude[cand[pick[j]]] = true;
			fetch_repair(r, cs, ce, &src, true, exclude);
			ok = open_blocks(r, b0, b1, skip, &src, offset, len, dst, false);
			window_source_release(r, &src);
			if (ok)
			{
				for (j = 0; j < size; j++)
				{
					int			i = cand[pick[j]];

					r->liar[i] = true;
					r->health[i] = Max(r->health[i], SHARD_SUSPECT);
					provider_stats_note_bad_chunk(r->meta->shards[i].provider);
					if (r->errors[i])
						pfree(r->errors[i]);
					r->errors[i] = MemoryContextStrdup(r->cxt,
													   "it served a chunk that matches its checksum but not the data written");
					ereport(LOG,
							(errmsg("destor: shard %d of object %s on provider \"%s\" served a chunk that matches its checksum but not the data written",
									i, object_id_text(r->meta->id), r->meta->shards[i].provider)));
				}
				return true;
			}
			/* next subset */
			for (j = size - 1; j >= 0 && pick[j] == ncand - size + j; j--)
				;
			if (j < 0)
				break;
			pick[j]++;
			for (j++; j < size; j++)
				pick[j] = pick[j - 1] + 1;
		}
	}
	return false;
}

/*
 * Stage 3 of a window when the healthy path did not do: read every shard's
 * chunks and tags, rebuild the bad chunks, open the blocks; failing that
 * (format 1: a chunk forged with its CRC), leave shards out in turn; failing
 * that too, report the authentication failure.
 */
static void
open_window_degraded(ObjectReader *r, uint64 b0, uint64 b1, const bool *skip, uint64 offset,
					 uint64 len, char *dst)
{
	uint64		cs = block_cstart(r, b0);
	uint64		ce = block_cend(r, b1);
	WindowSource src;
	bool		ok;

	fetch_repair(r, cs, ce, &src, false, r->liar);
	ok = open_blocks(r, b0, b1, skip, &src, offset, len, dst, false);
	window_source_release(r, &src);
	if (ok || open_by_elimination(r, b0, b1, skip, offset, len, dst))
		return;
	fetch_repair(r, cs, ce, &src, true, r->liar);
	open_blocks(r, b0, b1, skip, &src, offset, len, dst, true);
	window_source_release(r, &src);
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
 *      shards with bad chunks rebuilt (fetch_repair);
 *   3. decode: every missing block is authenticated and opened, and its
 *      wanted bytes put in dst (open_blocks) — cached blocks inside the
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
		healthy = fetch_healthy(r, cs, ce, &src);

		/*
		 * Sequential reading (more windows in this read, or this read
		 * continuing the previous one): fetch the next window while this
		 * one is opened.
		 */
		if (healthy && b1 + 1 < (uint64) meta->nblocks &&
			(b1 < blast || offset == r->last_read_end) && r->ahead == NULL)
		{
			uint64		nb1 = Min((uint64) meta->nblocks - 1, b1 + READ_WINDOW_BLOCKS);

			ahead_start(r, block_cstart(r, b1 + 1), block_cend(r, nb1));
		}

		/* stage 3: decode the missing blocks, degraded if need be */
		if (!healthy ||
			!open_blocks(r, wb0, wb1, any_hit ? hit + (wb0 - b0) : NULL, &src, offset, len, dst, false))
			open_window_degraded(r, wb0, wb1, any_hit ? hit + (wb0 - b0) : NULL, offset, len, dst);

		/* stage 4: opened pages filled their reservations; give up any other */
		if (r->use_cache)
			cache_release_reservations();
		b0 = b1 + 1;
	}
	r->last_read_end = offset + len;
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
} MultiFetch;

static MultiFetch *
multi_prepare(ObjectReader *r, int n, const uint64 *offsets, const uint64 *lens)
{
	ObjectMeta *meta = r->meta;
	uint64		bs = meta->block_size;
	MemoryContext cxt = AllocSetContextCreate(r->cxt, "destor multi-range read", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	MultiFetch *mf = palloc0(sizeof(MultiFetch));

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
		mf->count[i] = healthy_requests(r, block_cstart(r, b0), block_cend(r, b1), -1,
										mf->reqs + mf->nreqs, mf->shard_of + mf->nreqs,
										&mf->srcs[i]);
		if (mf->count[i] > 0)
			mf->nreqs += mf->count[i];
	}
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

/* Open every range of a finished MultiFetch into dsts (repairing as needed). */
static void
multi_open(ObjectReader *r, MultiFetch *mf, char **dsts)
{
	uint64		bs = r->meta->block_size;
	MemoryContext old = MemoryContextSwitchTo(mf->cxt);

	for (int i = 0; i < mf->n; i++)
	{
		uint64		off = mf->offsets[i];
		uint64		len = mf->lens[i];
		uint64		b0,
					b1;
		bool		ok = mf->count[i] >= 0;

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
								   (uint32) (to - b * bs), dsts[i] + (from - off));
			}
			if (!all)
			{
				/* evicted meanwhile: read it the ordinary way */
				MemoryContextSwitchTo(r->cxt);
				object_reader_read(r, off, len, dsts[i]);
				MemoryContextSwitchTo(mf->cxt);
			}
			continue;
		}
		if (mf->count[i] < 0 && b1 - b0 + 1 > READ_WINDOW_BLOCKS)
		{
			MemoryContextSwitchTo(r->cxt);
			object_reader_read(r, off, len, dsts[i]);
			MemoryContextSwitchTo(mf->cxt);
			continue;
		}
		for (int q = mf->first[i]; q < mf->first[i] + Max(mf->count[i], 0); q++)
		{
			note_fetched(mf->reqs[q].result_size);
			if (!mf->reqs[q].ok || mf->reqs[q].result_size != mf->reqs[q].length)
			{
				note_failure(r, mf->shard_of[q], &mf->reqs[q], SHARD_SUSPECT);
				ok = false;
			}
		}
		if (!ok || !open_blocks(r, b0, b1, NULL, &mf->srcs[i], off, len, dsts[i], false))
			open_window_degraded(r, b0, b1, NULL, off, len, dsts[i]);
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

/* Error cleanup: only wait for transfers still writing into our buffers. */
static void
prefetch_abandon(ObjectReader *r)
{
	if (r->prefetch && r->prefetch->batch)
		provider_abandon(r->prefetch->batch);
	r->prefetch = NULL;
}

/* Drop a read-ahead that is not wanted (collecting its transfers first). */
static void
prefetch_discard(ObjectReader *r)
{
	MultiFetch *mf = r->prefetch;

	if (mf == NULL)
		return;
	r->prefetch = NULL;
	multi_finish(r, mf);
	MemoryContextDelete(mf->cxt);
}

void
object_reader_read_multi(ObjectReader *r, int n, const uint64 *offsets, const uint64 *lens,
						 char **dsts)
{
	object_reader_read_multi_ahead(r, n, offsets, lens, dsts, 0, NULL, NULL);
}

/*
 * As object_reader_read_multi, and then start fetching the ranges the
 * caller will ask for next, so that they come in while it works on these.
 */
void
object_reader_read_multi_ahead(ObjectReader *r, int n, const uint64 *offsets, const uint64 *lens,
							   char **dsts, int next_n, const uint64 *next_offsets,
							   const uint64 *next_lens)
{
	MultiFetch *mf;

	if (n == 0 && next_n == 0)
		return;
	ahead_discard(r);
	if (r->prefetch && multi_matches(r->prefetch, n, offsets, lens))
	{
		mf = r->prefetch;
		r->prefetch = NULL;
		multi_finish(r, mf);
	}
	else
	{
		prefetch_discard(r);
		if (r->use_cache)
		{
			/*
			 * As for single reads: wait for pages others are fetching, then
			 * reserve what is still missing so that others wait for us.
			 */
			uint64		bs = r->meta->block_size;

			for (int i = 0; i < n; i++)
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
		multi_finish(r, mf);
	}
	if (next_n > 0)
	{
		MultiFetch *next = multi_prepare(r, next_n, next_offsets, next_lens);

		multi_start(r, next);
		r->prefetch = next;
	}
	multi_open(r, mf, dsts);
	if (r->use_cache)
		cache_release_reservations();
	MemoryContextDelete(mf->cxt);
}
