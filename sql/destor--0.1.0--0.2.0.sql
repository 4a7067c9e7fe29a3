-- destor 0.1.0 -> 0.2.0 (ALTER EXTENSION destor UPDATE).  A fresh install
-- runs destor--0.2.0.sql instead; TAP 050 checks that both give the same
-- catalog.
\echo Use "ALTER EXTENSION destor UPDATE TO '0.2.0'" to load this file. \quit

-- Blob owners by role: a regrole is an oid in the table and a name in a dump.
DROP VIEW blob_shards;
ALTER TABLE blobs ALTER COLUMN owner TYPE regrole USING owner::regrole;
CREATE VIEW blob_shards WITH (security_barrier) AS
  SELECT b.blob_id, s.shard_index,
         CASE WHEN s.shard_index < o.data_shards THEN 'data' ELSE 'parity' END AS kind,
         s.provider, s.state, s.size
    FROM blobs b JOIN objects o ON o.object_id = b.blob_id
    JOIN shards s ON s.object_id = b.blob_id
   WHERE pg_catalog.pg_has_role(b.owner, 'USAGE');
GRANT SELECT ON blob_shards TO PUBLIC;

-- Table identity bound to relations (see src/table/table_options.c).
CREATE FUNCTION bind_table(tbl regclass) RETURNS void
  AS 'MODULE_PATHNAME', 'destor_bind_table' LANGUAGE C STRICT;
-- pg_temp last: a caller's temporary table must not stand in for a catalog
ALTER FUNCTION on_drop_foreign_table() SET search_path = pg_catalog, pg_temp;
DROP EVENT TRIGGER destor_create_foreign_table;
CREATE OR REPLACE FUNCTION on_create_foreign_table() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cmd record;
  id text;
BEGIN
  FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
             WHERE object_type = 'foreign table' LOOP
    CONTINUE WHEN NOT EXISTS (
      SELECT FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver
        JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
       WHERE ft.ftrelid = cmd.objid AND w.fdwname = 'destor');
    IF cmd.command_tag = 'CREATE FOREIGN TABLE' THEN
      SELECT substr(o, 10) INTO id FROM pg_foreign_table ft, unnest(ft.ftoptions) o
       WHERE ft.ftrelid = cmd.objid AND o LIKE 'table_id=%';
      IF id IS NULL THEN
        EXECUTE format('ALTER FOREIGN TABLE %s OPTIONS (ADD table_id %L)', cmd.objid::regclass,
                       gen_random_uuid());
      END IF;
    END IF;
    PERFORM destor.bind_table(cmd.objid::regclass);
  END LOOP;
END $$;
CREATE EVENT TRIGGER destor_create_foreign_table ON ddl_command_end
  WHEN TAG IN ('CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'ALTER TABLE')
  EXECUTE FUNCTION on_create_foreign_table();

-- Views granted to PUBLIC show only what the caller may see.
CREATE OR REPLACE VIEW tiered_partitions WITH (security_barrier) AS
  SELECT i.inhparent::regclass AS parent, c.oid::regclass AS partition,
         pg_get_expr(c.relpartbound, c.oid) AS bound, s.srvname AS pool,
         (SELECT count(*) FROM destor.segments g WHERE g.table_id = t.table_id) AS segments,
         (SELECT coalesce(sum(g.row_count), 0) FROM destor.segments g
           WHERE g.table_id = t.table_id)::bigint AS stored_rows
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid AND c.relispartition
    JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
    JOIN pg_foreign_server s ON s.oid = ft.ftserver
    JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw AND w.fdwname = 'destor'
    LEFT JOIN destor.tables t ON t.relid = c.oid
   WHERE pg_catalog.has_table_privilege(c.oid, 'SELECT');

-- Provider health: retries, answers cut short, the last check_provider().
CREATE FUNCTION provider_health(OUT serverid oid, OUT retries bigint, OUT short_bodies bigint,
    OUT last_check timestamptz, OUT last_check_ok boolean, OUT bad_chunks bigint,
    OUT last_bad_chunk timestamptz)
  RETURNS SETOF record AS 'MODULE_PATHNAME', 'destor_provider_health' LANGUAGE C STRICT;
CREATE OR REPLACE VIEW provider_status WITH (security_barrier) AS
  SELECT s.srvname AS provider,
         (SELECT substr(o, 6) FROM unnest(s.srvoptions) o WHERE o LIKE 'type=%') AS type,
         (SELECT substr(o, 5) FROM unnest(s.srvoptions) o WHERE o LIKE 'geo=%') AS geo,
         coalesce(st.state, 'unknown') AS state, st.last_error,
         coalesce(st.requests, 0) AS requests, coalesce(st.errors, 0) AS errors,
         coalesce(st.bytes_read, 0) AS bytes_read, coalesce(st.bytes_written, 0) AS bytes_written,
         st.latency_p50_ms, st.latency_p99_ms, st.last_success,
         coalesce(h.retries, 0) AS retries, coalesce(h.short_bodies, 0) AS short_bodies,
         h.last_check, h.last_check_ok,
         coalesce(h.bad_chunks, 0) AS bad_chunks, h.last_bad_chunk
    FROM pg_foreign_server s
    JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw AND w.fdwname = 'destor_provider'
    LEFT JOIN provider_stats() st ON st.serverid = s.oid
    LEFT JOIN provider_health() h ON h.serverid = s.oid;

-- No identity on the providers is given here: objects written under 0.1.0
-- are not under any namespace, and a database upgraded from it keeps
-- counting every object as its own (see README, Guarantees).

-- Policies name tables and pools: a role sees only those of tables it may
-- read (superusers, who write them, see all).
ALTER TABLE tiering_policies ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable_parents ON tiering_policies FOR SELECT
  USING (pg_catalog.has_table_privilege(parent, 'SELECT'));

-- Progress of long commands, like pg_stat_progress_copy (src/progress/).
CREATE FUNCTION progress_report(OUT pid int, OUT datid oid, OUT command text, OUT relid oid,
    OUT target text, OUT phase text, OUT bytes_done bigint, OUT bytes_total bigint,
    OUT objects_done bigint, OUT objects_total bigint, OUT started timestamptz, OUT userid oid)
  RETURNS SETOF record AS 'MODULE_PATHNAME', 'destor_progress_report' LANGUAGE C STRICT VOLATILE;
CREATE VIEW progress AS
  SELECT p.pid, p.datid, d.datname, p.command, p.relid, p.target, p.phase,
         p.bytes_done, p.bytes_total, p.objects_done, p.objects_total, p.started,
         p.userid::regrole AS usename
    FROM progress_report() p LEFT JOIN pg_database d ON d.oid = p.datid;
GRANT SELECT ON progress TO PUBLIC;

-- Placement you can prove (src/object/placement.c): the rule an object's
-- shards break, judged by the code that places new objects; NULL when the
-- object keeps every rule of its pool.
CREATE FUNCTION placement_violation(pool name, providers name[]) RETURNS text
  AS 'MODULE_PATHNAME', 'destor_placement_violation' LANGUAGE C STABLE STRICT;

-- A provider's tag (option geo, operator, ...), NULL when not set.
CREATE FUNCTION provider_tag(provider name, tag text) RETURNS text
  LANGUAGE sql STABLE STRICT
  AS $$ SELECT pg_catalog.substr(o, pg_catalog.length(tag) + 2)
          FROM pg_catalog.pg_foreign_server fs, pg_catalog.unnest(fs.srvoptions) o
         WHERE fs.srvname = provider AND o OPERATOR(pg_catalog.~~) (tag OPERATOR(pg_catalog.||) '=%') $$;

-- One row per object a role may see (its tables' segments, its blobs; all
-- for pg_read_all_stats): compliant or the rule broken, shards per geo
-- and per operator.
CREATE VIEW placement_report WITH (security_barrier) AS
  WITH owned AS (
    SELECT o.object_id, o.pool, 'table'::text AS kind,
           coalesce(t.relid::regclass::text, s.table_id::text) AS name
      FROM objects o JOIN segments s ON s.object_id = o.object_id
      LEFT JOIN tables t ON t.table_id = s.table_id
     WHERE pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
        OR (t.relid IS NOT NULL
            AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = t.relid)
            AND pg_catalog.has_table_privilege(t.relid, 'SELECT'))
    UNION ALL
    SELECT o.object_id, o.pool, 'blob', b.blob_id::text
      FROM objects o JOIN blobs b ON b.blob_id = o.object_id
     WHERE pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
        OR pg_catalog.pg_has_role(b.owner, 'USAGE')
  ), placed AS (
    -- every object, also one whose shard rows are missing: the report
    -- proves nothing it cannot see
    SELECT ow.object_id, ow.pool, ow.kind, ow.name,
           pg_catalog.array_agg(sh.provider ORDER BY sh.shard_index)
             FILTER (WHERE sh.provider IS NOT NULL) AS providers,
           count(sh.shard_index) AS recorded, o.data_shards + o.parity_shards AS shards
      FROM owned ow JOIN objects o ON o.object_id = ow.object_id
      LEFT JOIN shards sh ON sh.object_id = ow.object_id
     GROUP BY 1, 2, 3, 4, o.data_shards, o.parity_shards
  )
  SELECT p.pool, p.kind, p.name, p.object_id, p.providers,
         v.rule IS NULL AS compliant, v.rule AS broken_rule,
         (SELECT pg_catalog.jsonb_object_agg(g, n) FROM (
            SELECT coalesce(provider_tag(x, 'geo'), '(untagged)') AS g, count(*) AS n
              FROM pg_catalog.unnest(p.providers) x GROUP BY 1) q) AS shards_per_geo,
         (SELECT pg_catalog.jsonb_object_agg(g, n) FROM (
            SELECT coalesce(provider_tag(x, 'operator'), '(untagged)') AS g, count(*) AS n
              FROM pg_catalog.unnest(p.providers) x GROUP BY 1) q) AS shards_per_operator
    FROM placed p, LATERAL (
      SELECT CASE WHEN p.recorded < p.shards
                  THEN pg_catalog.format('%s of its %s shards have no provider recorded',
                                         p.shards - p.recorded, p.shards)
                  ELSE placement_violation(p.pool, p.providers) END AS rule) v;
GRANT SELECT ON placement_report TO PUBLIC;

-- Per pool: how many of the objects placement_report shows keep the rules,
-- and where their shards are.
CREATE VIEW placement_summary AS
  WITH r AS (SELECT * FROM placement_report),
  g AS (SELECT r.pool, e.key, sum(e.value::bigint) AS n
          FROM r, pg_catalog.jsonb_each_text(r.shards_per_geo) e GROUP BY 1, 2),
  op AS (SELECT r.pool, e.key, sum(e.value::bigint) AS n
           FROM r, pg_catalog.jsonb_each_text(r.shards_per_operator) e GROUP BY 1, 2)
  SELECT c.pool, c.objects, c.compliant_objects, c.objects - c.compliant_objects AS noncompliant_objects,
         (SELECT pg_catalog.jsonb_object_agg(g.key, g.n) FROM g WHERE g.pool = c.pool) AS shards_per_geo,
         (SELECT pg_catalog.jsonb_object_agg(op.key, op.n) FROM op WHERE op.pool = c.pool) AS shards_per_operator
    FROM (SELECT pool, count(*) AS objects, count(*) FILTER (WHERE compliant) AS compliant_objects
            FROM r GROUP BY pool) c;
GRANT SELECT ON placement_summary TO PUBLIC;
-- Each backend caches blob metadata (owner, key, geometry, placement) for
-- small reads (issue 11, src/blob/blob.c); any change of these tables
-- empties every backend's cache, transactionally, like a catalog change.
CREATE FUNCTION blob_meta_invalidate() RETURNS trigger
  AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE TRIGGER blob_meta_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON blobs
  FOR EACH STATEMENT EXECUTE FUNCTION blob_meta_invalidate();
CREATE TRIGGER blob_meta_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON objects
  FOR EACH STATEMENT EXECUTE FUNCTION blob_meta_invalidate();
CREATE TRIGGER blob_meta_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON shards
  FOR EACH STATEMENT EXECUTE FUNCTION blob_meta_invalidate();

-- rebalance(pool, max_moves): at most that many moves a call, so a long
-- rebalance can run as many short transactions, each keeping its moves.
DROP FUNCTION rebalance(name);
CREATE FUNCTION rebalance(pool name, max_moves integer DEFAULT NULL)
  RETURNS TABLE (object_id uuid, shard_index integer, from_provider name, to_provider name,
                 moved boolean, detail text)
  AS 'MODULE_PATHNAME', 'destor_rebalance' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION rebalance(name, integer) FROM PUBLIC;

-- storage_report (issue 13 item 6) gains request and egress costs, columns
-- appended, so CREATE OR REPLACE keeps the old ones.
-- Where the bytes are and what they cost: per pool and per table or blob
-- set, per provider (parity included).  monthly_cost prices the stored
-- bytes at the provider's cost_per_gb_month (1 GB = 1e9 bytes).  The
-- columns after it come from provider_stats(), kept in shared memory since
-- the server started or provider_stats_reset() was last called (there is
-- no month boundary there): the provider's requests and bytes read
-- (egress) in that period, attributed to each row in proportion to its
-- share of the bytes the provider stores, and priced at cost_per_request
-- and egress_per_gb.  monthly_estimate adds the three costs: read it as
-- "a month like the period since the last reset".  cost_report sums them
-- per table and per pool.
CREATE OR REPLACE VIEW storage_report AS
  WITH owners AS (
    SELECT o.object_id, o.pool, 'table'::text AS kind,
           coalesce(t.relid::regclass::text, s.table_id::text) AS name, o.size
      FROM objects o JOIN segments s ON s.object_id = o.object_id
      LEFT JOIN tables t ON t.table_id = s.table_id
    UNION ALL
    SELECT o.object_id, o.pool, 'blobs', 'blobs', o.size
      FROM objects o JOIN blobs b ON b.blob_id = o.object_id
  ), per_provider AS (
    SELECT ow.pool, ow.kind, ow.name, sh.provider, count(DISTINCT ow.object_id) AS objects,
           sum(sh.size) AS stored_bytes
      FROM owners ow JOIN shards sh ON sh.object_id = ow.object_id
     GROUP BY 1, 2, 3, 4
  ), logical AS (
    SELECT pool, kind, name, count(*) AS objects, sum(size) AS logical_bytes
      FROM owners GROUP BY 1, 2, 3
  ), activity AS (
    -- each provider's requests (each retry is one more, billed too) and
    -- egress since the last reset, and the share of them a row of
    -- per_provider is charged: its stored bytes over all the bytes the
    -- provider stores
    SELECT fs.srvname AS provider, coalesce(st.requests, 0) + coalesce(h.retries, 0) AS requests,
           coalesce(st.bytes_read, 0) AS bytes_read,
           (SELECT sum(sh.size) FROM shards sh WHERE sh.provider = fs.srvname) AS provider_bytes,
           coalesce((SELECT substr(o, 18)::float8::numeric FROM unnest(fs.srvoptions) o
                      WHERE o LIKE 'cost_per_request=%'), 0) AS per_request,
           coalesce((SELECT substr(o, 15)::float8::numeric FROM unnest(fs.srvoptions) o
                      WHERE o LIKE 'egress_per_gb=%'), 0) AS per_egress_gb
      FROM pg_foreign_server fs
      JOIN pg_foreign_data_wrapper w ON w.oid = fs.srvfdw AND w.fdwname = 'destor_provider'
      LEFT JOIN provider_stats() st ON st.serverid = fs.oid
      LEFT JOIN provider_health() h ON h.serverid = fs.oid
  ), priced AS (
    SELECT p.pool, p.kind, p.name, l.objects, l.logical_bytes, p.provider, p.stored_bytes,
           round(sum(p.stored_bytes) OVER (PARTITION BY p.pool, p.kind, p.name)::numeric
                 / nullif(l.logical_bytes, 0), 3) AS overhead_ratio,
           round(p.stored_bytes / 1e9 * coalesce(
             (SELECT substr(o, 19)::float8::numeric FROM pg_foreign_server fs, unnest(fs.srvoptions) o
               WHERE fs.srvname = p.provider AND o LIKE 'cost_per_gb_month=%'), 0), 6)
             AS monthly_cost,
           coalesce(a.requests * p.stored_bytes / nullif(a.provider_bytes, 0), 0) AS requests,
           coalesce(a.bytes_read * p.stored_bytes / nullif(a.provider_bytes, 0), 0) AS egress,
           a.per_request, a.per_egress_gb
      FROM per_provider p JOIN logical l USING (pool, kind, name)
      LEFT JOIN activity a ON a.provider = p.provider
  )
  SELECT pool, kind, name, objects, logical_bytes, provider, stored_bytes, overhead_ratio,
         monthly_cost,
         round(requests, 3) AS requests_since_reset,
         round(egress) AS egress_bytes_since_reset,
         round(requests * coalesce(per_request, 0), 6) AS request_cost,
         round(egress / 1e9 * coalesce(per_egress_gb, 0), 6) AS egress_cost,
         monthly_cost + round(requests * coalesce(per_request, 0), 6)
           + round(egress / 1e9 * coalesce(per_egress_gb, 0), 6) AS monthly_estimate
    FROM priced;

COMMENT ON COLUMN storage_report.requests_since_reset IS
  'requests to the provider since the server started or provider_stats_reset(), this row''s share by stored bytes';
COMMENT ON COLUMN storage_report.egress_bytes_since_reset IS
  'bytes read from the provider since the server started or provider_stats_reset(), this row''s share by stored bytes';


-- Cost (issue 13 item 6): per table and pool, and per placement mode.
-- The monthly estimate per table or blob set (kind and name set) and per
-- pool (kind and name NULL): storage_report's rows summed over providers.
CREATE VIEW cost_report AS
  SELECT pool, kind, name, sum(stored_bytes) AS stored_bytes,
         sum(monthly_cost) AS storage_cost, sum(request_cost) AS request_cost,
         sum(egress_cost) AS egress_cost, sum(monthly_estimate) AS monthly_estimate
    FROM storage_report
   GROUP BY GROUPING SETS ((pool, kind, name), (pool));

-- What a pool's stored bytes would cost a month under each placement mode
-- (option placement), next to what they cost where they are now.  For each
-- mode every object is placed afresh by the rules rebalance follows —
-- allowed_geo, max_shards_per_geo, max_shards_per_operator, and the mode's
-- order (spread: rotation by object id; cheapest: cost_per_gb_month;
-- fastest: recent read latency) — and priced at its providers'
-- cost_per_gb_month (placement_mode_cost, C); NULL when the rules leave
-- some object no placement.  providers: the eligible providers (listed,
-- tagged with one of allowed_geo if set) in the mode's order (for cheapest
-- and fastest the first data_shards + parity_shards of the pool's widest
-- object; ties by name).  One row per mode, and one 'current' row;
-- is_pool_mode marks the pool's own mode.  A name that is not a pool gives
-- no rows.
CREATE FUNCTION placement_mode_cost(pool name, mode text) RETURNS numeric
  AS 'MODULE_PATHNAME', 'destor_placement_mode_cost' LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION placement_mode_cost(name, text) FROM PUBLIC;
CREATE FUNCTION placement_cost(pool name)
  RETURNS TABLE (placement text, is_pool_mode boolean, objects bigint, stored_bytes numeric,
                 providers name[], monthly_cost numeric)
  LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, destor, pg_temp
  AS $$
  WITH opts AS (
    SELECT (SELECT substr(o, 11) FROM unnest(fs.srvoptions) o WHERE o LIKE 'providers=%') AS providers,
           (SELECT substr(o, 13) FROM unnest(fs.srvoptions) o WHERE o LIKE 'allowed_geo=%') AS allowed_geo,
           coalesce((SELECT lower(trim(substr(o, 11))) FROM unnest(fs.srvoptions) o
                      WHERE o LIKE 'placement=%'), 'spread') AS mode
      FROM pg_foreign_server fs
      JOIN pg_foreign_data_wrapper w ON w.oid = fs.srvfdw AND w.fdwname = 'destor'
     WHERE fs.srvname = $1
  ), listed AS (
    -- the providers option is a list of identifiers, as SplitIdentifierString reads it
    SELECT CASE WHEN x ~ '^".*"$' THEN replace(substr(x, 2, length(x) - 2), '""', '"')
                ELSE lower(x) END::name AS provider
      FROM opts, regexp_split_to_table(opts.providers, ',') r, btrim(r) x
  ), eligible AS (
    SELECT l.provider,
           coalesce(provider_tag(l.provider, 'cost_per_gb_month')::float8::numeric, 0) AS price,
           st.latency_p50_ms
      FROM listed l
      JOIN pg_foreign_server fs ON fs.srvname = l.provider
      LEFT JOIN provider_stats() st ON st.serverid = fs.oid, opts
     WHERE opts.allowed_geo IS NULL
        OR provider_tag(l.provider, 'geo') = ANY (
             SELECT btrim(g) FROM regexp_split_to_table(opts.allowed_geo, ',') g)
  ), obj AS (
    SELECT o.object_id, o.data_shards + o.parity_shards AS n,
           sum(sh.size) AS bytes,
           sum(sh.size * coalesce(provider_tag(sh.provider, 'cost_per_gb_month')::float8::numeric, 0))
             AS cost_bytes
      FROM objects o JOIN shards sh ON sh.object_id = o.object_id
     WHERE o.pool = $1
     GROUP BY 1, 2
  ), modes AS (
    SELECT 'current'::text AS placement, 0 AS ord,
           NULL::name[] AS providers,
           (SELECT sum(cost_bytes) FROM obj) AS cost_bytes
    UNION ALL
    SELECT 'spread', 1, (SELECT array_agg(provider ORDER BY provider) FROM eligible),
           placement_mode_cost($1, 'spread')
    UNION ALL
    SELECT 'cheapest', 2,
           (SELECT array_agg(provider ORDER BY price, provider) FROM (
              SELECT * FROM eligible ORDER BY price, provider LIMIT (SELECT max(n) FROM obj)) e),
           placement_mode_cost($1, 'cheapest')
    UNION ALL
    SELECT 'fastest', 3,
           (SELECT array_agg(provider ORDER BY latency_p50_ms NULLS LAST, provider) FROM (
              SELECT * FROM eligible ORDER BY latency_p50_ms NULLS LAST, provider
               LIMIT (SELECT max(n) FROM obj)) e),
           placement_mode_cost($1, 'fastest')
  )
  SELECT m.placement, m.placement = opts.mode, (SELECT count(*) FROM obj),
         coalesce((SELECT sum(bytes) FROM obj), 0), m.providers,
         round(CASE WHEN m.ord = 0 THEN coalesce(m.cost_bytes, 0) ELSE m.cost_bytes END / 1e9, 6)
    FROM modes m, opts
   ORDER BY m.ord
$$;
REVOKE ALL ON FUNCTION placement_cost(name) FROM PUBLIC;
-- Audits (issue 13): spot checks of random chunks on every provider, and the
-- reputation they give it.  One row per check; ok is NULL when the provider
-- could not be asked (unavailable, not a failed audit).  Superuser only: it
-- reads every owner's shards.
CREATE FUNCTION audit(pool name DEFAULT NULL, max_requests integer DEFAULT 20,
    max_bytes bigint DEFAULT NULL)
  RETURNS TABLE (provider name, object_id uuid, shard_index integer, ok boolean, detail text)
  AS 'MODULE_PATHNAME', 'destor_audit' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION audit(name, integer, bigint) FROM PUBLIC;
CREATE FUNCTION provider_audits(OUT serverid oid, OUT audits_passed bigint,
    OUT audits_failed bigint, OUT audits_unavailable bigint, OUT last_audit timestamptz,
    OUT failing boolean, OUT unavailable_time interval, OUT slow_time interval)
  RETURNS SETOF record AS 'MODULE_PATHNAME', 'destor_provider_audits' LANGUAGE C STRICT;
CREATE OR REPLACE VIEW provider_status WITH (security_barrier) AS
  SELECT s.srvname AS provider,
         (SELECT substr(o, 6) FROM unnest(s.srvoptions) o WHERE o LIKE 'type=%') AS type,
         (SELECT substr(o, 5) FROM unnest(s.srvoptions) o WHERE o LIKE 'geo=%') AS geo,
         coalesce(st.state, 'unknown') AS state, st.last_error,
         coalesce(st.requests, 0) AS requests, coalesce(st.errors, 0) AS errors,
         coalesce(st.bytes_read, 0) AS bytes_read, coalesce(st.bytes_written, 0) AS bytes_written,
         st.latency_p50_ms, st.latency_p99_ms, st.last_success,
         coalesce(h.retries, 0) AS retries, coalesce(h.short_bodies, 0) AS short_bodies,
         h.last_check, h.last_check_ok,
         coalesce(h.bad_chunks, 0) AS bad_chunks, h.last_bad_chunk,
         coalesce(a.audits_passed, 0) AS audits_passed,
         coalesce(a.audits_failed, 0) AS audits_failed, a.last_audit,
         coalesce(a.audits_unavailable, 0) AS audits_unavailable,
         coalesce(a.failing, false) AS audit_failing,
         coalesce(a.unavailable_time, '0'::interval) AS unavailable_time,
         coalesce(a.slow_time, '0'::interval) AS slow_time
    FROM pg_foreign_server s
    JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw AND w.fdwname = 'destor_provider'
    LEFT JOIN provider_stats() st ON st.serverid = s.oid
    LEFT JOIN provider_health() h ON h.serverid = s.oid
    LEFT JOIN provider_audits() a ON a.serverid = s.oid;

-- Blobs (issue 15): privileges and the SHA-256 of the content.
ALTER TABLE blobs ADD COLUMN acl aclitem[], ADD COLUMN sha256 bytea;

-- ---------------------------------------------------------------------------
-- Blob privileges like large objects' (issue 15, src/blob/blob_acl.c):
-- SELECT to read, UPDATE to write into a blob (no function does yet: blobs
-- are immutable); deleting, granting and changing the owner need ownership.
-- Not STRICT: a NULL role is an error, not a silent no-op.
-- ---------------------------------------------------------------------------
CREATE FUNCTION blob_grant(b blob, role regrole, privilege text) RETURNS void
  AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE;
CREATE FUNCTION blob_revoke(b blob, role regrole, privilege text) RETURNS void
  AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE;
CREATE FUNCTION blob_set_owner(b blob, role regrole) RETURNS void
  AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE;
-- Each blob the caller owns (has the owner's privileges) or holds any
-- privilege on; superusers see all.  acl NULL: the default (owner alone).
CREATE VIEW blob_acl WITH (security_barrier) AS
  SELECT b.blob_id, b.owner, b.acl
    FROM blobs b
   WHERE pg_catalog.pg_has_role(b.owner, 'USAGE')
      OR EXISTS (SELECT FROM pg_catalog.aclexplode(b.acl) a
                  WHERE a.grantee = 0 OR pg_catalog.pg_has_role(a.grantee, 'USAGE'));
GRANT SELECT ON blob_acl TO PUBLIC;
-- Shards of the blobs the caller may read: its own, and those it has SELECT on.
CREATE OR REPLACE VIEW blob_shards WITH (security_barrier) AS
  SELECT b.blob_id, s.shard_index,
         CASE WHEN s.shard_index < o.data_shards THEN 'data' ELSE 'parity' END AS kind,
         s.provider, s.state, s.size
    FROM blobs b JOIN objects o ON o.object_id = b.blob_id
    JOIN shards s ON s.object_id = b.blob_id
   WHERE pg_catalog.pg_has_role(b.owner, 'USAGE')
      OR EXISTS (SELECT FROM pg_catalog.aclexplode(b.acl) a
                  WHERE a.privilege_type = 'SELECT'
                    AND (a.grantee = 0 OR pg_catalog.pg_has_role(a.grantee, 'USAGE')));
-- blob_put and blob_import take an expected SHA-256 (issue 15); one
-- function each with a DEFAULT (an overload beside the old one would make
-- two-argument calls ambiguous).  The C functions read the third argument
-- only when it is passed, so the old declarations work with this library.
DROP FUNCTION blob_put(name, bytea);
CREATE FUNCTION blob_put(pool name, data bytea, expected_sha256 bytea DEFAULT NULL) RETURNS blob
  AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE;
DROP FUNCTION blob_import(name, text);
CREATE FUNCTION blob_import(pool name, path text, expected_sha256 bytea DEFAULT NULL) RETURNS blob
  AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE;
-- Integrity (issue 15): the SHA-256 recorded when a blob was written (NULL
-- for blobs written before 0.2.0; no provider read), and a check of every
-- shard and of that hash.  Both need SELECT on the blob.
CREATE FUNCTION blob_sha256(b blob) RETURNS bytea
  AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT;
CREATE FUNCTION blob_verify(b blob) RETURNS boolean
  AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT;
-- Lifecycle (issue 15, src/blob/blob_lifecycle.c): contrib lo's lo_manage
-- for blobs.  CREATE TRIGGER ... BEFORE (or AFTER) UPDATE OR DELETE ON t
-- FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('column'): the blob an
-- old row referenced is deleted when the row goes or changes blob (its
-- shards after commit, nothing on rollback); needs ownership of the blob.
CREATE FUNCTION blob_manage() RETURNS trigger
  AS 'MODULE_PATHNAME' LANGUAGE C;
-- vacuumlo for blobs: the blobs of a pool that no column of the current
-- database references — of type destor.blob, a domain over it, an array or
-- a composite holding one (found in their text form) — listed (dry_run) or
-- deleted.  Superusers only: it reads every table.  Run it when no
-- transaction is between writing a blob and storing its handle.
CREATE FUNCTION vacuum_blobs(pool name, dry_run boolean DEFAULT true) RETURNS SETOF uuid
  LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  col record;
  victim uuid;
  refs text[] := '{}';
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'permission denied to vacuum blobs'
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'destor.vacuum_blobs() reads every table of the database; only superusers may run it.';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
                  WHERE s.srvname = pool AND w.fdwname = 'destor') THEN
    RAISE EXCEPTION 'pool "%" does not exist', pool
      USING ERRCODE = 'undefined_object',
            HINT = 'A pool is a foreign server of the destor wrapper.';
  END IF;
  FOR col IN
    WITH RECURSIVE direct(oid) AS (
      SELECT 'destor.blob'::regtype::oid
      UNION
      SELECT ty.oid FROM direct d JOIN pg_type ty ON ty.typtype = 'd' AND ty.typbasetype = d.oid
    ), holding(oid) AS (
      SELECT oid FROM direct
      UNION
      SELECT ty.oid FROM holding h, pg_type ty
       WHERE (ty.typtype = 'd' AND ty.typbasetype = h.oid)
          OR (ty.typelem = h.oid AND ty.typsubscript = 'array_subscript_handler'::regproc)
          OR (ty.typtype = 'c' AND EXISTS (
                SELECT FROM pg_attribute a WHERE a.attrelid = ty.typrelid AND a.atttypid = h.oid
                   AND a.attnum > 0 AND NOT a.attisdropped))
    )
    SELECT c.oid::regclass AS rel, a.attname, a.atttypid IN (SELECT oid FROM direct) AS is_direct
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     WHERE a.atttypid IN (SELECT oid FROM holding) AND a.attnum > 0 AND NOT a.attisdropped
       AND c.relkind IN ('r', 'm', 'f')
       -- a materialized view WITH NO DATA holds no handles (and cannot be read)
       AND (c.relkind <> 'm' OR c.relispopulated)
       -- other sessions' temporary tables cannot be read (and end with them)
       AND (c.relpersistence <> 't' OR c.relnamespace = pg_my_temp_schema())
     ORDER BY 1, 2
  LOOP
    IF col.is_direct THEN
      refs := refs || format('SELECT %I::destor.blob::uuid FROM ONLY %s WHERE %I IS NOT NULL',
                             col.attname, col.rel, col.attname);
    ELSE
      refs := refs || format('SELECT m[1]::uuid FROM ONLY %s t, '
                             'regexp_matches(t.%I::text, %L, ''g'') m WHERE t.%I IS NOT NULL',
                             col.rel, col.attname,
                             '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})', col.attname);
    END IF;
  END LOOP;
  -- one query, no temporary table: a dry run works read-only (a hot standby)
  refs := refs || 'SELECT NULL::uuid WHERE false'::text;
  FOR victim IN EXECUTE format(
    'SELECT b.blob_id FROM destor.blobs b JOIN destor.objects o ON o.object_id = coalesce(b.pack_id, b.blob_id)'
    ' WHERE o.pool = $1 AND NOT EXISTS (SELECT FROM (%s) r(id) WHERE r.id = b.blob_id)'
    ' ORDER BY b.created_at, b.blob_id', array_to_string(refs, ' UNION ALL '))
    USING pool
  LOOP
    IF NOT dry_run THEN
      PERFORM destor.blob_delete(victim::text::destor.blob);
    END IF;
    RETURN NEXT victim;
  END LOOP;
END $$;
REVOKE ALL ON FUNCTION vacuum_blobs(name, boolean) FROM PUBLIC;
-- Blob descriptors (issue 15 item 2, src/blob/blob_fd.c): a blob streamed in
-- or out in pieces, as lo_open/lowrite/loread do for large objects.
-- Descriptors last until the end of the transaction that opened them; a
-- descriptor still open for writing at COMMIT is an error (only blob_close
-- stores the blob and returns its handle).  blob_read(fd, length) has two
-- arguments and blob_read(b, offset, length) three, so calls never clash.
CREATE FUNCTION blob_create(pool name) RETURNS integer
  AS 'MODULE_PATHNAME', 'blob_fd_create' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION blob_write(fd integer, data bytea) RETURNS integer
  AS 'MODULE_PATHNAME', 'blob_fd_write' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION blob_close(fd integer) RETURNS blob
  AS 'MODULE_PATHNAME', 'blob_fd_close' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION blob_open(b blob) RETURNS integer
  AS 'MODULE_PATHNAME', 'blob_fd_open' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION blob_read(fd integer, length integer) RETURNS bytea
  AS 'MODULE_PATHNAME', 'blob_fd_read' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION blob_seek(fd integer, "offset" bigint, whence integer) RETURNS bigint
  AS 'MODULE_PATHNAME', 'blob_fd_seek' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION blob_tell(fd integer) RETURNS bigint
  AS 'MODULE_PATHNAME', 'blob_fd_tell' LANGUAGE C STRICT VOLATILE;

-- Large objects tiered offsite under their own OIDs (issue 16): the pages
-- go to a pool's object, the large object (OID, owner, ACL) stays.  One row
-- per tiered large object; recalled_at is set while its pages are local
-- again (the object is kept until it is tiered again or unlinked).  Dumped:
-- a dump carries the reference, and a restored copy reads (never deletes)
-- the original's objects.
-- loid is a bigint: vacuumlo takes any oid column for references.
CREATE TABLE lo_tiers (
    loid         bigint PRIMARY KEY CHECK (loid BETWEEN 1 AND 4294967295),
    object_id    uuid NOT NULL REFERENCES objects,
    pool         name NOT NULL,
    size         bigint NOT NULL CHECK (size >= 0),
    tiered_at    timestamptz NOT NULL DEFAULT now(),
    recalled_at  timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('lo_tiers', '');
REVOKE ALL ON lo_tiers FROM PUBLIC;
CREATE FUNCTION lo_tier(lo oid, pool name) RETURNS bigint
  AS 'MODULE_PATHNAME', 'destor_lo_tier' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION lo_tier_all(pool name, min_size bigint DEFAULT 0) RETURNS bigint
  AS 'MODULE_PATHNAME', 'destor_lo_tier_all' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION lo_recall(lo oid) RETURNS bigint
  AS 'MODULE_PATHNAME', 'destor_lo_recall' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION lo_readable(lo oid) RETURNS boolean
  AS 'MODULE_PATHNAME', 'destor_lo_readable' LANGUAGE C STABLE STRICT;
-- Only large objects the caller may read (superusers: all).
CREATE VIEW tiered_large_objects WITH (security_barrier) AS
  SELECT t.loid::oid AS loid, t.pool, t.size, t.tiered_at, t.recalled_at
    FROM lo_tiers t
   WHERE lo_readable(t.loid::oid);
GRANT SELECT ON tiered_large_objects TO PUBLIC;
-- What SQL calls of the built-in large-object functions become (the planner
-- hook redirects them): recall, then the built-in.  Not for direct use.
CREATE FUNCTION lo_open_tiered(oid, integer) RETURNS integer
  AS 'MODULE_PATHNAME', 'destor_lo_open_tiered' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION lo_get_tiered(oid) RETURNS bytea
  AS 'MODULE_PATHNAME', 'destor_lo_get_tiered' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION lo_get_tiered(oid, bigint, integer) RETURNS bytea
  AS 'MODULE_PATHNAME', 'destor_lo_get_fragment_tiered' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION lo_export_tiered(oid, text) RETURNS integer
  AS 'MODULE_PATHNAME', 'destor_lo_export_tiered' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION lo_put_tiered(oid, bigint, bytea) RETURNS void
  AS 'MODULE_PATHNAME', 'destor_lo_put_tiered' LANGUAGE C VOLATILE STRICT;
-- Declared rule: large objects of at least min_size bytes, never tiered or
-- recalled more than recalled_before ago, go to pool; applied by
-- apply_lo_tiering() and by the maintenance worker every round.
CREATE TABLE lo_tiering_policies (
    pool             name PRIMARY KEY,
    min_size         bigint NOT NULL DEFAULT 0 CHECK (min_size >= 0),
    recalled_before  interval NOT NULL DEFAULT '1 day' CHECK (recalled_before >= interval '0')
);
SELECT pg_catalog.pg_extension_config_dump('lo_tiering_policies', '');
REVOKE ALL ON lo_tiering_policies FROM PUBLIC;
CREATE FUNCTION apply_lo_tiering() RETURNS bigint
  AS 'MODULE_PATHNAME', 'destor_apply_lo_tiering' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION apply_lo_tiering() FROM PUBLIC;
-- ---------------------------------------------------------------------------
-- Self-describing pools (issue 12, src/meta/, docs/METADATA_FORMAT.md): every
-- transaction that changes these rows writes one log object per pool on the
-- pool's providers at pre-commit; destor.recover_catalog() rebuilds the
-- catalog from it in a fresh database, IMPORT FOREIGN SCHEMA the tables.
-- ---------------------------------------------------------------------------
CREATE SEQUENCE meta_seq;
-- The log objects this database wrote and saw committed: a later log object
-- confirms the last of them (in case a commit marker was lost).
CREATE TABLE meta_log (
    pool        name NOT NULL,
    seq         bigint NOT NULL,
    log_id      uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pool, seq)
);
-- Each table's definition as last logged (and, after recover_catalog, as
-- recovered): what IMPORT FOREIGN SCHEMA creates.
CREATE TABLE table_definitions (
    table_id    uuid PRIMARY KEY,
    pool        name NOT NULL,
    definition  jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON meta_log, table_definitions FROM PUBLIC;

CREATE FUNCTION meta_capture() RETURNS trigger
  AS 'MODULE_PATHNAME', 'destor_meta_capture' LANGUAGE C;
CREATE TRIGGER meta_capture AFTER INSERT OR UPDATE OR DELETE ON objects
  FOR EACH ROW EXECUTE FUNCTION meta_capture();
CREATE TRIGGER meta_capture AFTER INSERT OR UPDATE OR DELETE ON shards
  FOR EACH ROW EXECUTE FUNCTION meta_capture();
CREATE TRIGGER meta_capture AFTER INSERT OR UPDATE OR DELETE ON blobs
  FOR EACH ROW EXECUTE FUNCTION meta_capture();
CREATE TRIGGER meta_capture AFTER INSERT OR UPDATE OR DELETE ON segments
  FOR EACH ROW EXECUTE FUNCTION meta_capture();
CREATE TRIGGER meta_capture AFTER INSERT OR UPDATE OR DELETE ON deletions
  FOR EACH ROW EXECUTE FUNCTION meta_capture();
CREATE TRIGGER meta_capture AFTER INSERT OR UPDATE OR DELETE ON tables
  FOR EACH ROW EXECUTE FUNCTION meta_capture();

-- DDL on a destor table (rename, columns, options) is logged at commit;
-- tables made by IMPORT FOREIGN SCHEMA are bound to their recovered data
-- (the CREATE trigger above does not fire for that command tag).
CREATE FUNCTION meta_note_table(tbl regclass) RETURNS void
  AS 'MODULE_PATHNAME', 'destor_meta_note_table' LANGUAGE C STRICT;
CREATE FUNCTION on_meta_table_ddl() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cmd record;
BEGIN
  FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
             WHERE classid = 'pg_catalog.pg_class'::regclass LOOP
    CONTINUE WHEN NOT EXISTS (
      SELECT FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver
        JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
       WHERE ft.ftrelid = cmd.objid AND w.fdwname = 'destor');
    IF tg_tag = 'IMPORT FOREIGN SCHEMA' THEN
      PERFORM destor.bind_table(cmd.objid::regclass);
    END IF;
    PERFORM destor.meta_note_table(cmd.objid::regclass);
  END LOOP;
END $$;
CREATE EVENT TRIGGER destor_meta_table_ddl ON ddl_command_end
  WHEN TAG IN ('CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'ALTER TABLE',
               'IMPORT FOREIGN SCHEMA')
  EXECUTE FUNCTION on_meta_table_ddl();

-- Rebuild the catalog rows of a pool's blobs and tables from its metadata
-- log; one row per log read ('log'), blob and table recovered.  adopt: take
-- over the writer's instance identity (the recovered database becomes the
-- pool's writer; see docs/METADATA_FORMAT.md for the risks).
CREATE FUNCTION recover_catalog(pool name, adopt boolean DEFAULT true, instance uuid DEFAULT NULL)
  RETURNS TABLE (kind text, id uuid, name text, detail text)
  AS 'MODULE_PATHNAME', 'destor_recover_catalog' LANGUAGE C VOLATILE CALLED ON NULL INPUT;
REVOKE ALL ON FUNCTION recover_catalog(name, boolean, uuid) FROM PUBLIC;

-- Log every catalog row of a pool again, in one log object: for pools
-- written before the log existed (an upgrade from 0.1.0), or as a fresh
-- starting point.  Each row is rewritten unchanged, which the capture
-- triggers record; deletion bitmaps are deleted and inserted again (they
-- have no key an UPDATE could be replayed by).  Returns the rows logged.
-- (defined below, with log compaction, which records what a snapshot supersedes)
-- Master key rotation (issue 12 item 4): re-wrap every data key under the key
-- of destor.master_key_file while destor.previous_master_key_file keeps the
-- old one readable; nothing on the providers changes.  In the caller's
-- transaction (interrupted = rolled back, call again); max_keys bounds one
-- call, so a large rotation can commit in pieces.  Superuser only.
CREATE FUNCTION rotate_master_key(new_key_file text, max_keys bigint DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'destor_rotate_master_key' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION rotate_master_key(text, bigint) FROM PUBLIC;

-- One writer per pool (issue 12 item 3): a pool declared mode 'exclusive' is
-- fenced by a writer lease on its providers; take_over_pool() makes this
-- database the writer (a higher epoch) and returns once every session's
-- cached view of the old lease has expired (about 6 s), so the old writer's
-- next write or commit fails.  Returns the new epoch.  Superuser only.
CREATE FUNCTION take_over_pool(pool name)
  RETURNS bigint AS 'MODULE_PATHNAME', 'destor_take_over_pool' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION take_over_pool(name) FROM PUBLIC;

-- A read-only follower (issue 12 item 3): the writer's log objects this
-- database replayed from a pool declared mode 'read_only' (recover_catalog
-- then follow_pool), so that each follow replays only the new ones.
CREATE TABLE followed_log (
    pool        name NOT NULL,
    instance    text NOT NULL,
    seq         bigint NOT NULL,
    log_id      uuid NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pool, instance, seq, log_id)
);
REVOKE ALL ON followed_log FROM PUBLIC;
-- Replay the writer's log objects committed since the last follow (or the
-- recovery) of a read-only pool; returns how many were applied.  The
-- maintenance worker calls it every round for read-only pools.
CREATE FUNCTION follow_pool(pool name) RETURNS bigint
  AS 'MODULE_PATHNAME', 'destor_follow_pool' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION follow_pool(name) FROM PUBLIC;

-- Log compaction (issue 12 item 2): log_snapshot() records what its snapshot
-- supersedes; compact_log() deletes those log objects and their markers from
-- the providers once the snapshot is on every provider it was written to.
CREATE TABLE meta_snapshots (
    pool          name NOT NULL,
    snapshot_xid  xid8 NOT NULL,
    below_seq     bigint,          -- log objects of the instance older than this: superseded
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pool, snapshot_xid)
);
CREATE TABLE meta_superseded (
    pool          name NOT NULL,
    snapshot_xid  xid8 NOT NULL,
    seq           bigint NOT NULL,
    log_id        uuid NOT NULL,
    PRIMARY KEY (pool, snapshot_xid, seq)
);
REVOKE ALL ON meta_snapshots, meta_superseded FROM PUBLIC;
CREATE FUNCTION log_snapshot(pool name) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n bigint := 0;
  c bigint;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
                  WHERE s.srvname = $1 AND w.fdwname = 'destor') THEN
    RAISE EXCEPTION 'pool "%" does not exist', $1 USING ERRCODE = 'undefined_object';
  END IF;
  -- what this snapshot supersedes (compact_log deletes it once the snapshot
  -- is durable): the log objects committed before it started, and those of
  -- the instance older than any this database wrote (an adopted writer's)
  INSERT INTO destor.meta_superseded (pool, snapshot_xid, seq, log_id)
    SELECT $1, pg_current_xact_id(), l.seq, l.log_id FROM destor.meta_log l WHERE l.pool = $1;
  INSERT INTO destor.meta_snapshots (pool, snapshot_xid, below_seq)
    VALUES ($1, pg_current_xact_id(), (SELECT min(l.seq) FROM destor.meta_log l));
  UPDATE destor.objects o SET pool = o.pool WHERE o.pool = $1;
  GET DIAGNOSTICS c = ROW_COUNT; n := n + c;
  UPDATE destor.shards s SET state = s.state FROM destor.objects o
   WHERE o.object_id = s.object_id AND o.pool = $1;
  GET DIAGNOSTICS c = ROW_COUNT; n := n + c;
  UPDATE destor.blobs b SET owner = b.owner FROM destor.objects o
   WHERE o.object_id = coalesce(b.pack_id, b.blob_id) AND o.pool = $1;
  GET DIAGNOSTICS c = ROW_COUNT; n := n + c;
  UPDATE destor.segments g SET row_count = g.row_count FROM destor.objects o
   WHERE o.object_id = g.object_id AND o.pool = $1;
  GET DIAGNOSTICS c = ROW_COUNT; n := n + c;
  WITH d AS (DELETE FROM destor.deletions d USING destor.segments g, destor.objects o
              WHERE g.table_id = d.table_id AND g.segment_no = d.segment_no
                AND o.object_id = g.object_id AND o.pool = $1
             RETURNING d.*)
  INSERT INTO destor.deletions SELECT * FROM d;
  GET DIAGNOSTICS c = ROW_COUNT; n := n + c;
  -- every table definition is logged again at commit
  DELETE FROM destor.table_definitions d WHERE d.pool = $1;
  UPDATE destor.tables t SET relid = t.relid
   WHERE EXISTS (SELECT FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver
                  WHERE ft.ftrelid = t.relid AND s.srvname = $1);
  GET DIAGNOSTICS c = ROW_COUNT; n := n + c;
  RETURN n;
END $$;
REVOKE ALL ON FUNCTION log_snapshot(name) FROM PUBLIC;
CREATE FUNCTION compact_log(pool name) RETURNS bigint
  AS 'MODULE_PATHNAME', 'destor_compact_log' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION compact_log(name) FROM PUBLIC;
-- Log shards a commit went on without (given up once write_quorum were
-- stored, or failed): kept here with the transaction, and put by
-- repair_log() (the maintenance worker runs it each round), so that every
-- log object has all its shards again; compaction drops those it supersedes.
CREATE TABLE meta_log_unstored (
    pool        name NOT NULL,
    seq         bigint NOT NULL,
    shard_index int NOT NULL,
    provider    name NOT NULL,
    shard_key   text NOT NULL,
    shard       bytea NOT NULL,
    PRIMARY KEY (pool, seq, shard_index),
    FOREIGN KEY (pool, seq) REFERENCES meta_log ON DELETE CASCADE
);
REVOKE ALL ON meta_log_unstored FROM PUBLIC;
CREATE FUNCTION repair_log(pool name DEFAULT NULL) RETURNS bigint
  AS 'MODULE_PATHNAME', 'destor_repair_log' LANGUAGE C VOLATILE CALLED ON NULL INPUT;
REVOKE ALL ON FUNCTION repair_log(name) FROM PUBLIC;
-- Small blobs packed into shared objects (issue 15 item 5,
-- src/blob/blob_pack.c): a blob up to destor.blob_pack_threshold bytes
-- written by blob_put, blob_import or blob_from_lo is appended to its
-- transaction's open pack for the pool, uploaded as one ordinary object when
-- full and at commit.  Its row keeps its own id, owner, ACL and sha256 and
-- points at (pack_id, pack_offset, pack_length); the blob id of a packed
-- blob is no object's id.
ALTER TABLE blobs DROP CONSTRAINT blobs_blob_id_fkey;
ALTER TABLE blobs ADD COLUMN pack_id uuid REFERENCES objects,
  ADD COLUMN pack_offset bigint, ADD COLUMN pack_length bigint,
  ADD CONSTRAINT blobs_pack_check CHECK ((pack_id IS NULL) = (pack_offset IS NULL)
    AND (pack_id IS NULL) = (pack_length IS NULL) AND pack_offset >= 0 AND pack_length >= 0);
CREATE INDEX blobs_pack_id ON blobs (pack_id) WHERE pack_id IS NOT NULL;
-- Shards of the blobs the caller may read (a packed blob's are its pack's).
CREATE OR REPLACE VIEW blob_shards WITH (security_barrier) AS
  SELECT b.blob_id, s.shard_index,
         CASE WHEN s.shard_index < o.data_shards THEN 'data' ELSE 'parity' END AS kind,
         s.provider, s.state, s.size
    FROM blobs b JOIN objects o ON o.object_id = coalesce(b.pack_id, b.blob_id)
    JOIN shards s ON s.object_id = o.object_id
   WHERE pg_catalog.pg_has_role(b.owner, 'USAGE')
      OR EXISTS (SELECT FROM pg_catalog.aclexplode(b.acl) a
                  WHERE a.privilege_type = 'SELECT'
                    AND (a.grantee = 0 OR pg_catalog.pg_has_role(a.grantee, 'USAGE')));
-- Rewrite the packs of a pool whose dead share (bytes of deleted blobs) is
-- above min_dead_fraction into new packs, repointing their live blobs in the
-- caller's transaction; old packs go after commit.  Returns how many packs
-- were rewritten.  Superuser only (the maintenance worker calls it too).
CREATE FUNCTION compact_packs(pool name, min_dead_fraction float8 DEFAULT 0.5)
  RETURNS bigint AS 'MODULE_PATHNAME', 'blob_compact_packs' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION compact_packs(name, float8) FROM PUBLIC;
-- The table access method destor (issue 14; src/tableam/tableam.c):
-- CREATE TABLE ... USING destor stores the rows as destor segments on the
-- pool named by the GUC destor.default_pool at creation.  am_tables maps
-- each such relation's relfilenode (TRUNCATE and rewrites give a new one)
-- to the table_id of its segments and to its pool.
CREATE TABLE am_tables (
    relfilenode oid PRIMARY KEY,
    table_id    uuid NOT NULL UNIQUE,
    pool        name NOT NULL
);
REVOKE ALL ON am_tables FROM PUBLIC;
CREATE FUNCTION tableam_handler(internal) RETURNS table_am_handler
  AS 'MODULE_PATHNAME', 'destor_tableam_handler' LANGUAGE C STRICT;
CREATE ACCESS METHOD destor TYPE TABLE HANDLER tableam_handler;
-- Every owner and grantee of a blob has a pg_shdepend row on destor.blobs in
-- this database (src/blob/blob_roles.c), so DROP ROLE run from any database
-- is refused while a blob names the role.  pg_shdepend is not dumped: run
-- this after restoring a database (superusers; returns the roles recorded).
CREATE FUNCTION blob_record_role_dependencies() RETURNS integer
  AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION blob_record_role_dependencies() FROM PUBLIC;
SELECT blob_record_role_dependencies();

-- destor.blob compares and hashes as the uuid it holds: = in WHERE clauses
-- (with destor in search_path, or OPERATOR(destor.=)), and DISTINCT, GROUP
-- BY, UNIQUE constraints and btree or hash indexes on blob columns, as an oid
-- column of large objects allows.
CREATE FUNCTION blob_eq(blob, blob) RETURNS boolean
  AS 'uuid_eq' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION blob_ne(blob, blob) RETURNS boolean
  AS 'uuid_ne' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION blob_lt(blob, blob) RETURNS boolean
  AS 'uuid_lt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION blob_le(blob, blob) RETURNS boolean
  AS 'uuid_le' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION blob_gt(blob, blob) RETURNS boolean
  AS 'uuid_gt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION blob_ge(blob, blob) RETURNS boolean
  AS 'uuid_ge' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION blob_cmp(blob, blob) RETURNS integer
  AS 'uuid_cmp' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION blob_hash(blob) RETURNS integer
  AS 'uuid_hash' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION blob_hash_extended(blob, bigint) RETURNS bigint
  AS 'uuid_hash_extended' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR = (LEFTARG = blob, RIGHTARG = blob, FUNCTION = blob_eq, COMMUTATOR = =,
  NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE OPERATOR <> (LEFTARG = blob, RIGHTARG = blob, FUNCTION = blob_ne, COMMUTATOR = <>,
  NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR < (LEFTARG = blob, RIGHTARG = blob, FUNCTION = blob_lt, COMMUTATOR = >,
  NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR <= (LEFTARG = blob, RIGHTARG = blob, FUNCTION = blob_le, COMMUTATOR = >=,
  NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR > (LEFTARG = blob, RIGHTARG = blob, FUNCTION = blob_gt, COMMUTATOR = <,
  NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR >= (LEFTARG = blob, RIGHTARG = blob, FUNCTION = blob_ge, COMMUTATOR = <=,
  NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR CLASS blob_ops DEFAULT FOR TYPE blob USING btree AS
  OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
  FUNCTION 1 blob_cmp(blob, blob);
CREATE OPERATOR CLASS blob_hash_ops DEFAULT FOR TYPE blob USING hash AS
  OPERATOR 1 =, FUNCTION 1 blob_hash(blob), FUNCTION 2 blob_hash_extended(blob, bigint);
-- Tiered partitions of parents with unique indexes are tables USING destor
-- (src/tier/tier.c, issue 14): listed too, with how each is stored.
CREATE OR REPLACE VIEW tiered_partitions WITH (security_barrier) AS
  SELECT i.inhparent::regclass AS parent, c.oid::regclass AS partition,
         pg_get_expr(c.relpartbound, c.oid) AS bound, p.pool,
         (SELECT count(*) FROM destor.segments g WHERE g.table_id = p.table_id) AS segments,
         (SELECT coalesce(sum(g.row_count), 0) FROM destor.segments g
           WHERE g.table_id = p.table_id)::bigint AS stored_rows,
         p.storage
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid AND c.relispartition
    CROSS JOIN LATERAL (
      SELECT s.srvname AS pool, t.table_id, 'foreign table'::text AS storage
        FROM pg_foreign_table ft
        JOIN pg_foreign_server s ON s.oid = ft.ftserver
        JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw AND w.fdwname = 'destor'
        LEFT JOIN destor.tables t ON t.relid = ft.ftrelid
       WHERE ft.ftrelid = c.oid
      UNION ALL
      SELECT a.pool, a.table_id, 'table using destor'
        FROM destor.am_tables a JOIN pg_am am ON am.oid = c.relam AND am.amname = 'destor'
       WHERE c.relkind = 'r' AND a.relfilenode = c.relfilenode) p
   WHERE pg_catalog.has_table_privilege(c.oid, 'SELECT');
-- Blob owners and grantees that survive a restore without their roles
-- (issue 15, src/blob/blob_restorable.c).  pg_dump writes destor.blobs as
-- one COPY naming roles; with regrole and aclitem[] columns one missing
-- role failed it and no blob was restored.  These types are stored as oid
-- and aclitem[] are and print the same; while a COPY loads destor.blobs,
-- their input gives a missing owner to the restoring role and drops grants
-- to missing roles, each with a WARNING (elsewhere a missing role is an
-- error, as for regrole).
CREATE TYPE restorable_role;
CREATE FUNCTION restorable_role_in(cstring) RETURNS restorable_role
  AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION restorable_role_out(restorable_role) RETURNS cstring
  AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE TYPE restorable_role (INPUT = restorable_role_in, OUTPUT = restorable_role_out,
  INTERNALLENGTH = 4, PASSEDBYVALUE, ALIGNMENT = int4, STORAGE = plain);
COMMENT ON TYPE restorable_role IS 'a blob owner: an oid, its role''s name in a dump; a restore gives the blobs of a missing role to the restoring role';
CREATE TYPE restorable_acl;
CREATE FUNCTION restorable_acl_in(cstring) RETURNS restorable_acl
  AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION restorable_acl_out(restorable_acl) RETURNS cstring
  AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;
-- not an array type (only PostgreSQL's own may be): unnest, subscripts and
-- ANY need acl::aclitem[], which destor.blob_acl shows
CREATE TYPE restorable_acl (INPUT = restorable_acl_in, OUTPUT = restorable_acl_out,
  INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = extended);
COMMENT ON TYPE restorable_acl IS 'blob privileges: an aclitem[]; a restore drops grants to missing roles';
CREATE CAST (restorable_role AS oid) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (oid AS restorable_role) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (restorable_role AS regrole) WITHOUT FUNCTION;
CREATE CAST (regrole AS restorable_role) WITHOUT FUNCTION AS ASSIGNMENT;
-- No binary cast may name an array type: these hand the same bytes back.
CREATE FUNCTION aclitems(restorable_acl) RETURNS aclitem[]
  AS 'MODULE_PATHNAME', 'restorable_acl_relabel' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION restorable_acl(aclitem[]) RETURNS restorable_acl
  AS 'MODULE_PATHNAME', 'restorable_acl_relabel' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE CAST (restorable_acl AS aclitem[]) WITH FUNCTION aclitems(restorable_acl) AS IMPLICIT;
CREATE CAST (aclitem[] AS restorable_acl) WITH FUNCTION restorable_acl(aclitem[]) AS ASSIGNMENT;
-- The views naming the columns go while the columns change type (no
-- rewrite: the stored bytes stay), and come back unchanged for their users.
DROP VIEW placement_summary, placement_report, blob_shards, blob_acl;
ALTER TABLE blobs ALTER COLUMN owner TYPE restorable_role,
  ALTER COLUMN acl TYPE restorable_acl;
-- Each blob the caller owns (has the owner's privileges) or holds any
-- privilege on; superusers see all.  acl NULL: the default (owner alone).
CREATE VIEW blob_acl WITH (security_barrier) AS
  SELECT b.blob_id, b.owner::regrole AS owner, b.acl::aclitem[] AS acl
    FROM blobs b
   WHERE pg_catalog.pg_has_role(b.owner, 'USAGE')
      OR EXISTS (SELECT FROM pg_catalog.aclexplode(b.acl) a
                  WHERE a.grantee = 0 OR pg_catalog.pg_has_role(a.grantee, 'USAGE'));
GRANT SELECT ON blob_acl TO PUBLIC;
-- Shards of the blobs the caller may read (a packed blob's are its pack's).
CREATE VIEW blob_shards WITH (security_barrier) AS
  SELECT b.blob_id, s.shard_index,
         CASE WHEN s.shard_index < o.data_shards THEN 'data' ELSE 'parity' END AS kind,
         s.provider, s.state, s.size
    FROM blobs b JOIN objects o ON o.object_id = coalesce(b.pack_id, b.blob_id)
    JOIN shards s ON s.object_id = o.object_id
   WHERE pg_catalog.pg_has_role(b.owner, 'USAGE')
      OR EXISTS (SELECT FROM pg_catalog.aclexplode(b.acl) a
                  WHERE a.privilege_type = 'SELECT'
                    AND (a.grantee = 0 OR pg_catalog.pg_has_role(a.grantee, 'USAGE')));
GRANT SELECT ON blob_shards TO PUBLIC;
-- One row per object a role may see (its tables' segments, its blobs; all
-- for pg_read_all_stats): compliant or the rule broken, shards per geo
-- and per operator.
CREATE VIEW placement_report WITH (security_barrier) AS
  WITH owned AS (
    SELECT o.object_id, o.pool, 'table'::text AS kind,
           coalesce(t.relid::regclass::text, s.table_id::text) AS name
      FROM objects o JOIN segments s ON s.object_id = o.object_id
      LEFT JOIN tables t ON t.table_id = s.table_id
     WHERE pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
        OR (t.relid IS NOT NULL
            AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = t.relid)
            AND pg_catalog.has_table_privilege(t.relid, 'SELECT'))
    UNION ALL
    SELECT o.object_id, o.pool, 'blob', b.blob_id::text
      FROM objects o JOIN blobs b ON b.blob_id = o.object_id
     WHERE pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
        OR pg_catalog.pg_has_role(b.owner, 'USAGE')
  ), placed AS (
    -- every object, also one whose shard rows are missing: the report
    -- proves nothing it cannot see
    SELECT ow.object_id, ow.pool, ow.kind, ow.name,
           pg_catalog.array_agg(sh.provider ORDER BY sh.shard_index)
             FILTER (WHERE sh.provider IS NOT NULL) AS providers,
           count(sh.shard_index) AS recorded, o.data_shards + o.parity_shards AS shards
      FROM owned ow JOIN objects o ON o.object_id = ow.object_id
      LEFT JOIN shards sh ON sh.object_id = ow.object_id
     GROUP BY 1, 2, 3, 4, o.data_shards, o.parity_shards
  )
  SELECT p.pool, p.kind, p.name, p.object_id, p.providers,
         v.rule IS NULL AS compliant, v.rule AS broken_rule,
         (SELECT pg_catalog.jsonb_object_agg(g, n) FROM (
            SELECT coalesce(provider_tag(x, 'geo'), '(untagged)') AS g, count(*) AS n
              FROM pg_catalog.unnest(p.providers) x GROUP BY 1) q) AS shards_per_geo,
         (SELECT pg_catalog.jsonb_object_agg(g, n) FROM (
            SELECT coalesce(provider_tag(x, 'operator'), '(untagged)') AS g, count(*) AS n
              FROM pg_catalog.unnest(p.providers) x GROUP BY 1) q) AS shards_per_operator
    FROM placed p, LATERAL (
      SELECT CASE WHEN p.recorded < p.shards
                  THEN pg_catalog.format('%s of its %s shards have no provider recorded',
                                         p.shards - p.recorded, p.shards)
                  ELSE placement_violation(p.pool, p.providers) END AS rule) v;
GRANT SELECT ON placement_report TO PUBLIC;

-- Per pool: how many of the objects placement_report shows keep the rules,
-- and where their shards are.
CREATE VIEW placement_summary AS
  WITH r AS (SELECT * FROM placement_report),
  g AS (SELECT r.pool, e.key, sum(e.value::bigint) AS n
          FROM r, pg_catalog.jsonb_each_text(r.shards_per_geo) e GROUP BY 1, 2),
  op AS (SELECT r.pool, e.key, sum(e.value::bigint) AS n
           FROM r, pg_catalog.jsonb_each_text(r.shards_per_operator) e GROUP BY 1, 2)
  SELECT c.pool, c.objects, c.compliant_objects, c.objects - c.compliant_objects AS noncompliant_objects,
         (SELECT pg_catalog.jsonb_object_agg(g.key, g.n) FROM g WHERE g.pool = c.pool) AS shards_per_geo,
         (SELECT pg_catalog.jsonb_object_agg(op.key, op.n) FROM op WHERE op.pool = c.pool) AS shards_per_operator
    FROM (SELECT pool, count(*) AS objects, count(*) FILTER (WHERE compliant) AS compliant_objects
            FROM r GROUP BY pool) c;
GRANT SELECT ON placement_summary TO PUBLIC;
-- A restore's COPY into the tables referencing destor.objects runs in the
-- replica role, so that pg_restore -j can load them while objects loads in
-- another session (src/blob/blob_roles.c); destor's own triggers still fire.
ALTER TABLE objects ENABLE ALWAYS TRIGGER blob_meta_invalidate, ENABLE ALWAYS TRIGGER meta_capture;
ALTER TABLE shards ENABLE ALWAYS TRIGGER blob_meta_invalidate, ENABLE ALWAYS TRIGGER meta_capture;
ALTER TABLE blobs ENABLE ALWAYS TRIGGER blob_meta_invalidate, ENABLE ALWAYS TRIGGER meta_capture;
ALTER TABLE segments ENABLE ALWAYS TRIGGER meta_capture;
ALTER TABLE deletions ENABLE ALWAYS TRIGGER meta_capture;
ALTER TABLE tables ENABLE ALWAYS TRIGGER meta_capture;
-- Where an UPDATE of a table USING destor put each row's new version, so
-- that READ COMMITTED re-checks it as heap does (src/tableam/tableam.c,
-- am_find_successor).
ALTER TABLE deletions ADD COLUMN successors bytea;
