/*
 * blob_restorable.c — the types of destor.blobs' owner and acl columns.
 *
 * destor.blobs is an extension configuration table: pg_dump writes all its
 * rows as one COPY, roles by name.  With regrole and aclitem[] columns one
 * role missing in the restoring cluster failed that COPY as a whole, and no
 * blob was restored (a large object only loses its owner or its GRANT).
 *
 * restorable_role and restorable_acl have the bytes of oid and aclitem[]
 * (restorable_acl is an array of aclitem; casts both ways, so the C code
 * reads and writes them as before) and print as regrole and aclitem[] do.
 * Only their input differs, and only while a COPY loads destor.blobs (a
 * restore; elsewhere a missing role is an error, as for regrole and
 * aclitem): an OID is not trusted (it names another role in another
 * cluster), and a role that does not exist here gives, with a WARNING, the owner
 * to the role doing the restore (a large object's owner in the same case),
 * drops an ACL item whose grantee does not exist here (least privilege),
 * and makes that role the grantor of items whose grantor (the old owner)
 * does not exist.  Each missing name is reported once per transaction.
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "nodes/value.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "destor/blob.h"

PG_FUNCTION_INFO_V1(restorable_role_in);
PG_FUNCTION_INFO_V1(restorable_role_out);
PG_FUNCTION_INFO_V1(restorable_acl_in);
PG_FUNCTION_INFO_V1(restorable_acl_out);

/*
 * Lenient only while a COPY loads destor.blobs (blob_roles.c's utility hook
 * says when): that is how pg_dump restores the catalog.  Anywhere else (a
 * literal in a query: WHERE owner IN ('x')) a missing role is an error, as
 * regrole's and aclitem's input make it.
 */
static bool restoring = false;

void
restorable_set_restoring(bool on)
{
	restoring = on;
}

/* names already reported in this transaction (a dump names a role per row) */
static List *warned_names = NIL;
static LocalTransactionId warned_lxid = InvalidLocalTransactionId;

/* First time in this transaction that name is reported missing? */
static bool
first_warning(const char *name)
{
	ListCell   *lc;
	MemoryContext old;

	if (warned_lxid != MyProc->lxid)
	{
		list_free_deep(warned_names);
		warned_names = NIL;
		warned_lxid = MyProc->lxid;
	}
	foreach(lc, warned_names)
		if (strcmp((char *) lfirst(lc), name) == 0)
			return false;
	if (list_length(warned_names) >= 64)
		return false;			/* enough said: the dump names many missing roles */
	old = MemoryContextSwitchTo(TopMemoryContext);
	warned_names = lappend(warned_names, pstrdup(name));
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * The role named by s (a name, possibly quoted, or an OID), if it exists.
 * A restore takes no OID: OIDs of another cluster name other roles here.
 */
static Oid
role_named(const char *s, const char **name)
{
	List	   *names;

	*name = s;
	if (strspn(s, "0123456789") == strlen(s) && *s != '\0')
	{
		Oid			role;

		if (restoring)
			return InvalidOid;
		role = DatumGetObjectId(DirectFunctionCall1(oidin, CStringGetDatum(s)));

		return SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)) ? role : InvalidOid;
	}
	names = stringToQualifiedNameList(s);
	if (list_length(names) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid role name \"%s\"", s),
				 errdetail("A blob's owner or grantee is one role name, not a qualified name.")));
	*name = strVal(linitial(names));	/* unquoted, as messages name roles */
	return get_role_oid(*name, true);
}

Datum
restorable_role_in(PG_FUNCTION_ARGS)
{
	char	   *s = PG_GETARG_CSTRING(0);
	const char *name;
	Oid			role = role_named(s, &name);

	if (OidIsValid(role))
		PG_RETURN_OID(role);
	if (!restoring)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" does not exist", name)));
	role = GetUserId();
	if (first_warning(name))
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" does not exist: its destor blobs go to role \"%s\"",
						name, GetUserNameFromId(role, false)),
				 errdetail("A blob's owner that does not exist here goes to the role restoring it, as a large object's does."),
				 errhint("Create the roles before restoring (pg_dumpall --roles-only), or give the blobs on with destor.blob_set_owner().")));
	PG_RETURN_OID(role);
}

Datum
restorable_role_out(PG_FUNCTION_ARGS)
{
	Oid			role = PG_GETARG_OID(0);
	char	   *name = GetUserNameFromId(role, true);

	/* as regroleout: a name that reads back, else the bare OID */
	if (name != NULL)
		PG_RETURN_CSTRING(pstrdup(quote_identifier(name)));
	PG_RETURN_CSTRING(psprintf("%u", role));
}

/*
 * Copy the role name at *p (aclitem text: bare, or double-quoted with ""
 * for a quote, as acl.c's getid reads it) into buf; advance *p past it.
 */
static void
acl_text_name(const char **p, char *buf)
{
	const char *s = *p;
	bool		in_quotes = false;
	int			len = 0;

	while (isspace((unsigned char) *s))
		s++;
	for (; *s && (isalnum((unsigned char) *s) || *s == '_' || *s == '"' || in_quotes); s++)
	{
		if (*s == '"')
		{
			if (in_quotes && s[1] == '"')
				s++;			/* "" inside quotes: one quote */
			else
			{
				in_quotes = !in_quotes;
				continue;
			}
		}
		if (len < NAMEDATALEN - 1)
			buf[len++] = *s;
	}
	buf[len] = '\0';
	*p = s;
}

/*
 * An aclitem's text, or NULL if its grantee does not exist here (an empty
 * grantee is PUBLIC).  A grantor that does not exist here (a blob's grants
 * are its owner's) becomes the current role, as restorable_role_in makes it
 * the owner.  *missing is set to the role not found, if any.
 */
static char *
acl_text_restorable(const char *item, char **missing)
{
	char		grantee[NAMEDATALEN];
	char		grantor[NAMEDATALEN];
	const char *p = item;
	const char *slash;

	*missing = NULL;
	acl_text_name(&p, grantee);
	if (grantee[0] != '\0' && !OidIsValid(get_role_oid(grantee, true)))
	{
		*missing = pstrdup(grantee);
		return NULL;
	}
	slash = strchr(p, '/');
	if (slash == NULL)
		return pstrdup(item);	/* no grantor: aclitemin's own default */
	p = slash + 1;
	acl_text_name(&p, grantor);
	if (grantor[0] == '\0' || OidIsValid(get_role_oid(grantor, true)))
		return pstrdup(item);
	*missing = pstrdup(grantor);
	return psprintf("%.*s/%s", (int) (slash - item), item,
					quote_identifier(GetUserNameFromId(GetUserId(), false)));
}

Datum
restorable_acl_in(PG_FUNCTION_ARGS)
{
	char	   *s = PG_GETARG_CSTRING(0);
	ArrayType  *texts;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			kept = 0;
	AclItem    *items;

	texts = DatumGetArrayTypeP(OidInputFunctionCall(F_ARRAY_IN, s, TEXTOID, -1));
	if (ARR_NDIM(texts) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("ACL arrays must be one-dimensional"),
				 errdetail("Value: \"%s\".", s)));
	deconstruct_array(texts, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	items = palloc0(sizeof(AclItem) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		char	   *item;
		char	   *missing;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("ACL arrays must not contain null values")));
		if (!restoring)
		{
			/* aclitem's own input: a missing role is its error */
			items[kept++] = *DatumGetAclItemP(DirectFunctionCall1(aclitemin,
																  CStringGetDatum(TextDatumGetCString(elems[i]))));
			continue;
		}
		item = acl_text_restorable(TextDatumGetCString(elems[i]), &missing);
		if (missing != NULL && first_warning(missing))
		{
			if (item == NULL)
				ereport(WARNING,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("role \"%s\" does not exist: destor blob privileges granted to it are not restored",
								missing),
						 errhint("Create the roles before restoring (pg_dumpall --roles-only), or grant again with destor.blob_grant().")));
			else
				ereport(WARNING,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("role \"%s\" does not exist: destor blob privileges it granted are kept as granted by role \"%s\"",
								missing, GetUserNameFromId(GetUserId(), false)),
						 errdetail("A blob's grants are its owner's; an owner that does not exist here is replaced by the role restoring it."),
						 errhint("Create the roles before restoring (pg_dumpall --roles-only).")));
		}
		if (item == NULL)
			continue;
		items[kept++] = *DatumGetAclItemP(DirectFunctionCall1(aclitemin, CStringGetDatum(item)));
	}
	if (kept == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(ACLITEMOID));
	elems = palloc(sizeof(Datum) * kept);
	for (int i = 0; i < kept; i++)
		elems[i] = PointerGetDatum(&items[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, kept, ACLITEMOID, sizeof(AclItem), false,
										  TYPALIGN_INT));
}

Datum
restorable_acl_out(PG_FUNCTION_ARGS)
{
	return CStringGetDatum(OidOutputFunctionCall(F_ARRAY_OUT, PG_GETARG_DATUM(0)));
}

/*
 * The casts between restorable_acl and aclitem[]: the same bytes (an
 * aclitem array), but PostgreSQL allows no binary cast to or from an array
 * type, so they are functions that hand their argument back.
 */
PG_FUNCTION_INFO_V1(restorable_acl_relabel);

Datum
restorable_acl_relabel(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(PG_GETARG_DATUM(0));
}
