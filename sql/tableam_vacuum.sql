-- VACUUM of a table USING destor rewrites its partly deleted segments (issue
-- 14): the rows deleted for every snapshot lose their values, every other row
-- keeps its values and its tid (its index entries name it), and the old
-- objects stay readable until cleanup_orphans' grace period.  Every answer is
-- compared with the same statements on a heap table.
\i test/regress/setup.sql
SET destor.default_pool = 'archive';
SET max_parallel_workers_per_gather = 0;

CREATE TYPE vac_mood AS ENUM ('low', 'mid', 'high');
CREATE TABLE vh (id int PRIMARY KEY, dev int, ts timestamptz, v text, f float8, m vac_mood, gone int);
CREATE TABLE vt (id int PRIMARY KEY, dev int, ts timestamptz, v text, f float8, m vac_mood, gone int)
  USING destor;
CREATE INDEX vh_dev ON vh (dev, ts);
CREATE INDEX vt_dev ON vt (dev, ts);
CREATE INDEX vt_v ON vt USING hash (v);
INSERT INTO vh
  SELECT i, i % 17, '2024-01-01'::timestamptz + i * interval '1 minute',
         CASE WHEN i % 11 = 0 THEN NULL ELSE md5(i::text) || repeat('x', i % 40) END,
         i / 7.0, (ARRAY['low', 'mid', 'high']::vac_mood[])[1 + i % 3], i
    FROM generate_series(1, 35000) i;
-- two segments: 30,000 rows (three row groups) and 5,000
INSERT INTO vt SELECT * FROM vh WHERE id <= 30000;
INSERT INTO vt SELECT * FROM vh WHERE id > 30000;
ALTER TABLE vh DROP COLUMN gone;
ALTER TABLE vt DROP COLUMN gone;

-- the table's segments as the catalog has them, and their stored bytes
CREATE FUNCTION vt_segments() RETURNS TABLE (segment_no bigint, object_id uuid, row_count bigint,
                                             bytes bigint)
LANGUAGE sql AS $$
  SELECT g.segment_no, g.object_id, g.row_count, o.size
    FROM destor.segments g
    JOIN destor.am_tables a ON a.table_id = g.table_id
    JOIN destor.objects o ON o.object_id = g.object_id
   WHERE a.relfilenode = pg_relation_filenode('vt')
   ORDER BY 1 $$;
CREATE FUNCTION am_objects(r regclass) RETURNS uuid[] LANGUAGE sql AS $$
  SELECT array_agg(g.object_id ORDER BY g.segment_no) FROM destor.segments g
    JOIN destor.am_tables a ON a.table_id = g.table_id
   WHERE a.relfilenode = pg_relation_filenode(r) $$;
CREATE TEMP TABLE seg0 AS SELECT * FROM vt_segments();
SELECT segment_no, row_count FROM seg0;
CREATE TEMP TABLE tids0 AS SELECT id, ctid AS tid FROM vt;

-- 1. A whole row group and a third of the other rows deleted, some rows
-- updated (a delete and an insert under a new tid): both segments are
-- rewritten, the new one (the updated rows) is not
DELETE FROM vh WHERE id BETWEEN 10001 AND 20000 OR id % 3 = 0;
DELETE FROM vt WHERE id BETWEEN 10001 AND 20000 OR id % 3 = 0;
UPDATE vh SET f = f + 1, m = 'high' WHERE id % 10 = 1 AND id <= 5000;
UPDATE vt SET f = f + 1, m = 'high' WHERE id % 10 = 1 AND id <= 5000;
CREATE TEMP TABLE seg1 AS SELECT * FROM vt_segments();
VACUUM vt;
CREATE TEMP TABLE seg2 AS SELECT * FROM vt_segments();
SELECT s.segment_no, s.row_count, s.object_id <> b.object_id AS rewritten,
       s.bytes < b.bytes AS smaller, s.bytes < b.bytes * 0.6 AS under_60pct
  FROM seg2 s JOIN seg1 b USING (segment_no) ORDER BY 1;
-- the same rows by every path, and every live row at its old tid
SET enable_indexscan = off; SET enable_bitmapscan = off;
SELECT rows_differ('vt', 'vh');
SELECT rows_differ('vt', 'vh', 'id BETWEEN 9000 AND 21000');
RESET enable_indexscan; RESET enable_bitmapscan;
SET enable_seqscan = off;
SELECT rows_differ('vt', 'vh', 'id IN (1, 2, 3, 10000, 10001, 15000, 20001, 30001, 34999)');
SELECT rows_differ('vt', 'vh', 'dev = 5 AND ts < ''2024-01-10''');
SELECT rows_differ('vt', 'vh', 'v = md5(''20002'') || repeat(''x'', 20002 % 40)');
SELECT count(*) FROM vt WHERE id BETWEEN 10001 AND 20000;
RESET enable_seqscan;
SELECT count(*) AS moved FROM vt JOIN tids0 t USING (id) WHERE vt.ctid <> t.tid AND vt.id % 10 <> 1;
SELECT count(*) AS kept_tid FROM vt JOIN tids0 t USING (id) WHERE vt.ctid = t.tid;
SELECT count(*), count(v), count(DISTINCT m), sum(id), sum(f) FROM vt;

-- 2. Nothing newly dead: a second VACUUM rewrites nothing
VACUUM vt;
SELECT count(*) AS changed FROM vt_segments() s JOIN seg2 b USING (segment_no)
 WHERE s.object_id <> b.object_id;

-- 3. Deleted keys are free again, live ones are not; the rewritten
-- segments take deletes, updates and row locks as before
INSERT INTO vh VALUES (15000, 1, now(), 'again', 0, 'low');
INSERT INTO vt VALUES (15000, 1, (SELECT ts FROM vh WHERE id = 15000), 'again', 0, 'low');
INSERT INTO vt VALUES (2, 1, now(), 'dup', 0, 'low');
BEGIN;
SELECT id, v FROM vt WHERE id = 20002 FOR UPDATE;
UPDATE vt SET v = 'locked and changed' WHERE id = 20002;
COMMIT;
UPDATE vh SET v = 'locked and changed' WHERE id = 20002;
DELETE FROM vh WHERE id % 5 = 0 AND id > 20000;
DELETE FROM vt WHERE id % 5 = 0 AND id > 20000;
SELECT rows_differ('vt', 'vh');

-- 4. Newly dead rows make a segment due again: segment 2 (over a fifth of
-- its rows), not segment 1 (under a tenth); columns added since a segment
-- was written keep their default through its rewrite (here and in 5)
ALTER TABLE vh ADD COLUMN extra int DEFAULT 42;
ALTER TABLE vt ADD COLUMN extra int DEFAULT 42;
DELETE FROM vh WHERE id % 4 = 1 AND id > 20000;
DELETE FROM vt WHERE id % 4 = 1 AND id > 20000;
CREATE TEMP TABLE seg3 AS SELECT * FROM vt_segments();
VACUUM vt;
SELECT s.segment_no, s.object_id <> b.object_id AS rewritten
  FROM vt_segments() s JOIN seg3 b USING (segment_no) ORDER BY 1;
SELECT rows_differ('vt', 'vh');
SELECT count(*), sum(extra) FROM vt WHERE id > 20000;
SELECT count(*), sum(extra) FROM vt WHERE id > 30000;

-- 5. destor.vacuum_rewrite_fraction: 1 turns rewrites off, 0 rewrites a
-- segment with any newly dead row
DELETE FROM vh WHERE id IN (4, 5);
DELETE FROM vt WHERE id IN (4, 5);
CREATE TEMP TABLE seg4 AS SELECT * FROM vt_segments();
SET destor.vacuum_rewrite_fraction = 1;
VACUUM vt;
SELECT count(*) AS changed FROM vt_segments() s JOIN seg4 b USING (segment_no)
 WHERE s.object_id <> b.object_id;
SET destor.vacuum_rewrite_fraction = 0;
VACUUM vt;
SELECT s.segment_no, s.object_id <> b.object_id AS rewritten
  FROM vt_segments() s JOIN seg4 b USING (segment_no) ORDER BY 1;
RESET destor.vacuum_rewrite_fraction;
SET destor.vacuum_rewrite_fraction = 1.5;
SELECT rows_differ('vt', 'vh');
SELECT count(*), sum(extra) FROM vt WHERE id <= 30000;

-- 6. The old objects are retired, not deleted: cleanup_orphans removes
-- them after its grace period, and the table reads from the new ones
SELECT count(*) > 0 AS retired FROM destor.retired r
 WHERE r.object_id IN (SELECT object_id FROM seg0 UNION SELECT object_id FROM seg2);
SELECT destor.cleanup_orphans('archive', '0') > 0 AS cleaned;
SELECT count(*) AS left_retired FROM destor.retired r
 WHERE r.object_id IN (SELECT object_id FROM seg0 UNION SELECT object_id FROM seg2);
SELECT rows_differ('vt', 'vh');
SET enable_seqscan = off;
SELECT rows_differ('vt', 'vh', 'id BETWEEN 29990 AND 30010');
RESET enable_seqscan;
ANALYZE vt;
SELECT reltuples = (SELECT count(*) FROM vh) AS analyzed FROM pg_class WHERE oid = 'vt'::regclass;

-- 7. VACUUM FULL is this VACUUM with every dead row pruned (a copy into a
-- new relfilenode would hide the rows from older snapshots): tids kept,
-- whatever destor.vacuum_rewrite_fraction says; for a whole database and
-- partitioned parents too.  CLUSTER is refused up front.
DELETE FROM vh WHERE id IN (7, 8);
DELETE FROM vt WHERE id IN (7, 8);
CREATE TEMP TABLE seg5 AS SELECT * FROM vt_segments();
CREATE TEMP TABLE tids5 AS SELECT id, ctid AS tid FROM vt;
SET destor.vacuum_rewrite_fraction = 1;
VACUUM (FULL, ANALYZE) vt, vh;
SELECT s.segment_no, s.object_id <> b.object_id AS rewritten
  FROM vt_segments() s JOIN seg5 b USING (segment_no) ORDER BY 1;
SELECT count(*) AS moved FROM vt JOIN tids5 t USING (id) WHERE vt.ctid <> t.tid;
SELECT rows_differ('vt', 'vh');
RESET destor.vacuum_rewrite_fraction;
BEGIN;
VACUUM FULL vt;
ROLLBACK;
CLUSTER vt USING vt_pkey;
ALTER TABLE vt CLUSTER ON vt_pkey;
CREATE TABLE vp (id int, ts date, v text, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
CREATE TABLE vp1 PARTITION OF vp FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE vp2 PARTITION OF vp FOR VALUES FROM ('2024-02-01') TO ('2024-03-01') USING destor;
INSERT INTO vp SELECT i, '2024-01-01'::date + i % 59, md5(i::text) FROM generate_series(1, 6000) i;
DELETE FROM vp WHERE id % 2 = 0;
SELECT am_objects('vp2') AS vp2_objects \gset
VACUUM FULL vp;
SELECT am_objects('vp2') <> :'vp2_objects' AS rewritten;
SELECT count(*), sum(id) FROM vp;
SELECT count(*), sum(id) FROM vp2 WHERE id BETWEEN 100 AND 3000;
CLUSTER vp USING vp_pkey;
DELETE FROM vp WHERE id % 3 = 0;
SELECT am_objects('vp2') AS vp2_objects \gset
VACUUM FULL;
SELECT am_objects('vp2') <> :'vp2_objects' AS rewritten;
SELECT count(*), sum(id) FROM vp;
SET enable_seqscan = off;
SELECT id, ts FROM vp WHERE id IN (1, 2, 3, 5, 31, 35) ORDER BY id;
RESET enable_seqscan;
-- a role that does not own the table: PostgreSQL's warning, nothing done
SET ROLE regress_destor_user;
VACUUM FULL vt;
RESET ROLE;
DROP TABLE vp;

-- 8. Inserts, updates and deletes count in the cumulative statistics as
-- heap's do, and VACUUM reports what it left: autovacuum decides from them
CREATE TABLE sh (id int PRIMARY KEY, v text);
CREATE TABLE sv (id int PRIMARY KEY, v text) USING destor;
INSERT INTO sh SELECT i, 'x' FROM generate_series(1, 1000) i;
INSERT INTO sv SELECT i, 'x' FROM generate_series(1, 1000) i;
COPY sh (id) FROM PROGRAM 'seq 1001 1100';
COPY sv (id) FROM PROGRAM 'seq 1001 1100';
UPDATE sh SET v = 'y' WHERE id <= 100;
UPDATE sv SET v = 'y' WHERE id <= 100;
DELETE FROM sh WHERE id > 900;
DELETE FROM sv WHERE id > 900;
BEGIN;
DELETE FROM sh WHERE id = 1;
DELETE FROM sv WHERE id = 1;
ROLLBACK;
SELECT pg_stat_force_next_flush();
SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, n_live_tup, n_dead_tup
  FROM pg_stat_user_tables WHERE relname IN ('sh', 'sv') ORDER BY 1;
VACUUM sh;
VACUUM sv;
SELECT relname, n_live_tup, n_dead_tup, vacuum_count
  FROM pg_stat_user_tables WHERE relname IN ('sh', 'sv') ORDER BY 1;
DROP TABLE sh, sv;

-- 9. Emptied: the segments go altogether, as before
DELETE FROM vt;
VACUUM vt;
SELECT count(*) FROM vt_segments();

DROP TABLE vt, vh;
DROP FUNCTION vt_segments(), am_objects(regclass);
DROP TYPE vac_mood;
