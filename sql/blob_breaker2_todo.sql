-- Breaker 2 (issue 15) cases that fail on main: NOT in the Makefile's
-- REGRESS list until fixed (see /work/notes/breaker15b-findings.md F5, F6).
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

-- F6. DROP ROLE is refused while the role owns blobs, but a small blob the
-- role wrote in this transaction has no row yet (its pack is uploaded at
-- commit): DROP ROLE goes through and the blob is committed owned by a
-- role that no longer exists.
RESET destor.blob_pack_threshold;
RESET destor.blob_pack_size;
CREATE ROLE bk2t_gone;
GRANT USAGE ON FOREIGN SERVER mirror, p1, p2, p3 TO bk2t_gone;
BEGIN;
SET LOCAL ROLE bk2t_gone;
SELECT set_config('bk2t.h', destor.blob_put('mirror', 'orphaned owner')::text, true) IS NOT NULL AS put;
RESET ROLE;
REVOKE USAGE ON FOREIGN SERVER mirror, p1, p2, p3 FROM bk2t_gone;
SAVEPOINT d;
DROP ROLE bk2t_gone;
ROLLBACK TO d;
CREATE TEMP TABLE bk2t_h AS SELECT current_setting('bk2t.h')::destor.blob AS b;
COMMIT;
SELECT count(*) AS blobs_of_bk2t_gone FROM destor.blobs WHERE owner = 'bk2t_gone'::regrole;
SELECT count(destor.blob_delete(b)) AS cleaned FROM bk2t_h;
DROP ROLE IF EXISTS bk2t_gone;
DROP SCHEMA bk2t CASCADE;
