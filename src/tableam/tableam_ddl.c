/*
 * tableam_ddl.c — ALTER COLUMN TYPE that destor tables cannot follow.
 *
 * PostgreSQL changes a column's type or collation without rewriting the
 * table when the stored bytes stay valid for heap: varchar to text, a type
 * to a domain over it, timestamp to timestamptz under UTC, any collation
 * change.  destor's segments keep the old type's values (the reader checks
 * the stored type, and a rewrite reads them as the new type too), and the
 * min/max statistics that prune segments and row groups were computed
 * under the old collation.  So a type change left the column unreadable or
 * failed, and a collation change gave wrong answers from pruning.  A
 * utility hook refuses collation changes up front for tables USING destor
 * and destor foreign tables, and type changes for tables USING destor,
 * also through a parent; a typmod-only change stays.  (A foreign table's
 * type change is metadata only: its reader refuses the column until the
 * type is changed back, as before.)
 *
 * VACUUM FULL and CLUSTER copy a table into a new relfilenode, which would
 * make its rows invisible to older snapshots here (their catalog rows are
 * the copying transaction's).  VACUUM FULL of a table USING destor is
 * plain VACUUM that rewrites every segment with dead rows instead (the
 * same space back, tids kept, readers not blocked), so that VACUUM FULL of
 * a whole database or of a partitioned table with destor partitions works;
 * CLUSTER of such a table is refused up front.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_type.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "destor/tableam.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

/* A table USING destor ('r') or a destor foreign table ('f'), else '\0'. */
static char
destor_relation_kind(Oid relid)
{
	Relation	rel;
	char		kind = '\0';

	if (!OidIsValid(relid))
		return '\0';
	rel = RelationIdGetRelation(relid);
	if (!RelationIsValid(rel))
		return '\0';
	if (rel->rd_rel->relkind == RELKIND_RELATION && am_is_destor(rel))
		kind = 'r';
	else if (rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE)
	{
		ForeignTable *ft = GetForeignTable(relid);
		ForeignServer *server = GetForeignServer(ft->serverid);

		if (strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "destor") == 0)
			kind = 'f';
	}
	RelationClose(rel);
	return kind;
}

static void
check_alter_column_type(Oid relid, char kind, AlterTableCmd *cmd)
{
	ColumnDef  *def = (ColumnDef *) cmd->def;
	AttrNumber	attnum = get_attnum(relid, cmd->name);
	Oid			oldtype;
	int32		oldtypmod;
	Oid			oldcoll;
	Oid			newtype;
	int32		newtypmod;
	Oid			newcoll;

	if (attnum <= 0)
		return;					/* PostgreSQL's own error follows */
	get_atttypetypmodcoll(relid, attnum, &oldtype, &oldtypmod, &oldcoll);
	typenameTypeIdAndMod(NULL, def->typeName, &newtype, &newtypmod);
	newcoll = GetColumnDefCollation(NULL, def, newtype);

	if (OidIsValid(oldcoll) && OidIsValid(newcoll) && oldcoll != newcoll)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot change the collation of column \"%s\" of destor table \"%s\"",
						cmd->name, get_rel_name(relid)),
				 errdetail("The column's stored minimum and maximum values, which prune segments and row groups, were ordered under collation \"%s\".",
						   get_collation_name(oldcoll)),
				 errhint("Use COLLATE in queries, or copy the rows into a new table with the collation.")));
	/* a foreign table's reader refuses a changed type itself, and the
	 * change can be undone: PostgreSQL never rewrites foreign tables */
	if (newtype != oldtype && kind == 'r')
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot change the type of column \"%s\" of destor table \"%s\" from %s to %s",
						cmd->name, get_rel_name(relid), format_type_be(oldtype), format_type_be(newtype)),
				 errdetail("Its segments keep values of type %s: PostgreSQL changes some types without a rewrite, and destor's rewrite reads the stored values as the new type.",
						   format_type_be(oldtype)),
				 errhint("Copy the rows into a new table with the new type (INSERT ... SELECT with a cast).")));
}

/* Does VACUUM's option list ask for FULL? */
static bool
vacuum_full_requested(VacuumStmt *stmt)
{
	ListCell   *lc;
	bool		full = false;

	if (!stmt->is_vacuumcmd)
		return false;
	foreach(lc, stmt->options)
	{
		DefElem    *opt = lfirst(lc);

		if (strcmp(opt->defname, "full") == 0)
			full = defGetBoolean(opt);
	}
	return full;
}

/* The relations VACUUM without a list takes, as get_all_vacuum_rels does. */
static List *
vacuum_all_relations(void)
{
	Relation	pgclass = table_open(RelationRelationId, AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(pgclass, 0, NULL);
	HeapTuple	tup;
	List	   *result = NIL;

	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_class form = (Form_pg_class) GETSTRUCT(tup);

		if (form->relkind == RELKIND_RELATION || form->relkind == RELKIND_MATVIEW ||
			form->relkind == RELKIND_PARTITIONED_TABLE)
			result = lappend_oid(result, form->oid);
	}
	table_endscan(scan);
	table_close(pgclass, AccessShareLock);
	return result;
}

/*
 * VACUUM FULL reaching tables USING destor: split the list into the others
 * (*rest, FULL as asked) and those (returned, for a plain VACUUM that
 * prunes every dead row).  NIL when no such table is reached: the statement
 * runs as it is.  Partitioned tables with such partitions are expanded.
 */
static List *
vacuum_full_split(VacuumStmt *stmt, List **rest)
{
	List	   *destor = NIL;
	List	   *others = NIL;
	List	   *targets;
	ListCell   *lc;

	if (stmt->rels == NIL)
	{
		targets = NIL;
		foreach(lc, vacuum_all_relations())
			targets = lappend(targets, makeVacuumRelation(NULL, lfirst_oid(lc), NIL));
	}
	else
		targets = stmt->rels;
	foreach(lc, targets)
	{
		VacuumRelation *vrel = lfirst(lc);
		Oid			relid = OidIsValid(vrel->oid) ? vrel->oid :
			RangeVarGetRelid(vrel->relation, NoLock, true);
		List	   *members;
		bool		any = false;
		ListCell   *mc;

		if (!OidIsValid(relid) || get_rel_relkind(relid) == '\0')
		{
			others = lappend(others, vrel);		/* PostgreSQL's own error or skip */
			continue;
		}
		/* without a list, partitions are in it themselves */
		members = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE && stmt->rels != NIL ?
			find_all_inheritors(relid, NoLock, NULL) : list_make1_oid(relid);
		foreach(mc, members)
			if (destor_relation_kind(lfirst_oid(mc)) == 'r')
				any = true;
		if (!any)
		{
			others = lappend(others, vrel);
			continue;
		}
		foreach(mc, members)
		{
			VacuumRelation *m = makeVacuumRelation(NULL, lfirst_oid(mc), vrel->va_cols);

			if (destor_relation_kind(lfirst_oid(mc)) == 'r')
				destor = lappend(destor, m);
			else if (get_rel_relkind(lfirst_oid(mc)) != RELKIND_PARTITIONED_TABLE)
				others = lappend(others, m);
		}
	}
	*rest = others;
	return destor;
}

static void
run_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
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

/* VACUUM FULL: the others as asked, then destor's with every dead row pruned */
static void
vacuum_full(PlannedStmt *pstmt, VacuumStmt *stmt, List *destor, List *rest,
			const char *queryString, ProcessUtilityContext context, ParamListInfo params,
			QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	PlannedStmt *p;
	VacuumStmt *v;
	ListCell   *lc;

	/*
	 * The portal's context: VACUUM commits the transaction it was called in
	 * and starts another before it returns, and standard_ProcessUtility's
	 * parse state for the second statement must not live in the first's
	 * transaction context.
	 */
	MemoryContext portal = CurrentMemoryContext;

	if (rest != NIL)
	{
		p = copyObject(pstmt);
		v = (VacuumStmt *) p->utilityStmt;
		v->rels = rest;
		run_utility(p, queryString, false, context, params, queryEnv, dest, qc);
		MemoryContextSwitchTo(portal);
	}
	p = copyObject(pstmt);
	v = (VacuumStmt *) p->utilityStmt;
	v->rels = destor;
	v->options = NIL;
	foreach(lc, stmt->options)
		if (strcmp(((DefElem *) lfirst(lc))->defname, "full") != 0)
			v->options = lappend(v->options, lfirst(lc));
	am_set_vacuum_full(true);
	PG_TRY();
	{
		run_utility(p, queryString, false, context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		am_set_vacuum_full(false);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(portal);
}

static void
tableam_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
						ProcessUtilityContext context, ParamListInfo params,
						QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
		Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		ListCell   *lc;

		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = lfirst(lc);
			ListCell   *rc;

			if (cmd->subtype == AT_ClusterOn && OidIsValid(relid) &&
				destor_relation_kind(relid) == 'r')
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot cluster destor table \"%s\"", get_rel_name(relid)),
						 errdetail("Rows of a table USING destor keep their place: their tids are what the indexes name.")));
			if (cmd->subtype != AT_AlterColumnType || !OidIsValid(relid))
				continue;
			/* the table, and the partitions or children the command reaches */
			foreach(rc, stmt->relation->inh ? find_all_inheritors(relid, NoLock, NULL) :
					list_make1_oid(relid))
			{
				char		kind = destor_relation_kind(lfirst_oid(rc));

				if (kind != '\0')
					check_alter_column_type(lfirst_oid(rc), kind, cmd);
			}
		}
	}
	else if (IsA(parsetree, VacuumStmt) && vacuum_full_requested((VacuumStmt *) parsetree))
	{
		List	   *rest = NIL;
		List	   *destor = vacuum_full_split((VacuumStmt *) parsetree, &rest);

		if (destor != NIL)
		{
			vacuum_full(pstmt, (VacuumStmt *) parsetree, destor, rest, queryString, context,
						params, queryEnv, dest, qc);
			return;
		}
	}
	else if (IsA(parsetree, ClusterStmt) && ((ClusterStmt *) parsetree)->relation != NULL)
	{
		ClusterStmt *stmt = (ClusterStmt *) parsetree;
		Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		ListCell   *lc;

		if (OidIsValid(relid))
			foreach(lc, get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ?
					find_all_inheritors(relid, NoLock, NULL) : list_make1_oid(relid))
				if (destor_relation_kind(lfirst_oid(lc)) == 'r')
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cannot cluster destor table \"%s\"", get_rel_name(lfirst_oid(lc))),
							 errdetail("Rows of a table USING destor keep their place: their tids are what the indexes name."),
							 errhint("VACUUM gives back the space of deleted rows; to store rows in another order, copy them into a new table with INSERT ... SELECT ... ORDER BY.")));
	}
	run_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
tableam_ddl_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = tableam_process_utility;
}
