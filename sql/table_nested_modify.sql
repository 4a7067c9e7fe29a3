-- A function called by an UPDATE or DELETE of a destor table may itself
-- modify that table, as with heap: it updates or deletes rows the outer
-- statement already wrote (some in segments it finished, some still
-- buffered), and when it changes a row the outer statement has yet to
-- reach, the outer statement fails as heap's does rather than writing the
-- row twice.  DELETE ... RETURNING on a partitioned table whose partitions
-- are destor tables (with different row types) returns the old rows.
-- Each case runs on a heap table (..h) and a destor table (..d).
\getenv dir DESTOR_REGRESS_DIR
\set q1 :dir '/tn1'
\set q2 :dir '/tn2'
\set q3 :dir '/tn3'
\set mk 'cat > /dev/null; mkdir -p ' :dir '/tn1 ' :dir '/tn2 ' :dir '/tn3'
COPY (SELECT 1) TO PROGRAM :'mk';
CREATE SERVER tn1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q1');
CREATE SERVER tn2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q2');
CREATE SERVER tn3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q3');
CREATE SERVER tn_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'tn1,tn2,tn3', data_shards '2', parity_shards '1');

-- 1. a nested UPDATE of rows the outer UPDATE already wrote: each row
-- adds 100 to the row before it (heap: 0, 110, 122, 33)
CREATE TABLE nh (k int, n int);
CREATE FOREIGN TABLE nd (k int, n int) SERVER tn_pool;
INSERT INTO nh VALUES (0, 0), (1, 10), (2, 20), (3, 30);
INSERT INTO nd VALUES (0, 0), (1, 10), (2, 20), (3, 30);
CREATE FUNCTION prevh(x int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN UPDATE nh SET n = n + 100 WHERE k = x - 1; RETURN x; END $$;
CREATE FUNCTION prevd(x int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN UPDATE nd SET n = n + 100 WHERE k = x - 1; RETURN x; END $$;
UPDATE nh SET n = n + prevh(k) WHERE k > 1;
UPDATE nd SET n = n + prevd(k) WHERE k > 1;
SELECT * FROM nh ORDER BY k;
SELECT * FROM nd ORDER BY k;
-- a counter row that every outer row bumps (outer and inner rows apart)
CREATE FUNCTION bumph(x int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN UPDATE nh SET n = n + 1 WHERE k = 0; RETURN x; END $$;
CREATE FUNCTION bumpd(x int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN UPDATE nd SET n = n + 1 WHERE k = 0; RETURN x; END $$;
UPDATE nh SET n = bumph(n) + 1 WHERE k > 0;
UPDATE nd SET n = bumpd(n) + 1 WHERE k > 0;
SELECT * FROM nh ORDER BY k;
SELECT * FROM nd ORDER BY k;

-- 2. more rows than a row group: the rows the inner UPDATE changes are in
-- the outer statement's finished segments and in its buffered row group
CREATE TABLE mh (k int, n int);
CREATE FOREIGN TABLE md (k int, n int) SERVER tn_pool OPTIONS (row_group_rows '100');
INSERT INTO mh SELECT g, 0 FROM generate_series(1, 250) g;
INSERT INTO md SELECT g, 0 FROM generate_series(1, 250) g;
CREATE FUNCTION markh(x int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN UPDATE mh SET n = n + 1000 WHERE k = x - 1 AND x % 10 = 0; RETURN 1; END $$;
CREATE FUNCTION markd(x int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN UPDATE md SET n = n + 1000 WHERE k = x - 1 AND x % 10 = 0; RETURN 1; END $$;
UPDATE mh SET n = n + markh(k);
UPDATE md SET n = n + markd(k);
SELECT count(*), sum(n), count(*) FILTER (WHERE n = 1001) FROM mh;
SELECT count(*), sum(n), count(*) FILTER (WHERE n = 1001) FROM md;
SELECT (SELECT array_agg(k ORDER BY k) FROM mh WHERE n = 1001) =
       (SELECT array_agg(k ORDER BY k) FROM md WHERE n = 1001) AS same_rows;

-- 3. a nested DELETE of a row the outer UPDATE wrote
CREATE FUNCTION droph(x int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN DELETE FROM nh WHERE k = x - 1 AND k > 0; RETURN x; END $$;
CREATE FUNCTION dropd(x int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN DELETE FROM nd WHERE k = x - 1 AND k > 0; RETURN x; END $$;
BEGIN;
UPDATE nh SET n = -droph(k) WHERE k IN (1, 2);
UPDATE nd SET n = -dropd(k) WHERE k IN (1, 2);
SELECT * FROM nh ORDER BY k;
SELECT * FROM nd ORDER BY k;
ROLLBACK;

-- 4. the inner UPDATE changes a row the outer one has not reached yet:
-- heap refuses (the row would be updated twice); so does destor
CREATE FUNCTION nexth(x int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN UPDATE nh SET n = n + 100 WHERE k = x + 1; RETURN x; END $$;
CREATE FUNCTION nextd(x int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN UPDATE nd SET n = n + 100 WHERE k = x + 1; RETURN x; END $$;
UPDATE nh SET n = n + nexth(k) WHERE k > 0;
UPDATE nd SET n = n + nextd(k) WHERE k > 0;
SELECT * FROM nh ORDER BY k;
SELECT * FROM nd ORDER BY k;
-- and so does an outer DELETE
CREATE FUNCTION killh(x int) RETURNS bool LANGUAGE plpgsql AS
  $$ BEGIN DELETE FROM nh WHERE k = x + 1; RETURN true; END $$;
CREATE FUNCTION killd(x int) RETURNS bool LANGUAGE plpgsql AS
  $$ BEGIN DELETE FROM nd WHERE k = x + 1; RETURN true; END $$;
DELETE FROM nh WHERE k > 0 AND killh(k);
DELETE FROM nd WHERE k > 0 AND killd(k);
SELECT * FROM nh ORDER BY k;
SELECT * FROM nd ORDER BY k;

-- 5. DELETE ... RETURNING on partitioned tables whose partitions are destor
-- tables: each partition has its own row type (one with a dropped column)
CREATE TABLE ph (a int, b text) PARTITION BY LIST (a);
CREATE TABLE ph1 (a int, q text, b text);
CREATE TABLE ph2 (a int, b text);
ALTER TABLE ph1 DROP COLUMN q;
ALTER TABLE ph ATTACH PARTITION ph1 FOR VALUES IN (1);
ALTER TABLE ph ATTACH PARTITION ph2 FOR VALUES IN (2);
CREATE TABLE pd (a int, b text) PARTITION BY LIST (a);
CREATE FOREIGN TABLE pd1 (a int, q text, b text) SERVER tn_pool;
CREATE FOREIGN TABLE pd2 (a int, b text) SERVER tn_pool;
ALTER FOREIGN TABLE pd1 DROP COLUMN q;
ALTER TABLE pd ATTACH PARTITION pd1 FOR VALUES IN (1);
ALTER TABLE pd ATTACH PARTITION pd2 FOR VALUES IN (2);
INSERT INTO ph VALUES (1, 'foo'), (2, 'bar'), (2, 'baz');
INSERT INTO pd VALUES (1, 'foo'), (2, 'bar'), (2, 'baz');
DELETE FROM ph WHERE b <> 'baz' RETURNING *, tableoid::regclass;
DELETE FROM pd WHERE b <> 'baz' RETURNING *, tableoid::regclass;
-- with a row trigger on one partition: PostgreSQL fetches the old row too
CREATE FUNCTION tn_note() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE NOTICE '% %: %', TG_WHEN, TG_TABLE_NAME, OLD; RETURN OLD; END $$;
CREATE TRIGGER ph2_bd BEFORE DELETE ON ph2 FOR EACH ROW EXECUTE FUNCTION tn_note();
CREATE TRIGGER pd2_bd BEFORE DELETE ON pd2 FOR EACH ROW EXECUTE FUNCTION tn_note();
INSERT INTO ph VALUES (1, 'one');
INSERT INTO pd VALUES (1, 'one');
DELETE FROM ph RETURNING *;
DELETE FROM pd RETURNING *;
SELECT count(*) FROM ph;
SELECT count(*) FROM pd;

DROP TABLE nh, mh, ph;
DROP FOREIGN TABLE nd, md;
DROP TABLE pd;
DROP FUNCTION prevh(int), prevd(int), bumph(int), bumpd(int), markh(int), markd(int),
  droph(int), dropd(int), nexth(int), nextd(int), killh(int), killd(int), tn_note();
DROP SERVER tn_pool;
DROP SERVER tn1, tn2, tn3;
