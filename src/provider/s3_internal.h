/*
 * s3_internal.h — what the files of the s3 backend share, and nothing else
 * includes: the transfer record (one request of a batch, across its tries),
 * the S3 operations, and the functions one file of the backend calls in
 * another.
 *
 *   provider_s3.c   the provider interface: batches and listings
 *   s3_request.c    building and starting one try (URL, headers, SigV4)
 *   s3_transfer.c   the libcurl multi loop: callbacks, outcome of a try,
 *                   retries with backoff, short-body checks, hedging
 *   s3_xml.c        reading S3's XML answers and error documents
 */
#ifndef DESTOR_S3_INTERNAL_H
#define DESTOR_S3_INTERNAL_H

#include <curl/curl.h>

#include "lib/stringinfo.h"
#include "utils/timestamp.h"

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


extern const char *const s3_op_names[];

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

typedef struct S3Run S3Run;

typedef struct S3Transfer
{
	ProviderRequest *req;		/* results go here */
	S3Run	   *run;			/* the run it belongs to (s3_transfer.c) */
	Provider   *provider;
	Oid			serverid;		/* the provider's, kept with the transfer */
	S3Op		op;
	const char *key;			/* caller's key (without provider prefix) */
	S3TransferState state;
	int			attempt;		/* tries started so far */
	int			held_tries;		/* counted tries that failed after holding the
								 * request half the request timeout or more */
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
	TimestampTz body_at;		/* GET: when they were (s3_run_tail_near) */
	int64		connect_us;		/* GET: of the time until then, what setting
								 * up a new connection took (libcurl's) */
	TimestampTz rate_at[2];		/* GET: the body's progress sampled at two */
	uint64		rate_received[2];	/* moments apart (s3_transfer_tail_near) */
	bool		stopped_early;	/* GET: we aborted a 200 once we had enough */
	bool		unexpected_range;
	S3Body		body;			/* XML answers and error documents */
	int			short_bodies;	/* GET answers that ended before their length */
	TimestampTz try_start;		/* when this try started */
	bool		queued;			/* GET: it started while another GET of its
								 * provider ran (s3_link_busy) */
	double		max_gap_ms;		/* the longest single such wait */
	double		gap_ms;			/* how long of this try nobody looked at the
								 * sockets (the backend did other work) */
	bool		timing_loose;	/* that was a good part of the try: libcurl's
								 * times of it are stretched by the backend's
								 * own work (s3_try_loose) */
	bool		stopped;		/* its run ended before it did (s3_run_end) */
	bool		on_kept_socket; /* this try went out on a socket the
								 * connection keeper made (conn_keeper.c) */
	bool		shun_keeper;	/* one failed unanswered: connect ourselves */

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

/* s3_transfer.c */
extern CURLM *s3_get_multi(void);
extern void s3_response_reset(S3Transfer *t);
extern size_t s3_header_cb(char *data, size_t size, size_t nmemb, void *userdata);
extern size_t s3_write_cb(char *data, size_t size, size_t nmemb, void *userdata);
extern void s3_transfer_detach(S3Transfer *t);
extern const char *s3_transfer_what(S3Transfer *t);
extern void s3_set_error(S3Transfer *t, MemoryContext resultcxt, const char *detail);
extern void s3_run_transfers(S3Transfer **ts, int n, MemoryContext resultcxt);
extern S3Run *s3_run_begin(S3Transfer **ts, int n, MemoryContext resultcxt, bool async);
extern bool s3_run_step(S3Run *run, bool wait);
extern bool s3_run_tail_near(S3Run *run, double rtts);
extern void s3_run_end(S3Run *run);
extern void s3_run_cancel(S3Run *run);
extern void s3_poll_runs(void);
extern bool s3_link_busy(S3Transfer *t);
extern void s3_runs_abort(void);
extern void s3_runs_settle_writes(void);

/* s3_request.c */
extern bool s3_transfer_start(S3Transfer *t, MemoryContext resultcxt);
extern int64 s3_transfer_unsent(S3Transfer *t);

/* s3_xml.c */
extern const char *s3_xml_element(const char *s, const char *end, const char *tag,
								  size_t *len, const char **after);
extern char *s3_xml_get(const char *s, const char *end, const char *tag);
extern void s3_xml_escape_into(StringInfo buf, const char *s);
extern char *s3_http_detail(S3Transfer *t, char **code_out);
extern bool s3_parse_uint64(const char *s, size_t len, uint64 *out);
extern TimestampTz s3_parse_time(const char *s);

#endif							/* DESTOR_S3_INTERNAL_H */
