-- Placement rules (pool options allowed_geo, max_shards_per_geo,
-- max_shards_per_operator, placement; provider options geo, operator,
-- cost_per_gb_month): writes follow them, CREATE/ALTER SERVER refuses rules
-- no object can meet, placement_report proves them, move_shards keeps them,
-- rebalance brings objects under changed rules.
\getenv dir DESTOR_REGRESS_DIR
\set VERBOSITY default
-- the shards of blobs of their own: small blobs stay unpacked here (blob_pack.sql)
SET destor.blob_pack_threshold = 0;
SELECT set_config('destor_test.pldir', :'dir' || '/placement', false) IS NOT NULL AS set;
\set mk 'cat > /dev/null; cd ' :dir ' && mkdir -p placement/e1 placement/e2 placement/e3 placement/e4 placement/c1 placement/c2 placement/u1 placement/u2'
COPY (SELECT 1) TO PROGRAM :'mk';
CREATE FUNCTION pl_server(name text, geo text, op text, cost text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER destor_provider OPTIONS (type %L, path %L, geo %L, operator %L, cost_per_gb_month %L)',
                 name, 'file', current_setting('destor_test.pldir') || '/' || name, geo, op, cost);
END $$;
CREATE FUNCTION pl_sh(cmd text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('COPY (SELECT 1) TO PROGRAM %L',
                 'cat > /dev/null; cd ' || current_setting('destor_test.pldir') || ' && ' || cmd);
END $$;
-- four in the EU (two run by acme), two in Switzerland, two in the US
SELECT pl_server('e1', 'EU', 'acme', '0.010'), pl_server('e2', 'EU', 'acme', '0.020'),
       pl_server('e3', 'EU', 'beta', '0.030'), pl_server('e4', 'EU', 'gamma', '0.040'),
       pl_server('c1', 'CH', 'delta', '0.015'), pl_server('c2', 'CH', 'eps', '0.050'),
       pl_server('u1', 'US', 'acme', '0.001'), pl_server('u2', 'US', 'zeta', '0.002');

-- tags are single words
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '/tmp', geo 'EU,CH');
CREATE SERVER bad FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '/tmp', operator '');
-- option values
CREATE SERVER bad FOREIGN DATA WRAPPER destor OPTIONS (providers 'e1,e2,e3', data_shards '2', parity_shards '1', placement 'random');
CREATE SERVER bad FOREIGN DATA WRAPPER destor OPTIONS (providers 'e1,e2,e3', data_shards '2', parity_shards '1', allowed_geo 'EU,');
CREATE SERVER bad FOREIGN DATA WRAPPER destor OPTIONS (providers 'e1,e2,e3', data_shards '2', parity_shards '1', max_shards_per_geo '0');
-- rules no object can meet are refused, saying why
CREATE SERVER bad FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'e1,e2,c1,c2,u1,u2', data_shards '2', parity_shards '1', allowed_geo 'CH');
CREATE SERVER bad FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'e1,e2,e3,e4,c1,c2', data_shards '3', parity_shards '2', max_shards_per_geo '2');
CREATE SERVER bad FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'e1,e2,u1,u2', data_shards '2', parity_shards '1', max_shards_per_operator '1', allowed_geo 'EU');

-- Europe only; losing one country or one company loses nothing (m = 2)
CREATE SERVER europe FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'u1,e1,e2,u2,e3,e4,c1,c2', data_shards '2', parity_shards '2',
           allowed_geo 'EU, CH', max_shards_per_geo '2', max_shards_per_operator '1');
CREATE TABLE pl_blobs AS
  SELECT i, destor.blob_put('europe', convert_to(repeat('placed ' || i, 3000 + i), 'UTF8')) AS b
    FROM generate_series(1, 16) i;
CREATE TABLE pl_expected AS SELECT i, md5(destor.blob_get(b)) AS h FROM pl_blobs;
CREATE FOREIGN TABLE pl_rows (id int, v text) SERVER europe OPTIONS (segment_rows '1000', row_group_rows '500');
INSERT INTO pl_rows SELECT g, md5(g::text) FROM generate_series(1, 3000) g;
SELECT kind, count(*) AS objects, bool_and(compliant) AS all_compliant
  FROM destor.placement_report WHERE pool = 'europe' GROUP BY kind ORDER BY kind;
-- no shard outside the EU and CH, at most 2 per country, 1 per operator
SELECT count(*) AS shards_outside
  FROM destor.shards s JOIN destor.objects o USING (object_id)
 WHERE o.pool = 'europe' AND s.provider IN ('u1', 'u2');
SELECT max(n) AS most_in_one_geo FROM (
  SELECT s.object_id, destor.provider_tag(s.provider, 'geo'), count(*) AS n
    FROM destor.shards s JOIN destor.objects o USING (object_id) WHERE o.pool = 'europe' GROUP BY 1, 2) x;
SELECT max(n) AS most_by_one_operator FROM (
  SELECT s.object_id, destor.provider_tag(s.provider, 'operator'), count(*) AS n
    FROM destor.shards s JOIN destor.objects o USING (object_id) WHERE o.pool = 'europe' GROUP BY 1, 2) x;
-- both countries are used
SELECT shards_per_geo ? 'EU' AND shards_per_geo ? 'CH' AS both_used, shards_per_geo ? 'US' AS us_used,
       noncompliant_objects
  FROM destor.placement_summary WHERE pool = 'europe';
-- without Switzerland (two shards), everything reads
SELECT pl_sh('mv c1 c1.away && mv c2 c2.away');
SELECT bool_and(md5(destor.blob_get(p.b)) = e.h) AS intact_without_ch FROM pl_blobs p JOIN pl_expected e USING (i);
SELECT count(*), sum(length(v)) FROM pl_rows;
SELECT pl_sh('mv c1.away c1 && mv c2.away c2');

-- a degraded write (one eligible provider gone, write_quorum 3) never puts a
-- shard where the rules forbid; its missing shard stays on an eligible one
ALTER SERVER europe OPTIONS (ADD write_quorum '3');
SELECT pl_sh('mv e3 e3.away');
SET client_min_messages = error;  -- the warnings name the test's directory
SELECT destor.blob_put('europe', convert_to(repeat('degraded ' || i, 3000), 'UTF8')) IS NOT NULL AS written
  FROM generate_series(1, 6) i;
RESET client_min_messages;
SELECT pl_sh('mv e3.away e3');
SELECT count(*) FILTER (WHERE NOT compliant) AS noncompliant,
       count(*) FILTER (WHERE 'u1' = ANY (providers) OR 'u2' = ANY (providers)) AS in_us
  FROM destor.placement_report WHERE pool = 'europe';
SELECT count(*) > 0 AS repaired_some FROM destor.repair('europe') WHERE repaired;

-- move_shards never breaks the rules: not to the US, not a second acme shard
SELECT b AS one FROM pl_blobs WHERE i = 1 \gset
SELECT s.provider AS eu_provider FROM destor.shards s
 WHERE s.object_id = :'one'::uuid AND destor.provider_tag(s.provider, 'geo') = 'EU' LIMIT 1 \gset
SELECT m.moved, regexp_replace(m.detail, 'shard [0-9]+', 'shard N') AS detail
  FROM destor.move_shards(:'eu_provider', 'u2') m WHERE m.object_id = :'one'::uuid;
SELECT s.object_id AS op_obj, s2.provider AS op_from, CASE s.provider WHEN 'e1' THEN 'e2' ELSE 'e1' END AS op_to
  FROM destor.shards s JOIN destor.objects o USING (object_id)
  JOIN destor.shards s2 ON s2.object_id = s.object_id AND s2.provider IN ('e3', 'e4')
 WHERE o.pool = 'europe' AND s.provider IN ('e1', 'e2')
 ORDER BY 1, 2 LIMIT 1 \gset
SELECT m.moved, replace(m.detail, :'op_to', 'eX') AS detail
  FROM destor.move_shards(:'op_from', :'op_to') m WHERE m.object_id = :'op_obj'::uuid;
SELECT bool_and(compliant) AS compliant_after_moves
  FROM destor.placement_report WHERE pool = 'europe';

-- the rules change: Europe without Switzerland, two per operator allowed.
-- Objects with shards in CH now break them; rebalance moves those shards.
ALTER SERVER europe OPTIONS (SET allowed_geo 'EU', SET max_shards_per_geo '4', SET max_shards_per_operator '2');
SELECT count(*) > 0 AS some_broken,
       bool_and(broken_rule LIKE '%outside allowed_geo ''EU''') AS rule_named
  FROM destor.placement_report WHERE pool = 'europe' AND NOT compliant;
SELECT count(*) FILTER (WHERE moved) > 0 AS moved_some, count(*) FILTER (WHERE NOT moved) AS refused
  FROM destor.rebalance('europe');
SELECT objects, compliant_objects = objects AS all_compliant, shards_per_geo ? 'CH' AS ch_used
  FROM destor.placement_summary WHERE pool = 'europe';
SELECT bool_and(md5(destor.blob_get(p.b)) = e.h) AS intact FROM pl_blobs p JOIN pl_expected e USING (i);
SELECT count(*), sum(length(v)) FROM pl_rows;
SELECT count(*) AS problems FROM destor.repair('europe');
-- a second rebalance has nothing to do
SELECT count(*) AS moves_when_compliant FROM destor.rebalance('europe');
-- and a rule no object can meet is refused, leaving the pool as it was
ALTER SERVER europe OPTIONS (SET max_shards_per_operator '1');

-- cheapest first: the three cheapest eligible providers (u1, u2 are
-- cheaper but outside allowed_geo)
CREATE SERVER thrifty FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'e4,e3,e2,e1,c1,c2,u1,u2', data_shards '2', parity_shards '1',
           allowed_geo 'EU,CH', placement 'cheapest');
SELECT destor.blob_put('thrifty', convert_to(repeat('cheap ' || i, 1000), 'UTF8')) IS NOT NULL AS written
  FROM generate_series(1, 5) i;
SELECT array_agg(DISTINCT s.provider ORDER BY s.provider) AS used
  FROM destor.shards s JOIN destor.objects o USING (object_id) WHERE o.pool = 'thrifty';
-- fastest: writes and keeps the rules
CREATE SERVER quick FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'e1,e2,e3,e4,c1,c2', data_shards '2', parity_shards '1', placement 'fastest',
           max_shards_per_operator '1');
SELECT md5(destor.blob_get(destor.blob_put('quick', 'fast bytes'::bytea))) = md5('fast bytes'::bytea) AS round_trip;
SELECT bool_and(compliant) AS quick_compliant FROM destor.placement_report WHERE pool = 'quick';

-- a provider re-tagged after the fact: writes refuse to break the rules
ALTER SERVER c1 OPTIONS (SET geo 'US');
ALTER SERVER c2 OPTIONS (SET geo 'US');
ALTER SERVER e1 OPTIONS (SET geo 'US');
ALTER SERVER e2 OPTIONS (SET geo 'US');
SELECT destor.blob_put('thrifty', 'no room'::bytea);
SELECT count(*) FILTER (WHERE NOT compliant) > 0 AS reported FROM destor.placement_report WHERE pool = 'thrifty';
ALTER SERVER c1 OPTIONS (SET geo 'CH');
ALTER SERVER c2 OPTIONS (SET geo 'CH');
ALTER SERVER e1 OPTIONS (SET geo 'EU');
ALTER SERVER e2 OPTIONS (SET geo 'EU');
SELECT md5(destor.blob_get(destor.blob_put('thrifty', 'room again'::bytea))) = md5('room again'::bytea) AS writes_again;

-- a price change: rebalance moves a 'cheapest' pool's objects to the
-- providers that now cost least, byte for byte
CREATE TABLE pl_thrifty AS
  SELECT b.blob_id, md5(destor.blob_get(b.blob_id::text::destor.blob)) AS h
    FROM destor.blobs b JOIN destor.objects o ON o.object_id = b.blob_id WHERE o.pool = 'thrifty';
ALTER SERVER e4 OPTIONS (SET cost_per_gb_month '0.001');
ALTER SERVER e3 OPTIONS (SET cost_per_gb_month '0.002');
SELECT count(*) FILTER (WHERE moved) > 0 AS moved_to_cheaper, count(*) FILTER (WHERE NOT moved) AS refused
  FROM destor.rebalance('thrifty');
SELECT array_agg(DISTINCT s.provider ORDER BY s.provider) AS used
  FROM destor.shards s JOIN destor.objects o USING (object_id) WHERE o.pool = 'thrifty';
SELECT bool_and(md5(destor.blob_get(blob_id::text::destor.blob)) = h) AS intact FROM pl_thrifty;
SELECT count(*) AS moves_when_cheapest FROM destor.rebalance('thrifty');
DROP TABLE pl_thrifty;

-- a role that may see nothing sees no rows
CREATE ROLE pl_nobody;
SET ROLE pl_nobody;
SELECT count(*) AS visible FROM destor.placement_report;
RESET ROLE;
DROP ROLE pl_nobody;


-- rebalance in short transactions: max_moves caps each call, and the next
-- call carries on from where the last one left the objects
ALTER SERVER europe OPTIONS (SET allowed_geo 'EU,CH', SET max_shards_per_geo '2', SET max_shards_per_operator '1');
SELECT count(*) > 0 AS broken_again FROM destor.placement_report WHERE pool = 'europe' AND NOT compliant;
SELECT count(*) FILTER (WHERE moved) AS moved_in_first_call FROM destor.rebalance('europe', max_moves => 2);
SELECT count(*) FILTER (WHERE moved) <= 2 AS capped FROM destor.rebalance('europe', 2);
DO $$
BEGIN
  -- each call its own transaction in real use; here, until nothing is left
  FOR i IN 1..100 LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM destor.rebalance('europe', 3) WHERE moved);
  END LOOP;
END $$;
SELECT bool_and(compliant) AS compliant_after_short_calls FROM destor.placement_report WHERE pool = 'europe';
SELECT bool_and(md5(destor.blob_get(p.b)) = e.h) AS intact_after_short_calls
  FROM pl_blobs p JOIN pl_expected e USING (i);
SELECT * FROM destor.rebalance('europe', 0);
SELECT * FROM destor.rebalance(NULL);

DROP FOREIGN TABLE pl_rows;
DROP TABLE pl_blobs, pl_expected;
