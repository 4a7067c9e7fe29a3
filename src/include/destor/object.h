/*
 * object.h — immutable, encrypted, erasure-coded objects.
 *
 * An object is a byte string with a random 128-bit id and its own data key.
 * Plaintext is cut into blocks (optionally zstd-compressed), each sealed
 * with AES-256-GCM; the ciphertext stream is cut into stripes of k chunks
 * and Reed–Solomon-encoded into k data + m parity chunks.  A chunk is as
 * long as one sealed full block, so a block that was not compressed lies in
 * exactly one chunk of one shard and is opened where it was fetched.  Shard i is chunk
 * i of every stripe, stored as one provider object, followed by a trailer of
 * per-chunk CRC-64s (to identify a corrupt shard) and a small footer.
 *
 * Healthy reads fetch only the needed ranges of the data shards and decode
 * nothing; degraded reads fetch the same stripes from any k good shards.
 *
 * This layer knows providers, not tables or blobs; it does not touch the
 * catalog (callers persist ObjectMeta).  It does own the transactional
 * fate of shards: objects written by a transaction that aborts are deleted,
 * and deletions requested by a transaction happen only after it commits.
 */
#ifndef DESTOR_OBJECT_H
#define DESTOR_OBJECT_H

#include "postgres.h"

#include "nodes/parsenodes.h"

#include "destor/codec.h"
#include "destor/provider.h"

#define OBJECT_BLOCK_SIZE		(64 * 1024)
#define OBJECT_PART_SIZE		(8 * 1024 * 1024)	/* per-shard upload unit */
#define OBJECT_FOOTER_SIZE		64
#define OBJECT_SHA256_LEN		32
/*
 * Object formats.  The format is the key_version of the object's catalog
 * row, which is bound into the wrapped data key's associated data: it
 * cannot be changed without the master key.
 *   1: the shard trailer holds a CRC-64 per chunk (footer magic DESTOR01);
 *      finds bit rot, but a provider can recompute it.
 *   2: the shard trailer holds a 16-byte HMAC-SHA256 tag per chunk under a
 *      key derived from the object's data key (footer magic DESTOR02): no
 *      provider can forge, move or replay a chunk (see codec/mac.c).
 * New objects are written in OBJECT_KEY_VERSION; both are read.
 */
#define OBJECT_FORMAT_CRC		1
#define OBJECT_FORMAT_MAC		2
#define OBJECT_KEY_VERSION		OBJECT_FORMAT_MAC

/* A pool: a foreign server of the destor wrapper. */
/* How a pool orders its eligible providers for a new object (option "placement"). */
typedef enum PlacementMode
{
	PLACEMENT_SPREAD,			/* rotate by object id: even shares */
	PLACEMENT_CHEAPEST,			/* lowest cost_per_gb_month first */
	PLACEMENT_FASTEST			/* lowest recent read latency first */
} PlacementMode;

/* Who a pool is to this database (option "mode"; docs/ARCHITECTURE.md, "Writers"). */
typedef enum PoolMode
{
	POOL_MODE_READ_WRITE,		/* default: writes, no lease (several namespaces may share it) */
	POOL_MODE_EXCLUSIVE,		/* the one writer, fenced by a lease on the providers */
	POOL_MODE_READ_ONLY			/* a reader: never writes, never takes the lease */
} PoolMode;

typedef struct Pool
{
	Oid			serverid;
	char	   *name;
	int			data_shards;	/* k */
	int			parity_shards;	/* m */
	int			write_quorum;
	int			nproviders;
	char	  **provider_names;

	/* placement policy (placement.c) */
	int			nallowed_geo;	/* 0: any geo */
	char	  **allowed_geo;
	int			max_shards_per_geo; /* 0: no limit */
	int			max_shards_per_operator;	/* 0: no limit */
	PlacementMode placement;
	PoolMode	mode;
} Pool;

extern Pool *pool_lookup(const char *name, bool check_usage);
/* ERROR naming what was refused when the pool is declared mode 'read_only' */
extern void pool_check_writable(Pool *pool, const char *action);
/* is the pool of that name (if it exists) declared mode 'read_only'? */
extern bool pool_name_read_only(const char *name);

/* placement.c: which providers may hold an object's shards */
extern void placement_choose(const uint8 *id, Pool *pool, char **out);
extern char *placement_violation(Pool *pool, char **providers, int n);
extern int	placement_excess(Pool *pool, char **providers, int n, bool count_unlisted);
extern void placement_check_feasible(Pool *pool);
extern bool placement_target(Pool *pool, const uint8 *id, char **current, int n, char **out);
extern bool placement_eligible(Pool *pool, const char *provider);
extern bool placement_cheaper(Pool *pool, const uint8 *id, char **current, int n, char **out);
extern void pool_validate_options(List *options, Oid catalog);
extern int	option_parse_int(DefElem *def, int min, int max);
/* Is this foreign server a destor pool (a server of the destor wrapper)? */
extern bool pool_is_destor_server(Oid serverid);

typedef struct ObjectShard
{
	char	   *provider;		/* server name */
	bool		ok;				/* false: missing (never written or lost) */
	uint64		size;			/* bytes of the provider object */
} ObjectShard;

/* Everything needed to read an object back; persisted by the catalog. */
typedef struct ObjectMeta
{
	uint8		id[CODEC_OBJID_LEN];
	char	   *pool;
	uint64		size;			/* plaintext bytes */
	uint64		stream_size;	/* ciphertext bytes */
	int			block_size;
	int			chunk_size;
	int			data_shards;
	int			parity_shards;
	bool		compressed;
	uint64	   *block_ends;		/* NULL when every block has the same size */
	int			nblocks;
	int			key_version;
	uint8		key_id[CODEC_KEY_FINGERPRINT_LEN];
	uint8		wrapped_key[CODEC_WRAPPED_KEY_LEN];
	ObjectShard *shards;		/* data_shards + parity_shards entries */
	/* SHA-256 of the plaintext, computed by the writer as data arrives (not
	 * persisted with the object: blobs keep it in destor.blobs.sha256) */
	bool		has_sha256;
	uint8		sha256[OBJECT_SHA256_LEN];
} ObjectMeta;

extern ObjectMeta *object_meta_copy(const ObjectMeta *meta);

/* Counters of what reads did, for EXPLAIN and tests. */
typedef struct ObjectReadStats
{
	uint64		requests;
	uint64		bytes_fetched;
	uint64		degraded_reads;	/* windows read by reconstruction */
	uint64		hedged_reads;	/* batches asked of every shard at once because
								 * their providers' read times were not known */
	uint64		corrupt_chunks; /* chunks found corrupt by checksum */
} ObjectReadStats;

extern ObjectReadStats object_read_stats;	/* backend-wide, cumulative */

/* keys.c */
extern void keys_define_gucs(void);
extern void keys_load_master(uint8 key[CODEC_KEY_LEN], uint8 key_id[CODEC_KEY_FINGERPRINT_LEN]);
/* rotation (key_rotation.c): the previous master key only unwraps; a
 * reader picks the key by the fingerprint its object's row records */
extern bool keys_previous_configured(void);
extern void keys_load_previous(uint8 key[CODEC_KEY_LEN], uint8 key_id[CODEC_KEY_FINGERPRINT_LEN]);
extern bool keys_load_by_id(const uint8 key_id[CODEC_KEY_FINGERPRINT_LEN], uint8 key[CODEC_KEY_LEN]);
extern void keys_read_file(const char *path, const char *what, uint8 key[CODEC_KEY_LEN],
						   uint8 key_id[CODEC_KEY_FINGERPRINT_LEN]);

/* key_rotation.c: re-wrapping data keys under the new master key */
typedef struct KeyRotation KeyRotation;

extern KeyRotation *key_rotation_begin(const char *new_key_file);
extern const uint8 *key_rotation_new_key_id(const KeyRotation *kr);
extern void key_rotation_rewrap(const KeyRotation *kr, const uint8 id[CODEC_OBJID_LEN],
								int key_version, const uint8 key_id[CODEC_KEY_FINGERPRINT_LEN],
								const uint8 wrapped[CODEC_WRAPPED_KEY_LEN],
								uint8 out[CODEC_WRAPPED_KEY_LEN]);

/* object_write.c */
typedef struct ObjectWriter ObjectWriter;

extern void object_define_gucs(void);
/* destor.spread_reads (object_read_balance.c) */
extern bool destor_spread_reads;
extern ObjectWriter *object_writer_create(Pool *pool, bool compress);
extern void object_writer_write(ObjectWriter *w, const char *data, size_t len);
extern void object_writer_expect(ObjectWriter *w, uint64 size);
extern void object_writer_skip_sha256(ObjectWriter *w);
extern void object_writer_stop(ObjectWriter *w);
extern ObjectMeta *object_writer_finish(ObjectWriter *w);
extern size_t object_writer_finish_start(ObjectWriter *w);
extern ObjectMeta *object_writer_finish_end(ObjectWriter *w);
extern bool object_writer_sends_ahead(ObjectWriter *w);

/* object_read.c */
typedef struct ObjectReader ObjectReader;

extern ObjectReader *object_reader_open(ObjectMeta *meta);
extern void object_reader_read(ObjectReader *r, uint64 offset, uint64 len, char *dst);
/*
 * The caller will read on, in order, up to end: even the first read fetches
 * ahead.  Reads of OBJECT_READ_WINDOW_BYTES at offsets that are multiples of
 * it (objects of 64 KiB blocks: one reader window each) get every next
 * window read ahead; smaller ones only the windows inside them.
 */
#define OBJECT_READ_WINDOW_BYTES	(16 * 1024 * 1024)
extern void object_reader_read_on(ObjectReader *r, uint64 end);
extern void object_reader_poll(ObjectReader *r);
extern void object_reader_read_multi(ObjectReader *r, int n, const uint64 *offsets,
									const uint64 *lens, char **dsts);
/* ranges a caller will ask for in a later call (object_reader_read_multi_ahead) */
typedef struct ObjectReadRanges
{
	int			n;
	const uint64 *offsets;
	const uint64 *lens;
} ObjectReadRanges;

#define OBJECT_READ_AHEAD_MAX	1	/* calls read ahead at most (2 measured no faster) */
extern void object_reader_read_multi_ahead(ObjectReader *r, int n, const uint64 *offsets,
										  const uint64 *lens, char **dsts, int nahead,
										  const ObjectReadRanges *ahead);
extern void object_reader_read_multi_begin(ObjectReader *r, int n, const uint64 *offsets,
										   const uint64 *lens, char **dsts, int nahead,
										   const ObjectReadRanges *ahead);
extern void object_reader_read_multi_need(ObjectReader *r, uint64 offset, uint64 len);
extern void object_reader_read_multi_end(ObjectReader *r);
extern void object_reader_read_multi_discard(ObjectReader *r);
extern void object_reader_close(ObjectReader *r);

/* object_repair.c: what a check found in each shard, and what was done */
typedef enum ShardFound
{
	SHARD_FOUND_OK,
	SHARD_FOUND_MISSING,		/* not on its provider */
	SHARD_FOUND_CORRUPT,		/* short, a foreign footer, or a chunk failing its CRC */
	SHARD_FOUND_UNREACHABLE		/* its provider could not be asked */
} ShardFound;

typedef struct ShardCheck
{
	ShardFound	found;
	bool		rebuilt;		/* written again, whole and good */
	char	   *detail;			/* why it is not OK (no secrets) */
} ShardCheck;

/*
 * Check every shard of an object (trailers; with verify, every chunk too)
 * and, with repair, rebuild the missing and corrupt ones on their
 * providers.  One ShardCheck per shard; *unreadable when fewer than k good
 * shards are left (then nothing can be rebuilt).
 */
extern ShardCheck *object_check_and_repair(ObjectMeta *meta, bool verify, bool repair,
										   const bool *keep_out, bool *unreadable);
extern char *object_move_shard(ObjectMeta *meta, int shard, Provider *to);

/* object_layout.c: shared arithmetic of the format */
extern char *object_shard_key(const uint8 id[CODEC_OBJID_LEN], int shard);
extern bool object_parse_shard_key(const char *key, uint8 id[CODEC_OBJID_LEN], int *shard);
extern char *object_id_text(const uint8 id[CODEC_OBJID_LEN]);
extern char *object_id_hex(const uint8 id[CODEC_OBJID_LEN]);
/* ids as SQL uuid values: a palloc'd uuid Datum, a uuid Datum's id, and an
 * id from its text form (ERROR as uuid_in for a malformed one) */
extern Datum object_id_datum(const uint8 id[CODEC_OBJID_LEN]);
extern void object_id_from_datum(Datum d, uint8 id[CODEC_OBJID_LEN]);
extern void object_id_parse(const char *text, uint8 id[CODEC_OBJID_LEN]);
extern const codec_rs *object_rs(int k, int m);
extern char *object_name_list(char **names, int n);

/* Where things are in the shards of an object. */
typedef struct ObjectGeometry
{
	uint64		stripe_size;	/* k * chunk_size */
	uint64		nstripes;
	uint64		last_chunk;		/* chunk length of the last stripe */
	uint64		shard_data_len; /* chunk bytes of each shard, before its trailer */
	uint64		trailer_len;	/* chunk tags and footer */
	int			tag_len;		/* bytes of one chunk's tag in the trailer */
} ObjectGeometry;

extern void object_geometry(const ObjectMeta *meta, ObjectGeometry *g);
extern void object_build_trailer(const ObjectMeta *meta, const ObjectGeometry *g, int shard,
								 const uint8 *tags, uint8 *out);
extern bool object_parse_trailer(const ObjectMeta *meta, const ObjectGeometry *g, int shard,
								 const uint8 *trailer, uint8 *tags);

/*
 * Checking chunks against the tags of their shard's trailer: CRC-64 for
 * format 1, a keyed tag for format 2 (then the object's data key is
 * unwrapped with the master key; freed with the memory context).
 */
typedef struct ObjectChunkAuth ObjectChunkAuth;

extern void object_unwrap_key(const ObjectMeta *meta, uint8 dek[CODEC_KEY_LEN]);
extern ObjectChunkAuth *object_chunk_auth_create(const ObjectMeta *meta);
extern ObjectChunkAuth *object_chunk_auth_from_key(const ObjectMeta *meta,
												   const uint8 dek[CODEC_KEY_LEN]);
extern void object_chunk_tag(ObjectChunkAuth *a, int shard, uint64 stripe, const uint8 *chunk,
							 size_t len, uint8 *tag);
extern bool object_chunk_verify(ObjectChunkAuth *a, int shard, uint64 stripe, const uint8 *chunk,
								size_t len, const uint8 *tag);

#define OBJECT_KEY_PREFIX "ds/"

/* object_xact.c: transactional fate of shards */
extern void object_xact_init(void);
extern void object_track_upload(ProviderUpload *u);
extern void object_untrack_upload(ProviderUpload *u);
extern void object_track_written(ObjectMeta *meta);
extern void object_track_retag(const uint8 id[CODEC_OBJID_LEN]);
extern void object_delete_at_commit(ObjectMeta *meta);
extern void object_track_written_shard(const uint8 id[CODEC_OBJID_LEN], int shard, Provider *p);
extern void object_delete_shard_at_commit(const uint8 id[CODEC_OBJID_LEN], int shard, Provider *p);

/*
 * Writers (object_xact.c): the ids of new objects end with this database's
 * namespace (provider_instance_namespace), and so do their shard keys'
 * names.  Objects of another writer (a restored copy reading the
 * original's objects) are borrowed: their shards are never deleted here,
 * only references to them.  object_key_is_ours tells a provider key of
 * this database's from any other, for listings.
 */
extern void object_id_claim(uint8 id[CODEC_OBJID_LEN]);
extern bool object_is_ours(const uint8 id[CODEC_OBJID_LEN]);
extern bool object_key_is_ours(const char *key);

#endif							/* DESTOR_OBJECT_H */
