/*
 * placement_report.c — destor.placement_violation(pool, providers), behind
 * the views destor.placement_report and destor.placement_summary: the rule
 * an object's shards break, judged by the same code that places new
 * objects (src/object/placement.c), so what the report proves is what the
 * writer enforces.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "foreign/foreign.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "destor/catalog.h"
#include "destor/object.h"
#include "destor/provider.h"

PG_FUNCTION_INFO_V1(destor_placement_violation);

Datum
destor_placement_violation(PG_FUNCTION_ARGS)
{
	char	   *poolname = NameStr(*PG_GETARG_NAME(0));
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	ForeignServer *server = GetForeignServerByName(poolname, true);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	  **providers;
	char	   *why;
	Pool	   *pool;

	/* a report must not fail on an object whose pool was dropped */
	if (server == NULL ||
		strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "destor") != 0)
		PG_RETURN_TEXT_P(cstring_to_text(psprintf("pool \"%s\" does not exist", poolname)));
	pool = pool_lookup(poolname, false);

	deconstruct_array(arr, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, &elems, &nulls, &n);
	providers = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		providers[i] = nulls[i] ? NULL : NameStr(*DatumGetName(elems[i]));
	}
	why = placement_violation(pool, providers, n);
	if (why == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(why));
}

PG_FUNCTION_INFO_V1(destor_placement_mode_cost);

/*
 * destor.placement_mode_cost(pool name, mode text) → numeric: what the
 * pool's objects would cost a month (bytes × cost_per_gb_month, before the
 * division by 1e9) placed afresh under the mode with every other rule of
 * the pool — allowed_geo and both caps — by the same choice rebalance makes
 * (placement_target with nothing held).  NULL when the rules leave some
 * object no placement.  Objects whose geometry differs from the pool's are
 * placed with their own number of shards.
 */
Datum
destor_placement_mode_cost(PG_FUNCTION_ARGS)
{
	char	   *poolname = NameStr(*PG_GETARG_NAME(0));
	char	   *mode = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ForeignServer *server = GetForeignServerByName(poolname, true);
	Pool	   *pool;
	List	   *objects;
	MemoryContext percall;
	double		bytes_price = 0;
	bool		feasible = true;
	ListCell   *lc;

	if (server == NULL ||
		strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "destor") != 0)
		PG_RETURN_NULL();		/* not a pool: placement_cost gives no rows */
	pool = pool_lookup(poolname, false);

	if (pg_strcasecmp(mode, "spread") == 0)
		pool->placement = PLACEMENT_SPREAD;
	else if (pg_strcasecmp(mode, "cheapest") == 0)
		pool->placement = PLACEMENT_CHEAPEST;
	else if (pg_strcasecmp(mode, "fastest") == 0)
		pool->placement = PLACEMENT_FASTEST;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid placement mode \"%s\"", mode),
				 errhint("Valid modes are spread, cheapest and fastest.")));

	objects = catalog_list_objects(poolname);	/* their ids */
	percall = AllocSetContextCreate(CurrentMemoryContext, "destor placement cost",
									ALLOCSET_DEFAULT_SIZES);
	foreach(lc, objects)
	{
		const uint8 *id = (const uint8 *) lfirst(lc);
		ObjectMeta *meta;
		int			n;
		Pool		sized = *pool;
		char	  **none;
		char	  **out;
		uint64		shard_bytes = 0;
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(percall);
		meta = catalog_get_object(id, true);
		if (meta == NULL)
		{
			MemoryContextSwitchTo(old);
			continue;			/* deleted meanwhile */
		}
		n = meta->data_shards + meta->parity_shards;
		for (int i = 0; i < n; i++)
			shard_bytes = Max(shard_bytes, meta->shards[i].size);
		sized.data_shards = meta->data_shards;
		sized.parity_shards = meta->parity_shards;
		none = palloc0(sizeof(char *) * n);
		out = palloc0(sizeof(char *) * n);
		if (!placement_target(&sized, meta->id, none, n, out))
		{
			feasible = false;
			MemoryContextSwitchTo(old);
			break;
		}
		for (int i = 0; i < n; i++)
		{
			Provider   *p = provider_lookup_by_name(out[i], true);

			if (p)
				bytes_price += (double) shard_bytes * p->cost_per_gb_month;
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(percall);
	}
	MemoryContextDelete(percall);
	if (!feasible)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(DirectFunctionCall1(float8_numeric, Float8GetDatum(bytes_price)));
}
