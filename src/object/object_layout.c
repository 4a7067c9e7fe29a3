/*
 * object_layout.c — arithmetic and naming shared by writer and reader.
 *
 * Provider object names are opaque: "ds/<2 hex>/<object id>.<shard>".  No
 * table, blob or user name ever reaches a provider.
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "object.h"

/* The object id in UUID form, for messages. */
char *
object_id_text(const uint8 id[CODEC_OBJID_LEN])
{
	char	   *h = object_id_hex(id);

	return psprintf("%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
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

/*
 * Shards go to n distinct providers of the pool.  The starting provider is
 * taken from the (random) object id, so load spreads when a pool has more
 * providers than shards.
 */
void
object_choose_providers(const uint8 id[CODEC_OBJID_LEN], Pool *pool, char **out)
{
	int			n = pool->data_shards + pool->parity_shards;
	int			start = ((id[0] << 8) | id[1]) % pool->nproviders;

	Assert(n <= pool->nproviders);
	for (int i = 0; i < n; i++)
		out[i] = pool->provider_names[(start + i) % pool->nproviders];
}
