/*
 * s3_xml.c — reading what S3 servers answer: a small scanner for their XML
 * documents (flat and well-formed: ListBucketResult,
 * ListMultipartUploadsResult, InitiateMultipartUploadResult, Error),
 * escaping for the one document destor sends (CompleteMultipartUpload),
 * and the numbers and times found in headers and listings.
 *
 * Everything here is palloc'd in the caller's context; nothing touches
 * libcurl, so the transfer callbacks (which must not palloc) use only
 * s3_parse_uint64.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "destor/provider.h"
#include "s3_internal.h"

bool
s3_parse_uint64(const char *s, size_t len, uint64 *out)
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
const char *
s3_xml_element(const char *s, const char *end, const char *tag, size_t *len,
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
char *
s3_xml_get(const char *s, const char *end, const char *tag)
{
	size_t		len;
	const char *text;

	if (s == NULL)
		return NULL;
	text = s3_xml_element(s, end, tag, &len, NULL);
	return text ? xml_unescape(text, len) : NULL;
}

void
s3_xml_escape_into(StringInfo buf, const char *s)
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

/* "HTTP 404 NoSuchKey: The specified key does not exist." */
char *
s3_http_detail(S3Transfer *t, char **code_out)
{
	const char *body = t->body.data;
	const char *end = body ? body + t->body.len : NULL;
	char	   *code = NULL;
	char	   *message = NULL;

	if (body != NULL)
	{
		size_t		elen;
		const char *err = s3_xml_element(body, end, "Error", &elen, NULL);

		if (err != NULL)
		{
			code = s3_xml_get(err, err + elen, "Code");
			message = s3_xml_get(err, err + elen, "Message");
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

/* Parse "2009-10-12T17:50:30.000Z" (ISO 8601, UTC). */
TimestampTz
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
