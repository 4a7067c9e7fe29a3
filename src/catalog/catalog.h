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

#include "object.h"

extern void catalog_insert_object(ObjectMeta *meta);
extern ObjectMeta *catalog_get_object(const uint8 id[CODEC_OBJID_LEN], bool missing_ok);
extern void catalog_delete_object(const uint8 id[CODEC_OBJID_LEN]);
extern bool catalog_object_exists(const uint8 id[CODEC_OBJID_LEN]);

extern void catalog_insert_blob(const uint8 id[CODEC_OBJID_LEN], Oid owner);
extern bool catalog_get_blob(const uint8 id[CODEC_OBJID_LEN], Oid *owner);
extern void catalog_delete_blob(const uint8 id[CODEC_OBJID_LEN]);

#endif							/* DESTOR_CATALOG_H */
