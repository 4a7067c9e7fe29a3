/*
 * table_options.c — options of destor foreign tables, validated in one
 * place: segment_rows, row_group_rows, compression_level, and table_id
 * (the table's identity, set by an event trigger at CREATE FOREIGN TABLE).
 */
#include "postgres.h"

#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/uuid.h"

#include "table.h"

static void
table_parse_uuid(DefElem *def, uint8 out[CODEC_OBJID_LEN])
{
	char	   *val = defGetString(def);
	pg_uuid_t  *u;
	if (strlen(val) != 36)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"table_id\": \"%s\"", val),
				 errhint("table_id is set by destor when the table is created; leave it alone.")));
	u = DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(val)));
	memcpy(out, u->data, CODEC_OBJID_LEN);
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
	return o;
}
