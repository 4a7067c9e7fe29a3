/*
 * orphans.c — destor.cleanup_orphans(): remove provider objects that no
 * catalog row places where they are.
 *
 * Shards are written before the catalog rows that name them commit.  If the
 * server crashes in between (or a best-effort delete at abort or after
 * commit fails), the shards stay on the providers with no row.  Listing each
 * provider and comparing with the catalog finds them; a grace period keeps
 * writes that are still in progress safe.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "object.h"

PG_FUNCTION_INFO_V1(cleanup_orphans);

Datum
cleanup_orphans(PG_FUNCTION_ARGS)
{
	Name		poolname = PG_GETARG_NAME(0);
	Interval   *older_than = PG_GETARG_INTERVAL_P(1);
	Pool	   *pool = pool_lookup(NameStr(*poolname), true);
	TimestampTz cutoff;
	int64		removed = 0;

	cutoff = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
													 TimestampTzGetDatum(GetCurrentTimestamp()),
													 IntervalPGetDatum(older_than)));
	for (int p = 0; p < pool->nproviders; p++)
	{
		Provider   *prov = provider_lookup_by_name(pool->provider_names[p], false);
		List	   *keys = provider_list(prov, OBJECT_KEY_PREFIX);
		ListCell   *lc;

		foreach(lc, keys)
		{
			ProviderListEntry *e = lfirst(lc);
			uint8		id[CODEC_OBJID_LEN];
			int			shard;
			bool		orphan;

			CHECK_FOR_INTERRUPTS();
			if (e->last_modified > cutoff)
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
	}
	catalog_forget_retired(cutoff);
	PG_RETURN_INT64(removed);
}
