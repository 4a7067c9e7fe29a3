/*
 * audit.c — destor.audit(): spot checks of random chunks on every provider.
 *
 * Decentralized storage networks do not trust their storage nodes: they
 * ask them, now and then, for a random piece of what they hold and check
 * it.  destor does the same with its providers.  Each check picks, for a
 * provider, a random shard it should hold and a random stripe of it, and
 * makes two ranged reads: the shard's trailer (its chunk tags and footer;
 * for a large format-2 object only that chunk's tag, so a check reads at
 * most a chunk and 4 KiB whatever the object's size) and that one chunk.
 * The chunk must match its tag — keyed from the object's data key (format
 * 2), so a provider cannot forge it — and the trailer must describe the
 * shard: the check code is object_repair.c's (object_parse_trailer,
 * object_chunk_verify).  Nothing is decrypted.
 *
 * A shard missing, short or corrupt is a failed audit; a provider that
 * could not be asked (connection refused, timed out, directory gone) is
 * unavailable, which says nothing about whether it keeps its data and is
 * not counted as a failure.  A check that fails is only counted if the
 * catalog, as committed now, still places the shard there: the audit's
 * snapshot may predate a deletion or a move whose old copy is gone.  Each
 * outcome goes to the provider's shared
 * statistics (provider_stats.c): audits passed and failed, the last audit,
 * and the recent outcomes from which a provider is judged "failing"
 * (destor.audit_failure_threshold); placement avoids failing providers for
 * new objects.
 *
 * The budget is in provider requests (two per check) and, optionally, in
 * bytes read (a check reads the shard's trailer and one whole chunk: its
 * tag covers the chunk, so less cannot be verified), both spread evenly
 * over the providers that hold shards, so a round costs the same however
 * much is stored.  The maintenance worker runs one audit per round with
 * destor.audit_requests_per_round and destor.audit_bytes_per_round.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "destor/catalog.h"
#include "destor/object.h"

PG_FUNCTION_INFO_V1(destor_audit);

#define AUDIT_REQUESTS_PER_CHECK	2
/* a larger trailer is not read whole: only the audited chunk's tag */
#define AUDIT_MAX_TRAILER			4096

typedef struct AuditSample
{
	uint8		id[CODEC_OBJID_LEN];
	int			shard;
} AuditSample;

/* Providers holding shards (of the pool, or of every pool), by name. */
static List *
audit_providers(const char *pool)
{
	CatalogUser cu;
	Oid			types[1] = {NAMEOID};
	Datum		values[1];
	char		nulls[1] = {' '};
	MemoryContext caller = CurrentMemoryContext;
	List	   *result = NIL;

	values[0] = pool ? DirectFunctionCall1(namein, CStringGetDatum(pool)) : (Datum) 0;
	if (pool == NULL)
		nulls[0] = 'n';
	catalog_enter(&cu);
	catalog_exec("SELECT DISTINCT s.provider::text FROM destor.shards s "
				 "JOIN destor.objects o USING (object_id) "
				 "WHERE $1 IS NULL OR o.pool = $1 ORDER BY 1",
				 1, types, values, nulls, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		MemoryContext spi = MemoryContextSwitchTo(caller);	/* the list outlives SPI */

		result = lappend(result, pstrdup(name));
		MemoryContextSwitchTo(spi);
	}
	catalog_leave(&cu);
	return result;
}

/* Up to n random shards the provider holds (of the pool, or of any). */
static int
audit_sample(const char *provider, const char *pool, int n, AuditSample **out)
{
	CatalogUser cu;
	Oid			types[3] = {NAMEOID, NAMEOID, INT4OID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	MemoryContext caller = CurrentMemoryContext;
	int			got;

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(provider));
	values[1] = pool ? DirectFunctionCall1(namein, CStringGetDatum(pool)) : (Datum) 0;
	if (pool == NULL)
		nulls[1] = 'n';
	values[2] = Int32GetDatum(n);
	catalog_enter(&cu);
	catalog_exec("SELECT s.object_id, s.shard_index FROM destor.shards s "
				 "JOIN destor.objects o USING (object_id) "
				 "WHERE s.provider = $1 AND ($2 IS NULL OR o.pool = $2) "
				 "ORDER BY random() LIMIT $3",
				 3, types, values, nulls, SPI_OK_SELECT);
	got = (int) SPI_processed;
	*out = MemoryContextAlloc(caller, sizeof(AuditSample) * Max(got, 1));
	for (int i = 0; i < got; i++)
	{
		bool		isnull;

		object_id_from_datum(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull),
							 (*out)[i].id);
		(*out)[i].shard = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
													  2, &isnull));
	}
	catalog_leave(&cu);
	return got;
}

/*
 * Classify a failed request: true if the provider could not be asked
 * (unavailable), false if it answered and the shard is missing or short.
 */
static bool
request_unavailable(ProviderRequest *r, char **detail, const char *what)
{
	if (r->unreachable)
	{
		*detail = psprintf("provider unavailable: %s", r->error ? r->error : "request failed");
		return true;
	}
	if (r->not_found)
	{
		*detail = psprintf("%s: not found on the provider", what);
		return false;
	}
	if (r->http_status == 416)
	{
		*detail = psprintf("%s: shorter than it should be", what);
		return false;
	}
	*detail = psprintf("provider unavailable: %s", r->error ? r->error : "request failed");
	return true;
}

/* Is the shard's whole trailer read (see audit_one), or only one tag? */
static bool
audit_whole_trailer(const ObjectMeta *meta, const ObjectGeometry *g)
{
	return g->trailer_len <= AUDIT_MAX_TRAILER || meta->key_version == OBJECT_FORMAT_CRC;
}

/* What checking one chunk of the object reads: the trailer (or tag) and the chunk. */
static uint64
audit_cost(const ObjectMeta *meta, uint64 stripe)
{
	ObjectGeometry g;

	object_geometry(meta, &g);
	return (audit_whole_trailer(meta, &g) ? g.trailer_len : (uint64) g.tag_len) +
		(stripe == g.nstripes - 1 ? g.last_chunk : (uint64) meta->chunk_size);
}

/* A random stripe of the object (any, when it has only one). */
static uint64
audit_pick_stripe(const ObjectMeta *meta)
{
	ObjectGeometry g;

	object_geometry(meta, &g);
	return g.nstripes > 1 ? pg_prng_uint64_range(&pg_global_prng_state, 0, g.nstripes - 1) : 0;
}

/*
 * Check one chunk of one shard.  Returns AUDIT_PASSED, AUDIT_FAILED or
 * AUDIT_UNAVAILABLE, with *detail saying why when it did not pass.
 *
 * Two ranged reads: the chunk, and what verifies it.  The shard's whole
 * trailer (every chunk's tag and the footer) is read while it is small
 * (AUDIT_MAX_TRAILER): the footer is checked too.  A large object's
 * trailer grows with its stripes (16 bytes each: 64 MB for a 1 TB shard),
 * so then only the chunk's own tag is read: a format-2 tag is keyed with
 * the object's data key over object id, shard index, stripe and chunk, so
 * it alone proves the provider holds that chunk of that shard.  Format-1
 * CRCs bind nothing, so those objects are always checked with the footer.
 */
static ProviderAuditOutcome
audit_one(ObjectMeta *meta, int shard, uint64 stripe, Provider *p, char **detail, bool *bad_chunk)
{
	ObjectGeometry g;
	ProviderRequest reqs[2];
	char	   *key = object_shard_key(meta->id, shard);
	uint8	   *trailer;
	uint8	   *tags;
	uint8	   *chunk;
	uint64		cl;
	uint64		tlen;
	bool		whole_trailer;
	ObjectChunkAuth *auth;

	object_geometry(meta, &g);
	cl = stripe == g.nstripes - 1 ? g.last_chunk : (uint64) meta->chunk_size;
	whole_trailer = audit_whole_trailer(meta, &g);
	tlen = whole_trailer ? g.trailer_len : (uint64) g.tag_len;
	trailer = palloc_extended(tlen, MCXT_ALLOC_HUGE);
	chunk = palloc(Max(cl, 1));
	memset(reqs, 0, sizeof(reqs));
	reqs[0].provider = p;
	reqs[0].op = POP_GET;
	reqs[0].key = key;
	reqs[0].offset = g.shard_data_len + (whole_trailer ? 0 : stripe * g.tag_len);
	reqs[0].length = tlen;
	reqs[0].buf = (char *) trailer;
	reqs[1].provider = p;
	reqs[1].op = POP_GET;
	reqs[1].key = key;
	reqs[1].offset = stripe * meta->chunk_size;
	reqs[1].length = cl;
	reqs[1].buf = (char *) chunk;
	/*
	 * No retries: a spot check has nothing waiting on it, and retrying a
	 * provider that stalls (request_timeout, 60 s by default, times
	 * 1 + max_retries) would hold the maintenance round for minutes and
	 * spend requests beyond the budget.  A check that could not be made
	 * is unavailable, which does not count against the provider.
	 */
	reqs[0].no_retry = true;
	reqs[1].no_retry = true;
	provider_execute(reqs, 2);

	*detail = NULL;
	*bad_chunk = false;
	if (!reqs[0].ok)
		return request_unavailable(&reqs[0], detail, "shard") ? AUDIT_UNAVAILABLE : AUDIT_FAILED;
	if (reqs[0].result_size != tlen)
	{
		*detail = pstrdup("shard: shorter than it should be");
		return AUDIT_FAILED;
	}
	if (whole_trailer)
	{
		tags = palloc_extended((size_t) g.tag_len * g.nstripes, MCXT_ALLOC_HUGE);
		if (!object_parse_trailer(meta, &g, shard, trailer, tags))
		{
			*detail = pstrdup("shard: its footer does not describe this shard");
			return AUDIT_FAILED;
		}
		tags += stripe * g.tag_len;
	}
	else
		tags = trailer;
	if (!reqs[1].ok)
		return request_unavailable(&reqs[1], detail, "chunk") ? AUDIT_UNAVAILABLE : AUDIT_FAILED;
	if (reqs[1].result_size != cl)
	{
		*detail = psprintf("chunk of stripe %llu: short read", (unsigned long long) stripe);
		return AUDIT_FAILED;
	}
	auth = object_chunk_auth_create(meta);
	if (!object_chunk_verify(auth, shard, stripe, chunk, cl, tags))
	{
		*detail = psprintf("chunk of stripe %llu %s", (unsigned long long) stripe,
						   meta->key_version == OBJECT_FORMAT_CRC ?
						   "does not match its checksum" : "failed authentication");
		*bad_chunk = true;
		return AUDIT_FAILED;
	}
	return AUDIT_PASSED;
}

/*
 * Does the catalog, as committed now, still place this shard on this
 * provider?  The audit's snapshot may be older than a deletion or a move
 * committed since, whose post-commit cleanup (or cleanup_orphans) took the
 * shard away: the provider is not to blame for that.
 */
static bool
audit_still_placed(const AuditSample *s, const char *provname)
{
	ObjectMeta *now = catalog_get_object_at(s->id, true, GetLatestSnapshot());

	return now != NULL && s->shard < now->data_shards + now->parity_shards &&
		strcmp(now->shards[s->shard].provider, provname) == 0;
}

/*
 * destor.audit(pool name DEFAULT NULL, max_requests int DEFAULT 20,
 *              max_bytes bigint DEFAULT NULL)
 *   RETURNS TABLE (provider name, object_id uuid, shard_index int, ok boolean, detail text)
 * ok is NULL when the provider could not be asked.  max_bytes NULL: no
 * limit in bytes; a check that would take a provider past its share is
 * skipped (a smaller object's chunk may still fit).
 */
Datum
destor_audit(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *pool = PG_ARGISNULL(0) ? NULL : pstrdup(NameStr(*PG_GETARG_NAME(0)));
	int			max_requests = PG_ARGISNULL(1) ? 20 : PG_GETARG_INT32(1);
	bool		bytes_limited = PG_NARGS() > 2 && !PG_ARGISNULL(2);
	int64		max_bytes = bytes_limited ? PG_GETARG_INT64(2) : 0;
	int			nbudgets;
	List	   *providers;
	int			nproviders;
	int			nchecks;
	int			start;
	MemoryContext checkcxt;
	MemoryContext callcxt = CurrentMemoryContext;

	if (max_requests < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_requests must not be negative")));
	if (max_bytes < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_bytes must not be negative"),
				 errhint("Pass NULL for no limit in bytes.")));
	InitMaterializedSRF(fcinfo, 0);
	if (pool)
		(void) pool_lookup(pool, false);	/* says clearly if there is no such pool */
	nchecks = max_requests / AUDIT_REQUESTS_PER_CHECK;
	providers = audit_providers(pool);
	nproviders = list_length(providers);
	if (nchecks == 0 || nproviders == 0)
		return (Datum) 0;
	/* checks spread evenly; the remainder to providers from a random start */
	start = (int) pg_prng_uint64_range(&pg_global_prng_state, 0, nproviders - 1);
	nbudgets = Min(nchecks, nproviders);	/* providers that get a check */
	checkcxt = AllocSetContextCreate(CurrentMemoryContext, "destor audit check",
									 ALLOCSET_DEFAULT_SIZES);
	for (int pi = 0; pi < nproviders; pi++)
	{
		const char *provname = list_nth(providers, (start + pi) % nproviders);
		int			want = nchecks / nproviders + (pi < nchecks % nproviders ? 1 : 0);
		AuditSample *samples;
		int			nsamples;
		Provider   *p;
		uint64		bytes_left = bytes_limited ?
			(uint64) (max_bytes / nbudgets + (pi < max_bytes % nbudgets ? 1 : 0)) : PG_UINT64_MAX;

		if (want == 0)
			continue;
		CHECK_FOR_INTERRUPTS();
		nsamples = audit_sample(provname, pool, want, &samples);
		p = provider_lookup_by_name(provname, true);
		if (p == NULL)
			continue;			/* a provider dropped with shards left on it */
		for (int i = 0; i < nsamples; i++)
		{
			MemoryContext old;
			ObjectMeta *meta;
			ProviderAuditOutcome outcome;
			char	   *detail = NULL;
			uint64		stripe;
			uint64		cost;
			bool		bad_chunk = false;
			Datum		values[5];
			bool		nulls[5] = {0};

			CHECK_FOR_INTERRUPTS();
			old = MemoryContextSwitchTo(checkcxt);
			meta = catalog_get_object(samples[i].id, true);
			/* deleted or moved meanwhile: nothing to check there */
			if (meta == NULL || samples[i].shard >= meta->data_shards + meta->parity_shards ||
				strcmp(meta->shards[samples[i].shard].provider, provname) != 0)
			{
				MemoryContextSwitchTo(old);
				MemoryContextReset(checkcxt);
				continue;
			}
			stripe = audit_pick_stripe(meta);
			cost = audit_cost(meta, stripe);
			if (cost > bytes_left)
			{
				MemoryContextSwitchTo(old);
				MemoryContextReset(checkcxt);
				continue;		/* over this provider's share of the bytes */
			}
			bytes_left -= cost;
			outcome = audit_one(meta, samples[i].shard, stripe, p, &detail, &bad_chunk);
			/* a failure only counts if the shard is still meant to be there */
			if (outcome == AUDIT_FAILED && !audit_still_placed(&samples[i], provname))
			{
				MemoryContextSwitchTo(old);
				MemoryContextReset(checkcxt);
				continue;
			}
			if (bad_chunk)
				provider_stats_note_bad_chunk(provname);
			provider_stats_note_audit(p, outcome);
			MemoryContextSwitchTo(callcxt);
			values[0] = DirectFunctionCall1(namein, CStringGetDatum(provname));
			values[1] = object_id_datum(samples[i].id);
			values[2] = Int32GetDatum(samples[i].shard);
			values[3] = BoolGetDatum(outcome == AUDIT_PASSED);
			nulls[3] = outcome == AUDIT_UNAVAILABLE;
			if (detail)
				values[4] = CStringGetTextDatum(detail);
			else
				nulls[4] = true;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			MemoryContextReset(checkcxt);
		}
	}
	MemoryContextDelete(checkcxt);
	return (Datum) 0;
}
