# A scan's batch opened as it comes in (object_read_degraded.c,
# reader_runs_stream_ready) with a data shard recorded missing, though
# present and honest, and another data shard lying.  The shard recorded
# missing is probed with its tags, so its chunks do not count until checked;
# the stream rebuilt its chunks from the others — the liar's unchecked ones
# among them — into its buffer, over the bytes it had sent.  At the batch's
# end those failed their tags, and the honest provider was named corrupt
# (from a break review: 6 of 10 scans).  Its bytes now stand where they came
# in.  Every row is compared with a heap copy; the honest provider must never
# be named.
#
# Six s3rver behind fault and delay proxies, a 4+2 pool, the wide table.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $rig) = DestorTest::start_fault_delay_pool('stream_blame');
my @faults = @{ $rig->{faults} };
DestorTest::create_wide_table($node, 'p42');
$node->safe_psql('postgres', 'CREATE TABLE wide_heap AS SELECT * FROM wide');
my $diff = q{
SELECT (SELECT count(*) FROM (SELECT * FROM wide EXCEPT ALL SELECT * FROM wide_heap) a)
     + (SELECT count(*) FROM (SELECT * FROM wide_heap EXCEPT ALL SELECT * FROM wide) b)};
my $pre = "SET destor.provider_down_interval = '60s'; SET statement_timeout = '120s'; ";
my $oid = $node->safe_psql('postgres', 'SELECT object_id FROM destor.shards LIMIT 1');
my %on = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
	"SELECT shard_index, substr(provider, 2) FROM destor.shards WHERE object_id = '$oid'");
note("object $oid: " . join(', ', map { "shard $_ on d$on{$_}" } sort keys %on));

sub scan
{
	my ($what, $honest) = @_;
	my $at = -s $node->logfile;
	my ($rc, $out, $err) = $node->psql('postgres', $pre . $diff);
	is($out, '0', "$what: every row right") or diag($err);
	my @named = grep { /is corrupt/ } split /\n/, slurp_file($node->logfile, $at);
	note("  $_") for @named;
	is(scalar(grep { /provider "d$honest" is corrupt/ } @named), 0,
		"$what: d$honest (honest) never named corrupt")
	  if defined $honest;
	return scalar(@named);
}

# (every link a little slow, so that a batch comes in over a while and is
# opened as it does)
DestorTest::set_delay($_, 5) for @{ $rig->{stall} };

# (two of the four pairs in make test, every pair with DESTOR_TEST_LONG=1:
# the suite has a time budget)
my $named = 0;
for my $case (DestorTest::cases([ [ 2, 3 ], [ 1, 3 ], [ 3, 1 ], [ 0, 2 ] ], [ [ 2, 3 ], [ 0, 2 ] ]))
{
	my ($h, $l) = @$case;
	FaultProxy::set_faults($_->{control}, '') for @faults;
	$node->safe_psql('postgres', "UPDATE destor.shards SET state = 'ok'");
	$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
	scan('warm') for 1 .. 2;
	$node->safe_psql('postgres',
		"UPDATE destor.shards SET state = 'missing' WHERE object_id = '$oid' AND shard_index = $h");
	FaultProxy::set_faults($faults[ $on{$l} ]{control}, "flip 100000 GET\n");
	$named += scan("data $h (d$on{$h}) recorded missing, data $l (d$on{$l}) lying, scan $_", $on{$h})
	  for 1 .. 2;
}
# (the liar itself is named in some of them: the check is not vacuous)
cmp_ok($named, '>', 0, 'the liars were named');

FaultProxy::set_faults($_->{control}, '') for @faults;
DestorTest::set_delay($_, 0) for @{ $rig->{stall} };
$node->stop;
done_testing();
