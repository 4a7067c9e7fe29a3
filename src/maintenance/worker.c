/*
 * worker.c — the maintenance background worker.
 *
 * With destor in shared_preload_libraries, one worker wakes every
 * destor.maintenance_naptime (0, the default, keeps it asleep: repairs move
 * data and providers may charge for it) and, in destor.maintenance_database
 * as destor.maintenance_role, runs a round:
 *   - destor.repair() over every pool (with destor.maintenance_verify, a
 *     scrub that reads every chunk), so shards lost with a provider's disk
 *     are rebuilt without anyone asking;
 *   - destor.cleanup_orphans() on every pool for shards older than
 *     destor.maintenance_orphan_age that no catalog row names;
 *   - destor.apply_tiering_policies(): the partitions that the declared
 *     policies (destor.tiering_policies) say should be offsite go there;
 *   - destor.apply_lo_tiering(): large objects, by destor.lo_tiering_policies;
 *   - first of all, destor.follow_pool() on every pool declared
 *     mode 'read_only' that recover_catalog started following, so that a
 *     read-only attach sees the writer's commits one naptime late at most.
 * Each round is one transaction of ordinary SQL calls; what it did goes to
 * the server log.  An error ends the round, not the worker: it is logged,
 * the round's transaction rolls back, destor.maintenance_status counts it
 * as failed and keeps its message, and the next round runs after the
 * naptime as usual (maintenance_round_guarded).  Only a crash or a FATAL
 * ends the worker; the postmaster then starts it again after
 * bgw_restart_time.
 */
#include "postgres.h"


#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "utils/acl.h"
#include "funcapi.h"
#include "storage/shmem.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "destor/catalog.h"
#include "destor/maintenance.h"
#include "destor/provider.h"

static int	maintenance_naptime_s = 0;
static char *maintenance_database = NULL;
static char *maintenance_role = NULL;
static bool maintenance_verify = false;
static int	maintenance_orphan_age_s = 86400;
static int	audit_requests_per_round = 20;
static int	audit_bytes_per_round_kb = 64 * 1024;

PGDLLEXPORT void destor_maintenance_main(Datum arg);

/* What the worker did last, for destor.maintenance_status (shared memory). */
#define STATUS_ERROR_LEN	256

typedef struct MaintenanceStatus
{
	slock_t		mutex;
	TimestampTz round_start;
	TimestampTz round_end;		/* of the last round that ended, well or not */
	int64		rounds;
	int64		failed_rounds;
	int64		problems;		/* totals since the server started */
	int64		rebuilt;
	int64		orphans;
	int64		tiered;
	char		last_error[STATUS_ERROR_LEN];	/* of the last failed round */
} MaintenanceStatus;

static MaintenanceStatus *status = NULL;

void
maintenance_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(MaintenanceStatus)));
}

void
maintenance_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	status = ShmemInitStruct("destor maintenance status", sizeof(MaintenanceStatus), &found);
	if (!found)
	{
		memset(status, 0, sizeof(MaintenanceStatus));
		SpinLockInit(&status->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
maintenance_define_gucs(void)
{
	DefineCustomIntVariable("destor.maintenance_naptime",
							"Time between rounds of the maintenance worker (repair, orphan cleanup); 0 turns it off.",
							NULL, &maintenance_naptime_s, 0, 0, INT_MAX / 1000,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomStringVariable("destor.maintenance_database",
							   "Database in which the maintenance worker runs.",
							   NULL, &maintenance_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("destor.maintenance_role",
							   "Role the maintenance worker runs as (its user mappings are used); empty: the bootstrap superuser.",
							   NULL, &maintenance_role, "",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("destor.maintenance_verify",
							 "Whether maintenance rounds read every chunk of every shard to find corruption (a scrub).",
							 NULL, &maintenance_verify, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("destor.maintenance_orphan_age",
							"Age after which provider objects that no catalog row names are removed by maintenance rounds.",
							NULL, &maintenance_orphan_age_s, 86400, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("destor.audit_requests_per_round",
							"Provider requests each maintenance round spends on audits (spot checks of random chunks); 0 turns them off.",
							NULL, &audit_requests_per_round, 20, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("destor.audit_bytes_per_round",
							"Bytes each maintenance round may read for audits; 0 turns them off.",
							"A check reads a shard's trailer and one whole chunk.",
							&audit_bytes_per_round_kb, 64 * 1024, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomRealVariable("destor.audit_failure_threshold",
							 "Share of a provider's recent audits that may fail before placement avoids it (it also takes at least 3 failures).",
							 NULL, &destor_audit_failure_threshold, 0.2, 0.0, 1.0,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
}

void
maintenance_register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "destor");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "destor_maintenance_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "destor maintenance");
	snprintf(worker.bgw_type, BGW_MAXLEN, "destor maintenance");
	RegisterBackgroundWorker(&worker);
}

static int64 result_int8(int col);

/* Run a query returning one row of int8s; its first column. */
static int64
query_int8(const char *sql)
{
	if (SPI_execute(sql, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "maintenance query failed: %s", sql);
	return result_int8(1);
}

/* Column col (1-based, int8) of the row the last query returned. */
static int64
result_int8(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/* The first error of a step of this round (empty: none). */
static char step_error[STATUS_ERROR_LEN];

/*
 * Run one step of a round — a query returning one row of int8s, whose first
 * two columns go to *v1 and *v2 (either may be NULL) — in a subtransaction,
 * so that a step that fails (one pool's repair, a provider that cannot be
 * listed) is reported and rolled back alone: the other steps' work, and
 * the other pools', is kept.  The round then counts as failed.
 */
typedef struct RoundStep
{
	const char *sql;
	int64		v1;
	int64		v2;
	bool		want_v2;
} RoundStep;

static void
round_step_run(void *arg)
{
	RoundStep  *step = (RoundStep *) arg;

	step->v1 = query_int8(step->sql);
	step->v2 = step->want_v2 ? result_int8(2) : 0;
}

static void
round_step(const char *sql, int64 *v1, int64 *v2)
{
	RoundStep	step = {sql, 0, 0, v2 != NULL};
	ErrorData  *error;

	if (catalog_try(round_step_run, &step, &error))
	{
		if (v1)
			*v1 = step.v1;
		if (v2)
			*v2 = step.v2;
		return;
	}
	error->elevel = WARNING;
	ThrowErrorData(error);		/* to the server log; the round goes on */
	if (step_error[0] == '\0')
		strlcpy(step_error, error->message ? error->message : "unknown error", STATUS_ERROR_LEN);
	FreeErrorData(error);
}

/*
 * One round.  Each step runs in a subtransaction (round_step); an ERROR
 * outside them is reported and recorded, and the round's transaction
 * rolled back (maintenance_round_guarded); the worker goes on with the
 * next round.
 */
static void
maintenance_round(void)
{
	int64		problems = 0;
	int64		rebuilt = 0;
	int64		orphans = 0;
	int64		tiered = 0;
	int64		lo_tiered = 0;
	int64		packs_compacted = 0;
	int64		audits = 0;
	int64		audits_failed = 0;
	int64		evacuated = 0;
	int64		followed = 0;
	int64		log_shards = 0;
	bool		installed;
	int			save_nestlevel;

	step_error[0] = '\0';
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* nothing in anybody's schema may stand in for what the round calls */
	save_nestlevel = catalog_spi_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "destor maintenance round");

	installed = query_int8("SELECT pg_catalog.count(*) FROM pg_catalog.pg_extension WHERE extname = 'destor'") > 0;
	if (installed)
	{
		char	   *sql;

		/*
		 * A read-only attach catches up with its writer first (issue 12):
		 * what it reads next is at most one naptime behind.
		 */
		if (query_int8("SELECT (CASE WHEN pg_catalog.to_regprocedure('destor.follow_pool(pg_catalog.name)') IS NOT NULL"
					   " AND pg_catalog.has_function_privilege('destor.follow_pool(pg_catalog.name)', 'EXECUTE')"
					   " AND pg_catalog.has_table_privilege('destor.followed_log', 'SELECT')"
					   " THEN 1 ELSE 0 END)::pg_catalog.int8") > 0)
			round_step("SELECT COALESCE(pg_catalog.sum(destor.follow_pool(s.srvname)), 0)::pg_catalog.int8"
					   "  FROM pg_catalog.pg_foreign_server s"
					   "  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw"
					   " WHERE w.fdwname = 'destor' AND 'mode=read_only' OPERATOR(pg_catalog.=) ANY (s.srvoptions)"
					   "   AND EXISTS (SELECT FROM destor.followed_log f WHERE f.pool = s.srvname)",
					   &followed, NULL);
		/* audits first: repair would rebuild what a provider lost before they saw it */
		/*
		 * Audits and evacuations are skipped, not failed, for a role that may
		 * not run them: a round fails only on what it did before them.
		 */
		if (audit_requests_per_round > 0 && audit_bytes_per_round_kb > 0 &&
			query_int8("SELECT (CASE WHEN pg_catalog.has_function_privilege("
					   "'destor.audit(pg_catalog.name, pg_catalog.int4, pg_catalog.int8)', 'EXECUTE')"
					   " THEN 1 ELSE 0 END)::pg_catalog.int8") > 0)
		{
			sql = psprintf("SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE NOT ok)"
						   "  FROM destor.audit(NULL, %d, %lld)", audit_requests_per_round,
						   (long long) audit_bytes_per_round_kb * 1024);
			round_step(sql, &audits, &audits_failed);
		}

		/*
		 * Providers failing their audits lose their shards to others
		 * (move_shards rebuilds what they lost from the other shards) when
		 * every pool with shards there asks for it (evacuate_failing 'on'):
		 * move_shards moves a provider's shards of all pools.  A shard no
		 * other provider may take stays, and is tried again next round.
		 */
		if (query_int8("SELECT (CASE WHEN pg_catalog.has_function_privilege("
					   "'destor.move_shards(pg_catalog.name, pg_catalog.name)', 'EXECUTE')"
					   " AND pg_catalog.has_table_privilege('destor.shards', 'SELECT')"
					   " AND pg_catalog.has_table_privilege('destor.objects', 'SELECT')"
					   " THEN 1 ELSE 0 END)::pg_catalog.int8") > 0)
			round_step("SELECT pg_catalog.count(*) FILTER (WHERE m.moved)"
								   "  FROM destor.provider_status ps,"
								   "       LATERAL destor.move_shards(ps.provider, NULL) m"
								   " WHERE ps.audit_failing"
								   "   AND EXISTS (SELECT FROM destor.shards s WHERE s.provider = ps.provider)"
								   "   AND NOT EXISTS (SELECT FROM destor.shards s JOIN destor.objects o USING (object_id)"
								   "        WHERE s.provider = ps.provider AND NOT COALESCE("
								   "          (SELECT pg_catalog.substr(opt, 18)::pg_catalog.bool"
								   "             FROM pg_catalog.pg_foreign_server fs, pg_catalog.unnest(fs.srvoptions) opt"
								   "            WHERE fs.srvname = o.pool AND opt OPERATOR(pg_catalog.~~) 'evacuate_failing=%'),"
								   "          false))", &evacuated, NULL);
		sql = psprintf("SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE repaired)"
					   "  FROM destor.repair(NULL, %s)", maintenance_verify ? "true" : "false");
		round_step(sql, &problems, &rebuilt);
		/* log shards commits went on without (given up or failed), where installed */
		if (query_int8("SELECT (CASE WHEN pg_catalog.to_regprocedure('destor.repair_log(pg_catalog.name)') IS NOT NULL"
					   " AND pg_catalog.has_function_privilege('destor.repair_log(pg_catalog.name)', 'EXECUTE')"
					   " THEN 1 ELSE 0 END)::pg_catalog.int8") > 0)
			round_step("SELECT destor.repair_log(NULL)", &log_shards, NULL);
		sql = psprintf("SELECT COALESCE(pg_catalog.sum(destor.cleanup_orphans(s.srvname,"
					   "         pg_catalog.make_interval(secs => %d::pg_catalog.float8))), 0)::pg_catalog.int8"
					   "  FROM pg_catalog.pg_foreign_server s"
					   "  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw"
					   " WHERE w.fdwname = 'destor'", maintenance_orphan_age_s);
		round_step(sql, &orphans, NULL);
		round_step("SELECT pg_catalog.count(*) FROM destor.apply_tiering_policies()", &tiered, NULL);
		/* large objects by their declared rule (issue 16), where installed */
		if (query_int8("SELECT (CASE WHEN pg_catalog.to_regprocedure('destor.apply_lo_tiering()') IS NOT NULL"
					   " AND pg_catalog.has_function_privilege('destor.apply_lo_tiering()', 'EXECUTE')"
					   " THEN 1 ELSE 0 END)::pg_catalog.int8") > 0)
			round_step("SELECT destor.apply_lo_tiering()", &lo_tiered, NULL);
		/* packs of small blobs mostly deleted (issue 15 item 5), where installed */
		if (query_int8("SELECT (CASE WHEN pg_catalog.to_regprocedure('destor.compact_packs(pg_catalog.name, pg_catalog.float8)') IS NOT NULL"
					   " THEN 1 ELSE 0 END)::pg_catalog.int8") > 0)
			round_step("SELECT COALESCE(pg_catalog.sum(destor.compact_packs(s.srvname)), 0)::pg_catalog.int8"
					   "  FROM pg_catalog.pg_foreign_server s"
					   "  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw"
					   " WHERE w.fdwname = 'destor'", &packs_compacted, NULL);
	}

	catalog_spi_finish(save_nestlevel);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	if (!installed)
		ereport(LOG,
				(errmsg("maintenance round skipped: extension destor is not installed in database \"%s\"",
						maintenance_database)));
	else if (problems > 0 || orphans > 0 || tiered > 0)
		ereport(LOG,
				(errmsg("maintenance round in database \"%s\": %lld shard problems found, %lld shards rebuilt, %lld orphaned provider objects removed, %lld partitions tiered",
						maintenance_database, (long long) problems, (long long) rebuilt, (long long) orphans, (long long) tiered)));
	if (audits_failed > 0)
		ereport(LOG,
				(errmsg("maintenance round in database \"%s\": %lld of %lld audits failed",
						maintenance_database, (long long) audits_failed, (long long) audits),
				 errhint("destor.provider_status shows which providers failed them.")));
	if (lo_tiered > 0)
		ereport(LOG,
				(errmsg("maintenance round in database \"%s\": %lld large objects tiered",
						maintenance_database, (long long) lo_tiered)));
	if (log_shards > 0)
		ereport(LOG,
				(errmsg("maintenance round in database \"%s\": %lld metadata log shards put that their commits went on without",
						maintenance_database, (long long) log_shards)));
	if (followed > 0)
		ereport(LOG,
				(errmsg("maintenance round in database \"%s\": %lld metadata log objects of read-only pools followed",
						maintenance_database, (long long) followed)));
	if (evacuated > 0)
		ereport(LOG,
				(errmsg("maintenance round in database \"%s\": %lld shards moved off providers failing their audits",
						maintenance_database, (long long) evacuated)));
	if (status)
	{
		SpinLockAcquire(&status->mutex);
		status->round_end = GetCurrentTimestamp();
		status->rounds++;
		if (step_error[0] != '\0')
		{
			status->failed_rounds++;
			strlcpy(status->last_error, step_error, STATUS_ERROR_LEN);
		}
		status->problems += problems;
		status->rebuilt += rebuilt;
		status->orphans += orphans;
		status->tiered += tiered;
		SpinLockRelease(&status->mutex);
	}
}

static void
maintenance_round_guarded(void)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (status)
	{
		SpinLockAcquire(&status->mutex);
		status->round_start = GetCurrentTimestamp();
		SpinLockRelease(&status->mutex);
	}
	PG_TRY();
	{
		maintenance_round();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		if (status)
		{
			SpinLockAcquire(&status->mutex);
			status->round_end = GetCurrentTimestamp();
			status->rounds++;
			status->failed_rounds++;
			strlcpy(status->last_error, edata->message ? edata->message : "unknown error",
					STATUS_ERROR_LEN);
			SpinLockRelease(&status->mutex);
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

PG_FUNCTION_INFO_V1(destor_maintenance_status);

/* (enabled, naptime_s, database, round_start, round_end, rounds, failed_rounds,
 *  problems, rebuilt, orphans, tiered, last_error) */
Datum
destor_maintenance_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[12];
	bool		nulls[12] = {0};
	MaintenanceStatus copy;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(&copy, 0, sizeof(copy));
	if (status)
	{
		SpinLockAcquire(&status->mutex);
		copy = *status;
		SpinLockRelease(&status->mutex);
	}
	values[0] = BoolGetDatum(status != NULL && maintenance_naptime_s > 0);
	values[1] = Int32GetDatum(maintenance_naptime_s);
	values[2] = CStringGetTextDatum(maintenance_database);
	values[3] = TimestampTzGetDatum(copy.round_start);
	nulls[3] = copy.round_start == 0;
	values[4] = TimestampTzGetDatum(copy.round_end);
	nulls[4] = copy.round_end == 0;
	values[5] = Int64GetDatum(copy.rounds);
	values[6] = Int64GetDatum(copy.failed_rounds);
	values[7] = Int64GetDatum(copy.problems);
	values[8] = Int64GetDatum(copy.rebuilt);
	values[9] = Int64GetDatum(copy.orphans);
	values[10] = Int64GetDatum(copy.tiered);
	/* it may name other roles' objects: pg_read_all_stats only */
	if (copy.last_error[0] && has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS))
		values[11] = CStringGetTextDatum(copy.last_error);
	else
		nulls[11] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

void
destor_maintenance_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	for (bool connected = false;;)
	{
		int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
		int			rc;

		if (maintenance_naptime_s > 0)
			events |= WL_TIMEOUT;
		rc = WaitLatch(MyLatch, events, (long) maintenance_naptime_s * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		/* a cancel between rounds has nothing to cancel (outside a round it would end the worker) */
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!(rc & WL_TIMEOUT) || maintenance_naptime_s <= 0)
			continue;
		/* connect only once there is work: a worker that is off holds no connection */
		if (!connected)
		{
			BackgroundWorkerInitializeConnection(maintenance_database,
												 maintenance_role[0] ? maintenance_role : NULL, 0);
			/*
			 * Each step is to see what the one before it committed, and
			 * repair_log refuses a transaction snapshot (older than its
			 * lock): READ COMMITTED, whatever the server's, database's or
			 * role's default.
			 */
			SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET,
							PGC_S_OVERRIDE);
			connected = true;
		}
		maintenance_round_guarded();
	}
}
