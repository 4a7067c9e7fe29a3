# Break review of 64b62a4/61e8c98 (bulk windows spread over every provider
# by rate).  Eight s3rver behind the WAN emulator; pools 2+1, 3+3, 6+2, 5+1
# over them; blobs of awkward sizes (a window exactly, one byte over, a tiny
# last stripe, a last window just big enough to be spread); each exported
# twice (the first measures the links) and read at random offsets and
# lengths spanning windows, every byte compared.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
DestorTest::skip_long();
use Digest::SHA;

my $rig = DestorTest::wan_rig('spread_pools', 8, delay_ms => 20, mbps => 20, pool => [ 'p62', 6, 2 ],
	more => [ [ 'p21', 2, 1, [ 1, 2, 3 ] ], [ 'p33', 3, 3, [ 3 .. 8 ] ], [ 'p51', 5, 1, [ 1, 2, 4, 5, 7, 8 ] ] ]);
my ($node, $base, $wan) = @$rig{qw(node base wan)};
my @s3 = @{ $rig->{s3} };

my $M = 1024 * 1024;
my $B = 65536;
my %cases = (
	p21 => [ 16 * $M, 16 * $M + 1, 33 * $M - 17 ],
	p33 => [ 32 * $M, 16 * $M + 3 * $B * 6 + 5, 20 * $M + int(rand($M)) ],
	p62 => [ 16 * $M + 6 * $B * 16 + 1, 17 * $M + 12345, 48 * $M - 1 ],
	p51 => [ 16 * $M - 1, 21 * $M + int(rand(3 * $M)) ],
);
for my $pool (sort keys %cases)
{
	# (by default one size per pool, a different one each run)
	my @sizes = @{ $cases{$pool} };
	for my $size (DestorTest::cases(\@sizes, [ $sizes[ int(rand(@sizes)) ] ]))
	{
		my $file = "$base/in_$pool.bin";
		DestorTest::write_random_file($file, $size);
		my $sum = DestorTest::sha256_file($file);
		my $data = slurp_file($file);
		my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('$pool', '$file')");
		for my $pass (1 .. 2)
		{
			unlink "$base/out.bin";
			my ($rc, $out, $err) = $node->psql('postgres', "SELECT destor.blob_export('$blob', '$base/out.bin')");
			is($rc, 0, "$pool size $size export $pass ok") or diag($err);
			is(DestorTest::sha256_file("$base/out.bin"), $sum, "$pool size $size export $pass exact");
		}
		my $t0 = DestorTest::wan_mark($wan);
		for my $i (1 .. (DestorTest::cases([4], [3]))[0])
		{
			my $len = 1 + int(rand($size > 20 * $M ? 20 * $M : $size));
			$len = $size if $len > $size;
			my $off = int(rand($size - $len + 1));
			if ($i == 1) { $off = 0; $len = $size; }
			my ($rc, $got, $err) = $node->psql('postgres',
				"SELECT encode(sha256(destor.blob_read('$blob', $off, $len)), 'hex')");
			is($rc, 0, "$pool size $size read $len at $off ok") or diag($err);
			is($got, Digest::SHA::sha256_hex(substr($data, $off, $len)), "$pool size $size read $len at $off exact");
		}
		my %sent;
		for my $r (DestorTest::wan_requests_since($wan, $t0, 1))
		{
			$sent{ $r->{provider} } += $r->{bytes} // 0;
		}
		note("$pool size $size: sent " . join(', ', map { "$_ $sent{$_}" } sort keys %sent));
		my $to = $node->safe_psql('postgres', "SELECT destor.blob_verify('$blob')");
		note("verify: $to");
	}
}
DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
