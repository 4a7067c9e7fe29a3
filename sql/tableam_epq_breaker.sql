-- Adversarial tests of the fetches by tid of a statement's own rows (AFTER
-- ROW triggers, foreign key checks: AmFetch own_dirs / mem_dir) on tables
-- USING destor, compared with heap.  See notes/epqbreak-findings.md.
\i test/regress/setup.sql
SET destor.default_pool = 'archive';

CREATE TABLE eb_ref (id int PRIMARY KEY);
INSERT INTO eb_ref SELECT generate_series(0, 9);
CREATE TABLE eb_seen (tbl text, op text, o text, nw text);
CREATE FUNCTION eb_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO eb_seen VALUES (CASE WHEN TG_TABLE_NAME LIKE '%h_' THEN 'heap' ELSE 'destor' END,
                              TG_OP, OLD::text, NEW::text);
  RETURN NULL;
END $$;
CREATE TABLE eb_ph (id int, k int, r int REFERENCES eb_ref, v text) PARTITION BY LIST (k);
CREATE TABLE eb_ph0 PARTITION OF eb_ph FOR VALUES IN (0);
CREATE TABLE eb_ph1 PARTITION OF eb_ph FOR VALUES IN (1);
CREATE TABLE eb_pt (id int, k int, r int REFERENCES eb_ref, v text) PARTITION BY LIST (k);
CREATE TABLE eb_pt0 PARTITION OF eb_pt FOR VALUES IN (0) USING destor;
CREATE TABLE eb_pt1 PARTITION OF eb_pt FOR VALUES IN (1) USING destor;
CREATE TABLE eb_plain (id int, k int, r int REFERENCES eb_ref, v text) USING destor;
CREATE TRIGGER eb_ph_note AFTER INSERT OR UPDATE OR DELETE ON eb_ph FOR EACH ROW EXECUTE FUNCTION eb_note();
CREATE TRIGGER eb_pt_note AFTER INSERT OR UPDATE OR DELETE ON eb_pt FOR EACH ROW EXECUTE FUNCTION eb_note();

-- E2: a foreign key's checks of 12,000 new rows alternating between two
-- destor partitions (one of them with a recorded row group) must not read
-- the providers much more than the same INSERT into one destor table: the
-- fetch that keeps the statement's decoded row groups (am_version_fetch)
-- is dropped whenever the relation changes, so each switch of partition
-- decodes the row group again (21 provider requests plain, ~4,650 here;
-- 30,000 rows: 17 s vs 0.26 s).
CREATE TEMP TABLE eb_req (what text, n numeric);
CREATE FUNCTION eb_requests() RETURNS numeric LANGUAGE sql AS
  $$ SELECT coalesce(sum(requests), 0) FROM destor.provider_stats() $$;
INSERT INTO eb_req VALUES ('start', eb_requests());
INSERT INTO eb_plain SELECT i, (i % 10 = 0)::int, i % 10, md5(i::text) FROM generate_series(1, 12000) i;
INSERT INTO eb_req VALUES ('plain', eb_requests());
INSERT INTO eb_pt SELECT i, (i % 10 = 0)::int, i % 10, md5(i::text) FROM generate_series(1, 12000) i;
INSERT INTO eb_req VALUES ('partitioned', eb_requests());
SELECT (SELECT n FROM eb_req WHERE what = 'partitioned') - (SELECT n FROM eb_req WHERE what = 'plain')
       <= 4 * ((SELECT n FROM eb_req WHERE what = 'plain') - (SELECT n FROM eb_req WHERE what = 'start')) + 100
       AS partitioned_reads_bounded;

-- held up: what the AFTER ROW triggers of partitions see is heap's
INSERT INTO eb_ph SELECT i, (i % 10 = 0)::int, i % 10, md5(i::text) FROM generate_series(1, 12000) i;
UPDATE eb_ph SET v = v || '!' WHERE id % 7 = 0;
UPDATE eb_pt SET v = v || '!' WHERE id % 7 = 0;
-- rows moving between partitions, both ways
UPDATE eb_ph SET k = 1 - k, r = (r + 1) % 10 WHERE id % 13 = 0;
UPDATE eb_pt SET k = 1 - k, r = (r + 1) % 10 WHERE id % 13 = 0;
DELETE FROM eb_ph WHERE id % 17 = 0;
DELETE FROM eb_pt WHERE id % 17 = 0;
BEGIN;
INSERT INTO eb_ph SELECT i, i % 2, i % 10, 's' || i FROM generate_series(20001, 20500) i;
INSERT INTO eb_pt SELECT i, i % 2, i % 10, 's' || i FROM generate_series(20001, 20500) i;
SAVEPOINT a;
UPDATE eb_ph SET v = 'gone' WHERE id > 20000;
UPDATE eb_pt SET v = 'gone' WHERE id > 20000;
ROLLBACK TO a;
WITH m AS (UPDATE eb_ph SET k = 1 - k WHERE id BETWEEN 20001 AND 20100 RETURNING id)
  INSERT INTO eb_ph SELECT id + 10000, 0, 1, 'cte' FROM m;
WITH m AS (UPDATE eb_pt SET k = 1 - k WHERE id BETWEEN 20001 AND 20100 RETURNING id)
  INSERT INTO eb_pt SELECT id + 10000, 0, 1, 'cte' FROM m;
COMMIT;
-- a foreign key violation among them is found
INSERT INTO eb_pt SELECT i, i % 2, CASE WHEN i = 40500 THEN 10 ELSE i % 10 END, 'x'
  FROM generate_series(40001, 41000) i;
SELECT tbl, op, count(*) FROM eb_seen GROUP BY tbl, op ORDER BY tbl, op;
SELECT count(*) AS seen_differ FROM (
  (SELECT op, o, nw FROM eb_seen WHERE tbl = 'heap' EXCEPT ALL SELECT op, o, nw FROM eb_seen WHERE tbl = 'destor')
  UNION ALL
  (SELECT op, o, nw FROM eb_seen WHERE tbl = 'destor' EXCEPT ALL SELECT op, o, nw FROM eb_seen WHERE tbl = 'heap')) d;
SELECT rows_differ('eb_pt', 'eb_ph');

DROP TABLE eb_pt, eb_ph, eb_plain, eb_seen, eb_ref;
DROP FUNCTION eb_note();
DROP FUNCTION eb_requests();
