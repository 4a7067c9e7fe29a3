-- Each backend caches blob metadata for small reads (issue 11): no change
-- of a blob's catalog rows may leave a stale entry that reads a deleted
-- or rolled-back blob or bypasses the owner check.  Every case reads the
-- blob first (filling the cache) and then again after the change.
\set VERBOSITY terse
-- a pool of its own: earlier files leave 'archive' with providers lost
\getenv dir DESTOR_REGRESS_DIR
\set mk 'cat > /dev/null; cd ' :dir ' && mkdir -p mc/1 mc/2 mc/3 mc/4 mc/5 mc/6'
COPY (SELECT 1) TO PROGRAM :'mk';
\set m1 :dir '/mc/1'
CREATE SERVER mc1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'m1');
\set m2 :dir '/mc/2'
CREATE SERVER mc2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'m2');
\set m3 :dir '/mc/3'
CREATE SERVER mc3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'m3');
\set m4 :dir '/mc/4'
CREATE SERVER mc4 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'m4');
\set m5 :dir '/mc/5'
CREATE SERVER mc5 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'m5');
\set m6 :dir '/mc/6'
CREATE SERVER mc6 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'m6');
CREATE SERVER mc_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'mc1,mc2,mc3,mc4,mc5,mc6', data_shards '4', parity_shards '2');
CREATE ROLE regress_cache_owner;
CREATE ROLE regress_cache_heir;
CREATE ROLE regress_cache_member;
CREATE TEMP TABLE cb (name text, b destor.blob);
GRANT SELECT ON cb TO PUBLIC;
INSERT INTO cb VALUES ('deleted', destor.blob_put('mc_pool', 'deleted bytes')),
                      ('owned', destor.blob_put('mc_pool', 'owned bytes'));
-- the bytes, or the error's SQLSTATE (the messages name random ids)
CREATE FUNCTION try_read(x destor.blob) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN convert_from(destor.blob_read(x, 0, 100), 'UTF8');
EXCEPTION WHEN OTHERS THEN
  RETURN 'ERROR ' || SQLSTATE;
END $$;
CREATE FUNCTION try_size(x destor.blob) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN destor.blob_size(x)::text;
EXCEPTION WHEN OTHERS THEN
  RETURN 'ERROR ' || SQLSTATE;
END $$;
CREATE FUNCTION cb_read(n text) RETURNS text LANGUAGE sql AS $$
  SELECT try_read(b) FROM cb WHERE name = n $$;

-- 1. a committed delete: the next read does not find the blob
SELECT cb_read('deleted') AS before_delete;
SELECT destor.blob_delete(b) FROM cb WHERE name = 'deleted';
SELECT cb_read('deleted') AS after_delete;
SELECT try_size(b) AS size_after_delete FROM cb WHERE name = 'deleted';

-- 2. a blob written and read in a transaction that rolls back is gone
BEGIN;
INSERT INTO cb VALUES ('rolled back', destor.blob_put('mc_pool', 'never committed'));
SELECT cb_read('rolled back') AS inside;
SELECT b::text AS rb_id FROM cb WHERE name = 'rolled back' \gset
ROLLBACK;
SELECT try_read(:'rb_id') AS after_rollback;
-- the same in a subtransaction
BEGIN;
SAVEPOINT s;
INSERT INTO cb VALUES ('sub', destor.blob_put('mc_pool', 'undone'));
SELECT b::text AS sub_id FROM cb WHERE name = 'sub' \gset
SELECT cb_read('sub') AS inside_savepoint;
ROLLBACK TO SAVEPOINT s;
SELECT try_read(:'sub_id') AS after_rollback_to;
COMMIT;

-- a rolled-back delete leaves the blob readable
BEGIN;
SELECT destor.blob_delete(b) FROM cb WHERE name = 'owned';
ROLLBACK;
SELECT cb_read('owned') AS after_rolled_back_delete;

-- 3. owner changes: the owner is checked on every call, the new one
UPDATE destor.blobs SET owner = 'regress_cache_owner'::regrole
  WHERE blob_id = (SELECT b::uuid FROM cb WHERE name = 'owned');
SET ROLE regress_cache_owner;
SELECT cb_read('owned') AS owner_reads;
SELECT try_size(b) AS owner_size FROM cb WHERE name = 'owned';
RESET ROLE;
REASSIGN OWNED BY regress_cache_owner TO regress_cache_heir;
SET ROLE regress_cache_owner;
SELECT cb_read('owned') AS old_owner_after_reassign;
SELECT try_size(b) AS old_owner_size FROM cb WHERE name = 'owned';
SET ROLE regress_cache_heir;
SELECT cb_read('owned') AS heir_reads;
RESET ROLE;

-- 4. a revoked role membership takes effect at once
GRANT regress_cache_heir TO regress_cache_member;
SET ROLE regress_cache_member;
SELECT cb_read('owned') AS member_reads;
RESET ROLE;
REVOKE regress_cache_heir FROM regress_cache_member;
SET ROLE regress_cache_member;
SELECT cb_read('owned') AS after_revoke;
RESET ROLE;

-- 5. a superuser's own DELETE of the catalog rows
SELECT cb_read('owned') AS superuser_reads;
DELETE FROM destor.blobs WHERE blob_id = (SELECT b::uuid FROM cb WHERE name = 'owned');
SELECT cb_read('owned') AS after_catalog_delete;

-- many reads in one statement and one transaction reuse one reader
INSERT INTO cb VALUES ('many', destor.blob_put('mc_pool', decode(repeat('0123456789abcdef', 16384), 'escape')));
SELECT count(*) AS reads, sum(length(destor.blob_read(b, i * 1000, 1000))) AS bytes,
       bool_and(destor.blob_read(b, i * 1000, 16) = substring(decode(repeat('0123456789abcdef', 16384), 'escape') from i * 1000 + 1 for 16)) AS same
  FROM cb, generate_series(0, 299) i WHERE name = 'many';

-- more blobs in turn than the backend keeps readers open: each read right
INSERT INTO cb SELECT 'turn ' || i, destor.blob_put('mc_pool', convert_to(repeat('blob ' || i || ';', 1000), 'UTF8'))
  FROM generate_series(1, 7) i;
SELECT count(*) AS reads,
       count(*) FILTER (WHERE convert_from(destor.blob_read(b, (j * 37) % 4000, 20), 'UTF8') =
                              substring(repeat('blob ' || substring(name from 6) || ';', 1000)
                                        from (j * 37) % 4000 + 1 for 20)) AS right
  FROM generate_series(1, 10) j, cb WHERE name LIKE 'turn %';

DROP FUNCTION cb_read(text);
DROP FUNCTION try_read(destor.blob);
DROP FUNCTION try_size(destor.blob);
DROP OWNED BY regress_cache_heir;
DROP ROLE regress_cache_owner, regress_cache_heir, regress_cache_member;
