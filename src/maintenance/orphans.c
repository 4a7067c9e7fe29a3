/*
 * orphans.c — destor.cleanup_orphans(): remove provider objects that no
 * catalog row places where they are.
 *
 * Shards are written before the catalog rows that name them commit.  If the
 * server crashes in between (or a best-effort delete at abort or after
 * commit fails), the shards stay on the providers with no row.  Listing each
 * provider and comparing with the catalog finds them.
 *
 * Only keys of this database's namespace are candidates: shards another
 * database wrote (the original of a restored copy, say) never are, even
 * where both share providers and this catalog names some of them.
 *
 * Unfinished multipart uploads (s3) under the same prefix are aborted by the
 * same rule.
 *
 * Tables leave orphans of another kind: a temporary destor table dropped at
 * session end or by DISCARD TEMP fires no event trigger, so its binding,
 * segments and objects keep their catalog rows with no relation to reach
 * them.  Those tables are forgotten too, and their objects removed.
 *
 * A transaction still running has written shards whose rows nobody else can
 * see yet, however long ago it wrote them: age alone cannot tell them from
 * orphans.  Every transaction that stores objects is registered while it
 * runs (provider_writing_begins), so after listing a provider we leave alone
 * everything dated after the oldest running writer began (less a margin for
 * the provider's clock and its rounding of dates).  A writer that is gone by
 * then has ended: committed, its rows are visible to the catalog look-ups
 * that follow, which take fresh snapshots (hence READ COMMITTED only).
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "destor/catalog.h"
#include "destor/object.h"

/* provider dates may lag ours (clock skew, dates rounded to the second) */
#define WRITER_MARGIN_MS	(60 * 1000)

PG_FUNCTION_INFO_V1(cleanup_orphans);

/*
 * orphan_cutoff — what may go: dated no later than the grace period's
 * cutoff and before the oldest writer still running began.  Called after a
 * provider was listed: a writer that begins later cannot have written
 * anything in that listing.
 */
static TimestampTz
orphan_cutoff(TimestampTz cutoff)
{
	TimestampTz oldest = provider_oldest_writer();

	if (oldest != 0)
		cutoff = Min(cutoff, TimestampTzPlusMilliseconds(oldest, -WRITER_MARGIN_MS));
	return cutoff;
}

/*
 * cleanup_lost_tables — forget the destor tables whose relation is gone
 * with no DROP trigger having run (temporary tables at session end or
 * DISCARD TEMP; see catalog_collect_lost_tables) and remove their segments'
 * objects of this pool.  Runs after the providers were listed, so that the
 * listing does not take their shards before this transaction commits: they
 * go after commit, as a dropped table's do, or stay retired (and the next
 * cleanup_orphans removes them) while an older snapshot remains.  Returns
 * how many shards are to go (borrowed objects lose only their rows).
 */
static int64
cleanup_lost_tables(Pool *pool, TimestampTz keep_after)
{
	int64		ntables;
	int64		shards = 0;
	List	   *objects = catalog_collect_lost_tables(pool->name, keep_after, &ntables);
	ListCell   *lc;

	foreach(lc, objects)
	{
		uint8	   *id = lfirst(lc);
		ObjectMeta *meta = catalog_get_object(id, true);

		CHECK_FOR_INTERRUPTS();
		if (meta == NULL)
			continue;
		catalog_delete_object(id);
		object_delete_at_commit(meta);
		if (object_is_ours(id))
			shards += meta->data_shards + meta->parity_shards;
	}
	if (ntables > 0)
		ereport(LOG,
				(errmsg("forgot %lld table(s) of pool \"%s\" whose relation no longer exists, with %d object(s)",
						(long long) ntables, pool->name, list_length(objects))));
	return shards;
}

/*
 * Remove the orphans of one provider (cleanup_orphans): shards no catalog
 * row places there and abandoned uploads, older than the cutoff.  Returns
 * how many it removed.
 */
static int64
cleanup_provider(Provider *prov, TimestampTz cutoff)
{
	int64		removed = 0;
	List	   *keys = provider_list(prov, OBJECT_KEY_PREFIX);
	TimestampTz keep_after = orphan_cutoff(cutoff);
	ListCell   *lc;

	foreach(lc, keys)
	{
		ProviderListEntry *e = lfirst(lc);
		uint8		id[CODEC_OBJID_LEN];
		int			shard;
		bool		orphan;

		CHECK_FOR_INTERRUPTS();
		if (e->last_modified > keep_after || !object_key_is_ours(e->key))
			continue;
		/* a shard is kept where the catalog places it (a moved shard's old copy goes) */
		if (object_parse_shard_key(e->key, id, &shard))
			orphan = !catalog_shard_placed(id, shard, prov->name) &&
				!catalog_object_retired_after(id, cutoff);
		else
			orphan = strstr(e->key, ".tmp.") != NULL;	/* abandoned upload */
		if (orphan)
		{
			provider_delete(prov, e->key);
			removed++;
		}
	}

	/*
	 * Multipart uploads that were never completed nor aborted (a
	 * backend killed mid-upload, an abort that failed) are invisible
	 * to listings but billed: abort those begun before the cutoff.  A
	 * running writer's upload is newer than its registration.
	 */
	{
		List	   *uploads = provider_list_uploads(prov, OBJECT_KEY_PREFIX);

		keep_after = orphan_cutoff(cutoff);
		foreach(lc, uploads)
		{
			ProviderUploadEntry *u = lfirst(lc);

			CHECK_FOR_INTERRUPTS();
			if (u->initiated == 0 || u->initiated > keep_after ||
				!object_key_is_ours(u->key))
				continue;
			if (provider_abort_upload(prov, u))
				removed++;
		}
	}
	return removed;
}

typedef struct OrphanStep
{
	Provider   *prov;
	TimestampTz cutoff;
	int64		removed;
} OrphanStep;

static void
cleanup_provider_step(void *arg)
{
	OrphanStep *step = (OrphanStep *) arg;

	step->removed = cleanup_provider(step->prov, step->cutoff);
}

Datum
cleanup_orphans(PG_FUNCTION_ARGS)
{
	Name		poolname = PG_GETARG_NAME(0);
	Interval   *older_than = PG_GETARG_INTERVAL_P(1);
	Pool	   *pool = pool_lookup(NameStr(*poolname), true);
	TimestampTz cutoff;
	int64		removed = 0;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("destor.cleanup_orphans() must run in a READ COMMITTED transaction"),
				 errdetail("Under an older snapshot, objects committed meanwhile would look like orphans."),
				 errhint("Run it at the default isolation level, READ COMMITTED.")));
	if (pool->mode == POOL_MODE_READ_ONLY)
	{
		/* its providers are another database's to clean */
		ereport(NOTICE,
				(errmsg("pool \"%s\" is declared read-only: nothing is removed from its providers",
						pool->name)));
		PG_RETURN_INT64(0);
	}
	cutoff = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
													 TimestampTzGetDatum(GetCurrentTimestamp()),
													 IntervalPGetDatum(older_than)));
	for (int p = 0; p < pool->nproviders; p++)
	{
		Provider   *prov = provider_lookup_by_name(pool->provider_names[p], false);
		OrphanStep step = {prov, cutoff, 0};
		ErrorData  *error;

		/*
		 * A provider that cannot be listed (down, its folder gone) is
		 * skipped with a warning: its orphans wait for a later run, and the
		 * others' cleanup (and the maintenance round calling it) goes on.
		 */
		if (catalog_try(cleanup_provider_step, &step, &error))
			removed += step.removed;
		else
		{
			ereport(WARNING,
					(errcode(error->sqlerrcode),
					 errmsg("orphans on provider \"%s\" not cleaned up: %s", prov->name, error->message),
					 errhint("They are removed by a later run once the provider can be listed.")));
			FreeErrorData(error);
		}
	}
	catalog_forget_retired(cutoff);
	/*
	 * The writer registry is not needed for tables: a relation cannot be
	 * dropped while a transaction writes to it (DROP waits for its lock; a
	 * temporary table has only its own session), and a drop or a rebinding
	 * in progress leaves the relation, or the locked binding, as it was.
	 */
	removed += cleanup_lost_tables(pool, cutoff);
	PG_RETURN_INT64(removed);
}
