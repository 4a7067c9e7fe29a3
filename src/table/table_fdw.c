/*
 * table_fdw.c — the foreign-data wrapper of destor tables: the handler that
 * wires the callbacks, and the layer's initialisation.
 *
 * The callbacks live by phase: table_plan.c (sizes, paths, plans,
 * EXPLAIN), table_scan.c (serial and parallel scans, pruning, row
 * assembly), table_modify.c (INSERT, UPDATE, DELETE, TRUNCATE and the
 * registry of a statement's pending changes), table_analyze.c (ANALYZE);
 * destor.compact() is in table_compact.c.  IMPORT FOREIGN SCHEMA is here:
 * it recreates tables from the definitions destor.recover_catalog()
 * rebuilt from the pool's metadata log (destor.table_definitions).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "utils/builtins.h"

#include "destor/catalog.h"
#include "table_internal.h"

static List *destorImportForeignSchema(ImportForeignSchemaStmt *stmt, Oid serverOid);

PG_FUNCTION_INFO_V1(destor_fdw_handler);

Datum
destor_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *r = makeNode(FdwRoutine);

	r->GetForeignRelSize = destorGetForeignRelSize;
	r->GetForeignPaths = destorGetForeignPaths;
	r->GetForeignPlan = destorGetForeignPlan;
	r->BeginForeignScan = destorBeginForeignScan;
	r->IterateForeignScan = destorIterateForeignScan;
	r->ReScanForeignScan = destorReScanForeignScan;
	r->EndForeignScan = destorEndForeignScan;
	r->ExplainForeignScan = destorExplainForeignScan;
	r->IsForeignScanParallelSafe = destorIsForeignScanParallelSafe;
	r->EstimateDSMForeignScan = destorEstimateDSMForeignScan;
	r->InitializeDSMForeignScan = destorInitializeDSMForeignScan;
	r->ReInitializeDSMForeignScan = destorReInitializeDSMForeignScan;
	r->InitializeWorkerForeignScan = destorInitializeWorkerForeignScan;
	r->ShutdownForeignScan = destorShutdownForeignScan;
	r->IsForeignRelUpdatable = destorIsForeignRelUpdatable;
	r->BeginForeignModify = destorBeginForeignModify;
	r->ExecForeignInsert = destorExecForeignInsert;
	r->ExecForeignUpdate = destorExecForeignUpdate;
	r->ExecForeignDelete = destorExecForeignDelete;
	r->AddForeignUpdateTargets = destorAddForeignUpdateTargets;
	r->PlanForeignModify = destorPlanForeignModify;
	r->EndForeignModify = destorEndForeignModify;
	r->BeginForeignInsert = destorBeginForeignInsert;
	r->EndForeignInsert = destorEndForeignInsert;
	r->ExecForeignTruncate = destorExecForeignTruncate;
	r->AnalyzeForeignTable = destorAnalyzeForeignTable;
	r->ImportForeignSchema = destorImportForeignSchema;
	PG_RETURN_POINTER(r);
}

void
table_fdw_init(void)
{
	value_codec_define_gucs();
	table_modify_init();
}

/*
 * The columns and options of each table of a pool's schema, as the
 * metadata log recorded them (src/meta/): columns in attribute order, a
 * dropped column as a placeholder so that the attribute numbers the
 * segments were written with stay right.
 */
#define IMPORT_SQL \
	"SELECT d.definition->>'name', " \
	"  coalesce(pg_catalog.string_agg(CASE WHEN (c->>'dropped')::bool " \
	"      THEN pg_catalog.quote_ident('destor_dropped_' OPERATOR(pg_catalog.||) (c->>'attnum')) OPERATOR(pg_catalog.||) ' pg_catalog.text' " \
	"      ELSE pg_catalog.quote_ident(c->>'name') OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) (c->>'type') " \
	"        OPERATOR(pg_catalog.||) coalesce(' COLLATE ' OPERATOR(pg_catalog.||) (c->>'collation'), '') " \
	"        OPERATOR(pg_catalog.||) CASE WHEN (c->>'not_null')::bool THEN ' NOT NULL' ELSE '' END END, " \
	"      ', ' ORDER BY (c->>'attnum')::int), ''), " \
	"  (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(pg_catalog.split_part(o, '=', 1)) OPERATOR(pg_catalog.||) ' ' " \
	"      OPERATOR(pg_catalog.||) pg_catalog.quote_literal(pg_catalog.substr(o, pg_catalog.strpos(o, '=') OPERATOR(pg_catalog.+) 1)), ', ') " \
	"     FROM pg_catalog.jsonb_array_elements_text(d.definition->'options') o), " \
	"  pg_catalog.bool_or(coalesce((c->>'dropped')::bool, false)) " \
	"FROM destor.table_definitions d " \
	"LEFT JOIN LATERAL pg_catalog.jsonb_array_elements(d.definition->'columns') c ON true " \
	"WHERE d.pool = $1 AND d.definition->>'schema' = $2 " \
	"GROUP BY d.table_id, d.definition ORDER BY 1"

/*
 * destorImportForeignSchema — CREATE FOREIGN TABLE commands for the tables
 * that destor.recover_catalog() found in remote_schema (the schema the
 * table lived in on the database that wrote the pool), each with its
 * table_id, so that the event trigger binds it to its recovered data
 * (a superuser's privilege: the data exists already).  LIMIT TO and EXCEPT
 * are honoured here as postgres_fdw does (PostgreSQL filters again).
 */
static List *
destorImportForeignSchema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	ForeignServer *server = GetForeignServer(serverOid);
	CatalogUser cu;
	Oid			types[2] = {NAMEOID, TEXTOID};
	Datum		values[2];
	List	   *commands = NIL;
	MemoryContext caller = CurrentMemoryContext;

	catalog_enter(&cu);
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(server->servername));
	values[1] = CStringGetTextDatum(stmt->remote_schema);
	catalog_exec(IMPORT_SQL, 2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_SCHEMA_NOT_FOUND),
				 errmsg("schema \"%s\" is not present on foreign server \"%s\"",
						stmt->remote_schema, server->servername),
				 errdetail("No table of pool \"%s\" is known in that schema.", server->servername),
				 errhint("Run destor.recover_catalog('%s') first to read the tables from the pool's metadata log.",
						 server->servername)));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *name = SPI_getvalue(tup, desc, 1);
		char	   *columns = SPI_getvalue(tup, desc, 2);
		char	   *options = SPI_getvalue(tup, desc, 3);
		char	   *dropped = SPI_getvalue(tup, desc, 4);
		bool		wanted = (stmt->list_type != FDW_IMPORT_SCHEMA_LIMIT_TO);
		ListCell   *lc;
		MemoryContext spi;

		foreach(lc, stmt->table_list)
			if (strcmp(((RangeVar *) lfirst(lc))->relname, name) == 0)
				wanted = (stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO);
		if (!wanted)
			continue;
		if (dropped && strcmp(dropped, "t") == 0)
			ereport(NOTICE,
					(errmsg("destor table \"%s\" had dropped columns: they are imported as columns named destor_dropped_N",
							name),
					 errhint("Drop them with ALTER FOREIGN TABLE ... DROP COLUMN after the import; the others keep their attribute numbers.")));
		spi = MemoryContextSwitchTo(caller);
		commands = lappend(commands,
						   psprintf("CREATE FOREIGN TABLE %s (%s) SERVER %s%s%s%s",
									quote_identifier(name), columns ? columns : "",
									quote_identifier(server->servername),
									options ? " OPTIONS (" : "", options ? options : "",
									options ? ")" : ""));
		MemoryContextSwitchTo(spi);
	}
	catalog_leave(&cu);
	return commands;
}
