/*
 * progress.h — what long-running destor commands are doing, for everyone.
 *
 * Like pg_stat_progress_copy: each backend publishes the command it runs
 * (tier_partition, blob_import, repair, compact, copy, ...), its phase and
 * counters in a shared-memory slot of its own; the view destor.progress
 * reads every slot.  Commands nest (tier_partition writes a table through
 * the FDW): the outermost one owns the slot, inner ones only add to its
 * counters.  A slot is cleared when its command ends, and at the end of the
 * (sub)transaction that started it, so an ERROR leaves nothing behind.
 */
#ifndef DESTOR_PROGRESS_H
#define DESTOR_PROGRESS_H

#include "postgres.h"

extern void progress_shmem_request(void);
extern void progress_shmem_startup(void);
extern void progress_init(void);

/* target: a relation (relid) or a description such as a blob id; either may be unset */
extern void progress_start(const char *command, Oid relid, const char *target);
extern void progress_set_phase(const char *phase);
extern void progress_set_totals(int64 bytes_total, int64 objects_total);
extern void progress_add(int64 bytes, int64 objects);
extern void progress_end(void);

#endif							/* DESTOR_PROGRESS_H */
