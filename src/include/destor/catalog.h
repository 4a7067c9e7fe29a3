/*
 * catalog.h — destor's metadata in ordinary tables of schema destor.
 *
 * Objects, their shards and blobs are rows: WAL-logged, replicated, dumped,
 * and visible exactly when the writing transaction commits.  Access runs as
 * the bootstrap superuser (the tables are not granted to PUBLIC); callers
 * check privileges before they ask.
 */
#ifndef DESTOR_CATALOG_H
#define DESTOR_CATALOG_H

#include "executor/spi.h"
#include "utils/acl.h"
#include "utils/snapshot.h"

#include "destor/object.h"

/* Statements on the catalog: enter (switch user, connect SPI), exec, leave. */
typedef struct CatalogUser
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nest_level;
} CatalogUser;

extern void catalog_enter(CatalogUser *cu);
extern void catalog_leave(CatalogUser *cu);
extern void catalog_exec(const char *sql, int nargs, Oid *types, Datum *values,
						 const char *nulls, int expect);
/* SPI connected with search_path pinned to pg_catalog, pg_temp (no user
 * switch); catalog_spi_finish takes what catalog_spi_connect returned */
/* a palloc'd bytea holding len bytes of data (a statement's parameter) */
extern bytea *catalog_bytea(const void *data, size_t len);
extern int	catalog_spi_connect(void);
extern void catalog_spi_finish(int guc_nest_level);

/*
 * catalog_try — run fn(arg) in a subtransaction, so that a step of a batch
 * that fails (one policy, one provider, one maintenance step) is rolled
 * back alone: true when it completed; on an ERROR false, with the error in
 * *error (the caller's memory context).  A cancel or a shutdown goes on up.
 */
typedef void (*CatalogTryFn) (void *arg);
extern bool catalog_try(CatalogTryFn fn, void *arg, ErrorData **error);

extern void catalog_insert_object(ObjectMeta *meta);
extern ObjectMeta *catalog_get_object(const uint8 id[CODEC_OBJID_LEN], bool missing_ok);
extern ObjectMeta *catalog_get_object_at(const uint8 id[CODEC_OBJID_LEN], bool missing_ok,
										Snapshot snapshot);
extern void catalog_delete_object(const uint8 id[CODEC_OBJID_LEN]);
extern bool catalog_object_retired_after(const uint8 id[CODEC_OBJID_LEN], TimestampTz cutoff);
extern void catalog_forget_retired(TimestampTz cutoff);
extern List *catalog_list_objects(const char *pool);
extern List *catalog_collect_lost_tables(const char *pool, TimestampTz keep_after,
										 int64 *ntables);
extern void catalog_set_shard_state(const uint8 id[CODEC_OBJID_LEN], int shard, const char *provider,
									const char *state);
extern bool catalog_shard_placed(const uint8 id[CODEC_OBJID_LEN], int shard, const char *provider);
extern bool catalog_move_shard(const uint8 id[CODEC_OBJID_LEN], int shard, const char *from,
							   const char *to);
extern int	catalog_shards_on(const char *provider, uint8 **ids, int **shards);
extern bool catalog_lock_object(const uint8 id[CODEC_OBJID_LEN]);

extern void catalog_insert_blob(const uint8 id[CODEC_OBJID_LEN], Oid owner);
extern bool catalog_get_blob(const uint8 id[CODEC_OBJID_LEN], Oid *owner);
extern void catalog_delete_blob(const uint8 id[CODEC_OBJID_LEN]);
extern int64 catalog_count_blobs_of(Oid role);
extern List *catalog_blobs_of(Oid role);
extern int64 catalog_reassign_blobs(Oid from, Oid to);
/* blob privileges and content hashes (issue 15) */
extern void catalog_insert_blob_sha256(const uint8 id[CODEC_OBJID_LEN], Oid owner,
									   const uint8 *sha256);
/* a statement prepared once per backend, run under snapshot (read-only) when one is given */
extern void catalog_exec_saved_at(SPIPlanPtr *saved, const char *sql, int nargs, Oid *types,
								  Datum *values, int expect, Snapshot snapshot);
extern bool catalog_get_blob_acl(const uint8 id[CODEC_OBJID_LEN], Oid *owner, Acl **acl);
extern bool catalog_get_blob_acl_ext(const uint8 id[CODEC_OBJID_LEN], Oid *owner, Acl **acl,
									 bool lock);
extern void catalog_set_blob_owner_acl(const uint8 id[CODEC_OBJID_LEN], Oid owner, Acl *acl);
extern List *catalog_blobs_granted_to(Oid role);
extern bool catalog_get_blob_sha256(const uint8 id[CODEC_OBJID_LEN], uint8 sha256[32]);

#endif							/* DESTOR_CATALOG_H */
