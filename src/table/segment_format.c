/*
 * segment_format.c — how values and segment directories are laid out.
 *
 * Values are stored in a form that stays valid across dump/restore and
 * pg_upgrade: built-in types as their raw bytes (their OIDs and on-disk
 * formats are fixed), every other type (enums, composites, user types,
 * OID-valued reg* types) as its text form.  A domain is stored as its base
 * type.
 *
 * Directory layout (little-endian):
 *   "DDIR2" | rows u64 | nrowgroups u32 | ncols u32
 *   per column: typid u32, kind u8
 *   per row group: rows u32
 *   per row group, per column: offset u64, length u32, raw_length u32,
 *       null_count u32, kind u8, encoding u8, has_minmax u8, [min: u32 len +
 *       bytes, max: u32 len + bytes]
 *   per column (segment summary): null_count u64, has_minmax u8, [min, max]
 *   optional: "PRUNE" | pruned rows u64
 *
 * A chunk's encoding (ChunkEncoding) says how its values lie between its
 * null bitmap and zstd: as written (0) or delta-encoded (1, codec_delta_encode
 * over the non-null fixed-width values); raw_length is the plain length
 * either way.  "DDIR1", the format before encodings, has no encoding byte
 * (every chunk plain); a directory whose chunks are all plain is still
 * written that way, so segments that use no encoding stay readable by
 * releases that do not know DDIR2.
 *
 * The optional "PRUNE" trailer (either format) counts the rows VACUUM stored
 * as tombstones: deleted for every snapshot, stored as NULL in every column
 * so that row numbers (the table access method's tids) stay.  Readers that
 * do not know it stop before it and lose nothing: the rows are deleted.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/lsyscache.h"

#include "destor/table.h"
#include "table_internal.h"

ValueKind
value_kind_for_type(Oid typid)
{
	Oid			base = getBaseType(typid);
	int16		typlen;
	bool		byval;
	char		typtype = get_typtype(base);

	if (base >= FirstNormalObjectId || typtype == TYPTYPE_ENUM ||
		typtype == TYPTYPE_COMPOSITE || typtype == TYPTYPE_PSEUDO)
		return VALUE_TEXT;
	switch (base)
	{
			/* these hold OIDs of objects that a restore renumbers */
		case REGCLASSOID:
		case REGPROCOID:
		case REGPROCEDUREOID:
		case REGOPEROID:
		case REGOPERATOROID:
		case REGTYPEOID:
		case REGCONFIGOID:
		case REGDICTIONARYOID:
		case REGNAMESPACEOID:
		case REGROLEOID:
		case REGCOLLATIONOID:
			return VALUE_TEXT;
		default:
			break;
	}
	/* arrays of non-built-in or OID-valued elements: text as well */
	{
		Oid			elem = get_element_type(base);

		if (OidIsValid(elem) && value_kind_for_type(elem) == VALUE_TEXT)
			return VALUE_TEXT;
	}
	get_typlenbyval(base, &typlen, &byval);
	if (typlen > 0)
		return VALUE_FIXED;
	if (typlen == -1)
		return VALUE_VARLENA;
	return VALUE_TEXT;
}

static void
put_u32(StringInfo buf, uint32 v)
{
	uint8		b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8) (v >> (8 * i));
	appendBinaryStringInfo(buf, (char *) b, 4);
}

static void
put_u64(StringInfo buf, uint64 v)
{
	uint8		b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8) (v >> (8 * i));
	appendBinaryStringInfo(buf, (char *) b, 8);
}

static void
put_str(StringInfo buf, const char *s)
{
	uint32		len = strlen(s);

	put_u32(buf, len);
	appendBinaryStringInfo(buf, s, len);
}

typedef struct Cursor
{
	const uint8 *p;
	const uint8 *end;
} Cursor;

static void
need(Cursor *c, size_t n)
{
	if ((size_t) (c->end - c->p) < n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("destor segment directory is truncated")));
}

static uint32
get_u32(Cursor *c)
{
	uint32		v = 0;

	need(c, 4);
	for (int i = 0; i < 4; i++)
		v |= (uint32) c->p[i] << (8 * i);
	c->p += 4;
	return v;
}

static uint64
get_u64(Cursor *c)
{
	uint64		v = 0;

	need(c, 8);
	for (int i = 0; i < 8; i++)
		v |= (uint64) c->p[i] << (8 * i);
	c->p += 8;
	return v;
}

static uint8
get_u8(Cursor *c)
{
	need(c, 1);
	return *c->p++;
}

static char *
get_str(Cursor *c)
{
	uint32		len = get_u32(c);

	need(c, len);
	c->p += len;
	return pnstrdup((const char *) c->p - len, len);
}

static void
put_minmax(StringInfo buf, char *min, char *max)
{
	if (min && max)
	{
		appendStringInfoChar(buf, 1);
		put_str(buf, min);
		put_str(buf, max);
	}
	else
		appendStringInfoChar(buf, 0);
}

bytea *
segment_directory_serialize(SegmentDirectory *dir)
{
	StringInfoData buf;
	bytea	   *result;
	bool		encoded = false;

	for (int i = 0; i < dir->nrowgroups * dir->ncols; i++)
		if (dir->chunks[i].encoding != CHUNK_PLAIN)
			encoded = true;
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, encoded ? "DDIR2" : "DDIR1", 5);
	put_u64(&buf, dir->row_count);
	put_u32(&buf, dir->nrowgroups);
	put_u32(&buf, dir->ncols);
	for (int c = 0; c < dir->ncols; c++)
	{
		put_u32(&buf, dir->typids[c]);
		appendStringInfoChar(&buf, (char) dir->kinds[c]);
	}
	for (int g = 0; g < dir->nrowgroups; g++)
		put_u32(&buf, dir->rg_rows[g]);
	for (int i = 0; i < dir->nrowgroups * dir->ncols; i++)
	{
		ChunkEntry *e = &dir->chunks[i];

		put_u64(&buf, e->offset);
		put_u32(&buf, e->length);
		put_u32(&buf, e->raw_length);
		put_u32(&buf, e->null_count);
		appendStringInfoChar(&buf, (char) e->kind);
		if (encoded)
			appendStringInfoChar(&buf, (char) e->encoding);
		put_minmax(&buf, dir->rg_min[i], dir->rg_max[i]);
	}
	for (int c = 0; c < dir->ncols; c++)
	{
		put_u64(&buf, dir->seg_nulls[c]);
		put_minmax(&buf, dir->seg_min[c], dir->seg_max[c]);
	}
	if (dir->pruned > 0)
	{
		appendBinaryStringInfo(&buf, "PRUNE", 5);
		put_u64(&buf, (uint64) dir->pruned);
	}

	result = palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(result, VARHDRSZ + buf.len);
	memcpy(VARDATA(result), buf.data, buf.len);
	pfree(buf.data);
	return result;
}

static void
get_minmax(Cursor *c, char **min, char **max)
{
	if (get_u8(c))
	{
		*min = get_str(c);
		*max = get_str(c);
	}
	else
		*min = *max = NULL;
}

SegmentDirectory *
segment_directory_parse(bytea *raw)
{
	SegmentDirectory *dir = palloc0(sizeof(SegmentDirectory));
	Cursor		c;
	int			n;
	bool		encoded;

	c.p = (const uint8 *) VARDATA_ANY(raw);
	c.end = c.p + VARSIZE_ANY_EXHDR(raw);
	need(&c, 5);
	encoded = memcmp(c.p, "DDIR2", 5) == 0;
	if (!encoded && memcmp(c.p, "DDIR1", 5) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("destor segment directory has an unknown format")));
	c.p += 5;
	dir->row_count = get_u64(&c);
	dir->nrowgroups = get_u32(&c);
	dir->ncols = get_u32(&c);
	if (dir->nrowgroups > 100000000 || dir->ncols > MaxHeapAttributeNumber)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("destor segment directory is malformed")));
	dir->typids = palloc(sizeof(Oid) * Max(dir->ncols, 1));
	dir->kinds = palloc(sizeof(uint8) * Max(dir->ncols, 1));
	for (int i = 0; i < dir->ncols; i++)
	{
		dir->typids[i] = get_u32(&c);
		dir->kinds[i] = get_u8(&c);
	}
	dir->rg_rows = palloc(sizeof(uint32) * Max(dir->nrowgroups, 1));
	for (int g = 0; g < dir->nrowgroups; g++)
		dir->rg_rows[g] = get_u32(&c);
	n = dir->nrowgroups * dir->ncols;
	dir->chunks = palloc0(sizeof(ChunkEntry) * Max(n, 1));
	dir->rg_min = palloc0(sizeof(char *) * Max(n, 1));
	dir->rg_max = palloc0(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		ChunkEntry *e = &dir->chunks[i];

		e->offset = get_u64(&c);
		e->length = get_u32(&c);
		e->raw_length = get_u32(&c);
		e->null_count = get_u32(&c);
		e->kind = get_u8(&c);
		e->encoding = encoded ? get_u8(&c) : CHUNK_PLAIN;
		if (e->encoding > CHUNK_DELTA)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("destor segment directory names an unknown chunk encoding %d",
							e->encoding),
					 errhint("The segment may have been written by a newer release of destor.")));
		get_minmax(&c, &dir->rg_min[i], &dir->rg_max[i]);
	}
	dir->seg_nulls = palloc0(sizeof(uint64) * Max(dir->ncols, 1));
	dir->seg_min = palloc0(sizeof(char *) * Max(dir->ncols, 1));
	dir->seg_max = palloc0(sizeof(char *) * Max(dir->ncols, 1));
	for (int col = 0; col < dir->ncols; col++)
	{
		dir->seg_nulls[col] = get_u64(&c);
		get_minmax(&c, &dir->seg_min[col], &dir->seg_max[col]);
	}
	if (c.end - c.p >= 5 && memcmp(c.p, "PRUNE", 5) == 0)
	{
		c.p += 5;
		dir->pruned = (int64) get_u64(&c);
		if (dir->pruned < 0 || dir->pruned > dir->row_count)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("destor segment directory is malformed")));
	}
	return dir;
}

/*
 * chunk_decode: a chunk's plain form (out, raw_length bytes) from its
 * decompressed, encoded form (in): the null bitmap as it is, the values
 * decoded.  The values' width follows from the lengths, which the
 * directory records.
 */
void
chunk_decode(const ChunkEntry *e, uint32 rows, const char *in, char *out)
{
	uint32		bitmap_len = (rows + 7) / 8;
	uint32		count = rows - Min(e->null_count, rows);
	uint32		bytes;
	int			width;

	if (e->raw_length < bitmap_len || e->null_count > rows)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a destor column chunk is truncated")));
	bytes = e->raw_length - bitmap_len;
	memcpy(out, in, bitmap_len);
	if (count == 0 && bytes == 0)
		return;
	width = count > 0 && bytes % count == 0 ? (int) (bytes / count) : 0;
	if (e->encoding != CHUNK_DELTA || e->kind != VALUE_FIXED || !codec_delta_width_ok(width))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a destor column chunk has an encoding its values do not fit"),
				 errdetail("Encoding %d, %u values in %u bytes.", e->encoding, count, bytes)));
	codec_delta_decode(in + bitmap_len, count, width, out + bitmap_len);
}
