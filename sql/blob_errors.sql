-- Bad input to the blob functions, and blob privileges.
\i test/regress/setup.sql
\set VERBOSITY default
CREATE TABLE mine AS SELECT destor.blob_put('archive', 'owned by the superuser') AS b;
SELECT destor.blob_read(b, -1, 10) FROM mine;
SELECT destor.blob_read(b, 0, -10) FROM mine;
SELECT 'not-a-uuid'::destor.blob;
SELECT destor.blob_get('00000000-0000-4000-8000-000000000000');
SELECT destor.blob_delete('00000000-0000-4000-8000-000000000000');
SELECT destor.blob_import('archive', 'relative/file');
SELECT destor.blob_import('archive', '/nonexistent/file');
SELECT destor.blob_export(b, 'relative/file') FROM mine;
SELECT destor.blob_export(b, '/nonexistent/dir/file') FROM mine;
-- NULL in, NULL out
SELECT destor.blob_put('archive', NULL) IS NULL AS null_put, destor.blob_get(NULL) IS NULL AS null_get;

-- an ordinary role: needs USAGE on the pool, reads only its own blobs
GRANT SELECT ON mine TO regress_destor_user;
SET ROLE regress_destor_user;
SELECT destor.blob_put('archive', 'x');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER archive TO regress_destor_user;
-- and on each of the pool's providers
SET ROLE regress_destor_user;
SELECT destor.blob_put('archive', 'x');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER p1, p2, p3, p4, p5, p6 TO regress_destor_user;
SET ROLE regress_destor_user;
CREATE TEMP TABLE theirs AS SELECT destor.blob_put('archive', 'their own data') AS b;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS own FROM theirs;
\set VERBOSITY terse
SELECT destor.blob_get(b) FROM mine;
SELECT destor.blob_delete(b) FROM mine;
\set VERBOSITY default
SELECT destor.blob_import('archive', '/etc/hostname');
SELECT destor.blob_export(b, '/tmp/destor_should_not_exist') FROM theirs;
SELECT count(*) AS visible_placements FROM destor.blob_shards;
SELECT count(*) FROM destor.objects;
SELECT destor.cleanup_orphans('archive', '0');
-- the catalog's statements cannot be hijacked through search_path: an
-- operator of the caller's own would otherwise run as superuser
RESET ROLE;
CREATE SCHEMA evil AUTHORIZATION regress_destor_user;
SET ROLE regress_destor_user;
CREATE FUNCTION evil.uuid_eq(uuid, uuid) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'evil operator ran as %', current_user;
  RETURN $1::text = $2::text;
END $$;
CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, PROCEDURE = evil.uuid_eq);
SET search_path = evil, pg_catalog, public;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS read_safely FROM theirs;
RESET search_path;
SELECT destor.blob_delete(b) FROM theirs;
RESET ROLE;
DROP SCHEMA evil CASCADE;
-- the owner's blob is untouched
SELECT convert_from(destor.blob_get(b), 'UTF8') AS still_there FROM mine;
-- a blob written and read back in one statement
SELECT convert_from(destor.blob_get(destor.blob_put('archive', 'nested')), 'UTF8') AS nested;
