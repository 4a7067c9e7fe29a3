/*
 * blob_roles.c — blob owners as roles see them.  Blobs are rows of
 * destor.blobs, not catalog objects, so pg_shdepend knows nothing of them;
 * a utility hook gives them the behaviour of large objects in the database
 * where the command runs: DROP ROLE is refused while the role owns blobs
 * here or holds privileges on some, REASSIGN OWNED gives them to the new
 * role (their ACLs following, as ALTER ... OWNER makes them), DROP OWNED
 * revokes what was granted to the role and deletes what it owns (their
 * shards go after commit).  Blobs in other databases are not seen
 * (documented).
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "destor/blob.h"
#include "destor/catalog.h"
#include "destor/object.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

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
	}
}

static void
blob_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, DropRoleStmt) && blob_catalog_present())
		blob_check_drop_role((DropRoleStmt *) parsetree);

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							 dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
								dest, qc);

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

				if (catalog_get_blob_acl(id, &owner, &acl) && acl != NULL)
					blob_acl_change_owner(id, owner, acl, to);
			}
			catalog_reassign_blobs(from, to);
		}
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
