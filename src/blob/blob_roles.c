/*
 * blob_roles.c — blob owners as roles see them.  Blobs are rows of
 * destor.blobs, not catalog objects, so pg_shdepend knows nothing of them;
 * a utility hook gives them the behaviour of large objects in the database
 * where the command runs: DROP ROLE is refused while the role owns blobs
 * here or holds privileges on some, REASSIGN OWNED gives them to the new
 * role (their ACLs following, as ALTER ... OWNER makes them), DROP OWNED
 * revokes what was granted to the role and deletes what it owns (their
 * shards go after commit).
 *
 * Other databases: DROP ROLE run elsewhere cannot read this database's
 * destor.blobs, so every role that owns a blob here or was granted a
 * privilege on one gets a pg_shdepend row, as a grantee of a table has:
 * (this database, pg_class, destor.blobs, SHARED_DEPENDENCY_ACL).
 * PostgreSQL's own check then refuses DROP ROLE from any database ("1
 * object in database ..."), as it does for a large object's owner, and a
 * role can never be dropped while its OID is still named by a blob here —
 * so a later role that happens to get the same OID inherits nothing.  The
 * row is added when a role becomes an owner or grantee (blob_role_depend)
 * and removed in this database by DROP ROLE and DROP OWNED before
 * PostgreSQL looks at it (once the blob checks above have passed); a role
 * whose last blob here went away keeps the row until then, which only
 * means DROP ROLE must be run here first (or DROP OWNED).  pg_shdepend is
 * not dumped: destor.blob_record_role_dependencies() records the rows of
 * a restored or upgraded database.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_shdepend.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "destor/blob.h"
#include "destor/catalog.h"
#include "destor/object.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

PG_FUNCTION_INFO_V1(blob_record_role_dependencies);

/* the (sub)transaction in which blob_role_depend last found or made a row */
static Oid	depend_role = InvalidOid;
static LocalTransactionId depend_lxid = InvalidLocalTransactionId;
static SubTransactionId depend_subid = InvalidSubTransactionId;

static Oid
blob_table_oid(void)
{
	Oid			nsp = get_namespace_oid("destor", true);

	return OidIsValid(nsp) ? get_relname_relid("blobs", nsp) : InvalidOid;
}

/* Has role a pg_shdepend row on destor.blobs (relid) in this database? */
static bool
blob_role_dep_exists(Oid role, Oid relid)
{
	Relation	rel = table_open(SharedDependRelationId, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key[0], Anum_pg_shdepend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(AuthIdRelationId));
	ScanKeyInit(&key[1], Anum_pg_shdepend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(role));
	scan = systable_beginscan(rel, SharedDependReferenceIndexId, true, NULL, 2, key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_shdepend sd = (Form_pg_shdepend) GETSTRUCT(tup);

		found = sd->dbid == MyDatabaseId && sd->classid == RelationRelationId &&
			sd->objid == relid && sd->deptype == SHARED_DEPENDENCY_ACL;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* Does destor.blobs' own ACL (pg_class.relacl) name role? */
static bool
blob_table_acl_names(Oid relid, Oid role)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	bool		isnull;
	Datum		d;
	bool		found = false;

	if (!HeapTupleIsValid(tup))
		return false;
	d = SysCacheGetAttr(RELOID, tup, Anum_pg_class_relacl, &isnull);
	if (!isnull)
	{
		Acl		   *acl = DatumGetAclP(d);
		AclItem    *items = ACL_DAT(acl);

		for (int i = 0; i < ACL_NUM(acl) && !found; i++)
			found = items[i].ai_grantee == role || items[i].ai_grantor == role;
	}
	ReleaseSysCache(tup);
	return found;
}

/* updateAclDependencies pfrees the member arrays it is given */
static Oid *
blob_role_array(Oid role)
{
	Oid		   *a = palloc(sizeof(Oid));

	a[0] = role;
	return a;
}

/*
 * blob_role_depend — role owns a blob of this database or holds a privilege
 * on one: make sure DROP ROLE run in any database sees it (see the top of
 * the file).  PUBLIC and pinned roles need nothing.  Checked once per
 * (sub)transaction and role, so a stream of blob_put pays one index probe.
 */
void
blob_role_depend(Oid role)
{
	Oid			relid;

	if (role == ACL_ID_PUBLIC || IsPinnedObject(AuthIdRelationId, role) ||
		(role == depend_role && depend_lxid == MyProc->lxid &&
		 depend_subid == GetCurrentSubTransactionId()))
		return;
	relid = blob_table_oid();
	if (!OidIsValid(relid))
		return;
	if (!blob_role_dep_exists(role, relid))
		updateAclDependencies(RelationRelationId, relid, 0, InvalidOid, 0, NULL, 1,
							  blob_role_array(role));
	depend_role = role;
	depend_lxid = MyProc->lxid;
	depend_subid = GetCurrentSubTransactionId();
}

/* blob_role_undepend — the role's row in this database goes (DROP ROLE/OWNED). */
static void
blob_role_undepend(Oid role)
{
	Oid			relid = blob_table_oid();

	/*
	 * A role granted a privilege on the table destor.blobs itself shares
	 * the row with PostgreSQL: leave it to DROP OWNED, which revokes that
	 * privilege and drops the row, and to DROP ROLE's own refusal.
	 */
	if (OidIsValid(relid) && blob_role_dep_exists(role, relid) &&
		!blob_table_acl_names(relid, role))
	{
		updateAclDependencies(RelationRelationId, relid, 0, InvalidOid, 1, blob_role_array(role),
							  0, NULL);
		CommandCounterIncrement();	/* PostgreSQL's check, next, must not see it */
	}
	depend_role = InvalidOid;
}

/*
 * blob_forget_dropped_roles — OIDs of roles dropped from another database
 * before their blobs had pg_shdepend rows: a later role given the same OID
 * must not inherit them.  Such a blob goes to the bootstrap superuser
 * (only superusers could use it already) without the grants its vanished
 * owner made; a vanished grantee's items go.  Access only shrinks.
 */
static void
blob_forget_dropped_roles(void)
{
	uint64		owners;
	uint64		grantees;

	if (SPI_execute("UPDATE destor.blobs b SET owner = " CppAsString2(BOOTSTRAP_SUPERUSERID)
					"::pg_catalog.oid::pg_catalog.regrole, acl = NULL"
					" WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_authid r WHERE r.oid = b.owner::pg_catalog.oid)",
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update destor.blobs");
	owners = SPI_processed;
	if (SPI_execute("UPDATE destor.blobs b SET acl = (SELECT pg_catalog.array_agg(i) FROM pg_catalog.unnest(b.acl::pg_catalog.aclitem[]) i"
					"  WHERE EXISTS (SELECT FROM pg_catalog.aclexplode(ARRAY[i]) e"
					"   WHERE e.grantee = 0 OR e.grantee IN (SELECT r.oid FROM pg_catalog.pg_authid r)))"
					" WHERE EXISTS (SELECT FROM pg_catalog.aclexplode(b.acl) e WHERE e.grantee <> 0"
					"  AND NOT EXISTS (SELECT FROM pg_catalog.pg_authid r WHERE r.oid = e.grantee))",
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update destor.blobs");
	grantees = SPI_processed;
	if (owners > 0 || grantees > 0)
		ereport(WARNING,
				(errmsg("destor.blobs named roles that no longer exist"),
				 errdetail("Blobs whose owner was dropped from another database: %llu (now the bootstrap superuser's, without their grants); blobs with grants to dropped roles: %llu (those grants removed).",
						   (unsigned long long) owners, (unsigned long long) grantees),
				 errhint("Give the blobs to their new owner with destor.blob_set_owner().")));
}

/*
 * destor.blob_record_role_dependencies() → integer: record the rows of
 * every owner and grantee of this database's blobs (after a restore or an
 * upgrade: pg_shdepend is not dumped), after clearing the OIDs of roles
 * that no longer exist; the number of roles recorded.
 */
Datum
blob_record_role_dependencies(PG_FUNCTION_ARGS)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to record blob role dependencies"),
				 errdetail("Only superusers may run destor.blob_record_role_dependencies().")));
	PG_RETURN_INT32(blob_record_all_role_dependencies());
}

/* The work of blob_record_role_dependencies(), also done by recover_catalog. */
int
blob_record_all_role_dependencies(void)
{
	List	   *roles = NIL;
	ListCell   *lc;

	blob_pack_flush_all();		/* this transaction's small blobs have rows too */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	blob_forget_dropped_roles();
	/* roles that still exist: a dangling OID cannot be depended on */
	if (SPI_execute("SELECT r.oid FROM pg_catalog.pg_authid r WHERE r.oid IN ("
					" SELECT b.owner::pg_catalog.oid FROM destor.blobs b"
					" UNION SELECT (pg_catalog.aclexplode(b.acl)).grantee FROM destor.blobs b)",
					false, 0) != SPI_OK_SELECT)	/* see rows the caller wrote (recovery) */
		elog(ERROR, "could not list the roles of destor.blobs");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		roles = lappend_oid(roles, DatumGetObjectId(d));	/* in the caller's context */
	}
	SPI_finish();
	foreach(lc, roles)
		blob_role_depend(lfirst_oid(lc));
	return list_length(roles);
}

/* Is destor installed in this database (so destor.blobs exists)? */
static bool
blob_catalog_present(void)
{
	return IsTransactionState() && OidIsValid(get_extension_oid("destor", true));
}

static void
blob_check_drop_role(DropRoleStmt *stmt)
{
	ListCell   *lc;

	/* the roles' small blobs of this transaction have no row before this */
	blob_pack_flush_all();
	foreach(lc, stmt->roles)
	{
		RoleSpec   *spec = lfirst(lc);
		Oid			role = get_rolespec_oid(spec, true);
		int64		n;

		if (!OidIsValid(role))
			continue;			/* DROP ROLE itself says what is wrong */
		n = catalog_count_blobs_of(role);
		if (n == 0)
		{
			/* privileges granted to it depend on it too, as on a large object */
			int64		g = list_length(catalog_blobs_granted_to(role));

			if (g > 0)
				ereport(ERROR,
						(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
						 errmsg("role \"%s\" cannot be dropped because some objects depend on it",
								get_rolespec_name(spec)),
						 errdetail_plural("It has privileges on %lld destor blob in database \"%s\".",
										  "It has privileges on %lld destor blobs in database \"%s\".",
										  g, (long long) g, get_database_name(MyDatabaseId)),
						 errhint("Revoke them with DROP OWNED BY %s or destor.blob_revoke().",
								 quote_identifier(get_rolespec_name(spec)))));
		}
		if (n > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("role \"%s\" cannot be dropped because some objects depend on it",
							get_rolespec_name(spec)),
					 errdetail_plural("It owns %lld destor blob in database \"%s\".",
									  "It owns %lld destor blobs in database \"%s\".",
									  n, (long long) n, get_database_name(MyDatabaseId)),
					 errhint("Give them to another role with REASSIGN OWNED BY %s TO ..., or delete them with DROP OWNED BY %s or destor.blob_delete().",
							 quote_identifier(get_rolespec_name(spec)),
							 quote_identifier(get_rolespec_name(spec)))));
		/* nothing here names it: PostgreSQL's check need not see this database */
		blob_role_undepend(role);
	}
}

static void
blob_next_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				  ProcessUtilityContext context, ParamListInfo params,
				  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							 dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
								dest, qc);
}

/* Is relid one of destor's tables with a foreign key to destor.objects? */
static bool
copy_references_objects(Oid relid)
{
	Oid			nsp = get_namespace_oid("destor", true);
	const char *name;

	if (!OidIsValid(relid) || !OidIsValid(nsp) || get_rel_namespace(relid) != nsp)
		return false;
	name = get_rel_name(relid);
	return name != NULL && (strcmp(name, "blobs") == 0 || strcmp(name, "shards") == 0 ||
							strcmp(name, "segments") == 0 || strcmp(name, "lo_tiers") == 0);
}

/* Does a GRANT or REVOKE change destor.blobs' own privileges? */
static bool
grant_names_blobs(GrantStmt *stmt)
{
	ListCell   *lc;

	if (stmt->objtype != OBJECT_TABLE)
		return false;
	if (stmt->targtype == ACL_TARGET_ALL_IN_SCHEMA)
	{
		foreach(lc, stmt->objects)
			if (strcmp(strVal(lfirst(lc)), "destor") == 0)
				return true;
		return false;
	}
	if (stmt->targtype != ACL_TARGET_OBJECT)
		return false;
	foreach(lc, stmt->objects)
		if (RangeVarGetRelid((RangeVar *) lfirst(lc), NoLock, true) == blob_table_oid())
			return true;
	return false;
}

static void
blob_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, DropRoleStmt) && blob_catalog_present())
		blob_check_drop_role((DropRoleStmt *) parsetree);
	else if (IsA(parsetree, DropOwnedStmt) && blob_catalog_present())
	{
		ListCell   *lc;

		/*
		 * Before PostgreSQL's DROP OWNED, which would treat the row as a
		 * privilege on destor.blobs; below, the role's blobs and grants go.
		 */
		foreach(lc, ((DropOwnedStmt *) parsetree)->roles)
			blob_role_undepend(get_rolespec_oid(lfirst(lc), false));
	}

	if (IsA(parsetree, CopyStmt) && ((CopyStmt *) parsetree)->is_from &&
		((CopyStmt *) parsetree)->relation != NULL && blob_catalog_present())
	{
		CopyStmt   *copy = (CopyStmt *) parsetree;
		Oid			relid = RangeVarGetRelid(copy->relation, NoLock, true);
		bool		blobs = OidIsValid(relid) && relid == blob_table_oid();
		int			nestlevel = NewGUCNestLevel();

		/*
		 * A restore loading destor's catalog.  pg_restore -j loads the
		 * tables that reference destor.objects while objects is loading in
		 * another session (their foreign keys exist before the data, being
		 * the extension's), so every row failed its foreign key check: as
		 * pg_dump's own tables get their foreign keys after the data, a
		 * superuser's COPY FROM STDIN into them skips the checks (replica
		 * role; destor's own triggers fire ALWAYS).  Blob owners and
		 * grantees: see blob_restorable.c.
		 */
		if (copy_references_objects(relid) && copy->filename == NULL && !copy->is_program &&
			superuser())
			(void) set_config_option("session_replication_role", "replica", PGC_SUSET,
									 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		restorable_set_restoring(blobs);
		PG_TRY();
		{
			blob_next_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							  dest, qc);
		}
		PG_FINALLY();
		{
			restorable_set_restoring(false);
		}
		PG_END_TRY();
		AtEOXact_GUC(true, nestlevel);
		return;
	}

	blob_next_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);

	/*
	 * GRANT and REVOKE on destor.blobs recompute its pg_shdepend ACL rows
	 * from the table's own ACL, which erases the rows of the blobs' owners
	 * and grantees (blob_role_depend): record them again.
	 */
	if (IsA(parsetree, GrantStmt) && !creating_extension &&
		grant_names_blobs((GrantStmt *) parsetree) && blob_catalog_present())
	{
		depend_role = InvalidOid;	/* its rows may be gone: look again */
		blob_record_all_role_dependencies();
	}

	/* the command has checked the caller's rights over the roles */
	if (IsA(parsetree, ReassignOwnedStmt) && blob_catalog_present())
	{
		ReassignOwnedStmt *stmt = (ReassignOwnedStmt *) parsetree;
		Oid			to = get_rolespec_oid(stmt->newrole, false);
		ListCell   *lc;

		blob_pack_flush_all();	/* the roles' small blobs of this transaction too */
		foreach(lc, stmt->roles)
		{
			Oid			from = get_rolespec_oid(lfirst(lc), false);
			ListCell   *bc;

			/* a blob with grants one by one: its ACL follows its owner
			 * (aclnewowner); then the others, in one statement */
			foreach(bc, catalog_blobs_of(from))
			{
				uint8	   *id = lfirst(bc);
				Oid			owner;
				Acl		   *acl;

				if (catalog_get_blob_acl_ext(id, &owner, &acl, true) && acl != NULL)
					blob_acl_change_owner(id, owner, acl, to);
			}
			catalog_reassign_blobs(from, to);
		}
		if (catalog_count_blobs_of(to) > 0)
			blob_role_depend(to);
	}
	else if (IsA(parsetree, DropOwnedStmt) && blob_catalog_present())
	{
		DropOwnedStmt *stmt = (DropOwnedStmt *) parsetree;
		ListCell   *lc;

		foreach(lc, stmt->roles)
		{
			ListCell   *bc;

			/* as DROP OWNED revokes what was granted to the role elsewhere */
			blob_acl_forget_grantee(get_rolespec_oid(lfirst(lc), false));
			blob_pack_flush_all();	/* the role's small blobs of this transaction too */
			foreach(bc, catalog_blobs_of(get_rolespec_oid(lfirst(lc), false)))
			{
				uint8	   *id = lfirst(bc);
				Oid			owner;
				bool		packed;
				uint8		pack[CODEC_OBJID_LEN];
				uint64		off;
				uint64		len;
				ObjectMeta *meta;

				if (blob_catalog_get(id, &owner, &packed, pack, &off, &len) && packed)
				{
					blob_pack_retire(id);
					continue;
				}
				meta = catalog_get_object(id, true);
				catalog_delete_blob(id);
				if (meta)
					object_delete_at_commit(meta);
			}
		}
	}
}

void
blob_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = blob_process_utility;
	blob_pack_init();
}
