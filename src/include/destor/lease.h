/*
 * lease.h — the writer lease of a pool (src/meta/meta_lease.c).
 *
 * A pool declared mode 'exclusive' has one writer: a small lease object on
 * each of its providers names the writing database (its instance id) and an
 * epoch, authenticated with a key derived from the master key.  Writes
 * check it when they start and again before their transaction commits;
 * destor.take_over_pool() moves it to this database with a higher epoch.
 * A pool declared mode 'read_only' is refused every write here.
 */
#ifndef DESTOR_LEASE_H
#define DESTOR_LEASE_H

#include "destor/object.h"

/* Seconds a backend trusts the lease it read last before reading it again. */
#define LEASE_CHECK_SECONDS		5
/* A lease held is rewritten (renewed) by a write when older than this. */
#define LEASE_RENEW_SECONDS		60

/* At the start of every object write to the pool: ERROR unless this
 * database may write to it now. */
extern void lease_check_write(Pool *pool);
/* After a key rotation: sign the leases this database holds under the new key. */
extern int	lease_resign_held(void);

/* Before recover_catalog adopts instance: ERROR while another database holds the lease. */
extern void lease_check_adopt(Pool *pool, const char *instance);
/* After it adopted: a lease held under old_instance now names new_instance. */
extern void lease_adopted(Pool *pool, const char *old_instance, const char *new_instance);

#endif							/* DESTOR_LEASE_H */
