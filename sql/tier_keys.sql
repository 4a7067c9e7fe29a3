-- Partitions of a parent with a primary key, unique constraints and indexes
-- (issue 14 item 2) are tiered as tables USING destor on the pool: they keep
-- the parent's indexes and constraints and their own, their name, grants and
-- comment; queries on the parent use their indexes and give what an untiered
-- heap copy gives; a duplicate key is the same unique_violation as in heap;
-- recall_partition brings back a heap with the same indexes; a failure
-- leaves the heap partition as it was.
\i test/regress/setup.sql
\set VERBOSITY default
SET max_parallel_workers_per_gather = 0;
SET TimeZone = UTC;
CREATE TABLE tk_readings (id bigint, ts timestamptz NOT NULL, device int NOT NULL, value float8,
                       note text DEFAULT 'none', PRIMARY KEY (id, ts), UNIQUE (device, id, ts),
                       CHECK (value >= 0))
  PARTITION BY RANGE (ts);
CREATE INDEX ON tk_readings (device, ts);
CREATE TABLE tk_2023_01 PARTITION OF tk_readings FOR VALUES FROM ('2023-01-01') TO ('2023-02-01');
CREATE TABLE tk_2023_02 PARTITION OF tk_readings FOR VALUES FROM ('2023-02-01') TO ('2023-03-01');
CREATE TABLE tk_2023_03 PARTITION OF tk_readings FOR VALUES FROM ('2023-03-01') TO ('2023-04-01');
CREATE TABLE tk_other PARTITION OF tk_readings DEFAULT;
-- the partition's own index and CHECK, beside the parent's
CREATE INDEX tk_2023_01_note ON tk_2023_01 (lower(note)) WHERE note IS NOT NULL;
ALTER TABLE tk_2023_01 ADD CONSTRAINT tk_2023_01_small CHECK (value < 1000);
COMMENT ON TABLE tk_2023_01 IS 'January, keyed';
GRANT SELECT ON tk_2023_01 TO regress_destor_user;
INSERT INTO tk_readings (id, ts, device, value, note)
  SELECT i, timestamptz '2023-01-01 00:00+00' + i * interval '5 minutes', i % 23, (i % 900) / 10.0,
         CASE WHEN i % 6 = 0 THEN NULL ELSE 'n' || (i % 41) END
    FROM generate_series(0, 24000) i;
-- the untiered heap copy every answer is compared with
CREATE TABLE tk_heap (LIKE tk_readings INCLUDING ALL);
CREATE INDEX ON tk_heap (device, ts);
INSERT INTO tk_heap SELECT * FROM tk_readings;
CREATE FUNCTION tk_differing(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM ((%s EXCEPT ALL %s) UNION ALL (%s EXCEPT ALL %s)) d',
                 format(q, 'tk_readings'), format(q, 'tk_heap'),
                 format(q, 'tk_heap'), format(q, 'tk_readings')) INTO n;
  RETURN n;
END $$;
CREATE VIEW tk_shape AS
  SELECT c.relname, c.relkind, am.amname, pg_get_expr(c.relpartbound, c.oid) AS bound,
         obj_description(c.oid, 'pg_class') AS comment,
         has_table_privilege('regress_destor_user', c.oid, 'SELECT') AS granted
    FROM pg_class c LEFT JOIN pg_am am ON am.oid = c.relam
   WHERE c.relname LIKE 'tk_2023%' AND c.relkind IN ('r', 'f') ORDER BY 1;
CREATE VIEW tk_keys AS
  SELECT c.relname AS partition, regexp_replace(pg_get_indexdef(i.indexrelid), ' ON \S+', ' ON ...') AS indexdef,
         (SELECT string_agg(p.relname, ', ') FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent
           WHERE h.inhrelid = i.indexrelid) AS parent_index
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
   WHERE c.relname IN ('tk_2023_01', 'tk_2023_02') ORDER BY 1, 2;
CREATE VIEW tk_checks AS
  SELECT c.relname AS partition, con.conname, con.contype, pg_get_constraintdef(con.oid) AS def
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
   WHERE c.relname IN ('tk_2023_01', 'tk_2023_02') ORDER BY 1, 2;
CREATE TEMP TABLE keys_before AS SELECT * FROM tk_keys;
CREATE TEMP TABLE checks_before AS SELECT * FROM tk_checks;
-- the duplicate key error of a heap partition, to compare with
INSERT INTO tk_readings VALUES (10, '2023-01-01 00:50+00', 1, 1);

-- tier one month: a table USING destor in its place, keys and all
SELECT destor.tier_partition('tk_2023_01', 'archive');
SELECT * FROM tk_shape;
SELECT partition, pool, segments > 0 AS has_segments, stored_rows, storage FROM destor.tiered_partitions;
SELECT (SELECT count(*) FROM tk_keys) AS indexes,
       (SELECT count(*) FROM (SELECT * FROM tk_keys EXCEPT SELECT * FROM keys_before) d) AS indexes_changed,
       (SELECT count(*) FROM tk_checks) AS constraints,
       (SELECT count(*) FROM (SELECT * FROM tk_checks EXCEPT SELECT * FROM checks_before) d) AS constraints_changed;
SELECT attname, attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'tk_2023_01'::regclass AND a.attnum > 0 ORDER BY a.attnum;
-- the same answers as the heap copy
SELECT tk_differing('SELECT * FROM %s');
SELECT tk_differing('SELECT * FROM %s WHERE id = 77 AND ts = ''2023-01-01 06:25+00''');
SELECT tk_differing('SELECT id, value FROM %s WHERE device = 5 AND ts >= ''2023-01-10'' AND ts < ''2023-01-11''');
SELECT tk_differing('SELECT device, count(*), sum(value), count(note) FROM %s GROUP BY device');
SELECT * FROM tk_readings WHERE id = 77 AND ts = '2023-01-01 06:25+00';
-- the planner uses the tiered month's indexes
EXPLAIN (COSTS OFF) SELECT * FROM tk_readings WHERE id = 77 AND ts = '2023-01-01 06:25+00';
EXPLAIN (COSTS OFF) SELECT id FROM tk_readings
 WHERE device = 5 AND ts >= '2023-01-10' AND ts < '2023-01-11';
SELECT count(*) FROM tk_readings WHERE device = 5 AND ts >= '2023-01-10' AND ts < '2023-01-11';
SET ROLE regress_destor_user;
SELECT count(*) AS granted_read FROM tk_2023_01;
RESET ROLE;
-- a duplicate key: the same unique_violation as heap's above
INSERT INTO tk_readings VALUES (10, '2023-01-01 00:50+00', 1, 1);
INSERT INTO tk_readings (id, ts, device, value) VALUES (10, '2023-01-01 00:50+00', 1, 1)
  ON CONFLICT DO NOTHING;
-- the tiered month's constraints still hold: CHECK, NOT NULL, its own CHECK
INSERT INTO tk_readings VALUES (-1, '2023-01-02', 1, -5);
INSERT INTO tk_readings VALUES (-1, '2023-01-02', NULL, 5);
INSERT INTO tk_readings VALUES (-1, '2023-01-02', 1, 5000);
-- new rows reach it, with the parent's default
INSERT INTO tk_readings (id, ts, device, value) VALUES (-1, '2023-01-31 23:59+00', 99, 1.5);
INSERT INTO tk_heap (id, ts, device, value) VALUES (-1, '2023-01-31 23:59+00', 99, 1.5);
SELECT tableoid::regclass, * FROM tk_readings WHERE id = -1;
SELECT tk_differing('SELECT * FROM %s');

-- the policy forms tier the next month the same way, and leave tiered ones alone
SELECT * FROM destor.tier_partitions('tk_readings', 'archive', keep_local => 1);
SELECT * FROM destor.tier_partitions('tk_readings', 'archive', keep_local => 1);
SELECT * FROM tk_shape;
SELECT partition, storage FROM destor.tiered_partitions ORDER BY 1;
SELECT tk_differing('SELECT * FROM %s WHERE ts < ''2023-03-01''');
SELECT count(*) AS changed FROM (SELECT * FROM tk_keys EXCEPT SELECT * FROM keys_before) d;
INSERT INTO destor.tiering_policies VALUES ('tk_readings', 'archive', 0, NULL);
SELECT * FROM destor.apply_tiering_policies();
SELECT * FROM destor.apply_tiering_policies();
DELETE FROM destor.tiering_policies;
SELECT tk_differing('SELECT * FROM %s');

-- recall: a heap again, with the same indexes and constraints
SELECT destor.recall_partition('tk_2023_01');
SELECT destor.recall_partition('tk_2023_02');
SELECT * FROM tk_shape;
SELECT (SELECT count(*) FROM (SELECT * FROM tk_keys EXCEPT SELECT * FROM keys_before) d) AS indexes_changed,
       (SELECT count(*) FROM (SELECT * FROM tk_checks EXCEPT SELECT * FROM checks_before) d) AS constraints_changed;
SELECT tk_differing('SELECT * FROM %s');
INSERT INTO tk_readings VALUES (10, '2023-01-01 00:50+00', 1, 1);
SELECT partition FROM destor.tiered_partitions ORDER BY 1;

-- a failure leaves the heap partition as it was: a NOT VALID check the
-- rows break fails the copy
ALTER TABLE tk_2023_02 ADD CONSTRAINT tk_2023_02_odd CHECK (value > 50) NOT VALID;
CREATE TEMP TABLE am_before AS SELECT count(*) FROM destor.am_tables;
DO $$
BEGIN
  PERFORM destor.tier_partition('tk_2023_02', 'archive');
EXCEPTION WHEN check_violation THEN
  RAISE NOTICE 'tiering failed: %', SQLSTATE;
END $$;
SELECT * FROM tk_shape WHERE relname = 'tk_2023_02';
SELECT (SELECT count(*) FROM destor.am_tables) - count AS am_tables_left FROM am_before;
SELECT count(*) AS changed FROM (SELECT * FROM tk_keys EXCEPT SELECT * FROM keys_before) d;
SELECT tk_differing('SELECT * FROM %s');
ALTER TABLE tk_2023_02 DROP CONSTRAINT tk_2023_02_odd;

-- refused, before anything is copied: tiered already, row-level security,
-- a pool that is not one; recalling a heap
SELECT destor.tier_partition('tk_2023_03', 'archive');
SELECT destor.recall_partition('tk_2023_03');
ALTER TABLE tk_2023_03 ENABLE ROW LEVEL SECURITY;
SELECT destor.tier_partition('tk_2023_03', 'archive');
ALTER TABLE tk_2023_03 DISABLE ROW LEVEL SECURITY;
SELECT destor.tier_partition('tk_2023_03', 'p1');
SELECT destor.tier_partition('tk_2023_03', 'nopool');
CREATE INDEX tk_2023_03_brin ON tk_2023_03 USING brin (ts);
SELECT destor.tier_partition('tk_2023_03', 'archive');
DROP INDEX tk_2023_03_brin;
SELECT destor.recall_partition('tk_2023_03');

-- the caller needs USAGE on the pool, as for a foreign table; policies run as the owner
REVOKE USAGE ON FOREIGN SERVER archive, p1, p2, p3, p4, p5, p6 FROM regress_destor_user;
CREATE SCHEMA k_space AUTHORIZATION regress_destor_user;
SET ROLE regress_destor_user;
CREATE TABLE k_space.k_owned (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE k_space.k_owned_1 PARTITION OF k_space.k_owned FOR VALUES FROM (0) TO (10);
CREATE TABLE k_space.k_owned_2 PARTITION OF k_space.k_owned FOR VALUES FROM (10) TO (20);
INSERT INTO k_space.k_owned VALUES (1, 'a'), (11, 'b');
SELECT destor.tier_partition('k_space.k_owned_1', 'archive');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER archive, p1, p2, p3, p4, p5, p6 TO regress_destor_user;
INSERT INTO destor.tiering_policies VALUES ('k_space.k_owned', 'archive', 1, NULL);
SELECT * FROM destor.apply_tiering_policies();
SELECT c.relname, am.amname, pg_get_userbyid(c.relowner) AS owner
  FROM pg_class c JOIN pg_am am ON am.oid = c.relam
 WHERE c.relname LIKE 'k_owned_%' AND c.relkind = 'r' ORDER BY 1;
SET ROLE regress_destor_user;
SELECT * FROM k_space.k_owned ORDER BY id;
RESET ROLE;
DELETE FROM destor.tiering_policies;
DROP SCHEMA k_space CASCADE;
REVOKE USAGE ON FOREIGN SERVER archive, p1, p2, p3, p4, p5, p6 FROM regress_destor_user;

-- a view naming the partition itself: refused up front, with the view named
CREATE VIEW tk_march AS SELECT count(*) FROM tk_2023_03;
SELECT destor.tier_partition('tk_2023_03', 'archive');
DROP VIEW tk_march;

-- DROP of the parent takes the tiered months' segments along
SELECT destor.tier_partition('tk_2023_03', 'archive');
CREATE TEMP TABLE r_ids AS SELECT table_id FROM destor.am_tables a JOIN pg_class c
  ON c.relfilenode = a.relfilenode WHERE c.relname = 'tk_2023_03';
DROP TABLE tk_readings, tk_heap CASCADE;
SELECT count(*) AS segments_left FROM destor.segments WHERE table_id IN (SELECT table_id FROM r_ids);
DROP FUNCTION tk_differing(text);
DROP VIEW tk_shape, tk_keys, tk_checks;

-- a parent with a plain index and no key: a table USING destor as well, so
-- the tiered month keeps the index and the planner uses it; a parent without
-- indexes, or one whose partition has an index kind the access method lacks
-- (BRIN) and no key, still gets a foreign table
CREATE TABLE tk_plain (ts timestamptz NOT NULL, device int, value float8) PARTITION BY RANGE (ts);
CREATE INDEX tk_plain_dev ON tk_plain (device, ts);
CREATE TABLE tk_plain_1 PARTITION OF tk_plain FOR VALUES FROM ('2023-01-01') TO ('2023-02-01');
CREATE TABLE tk_plain_2 PARTITION OF tk_plain FOR VALUES FROM ('2023-02-01') TO ('2023-03-01');
INSERT INTO tk_plain SELECT timestamptz '2023-01-01 00:00+00' + i * interval '5 minutes', i % 23, i % 100
  FROM generate_series(0, 12000) i;
CREATE TABLE tk_plain_heap AS SELECT * FROM tk_plain;
CREATE TABLE tk_bare (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
CREATE TABLE tk_bare_1 PARTITION OF tk_bare FOR VALUES FROM ('2023-01-01') TO ('2023-02-01');
CREATE TABLE tk_brin (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
CREATE INDEX ON tk_brin USING brin (ts);
CREATE TABLE tk_brin_1 PARTITION OF tk_brin FOR VALUES FROM ('2023-01-01') TO ('2023-02-01');
INSERT INTO tk_bare VALUES ('2023-01-05', 1);
INSERT INTO tk_brin VALUES ('2023-01-05', 1);
SELECT destor.tier_partition('tk_plain_1', 'archive');
SELECT destor.tier_partition('tk_bare_1', 'archive');
SELECT destor.tier_partition('tk_brin_1', 'archive');
SELECT partition, storage FROM destor.tiered_partitions
 WHERE partition::text IN ('tk_plain_1', 'tk_bare_1', 'tk_brin_1') ORDER BY 1;
SELECT regexp_replace(pg_get_indexdef(i.indexrelid), ' ON \S+', ' ON ...') AS indexdef
  FROM pg_index i WHERE i.indrelid = 'tk_plain_1'::regclass;
EXPLAIN (COSTS OFF) SELECT * FROM tk_plain
 WHERE device = 5 AND ts >= '2023-01-10' AND ts < '2023-01-11';
SELECT count(*) AS differing FROM (
  (SELECT * FROM tk_plain WHERE device = 5 AND ts >= '2023-01-10' AND ts < '2023-01-11'
   EXCEPT ALL SELECT * FROM tk_plain_heap WHERE device = 5 AND ts >= '2023-01-10' AND ts < '2023-01-11')
  UNION ALL
  (SELECT * FROM tk_plain_heap WHERE device = 5 AND ts >= '2023-01-10' AND ts < '2023-01-11'
   EXCEPT ALL SELECT * FROM tk_plain WHERE device = 5 AND ts >= '2023-01-10' AND ts < '2023-01-11')) d;
SELECT count(*) AS matching FROM tk_plain WHERE device = 5 AND ts >= '2023-01-10' AND ts < '2023-01-11';
SELECT count(*) AS differing FROM (
  (SELECT * FROM tk_plain EXCEPT ALL SELECT * FROM tk_plain_heap)
  UNION ALL
  (SELECT * FROM tk_plain_heap EXCEPT ALL SELECT * FROM tk_plain)) d;
-- recall brings back a heap with the parent's index
SELECT destor.recall_partition('tk_plain_1');
SELECT c.relkind, am.amname, (SELECT count(*) FROM pg_index WHERE indrelid = c.oid) AS indexes
  FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.relname = 'tk_plain_1';
DROP TABLE tk_plain, tk_plain_heap, tk_bare, tk_brin;
