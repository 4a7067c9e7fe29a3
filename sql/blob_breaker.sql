-- Blobs attacked as a hostile user would (issue 15): what a role can make a
-- backend do with descriptors, and what it may learn.  Two-session cases are
-- in test/tap/t/083_blob_breaker.pl.
\i test/regress/setup.sql
CREATE SCHEMA brk;

-- 1. A read descriptor's window buffer is no larger than its blob: twenty
-- descriptors reading a 3-byte blob sequentially (the second read of each
-- is sequential, so it goes through the buffer) cost kilobytes, not
-- 20 x 16 MB.
CREATE TABLE brk.tiny (b destor.blob);
INSERT INTO brk.tiny VALUES (destor.blob_put('mirror', 'abc'));
BEGIN;
CREATE TEMP TABLE brk_fds AS SELECT destor.blob_open(b) AS fd FROM brk.tiny, generate_series(1, 20);
SELECT string_agg(encode(destor.blob_read(fd, 1), 'escape'), '' ORDER BY fd) FROM brk_fds;
SELECT string_agg(encode(destor.blob_read(fd, 2), 'escape'), '' ORDER BY fd) FROM brk_fds;
SELECT count(*) AS descriptors, sum(total_bytes) < 1024 * 1024 AS under_1mb
  FROM pg_backend_memory_contexts WHERE name = 'destor blob descriptor';
COMMIT;

-- 2. A dry run of vacuum_blobs changes nothing, so it runs in a read-only
-- transaction (and on a hot standby): no helper temporary table.
CREATE TEMP TABLE brk_orphan AS SELECT destor.blob_put('mirror', 'orphan')::uuid AS id;
BEGIN READ ONLY;
SELECT (SELECT id FROM brk_orphan) IN (SELECT * FROM destor.vacuum_blobs('mirror')) AS orphan_listed,
       (SELECT b::uuid FROM brk.tiny) IN (SELECT * FROM destor.vacuum_blobs('mirror', dry_run => true)) AS referenced_listed;
COMMIT;
SET default_transaction_read_only = on;
SELECT (SELECT id FROM brk_orphan) IN (SELECT * FROM destor.vacuum_blobs('mirror')) AS orphan_listed;
RESET default_transaction_read_only;
SELECT destor.blob_delete(id::text::destor.blob) FROM brk_orphan;

-- 3. Descriptors holding stream buffers are bounded per backend
-- (destor.max_active_blob_descriptors): beyond the limit the least recently
-- used reader gives its buffers back and reads on correctly, and a new
-- writer is refused until one is closed.
SET destor.max_active_blob_descriptors = 2;
CREATE TABLE brk.big (b destor.blob);
INSERT INTO brk.big SELECT destor.blob_put('mirror', decode(repeat(md5(g::text), 65536), 'hex'))
  FROM generate_series(1, 1) g;
BEGIN;
CREATE TEMP TABLE brk_rfds AS SELECT destor.blob_open(b) AS fd FROM brk.big, generate_series(1, 6);
SELECT count(DISTINCT md5(destor.blob_read(fd, 100000))) AS first_reads FROM brk_rfds;
SELECT count(DISTINCT md5(destor.blob_read(fd, 100000))) AS second_reads FROM brk_rfds;
CREATE TEMP TABLE brk_bytes AS SELECT destor.blob_get(b) AS v FROM brk.big;
SELECT bool_and(destor.blob_read(fd, 1048576) = substr(v, 200001)) AS reads_after_eviction_right
  FROM brk_rfds, brk_bytes;
SELECT count(*) FILTER (WHERE total_bytes > 256 * 1024) AS descriptors_holding_buffers,
       sum(total_bytes) < 3 * 1024 * 1024 AS under_3mb
  FROM pg_backend_memory_contexts WHERE name LIKE 'destor blob descriptor%';
COMMIT;
BEGIN;
SELECT destor.blob_create('mirror') AS w1 \gset
SELECT destor.blob_create('mirror') AS w2 \gset
SAVEPOINT s;
SELECT destor.blob_create('mirror') AS w3;
ROLLBACK TO s;
SELECT destor.blob_write(:w1, 'one');
SELECT destor.blob_close(:w1) IS NOT NULL AS closed;
SELECT destor.blob_create('mirror') > :w2 AS third_writer_after_close;
ROLLBACK;
RESET destor.max_active_blob_descriptors;

-- 4. DROP ROLE run from another database is refused while a blob of this
-- one names the role (owner, grantee, small packed blob or streamed one),
-- as for a large object's owner: pg_shdepend rows.  A dropped role's OID
-- is never left in destor.blobs, so a later role reusing it inherits
-- nothing.  Here, DROP ROLE and DROP OWNED clear the rows.
CREATE ROLE regress_brk_erin;
CREATE ROLE regress_brk_dave;
CREATE ROLE regress_brk_fay;
GRANT USAGE ON FOREIGN SERVER mirror, p1, p2, p3 TO regress_brk_erin, regress_brk_fay;
SET ROLE regress_brk_erin;
SELECT destor.blob_put('mirror', 'erin') AS erin_blob \gset
SELECT destor.blob_grant(:'erin_blob', 'regress_brk_dave', 'SELECT');
SET ROLE regress_brk_fay;
SELECT destor.blob_put('mirror', decode(repeat('ab', 100000), 'hex')) AS fay_blob \gset
RESET ROLE;
-- their only other ties: PostgreSQL's own
REVOKE USAGE ON FOREIGN SERVER mirror, p1, p2, p3 FROM regress_brk_erin, regress_brk_fay;
SELECT current_database() AS brk_db \gset
\c postgres
\set VERBOSITY terse
DROP ROLE regress_brk_dave;
DROP ROLE regress_brk_erin;
DROP ROLE regress_brk_fay;
\c :brk_db
\set VERBOSITY terse
DROP ROLE regress_brk_fay;
SELECT destor.blob_delete(:'fay_blob');
DROP ROLE regress_brk_fay;
DROP OWNED BY regress_brk_erin, regress_brk_dave;
SELECT count(*) AS blobs_left FROM destor.blobs WHERE owner::oid = 'regress_brk_erin'::regrole
   OR blob_id = :'erin_blob'::destor.blob::uuid;
\c postgres
DROP ROLE regress_brk_erin, regress_brk_dave;
\c :brk_db
\set VERBOSITY default

-- 5. OIDs left by roles dropped elsewhere before the rows existed (made up
-- here) are cleared by blob_record_role_dependencies: the blob goes to the
-- bootstrap superuser, grants to vanished roles go, live grants stay.
CREATE ROLE regress_brk_gus;
SELECT destor.blob_put('mirror', decode(repeat('cd', 100000), 'hex')) AS lost_blob \gset
SELECT destor.blob_put('mirror', decode(repeat('ef', 100000), 'hex')) AS kept_blob \gset
UPDATE destor.blobs SET owner = 4000000000::oid::regrole,
       acl = ARRAY[makeaclitem(4000000001, 4000000000, 'SELECT', false)]
 WHERE blob_id = :'lost_blob'::destor.blob::uuid;
UPDATE destor.blobs SET acl = ARRAY[makeaclitem(owner, owner, 'SELECT', false),
                                    makeaclitem(4000000001, owner, 'SELECT', false),
                                    makeaclitem('regress_brk_gus'::regrole, owner, 'SELECT', false)]
 WHERE blob_id = :'kept_blob'::destor.blob::uuid;
SELECT destor.blob_record_role_dependencies() > 0 AS recorded;
SELECT blob_id = :'lost_blob'::destor.blob::uuid AS lost, owner::oid = 10 AS bootstrap_owner,
       acl IS NULL AS default_acl,
       NOT EXISTS (SELECT FROM aclexplode(acl) e WHERE e.grantee NOT IN (SELECT oid FROM pg_roles))
         AS only_live_grantees,
       EXISTS (SELECT FROM aclexplode(acl) e WHERE e.grantee = 'regress_brk_gus'::regrole)
         AS gus_kept
  FROM destor.blobs WHERE blob_id IN (:'lost_blob'::destor.blob::uuid, :'kept_blob'::destor.blob::uuid)
 ORDER BY 1;
\c postgres
\set VERBOSITY terse
DROP ROLE regress_brk_gus;
\c :brk_db
\set VERBOSITY default
SELECT destor.blob_delete(:'lost_blob'), destor.blob_delete(:'kept_blob');
DROP ROLE regress_brk_gus;

DROP SCHEMA brk CASCADE;
