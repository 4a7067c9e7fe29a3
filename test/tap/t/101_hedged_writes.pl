# Hedged writes (issue 11, item 5).  Six real s3rver processes, a 4+2 pool
# (write_quorum 5, the default); one provider (s1p: s1 seen through a
# proxy) holds every request for 30 s.  A blob_put and an INSERT into a
# destor table finish without waiting for it — once five shards are stored
# the stalled one is given up — the stalled shards are recorded missing in
# destor.shards (never lost: repair rebuilds them); reads made while the
# stall lasts do not wait for it either (a shard recorded missing is probed,
# never waited for), and after repair every shard is ok and the data reads
# back exactly.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('hedge_writes');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $stall_file = "$base/stall_ms";
my $proxy = DestorTest::start_delay_proxy($s3[0]->{port}, $stall_file);
END
{
	local $?;    # waitpid below must not become the test's exit status
	DestorTest::stop_delay_proxy($proxy) if $proxy;
}
my @providers = ({ %{ $s3[0] }, port => $proxy->{port}, name => 's1p' }, @s3[1 .. 5]);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @providers));
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE metrics (ts timestamptz, device int, temp float8, status text)
  SERVER archive OPTIONS (segment_rows '50000', row_group_rows '5000');
CREATE TABLE metrics_heap (ts timestamptz, device int, temp float8, status text);
INSERT INTO metrics_heap
  SELECT '2024-01-01'::timestamptz + i * interval '1 minute', i % 50, (i % 1000) / 10.0,
         md5(i::text)
    FROM generate_series(1, 50000) i;
});

# every provider answers: nothing is missing
my $small = $node->safe_psql('postgres', "SELECT destor.blob_put('archive', convert_to(repeat('fast ', 1000), 'UTF8'))");
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.blob_shards WHERE blob_id = '$small' AND state <> 'ok'"),
	'0', 'with every provider answering, every shard of a new blob is stored');

# s1p stalls every request for 30 s
open(my $fh, '>', $stall_file) or die;
print $fh "30000\n";
close $fh;

my $file = "$base/input.bin";
DestorTest::write_random_file($file, 36 * 1024 * 1024);    # 9 MiB a shard: a multipart upload
open($fh, '<', $file) or die;
binmode $fh;
my $content = do { local $/; <$fh> };
close $fh;

# statement_timeout ends before the commit; the session's deadline (20 s)
# covers the commit too, whose metadata log write waited for the stalled
# provider (30 s) before it was hedged like the shards
my $timed_out = 0;
my ($rc, $blob, $err) = $node->psql('postgres', "SET statement_timeout = '20s';
	SELECT destor.blob_put('archive', pg_read_binary_file('$file'))",
	timeout => 20, timed_out => \$timed_out);
ok(!$timed_out, 'blob_put and its commit finish although one provider stalls for 30 s');
is($rc, 0, 'blob_put succeeds') or diag($err);
like($err, qr/a shard of a new object could not be written to provider "s1p"/,
	'with a warning naming the stalled provider');
is($node->safe_psql('postgres',
		"SELECT string_agg(provider || ' ' || state, ',') FROM destor.blob_shards WHERE blob_id = '$blob' AND state <> 'ok'"),
	's1p missing', 'the stalled shard is recorded missing, for repair');

($rc, my $out, $err) = $node->psql('postgres', "SET statement_timeout = '20s';
	INSERT INTO metrics SELECT * FROM metrics_heap", timeout => 20, timed_out => \$timed_out);
ok(!$timed_out, 'an INSERT and its commit finish although one provider stalls');
is($rc, 0, 'the INSERT succeeds') or diag($err);
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM destor.shards WHERE provider = 's1p' AND state = 'missing'}),
	'>=', 2, 'the table\'s stalled shards are recorded missing too');

# Read while s1p still stalls.  Its shards are recorded missing; a read
# probes such a shard (only a read can find the record stale) but must not
# wait for the probe: k other shards answer, and the read ends long before
# the stall would (10 s: a third of it; a read that waited takes 30 s).
my $same = q{SELECT (SELECT count(*) FROM (SELECT * FROM metrics EXCEPT ALL SELECT * FROM metrics_heap) a)
               + (SELECT count(*) FROM (SELECT * FROM metrics_heap EXCEPT ALL SELECT * FROM metrics) b)};
($rc, $out, $err) = $node->psql('postgres', "SET statement_timeout = '10s';
	SELECT md5(destor.blob_get('$blob'))");
is($rc, 0, 'a blob read does not wait for the stalled provider\'s probe') or diag($err);
is($out, md5_hex($content), 'the blob reads back exactly from the other shards');
($rc, $out, $err) = $node->psql('postgres', "SET statement_timeout = '10s'; $same");
is($rc, 0, 'a scan does not wait for the stalled provider\'s probes') or diag($err);
is($out, '0', 'the table holds exactly the heap rows');
unlink $stall_file;

# the provider is back: repair rebuilds what was given up
unlink $stall_file;
DestorTest::stop_delay_proxy($proxy);
$proxy = DestorTest::start_delay_proxy($s3[0]->{port}, $stall_file);
$node->safe_psql('postgres', "ALTER SERVER s1p OPTIONS (SET endpoint 'http://127.0.0.1:$proxy->{port}')");
$node->safe_psql('postgres', "SELECT destor.repair('archive')");
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.shards WHERE state <> 'ok'}),
	'0', 'after repair every shard is ok');

# read with s2 and s3 stopped: the repaired shards on s1p are needed
DestorTest::stop_s3($s3[1]);
DestorTest::stop_s3($s3[2]);
is($node->safe_psql('postgres', "SELECT md5(destor.blob_get('$blob'))"), md5_hex($content),
	'the blob reads back exactly with two other providers stopped');
is($node->safe_psql('postgres', $same), '0', 'and so does the table');
DestorTest::start_s3($_) for @s3[1, 2];

DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
