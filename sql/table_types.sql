-- Values read from destor tables are used by operators and functions
-- (subscripts, array_length, unnest, lower/upper of ranges, numeric
-- arithmetic, jsonb paths, composite fields, text search...), not only
-- printed: a scan must hand PostgreSQL properly aligned datums.  A round
-- trip compared through row::text hides misalignment, because forming the
-- row copies each value to aligned memory first; so every check here is an
-- expression evaluated on the scanned value, compared with the same
-- expression on a heap table holding the same rows.  Each destor table
-- stores the rows with another codec path: compressed chunks, NULL-heavy
-- chunks, and chunks zstd cannot shrink (stored uncompressed).
\i test/regress/setup.sql
\set q1 :dir '/tt1'
\set q2 :dir '/tt2'
\set q3 :dir '/tt3'
\set mk 'cat > /dev/null; mkdir -p ' :dir '/tt1 ' :dir '/tt2 ' :dir '/tt3'
COPY (SELECT 1) TO PROGRAM :'mk';
CREATE SERVER tt1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q1');
CREATE SERVER tt2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q2');
CREATE SERVER tt3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path :'q3');
CREATE SERVER tt_pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'tt1,tt2,tt3', data_shards '2', parity_shards '1');
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS ltree;
CREATE TYPE tt_pair AS (a int, b text, c numeric[]);
CREATE TYPE tt_mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN tt_intarr AS int[] CHECK (cardinality(VALUE) < 100);

-- the column list of every table here
\set cols 'id int, i2 int2, i4 int4, i8 int8, num numeric, f4 float4, f8 float8, t text, vc varchar(40), bp char(5), nm name, ch "char", ba bytea, b bool, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval, u uuid, j json, jb jsonb, jp jsonpath, ip inet, cid cidr, mac macaddr, mac8 macaddr8, pt point, ln line, ls lseg, bx box, pth path, pg polygon, ci circle, tv tsvector, tq tsquery, r4 int4range, r8 int8range, rn numrange, rd daterange, rts tsrange, rtz tstzrange, m4 int4multirange, mn nummultirange, mo money, bt bit(12), vb bit varying(20), lsn pg_lsn, o oid, i2a int2[], i4a int4[], i8a int8[], na numeric[], f8a float8[], ta text[], baa bytea[], ba2 bool[], da date[], tsa timestamptz[], iva interval[], ua uuid[], jba jsonb[], ipa inet[], r4a int4range[], pta point[], vca varchar[], i4aa int4[], c tt_pair, ca tt_pair[], e tt_mood, ea tt_mood[], dom tt_intarr, hs hstore, lt ltree'

CREATE TABLE tt_heap (:cols);
INSERT INTO tt_heap
SELECT i, (i % 30000 - 15000)::int2, i * 7 - 5000, i::int8 * 1000000007,
       CASE i % 7 WHEN 0 THEN 'NaN'::numeric WHEN 1 THEN '123456789012345678901234567890.000000001'::numeric
            ELSE (i / 7.0)::numeric END,
       i / 3.0, i * 1.0e-3,
       repeat('x', i % 37) || 't' || i, 'vc' || repeat('y', i % 11) || i, left(i::text, 5), 'n' || i,
       chr(65 + i % 26)::"char", decode(repeat(md5(i::text), 1 + i % 3), 'hex'), i % 2 = 0,
       '2000-01-01'::date + i, '00:00'::time + i * interval '1 second',
       ('10:00+0' || (i % 9))::timetz, '2020-02-29 12:00'::timestamp + i * interval '1 hour',
       '2020-02-29 12:00+00'::timestamptz + i * interval '1 minute',
       make_interval(months => i % 13, days => i % 31, secs => i / 7.0),
       md5(i::text)::uuid, ('{"k": ' || i || ', "a": [1, 2' || repeat(', 3', i % 5) || ']}')::json,
       ('{"k": ' || i || ', "nested": {"x": ' || i % 10 || '}, "s": "' || repeat('z', i % 9) || '"}')::jsonb,
       ('$.a[' || i % 3 || ']')::jsonpath,
       ('10.' || (i % 256) || '.' || (i % 7) || '.1/' || (8 + i % 24))::inet,
       ('10.' || (i % 256) || '.0.0/16')::cidr,
       ('08:00:2b:01:02:' || lpad(to_hex(i % 256), 2, '0'))::macaddr,
       ('08:00:2b:01:02:03:04:' || lpad(to_hex(i % 256), 2, '0'))::macaddr8,
       point(i, -i), line(point(0, i), point(1, i + 1)), lseg(point(0, 0), point(i, i)),
       box(point(0, 0), point(i, i % 17 + 1)),
       ('[(0,0),(' || i || ',1),(2,' || i % 5 || ')]')::path,
       ('((0,0),(' || i || ',0),(0,' || (i % 9 + 1) || '))')::polygon,
       circle(point(i, 0), i % 10 + 1),
       to_tsvector('simple', 'word' || i || ' other' || repeat(' filler', i % 4)),
       to_tsquery('simple', 'word' || i || ' & other'),
       int4range(i, i + 10 + i % 5), int8range(i::int8 * 1000000000, i::int8 * 1000000000 + 7),
       numrange(i / 3.0, i / 2.0 + 1), daterange('2000-01-01'::date + i, '2000-03-01'::date + i),
       tsrange('2020-01-01'::timestamp + i * interval '1 hour', '2021-01-01'),
       tstzrange('2020-01-01+00'::timestamptz, '2020-01-01+00'::timestamptz + i * interval '1 day'),
       int4multirange(int4range(i, i + 2), int4range(i + 5, i + 9 + i % 3)),
       nummultirange(numrange(i / 7.0, i / 5.0 + 1), numrange(i, i + 1.5)),
       (i * 1.25)::money, (i % 4096)::bit(12), (i % 1000)::bit(20)::bit varying(20),
       ('0/' || to_hex(i * 4099))::pg_lsn, i::oid,
       ARRAY[i % 100, -(i % 7)]::int2[],
       CASE WHEN i % 5 = 0 THEN ARRAY[[i, NULL], [3, 4]] ELSE ARRAY(SELECT i + g FROM generate_series(0, i % 6) g) END,
       ARRAY[i::int8 * 3000000000, 8, i],
       ARRAY[(i / 7.0)::numeric, 1.5, -i * 1000000000000::numeric, NULL],
       ARRAY[i / 3.0, -0.5],
       ARRAY['a' || repeat('q', i % 13), NULL, 'ü' || i],
       ARRAY[decode(md5(i::text), 'hex'), '\x00'::bytea],
       ARRAY[i % 2 = 0, NULL, true],
       ARRAY['2000-01-01'::date + i, '1999-12-31'],
       ARRAY['2020-01-01+00'::timestamptz + i * interval '1 second'],
       ARRAY[make_interval(days => i), interval '1 month'],
       ARRAY[md5(i::text)::uuid, md5((i + 1)::text)::uuid],
       ARRAY[('{"k": ' || i || '}')::jsonb, '[1, 2, 3]'],
       ARRAY[('192.168.' || (i % 256) || '.1')::inet, '::1'],
       ARRAY[int4range(i, i + 3), int4range(NULL, i)],
       ARRAY[point(i, i + 1), point(0, 0)],
       ARRAY['v' || repeat('w', i % 5), 'end']::varchar[],
       ARRAY[[i, i + 1, i + 2], [i * 2, i * 3, i * 4]],
       ROW(i, 'p' || repeat('r', i % 6), ARRAY[i / 4.0, 2.5])::tt_pair,
       ARRAY[ROW(i, 'x', ARRAY[1.5])::tt_pair, ROW(-i, NULL, NULL)::tt_pair],
       (ARRAY['sad', 'ok', 'happy'])[i % 3 + 1]::tt_mood,
       ARRAY[(ARRAY['sad', 'ok', 'happy'])[i % 3 + 1]::tt_mood, 'happy'],
       ARRAY[i, i + 1, i % 3]::tt_intarr,
       hstore(ARRAY['k', 'n' || i % 4], ARRAY[i::text, repeat('h', i % 3)]),
       ('top.m' || i % 5 || '.leaf' || i)::ltree
  FROM generate_series(1, 1200) i;
INSERT INTO tt_heap (id) VALUES (0);   -- a row of NULLs

-- NULL-heavy: most values are NULL, so the values that remain sit at
-- irregular offsets of their chunks
CREATE TABLE tt_heap_sparse AS SELECT * FROM tt_heap;
UPDATE tt_heap_sparse SET
  i2 = NULL, num = CASE WHEN id % 5 = 3 THEN num END, t = CASE WHEN id % 7 = 2 THEN t END,
  i4a = CASE WHEN id % 3 = 1 THEN i4a END, na = CASE WHEN id % 4 = 1 THEN na END,
  r4 = CASE WHEN id % 6 = 5 THEN r4 END, jb = CASE WHEN id % 5 = 1 THEN jb END,
  m4 = CASE WHEN id % 9 = 4 THEN m4 END, ta = CASE WHEN id % 2 = 1 THEN ta END,
  iv = CASE WHEN id % 3 = 2 THEN iv END, c = CASE WHEN id % 4 = 3 THEN c END,
  ttz = CASE WHEN id % 8 = 1 THEN ttz END, u = CASE WHEN id % 3 = 0 THEN u END,
  r4a = CASE WHEN id % 5 = 2 THEN r4a END, pth = CASE WHEN id % 3 = 0 THEN pth END,
  f8a = CASE WHEN id % 11 = 3 THEN f8a END, rn = CASE WHEN id % 7 = 3 THEN rn END;

CREATE FOREIGN TABLE tt_packed (:cols) SERVER tt_pool OPTIONS (segment_rows '1000', row_group_rows '333');
CREATE FOREIGN TABLE tt_sparse (:cols) SERVER tt_pool OPTIONS (segment_rows '1000', row_group_rows '101');
INSERT INTO tt_packed SELECT * FROM tt_heap;
INSERT INTO tt_sparse SELECT * FROM tt_heap_sparse;

-- chunks zstd cannot shrink are stored as they are (uncompressed path):
-- random bytes, random arrays of them, random numerics
CREATE TABLE tt_heap_random AS
  SELECT i AS id, sha512(i::text::bytea) || sha512((i + 7)::text::bytea) AS ba,
         ARRAY[sha256(i::text::bytea), sha512((-i)::text::bytea)] AS baa,
         ('0.' || ('x' || left(md5(i::text), 15))::bit(60)::int8)::numeric AS num,
         ARRAY[('x' || left(md5(i::text), 16))::bit(64)::int8, ('x' || left(md5((i * 3)::text), 16))::bit(64)::int8] AS i8a
    FROM generate_series(1, 500) i;
CREATE FOREIGN TABLE tt_random (id int, ba bytea, baa bytea[], num numeric, i8a int8[])
  SERVER tt_pool OPTIONS (row_group_rows '250');
INSERT INTO tt_random SELECT * FROM tt_heap_random;

-- how many rows of heap table h and destor table f differ in the
-- expressions e (their results compared as text: some types, such as
-- point, have no equality)
CREATE FUNCTION tt_diff(h text, f text, e text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint; m bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM (SELECT id, ROW(%s)::text FROM %I EXCEPT ALL SELECT id, ROW(%s)::text FROM %I) x', e, h, e, f) INTO n;
  EXECUTE format('SELECT count(*) FROM (SELECT id, ROW(%s)::text FROM %I EXCEPT ALL SELECT id, ROW(%s)::text FROM %I) x', e, f, e, h) INTO m;
  RETURN n + m;
END $$;

CREATE TABLE tt_checks (what text, e text);
INSERT INTO tt_checks VALUES
  ('int2 arithmetic', 'i2 + 1, i2 * 2'),
  ('int4/int8 arithmetic', 'i4 * 3, i8 / 7, i8 % 1000'),
  ('numeric arithmetic', 'num + 1, num * num, round(num, 3), num / 3, scale(num)'),
  ('float arithmetic', 'f4 * 2, f8 + 0.5, sqrt(abs(f8))'),
  ('text functions', 'length(t), upper(t), t || ''!'', substr(t, 3, 4), t ~ ''x{3}'''),
  ('varchar/char/name', 'length(vc), vc || ''.'', bp || ''|'', length(nm), nm = (''n'' || id)::name, ch::int'),
  ('bytea functions', 'length(ba), get_byte(ba, 0), md5(ba), substring(ba from 3 for 5)'),
  ('bool', 'b AND id > 10, NOT b'),
  ('date/time arithmetic', 'd + 1, tm + interval ''1 hour'', ttz + interval ''1 minute'', ts + interval ''1 day'''),
  ('timestamptz', 'extract(epoch from tstz), date_trunc(''day'', tstz AT TIME ZONE ''UTC'')'),
  ('interval', 'iv + interval ''1 day'', extract(epoch from iv), justify_interval(iv)'),
  ('uuid', 'u = md5(id::text)::uuid, u < ''80000000-0000-0000-0000-000000000000''::uuid'),
  ('json paths', 'j -> ''k'', json_array_length(j -> ''a''), j ->> ''a'''),
  ('jsonb paths', 'jb -> ''k'', jb #> ''{nested,x}'', jb ->> ''s'', jb @> ''{"k": 7}'', jsonb_path_query_first(jb, ''$.nested.x'')'),
  ('jsonpath', 'jsonb_path_query_first(''{"a": [10, 20, 30]}'', jp)'),
  ('inet/cidr', 'masklen(ip), host(ip), network(ip), ip << ''10.0.0.0/8'', masklen(cid), cid >> ip'),
  ('macaddr', 'trunc(mac), mac8 & ''ff:ff:ff:ff:ff:ff:ff:00'''),
  ('geometry', 'pt[0], pt[1], ln ?|| line(point(0,0), point(1,1)), length(ls), area(bx), height(bx), npoints(pth), length(pth), npoints(pg), area(ci), radius(ci), center(ci)'),
  ('text search', 'tv @@ to_tsquery(''simple'', ''word'' || id), length(tv), numnode(tq), tv @@ tq'),
  ('int4range', 'lower(r4), upper(r4), r4 @> 5, r4 * int4range(0, 500), isempty(r4)'),
  ('int8range', 'lower(r8), upper(r8) - lower(r8)'),
  ('numrange', 'lower(rn), upper(rn), rn @> 10.5, upper_inc(rn)'),
  ('daterange/tsrange/tstzrange', 'lower(rd), upper(rd) - lower(rd), lower(rts), upper(rtz), rtz @> ''2020-01-05+00''::timestamptz'),
  ('multiranges', 'lower(m4), upper(m4), m4 @> 7, range_merge(m4), lower(mn), upper(mn), mn @> 3.0'),
  ('money/bit/varbit', 'mo + 1::money, bt & B''000000001111'', bit_length(vb), vb || B''1'''),
  ('pg_lsn/oid', 'lsn - ''0/0'', o::int8 + 1, o = 7::oid'),
  ('int2[]', 'i2a[1], i2a[2], array_length(i2a, 1)'),
  ('int4[] subscripts', 'i4a[1], i4a[2], i4a[1:2], array_length(i4a, 1), array_ndims(i4a), cardinality(i4a), i4a @> ARRAY[3]'),
  ('int4[] unnest', '(SELECT sum(x) FROM unnest(i4a) x), (SELECT count(*) FROM unnest(i4a) x WHERE x IS NULL)'),
  ('int8[]', 'i8a[1], i8a[3], array_length(i8a, 1)'),
  ('numeric[]', 'na[1] + na[2], na[3] * 2, array_length(na, 1), (SELECT sum(x) FROM unnest(na) x)'),
  ('float8[]', 'f8a[1] * 2, f8a[2]'),
  ('text[]', 'ta[1], ta[3], length(ta[1]), array_position(ta, ''ü'' || id), array_to_string(ta, '','', ''*'')'),
  ('bytea[]', 'length(baa[1]), md5(baa[1]), baa[2]'),
  ('bool[]', 'ba2[1], ba2[2] IS NULL, ba2[3]'),
  ('date[]/timestamptz[]/interval[]', 'da[1] + 1, da[2], tsa[1] + interval ''1 hour'', iva[1] + iva[2]'),
  ('uuid[]', 'ua[1] = u, ua[2]'),
  ('jsonb[]', 'jba[1] -> ''k'', jsonb_array_length(jba[2]), jba[2] -> 1'),
  ('inet[]', 'masklen(ipa[1]), host(ipa[2])'),
  ('int4range[]', 'lower(r4a[1]), upper(r4a[1]), upper(r4a[2]), lower_inf(r4a[2])'),
  ('point[]', 'pta[1][0], pta[1][1], pta[2]'),
  ('varchar[]', 'vca[1], length(vca[1]) + length(vca[2])'),
  ('int4[][]', 'i4aa[2][3], i4aa[1][1], array_length(i4aa, 2), i4aa[1:1][2:3]'),
  ('composite fields', '(c).a, (c).b, (c).c[1] + (c).c[2], length((c).b)'),
  ('composite[]', 'ca[1].a, ca[2].a, ca[1].c[1], ca[2].b IS NULL, array_length(ca, 1)'),
  ('enum/enum[]', 'e, e > ''sad''::tt_mood, ea[1], ea[2] = ''happy'''),
  ('domain over int[]', 'dom[1], dom[3], array_length(dom, 1)'),
  ('hstore', 'hs -> ''k'', akeys(hs), hs ? ''n1'''),
  ('ltree', 'nlevel(lt), subpath(lt, 1, 1), lt <@ ''top.m1''');

-- every check, on compressed and on NULL-heavy chunks: 0 rows differ
SELECT what, tt_diff('tt_heap', 'tt_packed', e) AS packed_diff,
       tt_diff('tt_heap_sparse', 'tt_sparse', e) AS sparse_diff
  FROM tt_checks ORDER BY what COLLATE "C";
-- and on chunks stored uncompressed
SELECT tt_diff('tt_heap_random', 'tt_random',
               'length(ba), md5(ba), get_byte(ba, 1), length(baa[2]), md5(baa[1]), num * 2, num + 1, i8a[1], i8a[2], array_length(i8a, 1)')
       AS random_diff;

-- integer-like columns (int2/4/8, date, time, timestamp, timestamptz) are
-- delta-encoded where that compresses better, recorded per chunk in the
-- segment directory (format DDIR2); with destor.chunk_encoding = 'plain'
-- every chunk is written as before the encodings (DDIR1).  Both read back
-- what a heap holds: monotone, decreasing, narrow and random values, the
-- types' extremes side by side (every difference overflows), NULLs, a row
-- group of NULLs only and a row group of one row.
CREATE TABLE tt_heap_delta AS
  SELECT i AS id,
         CASE WHEN i % 10 = 3 THEN NULL ELSE (i % 50 - 25)::int2 END AS i2,
         (CASE i % 4 WHEN 0 THEN -2147483648 WHEN 1 THEN 2147483647 WHEN 2 THEN 0 ELSE -1 END)::int4 AS i4,
         CASE i % 3 WHEN 0 THEN -9223372036854775808 WHEN 1 THEN 9223372036854775807 ELSE i END::int8 AS i8,
         i::int8 * 1000 AS seq,
         hashint4(i)::int8 * 65537 AS rnd,
         '2024-01-01'::date + i / 7 AS d,
         CASE i % 100 WHEN 5 THEN 'infinity' WHEN 6 THEN '-infinity'
              ELSE '2024-01-01 00:00+00'::timestamptz + i * interval '1 second' END AS tstz,
         '2024-01-01 00:00'::timestamp - i * interval '17 ms' AS ts,
         '00:00'::time + (i % 600) * interval '1 s' AS tm,
         CASE WHEN i > 900 THEN NULL ELSE -i END AS gone_late
    FROM generate_series(1, 1001) i;
\set dcols 'id int, i2 int2, i4 int4, i8 int8, seq int8, rnd int8, d date, tstz timestamptz, ts timestamp, tm time, gone_late int4'
CREATE FOREIGN TABLE tt_delta (:dcols) SERVER tt_pool OPTIONS (row_group_rows '100');
CREATE FOREIGN TABLE tt_delta_plain (:dcols) SERVER tt_pool OPTIONS (row_group_rows '100');
INSERT INTO tt_delta SELECT * FROM tt_heap_delta;
SET destor.chunk_encoding = plain;
INSERT INTO tt_delta_plain SELECT * FROM tt_heap_delta;
RESET destor.chunk_encoding;
CREATE FUNCTION tt_segments(t regclass) RETURNS TABLE (format text, stored bigint) LANGUAGE sql AS $$
  SELECT convert_from(substr(s.directory, 1, 5), 'UTF8'), o.size
    FROM destor.segments s JOIN destor.objects o USING (object_id)
   WHERE s.table_id = (SELECT option_value::uuid FROM pg_options_to_table(
                         (SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = t))
                        WHERE option_name = 'table_id') $$;
SELECT (SELECT string_agg(DISTINCT format, ',') FROM tt_segments('tt_delta')) AS delta_format,
       (SELECT string_agg(DISTINCT format, ',') FROM tt_segments('tt_delta_plain')) AS plain_format,
       (SELECT sum(stored) FROM tt_segments('tt_delta'))
         < 0.6 * (SELECT sum(stored) FROM tt_segments('tt_delta_plain')) AS delta_smaller;
SELECT tt_diff('tt_heap_delta', 'tt_delta', 'i2, i4, i8, seq, rnd, d, tstz, ts, tm, gone_late, seq + 1, tstz + interval ''1 day''') AS delta_diff,
       tt_diff('tt_heap_delta', 'tt_delta_plain', 'i2, i4, i8, seq, rnd, d, tstz, ts, tm, gone_late') AS plain_diff;
-- min/max pruning still holds: the row groups keep their statistics
EXPLAIN (COSTS OFF) SELECT count(*) FROM tt_delta WHERE seq BETWEEN 250000 AND 260000;
SELECT count(*), min(seq), max(seq) FROM tt_delta WHERE seq BETWEEN 250000 AND 260000;
SELECT count(*) FROM tt_delta WHERE tstz = 'infinity' OR i4 = -2147483648;
-- plain segments written before are read by a session that encodes
SET destor.chunk_encoding = plain;
INSERT INTO tt_delta SELECT * FROM tt_heap_delta WHERE id <= 150;
RESET destor.chunk_encoding;
SELECT string_agg(format, ',' ORDER BY format) AS formats FROM tt_segments('tt_delta');
SELECT count(*), count(DISTINCT id), sum(seq), sum(i2) FROM tt_delta;
DROP FOREIGN TABLE tt_delta, tt_delta_plain;
DROP TABLE tt_heap_delta;
DROP FUNCTION tt_segments(regclass);

-- the values of the issue, shown
CREATE FOREIGN TABLE tt_issue (id int, a int[], r int4range, n numeric[]) SERVER tt_pool;
INSERT INTO tt_issue VALUES (1, '{7,8}', '[1,11)', '{1.5,2.25}'), (2, '{1,2,3}', '[5,6)', '{-3,NULL,1e20}');
SELECT id, a[1], a[2], array_length(a, 1), lower(r), upper(r), n[1] + n[2] AS nsum, n[3] * 2 AS n3
  FROM tt_issue ORDER BY id;
SELECT id, x FROM tt_issue, unnest(a) x ORDER BY id, x;
-- through a sort (values copied), a hash join, and a sub-select
SELECT (SELECT sum(x) FROM unnest(i4a) x) AS s, count(*) FROM tt_packed WHERE id < 40 GROUP BY 1 ORDER BY 1 LIMIT 5;
SELECT count(*) FROM tt_packed p JOIN tt_heap h ON p.i4a = h.i4a AND p.na = h.na AND p.r4 = h.r4 AND p.c = h.c;

DROP FOREIGN TABLE tt_packed, tt_sparse, tt_random, tt_issue;
DROP TABLE tt_heap, tt_heap_sparse, tt_heap_random, tt_checks;
DROP FUNCTION tt_diff(text, text, text);
DROP TYPE tt_pair, tt_mood;
DROP DOMAIN tt_intarr;
DROP SERVER tt_pool;
DROP SERVER tt1, tt2, tt3;
DROP EXTENSION hstore;
DROP EXTENSION ltree;
