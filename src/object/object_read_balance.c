/*
 * object_read_balance.c — a bulk window spread over every provider.
 *
 * Any k of a stripe's n chunks rebuild it, and each stripe may pick its
 * own k.  A window read from the k fastest shards moves k / n of the
 * window's shard bytes over k links and leaves the other n - k idle; on
 * links that bound the read (a WAN), spreading the stripes over every
 * provider in proportion to its rate ends the window sooner: with six
 * providers alike, in 4 / 6 of the time.  The plan gives shard i a count
 * of the window's stripes; laid end to end around the window k times
 * (shard i's stripes start where shard i - 1's end, modulo the window),
 * the counts cover every stripe exactly k times as long as none exceeds
 * the window, and each shard's part is one ranged GET, or two where it
 * wraps.  Stripes without all their data chunks are rebuilt from the k
 * chunks they have (reader_runs_complete).
 *
 * Shares go by rate, taken with a pinch of salt (balance_rates): a link
 * measured a little faster than the others gets no more than they do, for
 * a share too large holds the whole window for it, and one too small
 * costs only a little more of the others.  A window read on is asked for a round trip
 * before the one before it ends (provider_wait_tail), so round trips
 * overlap transfers, and a provider only a little further away would lose
 * a share per window for a delay it pays once per read.  A far provider
 * (reader_check_slow_providers' far[]: its round trip well above the
 * others') is left out, as the other bulk plans leave it.
 *
 * The plan is made only when it pays: every candidate's rate is known
 * (the other plans measure providers not known yet), more than k shards
 * are usable, and the window would end clearly sooner than from the k
 * fastest.  On a local disk or a fast local S3 server the links do not
 * bound the read and the k fastest are kept (fewer requests, no
 * rebuild).  Nothing is held in reserve: a request that fails or is given
 * up sends the window the degraded way (reader_hedged_open).
 * destor.spread_reads turns it off (a pool whose providers bill egress
 * unevenly may want its reads where its data shards are).
 */
#include "postgres.h"

#include <math.h>

#include "destor/object.h"
#include "object_read_internal.h"

bool		destor_spread_reads = true;

/* spread a window only when it ends at least this much sooner ... */
#define BALANCE_MIN_GAIN_MS		20.0
/* ... and in at most this fraction of the k fastest shards' time */
#define BALANCE_MAX_RATIO		0.9

/*
 * A measured rate a little above the candidates' median counts as the
 * median: on shared links and CPUs a few samples of links alike differ by
 * this much (in the WAN bench's six alike, one got 1.5 times its share of
 * every window of an export, and took 1.5 times as long), and a share too
 * large holds the whole window for its link.  Above the band a rate counts
 * for what exceeds it (3 times the median counts as 2 times).  Below the
 * median a rate is never raised past what was measured — a share too
 * small costs only a little more of each other link, one too large the
 * whole window (a link at 0.6 times the others', given 0.8, made every
 * window wait for it) — except within a narrow band of noise.
 */
#define BALANCE_BAND_LOW		0.9
#define BALANCE_BAND_HIGH		1.5

static void
balance_rates(double *rate, const bool *use, int n)
{
	double		sorted[CODEC_RS_MAX_SHARDS];
	int			m = 0;
	double		med;

	for (int i = 0; i < n; i++)
		if (use[i])
			sorted[m++] = rate[i];
	if (m == 0)
		return;
	qsort(sorted, m, sizeof(double), reader_cmp_double);
	med = m % 2 ? sorted[m / 2] : (sorted[m / 2 - 1] + sorted[m / 2]) / 2;
	for (int i = 0; i < n; i++)
	{
		double		q;

		if (!use[i])
			continue;
		q = rate[i] / med;
		if (q > BALANCE_BAND_HIGH)
			q /= BALANCE_BAND_HIGH;
		else if (q >= BALANCE_BAND_LOW)
			q = 1;
		/* else: as measured */
		rate[i] = q * med;
	}
}

/*
 * reader_balance_plan — whether nstripes stripes (a window, or a batch's
 * runs end to end) are best read spread over every usable shard, and if so
 * (split not NULL) the stripes each shard serves.
 */
bool
reader_balance_plan(ObjectReader *r, uint64 nstripes, StripeSplit *split)
{
	double		len = (double) nstripes * r->meta->chunk_size;	/* per shard */
	double		rate[CODEC_RS_MAX_SHARDS];
	double		alone[CODEC_RS_MAX_SHARDS];
	double		share[CODEC_RS_MAX_SHARDS];
	double		frac[CODEC_RS_MAX_SHARDS];
	uint64		count[CODEC_RS_MAX_SHARDS];
	bool		use[CODEC_RS_MAX_SHARDS];
	double		t_k,
				lo,
				hi,
				total;
	uint64		assigned,
				pos;
	int			ncand = 0;

	if (!destor_spread_reads || !reader_hedgeable(r) || r->meta->key_version == OBJECT_FORMAT_CRC)
		return false;
	/* a bulk window only: a small read is one round trip whichever k answer */
	if (len < READ_BULK_BYTES || nstripes < (uint64) (2 * r->n))
		return false;
	reader_check_slow_providers(r);
	for (int i = 0; i < r->n; i++)
	{
		Provider   *p = r->providers[i];

		use[i] = p != NULL && r->health[i] == SHARD_USABLE && !r->liar[i] && !r->slow[i] &&
			!r->avoid[i] && !r->thin[i] && !r->far[i] && !provider_is_down(p);
		if (!use[i])
			continue;
		rate[i] = provider_typical_read_rate(p);	/* bytes per ms */
		if (rate[i] <= 0)
			return false;		/* not measured: the hedged plans measure it */
		ncand++;
	}
	if (ncand <= r->k)
		return false;			/* nothing to spread over */
	balance_rates(rate, use, r->n);
	ncand = 0;
	for (int i = 0; i < r->n; i++)
		if (use[i])
			alone[ncand++] = len / rate[i];

	/* the window from the k fastest alone: the k-th of their times */
	qsort(alone, ncand, sizeof(double), reader_cmp_double);
	t_k = alone[r->k - 1];

	/* the smallest T by which the providers can move k shards' worth */
	lo = 0;
	hi = t_k;
	for (int it = 0; it < 60; it++)
	{
		double		t = (lo + hi) / 2;
		double		got = 0;

		for (int i = 0; i < r->n; i++)
			if (use[i])
				got += Min(len, t * rate[i]);
		if (got >= r->k * len)
			hi = t;
		else
			lo = t;
	}
	if (t_k - hi < BALANCE_MIN_GAIN_MS || hi > t_k * BALANCE_MAX_RATIO)
		return false;
	if (split == NULL)
		return true;

	/*
	 * Each shard's stripes: what it moves by T, scaled to k windows in all
	 * (the bisection overshoots a little), rounded by largest remainder so
	 * that the counts add up exactly and none exceeds the window.
	 */
	total = 0;
	for (int i = 0; i < r->n; i++)
	{
		share[i] = use[i] ? Min(len, hi * rate[i]) / len * nstripes : 0;
		total += share[i];
	}
	assigned = 0;
	for (int i = 0; i < r->n; i++)
	{
		share[i] *= (double) (r->k * nstripes) / total;
		count[i] = Min((uint64) floor(share[i]), nstripes);
		frac[i] = share[i] - count[i];
		assigned += count[i];
	}
	while (assigned < r->k * nstripes)
	{
		int			best = -1;

		for (int i = 0; i < r->n; i++)
			if (count[i] < nstripes && (best < 0 || frac[i] > frac[best]))
				best = i;
		Assert(best >= 0);
		count[best]++;
		frac[best] = -1;
		assigned++;
	}
	while (assigned > r->k * nstripes)
	{
		int			best = -1;

		for (int i = 0; i < r->n; i++)
			if (count[i] > 0 && (best < 0 || frac[i] < frac[best]))
				best = i;
		count[best]--;
		frac[best] = 2;
		assigned--;
	}
	pos = 0;
	for (int i = 0; i < r->n; i++)
	{
		split->first[i] = pos % nstripes;
		split->count[i] = count[i];
		pos += count[i];
	}
	return true;
}
