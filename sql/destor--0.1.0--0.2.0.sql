-- destor 0.1.0 -> 0.2.0 (ALTER EXTENSION destor UPDATE).
-- A fresh CREATE EXTENSION runs destor--0.1.0.sql and then this script, so
-- every change of this release lives here and nowhere else.
\echo Use "ALTER EXTENSION destor UPDATE TO '0.2.0'" to load this file. \quit

-- Progress of long commands, like pg_stat_progress_copy (src/progress/).
CREATE FUNCTION progress_report(OUT pid int, OUT datid oid, OUT command text, OUT relid oid,
    OUT target text, OUT phase text, OUT bytes_done bigint, OUT bytes_total bigint,
    OUT objects_done bigint, OUT objects_total bigint, OUT started timestamptz, OUT userid oid)
  RETURNS SETOF record AS 'MODULE_PATHNAME', 'destor_progress_report' LANGUAGE C STRICT VOLATILE;
CREATE VIEW progress AS
  SELECT p.pid, p.datid, d.datname, p.command, p.relid, p.target, p.phase,
         p.bytes_done, p.bytes_total, p.objects_done, p.objects_total, p.started,
         p.userid::regrole AS usename
    FROM progress_report() p LEFT JOIN pg_database d ON d.oid = p.datid;
GRANT SELECT ON progress TO PUBLIC;
