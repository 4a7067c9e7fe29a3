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

/* blob.c: the blob's object after the access check (action: "read",
 * "delete"), and recording a finished writer's object as a new blob of
 * the current user */
extern ObjectMeta *blob_open_meta(BlobHandle *b, const char *action);
extern ObjectMeta *blob_store(ObjectWriter *w);

#endif							/* DESTOR_BLOB_H */
