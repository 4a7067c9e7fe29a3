/*
 * provider_s3.c — the s3 backend: S3-compatible object stores over libcurl.
 * This file is the provider interface (provider.h): it turns a batch of
 * ProviderRequests into transfers and hands them to the transfer loop, and
 * pages through listings (ListObjectsV2, ListMultipartUploads).
 *
 * The backend's files, in the order a request meets them:
 *   provider_s3.c   checks the requests of a batch, numbers multipart parts,
 *                   builds CompleteMultipartUpload documents, records the
 *                   parts stored; listings and their errors
 *   s3_transfer.c   the libcurl multi loop: every request of a batch is one
 *                   transfer, retried with backoff on transient failures,
 *                   checked for short bodies, hedged when far too slow
 *   s3_request.c    building and signing (SigV4, s3_sign.c) one try
 *   s3_xml.c        reading S3's XML answers and error documents
 *   s3_internal.h   what they share
 *
 * Error texts name the provider, the S3 operation, the HTTP status and the
 * S3 error code and message; they never contain credentials, signatures or
 * the Authorization header.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "destor/provider.h"
#include "s3_internal.h"

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

/* stands in for a missing provider in messages */
static Provider s3_unknown_provider = {.name = "?"};

/* ---------------------------------------------------------------------
 * entry points
 * --------------------------------------------------------------------- */

static S3Transfer *
s3_transfer_new(ProviderRequest *req, Provider *p, S3Op op, const char *key)
{
	S3Transfer *t = palloc0(sizeof(S3Transfer));

	t->req = req;
	t->provider = p;
	t->serverid = p ? p->serverid : InvalidOid;
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

/*
 * s3_batch_prepare — one transfer per request, in batchcxt (the current
 * context).  Requests that cannot be sent (no bucket, no key, an upload
 * not begun) or need no round trip end here; parts of one upload in the
 * batch get consecutive part numbers.  Errors go to resultcxt.
 */
static S3Transfer **
s3_batch_prepare(ProviderRequest **reqs, int nreqs, MemoryContext resultcxt)
{
	MemoryContext batchcxt = CurrentMemoryContext;
	S3Transfer **ts;
	int			i,
				j;

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
		req->timing_loose = false;
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
			/* parts get consecutive numbers after those stored and those
			 * still in flight, in this batch or one started before */
			if (up->nparts + 1 + up->parts_in_flight > 10000)
			{
				MemoryContextSwitchTo(resultcxt);
				s3_finish_now(t, false, "S3 allows at most 10000 parts per upload");
				MemoryContextSwitchTo(batchcxt);
			}
			else
				t->part_number = up->nparts + 1 + up->parts_in_flight++;
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
					s3_xml_escape_into(&xml, (const char *) lfirst(lc));
					appendStringInfoString(&xml, "</ETag></Part>");
				}
				appendStringInfoString(&xml, "</CompleteMultipartUpload>");
				t->complete_xml = xml.data;
			}
		}
	}

	return ts;
}

/*
 * s3_record_parts — after a batch's transfers ended: record the parts
 * that were stored in their uploads, in part order.  Only the unbroken run
 * of stored parts of an upload is recorded, so a later append reuses a
 * failed part's number; a part that follows a failed part of the same
 * upload (in this batch or one finished before) is reported as failed too
 * (its error in resultcxt).  Batches of one upload are finished in the
 * order they were started.
 */
static void
s3_record_parts(S3Transfer **ts, int nreqs, MemoryContext resultcxt)
{
	MemoryContext old;
	int			i,
				j;

	/* this batch's parts are no longer in flight, whatever became of them */
	for (i = 0; i < nreqs; i++)
		if (ts[i]->op == S3OP_UPLOAD_PART && ts[i]->part_number != 0)
			ts[i]->req->upload->parts_in_flight--;

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
				old = MemoryContextSwitchTo(GetMemoryChunkContext(up));
				up->etags = lappend(up->etags, pstrdup(t->etag_final));
				MemoryContextSwitchTo(old);
				up->nparts++;
				up->size += t->req->datalen;
			}
			else
				broken = true;
		}
		/* parts after a gap, here or in a batch finished before: failed */
		for (j = i; j < nreqs; j++)
		{
			S3Transfer *t = ts[j];

			if (t->op == S3OP_UPLOAD_PART && t->req->upload == up &&
				t->part_number > up->nparts && t->req->ok)
			{
				t->req->ok = false;
				t->req->error = MemoryContextStrdup(resultcxt,
													psprintf("provider \"%s\": %s of \"%s\" failed: an earlier part of the same upload failed",
															 t->provider->name, s3_op_names[t->op],
															 s3_transfer_what(t)));
			}
		}
	}
}

/*
 * provider_s3_execute_batch — the s3 side of provider_execute() for
 * batches that do not run ahead: the batch's transfers all run at once by
 * s3_run_transfers, then the stored parts are recorded.
 */
void
provider_s3_execute_batch(ProviderRequest **reqs, int nreqs)
{
	MemoryContext resultcxt = CurrentMemoryContext;
	MemoryContext batchcxt;
	MemoryContext old;
	S3Transfer **ts;

	if (nreqs <= 0)
		return;

	batchcxt = AllocSetContextCreate(CurrentMemoryContext, "destor s3 batch",
									 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(batchcxt);
	ts = s3_batch_prepare(reqs, nreqs, resultcxt);
	/* temporary allocations of the loop go to batchcxt too */
	s3_run_transfers(ts, nreqs, resultcxt);
	s3_record_parts(ts, nreqs, resultcxt);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(batchcxt);
}

/*
 * Reads started ahead of need, and parts of uploads sent while the writer
 * encodes the next (provider_start): the transfers run on the
 * multi handle while the backend works — every provider_s3_poll takes
 * what has come from the sockets — and provider_s3_finish drives them to
 * their end.  The run's own memory is not under the caller's context:
 * when that context goes, provider.c abandons the batch first, and a
 * context's children go before its reset callbacks run.
 */
struct S3Batch
{
	MemoryContext cxt;
	MemoryContext resultcxt;
	S3Transfer **ts;
	int			n;
	S3Run	   *run;
};

S3Batch *
provider_s3_start(ProviderRequest **reqs, int nreqs)
{
	MemoryContext resultcxt = CurrentMemoryContext;
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "destor s3 started batch",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	S3Batch    *b = palloc0(sizeof(S3Batch));

	b->cxt = cxt;
	b->resultcxt = resultcxt;
	b->n = nreqs;
	PG_TRY();
	{
		b->ts = s3_batch_prepare(reqs, nreqs, resultcxt);
		b->run = s3_run_begin(b->ts, nreqs, resultcxt, true);
		(void) s3_run_step(b->run, false);	/* send them */
	}
	PG_CATCH();
	{
		if (b->run)
			s3_run_end(b->run);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	return b;
}

/* Wait for the batch's transfers to end; the caller abandons it on ERROR. */
void
provider_s3_finish(S3Batch *b)
{
	while (!s3_run_step(b->run, true))
		;
	for (int i = 0; i < b->n; i++)
	{
		S3Transfer *t = b->ts[i];

		/* ended with its transaction (s3_runs_abort): not read */
		if (t->stopped)
		{
			t->req->ok = false;
			t->req->error = MemoryContextStrdup(b->resultcxt,
												psprintf("provider \"%s\": %s of \"%s\" was stopped when its transaction ended",
														 t->provider->name, s3_op_names[t->op],
														 s3_transfer_what(t)));
		}
	}
	s3_run_end(b->run);
	s3_record_parts(b->ts, b->n, b->resultcxt);
	MemoryContextDelete(b->cxt);
}

/* Drive the batch until it is in its last round trip (provider_wait_tail). */
void
provider_s3_wait_tail(S3Batch *b, double rtts)
{
	while (!s3_run_tail_near(b->run, rtts))
		if (s3_run_step(b->run, true))
			break;
}

/* Drive b until it is over (false) or other nears its end (provider_wait_end_or_lead). */
bool
provider_s3_wait_end_or_lead(S3Batch *b, S3Batch *other, double rtts)
{
	for (;;)
	{
		if (other->run == NULL || s3_run_tail_near(other->run, rtts))
			return true;
		if (b->run == NULL || s3_run_step(b->run, true))
			return false;
	}
}

/* Whether the batch is over or in its last round trip (provider_batch_ending). */
bool
provider_s3_ending(S3Batch *b)
{
	return b->run == NULL || s3_run_tail_near(b->run, 1);
}

/*
 * Drive the batch until ready(arg), it nears its end (with stop_at_tail)
 * or it is over (provider_wait_until).
 */
ProviderWaitResult
provider_s3_wait_until(S3Batch *b, bool (*ready) (void *arg), void *arg, bool stop_at_tail)
{
	provider_poll();
	for (;;)
	{
		if (b->run == NULL)
			return PROVIDER_WAIT_OVER;
		if (stop_at_tail && s3_run_tail_near(b->run, 1))
			return PROVIDER_WAIT_TAIL;
		if (ready(arg))
			return PROVIDER_WAIT_MET;
		if (s3_run_step(b->run, true))
			return PROVIDER_WAIT_OVER;
	}
}

/*
 * An ERROR gives the batch up: its transfers end where they are.  What
 * they received was sent by the providers, and billed: counted in their
 * bytes_read (the batch is never noted; the transfers, in this batch's
 * own context, outlive the caller's requests).
 */
void
provider_s3_abandon(S3Batch *b)
{
	if (b->run)
		s3_run_end(b->run);
	for (int i = 0; b->ts != NULL && i < b->n; i++)
		if (b->ts[i] != NULL && b->ts[i]->op == S3OP_GET)
			provider_stats_note_egress(b->ts[i]->serverid, b->ts[i]->received);
	MemoryContextDelete(b->cxt);
}

/* Stop the batch's transfers, each request saying what it had moved. */
void
provider_s3_cancel(S3Batch *b)
{
	if (b->run)
		s3_run_cancel(b->run);
	MemoryContextDelete(b->cxt);
}

void
provider_s3_poll(void)
{
	s3_poll_runs();
}

void
provider_s3_settle_writes(void)
{
	s3_runs_settle_writes();
}

/* ---------------------------------------------------------------------
 * listings
 * --------------------------------------------------------------------- */

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

/*
 * s3_list_full_prefix — what both listings start with: the provider must
 * name a bucket, and the prefix asked for is made full (the provider's own
 * prefix first).  palloc'd in the caller's context.
 */
static char *
s3_list_full_prefix(Provider *p, const char *prefix)
{
	const char *pprefix = p->prefix ? p->prefix : "";

	if (p->bucket == NULL || p->endpoint == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("provider \"%s\" has no endpoint or bucket", p->name)));
	return psprintf("%s%s", pprefix, prefix ? prefix : "");
}

/*
 * s3_list_page — fetch one page of a listing (ListMultipartUploads when
 * uploads, else ListObjectsV2) after the one that token (and, for uploads,
 * upload_marker) names.  The page context is reset first and left current:
 * the page and what is parsed from it live there until the next page.
 * The caller looks at the transfer's request for success.
 */
static S3Transfer *
s3_list_page(Provider *p, MemoryContext pagecxt, const char *full_prefix,
			 bool uploads, const char *token, const char *upload_marker)
{
	ProviderRequest *req;
	S3Transfer *t;

	MemoryContextReset(pagecxt);
	MemoryContextSwitchTo(pagecxt);
	req = palloc0(sizeof(ProviderRequest));
	req->provider = p;
	t = s3_transfer_new(req, p, S3OP_LIST, NULL);
	t->list_prefix = full_prefix;
	t->list_uploads = uploads;
	t->list_token = token;
	t->list_upload_marker = upload_marker;
	s3_run_transfers(&t, 1, pagecxt);
	return t;
}

/*
 * provider_s3_list — the objects under prefix (ListObjectsV2, paginated),
 * keys without the provider's prefix, in the caller's context.  Any failure
 * is an ERROR whose errcode and hint say what to check (s3_list_error).
 */
List *
provider_s3_list(Provider *p, const char *prefix)
{
	List	   *result = NIL;
	MemoryContext resultcxt = CurrentMemoryContext;
	MemoryContext pagecxt;
	const char *pprefix = p->prefix ? p->prefix : "";
	size_t		pplen = strlen(pprefix);
	char	   *full_prefix;
	char	   *token = NULL;
	int			npages = 0;

	full_prefix = s3_list_full_prefix(p, prefix);
	pagecxt = AllocSetContextCreate(CurrentMemoryContext, "destor s3 list page",
									ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		ProviderRequest *req;
		S3Transfer *t;
		const char *body,
				   *end,
				   *pos,
				   *contents;
		char	   *truncated;
		char	   *next;
		size_t		clen;

		t = s3_list_page(p, pagecxt, full_prefix, false, token, NULL);
		req = t->req;
		if (!req->ok)
			s3_list_error(p, t);

		body = t->list_body;
		end = body + t->list_len;
		if (s3_xml_element(body, end, "ListBucketResult", &clen, NULL) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_REPLY_HANDLE),
					 errmsg("could not list objects on provider \"%s\"", p->name),
					 errdetail("The answer to ListObjectsV2 is not a ListBucketResult document."),
					 errhint("Check that the endpoint option points to an S3-compatible service.")));

		pos = body;
		while ((contents = s3_xml_element(pos, end, "Contents", &clen, &pos)) != NULL)
		{
			const char *cend = contents + clen;
			char	   *key = s3_xml_get(contents, cend, "Key");
			char	   *size = s3_xml_get(contents, cend, "Size");
			char	   *mtime = s3_xml_get(contents, cend, "LastModified");
			ProviderListEntry *e;
			uint64		sz = 0;

			if (key == NULL || strncmp(key, pprefix, pplen) != 0)
				continue;		/* not ours (a server ignoring prefix?) */
			if (size != NULL && !s3_parse_uint64(size, strlen(size), &sz))
				sz = 0;
			MemoryContextSwitchTo(resultcxt);
			e = palloc(sizeof(ProviderListEntry));
			e->key = pstrdup(key + pplen);
			e->size = sz;
			e->last_modified = s3_parse_time(mtime);
			result = lappend(result, e);
			MemoryContextSwitchTo(pagecxt);
		}

		truncated = s3_xml_get(body, end, "IsTruncated");
		next = s3_xml_get(body, end, "NextContinuationToken");
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
	char	   *full_prefix;
	char	   *key_marker = NULL;
	char	   *id_marker = NULL;
	int			npages = 0;

	full_prefix = s3_list_full_prefix(p, prefix);
	pagecxt = AllocSetContextCreate(CurrentMemoryContext, "destor s3 upload list page",
									ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		ProviderRequest *req;
		S3Transfer *t;
		const char *body,
				   *end,
				   *pos,
				   *upload;
		char	   *truncated;
		char	   *next_key;
		char	   *next_id;
		size_t		ulen;

		t = s3_list_page(p, pagecxt, full_prefix, true, key_marker, id_marker);
		req = t->req;
		if (!req->ok && (req->http_status == 501 || req->http_status == 405))
			break;				/* not implemented: nothing we can list */
		if (!req->ok)
			s3_list_error(p, t);

		body = t->list_body;
		end = body + t->list_len;
		if (s3_xml_element(body, end, "ListMultipartUploadsResult", &ulen, NULL) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_REPLY_HANDLE),
					 errmsg("could not list multipart uploads on provider \"%s\"", p->name),
					 errdetail("The answer to ListMultipartUploads is not a ListMultipartUploadsResult document.")));

		pos = body;
		while ((upload = s3_xml_element(pos, end, "Upload", &ulen, &pos)) != NULL)
		{
			const char *uend = upload + ulen;
			char	   *key = s3_xml_get(upload, uend, "Key");
			char	   *id = s3_xml_get(upload, uend, "UploadId");
			char	   *initiated = s3_xml_get(upload, uend, "Initiated");
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

		truncated = s3_xml_get(body, end, "IsTruncated");
		next_key = s3_xml_get(body, end, "NextKeyMarker");
		next_id = s3_xml_get(body, end, "NextUploadIdMarker");
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
