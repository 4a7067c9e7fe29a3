# Reads do not wait for one slow provider: a provider much slower than the
# others of its pool is avoided (its shards are rebuilt from parity instead)
# while it stays slow, shown as degraded in destor.provider_status, and used
# again once it is fast; a request to a provider that turns slow mid-way is
# given up (hedged) instead of waited for.  Six real s3rver processes; the slow one sits
# behind a TCP proxy that holds every request for a while.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# no cache: every read goes to the providers.  The interval is long enough
# that twenty reads end before a slow mark expires (they take about a
# second here; the file runs alone, in the serial group).
my ($node, $keyfile) = DestorTest::start_cluster('slow', cache_size => '0',
	conf => "destor.provider_down_interval = '8s'\n");
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $delay_file = "$base/delay_ms";
my $proxy = DestorTest::start_delay_proxy($s3[0]->{port}, $delay_file);
my @providers = ({ %{ $s3[0] }, port => $proxy->{port} }, @s3[1 .. 5]);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @providers));

# a blob with one of its four data shards on s1 (placement depends on the id)
my $file = "$base/input.bin";
DestorTest::write_random_file($file, 8 * 1024 * 1024);
my $blob;
for (1 .. 30)
{
	my $b = $node->safe_psql('postgres', "SELECT destor.blob_import('archive', '$file')");
	if ($node->safe_psql('postgres',
			"SELECT kind FROM destor.blob_shards WHERE blob_id = destor.blob_id('$b') AND provider = 's1'")
		eq 'data')
	{
		$blob = $b;
		last;
	}
}
ok(defined $blob, 'a blob with a data shard on s1');

open(my $fh, '<', $file) or die;
binmode $fh;
my $content = do { local $/; <$fh> };
close $fh;

# one read of 256 KiB = one stripe: a block from each data shard
my $range = 256 * 1024;
my $reads = sub {
	my ($first, $count) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT md5(string_agg(destor.blob_read('$blob', i * $range, $range), ''::bytea ORDER BY i))
		  FROM generate_series($first, $first + $count - 1) i});
};
my $expect = sub {
	my ($first, $count) = @_;
	return md5_hex(substr($content, $first * $range, $count * $range));
};
my $requests = sub {
	my ($p) = @_;
	return $node->safe_psql('postgres', "SELECT requests FROM destor.provider_status WHERE provider = '$p'");
};
my $state = sub {
	return $node->safe_psql('postgres', "SELECT state FROM destor.provider_status WHERE provider = 's1'");
};

is($reads->(0, 4), $expect->(0, 4), 'reads are right while every provider is fast');

# s1 turns slow: the reads that measure it wait for it
open($fh, '>', $delay_file) or die;
print $fh "400\n";
close $fh;
is($reads->(4, 4), $expect->(4, 4), 'reads are right while s1 is slow and not yet known to be');

# now it is known to be slow: reads go around it
my $s1_before = $requests->('s1');
my $others_before = $requests->('s5') + $requests->('s6');
is($reads->(8, 20), $expect->(8, 20), 'reads around the slow provider are right');
is($requests->('s1'), $s1_before, 'no request went to the slow provider');
cmp_ok($requests->('s5') + $requests->('s6'), '>', $others_before, 'parity shards were read instead');
is($state->(), 'degraded', 'destor.provider_status shows the slow provider as degraded');

# fast again: once destor.provider_down_interval has passed, a read measures
# it again and the reads after it use it
unlink $delay_file;
sleep 9;
is($state->(), 'up', 'the provider shows as up once the interval has passed');
# its reputation keeps the time it was avoided: one whole interval
is($node->safe_psql('postgres', q{SELECT slow_time >= current_setting('destor.provider_down_interval')::interval
	FROM destor.provider_status WHERE provider = 's1'}), 't',
	'provider_status counts the slow period of s1 in slow_time');
is($node->safe_psql('postgres', q{SELECT string_agg(provider, ',') FROM destor.provider_status
	WHERE slow_time > '0' OR unavailable_time > '0'}), 's1', 'and no slow or unavailable time for the others');
$s1_before = $requests->('s1');
is($reads->(0, 10), $expect->(0, 10), 'reads are right once it is fast again');
cmp_ok($requests->('s1') - $s1_before, '>=', 10, 'and every one of them used it');

# a provider that turns slow in the middle of things: the read that meets it
# does not wait for it (the request is given up and the stripe read from the
# others), and the provider is then avoided — a 5 s delay under a 2.5 s
# statement_timeout
open($fh, '>', $delay_file) or die;
print $fh "5000\n";
close $fh;
$s1_before = $requests->('s1');
my ($rc, $out, $err) = $node->psql('postgres', "SET statement_timeout = '2500ms';
	SELECT md5(string_agg(destor.blob_read('$blob', i * $range, $range), ''::bytea ORDER BY i))
	  FROM generate_series(10, 13) i");
is($rc, 0, 'the first read after the provider turned slow finishes well within the timeout') or diag($err);
is($out, $expect->(10, 4), 'and is right');
is($state->(), 'degraded', 'the provider it gave up on shows as degraded');
cmp_ok($requests->('s1') - $s1_before, '<=', 1, 'one request went to it, and none after');
unlink $delay_file;

# all providers equally far away (100 ms each), parity never measured, m >= k:
# that is not "slow", and the data shard's provider is used for every read
my $far_file = "$base/far_ms";
open($fh, '>', $far_file) or die;
print $fh "100\n";
close $fh;
my @far = map { DestorTest::start_delay_proxy($s3[$_]->{port}, $far_file) } (3, 4, 5);
my @far_providers = map { { %{ $s3[$_ + 3] }, port => $far[$_]->{port}, name => "far$_" } } (0, 1, 2);
$node->safe_psql('postgres', DestorTest::providers_sql('farpool', 1, 2, @far_providers));
my $far_blob = $node->safe_psql('postgres', "SELECT destor.blob_put('farpool', convert_to(repeat('far away ', 10000), 'UTF8'))");
my $far_data = $node->safe_psql('postgres',
	"SELECT provider FROM destor.blob_shards WHERE blob_id = '$far_blob' AND kind = 'data'");
my $far_before = $requests->($far_data);
for (1 .. 6)
{
	$node->safe_psql('postgres', "SELECT length(destor.blob_get('$far_blob'))");
}
cmp_ok($requests->($far_data) - $far_before, '>=', 6, 'a data provider as slow as all the others is not avoided');
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.provider_status WHERE provider LIKE 'far%' AND state <> 'up'}),
	'0', 'and no provider of that pool shows as degraded');
DestorTest::stop_delay_proxy($_) for @far;

DestorTest::stop_delay_proxy($proxy);
DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
