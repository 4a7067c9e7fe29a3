-- Blob privileges like large objects' (issue 15 item 1): SELECT and UPDATE
-- granted and revoked by the owner, the owner changed, the view blob_acl;
-- holding a handle is never enough, whoever's table, view or SECURITY
-- DEFINER function it comes through; roles with grants are not dropped.
\i test/regress/setup.sql
\set mk 'cat > /dev/null; mkdir -p ' :dir '/ba1 ' :dir '/ba2 ' :dir '/ba3'
COPY (SELECT 1) TO PROGRAM :'mk';
\set ba1 :dir '/ba1'
\set ba2 :dir '/ba2'
\set ba3 :dir '/ba3'
CREATE SERVER ba1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'ba1');
CREATE SERVER ba2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'ba2');
CREATE SERVER ba3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'ba3');
CREATE SERVER ba_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'ba1,ba2,ba3', data_shards '2', parity_shards '1');

CREATE ROLE regress_acl_owner;
CREATE ROLE regress_acl_reader;
CREATE ROLE regress_acl_nobody;
CREATE ROLE regress_acl_member IN ROLE regress_acl_owner;
CREATE ROLE regress_acl_heir;
GRANT USAGE ON FOREIGN SERVER ba_pool, ba1, ba2, ba3 TO regress_acl_owner;
CREATE SCHEMA acl;
GRANT USAGE, CREATE ON SCHEMA acl TO PUBLIC;

-- what a statement does for the current role: ok, or its SQLSTATE and
-- message (blob ids masked)
CREATE FUNCTION acl.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM,
    '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END $$;
-- The owner's blobs, in a table anybody may read: a handle is public.
SET ROLE regress_acl_owner;
CREATE TABLE acl.blobs (name text, b destor.blob);
GRANT SELECT ON acl.blobs TO PUBLIC;
INSERT INTO acl.blobs VALUES ('doc', destor.blob_put('ba_pool', 'the owner''s document')),
                             ('other', destor.blob_put('ba_pool', 'another document'));
SELECT name, acl FROM destor.blob_acl a JOIN acl.blobs x ON x.b::uuid = a.blob_id ORDER BY name;
RESET ROLE;
-- every blob function a role may try on the blob named n in acl.blobs
CREATE FUNCTION acl.attempts(n text) RETURNS TABLE (fn text, result text) LANGUAGE sql AS $$
  SELECT f, acl.try(format(s, (SELECT b FROM acl.blobs WHERE name = n)))
    FROM (VALUES (1, 'blob_get', 'SELECT destor.blob_get(%L)'),
                 (2, 'blob_read', 'SELECT destor.blob_read(%L, 0, 4)'),
                 (3, 'blob_size', 'SELECT destor.blob_size(%L)'),
                 (4, 'blob_to_lo', 'SELECT lo_unlink(destor.blob_to_lo(%L))'),
                 (5, 'blob_to_lo delete', 'SELECT destor.blob_to_lo(%L, 0, true)'),
                 (6, 'blob_delete', 'SELECT destor.blob_delete(%L)'),
                 (7, 'blob_grant', 'SELECT destor.blob_grant(%L, ''regress_acl_nobody'', ''SELECT'')'),
                 (8, 'blob_revoke', 'SELECT destor.blob_revoke(%L, ''regress_acl_reader'', ''SELECT'')'),
                 (9, 'blob_set_owner', 'SELECT destor.blob_set_owner(%L, current_user::regrole)'))
         AS t(i, f, s)
   ORDER BY i $$;


-- 1. Without a grant, only the owner, its members and superusers read.
SET ROLE regress_acl_reader;
SELECT * FROM acl.attempts('doc');
SELECT count(*) AS acl_rows_seen FROM destor.blob_acl;
SELECT count(*) AS shard_rows_seen FROM destor.blob_shards;
SET ROLE regress_acl_member;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS member_reads FROM acl.blobs WHERE name = 'doc';
RESET ROLE;

-- 2. SELECT granted (any case): the grantee reads, and nothing more.
SET ROLE regress_acl_owner;
SELECT destor.blob_grant(b, 'regress_acl_reader', 'select') FROM acl.blobs WHERE name = 'doc';
SELECT name, acl FROM destor.blob_acl a JOIN acl.blobs x ON x.b::uuid = a.blob_id ORDER BY name;
SET ROLE regress_acl_reader;
SELECT * FROM acl.attempts('doc');
SELECT * FROM acl.attempts('other') WHERE fn IN ('blob_get', 'blob_size');
SELECT x.name, a.owner, a.acl FROM destor.blob_acl a JOIN acl.blobs x ON x.b::uuid = a.blob_id;
SELECT count(*) AS shard_rows_seen FROM destor.blob_shards s JOIN acl.blobs x ON x.b::uuid = s.blob_id;
-- the grantee's own copy of the handle, in its own table: the same
CREATE TABLE acl.copied AS SELECT b FROM acl.blobs;
SELECT acl.try(format('SELECT destor.blob_size(%L)', b)) FROM acl.copied ORDER BY 1;
DROP TABLE acl.copied;
-- a role with nothing: not through the handle, not through the grantee
SET ROLE regress_acl_nobody;
SELECT * FROM acl.attempts('doc') WHERE fn IN ('blob_get', 'blob_read', 'blob_size', 'blob_to_lo');
SELECT count(*) AS acl_rows_seen FROM destor.blob_acl;
RESET ROLE;

-- 3. UPDATE is a privilege too (no function writes into a blob yet)
SET ROLE regress_acl_owner;
SELECT destor.blob_grant(b, 'regress_acl_nobody', 'Update') FROM acl.blobs WHERE name = 'other';
SELECT name, acl FROM destor.blob_acl a JOIN acl.blobs x ON x.b::uuid = a.blob_id ORDER BY name;
SET ROLE regress_acl_nobody;
-- it shows the blob in blob_acl, but does not let the grantee read it
SELECT x.name, a.acl FROM destor.blob_acl a JOIN acl.blobs x ON x.b::uuid = a.blob_id;
SELECT * FROM acl.attempts('other') WHERE fn IN ('blob_get', 'blob_delete');
SET ROLE regress_acl_owner;
SELECT destor.blob_revoke(b, 'regress_acl_nobody', 'UPDATE') FROM acl.blobs WHERE name = 'other';
RESET ROLE;

-- 4. Bad arguments
SET ROLE regress_acl_owner;
SELECT acl.try(format('SELECT destor.blob_grant(%L, ''regress_acl_reader'', %L)', b, p))
  FROM acl.blobs, (VALUES ('DELETE'), ('ALL'), ('select,update'), (''), ('SELECT ')) v(p)
 WHERE name = 'doc';
SELECT acl.try(format('SELECT destor.blob_grant(%L, NULL, ''SELECT'')', b)) AS null_role,
       acl.try(format('SELECT destor.blob_revoke(%L, NULL, ''SELECT'')', b)) AS null_role_revoke,
       acl.try(format('SELECT destor.blob_grant(%L, ''regress_acl_reader'', NULL)', b)) AS null_privilege,
       acl.try(format('SELECT destor.blob_set_owner(%L, NULL)', b)) AS null_owner,
       acl.try(format('SELECT destor.blob_grant(NULL, ''regress_acl_reader'', ''SELECT'')')) AS null_blob
  FROM acl.blobs WHERE name = 'doc';
SELECT acl.try(format('SELECT destor.blob_grant(%L, 4000000000::oid::regrole, ''SELECT'')', b)) AS dropped_role,
       acl.try(format('SELECT destor.blob_set_owner(%L, 4000000000::oid::regrole)', b)) AS dropped_owner,
       acl.try(format('SELECT destor.blob_set_owner(%L, ''-'')', b)) AS public_owner
  FROM acl.blobs WHERE name = 'doc';
SELECT acl.try($$SELECT destor.blob_grant('00000000-0000-4000-8000-000000000000', 'regress_acl_reader', 'SELECT')$$) AS no_blob;
RESET ROLE;
SELECT acl.try($$SELECT destor.blob_grant('00000000-0000-4000-8000-000000000000', 'regress_acl_reader', 'SELECT')$$) AS no_blob_superuser;

-- 5. Revoked: the grantee that read before (its cache holds the blob) is refused
SET ROLE regress_acl_reader;
SELECT destor.blob_size(b) AS reader_size FROM acl.blobs WHERE name = 'doc';
SET ROLE regress_acl_owner;
SELECT destor.blob_revoke(b, 'regress_acl_reader', 'SELECT') FROM acl.blobs WHERE name = 'doc';
SELECT name, acl FROM destor.blob_acl a JOIN acl.blobs x ON x.b::uuid = a.blob_id ORDER BY name;
SET ROLE regress_acl_reader;
SELECT * FROM acl.attempts('doc') WHERE fn IN ('blob_get', 'blob_read', 'blob_size');
SELECT count(*) AS acl_rows_seen FROM destor.blob_acl;
RESET ROLE;

-- 6. PUBLIC ('-'::regrole): every role reads
SET ROLE regress_acl_owner;
SELECT destor.blob_grant(b, '-', 'SELECT') FROM acl.blobs WHERE name = 'other';
SET ROLE regress_acl_nobody;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS public_reads FROM acl.blobs WHERE name = 'other';
SET ROLE regress_acl_owner;
SELECT destor.blob_revoke(b, '-', 'SELECT') FROM acl.blobs WHERE name = 'other';
SET ROLE regress_acl_nobody;
SELECT * FROM acl.attempts('other') WHERE fn = 'blob_get';
RESET ROLE;

-- 7. Through a view and a SECURITY DEFINER function: the role running the
-- call decides.  A view runs blob functions as the querying role; a
-- SECURITY DEFINER function as its owner (the owner chose to expose it).
SET ROLE regress_acl_owner;
CREATE VIEW acl.doc_view AS SELECT convert_from(destor.blob_get(b), 'UTF8') AS body FROM acl.blobs WHERE name = 'doc';
GRANT SELECT ON acl.doc_view TO PUBLIC;
CREATE FUNCTION acl.owner_reads(x destor.blob) RETURNS bigint LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT destor.blob_size(x) $$;
SET ROLE regress_acl_nobody;
SELECT acl.try('SELECT * FROM acl.doc_view') AS through_view;
SELECT acl.owner_reads(b) AS through_owners_definer FROM acl.blobs WHERE name = 'doc';
-- a definer function of a role without the privilege lends nothing
CREATE FUNCTION acl.nobody_reads(x destor.blob) RETURNS bigint LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT destor.blob_size(x) $$;
GRANT EXECUTE ON FUNCTION acl.nobody_reads(destor.blob) TO PUBLIC;
SET ROLE regress_acl_owner;
SELECT acl.try(format('SELECT acl.nobody_reads(%L)', b)) AS owner_through_nobodys_definer
  FROM acl.blobs WHERE name = 'doc';
RESET ROLE;

-- 8. Owners change: the owner (not a grantee) gives a blob to a role it
-- belongs to; the grants follow (the new owner is their grantor)
GRANT regress_acl_heir TO regress_acl_owner;
SET ROLE regress_acl_owner;
SELECT destor.blob_grant(b, 'regress_acl_reader', 'SELECT') FROM acl.blobs WHERE name = 'doc';
SELECT acl.try(format('SELECT destor.blob_set_owner(%L, ''regress_acl_nobody'')', b)) AS not_a_member
  FROM acl.blobs WHERE name = 'doc';
SELECT destor.blob_set_owner(b, 'regress_acl_heir') FROM acl.blobs WHERE name = 'doc';
RESET ROLE;
SELECT x.name, a.owner, a.acl FROM destor.blob_acl a JOIN acl.blobs x ON x.b::uuid = a.blob_id ORDER BY name;
REVOKE regress_acl_heir FROM regress_acl_owner;
SET ROLE regress_acl_owner;
SELECT * FROM acl.attempts('doc') WHERE fn IN ('blob_get', 'blob_grant', 'blob_set_owner');
SET ROLE regress_acl_reader;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS grant_kept FROM acl.blobs WHERE name = 'doc';
RESET ROLE;
-- a superuser gives it to anyone
SELECT destor.blob_set_owner(b, 'regress_acl_owner') FROM acl.blobs WHERE name = 'doc';
SELECT x.name, a.owner, a.acl FROM destor.blob_acl a JOIN acl.blobs x ON x.b::uuid = a.blob_id ORDER BY name;

-- 9. A grantee is not dropped while it holds privileges (as PostgreSQL
-- refuses for objects with privileges); DROP OWNED revokes them
\set VERBOSITY default
DROP ROLE regress_acl_reader;
\set VERBOSITY terse
DROP OWNED BY regress_acl_reader;
SELECT x.name, a.acl FROM destor.blob_acl a JOIN acl.blobs x ON x.b::uuid = a.blob_id ORDER BY name;
DROP ROLE regress_acl_reader;
-- REASSIGN OWNED: the grants follow the blobs
SELECT destor.blob_grant(b, 'regress_acl_nobody', 'SELECT') FROM acl.blobs WHERE name = 'doc';
REASSIGN OWNED BY regress_acl_owner TO regress_acl_heir;
SELECT x.name, a.owner, a.acl FROM destor.blob_acl a JOIN acl.blobs x ON x.b::uuid = a.blob_id ORDER BY name;
SET ROLE regress_acl_nobody;
SELECT convert_from(destor.blob_get(b), 'UTF8') AS grant_after_reassign FROM acl.blobs WHERE name = 'doc';
RESET ROLE;

-- 10. The owner and acl columns' text input.  Outside a restore it is
-- regrole's and aclitem's: a missing role is an error.  While a COPY loads
-- destor.blobs (what pg_dump's restore does) a missing owner becomes the
-- restoring role, an OID is not trusted, a grant to a missing role is left
-- out and one by a missing owner becomes the restorer's, each with one
-- WARNING; the rest of the rows load.
\set VERBOSITY default
SELECT 'regress_acl_heir'::destor.restorable_role::regrole AS heir,
       '"regress_acl_heir"'::destor.restorable_role::text AS quoted;
SELECT 'regress_acl_gone'::destor.restorable_role;
SELECT '{regress_acl_gone=r/regress_acl_heir}'::destor.restorable_acl;
SELECT count(*) FROM destor.blobs WHERE owner IN ('regress_acl_gone', 'regress_acl_heir');
SELECT '{regress_acl_heir=r/regress_acl_nobody,=r/regress_acl_heir}'::destor.restorable_acl::text AS kept;
SELECT '{}'::destor.restorable_acl::aclitem[] AS empty;
SELECT 'a.b'::destor.restorable_role;
SELECT '{{regress_acl_heir=r/regress_acl_heir}}'::destor.restorable_acl;
SELECT '{NULL}'::destor.restorable_acl;
BEGIN;
CREATE TEMP TABLE restored AS
  SELECT blob_id FROM destor.blobs b JOIN acl.blobs x ON x.b::uuid = b.blob_id WHERE x.name = 'doc';
DELETE FROM destor.blobs WHERE blob_id = (SELECT blob_id FROM restored);
\set ECHO none
SELECT format('COPY destor.blobs (blob_id, owner, acl) FROM PROGRAM %L',
              format('printf ''%s\t%s\t%s\n''', blob_id, 'regress_acl_gone',
                     '{regress_acl_heir=r/regress_acl_gone2,regress_acl_gone3=r/regress_acl_heir,=r/regress_acl_heir}'))
  FROM restored \gexec
\set ECHO all
SELECT b.owner = current_user::regrole AS restorer_owns,
       replace(b.acl::text, current_user, 'me') AS acl
  FROM destor.blob_acl b JOIN restored r USING (blob_id);
DELETE FROM destor.blobs WHERE blob_id = (SELECT blob_id FROM restored);
SET client_min_messages = error;  -- the WARNING names the OID
\set ECHO none
SELECT format('COPY destor.blobs (blob_id, owner) FROM PROGRAM %L',
              format('printf ''%s\t%s\n''', blob_id, (SELECT oid FROM pg_roles WHERE rolname = 'regress_acl_heir')))
  FROM restored \gexec
\set ECHO all
RESET client_min_messages;
SELECT owner = current_user::regrole AS an_oid_is_not_trusted FROM destor.blob_acl JOIN restored USING (blob_id);
ROLLBACK;
\set VERBOSITY terse
-- the columns hold what the C code and the views read: oids and aclitem[];
-- array functions take the acl column cast to aclitem[]
SELECT pg_typeof(owner), pg_typeof(acl) FROM destor.blobs LIMIT 1;
SELECT pg_typeof(owner), pg_typeof(acl) FROM destor.blob_acl LIMIT 1;
SELECT count(*) > 0 AS unnest_works FROM destor.blobs, unnest(acl::aclitem[]) i
 WHERE (acl::aclitem[])[1] = i OR i = ANY (acl::aclitem[]);

-- clean up
DROP OWNED BY regress_acl_heir, regress_acl_nobody, regress_acl_owner, regress_acl_member;
DROP SCHEMA acl CASCADE;
DROP ROLE regress_acl_owner, regress_acl_nobody, regress_acl_member, regress_acl_heir;
DROP SERVER ba_pool;
DROP SERVER ba1, ba2, ba3;
