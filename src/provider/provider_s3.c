/*
 * provider_s3.c — the s3 backend: S3-compatible object stores over libcurl.
 *
 * Every request of a batch becomes one transfer on a single libcurl multi
 * handle that lives as long as the backend, so connections (and TLS
 * sessions, DNS entries) are reused across batches.  At most
 * destor_max_concurrent_requests transfers run at once; the others wait
 * their turn.  The loop polls with a short timeout and calls
 * CHECK_FOR_INTERRUPTS() on every turn, so query cancel and
 * statement_timeout stop a batch promptly; a PG_FINALLY block then detaches
 * and frees every easy handle, header list and malloc'd buffer.
 *
 * libcurl callbacks never palloc or ereport (an ERROR thrown through libcurl
 * frames would corrupt its state): they copy into the caller's buffer or
 * into malloc'd buffers and report problems through flags that the loop
 * looks at.
 *
 * Transient failures (connection refused or reset, timeouts, HTTP 5xx, 429,
 * S3 RequestTimeout) are retried up to destor_max_retries times with
 * exponential backoff and jitter; the wait between tries is a timeout of
 * the same loop (or a latch wait) and so is interruptible too.  Other 4xx
 * answers are final.
 *
 * Requests are signed with AWS Signature V4 (s3_sign.c), always with a
 * signed payload hash; a provider without an access key id sends anonymous
 * requests.  Error texts name the provider, the S3 operation, the HTTP
 * status and the S3 error code and message; they never contain
 * credentials, signatures or the Authorization header (CURLOPT_VERBOSE
 * stays off).
 */
#include "postgres.h"

#include <curl/curl.h>
#include <time.h>

#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "destor/provider.h"
#include "destor/s3_sign.h"

/* How long one turn of the multi loop may sleep before checking interrupts. */
#define S3_POLL_INTERVAL_MS		100
/* Backoff between tries: base * 2^(try-1), capped, with jitter. */
#define S3_BACKOFF_BASE_MS		100
#define S3_BACKOFF_MAX_MS		5000
/* Total-timeout allowance per byte moved: 1 ms per KiB, i.e. ~1 MB/s floor. */
#define S3_TIMEOUT_BYTES_PER_MS	1024
/* Largest response body kept: error documents and small XML answers ... */
#define S3_MAX_SMALL_BODY		(1024 * 1024)
/* ... and ListObjectsV2 pages (1000 keys of up to 1 KiB, escaped). */
#define S3_MAX_LIST_BODY		(64 * 1024 * 1024)
#define S3_DEFAULT_REGION		"us-east-1"

typedef enum S3Op
{
	S3OP_PUT,
	S3OP_GET,
	S3OP_HEAD,
	S3OP_DELETE,
	S3OP_UPLOAD_BEGIN,
	S3OP_UPLOAD_PART,
	S3OP_UPLOAD_COMPLETE,
	S3OP_UPLOAD_ABORT,
	S3OP_LIST
} S3Op;

static const char *const s3_op_names[] = {
	"PutObject",
	"GetObject",
	"HeadObject",
	"DeleteObject",
	"CreateMultipartUpload",
	"UploadPart",
	"CompleteMultipartUpload",
	"AbortMultipartUpload",
	"ListObjectsV2"
};

/* S3Op extends ProviderOp: the batch casts one to the other. */
StaticAssertDecl((int) S3OP_PUT == (int) POP_PUT &&
				 (int) S3OP_GET == (int) POP_GET &&
				 (int) S3OP_HEAD == (int) POP_HEAD &&
				 (int) S3OP_DELETE == (int) POP_DELETE &&
				 (int) S3OP_UPLOAD_BEGIN == (int) POP_UPLOAD_BEGIN &&
				 (int) S3OP_UPLOAD_PART == (int) POP_UPLOAD_PART &&
				 (int) S3OP_UPLOAD_COMPLETE == (int) POP_UPLOAD_COMPLETE &&
				 (int) S3OP_UPLOAD_ABORT == (int) POP_UPLOAD_ABORT,
				 "S3Op must mirror ProviderOp");
StaticAssertDecl(lengthof(s3_op_names) == S3OP_LIST + 1,
				 "one name per S3Op");

typedef enum S3TransferState
{
	TS_QUEUED,					/* waiting for a slot (and for not_before) */
	TS_RUNNING,					/* attached to the multi handle */
	TS_DONE
} S3TransferState;

/* A malloc'd, NUL-terminated growable buffer filled by libcurl callbacks. */
typedef struct S3Body
{
	char	   *data;
	size_t		len;
	size_t		cap;
	size_t		limit;			/* bytes beyond this are dropped */
	bool		overflow;
	bool		nomem;
} S3Body;

typedef struct S3Transfer
{
	ProviderRequest *req;		/* results go here */
	Provider   *provider;
	S3Op		op;
	const char *key;			/* caller's key (without provider prefix) */
	S3TransferState state;
	int			attempt;		/* tries started so far */
	TimestampTz not_before;		/* earliest start of the next try */
	TimestampTz first_start;

	/* request */
	const char *method;
	const char *body_data;		/* request body (PUT, POST) */
	size_t		body_len;
	size_t		body_pos;
	int			part_number;	/* S3OP_UPLOAD_PART */
	char		payload_hash[S3_SHA256_HEX_LEN + 1];	/* of body_data, once */
	const char *list_prefix;	/* S3OP_LIST: full prefix */
	const char *list_token;		/* S3OP_LIST: continuation token or NULL */
	bool		list_uploads;	/* S3OP_LIST: ListMultipartUploads instead */
	const char *list_upload_marker; /* ... its upload-id-marker (token: key-marker) */
	char	   *complete_xml;	/* UPLOAD_COMPLETE: the part list */
	bool		complete_empty; /* UPLOAD_COMPLETE with no part: PUT "" then abort */
	int			phase;			/* complete_empty: 0 = PUT, 1 = abort */

	/* libcurl */
	CURL	   *easy;
	struct curl_slist *headers;
	char		curl_error[CURL_ERROR_SIZE];

	/* response, reset at every try (and at every new status line) */
	long		status;
	char		etag[256];
	bool		have_content_length;
	uint64		content_length;
	bool		have_content_range;
	uint64		range_start;	/* from Content-Range */
	bool		have_range_end; /* Content-Range named its last byte ... */
	uint64		range_end;
	bool		have_range_total;	/* ... and the object's size */
	uint64		range_total;
	uint64		skip;			/* GET: body bytes to drop before the range */
	uint64		received;		/* GET: bytes copied into req->buf */
	bool		body_started;	/* GET: first body bytes of this response seen */
	bool		stopped_early;	/* GET: we aborted a 200 once we had enough */
	bool		unexpected_range;
	S3Body		body;			/* XML answers and error documents */
	int			short_bodies;	/* GET answers that ended before their length */

	/* last failure, for provider_s3_list's ereport (palloc'd in resultcxt) */
	CURLcode	last_curl_rc;
	char	   *last_detail;
	char	   *last_code;		/* S3 error code, or NULL */
	bool		sign_failed;	/* the request could not be signed */

	/* results kept after the loop (palloc'd in the loop's context) */
	char	   *etag_final;		/* UPLOAD_PART: ETag of the stored part */
	char	   *list_body;		/* S3OP_LIST: the XML page */
	size_t		list_len;
} S3Transfer;

static CURLM *s3_multi = NULL;
static bool s3_curl_initialized = false;

/* stands in for a missing provider in messages */
static Provider s3_unknown_provider = {.name = "?"};

/* ---------------------------------------------------------------------
 * libcurl setup
 * --------------------------------------------------------------------- */

static CURLM *
s3_get_multi(void)
{
	if (!s3_curl_initialized)
	{
		CURLcode	rc = curl_global_init(CURL_GLOBAL_DEFAULT);

		if (rc != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("could not initialize libcurl"),
					 errdetail("%s", curl_easy_strerror(rc))));
		s3_curl_initialized = true;
	}
	if (s3_multi == NULL)
	{
		s3_multi = curl_multi_init();
		if (s3_multi == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("Could not create a libcurl multi handle.")));
		/* keep enough idle connections for a full batch to every provider */
		curl_multi_setopt(s3_multi, CURLMOPT_MAXCONNECTS,
						  (long) Max(destor_max_concurrent_requests * 2, 16));
	}
	return s3_multi;
}

void
provider_s3_reset(void)
{
	/* The batch loop always detaches its handles, so none is attached here. */
	if (s3_multi != NULL)
	{
		curl_multi_cleanup(s3_multi);
		s3_multi = NULL;
	}
}

/* ---------------------------------------------------------------------
 * libcurl callbacks: no palloc, no ereport
 * --------------------------------------------------------------------- */

static void
s3_body_reset(S3Body *b, size_t limit)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->limit = limit;
	b->overflow = false;
	b->nomem = false;
}

static void
s3_body_append(S3Body *b, const char *p, size_t n)
{
	if (b->len + n > b->limit)
	{
		b->overflow = true;
		n = b->limit > b->len ? b->limit - b->len : 0;
	}
	if (n == 0)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 4096;
		char	   *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (d == NULL)
		{
			b->nomem = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static bool
s3_status_is_success(long status)
{
	return status >= 200 && status < 300;
}

/* Reset what we know of the response: a new status line starts one. */
static void
s3_response_reset(S3Transfer *t)
{
	t->status = 0;
	t->etag[0] = '\0';
	t->have_content_length = false;
	t->content_length = 0;
	t->have_content_range = false;
	t->range_start = 0;
	t->have_range_end = false;
	t->range_end = 0;
	t->have_range_total = false;
	t->range_total = 0;
	t->skip = 0;
	t->received = 0;
	t->body_started = false;
	t->stopped_early = false;
	t->unexpected_range = false;
	s3_body_reset(&t->body, t->op == S3OP_LIST ? S3_MAX_LIST_BODY : S3_MAX_SMALL_BODY);
}

static bool
header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen)
{
	size_t		nl = strlen(name);
	const char *v;
	const char *e;

	if (len <= nl || pg_strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return false;
	v = line + nl + 1;
	e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*value = v;
	*vlen = (size_t) (e - v);
	return true;
}

static bool
parse_uint64(const char *s, size_t len, uint64 *out)
{
	uint64		v = 0;
	size_t		i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (PG_UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64) (s[i] - '0');
	}
	*out = v;
	return true;
}

static size_t
s3_header_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	S3Transfer *t = (S3Transfer *) userdata;
	size_t		len = size * nmemb;
	const char *v;
	size_t		vlen;

	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0)
	{
		/* a new response (after 100 Continue, say): forget the old one */
		const char *sp = memchr(data, ' ', len);

		s3_response_reset(t);
		if (sp != NULL)
			t->status = strtol(sp + 1, NULL, 10);
		return len;
	}
	if (header_is(data, len, "etag", &v, &vlen))
	{
		if (vlen < sizeof(t->etag))
		{
			memcpy(t->etag, v, vlen);
			t->etag[vlen] = '\0';
		}
	}
	else if (header_is(data, len, "content-length", &v, &vlen))
	{
		t->have_content_length = parse_uint64(v, vlen, &t->content_length);
	}
	else if (header_is(data, len, "content-range", &v, &vlen))
	{
		/* "bytes START-END/TOTAL" (TOTAL may be "*") */
		const char *dash;

		if (vlen > 6 && pg_strncasecmp(v, "bytes ", 6) == 0 &&
			(dash = memchr(v + 6, '-', vlen - 6)) != NULL)
		{
			const char *end = v + vlen;
			const char *slash = memchr(dash, '/', (size_t) (end - dash));

			t->have_content_range = parse_uint64(v + 6, (size_t) (dash - (v + 6)),
												 &t->range_start);
			if (slash != NULL)
			{
				t->have_range_end = parse_uint64(dash + 1, (size_t) (slash - (dash + 1)),
												 &t->range_end);
				t->have_range_total = parse_uint64(slash + 1, (size_t) (end - (slash + 1)),
												   &t->range_total);
			}
		}
	}
	return len;
}

static size_t
s3_write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	S3Transfer *t = (S3Transfer *) userdata;
	size_t		len = size * nmemb;
	ProviderRequest *req = t->req;

	if (t->op == S3OP_GET && (t->status == 200 || t->status == 206))
	{
		const char *p = data;
		size_t		n = len;

		if (!t->body_started)
		{
			t->body_started = true;
			if (t->status == 200)
				t->skip = req->offset;	/* Range ignored: the whole object */
			else if (t->have_content_range)
			{
				if (t->range_start > req->offset)
				{
					t->unexpected_range = true;
					return 0;	/* abort the transfer */
				}
				t->skip = req->offset - t->range_start;
			}
		}
		if (t->skip > 0)
		{
			size_t		drop = (size_t) Min((uint64) n, t->skip);

			t->skip -= drop;
			p += drop;
			n -= drop;
		}
		if (n > 0 && t->received < req->length)
		{
			size_t		take = (size_t) Min((uint64) n, req->length - t->received);

			memcpy(req->buf + t->received, p, take);
			t->received += take;
			n -= take;
		}
		if (n > 0 && t->status == 200)
		{
			/* the whole object is coming and we have our range: stop */
			t->stopped_early = true;
			return 0;
		}
		/* bytes beyond the range of a 206 are dropped */
		return len;
	}

	/* success XML and error documents */
	s3_body_append(&t->body, data, len);
	return len;
}

static size_t
s3_read_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	S3Transfer *t = (S3Transfer *) userdata;
	size_t		room = size * nitems;
	size_t		left = t->body_len - t->body_pos;
	size_t		n = Min(room, left);

	if (n > 0)
		memcpy(buffer, t->body_data + t->body_pos, n);
	t->body_pos += n;
	return n;
}

static int
s3_seek_cb(void *userdata, curl_off_t offset, int origin)
{
	S3Transfer *t = (S3Transfer *) userdata;

	if (origin != SEEK_SET || offset < 0 || (size_t) offset > t->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	t->body_pos = (size_t) offset;
	return CURL_SEEKFUNC_OK;
}

/* ---------------------------------------------------------------------
 * small XML scanner (S3 answers are flat and well-formed)
 * --------------------------------------------------------------------- */

/* memmem() without depending on _GNU_SOURCE. */
static const char *
s3_find(const char *s, const char *end, const char *needle)
{
	size_t		nl = strlen(needle);

	while (s + nl <= end)
	{
		const char *p = memchr(s, needle[0], (size_t) (end - s));

		if (p == NULL || p + nl > end)
			return NULL;
		if (memcmp(p, needle, nl) == 0)
			return p;
		s = p + 1;
	}
	return NULL;
}

/*
 * Find the first element <tag ...>text</tag> (or <tag/>) in [s, end).
 * Returns the start of its raw text and sets *len, and *after to just past
 * the element; NULL when there is none.
 */
static const char *
xml_element(const char *s, const char *end, const char *tag, size_t *len,
			const char **after)
{
	size_t		tl = strlen(tag);
	const char *p = s;

	while (p < end)
	{
		const char *gt;
		const char *text;
		const char *q;

		p = memchr(p, '<', (size_t) (end - p));
		if (p == NULL)
			return NULL;
		if ((size_t) (end - p) < tl + 2 || memcmp(p + 1, tag, tl) != 0 ||
			!(p[1 + tl] == '>' || p[1 + tl] == ' ' || p[1 + tl] == '/' ||
			  p[1 + tl] == '\t' || p[1 + tl] == '\r' || p[1 + tl] == '\n'))
		{
			p++;
			continue;
		}
		gt = memchr(p, '>', (size_t) (end - p));
		if (gt == NULL)
			return NULL;
		text = gt + 1;
		if (gt[-1] == '/')
		{
			*len = 0;
			if (after)
				*after = text;
			return text;
		}
		/* the closing tag: "</tag>" */
		q = text;
		for (;;)
		{
			q = s3_find(q, end, "</");
			if (q == NULL)
				return NULL;
			if ((size_t) (end - q) >= tl + 3 && memcmp(q + 2, tag, tl) == 0 &&
				q[2 + tl] == '>')
				break;
			q += 2;
		}
		*len = (size_t) (q - text);
		if (after)
			*after = q + tl + 3;
		return text;
	}
	return NULL;
}

static void
append_utf8(StringInfo buf, uint32 cp)
{
	if (cp < 0x80)
		appendStringInfoChar(buf, (char) cp);
	else if (cp < 0x800)
	{
		appendStringInfoChar(buf, (char) (0xC0 | (cp >> 6)));
		appendStringInfoChar(buf, (char) (0x80 | (cp & 0x3F)));
	}
	else if (cp < 0x10000)
	{
		appendStringInfoChar(buf, (char) (0xE0 | (cp >> 12)));
		appendStringInfoChar(buf, (char) (0x80 | ((cp >> 6) & 0x3F)));
		appendStringInfoChar(buf, (char) (0x80 | (cp & 0x3F)));
	}
	else
	{
		appendStringInfoChar(buf, (char) (0xF0 | (cp >> 18)));
		appendStringInfoChar(buf, (char) (0x80 | ((cp >> 12) & 0x3F)));
		appendStringInfoChar(buf, (char) (0x80 | ((cp >> 6) & 0x3F)));
		appendStringInfoChar(buf, (char) (0x80 | (cp & 0x3F)));
	}
}

/* Unescape XML character data into a palloc'd string. */
static char *
xml_unescape(const char *s, size_t len)
{
	StringInfoData buf;
	const char *end = s + len;

	initStringInfo(&buf);
	while (s < end)
	{
		const char *semi;
		size_t		elen;

		if (*s != '&' ||
			(semi = memchr(s, ';', (size_t) Min(end - s, 12))) == NULL)
		{
			appendStringInfoChar(&buf, *s++);
			continue;
		}
		elen = (size_t) (semi - s + 1);
		if (elen == 5 && memcmp(s, "&amp;", 5) == 0)
			appendStringInfoChar(&buf, '&');
		else if (elen == 4 && memcmp(s, "&lt;", 4) == 0)
			appendStringInfoChar(&buf, '<');
		else if (elen == 4 && memcmp(s, "&gt;", 4) == 0)
			appendStringInfoChar(&buf, '>');
		else if (elen == 6 && memcmp(s, "&quot;", 6) == 0)
			appendStringInfoChar(&buf, '"');
		else if (elen == 6 && memcmp(s, "&apos;", 6) == 0)
			appendStringInfoChar(&buf, '\'');
		else if (elen > 3 && s[1] == '#')
		{
			bool		hex = (s[2] == 'x' || s[2] == 'X');
			const char *d = s + (hex ? 3 : 2);
			uint32		cp = 0;
			bool		valid = d < semi;

			for (; d < semi && valid; d++)
			{
				int			digit;

				if (*d >= '0' && *d <= '9')
					digit = *d - '0';
				else if (hex && *d >= 'a' && *d <= 'f')
					digit = *d - 'a' + 10;
				else if (hex && *d >= 'A' && *d <= 'F')
					digit = *d - 'A' + 10;
				else
				{
					valid = false;
					break;
				}
				cp = cp * (hex ? 16 : 10) + (uint32) digit;
				if (cp > 0x10FFFF)
					valid = false;
			}
			if (!valid || cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
			{
				/* not a character reference we can honour: keep it as is */
				appendBinaryStringInfo(&buf, s, (int) elen);
			}
			else
				append_utf8(&buf, cp);
		}
		else
			appendBinaryStringInfo(&buf, s, (int) elen);
		s = semi + 1;
	}
	return buf.data;
}

/* Unescaped text of the first <tag> in [s, end), or NULL. */
static char *
xml_get(const char *s, const char *end, const char *tag)
{
	size_t		len;
	const char *text;

	if (s == NULL)
		return NULL;
	text = xml_element(s, end, tag, &len, NULL);
	return text ? xml_unescape(text, len) : NULL;
}

static void
xml_escape_into(StringInfo buf, const char *s)
{
	for (; *s; s++)
	{
		switch (*s)
		{
			case '&':
				appendStringInfoString(buf, "&amp;");
				break;
			case '<':
				appendStringInfoString(buf, "&lt;");
				break;
			case '>':
				appendStringInfoString(buf, "&gt;");
				break;
			default:
				appendStringInfoChar(buf, *s);
		}
	}
}

/* ---------------------------------------------------------------------
 * building and starting one try of a transfer
 * --------------------------------------------------------------------- */

/* scheme, host[:port] and base path of the provider's endpoint (palloc'd) */
static void
s3_split_endpoint(Provider *p, char **scheme, char **hostport, char **basepath)
{
	const char *ep = p->endpoint ? p->endpoint : "";
	const char *sep = strstr(ep, "://");
	const char *h;
	const char *slash;
	size_t		blen;

	if (sep == NULL)
	{
		*scheme = pstrdup("https");
		h = ep;
	}
	else
	{
		*scheme = pnstrdup(ep, sep - ep);
		h = sep + 3;
	}
	slash = strchr(h, '/');
	if (slash == NULL)
	{
		*hostport = pstrdup(h);
		*basepath = pstrdup("");
	}
	else
	{
		*hostport = pnstrdup(h, slash - h);
		blen = strlen(slash);
		while (blen > 0 && slash[blen - 1] == '/')
			blen--;
		*basepath = pnstrdup(slash, blen);
	}
}

/* Drop the easy handle and header list of the current try. */
static void
s3_transfer_detach(S3Transfer *t)
{
	if (t->easy != NULL)
	{
		if (t->state == TS_RUNNING && s3_multi != NULL)
			curl_multi_remove_handle(s3_multi, t->easy);
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
	}
	if (t->headers != NULL)
	{
		curl_slist_free_all(t->headers);
		t->headers = NULL;
	}
}

static void
s3_transfer_release(S3Transfer *t)
{
	s3_transfer_detach(t);
	s3_body_reset(&t->body, 0);
}

/* Append to a curl_slist; ERROR (after freeing nothing) when out of memory. */
static struct curl_slist *
s3_slist_append(struct curl_slist *list, const char *line)
{
	struct curl_slist *n = curl_slist_append(list, line);

	if (n == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return n;
}

#define SETOPT(h, opt, val) \
	do { \
		if (curl_easy_setopt((h), (opt), (val)) != CURLE_OK) \
			elog(ERROR, "curl_easy_setopt(%s) failed", #opt); \
	} while (0)

/*
 * Build the URL and headers of the transfer's current try, sign it, and
 * attach it to the multi handle.  Returns false, with the error set in the
 * request, when the request cannot be signed.  Runs inside the loop's
 * PG_TRY, so an ERROR here (out of memory) is cleaned up by the loop's
 * finally block.
 */
static void s3_set_error(S3Transfer *t, MemoryContext resultcxt, const char *detail);

static bool
s3_transfer_start(S3Transfer *t, MemoryContext resultcxt)
{
	Provider   *p = t->provider;
	ProviderRequest *req = t->req;
	S3Op		op = t->op;
	char	   *scheme,
			   *hostport,
			   *basepath;
	char	   *host;
	StringInfoData rawpath;
	StringInfoData url;
	S3SignPair	query[4];
	int			nquery = 0;
	S3SignPair	sighdr[2];
	int			nsighdr = 0;
	char		partbuf[16];
	char		rangebuf[64];
	char		payload_hash[S3_SHA256_HEX_LEN + 1];
	const char *prefix = p->prefix ? p->prefix : "";
	const char *region = (p->region && p->region[0]) ? p->region : S3_DEFAULT_REGION;
	bool		has_body;
	long		timeout_ms;
	CURL	   *easy;
	CURLMcode	mrc;

	t->attempt++;
	t->body_pos = 0;
	t->curl_error[0] = '\0';
	s3_response_reset(t);

	/* --- what to send --- */
	has_body = false;
	t->body_data = NULL;
	t->body_len = 0;
	switch (op)
	{
		case S3OP_PUT:
			t->method = "PUT";
			t->body_data = req->data;
			t->body_len = req->datalen;
			has_body = true;
			break;
		case S3OP_GET:
			t->method = "GET";
			snprintf(rangebuf, sizeof(rangebuf), "bytes=" UINT64_FORMAT "-" UINT64_FORMAT,
					 req->offset, req->offset + req->length - 1);
			sighdr[nsighdr].name = "range";
			sighdr[nsighdr].value = rangebuf;
			nsighdr++;
			break;
		case S3OP_HEAD:
			t->method = "HEAD";
			break;
		case S3OP_DELETE:
			t->method = "DELETE";
			break;
		case S3OP_UPLOAD_BEGIN:
			t->method = "POST";
			query[nquery].name = "uploads";
			query[nquery].value = "";
			nquery++;
			has_body = true;	/* empty */
			break;
		case S3OP_UPLOAD_PART:
			t->method = "PUT";
			snprintf(partbuf, sizeof(partbuf), "%d", t->part_number);
			query[nquery].name = "partNumber";
			query[nquery].value = partbuf;
			nquery++;
			query[nquery].name = "uploadId";
			query[nquery].value = req->upload->upload_id;
			nquery++;
			t->body_data = req->data;
			t->body_len = req->datalen;
			has_body = true;
			break;
		case S3OP_UPLOAD_COMPLETE:
			if (t->complete_empty && t->phase == 0)
			{
				/* no part was appended: store the empty object directly */
				t->method = "PUT";
				has_body = true;
				break;
			}
			if (t->complete_empty)
			{
				/* phase 1: discard the empty multipart upload */
				t->method = "DELETE";
				query[nquery].name = "uploadId";
				query[nquery].value = req->upload->upload_id;
				nquery++;
				break;
			}
			t->method = "POST";
			query[nquery].name = "uploadId";
			query[nquery].value = req->upload->upload_id;
			nquery++;
			sighdr[nsighdr].name = "content-type";
			sighdr[nsighdr].value = "application/xml";
			nsighdr++;
			t->body_data = t->complete_xml;
			t->body_len = strlen(t->complete_xml);
			has_body = true;
			break;
		case S3OP_UPLOAD_ABORT:
			t->method = "DELETE";
			query[nquery].name = "uploadId";
			query[nquery].value = req->upload->upload_id;
			nquery++;
			break;
		case S3OP_LIST:
			t->method = "GET";
			if (t->list_uploads)
			{
				query[nquery].name = "uploads";
				query[nquery].value = "";
				nquery++;
				query[nquery].name = "prefix";
				query[nquery].value = t->list_prefix;
				nquery++;
				if (t->list_token != NULL)
				{
					query[nquery].name = "key-marker";
					query[nquery].value = t->list_token;
					nquery++;
					query[nquery].name = "upload-id-marker";
					query[nquery].value = t->list_upload_marker ? t->list_upload_marker : "";
					nquery++;
				}
				break;
			}
			query[nquery].name = "list-type";
			query[nquery].value = "2";
			nquery++;
			query[nquery].name = "prefix";
			query[nquery].value = t->list_prefix;
			nquery++;
			if (t->list_token != NULL)
			{
				query[nquery].name = "continuation-token";
				query[nquery].value = t->list_token;
				nquery++;
			}
			break;
	}

	/* --- where to send it --- */
	s3_split_endpoint(p, &scheme, &hostport, &basepath);
	initStringInfo(&rawpath);
	appendStringInfoString(&rawpath, basepath);
	if (p->virtual_host)
		host = psprintf("%s.%s", p->bucket, hostport);
	else
	{
		host = hostport;
		appendStringInfo(&rawpath, "/%s", p->bucket);
	}
	appendStringInfoChar(&rawpath, '/');
	if (op != S3OP_LIST)
		appendStringInfo(&rawpath, "%s%s", prefix, t->key);

	easy = curl_easy_init();
	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not create a libcurl easy handle.")));
	t->easy = easy;

	initStringInfo(&url);
	if (p->access_key_id != NULL && p->access_key_id[0] != '\0')
	{
		S3SignInput in;
		S3SignOutput out;
		char		amz_date[S3_AMZ_DATE_LEN + 1];
		char		errbuf[256];
		int			i;

		if (!has_body || t->body_len == 0)
			strlcpy(payload_hash, S3_EMPTY_SHA256, sizeof(payload_hash));
		else
		{
			/* a retry sends the same body: hash it once */
			if (t->payload_hash[0] == '\0' || t->attempt == 1)
				s3_sha256_hex(t->body_data, t->body_len, t->payload_hash);
			strlcpy(payload_hash, t->payload_hash, sizeof(payload_hash));
		}
		s3_format_amz_date(time(NULL), amz_date);

		memset(&in, 0, sizeof(in));
		in.method = t->method;
		in.host = host;
		in.path = rawpath.data;
		in.query = query;
		in.nquery = nquery;
		in.headers = sighdr;
		in.nheaders = nsighdr;
		in.payload_sha256 = payload_hash;
		in.access_key_id = p->access_key_id;
		in.secret_access_key = p->secret_access_key ? p->secret_access_key : "";
		in.session_token = p->session_token;
		in.region = region;
		in.service = "s3";
		in.amz_date = amz_date;
		if (s3_sign(&in, &out, errbuf, sizeof(errbuf)) != 0)
		{
			/* bad option or credential values: this request cannot be sent */
			char	   *detail = psprintf("could not sign the request: %s", errbuf);

			s3_set_error(t, resultcxt, detail);
			t->sign_failed = true;
			s3_transfer_detach(t);
			pfree(url.data);
			pfree(rawpath.data);
			return false;
		}
		appendStringInfo(&url, "%s://%s%s", scheme, host, out.encoded_path);
		if (out.query_string[0] != '\0')
			appendStringInfo(&url, "?%s", out.query_string);
		for (i = 0; i < out.nheader_lines; i++)
		{
			struct curl_slist *n = curl_slist_append(t->headers, out.header_lines[i]);

			if (n == NULL)
			{
				s3_sign_output_free(&out);
				ereport(ERROR,
						(errcode(ERRCODE_OUT_OF_MEMORY),
						 errmsg("out of memory")));
			}
			t->headers = n;
		}
		/* the lines hold the signature: wipe them before freeing */
		for (i = 0; i < out.nheader_lines; i++)
			explicit_bzero(out.header_lines[i], strlen(out.header_lines[i]));
		explicit_bzero(out.authorization, strlen(out.authorization));
		s3_sign_output_free(&out);
	}
	else
	{
		/* anonymous: same encoding rules, no signature */
		char	   *epath = s3_uri_encode(rawpath.data, 1);
		char	   *qs = s3_canonical_query(query, nquery);
		int			i;

		if (epath == NULL || qs == NULL)
		{
			free(epath);
			free(qs);
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		}
		appendStringInfo(&url, "%s://%s%s", scheme, host, epath);
		if (qs[0] != '\0')
			appendStringInfo(&url, "?%s", qs);
		free(epath);
		free(qs);
		for (i = 0; i < nsighdr; i++)
		{
			char	   *line = psprintf("%s: %s", sighdr[i].name, sighdr[i].value);

			t->headers = s3_slist_append(t->headers, line);
			pfree(line);
		}
	}
	/* no "Expect: 100-continue" round trip before uploads */
	t->headers = s3_slist_append(t->headers, "Expect:");

	/* --- the easy handle --- */
	SETOPT(easy, CURLOPT_URL, url.data);
	SETOPT(easy, CURLOPT_PATH_AS_IS, 1L);	/* keys may hold "/../" */
	SETOPT(easy, CURLOPT_HTTPHEADER, t->headers);
	SETOPT(easy, CURLOPT_PRIVATE, (void *) t);
	SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
	SETOPT(easy, CURLOPT_VERBOSE, 0L);
	SETOPT(easy, CURLOPT_TCP_NODELAY, 1L);
	SETOPT(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SETOPT(easy, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(easy, CURLOPT_USERAGENT, "destor");
	SETOPT(easy, CURLOPT_ERRORBUFFER, t->curl_error);
	SETOPT(easy, CURLOPT_HEADERFUNCTION, s3_header_cb);
	SETOPT(easy, CURLOPT_HEADERDATA, (void *) t);
	SETOPT(easy, CURLOPT_WRITEFUNCTION, s3_write_cb);
	SETOPT(easy, CURLOPT_WRITEDATA, (void *) t);
	if (destor_connect_timeout_ms > 0)
		SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) destor_connect_timeout_ms);
	if (destor_request_timeout_ms > 0)
	{
		uint64		bytes = t->body_len + (op == S3OP_GET ? req->length : 0);

		timeout_ms = destor_request_timeout_ms +
			(long) Min(bytes / S3_TIMEOUT_BYTES_PER_MS, (uint64) LONG_MAX / 2);
		SETOPT(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	}

	if (strcmp(t->method, "HEAD") == 0)
		SETOPT(easy, CURLOPT_NOBODY, 1L);
	else if (has_body)
	{
		SETOPT(easy, CURLOPT_UPLOAD, 1L);
		SETOPT(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t) t->body_len);
		SETOPT(easy, CURLOPT_READFUNCTION, s3_read_cb);
		SETOPT(easy, CURLOPT_READDATA, (void *) t);
		SETOPT(easy, CURLOPT_SEEKFUNCTION, s3_seek_cb);
		SETOPT(easy, CURLOPT_SEEKDATA, (void *) t);
		if (strcmp(t->method, "PUT") != 0)
			SETOPT(easy, CURLOPT_CUSTOMREQUEST, t->method);
	}
	else if (strcmp(t->method, "GET") != 0)
		SETOPT(easy, CURLOPT_CUSTOMREQUEST, t->method);

	mrc = curl_multi_add_handle(s3_multi, easy);
	if (mrc != CURLM_OK)
		elog(ERROR, "curl_multi_add_handle failed: %s", curl_multi_strerror(mrc));
	t->state = TS_RUNNING;
	if (t->first_start == 0)
		t->first_start = GetCurrentTimestamp();

	pfree(url.data);
	pfree(rawpath.data);
	return true;
}

/* ---------------------------------------------------------------------
 * finishing a try: success, final failure, or retry
 * --------------------------------------------------------------------- */

static bool
s3_curl_error_is_transient(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_WEIRD_SERVER_REPLY:
			return true;
		default:
			return false;
	}
}

static bool
s3_status_is_transient(long status, const char *code)
{
	if (status >= 500 || status == 429 || status == 408)
		return true;
	if (status == 400 && code != NULL && strcmp(code, "RequestTimeout") == 0)
		return true;			/* S3: the body came too slowly; try again */
	return false;
}

/* Backoff before try number "attempt + 1": exponential, capped, jittered. */
static long
s3_backoff_ms(int attempt)
{
	double		ms = S3_BACKOFF_BASE_MS;
	int			i;

	for (i = 1; i < attempt && ms < S3_BACKOFF_MAX_MS; i++)
		ms *= 2;
	ms = Min(ms, (double) S3_BACKOFF_MAX_MS);
	/* "equal jitter": between half and all of the step */
	return (long) (ms / 2 + pg_prng_double(&pg_global_prng_state) * ms / 2);
}

/* The key as a user knows it, for messages. */
static const char *
s3_transfer_what(S3Transfer *t)
{
	if (t->op == S3OP_LIST)
		return t->list_prefix;
	return t->key ? t->key : "";
}

/*
 * Set req->error (in the caller's context) for a failed try.
 * Never includes credentials or request headers.
 */
static void
s3_set_error(S3Transfer *t, MemoryContext resultcxt, const char *detail)
{
	ProviderRequest *req = t->req;
	const char *keyprefix = "";
	char		attempts[64] = "";
	MemoryContext old;

	if (t->op != S3OP_LIST && t->provider->prefix)
		keyprefix = t->provider->prefix;
	if (t->attempt > 1)
		snprintf(attempts, sizeof(attempts), " (after %d attempts)", t->attempt);
	old = MemoryContextSwitchTo(resultcxt);
	if (req->error)
		pfree(req->error);
	req->error = psprintf("provider \"%s\": %s of \"%s%s\" failed: %s%s",
						  t->provider->name, s3_op_names[t->op], keyprefix,
						  s3_transfer_what(t), detail, attempts);
	t->last_detail = psprintf("%s%s", detail, attempts);
	MemoryContextSwitchTo(old);
}

/* "HTTP 404 NoSuchKey: The specified key does not exist." */
static char *
s3_http_detail(S3Transfer *t, char **code_out)
{
	const char *body = t->body.data;
	const char *end = body ? body + t->body.len : NULL;
	char	   *code = NULL;
	char	   *message = NULL;

	if (body != NULL)
	{
		size_t		elen;
		const char *err = xml_element(body, end, "Error", &elen, NULL);

		if (err != NULL)
		{
			code = xml_get(err, err + elen, "Code");
			message = xml_get(err, err + elen, "Message");
		}
	}
	if (code_out)
		*code_out = code;
	if (code && message)
		return psprintf("HTTP %ld %s: %s", t->status, code, message);
	if (code)
		return psprintf("HTTP %ld %s", t->status, code);
	return psprintf("HTTP %ld", t->status);
}

/*
 * s3_get_expected — how many bytes of the range asked for a successful GET
 * must have delivered: the whole range, unless the headers say the object
 * ends before it (Content-Range's total, or a 200's Content-Length).
 */
static uint64
s3_get_expected(S3Transfer *t)
{
	ProviderRequest *req = t->req;
	uint64		want = req->length;
	uint64		size;

	if (t->stopped_early)
		return want;			/* we stopped a whole-object answer ourselves */
	if (t->status == 206 && t->have_range_total)
		size = t->range_total;
	else if (t->status == 206 && t->have_range_end)
		size = t->range_end + 1;
	else if (t->status == 200 && t->have_content_length)
		size = t->content_length;
	else if (t->status == 206 && !t->have_content_range && t->have_content_length)
		return Min(want, t->content_length);	/* taken as starting at offset */
	else
		return want;			/* nothing says it is shorter: all of it */
	if (size <= req->offset)
		return 0;
	return Min(want, size - req->offset);
}

/* Outcome of a finished try. */
typedef enum S3Outcome
{
	S3_OK,
	S3_FAILED,
	S3_RETRY
} S3Outcome;

static S3Outcome
s3_transfer_outcome(S3Transfer *t, CURLcode rc, MemoryContext resultcxt)
{
	ProviderRequest *req = t->req;
	char	   *code = NULL;
	char	   *detail;
	long		status = 0;
	size_t		errlen;

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 0)
		t->status = status;
	if (!(t->complete_empty && t->phase == 1))
		req->http_status = (int) t->status;

	if (t->body.nomem)
	{
		s3_set_error(t, resultcxt, "out of memory while receiving the response");
		return S3_FAILED;
	}

	/* transport failures */
	if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && t->stopped_early))
	{
		if (t->unexpected_range)
		{
			s3_set_error(t, resultcxt,
						 "the server answered with a byte range that does not cover the one asked for");
			return S3_FAILED;
		}
		t->last_curl_rc = rc;
		if (rc == CURLE_PARTIAL_FILE)
			t->short_bodies++;	/* fewer bytes than Content-Length said */
		detail = psprintf("%s%s%s%s", curl_easy_strerror(rc),
						  t->curl_error[0] ? " (" : "", t->curl_error,
						  t->curl_error[0] ? ")" : "");
		s3_set_error(t, resultcxt, detail);
		return s3_curl_error_is_transient(rc) ? S3_RETRY : S3_FAILED;
	}

	/* HTTP errors */
	if (!s3_status_is_success(t->status))
	{
		detail = s3_http_detail(t, &code);
		t->last_curl_rc = CURLE_OK;
		t->last_code = code ? MemoryContextStrdup(resultcxt, code) : NULL;

		if (t->status == 404)
		{
			bool		no_bucket = code && strcmp(code, "NoSuchBucket") == 0;

			req->not_found = true;
			if (!no_bucket &&
				(t->op == S3OP_DELETE || t->op == S3OP_UPLOAD_ABORT ||
				 (t->op == S3OP_UPLOAD_COMPLETE && t->complete_empty && t->phase == 1)))
				return S3_OK;
		}
		if (t->op == S3OP_UPLOAD_ABORT && (t->status == 405 || t->status == 501))
		{
			/*
			 * The server cannot abort uploads (s3rver answers 405): there
			 * is nothing more we can do, and the upload is over for us.
			 */
			return S3_OK;
		}
		if (t->status == 416 && t->op == S3OP_GET)
		{
			/* range starts at or past the end: nothing to read there */
			req->result_size = 0;
			return S3_OK;
		}
		if (t->op == S3OP_UPLOAD_COMPLETE && t->complete_empty && t->phase == 1)
			return S3_OK;		/* the object is stored; a stray upload is harmless */
		if (t->status == 301 || t->status == 307 || t->status == 400)
		{
			char	   *region = NULL;

			if (t->body.data)
				region = xml_get(t->body.data, t->body.data + t->body.len, "Region");
			if (region)
				detail = psprintf("%s (the bucket is in region %s)", detail, region);
		}
		s3_set_error(t, resultcxt, detail);
		return s3_status_is_transient(t->status, code) ? S3_RETRY : S3_FAILED;
	}

	/* success: operation-specific checks */
	switch (t->op)
	{
		case S3OP_GET:
			{
				uint64		expected = s3_get_expected(t);

				/*
				 * A body cut short with no Content-Length to tell (a closed
				 * connection ends it) looks like a success to libcurl:
				 * compare with what the headers and the request promise.
				 */
				if (t->received < expected)
				{
					t->short_bodies++;
					t->last_curl_rc = CURLE_OK;
					t->last_code = NULL;
					s3_set_error(t, resultcxt,
								 psprintf("the response body ended after %llu of %llu bytes",
										  (unsigned long long) t->received,
										  (unsigned long long) expected));
					return S3_RETRY;
				}
				req->result_size = t->received;
			}
			break;
		case S3OP_HEAD:
			if (!t->have_content_length)
			{
				s3_set_error(t, resultcxt, "the response has no Content-Length");
				return S3_FAILED;
			}
			req->result_size = t->content_length;
			break;
		case S3OP_UPLOAD_BEGIN:
			{
				char	   *id = t->body.data ?
					xml_get(t->body.data, t->body.data + t->body.len, "UploadId") : NULL;

				if (id == NULL || id[0] == '\0')
				{
					s3_set_error(t, resultcxt, "the response has no UploadId");
					return S3_FAILED;
				}
				req->upload->upload_id =
					MemoryContextStrdup(GetMemoryChunkContext(req->upload), id);
				req->upload->active = true;
				req->upload->nparts = 0;
				req->upload->size = 0;
				req->upload->etags = NIL;
			}
			break;
		case S3OP_UPLOAD_PART:
			if (t->etag[0] == '\0')
			{
				s3_set_error(t, resultcxt, "the response has no ETag");
				return S3_FAILED;
			}
			t->etag_final = pstrdup(t->etag);
			break;
		case S3OP_UPLOAD_COMPLETE:
			if (!t->complete_empty && t->body.data &&
				xml_element(t->body.data, t->body.data + t->body.len, "Error",
							&errlen, NULL) != NULL)
			{
				/* S3 may report a failed completion inside a 200 answer */
				detail = s3_http_detail(t, &code);
				s3_set_error(t, resultcxt, detail);
				return (code && strcmp(code, "InternalError") == 0) ? S3_RETRY : S3_FAILED;
			}
			break;
		case S3OP_LIST:
			if (t->body.overflow)
			{
				s3_set_error(t, resultcxt, "the listing page is too large");
				return S3_FAILED;
			}
			/* keep the page past the loop's cleanup of libcurl buffers */
			t->list_len = t->body.len;
			t->list_body = palloc(t->list_len + 1);
			if (t->list_len > 0)
				memcpy(t->list_body, t->body.data, t->list_len);
			t->list_body[t->list_len] = '\0';
			break;
		default:
			break;
	}
	return S3_OK;
}

/* A try has ended: decide, record, and maybe queue the next try. */
static void
s3_transfer_finish(S3Transfer *t, CURLcode rc, MemoryContext resultcxt)
{
	ProviderRequest *req = t->req;
	S3Outcome	outcome = s3_transfer_outcome(t, rc, resultcxt);

	s3_transfer_detach(t);
	s3_body_reset(&t->body, 0);

	if (outcome == S3_OK && t->op == S3OP_UPLOAD_COMPLETE && t->complete_empty &&
		t->phase == 0)
	{
		/* the empty object is stored; now discard the multipart upload */
		t->phase = 1;
		t->attempt = 0;
		t->state = TS_QUEUED;
		t->not_before = 0;
		return;
	}

	if (outcome == S3_RETRY && t->attempt <= (req->no_retry ? 0 : destor_max_retries))
	{
		t->state = TS_QUEUED;
		t->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													s3_backoff_ms(t->attempt));
		return;
	}

	t->state = TS_DONE;
	req->latency_ms = (double) (GetCurrentTimestamp() - t->first_start) / 1000.0;
	req->retries = Max(t->attempt - 1, 0);
	req->short_bodies = t->short_bodies;
	req->unreachable = outcome != S3_OK &&
		(t->last_curl_rc == CURLE_COULDNT_CONNECT || t->last_curl_rc == CURLE_COULDNT_RESOLVE_HOST ||
		 t->last_curl_rc == CURLE_OPERATION_TIMEDOUT ||
		 (t->last_code != NULL && strcmp(t->last_code, "NoSuchBucket") == 0));
	if (outcome == S3_OK)
	{
		req->ok = true;
		if (req->error)
		{
			pfree(req->error);
			req->error = NULL;
		}
		if (t->op == S3OP_UPLOAD_COMPLETE || t->op == S3OP_UPLOAD_ABORT)
			req->upload->active = false;
	}
	else
		req->ok = false;
}

/* ---------------------------------------------------------------------
 * the multi loop
 * --------------------------------------------------------------------- */

/*
 * Hedging: when every request still running may be abandoned (ProviderRequest
 * .hedge) and the others all succeeded, the stragglers get
 * HEDGE_FACTOR times the slowest finished one's time (at least HEDGE_MIN_MS)
 * after the last one finished; then they are given up, and the caller reads
 * around them (parity) instead of waiting for one slow provider.
 */
#define HEDGE_MIN_MS	100
#define HEDGE_FACTOR	3

/* How long the stragglers may still take (ms); -1 if hedging does not apply. */
static long
s3_hedge_remaining(S3Transfer **ts, int n, TimestampTz last_done, double slowest_ms)
{
	int			ok = 0;
	long		grace;

	if (last_done == 0)
		return -1;				/* nothing has come back during this batch yet */
	for (int i = 0; i < n; i++)
	{
		if (ts[i]->state == TS_DONE)
		{
			if (!ts[i]->req->ok)
				return -1;		/* a failure: the caller reads around it anyway */
			ok++;
		}
		else if (!ts[i]->req->hedge || ts[i]->state != TS_RUNNING)
			return -1;			/* one that has not even started is not slow */
	}
	if (ok == 0 || ok == n)
		return -1;
	grace = Max((long) HEDGE_MIN_MS, (long) (HEDGE_FACTOR * slowest_ms));
	return Max(grace - TimestampDifferenceMilliseconds(last_done, GetCurrentTimestamp()), 0);
}

static void
s3_run_transfers(S3Transfer **ts, int n, MemoryContext resultcxt)
{
	CURLM	   *multi = s3_get_multi();
	int			maxrun = Max(destor_max_concurrent_requests, 1);
	int			ndone = 0;
	int			i;
	TimestampTz last_done = 0;
	double		slowest_ms = 0;

	for (i = 0; i < n; i++)
		if (ts[i]->state == TS_DONE)
			ndone++;

	PG_TRY();
	{
		while (ndone < n)
		{
			TimestampTz now;
			int			nrunning = 0;
			int			still_running;
			int			msgs_left;
			CURLMsg    *msg;
			long		wait_ms;

			CHECK_FOR_INTERRUPTS();

			/* start queued tries, in request order, while slots are free */
			now = GetCurrentTimestamp();
			for (i = 0; i < n; i++)
				if (ts[i]->state == TS_RUNNING)
					nrunning++;
			for (i = 0; i < n && nrunning < maxrun; i++)
			{
				S3Transfer *t = ts[i];

				if (t->state != TS_QUEUED)
					continue;
				if (t->not_before > now)
					continue;
				if (s3_transfer_start(t, resultcxt))
					nrunning++;
				else
				{
					t->state = TS_DONE;
					t->req->ok = false;
					t->req->latency_ms = 0;
					ndone++;
				}
			}

			if (nrunning > 0)
			{
				CURLMcode	mrc = curl_multi_perform(multi, &still_running);

				if (mrc != CURLM_OK)
					elog(ERROR, "curl_multi_perform failed: %s", curl_multi_strerror(mrc));

				while ((msg = curl_multi_info_read(multi, &msgs_left)) != NULL)
				{
					S3Transfer *t = NULL;

					if (msg->msg != CURLMSG_DONE)
						continue;
					curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
					if (t == NULL || t->easy != msg->easy_handle)
						continue;
					s3_transfer_finish(t, msg->data.result, resultcxt);
					if (t->state == TS_DONE)
					{
						ndone++;
						last_done = GetCurrentTimestamp();
						slowest_ms = Max(slowest_ms, t->req->latency_ms);
					}
				}
			}
			if (ndone >= n)
				break;
			if (s3_hedge_remaining(ts, n, last_done, slowest_ms) == 0)
			{
				/* the stragglers are too slow: give them up */
				now = GetCurrentTimestamp();
				for (i = 0; i < n; i++)
				{
					S3Transfer *t = ts[i];

					if (t->state == TS_DONE)
						continue;
					s3_transfer_release(t);
					t->state = TS_DONE;
					t->req->ok = false;
					t->req->abandoned = true;
					t->req->latency_ms = t->first_start ?
						(double) (now - t->first_start) / 1000.0 : 0;
					t->req->error = MemoryContextStrdup(resultcxt,
														psprintf("provider \"%s\": abandoned after %.0f ms, far slower than the others",
																 t->provider->name, t->req->latency_ms));
					ndone++;
				}
				break;
			}

			/*
			 * Sleep until there is network activity, a retry is due or the
			 * poll interval is over; not at all when a try can start now.
			 */
			now = GetCurrentTimestamp();
			wait_ms = S3_POLL_INTERVAL_MS;
			{
				long		hedge = s3_hedge_remaining(ts, n, last_done, slowest_ms);

				if (hedge >= 0)
					wait_ms = Min(wait_ms, Max(hedge, 1));
			}
			nrunning = 0;
			for (i = 0; i < n; i++)
				if (ts[i]->state == TS_RUNNING)
					nrunning++;
			for (i = 0; i < n; i++)
			{
				S3Transfer *t = ts[i];

				if (t->state != TS_QUEUED)
					continue;
				if (t->not_before <= now)
				{
					if (nrunning < maxrun)
						wait_ms = 0;
				}
				else
					wait_ms = Min(wait_ms,
								  Max(TimestampDifferenceMilliseconds(now, t->not_before), 1));
			}
			if (wait_ms == 0)
				continue;
			if (nrunning > 0)
			{
				CURLMcode	mrc = curl_multi_poll(multi, NULL, 0, (int) wait_ms, NULL);

				if (mrc != CURLM_OK)
					elog(ERROR, "curl_multi_poll failed: %s", curl_multi_strerror(mrc));
			}
			else
			{
				/* only backoff waits left: sleep on the latch */
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 wait_ms, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
			}
		}
	}
	PG_FINALLY();
	{
		/* never leave a handle, header list or buffer behind */
		for (i = 0; i < n; i++)
			s3_transfer_release(ts[i]);
	}
	PG_END_TRY();
}

/* ---------------------------------------------------------------------
 * entry points
 * --------------------------------------------------------------------- */

static S3Transfer *
s3_transfer_new(ProviderRequest *req, Provider *p, S3Op op, const char *key)
{
	S3Transfer *t = palloc0(sizeof(S3Transfer));

	t->req = req;
	t->provider = p;
	t->op = op;
	t->key = key;
	t->state = TS_QUEUED;
	return t;
}

/* A request that needs no network round trip or cannot be sent. */
static void
s3_finish_now(S3Transfer *t, bool ok, const char *error)
{
	t->state = TS_DONE;
	t->req->ok = ok;
	if (!ok)
		t->req->error = psprintf("provider \"%s\": %s of \"%s%s\" failed: %s",
								 t->provider->name, s3_op_names[t->op],
								 t->provider->prefix ? t->provider->prefix : "",
								 s3_transfer_what(t), error);
}

void
provider_s3_execute_batch(ProviderRequest **reqs, int nreqs)
{
	MemoryContext resultcxt = CurrentMemoryContext;
	MemoryContext batchcxt;
	MemoryContext old;
	S3Transfer **ts;
	int			i,
				j;

	if (nreqs <= 0)
		return;

	batchcxt = AllocSetContextCreate(CurrentMemoryContext, "destor s3 batch",
									 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(batchcxt);
	ts = palloc0(sizeof(S3Transfer *) * nreqs);

	for (i = 0; i < nreqs; i++)
	{
		ProviderRequest *req = reqs[i];
		ProviderUpload *up = req->upload;
		Provider   *p = req->provider ? req->provider : (up ? up->provider : NULL);
		const char *key = req->key;
		S3Transfer *t;

		req->ok = false;
		req->not_found = false;
		req->http_status = 0;
		req->result_size = 0;
		req->latency_ms = 0;
		req->error = NULL;

		if (up != NULL && (req->op == POP_UPLOAD_BEGIN || req->op == POP_UPLOAD_PART ||
						   req->op == POP_UPLOAD_COMPLETE || req->op == POP_UPLOAD_ABORT))
			key = up->key;
		t = s3_transfer_new(req, p, (S3Op) req->op, key);
		ts[i] = t;

		MemoryContextSwitchTo(resultcxt);	/* errors belong to the caller */
		if (p == NULL || p->bucket == NULL || p->endpoint == NULL)
		{
			t->provider = p ? p : &s3_unknown_provider;
			t->state = TS_DONE;
			req->error = psprintf("provider \"%s\": %s failed: the provider has no endpoint or bucket",
								  p && p->name ? p->name : "?", s3_op_names[req->op]);
		}
		else if (req->op >= POP_UPLOAD_BEGIN && up == NULL)
			s3_finish_now(t, false, "the request has no upload");
		else if (key == NULL)
			s3_finish_now(t, false, "the request has no key");
		else if (req->op == POP_GET && req->length == 0)
			s3_finish_now(t, true, NULL);	/* nothing to read */
		else if (req->op == POP_GET && req->buf == NULL)
			s3_finish_now(t, false, "the request has no destination buffer");
		else if ((req->op == POP_PUT || req->op == POP_UPLOAD_PART) &&
				 req->data == NULL && req->datalen > 0)
			s3_finish_now(t, false, "the request has no data");
		else if ((req->op == POP_UPLOAD_PART || req->op == POP_UPLOAD_COMPLETE) &&
				 (up->upload_id == NULL || !up->active))
			s3_finish_now(t, false, "the upload was not begun or has already ended");
		else if (req->op == POP_UPLOAD_ABORT && up->upload_id == NULL)
		{
			s3_finish_now(t, true, NULL);	/* never begun: nothing to discard */
			up->active = false;
		}
		MemoryContextSwitchTo(batchcxt);

		if (t->state == TS_DONE)
			continue;

		if (req->op == POP_UPLOAD_PART)
		{
			/* parts of one upload in one batch get consecutive numbers */
			int			before = 0;

			for (j = 0; j < i; j++)
				if (ts[j]->op == S3OP_UPLOAD_PART && ts[j]->req->upload == up &&
					ts[j]->state != TS_DONE)
					before++;
			t->part_number = up->nparts + 1 + before;
			if (t->part_number > 10000)
			{
				MemoryContextSwitchTo(resultcxt);
				s3_finish_now(t, false, "S3 allows at most 10000 parts per upload");
				MemoryContextSwitchTo(batchcxt);
			}
		}
		else if (req->op == POP_UPLOAD_COMPLETE)
		{
			bool		parts_pending = false;

			for (j = 0; j < nreqs; j++)
				if (reqs[j]->op == POP_UPLOAD_PART && reqs[j]->upload == up)
					parts_pending = true;
			if (parts_pending)
			{
				MemoryContextSwitchTo(resultcxt);
				s3_finish_now(t, false, "parts of the same upload are in the same batch");
				MemoryContextSwitchTo(batchcxt);
			}
			else if (up->nparts == 0)
				t->complete_empty = true;
			else
			{
				StringInfoData xml;
				ListCell   *lc;
				int			partno = 0;

				initStringInfo(&xml);
				appendStringInfoString(&xml, "<CompleteMultipartUpload>");
				foreach(lc, up->etags)
				{
					appendStringInfo(&xml, "<Part><PartNumber>%d</PartNumber><ETag>", ++partno);
					xml_escape_into(&xml, (const char *) lfirst(lc));
					appendStringInfoString(&xml, "</ETag></Part>");
				}
				appendStringInfoString(&xml, "</CompleteMultipartUpload>");
				t->complete_xml = xml.data;
			}
		}
	}

	/* temporary allocations of the loop go to batchcxt too */
	s3_run_transfers(ts, nreqs, resultcxt);
	MemoryContextSwitchTo(old);

	/*
	 * Record the parts that were stored, in part order.  A part that follows
	 * a failed part of the same upload is not recorded (a later append
	 * reuses its number), so it is reported as failed too.
	 */
	for (i = 0; i < nreqs; i++)
	{
		ProviderUpload *up;
		int			want;
		bool		broken = false;

		if (ts[i]->op != S3OP_UPLOAD_PART || ts[i]->part_number == 0)
			continue;
		up = ts[i]->req->upload;
		/* handle each upload once: at its first part in the batch */
		for (j = 0; j < i; j++)
			if (ts[j]->op == S3OP_UPLOAD_PART && ts[j]->req->upload == up &&
				ts[j]->part_number != 0)
				break;
		if (j < i)
			continue;
		for (want = up->nparts + 1;; want++)
		{
			S3Transfer *t = NULL;

			for (j = i; j < nreqs; j++)
				if (ts[j]->op == S3OP_UPLOAD_PART && ts[j]->req->upload == up &&
					ts[j]->part_number == want)
					t = ts[j];
			if (t == NULL)
				break;
			if (!broken && t->req->ok)
			{
				MemoryContext upcxt = GetMemoryChunkContext(up);

				old = MemoryContextSwitchTo(upcxt);
				up->etags = lappend(up->etags, pstrdup(t->etag_final));
				MemoryContextSwitchTo(old);
				up->nparts++;
				up->size += t->req->datalen;
			}
			else
			{
				if (t->req->ok)
				{
					t->req->ok = false;
					t->req->error = psprintf("provider \"%s\": %s of \"%s\" failed: an earlier part of the same upload failed",
											 t->provider->name, s3_op_names[t->op],
											 s3_transfer_what(t));
				}
				broken = true;
			}
		}
	}

	MemoryContextDelete(batchcxt);
}

/* Parse "2009-10-12T17:50:30.000Z" (ISO 8601, UTC). */
static TimestampTz
s3_parse_time(const char *s)
{
	struct pg_tm tm;
	int			year,
				mon,
				mday,
				hour,
				min,
				sec;
	fsec_t		fsec = 0;
	const char *frac;
	Timestamp	result;

	if (s == NULL ||
		sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &year, &mon, &mday, &hour, &min, &sec) != 6)
		return 0;
	frac = strchr(s, '.');
	if (frac != NULL)
	{
		int			scale = 100000;

		for (frac++; *frac >= '0' && *frac <= '9' && scale > 0; frac++, scale /= 10)
			fsec += (*frac - '0') * scale;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year;
	tm.tm_mon = mon;
	tm.tm_mday = mday;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	if (tm2timestamp(&tm, fsec, NULL, &result) != 0)
		return 0;
	return (TimestampTz) result;
}

/* ERROR for a failed ListObjectsV2, with an errcode and hint that fit. */
static void
s3_list_error(Provider *p, S3Transfer *t)
{
	ProviderRequest *req = t->req;
	int			status = req->http_status;
	const char *code = t->last_code ? t->last_code : "";
	const char *detail = t->last_detail ? t->last_detail : "unknown error";
	int			sqlstate = ERRCODE_FDW_ERROR;
	const char *hint = NULL;
	size_t		dlen = strlen(detail);

	if (t->sign_failed)
	{
		sqlstate = ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE;
		hint = "Check the region option of the server and the credentials in the user mapping.";
	}
	else if (status == 0)
	{
		sqlstate = ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;
		if (t->last_curl_rc == CURLE_PEER_FAILED_VERIFICATION ||
			t->last_curl_rc == CURLE_SSL_CACERT_BADFILE)
			hint = "Check that the TLS certificate of the endpoint is valid and trusted by the system certificate store.";
		else if (t->last_curl_rc == CURLE_COULDNT_RESOLVE_HOST)
			hint = "Check the host name in the endpoint option of the server.";
		else
			hint = "Check the endpoint option of the server and that the provider is reachable.";
	}
	else if (status == 401 || status == 403)
	{
		if (strcmp(code, "InvalidAccessKeyId") == 0 ||
			strcmp(code, "SignatureDoesNotMatch") == 0 ||
			strcmp(code, "InvalidToken") == 0 ||
			strcmp(code, "ExpiredToken") == 0)
			sqlstate = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		else
			sqlstate = ERRCODE_INSUFFICIENT_PRIVILEGE;
		if (strcmp(code, "RequestTimeTooSkewed") == 0)
			hint = "Check the clock of the database server.";
		else
			hint = "Check the credentials in the user mapping and that they grant access to the bucket.";
	}
	else if (strcmp(code, "NoSuchBucket") == 0 || status == 404)
		hint = "Check the bucket name and that it exists.";
	else if (status == 301 || status == 307 ||
			 strcmp(code, "AuthorizationHeaderMalformed") == 0 ||
			 strcmp(code, "PermanentRedirect") == 0)
		hint = "Check the region and endpoint options of the server.";
	else if (status >= 500 || status == 429)
		hint = "The provider is failing or overloaded; try again later.";

	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("could not list objects on provider \"%s\"", p->name),
			 errdetail("ListObjectsV2 for prefix \"%s\" failed: %s%s",
					   t->list_prefix, detail,
					   dlen > 0 && detail[dlen - 1] == '.' ? "" : "."),
			 hint ? errhint("%s", hint) : 0));
}

List *
provider_s3_list(Provider *p, const char *prefix)
{
	List	   *result = NIL;
	MemoryContext resultcxt = CurrentMemoryContext;
	MemoryContext pagecxt;
	const char *pprefix = p->prefix ? p->prefix : "";
	size_t		pplen = strlen(pprefix);
	char	   *full_prefix = psprintf("%s%s", pprefix, prefix ? prefix : "");
	char	   *token = NULL;
	int			npages = 0;

	if (p->bucket == NULL || p->endpoint == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("provider \"%s\" has no endpoint or bucket", p->name)));

	pagecxt = AllocSetContextCreate(CurrentMemoryContext, "destor s3 list page",
									ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		ProviderRequest *req;
		S3Transfer *t;
		S3Transfer *ts[1];
		const char *body,
				   *end,
				   *pos,
				   *contents;
		char	   *truncated;
		char	   *next;
		size_t		clen;

		MemoryContextReset(pagecxt);
		MemoryContextSwitchTo(pagecxt);
		req = palloc0(sizeof(ProviderRequest));
		req->provider = p;
		t = s3_transfer_new(req, p, S3OP_LIST, NULL);
		t->list_prefix = full_prefix;
		t->list_token = token;
		ts[0] = t;
		s3_run_transfers(ts, 1, pagecxt);
		if (!req->ok)
			s3_list_error(p, t);

		body = t->list_body;
		end = body + t->list_len;
		if (xml_element(body, end, "ListBucketResult", &clen, NULL) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_REPLY_HANDLE),
					 errmsg("could not list objects on provider \"%s\"", p->name),
					 errdetail("The answer to ListObjectsV2 is not a ListBucketResult document."),
					 errhint("Check that the endpoint option points to an S3-compatible service.")));

		pos = body;
		while ((contents = xml_element(pos, end, "Contents", &clen, &pos)) != NULL)
		{
			const char *cend = contents + clen;
			char	   *key = xml_get(contents, cend, "Key");
			char	   *size = xml_get(contents, cend, "Size");
			char	   *mtime = xml_get(contents, cend, "LastModified");
			ProviderListEntry *e;
			uint64		sz = 0;

			if (key == NULL || strncmp(key, pprefix, pplen) != 0)
				continue;		/* not ours (a server ignoring prefix?) */
			if (size != NULL && !parse_uint64(size, strlen(size), &sz))
				sz = 0;
			MemoryContextSwitchTo(resultcxt);
			e = palloc(sizeof(ProviderListEntry));
			e->key = pstrdup(key + pplen);
			e->size = sz;
			e->last_modified = s3_parse_time(mtime);
			result = lappend(result, e);
			MemoryContextSwitchTo(pagecxt);
		}

		truncated = xml_get(body, end, "IsTruncated");
		next = xml_get(body, end, "NextContinuationToken");
		MemoryContextSwitchTo(resultcxt);
		if (truncated == NULL || pg_strcasecmp(truncated, "true") != 0)
			break;
		if (next == NULL || next[0] == '\0' || (token && strcmp(next, token) == 0) ||
			++npages > 1000000)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_REPLY_HANDLE),
					 errmsg("could not list objects on provider \"%s\"", p->name),
					 errdetail("A truncated ListObjectsV2 page has no usable NextContinuationToken.")));
		if (token)
			pfree(token);
		token = pstrdup(next);
	}
	MemoryContextSwitchTo(resultcxt);
	MemoryContextDelete(pagecxt);
	if (token)
		pfree(token);
	pfree(full_prefix);
	return result;
}

/*
 * provider_s3_list_uploads — the multipart uploads begun under prefix and
 * neither completed nor aborted (ListMultipartUploads, paginated).  A
 * server that does not implement the call (501 NotImplemented, 405) has
 * none to list: NIL.  Other failures are ERRORs, as for listings.
 */
List *
provider_s3_list_uploads(Provider *p, const char *prefix)
{
	List	   *result = NIL;
	MemoryContext resultcxt = CurrentMemoryContext;
	MemoryContext pagecxt;
	const char *pprefix = p->prefix ? p->prefix : "";
	size_t		pplen = strlen(pprefix);
	char	   *full_prefix = psprintf("%s%s", pprefix, prefix ? prefix : "");
	char	   *key_marker = NULL;
	char	   *id_marker = NULL;
	int			npages = 0;

	if (p->bucket == NULL || p->endpoint == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("provider \"%s\" has no endpoint or bucket", p->name)));

	pagecxt = AllocSetContextCreate(CurrentMemoryContext, "destor s3 upload list page",
									ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		ProviderRequest *req;
		S3Transfer *t;
		S3Transfer *ts[1];
		const char *body,
				   *end,
				   *pos,
				   *upload;
		char	   *truncated;
		char	   *next_key;
		char	   *next_id;
		size_t		ulen;

		MemoryContextReset(pagecxt);
		MemoryContextSwitchTo(pagecxt);
		req = palloc0(sizeof(ProviderRequest));
		req->provider = p;
		t = s3_transfer_new(req, p, S3OP_LIST, NULL);
		t->list_prefix = full_prefix;
		t->list_uploads = true;
		t->list_token = key_marker;
		t->list_upload_marker = id_marker;
		ts[0] = t;
		s3_run_transfers(ts, 1, pagecxt);
		if (!req->ok && (req->http_status == 501 || req->http_status == 405))
			break;				/* not implemented: nothing we can list */
		if (!req->ok)
			s3_list_error(p, t);

		body = t->list_body;
		end = body + t->list_len;
		if (xml_element(body, end, "ListMultipartUploadsResult", &ulen, NULL) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_REPLY_HANDLE),
					 errmsg("could not list multipart uploads on provider \"%s\"", p->name),
					 errdetail("The answer to ListMultipartUploads is not a ListMultipartUploadsResult document.")));

		pos = body;
		while ((upload = xml_element(pos, end, "Upload", &ulen, &pos)) != NULL)
		{
			const char *uend = upload + ulen;
			char	   *key = xml_get(upload, uend, "Key");
			char	   *id = xml_get(upload, uend, "UploadId");
			char	   *initiated = xml_get(upload, uend, "Initiated");
			ProviderUploadEntry *e;

			if (key == NULL || id == NULL || id[0] == '\0' || strncmp(key, pprefix, pplen) != 0)
				continue;
			MemoryContextSwitchTo(resultcxt);
			e = palloc(sizeof(ProviderUploadEntry));
			e->key = pstrdup(key + pplen);
			e->upload_id = pstrdup(id);
			e->initiated = s3_parse_time(initiated);
			result = lappend(result, e);
			MemoryContextSwitchTo(pagecxt);
		}

		truncated = xml_get(body, end, "IsTruncated");
		next_key = xml_get(body, end, "NextKeyMarker");
		next_id = xml_get(body, end, "NextUploadIdMarker");
		MemoryContextSwitchTo(resultcxt);
		if (truncated == NULL || pg_strcasecmp(truncated, "true") != 0)
			break;
		if (next_key == NULL || next_key[0] == '\0' || ++npages > 1000000 ||
			(key_marker && strcmp(next_key, key_marker) == 0 &&
			 (next_id == NULL || (id_marker && strcmp(next_id, id_marker) == 0))))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_REPLY_HANDLE),
					 errmsg("could not list multipart uploads on provider \"%s\"", p->name),
					 errdetail("A truncated ListMultipartUploads page has no usable NextKeyMarker.")));
		key_marker = pstrdup(next_key);
		id_marker = next_id ? pstrdup(next_id) : NULL;
	}
	MemoryContextSwitchTo(resultcxt);
	MemoryContextDelete(pagecxt);
	return result;
}
