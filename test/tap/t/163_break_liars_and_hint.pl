# Break review of c0737ab: two liars (every GET answer with a byte
# inverted) and a third provider whose shards are recorded missing (a stale
# record: they are there), under a 4+2 pool: exactly k honest shards, one
# of them only asked as a probe.  Cold scan and cold export must return
# every byte, blame no honest provider, and raise no error.  Then one liar,
# one provider down and the hinted one: again k honest shards.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('liars_hint', cache_size => '0');
my $base = $node->basedir;
my $rig = DestorTest::start_liar_rig($node, 'wan');
my ($wan, $blob, $file_sha, $diff_sql) = @$rig{qw(wan blob file_sha diff_sql)};
my @s3 = @{ $rig->{s3} };
my @faults = @{ $rig->{faults} };

# s3's shards recorded missing; s1 and s2 lie
$node->safe_psql('postgres', "UPDATE destor.shards SET state = 'missing' WHERE provider = 's3'");
FaultProxy::set_faults($faults[$_]{control}, "flip 100000 GET\n") for 0, 1;
# one round per case: the suite has a time budget
for my $round (1)
{
	$node->restart;
	my ($rc, $out, $err) = $node->psql('postgres', $diff_sql);
	is($out, '0', "round $round: the cold scan returns every row exactly") or diag($err);
	unlink "$base/out.bin";
	$node->restart;
	($rc, $out, $err) = $node->psql('postgres', "SELECT destor.blob_export('$blob', '$base/out.bin')");
	is($rc, 0, "round $round: the cold export succeeds") or diag($err);
	is(DestorTest::sha256_file("$base/out.bin"), $file_sha, "round $round: the cold export writes every byte");
	is($node->safe_psql('postgres',
			"SELECT coalesce(string_agg(provider, ' '), 'none') FROM destor.provider_status WHERE bad_chunks > 0 AND provider NOT IN ('s1', 's2')"),
		'none', "round $round: no honest provider is blamed");
	# the record is to stay a hint for the next round
	$node->safe_psql('postgres', "UPDATE destor.shards SET state = 'missing' WHERE provider = 's3'");
}

# one liar (s1), one provider down (s2), s3 recorded missing: again exactly
# k honest shards, one only a probe
FaultProxy::set_faults($faults[1]{control}, '');
DestorTest::stop_s3($s3[1]);
for my $round (2)
{
	$node->restart;
	my ($rc, $out, $err) = $node->psql('postgres', $diff_sql);
	is($out, '0', "round $round (s1 lies, s2 down): the cold scan returns every row exactly") or diag($err);
	unlink "$base/out.bin";
	$node->restart;
	($rc, $out, $err) = $node->psql('postgres', "SELECT destor.blob_export('$blob', '$base/out.bin')");
	is($rc, 0, "round $round (s1 lies, s2 down): the cold export succeeds") or diag($err);
	is(DestorTest::sha256_file("$base/out.bin"), $file_sha, "round $round: the cold export writes every byte");
	is($node->safe_psql('postgres',
			"SELECT coalesce(string_agg(provider, ' '), 'none') FROM destor.provider_status WHERE bad_chunks > 0 AND provider NOT IN ('s1')"),
		'none', "round $round: no honest provider is blamed");
	$node->safe_psql('postgres', "UPDATE destor.shards SET state = 'missing' WHERE provider = 's3'");
}

DestorTest::stop_wan_proxy($wan);
FaultProxy::stop($_) for @faults;
$node->stop;
done_testing();
