/*
 * values.c — stored column values as the text PostgreSQL's output functions
 * give them with the defaults of COPY ... TO (DateStyle ISO, TimeZone UTC,
 * extra_float_digits 1, bytea_output hex), and CSV quoting as COPY's.
 *
 * Segments store built-in types as raw bytes (segment_format.c): a chunk
 * is a null bitmap then the non-null values — fixed-length types as their
 * typlen bytes, varlena types as u32 length + bytes — and every other type
 * (enums, composites, domains over them, arrays of them, user types) as its
 * text form (u32 length + text), which is printed as it is.  The raw types
 * handled here are listed in type_unsupported; any other raw type is an
 * error naming it.
 */
#include "export.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the value kinds of a segment directory (table.h: ValueKind) */
#define KIND_FIXED		1
#define KIND_VARLENA	2
#define KIND_TEXT		3

/* built-in type OIDs (pg_type.dat: fixed forever) */
#define BOOLOID			16
#define BYTEAOID		17
#define CHAROID			18
#define NAMEOID			19
#define INT8OID			20
#define INT2OID			21
#define INT4OID			23
#define TEXTOID			25
#define OIDOID			26
#define JSONOID			114
#define XMLOID			142
#define FLOAT4OID		700
#define FLOAT8OID		701
#define BPCHAROID		1042
#define VARCHAROID		1043
#define DATEOID			1082
#define TIMEOID			1083
#define TIMESTAMPOID	1114
#define TIMESTAMPTZOID	1184
#define INTERVALOID		1186
#define TIMETZOID		1266
#define NUMERICOID		1700
#define UUIDOID			2950

const char *
type_unsupported(uint32_t typid, int kind)
{
	if (kind == KIND_TEXT)
		return NULL;
	switch (typid)
	{
		case BOOLOID:
		case BYTEAOID:
		case CHAROID:
		case NAMEOID:
		case INT8OID:
		case INT2OID:
		case INT4OID:
		case TEXTOID:
		case OIDOID:
		case JSONOID:
		case XMLOID:
		case FLOAT4OID:
		case FLOAT8OID:
		case BPCHAROID:
		case VARCHAROID:
		case DATEOID:
		case TIMEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case INTERVALOID:
		case TIMETZOID:
		case NUMERICOID:
		case UUIDOID:
			return NULL;
		default:
			return "not supported";
	}
}

/*
 * COPY's CSV quoting (copyto.c, CopyAttributeOutCSV): a value is quoted
 * when it contains the delimiter, the quote, CR or LF, when it is the empty
 * string (which is not NULL), or when it is "\." alone in a one-column row;
 * quotes are doubled.
 */
void
csv_field(Buf *out, const char *s, size_t len, bool single_column)
{
	bool		quote = len == 0 || (single_column && len == 2 && s[0] == '\\' && s[1] == '.');

	for (size_t i = 0; i < len && !quote; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
			quote = true;
	if (!quote)
	{
		buf_put(out, s, len);
		return;
	}
	buf_putc(out, '"');
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] == '"')
			buf_putc(out, '"');
		buf_putc(out, s[i]);
	}
	buf_putc(out, '"');
}

/* ---------------------------------------------------------------------
 * floats: the shortest text that reads back exactly (float8out and
 * float4out with extra_float_digits > 0, i.e. Ryu), formatted as PostgreSQL
 * formats it: plain notation for decimal exponents -4 .. 14 (float4: 5),
 * else d.ddde+XX.
 * --------------------------------------------------------------------- */

static void
float_text(Buf *out, double v, bool single)
{
	char		digits[40];
	char		tmp[64];
	int			exp10;
	int			ndig = 0;
	bool		neg;
	int			maxprec = single ? 9 : 17;
	int			plain_max = single ? 6 : 15;

	if (isnan(v))
	{
		buf_puts(out, "NaN");
		return;
	}
	if (isinf(v))
	{
		buf_puts(out, v > 0 ? "Infinity" : "-Infinity");
		return;
	}
	if (v == 0)
	{
		buf_puts(out, signbit(v) ? "-0" : "0");
		return;
	}
	/* shortest %e that reads back as the same value */
	for (int prec = 0; prec < maxprec; prec++)
	{
		snprintf(tmp, sizeof(tmp), "%.*e", prec, v);
		if (single ? strtof(tmp, NULL) == (float) v : strtod(tmp, NULL) == v)
			break;
	}
	/* tmp: [-]d[.ddd]e[+-]XX */
	neg = tmp[0] == '-';
	for (const char *p = tmp + neg; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[ndig++] = *p;
	exp10 = atoi(strchr(tmp, 'e') + 1);
	while (ndig > 1 && digits[ndig - 1] == '0')
		ndig--;
	digits[ndig] = '\0';
	if (neg)
		buf_putc(out, '-');
	if (exp10 >= -4 && exp10 < plain_max)
	{
		if (exp10 < 0)
		{
			buf_puts(out, "0.");
			for (int i = -1; i > exp10; i--)
				buf_putc(out, '0');
			buf_puts(out, digits);
		}
		else
		{
			for (int i = 0; i <= exp10 || i < ndig; i++)
			{
				if (i == exp10 + 1)
					buf_putc(out, '.');
				buf_putc(out, i < ndig ? digits[i] : '0');
			}
		}
	}
	else
	{
		buf_putc(out, digits[0]);
		if (ndig > 1)
		{
			buf_putc(out, '.');
			buf_puts(out, digits + 1);
		}
		buf_printf(out, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
	}
}

/* ---------------------------------------------------------------------
 * dates and times (datetime.c: j2date, EncodeDateTime with USE_ISO_DATES)
 * --------------------------------------------------------------------- */

#define POSTGRES_EPOCH_JDATE	2451545
#define USECS_PER_DAY			INT64_C(86400000000)

static void
j2date(int jd, int *year, int *month, int *day)
{
	unsigned int julian;
	unsigned int quad;
	unsigned int extra;
	int			y;

	julian = jd;
	julian += 32044;
	quad = julian / 146097;
	extra = (julian - quad * 146097) * 4 + 3;
	julian += 60 + quad * 3 + extra / 146097;
	quad = julian / 1461;
	julian -= quad * 1461;
	y = julian * 4 / 1461;
	julian = ((y != 0) ? ((julian + 305) % 365) : ((julian + 306) % 366)) + 123;
	y += quad * 4;
	*year = y - 4800;
	quad = julian * 2141 / 65536;
	*day = julian - 7834 * quad / 256;
	*month = (quad + 10) % 12 + 1;
}

static void
date_part(Buf *out, int jd, bool *bc)
{
	int			y,
				mo,
				d;

	j2date(jd, &y, &mo, &d);
	*bc = y <= 0;
	buf_printf(out, "%04d-%02d-%02d", *bc ? -(y - 1) : y, mo, d);
}

static void fraction(Buf *out, int frac);

static void
time_part(Buf *out, int64_t usec)
{
	int			h = (int) (usec / INT64_C(3600000000));
	int			mi = (int) (usec / 60000000 % 60);
	int			s = (int) (usec / 1000000 % 60);
	int			frac = (int) (usec % 1000000);

	buf_printf(out, "%02d:%02d:%02d", h, mi, s);
	fraction(out, frac);
}

static void
fraction(Buf *out, int frac)
{
	char		f[8];
	int			n = 6;

	if (frac == 0)
		return;
	snprintf(f, sizeof(f), "%06d", frac);
	while (n > 0 && f[n - 1] == '0')
		n--;
	buf_printf(out, ".%.*s", n, f);
}

/* timetz: the time, then the zone (seconds west of UTC) as +HH[:MM[:SS]] */
static void
timetz_text(Buf *out, int64_t usec, int32_t zone)
{
	int			tz = -zone;
	int			a = abs(tz);

	time_part(out, usec);
	buf_printf(out, "%c%02d", tz < 0 ? '-' : '+', a / 3600);
	if (a % 3600)
	{
		buf_printf(out, ":%02d", a / 60 % 60);
		if (a % 60)
			buf_printf(out, ":%02d", a % 60);
	}
}

/* one part of an interval as IntervalStyle postgres writes it (AddPostgresIntPart) */
static void
interval_part(Buf *out, int value, const char *units, bool *is_zero, bool *is_before)
{
	if (value == 0)
		return;
	buf_printf(out, "%s%s%d %s%s", !*is_zero ? " " : "", (*is_before && value > 0) ? "+" : "",
			   value, units, value != 1 ? "s" : "");
	*is_before = value < 0;
	*is_zero = false;
}

/* interval: time (microseconds), days, months; IntervalStyle postgres */
static void
interval_text(Buf *out, int64_t time, int32_t day, int32_t month)
{
	bool		is_zero = true;
	bool		is_before = false;
	int64_t		hour = time / INT64_C(3600000000);
	int			min = (int) (time / 60000000 % 60);
	int			sec = (int) (time / 1000000 % 60);
	int			fsec = (int) (time % 1000000);

	interval_part(out, month / 12, "year", &is_zero, &is_before);
	interval_part(out, month % 12, "mon", &is_zero, &is_before);
	interval_part(out, day, "day", &is_zero, &is_before);
	if (is_zero || hour != 0 || min != 0 || sec != 0 || fsec != 0)
	{
		bool		minus = hour < 0 || min < 0 || sec < 0 || fsec < 0;

		buf_printf(out, "%s%s%02lld:%02d:%02d", is_zero ? "" : " ",
				   minus ? "-" : (is_before ? "+" : ""),
				   (long long) (hour < 0 ? -hour : hour), abs(min), abs(sec));
		fraction(out, abs(fsec));
	}
}

static void
timestamp_text(Buf *out, int64_t ts, bool tz)
{
	int64_t		days;
	int64_t		time;
	bool		bc;

	if (ts == INT64_MAX)
	{
		buf_puts(out, "infinity");
		return;
	}
	if (ts == INT64_MIN)
	{
		buf_puts(out, "-infinity");
		return;
	}
	days = ts / USECS_PER_DAY;
	time = ts % USECS_PER_DAY;
	if (time < 0)
	{
		time += USECS_PER_DAY;
		days--;
	}
	date_part(out, (int) (days + POSTGRES_EPOCH_JDATE), &bc);
	buf_putc(out, ' ');
	time_part(out, time);
	if (tz)
		buf_puts(out, "+00");
	if (bc)
		buf_puts(out, " BC");
}

static void
date_text(Buf *out, int32_t d)
{
	bool		bc;

	if (d == INT32_MAX)
		buf_puts(out, "infinity");
	else if (d == INT32_MIN)
		buf_puts(out, "-infinity");
	else
	{
		date_part(out, d + POSTGRES_EPOCH_JDATE, &bc);
		if (bc)
			buf_puts(out, " BC");
	}
}

/* ---------------------------------------------------------------------
 * numeric: the on-disk form (numeric.c) — a header then base-10000 digits
 * --------------------------------------------------------------------- */

#define NUMERIC_SIGN_MASK	0xC000
#define NUMERIC_NEG			0x4000
#define NUMERIC_SHORT		0x8000
#define NUMERIC_SPECIAL		0xC000
#define NUMERIC_PINF		0xD000
#define NUMERIC_NINF		0xF000
#define NUMERIC_DSCALE_MASK	0x3FFF
#define NUMERIC_SHORT_SIGN_MASK		0x2000
#define NUMERIC_SHORT_DSCALE_MASK	0x1F80
#define NUMERIC_SHORT_DSCALE_SHIFT	7
#define NUMERIC_SHORT_WEIGHT_SIGN_MASK	0x0040
#define NUMERIC_SHORT_WEIGHT_MASK	0x003F
#define DEC_DIGITS			4

static bool
numeric_text(Buf *out, const uint8_t *p, uint32_t len)
{
	uint16_t	header;
	bool		neg;
	int			dscale;
	int			weight;
	const uint8_t *dp;
	int			ndigits;

	if (len < 2)
		return false;
	header = (uint16_t) get_le(p, 2);
	if ((header & NUMERIC_SIGN_MASK) == NUMERIC_SPECIAL)
	{
		buf_puts(out, (header & 0xF000) == NUMERIC_PINF ? "Infinity" :
				 (header & 0xF000) == NUMERIC_NINF ? "-Infinity" : "NaN");
		return true;
	}
	if (header & NUMERIC_SHORT)
	{
		neg = (header & NUMERIC_SHORT_SIGN_MASK) != 0;
		dscale = (header & NUMERIC_SHORT_DSCALE_MASK) >> NUMERIC_SHORT_DSCALE_SHIFT;
		weight = (header & NUMERIC_SHORT_WEIGHT_SIGN_MASK ? ~NUMERIC_SHORT_WEIGHT_MASK : 0) |
			(header & NUMERIC_SHORT_WEIGHT_MASK);
		dp = p + 2;
	}
	else
	{
		if (len < 4)
			return false;
		neg = (header & NUMERIC_SIGN_MASK) == NUMERIC_NEG;
		dscale = header & NUMERIC_DSCALE_MASK;
		weight = (int16_t) get_le(p + 2, 2);
		dp = p + 4;
	}
	if ((len - (dp - p)) % 2 != 0)
		return false;
	ndigits = (int) ((len - (dp - p)) / 2);

	/* get_str_from_var */
	if (neg)
		buf_putc(out, '-');
	if (weight < 0)
		buf_putc(out, '0');
	else
	{
		for (int d = 0; d <= weight; d++)
		{
			int			dig = d < ndigits ? (int) (int16_t) get_le(dp + 2 * d, 2) : 0;

			if (d == 0)
				buf_printf(out, "%d", dig);
			else
				buf_printf(out, "%04d", dig);
		}
	}
	if (dscale > 0)
	{
		Buf			frac = {0};

		for (int d = weight + 1; (int) frac.len < dscale; d++)
		{
			int			dig = d >= 0 && d < ndigits ? (int) (int16_t) get_le(dp + 2 * d, 2) : 0;

			buf_printf(&frac, "%04d", dig);
		}
		buf_putc(out, '.');
		buf_put(out, frac.data, (size_t) dscale);
		free(frac.data);
	}
	return true;
}

static void
bytea_text(Buf *out, const uint8_t *p, uint32_t len)
{
	static const char hex[] = "0123456789abcdef";

	buf_puts(out, "\\x");
	for (uint32_t i = 0; i < len; i++)
	{
		buf_putc(out, hex[p[i] >> 4]);
		buf_putc(out, hex[p[i] & 15]);
	}
}

static int
fixed_len(uint32_t typid)
{
	switch (typid)
	{
		case BOOLOID:
		case CHAROID:
			return 1;
		case INT2OID:
			return 2;
		case INT4OID:
		case OIDOID:
		case FLOAT4OID:
		case DATEOID:
			return 4;
		case INT8OID:
		case FLOAT8OID:
		case TIMEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return 8;
		case TIMETZOID:
			return 12;
		case UUIDOID:
		case INTERVALOID:
			return 16;
		case NAMEOID:
			return 64;
		default:
			return -1;
	}
}

bool
value_text(Buf *out, uint32_t typid, int kind, const uint8_t **pp, const uint8_t *end)
{
	const uint8_t *p = *pp;

	if (kind == KIND_TEXT || kind == KIND_VARLENA)
	{
		uint32_t	len;

		if (end - p < 4)
			return false;
		len = (uint32_t) get_le(p, 4);
		p += 4;
		if ((size_t) (end - p) < len)
			return false;
		*pp = p + len;
		if (kind == KIND_TEXT)
		{
			buf_put(out, p, len);
			return true;
		}
		switch (typid)
		{
			case BYTEAOID:
				bytea_text(out, p, len);
				return true;
			case NUMERICOID:
				return numeric_text(out, p, len);
			default:
				/* text, varchar, bpchar, json, xml: the bytes are the text */
				buf_put(out, p, len);
				return true;
		}
	}
	else
	{
		int			n = fixed_len(typid);

		if (n < 0 || end - p < n)
			return false;
		*pp = p + n;
		switch (typid)
		{
			case BOOLOID:
				buf_putc(out, p[0] ? 't' : 'f');
				break;
			case CHAROID:
				/* charout: the byte, or \ooo for a high-bit one; nothing for \0 */
				if (p[0] & 0x80)
					buf_printf(out, "\\%03o", p[0]);
				else if (p[0])
					buf_putc(out, (char) p[0]);
				break;
			case INT2OID:
				buf_printf(out, "%d", (int16_t) get_le(p, 2));
				break;
			case INT4OID:
				buf_printf(out, "%d", (int32_t) get_le(p, 4));
				break;
			case OIDOID:
				buf_printf(out, "%u", (uint32_t) get_le(p, 4));
				break;
			case INT8OID:
				buf_printf(out, "%lld", (long long) (int64_t) get_le(p, 8));
				break;
			case FLOAT4OID:
				{
					uint32_t	bits = (uint32_t) get_le(p, 4);
					float		f;

					memcpy(&f, &bits, 4);
					float_text(out, f, true);
					break;
				}
			case FLOAT8OID:
				{
					uint64_t	bits = get_le(p, 8);
					double		d;

					memcpy(&d, &bits, 8);
					float_text(out, d, false);
					break;
				}
			case DATEOID:
				date_text(out, (int32_t) get_le(p, 4));
				break;
			case TIMEOID:
				time_part(out, (int64_t) get_le(p, 8));
				break;
			case TIMESTAMPOID:
				timestamp_text(out, (int64_t) get_le(p, 8), false);
				break;
			case TIMESTAMPTZOID:
				timestamp_text(out, (int64_t) get_le(p, 8), true);
				break;
			case TIMETZOID:
				timetz_text(out, (int64_t) get_le(p, 8), (int32_t) get_le(p + 8, 4));
				break;
			case INTERVALOID:
				interval_text(out, (int64_t) get_le(p, 8), (int32_t) get_le(p + 8, 4),
							  (int32_t) get_le(p + 12, 4));
				break;
			case UUIDOID:
				{
					char		t[37];

					id_text(p, t);
					buf_puts(out, t);
					break;
				}
			case NAMEOID:
				buf_put(out, p, strnlen((const char *) p, 64));
				break;
			default:
				return false;
		}
		return true;
	}
}
