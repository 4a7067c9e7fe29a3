/*
 * codec.h — pure C building blocks of the destor object format.
 *
 * Nothing here includes PostgreSQL headers: the codec layer is linked into
 * the extension and into standalone unit tests alike.  Functions report
 * failure by return value, never by longjmp, so callers in the backend can
 * turn failures into proper ereports.
 *
 * Memory: codec objects (codec_rs, codec_cipher) are malloc'ed; callers in
 * the backend must free them (the object layer does so from memory-context
 * reset callbacks so nothing leaks across an ERROR).
 */
#ifndef DESTOR_CODEC_H
#define DESTOR_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------- Reed–Solomon erasure coding (ISA-L, systematic Cauchy) ---------- */
#define CODEC_RS_MAX_DATA	16
#define CODEC_RS_MAX_PARITY	8
#define CODEC_RS_MAX_SHARDS	(CODEC_RS_MAX_DATA + CODEC_RS_MAX_PARITY)

typedef struct codec_rs codec_rs;

/* NULL on invalid k/m (1<=k<=16, 0<=m<=8) or out of memory. */
extern codec_rs *codec_rs_create(int k, int m);
extern void codec_rs_free(codec_rs *rs);
extern int	codec_rs_data_shards(const codec_rs *rs);
extern int	codec_rs_parity_shards(const codec_rs *rs);

/* data[0..k-1] inputs of len bytes each; parity[0..m-1] outputs of len bytes. */
extern void codec_rs_encode(const codec_rs *rs, size_t len,
							uint8_t *const *data, uint8_t *const *parity);

/*
 * shards[0..k+m-1] are buffers of len bytes; present[i] says whether shard i
 * holds valid data.  Every shard that is not present is rebuilt in place
 * (its buffer must be allocated).  Returns 0 on success, -1 if fewer than k
 * shards are present (nothing is written then).
 */
extern int	codec_rs_reconstruct(const codec_rs *rs, size_t len,
								 uint8_t *const *shards, const bool *present);
/* The same for the missing data shards only (absent parity is left as is). */
extern int	codec_rs_reconstruct_data(const codec_rs *rs, size_t len,
									  uint8_t *const *shards, const bool *present);

/* ---------- AES-256-GCM block encryption ---------- */
#define CODEC_KEY_LEN		32
#define CODEC_TAG_LEN		16
#define CODEC_OBJID_LEN		16
#define CODEC_NONCE_LEN		12
#define CODEC_WRAPPED_KEY_LEN	(CODEC_NONCE_LEN + CODEC_KEY_LEN + CODEC_TAG_LEN)
#define CODEC_KEY_FINGERPRINT_LEN 8

/* Cryptographically secure random bytes; 0 on success, -1 on failure. */
extern int	codec_random_bytes(uint8_t *buf, size_t len);

typedef struct codec_cipher codec_cipher;

/*
 * A cipher bound to one object: its data key and its id.  The nonce of each
 * block is derived from the block number (the key is unique per object); the
 * associated data binds object id, block number and the last-block flag, so
 * blocks cannot be swapped, replayed across objects or truncated unnoticed.
 */
extern codec_cipher *codec_cipher_create(const uint8_t key[CODEC_KEY_LEN],
										 const uint8_t objid[CODEC_OBJID_LEN]);
extern void codec_cipher_free(codec_cipher *c);

/* out receives len + CODEC_TAG_LEN bytes (ciphertext then tag). 0 ok, -1 error. */
extern int	codec_cipher_encrypt_block(codec_cipher *c, uint64_t blockno, bool last,
									   const uint8_t *in, size_t len, uint8_t *out);

/* in holds len bytes (ciphertext then tag, len >= CODEC_TAG_LEN); out
 * receives len - CODEC_TAG_LEN bytes.  0 ok, -1 authentication failure. */
extern int	codec_cipher_decrypt_block(codec_cipher *c, uint64_t blockno, bool last,
									   const uint8_t *in, size_t len, uint8_t *out);

/* The same, the plaintext split: its first head bytes to out, the rest
 * (len - CODEC_TAG_LEN - head bytes) to tail.  0 ok, -1 authentication
 * failure (then out and tail are zeroed). */
extern int	codec_cipher_decrypt_block_split(codec_cipher *c, uint64_t blockno, bool last,
											 const uint8_t *in, size_t len, uint8_t *out,
											 size_t head, uint8_t *tail);

/*
 * Data-key wrapping with the master key (AES-256-GCM, random nonce).  aad
 * binds the wrapped key to its object (object id and key version), so a
 * wrapped key copied to another object row does not unwrap.
 * unwrap returns -1 when the master key is wrong or the blob was altered.
 */
extern int	codec_key_wrap(const uint8_t master[CODEC_KEY_LEN],
						   const uint8_t *aad, size_t aadlen,
						   const uint8_t dek[CODEC_KEY_LEN],
						   uint8_t out[CODEC_WRAPPED_KEY_LEN]);
extern int	codec_key_unwrap(const uint8_t master[CODEC_KEY_LEN],
							 const uint8_t *aad, size_t aadlen,
							 const uint8_t in[CODEC_WRAPPED_KEY_LEN],
							 uint8_t dek[CODEC_KEY_LEN]);

/* A short, non-secret identifier of a master key (truncated SHA-256 of a
 * domain-separated hash), used to say "wrong master key" clearly. */
extern void codec_key_fingerprint(const uint8_t master[CODEC_KEY_LEN],
								  uint8_t out[CODEC_KEY_FINGERPRINT_LEN]);

/* Parse exactly 64 hex digits, optionally surrounded by ASCII whitespace
 * (as `openssl rand -hex 32` writes it).  0 ok, -1 malformed. */
extern int	codec_parse_hex_key(const char *text, size_t len,
								uint8_t key[CODEC_KEY_LEN]);

/* The value of a hexadecimal digit (either case), -1 for any other character. */
extern int	codec_hex_value(char ch);

/* Overwrite secret material in a way the compiler cannot elide. */
extern void codec_secure_zero(void *p, size_t len);

/* ---------- zstd ---------- */
extern size_t codec_compress_bound(size_t len);

/* Returns the compressed size, or 0 when compression failed or did not make
 * the data smaller (the caller then stores it raw). */
extern size_t codec_compress(const void *in, size_t len, void *out, size_t outcap,
							 int level);

/* The same with an explicit context: one per thread for parallel work.
 * codec_compress itself uses a per-process context. */
typedef struct codec_zctx codec_zctx;

extern codec_zctx *codec_zctx_create(void);
extern void codec_zctx_free(codec_zctx *z);
extern size_t codec_compress_ctx(codec_zctx *z, const void *in, size_t len, void *out,
								 size_t outcap, int level);

/* 0 on success with *outlen set, -1 on corrupt input or if the result does
 * not fit in outcap. */
extern int	codec_decompress(const void *in, size_t len, void *out, size_t outcap,
							 size_t *outlen);

/* ---------- parallel work ---------- */
#define CODEC_MAX_THREADS 8

/*
 * Run fn(args[i]) for every i: args[0] in the calling thread, the others in
 * helper threads (signals blocked), and return when all are done.  fn must
 * be pure C and thread-safe: no database server calls, no shared scratch
 * (note that codec_compress/codec_decompress use per-process contexts).
 */
extern void codec_run_parallel(void (*fn) (void *), void **args, int nargs);

/* ---------- chunk authentication (see mac.c) ---------- */
#define CODEC_CHUNK_TAG_LEN	16

typedef struct codec_chunk_mac codec_chunk_mac;

/* Keyed from an object's data key and bound to its id; NULL on failure. */
extern codec_chunk_mac *codec_chunk_mac_create(const uint8_t dek[CODEC_KEY_LEN],
											   const uint8_t objid[CODEC_OBJID_LEN]);
extern void codec_chunk_mac_free(codec_chunk_mac *m);

/* The tag of the chunk of shard "shard" in stripe "stripe".  0 ok, -1 error.
 * Thread-safe for one codec_chunk_mac (each call works on its own copy). */
extern int	codec_chunk_mac_compute(codec_chunk_mac *m, int shard, uint64_t stripe,
									const uint8_t *chunk, size_t len,
									uint8_t tag[CODEC_CHUNK_TAG_LEN]);

/* 0 when tag is the chunk's tag (compared in constant time), else -1. */
extern int	codec_chunk_mac_verify(codec_chunk_mac *m, int shard, uint64_t stripe,
								   const uint8_t *chunk, size_t len,
								   const uint8_t tag[CODEC_CHUNK_TAG_LEN]);

/* ---------- checksums ---------- */
/* CRC-64 (ISA-L crc64_ecma_refl); chainable: pass the previous result as seed. */
extern uint64_t codec_crc64(uint64_t seed, const void *data, size_t len);

/* ---------- delta encoding of fixed-width values (see delta.c) ---------- */
/* The widths (bytes) the delta encoding takes: 2, 4 and 8. */
extern bool codec_delta_width_ok(int width);

/* count values of width bytes from in to out (count * width bytes each; in
 * and out must not overlap): differences from the previous value, zigzag,
 * byte planes.  codec_delta_decode is its inverse. */
extern void codec_delta_encode(const void *in, size_t count, int width, void *out);
extern void codec_delta_decode(const void *in, size_t count, int width, void *out);

#endif							/* DESTOR_CODEC_H */
