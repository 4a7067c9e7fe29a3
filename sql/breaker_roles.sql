-- Adversarial review (issue 9): attacks on destor's promises about other
-- database roles that hostile_roles.sql does not try: a member of the owner
-- with and without INHERIT, large objects the attacker may read but not
-- own, tiering into pools the caller may not use, a grantee of the table
-- without USAGE on its pool, column privileges, SECURITY DEFINER wrappers,
-- leaky functions against the public views, and temporary destor tables.
-- Self-contained: its own providers, pool and roles.
\getenv dir DESTOR_REGRESS_DIR
\set b1 :dir '/b1'
\set b2 :dir '/b2'
\set b3 :dir '/b3'
\set mk 'cat > /dev/null; mkdir -p ' :dir '/b1 ' :dir '/b2 ' :dir '/b3'
COPY (SELECT 1) TO PROGRAM :'mk';
CREATE SERVER b1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'b1');
CREATE SERVER b2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'b2');
CREATE SERVER b3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'b3');
CREATE SERVER bpool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'b1,b2,b3', data_shards '2', parity_shards '1');
CREATE SERVER bpool_closed FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'b1,b2,b3', data_shards '2', parity_shards '1');

CREATE ROLE regress_breaker_owner;
CREATE ROLE regress_breaker_user;
CREATE ROLE regress_breaker_nobody;
-- members of the owner: one inherits its privileges, one must SET ROLE
CREATE ROLE regress_breaker_heir IN ROLE regress_breaker_owner;
CREATE ROLE regress_breaker_noinherit NOINHERIT IN ROLE regress_breaker_owner;
GRANT USAGE ON FOREIGN SERVER bpool TO regress_breaker_owner, regress_breaker_user;
GRANT USAGE ON FOREIGN SERVER b1, b2, b3 TO regress_breaker_owner, regress_breaker_user;
CREATE SCHEMA breaker;
GRANT USAGE, CREATE ON SCHEMA breaker TO regress_breaker_owner, regress_breaker_user;
GRANT USAGE ON SCHEMA breaker TO regress_breaker_nobody, regress_breaker_heir, regress_breaker_noinherit;

-- ok, or the SQLSTATE and message (ids masked)
CREATE FUNCTION breaker.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || regexp_replace(regexp_replace(SQLERRM,
    '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g'),
    'large object [0-9]+', 'large object <lo>', 'g');
END $$;

SET ROLE regress_breaker_owner;
CREATE FOREIGN TABLE breaker.secret (id int, v text) SERVER bpool;
INSERT INTO breaker.secret VALUES (1, 'owner secret'), (2, 'another secret');
CREATE TABLE breaker.owner_blob AS SELECT destor.blob_put('bpool', 'owner''s blob') AS b;
GRANT SELECT ON breaker.owner_blob TO PUBLIC;
RESET ROLE;

-- 1. Members of the owning role: with INHERIT they use its blobs, without
-- it (NOINHERIT, like has_privs_of_role) only after SET ROLE; blob_shards
-- agrees with the functions.
SET ROLE regress_breaker_heir;
SELECT breaker.try('SELECT destor.blob_get(b) FROM breaker.owner_blob') AS heir_get;
SELECT count(*) AS heir_sees_shards FROM destor.blob_shards s JOIN breaker.owner_blob o ON s.blob_id = o.b::uuid;
RESET ROLE;
SET ROLE regress_breaker_noinherit;
SELECT breaker.try('SELECT destor.blob_get(b) FROM breaker.owner_blob') AS noinherit_get;
SELECT breaker.try('SELECT destor.blob_size(b) FROM breaker.owner_blob') AS noinherit_size;
SELECT breaker.try('SELECT destor.blob_delete(b) FROM breaker.owner_blob') AS noinherit_delete;
SELECT count(*) AS noinherit_sees_shards FROM destor.blob_shards s JOIN breaker.owner_blob o ON s.blob_id = o.b::uuid;
SET ROLE regress_breaker_owner;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS after_set_role FROM breaker.owner_blob;
RESET ROLE;

-- 2. Large objects: readable is not enough to unlink one into a blob; not
-- readable is not enough to copy one.
SET ROLE regress_breaker_owner;
SELECT lo_from_bytea(0, 'owner''s large object') AS lo_shared \gset
SELECT lo_from_bytea(0, 'owner''s private large object') AS lo_private \gset
GRANT SELECT ON LARGE OBJECT :lo_shared TO regress_breaker_user;
RESET ROLE;
SET ROLE regress_breaker_user;
SELECT breaker.try(format('SELECT destor.blob_from_lo(%L, %s, unlink => true)', 'bpool', :lo_shared)) AS unlink_not_owned;
SELECT breaker.try(format('SELECT destor.blob_from_lo(%L, %s)', 'bpool', :lo_private)) AS copy_unreadable;
-- a copy of a readable one is the copier's blob
CREATE TEMP TABLE lo_copy AS SELECT destor.blob_from_lo('bpool', :lo_shared) AS b;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS copied FROM lo_copy;
-- blob_to_lo into a large object id that exists (the owner's)
SELECT breaker.try(format('SELECT destor.blob_to_lo(b, %s) FROM lo_copy', :lo_private)) AS into_others_lo;
SELECT destor.blob_delete(b) FROM lo_copy;
DROP TABLE lo_copy;
RESET ROLE;
SELECT convert_from(lo_get(:lo_shared), 'UTF8') AS still_there, convert_from(lo_get(:lo_private), 'UTF8') AS untouched;

-- 3. Tiering into a pool the caller has no USAGE on (or whose providers it
-- may not use) is refused, before anything is copied.
SET ROLE regress_breaker_user;
CREATE TABLE breaker.mine (at date, what text) PARTITION BY RANGE (at);
CREATE TABLE breaker.mine_2020 PARTITION OF breaker.mine FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE breaker.mine_2021 PARTITION OF breaker.mine FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
INSERT INTO breaker.mine VALUES ('2020-06-01', 'old'), ('2021-06-01', 'new');
SELECT breaker.try($$SELECT destor.tier_partition('breaker.mine_2020', 'bpool_closed')$$) AS tier_closed_pool;
SELECT breaker.try($$SELECT destor.tier_partitions('breaker.mine', 'bpool_closed', keep_local => 1)$$) AS tier_many_closed_pool;
SELECT breaker.try($$CREATE FOREIGN TABLE breaker.into_closed (a int) SERVER bpool_closed$$) AS create_in_closed_pool;
SELECT relkind FROM pg_class WHERE oid = 'breaker.mine_2020'::regclass;
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER bpool_closed TO regress_breaker_user;
REVOKE USAGE ON FOREIGN SERVER b2 FROM regress_breaker_user;
SET ROLE regress_breaker_user;
SELECT breaker.try($$SELECT destor.tier_partition('breaker.mine_2020', 'bpool_closed')$$) AS tier_provider_closed;
SELECT relkind FROM pg_class WHERE oid = 'breaker.mine_2020'::regclass;
SELECT * FROM breaker.mine ORDER BY at;
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER b2 TO regress_breaker_user;
REVOKE USAGE ON FOREIGN SERVER bpool_closed FROM regress_breaker_user;

-- 4. A grantee of the table: its privileges on the table decide, and
-- writing needs USAGE on the pool as well; column privileges hold.
SET ROLE regress_breaker_owner;
GRANT SELECT (id), INSERT, UPDATE (v), DELETE ON breaker.secret TO regress_breaker_nobody;
RESET ROLE;
SET ROLE regress_breaker_nobody;
SELECT id FROM breaker.secret ORDER BY id;
SELECT breaker.try('SELECT v FROM breaker.secret') AS read_v;
SELECT breaker.try('SELECT id FROM breaker.secret WHERE v = ''owner secret''') AS filter_on_v;
SELECT breaker.try('SELECT count(*) FROM breaker.secret s WHERE s IS NOT NULL') AS whole_row;
SELECT breaker.try('UPDATE breaker.secret SET v = ''x'' RETURNING v') AS update_returning;
SELECT breaker.try('INSERT INTO breaker.secret VALUES (3, ''nobody'')') AS insert_without_pool_usage;
SELECT breaker.try('UPDATE breaker.secret SET v = ''x'' WHERE id = 1') AS update_without_pool_usage;
RESET ROLE;
SET ROLE regress_breaker_owner;
SELECT * FROM breaker.secret ORDER BY id;
REVOKE ALL ON breaker.secret FROM regress_breaker_nobody;
RESET ROLE;

-- 5. SECURITY DEFINER: a wrapper runs with its owner's rights over blobs,
-- and the caller's own wrapper gives the caller nothing more.
SET ROLE regress_breaker_owner;
CREATE FUNCTION breaker.owner_read() RETURNS text LANGUAGE sql SECURITY DEFINER
  SET search_path = pg_catalog AS
  $$ SELECT convert_from(destor.blob_get(b), 'UTF8') FROM breaker.owner_blob $$;
RESET ROLE;
SET ROLE regress_breaker_user;
SELECT breaker.owner_read() AS through_owners_wrapper;
CREATE FUNCTION breaker.user_read() RETURNS bytea LANGUAGE sql SECURITY DEFINER AS
  $$ SELECT destor.blob_get(b) FROM breaker.owner_blob $$;
SELECT breaker.try('SELECT breaker.user_read()') AS through_own_wrapper;
-- 6. objects in a schema early in search_path do not take destor's place
-- inside destor's own functions or its event triggers
CREATE SCHEMA breaker_shadow;
CREATE FUNCTION breaker_shadow.gen_random_uuid() RETURNS uuid LANGUAGE sql
  AS $$ SELECT '00000000-0000-4000-8000-000000000001'::uuid $$;
CREATE FUNCTION breaker_shadow.pg_has_role(oid, text) RETURNS boolean LANGUAGE sql
  AS $$ SELECT true $$;
CREATE FUNCTION breaker_shadow.has_table_privilege(oid, text) RETURNS boolean LANGUAGE sql
  AS $$ SELECT true $$;
SET search_path = breaker_shadow, pg_catalog, public;
CREATE FOREIGN TABLE breaker.shadowed (a int) SERVER bpool;
SELECT (SELECT substr(o, 10) FROM unnest(ftoptions) o WHERE o LIKE 'table_id=%')
       <> '00000000-0000-4000-8000-000000000001' AS table_id_not_shadowed
  FROM pg_foreign_table WHERE ftrelid = 'breaker.shadowed'::regclass;
SELECT count(*) AS others_blob_shards FROM destor.blob_shards s JOIN breaker.owner_blob o ON s.blob_id = o.b::uuid;
RESET search_path;
DROP FOREIGN TABLE breaker.shadowed;
DROP SCHEMA breaker_shadow CASCADE;
DROP FUNCTION breaker.user_read();
RESET ROLE;

-- 7. Leaky functions against the public views see only the caller's rows.
SET ROLE regress_breaker_owner;
CREATE TABLE breaker.events (at date, what text) PARTITION BY RANGE (at);
CREATE TABLE breaker.events_2020 PARTITION OF breaker.events FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE breaker.events_2021 PARTITION OF breaker.events FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
INSERT INTO breaker.events VALUES ('2020-06-01', 'old'), ('2021-06-01', 'new');
SELECT destor.tier_partition('breaker.events_2020', 'bpool');
RESET ROLE;
SET ROLE regress_breaker_user;
CREATE TEMP TABLE seen (what text);
CREATE FUNCTION pg_temp.peek(text) RETURNS bool LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
  INSERT INTO seen VALUES ($1);
  RETURN true;
END $$;
SELECT count(*) FROM destor.tiered_partitions WHERE pg_temp.peek(partition::text || ' ' || stored_rows);
SELECT count(*) FROM destor.provider_status WHERE pg_temp.peek(coalesce(last_error, ''));
SELECT count(*) FROM destor.progress WHERE pg_temp.peek(coalesce(target, ''));
SELECT count(*) AS leaked FROM seen WHERE what LIKE '%events_2020%' OR what ~ '[0-9a-f]{8}-';
DROP FUNCTION pg_temp.peek(text);
DROP TABLE seen;
RESET ROLE;

-- 8. A temporary destor table: its data and binding go with it, also when
-- the session's temporary schema is dropped without a DROP statement.
SET ROLE regress_breaker_user;
CREATE FOREIGN TABLE pg_temp.scratch (a int, b text) SERVER bpool;
INSERT INTO pg_temp.scratch SELECT i, 'row ' || i FROM generate_series(1, 10) i;
SELECT count(*) FROM pg_temp.scratch;
RESET ROLE;
SELECT (SELECT substr(o, 10) FROM unnest(ftoptions) o WHERE o LIKE 'table_id=%') AS temp_id
  FROM pg_foreign_table WHERE ftrelid = 'pg_temp.scratch'::regclass \gset
DISCARD TEMP;
SELECT count(*) AS stale_bindings FROM destor.tables t
 WHERE t.table_id = :'temp_id' AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.relid);
SELECT count(*) AS segments_left FROM destor.segments WHERE table_id = :'temp_id';

-- clean up
SELECT destor.blob_delete(b) FROM breaker.owner_blob;
SELECT lo_unlink(:lo_shared), lo_unlink(:lo_private);
DROP SCHEMA breaker CASCADE;
DROP SERVER bpool, bpool_closed, b1, b2, b3 CASCADE;
DROP ROLE regress_breaker_owner, regress_breaker_user, regress_breaker_nobody,
  regress_breaker_heir, regress_breaker_noinherit;
