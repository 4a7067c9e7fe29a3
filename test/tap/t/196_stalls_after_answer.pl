# Requests that stall after their answer began (status line and headers
# sent, or 8 KiB of body, then nothing for 15 s), from a break review of
# eae784a, 34aa1b5 and fe57424 (s3_transfer.c: s3_unit_stalled,
# s3_hedge_fall_back):
#
# 1. A window patched from parity (data shard 0 answers 503, a 512 KiB read
#    at 64 KiB, so the kept data shards have edges outside the window):
#    data shard 1's edge request stalls after its headers or after 8 KiB.
#    The stall check (s3_hedge_stalled) judges only requests whose answer
#    has not begun, and a batch with a hedged set was never abandoned:
#    each read waited the stall out (20 s in the review).  The patch's
#    requests now fall back: one without a byte for a second while others
#    came in is given up, and the window is read degraded (1.4 s).
# 2. Parity shard 4's patch GET stalls the same ways: its spare (parity 5)
#    is started.
# 3. A hedged set's unit that stalls after its answer began, whose only
#    spare left is a provider found slow (TAP 194's rig: parity 5 1.5 s
#    late and found slow, data 0 down, data 3 600 ms late): it kept the
#    slow links' bar, four times its lateness bar (7.2-7.8 s reads), where
#    a unit whose answer had not begun gets a second past it (3.9 s).
#
# Six s3rver behind fault and delay proxies, a 4+2 pool, a 3 MiB blob,
# every byte compared.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $size = 3 * 1024 * 1024 + int(rand(65536));
my ($node, $rig, $b) = DestorTest::start_fault_delay_blob('after_answer', $size);
my @faults = @{ $rig->{faults} };
my %on = %{ $b->{on} };
my $pre = "SET destor.provider_down_interval = '60s'; SET statement_timeout = '90s'; ";

sub warm
{
	$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
	for my $i (0 .. 5)
	{
		my ($ok, $dt, $err) = DestorTest::read_piece($node, $b, $i * 512 * 1024, $pre);
		ok($ok, "warm read $i exact") or diag($err) if $i == 5;
	}
}

# 1 and 2: the patch's edge (data shard 1: its first GET is the healthy
# read's, its second the edge), and the patch's parity unit
for my $case ([ 1, "pass 1 GET\nhdrstall 1 GET\n", 'headers' ],
	[ 1, "pass 1 GET\nmidstall 1 GET\n", '8 KiB' ],
	[ 4, "hdrstall 1 GET\n", 'headers' ],
	[ 4, "midstall 1 GET\n", '8 KiB' ])
{
	my ($shard, $spec, $what) = @$case;
	FaultProxy::set_faults($_->{control}, '') for @faults;
	warm();
	FaultProxy::set_faults($faults[ $on{0} ]{control}, "503 1000 GET\n");
	FaultProxy::set_faults($faults[ $on{$shard} ]{control}, $spec);
	my ($ok, $dt, $err) = DestorTest::read_piece($node, $b, 64 * 1024, $pre);
	my $stalls = FaultProxy::injected($faults[ $on{$shard} ]{control}, $spec =~ /hdrstall/ ? 'hdrstall' : 'midstall');
	ok($ok, "patched read, shard $shard stalling after $what, exact") or diag($err);
	note(sprintf('patched read, shard %d stalling after %s: %.2f s, stalls injected %s',
		$shard, $what, $dt, $stalls));
	is($stalls, 1, "shard $shard ($what): the stall was injected once");
	cmp_ok($dt, '<', 8, "shard $shard stalling after $what: not waited out");
}
FaultProxy::set_faults($_->{control}, '') for @faults;

# 3: a unit that stalls after its answer began, its only spare a provider
# found slow
warm();
# parity shard 5's provider slow, and measured so (its last four reads) by
# checks that read every shard; data shard 0 down, data shard 3 600 ms late
DestorTest::slow_parity_down_data($node, $rig, $b);
for my $i (0 .. 1)
{
	my ($ok, $dt, $err) = DestorTest::read_piece($node, $b, (2 * $i + 1) * 512 * 1024, $pre);
	ok($ok, "read $i with shard 0 down and shard 5 slow exact") or diag($err);
}
for my $i (0 .. 1)
{
	FaultProxy::set_faults($faults[ $on{4} ]{control}, $i == 0 ? "hdrstall 1000 GET\n" : "midstall 1000 GET\n");
	my ($ok, $dt, $err) = DestorTest::read_piece($node, $b, (2 * $i + 1) * 512 * 1024, $pre);
	ok($ok, "read $i with parity 4 stalling after its answer began exact") or diag($err);
	note(sprintf('degraded read %d: %.2f s', $i, $dt));
	cmp_ok($dt, '<', 6, "read $i: the last spare is started a second after the stalled unit is late");
}

FaultProxy::set_faults($_->{control}, '') for @faults;
DestorTest::set_delay($_, 0) for @{ $rig->{stall} };
$node->stop;
done_testing();
