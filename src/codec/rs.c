/*
 * rs.c — systematic Reed–Solomon erasure coding on top of ISA-L.
 *
 * The generator is the (k+m) x k matrix of gf_gen_cauchy1_matrix(): identity
 * on top (shards 0..k-1 are the data itself), Cauchy rows below (parity).
 * Every k x k submatrix is invertible, so any k surviving shards rebuild all
 * others.  Exception: for k = 1 the parity rows are set to 1, so parity
 * shards are byte-for-byte replicas of the data shard (the plain Cauchy row
 * 1/i would give scaled copies, which is equally MDS but useless to a human
 * or tool looking at a "replica").  This is part of the stored format.
 *
 * Encode tables are computed once per codec_rs; reconstruct builds its
 * decode tables per call on the stack (no allocation).
 */
#include "destor/codec.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>

/* ec_encode_data takes an int length: feed it in chunks of at most this. */
#define RS_CHUNK	((size_t) 1 << 30)

struct codec_rs
{
	int			k;
	int			m;
	/* (k+m) x k generator matrix, row-major */
	unsigned char matrix[CODEC_RS_MAX_SHARDS * CODEC_RS_MAX_DATA];
	/* expanded tables of the m parity rows: 32 * k * m bytes */
	unsigned char gftbls[32 * CODEC_RS_MAX_DATA * CODEC_RS_MAX_PARITY];
};

codec_rs *
codec_rs_create(int k, int m)
{
	codec_rs   *rs;

	if (k < 1 || k > CODEC_RS_MAX_DATA || m < 0 || m > CODEC_RS_MAX_PARITY)
		return NULL;

	rs = calloc(1, sizeof(*rs));
	if (rs == NULL)
		return NULL;
	rs->k = k;
	rs->m = m;

	gf_gen_cauchy1_matrix(rs->matrix, k + m, k);
	if (k == 1)
	{
		/* replicas: every parity row is [1] */
		for (int p = 0; p < m; p++)
			rs->matrix[1 + p] = 1;
	}
	if (m > 0)
		ec_init_tables(k, m, rs->matrix + k * k, rs->gftbls);
	return rs;
}

void
codec_rs_free(codec_rs *rs)
{
	free(rs);
}

int
codec_rs_data_shards(const codec_rs *rs)
{
	return rs->k;
}

int
codec_rs_parity_shards(const codec_rs *rs)
{
	return rs->m;
}

/* Run ec_encode_data over len bytes, chunked to fit its int length. */
static void
rs_apply(size_t len, int k, int rows, unsigned char *tbls,
		 uint8_t *const *src, uint8_t *const *dst)
{
	unsigned char *s[CODEC_RS_MAX_SHARDS];
	unsigned char *d[CODEC_RS_MAX_SHARDS];
	size_t		off = 0;

	while (off < len)
	{
		size_t		n = len - off;

		if (n > RS_CHUNK)
			n = RS_CHUNK;
		for (int i = 0; i < k; i++)
			s[i] = src[i] + off;
		for (int i = 0; i < rows; i++)
			d[i] = dst[i] + off;
		ec_encode_data((int) n, k, rows, tbls, s, d);
		off += n;
	}
}

void
codec_rs_encode(const codec_rs *rs, size_t len,
				uint8_t *const *data, uint8_t *const *parity)
{
	if (rs->m == 0 || len == 0)
		return;
	rs_apply(len, rs->k, rs->m, (unsigned char *) rs->gftbls, data, parity);
}

/*
 * Rebuild the shards not present (data_only: the data shards only — a
 * reader opens data, and rebuilding absent parity too cost a full encode
 * per window read from the k fastest shards, parity left out).
 */
static int
rs_rebuild(const codec_rs *rs, size_t len, uint8_t *const *shards, const bool *present,
		   bool data_only)
{
	const int	k = rs->k;
	const int	n = rs->k + rs->m;
	int			src_idx[CODEC_RS_MAX_DATA];
	int			miss_idx[CODEC_RS_MAX_SHARDS];
	int			nsrc = 0;
	int			nmiss = 0;
	unsigned char sub[CODEC_RS_MAX_DATA * CODEC_RS_MAX_DATA];
	unsigned char inv[CODEC_RS_MAX_DATA * CODEC_RS_MAX_DATA];
	/* once nsrc == k, at most m <= CODEC_RS_MAX_PARITY shards are missing */
	unsigned char dec[CODEC_RS_MAX_PARITY * CODEC_RS_MAX_DATA];
	unsigned char tbls[32 * CODEC_RS_MAX_DATA * CODEC_RS_MAX_PARITY];
	uint8_t    *srcp[CODEC_RS_MAX_DATA];
	uint8_t    *dstp[CODEC_RS_MAX_SHARDS];

	for (int i = 0; i < n; i++)
	{
		if (present[i])
		{
			if (nsrc < k)
				src_idx[nsrc++] = i;
		}
		else if (i < k || !data_only)
			miss_idx[nmiss++] = i;
	}
	if (nsrc < k)
		return -1;
	if (nmiss == 0)
		return 0;

	/* Rows of the generator for the k chosen survivors, then invert. */
	for (int r = 0; r < k; r++)
		memcpy(sub + r * k, rs->matrix + src_idx[r] * k, k);
	if (gf_invert_matrix(sub, inv, k) != 0)
		return -1;				/* cannot happen for a Cauchy generator */

	/*
	 * inv maps survivors to data shards.  A missing data shard e is row e of
	 * inv; a missing parity shard e is generator row e times inv.
	 */
	for (int i = 0; i < nmiss; i++)
	{
		int			e = miss_idx[i];
		unsigned char *row = dec + i * k;

		if (e < k)
			memcpy(row, inv + e * k, k);
		else
		{
			const unsigned char *g = rs->matrix + e * k;

			for (int j = 0; j < k; j++)
			{
				unsigned char acc = 0;

				for (int t = 0; t < k; t++)
					acc ^= gf_mul(g[t], inv[t * k + j]);
				row[j] = acc;
			}
		}
	}

	if (len == 0)
		return 0;

	ec_init_tables(k, nmiss, dec, tbls);
	for (int i = 0; i < k; i++)
		srcp[i] = shards[src_idx[i]];
	for (int i = 0; i < nmiss; i++)
		dstp[i] = shards[miss_idx[i]];
	rs_apply(len, k, nmiss, tbls, srcp, dstp);
	return 0;
}

int
codec_rs_reconstruct(const codec_rs *rs, size_t len,
					 uint8_t *const *shards, const bool *present)
{
	return rs_rebuild(rs, len, shards, present, false);
}

int
codec_rs_reconstruct_data(const codec_rs *rs, size_t len,
						  uint8_t *const *shards, const bool *present)
{
	return rs_rebuild(rs, len, shards, present, true);
}
