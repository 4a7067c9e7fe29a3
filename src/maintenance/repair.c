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

#include "destor/progress.h"
#include "destor/catalog.h"
#include "destor/object.h"

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
	progress_start("repair", InvalidOid, pool);
	progress_set_totals(-1, list_length(ids));
	progress_set_phase(dry_run ? "checking shards" : "checking and rebuilding shards");
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
				catalog_set_shard_state(meta->id, i, meta->shards[i].provider,
										c->rebuilt ? "ok" : found_name(c->found));
			if (c->found == SHARD_FOUND_OK)
				continue;
			if (c->rebuilt)
				ereport(LOG,
						(errmsg("rebuilt shard %d of object %s on provider \"%s\" (it was %s)",
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
		progress_add(0, 1);
	}
	progress_end();
	return (Datum) 0;
}

/*
 * destor.move_shards(from_provider, to_provider): every shard that
 * from_provider holds is put on another provider — to_provider, or (NULL)
 * the provider of the object's pool that holds no shard of the object and
 * the fewest shards overall — copied when from_provider can still serve it,
 * rebuilt from the other shards when it cannot.  The catalog then places
 * the shard there; the old copy is deleted after commit.  For a provider
 * leaving (shut down, too dear): take it out of the pools' provider lists,
 * move its shards, drop its server.  One row per shard.
 */
PG_FUNCTION_INFO_V1(destor_move_shards);

/* Shards per provider, counted once and kept up to date as shards move. */
typedef struct Load
{
	char	   *name;
	int64		shards;
} Load;

static Load *
load_of(List **loads, const char *name)
{
	ListCell   *lc;
	Load	   *l;
	uint8	   *ids;
	int		   *shards;

	foreach(lc, *loads)
		if (strcmp(((Load *) lfirst(lc))->name, name) == 0)
			return lfirst(lc);
	l = palloc(sizeof(Load));
	l->name = pstrdup(name);
	l->shards = catalog_shards_on(name, &ids, &shards);
	pfree(ids);
	pfree(shards);
	*loads = lappend(*loads, l);
	return l;
}

/* The least-loaded provider of the object's pool that holds none of its shards. */
static char *
choose_target(ObjectMeta *meta, const char *from, List **loads, MemoryContext keep)
{
	Pool	   *pool = pool_lookup(meta->pool, false);
	Load	   *best = NULL;
	MemoryContext old;

	for (int p = 0; p < pool->nproviders; p++)
	{
		const char *name = pool->provider_names[p];
		bool		used = strcmp(name, from) == 0;
		Load	   *l;

		for (int i = 0; i < meta->data_shards + meta->parity_shards && !used; i++)
			used = strcmp(meta->shards[i].provider, name) == 0;
		if (used || provider_lookup_by_name(name, true) == NULL)
			continue;
		old = MemoryContextSwitchTo(keep);
		l = load_of(loads, name);
		MemoryContextSwitchTo(old);
		if (best == NULL || l->shards < best->shards)
			best = l;
	}
	if (best == NULL)
		return NULL;
	best->shards++;				/* it is about to get one */
	return pstrdup(best->name);
}

/*
 * Move shard "shard" of an object from provider "from" to "to": the bytes,
 * then the catalog; the old copy goes after commit.  NULL on success, else
 * why not.
 */
static char *
move_one(ObjectMeta *meta, int shard, const char *from, const char *to)
{
	Provider   *old_provider;
	char	   *why;

	for (int i = 0; i < meta->data_shards + meta->parity_shards; i++)
		if (strcmp(meta->shards[i].provider, to) == 0)
			return psprintf("provider \"%s\" already holds shard %d of this object", to, i);
	why = object_move_shard(meta, shard, provider_lookup_by_name(to, false));
	if (why != NULL)
		return why;
	if (!catalog_move_shard(meta->id, shard, from, to))
		return pstrdup("the shard was moved by another session meanwhile");	/* the copy is an orphan */
	old_provider = provider_lookup_by_name(from, true);
	if (old_provider)
		object_delete_shard_at_commit(meta->id, shard, old_provider);
	meta->shards[shard].provider = pstrdup(to);
	return NULL;
}

Datum
destor_move_shards(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *from;
	char	   *to = PG_ARGISNULL(1) ? NULL : pstrdup(NameStr(*PG_GETARG_NAME(1)));
	MemoryContext percxt;
	uint8	   *ids;
	int		   *shard_of;
	int			n;
	List	   *loads = NIL;
	MemoryContext callcxt = CurrentMemoryContext;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the provider to move shards from must be given")));
	from = pstrdup(NameStr(*PG_GETARG_NAME(0)));
	InitMaterializedSRF(fcinfo, 0);
	if (to && strcmp(from, to) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot move shards from provider \"%s\" to itself", from)));
	if (to)
		(void) provider_lookup_by_name(to, false);	/* says clearly if there is none */
	n = catalog_shards_on(from, &ids, &shard_of);
	percxt = AllocSetContextCreate(CurrentMemoryContext, "destor move shard", ALLOCSET_DEFAULT_SIZES);
	progress_start("move_shards", InvalidOid, from);
	progress_set_totals(-1, n);
	progress_set_phase("moving shards");
	for (int s = 0; s < n; s++)
	{
		uint8	   *id = ids + (Size) s * CODEC_OBJID_LEN;
		int			shard = shard_of[s];
		MemoryContext old;
		ObjectMeta *meta;
		char	   *target = to;
		char	   *why = NULL;
		Datum		values[5];
		bool		nulls[5] = {0};
		pg_uuid_t  *u;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(percxt);
		/* one mover at a time per object; then its placement as it is now */
		meta = catalog_lock_object(id) ? catalog_get_object(id, true) : NULL;
		if (meta == NULL)
		{
			MemoryContextSwitchTo(old);
			MemoryContextReset(percxt);
			continue;
		}
		if (strcmp(meta->shards[shard].provider, from) != 0)
			why = pstrdup("the shard was moved by another session meanwhile");
		else if (target == NULL)
		{
			target = choose_target(meta, from, &loads, callcxt);
			if (target == NULL)
				why = psprintf("no provider of pool \"%s\" is free for it; add one to the pool or name one",
							   meta->pool);
		}
		if (why == NULL)
			why = move_one(meta, shard, from, target);
		u = palloc(sizeof(pg_uuid_t));
		memcpy(u->data, meta->id, CODEC_OBJID_LEN);
		values[0] = UUIDPGetDatum(u);
		values[1] = Int32GetDatum(shard);
		if (target)
			values[2] = DirectFunctionCall1(namein, CStringGetDatum(target));
		else
			nulls[2] = true;
		values[3] = BoolGetDatum(why == NULL);
		if (why)
			values[4] = CStringGetTextDatum(why);
		else
			nulls[4] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
		MemoryContextReset(percxt);
		progress_add(0, 1);
	}
	progress_end();
	return (Datum) 0;
}

/*
 * destor.rebalance(pool): spread the pool's shards evenly over the
 * providers it lists now — shards on providers no longer listed go first,
 * then shards on providers holding more than their share go to the ones
 * holding fewest (a provider added to the pool fills up this way).  Two
 * shards of one object never share a provider.  One row per shard moved
 * or that could not be.
 */
PG_FUNCTION_INFO_V1(destor_rebalance);

typedef struct PoolLoad
{
	int			n;
	char	  **names;			/* the pool's providers, as listed now */
	int64	   *shards;			/* of the pool's objects, per provider */
} PoolLoad;

static int
pool_load_index(PoolLoad *pl, const char *name)
{
	for (int i = 0; i < pl->n; i++)
		if (strcmp(pl->names[i], name) == 0)
			return i;
	return -1;
}

Datum
destor_rebalance(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Pool	   *pool = pool_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	MemoryContext percxt;
	PoolLoad	pl;
	List	   *ids;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	pl.n = pool->nproviders;
	pl.names = pool->provider_names;
	pl.shards = palloc0(sizeof(int64) * pl.n);
	ids = catalog_list_objects(pool->name);
	percxt = AllocSetContextCreate(CurrentMemoryContext, "destor rebalance", ALLOCSET_DEFAULT_SIZES);
	progress_start("rebalance", InvalidOid, pool->name);
	progress_set_totals(-1, list_length(ids));
	progress_set_phase("counting shards");

	/* the load now */
	foreach(lc, ids)
	{
		MemoryContext old = MemoryContextSwitchTo(percxt);
		ObjectMeta *meta = catalog_get_object(lfirst(lc), true);

		for (int i = 0; meta && i < meta->data_shards + meta->parity_shards; i++)
		{
			int			p = pool_load_index(&pl, meta->shards[i].provider);

			if (p >= 0)
				pl.shards[p]++;
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(percxt);
	}

	progress_set_phase("moving shards");
	foreach(lc, ids)
	{
		MemoryContext old;
		ObjectMeta *meta;

		CHECK_FOR_INTERRUPTS();
		progress_add(0, 1);
		old = MemoryContextSwitchTo(percxt);
		/* one mover at a time per object; then its placement as it is now */
		meta = catalog_lock_object(lfirst(lc)) ? catalog_get_object(lfirst(lc), true) : NULL;
		for (int i = 0; meta && i < meta->data_shards + meta->parity_shards; i++)
		{
			char	   *from = pstrdup(meta->shards[i].provider);
			int			src = pool_load_index(&pl, from);
			int			dst = -1;
			char	   *why;
			Datum		values[6];
			bool		nulls[6] = {0};
			pg_uuid_t  *u;

			for (int p = 0; p < pl.n; p++)
			{
				bool		used = false;

				for (int j = 0; j < meta->data_shards + meta->parity_shards && !used; j++)
					used = strcmp(meta->shards[j].provider, pl.names[p]) == 0;
				if (!used && provider_lookup_by_name(pl.names[p], true) != NULL &&
					(dst < 0 || pl.shards[p] < pl.shards[dst]))
					dst = p;
			}
			/* moving must make things more even (or leave an unlisted provider) */
			if (dst < 0 || (src >= 0 && pl.shards[dst] + 1 >= pl.shards[src]))
			{
				if (src >= 0)
					continue;
				why = psprintf("no provider of pool \"%s\" is free for it", pool->name);
			}
			else
				why = move_one(meta, i, from, pl.names[dst]);
			if (why == NULL)
			{
				if (src >= 0)
					pl.shards[src]--;
				pl.shards[dst]++;
			}
			u = palloc(sizeof(pg_uuid_t));
			memcpy(u->data, meta->id, CODEC_OBJID_LEN);
			values[0] = UUIDPGetDatum(u);
			values[1] = Int32GetDatum(i);
			values[2] = DirectFunctionCall1(namein, CStringGetDatum(from));
			if (why == NULL)
				values[3] = DirectFunctionCall1(namein, CStringGetDatum(pl.names[dst]));
			else
				nulls[3] = true;
			values[4] = BoolGetDatum(why == NULL);
			if (why)
				values[5] = CStringGetTextDatum(why);
			else
				nulls[5] = true;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(percxt);
	}
	progress_end();
	return (Datum) 0;
}
