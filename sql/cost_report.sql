\i test/regress/setup.sql
-- the shards of blobs of their own: small blobs stay unpacked here (blob_pack.sql)
SET destor.blob_pack_threshold = 0;
-- Cost (issue 13 item 6): provider options cost_per_request and
-- egress_per_gb; storage_report's request and egress costs since the
-- statistics were reset and its monthly estimate; cost_report per table
-- and pool; placement_cost per placement mode.  Every figure is checked
-- against one computed here from destor.shards, the servers' options and
-- provider_stats(), not against numbers written down.
\getenv dir DESTOR_REGRESS_DIR
\set VERBOSITY default
\set mk 'cat > /dev/null; cd ' :dir ' && rm -rf cost && mkdir -p cost/cr1 cost/cr2 cost/cr3 cost/cr4'
COPY (SELECT 1) TO PROGRAM :'mk';
\set cr1 :dir '/cost/cr1'
\set cr2 :dir '/cost/cr2'
\set cr3 :dir '/cost/cr3'
\set cr4 :dir '/cost/cr4'
CREATE SERVER cr1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'cr1', geo 'EU',
  cost_per_gb_month '0.010', cost_per_request '0.001', egress_per_gb '0.5');
CREATE SERVER cr2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'cr2', geo 'EU',
  cost_per_gb_month '0.020', cost_per_request '0.002', egress_per_gb '1');
CREATE SERVER cr3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'cr3', geo 'CH',
  cost_per_gb_month '0.040');
CREATE SERVER cr4 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'cr4', geo 'US',
  cost_per_gb_month '5e-3', cost_per_request '0.0005', egress_per_gb '2.5');
CREATE SERVER costpool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'cr1, CR2,"cr3",cr4', data_shards '2', parity_shards '1');
CREATE SERVER costeu FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'cr1,cr2,cr3,cr4', data_shards '2', parity_shards '1', allowed_geo 'EU, CH');
-- prices are options like any other: ALTER changes them
ALTER SERVER cr3 OPTIONS (ADD egress_per_gb '0.25');
ALTER SERVER cr3 OPTIONS (SET egress_per_gb '-1');

SELECT destor.provider_stats_reset();
CREATE TABLE cost_blobs AS
  SELECT i, destor.blob_put('costpool', noise(20000 + 1000 * i, i)) AS b FROM generate_series(1, 6) i;
CREATE FOREIGN TABLE cost_rows (id int, v text) SERVER costpool OPTIONS (segment_rows '1000', row_group_rows '500');
INSERT INTO cost_rows SELECT g, md5(g::text) FROM generate_series(1, 2500) g;
-- reads: egress
SELECT sum(length(destor.blob_get(b))) = sum(20000 + 1000 * i) AS read_back FROM cost_blobs;
SELECT count(*), count(DISTINCT v) FROM cost_rows;

-- the prices, read here independently of the views
CREATE TEMP VIEW cost_prices AS
  SELECT s.srvname AS provider, s.oid AS serverid,
         coalesce(max(split_part(o, '=', 2)::numeric) FILTER (WHERE split_part(o, '=', 1) = 'cost_per_gb_month'), 0) AS gb_month,
         coalesce(max(split_part(o, '=', 2)::numeric) FILTER (WHERE split_part(o, '=', 1) = 'cost_per_request'), 0) AS req,
         coalesce(max(split_part(o, '=', 2)::numeric) FILTER (WHERE split_part(o, '=', 1) = 'egress_per_gb'), 0) AS egress
    FROM pg_foreign_server s, unnest(s.srvoptions) o
   WHERE s.srvname IN ('cr1', 'cr2', 'cr3', 'cr4') GROUP BY 1, 2;
SELECT provider, gb_month, req, egress FROM cost_prices ORDER BY 1;

-- storage_report: one row per owner and provider; every figure as
-- computed from the shards (cr1..cr4 hold only costpool's objects, so a
-- row's share of a provider's requests is its share of its bytes)
CREATE TEMP VIEW cost_expected AS
  WITH sh AS (
    SELECT CASE WHEN EXISTS (SELECT FROM destor.blobs bl WHERE bl.blob_id = s.object_id)
                THEN 'blobs' ELSE 'table' END AS kind, s.provider, s.size
      FROM destor.shards s JOIN destor.objects o USING (object_id) WHERE o.pool = 'costpool'
  ), rows AS (
    SELECT kind, provider, sum(size) AS bytes FROM sh GROUP BY 1, 2
  ), tot AS (
    SELECT provider, sum(size) AS bytes FROM sh GROUP BY 1
  )
  SELECT r.kind, r.provider, r.bytes,
         r.bytes / 1e9 * p.gb_month AS storage,
         st.requests::numeric * r.bytes / t.bytes AS requests,
         st.bytes_read::numeric * r.bytes / t.bytes AS egress_bytes,
         st.requests::numeric * r.bytes / t.bytes * p.req AS request_cost,
         st.bytes_read::numeric * r.bytes / t.bytes / 1e9 * p.egress AS egress_cost
    FROM rows r JOIN tot t USING (provider) JOIN cost_prices p USING (provider)
    JOIN destor.provider_stats() st ON st.serverid = p.serverid;
SELECT count(*) = (SELECT count(*) FROM cost_expected) AND count(*) >= 6 AS rows, count(DISTINCT e.provider) AS providers,
       bool_and(r.stored_bytes = e.bytes) AS bytes_match,
       bool_and(abs(r.monthly_cost - e.storage) < 1e-6) AS storage_cost_matches,
       bool_and(abs(r.requests_since_reset - e.requests) < 1e-3) AS requests_match,
       bool_and(abs(r.egress_bytes_since_reset - e.egress_bytes) <= 0.5) AS egress_matches,
       bool_and(abs(r.request_cost - e.request_cost) < 1e-6) AS request_cost_matches,
       bool_and(abs(r.egress_cost - e.egress_cost) < 1e-6) AS egress_cost_matches,
       bool_and(r.monthly_estimate = r.monthly_cost + r.request_cost + r.egress_cost) AS estimate_adds_up,
       bool_and(r.request_cost > 0) FILTER (WHERE e.provider <> 'cr3') AS requests_priced,
       bool_and(r.request_cost = 0) FILTER (WHERE e.provider = 'cr3') AS unpriced_requests_free
  FROM destor.storage_report r
  FULL JOIN cost_expected e ON e.kind = r.kind AND e.provider = r.provider
 WHERE r.pool = 'costpool' OR e.provider IS NOT NULL;
-- every request and byte read of cr1..cr4 is charged to some row.  Every
-- provider was written to; reads came from at least k = 2 of them (which
-- ones depends on their measured speed: a provider slow under load is
-- read around, and may serve none)
SELECT bool_and(abs(r.requests - st.requests) <= 2e-3) AS all_requests_charged,
       bool_and(abs(r.egress - st.bytes_read) <= 2) AS all_egress_charged,
       bool_and(st.requests > 0) AND count(*) FILTER (WHERE st.bytes_read > 0) >= 2 AS activity_seen
  FROM (SELECT provider, sum(requests_since_reset) AS requests, sum(egress_bytes_since_reset) AS egress
          FROM destor.storage_report WHERE pool = 'costpool' GROUP BY 1) r
  JOIN cost_prices p USING (provider) JOIN destor.provider_stats() st ON st.serverid = p.serverid;

-- cost_report: per table (and blob set) and per pool
SELECT c.kind, c.name, c.stored_bytes = e.bytes AS bytes_match,
       abs(c.storage_cost - e.storage) < 1e-5 AS storage_matches,
       abs(c.request_cost - e.request_cost) < 1e-5 AS requests_match,
       abs(c.egress_cost - e.egress_cost) < 1e-5 AS egress_matches,
       c.monthly_estimate = c.storage_cost + c.request_cost + c.egress_cost AS adds_up
  FROM destor.cost_report c
  JOIN (SELECT kind, sum(bytes) AS bytes, sum(storage) AS storage, sum(request_cost) AS request_cost,
               sum(egress_cost) AS egress_cost
          FROM cost_expected GROUP BY GROUPING SETS ((kind), ())) e
    ON e.kind IS NOT DISTINCT FROM c.kind
 WHERE c.pool = 'costpool'
 ORDER BY c.kind NULLS LAST;

-- placement_cost: each mode's providers and monthly storage cost, computed
-- here per object from its stored bytes and its data + parity shards
CREATE TEMP VIEW cost_modes AS
  WITH obj AS (
    SELECT o.object_id, o.data_shards + o.parity_shards AS n, sum(s.size) AS bytes,
           sum(s.size * p.gb_month) AS cost_bytes
      FROM destor.objects o JOIN destor.shards s USING (object_id)
      JOIN cost_prices p ON p.provider = s.provider
     WHERE o.pool = 'costpool' GROUP BY 1, 2
  ), ranked AS (
    SELECT p.provider, p.gb_month,
           row_number() OVER (ORDER BY p.gb_month, p.provider) AS by_price,
           row_number() OVER (ORDER BY st.latency_p50_ms NULLS LAST, p.provider) AS by_speed
      FROM cost_prices p LEFT JOIN destor.provider_stats() st ON st.serverid = p.serverid
  )
  SELECT 'current' AS placement, (SELECT sum(cost_bytes) FROM obj) / 1e9 AS cost
  UNION ALL
  -- spread rotates by object id: each object on some 3 of the 4; fastest
  -- goes by each provider's recent reads as placement sees them: both lie
  -- between the cheapest and the dearest 3 (checked as a range below, in
  -- placement_cost's 6 decimals: when the fastest 3 are the dearest, the
  -- rounded cost may round up past the unrounded bound)
  SELECT 'spread', NULL
  UNION ALL
  SELECT 'cheapest', (SELECT sum(bytes * (SELECT avg(gb_month) FROM ranked WHERE by_price <= n)) FROM obj) / 1e9
  UNION ALL
  SELECT 'fastest', NULL;
SELECT c.placement, c.is_pool_mode, c.objects = (SELECT count(*) FROM destor.objects WHERE pool = 'costpool') AS all_objects,
       CASE WHEN m.cost IS NOT NULL THEN abs(c.monthly_cost - m.cost) < 1e-6
            ELSE c.monthly_cost >= (SELECT monthly_cost FROM destor.placement_cost('costpool')
                                     WHERE placement = 'cheapest')
             AND c.monthly_cost <= round((SELECT sum(bytes * (SELECT avg(gb_month) FROM (
                                      SELECT gb_month FROM cost_prices ORDER BY gb_month DESC LIMIT 3) d)) / 1e9
                                      FROM (SELECT sum(s.size) AS bytes FROM destor.shards s JOIN destor.objects ob
                                            USING (object_id) WHERE ob.pool = 'costpool' GROUP BY object_id) o), 6)
       END AS cost_matches, c.monthly_cost > 0 AS priced,
       CASE c.placement WHEN 'fastest' THEN cardinality(c.providers)::text ELSE c.providers::text END AS providers
  FROM destor.placement_cost('costpool') c JOIN cost_modes m USING (placement);
-- cheapest is the cheapest mode, and storage_report prices what is there now
SELECT (SELECT monthly_cost FROM destor.placement_cost('costpool') WHERE placement = 'cheapest')
         = (SELECT min(monthly_cost) FROM destor.placement_cost('costpool')) AS cheapest_is_cheapest,
       abs((SELECT monthly_cost FROM destor.placement_cost('costpool') WHERE placement = 'current')
           - (SELECT storage_cost FROM destor.cost_report WHERE pool = 'costpool' AND kind IS NULL)) < 1e-5
         AS current_is_storage_report;
-- the pool's own mode follows its option; allowed_geo narrows the choice
ALTER SERVER costpool OPTIONS (ADD placement 'cheapest');
SELECT placement FROM destor.placement_cost('costpool') WHERE is_pool_mode;
SELECT placement, is_pool_mode, objects, monthly_cost, providers FROM destor.placement_cost('costeu')
 WHERE placement <> 'fastest';
-- not a pool: nothing
SELECT count(*) FROM destor.placement_cost('cr1');
-- the caps are applied: one shard per geo of EU, CH, US forces the dear CH
-- provider into every placement, and cheapest takes EU's cheaper one
CREATE SERVER costcap FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'cr1,cr2,cr3,cr4', data_shards '2', parity_shards '1', max_shards_per_geo '1');
CREATE TABLE cost_capped AS
  SELECT destor.blob_put('costcap', convert_to(repeat('capped ' || g, 3000), 'UTF8')) AS b
    FROM generate_series(1, 12) g;
-- (placement_mode_cost: the unrounded bytes x price behind placement_cost)
WITH shard_bytes AS (
  SELECT sum(s.size) / 3 AS per_provider FROM destor.shards s JOIN destor.objects o USING (object_id)
   WHERE o.pool = 'costcap')
SELECT m.mode,
       CASE WHEN m.mode = 'cheapest' THEN
         abs(destor.placement_mode_cost('costcap', m.mode) / (per_provider * (0.010 + 0.040 + 0.005)) - 1) < 1e-9
       END AS cheapest_with_caps,
       destor.placement_mode_cost('costcap', m.mode) BETWEEN per_provider * (0.010 + 0.040 + 0.005) * (1 - 1e-9)
                                                    AND per_provider * (0.020 + 0.040 + 0.005) * (1 + 1e-9)
         AS within_capped_range
  FROM shard_bytes, (VALUES ('spread'), ('cheapest'), ('fastest')) m(mode) ORDER BY 1;
SELECT destor.placement_mode_cost('costcap', 'nearest');

-- like storage_report, the cost views show every role's data: superusers only
SET ROLE regress_destor_user;
SELECT count(*) FROM destor.cost_report;
SELECT count(*) FROM destor.placement_cost('costpool');
RESET ROLE;

DROP FOREIGN TABLE cost_rows;
DROP TABLE cost_blobs;
SELECT count(destor.blob_delete(b)) FROM cost_capped;
DROP TABLE cost_capped;
DROP SERVER costcap;
