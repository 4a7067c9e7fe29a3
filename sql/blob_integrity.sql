-- Integrity a user can check (issue 15 item 4): the SHA-256 recorded when a
-- blob is written (blob_sha256, no provider read), blob_verify reading every
-- shard and the content, and writes refusing content that does not have the
-- expected hash, leaving no shard behind.
\i test/regress/setup.sql
\set VERBOSITY terse
\set mk 'cat > /dev/null; mkdir -p ' :dir '/bi1 ' :dir '/bi2 ' :dir '/bi3'
COPY (SELECT 1) TO PROGRAM :'mk';
\set bi1 :dir '/bi1'
\set bi2 :dir '/bi2'
\set bi3 :dir '/bi3'
CREATE SERVER bi1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'bi1');
CREATE SERVER bi2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'bi2');
CREATE SERVER bi3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'bi3');
CREATE SERVER bi_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'bi1,bi2,bi3', data_shards '2', parity_shards '1');
-- shard files on the pool's providers
CREATE FUNCTION bi_files() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM (VALUES ('bi1'), ('bi2'), ('bi3')) p(name),
    LATERAL pg_ls_dir(current_setting('bi.dir') || '/' || name || '/ds', true, false) d,
    LATERAL pg_ls_dir(current_setting('bi.dir') || '/' || name || '/ds/' || d, true, false) f $$;
SELECT set_config('bi.dir', :'dir', false) IS NOT NULL AS dir_set;
-- a statement's outcome: ok, or SQLSTATE and message (ids and hashes masked)
CREATE FUNCTION bi_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM,
    '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END $$;

-- 1. The hash recorded is the content's, for every size
CREATE TABLE bi (name text, data bytea, b destor.blob);
INSERT INTO bi SELECT name, data, destor.blob_put('bi_pool', data) FROM (VALUES
  ('empty', ''::bytea), ('one', '\x2a'::bytea), ('block+1', noise(65537, 7)),
  ('text', convert_to(repeat('integrity ', 300000), 'UTF8')), ('3 MB', noise(3 * 1024 * 1024 + 5, 8))) v(name, data);
SELECT name, length(data) AS bytes, destor.blob_sha256(b) = sha256(data) AS sha_recorded,
       destor.blob_verify(b) AS verified
  FROM bi ORDER BY length(data);

-- 2. Writes with an expected hash: the right one stores, a wrong one is
-- refused and leaves no shard (also in a savepoint that goes on)
SELECT bi_files() AS files_before \gset
SELECT destor.blob_sha256(destor.blob_put('bi_pool', 'checked', sha256('checked'))) = sha256('checked') AS stored_checked;
SELECT bi_files() - :files_before AS new_files;
SELECT bi_files() AS files_before \gset
SELECT bi_try($$SELECT destor.blob_put('bi_pool', 'damaged', sha256('original'))$$) AS wrong_hash;
SELECT bi_try($$SELECT destor.blob_put('bi_pool', noise(300000, 9), sha256('original'))$$) AS wrong_hash_big;
BEGIN;
SAVEPOINT s;
SELECT destor.blob_put('bi_pool', 'in a savepoint', sha256('something else'));
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT bi_files() - :files_before AS files_left_by_refused_writes;
-- not a SHA-256
SELECT bi_try($$SELECT destor.blob_put('bi_pool', 'x', '\x00ff')$$) AS short_hash,
       bi_try($$SELECT destor.blob_put('bi_pool', 'x', sha512('x'))$$) AS long_hash,
       bi_try($$SELECT destor.blob_put('bi_pool', 'x', NULL) IS NOT NULL$$) AS null_hash_means_none,
       destor.blob_put(NULL, 'x') IS NULL AS null_pool,
       destor.blob_put('bi_pool', NULL) IS NULL AS null_data;
SELECT bi_files() - :files_before AS files_of_the_unchecked_write;
-- server-side import: the same
COPY (SELECT 1) TO PROGRAM 'cat > /dev/null; printf "imported bytes" > "$DESTOR_REGRESS_DIR/bi_import"';
SELECT :'dir' || '/bi_import' AS import_path \gset
SELECT bi_files() AS files_before \gset
SELECT destor.blob_sha256(destor.blob_import('bi_pool', :'import_path', sha256('imported bytes')))
       = sha256('imported bytes') AS imported_checked;
SELECT bi_files() - :files_before AS new_files;
SELECT bi_files() AS files_before \gset
SELECT bi_try(format('SELECT destor.blob_import(%L, %L, %L)', 'bi_pool', :'import_path', sha256('other bytes'))) AS import_wrong_hash;
SELECT bi_files() - :files_before AS files_left_by_refused_import;
SELECT convert_from(destor.blob_get(destor.blob_import('bi_pool', :'import_path')), 'UTF8') AS import_unchecked;
\set VERBOSITY default
SELECT destor.blob_put('bi_pool', 'damaged', sha256('original'));
\set VERBOSITY terse

-- 3. blob_verify finds a corrupt shard, a missing one, and a content hash
-- that is not the recorded one
CREATE TABLE bv AS SELECT destor.blob_put('bi_pool', noise(200000, 10)) AS b;
SELECT format('%s/%s/ds/%s/%s.%s', :'dir', s.provider, substr(replace(b::text, '-', ''), 1, 2),
              replace(b::text, '-', ''), s.shard_index) AS shard0
  FROM bv, destor.blob_shards s WHERE s.blob_id = b::uuid AND s.shard_index = 0 \gset
SELECT destor.blob_verify(b) AS before_damage FROM bv;
SELECT format('cat > /dev/null; printf XXXXXXXX | dd of=%s bs=1 seek=1000 conv=notrunc 2>/dev/null', :'shard0') AS damage \gset
COPY (SELECT 1) TO PROGRAM :'damage';
SELECT destor.blob_verify(b) AS corrupt_shard FROM bv;
-- still readable (from the other shards) and the same
SELECT destor.blob_get(b) = noise(200000, 10) AS still_reads FROM bv;
SELECT format('cat > /dev/null; rm %s', :'shard0') AS remove \gset
COPY (SELECT 1) TO PROGRAM :'remove';
SELECT destor.blob_verify(b) AS missing_shard FROM bv;
SELECT problem, repaired FROM destor.repair('bi_pool', verify => true, dry_run => false);
SELECT destor.blob_verify(b) AS after_repair FROM bv;
UPDATE destor.blobs SET sha256 = sha256('something else') WHERE blob_id = (SELECT b::uuid FROM bv);
SELECT destor.blob_verify(b) AS wrong_recorded_hash FROM bv;
-- a blob written before 0.2.0 has no recorded hash: NULL, and verify
-- checks its shards only
UPDATE destor.blobs SET sha256 = NULL WHERE blob_id = (SELECT b::uuid FROM bv);
SELECT destor.blob_sha256(b) IS NULL AS no_hash, destor.blob_verify(b) AS verified_without_hash FROM bv;

-- 4. Who may ask: SELECT on the blob
CREATE ROLE regress_bi_reader;
CREATE ROLE regress_bi_nobody;
GRANT SELECT ON bi TO regress_bi_reader, regress_bi_nobody;
SELECT destor.blob_grant(b, 'regress_bi_reader', 'SELECT') FROM bi WHERE name = 'one';
SET ROLE regress_bi_reader;
SELECT destor.blob_sha256(b) = sha256(data) AS reader_sha, destor.blob_verify(b) AS reader_verify
  FROM bi WHERE name = 'one';
SET ROLE regress_bi_nobody;
SELECT bi_try(format('SELECT destor.blob_sha256(%L)', b)) AS nobody_sha,
       bi_try(format('SELECT destor.blob_verify(%L)', b)) AS nobody_verify
  FROM bi WHERE name = 'one';
RESET ROLE;
SELECT bi_try($$SELECT destor.blob_sha256('00000000-0000-4000-8000-000000000000')$$) AS unknown_sha,
       bi_try($$SELECT destor.blob_verify('00000000-0000-4000-8000-000000000000')$$) AS unknown_verify;

-- 5. Bad input, across the blob functions (issue 15 item 6): a deleted
-- blob, ranges, large objects; each a clear error with its standard code
-- (NULL roles and privileges: blob_acl)
\set VERBOSITY terse
CREATE TABLE gone AS SELECT destor.blob_put('mirror', 'soon deleted') AS b;
SELECT destor.blob_delete(b) FROM gone;
CREATE ROLE regress_bi_other;
GRANT SELECT ON gone TO regress_bi_other;
GRANT pg_write_server_files TO regress_bi_other;
CREATE FUNCTION bi_deleted_attempts() RETURNS TABLE (fn text, result text) LANGUAGE sql AS $$
  SELECT f, bi_try(format(s, (SELECT b FROM gone)))
    FROM (VALUES (1, 'blob_get', 'SELECT destor.blob_get(%L)'),
                 (2, 'blob_read', 'SELECT destor.blob_read(%L, 0, 1)'),
                 (3, 'blob_size', 'SELECT destor.blob_size(%L)'),
                 (4, 'blob_export', 'SELECT destor.blob_export(%L, ''/nonexistent/x'')'),
                 (5, 'blob_to_lo', 'SELECT destor.blob_to_lo(%L)'),
                 (6, 'blob_sha256', 'SELECT destor.blob_sha256(%L)'),
                 (7, 'blob_verify', 'SELECT destor.blob_verify(%L)'),
                 (8, 'blob_grant', 'SELECT destor.blob_grant(%L, ''regress_bi_other'', ''SELECT'')'),
                 (9, 'blob_revoke', 'SELECT destor.blob_revoke(%L, ''regress_bi_other'', ''SELECT'')'),
                 (10, 'blob_set_owner', 'SELECT destor.blob_set_owner(%L, current_user::regrole)'),
                 (11, 'blob_delete', 'SELECT destor.blob_delete(%L)')) AS t(i, f, s)
   ORDER BY i $$;
-- a superuser is told it does not exist; another role learns nothing more
-- than for a blob it may not use
SELECT * FROM bi_deleted_attempts();
SET ROLE regress_bi_other;
SELECT * FROM bi_deleted_attempts();
RESET ROLE;
-- ranges: negative offsets and lengths are errors; past the end is empty,
-- as substring() and loread() are
SELECT bi_try(format('SELECT destor.blob_read(%L, -1, 1)', b)) AS negative_offset,
       bi_try(format('SELECT destor.blob_read(%L, 0, -1)', b)) AS negative_length,
       bi_try(format('SELECT destor.blob_read(%L, 0, 1073741824)', b)) AS over_1gb
  FROM bi WHERE name = 'one';
SELECT destor.blob_read(b, 1, 10) = ''::bytea AS at_end, destor.blob_read(b, 9223372036854775807, 10) = ''::bytea AS far_past_end,
       destor.blob_read(b, 0, 10) = '\x2a'::bytea AS short_read
  FROM bi WHERE name = 'one';
-- a large object that exists, one that does not
SELECT lo_from_bytea(4100000001, 'x') AS lo \gset
SELECT bi_try(format('SELECT destor.blob_to_lo(%L, %s)', b, :lo)) AS lo_exists
  FROM bi WHERE name = 'one';
SELECT lo_unlink(:lo);
SELECT bi_try($$SELECT destor.blob_from_lo('bi_pool', 4000000000)$$) AS no_such_lo;
-- a blob deleted in the same transaction, and deleted twice
BEGIN;
CREATE TEMP TABLE twice AS SELECT destor.blob_put('mirror', 'twice') AS b;
SELECT destor.blob_delete(b) FROM twice;
SELECT bi_try(format('SELECT destor.blob_get(%L)', b)) AS read_after_delete,
       bi_try(format('SELECT destor.blob_delete(%L)', b)) AS second_delete FROM twice;
ROLLBACK;
DROP FUNCTION bi_deleted_attempts();
DROP TABLE gone;
REVOKE pg_write_server_files FROM regress_bi_other;
DROP OWNED BY regress_bi_other;
DROP ROLE regress_bi_other;

-- clean up
SELECT count(destor.blob_delete(x.b)) AS deleted
  FROM (SELECT b FROM bi UNION ALL SELECT b FROM bv) x;
SELECT count(destor.blob_delete(b.blob_id::text::destor.blob)) >= 0 AS rest_deleted
  FROM destor.blobs b JOIN destor.objects o ON o.object_id = b.blob_id WHERE o.pool = 'bi_pool';
DROP OWNED BY regress_bi_reader, regress_bi_nobody;
DROP ROLE regress_bi_reader, regress_bi_nobody;
DROP TABLE bi, bv;
DROP FUNCTION bi_files(), bi_try(text);
DROP SERVER bi_pool;
DROP SERVER bi1, bi2, bi3;
