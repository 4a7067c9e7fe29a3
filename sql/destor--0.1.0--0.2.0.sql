-- destor 0.1.0 -> 0.2.0 (ALTER EXTENSION destor UPDATE).
-- A fresh CREATE EXTENSION runs destor--0.1.0.sql and then this script, so
-- every change of this release lives here and nowhere else.
\echo Use "ALTER EXTENSION destor UPDATE TO '0.2.0'" to load this file. \quit
