/*
 * lo_hooks.c — large-object calls on tiered large objects, and their unlink.
 *
 * Which hook, and why.  The issue asked for needs_fmgr_hook / fmgr_hook;
 * they cannot work for the large-object functions: fmgr_info() fills the
 * FmgrInfo of a *built-in* function from the built-in table and returns
 * before it consults needs_fmgr_hook (or prosecdef and proconfig), so
 * fmgr_hook never runs around lo_open, lo_get, lo_export, lo_put — in SQL or
 * over the fast path (checked with a probe module on PostgreSQL 15: the
 * hook is asked about user functions only).  The only hook the fast path
 * passes is object_access_hook's OAT_FUNCTION_EXECUTE, which names the
 * function but not its arguments.
 *
 * So SQL calls are redirected at plan time instead: planner_hook replaces
 * each call of pg_catalog.lo_open(oid, int4), lo_get(oid),
 * lo_get(oid, int8, int4), lo_export(oid, text) and lo_put(oid, int8,
 * bytea) in the query (subqueries, CTEs, function scans and views included:
 * the planner sees them rewritten) by destor's wrapper of the same
 * signature, which recalls a tiered large object and then calls the
 * built-in function itself.  loread, lowrite, lo_lseek and lo_truncate work
 * on a descriptor of lo_open, which recalled.  Not covered: the fast path
 * (libpq's lo_* client API, psql's \lo_export, JDBC, psycopg's lobject),
 * and SQL functions the planner inlines (their body is parsed after
 * planner_hook ran): those read a tiered large object as empty until it is
 * recalled (destor.lo_recall, or any SQL call above).
 *
 * object_access_hook OAT_DROP on a large object (lo_unlink, vacuumlo,
 * DROP OWNED) forgets its row and deletes its shards after commit; on
 * destor.lo_tiers itself (DROP EXTENSION) it refuses while large objects
 * are offsite, whose bytes would otherwise be lost.
 *
 * Both hooks chain to the previous holder (called first for
 * object_access_hook, and as the planner for planner_hook), and do nothing
 * in a database without destor.lo_tiers as a member of extension destor:
 * the library is preloaded for every database, where anyone allowed to
 * create a schema could make a look-alike "destor" (lo_destor_extension).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_largeobject.h"
#include "catalog/pg_proc.h"
#include "storage/large_object.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "libpq/libpq-fs.h"

#include "destor/lo.h"

/* The built-in functions redirected, and their wrappers in schema destor. */
typedef struct LoRedirect
{
	Oid			builtin;
	const char *wrapper;
	int			nargs;
	Oid			argtypes[3];
} LoRedirect;

static const LoRedirect lo_redirects[] = {
	{F_LO_OPEN, "lo_open_tiered", 2, {OIDOID, INT4OID}},
	{F_LO_GET_OID, "lo_get_tiered", 1, {OIDOID}},
	{F_LO_GET_OID_INT8_INT4, "lo_get_tiered", 3, {OIDOID, INT8OID, INT4OID}},
	{F_LO_EXPORT, "lo_export_tiered", 2, {OIDOID, TEXTOID}},
	{F_LO_PUT, "lo_put_tiered", 3, {OIDOID, INT8OID, BYTEAOID}},
};
#define LO_NREDIRECTS lengthof(lo_redirects)

static planner_hook_type prev_planner_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

PG_FUNCTION_INFO_V1(destor_lo_open_tiered);
PG_FUNCTION_INFO_V1(destor_lo_get_tiered);
PG_FUNCTION_INFO_V1(destor_lo_get_fragment_tiered);
PG_FUNCTION_INFO_V1(destor_lo_export_tiered);
PG_FUNCTION_INFO_V1(destor_lo_put_tiered);

typedef struct RedirectContext
{
	bool		found;			/* a call to redirect was seen */
	bool		resolved;		/* wrappers looked up */
	Oid			wrappers[LO_NREDIRECTS];	/* InvalidOid: not installed */
} RedirectContext;

static int
lo_redirect_index(Oid funcid)
{
	for (int i = 0; i < (int) LO_NREDIRECTS; i++)
		if (lo_redirects[i].builtin == funcid)
			return i;
	return -1;
}

static void
lo_resolve_wrappers(RedirectContext *cx)
{
	Oid			ext;

	cx->resolved = true;
	memset(cx->wrappers, 0, sizeof(cx->wrappers));
	ext = lo_destor_extension();
	if (!OidIsValid(ext))
		return;
	for (int i = 0; i < (int) LO_NREDIRECTS; i++)
	{
		List	   *name = list_make2(makeString("destor"),
									  makeString(pstrdup(lo_redirects[i].wrapper)));
		Oid			fn = LookupFuncName(name, lo_redirects[i].nargs,
										lo_redirects[i].argtypes, true);

		/* only the extension's own wrapper (see lo_destor_extension) */
		if (OidIsValid(fn) && getExtensionOfObject(ProcedureRelationId, fn) == ext)
			cx->wrappers[i] = fn;
	}
}

/* Rewrites in place: the planner gets a copy of a cached query anyway. */
static bool
lo_redirect_walker(Node *node, RedirectContext *cx)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr))
	{
		FuncExpr   *f = (FuncExpr *) node;
		int			i = lo_redirect_index(f->funcid);

		if (i >= 0)
		{
			if (!cx->resolved)
				lo_resolve_wrappers(cx);
			if (OidIsValid(cx->wrappers[i]))
				f->funcid = cx->wrappers[i];
		}
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, lo_redirect_walker, cx, 0);
	return expression_tree_walker(node, lo_redirect_walker, cx);
}

static PlannedStmt *
lo_planner(Query *parse, const char *query_string, int cursorOptions, ParamListInfo boundParams)
{
	if (parse->commandType != CMD_UTILITY)
	{
		RedirectContext cx;

		memset(&cx, 0, sizeof(cx));
		(void) query_tree_walker(parse, lo_redirect_walker, &cx, 0);
	}
	if (prev_planner_hook)
		return prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

static void
lo_object_access(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access != OAT_DROP || !IsTransactionState())
		return;
	if (classId == LargeObjectRelationId && lo_tier_catalog_ready())
		lo_tier_forget(objectId);
	else if (classId == RelationRelationId && subId == 0)
	{
		Oid			nsp = get_namespace_oid("destor", true);

		if (OidIsValid(nsp) && objectId == get_relname_relid("lo_tiers", nsp) &&
			lo_tier_catalog_ready())
			lo_tier_guard_drop();
	}
}

void
lo_hooks_init(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = lo_planner;
	prev_object_access_hook = object_access_hook;
	object_access_hook = lo_object_access;
}

/* ---------------------------------------------------------------------------
 * Wrappers: the built-in's EXECUTE privilege (the wrapper's own is PUBLIC's:
 * lo_export is not), recall with the privilege the call needs, then the
 * built-in under a snapshot that sees the recalled pages.
 * ------------------------------------------------------------------------- */
static bool
lo_before_call(Oid builtin, Oid loid, AclMode mode)
{
	if (pg_proc_aclcheck(builtin, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, get_func_name(builtin));

	/*
	 * No privilege, or no such large object: no recall (a role that may not
	 * read it cannot make destor fetch it); the built-in reports the error.
	 */
	if (!LargeObjectExists(loid))
		return false;
	if (!lo_compat_privileges &&
		pg_largeobject_aclcheck_snapshot(loid, GetUserId(), mode, NULL) != ACLCHECK_OK)
		return false;
	/* the common case: never tiered (one index lookup in destor.lo_tiers) */
	switch (lo_tier_state(loid))
	{
		case LO_LOCAL:
			return false;
		case LO_OFFSITE:
			/* a -1: a recall another session committed while we waited */
			(void) lo_recall_one(loid);
			break;
		case LO_RECALLED:
			break;
	}

	/*
	 * The statement's snapshot may predate the recall (this call's, an
	 * earlier call's in the same statement, or one another session
	 * committed while we waited for its row): the built-in reads under a
	 * new one, which sees the pages.  lo_open(INV_READ) keeps it for the
	 * descriptor.
	 */
	PushActiveSnapshot(GetTransactionSnapshot());
	return true;
}

#define LO_CALL(builtin_fn, builtin_oid, mode) \
	do { \
		bool		pushed = lo_before_call(builtin_oid, PG_GETARG_OID(0), mode); \
		Datum		result = builtin_fn(fcinfo); \
		if (pushed) \
			PopActiveSnapshot(); \
		return result; \
	} while (0)

Datum
destor_lo_open_tiered(PG_FUNCTION_ARGS)
{
	AclMode		mode = (PG_GETARG_INT32(1) & INV_WRITE) ? ACL_UPDATE : ACL_SELECT;

	LO_CALL(be_lo_open, F_LO_OPEN, mode);
}

Datum
destor_lo_get_tiered(PG_FUNCTION_ARGS)
{
	LO_CALL(be_lo_get, F_LO_GET_OID, ACL_SELECT);
}

Datum
destor_lo_get_fragment_tiered(PG_FUNCTION_ARGS)
{
	LO_CALL(be_lo_get_fragment, F_LO_GET_OID_INT8_INT4, ACL_SELECT);
}

Datum
destor_lo_export_tiered(PG_FUNCTION_ARGS)
{
	LO_CALL(be_lo_export, F_LO_EXPORT, ACL_SELECT);
}

Datum
destor_lo_put_tiered(PG_FUNCTION_ARGS)
{
	LO_CALL(be_lo_put, F_LO_PUT, ACL_UPDATE);
}
