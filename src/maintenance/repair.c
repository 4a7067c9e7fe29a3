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
 *
 * Checking a shard asks its provider, so repair (dry run or not) is a check
 * of every provider it reaches, as check_provider() is: each one's answer
 * is recorded as the provider's last check (destor.provider_status), and a
 * provider that could not be reached is marked down at once, one that
 * answered is up again.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "destor/progress.h"
#include "destor/catalog.h"
#include "destor/object.h"

PG_FUNCTION_INFO_V1(destor_repair);

static char *choose_target(ObjectMeta *meta, const char *from, List **loads, MemoryContext keep);
static char *move_one(ObjectMeta *meta, int shard, const char *from, const char *to);

/* The object's pool, or NULL when it was dropped (its objects still repair). */
static Pool *
pool_of(ObjectMeta *meta)
{
	ForeignServer *server = GetForeignServerByName(meta->pool, true);

	if (server == NULL || strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "destor") != 0)
		return NULL;
	return pool_lookup(meta->pool, false);
}

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

/*
 * note_provider_checks — what checking an object's shards found of their
 * providers: reached (whatever the shard's state) or not.  A shard whose
 * provider no longer exists says nothing about any provider.
 */
static void
note_provider_checks(ObjectMeta *meta, ShardCheck *checks)
{
	for (int i = 0; i < meta->data_shards + meta->parity_shards; i++)
	{
		Provider   *p = provider_lookup_by_name(meta->shards[i].provider, true);

		if (p != NULL)
			provider_stats_note_check(p, checks[i].found != SHARD_FOUND_UNREACHABLE);
	}
}

Datum
destor_repair(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *pool = PG_ARGISNULL(0) ? NULL : pstrdup(NameStr(*PG_GETARG_NAME(0)));
	bool		verify = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	bool		dry_run = PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2);
	MemoryContext percxt;
	MemoryContext callcxt = CurrentMemoryContext;
	List	   *ids;
	List	   *loads = NIL;
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
		Pool	   *opool;
		bool	   *keep_out;
		bool		read_only;

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
		/*
		 * A bad shard on a provider the pool's rules no longer allow is not
		 * written there again: it is rebuilt on one they allow.
		 */
		/* a read-only pool's objects are checked, never rebuilt */
		read_only = pool_name_read_only(meta->pool);
		opool = dry_run || read_only ? NULL : pool_of(meta);
		keep_out = palloc0(sizeof(bool) * (meta->data_shards + meta->parity_shards));
		for (int i = 0; opool && i < meta->data_shards + meta->parity_shards; i++)
			keep_out[i] = strcmp(meta->shards[i].provider, "(unknown)") != 0 &&
				!placement_eligible(opool, meta->shards[i].provider);
		checks = object_check_and_repair(meta, verify, !dry_run && !read_only, keep_out,
										 &unreadable);
		for (int i = 0; opool && i < meta->data_shards + meta->parity_shards; i++)
		{
			ShardCheck *c = &checks[i];
			char	   *from = meta->shards[i].provider;
			char	   *to;
			char	   *why;

			if (!keep_out[i] || c->found == SHARD_FOUND_OK || c->found == SHARD_FOUND_UNREACHABLE)
				continue;
			to = choose_target(meta, from, &loads, callcxt);
			if (to == NULL)
			{
				c->detail = psprintf("provider \"%s\" is outside the placement rules of pool \"%s\", and no provider they allow is free for it",
									 from, opool->name);
				continue;
			}
			from = pstrdup(from);
			why = move_one(meta, i, from, to);
			if (why == NULL)
			{
				c->rebuilt = true;
				c->detail = psprintf("rebuilt on provider \"%s\": \"%s\" is outside the placement rules of pool \"%s\"",
									 to, from, opool->name);
			}
			else
				c->detail = why;
		}
		note_provider_checks(meta, checks);
		for (int i = 0; i < meta->data_shards + meta->parity_shards; i++)
		{
			ShardCheck *c = &checks[i];
			Datum		values[6];
			bool		nulls[6] = {0};

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
			values[0] = object_id_datum(meta->id);
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

static bool
shard_on(ObjectMeta *meta, const char *provider)
{
	for (int j = 0; j < meta->data_shards + meta->parity_shards; j++)
		if (strcmp(meta->shards[j].provider, provider) == 0)
			return true;
	return false;
}

/* The providers of an object's shards, with shard "shard" on "to" if to is not NULL. */
static char **
shard_providers(ObjectMeta *meta, int shard, const char *to)
{
	int			n = meta->data_shards + meta->parity_shards;
	char	  **prov = palloc(sizeof(char *) * n);

	for (int i = 0; i < n; i++)
		prov[i] = (i == shard && to) ? (char *) to : meta->shards[i].provider;
	return prov;
}

/*
 * NULL if moving the shard on provider "from" to "to" keeps the object as
 * close to its pool's placement rules as it is (placement_excess does not
 * rise), else why not.
 */
static char *
move_breaks_policy(Pool *pool, ObjectMeta *meta, const char *from, const char *to,
				   bool count_unlisted)
{
	int			n = meta->data_shards + meta->parity_shards;
	int			shard = -1;
	char	  **after;

	for (int i = 0; i < n && shard < 0; i++)
		if (strcmp(meta->shards[i].provider, from) == 0)
			shard = i;
	/* a target holding a shard already is refused by move_one, saying so */
	if (shard < 0 || shard_on(meta, to))
		return NULL;
	after = shard_providers(meta, shard, to);
	if (!placement_eligible(pool, to))
		return psprintf("moving it to \"%s\" would break the placement rules of pool \"%s\": %s",
						to, pool->name, placement_violation(pool, after, n));
	if (placement_excess(pool, after, n, count_unlisted) <=
		placement_excess(pool, shard_providers(meta, -1, NULL), n, count_unlisted))
		return NULL;
	return psprintf("moving it to \"%s\" would break the placement rules of pool \"%s\": %s",
					to, pool->name, placement_violation(pool, after, n));
}

/* The least-loaded provider of the object's pool that holds none of its
 * shards and keeps its placement rules. */
static char *
choose_target(ObjectMeta *meta, const char *from, List **loads, MemoryContext keep)
{
	Pool	   *pool = pool_lookup(meta->pool, false);
	int			n = meta->data_shards + meta->parity_shards;
	int			shard = -1;
	Load	   *best = NULL;
	int			best_excess = 0;
	MemoryContext old;

	for (int i = 0; i < n && shard < 0; i++)
		if (strcmp(meta->shards[i].provider, from) == 0)
			shard = i;
	for (int p = 0; p < pool->nproviders; p++)
	{
		const char *name = pool->provider_names[p];
		bool		used = strcmp(name, from) == 0;
		int			excess;
		Load	   *l;

		for (int i = 0; i < n && !used; i++)
			used = strcmp(meta->shards[i].provider, name) == 0;
		if (used || !placement_eligible(pool, name) ||
			move_breaks_policy(pool, meta, from, name, true) != NULL)
			continue;
		/* the target that brings the object closest to the rules, then the least loaded */
		excess = shard < 0 ? 0 : placement_excess(pool, shard_providers(meta, shard, name), n, true);
		old = MemoryContextSwitchTo(keep);
		l = load_of(loads, name);
		MemoryContextSwitchTo(old);
		if (best == NULL || excess < best_excess ||
			(excess == best_excess && l->shards < best->shards))
		{
			best = l;
			best_excess = excess;
		}
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
		if (pool_name_read_only(meta->pool))
			why = psprintf("pool \"%s\" is declared read-only", meta->pool);
		else if (strcmp(meta->shards[shard].provider, from) != 0)
			why = pstrdup("the shard was moved by another session meanwhile");
		else if (target == NULL)
		{
			target = choose_target(meta, from, &loads, callcxt);
			if (target == NULL)
				why = psprintf("no provider of pool \"%s\" is free for it; add one to the pool or name one",
							   meta->pool);
		}
		if (why == NULL && to != NULL)
			why = move_breaks_policy(pool_lookup(meta->pool, false), meta, from, target, false);
		if (why == NULL)
			why = move_one(meta, shard, from, target);
		values[0] = object_id_datum(meta->id);
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

static void
rebalance_count(PoolLoad *pl, const char *from, const char *to)
{
	int			src = pool_load_index(pl, from);
	int			dst = pool_load_index(pl, to);

	if (src >= 0)
		pl->shards[src]--;
	if (dst >= 0)
		pl->shards[dst]++;
}

/* One row of rebalance's result: a shard moved (why NULL) or not, or (shard
 * -1) an object that cannot be brought under the placement rules. */
static void
rebalance_row(ReturnSetInfo *rsinfo, ObjectMeta *meta, int shard, const char *from,
			  const char *to, const char *why)
{
	Datum		values[6];
	bool		nulls[6] = {0};

	values[0] = object_id_datum(meta->id);
	values[1] = Int32GetDatum(shard);
	nulls[1] = shard < 0;
	if (from)
		values[2] = DirectFunctionCall1(namein, CStringGetDatum(from));
	else
		nulls[2] = true;
	if (to)
		values[3] = DirectFunctionCall1(namein, CStringGetDatum(to));
	else
		nulls[3] = true;
	values[4] = BoolGetDatum(why == NULL);
	if (why)
		values[5] = CStringGetTextDatum(why);
	else
		nulls[5] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * Move the object's shards that are not on providers of target[] (its new
 * placement, n of them) to the target providers holding none of them, one
 * row each, until one fails or *moves reaches max_moves.
 */
static void
move_to_placement(ReturnSetInfo *rsinfo, PoolLoad *pl, ObjectMeta *meta, char **target,
				  int64 *moves, int64 max_moves)
{
	int			n = meta->data_shards + meta->parity_shards;
	int			next = 0;

	for (int i = 0; i < n && *moves < max_moves; i++)
	{
		char	   *from = pstrdup(meta->shards[i].provider);
		bool		kept = false;
		char	   *why;

		for (int t = 0; t < n && !kept; t++)
			kept = strcmp(target[t], from) == 0;
		if (kept)
			continue;
		/* the next target provider that holds none of its shards */
		while (next < n && shard_on(meta, target[next]))
			next++;
		if (next >= n)
			break;
		why = move_one(meta, i, from, target[next]);
		rebalance_row(rsinfo, meta, i, from, why ? NULL : target[next], why);
		if (why != NULL)
			break;
		rebalance_count(pl, from, target[next]);
		(*moves)++;
	}
}

Datum
destor_rebalance(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Pool	   *pool;
	int64		max_moves = PG_ARGISNULL(1) ? PG_INT64_MAX : PG_GETARG_INT32(1);
	int64		moves = 0;
	MemoryContext percxt;
	PoolLoad	pl;
	List	   *ids;
	ListCell   *lc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the pool to rebalance must be given")));
	if (max_moves < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_moves must be at least 1"),
				 errhint("Leave it NULL for no limit.")));
	pool = pool_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	pool_check_writable(pool, "rebalance");
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

		int			n;
		int			excess;

		if (moves >= max_moves)
			break;				/* the rest for the next call */

		CHECK_FOR_INTERRUPTS();
		progress_add(0, 1);
		old = MemoryContextSwitchTo(percxt);
		/* one mover at a time per object; then its placement as it is now */
		meta = catalog_lock_object(lfirst(lc)) ? catalog_get_object(lfirst(lc), true) : NULL;
		if (meta == NULL)
		{
			MemoryContextSwitchTo(old);
			MemoryContextReset(percxt);
			continue;
		}
		n = meta->data_shards + meta->parity_shards;

		/*
		 * First the pool's placement rules: an object that breaks them
		 * gets the placement the writer's complete search finds, keeping
		 * as many of its shards where they are as it can, and its other
		 * shards move there one by one.
		 */
		excess = placement_excess(pool, shard_providers(meta, -1, NULL), n, true);
		if (excess > 0)
		{
			char	  **current = shard_providers(meta, -1, NULL);
			char	  **target = palloc(sizeof(char *) * n);
			bool		unrecorded = false;

			for (int i = 0; i < n; i++)
				unrecorded |= strcmp(current[i], "(unknown)") == 0;
			if (unrecorded)
				rebalance_row(rsinfo, meta, -1, NULL, NULL,
							  pstrdup("a shard of it has no provider recorded in destor.shards; the catalog is damaged"));
			else if (!placement_target(pool, meta->id, current, n, target))
				rebalance_row(rsinfo, meta, -1, NULL, NULL,
							  psprintf("no placement meets the rules of pool \"%s\" (it breaks them: %s)",
									   pool->name, placement_violation(pool, current, n)));
			else
			{
				move_to_placement(rsinfo, &pl, meta, target, &moves, max_moves);
				excess = placement_excess(pool, shard_providers(meta, -1, NULL), n, true);
			}
		}

		/*
		 * A 'cheapest' pool after a price change: the object moves to the
		 * providers a new object would get, when they cost less than where
		 * it is.  Its loads are not evened out: price, not balance, is the
		 * pool's choice.
		 */
		if (pool->placement == PLACEMENT_CHEAPEST)
		{
			char	  **target = palloc(sizeof(char *) * n);

			if (excess == 0 && moves < max_moves &&
				n == pool->data_shards + pool->parity_shards &&
				placement_cheaper(pool, meta->id, shard_providers(meta, -1, NULL), n, target))
				move_to_placement(rsinfo, &pl, meta, target, &moves, max_moves);
			excess = -1;		/* no evening out */
		}

		/* Then even shares, by moves that keep the rules. */
		for (int i = 0; excess == 0 && moves < max_moves && i < n; i++)
		{
			char	   *from = pstrdup(meta->shards[i].provider);
			int			src = pool_load_index(&pl, from);
			int			dst = -1;
			char	   *why;

			for (int p = 0; p < pl.n; p++)
			{
				if (!shard_on(meta, pl.names[p]) && provider_lookup_by_name(pl.names[p], true) != NULL &&
					(dst < 0 || pl.shards[p] < pl.shards[dst]) &&
					placement_excess(pool, shard_providers(meta, i, pl.names[p]), n, true) == 0)
					dst = p;
			}
			/* moving must make things more even */
			if (dst < 0 || src < 0 || pl.shards[dst] + 1 >= pl.shards[src])
				continue;
			why = move_one(meta, i, from, pl.names[dst]);
			rebalance_row(rsinfo, meta, i, from, why ? NULL : pl.names[dst], why);
			if (why == NULL)
				rebalance_count(&pl, from, pl.names[dst]);
			if (why == NULL && ++moves >= max_moves)
				break;
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(percxt);
	}
	progress_end();
	return (Datum) 0;
}
