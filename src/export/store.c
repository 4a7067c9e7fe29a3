/*
 * store.c — the providers of a pool, read-only: a listing of every key and
 * whole-object GETs.  file:/path is a file provider's folder (a key is a
 * relative path under it); s3:http[s]://host[:port]/bucket[/prefix] is an
 * S3 bucket, addressed path-style and signed with AWS Signature V4
 * (src/provider/s3_sign.c).  Nothing here writes, deletes or creates
 * anything on a provider.
 */
#include "export.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "destor/s3_sign.h"

static S3Credentials creds;

void
store_set_credentials(const S3Credentials *c)
{
	creds = *c;
}

void
store_init(Store *s, const char *spec)
{
	memset(s, 0, sizeof(Store));
	s->spec = xstrdup(spec);
	if (strncmp(spec, "file:", 5) == 0)
	{
		size_t		n;

		s->path = xstrdup(spec + 5);
		n = strlen(s->path);
		while (n > 1 && s->path[n - 1] == '/')
			s->path[--n] = '\0';
		if (n == 0)
			fatal(EXIT_USAGE, "provider \"%s\" names no folder", spec);
	}
	else if (strncmp(spec, "s3:", 3) == 0)
	{
		const char *url = spec + 3;
		const char *p = strstr(url, "://");
		const char *slash;
		const char *rest;

		if (p == NULL)
			fatal(EXIT_USAGE, "provider \"%s\" is not s3:http[s]://host[:port]/bucket[/prefix]", spec);
		s->is_s3 = true;
		s->scheme = xstrndup(url, p - url);
		if (strcmp(s->scheme, "http") != 0 && strcmp(s->scheme, "https") != 0)
			fatal(EXIT_USAGE, "provider \"%s\": the scheme must be http or https", spec);
		p += 3;
		slash = strchr(p, '/');
		if (slash == NULL || slash == p || slash[1] == '\0')
			fatal(EXIT_USAGE, "provider \"%s\" names no bucket (s3:http[s]://host[:port]/bucket[/prefix])", spec);
		s->hostport = xstrndup(p, slash - p);
		rest = slash + 1;
		slash = strchr(rest, '/');
		if (slash == NULL)
		{
			s->bucket = xstrdup(rest);
			s->prefix = xstrdup("");
		}
		else
		{
			s->bucket = xstrndup(rest, slash - rest);
			if (slash[1] == '\0')
				s->prefix = xstrdup("");
			else if (slash[strlen(slash) - 1] == '/')
				s->prefix = xstrdup(slash + 1);
			else
				s->prefix = xprintf("%s/", slash + 1);
		}
	}
	else
		fatal(EXIT_USAGE, "provider \"%s\" must be file:/path or s3:http[s]://host[:port]/bucket[/prefix]", spec);
}

/* a key of the listing; "key\0" followed by its size in bytes */
static void
add_key(Store *s, size_t *cap, const char *key, uint64_t size)
{
	size_t		len = strlen(key);
	char	   *e = xmalloc(len + 1 + sizeof(uint64_t));

	if (s->nkeys == *cap)
	{
		*cap = *cap ? *cap * 2 : 256;
		s->keys = xrealloc(s->keys, sizeof(char *) * *cap);
	}
	memcpy(e, key, len + 1);
	memcpy(e + len + 1, &size, sizeof(uint64_t));
	s->keys[s->nkeys++] = e;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* every regular file under dir/rel, as keys relative to dir */
static bool
list_dir(Store *s, size_t *cap, const char *rel)
{
	char	   *full = rel[0] ? xprintf("%s/%s", s->path, rel) : xstrdup(s->path);
	DIR		   *d = opendir(full);
	struct dirent *e;

	if (d == NULL)
	{
		warn("cannot list provider \"%s\": %s: %s", s->spec, full, strerror(errno));
		free(full);
		return false;
	}
	while ((e = readdir(d)) != NULL)
	{
		char	   *key;
		char	   *path;
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		key = rel[0] ? xprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
		path = xprintf("%s/%s", s->path, key);
		if (lstat(path, &st) == 0)
		{
			if (S_ISDIR(st.st_mode))
			{
				if (!list_dir(s, cap, key))
				{
					closedir(d);
					free(full);
					return false;
				}
			}
			else if (S_ISREG(st.st_mode))
				add_key(s, cap, key, (uint64_t) st.st_size);
		}
		free(path);
		free(key);
	}
	closedir(d);
	free(full);
	return true;
}

/* ---------------------------------------------------------------------
 * S3
 * --------------------------------------------------------------------- */

typedef struct Body
{
	Buf			buf;
} Body;

static size_t
body_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Body	   *b = (Body *) userdata;

	buf_put(&b->buf, ptr, size * nmemb);
	return size * nmemb;
}

/*
 * One signed GET of the bucket: key (NULL for the bucket itself) and query
 * pairs.  Returns the HTTP status (0: no response, *err says why); the body
 * in *body.
 */
static long
s3_get(Store *s, const char *key, const S3SignPair *query, int nquery, const char *range,
	   Buf *body, char **err)
{
	S3SignPair	hdr = {"range", range};
	char	   *path = key ? xprintf("/%s/%s%s", s->bucket, s->prefix, key) : xprintf("/%s", s->bucket);
	char		date[S3_AMZ_DATE_LEN + 1];
	S3SignInput in;
	S3SignOutput out;
	char		errbuf[256];
	char	   *url;
	CURL	   *h;
	struct curl_slist *headers = NULL;
	Body		b = {{0}};
	CURLcode	rc;
	long		status = 0;

	memset(&in, 0, sizeof(in));
	memset(&out, 0, sizeof(out));
	s3_format_amz_date(time(NULL), date);
	in.method = "GET";
	in.host = s->hostport;
	in.path = path;
	in.query = query;
	in.nquery = nquery;
	in.headers = range ? &hdr : NULL;
	in.nheaders = range ? 1 : 0;
	in.payload_sha256 = S3_EMPTY_SHA256;
	in.access_key_id = creds.access_key;
	in.secret_access_key = creds.secret_key;
	in.session_token = creds.session_token;
	in.region = creds.region;
	in.amz_date = date;
	if (s3_sign(&in, &out, errbuf, sizeof(errbuf)) != 0)
	{
		*err = xprintf("could not sign a request: %s", errbuf);
		free(path);
		return 0;
	}
	url = xprintf("%s://%s%s%s%s", s->scheme, s->hostport, out.encoded_path,
				  out.query_string[0] ? "?" : "", out.query_string);
	for (int i = 0; i < out.nheader_lines; i++)
		headers = curl_slist_append(headers, out.header_lines[i]);
	h = curl_easy_init();
	if (h == NULL)
		fatal(EXIT_DATA, "out of memory");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK)
		*err = xprintf("%s: %s", s->spec, curl_easy_strerror(rc));
	else
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	curl_slist_free_all(headers);
	/* the Authorization header is derived from the secret: wipe it */
	for (int i = 0; i < out.nheader_lines; i++)
		codec_secure_zero(out.header_lines[i], strlen(out.header_lines[i]));
	s3_sign_output_free(&out);
	free(url);
	free(path);
	*body = b.buf;
	if (status != 0 && (status < 200 || status > 299))
		*err = xprintf("%s: HTTP status %ld", s->spec, status);
	return status;
}

/* the text of every <tag>...</tag> in xml, in order */
static char **
xml_all(const char *xml, const char *tag, int *n)
{
	char	   *open = xprintf("<%s>", tag);
	char	   *close = xprintf("</%s>", tag);
	char	  **out = NULL;
	const char *p = xml;

	*n = 0;
	while ((p = strstr(p, open)) != NULL)
	{
		const char *start = p + strlen(open);
		const char *end = strstr(start, close);
		Buf			v = {0};

		if (end == NULL)
			break;
		/* the XML entities S3 uses in keys */
		for (const char *c = start; c < end; c++)
		{
			static const char *const ent[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"},
			{"&quot;", "\""}, {"&apos;", "'"}};
			bool		done = false;

			for (int i = 0; i < 5 && !done; i++)
				if (strncmp(c, ent[i][0], strlen(ent[i][0])) == 0)
				{
					buf_puts(&v, ent[i][1]);
					c += strlen(ent[i][0]) - 1;
					done = true;
				}
			if (!done)
				buf_putc(&v, *c);
		}
		out = xrealloc(out, sizeof(char *) * (*n + 1));
		out[(*n)++] = v.data ? v.data : xstrdup("");
		p = end + strlen(close);
	}
	free(open);
	free(close);
	return out;
}

static bool
list_s3(Store *s, size_t *cap)
{
	char	   *token = NULL;

	for (;;)
	{
		S3SignPair q[4];
		int			nq = 0;
		Buf			body = {0};
		char	   *err = NULL;
		long		status;
		char	  **keys;
		int			nkeys;
		char	  **more;
		int			nmore;
		bool		truncated;

		q[nq++] = (S3SignPair) {"list-type", "2"};
		q[nq++] = (S3SignPair) {"prefix", s->prefix};
		if (token)
			q[nq++] = (S3SignPair) {"continuation-token", token};
		status = s3_get(s, NULL, q, nq, NULL, &body, &err);
		if (err)
		{
			warn("cannot list provider \"%s\": %s", s->spec, err);
			return false;
		}
		(void) status;
		keys = xml_all(body.data ? body.data : "", "Key", &nkeys);
		more = xml_all(body.data ? body.data : "", "Size", &nmore);
		for (int i = 0; i < nkeys; i++)
		{
			if (strncmp(keys[i], s->prefix, strlen(s->prefix)) == 0)
				add_key(s, cap, keys[i] + strlen(s->prefix),
						i < nmore ? strtoull(more[i], NULL, 10) : UINT64_MAX);
			free(keys[i]);
		}
		for (int i = 0; i < nmore; i++)
			free(more[i]);
		free(keys);
		free(more);
		more = xml_all(body.data ? body.data : "", "IsTruncated", &nmore);
		truncated = nmore > 0 && strcmp(more[0], "true") == 0;
		for (int i = 0; i < nmore; i++)
			free(more[i]);
		free(more);
		free(token);
		token = NULL;
		if (truncated)
		{
			more = xml_all(body.data ? body.data : "", "NextContinuationToken", &nmore);
			if (nmore > 0)
				token = xstrdup(more[0]);
			for (int i = 0; i < nmore; i++)
				free(more[i]);
			free(more);
		}
		free(body.data);
		if (token == NULL)
			return true;
	}
}

bool
store_list(Store *s)
{
	size_t		cap = 0;

	s->listed = s->is_s3 ? list_s3(s, &cap) : list_dir(s, &cap, "");
	if (s->nkeys > 1)
		qsort(s->keys, s->nkeys, sizeof(char *), cmp_str);
	return s->listed;
}

bool
store_has(const Store *s, const char *key, uint64_t *size)
{
	char	  **e = s->nkeys > 0 ? bsearch(&key, s->keys, s->nkeys, sizeof(char *), cmp_str) : NULL;

	if (e && size)
		memcpy(size, *e + strlen(*e) + 1, sizeof(uint64_t));
	return e != NULL;
}

uint8_t *
store_get(Store *s, const char *key, size_t *len, char **err)
{
	*err = NULL;
	*len = 0;
	if (s->is_s3)
	{
		Buf			body = {0};
		long		status = s3_get(s, key, NULL, 0, NULL, &body, err);

		if (status == 404)
		{
			free(*err);
			*err = xprintf("not found");
		}
		if (*err)
		{
			free(body.data);
			return NULL;
		}
		*len = body.len;
		return body.data ? (uint8_t *) body.data : xmalloc(1);
	}
	else
	{
		char	   *path = xprintf("%s/%s", s->path, key);
		int			fd = open(path, O_RDONLY);
		struct stat st;
		uint8_t    *data;
		size_t		got = 0;

		if (fd < 0 || fstat(fd, &st) != 0)
		{
			*err = xprintf("%s: %s", path, errno == ENOENT ? "not found" : strerror(errno));
			if (fd >= 0)
				close(fd);
			free(path);
			return NULL;
		}
		data = xmalloc((size_t) st.st_size);
		while (got < (size_t) st.st_size)
		{
			ssize_t		n = read(fd, data + got, (size_t) st.st_size - got);

			if (n <= 0)
			{
				*err = xprintf("%s: %s", path, n < 0 ? strerror(errno) : "short read");
				close(fd);
				free(data);
				free(path);
				return NULL;
			}
			got += (size_t) n;
		}
		close(fd);
		free(path);
		*len = got;
		return data;
	}
}

/*
 * len bytes at offset of a key into out; false (*err says why) when the
 * key cannot be read or holds fewer bytes.
 */
bool
store_read(Store *s, const char *key, uint64_t offset, size_t len, uint8_t *out, char **err)
{
	*err = NULL;
	if (len == 0)
		return true;
	if (s->is_s3)
	{
		Buf			body = {0};
		char	   *range = xprintf("bytes=%llu-%llu", (unsigned long long) offset,
									(unsigned long long) (offset + len - 1));
		long		status = s3_get(s, key, NULL, 0, range, &body, err);

		free(range);
		if (*err == NULL && (status != 206 || body.len != len))
			*err = xprintf("%s: %s: %zu bytes at %llu asked, %zu received (HTTP %ld)", s->spec, key,
						   len, (unsigned long long) offset, body.len, status);
		if (*err == NULL)
			memcpy(out, body.data, len);
		free(body.data);
		return *err == NULL;
	}
	else
	{
		char	   *path = xprintf("%s/%s", s->path, key);
		int			fd = open(path, O_RDONLY);
		size_t		got = 0;

		if (fd < 0)
			*err = xprintf("%s: %s", path, errno == ENOENT ? "not found" : strerror(errno));
		while (fd >= 0 && got < len && *err == NULL)
		{
			ssize_t		n = pread(fd, out + got, len - got, (off_t) (offset + got));

			if (n <= 0)
				*err = xprintf("%s: %s", path, n < 0 ? strerror(errno) : "shorter than expected");
			else
				got += (size_t) n;
		}
		if (fd >= 0)
			close(fd);
		free(path);
		return *err == NULL;
	}
}
