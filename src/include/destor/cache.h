/*
 * cache.h — a shared-memory cache of decrypted blocks.
 *
 * Pages are the plaintext blocks of objects, keyed by (object id, block
 * number).  Objects are immutable and their ids are never reused, so a
 * cached page can never be stale: deleting or rewriting data creates or
 * retires objects, it never changes one.  The cache sits below tables and
 * blobs, inside the object reader and writer.
 */
#ifndef DESTOR_CACHE_H
#define DESTOR_CACHE_H

#include "postgres.h"

#include "destor/codec.h"

#define CACHE_PAGE_SIZE		(64 * 1024)

extern int	destor_cache_size_kb;

extern void cache_define_gucs(void);
extern void cache_shmem_request(void);
extern void cache_shmem_startup(void);
extern bool cache_enabled(void);

/* Copy [from, to) of block (id, blockno) into dst if cached; true on a hit. */
extern bool cache_lookup(const uint8 id[CODEC_OBJID_LEN], uint64 blockno, uint32 from,
						 uint32 to, char *dst);

extern bool cache_contains(const uint8 id[CODEC_OBJID_LEN], uint64 blockno);
/* As cache_lookup, but a miss is not counted (the caller reads it another way). */
extern bool cache_probe(const uint8 id[CODEC_OBJID_LEN], uint64 blockno, uint32 from, uint32 to,
						char *dst);

/* Put a block (its whole plaintext, len bytes) into the cache. */
extern void cache_insert(const uint8 id[CODEC_OBJID_LEN], uint64 blockno, const char *data,
						 uint32 len);

/*
 * Derived entries: bytes computed from an object's plaintext (a column chunk
 * after decompression), cached under the object's id and a tag (e.g. the
 * chunk's offset), so they are as immutable as the object.  An entry spans
 * as many pages as it needs; it is found only if all of them still are.
 */
#define CACHE_SPAN_MAX_TAG		((UINT64CONST(1) << 51) - 1)
/*
 * Every page takes a whole slot, so a small entry wastes most of its slot;
 * small chunks are cached all the same: a point look-up reads one value of
 * each column from the cached chunk, and a chunk not cached costs it the
 * whole row group's decoding (a segment's last, short row group; columns
 * of narrow types, a smallint's 10,000 values being 20 kB).
 */
#define CACHE_SPAN_MIN_BYTES	1

extern uint32 cache_span_max_bytes(void);
extern bool cache_lookup_span(const uint8 id[CODEC_OBJID_LEN], uint64 tag, char *dst, uint32 len);
extern bool cache_lookup_span_part(const uint8 id[CODEC_OBJID_LEN], uint64 tag, uint32 span_len,
								   uint32 from, uint32 len, char *dst);
extern bool cache_contains_span(const uint8 id[CODEC_OBJID_LEN], uint64 tag);
extern void cache_insert_span(const uint8 id[CODEC_OBJID_LEN], uint64 tag, const char *data,
							  uint32 len);

/* In-flight pages (see cache.c). */
typedef enum CacheProbe
{
	CACHE_HIT,
	CACHE_MISS,
	CACHE_BUSY					/* another backend is fetching it */
} CacheProbe;

extern CacheProbe cache_read(const uint8 id[CODEC_OBJID_LEN], uint64 blockno, uint32 from,
							 uint32 to, char *dst);
extern void cache_wait(const uint8 id[CODEC_OBJID_LEN], uint64 blockno);
extern bool cache_busy(const uint8 id[CODEC_OBJID_LEN], uint64 blockno);
extern bool cache_reserve(const uint8 id[CODEC_OBJID_LEN], uint64 blockno);
extern void cache_release_reservations(void);

/* Count bytes that came from providers (for destor.cache_stats). */
extern void cache_count_provider_bytes(uint64 bytes);
extern void cache_count_misses(uint64 n);

#endif							/* DESTOR_CACHE_H */
