-- Blob descriptors: blobs streamed in and out in pieces, as large objects
-- are with lo_open/lowrite/loread (src/blob/blob_fd.c).
\i test/regress/setup.sql
\set VERBOSITY default
CREATE TEMP TABLE files AS SELECT shard_files(:'dir') AS n;
-- 20 MB of incompressible data and a compressible tail
CREATE TEMP TABLE src AS
  SELECT noise(20 * 1024 * 1024 + 12345, 7) || convert_to(repeat('tail ', 20000), 'UTF8') AS data;

-- writes of uneven sizes crossing blocks, stripes and 8 MB upload parts
-- (the mirror pool has one data shard, so its parts fill every 8 MB)
CREATE FUNCTION write_in_pieces(pool name, data bytea, piece int) RETURNS destor.blob
LANGUAGE plpgsql AS $$
DECLARE
  fd int := destor.blob_create(pool);
  total bigint := 0;
  off int := 0;
BEGIN
  WHILE off < length(data) LOOP
    total := total + destor.blob_write(fd, substring(data FROM off + 1 FOR piece));
    off := off + piece;
    piece := piece + 1;  -- never aligned to anything
  END LOOP;
  IF total <> length(data) OR destor.blob_tell(fd) <> total THEN
    RAISE EXCEPTION 'wrote % bytes of %', total, length(data);
  END IF;
  RETURN destor.blob_close(fd);
END $$;

CREATE TEMP TABLE streamed AS
  SELECT 'mirror' AS pool, write_in_pieces('mirror', data, 1000003) AS b FROM src
  UNION ALL
  SELECT 'archive', write_in_pieces('archive', data, 65537) FROM src;
SELECT s.pool, destor.blob_size(b) = length(data) AS same_size,
       destor.blob_get(b) = data AS same_bytes
  FROM streamed s, src ORDER BY pool;
-- an empty blob and a two-byte one (descriptors last one transaction)
BEGIN;
SELECT destor.blob_create('archive') AS fd \gset
SELECT destor.blob_write(:fd, ''::bytea) AS wrote_nothing;
SELECT destor.blob_close(:fd) AS b \gset
SELECT destor.blob_size(:'b') AS empty_size, destor.blob_get(:'b') = '' AS empty_bytes;
SELECT destor.blob_create('archive') AS fd \gset
SELECT destor.blob_write(:fd, '\x2a'), destor.blob_write(:fd, '\x2b');
SELECT destor.blob_close(:fd) AS b \gset
SELECT destor.blob_get(:'b') AS two_bytes;
COMMIT;

-- reading: 1 MB sequential reads give the blob back
CREATE FUNCTION read_in_pieces(b destor.blob, piece int) RETURNS bytea
LANGUAGE plpgsql AS $$
DECLARE
  fd int := destor.blob_open(b);
  part bytea;
  result bytea := '';
BEGIN
  LOOP
    part := destor.blob_read(fd, piece);
    EXIT WHEN length(part) = 0;
    result := result || part;
  END LOOP;
  IF destor.blob_close(fd)::uuid <> b::uuid THEN
    RAISE EXCEPTION 'blob_close returned another handle';
  END IF;
  RETURN result;
END $$;
SELECT s.pool, read_in_pieces(b, 1024 * 1024) = data AS same_1mb,
       read_in_pieces(b, 777777) = data AS same_odd
  FROM streamed s, src ORDER BY pool;

-- seeks and tells, as lo_lseek64: 0 from the start, 1 from here, 2 from the end
BEGIN;
SELECT destor.blob_open(b) AS fd FROM streamed WHERE pool = 'archive' \gset
SELECT destor.blob_tell(:fd) AS at_start;
SELECT destor.blob_seek(:fd, 1000, 0) AS set, destor.blob_tell(:fd) AS tell;
SELECT destor.blob_read(:fd, 10) = substring(data FROM 1001 FOR 10) AS read_after_set FROM src;
SELECT destor.blob_seek(:fd, 20, 1) AS cur;
SELECT destor.blob_read(:fd, 5) = substring(data FROM 1031 FOR 5) AS read_after_cur FROM src;
SELECT destor.blob_seek(:fd, -5, 2) = length(data) - 5 AS end_minus_5 FROM src;
SELECT destor.blob_read(:fd, 100) = substring(data FROM length(data) - 4) AS last_five FROM src;
SELECT length(destor.blob_read(:fd, 100)) AS at_end;
SELECT destor.blob_seek(:fd, 10, 2) = length(data) + 10 AS past_end FROM src;
SELECT length(destor.blob_read(:fd, 100)) AS past_end_read;
-- random reads agree with substring()
SELECT setseed(0.15);
SELECT count(*) AS reads,
       count(*) FILTER (WHERE destor.blob_seek(:fd, off, 0) = off
                          AND destor.blob_read(:fd, len) = substring(data FROM off::int + 1 FOR len))
         AS matching
  FROM (SELECT (random() * 21000000)::bigint AS off, (random() * 3000000)::int AS len
          FROM generate_series(1, 40)) r, src;
-- the two blob_read functions: by argument count, literals resolve
SELECT destor.blob_seek(:fd, 0, 0);
SELECT destor.blob_read(:fd, 4) = substring(data FROM 1 FOR 4) AS by_fd FROM src;
SELECT destor.blob_read(b, 0, 4) = substring(data FROM 1 FOR 4) AS by_handle
  FROM streamed, src WHERE pool = 'archive';
SELECT destor.blob_close(:fd) IS NOT NULL AS closed;
COMMIT;

-- bad input (psql rolls back to a savepoint after each error)
BEGIN;
\set ON_ERROR_ROLLBACK on
SELECT destor.blob_open(b) AS rfd FROM streamed WHERE pool = 'archive' \gset
SELECT destor.blob_create('archive') AS wfd \gset
SELECT destor.blob_write(:rfd, 'x');
SELECT destor.blob_read(:wfd, 10);
SELECT destor.blob_read(:rfd, -1);
SELECT destor.blob_read(:rfd, 1073741824);
SELECT destor.blob_seek(:rfd, -1, 0);
SELECT destor.blob_seek(:rfd, -1, 1);
SELECT destor.blob_seek(:rfd, 0, 3);
SELECT destor.blob_seek(:rfd, 9223372036854775807, 2);
SELECT destor.blob_seek(:wfd, 10, 0);
SELECT destor.blob_seek(:wfd, 0, 2) AS write_fd_stays;
SELECT destor.blob_read(12345, 10);
SELECT destor.blob_tell(-1);
SELECT destor.blob_close(:rfd) IS NOT NULL AS closed;
SELECT destor.blob_read(:rfd, 10);
SELECT destor.blob_close(:rfd);
SELECT destor.blob_create('no_such_pool');
SELECT destor.blob_open('00000000-0000-4000-8000-000000000000');
-- the write descriptor is still open: COMMIT fails (and rolls back)
COMMIT;
\unset ON_ERROR_ROLLBACK
-- descriptors of an earlier transaction
SELECT destor.blob_tell(:wfd);
BEGIN;
SELECT destor.blob_open(b) AS fd FROM streamed WHERE pool = 'archive' \gset
SELECT length(destor.blob_read(:fd, 10)) AS read_in_its_transaction;
COMMIT;
SELECT destor.blob_read(:fd, 10);

-- transactions: an open write descriptor at COMMIT is an error, and what it
-- wrote is gone with the rolled-back transaction
SELECT shard_files(:'dir') - n AS before FROM files \gset
BEGIN;
SELECT destor.blob_create('archive') AS fd \gset
SELECT destor.blob_write(:fd, noise(3 * 1024 * 1024, 8)) AS wrote;
COMMIT;
SELECT shard_files(:'dir') - n - :before AS left_by_unclosed FROM files;
-- a closed blob is visible in its transaction, and gone after ROLLBACK
BEGIN;
SELECT destor.blob_create('archive') AS fd \gset
SELECT destor.blob_write(:fd, noise(100000, 9)) AS wrote;
SELECT destor.blob_close(:fd) AS b \gset
SELECT destor.blob_get(:'b') = noise(100000, 9) AS visible_inside;
ROLLBACK;
SELECT count(*) AS rolled_back_blobs FROM destor.blobs WHERE blob_id = :'b';
SELECT shard_files(:'dir') - n - :before AS left_by_rollback FROM files;
-- committed: kept
BEGIN;
SELECT destor.blob_create('archive') AS fd \gset
SELECT destor.blob_write(:fd, noise(100000, 10)) AS wrote;
SELECT destor.blob_close(:fd) AS kept \gset
COMMIT;
SELECT destor.blob_get(:'kept') = noise(100000, 10) AS committed_blob;
SELECT shard_files(:'dir') - n - :before AS six_shards FROM files;

-- savepoints: a descriptor opened in a rolled-back subtransaction is closed;
-- one written to in a rolled-back subtransaction cannot go on
BEGIN;
SAVEPOINT s1;
SELECT destor.blob_create('archive') AS fd1 \gset
ROLLBACK TO SAVEPOINT s1;
SELECT destor.blob_write(:fd1, 'x');
ROLLBACK TO SAVEPOINT s1;
SELECT destor.blob_create('archive') AS fd2 \gset
SELECT destor.blob_write(:fd2, 'kept part ') AS first;
SAVEPOINT s2;
SELECT destor.blob_write(:fd2, 'undone part') AS second;
ROLLBACK TO SAVEPOINT s2;
SELECT destor.blob_write(:fd2, 'more');
ROLLBACK TO SAVEPOINT s2;
SELECT destor.blob_close(:fd2);
ROLLBACK TO SAVEPOINT s2;
-- released: the transaction can go on and commit
SELECT destor.blob_tell(:fd2);
ROLLBACK TO SAVEPOINT s2;
-- a write descriptor whose subtransaction committed goes on
SELECT destor.blob_create('archive') AS fd3 \gset
SAVEPOINT s3;
SELECT destor.blob_write(:fd3, 'released ') AS in_s3;
RELEASE SAVEPOINT s3;
SELECT destor.blob_write(:fd3, 'savepoint') AS after_s3;
SELECT destor.blob_close(:fd3) AS b3 \gset
-- a read descriptor survives a rolled-back read
SELECT destor.blob_open(:'b3') AS fd4 \gset
SAVEPOINT s4;
SELECT destor.blob_read(:fd4, 9) AS in_s4;
ROLLBACK TO SAVEPOINT s4;
SELECT destor.blob_read(:fd4, 100) AS after_s4;
COMMIT;
SELECT convert_from(destor.blob_get(:'b3'), 'UTF8') AS b3;

-- privileges: blob_create needs USAGE on the pool, as blob_put; blob_open
-- reads only blobs the role may read, as blob_get
CREATE ROLE regress_blobfd_user;
SET ROLE regress_blobfd_user;
SELECT destor.blob_create('archive');
\set VERBOSITY terse
SELECT destor.blob_open(:'kept');
\set VERBOSITY default
RESET ROLE;
-- the blob goes to the role that created the descriptor, as lo_creat's
-- large object does, whoever closes it (a role without USAGE here)
BEGIN;
SELECT destor.blob_create('archive') AS fd \gset
SELECT destor.blob_write(:fd, 'by the superuser') AS wrote;
SET ROLE regress_blobfd_user;
SELECT destor.blob_close(:fd) AS closed_by_other \gset
RESET ROLE;
SELECT owner = current_user::regrole AS owned_by_creator
  FROM destor.blobs WHERE blob_id = :'closed_by_other'::uuid;
ROLLBACK;
GRANT USAGE ON FOREIGN SERVER archive, p1, p2, p3, p4, p5, p6 TO regress_blobfd_user;
BEGIN;
SET ROLE regress_blobfd_user;
SELECT destor.blob_create('archive') AS fd \gset
SELECT destor.blob_write(:fd, 'by a plain role') AS wrote;
SELECT destor.blob_close(:fd) AS theirs \gset
SELECT destor.blob_open(:'theirs') AS fd \gset
SELECT convert_from(destor.blob_read(:fd, 100), 'UTF8') AS own_blob;
SELECT destor.blob_delete(:'theirs');
RESET ROLE;
COMMIT;
-- a SELECT grant on a blob lets the grantee open it, as lo_open
SELECT destor.blob_grant(:'kept', 'regress_blobfd_user', 'SELECT');
BEGIN;
SET ROLE regress_blobfd_user;
SELECT destor.blob_open(:'kept') AS fd \gset
SELECT destor.blob_read(:fd, 100000) = noise(100000, 10) AS granted_read;
RESET ROLE;
COMMIT;
SELECT destor.blob_revoke(:'kept', 'regress_blobfd_user', 'SELECT');
REVOKE ALL ON FOREIGN SERVER archive, p1, p2, p3, p4, p5, p6 FROM regress_blobfd_user;
DROP ROLE regress_blobfd_user;

SELECT destor.blob_delete(b) FROM streamed;
SELECT destor.blob_delete(:'kept'), destor.blob_delete(:'b3');
DROP FUNCTION write_in_pieces(name, bytea, int);
DROP FUNCTION read_in_pieces(destor.blob, int);
