/*
 * progress.c — shared-memory progress slots behind the view destor.progress.
 *
 * One slot per backend (indexed by its BackendId), written only by its own
 * backend and read by anyone without a lock: the writer bumps changecount
 * before and after each change (odd while writing), and a reader copies the
 * slot until it sees the same even count on both sides — the protocol of
 * PostgreSQL's PgBackendStatus.  Without shared memory (not preloaded) the
 * view shows only the calling backend's own command.
 */
#include "postgres.h"

#include "access/xact.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/backendid.h"
#include "catalog/pg_authid.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "destor/progress.h"

#define PROGRESS_NAME_LEN	32
#define PROGRESS_TARGET_LEN	64
#define PROGRESS_MAX_NEST	8

typedef struct ProgressSlot
{
	uint32		changecount;	/* odd while the owner writes */
	int			pid;			/* 0: idle */
	Oid			userid;
	Oid			dbid;
	Oid			relid;
	TimestampTz started;
	char		command[PROGRESS_NAME_LEN];
	char		phase[PROGRESS_NAME_LEN];
	char		target[PROGRESS_TARGET_LEN];
	int64		bytes_done;
	int64		bytes_total;	/* -1: unknown */
	int64		objects_done;
	int64		objects_total;	/* -1: unknown */
} ProgressSlot;

static ProgressSlot *slots = NULL;	/* MaxBackends of them, when preloaded */
static ProgressSlot local_slot;		/* otherwise */
static int	nslots = 0;

/* (sub)transaction nesting level of each command this backend has started */
static int	nest_levels[PROGRESS_MAX_NEST];
static int	depth = 0;

static Size
progress_shmem_size(void)
{
	return mul_size(MaxBackends, sizeof(ProgressSlot));
}

void
progress_shmem_request(void)
{
	RequestAddinShmemSpace(progress_shmem_size());
}

void
progress_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	slots = ShmemInitStruct("destor progress", progress_shmem_size(), &found);
	if (!found)
		memset(slots, 0, progress_shmem_size());
	nslots = MaxBackends;
	LWLockRelease(AddinShmemInitLock);
}

static ProgressSlot *
my_slot(void)
{
	if (slots != NULL && MyBackendId != InvalidBackendId && MyBackendId <= nslots)
		return &slots[MyBackendId - 1];
	return &local_slot;
}

#define BEGIN_WRITE(s) \
	do { (s)->changecount++; pg_write_barrier(); } while (0)
#define END_WRITE(s) \
	do { pg_write_barrier(); (s)->changecount++; } while (0)

static void
copy_name(char *dst, const char *src, int len)
{
	strlcpy(dst, src ? src : "", len);
}

void
progress_start(const char *command, Oid relid, const char *target)
{
	ProgressSlot *s = my_slot();

	if (depth > 0)
	{
		/* an inner command: it counts towards the outer one */
		if (depth < PROGRESS_MAX_NEST)
			nest_levels[depth] = GetCurrentTransactionNestLevel();
		depth++;
		return;
	}
	nest_levels[0] = GetCurrentTransactionNestLevel();
	depth = 1;
	BEGIN_WRITE(s);
	s->pid = MyProcPid;
	s->userid = GetUserId();
	s->dbid = MyDatabaseId;
	s->relid = relid;
	s->started = GetCurrentTimestamp();
	copy_name(s->command, command, PROGRESS_NAME_LEN);
	copy_name(s->phase, "", PROGRESS_NAME_LEN);
	copy_name(s->target, target, PROGRESS_TARGET_LEN);
	s->bytes_done = s->objects_done = 0;
	s->bytes_total = s->objects_total = -1;
	END_WRITE(s);
}

void
progress_set_phase(const char *phase)
{
	ProgressSlot *s = my_slot();

	if (depth != 1)
		return;
	BEGIN_WRITE(s);
	copy_name(s->phase, phase, PROGRESS_NAME_LEN);
	END_WRITE(s);
}

void
progress_set_totals(int64 bytes_total, int64 objects_total)
{
	ProgressSlot *s = my_slot();

	if (depth != 1)
		return;
	BEGIN_WRITE(s);
	s->bytes_total = bytes_total;
	s->objects_total = objects_total;
	END_WRITE(s);
}

void
progress_add(int64 bytes, int64 objects)
{
	ProgressSlot *s = my_slot();

	if (depth == 0)
		return;
	BEGIN_WRITE(s);
	s->bytes_done += bytes;
	s->objects_done += objects;
	END_WRITE(s);
}

static void
progress_clear(void)
{
	ProgressSlot *s = my_slot();

	depth = 0;
	if (s->pid == 0)
		return;
	BEGIN_WRITE(s);
	s->pid = 0;
	END_WRITE(s);
}

void
progress_end(void)
{
	if (depth == 0)
		return;
	if (--depth == 0)
		progress_clear();
}

static void
progress_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		progress_clear();
}

/* A subtransaction that aborts ends the commands it started. */
static void
progress_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	int			level;

	if (event != SUBXACT_EVENT_ABORT_SUB || depth == 0)
		return;
	level = GetCurrentTransactionNestLevel();
	while (depth > 0 && nest_levels[Min(depth, PROGRESS_MAX_NEST) - 1] >= level)
		depth--;
	if (depth == 0)
		progress_clear();
}

void
progress_init(void)
{
	RegisterXactCallback(progress_xact_callback, NULL);
	RegisterSubXactCallback(progress_subxact_callback, NULL);
}

/*
 * destor.progress_report(): one row per backend running a destor command.
 * Like pg_stat_progress_*, the details of another role's command are shown
 * only to members of that role and of pg_read_all_stats.
 */
PG_FUNCTION_INFO_V1(destor_progress_report);

Datum
destor_progress_report(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n = slots ? nslots : 1;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
	{
		ProgressSlot *s = slots ? &slots[i] : &local_slot;
		ProgressSlot copy;
		Datum		values[12];
		bool		nulls[12] = {0};

		for (;;)
		{
			uint32		before = s->changecount;

			pg_read_barrier();
			memcpy(&copy, s, sizeof(copy));
			pg_read_barrier();
			if (before == s->changecount && (before & 1) == 0)
				break;
			CHECK_FOR_INTERRUPTS();
		}
		if (copy.pid == 0)
			continue;
		values[0] = Int32GetDatum(copy.pid);
		values[1] = ObjectIdGetDatum(copy.dbid);
		values[2] = CStringGetTextDatum(copy.command);
		if (!has_privs_of_role(GetUserId(), copy.userid) &&
			!has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS))
		{
			for (int c = 3; c < 12; c++)
				nulls[c] = true;
		}
		else
		{
			values[3] = ObjectIdGetDatum(copy.relid);
			nulls[3] = !OidIsValid(copy.relid);
			values[4] = CStringGetTextDatum(copy.target);
			nulls[4] = copy.target[0] == '\0';
			values[5] = CStringGetTextDatum(copy.phase);
			nulls[5] = copy.phase[0] == '\0';
			values[6] = Int64GetDatum(copy.bytes_done);
			values[7] = Int64GetDatum(copy.bytes_total);
			nulls[7] = copy.bytes_total < 0;
			values[8] = Int64GetDatum(copy.objects_done);
			values[9] = Int64GetDatum(copy.objects_total);
			nulls[9] = copy.objects_total < 0;
			values[10] = TimestampTzGetDatum(copy.started);
			values[11] = ObjectIdGetDatum(copy.userid);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
