/*
 * blob_lifecycle.c — blobs that go away with the rows that referenced them.
 *
 * destor.blob_manage() is contrib lo's lo_manage for blobs: a row trigger
 * on UPDATE OR DELETE, the blob column's name as its argument, that
 * deletes the blob the old row referenced when the row is deleted or the
 * column changes to another blob (or NULL).  Like lo_unlink under
 * lo_manage, it needs the right to delete the blob, checked when the row
 * changes: a role that may delete the row but not the blob gets an ERROR
 * and the row stays.
 *
 * Unlike lo_manage, the deletion waits for the end of the transaction (its
 * pre-commit, before the metadata log is written), and a blob a row of the
 * same transaction took over is kept: the trigger counts, per blob, the
 * rows that let it go (deleted, or changed to another value) and the rows
 * that took it (an UPDATE setting the column to it; an INSERT too when the
 * trigger also fires on INSERT), and deletes the blobs let go more often
 * than taken.  So one UPDATE that exchanges two rows' blobs, or hands one
 * row's blob to another, deletes nothing, and deleting a row and inserting
 * it again with its blob keeps the blob when the trigger fires on INSERT.
 * A row an UPDATE moves to another partition (PostgreSQL runs it as a
 * DELETE from the old partition and an INSERT into the new one) keeps its
 * blob: a BEFORE DELETE that follows the same command's BEFORE UPDATE of
 * the same row is that move, and an AFTER DELETE sees the moved row's mark.
 * (An AFTER trigger is not told the new row of a move: a blob changed by
 * the same moving UPDATE is kept, never wrongly deleted.)  Events of a
 * subtransaction that rolls back are forgotten; nothing is deleted on
 * rollback.
 *
 * destor.vacuum_blobs(pool, dry_run) — vacuumlo for blobs — is SQL (in the
 * extension script): it reads every table, so it is for superusers.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "destor/blob.h"
#include "destor/meta.h"
#include "destor/object.h"

PG_FUNCTION_INFO_V1(blob_manage);

/* A row let a blob go (-1) or took it (+1), in a (sub)transaction. */
typedef struct ManagedEvent
{
	uint8		id[CODEC_OBJID_LEN];
	int			delta;
	Oid			role;			/* who let it go: the deletion runs as that role */
	SubTransactionId subid;
} ManagedEvent;

static List *managed_events = NIL;	/* in TopTransactionContext */
static bool managed_callbacks = false;

/* Rows of partitions a BEFORE UPDATE saw, in this command: a BEFORE DELETE
 * of one of them is the same UPDATE moving it to another partition. */
typedef struct UpdatedRow
{
	Oid			relid;
	ItemPointerData tid;
} UpdatedRow;

static HTAB *updated_rows = NULL;	/* in TopTransactionContext */
static CommandId updated_cid = InvalidCommandId;

static void
managed_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* normally done already, before the metadata log (blob_pack_init) */
			blob_managed_finish();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (managed_events != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that changed rows managed by destor.blob_manage()"),
						 errhint("Commit the transaction instead of using two-phase commit.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* their memory goes with the transaction */
			managed_events = NIL;
			updated_rows = NULL;
			updated_cid = InvalidCommandId;
			break;
		default:
			break;
	}
}

static void
managed_subxact_cb(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
				   void *arg)
{
	ListCell   *lc;

	foreach(lc, managed_events)
	{
		ManagedEvent *e = lfirst(lc);

		if (e->subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			e->subid = parentSubid;
		else if (event == SUBXACT_EVENT_ABORT_SUB)
			managed_events = foreach_delete_current(managed_events, lc);	/* undone */
	}
}

static void
managed_event(const uint8 *id, int delta)
{
	MemoryContext old;
	ManagedEvent *e;

	if (!managed_callbacks)
	{
		RegisterXactCallback(managed_xact_cb, NULL);
		RegisterSubXactCallback(managed_subxact_cb, NULL);
		managed_callbacks = true;
	}
	/* the deletions come at pre-commit: the metadata log must be listening */
	meta_log_prepare();
	old = MemoryContextSwitchTo(TopTransactionContext);
	e = palloc(sizeof(ManagedEvent));
	memcpy(e->id, id, CODEC_OBJID_LEN);
	e->delta = delta;
	e->role = GetUserId();
	e->subid = GetCurrentSubTransactionId();
	managed_events = lappend(managed_events, e);
	MemoryContextSwitchTo(old);
}

/* A row lets the blob go: may this role delete it?  (An ERROR keeps the row.) */
static void
managed_release(const uint8 *id)
{
	blob_open_data((BlobHandle *) id, "delete");
	managed_event(id, -1);
}

/* Remember (or ask about) a partition's row a BEFORE UPDATE of this command saw. */
static bool
managed_updated_row(Relation rel, ItemPointer tid, bool remember)
{
	UpdatedRow	key;
	CommandId	cid = GetCurrentCommandId(false);
	bool		found;

	if (updated_rows == NULL || updated_cid != cid)
	{
		HASHCTL		ctl;

		if (!remember)
			return false;
		if (updated_rows != NULL)
			hash_destroy(updated_rows);
		ctl.keysize = sizeof(UpdatedRow);
		ctl.entrysize = sizeof(UpdatedRow);
		ctl.hcxt = TopTransactionContext;
		updated_rows = hash_create("destor blob_manage updated rows", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		updated_cid = cid;
	}
	memset(&key, 0, sizeof(key));
	key.relid = RelationGetRelid(rel);
	key.tid = *tid;
	hash_search(updated_rows, &key, remember ? HASH_ENTER : HASH_FIND, &found);
	return found;
}

typedef struct ManagedCount
{
	uint8		id[CODEC_OBJID_LEN];
	int			balance;
	Oid			role;
} ManagedCount;

/*
 * blob_managed_finish — at pre-commit: delete the blobs rows of this
 * transaction let go more often than they took them (and that still exist:
 * a blob deleted meanwhile by blob_delete is not an error).
 */
void
blob_managed_finish(void)
{
	HASHCTL		ctl;
	HTAB	   *counts;
	HASH_SEQ_STATUS seq;
	ManagedCount *c;
	ListCell   *lc;
	bool		pushed = false;

	if (managed_events == NIL)
		return;
	ctl.keysize = CODEC_OBJID_LEN;
	ctl.entrysize = sizeof(ManagedCount);
	ctl.hcxt = CurrentMemoryContext;
	counts = hash_create("destor blob_manage counts", list_length(managed_events), &ctl,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	foreach(lc, managed_events)
	{
		ManagedEvent *e = lfirst(lc);
		bool		found;

		c = hash_search(counts, e->id, HASH_ENTER, &found);
		if (!found)
		{
			c->balance = 0;
			c->role = InvalidOid;
		}
		c->balance += e->delta;
		if (e->delta < 0 && !OidIsValid(c->role))
			c->role = e->role;
	}
	managed_events = NIL;		/* an ERROR below must not bring them back */

	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	hash_seq_init(&seq, counts);
	while ((c = hash_seq_search(&seq)) != NULL)
	{
		Oid			save_user;
		int			save_sec;
		Oid			owner;
		bool		packed;
		uint8		pack[CODEC_OBJID_LEN];
		uint64		off;
		uint64		len;

		if (c->balance >= 0)
			continue;
		CommandCounterIncrement();
		if (!blob_catalog_get(c->id, &owner, &packed, pack, &off, &len))
			continue;
		GetUserIdAndSecContext(&save_user, &save_sec);
		SetUserIdAndSecContext(c->role, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		blob_remove(blob_open_data((BlobHandle *) c->id, "delete"));
		SetUserIdAndSecContext(save_user, save_sec);
	}
	if (pushed)
		PopActiveSnapshot();
	hash_destroy(counts);
}

/*
 * blob_manage — see above.  BEFORE or AFTER, FOR EACH ROW, UPDATE OR DELETE,
 * and INSERT if rows may take blobs other rows let go.  AFTER is the safer
 * choice when other BEFORE triggers may skip the row; BEFORE is what
 * lo_manage documents, and the only one that sees the new row of an UPDATE
 * that moves it to another partition.
 */
Datum
blob_manage(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	tupdesc;
	char	   *column;
	int			attnum;
	Oid			blobtype;
	Datum		old_value;
	bool		old_null;
	HeapTuple	rettuple;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("destor.blob_manage() must be called as a trigger")));
	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("destor.blob_manage() must be fired FOR EACH ROW")));
	if (td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("destor.blob_manage() needs one argument, the name of the blob column"),
				 errhint("CREATE TRIGGER ... EXECUTE FUNCTION destor.blob_manage('column')")));

	rettuple = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		return PointerGetDatum(rettuple);

	tupdesc = RelationGetDescr(td->tg_relation);
	column = td->tg_trigger->tgargs[0];
	attnum = SPI_fnumber(tupdesc, column);
	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist", column,
						RelationGetRelationName(td->tg_relation)),
				 errdetail("It is the argument of trigger \"%s\" (destor.blob_manage).",
						   td->tg_trigger->tgname)));
	blobtype = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("blob"),
							   ObjectIdGetDatum(get_namespace_oid("destor", false)));
	if (getBaseType(TupleDescAttr(tupdesc, attnum - 1)->atttypid) != blobtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation \"%s\" is not of type destor.blob", column,
						RelationGetRelationName(td->tg_relation)),
				 errhint("destor.blob_manage() manages a column of type destor.blob or a domain over it.")));

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		/* a row that takes a blob another row of this transaction let go */
		old_value = heap_getattr(td->tg_trigtuple, attnum, tupdesc, &old_null);
		if (!old_null)
			managed_event((const uint8 *) DatumGetPointer(old_value), +1);
		return PointerGetDatum(rettuple);
	}
	if (td->tg_relation->rd_rel->relispartition)
	{
		/* the DELETE half of an UPDATE that moves the row: the UPDATE counted */
		if (TRIGGER_FIRED_BY_UPDATE(td->tg_event) && TRIGGER_FIRED_BEFORE(td->tg_event))
			managed_updated_row(td->tg_relation, &td->tg_trigtuple->t_self, true);
		else if (TRIGGER_FIRED_BY_DELETE(td->tg_event) &&
				 (TRIGGER_FIRED_BEFORE(td->tg_event) ?
				  managed_updated_row(td->tg_relation, &td->tg_trigtuple->t_self, false) :
				  HeapTupleHeaderIndicatesMovedPartitions(td->tg_trigtuple->t_data)))
			return PointerGetDatum(rettuple);
	}

	old_value = heap_getattr(td->tg_trigtuple, attnum, tupdesc, &old_null);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		bool		new_null;
		Datum		new_value = heap_getattr(td->tg_newtuple, attnum, tupdesc, &new_null);

		/* the row keeps its blob */
		if (!old_null && !new_null &&
			memcmp(DatumGetPointer(old_value), DatumGetPointer(new_value), CODEC_OBJID_LEN) == 0)
			return PointerGetDatum(rettuple);
		if (!new_null)
			managed_event((const uint8 *) DatumGetPointer(new_value), +1);
	}
	if (!old_null)
		managed_release((const uint8 *) DatumGetPointer(old_value));
	return PointerGetDatum(rettuple);
}
