-- Adversarial tests of VACUUM's rewrite of partly deleted segments of tables
-- USING destor (e625b30).  Every answer is what the same statements give on
-- a heap table; see /work/notes/vacbreak-findings.md for the findings (V1..)
-- that make parts of this file fail, and what held up.
\i test/regress/setup.sql
SET destor.default_pool = 'archive';
SET max_parallel_workers_per_gather = 0;

-- the segments of a table USING destor, and their objects' sizes
CREATE FUNCTION vb_segments(t regclass) RETURNS TABLE (segment_no bigint, object_id uuid, bytes bigint)
LANGUAGE sql AS $$
  SELECT g.segment_no, g.object_id, o.size
    FROM destor.segments g
    JOIN destor.am_tables a ON a.table_id = g.table_id
    JOIN destor.objects o ON o.object_id = g.object_id
   WHERE a.relfilenode = pg_relation_filenode(t)
   ORDER BY 1 $$;

-- 1. (held up) Types through a rewrite: enums, composites, arrays of
-- enums, domains, toasted text, numeric, jsonb, bytea, intervals, NULLs, a
-- dropped column, columns added later with defaults (changed afterwards),
-- indexes of every kind on them; twice
CREATE TYPE vb_mood AS ENUM ('low', 'mid', 'high');
CREATE TYPE vb_pair AS (a int, b text);
CREATE DOMAIN vb_pos AS int CHECK (VALUE > 0);
CREATE TABLE th (id int PRIMARY KEY, m vb_mood, p vb_pair, arr int[], marr vb_mood[], d vb_pos,
                 big text, n numeric, j jsonb, b bytea, ts timestamptz, iv interval, u uuid);
CREATE TABLE tt (LIKE th INCLUDING ALL) USING destor;
INSERT INTO th SELECT i, (ARRAY['low','mid','high']::vb_mood[])[1 + i % 3],
  CASE WHEN i % 7 = 0 THEN NULL ELSE ROW(i, 't' || i)::vb_pair END,
  ARRAY[i, i + 1, NULL], ARRAY['low', 'high']::vb_mood[], i,
  CASE WHEN i % 500 = 1 THEN repeat(md5(i::text), 4000) WHEN i % 5 = 0 THEN NULL ELSE md5(i::text) END,
  i / 3.0, jsonb_build_object('k', i), decode(md5(i::text), 'hex'),
  '2024-01-01'::timestamptz + i * interval '1 hour', i * interval '1 second', md5(i::text)::uuid
  FROM generate_series(1, 25000) i;
INSERT INTO tt SELECT * FROM th;
ALTER TABLE th DROP COLUMN u;
ALTER TABLE tt DROP COLUMN u;
ALTER TABLE th ADD COLUMN e1 text DEFAULT 'dflt', ADD COLUMN e2 vb_mood DEFAULT 'mid',
  ADD COLUMN e3 int, ADD COLUMN e4 vb_pair DEFAULT ROW(7, 'seven');
ALTER TABLE tt ADD COLUMN e1 text DEFAULT 'dflt', ADD COLUMN e2 vb_mood DEFAULT 'mid',
  ADD COLUMN e3 int, ADD COLUMN e4 vb_pair DEFAULT ROW(7, 'seven');
ALTER TABLE th ALTER COLUMN e1 SET DEFAULT 'newer';
ALTER TABLE tt ALTER COLUMN e1 SET DEFAULT 'newer';
INSERT INTO th (id, m) VALUES (30001, 'low');
INSERT INTO tt (id, m) VALUES (30001, 'low');
CREATE INDEX tt_m ON tt (m);
CREATE INDEX tt_p ON tt (p);
CREATE INDEX tt_big ON tt USING hash (big);
CREATE INDEX tt_e2 ON tt (e2, id);
DELETE FROM th WHERE id % 4 = 0 OR id BETWEEN 12000 AND 13000;
DELETE FROM tt WHERE id % 4 = 0 OR id BETWEEN 12000 AND 13000;
CREATE TEMP TABLE tt_seg0 AS SELECT * FROM vb_segments('tt');
VACUUM tt;
SELECT count(*) AS rewritten FROM vb_segments('tt') s JOIN tt_seg0 b USING (segment_no)
 WHERE s.object_id <> b.object_id;
SELECT rows_differ('tt', 'th');
SELECT rows_differ('tt', 'th', 'p IS NULL OR big IS NULL');
SELECT rows_differ('tt', 'th', 'ts > ''2025-01-01'' AND m = ''high''');
SET enable_seqscan = off;
SELECT rows_differ('tt', 'th', 'id BETWEEN 11000 AND 14000');
SELECT rows_differ('tt', 'th', 'm = ''mid''');
SELECT rows_differ('tt', 'th', 'big = md5(''7'')');
SELECT rows_differ('tt', 'th', 'e2 = ''mid'' AND id < 500');
SET enable_indexscan = off;
SELECT rows_differ('tt', 'th', 'id BETWEEN 11000 AND 14000');
RESET enable_seqscan;
RESET enable_indexscan;
SELECT count(*), sum(length(big)), count(e1), count(e4), count(DISTINCT e1) FROM tt;
DELETE FROM th WHERE id % 4 = 1;
DELETE FROM tt WHERE id % 4 = 1;
VACUUM tt;
SELECT rows_differ('tt', 'th');
SET enable_seqscan = off;
SELECT rows_differ('tt', 'th', 'id BETWEEN 1 AND 2000');
RESET enable_seqscan;
DROP TABLE tt, th;

-- 2. (held up) Partitions, VACUUM (ANALYZE) through the parent, rows moved
-- between partitions by UPDATE
CREATE TABLE ph (id int, k int, v text) PARTITION BY RANGE (k);
CREATE TABLE ph1 PARTITION OF ph FOR VALUES FROM (0) TO (5);
CREATE TABLE ph2 PARTITION OF ph FOR VALUES FROM (5) TO (10);
CREATE TABLE pt (id int, k int, v text) PARTITION BY RANGE (k);
CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (5) USING destor;
CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (5) TO (10) USING destor;
CREATE INDEX ON pt (id);
INSERT INTO ph SELECT i, i % 10, md5(i::text) FROM generate_series(1, 20000) i;
INSERT INTO pt SELECT i, i % 10, md5(i::text) FROM generate_series(1, 20000) i;
DELETE FROM ph WHERE id % 3 = 0;
DELETE FROM pt WHERE id % 3 = 0;
UPDATE ph SET k = 9 - k WHERE id % 7 = 0;
UPDATE pt SET k = 9 - k WHERE id % 7 = 0;
CREATE TEMP TABLE pt_seg0 AS SELECT 'pt1' AS t, * FROM vb_segments('pt1') UNION ALL SELECT 'pt2', * FROM vb_segments('pt2');
VACUUM (ANALYZE) pt;
SELECT count(*) AS rewritten FROM (SELECT 'pt1' AS t, * FROM vb_segments('pt1') UNION ALL SELECT 'pt2', * FROM vb_segments('pt2')) s
  JOIN pt_seg0 b USING (t, segment_no) WHERE s.object_id <> b.object_id;
SELECT rows_differ('pt', 'ph');
SET enable_seqscan = off;
SELECT rows_differ('pt', 'ph', 'id BETWEEN 100 AND 2000');
RESET enable_seqscan;
SELECT sum(reltuples) = (SELECT count(*) FROM ph) AS analyzed FROM pg_class WHERE relname IN ('pt1', 'pt2');
DROP TABLE pt, ph;

-- 3. (held up) Deletions of subtransactions, rolled back and released, an
-- aborted writer (its rows and deletions), deleted keys free again
CREATE TABLE sh (id int PRIMARY KEY, v text);
CREATE TABLE st (id int PRIMARY KEY, v text) USING destor;
INSERT INTO sh SELECT i, md5(i::text) FROM generate_series(1, 20000) i;
INSERT INTO st SELECT i, md5(i::text) FROM generate_series(1, 20000) i;
BEGIN;
DELETE FROM st WHERE id % 2 = 0;
SAVEPOINT a;
DELETE FROM st WHERE id % 3 = 0;
ROLLBACK TO a;
SAVEPOINT b;
DELETE FROM st WHERE id % 5 = 0;
RELEASE b;
SAVEPOINT c;
UPDATE st SET v = 'upd' WHERE id % 7 = 0;
SAVEPOINT d;
DELETE FROM st WHERE id % 11 = 0;
ROLLBACK TO d;
RELEASE c;
COMMIT;
BEGIN;
DELETE FROM sh WHERE id % 2 = 0;
DELETE FROM sh WHERE id % 5 = 0;
UPDATE sh SET v = 'upd' WHERE id % 7 = 0;
COMMIT;
BEGIN;
INSERT INTO st SELECT i, 'x' FROM generate_series(30001, 31000) i;
DELETE FROM st WHERE id < 100;
ROLLBACK;
VACUUM st;
SELECT rows_differ('st', 'sh');
SET enable_seqscan = off;
SELECT rows_differ('st', 'sh', 'id BETWEEN 10 AND 3000');
SELECT rows_differ('st', 'sh', 'id IN (11, 22, 33, 35, 70, 77, 99, 30001)');
RESET enable_seqscan;
INSERT INTO st SELECT i, 'again' FROM generate_series(2, 200, 2) i;
INSERT INTO sh SELECT i, 'again' FROM generate_series(2, 200, 2) i;
INSERT INTO st VALUES (30001, 'x');
INSERT INTO sh VALUES (30001, 'x');
INSERT INTO st VALUES (1, 'dup');
SELECT rows_differ('st', 'sh');
DROP TABLE st, sh;

-- 4. (held up) A table with no columns, and one whose columns were all
-- dropped and one added with a default
CREATE TABLE z0 () USING destor;
INSERT INTO z0 SELECT FROM generate_series(1, 1000);
DELETE FROM z0 WHERE ctid IN (SELECT ctid FROM z0 LIMIT 500);
VACUUM z0;
SELECT count(*) FROM z0;
ALTER TABLE z0 ADD COLUMN a int DEFAULT 5;
SELECT count(*), sum(a) FROM z0;
CREATE TABLE zh (x int, y text) USING destor;
INSERT INTO zh SELECT i, 'y' FROM generate_series(1, 1000) i;
ALTER TABLE zh DROP COLUMN x, DROP COLUMN y;
DELETE FROM zh WHERE ctid IN (SELECT ctid FROM zh LIMIT 300);
ALTER TABLE zh ADD COLUMN z int DEFAULT 9;
VACUUM zh;
SELECT count(*), sum(z) FROM zh;
DROP TABLE z0, zh;

-- 5. (V2) A rewrite must not make a segment larger than it was: heap's
-- VACUUM never grows a table.  Regular, compressible values lose their
-- pattern when every third row becomes a tombstone, and a column added
-- with a default (stored nowhere before) is written into every live row.
CREATE TABLE gr (id int, v text) USING destor;
INSERT INTO gr SELECT i, 'v' || i FROM generate_series(1, 30000) i;
DELETE FROM gr WHERE id % 3 = 0;
CREATE TEMP TABLE gr_seg0 AS SELECT * FROM vb_segments('gr');
VACUUM gr;
SELECT s.bytes <= b.bytes AS not_larger
  FROM vb_segments('gr') s JOIN gr_seg0 b USING (segment_no);
CREATE TABLE gd (id int) USING destor;
INSERT INTO gd SELECT generate_series(1, 10000);
ALTER TABLE gd ADD COLUMN pad text DEFAULT repeat('pad', 300);
DELETE FROM gd WHERE id % 4 = 0;
CREATE TEMP TABLE gd_seg0 AS SELECT * FROM vb_segments('gd');
VACUUM gd;
SELECT s.bytes <= b.bytes AS not_larger
  FROM vb_segments('gd') s JOIN gd_seg0 b USING (segment_no);
SELECT count(*), sum(length(pad)) FROM gd;
DROP TABLE gr, gd;

-- 6. (V3) A column added with a large default: the rewrite writes the
-- default into every live row of a row group it may not split, past the 1 GB
-- a buffer may hold; VACUUM fails (every time: the whole table's VACUUM,
-- index cleanup included), where heap's succeeds.  (Allocates about 1 GB.)
CREATE TABLE bd (id int) USING destor;
CREATE TABLE bdh (id int);
INSERT INTO bd SELECT generate_series(1, 10000);
INSERT INTO bdh SELECT generate_series(1, 10000);
ALTER TABLE bd ADD COLUMN pad text DEFAULT repeat('x', 150000);
ALTER TABLE bdh ADD COLUMN pad text DEFAULT repeat('x', 150000);
DELETE FROM bd WHERE id % 4 = 0;
DELETE FROM bdh WHERE id % 4 = 0;
VACUUM bdh;
VACUUM bd;
SELECT count(*), sum(length(pad)) FROM bd;
DROP TABLE bd, bdh;

DROP FUNCTION vb_segments(regclass);
DROP TYPE vb_pair;
DROP TYPE vb_mood;
DROP DOMAIN vb_pos;
