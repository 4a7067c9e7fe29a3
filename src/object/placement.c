/*
 * placement.c — which providers may hold an object's shards.
 *
 * A pool's placement policy (its server options):
 *   allowed_geo              shards only on providers whose geo is listed;
 *   max_shards_per_geo       at most this many shards of one object in one
 *                            geo (with m or less, losing a jurisdiction loses
 *                            nothing);
 *   max_shards_per_operator  the same per operator: providers run by one
 *                            company fail together;
 *   placement                the order in which eligible providers are
 *                            preferred: spread (rotation by object id, so
 *                            shares are even), cheapest (cost_per_gb_month),
 *                            fastest (recent read latency).
 * Providers without a geo (operator) tag count as one unknown geo
 * (operator): independence that is not declared cannot be proven.
 *
 * A choice is n distinct eligible providers within both caps.  It is found
 * by a depth-first search over the providers in the policy's order, so the
 * first choice found is the best in that order, and one is found whenever
 * one exists (a pool lists a few dozen providers at most, n <= 24).
 *
 * The same rules judge existing objects (placement_violation, for
 * destor.placement_report, move_shards and rebalance), so what is reported
 * and what is enforced cannot drift apart.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "destor/object.h"
#include "destor/provider.h"

typedef struct Site
{
	const char *name;
	const char *geo;			/* NULL: not tagged */
	const char *op;				/* NULL: not tagged */
	double		cost;
	double		ms;				/* recent read latency, -1 unknown */
	bool		declared;
	bool		eligible;		/* declared and in allowed_geo */
	int			rank;			/* position in the rotation */
} Site;

static bool
same_tag(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static const char *
tag_name(const char *tag)
{
	return tag ? tag : "(untagged)";
}

static bool
geo_allowed(Pool *pool, const char *geo)
{
	if (pool->nallowed_geo == 0)
		return true;
	for (int i = 0; geo && i < pool->nallowed_geo; i++)
		if (strcmp(pool->allowed_geo[i], geo) == 0)
			return true;
	return false;
}

static char *
allowed_geo_text(Pool *pool)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < pool->nallowed_geo; i++)
		appendStringInfo(&buf, "%s%s", i ? "," : "", pool->allowed_geo[i]);
	return buf.data;
}

/* The site of one provider as declared now (not declared: not eligible). */
static void
site_load(Pool *pool, const char *name, Site *s)
{
	Provider   *p = provider_lookup_by_name(name, true);

	memset(s, 0, sizeof(Site));
	s->name = name;
	s->ms = -1;
	if (p == NULL)
		return;
	s->declared = true;
	s->geo = p->geo;
	s->op = p->operator_name;
	s->cost = p->cost_per_gb_month;
	s->eligible = geo_allowed(pool, p->geo);
	if (pool->placement == PLACEMENT_FASTEST)
		s->ms = provider_is_down(p) ? 1e12 : provider_recent_read_ms(p);
}

static int
cmp_sites(const void *a, const void *b, void *arg)
{
	const Site *x = *(Site *const *) a;
	const Site *y = *(Site *const *) b;
	Pool	   *pool = (Pool *) arg;

	if (pool->placement == PLACEMENT_CHEAPEST && x->cost != y->cost)
		return x->cost < y->cost ? -1 : 1;
	/* unknown latency first: a provider not read lately gets measured */
	if (pool->placement == PLACEMENT_FASTEST && x->ms != y->ms)
		return x->ms < y->ms ? -1 : 1;
	return x->rank - y->rank;
}

/* Would one more shard on s stay within the caps, next to chosen[0..n)? */
static bool
fits(Pool *pool, Site **chosen, int n, Site *s)
{
	int			geo = 1;
	int			op = 1;

	for (int i = 0; i < n; i++)
	{
		geo += same_tag(chosen[i]->geo, s->geo);
		op += same_tag(chosen[i]->op, s->op);
	}
	return (pool->max_shards_per_geo == 0 || geo <= pool->max_shards_per_geo) &&
		(pool->max_shards_per_operator == 0 || op <= pool->max_shards_per_operator);
}

static bool
search(Pool *pool, Site **order, int nsites, int from, Site **chosen, int depth, int need)
{
	if (depth == need)
		return true;
	for (int i = from; i <= nsites - (need - depth); i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (!order[i]->eligible || !fits(pool, chosen, depth, order[i]))
			continue;
		chosen[depth] = order[i];
		if (search(pool, order, nsites, i + 1, chosen, depth + 1, need))
			return true;
	}
	return false;
}

/*
 * The providers in the policy's order, starting the rotation at start.
 * The caller frees nothing: everything is in the current memory context.
 */
static Site **
ordered_sites(Pool *pool, int start)
{
	Site	   *sites = palloc(sizeof(Site) * pool->nproviders);
	Site	  **order = palloc(sizeof(Site *) * pool->nproviders);

	for (int i = 0; i < pool->nproviders; i++)
	{
		int			j = (start + i) % pool->nproviders;

		site_load(pool, pool->provider_names[j], &sites[i]);
		sites[i].rank = i;
		order[i] = &sites[i];
	}
	if (pool->placement != PLACEMENT_SPREAD)
		qsort_arg(order, pool->nproviders, sizeof(Site *), cmp_sites, pool);
	return order;
}

/* Why no choice exists: the counts that make it impossible. */
static void
raise_infeasible(Pool *pool, Site **order, const char *when)
{
	int			n = pool->data_shards + pool->parity_shards;
	int			eligible = 0;
	int			undeclared = 0;
	StringInfoData why;

	for (int i = 0; i < pool->nproviders; i++)
	{
		eligible += order[i]->eligible;
		undeclared += !order[i]->declared;
	}
	initStringInfo(&why);
	appendStringInfo(&why, "An object needs %d shards on %d different providers; of the pool's %d providers, %d %s eligible",
					 n, n, pool->nproviders, eligible, eligible == 1 ? "is" : "are");
	if (pool->nallowed_geo > 0)
		appendStringInfo(&why, " (allowed_geo '%s')", allowed_geo_text(pool));
	if (undeclared > 0)
		appendStringInfo(&why, ", %d not declared", undeclared);
	if (pool->max_shards_per_geo > 0 || pool->max_shards_per_operator > 0)
	{
		appendStringInfoString(&why, ", and at most");
		if (pool->max_shards_per_geo > 0)
			appendStringInfo(&why, " %d per geo", pool->max_shards_per_geo);
		if (pool->max_shards_per_geo > 0 && pool->max_shards_per_operator > 0)
			appendStringInfoString(&why, " and");
		if (pool->max_shards_per_operator > 0)
			appendStringInfo(&why, " %d per operator", pool->max_shards_per_operator);
		appendStringInfoString(&why, " may be used (untagged providers count as one geo or operator)");
	}
	appendStringInfoChar(&why, '.');
	for (int i = 0; i < pool->nproviders; i++)
		if (!order[i]->declared)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 pool->name ?
					 errmsg("pool \"%s\" cannot place %d shards: provider \"%s\" does not exist",
							pool->name, n, order[i]->name) :
					 errmsg("the pool cannot place %d shards: provider \"%s\" does not exist",
							n, order[i]->name),
					 errdetail_internal("%s", why.data),
					 errhint("Declare it with CREATE SERVER %s FOREIGN DATA WRAPPER destor_provider OPTIONS (...), or take it out of the pool's provider list.",
							 quote_identifier(order[i]->name))));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
			 pool->name ?
			 errmsg("pool \"%s\" cannot place %d shards under its placement rules%s",
					pool->name, n, when) :
			 errmsg("the pool cannot place %d shards under its placement rules%s", n, when),
			 errdetail_internal("%s", why.data),
			 errhint("Add eligible providers (tagged with options geo and operator), widen allowed_geo, raise max_shards_per_geo or max_shards_per_operator, or lower data_shards or parity_shards.")));
}

/*
 * The n providers of a new object, in shard order: shard i goes to out[i].
 * ERROR when the policy cannot be met: a write never puts a shard where the
 * policy forbids it.
 */
void
placement_choose(const uint8 *id, Pool *pool, char **out)
{
	int			n = pool->data_shards + pool->parity_shards;
	Site	  **order = ordered_sites(pool, ((id[0] << 8) | id[1]) % pool->nproviders);
	Site	  **chosen = palloc(sizeof(Site *) * n);

	if (!search(pool, order, pool->nproviders, 0, chosen, 0, n))
		raise_infeasible(pool, order, "");
	for (int i = 0; i < n; i++)
		out[i] = pstrdup(chosen[i]->name);
}

/*
 * At CREATE/ALTER SERVER of a pool: refuse a policy no object can meet.
 * A provider not declared yet (a restore creates servers in name order) is
 * left to the first write, which fails clearly if the rules still cannot
 * be met then.
 */
void
placement_check_feasible(Pool *pool)
{
	int			n = pool->data_shards + pool->parity_shards;
	Site	  **order = ordered_sites(pool, 0);
	Site	  **chosen = palloc(sizeof(Site *) * n);

	for (int i = 0; i < pool->nproviders; i++)
		if (!order[i]->declared)
			return;
	if (!search(pool, order, pool->nproviders, 0, chosen, 0, n))
		raise_infeasible(pool, order, "");
}

/*
 * How far the providers of an object's shards are from the policy: one
 * point per shard on a provider the pool does not list, not declared, or
 * outside allowed_geo, per shard sharing a provider with another, and per
 * shard above a geo or operator cap.  0: compliant.  move_shards and
 * rebalance accept a move only if it does not raise this.  A provider the
 * pool does not list counts only with count_unlisted: move_shards may be
 * told to put a shard on any provider (an operator's way out when the
 * pool's own are full), but never outside allowed_geo or above a cap.
 */
int
placement_excess(Pool *pool, char **providers, int n, bool count_unlisted)
{
	Site	   *s = palloc(sizeof(Site) * n);
	int			excess = 0;

	for (int i = 0; i < n; i++)
	{
		bool		listed = false;

		site_load(pool, providers[i], &s[i]);
		for (int j = 0; j < pool->nproviders && !listed; j++)
			listed = strcmp(pool->provider_names[j], providers[i]) == 0;
		if ((!listed && count_unlisted) || !s[i].eligible)
			excess++;
		for (int j = 0; j < i; j++)
			if (strcmp(providers[j], providers[i]) == 0)
			{
				excess++;
				break;
			}
	}
	for (int i = 0; i < n; i++)
	{
		int			geo = 0;
		int			op = 0;
		bool		first_geo = true;
		bool		first_op = true;

		for (int j = 0; j < n; j++)
		{
			geo += same_tag(s[j].geo, s[i].geo);
			op += same_tag(s[j].op, s[i].op);
			if (j < i && same_tag(s[j].geo, s[i].geo))
				first_geo = false;
			if (j < i && same_tag(s[j].op, s[i].op))
				first_op = false;
		}
		if (first_geo && pool->max_shards_per_geo > 0 && geo > pool->max_shards_per_geo)
			excess += geo - pool->max_shards_per_geo;
		if (first_op && pool->max_shards_per_operator > 0 && op > pool->max_shards_per_operator)
			excess += op - pool->max_shards_per_operator;
	}
	pfree(s);
	return excess;
}

/*
 * The first placement rule an object's shards break, in words, or NULL
 * when they keep every rule.
 */
char *
placement_violation(Pool *pool, char **providers, int n)
{
	Site	   *s = palloc(sizeof(Site) * n);

	for (int i = 0; i < n; i++)
	{
		bool		listed = false;

		site_load(pool, providers[i], &s[i]);
		for (int j = 0; j < pool->nproviders && !listed; j++)
			listed = strcmp(pool->provider_names[j], providers[i]) == 0;
		if (!listed)
			return psprintf("shard %d is on provider \"%s\", which the pool does not list", i, providers[i]);
		if (!s[i].declared)
			return psprintf("shard %d is on provider \"%s\", which is not declared", i, providers[i]);
		if (!s[i].eligible)
			return psprintf("shard %d is on provider \"%s\" in geo \"%s\", outside allowed_geo '%s'",
							i, providers[i], tag_name(s[i].geo), allowed_geo_text(pool));
		for (int j = 0; j < i; j++)
			if (strcmp(providers[j], providers[i]) == 0)
				return psprintf("shards %d and %d are both on provider \"%s\"", j, i, providers[i]);
	}
	for (int i = 0; i < n; i++)
	{
		int			geo = 0;
		int			op = 0;

		for (int j = 0; j < n; j++)
		{
			geo += same_tag(s[j].geo, s[i].geo);
			op += same_tag(s[j].op, s[i].op);
		}
		if (pool->max_shards_per_geo > 0 && geo > pool->max_shards_per_geo)
			return psprintf("%d shards in geo \"%s\", more than max_shards_per_geo %d",
							geo, tag_name(s[i].geo), pool->max_shards_per_geo);
		if (pool->max_shards_per_operator > 0 && op > pool->max_shards_per_operator)
			return psprintf("%d shards with operator \"%s\", more than max_shards_per_operator %d",
							op, tag_name(s[i].op), pool->max_shards_per_operator);
	}
	return NULL;
}
