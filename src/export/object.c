/*
 * object.c — reading an object from its shards, as the extension's reader
 * does (src/object/: object_layout.c, object_read*.c), and checking every
 * chunk on the way.  Shard i of an object is the key ds/<2 hex>/<id hex>.i
 * on whichever provider lists it; it holds chunk i of every stripe, then a
 * trailer of one tag per chunk (format 1: CRC-64; format 2: a keyed tag)
 * and a 64-byte footer.  A stripe is rebuilt by Reed–Solomon from any k
 * chunks that pass their tags; the stream of sealed 64 KiB blocks is then
 * opened with AES-256-GCM (and zstd when the block says so).
 */
#include "export.h"

#include <stdlib.h>
#include <string.h>

#define FOOTER_SIZE		64
#define FORMAT_CRC		1
#define FORMAT_MAC		2

/* the object's data key, unwrapped with the master key; false: another key */
static bool
unwrap_key(XPool *pool, const XObject *o, uint8_t dek[CODEC_KEY_LEN], char **error)
{
	uint8_t		aad[CODEC_OBJID_LEN + 4];

	if (memcmp(o->key_id, pool->master_id, CODEC_KEY_FINGERPRINT_LEN) != 0)
	{
		*error = xprintf("written under another master key");
		return false;
	}
	memcpy(aad, o->id, CODEC_OBJID_LEN);
	aad[CODEC_OBJID_LEN] = (uint8_t) ((uint32_t) o->key_version >> 24);
	aad[CODEC_OBJID_LEN + 1] = (uint8_t) ((uint32_t) o->key_version >> 16);
	aad[CODEC_OBJID_LEN + 2] = (uint8_t) ((uint32_t) o->key_version >> 8);
	aad[CODEC_OBJID_LEN + 3] = (uint8_t) o->key_version;
	if (codec_key_unwrap(pool->master, aad, sizeof(aad), o->wrapped, dek) != 0)
	{
		*error = xprintf("its wrapped data key does not authenticate under the master key");
		return false;
	}
	return true;
}

/* one shard's file from the first provider that has it */
static uint8_t *
fetch_shard(XPool *pool, const XObject *o, int shard, size_t *len, char **why)
{
	char		hex[33];
	char	   *key;
	uint8_t    *data = NULL;

	id_hex(o->id, hex);
	key = xprintf("ds/%.2s/%s.%d", hex, hex, shard);
	*why = NULL;
	for (int s = 0; s < pool->nstores && data == NULL; s++)
	{
		Store	   *st = &pool->stores[s];
		char	   *err = NULL;

		/* a provider that could be listed and does not list it has it not */
		if (st->listed && !store_has(st, key))
			continue;
		data = store_get(st, key, len, &err);
		if (data == NULL)
		{
			free(*why);
			*why = err;
		}
		else
			free(err);
	}
	if (data == NULL && *why == NULL)
		*why = xprintf("not on any provider");
	free(key);
	return data;
}

uint8_t *
object_read(XPool *pool, const XObject *o, size_t *outlen, ObjectCheck *check)
{
	ObjectCheck local;
	int			k = o->k,
				m = o->m,
				n = o->k + o->m;
	int			format = o->key_version;
	int			tag_len = format == FORMAT_CRC ? 8 : CODEC_CHUNK_TAG_LEN;
	uint64_t	stripe_size,
				nstripes,
				rem,
				last_chunk,
				shard_data_len,
				trailer_len;
	uint8_t    *files[CODEC_RS_MAX_SHARDS] = {0};
	size_t		lens[CODEC_RS_MAX_SHARDS] = {0};
	uint8_t		dek[CODEC_KEY_LEN];
	codec_chunk_mac *mac = NULL;
	codec_cipher *cipher = NULL;
	codec_rs   *rs = NULL;
	uint8_t    *stream = NULL;
	uint8_t    *plain = NULL;
	uint8_t    *bufs[CODEC_RS_MAX_SHARDS] = {0};
	size_t		nblocks;
	size_t		got = 0;

	if (check == NULL)
		check = &local;
	memset(check, 0, sizeof(ObjectCheck));
	check->nshards = n;
	if (k < 1 || k > CODEC_RS_MAX_DATA || m < 0 || m > CODEC_RS_MAX_PARITY || o->chunk_size == 0 ||
		(format != FORMAT_CRC && format != FORMAT_MAC))
	{
		check->error = xprintf("its metadata is malformed (geometry %d+%d, format %d)", k, m, format);
		return NULL;
	}
	if (!unwrap_key(pool, o, dek, &check->error))
		return NULL;
	cipher = codec_cipher_create(dek, o->id);
	if (format == FORMAT_MAC)
		mac = codec_chunk_mac_create(dek, o->id);
	codec_secure_zero(dek, sizeof(dek));
	rs = codec_rs_create(k, m);
	if (cipher == NULL || rs == NULL || (format == FORMAT_MAC && mac == NULL))
		fatal(EXIT_DATA, "out of memory");

	/* the geometry (object_geometry) */
	stripe_size = (uint64_t) k * o->chunk_size;
	nstripes = (o->stream_size + stripe_size - 1) / stripe_size;
	if (nstripes == 0)
		nstripes = 1;
	rem = o->stream_size - (nstripes - 1) * stripe_size;
	last_chunk = (rem + k - 1) / k;
	shard_data_len = (nstripes - 1) * o->chunk_size + last_chunk;
	trailer_len = nstripes * tag_len + FOOTER_SIZE;

	/* every shard, its footer checked */
	for (int i = 0; i < n; i++)
	{
		char	   *why = NULL;
		const uint8_t *f;

		files[i] = fetch_shard(pool, o, i, &lens[i], &why);
		if (files[i] == NULL)
		{
			check->state[i] = XSHARD_MISSING;
			check->detail[i] = why;
			continue;
		}
		free(why);
		f = files[i] + shard_data_len + nstripes * tag_len;
		if (lens[i] != shard_data_len + trailer_len)
		{
			check->state[i] = XSHARD_CORRUPT;
			check->detail[i] = xprintf("%zu bytes instead of %llu", lens[i],
									   (unsigned long long) (shard_data_len + trailer_len));
		}
		else if (memcmp(f, format == FORMAT_CRC ? "DESTOR01" : "DESTOR02", 8) != 0 ||
				 memcmp(f + 8, o->id, CODEC_OBJID_LEN) != 0 || f[24] != i || f[26] != k ||
				 f[27] != m || get_le(f + 28, 4) != o->chunk_size ||
				 get_le(f + 32, 8) != nstripes || get_le(f + 40, 8) != o->stream_size ||
				 get_le(f + 48, 8) != shard_data_len || get_le(f + 56, 8) != codec_crc64(0, f, 56))
		{
			check->state[i] = XSHARD_CORRUPT;
			check->detail[i] = xprintf("its footer is not this shard's");
		}
		if (check->state[i] != XSHARD_OK)
		{
			free(files[i]);
			files[i] = NULL;
		}
	}

	/* stripe by stripe: chunks checked against their tags, missing ones rebuilt */
	stream = xmalloc(nstripes * stripe_size);
	for (int i = 0; i < n; i++)
		bufs[i] = xmalloc(o->chunk_size);
	check->readable = true;
	for (uint64_t s = 0; s < nstripes; s++)
	{
		size_t		cl = s == nstripes - 1 ? last_chunk : o->chunk_size;
		bool		present[CODEC_RS_MAX_SHARDS] = {0};
		int			good = 0;

		for (int i = 0; i < n; i++)
		{
			const uint8_t *chunk;
			const uint8_t *tag;
			bool		ok;

			if (files[i] == NULL)
				continue;
			chunk = files[i] + s * o->chunk_size;
			tag = files[i] + shard_data_len + s * tag_len;
			if (format == FORMAT_CRC)
				ok = codec_crc64(0, chunk, cl) == get_le(tag, 8);
			else
				ok = codec_chunk_mac_verify(mac, i, s, chunk, cl, tag) == 0;
			if (!ok)
			{
				check->bad_chunks++;
				if (check->state[i] == XSHARD_OK)
				{
					check->state[i] = XSHARD_CORRUPT;
					check->detail[i] = xprintf("chunk of stripe %llu fails its %s",
											   (unsigned long long) s,
											   format == FORMAT_CRC ? "CRC" : "tag");
				}
				continue;
			}
			memcpy(bufs[i], chunk, cl);
			present[i] = true;
			good++;
		}
		if (good < k || (good < n && codec_rs_reconstruct(rs, cl, bufs, present) != 0))
		{
			if (check->readable)
				check->error = xprintf("stripe %llu has %d good chunks of the %d needed",
									   (unsigned long long) s, good, k);
			check->readable = false;
			continue;
		}
		for (int i = 0; i < k; i++)
			memcpy(stream + s * stripe_size + (size_t) i * cl, bufs[i], cl);
	}
	if (!check->readable)
		goto done;

	/* the sealed blocks */
	if (o->block_ends)
		nblocks = o->nblock_ends;
	else
	{
		nblocks = (o->stream_size + o->chunk_size - 1) / o->chunk_size;
		if (nblocks == 0)
			nblocks = 1;
	}
	plain = xmalloc(o->size + 1);
	for (size_t b = 0; b < nblocks; b++)
	{
		uint64_t	start = o->block_ends ? (b ? o->block_ends[b - 1] : 0) : b * o->chunk_size;
		uint64_t	end = o->block_ends ? o->block_ends[b] :
			(start + o->chunk_size < o->stream_size ? start + o->chunk_size : o->stream_size);
		size_t		clen = end > start ? end - start : 0;
		uint8_t    *opened;
		size_t		olen;

		if (clen < CODEC_TAG_LEN || end > o->stream_size)
		{
			check->error = xprintf("block %zu is malformed", b);
			check->readable = false;
			goto done;
		}
		olen = clen - CODEC_TAG_LEN;
		opened = xmalloc(olen + 1);
		if (codec_cipher_decrypt_block(cipher, b, b == nblocks - 1, stream + start, clen, opened) != 0)
		{
			free(opened);
			check->error = xprintf("block %zu does not authenticate (AES-GCM)", b);
			check->readable = false;
			goto done;
		}
		if (o->compressed)
		{
			uint8_t		flag;

			if (olen < 1)
			{
				free(opened);
				check->error = xprintf("block %zu is malformed", b);
				check->readable = false;
				goto done;
			}
			flag = opened[olen - 1];
			olen--;
			if (flag == 1)
			{
				size_t		dlen;

				if (got > o->size ||
					codec_decompress(opened, olen, plain + got, o->size - got, &dlen) != 0)
				{
					free(opened);
					check->error = xprintf("block %zu does not decompress", b);
					check->readable = false;
					goto done;
				}
				got += dlen;
				free(opened);
				continue;
			}
		}
		if (got + olen > o->size)
		{
			free(opened);
			check->error = xprintf("the object holds more than its %llu bytes",
								   (unsigned long long) o->size);
			check->readable = false;
			goto done;
		}
		memcpy(plain + got, opened, olen);
		got += olen;
		free(opened);
	}
	if (got != o->size)
	{
		check->error = xprintf("the object holds %zu bytes, not %llu", got,
							   (unsigned long long) o->size);
		check->readable = false;
	}

done:
	for (int i = 0; i < n; i++)
	{
		free(files[i]);
		free(bufs[i]);
	}
	free(stream);
	codec_cipher_free(cipher);
	codec_chunk_mac_free(mac);
	codec_rs_free(rs);
	if (!check->readable)
	{
		free(plain);
		return NULL;
	}
	*outlen = got;
	return plain;
}
