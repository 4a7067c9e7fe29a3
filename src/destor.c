/*
 * destor.c — module entry: GUCs, callbacks, and the FDW validators.
 *
 * Each layer defines its own settings and hooks; this file only wires them
 * up when the library is loaded.
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"

#include "catalog/pg_foreign_table.h"

#include "destor/blob.h"
#include "destor/cache.h"
#include "destor/lo.h"
#include "destor/maintenance.h"
#include "destor/progress.h"
#include "destor/object.h"
#include "destor/table.h"
#include "destor/provider.h"
#include "destor/tableam.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(destor_provider_validator);
PG_FUNCTION_INFO_V1(destor_pool_validator);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
destor_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	provider_stats_shmem_request();
	cache_shmem_request();
	maintenance_shmem_request();
	progress_shmem_request();
}

static void
destor_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	provider_stats_shmem_startup();
	cache_shmem_startup();
	maintenance_shmem_startup();
	progress_shmem_startup();
}

void
_PG_init(void)
{
	provider_define_gucs();
	conn_keeper_define_gucs();
	keys_define_gucs();
	object_define_gucs();
	cache_define_gucs();
	maintenance_define_gucs();
	blob_pack_define_gucs();
	blob_fd_define_gucs();
	MarkGUCPrefixReserved("destor");
	object_xact_init();
	progress_init();
	table_fdw_init();
	blob_init();
	lo_hooks_init();
	tableam_init();

	/* shared state needs the library preloaded; without, per backend */
	if (process_shared_preload_libraries_in_progress)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = destor_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = destor_shmem_startup;
		maintenance_register_worker();
		conn_keeper_register_worker();
	}
}

Datum
destor_provider_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);

	provider_validate_options(options, catalog);
	PG_RETURN_VOID();
}

Datum
destor_pool_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);

	if (catalog == ForeignTableRelationId)
		table_validate_options(options);
	else
		pool_validate_options(options, catalog);
	PG_RETURN_VOID();
}
