# A provider far away is not a stall (a break review of 7875c1c).  A 4+2
# pool over six s3rver, each behind a fault proxy and a delay proxy: data
# shard 0 answers 503 to every GET, data 1 and parity 5 are honest but
# 2 s away, the other three near.  Every stripe needs one of the two far
# shards, so a read needs 2 s.  The window's patch and the first repair
# try give up a stalled unit once no spare is left (s3_hedge_fall_back);
# they took a far shard whose answer had not begun for a stall, and each
# read asked every shard three times (patch, first repair try, the try
# that waits), 7 s where 2 s would do.  Now a provider whose last answer
# took long is waited for as long as three such answers: once either far
# provider has answered, a read asks each shard once.  Every byte is
# compared, and no shard ends up recorded missing or corrupt.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $far = 2000;
my ($node, $rig) = DestorTest::start_fault_delay_pool('far_not_stalled');
my @faults = @{ $rig->{faults} };
my $pre = "SET destor.provider_down_interval = '60s'; SET statement_timeout = '120s'; ";
my $x = DestorTest::import_random_blob($node, 'p42', 3 * 1024 * 1024 + int(rand(65536)));
my %on = %{ $x->{on} };
note('placement: ' . join(', ', map { "shard $_ on d$on{$_}" } sort keys %on));
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
DestorTest::set_delay($rig->{stall}[ $on{1} ], $far);
DestorTest::set_delay($rig->{stall}[ $on{5} ], $far);

my (@times, @once);
my $i = 0;
for my $off (0, 512 * 1024, 64 * 1024, 1536 * 1024, 2560 * 1024, 1024 * 1024, 0, 64 * 1024)
{
	FaultProxy::set_faults($faults[ $on{0} ]{control}, "503 100000 GET\n");
	# "pass" faults let every GET through and log it: GETs per shard
	FaultProxy::set_faults($faults[ $on{$_} ]{control}, "pass 100000 GET\n") for 1 .. 5;
	my ($ok, $dt, $err) = DestorTest::read_piece($node, $x, $off, $pre);
	ok($ok, "read at $off: every byte right") or diag($err);
	my %gets = map { $_ => FaultProxy::injected($faults[ $on{$_} ]{control}) } 1 .. 5;
	note(sprintf('read %d at %d: %.2f s; GETs per shard: %s', $i, $off, $dt,
		join(' ', map { "s$_:$gets{$_}" } 1 .. 5)));
	push @times, sprintf('%.2f', $dt);
	# the first reads measure the far providers
	push @once, (grep { $gets{$_} > 1 } 1 .. 5) ? 0 : 1 if $i >= 2;
	$i++;
}
note("read times: @times");
is(scalar(grep { !$_ } @once), 0,
	'once a far provider has answered, each read asks every healthy shard once (no try given up and asked again)');
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.shards WHERE state <> 'ok'"), '0',
	'no shard recorded missing or corrupt');
FaultProxy::set_faults($_->{control}, '') for @faults;
DestorTest::set_delay($_, 0) for @{ $rig->{stall} };
$node->stop;
done_testing();
