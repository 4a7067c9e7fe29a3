# A hedged set whose only spares left are of last resort (s3_transfer.c,
# s3_hedge_turn): a unit that stalls (no status line, no byte) gets one of
# them started a second past its lateness bar, not at four times that bar.
# The bar is twice the slowest unit that succeeded, so one slow honest unit
# (or a busy machine) made it seconds: the read waited for the staller until
# four times the bar before its only spare left, a provider found slow, was
# asked (6.5 s here; TAP 191, beside another heavy file, waited 8 s so for a
# liar found slow).  With the cap: 3.8 s, 4.0 s beside two busy loops.
#
# Six s3rver behind fault and delay proxies, a 4+2 pool, a 3 MiB blob.
# Parity shard 5's provider answers 1.5 s late, and is found slow (three
# blob_verify calls read it); data shard 0's server is stopped (down); data
# shard 3's provider answers 600 ms late; parity shard 4's stalls 15 s.  A
# window's degraded read then starts shards 1-4, with shard 5 (slow) and
# shard 0 (down) its spares of last resort.  Shard 4 is late at twice shard
# 3's time (1.2 s): the spare on shard 5 was started at four times that
# (4.8 s), and now a second after it (2.2 s).  Slow marks last
# destor.provider_down_interval, set to a minute here.  Timing-sensitive:
# run alone by make test (TAP_SERIAL).
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $size = 3 * 1024 * 1024 + int(rand(65536));
my ($node, $rig, $b) = DestorTest::start_fault_delay_blob('stalled_unit', $size);
my @faults = @{ $rig->{faults} };
my %on = %{ $b->{on} };

sub read_at
{
	my ($off) = @_;
	return DestorTest::read_piece($node, $b, $off,
		"SET destor.provider_down_interval = '60s'; SET statement_timeout = '60s'; ");
}

sub states
{
	return join('; ', split /\n/, $node->safe_psql('postgres',
		"SELECT provider || ' ' || state || ' p50 ' || coalesce(latency_p50_ms::int::text, '-') FROM destor.provider_status ORDER BY 1"));
}

for my $i (0 .. 5)
{
	my ($ok, $dt, $err) = read_at($i * 512 * 1024);
	ok($ok, "warm read $i exact") or diag($err);
}

# parity shard 5's provider slow, and measured so (its last four reads) by
# checks that read every shard; data shard 0 down, data shard 3 600 ms late
DestorTest::slow_parity_down_data($node, $rig, $b);
for my $i (0 .. 1)
{
	my ($ok, $dt, $err) = read_at((2 * $i + 1) * 512 * 1024);
	ok($ok, "read $i with shard 0 down and shard 5 slow exact") or diag($err);
	note(sprintf('read %d: %.2f s; %s', $i, $dt, states()));
}
DestorTest::set_delay($rig->{stall}[ $on{4} ], 15000);
for my $i (0 .. 1)
{
	my ($ok, $dt, $err) = read_at((2 * $i + 1) * 512 * 1024);
	ok($ok, "read $i with shard 4 stalled exact") or diag($err);
	note(sprintf('stalled read %d: %.2f s; %s', $i, $dt, states()));
	cmp_ok($dt, "<", 5, "read $i: the last spare is started a second after the stalled unit is late");
}

FaultProxy::set_faults($_->{control}, '') for @faults;
DestorTest::set_delay($_, 0) for @{ $rig->{stall} };
$node->stop;
done_testing();
