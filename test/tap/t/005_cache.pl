# The shared-memory cache of decrypted pages: a second scan is served
# entirely from it (the providers' request counters do not move), it is
# never stale after DELETE, UPDATE, TRUNCATE, DROP and blob_delete, and 8
# concurrent sessions scanning and writing with a cache smaller than the
# data get the same results as heap tables, with no deadlock and no pin
# left behind.  Providers are six real s3rver processes.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('cache', cache_size => '4MB');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @s3));

is($node->safe_psql('postgres', 'SELECT size_bytes FROM destor.cache_stats'), 4 * 1024 * 1024,
	'destor.cache_stats reports the configured size');

$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE t (id int, v float8, s text) SERVER archive
  OPTIONS (segment_rows '5000', row_group_rows '1000');
CREATE TABLE h (id int, v float8, s text);
INSERT INTO h SELECT i, i / 7.0, md5(i::text) FROM generate_series(1, 20000) i;
INSERT INTO t SELECT * FROM h;
});
my $agg = 'SELECT count(*), sum(id), sum(v), max(s) FROM %s';
my $expected = $node->safe_psql('postgres', sprintf($agg, 'h'));

my $requests = q{SELECT sum(requests) FROM destor.provider_status WHERE provider LIKE 's_'};
$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
is($node->safe_psql('postgres', sprintf($agg, 't')), $expected, 'first scan (from the providers) is right');
my $before = $node->safe_psql('postgres', $requests);
is($node->safe_psql('postgres', sprintf($agg, 't')), $expected, 'second scan is right');
is($node->safe_psql('postgres', $requests), $before,
	'the second scan sends no request to any provider: it is served from the cache');
cmp_ok($node->safe_psql('postgres', 'SELECT hits FROM destor.cache_stats'), '>', 0, 'cache hits are counted');

# compressed column chunks of half a cache page or more are cached
# decompressed too: a warm scan neither fetches nor decompresses them
# (EXPLAIN ANALYZE counts both); smaller ones come from cached pages
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE c (id bigint, s text) SERVER archive OPTIONS (row_group_rows '8192');
INSERT INTO c SELECT i, md5(i::text) FROM generate_series(1, 16384) i;
});
my $c_agg = 'SELECT count(*), sum(id), max(s), min(s) FROM c';
my $c_expected = $node->safe_psql('postgres',
	q{SELECT count(*), sum(i), max(md5(i::text)), min(md5(i::text)) FROM generate_series(1, 16384) i});
my $chunks = sub {
	my $plan = $node->safe_psql('postgres', "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) $c_agg");
	my ($read) = $plan =~ /"Column Chunks Read": (\d+)/;
	my ($cached) = $plan =~ /"Column Chunks From Cache": (\d+)/;
	return ($read, $cached);
};
$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
my ($read, $cached) = $chunks->();
is("$read/$cached", '4/0', 'a cold scan reads 2 columns of 2 row groups, none decompressed from the cache');
$before = $node->safe_psql('postgres', $requests);
($read, $cached) = $chunks->();
is("$read/$cached", '4/4', 'a warm scan finds every chunk decompressed in the cache');
is($node->safe_psql('postgres', $requests), $before, 'and sends no request');
is($node->safe_psql('postgres', $c_agg), $c_expected, 'from decompressed chunks the rows are right');
$node->safe_psql('postgres', 'DROP FOREIGN TABLE c');

# decompressed chunks never push real pages out: a table whose pages fit in
# the 4 MB cache but whose decompressed chunks (about 4 MB) do not is read
# three times; after the first, no read goes to the providers
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE wide (id int, pad text) SERVER archive OPTIONS (row_group_rows '2000');
INSERT INTO wide SELECT i, repeat('x', 200) || i FROM generate_series(1, 20000) i;
SELECT destor.cache_reset();
});
my $wide_agg = q{SELECT count(*), sum(length(pad)), max(pad) FROM wide};
my $wide_expected = $node->safe_psql('postgres',
	q{SELECT count(*), sum(length(repeat('x', 200) || i)), max(repeat('x', 200) || i) FROM generate_series(1, 20000) i});
is($node->safe_psql('postgres', $wide_agg), $wide_expected, 'the wide table reads right (cold)');
$before = $node->safe_psql('postgres', $requests);
is($node->safe_psql('postgres', $wide_agg), $wide_expected, 'and again');
is($node->safe_psql('postgres', $wide_agg), $wide_expected, 'and a third time');
is($node->safe_psql('postgres', $requests), $before,
	'the second and third reads send no request: decompressed chunks did not evict its pages');
$node->safe_psql('postgres', 'DROP FOREIGN TABLE wide');
cmp_ok($node->safe_psql('postgres', 'SELECT bytes_from_cache FROM destor.cache_stats'), '>', 0,
	'bytes from the cache are counted');

# freshly written data reads local (write-through)
$node->safe_psql('postgres', "INSERT INTO t VALUES (-1, -1, 'fresh')");
$before = $node->safe_psql('postgres', $requests);
is($node->safe_psql('postgres', "SELECT s FROM t WHERE id = -1"), 'fresh', 'a fresh row reads back');
is($node->safe_psql('postgres', $requests), $before, 'without a provider request (write-through)');
$node->safe_psql('postgres', 'DELETE FROM t WHERE id = -1');

# never stale
$node->safe_psql('postgres', q{
DELETE FROM t WHERE id % 3 = 0; DELETE FROM h WHERE id % 3 = 0;
UPDATE t SET s = 'u' || id WHERE id < 500; UPDATE h SET s = 'u' || id WHERE id < 500;
});
is($node->safe_psql('postgres', sprintf($agg, 't')), $node->safe_psql('postgres', sprintf($agg, 'h')),
	'after DELETE and UPDATE the cached table reads the new rows');
$node->safe_psql('postgres', 'TRUNCATE t');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '0', 'after TRUNCATE nothing is read from the cache');
$node->safe_psql('postgres', 'INSERT INTO t SELECT * FROM h');
is($node->safe_psql('postgres', sprintf($agg, 't')), $node->safe_psql('postgres', sprintf($agg, 'h')),
	'after reloading the table reads the new rows');
$node->safe_psql('postgres', 'DROP FOREIGN TABLE t');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM t');
like($err, qr/does not exist/, 'after DROP the table is gone');

my $blob = $node->safe_psql('postgres', "SELECT destor.blob_put('archive', 'cached blob')");
is($node->safe_psql('postgres', "SELECT convert_from(destor.blob_get('$blob'), 'UTF8')"), 'cached blob', 'a blob reads');
$node->safe_psql('postgres', "SELECT destor.blob_delete('$blob')");
($ret, $out, $err) = $node->psql('postgres', "SELECT destor.blob_get('$blob')");
like($err, qr/does not exist/, 'after blob_delete the blob is not served from the cache');

# --- 8 sessions, a cache smaller than the data ---------------------------------------
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE big (id int, pad text) SERVER archive OPTIONS (segment_rows '20000', row_group_rows '2000');
CREATE TABLE big_h (id int, pad text);
INSERT INTO big_h SELECT i, md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text) FROM generate_series(1, 200000) i;
INSERT INTO big SELECT * FROM big_h;
CREATE FOREIGN TABLE w (writer int, n int) SERVER archive;
SELECT destor.cache_reset();
});
my $big_expected = $node->safe_psql('postgres', "SELECT count(*), sum(id), md5(string_agg(pad, '' ORDER BY id)) FROM big_h");
my @procs;
my @outs;
for my $i (0 .. 7)
{
	my $sql;
	if ($i < 5)
	{
		# scanners: whole rows and single columns, several times
		$sql = join('', map { "SELECT count(*), sum(id), md5(string_agg(pad, '' ORDER BY id)) FROM big;\n" } 1 .. 3);
	}
	else
	{
		# writers: many small inserts, and scans of what they wrote
		$sql = join('', map { "INSERT INTO w SELECT $i, g FROM generate_series($_ * 100, $_ * 100 + 99) g;\n" } 1 .. 10)
		  . "SELECT count(*) FROM w WHERE writer = $i;\n";
	}
	my $file = "$base/session$i.sql";
	open(my $fh, '>', $file) or die;
	print $fh $sql;
	close $fh;
	$outs[$i] = '';
	push @procs, IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-f', $file ],
		'>', \$outs[$i], '2>&1', IPC::Run::timeout(600));
}
my $all_ok = 1;
for my $i (0 .. 7)
{
	$procs[$i]->finish or $all_ok = 0;
}
ok($all_ok, '8 concurrent sessions finished (no deadlock, no error)');
my @scans = map { split /\n/, $outs[$_] } 0 .. 4;
is(scalar(grep { $_ eq $big_expected } @scans), 15, 'every concurrent scan matched the heap copy');
is($node->safe_psql('postgres', 'SELECT writer, count(*) FROM w GROUP BY writer ORDER BY writer'),
	"5|1000\n6|1000\n7|1000", 'every concurrent write is there, once');
cmp_ok($node->safe_psql('postgres', 'SELECT evictions FROM destor.cache_stats'), '>', 0,
	'the cache, smaller than the data, evicted pages');
is($node->safe_psql('postgres', 'SELECT pinned_pages FROM destor.cache_stats'), '0', 'no page is left pinned');
cmp_ok($node->safe_psql('postgres', 'SELECT used_bytes FROM destor.cache_stats'), '<=', 4 * 1024 * 1024,
	'the cache stays within its size');

# --- storage report: bytes per pool, table and provider, with costs
$node->safe_psql('postgres', "ALTER SERVER s1 OPTIONS (ADD cost_per_gb_month '4.5')");
is($node->safe_psql('postgres', q{
SELECT count(DISTINCT provider), bool_and(overhead_ratio > 1.4),
       sum(stored_bytes) = (SELECT sum(sh.size) FROM destor.shards sh JOIN destor.segments sg USING (object_id)
                             JOIN destor.tables t USING (table_id) WHERE t.relid = 'big'::regclass),
       bool_or(monthly_cost > 0 AND provider = 's1'), bool_and(monthly_cost = 0 OR provider = 's1')
  FROM destor.storage_report WHERE kind = 'table' AND name = 'big'}),
	'6|t|t|t|t', 'destor.storage_report: six providers, parity overhead, stored bytes and cost per provider');

# --- one fetch for a page wanted by several backends at once ----------------------------
my $shared_blob = $node->safe_psql('postgres',
	"SELECT destor.blob_put('archive', (SELECT string_agg(md5(i::text), '')::bytea FROM generate_series(1, 100000) i))");
$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
my $bytes_read = q{SELECT sum(bytes_read) FROM destor.provider_status WHERE provider LIKE 's_'};
my $b0 = $node->safe_psql('postgres', $bytes_read);
my @readers;
my @rout;
for my $i (0 .. 3)
{
	$rout[$i] = '';
	push @readers, IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c',
		  "SELECT md5(destor.blob_read('$shared_blob', 0, 3000000))" ],
		'>', \$rout[$i], '2>&1', IPC::Run::timeout(300));
}
$_->finish for @readers;
my %digests = map { $_ => 1 } @rout;
is(scalar(keys %digests), 1, '4 backends reading the same range at once get the same bytes');
my $fetched = $node->safe_psql('postgres', $bytes_read) - $b0;
cmp_ok($fetched, '<', 2 * 3000000,
	'the range is fetched from the providers about once, not once per backend');
note("bytes fetched for 4 concurrent readers of 3 MB: $fetched");
is($node->safe_psql('postgres', 'SELECT pinned_pages FROM destor.cache_stats'), '0',
	'no page is left pinned or reserved');

DestorTest::stop_s3($_) for @s3;
done_testing();
