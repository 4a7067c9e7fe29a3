-- The table access method destor, stage 2 (issue 14): stable tids, btree and
-- hash indexes (index, bitmap and index-only scans), unique and primary keys.
-- Every answer is compared with the same rows in a heap table.
\i test/regress/setup.sql
SET destor.default_pool = 'archive';
SET max_parallel_workers_per_gather = 0;


-- 1. Stable tids: segments numbered densely per table; a row's tid is set
-- at insert (RETURNING ctid) and a scan returns the same tid
CREATE TABLE h (id int, dev int, t text, ts timestamp);
CREATE TABLE t (id int, dev int, t text, ts timestamp) USING destor;
INSERT INTO t VALUES (1, 1, 'one', '2024-01-01') RETURNING ctid;
INSERT INTO t VALUES (2, 1, 'two', '2024-01-02'), (3, 2, 'three', '2024-01-03') RETURNING ctid;
SELECT ctid, id FROM t ORDER BY id;
SELECT segment_no, row_count FROM destor.segments s JOIN destor.am_tables a USING (table_id)
  JOIN pg_class c ON c.relfilenode = a.relfilenode WHERE c.oid = 't'::regclass ORDER BY 1;
-- a row still buffered by its statement has the tid it will be written at
CREATE FUNCTION t_ctid(k int) RETURNS tid LANGUAGE sql VOLATILE AS 'SELECT ctid FROM t WHERE id = k';
INSERT INTO t SELECT 4, 2, 'four', '2024-01-04' RETURNING ctid, t_ctid(4) = ctid AS same;
SELECT ctid FROM t WHERE id = 4;
TRUNCATE t;

INSERT INTO h SELECT i, i % 50, CASE WHEN i % 7 = 0 THEN NULL ELSE 'row ' || i END,
                     '2024-01-01'::timestamp + i * interval '1 minute'
  FROM generate_series(1, 25000) i;
-- several segments: one per statement
INSERT INTO t SELECT * FROM h WHERE id <= 12000;
INSERT INTO t SELECT * FROM h WHERE id > 12000 AND id <= 12005;
COPY t FROM stdin;
30000	7	copied	2024-03-01 00:00:00
\.
INSERT INTO h VALUES (30000, 7, 'copied', '2024-03-01 00:00:00');
INSERT INTO t SELECT * FROM h WHERE id > 12005 AND id < 30000;
SELECT rows_differ('t', 'h');

-- 2. Indexes: built over every segment, kept by INSERT and COPY
CREATE INDEX t_id ON t (id);
CREATE INDEX t_dev_ts ON t (dev, ts);
CREATE INDEX t_t_hash ON t USING hash (t);
CREATE INDEX h_id ON h (id);
CREATE INDEX h_dev_ts ON h (dev, ts);
CREATE INDEX h_t_hash ON h USING hash (t);
INSERT INTO t VALUES (30001, 8, 'after index', '2024-03-02');
INSERT INTO h VALUES (30001, 8, 'after index', '2024-03-02');
COPY t FROM stdin;
30002	8	copied after index	2024-03-03 00:00:00
\.
INSERT INTO h VALUES (30002, 8, 'copied after index', '2024-03-03 00:00:00');
ANALYZE t;
ANALYZE h;
-- a point lookup plans an index scan
EXPLAIN (COSTS OFF) SELECT * FROM t WHERE id = 777;
SELECT * FROM t WHERE id = 777;
SELECT * FROM t WHERE id IN (1, 12003, 30000, 30001, 30002) ORDER BY id;
EXPLAIN (COSTS OFF) SELECT * FROM t WHERE dev = 3 AND ts >= '2024-01-05' AND ts < '2024-01-06';
SELECT rows_differ('t', 'h', $$dev = 3 AND ts >= '2024-01-05' AND ts < '2024-01-06'$$);
SELECT count(*) FROM t WHERE dev = 3 AND ts >= '2024-01-05' AND ts < '2024-01-06';
-- forced index, bitmap and index-only scans, each compared with the heap
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM t WHERE id BETWEEN 11990 AND 12010;
SELECT rows_differ('t', 'h', 'id BETWEEN 11990 AND 12010');
SELECT rows_differ('t', 'h', $$t = 'row 4242'$$);
EXPLAIN (COSTS OFF) SELECT * FROM t WHERE t = 'row 4242';
EXPLAIN (COSTS OFF) SELECT id FROM t WHERE id < 100;
SELECT count(*), sum(id) FROM t WHERE id < 100;
SELECT id FROM t WHERE id > 29990 ORDER BY id DESC;
SET enable_indexscan = off;
SET enable_bitmapscan = on;
SET effective_io_concurrency = 0;
EXPLAIN (COSTS OFF) SELECT * FROM t WHERE id < 3000 OR dev = 9;
SELECT rows_differ('t', 'h', 'id < 3000 OR dev = 9');
SELECT count(*) FROM t WHERE id < 3000 OR dev = 9;
-- a lossy bitmap: every offset of its blocks is tried
SET work_mem = '64kB';
SELECT rows_differ('t', 'h', 'dev IN (1, 2, 3) OR id > 20000');
RESET work_mem;
RESET effective_io_concurrency;
RESET enable_indexscan;
RESET enable_seqscan;
RESET enable_bitmapscan;

-- rows of the own transaction, a rolled-back insert's index entries, savepoints
BEGIN;
INSERT INTO t VALUES (40000, 1, 'in transaction', '2024-04-01');
SET LOCAL enable_seqscan = off;
SELECT * FROM t WHERE id = 40000;
ROLLBACK;
SET enable_seqscan = off;
SELECT * FROM t WHERE id = 40000;
BEGIN;
INSERT INTO t VALUES (40001, 1, 'kept', '2024-04-01');
SAVEPOINT s;
INSERT INTO t VALUES (40002, 1, 'rolled back', '2024-04-01');
ROLLBACK TO s;
INSERT INTO t VALUES (40003, 1, 'kept too', '2024-04-01');
COMMIT;
SELECT * FROM t WHERE id >= 40000 ORDER BY id;
-- a statement's function reads the statement's own rows through the index
CREATE FUNCTION t_by_id(k int) RETURNS text LANGUAGE sql VOLATILE AS 'SELECT t FROM t WHERE id = k';
INSERT INTO t SELECT 40010 + i, 1, coalesce(t_by_id(40010 + i - 1) || '>', 'none'), '2024-04-02'
  FROM generate_series(0, 2) i;
EXPLAIN (COSTS OFF) SELECT t FROM t WHERE id = 40010;
SELECT id, t FROM t WHERE id >= 40010 ORDER BY id;
-- ... but not in a subtransaction (an exception block), as a scan cannot:
-- finishing the statement's segment there would tie it to the subtransaction
CREATE FUNCTION t_in_block(k int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  BEGIN
    SELECT t INTO r FROM t WHERE id = k;
  EXCEPTION WHEN division_by_zero THEN NULL;
  END;
  RETURN r;
END $$;
INSERT INTO t SELECT 40020 + i, 1, coalesce(t_in_block(40020 + i - 1), 'none'), '2024-04-03'
  FROM generate_series(0, 1) i;
DROP FUNCTION t_in_block(int);
RESET enable_seqscan;
DELETE FROM h WHERE id >= 40000;
INSERT INTO h SELECT * FROM t WHERE id >= 40000;

-- expression and partial indexes, REINDEX, DROP INDEX
CREATE INDEX t_lower ON t (lower(t));
CREATE INDEX t_recent ON t (ts) WHERE id > 29000;
CREATE INDEX h_lower ON h (lower(t));
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM t WHERE lower(t) = 'row 99';
SELECT id FROM t WHERE lower(t) = 'row 99';
SELECT count(*) FROM t WHERE id > 29000 AND ts > '2024-01-01';
REINDEX TABLE t;
SELECT rows_differ('t', 'h', 'id BETWEEN 500 AND 700');
DROP INDEX t_lower, t_recent;
RESET enable_seqscan;
-- what is not built: clear errors
CREATE INDEX CONCURRENTLY t_c ON t (id);
REINDEX INDEX CONCURRENTLY t_id;
CREATE INDEX t_brin ON t USING brin (id);
CREATE INDEX t_gin ON t USING gin (to_tsvector('simple', t));
-- rows by tid: a TID scan, AFTER ROW triggers, a foreign key to a heap
-- table; a foreign key referencing a destor table needs row locks
SELECT id, t FROM t WHERE ctid = (SELECT ctid FROM t WHERE id = 777);
CREATE TABLE trig_log (id int, t text);
CREATE FUNCTION t_log() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO trig_log VALUES (NEW.id, NEW.t); RETURN NULL; END $$;
CREATE TRIGGER t_after AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION t_log();
INSERT INTO t SELECT 50000 + i, 1, 'trig ' || i, '2024-05-01' FROM generate_series(1, 3) i;
-- a large value: the trigger's row is copied out of the fetch before it goes
INSERT INTO t VALUES (50004, 1, repeat('x', 300000), '2024-05-01');
SELECT id, length(t), left(t, 6) FROM trig_log ORDER BY id;
DROP TRIGGER t_after ON t;
DROP FUNCTION t_log() CASCADE;
DROP TABLE trig_log;
CREATE TABLE dev (id int PRIMARY KEY);
INSERT INTO dev SELECT generate_series(0, 49);
CREATE TABLE f (id int PRIMARY KEY, dev int REFERENCES dev) USING destor;
INSERT INTO f VALUES (1, 3), (2, NULL);
INSERT INTO f VALUES (3, 99);
SELECT * FROM f ORDER BY id;
CREATE TABLE r (f_id int REFERENCES f);
INSERT INTO r VALUES (1);
DROP TABLE r, f, dev;
-- TRUNCATE keeps the indexes, empty
TRUNCATE t;
SET enable_seqscan = off;
SELECT count(*) FROM t WHERE id = 777;
INSERT INTO t SELECT * FROM h WHERE id <= 1000;
SELECT * FROM t WHERE id = 777;
RESET enable_seqscan;

-- a bitmap heap scan prefetches the blocks of its tids, which hold nothing
-- (each a wasted system call; past segment 36 they lie beyond the
-- relation's first file): no bitmap paths while prefetching is on, the
-- index paths instead, and the answers stay right
CREATE TABLE many (id int, v int) USING destor;
CREATE INDEX many_id ON many (id);
DO $$ BEGIN FOR i IN 1..40 LOOP INSERT INTO many VALUES (i, i * 10); END LOOP; END $$;
ANALYZE many;
SET enable_seqscan = off;
SET enable_indexscan = off;
SET effective_io_concurrency = 1;
EXPLAIN (COSTS OFF) SELECT * FROM many WHERE id > 30;
SELECT sum(v) FROM many WHERE id > 30;
SET effective_io_concurrency = 0;
EXPLAIN (COSTS OFF) SELECT * FROM many WHERE id > 30;
SELECT sum(v) FROM many WHERE id > 30;
RESET effective_io_concurrency;
RESET enable_indexscan;
RESET enable_seqscan;
DROP TABLE many;

-- 3. Unique and primary keys: the same errors as heap
CREATE TABLE hk (id int PRIMARY KEY, ts timestamp, UNIQUE (ts));
CREATE TABLE k (id int PRIMARY KEY, ts timestamp, UNIQUE (ts)) USING destor;
INSERT INTO hk VALUES (1, '2024-01-01'), (2, '2024-01-02');
INSERT INTO k VALUES (1, '2024-01-01'), (2, '2024-01-02');
\set VERBOSITY default
-- within one statement, against a committed row, within one transaction
INSERT INTO hk VALUES (3, '2024-01-03'), (3, '2024-01-04');
INSERT INTO k VALUES (3, '2024-01-03'), (3, '2024-01-04');
INSERT INTO hk VALUES (1, '2024-02-01');
INSERT INTO k VALUES (1, '2024-02-01');
INSERT INTO k VALUES (5, '2024-01-02');
BEGIN;
INSERT INTO k VALUES (6, '2024-01-06');
INSERT INTO k VALUES (6, '2024-01-07');
ROLLBACK;
-- a rolled-back key can be inserted again; NULLs do not conflict
INSERT INTO k VALUES (6, '2024-01-06'), (7, NULL), (8, NULL);
COPY k FROM stdin;
9	2024-01-09 00:00:00
2	2024-01-10 00:00:00
\.
SELECT * FROM k ORDER BY id;
-- a unique index built over duplicate rows fails as heap's
CREATE TABLE d (id int) USING destor;
INSERT INTO d VALUES (1), (2), (1);
CREATE UNIQUE INDEX ON d (id);
ALTER TABLE d ADD PRIMARY KEY (id);
\set VERBOSITY terse
-- ON CONFLICT DO NOTHING skips what conflicts, also within the statement;
-- DO UPDATE and row locks work since stage 3
INSERT INTO k VALUES (1, '2024-05-01'), (20, '2024-05-20'), (20, '2024-05-21'), (21, '2024-01-02')
  ON CONFLICT DO NOTHING;
INSERT INTO hk VALUES (1, '2024-05-01'), (20, '2024-05-20'), (20, '2024-05-21'), (21, '2024-01-02')
  ON CONFLICT DO NOTHING;
SELECT * FROM k WHERE id IN (1, 20, 21) ORDER BY id;
SELECT * FROM hk WHERE id IN (1, 20, 21) ORDER BY id;
INSERT INTO k VALUES (1, '2024-05-01') ON CONFLICT (id) DO UPDATE SET ts = excluded.ts;
SELECT * FROM k WHERE id = 1 FOR UPDATE;

-- a rewrite (ALTER COLUMN ... TYPE with the same type) rebuilds the indexes
ALTER TABLE k ALTER COLUMN id TYPE int USING id * 10;
SET enable_seqscan = off;
SELECT * FROM k WHERE id = 20;
SELECT count(*) FROM k WHERE id = 2;
INSERT INTO k VALUES (20, '2024-06-01');
RESET enable_seqscan;

-- a parallel btree build: one participant reads the rows
CREATE TABLE p (id int, v text) USING destor;
INSERT INTO p SELECT i, 'v' || i FROM generate_series(1, 30000) i;
SET max_parallel_maintenance_workers = 2;
SET min_parallel_table_scan_size = 0;
SET maintenance_work_mem = '64MB';
CREATE UNIQUE INDEX p_id ON p (id);
RESET max_parallel_maintenance_workers;
RESET min_parallel_table_scan_size;
RESET maintenance_work_mem;
SET enable_seqscan = off;
SELECT count(*), sum(id) FROM p WHERE id BETWEEN 100 AND 29000;
SELECT * FROM p WHERE id = 29999;
RESET enable_seqscan;
INSERT INTO p VALUES (5, 'again');

-- 4. A partition USING destor under a parent with PRIMARY KEY (id, ts) and an
-- index on (device, ts): CREATE ... PARTITION OF and ATTACH take the indexes
CREATE TABLE m (id bigint, device int, ts timestamptz, v float8, PRIMARY KEY (id, ts))
  PARTITION BY RANGE (ts);
CREATE INDEX m_device_ts ON m (device, ts);
CREATE TABLE m_2024_01 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2024-02-01') USING destor;
CREATE TABLE m_2024_02 (id bigint NOT NULL, device int, ts timestamptz NOT NULL, v float8) USING destor;
INSERT INTO m_2024_02 SELECT i, i % 20, '2024-02-01'::timestamptz + i * interval '1 minute', i
  FROM generate_series(1, 20000) i;
ALTER TABLE m ATTACH PARTITION m_2024_02 FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE m_2024_03 PARTITION OF m FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
INSERT INTO m SELECT i, i % 20, '2024-01-01'::timestamptz + i * interval '1 minute', i
  FROM generate_series(1, 20000) i;
INSERT INTO m VALUES (1, 1, '2024-03-05', 1);
SELECT c.relname, a.amname, i.indexrelid::regclass
  FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid LEFT JOIN pg_am a ON a.oid = c.relam
  JOIN pg_index i ON i.indrelid = c.oid
 WHERE h.inhparent = 'm'::regclass ORDER BY 1, 3;
ANALYZE m;
EXPLAIN (COSTS OFF) SELECT * FROM m WHERE id = 77 AND ts = '2024-01-01'::timestamptz + 77 * interval '1 minute';
SELECT * FROM m WHERE id = 77 AND ts = '2024-01-01'::timestamptz + 77 * interval '1 minute';
EXPLAIN (COSTS OFF) SELECT count(*) FROM m WHERE device = 3 AND ts >= '2024-02-05' AND ts < '2024-02-06';
SELECT count(*), sum(v) FROM m WHERE device = 3 AND ts >= '2024-02-05' AND ts < '2024-02-06';
\set VERBOSITY default
INSERT INTO m VALUES (77, 0, '2024-01-01'::timestamptz + 77 * interval '1 minute', 0);
\set VERBOSITY terse
DROP TABLE m, p;

DROP TABLE t, h, k, hk, d;
DROP FUNCTION t_ctid(int);
DROP FUNCTION t_by_id(int);
SELECT count(*) FROM destor.am_tables a
 WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.relfilenode = a.relfilenode);
RESET destor.default_pool;
