-- Large objects moved to blobs and back: bytes, sizes across block and
-- stripe boundaries, move semantics (unlink/delete) inside transactions,
-- converting a column of large objects, and the large objects' privileges.
\i test/regress/setup.sql
\set VERBOSITY default

CREATE TABLE los (name text PRIMARY KEY, lo oid, data bytea);
INSERT INTO los
  SELECT name, lo_from_bytea(0, data), data
    FROM (VALUES ('empty', ''::bytea),
                 ('small', convert_to('a large object, briefly', 'UTF8')),
                 ('block+1', noise(65537, 7)),
                 ('over a lo_read chunk', noise(3 * 1024 * 1024 + 5, 8)),
                 ('compressible', convert_to(repeat('pg_largeobject rows ', 200000), 'UTF8'))) v(name, data);

-- copy: the large objects stay, the blobs hold the same bytes
CREATE TABLE moved AS
  SELECT name, destor.blob_from_lo('archive', lo) AS b FROM los;
SELECT l.name, destor.blob_size(m.b) = length(l.data) AS same_size,
       destor.blob_get(m.b) = l.data AS same_bytes,
       lo_get(l.lo) = l.data AS lo_still_there
  FROM los l JOIN moved m USING (name) ORDER BY l.name;

-- and back, into new large objects (a chosen oid, or a new one)
SELECT destor.blob_to_lo(b, 987654) AS chosen_oid FROM moved WHERE name = 'small';
SELECT convert_from(lo_get(987654), 'UTF8') AS back;
-- (a large object made by a statement is seen by the next one)
CREATE TABLE back AS SELECT name, destor.blob_to_lo(b) AS lo FROM moved;
SELECT b.name, lo_get(b.lo) = l.data AS round_trip
  FROM back b JOIN los l USING (name) ORDER BY b.name;
SELECT count(lo_unlink(lo)) AS unlinked FROM back;
DROP TABLE back;
-- the oid is taken now
SELECT destor.blob_to_lo(b, 987654) FROM moved WHERE name = 'small';
SELECT lo_unlink(987654);

SELECT count(*) AS blobs_before FROM destor.blobs \gset
-- move: unlink => true drops the large object in the same transaction;
-- a rollback brings it back and forgets the blob
BEGIN;
CREATE TEMP TABLE m2 AS SELECT destor.blob_from_lo('archive', lo, unlink => true) AS b
  FROM los WHERE name = 'small';
SELECT count(*) AS lo_left FROM pg_largeobject_metadata m JOIN los l ON m.oid = l.lo WHERE l.name = 'small';
ROLLBACK;
SELECT lo_get(lo) = data AS lo_back_after_rollback FROM los WHERE name = 'small';
SELECT count(*) - :blobs_before AS blobs_added FROM destor.blobs;

-- converting a column of large objects into blobs, in one statement
CREATE TABLE lo_docs (id int, body oid);
INSERT INTO lo_docs SELECT row_number() OVER (ORDER BY name), lo_from_bytea(0, data) FROM los;
CREATE TABLE lo_docs_expected AS SELECT id, lo_get(body) AS data FROM lo_docs;
ALTER TABLE lo_docs ALTER COLUMN body TYPE destor.blob
  USING destor.blob_from_lo('archive', body, unlink => true);
SELECT d.id, destor.blob_get(d.body) = e.data AS same
  FROM lo_docs d JOIN lo_docs_expected e USING (id) ORDER BY d.id;
SELECT count(*) AS docs_large_objects_left FROM pg_largeobject_metadata
 WHERE oid NOT IN (SELECT lo FROM los);
-- and back, deleting the blobs (after commit)
ALTER TABLE lo_docs ALTER COLUMN body TYPE oid USING destor.blob_to_lo(body, delete => true);
SELECT d.id, lo_get(d.body) = e.data AS same
  FROM lo_docs d JOIN lo_docs_expected e USING (id) ORDER BY d.id;
SELECT count(*) - :blobs_before AS blobs_left_after_moving_back FROM destor.blobs;

-- errors
SELECT destor.blob_from_lo('archive', 4242424242);
SELECT destor.blob_from_lo('nopool', (SELECT lo FROM los WHERE name = 'small'));
SELECT destor.blob_to_lo('00000000-0000-4000-8000-000000000000');

-- privileges: reading needs SELECT on the large object, unlinking needs
-- ownership, writing a blob needs USAGE on the pool and its providers
GRANT USAGE ON FOREIGN SERVER archive, p1, p2, p3, p4, p5, p6 TO regress_destor_user;
SELECT lo_from_bytea(987655, 'granted') AS lo_granted, lo_from_bytea(987656, 'not granted') AS lo_not_granted;
GRANT SELECT ON LARGE OBJECT 987655 TO regress_destor_user;
GRANT SELECT ON moved TO regress_destor_user;
SET ROLE regress_destor_user;
SELECT destor.blob_from_lo('archive', 987656);
SELECT convert_from(destor.blob_get(destor.blob_from_lo('archive', 987655)), 'UTF8') AS read_with_grant;
SELECT destor.blob_from_lo('archive', 987655, unlink => true);
-- their own blob back into their own large object; someone else's blob is refused
CREATE TEMP TABLE own AS SELECT destor.blob_to_lo(destor.blob_put('archive', 'mine')) AS lo;
SELECT convert_from(lo_get(lo), 'UTF8') AS own_round_trip FROM own;
SELECT lo_unlink(lo) FROM own;
\set VERBOSITY terse
SELECT destor.blob_to_lo(b) FROM moved WHERE name = 'small';
\set VERBOSITY default
RESET ROLE;
SELECT lo_unlink(987655), lo_unlink(987656);

DROP TABLE lo_docs, lo_docs_expected, moved;
SELECT count(lo_unlink(lo)) FROM los;
DROP TABLE los;
