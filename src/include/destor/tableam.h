/*
 * tableam.h — the table access method destor (CREATE TABLE ... USING
 * destor): rows stored as the foreign tables' columnar segments (see
 * src/tableam/tableam.c and docs/ARCHITECTURE.md, "Table access method").
 */
#ifndef DESTOR_TABLEAM_H
#define DESTOR_TABLEAM_H

extern void tableam_init(void);

#endif							/* DESTOR_TABLEAM_H */
