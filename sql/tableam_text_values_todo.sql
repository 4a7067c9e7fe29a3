-- Known limit (breaker-scan F3): values of enum, composite, domain-over-
-- enum and reg* types are stored in text form and parsed at every read, so
-- DDL heap survives (ALTER TYPE ... RENAME VALUE, ADD ATTRIBUTE, a NOT VALID
-- domain constraint, an overloaded regproc) makes the rows unreadable.  The
-- expected file holds heap's answers; not in REGRESS while it fails.
\i test/regress/setup.sql
SET destor.default_pool = 'mirror';
-- F3: values stored in text form must survive DDL that heap survives
CREATE TYPE br_mood AS ENUM ('sad', 'ok');
CREATE TYPE br_pair AS (x int, y text);
CREATE TYPE br_level AS ENUM ('lo', 'hi');
CREATE DOMAIN br_dlevel AS br_level;
CREATE TABLE br_txt_am (id int, m br_mood, p br_pair, dl br_dlevel, rp regproc) USING destor;
INSERT INTO br_txt_am VALUES (1, 'sad', '(1,a)', 'hi', 'now'), (2, 'ok', '(2,b)', 'lo', 'now');
ALTER TYPE br_mood RENAME VALUE 'sad' TO 'blue';
SELECT id, m FROM br_txt_am ORDER BY id;
ALTER TYPE br_pair ADD ATTRIBUTE z int CASCADE;
SELECT id, p FROM br_txt_am ORDER BY id;
ALTER DOMAIN br_dlevel ADD CONSTRAINT br_no_hi CHECK (VALUE <> 'hi') NOT VALID;
SELECT id, dl FROM br_txt_am ORDER BY id;
INSERT INTO br_txt_am (id, rp) VALUES (3, 'abs(int4)'::regprocedure);
SELECT id, rp::oid = 'abs(int4)'::regprocedure::oid AS is_abs FROM br_txt_am WHERE id = 3;
DROP TABLE br_txt_am;
DROP DOMAIN br_dlevel;
DROP TYPE br_level, br_pair, br_mood;

