/*
 * meta.h — self-describing pools: the metadata log on the providers.
 *
 * Every transaction that changes destor's catalog rows of a pool (objects,
 * shards, blobs, table segments and deletions, table definitions) writes
 * one log object for that pool at pre-commit: a batch of records, encrypted
 * under a fresh data key wrapped by the master key, erasure-coded with the
 * pool's geometry, each shard stored with a header that makes it decodable
 * with nothing but the master key (docs/METADATA_FORMAT.md).  After commit
 * a small authenticated commit marker is put next to it; recovery
 * (destor.recover_catalog) replays, in sequence order, the log objects
 * whose commit is proven, and IMPORT FOREIGN SCHEMA recreates the tables.
 *
 * Layering: meta sits above the catalog and object layers; it reads the
 * table layer's rows only as catalog rows (no table.h needed).
 */
#ifndef DESTOR_META_H
#define DESTOR_META_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "destor/object.h"

/* Key prefix of the log on every provider: meta/<instance uuid>/... */
#define META_KEY_PREFIX			"meta/"
#define META_SHARD_MAGIC		"DESTORML"
#define META_MARKER_MAGIC		"DESTORMC"
#define META_FORMAT_VERSION		1
#define META_HEADER_LEN			144
#define META_MARKER_LEN			(8 + 2 + 6 + CODEC_OBJID_LEN + 8 + CODEC_CHUNK_TAG_LEN)
#define META_BATCH_MAGIC		"DMB1"
#define META_MAX_CONFIRMS		16

/* Record kinds of a batch (docs/METADATA_FORMAT.md). */
typedef enum MetaRecordKind
{
	META_REC_OBJECT = 1,
	META_REC_OBJECT_DELETE = 2,
	META_REC_SHARD = 3,
	META_REC_BLOB = 4,
	META_REC_BLOB_DELETE = 5,
	META_REC_SEGMENT = 6,
	META_REC_SEGMENT_DELETE = 7,
	META_REC_DELETION = 8,
	META_REC_DELETION_DELETE = 9,
	META_REC_TABLE_DEF = 10,
	META_REC_TABLE_DROP = 11,
	META_REC_KEY_REWRAP = 12,	/* reserved for master key rotation */
	META_REC_BLOB_PACKED = 13	/* a blob inside a pack object (issue 15 item 5) */
} MetaRecordKind;

/* meta_log.c: called at pre-commit before the log is written */
extern void (*meta_pre_precommit_hook) (void);
extern void meta_log_prepare(void);

/* meta_format.c: little-endian fields of records */
extern void meta_put_u8(StringInfo s, uint8 v);
extern void meta_put_u32(StringInfo s, uint32 v);
extern void meta_put_u64(StringInfo s, uint64 v);
extern void meta_put_bytes(StringInfo s, const void *data, uint32 len);
extern void meta_put_null(StringInfo s);
extern void meta_put_str(StringInfo s, const char *str);

typedef struct MetaReader
{
	const uint8 *p;
	const uint8 *end;
	bool		bad;			/* read past the end or a malformed field */
} MetaReader;

extern uint8 meta_get_u8(MetaReader *r);
extern uint32 meta_get_u32(MetaReader *r);
extern uint64 meta_get_u64(MetaReader *r);
extern const uint8 *meta_get_fixed(MetaReader *r, uint32 len);
/* a length-prefixed field: NULL (and *len 0) for a null one */
extern const uint8 *meta_get_bytes(MetaReader *r, uint32 *len);
extern char *meta_get_str(MetaReader *r);

/* A log object, encoded: k + m shard files of shard_len bytes each. */
typedef struct MetaShards
{
	int			k;
	int			m;
	size_t		shard_len;
	uint8	  **shards;
} MetaShards;

extern MetaShards *meta_encode_log(const char *payload, size_t len, uint64 seq,
								   const uint8 log_id[CODEC_OBJID_LEN], int k, int m);

/* What decoding a log object found. */
typedef enum MetaDecodeResult
{
	META_DECODED,
	META_WRONG_KEY,				/* written under another master key */
	META_TOO_FEW_SHARDS,		/* fewer than k good shards */
	META_MALFORMED
} MetaDecodeResult;

/* shards[i]: the file of shard i as fetched, or NULL; lens[i] its length. */
extern MetaDecodeResult meta_decode_log(uint8 **shards, const size_t *lens, int nslots,
										const uint8 log_id[CODEC_OBJID_LEN], uint64 seq,
										char **payload, size_t *payload_len,
										uint8 found_key_id[CODEC_KEY_FINGERPRINT_LEN]);
extern void meta_build_marker(const uint8 log_id[CODEC_OBJID_LEN], uint64 seq, uint8 *out);
extern bool meta_check_marker(const uint8 log_id[CODEC_OBJID_LEN], uint64 seq,
							  const uint8 *data, size_t len);
extern char *meta_shard_key(const char *instance, uint64 seq, const uint8 log_id[CODEC_OBJID_LEN],
							int shard);
extern char *meta_marker_key(const char *instance, uint64 seq, const uint8 log_id[CODEC_OBJID_LEN]);
extern bool meta_parse_key(const char *key, char *instance, uint64 *seq,
						   uint8 log_id[CODEC_OBJID_LEN], int *shard);

/* meta_log.c */
extern char *meta_instance(void);
extern void meta_capture_suspend(bool suspend);

#endif							/* DESTOR_META_H */
