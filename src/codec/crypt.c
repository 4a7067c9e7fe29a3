/*
 * crypt.c — AES-256-GCM block encryption, data-key wrapping, key helpers.
 *
 * Block format (per object, data key unique to the object):
 *   nonce = 00 00 00 00 || blockno (8 bytes, big-endian)
 *   aad   = "destor-blk-v1" || objid (16) || blockno (8, big-endian) || last (1 byte, 0/1)
 *   out   = ciphertext || tag (16)
 *
 * Wrapped key format (CODEC_WRAPPED_KEY_LEN = 60 bytes):
 *   nonce (12, random) || ciphertext of the 32-byte key || tag (16)
 *   aad   = "destor-kw-v1" || caller aad
 *
 * Fingerprint: first 8 bytes of SHA-256("destor-key-fingerprint-v1" || master).
 *
 * A codec_cipher keys one EVP_CIPHER_CTX once; each block only re-sets the
 * IV (and direction), so the AES key schedule and GHASH tables are reused and
 * nothing is allocated per block.
 */
#include "destor/codec.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define BLK_AAD_PREFIX		"destor-blk-v1"
#define BLK_AAD_PREFIX_LEN	(sizeof(BLK_AAD_PREFIX) - 1)
#define BLK_AAD_LEN			(BLK_AAD_PREFIX_LEN + CODEC_OBJID_LEN + 8 + 1)
#define BLK_AAD_BLOCKNO_OFF	(BLK_AAD_PREFIX_LEN + CODEC_OBJID_LEN)
#define BLK_AAD_LAST_OFF	(BLK_AAD_BLOCKNO_OFF + 8)

#define KW_AAD_PREFIX		"destor-kw-v1"
#define KW_AAD_PREFIX_LEN	(sizeof(KW_AAD_PREFIX) - 1)

#define FP_PREFIX			"destor-key-fingerprint-v1"
#define FP_PREFIX_LEN		(sizeof(FP_PREFIX) - 1)

/* EVP update lengths are int: feed large buffers in chunks of this. */
#define EVP_CHUNK			((size_t) 1 << 30)

struct codec_cipher
{
	EVP_CIPHER_CTX *ctx;
	uint8_t		iv[CODEC_NONCE_LEN];
	uint8_t		aad[BLK_AAD_LEN];
};

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
	{
		p[i] = (uint8_t) (v & 0xff);
		v >>= 8;
	}
}

void
codec_secure_zero(void *p, size_t len)
{
	if (p != NULL && len > 0)
		OPENSSL_cleanse(p, len);
}

int
codec_random_bytes(uint8_t *buf, size_t len)
{
	while (len > 0)
	{
		size_t		n = len > EVP_CHUNK ? EVP_CHUNK : len;

		if (RAND_bytes(buf, (int) n) != 1)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

/* ---------------------------------------------------------------- block cipher */

codec_cipher *
codec_cipher_create(const uint8_t key[CODEC_KEY_LEN],
					const uint8_t objid[CODEC_OBJID_LEN])
{
	codec_cipher *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->ctx = EVP_CIPHER_CTX_new();
	if (c->ctx == NULL)
		goto fail;
	/* Key once; the IV is set per block.  The default GCM IV length is 12. */
	if (EVP_CipherInit_ex(c->ctx, EVP_aes_256_gcm(), NULL, key, NULL, 1) != 1)
		goto fail;
	if (EVP_CIPHER_CTX_get_iv_length(c->ctx) != CODEC_NONCE_LEN)
		goto fail;

	memset(c->iv, 0, sizeof(c->iv));
	memcpy(c->aad, BLK_AAD_PREFIX, BLK_AAD_PREFIX_LEN);
	memcpy(c->aad + BLK_AAD_PREFIX_LEN, objid, CODEC_OBJID_LEN);
	return c;

fail:
	codec_cipher_free(c);
	return NULL;
}

void
codec_cipher_free(codec_cipher *c)
{
	if (c == NULL)
		return;
	EVP_CIPHER_CTX_free(c->ctx);	/* cleanses the key schedule */
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

/* Set IV and AAD for one block and start the operation (enc: 1/0). */
static int
cipher_begin(codec_cipher *c, uint64_t blockno, bool last, int enc)
{
	int			outl;

	put_be64(c->iv + 4, blockno);
	put_be64(c->aad + BLK_AAD_BLOCKNO_OFF, blockno);
	c->aad[BLK_AAD_LAST_OFF] = last ? 1 : 0;

	if (EVP_CipherInit_ex(c->ctx, NULL, NULL, NULL, c->iv, enc) != 1)
		return -1;
	if (EVP_CipherUpdate(c->ctx, NULL, &outl, c->aad, (int) BLK_AAD_LEN) != 1)
		return -1;
	return 0;
}

/* Stream len bytes through the context; GCM outputs exactly what it gets. */
static int
cipher_stream(EVP_CIPHER_CTX *ctx, const uint8_t *in, size_t len, uint8_t *out)
{
	size_t		off = 0;

	while (off < len)
	{
		size_t		n = len - off;
		int			outl;

		if (n > EVP_CHUNK)
			n = EVP_CHUNK;
		if (EVP_CipherUpdate(ctx, out + off, &outl, in + off, (int) n) != 1 ||
			(size_t) outl != n)
			return -1;
		off += n;
	}
	return 0;
}

int
codec_cipher_encrypt_block(codec_cipher *c, uint64_t blockno, bool last,
						   const uint8_t *in, size_t len, uint8_t *out)
{
	int			outl;

	if (cipher_begin(c, blockno, last, 1) != 0)
		return -1;
	if (cipher_stream(c->ctx, in, len, out) != 0)
		return -1;
	if (EVP_CipherFinal_ex(c->ctx, out + len, &outl) != 1 || outl != 0)
		return -1;
	if (EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_GET_TAG, CODEC_TAG_LEN,
							out + len) != 1)
		return -1;
	return 0;
}

int
codec_cipher_decrypt_block(codec_cipher *c, uint64_t blockno, bool last,
						   const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t		tag[CODEC_TAG_LEN];
	size_t		ptlen;
	int			outl;

	if (len < CODEC_TAG_LEN)
		return -1;
	ptlen = len - CODEC_TAG_LEN;
	memcpy(tag, in + ptlen, CODEC_TAG_LEN);

	if (cipher_begin(c, blockno, last, 0) != 0)
		goto fail;
	if (cipher_stream(c->ctx, in, ptlen, out) != 0)
		goto fail;
	if (EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_SET_TAG, CODEC_TAG_LEN, tag) != 1)
		goto fail;
	if (EVP_CipherFinal_ex(c->ctx, out + ptlen, &outl) != 1)
		goto fail;
	return 0;

fail:
	/* never hand out unauthenticated plaintext */
	codec_secure_zero(out, ptlen);
	return -1;
}

/*
 * As codec_cipher_decrypt_block, with the plaintext split in two: its first
 * head bytes go to out, the rest (ptlen - head bytes) to tail.  A reader
 * opens a block straight into its place in the caller's buffer this way and
 * a trailing flag byte lands in a variable of its own, so opening a block
 * never writes a byte of a neighbouring one.  GCM is a stream mode: the
 * split changes nothing of the result.
 */
int
codec_cipher_decrypt_block_split(codec_cipher *c, uint64_t blockno, bool last,
								 const uint8_t *in, size_t len, uint8_t *out,
								 size_t head, uint8_t *tail)
{
	uint8_t		tag[CODEC_TAG_LEN];
	size_t		ptlen;
	int			outl;

	if (len < CODEC_TAG_LEN || head > len - CODEC_TAG_LEN)
		return -1;
	ptlen = len - CODEC_TAG_LEN;
	memcpy(tag, in + ptlen, CODEC_TAG_LEN);

	if (cipher_begin(c, blockno, last, 0) != 0)
		goto fail;
	if (cipher_stream(c->ctx, in, head, out) != 0)
		goto fail;
	if (ptlen > head && cipher_stream(c->ctx, in + head, ptlen - head, tail) != 0)
		goto fail;
	if (EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_SET_TAG, CODEC_TAG_LEN, tag) != 1)
		goto fail;
	if (EVP_CipherFinal_ex(c->ctx, tail, &outl) != 1 || outl != 0)
		goto fail;
	return 0;

fail:
	/* never hand out unauthenticated plaintext */
	codec_secure_zero(out, head);
	codec_secure_zero(tail, ptlen - (head < ptlen ? head : ptlen));
	return -1;
}

/* ---------------------------------------------------------------- key wrap */

int
codec_key_wrap(const uint8_t master[CODEC_KEY_LEN],
			   const uint8_t *aad, size_t aadlen,
			   const uint8_t dek[CODEC_KEY_LEN],
			   uint8_t out[CODEC_WRAPPED_KEY_LEN])
{
	EVP_CIPHER_CTX *ctx;
	int			outl;
	int			rc = -1;

	if (aadlen > INT_MAX || (aad == NULL && aadlen > 0))
		return -1;
	if (codec_random_bytes(out, CODEC_NONCE_LEN) != 0)
		return -1;
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		return -1;

	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, master, out) != 1)
		goto done;
	if (EVP_EncryptUpdate(ctx, NULL, &outl, (const uint8_t *) KW_AAD_PREFIX,
						  (int) KW_AAD_PREFIX_LEN) != 1)
		goto done;
	if (aadlen > 0 &&
		EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int) aadlen) != 1)
		goto done;
	if (EVP_EncryptUpdate(ctx, out + CODEC_NONCE_LEN, &outl, dek,
						  CODEC_KEY_LEN) != 1 || outl != CODEC_KEY_LEN)
		goto done;
	if (EVP_EncryptFinal_ex(ctx, out + CODEC_NONCE_LEN + CODEC_KEY_LEN, &outl) != 1 ||
		outl != 0)
		goto done;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CODEC_TAG_LEN,
							out + CODEC_NONCE_LEN + CODEC_KEY_LEN) != 1)
		goto done;
	rc = 0;

done:
	EVP_CIPHER_CTX_free(ctx);
	if (rc != 0)
		codec_secure_zero(out, CODEC_WRAPPED_KEY_LEN);
	return rc;
}

int
codec_key_unwrap(const uint8_t master[CODEC_KEY_LEN],
				 const uint8_t *aad, size_t aadlen,
				 const uint8_t in[CODEC_WRAPPED_KEY_LEN],
				 uint8_t dek[CODEC_KEY_LEN])
{
	EVP_CIPHER_CTX *ctx;
	uint8_t		tag[CODEC_TAG_LEN];
	uint8_t		buf[CODEC_KEY_LEN + 16];
	int			outl;
	int			rc = -1;

	codec_secure_zero(dek, CODEC_KEY_LEN);
	if (aadlen > INT_MAX || (aad == NULL && aadlen > 0))
		return -1;
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		return -1;
	memcpy(tag, in + CODEC_NONCE_LEN + CODEC_KEY_LEN, CODEC_TAG_LEN);

	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, master, in) != 1)
		goto done;
	if (EVP_DecryptUpdate(ctx, NULL, &outl, (const uint8_t *) KW_AAD_PREFIX,
						  (int) KW_AAD_PREFIX_LEN) != 1)
		goto done;
	if (aadlen > 0 &&
		EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int) aadlen) != 1)
		goto done;
	if (EVP_DecryptUpdate(ctx, buf, &outl, in + CODEC_NONCE_LEN,
						  CODEC_KEY_LEN) != 1 || outl != CODEC_KEY_LEN)
		goto done;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CODEC_TAG_LEN, tag) != 1)
		goto done;
	if (EVP_DecryptFinal_ex(ctx, buf + CODEC_KEY_LEN, &outl) != 1)
		goto done;
	memcpy(dek, buf, CODEC_KEY_LEN);
	rc = 0;

done:
	EVP_CIPHER_CTX_free(ctx);
	codec_secure_zero(buf, sizeof(buf));
	return rc;
}

/* ---------------------------------------------------------------- helpers */

void
codec_key_fingerprint(const uint8_t master[CODEC_KEY_LEN],
					  uint8_t out[CODEC_KEY_FINGERPRINT_LEN])
{
	uint8_t		buf[FP_PREFIX_LEN + CODEC_KEY_LEN];
	uint8_t		md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	memcpy(buf, FP_PREFIX, FP_PREFIX_LEN);
	memcpy(buf + FP_PREFIX_LEN, master, CODEC_KEY_LEN);
	if (EVP_Digest(buf, sizeof(buf), md, &mdlen, EVP_sha256(), NULL) != 1 ||
		mdlen < CODEC_KEY_FINGERPRINT_LEN)
		memset(md, 0, sizeof(md));	/* cannot report; all-zero never matches */
	memcpy(out, md, CODEC_KEY_FINGERPRINT_LEN);
	codec_secure_zero(buf, sizeof(buf));
}

static bool
is_ascii_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
		ch == '\v' || ch == '\f';
}

int
codec_hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int
codec_parse_hex_key(const char *text, size_t len, uint8_t key[CODEC_KEY_LEN])
{
	size_t		start = 0;
	size_t		end = len;

	if (text == NULL)
		return -1;
	while (start < end && is_ascii_space(text[start]))
		start++;
	while (end > start && is_ascii_space(text[end - 1]))
		end--;
	if (end - start != 2 * CODEC_KEY_LEN)
		return -1;

	for (size_t i = 0; i < CODEC_KEY_LEN; i++)
	{
		int			hi = codec_hex_value(text[start + 2 * i]);
		int			lo = codec_hex_value(text[start + 2 * i + 1]);

		if (hi < 0 || lo < 0)
		{
			codec_secure_zero(key, CODEC_KEY_LEN);
			return -1;
		}
		key[i] = (uint8_t) (hi << 4 | lo);
	}
	return 0;
}
