-- destor.repair(): shards lost or corrupted on a provider are found and
-- written again from the others, byte for byte what they were; readers then
-- have full redundancy again.  Table segments are objects like blobs.
\i test/regress/setup.sql
-- the shards of blobs of their own: small blobs stay unpacked here (blob_pack.sql)
SET destor.blob_pack_threshold = 0;
\set VERBOSITY default
SELECT set_config('destor_test.dir', :'dir', false) IS NOT NULL AS set;
-- run a shell command on the server (consuming COPY's input)
CREATE FUNCTION sh(cmd text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', 'cat > /dev/null; ' || cmd);
END $$;
-- the file of shard i of an object, and md5 sums of every shard file
CREATE FUNCTION rp_path(id uuid, i int) RETURNS text LANGUAGE sql AS $$
  SELECT current_setting('destor_test.dir') || '/' || s.provider || '/ds/' ||
         left(replace(id::text, '-', ''), 2) || '/' || replace(id::text, '-', '') || '.' || i
    FROM destor.shards s WHERE s.object_id = id AND s.shard_index = i $$;
CREATE TABLE sums (line text);
CREATE FUNCTION shard_sums() RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE sums;
  EXECUTE format('COPY sums FROM PROGRAM %L',
    format('cd %s && find p1 p2 p3 p4 p5 p6 -path "*/ds/*" -type f | sort | xargs md5sum',
           current_setting('destor_test.dir')));
  RETURN QUERY SELECT line FROM sums ORDER BY line;
END $$;

CREATE TABLE rp (name text, b destor.blob, sha bytea);
INSERT INTO rp SELECT name, destor.blob_put('archive', data), sha256(data)
  FROM (VALUES ('small', convert_to('repair me', 'UTF8')),
               ('several windows', noise(18 * 1024 * 1024 + 7, 11))) v(name, data);
CREATE FOREIGN TABLE rp_t (id int, s text) SERVER archive;
INSERT INTO rp_t SELECT i, md5(i::text) FROM generate_series(1, 5000) i;
CREATE TABLE rp_objects AS
  SELECT b::uuid AS id FROM rp
  UNION ALL SELECT object_id FROM destor.segments s JOIN destor.tables t USING (table_id)
             WHERE t.relid = 'rp_t'::regclass;
-- every pool's objects are checked (other tests' too); this reports on its own
CREATE VIEW rp_report AS
  SELECT o.name, r.shard_index, r.problem, r.repaired
    FROM destor.repair() r
    JOIN (SELECT b::uuid AS id, name FROM rp
          UNION ALL SELECT id, 'segment' FROM rp_objects WHERE id NOT IN (SELECT b::uuid FROM rp)) o
      ON o.id = r.object_id;
CREATE TABLE before AS SELECT * FROM shard_sums();

-- all healthy: nothing to report
SELECT count(*) AS problems FROM destor.repair();

-- provider p2 loses everything
SELECT sh('rm -rf ' || current_setting('destor_test.dir') || '/p2/ds');
SELECT name, problem, repaired FROM rp_report ORDER BY 1;
-- the rebuilt shards are byte for byte the lost ones
SELECT count(*) AS differing_files FROM (
  (SELECT * FROM before EXCEPT SELECT * FROM shard_sums())
  UNION ALL (SELECT * FROM shard_sums() EXCEPT SELECT * FROM before)) d;
SELECT count(*) AS problems_after FROM destor.repair();
-- and they carry data: with two other providers gone, everything reads
SELECT sh('mv ' || current_setting('destor_test.dir') || '/p5/ds ' || current_setting('destor_test.dir') || '/p5/ds.away; '
       || 'mv ' || current_setting('destor_test.dir') || '/p6/ds ' || current_setting('destor_test.dir') || '/p6/ds.away');
SELECT name, sha256(destor.blob_get(b)) = sha AS intact FROM rp ORDER BY name;
SELECT count(*), sum(id), md5(string_agg(s, '' ORDER BY id)) = md5(string_agg(md5(id::text), '' ORDER BY id)) AS same
  FROM rp_t;
SELECT sh('mv ' || current_setting('destor_test.dir') || '/p5/ds.away ' || current_setting('destor_test.dir') || '/p5/ds; '
       || 'mv ' || current_setting('destor_test.dir') || '/p6/ds.away ' || current_setting('destor_test.dir') || '/p6/ds');

-- a chunk corrupted in place: only verify reads the chunks and finds it
SELECT sh(format('printf XXXXXXXX | dd of=%s bs=1 seek=70000 conv=notrunc status=none',
                 rp_path(b::uuid, 1))) FROM rp WHERE name = 'several windows';
SELECT count(*) AS problems_without_verify FROM rp_report;
SELECT o.name, r.shard_index, r.problem, r.repaired, r.detail
  FROM destor.repair(verify => true) r JOIN rp o ON o.b::uuid = r.object_id;
-- a truncated shard: its trailer is not where it should be
SELECT sh(format('truncate -s 1000 %s', rp_path(b::uuid, 0))) FROM rp WHERE name = 'several windows';
SELECT name, shard_index, problem, repaired FROM rp_report;
SELECT count(*) AS differing_files FROM (
  (SELECT * FROM before EXCEPT SELECT * FROM shard_sums())
  UNION ALL (SELECT * FROM shard_sums() EXCEPT SELECT * FROM before)) d;

-- dry run: reports, changes nothing
SELECT sh('rm ' || rp_path(b::uuid, 3)) FROM rp WHERE name = 'small';
SELECT o.name, r.shard_index, r.problem, r.repaired
  FROM destor.repair(dry_run => true) r JOIN rp o ON o.b::uuid = r.object_id;
SELECT s.state FROM destor.shards s JOIN rp ON s.object_id = rp.b::uuid
 WHERE rp.name = 'small' AND s.shard_index = 3;
SELECT name, shard_index, problem, repaired FROM rp_report;

-- too few shards left: reported, recorded, and a warning
SELECT sh('rm ' || rp_path(b::uuid, 0) || ' ' || rp_path(b::uuid, 1) || ' ' || rp_path(b::uuid, 2))
  FROM rp WHERE name = 'small';
SET client_min_messages = error;  -- the warning names the object's (random) id
SELECT name, shard_index, problem, repaired FROM rp_report ORDER BY shard_index;
RESET client_min_messages;
SELECT shard_index, state FROM destor.shards s JOIN rp ON s.object_id = rp.b::uuid
 WHERE rp.name = 'small' ORDER BY shard_index;
SELECT destor.blob_delete(b) FROM rp WHERE name = 'small';

-- one pool only
SELECT count(*) AS problems_in_archive FROM destor.repair('archive');
-- bad calls
SELECT * FROM destor.repair('nopool');
SET ROLE regress_destor_user;
SELECT * FROM destor.repair('archive');
RESET ROLE;

DROP VIEW rp_report;
DROP FOREIGN TABLE rp_t;
SELECT destor.blob_delete(b) FROM rp WHERE name <> 'small';
DROP TABLE rp, rp_objects, before, sums;
DROP FUNCTION sh(text), rp_path(uuid, int), shard_sums();
