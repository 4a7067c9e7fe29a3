-- Small blobs packed inside subtransactions (issue 15): memory stays
-- bounded, and a pack uploaded in a subtransaction that aborts is written
-- again with exactly the blobs of the enclosing transactions.
\i test/regress/setup.sql
CREATE SCHEMA bk2t;
CREATE TABLE bk2t.s (i int, b destor.blob);
CREATE FUNCTION bk2t.top() RETURNS bigint LANGUAGE sql AS $$
  SELECT sum(total_bytes) FROM pg_backend_memory_contexts WHERE name = 'TopMemoryContext' $$;

-- F5. Small blobs written inside one subtransaction (a PL/pgSQL block with
-- an EXCEPTION clause, a SAVEPOINT) keep every uploaded pack's whole
-- buffer until the subtransaction ends: backend memory grows with the data
-- written (here ~37 packs of 64 kB; a loader writing gigabytes of small
-- blobs in one such block runs out of memory).  Bounded: a few packs.
SET destor.blob_pack_threshold = 4000;
SET destor.blob_pack_size = '64kB';
CREATE TABLE bk2t.m (growth bigint);
DO $$
DECLARE
  before bigint := bk2t.top();
BEGIN
  BEGIN
    INSERT INTO bk2t.s SELECT i, destor.blob_put('mirror', noise(4000, i)) FROM generate_series(1, 600) i;
    INSERT INTO bk2t.m VALUES (bk2t.top() - before);
  EXCEPTION WHEN OTHERS THEN
    RAISE;
  END;
END $$;
SELECT growth < 512 * 1024 AS bounded FROM bk2t.m;
SELECT count(*) AS blobs, count(*) FILTER (WHERE destor.blob_get(b) = noise(4000, i)) AS exact FROM bk2t.s;
SELECT count(destor.blob_delete(b)) >= 0 AS cleaned FROM bk2t.s;
TRUNCATE bk2t.s;

-- A subtransaction that uploaded packs aborts: the blobs written before it
-- (in the pack it flushed) are written again, its own are gone.
BEGIN;
INSERT INTO bk2t.s SELECT i, destor.blob_put('mirror', noise(3000, i)) FROM generate_series(1, 5) i;
SAVEPOINT s1;
INSERT INTO bk2t.s SELECT i, destor.blob_put('mirror', noise(3000, i)) FROM generate_series(100, 160) i;
ROLLBACK TO s1;
INSERT INTO bk2t.s SELECT i, destor.blob_put('mirror', noise(3000, i)) FROM generate_series(6, 8) i;
COMMIT;
SELECT count(*) AS blobs, count(*) FILTER (WHERE destor.blob_get(b) = noise(3000, i)) AS exact,
       min(i), max(i) FROM bk2t.s;
SELECT count(*) AS rows_of_aborted_blobs FROM destor.blobs bl
 WHERE NOT EXISTS (SELECT FROM bk2t.s WHERE b::uuid = bl.blob_id)
   AND bl.created_at = (SELECT max(created_at) FROM destor.blobs);
SELECT count(destor.blob_delete(b)) >= 0 AS cleaned FROM bk2t.s;
TRUNCATE bk2t.s;

-- Nested: the inner savepoint's uploads are released into s1, which aborts;
-- then one whose inner savepoint aborts while s1 commits.
BEGIN;
INSERT INTO bk2t.s SELECT i, destor.blob_put('mirror', noise(3000, i)) FROM generate_series(1, 3) i;
SAVEPOINT s1;
INSERT INTO bk2t.s SELECT i, destor.blob_put('mirror', noise(3000, i)) FROM generate_series(200, 202) i;
SAVEPOINT s2;
INSERT INTO bk2t.s SELECT i, destor.blob_put('mirror', noise(3000, i)) FROM generate_series(300, 360) i;
RELEASE s2;
ROLLBACK TO s1;
SAVEPOINT s3;
INSERT INTO bk2t.s SELECT i, destor.blob_put('mirror', noise(3000, i)) FROM generate_series(10, 12) i;
SAVEPOINT s4;
INSERT INTO bk2t.s SELECT i, destor.blob_put('mirror', noise(3000, i)) FROM generate_series(400, 460) i;
ROLLBACK TO s4;
RELEASE s3;
COMMIT;
SELECT count(*) AS blobs, count(*) FILTER (WHERE destor.blob_get(b) = noise(3000, i)) AS exact,
       array_agg(i ORDER BY i) AS ids FROM bk2t.s;
SELECT count(destor.blob_delete(b)) >= 0 AS cleaned FROM bk2t.s;
DROP SCHEMA bk2t CASCADE;
