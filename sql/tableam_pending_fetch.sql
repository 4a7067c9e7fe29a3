-- Rows a statement wrote, fetched by tid before the statement ends: AFTER
-- ROW triggers and foreign key checks of a table USING destor read each new
-- row back.  Each row group is decoded once for all its rows (the writer's
-- recorded segments are copied once, its buffered rows once while no row is
-- added): a 30,000-row INSERT with a foreign key took minutes with the cache
-- off.  Every value the triggers see is compared with heap's.
\i test/regress/setup.sql
SET destor.default_pool = 'archive';

CREATE TABLE pf_ref (id int PRIMARY KEY);
INSERT INTO pf_ref SELECT generate_series(0, 9);
CREATE TABLE pf_h (id int PRIMARY KEY, r int REFERENCES pf_ref, v text);
CREATE TABLE pf_t (id int PRIMARY KEY, r int REFERENCES pf_ref, v text) USING destor;
CREATE TABLE pf_seen (tbl text, id int, r int, v text);
CREATE FUNCTION pf_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pf_seen VALUES (TG_TABLE_NAME, NEW.id, NEW.r, NEW.v);
  RETURN NULL;
END $$;
CREATE TRIGGER pf_h_note AFTER INSERT OR UPDATE ON pf_h FOR EACH ROW EXECUTE FUNCTION pf_note();
CREATE TRIGGER pf_t_note AFTER INSERT OR UPDATE ON pf_t FOR EACH ROW EXECUTE FUNCTION pf_note();

-- three full row groups and a partial one (recorded segments), then rows
-- that stay buffered (under one row group), then both in one transaction
INSERT INTO pf_h SELECT i, i % 10, md5(i::text) FROM generate_series(1, 35000) i;
INSERT INTO pf_t SELECT i, i % 10, md5(i::text) FROM generate_series(1, 35000) i;
INSERT INTO pf_h SELECT i, i % 10, 'b' || i FROM generate_series(35001, 39000) i;
INSERT INTO pf_t SELECT i, i % 10, 'b' || i FROM generate_series(35001, 39000) i;
BEGIN;
INSERT INTO pf_h SELECT i, i % 10, 'c' || i FROM generate_series(39001, 39500) i;
INSERT INTO pf_t SELECT i, i % 10, 'c' || i FROM generate_series(39001, 39500) i;
SAVEPOINT s;
INSERT INTO pf_h SELECT i, i % 10, 'd' || i FROM generate_series(39501, 39600) i;
INSERT INTO pf_t SELECT i, i % 10, 'd' || i FROM generate_series(39501, 39600) i;
ROLLBACK TO s;
INSERT INTO pf_h SELECT i, i % 10, 'e' || i FROM generate_series(39601, 39700) i;
INSERT INTO pf_t SELECT i, i % 10, 'e' || i FROM generate_series(39601, 39700) i;
UPDATE pf_h SET r = (r + 1) % 10, v = v || '!' WHERE id % 100 = 7;
UPDATE pf_t SET r = (r + 1) % 10, v = v || '!' WHERE id % 100 = 7;
COMMIT;
-- a foreign key violation is still found among many good rows
INSERT INTO pf_t SELECT i, CASE WHEN i = 45000 THEN 10 ELSE i % 10 END, 'x'
  FROM generate_series(40001, 50000) i;

SELECT tbl, count(*), count(DISTINCT id), sum(r), sum(length(v)) FROM pf_seen GROUP BY tbl ORDER BY tbl;
SELECT count(*) AS differ FROM (
  (SELECT id, r, v FROM pf_seen WHERE tbl = 'pf_h' EXCEPT ALL SELECT id, r, v FROM pf_seen WHERE tbl = 'pf_t')
  UNION ALL
  (SELECT id, r, v FROM pf_seen WHERE tbl = 'pf_t' EXCEPT ALL SELECT id, r, v FROM pf_seen WHERE tbl = 'pf_h')) d;
SELECT rows_differ('pf_t', 'pf_h');

DROP TABLE pf_t, pf_h, pf_seen, pf_ref;
DROP FUNCTION pf_note();
