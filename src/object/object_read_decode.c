/*
 * object_read_decode.c — stage 3 of a read: opening blocks.  The fetched
 * ciphertext of a window (a WindowSource: per shard, a buffer of shard
 * bytes) is authenticated and decrypted block by block, decompressed when
 * the block was stored compressed, and the wanted bytes put in the
 * caller's buffer.  A block stored raw and wanted whole opens straight
 * into its place there, on two threads for large windows (pure C tasks, no
 * palloc, no ereport); anything else opens into scratch and is copied.
 * Opening block b writes only b's bytes: never a cached block's, never a
 * neighbour's.  Opened blocks fill the shared cache when the read may.
 */
#include "postgres.h"

#include "destor/cache.h"
#include "destor/object.h"
#include "object_read_internal.h"

/* Copy the stream bytes [cs, ce) out of per-data-shard buffers. */
static void
assemble(ObjectReader *r, uint64 cs, uint64 ce, uint8 **buf, uint64 *buf_lo, uint8 *out)
{
	uint64		s0 = cs / r->stripe_size;
	uint64		s1 = (ce - 1) / r->stripe_size;

	for (uint64 s = s0; s <= s1; s++)
	{
		uint64		cl = chunk_len(r, s);

		for (int d = 0; d < r->k; d++)
		{
			uint64		a = s * r->stripe_size + d * cl;
			uint64		b = a + cl;
			uint64		shard_off;

			a = Max(a, cs);
			b = Min(b, ce);
			if (a >= b)
				continue;
			shard_off = s * r->meta->chunk_size + (a - (s * r->stripe_size + d * cl));
			memcpy(out + (a - cs), buf[d] + (shard_off - buf_lo[d]), b - a);
		}
	}
}

/*
 * The sealed bytes [a, e) of the stream: in place when they lie in one
 * chunk, else gathered into r->sealed.
 */
static const uint8 *
sealed_bytes(ObjectReader *r, WindowSource *src, uint64 a, uint64 e)
{
	uint64		s = a / r->stripe_size;
	uint64		cl = chunk_len(r, s);
	uint64		inner = a - s * r->stripe_size;
	int			d = (int) (inner / cl);
	uint64		off = inner % cl;

	if (off + (e - a) <= cl)
		return src->buf[d] + (s * r->meta->chunk_size + off - src->lo[d]);
	assemble(r, a, e, src->buf, src->lo, r->sealed);
	return r->sealed;
}

/*
 * Opening blocks in parallel.  The bulk of a large read is blocks that are
 * wanted whole, stored raw and lying in one chunk: they open straight from
 * the shard buffer into dst.  Two threads take one contiguous half each;
 * every other block (window edges, compressed or chunk-spanning blocks) is
 * left to the sequential pass.  Like the sequential pass, a task writes
 * only the bytes of dst that belong to the blocks it opens (a compressed
 * object's flag byte goes to a variable), so the two halves, the cached
 * blocks and the window's neighbours never touch each other's bytes.
 * Tasks are pure C: no palloc, no ereport.
 */
#define PARALLEL_OPEN_MIN_BLOCKS 16

typedef struct OpenTask
{
	ObjectReader *r;
	codec_cipher *cipher;
	WindowSource *src;
	uint64		b0;				/* first block of the window */
	uint64		from_block;		/* this task's blocks, inclusive */
	uint64		to_block;
	const bool *skip;			/* per window block: supplied by the cache */
	uint64		offset;
	uint64		len;
	char	   *dst;
	bool	   *done;			/* per window block: opened by a task */
	bool		failed;
} OpenTask;

static void
open_task_run(void *arg)
{
	OpenTask   *t = (OpenTask *) arg;
	ObjectReader *r = t->r;
	ObjectMeta *meta = r->meta;
	uint64		bs = meta->block_size;

	for (uint64 b = t->from_block; b <= t->to_block; b++)
	{
		uint64		a = block_cstart(r, b);
		uint64		e = block_cend(r, b);
		bool		last = (b == (uint64) meta->nblocks - 1);
		uint64		plen = last ? meta->size - b * bs : bs;
		uint64		s = a / r->stripe_size;
		uint64		cl = chunk_len(r, s);
		uint64		inner = a - s * r->stripe_size;
		int			d = (int) (inner / cl);
		uint64		off = inner % cl;
		char	   *out = t->dst + (b * bs - t->offset);
		uint8		flag = 0;

		if ((t->skip && t->skip[b - t->b0]) ||
			e - a != plen + r->block_overhead || b * bs < t->offset ||
			b * bs + plen > t->offset + t->len || off + (e - a) > cl)
			continue;
		if (codec_cipher_decrypt_block_split(t->cipher, b, last,
											 t->src->buf[d] + (s * meta->chunk_size + off - t->src->lo[d]),
											 e - a, (uint8 *) out, plen, &flag) != 0 ||
			flag != 0)
		{
			t->failed = true;
			return;
		}
		t->done[b - t->b0] = true;
	}
}

/*
 * Blocks per round of the helper threads: between rounds the backend lets
 * the transfers read ahead move, and starts the window after next when the
 * next one is ending (reader_ahead_poll).
 */
#define PARALLEL_OPEN_ROUND_BLOCKS 16

/* Returns the per-block "done" flags, or NULL when nothing was done. */
static bool *
open_blocks_parallel(ObjectReader *r, uint64 b0, uint64 b1, const bool *skip, WindowSource *src,
					 uint64 offset, uint64 len, char *dst)
{
	bool	   *done;
	OpenTask	tasks[2];
	void	   *args[2] = {&tasks[0], &tasks[1]};

	if (b1 - b0 + 1 < PARALLEL_OPEN_MIN_BLOCKS)
		return NULL;
	done = palloc0(sizeof(bool) * (b1 - b0 + 1));
	for (uint64 r0 = b0; r0 <= b1; r0 += PARALLEL_OPEN_ROUND_BLOCKS)
	{
		uint64		r1 = Min(b1, r0 + PARALLEL_OPEN_ROUND_BLOCKS - 1);
		uint64		mid = r0 + (r1 - r0 + 1) / 2;

		for (int i = 0; i < 2; i++)
		{
			tasks[i].r = r;
			tasks[i].cipher = i == 0 ? r->cipher : r->cipher2;
			tasks[i].src = src;
			tasks[i].b0 = b0;
			tasks[i].from_block = i == 0 ? r0 : mid;
			tasks[i].to_block = i == 0 ? mid - 1 : r1;
			tasks[i].skip = skip;
			tasks[i].offset = offset;
			tasks[i].len = len;
			tasks[i].dst = dst;
			tasks[i].done = done;
			tasks[i].failed = false;
		}
		codec_run_parallel(open_task_run, args, 2);
		if (tasks[0].failed || tasks[1].failed)
		{
			/* let the sequential pass find and report what is wrong */
			pfree(done);
			return NULL;
		}
		provider_poll();
		reader_ahead_poll(r);
	}
	return done;
}

/*
 * The decode stage of a window: open every block of [b0, b1] that the cache
 * did not supply (skip: per window block, NULL for none) from the window's
 * fetched shards, and put its wanted bytes in dst.  A block wanted whole and
 * stored raw opens straight into its place in dst; any other block opens
 * into scratch and its wanted part is copied.  Either way, opening block b
 * writes only b's bytes of dst: never a cached block's, never a neighbour's
 * (the flag byte of a compressed object's block goes to a variable).
 * False on an authentication failure when !raise.
 */
bool
reader_open_blocks(ObjectReader *r, uint64 b0, uint64 b1, const bool *skip, WindowSource *src,
			uint64 offset, uint64 len, char *dst, bool raise)
{
	ObjectMeta *meta = r->meta;
	uint64		bs = meta->block_size;
	bool	   *done = open_blocks_parallel(r, b0, b1, skip, src, offset, len, dst);

	if (done && r->use_cache && r->cache_fill)
	{
		/* the helper threads opened these in place: whole blocks in dst */
		for (uint64 b = b0; b <= b1; b++)
			if (done[b - b0])
				cache_insert(meta->id, b, dst + (b * bs - offset),
							 (uint32) (b == (uint64) meta->nblocks - 1 ? meta->size - b * bs : bs));
	}

	for (uint64 b = b0; b <= b1; b++)
	{
		uint64		a = block_cstart(r, b);
		uint64		e = block_cend(r, b);
		bool		last = (b == (uint64) meta->nblocks - 1);
		uint64		plen = last ? meta->size - b * bs : bs;
		uint64		from = Max(offset, b * bs);
		uint64		to = Min(offset + len, b * bs + plen);
		const uint8 *plain;
		uint8	   *out = r->scratch;
		uint8		flag = 0;
		size_t		outlen;
		bool		in_place;

		if ((done && done[b - b0]) || (skip && skip[b - b0]))
			continue;
		provider_poll();		/* what is read ahead keeps coming meanwhile */
		if ((b - b0) % 16 == 15)
			reader_ahead_poll(r);

		if (e < a + CODEC_TAG_LEN + (meta->compressed ? 1 : 0) ||
			e - a > bs + r->block_overhead)
			goto corrupt;

		/* a block stored raw and wanted whole opens straight into dst */
		in_place = (e - a == plen + r->block_overhead) && from == b * bs &&
			to == b * bs + plen;
		if (in_place)
			out = (uint8 *) dst + (from - offset);

		/* the payload without its flag byte into out, the flag apart */
		outlen = e - a - r->block_overhead;
		if (codec_cipher_decrypt_block_split(r->cipher, b, last, sealed_bytes(r, src, a, e),
											 e - a, out, outlen, &flag) != 0)
		{
	corrupt:
			if (!raise)
			{
				r->bytes_lied = true;
				return false;
			}
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("block %llu of object %s failed authentication",
							(unsigned long long) b, object_id_text(meta->id)),
					 errdetail("Every chunk read matches its tag, yet the ciphertext they make up does not verify, whichever shards are left out."),
					 errhint("The object cannot be recovered from the remaining shards; restore it from a backup.")));
		}
		plain = out;
		if (meta->compressed && flag == 1)
		{
			if (in_place)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("block %llu of object %s is marked compressed but is not smaller",
								(unsigned long long) b, object_id_text(meta->id))));
			if (codec_decompress(out, outlen, r->plain, bs, &outlen) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("block %llu of object %s does not decompress",
								(unsigned long long) b, object_id_text(meta->id))));
			plain = r->plain;
		}
		else if (flag != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("block %llu of object %s has an unknown payload flag %d",
							(unsigned long long) b, object_id_text(meta->id), flag)));
		if (outlen != plen)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("block %llu of object %s has %zu bytes, expected %llu",
							(unsigned long long) b, object_id_text(meta->id), outlen,
							(unsigned long long) plen)));
		if (from < to && !in_place)
			memcpy(dst + (from - offset), plain + (from - b * bs), to - from);
		if (r->use_cache && r->cache_fill)
			cache_insert(meta->id, b, (const char *) plain, (uint32) plen);
	}
	if (done)
		pfree(done);
	return true;
}
