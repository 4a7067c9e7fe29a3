-- Large objects tiered offsite under their own OIDs: lo_tier moves the
-- pages to a pool, the large object stays; SQL calls of lo_get, lo_open,
-- lo_export and lo_put recall it; privileges are the large object's own;
-- rollbacks and unlinks keep providers in step.
\i test/regress/setup.sql
\set VERBOSITY default

CREATE TABLE los (name text PRIMARY KEY, lo oid, data bytea);
INSERT INTO los
  SELECT name, lo_from_bytea(oid, data), data
    FROM (VALUES ('empty', 916001, ''::bytea),
                 ('small', 916002, convert_to('LOTIER-MARKER a large object, briefly', 'UTF8')),
                 ('pages', 916003, noise(3 * 2048 + 17, 31)),
                 ('big', 916004, noise(1024 * 1024 + 3, 32))) v(name, oid, data);
-- a large object with a hole: pages 0 and 600 only
INSERT INTO los VALUES ('hole', lo_from_bytea(916005, 'head'), NULL);
SELECT lo_put(lo, 600 * 2048 + 5, 'tail') FROM los WHERE name = 'hole';
UPDATE los SET data = lo_get(lo) WHERE name = 'hole';
SELECT name, length(data) FROM los ORDER BY name;
SELECT shard_files(:'dir') AS files_before \gset

-- tiering: the bytes moved, no page left, the large object itself stays
SELECT name, destor.lo_tier(lo, 'archive') = length(data) AS moved_all FROM los ORDER BY name;
SELECT count(*) AS pages_left FROM pg_largeobject p JOIN los l ON p.loid = l.lo;
SELECT count(*) AS large_objects FROM pg_largeobject_metadata m JOIN los l ON m.oid = l.lo;
SELECT l.name, t.size = length(l.data) AS size_ok, t.pool, t.recalled_at IS NULL AS offsite
  FROM destor.tiered_large_objects t JOIN los l ON t.loid = l.lo ORDER BY l.name;
SELECT shard_files(:'dir') - :files_before AS shard_files_added;
-- the providers hold ciphertext only: no file contains the marker
CREATE TEMP TABLE grep_out (line text);
SELECT format('grep -rl LOTIER-MARKER %s || true', :'dir') AS grep_cmd \gset
COPY grep_out FROM PROGRAM :'grep_cmd';
SELECT count(*) AS files_with_plaintext FROM grep_out;

-- tiered again: nothing to do
SELECT destor.lo_tier(lo, 'archive') FROM los WHERE name = 'small';

-- transparent reads in SQL: lo_get recalls, byte-identical
SELECT name, lo_get(lo) = data AS same_bytes FROM los ORDER BY name;
SELECT l.name, t.recalled_at IS NOT NULL AS recalled
  FROM destor.tiered_large_objects t JOIN los l ON t.loid = l.lo ORDER BY l.name;
SELECT count(*) > 0 AS pages_back FROM pg_largeobject p JOIN los l ON p.loid = l.lo;
-- tiered again after the recall: a new object, the old one goes at commit
SELECT count(*) AS objects_before FROM destor.objects \gset
SELECT name, destor.lo_tier(lo, 'archive') = length(data) AS moved_all FROM los ORDER BY name;
SELECT count(*) - :objects_before AS objects_added FROM destor.objects;
SELECT shard_files(:'dir') - :files_before AS shard_files_added;

-- a fragment, and lo_open/loread through a descriptor
SELECT lo_get(lo, 2040, 20) = substring(data FROM 2041 FOR 20) AS fragment_ok
  FROM los WHERE name = 'pages';
SELECT destor.lo_tier(lo, 'archive') FROM los WHERE name = 'pages';
BEGIN;
SELECT lo_open(lo, x'40000'::int) AS fd FROM los WHERE name = 'pages' \gset
SELECT lo_lseek(:fd, 2048, 0);
SELECT loread(:fd, 100) = substring(data FROM 2049 FOR 100) AS loread_ok FROM los WHERE name = 'pages';
SELECT lo_close(:fd);
COMMIT;
-- two reads in one statement: the second sees the pages the first recalled
SELECT recalled_at IS NULL AS offsite FROM destor.lo_tiers WHERE loid = 916005;
SELECT lo_get(lo) = data AS hole_same_bytes, length(lo_get(lo)) AS len,
       md5(lo_get(lo, 600 * 2048, 9)) = md5(substring(data FROM 600 * 2048 + 1)) AS tail_ok
  FROM los WHERE name = 'hole';
-- zero pages of the hole are not written back

SELECT count(*) AS hole_pages FROM pg_largeobject p JOIN los l ON p.loid = l.lo WHERE l.name = 'hole';

-- a read-only transaction cannot recall (a recall writes): it says so
BEGIN READ ONLY;
SELECT length(lo_get(lo)) FROM los WHERE name = 'small';
ROLLBACK;

-- lo_put on a tiered large object: recalled, then written
SELECT recalled_at IS NULL AS offsite FROM destor.lo_tiers WHERE loid = 916002;
SELECT lo_put(lo, 0, 'lotier-marker') FROM los WHERE name = 'small';
SELECT convert_from(lo_get(lo), 'UTF8') AS after_put FROM los WHERE name = 'small';
SELECT lo_put(lo, 0, 'LOTIER-MARKER') FROM los WHERE name = 'small';

-- a rollback of lo_tier leaves the large object local and intact
SELECT md5(lo_get(lo)) = md5(data) AS recalled_ok FROM los WHERE name = 'big';
SELECT shard_files(:'dir') AS files_now \gset
BEGIN;
SELECT destor.lo_tier(lo, 'archive') > 0 AS tiered FROM los WHERE name = 'big';
SELECT count(*) AS pages_in_xact FROM pg_largeobject p JOIN los l ON p.loid = l.lo WHERE l.name = 'big';
ROLLBACK;
SELECT count(*) AS pages_after_rollback FROM pg_largeobject p JOIN los l ON p.loid = l.lo WHERE l.name = 'big';
SELECT md5(lo_get(lo)) = md5(data) AS intact FROM los WHERE name = 'big';
SELECT t.recalled_at IS NOT NULL AS still_recalled FROM destor.lo_tiers t JOIN los l ON t.loid = l.lo WHERE l.name = 'big';
SELECT shard_files(:'dir') - :files_now AS shard_files_left_by_rollback;

-- privileges: UPDATE to tier, SELECT to read (and to recall)
SELECT destor.lo_tier(lo, 'archive') FROM los WHERE name = 'big';
SELECT lo AS big, md5(data) AS big_md5 FROM los WHERE name = 'big' \gset
GRANT USAGE ON FOREIGN SERVER archive, p1, p2, p3, p4, p5, p6 TO regress_destor_user;
SET ROLE regress_destor_user;
SELECT destor.lo_tier(:big, 'archive');
SELECT length(lo_get(:big));
SELECT count(*) AS visible_rows FROM destor.tiered_large_objects;
RESET ROLE;
SELECT recalled_at IS NULL AS not_recalled_by_refused_read FROM destor.lo_tiers WHERE loid = :big;
GRANT SELECT ON LARGE OBJECT :big TO regress_destor_user;
SET ROLE regress_destor_user;
SELECT md5(lo_get(:big)) = :'big_md5' AS reader_same_bytes;
SELECT count(*) AS visible_rows FROM destor.tiered_large_objects;
SELECT destor.lo_tier(:big, 'archive');
-- the wrapper keeps lo_export's own privilege (not granted to PUBLIC)
SELECT lo_export(:big, '/tmp/lotier-should-not-exist');
RESET ROLE;
GRANT UPDATE ON LARGE OBJECT :big TO regress_destor_user;
SET ROLE regress_destor_user;
SELECT destor.lo_tier(:big, 'archive') > 0 AS tiered_by_grantee;
SELECT md5(lo_get(:big)) = :'big_md5' AS grantee_tiered_same_bytes;
RESET ROLE;
REVOKE ALL ON LARGE OBJECT :big FROM regress_destor_user;
REVOKE USAGE ON FOREIGN SERVER archive, p1, p2, p3, p4, p5, p6 FROM regress_destor_user;

-- bad input
SELECT destor.lo_tier(4294967000, 'archive');
SELECT destor.lo_tier(:big, 'no_such_pool');
SELECT destor.lo_recall(4294967000);

-- lo_unlink: the shards go after commit, not on rollback
SELECT shard_files(:'dir') AS files_now \gset
BEGIN;
SELECT lo_unlink(:big);
ROLLBACK;
SELECT shard_files(:'dir') - :files_now AS files_removed_by_rollback;
SELECT count(*) AS rows_after_rollback FROM destor.lo_tiers WHERE loid = :big;
SELECT lo_unlink(:big);
SELECT :files_now - shard_files(:'dir') AS files_removed_by_unlink;
SELECT count(*) AS rows_after_unlink FROM destor.lo_tiers WHERE loid = :big;
DELETE FROM los WHERE name = 'big';

-- an ERROR in the middle of a recall leaves nothing half-written
SELECT lo AS pages FROM los WHERE name = 'pages' \gset
SELECT destor.lo_tier(lo, 'mirror') > 0 AS tiered FROM los WHERE name = 'pages';
SELECT format('rm -f %s/p*/ds/*/%s.*', :'dir', replace(object_id::text, '-', '')) AS rm_cmd
  FROM destor.lo_tiers WHERE loid = :pages \gset
COPY (SELECT 1) TO PROGRAM :'rm_cmd';
\set VERBOSITY sqlstate
SELECT length(lo_get(:pages));
\set VERBOSITY default
SELECT count(*) AS pages_after_failed_recall FROM pg_largeobject WHERE loid = :pages;
SELECT recalled_at IS NULL AS still_offsite FROM destor.lo_tiers WHERE loid = :pages;
SELECT lo_unlink(:pages);
DELETE FROM los WHERE name = 'pages';

-- every local large object the caller may update, at once (other files
-- leave large objects of their own: this role may update only ours)
SELECT count(lo_get(lo)) AS recalled FROM los;
GRANT USAGE ON FOREIGN SERVER archive, p1, p2, p3, p4, p5, p6 TO regress_destor_user;
SELECT format('GRANT UPDATE ON LARGE OBJECT %s TO regress_destor_user', lo) FROM los \gexec
SET ROLE regress_destor_user;
SELECT destor.lo_tier_all('archive', min_size => 10) AS tiered_all;
RESET ROLE;
SELECT l.name, t.recalled_at IS NULL AS offsite
  FROM los l LEFT JOIN destor.lo_tiers t ON t.loid = l.lo ORDER BY l.name;
SELECT format('REVOKE UPDATE ON LARGE OBJECT %s FROM regress_destor_user', lo) FROM los \gexec
REVOKE USAGE ON FOREIGN SERVER archive, p1, p2, p3, p4, p5, p6 FROM regress_destor_user;
SELECT destor.lo_tier_all('archive', -1);
SELECT count(lo_get(lo)) AS recalled FROM los;

-- by declared rule, for the whole database (so rolled back: other files'
-- large objects are candidates too)
BEGIN;
INSERT INTO destor.lo_tiering_policies VALUES ('archive', 10, '1 hour');
SELECT destor.apply_lo_tiering() >= 0 AS applied;
SELECT l.name, t.recalled_at IS NULL AS offsite
  FROM los l LEFT JOIN destor.lo_tiers t ON t.loid = l.lo ORDER BY l.name;
UPDATE destor.lo_tiers SET recalled_at = recalled_at - interval '2 hours'
 WHERE loid IN (SELECT lo FROM los);
-- a rule that fails is a WARNING; the others still run
INSERT INTO destor.lo_tiering_policies VALUES ('a_pool_gone', 0, '0');
SELECT destor.apply_lo_tiering() >= 2 AS tiered_by_policy;
SELECT l.name, t.recalled_at IS NULL AS offsite
  FROM los l LEFT JOIN destor.lo_tiers t ON t.loid = l.lo ORDER BY l.name;
ROLLBACK;
SET ROLE regress_destor_user;
SELECT destor.apply_lo_tiering();
RESET ROLE;

-- the extension cannot go while large objects are offsite (their bytes
-- would be lost with destor.lo_tiers)
SELECT name, destor.lo_tier(lo, 'archive') > 0 AS tiered FROM los WHERE name <> 'empty' ORDER BY name;
BEGIN;
SET LOCAL client_min_messages = error;
DROP EXTENSION destor CASCADE;
ROLLBACK;
SELECT count(*) AS still_offsite FROM destor.lo_tiers WHERE recalled_at IS NULL;

-- clean up: unlinking forgets them all
SELECT count(lo_unlink(lo)) AS unlinked FROM los;
SELECT count(*) AS rows_left FROM destor.lo_tiers WHERE loid IN (916001, 916002, 916003, 916004, 916005);
DROP TABLE los, grep_out;
