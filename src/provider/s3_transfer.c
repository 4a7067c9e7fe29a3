/*
 * s3_transfer.c — the transfer loop of the s3 backend: runs the tries of a
 * batch's requests on one libcurl multi handle and decides what each try's
 * end means.
 *
 * The multi handle lives as long as the backend, so connections (and TLS
 * sessions, DNS entries) are reused across batches.  A batch is a run of
 * turns of the loop: an ordinary batch is driven to its end at once; a
 * batch of reads started ahead of need stays on the handle while the
 * backend decodes, a turn at every provider_poll.  libcurl's transfer
 * times of a try that ran while nobody looked at its sockets are not
 * taken as its provider's (timing_loose).  At most
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
 * answers are final.  A GET whose body ends before the length the headers
 * and the request promise is retried and counted (short_bodies).  Requests
 * that may be abandoned (hedge) are given up when they lag far behind the
 * rest of their batch.
 *
 * Building a try's request is s3_request.c's job; XML answers are read by
 * s3_xml.c.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "access/xact.h"
#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "destor/provider.h"
#include "s3_internal.h"

const char *const s3_op_names[] = {
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

StaticAssertDecl(lengthof(s3_op_names) == S3OP_LIST + 1,
				 "one name per S3Op");

static CURLM *s3_multi = NULL;
static bool s3_curl_initialized = false;

/* ---------------------------------------------------------------------
 * libcurl setup
 * --------------------------------------------------------------------- */

/* A failed transaction leaves no run attached (see s3_runs_abort), once
 * the writes it had sent are answered (s3_runs_settle_writes). */
static void
s3_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		s3_runs_settle_writes();
		s3_runs_abort();
	}
}

CURLM *
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
		RegisterXactCallback(s3_xact_callback, NULL);
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
	s3_runs_abort();
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
void
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
	if (t->op == S3OP_GET && t->req != NULL)
		t->req->received = 0;	/* a new answer writes buf again from its start */
	t->body_started = false;
	t->body_at = 0;
	t->connect_us = 0;
	memset(t->rate_at, 0, sizeof(t->rate_at));
	memset(t->rate_received, 0, sizeof(t->rate_received));
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

/*
 * s3_header_cb — libcurl's header callback: remembers the status, ETag,
 * Content-Length and Content-Range of the current response.
 */
size_t
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
		t->have_content_length = s3_parse_uint64(v, vlen, &t->content_length);
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

			t->have_content_range = s3_parse_uint64(v + 6, (size_t) (dash - (v + 6)),
												 &t->range_start);
			if (slash != NULL)
			{
				t->have_range_end = s3_parse_uint64(dash + 1, (size_t) (slash - (dash + 1)),
												 &t->range_end);
				t->have_range_total = s3_parse_uint64(slash + 1, (size_t) (end - (slash + 1)),
												   &t->range_total);
			}
		}
	}
	return len;
}

/*
 * s3_write_cb — libcurl's body callback: a GET's bytes go straight into
 * the caller's buffer, from the offset asked (a server that ignores Range
 * sends the whole object: the bytes before it are dropped and the transfer
 * stopped once the range is in); other answers are kept for the XML reader.
 */
size_t
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
			curl_off_t	pre_us = 0;

			t->body_started = true;
			t->body_at = GetCurrentTimestamp();
			if (t->easy &&
				curl_easy_getinfo(t->easy, CURLINFO_PRETRANSFER_TIME_T, &pre_us) == CURLE_OK)
				t->connect_us = (int64) pre_us;
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
			req->received = t->received;
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

/* Drop the easy handle and header list of the current try. */
void
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
const char *
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
void
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

/*
 * s3_transfer_outcome — what a finished try means: a transport failure, an
 * HTTP error (some of which are success for the operation: a 404 on
 * DELETE, a 416 on a ranged GET past the end), or a success that still has
 * to pass the operation's checks (a GET must have delivered every byte the
 * headers and the request promise; an upload must name its id or ETag).
 * Sets the request's error text for failures; retrying is the caller's.
 */
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
				region = s3_xml_get(t->body.data, t->body.data + t->body.len, "Region");
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
					s3_xml_get(t->body.data, t->body.data + t->body.len, "UploadId") : NULL;

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
				s3_xml_element(t->body.data, t->body.data + t->body.len, "Error",
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

/*
 * Whether libcurl's times of t's try do not measure its provider: nobody
 * looked at its socket for more than S3_LOOSE_SHARE of the try (the backend
 * decoded meanwhile, or a cursor sat idle).  A shorter wait stretches them
 * a little; the kernel keeps receiving meanwhile.
 */
#define S3_LOOSE_SHARE			0.25

static bool
s3_try_loose(S3Transfer *t)
{
	double		elapsed_ms = (double) (GetCurrentTimestamp() - t->try_start) / 1000.0;

	return t->try_start != 0 && t->gap_ms > S3_LOOSE_SHARE * Max(elapsed_ms, 1.0);
}

/*
 * Whether t's times still measure its provider, loose or not: a reader
 * that looks at the sockets between pieces of its work (provider_poll)
 * leaves many short waits, none long enough for the kernel's socket buffer
 * to fill and stop the sender; each stretches libcurl's times by no more
 * than itself.  What the provider's statistics are told (req->timing_loose).
 */
#define S3_NEAR_GAP_MS			15.0

static bool
s3_times_measure(S3Transfer *t)
{
	return !t->timing_loose || t->max_gap_ms <= S3_NEAR_GAP_MS;
}

/*
 * A kept socket the server had closed fails its first request within a
 * round trip or two (a reset, or the end of the stream): longer than this,
 * and the failure is taken for the provider's (s3_transfer_finish).
 */
#define S3_KEPT_STALE_US		1000000

/* A try has ended: decide, record, and maybe queue the next try. */
static void
s3_transfer_finish(S3Transfer *t, CURLcode rc, MemoryContext resultcxt)
{
	ProviderRequest *req = t->req;
	S3Outcome	outcome = s3_transfer_outcome(t, rc, resultcxt);
	curl_off_t	net_us = 0;
	curl_off_t	first_us = 0;
	curl_off_t	pre_us = 0;
	curl_off_t	body_us = 0;

	/*
	 * How long the try took on the network, by libcurl's own clock: from
	 * its start to the last byte — not the wall time around our loop, which
	 * a busy backend (or the decoding between turns) stretches.
	 */
	if (t->easy == NULL ||
		curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &net_us) != CURLE_OK)
		net_us = 0;
	if (t->easy == NULL ||
		curl_easy_getinfo(t->easy, CURLINFO_STARTTRANSFER_TIME_T, &first_us) != CURLE_OK ||
		curl_easy_getinfo(t->easy, CURLINFO_PRETRANSFER_TIME_T, &pre_us) != CURLE_OK)
		first_us = pre_us = 0;
	/* from the request sent to the answer's first byte: not the connection's
	 * set-up, which a reused connection does not pay */
	first_us = Max(first_us - pre_us, 0);
	/* the body's time: what the bytes took once the answer began */
	body_us = (net_us > 0 && first_us > 0) ? Max(net_us - first_us - pre_us, 0) : 0;
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

	/*
	 * Timed out while nobody looked at its socket for a while (a read
	 * started ahead of need, while the backend did other work): libcurl's
	 * clock ran on, the provider did nothing wrong.  Try again, without
	 * counting the try.
	 */
	t->timing_loose = s3_try_loose(t);
	if (outcome != S3_OK && t->timing_loose && t->last_curl_rc == CURLE_OPERATION_TIMEDOUT)
	{
		t->attempt--;
		t->timing_loose = false;
		t->first_start = 0;		/* judged from the new try's start: hedging
								 * would find it late at once */
		t->state = TS_QUEUED;
		t->not_before = 0;
		return;
	}

	/*
	 * Sent on a socket the connection keeper had kept idle, and failed
	 * soon without any answer (on https the TLS hello is what fails): the
	 * server may have closed that idle connection just as it was handed
	 * over (its FIN still on the way), which says nothing of the provider.
	 * A reset in that moment surfaces in libcurl's connect step, which
	 * finds the socket's pending error: "could not connect", which on a
	 * kept socket (no connect of ours) is the same stale connection.
	 * Try again at once on a connection of our own, without counting the
	 * try — as libcurl does for a reused connection found dead; also for
	 * a caller of one try (commit markers), which would otherwise record a
	 * provider failure for it.  Once per transfer: the next tries connect
	 * themselves.  Only soon: a connection cut later, after the server may
	 * have acted on the request, is an ordinary failure.
	 */
	if (outcome == S3_RETRY && t->on_kept_socket && !t->shun_keeper && t->status == 0 &&
		t->received == 0 && net_us > 0 && net_us <= S3_KEPT_STALE_US &&
		(t->last_curl_rc == CURLE_SEND_ERROR || t->last_curl_rc == CURLE_RECV_ERROR ||
		 t->last_curl_rc == CURLE_GOT_NOTHING || t->last_curl_rc == CURLE_SSL_CONNECT_ERROR ||
		 t->last_curl_rc == CURLE_COULDNT_CONNECT))
	{
		t->attempt--;
		t->shun_keeper = true;
		t->state = TS_QUEUED;
		t->not_before = 0;
		return;
	}

	/*
	 * A counted try that failed only after holding the request for half the
	 * request timeout or more: timed out, or a gateway that answered 503
	 * just before our timeout.  A provider whose every try is such costs a
	 * caller that asks it again that long per try (fetch_repair).
	 */
	if (outcome != S3_OK &&
		(rc == CURLE_OPERATION_TIMEDOUT ||
		 (double) Max(net_us, t->try_start != 0 ? GetCurrentTimestamp() - t->try_start : 0) / 1000.0 >=
		 destor_request_timeout_ms / 2.0))
		t->held_tries++;

	if (outcome == S3_RETRY && t->attempt <= (req->no_retry ? 0 : destor_max_retries))
	{
		t->state = TS_QUEUED;
		t->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													s3_backoff_ms(t->attempt));
		return;
	}

	t->state = TS_DONE;
	req->timing_loose = !s3_times_measure(t);
	req->first_byte_ms = (double) first_us / 1000.0;
	req->body_ms = t->attempt <= 1 ? (double) body_us / 1000.0 : 0;
	if (net_us > 0 && t->attempt <= 1)
		req->latency_ms = (double) net_us / 1000.0;
	else						/* retried: the backoff between tries counts too */
		req->latency_ms = (double) (GetCurrentTimestamp() - t->first_start) / 1000.0;
	req->retries = Max(t->attempt - 1, 0);
	req->short_bodies = t->short_bodies;
	if (outcome != S3_OK && t->op == S3OP_UPLOAD_PART && req->upload != NULL)
	{
		/* the first failure's cause, for the parts it takes along */
		if (!req->upload->broken && req->error != NULL)
			req->upload->broken_error =
				MemoryContextStrdup(GetMemoryChunkContext(req->upload), req->error);
		req->upload->broken = true;
	}
	req->unreachable = outcome != S3_OK &&
		(t->last_curl_rc == CURLE_COULDNT_CONNECT || t->last_curl_rc == CURLE_COULDNT_RESOLVE_HOST ||
		 t->last_curl_rc == CURLE_OPERATION_TIMEDOUT ||
		 (t->last_code != NULL && strcmp(t->last_code, "NoSuchBucket") == 0));
	req->held = outcome != S3_OK && t->attempt > 0 && t->held_tries >= t->attempt;
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
 * Two kinds of hedging, both judged by how late a request is against what
 * its provider's requests take — libcurl's transfer times, never the wall
 * time of a backend that may be busy with other work.
 *
 * Abandoning (ProviderRequest.hedge, the healthy path of a read): when every
 * request still running may be abandoned and the others all succeeded, the
 * stragglers get HEDGE_FACTOR times the slowest finished one's time, or of
 * their provider's recent p95 if that is more (at least HEDGE_MIN_MS), after
 * the last one finished; a straggler still receiving bytes is not stalled
 * and gets more — unless its bytes come so slowly that it would end beyond
 * that anyway (s3_stragglers_thin).  Then they are given up, and the caller reads around them
 * (parity) instead of waiting for one slow provider.  Giving up marks the
 * provider slow for every reader, so the bar is high: one late answer of a
 * server that shares a busy machine is not a slow provider.
 *
 * Hedged sets (ProviderRequest.hedge_unit, the degraded path): the caller
 * starts the units it needs from the providers it expects to be fastest and
 * holds the others back as spares.  A unit that fails, or is late — still
 * running HEDGE_SPARE_FACTOR times the slowest unit of the batch that
 * succeeded (before any did, its provider's recent p95), and at least
 * HEDGE_SPARE_MIN_MS — gets a spare started in its place; the first units
 * to succeed in the number needed win, and every other request is cancelled
 * (removed from the multi handle: nothing is left running).  A spare costs
 * only bandwidth, so its bar is lower.  Spares of last resort (providers
 * found slow or down) are started only for units that failed or are very
 * late (HEDGE_LAST_FACTOR times that, at least HEDGE_LAST_MIN_MS; for a
 * unit stalled — its answer not begun, or no byte for as long as its bar —
 * HEDGE_LAST_MIN_MS past being late).  A set whose caller reads around it
 * when it fails (hedge_fallback) gives up, once no spare is left, a unit
 * that is very late and stalled, and any other request of its batch that
 * has had no byte for HEDGE_LAST_MIN_MS while others came in
 * (s3_hedge_fall_back).  Probes
 * (hedge_probe: a shard recorded missing, asked to learn whether the record
 * is stale; or one that served the reader bad bytes, whose complete answer
 * must not count) start at once but are neither counted among the units needed
 * nor waited for long: one whose answer has begun when the set is
 * complete gets as long again as the set took (HEDGE_PROBE_TAIL_FACTOR
 * times, at least HEDGE_PROBE_MIN_MS, at most HEDGE_PROBE_MAX_MS), then is
 * cancelled with the rest; one that has not answered yet is cancelled at
 * once (a provider that stalls: the likeliest reason its shard was
 * recorded missing).  Cancelled at once, a probe on a provider as fast as
 * the others lost the race about as often as it won it, and the stale
 * record it was to clear stayed.  A set of reads marked hedge_finish (a
 * window read again after bad bytes, every shard started) gives each unit
 * still running then HEDGE_PROBE_MAX_MS, answered or not (cut short, a
 * shard 60 ms farther left a stripe short of good chunks under load, and
 * the unhedged try that follows waited 8 s for a staller: TAP 185): the shards that answer
 * in time are all checked, and a liar among them named (one a little
 * farther than the k fastest too), while one that stalls costs at most the
 * grace.
 *
 * Hedged writes are hedged sets without spares: every shard's upload is a
 * unit, the batch needs the write quorum; once that many are stored, the
 * others are waited for while they keep sending (HEDGE_FACTOR times the
 * slowest stored one's time without a byte sent, at least
 * HEDGE_WRITE_MIN_MS: giving one up costs a repair), and for no longer than
 * the quorum took again (HEDGE_WRITE_TAIL_FACTOR times, at least
 * HEDGE_WRITE_MIN_MS: a provider on a thin uplink that keeps sending would
 * otherwise set every write's pace), then cancelled — sooner when its pace
 * shows that it cannot end by then (s3_upload_too_slow).  The writer
 * records their shards as missing, for repair.
 */
#define HEDGE_MIN_MS		300
#define HEDGE_FACTOR		3
#define HEDGE_SPARE_MIN_MS	150
#define HEDGE_SPARE_FACTOR	2
#define HEDGE_WRITE_MIN_MS	1000
#define HEDGE_WRITE_TAIL_FACTOR	1
#define HEDGE_LAST_MIN_MS	1000
#define HEDGE_LAST_FACTOR	4
#define HEDGE_STALL_MIN_MS	400
#define HEDGE_STALL_FACTOR	3
/* a last answer slower than this is no distance to wait for (a provider
 * held 15 s that answered once would hold every read 45 s) */
#define HEDGE_FAR_MAX_MS	2500
#define HEDGE_PROBE_MIN_MS	20
#define HEDGE_PROBE_MAX_MS	1000
#define HEDGE_PROBE_TAIL_FACTOR	1

/* What the loop keeps for hedging, per transfer and per unit. */
typedef struct S3Hedge
{
	int			need;			/* units needed; 0: no hedged set */
	int			nunits;
	int		   *unit_of;		/* per transfer: unit index, -1 none */
	int		   *unit_id;		/* per unit: the caller's hedge_unit (its
								 * spares start in that order) */
	bool	   *held;			/* per transfer: a spare not started yet */
	double	   *p95_ms;			/* per transfer: its provider's recent p95, -1 */
	uint64	   *seen;			/* per transfer: bytes received at last look */
	TimestampTz *progress;		/* per transfer: when they last grew */
	bool	   *late;			/* per unit: found late (its spare is started) */
	bool	   *very_late;		/* per unit: late enough for a last resort */
	bool	   *last;			/* per unit: a spare of last resort */
	bool	   *probe;			/* per unit: a probe, never waited for */
	bool		finish_running; /* reads: every unit still running when the
								 * units needed are in gets a probe's grace,
								 * answered or not (hedge_finish) */
	bool		fallback;		/* reads: the caller reads around the batch
								 * if it fails (hedge_fallback) */
	TimestampTz *answered;		/* per transfer: when its answer began, 0 */
	double	   *read_ms;		/* per transfer: its provider's recent round
								 * trip (provider_recent_read_ms), -1 */
	TimestampTz *ok_at;			/* per unit: when it succeeded, 0 if not */
	TimestampTz quorum_at;		/* when the units needed had succeeded */
	double		quorum_ms;		/* how long that took from the set's start */
	double		unattended_at_quorum;	/* s3_unattended_ms then */
	bool		awaited;		/* this turn's caller waits for the set to end */
	bool		watched;		/* ... and every caller has, since the quorum */
	size_t	   *tail_pos;		/* per transfer: bytes the provider had at its
								 * pace's first look after the quorum (uploads) */
	double	   *tail_seen_ms;	/* ... and the attended clock then, 0 none */
	bool	   *tail_exact;		/* ... its socket's unacknowledged bytes told */
	int		   *tail_slow;		/* ... windows in a row found too slow */
	double		slowest_unit_ms;	/* slowest successful unit of the batch */
} S3Hedge;

/*
 * All the time nobody looked at the sockets (s3_drive's gaps), added up.
 * A hedged write's tail counts only the time it was looked after: a part
 * sent while the writer encodes the next one, or while a client's stream
 * pauses between two calls, does not move while nobody drives it, and
 * must not be given up for the backend's own absence.
 */
static double s3_unattended_ms = 0;

typedef enum UnitState
{
	UNIT_HELD,					/* a spare not started */
	UNIT_PENDING,				/* started, not finished */
	UNIT_OK,					/* every request succeeded */
	UNIT_FAILED					/* a request failed */
} UnitState;

static void
s3_hedge_init(S3Hedge *h, S3Transfer **ts, int n)
{
	int		   *ids = palloc(sizeof(int) * n);

	memset(h, 0, sizeof(S3Hedge));
	h->unit_of = palloc(sizeof(int) * n);
	h->held = palloc0(sizeof(bool) * n);
	h->p95_ms = palloc(sizeof(double) * n);
	h->seen = palloc0(sizeof(uint64) * n);
	h->progress = palloc0(sizeof(TimestampTz) * n);
	h->late = palloc0(sizeof(bool) * n);
	h->very_late = palloc0(sizeof(bool) * n);
	h->last = palloc0(sizeof(bool) * n);
	h->probe = palloc0(sizeof(bool) * n);
	h->answered = palloc0(sizeof(TimestampTz) * n);
	h->read_ms = palloc(sizeof(double) * n);
	h->ok_at = palloc0(sizeof(TimestampTz) * n);
	h->tail_pos = palloc0(sizeof(size_t) * n);
	h->tail_seen_ms = palloc0(sizeof(double) * n);
	h->tail_exact = palloc0(sizeof(bool) * n);
	h->tail_slow = palloc0(sizeof(int) * n);
	for (int i = 0; i < n; i++)
	{
		ProviderRequest *req = ts[i]->req;

		req->cancelled = false;
		req->late = false;
		req->unanswered = false;
		req->upload_broken = false;
		req->first_byte_ms = 0;
		req->body_ms = 0;
		h->unit_of[i] = -1;
		h->p95_ms[i] = -1;
		h->read_ms[i] = -1;
		if (ts[i]->provider != NULL && (req->hedge || req->hedge_unit > 0))
			h->p95_ms[i] = provider_latency_p95_ms(ts[i]->provider);
		if (ts[i]->provider != NULL && req->hedge && ts[i]->op == S3OP_GET)
			h->read_ms[i] = provider_recent_read_ms(ts[i]->provider);
		if (req->hedge_unit <= 0)
			continue;
		h->need = Max(h->need, req->hedge_need);
		for (int u = 0; u < h->nunits && h->unit_of[i] < 0; u++)
			if (ids[u] == req->hedge_unit)
				h->unit_of[i] = u;
		if (h->unit_of[i] < 0)
		{
			ids[h->nunits] = req->hedge_unit;
			h->unit_of[i] = h->nunits++;
		}
		h->held[i] = req->hedge_spare && ts[i]->state == TS_QUEUED;
		if (req->hedge_last)
			h->last[h->unit_of[i]] = true;
		if (req->hedge_probe)
			h->probe[h->unit_of[i]] = true;
		if (req->hedge_finish)
			h->finish_running = true;
		if (req->hedge_fallback)
			h->fallback = true;
	}
	if (h->nunits == 0)
		h->need = 0;
	h->unit_id = ids;
}

static UnitState
s3_unit_state(S3Hedge *h, S3Transfer **ts, int n, int u)
{
	bool		all_ok = true;
	bool		all_held = true;

	for (int i = 0; i < n; i++)
	{
		if (h->unit_of[i] != u)
			continue;
		if (!h->held[i])
			all_held = false;
		if (ts[i]->state != TS_DONE)
			all_ok = false;
		else if (!ts[i]->req->ok)
			return UNIT_FAILED;
	}
	if (all_held)
		return UNIT_HELD;
	return all_ok ? UNIT_OK : UNIT_PENDING;
}

/* Stop transfer t: it is not needed (cancelled) or too slow (abandoned). */
static void
s3_transfer_give_up(S3Transfer *t, bool cancel, double late_ms, MemoryContext resultcxt)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		started = t->first_start != 0;

	s3_transfer_release(t);		/* removes it from the multi handle */
	t->state = TS_DONE;
	t->req->ok = false;
	t->req->latency_ms = started ? (double) (now - t->first_start) / 1000.0 : 0;
	t->req->retries = Max(t->attempt - 1, 0);
	t->req->short_bodies = t->short_bodies;
	/*
	 * (Given up after a while nobody looked is still judged right: what
	 * came in meanwhile waited in the socket, and the turn that judges
	 * has read it.)
	 */
	t->timing_loose = started && s3_try_loose(t);
	t->req->timing_loose = !s3_times_measure(t);
	if (t->op == S3OP_UPLOAD_PART && t->req->upload != NULL)
	{
		if (!t->req->upload->broken)
			t->req->upload->given_up = true;
		t->req->upload->broken = true;
	}

	/*
	 * A GET whose answer had begun measured its provider all the same: the
	 * round trip to its first byte, and its link's rate over the bytes
	 * that came (provider_stats_note).  Stopped ones are mostly a hedged
	 * set's losers — a far or thin provider that never wins a race would
	 * otherwise never be measured, and be taken for as fast as the fastest.
	 */
	if (t->op == S3OP_GET && t->body_started && t->received > 0 && t->try_start != 0)
	{
		double		first_us = (double) (t->body_at - t->try_start) - (double) t->connect_us;

		t->req->partial_bytes = t->received;
		t->req->first_byte_ms = Max(first_us, 1.0) / 1000.0;
		t->req->body_ms = (double) (now - t->body_at) / 1000.0;
	}
	if (cancel)
	{
		t->req->cancelled = true;
		t->req->unanswered = started && t->status == 0 && t->received == 0;

		/*
		 * Late, its running time a lower bound of its provider's round trip
		 * — unless its answer had begun: then the bytes were coming, at
		 * the link's rate, which says nothing of the round trip (a thin
		 * provider's bulk spare would be taken for a slow one).
		 */
		t->req->late = started && late_ms > 0 && t->req->latency_ms > late_ms &&
			t->status == 0 && t->received == 0 && !t->timing_loose;
		return;
	}
	t->req->abandoned = true;
	t->req->error = MemoryContextStrdup(resultcxt,
										t->req->thin ?
										psprintf("provider \"%s\": abandoned after %.0f ms, its bytes coming far slower than the others'",
												 t->provider->name, t->req->latency_ms) :
										psprintf("provider \"%s\": abandoned after %.0f ms, far slower than the others",
												 t->provider->name, t->req->latency_ms));
}

/*
 * When transfer i last received bytes, its answer began, or it started,
 * for the stall checks.  (The answer's beginning counts: a provider 2 s
 * away whose headers had just come was taken for one silent since its
 * start, and given up as its bytes were coming.)
 */
static TimestampTz
s3_last_progress(S3Hedge *h, S3Transfer **ts, int i, TimestampTz now)
{
	S3Transfer *t = ts[i];
	uint64		mark;

	if (t->state != TS_RUNNING)
		return now;
	/* bytes received (GET) or handed to libcurl to send (uploads), and
	 * whether the answer has begun */
	mark = t->received + t->body_pos + (t->status != 0 ? 1 : 0);
	if (h->progress[i] == 0 || mark != h->seen[i])
	{
		h->seen[i] = mark;
		h->progress[i] = h->progress[i] == 0 ? t->first_start : now;
	}
	return h->progress[i];
}

/*
 * Thin stragglers: a large GET still coming in at less than
 * 1/HEDGE_THIN_FACTOR of the rate the slowest large GET of the batch that
 * ended well had (a provider close by, so its answers begin in time, on a
 * thin link), at least HEDGE_THIN_SAMPLE_MS into its body.  Whether every
 * straggler is thin and at that rate the last would still take longer than
 * ref (the slowest finished one's time; at least HEDGE_MIN_MS): reading
 * around them from parity costs about that much, and giving them up at the
 * grace's end — bytes still coming — never came: a window waited for its
 * slowest link's bytes.
 */
#define HEDGE_THIN_FACTOR		3
#define HEDGE_THIN_MIN_BYTES	(1024 * 1024)
#define HEDGE_THIN_SAMPLE_MS	50

/*
 * The slowest body rate (bytes per ms) of the large GETs of ts that ended
 * well, -1 if none; *body_ms: how long that one's body took.
 */
static double
s3_done_rate(S3Transfer **ts, int n, double *body_ms)
{
	double		done_rate = -1;

	*body_ms = 0;
	for (int i = 0; i < n; i++)
	{
		ProviderRequest *req = ts[i]->req;

		if (ts[i]->state == TS_DONE && req->ok && ts[i]->op == S3OP_GET &&
			req->result_size >= PROVIDER_RATE_MIN_BYTES && req->body_ms > 0)
		{
			double		rate = (double) req->result_size / req->body_ms;

			if (done_rate < 0 || rate < done_rate)
			{
				done_rate = rate;
				*body_ms = req->body_ms;
			}
		}
	}
	return done_rate;
}

static double s3_link_rate(S3Transfer *t, TimestampTz now);

/*
 * A hedged write's straggler on a thin uplink, that would not end within
 * the tail the quorum allows (tail_left ms more): given up at once rather
 * than at the tail's end — a thin provider's part held the writer a second
 * for a shard it dropped anyway, while the next part could not be encoded
 * into that part's buffers.
 *
 * Judged only while the writer waits for the set, and only if it has
 * waited since the quorum came: then it gains by not waiting, and it has
 * seen the straggler's pace since.  Judged while the set ran behind other
 * work (the writer encoding, a client between two calls, a read), or when
 * the writer came back to a quorum reached meanwhile, a provider stalled
 * for a while but sending again by the time the writer came back lost its
 * shard (TAP 174, also under CI load).  Its pace is the bytes its provider acknowledged (what it
 * handed to libcurl less what its socket still queues: s3_transfer_unsent,
 * megabytes on a fast or near link) over a window of HEDGE_WRITE_PACE_MS
 * of that wait, after the quorum; too slow in HEDGE_WRITE_PACE_WINDOWS
 * windows in a row, it is given up — one window could end inside the last
 * hold of a provider that had just recovered (TAP 174).  Where the queue
 * cannot be told, the bytes handed to libcurl stand for it, and the error
 * is to wait.  Judged on
 * the whole part at its latest pace, a link that had sent its first
 * megabytes fast was given up although it would have ended in time (TAP
 * 176).  Only a link sending at less than 1/HEDGE_THIN_FACTOR of the
 * slowest stored upload's rate is judged at all: one merely slower than
 * the others gets the tail as before.
 */
#define HEDGE_WRITE_PACE_MS		200
#define HEDGE_WRITE_PACE_WINDOWS	2

static bool s3_socket_shared(S3Transfer *t);

static bool
s3_upload_too_slow(S3Hedge *h, S3Transfer **ts, int n, int i, TimestampTz now, long tail_left)
{
	S3Transfer *t = ts[i];
	double		attended = (double) now / 1000.0 - s3_unattended_ms;
	double		watched,
				rate,
				stored_rate = -1,
				left_ms;
	int64		unsent;
	size_t		done;

	if (!h->awaited)
		h->watched = false;
	if (t->body_len < HEDGE_THIN_MIN_BYTES || tail_left <= 0 || t->try_start == 0 ||
		!h->watched)
	{
		h->tail_seen_ms[i] = 0; /* a pace is watched over one wait */
		h->tail_slow[i] = 0;
		return false;
	}
	/* what the provider has: acknowledged, or at most handed to libcurl
	 * (a socket that streams of other transfers share says nothing of one) */
	unsent = s3_transfer_unsent(t);
	if (unsent >= 0 && s3_socket_shared(t))
		unsent = -1;
	done = t->body_pos - (size_t) Min(Max(unsent, 0), (int64) t->body_pos);
	if (done >= t->body_len)
		return false;
	if (h->tail_seen_ms[i] == 0 || done < h->tail_pos[i] || h->tail_exact[i] != (unsent >= 0))
	{
		/* first look, a new try that sends from the start again, or the
		 * socket's queue no longer (or now) told */
		h->tail_pos[i] = done;
		h->tail_seen_ms[i] = attended;
		h->tail_exact[i] = unsent >= 0;
		h->tail_slow[i] = 0;
		return false;
	}
	watched = attended - h->tail_seen_ms[i];
	if (watched < HEDGE_WRITE_PACE_MS || done == h->tail_pos[i])
		return false;			/* too soon, or not sending: the stall rule's */
	rate = (double) (done - h->tail_pos[i]) / watched;

	/* the slowest stored upload's rate, its round trips included */
	for (int j = 0; j < n; j++)
	{
		S3Transfer *o = ts[j];

		if (o->state == TS_DONE && o->req->ok && o->op != S3OP_GET &&
			o->body_len >= HEDGE_THIN_MIN_BYTES && o->req->latency_ms > 0)
		{
			double		r = (double) o->body_len / o->req->latency_ms;

			if (stored_rate < 0 || r < stored_rate)
				stored_rate = r;
		}
	}
	left_ms = (double) (t->body_len - done) / rate;

	/* the next window starts here */
	h->tail_pos[i] = done;
	h->tail_seen_ms[i] = attended;
	if (stored_rate < 0 || rate * HEDGE_THIN_FACTOR >= stored_rate ||
		left_ms <= (double) tail_left)
	{
		h->tail_slow[i] = 0;
		return false;
	}
	return ++h->tail_slow[i] >= HEDGE_WRITE_PACE_WINDOWS;
}

/*
 * Whether running transfer t is a large GET whose provider's link brings
 * in less than 1/HEDGE_THIN_FACTOR of done_rate — t and whatever else
 * reads from that provider now (a window read ahead, a shard being
 * verified) together: a shared link gives t only a part of it; *left_ms:
 * how long t would still take at its rate.
 */
static bool
s3_transfer_thin(S3Transfer *t, TimestampTz now, double done_rate, double done_body_ms,
				 double *left_ms)
{
	double		body_ms;
	double		rate;

	if (done_rate <= 0 || t->state != TS_RUNNING || t->op != S3OP_GET || !t->body_started ||
		t->req->length < HEDGE_THIN_MIN_BYTES || t->received == 0 ||
		t->max_gap_ms > S3_NEAR_GAP_MS)
		return false;
	body_ms = (double) (now - t->body_at) / 1000.0;
	rate = (double) t->received / Max(body_ms, 1.0);

	/*
	 * Judged over enough of its body: HEDGE_THIN_SAMPLE_MS, and four of its
	 * round trips (a new connection's window grows for a few of them), and
	 * as long as the slowest finished body took — never while the backend
	 * left its socket alone for long (its rate would be the backend's).
	 */
	if (body_ms < Max((double) HEDGE_THIN_SAMPLE_MS,
					  4.0 * (double) (t->body_at - t->try_start) / 1000.0) ||
		body_ms < done_body_ms ||
		s3_link_rate(t, now) * HEDGE_THIN_FACTOR >= done_rate)
		return false;
	*left_ms = (double) (t->req->length - Min(t->received, t->req->length)) / rate;
	return true;
}

static bool
s3_stragglers_thin(S3Transfer **ts, int n, TimestampTz now, double ref)
{
	double		done_body_ms;
	double		done_rate = s3_done_rate(ts, n, &done_body_ms);
	double		left_ms = 0;
	int			nthin = 0;

	if (done_rate <= 0)
		return false;
	for (int i = 0; i < n; i++)
	{
		double		left = 0;

		if (ts[i]->state != TS_RUNNING)
			continue;
		if (!s3_transfer_thin(ts[i], now, done_rate, done_body_ms, &left))
			return false;
		left_ms = Max(left_ms, left);
		nthin++;
	}
	return nthin > 0 && left_ms > Max((double) HEDGE_MIN_MS, ref);
}

/* How long the stragglers may still take (ms); -1 if abandoning does not apply. */
static long
s3_hedge_remaining(S3Hedge *h, S3Transfer **ts, int n, TimestampTz last_done, double slowest_ms,
				   bool *thin)
{
	int			ok = 0;
	double		ref = slowest_ms;
	long		grace;
	TimestampTz now;
	TimestampTz since = last_done;
	bool		started_all = true;

	*thin = false;
	if (last_done == 0 || h->need > 0)
		return -1;				/* nothing has come back yet, or a hedged set */
	now = GetCurrentTimestamp();
	for (int i = 0; i < n; i++)
	{
		if (ts[i]->state == TS_DONE)
			ok++;				/* (after a failure the caller reads around the
								 * batch anyway; the stragglers still get their
								 * time, they are only cancelled then) */
		else if (!ts[i]->req->hedge)
			return -1;
		else if (ts[i]->state != TS_RUNNING)
			started_all = false;	/* one that has not even started is not slow */
		else
		{
			TimestampTz p = s3_last_progress(h, ts, i, now);

			ref = Max(ref, h->p95_ms[i]);
			since = Max(since, p);	/* bytes still coming: not stalled */
		}
	}
	if (ok == 0 || ok == n)
		return -1;
	if (!started_all)
		return -1;
	grace = Max((long) HEDGE_MIN_MS, (long) (HEDGE_FACTOR * ref));
	if (s3_stragglers_thin(ts, n, now, ref))
	{
		*thin = true;
		return 0;
	}
	return Max(grace - TimestampDifferenceMilliseconds(since, now), 0);
}

/*
 * s3_hedge_stalled — the healthy path's GETs (hedge) that are late for
 * their answer: no status line nor byte after HEDGE_STALL_FACTOR times
 * their provider's recent round trip, or the fastest answer of this batch
 * if that is more (a busy machine answers everything late), and at least
 * HEDGE_STALL_MIN_MS.  The caller then reads around it from parity without
 * waiting for the rest of the batch to end (before, such a request was
 * given up only once every other one had ended, and the batch's slowest
 * time — on a WAN, its bytes at the provider's bandwidth — made that far
 * later).  When a request to the same provider started after it has begun
 * to answer, this one request is stuck, not its provider: it is cancelled,
 * as late (its running time goes into the provider's read times as a lower
 * bound; one late answer does not make a provider slow for every reader).
 * When nothing else runs on its provider and other providers have answered
 * since it started, the provider is not answering: it is abandoned, as by
 * the rule below (the provider is marked slow).  The time an answer takes
 * to begin is a round trip whatever the size asked, so this is not fooled
 * by large ranges; a request queued behind others' bytes on its provider's
 * link is left alone.  Also the requests of a batch that are outside its
 * hedged set (a patch's edges of the data shards kept, beside the parity
 * units).  Returns how many were given up; *wait_ms is lowered
 * to when the next is due.
 */
static int
s3_hedge_stalled(S3Hedge *h, S3Transfer **ts, int n, long *wait_ms, MemoryContext resultcxt)
{
	TimestampTz now = GetCurrentTimestamp();
	double		fastest = -1;
	int			gave_up = 0;
	bool		failed = false;

	for (int i = 0; i < n; i++)
	{
		S3Transfer *t = ts[i];

		if (h->answered[i] == 0 && t->first_start != 0 &&
			(t->state == TS_DONE || t->status != 0 || t->received > 0))
			h->answered[i] = now;
		if (h->answered[i] != 0)
		{
			double		ms = t->req->first_byte_ms > 0 ? t->req->first_byte_ms :
				(double) (h->answered[i] - t->first_start) / 1000.0;

			if (fastest < 0 || ms < fastest)
				fastest = ms;
		}
		if (t->state == TS_DONE && !t->req->ok && !t->req->cancelled)
			failed = true;
	}
	for (int i = 0; i < n; i++)
	{
		S3Transfer *t = ts[i];
		double		late_ms;
		long		left;
		bool		same = false;
		bool		busy = false;
		bool		others = false;

		/* (a hedged set's units have spares of their own) */
		if (t->state != TS_RUNNING || h->read_ms[i] < 0 || h->answered[i] != 0 ||
			t->op != S3OP_GET || !t->req->hedge || h->unit_of[i] >= 0)
			continue;
		late_ms = Max((double) HEDGE_STALL_MIN_MS,
					  HEDGE_STALL_FACTOR * Max(h->read_ms[i], fastest));
		left = (long) (late_ms - (double) (now - t->first_start) / 1000.0);
		if (left > 0)
		{
			*wait_ms = Min(*wait_ms, left);
			continue;
		}

		/*
		 * Its provider answers a request started after it: this one request
		 * is stuck, not the provider — cancel it (late).  Nothing else runs
		 * on that provider but others have answered since it started: the
		 * provider is not answering — abandon it (slow), as below.  Its
		 * provider is busy with others' bytes (a shared link), or nothing
		 * answers at all (the machine is busy): wait.
		 */
		for (int j = 0; j < n && !same; j++)
			same = j != i && ts[j]->provider == t->provider &&
				ts[j]->first_start >= t->first_start && h->answered[j] > t->first_start;
		for (int j = 0; j < n && !same && !busy; j++)
			busy = j != i && ts[j]->provider == t->provider && ts[j]->state == TS_RUNNING;
		for (int j = 0; j < n && !same && !busy && !others; j++)
			others = j != i && h->answered[j] > t->first_start;
		if (!same && !others)
			continue;			/* woken by the network when that changes */
		s3_transfer_give_up(t, same || failed, 1, resultcxt);
		gave_up++;
	}
	return gave_up;
}

/* How late unit u may run before it gets a spare (ms). */
static double
s3_unit_late_ms(S3Hedge *h, S3Transfer **ts, int n, int u)
{
	double		ref = h->slowest_unit_ms;

	if (ref <= 0)
		for (int i = 0; i < n; i++)
			if (h->unit_of[i] == u)
				ref = Max(ref, h->p95_ms[i]);
	return Max((double) HEDGE_SPARE_MIN_MS, HEDGE_SPARE_FACTOR * ref);
}

/*
 * Whether unit u of a hedged set of reads is on a thin link: one of its
 * large GETs comes in at less than 1/HEDGE_THIN_FACTOR of the rate of the
 * set's slowest that ended well, and at that rate would take longer than
 * a spare (about the slowest unit's time, at least HEDGE_SPARE_MIN_MS).
 * Late at once then, whatever its time: waiting for the lateness bar,
 * measured from the unit's start, left most of the window waiting for it.
 * done_rate, done_body_ms: s3_done_rate of the set, found once a turn.
 */
static bool
s3_unit_thin(S3Hedge *h, S3Transfer **ts, int n, int u, TimestampTz now,
			 double done_rate, double done_body_ms)
{
	if (done_rate <= 0)
		return false;
	for (int i = 0; i < n; i++)
	{
		double		left = 0;

		if (h->unit_of[i] == u &&
			s3_transfer_thin(ts[i], now, done_rate, done_body_ms, &left) &&
			left > Max((double) HEDGE_SPARE_MIN_MS, h->slowest_unit_ms))
			return true;
	}
	return false;
}

/* When unit u's first request started; 0 if none has. */
static TimestampTz
s3_unit_start(S3Hedge *h, S3Transfer **ts, int n, int u)
{
	TimestampTz start = 0;

	for (int i = 0; i < n; i++)
		if (h->unit_of[i] == u && ts[i]->first_start != 0 &&
			(start == 0 || ts[i]->first_start < start))
			start = ts[i]->first_start;
	return start;
}

/*
 * Whether unit u is stalled: every request of it that started is still
 * running, and none has had a byte for quiet_ms (one whose answer has not
 * begun at all counts as quiet however long it ran).  A stall, not a slow
 * link: a thin one keeps sending (s3_unit_thin).  Answered and then
 * stalled, a unit was judged by the slow links' bar, four times as long
 * (a break review of 34aa1b5: 7.2-7.8 s reads against 4 s).
 */
static bool
s3_unit_stalled(S3Hedge *h, S3Transfer **ts, int n, int u, TimestampTz now, double quiet_ms)
{
	bool		started = false;

	for (int i = 0; i < n; i++)
	{
		S3Transfer *t = ts[i];

		if (h->unit_of[i] != u || t->first_start == 0)
			continue;
		if (t->state == TS_DONE)
			return false;
		if ((t->status != 0 || t->received > 0) &&
			(double) (now - s3_last_progress(h, ts, i, now)) / 1000.0 < quiet_ms)
			return false;
		started = true;
	}
	return started;
}

/*
 * Whether unit u stored a part of an upload whose earlier parts are not
 * all recorded yet: they are in a batch started before this one and not
 * finished, and may still fail — then this part fails too
 * (s3_record_parts).  Such a unit does not count towards the write
 * quorum: counted, it let a writer's next part give up a slow provider
 * for a shard whose part before it had failed, and the write lost its
 * quorum with five providers healthy (TAP 173).
 */
static bool
s3_unit_awaits_earlier_part(S3Hedge *h, S3Transfer **ts, int n, int u)
{
	for (int i = 0; i < n; i++)
	{
		S3Transfer *t = ts[i];

		if (h->unit_of[i] == u && t->op == S3OP_UPLOAD_PART && t->part_number > 0 &&
			t->req->upload != NULL && t->part_number > t->req->upload->nparts + 1)
			return true;
	}
	return false;
}

/*
 * Whether unit u's part belongs to an upload that another part broke
 * (failed or given up, in this batch or another still running): the shard
 * is dropped however this part ends, so it must not count towards the
 * write quorum.  Counted, a part that happened to be stored before its
 * upload's next part failed let the batch give up a slow provider it
 * needed, and the write lost its quorum with five providers healthy.
 */
static bool
s3_unit_broken(S3Hedge *h, S3Transfer **ts, int n, int u)
{
	for (int i = 0; i < n; i++)
		if (h->unit_of[i] == u && ts[i]->op == S3OP_UPLOAD_PART && ts[i]->req->upload != NULL &&
			ts[i]->req->upload->broken)
			return true;
	return false;
}

/*
 * s3_hedge_fall_back — a hedged set whose caller reads around it if it
 * fails (hedge_fallback: a window's patch, whose fallback is the degraded
 * path): with no spare left to start, a unit that is very late and
 * stalled is given up, and so is any other request of the batch (a kept
 * data shard's edge) that has had no byte for HEDGE_LAST_MIN_MS while
 * another came in or ended since.  Waited for, such a request held the
 * patch for its whole stall: a data shard asked again as the patch's
 * last spare after a parity request failed, or an edge whose answer had
 * begun (20 s each in a break review of fe57424 and eae784a).  Returns how
 * many were given up; *wait_ms is lowered to when the next is due.
 */
static int
s3_hedge_fall_back(S3Hedge *h, S3Transfer **ts, int n, const UnitState *st, TimestampTz now,
				   long *wait_ms, MemoryContext resultcxt)
{
	bool		held = false;
	int			gave_up = 0;
	TimestampTz latest = 0;		/* the batch's last byte or end */

	for (int u = 0; u < h->nunits; u++)
		held |= st[u] == UNIT_HELD;
	for (int i = 0; i < n; i++)
		if (ts[i]->first_start != 0)
			latest = Max(latest, ts[i]->state == TS_DONE ? now : s3_last_progress(h, ts, i, now));
	for (int i = 0; i < n; i++)
	{
		S3Transfer *t = ts[i];
		int			u = h->unit_of[i];
		TimestampTz since;
		long		left;

		if (t->state != TS_RUNNING || t->op != S3OP_GET || t->first_start == 0)
			continue;
		if (u >= 0)
		{
			double		answer_ms;

			if (held || h->probe[u] || !h->very_late[u] ||
				!s3_unit_stalled(h, ts, n, u, now, (double) HEDGE_LAST_MIN_MS))
				continue;

			/*
			 * Its answer not begun, on a provider whose last answer took
			 * long: far, not stalled, before HEDGE_STALL_FACTOR times that.
			 * The set's bar follows its fastest units: an honest shard 2 s
			 * away was given up here at 1-2 s, asked again by the first
			 * repair try, given up again, and waited for only by the
			 * third (7 s reads that needed 2 s; a break review of
			 * 7875c1c).  A provider that stalls after answering fast keeps
			 * its fast answer, and one whose answer took longer than
			 * HEDGE_FAR_MAX_MS is no measure: given up as before.
			 */
			answer_ms = t->provider != NULL && t->status == 0 && t->received == 0 ?
				provider_answer_ms(t->provider) : -1;
			if (answer_ms > 0 && answer_ms <= HEDGE_FAR_MAX_MS)
			{
				left = (long) (HEDGE_STALL_FACTOR * answer_ms -
							   (double) (now - t->first_start) / 1000.0);
				if (left > 0)
				{
					*wait_ms = Min(*wait_ms, left);
					continue;
				}
			}
			s3_transfer_give_up(t, true, s3_unit_late_ms(h, ts, n, u), resultcxt);
			gave_up++;
			continue;
		}
		if (!t->req->hedge)
			continue;
		since = s3_last_progress(h, ts, i, now);
		left = (long) ((double) HEDGE_LAST_MIN_MS - (double) (now - since) / 1000.0);
		if (left > 0)
		{
			*wait_ms = Min(*wait_ms, left);
			continue;
		}
		if (latest <= since)
			continue;			/* nothing came in since: a busy machine */
		s3_transfer_give_up(t, true, 0, resultcxt);
		gave_up++;
	}
	return gave_up;
}

/*
 * s3_hedge_turn — one look at a hedged set: note units that succeeded;
 * when enough have, cancel the set's other requests and return true.  Otherwise start spares for units that failed or are late, and set
 * *wait_ms to when the next unit turns late.
 */
static bool
s3_hedge_turn(S3Hedge *h, S3Transfer **ts, int n, int *ndone, long *wait_ms,
			  MemoryContext resultcxt)
{
	int			nok = 0;
	int			nlive = 0;		/* pending and not late */
	int			nlate = 0;		/* late, not yet very late */
	TimestampTz now = GetCurrentTimestamp();
	double		done_rate;
	double		done_body_ms;
	UnitState  *st = palloc(sizeof(UnitState) * h->nunits);

	/*
	 * A part of an upload whose earlier part failed or was given up, in a
	 * batch started before (the writer sends a part while the one ahead of
	 * it still goes): its shard is lost already, and the part could not
	 * count (s3_record_parts).  Given up now, not waited for — a thin
	 * provider given up in one part held the next part's batch a second
	 * longer.
	 */
	for (int i = 0; i < n; i++)
	{
		S3Transfer *t = ts[i];

		if (t->state != TS_DONE && t->op == S3OP_UPLOAD_PART && t->req->upload != NULL &&
			t->req->upload->broken)
		{
			s3_transfer_give_up(t, true, 0, resultcxt);
			t->req->upload_broken = true;
			(*ndone)++;
		}
	}

	for (int u = 0; u < h->nunits; u++)
	{
		st[u] = s3_unit_state(h, ts, n, u);
		if (h->probe[u])
			continue;			/* neither counted nor waited for */
		if (st[u] == UNIT_OK && s3_unit_awaits_earlier_part(h, ts, n, u))
			continue;			/* stored, but not yet known to count */
		if (st[u] == UNIT_OK && s3_unit_broken(h, ts, n, u))
		{
			st[u] = UNIT_FAILED;	/* stored, but its shard is dropped */
			continue;
		}
		if (st[u] == UNIT_OK)
		{
			if (h->ok_at[u] == 0)
			{
				TimestampTz start = s3_unit_start(h, ts, n, u);
				double		ms = 0;

				h->ok_at[u] = now;
				/* the unit's network time: its slowest request's */
				for (int i = 0; i < n; i++)
					if (h->unit_of[i] == u)
						ms = Max(ms, ts[i]->req->latency_ms);
				if (ms <= 0 && start != 0)
					ms = (double) (now - start) / 1000.0;
				h->slowest_unit_ms = Max(h->slowest_unit_ms, ms);
			}
			nok++;
		}
	}
	if (nok >= h->need)
	{
		/*
		 * Enough.  Reads: cancel the rest, spares and late ones alike.
		 * Writes: the others are finished if they come in time — HEDGE_FACTOR
		 * times the slowest unit that succeeded, at least HEDGE_WRITE_MIN_MS,
		 * without a byte sent — and given up otherwise (the caller records
		 * their shards for repair).
		 */
		double		write_ms = Max((double) HEDGE_WRITE_MIN_MS,
								   HEDGE_FACTOR * h->slowest_unit_ms);

		if (h->quorum_at == 0)
		{
			TimestampTz first = 0;

			h->quorum_at = now;
			h->watched = h->awaited;
			h->unattended_at_quorum = s3_unattended_ms;
			for (int u = 0; u < h->nunits; u++)
			{
				TimestampTz us = s3_unit_start(h, ts, n, u);

				if (us != 0 && (first == 0 || us < first))
					first = us;
			}
			h->quorum_ms = first != 0 ? (double) (now - first) / 1000.0 : 0;
		}
		for (int i = 0; i < n; i++)
		{
			S3Transfer *t = ts[i];

			if (t->state == TS_DONE || h->unit_of[i] < 0)
				continue;
			if (t->op == S3OP_GET && t->state == TS_RUNNING &&
				((h->probe[h->unit_of[i]] && t->body_started) || h->finish_running))
			{
				/* (a re-read after bad bytes: the longest, a shard short
				 * sends the window to an unhedged try) */
				double		probe_ms = h->finish_running ? (double) HEDGE_PROBE_MAX_MS :
					Max((double) HEDGE_PROBE_MIN_MS,
						Min((double) HEDGE_PROBE_MAX_MS, HEDGE_PROBE_TAIL_FACTOR * h->quorum_ms));
				long		left = (long) (probe_ms - (double) (now - h->quorum_at) / 1000.0);

				if (left > 0)
				{
					*wait_ms = Min(*wait_ms, left);
					continue;
				}
			}
			if (t->op != S3OP_GET && !h->held[i])
			{
				TimestampTz since = Max(h->quorum_at, s3_last_progress(h, ts, i, now));
				double		away_ms = s3_unattended_ms - h->unattended_at_quorum;
				long		left = (long) (write_ms - Max((double) (now - since) / 1000.0 - away_ms, 0.0));
				double		tail_ms = Max((double) HEDGE_WRITE_MIN_MS,
										  HEDGE_WRITE_TAIL_FACTOR * h->quorum_ms);

				long		tail_left = (long) (tail_ms - Max((double) (now - h->quorum_at) / 1000.0 - away_ms, 0.0));

				/* sending, but past the tail the quorum allows: given up
				 * (the times the backend was away from the sockets aside) */
				left = Min(left, tail_left);
				/* or sending so slowly that it would not end by then */
				if (left > 0 && t->state == TS_RUNNING &&
					s3_upload_too_slow(h, ts, n, i, now, tail_left))
				{
					left = 0;
					t->req->thin = true;
				}

				if (t->state != TS_RUNNING || left > 0)
				{
					*wait_ms = Min(*wait_ms, Max(left, 1));
					continue;
				}
			}
			s3_transfer_give_up(t, true, s3_unit_late_ms(h, ts, n, h->unit_of[i]), resultcxt);
			(*ndone)++;
		}
		/* (requests outside the set, edges, still run: judged the same) */
		if (h->fallback)
			*ndone += s3_hedge_fall_back(h, ts, n, st, now, wait_ms, resultcxt);
		pfree(st);
		return true;
	}
	done_rate = s3_done_rate(ts, n, &done_body_ms);
	for (int u = 0; u < h->nunits; u++)
	{
		TimestampTz start;
		double		late_ms;
		double		very_ms;
		long		left;

		if (st[u] != UNIT_PENDING || h->probe[u])
			continue;
		start = s3_unit_start(h, ts, n, u);
		if (start == 0)
		{
			nlive++;			/* queued for a slot: not late yet */
			continue;
		}
		late_ms = s3_unit_late_ms(h, ts, n, u);
		if (!h->late[u] && s3_unit_thin(h, ts, n, u, now, done_rate, done_body_ms))
			late_ms = 0;		/* its spare would be sooner */
		if (h->late[u])
		{
			/*
			 * very late: HEDGE_LAST_FACTOR times that, at least
			 * HEDGE_LAST_MIN_MS — or, while its answer has not even
			 * begun, no more than HEDGE_LAST_MIN_MS past being late: a
			 * stall, which a spare on a provider found slow does beat.
			 * The bar grows with the slowest unit that succeeded (one
			 * slow honest shard, or a busy machine), and four times it
			 * made a read wait 6-8 s for a staller before its only spare
			 * left, a provider found slow, was asked (TAP 194; TAP 191
			 * beside another file).
			 */
			very_ms = Max((double) HEDGE_LAST_MIN_MS, HEDGE_LAST_FACTOR * late_ms);
			if (s3_unit_stalled(h, ts, n, u, now, late_ms))
				very_ms = Min(very_ms, late_ms + HEDGE_LAST_MIN_MS);
			late_ms = very_ms;
			left = (long) (late_ms - (double) (now - start) / 1000.0);
			if (left <= 0)
				h->very_late[u] = true;
			else
			{
				nlate++;
				*wait_ms = Min(*wait_ms, Max(left, 1));
			}
			continue;
		}
		left = (long) (late_ms - (double) (now - start) / 1000.0);
		if (left <= 0)
		{
			h->late[u] = true;
			nlate++;
		}
		else
		{
			nlive++;
			*wait_ms = Min(*wait_ms, Max(left, 1));
		}
	}

	/*
	 * Start spares, in the order of the caller's unit numbers (its ranking:
	 * started in the order the requests came, a degraded read's spares went
	 * by shard, and a provider far away with a low shard number was asked
	 * before a near one), until enough are in the running: for units failed
	 * or late; spares of last resort only for units failed or very late (a
	 * provider found slow is no help to one merely late).
	 */
	for (;;)
	{
		int			u = -1;

		for (int v = 0; v < h->nunits; v++)
			if (st[v] == UNIT_HELD && (u < 0 || h->unit_id[v] < h->unit_id[u]) &&
				nok + nlive + (h->last[v] ? nlate : 0) < h->need)
				u = v;
		if (u < 0)
			break;
		for (int i = 0; i < n; i++)
			if (h->unit_of[i] == u)
				h->held[i] = false;
		st[u] = UNIT_PENDING;
		nlive++;
		*wait_ms = 0;
	}
	if (h->fallback)
		*ndone += s3_hedge_fall_back(h, ts, n, st, now, wait_ms, resultcxt);
	pfree(st);
	return false;
}

/*
 * A run: the transfers of one batch on the shared multi handle, and what
 * the loop keeps about them between turns.  A run is driven one turn at a
 * time (s3_run_step) — to its end at once for an ordinary batch, or, for a
 * batch of reads started ahead of need, a turn whenever the backend polls
 * (s3_poll_runs) and then to its end when it is collected.  Every run
 * still alive is on s3_runs: a turn of any run moves every transfer on the
 * multi handle, and the end of a transfer is handed to the run it belongs
 * to.
 */
struct S3Run
{
	S3Transfer **ts;
	int			n;
	MemoryContext resultcxt;	/* errors go here */
	MemoryContext cxt;			/* the loop's temporary allocations */
	bool		async;			/* driven by polls until collected */
	bool		hedged_writes;	/* a hedged set of writes */
	bool		ended;			/* s3_run_end: nothing attached any more */
	int			ndone;
	TimestampTz last_done;
	double		slowest_ms;
	S3Hedge		hedge;
	double	   *rtt_ms;			/* per transfer: its provider's recent round
								 * trip (s3_run_tail_near), -1; NULL until asked */
	S3Run	   *next;
};

static S3Run *s3_runs = NULL;

/*
 * What t's provider's link brings in now, bytes per ms: the body rates of
 * every GET of any run reading from it (t among them).
 */
static double
s3_link_rate(S3Transfer *t, TimestampTz now)
{
	double		rate = 0;

	for (S3Run *run = s3_runs; run != NULL; run = run->next)
		for (int i = 0; i < run->n; i++)
		{
			S3Transfer *o = run->ts[i];

			if (o->provider == t->provider && o->state == TS_RUNNING && o->op == S3OP_GET &&
				o->body_started && o->received > 0)
				rate += (double) o->received / Max((double) (now - o->body_at) / 1000.0, 1.0);
		}
	return rate;
}

/*
 * s3_link_busy — whether another GET of t's provider is running in this
 * backend (any run).  A request started then may wait behind that one's
 * bytes on the provider's link (a read ahead asked a round trip before the
 * window in flight ends, a shard's second range): its time to the first
 * byte is the queue's as much as the round trip's.  In the WAN rig, near
 * providers measured so at 175-198 ms four times in a row were taken for
 * distant, 4 times their 40 ms round trip, and every later bulk read went
 * around them (TAP 169).
 */
bool
s3_link_busy(S3Transfer *t)
{
	for (S3Run *run = s3_runs; run != NULL; run = run->next)
		for (int i = 0; i < run->n; i++)
		{
			S3Transfer *o = run->ts[i];

			if (o != t && o->provider == t->provider && o->state == TS_RUNNING &&
				o->op == S3OP_GET)
				return true;
		}
	return false;
}

/*
 * Whether another running transfer of t's provider goes over t's
 * connection (streams multiplexed on one HTTP/2 connection).
 */
static bool
s3_socket_shared(S3Transfer *t)
{
	long		port = 0;

	if (curl_easy_getinfo(t->easy, CURLINFO_LOCAL_PORT, &port) != CURLE_OK || port <= 0)
		return true;
	for (S3Run *run = s3_runs; run != NULL; run = run->next)
		for (int i = 0; i < run->n; i++)
		{
			S3Transfer *o = run->ts[i];
			long		oport = 0;

			if (o != t && o->provider == t->provider && o->state == TS_RUNNING &&
				o->easy != NULL &&
				curl_easy_getinfo(o->easy, CURLINFO_LOCAL_PORT, &oport) == CURLE_OK &&
				oport == port)
				return true;
		}
	return false;
}

/*
 * When libcurl last looked at the sockets: the end of the last
 * curl_multi_perform or curl_multi_poll.  The time nobody looked (the
 * backend was decoding) is added to every transfer then running
 * (gap_ms, waits under S3_GAP_MIN_US aside); see s3_try_loose.
 */
static TimestampTz s3_attentive_at = 0;

#define S3_GAP_MIN_US			1000
/* polls closer together than this do not turn the loop */
#define S3_POLL_MIN_US			200

/* The end of transfer t's try, handed to its run. */
static void
s3_run_collect(S3Transfer *t, CURLcode rc)
{
	S3Run	   *run = t->run;
	MemoryContext old = MemoryContextSwitchTo(run->cxt);

	s3_transfer_finish(t, rc, run->resultcxt);
	MemoryContextSwitchTo(old);
	if (t->state == TS_DONE)
	{
		run->ndone++;
		run->last_done = GetCurrentTimestamp();
		run->slowest_ms = Max(run->slowest_ms, t->req->latency_ms);
	}
}

/* Let libcurl move every transfer on the multi handle, and collect the ends. */
static void
s3_drive(CURLM *multi)
{
	TimestampTz now = GetCurrentTimestamp();
	int			still_running;
	int			msgs_left;
	CURLMsg    *msg;
	CURLMcode	mrc;

	if (s3_attentive_at != 0 && now - s3_attentive_at > S3_GAP_MIN_US)
	{
		s3_unattended_ms += (double) (now - s3_attentive_at) / 1000.0;
		/* the part of the wait each running try was running for: none
		 * for the tries this turn has just started */
		for (S3Run *run = s3_runs; run != NULL; run = run->next)
			for (int i = 0; i < run->n; i++)
			{
				S3Transfer *t = run->ts[i];
				TimestampTz from = Max(s3_attentive_at, t->try_start);

				if (t->state == TS_RUNNING && now > from)
				{
					t->gap_ms += (double) (now - from) / 1000.0;
					t->max_gap_ms = Max(t->max_gap_ms, (double) (now - from) / 1000.0);
				}
			}
	}
	mrc = curl_multi_perform(multi, &still_running);
	s3_attentive_at = GetCurrentTimestamp();
	if (mrc != CURLM_OK)
		elog(ERROR, "curl_multi_perform failed: %s", curl_multi_strerror(mrc));
	while ((msg = curl_multi_info_read(multi, &msgs_left)) != NULL)
	{
		S3Transfer *t = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
		if (t == NULL || t->easy != msg->easy_handle || t->run == NULL || t->run->ended)
			continue;
		s3_run_collect(t, msg->data.result);
	}
}

/*
 * s3_run_begin — a run of the transfers ts (not started yet: the first
 * turn starts them).  Temporary allocations of its turns go to the current
 * context, errors to resultcxt.  async: the run is driven by
 * s3_poll_runs too, until s3_run_end.
 */
S3Run *
s3_run_begin(S3Transfer **ts, int n, MemoryContext resultcxt, bool async)
{
	S3Run	   *run = palloc0(sizeof(S3Run));

	(void) s3_get_multi();
	run->ts = ts;
	run->n = n;
	run->resultcxt = resultcxt;
	run->cxt = CurrentMemoryContext;
	run->async = async;
	s3_hedge_init(&run->hedge, ts, n);
	for (int i = 0; i < n; i++)
	{
		if (run->hedge.need > 0 && ts[i]->op != S3OP_GET)
			run->hedged_writes = true;
		ts[i]->run = run;
		if (ts[i]->state == TS_DONE)
			run->ndone++;
	}
	run->next = s3_runs;
	s3_runs = run;
	return run;
}

/*
 * s3_run_step — one turn of the loop: start queued tries while slots are
 * free (and their backoff is over; spares of a hedged set only once
 * needed), let libcurl move the transfers, collect finished ones, give up
 * hedged stragglers, cancel what a hedged set no longer needs; then, if
 * wait, sleep on the multi handle (or the latch, when only backoff waits
 * remain) until something is due.  True once every transfer of the run
 * has ended.  Interruptible.
 */
bool
s3_run_step(S3Run *run, bool wait)
{
	CURLM	   *multi = s3_get_multi();
	S3Transfer **ts = run->ts;
	int			n = run->n;
	int			maxrun = Max(destor_max_concurrent_requests, 1);
	S3Hedge    *hedge = &run->hedge;
	MemoryContext old;
	TimestampTz now;
	int			nrunning = 0;
	long		wait_ms;
	long		remaining;
	bool		thin;
	int			i;

	if (run->ended)
		return true;
	CHECK_FOR_INTERRUPTS();
	if (run->ndone >= n)
		return true;
	old = MemoryContextSwitchTo(run->cxt);

	/* start queued tries, in request order, while slots are free */
	now = GetCurrentTimestamp();
	for (i = 0; i < n; i++)
		if (ts[i]->state == TS_RUNNING)
			nrunning++;
	for (i = 0; i < n && nrunning < maxrun; i++)
	{
		S3Transfer *t = ts[i];

		if (t->state != TS_QUEUED || hedge->held[i])
			continue;
		if (t->not_before > now)
			continue;
		if (s3_transfer_start(t, run->resultcxt))
			nrunning++;
		else
		{
			t->state = TS_DONE;
			t->req->ok = false;
			t->req->latency_ms = 0;
			run->ndone++;
		}
	}

	if (nrunning > 0)
		s3_drive(multi);
	if (run->ndone >= n)
		goto done;

	wait_ms = S3_POLL_INTERVAL_MS;
	if (hedge->need > 0)
	{
		/* enough units in: the set's others are cancelled; requests
		 * outside the set still run to their end */
		hedge->awaited = wait;
		(void) s3_hedge_turn(hedge, ts, n, &run->ndone, &wait_ms, run->resultcxt);
		if (run->ndone >= n)
			goto done;
	}
	run->ndone += s3_hedge_stalled(hedge, ts, n, &wait_ms, run->resultcxt);
	if (run->ndone >= n)
		goto done;
	remaining = s3_hedge_remaining(hedge, ts, n, run->last_done, run->slowest_ms, &thin);
	if (remaining == 0)
	{
		/*
		 * The stragglers are too slow: give them up.  After a failure the
		 * caller reads around the batch anyway: they are only cancelled
		 * then, which says nothing of their providers.
		 */
		bool		failed = false;

		for (i = 0; i < n; i++)
			if (ts[i]->state == TS_DONE && !ts[i]->req->ok)
				failed = true;
		for (i = 0; i < n; i++)
		{
			if (ts[i]->state == TS_DONE)
				continue;
			/* a thin link: read around, its provider not slow for small reads */
			ts[i]->req->thin = thin;
			s3_transfer_give_up(ts[i], failed, 0, run->resultcxt);
			run->ndone++;
		}
		goto done;
	}
	if (!wait)
	{
		MemoryContextSwitchTo(old);
		return false;
	}

	/*
	 * Other runs of hedged writes started ahead (a writer's next part,
	 * while it waits for this one's) take their turn too: their quorum is
	 * seen when it comes, and a straggler given up in time, not once the
	 * writer gets to them.
	 */
	if (wait)
	{
		for (S3Run *other = s3_runs; other != NULL; other = other->next)
			if (other != run && other->async && other->hedged_writes &&
				!other->ended && other->ndone < other->n)
				(void) s3_run_step(other, false);
		/* their turns collect this run's ends too */
		if (run->ndone >= n)
			goto done;
	}

	/*
	 * Sleep until there is network activity, a retry is due, a unit turns
	 * late or the poll interval is over; not at all when a try can start
	 * now.
	 */
	now = GetCurrentTimestamp();
	if (remaining > 0)
		wait_ms = Min(wait_ms, remaining);
	nrunning = 0;
	for (i = 0; i < n; i++)
		if (ts[i]->state == TS_RUNNING)
			nrunning++;
	for (i = 0; i < n; i++)
	{
		S3Transfer *t = ts[i];

		if (t->state != TS_QUEUED || hedge->held[i])
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
	if (wait_ms > 0 && nrunning > 0)
	{
		CURLMcode	mrc = curl_multi_poll(multi, NULL, 0, (int) wait_ms, NULL);

		if (mrc != CURLM_OK)
			elog(ERROR, "curl_multi_poll failed: %s", curl_multi_strerror(mrc));
		s3_attentive_at = GetCurrentTimestamp();
	}
	else if (wait_ms > 0)
	{
		/* only backoff waits left: sleep on the latch */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	MemoryContextSwitchTo(old);
	return false;

done:
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * Bytes left below which a GET counts as ending, and the least of its body
 * that must have come in before its rate is believed: the first packets
 * arrive in a burst.
 */
#define S3_TAIL_SMALL_BYTES		65536
#define S3_TAIL_SAMPLE_US		5000

/* The body's rate is taken over the last this long, at least */
#define S3_TAIL_RATE_US			20000
/* A round trip may take this much longer than the provider's fastest */
#define S3_TAIL_RTT_SLACK		1.5

/*
 * Whether GET t has at most a round trip of body left, at the rate its
 * body is coming in now (shared with whatever else its provider's link
 * carries): a request sent now would begin to answer about when t ends.
 * The round trip is what t's own answer took to begin, less a new
 * connection's set-up (the next request reuses it): with the provider's
 * own time to answer, what the next request will see — but no more than
 * S3_TAIL_RTT_SLACK times the provider's recent fastest (rtt_ms, -1 if
 * unknown), for a handshake libcurl did not see (a proxy's); rtts such
 * round trips (provider_wait_lead).  The rate is the body's over its last S3_TAIL_RATE_US or more,
 * not since it began: while the previous window's answer still shared the
 * link, t came in at a fraction of the rate it has now, and its end
 * looked a round trip further off than it was.
 */
static bool
s3_transfer_tail_near(S3Transfer *t, TimestampTz now, double rtt_ms, double rtts)
{
	uint64		left;
	double		rtt_us;
	double		span_us;
	uint64		span_bytes;

	if (t->state == TS_DONE)
		return t->req->ok;
	if (t->state != TS_RUNNING || t->op != S3OP_GET || !t->body_started || t->try_start == 0)
		return false;
	left = t->req->length > t->received ? t->req->length - t->received : 0;
	if (left <= S3_TAIL_SMALL_BYTES)
		return true;
	rtt_us = (double) (t->body_at - t->try_start);
	if (t->connect_us > 0 && t->connect_us < rtt_us)
		rtt_us -= (double) t->connect_us;
	if (rtt_ms >= 0)
		rtt_us = Min(rtt_us, S3_TAIL_RTT_SLACK * rtt_ms * 1000.0);

	/* two samples of the body's progress, the older at least S3_TAIL_RATE_US back */
	if (t->rate_at[1] == 0 || now - t->rate_at[1] >= S3_TAIL_RATE_US)
	{
		if (t->rate_at[1] != 0)
		{
			t->rate_at[0] = t->rate_at[1];
			t->rate_received[0] = t->rate_received[1];
		}
		t->rate_at[1] = now;
		t->rate_received[1] = t->received;
	}
	if (t->rate_at[0] != 0 && now - t->rate_at[0] >= S3_TAIL_RATE_US)
	{
		span_us = (double) (now - t->rate_at[0]);
		span_bytes = t->received - t->rate_received[0];
	}
	else
	{
		span_us = (double) (now - t->body_at);
		span_bytes = t->received;
	}
	if (span_us < S3_TAIL_SAMPLE_US || span_bytes == 0)
		return false;
	return (double) left * span_us / (double) span_bytes <= rtt_us * rtts;
}

/*
 * s3_run_tail_near — whether the run is near enough its end that the
 * reader's next batch should be sent now (provider_wait_tail): every
 * transfer it waits for has ended well or is in its last round trip.  In a
 * hedged set, enough units must be; the others (spares, stragglers) will
 * be cancelled rather than waited for.
 */
bool
s3_run_tail_near(S3Run *run, double rtts)
{
	S3Hedge    *h = &run->hedge;
	TimestampTz now;
	int			near_units = 0;

	if (run->ended || run->ndone >= run->n)
		return true;
	if (run->rtt_ms == NULL)
	{
		run->rtt_ms = MemoryContextAlloc(run->cxt, sizeof(double) * run->n);
		for (int i = 0; i < run->n; i++)
			run->rtt_ms[i] = run->ts[i]->provider != NULL && run->ts[i]->op == S3OP_GET ?
				provider_recent_read_ms(run->ts[i]->provider) : -1;
	}
	now = GetCurrentTimestamp();
	for (int i = 0; i < run->n; i++)
		if ((h->need == 0 || h->unit_of[i] < 0) &&
			!s3_transfer_tail_near(run->ts[i], now, run->rtt_ms[i], rtts))
			return false;
	if (h->need == 0)
		return true;
	for (int u = 0; u < h->nunits; u++)
	{
		bool		near = true;
		bool		any = false;

		for (int i = 0; i < run->n && near; i++)
		{
			if (h->unit_of[i] != u || h->held[i])
				continue;
			any = true;
			near = s3_transfer_tail_near(run->ts[i], now, run->rtt_ms[i], rtts);
		}
		if (any && near)
			near_units++;
	}
	return near_units >= h->need;
}

/*
 * s3_run_end — nothing of the run is left attached: every easy handle,
 * header list and malloc'd buffer is freed, and transfers that had not
 * ended are marked stopped (ok false; s3_run_stopped names them).  Safe
 * to call twice and in error cleanup: it allocates nothing.
 */
void
s3_run_end(S3Run *run)
{
	S3Run	  **prev;

	if (run->ended)
		return;
	run->ended = true;
	for (int i = 0; i < run->n; i++)
	{
		S3Transfer *t = run->ts[i];

		s3_transfer_release(t);
		if (t->state != TS_DONE)
		{
			t->state = TS_DONE;
			t->stopped = true;
		}
	}
	for (prev = &s3_runs; *prev != NULL; prev = &(*prev)->next)
		if (*prev == run)
		{
			*prev = run->next;
			break;
		}
}

/* turns at most that a cancel takes to read what waits in the sockets */
#define S3_CANCEL_DRAIN_TURNS	256

/*
 * s3_run_cancel — a run nobody wants any more (provider_cancel): every
 * transfer still going is stopped as a hedged set's loser is, so that its
 * request says what it moved — the provider sent those bytes and bills
 * them as egress; then the run ends.  Its times are no measurement: it is
 * stopped when the backend chooses, maybe after a cursor sat idle with
 * nobody taking the bytes from the sockets (no turn of the loop saw that
 * gap), and the idle time went into the provider's latencies and rates
 * (TAP 150).  What ended before the cancel was judged in its own turn.
 */
void
s3_run_cancel(S3Run *run)
{
	CURLM	   *multi = s3_get_multi();

	if (run->ended)
		return;

	/*
	 * First what waits in the sockets: sent, so billed, and counted only
	 * once read (a third of an idle cursor's read-ahead was left there,
	 * TAP 150).  Turns without waiting, while they bring bytes in; the
	 * turn also sees the idle gap, so what ends now is judged loose.
	 */
	for (int pass = 0; pass < S3_CANCEL_DRAIN_TURNS; pass++)
	{
		uint64		before = 0,
					after = 0;

		for (int i = 0; i < run->n; i++)
			before += run->ts[i]->received;
		s3_drive(multi);
		for (int i = 0; i < run->n; i++)
			after += run->ts[i]->received;
		if (after == before)
			break;
	}
	for (int i = 0; i < run->n; i++)
	{
		S3Transfer *t = run->ts[i];

		if (t->state == TS_DONE)
			continue;
		s3_transfer_give_up(t, true, 0, run->resultcxt);
		t->req->timing_loose = true;
	}
	s3_run_end(run);
}

/*
 * s3_poll_runs — a turn, without waiting, of every run of reads started
 * ahead of need: what has come is taken from the sockets (so that the
 * bytes keep coming while the backend decodes), retries and spares start,
 * late ones are found.  Cheap when nothing runs, and when the last look
 * was very recent.
 */
void
s3_poll_runs(void)
{
	TimestampTz now;

	if (s3_runs == NULL)
		return;
	now = GetCurrentTimestamp();
	if (now - s3_attentive_at < S3_POLL_MIN_US)
		return;
	for (S3Run *run = s3_runs; run != NULL; run = run->next)
		if (run->async && run->ndone < run->n)
			(void) s3_run_step(run, false);
}

/* how long a failed (sub)transaction waits for the writes it has sent */
#define S3_SETTLE_MAX_MS	2000

/* A PUT or part in flight whose whole body libcurl has taken. */
static bool
s3_write_sent_unanswered(void)
{
	for (S3Run *run = s3_runs; run != NULL; run = run->next)
	{
		if (run->ended)
			continue;
		for (int i = 0; i < run->n; i++)
		{
			S3Transfer *t = run->ts[i];

			if (t->state == TS_RUNNING && t->easy != NULL &&
				(t->op == S3OP_PUT || t->op == S3OP_UPLOAD_PART) &&
				t->body_pos >= t->body_len)
				return true;
		}
	}
	return false;
}

/*
 * s3_runs_settle_writes — a failed (sub)transaction is about to delete what
 * it wrote (object_xact.c).  A PUT whose whole body is already in the
 * sockets would still be stored if we hung up now (the kernel delivers
 * what it holds, and the provider stores a complete body), and stored
 * after the delete it is an orphan: a table's segment goes out while the
 * next one is encoded, so an ERROR in a later row often finds one so.
 * Wait for their answers, at most S3_SETTLE_MAX_MS, so that the delete
 * comes after them.  A body not yet sent in full is cut off as before: its
 * provider sees it short and stores nothing.  Every run is driven as by a
 * poll (their buffers are alive: a batch whose context went was abandoned
 * first); what is not answered by then is left to cleanup_orphans.
 */
void
s3_runs_settle_writes(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	TimestampTz deadline;

	if (s3_multi == NULL || !s3_write_sent_unanswered())
		return;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), S3_SETTLE_MAX_MS);
	HOLD_INTERRUPTS();
	PG_TRY();
	{
		for (;;)
		{
			s3_drive(s3_multi);
			if (!s3_write_sent_unanswered() || GetCurrentTimestamp() >= deadline)
				break;
			(void) curl_multi_poll(s3_multi, NULL, 0, 20, NULL);
		}
	}
	PG_CATCH();
	{
		/* best effort, as the deletes that follow */
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
	}
	PG_END_TRY();
	RESUME_INTERRUPTS();
}

/*
 * s3_runs_abort — at the end of a failed transaction, no run is left
 * attached to the multi handle (a batch's owner normally ends it sooner:
 * see provider_start).
 */
void
s3_runs_abort(void)
{
	while (s3_runs != NULL)
		s3_run_end(s3_runs);
}

/*
 * s3_run_transfers — run every transfer of ts to its end: turns of one run
 * until it is over.  Whatever happens, no easy handle, header list or
 * malloc'd buffer survives it.
 */
void
s3_run_transfers(S3Transfer **ts, int n, MemoryContext resultcxt)
{
	S3Run	   *run = s3_run_begin(ts, n, resultcxt, false);

	PG_TRY();
	{
		while (!s3_run_step(run, true))
			;
	}
	PG_FINALLY();
	{
		s3_run_end(run);
	}
	PG_END_TRY();
}
