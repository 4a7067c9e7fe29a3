/*
 * export.h — destor-export: reading a pool with no PostgreSQL server.
 *
 * The program (src/export/) lists, verifies and exports what a destor pool
 * holds, from the master key file and the providers alone: it reads the
 * metadata log (docs/METADATA_FORMAT.md) to learn the pool's objects, blobs
 * and tables, and reads objects with the codec layer (src/codec/: AES-GCM,
 * Reed–Solomon, zstd, chunk tags).  It links no PostgreSQL code and never
 * writes to a provider.
 *
 * Memory: malloc'd, and freed only where it matters (object data); the
 * program is short-lived.  Errors: fatal ones print a message and exit
 * (exit status 2 for usage and configuration, 1 for data that cannot be
 * read).
 */
#ifndef DESTOR_EXPORT_H
#define DESTOR_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "destor/codec.h"

#define EXIT_DATA	1			/* something could not be read (lost, corrupt) */
#define EXIT_USAGE	2			/* usage, configuration, wrong key, unknown name */

/* util.c */
extern const char *progname;
extern void fatal(int status, const char *fmt,...) __attribute__((format(printf, 2, 3), noreturn));
extern void warn(const char *fmt,...) __attribute__((format(printf, 1, 2)));
extern void *xmalloc(size_t n);
extern void *xcalloc(size_t n, size_t size);
extern void *xrealloc(void *p, size_t n);
extern char *xstrdup(const char *s);
extern char *xstrndup(const char *s, size_t n);
extern char *xprintf(const char *fmt,...) __attribute__((format(printf, 1, 2)));
extern void id_hex(const uint8_t id[CODEC_OBJID_LEN], char out[33]);
extern void id_text(const uint8_t id[CODEC_OBJID_LEN], char out[37]);
extern bool id_parse(const char *text, uint8_t id[CODEC_OBJID_LEN]);
extern uint64_t get_le(const uint8_t *p, int n);

/* A growable byte buffer. */
typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

extern void buf_put(Buf *b, const void *data, size_t len);
extern void buf_putc(Buf *b, char c);
extern void buf_puts(Buf *b, const char *s);
extern void buf_printf(Buf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));

/* store.c: the providers, read-only */
typedef struct Store
{
	char	   *spec;			/* as given: file:/path or s3:URL */
	bool		is_s3;
	char	   *path;			/* file */
	char	   *scheme;			/* s3: http or https */
	char	   *hostport;
	char	   *bucket;
	char	   *prefix;			/* "" or ends in '/' */
	bool		listed;			/* the listing worked */
	char	  **keys;			/* sorted; each followed by its size (store_has) */
	size_t		nkeys;
} Store;

typedef struct S3Credentials
{
	const char *access_key;
	const char *secret_key;
	const char *session_token;
	const char *region;
} S3Credentials;

extern void store_init(Store *s, const char *spec);
extern void store_set_credentials(const S3Credentials *c);
/* list every key of the store (kept sorted in s->keys); false (warned) on failure */
extern bool store_list(Store *s);
/* is key in the listing?  *size (may be NULL) gets its size (UINT64_MAX: unknown) */
extern bool store_has(const Store *s, const char *key, uint64_t *size);
extern bool store_read(Store *s, const char *key, uint64_t offset, size_t len, uint8_t *out,
					   char **err);
/* the whole object; NULL when missing or unreadable (*err says why) */
extern uint8_t *store_get(Store *s, const char *key, size_t *len, char **err);

/* pool.c: the metadata log, replayed into memory */
typedef struct XObject
{
	uint8_t		id[CODEC_OBJID_LEN];
	uint64_t	size;
	uint64_t	stream_size;
	uint32_t	block_size;
	uint32_t	chunk_size;
	int			k;
	int			m;
	bool		compressed;
	uint64_t   *block_ends;
	size_t		nblock_ends;
	int			key_version;
	uint8_t		key_id[CODEC_KEY_FINGERPRINT_LEN];
	uint8_t		wrapped[CODEC_WRAPPED_KEY_LEN];
	bool		live;
} XObject;

typedef struct XBlob
{
	uint8_t		id[CODEC_OBJID_LEN];
	char	   *owner;
	uint64_t	created_at;
	bool		live;
} XBlob;

typedef struct XColumn
{
	char	   *name;
	int			attnum;
	char	   *type;			/* format_type text; NULL when dropped */
	bool		dropped;
} XColumn;

typedef struct XSegment
{
	union
	{
		uint8_t		key[CODEC_OBJID_LEN + 8];	/* both, for the index */
		struct
		{
			uint8_t		table_id[CODEC_OBJID_LEN];
			uint64_t	segment_no;
		};
	};
	uint8_t		object_id[CODEC_OBJID_LEN];
	uint64_t	rows;
	uint8_t    *directory;
	size_t		directory_len;
	uint8_t    *deleted;		/* OR of the deletion bitmaps, or NULL */
	size_t		deleted_len;
	bool		live;
} XSegment;

typedef struct XDeletion
{
	uint8_t		table_id[CODEC_OBJID_LEN];
	uint64_t	segment_no;
	uint8_t    *bitmap;
	size_t		len;
	bool		live;
} XDeletion;

typedef struct XTable
{
	uint8_t		id[CODEC_OBJID_LEN];
	char	   *schema;
	char	   *name;
	XColumn    *cols;
	int			ncols;
	bool		live;
} XTable;

/* A hash index of an array's entries by a key inside them (pool.c). */
typedef struct Index
{
	size_t	   *slot;			/* entry position + 1; 0: empty */
	size_t		cap;			/* a power of two */
	size_t		n;
} Index;

typedef struct XPool
{
	const char *name;
	Store	   *stores;
	int			nstores;
	uint8_t		master[CODEC_KEY_LEN];
	uint8_t		master_id[CODEC_KEY_FINGERPRINT_LEN];

	XObject    *objects;
	size_t		nobjects;
	XBlob	   *blobs;
	size_t		nblobs;
	XTable	   *tables;
	size_t		ntables;
	XSegment   *segments;
	size_t		nsegments;
	XDeletion  *deletions;
	size_t		ndeletions;
	Index		objects_ix;		/* by id (live or not: a key is never entered twice) */
	Index		blobs_ix;
	Index		tables_ix;
	Index		segments_ix;	/* by table id and segment number */

	/* what reading the log found */
	int			logs_read;		/* decoded (of any pool) */
	int			logs_degraded;	/* of them, with shards missing or bad */
	int			logs_replayed;
	int			logs_uncommitted;
	int			logs_unreadable;
	int			logs_other_pools;
} XPool;

extern void pool_load(XPool *pool, const char *instance);
extern XObject *pool_object(XPool *pool, const uint8_t id[CODEC_OBJID_LEN]);
extern XBlob *pool_blob(XPool *pool, const uint8_t id[CODEC_OBJID_LEN]);
extern XTable *pool_table(XPool *pool, const char *qualified);
extern XTable *pool_table_id(XPool *pool, const uint8_t id[CODEC_OBJID_LEN]);

/* object.c: reading and checking objects */
typedef enum ShardState
{
	XSHARD_OK,
	XSHARD_MISSING,
	XSHARD_CORRUPT
} ShardState;

typedef struct ObjectCheck
{
	int			nshards;
	ShardState	state[CODEC_RS_MAX_SHARDS];
	char	   *detail[CODEC_RS_MAX_SHARDS];
	int			bad_chunks;		/* chunks failing their tag */
	bool		readable;		/* every stripe had k good chunks and decrypted */
	char	   *error;			/* why not readable */
} ObjectCheck;

/*
 * Read an object, handing its plaintext to sink (may be NULL: only check)
 * as it is opened, a window of stripes at a time (memory does not grow with
 * the object), each stripe from any k chunks that pass their tags.  False
 * when it cannot be read whole (check->error says why; what went to the
 * sink before is then not the object); check says what each shard was
 * found to be.
 */
typedef void (*ObjectSink) (void *arg, const uint8_t *data, size_t len);

extern bool object_stream(XPool *pool, const XObject *o, ObjectCheck *check, ObjectSink sink,
						  void *arg);
/* the same into memory (malloc'd, *len bytes); NULL when it cannot be read */
extern uint8_t *object_read(XPool *pool, const XObject *o, size_t *len, ObjectCheck *check);

/* values.c: column chunks as the text of COPY ... TO CSV */
extern const char *type_unsupported(uint32_t typid, int kind);
extern void csv_field(Buf *out, const char *s, size_t len, bool single_column);
/* append the text of one stored value, advancing *p; false on truncation */
extern bool value_text(Buf *out, uint32_t typid, int kind, const uint8_t **p, const uint8_t *end);

#endif							/* DESTOR_EXPORT_H */
