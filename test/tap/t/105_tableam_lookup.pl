# Point look-ups on a table USING destor with the shared cache on (issue 14):
# a row group's first fetch by tid reads just that row from the cache's
# decompressed chunks and the chunks stored as they are (table_scan.c
# scan_fetch_row_cached); every look-up must return the heap copy's row,
# NULLs, text, a dropped and a later added column included, at both ends of
# row groups, warm and after the cache was emptied.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('amlookup', cache_size => '64MB');
my ($sql) = DestorTest::file_pool_sql($node->basedir, 'pool', 3, 2, 1);
$node->safe_psql('postgres', $sql);
$node->safe_psql('postgres', q{
SET destor.default_pool = 'pool';
CREATE TABLE h AS
  SELECT i AS id, i % 97 AS small, (i * 2654435761::bigint) % 1000003 AS big,
         CASE WHEN i % 7 = 0 THEN NULL ELSE md5(i::text) END AS t,
         CASE WHEN i % 3 = 0 THEN NULL ELSE i::float8 / 7 END AS f,
         sin(i)::float8 AS noise, repeat('x', i % 5) AS gone
    FROM generate_series(1, 60000) i;
CREATE TABLE a USING destor AS SELECT * FROM h;
ALTER TABLE a DROP COLUMN gone;
ALTER TABLE h DROP COLUMN gone;
ALTER TABLE a ADD COLUMN later int DEFAULT 42;
ALTER TABLE h ADD COLUMN later int DEFAULT 42;
CREATE UNIQUE INDEX ON a (id);
ANALYZE a;
CREATE FUNCTION fetch_a(k int) RETURNS text LANGUAGE plpgsql STABLE AS
  $$ DECLARE r text; BEGIN SELECT (a.*)::text INTO r FROM a WHERE id = k; RETURN r; END $$;
});

my $keys = 'SELECT k FROM (VALUES (1), (2), (7), (9999), (10000), (10001), (19999), (20000), '
  . '(20001), (49999), (50000), (59999), (60000), (777), (3)) v(k) '
  . 'UNION SELECT (i * 7919) % 60000 + 1 FROM generate_series(1, 300) i';
my $compare = "SET enable_seqscan = off; SET enable_bitmapscan = off;
  SELECT count(*), count(*) FILTER (WHERE fetch_a(k) IS NOT DISTINCT FROM (SELECT (h.*)::text FROM h WHERE id = k))
    FROM ($keys) ks";

# warm: a scan has filled the cache
$node->safe_psql('postgres', 'SELECT count(*), sum(small) FROM a');
my ($n, $same) = split /\|/, $node->safe_psql('postgres', $compare);
ok($n > 300, "looked up $n keys");
is($same, $n, 'every warm look-up returns the heap copy\'s row');
# a second round in one session (rows fetched one by one, then row groups kept)
is($node->safe_psql('postgres', "$compare; $compare"), "$n|$n\n$n|$n", 'the same twice in one session');
# cold: the cache emptied, look-ups read from the providers
$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
is($node->safe_psql('postgres', $compare), "$n|$n", 'every cold look-up returns the heap copy\'s row');
# a range through the index fetches many rows of one row group
is($node->safe_psql('postgres', "SET enable_seqscan = off; SET enable_bitmapscan = off;
  SELECT count(*) FROM (SELECT (a.*)::text AS x FROM a WHERE id BETWEEN 9000 AND 11000) s
   JOIN (SELECT (h.*)::text AS x FROM h WHERE id BETWEEN 9000 AND 11000) t USING (x)"), '2001',
  'an index range returns the heap\'s rows');

# A segment's short last row group (500 rows) has small chunks: they are
# cached decompressed too, so a warm look-up in it copies its two values
# from the cache instead of decoding the row group from the object's blocks.
$node->safe_psql('postgres', q{
SET destor.default_pool = 'pool';
CREATE TABLE s (id int, v float8) USING destor;
INSERT INTO s SELECT i, i / 3.0 FROM generate_series(1, 10500) i;
CREATE UNIQUE INDEX ON s (id);
SELECT count(*), sum(v) FROM s;
});
my $lookup = 'SET enable_seqscan = off; SET enable_bitmapscan = off;
  SELECT v = (10250 / 3.0)::float8 FROM s WHERE id = 10250';
my $from_cache = 'SELECT bytes_from_cache FROM destor.cache_stats';
my $before = $node->safe_psql('postgres', $from_cache);
is($node->safe_psql('postgres', $lookup), 't', 'a look-up in a short last row group finds its row');
my $copied = $node->safe_psql('postgres', $from_cache) - $before;
cmp_ok($copied, '<=', 64, "and copies its values alone from the cache ($copied bytes)");

$node->stop;
done_testing();
