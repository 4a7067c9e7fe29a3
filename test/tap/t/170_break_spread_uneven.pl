# Break review of the spread windows: links of very different rates (a
# fast one given a whole window's stripes, wrapping), the shared cache on
# (windows with cached holes), blob_to_lo, and a streaming standby reading.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::SHA;
use IPC::Run;
use Time::HiRes qw(usleep);

my ($node) = DestorTest::start_cluster('spread_uneven', cache_size => '256MB');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);

# the WAN emulator with a rate of its own per provider (MB/s)
my @mbps = (40, 5, 10, 10, 2.5, 20);
my @delay = (10, 30, 20, 20, 25, 15);
my @ports = map { PostgreSQL::Test::Cluster::get_free_port() } @s3;
my $providers = join(', ', map {
	sprintf('{"name": "%s", "listen": %d, "target": %d, "delay_ms": %d, "down_bps": %d, "up_bps": %d}',
		$s3[$_]{name}, $ports[$_], $s3[$_]{port}, $delay[$_], $mbps[$_] * 1e6, 40e6)
} 0 .. $#s3);
open(my $fh, '>', "$base/wan.json") or die;
print $fh qq({"control": "$base/wan_late", "stats": "$base/wan_stats.json", "trace": "$base/wan_trace", "providers": [$providers]}\n);
close $fh;
my $out = '';
my $wan = IPC::Run::start([ 'python3', "$DestorTest::TAPDIR/../bench/wan_proxy.py", "$base/wan.json" ],
	'<', \undef, '>', \$out, '2>', "$base/wan_proxy.log");
for (1 .. 200) { $wan->pump_nb; last if $out =~ /ready/; usleep(50_000); }
die 'no WAN proxy' unless $out =~ /ready/;
my $wanh = { ports => \@ports, trace => "$base/wan_trace", handle => $wan };

my @providers = map { { %{ $s3[$_] }, port => $ports[$_] } } 0 .. $#s3;
my $sql = DestorTest::providers_sql('p42', 4, 2, @providers);
$sql .= "CREATE SERVER p21 FOREIGN DATA WRAPPER destor OPTIONS (providers 's1,s2,s5', data_shards '2', parity_shards '1');\n";
$sql .= "CREATE SERVER p33 FOREIGN DATA WRAPPER destor OPTIONS (providers 's1,s2,s3,s4,s5,s6', data_shards '3', parity_shards '3');\n";
$node->safe_psql('postgres', $sql);
my $seed = $ENV{DESTOR_SPREAD_SEED} // int(rand(1_000_000));
note("seed $seed");
srand($seed);

my $M = 1024 * 1024;
my %blob;
for my $pool (qw(p21 p42 p33))
{
	my $size = 18 * $M + int(rand(20 * $M));
	my $file = "$base/in_$pool.bin";
	DestorTest::write_random_file($file, $size);
	my $b = $node->safe_psql('postgres', "SELECT destor.blob_import('$pool', '$file')");
	$blob{$pool} = { blob => $b, size => $size, sum => DestorTest::sha256_file($file), data => slurp_file($file) };
	my $id = $node->safe_psql('postgres', "SELECT destor.blob_id('$b')");
	note("$pool: " . join(' ', split /\n/, $node->safe_psql('postgres',
		"SELECT shard_index || ':' || provider FROM destor.blob_shards WHERE blob_id = '$id' ORDER BY 1")));
}

sub export
{
	my ($n, $pool, $what) = @_;
	my $x = $blob{$pool};
	unlink "$base/out.bin";
	my $r0 = $n->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status');
	my ($rc, $o, $err) = $n->psql('postgres', "SELECT destor.blob_export('$x->{blob}', '$base/out.bin')");
	is($rc, 0, "$pool $what: export ok") or diag($err);
	is(DestorTest::sha256_file("$base/out.bin"), $x->{sum}, "$pool $what: export exact");
	my $moved = $n->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status') - $r0;
	note(sprintf("%s %s: moved %.3f times the blob", $pool, $what, $moved / $x->{size}));
}
sub read_ok
{
	my ($n, $pool, $what, $off, $len) = @_;
	my $x = $blob{$pool};
	my ($rc, $got, $err) = $n->psql('postgres',
		"SELECT encode(sha256(destor.blob_read('$x->{blob}', $off, $len)), 'hex')");
	is($rc, 0, "$pool $what: read $len at $off ok") or diag($err);
	is($got, Digest::SHA::sha256_hex(substr($x->{data}, $off, $len)), "$pool $what: read $len at $off exact");
}

$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
for my $pool (qw(p21 p42 p33))
{
	export($node, $pool, 'first');
	my $t0 = DestorTest::wan_mark($wanh);
	export($node, $pool, 'measured');
	my %sent;
	$sent{ $_->{provider} } += $_->{bytes} // 0 for DestorTest::wan_requests_since($wanh, $t0, 1);
	note("$pool measured: sent " . join(', ', map { "$_ $sent{$_}" } sort keys %sent));
	my $x = $blob{$pool};
	# small reads fill the cache here and there
	for (1 .. 12)
	{
		my $len = 1 + int(rand(600_000));
		my $off = int(rand($x->{size} - $len));
		read_ok($node, $pool, 'small', $off, $len);
	}
	# then big reads over the cached holes
	for (1 .. 4)
	{
		my $len = 3 * $M + int(rand(30 * $M));
		$len = $x->{size} if $len > $x->{size};
		my $off = int(rand($x->{size} - $len + 1));
		read_ok($node, $pool, 'bulk over cached holes', $off, $len);
	}
	export($node, $pool, 'cache warm');
	$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
	my $lo = $node->safe_psql('postgres', "SELECT destor.blob_to_lo('$x->{blob}')");
	my ($rc, $o, $err) = $node->psql('postgres', "SELECT encode(sha256(lo_get($lo)), 'hex')");
	is($rc, 0, "$pool blob_to_lo ok") or diag($err);
	is($o, Digest::SHA::sha256_hex($x->{data}), "$pool blob_to_lo exact");
}

# a standby
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
for my $pool (qw(p21 p42 p33))
{
	export($standby, $pool, 'standby first');
	export($standby, $pool, 'standby measured');
	my $x = $blob{$pool};
	for (1 .. 3)
	{
		my $len = 3 * $M + int(rand(20 * $M));
		$len = $x->{size} if $len > $x->{size};
		my $off = int(rand($x->{size} - $len + 1));
		read_ok($standby, $pool, 'standby bulk', $off, $len);
	}
}
$standby->stop;
$wan->kill_kill;
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
