/*
 * object_layout.c — arithmetic and naming shared by writer and reader.
 *
 * Provider object names are opaque: "ds/<2 hex>/<object id>.<shard>".  No
 * table, blob or user name ever reaches a provider.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "destor/object.h"

/* The object id in UUID form, for messages. */
char *
object_id_text(const uint8 id[CODEC_OBJID_LEN])
{
	char	   *h = object_id_hex(id);

	return psprintf("%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

/*
 * Ids (of objects, blobs and tables) are 16 bytes that SQL sees as uuid
 * values: these are the one place that converts between the two.
 */
Datum
object_id_datum(const uint8 id[CODEC_OBJID_LEN])
{
	pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));

	StaticAssertStmt(UUID_LEN == CODEC_OBJID_LEN, "an id is a uuid");
	memcpy(u->data, id, UUID_LEN);
	return UUIDPGetDatum(u);
}

void
object_id_from_datum(Datum d, uint8 id[CODEC_OBJID_LEN])
{
	memcpy(id, DatumGetUUIDP(d)->data, CODEC_OBJID_LEN);
}

void
object_id_parse(const char *text, uint8 id[CODEC_OBJID_LEN])
{
	object_id_from_datum(DirectFunctionCall1(uuid_in, CStringGetDatum(text)), id);
}

/* The object id as 32 hex digits, for provider keys. */
char *
object_id_hex(const uint8 id[CODEC_OBJID_LEN])
{
	static const char hex[] = "0123456789abcdef";
	char	   *s = palloc(CODEC_OBJID_LEN * 2 + 1);

	for (int i = 0; i < CODEC_OBJID_LEN; i++)
	{
		s[2 * i] = hex[id[i] >> 4];
		s[2 * i + 1] = hex[id[i] & 15];
	}
	s[CODEC_OBJID_LEN * 2] = '\0';
	return s;
}

char *
object_shard_key(const uint8 id[CODEC_OBJID_LEN], int shard)
{
	char	   *hex = object_id_hex(id);

	return psprintf(OBJECT_KEY_PREFIX "%.2s/%s.%d", hex, hex, shard);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool
object_parse_shard_key(const char *key, uint8 id[CODEC_OBJID_LEN], int *shard)
{
	const char *p = key;
	char	   *end;
	long		n;

	if (strncmp(p, OBJECT_KEY_PREFIX, strlen(OBJECT_KEY_PREFIX)) != 0)
		return false;
	p += strlen(OBJECT_KEY_PREFIX);
	if (strlen(p) < 3 + CODEC_OBJID_LEN * 2 + 2 || p[2] != '/' || strncmp(p, p + 3, 2) != 0)
		return false;
	p += 3;
	for (int i = 0; i < CODEC_OBJID_LEN; i++)
	{
		int			hi = hexval(p[2 * i]);
		int			lo = hexval(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		id[i] = (hi << 4) | lo;
	}
	p += CODEC_OBJID_LEN * 2;
	if (*p != '.' || p[1] < '0' || p[1] > '9')
		return false;
	n = strtol(p + 1, &end, 10);
	if (*end != '\0' || n < 0 || n >= CODEC_RS_MAX_SHARDS)
		return false;
	*shard = (int) n;
	return true;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* "p1, p2, p3": names sorted, so messages do not depend on placement. */
char *
object_name_list(char **names, int n)
{
	StringInfoData buf;
	char	  **sorted = palloc(sizeof(char *) * Max(n, 1));

	memcpy(sorted, names, sizeof(char *) * n);
	qsort(sorted, n, sizeof(char *), cmp_names);
	initStringInfo(&buf);
	for (int i = 0; i < n; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", sorted[i]);
	pfree(sorted);
	return buf.data;
}

/* One Reed–Solomon codec per (k, m), built once per backend and kept. */
const codec_rs *
object_rs(int k, int m)
{
	static codec_rs *cache[CODEC_RS_MAX_DATA + 1][CODEC_RS_MAX_PARITY + 1];

	if (k < 1 || k > CODEC_RS_MAX_DATA || m < 0 || m > CODEC_RS_MAX_PARITY)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid erasure code parameters %d+%d", k, m)));
	if (cache[k][m] == NULL)
	{
		cache[k][m] = codec_rs_create(k, m);
		if (cache[k][m] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
	}
	return cache[k][m];
}

/* Stripe arithmetic of an object, from what its metadata records. */
void
object_geometry(const ObjectMeta *meta, ObjectGeometry *g)
{
	int			k = meta->data_shards;
	uint64		rem;

	g->stripe_size = (uint64) k * meta->chunk_size;
	g->nstripes = (meta->stream_size + g->stripe_size - 1) / g->stripe_size;
	if (g->nstripes == 0)
		g->nstripes = 1;
	rem = meta->stream_size - (g->nstripes - 1) * g->stripe_size;
	g->last_chunk = (rem + k - 1) / k;
	g->shard_data_len = (g->nstripes - 1) * meta->chunk_size + g->last_chunk;
	g->tag_len = meta->key_version == OBJECT_FORMAT_CRC ? (int) sizeof(uint64) : CODEC_CHUNK_TAG_LEN;
	g->trailer_len = g->nstripes * g->tag_len + OBJECT_FOOTER_SIZE;
}

static void
put_le(uint8 *p, uint64 v, int bytes)
{
	for (int b = 0; b < bytes; b++)
		p[b] = (uint8) (v >> (8 * b));
}

static uint64
get_le(const uint8 *p, int bytes)
{
	uint64		v = 0;

	for (int b = 0; b < bytes; b++)
		v |= (uint64) p[b] << (8 * b);
	return v;
}

static const char *
footer_magic(const ObjectMeta *meta)
{
	return meta->key_version == OBJECT_FORMAT_CRC ? "DESTOR01" : "DESTOR02";
}

/*
 * Shard trailer: one tag per chunk (format 1: its CRC-64, little-endian;
 * format 2: its 16-byte keyed tag), then a self-describing footer — magic,
 * id, shard, k, m, chunk size, stripes, stream and shard data lengths, and
 * the footer's own CRC.  out needs g->trailer_len bytes.
 */
void
object_build_trailer(const ObjectMeta *meta, const ObjectGeometry *g, int shard,
					 const uint8 *tags, uint8 *out)
{
	uint8	   *p = out + g->nstripes * g->tag_len;

	memcpy(out, tags, g->nstripes * g->tag_len);
	memcpy(p, footer_magic(meta), 8);
	memcpy(p + 8, meta->id, CODEC_OBJID_LEN);
	p[24] = (uint8) shard;
	p[25] = 0;
	p[26] = (uint8) meta->data_shards;
	p[27] = (uint8) meta->parity_shards;
	put_le(p + 28, (uint32) meta->chunk_size, 4);
	put_le(p + 32, g->nstripes, 8);
	put_le(p + 40, meta->stream_size, 8);
	put_le(p + 48, g->shard_data_len, 8);
	put_le(p + 56, codec_crc64(0, p, 56), 8);
}

/*
 * Does a trailer belong to this shard of this object?  If so, its tags go
 * to tags (g->nstripes * g->tag_len bytes).  The footer only says which
 * shard the provider meant to serve; that the chunks are the right ones is
 * for object_chunk_verify to say.
 */
bool
object_parse_trailer(const ObjectMeta *meta, const ObjectGeometry *g, int shard,
					 const uint8 *trailer, uint8 *tags)
{
	const uint8 *f = trailer + g->nstripes * g->tag_len;

	if (memcmp(f, footer_magic(meta), 8) != 0 ||
		memcmp(f + 8, meta->id, CODEC_OBJID_LEN) != 0 ||
		f[24] != shard || f[26] != meta->data_shards || f[27] != meta->parity_shards ||
		get_le(f + 28, 4) != (uint64) meta->chunk_size ||
		get_le(f + 32, 8) != g->nstripes ||
		get_le(f + 40, 8) != meta->stream_size ||
		get_le(f + 48, 8) != g->shard_data_len ||
		get_le(f + 56, 8) != codec_crc64(0, f, 56))
		return false;
	memcpy(tags, trailer, g->nstripes * g->tag_len);
	return true;
}

static void
check_format(const ObjectMeta *meta)
{
	if (meta->key_version != OBJECT_FORMAT_CRC && meta->key_version != OBJECT_FORMAT_MAC)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("object %s has an unknown format %d", object_id_text(meta->id),
						meta->key_version)));
}

/*
 * The object's data key, unwrapped with the master key (the wrapped key's
 * associated data binds object id and key version, i.e. the format).
 */
void
object_unwrap_key(const ObjectMeta *meta, uint8 dek[CODEC_KEY_LEN])
{
	uint8		master[CODEC_KEY_LEN];
	uint8		aad[CODEC_OBJID_LEN + 4];

	check_format(meta);
	/* the current master key, or during a rotation the previous one */
	if (!keys_load_by_id(meta->key_id, master))
	{

		/*
		 * The server is configured with the wrong key file; the data is fine
		 * (the fingerprints tell the two cases apart).  So a configuration
		 * file error, as keys.c reports every other master key file problem
		 * and as PostgreSQL reports an SSL key that does not match its
		 * certificate ("check of private key failed"); not
		 * ERRCODE_DATA_CORRUPTED, which would send a DBA after damage that
		 * is not there, nor ERRCODE_INVALID_PASSWORD, which is about
		 * authenticating a role.
		 */
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("object %s was written with a different master key", object_id_text(meta->id)),
				 errdetail("Neither the key in destor.master_key_file nor the one in destor.previous_master_key_file is the key that wrapped this object's data key."),
				 errhint("Set destor.master_key_file to the key this database was created with, or during a key rotation destor.previous_master_key_file to the key being retired.")));
	}
	memcpy(aad, meta->id, CODEC_OBJID_LEN);
	aad[CODEC_OBJID_LEN] = (uint8) (meta->key_version >> 24);
	aad[CODEC_OBJID_LEN + 1] = (uint8) (meta->key_version >> 16);
	aad[CODEC_OBJID_LEN + 2] = (uint8) (meta->key_version >> 8);
	aad[CODEC_OBJID_LEN + 3] = (uint8) meta->key_version;
	if (codec_key_unwrap(master, aad, sizeof(aad), meta->wrapped_key, dek) != 0)
	{
		codec_secure_zero(master, sizeof(master));
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not unwrap the data key of object %s", object_id_text(meta->id)),
				 errdetail("The wrapped key in the catalog does not authenticate under the master key."),
				 errhint("The catalog row may have been altered; restore it from a backup.")));
	}
	codec_secure_zero(master, sizeof(master));
}

struct ObjectChunkAuth
{
	int			format;
	codec_chunk_mac *mac;		/* format 2; freed by a reset callback */
};

static void
chunk_auth_free(void *arg)
{
	ObjectChunkAuth *a = (ObjectChunkAuth *) arg;

	codec_chunk_mac_free(a->mac);
	a->mac = NULL;
}

/*
 * Chunk checking for an object whose data key the caller holds (the
 * writer).  Nothing here raises an error between the key's arrival and
 * the caller wiping it but for a bad format, checked first.
 */
ObjectChunkAuth *
object_chunk_auth_from_key(const ObjectMeta *meta, const uint8 dek[CODEC_KEY_LEN])
{
	ObjectChunkAuth *a = palloc0(sizeof(ObjectChunkAuth));
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));

	a->format = meta->key_version;
	if (a->format == OBJECT_FORMAT_MAC)
	{
		a->mac = codec_chunk_mac_create(dek, meta->id);
		if (a->mac == NULL)
			return NULL;
		cb->func = chunk_auth_free;
		cb->arg = a;
		MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	}
	return a;
}

/* Chunk checking for an object read back (its data key is unwrapped here). */
ObjectChunkAuth *
object_chunk_auth_create(const ObjectMeta *meta)
{
	uint8		dek[CODEC_KEY_LEN];
	ObjectChunkAuth *a;

	if (meta->key_version == OBJECT_FORMAT_CRC)
		return object_chunk_auth_from_key(meta, NULL);
	object_unwrap_key(meta, dek);
	a = object_chunk_auth_from_key(meta, dek);
	codec_secure_zero(dek, sizeof(dek));
	if (a == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	return a;
}

/* The tag of a chunk, as its shard's trailer holds it. */
void
object_chunk_tag(ObjectChunkAuth *a, int shard, uint64 stripe, const uint8 *chunk, size_t len,
				 uint8 *tag)
{
	if (a->format == OBJECT_FORMAT_CRC)
		put_le(tag, codec_crc64(0, chunk, len), 8);
	else if (codec_chunk_mac_compute(a->mac, shard, stripe, chunk, len, tag) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the tag of a chunk")));
}

/* Is this the chunk the object's writer put there? */
bool
object_chunk_verify(ObjectChunkAuth *a, int shard, uint64 stripe, const uint8 *chunk, size_t len,
					const uint8 *tag)
{
	if (a->format == OBJECT_FORMAT_CRC)
		return codec_crc64(0, chunk, len) == get_le(tag, 8);
	return codec_chunk_mac_verify(a->mac, shard, stripe, chunk, len, tag) == 0;
}
