-- destor foreign tables: every type round-trips exactly (compared with the
-- same rows in a heap table), projection, pruning, inserts of all kinds,
-- TRUNCATE and DROP.  Providers and pools come from the shared setup.
\i test/regress/setup.sql
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);

CREATE TABLE heap_all (
  id int, i2 int2, i8 int8, num numeric, f4 float4, f8 float8, t text, vc varchar(12),
  bp char(3), ba bytea, b bool, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
  iv interval, u uuid, j json, jb jsonb, ia int[], ta text[], e mood, dm posint, c pair,
  ip inet, pt point, tv tsvector, rg int4range, mo money, bi bit varying(20)
);
INSERT INTO heap_all
SELECT i, (i % 30000 - 15000)::int2, i::int8 * 1000000007,
       CASE i % 7 WHEN 0 THEN 'NaN'::numeric WHEN 1 THEN '123456789012345678901234567890.000000001'::numeric
            ELSE (i / 7.0)::numeric END,
       CASE i % 9 WHEN 0 THEN 'NaN'::float4 WHEN 1 THEN '-Infinity' WHEN 2 THEN '-0' ELSE i / 3.0 END,
       CASE i % 11 WHEN 0 THEN 'Infinity'::float8 WHEN 1 THEN '-0' WHEN 2 THEN 'NaN' ELSE i * 1.0e-300 END,
       CASE WHEN i % 13 = 0 THEN NULL ELSE 'text ' || i || ' ünïcödé ✓ ' || repeat('x', i % 50) END,
       left('vc' || i, 12), left(i::text, 3), decode(md5(i::text), 'hex'), i % 2 = 0,
       '2000-01-01'::date + i, '00:00'::time + i * interval '1 second',
       ('10:00+0' || (i % 9))::timetz, '2020-02-29 12:00'::timestamp + i * interval '1 hour',
       '2020-02-29 12:00+00'::timestamptz + i * interval '1 minute',
       make_interval(months => i % 13, days => i % 31, secs => i / 7.0),
       md5(i::text)::uuid, ('{"k": ' || i || ', "a": [1, 2]}')::json,
       ('{"k": ' || i || ', "nested": {"x": null}}')::jsonb,
       CASE WHEN i % 5 = 0 THEN ARRAY[[i, NULL], [3, 4]] ELSE ARRAY[i, i + 1] END,
       ARRAY['a' || i, NULL, 'ü'], (ARRAY['sad', 'ok', 'happy'])[i % 3 + 1]::mood,
       i, ROW(i, 'p' || i)::pair, ('10.0.' || (i % 256) || '.1/24')::inet, point(i, -i),
       to_tsvector('simple', 'word' || i || ' other'), int4range(i, i + 10),
       (i * 1.25)::money, (i % 1000)::bit(20)::bit varying(20)
  FROM generate_series(1, 3000) i;
INSERT INTO heap_all (id) VALUES (0);   -- a row of NULLs

CREATE FOREIGN TABLE all_types (
  id int, i2 int2, i8 int8, num numeric, f4 float4, f8 float8, t text, vc varchar(12),
  bp char(3), ba bytea, b bool, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
  iv interval, u uuid, j json, jb jsonb, ia int[], ta text[], e mood, dm posint, c pair,
  ip inet, pt point, tv tsvector, rg int4range, mo money, bi bit varying(20)
) SERVER archive OPTIONS (segment_rows '1000', row_group_rows '250');

-- the table got an identity
SELECT count(*) AS has_table_id FROM pg_foreign_table ft, unnest(ft.ftoptions) o
 WHERE ft.ftrelid = 'all_types'::regclass AND o LIKE 'table_id=%';

INSERT INTO all_types SELECT * FROM heap_all;
SELECT count(*) FROM all_types;
SELECT count(*) AS segments FROM destor.segments s JOIN destor.tables t USING (table_id)
 WHERE t.relid = 'all_types'::regclass;

-- every value, compared as text both ways
SELECT count(*) AS only_in_heap FROM (SELECT h::text FROM heap_all h EXCEPT ALL SELECT a::text FROM all_types a) x;
SELECT count(*) AS only_in_destor FROM (SELECT a::text FROM all_types a EXCEPT ALL SELECT h::text FROM heap_all h) x;
-- float specials survive as such
SELECT count(*) FILTER (WHERE f8 = 'Infinity') AS inf, count(*) FILTER (WHERE f8::text = '-0') AS negzero,
       count(*) FILTER (WHERE f8 = 'NaN') AS nan, count(*) FILTER (WHERE num = 'NaN') AS num_nan
  FROM all_types;

-- projection: only referenced columns are fetched
EXPLAIN (COSTS OFF) SELECT sum(i8) FROM all_types;
SELECT sum(i8) = (SELECT sum(i8) FROM heap_all) AS same_sum FROM all_types;

-- pruning by min/max and nulls, on several types
EXPLAIN (COSTS OFF) SELECT id FROM all_types WHERE id = 1500;
SELECT id, t FROM all_types WHERE id = 1500;
EXPLAIN (COSTS OFF) SELECT id FROM all_types WHERE id BETWEEN 100 AND 200;
SELECT count(*) FROM all_types WHERE id BETWEEN 100 AND 200;
EXPLAIN (COSTS OFF) SELECT id FROM all_types WHERE id IN (5, 2999);
SELECT id FROM all_types WHERE id IN (5, 2999) ORDER BY id;
EXPLAIN (COSTS OFF) SELECT id FROM all_types WHERE vc = 'vc2500';
SELECT id FROM all_types WHERE vc = 'vc2500';
EXPLAIN (COSTS OFF) SELECT id FROM all_types WHERE tstz < '2020-02-29 13:00+00';
SELECT count(*) FROM all_types WHERE tstz < '2020-02-29 13:00+00';
EXPLAIN (COSTS OFF) SELECT id FROM all_types WHERE i2 IS NULL;
SELECT id FROM all_types WHERE i2 IS NULL;
EXPLAIN (COSTS OFF) SELECT id FROM all_types WHERE id > 1000000;
SELECT count(*) FROM all_types WHERE id > 1000000;

-- values far larger than a page round-trip exactly
CREATE FOREIGN TABLE docs (id int, body text, raw bytea) SERVER archive;
INSERT INTO docs SELECT 1, string_agg(md5(i::text), ' '), NULL FROM generate_series(1, 600000) i;
INSERT INTO docs SELECT 2, NULL, decode(string_agg(md5(i::text), ''), 'hex') FROM generate_series(1, 400000) i;
SELECT id, length(body), md5(body) = (SELECT md5(string_agg(md5(i::text), ' ')) FROM generate_series(1, 600000) i) AS body_ok,
       length(raw), md5(raw) = (SELECT md5(decode(string_agg(md5(i::text), ''), 'hex')) FROM generate_series(1, 400000) i) AS raw_ok
  FROM docs ORDER BY id;

-- a value wider than 4 kB keeps no min/max (the directory held each such
-- value four times, in text form): directories stay small, and a segment
-- with such a row group keeps none either, so no range leaves it out
SELECT max(octet_length(g.directory)) < 4096 AS small_directories
  FROM destor.segments g JOIN destor.tables t USING (table_id) WHERE t.relid = 'docs'::regclass;
CREATE FOREIGN TABLE wide (id int, body text) SERVER archive
  OPTIONS (segment_rows '2000', row_group_rows '1000');
INSERT INTO wide SELECT i, CASE WHEN i = 1500 THEN 'x' || repeat(md5(i::text), 200) ELSE 'b' || i END
  FROM generate_series(1, 2000) i ORDER BY i;
EXPLAIN (COSTS OFF) SELECT id FROM wide WHERE body > 'w';
SELECT id, length(body) FROM wide WHERE body > 'w';
SELECT id FROM wide WHERE body < 'b10' ORDER BY id;
SELECT max(octet_length(g.directory)) < 4096 AS small_directories
  FROM destor.segments g JOIN destor.tables t USING (table_id) WHERE t.relid = 'wide'::regclass;
-- the limit is on the text form, which is what is stored: a 4,096-byte text
-- keeps its min/max (its first row group is pruned), one byte more does not;
-- a 3,000-byte bytea (6,002 characters as text) and a 32,000-bit string
-- (32,001) keep none
CREATE FOREIGN TABLE edge (id int, body text, ba bytea, vb varbit) SERVER archive
  OPTIONS (segment_rows '2000', row_group_rows '1000');
INSERT INTO edge SELECT i,
    CASE i WHEN 1 THEN repeat('a', 4096) WHEN 1500 THEN repeat('a', 4097) ELSE 'a' || i END,
    CASE i WHEN 2 THEN decode(repeat('ff', 3000), 'hex') ELSE int4send(i) END,
    CASE i WHEN 3 THEN repeat('1', 32000)::varbit ELSE B'0' END
  FROM generate_series(1, 2000) i ORDER BY i;
EXPLAIN (COSTS OFF) SELECT id FROM edge WHERE body > 'b';
SELECT id, length(body) FROM edge WHERE body > 'aa' ORDER BY id;
SELECT id, length(ba) FROM edge WHERE ba > '\xfe'::bytea ORDER BY id;
SELECT id, length(vb) FROM edge WHERE vb > B'1' ORDER BY id;
SELECT octet_length(g.directory) < 2 * 4096 AS small_directory
  FROM destor.segments g JOIN destor.tables t USING (table_id) WHERE t.relid = 'edge'::regclass;

-- statistics and text-form values do not depend on the session's settings
SET datestyle = 'SQL, DMY';
SET intervalstyle = 'sql_standard';
SET extra_float_digits = 0;
SET timezone = 'Asia/Kolkata';
CREATE FOREIGN TABLE settings_t (d date, i interval, x float8, t timestamptz, e mood, c pair)
  SERVER archive OPTIONS (row_group_rows '100', segment_rows '1000');
INSERT INTO settings_t
  SELECT '2020-01-05'::date + g, make_interval(days => -1, hours => -g), 0.1::float8 * 3 + g,
         '1890-01-01 00:00+00'::timestamptz + g * interval '1 hour',
         (ARRAY['sad', 'ok', 'happy'])[g % 3 + 1]::mood, ROW(g, 'x')::pair
    FROM generate_series(0, 999) g;
CREATE TABLE settings_h AS SELECT * FROM settings_t;
RESET datestyle;
RESET intervalstyle;
RESET extra_float_digits;
RESET timezone;
SELECT count(*) AS one_day FROM settings_t WHERE d = '2020-01-07';
SELECT count(*) AS from_hour_99 FROM settings_t WHERE t >= '1890-01-05 03:00+00';
SELECT count(*) AS above FROM settings_t WHERE x > 0.3;
SELECT count(*) AS under FROM settings_t WHERE i < '-1 day -998 hours';
SELECT count(*) AS differing FROM (SELECT * FROM settings_t EXCEPT ALL SELECT * FROM settings_h) x;
-- a changed column type is detected, not misread
CREATE FOREIGN TABLE retyped (id int, a int4) SERVER archive;
INSERT INTO retyped SELECT g, g FROM generate_series(1, 5) g;
ALTER FOREIGN TABLE retyped ALTER COLUMN a TYPE float4;
SELECT a FROM retyped;
ALTER FOREIGN TABLE retyped ALTER COLUMN a TYPE int4;
SELECT sum(a) FROM retyped;
-- a collation change is refused up front: the stored min/max that prune
-- were ordered under the old collation (src/tableam/tableam_ddl.c)
CREATE FOREIGN TABLE recollated (id int, t text) SERVER archive;
INSERT INTO recollated VALUES (1, 'B'), (2, 'a');
ALTER FOREIGN TABLE recollated ALTER COLUMN t TYPE text COLLATE "C";
SELECT count(*) FROM recollated WHERE t < 'b';
DROP FOREIGN TABLE recollated;

-- inserts: multi-row with RETURNING, COPY, INSERT ... SELECT; NULLs
CREATE FOREIGN TABLE events (id bigint, kind text, at timestamptz, payload jsonb)
  SERVER archive;
INSERT INTO events VALUES (1, 'a', '2024-01-01', '{"x": 1}'), (2, NULL, NULL, NULL)
  RETURNING id, kind;
COPY events FROM STDIN;
3	copied	2024-02-01 00:00:00+00	{"y": [1, 2]}
4	\N	\N	\N
\.
INSERT INTO events SELECT i, 'bulk', '2024-03-01'::timestamptz + i * interval '1 s', NULL
  FROM generate_series(5, 20004) i;
SELECT count(*), count(kind), min(id), max(id), count(DISTINCT kind) FROM events;
SELECT * FROM events WHERE id <= 4 ORDER BY id;

-- rolled-back inserts are invisible
BEGIN;
INSERT INTO events VALUES (99999, 'rolled back', now(), NULL);
ROLLBACK;
SELECT count(*) FROM events WHERE id = 99999;

-- DELETE and UPDATE (deleted-row bitmaps; UPDATE = delete + insert),
-- mirrored on a heap copy
CREATE TABLE events_heap AS SELECT * FROM events;
DELETE FROM events WHERE id % 7 = 0;
DELETE FROM events_heap WHERE id % 7 = 0;
DELETE FROM events WHERE id IN (1, 2) RETURNING id, kind, payload;
DELETE FROM events_heap WHERE id IN (1, 2);
UPDATE events SET kind = 'changed', payload = '{"u": true}' WHERE id BETWEEN 3 AND 5 RETURNING id, kind;
UPDATE events_heap SET kind = 'changed', payload = '{"u": true}' WHERE id BETWEEN 3 AND 5;
UPDATE events SET id = id + 100000 WHERE id > 20000;
UPDATE events_heap SET id = id + 100000 WHERE id > 20000;
SELECT count(*) AS only_in_destor FROM (SELECT * FROM events EXCEPT ALL SELECT * FROM events_heap) x;
SELECT count(*) AS only_in_heap FROM (SELECT * FROM events_heap EXCEPT ALL SELECT * FROM events) x;
-- deleting a row twice in one statement (a join duplicates it) counts once
DELETE FROM events e USING (VALUES (6), (6)) v(id) WHERE e.id = v.id RETURNING e.id;
DELETE FROM events_heap WHERE id = 6;
-- deletions roll back and are visible inside their transaction
BEGIN;
DELETE FROM events;
SELECT count(*) AS inside FROM events;
ROLLBACK;
SELECT count(*) = (SELECT count(*) FROM events_heap) AS same_count FROM events;
BEGIN;
SAVEPOINT s;
UPDATE events SET kind = 'gone' WHERE id = 8;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT kind FROM events WHERE id = 8;

-- compaction merges small segments and drops deleted rows, same rows after
INSERT INTO events SELECT i, 'small', NULL, NULL FROM generate_series(40001, 40010) i;
INSERT INTO events SELECT i, 'small', NULL, NULL FROM generate_series(40011, 40020) i;
INSERT INTO events_heap SELECT i, 'small', NULL, NULL FROM generate_series(40001, 40020) i;
DELETE FROM events WHERE id BETWEEN 10000 AND 16000;
DELETE FROM events_heap WHERE id BETWEEN 10000 AND 16000;
SELECT segments_before > segments_after AS fewer_segments, rows_kept, rows_dropped
  FROM destor.compact('events');
SELECT count(*) AS only_in_destor FROM (SELECT * FROM events EXCEPT ALL SELECT * FROM events_heap) x;
SELECT count(*) AS only_in_heap FROM (SELECT * FROM events_heap EXCEPT ALL SELECT * FROM events) x;
SELECT count(*) AS deletion_bitmaps_left FROM destor.deletions d JOIN destor.tables t USING (table_id)
 WHERE t.relid = 'events'::regclass;
SELECT * FROM destor.compact('events');   -- nothing left to do
-- retired objects' shards stay for the grace period, then go
SELECT count(*) > 0 AS retired FROM destor.retired;
SELECT destor.cleanup_orphans('archive', '1 hour') AS removed_too_early;
SELECT destor.cleanup_orphans('archive', '0') > 0 AS removed_after_grace;
SELECT count(*) AS retired_left FROM destor.retired;
SELECT count(*) AS only_in_destor FROM (SELECT * FROM events EXCEPT ALL SELECT * FROM events_heap) x;
SELECT destor.compact('pg_class');

-- count(*) needs no column: zero provider requests
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM events;

-- ANALYZE samples row groups; the planner's estimates follow the data
CREATE FUNCTION estimated_rows(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE j json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j;
  RETURN (j->0->'Plan'->>'Plan Rows')::float8;
END $$;
ANALYZE events;
SELECT count(*) > 0 AS has_column_stats FROM pg_stats WHERE tablename = 'events' AND attname = 'kind';
SELECT reltuples = (SELECT count(*) FROM events) AS reltuples_exact FROM pg_class WHERE relname = 'events';
SELECT estimated_rows('SELECT * FROM events WHERE kind = ''bulk''') /
       (SELECT count(*) FROM events WHERE kind = 'bulk') BETWEEN 0.5 AND 2 AS eq_estimate_ok,
       estimated_rows('SELECT * FROM events WHERE id < 5000') /
       (SELECT count(*) FROM events WHERE id < 5000) BETWEEN 0.5 AND 2 AS range_estimate_ok;

-- parallel scans: workers share the row groups, each read once
CREATE FOREIGN TABLE par (id int, g int, s text) SERVER archive
  OPTIONS (segment_rows '5000', row_group_rows '1000');
INSERT INTO par SELECT i, i % 97, md5(i::text) FROM generate_series(1, 30000) i;
CREATE TABLE par_heap AS SELECT * FROM par;
ANALYZE par;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT g, count(*), sum(id), max(s) FROM par GROUP BY g;
SELECT count(*) AS differing FROM (
  (SELECT g, count(*), sum(id), max(s) FROM par GROUP BY g
   EXCEPT ALL SELECT g, count(*), sum(id), max(s) FROM par_heap GROUP BY g)
  UNION ALL
  (SELECT g, count(*), sum(id), max(s) FROM par_heap GROUP BY g
   EXCEPT ALL SELECT g, count(*), sum(id), max(s) FROM par GROUP BY g)) x;
SELECT count(*), count(DISTINCT id) FROM par WHERE g < 50;
-- EXPLAIN ANALYZE counts the workers' reads too
CREATE FUNCTION explain_line(q text, pat text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
    IF l ~ pat THEN RETURN trim(l); END IF;
  END LOOP;
  RETURN NULL;
END $$;
SELECT explain_line('SELECT g, count(*), max(s) FROM par GROUP BY g', 'Row Groups Read');
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET max_parallel_workers_per_gather;

-- the table's identity survives a rename; new columns read as NULL in old segments
ALTER FOREIGN TABLE events RENAME TO events_renamed;
SELECT count(*) FROM events_renamed;
ALTER FOREIGN TABLE events_renamed ADD COLUMN extra int;
INSERT INTO events_renamed VALUES (30000, 'new', now(), NULL, 7);
SELECT count(extra), sum(extra) FROM events_renamed;
ALTER FOREIGN TABLE events_renamed DROP COLUMN payload;
SELECT id, kind, extra FROM events_renamed WHERE id IN (1, 30000) ORDER BY id;

-- TRUNCATE and DROP remove the data (objects go at commit)
SELECT count(*) > 0 AS has_objects FROM destor.segments s JOIN destor.tables t USING (table_id)
 WHERE t.relid = 'events_renamed'::regclass;
TRUNCATE events_renamed;
SELECT count(*) FROM events_renamed;
SELECT count(*) AS segments_left FROM destor.segments s JOIN destor.tables t USING (table_id)
 WHERE t.relid = 'events_renamed'::regclass;
CREATE TEMP TABLE files_before_drop AS SELECT shard_files(:'dir') AS n;
BEGIN;
DROP FOREIGN TABLE all_types;
SELECT shard_files(:'dir') = n AS still_there_before_commit FROM files_before_drop;
ROLLBACK;
SELECT count(*) FROM all_types;
DROP FOREIGN TABLE all_types;
-- 4 segments of 6 shards each are gone
SELECT n - shard_files(:'dir') AS shard_files_removed FROM files_before_drop;
SELECT count(*) AS tables_left FROM destor.tables t WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.relid);

-- bad table options
CREATE FOREIGN TABLE bad1 (a int) SERVER archive OPTIONS (segment_rows '10');
CREATE FOREIGN TABLE bad2 (a int) SERVER archive OPTIONS (row_group_rows '5000', segment_rows '1000');
CREATE FOREIGN TABLE bad3 (a int) SERVER archive OPTIONS (compression_level '99');
CREATE FOREIGN TABLE bad4 (a int) SERVER archive OPTIONS (colour 'blue');
