# The degraded path's tries of one window (object_read_degraded.c,
# fetch_repair): when the first comes up a stripe short because shards that
# failed this reader were left out, the try with every shard asks only the
# shards the first did not bring in whole (runs_carry).  It asked every
# shard for the whole window again: under load, blob_verify with one
# provider lost asked for 70 MiB where 54 MiB do (TAP 140), and each such
# window moved the good shards' bytes twice.
#
# Six s3rver behind fault proxies, a 4+2 pool, a 2 MiB blob (one window):
# data shard 0's provider answers every GET 503, data shard 1's and parity
# shard 4's their next one.  The healthy read loses shards 0 and 1, its
# patch loses 4, the first repair try reads 2, 3 and 5 (one short of k),
# and the try with every shard must ask 0, 1 and 4 only.  Requests are
# counted per provider in destor.provider_status, every byte compared.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::SHA;

my $size = 2 * 1024 * 1024 + int(rand(65536));
my ($node, $rig, $b) = DestorTest::start_fault_delay_blob('repair_carry', $size);
my @faults = @{ $rig->{faults} };
my %on = %{ $b->{on} };

sub read_all
{
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET destor.max_retries = 0; SELECT encode(sha256(destor.blob_read('$b->{blob}', 0, $size)), 'hex')");
	return ($rc == 0 && $out eq Digest::SHA::sha256_hex($b->{data}), $err);
}

sub requests
{
	return map { split /\|/ } split /\n/, $node->safe_psql('postgres',
		'SELECT provider, requests FROM destor.provider_status ORDER BY 1');
}

for my $i (0 .. 5)
{
	my ($ok, $err) = read_all();
	ok($ok, "warm read $i exact") or diag($err);
}

# round 0 settles the providers' states (d0 down from then on, and every
# read's healthy plan reads around it); rounds 1-3 take the path above
for my $round (0 .. 3)
{
	FaultProxy::set_faults($faults[ $on{0} ]{control}, "503 100 GET\n");
	FaultProxy::set_faults($faults[ $on{$_} ]{control}, "503 1 GET\n") for (1, 4);
	my %r0 = requests();
	my ($ok, $err) = read_all();
	ok($ok, "round $round: read with shards 0, 1 and 4 failing exact") or diag($err);
	my %r1 = requests();
	my %asked = map { ($_ => $r1{"d$on{$_}"} - $r0{"d$on{$_}"}) } 0 .. 5;
	note("round $round: requests per shard: " . join(', ', map { "$_: $asked{$_}" } 0 .. 5));
	# 2 and 3: the healthy read's GET, the first try's chunks and tags; 5:
	# the patch's GET, the first try's chunks and tags.  Asked again by the
	# try with every shard, each had two more.
	for my $i ($round == 0 ? () : (2, 3, 5))
	{
		cmp_ok($asked{$i}, '<=', 3, "round $round: shard $i, in whole from the first try, is not asked again");
	}
	cmp_ok($asked{1} + $asked{4}, '>=', 4,
		"round $round: shards 1 and 4 are asked by the try with every shard (chunks and tags)")
	  if $round > 0;
	FaultProxy::set_faults($_->{control}, '') for @faults;
}

$node->stop;
done_testing();
