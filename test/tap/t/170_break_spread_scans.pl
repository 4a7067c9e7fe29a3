# Break review of the spread windows: scans (multi-range batches spread by
# rate, multi_prepare_runs with a StripeSplit over several runs).  Six
# s3rver behind the WAN emulator, a 3+3 pool; a table of several columns
# of different widths and many row groups, so that a scan of some columns
# reads runs with gaps.  Scans of column subsets, filtered, parallel, two
# at once, a cursor closed mid-scan; then with every object on one provider
# lying (bytes flipped) and another provider stopped.  Every result against
# a heap copy.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Runs with DESTOR_TEST_LONG=1: make test keeps its 20-minute budget; there
# 169_balanced_windows spreads a scan's batches with a liar and a provider
# stopped, and 170_break_spread_faults attacks spread reads with faults.
DestorTest::skip_long();

my $rig = DestorTest::wan_rig('spread_scans', 6, delay_ms => 20, mbps => 10, pool => [ 'p33', 3, 3 ]);
my ($node, $base, $wan) = @$rig{qw(node base wan)};
my @s3 = @{ $rig->{s3} };
# two segments of 50 row groups each (half the rows unless DESTOR_TEST_LONG)
my $rows = (DestorTest::cases([300000], [150000]))[0];
my ($seg, $rg) = ($rows / 2, $rows / 100);
$node->safe_psql('postgres', qq{
CREATE FOREIGN TABLE t (id int, a text, b bigint, c text, d double precision)
  SERVER p33 OPTIONS (segment_rows '$seg', row_group_rows '$rg');
INSERT INTO t
  SELECT i, repeat(md5(i::text), 1 + i % 5), i * 7, md5((i * 3)::text) || md5((i*5)::text), i / 3.0
    FROM generate_series(1, $rows) i;
CREATE TABLE h AS SELECT * FROM t;
});
my ($lo, $hi) = (int($rows * 0.133), int($rows * 0.767));
my @q = (
	q{SELECT count(*), sum(id), md5(string_agg(a || c, ',' ORDER BY id)) FROM %s},
	q{SELECT count(*), md5(string_agg(a, ',' ORDER BY id)) FROM %s},
	qq{SELECT count(*), md5(string_agg(c || b, ',' ORDER BY id)) FROM %s WHERE id BETWEEN $lo AND $hi},
);
my @expect = map { $node->safe_psql('postgres', sprintf($_, 'h')) } @q;
my $serial = 'SET max_parallel_workers_per_gather = 0; ';
sub check
{
	my ($what, $par) = @_;
	for my $i (0 .. $#q)
	{
		my ($rc, $out, $err) = $node->psql('postgres', ($par ? '' : $serial) . sprintf($q[$i], 't'));
		is($rc, 0, "$what q$i ok") or diag($err);
		is($out, $expect[$i], "$what q$i: the heap's answer");
	}
}
check('first (measuring)', 0);
my $r0 = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status');
my $t0 = DestorTest::wan_mark($wan);
check('measured', 0);
my $moved = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status') - $r0;
my %sent;
$sent{ $_->{provider} } += $_->{bytes} // 0 for DestorTest::wan_requests_since($wan, $t0, 1);
note("measured: moved $moved; sent " . join(', ', map { "$_ $sent{$_}" } sort keys %sent));
check('parallel', 1);

# two scans at once, and cursors closed mid-scan between
{
	my @bg = map { $node->background_psql('postgres', on_error_stop => 0) } 1 .. 2;
	for my $b (@bg)
	{
		$b->query_until(qr/go/, "\\echo go\n" . $serial . sprintf($q[0], 't') . ";\n\\echo end\n");
	}
	for my $b (@bg)
	{
		my $out = $b->query_until(qr/end/, '');
		like($out, qr/\Q$expect[0]\E/, 'a scan beside another: the heap\'s answer');
		$b->quit;
	}
	for my $n (DestorTest::cases([ 1, 5000, 60000, 170000 ], [ int($rows * 0.57) ]))
	{
		my ($rc, $out, $err) = $node->psql('postgres', qq{
BEGIN;
DECLARE c NO SCROLL CURSOR FOR SELECT id, a, c FROM t;
FETCH $n FROM c \\g /dev/null
CLOSE c;
DECLARE c2 NO SCROLL CURSOR FOR SELECT count(*), md5(string_agg(a, ',' ORDER BY id)) FROM t;
FETCH ALL FROM c2;
COMMIT;});
		is($rc, 0, "cursor closed after $n rows ok") or diag($err);
		like($out, qr/\Q$expect[1]\E/, "cursor closed after $n rows, then a scan: the heap's answer");
	}
}

# every object on s2 lying, s5 stopped
my $flipped = 0;
for my $f (grep { /_S3rver_object$/ } DestorTest::files_under($s3[1]{dir}))
{
	my $sz = -s $f;
	next if $sz < 4096;
	open(my $fh, '+<', $f) or die;
	binmode $fh;
	for (my $at = 1000; $at < $sz; $at += 40000)
	{
		seek($fh, $at, 0);
		read($fh, my $c, 1);
		seek($fh, $at, 0);
		print $fh chr(ord($c) ^ 0x21);
	}
	close $fh;
	$flipped++;
}
note("flipped bytes in $flipped objects on s2");
check('s2 lying', 0);
DestorTest::stop_s3($s3[4]);
check('s2 lying, s5 stopped', 0);
$node->restart;
check('after restart', 0);

DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
