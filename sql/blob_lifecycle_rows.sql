-- Blobs and the rows that hold them (issue 15, found by an adversarial
-- review): blob_manage with rows moved between partitions and blobs
-- exchanged or handed over in one UPDATE; a blob_close rolled back.
\i test/regress/setup.sql
\set VERBOSITY terse
CREATE SCHEMA brk3t;

-- F1. blob_manage on a partitioned table: an UPDATE that moves a row to
-- another partition (keeping its blob) is run by PostgreSQL as a DELETE on
-- the old partition and an INSERT into the new one, and the DELETE row
-- trigger deletes the blob the moved row still references.  BEFORE and
-- AFTER triggers alike.  The row must keep a readable blob.
CREATE TABLE brk3t.parts (k int, b destor.blob) PARTITION BY RANGE (k);
CREATE TABLE brk3t.parts_lo PARTITION OF brk3t.parts FOR VALUES FROM (0) TO (10);
CREATE TABLE brk3t.parts_hi PARTITION OF brk3t.parts FOR VALUES FROM (10) TO (20);
CREATE TRIGGER manage BEFORE UPDATE OR DELETE ON brk3t.parts
  FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('b');
INSERT INTO brk3t.parts VALUES (1, destor.blob_put('mirror', 'moved before'));
UPDATE brk3t.parts SET k = 11 WHERE k = 1;
SELECT tableoid::regclass AS part, k, encode(destor.blob_get(b), 'escape') AS content FROM brk3t.parts;
DROP TRIGGER manage ON brk3t.parts;
CREATE TRIGGER manage AFTER UPDATE OR DELETE ON brk3t.parts
  FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('b');
TRUNCATE brk3t.parts;
INSERT INTO brk3t.parts VALUES (2, destor.blob_put('mirror', 'moved after'));
UPDATE brk3t.parts SET k = 12 WHERE k = 2;
SELECT tableoid::regclass AS part, k, encode(destor.blob_get(b), 'escape') AS content FROM brk3t.parts;
-- and the moved row can still be deleted (its blob going with it)
DELETE FROM brk3t.parts;

-- F2. One UPDATE that exchanges two rows' blobs deletes both, though each
-- is still referenced by a row after the statement.
CREATE TABLE brk3t.swap (k int, b destor.blob);
CREATE TRIGGER manage BEFORE UPDATE OR DELETE ON brk3t.swap
  FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('b');
INSERT INTO brk3t.swap VALUES (1, destor.blob_put('mirror', 'one')), (2, destor.blob_put('mirror', 'two'));
UPDATE brk3t.swap s SET b = o.b FROM brk3t.swap o WHERE o.k = 3 - s.k;
SELECT k, encode(destor.blob_get(b), 'escape') AS content FROM brk3t.swap ORDER BY k;
-- a blob moved from one row to another in one statement: kept
CREATE TABLE brk3t.hand (k int, b destor.blob);
CREATE TRIGGER manage BEFORE UPDATE OR DELETE ON brk3t.hand
  FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('b');
INSERT INTO brk3t.hand VALUES (1, destor.blob_put('mirror', 'handed over')), (2, NULL);
UPDATE brk3t.hand SET b = CASE k WHEN 1 THEN NULL ELSE (SELECT b FROM brk3t.hand WHERE k = 1) END;
SELECT k, encode(destor.blob_get(b), 'escape') AS content FROM brk3t.hand ORDER BY k;

-- F6. blob_close in a subtransaction that rolls back (ROLLBACK TO, or an
-- exception block in PL/pgSQL): the blob's row goes with it, but the object
-- was tracked for deletion at abort under the subtransaction that called
-- blob_create, so the outer COMMIT keeps its shards with no catalog row:
-- orphans until cleanup_orphans' grace period.  No new shard file may stay.
SELECT shard_files(:'dir') AS files0 \gset
BEGIN;
SELECT destor.blob_create('archive') AS fd \gset
SELECT destor.blob_write(:fd, noise(300000, 61)) AS written;
SAVEPOINT s;
SELECT destor.blob_close(:fd) IS NOT NULL AS closed;
ROLLBACK TO s;
COMMIT;
SELECT shard_files(:'dir') - :files0 AS files_left_by_rolled_back_close;
BEGIN;
SELECT destor.blob_create('archive') AS fd \gset
SELECT set_config('brk3t.fd', :'fd', true) IS NOT NULL AS fd_set;
SELECT destor.blob_write(:fd, noise(300000, 62)) AS written;
DO $$
BEGIN
  PERFORM destor.blob_close(current_setting('brk3t.fd')::int);
  RAISE EXCEPTION 'changed my mind';
EXCEPTION WHEN raise_exception THEN NULL;
END $$;
COMMIT;
SELECT shard_files(:'dir') - :files0 AS files_left_by_close_in_exception_block;

-- Handles compare as large objects' oids do: = (through destor's schema),
-- DISTINCT, UNIQUE, btree and hash indexes, hash joins
CREATE TABLE brk3t.refs (b destor.blob UNIQUE);
INSERT INTO brk3t.refs VALUES (destor.blob_put('mirror', 'a')), (destor.blob_put('mirror', 'b'));
SELECT count(*) AS equal_to_itself FROM brk3t.refs r1 JOIN brk3t.refs r2 ON r1.b OPERATOR(destor.=) r2.b;
INSERT INTO brk3t.refs SELECT b FROM brk3t.refs LIMIT 1;
SELECT count(DISTINCT b) AS distinct_handles, count(*) FILTER (WHERE b OPERATOR(destor.<>) b) AS unequal
  FROM (SELECT b FROM brk3t.refs UNION ALL SELECT b FROM brk3t.refs) u;
CREATE INDEX ON brk3t.refs USING hash (b);
SET enable_seqscan = off;
SET search_path = brk3t, destor, public;
SELECT count(*) AS found_by_index FROM refs WHERE b = (SELECT b FROM refs ORDER BY b DESC LIMIT 1);
RESET search_path;
RESET enable_seqscan;
SELECT count(destor.blob_delete(b)) AS deleted FROM brk3t.refs;

DROP SCHEMA brk3t CASCADE;
