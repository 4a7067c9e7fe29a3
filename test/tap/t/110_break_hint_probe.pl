# Found by the break-hedge review of "Ask every shard at once while provider
# read times are unknown" (c7e13c1).
#
# A shard recorded 'missing' in destor.shards whose provider has it after all
# (a stale record: the outage is over) is to be read as a probe by the
# degraded path: started at once with the others, not waited for, and, when
# its chunks match their tags, noted verified so that every later read uses
# it on the healthy path again (reader_runs_complete ->
# provider_note_shard_verified; t/023 shows it with file providers).
#
# Since c7e13c1, reader_runs_prepare marks every request of a shard that
# plan_hedge did not "start" as a hedge spare (hedge_spare = !start[i]);
# plan_hedge never sets start[] for a probe (it is not in its order), so on
# s3 providers the probe is held back as a spare and cancelled, unasked,
# when the k other shards are in.  Its provider is never asked, the stale
# record is never cleared, and every read of the object stays degraded (n-1
# shards, whole stripes) for good.  Before c7e13c1 the probe was started at
# once (hedge_spare = unit_of[i] > need, and a probe has unit_of 0).
#
# The data read stays exact; what this shows is that the provider holding
# the hinted shard is never asked, in any of several reads — and then that
# a later read is healthy: shard 0 read, no parity.  (Checking only that
# p0 sent bytes could not tell a cleared record from another probe; with
# the note of the verified shard left out, that check still passed, this
# one fails.)
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('hint_probe', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @s3));

my $file = "$base/input.bin";
DestorTest::write_random_file($file, 1024 * 1024);
my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('archive', '$file')");
my $md5 = $node->safe_psql('postgres', "SELECT md5(pg_read_binary_file('$file'))");
is($node->safe_psql('postgres', "SELECT md5(destor.blob_get('$blob'))"), $md5, 'the blob reads');

# shard 0 recorded missing, though its provider has it: a stale record
my $p0 = $node->safe_psql('postgres',
	"SELECT provider FROM destor.shards WHERE object_id = destor.blob_id('$blob') AND shard_index = 0");
$node->safe_psql('postgres',
	"UPDATE destor.shards SET state = 'missing' WHERE object_id = destor.blob_id('$blob') AND shard_index = 0");

my $asked = 0;
for my $try (1 .. 8)
{
	$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
	is($node->safe_psql('postgres', "SELECT md5(destor.blob_get('$blob'))"), $md5,
		"read $try with shard 0 recorded missing is exact");
	my $bytes = $node->safe_psql('postgres',
		"SELECT bytes_read FROM destor.provider_status WHERE provider = '$p0'");
	if ($bytes > 0)
	{
		$asked = $try;
		last;
	}
}
ok($asked, "the provider of the shard recorded missing ($p0) is asked (probed) by a read, "
	  . 'so that the stale record can be found wrong');

# once found good, shard 0 is read like any other: a read takes its bytes
# from p0 and none from the parity shards' providers (the healthy path).
# While the record stands, every read is degraded: shard 0 is only probed,
# and the k shards it waits for include parity.  Not necessarily the first
# read: while read times are still being learnt, a read asks every shard
# and uses the first four answers.
my @parity = split /\n/, $node->safe_psql('postgres',
	"SELECT provider FROM destor.shards WHERE object_id = destor.blob_id('$blob') AND shard_index >= 4");
my $plist = join(', ', map { "'$_'" } @parity);
my $later = 0;
my $bytes_sql = "SELECT sum(bytes_read) FILTER (WHERE provider = '$p0'), "
  . "coalesce(sum(bytes_read) FILTER (WHERE provider IN ($plist)), 0) FROM destor.provider_status";
for my $try (1 .. 5)
{
	# bytes of this read alone (no reset: that would forget the read times
	# and make the next read ask every shard again)
	my ($p0_before, $parity_before) = split /\|/, $node->safe_psql('postgres', $bytes_sql);
	is($node->safe_psql('postgres', "SELECT md5(destor.blob_get('$blob'))"), $md5, "later read $try is exact");
	my ($p0_after, $parity_after) = split /\|/, $node->safe_psql('postgres', $bytes_sql);
	my ($p0_bytes, $parity_bytes) = ($p0_after - $p0_before, $parity_after - $parity_before);
	note("later read $try: p0 $p0_bytes bytes, parity $parity_bytes");
	if ($p0_bytes > 0 && $parity_bytes == 0)
	{
		$later = $try;
		last;
	}
}
ok($later, 'and shard 0 is read from its provider again, parity not at all: the stale record was cleared by the probe');

DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
