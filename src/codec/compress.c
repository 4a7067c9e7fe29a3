/*
 * compress.c — zstd compression of object blocks.
 *
 * One compression and one decompression context are created lazily and
 * reused (the backend is single-threaded; they stay allocated for the life
 * of the process).  Frames carry zstd's content checksum, so corruption
 * that survives the outer layers is still reported as a failure rather
 * than as silently wrong output.
 */
#include <stdlib.h>

#include "destor/codec.h"

#include <zstd.h>

static ZSTD_CCtx *codec_cctx;
static ZSTD_DCtx *codec_dctx;

size_t
codec_compress_bound(size_t len)
{
	return ZSTD_compressBound(len);
}

size_t
codec_compress(const void *in, size_t len, void *out, size_t outcap, int level)
{
	size_t		r;

	if (len == 0)
		return 0;
	if (codec_cctx == NULL)
	{
		codec_cctx = ZSTD_createCCtx();
		if (codec_cctx == NULL)
			return 0;
	}
	/* forget whatever a previous (possibly failed) call left behind */
	if (ZSTD_isError(ZSTD_CCtx_reset(codec_cctx, ZSTD_reset_session_and_parameters)))
		return 0;
	if (level < ZSTD_minCLevel())
		level = ZSTD_minCLevel();
	if (level > ZSTD_maxCLevel())
		level = ZSTD_maxCLevel();
	if (ZSTD_isError(ZSTD_CCtx_setParameter(codec_cctx, ZSTD_c_compressionLevel, level)) ||
		ZSTD_isError(ZSTD_CCtx_setParameter(codec_cctx, ZSTD_c_checksumFlag, 1)))
		return 0;

	r = ZSTD_compress2(codec_cctx, out, outcap, in, len);
	if (ZSTD_isError(r) || r >= len)
		return 0;
	return r;
}

int
codec_decompress(const void *in, size_t len, void *out, size_t outcap,
				 size_t *outlen)
{
	size_t		r;

	/* codec_compress never produces an empty frame; zstd would accept it */
	if (len == 0)
		return -1;
	if (codec_dctx == NULL)
	{
		codec_dctx = ZSTD_createDCtx();
		if (codec_dctx == NULL)
			return -1;
	}
	r = ZSTD_decompressDCtx(codec_dctx, out, outcap, in, len);
	if (ZSTD_isError(r))
		return -1;
	*outlen = r;
	return 0;
}

/* ---------- explicit contexts, one per thread ---------- */
struct codec_zctx
{
	ZSTD_CCtx  *cctx;
};

codec_zctx *
codec_zctx_create(void)
{
	codec_zctx *z = malloc(sizeof(codec_zctx));

	if (z == NULL)
		return NULL;
	z->cctx = ZSTD_createCCtx();
	if (z->cctx == NULL)
	{
		free(z);
		return NULL;
	}
	return z;
}

void
codec_zctx_free(codec_zctx *z)
{
	if (z == NULL)
		return;
	ZSTD_freeCCtx(z->cctx);
	free(z);
}

size_t
codec_compress_ctx(codec_zctx *z, const void *in, size_t len, void *out, size_t outcap, int level)
{
	size_t		r;

	if (len == 0 || z == NULL)
		return 0;
	if (ZSTD_isError(ZSTD_CCtx_reset(z->cctx, ZSTD_reset_session_and_parameters)))
		return 0;
	if (level < ZSTD_minCLevel())
		level = ZSTD_minCLevel();
	if (level > ZSTD_maxCLevel())
		level = ZSTD_maxCLevel();
	if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, level)) ||
		ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1)))
		return 0;
	r = ZSTD_compress2(z->cctx, out, outcap, in, len);
	if (ZSTD_isError(r) || r >= len)
		return 0;
	return r;
}
