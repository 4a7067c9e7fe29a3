/*
 * object_write.c — writing an object from a stream with bounded memory.
 *
 * Data flows: plaintext block (64 KiB) -> optional zstd -> AES-GCM seal ->
 * stripe buffer (k chunks) -> Reed–Solomon parity -> per-shard part
 * buffers -> provider uploads, all n shards of a part in one parallel batch.
 * While one part's batch is sent, the next part is encoded into a second
 * set of buffers, and on s3 providers sent as soon as it is full, the one
 * ahead of it still going (over a WAN a part takes a round trip and its
 * bytes at the link's rate; encoding the next between batches, then
 * sending it, left every link idle for that long each part).  Memory is
 * bounded by two sets of n part buffers plus one stripe, whatever the
 * object size (one set for pools too wide for two).  A shard that fails is
 * dropped; the write fails (and cleans up) when fewer than write_quorum
 * shards survive.
 *
 * The writer also hashes the plaintext (SHA-256) as it arrives, so every
 * writer of blobs — blob_put, imports, streams — knows the content's hash
 * at the end without a second pass (ObjectMeta.sha256).
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "destor/cache.h"
#include "destor/lease.h"
#include "destor/object.h"

/* blocks of a new object copied into the shared cache as they are written */
#define WRITE_THROUGH_BLOCKS 1024

/*
 * The format new objects are written in (see object.h).  Only tests set it:
 * format 1 is kept writable so that the reading of objects written before
 * format 2 stays tested.
 */
static int	object_write_format = OBJECT_KEY_VERSION;

void
object_define_gucs(void)
{
	DefineCustomIntVariable("destor.object_format",
							"Format of new objects (2: keyed chunk tags; 1: CRC-64, for tests only).",
							NULL,
							&object_write_format, OBJECT_KEY_VERSION,
							OBJECT_FORMAT_CRC, OBJECT_FORMAT_MAC,
							PGC_SUSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("destor.spread_reads",
							 "Spreads bulk reads over every provider of a pool, in proportion to each one's rate.",
							 "When off, bulk reads take the data shards (or the k fastest shards) only: "
							 "fewer providers serve each read, at the pace of the slowest of them.",
							 &destor_spread_reads, true, PGC_USERSET, 0,
							 NULL, NULL, NULL);
}

/* blocks an object of known size is sealed before it decides to begin its
 * uploads ahead: enough to tell how it compresses */
#define EXPECT_SAMPLE_BLOCKS	4

/* room after a part for the shard trailer of objects up to a few GiB */
#define PART_SLACK (256 * 1024)

/*
 * The second set of part buffers is taken only while n of them fit in this
 * (8 shards of 8 MiB): a wider pool sends each part before it encodes the
 * next, rather than hold more than the backend's memory target allows.
 */
#define WRITER_SENDING_MAX_BYTES	((size_t) 64 * 1024 * 1024)

/* one batch of requests, one per live shard */
typedef struct WriterBatch
{
	ProviderBatch *batch;		/* NULL: none started */
	ProviderRequest *reqs;
	int		   *shard_of;
	int			nreqs;
} WriterBatch;

struct ObjectWriter
{
	MemoryContext cxt;
	ObjectMeta *meta;
	int			k;
	int			m;
	int			n;
	int			write_quorum;
	int			chunk_size;		/* one sealed full block: see object.h */
	const codec_rs *rs;
	codec_cipher *cipher;
	bool		compress;

	/* plaintext block being filled */
	uint8	   *block;
	size_t		blocklen;
	uint64		blockno;
	uint8	   *sealed;			/* scratch: payload then ciphertext of one block */
	uint8	   *payload;

	/* ciphertext stripe being filled: k chunks of chunk_size */
	uint8	   *stripe;
	size_t		stripelen;

	/* per-shard part buffers; every shard grows by the same amount */
	Provider  **providers;
	uint8	  **part;
	size_t		partlen;
	ProviderUpload **uploads;
	bool		started;		/* uploads begun (object larger than a part) */
	bool		beginning;		/* w->sending is the batch beginning them */
	uint64		expect;			/* the object's size, if known ahead (0: not) */
	uint8	  **sending_part;	/* the other set: the part being sent, or NULL */
	WriterBatch sending;		/* its batch, while it runs */
	bool		pipelined;		/* every provider s3: a part is started before
								 * the one ahead of it ended */
	bool	   *failed;
	char	  **errors;
	/* object_writer_finish_start ran: its last batch is w->sending */
	bool		finishing;
	size_t		trailer_len;

	/* per-shard chunk tags (see object.h: formats), one per stripe */
	ObjectChunkAuth *auth;
	int			tag_len;
	uint8	  **tags;
	uint64		nstripes;
	uint64		tagcap;
	uint64		shard_data_len;

	/* blocks that did not compress in a row: after a few, most blocks are
	 * stored raw without trying (random or already-compressed data) */
	int			incompressible_run;

	/* ciphertext end of each block (needed only when sizes vary) */
	uint64	   *block_ends;
	uint64		block_ends_cap;
	bool		varied;

	/* SHA-256 of the plaintext so far; freed with the writer's context */
	EVP_MD_CTX *sha256;
};

static void
writer_free_cipher(void *arg)
{
	ObjectWriter *w = (ObjectWriter *) arg;

	if (w->cipher)
		codec_cipher_free(w->cipher);
	w->cipher = NULL;
	if (w->sha256)
		EVP_MD_CTX_free(w->sha256);
	w->sha256 = NULL;
}

static int
writer_alive(ObjectWriter *w)
{
	int			alive = 0;

	for (int i = 0; i < w->n; i++)
		if (!w->failed[i])
			alive++;
	return alive;
}

/* Abort everything written so far, then raise the quorum error. */
static void
writer_fail_quorum(ObjectWriter *w)
{
	StringInfoData detail;
	char	  **names = palloc(sizeof(char *) * w->n);
	int			nbad = 0;
	int			alive = writer_alive(w);

	initStringInfo(&detail);
	for (int i = 0; i < w->n; i++)
	{
		if (!w->failed[i])
			continue;
		names[nbad++] = w->providers[i]->name;
		appendStringInfo(&detail, "%s%s", detail.len ? " " : "", w->errors[i]);
	}
	/* Shards already written are deleted by the abort of this transaction. */
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
			 errmsg("could not write enough shards to pool \"%s\": %d of %d written, write_quorum is %d",
					w->meta->pool, alive, w->n, w->write_quorum),
			 errdetail("Failed providers: %s. %s", object_name_list(names, nbad), detail.data),
			 errhint("Check the failed providers with destor.check_provider(), or lower the pool's write_quorum.")));
}

/* Mark failed shards of a finished batch; raise if quorum is lost. */
static void
writer_collect(ObjectWriter *w, ProviderRequest *reqs, int *shard_of, int nreqs)
{
	for (int r = 0; r < nreqs; r++)
	{
		int			i = shard_of[r];

		if (!reqs[r].ok && !w->failed[i])
		{
			/* given up because another part of its upload failed: its
			 * provider answers, and the upload is aborted as for a failure */
			bool		part_failed = reqs[r].upload_broken && reqs[r].upload != NULL &&
				!reqs[r].upload->given_up;

			w->failed[i] = true;
			if (reqs[r].cancelled && !part_failed)
			{
				/*
				 * Given up by a hedged write: the write quorum was durable
				 * and this provider sent nothing for long.  The shard is
				 * recorded missing (object_writer_finish), for repair; its
				 * multipart upload, if any, is not aborted now — a stalled
				 * provider would stall that too — but left to the abort of
				 * the transaction or to cleanup_orphans, which aborts
				 * unfinished uploads.
				 */
				w->errors[i] = MemoryContextStrdup(w->cxt,
												   reqs[r].upload_broken ?
												   psprintf("provider \"%s\": another part of its upload was given up",
															w->providers[i]->name) :
												   reqs[r].thin ?
												   psprintf("provider \"%s\": given up after %.0f ms, once %d other shards were stored, its bytes going out too slowly to end in time",
															w->providers[i]->name, reqs[r].latency_ms,
															w->write_quorum) :
												   psprintf("provider \"%s\": given up after %.0f ms, once %d other shards were stored",
															w->providers[i]->name, reqs[r].latency_ms,
															w->write_quorum));
				continue;
			}
			w->errors[i] = MemoryContextStrdup(w->cxt,
											   part_failed ?
											   (reqs[r].upload->broken_error ?
												psprintf("%s (another part of the same upload)",
														 reqs[r].upload->broken_error) :
												psprintf("provider \"%s\": another part of its upload failed",
														 w->providers[i]->name)) :
											   reqs[r].error ? reqs[r].error : "unknown error");
			if (w->uploads[i] && w->uploads[i]->active)
			{
				/* stop using it; the abort callback or the cleanup below discards it */
				ProviderRequest ab = {0};

				ab.provider = w->providers[i];
				ab.op = POP_UPLOAD_ABORT;
				ab.upload = w->uploads[i];
				provider_execute(&ab, 1);
				object_untrack_upload(w->uploads[i]);
			}
		}
	}
	if (writer_alive(w) < w->write_quorum)
		writer_fail_quorum(w);
}

/*
 * Start one request per live shard, for op.  The batch is tied to the
 * writer's context: an ERROR before writer_batch_end abandons it before
 * the buffers it sends from are freed.
 */
static void
writer_batch_start(ObjectWriter *w, WriterBatch *wb, ProviderOp op, uint8 **data, size_t *len)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	ProviderRequest *reqs = palloc0(sizeof(ProviderRequest) * w->n);
	int		   *shard_of = palloc(sizeof(int) * w->n);
	int			nreqs = 0;

	for (int i = 0; i < w->n; i++)
	{
		ProviderRequest *r;

		if (w->failed[i])
			continue;
		r = &reqs[nreqs];
		shard_of[nreqs++] = i;
		r->provider = w->providers[i];
		r->op = op;
		r->upload = w->uploads[i];
		r->key = w->meta->shards[i].provider ? object_shard_key(w->meta->id, i) : NULL;
		if (data)
		{
			r->data = (const char *) data[i];
			r->datalen = len[i];
		}
	}
	/* a shard still stalled once the write quorum is stored: given up, for repair */
	(void) provider_hedge_writes(reqs, nreqs, w->write_quorum);
	wb->reqs = reqs;
	wb->shard_of = shard_of;
	wb->nreqs = nreqs;
	wb->batch = provider_start(reqs, nreqs);
	MemoryContextSwitchTo(old);
}

/* Wait for a started batch to end; mark its failed shards (quorum or ERROR). */
static void
writer_batch_end(ObjectWriter *w, WriterBatch *wb)
{
	ProviderBatch *b = wb->batch;

	if (b == NULL)
		return;
	wb->batch = NULL;
	provider_finish(b);		/* stays allocated: its context's callback points at it */
	writer_collect(w, wb->reqs, wb->shard_of, wb->nreqs);
	pfree(wb->reqs);
	pfree(wb->shard_of);
}

/* Run one request per live shard, built by the caller-provided op. */
static void
writer_batch(ObjectWriter *w, ProviderOp op, uint8 **data, size_t *len)
{
	WriterBatch wb = {0};

	writer_batch_start(w, &wb, op, data, len);
	writer_batch_end(w, &wb);
}

/*
 * Start the part in w->part (lens: its length in each shard) as the batch
 * being sent, and end the batch sending the part before it: after
 * starting this one on s3 (a link keeps a request in flight while the one
 * ahead ends), before on file providers (an upload takes one part at a
 * time).  The new batch is w->sending from its start: an ERROR while the
 * one before is ended leaves it where object_writer_stop finds it.
 */
static void
writer_send_part(ObjectWriter *w, size_t *lens)
{
	WriterBatch before = w->sending;

	memset(&w->sending, 0, sizeof(WriterBatch));
	if (w->pipelined)
		writer_batch_start(w, &w->sending, POP_UPLOAD_PART, w->part, lens);
	writer_batch_end(w, &before);
	if (!w->pipelined)
		writer_batch_start(w, &w->sending, POP_UPLOAD_PART, w->part, lens);
}

/*
 * Begin each shard's multipart upload.  The batch runs as w->sending, so
 * that it moves while the writer encodes (writer_append_stream polls it)
 * and an ERROR finds it; writer_uploads_begun ends it before the first
 * part is sent.
 */
static void
writer_begin_uploads(ObjectWriter *w)
{
	Assert(!w->started && w->sending.batch == NULL);
	for (int i = 0; i < w->n; i++)
	{
		w->uploads[i] = provider_upload_create(w->providers[i], object_shard_key(w->meta->id, i));
		object_track_upload(w->uploads[i]);
	}
	writer_batch_start(w, &w->sending, POP_UPLOAD_BEGIN, NULL, NULL);
	w->started = true;
	w->beginning = true;
}

/* The uploads are begun, or failed (quorum or ERROR): parts may go. */
static void
writer_uploads_begun(ObjectWriter *w)
{
	if (!w->started)
		writer_begin_uploads(w);
	if (w->beginning)
	{
		w->beginning = false;
		writer_batch_end(w, &w->sending);
	}
}

/*
 * A full part: send it.  With two sets of buffers, the part goes out in a
 * batch that runs while the next one is encoded; the batch before it is
 * ended once this one is started (s3: a link keeps a request in flight
 * while the one ahead ends) or before (file uploads take one part at a
 * time), and its buffers take the next part.  With one set, the part is
 * sent before encoding goes on.
 */
static void
writer_flush_parts(ObjectWriter *w)
{
	size_t	   *lens = palloc(sizeof(size_t) * w->n);

	if (!w->started || w->beginning)
	{
		/* the first part: the uploads must be begun, and a second set of
		 * buffers is taken if the pool is narrow enough */
		writer_uploads_begun(w);
		if ((size_t) w->n * (OBJECT_PART_SIZE + w->chunk_size + PART_SLACK) <= WRITER_SENDING_MAX_BYTES)
		{
			w->pipelined = true;
			for (int i = 0; i < w->n; i++)
				if (w->providers[i]->type != PROVIDER_S3)
					w->pipelined = false;
			w->sending_part = palloc(sizeof(uint8 *) * w->n);
			for (int i = 0; i < w->n; i++)
				w->sending_part[i] = provider_alloc_aligned(w->cxt, OBJECT_PART_SIZE + w->chunk_size + PART_SLACK);
		}
	}
	/* parts are exactly OBJECT_PART_SIZE (aligned for direct I/O); the
	 * chunk bytes beyond it start the next part */
	for (int i = 0; i < w->n; i++)
		lens[i] = OBJECT_PART_SIZE;
	if (w->sending_part == NULL)
	{
		writer_batch(w, POP_UPLOAD_PART, w->part, lens);
		for (int i = 0; i < w->n; i++)
			memmove(w->part[i], w->part[i] + OBJECT_PART_SIZE, w->partlen - OBJECT_PART_SIZE);
	}
	else
	{
		/* the upload reads [0, OBJECT_PART_SIZE) of each buffer; the
		 * chunk bytes beyond it are copied out while it runs */
		writer_send_part(w, lens);
		for (int i = 0; i < w->n; i++)
		{
			uint8	   *full = w->part[i];

			memcpy(w->sending_part[i], full + OBJECT_PART_SIZE, w->partlen - OBJECT_PART_SIZE);
			w->part[i] = w->sending_part[i];
			w->sending_part[i] = full;
		}
	}
	w->partlen -= OBJECT_PART_SIZE;
	pfree(lens);
}

/* Encode the stripe in w->stripe with chunks of chunklen bytes. */
static void
writer_encode_stripe(ObjectWriter *w, size_t chunklen)
{
	uint8	   *data[CODEC_RS_MAX_DATA];
	uint8	   *parity[CODEC_RS_MAX_PARITY];


	/* zero padding of a short last stripe */
	if (w->stripelen < (size_t) w->k * chunklen)
		memset(w->stripe + w->stripelen, 0, w->k * chunklen - w->stripelen);

	for (int i = 0; i < w->k; i++)
		data[i] = w->stripe + i * chunklen;
	for (int j = 0; j < w->m; j++)
		parity[j] = w->part[w->k + j] + w->partlen;
	codec_rs_encode(w->rs, chunklen, data, parity);
	for (int i = 0; i < w->k; i++)
		memcpy(w->part[i] + w->partlen, data[i], chunklen);

	if (w->nstripes == w->tagcap)
	{
		w->tagcap *= 2;
		for (int i = 0; i < w->n; i++)
			w->tags[i] = repalloc_huge(w->tags[i], (size_t) w->tag_len * w->tagcap);
	}
	for (int i = 0; i < w->n; i++)
		object_chunk_tag(w->auth, i, w->nstripes, w->part[i] + w->partlen, chunklen,
						 w->tags[i] + (size_t) w->tag_len * w->nstripes);

	w->nstripes++;
	w->partlen += chunklen;
	if (w->partlen >= OBJECT_PART_SIZE)
		writer_flush_parts(w);
	w->shard_data_len += chunklen;
	w->stripelen = 0;
}

static void
writer_append_stream(ObjectWriter *w, const uint8 *data, size_t len)
{
	size_t		stripe_size = (size_t) w->k * w->chunk_size;

	/* the part being sent moves while this one is encoded, and so does
	 * the last batch of an object finished before it (a table's previous
	 * segment: object_writer_finish_start) */
	provider_poll();
	while (len > 0)
	{
		size_t		take = Min(len, stripe_size - w->stripelen);

		memcpy(w->stripe + w->stripelen, data, take);
		w->stripelen += take;
		data += take;
		len -= take;
		w->meta->stream_size += take;
		if (w->stripelen == stripe_size)
			writer_encode_stripe(w, w->chunk_size);
	}
}

static void
writer_seal_block(ObjectWriter *w, bool last)
{
	const uint8 *payload = w->block;
	size_t		payloadlen = w->blocklen;
	size_t		expected = OBJECT_BLOCK_SIZE + CODEC_TAG_LEN;

	/* write-through: fresh data reads local; not for bulk (first 64 MiB) */
	if (w->blockno < WRITE_THROUGH_BLOCKS && w->blocklen > 0)
		cache_insert(w->meta->id, w->blockno, (const char *) w->block, (uint32) w->blocklen);

	if (w->compress)
	{
		/* the last payload byte says how the block is stored: 0 raw, 1 zstd
		 * (last, so a raw block opens straight into the reader's buffer) */
		bool		try = w->blocklen > 0 &&
			(w->incompressible_run < 4 || w->blockno % 32 == 0);
		size_t		clen = try ?
			codec_compress(w->block, w->blocklen, w->payload,
						   codec_compress_bound(OBJECT_BLOCK_SIZE), 1) : 0;

		if (try)
			w->incompressible_run = clen > 0 ? 0 : w->incompressible_run + 1;
		if (clen > 0)
			w->payload[clen] = 1;
		else
		{
			memcpy(w->payload, w->block, w->blocklen);
			clen = w->blocklen;
			w->payload[clen] = 0;
		}
		payload = w->payload;
		payloadlen = clen + 1;
		expected += 1;
	}

	if (codec_cipher_encrypt_block(w->cipher, w->blockno, last, payload, payloadlen, w->sealed) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not encrypt block %llu", (unsigned long long) w->blockno)));
	writer_append_stream(w, w->sealed, payloadlen + CODEC_TAG_LEN);

	if (!last && payloadlen + CODEC_TAG_LEN != expected)
		w->varied = true;
	if (w->blockno == w->block_ends_cap)
	{
		w->block_ends_cap *= 2;
		w->block_ends = repalloc_huge(w->block_ends, sizeof(uint64) * w->block_ends_cap);
	}
	w->block_ends[w->blockno] = w->meta->stream_size;
	w->blockno++;
	w->blocklen = 0;

	/*
	 * The size known ahead (object_writer_expect), and the first blocks
	 * say how well it compresses: if its shards will not fit one part, the
	 * uploads are begun now, so that the begins' round trips pass while the
	 * first part is encoded.  A blob that compresses into one part keeps
	 * its single PUT a shard.
	 */
	if (w->expect > 0 && !w->started && !last && w->blockno == EXPECT_SAMPLE_BLOCKS)
	{
		double		ratio = (double) w->meta->stream_size /
			((double) EXPECT_SAMPLE_BLOCKS * OBJECT_BLOCK_SIZE);

		if ((double) w->expect * ratio / w->k > (double) OBJECT_PART_SIZE)
			writer_begin_uploads(w);
	}
}

ObjectWriter *
object_writer_create(Pool *pool, bool compress)
{
	/* in the (sub)transaction's context: a failed write in a savepoint or an
	 * exception block gives its memory back when that one aborts */
	MemoryContext cxt;
	MemoryContext old;
	ObjectWriter *w;
	MemoryContextCallback *cb;
	ObjectMeta *meta;
	uint8		master[CODEC_KEY_LEN];
	uint8		dek[CODEC_KEY_LEN];
	uint8		aad[CODEC_OBJID_LEN + 4];
	char	  **names;

	/* may this database write to the pool (read-only; the writer lease)? */
	lease_check_write(pool);

	cxt = AllocSetContextCreate(CurTransactionContext, "destor object writer",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	w = palloc0(sizeof(ObjectWriter));
	cb = palloc0(sizeof(MemoryContextCallback));
	meta = palloc0(sizeof(ObjectMeta));
	w->cxt = cxt;
	w->meta = meta;
	w->k = pool->data_shards;
	w->m = pool->parity_shards;
	w->n = w->k + w->m;
	w->write_quorum = pool->write_quorum;
	w->compress = compress;
	w->chunk_size = OBJECT_BLOCK_SIZE + CODEC_TAG_LEN + (compress ? 1 : 0);
	w->rs = object_rs(w->k, w->m);

	/* identity and keys */
	if (codec_random_bytes(meta->id, CODEC_OBJID_LEN) != 0 ||
		codec_random_bytes(dek, CODEC_KEY_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a new object")));
	meta->id[6] = (meta->id[6] & 0x0f) | 0x40;	/* a version-4 UUID */
	meta->id[8] = (meta->id[8] & 0x3f) | 0x80;
	object_id_claim(meta->id);	/* under this database's namespace */

	keys_load_master(master, meta->key_id);
	meta->key_version = object_write_format;
	memcpy(aad, meta->id, CODEC_OBJID_LEN);
	aad[CODEC_OBJID_LEN] = 0;
	aad[CODEC_OBJID_LEN + 1] = 0;
	aad[CODEC_OBJID_LEN + 2] = 0;
	aad[CODEC_OBJID_LEN + 3] = (uint8) object_write_format;
	if (codec_key_wrap(master, aad, sizeof(aad), dek, meta->wrapped_key) != 0)
	{
		codec_secure_zero(master, sizeof(master));
		codec_secure_zero(dek, sizeof(dek));
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not wrap the data key of a new object")));
	}
	codec_secure_zero(master, sizeof(master));

	cb->func = writer_free_cipher;
	cb->arg = w;
	MemoryContextRegisterResetCallback(cxt, cb);
	w->cipher = codec_cipher_create(dek, meta->id);
	w->auth = object_chunk_auth_from_key(meta, dek);
	codec_secure_zero(dek, sizeof(dek));
	w->sha256 = EVP_MD_CTX_new();
	if (w->sha256 != NULL && EVP_DigestInit_ex(w->sha256, EVP_sha256(), NULL) != 1)
	{
		EVP_MD_CTX_free(w->sha256);
		w->sha256 = NULL;
	}
	if (w->cipher == NULL || w->auth == NULL || w->sha256 == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));

	meta->pool = pstrdup(pool->name);
	meta->block_size = OBJECT_BLOCK_SIZE;
	meta->chunk_size = w->chunk_size;
	meta->data_shards = w->k;
	meta->parity_shards = w->m;
	meta->compressed = compress;
	meta->shards = palloc0(sizeof(ObjectShard) * w->n);

	/* placement: n distinct providers the pool's policy allows */
	names = palloc(sizeof(char *) * w->n);
	placement_choose(meta->id, pool, names);
	w->providers = palloc(sizeof(Provider *) * w->n);
	for (int i = 0; i < w->n; i++)
	{
		meta->shards[i].provider = pstrdup(names[i]);
		w->providers[i] = provider_lookup_by_name(names[i], false);
	}

	/* From here on, an abort of this transaction deletes whatever was written. */
	object_track_written(meta);

	w->block = palloc(OBJECT_BLOCK_SIZE);
	w->payload = palloc(codec_compress_bound(OBJECT_BLOCK_SIZE) + 1);
	w->sealed = palloc(codec_compress_bound(OBJECT_BLOCK_SIZE) + 1 + CODEC_TAG_LEN);
	w->stripe = palloc((size_t) w->k * w->chunk_size);
	w->part = palloc(sizeof(uint8 *) * w->n);
	w->uploads = palloc0(sizeof(ProviderUpload *) * w->n);
	w->failed = palloc0(sizeof(bool) * w->n);
	w->errors = palloc0(sizeof(char *) * w->n);
	w->tag_len = meta->key_version == OBJECT_FORMAT_CRC ? (int) sizeof(uint64) : CODEC_CHUNK_TAG_LEN;
	w->tags = palloc(sizeof(uint8 *) * w->n);
	w->tagcap = 64;
	for (int i = 0; i < w->n; i++)
	{
		w->part[i] = provider_alloc_aligned(cxt, OBJECT_PART_SIZE + w->chunk_size + PART_SLACK);
		w->tags[i] = palloc((size_t) w->tag_len * w->tagcap);
	}
	w->block_ends_cap = 64;
	w->block_ends = palloc(sizeof(uint64) * w->block_ends_cap);

	MemoryContextSwitchTo(old);
	return w;
}

void
object_writer_write(ObjectWriter *w, const char *data, size_t len)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);

	if (len > 0 && w->sha256 != NULL && EVP_DigestUpdate(w->sha256, data, len) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the SHA-256 of a new object")));
	while (len > 0)
	{
		size_t		take;

		/* a full block is sealed only once we know it is not the last */
		if (w->blocklen == OBJECT_BLOCK_SIZE)
		{
			CHECK_FOR_INTERRUPTS();
			writer_seal_block(w, false);
		}
		take = Min(len, OBJECT_BLOCK_SIZE - w->blocklen);
		memcpy(w->block + w->blocklen, data, take);
		w->blocklen += take;
		w->meta->size += take;
		data += take;
		len -= take;
	}
	MemoryContextSwitchTo(old);
}

/*
 * object_writer_stop — a writer that will not be finished, whose memory
 * stays until its transaction ends (a blob descriptor broken by an ERROR
 * in a savepoint): the part in flight is given up now, rather than sent on
 * by every later turn of the multi handle, and the part buffers go back.
 * What was written is deleted with the transaction, as for any writer not
 * finished.
 */
void
object_writer_stop(ObjectWriter *w)
{
	WriterBatch *wb = &w->sending;

	if (wb->batch != NULL)
		provider_abandon(wb->batch);
	wb->batch = NULL;
	for (int i = 0; i < w->n; i++)
	{
		if (w->part[i] != NULL)
			provider_free_aligned(w->part[i]);
		w->part[i] = NULL;
		if (w->sending_part != NULL && w->sending_part[i] != NULL)
			provider_free_aligned(w->sending_part[i]);
		if (w->sending_part != NULL)
			w->sending_part[i] = NULL;
	}
}

/*
 * object_writer_expect — the caller knows the object's size ahead (a file,
 * a bytea).  If, by how its first blocks compress, its shards will not fit
 * one part, their multipart uploads are begun then rather than when the
 * first part is full (writer_seal_block): each begin's round trip (a far
 * provider's is the longest) passes while that part is encoded.  An object
 * that compresses further than its first blocks did still ends as an
 * upload of one part.  Call before the first write.
 */
void
object_writer_expect(ObjectWriter *w, uint64 size)
{
	Assert(w->meta->size == 0);
	w->expect = size;
}

/*
 * object_writer_skip_sha256 — this object's content hash is not wanted
 * (table segments: their chunks are authenticated, and nobody asks for a
 * segment's SHA-256): spare the CPU.  Call before the first write.
 */
void
object_writer_skip_sha256(ObjectWriter *w)
{
	Assert(w->meta->size == 0);
	if (w->sha256)
		EVP_MD_CTX_free(w->sha256);
	w->sha256 = NULL;
}

/*
 * object_writer_finish_start — the object is complete: seal its last block,
 * append each shard's trailer and start the last batch (the PUTs of an
 * object of one part, or its last part), which runs on while the caller
 * works: a table's segment goes out while the next one is encoded, where
 * waiting for it left the CPU idle for the uploads' time and the links idle
 * for the next segment's encoding.  The caller keeps polling
 * (provider_poll: object_writer_write does) and ends it with
 * object_writer_finish_end.  If the transaction or subtransaction ends
 * first, the batch is abandoned with the writer's memory and what it wrote
 * is deleted, as for any writer not finished.  Returns the memory its
 * buffers hold until the end: the bytes the batch sends, in whole huge
 * pages.
 */
size_t
object_writer_finish_start(ObjectWriter *w)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	size_t		trailer_len;
	size_t	   *lens = palloc(sizeof(size_t) * w->n);
	ObjectMeta *meta = w->meta;
	ObjectGeometry g = {0};

	Assert(!w->finishing);

	writer_seal_block(w, true);
	if (w->sha256 != NULL)
	{
		unsigned int mdlen = 0;

		if (EVP_DigestFinal_ex(w->sha256, meta->sha256, &mdlen) != 1 ||
			mdlen != OBJECT_SHA256_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not compute the SHA-256 of a new object")));
		meta->has_sha256 = true;
	}
	if (w->stripelen > 0)
		writer_encode_stripe(w, (w->stripelen + w->k - 1) / w->k);

	/* append each shard's trailer to its last part */
	trailer_len = w->nstripes * w->tag_len + OBJECT_FOOTER_SIZE;
	g.stripe_size = (uint64) w->k * w->chunk_size;
	g.nstripes = w->nstripes;
	g.shard_data_len = w->shard_data_len;
	g.trailer_len = trailer_len;
	g.tag_len = w->tag_len;
	for (int i = 0; i < w->n; i++)
	{
		if (w->partlen + trailer_len > OBJECT_PART_SIZE + w->chunk_size + PART_SLACK)
		{
			uint8	   *bigger = provider_alloc_aligned(w->cxt, w->partlen + trailer_len);

			memcpy(bigger, w->part[i], w->partlen);
			w->part[i] = bigger;
		}
		object_build_trailer(w->meta, &g, i, w->tags[i], w->part[i] + w->partlen);
		lens[i] = w->partlen + trailer_len;
	}

	if (!w->started)
	{
		/* small object: one PUT a shard */
		Assert(w->sending.batch == NULL);
		writer_batch_start(w, &w->sending, POP_PUT, w->part, lens);
	}
	else
	{
		/* begun ahead (object_writer_expect), the object may fit one part */
		writer_uploads_begun(w);
		writer_send_part(w, lens);
	}
	/* the other set of part buffers has no part left to send */
	if (w->sending_part != NULL)
	{
		for (int i = 0; i < w->n; i++)
			if (w->sending_part[i] != NULL)
				provider_free_aligned(w->sending_part[i]);
		pfree(w->sending_part);
		w->sending_part = NULL;
	}
	w->trailer_len = trailer_len;
	w->finishing = true;
	MemoryContextSwitchTo(old);
	{
		/* part buffers are hinted huge (provider_alloc_aligned): a page
		 * touched holds 2 MiB, and a buffer starts inside one (measured:
		 * 2 MB shards held 6 MiB each) */
		const size_t huge = (size_t) 2 * 1024 * 1024;
		size_t		bytes = 0;

		for (int i = 0; i < w->n; i++)
			bytes += TYPEALIGN(huge, lens[i]) + huge;
		return bytes;
	}
}

/*
 * object_writer_sends_ahead — whether the last batch object_writer_finish_start
 * starts runs on while the caller works: some shard goes to an s3 provider.
 * A file provider's PUTs are done, durable, when their batch starts.
 */
bool
object_writer_sends_ahead(ObjectWriter *w)
{
	for (int i = 0; i < w->n; i++)
		if (w->providers[i]->type == PROVIDER_S3)
			return true;
	return false;
}

/*
 * object_writer_finish_end — wait for the last batch object_writer_finish_start
 * started, complete the uploads, and return the object's metadata (in the
 * caller's context) for the caller to record; the writer's memory goes.
 * ERROR, and everything written deleted, if fewer than write_quorum shards
 * were stored.
 */
ObjectMeta *
object_writer_finish_end(ObjectWriter *w)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	size_t		trailer_len = w->trailer_len;
	ObjectMeta *meta = w->meta;
	ObjectMeta *result;

	Assert(w->finishing);
	writer_batch_end(w, &w->sending);
	if (w->started)
	{
		writer_batch(w, POP_UPLOAD_COMPLETE, NULL, NULL);
		for (int i = 0; i < w->n; i++)
			if (w->uploads[i])
				object_untrack_upload(w->uploads[i]);
	}

	meta->nblocks = (int) w->blockno;
	if (w->varied)
	{
		meta->block_ends = w->block_ends;
	}
	for (int i = 0; i < w->n; i++)
	{
		meta->shards[i].ok = !w->failed[i];
		meta->shards[i].size = w->shard_data_len + trailer_len;
		if (w->failed[i])
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("a shard of a new object could not be written to provider \"%s\"",
							meta->shards[i].provider),
					 errdetail("%s", w->errors[i]),
					 errhint("The object is readable; the missing shard is recorded for repair.")));
	}

	/* hand a copy to the caller's context; the writer's memory goes away */
	MemoryContextSwitchTo(old);
	result = object_meta_copy(meta);
	MemoryContextDelete(w->cxt);
	/* the caller records it now: if this subtransaction aborts, it goes */
	object_track_retag(result->id);
	return result;
}

/* object_writer_finish — object_writer_finish_start, then _end. */
ObjectMeta *
object_writer_finish(ObjectWriter *w)
{
	object_writer_finish_start(w);
	return object_writer_finish_end(w);
}

/* object_meta_copy — a deep copy of meta in the current memory context. */
ObjectMeta *
object_meta_copy(const ObjectMeta *meta)
{
	ObjectMeta *result = palloc(sizeof(ObjectMeta));
	int			n = meta->data_shards + meta->parity_shards;

	*result = *meta;
	result->pool = pstrdup(meta->pool);
	result->shards = palloc(sizeof(ObjectShard) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		result->shards[i] = meta->shards[i];
		result->shards[i].provider = pstrdup(meta->shards[i].provider);
	}
	if (meta->block_ends)
	{
		result->block_ends = palloc_extended(sizeof(uint64) * meta->nblocks, MCXT_ALLOC_HUGE);
		memcpy(result->block_ends, meta->block_ends, sizeof(uint64) * meta->nblocks);
	}
	return result;
}
