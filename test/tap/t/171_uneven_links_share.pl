# The median-rate plan's band (balance_rates), from the break review of the
# read-ahead of two windows beyond the next (t/171_break_readahead_sizes.pl,
# which runs the rest of that review with DESTOR_TEST_LONG=1).  Six s3rver
# behind the WAN emulator, five links alike and one slower; a blob exported
# three times, the third measured at the proxy.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $M = 1024 * 1024;

# The median-rate plan (balance_rates): five links at 6 MB/s and one at
# 3.6 MB/s, 0.6 of the others (near enough not to be "far").  Shared by
# rate, the slow link serves 0.6 of what a fast one serves and every link
# is busy as long; counted as 0.8 (as it was, 0.6 divided by the band's
# low end 0.75), it got a third more than it can move in that time and
# every window waited for it — the very "share too large holds the whole
# window" the band was to avoid.
{
	my @rates = (6, 6, 6, 6, 6, 3.6);
	my $urig = DestorTest::wan_rig('rauneven', 6, delay_ms => 20, rates => \@rates, up_mbps => 40);
	my ($un, $ub, $uw) = @$urig{qw(node base wan)};
	my $file = "$ub/u.bin";
	DestorTest::write_random_file($file, 48 * $M + 12345);
	my $sum = DestorTest::sha256_file($file);
	my $blob = $un->safe_psql('postgres', "SELECT destor.blob_import('p42', '$file')");
	my $uexport = sub {
		my ($what) = @_;
		unlink "$ub/out.bin";
		my ($rc, $o, $err) = $un->psql('postgres', "SELECT destor.blob_export('$blob', '$ub/out.bin')");
		is($rc, 0, "uneven links, $what: export ok") or diag($err);
		is(DestorTest::sha256_file("$ub/out.bin"), $sum, "uneven links, $what: export exact");
	};
	$uexport->('first');
	$uexport->('second');
	my $t0 = DestorTest::wan_mark($uw);
	$uexport->('measured');
	my %sent;
	for my $r (DestorTest::wan_requests_since($uw, $t0, 1))
	{
		my ($n) = $r->{provider} =~ /(\d+)$/;
		$sent{$n} += $r->{bytes} // 0;
	}
	# the time each link needs for its part: bytes over its rate
	my @need = map { ($sent{$_} // 0) / ($rates[ $_ - 1 ] * 1e6) } 1 .. 6;
	my @fast = sort { $a <=> $b } @need[ 0 .. 4 ];
	my $median = $fast[2];
	note(sprintf('uneven links: sent %s; seconds of transfer each: %s',
		join(', ', map { "s$_ " . ($sent{$_} // 0) } 1 .. 6), join(', ', map { sprintf('%.2f', $_) } @need)));
	cmp_ok($need[5], '>', 0.3 * $median, 'the slower link serves part of the spread export');
	cmp_ok($need[5], '<=', 1.12 * $median,
		'the slow link is not given more than it moves while the fast ones move theirs');
	DestorTest::stop_wan_proxy($uw);
	$un->stop;
	DestorTest::stop_s3($_) for @{ $urig->{s3} };
}
done_testing();
