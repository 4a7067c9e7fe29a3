/*
 * meta_lease.c — one writer per pool: the writer lease, and take_over_pool.
 *
 * A pool declared mode 'exclusive' is written by one database.  Each of its
 * providers holds a small lease object, "meta/lease/<pool>", naming the
 * writing database (the "instance" id of its destor_provider wrapper), an
 * epoch, when the holder last renewed it and what it is (system identifier
 * and database), followed by an HMAC-SHA256 under a key derived from the
 * master key: a provider cannot forge a lease, only withhold, delete or
 * replay one.  The lease read is the authentic one with the highest epoch
 * among those a majority of the providers returned, so an old lease
 * replayed by a few providers loses to the current one.
 *
 * A write to an exclusive pool (object_writer_create) checks the lease,
 * trusting what it read for LEASE_CHECK_SECONDS: no lease yet — this
 * database writes one (epoch 1) and reads it back; ours — renewed when
 * older than LEASE_RENEW_SECONDS; another database's — refused, naming the
 * holder and how to take over.  Before the transaction commits, the lease
 * of every exclusive pool it wrote to is checked again (from the cache when
 * fresh), so a writer fenced meanwhile fails and its objects are removed
 * by the abort.  destor.take_over_pool() writes a lease naming this
 * database with the next epoch and then waits LEASE_CHECK_SECONDS + 1,
 * so that when it returns every other backend's cached view has expired:
 * the old writer's next write, or commit, is refused.
 *
 * Guarantees and their assumptions are in docs/ARCHITECTURE.md ("Writers").
 * Providers give no conditional writes here (S3 If-None-Match is not
 * everywhere), so two databases acquiring a fresh pool at the same instant
 * can both write a lease; each reads it back after writing, and the
 * majority decides.
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_foreign_server.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "destor/lease.h"
#include "destor/object.h"
#include "destor/provider.h"

PG_FUNCTION_INFO_V1(destor_take_over_pool);

#define LEASE_MAGIC		"destor-lease-v1"
#define LEASE_MAX		1024	/* bytes of a lease object, at most */
#define LEASE_MAC_LEN	32

typedef struct Lease
{
	bool		found;
	char		instance[64];	/* uuid text */
	uint64		epoch;
	int64		renewed;		/* unix seconds */
	char		holder[128];
} Lease;

/* What this backend read last of a pool's lease. */
typedef struct LeaseCache
{
	char		pool[NAMEDATALEN];
	TimestampTz checked;
	bool		ours;
	uint64		epoch;
	int64		renewed;
} LeaseCache;

static List *lease_cache = NIL;		/* of LeaseCache, in TopMemoryContext */
static List *lease_written = NIL;	/* pool names written by this transaction */
static bool lease_callback_registered = false;

static char *
lease_key(const char *pool)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "meta/lease/");
	for (const char *c = pool; *c; c++)
	{
		if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')
			appendStringInfoChar(&buf, *c);
		else
			appendStringInfo(&buf, "%%%02X", (unsigned char) *c);
	}
	return buf.data;
}

/* This database's instance id (the destor_provider wrapper's option). */
static char *
lease_instance(void)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapperByName("destor_provider", true);
	ListCell   *lc;

	if (fdw != NULL)
		foreach(lc, fdw->options)
		{
			DefElem    *def = (DefElem *) lfirst(lc);

			if (strcmp(def->defname, "instance") == 0)
				return defGetString(def);
		}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("this database has no destor instance id"),
			 errdetail("A pool with mode 'exclusive' names its writer by the instance id CREATE EXTENSION destor gives the destor_provider wrapper."),
			 errhint("Run ALTER EXTENSION destor UPDATE.")));
	return NULL;
}

/* The MAC of a lease's text under a master key (K = HMAC(master, label)). */
static void
lease_mac(const uint8 master[CODEC_KEY_LEN], const char *text, size_t len, uint8 out[LEASE_MAC_LEN])
{
	static const char label[] = "destor-lease-mac-key-v1";
	uint8		k[LEASE_MAC_LEN];
	unsigned int klen = 0;
	unsigned int olen = 0;

	if (HMAC(EVP_sha256(), master, CODEC_KEY_LEN, (const uint8 *) label, sizeof(label) - 1,
			 k, &klen) == NULL ||
		HMAC(EVP_sha256(), k, LEASE_MAC_LEN, (const uint8 *) text, len, out, &olen) == NULL)
	{
		codec_secure_zero(k, sizeof(k));
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the MAC of a writer lease")));
	}
	codec_secure_zero(k, sizeof(k));
}

static char *
lease_format(const char *pool, const Lease *l)
{
	StringInfoData buf;
	uint8		master[CODEC_KEY_LEN];
	uint8		key_id[CODEC_KEY_FINGERPRINT_LEN];
	uint8		mac[LEASE_MAC_LEN];

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s\npool %s\ninstance %s\nepoch " UINT64_FORMAT "\nrenewed " INT64_FORMAT "\nholder %s\n",
					 LEASE_MAGIC, pool, l->instance, l->epoch, l->renewed, l->holder);
	keys_load_master(master, key_id);
	lease_mac(master, buf.data, buf.len, mac);
	codec_secure_zero(master, sizeof(master));
	appendStringInfoString(&buf, "mac ");
	for (int i = 0; i < LEASE_MAC_LEN; i++)
		appendStringInfo(&buf, "%02x", mac[i]);
	appendStringInfoChar(&buf, '\n');
	return buf.data;
}

/* Does the MAC verify under the current master key or, during a
 * rotation, the previous one? */
static bool
lease_mac_ok(const char *text, size_t len, const char *machex)
{
	uint8		master[CODEC_KEY_LEN];
	uint8		key_id[CODEC_KEY_FINGERPRINT_LEN];
	uint8		mac[LEASE_MAC_LEN];
	char		hex[2 * LEASE_MAC_LEN + 1];
	bool		ok;

	for (int pass = 0; pass < 2; pass++)
	{
		if (pass == 0)
			keys_load_master(master, key_id);
		else if (keys_previous_configured())
			keys_load_previous(master, key_id);
		else
			break;
		lease_mac(master, text, len, mac);
		codec_secure_zero(master, sizeof(master));
		for (int i = 0; i < LEASE_MAC_LEN; i++)
			snprintf(hex + 2 * i, 3, "%02x", mac[i]);
		ok = strlen(machex) == 2 * LEASE_MAC_LEN &&
			CRYPTO_memcmp(hex, machex, 2 * LEASE_MAC_LEN) == 0;
		if (ok)
			return true;
	}
	return false;
}

/* Parse and authenticate one provider's lease; false if it is not one. */
static bool
lease_parse(const char *pool, const char *data, size_t len, Lease *l)
{
	char	   *text = pnstrdup(data, len);
	char	   *mac = strstr(text, "\nmac ");
	char	   *line;
	char	   *save;
	char		want_pool[NAMEDATALEN + 8];
	int			have = 0;

	memset(l, 0, sizeof(Lease));
	if (mac == NULL || strncmp(text, LEASE_MAGIC "\n", strlen(LEASE_MAGIC) + 1) != 0)
		return false;
	mac[1] = '\0';				/* the MAC covers everything up to its line */
	{
		char	   *m = mac + 5;
		char	   *nl = strchr(m, '\n');

		if (nl)
			*nl = '\0';
		if (!lease_mac_ok(text, mac + 1 - text, m))
			return false;
	}
	snprintf(want_pool, sizeof(want_pool), "pool %s", pool);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		if (strcmp(line, want_pool) == 0)
			have |= 1;
		else if (strncmp(line, "instance ", 9) == 0)
		{
			strlcpy(l->instance, line + 9, sizeof(l->instance));
			have |= 2;
		}
		else if (strncmp(line, "epoch ", 6) == 0)
		{
			l->epoch = strtou64(line + 6, NULL, 10);
			have |= 4;
		}
		else if (strncmp(line, "renewed ", 8) == 0)
		{
			l->renewed = strtoi64(line + 8, NULL, 10);
			have |= 8;
		}
		else if (strncmp(line, "holder ", 7) == 0)
			strlcpy(l->holder, line + 7, sizeof(l->holder));
	}
	l->found = have == 15;
	return l->found;
}

static Provider **
lease_providers(Pool *pool)
{
	Provider  **ps = palloc(sizeof(Provider *) * pool->nproviders);

	for (int i = 0; i < pool->nproviders; i++)
		ps[i] = provider_lookup_by_name(pool->provider_names[i], false);
	return ps;
}

/*
 * lease_read — the pool's current lease: the authentic one with the
 * highest epoch (then the latest renewal).  ERROR when fewer than a
 * majority of the providers answered (with a lease or "not found").
 */
static void
lease_read(Pool *pool, Lease *best, int *unauthentic)
{
	Provider  **ps = lease_providers(pool);
	ProviderRequest *reqs = palloc0(sizeof(ProviderRequest) * pool->nproviders);
	char	   *key = lease_key(pool->name);
	int			answered = 0;

	memset(best, 0, sizeof(Lease));
	if (unauthentic)
		*unauthentic = 0;
	for (int i = 0; i < pool->nproviders; i++)
	{
		reqs[i].provider = ps[i];
		reqs[i].op = POP_GET;
		reqs[i].key = key;
		reqs[i].offset = 0;
		reqs[i].length = LEASE_MAX;
		reqs[i].buf = palloc(LEASE_MAX);
	}
	provider_execute(reqs, pool->nproviders);
	for (int i = 0; i < pool->nproviders; i++)
	{
		Lease		l;

		if (!reqs[i].ok)
		{
			if (reqs[i].not_found)
				answered++;
			continue;
		}
		answered++;
		if (!lease_parse(pool->name, reqs[i].buf, reqs[i].result_size, &l))
		{
			if (unauthentic)
				(*unauthentic)++;
			continue;
		}
		if (!best->found || l.epoch > best->epoch ||
			(l.epoch == best->epoch && l.renewed > best->renewed))
			*best = l;
	}
	if (answered <= pool->nproviders / 2)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not read the writer lease of pool \"%s\"", pool->name),
				 errdetail("Only %d of its %d providers answered; a majority is needed.",
						   answered, pool->nproviders)));
}

/* Write a lease to every provider; ERROR unless a majority stored it. */
static void
lease_write(Pool *pool, const Lease *l)
{
	Provider  **ps = lease_providers(pool);
	ProviderRequest *reqs = palloc0(sizeof(ProviderRequest) * pool->nproviders);
	char	   *key = lease_key(pool->name);
	char	   *text = lease_format(pool->name, l);
	int			stored = 0;

	for (int i = 0; i < pool->nproviders; i++)
	{
		reqs[i].provider = ps[i];
		reqs[i].op = POP_PUT;
		reqs[i].key = key;
		reqs[i].data = text;
		reqs[i].datalen = strlen(text);
	}
	provider_execute(reqs, pool->nproviders);
	for (int i = 0; i < pool->nproviders; i++)
		if (reqs[i].ok)
			stored++;
	if (stored <= pool->nproviders / 2)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not write the writer lease of pool \"%s\"", pool->name),
				 errdetail("Only %d of its %d providers stored it; a majority is needed.",
						   stored, pool->nproviders)));
}

static void
lease_holder(char *holder, size_t len)
{
	snprintf(holder, len, "system " UINT64_FORMAT " database %s",
			 GetSystemIdentifier(), get_database_name(MyDatabaseId));
}

static void
lease_new(Lease *l, uint64 epoch)
{
	memset(l, 0, sizeof(Lease));
	l->found = true;
	strlcpy(l->instance, lease_instance(), sizeof(l->instance));
	l->epoch = epoch;
	l->renewed = (int64) time(NULL);
	lease_holder(l->holder, sizeof(l->holder));
}

/*
 * Does the lease name this database?  Its instance and its holder: a
 * database that recovered the pool adopts the writer's instance, so the
 * instance alone cannot tell the old writer from the new one.
 */
static bool
lease_is_mine(const Lease *l)
{
	char		holder[128];

	lease_holder(holder, sizeof(holder));
	return strcmp(l->instance, lease_instance()) == 0 && strcmp(l->holder, holder) == 0;
}

static LeaseCache *
lease_cache_entry(const char *pool)
{
	ListCell   *lc;
	LeaseCache *c;
	MemoryContext old;

	foreach(lc, lease_cache)
	{
		c = lfirst(lc);
		if (strcmp(c->pool, pool) == 0)
			return c;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	c = palloc0(sizeof(LeaseCache));
	strlcpy(c->pool, pool, NAMEDATALEN);
	lease_cache = lappend(lease_cache, c);
	MemoryContextSwitchTo(old);
	return c;
}

static void
lease_refused(Pool *pool, const Lease *l, bool at_commit)
{
	char	   *renewed = pstrdup(timestamptz_to_str(time_t_to_timestamptz((pg_time_t) l->renewed)));

	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg(at_commit ? "pool \"%s\" was taken over by another writer" :
					"pool \"%s\" is held by another writer", pool->name),
			 errdetail("The writer lease on its providers names instance %s (%s), epoch " UINT64_FORMAT ", last renewed at %s.",
					   l->instance, l->holder, l->epoch, renewed),
			 errhint("A pool has one writer.  To make this database the writer (the other one's next write then fails), run SELECT destor.take_over_pool('%s'); to read the pool here, declare it with mode 'read_only'.",
					 pool->name)));
}

/*
 * lease_verify — read the lease (unless the cache is fresh) and make sure
 * this database holds it; with acquire, take a lease nobody holds and renew
 * an old one of ours.
 */
static void
lease_verify(Pool *pool, bool acquire, bool at_commit)
{
	LeaseCache *c = lease_cache_entry(pool->name);
	TimestampTz now = GetCurrentTimestamp();
	const char *me;
	Lease		l;
	int			unauthentic;

	if (c->ours && !TimestampDifferenceExceeds(c->checked, now, LEASE_CHECK_SECONDS * 1000) &&
		(!acquire || (int64) time(NULL) - c->renewed < LEASE_RENEW_SECONDS))
		return;
	c->ours = false;
	me = lease_instance();
	lease_read(pool, &l, &unauthentic);
	if (!l.found && acquire && unauthentic > 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("the writer lease of pool \"%s\" does not verify", pool->name),
				 errdetail("%d provider(s) hold a lease that is not authentic under this database's master key (or the previous one), and none holds one that is.",
						   unauthentic),
				 errhint("Another database with another master key may hold the pool, or its lease was signed by a key retired since.  If this database is to write it, run SELECT destor.take_over_pool('%s').",
						 pool->name)));
	if (!l.found && acquire)
	{
		Lease		mine;

		lease_new(&mine, 1);
		lease_write(pool, &mine);
		lease_read(pool, &l, NULL);	/* a database acquiring at the same time may win */
	}
	if (!l.found)
	{
		/* at commit: the lease this transaction wrote under is gone */
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("the writer lease of pool \"%s\" is missing", pool->name),
				 errhint("Run SELECT destor.take_over_pool('%s') to write it again.", pool->name)));
	}
	if (strcmp(l.instance, me) != 0 || !lease_is_mine(&l))
		lease_refused(pool, &l, at_commit);
	if (acquire && (int64) time(NULL) - l.renewed >= LEASE_RENEW_SECONDS)
	{
		Lease		renewed;

		lease_new(&renewed, l.epoch);
		lease_write(pool, &renewed);
		l = renewed;
	}
	c->ours = true;
	c->epoch = l.epoch;
	c->renewed = l.renewed;
	c->checked = GetCurrentTimestamp();
}

/* Before commit: every exclusive pool written is still ours. */
static void
lease_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			foreach(lc, lease_written)
			{
				Pool	   *pool = pool_lookup((char *) lfirst(lc), false);

				if (pool->mode == POOL_MODE_EXCLUSIVE)
					lease_verify(pool, false, true);
			}
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			list_free_deep(lease_written);
			lease_written = NIL;
			break;
		default:
			break;
	}
}

void
lease_check_write(Pool *pool)
{
	ListCell   *lc;
	MemoryContext old;

	pool_check_writable(pool, "write to");
	if (pool->mode != POOL_MODE_EXCLUSIVE)
		return;
	lease_verify(pool, true, false);

	if (!lease_callback_registered)
	{
		RegisterXactCallback(lease_xact_callback, NULL);
		lease_callback_registered = true;
	}
	foreach(lc, lease_written)
		if (strcmp((char *) lfirst(lc), pool->name) == 0)
			return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	lease_written = lappend(lease_written, pstrdup(pool->name));
	MemoryContextSwitchTo(old);
}

/*
 * destor.take_over_pool(pool) — make this database the pool's writer: a
 * lease naming it with the next epoch, then a wait until every backend's
 * cached view of the old lease has expired.  Returns the new epoch.
 */
Datum
destor_take_over_pool(PG_FUNCTION_ARGS)
{
	Pool	   *pool = pool_lookup(NameStr(*PG_GETARG_NAME(0)), true);
	LeaseCache *c;
	Lease		l;
	Lease		mine;
	TimestampTz until;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser to take over a pool")));
	pool_check_writable(pool, "take over");
	if (pool->mode != POOL_MODE_EXCLUSIVE)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pool \"%s\" has no writer lease", pool->name),
				 errdetail("Only a pool declared with mode 'exclusive' is fenced by a writer lease."),
				 errhint("ALTER SERVER %s OPTIONS (ADD mode 'exclusive') first.",
						 quote_identifier(pool->name))));
	lease_read(pool, &l, NULL);
	lease_new(&mine, l.found ? l.epoch + 1 : 1);
	lease_write(pool, &mine);
	lease_read(pool, &l, NULL);
	if (!l.found || !lease_is_mine(&l) || l.epoch != mine.epoch)
		lease_refused(pool, &l, false);

	/* let every other backend's cached view of the old lease expire */
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), (LEASE_CHECK_SECONDS + 1) * 1000);
	for (;;)
	{
		long		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (ms <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	c = lease_cache_entry(pool->name);
	c->ours = true;
	c->epoch = mine.epoch;
	c->renewed = mine.renewed;
	c->checked = GetCurrentTimestamp();
	PG_RETURN_INT64((int64) mine.epoch);
}

/*
 * lease_resign_held — sign again, under the current master key, the lease
 * of every exclusive pool this database holds (the end of a key rotation:
 * once the previous key is deleted, a lease signed by it would no longer
 * verify).  Pools held by another database are left alone.  Returns how
 * many leases were signed again.
 */
int
lease_resign_held(void)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapperByName("destor", true);
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *names = NIL;
	ListCell   *lc;
	int			n = 0;

	if (fdw == NULL)
		return 0;
	rel = table_open(ForeignServerRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_foreign_server srv = (Form_pg_foreign_server) GETSTRUCT(tup);

		if (srv->srvfdw == fdw->fdwid)
			names = lappend(names, pstrdup(NameStr(srv->srvname)));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	foreach(lc, names)
	{
		Pool	   *pool = pool_lookup((char *) lfirst(lc), false);
		Lease		l;
		Lease		again;
		LeaseCache *c;

		if (pool->mode != POOL_MODE_EXCLUSIVE)
			continue;
		CHECK_FOR_INTERRUPTS();
		lease_read(pool, &l, NULL);
		if (!l.found || !lease_is_mine(&l))
			continue;
		lease_new(&again, l.epoch);
		lease_write(pool, &again);
		c = lease_cache_entry(pool->name);
		c->ours = true;
		c->epoch = again.epoch;
		c->renewed = again.renewed;
		c->checked = GetCurrentTimestamp();
		n++;
	}
	return n;
}

/*
 * lease_check_adopt — before recover_catalog adopts the writer's instance:
 * refuse while the pool's lease is held by another database (another
 * cluster or database than this one, under an instance this database does
 * not have).  A lease never expires, so a writer that is gone for good is
 * taken over knowingly first (take_over_pool), then adopted.
 */
void
lease_check_adopt(Pool *pool, const char *instance)
{
	Lease		l;
	char		holder[128];

	lease_read(pool, &l, NULL);
	lease_holder(holder, sizeof(holder));
	if (!l.found || strcmp(l.holder, holder) == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("cannot adopt pool \"%s\": it is held by another writer", pool->name),
			 errdetail("The writer lease on its providers names instance %s (%s), epoch " UINT64_FORMAT ", last renewed at %s; adopting instance %s would make two writers of the same objects.",
					   l.instance, l.holder, l.epoch,
					   timestamptz_to_str(time_t_to_timestamptz((pg_time_t) l.renewed)), instance),
			 errhint("If that writer is gone for good, declare the pool mode 'exclusive', run SELECT destor.take_over_pool('%s'), then recover again; to read the pool next to it, declare it mode 'read_only' or recover with adopt => false.",
					 pool->name)));
}

/*
 * lease_adopted — recover_catalog changed this database's instance from
 * old_instance to new_instance: a lease it held under the old one (taken
 * over before the recovery) now names the new one, with the next epoch.
 */
void
lease_adopted(Pool *pool, const char *old_instance, const char *new_instance)
{
	Lease		l;
	Lease		again;
	LeaseCache *c;

	if (old_instance == NULL || pool->mode == POOL_MODE_READ_ONLY)
		return;
	lease_read(pool, &l, NULL);
	if (!l.found || strcmp(l.instance, old_instance) != 0)
		return;
	lease_new(&again, l.epoch + 1);
	strlcpy(again.instance, new_instance, sizeof(again.instance));
	lease_write(pool, &again);
	c = lease_cache_entry(pool->name);
	c->ours = false;
}
