# Small reads go around a distant provider.  A read of one 64 KiB block
# needs only the data shard that holds it, and the healthy path asked that
# shard's provider whatever its round trip: a far provider was gone around
# by bulk reads only.  In the WAN bench, a cold 8 KiB blob_read of a block
# on the provider 150 ms away took 0.6 s, where the block's stripe from the
# four providers 40 ms away takes one short round trip.  Now a provider
# whose round trip alone is well above the k-th fastest's is "distant": a
# small read of its data shard is read from the stripe's other shards.  It
# is still there when it is needed.
#
# Six real s3rver processes behind the WAN emulator, five 10 ms away and
# one 85 ms away (its round trip 150 ms longer: far, not slow, which is
# 200 ms longer and three times as long); a 4+2 pool; a blob with a data shard on the far
# provider; 8 KiB reads at the start of every block, each compared with
# the file.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $rig = DestorTest::wan_rig('distant', 6, delays => [ 10, 10, 10, 10, 10, 85 ], mbps => 50,
	pool => [ 'p42', 4, 2 ]);
my ($node, $wan, $base) = ($rig->{node}, $rig->{wan}, $rig->{base});
my $far = $rig->{s3}[5]{name};

my $file = "$base/in.bin";
my $nblocks = 24;
DestorTest::write_random_file($file, $nblocks * 65536 + 1000);
my $blob = DestorTest::import_blob_with_data_on($node, 'p42', $file, $far);
ok(defined $blob, "a blob with a data shard on the far provider ($far)");
is($node->safe_psql('postgres', "SELECT block_size FROM destor.objects WHERE object_id = destor.blob_id('$blob')"),
	65536, 'blocks of 64 KiB');

# 8 KiB at the start of every block, one call each in one statement (every
# data shard is read, the far one's blocks too), each compared with the
# file's bytes; the GETs each provider was asked for meanwhile
sub small_reads
{
	my ($name) = @_;
	$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
	my $t0 = DestorTest::wan_mark($wan);
	my $wrong = $node->safe_psql(
		'postgres', "
		SELECT count(*) FROM generate_series(0, $nblocks - 1) b
		 WHERE md5(destor.blob_read('$blob', b * 65536, 8192))
		       IS DISTINCT FROM md5(substring(pg_read_binary_file('$file') from b * 65536 + 1 for 8192))");
	is($wrong, 0, "$name: every read exact");
	my %n;
	$n{ $_->{provider} }++ for grep { $_->{line} =~ /^GET/ } DestorTest::wan_requests_since($wan, $t0, 1);
	note("$name: " . join(', ', map { "$_: $n{$_}" } sort keys %n));
	return \%n;
}

# the first reads measure the providers: once k are known, a block of the
# far provider's shard is asked of it as if it were near, which times it
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
my $first = small_reads('first reads');
cmp_ok($first->{$far} // 0, '>=', 1, 'first reads: the far provider was asked, and measured');

# from then on its round trip is known: small reads of its blocks are read
# from the other shards of their stripes (before: a GET of it per block)
my $later = small_reads('later reads');
is($later->{$far} // 0, 0, 'later reads: nothing asked of the distant provider');
my $near = grep { ($later->{ $rig->{s3}[$_]{name} } // 0) > 0 } 0 .. 4;
cmp_ok($near, '>=', 4, 'later reads: its blocks rebuilt from the near providers (parity asked)');

# it is still there when it is needed: two near providers gone, the
# distant one serves
DestorTest::stop_s3($rig->{s3}[$_]) for 0, 1;
my $gone = small_reads('two near providers gone');
cmp_ok($gone->{$far} // 0, '>=', 1, 'two near providers gone: the distant provider was asked');

done_testing();
