-- DestorScan (src/tableam/tableam_path.c) compared with heap on every
-- column type: the same 12,500 rows (two row groups, a dropped column, two
-- columns added with defaults, NULL-only and NaN/-0/infinity values) in a
-- heap table and a table USING destor, and 90 predicates drawn by a random
-- generator (comparisons with cross-type constants, IN, ANY/ALL, BETWEEN
-- SYMMETRIC, OR/NOT, IS [NOT] NULL, IS [NOT] DISTINCT FROM, row
-- comparisons, LIKE, COLLATE), frozen here.  Every query's rows are
-- compared (count and md5 of the sorted rows); the list of differing ones
-- must be empty.  Written by the DestorScan review (breaker12).
\i test/regress/setup.sql
SET destor.default_pool = 'mirror';
SET client_min_messages = warning;
SET destor.default_pool = 'mirror';
CREATE TYPE ty_mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE ty_pair AS (x int, y text);
CREATE DOMAIN ty_pos AS int CHECK (VALUE >= 0);
CREATE TABLE ty_heap (
  id int, i2 int2, i4 int4, i8 int8, nu numeric, f4 float4, f8 float8,
  t text, ti text COLLATE "en-x-icu", vc varchar(30), bp char(5), by bytea, b bool,
  d date, ts timestamp, tz timestamptz, u uuid, arr int4[], rg int4range, j jsonb,
  dom ty_pos, mood ty_mood, pair ty_pair, iv interval, nm name, ch "char", o oid, ip inet, mo money,
  gone int);
INSERT INTO ty_heap
SELECT i,
  CASE WHEN i % 13 = 0 THEN NULL ELSE ((i * 7919) % 65535 - 32767)::int2 END,
  CASE WHEN i <= 10000 THEN NULL ELSE i END,                    -- all NULL in first row group
  (i::int8 * 1000003) % 1000000007 - 500000000,
  CASE WHEN i % 997 = 0 THEN 'NaN'::numeric WHEN i % 991 = 0 THEN 'Infinity' WHEN i % 983 = 0 THEN '-Infinity' ELSE round((i / 7.0)::numeric, 3) END,
  CASE WHEN i % 101 = 0 THEN 'NaN'::float4 WHEN i % 103 = 0 THEN '-0'::float4 WHEN i % 107 = 0 THEN '-Infinity' ELSE ((i % 1000) / 3.0)::float4 END,
  CASE WHEN i % 101 = 1 THEN 'NaN'::float8 WHEN i % 103 = 1 THEN '-0'::float8 WHEN i % 109 = 0 THEN 'Infinity' WHEN i % 17 = 0 THEN NULL ELSE i / 3.0 END,
  CASE WHEN i % 11 = 0 THEN NULL WHEN i % 29 = 0 THEN '' ELSE chr(65 + i % 26) || md5(i::text) END,
  CASE WHEN i % 2 = 0 THEN 'a' || (i % 500) WHEN i % 3 = 0 THEN 'B' || (i % 300) ELSE 'é' || i % 50 END,
  'v' || (i % 1000),
  substr(md5(i::text), 1, 1 + i % 5),
  decode(substr(md5(i::text), 1, 2 * (i % 4)), 'hex'),
  CASE WHEN i % 7 = 0 THEN NULL ELSE i % 3 = 0 END,
  CASE WHEN i = 5 THEN 'infinity'::date WHEN i = 6 THEN '-infinity' ELSE date '2020-01-01' + i / 10 END,
  CASE WHEN i = 15 THEN 'infinity'::timestamp WHEN i = 11001 THEN '-infinity' ELSE timestamp '2024-01-01' + i * interval '37 seconds' END,
  CASE WHEN i = 7 THEN 'infinity'::timestamptz ELSE timestamptz '2024-01-01 00:00+00' + i * interval '1 minute' END,
  md5(i::text)::uuid,
  CASE WHEN i % 5 = 0 THEN NULL ELSE ARRAY[i % 10, i % 7] END,
  CASE WHEN i % 9 = 0 THEN 'empty'::int4range ELSE int4range(i % 100, i % 100 + i % 13 + 1) END,
  CASE WHEN i % 4 = 0 THEN jsonb_build_object('k', i % 10) WHEN i % 4 = 1 THEN to_jsonb(i % 50) WHEN i % 4 = 2 THEN to_jsonb('s' || i % 20) ELSE 'null'::jsonb END,
  (i % 40)::ty_pos,
  (ARRAY['sad','ok','happy'])[1 + i % 3]::ty_mood,
  ROW(i % 5, 'p' || i % 3)::ty_pair,
  (i % 100) * interval '1 hour' + (i % 3) * interval '1 month',
  ('n' || i % 60)::name,
  chr(97 + i % 20)::"char",
  (i * 3)::oid,
  ('10.' || (i / 256) % 256 || '.' || i % 256 || '.1')::inet,
  (i % 1000 / 7.0)::numeric::money,
  i
FROM generate_series(1, 12000) i;
CREATE TABLE ty_am USING destor AS SELECT * FROM ty_heap;
ALTER TABLE ty_heap DROP COLUMN gone; ALTER TABLE ty_am DROP COLUMN gone;
ALTER TABLE ty_heap ADD COLUMN later int DEFAULT 42; ALTER TABLE ty_am ADD COLUMN later int DEFAULT 42;
ALTER TABLE ty_heap ADD COLUMN later_t text DEFAULT 'dflt'; ALTER TABLE ty_am ADD COLUMN later_t text DEFAULT 'dflt';
INSERT INTO ty_heap (id, i4, t, later, later_t) SELECT i, i, 'late' || i, CASE WHEN i % 2 = 0 THEN NULL ELSE i END, 'x' || i FROM generate_series(40001, 40500) i;
INSERT INTO ty_am (id, i4, t, later, later_t) SELECT i, i, 'late' || i, CASE WHEN i % 2 = 0 THEN NULL ELSE i END, 'x' || i FROM generate_series(40001, 40500) i;
ANALYZE ty_am; ANALYZE ty_heap;
CREATE OR REPLACE FUNCTION ty_cmp(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE a text; h text; ea text; eh text;
BEGIN
  BEGIN
    EXECUTE format('SELECT count(*)::text || '':'' || coalesce(md5(string_agg(x::text, '','' ORDER BY x::text)), '''') FROM (%s) x', replace(q, '$t', 'ty_am')) INTO a;
  EXCEPTION WHEN OTHERS THEN ea := SQLERRM;
  END;
  BEGIN
    EXECUTE format('SELECT count(*)::text || '':'' || coalesce(md5(string_agg(x::text, '','' ORDER BY x::text)), '''') FROM (%s) x', replace(q, '$t', 'ty_heap')) INTO h;
  EXCEPTION WHEN OTHERS THEN eh := SQLERRM;
  END;
  IF a IS NOT DISTINCT FROM h AND ea IS NOT DISTINCT FROM eh THEN RETURN NULL; END IF;
  RETURN format('am=%s heap=%s am_err=%s heap_err=%s', a, h, ea, eh);
END $$;

CREATE TABLE ty_q (n serial, q text);
COPY ty_q (q) FROM stdin;
SELECT id FROM $t WHERE rg IS NOT DISTINCT FROM 'empty'::int4range
SELECT * FROM $t WHERE (mood = 'ok'::ty_mood OR (later < '42'::int4 OR dom < '39'::ty_pos))
SELECT * FROM $t WHERE ((tz > ANY (ARRAY['2024-01-06 16:26:00+00'::timestamptz, '-infinity'::timestamptz]) AND mood BETWEEN SYMMETRIC 'sad'::ty_mood AND 'happy'::ty_mood) OR (arr BETWEEN SYMMETRIC '{7,4}'::int4[] AND '{7,4}'::int4[] AND d IS NULL))
SELECT * FROM $t WHERE ((i4, id) > ('10001'::int4, 100) AND t > 'D333ac5d90817d69113471fbb6e531bee' COLLATE "en-x-icu")
SELECT * FROM $t WHERE ch = 'e'::"char"
SELECT * FROM $t WHERE u IN ('4cb81113-4b9d-39fc-3104-bd06ce75abad'::uuid, 'b0df2270-be9c-b16c-1453-7e5bc2f2d37b'::uuid)
SELECT sum(id) FROM $t WHERE NOT (i2 BETWEEN SYMMETRIC -40000::int2 AND -17506::float8)
SELECT id FROM $t WHERE nu IS NULL
SELECT * FROM $t WHERE i2 <> '24272'::int2
SELECT id FROM $t WHERE (i2 <> 32767.5 AND j IS NOT NULL)
SELECT sum(id) FROM $t WHERE bp >= 'a57'::text
SELECT sum(id) FROM $t WHERE ((later, id) > ('42'::int4, 100) OR (id BETWEEN SYMMETRIC '10387'::int4 AND '8836'::int4 OR u BETWEEN SYMMETRIC '4cce0644-e370-52e4-c750-f194dd5cccfd'::uuid AND '2a38a4a9-316c-49e5-a833-517c45d31070'::uuid))
SELECT * FROM $t WHERE dom > '21'::ty_pos
SELECT id, b FROM $t WHERE (NOT (i4 IN (9999::int4, 11117::int2, 0::int4)) OR j < 'null'::jsonb)
SELECT id FROM $t WHERE i2 <= -32768::numeric
SELECT * FROM $t WHERE i8::text > '161019941'
SELECT id, by FROM $t WHERE nm = 'n0'::name
SELECT * FROM $t WHERE (i8 IS DISTINCT FROM '-499997007'::int8 OR i2 IS DISTINCT FROM '-32759'::int2)
SELECT sum(id) FROM $t WHERE (vc <> 'v429'::varchar OR tz::text > '2024-01-01 14:57:00+00')
SELECT id, b FROM $t WHERE (u IS NULL OR nu IS NOT DISTINCT FROM '1572.286'::numeric)
SELECT id, j FROM $t WHERE (arr IN ('{7,4}'::int4[], '{9,5}'::int4[], '{8,6}'::int4[]) OR o >= '20457'::oid)
SELECT id, i4 FROM $t WHERE ((later <= '42'::int4 OR u BETWEEN SYMMETRIC '30c0a496-a57b-cc2c-7c6c-481342526729'::uuid AND '270edd69-788d-ce20-0a3b-395a6da6fdb7'::uuid) AND by IS NOT DISTINCT FROM E'\\\\x65f2a9'::bytea)
SELECT sum(id) FROM $t WHERE i4 > '11997'::int4
SELECT id FROM $t WHERE ((i2 > '-17534'::int2 OR mood IS NOT NULL) OR (mood <= 'happy'::ty_mood OR vc IN ('v0'::varchar)))
SELECT sum(id) FROM $t WHERE ((arr = '{3,5}'::int4[] AND ti IS NOT NULL) AND nm > ALL (ARRAY['n55'::text, 'n25'::name]))
SELECT * FROM $t WHERE id = ANY (ARRAY['11232'::int4, '6454'::int4])
SELECT id, ts FROM $t WHERE (i8 <> '327035404'::int8 AND b < 'false'::bool)
SELECT id FROM $t WHERE i2 IN ('32765'::int2, NULL)
SELECT * FROM $t WHERE arr IS NOT DISTINCT FROM '{9,5}'::int4[]
SELECT sum(id) FROM $t WHERE tz > '2024-01-06 22:29:00+00'::timestamptz
SELECT sum(id) FROM $t WHERE (id >= '8836'::int4 AND arr BETWEEN SYMMETRIC '{9,5}'::int4[] AND '{2,4}'::int4[])
SELECT * FROM $t WHERE NOT (i4 IS DISTINCT FROM 2147483647::int4)
SELECT count(*) FROM $t WHERE iv IN ('54:00:00'::interval, '00:00:00'::interval, '1 mon 66:00:00'::interval, '1 mon 13:00:00'::interval)
SELECT * FROM $t WHERE nu IN ('1572.286'::numeric)
SELECT id FROM $t WHERE ((by >= '\\x00'::bytea AND nu > '609.286'::numeric) OR i2 > ALL (ARRAY[0::int2, 40000]))
SELECT id, mood FROM $t WHERE mo = '$36.57'::money
SELECT * FROM $t WHERE by >= E'\\\\xff'::bytea
SELECT id, mood FROM $t WHERE ((vc > ALL (ARRAY['v999'::varchar, 'v617'::varchar]) AND d < '2020-10-29'::timestamp) OR later_t <> 'dflt'::text)
SELECT sum(id) FROM $t WHERE pair <= '(0,p0)'::ty_pair
SELECT id FROM $t WHERE later = 42::int2
SELECT * FROM $t WHERE later_t < 'dflt'::text
SELECT id, arr FROM $t WHERE by::text > E'\\\\xffee'
SELECT id, tz FROM $t WHERE dom <> ALL (ARRAY['9'::ty_pos, '21'::ty_pos])
SELECT id, i2 FROM $t WHERE d = '2020-10-29'::date
SELECT sum(id) FROM $t WHERE o IS DISTINCT FROM '35031'::oid
SELECT id FROM $t WHERE o > '14823'::oid
SELECT sum(id) FROM $t WHERE d IS NOT NULL
SELECT id FROM $t WHERE ch::text > 'g'
SELECT id, later FROM $t WHERE i8 > '422008752'::int8
SELECT id, pair FROM $t WHERE later >= '42'::int4
SELECT id FROM $t WHERE (j IN ('{"k": 0}'::jsonb) AND (d < '2020-10-29'::date AND vc::text > 'v617'))
SELECT id, vc FROM $t WHERE i2 IS NOT NULL
SELECT count(*) FROM $t WHERE rg IS DISTINCT FROM '[33,44)'::int4range
SELECT count(*) FROM $t WHERE i8 < '281020301'::int8
SELECT id, ts FROM $t WHERE f8 < 'NaN'::float8
SELECT id, pair FROM $t WHERE dom = ANY (ARRAY['9'::ty_pos, '15'::ty_pos])
SELECT id, nm FROM $t WHERE (j IS NULL OR (d IS NULL OR d IS NULL))
SELECT * FROM $t WHERE (ts > '2024-01-01 21:23:54'::date OR ((later_t, id) > ('x40304'::text, 100) OR dom::text > '31'))
SELECT count(*) FROM $t WHERE NOT ((f4 IS NOT DISTINCT FROM '294'::float4 OR b = 'false'::bool))
SELECT id FROM $t WHERE (o <> '27735'::oid OR j >= 'null'::jsonb)
SELECT * FROM $t WHERE arr >= '{7,4}'::int4[]
SELECT * FROM $t WHERE (dom IS NULL AND (ch IS NOT NULL AND rg IN ('empty'::int4range, '[30,33)'::int4range, 'empty'::int4range)))
SELECT count(*) FROM $t WHERE ip >= '10.10.86.1/32'::inet
SELECT count(*) FROM $t WHERE b IN ('false'::bool, 'false'::bool, 'false'::bool)
SELECT count(*) FROM $t WHERE i8 IS DISTINCT FROM '353008545'::int8
SELECT count(*) FROM $t WHERE (i8 < ANY (ARRAY['13034462'::int8, '13034462'::int8]) AND (ti <> ALL (ARRAY['é49'::text, 'a330'::text]) AND dom > '9'::ty_pos))
SELECT id, later FROM $t WHERE (NOT (later <= '42'::int4) AND (j < ALL (ARRAY['{"k": 8}'::jsonb, 'null'::jsonb]) OR j = 'null'::jsonb))
SELECT count(*) FROM $t WHERE ti = 'e' COLLATE "C"
SELECT count(*) FROM $t WHERE (o <> '14823'::oid OR (i2 = '8226'::int2 OR ti IS NOT DISTINCT FROM 'b'::text))
SELECT * FROM $t WHERE NOT (by IS NOT DISTINCT FROM '\\x00'::bytea)
SELECT id, ch FROM $t WHERE later_t IS NULL
SELECT * FROM $t WHERE o < ALL (ARRAY['10356'::oid, '3918'::oid])
SELECT count(*) FROM $t WHERE ts = '2024-01-01 21:23:54'::timestamp
SELECT count(*) FROM $t WHERE by IN (E'\\\\x8d9a'::bytea, E'\\\\xe702'::bytea, E'\\\\x7806'::bytea, E'\\\\x5f0453'::bytea, NULL)
SELECT id, later_t FROM $t WHERE (o IS NULL OR (t IS NOT DISTINCT FROM 'Z'::text OR vc::text > 'v0'))
SELECT id, later_t FROM $t WHERE id IS NOT DISTINCT FROM 40500::float8
SELECT id FROM $t WHERE ch IS NOT DISTINCT FROM 't'::"char"
SELECT id FROM $t WHERE o > '3'::oid
SELECT count(*) FROM $t WHERE mo <> '$134.57'::money
SELECT sum(id) FROM $t WHERE f8 + 1 > '1498.3333333333333'::float4
SELECT sum(id) FROM $t WHERE (dom BETWEEN SYMMETRIC '15'::ty_pos AND '26'::ty_pos OR (mo IN ('$102.43'::money, '$61.14'::money, NULL) OR tz IS NOT NULL))
SELECT count(*) FROM $t WHERE arr > ANY (ARRAY['{3,5}'::int4[], '{7,4}'::int4[]])
SELECT * FROM $t WHERE (arr > '{8,6}'::int4[] AND (tz <= '2024-01-07 12:46:00+00'::timestamptz OR pair::text > '(0,p0)'))
SELECT * FROM $t WHERE i2 IS NOT DISTINCT FROM -17534::int8
SELECT count(*) FROM $t WHERE mo >= '$61.14'::money
SELECT id FROM $t WHERE nm BETWEEN SYMMETRIC 'n59'::name AND 'n17'::name
SELECT id FROM $t WHERE (by = ANY (ARRAY['\\x00'::bytea, E'\\\\x65f2a9'::bytea]) OR NOT (dom IS NOT NULL))
SELECT count(*) FROM $t WHERE (NOT (j <= '23'::jsonb) OR ts::text > '2024-01-01 08:14:34')
SELECT count(*) FROM $t WHERE f4 = '-Infinity'::float4
SELECT id FROM $t WHERE nm::text > 'n28'
\.
SELECT n, q, r FROM ty_q, LATERAL ty_cmp(q) r WHERE r IS NOT NULL ORDER BY n;

-- the statistics do prune: a column NULL in its first row group, and a
-- segment whose column is all NULL
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM ty_am WHERE i4 < 10500;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM ty_am WHERE ts > '2024-01-05' AND later IS NULL;
SELECT ty_cmp('SELECT count(*) FROM $t WHERE i4 < 10500') AS i4_differs,
       ty_cmp('SELECT count(*) FROM $t WHERE ts > ''2024-01-05'' AND later IS NULL') AS ts_differs;
DROP FUNCTION ty_cmp(text);
DROP TABLE ty_q, ty_am, ty_heap;
DROP TYPE ty_pair, ty_mood;
DROP DOMAIN ty_pos;
RESET client_min_messages;
