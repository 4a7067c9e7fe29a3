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

DROP SCHEMA brk CASCADE;
