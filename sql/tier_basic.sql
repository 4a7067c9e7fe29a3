-- Partitions tiered offsite and recalled: queries on the parent keep their
-- results, pruning keeps recent queries local, writes through the parent
-- reach tiered partitions, the partition keeps its name, bounds, owner,
-- privileges and comment, and every bad call is refused before anything
-- is copied.
\i test/regress/setup.sql
\set VERBOSITY default
CREATE TABLE metrics (ts timestamptz NOT NULL, device int, reading float8, note text,
                      CHECK (reading >= 0))
  PARTITION BY RANGE (ts);
-- BRIN, which tables USING destor lack: no key, so foreign-table partitions
CREATE INDEX ON metrics USING brin (ts);
CREATE TABLE m2023_01 PARTITION OF metrics FOR VALUES FROM ('2023-01-01') TO ('2023-02-01');
CREATE TABLE m2023_02 PARTITION OF metrics FOR VALUES FROM ('2023-02-01') TO ('2023-03-01');
CREATE TABLE m2023_03 PARTITION OF metrics FOR VALUES FROM ('2023-03-01') TO ('2023-04-01');
CREATE TABLE m2023_04 PARTITION OF metrics FOR VALUES FROM ('2023-04-01') TO ('2023-05-01');
CREATE TABLE m_other PARTITION OF metrics DEFAULT;
INSERT INTO metrics
  SELECT timestamptz '2023-01-01 00:00+00' + i * interval '7 minutes', i % 17, (i % 1000) / 10.0,
         CASE WHEN i % 5 = 0 THEN NULL ELSE 'n' || (i % 97) END
    FROM generate_series(0, 24000) i;
COMMENT ON TABLE m2023_01 IS 'January, archived';
GRANT SELECT ON m2023_01 TO regress_destor_user;
CREATE TABLE metrics_expected AS SELECT * FROM metrics;
CREATE VIEW totals AS
  SELECT tableoid::regclass AS part, count(*), sum(device) AS devices, round(sum(reading)::numeric, 6) AS readings,
         count(note) AS notes, min(ts), max(ts)
    FROM metrics GROUP BY 1 ORDER BY tableoid::regclass::text COLLATE "C";
SELECT * FROM totals;

-- tier one partition
SELECT destor.tier_partition('m2023_01', 'archive');
SELECT relname, relkind, relispartition, pg_get_expr(relpartbound, oid) AS bound,
       pg_get_userbyid(relowner) = current_user AS same_owner,
       obj_description(oid, 'pg_class') AS comment
  FROM pg_class WHERE relname = 'm2023_01';
SELECT parent, partition, bound, pool, segments > 0 AS has_segments, stored_rows
  FROM destor.tiered_partitions;
SELECT * FROM totals;
-- the same rows, row for row
SELECT count(*) AS differing FROM (
  (SELECT * FROM metrics EXCEPT ALL SELECT * FROM metrics_expected)
  UNION ALL
  (SELECT * FROM metrics_expected EXCEPT ALL SELECT * FROM metrics)) d;
-- recent queries stay local; old ones read only what they need
EXPLAIN (COSTS OFF) SELECT count(*) FROM metrics WHERE ts >= '2023-04-01' AND ts < '2023-05-01';
EXPLAIN (COSTS OFF) SELECT avg(reading) FROM metrics WHERE ts < '2023-01-15';
SELECT count(*), round(avg(reading)::numeric, 6) FROM metrics WHERE ts < '2023-01-15';
SELECT count(*), round(avg(reading)::numeric, 6) FROM metrics_expected WHERE ts < '2023-01-15';
-- the privileges came along
SET ROLE regress_destor_user;
SELECT count(*) AS granted_read FROM m2023_01;
RESET ROLE;

-- writes through the parent reach the tiered partition
INSERT INTO metrics VALUES ('2023-01-31 23:59+00', 99, 1.5, 'late');
UPDATE metrics SET reading = reading + 1 WHERE ts < '2023-01-02' AND device = 3;
DELETE FROM metrics WHERE ts < '2023-01-03' AND device = 4;
INSERT INTO metrics_expected VALUES ('2023-01-31 23:59+00', 99, 1.5, 'late');
UPDATE metrics_expected SET reading = reading + 1 WHERE ts < '2023-01-02' AND device = 3;
DELETE FROM metrics_expected WHERE ts < '2023-01-03' AND device = 4;
SELECT count(*) AS differing FROM (
  (SELECT * FROM metrics EXCEPT ALL SELECT * FROM metrics_expected)
  UNION ALL
  (SELECT * FROM metrics_expected EXCEPT ALL SELECT * FROM metrics)) d;
-- the parent's CHECK constraint came along (as a declaration)
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = 'm2023_01'::regclass ORDER BY 1;

-- a rollback leaves the partition as it was
BEGIN;
SELECT destor.tier_partition('m2023_04', 'archive');
ROLLBACK;
SELECT relkind FROM pg_class WHERE relname = 'm2023_04';
SELECT count(*) FROM m2023_04;

-- policy: all but the newest one, the default partition stays
SELECT * FROM destor.tier_partitions('metrics', 'archive', keep_local => 1);
SELECT relname, relkind FROM pg_class
 WHERE oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'metrics'::regclass) ORDER BY 1;
-- nothing more to do the second time
SELECT * FROM destor.tier_partitions('metrics', 'archive', keep_local => 1);
SELECT * FROM totals;

-- recall: a heap table again, with the parent's indexes
SELECT destor.recall_partition('m2023_02');
SELECT relname, relkind FROM pg_class WHERE relname = 'm2023_02';
SELECT indexdef FROM pg_indexes WHERE tablename = 'm2023_02';
SELECT count(*) AS differing FROM (
  (SELECT * FROM metrics EXCEPT ALL SELECT * FROM metrics_expected)
  UNION ALL
  (SELECT * FROM metrics_expected EXCEPT ALL SELECT * FROM metrics)) d;
SELECT destor.recall_partition('m2023_01');
SELECT obj_description('m2023_01'::regclass, 'pg_class') AS comment_kept,
       has_table_privilege('regress_destor_user', 'm2023_01', 'SELECT') AS grant_kept;
SELECT count(*) AS differing FROM (
  (SELECT * FROM metrics EXCEPT ALL SELECT * FROM metrics_expected)
  UNION ALL
  (SELECT * FROM metrics_expected EXCEPT ALL SELECT * FROM metrics)) d;
SELECT partition FROM destor.tiered_partitions ORDER BY partition::text COLLATE "C";

-- generated columns: declared again, computed again
CREATE TABLE orders (at date, net numeric, gross numeric GENERATED ALWAYS AS (net * 1.2) STORED)
  PARTITION BY RANGE (at);
CREATE TABLE orders_old PARTITION OF orders FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE orders_new PARTITION OF orders FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
INSERT INTO orders (at, net) SELECT date '2020-01-01' + i, i FROM generate_series(0, 700) i;
SELECT destor.tier_partition('orders_old', 'archive');
SELECT count(*), sum(net), sum(gross), bool_and(gross = net * 1.2) FROM orders;
INSERT INTO orders (at, net) VALUES ('2020-06-01', 10);
SELECT gross FROM orders WHERE at = '2020-06-01' ORDER BY gross;
SELECT destor.recall_partition('orders_old');
SELECT count(*), sum(net), sum(gross), bool_and(gross = net * 1.2) FROM orders;

-- policy by age: every partition whose upper bound is at least that old
CREATE TABLE ledger (day date NOT NULL, amount int) PARTITION BY RANGE (day);
CREATE TABLE ledger_2020 PARTITION OF ledger FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE ledger_2021 PARTITION OF ledger FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
CREATE TABLE ledger_future PARTITION OF ledger FOR VALUES FROM ('2021-01-01'::date + 1000000) TO (MAXVALUE);
CREATE TABLE ledger_rest PARTITION OF ledger DEFAULT;
INSERT INTO ledger SELECT date '2020-01-01' + i, i FROM generate_series(0, 800) i;
INSERT INTO ledger VALUES ('2021-01-01'::date + 1000001, 1), ('2019-05-05', 2);
SELECT * FROM destor.tier_partitions('ledger', 'archive', older_than => '1 year');
SELECT relname, relkind FROM pg_class
 WHERE oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'ledger'::regclass) ORDER BY 1;
SELECT count(*), sum(amount) FROM ledger;
SELECT * FROM destor.tier_partitions('ledger', 'archive', older_than => '1 year');
SELECT * FROM destor.tier_partitions('ledger', 'archive', older_than => '-1 day');

-- declared policies, applied together; one that fails does not stop the others
CREATE TABLE sales (at date NOT NULL, amount int) PARTITION BY RANGE (at);
CREATE TABLE sales_q1 PARTITION OF sales FOR VALUES FROM ('2022-01-01') TO ('2022-04-01');
CREATE TABLE sales_q2 PARTITION OF sales FOR VALUES FROM ('2022-04-01') TO ('2022-07-01');
CREATE TABLE sales_q3 PARTITION OF sales FOR VALUES FROM ('2022-07-01') TO ('2022-10-01');
INSERT INTO sales SELECT date '2022-01-01' + i, i FROM generate_series(0, 272) i;
CREATE TABLE pk_parent (id int PRIMARY KEY, at date) PARTITION BY RANGE (id);
CREATE TABLE pk_parent_1 PARTITION OF pk_parent FOR VALUES FROM (0) TO (10);
CREATE TABLE pk_parent_2 PARTITION OF pk_parent FOR VALUES FROM (10) TO (20);
ALTER TABLE pk_parent_1 ENABLE ROW LEVEL SECURITY;  -- refused: this policy fails
INSERT INTO destor.tiering_policies VALUES ('sales', 'archive', 1, NULL), ('pk_parent', 'archive', 1, NULL);
INSERT INTO destor.tiering_policies VALUES ('ledger', 'archive', 1, '1 day');
INSERT INTO destor.tiering_policies VALUES ('ledger', 'archive', -1, NULL);
SELECT * FROM destor.apply_tiering_policies() ORDER BY partition::text COLLATE "C";
SELECT * FROM destor.apply_tiering_policies();
SELECT count(*), sum(amount) FROM sales;
SELECT partition FROM destor.tiered_partitions WHERE parent = 'sales'::regclass ORDER BY partition::text COLLATE "C";
SET ROLE regress_destor_user;
SELECT * FROM destor.apply_tiering_policies();
INSERT INTO destor.tiering_policies VALUES ('sales', 'archive', 0, NULL);
RESET ROLE;
DELETE FROM destor.tiering_policies;
DROP TABLE sales, pk_parent;

-- names that need quoting, with quotes and percent signs in them
CREATE SCHEMA "it's 100%";
CREATE TABLE "it's 100%"."odd ""parent""" (at date NOT NULL, v int) PARTITION BY RANGE (at);
CREATE TABLE "it's 100%"."odd 'part'" PARTITION OF "it's 100%"."odd ""parent"""
  FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
INSERT INTO "it's 100%"."odd ""parent""" VALUES ('2020-02-02', 7);
COMMENT ON TABLE "it's 100%"."odd 'part'" IS 'a comment with ''quotes'' and 50%';
SELECT destor.tier_partition('"it''s 100%"."odd ''part''"', 'archive');
SELECT obj_description('"it''s 100%"."odd ''part''"'::regclass, 'pg_class') AS comment,
       (SELECT v FROM "it's 100%"."odd ""parent""") AS v;
SELECT destor.recall_partition('"it''s 100%"."odd ''part''"');
DROP SCHEMA "it's 100%" CASCADE;

-- column privileges come along; row-level security is refused
CREATE TABLE secured (at date NOT NULL, owner_name text, secret text) PARTITION BY RANGE (at);
CREATE TABLE secured_1 PARTITION OF secured FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
GRANT SELECT (at, owner_name) ON secured_1 TO regress_destor_user;
SELECT destor.tier_partition('secured_1', 'archive');
SELECT has_column_privilege('regress_destor_user', 'secured_1', 'owner_name', 'SELECT') AS col_granted,
       has_column_privilege('regress_destor_user', 'secured_1', 'secret', 'SELECT') AS secret_granted;
SELECT destor.recall_partition('secured_1');
ALTER TABLE secured_1 ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON secured_1 USING (owner_name = current_user);
SELECT destor.tier_partition('secured_1', 'archive');
DROP TABLE secured;

-- policies run as the table's owner, not as the superuser who applies them
GRANT USAGE ON FOREIGN SERVER archive, p1, p2, p3, p4, p5, p6 TO regress_destor_user;
CREATE SCHEMA user_space AUTHORIZATION regress_destor_user;
CREATE FUNCTION user_space.who(int) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RAISE NOTICE 'generated column computed as %', current_user;
  RETURN 'g' || $1;
END $$;
ALTER FUNCTION user_space.who(int) OWNER TO regress_destor_user;
SET ROLE regress_destor_user;
CREATE TABLE user_space.owned (at date NOT NULL, v int, g text GENERATED ALWAYS AS (user_space.who(v)) STORED)
  PARTITION BY RANGE (at);
CREATE TABLE user_space.owned_1 PARTITION OF user_space.owned FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE user_space.owned_2 PARTITION OF user_space.owned FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
INSERT INTO user_space.owned (at, v) VALUES ('2020-05-05', 1);
RESET ROLE;
INSERT INTO destor.tiering_policies VALUES ('user_space.owned', 'archive', 1, NULL);
SELECT * FROM destor.apply_tiering_policies();
SELECT current_user = 'regress_destor_user' AS still_me, g FROM user_space.owned;
DELETE FROM destor.tiering_policies;
DROP SCHEMA user_space CASCADE;

-- list partitions tier too (one at a time)
CREATE TABLE regions (region text, amount numeric) PARTITION BY LIST (region);
CREATE TABLE regions_eu PARTITION OF regions FOR VALUES IN ('eu', 'uk');
CREATE TABLE regions_us PARTITION OF regions FOR VALUES IN ('us');
INSERT INTO regions SELECT (ARRAY['eu', 'uk', 'us'])[1 + i % 3], i FROM generate_series(1, 300) i;
SELECT destor.tier_partition('regions_eu', 'archive');
SELECT region, count(*), sum(amount) FROM regions GROUP BY 1 ORDER BY 1;

-- refused, before anything is copied
SELECT destor.tier_partition('metrics_expected', 'archive');
SELECT destor.tier_partition('m2023_03', 'archive');
SELECT destor.recall_partition('m2023_04');
SELECT destor.tier_partition('m2023_04', 'nopool');
SELECT destor.tier_partition('m2023_04', 'p1');
SELECT * FROM destor.tier_partitions('regions', 'archive', 0);
SELECT * FROM destor.tier_partitions('metrics', 'archive', -1);
SELECT * FROM destor.tier_partitions('m2023_04', 'archive', 0);
CREATE TABLE keyed (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE keyed_1 PARTITION OF keyed FOR VALUES FROM (0) TO (100);
-- (a primary key is no reason: such a partition becomes a table USING destor, see tier_keys)
SELECT destor.tier_partition('keyed_1', 'archive');
SELECT * FROM destor.tier_partitions('keyed', 'archive', older_than => '1 day');
GRANT SELECT ON m2023_04 TO regress_destor_user;
SET ROLE regress_destor_user;
SELECT destor.tier_partition('m2023_04', 'archive');
RESET ROLE;
-- a partition that is itself partitioned: its leaves are tiered one by one
CREATE TABLE nested (at date NOT NULL, region text) PARTITION BY RANGE (at);
CREATE TABLE nested_2020 PARTITION OF nested FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')
  PARTITION BY LIST (region);
CREATE TABLE nested_2020_eu PARTITION OF nested_2020 FOR VALUES IN ('eu');
SELECT destor.tier_partition('nested_2020', 'archive');
SELECT destor.tier_partition('nested_2020_eu', 'archive');
DROP TABLE nested;
-- a policy whose table was dropped is reported and skipped
CREATE TABLE gone (at date NOT NULL) PARTITION BY RANGE (at);
INSERT INTO destor.tiering_policies VALUES ('gone', 'archive', 1, NULL);
CREATE TEMP TABLE gone_oid AS SELECT 'gone'::regclass::oid AS oid;
DROP TABLE gone;
SET client_min_messages = error;  -- the warning names the (varying) OID
SELECT count(*) AS tiered FROM destor.apply_tiering_policies();
RESET client_min_messages;
DELETE FROM destor.tiering_policies WHERE parent::oid = (SELECT oid FROM gone_oid);

DROP TABLE metrics, metrics_expected, regions, keyed, orders, ledger CASCADE;
SELECT count(*) AS tiered_left FROM destor.tiered_partitions;
-- the dropped partitions' segments went with them
SELECT count(*) AS orphan_segments FROM destor.segments s
 WHERE NOT EXISTS (SELECT FROM destor.tables t WHERE t.table_id = s.table_id);
