/*
 * pool.c — a pool's catalog, rebuilt in memory from its metadata log
 * (docs/METADATA_FORMAT.md) as destor.recover_catalog rebuilds it in a
 * database: every provider's meta/ keys are listed, each log object is
 * decoded from any k good shard files (header CRC, agreeing headers, chunk
 * tags, Reed–Solomon, AES-GCM), those whose commit is proven (an authentic
 * commit marker, or a later log object confirming them) are replayed in
 * sequence order.  Log objects of other pools are passed over.
 */
#include "export.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SHARD_MAGIC		"DESTORML"
#define LOG_MARKER_MAGIC	"DESTORMC"
#define LOG_FORMAT_VERSION	1
#define LOG_HEADER_LEN		144
#define LOG_MARKER_LEN		(8 + 2 + 6 + CODEC_OBJID_LEN + 8 + CODEC_CHUNK_TAG_LEN)
#define LOG_PAYLOAD_BLOCK	(64 * 1024)
#define LOG_MARKER_TEXT		"destor-meta-commit-v1"

enum
{
	REC_OBJECT = 1,
	REC_OBJECT_DELETE = 2,
	REC_SHARD = 3,
	REC_BLOB = 4,
	REC_BLOB_DELETE = 5,
	REC_SEGMENT = 6,
	REC_SEGMENT_DELETE = 7,
	REC_DELETION = 8,
	REC_DELETION_DELETE = 9,
	REC_TABLE_DEF = 10,
	REC_TABLE_DROP = 11,
	REC_KEY_REWRAP = 12
};

/* One log object: its keys on the providers, and once decoded its batch. */
typedef struct LogObject
{
	char		instance[37];
	uint64_t	seq;
	uint8_t		id[CODEC_OBJID_LEN];
	int			store_of[CODEC_RS_MAX_SHARDS];	/* -1: no provider lists it */
	bool		marked;			/* an authentic commit marker was found */
	bool		confirmed;
	bool		decoded;
	bool		degraded;		/* decoded with shards missing or bad */
	bool		other_pool;
	uint8_t    *batch;
	size_t		batch_len;
	const uint8_t *records;		/* in batch: n records */
	uint32_t	nrecords;
} LogObject;

/* ---------------------------------------------------------------------
 * little-endian fields
 * --------------------------------------------------------------------- */

typedef struct Reader
{
	const uint8_t *p;
	const uint8_t *end;
	bool		bad;
} Reader;

static const uint8_t *
rd_fixed(Reader *r, uint32_t len)
{
	const uint8_t *p = r->p;

	if (r->bad || (size_t) (r->end - r->p) < len)
	{
		r->bad = true;
		return NULL;
	}
	r->p += len;
	return p;
}

static uint64_t
rd_int(Reader *r, int n)
{
	const uint8_t *p = rd_fixed(r, n);

	return p ? get_le(p, n) : 0;
}

/* a length-prefixed field; NULL (and *len 0) for a null one */
static const uint8_t *
rd_bytes(Reader *r, uint32_t *len)
{
	uint32_t	n = (uint32_t) rd_int(r, 4);

	*len = 0;
	if (r->bad || n == 0xFFFFFFFF)
		return NULL;
	*len = n;
	return rd_fixed(r, n);
}

static char *
rd_str(Reader *r)
{
	uint32_t	len;
	const uint8_t *p = rd_bytes(r, &len);

	if (p == NULL)
		return NULL;
	if (memchr(p, '\0', len) != NULL)
	{
		r->bad = true;
		return NULL;
	}
	return xstrndup((const char *) p, len);
}

static void
rd_id(Reader *r, uint8_t id[CODEC_OBJID_LEN])
{
	const uint8_t *p = rd_fixed(r, CODEC_OBJID_LEN);

	if (p)
		memcpy(id, p, CODEC_OBJID_LEN);
	else
		memset(id, 0, CODEC_OBJID_LEN);
}

static uint8_t *
rd_copy(Reader *r, size_t *len)
{
	uint32_t	n;
	const uint8_t *p = rd_bytes(r, &n);
	uint8_t    *c;

	*len = n;
	if (p == NULL)
		return NULL;
	c = xmalloc(n);
	memcpy(c, p, n);
	return c;
}

/* ---------------------------------------------------------------------
 * keys: meta/<instance>/<seq, 16 hex>-<log id, 32 hex>.<shard|commit>
 * --------------------------------------------------------------------- */

static bool
parse_log_key(const char *key, char instance[37], uint64_t *seq, uint8_t id[CODEC_OBJID_LEN],
			  int *shard)
{
	const char *p;
	char	   *end;
	long		n;

	if (strncmp(key, "meta/", 5) != 0 || strlen(key) < 5 + 37 + 16 + 1 + 32 + 2 || key[5 + 36] != '/')
		return false;
	memcpy(instance, key + 5, 36);
	instance[36] = '\0';
	p = key + 5 + 37;
	*seq = 0;
	for (int i = 0; i < 16; i++)
	{
		if (codec_hex_value(p[i]) < 0)
			return false;
		*seq = *seq << 4 | (uint64_t) codec_hex_value(p[i]);
	}
	p += 16;
	if (*p++ != '-')
		return false;
	for (int i = 0; i < CODEC_OBJID_LEN; i++)
	{
		if (codec_hex_value(p[2 * i]) < 0 || codec_hex_value(p[2 * i + 1]) < 0)
			return false;
		id[i] = (uint8_t) (codec_hex_value(p[2 * i]) << 4 | codec_hex_value(p[2 * i + 1]));
	}
	p += 2 * CODEC_OBJID_LEN;
	if (*p++ != '.')
		return false;
	if (strcmp(p, "commit") == 0)
	{
		*shard = -1;
		return true;
	}
	if (*p < '0' || *p > '9')
		return false;
	n = strtol(p, &end, 10);
	if (*end != '\0' || n >= CODEC_RS_MAX_SHARDS)
		return false;
	*shard = (int) n;
	return true;
}

static char *
log_key(const LogObject *l, int shard)
{
	char		hex[33];

	id_hex(l->id, hex);
	if (shard < 0)
		return xprintf("meta/%s/%016llx-%s.commit", l->instance, (unsigned long long) l->seq, hex);
	return xprintf("meta/%s/%016llx-%s.%d", l->instance, (unsigned long long) l->seq, hex, shard);
}

/* ---------------------------------------------------------------------
 * decoding a log object
 * --------------------------------------------------------------------- */

static void
fingerprint_hex(const uint8_t *fp, char out[2 * CODEC_KEY_FINGERPRINT_LEN + 1])
{
	for (int i = 0; i < CODEC_KEY_FINGERPRINT_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", fp[i]);
}

static bool
marker_authentic(XPool *pool, const LogObject *l, const uint8_t *data, size_t len)
{
	uint8_t		tag[CODEC_CHUNK_TAG_LEN];
	codec_chunk_mac *mac;
	bool		ok;

	if (len != LOG_MARKER_LEN || memcmp(data, LOG_MARKER_MAGIC, 8) != 0 ||
		get_le(data + 8, 2) != LOG_FORMAT_VERSION ||
		memcmp(data + 16, l->id, CODEC_OBJID_LEN) != 0 || get_le(data + 32, 8) != l->seq)
		return false;
	mac = codec_chunk_mac_create(pool->master, l->id);
	if (mac == NULL)
		fatal(EXIT_DATA, "out of memory");
	ok = codec_chunk_mac_compute(mac, 0, l->seq, (const uint8_t *) LOG_MARKER_TEXT,
								 strlen(LOG_MARKER_TEXT), tag) == 0 &&
		memcmp(tag, data + 40, CODEC_CHUNK_TAG_LEN) == 0;
	codec_chunk_mac_free(mac);
	return ok;
}

typedef enum
{
	DEC_OK,
	DEC_WRONG_KEY,
	DEC_FAILED
} DecodeResult;

static bool
header_ok(const uint8_t *h, size_t len, const LogObject *l)
{
	return h != NULL && len >= LOG_HEADER_LEN + CODEC_CHUNK_TAG_LEN &&
		memcmp(h, LOG_SHARD_MAGIC, 8) == 0 &&
		get_le(h + 136, 8) == codec_crc64(0, h, 136) &&
		get_le(h + 8, 2) == LOG_FORMAT_VERSION &&
		memcmp(h + 16, l->id, CODEC_OBJID_LEN) == 0 && get_le(h + 32, 8) == l->seq;
}

/* The log object's payload (flag byte dropped, decompressed) into l->batch. */
static DecodeResult
decode_log(XPool *pool, LogObject *l, uint8_t *wrong_fp)
{
	uint8_t    *files[CODEC_RS_MAX_SHARDS] = {0};
	size_t		lens[CODEC_RS_MAX_SHARDS] = {0};
	const uint8_t *ref = NULL;
	int			k = 0,
				m = 0,
				good = 0;
	uint64_t	plain_len = 0,
				cipher_len = 0,
				chunk_len = 0;
	uint8_t    *data[CODEC_RS_MAX_SHARDS] = {0};
	bool		present[CODEC_RS_MAX_SHARDS] = {0};
	uint8_t		aad[CODEC_OBJID_LEN + 4];
	uint8_t		dek[CODEC_KEY_LEN];
	codec_chunk_mac *mac = NULL;
	codec_cipher *cipher = NULL;
	uint8_t    *stream = NULL;
	uint8_t    *plain = NULL;
	DecodeResult result = DEC_FAILED;
	size_t		nblocks;

	for (int i = 0; i < CODEC_RS_MAX_SHARDS; i++)
	{
		char	   *err = NULL;
		char	   *key;

		if (l->store_of[i] < 0)
			continue;
		key = log_key(l, i);
		files[i] = store_get(&pool->stores[l->store_of[i]], key, &lens[i], &err);
		free(err);
		free(key);
		if (ref == NULL && header_ok(files[i], lens[i], l))
		{
			const uint8_t *h = files[i];

			k = h[11];
			m = h[12];
			plain_len = get_le(h + 40, 8);
			cipher_len = get_le(h + 48, 8);
			chunk_len = get_le(h + 56, 8);
			if (k >= 1 && k <= CODEC_RS_MAX_DATA && m <= CODEC_RS_MAX_PARITY &&
				chunk_len == (cipher_len + k - 1) / k && plain_len > 0 &&
				cipher_len >= plain_len && chunk_len < ((uint64_t) 1 << 36))
				ref = h;
		}
	}
	if (ref == NULL)
		goto done;
	if (memcmp(ref + 64, pool->master_id, CODEC_KEY_FINGERPRINT_LEN) != 0)
	{
		memcpy(wrong_fp, ref + 64, CODEC_KEY_FINGERPRINT_LEN);
		result = DEC_WRONG_KEY;
		goto done;
	}
	memcpy(aad, l->id, CODEC_OBJID_LEN);
	memcpy(aad + CODEC_OBJID_LEN, "meta", 4);
	if (codec_key_unwrap(pool->master, aad, sizeof(aad), ref + 72, dek) != 0)
	{
		memcpy(wrong_fp, ref + 64, CODEC_KEY_FINGERPRINT_LEN);
		result = DEC_WRONG_KEY;
		goto done;
	}
	mac = codec_chunk_mac_create(dek, l->id);
	cipher = codec_cipher_create(dek, l->id);
	codec_secure_zero(dek, sizeof(dek));
	if (mac == NULL || cipher == NULL)
		fatal(EXIT_DATA, "out of memory");
	for (int i = 0; i < k + m; i++)
	{
		const uint8_t *h = files[i];

		data[i] = xcalloc(1, chunk_len);
		if (h == NULL || lens[i] != LOG_HEADER_LEN + chunk_len + CODEC_CHUNK_TAG_LEN ||
			!header_ok(h, lens[i], l) || h[10] != i ||
			memcmp(h + 8, ref + 8, 2) != 0 || memcmp(h + 11, ref + 11, 2) != 0 ||
			memcmp(h + 16, ref + 16, 136 - 16) != 0 ||
			codec_chunk_mac_verify(mac, i, 0, h + LOG_HEADER_LEN, chunk_len,
								   h + LOG_HEADER_LEN + chunk_len) != 0)
			continue;
		memcpy(data[i], h + LOG_HEADER_LEN, chunk_len);
		present[i] = true;
		good++;
	}
	if (good < k)
		goto done;
	l->degraded = good < k + m;
	if (good < k + m)
	{
		codec_rs   *rs = codec_rs_create(k, m);

		if (rs == NULL || codec_rs_reconstruct(rs, chunk_len, data, present) != 0)
		{
			codec_rs_free(rs);
			goto done;
		}
		codec_rs_free(rs);
	}
	stream = xmalloc(chunk_len * k);
	for (int i = 0; i < k; i++)
		memcpy(stream + (size_t) i * chunk_len, data[i], chunk_len);
	nblocks = (plain_len + LOG_PAYLOAD_BLOCK - 1) / LOG_PAYLOAD_BLOCK;
	if (cipher_len != plain_len + nblocks * CODEC_TAG_LEN)
		goto done;
	plain = xmalloc(plain_len);
	for (size_t b = 0; b < nblocks; b++)
	{
		size_t		off = b * LOG_PAYLOAD_BLOCK;
		size_t		blen = plain_len - off < LOG_PAYLOAD_BLOCK ? plain_len - off : LOG_PAYLOAD_BLOCK;

		if (codec_cipher_decrypt_block(cipher, b, b == nblocks - 1,
									   stream + off + b * CODEC_TAG_LEN,
									   blen + CODEC_TAG_LEN, plain + off) != 0)
			goto done;
	}
	if (plain[0] == 0)
	{
		l->batch = xmalloc(plain_len - 1);
		memcpy(l->batch, plain + 1, plain_len - 1);
		l->batch_len = plain_len - 1;
	}
	else if (plain[0] == 1)
	{
		size_t		cap = (plain_len - 1) * 64 > 1024 * 1024 ? (plain_len - 1) * 64 : 1024 * 1024;

		for (;;)
		{
			size_t		got;
			uint8_t    *out = xmalloc(cap);

			if (codec_decompress(plain + 1, plain_len - 1, out, cap, &got) == 0)
			{
				l->batch = out;
				l->batch_len = got;
				break;
			}
			free(out);
			if (cap > ((size_t) 1 << 34))
				goto done;
			cap *= 4;
		}
	}
	else
		goto done;
	result = DEC_OK;

done:
	for (int i = 0; i < CODEC_RS_MAX_SHARDS; i++)
	{
		free(files[i]);
		free(data[i]);
	}
	free(stream);
	free(plain);
	codec_chunk_mac_free(mac);
	codec_cipher_free(cipher);
	return result;
}

/* ---------------------------------------------------------------------
 * replay
 * --------------------------------------------------------------------- */

static uint64_t
key_hash(const uint8_t *key, size_t len)
{
	uint64_t	h = UINT64_C(14695981039346656037);

	for (size_t i = 0; i < len; i++)
		h = (h ^ key[i]) * UINT64_C(1099511628211);
	return h;
}

/* the position of the entry of arr (entries of size bytes) whose key is key, or -1 */
static long
ix_find(const Index *ix, const void *arr, size_t size, size_t key_off, size_t key_len,
		const void *key)
{
	if (ix->cap == 0)
		return -1;
	for (size_t h = key_hash(key, key_len) & (ix->cap - 1);; h = (h + 1) & (ix->cap - 1))
	{
		size_t		pos = ix->slot[h];

		if (pos == 0)
			return -1;
		if (memcmp((const char *) arr + (pos - 1) * size + key_off, key, key_len) == 0)
			return (long) (pos - 1);
	}
}

static void
ix_put(Index *ix, const void *arr, size_t size, size_t key_off, size_t key_len, size_t pos)
{
	size_t		h = key_hash((const uint8_t *) arr + pos * size + key_off, key_len) & (ix->cap - 1);

	while (ix->slot[h] != 0)
		h = (h + 1) & (ix->cap - 1);
	ix->slot[h] = pos + 1;
}

/* enter the entry at pos (its key not in the index yet); kept at most half full */
static void
ix_add(Index *ix, const void *arr, size_t size, size_t key_off, size_t key_len, size_t pos)
{
	if (2 * (ix->n + 1) > ix->cap)
	{
		size_t	   *old = ix->slot;
		size_t		oldcap = ix->cap;

		ix->cap = oldcap ? 2 * oldcap : 64;
		ix->slot = xcalloc(ix->cap, sizeof(size_t));
		for (size_t i = 0; i < oldcap; i++)
			if (old[i])
				ix_put(ix, arr, size, key_off, key_len, old[i] - 1);
		free(old);
	}
	ix_put(ix, arr, size, key_off, key_len, pos);
	ix->n++;
}

/* one more zeroed entry at the end of an array, grown by doubling */
#define GROW(arr, n) \
	((((n) & ((n) - 1)) == 0 ? ((arr) = xrealloc((arr), sizeof(*(arr)) * ((n) ? 2 * (n) : 1))) : (arr)), \
	 memset(&(arr)[(n)], 0, sizeof(*(arr))), &(arr)[(n)++])

/* the entry of arr with that key (live or not), or NULL */
#define IX_FIND(ix, arr, field, key) \
	({ long pos_ = ix_find(&(ix), (arr), sizeof((arr)[0]), offsetof(__typeof__((arr)[0]), field), \
						   sizeof((arr)[0].field), (key)); pos_ < 0 ? NULL : &(arr)[pos_]; })

/* the entry of arr with that key: found, or added (zeroed, key set) */
#define IX_ENTER(ix, arr, n, field, key) \
	({ __typeof__(&(arr)[0]) e_ = IX_FIND(ix, arr, field, key); \
	   if (e_ == NULL) { e_ = GROW(arr, n); memcpy(&e_->field, (key), sizeof(e_->field)); \
						 ix_add(&(ix), (arr), sizeof((arr)[0]), offsetof(__typeof__((arr)[0]), field), \
								sizeof((arr)[0].field), (n) - 1); } \
	   e_; })

#define LIVE(e) ((e) && (e)->live ? (e) : NULL)

XObject *
pool_object(XPool *pool, const uint8_t id[CODEC_OBJID_LEN])
{
	return LIVE(IX_FIND(pool->objects_ix, pool->objects, id, id));
}

XBlob *
pool_blob(XPool *pool, const uint8_t id[CODEC_OBJID_LEN])
{
	return LIVE(IX_FIND(pool->blobs_ix, pool->blobs, id, id));
}

XTable *
pool_table_id(XPool *pool, const uint8_t id[CODEC_OBJID_LEN])
{
	return LIVE(IX_FIND(pool->tables_ix, pool->tables, id, id));
}

/* a segment's key: table id and segment number, as XSegment.key holds them */
static void
segment_key(uint8_t key[CODEC_OBJID_LEN + 8], const uint8_t table[CODEC_OBJID_LEN], uint64_t segno)
{
	memcpy(key, table, CODEC_OBJID_LEN);
	memcpy(key + CODEC_OBJID_LEN, &segno, 8);
}

static XSegment *
find_segment(XPool *pool, const uint8_t table[CODEC_OBJID_LEN], uint64_t segno)
{
	uint8_t		key[CODEC_OBJID_LEN + 8];

	segment_key(key, table, segno);
	return LIVE(IX_FIND(pool->segments_ix, pool->segments, key, key));
}

/* a minimal reader of the table definition's JSON (jsonb's text form) */
typedef struct Json
{
	const char *p;
	bool		bad;
} Json;

static void
js_ws(Json *j)
{
	while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
		j->p++;
}

static char *
js_string(Json *j)
{
	Buf			b = {0};

	js_ws(j);
	if (*j->p != '"')
	{
		j->bad = true;
		return NULL;
	}
	j->p++;
	while (*j->p && *j->p != '"')
	{
		if (*j->p == '\\')
		{
			j->p++;
			switch (*j->p)
			{
				case 'n':
					buf_putc(&b, '\n');
					break;
				case 't':
					buf_putc(&b, '\t');
					break;
				case 'r':
					buf_putc(&b, '\r');
					break;
				case 'b':
					buf_putc(&b, '\b');
					break;
				case 'f':
					buf_putc(&b, '\f');
					break;
				case 'u':
					{
						unsigned	cp = 0;

						for (int i = 1; i <= 4; i++)
							cp = cp * 16 + (unsigned) (codec_hex_value(j->p[i] | 0x20) < 0 ? 0 : codec_hex_value(j->p[i] | 0x20));
						j->p += 4;
						/* names are UTF-8: encode the code point (no surrogate pairs in names) */
						if (cp < 0x80)
							buf_putc(&b, (char) cp);
						else if (cp < 0x800)
						{
							buf_putc(&b, (char) (0xC0 | (cp >> 6)));
							buf_putc(&b, (char) (0x80 | (cp & 0x3F)));
						}
						else
						{
							buf_putc(&b, (char) (0xE0 | (cp >> 12)));
							buf_putc(&b, (char) (0x80 | ((cp >> 6) & 0x3F)));
							buf_putc(&b, (char) (0x80 | (cp & 0x3F)));
						}
						break;
					}
				default:
					buf_putc(&b, *j->p);
			}
			j->p++;
		}
		else
			buf_putc(&b, *j->p++);
	}
	if (*j->p != '"')
		j->bad = true;
	else
		j->p++;
	return b.data ? b.data : xstrdup("");
}

static void js_object(Json *j, bool (*member) (Json *, const char *, void *), void *arg);

/* a member js_object skips */
static bool
skip_member(Json *j, const char *key, void *arg)
{
	return false;
}

/* skip any value; a scalar's text is returned (strings unquoted) */
static char *
js_value(Json *j, void (*on_object) (Json *, void *), void *arg)
{
	js_ws(j);
	if (*j->p == '"')
		return js_string(j);
	if (*j->p == '{')
	{
		if (on_object)
			on_object(j, arg);
		else
			js_object(j, skip_member, NULL);
		return NULL;
	}
	if (*j->p == '[')
	{
		j->p++;
		js_ws(j);
		while (!j->bad && *j->p && *j->p != ']')
		{
			free(js_value(j, on_object, arg));
			js_ws(j);
			if (*j->p == ',')
				j->p++;
			js_ws(j);
		}
		if (*j->p == ']')
			j->p++;
		else
			j->bad = true;
		return NULL;
	}
	{
		const char *s = j->p;

		while (*j->p && strchr(",}] \n\t\r", *j->p) == NULL)
			j->p++;
		if (j->p == s)
		{
			j->bad = true;
			return NULL;
		}
		return xstrndup(s, j->p - s);
	}
}

/* the members of an object: cb(key, scalar text or NULL, j) per member */
static void
js_object(Json *j, bool (*member) (Json *, const char *, void *), void *arg)
{
	js_ws(j);
	if (*j->p != '{')
	{
		j->bad = true;
		return;
	}
	j->p++;
	js_ws(j);
	while (!j->bad && *j->p && *j->p != '}')
	{
		char	   *key = js_string(j);

		js_ws(j);
		if (*j->p++ != ':')
			j->bad = true;
		if (!j->bad && !member(j, key, arg))
			free(js_value(j, NULL, NULL));
		free(key);
		js_ws(j);
		if (*j->p == ',')
			j->p++;
		js_ws(j);
	}
	if (*j->p == '}')
		j->p++;
	else
		j->bad = true;
}

static bool
column_member(Json *j, const char *key, void *arg)
{
	XColumn    *c = (XColumn *) arg;
	char	   *v;

	if (strcmp(key, "name") != 0 && strcmp(key, "attnum") != 0 && strcmp(key, "type") != 0 &&
		strcmp(key, "dropped") != 0)
		return false;
	v = js_value(j, NULL, NULL);
	if (strcmp(key, "name") == 0)
		c->name = v;
	else if (strcmp(key, "type") == 0)
	{
		c->type = v && strcmp(v, "null") != 0 ? v : NULL;
		if (c->type != v)
			free(v);
	}
	else
	{
		if (strcmp(key, "attnum") == 0)
			c->attnum = v ? atoi(v) : 0;
		else
			c->dropped = v && strcmp(v, "true") == 0;
		free(v);
	}
	return true;
}

static void
column_object(Json *j, void *arg)
{
	XTable	   *t = (XTable *) arg;
	XColumn    *c = GROW(t->cols, t->ncols);

	js_object(j, column_member, c);
}

static bool
table_member(Json *j, const char *key, void *arg)
{
	XTable	   *t = (XTable *) arg;

	if (strcmp(key, "schema") == 0)
		t->schema = js_value(j, NULL, NULL);
	else if (strcmp(key, "name") == 0)
		t->name = js_value(j, NULL, NULL);
	else if (strcmp(key, "columns") == 0)
		free(js_value(j, column_object, t));
	else
		return false;
	return true;
}

static void
replay_record(XPool *pool, int kind, Reader *r)
{
	uint8_t		id[CODEC_OBJID_LEN];

	rd_id(r, id);
	switch (kind)
	{
		case REC_OBJECT:
			{
				XObject    *o = IX_ENTER(pool->objects_ix, pool->objects, pool->nobjects, id, id);
				uint32_t	n;
				const uint8_t *p;
				char	   *poolname = rd_str(r);

				free(poolname);
				free(o->block_ends);
				o->live = true;
				o->size = rd_int(r, 8);
				o->stream_size = rd_int(r, 8);
				o->block_size = (uint32_t) rd_int(r, 4);
				o->chunk_size = (uint32_t) rd_int(r, 4);
				o->k = (int) rd_int(r, 4);
				o->m = (int) rd_int(r, 4);
				o->compressed = rd_int(r, 1) != 0;
				p = rd_bytes(r, &n);
				o->block_ends = NULL;
				o->nblock_ends = 0;
				if (p != NULL)
				{
					o->nblock_ends = n / 8;
					o->block_ends = xmalloc(sizeof(uint64_t) * (o->nblock_ends + 1));
					for (size_t i = 0; i < o->nblock_ends; i++)
						o->block_ends[i] = get_le(p + 8 * i, 8);
				}
				o->key_version = (int) rd_int(r, 4);
				p = rd_bytes(r, &n);
				if (p && n == CODEC_KEY_FINGERPRINT_LEN)
					memcpy(o->key_id, p, n);
				p = rd_bytes(r, &n);
				if (p && n == CODEC_WRAPPED_KEY_LEN)
					memcpy(o->wrapped, p, n);
				break;
			}
		case REC_KEY_REWRAP:
			{
				XObject    *o = pool_object(pool, id);
				int			version = (int) rd_int(r, 4);
				uint32_t	n1,
							n2;
				const uint8_t *kid = rd_bytes(r, &n1);
				const uint8_t *w = rd_bytes(r, &n2);

				if (o && !r->bad && kid && w && n1 == CODEC_KEY_FINGERPRINT_LEN &&
					n2 == CODEC_WRAPPED_KEY_LEN)
				{
					o->key_version = version;
					memcpy(o->key_id, kid, n1);
					memcpy(o->wrapped, w, n2);
				}
				break;
			}
		case REC_OBJECT_DELETE:
			{
				XObject    *o = pool_object(pool, id);
				bool		used = pool_blob(pool, id) != NULL;

				for (size_t i = 0; i < pool->nsegments && !used; i++)
					used = pool->segments[i].live &&
						memcmp(pool->segments[i].object_id, id, CODEC_OBJID_LEN) == 0;
				if (o && !used)
					o->live = false;
				break;
			}
		case REC_BLOB:
			{
				XBlob	   *b = IX_ENTER(pool->blobs_ix, pool->blobs, pool->nblobs, id, id);

				free(b->owner);
				b->owner = rd_str(r);
				b->created_at = rd_int(r, 8);
				b->live = true;
				break;
			}
		case REC_BLOB_DELETE:
			{
				XBlob	   *b = pool_blob(pool, id);

				if (b)
					b->live = false;
				break;
			}
		case REC_SEGMENT:
			{
				uint8_t		key[CODEC_OBJID_LEN + 8];
				XSegment   *s;

				segment_key(key, id, rd_int(r, 8));
				s = IX_ENTER(pool->segments_ix, pool->segments, pool->nsegments, key, key);
				free(s->directory);
				rd_id(r, s->object_id);
				s->rows = rd_int(r, 8);
				s->directory = rd_copy(r, &s->directory_len);
				s->live = true;
				break;
			}
		case REC_SEGMENT_DELETE:
			{
				XSegment   *s = find_segment(pool, id, rd_int(r, 8));

				if (s)
					s->live = false;
				break;
			}
		case REC_DELETION:
			{
				XDeletion  *d = GROW(pool->deletions, pool->ndeletions);

				memcpy(d->table_id, id, CODEC_OBJID_LEN);
				d->segment_no = rd_int(r, 8);
				d->bitmap = rd_copy(r, &d->len);
				d->live = true;
				break;
			}
		case REC_DELETION_DELETE:
			{
				uint64_t	segno = rd_int(r, 8);
				uint32_t	len;
				const uint8_t *bm = rd_bytes(r, &len);

				for (size_t i = 0; i < pool->ndeletions; i++)
				{
					XDeletion  *d = &pool->deletions[i];

					if (d->live && d->segment_no == segno && d->len == len &&
						memcmp(d->table_id, id, CODEC_OBJID_LEN) == 0 &&
						(len == 0 || (bm && memcmp(d->bitmap, bm, len) == 0)))
						d->live = false;
				}
				break;
			}
		case REC_TABLE_DEF:
			{
				char	   *def = rd_str(r);
				XTable	   *t;
				Json		j;

				if (def == NULL)
					break;
				t = IX_ENTER(pool->tables_ix, pool->tables, pool->ntables, id, id);
				for (int c = 0; c < t->ncols; c++)
				{
					free(t->cols[c].name);
					free(t->cols[c].type);
				}
				free(t->cols);
				free(t->schema);
				free(t->name);
				t->cols = NULL;
				t->ncols = 0;
				t->schema = t->name = NULL;
				t->live = true;
				j.p = def;
				j.bad = false;
				js_object(&j, table_member, t);
				if (j.bad || t->schema == NULL || t->name == NULL)
				{
					char		text[37];

					id_text(id, text);
					warn("the definition of table %s in the metadata log is malformed", text);
				}
				free(def);
				break;
			}
		case REC_TABLE_DROP:
			{
				XTable	   *t = pool_table_id(pool, id);

				if (t)
					t->live = false;
				break;
			}
		default:
			/* SHARD: shards are found by their keys; unknown kinds are skipped */
			break;
	}
}

static int
cmp_log(const void *a, const void *b)
{
	const LogObject *x = *(LogObject *const *) a;
	const LogObject *y = *(LogObject *const *) b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return memcmp(x->id, y->id, CODEC_OBJID_LEN);
}

/* parse a decoded batch's header: confirmations noted, records located */
/* the key of a log object in the index of log objects */
typedef struct LogKey
{
	uint8_t		key[64];		/* instance (36), zero, seq at 40, id at 48 */
} LogKey;

static void
log_key_of(LogKey *k, const char *instance, uint64_t seq, const uint8_t id[CODEC_OBJID_LEN])
{
	memset(k, 0, sizeof(LogKey));
	memcpy(k->key, instance, 36);
	memcpy(k->key + 40, &seq, 8);
	memcpy(k->key + 48, id, CODEC_OBJID_LEN);
}

static long
find_log(const Index *ix, const LogKey *keys, const char *instance, uint64_t seq,
		 const uint8_t id[CODEC_OBJID_LEN])
{
	LogKey		k;

	log_key_of(&k, instance, seq, id);
	return ix_find(ix, keys, sizeof(LogKey), 0, sizeof(k.key), k.key);
}

static bool
parse_batch(XPool *pool, LogObject *l, LogObject **logs, const Index *ix, const LogKey *keys)
{
	Reader		r = {l->batch, l->batch + l->batch_len, false};
	const uint8_t *magic = rd_fixed(&r, 4);
	char	   *instance;
	char	   *poolname;
	uint32_t	nconf;

	if (magic == NULL || memcmp(magic, "DMB1", 4) != 0 || rd_int(&r, 4) != 1)
		return false;
	instance = rd_str(&r);
	poolname = rd_str(&r);
	if (rd_int(&r, 8) != l->seq)
		r.bad = true;
	(void) rd_int(&r, 8);
	nconf = (uint32_t) rd_int(&r, 4);
	for (uint32_t c = 0; c < nconf && !r.bad; c++)
	{
		uint64_t	seq = rd_int(&r, 8);
		uint8_t		id[CODEC_OBJID_LEN];

		long		pos;

		rd_id(&r, id);
		pos = find_log(ix, keys, l->instance, seq, id);
		if (pos >= 0)
			logs[pos]->confirmed = true;
	}
	l->nrecords = (uint32_t) rd_int(&r, 4);
	l->records = r.p;
	l->other_pool = poolname == NULL || strcmp(poolname, pool->name) != 0;
	if (instance == NULL || strcmp(instance, l->instance) != 0)
		r.bad = true;
	free(instance);
	free(poolname);
	return !r.bad;
}

static void apply_deletions(XPool *pool);

void
pool_load(XPool *pool, const char *instance)
{
	LogObject **logs = NULL;
	size_t		nlogs = 0;
	LogKey	   *keys = NULL;
	size_t		nkeys = 0;
	Index		ix = {0};
	int			listed = 0;
	int			wrong_key = 0;
	uint8_t		wrong_fp[CODEC_KEY_FINGERPRINT_LEN];
	char	  **instances = NULL;
	int			ninstances = 0;

	for (int s = 0; s < pool->nstores; s++)
		if (store_list(&pool->stores[s]))
			listed++;
	if (listed == 0)
		fatal(EXIT_DATA, "no provider could be listed");

	/* the log objects, by their keys */
	for (int s = 0; s < pool->nstores; s++)
	{
		Store	   *st = &pool->stores[s];

		for (size_t i = 0; i < st->nkeys; i++)
		{
			char		inst[37];
			uint64_t	seq;
			uint8_t		id[CODEC_OBJID_LEN];
			int			shard;
			LogObject  *l = NULL;
			long		pos;

			if (!parse_log_key(st->keys[i], inst, &seq, id, &shard))
				continue;
			if (instance && strcmp(inst, instance) != 0)
				continue;
			pos = find_log(&ix, keys, inst, seq, id);
			if (pos >= 0)
				l = logs[pos];
			if (l == NULL)
			{
				bool		known = false;

				l = xcalloc(1, sizeof(LogObject));
				memcpy(l->instance, inst, 37);
				l->seq = seq;
				memcpy(l->id, id, CODEC_OBJID_LEN);
				for (int k = 0; k < CODEC_RS_MAX_SHARDS; k++)
					l->store_of[k] = -1;
				*GROW(logs, nlogs) = l;
				log_key_of(GROW(keys, nkeys), inst, seq, id);
				ix_add(&ix, keys, sizeof(LogKey), 0, sizeof(keys[0].key), nkeys - 1);
				for (int k = 0; k < ninstances && !known; k++)
					known = strcmp(instances[k], inst) == 0;
				if (!known)
				{
					instances = xrealloc(instances, sizeof(char *) * (ninstances + 1));
					instances[ninstances++] = xstrdup(inst);
				}
			}
			if (shard >= 0)
			{
				if (l->store_of[shard] < 0)
					l->store_of[shard] = s;
			}
			else if (!l->marked)
			{
				char	   *err = NULL;
				size_t		len;
				uint8_t    *m = store_get(st, st->keys[i], &len, &err);

				if (m && marker_authentic(pool, l, m, len))
					l->marked = true;
				free(m);
				free(err);
			}
		}
	}
	if (ninstances > 1)
	{
		Buf			b = {0};

		for (int i = 0; i < ninstances; i++)
			buf_printf(&b, "%s%s", i ? ", " : "", instances[i]);
		fatal(EXIT_USAGE, "the providers hold the metadata logs of %d writers: %s; choose one with --instance",
			  ninstances, b.data);
	}
	if (nlogs == 0)
	{
		if (instance)
			fatal(EXIT_USAGE, "no metadata log of instance %s on the providers", instance);
		fatal(EXIT_USAGE, "no metadata log (meta/) on the providers: is this a destor pool's provider list?");
	}
	if (nlogs > 1)
		qsort(logs, nlogs, sizeof(LogObject *), cmp_log);
	/* the index again, for the sorted order */
	free(ix.slot);
	memset(&ix, 0, sizeof(ix));
	for (size_t i = 0; i < nlogs; i++)
	{
		log_key_of(&keys[i], logs[i]->instance, logs[i]->seq, logs[i]->id);
		ix_add(&ix, keys, sizeof(LogKey), 0, sizeof(keys[0].key), i);
	}

	/* decode every log object; confirmations are in the batches */
	for (size_t i = 0; i < nlogs; i++)
	{
		LogObject  *l = logs[i];

		switch (decode_log(pool, l, wrong_fp))
		{
			case DEC_OK:
				l->decoded = parse_batch(pool, l, logs, &ix, keys);
				if (!l->decoded)
					pool->logs_unreadable++;
				else
				{
					pool->logs_read++;
					pool->logs_degraded += l->degraded;
				}
				break;
			case DEC_WRONG_KEY:
				wrong_key++;
				break;
			case DEC_FAILED:
				pool->logs_unreadable++;
				break;
		}
	}
	if (wrong_key > 0)
	{
		char		mine[2 * CODEC_KEY_FINGERPRINT_LEN + 1];
		char		theirs[2 * CODEC_KEY_FINGERPRINT_LEN + 1];
		int			decoded = 0;

		fingerprint_hex(pool->master_id, mine);
		fingerprint_hex(wrong_fp, theirs);
		for (size_t i = 0; i < nlogs; i++)
			decoded += logs[i]->decoded;
		if (decoded == 0)
			fatal(EXIT_USAGE, "the metadata log was written under another master key (fingerprint %s); the key given has fingerprint %s",
				  theirs, mine);
		warn("%d log objects were written under another master key (fingerprint %s, the key given has %s): skipped",
			 wrong_key, theirs, mine);
	}

	for (size_t i = 0; i < nlogs; i++)
	{
		LogObject  *l = logs[i];
		Reader		r;

		if (!l->decoded)
			continue;
		if (!l->marked && !l->confirmed)
		{
			pool->logs_uncommitted++;
			continue;
		}
		if (l->other_pool)
		{
			pool->logs_other_pools++;
			continue;
		}
		r.p = l->records;
		r.end = l->batch + l->batch_len;
		r.bad = false;
		for (uint32_t n = 0; n < l->nrecords && !r.bad; n++)
		{
			int			kind = (int) rd_int(&r, 1);
			uint32_t	len;
			const uint8_t *body = rd_bytes(&r, &len);
			Reader		br = {body, body + len, false};

			if (body == NULL)
				break;
			replay_record(pool, kind, &br);
		}
		if (r.bad)
			pool->logs_unreadable++;
		else
			pool->logs_replayed++;
	}
	for (size_t i = 0; i < nlogs; i++)
	{
		free(logs[i]->batch);
		free(logs[i]);
	}
	free(logs);
	free(keys);
	free(ix.slot);
	apply_deletions(pool);
}

/* each segment's deleted rows: the OR of its live deletion bitmaps */
static void
apply_deletions(XPool *pool)
{
	for (size_t i = 0; i < pool->ndeletions; i++)
	{
		XDeletion  *d = &pool->deletions[i];
		XSegment   *seg;

		if (!d->live || d->bitmap == NULL ||
			(seg = find_segment(pool, d->table_id, d->segment_no)) == NULL)
			continue;
		if (d->len > seg->deleted_len)
		{
			seg->deleted = xrealloc(seg->deleted, d->len);
			memset(seg->deleted + seg->deleted_len, 0, d->len - seg->deleted_len);
			seg->deleted_len = d->len;
		}
		for (size_t b = 0; b < d->len; b++)
			seg->deleted[b] |= d->bitmap[b];
	}
}

XTable *
pool_table(XPool *pool, const char *qualified)
{
	for (size_t i = 0; i < pool->ntables; i++)
	{
		XTable	   *t = &pool->tables[i];
		char	   *q;
		bool		match;

		if (!t->live || t->schema == NULL || t->name == NULL)
			continue;
		q = xprintf("%s.%s", t->schema, t->name);
		match = strcmp(q, qualified) == 0 ||
			(strchr(qualified, '.') == NULL && strcmp(t->name, qualified) == 0);
		free(q);
		if (match)
			return t;
	}
	return NULL;
}
