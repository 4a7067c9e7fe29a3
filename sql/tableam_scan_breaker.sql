-- Adversarial review of the DestorScan custom scan of tables USING destor
-- (issue 14; src/tableam/tableam_path.c): every answer is what a heap table
-- with the same rows gives, or a refusal up front (F1, F2:
-- src/tableam/tableam_ddl.c).  F3 (values stored in text form after enum,
-- composite and domain DDL) is a known limit: tableam_text_values_todo.sql.
\i test/regress/setup.sql
SET destor.default_pool = 'mirror';

-- F1: a collation change does not rewrite the table, and the row groups'
-- min/max were computed under the old collation: refused, so pruning never
-- works under a collation its statistics were not ordered by
CREATE TABLE br_coll_am (id int, t text COLLATE "en-x-icu") USING destor;
CREATE TABLE br_coll_heap (id int, t text COLLATE "en-x-icu");
INSERT INTO br_coll_am SELECT i, CASE WHEN i % 2 = 0 THEN 'a' || i ELSE 'B' || i END
  FROM generate_series(1, 100) i;
INSERT INTO br_coll_heap SELECT * FROM br_coll_am;
ALTER TABLE br_coll_am ALTER COLUMN t TYPE text COLLATE "C";
SELECT (SELECT count(*) FROM br_coll_am WHERE t < 'a') AS am,
       (SELECT count(*) FROM br_coll_heap WHERE t < 'a') AS heap;
SELECT (SELECT count(*) FROM br_coll_am WHERE t > 'B99') AS am,
       (SELECT count(*) FROM br_coll_heap WHERE t > 'B99') AS heap;
DROP TABLE br_coll_am, br_coll_heap;

-- F2: varchar -> text is binary coercible, PostgreSQL does not rewrite:
-- refused up front, as is any type change (the rewrite would read the
-- stored values as the new type), so the column stays readable; through a
-- partitioned parent too
CREATE TABLE br_vc_am (id int, v varchar(20)) USING destor;
INSERT INTO br_vc_am SELECT i, 'x' || i FROM generate_series(1, 100) i;
ALTER TABLE br_vc_am ALTER COLUMN v TYPE text;
SELECT count(*) FROM br_vc_am WHERE v = 'x5';
SELECT v FROM br_vc_am WHERE id = 7;
ALTER TABLE br_vc_am ALTER COLUMN id TYPE bigint;
SELECT pg_typeof(id), count(*) FROM br_vc_am GROUP BY 1;
DROP TABLE br_vc_am;
CREATE TABLE br_vc_parent (id int, ts timestamp) PARTITION BY RANGE (id);
CREATE TABLE br_vc_part PARTITION OF br_vc_parent FOR VALUES FROM (0) TO (100) USING destor;
SET TimeZone = 'UTC';
ALTER TABLE br_vc_parent ALTER COLUMN ts TYPE timestamptz;
RESET TimeZone;
DROP TABLE br_vc_parent;

-- F4: an inheritance parent USING destor is read with its children
CREATE TABLE br_inh (id int, v int) USING destor;
CREATE TABLE br_inh_heap () INHERITS (br_inh);
CREATE TABLE br_inh_am () INHERITS (br_inh) USING destor;
INSERT INTO br_inh SELECT i, 1 FROM generate_series(1, 10) i;
INSERT INTO br_inh_heap SELECT i, 2 FROM generate_series(11, 20) i;
INSERT INTO br_inh_am SELECT i, 3 FROM generate_series(21, 30) i;
SELECT count(*), sum(v) FROM br_inh;
SELECT count(*), sum(v) FROM br_inh WHERE id > 5;
SELECT tableoid::regclass, count(*) FROM br_inh GROUP BY 1 ORDER BY 1;
SELECT count(*) FROM ONLY br_inh;
DROP TABLE br_inh CASCADE;

-- F5: a rescan (the inner side of a nested loop) must not keep the memory
-- of the previous scan: 3,000 rescans of a 30-row table stay within 2 MB
CREATE TABLE br_lk (id int, t text) USING destor;
INSERT INTO br_lk SELECT i, 'x' || i FROM generate_series(1, 30) i;
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET enable_material = off;
BEGIN;
DECLARE br_c CURSOR FOR
  SELECT g, s.id FROM generate_series(1, 100000) g,
         LATERAL (SELECT id FROM br_lk a WHERE a.id = g % 30 + 1 AND a.t > 'x' OFFSET 0) s;
MOVE 3000 FROM br_c;
SELECT sum(total_bytes) < 2 * 1024 * 1024 AS scan_memory_bounded
  FROM pg_backend_memory_contexts WHERE name = 'destor table scan';
COMMIT;
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_material;
DROP TABLE br_lk;

-- F6: a scan that begins while its own statement writes the table (an
-- InitPlan or a CTE first read after some rows went in) must not see the
-- rows that statement inserted: heap's cmin < curcid rule
CREATE TABLE br_hw_am (id int, n bigint) USING destor;
CREATE TABLE br_hw_h (id int, n bigint);
INSERT INTO br_hw_am VALUES (0, 0);
INSERT INTO br_hw_h VALUES (0, 0);
INSERT INTO br_hw_am SELECT g, CASE WHEN g > 5 THEN (SELECT count(*) FROM br_hw_am) END
  FROM generate_series(1, 10) g;
INSERT INTO br_hw_h SELECT g, CASE WHEN g > 5 THEN (SELECT count(*) FROM br_hw_h) END
  FROM generate_series(1, 10) g;
SELECT (SELECT string_agg(id || ':' || coalesce(n::text, '-'), ' ' ORDER BY id) FROM br_hw_am) AS am,
       (SELECT string_agg(id || ':' || coalesce(n::text, '-'), ' ' ORDER BY id) FROM br_hw_h) AS heap;
WITH c AS MATERIALIZED (SELECT count(*) AS k FROM br_hw_am)
INSERT INTO br_hw_am SELECT 100 + g, CASE WHEN g > 3 THEN (SELECT k FROM c) END FROM generate_series(1, 5) g;
WITH c AS MATERIALIZED (SELECT count(*) AS k FROM br_hw_h)
INSERT INTO br_hw_h SELECT 100 + g, CASE WHEN g > 3 THEN (SELECT k FROM c) END FROM generate_series(1, 5) g;
SELECT (SELECT string_agg(id || ':' || coalesce(n::text, '-'), ' ' ORDER BY id) FROM br_hw_am WHERE id > 100) AS am,
       (SELECT string_agg(id || ':' || coalesce(n::text, '-'), ' ' ORDER BY id) FROM br_hw_h WHERE id > 100) AS heap;
UPDATE br_hw_am SET n = CASE WHEN id > 5 THEN (SELECT count(*) FROM br_hw_am) END WHERE id <= 10;
UPDATE br_hw_h SET n = CASE WHEN id > 5 THEN (SELECT count(*) FROM br_hw_h) END WHERE id <= 10;
SELECT (SELECT string_agg(id || ':' || coalesce(n::text, '-'), ' ' ORDER BY id) FROM br_hw_am WHERE id <= 10) AS am,
       (SELECT string_agg(id || ':' || coalesce(n::text, '-'), ' ' ORDER BY id) FROM br_hw_h WHERE id <= 10) AS heap;
DROP TABLE br_hw_am, br_hw_h;
-- F6 (data-modifying CTEs): the main query reads the table as it was
-- before the statement, whatever its CTE writes
CREATE TABLE br_cw (id int) USING destor;
INSERT INTO br_cw SELECT generate_series(1, 100);
WITH i AS (INSERT INTO br_cw SELECT generate_series(101, 150) RETURNING id)
SELECT (SELECT count(*) FROM i) AS inserted, (SELECT count(*) FROM br_cw) AS seen;
WITH u AS (UPDATE br_cw SET id = id + 1000 WHERE id <= 20 RETURNING id)
SELECT (SELECT count(*) FROM u) AS updated, (SELECT count(*) FROM br_cw) AS seen,
       (SELECT count(*) FROM br_cw WHERE id > 1000) AS new_versions_seen;
DROP TABLE br_cw;
-- F6 (STABLE functions): a STABLE function runs under its caller's
-- snapshot, so it does not see the rows its calling INSERT wrote
CREATE TABLE br_sf (id int, n bigint) USING destor;
CREATE FUNCTION br_sf_count() RETURNS bigint STABLE LANGUAGE sql AS 'SELECT count(*) FROM br_sf';
CREATE FUNCTION br_sf_count_pl() RETURNS bigint STABLE LANGUAGE plpgsql
  AS 'BEGIN RETURN (SELECT count(*) FROM br_sf); END';
INSERT INTO br_sf SELECT g, br_sf_count() FROM generate_series(1, 5) g;
INSERT INTO br_sf SELECT g, br_sf_count_pl() FROM generate_series(11, 15) g;
SELECT string_agg(id || ':' || n, ' ' ORDER BY id) FROM br_sf;
DROP FUNCTION br_sf_count(), br_sf_count_pl();
DROP TABLE br_sf;
-- F2 (timestamp -> timestamptz under TimeZone UTC: no rewrite either)
CREATE TABLE br_tzc (id int, ts timestamp) USING destor;
INSERT INTO br_tzc VALUES (1, '2024-01-01 10:00');
SET TimeZone = 'UTC';
ALTER TABLE br_tzc ALTER COLUMN ts TYPE timestamptz;
SELECT id, to_char(ts, 'YYYY-MM-DD HH24:MI TZ') AS ts FROM br_tzc;
RESET TimeZone;
DROP TABLE br_tzc;
