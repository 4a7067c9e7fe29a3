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
 * blob: a BEFORE DELETE of a row whose partition key a BEFORE UPDATE of
 * this transaction changed is that move, and an AFTER DELETE sees the
 * moved row's mark.
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
#include "optimizer/optimizer.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/partcache.h"
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

/*
 * Rows of partitions a BEFORE UPDATE changed the partition key of, in this
 * transaction: a BEFORE DELETE of one of them is that UPDATE moving it to
 * another partition (and takes it out).  Rows whose key stays cannot move,
 * so a large UPDATE does not fill this.
 */
typedef struct UpdatedRow
{
	Oid			relid;
	ItemPointerData tid;
} UpdatedRow;

static HTAB *updated_rows = NULL;	/* in TopTransactionContext */

/* Per partition, the columns its partition constraint reads. */
typedef struct PartitionColumns
{
	Oid			relid;
	Bitmapset  *attnos;			/* offset by FirstLowInvalidHeapAttributeNumber */
} PartitionColumns;

static HTAB *partition_columns = NULL;	/* in TopTransactionContext */

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
			partition_columns = NULL;
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

static HTAB *
managed_hash(const char *name, Size keysize, Size entrysize)
{
	HASHCTL		ctl;

	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = TopTransactionContext;
	return hash_create(name, 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* Does the UPDATE change a column the partition's constraint reads? */
static bool
partition_key_changed(Relation rel, HeapTuple oldtup, HeapTuple newtup)
{
	Oid			relid = RelationGetRelid(rel);
	PartitionColumns *pc;
	bool		found;
	int			x = -1;

	if (partition_columns == NULL)
		partition_columns = managed_hash("destor blob_manage partition columns", sizeof(Oid),
										 sizeof(PartitionColumns));
	pc = hash_search(partition_columns, &relid, HASH_ENTER, &found);
	if (!found)
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		pc->attnos = NULL;
		pull_varattnos((Node *) RelationGetPartitionQual(rel), 1, &pc->attnos);
		MemoryContextSwitchTo(old);
	}
	while ((x = bms_next_member(pc->attnos, x)) >= 0)
	{
		AttrNumber	a = x + FirstLowInvalidHeapAttributeNumber;
		Form_pg_attribute att;
		bool		n1,
					n2;
		Datum		v1,
					v2;

		if (a <= 0)
			return true;		/* not a plain column: assume it may move */
		att = TupleDescAttr(RelationGetDescr(rel), a - 1);
		v1 = heap_getattr(oldtup, a, RelationGetDescr(rel), &n1);
		v2 = heap_getattr(newtup, a, RelationGetDescr(rel), &n2);
		if (n1 != n2 || (!n1 && !datumIsEqual(v1, v2, att->attbyval, att->attlen)))
			return true;
	}
	return false;
}

/* Remember a partition's row whose key a BEFORE UPDATE changes; or ask (and forget). */
static bool
managed_moving_row(Relation rel, ItemPointer tid, bool remember)
{
	UpdatedRow	key;
	bool		found;

	if (updated_rows == NULL)
	{
		if (!remember)
			return false;
		updated_rows = managed_hash("destor blob_manage moving rows", sizeof(UpdatedRow),
									sizeof(UpdatedRow));
	}
	memset(&key, 0, sizeof(key));
	key.relid = RelationGetRelid(rel);
	key.tid = *tid;
	hash_search(updated_rows, &key, remember ? HASH_ENTER : HASH_REMOVE, &found);
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
		{
			if (partition_key_changed(td->tg_relation, td->tg_trigtuple, td->tg_newtuple))
				managed_moving_row(td->tg_relation, &td->tg_trigtuple->t_self, true);
		}
		else if (TRIGGER_FIRED_BY_DELETE(td->tg_event) &&
				 (TRIGGER_FIRED_BEFORE(td->tg_event) ?
				  managed_moving_row(td->tg_relation, &td->tg_trigtuple->t_self, false) :
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
