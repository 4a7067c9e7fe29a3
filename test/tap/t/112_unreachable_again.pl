# A reader asks a shard again once others are not enough, though a request
# to it failed earlier in the reader's life (found by the break-hedge
# review; it failed before the hedged runs too).  A blob descriptor's reader
# lives long: there the provider of data shard 0 failed during the first
# read and is back for the second, during which the provider of data shard
# 1 fails.  Two of three shards are readable each time, yet the second read
# failed with "could not read object ... 1 of 3 shards usable": the degraded
# path left shards that had failed once out for good, even on its last try
# with every provider.
#
# destor.max_retries = 0 makes a failed request fail at once (rather than
# after backoffs that outlast the other shards' answers); it is a user
# setting, and the same happens with retries when a provider stays down for
# longer than they take.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('unreachable', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(3, $base);
my @proxies = map { FaultProxy::start($s3[$_]{port}, "$base/faults_$_", $s3[$_]{dir}) } 0 .. 2;
my @providers = map { { %{ $s3[$_] }, port => $proxies[$_]{port} } } 0 .. 2;
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 2, 1, @providers));

my $file = "$base/input.bin";
DestorTest::write_random_file($file, 3 * 1024 * 1024);
my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('archive', '$file')");
my %control = map { ("s" . ($_ + 1)) => $proxies[$_]{control} } 0 .. 2;
my ($p0, $p1, $p2) = split /\n/, $node->safe_psql('postgres',
	"SELECT provider FROM destor.shards WHERE object_id = destor.blob_id('$blob') ORDER BY shard_index");

my $piece = 1024 * 1024;
my @want = map {
	$node->safe_psql('postgres',
		"SELECT md5(substring(pg_read_binary_file('$file') from $_ * $piece + 1 for $piece))")
} 0 .. 1;

# one session, one descriptor: the provider of data shard 0 fails during
# the first (cold) read and is back for the second, during which the
# provider of data shard 1 fails.  Two of three shards are readable each time.
# (During the first read the other two providers send slowly, so that the
# failure of the first is in before they are: it is recorded, not cancelled.)
my $script = qq{
SET destor.max_retries = 0;
BEGIN;
SELECT destor.blob_open('$blob') AS fd \\gset
\\! printf 'reset 100000 GET\\n' > $control{$p0}
\\! printf 'slow 100000 GET\\n' > $control{$p1}
\\! printf 'slow 100000 GET\\n' > $control{$p2}
SELECT destor.provider_stats_reset();
SELECT 'piece0', md5(destor.blob_read(:fd, $piece));
\\! printf '' > $control{$p0}
\\! printf '' > $control{$p2}
\\! printf 'reset 100000 GET\\n' > $control{$p1}
SELECT destor.provider_stats_reset();
SELECT 'piece1', md5(destor.blob_read(:fd, $piece));
COMMIT;
};
my ($rc, $out, $err) = $node->psql('postgres', $script, on_error_stop => 0);
my ($got0) = $out =~ /^piece0\|(\w+)$/m;
my ($got1) = $out =~ /^piece1\|(\w+)$/m;
is($got0, $want[0], "first piece exact with $p0 failing") or diag($err);
is($got1, $want[1], "second piece exact with $p1 failing and $p0 back") or diag($err);
FaultProxy::set_faults($_->{control}, '') for @proxies;

# a fresh reader has no such memory: the same read succeeds
FaultProxy::set_faults($control{$p1}, "reset 100000 GET\n");
($rc, $out, $err) = $node->psql('postgres',
	"SET destor.max_retries = 0; SELECT md5(destor.blob_read('$blob', $piece, $piece))");
is($out, $want[1], "the same bytes read by a new reader with $p1 failing") or diag($err);
FaultProxy::set_faults($_->{control}, '') for @proxies;

FaultProxy::stop($_) for @proxies;
DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
