# Bulk reads go around a provider on a thin link (issue 11): a provider that
# answers as soon as the others but delivers its bytes slowly holds every
# bulk window for them.  Before any read time is known, a bulk window is
# asked of every shard at once and the first k answers win; once one large
# read has measured its rate, a blob export rebuilds the window from the
# other shards instead of reading its data shard there (exact bytes either
# way), and the provider is not marked slow for small reads, also after
# destor.provider_down_interval has passed.  While k
# providers' rates are known, one whose rate is not is gone around too.  A
# read that finds out on its own — only round trips known — gives the thin
# request up once the others are in and its bytes come at a fraction of
# their rate, and rebuilds its part from parity instead of waiting: s1 is
# measured by what came, still not marked slow.  Six real s3rver
# processes; s1 sits behind a proxy that sends its answers at 1 MB/s.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# no cache: every read goes to the providers
my ($node, $keyfile) = DestorTest::start_cluster('thin', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $proxy = DestorTest::start_thin_proxy($s3[0]->{port}, 1_000_000);
my @providers = ({ %{ $s3[0] }, port => $proxy->{port} }, @s3[1 .. 5]);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @providers));

# a 6 MiB blob (one window: 1.5 MiB per data shard) with a data shard on s1
my $file = "$base/input.bin";
DestorTest::write_random_file($file, 6 * 1024 * 1024);
my $sum = DestorTest::sha256_file($file);
my $blob = DestorTest::import_blob_with_data_on($node, 'archive', $file, 's1');
ok(defined $blob, 'a blob with a data shard on s1');

my $bytes_read = sub {
	return $node->safe_psql('postgres', "SELECT bytes_read FROM destor.provider_status WHERE provider = 's1'");
};
my $export = sub {
	my ($out) = @_;
	$node->safe_psql('postgres', "SELECT destor.blob_export('$blob', '$out')");
	return DestorTest::sha256_file($out);
};

# a backend that knows no provider's read time asks every shard of a bulk
# window at once and takes the first four answers: the thin s1 loses
my $before = $bytes_read->();
is($export->("$base/out0.bin"), $sum, 'a cold export is exact');
my $cold = $bytes_read->() - $before;
cmp_ok($cold, '<', 256 * 1024, 'and did not wait for the thin provider\'s data shard');
# (Whether any of s1's bytes came before it was cancelled is a race: since
# hedged reads ask for no tags, the others' units are one request each and
# may all be in first.  That what came counts is checked against the WAN
# proxy's trace, which knows what was sent, by TAP 144 and 150.)

# the four that won have their rates measured, s1 not: a bulk read goes
# around a provider of unknown rate while four known ones are enough
$before = $bytes_read->();
is($export->("$base/out1.bin"), $sum, 'the next export is exact');
cmp_ok($bytes_read->() - $before, '<', 256 * 1024, 'and went around the provider of unknown rate');

# forget every measurement; small reads (a quarter MiB: 64 KiB per data
# shard) measure every provider's round trip, no rate: a bulk read then
# takes s1 for as fast as the others, asks it for its data shard, finds
# its bytes coming at a fraction of the others' rate once they are in,
# gives it up and rebuilds its part from parity
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
for my $i (0 .. 5)
{
	my $off = $i * 256 * 1024;
	is($node->safe_psql('postgres', "SELECT md5(destor.blob_read('$blob', $off, 262144))"),
		$node->safe_psql('postgres', "SELECT md5(substring(pg_read_binary_file('$file') from $off + 1 for 262144))"),
		"small read at $off is exact");
}
my $all_read = sub {
	return $node->safe_psql('postgres', "SELECT sum(bytes_read) FROM destor.provider_status");
};
$before = $bytes_read->();
my $all_before = $all_read->();
is($export->("$base/out2.bin"), $sum, 'the first export with round trips only known is exact');
my $got = $bytes_read->() - $before;
cmp_ok($got, '>', 0, 'it asked s1 for its data shard');
cmp_ok($got, '<', 1536 * 1024, 'and gave the thin request up before its end');
# 4.5 MiB from the other data shards, 1.5 MiB of parity for s1's part: not
# the window read again from four shards (6 MiB more)
cmp_ok($all_read->() - $all_before, '<', 8 * 1024 * 1024,
	'its part was rebuilt from parity, the other data shards\' bytes kept');
is($node->safe_psql('postgres', "SELECT state FROM destor.provider_status WHERE provider = 's1'"),
	'up', 'a thin link is not marked slow');

# now s1's rate is known: the window is rebuilt from the other five
$before = $bytes_read->();
is($export->("$base/out3.bin"), $sum, 'the export after it is exact');
cmp_ok($bytes_read->() - $before, '<', 256 * 1024, 'and fetched (almost) nothing from the thin provider');
is($node->safe_psql('postgres', "SELECT state FROM destor.provider_status WHERE provider = 's1'"),
	'up', 'which is not marked slow: small reads still use it');

# a link's round trip and rate are remembered longer than a slow provider
# is avoided (destor.provider_down_interval): forgotten with it, an export
# that came after an idle interval read the thin provider's data shard again
$before = $bytes_read->();
$node->safe_psql('postgres', "SET destor.provider_down_interval = 300; SELECT pg_sleep(1); "
	  . "SELECT destor.blob_export('$blob', '$base/out4.bin')");
is(DestorTest::sha256_file("$base/out4.bin"), $sum, 'an export after an idle interval is exact');
cmp_ok($bytes_read->() - $before, '<', 256 * 1024, 'and still goes around the thin provider');

DestorTest::stop_delay_proxy($proxy);
DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
