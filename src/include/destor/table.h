/*
 * table.h — destor foreign tables: rows stored as columnar segments.
 *
 * A segment is one destor object holding up to segment_rows rows, cut into
 * row groups of row_group_rows rows; inside a row group each column is one
 * zstd-compressed chunk.  The segment's directory (where each chunk is, how
 * it is encoded) and per-row-group min/max/null counts live in the catalog,
 * so a scan plans its reads (and skips segments and row groups) without
 * asking any provider; the directory is also stored at the end of the
 * object so a segment describes itself.
 *
 * A table is identified by its table_id option (a UUID added by an event
 * trigger at CREATE FOREIGN TABLE), which survives renames and dump/restore.
 */
#ifndef DESTOR_TABLE_H
#define DESTOR_TABLE_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "nodes/pg_list.h"
#include "utils/relcache.h"

#include "destor/object.h"

#define TABLE_DEFAULT_SEGMENT_ROWS		1000000
#define TABLE_DEFAULT_ROW_GROUP_ROWS	10000
#define TABLE_DEFAULT_COMPRESSION_LEVEL 1

typedef struct TableOptions
{
	uint8		table_id[CODEC_OBJID_LEN];
	bool		has_table_id;
	int			segment_rows;
	int			row_group_rows;
	int			compression_level;
	char	   *pool;			/* server name */
} TableOptions;

extern void table_validate_options(List *options);
extern TableOptions *table_get_options(Oid relid);

/* How a column's values are stored (see value_codec.c). */
typedef enum ValueKind
{
	VALUE_FIXED = 1,			/* built-in fixed-length type: raw bytes */
	VALUE_VARLENA = 2,			/* built-in varlena type: raw bytes of the value */
	VALUE_TEXT = 3				/* anything else: the type's text form */
} ValueKind;

extern ValueKind value_kind_for_type(Oid typid);

/* Where one column chunk of one row group is inside the segment object. */
typedef struct ChunkEntry
{
	uint64		offset;
	uint32		length;			/* compressed bytes */
	uint32		raw_length;
	uint32		null_count;
	uint8		kind;			/* ValueKind */
	uint8		encoding;		/* ChunkEncoding of the values */
} ChunkEntry;

/* How a chunk's values are laid out before zstd (after its null bitmap). */
typedef enum ChunkEncoding
{
	CHUNK_PLAIN = 0,			/* as value_codec.c writes them */
	CHUNK_DELTA = 1				/* fixed-width values, codec_delta_encode'd */
} ChunkEncoding;

/* The directory of a segment: rows, row groups, and one entry per
 * (row group, column) for the columns stored (by attnum). */
typedef struct SegmentDirectory
{
	int64		segment_no;
	uint8		object_id[CODEC_OBJID_LEN];
	int64		row_count;
	int			nrowgroups;
	int			ncols;			/* attnums 1..ncols stored at write time */
	Oid		   *typids;			/* per stored column */
	uint8	   *kinds;			/* per stored column: ValueKind */
	uint32	   *rg_rows;		/* rows of each row group */
	ChunkEntry *chunks;			/* nrowgroups * ncols, row group major */
	char	  **rg_min;			/* per chunk: text form, NULL if unknown */
	char	  **rg_max;
	uint64	   *seg_nulls;		/* per column, whole segment */
	char	  **seg_min;
	char	  **seg_max;
	/* deleted rows (visible to the reading snapshot); NULL when none */
	uint8	   *deleted;
	int64		deleted_count;
	/* dead rows VACUUM has dealt with (deleted for every snapshot): stored
	 * as tombstones, their values dropped and their row numbers kept, or
	 * left as they were where a rewrite would not have been smaller (see
	 * am_vac_rewrite) */
	int64		pruned;
	/* the statement reading it wrote it (segment_writer_pending): its
	 * object's metadata, not read from the catalog; or NULL */
	struct ObjectMeta *meta;
	/* rows still buffered by a writer: one row group, each column's raw
	 * chunk in memory (no object); or NULL */
	char	  **mem_chunks;
} SegmentDirectory;

/* Row identity of a table row, carried in a tid: the segment's position in
 * the snapshot's segment list (21 bits) and the row in the segment (26 bits). */
#define TABLE_ROW_BITS		26
#define TABLE_MAX_SEGMENT_ROWS	(1 << TABLE_ROW_BITS)
#define TABLE_MAX_SEGMENTS	(1 << 21)

extern bytea *segment_directory_serialize(SegmentDirectory *dir);
extern SegmentDirectory *segment_directory_parse(bytea *raw);

/* segment_write.c */
typedef struct SegmentWriter SegmentWriter;

extern SegmentWriter *segment_writer_create(Relation rel, TableOptions *opts);
extern void segment_writer_add(SegmentWriter *w, Datum *values, bool *nulls);
extern void segment_writer_finish(SegmentWriter *w);
extern int64 segment_writer_rows(SegmentWriter *w);
extern bool segment_writer_unrecorded(SegmentWriter *w, bool flush);
typedef int64 (*SegmentNumberFn) (void *arg);
extern void segment_writer_set_numbering(SegmentWriter *w, SegmentNumberFn fn, void *arg);
extern int64 segment_writer_next_row(SegmentWriter *w, int64 *segment_no);
extern int64 segment_writer_segment_no(SegmentWriter *w);
extern List *segment_writer_recorded(SegmentWriter *w);
extern List *segment_writer_written(SegmentWriter *w);
extern bool segment_writer_sending(SegmentWriter *w, int64 segment_no);
extern List *segment_writer_pending(SegmentWriter *w);
extern void segment_writer_flush(SegmentWriter *w);
extern void segment_writer_replace(SegmentWriter *w, int64 segment_no, int ncols, int64 pruned);
extern void segment_writer_end_rowgroup(SegmentWriter *w);

/* table_fdw.c */
extern void table_fdw_init(void);

#endif							/* DESTOR_TABLE_H */
