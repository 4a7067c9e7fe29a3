# Hedged reads (issue 11, item 3).  Six real s3rver processes, a 4+2 pool.
#
# 1. The "slow provider" decision is not fooled by a busy CPU: scans run
#    while two busy loops (yes > /dev/null) compete for the CPUs, and no row
#    group takes the degraded path, no provider is marked slow.
# 2. The degraded path does not wait for every request: with one provider
#    stopped (so the stripes of a blob are rebuilt from parity) and another
#    one holding every request for 30 s, the blob still reads back exactly,
#    well before the stall ends — the late provider's requests are given a
#    spare on the remaining provider and then cancelled.  (s1p: s1 seen
#    through a proxy that can hold its requests.)
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# no cache: every read goes to the providers
my ($node, $keyfile) = DestorTest::start_cluster('hedge_reads', cache_size => '0',
	conf => "destor.provider_down_interval = '60s'\n");
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $stall_file = "$base/stall_ms";
my $proxy = DestorTest::start_delay_proxy($s3[0]->{port}, $stall_file);
my @busy;
END
{
	local $?;    # waitpid below must not become the test's exit status
	kill 'KILL', @busy if @busy;
	DestorTest::stop_delay_proxy($proxy) if $proxy;
}
# pool "direct": the six servers as they are; pool "archive": s1 behind a
# proxy that can stall it (s1p, the same bucket), the five others shared
my @providers = ({ %{ $s3[0] }, port => $proxy->{port}, name => 's1p' }, @s3[1 .. 5]);
$node->safe_psql('postgres', DestorTest::providers_sql('direct', 4, 2, @s3));
$node->safe_psql('postgres', q{CREATE SERVER archive FOREIGN DATA WRAPPER destor
  OPTIONS (providers 's1p,s2,s3,s4,s5,s6', data_shards '4', parity_shards '2');});
my $s1p = $providers[0];
$node->safe_psql('postgres', "CREATE SERVER s1p FOREIGN DATA WRAPPER destor_provider OPTIONS "
	  . "(type 's3', endpoint 'http://127.0.0.1:$s1p->{port}', bucket '$s1p->{bucket}', region 'us-east-1');\n"
	  . "CREATE USER MAPPING FOR PUBLIC SERVER s1p OPTIONS "
	  . "(access_key_id '$DestorTest::ACCESS_KEY', secret_access_key '$DestorTest::SECRET_KEY');");

$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE metrics (ts timestamptz, device int, temp float8, status text)
  SERVER direct OPTIONS (segment_rows '25000', row_group_rows '5000');
CREATE TABLE metrics_heap (ts timestamptz, device int, temp float8, status text);
INSERT INTO metrics_heap
  SELECT '2024-01-01'::timestamptz + i * interval '1 minute', i % 50, (i % 1000) / 10.0,
         md5(i::text)
    FROM generate_series(1, 100000) i;
INSERT INTO metrics SELECT * FROM metrics_heap;
});

# (float8 summed as numeric: partial sums of parallel workers add up in
# another order than a serial scan's, which changes a float sum's last digit)
my $sum = q{SELECT sum(device), sum(temp::numeric), md5(string_agg(status, ',' ORDER BY ts)) FROM %s};
my $expect = $node->safe_psql('postgres', sprintf($sum, 'metrics_heap'));

# --- 1. a busy CPU is not a slow provider ---------------------------------
for (1 .. 2)
{
	my $pid = fork() // die "cannot fork: $!";
	if ($pid == 0)
	{
		open(STDOUT, '>', '/dev/null');
		exec('yes') or POSIX::_exit(1);
	}
	push @busy, $pid;
}
my $degraded = 0;
my $scans = 8;
my $right = 0;
for (1 .. $scans)
{
	my $plan = $node->safe_psql('postgres',
		'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' . sprintf($sum, 'metrics'));
	$degraded += $1 if $plan =~ /Degraded Reads: (\d+)/;
	$right++ if $node->safe_psql('postgres', sprintf($sum, 'metrics')) eq $expect;
}
kill 'KILL', @busy;
waitpid($_, 0) for @busy;
@busy = ();
is($right, $scans, 'scans under CPU load return the heap table\'s values');
is($degraded, 0, 'no row group took the degraded path while every provider was healthy');
is($node->safe_psql('postgres', q{SELECT string_agg(provider || ' ' || state, ',') FROM destor.provider_status WHERE state <> 'up' AND provider <> 's1p'}),
	'', 'and no provider was marked slow or down');

# --- 2. the degraded path does not wait for a stalled provider --------------
# a blob with a data shard on s2 (stopped below) and one shard on s1p (stalled)
my $file = "$base/input.bin";
DestorTest::write_random_file($file, 4 * 1024 * 1024);
open(my $fh, '<', $file) or die;
binmode $fh;
my $content = do { local $/; <$fh> };
close $fh;
my $blob;
for (1 .. 40)
{
	my $b = $node->safe_psql('postgres', "SELECT destor.blob_import('archive', '$file')");
	if ($node->safe_psql('postgres',
			"SELECT kind FROM destor.blob_shards WHERE blob_id = destor.blob_id('$b') AND provider = 's2'")
		eq 'data')
	{
		$blob = $b;
		last;
	}
}
ok(defined $blob, 'a blob with a data shard on s2');
is($node->safe_psql('postgres', "SELECT md5(destor.blob_get('$blob'))"), md5_hex($content),
	'it reads back while every provider is up');

DestorTest::stop_s3($s3[1]);
open($fh, '>', $stall_file) or die;
print $fh "30000\n";
close $fh;
my ($rc, $out, $err) = $node->psql('postgres', "SET statement_timeout = '20s';
	SELECT md5(destor.blob_get('$blob'))");
is($rc, 0, 'with s2 stopped and s1p stalled for 30 s the read does not wait for s1p') or diag($err);
is($out, md5_hex($content), 'and returns the blob exactly');
unlink $stall_file;

DestorTest::start_s3($s3[1]);
DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
