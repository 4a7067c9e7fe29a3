# Break review of the read-ahead of two windows beyond the next
# (r->ahead_more, READ_AHEAD_MORE) and of the median-rate spread plan:
# blobs of sizes around three, four and five windows and at window and
# block boundaries, read every way a caller reads on (blob_export,
# blob_to_lo, blob_verify) and as ranges across the window edges, with
# destor.spread_reads on and off, on a 4+2 and a 3+3 pool.  Every byte
# compared (SHA-256).  Runs with DESTOR_TEST_LONG=1; its uneven-links case
# runs always, as t/171_uneven_links_share.pl.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::SHA;

DestorTest::skip_long();

my $rig = DestorTest::wan_rig('rasizes', 6, delay_ms => 20, mbps => 30,
	more => [ [ 'p33', 3, 3, [ 1, 2, 3, 4, 5, 6 ] ] ]);
my ($node, $base, $wan) = @$rig{qw(node base wan)};

my $M = 1024 * 1024;
my $W = 16 * $M;

# a blob of $size random bytes in $pool: { blob, size, sum, file }
my $nblob = 0;
sub import_blob
{
	my ($pool, $size) = @_;
	my $file = "$base/sz_" . $nblob++ . '.bin';
	DestorTest::write_random_file($file, $size);
	my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('$pool', '$file')");
	return { blob => $blob, size => $size, sum => DestorTest::sha256_file($file), file => $file, pool => $pool };
}

# the SHA-256 of $len bytes at $off of the blob's file
sub file_sha
{
	my ($x, $off, $len) = @_;
	open(my $fh, '<', $x->{file}) or die;
	binmode $fh;
	seek($fh, $off, 0);
	my $got = read($fh, my $buf, $len);
	close $fh;
	die "short read" unless $got == $len;
	return Digest::SHA::sha256_hex($buf);
}

sub export_ok
{
	my ($x, $what, $set) = @_;
	unlink "$base/out.bin";
	my ($rc, $out, $err) = $node->psql('postgres',
		($set // '') . "SELECT destor.blob_export('$x->{blob}', '$base/out.bin')");
	is($rc, 0, "$what: export ok") or diag($err);
	is(DestorTest::sha256_file("$base/out.bin"), $x->{sum}, "$what: export exact");
	is(-s "$base/out.bin", $x->{size}, "$what: export size");
}

sub to_lo_ok
{
	my ($x, $what, $set) = @_;
	my ($rc, $out, $err) = $node->psql('postgres',
		($set // '') . "SELECT destor.blob_to_lo('$x->{blob}') AS o \\gset\n"
		  . "SELECT encode(sha256(lo_get(:o)), 'hex');\nSELECT lo_unlink(:o) \\g /dev/null");
	is($rc, 0, "$what: blob_to_lo ok") or diag($err);
	is((split ' ', $out // '')[0], $x->{sum}, "$what: blob_to_lo exact");
}

sub verify_ok
{
	my ($x, $what, $set) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', ($set // '') . "SELECT destor.blob_verify('$x->{blob}')");
	is($rc, 0, "$what: blob_verify runs") or diag($err);
	is($out, 't', "$what: blob_verify true") or diag($err);
}

my $big = 5 * $W + 65537;
my @sizes = DestorTest::cases([ 3 * $W, 3 * $W + 1, 4 * $W - 1, $big ], [ 3 * $W + 1, $big ]);
my @blobs = map { import_blob('p42', $_) } @sizes;
push @blobs, import_blob('p33', 4 * $W + 1);

for my $x (@blobs)
{
	my $what = "$x->{pool} $x->{size} bytes";
	export_ok($x, "$what, first");
	export_ok($x, "$what, measured") for DestorTest::cases([1], []);
	to_lo_ok($x, $what);
	verify_ok($x, $what);
	export_ok($x, "$what, spread_reads off", 'SET destor.spread_reads = off; ');
	to_lo_ok($x, "$what, spread_reads off", 'SET destor.spread_reads = off; ')
	  for DestorTest::cases([1], []);
}

# ranges across window and block edges, single calls (each its own reader)
my ($x) = grep { $_->{size} == $big } @blobs;
my @ranges = ([ $W - 1, 2 ], [ 3 * $W - 7, 14 ], [ 2 * $W - 65536, 2 * $W + 131072 ],
	[ $x->{size} - 65538, 65538 ], [ $x->{size} - 1, 1 ], [ 4 * $W, $x->{size} - 4 * $W ],
	[ 65535, 3 * $W + 2 ], [ 0, $x->{size} ]);
for my $r (@ranges)
{
	my ($off, $len) = @$r;
	my ($rc, $out, $err) = $node->psql('postgres',
		"SELECT encode(sha256(destor.blob_read('$x->{blob}', $off, $len)), 'hex')");
	is($rc, 0, "blob_read $len at $off ok") or diag($err);
	is($out, file_sha($x, $off, $len), "blob_read $len at $off exact");
}

# a descriptor read on in 3 MiB pieces, then a jump back, a jump ahead,
# reads on from there: every piece compared
{
	my @plan = map { [ undef, 3 * $M ] } 1 .. 9;    # 27 MiB on from 0
	push @plan, [ 5 * $M + 17, 2 * $M ], [ undef, 20 * $M ], [ 4 * $W + 3, 7 * $M ],
	  [ undef, 3 * $M ], [ 3 * $W - 1, 2 ], [ undef, $W ], [ 1, $W ];
	my $pos = 0;
	my @sql = ("BEGIN;", "SELECT destor.blob_open('$x->{blob}') AS fd \\gset");
	my @want;
	for my $p (@plan)
	{
		my ($off, $len) = @$p;
		if (defined $off)
		{
			push @sql, "SELECT destor.blob_seek(:fd, $off, 0) \\g /dev/null";
			$pos = $off;
		}
		$len = $x->{size} - $pos if $pos + $len > $x->{size};
		push @sql, "SELECT encode(sha256(destor.blob_read(:fd, $len)), 'hex');";
		push @want, file_sha($x, $pos, $len);
		$pos += $len;
	}
	push @sql, 'COMMIT;';
	my ($rc, $out, $err) = $node->psql('postgres', join("\n", @sql));
	is($rc, 0, 'descriptor reads with jumps ok') or diag($err);
	my @got = grep { /^[0-9a-f]{64}$/ } split /\n/, $out // '';
	is(scalar(@got), scalar(@want), 'descriptor reads: every piece answered');
	for my $i (0 .. $#want)
	{
		is($got[$i], $want[$i], "descriptor piece $i exact");
	}
}

my $log = slurp_file($node->logfile);
unlike($log, qr/TRAP|server process .* was terminated|PANIC/, 'no crash in the server log');
my @warn = $log =~ /^.*(?:WARNING|ERROR):.*$/mg;
note("server log WARNING/ERROR lines: " . scalar(@warn));
note($_) for @warn[0 .. ($#warn < 20 ? $#warn : 20)];

DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @{ $rig->{s3} };

done_testing();
