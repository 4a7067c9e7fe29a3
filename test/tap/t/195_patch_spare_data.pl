# A window patched from parity (object_read_degraded.c, reader_patch_window)
# when every parity shard is needed: a data shard the healthy read gave up
# for being late is a spare of the patch, asked again.  Before, the patch's
# hedged set had no spare, and a parity shard that stalled (no status line,
# no byte) was waited out until its request timed out, the window then read
# degraded: 10 s or more here.
#
# Six s3rver behind fault and delay proxies, a 4+2 pool, a 3 MiB blob.
# Parity shard 5's provider answers 1.5 s late, and is found slow (three
# blob_verify calls read it); data shard 0's proxy answers every GET with
# 503 (the provider is up, so the healthy read asks it); data shard 3's
# provider answers 600 ms late, which the healthy read does not wait for;
# parity shard 4's stalls 15 s.  The healthy read then fails shards 0 and 3,
# and its patch needs both parity shards — or shard 3 again, which answers
# in 0.6 s: 2.4 s a read now, 15 s before.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $size = 3 * 1024 * 1024 + int(rand(65536));
my ($node, $rig, $b) = DestorTest::start_fault_delay_blob('patch_spare', $size);
my @faults = @{ $rig->{faults} };
my %on = %{ $b->{on} };
my $pre = "SET destor.provider_down_interval = '60s'; SET statement_timeout = '60s'; ";

for my $i (0 .. 5)
{
	my ($ok, $dt, $err) = DestorTest::read_piece($node, $b, $i * 512 * 1024, $pre);
	ok($ok, "warm read $i exact") or diag($err);
}

DestorTest::set_delay($rig->{stall}[ $on{5} ], 1500);
is($node->safe_psql('postgres', "SELECT destor.blob_verify('$b->{blob}')"), 't', "blob_verify $_")
  for 1 .. 3;

my $log = "$faults[$on{0}]{control}.log";
my $before = -e $log ? (() = slurp_file($log) =~ /\n/g) : 0;
FaultProxy::set_faults($faults[ $on{0} ]{control}, "503 1000 GET\n");
DestorTest::set_delay($rig->{stall}[ $on{3} ], 600);
DestorTest::set_delay($rig->{stall}[ $on{4} ], 15000);

my ($ok, $dt, $err) = DestorTest::read_piece($node, $b, 512 * 1024, $pre);
ok($ok, 'read with shard 0 failing, shard 3 late, shard 4 stalled, shard 5 slow exact')
  or diag($err);
note(sprintf('patched read: %.2f s', $dt));
my $after = -e $log ? (() = slurp_file($log) =~ /\n/g) : 0;
cmp_ok($after - $before, '>=', 1, "data shard 0's provider was asked (the healthy read)");
cmp_ok($dt, '<', 8, 'the late data shard is the patch\'s spare: the stalled parity is not waited out');

FaultProxy::set_faults($_->{control}, '') for @faults;
DestorTest::set_delay($_, 0) for @{ $rig->{stall} };
$node->stop;
done_testing();
