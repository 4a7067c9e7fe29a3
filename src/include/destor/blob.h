/*
 * blob.h — blobs: the SQL functions live in blob.c (whole blobs) and
 * blob_fd.c (descriptors); this is what the module entry wires up and what
 * the two files share.
 */
#ifndef DESTOR_BLOB_H
#define DESTOR_BLOB_H

#include "destor/object.h"

/* The value of a destor.blob: the id of the blob's object. */
typedef struct BlobHandle
{
	uint8		id[CODEC_OBJID_LEN];
} BlobHandle;

extern void blob_init(void);

/* blob_acl.c: privileges like large objects' (issue 15) */
#include "utils/acl.h"
#include "destor/codec.h"

extern bool blob_acl_permits(const uint8 id[CODEC_OBJID_LEN], Oid owner, const char *action);
extern const char *blob_acl_requirement(const char *action);
extern void blob_acl_change_owner(const uint8 id[CODEC_OBJID_LEN], Oid old_owner, Acl *acl,
								  Oid new_owner);
extern void blob_acl_forget_grantee(Oid role);
/* blob_roles.c: roles named by blobs, as DROP ROLE in any database sees them */
extern void blob_role_depend(Oid role);
extern int	blob_record_all_role_dependencies(void);
/* blob_restorable.c: the owner and acl columns' input during a restore's COPY */
extern void restorable_set_restoring(bool on);

/* blob.c: recording a finished writer's object as a new blob of the
 * current user */
extern ObjectMeta *blob_store(ObjectWriter *w);

/*
 * A blob's bytes (issue 15 item 5): its own object, a range of a pack
 * object, or, for a small blob still in this transaction's open pack, a
 * copy of them in memory.
 */
typedef struct BlobData
{
	uint8		id[CODEC_OBJID_LEN];
	ObjectMeta *meta;			/* its object or its pack; NULL when pending */
	uint64		base;			/* where the blob starts in meta's object */
	uint64		size;
	bool		packed;
	char	   *pending;		/* the bytes of a blob not uploaded yet */
} BlobData;

extern BlobData *blob_open_data(BlobHandle *b, const char *action);
extern ObjectReader *blob_data_reader(BlobData *d);
extern ObjectReader *blob_data_reader_whole(BlobData *d);
extern void blob_data_read(BlobData *d, ObjectReader *r, uint64 off, uint64 n, char *dst);
extern void blob_data_close(ObjectReader *r);
extern void blob_remove(BlobData *d);
extern void blob_check_expected_sha256(uint64 size, const uint8 *got, const uint8 *expected);

/* blob_pack.c: small blobs packed into shared objects */
extern int	blob_pack_threshold;
extern void blob_pack_define_gucs(void);
extern void blob_pack_init(void);
extern bool blob_pack_catalog_ready(void);
extern bool blob_catalog_get(const uint8 id[CODEC_OBJID_LEN], Oid *owner, bool *packed,
							 uint8 pack[CODEC_OBJID_LEN], uint64 *off, uint64 *len);
extern bool blob_pack_put(Pool *pool, const char *data, uint64 len, const uint8 *expected,
						  uint8 id[CODEC_OBJID_LEN]);
extern bool blob_pack_pending(const uint8 id[CODEC_OBJID_LEN], Oid *owner, char **bytes,
							  uint64 *len, uint8 *sha);
extern void blob_pack_settle(const uint8 id[CODEC_OBJID_LEN]);
extern void blob_pack_flush_all(void);
/* blob_lifecycle.c: blob_manage's deletions, at pre-commit */
extern void blob_managed_finish(void);
extern void blob_pack_retire(const uint8 id[CODEC_OBJID_LEN]);
extern int64 blob_compact_pool_packs(const char *poolname, double min_dead);

/* blob_fd.c: blob descriptors */
extern int	blob_max_active_descriptors;
extern void blob_fd_define_gucs(void);

#endif							/* DESTOR_BLOB_H */
