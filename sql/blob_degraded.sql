-- Losing and corrupting shards: reads reconstruct from any k good shards,
-- corrupt chunks are identified by checksum, and too many losses give a
-- clear error that names the providers.  Self-contained: it destroys its
-- own six providers dg1..dg6 and their 4+2 pool dg_pool.
\i test/regress/setup.sql
-- the shards of blobs of their own: small blobs stay unpacked here (blob_pack.sql)
SET destor.blob_pack_threshold = 0;
CREATE FUNCTION show_error(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; det text;
BEGIN
  EXECUTE q;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
  RETURN regexp_replace(msg, '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>') || E'\n' || split_part(det, '. ', 1);
END $$;

-- the file holding shard i of a blob
CREATE FUNCTION shard_path(b destor.blob, i int) RETURNS text LANGUAGE sql AS $$
  SELECT current_setting('destor_test.dir') || '/' || s.provider || '/ds/' ||
         left(replace(b::text, '-', ''), 2) || '/' || replace(b::text, '-', '') || '.' || i
    FROM destor.shards s WHERE s.object_id = b::uuid AND s.shard_index = i $$;
SELECT set_config('destor_test.dir', :'dir', false) IS NOT NULL AS set;

-- overwrite 8 bytes of a shard file at an offset, in place
CREATE FUNCTION corrupt(path text, off bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('COPY (SELECT 1) TO PROGRAM %L',
    format('cat > /dev/null; printf XXXXXXXX | dd of=%s bs=1 seek=%s conv=notrunc status=none', path, off));
END $$;

\set mk 'cat > /dev/null; cd ' :dir ' && rm -rf dg1 dg2 dg3 dg4 dg5 dg6 && mkdir dg1 dg2 dg3 dg4 dg5 dg6'
COPY (SELECT 1) TO PROGRAM :'mk';
\set d1 :dir '/dg1'
\set d2 :dir '/dg2'
\set d3 :dir '/dg3'
\set d4 :dir '/dg4'
\set d5 :dir '/dg5'
\set d6 :dir '/dg6'
CREATE SERVER dg1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'d1');
CREATE SERVER dg2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'d2');
CREATE SERVER dg3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'d3');
CREATE SERVER dg4 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'d4');
CREATE SERVER dg5 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'d5');
CREATE SERVER dg6 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'d6');
CREATE SERVER dg_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'dg1,dg2,dg3,dg4,dg5,dg6', data_shards '4', parity_shards '2');

-- payloads across block and stripe boundaries, each stored twice: in
-- dg_stored, read after whole providers are gone, and in victims, whose
-- shards are corrupted first
CREATE TABLE dg_src (name text PRIMARY KEY, data bytea);
INSERT INTO dg_src VALUES
  ('empty', ''::bytea),
  ('block-1', noise(65535, 1)),
  ('block+1', noise(65537, 3)),
  ('stripe-ish', noise(4 * 65552 + 3, 4)),
  ('text', convert_to(repeat('destor keeps data safe. ', 100000), 'UTF8')),
  ('big', noise(3 * 1024 * 1024 + 17, 5)),
  ('marker', convert_to('PLAINTEXT-MARKER-91e4 ' || repeat('x', 5000), 'UTF8'));
CREATE TABLE dg_stored AS SELECT name, destor.blob_put('dg_pool', data) AS b FROM dg_src;
SELECT setseed(0.42);
CREATE TABLE dg_ranges AS
  SELECT name, (random() * (length(data) + 10))::bigint AS off, (random() * 200000)::int AS len
    FROM dg_src, generate_series(1, 25) WHERE name <> 'empty';
-- a 41 MB file: its shards span many read-ahead windows
\set f2 :dir '/dg_import.bin'
\set mkbig 'cat > /dev/null; head -c 41000003 /dev/urandom > ' :f2
COPY (SELECT 1) TO PROGRAM :'mkbig';
CREATE TABLE dg_imported AS SELECT destor.blob_import('dg_pool', :'f2') AS b;

CREATE TABLE victims AS
  SELECT name, data, destor.blob_put('dg_pool', data) AS b FROM dg_src WHERE name IN ('big', 'block+1', 'marker');

CREATE FOREIGN TABLE readings (id int, v float8, tag text) SERVER dg_pool
  OPTIONS (segment_rows '5000', row_group_rows '1000');
INSERT INTO readings SELECT i, i * 0.25, 'tag' || (i % 17) FROM generate_series(1, 12000) i;
CREATE TABLE readings_heap AS SELECT * FROM readings;

-- one corrupt data shard: read around it
SELECT corrupt(shard_path(b, 0), 100) FROM victims WHERE name = 'big';
SELECT destor.blob_get(b) = data AS intact FROM victims WHERE name = 'big';
-- three corrupt shards, each in a different stripe: every stripe still has 5 good chunks
SELECT corrupt(shard_path(b, 1), 65536 + 10), corrupt(shard_path(b, 4), 2 * 65536 + 10)
  FROM victims WHERE name = 'big';
SELECT destor.blob_get(b) = data AS intact FROM victims WHERE name = 'big';
SELECT destor.blob_read(b, 70000, 300000) = substring(data FROM 70001 FOR 300000) AS range_intact
  FROM victims WHERE name = 'big';
-- three corrupt shards in the same stripe: beyond repair, and said so
SELECT corrupt(shard_path(b, 0), 5), corrupt(shard_path(b, 2), 5), corrupt(shard_path(b, 5), 5)
  FROM victims WHERE name = 'marker';
SELECT split_part(e, E'\n', 1) AS error,
       split_part(e, E'\n', 2) = 'Unavailable or corrupt: ' ||
         (SELECT string_agg(provider, ', ' ORDER BY provider) FROM destor.shards
           WHERE object_id = b::uuid AND shard_index IN (0, 2, 5)) AS names_the_corrupt_providers
  FROM (SELECT b, show_error(format('SELECT destor.blob_get(%L)', b)) AS e
          FROM victims WHERE name = 'marker') x;

-- corruption met while a read-ahead is in flight (regression: the repair
-- path freed a buffer it had not allocated)
\set g4 :dir '/dg_export4.bin'
CREATE TABLE big41 AS SELECT destor.blob_import('dg_pool', :'f2') AS b;
SELECT corrupt(shard_path(b, 0), 0), corrupt(shard_path(b, 1), 20 * 65553) FROM big41;
SELECT destor.blob_export(b, :'g4') AS exported_bytes FROM big41;
SELECT md5(pg_read_binary_file(:'g4')) = md5(pg_read_binary_file(:'f2')) AS corrupt_export_matches;

-- lose two whole providers
\set rm 'cat > /dev/null; rm -rf ' :dir '/dg2 ' :dir '/dg5'
COPY (SELECT 1) TO PROGRAM :'rm';
SELECT name, destor.blob_get(b) = data AS intact FROM dg_stored JOIN dg_src USING (name)
 ORDER BY name;
SELECT name, destor.blob_get(b) = data AS intact FROM victims WHERE name = 'block+1';
-- tables read degraded too
SELECT count(*), sum(v), count(DISTINCT tag) FROM readings;
SELECT count(*) AS differing FROM (SELECT * FROM readings EXCEPT ALL SELECT * FROM readings_heap) x;
SELECT tag, v FROM readings WHERE id = 7777;
-- a multi-window streamed export (with read-ahead) goes degraded too
\set g3 :dir '/dg_export3.bin'
SELECT destor.blob_export(b, :'g3') AS exported_bytes FROM dg_imported;
SELECT md5(pg_read_binary_file(:'g3')) = md5(pg_read_binary_file(:'f2')) AS degraded_export_matches;
SELECT count(*) AS ranges,
       count(*) FILTER (WHERE destor.blob_read(b, off, len) = substring(data FROM off::int + 1 FOR len))
         AS matching
  FROM dg_ranges JOIN dg_src USING (name) JOIN dg_stored USING (name);

-- writes go on while write_quorum (5 of 6 here) is met... it is not, with two providers gone
\set VERBOSITY terse
SELECT destor.blob_put('dg_pool', 'needs five providers');
\set mk 'cat > /dev/null; mkdir -p ' :dir '/dg2'
COPY (SELECT 1) TO PROGRAM :'mk';
CREATE TABLE partial AS SELECT destor.blob_put('dg_pool', 'five of six') AS b;
\set VERBOSITY default
SELECT provider, state FROM destor.blob_shards JOIN partial ON blob_id = b::uuid
 WHERE state <> 'ok';
SELECT convert_from(destor.blob_get(b), 'UTF8') AS readable FROM partial;

-- lose a third provider: more than m = 2 are gone; the error names them
\set rm 'cat > /dev/null; rm -rf ' :dir '/dg3'
COPY (SELECT 1) TO PROGRAM :'rm';
SELECT show_error(format('SELECT destor.blob_get(%L)', b)) FROM victims WHERE name = 'block+1';
-- even an empty blob is authenticated: with its shards gone it is unreadable
SELECT show_error(format('SELECT destor.blob_get(%L)', b)) FROM dg_stored WHERE name = 'empty';
-- an unreadable blob does not clobber the file it was to be exported to
\set keep :dir '/dg_keep.txt'
COPY (SELECT 'precious') TO :'keep';
SELECT show_error(format('SELECT destor.blob_export(%L, %L)', b, :'keep')) FROM victims WHERE name = 'block+1';
SELECT pg_read_file(:'keep') AS still_there;
