/*
 * object_read_degraded.c — stage 4 of a read: a window the healthy path
 * could not do.  Whole chunks of the window's stripes and their tags are
 * fetched from every reachable shard (shards recorded bad, providers down
 * or slow are left out while enough others remain, and tried when they
 * are needed); chunks that do not match their tags are treated as missing
 * and rebuilt from any k good ones; then the blocks are opened again.
 * For format 1 objects, whose CRCs a provider can forge, shards are left
 * out in turn until the window opens (the liar search).  When too few
 * shards remain, the error names each one and why.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "destor/object.h"
#include "object_read_internal.h"

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
	MemoryContext old;

	r->health[i] = Max(r->health[i], SHARD_SUSPECT);
	r->bad_bytes[i] = true;
	reader_shard_failed(r, i);
	if (r->errors[i])
		pfree(r->errors[i]);
	old = MemoryContextSwitchTo(r->cxt);
	r->errors[i] = psprintf("its chunk of stripe %llu %s", (unsigned long long) stripe, what);
	MemoryContextSwitchTo(old);
	ereport(LOG,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("shard %d of object %s on provider \"%s\" is corrupt at stripe %llu: its chunk %s",
					i, object_id_text(r->meta->id), r->meta->shards[i].provider,
					(unsigned long long) stripe, what)));
	provider_stats_note_bad_chunk(r->meta->shards[i].provider);
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
	/*
	 * On a read-only follower the likeliest cause is not a provider: the
	 * writer deleted or moved the object after this database last followed
	 * its log.
	 */
	if (r->meta->pool != NULL && pool_name_read_only(r->meta->pool))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("could not read object %s: %d of %d shards of stripe %llu are usable, %d are needed",
						object_id_text(r->meta->id), good, r->n, (unsigned long long) stripe, r->k),
				 errdetail("Unavailable or corrupt: %s. %s. Pool \"%s\" is read-only here: its writer may have deleted or moved this object since this database last followed its log.",
						   object_name_list(names, nbad), detail.data, r->meta->pool),
				 errhint("Run SELECT destor.follow_pool('%s') and retry; if the error stays, check the providers with destor.check_provider().",
						 r->meta->pool)));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
			 errmsg("could not read object %s: %d of %d shards of stripe %llu are usable, %d are needed",
					object_id_text(r->meta->id), good, r->n, (unsigned long long) stripe, r->k),
			 errdetail("Unavailable or corrupt: %s. %s.", object_name_list(names, nbad), detail.data),
			 errhint("Bring unavailable providers back (check them with destor.check_provider()); a shard whose chunks failed their tags was changed on its provider and must be restored there. Data is readable again once %d shards are.",
					 r->k)));
}

/*
 * plan_hedge — which shards a degraded fetch asks first.  The k shards
 * whose providers read fastest lately are asked at once (start[i]): a
 * provider not measured lately counts as fast as the fastest measured one,
 * as in reader_check_slow_providers; one never measured
 * (provider_read_time_known) after every measured one; providers far or
 * thin for bulk reads (reader_check_slow_providers' far[]) after the
 * others; ties go to the lower shard, data before parity.  Any shard on a
 * provider never measured is asked at once as well: a ranking without
 * read times is a guess that a far provider would decide (a backend's
 * first reads after a restart), and asking costs only its bytes, measures
 * it, and lets the quickest k answers win.  A read hedged only because
 * some provider was never measured (all_at_once) starts every candidate
 * but the last-resort ones, for its ranking is partly such a guess (a thin
 * provider among the first k held a fast one back as a spare).  The other
 * candidates are spares, started by the transfer loop only when one of
 * the first fails or is late; the first k shards to answer win (unit_of[i]:
 * 1..k asked first, more: spare in that order, 0: not hedged).  Providers
 * down, found slow or avoided by this reader are not left out, as they are
 * without hedging, but come last: spares of last resort (last[i]), started
 * only for a unit that failed or is very late.  A shard recorded bad
 * (HINTED) is always asked besides, as a probe (probe[i]): only a read of
 * it can find the record stale, but the read does not wait for it — the
 * set needs k others, and the probe is cancelled with the rest if it has
 * not answered by then (a provider that stalls would otherwise hold every
 * read for its request timeout).
 * s3 providers only (a file provider is a local disk: its requests all
 * run); false when hedging does not apply, and then every candidate is
 * asked and waited for.
 */
#define HEDGE_LAST_MS 1e9		/* the rank of a provider known slow */
#define HEDGE_FAR_MS 1e6		/* added to a far or thin provider's rank */
#define HEDGE_UNKNOWN_MS 5e5	/* the rank of a provider never measured */

static bool
plan_hedge(ObjectReader *r, const bool *skip, int *unit_of, bool *last, bool *probe,
		   bool *start, int *need, bool all_at_once, bool include_all)
{
	double		ms[CODEC_RS_MAX_SHARDS];
	bool		unknown[CODEC_RS_MAX_SHARDS];
	bool		check_all[CODEC_RS_MAX_SHARDS] = {0};
	bool		down;
	int			order[CODEC_RS_MAX_SHARDS];
	int			norder = 0;
	double		fastest = -1;
	int			honest = 0;		/* candidates neither hinted nor liars */

	for (int i = 0; i < r->n; i++)
		if (!skip[i] && r->health[i] != SHARD_HINTED && !r->bad_bytes[i])
			honest++;
	for (int i = 0; i < r->n; i++)
	{
		unit_of[i] = 0;
		last[i] = false;
		probe[i] = false;
		start[i] = false;
		if (skip[i])
			continue;
		if (r->providers[i]->type != PROVIDER_S3)
			return false;
		if (r->health[i] == SHARD_HINTED)
		{
			/* unless a probe of it found nothing lately (ShardNote), or
			 * this is a try with every shard (RUNS_ALL_HEDGED) */
			probe[i] = include_all ||
				provider_shard_probe_due(r->providers[i], r->keys[i]);
			continue;
		}
		if (r->bad_bytes[i] && include_all && honest > r->k)
		{
			/*
			 * It served this reader bad bytes, and this is the try with
			 * every shard: a probe (started at once, its good chunks used,
			 * never counted).  A unit ranked last of all, it was started
			 * as the last spare once the honest units left (one farther
			 * away, a staller) were very late, and its answer, complete
			 * but bad, ended the try a stripe short; the waited try after
			 * it sat out the staller (TAP 185, part 3: 11 s in CI).  Not
			 * when the others are too few to hedge with: the set would
			 * not be hedged at all, and wait for every shard (a break
			 * review, with a shard recorded missing beside: 21 s).
			 */
			probe[i] = true;
			continue;
		}
		ms[i] = provider_recent_read_ms(r->providers[i]);
		unknown[i] = !provider_read_time_known(r->providers[i]);
		if (ms[i] >= 0 && ms[i] < HEDGE_LAST_MS && (fastest < 0 || ms[i] < fastest))
			fastest = ms[i];
		/*
		 * slow or avoided ones, and shards whose request failed once
		 * (SUSPECT), are spares of last resort; down ones, and shards that
		 * failed this reader (asked only by a try with every shard), after
		 * them; a shard that served bad bytes last of all: ranked as any
		 * other, it was asked in every later window, which then failed and
		 * was read again, and ranked with the slow ones (or a shard that
		 * failed once, before it by shard order), its answer — complete,
		 * but bad — ended the hedged set of the try with every shard a
		 * stripe short while an honest spare was left unasked
		 */
		down = provider_is_down(r->providers[i]) || r->health[i] == SHARD_UNREACHABLE;
		last[i] = r->slow[i] || r->avoid[i] || r->health[i] == SHARD_SUSPECT || down;
		if (r->slow[i] || r->avoid[i] || r->health[i] == SHARD_SUSPECT)
			ms[i] = HEDGE_LAST_MS;
		if (down)
			ms[i] = 2 * HEDGE_LAST_MS;
		if (r->bad_bytes[i])
			ms[i] = 3 * HEDGE_LAST_MS;
		/*
		 * After bad bytes every shard is checked: slow and avoided ones,
		 * and those whose request failed once, are started too (a
		 * provider 60 ms farther found slow under load, or an honest shard
		 * whose healthy GET had failed, was left a spare, the liar's
		 * complete answer ended the set, and a stripe came up short: TAP
		 * 185) — not one down or that served bad bytes, which would
		 * only cost the grace
		 */
		check_all[i] = r->bytes_lied && !down && !r->bad_bytes[i];
		order[norder++] = i;
	}
	if (norder <= r->k)
		return false;			/* no spare to hedge with */
	for (int j = 0; j < norder; j++)
	{
		/*
		 * Never measured: asked at once anyway (start[] below), so ranked
		 * after the measured ones, which then fill the first k — ranked as
		 * fast as the fastest, they would hold measured providers back as
		 * spares and the read would wait for them after all.
		 */
		if (unknown[order[j]] && ms[order[j]] < HEDGE_LAST_MS)
			ms[order[j]] = HEDGE_UNKNOWN_MS;
		else if (ms[order[j]] < 0)
			ms[order[j]] = Max(fastest, 0);
		/*
		 * far or thin ones (a MiB takes them far longer) after the others,
		 * and those of unknown rate while k others' are known (the link
		 * may be thin: they are spares, and measured when used)
		 */
		if ((r->far[order[j]] || r->unrated[order[j]] || r->thin[order[j]]) &&
			ms[order[j]] < HEDGE_LAST_MS)
			ms[order[j]] += HEDGE_FAR_MS;
	}
	/* insertion sort by read time, stable: ties keep shard order */
	for (int j = 1; j < norder; j++)
	{
		int			x = order[j];
		int			l = j - 1;

		while (l >= 0 && ms[order[l]] > ms[x])
		{
			order[l + 1] = order[l];
			l--;
		}
		order[l + 1] = x;
	}
	for (int j = 0; j < norder; j++)
	{
		int			i = order[j];

		unit_of[i] = j + 1;
		/*
		 * A try with every shard comes after one that came up short: the
		 * k best ranked were not enough, so each shard is started at once
		 * (the first k to answer win; one that served bad bytes is a
		 * probe, above, or, when the others are too few, the last spare:
		 * started at once, its answer ended the set before a probe's
		 * honest chunks were in, under load: TAP 197).  Ranked, a staller
		 * among the first k was given up only as very late (a second)
		 * before the honest shard that had failed once was asked (TAP
		 * 185, part 5).
		 */
		start[i] = j < r->k || ((unknown[i] || all_at_once) && !last[i]) || check_all[i] ||
			(include_all && !r->bad_bytes[i]);
	}
	*need = r->k;
	return true;
}

/*
 * Runs of whole stripes, read from every shard at once.  A run is stripes
 * [s0, s1] of the object; for each shard asked, each run's chunks are one
 * request and the tags of every run one more, and all of a shard's
 * requests are one unit of the hedged set (plan_hedge), so one batch of
 * provider requests serves any number of runs: the degraded path's window
 * is one run, a multi-range read (a scan's batch of row groups) as many as
 * it needs.  Chunks that do not match their tags are treated as missing
 * and rebuilt from any k good ones.
 */
struct StripeRuns
{
	int			nruns;
	uint64	   *s0;
	uint64	   *s1;
	uint64		t0;				/* the stripes whose tags are fetched */
	uint64		t1;
	uint8	  **buf;			/* [run * n + shard]: chunks from the run's start */
	uint8	   *tagbuf[CODEC_RS_MAX_SHARDS];	/* NULL: tags not fetched */
	bool		skip[CODEC_RS_MAX_SHARDS];
	ProviderRequest *reqs;
	int		   *shard_of;
	int			nreqs;
	bool		skipped_some;	/* shards left out that might have helped */
	bool		degraded;		/* counted as a degraded read, else a hedged one */
	uint64	   *vfirst;			/* split: run j's first stripe with the runs
								 * end to end ([nruns]: their stripes in all) */
	uint64	   *req_v0;			/* split: request q's stripes [v0, v1) there */
	uint64	   *req_v1;
	bool	   *have;			/* split: [i * stripes + v]: shard i's chunk of
								 * stripe v came in (reader_runs_complete) */
	StripeSplit *split;			/* one run spread over the shards, each serving
								 * some of its stripes (NULL: every stripe) */
	uint64		bad_stripe;		/* after reader_runs_complete: a stripe short */
	int			bad_good;		/* of good chunks, and how many it had */
};

/*
 * Shard i's requests of split runs: its stripes from split->first[i] on,
 * the runs taken end to end (vfirst[j]: run j's first stripe there) and
 * wrapping past the last one's end — a GET for each run its stripes
 * touch.  Each lands where the whole run's would have put it, so the
 * run's buffers hold every stripe at the same place whichever shards
 * served it.  No retries and no spares: a request that fails or lags far
 * behind the others (hedge) sends its ranges the degraded way, whose
 * hedged set has spares.
 */
static void
split_requests(ObjectReader *r, StripeRuns *sr, int i)
{
	uint64		total = sr->vfirst[sr->nruns];
	uint64		first = sr->split->first[i];
	uint64		count = sr->split->count[i];
	uint64		spans[2][2];	/* [from, to) in the runs end to end */
	int			nspans = 0;

	if (count >= total)
	{
		/* every stripe: one span from the start, not two meeting at first */
		spans[0][0] = 0;
		spans[0][1] = total;
		nspans = 1;
	}
	else if (first + count <= total)
	{
		spans[0][0] = first;
		spans[0][1] = first + count;
		nspans = 1;
	}
	else
	{
		spans[0][0] = first;
		spans[0][1] = total;
		spans[1][0] = 0;
		spans[1][1] = first + count - total;
		nspans = 2;
	}
	for (int p = 0; p < nspans; p++)
	{
		for (int j = 0; j < sr->nruns; j++)
		{
			uint64		from = Max(spans[p][0], sr->vfirst[j]);
			uint64		to = Min(spans[p][1], sr->vfirst[j + 1]);
			uint64		a,
						b;
			ProviderRequest *q;

			if (from >= to)
				continue;
			a = sr->s0[j] + (from - sr->vfirst[j]);
			b = sr->s0[j] + (to - 1 - sr->vfirst[j]);
			q = &sr->reqs[sr->nreqs];
			reader_shard_get(q, r, i, a * r->meta->chunk_size,
							 (b - a) * r->meta->chunk_size + chunk_len(r, b),
							 sr->buf[j * r->n + i] + (a - sr->s0[j]) * r->meta->chunk_size);
			q->no_retry = true;
			q->hedge = true;
			sr->req_v0[sr->nreqs] = from;
			sr->req_v1[sr->nreqs] = to;
			sr->shard_of[sr->nreqs++] = i;
		}
	}
}

/*
 * A split run's stripes short of k chunks after its batch (a request that
 * failed, a shard not found, one given up as too slow): each gets the
 * chunks it lacks from shards that were not asked for it — by shard
 * order, those in good standing first (a shard whose request was given up
 * as too slow is asked again only when no other is left) — in one more
 * batch, so that only the missing
 * part moves again, not the window.  Chunks that come in are marked in
 * sr->have.  (The window's other stripes are complete: no shard is asked
 * for a chunk of them.)
 */
static void
split_patch(ObjectReader *r, StripeRuns *sr)
{
	uint64		total = sr->vfirst[sr->nruns];
	bool	   *want = palloc0(sizeof(bool) * r->n * total);
	ProviderRequest *reqs = NULL;
	uint64	   *v0s = NULL;
	uint64	   *v1s = NULL;
	int		   *shard_of = NULL;
	int			nreqs = 0;
	bool		any = false;

	for (uint64 v = 0; v < total; v++)
	{
		int			got = 0;

		for (int i = 0; i < r->n; i++)
			got += sr->have[i * total + v];
		/* usable shards not asked for v first, then any other still there */
		for (int pass = 0; pass < 2 && got < r->k; pass++)
			for (int i = 0; i < r->n && got < r->k; i++)
			{
				bool		usable;

				if (sr->have[i * total + v] || r->providers[i] == NULL || r->liar[i] ||
					r->health[i] == SHARD_UNREACHABLE)
					continue;
				/*
				 * first those in good standing: not given up as slow or
				 * thin here, and chosen by the planner (one it left out —
				 * never measured, far, thin — was asked first by shard
				 * order, and, stalling, held the patch, which waited
				 * alone for it: TAP 100)
				 */
				usable = r->health[i] == SHARD_USABLE && !r->avoid[i] && !r->thin[i] &&
					sr->split->count[i] > 0 && !provider_is_down(r->providers[i]);
				if (usable != (pass == 0))
					continue;
				want[i * total + v] = true;
				got++;
				any = true;
			}
	}
	/*
	 * A patch that would ask one shard alone is left to the degraded path:
	 * a request that stalls can be judged late only against others that
	 * answer, and alone in its batch it held the read for its request
	 * timeout (a 3+3 pool, one shard failing and the one patching for it
	 * stalling: a break review of 9885fa9); the degraded path's hedged
	 * set has spares.
	 */
	for (int i = 0, asked = 0; i < r->n && any; i++)
	{
		for (uint64 v = 0; v < total; v++)
			if (want[i * total + v])
			{
				asked++;
				break;
			}
		if (i == r->n - 1 && asked < 2)
			any = false;
	}
	if (!any)
	{
		pfree(want);
		return;
	}
	/* a request per shard and stretch of wanted stripes within a run */
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < r->n; i++)
			for (int j = 0; j < sr->nruns; j++)
			{
				uint64		v = sr->vfirst[j];

				while (v < sr->vfirst[j + 1])
				{
					uint64		e;

					if (!want[i * total + v])
					{
						v++;
						continue;
					}
					for (e = v; e < sr->vfirst[j + 1] && want[i * total + e]; e++)
						;
					if (pass == 1)
					{
						uint64		a = sr->s0[j] + (v - sr->vfirst[j]);
						uint64		b = sr->s0[j] + (e - 1 - sr->vfirst[j]);

						reader_shard_get(&reqs[nreqs], r, i, a * r->meta->chunk_size,
										 (b - a) * r->meta->chunk_size + chunk_len(r, b),
										 sr->buf[j * r->n + i] + (a - sr->s0[j]) * r->meta->chunk_size);
						/* one that stalls while others answer is given up */
						reqs[nreqs].hedge = true;
						v0s[nreqs] = v;
						v1s[nreqs] = e;
						shard_of[nreqs] = i;
					}
					nreqs++;
					v = e;
				}
			}
		if (pass == 0)
		{
			reqs = palloc0(sizeof(ProviderRequest) * nreqs);
			v0s = palloc(sizeof(uint64) * nreqs);
			v1s = palloc(sizeof(uint64) * nreqs);
			shard_of = palloc(sizeof(int) * nreqs);
			nreqs = 0;
		}
	}
	provider_execute(reqs, nreqs);
	object_read_stats.requests += nreqs;
	for (int q = 0; q < nreqs; q++)
	{
		int			i = shard_of[q];

		note_fetched(reqs[q].result_size);
		if (!reqs[q].ok || reqs[q].result_size != reqs[q].length)
		{
			reader_note_failure(r, i, &reqs[q], SHARD_UNREACHABLE);
			continue;
		}
		for (uint64 v = v0s[q]; v < v1s[q]; v++)
			sr->have[i * total + v] = true;
	}
	pfree(want);
	pfree(reqs);
	pfree(v0s);
	pfree(v1s);
	pfree(shard_of);
}

/*
 * reader_runs_prepare — the requests that read runs [s0[j], s1[j]] (in
 * stripe order, not overlapping): from every shard not excluded whose
 * provider exists (those that failed this reader before only when reach
 * is not RUNS_USABLE, and then as spares of last resort of a hedged set
 * unless RUNS_ALL_WAITED), with providers known down or found slow left
 * out while enough others remain (RUNS_USABLE without hedging) or made
 * spares of last resort (with it).  A shard recorded bad in destor.shards is not left out
 * for its record alone: only a read of it can find the record stale (a
 * provider back after an outage), and then every reader uses it again
 * (provider_note_shard_verified).  It costs a request while the record is
 * true (such records last only until a repair rebuilds the shard), which
 * the read does not wait for when k others answer: it is a probe of the
 * hedged set, made again only an interval after one that found nothing
 * (provider_note_shard_probed).  Counted, once complete, as a degraded read, or (!degraded:
 * a batch read this way because its providers' read times are not known
 * yet, or because it is bulk) as a hedged one.  every_shard: every
 * candidate is started at once (read times not known: a ranking would be
 * a guess), else the k fastest, the others held as spares.
 * check_chunks: every shard's tags are fetched and each chunk checked
 * against its tag before the rebuild, which names a shard that served bad
 * bytes.  Without it (objects of format 2 only) only a shard recorded bad
 * gets its tags (its probe must prove the record stale); the others'
 * chunks are trusted until the blocks are opened, whose authentication
 * catches any bad byte, rebuilt or not, as on the healthy path, and the
 * caller then reads the window again with check_chunks
 * (reader_open_window_degraded).  That halves the requests of a hedged
 * read: a tag request per shard was as many requests as the chunks', on
 * every read, for a check that only a provider's fault needs.  The buffers
 * are allocated in the current memory context.
 */
StripeRuns *
reader_runs_prepare(ObjectReader *r, int nruns, const uint64 *s0, const uint64 *s1,
					RunsReach reach, const bool *exclude, bool degraded,
					bool every_shard, bool check_chunks, const StripeSplit *split,
					ProviderRequest **reqs_out, int *nreqs_out)
{
	StripeRuns *sr = palloc0(sizeof(StripeRuns));
	int			candidates = 0;
	bool		hedged = false;
	bool		include_down = reach != RUNS_USABLE;
	int			unit_of[CODEC_RS_MAX_SHARDS] = {0};
	bool		last[CODEC_RS_MAX_SHARDS] = {0};
	bool		probe[CODEC_RS_MAX_SHARDS] = {0};
	bool		start[CODEC_RS_MAX_SHARDS] = {0};
	int			need = 0;
	uint64		ntags;

	Assert(nruns > 0);
	sr->nruns = nruns;
	sr->s0 = palloc(sizeof(uint64) * nruns);
	sr->s1 = palloc(sizeof(uint64) * nruns);
	memcpy(sr->s0, s0, sizeof(uint64) * nruns);
	memcpy(sr->s1, s1, sizeof(uint64) * nruns);
	sr->t0 = s0[0];
	sr->t1 = s1[nruns - 1];
	ntags = sr->t1 - sr->t0 + 1;
	sr->buf = palloc0(sizeof(uint8 *) * nruns * r->n);
	/* per shard, a request a run (one more for a split one's wrap) and the tags' */
	sr->reqs = palloc0(sizeof(ProviderRequest) * (nruns + 2) * r->n);
	sr->shard_of = palloc(sizeof(int) * (nruns + 2) * r->n);

	for (int i = 0; i < r->n; i++)
	{
		/*
		 * A shard whose request failed earlier in this reader's life is
		 * left out — unless include_down: its provider may be back (a blob
		 * descriptor's reader lives long), and the others were not enough.
		 */
		bool		unreachable = r->health[i] == SHARD_UNREACHABLE;

		sr->skip[i] = r->providers[i] == NULL || (exclude && exclude[i]) ||
			(unreachable && !include_down) || (split && split->count[i] == 0);
		if (unreachable && sr->skip[i] && r->providers[i] != NULL && !(exclude && exclude[i]))
			sr->skipped_some = true;
		if (!sr->skip[i])
			candidates++;
	}
	if (split)
	{
		/* the planner chose the shards: each is needed for its stripes */
		Assert(!include_down);
		sr->split = palloc(sizeof(StripeSplit));
		memcpy(sr->split, split, sizeof(StripeSplit));
		sr->vfirst = palloc(sizeof(uint64) * (nruns + 1));
		sr->vfirst[0] = 0;
		for (int j = 0; j < nruns; j++)
			sr->vfirst[j + 1] = sr->vfirst[j] + (s1[j] - s0[j] + 1);
		sr->req_v0 = palloc(sizeof(uint64) * (nruns + 2) * r->n);
		sr->req_v1 = palloc(sizeof(uint64) * (nruns + 2) * r->n);
		sr->have = palloc0(sizeof(bool) * r->n * sr->vfirst[nruns]);
		sr->skipped_some = true;
	}
	else if (reach != RUNS_ALL_WAITED)
	{
		reader_check_slow_providers(r);
		/* after bad bytes, every shard at once (hedge_finish below) */
		hedged = plan_hedge(r, sr->skip, unit_of, last, probe, start, &need,
							every_shard || r->bytes_lied, include_down);
		if (hedged)
			sr->skipped_some = true;	/* spares may go unasked */
		/* a shard recorded bad and not probed now is not asked at all */
		for (int i = 0; i < r->n && hedged; i++)
			if (!sr->skip[i] && r->health[i] == SHARD_HINTED && !probe[i])
				sr->skip[i] = true;
	}
	if (!include_down && !hedged && !split)
	{
		for (int i = 0; i < r->n && candidates > r->k; i++)
		{
			if (!sr->skip[i] && provider_is_down(r->providers[i]))
			{
				sr->skip[i] = true;
				sr->skipped_some = true;
				candidates--;
			}
		}
		for (int i = 0; i < r->n && candidates > r->k; i++)
		{
			if (!sr->skip[i] && (r->slow[i] || r->avoid[i]))
			{
				sr->skip[i] = true;
				sr->skipped_some = true;
				candidates--;
			}
		}
	}

	/* a CRC a provider can forge as easily as the chunk: always checked */
	if (r->meta->key_version == OBJECT_FORMAT_CRC)
		check_chunks = true;
	sr->degraded = degraded;
	for (int i = 0; i < r->n; i++)
	{
		int			q0 = sr->nreqs;
		bool		tags = check_chunks || r->health[i] == SHARD_HINTED;

		/* every shard gets buffers: rebuilt chunks go to the missing ones' */
		for (int j = 0; j < nruns; j++)
			sr->buf[j * r->n + i] = buffer_alloc_large(CurrentMemoryContext,
													   (s1[j] - s0[j]) * r->meta->chunk_size +
													   chunk_len(r, s1[j]));
		if (sr->skip[i])
			continue;
		if (split)
		{
			split_requests(r, sr, i);
			continue;
		}
		for (int j = 0; j < nruns; j++)
		{
			reader_shard_get(&sr->reqs[sr->nreqs], r, i, s0[j] * r->meta->chunk_size,
							 (s1[j] - s0[j]) * r->meta->chunk_size + chunk_len(r, s1[j]),
							 sr->buf[j * r->n + i]);
			sr->shard_of[sr->nreqs++] = i;
		}
		if (tags)
		{
			sr->tagbuf[i] = palloc(ntags * r->tag_len);
			reader_shard_get(&sr->reqs[sr->nreqs], r, i, r->shard_data_len + sr->t0 * r->tag_len,
							 ntags * r->tag_len, sr->tagbuf[i]);
			sr->shard_of[sr->nreqs++] = i;
		}
		if (hedged && (unit_of[i] > 0 || probe[i]))
		{
			/* this shard's chunks and tags are one unit of the hedged set */
			for (int q = q0; q < sr->nreqs; q++)
			{
				/*
				 * fail fast: another shard can stand in (a spare, or one
				 * running) — but in the try with every shard, where none
				 * may be left: a shard that failed twice sent the read to
				 * the last, waited try, which sat out a staller (TAP 191)
				 */
				sr->reqs[q].no_retry = reach == RUNS_USABLE;
				/* numbered by rank: spares start in that order */
				sr->reqs[q].hedge_unit = unit_of[i] > 0 ? unit_of[i] : r->n + i + 1;
				sr->reqs[q].hedge_need = need;
				sr->reqs[q].hedge_spare = unit_of[i] > 0 && !start[i];
				sr->reqs[q].hedge_last = last[i];
				sr->reqs[q].hedge_probe = probe[i];
				sr->reqs[q].hedge_finish = r->bytes_lied;
				/*
				 * a first try's stall with no spare left is given up: the
				 * try with every shard follows, with retries (a 503 on the
				 * last honest spare left a staller waited out, 20 s)
				 */
				sr->reqs[q].hedge_fallback = reach == RUNS_USABLE;
			}
		}
	}
	*reqs_out = sr->reqs;
	*nreqs_out = sr->nreqs;
	return sr;
}

/*
 * A split run's batch is over: which chunks came in (sr->have), the
 * failures noted (a shard whose request failed is not asked again by this
 * reader; its other part, come in, is still used), and what is missing
 * patched from the shards not asked for it (split_patch).  fetched[i]:
 * whether shard i is a source at all.
 */
static void
split_collect(ObjectReader *r, StripeRuns *sr, bool *fetched)
{
	uint64		total = sr->vfirst[sr->nruns];
	bool		short_some = false;

	for (int q = 0; q < sr->nreqs; q++)
	{
		ProviderRequest *req = &sr->reqs[q];
		int			i = sr->shard_of[q];

		note_fetched(req->result_size);
		if (req->ok && req->result_size == req->length)
		{
			for (uint64 v = sr->req_v0[q]; v < sr->req_v1[q]; v++)
				sr->have[i * total + v] = true;
			continue;
		}
		short_some = true;
		if (r->health[i] != SHARD_UNREACHABLE)
			reader_note_failure(r, i, req, SHARD_UNREACHABLE);
	}
	if (short_some)
		split_patch(r, sr);
	for (int i = 0; i < r->n; i++)
	{
		fetched[i] = false;
		for (uint64 v = 0; v < total && !fetched[i]; v++)
			fetched[i] = sr->have[i * total + v];
	}
}

/*
 * The request of run j that carries shard i's chunk of stripe s (-1: none):
 * a request lands in the run's buffer of its shard, stripe by stripe from
 * its first (split runs have one or two a shard, tags go elsewhere).
 */
static int
run_request_of(ObjectReader *r, StripeRuns *sr, int j, int i, uint64 s)
{
	uint64		cs = r->meta->chunk_size;
	uint8	   *base = sr->buf[j * r->n + i];
	uint8	   *limit = base + (sr->s1[j] - sr->s0[j] + 1) * cs;

	for (int q = 0; q < sr->nreqs; q++)
	{
		ProviderRequest *req = &sr->reqs[q];
		uint64		a = req->offset / cs;

		if (sr->shard_of[q] != i || (uint8 *) req->buf < base || (uint8 *) req->buf >= limit)
			continue;
		if (s >= a && (s - a) * cs < req->length)
			return q;
	}
	return -1;
}

/*
 * Whether shard i's chunk of stripe s of run j has come in while its
 * requests still run: a shard asked for it (a spare not started has
 * nothing yet).
 */
static bool
run_chunk_received(ObjectReader *r, StripeRuns *sr, int j, int i, uint64 s)
{
	int			q;
	uint64		a;

	if (sr->skip[i])
		return false;
	q = run_request_of(r, sr, j, i, s);
	if (q < 0)
		return false;
	a = sr->reqs[q].offset / r->meta->chunk_size;
	return sr->reqs[q].received >= (s - a) * r->meta->chunk_size + chunk_len(r, s);
}

/* ... and needs no check against its tag before it counts */
static bool
run_chunk_in(ObjectReader *r, StripeRuns *sr, int j, int i, uint64 s)
{
	return sr->tagbuf[i] == NULL && run_chunk_received(r, sr, j, i, s);
}

/*
 * reader_runs_stream_in — whether every stripe of [sa, sb] of run j has k
 * chunks in while its requests still run (object_reader_read_multi_need):
 * from any k shards, whichever answer first.
 */
bool
reader_runs_stream_in(ObjectReader *r, StripeRuns *sr, int j, uint64 sa, uint64 sb)
{
	for (uint64 s = sa; s <= sb; s++)
	{
		int			in = 0;

		for (int i = 0; i < r->n && in < r->k; i++)
			in += run_chunk_in(r, sr, j, i, s);
		if (in < r->k)
			return false;
	}
	return true;
}

/*
 * reader_runs_stream_ready — once reader_runs_stream_in: rebuild the data
 * chunks of stripes [sa, sb] not in yet from the k that are, and point src
 * at run j's stream.  False if a stripe is short of k chunks after all.
 * The batch's end rebuilds them again from the same bytes (or opens the
 * blocks again around a shard found bad), and later chunks of a data
 * shard land elsewhere in its buffer.
 */
bool
reader_runs_stream_ready(ObjectReader *r, StripeRuns *sr, int j, uint64 sa, uint64 sb,
						 WindowSource *src)
{
	for (uint64 s = sa; s <= sb; s++)
	{
		uint64		cl = chunk_len(r, s);
		uint64		off = (s - sr->s0[j]) * r->meta->chunk_size;
		uint8	   *chunks[CODEC_RS_MAX_SHARDS];
		bool		present[CODEC_RS_MAX_SHARDS];
		int			good = 0;
		bool		all_data = true;

		for (int i = 0; i < r->n; i++)
		{
			chunks[i] = sr->buf[j * r->n + i] + off;
			present[i] = run_chunk_in(r, sr, j, i, s);
			good += present[i];
		}
		/*
		 * A chunk come in that is still to be checked against its tag (a
		 * shard recorded missing, probed) is not rebuilt over: rebuilt
		 * from a liar's unchecked chunk, it failed its tag at the batch's
		 * end, and the honest shard was named corrupt (a break review of
		 * streamed scans).  Its bytes stand, unchecked, as every chunk
		 * streamed does until the blocks' authentication.
		 */
		for (int i = 0; i < r->n; i++)
			if (!present[i] && sr->tagbuf[i] != NULL && run_chunk_received(r, sr, j, i, s))
				present[i] = true;
		for (int d = 0; d < r->k; d++)
			all_data &= present[d];
		if (good < r->k ||
			(!all_data && codec_rs_reconstruct_data(r->rs, cl, chunks, present) != 0))
			return false;
	}
	memset(src, 0, sizeof(WindowSource));
	for (int i = 0; i < r->n; i++)
	{
		src->buf[i] = sr->buf[j * r->n + i];
		src->lo[i] = sr->s0[j] * r->meta->chunk_size;
	}
	return true;
}

/*
 * Probes that found nothing: the shard's requests answered "not found", or
 * were all sent and cancelled before an answer began on a provider that is
 * far, thin, slow or avoided for this reader (one as near as the others
 * lost the race by luck, and the next read asks again).  Noted for every
 * reader (provider_note_shard_probed): the record is likely true.
 */
static void
note_empty_probes(ObjectReader *r, StripeRuns *sr)
{
	for (int i = 0; i < r->n; i++)
	{
		bool		probed = false;
		bool		not_found = false;
		bool		unanswered = true;

		/* (a shard that served bad bytes is a probe of its own kind) */
		if (r->health[i] == SHARD_USABLE || r->providers[i] == NULL || r->bad_bytes[i])
			continue;
		for (int q = 0; q < sr->nreqs; q++)
		{
			ProviderRequest *req = &sr->reqs[q];

			if (sr->shard_of[q] != i || !req->hedge_probe)
				continue;
			probed = true;
			not_found |= req->not_found;
			unanswered &= req->cancelled && req->unanswered;
		}
		if (probed && (not_found ||
					   (unanswered && (r->far[i] || r->thin[i] || r->slow[i] || r->avoid[i]))))
			provider_note_shard_probed(r->providers[i], r->keys[i]);
	}
}

/*
 * reader_runs_complete — after the requests of reader_runs_prepare ran:
 * check every chunk against its tag, rebuild what is missing, and point
 * srcs[j] at run j's stream.  False when a run has a stripe with fewer
 * than k good chunks (sr->bad_stripe, sr->bad_good: the first such); the
 * other runs are complete all the same (run_ok, per run, may be NULL).
 */
bool
reader_runs_complete(ObjectReader *r, StripeRuns *sr, WindowSource *srcs, bool *run_ok)
{
	bool		fetched[CODEC_RS_MAX_SHARDS];
	bool		all_ok = true;

	/* counted when used (a read-ahead may be dropped unused) */
	if (sr->degraded)
		object_read_stats.degraded_reads++;
	else
		object_read_stats.hedged_reads++;
	for (int i = 0; i < r->n; i++)
		fetched[i] = !sr->skip[i];
	if (sr->split)
		split_collect(r, sr, fetched);
	for (int q = 0; q < sr->nreqs && !sr->split; q++)
	{
		ProviderRequest *req = &sr->reqs[q];
		int			i = sr->shard_of[q];

		note_fetched(req->result_size);
		if (!fetched[i])
			continue;			/* this shard's failure is noted already */
		if (!req->cancelled && (!req->ok || req->result_size != req->length))
		{
			reader_note_failure(r, i, req, SHARD_UNREACHABLE);
			fetched[i] = false;
		}
		else if (req->cancelled)
		{
			sr->skipped_some = true;	/* not needed: k others answered first */
			fetched[i] = false;
		}
	}
	if (!sr->split)
		note_empty_probes(r, sr);

	for (int j = 0; j < sr->nruns; j++)
	{
		bool		ok = true;

		/*
		 * every stripe, also past a short one: each chunk checked, so that
		 * a shard whose bad chunk lies past it is known bad (a later try
		 * would otherwise take it for whole: runs_carry)
		 */
		for (uint64 s = sr->s0[j]; s <= sr->s1[j]; s++)
		{
			uint64		cl = chunk_len(r, s);
			uint64		off = (s - sr->s0[j]) * r->meta->chunk_size;
			uint8	   *chunks[CODEC_RS_MAX_SHARDS];
			bool		present[CODEC_RS_MAX_SHARDS];
			int			good = 0;

			CHECK_FOR_INTERRUPTS();
			if ((s - sr->s0[j]) % 16 == 15)
			{
				/* what is read ahead keeps coming meanwhile */
				provider_poll();
				reader_ahead_poll(r);
			}
			for (int i = 0; i < r->n; i++)
			{
				chunks[i] = sr->buf[j * r->n + i] + off;
				present[i] = false;
				if (!fetched[i] ||
					(sr->split && !sr->have[i * sr->vfirst[sr->nruns] + sr->vfirst[j] + (s - sr->s0[j])]))
					continue;
				if (sr->tagbuf[i] == NULL ||
					object_chunk_verify(r->auth, i, s, chunks[i], cl,
										sr->tagbuf[i] + (s - sr->t0) * r->tag_len))
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
			if (!ok)
				continue;		/* past a short stripe: only checked */
			if (good < r->k ||
				(good < r->n && codec_rs_reconstruct_data(r->rs, cl, chunks, present) != 0))
			{
				ok = false;
				if (all_ok)
				{
					sr->bad_stripe = s;
					sr->bad_good = good;
				}
			}
		}
		if (run_ok)
			run_ok[j] = ok;
		all_ok &= ok;
		memset(&srcs[j], 0, sizeof(WindowSource));
		for (int i = 0; i < r->n; i++)
		{
			srcs[j].buf[i] = sr->buf[j * r->n + i];
			srcs[j].lo[i] = sr->s0[j] * r->meta->chunk_size;
		}
	}

	/*
	 * A shard recorded bad whose chunks all matched their tags is good: for
	 * this reader, and (noted in shared memory, since a reader may not
	 * write the catalog) for every reader from now on.
	 */
	for (int i = 0; i < r->n && all_ok; i++)
	{
		if (fetched[i] && r->health[i] == SHARD_HINTED && sr->tagbuf[i] != NULL)
		{
			provider_note_shard_verified(r->providers[i], r->keys[i]);
			r->health[i] = SHARD_USABLE;
			if (r->errors[i])
				pfree(r->errors[i]);
			r->errors[i] = NULL;
		}
	}
	return all_ok;
}

/* Free what reader_runs_prepare allocated, but the buffers of runs kept. */
static void
runs_free(ObjectReader *r, StripeRuns *sr, bool keep_bufs)
{
	for (int i = 0; i < r->n; i++)
	{
		if (sr->tagbuf[i])
			pfree(sr->tagbuf[i]);
		for (int j = 0; j < sr->nruns && !keep_bufs; j++)
			pfree(sr->buf[j * r->n + i]);
	}
	pfree(sr->buf);
	pfree(sr->reqs);
	pfree(sr->shard_of);
	pfree(sr->s0);
	pfree(sr->s1);
	if (sr->split)
	{
		pfree(sr->split);
		pfree(sr->vfirst);
		pfree(sr->req_v0);
		pfree(sr->req_v1);
		pfree(sr->have);
	}
	pfree(sr);
}

/*
 * Shards of a try that came up short which a later try of the same run
 * need not ask again: every request of theirs came in whole (none failed
 * or was cancelled), with the tags, and no chunk of theirs failed its tag.
 */
static void
runs_whole_shards(ObjectReader *r, StripeRuns *sr, bool *whole)
{
	for (int i = 0; i < r->n; i++)
		whole[i] = !sr->skip[i] && sr->tagbuf[i] != NULL && !r->bad_bytes[i] &&
			r->health[i] != SHARD_UNREACHABLE;
	for (int q = 0; q < sr->nreqs; q++)
	{
		ProviderRequest *req = &sr->reqs[q];

		if (req->cancelled || !req->ok || req->result_size != req->length)
			whole[sr->shard_of[q]] = false;
	}
}

/*
 * Give the next try (to, prepared but not run) the chunks and tags of the
 * shards whole[] from the try before (from, to be freed): their requests
 * are dropped from to's batch, their buffers swapped in (so that from's
 * free takes to's unused ones), and its hedged set needs as many units
 * fewer.  reader_runs_complete checks their chunks against their tags
 * again with the rest.  A try that lost one shard too many to a stall or
 * to a busy machine asked every other shard for the whole window again:
 * under load, blob_verify with a provider lost read a 24 MiB blob's
 * content twice over (TAP 140: 70 MiB asked, 54 alone).
 */
static void
runs_carry(ObjectReader *r, StripeRuns *from, StripeRuns *to, const bool *whole)
{
	int			carried = 0;
	int			kept = 0;

	Assert(from->nruns == to->nruns && !from->split && !to->split);
	for (int i = 0; i < r->n; i++)
	{
		if (!whole[i] || to->skip[i])
			continue;
		for (int j = 0; j < to->nruns; j++)
		{
			uint8	   *b = to->buf[j * r->n + i];

			to->buf[j * r->n + i] = from->buf[j * r->n + i];
			from->buf[j * r->n + i] = b;
		}
		if (to->tagbuf[i] != NULL)
			pfree(to->tagbuf[i]);
		to->tagbuf[i] = from->tagbuf[i];
		from->tagbuf[i] = NULL;
		carried++;
	}
	if (carried == 0)
		return;
	for (int q = 0; q < to->nreqs; q++)
	{
		int			i = to->shard_of[q];

		if (whole[i] && !to->skip[i])
			continue;
		to->reqs[kept] = to->reqs[q];
		to->shard_of[kept] = i;
		if (to->reqs[kept].hedge_need > 0)
			to->reqs[kept].hedge_need = Max(1, to->reqs[kept].hedge_need - carried);
		kept++;
	}
	to->nreqs = kept;
}

/*
 * Repair path: the window's stream [cs, ce) as one run of stripes (on the
 * first try, the k fastest shards with the others as spares: plan_hedge);
 * when too few shards were good and some were left out, again with every
 * one, those that failed this reader before included — hedged first, as
 * spares of last resort, for a provider that stalls held that try for its
 * request timeout while the others sufficed (TAP 185, part 2: 8-14 s); and
 * if that too comes up short while some went unasked or were cancelled,
 * once more waiting for each.  A later try asks only the shards that the
 * one before did not bring in whole (prev, runs_carry), and not those
 * whose request there was held on every retry (ProviderRequest.held: each
 * try timed out, or failed after half the request timeout): asked again,
 * a provider that holds every request ran each later try to its request
 * timeout times its retries once more (three tries, 81 s with a 5 s
 * timeout, for an object it could not read after 27).  A request with a
 * try that failed fast (an error answer, a connection cut, a short body,
 * a 404) is asked again: a burst of 503s a few seconds long outlasts one
 * request's backoff, and the later tries are what read through it (break
 * reviews of 8de7d83 and 6ea125f).
 */
static void
fetch_repair(ObjectReader *r, uint64 cs, uint64 ce, WindowSource *src, RunsReach reach,
			 const bool *exclude, bool after_bad_bytes, StripeRuns *prev)
{
	uint64		s0 = cs / r->stripe_size;
	uint64		s1 = (ce - 1) / r->stripe_size;
	ProviderRequest *reqs;
	int			nreqs;
	StripeRuns *sr;
	bool		left_out[CODEC_RS_MAX_SHARDS];

	for (int i = 0; i < r->n; i++)
		left_out[i] = exclude != NULL && exclude[i];
	for (int q = 0; prev != NULL && q < prev->nreqs; q++)
	{
		ProviderRequest *req = &prev->reqs[q];

		if (!req->cancelled && !req->ok && req->held && !req->no_retry &&
			req->retries >= destor_max_retries)
			left_out[prev->shard_of[q]] = true;
	}

	/* (for this plan only: not for windows read ahead while it runs) */
	r->bytes_lied = after_bad_bytes;
	sr = reader_runs_prepare(r, 1, &s0, &s1, reach, left_out, true, false,
							 true, NULL, &reqs, &nreqs);
	r->bytes_lied = false;
	if (prev != NULL)
	{
		bool		whole[CODEC_RS_MAX_SHARDS];

		runs_whole_shards(r, prev, whole);
		runs_carry(r, prev, sr, whole);
		runs_free(r, prev, false);
		reqs = sr->reqs;
		nreqs = sr->nreqs;
	}
	provider_execute(reqs, nreqs);
	object_read_stats.requests += nreqs;
	if (reader_runs_complete(r, sr, src, NULL))
	{
		src->owned = true;
		runs_free(r, sr, true);
		return;
	}
	if (sr->skipped_some && reach != RUNS_ALL_WAITED)
	{
		/* not enough without the providers known down: try them too */
		fetch_repair(r, cs, ce, src, reach + 1, left_out, false, sr);
		return;
	}
	raise_unreadable(r, sr->bad_stripe, sr->bad_good);
}

/*
 * reader_patch_window — the healthy fetch of stream bytes [cs, ce) came in
 * but for the data shards failed[] (a request that failed, or was given up
 * for a thin link): rebuild their part from as many parity shards, fetched
 * now, and the data shards already in src — plus whatever of their first
 * and last stripe's chunks lies outside the window, fetched too.  A failed
 * data shard whose request was only given up (late or thin, the shard
 * still usable) is a spare beside the parity on a pool of s3 providers
 * (hedged): asked again, it serves its own chunks.  Without it, a patch
 * that needed every parity shard had no spare, and one parity shard that
 * stalled was waited out.  A request that stalls once no spare is left
 * fails the patch (hedge_fallback): the degraded path follows, with
 * retries and every shard.  Reading
 * the whole window again from k shards, as the degraded path does, moved
 * every byte of the window twice.  The rebuilt bytes are checked like any
 * others: by the blocks' authentication when they are opened.  On success
 * src holds whole chunks of every data shard, in buffers of its own
 * (owned); false, with src as it was, when parity is short, a request
 * fails, or the window is not worth it (a single stripe).
 */
bool
reader_patch_window(ObjectReader *r, uint64 cs, uint64 ce, WindowSource *src, const bool *failed)
{
	uint64		s0 = cs / r->stripe_size;
	uint64		s1 = (ce - 1) / r->stripe_size;
	uint64		flo = s0 * r->meta->chunk_size;
	uint64		fhi = s1 * r->meta->chunk_size + chunk_len(r, s1);
	int			rank[CODEC_RS_MAX_SHARDS];
	int			ncand = 0;
	int			nfailed = 0;
	int			nsources = 0;
	uint8	   *full[CODEC_RS_MAX_SHARDS] = {0};
	bool		present[CODEC_RS_MAX_SHARDS] = {0};
	ProviderRequest reqs[2 * CODEC_RS_MAX_SHARDS];
	int			shard_of[2 * CODEC_RS_MAX_SHARDS];
	int			nreqs = 0;
	bool		ok = true;

	reader_check_slow_providers(r);
	for (int d = 0; d < r->k; d++)
		if (failed[d])
			nfailed++;
	if (nfailed == 0 || nfailed > r->m || s1 == s0)
		return false;

	/*
	 * Shards to rebuild from, ranked: measured near parity, then parity
	 * never measured, then far or of unknown rate, then slow; the data
	 * shards given up just now last of all (one was a staller: ranked
	 * with the slow parity, it was asked first by shard order, and held
	 * the patch a second and a half).  The first nfailed are asked; the
	 * others are spares of a hedged set, asked when one of those fails or
	 * is late (a far provider never measured held a whole export's window
	 * for its round trip).
	 */
	for (int i = 0; i < r->n; i++)
	{
		rank[i] = -1;
		if ((i < r->k && (!failed[i] || !reader_hedgeable(r))) ||
			r->providers[i] == NULL || r->health[i] != SHARD_USABLE || r->liar[i] ||
			provider_is_down(r->providers[i]))
			continue;
		rank[i] = i < r->k ? 4 :
			r->slow[i] || r->avoid[i] ? 3 :
			(r->far[i] || r->unrated[i] || r->thin[i]) ? 2 :
			provider_read_ms(r->providers[i], 1) < 0 ? 1 : 0;
		ncand++;
	}
	if (ncand < nfailed)
		return false;
	/* the data shards kept are read too (their edges): they must be there */
	for (int d = 0; d < r->k; d++)
		if (!failed[d] && (r->providers[d] == NULL || r->health[d] != SHARD_USABLE ||
						   r->liar[d] || provider_is_down(r->providers[d])))
			return false;

	/*
	 * every data shard (the failed ones rebuilt there) and each candidate,
	 * as whole chunks of [s0, s1]
	 */
	memset(reqs, 0, sizeof(reqs));
	for (int i = 0; i < r->n; i++)
	{
		int			better = 0;

		if (i >= r->k && rank[i] < 0)
			continue;
		for (int j = 0; j < r->n && rank[i] >= 0; j++)
			if (rank[j] >= 0 && (rank[j] < rank[i] || (rank[j] == rank[i] && j < i)))
				better++;
		/*
		 * Spares only where requests are hedged: a file provider's run
		 * whatever happens (a local disk), and asking a spare there read
		 * as much parity again as the patch needed.  Should a shard asked
		 * fail, the window is read degraded.
		 */
		if (i >= r->k && better >= nfailed && r->providers[i]->type != PROVIDER_S3)
			continue;
		full[i] = buffer_alloc_large(CurrentMemoryContext, fhi - flo);
		if (i < r->k && !failed[i])
		{
			uint64		a = flo,
						b = flo;

			/* what src has of it, and the edges it lacks */
			if (src->buf[i] != NULL && reader_shard_range(r, i, cs, ce, &a, &b))
				memcpy(full[i] + (a - flo), src->buf[i] + (a - src->lo[i]), b - a);
			else
				a = b = fhi;
			for (int e = 0; e < 2; e++)
			{
				uint64		lo = e == 0 ? flo : b;
				uint64		hi = e == 0 ? a : fhi;

				if (lo >= hi)
					continue;
				reader_shard_get(&reqs[nreqs], r, i, lo, hi - lo, full[i] + (lo - flo));
				/*
				 * given up if it stalls while others answer (the window is
				 * then read degraded): outside the parity's hedged set,
				 * one that stalled held the patch for its request timeout
				 * (a break review of 9885fa9: 31 s)
				 */
				reqs[nreqs].hedge = true;
				reqs[nreqs].hedge_fallback = true;
				shard_of[nreqs++] = i;
			}
		}
		else if (rank[i] >= 0)
		{
			reader_shard_get(&reqs[nreqs], r, i, flo, fhi - flo, full[i]);
			reqs[nreqs].no_retry = true;
			/* numbered by rank, then shard: spares start in that order */
			reqs[nreqs].hedge_unit = 1 + rank[i] * r->n + i;
			reqs[nreqs].hedge_need = nfailed;
			reqs[nreqs].hedge_spare = better >= nfailed;
			reqs[nreqs].hedge_last = rank[i] >= 3;
			/* (a stall with no spare left: read degraded, not waited out) */
			reqs[nreqs].hedge_fallback = true;
			shard_of[nreqs++] = i;
		}
	}
	provider_execute(reqs, nreqs);
	object_read_stats.requests += nreqs;
	for (int i = 0; i < r->k; i++)
		present[i] = !failed[i];
	for (int q = 0; q < nreqs; q++)
	{
		int			i = shard_of[q];

		note_fetched(reqs[q].result_size);
		if (reqs[q].ok && reqs[q].result_size == reqs[q].length)
		{
			if (i >= r->k || failed[i])
			{
				present[i] = true;
				nsources++;
			}
		}
		else if (i < r->k && !failed[i])
			ok = false;			/* an edge of a data shard is missing */
		else if (!reqs[q].cancelled)
			reader_note_failure(r, i, &reqs[q], SHARD_SUSPECT);
	}
	ok &= nsources >= nfailed;

	/* rebuild the failed data shards' chunks, stripe by stripe (parity
	 * absent stays so: only data is opened) */
	for (uint64 s = s0; s <= s1 && ok; s++)
	{
		uint64		cl = chunk_len(r, s);
		uint64		off = (s - s0) * r->meta->chunk_size;
		uint8	   *chunks[CODEC_RS_MAX_SHARDS];

		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < r->n; i++)
			chunks[i] = full[i] != NULL ? full[i] + off : NULL;
		if (codec_rs_reconstruct_data(r->rs, cl, chunks, present) != 0)
			ok = false;
	}
	if (!ok)
	{
		for (int i = 0; i < r->n; i++)
			if (full[i])
				pfree(full[i]);
		return false;
	}
	object_read_stats.degraded_reads++;
	for (int i = r->k; i < r->n; i++)
		if (full[i])
			pfree(full[i]);
	memset(src, 0, sizeof(WindowSource));
	for (int d = 0; d < r->k; d++)
	{
		src->buf[d] = full[d];
		src->lo[d] = flo;
	}
	src->owned = true;
	return true;
}

void
window_source_release(ObjectReader *r, WindowSource *src)
{
	if (src->owned)
		for (int i = 0; i < r->n; i++)
			if (src->buf[i])
				pfree(src->buf[i]);
	src->owned = false;
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
			/* shards that failed this reader stay out: each try would wait for them */
			for (j = 0; j < r->n; j++)
				exclude[j] = r->liar[j] || r->health[j] == SHARD_UNREACHABLE;
			for (j = 0; j < size; j++)
				exclude[cand[pick[j]]] = true;
			fetch_repair(r, cs, ce, &src, RUNS_ALL_HEDGED, exclude, false, NULL);
			ok = reader_open_blocks(r, b0, b1, skip, &src, offset, len, dst, false);
			window_source_release(r, &src);
			if (ok)
			{
				for (j = 0; j < size; j++)
				{
					int			i = cand[pick[j]];

					r->liar[i] = true;
					r->bad_bytes[i] = true;
					r->health[i] = Max(r->health[i], SHARD_SUSPECT);
					reader_shard_failed(r, i);
					provider_stats_note_bad_chunk(r->meta->shards[i].provider);
					if (r->errors[i])
						pfree(r->errors[i]);
					r->errors[i] = MemoryContextStrdup(r->cxt,
													   "it served a chunk that matches its checksum but not the data written");
					ereport(LOG,
							(errcode(ERRCODE_DATA_CORRUPTED),
							 errmsg("shard %d of object %s on provider \"%s\" served a chunk that matches its checksum but not the data written",
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
void
reader_open_window_degraded(ObjectReader *r, uint64 b0, uint64 b1, const bool *skip, uint64 offset,
					 uint64 len, char *dst)
{
	uint64		cs = block_cstart(r, b0);
	uint64		ce = block_cend(r, b1);
	WindowSource src;
	bool		ok;

	/*
	 * After bad bytes (a window read without tags failed to open), every
	 * shard is asked at once, and each still running when k are in gets a
	 * probe's grace to finish and be checked (hedge_finish): the k fastest alone
	 * may not include the liar, which would then go unnamed and unrepaired
	 * (TAP 169: a spread window's two liars left out twice in a row), while
	 * a provider that stalls costs at most that grace (a second).
	 */
	bool		lied = r->bytes_lied;

	r->bytes_lied = false;
	fetch_repair(r, cs, ce, &src, RUNS_USABLE, r->liar, lied, NULL);
	ok = reader_open_blocks(r, b0, b1, skip, &src, offset, len, dst, false);
	window_source_release(r, &src);
	if (!ok)
		ok = open_by_elimination(r, b0, b1, skip, offset, len, dst);
	r->bytes_lied = false;		/* (its tries set it again) */
	if (ok)
		return;
	fetch_repair(r, cs, ce, &src, RUNS_ALL_HEDGED, r->liar, false, NULL);
	reader_open_blocks(r, b0, b1, skip, &src, offset, len, dst, true);
	window_source_release(r, &src);
}

/*
 * A window with a data shard on a provider not measured yet
 * (object_reader_read): read as one run of stripes from every shard at
 * once, the first k answers winning (plan_hedge), instead of waiting for
 * whichever data shard is on the far or thin provider.  A window with a
 * data shard unusable, down or slow (degraded): the same run from the k
 * fastest shards, the others held as spares (fetch_repair's first try).
 * Started by
 * reader_hedged_start — maybe a window ahead of need, so that a sequential
 * read's next window comes in while this one is waited for and opened —
 * and opened by reader_hedged_open.  Anything short of a clean open goes
 * the degraded way.  The window's memory is a context of its own under the
 * reader's: deleting it abandons the batch first (provider_start).
 */
struct HedgedWindow
{
	MemoryContext cxt;
	uint64		b0,
				b1;
	StripeRuns *sr;
	ProviderRequest *reqs;
	int			nreqs;
	WindowPlan	plan;			/* every shard asked, the k fastest with
								 * spares held (counted degraded, or hedged
								 * for a window read two ahead whose data
								 * shards were all fine: WINDOW_HEALTHY), or
								 * the stripes spread over every shard */
	ProviderBatch *batch;		/* started, not collected */
};

HedgedWindow *
reader_hedged_start(ObjectReader *r, uint64 b0, uint64 b1, WindowPlan plan)
{
	MemoryContext cxt = AllocSetContextCreate(r->cxt, "destor hedged window",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	HedgedWindow *h = palloc0(sizeof(HedgedWindow));
	uint64		s0 = block_cstart(r, b0) / r->stripe_size;
	uint64		s1 = (block_cend(r, b1) - 1) / r->stripe_size;
	StripeSplit split;
	/* (the plan is made again: what the reader knows may have changed) */
	bool		balanced = plan == WINDOW_BALANCED &&
		reader_balance_plan(r, s1 - s0 + 1, &split);

	h->cxt = cxt;
	h->b0 = b0;
	h->b1 = b1;
	/* (a plan spread no longer: the k fastest, spares held, as a hedged read) */
	h->plan = plan == WINDOW_BALANCED && !balanced ? WINDOW_HEALTHY : plan;
	h->sr = reader_runs_prepare(r, 1, &s0, &s1, RUNS_USABLE, r->liar, plan == WINDOW_HEDGED_DEGRADED,
								plan == WINDOW_HEDGED_EVERY, false, balanced ? &split : NULL,
								&h->reqs, &h->nreqs);
	h->batch = provider_start(h->reqs, h->nreqs);
	MemoryContextSwitchTo(old);
	return h;
}

/* Drive h's batch until it is in its last round trip (provider_wait_tail). */
void
reader_hedged_wait_tail(HedgedWindow *h)
{
	provider_wait_tail(h->batch);
}

/* The same, rtts round trips before its end (provider_wait_lead). */
void
reader_hedged_wait_lead(HedgedWindow *h, double rtts)
{
	provider_wait_lead(h->batch, rtts);
}

/* Drive h's batch until it is over or other nears its end (provider_wait_end_or_lead). */
bool
reader_hedged_wait_end_or_lead(HedgedWindow *h, HedgedWindow *other, double rtts)
{
	return h->batch != NULL && other->batch != NULL &&
		provider_wait_end_or_lead(h->batch, other->batch, rtts);
}

/* Whether h's batch is over or in its last round trip (provider_batch_ending). */
bool
reader_hedged_ending(HedgedWindow *h)
{
	return provider_batch_ending(h->batch);
}

WindowPlan
reader_hedged_plan(HedgedWindow *h)
{
	return h->plan;
}

/* Whether h reads window [b0, b1]. */
bool
reader_hedged_matches(HedgedWindow *h, uint64 b0, uint64 b1)
{
	return h->b0 == b0 && h->b1 == b1;
}

/* Drop a window read ahead that is not wanted (its transfers stopped). */
void
reader_hedged_discard(ObjectReader *r, HedgedWindow *h)
{
	ProviderBatch *b = h->batch;

	h->batch = NULL;
	provider_cancel(b);
	object_read_stats.requests += h->nreqs;
	MemoryContextDelete(h->cxt);
}

void
reader_hedged_open(ObjectReader *r, HedgedWindow *h, const bool *skip, uint64 offset,
				   uint64 len, char *dst)
{
	ProviderBatch *b = h->batch;
	WindowSource src;
	bool		ok;
	MemoryContext old = MemoryContextSwitchTo(h->cxt);

	h->batch = NULL;			/* finish cleans up itself if it fails */
	provider_finish(b);
	r->slow_checked = 0;		/* what it measured counts from the next plan on */
	reader_ahead_poll(r);
	object_read_stats.requests += h->nreqs;
	ok = reader_runs_complete(r, h->sr, &src, NULL) &&
		reader_open_blocks(r, h->b0, h->b1, skip, &src, offset, len, dst, false);
	runs_free(r, h->sr, false);
	MemoryContextSwitchTo(old);
	if (!ok)
		reader_open_window_degraded(r, h->b0, h->b1, skip, offset, len, dst);
	MemoryContextDelete(h->cxt);
}
