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
use Digest::SHA;

my ($node) = DestorTest::start_cluster('spread_pools', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(8, $base);
my $wan = DestorTest::start_wan_proxy($base, \@s3, delay_ms => 20, mbps => 20);
my @providers = map { { %{ $s3[$_] }, port => $wan->{ports}[$_] } } 0 .. $#s3;
my $sql = DestorTest::providers_sql('p62', 6, 2, @providers);
$sql .= "CREATE SERVER p21 FOREIGN DATA WRAPPER destor OPTIONS (providers 's1,s2,s3', data_shards '2', parity_shards '1');\n";
$sql .= "CREATE SERVER p33 FOREIGN DATA WRAPPER destor OPTIONS (providers 's3,s4,s5,s6,s7,s8', data_shards '3', parity_shards '3');\n";
$sql .= "CREATE SERVER p51 FOREIGN DATA WRAPPER destor OPTIONS (providers 's1,s2,s4,s5,s7,s8', data_shards '5', parity_shards '1');\n";
$node->safe_psql('postgres', $sql);

my $seed = $ENV{DESTOR_SPREAD_SEED} // int(rand(1_000_000));
note("seed $seed");
srand($seed);

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
	for my $size (@{ $cases{$pool} })
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
		for my $i (1 .. 4)
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
