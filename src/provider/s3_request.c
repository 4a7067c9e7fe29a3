/*
 * s3_request.c — building one try of an s3 transfer: the method, query and
 * headers of the S3 operation, the URL (path-style or virtual-host), the
 * AWS Signature V4 (s3_sign.c; always a signed payload hash, or an
 * anonymous request when the provider has no access key id), and the
 * libcurl easy handle that carries it, attached to the multi handle of
 * s3_transfer.c.
 *
 * Signatures and the Authorization header are wiped before they are freed
 * and never reach a message (CURLOPT_VERBOSE stays off).
 */
#include "postgres.h"

#include <curl/curl.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/sockios.h>

#include "lib/stringinfo.h"
#include "utils/timestamp.h"

#include "destor/provider.h"
#include "destor/s3_sign.h"
#include "s3_internal.h"

/* ---------------------------------------------------------------------
 * libcurl callbacks feeding the request body: no palloc, no ereport
 * --------------------------------------------------------------------- */

/*
 * The sockets libcurl opened lately, so that an upload's bytes still in
 * its socket's send queue can be counted (s3_transfer_unsent): libcurl
 * says which local port a transfer's connection has, not which socket.
 * An entry may outlive its socket (its number reused by anything): each
 * look checks that it is still a connected socket with those ports.
 */
#define S3_SOCKETS 64
static curl_socket_t s3_sockets[S3_SOCKETS];
static int	s3_nsockets = 0;

/* the socket the connection keeper handed over last, until libcurl sets it up */
static curl_socket_t s3_kept_socket = CURL_SOCKET_BAD;

static int
s3_sockopt_cb(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
	int			rc = CURL_SOCKOPT_OK;

	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKOPT_OK;
	if (fd == s3_kept_socket)
	{
		/* connected already: libcurl sends at once */
		s3_kept_socket = CURL_SOCKET_BAD;
		rc = CURL_SOCKOPT_ALREADY_CONNECTED;
	}
	for (int i = 0; i < Min(s3_nsockets, S3_SOCKETS); i++)
		if (s3_sockets[i] == fd)
			return rc;			/* a number used again */
	s3_sockets[s3_nsockets++ % S3_SOCKETS] = fd;
	return rc;
}

/*
 * A connection's socket: one the connection keeper made ready
 * (conn_keeper.c), or a new one.  clientp is the transfer opening it: a
 * try on a kept socket is marked (s3_transfer_finish retries one that the
 * server had closed), and a transfer whose kept socket failed connects
 * itself from then on.
 */
static curl_socket_t
s3_opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	S3Transfer *t = (S3Transfer *) clientp;
	int			fd = -1;

	if (purpose == CURLSOCKTYPE_IPCXN && a->socktype == SOCK_STREAM &&
		(t == NULL || !t->shun_keeper))
		fd = conn_keeper_take(&a->addr, (int) a->addrlen);
	if (fd >= 0)
	{
		s3_kept_socket = fd;
		if (t != NULL)
			t->on_kept_socket = true;
		return fd;
	}
	fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	return fd >= 0 ? fd : CURL_SOCKET_BAD;
}

static int
s3_socket_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *) ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *) ss)->sin6_port);
	return -1;
}

/*
 * Bytes of running transfer t that its socket has not had acknowledged
 * (sent or not), or -1 when that cannot be told: what libcurl has been
 * handed is ahead of what the provider has by that much.
 */
int64
s3_transfer_unsent(S3Transfer *t)
{
	long		lport = 0,
				rport = 0;

	if (t->easy == NULL ||
		curl_easy_getinfo(t->easy, CURLINFO_LOCAL_PORT, &lport) != CURLE_OK ||
		curl_easy_getinfo(t->easy, CURLINFO_PRIMARY_PORT, &rport) != CURLE_OK ||
		lport <= 0 || rport <= 0)
		return -1;
	for (int i = 0; i < Min(s3_nsockets, S3_SOCKETS); i++)
	{
		struct sockaddr_storage local,
					peer;
		socklen_t	len = sizeof(local);
		int			outq = 0;

		if (getsockname(s3_sockets[i], (struct sockaddr *) &local, &len) != 0 ||
			s3_socket_port(&local) != lport)
			continue;
		len = sizeof(peer);
		if (getpeername(s3_sockets[i], (struct sockaddr *) &peer, &len) != 0 ||
			s3_socket_port(&peer) != rport)
			continue;
		if (ioctl(s3_sockets[i], SIOCOUTQ, &outq) != 0 || outq < 0)
			return -1;
		return outq;
	}
	return -1;
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
bool
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
	t->on_kept_socket = false;
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
	SETOPT(easy, CURLOPT_SOCKOPTFUNCTION, s3_sockopt_cb);
	if (destor_warm_connections > 0)
	{
		SETOPT(easy, CURLOPT_OPENSOCKETFUNCTION, s3_opensocket_cb);
		SETOPT(easy, CURLOPT_OPENSOCKETDATA, (void *) t);
	}
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

	mrc = curl_multi_add_handle(s3_get_multi(), easy);
	if (mrc != CURLM_OK)
		elog(ERROR, "curl_multi_add_handle failed: %s", curl_multi_strerror(mrc));
	/* (before it counts itself as running) */
	t->queued = t->op == S3OP_GET && s3_link_busy(t);
	if (t->req != NULL)
		t->req->queued = t->queued;
	t->state = TS_RUNNING;
	t->try_start = GetCurrentTimestamp();
	t->gap_ms = 0;
	t->max_gap_ms = 0;
	t->timing_loose = false;
	if (t->first_start == 0)
		t->first_start = t->try_start;

	pfree(url.data);
	pfree(rawpath.data);
	return true;
}
