/*
 * blob.h — blobs: the SQL functions live in blob.c; this is what the module
 * entry wires up.
 */
#ifndef DESTOR_BLOB_H
#define DESTOR_BLOB_H

extern void blob_init(void);

#endif							/* DESTOR_BLOB_H */
