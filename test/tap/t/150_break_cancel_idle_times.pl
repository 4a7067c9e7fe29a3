# Regression test from the break review of 96e689f (cancelled read-aheads
# noted in the providers' statistics).  A cursor reads part of its table
# over a thin WAN, so that the batch it reads ahead is in the middle of its
# bodies when the FETCH returns; the cursor then sits idle and is closed.
# provider_cancel -> s3_run_cancel gave the transfers up without a turn of
# the loop: the idle time was never added to their gaps, the tries were not
# found loose, and provider_stats_note took them for measured reads (the
# idle time went into the provider's latencies, and its bytes over the idle
# time into its rates); and the bytes the providers had sent into the
# sockets meanwhile were never read, so never counted (a third of what was
# sent).  Now the cancel first takes what waits in the sockets (turns that
# do not wait, which see the idle gap) and its stopped transfers' times do
# not count.  The same cursor read on after the same idle (MOVE ALL) is the
# control.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $idle = $ENV{BREAK_IDLE_S} // 6;
my ($node) = DestorTest::start_cluster('cancel_idle', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
# 1 MB/s per provider (mbps is bytes: 1e6 a second): a batch read ahead takes seconds to come
my $wan = DestorTest::start_wan_proxy($base, \@s3, delay_ms => 5, mbps => 1);
my @providers = map { { %{ $s3[$_] }, port => $wan->{ports}[$_] } } 0 .. $#s3;
$node->safe_psql('postgres', DestorTest::providers_sql('wan', 4, 2, @providers));

DestorTest::create_wide_table($node, 'wan');
$node->safe_psql('postgres', 'SELECT sum(length(payload)) FROM wide');

sub marks
{
	return $node->safe_psql('postgres', q{
SELECT string_agg(provider || ' ' || state || ' req ' || requests || ' errors ' || errors
                  || ' p50 ' || round(coalesce(latency_p50_ms, -1)) || ' p99 ' || round(coalesce(latency_p99_ms, -1)),
                  ', ' ORDER BY provider)
  FROM destor.provider_status});
}
sub max_p99
{
	return $node->safe_psql('postgres',
		'SELECT round(coalesce(max(latency_p99_ms), -1)) FROM destor.provider_status');
}

my $stat_sql = 'SELECT sum(bytes_read) FROM destor.provider_status';
my (%p99, %grew, %sent);
# (the cursor ended by MOVE ALL as well with DESTOR_TEST_LONG=1: both end
# in the same cancel; make test keeps its time budget)
for my $end (DestorTest::cases([ 'MOVE ALL IN c', 'CLOSE c' ], ['CLOSE c']))
{
	$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
	# measured again (read times known): the cursor reads the usual way
	$node->safe_psql('postgres', 'SELECT sum(length(payload)) FROM wide');
	my $before = max_p99();
	# twice: latency_p99 of a few entries is the second largest
	for my $round (1, 2)
	{
		my $read0 = $node->safe_psql('postgres', $stat_sql);
		my $t0 = DestorTest::wan_mark($wan);
		my ($rc, $out, $err) = $node->psql('postgres',
			DestorTest::idle_cursor_sql($idle, $end) . "SELECT 'done';\n", on_error_stop => 0);
		is($rc, 0, "cursor ended by '$end', round $round") or diag($err);
		my $read1 = $node->safe_psql('postgres', $stat_sql);
		my @reqs = DestorTest::wan_requests_since($wan, $t0, 1);
		my ($asked, $sent) = DestorTest::wan_bytes(@reqs);
		$grew{$end} += $read1 - $read0;
		$sent{$end} += $sent;
		note(sprintf('  %s %s +%.2f first +%s last +%s %d of %d', $_->{provider}, $_->{conn}, $_->{arrived} - $t0,
			defined $_->{first} ? sprintf('%.2f', $_->{first} - $t0) : '-',
			defined $_->{last} ? sprintf('%.2f', $_->{last} - $t0) : '-', $_->{bytes}, $_->{to} - $_->{from} + 1))
		  for sort { $a->{arrived} <=> $b->{arrived} } @reqs;
		note(sprintf("'%s' round %d: %.2f MiB sent, bytes_read grew %.2f MiB", $end, $round,
			$sent / 1048576, ($read1 - $read0) / 1048576));
	}
	$p99{$end} = max_p99();
	note(sprintf("'%s': max p99 before the cursors %s, after %s; %s", $end, $before, $p99{$end}, marks()));
}
cmp_ok($p99{'MOVE ALL IN c'}, '<', 1000 * $idle * 0.8,
	'control: a cursor idle then read on adds no idle time to the read times')
  if exists $p99{'MOVE ALL IN c'};
cmp_ok($p99{'CLOSE c'}, '<', 1000 * $idle * 0.8,
	'a cursor idle then closed adds no idle time to the read times (cancelled read-ahead)');
cmp_ok($grew{'MOVE ALL IN c'}, '>=', 0.9 * $sent{'MOVE ALL IN c'},
	'control: bytes_read counts what was sent')
  if exists $grew{'MOVE ALL IN c'};
cmp_ok($grew{'CLOSE c'}, '>=', 0.9 * $sent{'CLOSE c'},
	'bytes_read counts what was sent, the cancelled read-ahead included (as TAP 144 asks)');

DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
