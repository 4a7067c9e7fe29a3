# The window read again after bad bytes (object_read_degraded.c,
# reader_open_window_degraded): every shard is asked at once, and each still
# running when k are in gets a probe's grace (hedge_finish), so the liar is
# checked and named, and a provider that stalls costs at most that grace.
# Written as a break review of e457854 and abaf41b, which it failed:
#
# 1. A liar a little farther away than the others (70 ms more: not distant,
#    so the healthy path still reads its data shard) had not begun its
#    answer when the k near honest shards were in, was cancelled, never
#    checked, never named: every read failed authentication and was read
#    again, and no repair learnt of it.
# 2. A liar, a provider that stalls, and an honest provider 60 ms farther:
#    the far honest one cancelled, a stripe short of k good chunks, and
#    fetch_repair's second try (unhedged) waited 8 s for the staller
#    although four honest shards exist.
# 3. (added with the fix of 2's last cause) the same with the honest one
#    2.5 s away, too late for the re-read's grace: the try with every shard
#    that follows is hedged now, the staller a unit found late and the
#    farther one its spare; unhedged, it waited 8 s for the staller.  With
#    the farther one 1.5 s away it failed a CI run (11 s): the liar, the
#    last spare of that try, was started once the staller and the farther
#    one were very late (1.35 s), and its complete but bad answer ended the
#    try a stripe short before the farther one's came; the waited try after
#    it sat out the staller.  The liar is a probe of that try now, never
#    counted; 2.5 s away, the farther one lost that race every time.
#
# Six s3rver, each behind a FaultProxy (flip) and a delay proxy (held
# requests); a 4+2 pool; a 3 MiB blob read in 512 KiB pieces, every byte
# compared.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Part 1 runs with DESTOR_TEST_LONG=1 only (make test keeps its budget, and
# 169 names liars there).

my $size = 3 * 1024 * 1024 + int(rand(65536));
my ($node, $rig, $b) = DestorTest::start_fault_delay_blob('finish_begun', $size);
my @faults = @{ $rig->{faults} };
my %on = %{ $b->{on} };

sub read_at
{
	my ($off, $pre) = @_;
	return DestorTest::read_piece($node, $b, $off, $pre);
}

sub warm
{
	for my $i (0 .. 11)
	{
		my ($ok) = read_at(($i % 6) * 512 * 1024);
		ok($ok, "warm read $i exact") if $i == 11;
	}
}

sub states
{
	return join('; ', split /\n/, $node->safe_psql('postgres',
		"SELECT provider || ' ' || state || ' p50 ' || coalesce(latency_p50_ms::int::text, '-') FROM destor.provider_status ORDER BY 1"));
}

warm();

my $liar = $on{1};
if (DestorTest::long())
{
	# 1. a liar 70 ms farther than the others, on data shard 1
	DestorTest::set_delay($rig->{stall}[$liar], 70);
	warm();    # its round trip measured: near enough for the healthy path
	FaultProxy::set_faults($faults[$liar]{control}, "flip 100000 GET\n");
	my $log_at = -s $node->logfile;
	my ($named, $all_ok, $reads) = (0, 1, 0);
	for my $i (0 .. 5)
	{
		my ($ok, $dt, $err) = read_at($i * 512 * 1024);
		$all_ok &&= $ok;
		diag($err) unless $ok;
		$reads++;
		note(sprintf('1. read %d: %.2f s', $i, $dt));
	}
	my $log = slurp_file($node->logfile, $log_at);
	my $n_named = () = $log =~ /on provider "d$liar" is corrupt/g;
	ok($all_ok, '1. every read exact');
	note('1. ' . states());
	note("1. liar d$liar named $n_named time(s) in $reads reads; injected flips: " . FaultProxy::injected($faults[$liar]{control}, 'flip'));
	# (under load its first request may be given up as late: found slow, it is
	# then read around, serves no byte that is used, and has nothing to be
	# named for — CI, a41ad7b; the failure this guards against left it up)
	my $liar_state = $node->safe_psql('postgres',
		"SELECT state FROM destor.provider_status WHERE provider = 'd$liar'");
	SKIP:
	{
		skip "d$liar was found slow (state $liar_state): the reads did without it", 1
		  if $n_named == 0 && $liar_state ne 'up';
		cmp_ok($n_named, '>', 0, "1. the liar d$liar (70 ms farther, not distant) is named by the re-reads");
	}
	FaultProxy::set_faults($faults[$liar]{control}, '');
	DestorTest::set_delay($rig->{stall}[$liar], 0);
}

# 2. a liar (data shard 1), a staller (parity shard 5: held 8 s) and an
#    honest provider 60 ms farther (parity shard 4)
my ($staller, $farther) = ($on{5}, $on{4});
DestorTest::set_delay($rig->{stall}[$farther], 60);
warm();
DestorTest::set_delay($rig->{stall}[$staller], 8000);
FaultProxy::set_faults($faults[$liar]{control}, "flip 100000 GET\n");
note('2. ' . states());
for my $i (0 .. 2)
{
	my $log_at = -s $node->logfile;
	my ($ok, $dt, $err) = read_at($i * 1024 * 1024);
	ok($ok, "2. read $i exact") or diag($err);
	my $nm = () = slurp_file($node->logfile, $log_at) =~ /on provider "d$liar" is corrupt/g;
	note(sprintf('2. read %d: %.2f s, liar named %d time(s)', $i, $dt, $nm));
	# (the farther honest one found slow under load is started all the
	# same after bad bytes: it failed here at 7951d28 and 9c1b1f1)
	cmp_ok($dt, '<', 4,
		"2. read $i: not held by the stalled provider d$staller (liar d$liar, honest d$farther 60 ms farther)");
}

# 3. the same, but the farther honest one 2.5 s away: too late for the
#    re-read's grace, a stripe comes up short, and the try with every shard
#    must not wait for the staller while the farther one suffices (it did,
#    unhedged: 8 s), nor end with the liar's answer (11 s)
DestorTest::set_delay($rig->{stall}[$farther], 2500);
for my $i (0 .. 1)
{
	my ($ok, $dt, $err) = read_at(($i + 3) * 512 * 1024);
	ok($ok, "3. read $i exact") or diag($err);
	note(sprintf('3. read %d: %.2f s', $i, $dt));
	cmp_ok($dt, '<', 6.5,
		"3. read $i: not held by the stalled provider d$staller (honest d$farther 2.5 s away)");
}
FaultProxy::set_faults($_->{control}, '') for @faults;
DestorTest::set_delay($_, 0) for @{ $rig->{stall} };
warm();

# 4. a liar (data shard 1), an honest data shard 2 whose first GET of each
#    read fails (503) and the staller: shard 2, failed once, was ranked with
#    the liar and, before it in shard order, after it: the liar's bad answer
#    ended the try with every shard, and the last try waited 8 s (10.4-12.8
#    s a read).  5. the staller on data shard 0, the liar on data shard 1,
#    data shard 2 cut short once, without retries: the try with every shard
#    started the k best ranked, the staller among them, and asked shard 2
#    only when the staller was a second late (3 s a read).  Both from the
#    break review of d552a0d.
for my $case ([ 4, 1, 2, 5, "503 1 GET\n", '' ],
	[ 5, 1, 2, 0, "truncate 1 GET\n", 'SET destor.max_retries = 0; ' ])
{
	my ($part, $l, $o, $st, $fault, $pre) = @$case;
	my ($liar, $once, $staller) = ($on{$l}, $on{$o}, $on{$st});
	DestorTest::set_delay($rig->{stall}[$staller], 8000);
	FaultProxy::set_faults($faults[$liar]{control}, "flip 100000 GET\n");
	for my $i (0 .. 1)
	{
		FaultProxy::set_faults($faults[$once]{control}, $fault);
		my ($ok, $dt, $err) = read_at(($i * 2 + 1) * 512 * 1024, $pre);
		ok($ok, "$part. read $i exact") or diag($err);
		note(sprintf('%d. read %d: %.2f s', $part, $i, $dt));
		cmp_ok($dt, '<', 5,
			"$part. read $i: not held by the stalled provider d$staller (liar d$liar, d$once failing once)");
	}
	FaultProxy::set_faults($_->{control}, '') for @faults;
	DestorTest::set_delay($_, 0) for @{ $rig->{stall} };
	warm() if $part == 4;
}

$node->stop;
done_testing();
