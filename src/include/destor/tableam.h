/*
 * tableam.h — the table access method destor (CREATE TABLE ... USING
 * destor): rows stored as the foreign tables' columnar segments (see
 * src/tableam/tableam.c and docs/ARCHITECTURE.md, "Table access method").
 */
#ifndef DESTOR_TABLEAM_H
#define DESTOR_TABLEAM_H

#include "access/relscan.h"
#include "nodes/pathnodes.h"
#include "utils/rel.h"

extern void tableam_init(void);
extern bool am_is_destor(Relation rel);
extern void am_scan_restrict(TableScanDesc sscan, Bitmapset *attrs, List *quals, Index scanrelid);
extern void am_scan_counts(TableScanDesc sscan, int64 *total, int64 *pruned, int64 *read);
extern struct DestorScan *am_scan_destor(TableScanDesc sscan);
extern bool am_backend_buffers(void);

/* tableam_path.c: scans that read only the columns and row groups a plan needs */
extern void am_add_scan_path(PlannerInfo *root, RelOptInfo *rel, Index rti, Relation r,
							 bool parallel_ok);
extern void tableam_path_init(void);

/* tableam_ddl.c: ALTER COLUMN TYPE that destor tables cannot follow */
extern void tableam_ddl_init(void);
extern void am_set_vacuum_full(bool on);

#endif							/* DESTOR_TABLEAM_H */
