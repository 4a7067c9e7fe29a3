/*
 * table_options.c — options of destor foreign tables, validated in one
 * place: segment_rows, row_group_rows, compression_level, and table_id
 * (the table's identity, set by an event trigger at CREATE FOREIGN TABLE).
 *
 * A table_id is readable by everyone (pg_foreign_table.ftoptions), so it
 * cannot be what grants access to a table's data: destor.tables binds each
 * table_id to one relation, and a table whose option does not match its
 * binding is refused everything.  The binding is made by destor.bind_table(),
 * which the event triggers call as the role running CREATE / ALTER FOREIGN
 * TABLE (the table's owner):
 *   - a table keeps the table_id it was bound to: it cannot be changed or
 *     dropped by ALTER;
 *   - a table_id bound to a live relation cannot be claimed by another one;
 *   - a table_id that has data (segments) but no live relation — which only
 *     happens while a dump is being restored, or after the binding was lost
 *     — can be claimed by a superuser only; a fresh one (no data) by anyone,
 *     which is what CREATE FOREIGN TABLE, and a restore of the schema, do.
 * destor.tables is an ordinary table, so physical replicas have the same
 * bindings (relation oids are the same there); pg_dump does not dump it: a
 * restore binds each table again as CREATE FOREIGN TABLE ... OPTIONS
 * (table_id '...') runs, before the segments' rows are loaded.
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "table_internal.h"

PG_FUNCTION_INFO_V1(destor_bind_table);

static void
table_parse_uuid(DefElem *def, uint8 out[CODEC_OBJID_LEN])
{
	char	   *val = defGetString(def);

	if (strlen(val) != 36)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"table_id\": \"%s\"", val),
				 errhint("table_id is set by destor when the table is created; leave it alone.")));
	object_id_parse(val, out);
}

static void
table_apply_options(TableOptions *o, List *options)
{
	ListCell   *lc;

	o->segment_rows = TABLE_DEFAULT_SEGMENT_ROWS;
	o->row_group_rows = TABLE_DEFAULT_ROW_GROUP_ROWS;
	o->compression_level = TABLE_DEFAULT_COMPRESSION_LEVEL;
	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "segment_rows") == 0)
			o->segment_rows = option_parse_int(def, 1000, TABLE_MAX_SEGMENT_ROWS);
		else if (strcmp(def->defname, "row_group_rows") == 0)
			o->row_group_rows = option_parse_int(def, 100, 1000000);
		else if (strcmp(def->defname, "compression_level") == 0)
			o->compression_level = option_parse_int(def, 1, 19);
		else if (strcmp(def->defname, "table_id") == 0)
		{
			table_parse_uuid(def, o->table_id);
			o->has_table_id = true;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\" for a destor table", def->defname),
					 errhint("Valid options in this context are: segment_rows, row_group_rows, compression_level.")));
	}
	if (o->row_group_rows > o->segment_rows)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("row_group_rows (%d) is larger than segment_rows (%d)",
						o->row_group_rows, o->segment_rows),
				 errhint("A segment holds whole row groups: make row_group_rows at most segment_rows.")));
}

void
table_validate_options(List *options)
{
	TableOptions o = {0};

	table_apply_options(&o, options);
}

TableOptions *
table_get_options(Oid relid)
{
	ForeignTable *ft = GetForeignTable(relid);
	ForeignServer *server = GetForeignServer(ft->serverid);
	TableOptions *o = palloc0(sizeof(TableOptions));

	table_apply_options(o, ft->options);
	o->pool = pstrdup(server->servername);
	if (!o->has_table_id)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("destor table \"%s\" has no table_id", get_rel_name(relid)),
				 errdetail("destor gives every table an identity when it is created; this one has none."),
				 errhint("Create the table again with CREATE FOREIGN TABLE ... SERVER %s while the destor extension is installed.",
						 quote_identifier(o->pool))));
	{
		uint8		bound[CODEC_OBJID_LEN];

		if (!catalog_table_id_of_rel(relid, bound) ||
			memcmp(bound, o->table_id, CODEC_OBJID_LEN) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("destor table \"%s\" is not bound to its table_id", get_rel_name(relid)),
					 errdetail("A table reaches only the data of the table_id it was created with; this one's table_id option names data of no table or of another table."),
					 errhint("Create the table without a table_id option.  A superuser may bind a table to data that no table holds with SELECT destor.bind_table('%s').",
							 get_rel_name(relid))));
	}
	return o;
}

/* Is relid a destor table whose table_id option is this id? */
static bool
rel_holds_table_id(Oid relid, const uint8 table_id[CODEC_OBJID_LEN])
{
	ForeignTable *ft;
	TableOptions o = {0};

	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		return false;
	ft = GetForeignTable(relid);
	if (!pool_is_destor_server(ft->serverid))
		return false;
	table_apply_options(&o, ft->options);
	return o.has_table_id && memcmp(o.table_id, table_id, CODEC_OBJID_LEN) == 0;
}

/*
 * destor.bind_table(regclass): bind a destor table to the table_id in its
 * options, under the rules at the top of this file.  Called by the event
 * triggers after CREATE and ALTER FOREIGN TABLE; a no-op for other tables
 * and for a table already bound to its table_id.
 */
Datum
destor_bind_table(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *name = get_rel_name(relid);
	ForeignTable *ft;
	TableOptions o = {0};
	uint8		bound[CODEC_OBJID_LEN];
	Oid			holder;
	bool		has_data;

	if (name == NULL || get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		PG_RETURN_VOID();
	ft = GetForeignTable(relid);
	if (!pool_is_destor_server(ft->serverid))
		PG_RETURN_VOID();
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_FOREIGN_TABLE, name);
	table_apply_options(&o, ft->options);

	if (catalog_table_id_of_rel(relid, bound))
	{
		if (o.has_table_id && memcmp(bound, o.table_id, CODEC_OBJID_LEN) == 0)
			PG_RETURN_VOID();
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot change the table_id of destor table \"%s\"", name),
				 errdetail("The table_id is the table's identity: its data is stored under it."),
				 errhint("Leave the option table_id alone.")));
	}
	if (!o.has_table_id)
		PG_RETURN_VOID();		/* the CREATE trigger adds one */

	if (catalog_rel_of_table_id(o.table_id, &holder, &has_data) && holder != relid &&
		rel_holds_table_id(holder, o.table_id))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the table_id of \"%s\" is in use by another table", name),
				 errdetail("A table_id names one table's data; a new table cannot take it."),
				 errhint("Create the table without a table_id option: destor gives it a new one.")));
	if (has_data && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to bind destor table \"%s\" to existing data", name),
				 errdetail("Data is stored under its table_id but bound to no table; only a superuser may give it to one (as a restore does)."),
				 errhint("Create the table without a table_id option: destor gives it a new one.")));
	catalog_bind_table(o.table_id, relid);
	PG_RETURN_VOID();
}
