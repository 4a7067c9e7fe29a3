/*
 * main.c — destor-export: list, verify and export a destor pool with no
 * PostgreSQL server (README, "destor-export"; docs/ARCHITECTURE.md).
 *
 *   destor-export --master-key FILE --provider SPEC... --pool NAME COMMAND
 *
 * COMMAND is ls, verify, table SCHEMA.NAME [-o FILE] or blob ID [-o FILE].
 */
#include "export.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

static void
usage(FILE *f)
{
	fprintf(f,
			"%s reads a destor pool from its providers, without a PostgreSQL server.\n\n"
			"Usage:\n"
			"  %s [OPTION]... ls\n"
			"  %s [OPTION]... verify\n"
			"  %s [OPTION]... table SCHEMA.NAME [-o FILE]\n"
			"  %s [OPTION]... blob ID [-o FILE]\n\n"
			"Options:\n"
			"  -k, --master-key=FILE     the master key file (64 hex digits)\n"
			"  -p, --provider=SPEC       a provider of the pool, repeated for each:\n"
			"                            file:/path or s3:http[s]://host[:port]/bucket[/prefix]\n"
			"  -P, --pool=NAME           the pool's name (its foreign server's name)\n"
			"      --instance=UUID       the writer whose log to read, when several wrote\n"
			"      --s3-access-key=KEY   S3 access key id (default: $AWS_ACCESS_KEY_ID)\n"
			"      --s3-secret-key=KEY   S3 secret key (default: $AWS_SECRET_ACCESS_KEY)\n"
			"      --s3-region=REGION    S3 region (default: $AWS_REGION, else us-east-1)\n"
			"  -o, --output=FILE         write the table or blob there (default: stdout)\n"
			"  -h, --help                show this help\n",
			progname, progname, progname, progname, progname);
}

static FILE *
open_output(const char *path, char **tmp)
{
	FILE	   *f;
	int			fd;

	*tmp = NULL;
	if (path == NULL || strcmp(path, "-") == 0)
		return stdout;
	/* written next to its place and renamed: no half file under the name */
	*tmp = xprintf("%s.tmp.%d", path, (int) getpid());
	fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || (f = fdopen(fd, "wb")) == NULL)
		fatal(EXIT_USAGE, "cannot create \"%s\": %s", *tmp, strerror(errno));
	return f;
}

static void
close_output(FILE *f, const char *path, char *tmp)
{
	if (fflush(f) != 0 || ferror(f))
	{
		if (tmp)
			unlink(tmp);
		fatal(EXIT_DATA, "cannot write \"%s\": %s", path ? path : "stdout", strerror(errno));
	}
	if (tmp)
	{
		if (fsync(fileno(f)) != 0 || fclose(f) != 0 || rename(tmp, path) != 0)
		{
			unlink(tmp);
			fatal(EXIT_DATA, "cannot write \"%s\": %s", path, strerror(errno));
		}
		free(tmp);
	}
}

static void
write_all(FILE *f, const void *data, size_t len)
{
	if (len > 0 && fwrite(data, 1, len, f) != len)
		fatal(EXIT_DATA, "cannot write the output: %s", strerror(errno));
}

/* the bytes [start, start + len) of an object's plaintext to a file, hashed on the way */
typedef struct RangeSink
{
	FILE	   *f;
	uint64_t	pos;
	uint64_t	start;
	uint64_t	len;
	EVP_MD_CTX *sha;
} RangeSink;

static void
sink_range(void *arg, const uint8_t *data, size_t len)
{
	RangeSink  *r = (RangeSink *) arg;
	uint64_t	from = r->pos < r->start ? r->start - r->pos : 0;
	uint64_t	end = r->start + r->len;
	uint64_t	to = r->pos + len <= end ? len : (r->pos < end ? end - r->pos : 0);

	if (from < to)
	{
		write_all(r->f, data + from, to - from);
		if (r->sha && EVP_DigestUpdate(r->sha, data + from, to - from) != 1)
			fatal(EXIT_DATA, "could not compute a SHA-256");
	}
	r->pos += len;
}

static void
read_master_key(XPool *pool, const char *path)
{
	char		buf[256];
	int			fd = open(path, O_RDONLY);
	ssize_t		n;

	if (fd < 0)
		fatal(EXIT_USAGE, "cannot open master key file \"%s\": %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		fatal(EXIT_USAGE, "cannot read master key file \"%s\": %s", path, strerror(errno));
	if (codec_parse_hex_key(buf, (size_t) n, pool->master) != 0)
	{
		codec_secure_zero(buf, sizeof(buf));
		fatal(EXIT_USAGE, "master key file \"%s\" does not hold a 256-bit key (64 hexadecimal digits)", path);
	}
	codec_secure_zero(buf, sizeof(buf));
	codec_key_fingerprint(pool->master, pool->master_id);
}

/* ---------------------------------------------------------------------
 * ls
 * --------------------------------------------------------------------- */

static int
cmp_table(const void *a, const void *b)
{
	const XTable *x = *(XTable *const *) a;
	const XTable *y = *(XTable *const *) b;
	int			c = strcmp(x->schema ? x->schema : "", y->schema ? y->schema : "");

	return c ? c : strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

static int
cmp_blob(const void *a, const void *b)
{
	return memcmp((*(XBlob *const *) a)->id, (*(XBlob *const *) b)->id, CODEC_OBJID_LEN);
}

static int
cmd_ls(XPool *pool)
{
	XTable	  **tables = xcalloc(pool->ntables, sizeof(XTable *));
	XBlob	  **blobs = xcalloc(pool->nblobs, sizeof(XBlob *));
	size_t		nt = 0,
				nb = 0;

	for (size_t i = 0; i < pool->ntables; i++)
		if (pool->tables[i].live && pool->tables[i].schema && pool->tables[i].name)
			tables[nt++] = &pool->tables[i];
	for (size_t i = 0; i < pool->nblobs; i++)
		if (pool->blobs[i].live)
			blobs[nb++] = &pool->blobs[i];
	qsort(tables, nt, sizeof(XTable *), cmp_table);
	qsort(blobs, nb, sizeof(XBlob *), cmp_blob);

	printf("pool %s: %zu tables, %zu blobs (%d log objects replayed", pool->name, nt, nb,
		   pool->logs_replayed);
	if (pool->logs_uncommitted)
		printf(", %d not committed", pool->logs_uncommitted);
	if (pool->logs_unreadable)
		printf(", %d unreadable", pool->logs_unreadable);
	printf(")\n");
	for (size_t i = 0; i < nt; i++)
	{
		XTable	   *t = tables[i];
		uint64_t	rows = 0,
					deleted = 0;
		int			segs = 0;
		bool		first = true;

		for (size_t s = 0; s < pool->nsegments; s++)
		{
			XSegment   *seg = &pool->segments[s];

			if (!seg->live || memcmp(seg->table_id, t->id, CODEC_OBJID_LEN) != 0)
				continue;
			segs++;
			rows += seg->rows;
			for (size_t b = 0; b < seg->deleted_len; b++)
				deleted += (uint64_t) __builtin_popcount(seg->deleted[b]);
		}
		printf("table %s.%s (", t->schema, t->name);
		for (int c = 0; c < t->ncols; c++)
		{
			if (t->cols[c].dropped)
				continue;
			printf("%s%s %s", first ? "" : ", ", t->cols[c].name ? t->cols[c].name : "?",
				   t->cols[c].type ? t->cols[c].type : "?");
			first = false;
		}
		printf(") rows %llu segments %d\n", (unsigned long long) (rows - deleted), segs);
	}
	for (size_t i = 0; i < nb; i++)
	{
		XBlob	   *b = blobs[i];
		XObject    *o = pool_object(pool, b->packed ? b->pack_id : b->id);
		char		text[37];
		char		pack[37];

		id_text(b->id, text);
		id_text(b->pack_id, pack);
		if (o && b->packed)
			printf("blob %s size %llu owner %s packed in %s\n", text,
				   (unsigned long long) b->pack_length, b->owner ? b->owner : "?", pack);
		else if (o)
			printf("blob %s size %llu owner %s\n", text, (unsigned long long) o->size,
				   b->owner ? b->owner : "?");
		else
			printf("blob %s size ? owner %s (its object is not in the log)\n", text,
				   blobs[i]->owner ? blobs[i]->owner : "?");
	}
	free(tables);
	free(blobs);
	return 0;
}

/* ---------------------------------------------------------------------
 * blob
 * --------------------------------------------------------------------- */

static int
cmd_blob(XPool *pool, const char *idtext, const char *output)
{
	uint8_t		id[CODEC_OBJID_LEN];
	XBlob	   *blob = NULL;
	XObject    *o;
	ObjectCheck check;
	FILE	   *f;
	char	   *tmp;
	RangeSink	range = {0};

	if (!id_parse(idtext, id))
		fatal(EXIT_USAGE, "\"%s\" is not a blob id (a UUID)", idtext);
	blob = pool_blob(pool, id);
	if (blob == NULL)
		fatal(EXIT_USAGE, "pool \"%s\" has no blob %s", pool->name, idtext);
	o = pool_object(pool, blob->packed ? blob->pack_id : id);
	if (o == NULL)
		fatal(EXIT_DATA, "the object of blob %s is not in the metadata log", idtext);
	if (blob->packed && (blob->pack_offset > o->size || blob->pack_length > o->size - blob->pack_offset))
		fatal(EXIT_DATA, "blob %s lies outside its pack (%llu bytes at %llu of %llu)", idtext,
			  (unsigned long long) blob->pack_length, (unsigned long long) blob->pack_offset,
			  (unsigned long long) o->size);
	f = open_output(output, &tmp);
	range.f = f;
	range.start = blob->packed ? blob->pack_offset : 0;
	range.len = blob->packed ? blob->pack_length : o->size;
	range.sha = blob->has_sha256 ? EVP_MD_CTX_new() : NULL;
	if (blob->has_sha256 && (range.sha == NULL || EVP_DigestInit_ex(range.sha, EVP_sha256(), NULL) != 1))
		fatal(EXIT_DATA, "could not compute a SHA-256");
	if (!object_stream(pool, o, &check, sink_range, &range))
	{
		if (tmp)
			unlink(tmp);
		fatal(EXIT_DATA, "blob %s cannot be read: %s", idtext, check.error);
	}
	if (range.sha)
	{
		uint8_t		digest[32];
		unsigned int dlen = 0;

		/* packed blobs carry their SHA-256 in the log: the bytes must be those */
		if (EVP_DigestFinal_ex(range.sha, digest, &dlen) != 1 || dlen != 32 ||
			memcmp(digest, blob->sha256, 32) != 0)
		{
			if (tmp)
				unlink(tmp);
			fatal(EXIT_DATA, "blob %s does not match the SHA-256 the metadata log records for it", idtext);
		}
		EVP_MD_CTX_free(range.sha);
	}
	close_output(f, output, tmp);
	return 0;
}

/* ---------------------------------------------------------------------
 * table
 * --------------------------------------------------------------------- */

/* a segment directory (segment_format.c) */
typedef struct Dir
{
	uint64_t	rows;
	uint32_t	nrg;
	uint32_t	ncols;
	uint32_t   *typids;
	uint8_t    *kinds;
	uint32_t   *rg_rows;
	uint64_t   *offset;			/* [rg * ncols + col] */
	uint32_t   *length;
	uint32_t   *raw_length;
	uint32_t   *null_count;
	uint8_t    *encoding;		/* ChunkEncoding: 0 plain, 1 delta */
} Dir;

static bool
dir_parse(const uint8_t *p, size_t len, Dir *d)
{
	const uint8_t *end = p + len;
	bool		encoded;

#define NEED(n) do { if ((size_t) (end - p) < (size_t) (n)) return false; } while (0)
	memset(d, 0, sizeof(Dir));
	NEED(5 + 8 + 4 + 4);
	encoded = memcmp(p, "DDIR2", 5) == 0;
	if (!encoded && memcmp(p, "DDIR1", 5) != 0)
		return false;
	p += 5;
	d->rows = get_le(p, 8);
	d->nrg = (uint32_t) get_le(p + 8, 4);
	d->ncols = (uint32_t) get_le(p + 12, 4);
	p += 16;
	if (d->nrg > 100000000 || d->ncols > 1600)
		return false;
	d->typids = xcalloc(d->ncols, sizeof(uint32_t));
	d->kinds = xcalloc(d->ncols, 1);
	for (uint32_t c = 0; c < d->ncols; c++)
	{
		NEED(5);
		d->typids[c] = (uint32_t) get_le(p, 4);
		d->kinds[c] = p[4];
		p += 5;
	}
	d->rg_rows = xcalloc(d->nrg, sizeof(uint32_t));
	for (uint32_t g = 0; g < d->nrg; g++)
	{
		NEED(4);
		d->rg_rows[g] = (uint32_t) get_le(p, 4);
		p += 4;
	}
	d->offset = xcalloc((size_t) d->nrg * d->ncols, sizeof(uint64_t));
	d->length = xcalloc((size_t) d->nrg * d->ncols, sizeof(uint32_t));
	d->raw_length = xcalloc((size_t) d->nrg * d->ncols, sizeof(uint32_t));
	d->null_count = xcalloc((size_t) d->nrg * d->ncols, sizeof(uint32_t));
	d->encoding = xcalloc((size_t) d->nrg * d->ncols, 1);
	for (size_t i = 0; i < (size_t) d->nrg * d->ncols; i++)
	{
		NEED(8 + 4 + 4 + 4 + 1 + 1 + (encoded ? 1 : 0));
		d->offset[i] = get_le(p, 8);
		d->length[i] = (uint32_t) get_le(p + 8, 4);
		d->raw_length[i] = (uint32_t) get_le(p + 12, 4);
		d->null_count[i] = (uint32_t) get_le(p + 16, 4);
		p += 8 + 4 + 4 + 4 + 1;
		if (encoded)
			d->encoding[i] = *p++;
		if (*p++)
		{
			/* min and max: skipped */
			for (int mm = 0; mm < 2; mm++)
			{
				uint32_t	l;

				NEED(4);
				l = (uint32_t) get_le(p, 4);
				p += 4;
				NEED(l);
				p += l;
			}
		}
	}
	return true;
#undef NEED
}

/*
 * chunk_decode: an encoded chunk's plain form (segment_format.c's
 * chunk_decode): the null bitmap as it is, the values delta-decoded.
 * Frees raw.
 */
static uint8_t *
chunk_decode(uint8_t *raw, uint32_t raw_length, uint32_t rows, uint32_t null_count,
			 uint8_t encoding, uint64_t segment_no, const char *name)
{
	uint32_t	bitmap_len = (rows + 7) / 8;
	uint32_t	bytes = raw_length - bitmap_len;
	uint32_t	count = null_count <= rows ? rows - null_count : 0;
	int			width = count > 0 && bytes % count == 0 ? (int) (bytes / count) : 0;
	uint8_t    *plain;

	if (encoding != 1 || null_count > rows || !codec_delta_width_ok(width))
		fatal(EXIT_DATA, "a column chunk of segment %llu of table %s has an encoding its values do not fit",
			  (unsigned long long) segment_no, name);
	plain = xmalloc(raw_length + 1);
	memcpy(plain, raw, bitmap_len);
	codec_delta_decode(raw + bitmap_len, count, width, plain + bitmap_len);
	free(raw);
	return plain;
}

static void
dir_free(Dir *d)
{
	free(d->typids);
	free(d->kinds);
	free(d->rg_rows);
	free(d->offset);
	free(d->length);
	free(d->raw_length);
	free(d->null_count);
	free(d->encoding);
}

static int
cmp_segment(const void *a, const void *b)
{
	const XSegment *x = *(XSegment *const *) a;
	const XSegment *y = *(XSegment *const *) b;

	return x->segment_no < y->segment_no ? -1 : x->segment_no > y->segment_no;
}

static int
cmd_table(XPool *pool, const char *name, const char *output)
{
	XTable	   *t = pool_table(pool, name);
	XSegment  **segs;
	size_t		nsegs = 0;
	Buf			line = {0};
	FILE	   *f;
	char	   *tmp;
	int			nlive = 0;
	bool		first = true;

	if (t == NULL)
		fatal(EXIT_USAGE, "pool \"%s\" has no table \"%s\" (destor-export ls lists them)", pool->name, name);
	segs = xcalloc(pool->nsegments, sizeof(XSegment *));
	for (size_t i = 0; i < pool->nsegments; i++)
		if (pool->segments[i].live && memcmp(pool->segments[i].table_id, t->id, CODEC_OBJID_LEN) == 0)
			segs[nsegs++] = &pool->segments[i];
	qsort(segs, nsegs, sizeof(XSegment *), cmp_segment);
	for (int c = 0; c < t->ncols; c++)
		nlive += !t->cols[c].dropped;

	/* every stored column's type must be one we can print: checked first */
	for (size_t s = 0; s < nsegs; s++)
	{
		Dir			d;

		if (!dir_parse(segs[s]->directory, segs[s]->directory_len, &d))
			fatal(EXIT_DATA, "a segment directory of table %s is malformed", name);
		for (int c = 0; c < t->ncols; c++)
		{
			int			a = t->cols[c].attnum - 1;

			if (t->cols[c].dropped || a < 0 || (uint32_t) a >= d.ncols || d.kinds[a] == 0)
				continue;
			if (type_unsupported(d.typids[a], d.kinds[a]))
				fatal(EXIT_USAGE, "column \"%s\" of table %s has type %s (oid %u), which destor-export cannot print",
					  t->cols[c].name, name, t->cols[c].type ? t->cols[c].type : "?", d.typids[a]);
		}
		dir_free(&d);
	}

	f = open_output(output, &tmp);
	for (int c = 0; c < t->ncols; c++)
	{
		if (t->cols[c].dropped)
			continue;
		if (!first)
			buf_putc(&line, ',');
		csv_field(&line, t->cols[c].name, strlen(t->cols[c].name), nlive == 1);
		first = false;
	}
	buf_putc(&line, '\n');
	write_all(f, line.data, line.len);

	for (size_t s = 0; s < nsegs; s++)
	{
		XSegment   *seg = segs[s];
		XObject    *o = pool_object(pool, seg->object_id);
		ObjectCheck check;
		uint8_t    *data;
		size_t		len;
		Dir			d;
		uint64_t	first_row = 0;

		if (o == NULL)
			fatal(EXIT_DATA, "the object of segment %llu of table %s is not in the metadata log",
				  (unsigned long long) seg->segment_no, name);
		data = object_read(pool, o, &len, &check);
		if (data == NULL)
			fatal(EXIT_DATA, "segment %llu of table %s cannot be read: %s",
				  (unsigned long long) seg->segment_no, name, check.error);
		dir_parse(seg->directory, seg->directory_len, &d);
		for (uint32_t g = 0; g < d.nrg; g++)
		{
			uint32_t	rows = d.rg_rows[g];
			uint8_t   **raw = xcalloc(t->ncols, sizeof(uint8_t *));
			const uint8_t **pos = xcalloc(t->ncols, sizeof(uint8_t *));
			const uint8_t **end = xcalloc(t->ncols, sizeof(uint8_t *));

			/* each column's chunk of the row group, decompressed */
			for (int c = 0; c < t->ncols; c++)
			{
				int			a = t->cols[c].attnum - 1;
				size_t		i = (size_t) g * d.ncols + a;

				if (t->cols[c].dropped || a < 0 || (uint32_t) a >= d.ncols || d.kinds[a] == 0)
					continue;
				if (d.offset[i] + d.length[i] > len)
					fatal(EXIT_DATA, "segment %llu of table %s is shorter than its directory says",
						  (unsigned long long) seg->segment_no, name);
				raw[c] = xmalloc(d.raw_length[i] + 1);
				if (d.length[i] == d.raw_length[i])
					memcpy(raw[c], data + d.offset[i], d.length[i]);
				else
				{
					size_t		got;

					if (codec_decompress(data + d.offset[i], d.length[i], raw[c], d.raw_length[i], &got) != 0 ||
						got != d.raw_length[i])
						fatal(EXIT_DATA, "a column chunk of segment %llu of table %s does not decompress",
							  (unsigned long long) seg->segment_no, name);
				}
				if (d.raw_length[i] < (rows + 7) / 8)
					fatal(EXIT_DATA, "a column chunk of segment %llu of table %s is truncated",
						  (unsigned long long) seg->segment_no, name);
				if (d.encoding[i] != 0)
					raw[c] = chunk_decode(raw[c], d.raw_length[i], rows, d.null_count[i],
										  d.encoding[i], seg->segment_no, name);
				pos[c] = raw[c] + (rows + 7) / 8;
				end[c] = raw[c] + d.raw_length[i];
			}
			for (uint32_t r = 0; r < rows; r++)
			{
				uint64_t	row = first_row + r;
				bool		deleted = seg->deleted && row / 8 < seg->deleted_len &&
					((seg->deleted[row / 8] >> (row % 8)) & 1);

				line.len = 0;
				first = true;
				for (int c = 0; c < t->ncols; c++)
				{
					int			a = t->cols[c].attnum - 1;

					if (t->cols[c].dropped)
						continue;
					if (!first)
						buf_putc(&line, ',');
					first = false;
					if (raw[c] == NULL || ((raw[c][r / 8] >> (r % 8)) & 1))
						continue;	/* NULL: nothing */
					{
						Buf			v = {0};

						if (!value_text(&v, d.typids[a], d.kinds[a], &pos[c], end[c]))
							fatal(EXIT_DATA, "a column chunk of segment %llu of table %s is malformed",
								  (unsigned long long) seg->segment_no, name);
						csv_field(&line, v.data ? v.data : "", v.len, nlive == 1);
						free(v.data);
					}
				}
				buf_putc(&line, '\n');
				if (!deleted)
					write_all(f, line.data, line.len);
			}
			for (int c = 0; c < t->ncols; c++)
				free(raw[c]);
			free(raw);
			free(pos);
			free(end);
			first_row += rows;
		}
		dir_free(&d);
		free(data);
	}
	close_output(f, output, tmp);
	free(line.data);
	free(segs);
	return 0;
}

/* ---------------------------------------------------------------------
 * verify
 * --------------------------------------------------------------------- */

static const char *
what_uses(XPool *pool, const XObject *o, char *buf, size_t len)
{
	char		text[37];

	if (pool_blob(pool, o->id))
	{
		id_text(o->id, text);
		snprintf(buf, len, "blob %s", text);
		return buf;
	}
	if (o->pack_refs > 0)
	{
		id_text(o->id, text);
		snprintf(buf, len, "pack %s (%d blobs)", text, o->pack_refs);
		return buf;
	}
	for (size_t i = 0; i < pool->nsegments; i++)
	{
		XSegment   *s = &pool->segments[i];

		if (s->live && memcmp(s->object_id, o->id, CODEC_OBJID_LEN) == 0)
		{
			XTable	   *t = pool_table_id(pool, s->table_id);

			snprintf(buf, len, "table %s.%s segment %llu", t && t->schema ? t->schema : "?",
					 t && t->name ? t->name : "?", (unsigned long long) s->segment_no);
			return buf;
		}
	}
	id_text(o->id, text);
	snprintf(buf, len, "object %s", text);
	return buf;
}

static int
cmd_verify(XPool *pool)
{
	int			ok = 0,
				degraded = 0,
				lost = 0;

	for (size_t i = 0; i < pool->nobjects; i++)
	{
		XObject    *o = &pool->objects[i];
		ObjectCheck check;
		char		name[256];
		int			bad = 0;
		bool		readable;

		if (!o->live)
			continue;
		what_uses(pool, o, name, sizeof(name));
		readable = object_stream(pool, o, &check, NULL, NULL);
		for (int s = 0; s < check.nshards; s++)
			bad += check.state[s] != XSHARD_OK;
		if (!readable)
		{
			lost++;
			printf("LOST      %s: %s\n", name, check.error ? check.error : "unreadable");
		}
		else if (bad > 0)
		{
			degraded++;
			printf("DEGRADED  %s: %d of %d shards bad, recoverable\n", name, bad, check.nshards);
		}
		else
		{
			ok++;
			printf("OK        %s\n", name);
		}
		for (int s = 0; s < check.nshards; s++)
			if (check.state[s] != XSHARD_OK)
				printf("          shard %d %s: %s\n", s,
					   check.state[s] == XSHARD_MISSING ? "missing" : "corrupt",
					   check.detail[s] ? check.detail[s] : "");
	}
	printf("verified %d objects: %d OK, %d degraded (recoverable), %d LOST\n",
		   ok + degraded + lost, ok, degraded, lost);
	printf("metadata log: %d log objects read, %d degraded (recoverable), %d unreadable\n",
		   pool->logs_read, pool->logs_degraded, pool->logs_unreadable);
	return lost > 0 ? EXIT_DATA : 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"master-key", required_argument, NULL, 'k'},
		{"provider", required_argument, NULL, 'p'},
		{"pool", required_argument, NULL, 'P'},
		{"instance", required_argument, NULL, 'I'},
		{"s3-access-key", required_argument, NULL, 'A'},
		{"s3-secret-key", required_argument, NULL, 'S'},
		{"s3-region", required_argument, NULL, 'R'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	XPool		pool;
	const char *keyfile = NULL;
	const char *instance = NULL;
	const char *output = NULL;
	S3Credentials creds = {0};
	const char *cmd;
	const char *arg = NULL;
	int			c;
	int			rc;

	memset(&pool, 0, sizeof(pool));
	/* options may follow the command: destor-export table x -o f.csv */
	while ((c = getopt_long(argc, argv, "k:p:P:o:h", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 'k':
				keyfile = optarg;
				break;
			case 'p':
				pool.stores = xrealloc(pool.stores, sizeof(Store) * (pool.nstores + 1));
				store_init(&pool.stores[pool.nstores++], optarg);
				break;
			case 'P':
				pool.name = optarg;
				break;
			case 'I':
				instance = optarg;
				break;
			case 'A':
				creds.access_key = optarg;
				break;
			case 'S':
				creds.secret_key = optarg;
				break;
			case 'R':
				creds.region = optarg;
				break;
			case 'o':
				output = optarg;
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (optind >= argc)
	{
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "table") == 0 || strcmp(cmd, "blob") == 0)
	{
		if (optind >= argc)
			fatal(EXIT_USAGE, "\"%s\" needs an argument (see --help)", cmd);
		arg = argv[optind++];
	}
	else if (strcmp(cmd, "ls") != 0 && strcmp(cmd, "verify") != 0)
		fatal(EXIT_USAGE, "unknown command \"%s\" (ls, verify, table, blob)", cmd);
	if (optind < argc)
		fatal(EXIT_USAGE, "unexpected argument \"%s\"", argv[optind]);
	if (output && arg == NULL)
		fatal(EXIT_USAGE, "-o goes with table and blob");
	if (keyfile == NULL)
		fatal(EXIT_USAGE, "--master-key is required");
	if (pool.nstores == 0)
		fatal(EXIT_USAGE, "at least one --provider is required");
	if (pool.name == NULL)
		fatal(EXIT_USAGE, "--pool is required");

	if (creds.access_key == NULL)
		creds.access_key = getenv("AWS_ACCESS_KEY_ID");
	if (creds.secret_key == NULL)
		creds.secret_key = getenv("AWS_SECRET_ACCESS_KEY");
	creds.session_token = getenv("AWS_SESSION_TOKEN");
	if (creds.region == NULL)
		creds.region = getenv("AWS_REGION");
	if (creds.region == NULL || creds.region[0] == '\0')
		creds.region = "us-east-1";
	for (int i = 0; i < pool.nstores; i++)
		if (pool.stores[i].is_s3 &&
			(creds.access_key == NULL || creds.access_key[0] == '\0' ||
			 creds.secret_key == NULL || creds.secret_key[0] == '\0'))
			fatal(EXIT_USAGE, "no S3 credentials for provider \"%s\": set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --s3-access-key and --s3-secret-key)",
				  pool.stores[i].spec);
	store_set_credentials(&creds);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		fatal(EXIT_DATA, "could not initialize libcurl");

	read_master_key(&pool, keyfile);
	pool_load(&pool, instance);
	if (strcmp(cmd, "ls") == 0)
		rc = cmd_ls(&pool);
	else if (strcmp(cmd, "verify") == 0)
		rc = cmd_verify(&pool);
	else if (strcmp(cmd, "table") == 0)
		rc = cmd_table(&pool, arg, output);
	else
		rc = cmd_blob(&pool, arg, output);
	codec_secure_zero(pool.master, sizeof(pool.master));
	curl_global_cleanup();
	return rc;
}
