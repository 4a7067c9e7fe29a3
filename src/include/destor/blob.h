/*
 * blob.h — blobs: the SQL functions live in blob.c; this is what the module
 * entry wires up.
 */
#ifndef DESTOR_BLOB_H
#define DESTOR_BLOB_H

extern void blob_init(void);

/* blob_acl.c: privileges like large objects' (issue 15) */
#include "utils/acl.h"
#include "destor/codec.h"

extern bool blob_acl_permits(const uint8 id[CODEC_OBJID_LEN], Oid owner, const char *action);
extern const char *blob_acl_requirement(const char *action);
extern void blob_acl_change_owner(const uint8 id[CODEC_OBJID_LEN], Oid old_owner, Acl *acl,
								  Oid new_owner);
extern void blob_acl_forget_grantee(Oid role);

#endif							/* DESTOR_BLOB_H */
