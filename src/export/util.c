/*
 * util.c — destor-export's small helpers: messages, allocation, buffers, ids.
 */
#include "export.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *progname = "destor-export";

static void
report(const char *level, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: %s: ", progname, level);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
fatal(int status, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	report("error", fmt, ap);
	va_end(ap);
	exit(status);
}

void
warn(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	report("warning", fmt, ap);
	va_end(ap);
}

void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		fatal(EXIT_DATA, "out of memory");
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void	   *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		fatal(EXIT_DATA, "out of memory");
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		fatal(EXIT_DATA, "out of memory");
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char	   *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xprintf(const char *fmt,...)
{
	va_list		ap;
	char	   *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		fatal(EXIT_DATA, "out of memory");
	va_end(ap);
	return s;
}

void
buf_put(Buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 256;

		while (cap < b->len + len + 1)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
buf_putc(Buf *b, char c)
{
	buf_put(b, &c, 1);
}

void
buf_puts(Buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

void
buf_printf(Buf *b, const char *fmt,...)
{
	va_list		ap;
	char	   *s;
	int			n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal(EXIT_DATA, "out of memory");
	buf_put(b, s, (size_t) n);
	free(s);
}

void
id_hex(const uint8_t id[CODEC_OBJID_LEN], char out[33])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < CODEC_OBJID_LEN; i++)
	{
		out[2 * i] = hex[id[i] >> 4];
		out[2 * i + 1] = hex[id[i] & 15];
	}
	out[32] = '\0';
}

void
id_text(const uint8_t id[CODEC_OBJID_LEN], char out[37])
{
	char		h[33];

	id_hex(id, h);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

/* A UUID's text (hyphens anywhere, as uuid_in accepts the usual form). */
bool
id_parse(const char *text, uint8_t id[CODEC_OBJID_LEN])
{
	int			n = 0;

	for (const char *p = text; *p; p++)
	{
		int			v;

		if (*p == '-')
			continue;
		v = codec_hex_value(*p);
		if (v < 0 || n >= 2 * CODEC_OBJID_LEN)
			return false;
		if (n % 2 == 0)
			id[n / 2] = (uint8_t) (v << 4);
		else
			id[n / 2] |= (uint8_t) v;
		n++;
	}
	return n == 2 * CODEC_OBJID_LEN;
}

uint64_t
get_le(const uint8_t *p, int n)
{
	uint64_t	v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t) p[i] << (8 * i);
	return v;
}
