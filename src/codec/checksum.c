/*
 * checksum.c — CRC-64 of shard data (ISA-L crc64_ecma_refl).
 *
 * ISA-L inverts the seed on entry and the result on exit, so
 * codec_crc64(0, "123456789", 9) is the CRC-64/XZ check value
 * 0x995dc9bbdf1939fa and results chain: crc(crc(0, a), b) == crc(0, a || b).
 */
#include "destor/codec.h"

#include <isa-l/crc64.h>

uint64_t
codec_crc64(uint64_t seed, const void *data, size_t len)
{
	if (len == 0)
		return seed;
	return crc64_ecma_refl(seed, (const unsigned char *) data, (uint64_t) len);
}
