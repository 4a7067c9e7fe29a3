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

/* Where a shard is read from, and its trailer's tags. */
typedef struct ShardSrc
{
	Store	   *store;
	char	   *key;
	uint8_t    *trailer;
} ShardSrc;

/*
 * Find shard i (the first provider that lists it, or one that could not be
 * listed) and check its size and footer; the trailer's tags are kept.
 */
static void
open_shard(XPool *pool, const XObject *o, int shard, uint64_t shard_data_len, uint64_t nstripes,
		   int tag_len, ShardSrc *src, ObjectCheck *check)
{
	char		hex[33];
	uint64_t	trailer_len = nstripes * tag_len + FOOTER_SIZE;
	uint64_t	want = shard_data_len + trailer_len;
	int			format = o->key_version;
	char	   *why = NULL;

	id_hex(o->id, hex);
	src->key = xprintf("ds/%.2s/%s.%d", hex, hex, shard);
	src->trailer = xmalloc(trailer_len);
	for (int s = 0; s < pool->nstores && src->store == NULL; s++)
	{
		Store	   *st = &pool->stores[s];
		uint64_t	size = UINT64_MAX;
		char	   *err = NULL;

		/* a provider that could be listed and does not list it has it not */
		if (st->listed && !store_has(st, src->key, &size))
			continue;
		if (size != UINT64_MAX && size != want)
		{
			check->state[shard] = XSHARD_CORRUPT;
			check->detail[shard] = xprintf("%llu bytes instead of %llu", (unsigned long long) size,
										   (unsigned long long) want);
			return;
		}
		if (store_read(st, src->key, shard_data_len, trailer_len, src->trailer, &err))
			src->store = st;
		else
		{
			free(why);
			why = err;
		}
	}
	if (src->store == NULL)
	{
		check->state[shard] = XSHARD_MISSING;
		check->detail[shard] = why ? why : xprintf("not on any provider");
		return;
	}
	free(why);
	{
		const uint8_t *f = src->trailer + nstripes * tag_len;

		if (memcmp(f, format == FORMAT_CRC ? "DESTOR01" : "DESTOR02", 8) != 0 ||
			memcmp(f + 8, o->id, CODEC_OBJID_LEN) != 0 || f[24] != shard || f[26] != o->k ||
			f[27] != o->m || get_le(f + 28, 4) != o->chunk_size ||
			get_le(f + 32, 8) != nstripes || get_le(f + 40, 8) != o->stream_size ||
			get_le(f + 48, 8) != shard_data_len || get_le(f + 56, 8) != codec_crc64(0, f, 56))
		{
			check->state[shard] = XSHARD_CORRUPT;
			check->detail[shard] = xprintf("its footer is not this shard's");
			src->store = NULL;
		}
	}
}

/* The opened blocks of the stream, handed to the sink as they come. */
typedef struct BlockState
{
	const XObject *o;
	codec_cipher *cipher;
	size_t		nblocks;
	size_t		next;			/* next block to open */
	uint64_t	base;			/* stream offset of pending[0] */
	Buf			pending;		/* stream bytes not opened yet */
	uint64_t	out;			/* plaintext bytes handed over */
	uint8_t    *opened;			/* scratch: one block */
	uint8_t    *inflated;
} BlockState;

static void
block_bounds(const BlockState *bs, size_t b, uint64_t *start, uint64_t *end)
{
	const XObject *o = bs->o;

	if (o->block_ends)
	{
		*start = b ? o->block_ends[b - 1] : 0;
		*end = o->block_ends[b];
	}
	else
	{
		*start = (uint64_t) b * o->chunk_size;
		*end = *start + o->chunk_size < o->stream_size ? *start + o->chunk_size : o->stream_size;
	}
}

/* open every block that the pending stream bytes hold whole; NULL or why not */
static char *
open_blocks(BlockState *bs, ObjectSink sink, void *arg)
{
	const XObject *o = bs->o;
	size_t		used = 0;

	while (bs->next < bs->nblocks)
	{
		uint64_t	start,
					end;
		size_t		clen,
					olen;
		const uint8_t *data;
		size_t		b = bs->next;

		block_bounds(bs, b, &start, &end);
		if (end > bs->base + bs->pending.len)
			break;
		if (start < bs->base + used || end < start + CODEC_TAG_LEN || end > o->stream_size ||
			end - start > o->chunk_size + (uint64_t) CODEC_TAG_LEN)
			return xprintf("block %zu is malformed", b);
		used = end - bs->base;
		clen = end - start;
		olen = clen - CODEC_TAG_LEN;
		if (codec_cipher_decrypt_block(bs->cipher, b, b == bs->nblocks - 1,
									   (const uint8_t *) bs->pending.data + (start - bs->base),
									   clen, bs->opened) != 0)
			return xprintf("block %zu does not authenticate (AES-GCM)", b);
		data = bs->opened;
		if (o->compressed)
		{
			if (olen < 1)
				return xprintf("block %zu is malformed", b);
			olen--;
			if (bs->opened[olen] == 1)
			{
				size_t		dlen;

				if (codec_decompress(bs->opened, olen, bs->inflated, o->block_size, &dlen) != 0)
					return xprintf("block %zu does not decompress", b);
				data = bs->inflated;
				olen = dlen;
			}
		}
		if (bs->out + olen > o->size)
			return xprintf("the object holds more than its %llu bytes", (unsigned long long) o->size);
		if (sink && olen > 0)
			sink(arg, data, olen);
		bs->out += olen;
		bs->next++;
	}
	/* drop what was opened */
	if (used > 0)
	{
		memmove(bs->pending.data, bs->pending.data + used, bs->pending.len - used);
		bs->pending.len -= used;
		bs->base += used;
	}
	return NULL;
}

/* stripes read at a time from each shard: about 8 MiB a shard */
#define WINDOW_BYTES	(8 * 1024 * 1024)

bool
object_stream(XPool *pool, const XObject *o, ObjectCheck *check, ObjectSink sink, void *arg)
{
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
				window;
	uint8_t		dek[CODEC_KEY_LEN];
	codec_chunk_mac *mac = NULL;
	codec_rs   *rs = NULL;
	ShardSrc	src[CODEC_RS_MAX_SHARDS] = {{0}};
	uint8_t    *win[CODEC_RS_MAX_SHARDS] = {0};
	uint8_t    *bufs[CODEC_RS_MAX_SHARDS] = {0};
	BlockState	bs = {0};

	memset(check, 0, sizeof(ObjectCheck));
	check->nshards = n;
	if (k < 1 || k > CODEC_RS_MAX_DATA || m < 0 || m > CODEC_RS_MAX_PARITY || o->chunk_size == 0 ||
		o->block_size == 0 || (format != FORMAT_CRC && format != FORMAT_MAC))
	{
		check->error = xprintf("its metadata is malformed (geometry %d+%d, format %d)", k, m, format);
		return false;
	}
	if (!unwrap_key(pool, o, dek, &check->error))
		return false;
	bs.o = o;
	bs.cipher = codec_cipher_create(dek, o->id);
	if (format == FORMAT_MAC)
		mac = codec_chunk_mac_create(dek, o->id);
	codec_secure_zero(dek, sizeof(dek));
	rs = codec_rs_create(k, m);
	if (bs.cipher == NULL || rs == NULL || (format == FORMAT_MAC && mac == NULL))
		fatal(EXIT_DATA, "out of memory");

	/* the geometry (object_layout.c, object_geometry) */
	stripe_size = (uint64_t) k * o->chunk_size;
	nstripes = (o->stream_size + stripe_size - 1) / stripe_size;
	if (nstripes == 0)
		nstripes = 1;
	rem = o->stream_size - (nstripes - 1) * stripe_size;
	last_chunk = (rem + k - 1) / k;
	shard_data_len = (nstripes - 1) * o->chunk_size + last_chunk;
	window = WINDOW_BYTES / o->chunk_size ? WINDOW_BYTES / o->chunk_size : 1;
	/* tests make windows small to cross their edges with small objects */
	if (getenv("DESTOR_EXPORT_WINDOW_STRIPES") && atoi(getenv("DESTOR_EXPORT_WINDOW_STRIPES")) > 0)
		window = (uint64_t) atoi(getenv("DESTOR_EXPORT_WINDOW_STRIPES"));
	if (o->block_ends)
		bs.nblocks = o->nblock_ends;
	else
		bs.nblocks = o->stream_size ? (o->stream_size + o->chunk_size - 1) / o->chunk_size : 1;
	bs.opened = xmalloc((size_t) o->chunk_size + 1);
	bs.inflated = xmalloc((size_t) o->block_size + 1);

	for (int i = 0; i < n; i++)
	{
		open_shard(pool, o, i, shard_data_len, nstripes, tag_len, &src[i], check);
		win[i] = xmalloc(window * o->chunk_size);
		bufs[i] = xmalloc(o->chunk_size);
	}

	/* a window of stripes at a time: chunks checked against their tags, missing ones rebuilt */
	check->readable = true;
	for (uint64_t s0 = 0; s0 < nstripes; s0 += window)
	{
		uint64_t	s1 = s0 + window < nstripes ? s0 + window : nstripes;
		size_t		wlen = (size_t) ((s1 - 1 - s0) * o->chunk_size + (s1 == nstripes ? last_chunk : o->chunk_size));

		for (int i = 0; i < n; i++)
		{
			char	   *err = NULL;

			if (src[i].store == NULL)
				continue;
			if (!store_read(src[i].store, src[i].key, s0 * o->chunk_size, wlen, win[i], &err))
			{
				check->state[i] = XSHARD_MISSING;
				check->detail[i] = err;
				src[i].store = NULL;
			}
		}
		for (uint64_t s = s0; s < s1; s++)
		{
			size_t		cl = s == nstripes - 1 ? last_chunk : o->chunk_size;
			bool		present[CODEC_RS_MAX_SHARDS] = {0};
			int			good = 0;

			for (int i = 0; i < n; i++)
			{
				const uint8_t *chunk = win[i] + (s - s0) * o->chunk_size;
				const uint8_t *tag = src[i].trailer + s * tag_len;
				bool		ok;

				if (src[i].store == NULL)
					continue;
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
			if (!check->readable)
				continue;		/* only checking the rest */
			if (good < k || (good < n && codec_rs_reconstruct(rs, cl, bufs, present) != 0))
			{
				check->error = xprintf("stripe %llu has %d good chunks of the %d needed",
									   (unsigned long long) s, good, k);
				check->readable = false;
				continue;
			}
			for (int i = 0; i < k; i++)
			{
				uint64_t	at = s * stripe_size + (uint64_t) i * cl;

				if (at < o->stream_size)
					buf_put(&bs.pending, bufs[i],
							at + cl <= o->stream_size ? cl : (size_t) (o->stream_size - at));
			}
			check->error = open_blocks(&bs, sink, arg);
			if (check->error)
				check->readable = false;
		}
	}
	if (check->readable && (bs.next != bs.nblocks || bs.out != o->size))
	{
		check->error = xprintf("the object holds %llu bytes in %zu blocks, not %llu in %zu",
							   (unsigned long long) bs.out, bs.next,
							   (unsigned long long) o->size, bs.nblocks);
		check->readable = false;
	}

	for (int i = 0; i < n; i++)
	{
		free(src[i].key);
		free(src[i].trailer);
		free(win[i]);
		free(bufs[i]);
	}
	free(bs.pending.data);
	free(bs.opened);
	free(bs.inflated);
	codec_cipher_free(bs.cipher);
	codec_chunk_mac_free(mac);
	codec_rs_free(rs);
	return check->readable;
}

static void
collect(void *arg, const uint8_t *data, size_t len)
{
	buf_put((Buf *) arg, data, len);
}

uint8_t *
object_read(XPool *pool, const XObject *o, size_t *len, ObjectCheck *check)
{
	Buf			out = {0};

	if (!object_stream(pool, o, check, collect, &out))
	{
		free(out.data);
		return NULL;
	}
	*len = out.len;
	return out.data ? (uint8_t *) out.data : xmalloc(1);
}
