# A read that has no spare left and needs a provider that holds every
# request must fail once that provider's request timed out on every retry, not
# ask it again with every retry in each later try of the same window
# (third break review, /work/review_last 973: with request_timeout 10 s
# the read ran on to statement_timeout; with 5 s it failed after 81 s,
# three tries of five attempts).  The held provider's own count of tries
# shows it; the read must still name why it failed, and no shard may be
# recorded missing for a provider that was only slow.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $rig, $x) = DestorTest::start_fault_delay_blob('held_asked_once', 3 * 1024 * 1024 + 4321);
my @faults = @{ $rig->{faults} };
my %on = %{ $x->{on} };
my $retries = 2;
my $pre = "SET statement_timeout = '120s'; SET destor.request_timeout = '3s'; "
  . "SET destor.max_retries = $retries; ";

# every provider measured, the piece read right
my ($ok, $dt, $err) = DestorTest::read_piece($node, $x, 512 * 1024, $pre);
ok($ok, 'the piece reads right with every provider answering') or diag($err);

# Data shard 0 and parity shard 5 answer 503 to every GET from here on:
# data shard 1 is needed.  First, shard 1's provider fails fast for a
# while — a burst of 503s, bodies cut short, a 404 — and then answers:
# the later tries of the window read through what outlasted one request's
# retries (break review of 8de7d83: each of these failed when a shard that
# had failed with its retries was left out of the later tries).
FaultProxy::set_faults($faults[ $on{$_} ]{control}, "503 100000 GET\n") for 0, 5;
for my $burst ("503 8 GET\n", "truncate 8 GET\n", "503 4 GET\nnotfound 1 GET\n")
{
	(my $what = $burst) =~ s/\n(?=.)/, /g;
	chomp $what;
	FaultProxy::set_faults($faults[ $on{1} ]{control}, $burst);
	($ok, $dt, $err) = DestorTest::read_piece($node, $x, 512 * 1024, $pre);
	ok($ok, "shard 1 failing fast ($what), then answering: the read succeeds") or diag($err);
	FaultProxy::set_faults($faults[ $on{1} ]{control}, '');
}
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.shards WHERE state <> 'ok'"), '0',
	'no shard is recorded missing or corrupt after those bursts');

# Then shard 1's provider holds every request for a minute: three usable
# shards of six, four needed.
DestorTest::set_delay($rig->{stall}[ $on{1} ], 60000);
my $held = "d$on{1}";
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');

($ok, $dt, $err) = DestorTest::read_piece($node, $x, 512 * 1024, $pre);
ok(!$ok, 'the read fails: three shards of six answer');
like($err, qr/could not read object .*3 of 6 shards of stripe \d+ are usable, 4 are needed/s,
	'it says how many shards were usable')
  or diag($err);
unlike($err, qr/statement timeout/, 'it fails on its own, not at statement_timeout');
like($err, qr/shard 1 on "$held": .*Timeout was reached .*\(after 3 attempts\)/s,
	'the held shard is named with its timeout and every attempt it had');
note(sprintf('the read failed after %.1f s', $dt));

# Tries that reached the held provider: each request asked of it with
# retries (a run's chunks and its tags) counts 1 + max_retries, a
# fail-fast request (the healthy path's, a patch's) one.  Asked again in
# the later tries of the window, it counted the first part twice more (19
# tries before).
my ($requests, $tries) = split /\|/, $node->safe_psql('postgres',
	"SELECT requests, requests + retries FROM destor.provider_status WHERE provider = '$held'");
cmp_ok($tries, '<=', 2 * (1 + $retries) + 3,
	"the held provider was asked with its retries once per request ($requests requests, $tries tries)");

# A gateway in front of the provider: each request held 2.7 s of the 3 s
# timeout, then answered 503.  As costly a try as a timeout, and counted
# so (second break review of the change: it was asked in every try, 19
# times, 27 s).
DestorTest::set_delay($rig->{stall}[ $on{1} ], 2700);
FaultProxy::set_faults($faults[ $on{1} ]{control}, "503 100000 GET\n");
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
($ok, $dt, $err) = DestorTest::read_piece($node, $x, 512 * 1024, $pre);
ok(!$ok, 'the read fails with the needed provider answering 503 after 2.7 s') or diag($err);
($requests, $tries) = split /\|/, $node->safe_psql('postgres',
	"SELECT requests, requests + retries FROM destor.provider_status WHERE provider = '$held'");
cmp_ok($tries, '<=', 2 * (1 + $retries) + 3,
	"a provider answering an error that late is asked with its retries once per request ($requests requests, $tries tries)");
note(sprintf('the read failed after %.1f s', $dt));

DestorTest::set_delay($rig->{stall}[ $on{1} ], 0);
FaultProxy::set_faults($_->{control}, '') for @faults;
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.shards WHERE state <> 'ok'"), '0',
	'no shard is recorded missing or corrupt for a provider that was only slow');
($ok, $dt, $err) = DestorTest::read_piece($node, $x, 512 * 1024, $pre);
ok($ok, 'with the providers back, the piece reads right') or diag($err);

$node->stop;
done_testing();
