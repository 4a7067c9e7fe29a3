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

	r->health[i] = Max(r->health[i], SHARD_SUSPECT);
	reader_shard_failed(r, i);
	if (r->errors[i])
		pfree(r->errors[i]);
	r->errors[i] = MemoryContextStrdup(r->cxt,
									   psprintf("its chunk of stripe %llu %s",
												(unsigned long long) stripe, what));
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
 * whose providers read fastest lately (a provider not measured lately
 * counts as fast as the fastest measured one, as in
 * reader_check_slow_providers; ties go to the lower shard, data before
 * parity; providers far or thin for bulk reads, reader_check_slow_providers'
 * far[], after the others) are asked at once; the other candidates are
 * spares, started by the transfer loop only when one of the first fails or
 * is late, and the first k shards to answer win (unit_of[i]: 1..k asked first, more: spare
 * in that order, 0: not hedged).  Providers down, found slow or avoided
 * by this reader are not left out, as they are without hedging, but come
 * last: spares of last resort (last[i]), started only for a unit that
 * failed or is very late.  A shard recorded bad (HINTED) is always
 * asked besides, as a probe (probe[i]): only a read of it can find the
 * record stale, but the read does not wait for it — the set needs k
 * others, and the probe is cancelled with the rest if it has not answered
 * by then (a provider that stalls would otherwise hold every read for its
 * request timeout).
 * s3 providers only (a file provider is a local disk: its requests all
 * run); false when hedging does not apply, and then every candidate is
 * asked and waited for.
 */
#define HEDGE_LAST_MS 1e9		/* the rank of a provider known slow */
#define HEDGE_FAR_MS 1e6		/* added to a far or thin provider's rank */

static bool
plan_hedge(ObjectReader *r, const bool *skip, int *unit_of, bool *last, bool *probe,
		   int *need)
{
	double		ms[CODEC_RS_MAX_SHARDS];
	int			order[CODEC_RS_MAX_SHARDS];
	int			norder = 0;
	double		fastest = -1;

	for (int i = 0; i < r->n; i++)
	{
		unit_of[i] = 0;
		last[i] = false;
		probe[i] = false;
		if (skip[i])
			continue;
		if (r->providers[i]->type != PROVIDER_S3)
			return false;
		if (r->health[i] == SHARD_HINTED)
		{
			probe[i] = true;
			continue;
		}
		ms[i] = provider_recent_read_ms(r->providers[i]);
		if (ms[i] >= 0 && ms[i] < HEDGE_LAST_MS && (fastest < 0 || ms[i] < fastest))
			fastest = ms[i];
		/* slow or avoided ones are spares of last resort, down ones after them */
		last[i] = r->slow[i] || r->avoid[i] || provider_is_down(r->providers[i]);
		if (r->slow[i] || r->avoid[i])
			ms[i] = HEDGE_LAST_MS;
		if (provider_is_down(r->providers[i]))
			ms[i] = 2 * HEDGE_LAST_MS;
		order[norder++] = i;
	}
	if (norder <= r->k)
		return false;			/* no spare to hedge with */
	for (int j = 0; j < norder; j++)
	{
		if (ms[order[j]] < 0)
			ms[order[j]] = Max(fastest, 0);
		/* far or thin ones (a MiB takes them far longer) after the others */
		if (r->far[order[j]] && ms[order[j]] < HEDGE_LAST_MS)
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
		unit_of[order[j]] = j + 1;
	*need = r->k;
	return true;
}

/*
 * Repair path: whole chunks of stripes [s0, s1] and their tags from every
 * reachable shard not excluded (on the first try, the k fastest with the
 * others as spares: plan_hedge); chunks that do not match their tags are
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
	bool		hedged = false;
	int			unit_of[CODEC_RS_MAX_SHARDS] = {0};
	bool		last[CODEC_RS_MAX_SHARDS] = {0};
	bool		probe[CODEC_RS_MAX_SHARDS] = {0};
	int			need = 0;

	/*
	 * Providers known to be down, then those found slow, are left out while
	 * enough others remain; if the others turn out not to be enough, the
	 * window is read again with them included.  A shard recorded bad in
	 * destor.shards is not left out for its record alone: only a read of
	 * it can find the record stale (a provider back after an outage), and
	 * then every reader uses it again (provider_note_shard_verified below).
	 * It costs a request while the record is true (such records last only
	 * until a repair rebuilds the shard), which the read does not wait for
	 * when k others answer: it is a probe of the hedged set (plan_hedge).
	 */
	for (int i = 0; i < r->n; i++)
	{
		skip[i] = (r->health[i] == SHARD_UNREACHABLE) || (exclude && exclude[i]);
		if (!skip[i])
			candidates++;
	}
	if (!include_down)
	{
		reader_check_slow_providers(r);
		hedged = plan_hedge(r, skip, unit_of, last, probe, &need);
		if (hedged)
			skipped_some = true;	/* spares may go unasked */
	}
	if (!include_down && !hedged)
	{
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
		if (hedged && (unit_of[i] > 0 || probe[i]))
		{
			/* this shard's chunks and tags are one unit of the hedged set */
			for (int q = nreqs; q < nreqs + 2; q++)
			{
				reqs[q].hedge_unit = i + 1;
				reqs[q].hedge_need = need;
				reqs[q].hedge_spare = unit_of[i] > need;
				reqs[q].hedge_last = last[i];
				reqs[q].hedge_probe = probe[i];
			}
		}
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
		if (!reqs[q].cancelled && (!reqs[q].ok || reqs[q].result_size != reqs[q].length))
			reader_note_failure(r, i, &reqs[q], SHARD_UNREACHABLE);
		else if (!reqs[q + 1].cancelled &&
				 (!reqs[q + 1].ok || reqs[q + 1].result_size != reqs[q + 1].length))
			reader_note_failure(r, i, &reqs[q + 1], SHARD_UNREACHABLE);
		else if (reqs[q].cancelled || reqs[q + 1].cancelled)
			skipped_some = true;	/* not needed: k others answered first */
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
	/*
	 * A shard recorded bad whose chunks all matched their tags is good: for
	 * this reader, and (noted in shared memory, since a reader may not
	 * write the catalog) for every reader from now on.
	 */
	for (int i = 0; i < r->n; i++)
	{
		if (fetched[i] && r->health[i] == SHARD_HINTED)
		{
			provider_note_shard_verified(r->providers[i], r->keys[i]);
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
			ok = reader_open_blocks(r, b0, b1, skip, &src, offset, len, dst, false);
			window_source_release(r, &src);
			if (ok)
			{
				for (j = 0; j < size; j++)
				{
					int			i = cand[pick[j]];

					r->liar[i] = true;
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

	fetch_repair(r, cs, ce, &src, false, r->liar);
	ok = reader_open_blocks(r, b0, b1, skip, &src, offset, len, dst, false);
	window_source_release(r, &src);
	if (ok || open_by_elimination(r, b0, b1, skip, offset, len, dst))
		return;
	fetch_repair(r, cs, ce, &src, true, r->liar);
	reader_open_blocks(r, b0, b1, skip, &src, offset, len, dst, true);
	window_source_release(r, &src);
}
