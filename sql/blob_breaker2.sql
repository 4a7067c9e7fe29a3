-- Small blobs and file provider writes attacked (issue 15, breaker 2): sizes
-- around the pack thresholds, pack GUCs changed mid-transaction, blobs
-- written and read in one statement / savepoint / cursor, and a provider
-- directory broken in the middle of writes.  Two-session cases are in
-- specs/blob_breaker2_*.spec.
\i test/regress/setup.sql
SET client_min_messages = warning;
CREATE SCHEMA bk2;
SELECT :'dir' || '/bk2' AS bk2dir \gset
SELECT format('cat > /dev/null; rm -rf %1$s && mkdir -p %1$s/q1 %1$s/q2 %1$s/q3', :'bk2dir') AS mk \gset
COPY (SELECT 1) TO PROGRAM :'mk';
\set ECHO none
SELECT format('CREATE SERVER bk2q%s FOREIGN DATA WRAPPER destor_provider OPTIONS (type %L, path %L)',
              i, 'file', :'bk2dir' || '/q' || i) FROM generate_series(1, 3) i \gexec
\set ECHO all
CREATE SERVER bk2 FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'bk2q1,bk2q2,bk2q3', data_shards '2', parity_shards '1', write_quorum '2');
RESET client_min_messages;
-- shard files and leftover temp files under the three providers
CREATE FUNCTION bk2.files(pattern text) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM generate_series(1, 3) q,
    LATERAL pg_ls_dir(current_setting('bk2.dir') || '/q' || q || '/ds', true, false) d,
    LATERAL pg_ls_dir(current_setting('bk2.dir') || '/q' || q || '/ds/' || d, true, false) f
  WHERE f ~ pattern $$;
SELECT set_config('bk2.dir', :'bk2dir', false) IS NOT NULL AS set;
CREATE TABLE bk2.w (k text PRIMARY KEY, data bytea, b destor.blob);
CREATE FUNCTION bk2.try_get(b destor.blob) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN convert_from(destor.blob_get(b), 'UTF8');
EXCEPTION WHEN OTHERS THEN
  RETURN 'ERROR ' || SQLSTATE;
END $$;

-- 1. Sizes around the threshold and the pack size, every byte compared: a
-- pack of exactly blob_pack_size bytes, one just over, blobs of 0 and 1.
SET destor.blob_pack_threshold = 100;
SET destor.blob_pack_size = 65536;
BEGIN;
INSERT INTO bk2.w SELECT 'size' || n, noise(n, n % 1000), destor.blob_put('bk2', noise(n, n % 1000))
  FROM unnest(ARRAY[0, 1, 99, 100, 101, 65535]) n;
-- 655 blobs of 100 bytes and one of 36: exactly 65536 bytes in the pack
INSERT INTO bk2.w SELECT 'fill' || i, noise(CASE WHEN i = 656 THEN 36 ELSE 100 END, i),
                         destor.blob_put('bk2', noise(CASE WHEN i = 656 THEN 36 ELSE 100 END, i))
  FROM generate_series(1, 656) i;
-- read in the writing transaction: some pending, some uploaded
SELECT count(*) AS blobs, count(*) FILTER (WHERE destor.blob_get(b) = data) AS exact,
       count(*) FILTER (WHERE destor.blob_read(b, 98, 5) = substring(data FROM 99 FOR 5)) AS tails
  FROM bk2.w;
COMMIT;
SELECT count(*) AS blobs, count(*) FILTER (WHERE destor.blob_get(b) = data) AS exact,
       count(*) FILTER (WHERE destor.blob_size(b) = length(data)) AS sizes,
       count(*) FILTER (WHERE destor.blob_read(b, 98, 5) = substring(data FROM 99 FOR 5)) AS tails,
       count(*) FILTER (WHERE destor.blob_read(b, 1, 1000000) = substring(data FROM 2)) AS long_reads
  FROM bk2.w;
-- packed: up to the threshold (0, 1, 99, 100 and the fill); own objects: 101, 65535
SELECT k, pack_id IS NOT NULL AS packed FROM bk2.w JOIN destor.blobs bl ON bl.blob_id = w.b::uuid
  WHERE k LIKE 'size%' ORDER BY length(data);
SELECT count(DISTINCT pack_id) AS packs FROM bk2.w JOIN destor.blobs bl ON bl.blob_id = w.b::uuid
  WHERE k LIKE 'fill%';
DELETE FROM bk2.w;

-- 2. Pack GUCs changed in the middle of a transaction: a larger threshold
-- (a blob bigger than the pack buffer was sized for), then a smaller pack
-- size than the open pack already holds.
BEGIN;
INSERT INTO bk2.w VALUES ('g1', noise(90, 1), destor.blob_put('bk2', noise(90, 1)));
SET LOCAL destor.blob_pack_threshold = 200000;
INSERT INTO bk2.w VALUES ('g2', noise(150000, 2), destor.blob_put('bk2', noise(150000, 2)));
INSERT INTO bk2.w VALUES ('g3', noise(1000, 3), destor.blob_put('bk2', noise(1000, 3)));
SET LOCAL destor.blob_pack_size = '1MB';
INSERT INTO bk2.w VALUES ('g4', noise(199999, 4), destor.blob_put('bk2', noise(199999, 4)));
SET LOCAL destor.blob_pack_threshold = 10;
INSERT INTO bk2.w VALUES ('g5', noise(10, 5), destor.blob_put('bk2', noise(10, 5)));
COMMIT;
SELECT k, destor.blob_get(b) = data AS exact, destor.blob_size(b) AS size FROM bk2.w ORDER BY k;
DELETE FROM bk2.w;

-- 3. Written and read in one statement, in a function, in savepoints.
SELECT destor.blob_get(destor.blob_put('bk2', 'same statement')) AS same_statement;
CREATE FUNCTION bk2.roundtrip(n int) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  b destor.blob;
BEGIN
  b := destor.blob_put('bk2', noise(n, n));
  RETURN destor.blob_get(b) = noise(n, n) AND destor.blob_size(b) = n;
END $$;
SELECT bool_and(bk2.roundtrip(n)) AS roundtrips FROM generate_series(0, 120, 7) n;
BEGIN;
INSERT INTO bk2.w VALUES ('outer', 'outer blob', destor.blob_put('bk2', 'outer blob'));
SAVEPOINT s;
INSERT INTO bk2.w VALUES ('inner', 'inner blob', destor.blob_put('bk2', 'inner blob'));
-- blob_verify needs the row: the pack (outer and inner blob) is uploaded inside s
SELECT destor.blob_verify(b) AS verified FROM bk2.w WHERE k = 'outer';
SELECT convert_from(destor.blob_get(b), 'UTF8') AS inner_read FROM bk2.w WHERE k = 'inner';
SELECT b AS inner_blob FROM bk2.w WHERE k = 'inner' \gset
ROLLBACK TO s;
-- the outer blob lives on (its pack opened again), the inner one is gone
SELECT convert_from(destor.blob_get(b), 'UTF8') AS outer_read FROM bk2.w WHERE k = 'outer';
SELECT bk2.try_get(:'inner_blob'::destor.blob) AS inner_after;
COMMIT;
SELECT k, convert_from(destor.blob_get(b), 'UTF8') AS committed FROM bk2.w ORDER BY k;
SELECT bk2.try_get(:'inner_blob'::destor.blob) AS inner_after;
DELETE FROM bk2.w;

-- 4. A WITH HOLD cursor that writes blobs: its query runs at COMMIT, before
-- the open pack is uploaded; then the rows are fetched and read back.
BEGIN;
DECLARE c CURSOR WITH HOLD FOR
  SELECT i, destor.blob_put('bk2', noise(50, i)) AS b FROM generate_series(1, 5) i;
COMMIT;
CREATE TABLE bk2.held (i int, b destor.blob);
DO $$
DECLARE
  r record;
  cur refcursor := 'c';
BEGIN
  LOOP
    FETCH cur INTO r;
    EXIT WHEN NOT FOUND;
    INSERT INTO bk2.held VALUES (r.i, r.b);
  END LOOP;
END $$;
CLOSE c;
SELECT count(*) AS held, count(*) FILTER (WHERE destor.blob_get(b) = noise(50, i)) AS exact FROM bk2.held;
SELECT count(*) AS held_rows FROM bk2.held h JOIN destor.blobs bl ON bl.blob_id = h.b::uuid;

-- 5. A REPEATABLE READ / SERIALIZABLE transaction reads its own small blobs.
BEGIN ISOLATION LEVEL SERIALIZABLE;
INSERT INTO bk2.w VALUES ('ser', noise(77, 77), destor.blob_put('bk2', noise(77, 77)));
SELECT destor.blob_get(b) = data AS exact_pending FROM bk2.w WHERE k = 'ser';
SELECT destor.blob_verify(b) AS verified FROM bk2.w WHERE k = 'ser';
SELECT destor.blob_get(b) = data AS exact_uploaded FROM bk2.w WHERE k = 'ser';
COMMIT;
DELETE FROM bk2.w;

-- 5b. Descriptors and packs uploaded in savepoints: a descriptor opened on
-- a pack uploaded in a savepoint that rolls back is closed with it (its
-- pack's shards are gone); one opened after a RELEASE reads on across a
-- later rollback.
BEGIN;
INSERT INTO bk2.w VALUES ('x', 'pending then uploaded in s', destor.blob_put('bk2', 'pending then uploaded in s'));
SAVEPOINT s;
SELECT destor.blob_verify(b) AS verified FROM bk2.w WHERE k = 'x';
SELECT destor.blob_open(b) AS fd FROM bk2.w WHERE k = 'x' \gset
SELECT convert_from(destor.blob_read(:fd, 7), 'UTF8') AS head;
ROLLBACK TO s;
SELECT destor.blob_read(:fd, 100);
ROLLBACK;
BEGIN;
INSERT INTO bk2.w VALUES ('y', 'second case', destor.blob_put('bk2', 'second case'));
SAVEPOINT s;
SELECT destor.blob_verify(b) AS verified FROM bk2.w WHERE k = 'y';
RELEASE s;
SELECT destor.blob_open(b) AS fd2 FROM bk2.w WHERE k = 'y' \gset
SAVEPOINT t;
SELECT convert_from(destor.blob_read(:fd2, 3), 'UTF8') AS head;
ROLLBACK TO t;
SELECT convert_from(destor.blob_read(:fd2, 100), 'UTF8') AS rest;
COMMIT;
SELECT k, convert_from(destor.blob_get(b), 'UTF8') AS committed FROM bk2.w ORDER BY k;
DELETE FROM bk2.w;

-- 5c. Memory over many transactions of one session: small blobs written
-- and read, every fifth transaction rolled back, every third blob written
-- in a block that fails.  Nothing of the backend's grows after warm-up.
CREATE TABLE bk2.churn (i int, b destor.blob);
CREATE FUNCTION bk2.mem() RETURNS bigint LANGUAGE sql AS $$
  SELECT sum(total_bytes) FROM pg_backend_memory_contexts $$;
CREATE PROCEDURE bk2.churn(n int) LANGUAGE plpgsql AS $$
DECLARE
  x bytea;
BEGIN
  FOR k IN 1..n LOOP
    INSERT INTO bk2.churn VALUES (k, destor.blob_put('bk2', noise(100 + k % 50, k)));
    BEGIN
      INSERT INTO bk2.churn VALUES (-k, destor.blob_put('bk2', noise(10, k)));
      IF k % 3 = 0 THEN RAISE EXCEPTION 'rolled back'; END IF;
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
    SELECT destor.blob_get(b) INTO x FROM bk2.churn WHERE i = k - 1;
    IF k % 5 = 0 THEN ROLLBACK; ELSE COMMIT; END IF;
  END LOOP;
END $$;
CALL bk2.churn(100);
SELECT bk2.mem() AS mem_before \gset
CALL bk2.churn(300);
SELECT bk2.mem() - :mem_before < 256 * 1024 AS no_growth;
SELECT count(*) AS blobs, count(*) FILTER (WHERE destor.blob_get(b) = noise(abs(i) % 50 + 100, i)) AS exact
  FROM bk2.churn WHERE i > 0;
SELECT count(destor.blob_delete(b)) >= 0 AS cleaned FROM bk2.churn;

-- 6. A provider directory replaced by a file in the middle of the work:
-- with write_quorum 2 of 3 writes go on, with two broken they fail; every
-- committed blob reads back exactly, a failed statement leaves nothing,
-- no temp file stays behind and no descriptor leaks.
SELECT format('cat > /dev/null; cd %s && rm -rf q3 && touch q3', :'bk2dir') AS break3 \gset
SELECT format('cat > /dev/null; cd %s && mv q2 q2.ok && touch q2', :'bk2dir') AS break2 \gset
SELECT format('cat > /dev/null; cd %s && rm -f q2 q3 && mv q2.ok q2 && mkdir q3', :'bk2dir') AS heal \gset
COPY (SELECT 1) TO PROGRAM :'break3';
-- (the warnings name the test's directory: not shown)
SET client_min_messages = error;
INSERT INTO bk2.w SELECT 'q' || i, noise(30 + i, i), destor.blob_put('bk2', noise(30 + i, i))
  FROM generate_series(1, 40) i;
INSERT INTO bk2.w VALUES ('big', noise(300000, 9), destor.blob_put('bk2', noise(300000, 9)));
RESET client_min_messages;
SELECT count(*) AS blobs, count(*) FILTER (WHERE destor.blob_get(b) = data) AS exact FROM bk2.w;
COPY (SELECT 1) TO PROGRAM :'break2';
SELECT count(*) AS rows_before FROM destor.blobs \gset
CREATE FUNCTION bk2.fail(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  fails int := 0;
BEGIN
  FOR i IN 1..n LOOP
    BEGIN
      INSERT INTO bk2.w VALUES ('fail' || i, noise(20, i), destor.blob_put('bk2', noise(20, i)));
      -- the pack is uploaded here at the latest
      PERFORM destor.blob_verify(b) FROM bk2.w WHERE k = 'fail' || i;
    EXCEPTION WHEN OTHERS THEN
      fails := fails + 1;
    END;
    BEGIN
      INSERT INTO bk2.w VALUES ('failbig' || i, noise(300, i), destor.blob_put('bk2', noise(300, i)));
    EXCEPTION WHEN OTHERS THEN
      fails := fails + 1;
    END;
  END LOOP;
  RETURN fails;
END $$;
CREATE FUNCTION bk2.fds() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/fd') $$;
SET client_min_messages = error;
SELECT bk2.fail(3) AS warmup_fails, bk2.fds() AS fds_before \gset
SELECT bk2.fail(30) AS fails, bk2.fds() - :fds_before AS leaked_fds;
RESET client_min_messages;
SELECT count(*) - :rows_before AS new_rows FROM destor.blobs;
COPY (SELECT 1) TO PROGRAM :'heal';
SELECT count(*) AS blobs, count(*) FILTER (WHERE destor.blob_get(b) = data) AS exact FROM bk2.w;
SELECT bk2.files('\.tmp\.') AS temp_files;

-- 6b. A provider made read-only (its shard directories exist: files cannot
-- be created in them, nor new directories): writes go on with two shards,
-- and read back exactly once it is writable again; no temp file is left.
SELECT format('cat > /dev/null; chmod -R a-w %s/q3', :'bk2dir') AS ro3 \gset
SELECT format('cat > /dev/null; chmod -R u+w %s/q3', :'bk2dir') AS rw3 \gset
INSERT INTO bk2.w SELECT 'pre' || i, noise(64, i), destor.blob_put('bk2', noise(64, i)) FROM generate_series(1, 20) i;
COPY (SELECT 1) TO PROGRAM :'ro3';
SET client_min_messages = error;
INSERT INTO bk2.w SELECT 'ro' || i, noise(70 + i, i), destor.blob_put('bk2', noise(70 + i, i)) FROM generate_series(1, 20) i;
INSERT INTO bk2.w VALUES ('robig', noise(200000, 3), destor.blob_put('bk2', noise(200000, 3)));
RESET client_min_messages;
SELECT count(*) AS blobs, count(*) FILTER (WHERE destor.blob_get(b) = data) AS exact FROM bk2.w;
COPY (SELECT 1) TO PROGRAM :'rw3';
SELECT bk2.files('\.tmp\.') AS temp_files;
SELECT count(*) AS blobs, count(*) FILTER (WHERE destor.blob_get(b) = data) AS exact FROM bk2.w;

-- 7. DROP ROLE is refused while the role owns blobs, a small blob it wrote
-- in this transaction included (it had no row before its pack was uploaded
-- at commit: the role was dropped and the blob committed owned by it).
CREATE ROLE bk2_gone;
GRANT USAGE ON FOREIGN SERVER mirror, p1, p2, p3 TO bk2_gone;
BEGIN;
SET LOCAL ROLE bk2_gone;
SELECT set_config('bk2.h', destor.blob_put('mirror', 'orphaned owner')::text, true) IS NOT NULL AS put;
RESET ROLE;
REVOKE USAGE ON FOREIGN SERVER mirror, p1, p2, p3 FROM bk2_gone;
SAVEPOINT d;
DROP ROLE bk2_gone;
ROLLBACK TO d;
CREATE TEMP TABLE bk2_h AS SELECT current_setting('bk2.h')::destor.blob AS b;
COMMIT;
SELECT count(*) AS blobs_of_bk2_gone FROM destor.blobs WHERE owner = 'bk2_gone'::regrole;
SELECT count(destor.blob_delete(b)) AS cleaned FROM bk2_h;
DROP ROLE IF EXISTS bk2_gone;

SELECT count(destor.blob_delete(b)) >= 0 AS cleaned FROM bk2.w;
SELECT count(destor.blob_delete(b)) >= 0 AS cleaned FROM bk2.held;
DROP SCHEMA bk2 CASCADE;
