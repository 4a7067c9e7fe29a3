\set ECHO none
-- Shared setup of the pg_regress files (sql/*.sql): each file starts with
--   \i test/regress/setup.sql
-- so that it runs alone as well as after the others.  pg_regress feeds a
-- file to psql on its standard input, so \i resolves this path against
-- psql's working directory: the top of the tree, for make check, make test
-- (scripts/test_suites.sh, in a copy of the tree) and make installcheck.
--
-- It sets :dir, the folder of the file providers: DESTOR_REGRESS_DIR in the
-- server's environment, or destor_regress in the server's data directory
-- (the server writes there in any case).  The first time in a database it
-- empties and declares six file providers p1..p6 and two pools on them,
-- archive (4+2) and mirror (1+2); later files find them as they are.  It
-- (re)defines shard_files(dir), the number of shard files on p1..p6, and
-- noise(n, seed), n pseudo-random bytes.  The
-- role regress_destor_user is made once per cluster and gets no privileges
-- here: each file grants what it needs, so no file's output depends on
-- another having run first.
--
-- Idempotent and silent (ECHO none above, so this text does not show
-- either): nothing it does shows in a file's output, whatever ran before it.
SET client_min_messages = warning;
-- the server's DESTOR_REGRESS_DIR, or destor_regress in its data directory
-- (its working directory), as in specs/*.spec
CREATE TEMP TABLE destor_setup_dir (d text);
COPY destor_setup_dir FROM PROGRAM 'echo "${DESTOR_REGRESS_DIR:-$PWD/destor_regress}"';
SELECT d AS dir FROM destor_setup_dir \gset
DROP TABLE destor_setup_dir;
SELECT NOT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = 'p1') AS destor_fresh \gset
\if :destor_fresh
-- COPY ... TO PROGRAM runs on the server, as the server's user
SELECT format('cat > /dev/null; mkdir -p %1$s && cd %1$s && rm -rf p1 p2 p3 p4 p5 p6 && mkdir p1 p2 p3 p4 p5 p6',
              $q$'$q$ || replace(:'dir', $q$'$q$, $q$'\''$q$) || $q$'$q$) AS destor_mk \gset
COPY (SELECT 1) TO PROGRAM :'destor_mk';
\set p1 :dir '/p1'
\set p2 :dir '/p2'
\set p3 :dir '/p3'
\set p4 :dir '/p4'
\set p5 :dir '/p5'
\set p6 :dir '/p6'
CREATE SERVER p1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p1', geo 'EU');
CREATE SERVER p2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p2', geo 'EU');
CREATE SERVER p3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p3');
CREATE SERVER p4 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p4');
CREATE SERVER p5 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p5', cost_per_gb_month '0.004');
CREATE SERVER p6 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p6');
CREATE SERVER archive FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'p1,p2,p3,p4,p5,p6', data_shards '4', parity_shards '2');
CREATE SERVER mirror FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'p1, p2, p3', data_shards '1', parity_shards '2');
\unset p1
\unset p2
\unset p3
\unset p4
\unset p5
\unset p6
\endif
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_destor_user') AS destor_need_role \gset
\if :destor_need_role
CREATE ROLE regress_destor_user;
\endif
-- the number of shard files on p1..p6
CREATE OR REPLACE FUNCTION shard_files(dir text) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM (VALUES ('p1'), ('p2'), ('p3'), ('p4'), ('p5'), ('p6')) p(name),
    LATERAL pg_ls_dir(dir || '/' || name || '/ds', true, false) d,
    LATERAL pg_ls_dir(dir || '/' || name || '/ds/' || d, true, false) f $$;
-- n pseudo-random (incompressible) bytes, the same for the same seed
CREATE OR REPLACE FUNCTION noise(n int, seed int) RETURNS bytea LANGUAGE sql AS $$
  SELECT substring(decode(string_agg(md5((i + seed * 1000003)::text), '' ORDER BY i), 'hex')
                   FROM 1 FOR n)
    FROM generate_series(0, n / 16) i $$;
-- the rows of a that b lacks plus those of b that a lacks (with
-- duplicates), where q holds: 0 when a destor table answers as its heap copy
CREATE OR REPLACE FUNCTION rows_differ(a regclass, b regclass, q text DEFAULT 'true') RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM ((SELECT * FROM %s WHERE %s EXCEPT ALL SELECT * FROM %s WHERE %s)
                  UNION ALL (SELECT * FROM %s WHERE %s EXCEPT ALL SELECT * FROM %s WHERE %s)) x',
                 a, q, b, q, b, q, a, q) INTO n;
  RETURN n;
END $$;
\unset destor_fresh
\unset destor_mk
\unset destor_need_role
RESET client_min_messages;
\set ECHO all
