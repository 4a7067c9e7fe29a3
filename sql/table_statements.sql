-- A destor table behaves as a heap table in every kind of statement:
-- functions called by an INSERT, UPDATE or DELETE see the rows that
-- statement already changed; CREATE TABLE AS, SELECT INTO, materialized
-- views and COPY (query) TO work over parallel plans (catalog reads inside
-- a query are read-only, so they are safe in parallel mode); triggers on
-- other tables and PL/pgSQL loops read destor tables mid-statement.
\i test/regress/setup.sql
\set q1 :dir '/ts1'
\set q2 :dir '/ts2'
\set q3 :dir '/ts3'
\set mk 'cat > /dev/null; mkdir -p ' :dir '/ts1 ' :dir '/ts2 ' :dir '/ts3'
COPY (SELECT 1) TO PROGRAM :'mk';
CREATE SERVER ts1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q1');
CREATE SERVER ts2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q2');
CREATE SERVER ts3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q3');
CREATE SERVER ts_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'ts1,ts2,ts3', data_shards '2', parity_shards '1');

-- 1. the issue's example: heap gives 1, 13, 23
CREATE TABLE vh (a int);
CREATE FOREIGN TABLE vd (a int) SERVER ts_pool;
INSERT INTO vh VALUES (1), (2), (3);
INSERT INTO vd VALUES (1), (2), (3);
CREATE FUNCTION maxvh() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT max(a) FROM vh';
CREATE FUNCTION maxvd() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT max(a) FROM vd';
UPDATE vh SET a = maxvh() + 10 WHERE a > 1;
UPDATE vd SET a = maxvd() + 10 WHERE a > 1;
SELECT a FROM vh ORDER BY a;
SELECT a FROM vd ORDER BY a;
-- a PL/pgSQL function, and a STABLE one (which, as with heap, does not see them)
CREATE FUNCTION cntvd_plpgsql(lim int) RETURNS bigint LANGUAGE plpgsql VOLATILE AS
  $$ BEGIN RETURN (SELECT count(*) FROM vd WHERE a >= lim); END $$;
CREATE FUNCTION cntvh_plpgsql(lim int) RETURNS bigint LANGUAGE plpgsql VOLATILE AS
  $$ BEGIN RETURN (SELECT count(*) FROM vh WHERE a >= lim); END $$;
CREATE FUNCTION cntvd_stable(lim int) RETURNS bigint LANGUAGE sql STABLE AS
  'SELECT count(*) FROM vd WHERE a >= lim';
CREATE FUNCTION cntvh_stable(lim int) RETURNS bigint LANGUAGE sql STABLE AS
  'SELECT count(*) FROM vh WHERE a >= lim';
UPDATE vh SET a = 100 + cntvh_plpgsql(100) + cntvh_stable(100) * 1000 WHERE a > 1;
UPDATE vd SET a = 100 + cntvd_plpgsql(100) + cntvd_stable(100) * 1000 WHERE a > 1;
SELECT (SELECT array_agg(a ORDER BY a) FROM vh) AS heap, (SELECT array_agg(a ORDER BY a) FROM vd) AS destor;

-- 2. more rows than a row group: some of the statement's new rows are in
-- segments it wrote, some still buffered; deletions so far are seen too
CREATE TABLE wh (a int);
CREATE FOREIGN TABLE wd (a int) SERVER ts_pool OPTIONS (row_group_rows '100');
INSERT INTO wh SELECT generate_series(1, 250);
INSERT INTO wd SELECT generate_series(1, 250);
CREATE FUNCTION cntwh(lim int) RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT count(*) FROM wh WHERE a >= lim';
CREATE FUNCTION cntwd(lim int) RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT count(*) FROM wd WHERE a >= lim';
CREATE FUNCTION allwh() RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT count(*) FROM wh';
CREATE FUNCTION allwd() RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT count(*) FROM wd';
-- each row gets the number of rows already updated: 0, 1, ..., 249 in any order
UPDATE wh SET a = 100000 + cntwh(100000);
UPDATE wd SET a = 100000 + cntwd(100000);
SELECT count(*), count(DISTINCT a), sum(a), min(a), max(a) FROM wh;
SELECT count(*), count(DISTINCT a), sum(a), min(a), max(a) FROM wd;
-- INSERT ... SELECT: each new row counts the ones inserted before it
INSERT INTO wh SELECT 200000 + cntwh(200000) FROM generate_series(1, 150);
INSERT INTO wd SELECT 200000 + cntwd(200000) FROM generate_series(1, 150);
SELECT count(*), count(DISTINCT a), sum(a) FROM wh WHERE a >= 200000;
SELECT count(*), count(DISTINCT a), sum(a) FROM wd WHERE a >= 200000;
-- DELETE ... RETURNING: each deleted row sees the deletions before it
WITH d AS (DELETE FROM wh WHERE a < 100030 RETURNING allwh() AS n) SELECT count(*), sum(n), min(n), max(n) FROM d;
WITH d AS (DELETE FROM wd WHERE a < 100030 RETURNING allwd() AS n) SELECT count(*), sum(n), min(n), max(n) FROM d;
-- the statement's own scan does not see its changes (no Halloween problem)
UPDATE wd SET a = a + 1000000 WHERE a >= 200000;
SELECT count(*) FROM wd WHERE a >= 1200000;
-- a later statement of the same transaction, and a rolled-back subtransaction
BEGIN;
UPDATE wd SET a = -a WHERE a >= 1200000;
SELECT count(*) FROM wd WHERE a < 0;
SAVEPOINT s;
UPDATE wd SET a = 1 / (cntwd(-2000000) - cntwd(-2000000)) WHERE a < 0;
ROLLBACK TO s;
SELECT count(*) FROM wd WHERE a < 0;
ROLLBACK;
-- a trigger on another table that reads the destor table while it is updated
CREATE TABLE wlog (n bigint);
CREATE FUNCTION wlog_row() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO wlog SELECT count(*) FROM wd WHERE a >= 5000000; RETURN NEW; END $$;
CREATE TABLE wside (x int);
CREATE TRIGGER wside_ins AFTER INSERT ON wside FOR EACH ROW EXECUTE FUNCTION wlog_row();
CREATE FUNCTION wside_add(v int) RETURNS int LANGUAGE plpgsql VOLATILE AS
  $$ BEGIN INSERT INTO wside VALUES (v); RETURN v; END $$;
UPDATE wd SET a = 5000000 + wside_add(a) WHERE a BETWEEN 200000 AND 2000000 AND a % 10 = 0;
SELECT count(*), sum(n), max(n) FROM wlog;

-- an AFTER ROW trigger on the table itself sees the row its UPDATE wrote
-- (plpgsql.sql's patchfield triggers recursed forever when it did not)
CREATE FOREIGN TABLE ta (k int, v text) SERVER ts_pool;
INSERT INTO ta VALUES (1, 'old'), (2, 'old');
CREATE FUNCTION ta_after() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'row % sees %, table has % new', NEW.k, (SELECT v FROM ta WHERE k = NEW.k),
    (SELECT count(*) FROM ta WHERE v = 'new');
  RETURN NULL;
END $$;
CREATE TRIGGER ta_after AFTER UPDATE ON ta FOR EACH ROW EXECUTE FUNCTION ta_after();
UPDATE ta SET v = 'new';
DROP FOREIGN TABLE ta;
DROP FUNCTION ta_after();

-- 3. statements over parallel plans
CREATE FOREIGN TABLE big (a int, b text) SERVER ts_pool OPTIONS (row_group_rows '100');
INSERT INTO big SELECT i, 'b' || i FROM generate_series(1, 5000) i;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) CREATE TABLE big_ctas AS SELECT count(*) AS n, sum(a) AS s FROM big WHERE a % 3 = 0;
CREATE TABLE big_ctas AS SELECT count(*) AS n, sum(a) AS s FROM big WHERE a % 3 = 0;
SELECT * FROM big_ctas;
CREATE TABLE big_rows AS SELECT a, b FROM big WHERE a % 7 = 0;
SELECT count(*), sum(a), max(b) FROM big_rows;
SELECT count(*) AS n, sum(a) AS s INTO big_into FROM big WHERE b LIKE 'b1%';
SELECT * FROM big_into;
CREATE MATERIALIZED VIEW big_mv AS SELECT a % 5 AS k, count(*) AS n, sum(a) AS s FROM big GROUP BY 1;
SELECT * FROM big_mv ORDER BY k;
INSERT INTO big VALUES (5001, 'new');
REFRESH MATERIALIZED VIEW big_mv;
SELECT * FROM big_mv ORDER BY k;
BEGIN;
CREATE TABLE big_side (x int);
INSERT INTO big_side VALUES (1);
COPY (SELECT count(*), sum(a) FROM big) TO STDOUT;
EXPLAIN (COSTS OFF) INSERT INTO big_side SELECT count(*) FROM big;
INSERT INTO big_side SELECT count(*) FROM big;
SELECT * FROM big_side ORDER BY x;
COMMIT;
-- a PL/pgSQL loop over a destor table that writes as it goes
DO $$
DECLARE r record; n int := 0;
BEGIN
  FOR r IN SELECT a FROM big WHERE a <= 300 LOOP
    INSERT INTO big_side VALUES (r.a);
    n := n + 1;
  END LOOP;
  RAISE NOTICE 'loop read % rows', n;
END $$;
SELECT count(*) FROM big_side;
-- a function whose query has a parallel plan cached before the UPDATE
-- that calls it: the leader reads the statement's changes alone
CREATE FUNCTION bigcount() RETURNS bigint LANGUAGE plpgsql VOLATILE AS
  $$ DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM big WHERE b LIKE 'c%'; RETURN n; END $$;
EXPLAIN (COSTS OFF) SELECT count(*) FROM big WHERE b LIKE 'c%';
SELECT bigcount();
BEGIN;
UPDATE big SET b = 'c' || bigcount() WHERE a <= 4;
SELECT array_agg(b ORDER BY b) FROM big WHERE a <= 4;
ROLLBACK;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

DROP MATERIALIZED VIEW big_mv;
DROP TABLE big_ctas, big_rows, big_into, big_side, wlog, wside, vh, wh;
DROP FOREIGN TABLE vd, wd, big;
DROP FUNCTION maxvh(), maxvd(), cntvd_plpgsql(int), cntvh_plpgsql(int), cntvd_stable(int),
  cntvh_stable(int), cntwh(int), cntwd(int), allwh(), allwd(), wlog_row(), wside_add(int), bigcount();
DROP SERVER ts_pool;
DROP SERVER ts1, ts2, ts3;
