/*
 * s3_sign.h — AWS Signature Version 4 for S3 requests.
 *
 * Pure C on OpenSSL: no PostgreSQL headers, malloc/free, so the signer is
 * unit-tested on its own (test/unit/test_s3_sign.c) and cross-checked
 * against botocore (test/unit/sigv4_crosscheck.py).
 *
 * The signer does the encoding as well as the signing: it takes the raw
 * object path and raw query pairs and returns the encoded path, the
 * canonical query string and the header lines to send, so that what goes on
 * the wire is byte for byte what was signed.  S3 rules apply: each path
 * segment is URI-encoded once (RFC 3986 unreserved characters kept, '/'
 * kept), the path is not normalized ("//" and a trailing '/' stay), query
 * names and values are RFC 3986-encoded and sorted, and the payload hash is
 * always signed (never UNSIGNED-PAYLOAD).
 *
 * Nothing here prints anything; the secret key only enters the HMAC chain.
 */
#ifndef DESTOR_S3_SIGN_H
#define DESTOR_S3_SIGN_H

#include <stddef.h>
#include <time.h>

/* A raw (unencoded) name/value pair: a query parameter or a header. */
typedef struct S3SignPair
{
	const char *name;
	const char *value;			/* "" for a valueless query parameter (?uploads) */
} S3SignPair;

typedef struct S3SignInput
{
	const char *method;			/* "GET", "PUT", ... */
	const char *host;			/* Host header value, with ":port" when non-default */
	const char *path;			/* raw path beginning with '/', e.g. "/bucket/a b.bin" */
	const S3SignPair *query;	/* raw query parameters, any order */
	int			nquery;
	const S3SignPair *headers;	/* extra headers to sign and send (content-type,
								 * range, ...); not host, x-amz-date,
								 * x-amz-content-sha256 or x-amz-security-token */
	int			nheaders;
	const char *payload_sha256; /* lower-case hex SHA-256 of the body */
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;	/* NULL or "" when none */
	const char *region;			/* e.g. "us-east-1" */
	const char *service;		/* "s3"; NULL means "s3" */
	const char *amz_date;		/* YYYYMMDDTHHMMSSZ */
} S3SignInput;

typedef struct S3SignOutput
{
	char	   *encoded_path;	/* path to put in the URL */
	char	   *query_string;	/* canonical query string for the URL, "" if none */
	char	   *authorization;	/* Authorization header value (secret-derived: never log) */
	char	   *signed_headers; /* "host;x-amz-content-sha256;x-amz-date" */
	char	   *canonical_request;	/* for tests and debugging; holds no secret */
	char	   *string_to_sign; /* for tests and debugging; holds no secret */
	/* Header lines "name: value" to send, every signed header then
	 * "Authorization: ...", in that order. */
	char	  **header_lines;
	int			nheader_lines;
} S3SignOutput;

#define S3_SHA256_HEX_LEN 64
#define S3_AMZ_DATE_LEN 16
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/*
 * Sign a request.  Returns 0 on success with *out filled (free it with
 * s3_sign_output_free); on bad input or allocation failure returns -1, sets
 * errbuf to a message that contains no secret and leaves *out empty.
 */
extern int	s3_sign(const S3SignInput *in, S3SignOutput *out,
					char *errbuf, size_t errlen);
extern void s3_sign_output_free(S3SignOutput *out);

/* Lower-case hex SHA-256 of a buffer; out must hold 65 bytes. */
extern void s3_sha256_hex(const void *data, size_t len, char *out);

/* "YYYYMMDDTHHMMSSZ" for a UTC time; out must hold 17 bytes. */
extern void s3_format_amz_date(time_t t, char *out);

/*
 * URI-encode a raw string: RFC 3986 unreserved characters are kept, every
 * other byte becomes %XX (upper-case hex); '/' is kept when keep_slash.
 * Returns malloc'd memory or NULL when out of memory.
 */
extern char *s3_uri_encode(const char *s, int keep_slash);

/*
 * Canonical query string (encoded, sorted by name then value) for raw pairs;
 * used also for anonymous requests.  malloc'd; NULL when out of memory.
 */
extern char *s3_canonical_query(const S3SignPair *query, int nquery);

#endif							/* DESTOR_S3_SIGN_H */
