# EXPLAIN ANALYZE of a scan reports what its reader fetched (Provider
# Requests, Bytes Fetched, Degraded and Hedged Reads) as the difference of
# the backend's global counters between the scan's start and the time the
# plan is printed (table_plan.c, st->stats_at_start).  With two destor
# scans in one query (a join: now with both batches in flight at once) each
# node reports the other's fetches too: the scan of a 2,000-row table (one
# row group, nothing fetched when read alone) shows the 12 requests and
# 13 MB of the 260,000-row table it is joined with.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('explain_two', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @s3));
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE big (id int, payload text)
  SERVER archive OPTIONS (segment_rows '1000000', row_group_rows '10000');
INSERT INTO big SELECT i, md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text)
  FROM generate_series(1, 260000) i;
CREATE FOREIGN TABLE small (id int, tag text) SERVER archive;
INSERT INTO small SELECT i * 100, 't' || i FROM generate_series(1, 2000) i;
});

my $ex = 'SET max_parallel_workers_per_gather = 0; EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ';
sub bytes_of
{
	my ($plan, $rel) = @_;
	my ($node) = $plan =~ /(Foreign Scan on \Q$rel\E.*?Bytes Fetched: \d+)/s;
	my ($b) = ($node // '') =~ /Bytes Fetched: (\d+)/;
	return $b // -1;
}
my $small_alone = bytes_of($node->safe_psql('postgres', "$ex SELECT count(*) FROM small"), 'small');
my $big_alone = bytes_of($node->safe_psql('postgres', "$ex SELECT count(payload) FROM big"), 'big');
cmp_ok($small_alone, '>=', 0, "the small table alone: $small_alone bytes");
cmp_ok($big_alone, '>', 10 * $small_alone + 1000000, "the big table alone: $big_alone bytes");

my $plan = $node->safe_psql('postgres',
	"SET enable_mergejoin = off; SET enable_nestloop = off; $ex SELECT count(*), count(b.payload) FROM big b JOIN small s USING (id)");
my $small_join = bytes_of($plan, 'small');
my $big_join = bytes_of($plan, 'big');
cmp_ok($small_join, '<', $small_alone + $big_alone / 2,
	"in a join, the small table's scan reports its own bytes ($small_join, alone $small_alone)") or diag($plan);
cmp_ok($big_join, '<', $big_alone + $small_alone / 2 + 1,
	"and the big table's its own ($big_join, alone $big_alone)") or diag($plan);

$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
