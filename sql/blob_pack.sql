-- Small blobs packed into shared objects (issue 15 item 5): blobs up to
-- destor.blob_pack_threshold written in one transaction share one object;
-- each keeps its own id, owner, ACL and SHA-256; reads see exactly the
-- blob's bytes (pending ones too), deletes retire ranges, the last one the
-- pack, compact_packs rewrites mostly dead packs.
\i test/regress/setup.sql
\set VERBOSITY terse
\set mk 'cat > /dev/null; mkdir -p ' :dir '/bp1 ' :dir '/bp2 ' :dir '/bp3'
COPY (SELECT 1) TO PROGRAM :'mk';
\set bp1 :dir '/bp1'
\set bp2 :dir '/bp2'
\set bp3 :dir '/bp3'
CREATE SERVER bp1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'bp1');
CREATE SERVER bp2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'bp2');
CREATE SERVER bp3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'bp3');
CREATE SERVER bp_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'bp1,bp2,bp3', data_shards '2', parity_shards '1');
-- shard files on the pool's providers (the metadata log lives under meta/)
CREATE FUNCTION bp_files() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM (VALUES ('bp1'), ('bp2'), ('bp3')) p(name),
    LATERAL pg_ls_dir(current_setting('bp.dir') || '/' || name || '/ds', true, false) d,
    LATERAL pg_ls_dir(current_setting('bp.dir') || '/' || name || '/ds/' || d, true, false) f $$;
SELECT set_config('bp.dir', :'dir', false) IS NOT NULL AS dir_set;
CREATE FUNCTION bp_objects() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM destor.objects WHERE pool = 'bp_pool' $$;
CREATE FUNCTION bp_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM,
    '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END $$;
SHOW destor.blob_pack_threshold;

-- 1. 200 small blobs in one transaction: one pack object, three shard files
CREATE TABLE bp (n int PRIMARY KEY, data bytea, b destor.blob);
BEGIN;
INSERT INTO bp SELECT i, noise(i * 37 % 5000 + (i % 3), i), destor.blob_put('bp_pool', noise(i * 37 % 5000 + (i % 3), i))
  FROM generate_series(1, 200) i;
-- pending: read from the open pack, nothing uploaded yet
SELECT bp_objects() AS objects_before_commit, bp_files() AS files_before_commit;
SELECT count(*) FILTER (WHERE destor.blob_get(b) = data) AS get_ok,
       count(*) FILTER (WHERE destor.blob_read(b, 3, 10) = substr(data, 4, 10)) AS read_ok,
       count(*) FILTER (WHERE destor.blob_size(b) = length(data)) AS size_ok,
       count(*) FILTER (WHERE destor.blob_sha256(b) = sha256(data)) AS sha_ok
  FROM bp;
COMMIT;
SELECT bp_objects() AS objects, bp_files() AS files,
       (SELECT count(DISTINCT pack_id) FROM destor.blobs b JOIN bp ON bp.b::uuid = b.blob_id) AS packs;
SELECT count(*) FILTER (WHERE destor.blob_get(b) = data) AS get_ok,
       count(*) FILTER (WHERE destor.blob_sha256(b) = sha256(data)) AS sha_ok,
       count(*) FILTER (WHERE destor.blob_size(b) = length(data)) AS size_ok
  FROM bp;
-- log_snapshot logs the packed blobs' rows too: 1 object, 3 shards, 200 blobs
SELECT destor.log_snapshot('bp_pool') AS rows_logged;
-- ranges: inside, across the end, past the end, empty; the neighbours' bytes never
SELECT n, destor.blob_read(b, 0, 5) = substr(data, 1, 5) AS head,
       destor.blob_read(b, length(data) - 3, 100) = substr(data, length(data) - 2) AS tail_clipped,
       length(destor.blob_read(b, length(data), 10)) AS at_end,
       length(destor.blob_read(b, 1000000, 10)) AS past_end,
       length(destor.blob_read(b, 0, 2147483647)) = length(data) AS whole_only
  FROM bp WHERE n IN (1, 2, 100, 200) ORDER BY n;
SELECT bp_try(format('SELECT destor.blob_read(%L, -1, 10)', b)) AS negative_offset,
       bp_try(format('SELECT destor.blob_read(%L, 0, -1)', b)) AS negative_length
  FROM bp WHERE n = 1;
-- blob_shards shows the pack's shards; blob_verify checks them and the hash
SELECT count(*) AS shard_rows, count(DISTINCT provider) AS providers
  FROM destor.blob_shards s JOIN bp ON bp.b::uuid = s.blob_id WHERE bp.n = 7;
SELECT destor.blob_verify(b) AS verified FROM bp WHERE n = 7;
-- descriptors read packed blobs, sequentially and after seeks
BEGIN;
SELECT destor.blob_open(b) AS fd FROM bp WHERE n = 150 \gset
SELECT destor.blob_read(:fd, 10) = substr(data, 1, 10) AS first,
       destor.blob_read(:fd, 100000) = substr(data, 11) AS rest,
       length(destor.blob_read(:fd, 10)) AS after_end
  FROM bp WHERE n = 150;
SELECT destor.blob_seek(:fd, 5, 0) AS pos, destor.blob_read(:fd, 4) = substr(data, 6, 4) AS after_seek
  FROM bp WHERE n = 150;
COMMIT;

-- 2. Large blobs, streamed blobs and threshold 0 stay objects of their own
SELECT bp_objects() AS objects_before \gset
CREATE TABLE bp_big (n int, data bytea, b destor.blob);
INSERT INTO bp_big VALUES (1, noise(65537, 1), destor.blob_put('bp_pool', noise(65537, 1)));
SET destor.blob_pack_threshold = 0;
INSERT INTO bp_big VALUES (2, '\x01'::bytea, destor.blob_put('bp_pool', '\x01'::bytea));
RESET destor.blob_pack_threshold;
BEGIN;
SELECT destor.blob_create('bp_pool') AS wfd \gset
SELECT destor.blob_write(:wfd, '\x0203'::bytea);
INSERT INTO bp_big VALUES (3, '\x0203'::bytea, destor.blob_close(:wfd));
COMMIT;
INSERT INTO bp_big VALUES (4, noise(65536, 4), destor.blob_put('bp_pool', noise(65536, 4)));
SELECT n, b.pack_id IS NOT NULL AS packed, destor.blob_get(x.b) = x.data AS ok
  FROM bp_big x JOIN destor.blobs b ON b.blob_id = x.b::uuid ORDER BY n;
SELECT bp_objects() - :objects_before AS new_objects;

-- 3. Rollback leaves nothing; a savepoint's blobs go with it alone
SELECT bp_objects() AS objects_before, bp_files() AS files_before \gset
BEGIN;
SELECT destor.blob_put('bp_pool', 'rolled back') AS gone \gset
SELECT destor.blob_get(:'gone') AS pending_read;
ROLLBACK;
SELECT bp_try(format('SELECT destor.blob_get(%L)', :'gone')) AS after_rollback;
BEGIN;
SELECT destor.blob_put('bp_pool', 'kept') AS kept \gset
SAVEPOINT s;
SELECT destor.blob_put('bp_pool', 'undone') AS undone \gset
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT convert_from(destor.blob_get(:'kept'), 'UTF8') AS kept,
       bp_try(format('SELECT destor.blob_get(%L)', :'undone')) AS undone;
-- vacuum_blobs finds a packed blob no column references
SELECT bool_or(v = :'kept') AS unreferenced_listed,
       bool_or(v = (SELECT b FROM bp WHERE n = 1)::uuid) AS referenced_listed
  FROM destor.vacuum_blobs('bp_pool', true) v;
-- a pack uploaded (full) inside a savepoint that rolls back is opened again
SET destor.blob_pack_size = '64kB';
BEGIN;
SELECT destor.blob_put('bp_pool', noise(40000, 11)) AS outer_blob \gset
SAVEPOINT s;
SELECT destor.blob_put('bp_pool', noise(40000, 12)) AS inner_blob \gset
ROLLBACK TO SAVEPOINT s;
COMMIT;
RESET destor.blob_pack_size;
SELECT destor.blob_get(:'outer_blob') = noise(40000, 11) AS outer_kept,
       bp_try(format('SELECT destor.blob_get(%L)', :'inner_blob')) AS inner_gone;
SELECT bp_objects() - :objects_before AS new_objects;

-- 4. Content checks: expected_sha256 refuses a mismatch before anything is kept
SELECT bp_try($$SELECT destor.blob_put('bp_pool', 'abc', sha256('abd'))$$) AS mismatch;
SELECT destor.blob_get(destor.blob_put('bp_pool', 'abc', sha256('abc'))) AS matched;
-- empty blobs are packed too, alone or at the end of a pack
SELECT destor.blob_put('bp_pool', ''::bytea) AS empty \gset
BEGIN;
SELECT destor.blob_put('bp_pool', 'before') IS NOT NULL AS put;
SELECT destor.blob_put('bp_pool', ''::bytea) AS empty_last \gset
COMMIT;
SELECT length(destor.blob_get(:'empty')) AS alone, destor.blob_verify(:'empty') AS alone_ok,
       length(destor.blob_get(:'empty_last')) AS last, destor.blob_verify(:'empty_last') AS last_ok,
       length(destor.blob_read(:'empty_last', 0, 10)) AS read_last;

-- 5. Delete: a range retired after commit, nothing on rollback; the last blob takes the pack
SELECT pack_id AS pack1 FROM destor.blobs b JOIN bp ON bp.b::uuid = b.blob_id WHERE n = 1 \gset
BEGIN;
SELECT destor.blob_delete(b) FROM bp WHERE n <= 10;
ROLLBACK;
SELECT count(*) FILTER (WHERE destor.blob_get(b) = data) AS still_readable FROM bp WHERE n <= 10;
SELECT count(destor.blob_delete(b)) AS deleted FROM bp WHERE n % 5 <> 0;
DELETE FROM bp WHERE n % 5 <> 0;
SELECT count(*) AS left_in_pack, EXISTS (SELECT FROM destor.objects WHERE object_id = :'pack1') AS pack_kept
  FROM destor.blobs WHERE pack_id = :'pack1';
SELECT count(*) FILTER (WHERE destor.blob_get(b) = data) AS survivors_ok, count(*) AS survivors FROM bp;

-- 6. Compaction: 80 % dead → rewritten; the survivors read exactly, the old pack goes
SELECT bp_try($$SELECT destor.compact_packs('bp_pool', 1.5)$$) AS bad_fraction;
SELECT destor.compact_packs('bp_pool', 0.9) AS below_threshold;
SELECT destor.compact_packs('bp_pool') AS rewritten;
SELECT EXISTS (SELECT FROM destor.objects WHERE object_id = :'pack1') AS old_pack_exists,
       (SELECT count(DISTINCT pack_id) FROM destor.blobs b JOIN bp ON bp.b::uuid = b.blob_id) AS packs;
SELECT count(*) FILTER (WHERE destor.blob_get(b) = data) AS survivors_ok,
       count(*) FILTER (WHERE destor.blob_verify(b)) AS verified FROM bp;
SELECT o.size = (SELECT sum(length(data)) FROM bp) AS new_pack_is_live_bytes
  FROM destor.objects o WHERE o.object_id = (SELECT DISTINCT pack_id FROM destor.blobs b JOIN bp ON bp.b::uuid = b.blob_id);
-- the last blobs go: so does the pack, after commit
SELECT bp_files() AS files_before \gset
SELECT count(destor.blob_delete(b)) AS deleted FROM bp;
SELECT :files_before - bp_files() AS files_removed;
SELECT count(*) AS packs_left FROM destor.objects o
 WHERE pool = 'bp_pool' AND NOT EXISTS (SELECT FROM destor.blobs b WHERE b.blob_id = o.object_id OR b.pack_id = o.object_id);

-- 7. Privileges: a packed neighbour's bytes are out of reach of a role without its ACL
CREATE ROLE regress_pack_owner;
CREATE ROLE regress_pack_other;
GRANT USAGE ON FOREIGN SERVER bp_pool, bp1, bp2, bp3 TO regress_pack_owner, regress_pack_other;
CREATE TABLE bp_acl (name text, b destor.blob);
GRANT SELECT, INSERT ON bp_acl TO PUBLIC;
BEGIN;
SET LOCAL ROLE regress_pack_owner;
INSERT INTO bp_acl VALUES ('secret', destor.blob_put('bp_pool', 'the owner''s secret'));
SET LOCAL ROLE regress_pack_other;
INSERT INTO bp_acl VALUES ('mine', destor.blob_put('bp_pool', 'other''s own'));
-- pending (same pack): still the owner's alone
SELECT bp_try(format('SELECT destor.blob_get(%L)', b)) AS pending_get FROM bp_acl WHERE name = 'secret';
COMMIT;
SELECT count(DISTINCT pack_id) AS one_pack FROM destor.blobs b JOIN bp_acl x ON x.b::uuid = b.blob_id;
SET ROLE regress_pack_other;
SELECT f, bp_try(format(s, (SELECT b FROM bp_acl WHERE name = 'secret'))) AS result
  FROM (VALUES (1, 'blob_get', 'SELECT destor.blob_get(%L)'),
               (2, 'blob_read', 'SELECT destor.blob_read(%L, 0, 4)'),
               (3, 'blob_size', 'SELECT destor.blob_size(%L)'),
               (4, 'blob_sha256', 'SELECT destor.blob_sha256(%L)'),
               (5, 'blob_verify', 'SELECT destor.blob_verify(%L)'),
               (6, 'blob_open', 'SELECT destor.blob_open(%L)'),
               (7, 'blob_to_lo', 'SELECT lo_unlink(destor.blob_to_lo(%L))'),
               (8, 'blob_delete', 'SELECT destor.blob_delete(%L)'),
               (9, 'compact_packs', 'SELECT destor.compact_packs(''bp_pool'') /* %s */')) t(i, f, s)
 ORDER BY i;
-- its own blob in the same pack: exactly its bytes, whatever the offsets
SELECT convert_from(destor.blob_get(b), 'UTF8') AS own,
       length(destor.blob_read(b, 0, 1000000)) AS whole,
       length(destor.blob_read(b, 11, 1000000)) AS past_end,
       length(destor.blob_read(b, 9223372036854775807, 10)) AS far_past_end
  FROM bp_acl WHERE name = 'mine';
SELECT count(*) AS visible_shards FROM destor.blob_shards s JOIN bp_acl x ON x.b::uuid = s.blob_id
 WHERE x.name = 'secret';
RESET ROLE;
SET ROLE regress_pack_owner;
SELECT destor.blob_grant(b, 'regress_pack_other', 'SELECT') FROM bp_acl WHERE name = 'secret';
SET ROLE regress_pack_other;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS granted FROM bp_acl WHERE name = 'secret';
RESET ROLE;

-- 8. Import, export and large objects: packed on the way in, read on the way out
\set src :dir '/bp_small.bin'
\set out :dir '/bp_small.out'
COPY (SELECT 'imported small file') TO :'src';
SELECT destor.blob_import('bp_pool', :'src') AS imp \gset
SELECT b.pack_id IS NOT NULL AS packed, destor.blob_export(:'imp', :'out') AS exported
  FROM destor.blobs b WHERE blob_id = :'imp';
SELECT pg_read_binary_file(:'out') = pg_read_binary_file(:'src') AS export_exact;
SELECT lo_from_bytea(0, 'from a large object') AS lo \gset
SELECT destor.blob_from_lo('bp_pool', :lo, true) AS flo \gset
SELECT b.pack_id IS NOT NULL AS packed, convert_from(destor.blob_get(:'flo'), 'UTF8') AS content
  FROM destor.blobs b WHERE blob_id = :'flo';
SELECT destor.blob_to_lo(:'flo', 0, true) AS lo2 \gset
SELECT convert_from(lo_get(:lo2), 'UTF8') AS back_in_lo,
       bp_try(format('SELECT destor.blob_get(%L)', :'flo')) AS moved;
SELECT lo_unlink(:lo2);

-- 8b. A pack uploaded in a savepoint that rolls back (a function needed the
-- blob's row), then more statements: the pack is open again, nothing dangles
BEGIN;
SELECT destor.blob_put('bp_pool', 'settled in a savepoint') AS sp \gset
SAVEPOINT a;
SELECT destor.blob_verify(:'sp') AS verified;
ROLLBACK TO a;
SAVEPOINT b;
SELECT count(*) >= 0 AS catalog_read FROM destor.blobs;
SELECT destor.blob_grant(:'sp', 'regress_pack_other', 'SELECT');
ROLLBACK TO b;
SAVEPOINT c;
SELECT count(*) >= 0 AS catalog_read_again FROM destor.blobs;
SELECT convert_from(destor.blob_get(:'sp'), 'UTF8') AS after_rollbacks;
COMMIT;
SELECT convert_from(destor.blob_get(:'sp'), 'UTF8') AS committed,
       (SELECT pack_id IS NOT NULL FROM destor.blobs WHERE blob_id = :'sp') AS packed;

-- 8c. REPEATABLE READ: blobs whose rows this transaction wrote after its
-- snapshot was taken (a large blob; a small one whose pack a grant uploaded)
-- are found by the reads that follow, as a catalog statement finds them
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) >= 0 AS snapshot_taken FROM destor.blobs;
SELECT destor.blob_put('bp_pool', noise(100000, 8)) AS rr_big \gset
SELECT destor.blob_put('bp_pool', 'rr small') AS rr_small \gset
SELECT destor.blob_grant(:'rr_small', 'regress_pack_other', 'SELECT');
SELECT destor.blob_get(:'rr_big') = noise(100000, 8) AS big_read,
       convert_from(destor.blob_get(:'rr_small'), 'UTF8') AS small_read,
       destor.blob_size(:'rr_small') AS small_size;
COMMIT;

-- 9. Every blob of the file goes, and with them every pack
SELECT count(destor.blob_delete(b)) > 0 AS cleaned
  FROM (SELECT blob_id::text::destor.blob AS b FROM destor.blobs b
          JOIN destor.objects o ON o.object_id = coalesce(b.pack_id, b.blob_id)
         WHERE o.pool = 'bp_pool') x;
SELECT bp_objects() AS objects_left, bp_files() AS files_left;
DROP TABLE bp, bp_big, bp_acl;
DROP OWNED BY regress_pack_owner, regress_pack_other;
DROP ROLE regress_pack_owner, regress_pack_other;
