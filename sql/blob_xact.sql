-- Shards follow transactions: rolled-back writes leave nothing on the
-- providers; deletions take effect only at commit.
\i test/regress/setup.sql
-- the shards of blobs of their own: small blobs stay unpacked here (blob_pack.sql)
SET destor.blob_pack_threshold = 0;
-- shard_files(dir): shard files on p1..p6, from the shared setup
CREATE TEMP TABLE files AS SELECT shard_files(:'dir') AS n;

BEGIN;
CREATE TEMP TABLE t1 AS SELECT destor.blob_put('archive', 'rolled back') AS b;
SELECT shard_files(:'dir') - n AS new_files FROM files;
ROLLBACK;
SELECT shard_files(:'dir') - n AS after_rollback FROM files;

-- an error in the statement that wrote blobs
SELECT destor.blob_put('archive', 'doomed'), 1 / 0;
SELECT shard_files(:'dir') - n AS after_error FROM files;

-- savepoints: only the rolled-back part disappears
BEGIN;
CREATE TEMP TABLE kept (b destor.blob);
INSERT INTO kept SELECT destor.blob_put('archive', 'kept');
SAVEPOINT s1;
INSERT INTO kept SELECT destor.blob_put('archive', 'undone');
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
INSERT INTO kept SELECT destor.blob_put('archive', 'also kept');
RELEASE SAVEPOINT s2;
COMMIT;
SELECT shard_files(:'dir') - n AS two_blobs_of_six_shards FROM files;
SELECT string_agg(convert_from(destor.blob_get(b), 'UTF8'), ', ' ORDER BY 1) AS blobs FROM kept;

-- a rolled-back delete deletes nothing
BEGIN;
SELECT destor.blob_delete(b) FROM kept;
ROLLBACK;
SELECT count(*) AS readable FROM kept WHERE destor.blob_size(b) > 0;
SELECT shard_files(:'dir') - n AS still_there FROM files;

-- a committed delete removes the shards, after the commit
BEGIN;
SELECT destor.blob_delete(b) FROM kept;
SELECT shard_files(:'dir') - n AS before_commit FROM files;
COMMIT;
SELECT shard_files(:'dir') - n AS after_commit FROM files;

-- written and deleted in one transaction: gone at commit
BEGIN;
CREATE TEMP TABLE once AS SELECT destor.blob_put('archive', 'once') AS b;
SELECT destor.blob_delete(b) FROM once;
COMMIT;
SELECT shard_files(:'dir') - n AS nothing_left FROM files;

-- shards without catalog rows (as a crash would leave) are found and removed
CREATE TEMP TABLE orphan AS SELECT destor.blob_put('archive', 'orphan to be') AS b;
DELETE FROM destor.blobs WHERE blob_id = (SELECT b::uuid FROM orphan);
DELETE FROM destor.objects WHERE object_id = (SELECT b::uuid FROM orphan);
SELECT shard_files(:'dir') - n AS orphans FROM files;
SELECT destor.cleanup_orphans('archive', '1 hour') AS too_young;
SELECT destor.cleanup_orphans('archive', '0') AS removed;
SELECT shard_files(:'dir') - n AS after_cleanup FROM files;
