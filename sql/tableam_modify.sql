-- The table access method destor, stage 3 (issue 14): DELETE and UPDATE
-- recorded as deletion bitmaps, seen by every way of reading a row, and row
-- locks standing on segment locks.  Every answer is compared with the same
-- rows and statements on a heap table.
\i test/regress/setup.sql
SET destor.default_pool = 'archive';
SET max_parallel_workers_per_gather = 0;

-- the same query by sequential, index and bitmap scan: each must match heap
CREATE FUNCTION am_differ_paths(a regclass, b regclass, q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE r text := '';
BEGIN
  SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;
  r := r || 'seq ' || rows_differ(a, b, q);
  SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on;
  r := r || ', index ' || rows_differ(a, b, q);
  SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = on;
  r := r || ', bitmap ' || rows_differ(a, b, q);
  RESET enable_seqscan; RESET enable_indexscan; RESET enable_bitmapscan;
  RETURN r;
END $$;

CREATE TABLE h (id int PRIMARY KEY, dev int, v text);
CREATE TABLE t (id int PRIMARY KEY, dev int, v text) USING destor;
CREATE INDEX h_dev ON h (dev);
CREATE INDEX t_dev ON t (dev);
INSERT INTO h SELECT i, i % 10, 'row ' || i FROM generate_series(1, 3000) i;
INSERT INTO t SELECT * FROM h WHERE id <= 2000;
INSERT INTO t SELECT * FROM h WHERE id > 2000;

-- 1. DELETE: a deleted row is no row for scans, index and bitmap fetches,
-- TID scans; RETURNING gives the old row
DELETE FROM h WHERE id % 7 = 0;
DELETE FROM t WHERE id % 7 = 0;
DELETE FROM h WHERE dev = 3 AND id > 2500 RETURNING *;
DELETE FROM t WHERE dev = 3 AND id > 2500 RETURNING *;
SELECT am_differ_paths('t', 'h', 'id BETWEEN 690 AND 730 OR dev = 3');
SELECT rows_differ('t', 'h');
SELECT count(*) FROM t WHERE ctid = (SELECT ctid FROM t WHERE id = 8) OR ctid = '(0,7)';
-- the counts the planner sees leave out deleted rows
ANALYZE t;
SELECT reltuples FROM pg_class WHERE oid = 't'::regclass;
-- USING, a subquery, a join producing a row twice
CREATE TABLE am_victims (id int);
INSERT INTO am_victims VALUES (1), (1), (2), (3), (9999);
DELETE FROM h USING am_victims WHERE h.id = am_victims.id;
DELETE FROM t USING am_victims WHERE t.id = am_victims.id;
DELETE FROM h WHERE id IN (SELECT id + 10 FROM am_victims);
DELETE FROM t WHERE id IN (SELECT id + 10 FROM am_victims);
SELECT rows_differ('t', 'h');
-- a deleted key is free again: after commit and in the same transaction
INSERT INTO t VALUES (7, 70, 'seven again');
INSERT INTO h VALUES (7, 70, 'seven again');
BEGIN;
DELETE FROM t WHERE id = 8;
INSERT INTO t VALUES (8, 80, 'eight again');
DELETE FROM h WHERE id = 8;
INSERT INTO h VALUES (8, 80, 'eight again');
SELECT am_differ_paths('t', 'h', 'id < 20');
COMMIT;
INSERT INTO t VALUES (9, 1, 'a live key still conflicts');
-- a savepoint rolled back takes its deletions with it
BEGIN;
SAVEPOINT s;
DELETE FROM t WHERE id < 100;
SELECT count(*) FROM t WHERE id < 100;
ROLLBACK TO SAVEPOINT s;
SELECT am_differ_paths('t', 'h', 'id < 100');
COMMIT;
-- a function called by the DELETE sees the rows it deleted so far
CREATE FUNCTION t_count() RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT count(*) FROM t';
CREATE FUNCTION h_count() RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT count(*) FROM h';
WITH d AS (DELETE FROM t WHERE id BETWEEN 105 AND 107 RETURNING t_count() AS n) SELECT array_agg(n ORDER BY n) FROM d;
WITH d AS (DELETE FROM h WHERE id BETWEEN 105 AND 107 RETURNING h_count() AS n) SELECT array_agg(n ORDER BY n) FROM d;
-- rows of the transaction, still buffered by the statement that wrote them,
-- deleted by a function that statement calls
CREATE FUNCTION t_del(k int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN DELETE FROM t WHERE id = k - 1; RETURN k; END $$;
CREATE FUNCTION h_del(k int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN DELETE FROM h WHERE id = k - 1; RETURN k; END $$;
INSERT INTO t SELECT t_del(i), 5, 'buffered' FROM generate_series(5001, 5004) i;
INSERT INTO h SELECT h_del(i), 5, 'buffered' FROM generate_series(5001, 5004) i;
SELECT am_differ_paths('t', 'h', 'id > 5000');
-- WHERE CURRENT OF
BEGIN;
DECLARE c CURSOR FOR SELECT * FROM t WHERE id = 20;
FETCH c;
DELETE FROM t WHERE CURRENT OF c;
COMMIT;
DELETE FROM h WHERE id = 20;
SELECT rows_differ('t', 'h');

-- 2. UPDATE: a delete and an insert of the new version (a new tid)
UPDATE h SET v = v || ' updated' WHERE dev = 4 AND id < 1000;
UPDATE t SET v = v || ' updated' WHERE dev = 4 AND id < 1000;
SELECT am_differ_paths('t', 'h', 'dev = 4');
-- of the primary key; RETURNING; FROM
UPDATE h SET id = id + 10000 WHERE id BETWEEN 30 AND 40 RETURNING *;
UPDATE t SET id = id + 10000 WHERE id BETWEEN 30 AND 40 RETURNING *;
UPDATE h SET dev = am_victims.id FROM am_victims WHERE h.id = am_victims.id + 40;
UPDATE t SET dev = am_victims.id FROM am_victims WHERE t.id = am_victims.id + 40;
SELECT am_differ_paths('t', 'h', 'id < 100 OR id > 10000');
-- a key moved onto another row's key fails as with heap
UPDATE t SET id = 45 WHERE id = 44;
-- the same row updated twice in a transaction, then deleted
BEGIN;
UPDATE t SET v = 'one' WHERE id = 50;
UPDATE t SET v = 'two' WHERE id = 50;
SELECT v FROM t WHERE id = 50;
DELETE FROM t WHERE id = 50;
SELECT count(*) FROM t WHERE id = 50;
ROLLBACK;
SELECT v FROM t WHERE id = 50;
-- triggers BEFORE and AFTER UPDATE, generated columns
CREATE TABLE am_tg (id int PRIMARY KEY, n int, twice int GENERATED ALWAYS AS (n * 2) STORED, note text) USING destor;
CREATE TABLE am_hg (id int PRIMARY KEY, n int, twice int GENERATED ALWAYS AS (n * 2) STORED, note text);
CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN NEW.note := coalesce(OLD.note, '') || '+'; RETURN NEW; END $$;
CREATE FUNCTION seen() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE NOTICE '% % old % new %', TG_TABLE_NAME, TG_OP, OLD, NEW; RETURN NULL; END $$;
CREATE TRIGGER tg_bump BEFORE UPDATE ON am_tg FOR EACH ROW EXECUTE FUNCTION bump();
CREATE TRIGGER hg_bump BEFORE UPDATE ON am_hg FOR EACH ROW EXECUTE FUNCTION bump();
CREATE TRIGGER tg_seen AFTER UPDATE OR DELETE ON am_tg FOR EACH ROW EXECUTE FUNCTION seen();
CREATE TRIGGER hg_seen AFTER UPDATE OR DELETE ON am_hg FOR EACH ROW EXECUTE FUNCTION seen();
INSERT INTO am_tg (id, n) VALUES (1, 1), (2, 2);
INSERT INTO am_hg (id, n) VALUES (1, 1), (2, 2);
UPDATE am_tg SET n = n + 10;
UPDATE am_hg SET n = n + 10;
DELETE FROM am_tg WHERE id = 2;
DELETE FROM am_hg WHERE id = 2;
SELECT rows_differ('am_tg', 'am_hg');
SELECT * FROM am_tg;
-- UPDATE moving a row to another partition
CREATE TABLE am_tp (id int, part int, PRIMARY KEY (id, part)) PARTITION BY LIST (part);
CREATE TABLE am_tp1 PARTITION OF am_tp FOR VALUES IN (1) USING destor;
CREATE TABLE am_tp2 PARTITION OF am_tp FOR VALUES IN (2) USING destor;
INSERT INTO am_tp SELECT i, 1 FROM generate_series(1, 5) i;
UPDATE am_tp SET part = 2 WHERE id <= 2;
SELECT tableoid::regclass, * FROM am_tp ORDER BY id;
-- TRUNCATE after DELETE in one transaction
BEGIN;
DELETE FROM am_tp1 WHERE id = 3;
TRUNCATE am_tp1;
INSERT INTO am_tp1 VALUES (3, 1);
COMMIT;
SELECT tableoid::regclass, * FROM am_tp ORDER BY id;
-- DELETE in a function called by an INSERT into the same table (above) and
-- by an UPDATE of it
CREATE FUNCTION t_del_other(k int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN DELETE FROM t WHERE id = k + 1; RETURN k; END $$;
CREATE FUNCTION h_del_other(k int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN DELETE FROM h WHERE id = k + 1; RETURN k; END $$;
UPDATE t SET dev = t_del_other(id) WHERE id IN (60, 61);
UPDATE h SET dev = h_del_other(id) WHERE id IN (60, 61);
SELECT am_differ_paths('t', 'h', 'id BETWEEN 60 AND 62');

-- 3. Row locks and foreign keys referencing a destor table
BEGIN;
SELECT * FROM t WHERE id = 75 FOR UPDATE;
SELECT * FROM t WHERE id = 71 FOR SHARE NOWAIT;
SELECT * FROM t WHERE id = 76 FOR KEY SHARE SKIP LOCKED;
UPDATE t SET v = 'locked then updated' WHERE id = 75;
COMMIT;
SELECT v FROM t WHERE id = 75;
CREATE TABLE am_refs (id int PRIMARY KEY, t_id int REFERENCES t ON DELETE RESTRICT);
CREATE TABLE am_refs_cascade (id int, t_id int REFERENCES t ON DELETE CASCADE) USING destor;
INSERT INTO am_refs VALUES (1, 72);
INSERT INTO am_refs VALUES (2, 7000);
INSERT INTO am_refs_cascade VALUES (1, 73), (2, 73), (3, 74);
DELETE FROM t WHERE id = 72;
DELETE FROM t WHERE id = 73;
SELECT * FROM am_refs_cascade ORDER BY id;
UPDATE t SET id = 20072 WHERE id = 72;
DELETE FROM am_refs;
DELETE FROM t WHERE id = 72;
SELECT count(*) FROM t WHERE id = 72;

-- ON CONFLICT DO UPDATE locks the conflicting row and updates it
INSERT INTO t VALUES (76, 0, 'upserted'), (30076, 0, 'new') ON CONFLICT (id) DO UPDATE SET v = excluded.v;
INSERT INTO h VALUES (76, 0, 'upserted'), (30076, 0, 'new') ON CONFLICT (id) DO UPDATE SET v = excluded.v;
SELECT am_differ_paths('t', 'h', 'id IN (76, 30076)');
-- a transaction holds at most 64 segment locks of a table, then one on the
-- whole table (here: 70 segments, one per INSERT statement); a DELETE locks
-- the rows' keys too (tuple 65535, shown as -1), as many, then all keys of the table
CREATE TABLE am_many (id int PRIMARY KEY) USING destor;
DO $$ BEGIN FOR i IN 1..70 LOOP INSERT INTO am_many VALUES (i); END LOOP; END $$;
BEGIN;
DELETE FROM am_many WHERE id > 3;
SELECT tuple = -1 AS key_lock, mode, page = -1 AS whole_table, count(*) FROM pg_locks
  WHERE locktype = 'tuple' AND relation = 'am_many'::regclass AND pid = pg_backend_pid()
  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
COMMIT;
SELECT count(*) FROM am_many;

-- 4. VACUUM removes segments whose rows are all deleted for every snapshot
-- (their objects go after commit) and the index entries of dead rows;
-- rewrites of partly deleted segments are off here (tableam_vacuum)
SET destor.vacuum_rewrite_fraction = 1;
CREATE TABLE am_vt (id int PRIMARY KEY, v text) USING destor;
CREATE INDEX am_vt_v ON am_vt USING hash (v);
SELECT shard_files(:'dir') AS files_before \gset
INSERT INTO am_vt SELECT i, 'a' || i FROM generate_series(1, 1000) i;
INSERT INTO am_vt SELECT i, 'b' || i FROM generate_series(1001, 2000) i;
INSERT INTO am_vt SELECT i, 'c' || i FROM generate_series(2001, 3000) i;
SELECT shard_files(:'dir') - :files_before AS shard_files;
DELETE FROM am_vt WHERE id <= 1000;
DELETE FROM am_vt WHERE id % 2 = 0;
VACUUM (VERBOSE) am_vt;
SELECT shard_files(:'dir') - :files_before AS shard_files;
SET enable_seqscan = off;
SELECT count(*), sum(id) FROM am_vt WHERE id > 0;
SELECT * FROM am_vt WHERE id IN (1, 2, 1001, 1002) OR v = 'c2001';
RESET enable_seqscan;
-- an aborted insert's index entries go too (2 x 100 of the 2,200)
BEGIN;
INSERT INTO am_vt SELECT i, 'd' || i FROM generate_series(3001, 3100) i;
ROLLBACK;
-- emptied by DELETE + VACUUM: nothing stored on the providers
DELETE FROM am_vt;
VACUUM (VERBOSE) am_vt;
SELECT shard_files(:'dir') - :files_before AS shard_files;
INSERT INTO am_vt VALUES (1, 'again');
SELECT * FROM am_vt;
RESET destor.vacuum_rewrite_fraction;

-- 5. What is still refused, clearly
BEGIN;
DELETE FROM t WHERE id = 80;
PREPARE TRANSACTION 'am_modify';
SELECT count(*) FROM t WHERE id = 80;

DROP TABLE am_refs, am_refs_cascade, am_tp, am_tg, am_hg, am_victims, am_many, am_vt, t, h;
DROP FUNCTION am_differ_paths(regclass, regclass, text),
  t_count(), h_count(), t_del(int), h_del(int), t_del_other(int), h_del_other(int), bump(), seen();

-- UPDATE of a row whose foreign key is set (the check asks the old row's
-- xmin), ON UPDATE CASCADE into a destor table, a tree referencing itself;
-- every result compared with heap
CREATE TABLE am_fk_p (k int PRIMARY KEY);
INSERT INTO am_fk_p VALUES (1), (2), (3);
CREATE TABLE am_fk_c (id int PRIMARY KEY, k int REFERENCES am_fk_p ON UPDATE CASCADE, v text) USING destor;
CREATE TABLE am_fk_h (id int PRIMARY KEY, k int REFERENCES am_fk_p ON UPDATE CASCADE, v text);
INSERT INTO am_fk_c VALUES (1, 1, 'a'), (2, 2, 'b'), (3, NULL, 'c');
INSERT INTO am_fk_h SELECT * FROM am_fk_c;
UPDATE am_fk_c SET v = 'x' WHERE id = 1;
UPDATE am_fk_h SET v = 'x' WHERE id = 1;
UPDATE am_fk_c SET k = 3 WHERE id = 2;
UPDATE am_fk_h SET k = 3 WHERE id = 2;
\set VERBOSITY terse
UPDATE am_fk_c SET k = 9 WHERE id = 1;
UPDATE am_fk_h SET k = 9 WHERE id = 1;
\set VERBOSITY default
UPDATE am_fk_p SET k = 10 WHERE k = 3;
-- in one transaction: a row inserted, then updated with the same key
BEGIN;
INSERT INTO am_fk_c VALUES (4, 1, 'd');
UPDATE am_fk_c SET v = 'dd' WHERE id = 4;
INSERT INTO am_fk_h VALUES (4, 1, 'd');
UPDATE am_fk_h SET v = 'dd' WHERE id = 4;
COMMIT;
SELECT (SELECT array_agg(row(c.*)::text ORDER BY id) FROM am_fk_c c) =
       (SELECT array_agg(row(h.*)::text ORDER BY id) FROM am_fk_h h) AS same_as_heap,
       (SELECT array_agg(row(c.*)::text ORDER BY id) FROM am_fk_c c) AS rows;
CREATE TABLE am_fk_tree (id int PRIMARY KEY, parent int REFERENCES am_fk_tree ON UPDATE CASCADE) USING destor;
INSERT INTO am_fk_tree VALUES (1, NULL);
INSERT INTO am_fk_tree VALUES (2, 1), (3, 1);
UPDATE am_fk_tree SET id = 100 WHERE id = 1;
SELECT id, parent FROM am_fk_tree ORDER BY id;
DROP TABLE am_fk_c, am_fk_h, am_fk_p, am_fk_tree;
