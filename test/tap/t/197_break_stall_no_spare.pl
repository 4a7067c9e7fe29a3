# Stalls with no spare left, from a break review of fe57424 and fd88f15
# (object_read_degraded.c; s3_transfer.c, s3_hedge_fall_back): each read
# must be exact and not wait out a staller (15 s) while enough honest
# shards exist.
#
# 1. A pool whose parity is on file providers (placement 'cheapest'), a
#    data shard on s3 stalling: the healthy read gives it up and the patch
#    reads the file parity.  fe57424 asked the given-up data shard again
#    as the patch's spare, in an s3 batch whose hedged set held nothing
#    else: it was started at once and waited out (20 s).  Data shards are
#    the patch's spares only on pools of s3 providers now.
# 2. An s3 pool: parity 5's provider down, data shard 1 stalling, parity
#    4's first GET answered 503 (first tries do not retry): the last honest
#    unit failed and only the staller was left; the first try waited for it
#    (20 s).  A first try's unit that stalls with no spare left is now given
#    up, and the try with every shard (retries) follows.
# 3. Data shard 1 lies, data shard 2 is recorded missing (its probe found
#    nothing a moment ago: a 404) though present, parity 5 stalls.  With
#    fd88f15 the liar was a probe of the try with every shard, and with the
#    recorded shard a probe too, that try held k shards only: unhedged, it
#    waited for every shard (21 s).  The liar stays a unit when the others
#    are too few to hedge with.
#
# Six s3rver behind fault and delay proxies; 3 MiB blobs read in 512 KiB
# pieces, every byte compared.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $rig) = DestorTest::start_fault_delay_pool('stall_no_spare');
my @faults = @{ $rig->{faults} };
my $pre = "SET destor.provider_down_interval = '60s'; SET statement_timeout = '90s'; ";
my $size = 3 * 1024 * 1024 + int(rand(65536));

sub clear
{
	FaultProxy::set_faults($_->{control}, '') for @faults;
	DestorTest::set_delay($_, 0) for @{ $rig->{stall} };
}

sub warm
{
	my ($x) = @_;
	$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
	for my $i (0 .. 7)
	{
		my ($ok, $dt, $err) = DestorTest::read_piece($node, $x, ($i % 6) * 512 * 1024, $pre);
		ok($ok, "warm read exact") or diag($err) if $i == 7;
	}
}

sub timed_reads
{
	my ($x, $what, @offsets) = @_;
	for my $off (@offsets)
	{
		my ($ok, $dt, $err) = DestorTest::read_piece($node, $x, $off, $pre);
		ok($ok, "$what: read at $off exact") or diag($err);
		note(sprintf('%s: read at %d: %.2f s', $what, $off, $dt));
		cmp_ok($dt, '<', 8, "$what: read at $off not held by the staller");
	}
}

# 1. parity on files
my $base = $node->basedir;
make_path("$base/prov1", "$base/prov2");
$node->safe_psql('postgres', qq{
CREATE SERVER f1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$base/prov1', cost_per_gb_month '5');
CREATE SERVER f2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$base/prov2', cost_per_gb_month '5');
} . join('', map { "ALTER SERVER d$_ OPTIONS (ADD cost_per_gb_month '1');\n" } 0 .. 3) . qq{
CREATE SERVER pmix FOREIGN DATA WRAPPER destor OPTIONS (providers 'd0,d1,d2,d3,f1,f2', data_shards '4', parity_shards '2', placement 'cheapest');
});
my ($x, %prov);
for (1 .. 20)
{
	$x = DestorTest::import_random_blob($node, 'pmix', $size);
	%prov = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
		"SELECT shard_index, provider FROM destor.blob_shards WHERE blob_id = '$x->{id}'");
	last if $prov{4} =~ /^f/ && $prov{5} =~ /^f/;
}
note('1. placement: ' . join(', ', map { "shard $_ on $prov{$_}" } sort keys %prov));
ok($prov{4} =~ /^f/ && $prov{5} =~ /^f/, '1. both parity shards on file providers');
warm($x);
my ($d1) = $prov{1} =~ /^d(\d)$/;
DestorTest::set_delay($rig->{stall}[$d1], 15000);
timed_reads($x, "1. data shard 1 (d$d1) stalling, parity on files", 64 * 1024, 64 * 1024 + 1024 * 1024);
clear();

# 2. parity 5 down, data 1 stalling, parity 4's first GET 503
$x = DestorTest::import_random_blob($node, 'p42', $size);
my %on = %{ $x->{on} };
note('2. placement: ' . join(', ', map { "shard $_ on d$on{$_}" } sort keys %on));
warm($x);
DestorTest::stop_s3($rig->{s3}[ $on{5} ]);
$node->safe_psql('postgres', "SELECT ok FROM destor.check_provider('d$on{5}')");
DestorTest::set_delay($rig->{stall}[ $on{1} ], 15000);
FaultProxy::set_faults($faults[ $on{4} ]{control}, "503 1 GET\n");
timed_reads($x, '2. parity 5 down, data 1 stalling, parity 4 503 once', 512 * 1024);
is(FaultProxy::injected($faults[ $on{4} ]{control}, '503'), 1, '2. the 503 was injected');
clear();
DestorTest::start_s3($rig->{s3}[ $on{5} ]);

# 3. a liar, a shard recorded missing whose probe found nothing, a staller
$x = DestorTest::import_random_blob($node, 'p42', $size);
%on = %{ $x->{on} };
note('3. placement: ' . join(', ', map { "shard $_ on d$on{$_}" } sort keys %on));
warm($x);
$node->safe_psql('postgres',
	"UPDATE destor.shards SET state = 'missing' WHERE object_id = '$x->{id}' AND shard_index = 2");
FaultProxy::set_faults($faults[ $on{2} ]{control}, "notfound 1000 GET\n");
my ($ok, $dt, $err) = DestorTest::read_piece($node, $x, 0, $pre);
ok($ok, "3. a read while shard 2's provider answers 404 exact") or diag($err);
FaultProxy::set_faults($faults[ $on{2} ]{control}, '');
FaultProxy::set_faults($faults[ $on{1} ]{control}, "flip 100000 GET\n");
DestorTest::set_delay($rig->{stall}[ $on{5} ], 15000);
timed_reads($x, '3. liar data 1, data 2 recorded missing, parity 5 stalling', 512 * 1024, 1536 * 1024);
clear();

$node->stop;
done_testing();
