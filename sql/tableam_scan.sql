-- Scans of tables USING destor read only the columns a plan names and skip
-- the row groups whose min/max statistics refute its quals (the DestorScan
-- custom scan, src/tableam/tableam_path.c).  Every answer is compared with
-- a heap copy of the same rows.
\i test/regress/setup.sql
SET destor.default_pool = 'mirror';
CREATE TABLE sc_heap AS
  SELECT i AS id, i % 97 AS small, md5(i::text) AS t,
         CASE WHEN i % 5 = 0 THEN NULL ELSE i::float8 / 7 END AS f,
         timestamptz '2024-01-01' + i * interval '1 minute' AS ts, repeat('y', i % 3) AS gone
    FROM generate_series(1, 45000) i;
CREATE TABLE sc_am USING destor AS SELECT * FROM sc_heap;
ALTER TABLE sc_am DROP COLUMN gone;
ALTER TABLE sc_heap DROP COLUMN gone;
ALTER TABLE sc_am ADD COLUMN later int DEFAULT 7;
ALTER TABLE sc_heap ADD COLUMN later int DEFAULT 7;
ANALYZE sc_am;
CREATE FUNCTION sc_same(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE a text; h text;
BEGIN
  EXECUTE format('SELECT string_agg(x::text, '','' ORDER BY x::text) FROM (%s) x', replace(q, '$t', 'sc_am')) INTO a;
  EXECUTE format('SELECT string_agg(x::text, '','' ORDER BY x::text) FROM (%s) x', replace(q, '$t', 'sc_heap')) INTO h;
  RETURN a IS NOT DISTINCT FROM h;
END $$;

-- 1. projection: the plan names the columns it reads
EXPLAIN (COSTS OFF) SELECT sum(small) FROM sc_am;
EXPLAIN (COSTS OFF) SELECT count(*) FROM sc_am;
EXPLAIN (COSTS OFF) SELECT * FROM sc_am;
SELECT sc_same('SELECT sum(small), count(*), count(f), sum(later) FROM $t') AS sums,
       sc_same('SELECT * FROM $t WHERE id % 1000 = 1') AS whole_rows,
       sc_same('SELECT t FROM $t t WHERE t.id < 30') AS whole_row_var,
       sc_same('SELECT count(*) FROM $t') AS no_column;

-- 2. pruning: row groups whose statistics refute the quals are not read
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT sum(small) FROM sc_am WHERE id BETWEEN 20001 AND 20100;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT count(*) FROM sc_am WHERE ts >= '2024-01-30' AND ts < '2024-01-31';
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT count(*) FROM sc_am WHERE id < 0;
SELECT sc_same('SELECT sum(small) FROM $t WHERE id BETWEEN 20001 AND 20100') AS range,
       sc_same('SELECT id, f FROM $t WHERE ts >= ''2024-01-30'' AND ts < ''2024-01-31''') AS ts_range,
       sc_same('SELECT id FROM $t WHERE f IS NULL AND id > 44000') AS nulls,
       sc_same('SELECT id FROM $t WHERE id IN (1, 10000, 10001, 45000) OR small = 96') AS in_or,
       sc_same('SELECT id FROM $t WHERE later = 7 AND id > 44990') AS added_column,
       sc_same('SELECT id FROM $t WHERE t > ''fff'' AND id < 2000') AS text_qual;

-- 3. rescans with parameters (a nested loop over a lateral subquery)
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET enable_material = off;
EXPLAIN (COSTS OFF)
  SELECT g, x.small FROM generate_series(1, 4) g,
         LATERAL (SELECT small FROM sc_am WHERE id = g * 10000) x;
SELECT sc_same('SELECT g, x.small FROM generate_series(1, 4) g,
                LATERAL (SELECT small FROM $t WHERE id = g * 10000) x') AS lateral;
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_material;

-- 4. what a sequential scan would see: deletions, this transaction's rows,
-- a rolled-back savepoint, rows a statement's own function reads
BEGIN;
DELETE FROM sc_am WHERE id % 10 = 3;
DELETE FROM sc_heap WHERE id % 10 = 3;
INSERT INTO sc_am (id, small, t) SELECT i, 1, 'new' FROM generate_series(50001, 50100) i;
INSERT INTO sc_heap (id, small, t) SELECT i, 1, 'new' FROM generate_series(50001, 50100) i;
SAVEPOINT s;
INSERT INTO sc_am (id, small) VALUES (60000, 5);
ROLLBACK TO s;
SELECT sc_same('SELECT count(*), sum(small), sum(id) FROM $t WHERE id > 40000') AS in_transaction;
-- (a volatile function sees the rows its statement inserted before the call)
CREATE FUNCTION sc_count(tbl regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s WHERE id > 50000', tbl) INTO n;
  RETURN n;
END $$;
INSERT INTO sc_am (id, small) SELECT 70000 + g, sc_count('sc_am') FROM generate_series(1, 3) g;
INSERT INTO sc_heap (id, small) SELECT 70000 + g, sc_count('sc_heap') FROM generate_series(1, 3) g;
SELECT id, small FROM sc_am WHERE id > 70000 ORDER BY id;
SELECT sc_same('SELECT id, small FROM $t WHERE id > 70000') AS own_statement;
COMMIT;
SELECT sc_same('SELECT count(*), sum(small), sum(id), count(t) FROM $t') AS after_commit;

-- 5. cursors: forward fetches, and SCROLL through a Material node
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM sc_am WHERE id BETWEEN 100 AND 105 ORDER BY id;
FETCH 2 FROM c;
FETCH 2 FROM c;
CLOSE c;
DECLARE s SCROLL CURSOR FOR SELECT id FROM sc_am WHERE id BETWEEN 100 AND 102;
FETCH ALL FROM s;
FETCH BACKWARD 2 FROM s;
COMMIT;

-- 6. a prepared statement's generic plan: parameters do not prune, rows are right
PREPARE p(int) AS SELECT count(*), sum(small) FROM sc_am WHERE id BETWEEN $1 AND $1 + 50;
SET plan_cache_mode = force_generic_plan;
EXECUTE p(100);
EXECUTE p(30000);
RESET plan_cache_mode;
SELECT count(*), sum(small) FROM sc_heap WHERE id BETWEEN 30000 AND 30050;

-- 7. plans that stay sequential scans: writes, row locks, xmin, TABLESAMPLE,
-- enable_seqscan = off
EXPLAIN (COSTS OFF) UPDATE sc_am SET small = 0 WHERE id = 3;
EXPLAIN (COSTS OFF) DELETE FROM sc_am WHERE id = 3;
EXPLAIN (COSTS OFF) SELECT id FROM sc_am WHERE id = 3 FOR SHARE;
EXPLAIN (COSTS OFF) UPDATE sc_heap h SET small = a.small FROM sc_am a WHERE a.id = h.id AND a.id = 4;
EXPLAIN (COSTS OFF) SELECT xmin IS NOT NULL FROM sc_am WHERE id = 4;
EXPLAIN (COSTS OFF) SELECT ctid, tableoid::regclass FROM sc_am WHERE id = 4;
SELECT ctid = '(0,0)' AS zero_tid, tableoid::regclass FROM sc_am WHERE id = 4;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT sum(small) FROM sc_am;
RESET enable_seqscan;

-- 8. partitions USING destor under a parent: each one pruned on its own
CREATE TABLE sc_parts (id int, ts timestamptz, v int) PARTITION BY RANGE (ts);
CREATE TABLE sc_parts_1 PARTITION OF sc_parts FOR VALUES FROM ('2024-01-01') TO ('2024-02-01') USING destor;
CREATE TABLE sc_parts_2 PARTITION OF sc_parts FOR VALUES FROM ('2024-02-01') TO ('2024-03-01') USING destor;
INSERT INTO sc_parts SELECT i, timestamptz '2024-01-01' + i * interval '1 minute', i % 11
  FROM generate_series(0, 80000) i WHERE timestamptz '2024-01-01' + i * interval '1 minute' < '2024-03-01';
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT sum(v) FROM sc_parts WHERE id BETWEEN 50000 AND 50010;
SELECT sum(v), count(*) FROM sc_parts WHERE id BETWEEN 50000 AND 50010;
SELECT sum(i % 11), count(*) FROM generate_series(50000, 50010) i;

-- 9. parallel scans: the participants share the row groups; the answers are
-- the serial ones, also with pruning, joins, a rescanned Gather, and a
-- function's query run by a statement that writes the table (the leader
-- reads it alone: only it sees the rows its statement buffers)
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT sum(small) FROM sc_am WHERE id > 100;
SELECT sc_same('SELECT sum(small), count(*), sum(id), count(f) FROM $t WHERE id > 100') AS parallel_sum,
       sc_same('SELECT id, t FROM $t WHERE id % 997 = 0') AS parallel_rows,
       sc_same('SELECT count(*) FROM $t WHERE id BETWEEN 12000 AND 12500') AS parallel_pruned;
EXPLAIN (COSTS OFF) SELECT count(*) FROM sc_am a JOIN sc_heap h USING (id) WHERE h.small = 3;
SELECT (SELECT count(*) FROM sc_am a JOIN sc_heap h USING (id) WHERE h.small = 3) =
       (SELECT count(*) FROM sc_heap a JOIN sc_heap h USING (id) WHERE h.small = 3) AS parallel_join;
-- a Gather run again for each outer row
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SELECT sc_same('SELECT g, (SELECT count(*) FROM $t WHERE small = g) FROM generate_series(1, 3) g') AS rescanned;
RESET enable_hashjoin;
RESET enable_mergejoin;
CREATE FUNCTION sc_total(tbl regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s', tbl) INTO n;
  RETURN n;
END $$;
SET force_parallel_mode = on;
BEGIN;
INSERT INTO sc_am (id, small) SELECT 80000 + g, sc_total('sc_am') FROM generate_series(1, 3) g;
INSERT INTO sc_heap (id, small) SELECT 80000 + g, sc_total('sc_heap') FROM generate_series(1, 3) g;
SELECT sc_same('SELECT id, small FROM $t WHERE id > 80000') AS leader_buffers;
ROLLBACK;
RESET force_parallel_mode;
DROP FUNCTION sc_total(regclass);
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

DROP TABLE sc_parts;
DROP FUNCTION sc_count(regclass);
DROP FUNCTION sc_same(text);
DROP TABLE sc_am, sc_heap;
