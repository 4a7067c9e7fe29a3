-- Blob lifecycle (issue 15 item 3): destor.blob_manage(), contrib lo's
-- lo_manage for blobs, deletes the blob a deleted or updated row referenced
-- — after commit, never on rollback — and destor.vacuum_blobs() (vacuumlo)
-- lists or deletes blobs no column references.  Shard files are counted on
-- the providers to show what really went.
\i test/regress/setup.sql
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

CREATE TABLE docs (id int PRIMARY KEY, b destor.blob);
CREATE TRIGGER docs_blob BEFORE UPDATE OR DELETE ON docs
  FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('b');
INSERT INTO docs SELECT i, destor.blob_put('bl_pool', convert_to('document ' || i, 'UTF8'))
  FROM generate_series(1, 6) i;
CREATE TABLE handles AS SELECT id, b FROM docs;   -- copies, to ask after the rows went
SELECT bl_blobs() AS blobs, bl_files() AS files;

-- 1. A deleted row's blob: kept by a rollback, gone after a commit
BEGIN;
DELETE FROM docs WHERE id = 1;
SELECT bl_exists(b) AS inside_transaction FROM handles WHERE id = 1;
ROLLBACK;
SELECT bl_exists(b) AS after_rollback, convert_from(destor.blob_get(b), 'UTF8') AS still_reads
  FROM handles WHERE id = 1;
SELECT bl_files() AS files_after_rollback;
DELETE FROM docs WHERE id = 1;
SELECT bl_exists(b) AS after_commit FROM handles WHERE id = 1;
SELECT bl_blobs() AS blobs, bl_files() AS files;

-- 2. Updates: the same blob stays; another blob or NULL deletes the old one
UPDATE docs SET id = 20 WHERE id = 2;
SELECT bl_exists(b) AS same_blob_kept FROM handles WHERE id = 2;
UPDATE docs SET b = b WHERE id = 20;
SELECT bl_exists(b) AS same_blob_set_kept FROM handles WHERE id = 2;
UPDATE docs SET b = destor.blob_put('bl_pool', 'replacement') WHERE id = 3;
SELECT bl_exists(b) AS replaced_blob FROM handles WHERE id = 3;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS new_blob FROM docs WHERE id = 3;
UPDATE docs SET b = NULL WHERE id = 4;
SELECT bl_exists(b) AS nulled_blob FROM handles WHERE id = 4;
SELECT bl_blobs() AS blobs, bl_files() AS files;

-- 3. A savepoint rolled back keeps the blob; the deletion after it counts
BEGIN;
SAVEPOINT s;
DELETE FROM docs WHERE id = 5;
ROLLBACK TO SAVEPOINT s;
SELECT bl_exists(b) AS after_rollback_to FROM handles WHERE id = 5;
DELETE FROM docs WHERE id = 5;
COMMIT;
SELECT bl_exists(b) AS deleted_after_savepoint FROM handles WHERE id = 5;
SELECT bl_blobs() AS blobs, bl_files() AS files;

-- 4. Rows sharing a blob, deleted in one statement: deleted once
INSERT INTO docs SELECT 100 + i, b FROM docs, generate_series(1, 2) i WHERE id = 6;
DELETE FROM docs WHERE id IN (6, 101, 102);
SELECT bl_exists(b) AS shared_deleted FROM handles WHERE id = 6;
SELECT bl_blobs() AS blobs, bl_files() AS files;

-- 5. A role that may delete the row but does not own the blob: refused,
-- as lo_manage's lo_unlink refuses; the row stays
CREATE ROLE regress_life_clerk;
GRANT SELECT, UPDATE, DELETE ON docs TO regress_life_clerk;
SET ROLE regress_life_clerk;
SELECT bl_try('DELETE FROM docs WHERE id = 20') AS clerk_delete;
SELECT bl_try('UPDATE docs SET b = NULL WHERE id = 20') AS clerk_update;
-- keeping the blob needs nothing
SELECT bl_try('UPDATE docs SET id = 21 WHERE id = 20') AS clerk_same_blob;
RESET ROLE;
SELECT id, bl_exists(b) AS kept FROM docs ORDER BY id;

-- 6. AFTER triggers and domains work too; misuse is an error
CREATE DOMAIN doc_blob AS destor.blob;
CREATE TABLE docs2 (id int, d doc_blob, note text);
CREATE TRIGGER docs2_blob AFTER UPDATE OR DELETE ON docs2
  FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('d');
INSERT INTO docs2 VALUES (1, destor.blob_put('bl_pool', 'in a domain'), 'x');
CREATE TEMP TABLE h2 AS SELECT d FROM docs2;
DELETE FROM docs2;
SELECT bl_exists(d) AS after_trigger_deleted FROM h2;
DROP TABLE h2;
CREATE TABLE bad (id int, b destor.blob, t text);
INSERT INTO bad VALUES (1, NULL, 'x');
CREATE TRIGGER t1 BEFORE DELETE ON bad FOR EACH ROW EXECUTE FUNCTION destor.blob_manage();
SELECT bl_try('DELETE FROM bad') AS no_argument;
DROP TRIGGER t1 ON bad;
CREATE TRIGGER t1 BEFORE DELETE ON bad FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('nope');
SELECT bl_try('DELETE FROM bad') AS unknown_column;
DROP TRIGGER t1 ON bad;
CREATE TRIGGER t1 BEFORE DELETE ON bad FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('t');
SELECT bl_try('DELETE FROM bad') AS not_a_blob;
DROP TRIGGER t1 ON bad;
CREATE TRIGGER t1 BEFORE DELETE ON bad FOR EACH STATEMENT EXECUTE FUNCTION destor.blob_manage('b');
SELECT bl_try('DELETE FROM bad') AS statement_level;
SELECT bl_try('SELECT destor.blob_manage()') AS called_directly;
DROP TABLE bad;

-- 7. vacuum_blobs: blobs referenced by a column of type destor.blob, a
-- domain over it, an array, a composite, a materialized view or a
-- partition are kept; the others are listed, then deleted
CREATE TYPE doc_ref AS (title text, b destor.blob);
CREATE TABLE refs_array (bs destor.blob[]);
CREATE TABLE refs_domain (d doc_blob);
CREATE TABLE refs_composite (r doc_ref);
CREATE TABLE refs_parted (id int, b destor.blob) PARTITION BY RANGE (id);
CREATE TABLE refs_parted_1 PARTITION OF refs_parted FOR VALUES FROM (0) TO (100);
CREATE TABLE named (name text, b destor.blob);
INSERT INTO named VALUES
  ('array 1', destor.blob_put('bl_pool', 'a1')), ('array 2', destor.blob_put('bl_pool', 'a2')),
  ('domain', destor.blob_put('bl_pool', 'd')), ('composite', destor.blob_put('bl_pool', 'c')),
  ('matview', destor.blob_put('bl_pool', 'm')), ('partition', destor.blob_put('bl_pool', 'p')),
  ('orphan 1', destor.blob_put('bl_pool', 'o1')), ('orphan 2', destor.blob_put('bl_pool', 'o2')),
  ('other pool', destor.blob_put('mirror', 'elsewhere'));
INSERT INTO refs_array SELECT array_agg(b ORDER BY name) FROM named WHERE name LIKE 'array%';
INSERT INTO refs_domain SELECT b FROM named WHERE name = 'domain';
INSERT INTO refs_composite SELECT ROW('title', b)::doc_ref FROM named WHERE name = 'composite';
SELECT b AS mv FROM named WHERE name = 'matview' \gset
CREATE MATERIALIZED VIEW refs_matview AS SELECT :'mv'::destor.blob AS b;
INSERT INTO refs_parted SELECT 1, b FROM named WHERE name = 'partition';
-- "named" itself would keep them all: its handles go to a text column
CREATE TABLE names AS SELECT name, b::uuid AS id FROM named;
DROP TABLE named;
SELECT n.name FROM destor.vacuum_blobs('bl_pool') v JOIN names n ON n.id = v ORDER BY 1;
SELECT count(*) AS dry_run_kept FROM names WHERE bl_exists(id::text::destor.blob);
SELECT bl_files() AS files_before \gset
SELECT n.name FROM destor.vacuum_blobs('bl_pool', dry_run => false) v JOIN names n ON n.id = v ORDER BY 1;
SELECT bl_files() - :files_before AS files_removed;
SELECT name, bl_exists(id::text::destor.blob) AS exists FROM names ORDER BY 1;
SELECT count(*) AS second_run FROM destor.vacuum_blobs('bl_pool');
-- the blobs docs references are still there
SELECT id, convert_from(destor.blob_get(b), 'UTF8') FROM docs ORDER BY id;
-- who may run it, and bad input
SET ROLE regress_life_clerk;
SELECT bl_try($$SELECT destor.vacuum_blobs('bl_pool')$$) AS clerk_vacuum;
RESET ROLE;
SELECT bl_try($$SELECT destor.vacuum_blobs('no_such_pool')$$) AS unknown_pool;
SELECT count(*) AS null_pool FROM destor.vacuum_blobs(NULL);

-- clean up
DROP TRIGGER docs_blob ON docs;
SELECT count(destor.blob_delete(b)) FROM docs WHERE b IS NOT NULL;
SELECT count(destor.blob_delete(id::text::destor.blob)) FROM names WHERE name = 'other pool';
SELECT count(destor.blob_delete(b)) FROM (
  SELECT unnest(bs) FROM refs_array UNION ALL SELECT d FROM refs_domain
  UNION ALL SELECT (r).b FROM refs_composite UNION ALL SELECT b FROM refs_parted
  UNION ALL SELECT b FROM refs_matview) x(b);
SELECT bl_blobs() AS blobs_left, bl_files() AS files_left;
DROP MATERIALIZED VIEW refs_matview;
DROP TABLE docs, docs2, handles, names, refs_array, refs_domain, refs_composite, refs_parted;
DROP TYPE doc_ref;
DROP DOMAIN doc_blob;
DROP OWNED BY regress_life_clerk;
DROP ROLE regress_life_clerk;
DROP FUNCTION bl_files(), bl_blobs(), bl_exists(destor.blob), bl_try(text);
DROP SERVER bl_pool;
DROP SERVER bl1, bl2, bl3;
