-- Breaker 2 (issue 15) cases that fail on main: NOT in the Makefile's
-- REGRESS list until fixed (see /work/notes/breaker15b-findings.md F5).
-- Run alone: REGRESS=blob_breaker2_todo make test.
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
DROP SCHEMA bk2t CASCADE;
