/*
 * table_internal.h — what the table layer's files share: per-column codecs
 * and catalog access for segments.
 */
#ifndef DESTOR_TABLE_INTERNAL_H
#define DESTOR_TABLE_INTERNAL_H

#include "access/attnum.h"
#include "catalog/pg_attribute.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/snapshot.h"

#include "destor/table.h"

typedef struct ColumnCodec
{
	AttrNumber	attnum;
	bool		dropped;
	Oid			typid;			/* the column's type (maybe a domain) */
	Oid			basetype;
	int16		typlen;			/* of the base type */
	bool		typbyval;
	ValueKind	kind;
	FmgrInfo	out;			/* text form: output and input functions */
	FmgrInfo	in;
	Oid			ioparam;
	int32		typmod;
	Oid			collation;
	bool		has_cmp;		/* a btree comparison exists: keep min/max */
	FmgrInfo	cmp;
} ColumnCodec;

extern void column_codec_init(ColumnCodec *cc, Form_pg_attribute att);
extern int	text_io_enter(void);
extern void text_io_leave(int level);
extern void value_encode(ColumnCodec *cc, Datum d, StringInfo buf);
extern Datum value_decode(ColumnCodec *cc, ValueKind kind, const uint8 **p, const uint8 *end);

/* catalog_table.c */
extern void catalog_insert_segment(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no,
								   const uint8 object_id[CODEC_OBJID_LEN], int64 rows,
								   bytea *directory);
extern int64 catalog_next_segment_no(void);
/* of SegmentDirectory*, as the snapshot sees them (NULL: a fresh one) */
extern List *catalog_table_segments(const uint8 table_id[CODEC_OBJID_LEN], Snapshot snapshot);
extern void catalog_insert_deletions(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no,
									 const uint8 *bitmap, size_t len);
extern int64 catalog_count_deletions(const uint8 table_id[CODEC_OBJID_LEN], Snapshot snapshot);
extern List *catalog_delete_table_segments(const uint8 table_id[CODEC_OBJID_LEN]); /* object ids (uint8 *) */
extern void catalog_retire_segment(const uint8 table_id[CODEC_OBJID_LEN], int64 segment_no,
								   const uint8 object_id[CODEC_OBJID_LEN]);
extern int64 catalog_table_row_count(const uint8 table_id[CODEC_OBJID_LEN]);
/* table identity (destor.tables) */
extern bool catalog_table_id_of_rel(Oid relid, uint8 table_id[CODEC_OBJID_LEN]);
extern bool catalog_rel_of_table_id(const uint8 table_id[CODEC_OBJID_LEN], Oid *relid,
									bool *has_data);
extern void catalog_bind_table(const uint8 table_id[CODEC_OBJID_LEN], Oid relid);

#endif							/* DESTOR_TABLE_INTERNAL_H */
