/*
 * tier.c — partitions moved offsite and back.
 *
 * destor.tier_partition() turns a plain-table partition into a destor
 * foreign table attached in the same place (same bounds, name, owner,
 * privileges, comment); destor.recall_partition() does the reverse.  A
 * partition whose parent has a unique index or primary key cannot be a
 * foreign table, and one whose parent has any index would lose its indexes
 * as one: it becomes a table USING destor (src/tableam/) on the pool
 * instead, with the old partition's indexes and constraints declared again
 * after the copy, which ATTACH then finds matching the parent's (unless an
 * index is of a kind the access method lacks and no key needs it: then a
 * foreign table, as for a parent without indexes).  Queries
 * on the parent keep working throughout, and partition pruning keeps
 * queries on recent data away from the providers.  destor.tier_partitions()
 * is the policy form: every plain partition of a range-partitioned table
 * but the newest few.
 *
 * The rows are copied first, into a new table outside the partition tree,
 * while the old partition is only locked against writes (SHARE): readers
 * of the parent are not blocked during the copy.  Only the swap — DETACH,
 * ATTACH, DROP, RENAME, quick catalog work — takes the parent's ACCESS
 * EXCLUSIVE lock, until the transaction ends.  Everything runs in the
 * caller's transaction with the caller's privileges: an error or a
 * ROLLBACK leaves the old partition as it was, and the objects written
 * for the new one are deleted by the object layer's abort handling.
 *
 * The DDL runs through SPI with search_path set to pg_catalog, pg_temp,
 * so every name in the generated statements is schema-qualified and no
 * object of the caller's search_path can step in.
 */
#include "postgres.h"

#include "access/table.h"
#include "commands/defrem.h"
#include "access/xact.h"
#include "utils/resowner.h"
#include "storage/latch.h"
#include "utils/wait_event.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_partitioned_table.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/date.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "destor/catalog.h"
#include "destor/progress.h"

/* the CHECK that proves a new plain-table partition's bound to ATTACH */
#define BOUND_CHECK_NAME "destor_partition_bound"
/* copy_indexes' name of the copy of index N until the swap: this prefix, N */
#define INDEX_SCRATCH_PREFIX "'destor_index_'"

PG_FUNCTION_INFO_V1(destor_tier_partition);
PG_FUNCTION_INFO_V1(destor_recall_partition);
PG_FUNCTION_INFO_V1(destor_tier_partitions);
PG_FUNCTION_INFO_V1(destor_tier_partitions_older);

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

/* schema.name of a relation, quoted for SQL */
static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

static Oid
rel_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Is this a foreign table of the destor table wrapper? */
static bool
is_destor_table(Oid relid)
{
	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		return false;
	return pool_is_destor_server(GetForeignTable(relid)->serverid);
}

/* Is this a table of the destor table access method (USING destor)? */
static bool
is_destor_am_table(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			am = get_table_am_oid("destor", true);
	bool		result = false;

	if (HeapTupleIsValid(tup))
	{
		Form_pg_class form = (Form_pg_class) GETSTRUCT(tup);

		result = OidIsValid(am) && form->relkind == RELKIND_RELATION && form->relam == am;
		ReleaseSysCache(tup);
	}
	return result;
}

/* Tiered: a destor foreign table or a table USING destor */
static bool
is_tiered(Oid relid)
{
	return is_destor_table(relid) || is_destor_am_table(relid);
}

/* The word DDL uses for the relation: FOREIGN TABLE or TABLE */
static const char *
table_kind(Oid relid)
{
	return get_rel_relkind(relid) == RELKIND_FOREIGN_TABLE ? "FOREIGN TABLE" : "TABLE";
}

static void
run_sql(const char *sql, int expected)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute failed (%s): %s", SPI_result_code_string(rc), sql);
}

/* One text value from a query returning one row (NULL for SQL NULL). */
static char *
query_text(const char *sql)
{
	bool		isnull;
	Datum		d;

	run_sql(sql, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "expected one row from: %s", sql);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * The partition's checks, common to both directions: it exists, is a leaf
 * partition, and the user owns it and its parent (DETACH and ATTACH need
 * both).  Returns the parent's oid.
 */
static Oid
check_partition(Oid relid, const char *action)
{
	Oid			parent;
	char	   *name = get_rel_name(relid);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (!get_rel_relispartition(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a partition", name),
				 errdetail("Only partitions of a partitioned table can be %s.", action),
				 errhint("Move the rows of a standalone table with INSERT INTO a destor foreign table SELECT ... instead.")));
	parent = get_partition_parent(relid, false);
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)), name);
	if (!pg_class_ownercheck(parent, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(parent));
	return parent;
}

/*
 * The parent's ACCESS EXCLUSIVE lock for DETACH and ATTACH.  We hold the
 * partition's SHARE lock since the copy; a session that holds the parent
 * and waits for the partition (an UPDATE through the parent) would form a
 * deadlock with a plain wait, and the deadlock detector would likely kill
 * that session, not us.  So the lock is first tried without waiting for a
 * while (we are in nobody's way then); only after that do we queue for it,
 * and if a deadlock is found then it is ours to lose.
 */
#define SWAP_LOCK_POLL_MS	5000

static void
lock_parent_for_swap(Oid parent)
{
	for (int waited = 0; waited < SWAP_LOCK_POLL_MS; waited += 20)
	{
		if (ConditionalLockRelationOid(parent, AccessExclusiveLock))
			return;
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	LockRelationOid(parent, AccessExclusiveLock);
}

/*
 * Swap the old partition for the new table: same bounds, privileges
 * (table and column), owner and comment, then the old one is dropped and
 * the new one takes its name.  Both are in the same schema.
 */
static void
swap_partition(Oid oldrel, Oid newrel, Oid parent, bool bound_checked)
{
	const char *oldkind = table_kind(oldrel);
	const char *newkind = table_kind(newrel);
	char	   *oldname = pstrdup(get_rel_name(oldrel));
	char	   *old_q = qualified_name(oldrel);
	char	   *new_q = qualified_name(newrel);
	char	   *parent_q = qualified_name(parent);
	char	   *bound;
	char	   *acl;
	char	   *colacl;
	char	   *comment;
	char	   *owner;
	char	   *scratch_rel = pstrdup(get_rel_name(newrel));
	char	   *renames;
	char	   *index_names;
	char	   *triggers;
	char	   *rules;

	bound = query_text(psprintf("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE oid = %u",
								oldrel));
	/* table privileges, as GRANT statements (the owner's own come with ownership) */
	acl = query_text(psprintf(
		"SELECT string_agg(format('GRANT %%s ON TABLE %%s TO %%s%%s;', a.privilege_type, %s,"
		"         CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END,"
		"         CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), ' ')"
		"  FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee"
		" WHERE c.oid = %u AND a.grantee <> c.relowner",
		quote_literal_cstr(new_q), oldrel));
	/* column privileges too */
	colacl = query_text(psprintf(
		"SELECT string_agg(format('GRANT %%s (%%I) ON TABLE %%s TO %%s%%s;', a.privilege_type, att.attname, %s,"
		"         CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END,"
		"         CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), ' ')"
		"  FROM pg_class c JOIN pg_attribute att ON att.attrelid = c.oid, aclexplode(att.attacl) a"
		"  LEFT JOIN pg_roles r ON r.oid = a.grantee"
		" WHERE c.oid = %u AND att.attnum > 0 AND NOT att.attisdropped AND a.grantee <> c.relowner",
		quote_literal_cstr(new_q), oldrel));
	comment = query_text(psprintf("SELECT obj_description(%u, 'pg_class')", oldrel));
	owner = query_text(psprintf("SELECT quote_ident(r.rolname) FROM pg_class c JOIN pg_roles r"
								"  ON r.oid = c.relowner WHERE c.oid = %u", oldrel));

	/* the names copy_indexes' indexes take back, after the old ones are dropped */
	index_names = query_text(psprintf(
		"SELECT string_agg(format('ALTER INDEX %%I.%%I RENAME TO %%I;', n.nspname, c.relname, o.relname), ' ')"
		"  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
		"  JOIN pg_namespace n ON n.oid = c.relnamespace"
		"  JOIN pg_index oi ON oi.indrelid = %u"
		"  JOIN pg_class o ON o.oid = oi.indexrelid AND c.relname = " INDEX_SCRATCH_PREFIX " || o.oid"
		" WHERE i.indrelid = %u", oldrel, newrel));

	/*
	 * The partition's own triggers (not cloned from the parent, not
	 * internal) and rules, with their enabled state: declared again on the
	 * new table once it has the old name, which their definitions name.
	 */
	triggers = query_text(psprintf(
		"SELECT string_agg(pg_get_triggerdef(t.oid) || ';' ||"
		"       CASE t.tgenabled WHEN 'O' THEN ''"
		"         ELSE format(' ALTER TABLE %%s %%s TRIGGER %%I;', %s,"
		"                     CASE t.tgenabled WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA'"
		"                     ELSE 'ENABLE ALWAYS' END, t.tgname) END, ' ' ORDER BY t.tgname)"
		"  FROM pg_trigger t WHERE t.tgrelid = %u AND NOT t.tgisinternal AND t.tgparentid = 0",
		quote_literal_cstr(old_q), oldrel));
	rules = query_text(psprintf(
		"SELECT string_agg(pg_get_ruledef(r.oid), ' ' ORDER BY r.rulename)"
		"  FROM pg_rewrite r WHERE r.ev_class = %u AND r.rulename <> '_RETURN'", oldrel));

	lock_parent_for_swap(parent);
	run_sql(psprintf("ALTER TABLE %s DETACH PARTITION %s", parent_q, old_q), SPI_OK_UTILITY);
	run_sql(psprintf("ALTER TABLE %s ATTACH PARTITION %s %s", parent_q, new_q, bound), SPI_OK_UTILITY);
	/* copy_indexes' proof of the bound has served */
	if (bound_checked)
		run_sql(psprintf("ALTER TABLE %s DROP CONSTRAINT %s", new_q, BOUND_CHECK_NAME),
				SPI_OK_UTILITY);
	if (acl)
		run_sql(acl, SPI_OK_UTILITY);
	if (colacl)
		run_sql(colacl, SPI_OK_UTILITY);
	if (comment)
		run_sql(psprintf("COMMENT ON %s %s IS %s", newkind, new_q, quote_literal_cstr(comment)),
				SPI_OK_UTILITY);
	run_sql(psprintf("ALTER %s %s OWNER TO %s", newkind, new_q, owner), SPI_OK_UTILITY);
	run_sql(psprintf("DROP %s %s", oldkind, old_q), SPI_OK_UTILITY);
	run_sql(psprintf("ALTER %s %s RENAME TO %s", newkind, new_q, quote_identifier(oldname)),
			SPI_OK_UTILITY);
	if (index_names)
		run_sql(index_names, SPI_OK_UTILITY);
	if (triggers)
		run_sql(triggers, SPI_OK_UTILITY);
	if (rules)
		run_sql(rules, SPI_OK_UTILITY);

	/*
	 * Indexes that ATTACH made for a heap partition are named after the
	 * scratch name: give them the names they would have had (where free).
	 */
	renames = query_text(psprintf(
		"SELECT string_agg(format('ALTER INDEX %%I.%%I RENAME TO %%I;', n.nspname, c.relname,"
		"                         %s || substr(c.relname, %d)), ' ')"
		"  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
		"  JOIN pg_namespace n ON n.oid = c.relnamespace"
		" WHERE i.indrelid = %u AND starts_with(c.relname, %s)"
		"   AND octet_length(%s || substr(c.relname, %d)) < %d"
		"   AND NOT EXISTS (SELECT FROM pg_class o WHERE o.relnamespace = c.relnamespace"
		"                   AND o.relname = %s || substr(c.relname, %d))",
		quote_literal_cstr(oldname), (int) strlen(scratch_rel) + 1, newrel,
		quote_literal_cstr(scratch_rel), quote_literal_cstr(oldname), (int) strlen(scratch_rel) + 1,
		NAMEDATALEN, quote_literal_cstr(oldname), (int) strlen(scratch_rel) + 1));
	if (renames)
		run_sql(renames, SPI_OK_UTILITY);
}

/* pg_class.reltuples: the planner's row count, -1 if never analyzed */
static float4
rel_reltuples(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	float4		n = -1;

	if (HeapTupleIsValid(tup))
	{
		n = ((Form_pg_class) GETSTRUCT(tup))->reltuples;
		ReleaseSysCache(tup);
	}
	return n;
}

/* Copy the rows; generated columns are computed again by the insert. */
static void
copy_rows(Oid relid, const char *to, const char *from)
{
	char	   *cols = query_text(psprintf(
		"SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute"
		" WHERE attrelid = %u AND attnum > 0 AND NOT attisdropped AND attgenerated = ''", relid));

	run_sql(psprintf("INSERT INTO %s (%s) SELECT %s FROM %s", to, cols, cols, from), SPI_OK_INSERT);
}

/*
 * copy_indexes: the partition's indexes and unique, primary-key and
 * exclusion constraints, declared again on the new table (both are plain
 * tables: heap and USING destor), with the partition constraint as a CHECK.
 * All before the swap, so that ATTACH, under the parent's ACCESS EXCLUSIVE
 * lock, only attaches the indexes it finds matching the parent's (a
 * constraint's index only if it backs a constraint) and sees its bound
 * proven instead of scanning the rows; after the copy, so that each index
 * is built once over all rows.  The old names are taken until the swap:
 * each index is named after its old one's oid meanwhile, and swap_partition
 * gives it the old name (and so its constraint's, which goes along).
 */
static bool
copy_indexes(Oid relid, const char *scratch)
{
	char	   *bound;
	char	   *ddl;

	/*
	 * pg_get_indexdef starts with CREATE [UNIQUE] INDEX name ON
	 * schema.table USING: that prefix, built the same way, is replaced.  An
	 * index whose definition does not start so would be lost: an error.
	 */
	ddl = query_text(psprintf(
		"SELECT CASE WHEN count(*) FILTER (WHERE con.oid IS NULL"
		"                   AND NOT starts_with(pg_get_indexdef(i.indexrelid), d.prefix)) = 0 THEN"
		"       string_agg(CASE WHEN con.oid IS NOT NULL"
		"                       THEN format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s;', %s,"
		"                                   " INDEX_SCRATCH_PREFIX " || i.indexrelid, pg_get_constraintdef(con.oid))"
		"                       WHEN starts_with(pg_get_indexdef(i.indexrelid), d.prefix)"
		"                       THEN format('CREATE %%sINDEX %%I ON %%s USING %%s;',"
		"                                   CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END,"
		"                                   " INDEX_SCRATCH_PREFIX " || i.indexrelid, %s,"
		"                                   substr(pg_get_indexdef(i.indexrelid), length(d.prefix) + 1))"
		"                  END, ' ' ORDER BY i.indexrelid)"
		"       ELSE 'error' END"
		"  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
		"  LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid"
		"       AND con.contype IN ('p', 'u', 'x'),"
		"  LATERAL (SELECT format('CREATE %%sINDEX %%s ON %%s USING ',"
		"                         CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END,"
		"                         quote_ident(c.relname), %s) AS prefix) d"
		" WHERE i.indrelid = %u",
		quote_literal_cstr(scratch), quote_literal_cstr(scratch),
		quote_literal_cstr(qualified_name(relid)), relid));
	if (ddl && strcmp(ddl, "error") == 0)
		elog(ERROR, "unexpected index definition on relation %u", relid);
	if (ddl)
		run_sql(ddl, SPI_OK_UTILITY);
	bound = query_text(psprintf("SELECT pg_get_partition_constraintdef(%u)", relid));
	if (bound == NULL)
		return false;
	run_sql(psprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s)", scratch,
					 BOUND_CHECK_NAME, bound), SPI_OK_UTILITY);
	return true;
}

/*
 * The new table (just created under the scratch name) gets the rows and
 * statistics, then takes the old partition's place.  Returns its oid.
 */
static Oid
fill_and_swap(Oid relid, const char *scratch, Oid parent, const char *action)
{
	Oid			newrel;
	float4		reltuples = rel_reltuples(relid);
	bool		bound_checked = false;

	progress_start(action, relid, NULL);
	progress_set_totals(-1, reltuples >= 0 ? (int64) reltuples : -1);
	progress_set_phase("copying rows");
	copy_rows(relid, scratch, qualified_name(relid));
	newrel = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(scratch)),
							  NoLock, false);
	if (get_rel_relkind(relid) == RELKIND_RELATION && get_rel_relkind(newrel) == RELKIND_RELATION)
	{
		progress_set_phase("building indexes");
		bound_checked = copy_indexes(relid, scratch);
	}
	progress_set_phase("analyzing");
	run_sql(psprintf("ANALYZE %s", scratch), SPI_OK_UTILITY);
	progress_set_phase("swapping partitions");
	swap_partition(relid, newrel, parent, bound_checked);
	progress_end();
	return newrel;
}

/* A free name for the new table while both exist, in the old one's schema. */
static char *
scratch_name(Oid relid)
{
	Oid			nsp = get_rel_namespace(relid);
	char	   *name;

	for (int i = 0;; i++)
	{
		name = psprintf("destor_swap_%u%s", relid, i ? psprintf("_%d", i) : "");
		if (!OidIsValid(get_relname_relid(name, nsp)))
			return quote_qualified_identifier(get_namespace_name(nsp), name);
	}
}

/*
 * Run fn with SPI connected and search_path = pg_catalog, pg_temp; the
 * setting goes back at the end (or with the transaction on ERROR).
 */
static Oid
with_safe_path(Oid (*fn) (Oid, Name), Oid relid, Name pool)
{
	int			save_nestlevel;
	Oid			result;

	save_nestlevel = catalog_spi_connect();
	result = fn(relid, pool);
	catalog_spi_finish(save_nestlevel);
	return result;
}

/* ---------------------------------------------------------------------------
 * Tiering out
 * ------------------------------------------------------------------------- */
/*
 * Tiering and recall replace the partition by a new table and drop it: a
 * view or rule of another relation naming the partition itself (not the
 * parent) would make the DROP fail at the end with a bare dependency error.
 * Said up front, with the views named.
 */
static void
check_no_dependent_views(Oid relid, const char *name, const char *what)
{
	char	   *views = query_text(psprintf(
		"SELECT string_agg(DISTINCT v.oid::regclass::text, ', ')"
		"  FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid"
		"  JOIN pg_class v ON v.oid = r.ev_class"
		" WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass"
		"   AND d.refobjid = %u AND v.oid <> %u", relid, relid));

	if (views != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot %s partition \"%s\": views depend on it", what, name),
				 errdetail("Views or rules naming the partition itself: %s.", views),
				 errhint("Query the partitioned table in those views instead of the partition, or drop them and create them again afterwards.")));
}

static Oid
tier_one(Oid relid, Name poolname)
{
	Oid			parent;
	ForeignServer *pool;
	char	   *name;
	char	   *columns;
	char	   *checks;
	char	   *scratch;
	bool		use_am;

	parent = check_partition(relid, "tiered");
	name = get_rel_name(relid);
	if (is_tiered(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("partition \"%s\" is already tiered", name),
				 errhint("destor.recall_partition() brings it back.")));
	if (get_rel_relkind(relid) != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("partition \"%s\" is not a plain table", name),
				 errdetail("Only leaf partitions stored in heap tables can be tiered."),
				 errhint("Tier the partitions of a partitioned partition one by one.")));
	pool = GetForeignServerByName(NameStr(*poolname), false);
	if (!pool_is_destor_server(pool->serverid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not a destor pool", NameStr(*poolname)),
				 errhint("Give a server of the destor foreign-data wrapper.")));
	/* as CREATE FOREIGN TABLE and CREATE TABLE USING destor would, before any work */
	if (pg_foreign_server_aclcheck(pool->serverid, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FOREIGN_SERVER, pool->servername);

	/*
	 * A foreign table cannot be a partition of a table with a unique index,
	 * and has no index of its own: the rows go into a table USING destor
	 * when the parent has any index, and ATTACH attaches the indexes
	 * copy_indexes built on it.  A parent without a unique index whose
	 * partition has an index the access method lacks (BRIN, GIN, GiST...)
	 * keeps the foreign table, which has no index to lose.  Decided before
	 * anything is copied.
	 */
	use_am = query_text(psprintf(
		"SELECT CASE WHEN EXISTS (SELECT FROM pg_index WHERE indrelid = %u AND indisunique)"
		"  OR (EXISTS (SELECT FROM pg_index WHERE indrelid = %u)"
		"      AND NOT EXISTS (SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
		"                      JOIN pg_am am ON am.oid = c.relam"
		"                      WHERE i.indrelid = %u AND am.amname NOT IN ('btree', 'hash')))"
		"  THEN 'yes' END", parent, parent, relid)) != NULL;

	/*
	 * Foreign tables have no row-level security, and tiering does not copy
	 * policies: the grants would expose every row.
	 */
	check_no_dependent_views(relid, name, "tier");
	if (query_text(psprintf("SELECT CASE WHEN c.relrowsecurity OR EXISTS (SELECT FROM pg_policy p"
							"  WHERE p.polrelid = c.oid) THEN 'yes' END FROM pg_class c WHERE c.oid = %u",
							relid)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot tier partition \"%s\": it has row-level security", name),
				 use_am ? errdetail("Tiering does not copy row-level security policies.") :
				 errdetail("Foreign tables cannot have row-level security policies."),
				 errhint("Keep the partition local, or disable row-level security and drop its policies first.")));

	if (use_am)
	{
		char	   *other = query_text(psprintf(
			"SELECT (SELECT format('%%I (%%s)', c.relname, am.amname) FROM pg_index i"
			"  JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam"
			" WHERE i.indrelid = %u AND am.amname NOT IN ('btree', 'hash')"
			" ORDER BY c.relname LIMIT 1)", relid));

		if (other)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot tier partition \"%s\": index %s is not btree or hash", name, other),
					 errdetail("The parent's unique index makes the tiered partition a table USING destor, which has btree and hash indexes only."),
					 errhint("Drop that index of the partition, or keep the partition local.")));
	}

	check_no_dependent_views(relid, get_rel_name(relid), "recall");
	/* no writes to the partition from here on; reads go on */
	LockRelationOid(relid, ShareLock);
	scratch = scratch_name(relid);

	if (use_am)
	{
		/* the pool of a table USING destor is the setting's at CREATE */
		(void) set_config_option("destor.default_pool", NameStr(*poolname), PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		/* columns with NOT NULL, collations, defaults, generation and CHECKs */
		run_sql(psprintf("CREATE TABLE %s (LIKE %s INCLUDING CONSTRAINTS INCLUDING DEFAULTS"
						 " INCLUDING GENERATED) USING destor", scratch, qualified_name(relid)),
				SPI_OK_UTILITY);
		return fill_and_swap(relid, scratch, parent, "tier_partition");
	}

	columns = query_text(psprintf(
		"SELECT string_agg(format('%%I %%s%%s%%s', a.attname, format_type(a.atttypid, a.atttypmod),"
		"         CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation"
		"              THEN format(' COLLATE %%I.%%I', cn.nspname, co.collname) ELSE '' END,"
		"         CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END)"
		"       || CASE WHEN a.attgenerated = 's'"
		"               THEN format(' GENERATED ALWAYS AS (%%s) STORED', pg_get_expr(d.adbin, d.adrelid))"
		"               ELSE '' END, ', ' ORDER BY a.attnum)"
		"  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
		"  LEFT JOIN pg_collation co ON co.oid = a.attcollation"
		"  LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace"
		"  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
		" WHERE a.attrelid = %u AND a.attnum > 0 AND NOT a.attisdropped", relid));
	/* ATTACH wants the parent's CHECK constraints on the new partition too */
	checks = query_text(psprintf(
		"SELECT string_agg(format(', CONSTRAINT %%I %%s', conname, pg_get_constraintdef(oid)), '')"
		"  FROM pg_constraint WHERE conrelid = %u AND contype = 'c'", relid));
	run_sql(psprintf("CREATE FOREIGN TABLE %s (%s%s) SERVER %s", scratch, columns ? columns : "",
					 checks ? checks : "", quote_identifier(NameStr(*poolname))), SPI_OK_UTILITY);
	return fill_and_swap(relid, scratch, parent, "tier_partition");
}

Datum
destor_tier_partition(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(with_safe_path(tier_one, PG_GETARG_OID(0), PG_GETARG_NAME(1)));
}

/* ---------------------------------------------------------------------------
 * Recalling
 * ------------------------------------------------------------------------- */
static Oid
recall_one(Oid relid, Name unused)
{
	Oid			parent;
	char	   *scratch;
	char	   *old_q;

	parent = check_partition(relid, "recalled");
	if (!is_tiered(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("partition \"%s\" is not tiered", get_rel_name(relid)),
				 errdetail("It is neither a destor foreign table nor a table USING destor."),
				 errhint("destor.tier_partition() moves a partition offsite.")));

	/* no writes to the partition from here on; reads go on */
	LockRelationOid(relid, ShareLock);
	scratch = scratch_name(relid);
	old_q = qualified_name(relid);
	/*
	 * Columns, NOT NULL and CHECK constraints (and the defaults a table
	 * USING destor kept); ATTACH adds the parent's indexes, or attaches those
	 * copy_indexes built for a table USING destor.  A heap whatever
	 * default_table_access_method says.
	 */
	run_sql(psprintf("CREATE TABLE %s (LIKE %s INCLUDING CONSTRAINTS INCLUDING DEFAULTS"
					 " INCLUDING GENERATED) USING heap", scratch, old_q),
			SPI_OK_UTILITY);
	return fill_and_swap(relid, scratch, parent, "recall_partition");
}

Datum
destor_recall_partition(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(with_safe_path(recall_one, PG_GETARG_OID(0), NULL));
}

/* ---------------------------------------------------------------------------
 * Policies: every plain partition of a range-partitioned table but the
 * newest keep_local (by bounds), or every one whose upper bound is at least
 * older_than in the past (a single date or timestamp key).  The default
 * partition always stays.
 * ------------------------------------------------------------------------- */

/* The upper bound of a range partition as a timestamptz; false if none. */
static bool
partition_upper_time(Oid relid, TimestampTz *upper)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	PartitionBoundSpec *spec;
	PartitionRangeDatum *prd;
	Const	   *c;
	Datum		d;
	bool		isnull;
	int			overflow = 0;

	if (!HeapTupleIsValid(tup))
		return false;
	d = SysCacheGetAttr(RELOID, tup, Anum_pg_class_relpartbound, &isnull);
	spec = isnull ? NULL : castNode(PartitionBoundSpec, stringToNode(TextDatumGetCString(d)));
	ReleaseSysCache(tup);
	if (spec == NULL || spec->is_default || spec->strategy != PARTITION_STRATEGY_RANGE ||
		list_length(spec->upperdatums) != 1)
		return false;
	prd = linitial_node(PartitionRangeDatum, spec->upperdatums);
	if (prd->kind != PARTITION_RANGE_DATUM_VALUE)
		return false;			/* MAXVALUE: never old */
	c = castNode(Const, prd->value);
	switch (c->consttype)
	{
		case TIMESTAMPTZOID:
			*upper = DatumGetTimestampTz(c->constvalue);
			return true;
		case TIMESTAMPOID:
			*upper = timestamp2timestamptz_opt_overflow(DatumGetTimestamp(c->constvalue), &overflow);
			return overflow <= 0;
		case DATEOID:
			*upper = date2timestamptz_opt_overflow(DatumGetDateADT(c->constvalue), &overflow);
			return overflow <= 0;
		default:
			return false;
	}
}

/*
 * The plain partitions a policy tiers, oldest first.  keep_local >= 0
 * keeps the newest that many; else older_than (an interval) applies.
 */
static List *
policy_partitions(Oid parent, int32 keep_local, Interval *older_than)
{
	Relation	rel;
	PartitionKey key;
	PartitionDesc pd;
	List	   *result = NIL;
	int			nranges = 0;	/* partitions other than the default one */
	int			cut = 0;
	TimestampTz cutoff = 0;
	char	   *parent_name = get_rel_name(parent);

	if (parent_name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", parent)));
	if (get_rel_relkind(parent) != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a partitioned table", parent_name)));
	/*
	 * Ownership before the lock (as RangeVarCallbackOwnsTable does): a role
	 * that may not tier the table must not hold up its VACUUM or DDL.
	 */
	if (!pg_class_ownercheck(parent, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, parent_name);

	/* the partition list cannot change while we work through it */
	rel = table_open(parent, ShareUpdateExclusiveLock);
	key = RelationGetPartitionKey(rel);
	if (get_partition_strategy(key) != PARTITION_STRATEGY_RANGE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("\"%s\" is not partitioned by range", parent_name),
				 errdetail("Only range partitions have an order from old to new."),
				 errhint("Tier its partitions one by one with destor.tier_partition().")));
	if (older_than != NULL &&
		(get_partition_natts(key) != 1 ||
		 (get_partition_col_typid(key, 0) != DATEOID &&
		  get_partition_col_typid(key, 0) != TIMESTAMPOID &&
		  get_partition_col_typid(key, 0) != TIMESTAMPTZOID)))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("\"%s\" is not partitioned by one date or timestamp column", parent_name),
				 errdetail("older_than compares partition bounds with the current time."),
				 errhint("Use keep_local => n to keep the newest n partitions local.")));
	pd = RelationGetPartitionDesc(rel, true);

	/* range partitions come in bound order, the default partition among them */
	for (int i = 0; i < pd->nparts; i++)
		if (!(pd->boundinfo && i == pd->boundinfo->default_index))
			nranges++;
	if (older_than == NULL)
		cut = nranges - keep_local;
	else
		cutoff = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
														 TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
														 IntervalPGetDatum(older_than)));
	for (int i = 0, pos = 0; i < pd->nparts; i++)
	{
		TimestampTz upper;

		if (pd->boundinfo && i == pd->boundinfo->default_index)
			continue;
		pos++;
		if (older_than == NULL ? pos > cut :
			!(partition_upper_time(pd->oids[i], &upper) && upper <= cutoff))
			continue;
		if (get_rel_relkind(pd->oids[i]) == RELKIND_RELATION && !is_destor_am_table(pd->oids[i]))
			result = lappend_oid(result, pd->oids[i]);
	}
	table_close(rel, NoLock);
	return result;
}

/* Tier the given partitions, one result row each. */
static void
tier_each(FunctionCallInfo fcinfo, List *parts, Name pool)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;

	foreach(lc, parts)
	{
		Datum		value = ObjectIdGetDatum(with_safe_path(tier_one, lfirst_oid(lc), pool));
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
}

Datum
destor_tier_partitions(PG_FUNCTION_ARGS)
{
	int32		keep_local = PG_GETARG_INT32(2);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (keep_local < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keep_local must not be negative"),
				 errdetail("The value given was %d.", keep_local)));
	tier_each(fcinfo, policy_partitions(PG_GETARG_OID(0), keep_local, NULL), PG_GETARG_NAME(1));
	return (Datum) 0;
}

Datum
destor_tier_partitions_older(PG_FUNCTION_ARGS)
{
	Interval   *older_than = PG_GETARG_INTERVAL_P(2);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (DatumGetBool(DirectFunctionCall2(interval_lt, IntervalPGetDatum(older_than),
										 IntervalPGetDatum(palloc0(sizeof(Interval))))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must not be negative"),
				 errdetail("The value given was %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(older_than))))));
	tier_each(fcinfo, policy_partitions(PG_GETARG_OID(0), -1, older_than), PG_GETARG_NAME(1));
	return (Datum) 0;
}

/* ---------------------------------------------------------------------------
 * Declared policies (destor.tiering_policies), applied by
 * destor.apply_tiering_policies() — which the maintenance worker calls every
 * round.  Each policy runs in a subtransaction: one that fails (a parent
 * with a primary key, a pool that is gone) is reported and rolled back, and
 * the others still run.
 * ------------------------------------------------------------------------- */
PG_FUNCTION_INFO_V1(destor_apply_tiering_policies);

typedef struct Policy
{
	Oid			parent;
	NameData	pool;
	int32		keep_local;		/* -1: older_than applies */
	Interval   *older_than;
	List	   *done;			/* partitions apply_policy tiered */
} Policy;

static List *
read_policies(void)
{
	MemoryContext caller = CurrentMemoryContext;
	List	   *policies = NIL;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	run_sql("SELECT parent::oid, pool, keep_local, older_than FROM destor.tiering_policies "
			"ORDER BY parent::regclass::text", SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(caller);
		Policy	   *p = palloc0(sizeof(Policy));
		bool		isnull;
		Datum		d;

		p->parent = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		namestrcpy(&p->pool, NameStr(*DatumGetName(SPI_getbinval(tup, desc, 2, &isnull))));
		d = SPI_getbinval(tup, desc, 3, &isnull);
		p->keep_local = isnull ? -1 : DatumGetInt32(d);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		if (!isnull)
		{
			p->older_than = palloc(sizeof(Interval));
			memcpy(p->older_than, DatumGetIntervalP(d), sizeof(Interval));
		}
		policies = lappend(policies, p);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return policies;
}

/*
 * One policy (run by catalog_try: a policy that fails is rolled back
 * alone).  As the table's owner, in a restricted operation (as ANALYZE
 * does): the copy runs the owner's code (generated columns, defaults),
 * which must not run with our privileges.
 */
static void
apply_policy(void *arg)
{
	Policy	   *p = (Policy *) arg;
	ListCell   *pc;
	Oid			save_userid;
	int			save_sec;

	p->done = NIL;
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(rel_owner(p->parent),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	foreach(pc, policy_partitions(p->parent, p->keep_local, p->older_than))
		p->done = lappend_oid(p->done, with_safe_path(tier_one, lfirst_oid(pc), &p->pool));
	SetUserIdAndSecContext(save_userid, save_sec);
}

Datum
destor_apply_tiering_policies(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	foreach(lc, read_policies())
	{
		Policy	   *p = lfirst(lc);
		List	   *done;
		ListCell   *dc;
		char	   *name = get_rel_name(p->parent);
		ErrorData  *error;

		CHECK_FOR_INTERRUPTS();
		if (name == NULL)
		{
			ereport(WARNING,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("a tiering policy names a table that no longer exists (OID %u)", p->parent),
					 errhint("DELETE FROM destor.tiering_policies WHERE parent = %u;", p->parent)));
			continue;
		}
		if (!catalog_try(apply_policy, p, &error))
		{
			ereport(WARNING,
					(errcode(error->sqlerrcode),
					 errmsg("tiering policy of table \"%s\" failed: %s", name, error->message),
					 error->detail ? errdetail("%s", error->detail) : 0,
					 error->hint ? errhint("%s", error->hint) : 0));
			FreeErrorData(error);
			p->done = NIL;
		}
		done = p->done;
		foreach(dc, done)
		{
			Datum		values[2] = {ObjectIdGetDatum(p->parent), ObjectIdGetDatum(lfirst_oid(dc))};
			bool		nulls[2] = {false, false};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}
