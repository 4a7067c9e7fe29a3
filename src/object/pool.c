/*
 * pool.c — pools: which providers an object's shards go to, and how many
 * data and parity shards it has.  A pool is a foreign server of the destor
 * wrapper; its options are validated here against a static table.
 */
#include "postgres.h"

#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "destor/object.h"

#define POOL_DEFAULT_DATA_SHARDS	4
#define POOL_DEFAULT_PARITY_SHARDS	2

typedef struct PoolOption
{
	const char *name;
	Oid			context;
} PoolOption;

static const PoolOption pool_options[] = {
	{"providers", ForeignServerRelationId},
	{"data_shards", ForeignServerRelationId},
	{"parity_shards", ForeignServerRelationId},
	{"write_quorum", ForeignServerRelationId},
	{"allowed_geo", ForeignServerRelationId},
	{"max_shards_per_geo", ForeignServerRelationId},
	{"max_shards_per_operator", ForeignServerRelationId},
	{"placement", ForeignServerRelationId},
	{"evacuate_failing", ForeignServerRelationId},
	{"mode", ForeignServerRelationId},
	{NULL, InvalidOid}
};

static char *
pool_valid_option_list(Oid context)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const PoolOption *o = pool_options; o->name; o++)
		if (o->context == context)
			appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", o->name);
	return buf.len > 0 ? buf.data : "(none)";
}

/* An integer option in [min, max], or an ERROR that says the range
 * (shared by pool and table options). */
int
option_parse_int(DefElem *def, int min, int max)
{
	char	   *val = defGetString(def);
	int			result;

	if (!parse_int(val, &result, 0, NULL) || result < min || result > max)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", def->defname, val),
				 errhint("Give an integer between %d and %d.", min, max)));
	return result;
}

/* Split "p1, p2,p3" into names; ERROR on an empty entry or a duplicate. */
static List *
pool_parse_providers(const char *val)
{
	char	   *copy = pstrdup(val);
	List	   *names = NIL;
	ListCell   *lc;
	ListCell   *lc2;

	if (!SplitIdentifierString(copy, ',', &names) || names == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid provider list \"%s\"", val),
				 errhint("List provider server names separated by commas, such as 'p1,p2,p3'.")));
	foreach(lc, names)
	{
		for_each_cell(lc2, names, lnext(names, lc))
		{
			if (strcmp(lfirst(lc), lfirst(lc2)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("provider \"%s\" is named twice in the provider list",
								(char *) lfirst(lc)),
						 errdetail("Each shard of an object must go to a different provider."),
						 errhint("Name every provider once.")));
		}
	}
	return names;
}

/* "EU, CH" into tags; ERROR on an empty entry. */
static List *
pool_parse_geo_list(const char *val)
{
	char	   *copy = pstrdup(val);
	List	   *tags = NIL;
	ListCell   *lc;

	/* tags are compared as written (geo 'EU' matches 'EU', not 'eu') */
	if (!SplitGUCList(copy, ',', &tags) || tags == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"allowed_geo\": \"%s\"", val),
				 errhint("List geo tags separated by commas, such as 'EU,CH'.")));
	foreach(lc, tags)
		if (((char *) lfirst(lc))[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"allowed_geo\": \"%s\"", val),
					 errdetail("The list has an empty entry."),
					 errhint("List geo tags separated by commas, such as 'EU,CH'.")));
	return tags;
}

/* Parse and check a pool's options; also used by the validator. */
static void
pool_apply_options(Pool *pool, List *options, Oid catalog)
{
	ListCell   *lc;
	List	   *names = NIL;
	List	   *geos = NIL;
	bool		have_quorum = false;

	pool->data_shards = POOL_DEFAULT_DATA_SHARDS;
	pool->parity_shards = POOL_DEFAULT_PARITY_SHARDS;
	pool->placement = PLACEMENT_SPREAD;
	pool->mode = POOL_MODE_READ_WRITE;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		bool		known = false;

		for (const PoolOption *o = pool_options; o->name; o++)
			if (o->context == catalog && strcmp(o->name, def->defname) == 0)
				known = true;
		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\" for a destor pool", def->defname),
					 errhint("Valid options in this context are: %s.",
							 pool_valid_option_list(catalog))));

		if (strcmp(def->defname, "providers") == 0)
			names = pool_parse_providers(defGetString(def));
		else if (strcmp(def->defname, "data_shards") == 0)
			pool->data_shards = option_parse_int(def, 1, CODEC_RS_MAX_DATA);
		else if (strcmp(def->defname, "parity_shards") == 0)
			pool->parity_shards = option_parse_int(def, 0, CODEC_RS_MAX_PARITY);
		else if (strcmp(def->defname, "write_quorum") == 0)
		{
			pool->write_quorum = option_parse_int(def, 1, CODEC_RS_MAX_SHARDS);
			have_quorum = true;
		}
		else if (strcmp(def->defname, "allowed_geo") == 0)
			geos = pool_parse_geo_list(defGetString(def));
		else if (strcmp(def->defname, "max_shards_per_geo") == 0)
			pool->max_shards_per_geo = option_parse_int(def, 1, CODEC_RS_MAX_SHARDS);
		else if (strcmp(def->defname, "max_shards_per_operator") == 0)
			pool->max_shards_per_operator = option_parse_int(def, 1, CODEC_RS_MAX_SHARDS);
		else if (strcmp(def->defname, "placement") == 0)
		{
			char	   *val = defGetString(def);

			if (strcmp(val, "spread") == 0)
				pool->placement = PLACEMENT_SPREAD;
			else if (strcmp(val, "cheapest") == 0)
				pool->placement = PLACEMENT_CHEAPEST;
			else if (strcmp(val, "fastest") == 0)
				pool->placement = PLACEMENT_FASTEST;
			else
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"placement\": \"%s\"", val),
						 errhint("Valid values are: spread, cheapest, fastest.")));
		}
		else if (strcmp(def->defname, "mode") == 0)
		{
			char	   *val = defGetString(def);

			if (strcmp(val, "read_write") == 0)
				pool->mode = POOL_MODE_READ_WRITE;
			else if (strcmp(val, "exclusive") == 0)
				pool->mode = POOL_MODE_EXCLUSIVE;
			else if (strcmp(val, "read_only") == 0)
				pool->mode = POOL_MODE_READ_ONLY;
			else
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"mode\": \"%s\"", val),
						 errhint("Valid values are: read_write, exclusive, read_only.")));
		}
		else if (strcmp(def->defname, "evacuate_failing") == 0)
		{
			/* read by the maintenance worker (worker.c) from the options */
			bool		on;

			if (!parse_bool(defGetString(def), &on))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"evacuate_failing\": \"%s\"", defGetString(def)),
						 errhint("Valid values are: on, off.")));
		}
	}

	if (catalog != ForeignServerRelationId)
		return;

	if (names == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("a destor pool needs the option \"providers\""),
				 errhint("For example: OPTIONS (providers 'p1,p2,p3,p4,p5,p6', data_shards '4', parity_shards '2').")));

	if (pool->data_shards + pool->parity_shards > list_length(names))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("a pool with %d data and %d parity shards needs at least %d providers",
						pool->data_shards, pool->parity_shards,
						pool->data_shards + pool->parity_shards),
				 errdetail("The provider list names %d.", list_length(names)),
				 errhint("Name more providers, or lower data_shards or parity_shards.")));

	if (!have_quorum)
		pool->write_quorum = pool->data_shards + (pool->parity_shards + 1) / 2;
	else if (pool->write_quorum < pool->data_shards ||
			 pool->write_quorum > pool->data_shards + pool->parity_shards)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("write_quorum %d is outside the range %d to %d",
						pool->write_quorum, pool->data_shards,
						pool->data_shards + pool->parity_shards),
				 errdetail("An object is readable only if at least data_shards shards were written."),
				 errhint("Choose a write_quorum between data_shards and data_shards + parity_shards.")));

	pool->nproviders = list_length(names);
	pool->provider_names = palloc(sizeof(char *) * pool->nproviders);
	for (int i = 0; i < pool->nproviders; i++)
		pool->provider_names[i] = pstrdup(list_nth(names, i));
	pool->nallowed_geo = list_length(geos);
	pool->allowed_geo = palloc(sizeof(char *) * Max(pool->nallowed_geo, 1));
	for (int i = 0; i < pool->nallowed_geo; i++)
		pool->allowed_geo[i] = pstrdup(list_nth(geos, i));
}

/*
 * A pool writes through its providers' credentials (the user's mapping, or
 * the PUBLIC one): whoever declares or uses a pool must have USAGE on each
 * of its providers, as on any foreign server he reaches.  Providers not
 * declared (yet) are passed over: a restore may create the pool first, and
 * using it fails on them anyway.
 */
static void
pool_check_provider_usage(Pool *pool)
{
	for (int i = 0; i < pool->nproviders; i++)
	{
		ForeignServer *server = GetForeignServerByName(pool->provider_names[i], true);
		AclResult	aclresult;

		if (server == NULL)
			continue;
		aclresult = pg_foreign_server_aclcheck(server->serverid, GetUserId(), ACL_USAGE);
		if (aclresult != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for foreign server %s", server->servername),
					 pool->name ?
					 errdetail("Pool \"%s\" stores shards on provider \"%s\"; using a pool needs USAGE on each of its providers.",
							   pool->name, server->servername) :
					 errdetail("The pool stores shards on provider \"%s\"; declaring a pool needs USAGE on each of its providers.",
							   server->servername),
					 errhint("Ask the provider's owner: GRANT USAGE ON FOREIGN SERVER %s TO %s;",
							 quote_identifier(server->servername),
							 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
	}
}

void
pool_validate_options(List *options, Oid catalog)
{
	Pool		pool = {0};

	pool_apply_options(&pool, options, catalog);
	if (catalog == ForeignServerRelationId)
	{
		pool_check_provider_usage(&pool);
		placement_check_feasible(&pool);
	}
}

/*
 * pool_is_destor_server: whether the server belongs to the destor wrapper,
 * that is, is a pool (servers of destor_provider are providers).
 */
bool
pool_is_destor_server(Oid serverid)
{
	ForeignServer *server = GetForeignServer(serverid);

	return strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "destor") == 0;
}

Pool *
pool_lookup(const char *name, bool check_usage)
{
	ForeignServer *server = GetForeignServerByName(name, true);
	Pool	   *pool;

	if (server == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pool \"%s\" does not exist", name),
				 errhint("Declare it with CREATE SERVER %s FOREIGN DATA WRAPPER destor OPTIONS (providers '...').",
						 quote_identifier(name))));
	if (!pool_is_destor_server(server->serverid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not a destor pool", name),
				 errhint("Pools are servers of the foreign-data wrapper destor.")));
	if (check_usage)
	{
		AclResult	aclresult = pg_foreign_server_aclcheck(server->serverid, GetUserId(), ACL_USAGE);

		if (aclresult != ACLCHECK_OK)
			aclcheck_error(aclresult, OBJECT_FOREIGN_SERVER, server->servername);
	}

	pool = palloc0(sizeof(Pool));
	pool->serverid = server->serverid;
	pool->name = pstrdup(server->servername);
	pool_apply_options(pool, server->options, ForeignServerRelationId);
	if (check_usage)
		pool_check_provider_usage(pool);
	return pool;
}

/*
 * pool_check_writable — refuse action (a phrase: "write to", "rebalance")
 * on a pool declared mode 'read_only': such a database reads a pool another
 * one writes, and must never change what is on its providers.
 */
void
pool_check_writable(Pool *pool, const char *action)
{
	if (pool->mode == POOL_MODE_READ_ONLY)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot %s pool \"%s\": it is declared read-only", action, pool->name),
				 errdetail("A pool with mode 'read_only' is read by this database and written by another; nothing here writes to or deletes from its providers."),
				 errhint("To make this database the pool's writer, ALTER SERVER %s OPTIONS (SET mode 'exclusive') and run destor.take_over_pool('%s').",
						 quote_identifier(pool->name), pool->name)));
}

bool
pool_name_read_only(const char *name)
{
	ForeignServer *server = GetForeignServerByName(name, true);

	if (server == NULL || !pool_is_destor_server(server->serverid))
		return false;
	return pool_lookup(name, false)->mode == POOL_MODE_READ_ONLY;
}
