# Spread reads with shards gone and cut short: a 3+3 pool, a table of many
# row groups and a blob.  Every object on s2 deleted (404: split_patch on
# multi-run batches), then every object on s4 cut to half its length too
# (short bodies).  Scans of column subsets against a heap copy, exports
# byte for byte, bytes moved noted.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Copy qw(move copy);

# Runs with DESTOR_TEST_LONG=1: make test keeps its 20-minute budget; there
# 170_break_spread_faults reads around shards gone on a 3+3 pool and
# 169_balanced_windows patches spread windows around a data shard gone.
DestorTest::skip_long();

my $rig = DestorTest::wan_rig('spread_gone', 6, delay_ms => 20, mbps => 10, pool => [ 'p33', 3, 3 ]);
my ($node, $base, $wan) = @$rig{qw(node base wan)};
my @s3 = @{ $rig->{s3} };
# one segment of 80 row groups
my $rows = 200000;
my $rg = $rows / 80;
$node->safe_psql('postgres', qq{
CREATE FOREIGN TABLE t (id int, a text, b bigint, c text)
  SERVER p33 OPTIONS (segment_rows '$rows', row_group_rows '$rg');
INSERT INTO t
  SELECT i, repeat(md5(i::text), 1 + i % 4), i * 7, md5((i * 3)::text) || md5((i*5)::text)
    FROM generate_series(1, $rows) i;
CREATE TABLE h AS SELECT * FROM t;
});
my $M = 1024 * 1024;
my $size = 30 * $M + 4321;
DestorTest::write_random_file("$base/in.bin", $size);
my $sum = DestorTest::sha256_file("$base/in.bin");
my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('p33', '$base/in.bin')");
my @q = (
	q{SELECT count(*), sum(id), md5(string_agg(a || c, ',' ORDER BY id)) FROM %s},
	q{SELECT count(*), md5(string_agg(c, ',' ORDER BY id)) FROM %s},
	q{SELECT count(*), sum(b) FROM %s WHERE id % 3 = 0},
);
my @expect = map { $node->safe_psql('postgres', sprintf($_, 'h')) } @q;
my $serial = 'SET max_parallel_workers_per_gather = 0; ';
sub check
{
	my ($what) = @_;
	my $r0 = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status');
	for my $i (0 .. $#q)
	{
		my $q0 = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status');
		my ($rc, $out, $err) = $node->psql('postgres', $serial . sprintf($q[$i], 't'));
		note("$what q$i: moved " . ($node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status') - $q0));
		is($rc, 0, "$what q$i ok") or diag($err);
		is($out, $expect[$i], "$what q$i: the heap's answer");
	}
	unlink "$base/out.bin";
	my $e0 = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status');
	my ($rc, $o, $err) = $node->psql('postgres', "SELECT destor.blob_export('$blob', '$base/out.bin')");
	is($rc, 0, "$what: export ok") or diag($err);
	is(DestorTest::sha256_file("$base/out.bin"), $sum, "$what: export exact");
	my $moved = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status') - $r0;
	note("$what export: moved " . ($node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status') - $e0) . " of $size");
	note("$what: moved $moved");
}
check('first');
check('measured');
my @objs2 = grep { /_S3rver_object$/ } DestorTest::files_under($s3[1]{dir});
note(scalar(@objs2) . " objects on s2");
move($_, "$_.away") or die for @objs2;
check('s2 objects gone');
check('s2 objects gone, again') for DestorTest::cases([1], []);
my @objs4 = grep { /_S3rver_object$/ } DestorTest::files_under($s3[3]{dir});
for my $f (@objs4)
{
	copy($f, "$f.saved") or die;
	truncate($f, int((-s $f) / 2)) or die;
}
check('s2 gone, s4 cut short');
$node->restart;
check('s2 gone, s4 cut short, restarted');
move("$_.away", $_) for @objs2;
move("$_.saved", $_) for @objs4;
check('restored');
DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
