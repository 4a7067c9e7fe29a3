-- Findings of the tableam/tiering review (issue 14 stage 3), fixed: foreign
-- keys on UPDATE, tiering keeps a partition's triggers and rules, DELETE after
-- TRUNCATE, an UPDATE fed by an index of its own table, ON CONFLICT meeting
-- its own row.  Expected: heap's behaviour.
\i test/regress/setup.sql
SET destor.default_pool = 'archive';
SET max_parallel_workers_per_gather = 0;

-- F2: an UPDATE of a row of a table USING destor whose foreign key column is
-- not NULL fails ("cannot retrieve a system column in this context": the
-- RI trigger asks the old row's xmin), whatever column it changes
CREATE TABLE bk_parent (k int PRIMARY KEY);
INSERT INTO bk_parent VALUES (1), (2);
CREATE TABLE bk_child_h (id int PRIMARY KEY, k int REFERENCES bk_parent, v text);
CREATE TABLE bk_child_t (id int PRIMARY KEY, k int REFERENCES bk_parent, v text) USING destor;
INSERT INTO bk_child_h VALUES (1, 1, 'a'), (2, NULL, 'b'), (3, 2, 'c');
INSERT INTO bk_child_t VALUES (1, 1, 'a'), (2, NULL, 'b'), (3, 2, 'c');
UPDATE bk_child_h SET v = 'x' WHERE id = 1;
UPDATE bk_child_t SET v = 'x' WHERE id = 1;
UPDATE bk_child_h SET k = 2 WHERE id = 1;
UPDATE bk_child_t SET k = 2 WHERE id = 1;
UPDATE bk_child_h SET k = 3 WHERE id = 3;
UPDATE bk_child_t SET k = 3 WHERE id = 3;
SELECT rows_differ('bk_child_t', 'bk_child_h');
-- ... in the transaction that inserted the row, too
BEGIN;
INSERT INTO bk_child_t VALUES (4, 1, 'd');
UPDATE bk_child_t SET v = 'dd' WHERE id = 4;
COMMIT;
SELECT * FROM bk_child_t ORDER BY id;
-- ... and so on a tiered partition of a parent that declares a foreign key
CREATE TABLE bk_parted (id int, ts date, k int REFERENCES bk_parent, v text, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
CREATE TABLE bk_parted_1 PARTITION OF bk_parted FOR VALUES FROM ('2023-01-01') TO ('2023-02-01');
INSERT INTO bk_parted VALUES (1, '2023-01-05', 1, 'a');
SELECT destor.tier_partition('bk_parted_1', 'archive');
UPDATE bk_parted SET v = 'b' WHERE id = 1;
SELECT * FROM bk_parted;

-- F2 (cont.): ON UPDATE CASCADE into a destor child: the UPDATE of the
-- (heap) parent fails; a self-referencing destor tree likewise
CREATE TABLE bk_pp (k int PRIMARY KEY);
INSERT INTO bk_pp VALUES (1), (2);
CREATE TABLE bk_cc (id int, k int REFERENCES bk_pp ON DELETE SET NULL ON UPDATE CASCADE) USING destor;
INSERT INTO bk_cc VALUES (1, 1), (2, 2);
DELETE FROM bk_pp WHERE k = 1;
UPDATE bk_pp SET k = 3 WHERE k = 2;
SELECT * FROM bk_cc ORDER BY id;
CREATE TABLE bk_tree (id int PRIMARY KEY, parent int REFERENCES bk_tree ON DELETE CASCADE ON UPDATE CASCADE) USING destor;
INSERT INTO bk_tree VALUES (1, NULL), (2, 1), (3, 2), (4, 1);
DELETE FROM bk_tree WHERE id = 2;
UPDATE bk_tree SET id = 10 WHERE id = 1;
SELECT * FROM bk_tree ORDER BY id;
DROP TABLE bk_cc, bk_pp, bk_tree;

-- F5: a DELETE after TRUNCATE in the same transaction is skipped when the
-- transaction locked a row of the same segment number before the TRUNCATE
-- (the claimed segment's deletions are cached by relation oid and segment
-- number, and TRUNCATE's new storage numbers its segments from 1 again)
CREATE TABLE bk_tt (id int PRIMARY KEY, v text) USING destor;
INSERT INTO bk_tt SELECT i, 'a' FROM generate_series(1, 10) i;
DELETE FROM bk_tt WHERE id = 6;
BEGIN;
SELECT * FROM bk_tt WHERE id = 1 FOR UPDATE;
TRUNCATE bk_tt;
INSERT INTO bk_tt SELECT i, 'b' FROM generate_series(1, 10) i;
DELETE FROM bk_tt WHERE id = 6;
SELECT * FROM bk_tt WHERE id = 6;
COMMIT;
SELECT count(*) FROM bk_tt WHERE id = 6;
DROP TABLE bk_tt;

-- F7: the Halloween problem.  An index scan feeding an INSERT or UPDATE of
-- the same table returns the rows the statement itself is writing (its
-- buffered rows are visible "whatever the snapshot"), so they are inserted or
-- updated again: heap never shows a statement its own new rows
CREATE TABLE bk_hw_t (id int PRIMARY KEY, dev int, v int) USING destor;
CREATE TABLE bk_hw_h (id int PRIMARY KEY, dev int, v int);
CREATE INDEX ON bk_hw_t (dev);
CREATE INDEX ON bk_hw_h (dev);
INSERT INTO bk_hw_t SELECT i, i % 4, 0 FROM generate_series(1, 5000) i;
INSERT INTO bk_hw_h SELECT i, i % 4, 0 FROM generate_series(1, 5000) i;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
INSERT INTO bk_hw_t SELECT id + 5000, dev, 1 FROM bk_hw_t WHERE id > 2500 AND id <= 7600;
INSERT INTO bk_hw_h SELECT id + 5000, dev, 1 FROM bk_hw_h WHERE id > 2500 AND id <= 7600;
UPDATE bk_hw_t SET id = id + 10000 WHERE id > 5000 AND id <= 15100;
UPDATE bk_hw_h SET id = id + 10000 WHERE id > 5000 AND id <= 15100;
SELECT count(*), max(id) FROM bk_hw_t;
-- an UPDATE by index scan of rows whose new versions still match never ends
SET statement_timeout = '5s';
UPDATE bk_hw_t SET v = v + 1 WHERE dev = 3;
UPDATE bk_hw_h SET v = v + 1 WHERE dev = 3;
RESET statement_timeout;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT rows_differ('bk_hw_t', 'bk_hw_h');
DROP TABLE bk_hw_t, bk_hw_h;

-- F8: ON CONFLICT DO UPDATE affecting one row twice in a command: heap
-- raises cardinality_violation; destor updates the row twice silently
CREATE TABLE bk_oc (k int PRIMARY KEY, n int) USING destor;
INSERT INTO bk_oc VALUES (1, 0);
INSERT INTO bk_oc VALUES (1, 1), (1, 2) ON CONFLICT (k) DO UPDATE SET n = excluded.n;
INSERT INTO bk_oc VALUES (2, 1), (2, 2) ON CONFLICT (k) DO UPDATE SET n = excluded.n;
SELECT * FROM bk_oc ORDER BY k;
DROP TABLE bk_oc;

-- F3: tier_partition drops the partition's own triggers and rules (those
-- not inherited from the parent) without a word; recall_partition too
CREATE TABLE bk_log (what text);
CREATE TABLE bk_tp (id int PRIMARY KEY, n int) PARTITION BY RANGE (id);
CREATE TABLE bk_tp_1 PARTITION OF bk_tp FOR VALUES FROM (0) TO (100);
CREATE FUNCTION bk_audit() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO bk_log VALUES (TG_OP || ' ' || TG_TABLE_NAME); RETURN NEW; END $$;
CREATE FUNCTION bk_check() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN IF NEW.n < 0 THEN RAISE EXCEPTION 'negative n refused by bk_check'; END IF; RETURN NEW; END $$;
CREATE TRIGGER bk_tp_1_audit AFTER INSERT ON bk_tp_1 FOR EACH ROW EXECUTE FUNCTION bk_audit();
CREATE TRIGGER bk_tp_1_check BEFORE INSERT OR UPDATE ON bk_tp_1 FOR EACH ROW EXECUTE FUNCTION bk_check();
CREATE RULE bk_tp_1_keep AS ON DELETE TO bk_tp_1 WHERE OLD.id = 1 DO INSTEAD NOTHING;
INSERT INTO bk_tp VALUES (1, 1), (2, 2);
SELECT destor.tier_partition('bk_tp_1', 'archive');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'bk_tp_1'::regclass AND NOT tgisinternal ORDER BY 1;
SELECT rulename FROM pg_rules WHERE tablename = 'bk_tp_1';
INSERT INTO bk_tp VALUES (3, -3);
INSERT INTO bk_tp VALUES (4, 4);
DELETE FROM bk_tp_1 WHERE id = 1;
SELECT * FROM bk_tp ORDER BY id;
SELECT * FROM bk_log ORDER BY 1;

DROP TABLE bk_child_h, bk_child_t, bk_parted, bk_tp, bk_log, bk_parent;
DROP FUNCTION bk_audit(), bk_check();
