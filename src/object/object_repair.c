/*
 * object_repair.c — checking the shards of an object and rebuilding bad ones.
 *
 * Works on ciphertext only: no plaintext exists here.  A shard is checked
 * by fetching its trailer (chunk tags and footer): if it is missing, short,
 * or its footer does not describe it, it is bad; with verify, every chunk
 * is also read and checked against its tag (format 2: a tag keyed from the
 * object's data key, so the data key is unwrapped to check it; format 1: a
 * CRC-64).  A bad shard is rebuilt from k good ones, a window of stripes at
 * a time — every source chunk checked against its tag first, so nothing is
 * ever rebuilt from a chunk its provider could have forged — and uploaded
 * under its own key to its own provider.  Reed–Solomon is deterministic, so
 * a rebuilt shard is byte for byte the shard that was lost: writing it is
 * safe whatever becomes of the transaction (an unfinished upload is
 * discarded at abort like any other).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "destor/object.h"

#define REPAIR_WINDOW_STRIPES	64	/* 4 MiB of each shard at a time */

typedef struct Rebuild
{
	int			shard;
	Provider   *dest;			/* where it goes: its own provider, or a new one */
	ProviderUpload *upload;		/* once the shard outgrows one part */
	uint8	   *part;			/* aligned; bytes not yet uploaded */
	size_t		partlen;
	uint8	   *tags;			/* of the rebuilt chunks */
	char	   *error;
} Rebuild;

typedef struct Repair
{
	ObjectMeta *meta;
	ObjectGeometry g;
	int			k;
	int			n;
	Provider  **providers;
	char	  **keys;
	ObjectChunkAuth *auth;		/* checks chunks against their tags */
	uint8	  **tags;			/* per good shard: the chunk tags of its trailer */
	ShardCheck *result;
} Repair;

static void
mark_bad(Repair *rp, int i, ShardFound found, char *detail)
{
	rp->result[i].found = found;
	rp->result[i].detail = detail;
}

/* Chunk bytes of stripes [s0, s1] in a shard: offset and length. */
static void
window_range(Repair *rp, uint64 s0, uint64 s1, uint64 *off, uint64 *len)
{
	*off = s0 * rp->meta->chunk_size;
	*len = (s1 == rp->g.nstripes - 1 ? rp->g.shard_data_len : (s1 + 1) * rp->meta->chunk_size) - *off;
}

static uint64
stripe_chunk_len(Repair *rp, uint64 s)
{
	return s == rp->g.nstripes - 1 ? rp->g.last_chunk : (uint64) rp->meta->chunk_size;
}

/* A window of stripes being fetched from some of an object's shards. */
typedef struct WindowFetch
{
	ProviderRequest *reqs;
	int		   *shard_of;		/* per request */
	int			nreqs;
	uint64		s0;				/* stripes [s0, s1] */
	uint64		s1;
	uint8	  **bufs;			/* per shard */
	ProviderBatch *batch;
} WindowFetch;

/*
 * Start fetching stripes [s0, s1] of the shards in "which"; bufs[i]
 * receives shard i's bytes.  window_fetch_end collects them.
 */
static void
window_fetch_start(Repair *rp, const bool *which, uint64 s0, uint64 s1, uint8 **bufs,
				   WindowFetch *wf)
{
	uint64		off;
	uint64		len;

	window_range(rp, s0, s1, &off, &len);
	wf->reqs = palloc0(sizeof(ProviderRequest) * rp->n);
	wf->shard_of = palloc(sizeof(int) * rp->n);
	wf->nreqs = 0;
	wf->s0 = s0;
	wf->s1 = s1;
	wf->bufs = bufs;
	for (int i = 0; i < rp->n; i++)
	{
		if (!which[i])
			continue;
		wf->reqs[wf->nreqs].provider = rp->providers[i];
		wf->reqs[wf->nreqs].op = POP_GET;
		wf->reqs[wf->nreqs].key = rp->keys[i];
		wf->reqs[wf->nreqs].offset = off;
		wf->reqs[wf->nreqs].length = len;
		wf->reqs[wf->nreqs].buf = (char *) bufs[i];
		wf->shard_of[wf->nreqs++] = i;
	}
	wf->batch = provider_start(wf->reqs, wf->nreqs);
}

/*
 * Collect a window started by window_fetch_start and compare each chunk
 * with its tag; a shard that fails either is marked bad (one found bad
 * since the window was started is left alone).  Returns false if any did.
 */
static bool
window_fetch_end(Repair *rp, WindowFetch *wf)
{
	uint64		off;
	uint64		len;
	bool		all_ok = true;

	window_range(rp, wf->s0, wf->s1, &off, &len);
	provider_finish(wf->batch);
	for (int q = 0; q < wf->nreqs; q++)
	{
		ProviderRequest *req = &wf->reqs[q];
		int			i = wf->shard_of[q];
		uint64		pos = 0;

		if (rp->result[i].found != SHARD_FOUND_OK)
		{
			all_ok = false;
			continue;
		}
		if (!req->ok || req->result_size != len)
		{
			/* gone since the check of its trailer: missing, as if found so then */
			mark_bad(rp, i, req->not_found ? SHARD_FOUND_MISSING :
					 req->ok ? SHARD_FOUND_CORRUPT : SHARD_FOUND_UNREACHABLE,
					 req->error ? pstrdup(req->error) :
					 psprintf("short read at offset %llu", (unsigned long long) off));
			all_ok = false;
			continue;
		}
		for (uint64 s = wf->s0; s <= wf->s1; s++)
		{
			uint64		cl = stripe_chunk_len(rp, s);

			if (!object_chunk_verify(rp->auth, i, s, wf->bufs[i] + pos, cl,
									 rp->tags[i] + s * rp->g.tag_len))
			{
				mark_bad(rp, i, SHARD_FOUND_CORRUPT,
						 psprintf("chunk of stripe %llu %s", (unsigned long long) s,
								  rp->meta->key_version == OBJECT_FORMAT_CRC ?
								  "does not match its checksum" : "failed authentication"));
				provider_stats_note_bad_chunk(rp->meta->shards[i].provider);
				all_ok = false;
				break;
			}
			pos += cl;
		}
	}
	pfree(wf->reqs);
	pfree(wf->shard_of);
	return all_ok;
}

/* Fetch and check stripes [s0, s1] of the shards in "which" (see above). */
static bool
fetch_window(Repair *rp, const bool *which, uint64 s0, uint64 s1, uint8 **bufs)
{
	WindowFetch wf;

	window_fetch_start(rp, which, s0, s1, bufs, &wf);
	return window_fetch_end(rp, &wf);
}

/*
 * Check every chunk of every good shard against its tag, a window at a
 * time, each window asked for in the last round trip of the one before
 * (provider_wait_tail): asked after it, every provider's link sat idle
 * for a round trip per window (blob_verify's check of a 12 MiB blob over
 * a WAN took three round trips more than its read).  Two windows' buffers.
 */
static void
verify_shards(Repair *rp)
{
	bool	   *which = palloc(sizeof(bool) * rp->n);
	uint8	  **bufs[2];
	WindowFetch wf[2];
	int			cur = 0;
	uint64		nstripes = rp->g.nstripes;

	for (int b = 0; b < 2; b++)
	{
		bufs[b] = palloc0(sizeof(uint8 *) * rp->n);
		for (int i = 0; i < rp->n; i++)
			if (rp->result[i].found == SHARD_FOUND_OK && (b == 0 || nstripes > REPAIR_WINDOW_STRIPES))
				bufs[b][i] = palloc((size_t) REPAIR_WINDOW_STRIPES * rp->meta->chunk_size);
	}
	for (int i = 0; i < rp->n; i++)
		which[i] = rp->result[i].found == SHARD_FOUND_OK;
	if (nstripes > 0)
		window_fetch_start(rp, which, 0, Min((uint64) REPAIR_WINDOW_STRIPES, nstripes) - 1,
						   bufs[0], &wf[0]);
	for (uint64 s0 = 0; s0 < nstripes; s0 += REPAIR_WINDOW_STRIPES)
	{
		uint64		next = s0 + REPAIR_WINDOW_STRIPES;

		CHECK_FOR_INTERRUPTS();
		if (next < nstripes)
		{
			provider_wait_tail(wf[cur].batch);
			for (int i = 0; i < rp->n; i++)
				which[i] = rp->result[i].found == SHARD_FOUND_OK;
			window_fetch_start(rp, which, next, Min(next + REPAIR_WINDOW_STRIPES, nstripes) - 1,
							   bufs[1 - cur], &wf[1 - cur]);
		}
		(void) window_fetch_end(rp, &wf[cur]);
		cur = 1 - cur;
	}
	for (int b = 0; b < 2; b++)
	{
		for (int i = 0; i < rp->n; i++)
			if (bufs[b][i])
				pfree(bufs[b][i]);
		pfree(bufs[b]);
	}
	pfree(which);
}

/* Run one upload request for a rebuilt shard; false (and error set) if it failed. */
static bool
rebuild_request(Repair *rp, Rebuild *rb, ProviderOp op, const uint8 *data, size_t len)
{
	ProviderRequest req = {0};

	req.provider = rb->dest;
	req.op = op;
	req.key = rp->keys[rb->shard];
	req.upload = rb->upload;
	req.data = (const char *) data;
	req.datalen = len;
	provider_execute(&req, 1);
	if (!req.ok)
		rb->error = req.error ? pstrdup(req.error) : pstrdup("upload failed");
	return req.ok;
}

static void
rebuild_abandon(Repair *rp, Rebuild *rb)
{
	char	   *error = rb->error;

	if (rb->upload == NULL)
		return;
	if (rb->upload->active)
		(void) rebuild_request(rp, rb, POP_UPLOAD_ABORT, NULL, 0);
	object_untrack_upload(rb->upload);
	rb->upload = NULL;
	rb->error = error;
}

/* Upload the first OBJECT_PART_SIZE bytes of the part buffer. */
static bool
rebuild_flush(Repair *rp, Rebuild *rb)
{
	if (rb->upload == NULL)
	{
		/* tracked until the transaction ends: it must outlive this statement's memory */
		MemoryContext old = MemoryContextSwitchTo(CurTransactionContext);

		rb->upload = provider_upload_create(provider_copy(rb->dest, CurTransactionContext),
											rp->keys[rb->shard]);
		MemoryContextSwitchTo(old);
		object_track_upload(rb->upload);
		if (!rebuild_request(rp, rb, POP_UPLOAD_BEGIN, NULL, 0))
			return false;
	}
	if (!rebuild_request(rp, rb, POP_UPLOAD_PART, rb->part, OBJECT_PART_SIZE))
		return false;
	memmove(rb->part, rb->part + OBJECT_PART_SIZE, rb->partlen - OBJECT_PART_SIZE);
	rb->partlen -= OBJECT_PART_SIZE;
	return true;
}

/*
 * Write the shards in "targets" to dest[t] (NULL: their own provider),
 * rebuilt from k good sources — or, with copy, copied from themselves (they
 * must be good).  Returns false if a source turned out bad on the way (the
 * caller tries again without it).
 */
static bool
rebuild(Repair *rp, int *targets, int ntargets, Provider **dest, bool copy)
{
	const codec_rs *rs = object_rs(rp->k, rp->meta->parity_shards);
	bool	   *source = palloc0(sizeof(bool) * rp->n);
	uint8	  **bufs = palloc0(sizeof(uint8 *) * rp->n);
	uint8	  **chunks = palloc(sizeof(uint8 *) * rp->n);
	bool	   *present = palloc(sizeof(bool) * rp->n);
	Rebuild    *rbs = palloc0(sizeof(Rebuild) * ntargets);
	size_t		window_bytes = (size_t) REPAIR_WINDOW_STRIPES * rp->meta->chunk_size;
	int			nsources = 0;

	if (copy)
	{
		for (int t = 0; t < ntargets; t++)
			source[targets[t]] = true;
	}
	else
	{
		/* data shards first: they come first in the numbering */
		for (int i = 0; i < rp->n && nsources < rp->k; i++)
			if (rp->result[i].found == SHARD_FOUND_OK)
			{
				source[i] = true;
				nsources++;
			}
		Assert(nsources == rp->k);
	}
	for (int i = 0; i < rp->n; i++)
		bufs[i] = palloc(window_bytes);
	for (int t = 0; t < ntargets; t++)
	{
		rbs[t].shard = targets[t];
		rbs[t].dest = dest && dest[t] ? dest[t] : rp->providers[targets[t]];
		rbs[t].part = provider_alloc_aligned(CurrentMemoryContext,
											 OBJECT_PART_SIZE + window_bytes + rp->g.trailer_len);
		rbs[t].tags = palloc_extended((size_t) rp->g.tag_len * rp->g.nstripes, MCXT_ALLOC_HUGE);
	}

	for (uint64 s0 = 0; s0 < rp->g.nstripes; s0 += REPAIR_WINDOW_STRIPES)
	{
		uint64		s1 = Min(s0 + REPAIR_WINDOW_STRIPES, rp->g.nstripes) - 1;
		uint64		pos = 0;

		CHECK_FOR_INTERRUPTS();
		if (!fetch_window(rp, source, s0, s1, bufs))
		{
			for (int t = 0; t < ntargets; t++)
				rebuild_abandon(rp, &rbs[t]);
			return false;
		}
		for (uint64 s = s0; s <= s1; s++)
		{
			uint64		cl = stripe_chunk_len(rp, s);

			for (int i = 0; i < rp->n; i++)
			{
				chunks[i] = bufs[i] + pos;
				present[i] = source[i];
			}
			if (!copy && codec_rs_reconstruct(rs, cl, chunks, present) != 0)
				elog(ERROR, "reconstruction failed with %d sources", rp->k);
			for (int t = 0; t < ntargets; t++)
			{
				Rebuild    *rb = &rbs[t];

				if (rb->error)
					continue;
				object_chunk_tag(rp->auth, rb->shard, s, chunks[rb->shard], cl,
								 rb->tags + s * rp->g.tag_len);
				memcpy(rb->part + rb->partlen, chunks[rb->shard], cl);
				rb->partlen += cl;
			}
			pos += cl;
		}
		for (int t = 0; t < ntargets; t++)
			if (!rbs[t].error && rbs[t].partlen >= OBJECT_PART_SIZE && !rebuild_flush(rp, &rbs[t]))
				rebuild_abandon(rp, &rbs[t]);
	}

	for (int t = 0; t < ntargets; t++)
	{
		Rebuild    *rb = &rbs[t];
		ShardCheck *res = &rp->result[rb->shard];

		if (!rb->error)
		{
			object_build_trailer(rp->meta, &rp->g, rb->shard, rb->tags, rb->part + rb->partlen);
			rb->partlen += rp->g.trailer_len;
			if (rb->upload == NULL)
				(void) rebuild_request(rp, rb, POP_PUT, rb->part, rb->partlen);
			else if (rebuild_request(rp, rb, POP_UPLOAD_PART, rb->part, rb->partlen) &&
					 rebuild_request(rp, rb, POP_UPLOAD_COMPLETE, NULL, 0))
				object_untrack_upload(rb->upload);
		}
		if (rb->error)
		{
			rebuild_abandon(rp, rb);
			res->detail = psprintf("%s; rebuilding it failed: %s", res->detail, rb->error);
		}
		else
			res->rebuilt = true;
	}
	return true;
}

/* Set up for an object and fetch every shard's trailer (step 1 of a check). */
static Repair *
repair_check(ObjectMeta *meta)
{
	Repair	   *rp = palloc0(sizeof(Repair));
	ProviderRequest *reqs;
	uint8	  **trailers;
	int		   *shard_of;
	int			nreqs = 0;

	rp->meta = meta;
	rp->k = meta->data_shards;
	rp->n = meta->data_shards + meta->parity_shards;
	object_geometry(meta, &rp->g);
	rp->providers = palloc0(sizeof(Provider *) * rp->n);
	rp->keys = palloc(sizeof(char *) * rp->n);
	rp->auth = object_chunk_auth_create(meta);
	rp->tags = palloc0(sizeof(uint8 *) * rp->n);
	rp->result = palloc0(sizeof(ShardCheck) * rp->n);
	reqs = palloc0(sizeof(ProviderRequest) * rp->n);
	trailers = palloc0(sizeof(uint8 *) * rp->n);
	shard_of = palloc(sizeof(int) * rp->n);

	/* every shard's trailer: it exists, has the right length, describes itself */
	for (int i = 0; i < rp->n; i++)
	{
		rp->keys[i] = object_shard_key(meta->id, i);
		rp->providers[i] = provider_lookup_by_name(meta->shards[i].provider, true);
		rp->result[i].found = SHARD_FOUND_OK;
		if (rp->providers[i] == NULL)
		{
			mark_bad(rp, i, SHARD_FOUND_UNREACHABLE,
					 psprintf("provider \"%s\" does not exist", meta->shards[i].provider));
			continue;
		}
		trailers[i] = palloc(rp->g.trailer_len);
		reqs[nreqs].provider = rp->providers[i];
		reqs[nreqs].op = POP_GET;
		reqs[nreqs].key = rp->keys[i];
		reqs[nreqs].offset = rp->g.shard_data_len;
		reqs[nreqs].length = rp->g.trailer_len;
		reqs[nreqs].buf = (char *) trailers[i];
		shard_of[nreqs++] = i;
	}
	provider_execute(reqs, nreqs);
	for (int q = 0; q < nreqs; q++)
	{
		int			i = shard_of[q];
		ProviderRequest *r = &reqs[q];

		if (r->not_found)
			mark_bad(rp, i, SHARD_FOUND_MISSING, pstrdup("not found on the provider"));
		else if (!r->ok && r->http_status == 416)
			mark_bad(rp, i, SHARD_FOUND_CORRUPT, pstrdup("shorter than it should be"));
		else if (!r->ok)
			mark_bad(rp, i, SHARD_FOUND_UNREACHABLE, r->error ? pstrdup(r->error) : pstrdup("request failed"));
		else if (r->result_size != rp->g.trailer_len)
			mark_bad(rp, i, SHARD_FOUND_CORRUPT, pstrdup("shorter than it should be"));
		else
		{
			rp->tags[i] = palloc_extended((size_t) rp->g.tag_len * rp->g.nstripes, MCXT_ALLOC_HUGE);
			if (!object_parse_trailer(meta, &rp->g, i, trailers[i], rp->tags[i]))
				mark_bad(rp, i, SHARD_FOUND_CORRUPT, pstrdup("its footer does not describe this shard"));
		}
	}
	return rp;
}

static int
count_good(Repair *rp)
{
	int			good = 0;

	for (int i = 0; i < rp->n; i++)
		good += rp->result[i].found == SHARD_FOUND_OK;
	return good;
}

/*
 * Check every shard of an object (verify: every chunk too) and, with
 * repair, rebuild the bad ones where they are, except those keep_out marks
 * (NULL: none): shards whose provider may not hold them any more, which
 * the caller rebuilds elsewhere.
 */
ShardCheck *
object_check_and_repair(ObjectMeta *meta, bool verify, bool repair, const bool *keep_out,
						bool *unreadable)
{
	Repair	   *rp = repair_check(meta);

	/* with verify: every chunk of every good shard against its tag */
	if (verify)
		verify_shards(rp);

	/* rebuild what is bad, where its provider can take it */
	for (int attempt = 0; repair && attempt <= meta->parity_shards; attempt++)
	{
		int		   *targets = palloc(sizeof(int) * rp->n);
		int			ntargets = 0;

		for (int i = 0; i < rp->n; i++)
			if (rp->result[i].found != SHARD_FOUND_OK && rp->result[i].found != SHARD_FOUND_UNREACHABLE &&
				!(keep_out && keep_out[i]))
				targets[ntargets++] = i;
		if (count_good(rp) < rp->k || ntargets == 0)
			break;
		if (rebuild(rp, targets, ntargets, NULL, false))
			break;
		/* a source went bad on the way: it is a target now, try again */
	}
	*unreadable = count_good(rp) < rp->k;
	return rp->result;
}

/*
 * Put shard "shard" of an object on provider "to" (under the same key):
 * copied from where it is if it is good there, else rebuilt from the
 * others.  The copy is deleted from "to" if the transaction aborts; the
 * caller records the new place in the catalog and has the old copy deleted
 * (object_delete_shard_at_commit).  Returns NULL on success, else why not.
 */
char *
object_move_shard(ObjectMeta *meta, int shard, Provider *to)
{
	Repair	   *rp = repair_check(meta);
	int			targets[1] = {shard};
	Provider   *dest[1] = {to};

	object_track_written_shard(meta->id, shard, to);
	for (int attempt = 0; attempt <= meta->parity_shards + 1; attempt++)
	{
		bool		copy = rp->result[shard].found == SHARD_FOUND_OK;

		if (!copy && count_good(rp) < rp->k)
			return psprintf("fewer than %d good shards are left to rebuild it from", rp->k);
		rp->result[shard].detail = psprintf("writing it to provider \"%s\"", to->name);
		if (rebuild(rp, targets, 1, dest, copy))
			return rp->result[shard].rebuilt ? NULL : rp->result[shard].detail;
		/* the shard itself or a source went bad on the way: try again without it */
	}
	return pstrdup("its sources kept failing");
}
