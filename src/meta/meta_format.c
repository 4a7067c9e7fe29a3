/*
 * meta_format.c — the bytes of the metadata log (docs/METADATA_FORMAT.md).
 *
 * Responsible for: record fields (little-endian, length-prefixed), the
 * encoding of a log object into k + m self-describing shard files and back,
 * commit markers, and key names under meta/<instance>/.  A shard file
 * carries in its header everything needed to decode it — geometry, the
 * data key wrapped by the master key, the fingerprint of that key — so a
 * log object is read with nothing but the master key: no catalog row
 * describes it.  Nothing here touches the catalog or a provider.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "destor/meta.h"

#define META_PAYLOAD_BLOCK		(64 * 1024)
#define META_MARKER_TEXT		"destor-meta-commit-v1"

/* ---------------------------------------------------------------------------
 * Record fields
 * ------------------------------------------------------------------------- */

void
meta_put_u8(StringInfo s, uint8 v)
{
	appendBinaryStringInfo(s, (const char *) &v, 1);
}

void
meta_put_u32(StringInfo s, uint32 v)
{
	uint8		b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8) (v >> (8 * i));
	appendBinaryStringInfo(s, (const char *) b, 4);
}

void
meta_put_u64(StringInfo s, uint64 v)
{
	uint8		b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8) (v >> (8 * i));
	appendBinaryStringInfo(s, (const char *) b, 8);
}

void
meta_put_bytes(StringInfo s, const void *data, uint32 len)
{
	meta_put_u32(s, len);
	appendBinaryStringInfo(s, data, len);
}

/* a null field: length 0xFFFFFFFF */
void
meta_put_null(StringInfo s)
{
	meta_put_u32(s, 0xFFFFFFFF);
}

void
meta_put_str(StringInfo s, const char *str)
{
	if (str == NULL)
		meta_put_null(s);
	else
		meta_put_bytes(s, str, (uint32) strlen(str));
}

const uint8 *
meta_get_fixed(MetaReader *r, uint32 len)
{
	const uint8 *p = r->p;

	if (r->bad || (size_t) (r->end - r->p) < len)
	{
		r->bad = true;
		return NULL;
	}
	r->p += len;
	return p;
}

uint8
meta_get_u8(MetaReader *r)
{
	const uint8 *p = meta_get_fixed(r, 1);

	return p ? p[0] : 0;
}

uint32
meta_get_u32(MetaReader *r)
{
	const uint8 *p = meta_get_fixed(r, 4);
	uint32		v = 0;

	if (p)
		for (int i = 0; i < 4; i++)
			v |= (uint32) p[i] << (8 * i);
	return v;
}

uint64
meta_get_u64(MetaReader *r)
{
	const uint8 *p = meta_get_fixed(r, 8);
	uint64		v = 0;

	if (p)
		for (int i = 0; i < 8; i++)
			v |= (uint64) p[i] << (8 * i);
	return v;
}

const uint8 *
meta_get_bytes(MetaReader *r, uint32 *len)
{
	uint32		n = meta_get_u32(r);

	*len = 0;
	if (r->bad || n == 0xFFFFFFFF)
		return NULL;
	*len = n;
	return meta_get_fixed(r, n);
}

/* a palloc'd, NUL-terminated string; NULL for a null field */
char *
meta_get_str(MetaReader *r)
{
	uint32		len;
	const uint8 *p = meta_get_bytes(r, &len);

	if (p == NULL)
		return NULL;
	if (memchr(p, '\0', len) != NULL)
	{
		r->bad = true;
		return NULL;
	}
	return pnstrdup((const char *) p, len);
}

static void
put_le(uint8 *p, uint64 v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8) (v >> (8 * i));
}

static uint64
get_le(const uint8 *p, int n)
{
	uint64		v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64) p[i] << (8 * i);
	return v;
}

/* ---------------------------------------------------------------------------
 * Log objects
 * ------------------------------------------------------------------------- */

/* The associated data of a log object's wrapped key: its id and "meta",
 * so that neither an object's wrapped key nor another log's unwraps here. */
static void
meta_wrap_aad(const uint8 log_id[CODEC_OBJID_LEN], uint8 aad[CODEC_OBJID_LEN + 4])
{
	memcpy(aad, log_id, CODEC_OBJID_LEN);
	memcpy(aad + CODEC_OBJID_LEN, "meta", 4);
}

static void
meta_free_cipher(void *arg)
{
	codec_cipher_free((codec_cipher *) arg);
}

static void
meta_free_mac(void *arg)
{
	codec_chunk_mac_free((codec_chunk_mac *) arg);
}

/* A cipher / chunk MAC freed with the current memory context (and so on ERROR). */
static codec_cipher *
meta_cipher(const uint8 dek[CODEC_KEY_LEN], const uint8 log_id[CODEC_OBJID_LEN])
{
	codec_cipher *c = codec_cipher_create(dek, log_id);
	MemoryContextCallback *cb;

	if (c == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	cb = palloc(sizeof(MemoryContextCallback));
	cb->func = meta_free_cipher;
	cb->arg = c;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return c;
}

static codec_chunk_mac *
meta_mac(const uint8 key[CODEC_KEY_LEN], const uint8 log_id[CODEC_OBJID_LEN])
{
	codec_chunk_mac *m = codec_chunk_mac_create(key, log_id);
	MemoryContextCallback *cb;

	if (m == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	cb = palloc(sizeof(MemoryContextCallback));
	cb->func = meta_free_mac;
	cb->arg = m;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return m;
}

/*
 * meta_encode_log — a batch of records as k + m shard files.  The payload
 * (a flag byte, then the records, zstd-compressed when that is smaller) is
 * sealed in 64 KiB blocks with AES-256-GCM under a fresh data key (the
 * object format's block sealing, with the log id as object id), the
 * ciphertext is cut into k chunks and Reed–Solomon-encoded into m more, and
 * each shard file is header ‖ chunk ‖ tag: the header holds the geometry
 * and the data key wrapped by the master key, the tag (keyed from the data
 * key) lets a reader name a bad shard before decoding.
 */
MetaShards *
meta_encode_log(const char *payload, size_t len, uint64 seq, const uint8 log_id[CODEC_OBJID_LEN],
				int k, int m)
{
	uint8		master[CODEC_KEY_LEN];
	uint8		key_id[CODEC_KEY_FINGERPRINT_LEN];
	uint8		dek[CODEC_KEY_LEN];
	uint8		wrapped[CODEC_WRAPPED_KEY_LEN];
	uint8		aad[CODEC_OBJID_LEN + 4];
	size_t		bound = codec_compress_bound(len);
	char	   *plain = palloc_extended(1 + Max(bound, len), MCXT_ALLOC_HUGE);
	size_t		plain_len;
	size_t		nblocks;
	size_t		cipher_len;
	uint8	   *cipher;
	size_t		chunk_len;
	codec_cipher *c;
	codec_chunk_mac *mac;
	MetaShards *out;
	uint8	   *data[CODEC_RS_MAX_SHARDS];

	/* payload: flag 1 = zstd, 0 = raw */
	{
		size_t		clen = len > 0 ? codec_compress(payload, len, plain + 1, bound, 3) : 0;

		if (clen > 0)
		{
			plain[0] = 1;
			plain_len = 1 + clen;
		}
		else
		{
			plain[0] = 0;
			memcpy(plain + 1, payload, len);
			plain_len = 1 + len;
		}
	}

	keys_load_master(master, key_id);
	if (codec_random_bytes(dek, CODEC_KEY_LEN) != 0)
	{
		codec_secure_zero(master, sizeof(master));
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a data key for the metadata log")));
	}
	meta_wrap_aad(log_id, aad);
	if (codec_key_wrap(master, aad, sizeof(aad), dek, wrapped) != 0)
	{
		codec_secure_zero(master, sizeof(master));
		codec_secure_zero(dek, sizeof(dek));
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not wrap the data key of a metadata log object")));
	}
	codec_secure_zero(master, sizeof(master));

	nblocks = (plain_len + META_PAYLOAD_BLOCK - 1) / META_PAYLOAD_BLOCK;
	cipher_len = plain_len + nblocks * CODEC_TAG_LEN;
	chunk_len = (cipher_len + k - 1) / k;
	cipher = palloc_extended((size_t) chunk_len * k, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	c = meta_cipher(dek, log_id);
	mac = meta_mac(dek, log_id);
	codec_secure_zero(dek, sizeof(dek));
	for (size_t b = 0; b < nblocks; b++)
	{
		size_t		off = b * META_PAYLOAD_BLOCK;
		size_t		blen = Min(META_PAYLOAD_BLOCK, plain_len - off);

		if (codec_cipher_encrypt_block(c, b, b == nblocks - 1, (const uint8 *) plain + off, blen,
									   cipher + off + b * CODEC_TAG_LEN) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not encrypt a metadata log object")));
	}
	pfree(plain);

	out = palloc0(sizeof(MetaShards));
	out->k = k;
	out->m = m;
	out->shard_len = META_HEADER_LEN + chunk_len + CODEC_CHUNK_TAG_LEN;
	out->shards = palloc0(sizeof(uint8 *) * (k + m));
	for (int i = 0; i < k + m; i++)
	{
		uint8	   *h = palloc_extended(out->shard_len, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

		out->shards[i] = h;
		data[i] = h + META_HEADER_LEN;
		if (i < k)
			memcpy(data[i], cipher + (size_t) i * chunk_len, chunk_len);
	}
	pfree(cipher);
	if (m > 0)
		codec_rs_encode(object_rs(k, m), chunk_len, data, data + k);

	for (int i = 0; i < k + m; i++)
	{
		uint8	   *h = out->shards[i];

		memcpy(h, META_SHARD_MAGIC, 8);
		put_le(h + 8, META_FORMAT_VERSION, 2);
		h[10] = (uint8) i;
		h[11] = (uint8) k;
		h[12] = (uint8) m;
		memcpy(h + 16, log_id, CODEC_OBJID_LEN);
		put_le(h + 32, seq, 8);
		put_le(h + 40, plain_len, 8);
		put_le(h + 48, cipher_len, 8);
		put_le(h + 56, chunk_len, 8);
		memcpy(h + 64, key_id, CODEC_KEY_FINGERPRINT_LEN);
		memcpy(h + 72, wrapped, CODEC_WRAPPED_KEY_LEN);
		put_le(h + 136, codec_crc64(0, h, 136), 8);
		if (codec_chunk_mac_compute(mac, i, 0, data[i], chunk_len,
									h + META_HEADER_LEN + chunk_len) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not authenticate a metadata log object")));
	}
	return out;
}

/*
 * meta_decode_log — a log object back from whichever of its shard files
 * could be fetched.  A file is used only when its header is intact (CRC),
 * describes this log (id, seq, version, geometry agreeing with the others)
 * and its chunk passes its tag; k such files are enough.  The payload is
 * then authenticated again block by block by GCM.
 */
MetaDecodeResult
meta_decode_log(uint8 **shards, const size_t *lens, int nslots,
				const uint8 log_id[CODEC_OBJID_LEN], uint64 seq,
				char **payload, size_t *payload_len,
				uint8 found_key_id[CODEC_KEY_FINGERPRINT_LEN])
{
	uint8		master[CODEC_KEY_LEN];
	uint8		my_key_id[CODEC_KEY_FINGERPRINT_LEN];
	uint8		dek[CODEC_KEY_LEN];
	uint8		aad[CODEC_OBJID_LEN + 4];
	const uint8 *ref = NULL;
	int			k = 0,
				m = 0;
	uint64		plain_len = 0,
				cipher_len = 0,
				chunk_len = 0;
	uint8	   *data[CODEC_RS_MAX_SHARDS];
	bool		present[CODEC_RS_MAX_SHARDS];
	int			good = 0;
	codec_chunk_mac *mac;
	codec_cipher *c;
	uint8	   *cipher;
	char	   *plain;
	size_t		nblocks;

	/* the first intact header gives the geometry */
	for (int i = 0; i < nslots && ref == NULL; i++)
	{
		const uint8 *h = shards[i];

		if (h == NULL || lens[i] < META_HEADER_LEN + CODEC_CHUNK_TAG_LEN ||
			memcmp(h, META_SHARD_MAGIC, 8) != 0 ||
			get_le(h + 136, 8) != codec_crc64(0, h, 136) ||
			get_le(h + 8, 2) != META_FORMAT_VERSION ||
			memcmp(h + 16, log_id, CODEC_OBJID_LEN) != 0 || get_le(h + 32, 8) != seq)
			continue;
		k = h[11];
		m = h[12];
		plain_len = get_le(h + 40, 8);
		cipher_len = get_le(h + 48, 8);
		chunk_len = get_le(h + 56, 8);
		if (k < 1 || k > CODEC_RS_MAX_DATA || m > CODEC_RS_MAX_PARITY ||
			chunk_len != (cipher_len + k - 1) / k || plain_len == 0 ||
			cipher_len < plain_len || chunk_len > MaxAllocHugeSize / 32)
			continue;
		ref = h;
	}
	if (ref == NULL)
		return META_MALFORMED;
	memcpy(found_key_id, ref + 64, CODEC_KEY_FINGERPRINT_LEN);

	keys_load_master(master, my_key_id);
	if (memcmp(my_key_id, ref + 64, CODEC_KEY_FINGERPRINT_LEN) != 0)
	{
		codec_secure_zero(master, sizeof(master));
		return META_WRONG_KEY;
	}
	meta_wrap_aad(log_id, aad);
	if (codec_key_unwrap(master, aad, sizeof(aad), ref + 72, dek) != 0)
	{
		codec_secure_zero(master, sizeof(master));
		return META_WRONG_KEY;
	}
	codec_secure_zero(master, sizeof(master));
	mac = meta_mac(dek, log_id);
	c = meta_cipher(dek, log_id);
	codec_secure_zero(dek, sizeof(dek));

	for (int i = 0; i < k + m; i++)
	{
		const uint8 *h = i < nslots ? shards[i] : NULL;

		present[i] = false;
		data[i] = palloc_extended(chunk_len, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
		if (h == NULL || lens[i] != META_HEADER_LEN + chunk_len + CODEC_CHUNK_TAG_LEN ||
			memcmp(h, META_SHARD_MAGIC, 8) != 0 ||
			get_le(h + 136, 8) != codec_crc64(0, h, 136) || h[10] != i ||
			memcmp(h + 8, ref + 8, 2) != 0 || memcmp(h + 11, ref + 11, 2) != 0 ||
			memcmp(h + 16, ref + 16, 136 - 16) != 0)
			continue;
		if (codec_chunk_mac_verify(mac, i, 0, h + META_HEADER_LEN, chunk_len,
								   h + META_HEADER_LEN + chunk_len) != 0)
			continue;
		memcpy(data[i], h + META_HEADER_LEN, chunk_len);
		present[i] = true;
		good++;
	}
	if (good < k)
		return META_TOO_FEW_SHARDS;
	if (good < k + m && codec_rs_reconstruct(object_rs(k, m), chunk_len, data, present) != 0)
		return META_TOO_FEW_SHARDS;

	cipher = palloc_extended(chunk_len * k, MCXT_ALLOC_HUGE);
	for (int i = 0; i < k; i++)
		memcpy(cipher + (size_t) i * chunk_len, data[i], chunk_len);
	nblocks = (plain_len + META_PAYLOAD_BLOCK - 1) / META_PAYLOAD_BLOCK;
	if (cipher_len != plain_len + nblocks * CODEC_TAG_LEN)
		return META_MALFORMED;
	plain = palloc_extended(plain_len, MCXT_ALLOC_HUGE);
	for (size_t b = 0; b < nblocks; b++)
	{
		size_t		off = b * META_PAYLOAD_BLOCK;
		size_t		blen = Min(META_PAYLOAD_BLOCK, plain_len - off);

		if (codec_cipher_decrypt_block(c, b, b == nblocks - 1, cipher + off + b * CODEC_TAG_LEN,
									   blen + CODEC_TAG_LEN, (uint8 *) plain + off) != 0)
			return META_MALFORMED;
	}
	pfree(cipher);
	if (plain[0] == 0)
	{
		*payload = plain + 1;
		*payload_len = plain_len - 1;
	}
	else if (plain[0] == 1)
	{
		/* the records of one transaction: bounded by what one commit wrote */
		size_t		cap = Max((size_t) 1024 * 1024, (plain_len - 1) * 64);
		char	   *out;

		for (;;)
		{
			size_t		got;

			out = palloc_extended(cap, MCXT_ALLOC_HUGE);
			if (codec_decompress(plain + 1, plain_len - 1, out, cap, &got) == 0)
			{
				*payload = out;
				*payload_len = got;
				break;
			}
			pfree(out);
			if (cap >= MaxAllocHugeSize / 4)
				return META_MALFORMED;
			cap *= 4;
		}
	}
	else
		return META_MALFORMED;
	return META_DECODED;
}

/* The tag of a commit marker: keyed from the master key, bound to the log's
 * id and sequence number. */
static void
meta_marker_tag(const uint8 log_id[CODEC_OBJID_LEN], uint64 seq, uint8 tag[CODEC_CHUNK_TAG_LEN])
{
	uint8		master[CODEC_KEY_LEN];
	uint8		key_id[CODEC_KEY_FINGERPRINT_LEN];
	codec_chunk_mac *mac;
	int			rc;

	keys_load_master(master, key_id);
	mac = codec_chunk_mac_create(master, log_id);
	codec_secure_zero(master, sizeof(master));
	if (mac == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	rc = codec_chunk_mac_compute(mac, 0, seq, (const uint8 *) META_MARKER_TEXT,
								 strlen(META_MARKER_TEXT), tag);
	codec_chunk_mac_free(mac);
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not authenticate a metadata log commit marker")));
}

void
meta_build_marker(const uint8 log_id[CODEC_OBJID_LEN], uint64 seq, uint8 *out)
{
	memset(out, 0, META_MARKER_LEN);
	memcpy(out, META_MARKER_MAGIC, 8);
	put_le(out + 8, META_FORMAT_VERSION, 2);
	memcpy(out + 16, log_id, CODEC_OBJID_LEN);
	put_le(out + 32, seq, 8);
	meta_marker_tag(log_id, seq, out + 40);
}

bool
meta_check_marker(const uint8 log_id[CODEC_OBJID_LEN], uint64 seq, const uint8 *data, size_t len)
{
	uint8		expect[META_MARKER_LEN];
	uint8		diff = 0;

	if (len != META_MARKER_LEN)
		return false;
	meta_build_marker(log_id, seq, expect);
	for (int i = 0; i < META_MARKER_LEN; i++)
		diff |= expect[i] ^ data[i];
	return diff == 0;
}

/* ---------------------------------------------------------------------------
 * Key names: meta/<instance>/<seq, 16 hex>-<log id, 32 hex>.<shard> and
 * .../<seq>-<log id>.commit
 * ------------------------------------------------------------------------- */

char *
meta_shard_key(const char *instance, uint64 seq, const uint8 log_id[CODEC_OBJID_LEN], int shard)
{
	return psprintf("%s%s/%016llx-%s.%d", META_KEY_PREFIX, instance, (unsigned long long) seq,
					object_id_hex(log_id), shard);
}

char *
meta_marker_key(const char *instance, uint64 seq, const uint8 log_id[CODEC_OBJID_LEN])
{
	return psprintf("%s%s/%016llx-%s.commit", META_KEY_PREFIX, instance, (unsigned long long) seq,
					object_id_hex(log_id));
}

static int
meta_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * meta_parse_key — a key of the log: its instance (36 characters + NUL),
 * sequence number, log id and shard (-1 for the commit marker).  False for
 * any other key (a temp file of an upload, something else).
 */
bool
meta_parse_key(const char *key, char *instance, uint64 *seq, uint8 log_id[CODEC_OBJID_LEN],
			   int *shard)
{
	const char *p;
	const char *slash;
	uint64		v = 0;

	if (strncmp(key, META_KEY_PREFIX, strlen(META_KEY_PREFIX)) != 0)
		return false;
	p = key + strlen(META_KEY_PREFIX);
	slash = strchr(p, '/');
	if (slash == NULL || slash - p != 36)
		return false;
	memcpy(instance, p, 36);
	instance[36] = '\0';
	p = slash + 1;
	for (int i = 0; i < 16; i++)
	{
		int			d = meta_hex(p[i]);

		if (d < 0)
			return false;
		v = v << 4 | (uint64) d;
	}
	*seq = v;
	p += 16;
	if (*p++ != '-')
		return false;
	for (int i = 0; i < CODEC_OBJID_LEN; i++)
	{
		int			hi = meta_hex(p[2 * i]);
		int			lo = meta_hex(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		log_id[i] = (uint8) (hi << 4 | lo);
	}
	p += 2 * CODEC_OBJID_LEN;
	if (*p++ != '.')
		return false;
	if (strcmp(p, "commit") == 0)
	{
		*shard = -1;
		return true;
	}
	if (*p < '0' || *p > '9' || strlen(p) > 2)
		return false;
	*shard = atoi(p);
	if (p[1] != '\0' && (p[1] < '0' || p[1] > '9'))
		return false;
	return *shard < CODEC_RS_MAX_SHARDS;
}
