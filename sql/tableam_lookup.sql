-- Point look-ups on a table USING destor read just the row from the chunks
-- (src/table/table_scan.c scan_fetch_row_cached): compressed chunks the
-- cache holds decompressed, chunks stored as they are, values at both ends of
-- a row group, NULLs, text, a dropped and an added column.  Every answer is
-- compared with a heap copy of the same rows.
\i test/regress/setup.sql
SET destor.default_pool = 'mirror';
CREATE TABLE lk_heap AS
  SELECT i AS id, i % 97 AS small, (i * 2654435761::bigint) % 1000003 AS big,
         CASE WHEN i % 7 = 0 THEN NULL ELSE md5(i::text) END AS t,
         CASE WHEN i % 3 = 0 THEN NULL ELSE i::float8 / 7 END AS f,
         sin(i)::float8 AS noise, repeat('x', i % 5) AS gone
    FROM generate_series(1, 25000) i;
CREATE TABLE lk_am USING destor AS SELECT * FROM lk_heap;
ALTER TABLE lk_am DROP COLUMN gone;
ALTER TABLE lk_heap DROP COLUMN gone;
ALTER TABLE lk_am ADD COLUMN later int DEFAULT 42;
ALTER TABLE lk_heap ADD COLUMN later int DEFAULT 42;
CREATE UNIQUE INDEX ON lk_am (id);
CREATE INDEX ON lk_am (big);
ANALYZE lk_am;
-- warm: a scan fills the cache with the decompressed chunks
SELECT count(*), sum(small) FROM lk_am;
CREATE TABLE lk_keys AS
  SELECT unnest(ARRAY[1, 2, 7, 9999, 10000, 10001, 19999, 20000, 20001, 24999, 25000, 12345, 777, 3]) AS id;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
CREATE FUNCTION lk_fetch(k int) RETURNS SETOF lk_am LANGUAGE sql STABLE AS
  'SELECT * FROM lk_am WHERE id = k';
SELECT count(*) AS lookups,
       count(*) FILTER (WHERE (a.*)::text IS NOT DISTINCT FROM (h.*)::text) AS same
  FROM lk_keys k
  CROSS JOIN LATERAL lk_fetch(k.id) a
  JOIN lk_heap h ON h.id = k.id;
EXPLAIN (COSTS OFF) SELECT * FROM lk_am WHERE id = 5;
-- by a non-unique index
SELECT count(*) AS by_big, count(*) FILTER (WHERE (a.*)::text = (h.*)::text) AS same
  FROM lk_am a JOIN lk_heap h USING (id)
 WHERE a.big IN (SELECT big FROM lk_heap WHERE id IN (5, 6, 24990));
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP TABLE lk_am, lk_heap, lk_keys CASCADE;

-- The per-backend caches a look-up uses (rows of destor.am_tables, parsed
-- segment directories) never give a stale row: one session looks the same
-- keys up, through plans kept by plpgsql, after each change, in the destor
-- table and in a heap twin that gets the same statements (lkc_both).
CREATE TABLE lkc (id int PRIMARY KEY, v text) USING destor;
CREATE TABLE lkc_h (id int PRIMARY KEY, v text);
CREATE PROCEDURE lkc_both(q text) LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format(q, 'lkc');
  EXECUTE format(q, 'lkc_h');
END $$;
CALL lkc_both($$INSERT INTO %I SELECT i, 'a' || i FROM generate_series(1, 40) i$$);
CALL lkc_both($$INSERT INTO %I SELECT i, 'b' || i FROM generate_series(41, 60) i$$);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
CREATE FUNCTION lkc_diff() RETURNS text LANGUAGE plpgsql AS $$
DECLARE a text; h text; n int := 0; bad int := 0;
BEGIN
  FOR k IN 1 .. 62 LOOP
    SELECT v INTO a FROM lkc WHERE id = k;
    SELECT v INTO h FROM lkc_h WHERE id = k;
    n := n + (h IS NOT NULL)::int;
    bad := bad + (a IS DISTINCT FROM h)::int;
  END LOOP;
  RETURN n || ' rows, ' || bad || ' differ';
END $$;
SELECT lkc_diff() AS initial;
CALL lkc_both('DELETE FROM %I WHERE id = 5');
CALL lkc_both($$UPDATE %I SET v = 'u7' WHERE id = 7$$);
SELECT lkc_diff() AS after_delete_update;
BEGIN;
CALL lkc_both('DELETE FROM %I WHERE id BETWEEN 10 AND 12');
CALL lkc_both($$UPDATE %I SET v = 'u13' WHERE id = 13$$);
SELECT lkc_diff() AS in_transaction;
ROLLBACK;
SELECT lkc_diff() AS after_rollback;
-- the second segment deleted whole and removed by VACUUM
CALL lkc_both('DELETE FROM %I WHERE id > 40');
VACUUM lkc;
VACUUM lkc_h;
SELECT lkc_diff() AS after_vacuum;
CALL lkc_both($$INSERT INTO %I VALUES (61, 'c61')$$);
SELECT lkc_diff() AS after_insert;
-- TRUNCATE: a new relfilenode and table_id, the same keys with other values
CALL lkc_both('TRUNCATE %I');
CALL lkc_both($$INSERT INTO %I SELECT i, 't' || i FROM generate_series(1, 50) i$$);
SELECT lkc_diff() AS after_truncate;
BEGIN;
CALL lkc_both('TRUNCATE %I');
CALL lkc_both($$INSERT INTO %I SELECT i, 'r' || i FROM generate_series(2, 30) i$$);
SELECT lkc_diff() AS truncated_in_transaction;
ROLLBACK;
SELECT lkc_diff() AS truncate_rolled_back;
BEGIN;
SAVEPOINT s;
CALL lkc_both('TRUNCATE %I');
CALL lkc_both($$INSERT INTO %I VALUES (3, 's3')$$);
SELECT lkc_diff() AS truncated_in_savepoint;
ROLLBACK TO SAVEPOINT s;
SELECT lkc_diff() AS savepoint_rolled_back;
COMMIT;
-- a rewrite (the same type, through an expression: a new relfilenode and
-- table_id, the rows copied), then DROP and CREATE again
SELECT relfilenode AS lkc_old_node FROM pg_class WHERE relname = 'lkc' \gset
ALTER TABLE lkc ALTER COLUMN v TYPE text USING v || '';
SELECT relfilenode <> :lkc_old_node AS rewritten FROM pg_class WHERE relname = 'lkc';
SELECT lkc_diff() AS after_rewrite;
DROP TABLE lkc CASCADE;
CREATE TABLE lkc (id int PRIMARY KEY, v text) USING destor;
INSERT INTO lkc SELECT id, v || '!' FROM lkc_h;
UPDATE lkc_h SET v = v || '!';
SELECT lkc_diff() AS dropped_and_created;
-- tier and recall a partition between look-ups
CREATE TABLE lkp (id int, d date, v text, PRIMARY KEY (id, d)) PARTITION BY RANGE (d);
CREATE TABLE lkp_1 PARTITION OF lkp FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
INSERT INTO lkp SELECT i, date '2024-01-01' + i % 31, 'p' || i FROM generate_series(1, 60) i;
CREATE FUNCTION lkp_sum() RETURNS text LANGUAGE plpgsql AS $$
DECLARE s text := ''; x text;
BEGIN
  FOR k IN 1 .. 60 BY 7 LOOP
    SELECT v INTO x FROM lkp WHERE id = k AND d = date '2024-01-01' + k % 31;
    s := s || coalesce(x, '-') || ' ';
  END LOOP;
  RETURN s;
END $$;
SELECT lkp_sum() AS heap_partition;
SELECT destor.tier_partition('lkp_1', 'mirror');
SELECT lkp_sum() AS tiered;
UPDATE lkp SET v = 'q' || id WHERE id % 2 = 0;
SELECT lkp_sum() AS tiered_updated;
SELECT destor.recall_partition('lkp_1');
SELECT lkp_sum() AS recalled;
SELECT destor.tier_partition('lkp_1', 'mirror');
DELETE FROM lkp WHERE id = 8;
SELECT lkp_sum() AS tiered_again;
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP TABLE lkc, lkc_h, lkp CASCADE;
DROP FUNCTION lkc_diff(), lkp_sum();
DROP PROCEDURE lkc_both(text);
