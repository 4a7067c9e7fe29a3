-- Blobs on six file providers in a 4+2 pool: round trips of many sizes,
-- random ranges, where shards go, and that providers never see plaintext.
-- The providers p1..p6 and the pools archive (4+2) and mirror (1+2) come
-- from the shared setup.
\i test/regress/setup.sql
\set mk 'cat > /dev/null; mkdir -p ' :dir

SELECT ok, latency_ms >= 0 AS timed, detail FROM destor.check_provider('p1');

-- Pseudo-random (incompressible) and repetitive (compressible) payloads.

CREATE TABLE src (name text PRIMARY KEY, data bytea);
INSERT INTO src VALUES
  ('empty', ''::bytea),
  ('one', '\x2a'::bytea),
  ('block-1', noise(65535, 1)),
  ('block', noise(65536, 2)),
  ('block+1', noise(65537, 3)),
  ('stripe-ish', noise(4 * 65552 + 3, 4)),
  ('text', convert_to(repeat('destor keeps data safe. ', 100000), 'UTF8')),
  ('big', noise(3 * 1024 * 1024 + 17, 5)),
  ('marker', convert_to('PLAINTEXT-MARKER-91e4 ' || repeat('x', 5000), 'UTF8'));

CREATE TABLE stored AS
  SELECT name, destor.blob_put(CASE WHEN name = 'one' THEN 'mirror' ELSE 'archive' END, data) AS b
    FROM src;

SELECT s.name, destor.blob_size(b) AS size, destor.blob_get(b) = s.data AS same
  FROM src s JOIN stored USING (name) ORDER BY length(s.data), s.name;

-- 200 random ranges, including ones that run past the end (substring semantics).
SELECT setseed(0.42);
CREATE TABLE ranges AS
  SELECT name, (random() * (length(data) + 10))::bigint AS off, (random() * 200000)::int AS len
    FROM src, generate_series(1, 25) WHERE name <> 'empty';
SELECT count(*) AS ranges,
       count(*) FILTER (WHERE destor.blob_read(b, off, len) = substring(data FROM off::int + 1 FOR len))
         AS matching
  FROM ranges JOIN src USING (name) JOIN stored USING (name);
SELECT destor.blob_read(b, 0, 0) = ''::bytea AS empty_read,
       destor.blob_read(b, 1000000000, 5) = ''::bytea AS past_end
  FROM stored WHERE name = 'big';

-- Placement: n shards on n distinct providers; parity counted.
SELECT count(*) AS shards, count(DISTINCT provider) AS providers,
       count(*) FILTER (WHERE kind = 'parity') AS parity, bool_and(state = 'ok') AS all_ok
  FROM destor.blob_shards JOIN stored ON blob_id = b::uuid WHERE name = 'big';
SELECT count(*) AS replicas FROM destor.blob_shards JOIN stored ON blob_id = b::uuid
 WHERE name = 'one';
-- Stored size of an incompressible blob is about (k+m)/k times its size.
SELECT round(sum(size)::numeric / (3 * 1024 * 1024 + 17), 1) AS overhead
  FROM destor.blob_shards JOIN stored ON blob_id = b::uuid WHERE name = 'big';
-- Compressible data is stored compressed.
SELECT sum(size) < 2400000 / 10 AS compressed
  FROM destor.blob_shards JOIN stored ON blob_id = b::uuid WHERE name = 'text';

-- No provider file contains the plaintext marker or the repetitive text.
\set grep 'grep -rl -e PLAINTEXT-MARKER -e "keeps data safe" ' :dir ' | wc -l'
CREATE TEMP TABLE found (n int);
COPY found FROM PROGRAM :'grep';
SELECT n AS files_with_plaintext FROM found;

-- Handles are values: text form, equality, cast to uuid.
SELECT b::text = b::uuid::text AS text_is_uuid,
       b::text::destor.blob::uuid = b::uuid AS roundtrip
  FROM stored WHERE name = 'one';

-- blob_import / blob_export stream server-side files.
\set f :dir '/import.bin'
\set g :dir '/export.bin'
COPY (SELECT 1) TO PROGRAM :'mk';
COPY (SELECT encode(data, 'base64') FROM src WHERE name = 'big') TO :'f';
CREATE TABLE imported AS SELECT destor.blob_import('archive', :'f') AS b;
SELECT destor.blob_size(b) = length(pg_read_binary_file(:'f')) AS same_size,
       destor.blob_get(b) = pg_read_binary_file(:'f') AS same_bytes
  FROM imported;
SELECT destor.blob_export(b, :'g') = length(pg_read_binary_file(:'f')) AS exported FROM imported;
SELECT pg_read_binary_file(:'g') = pg_read_binary_file(:'f') AS export_matches;

-- Shards larger than one 8 MiB upload part are streamed in parts: a 41 MB
-- file over 4 data shards, and a 9 MB blob replicated (k = 1) on 3 providers.
\set f2 :dir '/import2.bin'
\set g2 :dir '/export2.bin'
\set mkbig 'cat > /dev/null; head -c 41000003 /dev/urandom > ' :f2
COPY (SELECT 1) TO PROGRAM :'mkbig';
CREATE TABLE imported2 AS SELECT destor.blob_import('archive', :'f2') AS b;
SELECT destor.blob_export(b, :'g2') AS exported_bytes FROM imported2;
SELECT md5(pg_read_binary_file(:'g2')) = md5(pg_read_binary_file(:'f2')) AS multipart_export_matches;
SELECT count(*) AS ranges_ok FROM imported2, generate_series(1, 20) i
 WHERE destor.blob_read(b, i * 2000003, 70000) =
       substring(pg_read_binary_file(:'f2') FROM i * 2000003 + 1 FOR 70000);
CREATE TABLE replicated AS SELECT noise(9 * 1024 * 1024 + 12345, 6) AS data;
ALTER TABLE replicated ADD COLUMN b destor.blob;
UPDATE replicated SET b = destor.blob_put('mirror', data);
SELECT destor.blob_get(b) = data AS replicated_matches,
       destor.blob_read(b, 8388000, 5000) = substring(data FROM 8388001 FOR 5000) AS across_parts
  FROM replicated;

-- blob_delete removes the blob; its shards go at commit.
SELECT destor.blob_delete(b) FROM stored WHERE name = 'block';
SELECT count(*) AS left_in_catalog FROM stored s JOIN destor.objects o ON o.object_id = s.b::uuid
 WHERE name = 'block';
-- reading a deleted (or never existing) blob is an error
SELECT destor.blob_size('00000000-0000-4000-8000-000000000000');
