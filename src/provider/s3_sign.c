/*
 * s3_sign.c — AWS Signature Version 4 for S3 (see s3_sign.h).
 *
 * Pure C on OpenSSL's EVP and HMAC one-shot calls.  Strings are built in a
 * small growable buffer; every allocation failure makes s3_sign() return -1
 * rather than abort, because the caller runs inside a PostgreSQL backend.
 * Intermediate keys are wiped before returning.
 */
#include "destor/s3_sign.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* ---------- a growable string ---------- */

typedef struct SBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	int			failed;
} SBuf;

static void
sbuf_init(SBuf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->failed = 0;
}

static int
sbuf_reserve(SBuf *b, size_t extra)
{
	size_t		need;
	char	   *p;
	size_t		cap;

	if (b->failed)
		return -1;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL)
	{
		b->failed = 1;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

static void
sbuf_putn(SBuf *b, const char *s, size_t n)
{
	if (sbuf_reserve(b, n) != 0)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
sbuf_puts(SBuf *b, const char *s)
{
	sbuf_putn(b, s, strlen(s));
}

static void
sbuf_putc(SBuf *b, char c)
{
	sbuf_putn(b, &c, 1);
}

/* Take the string out of the buffer (an empty string if nothing was added). */
static char *
sbuf_finish(SBuf *b)
{
	if (b->failed)
	{
		free(b->data);
		return NULL;
	}
	if (b->data == NULL)
		return strdup("");
	return b->data;
}

/* ---------- encoding ---------- */

static int
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

static void
sbuf_put_encoded(SBuf *b, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *) s; *p; p++)
	{
		if (is_unreserved(*p) || (keep_slash && *p == '/'))
			sbuf_putc(b, (char) *p);
		else
		{
			char		esc[3];

			esc[0] = '%';
			esc[1] = hex[*p >> 4];
			esc[2] = hex[*p & 0xF];
			sbuf_putn(b, esc, 3);
		}
	}
}

char *
s3_uri_encode(const char *s, int keep_slash)
{
	SBuf		b;

	sbuf_init(&b);
	sbuf_put_encoded(&b, s ? s : "", keep_slash);
	return sbuf_finish(&b);
}

typedef struct EncodedPair
{
	char	   *name;
	char	   *value;
} EncodedPair;

static int
encoded_pair_cmp(const void *a, const void *b)
{
	const EncodedPair *pa = a;
	const EncodedPair *pb = b;
	int			c = strcmp(pa->name, pb->name);

	return c != 0 ? c : strcmp(pa->value, pb->value);
}

char *
s3_canonical_query(const S3SignPair *query, int nquery)
{
	EncodedPair *pairs;
	SBuf		b;
	int			i;
	int			ok = 1;

	if (nquery <= 0)
		return strdup("");
	pairs = calloc((size_t) nquery, sizeof(EncodedPair));
	if (pairs == NULL)
		return NULL;
	for (i = 0; i < nquery && ok; i++)
	{
		pairs[i].name = s3_uri_encode(query[i].name, 0);
		pairs[i].value = s3_uri_encode(query[i].value, 0);
		if (pairs[i].name == NULL || pairs[i].value == NULL)
			ok = 0;
	}

	sbuf_init(&b);
	if (ok)
	{
		/* sorted by encoded name, then encoded value (plain byte order) */
		qsort(pairs, (size_t) nquery, sizeof(EncodedPair), encoded_pair_cmp);
		for (i = 0; i < nquery; i++)
		{
			if (i > 0)
				sbuf_putc(&b, '&');
			sbuf_puts(&b, pairs[i].name);
			sbuf_putc(&b, '=');
			sbuf_puts(&b, pairs[i].value);
		}
	}
	for (i = 0; i < nquery; i++)
	{
		free(pairs[i].name);
		free(pairs[i].value);
	}
	free(pairs);
	if (!ok)
	{
		free(b.data);
		return NULL;
	}
	return sbuf_finish(&b);
}

/* ---------- hashing ---------- */

static void
to_hex(const unsigned char *d, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t		i;

	for (i = 0; i < n; i++)
	{
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 0xF];
	}
	out[2 * n] = '\0';
}

void
s3_sha256_hex(const void *data, size_t len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data ? data : "", len, md, &mdlen, EVP_sha256(), NULL) ||
		mdlen != 32)
	{
		/* cannot happen with a working libcrypto; yield an unusable hash */
		memset(out, '0', S3_SHA256_HEX_LEN);
		out[S3_SHA256_HEX_LEN] = '\0';
		return;
	}
	to_hex(md, 32, out);
}

static int
hmac_sha256(const unsigned char *key, size_t keylen,
			const char *msg, size_t msglen, unsigned char *out)
{
	unsigned int outlen = 0;

	if (HMAC(EVP_sha256(), key, (int) keylen, (const unsigned char *) msg,
			 msglen, out, &outlen) == NULL || outlen != 32)
		return -1;
	return 0;
}

void
s3_format_amz_date(time_t t, char *out)
{
	struct tm	tm;

	gmtime_r(&t, &tm);
	strftime(out, S3_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---------- headers ---------- */

typedef struct CanonHeader
{
	char	   *name;			/* lower-case */
	char	   *value;			/* trimmed, inner runs of spaces collapsed */
} CanonHeader;

static int
canon_header_cmp(const void *a, const void *b)
{
	return strcmp(((const CanonHeader *) a)->name,
				  ((const CanonHeader *) b)->name);
}

static char *
lower_dup(const char *s)
{
	char	   *r = strdup(s);
	char	   *p;

	if (r == NULL)
		return NULL;
	for (p = r; *p; p++)
		*p = (char) tolower((unsigned char) *p);
	return r;
}

/* SigV4 "Trimall": strip leading/trailing blanks, collapse inner runs. */
static char *
trimall_dup(const char *s)
{
	SBuf		b;
	int			pending_space = 0;

	sbuf_init(&b);
	for (; *s; s++)
	{
		if (*s == ' ' || *s == '\t')
		{
			if (b.len > 0)
				pending_space = 1;
			continue;
		}
		if (pending_space)
			sbuf_putc(&b, ' ');
		pending_space = 0;
		sbuf_putc(&b, *s);
	}
	return sbuf_finish(&b);
}

static int
valid_header_name(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c <= ' ' || c >= 127 || c == ':')
			return 0;
	}
	return 1;
}

static int
valid_header_value(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return 0;
	return 1;
}

static int
valid_amz_date(const char *s)
{
	int			i;

	if (s == NULL || strlen(s) != S3_AMZ_DATE_LEN)
		return 0;
	for (i = 0; i < S3_AMZ_DATE_LEN; i++)
	{
		if (i == 8)
		{
			if (s[i] != 'T')
				return 0;
		}
		else if (i == 15)
		{
			if (s[i] != 'Z')
				return 0;
		}
		else if (!isdigit((unsigned char) s[i]))
			return 0;
	}
	return 1;
}

static int
valid_sha256_hex(const char *s)
{
	int			i;

	if (s == NULL || strlen(s) != S3_SHA256_HEX_LEN)
		return 0;
	for (i = 0; i < S3_SHA256_HEX_LEN; i++)
		if (!isxdigit((unsigned char) s[i]) || isupper((unsigned char) s[i]))
			return 0;
	return 1;
}

/* A credential scope part must not smuggle '/' or control characters. */
static int
valid_scope_part(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c <= ' ' || c >= 127 || c == '/' || c == ',')
			return 0;
	}
	return 1;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
set_error(char *errbuf, size_t errlen, const char *fmt,...);

static void
set_error(char *errbuf, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

void
s3_sign_output_free(S3SignOutput *out)
{
	int			i;

	if (out == NULL)
		return;
	free(out->encoded_path);
	free(out->query_string);
	free(out->authorization);
	free(out->signed_headers);
	free(out->canonical_request);
	free(out->string_to_sign);
	if (out->header_lines)
	{
		for (i = 0; i < out->nheader_lines; i++)
			free(out->header_lines[i]);
		free(out->header_lines);
	}
	memset(out, 0, sizeof(*out));
}

int
s3_sign(const S3SignInput *in, S3SignOutput *out, char *errbuf, size_t errlen)
{
	CanonHeader *hdrs = NULL;
	int			nhdrs = 0;
	int			maxhdrs;
	int			i;
	int			rc = -1;
	const char *service;
	int			has_token;
	char		datestamp[9];
	char		payload_hash_of_cr[S3_SHA256_HEX_LEN + 1];
	unsigned char k1[32],
				k2[32],
				k3[32],
				k4[32],
				sig[32];
	char		sighex[65];
	SBuf		b;
	char	   *secret_key = NULL;
	size_t		secret_len;

	memset(out, 0, sizeof(*out));
	if (errbuf && errlen)
		errbuf[0] = '\0';

	/* ---- validate input (messages never quote the secret) ---- */
	if (in->method == NULL || in->method[0] == '\0')
	{
		set_error(errbuf, errlen, "missing method");
		return -1;
	}
	if (in->host == NULL || in->host[0] == '\0' || !valid_header_value(in->host))
	{
		set_error(errbuf, errlen, "missing or invalid host");
		return -1;
	}
	if (in->path == NULL || in->path[0] != '/')
	{
		set_error(errbuf, errlen, "path must begin with '/'");
		return -1;
	}
	if (!valid_sha256_hex(in->payload_sha256))
	{
		set_error(errbuf, errlen, "payload hash must be 64 lower-case hex digits");
		return -1;
	}
	if (!valid_amz_date(in->amz_date))
	{
		set_error(errbuf, errlen, "timestamp must have the form YYYYMMDDTHHMMSSZ");
		return -1;
	}
	if (!valid_scope_part(in->access_key_id))
	{
		set_error(errbuf, errlen, "missing or invalid access key id");
		return -1;
	}
	if (in->secret_access_key == NULL || in->secret_access_key[0] == '\0')
	{
		set_error(errbuf, errlen, "missing secret access key");
		return -1;
	}
	if (!valid_scope_part(in->region))
	{
		set_error(errbuf, errlen, "missing or invalid region");
		return -1;
	}
	service = in->service ? in->service : "s3";
	if (!valid_scope_part(service))
	{
		set_error(errbuf, errlen, "invalid service name");
		return -1;
	}
	has_token = in->session_token != NULL && in->session_token[0] != '\0';
	if (has_token && !valid_header_value(in->session_token))
	{
		set_error(errbuf, errlen, "invalid session token");
		return -1;
	}
	for (i = 0; i < in->nheaders; i++)
	{
		const char *n = in->headers[i].name;

		if (n == NULL || !valid_header_name(n) ||
			in->headers[i].value == NULL ||
			!valid_header_value(in->headers[i].value))
		{
			set_error(errbuf, errlen, "invalid extra header at position %d", i);
			return -1;
		}
		if (strcasecmp(n, "host") == 0 || strcasecmp(n, "x-amz-date") == 0 ||
			strcasecmp(n, "x-amz-content-sha256") == 0 ||
			strcasecmp(n, "x-amz-security-token") == 0 ||
			strcasecmp(n, "authorization") == 0)
		{
			set_error(errbuf, errlen, "header \"%s\" is set by the signer", n);
			return -1;
		}
	}
	for (i = 0; i < in->nquery; i++)
	{
		if (in->query[i].name == NULL || in->query[i].name[0] == '\0' ||
			in->query[i].value == NULL)
		{
			set_error(errbuf, errlen, "invalid query parameter at position %d", i);
			return -1;
		}
	}

	memcpy(datestamp, in->amz_date, 8);
	datestamp[8] = '\0';

	/* ---- canonical headers ---- */
	maxhdrs = in->nheaders + 4;
	hdrs = calloc((size_t) maxhdrs, sizeof(CanonHeader));
	if (hdrs == NULL)
		goto oom;
#define ADD_HDR(n, v) \
	do { \
		hdrs[nhdrs].name = lower_dup(n); \
		hdrs[nhdrs].value = trimall_dup(v); \
		nhdrs++; \
		if (hdrs[nhdrs - 1].name == NULL || hdrs[nhdrs - 1].value == NULL) \
			goto oom; \
	} while (0)
	ADD_HDR("host", in->host);
	ADD_HDR("x-amz-content-sha256", in->payload_sha256);
	ADD_HDR("x-amz-date", in->amz_date);
	if (has_token)
		ADD_HDR("x-amz-security-token", in->session_token);
	for (i = 0; i < in->nheaders; i++)
		ADD_HDR(in->headers[i].name, in->headers[i].value);
#undef ADD_HDR
	qsort(hdrs, (size_t) nhdrs, sizeof(CanonHeader), canon_header_cmp);
	for (i = 1; i < nhdrs; i++)
	{
		if (strcmp(hdrs[i - 1].name, hdrs[i].name) == 0)
		{
			set_error(errbuf, errlen, "header \"%s\" given twice", hdrs[i].name);
			goto fail;
		}
	}

	/* ---- URL parts ---- */
	out->encoded_path = s3_uri_encode(in->path, 1);
	out->query_string = s3_canonical_query(in->query, in->nquery);
	if (out->encoded_path == NULL || out->query_string == NULL)
		goto oom;

	sbuf_init(&b);
	for (i = 0; i < nhdrs; i++)
	{
		if (i > 0)
			sbuf_putc(&b, ';');
		sbuf_puts(&b, hdrs[i].name);
	}
	out->signed_headers = sbuf_finish(&b);
	if (out->signed_headers == NULL)
		goto oom;

	/* ---- canonical request ---- */
	sbuf_init(&b);
	sbuf_puts(&b, in->method);
	sbuf_putc(&b, '\n');
	sbuf_puts(&b, out->encoded_path);
	sbuf_putc(&b, '\n');
	sbuf_puts(&b, out->query_string);
	sbuf_putc(&b, '\n');
	for (i = 0; i < nhdrs; i++)
	{
		sbuf_puts(&b, hdrs[i].name);
		sbuf_putc(&b, ':');
		sbuf_puts(&b, hdrs[i].value);
		sbuf_putc(&b, '\n');
	}
	sbuf_putc(&b, '\n');
	sbuf_puts(&b, out->signed_headers);
	sbuf_putc(&b, '\n');
	sbuf_puts(&b, in->payload_sha256);
	out->canonical_request = sbuf_finish(&b);
	if (out->canonical_request == NULL)
		goto oom;

	/* ---- string to sign ---- */
	s3_sha256_hex(out->canonical_request, strlen(out->canonical_request),
				  payload_hash_of_cr);
	sbuf_init(&b);
	sbuf_puts(&b, "AWS4-HMAC-SHA256\n");
	sbuf_puts(&b, in->amz_date);
	sbuf_putc(&b, '\n');
	sbuf_puts(&b, datestamp);
	sbuf_putc(&b, '/');
	sbuf_puts(&b, in->region);
	sbuf_putc(&b, '/');
	sbuf_puts(&b, service);
	sbuf_puts(&b, "/aws4_request\n");
	sbuf_puts(&b, payload_hash_of_cr);
	out->string_to_sign = sbuf_finish(&b);
	if (out->string_to_sign == NULL)
		goto oom;

	/* ---- signing key and signature ---- */
	secret_len = strlen(in->secret_access_key) + 4;
	secret_key = malloc(secret_len + 1);
	if (secret_key == NULL)
		goto oom;
	memcpy(secret_key, "AWS4", 4);
	memcpy(secret_key + 4, in->secret_access_key, secret_len - 4 + 1);
	if (hmac_sha256((unsigned char *) secret_key, secret_len,
					datestamp, strlen(datestamp), k1) != 0 ||
		hmac_sha256(k1, 32, in->region, strlen(in->region), k2) != 0 ||
		hmac_sha256(k2, 32, service, strlen(service), k3) != 0 ||
		hmac_sha256(k3, 32, "aws4_request", 12, k4) != 0 ||
		hmac_sha256(k4, 32, out->string_to_sign,
					strlen(out->string_to_sign), sig) != 0)
	{
		set_error(errbuf, errlen, "HMAC-SHA256 failed");
		goto fail;
	}
	to_hex(sig, 32, sighex);

	sbuf_init(&b);
	sbuf_puts(&b, "AWS4-HMAC-SHA256 Credential=");
	sbuf_puts(&b, in->access_key_id);
	sbuf_putc(&b, '/');
	sbuf_puts(&b, datestamp);
	sbuf_putc(&b, '/');
	sbuf_puts(&b, in->region);
	sbuf_putc(&b, '/');
	sbuf_puts(&b, service);
	sbuf_puts(&b, "/aws4_request,SignedHeaders=");
	sbuf_puts(&b, out->signed_headers);
	sbuf_puts(&b, ",Signature=");
	sbuf_puts(&b, sighex);
	out->authorization = sbuf_finish(&b);
	if (out->authorization == NULL)
		goto oom;

	/* ---- header lines to send: exactly the signed ones, then auth ---- */
	out->header_lines = calloc((size_t) nhdrs + 1, sizeof(char *));
	if (out->header_lines == NULL)
		goto oom;
	for (i = 0; i < nhdrs; i++)
	{
		sbuf_init(&b);
		sbuf_puts(&b, hdrs[i].name);
		sbuf_puts(&b, ": ");
		sbuf_puts(&b, hdrs[i].value);
		out->header_lines[out->nheader_lines] = sbuf_finish(&b);
		if (out->header_lines[out->nheader_lines] == NULL)
			goto oom;
		out->nheader_lines++;
	}
	sbuf_init(&b);
	sbuf_puts(&b, "Authorization: ");
	sbuf_puts(&b, out->authorization);
	out->header_lines[out->nheader_lines] = sbuf_finish(&b);
	if (out->header_lines[out->nheader_lines] == NULL)
		goto oom;
	out->nheader_lines++;

	rc = 0;
	goto done;

oom:
	set_error(errbuf, errlen, "out of memory");
fail:
	s3_sign_output_free(out);
done:
	if (secret_key)
	{
		OPENSSL_cleanse(secret_key, secret_len);
		free(secret_key);
	}
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	OPENSSL_cleanse(k3, sizeof(k3));
	OPENSSL_cleanse(k4, sizeof(k4));
	if (hdrs)
	{
		for (i = 0; i < nhdrs; i++)
		{
			free(hdrs[i].name);
			free(hdrs[i].value);
		}
		free(hdrs);
	}
	return rc;
}
