# Break review of the read-ahead of two windows beyond the next
# (r->ahead_more, reader_ahead_wait_for): reads on interrupted while up to
# three windows are in flight, and the same session reading again.
#  - what the providers sent against provider_status.bytes_read, for a
#    whole export and for exports cut by statement_timeout (an export cut
#    before any window was collected counted nothing of what the
#    providers had sent: the batches of an ERROR were abandoned, not
#    noted — up to four windows now; provider_stats_note_egress);
#  - blob_export under statement_timeout at several points of the export,
#    each followed by a full export in the same session, compared byte for
#    byte; the backend's descriptors counted before and after;
#  - blob_to_lo cancelled (pg_cancel_backend) inside a savepoint, rolled
#    back to it and done again in the same transaction;
#  - a PL/pgSQL block catching query_canceled around an export, then
#    exporting again in the same transaction (no top-level abort: the
#    windows in flight are ended by their memory contexts only);
#  - blob_verify cancelled, then verified again.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# Runs with DESTOR_TEST_LONG=1: make test keeps its 20-minute budget; there
# 144_cancelled_read_ahead_egress counts a cancelled read-ahead's bytes as
# egress, and 150 and 151 cancel reads of idle cursors and file providers.
DestorTest::skip_long();

my $rig = DestorTest::wan_rig('racancel', 6, delay_ms => 20, mbps => 6);
my ($node, $base, $wan) = @$rig{qw(node base wan)};

my $M = 1024 * 1024;
my $W = 16 * $M;
my $x = DestorTest::import_random_blob($node, 'p42', 5 * $W + 65537);
delete $x->{data};

my $bg = $node->background_psql('postgres', on_error_stop => 0);
sub sq { return DestorTest::bg_query($bg, @_); }
my ($pid) = sq('SELECT pg_backend_pid()');
note("backend $pid");

# the backend's sockets and epoll descriptors (relation files it keeps
# open, PostgreSQL's own cache of them, are left out)
sub nfds
{
	opendir(my $d, "/proc/$pid/fd") or return -1;
	my $n = grep { (readlink("/proc/$pid/fd/$_") // '') =~ /^(socket|anon_inode:\[eventpoll)/ } grep { !/^\./ } readdir($d);
	closedir $d;
	return $n;
}
sub fd_kinds
{
	my %k;
	opendir(my $d, "/proc/$pid/fd") or return '';
	for my $f (grep { !/^\./ } readdir($d))
	{
		my $l = readlink("/proc/$pid/fd/$f") // '?';
		$l =~ s/\[\d+\]$//;
		$l =~ s{^/.*}{file};
		$k{$l}++;
	}
	closedir $d;
	return join(', ', map { "$_ x$k{$_}" } sort { $k{$b} <=> $k{$a} } keys %k);
}
sub hwm
{
	open(my $fh, '<', "/proc/$pid/status") or return -1;
	my ($kb) = map { /^VmHWM:\s+(\d+)/ ? $1 : () } <$fh>;
	close $fh;
	return $kb / 1024;
}

sub export_exact
{
	my ($what) = @_;
	unlink "$base/out.bin";
	my $t0 = time;
	my ($out, $ret, $err) = sq("SELECT destor.blob_export('$x->{blob}', '$base/out.bin')");
	my $dt = time - $t0;
	is($ret, 0, "$what: export ok") or diag($err);
	is(DestorTest::sha256_file("$base/out.bin"), $x->{sum}, "$what: export exact");
	return $dt;
}

# measured links first
export_exact('first export');
my $t = export_exact('second export');
note(sprintf('an export takes %.2f s', $t));
# 0. what the providers sent is what destor counts (provider_status.
#    bytes_read, the cost report's egress; TAP 144), for a whole export and
#    for one cut by statement_timeout with windows read ahead in flight
sub egress
{
	my ($sql) = @_;
	my $r0 = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status');
	my $t0 = DestorTest::wan_mark($wan);
	my ($out, $ret, $err) = sq($sql);
	sq('RESET statement_timeout');
	my ($asked, $sent) = DestorTest::wan_bytes(DestorTest::wan_requests_since($wan, $t0, 1));
	my $counted = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status') - $r0;
	return ($sent, $counted, $err);
}
{
	my ($sent, $counted) = egress("SELECT destor.blob_export('$x->{blob}', '$base/out.bin')");
	note(sprintf('a whole export: the providers sent %d bytes, destor counted %d', $sent, $counted));
	# (the trace holds a request once its connection is reused or closed:
	#  what it says was sent is a lower bound)
	cmp_ok($counted, '>=', 0.98 * $sent, 'a whole export: counted what was sent');
	for my $frac (DestorTest::cases([ 0.4, 0.55, 0.7 ], [0.55]))
	{
		my $ms = int($t * 1000 * $frac);
		my ($sent2, $counted2, $err) = egress("SET statement_timeout = $ms;\nSELECT destor.blob_export('$x->{blob}', '$base/cut.bin');");
		like($err, qr/statement timeout/, "an export cut at $ms ms");
		note(sprintf('an export cut at %d ms: the providers sent %d bytes, destor counted %d (%.0f%%)',
			$ms, $sent2, $counted2, 100 * $counted2 / ($sent2 || 1)));
		cmp_ok($counted2, '>=', 0.9 * $sent2, "an export cut at $ms ms: what the providers sent is counted");
		cmp_ok($counted2, '<=', 1.1 * $counted, "an export cut at $ms ms: counted no more than a whole export");
	}
}

my $fds0 = nfds();
note("descriptors of the backend after two exports: $fds0 (" . fd_kinds() . ")");
# libcurl keeps up to max(2 x destor.max_concurrent_requests, 16) idle
# connections (s3_get_multi), and how many two exports left varies: that
# cache, the client's socket and the two epoll descriptors are the bound
my ($mcr) = sq("SELECT current_setting('destor.max_concurrent_requests')");
my $fd_bound = ($mcr * 2 > 16 ? $mcr * 2 : 16) + 4;
$fd_bound = $fds0 + 4 if $fds0 + 4 > $fd_bound;

# 1. statement_timeout at several points of an export, then a full export
my @fds;
for my $frac (DestorTest::cases([ 0.05, 0.2, 0.45, 0.7, 0.9, 0.97 ], [ 0.05, 0.45, 0.9 ]))
{
	my $ms = int($t * 1000 * $frac) + 1;
	my ($out, $ret, $err) = sq("SET statement_timeout = $ms;\nSELECT destor.blob_export('$x->{blob}', '$base/cut.bin');");
	sq('RESET statement_timeout');
	note("timeout $ms ms: " . ($err =~ /statement timeout/ ? 'cancelled' : "not cancelled ($err)"));
	export_exact("after a timeout at $ms ms");
	push @fds, nfds();
}
note("descriptors after each: @fds");
cmp_ok($fds[-1], '<=', $fd_bound, "the descriptors do not pile up after cancelled exports (at most $fd_bound)");
# (against the most after an earlier one: libcurl's cache of idle
# connections swings by five or so between exports, 31 26 31 in a CI run;
# a batch's sockets leaked would add six an export)
my ($fds_before) = sort { $b <=> $a } @fds[ 0 .. $#fds - 1 ];
cmp_ok($fds[-1], '<=', $fds_before + 4, 'no descriptor more per cancelled export');

# 2. blob_to_lo cancelled inside a savepoint, done again in the same transaction
{
	my $other = $node->background_psql('postgres', on_error_stop => 0);
	sq('BEGIN');
	sq('SAVEPOINT s');
	my $done = 0;
	for my $frac (DestorTest::cases([ 0.2, 0.5, 0.8 ], [0.5]))
	{
		sq('SAVEPOINT s');
		# cancel from another session a while into the statement
		$bg->{stderr} = '';
		$bg->{stdin} .= "SELECT destor.blob_to_lo('$x->{blob}');\n\\echo '__to_lo_done'\n\\warn '__to_lo_done'\n";
		$bg->{run}->pump_nb;
		usleep(int($t * 1e6 * $frac));
		$other->query("SELECT pg_cancel_backend($pid)");
		$bg->{run}->pump() until $bg->{stdout} =~ /__to_lo_done/ && $bg->{stderr} =~ /__to_lo_done/;
		my $err = $bg->{stderr};
		$bg->{stdout} = '';
		$bg->{stderr} = '';
		note("blob_to_lo cancelled at $frac: " . ($err =~ /canceling statement/ ? 'cancelled' : 'not cancelled'));
		my ($o, $r2, $e2) = sq('ROLLBACK TO SAVEPOINT s');
		is($r2, 0, "rolled back to the savepoint after a cancel at $frac") or diag($e2);
		my ($oid, $ret, $e3) = sq("SELECT destor.blob_to_lo('$x->{blob}')");
		is($ret, 0, "blob_to_lo again in the same transaction (cancel at $frac)") or diag($e3);
		my ($sum) = sq("SELECT encode(sha256(lo_get($oid)), 'hex')");
		is($sum, $x->{sum}, "blob_to_lo again exact (cancel at $frac)");
		sq("SELECT lo_unlink($oid)");
	}
	my ($o, $r, $e) = sq('COMMIT');
	is($r, 0, 'the transaction commits') or diag($e);
	$other->quit;
}
export_exact('after the savepoints');
my $fds_sp = nfds();
note(sprintf('after the savepoints: %d descriptors (%s), peak RSS %.0f MB', $fds_sp, fd_kinds(), hwm()));

# 3. PL/pgSQL catching query_canceled around an export, then exporting again
sq(qq{CREATE FUNCTION cut_then_export(b destor.blob, cut text, whole text) RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE
  caught text := 'not cancelled';
BEGIN
  BEGIN
    PERFORM destor.blob_export(b, cut);
  EXCEPTION WHEN query_canceled THEN
    caught := 'cancelled';
  END;
  PERFORM destor.blob_export(b, whole);
  RETURN caught;
END \$\$});
my @fds_pl;
for my $frac (DestorTest::cases([ 0.1, 0.35, 0.6, 0.85, 0.5 ], [0.35]))
{
	my $ms = int($t * 1000 * $frac) + 1;
	unlink "$base/whole.bin";
	my ($out, $ret, $err) = sq("SET statement_timeout = $ms;\nSELECT cut_then_export('$x->{blob}', '$base/cut.bin', '$base/whole.bin');");
	sq('RESET statement_timeout');
	is($ret, 0, "caught a timeout at $ms ms, exported again") or diag($err);
	note("timeout at $ms ms: $out");
	is(DestorTest::sha256_file("$base/whole.bin"), $x->{sum}, "export after a caught timeout at $ms ms exact");
	export_exact("the next statement after a caught timeout at $ms ms");
	push @fds_pl, nfds();
	note(sprintf('after a caught timeout at %d ms: %d descriptors (%s), peak RSS %.0f MB', $ms, nfds(), fd_kinds(), hwm()));
}
cmp_ok($fds_pl[-1], '<=', $fds_pl[0] + 4, "no descriptor more per caught timeout (@fds_pl)");

# 4. blob_verify cancelled, then verified
{
	my $other = $node->background_psql('postgres', on_error_stop => 0);
	my @fds_v;
	for my $frac (DestorTest::cases([ 0.3, 0.9, 1.4 ], [0.9]))
	{
		$bg->{stderr} = '';
		$bg->{stdin} .= "SELECT destor.blob_verify('$x->{blob}');\n\\echo '__verify_done'\n\\warn '__verify_done'\n";
		$bg->{run}->pump_nb;
		usleep(int($t * 1e6 * $frac));
		$other->query("SELECT pg_cancel_backend($pid)");
		$bg->{run}->pump() until $bg->{stdout} =~ /__verify_done/ && $bg->{stderr} =~ /__verify_done/;
		$bg->{stdout} = '';
		$bg->{stderr} = '';
		my ($out, $ret, $err) = sq("SELECT destor.blob_verify('$x->{blob}')");
		is($out, 't', "blob_verify after a cancel at $frac") or diag($err);
		push @fds_v, nfds();
		note(sprintf('after a cancelled verify: %d descriptors (%s)', nfds(), fd_kinds()));
	}
	cmp_ok($fds_v[-1], '<=', $fds_v[0] + 4, "no descriptor more per cancelled blob_verify (@fds_v)");
	$other->quit;
}
export_exact('at the end');
my ($pid2) = sq('SELECT pg_backend_pid()');
is($pid2, $pid, 'the same backend all along');
my $fds_end = nfds();
note(sprintf('descriptors at the end: %d (after two exports: %d); peak RSS %.0f MB', $fds_end, $fds0, hwm()));
cmp_ok($fds_end, '<=', $fd_bound, "no descriptors leaked at the end (at most $fd_bound)");
$bg->quit;

my $log = slurp_file($node->logfile);
unlike($log, qr/TRAP|was terminated by signal|PANIC/, 'no crash in the server log');
unlike($log, qr/WARNING:.*(leak|not closed|still referenced)/i, 'no leak warnings in the server log');
my @warn = $log =~ /^.*(?:WARNING|ERROR):.*$/mg;
note("server log WARNING/ERROR lines: " . scalar(@warn));
note($_) for @warn[0 .. ($#warn < 40 ? $#warn : 40)];

DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @{ $rig->{s3} };
done_testing();
