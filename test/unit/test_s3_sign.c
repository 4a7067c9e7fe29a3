/*
 * test_s3_sign.c — unit tests of the S3 SigV4 signer (src/provider/s3_sign.c).
 *
 * Without arguments: runs the signing examples of the AWS S3 SigV4
 * documentation (GET object with range, PUT object, GET bucket lifecycle,
 * list objects) and the encoding / validation rules, and exits non-zero on
 * the first failure.
 *
 * With --stdin: a filter for test/unit/sigv4_crosscheck.py.  Each request is
 * a block of lines "TAG ARGS" ending with "end"; every string argument is
 * hex-encoded UTF-8 ("-" for the empty string) so that any byte survives:
 *   method HEX | host HEX | path HEX | region HEX | service HEX | date HEX
 *   akid HEX | secret HEX | token HEX
 *   q NAMEHEX VALUEHEX        (query parameter, repeatable)
 *   h NAMEHEX VALUEHEX        (extra signed header, repeatable)
 *   payload SHA256HEX         (payload hash given as is)
 *   body HEX                  (body bytes: the hash is computed here)
 *   bodyrep HEX COUNT         (body = HEX bytes repeated COUNT times)
 * For each block one line is printed:
 *   OK <TAB> encoded_path <TAB> query_string <TAB> authorization
 * or
 *   ERR <TAB> message
 */
#include "destor/s3_sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...) \
	do { \
		checks++; \
		if (!(cond)) \
		{ \
			failures++; \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

#define CHECK_STR(got, want) check_str((got), (want), __LINE__)

static void
check_str(const char *got, const char *want, int line)
{
	checks++;
	if (got == NULL || strcmp(got, want) != 0)
	{
		failures++;
		fprintf(stderr, "FAIL %s:%d: got \"%s\", want \"%s\"\n",
				__FILE__, line, got ? got : "(null)", want);
	}
}

static const char *DOC_AKID = "AKIAIOSFODNN7EXAMPLE";
static const char *DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
static const char *DOC_HOST = "examplebucket.s3.amazonaws.com";
static const char *DOC_DATE = "20130524T000000Z";

static S3SignInput
doc_input(void)
{
	S3SignInput in;

	memset(&in, 0, sizeof(in));
	in.method = "GET";
	in.host = DOC_HOST;
	in.path = "/";
	in.payload_sha256 = S3_EMPTY_SHA256;
	in.access_key_id = DOC_AKID;
	in.secret_access_key = DOC_SECRET;
	in.region = "us-east-1";
	in.service = "s3";
	in.amz_date = DOC_DATE;
	return in;
}

/* No output field may contain the secret key. */
static void
check_no_secret(const S3SignOutput *out, const char *secret)
{
	int			i;

	CHECK(strstr(out->authorization, secret) == NULL, "secret in authorization");
	CHECK(strstr(out->canonical_request, secret) == NULL, "secret in canonical request");
	CHECK(strstr(out->string_to_sign, secret) == NULL, "secret in string to sign");
	for (i = 0; i < out->nheader_lines; i++)
		CHECK(strstr(out->header_lines[i], secret) == NULL, "secret in header line");
}

static void
test_doc_get_object_with_range(void)
{
	S3SignInput in = doc_input();
	S3SignOutput out;
	S3SignPair hdr[] = {{"Range", "bytes=0-9"}};
	char		err[256];

	in.path = "/test.txt";
	in.headers = hdr;
	in.nheaders = 1;
	CHECK(s3_sign(&in, &out, err, sizeof(err)) == 0, "sign failed: %s", err);
	CHECK_STR(out.canonical_request,
			  "GET\n/test.txt\n\n"
			  "host:examplebucket.s3.amazonaws.com\n"
			  "range:bytes=0-9\n"
			  "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
			  "x-amz-date:20130524T000000Z\n\n"
			  "host;range;x-amz-content-sha256;x-amz-date\n"
			  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	CHECK_STR(out.string_to_sign,
			  "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
			  "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	CHECK_STR(out.authorization,
			  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
			  "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
			  "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	CHECK_STR(out.encoded_path, "/test.txt");
	CHECK_STR(out.query_string, "");
	CHECK(out.nheader_lines == 5, "nheader_lines = %d", out.nheader_lines);
	if (out.nheader_lines == 5)
	{
		CHECK_STR(out.header_lines[0], "host: examplebucket.s3.amazonaws.com");
		CHECK_STR(out.header_lines[1], "range: bytes=0-9");
		CHECK_STR(out.header_lines[2], "x-amz-content-sha256: " S3_EMPTY_SHA256);
		CHECK_STR(out.header_lines[3], "x-amz-date: 20130524T000000Z");
		CHECK(strncmp(out.header_lines[4], "Authorization: AWS4-HMAC-SHA256 ", 32) == 0,
			  "last header line is not Authorization");
	}
	check_no_secret(&out, DOC_SECRET);
	s3_sign_output_free(&out);
}

static void
test_doc_put_object(void)
{
	S3SignInput in = doc_input();
	S3SignOutput out;
	S3SignPair hdr[] = {
		{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
		{"x-amz-storage-class", "REDUCED_REDUNDANCY"}
	};
	const char *body = "Welcome to Amazon S3.";
	char		hash[65];
	char		err[256];

	s3_sha256_hex(body, strlen(body), hash);
	CHECK_STR(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	in.method = "PUT";
	in.path = "/test$file.text";	/* raw: the signer encodes '$' */
	in.headers = hdr;
	in.nheaders = 2;
	in.payload_sha256 = hash;
	CHECK(s3_sign(&in, &out, err, sizeof(err)) == 0, "sign failed: %s", err);
	CHECK_STR(out.encoded_path, "/test%24file.text");
	CHECK_STR(out.string_to_sign,
			  "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
			  "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
	CHECK_STR(out.authorization,
			  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
			  "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
			  "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
	s3_sign_output_free(&out);
}

static void
test_doc_get_bucket_lifecycle(void)
{
	S3SignInput in = doc_input();
	S3SignOutput out;
	S3SignPair q[] = {{"lifecycle", ""}};
	char		err[256];

	in.query = q;
	in.nquery = 1;
	CHECK(s3_sign(&in, &out, err, sizeof(err)) == 0, "sign failed: %s", err);
	CHECK_STR(out.query_string, "lifecycle=");
	CHECK_STR(out.string_to_sign,
			  "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
			  "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
	CHECK_STR(out.authorization,
			  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
			  "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
			  "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
	s3_sign_output_free(&out);
}

static void
test_doc_list_objects_sorts_query(void)
{
	S3SignInput in = doc_input();
	S3SignOutput out;
	S3SignPair q[] = {{"prefix", "J"}, {"max-keys", "2"}};	/* unsorted */
	char		err[256];

	in.query = q;
	in.nquery = 2;
	CHECK(s3_sign(&in, &out, err, sizeof(err)) == 0, "sign failed: %s", err);
	CHECK_STR(out.query_string, "max-keys=2&prefix=J");
	CHECK_STR(out.authorization,
			  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
			  "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
			  "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
	s3_sign_output_free(&out);
}

static void
test_uri_encoding_follows_s3_rules(void)
{
	struct
	{
		const char *in;
		int			keep_slash;
		const char *want;
	}			cases[] = {
		{"a b", 1, "a%20b"},
		{"a+b", 1, "a%2Bb"},
		{"100%", 1, "100%25"},
		{"A-z_0.9~", 1, "A-z_0.9~"},
		{"a/b", 1, "a/b"},
		{"a/b", 0, "a%2Fb"},
		{"=&?#", 1, "%3D%26%3F%23"},
		{"!'()*$", 1, "%21%27%28%29%2A%24"},
		{"\xc3\xbc", 1, "%C3%BC"},
		{"/bucket//dir/", 1, "/bucket//dir/"},
		{"/bucket/dir/my key+\xc3\xbc%.bin", 1, "/bucket/dir/my%20key%2B%C3%BC%25.bin"},
		{"%2F", 1, "%252F"},	/* never decoded first: no double decoding */
		{"", 1, ""},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char	   *got = s3_uri_encode(cases[i].in, cases[i].keep_slash);

		CHECK_STR(got, cases[i].want);
		free(got);
	}
}

static void
test_canonical_query_encodes_and_sorts(void)
{
	S3SignPair q[] = {
		{"uploadId", "a/b+c=="},
		{"partNumber", "2"},
		{"uploads", ""},
		{"prefix", "dir one/\xc3\xbc~&="},
		{"list-type", "2"},
		{"a", "2"},
		{"a", "1"},
		{"B", "x"},
	};
	char	   *got = s3_canonical_query(q, 8);

	/* byte order: upper case sorts before lower case; equal names by value */
	CHECK_STR(got, "B=x&a=1&a=2&list-type=2&partNumber=2"
			  "&prefix=dir%20one%2F%C3%BC~%26%3D&uploadId=a%2Fb%2Bc%3D%3D&uploads=");
	free(got);
	got = s3_canonical_query(NULL, 0);
	CHECK_STR(got, "");
	free(got);
}

static void
test_session_token_is_signed_and_sent(void)
{
	S3SignInput in = doc_input();
	S3SignOutput out;
	char		err[256];
	int			i,
				found = 0;

	in.session_token = "FQoGZXIvYXdzEXAMPLETOKEN//+==";
	CHECK(s3_sign(&in, &out, err, sizeof(err)) == 0, "sign failed: %s", err);
	CHECK_STR(out.signed_headers, "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
	for (i = 0; i < out.nheader_lines; i++)
		if (strcmp(out.header_lines[i], "x-amz-security-token: FQoGZXIvYXdzEXAMPLETOKEN//+==") == 0)
			found = 1;
	CHECK(found, "session token header line missing");
	CHECK(strstr(out.canonical_request, "x-amz-security-token:FQoGZXIvYXdzEXAMPLETOKEN//+==\n") != NULL,
		  "session token not in canonical request");
	s3_sign_output_free(&out);
}

static void
test_header_values_are_trimmed(void)
{
	S3SignInput in = doc_input();
	S3SignOutput out;
	S3SignPair hdr[] = {{"Content-Type", "  text/plain;   charset=utf-8  "}};
	char		err[256];

	in.headers = hdr;
	in.nheaders = 1;
	CHECK(s3_sign(&in, &out, err, sizeof(err)) == 0, "sign failed: %s", err);
	CHECK(strstr(out.canonical_request, "\ncontent-type:text/plain; charset=utf-8\n") != NULL,
		  "header not trimmed: %s", out.canonical_request);
	CHECK_STR(out.header_lines[0], "content-type: text/plain; charset=utf-8");
	s3_sign_output_free(&out);
}

static void
expect_rejected(S3SignInput in, const char *what)
{
	S3SignOutput out;
	char		err[256];

	err[0] = '\0';
	CHECK(s3_sign(&in, &out, err, sizeof(err)) == -1, "%s accepted", what);
	CHECK(err[0] != '\0', "%s: no error message", what);
	CHECK(strstr(err, DOC_SECRET) == NULL, "%s: secret in error", what);
	CHECK(out.authorization == NULL, "%s: output left behind", what);
}

static void
test_bad_input_is_rejected(void)
{
	S3SignInput in;
	S3SignPair host_hdr[] = {{"Host", "evil"}};
	S3SignPair dup_hdr[] = {{"Range", "bytes=0-1"}, {"range", "bytes=2-3"}};
	S3SignPair crlf_hdr[] = {{"X-Foo", "a\r\nInjected: 1"}};
	S3SignPair empty_q[] = {{"", "x"}};

	in = doc_input();
	in.amz_date = "2013-05-24T00:00:00Z";
	expect_rejected(in, "malformed timestamp");
	in = doc_input();
	in.path = "test.txt";
	expect_rejected(in, "relative path");
	in = doc_input();
	in.payload_sha256 = "UNSIGNED-PAYLOAD";
	expect_rejected(in, "unsigned payload");
	in = doc_input();
	in.secret_access_key = "";
	expect_rejected(in, "empty secret");
	in = doc_input();
	in.access_key_id = "AKID/extra";
	expect_rejected(in, "access key with '/'");
	in = doc_input();
	in.region = NULL;
	expect_rejected(in, "missing region");
	in = doc_input();
	in.headers = host_hdr;
	in.nheaders = 1;
	expect_rejected(in, "host as extra header");
	in = doc_input();
	in.headers = dup_hdr;
	in.nheaders = 2;
	expect_rejected(in, "duplicate header");
	in = doc_input();
	in.headers = crlf_hdr;
	in.nheaders = 1;
	expect_rejected(in, "header value with CRLF");
	in = doc_input();
	in.query = empty_q;
	in.nquery = 1;
	expect_rejected(in, "empty query name");
}

static void
test_amz_date_format(void)
{
	char		buf[S3_AMZ_DATE_LEN + 1];

	s3_format_amz_date((time_t) 1369353600, buf);
	CHECK_STR(buf, "20130524T000000Z");
	s3_format_amz_date((time_t) 951782399, buf);
	CHECK_STR(buf, "20000228T235959Z");
}

static void
test_sha256_helper(void)
{
	char		hash[65];
	char	   *big;
	size_t		n = 3 * 1024 * 1024;

	s3_sha256_hex("", 0, hash);
	CHECK_STR(hash, S3_EMPTY_SHA256);
	s3_sha256_hex("abc", 3, hash);
	CHECK_STR(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* one million 'a': the FIPS 180-2 long message vector */
	big = malloc(n);
	memset(big, 'a', 1000000);
	s3_sha256_hex(big, 1000000, hash);
	CHECK_STR(hash, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(big);
}

/* ---------------- --stdin filter ---------------- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode hex ("-" = empty) into malloc'd memory; *len gets the length. */
static char *
unhex(const char *s, size_t *len)
{
	size_t		n,
				i;
	char	   *r;

	if (strcmp(s, "-") == 0)
		n = 0;
	else
		n = strlen(s);
	if (n % 2 != 0)
		return NULL;
	r = malloc(n / 2 + 1);
	for (i = 0; i < n / 2; i++)
	{
		int			hi = hexval((unsigned char) s[2 * i]);
		int			lo = hexval((unsigned char) s[2 * i + 1]);

		if (hi < 0 || lo < 0)
		{
			free(r);
			return NULL;
		}
		r[i] = (char) (hi * 16 + lo);
	}
	r[n / 2] = '\0';
	if (len)
		*len = n / 2;
	return r;
}

typedef struct FilterCase
{
	char	   *method,
			   *host,
			   *path,
			   *region,
			   *service,
			   *date,
			   *akid,
			   *secret,
			   *token;
	S3SignPair *query;
	int			nquery;
	S3SignPair *headers;
	int			nheaders;
	char		payload[65];
	int			have_payload;
	const char *error;
} FilterCase;

static void
filter_case_free(FilterCase *c)
{
	int			i;

	free(c->method);
	free(c->host);
	free(c->path);
	free(c->region);
	free(c->service);
	free(c->date);
	free(c->akid);
	free(c->secret);
	free(c->token);
	for (i = 0; i < c->nquery; i++)
	{
		free((char *) c->query[i].name);
		free((char *) c->query[i].value);
	}
	free(c->query);
	for (i = 0; i < c->nheaders; i++)
	{
		free((char *) c->headers[i].name);
		free((char *) c->headers[i].value);
	}
	free(c->headers);
	memset(c, 0, sizeof(*c));
}

static void
filter_run_case(FilterCase *c)
{
	S3SignInput in;
	S3SignOutput out;
	char		err[256];

	if (c->error)
	{
		printf("ERR\t%s\n", c->error);
		return;
	}
	memset(&in, 0, sizeof(in));
	in.method = c->method;
	in.host = c->host;
	in.path = c->path;
	in.query = c->query;
	in.nquery = c->nquery;
	in.headers = c->headers;
	in.nheaders = c->nheaders;
	in.payload_sha256 = c->have_payload ? c->payload : S3_EMPTY_SHA256;
	in.access_key_id = c->akid;
	in.secret_access_key = c->secret;
	in.session_token = c->token;
	in.region = c->region;
	in.service = c->service;
	in.amz_date = c->date;
	if (s3_sign(&in, &out, err, sizeof(err)) != 0)
	{
		printf("ERR\t%s\n", err);
		return;
	}
	printf("OK\t%s\t%s\t%s\n", out.encoded_path, out.query_string, out.authorization);
	s3_sign_output_free(&out);
}

static int
run_filter(void)
{
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		n;
	FilterCase	c;
	int			ncases = 0;

	memset(&c, 0, sizeof(c));
	while ((n = getline(&line, &cap, stdin)) > 0)
	{
		char	   *tag,
				   *a1,
				   *a2,
				   *save = NULL;

		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		tag = strtok_r(line, " ", &save);
		if (tag == NULL)
			continue;
		a1 = strtok_r(NULL, " ", &save);
		a2 = strtok_r(NULL, " ", &save);

		if (strcmp(tag, "end") == 0)
		{
			filter_run_case(&c);
			fflush(stdout);
			filter_case_free(&c);
			ncases++;
			continue;
		}
		if (a1 == NULL)
		{
			c.error = "missing argument";
			continue;
		}
		{
			struct
			{
				const char *tag;
				char	  **field;
			}			fields[] = {
				{"method", &c.method}, {"host", &c.host}, {"path", &c.path},
				{"region", &c.region}, {"service", &c.service},
				{"date", &c.date}, {"akid", &c.akid}, {"secret", &c.secret},
				{"token", &c.token},
			};
			size_t		i;
			int			matched = 0;

			for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			{
				if (strcmp(tag, fields[i].tag) != 0)
					continue;
				free(*fields[i].field);
				*fields[i].field = unhex(a1, NULL);
				if (*fields[i].field == NULL)
					c.error = "bad hex";
				matched = 1;
			}
			if (matched)
				continue;
		}
		if (strcmp(tag, "q") == 0 || strcmp(tag, "h") == 0)
		{
			S3SignPair **arr = tag[0] == 'q' ? &c.query : &c.headers;
			int		   *cnt = tag[0] == 'q' ? &c.nquery : &c.nheaders;
			char	   *nm,
					   *vl;

			if (a2 == NULL)
			{
				c.error = "missing value";
				continue;
			}
			nm = unhex(a1, NULL);
			vl = unhex(a2, NULL);
			if (nm == NULL || vl == NULL)
			{
				free(nm);
				free(vl);
				c.error = "bad hex";
				continue;
			}
			*arr = realloc(*arr, sizeof(S3SignPair) * (size_t) (*cnt + 1));
			(*arr)[*cnt].name = nm;
			(*arr)[*cnt].value = vl;
			(*cnt)++;
			continue;
		}
		if (strcmp(tag, "payload") == 0)
		{
			snprintf(c.payload, sizeof(c.payload), "%s", a1);
			c.have_payload = 1;
			continue;
		}
		if (strcmp(tag, "body") == 0 || strcmp(tag, "bodyrep") == 0)
		{
			size_t		plen;
			char	   *pat = unhex(a1, &plen);
			long		count = 1;
			char	   *body;
			size_t		i;

			if (tag[4] == 'r')
				count = a2 ? strtol(a2, NULL, 10) : -1;
			if (pat == NULL || count < 0)
			{
				free(pat);
				c.error = "bad body";
				continue;
			}
			body = malloc(plen * (size_t) count + 1);
			for (i = 0; i < (size_t) count; i++)
				memcpy(body + i * plen, pat, plen);
			s3_sha256_hex(body, plen * (size_t) count, c.payload);
			c.have_payload = 1;
			free(body);
			free(pat);
			continue;
		}
		c.error = "unknown tag";
	}
	free(line);
	filter_case_free(&c);
	fprintf(stderr, "test_s3_sign: %d cases signed\n", ncases);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--stdin") == 0)
		return run_filter();
	if (argc > 1)
	{
		fprintf(stderr, "usage: %s [--stdin]\n", argv[0]);
		return 2;
	}

	test_doc_get_object_with_range();
	test_doc_put_object();
	test_doc_get_bucket_lifecycle();
	test_doc_list_objects_sorts_query();
	test_uri_encoding_follows_s3_rules();
	test_canonical_query_encodes_and_sorts();
	test_session_token_is_signed_and_sent();
	test_header_values_are_trimmed();
	test_bad_input_is_rejected();
	test_amz_date_format();
	test_sha256_helper();

	if (failures)
	{
		fprintf(stderr, "test_s3_sign: %d of %d checks failed\n", failures, checks);
		return 1;
	}
	printf("test_s3_sign: all %d checks passed\n", checks);
	return 0;
}
