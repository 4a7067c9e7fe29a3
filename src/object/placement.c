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

#include <math.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "foreign/foreign.h"
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
	bool		declared;		/* a server of destor_provider */
	bool		foreign;		/* a server of another wrapper */
	bool		eligible;		/* declared and in allowed_geo */
	bool		failing;		/* failing its audits: no new objects */
	int			rank;			/* position in the object's order */
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
	ForeignServer *server = GetForeignServerByName(name, true);
	Provider   *p;

	memset(s, 0, sizeof(Site));
	s->name = name;
	s->ms = -1;
	if (server == NULL)
		return;
	/* a server of another wrapper holds nothing of ours and may take nothing */
	if (strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "destor_provider") != 0)
	{
		s->foreign = true;
		return;
	}
	p = provider_lookup(server->serverid);
	s->declared = true;
	s->geo = p->geo;
	s->op = p->operator_name;
	s->cost = p->cost_per_gb_month;
	s->eligible = geo_allowed(pool, p->geo);
	s->failing = provider_is_failing(server->serverid);
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

/*
 * At most how many more shards order[from..] can take next to
 * chosen[0..depth): per geo (operator) group no more than its cap leaves
 * room for.  An upper bound (the caps interact), so a search whose bound
 * falls short of what it still needs is cut off: this keeps the search
 * from trying every subset of a large pool that cannot meet its rules.
 */
static int
room_bound(Pool *pool, Site **order, int nsites, int from, Site **chosen, int depth, bool by_geo)
{
	int			cap = by_geo ? pool->max_shards_per_geo : pool->max_shards_per_operator;
	int			room = 0;

	for (int i = from; i < nsites; i++)
	{
		const char *tag = by_geo ? order[i]->geo : order[i]->op;
		int			used = 0;
		int			avail = 0;
		bool		first = true;

		if (!order[i]->eligible)
			continue;
		if (cap == 0)
		{
			room++;
			continue;
		}
		/* count each group once, at its first remaining member */
		for (int j = from; j < i && first; j++)
			if (order[j]->eligible && same_tag(by_geo ? order[j]->geo : order[j]->op, tag))
				first = false;
		if (!first)
			continue;
		for (int j = i; j < nsites; j++)
			if (order[j]->eligible && same_tag(by_geo ? order[j]->geo : order[j]->op, tag))
				avail++;
		for (int j = 0; j < depth; j++)
			if (same_tag(by_geo ? chosen[j]->geo : chosen[j]->op, tag))
				used++;
		room += Min(avail, Max(cap - used, 0));
	}
	return room;
}

/* Nodes a search may visit before it gives up (a pool that hard is refused). */
#define SEARCH_BUDGET 200000

static bool
search(Pool *pool, Site **order, int nsites, int from, Site **chosen, int depth, int need,
	   long *budget)
{
	if (depth == need)
		return true;
	if (--(*budget) < 0)
		return false;
	if (room_bound(pool, order, nsites, from, chosen, depth, true) < need - depth ||
		room_bound(pool, order, nsites, from, chosen, depth, false) < need - depth)
		return false;
	for (int i = from; i <= nsites - (need - depth); i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (!order[i]->eligible || !fits(pool, chosen, depth, order[i]))
			continue;
		chosen[depth] = order[i];
		if (search(pool, order, nsites, i + 1, chosen, depth + 1, need, budget))
			return true;
		if (*budget < 0)
			return false;
	}
	return false;
}

/* A choice of need providers from order, or false (*budget < 0: gave up). */
static bool
choose(Pool *pool, Site **order, int nsites, Site **chosen, int need, long *budget)
{
	*budget = SEARCH_BUDGET;
	return search(pool, order, nsites, 0, chosen, 0, need, budget);
}

/* splitmix64: cheap, and good enough to spread load */
static uint64
next_random(uint64 *state)
{
	uint64		z = (*state += UINT64CONST(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64CONST(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/*
 * Spread under max_shards_per_geo: taking the first providers of a random
 * order that fit would over-use the geos that fill up last (a small geo
 * next to a capped large one).  Instead each geo's share of an object is
 * worked out first — its providers' share of the eligible ones, capped,
 * what a cap cuts off handed to the other geos (water-filling) — and
 * rounded per object with one random offset (systematic rounding, so the
 * counts add up to n and each geo gets its share on average); that many of
 * each geo's providers, in the shuffled order, move to the front.  The
 * search still has the final say (operator caps).
 */
static void
spread_front(Pool *pool, Site **order, uint64 rnd)
{
	int			n = pool->data_shards + pool->parity_shards;
	int			np = pool->nproviders;
	int			ng = 0;
	const char **tags = palloc(sizeof(char *) * np);
	int		   *size = palloc0(sizeof(int) * np);
	double	   *share = palloc0(sizeof(double) * np);
	bool	   *fixed = palloc0(sizeof(bool) * np);
	int		   *take = palloc0(sizeof(int) * np);
	int			eligible = 0;
	double		u = (double) (rnd >> 11) / (double) (UINT64CONST(1) << 53);
	double		cum = 0;
	Site	  **front = palloc(sizeof(Site *) * np);
	Site	  **back = palloc(sizeof(Site *) * np);
	int			nf = 0,
				nb = 0;

	if (pool->max_shards_per_geo == 0)
		return;					/* a uniform shuffle already spreads evenly */
	for (int i = 0; i < np; i++)
	{
		int			g;

		if (!order[i]->eligible)
			continue;
		eligible++;
		for (g = 0; g < ng; g++)
			if (same_tag(tags[g], order[i]->geo))
				break;
		if (g == ng)
			tags[ng++] = order[i]->geo;
		size[g]++;
	}
	if (eligible < n)
		return;
	for (int g = 0; g < ng; g++)
		share[g] = (double) n * size[g] / eligible;
	for (;;)
	{
		double		excess = 0;
		int			free_size = 0;

		for (int g = 0; g < ng; g++)
		{
			double		cap = Min(pool->max_shards_per_geo, size[g]);

			if (!fixed[g] && share[g] > cap)
			{
				excess += share[g] - cap;
				share[g] = cap;
				fixed[g] = true;
			}
		}
		if (excess <= 0)
			break;
		for (int g = 0; g < ng; g++)
			if (!fixed[g])
				free_size += size[g];
		if (free_size == 0)
			break;
		for (int g = 0; g < ng; g++)
			if (!fixed[g])
				share[g] += excess * size[g] / free_size;
	}
	for (int g = 0; g < ng; g++)
	{
		take[g] = (int) floor(cum + share[g] + u) - (int) floor(cum + u);
		cum += share[g];
	}
	for (int i = 0; i < np; i++)
	{
		int			g;

		for (g = 0; g < ng && order[i]->eligible; g++)
			if (same_tag(tags[g], order[i]->geo))
				break;
		if (order[i]->eligible && take[g] > 0)
		{
			take[g]--;
			front[nf++] = order[i];
		}
		else
			back[nb++] = order[i];
	}
	memcpy(order, front, sizeof(Site *) * nf);
	memcpy(order + nf, back, sizeof(Site *) * nb);
}

/*
 * The providers in the policy's order for object id (NULL: list order).
 * Spread shuffles them with a generator seeded by the id: every provider is
 * equally likely at every position, so shares stay even also when a cap
 * skips some (a rotation would favour the provider after a capped run);
 * cheapest and fastest sort by their key, the shuffle breaking ties.
 * Everything is in the current memory context.
 */
static Site **
ordered_sites(Pool *pool, const uint8 *id)
{
	Site	   *sites = palloc(sizeof(Site) * pool->nproviders);
	Site	  **order = palloc(sizeof(Site *) * pool->nproviders);
	uint64		seed = 0;

	if (id)
		memcpy(&seed, id, sizeof(seed));
	for (int i = 0; i < pool->nproviders; i++)
	{
		site_load(pool, pool->provider_names[i], &sites[i]);
		order[i] = &sites[i];
	}
	for (int i = pool->nproviders - 1; id && i > 0; i--)
	{
		int			j;
		Site	   *t;

		j = (int) (next_random(&seed) % (uint64) (i + 1));
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	if (id && pool->placement == PLACEMENT_SPREAD)
		spread_front(pool, order, next_random(&seed));
	for (int i = 0; i < pool->nproviders; i++)
		order[i]->rank = i;
	if (pool->placement != PLACEMENT_SPREAD)
		qsort_arg(order, pool->nproviders, sizeof(Site *), cmp_sites, pool);
	return order;
}

/* Why no choice exists: the counts that make it impossible. */
static void
raise_infeasible(Pool *pool, Site **order, const char *when, bool gave_up)
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
	if (gave_up)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("placement rules of %s%s%s are too intricate to meet quickly",
						pool->name ? "pool \"" : "the pool", pool->name ? pool->name : "",
						pool->name ? "\"" : ""),
				 errdetail_internal("%s No choice was found after %d steps of the search.", why.data, SEARCH_BUDGET),
				 errhint("Loosen max_shards_per_geo or max_shards_per_operator, or list fewer providers.")));
	for (int i = 0; i < pool->nproviders; i++)
		if (order[i]->foreign)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("server \"%s\" in the provider list of %s%s%s is not a destor provider",
							order[i]->name, pool->name ? "pool \"" : "the pool",
							pool->name ? pool->name : "", pool->name ? "\"" : ""),
					 errdetail_internal("%s", why.data),
					 errhint("Providers are servers of the foreign-data wrapper destor_provider.")));
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
	Site	  **order = ordered_sites(pool, id);
	Site	  **chosen = palloc(sizeof(Site *) * n);
	long		budget;
	bool		avoided = false;
	bool		found;

	/*
	 * A provider failing its audits (destor.audit) gets no new object —
	 * unless the others cannot take it: then the write goes as if it were
	 * well, which is what it did before it failed them.
	 */
	for (int i = 0; i < pool->nproviders; i++)
		if (order[i]->eligible && order[i]->failing)
		{
			order[i]->eligible = false;
			avoided = true;
		}
	found = choose(pool, order, pool->nproviders, chosen, n, &budget);
	if (!found && avoided)
	{
		for (int i = 0; i < pool->nproviders; i++)
			if (order[i]->failing)
				order[i]->eligible = order[i]->declared && geo_allowed(pool, order[i]->geo);
		found = choose(pool, order, pool->nproviders, chosen, n, &budget);
	}
	if (!found)
		raise_infeasible(pool, order, "", budget < 0);
	for (int i = 0; i < n; i++)
		out[i] = pstrdup(chosen[i]->name);
}

/*
 * Where an existing object of n shards on providers current[] should be
 * under the rules: n providers that keep them, as many of current[] as the
 * search finds first (they come first in its order, in the policy's order
 * among themselves), the rest from the pool in the policy's order.  False
 * when no placement meets the rules.  rebalance moves shards there.
 */
bool
placement_target(Pool *pool, const uint8 *id, char **current, int n, char **out)
{
	Site	  **pool_order = ordered_sites(pool, id);
	Site	  **order = palloc(sizeof(Site *) * pool->nproviders);
	Site	  **chosen = palloc(sizeof(Site *) * n);
	int			norder = 0;
	long		budget;

	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < pool->nproviders; i++)
		{
			bool		held = false;

			for (int j = 0; j < n && !held; j++)
				held = current[j] != NULL && strcmp(current[j], pool_order[i]->name) == 0;
			if (held == (pass == 0))
				order[norder++] = pool_order[i];
		}
	if (!choose(pool, order, norder, chosen, n, &budget))
		return false;
	for (int i = 0; i < n; i++)
		out[i] = pstrdup(chosen[i]->name);
	return true;
}

/*
 * For a 'cheapest' pool: the providers a new object would get now (into
 * out), if they cost less a month per byte than current[] do; false when
 * the object is already placed as cheaply (or no placement exists).
 */
bool
placement_cheaper(Pool *pool, const uint8 *id, char **current, int n, char **out)
{
	Site	  **order = ordered_sites(pool, id);
	Site	  **chosen = palloc(sizeof(Site *) * n);
	double		now = 0,
				then = 0;
	long		budget;

	if (!choose(pool, order, pool->nproviders, chosen, n, &budget))
		return false;
	for (int i = 0; i < n; i++)
	{
		Site		s;

		site_load(pool, current[i], &s);
		now += s.cost;
		then += chosen[i]->cost;
		out[i] = pstrdup(chosen[i]->name);
	}
	return then < now;
}

/* May a shard go to this provider under the pool's rules (caps aside)? */
bool
placement_eligible(Pool *pool, const char *provider)
{
	Site		s;

	site_load(pool, provider, &s);
	return s.eligible;
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
	Site	  **order = ordered_sites(pool, NULL);
	Site	  **chosen = palloc(sizeof(Site *) * n);
	long		budget;

	for (int i = 0; i < pool->nproviders; i++)
		if (!order[i]->declared && !order[i]->foreign)
			return;
	if (!choose(pool, order, pool->nproviders, chosen, n, &budget))
		raise_infeasible(pool, order, "", budget < 0);
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
		/* a shard outside allowed_geo outweighs any cap: no move may trade one for it */
		if (!s[i].eligible)
			excess += n + 1;
		else if (!listed && count_unlisted)
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
		if (providers[i] == NULL)
			return psprintf("shard %d has no provider recorded", i);
	for (int i = 0; i < n; i++)
	{
		bool		listed = false;

		site_load(pool, providers[i], &s[i]);
		for (int j = 0; j < pool->nproviders && !listed; j++)
			listed = strcmp(pool->provider_names[j], providers[i]) == 0;
		if (s[i].foreign)
			return psprintf("shard %d is on server \"%s\", which is not a destor provider", i, providers[i]);
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
