/*
 * table_modify.c — changing destor tables: INSERT (and COPY), UPDATE,
 * DELETE, TRUNCATE and the data of dropped tables.
 *
 * Also the registry of modifications under way in this backend, which lets
 * a scan run by a statement's own functions or triggers see the rows that
 * statement changed so far (add_pending_changes), as heap does.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "optimizer/appendinfo.h"
#include "parser/parsetree.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "destor/catalog.h"
#include "destor/progress.h"
#include "table_internal.h"

PG_FUNCTION_INFO_V1(destor_forget_table);

/* ---------------------------------------------------------------------------
 * Modifying: INSERT buffers rows into new segments; DELETE marks rows in
 * per-segment bitmaps, recorded at the end of the statement; UPDATE is a
 * DELETE of the old row and an INSERT of the new one.
 * ------------------------------------------------------------------------- */
typedef struct ModifyState
{
	TableOptions *opts;
	SegmentWriter *writer;		/* INSERT, UPDATE */
	List	   *segments;		/* DELETE, UPDATE: the snapshot's segment list */
	SegmentDirectory **segarr;
	int			nsegs;
	uint8	  **deleting;		/* per segment: rows deleted by this statement */
	AttrNumber	ctid_attno;
	AttrNumber	wholerow_attno;
	bool		copy_progress;	/* a COPY FROM: reported in destor.progress */
	CmdType		operation;
	uint8	  **deleted_later;	/* per segment: rows a later command deleted */
	uint64		later_seen;		/* deletions_recorded when deleted_later was read */
} ModifyState;

/*
 * The modifications under way in this backend.  A function called by an
 * INSERT, UPDATE or DELETE of a destor table (or by its triggers) must see
 * the rows that statement changed so far, as with heap: its queries run
 * under snapshots with a later command id.  The statement's deletions are
 * only recorded in the catalog at its end, and its new rows partly only in
 * its writer's memory, so a scan under such a snapshot asks the statement
 * for them (add_pending_changes).  Entries are removed at the end of the
 * statement, or by the abort of the (sub)transaction that made them.
 */
typedef struct PendingModify
{
	Oid			relid;
	CommandId	cid;			/* the statement's command id */
	int			nestlevel;		/* transaction nesting level */
	ModifyState *ms;
} PendingModify;

static List *pending_modifies = NIL;	/* of PendingModify, in TopMemoryContext */

/*
 * Counts the statements of this backend that recorded deletions while
 * another modification was under way: a statement called by an UPDATE or
 * DELETE (from a function or trigger) that deleted rows the outer one may
 * still reach.  The outer statement then reads which (mark_deleted).
 */
static uint64 deletions_recorded = 0;

static void
pending_modify_register(Oid relid, CommandId cid, ModifyState *ms)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	PendingModify *pm = palloc(sizeof(PendingModify));

	pm->relid = relid;
	pm->cid = cid;
	pm->nestlevel = GetCurrentTransactionNestLevel();
	pm->ms = ms;
	pending_modifies = lappend(pending_modifies, pm);
	MemoryContextSwitchTo(old);
}

static void
pending_modify_forget(ModifyState *ms)
{
	ListCell   *lc;

	foreach(lc, pending_modifies)
	{
		PendingModify *pm = lfirst(lc);

		if (pm->ms == ms)
		{
			pending_modifies = foreach_delete_current(pending_modifies, lc);
			pfree(pm);
		}
	}
}

static void
pending_modify_xact_callback(XactEvent event, void *arg)
{
	list_free_deep(pending_modifies);
	pending_modifies = NIL;
}

static void
pending_modify_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(lc, pending_modifies)
	{
		PendingModify *pm = lfirst(lc);

		if (pm->nestlevel >= GetCurrentTransactionNestLevel())
		{
			pending_modifies = foreach_delete_current(pending_modifies, lc);
			pfree(pm);
		}
	}
}

/* Whether a statement of this backend is modifying the table. */
bool
modify_in_progress(Oid relid)
{
	ListCell   *lc;

	foreach(lc, pending_modifies)
		if (((PendingModify *) lfirst(lc))->relid == relid)
			return true;
	return false;
}

/*
 * add_pending_changes: the segments a scan under this snapshot reads, with
 * the changes of statements under way that it must see (those with an
 * earlier command id than the snapshot's): their deletions so far marked
 * in the directories, and the segments and buffered rows they wrote added.
 * Returns the list unchanged when no such change applies.
 *
 * flush: the list is that of a statement that will delete rows from it (an
 * UPDATE or DELETE called by one under way): the other statements' buffered
 * rows are first written out as segments, so that every row it may delete
 * has a segment to record the deletion against.  The scan feeding such a
 * statement and the statement itself (destorBeginForeignModify) both ask,
 * in that order, and get the same list: row identities index it.
 */
List *
add_pending_changes(Relation rel, Snapshot snapshot, List *segments, bool flush)
{
	ListCell   *lc;

	if (snapshot == InvalidSnapshot || !IsMVCCSnapshot(snapshot))
		return segments;
	foreach(lc, pending_modifies)
	{
		PendingModify *pm = lfirst(lc);
		ModifyState *ms = pm->ms;
		ListCell   *lc2;
		bool		changed = false;

		if (pm->relid != RelationGetRelid(rel) || snapshot->curcid <= pm->cid)
			continue;
		/* deletions so far */
		for (int i = 0; i < ms->nsegs; i++)
		{
			SegmentDirectory *from = ms->segarr[i];

			if (ms->deleting[i] == NULL)
				continue;
			foreach(lc2, segments)
			{
				SegmentDirectory *dir = lfirst(lc2);
				int64		bytes = (dir->row_count + 7) / 8;

				if (dir->segment_no != from->segment_no || dir->mem_chunks)
					continue;
				if (dir->deleted == NULL)
					dir->deleted = palloc0(Max(bytes, 1));
				for (int64 b = 0; b < bytes; b++)
					dir->deleted[b] |= ms->deleting[i][b];
				dir->deleted_count = 0;
				for (int64 r = 0; r < dir->row_count; r++)
					dir->deleted_count += (dir->deleted[r / 8] >> (r % 8)) & 1;
				changed = true;
			}
		}
		/* rows written so far: segments not yet visible, buffered rows */
		if (ms->writer)
		{
			List	   *pending;

			/*
			 * Read from a subtransaction (a function's exception block):
			 * the segments recorded now would be recorded in it, and lost
			 * to the statement if it rolls back.  As for tables USING
			 * destor, refused.
			 */
			if (pm->nestlevel != GetCurrentTransactionNestLevel() &&
				segment_writer_unrecorded(ms->writer, flush))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot read destor table \"%s\" in a subtransaction while its statement writes it",
								RelationGetRelationName(rel)),
						 errdetail("The rows the statement wrote before the subtransaction began are not recorded yet: a rollback of the subtransaction would lose them."),
						 errhint("Read the table in another statement, or outside the exception block.")));
			if (flush)
				segment_writer_flush(ms->writer);
			pending = segment_writer_pending(ms->writer);

			foreach(lc2, pending)
			{
				SegmentDirectory *p = lfirst(lc2);
				ListCell   *lc3;
				bool		seen = false;

				foreach(lc3, segments)
					if (!p->mem_chunks && ((SegmentDirectory *) lfirst(lc3))->segment_no == p->segment_no)
						seen = true;
				if (!seen)
				{
					segments = lappend(segments, p);
					changed = true;
				}
			}
		}
		if (changed)
			segments = list_copy(segments); /* a new list: the caller sees the change */
	}
	return segments;
}

/*
 * segments_changed_since: whether a segment of "mine" is gone from "latest"
 * or has rows deleted there that it has not (both lists in segment order).
 */
static bool
segments_changed_since(List *mine, List *latest)
{
	ListCell   *lc;
	ListCell   *lc2 = list_head(latest);

	foreach(lc, mine)
	{
		SegmentDirectory *dir = lfirst(lc);
		SegmentDirectory *now = NULL;

		while (lc2 && ((SegmentDirectory *) lfirst(lc2))->segment_no < dir->segment_no)
			lc2 = lnext(latest, lc2);
		if (lc2)
			now = lfirst(lc2);
		if (now == NULL || now->segment_no != dir->segment_no ||
			now->deleted_count != dir->deleted_count)
			return true;
	}
	return false;
}

int
destorIsForeignRelUpdatable(Relation rel)
{
	return (1 << CMD_INSERT) | (1 << CMD_UPDATE) | (1 << CMD_DELETE);
}

void
destorAddForeignUpdateTargets(PlannerInfo *root, Index rtindex, RangeTblEntry *target_rte,
							  Relation target_relation)
{
	Var		   *var = makeVar(rtindex, SelfItemPointerAttributeNumber, TIDOID, -1, InvalidOid, 0);

	add_row_identity_var(root, var, rtindex, "ctid");

	/*
	 * DELETE ... RETURNING returns the old row: fetch it whole.  Typed
	 * RECORD, as the whole-row Var PostgreSQL itself adds for UPDATE and
	 * row triggers: one row identity serves every child of a partitioned
	 * or inherited target, whose row types differ ("conflicting uses of
	 * row-identity name" otherwise).
	 */
	if (root->parse->commandType == CMD_DELETE && root->parse->returningList != NIL)
		add_row_identity_var(root, makeVar(rtindex, InvalidAttrNumber, RECORDOID, -1, InvalidOid, 0),
							 rtindex, "wholerow");
}

/*
 * DELETE and UPDATE of one table run one at a time (inserts are not held
 * up): the lock is taken while planning, before the statement's snapshot,
 * so a statement that waited sees what the one before it did.
 */
List *
destorPlanForeignModify(PlannerInfo *root, ModifyTable *plan, Index resultRelation,
						int subplan_index)
{
	RangeTblEntry *rte = planner_rt_fetch(resultRelation, root);

	if (plan->operation == CMD_UPDATE || plan->operation == CMD_DELETE)
		LockRelationOid(rte->relid, ShareUpdateExclusiveLock);
	return NIL;
}

static SegmentWriter *
begin_insert(Relation rel, TableOptions *opts)
{
	return segment_writer_create(rel, opts);
}

/*
 * destorBeginForeignModify: a writer for INSERT and UPDATE; for UPDATE and
 * DELETE the snapshot's segment list (row identities index it) and the
 * junk columns.  The statement is registered as a pending modification.
 */
void
destorBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo, List *fdw_private,
						 int subplan_index, int eflags)
{
	CmdType		op = mtstate->operation;
	Relation	rel = rinfo->ri_RelationDesc;
	ModifyState *ms;

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	ms = palloc0(sizeof(ModifyState));
	ms->opts = table_get_options(RelationGetRelid(rel));
	ms->operation = op;
	if (op == CMD_INSERT || op == CMD_UPDATE)
		ms->writer = begin_insert(rel, ms->opts);
	if (op == CMD_UPDATE || op == CMD_DELETE)
	{
		EState	   *estate = mtstate->ps.state;
		Plan	   *subplan = outerPlanState(mtstate)->plan;
		ListCell   *lc;

		/*
		 * A cached plan did not lock while planning, and a REPEATABLE READ
		 * snapshot predates the lock: lock now, and if a DELETE, UPDATE or
		 * compaction committed since our snapshot changed a segment we
		 * read, fail as heap does (our deletions would miss the rows it
		 * wrote: a lost update).  The comparison is with the latest
		 * snapshot, not the transaction's (which in REPEATABLE READ is our
		 * own).  Segments added since (inserts) change nothing we delete.
		 */
		LockRelationOid(RelationGetRelid(rel), ShareUpdateExclusiveLock);
		ms->segments = catalog_table_segments(ms->opts->table_id, estate->es_snapshot);
		if (segments_changed_since(ms->segments,
								   catalog_table_segments(ms->opts->table_id, GetLatestSnapshot())))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to concurrent update of destor table \"%s\"",
							RelationGetRelationName(rel)),
					 errhint("Retry the statement.")));

		/*
		 * Called by a statement under way that modifies this table too: our
		 * scan read its changes as well, and row identities index that list.
		 */
		if (modify_in_progress(RelationGetRelid(rel)))
			ms->segments = add_pending_changes(rel, estate->es_snapshot, ms->segments, true);

		ms->nsegs = list_length(ms->segments);
		ms->segarr = palloc(sizeof(SegmentDirectory *) * Max(ms->nsegs, 1));
		ms->deleting = palloc0(sizeof(uint8 *) * Max(ms->nsegs, 1));
		foreach(lc, ms->segments)
			ms->segarr[foreach_current_index(lc)] = lfirst(lc);
		ms->ctid_attno = ExecFindJunkAttributeInTlist(subplan->targetlist, "ctid");
		if (!AttributeNumberIsValid(ms->ctid_attno))
			elog(ERROR, "could not find the row identity of \"%s\"", RelationGetRelationName(rel));
		ms->wholerow_attno = ExecFindJunkAttributeInTlist(subplan->targetlist, "wholerow");
		ms->later_seen = deletions_recorded;
	}
	rinfo->ri_FdwState = ms;
	pending_modify_register(RelationGetRelid(rel), mtstate->ps.state->es_output_cid, ms);
}

TupleTableSlot *
destorExecForeignInsert(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
						TupleTableSlot *planSlot)
{
	ModifyState *ms = rinfo->ri_FdwState;

	slot_getallattrs(slot);
	segment_writer_add(ms->writer, slot->tts_values, slot->tts_isnull);
	progress_add(0, 1);
	return slot;
}

/*
 * read_deleted_later: the rows of our segments that statements after ours
 * deleted while ours is under way (functions or triggers it called), from
 * the catalog as it is now.
 */
static void
read_deleted_later(ModifyState *ms)
{
	MemoryContext cxt = GetMemoryChunkContext(ms);
	List	   *now = catalog_table_segments(ms->opts->table_id, NULL);
	ListCell   *lc = list_head(now);

	if (ms->deleted_later == NULL)
		ms->deleted_later = MemoryContextAllocZero(cxt, sizeof(uint8 *) * Max(ms->nsegs, 1));
	for (int i = 0; i < ms->nsegs; i++)
	{
		SegmentDirectory *mine = ms->segarr[i];
		SegmentDirectory *latest;
		int64		bytes = (mine->row_count + 7) / 8;

		while (lc && ((SegmentDirectory *) lfirst(lc))->segment_no < mine->segment_no)
			lc = lnext(now, lc);
		if (lc == NULL)
			break;
		latest = lfirst(lc);
		if (latest->segment_no != mine->segment_no || latest->deleted == NULL)
			continue;
		for (int64 b = 0; b < bytes; b++)
		{
			uint8		later = latest->deleted[b];

			if (mine->deleted)
				later &= ~mine->deleted[b];
			if (ms->deleting[i])
				later &= ~ms->deleting[i][b];
			if (later == 0)
				continue;
			if (ms->deleted_later[i] == NULL)
				ms->deleted_later[i] = MemoryContextAllocZero(cxt, Max(bytes, 1));
			ms->deleted_later[i][b] |= later;
		}
	}
	ms->later_seen = deletions_recorded;
}

/*
 * Mark the row identified by planSlot's ctid; false if this statement
 * already deleted it (a join can produce a row twice).  A row that a later
 * command deleted meanwhile (a statement our own statement called) is an
 * error, as with heap: updating it again would keep both new versions.
 */
static bool
mark_deleted(ModifyState *ms, TupleTableSlot *planSlot)
{
	bool		isnull;
	Datum		d = ExecGetJunkAttribute(planSlot, ms->ctid_attno, &isnull);
	uint32		seg;
	int64		row;
	SegmentDirectory *dir;

	if (isnull)
		elog(ERROR, "row identity is null");
	table_tid_to_row((ItemPointer) DatumGetPointer(d), &seg, &row);
	if (seg >= (uint32) ms->nsegs || row >= ms->segarr[seg]->row_count)
		elog(ERROR, "row identity (%u, " INT64_FORMAT ") is out of range", seg, row);
	dir = ms->segarr[seg];
	if (dir->segment_no < 0)
		elog(ERROR, "row identity (%u, " INT64_FORMAT ") names a row not yet written", seg, row);
	if (ms->deleting[seg] && ((ms->deleting[seg][row / 8] >> (row % 8)) & 1))
		return false;
	if (ms->later_seen != deletions_recorded)
		read_deleted_later(ms);
	if (ms->deleted_later && ms->deleted_later[seg] &&
		((ms->deleted_later[seg][row / 8] >> (row % 8)) & 1))
		ereport(ERROR,
				(errcode(ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION),
				 ms->operation == CMD_DELETE ?
				 errmsg("tuple to be deleted was already modified by an operation triggered by the current command") :
				 errmsg("tuple to be updated was already modified by an operation triggered by the current command"),
				 errhint("Consider using an AFTER trigger instead of a BEFORE trigger to propagate changes to other rows.")));
	if (ms->deleting[seg] == NULL)
		ms->deleting[seg] = MemoryContextAllocZero(GetMemoryChunkContext(ms),
												   Max((dir->row_count + 7) / 8, 1));
	ms->deleting[seg][row / 8] |= (1 << (row % 8));
	return true;
}

TupleTableSlot *
destorExecForeignDelete(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
						TupleTableSlot *planSlot)
{
	ModifyState *ms = rinfo->ri_FdwState;

	if (!mark_deleted(ms, planSlot))
		return NULL;
	if (AttributeNumberIsValid(ms->wholerow_attno))
	{
		/* RETURNING: the old row */
		bool		isnull;
		Datum		d = ExecGetJunkAttribute(planSlot, ms->wholerow_attno, &isnull);

		ExecClearTuple(slot);
		if (!isnull)
		{
			HeapTupleHeader hdr = DatumGetHeapTupleHeader(d);
			HeapTupleData tup;

			tup.t_len = HeapTupleHeaderGetDatumLength(hdr);
			ItemPointerSetInvalid(&tup.t_self);
			tup.t_tableOid = RelationGetRelid(rinfo->ri_RelationDesc);
			tup.t_data = hdr;
			heap_deform_tuple(&tup, slot->tts_tupleDescriptor, slot->tts_values, slot->tts_isnull);
			ExecStoreVirtualTuple(slot);

			/*
			 * RETURNING may name system columns (xmin, xmax): give it a
			 * stored tuple with them invalid, as an INSERT's or UPDATE's
			 * RETURNING gets, rather than "cannot retrieve a system column"
			 * from a virtual one.
			 */
			if (TTS_IS_HEAPTUPLE(slot))
			{
				HeapTuple	copy = heap_form_tuple(slot->tts_tupleDescriptor, slot->tts_values,
												   slot->tts_isnull);

				HeapTupleHeaderSetXmin(copy->t_data, InvalidTransactionId);
				HeapTupleHeaderSetXmax(copy->t_data, InvalidTransactionId);
				HeapTupleHeaderSetCmin(copy->t_data, InvalidTransactionId);
				ExecStoreHeapTuple(copy, slot, true);
			}
		}
	}
	return slot;
}

TupleTableSlot *
destorExecForeignUpdate(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
						TupleTableSlot *planSlot)
{
	ModifyState *ms = rinfo->ri_FdwState;

	if (!mark_deleted(ms, planSlot))
		return NULL;
	slot_getallattrs(slot);
	segment_writer_add(ms->writer, slot->tts_values, slot->tts_isnull);
	return slot;
}

void
destorEndForeignModify(EState *estate, ResultRelInfo *rinfo)
{
	ModifyState *ms = rinfo->ri_FdwState;

	if (ms == NULL)
		return;
	pending_modify_forget(ms);
	for (int i = 0; i < ms->nsegs; i++)
		if (ms->deleting[i])
		{
			catalog_insert_deletions(ms->opts->table_id, ms->segarr[i]->segment_no,
									 ms->deleting[i], (ms->segarr[i]->row_count + 7) / 8, NULL, 0);
			if (pending_modifies != NIL)
				deletions_recorded++;
		}
	if (ms->writer)
		segment_writer_finish(ms->writer);
	rinfo->ri_FdwState = NULL;
}

void
destorBeginForeignInsert(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	ModifyState *ms = palloc0(sizeof(ModifyState));

	ms->opts = table_get_options(RelationGetRelid(rinfo->ri_RelationDesc));
	ms->writer = begin_insert(rinfo->ri_RelationDesc, ms->opts);
	rinfo->ri_FdwState = ms;
	pending_modify_register(RelationGetRelid(rinfo->ri_RelationDesc),
							mtstate->ps.state->es_output_cid, ms);
	/* COPY FROM builds a ModifyTableState without a plan; tuple routing has one */
	if (mtstate->ps.plan == NULL)
	{
		progress_start("copy", RelationGetRelid(rinfo->ri_RelationDesc), NULL);
		progress_set_phase("writing");
		ms->copy_progress = true;
	}
}

void
destorEndForeignInsert(EState *estate, ResultRelInfo *rinfo)
{
	ModifyState *ms = rinfo->ri_FdwState;
	bool		copy_progress = ms && ms->copy_progress;

	destorEndForeignModify(estate, rinfo);
	if (copy_progress)
		progress_end();
}

/* At load: the registry is emptied at the end of each (sub)transaction. */
void
table_modify_init(void)
{
	RegisterXactCallback(pending_modify_xact_callback, NULL);
	RegisterSubXactCallback(pending_modify_subxact_callback, NULL);
}

/* ---------------------------------------------------------------------------
 * TRUNCATE and DROP: objects go when the transaction commits
 * ------------------------------------------------------------------------- */
void
forget_table_data(const uint8 table_id[CODEC_OBJID_LEN])
{
	List	   *objects = catalog_delete_table_segments(table_id);
	ListCell   *lc;

	foreach(lc, objects)
	{
		uint8	   *id = lfirst(lc);
		ObjectMeta *meta = catalog_get_object(id, true);

		if (meta == NULL)
			continue;
		catalog_delete_object(id);
		object_delete_at_commit(meta);
	}
}

void
destorExecForeignTruncate(List *rels, DropBehavior behavior, bool restart_seqs)
{
	ListCell   *lc;

	foreach(lc, rels)
	{
		Relation	rel = lfirst(lc);
		TableOptions *opts = table_get_options(RelationGetRelid(rel));

		forget_table_data(opts->table_id);
	}
}

/* destor.forget_table(table_id uuid): called by the sql_drop event trigger. */
Datum
destor_forget_table(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *u = PG_GETARG_UUID_P(0);

	forget_table_data(u->data);
	PG_RETURN_VOID();
}
