/*
 * repair.c — destor.repair(): find shards that are missing or corrupt and
 * write them again from the others, so that a pool that lost a provider's
 * data gets its full redundancy back instead of running degraded.
 *
 * Every object of the pool (or of all pools) is checked by the object
 * layer, which rebuilds what it can without ever decrypting anything; the
 * catalog then records each shard's state ('ok', 'missing', 'corrupt'),
 * which readers use to skip bad shards up front.  Returns one row per shard
 * that was not fine, and what became of it; no row means all is well.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "catalog.h"
#include "object.h"

PG_FUNCTION_INFO_V1(destor_repair);

static const char *
found_name(ShardFound f)
{
	switch (f)
	{
		case SHARD_FOUND_OK:
			return "ok";
		case SHARD_FOUND_MISSING:
			return "missing";
		case SHARD_FOUND_CORRUPT:
			return "corrupt";
		case SHARD_FOUND_UNREACHABLE:
			return "unreachable";
	}
	return "unknown";
}

Datum
destor_repair(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *pool = PG_ARGISNULL(0) ? NULL : pstrdup(NameStr(*PG_GETARG_NAME(0)));
	bool		verify = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	bool		dry_run = PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2);
	MemoryContext percxt;
	List	   *ids;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	if (pool)
		(void) pool_lookup(pool, false);	/* says clearly if there is no such pool */
	ids = catalog_list_objects(pool);
	percxt = AllocSetContextCreate(CurrentMemoryContext, "destor repair object",
								   ALLOCSET_DEFAULT_SIZES);
	foreach(lc, ids)
	{
		uint8	   *id = lfirst(lc);
		MemoryContext old;
		ObjectMeta *meta;
		ShardCheck *checks;
		bool		unreadable;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(percxt);
		meta = catalog_get_object(id, true);
		if (meta == NULL)
		{
			/* deleted meanwhile */
			MemoryContextSwitchTo(old);
			MemoryContextReset(percxt);
			continue;
		}
		checks = object_check_and_repair(meta, verify, !dry_run, &unreadable);
		for (int i = 0; i < meta->data_shards + meta->parity_shards; i++)
		{
			ShardCheck *c = &checks[i];
			Datum		values[6];
			bool		nulls[6] = {0};
			pg_uuid_t  *u;

			/* unreachable says nothing about the shard itself: leave its state */
			if (!dry_run && (c->rebuilt || c->found != SHARD_FOUND_UNREACHABLE))
				catalog_set_shard_state(meta->id, i, c->rebuilt ? "ok" : found_name(c->found));
			if (c->found == SHARD_FOUND_OK)
				continue;
			if (c->rebuilt)
				ereport(LOG,
						(errmsg("destor: rebuilt shard %d of object %s on provider \"%s\" (it was %s)",
								i, object_id_text(meta->id), meta->shards[i].provider,
								found_name(c->found))));
			u = palloc(sizeof(pg_uuid_t));
			memcpy(u->data, meta->id, CODEC_OBJID_LEN);
			values[0] = UUIDPGetDatum(u);
			values[1] = Int32GetDatum(i);
			values[2] = CStringGetDatum(meta->shards[i].provider);
			values[2] = DirectFunctionCall1(namein, values[2]);
			values[3] = CStringGetTextDatum(found_name(c->found));
			values[4] = BoolGetDatum(c->rebuilt);
			if (c->detail)
				values[5] = CStringGetTextDatum(c->detail);
			else
				nulls[5] = true;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		if (unreadable)
			ereport(WARNING,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("object %s of pool \"%s\" has fewer than %d good shards and cannot be read or repaired",
							object_id_text(meta->id), meta->pool, meta->data_shards),
					 errhint("Bring back the providers that hold its other shards; destor.repair() rebuilds it then.")));
		MemoryContextSwitchTo(old);
		MemoryContextReset(percxt);
	}
	return (Datum) 0;
}
