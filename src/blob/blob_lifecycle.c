/*
 * blob_lifecycle.c — blobs that go away with the rows that referenced them.
 *
 * destor.blob_manage() is contrib lo's lo_manage for blobs: a row trigger
 * on UPDATE OR DELETE, the blob column's name as its argument, that
 * deletes the blob the old row referenced when the row is deleted or the
 * column changes to another blob (or NULL).  The deletion is blob_delete's:
 * the catalog row goes in the transaction, the shards after it commits, so
 * a rollback (of the transaction or of a savepoint) keeps the blob.  Like
 * lo_unlink under lo_manage, it needs ownership of the blob: a role that may
 * delete the row but not the blob gets an ERROR and the row stays.
 *
 * One statement may delete several rows that share a blob: the first
 * deletes it, the others find it gone and go on (the trigger remembers,
 * per (sub)transaction, which blobs it deleted; any other missing blob is
 * the same error as blob_delete's, so the trigger tells nobody whether a
 * blob he may not touch exists).
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
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "destor/blob.h"
#include "destor/object.h"

PG_FUNCTION_INFO_V1(blob_manage);

/* blob.c's SQL function: the access check and the deletion at commit */
extern Datum blob_delete(PG_FUNCTION_ARGS);

/* Blobs blob_manage deleted in this transaction, by subtransaction. */
typedef struct ManagedDeletion
{
	uint8		id[CODEC_OBJID_LEN];
	SubTransactionId subid;
} ManagedDeletion;

static List *managed_deletions = NIL;	/* in TopTransactionContext */
static bool managed_callbacks = false;

static void
managed_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			managed_deletions = NIL;	/* its memory goes with the transaction */
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

	foreach(lc, managed_deletions)
	{
		ManagedDeletion *d = lfirst(lc);

		if (d->subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			d->subid = parentSubid;
		else if (event == SUBXACT_EVENT_ABORT_SUB)
			managed_deletions = foreach_delete_current(managed_deletions, lc);	/* undone */
	}
}

static bool
managed_deleted(const uint8 *id)
{
	ListCell   *lc;

	foreach(lc, managed_deletions)
		if (memcmp(((ManagedDeletion *) lfirst(lc))->id, id, CODEC_OBJID_LEN) == 0)
			return true;
	return false;
}

static void
managed_delete(const uint8 *id)
{
	MemoryContext old;
	ManagedDeletion *d;

	if (managed_deleted(id))
		return;					/* another row of this transaction had it */
	if (!managed_callbacks)
	{
		RegisterXactCallback(managed_xact_cb, NULL);
		RegisterSubXactCallback(managed_subxact_cb, NULL);
		managed_callbacks = true;
	}
	/* the same checks and the same deletion at commit as blob_delete() */
	DirectFunctionCall1(blob_delete, PointerGetDatum(id));
	old = MemoryContextSwitchTo(TopTransactionContext);
	d = palloc(sizeof(ManagedDeletion));
	memcpy(d->id, id, CODEC_OBJID_LEN);
	d->subid = GetCurrentSubTransactionId();
	managed_deletions = lappend(managed_deletions, d);
	MemoryContextSwitchTo(old);
}

/*
 * blob_manage — see above.  BEFORE or AFTER, FOR EACH ROW, UPDATE OR DELETE
 * (an INSERT changes nothing).  AFTER is the safer choice when other BEFORE
 * triggers may skip the row; BEFORE is what lo_manage documents.
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
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
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

	old_value = heap_getattr(td->tg_trigtuple, attnum, tupdesc, &old_null);
	if (old_null)
		return PointerGetDatum(rettuple);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		bool		new_null;
		Datum		new_value = heap_getattr(td->tg_newtuple, attnum, tupdesc, &new_null);

		/* the row keeps its blob */
		if (!new_null && memcmp(DatumGetPointer(old_value), DatumGetPointer(new_value),
								CODEC_OBJID_LEN) == 0)
			return PointerGetDatum(rettuple);
	}
	managed_delete((const uint8 *) DatumGetPointer(old_value));
	return PointerGetDatum(rettuple);
}
