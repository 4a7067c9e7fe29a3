/*
 * delta.c — the delta encoding of a column chunk's fixed-width values.
 *
 * Integer-like columns (ids, timestamps, dates) are mostly monotone or
 * narrow: the differences between neighbours are small numbers whose high
 * bytes are zero.  The encoding stores each value's difference from the one
 * before it (the first: from zero), wrapping modulo 2^(8 width) so that any
 * bit pattern round-trips, zigzag-mapped so that small negative differences
 * are small numbers too, and then byte-transposed: the low bytes of all
 * values first, then the next bytes, and so on.  Long runs of equal bytes
 * are what zstd compresses best, and a sequence with a constant step turns
 * into planes of one repeated byte.  The encoding keeps the length, so the
 * decoded chunk is the plain chunk byte for byte.
 *
 * Values are in the machine's byte order, as plain chunks hold them.
 */
#include <string.h>

#include "destor/codec.h"

bool
codec_delta_width_ok(int width)
{
	return width == 2 || width == 4 || width == 8;
}

static inline uint64_t
load_value(const uint8_t *p, int width)
{
	switch (width)
	{
		case 2:
			{
				uint16_t	v;

				memcpy(&v, p, 2);
				return v;
			}
		case 4:
			{
				uint32_t	v;

				memcpy(&v, p, 4);
				return v;
			}
		default:
			{
				uint64_t	v;

				memcpy(&v, p, 8);
				return v;
			}
	}
}

static inline void
store_value(uint8_t *p, int width, uint64_t v)
{
	switch (width)
	{
		case 2:
			{
				uint16_t	x = (uint16_t) v;

				memcpy(p, &x, 2);
				break;
			}
		case 4:
			{
				uint32_t	x = (uint32_t) v;

				memcpy(p, &x, 4);
				break;
			}
		default:
			memcpy(p, &v, 8);
			break;
	}
}

void
codec_delta_encode(const void *in, size_t count, int width, void *out)
{
	const uint8_t *src = in;
	uint8_t    *dst = out;
	int			bits = 8 * width;
	uint64_t	mask = width == 8 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
	uint64_t	prev = 0;

	for (size_t i = 0; i < count; i++)
	{
		uint64_t	v = load_value(src + i * width, width);
		uint64_t	d = (v - prev) & mask;
		uint64_t	z = ((d << 1) & mask) ^ (((d >> (bits - 1)) & 1) ? mask : 0);

		for (int b = 0; b < width; b++)
			dst[(size_t) b * count + i] = (uint8_t) (z >> (8 * b));
		prev = v;
	}
}

void
codec_delta_decode(const void *in, size_t count, int width, void *out)
{
	const uint8_t *src = in;
	uint8_t    *dst = out;
	uint64_t	mask = width == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * width)) - 1;
	uint64_t	prev = 0;

	for (size_t i = 0; i < count; i++)
	{
		uint64_t	z = 0;
		uint64_t	d;

		for (int b = 0; b < width; b++)
			z |= (uint64_t) src[(size_t) b * count + i] << (8 * b);
		d = (z >> 1) ^ ((z & 1) ? mask : 0);
		prev = (prev + d) & mask;
		store_value(dst + i * width, width, prev);
	}
}
