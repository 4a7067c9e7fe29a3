-- destor.move_shards(): a provider leaves; every shard it holds goes to
-- another provider (copied, or rebuilt when it cannot serve it), the
-- catalog places it there, the old copy goes after commit, a rollback
-- leaves no copy behind, and the data then reads without that provider.
\i test/regress/setup.sql
\set VERBOSITY default
SELECT set_config('destor_test.dir', :'dir', false) IS NOT NULL AS set;
\set p7 :dir '/p7'
\set mk 'cat > /dev/null; mkdir -p ' :dir '/p7'
COPY (SELECT 1) TO PROGRAM :'mk';
CREATE SERVER p7 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'p7');
-- seven providers, six shards an object: one provider is free for each
CREATE SERVER seven FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'p1,p2,p3,p4,p5,p6,p7', data_shards '4', parity_shards '2');
CREATE FUNCTION mv_sh(cmd text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', 'cat > /dev/null; ' || cmd);
END $$;
-- provider objects of these blobs in a provider's folder
CREATE TABLE mv_files (f text);
CREATE FUNCTION mv_files_on(provider text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE mv_files;
  EXECUTE format('COPY mv_files FROM PROGRAM %L',
    format('cd %s/%s && (find . -path "*/ds/*" -type f || true)', current_setting('destor_test.dir'), provider));
  RETURN (SELECT count(*) FROM mv_files f JOIN mv ON f.f LIKE '%' || replace(mv.b::text, '-', '') || '%');
END $$;

CREATE TABLE mv AS
  SELECT i, destor.blob_put('seven', convert_to(repeat('move me ' || i, 20000 + i), 'UTF8')) AS b
    FROM generate_series(1, 12) i;
CREATE TABLE mv_expected AS SELECT i, md5(destor.blob_get(b)) AS h FROM mv;
SELECT count(*) AS shards_on_p2 FROM destor.shards s JOIN mv ON s.object_id = mv.b::uuid
 WHERE s.provider = 'p2' \gset
SELECT :shards_on_p2 > 0 AS p2_holds_some, mv_files_on('p2') = :shards_on_p2 AS files_match;

-- a rollback moves nothing and leaves no copy on the targets
BEGIN;
SELECT count(*) FILTER (WHERE moved) = :shards_on_p2 AS all_moved
  FROM destor.move_shards('p2') m JOIN mv ON m.object_id = mv.b::uuid;
ROLLBACK;
SELECT count(*) = :shards_on_p2 AS still_on_p2 FROM destor.shards s JOIN mv ON s.object_id = mv.b::uuid
 WHERE s.provider = 'p2';
SELECT sum(mv_files_on(p)) AS files_everywhere
  FROM unnest(ARRAY['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7']) p;

-- p2 leaves the pool, its shards move to the free provider of each object
ALTER SERVER seven OPTIONS (SET providers 'p1,p3,p4,p5,p6,p7');
SELECT count(*) FILTER (WHERE moved) = :shards_on_p2 AS all_moved,
       bool_and(m.to_provider <> 'p2') AS none_to_p2, count(DISTINCT m.to_provider) > 0 AS targets
  FROM destor.move_shards('p2') m JOIN mv ON m.object_id = mv.b::uuid;
SELECT count(*) AS shards_left_on_p2 FROM destor.shards s JOIN mv ON s.object_id = mv.b::uuid
 WHERE s.provider = 'p2';
-- every object still has six shards on six different providers
SELECT bool_and(n = 6 AND d = 6) AS spread FROM (
  SELECT count(*) AS n, count(DISTINCT provider) AS d FROM destor.shards s JOIN mv ON s.object_id = mv.b::uuid
   GROUP BY s.object_id) x;
SELECT mv_files_on('p2') AS files_left_on_p2, sum(mv_files_on(p)) AS files_everywhere
  FROM unnest(ARRAY['p1', 'p3', 'p4', 'p5', 'p6', 'p7']) p;
-- without p2 and two more providers, everything reads
SELECT mv_sh(format('cd %s && mv p2/ds p2/ds.away && mv p4/ds p4/ds.away && mv p6/ds p6/ds.away',
                    current_setting('destor_test.dir')));
SELECT bool_and(md5(destor.blob_get(mv.b)) = e.h) AS intact FROM mv JOIN mv_expected e USING (i);
SELECT mv_sh(format('cd %s && mv p2/ds.away p2/ds && mv p4/ds.away p4/ds && mv p6/ds.away p6/ds',
                    current_setting('destor_test.dir')));

-- a shard its provider cannot serve any more is rebuilt on the new one
SELECT s.provider AS lost, s.shard_index AS lost_index FROM destor.shards s JOIN mv ON s.object_id = mv.b::uuid
 WHERE mv.i = 1 AND s.provider = 'p3' \gset
SELECT mv_sh(format('rm %s/p3/ds/%s/%s.%s', current_setting('destor_test.dir'),
                    left(replace(b::text, '-', ''), 2), replace(b::text, '-', ''), :lost_index))
  FROM mv WHERE i = 1;
-- the pool has six providers left, each object uses all six: none is free
SELECT m.moved, m.detail FROM destor.move_shards('p3') m JOIN mv ON m.object_id = mv.b::uuid WHERE mv.i = 1;
-- so name one (p2 is out of the pool but still a provider)
SELECT m.moved, m.to_provider FROM destor.move_shards('p3', 'p2') m JOIN mv ON m.object_id = mv.b::uuid
 WHERE mv.i = 1;
SELECT md5(destor.blob_get(b)) = h AS intact FROM mv JOIN mv_expected e USING (i) WHERE i = 1;
SELECT count(*) AS problems FROM destor.repair('seven');

-- away and back in one transaction: the shards stay where they were, whole,
-- whether it commits or rolls back
BEGIN;
SELECT count(*) FILTER (WHERE moved) > 0 AS some_moved
  FROM destor.move_shards('p4', 'p3') m JOIN mv ON m.object_id = mv.b::uuid;
SELECT count(*) FILTER (WHERE moved) > 0 AS some_back
  FROM destor.move_shards('p3', 'p4') m JOIN mv ON m.object_id = mv.b::uuid AND m.to_provider = 'p4';
ROLLBACK;
SELECT count(*) AS problems_after_rollback FROM destor.repair('seven');
BEGIN;
CREATE TEMP TABLE went AS SELECT m.object_id, m.shard_index
  FROM destor.move_shards('p4', 'p3') m JOIN mv ON m.object_id = mv.b::uuid WHERE m.moved;
SELECT count(*) > 0 AS some_went FROM went;
SELECT count(*) FILTER (WHERE moved) = (SELECT count(*) FROM went) AS all_back
  FROM destor.move_shards('p3', 'p4') m JOIN went USING (object_id, shard_index);
COMMIT;
SELECT count(*) AS problems_after_commit FROM destor.repair('seven');
SELECT bool_and(md5(destor.blob_get(mv.b)) = e.h) AS intact FROM mv JOIN mv_expected e USING (i);

-- rebalance: p2 is still listed nowhere but holds shards (moved there
-- above); the pool's shards go back to the listed providers, evenly
SELECT count(*) > 0 AS on_p2_before FROM destor.shards s JOIN mv ON s.object_id = mv.b::uuid
 WHERE s.provider = 'p2';
SELECT count(*) FILTER (WHERE moved) > 0 AS moved_some, count(*) FILTER (WHERE NOT moved) AS refused
  FROM destor.rebalance('seven');
SELECT count(*) AS on_p2_after FROM destor.shards s JOIN mv ON s.object_id = mv.b::uuid
 WHERE s.provider = 'p2';
-- p2 joins the pool again: it gets its share
ALTER SERVER seven OPTIONS (SET providers 'p1,p2,p3,p4,p5,p6,p7');
SELECT count(*) FILTER (WHERE moved) > 0 AS moved_some, count(*) FILTER (WHERE to_provider = 'p2') > 0 AS p2_got_some
  FROM destor.rebalance('seven');
SELECT max(n) - min(n) <= 1 AS even, count(*) AS providers FROM (
  SELECT s.provider, count(*) AS n FROM destor.shards s JOIN mv ON s.object_id = mv.b::uuid GROUP BY 1) x;
SELECT bool_and(n = 6 AND d = 6) AS spread FROM (
  SELECT count(*) AS n, count(DISTINCT provider) AS d FROM destor.shards s JOIN mv ON s.object_id = mv.b::uuid
   GROUP BY s.object_id) x;
SELECT count(*) AS moves_when_even FROM destor.rebalance('seven');
SELECT bool_and(md5(destor.blob_get(mv.b)) = e.h) AS intact FROM mv JOIN mv_expected e USING (i);
SELECT count(*) AS problems FROM destor.repair('seven');
SELECT * FROM destor.rebalance('nopool');

-- refused
SELECT * FROM destor.move_shards('p4', 'p4');
SELECT * FROM destor.move_shards('p4', 'nosuch');
SELECT * FROM destor.move_shards(NULL);
-- a target that already holds a shard of the object
SELECT m.moved, m.detail LIKE 'provider "p5" already holds shard % of this object' AS why
  FROM destor.move_shards('p4', 'p5') m JOIN mv ON m.object_id = mv.b::uuid
  JOIN destor.shards s ON s.object_id = mv.b::uuid AND s.provider = 'p5'
 LIMIT 1;
SET ROLE regress_destor_user;
SELECT * FROM destor.move_shards('p4');
RESET ROLE;

SELECT count(destor.blob_delete(b)) FROM mv;
DROP TABLE mv, mv_expected, mv_files;
DROP FUNCTION mv_sh(text), mv_files_on(text);
DROP SERVER seven;
