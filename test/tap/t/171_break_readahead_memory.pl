# Break review of the read-ahead of two windows beyond the next
# (r->ahead_more): what a backend holds while it reads on.  A 128 MiB
# blob (eight windows) on a 4+2 and a 2+4 pool over six s3rver behind the
# WAN emulator, exported, copied into a large object and verified; the
# backend's memory sampled all along (/proc/<pid>/status: RssAnon, and
# VmHWM), its sockets counted before and after.  Also the first export
# of a backend whose providers are not measured yet (every shard asked:
# on 2+4, three times a window's bytes per window).
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
DestorTest::skip_long();
use Time::HiRes qw(time usleep);

my $rig = DestorTest::wan_rig('ramemory', 6, delay_ms => 20, mbps => 16,
	more => [ [ 'p24', 2, 4, [ 1, 2, 3, 4, 5, 6 ] ] ]);
my ($node, $base, $wan) = @$rig{qw(node base wan)};

my $M = 1024 * 1024;
my %blob = map { my $b = DestorTest::import_random_blob($node, $_, 128 * $M); delete $b->{data}; ($_ => $b) }
  DestorTest::cases([qw(p42 p24)], ['p24']);

my $bg;
my $pid;
sub session
{
	$bg->quit if $bg;
	$bg = $node->background_psql('postgres', on_error_stop => 0);
	($pid) = $bg->query('SELECT pg_backend_pid()');
}

sub status
{
	my %s;
	open(my $fh, '<', "/proc/$pid/status") or return {};
	for (<$fh>)
	{
		$s{$1} = $2 / 1024 if /^(VmHWM|VmRSS|RssAnon|RssShmem):\s+(\d+)/;
	}
	close $fh;
	return \%s;
}
sub sockets
{
	opendir(my $d, "/proc/$pid/fd") or return -1;
	my $n = grep { (readlink("/proc/$pid/fd/$_") // '') =~ /^socket/ } grep { !/^\./ } readdir($d);
	closedir $d;
	return $n;
}

# $sql in the session, its memory sampled every 5 ms: (stderr, peak
# RssAnon MB, VmHWM MB after, seconds)
sub sampled
{
	my ($sql) = @_;
	my $peak = 0;
	$bg->{stderr} = '';
	$bg->{stdout} = '';
	$bg->{stdin} .= "$sql;\n\\echo '__done'\n\\warn '__done'\n";
	my $t0 = time;
	$bg->{run}->pump_nb;
	until ($bg->{stdout} =~ /__done/ && $bg->{stderr} =~ /__done/)
	{
		my $s = status();
		$peak = $s->{RssAnon} if ($s->{RssAnon} // 0) > $peak;
		usleep(5_000);
		$bg->{run}->pump_nb;
		die "timed out" if time - $t0 > 120;
	}
	my $err = $bg->{stderr};
	$err =~ s/__done\s*//;
	my $out = $bg->{stdout};
	$out =~ s/__done\s*//;
	$bg->{stdout} = '';
	$bg->{stderr} = '';
	$out =~ s/\s+$//;
	return ($err, $peak, status()->{VmHWM}, time - $t0, $out);
}

my %limit = (p42 => 200, p24 => 200);
# (2+4 holds the most: a first read asks every shard, three times a
# window's bytes per window)
for my $pool (DestorTest::cases([qw(p42 p24)], ['p24']))
{
	my $x = $blob{$pool};
	# a new cluster start: no provider measured yet
	$node->restart;
	session();
	my $base_anon = status()->{RssAnon};
	my $socks0 = sockets();
	my ($err, $peak, $hwm, $dt) = sampled("SELECT destor.blob_export('$x->{blob}', '$base/out.bin')");
	is($err, '', "$pool: first export after a restart ok");
	is(DestorTest::sha256_file("$base/out.bin"), $x->{sum}, "$pool: first export exact");
	note(sprintf('%s first export (unmeasured): %.1f s, peak RssAnon %.0f MB (%.0f at rest), VmHWM %.0f MB',
		$pool, $dt, $peak, $base_anon, $hwm));
	cmp_ok($peak - $base_anon, '<', $limit{$pool}, "$pool: first export's memory below $limit{$pool} MB");
	cmp_ok($hwm, '<', 256, "$pool: first export's peak RSS below 256 MB");

	# exports first: VmHWM is the session's peak, and lo_get below holds
	# a whole large object
	for my $spread ('on', 'off')
	{
		$bg->query("SET destor.spread_reads = $spread");
		unlink "$base/out.bin";
		($err, $peak, $hwm, $dt) = sampled("SELECT destor.blob_export('$x->{blob}', '$base/out.bin')");
		is($err, '', "$pool spread $spread: export ok");
		is(DestorTest::sha256_file("$base/out.bin"), $x->{sum}, "$pool spread $spread: export exact");
		note(sprintf('%s spread %s export: %.1f s, peak RssAnon %.0f MB, VmHWM %.0f MB', $pool, $spread, $dt, $peak, $hwm));
		cmp_ok($peak - $base_anon, '<', $limit{$pool}, "$pool spread $spread: export's memory below $limit{$pool} MB");
		cmp_ok($hwm, '<', 256, "$pool spread $spread: export's peak RSS below 256 MB");
	}
	for my $spread ('on', 'off')
	{
		$bg->query("SET destor.spread_reads = $spread");

		my $out;
		($err, $peak, $hwm, $dt, $out) = sampled("SELECT destor.blob_to_lo('$x->{blob}')");
		is($err, '', "$pool spread $spread: blob_to_lo ok");
		my ($oid) = $out =~ /(\d+)/;
		my $sum = $bg->query("SELECT encode(sha256(lo_get($oid)), 'hex')");
		is($sum, $x->{sum}, "$pool spread $spread: blob_to_lo exact");
		$bg->query("SELECT lo_unlink($oid)");
		note(sprintf('%s spread %s blob_to_lo: %.1f s, peak RssAnon %.0f MB', $pool, $spread, $dt, $peak));
		cmp_ok($peak - $base_anon, '<', $limit{$pool}, "$pool spread $spread: blob_to_lo's memory below $limit{$pool} MB");

		($err, $peak, $hwm, $dt, $out) = sampled("SELECT destor.blob_verify('$x->{blob}')");
		is($out, 't', "$pool spread $spread: blob_verify true") or diag($err);
		note(sprintf('%s spread %s blob_verify: %.1f s, peak RssAnon %.0f MB', $pool, $spread, $dt, $peak));
		cmp_ok($peak - $base_anon, '<', $limit{$pool}, "$pool spread $spread: blob_verify's memory below $limit{$pool} MB");
	}
	$bg->query('RESET destor.spread_reads');
	my $socks = sockets();
	note("$pool: sockets $socks0 at the start, $socks at the end");
	cmp_ok($socks, '<=', 40, "$pool: a bounded number of sockets");
}
$bg->quit;

my $log = slurp_file($node->logfile);
unlike($log, qr/TRAP|was terminated by signal|PANIC/, 'no crash in the server log');
my @warn = $log =~ /^.*(?:WARNING|ERROR):.*$/mg;
note("server log WARNING/ERROR lines: " . scalar(@warn));
note($_) for @warn[0 .. ($#warn < 30 ? $#warn : 30)];

DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @{ $rig->{s3} };
done_testing();
