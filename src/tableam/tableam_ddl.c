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
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "foreign/foreign.h"
#include "nodes/parsenodes.h"
#include "parser/parse_type.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
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
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							 dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
								dest, qc);
}

void
tableam_ddl_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = tableam_process_utility;
}
