/*
 * blob_acl.c — who may do what with a blob: privileges like large objects'.
 *
 * A blob has an owner (destor.blobs.owner) and an ACL (destor.blobs.acl,
 * aclitem[], NULL for the default: the owner alone), exactly as a large
 * object has lomowner and lomacl.  The privileges are SELECT (read the
 * blob: blob_get, blob_read, blob_size, blob_export, blob_to_lo, blob_sha256,
 * blob_verify, the views) and UPDATE (write into an existing blob; no
 * function does so today — blobs are immutable and a new content is a new
 * blob — so it is recorded and shown, and honoured by whatever writes into
 * a blob later, as UPDATE on a large object is by lo_open(INV_WRITE)).
 * Deleting a blob and changing its owner or ACL need ownership, as
 * lo_unlink, ALTER LARGE OBJECT OWNER and GRANT do.  Superusers and roles
 * with the privileges of the owner (members that inherit) may do all of it.
 *
 * The check is made against the role running the statement (GetUserId():
 * the definer inside a SECURITY DEFINER function, the view's caller in a
 * view), never against whoever created or holds a handle: a handle is just
 * a blob id.  The ACL is read from the catalog on every check that needs it
 * (owners never need it), so a REVOKE takes effect at the grantee's next
 * call once it has committed; the per-backend metadata cache in blob.c
 * keeps the owner only.
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "destor/blob.h"
#include "destor/catalog.h"
#include "destor/object.h"

PG_FUNCTION_INFO_V1(blob_grant);
PG_FUNCTION_INFO_V1(blob_revoke);
PG_FUNCTION_INFO_V1(blob_set_owner);

/* The privilege an action of blob.c needs; ACL_NO_RIGHTS: ownership. */
static AclMode
blob_action_mode(const char *action)
{
	if (strcmp(action, "read") == 0)
		return ACL_SELECT;
	if (strcmp(action, "write") == 0 || strcmp(action, "update") == 0)
		return ACL_UPDATE;
	return ACL_NO_RIGHTS;
}

/*
 * blob_acl_permits — may the current user perform action ("read", "write",
 * "delete", ...) on the blob that owner owns?  Owners (and roles with their
 * privileges, superusers included) may do everything; others need the
 * action's privilege in the blob's ACL, read afresh from the catalog.
 */
bool
blob_acl_permits(const uint8 id[CODEC_OBJID_LEN], Oid owner, const char *action)
{
	AclMode		mode;
	Acl		   *acl;
	Oid			cur_owner;

	if (has_privs_of_role(GetUserId(), owner))
		return true;
	mode = blob_action_mode(action);
	if (mode == ACL_NO_RIGHTS)
		return false;
	if (!catalog_get_blob_acl(id, &cur_owner, &acl) || acl == NULL)
		return false;
	return aclmask(acl, GetUserId(), cur_owner, mode, ACLMASK_ANY) != 0;
}

/* What the action needs, said in an errdetail. */
const char *
blob_acl_requirement(const char *action)
{
	switch (blob_action_mode(action))
	{
		case ACL_SELECT:
			return "Reading a blob needs the SELECT privilege on it (destor.blob_grant), or its ownership.";
		case ACL_UPDATE:
			return "Writing into a blob needs the UPDATE privilege on it (destor.blob_grant), or its ownership.";
		default:
			return "Only the blob's owner, members of the owning role and superusers may do that.";
	}
}

/* ---------------------------------------------------------------------------
 * GRANT, REVOKE and ALTER ... OWNER for blobs
 * ------------------------------------------------------------------------- */

static void
blob_arg_not_null(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/* A role given by oid that exists (a regrole may hold a dropped role's oid). */
static void
blob_check_role_exists(Oid role)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", role)));
}

static AclMode
blob_parse_privilege(text *t)
{
	char	   *p = text_to_cstring(t);

	if (pg_strcasecmp(p, "SELECT") == 0)
		return ACL_SELECT;
	if (pg_strcasecmp(p, "UPDATE") == 0)
		return ACL_UPDATE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unrecognized blob privilege \"%s\"", p),
			 errhint("Valid privileges are SELECT and UPDATE.")));
	return ACL_NO_RIGHTS;		/* keep the compiler quiet */
}

/*
 * The blob's owner and ACL, after checking that the current user owns it
 * (or is a superuser): the same error for a blob that does not exist, as
 * blob.c gives, so that nobody learns of blobs he may not touch.
 */
static Oid
blob_owned_for(const uint8 *id, Acl **acl, const char *what)
{
	Oid			owner = InvalidOid;
	bool		found;

	blob_pack_settle(id);		/* a small blob of this transaction: its row first */
	found = catalog_get_blob_acl_ext(id, &owner, acl, true);
	if (!found && superuser())
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("blob %s does not exist", object_id_text(id)),
				 errhint("It may have been deleted, or created by a transaction that did not commit.")));
	if (!found || !has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("blob does not exist or you may not %s", what),
				 errdetail("Blob %s: only its owner, members of the owning role and superusers may %s, and others are not told whether it exists.",
						   object_id_text(id), what)));
	return owner;
}

/*
 * blob_acl_grant_or_revoke — GRANT privilege ON blob TO role, or REVOKE.
 * Role 0 ('-'::regrole) is PUBLIC.  The grantor is always the owner, as in
 * PostgreSQL when a superuser or a member of the owning role grants; there
 * are no grant options.
 */
static void
blob_acl_grant_or_revoke(FunctionCallInfo fcinfo, bool grant)
{
	const uint8 *id;
	Oid			role;
	AclMode		mode;
	Oid			owner;
	Acl		   *acl;
	AclItem		item;

	blob_arg_not_null(fcinfo, 0, "blob");
	blob_arg_not_null(fcinfo, 1, "role");
	blob_arg_not_null(fcinfo, 2, "privilege");
	id = (const uint8 *) PG_GETARG_POINTER(0);	/* a handle is the blob id */
	role = PG_GETARG_OID(1);
	mode = blob_parse_privilege(PG_GETARG_TEXT_PP(2));
	if (role != ACL_ID_PUBLIC)
		blob_check_role_exists(role);

	owner = blob_owned_for(id, &acl, grant ? "grant privileges on it" : "revoke privileges on it");
	if (acl == NULL)
	{
		if (!grant)
			return;				/* the default ACL grants nobody anything */
		acl = acldefault(OBJECT_LARGEOBJECT, owner);
	}
	item.ai_grantee = role;
	item.ai_grantor = owner;
	ACLITEM_SET_PRIVS_GOPTIONS(item, mode, ACL_NO_RIGHTS);
	acl = aclupdate(acl, &item, grant ? ACL_MODECHG_ADD : ACL_MODECHG_DEL, owner, DROP_CASCADE);
	catalog_set_blob_owner_acl(id, owner, acl);
	if (grant)
		blob_role_depend(role);	/* DROP ROLE anywhere must see the grant */
}

Datum
blob_grant(PG_FUNCTION_ARGS)
{
	blob_acl_grant_or_revoke(fcinfo, true);
	PG_RETURN_VOID();
}

Datum
blob_revoke(PG_FUNCTION_ARGS)
{
	blob_acl_grant_or_revoke(fcinfo, false);
	PG_RETURN_VOID();
}

/*
 * blob_acl_change_owner — give a blob to another role, its ACL following as
 * ALTER ... OWNER makes it (grants made by the old owner are now the new
 * owner's).  No privilege check: callers made it.
 */
void
blob_acl_change_owner(const uint8 id[CODEC_OBJID_LEN], Oid old_owner, Acl *acl, Oid new_owner)
{
	if (acl != NULL)
		acl = aclnewowner(acl, old_owner, new_owner);
	catalog_set_blob_owner_acl(id, new_owner, acl);
	blob_role_depend(new_owner);
}

/*
 * blob_set_owner — ALTER LARGE OBJECT ... OWNER TO for a blob: the owner (a
 * member of the owning role) or a superuser, who unless superuser must
 * also be a member of the new owner (else one could give away objects to
 * make another role pay for them, or to escape a quota).
 */
Datum
blob_set_owner(PG_FUNCTION_ARGS)
{
	const uint8 *id;
	Oid			new_owner;
	Oid			owner;
	Acl		   *acl;

	blob_arg_not_null(fcinfo, 0, "blob");
	blob_arg_not_null(fcinfo, 1, "role");
	id = (const uint8 *) PG_GETARG_POINTER(0);
	new_owner = PG_GETARG_OID(1);
	if (new_owner == InvalidOid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a blob's owner must be a role, not PUBLIC")));
	blob_check_role_exists(new_owner);
	owner = blob_owned_for(id, &acl, "change its owner");
	if (!superuser())
		check_is_member_of_role(GetUserId(), new_owner);
	if (owner != new_owner)
		blob_acl_change_owner(id, owner, acl, new_owner);
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------------
 * Roles going away (blob_roles.c)
 * ------------------------------------------------------------------------- */

/* blob_acl_forget_grantee — DROP OWNED: every privilege granted to role goes. */
void
blob_acl_forget_grantee(Oid role)
{
	ListCell   *lc;

	foreach(lc, catalog_blobs_granted_to(role))
	{
		const uint8 *id = lfirst(lc);
		Oid			owner;
		Acl		   *acl;
		Acl		   *kept;
		AclItem    *src;
		AclItem    *dst;
		int			n = 0;

		if (!catalog_get_blob_acl_ext(id, &owner, &acl, true) || acl == NULL)
			continue;
		/* every item naming role as grantee, whoever granted it */
		kept = (Acl *) palloc(VARSIZE(acl));
		memcpy(kept, acl, VARSIZE(acl));
		src = ACL_DAT(acl);
		dst = ACL_DAT(kept);
		for (int i = 0; i < ACL_NUM(acl); i++)
			if (src[i].ai_grantee != role)
				dst[n++] = src[i];
		ARR_DIMS(kept)[0] = n;
		SET_VARSIZE(kept, ACL_N_SIZE(n));
		catalog_set_blob_owner_acl(id, owner, kept);
	}
}
