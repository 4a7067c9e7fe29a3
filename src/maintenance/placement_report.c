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
#include "foreign/foreign.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "destor/object.h"

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
