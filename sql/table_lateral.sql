-- Queries in which a destor table is referenced laterally, parameterized
-- by an outer relation, or read whole-row give the same answers as the
-- same queries on heap tables.  Each query is written once with %1$s for
-- the schema, and run on schema tl_h (heap tables) and tl_d (the same rows
-- in destor tables).
\i test/regress/setup.sql
\set q1 :dir '/tl1'
\set q2 :dir '/tl2'
\set q3 :dir '/tl3'
\set mk 'cat > /dev/null; mkdir -p ' :dir '/tl1 ' :dir '/tl2 ' :dir '/tl3'
COPY (SELECT 1) TO PROGRAM :'mk';
CREATE SERVER tl1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q1');
CREATE SERVER tl2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q2');
CREATE SERVER tl3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q3');
CREATE SERVER tl_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'tl1,tl2,tl3', data_shards '2', parity_shards '1');

CREATE SCHEMA tl_h;
CREATE SCHEMA tl_d;
CREATE TABLE tl_h.t (a int, b int);
CREATE TABLE tl_h.u (a int, c text, ia int[]);
CREATE FOREIGN TABLE tl_d.t (a int, b int) SERVER tl_pool OPTIONS (row_group_rows '100');
CREATE FOREIGN TABLE tl_d.u (a int, c text, ia int[]) SERVER tl_pool OPTIONS (row_group_rows '100');
INSERT INTO tl_h.t SELECT i, i * 10 FROM generate_series(1, 5) i;
INSERT INTO tl_h.t VALUES (NULL, 7), (3, NULL);
INSERT INTO tl_h.u SELECT i % 7, 'c' || i, ARRAY[i, i + 1] FROM generate_series(1, 400) i;
-- the tables of PostgreSQL's regression tests that found these bugs
CREATE TABLE tl_h.int4_tbl (f1 int4);
CREATE TABLE tl_h.int2_tbl (f1 int2);
CREATE TABLE tl_h.int8_tbl (q1 int8, q2 int8);
CREATE FOREIGN TABLE tl_d.int4_tbl (f1 int4) SERVER tl_pool OPTIONS (row_group_rows '100');
CREATE FOREIGN TABLE tl_d.int2_tbl (f1 int2) SERVER tl_pool OPTIONS (row_group_rows '100');
CREATE FOREIGN TABLE tl_d.int8_tbl (q1 int8, q2 int8) SERVER tl_pool OPTIONS (row_group_rows '100');
INSERT INTO tl_h.int4_tbl VALUES (0), (123456), (-123456), (2147483647), (-2147483647);
INSERT INTO tl_h.int2_tbl VALUES (0), (1234), (-1234), (32767), (-32767);
INSERT INTO tl_h.int8_tbl VALUES (123, 456), (123, 4567890123456789), (4567890123456789, 123),
  (4567890123456789, 4567890123456789), (4567890123456789, -4567890123456789);
INSERT INTO tl_d.int4_tbl SELECT * FROM tl_h.int4_tbl;
INSERT INTO tl_d.int2_tbl SELECT * FROM tl_h.int2_tbl;
INSERT INTO tl_d.int8_tbl SELECT * FROM tl_h.int8_tbl;
INSERT INTO tl_d.t SELECT * FROM tl_h.t;
INSERT INTO tl_d.u SELECT * FROM tl_h.u;
ANALYZE tl_h.t, tl_h.u, tl_d.t, tl_d.u;

-- rows of query q (on heap), and how many rows differ between heap and destor
CREATE FUNCTION tl_diff(q text, OUT heap_rows bigint, OUT differ bigint) LANGUAGE plpgsql AS $$
DECLARE n bigint; m bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM (%s) x', format(q, 'tl_h')) INTO heap_rows;
  EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', format(q, 'tl_h'), format(q, 'tl_d')) INTO n;
  EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', format(q, 'tl_d'), format(q, 'tl_h')) INTO m;
  differ := n + m;
END $$;

CREATE TABLE tl_queries (n int, q text);
INSERT INTO tl_queries VALUES
 -- the issue's example: an outer column in a LEFT JOIN LATERAL's target list
 (1, 'SELECT * FROM %1$s.t x LEFT JOIN LATERAL (SELECT y.a, x.b AS xb FROM %1$s.t y) s ON x.a = s.a'),
 (2, 'SELECT * FROM %1$s.t x JOIN LATERAL (SELECT y.a, x.b AS xb, y.b + x.b AS s FROM %1$s.t y) s ON x.a = s.a'),
 (3, 'SELECT x.a, s.* FROM %1$s.t x, LATERAL (SELECT y.b FROM %1$s.t y WHERE y.a = x.a + 1) s'),
 (4, 'SELECT x.a, s.c FROM %1$s.t x LEFT JOIN LATERAL (SELECT count(*) AS c FROM %1$s.t y WHERE y.b > x.b) s ON true'),
 (5, 'SELECT x.a, s.* FROM %1$s.t x LEFT JOIN LATERAL (SELECT y.a + x.a AS s, x.b FROM %1$s.t y WHERE y.a = x.a OFFSET 0) s ON true'),
 (6, 'SELECT x.a, g FROM %1$s.t x, generate_series(x.a, x.a + 2) g'),
 (7, 'SELECT x.a, x.b, s.* FROM %1$s.t x LEFT JOIN LATERAL (SELECT u.c, x.b AS xb FROM %1$s.u WHERE u.a = x.a LIMIT 2) s ON true'),
 (8, 'SELECT x.a, s.* FROM tl_h.t x LEFT JOIN LATERAL (SELECT y.a AS ya, x.b AS xb FROM %1$s.t y) s ON x.a = s.ya'),
 (9, 'SELECT y.a, s.* FROM %1$s.t y LEFT JOIN LATERAL (SELECT x.b, y.b AS yb FROM tl_h.t x) s ON s.b = y.b'),
 -- whole-row references, inside and outside a lateral subquery
 (10, 'SELECT x.a, s.r::text FROM %1$s.t x LEFT JOIN LATERAL (SELECT y AS r FROM %1$s.t y WHERE y.a = x.a) s ON true'),
 (11, 'SELECT s.r::text FROM %1$s.t x, LATERAL (SELECT x AS r) s'),
 (12, 'SELECT x::text, s.xb FROM %1$s.t x LEFT JOIN LATERAL (SELECT y.a, x.b AS xb FROM %1$s.t y) s ON x.a = s.a'),
 (13, 'SELECT x.a, (SELECT y::text FROM %1$s.t y WHERE y.a = x.a AND y.b IS NOT NULL) FROM %1$s.t x'),
 -- correlated subqueries, EXISTS, = ANY, in SELECT and WHERE
 (14, 'SELECT x.a, (SELECT max(u.c) FROM %1$s.u WHERE u.a = x.a) FROM %1$s.t x'),
 (15, 'SELECT * FROM %1$s.t x WHERE EXISTS (SELECT 1 FROM %1$s.u WHERE u.a = x.a AND u.ia[1] > x.b)'),
 (16, 'SELECT * FROM %1$s.t x WHERE x.a = ANY (SELECT u.a FROM %1$s.u WHERE u.c LIKE ''c1%%'')'),
 -- a lateral reference inside a set-returning function over the table's array
 (17, 'SELECT x.a, e FROM %1$s.t x, LATERAL (SELECT unnest(u.ia) + x.a AS e FROM %1$s.u WHERE u.a = x.a AND u.c < ''c2'') s'),
 -- grouping and window functions over a lateral join
 (18, 'SELECT x.a, count(*), sum(s.ia1) FROM %1$s.t x JOIN LATERAL (SELECT u.ia[1] AS ia1 FROM %1$s.u WHERE u.a = x.a) s ON true GROUP BY x.a'),
 (19, 'SELECT x.a, s.c, row_number() OVER (PARTITION BY x.a ORDER BY s.c) FROM %1$s.t x LEFT JOIN LATERAL (SELECT c FROM %1$s.u WHERE u.a = x.a AND u.c < ''c3'') s ON true'),
 -- a lateral subquery that is not pulled up and is rescanned with new parameters
 (20, 'SELECT x.a, s.* FROM %1$s.t x CROSS JOIN LATERAL (SELECT u.a, u.c FROM %1$s.u WHERE u.a >= x.a ORDER BY u.c LIMIT 3) s'),
 -- from PostgreSQL's join.sql
 (21, 'SELECT * FROM %1$s.int8_tbl a LEFT JOIN LATERAL (SELECT *, a.q2 AS x FROM %1$s.int8_tbl b) ss ON a.q2 = ss.q1'),
 (22, 'SELECT * FROM %1$s.int8_tbl a LEFT JOIN LATERAL (SELECT *, coalesce(a.q2, 42) AS x FROM %1$s.int8_tbl b) ss ON a.q2 = ss.q1'),
 (23, 'SELECT * FROM %1$s.int4_tbl AS i41, LATERAL (SELECT 1 AS x FROM (SELECT i41.f1 AS lat, i42.f1 AS loc FROM %1$s.int8_tbl AS i81, %1$s.int4_tbl AS i42) AS ss1 RIGHT JOIN %1$s.int4_tbl AS i43 ON (i43.f1 > 1) WHERE ss1.loc = ss1.lat) AS ss2 WHERE i41.f1 > 0'),
 (24, 'SELECT * FROM %1$s.int8_tbl a LEFT JOIN LATERAL (SELECT b.q1 AS bq1, c.q1 AS cq1, least(a.q1, b.q1, c.q1) FROM %1$s.int8_tbl b CROSS JOIN %1$s.int8_tbl c) ss ON a.q2 = ss.bq1'),
 (25, 'SELECT i.f1, k.coalesce::text FROM %1$s.int4_tbl i LEFT JOIN LATERAL (SELECT coalesce(i) FROM %1$s.int2_tbl j WHERE i.f1 = j.f1) k ON true'),
 (26, 'SELECT * FROM %1$s.int8_tbl a, LATERAL (SELECT * FROM %1$s.int8_tbl b WHERE a.q2 = b.q1 OFFSET 0) ss');

SELECT n, (tl_diff(q)).* FROM tl_queries ORDER BY n;

-- again with nested loops only, so that parameterized paths are chosen
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET enable_material = off;
SELECT n, (tl_diff(q)).* FROM tl_queries ORDER BY n;
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_material;

-- the issue's example, shown
SELECT * FROM tl_d.t x LEFT JOIN LATERAL (SELECT y.a, x.b AS xb FROM tl_d.t y) s ON x.a = s.a
 ORDER BY x.a, x.b;
EXPLAIN (COSTS OFF)
SELECT * FROM tl_d.t x LEFT JOIN LATERAL (SELECT y.a, x.b AS xb FROM tl_d.t y) s ON x.a = s.a;

-- UPDATE and DELETE with a lateral join and a correlated subquery
BEGIN;
UPDATE tl_h.t x SET b = s.m FROM tl_h.int4_tbl i, LATERAL (SELECT max(u.ia[2]) AS m FROM tl_h.u WHERE u.a = i.f1 + 3) s
 WHERE x.a < 3 AND i.f1 = 0;
UPDATE tl_d.t x SET b = s.m FROM tl_d.int4_tbl i, LATERAL (SELECT max(u.ia[2]) AS m FROM tl_d.u WHERE u.a = i.f1 + 3) s
 WHERE x.a < 3 AND i.f1 = 0;
UPDATE tl_h.t x SET a = (SELECT count(*) FROM tl_h.u WHERE u.a = x.a) WHERE x.b > 30;
UPDATE tl_d.t x SET a = (SELECT count(*) FROM tl_d.u WHERE u.a = x.a) WHERE x.b > 30;
DELETE FROM tl_h.t x WHERE x.b < (SELECT avg(y.b) FROM tl_h.t y WHERE y.a <> x.a);
DELETE FROM tl_d.t x WHERE x.b < (SELECT avg(y.b) FROM tl_d.t y WHERE y.a <> x.a);
SELECT (tl_diff('SELECT * FROM %1$s.t')).*;
ROLLBACK;

DROP SCHEMA tl_h CASCADE;
DROP SCHEMA tl_d CASCADE;
DROP TABLE tl_queries;
DROP FUNCTION tl_diff(text);
DROP SERVER tl_pool;
DROP SERVER tl1, tl2, tl3;
