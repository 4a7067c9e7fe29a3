/*
 * value_codec.c — encoding one column's values (see segment_format.c for
 * why built-in types are raw and the rest are text).
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "table_internal.h"

/*
 * destor.chunk_encoding: "auto" (the default) lets the writer delta-encode
 * the chunks of integer-like columns when that compresses better; "plain"
 * writes every chunk as releases before the encodings did (segment
 * directories in format DDIR1), for a reader of such a release.
 */
typedef enum ChunkEncodingSetting
{
	CHUNK_ENCODING_AUTO,
	CHUNK_ENCODING_PLAIN
} ChunkEncodingSetting;

static const struct config_enum_entry chunk_encoding_options[] = {
	{"auto", CHUNK_ENCODING_AUTO, false},
	{"plain", CHUNK_ENCODING_PLAIN, false},
	{NULL, 0, false}
};

static int	chunk_encoding_setting = CHUNK_ENCODING_AUTO;

void
value_codec_define_gucs(void)
{
	DefineCustomEnumVariable("destor.chunk_encoding",
							 "How the column chunks of destor tables are encoded before compression.",
							 "auto: integer-like columns are delta-encoded where that is smaller; "
							 "plain: as releases before 0.2.0 wrote them.",
							 &chunk_encoding_setting, CHUNK_ENCODING_AUTO, chunk_encoding_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
}

/*
 * column_delta_width: the width of a column's values when the writer should
 * try the delta encoding on its chunks, else 0.  Integer-like types only
 * (integers, dates, times, timestamps): ids and times are monotone or
 * narrow.  Floats gain nothing from it (their low bits are noise), and the
 * try costs a second compression of the chunk.
 */
int
column_delta_width(ColumnCodec *cc)
{
	if (cc->dropped || cc->kind != VALUE_FIXED || !cc->typbyval ||
		chunk_encoding_setting != CHUNK_ENCODING_AUTO)
		return 0;
	switch (cc->basetype)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case DATEOID:
		case TIMEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			Assert(codec_delta_width_ok(cc->typlen));
			return cc->typlen;
		default:
			return 0;
	}
}

/*
 * Text forms (statistics, and values of non-built-in types) are written and
 * read under fixed settings, as pg_dump does, so that they mean the same
 * thing whatever the session's DateStyle, IntervalStyle, TimeZone,
 * extra_float_digits or search_path.  Undone by text_io_leave, or by the
 * abort of the transaction if an ERROR intervenes.
 */
int
text_io_enter(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("datestyle", "ISO, YMD", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("intervalstyle", "postgres", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("extra_float_digits", "3", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("timezone", "UTC", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("search_path", "pg_catalog", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

void
text_io_leave(int level)
{
	AtEOXact_GUC(true, level);
}

void
column_codec_init(ColumnCodec *cc, Form_pg_attribute att)
{
	Oid			outfn;
	Oid			infn;
	bool		isvarlena;
	TypeCacheEntry *tce;

	memset(cc, 0, sizeof(ColumnCodec));
	cc->attnum = att->attnum;
	cc->dropped = att->attisdropped;
	if (cc->dropped)
		return;
	cc->typid = att->atttypid;
	cc->basetype = getBaseType(att->atttypid);
	get_typlenbyval(cc->basetype, &cc->typlen, &cc->typbyval);
	cc->kind = value_kind_for_type(att->atttypid);
	cc->typmod = att->atttypmod;
	cc->collation = att->attcollation;
	getTypeOutputInfo(att->atttypid, &outfn, &isvarlena);
	fmgr_info(outfn, &cc->out);
	getTypeInputInfo(att->atttypid, &infn, &cc->ioparam);
	fmgr_info(infn, &cc->in);

	tce = lookup_type_cache(att->atttypid, TYPECACHE_CMP_PROC_FINFO);
	if (OidIsValid(tce->cmp_proc_finfo.fn_oid))
	{
		cc->has_cmp = true;
		fmgr_info_copy(&cc->cmp, &tce->cmp_proc_finfo, CurrentMemoryContext);
	}
}

static void
put_len(StringInfo buf, uint32 len)
{
	uint8		b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8) (len >> (8 * i));
	appendBinaryStringInfo(buf, (char *) b, 4);
}

void
value_encode(ColumnCodec *cc, Datum d, StringInfo buf)
{
	switch (cc->kind)
	{
		case VALUE_FIXED:
			if (cc->typbyval)
			{
				char		tmp[8];

				store_att_byval(tmp, d, cc->typlen);
				appendBinaryStringInfo(buf, tmp, cc->typlen);
			}
			else
				appendBinaryStringInfo(buf, DatumGetPointer(d), cc->typlen);
			break;
		case VALUE_VARLENA:
			{
				struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(d));
				uint32		len = VARSIZE_ANY_EXHDR(v);

				put_len(buf, len);
				appendBinaryStringInfo(buf, VARDATA_ANY(v), len);
				if ((Pointer) v != DatumGetPointer(d))
					pfree(v);
				break;
			}
		case VALUE_TEXT:
			{
				char	   *s = OutputFunctionCall(&cc->out, d);
				uint32		len = strlen(s);

				put_len(buf, len);
				appendBinaryStringInfo(buf, s, len);
				pfree(s);
				break;
			}
	}
}

static void
need(const uint8 *p, const uint8 *end, size_t n)
{
	if ((size_t) (end - p) < n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("destor column chunk is truncated")));
}

static uint32
get_len(const uint8 **p, const uint8 *end)
{
	uint32		v = 0;

	need(*p, end, 4);
	for (int i = 0; i < 4; i++)
		v |= (uint32) (*p)[i] << (8 * i);
	*p += 4;
	return v;
}

Datum
value_decode(ColumnCodec *cc, ValueKind kind, const uint8 **p, const uint8 *end)
{
	Datum		d;

	if (kind != cc->kind)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("column %d of a destor segment is stored in another form than its current type needs",
						cc->attnum),
				 errhint("The column's type may have been changed with ALTER FOREIGN TABLE; change it back.")));
	switch (kind)
	{
		case VALUE_FIXED:
			need(*p, end, cc->typlen);
			if (cc->typbyval)
			{
				Datum		aligned = 0;	/* fetch_att wants an aligned source */

				memcpy(&aligned, *p, cc->typlen);
				d = fetch_att(&aligned, true, cc->typlen);
			}
			else
			{
				char	   *v = palloc(cc->typlen);

				memcpy(v, *p, cc->typlen);
				d = PointerGetDatum(v);
			}
			*p += cc->typlen;
			return d;
		case VALUE_VARLENA:
			{
				uint32		len = get_len(p, end);
				struct varlena *v;

				need(*p, end, len);
				v = palloc(VARHDRSZ + len);
				SET_VARSIZE(v, VARHDRSZ + len);
				memcpy(VARDATA(v), *p, len);
				*p += len;
				return PointerGetDatum(v);
			}
		case VALUE_TEXT:
			{
				uint32		len = get_len(p, end);
				char	   *s;

				need(*p, end, len);
				s = pnstrdup((const char *) *p, len);
				*p += len;
				return InputFunctionCall(&cc->in, s, cc->ioparam, cc->typmod);
			}
	}
	return (Datum) 0;
}
