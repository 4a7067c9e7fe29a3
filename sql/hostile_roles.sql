-- Hostile roles: an owner, a role with USAGE on the pool only, and a role
-- with nothing try every destor function, view, option and table operation
-- on each other's data.  Self-contained: its own providers, pool and roles.
\i test/regress/setup.sql
\set h1 :dir '/h1'
\set h2 :dir '/h2'
\set h3 :dir '/h3'
\set mk 'cat > /dev/null; mkdir -p ' :dir '/h1 ' :dir '/h2 ' :dir '/h3'
COPY (SELECT 1) TO PROGRAM :'mk';
CREATE SERVER h1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'h1');
CREATE SERVER h2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'h2');
CREATE SERVER h3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'h3');
CREATE SERVER hpool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'h1,h2,h3', data_shards '2', parity_shards '1');

CREATE ROLE regress_hostile_owner;
CREATE ROLE regress_hostile_user;
CREATE ROLE regress_hostile_nobody;
GRANT USAGE ON FOREIGN SERVER hpool TO regress_hostile_owner, regress_hostile_user;
GRANT USAGE ON FOREIGN SERVER h1, h2, h3 TO regress_hostile_owner, regress_hostile_user;
CREATE SCHEMA hostile;
GRANT USAGE, CREATE ON SCHEMA hostile TO regress_hostile_owner, regress_hostile_user;
GRANT USAGE ON SCHEMA hostile TO regress_hostile_nobody;

-- what a statement does for the current role: ok, or its SQLSTATE and
-- message (ids masked)
CREATE FUNCTION hostile.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM,
    '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END $$;

-- The owner's data: a table and a blob.
SET ROLE regress_hostile_owner;
CREATE FOREIGN TABLE hostile.secret (id int, v text) SERVER hpool;
INSERT INTO hostile.secret VALUES (1, 'the owner''s secret');
CREATE TABLE hostile.owner_blob AS SELECT destor.blob_put('hpool', 'owner''s blob') AS b;
GRANT SELECT ON hostile.owner_blob TO PUBLIC;
RESET ROLE;
SELECT (SELECT substr(o, 10) FROM unnest(ftoptions) o WHERE o LIKE 'table_id=%') AS victim_id
  FROM pg_foreign_table WHERE ftrelid = 'hostile.secret'::regclass \gset

-- 1. A table's identity cannot be claimed by naming its table_id.
SET ROLE regress_hostile_user;
\set VERBOSITY default
CREATE FOREIGN TABLE pg_temp.thief (id int, v text) SERVER hpool OPTIONS (table_id :'victim_id');
CREATE FOREIGN TABLE hostile.thief (id int, v text) SERVER hpool OPTIONS (table_id :'victim_id');
CREATE FOREIGN TABLE hostile.thief (id int, v text) SERVER hpool;
INSERT INTO hostile.thief VALUES (2, 'the thief''s own row');
ALTER FOREIGN TABLE hostile.thief OPTIONS (SET table_id :'victim_id');
ALTER TABLE hostile.thief OPTIONS (SET table_id :'victim_id');
ALTER FOREIGN TABLE hostile.thief OPTIONS (DROP table_id);
SELECT * FROM hostile.thief;
TRUNCATE hostile.thief;
DROP FOREIGN TABLE hostile.thief;
\set VERBOSITY terse
RESET ROLE;
-- the owner's table and its binding are untouched
SET ROLE regress_hostile_owner;
SELECT * FROM hostile.secret;
RESET ROLE;
SELECT count(*) AS bindings_of_victim FROM destor.tables
 WHERE table_id = :'victim_id' AND relid = 'hostile.secret'::regclass;

-- Even with the event triggers off (only a superuser can do that), a table
-- not bound to its table_id reaches nothing.
ALTER EVENT TRIGGER destor_create_foreign_table DISABLE;
SET ROLE regress_hostile_user;
CREATE FOREIGN TABLE hostile.sneak (id int, v text) SERVER hpool OPTIONS (table_id :'victim_id');
SELECT * FROM hostile.sneak;
INSERT INTO hostile.sneak VALUES (3, 'x');
TRUNCATE hostile.sneak;
RESET ROLE;
ALTER EVENT TRIGGER destor_create_foreign_table ENABLE;
SET ROLE regress_hostile_user;
DROP FOREIGN TABLE hostile.sneak;
RESET ROLE;
SET ROLE regress_hostile_owner;
SELECT * FROM hostile.secret;
RESET ROLE;

-- Data whose table is gone without its binding (a restore in progress, a
-- drop with the triggers off): a superuser may give it to a table, nobody
-- else.
SET ROLE regress_hostile_owner;
CREATE FOREIGN TABLE hostile.lost (id int, v text) SERVER hpool;
INSERT INTO hostile.lost VALUES (4, 'restored row');
RESET ROLE;
SELECT (SELECT substr(o, 10) FROM unnest(ftoptions) o WHERE o LIKE 'table_id=%') AS lost_id
  FROM pg_foreign_table WHERE ftrelid = 'hostile.lost'::regclass \gset
ALTER EVENT TRIGGER destor_drop_foreign_table DISABLE;
DROP FOREIGN TABLE hostile.lost;
ALTER EVENT TRIGGER destor_drop_foreign_table ENABLE;
SET ROLE regress_hostile_user;
CREATE FOREIGN TABLE hostile.found (id int, v text) SERVER hpool OPTIONS (table_id :'lost_id');
RESET ROLE;
CREATE FOREIGN TABLE hostile.found (id int, v text) SERVER hpool OPTIONS (table_id :'lost_id');
SELECT * FROM hostile.found;
DROP FOREIGN TABLE hostile.found;

-- 2. A pool with an s3 provider the caller has no user mapping for: no
-- crash, and the shards' providers are recorded by their real names.
CREATE SERVER hs1 FOREIGN DATA WRAPPER destor_provider
  OPTIONS (type 's3', endpoint 'http://127.0.0.1:1', bucket 'none');
CREATE SERVER hs2 FOREIGN DATA WRAPPER destor_provider
  OPTIONS (type 's3', endpoint 'http://127.0.0.1:1', bucket 'none');
CREATE SERVER hspool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'hs1,h1,hs2,h2,h3', data_shards '2', parity_shards '3', write_quorum '2');
GRANT USAGE ON FOREIGN SERVER hspool, hs1, hs2 TO regress_hostile_user;
SET ROLE regress_hostile_user;
SET client_min_messages = error;
CREATE TEMP TABLE s3blobs AS
  SELECT destor.blob_put('hspool', convert_to(repeat('s3 ', i), 'UTF8')) AS b FROM generate_series(1, 4) i;
SELECT count(*) AS readable FROM s3blobs WHERE convert_from(destor.blob_get(b), 'UTF8') LIKE 's3 %';
RESET client_min_messages;
SELECT DISTINCT provider FROM destor.blob_shards s JOIN s3blobs ON s.blob_id = s3blobs.b::uuid
 ORDER BY provider;
-- the provider's last error names an object: not shown to this role
SELECT provider, last_error IS NULL AS error_hidden FROM destor.provider_status
 WHERE provider IN ('hs1', 'hs2') ORDER BY provider;
SELECT count(*) AS errors_hidden FROM destor.provider_stats() WHERE last_error IS NOT NULL;
SELECT destor.blob_delete(b) FROM s3blobs;
DROP TABLE s3blobs;
RESET ROLE;
SELECT provider, last_error IS NOT NULL AS error_shown FROM destor.provider_status
 WHERE provider IN ('hs1', 'hs2') ORDER BY provider;

-- 4. A pool needs USAGE on each of its providers, to be declared and used.
GRANT USAGE ON FOREIGN DATA WRAPPER destor TO regress_hostile_user;
REVOKE USAGE ON FOREIGN SERVER hs1 FROM regress_hostile_user;
SET ROLE regress_hostile_user;
\set VERBOSITY default
CREATE SERVER hmine FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'hs1,h1,h2', data_shards '2', parity_shards '1');
CREATE SERVER hmine FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'h1,h2,h3', data_shards '2', parity_shards '1');
ALTER SERVER hmine OPTIONS (SET providers 'h1,h2,hs1');
SELECT destor.blob_put('hspool', 'x');
\set VERBOSITY terse
DROP SERVER hmine;
RESET ROLE;
REVOKE USAGE ON FOREIGN DATA WRAPPER destor FROM regress_hostile_user;

-- 6. Views show only what the caller may see; blob errors do not tell
-- whether another role's blob exists.
SET ROLE regress_hostile_user;
CREATE TEMP TABLE seen (id uuid);
CREATE FUNCTION pg_temp.peek(uuid) RETURNS bool LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
  INSERT INTO seen VALUES ($1);
  RETURN true;
END $$;
SELECT count(*) FROM destor.blob_shards WHERE pg_temp.peek(blob_id);
SELECT count(*) AS others_blobs_seen FROM seen s JOIN hostile.owner_blob o ON s.id = o.b::uuid;
SELECT hostile.try(format('SELECT destor.blob_get(%L)', b)) AS others_blob FROM hostile.owner_blob;
SELECT hostile.try($$SELECT destor.blob_get('00000000-0000-4000-8000-000000000000')$$) AS no_blob;
SELECT hostile.try(format('SELECT destor.blob_delete(%L)', b)) AS others_blob FROM hostile.owner_blob;
SELECT hostile.try($$SELECT destor.blob_delete('00000000-0000-4000-8000-000000000000')$$) AS no_blob;
DROP FUNCTION pg_temp.peek(uuid);
DROP TABLE seen;
RESET ROLE;

-- partitions tiered by the owner: only roles that may read them see them
CREATE TABLE hostile.events (at date, what text) PARTITION BY RANGE (at);
CREATE TABLE hostile.events_2020 PARTITION OF hostile.events FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE hostile.events_2021 PARTITION OF hostile.events FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
ALTER TABLE hostile.events OWNER TO regress_hostile_owner;
ALTER TABLE hostile.events_2020 OWNER TO regress_hostile_owner;
ALTER TABLE hostile.events_2021 OWNER TO regress_hostile_owner;
SET ROLE regress_hostile_owner;
INSERT INTO hostile.events VALUES ('2020-06-01', 'old'), ('2021-06-01', 'new');
SELECT destor.tier_partitions('hostile.events', 'hpool', keep_local => 1);
SELECT partition, pool, segments, stored_rows FROM destor.tiered_partitions
 WHERE parent = 'hostile.events'::regclass;
RESET ROLE;
SET ROLE regress_hostile_user;
SELECT count(*) AS tiered_seen FROM destor.tiered_partitions WHERE parent = 'hostile.events'::regclass;
RESET ROLE;
SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'destor' AND c.relkind = 'v' AND c.relname IN ('blob_shards', 'tiered_partitions', 'provider_status')
 ORDER BY 1;

-- 8. Every function, view and table operation, by each role.
CREATE TABLE hostile.stmts (n int, stmt text);
INSERT INTO hostile.stmts VALUES
  (1, $$SELECT destor.blob_put('hpool', 'x')$$),
  (2, $$SELECT destor.blob_get(b) FROM hostile.owner_blob$$),
  (3, $$SELECT destor.blob_read(b, 0, 3) FROM hostile.owner_blob$$),
  (4, $$SELECT destor.blob_size(b) FROM hostile.owner_blob$$),
  (5, $$SELECT destor.blob_export(b, '/nonexistent/hostile_never') FROM hostile.owner_blob$$),
  (6, $$SELECT destor.blob_import('hpool', '/etc/hostname')$$),
  (7, $$SELECT destor.blob_to_lo(b) FROM hostile.owner_blob$$),
  (8, $$SELECT destor.blob_from_lo('hpool', 1)$$),
  (9, $$SELECT * FROM hostile.secret$$),
  (10, $$INSERT INTO hostile.secret VALUES (9, 'x')$$),
  (11, $$UPDATE hostile.secret SET v = 'y'$$),
  (12, $$DELETE FROM hostile.secret$$),
  (13, $$TRUNCATE hostile.secret$$),
  (14, $$ANALYZE hostile.secret$$),
  (15, $$SELECT destor.compact('hostile.secret')$$),
  (16, $$ALTER FOREIGN TABLE hostile.secret OPTIONS (ADD segment_rows '50000')$$),
  (17, $$SELECT destor.bind_table('hostile.secret')$$),
  (18, $$SELECT destor.tier_partition('hostile.events_2021', 'hpool')$$),
  (19, $$SELECT destor.recall_partition('hostile.events_2020')$$),
  (20, $$SELECT destor.tier_partitions('hostile.events', 'hpool', keep_local => 0)$$),
  (21, $$SELECT destor.tier_partitions('hostile.events', 'hpool', older_than => '1 day')$$),
  (22, $$SELECT destor.apply_tiering_policies()$$),
  (23, $$INSERT INTO destor.tiering_policies VALUES ('hostile.events', 'hpool', 0, NULL)$$),
  (24, $$SELECT destor.repair('hpool')$$),
  (25, $$SELECT destor.move_shards('h1', 'h2')$$),
  (26, $$SELECT destor.rebalance('hpool')$$),
  (27, $$SELECT destor.cleanup_orphans('hpool', '1 day')$$),
  (28, $$SELECT destor.check_provider('h1')$$),
  (29, $$SELECT destor.cache_reset()$$),
  (30, $$SELECT destor.provider_stats_reset()$$),
  (31, $$SELECT destor.forget_table(gen_random_uuid())$$),
  (32, $$SELECT count(*) FROM destor.objects$$),
  (33, $$SELECT count(*) FROM destor.shards$$),
  (34, $$SELECT count(*) FROM destor.blobs$$),
  (35, $$SELECT count(*) FROM destor.segments$$),
  (36, $$SELECT count(*) FROM destor.tables$$),
  (37, $$SELECT count(*) FROM destor.storage_report$$),
  (38, $$SELECT count(*) FROM destor.blob_shards$$),
  (39, $$SELECT count(*) FROM destor.provider_status$$),
  (40, $$SELECT count(*) FROM destor.cache_stats$$),
  (41, $$SELECT count(*) FROM destor.maintenance_status$$),
  (42, $$SELECT count(*) FROM destor.tiered_partitions$$),
  (43, $$CREATE FOREIGN TABLE hostile.mine (a int) SERVER hpool$$),
  (44, $$CREATE SERVER hostile_pool FOREIGN DATA WRAPPER destor OPTIONS (providers 'h1,h2,h3', data_shards '2', parity_shards '1')$$),
  (45, $$CREATE SERVER hostile_dir FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '/tmp/hostile_dir')$$),
  (46, $$DROP FOREIGN TABLE hostile.secret$$);
GRANT SELECT ON hostile.stmts TO PUBLIC;
-- each statement in a transaction that is rolled back, so nothing changes
CREATE FUNCTION hostile.try_all() RETURNS TABLE (n int, outcome text) LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM hostile.stmts ORDER BY 1 LOOP
    BEGIN
      n := r.n;
      outcome := hostile.try(r.stmt);
      RAISE SQLSTATE 'P0001' USING MESSAGE = 'roll back';
    EXCEPTION WHEN SQLSTATE 'P0001' THEN
      RETURN NEXT;
    END;
  END LOOP;
END $$;
SET client_min_messages = error;
CREATE TEMP TABLE outcomes AS SELECT 'superuser' AS who, * FROM hostile.try_all();
GRANT SELECT, INSERT ON outcomes TO PUBLIC;
SET ROLE regress_hostile_owner;
INSERT INTO outcomes SELECT 'owner', * FROM hostile.try_all();
RESET ROLE;
SET ROLE regress_hostile_user;
INSERT INTO outcomes SELECT 'user', * FROM hostile.try_all();
RESET ROLE;
SET ROLE regress_hostile_nobody;
INSERT INTO outcomes SELECT 'nobody', * FROM hostile.try_all();
RESET ROLE;
RESET client_min_messages;
SELECT n, who, outcome FROM outcomes
 ORDER BY n, array_position(ARRAY['superuser', 'owner', 'user', 'nobody'], who);

-- 7. Blob owners: by role name in a dump; DROP ROLE, REASSIGN OWNED, DROP OWNED.
SELECT owner FROM destor.blobs b JOIN hostile.owner_blob o ON o.b::uuid = b.blob_id;
COPY (SELECT b.owner FROM destor.blobs b JOIN hostile.owner_blob o ON o.b::uuid = b.blob_id) TO STDOUT;
-- a role that owns nothing but blobs (USAGE on the pool through membership)
CREATE ROLE regress_hostile_blobber IN ROLE regress_hostile_user;
CREATE ROLE regress_hostile_heir;
GRANT USAGE ON SCHEMA hostile TO regress_hostile_heir;
SET ROLE regress_hostile_blobber;
CREATE TABLE hostile.blobber_blobs AS
  SELECT destor.blob_put('hpool', convert_to('blob ' || i, 'UTF8')) AS b FROM generate_series(1, 2) i;
RESET ROLE;
ALTER TABLE hostile.blobber_blobs OWNER TO regress_hostile_heir;
\set VERBOSITY default
DROP ROLE regress_hostile_blobber;
\set VERBOSITY terse
REASSIGN OWNED BY regress_hostile_blobber TO regress_hostile_heir;
DROP ROLE regress_hostile_blobber;
SELECT DISTINCT owner FROM destor.blobs b JOIN hostile.blobber_blobs o ON o.b::uuid = b.blob_id;
SET ROLE regress_hostile_heir;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS inherited FROM hostile.blobber_blobs ORDER BY 1;
RESET ROLE;
BEGIN;
DROP OWNED BY regress_hostile_heir;
SELECT count(*) AS heir_blobs_after_drop_owned FROM destor.blobs WHERE owner = 'regress_hostile_heir'::regrole;
ROLLBACK;
SELECT count(*) AS heir_blobs FROM destor.blobs WHERE owner = 'regress_hostile_heir'::regrole;
SELECT destor.blob_delete(b) FROM hostile.blobber_blobs;

-- tiering policies name tables and pools: each role sees only the
-- policies of tables it may read (row-level security on the table)
SET ROLE regress_hostile_owner;
CREATE TABLE hostile.owner_events (at date) PARTITION BY RANGE (at);
RESET ROLE;
INSERT INTO destor.tiering_policies (parent, pool, keep_local) VALUES ('hostile.owner_events', 'hpool', 1);
SET ROLE regress_hostile_owner;
SELECT parent, pool FROM destor.tiering_policies;
SET ROLE regress_hostile_user;
SELECT count(*) AS others_policies_seen FROM destor.tiering_policies;
RESET ROLE;
DELETE FROM destor.tiering_policies WHERE parent = 'hostile.owner_events'::regclass;

-- clean up
SELECT destor.blob_delete(b) FROM hostile.owner_blob;
DROP SCHEMA hostile CASCADE;
DROP SERVER hspool, hpool, hs1, hs2, h1, h2, h3 CASCADE;
DROP ROLE regress_hostile_owner, regress_hostile_user, regress_hostile_nobody, regress_hostile_heir;
