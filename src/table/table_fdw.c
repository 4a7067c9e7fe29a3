/*
 * table_fdw.c — the foreign-data wrapper of destor tables: the handler that
 * wires the callbacks, and the layer's initialisation.
 *
 * The callbacks live by phase: table_plan.c (sizes, paths, plans,
 * EXPLAIN), table_scan.c (serial and parallel scans, pruning, row
 * assembly), table_modify.c (INSERT, UPDATE, DELETE, TRUNCATE and the
 * registry of a statement's pending changes), table_analyze.c (ANALYZE);
 * destor.compact() is in table_compact.c.
 */
#include "postgres.h"

#include "foreign/fdwapi.h"

#include "table_internal.h"

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
	PG_RETURN_POINTER(r);
}

void
table_fdw_init(void)
{
	table_modify_init();
}
