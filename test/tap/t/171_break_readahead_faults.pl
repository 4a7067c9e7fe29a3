# Break review of the read-ahead of two windows beyond the next
# (r->ahead_more): providers failing while up to three windows of an
# export are in flight.  Six s3rver behind the WAN emulator, a 4+2 and a
# 3+3 pool over them; a blob of five windows and a bit on each.
#  - one provider, then two, stopped at several points of an export;
#  - three providers of the 4+2 pool stopped mid-export (fewer than k
#    left): an ERROR, then, providers back, the same session exports again;
#  - a data shard's bytes flipped on its provider mid-export (a liar while
#    windows ahead are in flight): the export is exact or fails, never
#    wrong;
#  - requests held late; two sessions exporting the same blob at once.
# Every byte compared (SHA-256).  Runs with DESTOR_TEST_LONG=1 (make test
# keeps its time budget; provider failures during reads run always in
# 031, 107, 140 and 170_break_spread_faults).
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Copy qw(copy);
use Time::HiRes qw(time usleep);

DestorTest::skip_long();

my $rig = DestorTest::wan_rig('rafaults', 6, delay_ms => 20, mbps => 12,
	more => [ [ 'p33', 3, 3, [ 1, 2, 3, 4, 5, 6 ] ] ]);
my ($node, $base, $wan) = @$rig{qw(node base wan)};
my @s3 = @{ $rig->{s3} };

my $M = 1024 * 1024;
my $W = 16 * $M;
my %blob = map { my $b = DestorTest::import_random_blob($node, $_, 5 * $W + 65537); delete $b->{data}; ($_ => $b) } qw(p42 p33);

my $bg = $node->background_psql('postgres', on_error_stop => 0);
sub sq { return DestorTest::bg_query($bg, @_); }

sub export_exact
{
	my ($pool, $what) = @_;
	my $x = $blob{$pool};
	unlink "$base/out.bin";
	my $t0 = time;
	my ($out, $ret, $err) = sq("SELECT destor.blob_export('$x->{blob}', '$base/out.bin')");
	my $dt = time - $t0;
	is($ret, 0, "$pool $what: export ok") or diag($err);
	is(DestorTest::sha256_file("$base/out.bin"), $x->{sum}, "$pool $what: export exact");
	return $dt;
}

# an export in the background session while $during->() runs after
# $delay s: (rc-ish, stderr)
sub export_during
{
	my ($pool, $delay, $during, $path) = @_;
	my $x = $blob{$pool};
	unlink $path;
	$bg->{stderr} = '';
	$bg->{stdin} .= "SELECT destor.blob_export('$x->{blob}', '$path');\n\\echo '__export_done'\n\\warn '__export_done'\n";
	$bg->{run}->pump_nb;
	usleep(int($delay * 1e6));
	$during->();
	$bg->{run}->pump() until $bg->{stdout} =~ /__export_done/ && $bg->{stderr} =~ /__export_done/;
	my $err = $bg->{stderr};
	$err =~ s/__export_done\s*//;
	$bg->{stdout} = '';
	$bg->{stderr} = '';
	return $err;
}

my %t;
for my $pool (qw(p42 p33))
{
	export_exact($pool, 'first');
	$t{$pool} = export_exact($pool, 'measured');
	note(sprintf('%s: an export takes %.2f s', $pool, $t{$pool}));
}

# 1. one provider, then two, stopped mid-export
my %stop_cases = (p42 => [ [ 0.5, 2 ] ], p33 => [ [ 0.15, 1 ] ]);
for my $pool (qw(p42 p33))
{
	my $x = $blob{$pool};
	for my $c (DestorTest::cases([ [ 0.15, 1 ], [ 0.5, 2 ], [ 0.85, 1 ] ], $stop_cases{$pool}))
	{
		my ($frac, $n) = @$c;
		{
			my @victims = map { $x->{on}{$_} } (int(rand(2)), 2 + int(rand(2)))[ 0 .. $n - 1 ];
			my $err = export_during($pool, $t{$pool} * $frac,
				sub { DestorTest::stop_s3($s3[ $_ - 1 ]) for @victims }, "$base/mid.bin");
			is($err, '', "$pool: s@victims stopped at $frac of an export: no error") or diag($err);
			is(DestorTest::sha256_file("$base/mid.bin"), $x->{sum}, "$pool: s@victims stopped at $frac: exact");
			export_exact($pool, "s@victims down");
			DestorTest::start_s3($s3[ $_ - 1 ]) for @victims;
			export_exact($pool, "s@victims back");
		}
	}
}

# 2. fewer than k left mid-export: an ERROR; providers back, the same
#    session exports again
{
	my $x = $blob{p42};
	my @victims = map { $x->{on}{$_} } (0, 1, 4);
	my $err = export_during('p42', $t{p42} * 0.4,
		sub { DestorTest::stop_s3($s3[ $_ - 1 ]) for @victims }, "$base/mid.bin");
	like($err, qr/ERROR/, "p42: s@victims stopped mid-export: an ERROR");
	note("error: $err");
	DestorTest::start_s3($s3[ $_ - 1 ]) for @victims;
	# the providers are marked down for a while: wait until a read works
	my $ok = 0;
	for (1 .. 40)
	{
		my ($out, $ret) = sq("SELECT length(destor.blob_read('$x->{blob}', 0, 10))");
		if ($ret == 0) { $ok = 1; last }
		usleep(500_000);
	}
	ok($ok, 'p42 readable again');
	export_exact('p42', 'after fewer than k mid-export, same session');
	my ($o, $r, $e) = sq("SELECT destor.blob_to_lo('$x->{blob}')");
	is($r, 0, 'blob_to_lo in the same session') or diag($e);
	my ($sum) = sq("SELECT encode(sha256(lo_get($o)), 'hex')");
	is($sum, $x->{sum}, 'blob_to_lo in the same session exact');
	sq("SELECT lo_unlink($o)");
}

# 3. a data shard's bytes flipped on its provider mid-export
for my $pool (qw(p42 p33))
{
	my $x = $blob{$pool};
	for my $frac (DestorTest::cases([ 0.2, 0.6 ], [ $pool eq 'p42' ? 0.2 : 0.6 ]))
	{
		my $d = int(rand(2));
		my $sv = $x->{on}{$d};
		my @f = grep { /\Q$x->{hex}\E\.$d\._S3rver_object$/ } DestorTest::files_under($s3[ $sv - 1 ]{dir});
		is(scalar(@f), 1, "$pool shard $d is one object on s$sv");
		copy($f[0], "$base/saved") or die;
		my $size = -s $f[0];
		my $flip = sub {
			open(my $fh, '+<', $f[0]) or die "$f[0]: $!";
			binmode $fh;
			for (my $at = int(rand(16384)); $at < $size; $at += 16384)
			{
				seek($fh, $at, 0);
				read($fh, my $b, 1);
				seek($fh, $at, 0);
				print $fh chr(ord($b) ^ 0x21);
			}
			close $fh;
		};
		my $err = export_during($pool, $t{$pool} * $frac, $flip, "$base/mid.bin");
		if ($err eq '')
		{
			is(DestorTest::sha256_file("$base/mid.bin"), $x->{sum}, "$pool shard $d lying from $frac of an export: exact");
		}
		else
		{
			fail("$pool shard $d lying from $frac of an export: $err");
		}
		export_exact($pool, "shard $d lying");
		copy("$base/saved", $f[0]) or die;
		export_exact($pool, "shard $d good again");
	}
}

# 4. requests held late while windows are ahead
{
	open(my $fh, '>', "$base/wan_late") or die;
	print $fh "0.25 800\n";
	close $fh;
	export_exact($_, 'a quarter of requests late') for qw(p42 p33);
	open($fh, '>', "$base/wan_late") or die;
	print $fh "0 0\n";
	close $fh;
}

# 5. two sessions exporting the same blob at once, twice
for my $pool (DestorTest::cases([qw(p42 p33)], ['p42']))
{
	my $x = $blob{$pool};
	my $other = $node->background_psql('postgres', on_error_stop => 0);
	unlink "$base/o1.bin", "$base/o2.bin";
	$other->{stdin} .= "SELECT destor.blob_export('$x->{blob}', '$base/o2.bin');\n\\echo '__o_done'\n";
	$other->{run}->pump_nb;
	my $err = export_during($pool, 0.2, sub { }, "$base/o1.bin");
	$other->{run}->pump() until $other->{stdout} =~ /__o_done/;
	is($err, '', "$pool: concurrent export 1 ok");
	is(DestorTest::sha256_file("$base/o1.bin"), $x->{sum}, "$pool: concurrent export 1 exact");
	is(DestorTest::sha256_file("$base/o2.bin"), $x->{sum}, "$pool: concurrent export 2 exact");
	$other->quit;
}

$bg->quit;
my $log = slurp_file($node->logfile);
unlike($log, qr/TRAP|was terminated by signal|PANIC/, 'no crash in the server log');
my @warn = $log =~ /^.*(?:WARNING|ERROR):.*$/mg;
note("server log WARNING/ERROR lines: " . scalar(@warn));
note($_) for @warn[0 .. ($#warn < 60 ? $#warn : 60)];

DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
