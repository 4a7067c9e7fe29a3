# Found by the break-hedge review of "Ask every shard at once while provider
# read times are unknown" (c7e13c1).
#
# Since c7e13c1 a read whose data shards are on a provider whose read time
# is "not known" is read as runs of whole stripes from every shard
# (reader_healthy_plan -> reader_open_window_hedged / multi_prepare_runs).
# provider_recent_read_ms() counts a provider's read times only within
# destor.provider_down_interval of its last read, so with that setting at 0
# (documented as: how long a failed or slow provider is avoided; 0 = never
# avoid one) no provider's read time is ever known: every read, however
# warm, asks all k + m shards for whole stripes and never uses the healthy
# path or its read-ahead.  A warm scan of a 4+2 table then fetches about
# (k + m) / k times the bytes it fetches with the default setting.
#
# What should happen: a setting about avoiding failed providers does not
# make warm reads fetch 1.5x their bytes; a warm scan is not hedged.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('down_zero', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @s3));
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE t (id int, s text) SERVER archive OPTIONS (row_group_rows '5000');
INSERT INTO t SELECT i, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, 100000) i;
});
my $q = q{SELECT count(*), sum(id), md5(string_agg(s, ',' ORDER BY id)) FROM t};
my $want = $node->safe_psql('postgres',
	q{SELECT count(*), sum(i), md5(string_agg(md5(i::text) || md5((i * 7)::text), ',' ORDER BY i)) FROM generate_series(1, 100000) i});

sub warm_scan
{
	my ($set) = @_;
	# warm up: several scans measure every provider
	for (1 .. 3)
	{
		is($node->safe_psql('postgres', "$set $q"), $want, "warm-up scan ($set) exact");
	}
	my $plan = $node->safe_psql('postgres', "$set EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) $q");
	my ($hedged) = $plan =~ /Hedged Reads: (\d+)/;
	my ($bytes) = $plan =~ /Bytes Fetched: (\d+)/;
	# (before c7e13c1 there was no "Hedged Reads" line: none)
	return ($hedged // 0, $bytes // -1);
}

my ($h1, $b1) = warm_scan('SET destor.provider_down_interval = 10000;');
is($h1, 0, "a warm scan with the default provider_down_interval is not hedged");
my ($h0, $b0) = warm_scan('SET destor.provider_down_interval = 0;');
is($h0, 0, "a warm scan with provider_down_interval = 0 is not hedged either (got $h0 hedged batches)");
cmp_ok($b0, '<=', 1.15 * $b1,
	"and fetches about the same bytes as with the default setting ($b0 vs $b1)");

DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
