-- Blobs attacked a third time (issue 15, breaker15c): what holds.  Failing
-- cases are in blob_breaker3_todo.sql (not in REGRESS).
\i test/regress/setup.sql
\set VERBOSITY terse
CREATE SCHEMA brk3;
-- a pool of its own, so vacuum_blobs and compact_packs see only this file's blobs
CREATE SERVER brk3_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'p1,p2,p3,p4,p5,p6', data_shards '4', parity_shards '2');
-- flip the low bit of one byte of a file (offset < 0: from its end), as the server
CREATE FUNCTION brk3.flip(path text, off bigint) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', format(
    'cat > /dev/null; perl -e ''open(F, "+<", $ARGV[0]) or die; binmode F; my $s = -s F; '
    'my $o = $ARGV[1] < 0 ? $s + $ARGV[1] : $ARGV[1]; seek F, $o, 0; read F, my $c, 1; '
    'seek F, $o, 0; print F chr(ord($c) ^ 1); close F'' %s %s', path, off));
  RETURN 1;
END $$;
-- the shard files of a blob's object (its pack's, for a packed blob)
CREATE FUNCTION brk3.shard_paths(b destor.blob, dir text) RETURNS TABLE (shard int, path text)
LANGUAGE sql AS $$
  SELECT s.shard_index, format('%s/%s/ds/%s/%s.%s', dir, s.provider,
                               substr(replace(o::text, '-', ''), 1, 2), replace(o::text, '-', ''),
                               s.shard_index)
    FROM destor.blobs bl, LATERAL (SELECT coalesce(bl.pack_id, bl.blob_id) AS o) x
    JOIN destor.shards s ON s.object_id = x.o
   WHERE bl.blob_id = b::uuid ORDER BY 1 $$;
-- ok, or the SQLSTATE of the error the statement raised (what it did stays)
CREATE FUNCTION brk3.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  EXECUTE stmt INTO r;
  RETURN coalesce(r, 'ok');
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;

-- 1. Integrity: one flipped bit anywhere in a data or a parity shard
-- (first byte, middle, last byte) of a packed blob and of a
-- blob of its own: blob_get, blob_read and a descriptor still return the
-- right bytes (the other shards decode them) and blob_verify says false.  The same bit
-- flipped in three of the six shards: every read is an ERROR, never other
-- bytes, and blob_verify says false.
CREATE TABLE brk3.integ (name text, b destor.blob, v bytea);
INSERT INTO brk3.integ SELECT 'packed', destor.blob_put('brk3_pool', noise(3000, 31)), noise(3000, 31);
INSERT INTO brk3.integ SELECT 'large', destor.blob_put('brk3_pool', noise(300000, 32)), noise(300000, 32);
SELECT name, (SELECT pack_id IS NOT NULL FROM destor.blobs WHERE blob_id = b::uuid) AS packed FROM brk3.integ ORDER BY 1;
CREATE FUNCTION brk3.reads_right(which text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record; fd int; ok bool;
BEGIN
  SELECT * INTO r FROM brk3.integ WHERE name = which;
  ok := destor.blob_get(r.b) = r.v
        AND destor.blob_read(r.b, 1000, 1500) = substring(r.v FROM 1001 FOR 1500);
  fd := destor.blob_open(r.b);
  PERFORM destor.blob_seek(fd, 10, 0);
  ok := ok AND destor.blob_read(fd, 2500) = substring(r.v FROM 11 FOR 2500);
  PERFORM destor.blob_close(fd);
  RETURN CASE WHEN ok THEN 'right' ELSE 'WRONG BYTES' END;
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
SET client_min_messages = error;		-- blob_verify's WARNINGs name ids
-- flip a bit in one shard, read and verify, flip it back
CREATE FUNCTION brk3.one_flip(which text, shards int[], off bigint, OUT reads text, OUT verify bool)
LANGUAGE plpgsql AS $$
DECLARE p record;
BEGIN
  FOR p IN SELECT * FROM brk3.integ i, brk3.shard_paths(i.b, current_setting('brk3.dir')) s
            WHERE i.name = which AND s.shard = ANY (shards) LOOP
    PERFORM brk3.flip(p.path, off);
  END LOOP;
  reads := brk3.reads_right(which);
  verify := destor.blob_verify(b) FROM brk3.integ WHERE name = which;
  FOR p IN SELECT * FROM brk3.integ i, brk3.shard_paths(i.b, current_setting('brk3.dir')) s
            WHERE i.name = which AND s.shard = ANY (shards) LOOP
    PERFORM brk3.flip(p.path, off);
  END LOOP;
END $$;
SELECT set_config('brk3.dir', :'dir', false) IS NOT NULL AS dir_set;
SELECT name, shard, off, f.*
  FROM (VALUES ('packed'), ('large')) n(name), unnest(ARRAY[0, 5]) shard,
       unnest(ARRAY[0, 400, -1]::bigint[]) off,
       LATERAL brk3.one_flip(name, ARRAY[shard], off) f
 ORDER BY 1, 2, 3;
-- three of six shards hit at the same place: too few left to decode
SELECT name, off, f.*
  FROM (VALUES ('packed'), ('large')) n(name), unnest(ARRAY[100]::bigint[]) off,
       LATERAL brk3.one_flip(name, ARRAY[0, 1, 4], off) f
 ORDER BY 1, 2;
-- all flipped back
SELECT name, brk3.reads_right(name) AS reads, destor.blob_verify(b) AS verify FROM brk3.integ ORDER BY 1;
RESET client_min_messages;

-- 2. The SHA-256 recorded for every way in: streamed in pieces (with an
-- empty write between), empty streamed, empty put, from a large object,
-- imported; blob_verify agrees.
BEGIN;
SELECT destor.blob_create('brk3_pool') AS fd \gset
SELECT destor.blob_write(:fd, 'abc'), destor.blob_write(:fd, ''), destor.blob_write(:fd, 'def');
SELECT destor.blob_close(:fd) AS streamed \gset
SELECT destor.blob_create('brk3_pool') AS fd \gset
SELECT destor.blob_close(:fd) AS empty_streamed \gset
COMMIT;
SELECT lo_from_bytea(0, 'from a large object') AS lo \gset
COPY (SELECT 1) TO PROGRAM 'cat > /dev/null; printf "imported" > "$DESTOR_REGRESS_DIR/brk3_import"';
SELECT :'dir' || '/brk3_import' AS import_path \gset
SELECT how, destor.blob_sha256(b) = sha256(v) AS sha_right, destor.blob_verify(b) AS verify,
       destor.blob_get(b) = v AS get_right
  FROM (VALUES ('streamed', :'streamed'::destor.blob, 'abcdef'::bytea),
               ('empty streamed', :'empty_streamed', ''),
               ('empty put', destor.blob_put('brk3_pool', ''), ''),
               ('from lo', destor.blob_from_lo('brk3_pool', :lo, true), 'from a large object'),
               ('imported', destor.blob_import('brk3_pool', :'import_path', sha256('imported')), 'imported'))
       AS t(how, b, v)
 ORDER BY 1;
SELECT destor.blob_delete(:'streamed'), destor.blob_delete(:'empty_streamed');

-- 3. vacuum_blobs finds references at any depth and in any kind of table:
-- a domain over an array of a domain, an array of a composite holding a
-- domain inside a composite, an inheritance child, a partition, a table
-- USING destor, a destor foreign table, a table with FORCE ROW LEVEL
-- SECURITY and no policy (superusers bypass it), an unlogged table, a
-- second blob column, in a schema whose name needs quoting.  A blob named
-- only by a dropped column or a view is unreferenced.
CREATE SCHEMA "brk3 v";
CREATE DOMAIN "brk3 v".dblob AS destor.blob;
CREATE DOMAIN "brk3 v".dblobs AS "brk3 v".dblob[];
CREATE TYPE "brk3 v".pair AS (note text, b "brk3 v".dblob);
CREATE TYPE "brk3 v".nest AS (p "brk3 v".pair[], n int);
CREATE TABLE "brk3 v".t_dom ("Col" "brk3 v".dblob);
CREATE TABLE "brk3 v".t_arr (a "brk3 v".dblobs);
CREATE TABLE "brk3 v".t_comp (c "brk3 v".nest);
CREATE TABLE "brk3 v".t_parent (b destor.blob);
CREATE TABLE "brk3 v".t_child () INHERITS ("brk3 v".t_parent);
CREATE TABLE "brk3 v".t_part (k int, b destor.blob) PARTITION BY LIST (k);
CREATE TABLE "brk3 v".t_part1 PARTITION OF "brk3 v".t_part FOR VALUES IN (1);
SET destor.default_pool = 'mirror';
CREATE TABLE "brk3 v".t_am (b destor.blob) USING destor;
RESET destor.default_pool;
CREATE FOREIGN TABLE "brk3 v".t_ft (b destor.blob) SERVER mirror;
CREATE TABLE "brk3 v".t_rls (b destor.blob);
ALTER TABLE "brk3 v".t_rls ENABLE ROW LEVEL SECURITY;
ALTER TABLE "brk3 v".t_rls FORCE ROW LEVEL SECURITY;
CREATE UNLOGGED TABLE "brk3 v".t_unl (b destor.blob);
CREATE TABLE "brk3 v".t_multi (x int, b1 destor.blob, b2 destor.blob);
CREATE TABLE "brk3 v".t_drop (b destor.blob, keep int);
CREATE TABLE brk3.src (name text, b destor.blob);
INSERT INTO brk3.src SELECT n, destor.blob_put('brk3_pool', convert_to(n, 'UTF8'))
  FROM unnest(ARRAY['dom', 'arr', 'comp', 'child', 'part', 'am', 'ft', 'rls', 'unl', 'multi2',
                    'dropped', 'orphan', 'view']) n;
INSERT INTO "brk3 v".t_dom SELECT b FROM brk3.src WHERE name = 'dom';
INSERT INTO "brk3 v".t_arr SELECT ARRAY[NULL, b]::"brk3 v".dblobs FROM brk3.src WHERE name = 'arr';
INSERT INTO "brk3 v".t_comp
  SELECT ROW(ARRAY[ROW('x', NULL)::"brk3 v".pair, ROW('y', b)::"brk3 v".pair], 1)::"brk3 v".nest
    FROM brk3.src WHERE name = 'comp';
INSERT INTO "brk3 v".t_child SELECT b FROM brk3.src WHERE name = 'child';
INSERT INTO "brk3 v".t_part SELECT 1, b FROM brk3.src WHERE name = 'part';
INSERT INTO "brk3 v".t_am SELECT b FROM brk3.src WHERE name = 'am';
INSERT INTO "brk3 v".t_ft SELECT b FROM brk3.src WHERE name = 'ft';
INSERT INTO "brk3 v".t_rls SELECT b FROM brk3.src WHERE name = 'rls';
INSERT INTO "brk3 v".t_unl SELECT b FROM brk3.src WHERE name = 'unl';
INSERT INTO "brk3 v".t_multi SELECT 1, NULL, b FROM brk3.src WHERE name = 'multi2';
INSERT INTO "brk3 v".t_drop SELECT b, 1 FROM brk3.src WHERE name = 'dropped';
ALTER TABLE "brk3 v".t_drop DROP COLUMN b;
CREATE VIEW "brk3 v".v AS SELECT b FROM brk3.src WHERE name = 'view';
-- the names by id, where vacuum_blobs does not look (uuid, not destor.blob)
CREATE TABLE brk3.names AS SELECT name, b::uuid AS id FROM brk3.src;
DROP TABLE brk3.src CASCADE;
SELECT n.name AS unreferenced FROM destor.vacuum_blobs('brk3_pool') v JOIN brk3.names n ON n.id = v
 WHERE v IN (SELECT id FROM brk3.names) ORDER BY 1;
SELECT count(*) AS deleted FROM destor.vacuum_blobs('brk3_pool', dry_run => false) v
 WHERE v IN (SELECT id FROM brk3.names);
SELECT n.name, destor.blob_get(b) = convert_to(n.name, 'UTF8') AS still_reads
  FROM (SELECT b FROM "brk3 v".t_child UNION ALL SELECT (c).p[2].b FROM "brk3 v".t_comp
        UNION ALL SELECT a[2] FROM "brk3 v".t_arr UNION ALL SELECT b FROM "brk3 v".t_am
        UNION ALL SELECT b FROM "brk3 v".t_ft) r
  JOIN brk3.names n ON n.id = r.b::uuid ORDER BY 1;
DROP SCHEMA "brk3 v" CASCADE;

-- 4. Small (packed) and large blobs, streamed ones, deletes, grants and
-- rolled-back subtransactions (which upload or touch packs) mixed at random
-- over several transactions with compactions between them: every blob
-- reads back byte for byte, with its hash, its size and verified shards.
CREATE ROLE regress_brk3_reader;
CREATE TABLE brk3.shadow (n serial, b destor.blob, v bytea);
CREATE FUNCTION brk3.val(n int) RETURNS bytea LANGUAGE sql AS $$
  SELECT CASE WHEN n % 7 = 0 THEN noise(70000 + n, n)       -- above the pack threshold
              WHEN n % 5 = 0 THEN ''::bytea
              ELSE noise(1 + (n * 37) % 5000, n) END $$;
CREATE FUNCTION brk3.step(i int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r float8 := random(); val bytea := brk3.val(i); fd int; bb destor.blob; victim int;
BEGIN
  IF r < 0.35 THEN
    INSERT INTO brk3.shadow (b, v) VALUES (destor.blob_put('brk3_pool', val), val);
  ELSIF r < 0.5 THEN
    fd := destor.blob_create('brk3_pool');
    PERFORM destor.blob_write(fd, substr(val, 1, 1000));
    PERFORM destor.blob_write(fd, substr(val, 1001));
    INSERT INTO brk3.shadow (b, v) VALUES (destor.blob_close(fd), val);
  ELSIF r < 0.7 THEN
    SELECT n INTO victim FROM brk3.shadow ORDER BY random() LIMIT 1;
    PERFORM destor.blob_delete(b) FROM brk3.shadow WHERE n = victim;
    DELETE FROM brk3.shadow WHERE n = victim;
  ELSIF r < 0.9 THEN
    BEGIN
      INSERT INTO brk3.shadow (b, v) VALUES (destor.blob_put('brk3_pool', val), val);
      SELECT n INTO victim FROM brk3.shadow ORDER BY random() LIMIT 1;
      PERFORM destor.blob_delete(b) FROM brk3.shadow WHERE n = victim;
      DELETE FROM brk3.shadow WHERE n = victim;
      IF r < 0.8 THEN
        PERFORM destor.blob_verify(b) FROM brk3.shadow ORDER BY random() LIMIT 1;
      END IF;
      RAISE EXCEPTION 'undo';
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
  ELSE
    PERFORM destor.blob_grant(b, 'regress_brk3_reader', 'SELECT') FROM brk3.shadow ORDER BY random() LIMIT 1;
  END IF;
  SELECT s.b, s.v INTO bb, val FROM brk3.shadow s ORDER BY random() LIMIT 1;
  IF bb IS NOT NULL AND destor.blob_get(bb) IS DISTINCT FROM val THEN
    RAISE EXCEPTION 'step %: wrong bytes', i;
  END IF;
END $$;
SELECT setseed(0.42);
BEGIN;
SELECT count(brk3.step(i)) AS steps FROM generate_series(100, 130) i;
COMMIT;
SELECT destor.compact_packs('brk3_pool', 0.3) >= 0 AS compacted;
BEGIN;
SELECT count(brk3.step(i)) AS steps FROM generate_series(300, 325) i;
SELECT destor.compact_packs('brk3_pool', 0.3) >= 0 AS compacted_inside;
SELECT count(brk3.step(i)) AS steps FROM generate_series(400, 415) i;
COMMIT;
SELECT count(*) > 10 AS enough, bool_and(destor.blob_get(b) = v) AS bytes,
       bool_and(destor.blob_sha256(b) = sha256(v)) AS sha, bool_and(destor.blob_size(b) = length(v)) AS size,
       bool_and(destor.blob_verify(b)) AS verify
  FROM brk3.shadow;
-- no pack without a live blob
SELECT count(*) AS empty_packs FROM destor.objects o
 WHERE o.pool = 'brk3_pool' AND NOT EXISTS (SELECT FROM destor.blobs b WHERE b.blob_id = o.object_id OR b.pack_id = o.object_id);

-- 5. Descriptors: a cursor reading through a descriptor follows a seek
-- made between two FETCHes; seeks that overflow are 22023 and leave the
-- position alone; past the end reads nothing.
CREATE TABLE brk3.fdb AS SELECT destor.blob_put('brk3_pool', noise(200000, 51)) AS b, noise(200000, 51) AS v;
BEGIN;
SELECT destor.blob_open(b) AS fd FROM brk3.fdb \gset
DECLARE brk3_c CURSOR FOR SELECT i, destor.blob_read(:fd, 1000) AS chunk FROM generate_series(0, 9) i;
FETCH 1 FROM brk3_c \gset
FETCH 1 FROM brk3_c \gset
SELECT :'chunk'::bytea = substring(v FROM 1001 FOR 1000) AS second_chunk FROM brk3.fdb;
SELECT destor.blob_seek(:fd, 150000, 0);
FETCH 1 FROM brk3_c \gset
SELECT :'chunk'::bytea = substring(v FROM 150001 FOR 1000) AS chunk_after_seek FROM brk3.fdb;
CLOSE brk3_c;
SELECT brk3.try(format('SELECT destor.blob_seek(%s, 9223372036854775807, 2)', :fd)) AS seek_end_overflow,
       brk3.try(format('SELECT destor.blob_seek(%s, -200001, 2)', :fd)) AS seek_before_start,
       brk3.try(format('SELECT destor.blob_seek(%s, 1, 3)', :fd)) AS bad_whence,
       destor.blob_tell(:fd) AS position_kept;
SELECT destor.blob_seek(:fd, 9223372036854775807, 0) AS far, destor.blob_read(:fd, 10) AS nothing;
SELECT brk3.try(format('SELECT destor.blob_seek(%s, 1, 1)', :fd)) AS seek_cur_overflow;
SELECT destor.blob_seek(:fd, -3, 2), length(destor.blob_read(:fd, 100)) AS last_three, destor.blob_tell(:fd);
SELECT brk3.try(format('SELECT destor.blob_write(%s, %L)', :fd, 'x')) AS write_on_read_fd,
       brk3.try(format('SELECT destor.blob_read(%s, -1)', :fd)) AS negative_length,
       brk3.try('SELECT destor.blob_read(-1, 1)') AS negative_fd,
       brk3.try('SELECT destor.blob_tell(2147483647)') AS unknown_fd;
SELECT destor.blob_close(:fd)::uuid = b::uuid AS close_returns_handle FROM brk3.fdb;
SELECT brk3.try(format('SELECT destor.blob_close(%s)', :fd)) AS closed_twice,
       brk3.try(format('SELECT destor.blob_read(%s, 1)', :fd)) AS read_after_close;
COMMIT;

-- 6. Privileges side by side with large objects, under the same roles: an
-- owner, SELECT grantee, UPDATE grantee, inheriting and NOINHERIT members of
-- the owner, a role with pool USAGE only, a role with nothing.  Each cell:
-- the blob's answer / the large object's, ok or the SQLSTATE.
CREATE ROLE regress_brk3_own;
CREATE ROLE regress_brk3_sel;
CREATE ROLE regress_brk3_upd;
CREATE ROLE regress_brk3_mem IN ROLE regress_brk3_own;
CREATE ROLE regress_brk3_memni NOINHERIT IN ROLE regress_brk3_own;
CREATE ROLE regress_brk3_use;
CREATE ROLE regress_brk3_none;
GRANT USAGE ON FOREIGN SERVER brk3_pool, p1, p2, p3, p4, p5, p6 TO regress_brk3_own, regress_brk3_use;
GRANT USAGE ON SCHEMA brk3 TO PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA brk3 TO PUBLIC;
SET ROLE regress_brk3_own;
SELECT destor.blob_put('brk3_pool', 'secret') AS pb \gset
SELECT lo_from_bytea(0, 'secret') AS plo \gset
SELECT destor.blob_grant(:'pb', 'regress_brk3_sel', 'SELECT'), destor.blob_grant(:'pb', 'regress_brk3_upd', 'UPDATE');
GRANT SELECT ON LARGE OBJECT :plo TO regress_brk3_sel;
GRANT UPDATE ON LARGE OBJECT :plo TO regress_brk3_upd;
RESET ROLE;
-- ok or the SQLSTATE, as role, and whatever it did undone
CREATE FUNCTION brk3.try_as(role text, stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    EXECUTE format('SET LOCAL ROLE %I', role);
    EXECUTE stmt;
    RAISE EXCEPTION USING ERRCODE = 'P0099';
  EXCEPTION WHEN OTHERS THEN
    RETURN CASE SQLSTATE WHEN 'P0099' THEN 'ok' ELSE SQLSTATE END;
  END;
END $$;
CREATE FUNCTION brk3.side(role text, blob_stmt text, lo_stmt text) RETURNS text LANGUAGE sql AS $$
  SELECT brk3.try_as(role, blob_stmt) || ' / ' || brk3.try_as(role, lo_stmt) $$;
-- lo's GRANT without the grant option only WARNs (naming the oid); blob_grant refuses
SET client_min_messages = error;
SELECT replace(r, 'regress_brk3_', '') AS role,
  brk3.side(r, format('SELECT destor.blob_get(%L)', :'pb'), format('SELECT lo_get(%s)', :plo)) AS read,
  brk3.side(r, format('SELECT destor.blob_open(%L)', :'pb'), format('SELECT lo_open(%s, 262144)', :plo)) AS open_read,
  brk3.side(r, format('SELECT destor.blob_delete(%L)', :'pb'), format('SELECT lo_unlink(%s)', :plo)) AS delete,
  brk3.side(r, format('SELECT destor.blob_grant(%L, %L, %L)', :'pb', 'regress_brk3_none', 'SELECT'),
               format('GRANT SELECT ON LARGE OBJECT %s TO regress_brk3_none', :plo)) AS grant_,
  brk3.side(r, format('SELECT destor.blob_set_owner(%L, %L)', :'pb', r),
               format('ALTER LARGE OBJECT %s OWNER TO %I', :plo, r)) AS set_owner
  FROM unnest(ARRAY['regress_brk3_own', 'regress_brk3_sel', 'regress_brk3_upd', 'regress_brk3_mem',
                    'regress_brk3_memni', 'regress_brk3_use', 'regress_brk3_none']) r
 ORDER BY 1;
RESET client_min_messages;
-- nothing above changed anything (each cell ran in a rolled-back block)
SELECT (SELECT owner::regrole FROM destor.blob_acl WHERE blob_id = :'pb') AS blob_owner,
       (SELECT lomowner::regrole FROM pg_largeobject_metadata WHERE oid = :plo) AS lo_owner;
SELECT lo_unlink(:plo);
SELECT destor.blob_delete(:'pb');
REVOKE USAGE ON FOREIGN SERVER brk3_pool, p1, p2, p3, p4, p5, p6 FROM regress_brk3_own, regress_brk3_use;
REVOKE ALL ON SCHEMA brk3 FROM PUBLIC;
DROP ROLE regress_brk3_own, regress_brk3_sel, regress_brk3_upd, regress_brk3_mem, regress_brk3_memni,
          regress_brk3_use, regress_brk3_none;

-- 7. blob_manage with COPY, MERGE and TRUNCATE: rows loaded by COPY (handles
-- in text form) are managed like inserted ones; MERGE's UPDATE keeps or
-- replaces, its DELETE deletes; two rows sharing a blob deleted by one
-- statement delete it once; TRUNCATE fires no row trigger, so its blobs stay
-- (for vacuum_blobs), as with lo_manage.
CREATE TABLE brk3.managed (k int PRIMARY KEY, note text, b destor.blob);
CREATE TRIGGER manage AFTER UPDATE OR DELETE ON brk3.managed
  FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('b');
CREATE TABLE brk3.handles AS
  SELECT k, destor.blob_put('brk3_pool', convert_to('managed ' || k, 'UTF8')) AS b FROM generate_series(1, 6) k;
CREATE FUNCTION brk3.alive(k int) RETURNS bool LANGUAGE sql AS $$
  SELECT EXISTS (SELECT FROM destor.blobs WHERE blob_id = (SELECT b::uuid FROM brk3.handles h WHERE h.k = $1)) $$;
COPY (SELECT k, 'copied', b FROM brk3.handles WHERE k <= 4) TO PROGRAM 'cat > "$DESTOR_REGRESS_DIR/brk3_copy"';
COPY brk3.managed FROM PROGRAM 'cat "$DESTOR_REGRESS_DIR/brk3_copy"';
INSERT INTO brk3.managed SELECT 5, 'shares 4', b FROM brk3.handles WHERE k = 4;
MERGE INTO brk3.managed m USING (VALUES (1, 'merge keeps'), (2, 'merge replaces'), (3, 'merge deletes')) v(k, what)
  ON m.k = v.k
  WHEN MATCHED AND v.what = 'merge keeps' THEN UPDATE SET note = v.what
  WHEN MATCHED AND v.what = 'merge replaces' THEN UPDATE SET note = v.what,
    b = (SELECT b FROM brk3.handles WHERE k = 6)
  WHEN MATCHED THEN DELETE;
DELETE FROM brk3.managed WHERE k IN (4, 5);
SELECT k, brk3.alive(k) AS blob_alive FROM brk3.handles ORDER BY k;
SELECT k, note, convert_from(destor.blob_get(b), 'UTF8') AS content FROM brk3.managed ORDER BY k;
TRUNCATE brk3.managed;
SELECT k, brk3.alive(k) AS blob_alive_after_truncate FROM brk3.handles WHERE k IN (1, 6) ORDER BY k;

DROP SCHEMA brk3 CASCADE;
SELECT count(destor.blob_delete(b.blob_id::text::destor.blob)) > 0 AS emptied_pool
  FROM destor.blobs b JOIN destor.objects o ON o.object_id = coalesce(b.pack_id, b.blob_id)
 WHERE o.pool = 'brk3_pool';
DROP ROLE regress_brk3_reader;
DROP SERVER brk3_pool;
