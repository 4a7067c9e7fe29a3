/*
 * provider.h — one interface to every storage provider.
 *
 * A provider stores opaque objects under keys: put, ranged get, head,
 * delete, list by prefix, and streamed (multipart) uploads.  Backends:
 *   file — a local directory (the embedded default and the test default);
 *   s3   — any S3-compatible endpoint (AWS Signature V4 over libcurl).
 *
 * Requests are issued in batches: provider_execute() runs every request of
 * a batch concurrently (all S3 transfers of a batch share one libcurl multi
 * loop) and returns when all have finished.  Per-request failures are
 * reported in the request (ok = false, error text without secrets); only
 * interrupts (query cancel, statement_timeout) and out-of-memory throw.
 * The caller (the object layer) decides what a failure means: quorum,
 * degraded read, or an ERROR that names the provider.
 *
 * This layer knows nothing of objects, tables or blobs.
 */
#ifndef DESTOR_PROVIDER_H
#define DESTOR_PROVIDER_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

typedef enum ProviderType
{
	PROVIDER_FILE,
	PROVIDER_S3
} ProviderType;

/* A provider as declared by CREATE SERVER ... FOREIGN DATA WRAPPER destor_provider. */
typedef struct Provider
{
	Oid			serverid;
	char	   *name;			/* server name: used in messages */
	ProviderType type;
	char	   *geo;			/* jurisdiction tag, may be NULL */
	char	   *operator_name;	/* who runs it (option "operator"), may be NULL */
	double		cost_per_gb_month;
	double		cost_per_request;	/* price of one request, 0 if not given */
	double		egress_per_gb;	/* price of reading 1e9 bytes back, 0 if not given */

	/* file */
	char	   *path;			/* absolute directory */

	/* s3 */
	char	   *endpoint;		/* scheme://host[:port], no trailing slash */
	char	   *bucket;
	char	   *region;
	bool		virtual_host;	/* virtual-hosted addressing, else path-style */
	char	   *prefix;			/* key prefix inside the bucket, "" or ends in '/' */
	char	   *access_key_id;	/* from the user mapping; NULL = anonymous */
	char	   *secret_access_key;
	char	   *session_token;
} Provider;

typedef enum ProviderOp
{
	POP_PUT,					/* store data/datalen under key (whole object) */
	POP_GET,					/* read [offset, offset+length) into buf */
	POP_HEAD,					/* size of key into result_size */
	POP_DELETE,					/* remove key; a missing key is success */
	POP_UPLOAD_BEGIN,			/* start a streamed upload (upload must be set) */
	POP_UPLOAD_PART,			/* append data/datalen to the upload */
	POP_UPLOAD_COMPLETE,		/* make the upload visible under its key */
	POP_UPLOAD_ABORT			/* discard the upload */
} ProviderOp;

/*
 * State of one streamed upload.  Allocate with provider_upload_create();
 * parts are appended in order.  The file backend writes to a temp file and
 * renames at completion; the s3 backend uses multipart upload, whose parts
 * may also be sent while earlier ones still are: a part started before the
 * one ahead of it was finished gets the next number, and batches are
 * finished in the order they were started (a part after a failed one fails
 * too).  File uploads take one part at a time.
 */
typedef struct ProviderUpload
{
	Provider   *provider;
	char	   *key;
	int			nparts;			/* parts appended so far */
	int			parts_in_flight;	/* s3: numbered, in batches not yet
									 * finished (provider_start) */
	uint64		size;			/* bytes appended so far */
	bool		active;			/* begun and neither completed nor aborted */
	bool		broken;			/* s3: a part failed or was given up; the
								 * parts after it cannot count, and the
								 * batches holding them do not wait for
								 * them (s3_hedge_turn) */
	bool		given_up;		/* broken by a part given up (its provider
								 * stalled or too slow), not by a failure */
	char	   *broken_error;	/* broken by a failure: that part's error */
	/* file backend */
	int			fd;
	char	   *tmppath;
	bool		direct;			/* fd is open with O_DIRECT */
	/* s3 backend */
	char	   *upload_id;
	List	   *etags;			/* char * per part, in order */
} ProviderUpload;

typedef struct ProviderRequest
{
	/* input */
	Provider   *provider;
	ProviderOp	op;
	const char *key;			/* object key (not for upload ops) */
	uint64		offset;			/* POP_GET */
	uint64		length;			/* POP_GET: bytes wanted; buf holds length bytes */
	char	   *buf;			/* POP_GET destination */
	const char *data;			/* POP_PUT, POP_UPLOAD_PART */
	size_t		datalen;
	ProviderUpload *upload;		/* upload ops */
	bool		no_retry;		/* fail fast: the caller has alternatives (parity) */
	/* may be abandoned when it lags far behind the rest of its batch, all of
	 * which succeeded: the caller can do without it (s3 only) */
	bool		hedge;
	/* POP_GET: buf - offset % PROVIDER_IO_ALIGN is aligned, and bytes from
	 * there up to the next aligned end after buf + length may be
	 * overwritten: the file backend then reads straight into buf */
	bool		buf_aligned_io;

	/*
	 * Hedged sets (s3 only; file requests all run): requests with
	 * hedge_unit > 0 form units (1, 2, ...: say, one shard's chunks and its
	 * tags), of which the batch needs hedge_need (the same in each such
	 * request) whose requests all succeed.  A spare unit starts only when a
	 * started one fails or is late (still running past a multiple of its
	 * provider's recent latency), lowest hedge_unit first (the caller's
	 * ranking); once hedge_need units have succeeded, the others are
	 * cancelled.
	 */
	int			hedge_unit;
	int			hedge_need;
	bool		hedge_spare;
	/* a spare of last resort (a provider found slow or down): started only
	 * for a unit that failed or is very late, not for one just late */
	bool		hedge_last;
	/* a probe (a shard recorded missing: is the record stale?; or one that
	 * served the reader bad bytes): started at once but never waited for,
	 * nor counted among the units needed — if it succeeds before those
	 * have, its answer is there besides; otherwise it is cancelled with the
	 * rest */
	bool		hedge_probe;
	/* a read of a set whose every unit is started at once and, once the
	 * units needed are in, given a probe's grace to finish, answered or not
	 * (a re-read after bad bytes: each shard checked names the liar) */
	bool		hedge_finish;
	/* a read of a set whose caller reads around it if it fails (a
	 * window's patch): a request that stalls with no spare left is given
	 * up, not waited for */
	bool		hedge_fallback;

	/* output */
	bool		ok;
	bool		not_found;		/* key (or bucket/directory) does not exist */
	int			http_status;	/* s3 only; 0 otherwise */
	uint64		result_size;	/* POP_GET: bytes read; POP_HEAD: object size */
	uint64		received;		/* s3 POP_GET, live while its batch runs: bytes of
								 * the current try in buf so far, from buf on
								 * (provider_wait_until) */
	double		latency_ms;
	double		first_byte_ms;	/* s3: time to the answer's first byte, by
								 * libcurl's clock (0: not known): the provider's
								 * round trip, whatever the size asked */
	double		body_ms;		/* s3: from the answer's first byte to its last,
								 * by libcurl's clock (0: not known): with the
								 * bytes, the provider's bandwidth */
	uint64		partial_bytes;	/* s3 GET stopped early (cancelled, abandoned):
								 * body bytes it had received — with
								 * first_byte_ms and body_ms, then set too, a
								 * measurement of its provider */
	bool		abandoned;		/* hedge: given up as too slow (ok is false) */
	bool		thin;			/* abandoned for its bytes coming far slower
								 * than the others': its link is thin, its
								 * provider not slow to answer; or (a hedged
								 * write, cancelled) given up after the quorum
								 * for its bytes going out too slowly to end
								 * within the tail */
	bool		cancelled;		/* hedged set: not needed after all — a spare never
								 * started, or stopped once enough units answered
								 * (ok is false; not an error) */
	bool		late;			/* hedged set: ran past its lateness threshold
								 * (latency_ms: how long it had run) */
	bool		unanswered;		/* cancelled after it was sent, before its
								 * answer (status line or byte) began */
	bool		upload_broken;	/* cancelled because another part of its
								 * upload failed or was given up */
	int			retries;		/* tries after the first (s3) */
	int			short_bodies;	/* answers that ended before their length (s3) */
	bool		unreachable;	/* the provider itself failed: no connection, timed
								 * out, its bucket or directory is missing */
	bool		held;			/* s3: failed, and every try counted held it
								 * half of destor.request_timeout or more
								 * (timed out, or answered an error that late) */
	bool		timing_loose;	/* s3: the backend was busy elsewhere while it
								 * ran, so its times do not measure the
								 * provider (provider_poll) */
	bool		queued;			/* s3 GET: it started while another GET of
								 * the same provider ran in this backend, so
								 * its first byte may have waited for that
								 * one's bytes: no round trip */
	char	   *error;			/* palloc'd, NULL when ok; never contains secrets */
} ProviderRequest;

typedef struct ProviderListEntry
{
	char	   *key;			/* full key as passed to the other calls */
	uint64		size;
	TimestampTz last_modified;
} ProviderListEntry;

/* A streamed upload begun and neither completed nor aborted (s3 multipart). */
typedef struct ProviderUploadEntry
{
	char	   *key;
	char	   *upload_id;
	TimestampTz initiated;
} ProviderUploadEntry;

/* GUC-backed knobs shared by the backends (defined in provider.c). */
extern int	destor_connect_timeout_ms;
extern int	destor_request_timeout_ms;
extern int	destor_max_retries;
extern int	destor_max_concurrent_requests;

extern int	destor_provider_down_ms;

extern void provider_define_gucs(void);

/* conn_keeper.c: connections made before they are needed */
struct sockaddr;
extern int	destor_warm_connections;
extern void conn_keeper_define_gucs(void);
extern void conn_keeper_register_worker(void);
extern int	conn_keeper_take(const struct sockaddr *addr, int addrlen);

/* This database's namespace on the providers (see provider.c); false when
 * the installation has no instance id. */
#define PROVIDER_NS_LEN 6
extern bool provider_instance_namespace(uint8 ns[PROVIDER_NS_LEN]);

/* Provider health (provider_stats.c): a provider whose last request failed
 * at the transport level (refused, timed out, 5xx) is "down" for
 * destor.provider_down_interval, so reads do not wait on it when other
 * shards can serve them.  Shared by all backends when destor is preloaded. */
extern bool provider_is_down(Provider *p);

/* How long this provider's recent reads took (the fastest of its last few
 * successful GETs, in ms), or -1 when it has not read within
 * destor.provider_down_interval: then nothing is known, and the next read
 * that asks it measures it again.  provider_mark_slow() records that a
 * reader found it much slower than its pool's other providers and avoided
 * it (destor.provider_status shows it as degraded meanwhile). */
extern double provider_recent_read_ms(Provider *p);
extern double provider_read_ms(Provider *p, int min_reads);
extern double provider_answer_ms(Provider *p);
extern bool provider_claim_probe(Provider *p);

/*
 * How long a provider's round trip (provider_read_ms) and body rate
 * (provider_recent_read_rate) speak for its link, at least
 * destor.provider_down_interval: where it is and how thin its link is
 * change slowly.  Forgotten after 10 s, they left the first windows of an
 * export that came 11 s after a scan blind, and it read a 5 MB/s
 * provider's 4 MiB per window.  (Being slow now, provider_recent_read_ms,
 * is forgotten after the interval, so that a recovered provider is used.)
 */
#define PROVIDER_LINK_MEMORY_MS	(10 * 60 * 1000)
/* whether a GET of p succeeded since the server started or the stats were
 * reset: a provider never measured cannot be ranked, so reads hedge around it */
extern bool provider_read_time_known(Provider *p);
/* How fast the provider's recent large GETs (PROVIDER_RATE_MIN_BYTES or
 * more) delivered their bodies, in bytes per ms (the fastest of its last
 * few), or -1 when none is recent: a provider near but on a thin link
 * answers as soon as the others and then takes longer for the bytes
 * (remembered for PROVIDER_LINK_MEMORY_MS). */
#define PROVIDER_RATE_MIN_BYTES	(256 * 1024)
extern double provider_recent_read_rate(Provider *p);
/* The median of the same samples: what a plan that shares bytes by rate
 * uses, for the fastest of a few noisy samples favours the luckiest link
 * (in the WAN bench, one of six alike got 1.5 times its share and held
 * every window of an export for it). */
extern double provider_typical_read_rate(Provider *p);
/* A high percentile (p95) of the provider's recent GET times, as
 * measured by the network library (ms), or -1 when it has none: what
 * hedging calls "late" is a multiple of it. */
extern double provider_latency_p95_ms(Provider *p);
extern void provider_mark_slow(Provider *p);
extern void provider_stats_note(ProviderRequest *reqs, int nreqs);
extern void provider_stats_note_check(Provider *p, bool ok);
extern void provider_stats_note_bad_chunk(const char *provider);
extern void provider_stats_note_egress(Oid serverid, uint64 bytes);

/* Audits (maintenance/audit.c, provider_stats.c): spot checks of random
 * chunks.  An unavailable provider could not be asked: that is not a failed
 * audit.  A provider whose failed share of its last audits is above
 * destor.audit_failure_threshold (with at least AUDIT_MIN_FAILURES
 * failures) is failing: placement avoids it for new objects. */
typedef enum ProviderAuditOutcome
{
	AUDIT_PASSED,
	AUDIT_FAILED,
	AUDIT_UNAVAILABLE
} ProviderAuditOutcome;

#define AUDIT_WINDOW		20	/* the last audits a reputation is judged on */
#define AUDIT_MIN_FAILURES	3

extern double destor_audit_failure_threshold;
extern void provider_stats_note_audit(Provider *p, ProviderAuditOutcome outcome);
extern bool provider_is_failing(Oid serverid);
extern void provider_stats_shmem_request(void);

/* Transactions storing objects (provider_stats.c): provider_start() notes
 * the first PUT or upload of a transaction, the end-of-transaction callback
 * clears it, and destor.cleanup_orphans() leaves alone everything written
 * since the oldest writer still running began. */
extern void provider_writing_begins(void);
extern void provider_writing_done(void);
extern TimestampTz provider_oldest_writer(void);
extern void provider_stats_shmem_startup(void);

/* Shards verified good (provider_stats.c): a reader that read a shard
 * recorded bad in destor.shards and found it good notes it in shared
 * memory, and readers treat the record as cleared; the next repair()
 * rewrites the record itself.  Keyed by provider and shard key. */
extern void provider_note_shard_verified(Provider *p, const char *key);
extern void provider_note_shard_probed(Provider *p, const char *key);
extern bool provider_shard_probe_due(Provider *p, const char *key);
extern bool provider_shard_verified(Provider *p, const char *key);
extern void provider_forget_shard_verified(Provider *p, const char *key);

/* Build a Provider from a destor_provider server (options + user mapping of
 * the current user, if any).  Result allocated in CurrentMemoryContext. */
extern Provider *provider_lookup(Oid serverid);
extern Provider *provider_lookup_by_name(const char *servername, bool missing_ok);

/* Validator for CREATE/ALTER SERVER and USER MAPPING of destor_provider. */
extern void provider_validate_options(List *options, Oid catalog);

extern ProviderUpload *provider_upload_create(Provider *p, const char *key);

/*
 * Buffers handed to POP_UPLOAD_PART are best aligned to PROVIDER_IO_ALIGN
 * (and sized in multiples of it): the file backend then writes them with
 * direct I/O, without copying and without filling the page cache.
 */
#define PROVIDER_IO_ALIGN 4096
extern void *provider_alloc_aligned(MemoryContext cxt, size_t size);
/* Large buffers written end to end: backed by huge pages where the kernel can. */
extern void buffer_hugepage_hint(void *p, size_t len);
extern void *buffer_alloc_large(MemoryContext cxt, size_t size);
extern void provider_free_aligned(void *p);

/* Deep copy into cxt (used to keep providers for end-of-transaction work,
 * when the catalog can no longer be read). */
extern Provider *provider_copy(Provider *p, MemoryContext cxt);

/* Run a batch of requests concurrently; see the file comment. */
extern void provider_execute(ProviderRequest *reqs, int nreqs);
/* Make a batch of one write per shard a hedged set that needs "need" of
 * them (provider.c); false, and nothing changed, where it cannot be. */
extern bool provider_hedge_writes(ProviderRequest *reqs, int nreqs, int need);

/*
 * Read-ahead: start a batch and collect it later, so that transfers run
 * while the caller works.  File transfers proceed in the background (AIO);
 * s3 reads, PUTs and upload parts run on the backend's multi handle, moved
 * along by provider_poll; other s3 requests complete inside provider_start
 * (and provider_execute's PUTs inside it).  Every
 * started batch is finished, cancelled (not wanted after all) or
 * abandoned: a batch whose context is reset or deleted first (an ERROR) is
 * abandoned by that context's callback, before the buffers its transfers
 * write into are freed.
 */
typedef struct ProviderBatch ProviderBatch;

extern ProviderBatch *provider_start(ProviderRequest *reqs, int nreqs);
extern void provider_finish(ProviderBatch *b);
extern void provider_wait_tail(ProviderBatch *b);
extern void provider_wait_lead(ProviderBatch *b, double rtts);
extern bool provider_batch_ending(ProviderBatch *b);
extern bool provider_wait_end_or_lead(ProviderBatch *b, ProviderBatch *other, double rtts);
extern void provider_abandon(ProviderBatch *b);
extern void provider_cancel(ProviderBatch *b);

/*
 * provider_wait_until — drive a started batch until ready(arg) says what
 * the caller needs of its requests' answers is in (PROVIDER_WAIT_MET: it
 * looks at ProviderRequest.received), or, with stop_at_tail, until the
 * batch is in its last round trip (PROVIDER_WAIT_TAIL), or until it is over
 * (PROVIDER_WAIT_OVER: the caller finishes it; also at once for a batch
 * with a file part, whose bytes are not seen as they come).  A reader
 * opens a batch's first blocks while the rest is still coming in: a cold
 * scan's participants used to wait for their whole batch, all of whose
 * requests end together on links they share, and then decode it with
 * every link idle.  Bytes counted in may be written again by a retry: the
 * same bytes from an honest provider, and blocks opened from them are
 * authenticated.
 */
typedef enum ProviderWaitResult
{
	PROVIDER_WAIT_MET,
	PROVIDER_WAIT_TAIL,
	PROVIDER_WAIT_OVER
} ProviderWaitResult;

extern ProviderWaitResult provider_wait_until(ProviderBatch *b, bool (*ready) (void *arg), void *arg,
											  bool stop_at_tail);

/*
 * provider_wait_tail — drive a started batch until what it waits for is
 * in its last round trip (each read has no more body left than its answer
 * took to begin, at the rate it is coming in), or over.  A sequential
 * reader then sends its next batch and finishes this one: the next answer
 * begins as this one ends, where sending it after the end left every
 * provider's link idle for a round trip.  File batches return at once.
 * provider_wait_lead — the same, rtts round trips before the end: a batch
 * sent while every connection to its providers is busy opens new ones,
 * whose set-up is a round trip more.
 *
 * provider_wait_end_or_lead — drive b until it is over, or until other
 * (a batch started after it) is rtts round trips from its end: true then.
 * A reader waiting for one window sends the one after the next as the
 * next nears its end, not once it has decoded this one: between the two
 * the links sat idle for a round trip.  False at once unless both are s3.
 *
 * provider_batch_ending — the same test without waiting: moves the
 * transfers of started batches along (provider_poll) and says whether b's
 * s3 reads are over or in their last round trip.  False for a batch with
 * no s3 part: a file read needs no batch sent behind it early.
 */

/*
 * Let the transfers of started batches move: a reader calls it between
 * pieces of its own work (decoding a block, a column chunk, some rows), so
 * that a batch read ahead keeps coming in meanwhile instead of waiting in
 * the kernel's socket buffers.  Cheap when nothing is in flight or the last
 * look was very recent.
 */
extern void provider_poll(void);

/* Convenience wrappers: one request, ERROR on failure (message names the provider). */
extern void provider_put(Provider *p, const char *key, const char *data, size_t len);
extern uint64 provider_get(Provider *p, const char *key, uint64 offset, uint64 length, char *buf);
extern void provider_delete(Provider *p, const char *key);

/* Every key under prefix (paginated internally); ERROR on failure. */
extern List *provider_list(Provider *p, const char *prefix);

/* Unfinished streamed uploads under prefix (s3 multipart uploads; NIL for
 * file providers, whose temp files provider_list shows, and for servers
 * that cannot list them); ERROR on failure.  provider_abort_upload discards
 * one (best effort: false and a WARNING when it fails). */
extern List *provider_list_uploads(Provider *p, const char *prefix);
extern bool provider_abort_upload(Provider *p, ProviderUploadEntry *u);

/* Backend entry points used by provider_execute / provider_list. */
extern void provider_file_execute(ProviderRequest *req);
extern void provider_file_execute_batch(ProviderRequest **reqs, int nreqs);
typedef struct FileBatch FileBatch;
extern FileBatch *provider_file_start(ProviderRequest **reqs, int nreqs);
extern void provider_file_finish(FileBatch *b);
extern void provider_file_abandon(FileBatch *b);
extern List *provider_file_list(Provider *p, const char *prefix);
extern void provider_s3_execute_batch(ProviderRequest **reqs, int nreqs);
typedef struct S3Batch S3Batch;
extern S3Batch *provider_s3_start(ProviderRequest **reqs, int nreqs);
extern void provider_s3_finish(S3Batch *b);
extern void provider_s3_wait_tail(S3Batch *b, double rtts);
extern bool provider_s3_wait_end_or_lead(S3Batch *b, S3Batch *other, double rtts);
extern bool provider_s3_ending(S3Batch *b);
extern ProviderWaitResult provider_s3_wait_until(S3Batch *b, bool (*ready) (void *arg), void *arg,
												 bool stop_at_tail);
extern void provider_s3_abandon(S3Batch *b);
extern void provider_s3_cancel(S3Batch *b);
extern void provider_s3_poll(void);
/* Before a failed (sub)transaction deletes what it wrote: wait briefly for
 * the PUTs it has sent in full (provider_s3.c, s3_runs_settle_writes). */
extern void provider_s3_settle_writes(void);
extern List *provider_s3_list(Provider *p, const char *prefix);
extern List *provider_s3_list_uploads(Provider *p, const char *prefix);
/* Drop cached curl state (called at backend exit and after errors). */
extern void provider_s3_reset(void);

#endif							/* DESTOR_PROVIDER_H */
