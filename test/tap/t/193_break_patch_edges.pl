# A spread window's patch (object_read_degraded.c, reader_patch_window and
# split_patch): a 3+3 pool spread over six alike providers, one shard's
# GET failing (503 once) and, just as the patch asks for it, another
# provider stalling for 30 s.  The patch's parity requests are a hedged
# set, but the edges of the data shards kept (whatever of their first and
# last stripe's chunks lies outside the window) were outside it: one that
# stalled was judged by nothing, and held the export for its request
# timeout (31-33 s, one case in eight).  Now those edges are hedge
# requests, given up as stalled while others answer (s3_hedge_stalled),
# and the window is read degraded.  From a break review of 9885fa9.
#
# Six s3rver, each behind a FaultProxy and a delay proxy, all behind the
# WAN emulator (20 ms, 10 MB/s alike); a 16 MiB blob exported, every byte
# compared, after every provider was measured afresh.  About a minute: in
# the long suite.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::SHA;
use Time::HiRes qw(time usleep);

DestorTest::skip_long();

my ($node) = DestorTest::start_cluster('patch_edges', cache_size => '0');
my $base = $node->basedir;
my $rig = DestorTest::start_fault_delay_rig($node, 6);
my @watch;
END
{
	local $?;
	kill 'KILL', @watch if @watch;
	DestorTest::stop_fault_delay_rig($rig);
}
my $wan = DestorTest::start_wan_proxy($base, $rig->{providers}, delay_ms => 20, mbps => 10);
my @prov = map { { %{ $rig->{providers}[$_] }, port => $wan->{ports}[$_] } } 0 .. 5;
$node->safe_psql('postgres', DestorTest::providers_sql('p42', 4, 2, @prov)
	  . "CREATE SERVER p33 FOREIGN DATA WRAPPER destor OPTIONS (providers 'd0,d1,d2,d3,d4,d5', data_shards '3', parity_shards '3');\n");
my @faults = @{ $rig->{faults} };
my $M = 1024 * 1024;
my %blob = map { ($_ => DestorTest::import_random_blob($node, $_, 16 * $M + int(rand($M)))) } qw(p33);
# on{} gives server numbers from the name's trailing digits: d0..d5 -> 0..5
for my $p (qw(p33))
{
	note("$p placement: " . join(', ', map { "shard $_ on d$blob{$p}{on}{$_}" } sort keys %{ $blob{$p}{on} }));
}

sub clear
{
	FaultProxy::set_faults($_->{control}, '') for @faults;
	DestorTest::set_delay($_, 0) for @{ $rig->{stall} };
}
sub states
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(provider || ' ' || state, ', ' ORDER BY provider) FROM destor.provider_status");
}
sub sent
{
	my %s = DestorTest::wan_sent($wan, @_);
	return join(', ', map { "$_ $s{$_}" } sort keys %s);
}
sub export
{
	my ($pool, $what, $limit) = @_;
	my $x = $blob{$pool};
	unlink "$base/out.bin";
	my $t0 = DestorTest::wan_mark($wan);
	my $log_at = -s $node->logfile;
	my $t = time;
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET statement_timeout = '120s'; SELECT destor.blob_export('$x->{blob}', '$base/out.bin')");
	my $dt = time - $t;
	is($rc, 0, "$pool $what: export ok") or diag($err);
	is(DestorTest::sha256_file("$base/out.bin"), $x->{sum}, "$pool $what: exact");
	cmp_ok($dt, '<', $limit, "$pool $what: took less than $limit s") if defined $limit;
	note(sprintf("%s %s: %.2f s; sent %s; %s", $pool, $what, $dt, sent($t0), states()));
	my $log = slurp_file($node->logfile, $log_at);
	note("log: $_") for grep { /WARNING|ERROR|PANIC|corrupt|TRAP/ } split /\n/, $log;
	unlike($log, qr/PANIC|TRAP|terminated by signal/, "$pool $what: no crash");
	return $dt;
}
# a watcher: when provider $a takes its fault (its log grows), provider $b
# stalls for $ms (a provider that stalls just when the patch asks it)
sub watch_then_stall
{
	my ($a, $b, $ms) = @_;
	my $logf = "$faults[$a]{control}.log";
	my $count = sub { open(my $fh, '<', $logf) or return 0; scalar(grep { /^(503|reset|truncate) / } <$fh>) };
	my $n0 = $count->();
	my $pid = fork() // die;
	if ($pid == 0)
	{
		for (1 .. 60000)
		{
			my $n = $count->();
			if ($n > $n0)
			{
				DestorTest::set_delay($rig->{stall}[$b], $ms);
				POSIX::_exit(0);
			}
			usleep(2000);
		}
		POSIX::_exit(0);
	}
	push @watch, $pid;
	return $pid;
}

# every provider's links measured afresh, faults gone: the next export
# spreads (checked: every provider serves part of its shard)
sub remeasure
{
	my ($what, @pools) = @_;
	clear();
	$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
	for my $pool (@pools)
	{
		unlink "$base/out.bin";
		$node->safe_psql('postgres', "SELECT destor.blob_export('$blob{$pool}{blob}', '$base/out.bin')") for 1 .. 2;
		my $t0 = DestorTest::wan_mark($wan);
		$node->safe_psql('postgres', "SELECT destor.blob_export('$blob{$pool}{blob}', '$base/out.bin')");
		my %s = DestorTest::wan_sent($wan, $t0);
		my $spread = grep { ($s{"d$_"} // 0) > 0 } 0 .. 5;
		note("$what: $pool before: sent " . join(', ', map { "d$_ " . ($s{"d$_"} // 0) } 0 .. 5));
		note("$what: $pool spread over $spread of six before the case");
	}
}

remeasure('0', qw(p33));
my %on33 = %{ $blob{p33}{on} };
for my $pair ([ 3, 0 ], [ 4, 0 ], [ 5, 0 ], [ 0, 1 ], [ 1, 0 ], [ 2, 0 ], [ 4, 1 ], [ 5, 2 ])
{
	my ($a, $b) = map { $on33{$_} } @$pair;
	FaultProxy::set_faults($faults[$a]{control}, "503 1 GET\n");
	watch_then_stall($a, $b, 30000);
	export('p33', "shard $pair->[0] (d$a) fails its spread GET, shard $pair->[1] (d$b) stalls then", 15);
	kill 'KILL', @watch;
	waitpid($_, 0) for @watch;
	@watch = ();
	remeasure('next', 'p33');
}
$node->stop;
DestorTest::stop_wan_proxy($wan);
DestorTest::stop_s3($_) for @{ $rig->{s3} };
done_testing();
