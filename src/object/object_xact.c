/*
 * object_xact.c — the transactional fate of shards.
 *
 * Provider objects are not transactional, the catalog is.  This file keeps
 * the two in step:
 *   - objects written by a (sub)transaction that aborts are deleted from
 *     their providers at abort (best effort; leftovers of a crash are found
 *     later by destor.cleanup_orphans(), which compares providers with the
 *     catalog);
 *   - objects deleted by a transaction are removed from providers only after
 *     it commits, never before and never on rollback;
 *   - streamed uploads still open at abort are discarded;
 *   - objects another database wrote (borrowed by a restored copy) are never
 *     deleted from providers here: only the reference to them goes.
 * Everything needed at end of transaction (provider settings included) is
 * copied into a long-lived context up front, because the catalog cannot be
 * read while a transaction aborts.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "storage/procarray.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "destor/cache.h"
#include "destor/object.h"

typedef struct TrackedObject
{
	uint8		id[CODEC_OBJID_LEN];
	int			nshards;
	Provider  **providers;		/* NULL entry: provider no longer exists */
	SubTransactionId subid;
} TrackedObject;

typedef struct TrackedUpload
{
	ProviderUpload *upload;		/* lives in the writer's context */
	SubTransactionId subid;
} TrackedUpload;

static MemoryContext xact_cxt = NULL;
static List *written_objects = NIL;	/* delete at abort */
static List *deleted_objects = NIL;	/* delete at commit */
static List *open_uploads = NIL;	/* discard at abort */

static void object_xact_callback(XactEvent event, void *arg);
static void object_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);

void
object_xact_init(void)
{
	RegisterXactCallback(object_xact_callback, NULL);
	RegisterSubXactCallback(object_subxact_callback, NULL);
}

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static MemoryContext
object_xact_cxt(void)
{
	if (xact_cxt == NULL)
		xact_cxt = AllocSetContextCreate(TopMemoryContext, "destor end-of-transaction work",
										 ALLOCSET_SMALL_SIZES);
	return xact_cxt;
}

static TrackedObject *
tracked_object_make(ObjectMeta *meta, bool lookup_missing_ok)
{
	MemoryContext cxt = object_xact_cxt();
	int			n = meta->data_shards + meta->parity_shards;
	TrackedObject *t = MemoryContextAllocZero(cxt, sizeof(TrackedObject));

	memcpy(t->id, meta->id, CODEC_OBJID_LEN);
	t->nshards = n;
	t->providers = MemoryContextAllocZero(cxt, sizeof(Provider *) * n);
	for (int i = 0; i < n; i++)
	{
		Provider   *p = provider_lookup_by_name(meta->shards[i].provider, lookup_missing_ok);

		if (p)
			t->providers[i] = provider_copy(p, cxt);
	}
	t->subid = GetCurrentSubTransactionId();
	return t;
}

void
object_track_written(ObjectMeta *meta)
{
	TrackedObject *t = tracked_object_make(meta, false);
	MemoryContext old = MemoryContextSwitchTo(object_xact_cxt());

	written_objects = lappend(written_objects, t);
	MemoryContextSwitchTo(old);
}

/*
 * A written object's catalog rows are inserted now, in the current
 * subtransaction, which may be a child of the one that began writing it
 * (blob_create in one, blob_close in a savepoint): if this one rolls back,
 * the rows go and so must the shards.
 */
void
object_track_retag(const uint8 id[CODEC_OBJID_LEN])
{
	ListCell   *lc;

	foreach(lc, written_objects)
	{
		TrackedObject *t = lfirst(lc);

		if (memcmp(t->id, id, CODEC_OBJID_LEN) == 0)
			t->subid = GetCurrentSubTransactionId();
	}
}

/* A tracked "object" of one shard: the others are left alone. */
static TrackedObject *
tracked_shard_make(const uint8 id[CODEC_OBJID_LEN], int shard, Provider *p)
{
	MemoryContext cxt = object_xact_cxt();
	TrackedObject *t = MemoryContextAllocZero(cxt, sizeof(TrackedObject));

	memcpy(t->id, id, CODEC_OBJID_LEN);
	t->nshards = shard + 1;
	t->providers = MemoryContextAllocZero(cxt, sizeof(Provider *) * (shard + 1));
	t->providers[shard] = provider_copy(p, cxt);
	t->subid = GetCurrentSubTransactionId();
	return t;
}

/*
 * One shard written to p by this transaction: deleted if it aborts.  If
 * this transaction was to delete that very shard from p at commit (a shard
 * moved away and back), the copy there is the original: it is kept either
 * way, so the pending deletion is dropped and the write not tracked.
 */
void
object_track_written_shard(const uint8 id[CODEC_OBJID_LEN], int shard, Provider *p)
{
	TrackedObject *t;
	MemoryContext old;
	ListCell   *lc;

	foreach(lc, deleted_objects)
	{
		TrackedObject *d = lfirst(lc);

		bool		same = memcmp(d->id, id, CODEC_OBJID_LEN) == 0 && d->nshards == shard + 1 &&
			d->providers[shard] != NULL && d->providers[shard]->serverid == p->serverid;

		/* only a one-shard entry (from a move), not a whole object's */
		for (int j = 0; same && j < shard; j++)
			same = d->providers[j] == NULL;
		if (same)
		{
			deleted_objects = foreach_delete_current(deleted_objects, lc);
			return;
		}
	}
	t = tracked_shard_make(id, shard, p);
	old = MemoryContextSwitchTo(object_xact_cxt());
	written_objects = lappend(written_objects, t);
	MemoryContextSwitchTo(old);
}

/* One shard on p no longer used once this transaction commits. */
void
object_delete_shard_at_commit(const uint8 id[CODEC_OBJID_LEN], int shard, Provider *p)
{
	TrackedObject *t;
	MemoryContext old;

	if (!object_is_ours(id))
		return;					/* borrowed: its writer's catalog may still place it there */
	t = tracked_shard_make(id, shard, p);
	old = MemoryContextSwitchTo(object_xact_cxt());

	deleted_objects = lappend(deleted_objects, t);
	MemoryContextSwitchTo(old);
}

void
object_delete_at_commit(ObjectMeta *meta)
{
	TrackedObject *t;
	MemoryContext old;

	if (!object_is_ours(meta->id))
		return;					/* borrowed: its writer owns its shards */
	t = tracked_object_make(meta, true);
	old = MemoryContextSwitchTo(object_xact_cxt());

	deleted_objects = lappend(deleted_objects, t);
	MemoryContextSwitchTo(old);
}

/*
 * object_id_claim — put a new object's id under this database's namespace:
 * its last PROVIDER_NS_LEN bytes are the namespace.  The first bytes stay
 * random, since placement and the shard keys' folders derive from them, and
 * so do the v4 version and variant bits (bytes 6 and 8): 74 random bits
 * remain, which two objects of one database never share in practice.
 */
void
object_id_claim(uint8 id[CODEC_OBJID_LEN])
{
	uint8		ns[PROVIDER_NS_LEN];

	if (provider_instance_namespace(ns))
		memcpy(id + CODEC_OBJID_LEN - PROVIDER_NS_LEN, ns, PROVIDER_NS_LEN);
}

/* object_is_ours — did this database write the object (or cannot it tell)? */
bool
object_is_ours(const uint8 id[CODEC_OBJID_LEN])
{
	uint8		ns[PROVIDER_NS_LEN];

	if (!provider_instance_namespace(ns))
		return true;
	return memcmp(id + CODEC_OBJID_LEN - PROVIDER_NS_LEN, ns, PROVIDER_NS_LEN) == 0;
}

/*
 * object_key_is_ours — a provider key of this database's: a shard key, or
 * a temp file of one ("ds/<2 hex>/<32 hex>..."), of an object it wrote.
 * Keys of any other form are nobody's we know, and so not ours.
 */
bool
object_key_is_ours(const char *key)
{
	const char *p = key;
	uint8		id[CODEC_OBJID_LEN];

	if (strncmp(p, OBJECT_KEY_PREFIX, strlen(OBJECT_KEY_PREFIX)) != 0)
		return false;
	p += strlen(OBJECT_KEY_PREFIX);
	if (strlen(p) < 3 + CODEC_OBJID_LEN * 2 || p[2] != '/')
		return false;
	p += 3;
	for (int i = 0; i < CODEC_OBJID_LEN; i++)
	{
		int			hi = hex_digit(p[2 * i]);
		int			lo = hex_digit(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		id[i] = (uint8) (hi << 4 | lo);
	}
	return object_is_ours(id);
}

void
object_track_upload(ProviderUpload *u)
{
	MemoryContext old = MemoryContextSwitchTo(object_xact_cxt());
	TrackedUpload *t = palloc(sizeof(TrackedUpload));

	t->upload = u;
	t->subid = GetCurrentSubTransactionId();
	open_uploads = lappend(open_uploads, t);
	MemoryContextSwitchTo(old);
}

void
object_untrack_upload(ProviderUpload *u)
{
	ListCell   *lc;

	foreach(lc, open_uploads)
	{
		TrackedUpload *t = lfirst(lc);

		if (t->upload == u)
		{
			open_uploads = foreach_delete_current(open_uploads, lc);
			pfree(t);
			return;
		}
	}
}

/*
 * End-of-transaction provider work runs with interrupts held, so it must be
 * short: one try, short timeouts.  What does not get done is left to
 * destor.cleanup_orphans().
 */
typedef struct QuickSettings
{
	int			connect_ms;
	int			request_ms;
	int			retries;
} QuickSettings;

#define END_OF_XACT_TIMEOUT_MS 2000

static void
quick_settings_enter(QuickSettings *saved)
{
	saved->connect_ms = destor_connect_timeout_ms;
	saved->request_ms = destor_request_timeout_ms;
	saved->retries = destor_max_retries;
	destor_connect_timeout_ms = Min(destor_connect_timeout_ms, END_OF_XACT_TIMEOUT_MS);
	destor_request_timeout_ms = Min(destor_request_timeout_ms, END_OF_XACT_TIMEOUT_MS);
	destor_max_retries = 0;
}

static void
quick_settings_leave(QuickSettings *saved)
{
	destor_connect_timeout_ms = saved->connect_ms;
	destor_request_timeout_ms = saved->request_ms;
	destor_max_retries = saved->retries;
}

/*
 * Delete every shard of the tracked objects, all in one parallel batch.
 * Runs at end of transaction: it must not throw, so failures are reported
 * as WARNINGs and left to destor.cleanup_orphans().
 */
static void
delete_tracked(List *objects, const char *why)
{
	MemoryContext work;
	MemoryContext old;
	QuickSettings quick;
	ProviderRequest *reqs;
	int			nreqs = 0;
	int			total = 0;
	ListCell   *lc;

	if (objects == NIL)
		return;
	work = AllocSetContextCreate(object_xact_cxt(), "destor shard deletion", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);

	foreach(lc, objects)
		total += ((TrackedObject *) lfirst(lc))->nshards;
	reqs = palloc0(sizeof(ProviderRequest) * total);
	foreach(lc, objects)
	{
		TrackedObject *t = lfirst(lc);

		for (int i = 0; i < t->nshards; i++)
		{
			/* a provider known down would only make us wait: cleanup_orphans later */
			if (t->providers[i] == NULL || provider_is_down(t->providers[i]))
				continue;
			reqs[nreqs].provider = t->providers[i];
			reqs[nreqs].op = POP_DELETE;
			reqs[nreqs].key = object_shard_key(t->id, i);
			nreqs++;
		}
	}

	HOLD_INTERRUPTS();
	quick_settings_enter(&quick);
	PG_TRY();
	{
		provider_execute(reqs, nreqs);
		for (int r = 0; r < nreqs; r++)
			if (!reqs[r].ok)
				ereport(WARNING,
						(errcode(ERRCODE_WARNING),
						 errmsg("could not delete shard \"%s\" from provider \"%s\" %s",
								reqs[r].key, reqs[r].provider->name, why),
						 errdetail("%s", reqs[r].error ? reqs[r].error : "unknown error"),
						 errhint("destor.cleanup_orphans() removes it later.")));
	}
	PG_CATCH();
	{
		/* best effort: leftovers are orphans that cleanup_orphans() finds */
		MemoryContextSwitchTo(work);
		FlushErrorState();
	}
	PG_END_TRY();
	quick_settings_leave(&quick);
	RESUME_INTERRUPTS();

	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
}

static void
abort_uploads(List *uploads)
{
	ListCell   *lc;
	QuickSettings quick;
	MemoryContext cxt = CurrentMemoryContext;

	HOLD_INTERRUPTS();
	quick_settings_enter(&quick);
	foreach(lc, uploads)
	{
		TrackedUpload *t = lfirst(lc);
		ProviderRequest r = {0};

		if (!t->upload->active)
			continue;
		r.provider = t->upload->provider;
		r.op = POP_UPLOAD_ABORT;
		r.upload = t->upload;
		PG_TRY();
		{
			provider_execute(&r, 1);
		}
		PG_CATCH();
		{
			/* the next uploads, and our caller, allocate where we did */
			MemoryContextSwitchTo(cxt);
			FlushErrorState();
		}
		PG_END_TRY();
	}
	quick_settings_leave(&quick);
	RESUME_INTERRUPTS();
}

static void
reset_tracking(void)
{
	written_objects = NIL;
	deleted_objects = NIL;
	open_uploads = NIL;
	if (xact_cxt)
		MemoryContextReset(xact_cxt);
}

static bool
no_snapshot_sees_us(void)
{
	TransactionId xid = GetTopTransactionIdIfAny();

	if (!TransactionIdIsValid(xid))
		return true;
	return TransactionIdPrecedes(xid, GetOldestNonRemovableTransactionId(NULL));
}

static void
object_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (written_objects != NIL || deleted_objects != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that wrote or deleted destor objects"),
						 errhint("Commit the transaction instead of using two-phase commit.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:

			/*
			 * Snapshots taken before this commit (REPEATABLE READ readers,
			 * pg_dump, standbys with feedback) may still see the deleted
			 * objects.  Delete their shards now only if no such snapshot
			 * remains; otherwise they stay retired (the deleting
			 * transaction recorded that) and cleanup_orphans removes them
			 * after its grace period.
			 */
			if (deleted_objects != NIL && no_snapshot_sees_us())
				delete_tracked(deleted_objects, "after commit");
			reset_tracking();
			provider_writing_done();	/* our catalog rows are visible now */
			break;
		case XACT_EVENT_PREPARE:
			provider_writing_done();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			cache_release_reservations();	/* pages an ERROR kept us from fetching */
			provider_s3_settle_writes();	/* so that the deletes come after them */
			abort_uploads(open_uploads);
			delete_tracked(written_objects, "at abort");
			reset_tracking();
			provider_writing_done();
			break;
		default:
			break;
	}
}

static void
object_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, written_objects)
			if (((TrackedObject *) lfirst(lc))->subid == mySubid)
				((TrackedObject *) lfirst(lc))->subid = parentSubid;
		foreach(lc, deleted_objects)
			if (((TrackedObject *) lfirst(lc))->subid == mySubid)
				((TrackedObject *) lfirst(lc))->subid = parentSubid;
		foreach(lc, open_uploads)
			if (((TrackedUpload *) lfirst(lc))->subid == mySubid)
				((TrackedUpload *) lfirst(lc))->subid = parentSubid;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		List	   *doomed = NIL;
		List	   *doomed_uploads = NIL;
		MemoryContext old;

		cache_release_reservations();
		old = MemoryContextSwitchTo(object_xact_cxt());

		foreach(lc, open_uploads)
		{
			if (((TrackedUpload *) lfirst(lc))->subid == mySubid)
			{
				doomed_uploads = lappend(doomed_uploads, lfirst(lc));
				open_uploads = foreach_delete_current(open_uploads, lc);
			}
		}
		foreach(lc, written_objects)
		{
			if (((TrackedObject *) lfirst(lc))->subid == mySubid)
			{
				doomed = lappend(doomed, lfirst(lc));
				written_objects = foreach_delete_current(written_objects, lc);
			}
		}
		/* deletions requested inside the aborted subtransaction are void */
		foreach(lc, deleted_objects)
			if (((TrackedObject *) lfirst(lc))->subid == mySubid)
				deleted_objects = foreach_delete_current(deleted_objects, lc);
		MemoryContextSwitchTo(old);

		if (doomed != NIL)
			provider_s3_settle_writes();	/* the deletes come after them */
		abort_uploads(doomed_uploads);
		delete_tracked(doomed, "at rollback to savepoint");
	}
}

