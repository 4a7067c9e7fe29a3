-- Blob lifecycle (issue 15 item 3): destor.blob_manage(), contrib lo's
-- lo_manage for blobs, deletes the blob a deleted or updated row referenced
-- — after commit, never on rollback — and destor.vacuum_blobs() (vacuumlo)
-- lists or deletes blobs no column references.  Shard files are counted on
-- the providers to show what really went.
\i test/regress/setup.sql
-- the shards of blobs of their own: small blobs stay unpacked here (blob_pack.sql)
SET destor.blob_pack_threshold = 0;
\set VERBOSITY terse
\set mk 'cat > /dev/null; mkdir -p ' :dir '/bl1 ' :dir '/bl2 ' :dir '/bl3'
COPY (SELECT 1) TO PROGRAM :'mk';
\set bl1 :dir '/bl1'
\set bl2 :dir '/bl2'
\set bl3 :dir '/bl3'
CREATE SERVER bl1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'bl1');
CREATE SERVER bl2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'bl2');
CREATE SERVER bl3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'bl3');
CREATE SERVER bl_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'bl1,bl2,bl3', data_shards '2', parity_shards '1');
SELECT set_config('bl.dir', :'dir', false) IS NOT NULL AS dir_set;
-- shard files on the pool's providers (3 per blob)
CREATE FUNCTION bl_files() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM (VALUES ('bl1'), ('bl2'), ('bl3')) p(name),
    LATERAL pg_ls_dir(current_setting('bl.dir') || '/' || name || '/ds', true, false) d,
    LATERAL pg_ls_dir(current_setting('bl.dir') || '/' || name || '/ds/' || d, true, false) f $$;
-- blobs of the pool in the catalog
CREATE FUNCTION bl_blobs() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM destor.blobs b JOIN destor.objects o ON o.object_id = b.blob_id
   WHERE o.pool = 'bl_pool' $$;
CREATE FUNCTION bl_exists(x destor.blob) RETURNS boolean LANGUAGE sql AS $$
  SELECT EXISTS (SELECT FROM destor.blobs WHERE blob_id = x::uuid) $$;
CREATE FUNCTION bl_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM,
    '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END $$;

CREATE TABLE bl_docs (id int PRIMARY KEY, b destor.blob);
CREATE TRIGGER bl_docs_blob BEFORE UPDATE OR DELETE ON bl_docs
  FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('b');
INSERT INTO bl_docs SELECT i, destor.blob_put('bl_pool', convert_to('document ' || i, 'UTF8'))
  FROM generate_series(1, 6) i;
CREATE TABLE bl_handles AS SELECT id, b FROM bl_docs;   -- copies, to ask after the rows went
SELECT bl_blobs() AS blobs, bl_files() AS files;

-- 1. A deleted row's blob: kept by a rollback, gone after a commit (it
-- is deleted at commit: until then another row may take it over)
BEGIN;
DELETE FROM bl_docs WHERE id = 1;
SELECT bl_exists(b) AS inside_transaction FROM bl_handles WHERE id = 1;
ROLLBACK;
SELECT bl_exists(b) AS after_rollback, convert_from(destor.blob_get(b), 'UTF8') AS still_reads
  FROM bl_handles WHERE id = 1;
SELECT bl_files() AS files_after_rollback;
DELETE FROM bl_docs WHERE id = 1;
SELECT bl_exists(b) AS after_commit FROM bl_handles WHERE id = 1;
SELECT bl_blobs() AS blobs, bl_files() AS files;

-- 2. Updates: the same blob stays; another blob or NULL deletes the old one
UPDATE bl_docs SET id = 20 WHERE id = 2;
SELECT bl_exists(b) AS same_blob_kept FROM bl_handles WHERE id = 2;
UPDATE bl_docs SET b = b WHERE id = 20;
SELECT bl_exists(b) AS same_blob_set_kept FROM bl_handles WHERE id = 2;
UPDATE bl_docs SET b = destor.blob_put('bl_pool', 'replacement') WHERE id = 3;
SELECT bl_exists(b) AS replaced_blob FROM bl_handles WHERE id = 3;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS new_blob FROM bl_docs WHERE id = 3;
UPDATE bl_docs SET b = NULL WHERE id = 4;
SELECT bl_exists(b) AS nulled_blob FROM bl_handles WHERE id = 4;
SELECT bl_blobs() AS blobs, bl_files() AS files;

-- 3. A savepoint rolled back keeps the blob; the deletion after it counts
BEGIN;
SAVEPOINT s;
DELETE FROM bl_docs WHERE id = 5;
ROLLBACK TO SAVEPOINT s;
SELECT bl_exists(b) AS after_rollback_to FROM bl_handles WHERE id = 5;
DELETE FROM bl_docs WHERE id = 5;
COMMIT;
SELECT bl_exists(b) AS deleted_after_savepoint FROM bl_handles WHERE id = 5;
SELECT bl_blobs() AS blobs, bl_files() AS files;

-- 4. Rows sharing a blob, deleted in one statement: deleted once
INSERT INTO bl_docs SELECT 100 + i, b FROM bl_docs, generate_series(1, 2) i WHERE id = 6;
DELETE FROM bl_docs WHERE id IN (6, 101, 102);
SELECT bl_exists(b) AS shared_deleted FROM bl_handles WHERE id = 6;
SELECT bl_blobs() AS blobs, bl_files() AS files;

-- 5. A role that may delete the row but does not own the blob: refused,
-- as lo_manage's lo_unlink refuses; the row stays
CREATE ROLE regress_life_clerk;
GRANT SELECT, UPDATE, DELETE ON bl_docs TO regress_life_clerk;
SET ROLE regress_life_clerk;
SELECT bl_try('DELETE FROM bl_docs WHERE id = 20') AS clerk_delete;
SELECT bl_try('UPDATE bl_docs SET b = NULL WHERE id = 20') AS clerk_update;
-- keeping the blob needs nothing
SELECT bl_try('UPDATE bl_docs SET id = 21 WHERE id = 20') AS clerk_same_blob;
RESET ROLE;
SELECT id, bl_exists(b) AS kept FROM bl_docs ORDER BY id;

-- 6. AFTER triggers and domains work too; misuse is an error
CREATE DOMAIN bl_doc_blob AS destor.blob;
CREATE TABLE bl_docs2 (id int, d bl_doc_blob, note text);
CREATE TRIGGER bl_docs2_blob AFTER UPDATE OR DELETE ON bl_docs2
  FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('d');
INSERT INTO bl_docs2 VALUES (1, destor.blob_put('bl_pool', 'in a domain'), 'x');
CREATE TEMP TABLE bl_h2 AS SELECT d FROM bl_docs2;
DELETE FROM bl_docs2;
SELECT bl_exists(d) AS after_trigger_deleted FROM bl_h2;
DROP TABLE bl_h2;
CREATE TABLE bl_bad (id int, b destor.blob, t text);
INSERT INTO bl_bad VALUES (1, NULL, 'x');
CREATE TRIGGER t1 BEFORE DELETE ON bl_bad FOR EACH ROW EXECUTE FUNCTION destor.blob_manage();
SELECT bl_try('DELETE FROM bl_bad') AS no_argument;
DROP TRIGGER t1 ON bl_bad;
CREATE TRIGGER t1 BEFORE DELETE ON bl_bad FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('nope');
SELECT bl_try('DELETE FROM bl_bad') AS unknown_column;
DROP TRIGGER t1 ON bl_bad;
CREATE TRIGGER t1 BEFORE DELETE ON bl_bad FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('t');
SELECT bl_try('DELETE FROM bl_bad') AS not_a_blob;
DROP TRIGGER t1 ON bl_bad;
CREATE TRIGGER t1 BEFORE DELETE ON bl_bad FOR EACH STATEMENT EXECUTE FUNCTION destor.blob_manage('b');
SELECT bl_try('DELETE FROM bl_bad') AS statement_level;
SELECT bl_try('SELECT destor.blob_manage()') AS called_directly;
DROP TABLE bl_bad;

-- 6b. The deletions wait for commit: a row that takes the blob back keeps
-- it (with the trigger on INSERT too); a blob deleted by hand meanwhile is
-- no error; two-phase commit is refused
CREATE TABLE bl_re (id int, b destor.blob);
CREATE TRIGGER bl_re_blob BEFORE INSERT OR UPDATE OR DELETE ON bl_re
  FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('b');
INSERT INTO bl_re VALUES (1, destor.blob_put('bl_pool', 'taken back'));
CREATE TEMP TABLE bl_h3 AS SELECT b FROM bl_re;
BEGIN;
CREATE TEMP TABLE bl_moved AS SELECT * FROM bl_re;
DELETE FROM bl_re;
INSERT INTO bl_re SELECT 2, b FROM bl_moved;
COMMIT;
SELECT bl_exists(b) AS taken_back_kept, (SELECT convert_from(destor.blob_get(b), 'UTF8') FROM bl_re) AS reads
  FROM bl_h3;
BEGIN;
DELETE FROM bl_re;
SELECT destor.blob_delete(b) FROM bl_h3;
COMMIT;
SELECT bl_exists(b) AS deleted_by_hand FROM bl_h3;
INSERT INTO bl_re VALUES (3, destor.blob_put('bl_pool', 'prepared'));
BEGIN;
DELETE FROM bl_re;
PREPARE TRANSACTION 'bl_prepared';
SELECT count(*) AS rows_after_refused_prepare FROM bl_re;
DELETE FROM bl_re;
DROP TABLE bl_re, bl_h3, bl_moved;

-- 6c. Partitions (BEFORE trigger): a row whose key changes but stays in its
-- partition, then deleted, loses its blob; a row moved with a new blob
-- loses only the old one
CREATE TABLE bl_parts (k int, b destor.blob) PARTITION BY RANGE (k);
CREATE TABLE bl_parts_lo PARTITION OF bl_parts FOR VALUES FROM (0) TO (10);
CREATE TABLE bl_parts_hi PARTITION OF bl_parts FOR VALUES FROM (10) TO (20);
CREATE TRIGGER bl_parts_blob BEFORE UPDATE OR DELETE ON bl_parts
  FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('b');
INSERT INTO bl_parts VALUES (1, destor.blob_put('bl_pool', 'stays')), (2, destor.blob_put('bl_pool', 'old'));
CREATE TEMP TABLE bl_h4 AS SELECT k, b FROM bl_parts;
BEGIN;
UPDATE bl_parts SET k = 3 WHERE k = 1;
DELETE FROM bl_parts WHERE k = 3;
UPDATE bl_parts SET k = 12, b = destor.blob_put('bl_pool', 'new') WHERE k = 2;
COMMIT;
SELECT k, bl_exists(b) AS exists FROM bl_h4 ORDER BY k;
SELECT tableoid::regclass AS part, k, convert_from(destor.blob_get(b), 'UTF8') AS content FROM bl_parts;
DELETE FROM bl_parts;
DROP TABLE bl_parts, bl_h4;

-- 7. vacuum_blobs: blobs referenced by a column of type destor.blob, a
-- domain over it, an array, a composite, a materialized view or a
-- partition are kept; the others are listed, then deleted
CREATE TYPE bl_doc_ref AS (title text, b destor.blob);
CREATE TABLE bl_refs_array (bs destor.blob[]);
CREATE TABLE bl_refs_domain (d bl_doc_blob);
CREATE TABLE bl_refs_composite (r bl_doc_ref);
CREATE TABLE bl_refs_parted (id int, b destor.blob) PARTITION BY RANGE (id);
CREATE TABLE bl_refs_parted_1 PARTITION OF bl_refs_parted FOR VALUES FROM (0) TO (100);
CREATE TABLE bl_named (name text, b destor.blob);
INSERT INTO bl_named VALUES
  ('array 1', destor.blob_put('bl_pool', 'a1')), ('array 2', destor.blob_put('bl_pool', 'a2')),
  ('domain', destor.blob_put('bl_pool', 'd')), ('composite', destor.blob_put('bl_pool', 'c')),
  ('matview', destor.blob_put('bl_pool', 'm')), ('partition', destor.blob_put('bl_pool', 'p')),
  ('orphan 1', destor.blob_put('bl_pool', 'o1')), ('orphan 2', destor.blob_put('bl_pool', 'o2')),
  ('other pool', destor.blob_put('mirror', 'elsewhere'));
INSERT INTO bl_refs_array SELECT array_agg(b ORDER BY name) FROM bl_named WHERE name LIKE 'array%';
INSERT INTO bl_refs_domain SELECT b FROM bl_named WHERE name = 'domain';
INSERT INTO bl_refs_composite SELECT ROW('title', b)::bl_doc_ref FROM bl_named WHERE name = 'composite';
SELECT b AS mv FROM bl_named WHERE name = 'matview' \gset
CREATE MATERIALIZED VIEW bl_refs_matview AS SELECT :'mv'::destor.blob AS b;
-- one WITH NO DATA holds no handles and cannot be read: skipped, not an ERROR
CREATE MATERIALIZED VIEW bl_refs_unfilled AS SELECT b FROM bl_refs_parted WITH NO DATA;
INSERT INTO bl_refs_parted SELECT 1, b FROM bl_named WHERE name = 'partition';
-- "bl_named" itself would keep them all: its handles go to a text column
CREATE TABLE bl_names AS SELECT name, b::uuid AS id FROM bl_named;
DROP TABLE bl_named;
SELECT n.name FROM destor.vacuum_blobs('bl_pool') v JOIN bl_names n ON n.id = v ORDER BY 1;
SELECT count(*) AS dry_run_kept FROM bl_names WHERE bl_exists(id::text::destor.blob);
SELECT bl_files() AS files_before \gset
SELECT n.name FROM destor.vacuum_blobs('bl_pool', dry_run => false) v JOIN bl_names n ON n.id = v ORDER BY 1;
SELECT bl_files() - :files_before AS files_removed;
SELECT name, bl_exists(id::text::destor.blob) AS exists FROM bl_names ORDER BY 1;
SELECT count(*) AS second_run FROM destor.vacuum_blobs('bl_pool');
-- the blobs bl_docs references are still there
SELECT id, convert_from(destor.blob_get(b), 'UTF8') FROM bl_docs ORDER BY id;
-- who may run it, and bad input
SET ROLE regress_life_clerk;
SELECT bl_try($$SELECT destor.vacuum_blobs('bl_pool')$$) AS clerk_vacuum;
RESET ROLE;
SELECT bl_try($$SELECT destor.vacuum_blobs('no_such_pool')$$) AS unknown_pool;
SELECT count(*) AS null_pool FROM destor.vacuum_blobs(NULL);

-- clean up
DROP TRIGGER bl_docs_blob ON bl_docs;
SELECT count(destor.blob_delete(b)) FROM bl_docs WHERE b IS NOT NULL;
SELECT count(destor.blob_delete(id::text::destor.blob)) FROM bl_names WHERE name = 'other pool';
SELECT count(destor.blob_delete(b)) FROM (
  SELECT unnest(bs) FROM bl_refs_array UNION ALL SELECT d FROM bl_refs_domain
  UNION ALL SELECT (r).b FROM bl_refs_composite UNION ALL SELECT b FROM bl_refs_parted
  UNION ALL SELECT b FROM bl_refs_matview) x(b);
SELECT bl_blobs() AS blobs_left, bl_files() AS files_left;
DROP MATERIALIZED VIEW bl_refs_matview, bl_refs_unfilled;
DROP TABLE bl_docs, bl_docs2, bl_handles, bl_names, bl_refs_array, bl_refs_domain, bl_refs_composite, bl_refs_parted;
DROP TYPE bl_doc_ref;
DROP DOMAIN bl_doc_blob;
DROP OWNED BY regress_life_clerk;
DROP ROLE regress_life_clerk;
DROP FUNCTION bl_files(), bl_blobs(), bl_exists(destor.blob), bl_try(text);
DROP SERVER bl_pool;
DROP SERVER bl1, bl2, bl3;
