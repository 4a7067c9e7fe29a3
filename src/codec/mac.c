/*
 * mac.c — chunk authentication tags a storage provider cannot forge.
 *
 * A shard's trailer used to hold a CRC-64 per chunk.  A CRC finds bit rot,
 * but anyone can recompute it: a provider that changes a chunk and its CRC
 * makes a good shard of a reader's choice look bad and a bad one look good.
 * Objects of format 2 hold instead, per chunk, the first 16 bytes of
 *
 *   HMAC-SHA256(K, "destor-chunk-v1" || object id || shard (1 byte)
 *                  || stripe (8, big-endian) || length (8, big-endian) || chunk)
 *   K = HMAC-SHA256(data key, "destor-chunk-mac-key-v1" || object id)
 *
 * K derives from the object's data key, which never leaves the database,
 * so no provider can compute a tag; object id, shard index and stripe are
 * bound, so a chunk moved to another place, another shard or another object
 * (or an old shard replayed under the right name) fails too.  The length
 * is bound as well, so a truncated last chunk does not verify.
 */
#include "destor/codec.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define MAC_KEY_LABEL		"destor-chunk-mac-key-v1"
#define MAC_CHUNK_LABEL		"destor-chunk-v1"
#define MAC_CHUNK_LABEL_LEN	(sizeof(MAC_CHUNK_LABEL) - 1)
#define MAC_FULL_LEN		32

struct codec_chunk_mac
{
	EVP_MAC    *mac;
	EVP_MAC_CTX *keyed;			/* keyed with K; duplicated per chunk */
	uint8_t		objid[CODEC_OBJID_LEN];
};

static EVP_MAC_CTX *
hmac_ctx(EVP_MAC *mac, const uint8_t *key, size_t keylen)
{
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
	OSSL_PARAM	params[2];

	if (ctx == NULL)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, key, keylen, params) != 1)
	{
		EVP_MAC_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

codec_chunk_mac *
codec_chunk_mac_create(const uint8_t dek[CODEC_KEY_LEN], const uint8_t objid[CODEC_OBJID_LEN])
{
	codec_chunk_mac *m = calloc(1, sizeof(*m));
	EVP_MAC_CTX *kdf = NULL;
	uint8_t		k[MAC_FULL_LEN];
	size_t		klen = 0;

	if (m == NULL)
		return NULL;
	memcpy(m->objid, objid, CODEC_OBJID_LEN);
	m->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (m->mac == NULL)
		goto fail;
	kdf = hmac_ctx(m->mac, dek, CODEC_KEY_LEN);
	if (kdf == NULL ||
		EVP_MAC_update(kdf, (const uint8_t *) MAC_KEY_LABEL, sizeof(MAC_KEY_LABEL) - 1) != 1 ||
		EVP_MAC_update(kdf, objid, CODEC_OBJID_LEN) != 1 ||
		EVP_MAC_final(kdf, k, &klen, sizeof(k)) != 1 || klen != sizeof(k))
		goto fail;
	m->keyed = hmac_ctx(m->mac, k, sizeof(k));
	if (m->keyed == NULL)
		goto fail;
	EVP_MAC_CTX_free(kdf);
	OPENSSL_cleanse(k, sizeof(k));
	return m;

fail:
	EVP_MAC_CTX_free(kdf);
	OPENSSL_cleanse(k, sizeof(k));
	codec_chunk_mac_free(m);
	return NULL;
}

void
codec_chunk_mac_free(codec_chunk_mac *m)
{
	if (m == NULL)
		return;
	EVP_MAC_CTX_free(m->keyed);
	EVP_MAC_free(m->mac);
	OPENSSL_cleanse(m, sizeof(*m));
	free(m);
}

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
	{
		p[i] = (uint8_t) (v & 0xff);
		v >>= 8;
	}
}

int
codec_chunk_mac_compute(codec_chunk_mac *m, int shard, uint64_t stripe,
						const uint8_t *chunk, size_t len, uint8_t tag[CODEC_CHUNK_TAG_LEN])
{
	uint8_t		hdr[MAC_CHUNK_LABEL_LEN + CODEC_OBJID_LEN + 1 + 8 + 8];
	uint8_t		full[MAC_FULL_LEN];
	size_t		outl = 0;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(m->keyed);
	int			rc = -1;

	if (ctx == NULL)
		return -1;
	memcpy(hdr, MAC_CHUNK_LABEL, MAC_CHUNK_LABEL_LEN);
	memcpy(hdr + MAC_CHUNK_LABEL_LEN, m->objid, CODEC_OBJID_LEN);
	hdr[MAC_CHUNK_LABEL_LEN + CODEC_OBJID_LEN] = (uint8_t) shard;
	put_be64(hdr + MAC_CHUNK_LABEL_LEN + CODEC_OBJID_LEN + 1, stripe);
	put_be64(hdr + MAC_CHUNK_LABEL_LEN + CODEC_OBJID_LEN + 9, (uint64_t) len);
	if (EVP_MAC_update(ctx, hdr, sizeof(hdr)) == 1 &&
		(len == 0 || EVP_MAC_update(ctx, chunk, len) == 1) &&
		EVP_MAC_final(ctx, full, &outl, sizeof(full)) == 1 && outl == sizeof(full))
	{
		memcpy(tag, full, CODEC_CHUNK_TAG_LEN);
		rc = 0;
	}
	EVP_MAC_CTX_free(ctx);
	return rc;
}

int
codec_chunk_mac_verify(codec_chunk_mac *m, int shard, uint64_t stripe,
					   const uint8_t *chunk, size_t len, const uint8_t tag[CODEC_CHUNK_TAG_LEN])
{
	uint8_t		want[CODEC_CHUNK_TAG_LEN];

	if (codec_chunk_mac_compute(m, shard, stripe, chunk, len, want) != 0)
		return -1;
	return CRYPTO_memcmp(want, tag, CODEC_CHUNK_TAG_LEN) == 0 ? 0 : -1;
}
