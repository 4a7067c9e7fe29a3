/*
 * provider_stats.c — what the providers do, seen by every backend.
 *
 * Per provider (database, server): requests, errors, bytes moved, a moving
 * window of latencies, the last error (already free of secrets: request
 * errors never contain any), and since when it has been failing.  Kept in
 * shared memory when destor is preloaded, so a provider that one backend
 * found down is skipped by all of them without waiting for a timeout;
 * otherwise kept per backend (and the NOTICE of the cache says so).
 * Exposed as the view destor.provider_status.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "utils/acl.h"
#include "catalog/pg_foreign_server.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "destor/provider.h"

#define MAX_PROVIDER_STATS	256
#define LATENCY_WINDOW		256
#define LAST_ERROR_LEN		256
#define RECENT_READS		4		/* the fastest of these is a provider's read speed */
#define PROVIDER_KNOWN_SLOW_MS	1e9	/* the read time of a provider found slow lately */
#define READ_LATENCY_WINDOW	64		/* GET times a provider's p95 is taken over */

typedef struct ProviderStatsEntry
{
	Oid			dbid;
	Oid			serverid;
	uint64		requests;
	uint64		errors;
	uint64		bytes_read;
	uint64		bytes_written;
	TimestampTz last_success;
	TimestampTz last_failure;
	TimestampTz down_since;		/* 0 when not failing */
	TimestampTz down_marked;	/* the failure that last marked it down: it is
								 * down for destor.provider_down_interval from
								 * then (renewed by each later one) */
	char		last_error[LAST_ERROR_LEN];
	float4		latencies[LATENCY_WINDOW];
	uint32		nlatencies;
	uint32		latency_pos;
	/* successful GETs: the last few latencies, and when the last one ended */
	float4		recent_reads[RECENT_READS];
	uint32		nrecent;
	/* ... and those of GETs started on an idle link: round trips */
	float4		idle_reads[RECENT_READS];
	uint32		nidle;
	uint32		idle_pos;
	bool		read_answered;	/* a GET of it succeeded: not a lower bound */
	bool		read_bounded;	/* a GET of it, stopped unanswered, outlasted
								 * every answer of its batch (a lower bound) */
	bool		recent_bounds_only; /* recent_reads holds only such bounds */
	/* the last answer's round trip (to its first byte), and when: never a
	 * bound, and kept while the provider is found slow */
	float4		answer_ms;
	TimestampTz answer_at;
	uint32		recent_pos;
	TimestampTz last_read;
	TimestampTz probe_claimed;	/* a reader asks a distant provider again */
	/* successful large GETs: bytes per ms of their bodies, and when */
	float4		recent_rates[RECENT_READS];
	uint32		nrates;
	uint32		rate_pos;
	TimestampTz last_rate;
	/* successful GETs' network times (libcurl's), for hedging's p95 */
	float4		read_latencies[READ_LATENCY_WINDOW];
	uint32		nread_latencies;
	uint32		read_latency_pos;
	TimestampTz slow_since;		/* a reader avoided it as slow; 0 if not */
	uint64		retries;		/* tries after the first, successful or not */
	uint64		short_bodies;	/* answers that ended before their length */
	uint32		failures_in_row;	/* failed tries since the last success */
	TimestampTz last_check;		/* check_provider() asked it */
	bool		last_check_ok;
	uint64		bad_chunks;		/* chunks it served that failed their tag or CRC */
	TimestampTz last_bad_chunk;
	/* audits (maintenance/audit.c) */
	uint64		audits_passed;
	uint64		audits_failed;
	uint64		audits_unavailable;
	TimestampTz last_audit;
	uint32		audit_recent;	/* bit i: the i-th last audit failed */
	uint32		audit_nrecent;	/* how many of AUDIT_WINDOW bits count */
	/* reputation: time spent down and slow, of periods that ended */
	uint64		unavailable_ms;
	uint64		slow_ms;
} ProviderStatsEntry;

typedef struct ProviderStatsShared
{
	LWLock	   *lock;
	int			n;
	ProviderStatsEntry entries[MAX_PROVIDER_STATS];
} ProviderStatsShared;

static ProviderStatsShared *shared = NULL;
static ProviderStatsShared *local = NULL;	/* when not preloaded */

/*
 * Writers: per backend (indexed by backend id), when its current
 * transaction first began to store objects on a provider, 0 when it has not.
 * destor.cleanup_orphans() must not take what a transaction still running
 * wrote (its catalog rows are not visible yet): it leaves everything written
 * since the oldest of these alone.
 */
typedef struct ProviderWriters
{
	int			n;
	pg_atomic_uint64 since[FLEXIBLE_ARRAY_MEMBER];	/* TimestampTz, 0: none */
} ProviderWriters;

static ProviderWriters *writers = NULL;
static bool writing = false;	/* this backend's slot is set */

/*
 * Shards verified good: a reader that fetched a shard recorded 'missing' or
 * 'corrupt' in destor.shards and found every chunk it read matching its tag
 * notes (database, provider, key) here, and readers in every backend —
 * read-only transactions, hot standbys and parallel workers included —
 * then treat the record as cleared.  The note is only shared memory:
 * readers may not write the catalog.  The record itself is rewritten by the
 * next destor.repair() (by hand, or a round of the maintenance worker),
 * which checks the shard again and records 'ok'; those run in read-write
 * transactions of their own by design, whereas clearing it from someone
 * else's commit would make an unrelated COMMIT wait on row locks or fail
 * on a serialization conflict for housekeeping it did not ask for.  A
 * reader that later finds the shard failing forgets the note.  When the
 * table is full the oldest note is dropped: the record is then a hint
 * again, which costs a degraded read, never a wrong one.
 */
#define MAX_SHARD_NOTES		1024
#define SHARD_NOTE_KEY_LEN	96

/*
 * A table of its own notes probes that found nothing: a shard recorded bad
 * whose probe was answered "not found", or cancelled unanswered on a
 * provider far or slow for its reader.  Such a record is likely true, and
 * every read probed it again — two requests a window of every scan, on a
 * provider that was slow when the shard was written — until a repair;
 * probes of it now wait destor.provider_down_interval
 * (provider_shard_probe_due).  Separate, so that neither kind of note
 * pushes the other out, nor does forgetting a verified note drop one.
 */
#define MAX_PROBE_NOTES		512

typedef struct ShardNote
{
	Oid			dbid;			/* InvalidOid: a free slot */
	Oid			serverid;
	TimestampTz noted;
	char		key[SHARD_NOTE_KEY_LEN];
} ShardNote;

typedef struct ShardNotes
{
	ShardNote	notes[MAX_SHARD_NOTES];	/* verified good */
	ShardNote	probes[MAX_PROBE_NOTES];	/* probed, found nothing */
} ShardNotes;

static ShardNotes *shard_notes = NULL;	/* in shared memory when preloaded */
static ShardNotes *local_notes = NULL;

static Size
writers_size(void)
{
	return add_size(offsetof(ProviderWriters, since),
					mul_size(sizeof(pg_atomic_uint64), MaxBackends + 1));
}

void
provider_stats_shmem_request(void)
{
	RequestAddinShmemSpace(sizeof(ProviderStatsShared));
	RequestAddinShmemSpace(writers_size());
	RequestAddinShmemSpace(sizeof(ShardNotes));
	RequestNamedLWLockTranche("destor_provider_stats", 1);
}

void
provider_stats_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("destor provider stats", sizeof(ProviderStatsShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(ProviderStatsShared));
		shared->lock = &(GetNamedLWLockTranche("destor_provider_stats"))->lock;
	}
	writers = ShmemInitStruct("destor provider writers", writers_size(), &found);
	if (!found)
	{
		writers->n = MaxBackends + 1;
		for (int i = 0; i < writers->n; i++)
			pg_atomic_init_u64(&writers->since[i], 0);
	}
	shard_notes = ShmemInitStruct("destor shard notes", sizeof(ShardNotes), &found);
	if (!found)
		memset(shard_notes, 0, sizeof(ShardNotes));
	LWLockRelease(AddinShmemInitLock);
}

static void
writers_clear_at_exit(int code, Datum arg)
{
	provider_writing_done();
}

/*
 * provider_writing_begins — this transaction is about to store something on
 * a provider (a PUT or a streamed upload).  Recorded before the first byte
 * leaves, so that anything the provider dates is at or after it.
 */
void
provider_writing_begins(void)
{
	static bool exit_hook = false;
	TimestampTz now;

	if (writing || writers == NULL || MyBackendId <= 0 || MyBackendId >= writers->n)
		return;
	if (!exit_hook)
	{
		before_shmem_exit(writers_clear_at_exit, (Datum) 0);
		exit_hook = true;
	}
	now = GetCurrentTimestamp();
	pg_atomic_write_u64(&writers->since[MyBackendId], (uint64) now);
	pg_memory_barrier();		/* visible before anything is sent */
	writing = true;
}

/*
 * provider_writing_done — the transaction has ended: called from the
 * end-of-transaction callback, which runs after the commit became visible
 * to new snapshots, so a cleanup that no longer sees the slot sees the
 * catalog rows instead.
 */
void
provider_writing_done(void)
{
	if (!writing)
		return;
	writing = false;
	if (writers == NULL || MyBackendId <= 0 || MyBackendId >= writers->n)
		return;
	pg_memory_barrier();
	pg_atomic_write_u64(&writers->since[MyBackendId], 0);
}

/*
 * provider_oldest_writer — when the oldest transaction still running that
 * stores objects began to (0: none).  Without shared memory (destor not
 * preloaded) the start of the oldest open transaction of any backend stands
 * in for it, which needs track_activities.
 */
TimestampTz
provider_oldest_writer(void)
{
	TimestampTz oldest = 0;

	if (writers != NULL)
	{
		pg_memory_barrier();	/* after the listing that we judge */
		for (int i = 0; i < writers->n; i++)
		{
			TimestampTz t = (TimestampTz) pg_atomic_read_u64(&writers->since[i]);

			if (t != 0 && (oldest == 0 || t < oldest))
				oldest = t;
		}
		pg_memory_barrier();	/* before the catalog look-ups */
		return oldest;
	}
	if (!pgstat_track_activities)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot tell which transactions are writing to providers"),
				 errdetail("destor is not in shared_preload_libraries and track_activities is off."),
				 errhint("Add destor to shared_preload_libraries, or turn track_activities on.")));
	pgstat_clear_backend_activity_snapshot();
	for (int i = 1; i <= pgstat_fetch_stat_numbackends(); i++)
	{
		LocalPgBackendStatus *l = pgstat_fetch_stat_local_beentry(i);
		TimestampTz t;

		if (l == NULL)
			continue;
		t = l->backendStatus.st_xact_start_timestamp;
		if (t != 0 && (oldest == 0 || t < oldest))
			oldest = t;
	}
	pgstat_clear_backend_activity_snapshot();
	return oldest;
}

static ProviderStatsShared *
stats_area(void)
{
	if (shared)
		return shared;
	if (local == NULL)
		local = MemoryContextAllocZero(TopMemoryContext, sizeof(ProviderStatsShared));
	return local;
}

static void
stats_lock(ProviderStatsShared *s, LWLockMode mode)
{
	if (s == shared)
		LWLockAcquire(s->lock, mode);
}

static void
stats_unlock(ProviderStatsShared *s)
{
	if (s == shared)
		LWLockRelease(s->lock);
}

/* Caller holds the lock (exclusively when create). */
static ProviderStatsEntry *
stats_entry(ProviderStatsShared *s, Oid serverid, bool create)
{
	for (int i = 0; i < s->n; i++)
		if (s->entries[i].dbid == MyDatabaseId && s->entries[i].serverid == serverid)
			return &s->entries[i];
	if (!create)
		return NULL;
	if (s->n == MAX_PROVIDER_STATS)
	{
		/* full: reuse the entry unused for longest */
		int			oldest = 0;

		for (int i = 1; i < s->n; i++)
			if (Max(s->entries[i].last_success, s->entries[i].last_failure) <
				Max(s->entries[oldest].last_success, s->entries[oldest].last_failure))
				oldest = i;
		memset(&s->entries[oldest], 0, sizeof(ProviderStatsEntry));
		s->entries[oldest].dbid = MyDatabaseId;
		s->entries[oldest].serverid = serverid;
		return &s->entries[oldest];
	}
	memset(&s->entries[s->n], 0, sizeof(ProviderStatsEntry));
	s->entries[s->n].dbid = MyDatabaseId;
	s->entries[s->n].serverid = serverid;
	return &s->entries[s->n++];
}

/*
 * How long the current outage has lasted: from the failure that marked the
 * provider down to now, but no further than destor.provider_down_interval
 * past its last failure — after that nobody asked it, and an idle provider
 * is not counted as unavailable.
 */
static uint64
entry_outage_ms(const ProviderStatsEntry *e, TimestampTz now)
{
	TimestampTz end;

	if (e->down_since == 0)
		return 0;
	end = Min(now, Max(e->last_failure, e->down_since) +
			  (TimestampTz) destor_provider_down_ms * 1000);
	return end > e->down_since ? (uint64) ((end - e->down_since) / 1000) : 0;
}

/* The provider answers again: its outage ends and joins its reputation. */
static void
entry_up(ProviderStatsEntry *e, TimestampTz now)
{
	e->unavailable_ms += entry_outage_ms(e, now);
	e->down_since = 0;
}

/*
 * How long the current slow period has lasted: a mark lasts
 * destor.provider_down_interval (it is not renewed while it lasts).
 */
static uint64
entry_slow_period_ms(const ProviderStatsEntry *e, TimestampTz now)
{
	if (e->slow_since == 0)
		return 0;
	return (uint64) Min(Max(now - e->slow_since, 0) / 1000, (TimestampTz) destor_provider_down_ms);
}

/* Found slow: a new period starts unless one lasts; an ended one is counted. */
static void
entry_mark_slow(ProviderStatsEntry *e, TimestampTz now)
{
	if (e->slow_since != 0 && !TimestampDifferenceExceeds(e->slow_since, now, destor_provider_down_ms))
		return;
	e->slow_ms += entry_slow_period_ms(e, now);
	e->slow_since = now;
}

/* Adds v to a ring of size values: where pos says, which moves on. */
static inline void
ring_push(float4 *ring, uint32 *pos, uint32 *count, uint32 size, double v)
{
	ring[*pos] = (float4) v;
	*pos = (*pos + 1) % size;
	if (*count < size)
		(*count)++;
}

/*
 * A read time into the provider's recent ones; unless queued (started
 * behind another GET of the provider: ProviderRequest.queued), into its
 * round trips too.
 */
static void
push_read(ProviderStatsEntry *e, double ms, bool queued)
{
	ring_push(e->recent_reads, &e->recent_pos, &e->nrecent, RECENT_READS, ms);
	if (!queued)
		ring_push(e->idle_reads, &e->idle_pos, &e->nidle, RECENT_READS, ms);
}

/*
 * A GET that answered: its round trip (to the first byte: not the size
 * asked) among the provider's recent read times, and, over enough bytes,
 * its body's rate among the recent rates.
 */
static void
entry_note_read(ProviderStatsEntry *e, ProviderRequest *r, uint64 rate_bytes, double rate_ms,
				TimestampTz now)
{
	e->read_answered = true;

	/*
	 * The bounds taken while it never answered say less than an answer: a
	 * far provider stopped when the near ones answered 30 ms in kept 30 ms
	 * as its fastest read after answering in 170 (small reads then asked
	 * it as if near, TAP 180).
	 */
	if (e->recent_bounds_only)
	{
		e->nrecent = 0;
		e->recent_pos = 0;
		e->nidle = 0;
		e->idle_pos = 0;
		e->recent_bounds_only = false;
	}
	push_read(e, r->first_byte_ms > 0 ? r->first_byte_ms : r->latency_ms, r->queued);
	e->answer_ms = (float4) (r->first_byte_ms > 0 ? r->first_byte_ms : r->latency_ms);
	e->answer_at = now;
	e->last_read = now;
	if (rate_bytes >= PROVIDER_RATE_MIN_BYTES && rate_ms > 0)
	{
		ring_push(e->recent_rates, &e->rate_pos, &e->nrates, RECENT_READS,
				  rate_bytes / Max(rate_ms, 1.0));
		e->last_rate = now;
	}
}

/*
 * A provider's GETs of one batch ran at once over its one link: its rate
 * is their bytes over the longest of their bodies, not each one's (which
 * took two requests to a provider for two providers half as fast, and a
 * reader spreading a window by rate then gave it half as much).  For
 * request i: the bytes and body time of its provider's group when i
 * leads it, else 0 (counted with its leader); a request alone, its own.
 */
#define STATS_GROUP_MAX 64

static bool
rate_sample(ProviderRequest *r)
{
	return r->op == POP_GET && r->ok && !r->cancelled && !r->abandoned && !r->timing_loose &&
		r->body_ms > 0;
}

static void
batch_rates(ProviderRequest *reqs, int nreqs, uint64 *bytes, double *ms)
{
	int			leader[STATS_GROUP_MAX];

	for (int i = 0; i < nreqs; i++)
	{
		bytes[i] = reqs[i].result_size;
		ms[i] = reqs[i].body_ms;
		leader[i] = i;
		if (!rate_sample(&reqs[i]))
			continue;
		for (int j = 0; j < i; j++)
		{
			if (leader[j] == j && rate_sample(&reqs[j]) &&
				reqs[j].provider->serverid == reqs[i].provider->serverid)
			{
				leader[i] = j;
				bytes[j] += bytes[i];
				ms[j] = Max(ms[j], ms[i]);
				bytes[i] = 0;
				break;
			}
		}
	}
}

void
provider_stats_note(ProviderRequest *reqs, int nreqs)
{
	ProviderStatsShared *s = stats_area();
	TimestampTz now = GetCurrentTimestamp();

	uint64		rate_bytes[STATS_GROUP_MAX];
	double		rate_ms[STATS_GROUP_MAX];
	double		first_answer_ms = 0;	/* the batch's latest answer to begin */

	if (nreqs == 0)
		return;
	if (nreqs > STATS_GROUP_MAX)
	{
		/* in parts (only a batch this large groups less) */
		provider_stats_note(reqs, STATS_GROUP_MAX);
		provider_stats_note(reqs + STATS_GROUP_MAX, nreqs - STATS_GROUP_MAX);
		return;
	}
	batch_rates(reqs, nreqs, rate_bytes, rate_ms);
	for (int i = 0; i < nreqs; i++)
		if (reqs[i].op == POP_GET && reqs[i].ok && !reqs[i].timing_loose)
			first_answer_ms = Max(first_answer_ms,
								  reqs[i].first_byte_ms > 0 ? reqs[i].first_byte_ms : reqs[i].latency_ms);
	stats_lock(s, LW_EXCLUSIVE);
	for (int i = 0; i < nreqs; i++)
	{
		ProviderRequest *r = &reqs[i];
		ProviderStatsEntry *e = stats_entry(s, r->provider->serverid, true);
		bool		transport_failure = r->unreachable || (!r->ok && !r->not_found &&
															(r->http_status == 0 || r->http_status >= 500));

		if (r->cancelled)
		{
			/*
			 * Not needed after all (hedged sets): a spare never started
			 * made no request; one stopped because enough others answered
			 * first is no error and says nothing of the provider's health
			 * (what its tries met is still counted) — unless it had run
			 * late, when how long it had run is a lower bound of its read
			 * time, or its answer had begun, when it measured its provider
			 * as one that ended (and the bytes it moved count).
			 */
			if (r->latency_ms > 0)
			{
				e->requests++;
				e->retries += r->retries;
				e->short_bodies += r->short_bodies;
			}
			e->bytes_read += r->partial_bytes;
			if (r->partial_bytes > 0 && !r->timing_loose && r->op == POP_GET)
			{
				/* and how long it ran, a lower bound of its time (as below) */
				entry_note_read(e, r, r->partial_bytes, r->body_ms, now);
				ring_push(e->latencies, &e->latency_pos, &e->nlatencies, LATENCY_WINDOW, r->latency_ms);
			}
			else if (r->late && !r->timing_loose && r->latency_ms > 0 && r->op == POP_GET)
			{
				push_read(e, r->latency_ms, r->queued);
				e->last_read = now;
				if (!e->read_answered)
					e->recent_bounds_only = true;
				ring_push(e->latencies, &e->latency_pos, &e->nlatencies, LATENCY_WINDOW, r->latency_ms);
			}
			else if (!e->read_answered && !r->timing_loose && r->op == POP_GET &&
					 r->partial_bytes == 0 && r->latency_ms > first_answer_ms && first_answer_ms > 0)
			{
				/*
				 * Never measured, and still silent when every other
				 * answer of its batch had begun: how long it ran is a
				 * lower bound of its read time.  A far provider asked at
				 * once because it was never measured (plan_hedge) never
				 * won a race, stayed never measured, and was asked by
				 * every read only to be stopped.
				 */
				push_read(e, r->latency_ms, r->queued);
				e->last_read = now;
				e->read_bounded = true;
				e->recent_bounds_only = true;
			}
			continue;
		}
		e->requests++;
		e->retries += r->retries;
		e->short_bodies += r->short_bodies;
		if (r->abandoned)
		{
			/*
			 * Given up by a hedge: slow, not failing — or, given up for a
			 * thin link, not slow to answer (small reads still use it) but
			 * measured by what had come, however little: its rate was
			 * found a fraction of the others' (bulk reads go around it).
			 */
			if (!r->thin)
				entry_mark_slow(e, now);
			e->bytes_read += r->partial_bytes;
			if ((r->thin || r->partial_bytes >= PROVIDER_RATE_MIN_BYTES) && r->partial_bytes > 0 &&
				r->body_ms > 0 && !r->timing_loose)
			{
				ring_push(e->recent_rates, &e->rate_pos, &e->nrates, RECENT_READS,
						  r->partial_bytes / Max(r->body_ms, 1.0));
				e->last_rate = now;
			}
			ring_push(e->latencies, &e->latency_pos, &e->nlatencies, LATENCY_WINDOW, r->latency_ms);
			continue;
		}
		if (r->op == POP_GET && r->ok && r->timing_loose)
		{
			/* it answered; how fast, its times do not say (provider_poll) */
			e->read_answered = true;
			e->bytes_read += r->result_size;
		}
		else if (r->op == POP_GET && r->ok)
		{
			e->bytes_read += r->result_size;
			ring_push(e->read_latencies, &e->read_latency_pos, &e->nread_latencies,
					  READ_LATENCY_WINDOW, r->latency_ms);
			entry_note_read(e, r, rate_bytes[i], rate_ms[i], now);
		}
		if ((r->op == POP_PUT || r->op == POP_UPLOAD_PART) && r->ok)
			e->bytes_written += r->datalen;
		if (!r->timing_loose)
		{
			ring_push(e->latencies, &e->latency_pos, &e->nlatencies, LATENCY_WINDOW, r->latency_ms);
		}
		if ((r->ok || r->not_found) && !r->unreachable)
		{
			e->last_success = now;
			entry_up(e, now);
			e->failures_in_row = 0;
		}
		else
		{
			e->errors++;
			e->last_failure = now;
			if (r->error)
				strlcpy(e->last_error, r->error, LAST_ERROR_LEN);

			/*
			 * Down means "do not wait for it": a provider that cannot be
			 * reached at all is down at once; one that answered with a 5xx
			 * or dropped a connection only after a second failed try in a
			 * row (a request retried counts each try), so that a single
			 * hiccup of a request that was not retried is no outage.
			 */
			e->failures_in_row += 1 + r->retries;
			if (transport_failure && (r->unreachable || e->failures_in_row >= 2))
			{
				/*
				 * Marked again by every such failure: a provider still
				 * failing after the interval, when reads try it again, is
				 * down again (it stayed "degraded", and every read asked it
				 * among its first k and waited for a spare).
				 */
				if (e->down_since == 0)
					e->down_since = now;
				e->down_marked = now;
			}
			else if (!transport_failure)
				entry_up(e, now);
		}
	}
	stats_unlock(s);
}

/* Whether e is marked down now: within the interval of its last mark. */
static bool
entry_down(const ProviderStatsEntry *e, TimestampTz now)
{
	return e->down_since != 0 &&
		!TimestampDifferenceExceeds(e->down_marked, now, destor_provider_down_ms);
}

bool
provider_is_down(Provider *p)
{
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;
	bool		down;

	stats_lock(s, LW_SHARED);
	e = stats_entry(s, p->serverid, false);
	down = e != NULL && entry_down(e, GetCurrentTimestamp());
	stats_unlock(s);
	return down;
}

/*
 * The notes, locked (the shared ones are under the stats lock), and their
 * release; without shared memory, this backend's own.
 */
static ShardNotes *
notes_acquire(LWLockMode mode)
{
	if (shard_notes != NULL && shared != NULL)
	{
		LWLockAcquire(shared->lock, mode);
		return shard_notes;
	}
	if (local_notes == NULL)
		local_notes = MemoryContextAllocZero(TopMemoryContext, sizeof(ShardNotes));
	return local_notes;
}

static void
notes_release(ShardNotes *ns)
{
	if (ns == shard_notes)
		LWLockRelease(shared->lock);
}

/* Caller holds the lock. */
static ShardNote *
notes_find(ShardNote *notes, int nnotes, Oid serverid, const char *key)
{
	for (int i = 0; i < nnotes; i++)
	{
		ShardNote  *n = &notes[i];

		if (n->dbid == MyDatabaseId && n->serverid == serverid &&
			strcmp(n->key, key) == 0)
			return n;
	}
	return NULL;
}

/* Caller holds the lock: notes key on p now (its note, a free slot, or the oldest). */
static void
notes_put(ShardNote *notes, int nnotes, Provider *p, const char *key)
{
	ShardNote  *n = notes_find(notes, nnotes, p->serverid, key);

	if (n == NULL)
	{
		n = &notes[0];
		for (int i = 0; i < nnotes && n->dbid != InvalidOid; i++)
			if (notes[i].dbid == InvalidOid || notes[i].noted < n->noted)
				n = &notes[i];
		n->dbid = MyDatabaseId;
		n->serverid = p->serverid;
		strlcpy(n->key, key, SHARD_NOTE_KEY_LEN);
	}
	n->noted = GetCurrentTimestamp();
}

/*
 * provider_note_shard_verified — a reader fetched what p serves under key,
 * a shard recorded bad in destor.shards, and every chunk of it that it read
 * matched its tag: from now on readers of every backend treat the record
 * as cleared (provider_shard_verified), until one finds the shard failing
 * (provider_forget_shard_verified) or the next repair records it anew.
 * Shared memory only, never the catalog: see ShardNote.
 */
void
provider_note_shard_verified(Provider *p, const char *key)
{
	ShardNotes *ns;

	if (strlen(key) >= SHARD_NOTE_KEY_LEN)
		return;					/* not a shard key of ours: nothing to note */
	ns = notes_acquire(LW_EXCLUSIVE);
	notes_put(ns->notes, MAX_SHARD_NOTES, p, key);
	notes_release(ns);
}

/*
 * provider_note_shard_probed — a probe of key on p, a shard recorded bad,
 * found nothing (see MAX_PROBE_NOTES): readers leave it unprobed for an
 * interval.
 */
void
provider_note_shard_probed(Provider *p, const char *key)
{
	ShardNotes *ns;

	if (strlen(key) >= SHARD_NOTE_KEY_LEN)
		return;
	ns = notes_acquire(LW_EXCLUSIVE);
	notes_put(ns->probes, MAX_PROBE_NOTES, p, key);
	notes_release(ns);
}

/* provider_shard_verified — whether a reader noted key on p verified good. */
bool
provider_shard_verified(Provider *p, const char *key)
{
	ShardNotes *ns = notes_acquire(LW_SHARED);
	bool		found = notes_find(ns->notes, MAX_SHARD_NOTES, p->serverid, key) != NULL;

	notes_release(ns);
	return found;
}

/*
 * provider_shard_probe_due — whether a reader should probe key on p (a
 * shard recorded bad): not within destor.provider_down_interval of a
 * probe that found nothing.
 */
bool
provider_shard_probe_due(Provider *p, const char *key)
{
	ShardNotes *ns = notes_acquire(LW_SHARED);
	ShardNote  *n = notes_find(ns->probes, MAX_PROBE_NOTES, p->serverid, key);
	bool		due = n == NULL ||
		TimestampDifferenceExceeds(n->noted, GetCurrentTimestamp(), destor_provider_down_ms);

	notes_release(ns);
	return due;
}

/* provider_forget_shard_verified — key on p failed a reader after all. */
void
provider_forget_shard_verified(Provider *p, const char *key)
{
	ShardNotes *ns = notes_acquire(LW_EXCLUSIVE);
	ShardNote  *n = notes_find(ns->notes, MAX_SHARD_NOTES, p->serverid, key);

	if (n != NULL)
		memset(n, 0, sizeof(ShardNote));
	notes_release(ns);
}

static double read_ms_within(Provider *p, int min_reads, int max_age_ms, bool idle_only);

double
provider_recent_read_ms(Provider *p)
{
	return read_ms_within(p, RECENT_READS, destor_provider_down_ms, false);
}

/*
 * provider_read_ms — as provider_recent_read_ms, from as few as min_reads
 * of the provider's recent read times (at most RECENT_READS): fewer say
 * less (one hiccup), but a far provider that loses every race answers
 * rarely, and until then it would be taken for as fast as the fastest.
 * Remembered for PROVIDER_LINK_MEMORY_MS, not forgotten after
 * destor.provider_down_interval: a round trip is the link's.  Only reads
 * that started on an idle link count (ProviderRequest.queued): one started
 * behind another GET of the provider measured that one's bytes too, and
 * four such made a provider 40 ms away distant (TAP 169).  Being slow
 * (provider_recent_read_ms) counts them all: a provider that turned slow
 * is the one whose GETs run into each other.
 */
double
provider_read_ms(Provider *p, int min_reads)
{
	return read_ms_within(p, min_reads, Max(destor_provider_down_ms, PROVIDER_LINK_MEMORY_MS), true);
}

/*
 * provider_claim_probe — whether the caller should ask p again although it
 * is gone around (distant: object_read.c): p was not measured for
 * destor.provider_down_interval, and no reader claimed that since.  One
 * reader per interval gets true; its reads measure p again, so that a
 * provider measured during a stall is not gone around for as long as its
 * round trip is remembered.
 */
bool
provider_claim_probe(Provider *p)
{
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;
	TimestampTz now = GetCurrentTimestamp();
	bool		claimed = false;

	stats_lock(s, LW_EXCLUSIVE);
	e = stats_entry(s, p->serverid, false);
	if (e != NULL && TimestampDifferenceExceeds(e->last_read, now, destor_provider_down_ms) &&
		TimestampDifferenceExceeds(e->probe_claimed, now, destor_provider_down_ms))
	{
		e->probe_claimed = now;
		claimed = true;
	}
	stats_unlock(s);
	return claimed;
}

static double
read_ms_within(Provider *p, int min_reads, int max_age_ms, bool idle_only)
{
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;
	double		ms = -1;
	TimestampTz now = GetCurrentTimestamp();

	min_reads = Max(1, Min(min_reads, RECENT_READS));
	stats_lock(s, LW_SHARED);
	e = stats_entry(s, p->serverid, false);
	if (e && e->slow_since != 0 &&
		!TimestampDifferenceExceeds(e->slow_since, now, destor_provider_down_ms))
		ms = PROVIDER_KNOWN_SLOW_MS;	/* found slow lately: avoided until the interval ends */
	else if (e && !TimestampDifferenceExceeds(e->last_read, now, max_age_ms))
	{
		float4	   *reads = idle_only ? e->idle_reads : e->recent_reads;
		uint32		n = idle_only ? e->nidle : e->nrecent;

		/* the fastest, so that one hiccup does not make a provider slow */
		if (n >= (uint32) min_reads)
		{
			ms = reads[0];
			for (uint32 i = 1; i < n; i++)
				ms = Min(ms, reads[i]);
		}
	}
	stats_unlock(s);
	return ms;
}

/*
 * provider_answer_ms — the round trip of p's last GET that answered (to its
 * first byte; the bounds of requests stopped unanswered are not answers),
 * found slow since or not, if within PROVIDER_LINK_MEMORY_MS; else -1.  How
 * far p is: a provider 2 s away, never answering before the near ones,
 * was taken for a stall by every read that needed it (s3_hedge_fall_back).
 */
double
provider_answer_ms(Provider *p)
{
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;
	double		ms = -1;

	stats_lock(s, LW_SHARED);
	e = stats_entry(s, p->serverid, false);
	if (e != NULL && e->answer_at != 0 &&
		!TimestampDifferenceExceeds(e->answer_at, GetCurrentTimestamp(),
									Max(destor_provider_down_ms, PROVIDER_LINK_MEMORY_MS)))
		ms = e->answer_ms;
	stats_unlock(s);
	return ms;
}

/*
 * Whether p's read time was ever measured (a GET of it succeeded since the
 * server started or provider_stats_reset()), or p was found slow.  A GET
 * cancelled late does not count: its running time is only a lower bound,
 * and a provider that never answered in time cannot be ranked.  Unlike provider_recent_read_ms, not forgotten after
 * destor.provider_down_interval: that setting is how long a failing or slow
 * provider is avoided, and with it a backend idle for a while, or a
 * setting of 0, would make every read a guess (object_read.c hedges reads
 * on providers never measured by asking every shard at once).
 */
bool
provider_read_time_known(Provider *p)
{
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;
	bool		known;

	stats_lock(s, LW_SHARED);
	e = stats_entry(s, p->serverid, false);
	known = e != NULL && (e->read_answered || e->read_bounded || e->slow_since != 0);
	stats_unlock(s);
	return known;
}

/* the provider's recent rates (at most RECENT_READS) into out: how many */
static uint32
recent_rates_copy(Provider *p, float4 *out)
{
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;
	uint32		n = 0;

	stats_lock(s, LW_SHARED);
	e = stats_entry(s, p->serverid, false);
	if (e && e->nrates > 0 &&
		!TimestampDifferenceExceeds(e->last_rate, GetCurrentTimestamp(),
									Max(destor_provider_down_ms, PROVIDER_LINK_MEMORY_MS)))
	{
		n = e->nrates;
		memcpy(out, e->recent_rates, sizeof(float4) * n);
	}
	stats_unlock(s);
	return n;
}

/*
 * The fastest of the provider's last few large GETs' body rates (bytes per
 * ms), or -1 when it has none within PROVIDER_LINK_MEMORY_MS.  The
 * fastest, as for read times: a request that shared the link with others
 * of its batch saw only its part of it.
 */
double
provider_recent_read_rate(Provider *p)
{
	float4		rates[RECENT_READS];
	uint32		n = recent_rates_copy(p, rates);
	double		rate = -1;

	for (uint32 i = 0; i < n; i++)
		rate = Max(rate, rates[i]);
	return rate;
}

static int	cmp_float4(const void *a, const void *b);

/* provider_typical_read_rate — the median of those rates, or -1 */
double
provider_typical_read_rate(Provider *p)
{
	float4		sorted[RECENT_READS];
	uint32		n = recent_rates_copy(p, sorted);

	if (n == 0)
		return -1;
	qsort(sorted, n, sizeof(float4), cmp_float4);
	return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
}

/*
 * provider_latency_p95_ms — the 95th percentile of the provider's last
 * successful GETs' times (s3: libcurl's own transfer times, so a busy
 * backend does not inflate them; uploads, much longer, are left out), or
 * -1 when it has none.
 */
double
provider_latency_p95_ms(Provider *p)
{
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;
	float4		sorted[READ_LATENCY_WINDOW];
	uint32		n = 0;

	stats_lock(s, LW_SHARED);
	e = stats_entry(s, p->serverid, false);
	if (e && e->nread_latencies > 0)
	{
		n = e->nread_latencies;
		memcpy(sorted, e->read_latencies, sizeof(float4) * n);
	}
	stats_unlock(s);
	if (n == 0)
		return -1;
	qsort(sorted, n, sizeof(float4), cmp_float4);
	return sorted[(int) ((n - 1) * 0.95)];
}

void
provider_mark_slow(Provider *p)
{
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;
	TimestampTz now = GetCurrentTimestamp();

	stats_lock(s, LW_EXCLUSIVE);
	e = stats_entry(s, p->serverid, true);
	/* not renewed while it lasts: when it ends, a read measures the provider again */
	entry_mark_slow(e, now);
	stats_unlock(s);
}

static int
cmp_float4(const void *a, const void *b)
{
	float4		x = *(const float4 *) a;
	float4		y = *(const float4 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * stats_srf_begin — what both statistics functions start with: a
 * materialized result set, and a copy of this database's entries taken
 * under the shared lock, so that rows are built (palloc, which may ERROR)
 * without holding it.  Returns the number of entries copied into *copy.
 */
static int
stats_srf_begin(FunctionCallInfo fcinfo, ProviderStatsEntry **copy)
{
	ProviderStatsShared *s = stats_area();
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	*copy = palloc(sizeof(ProviderStatsEntry) * MAX_PROVIDER_STATS);
	stats_lock(s, LW_SHARED);
	for (int i = 0; i < s->n; i++)
		if (s->entries[i].dbid == MyDatabaseId)
			(*copy)[n++] = s->entries[i];
	stats_unlock(s);
	return n;
}

PG_FUNCTION_INFO_V1(destor_provider_stats);

/*
 * (serverid, state, last_error, requests, errors, bytes_read, bytes_written,
 *  latency_p50_ms, latency_p99_ms, last_success) for this database's
 * providers that have been used.
 */
Datum
destor_provider_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ProviderStatsEntry *copy;
	int			n = stats_srf_begin(fcinfo, &copy);
	TimestampTz now = GetCurrentTimestamp();
	bool		may_see_errors = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	for (int i = 0; i < n; i++)
	{
		ProviderStatsEntry *e = &copy[i];
		Datum		values[10];
		bool		nulls[10] = {0};
		const char *state;

		if (entry_down(e, now))
			state = "down";
		else if ((e->last_failure != 0 &&
				  !TimestampDifferenceExceeds(e->last_failure, now, 60 * 1000)) ||
				 (e->slow_since != 0 &&
				  !TimestampDifferenceExceeds(e->slow_since, now, destor_provider_down_ms)))
			state = "degraded";
		else
			state = "up";
		values[0] = ObjectIdGetDatum(e->serverid);
		values[1] = CStringGetTextDatum(state);
		/* it names the object of another session: pg_read_all_stats only */
		if (e->last_error[0] && may_see_errors)
			values[2] = CStringGetTextDatum(e->last_error);
		else
			nulls[2] = true;
		values[3] = Int64GetDatum((int64) e->requests);
		values[4] = Int64GetDatum((int64) e->errors);
		values[5] = Int64GetDatum((int64) e->bytes_read);
		values[6] = Int64GetDatum((int64) e->bytes_written);
		if (e->nlatencies > 0)
		{
			float4		sorted[LATENCY_WINDOW];

			memcpy(sorted, e->latencies, sizeof(float4) * e->nlatencies);
			qsort(sorted, e->nlatencies, sizeof(float4), cmp_float4);
			values[7] = Float8GetDatum(sorted[(e->nlatencies - 1) / 2]);
			values[8] = Float8GetDatum(sorted[(int) ((e->nlatencies - 1) * 0.99)]);
		}
		else
			nulls[7] = nulls[8] = true;
		if (e->last_success)
			values[9] = TimestampTzGetDatum(e->last_success);
		else
			nulls[9] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * provider_stats_note_check — check_provider() or repair() asked this
 * provider: what they found is the provider's state too.  A failed check
 * marks it down at once (its requests were recorded already; this covers
 * failures they did not count as outages), a passed one clears that.
 */
void
provider_stats_note_check(Provider *p, bool ok)
{
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;
	TimestampTz now = GetCurrentTimestamp();

	stats_lock(s, LW_EXCLUSIVE);
	e = stats_entry(s, p->serverid, true);
	e->last_check = now;
	e->last_check_ok = ok;
	if (!ok)
	{
		e->last_failure = now;
		if (e->down_since == 0)
			e->down_since = now;
		e->down_marked = now;
	}
	else
	{
		entry_up(e, now);
		e->failures_in_row = 0;
	}
	stats_unlock(s);
}

/*
 * provider_stats_note_egress — bytes a provider sent to a batch given up
 * by an ERROR (provider_abandon): the provider bills them as egress, but
 * the batch is never noted.  Only the bytes: nothing timed in an error's
 * cleanup measures the provider.  Runs in error cleanup, so it allocates
 * nothing and, if the ERROR came while this backend held the statistics'
 * lock, counts nothing rather than wait for itself.
 */
void
provider_stats_note_egress(Oid serverid, uint64 bytes)
{
	ProviderStatsShared *s = stats_area();

	if (bytes == 0 || !OidIsValid(serverid))
		return;
	if (s == shared && LWLockHeldByMe(s->lock))
		return;
	stats_lock(s, LW_EXCLUSIVE);
	stats_entry(s, serverid, true)->bytes_read += bytes;
	stats_unlock(s);
}

/*
 * provider_stats_note_bad_chunk — a reader or repair found a chunk this
 * provider served that does not match its tag (or, for old objects, its
 * CRC): bytes the writer did not write.  Counted per provider so a DBA sees
 * which provider rots or lies, not only the log line of each read.
 */
void
provider_stats_note_bad_chunk(const char *provider)
{
	ForeignServer *server = GetForeignServerByName(provider, true);
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;

	if (server == NULL)
		return;
	stats_lock(s, LW_EXCLUSIVE);
	e = stats_entry(s, server->serverid, true);
	e->bad_chunks++;
	e->last_bad_chunk = GetCurrentTimestamp();
	stats_unlock(s);
}

PG_FUNCTION_INFO_V1(destor_provider_health);

/*
 * (serverid, retries, short_bodies, last_check, last_check_ok, bad_chunks,
 * last_bad_chunk) for this
 * database's providers that have been used: the columns provider_status
 * gained after provider_stats() was declared.
 */
Datum
destor_provider_health(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ProviderStatsEntry *copy;
	int			n = stats_srf_begin(fcinfo, &copy);

	for (int i = 0; i < n; i++)
	{
		ProviderStatsEntry *e = &copy[i];
		Datum		values[7];
		bool		nulls[7] = {0};

		values[0] = ObjectIdGetDatum(e->serverid);
		values[1] = Int64GetDatum((int64) e->retries);
		values[2] = Int64GetDatum((int64) e->short_bodies);
		if (e->last_check != 0)
		{
			values[3] = TimestampTzGetDatum(e->last_check);
			values[4] = BoolGetDatum(e->last_check_ok);
		}
		else
			nulls[3] = nulls[4] = true;
		values[5] = Int64GetDatum((int64) e->bad_chunks);
		values[6] = TimestampTzGetDatum(e->last_bad_chunk);
		nulls[6] = e->last_bad_chunk == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(destor_provider_stats_reset);

Datum
destor_provider_stats_reset(PG_FUNCTION_ARGS)
{
	ProviderStatsShared *s = stats_area();

	stats_lock(s, LW_EXCLUSIVE);
	for (int i = 0; i < s->n; i++)
		if (s->entries[i].dbid == MyDatabaseId)
		{
			Oid			sid = s->entries[i].serverid;

			memset(&s->entries[i], 0, sizeof(ProviderStatsEntry));
			s->entries[i].dbid = MyDatabaseId;
			s->entries[i].serverid = sid;
		}
	stats_unlock(s);
	PG_RETURN_VOID();
}

/* destor.audit_failure_threshold (defined with the maintenance GUCs) */
double		destor_audit_failure_threshold = 0.2;

/*
 * provider_stats_note_audit — what an audit of one chunk on this provider
 * found.  Passed and failed audits enter its recent window (the last
 * AUDIT_WINDOW of them), which its reputation is judged on; an unavailable
 * provider could not be asked, which is counted apart and judged by the
 * provider's state, not here.
 */
void
provider_stats_note_audit(Provider *p, ProviderAuditOutcome outcome)
{
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;

	stats_lock(s, LW_EXCLUSIVE);
	e = stats_entry(s, p->serverid, true);
	e->last_audit = GetCurrentTimestamp();
	if (outcome == AUDIT_UNAVAILABLE)
		e->audits_unavailable++;
	else
	{
		if (outcome == AUDIT_PASSED)
			e->audits_passed++;
		else
			e->audits_failed++;
		e->audit_recent = ((e->audit_recent << 1) | (outcome == AUDIT_FAILED ? 1 : 0)) &
			((1U << AUDIT_WINDOW) - 1);
		if (e->audit_nrecent < AUDIT_WINDOW)
			e->audit_nrecent++;
	}
	stats_unlock(s);
}

static bool
entry_failing(const ProviderStatsEntry *e)
{
	int			failed = 0;

	for (uint32 i = 0; i < e->audit_nrecent; i++)
		failed += (e->audit_recent >> i) & 1;
	return e->audit_nrecent > 0 && failed >= AUDIT_MIN_FAILURES &&
		(double) failed / e->audit_nrecent > destor_audit_failure_threshold;
}

/*
 * provider_is_failing — has this provider failed more than
 * destor.audit_failure_threshold of its recent audits (and at least
 * AUDIT_MIN_FAILURES of them)?  Placement keeps new shards off it.
 */
bool
provider_is_failing(Oid serverid)
{
	ProviderStatsShared *s = stats_area();
	ProviderStatsEntry *e;
	bool		failing = false;

	stats_lock(s, LW_SHARED);
	e = stats_entry(s, serverid, false);
	if (e)
		failing = entry_failing(e);
	stats_unlock(s);
	return failing;
}

PG_FUNCTION_INFO_V1(destor_provider_audits);

static Interval *
ms_interval(uint64 ms)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = (TimeOffset) ms * 1000;
	return iv;
}

/*
 * (serverid, audits_passed, audits_failed, audits_unavailable, last_audit,
 *  failing, unavailable_time, slow_time) for this database's providers that
 *  have been used: their reputation.
 */
Datum
destor_provider_audits(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ProviderStatsEntry *copy;
	int			n = stats_srf_begin(fcinfo, &copy);

	for (int i = 0; i < n; i++)
	{
		ProviderStatsEntry *e = &copy[i];
		Datum		values[8];
		bool		nulls[8] = {0};
		TimestampTz now = GetCurrentTimestamp();

		values[0] = ObjectIdGetDatum(e->serverid);
		values[1] = Int64GetDatum((int64) e->audits_passed);
		values[2] = Int64GetDatum((int64) e->audits_failed);
		values[3] = Int64GetDatum((int64) e->audits_unavailable);
		values[4] = TimestampTzGetDatum(e->last_audit);
		nulls[4] = e->last_audit == 0;
		values[5] = BoolGetDatum(entry_failing(e));
		values[6] = IntervalPGetDatum(ms_interval(e->unavailable_ms + entry_outage_ms(e, now)));
		values[7] = IntervalPGetDatum(ms_interval(e->slow_ms + entry_slow_period_ms(e, now)));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
