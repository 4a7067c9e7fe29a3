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
