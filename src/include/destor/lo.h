/*
 * lo.h — large objects tiered offsite under their own OIDs (src/lo/).
 *
 * lo_tier.c moves a large object's bytes into an object of a pool and its
 * pages out of pg_largeobject (the large object itself — OID, owner, ACL —
 * stays), and recalls them; lo_hooks.c makes SQL calls of the server's
 * large-object functions recall first, and forgets the shards of a tiered
 * large object that is unlinked.
 */
#ifndef DESTOR_LO_H
#define DESTOR_LO_H

#include "postgres.h"

/* lo_tier.c */
extern int64 lo_tier_one(Oid loid, const char *pool);
extern int64 lo_recall_one(Oid loid);
extern Oid	lo_destor_extension(void);
extern bool lo_tier_catalog_ready(void);
typedef enum LoTierState
{
	LO_LOCAL,					/* never tiered (no row) */
	LO_OFFSITE,					/* tiered: no pages */
	LO_RECALLED					/* tiered, then recalled: pages and object */
} LoTierState;
extern LoTierState lo_tier_state(Oid loid);
extern void lo_tier_forget(Oid loid);
extern void lo_tier_guard_drop(void);

/* lo_hooks.c */
extern void lo_hooks_init(void);

#endif							/* DESTOR_LO_H */
