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
DestorTest::skip_long();
use Digest::SHA;

# the WAN emulator with a rate and a delay of its own per provider
my $rig = DestorTest::wan_rig('spread_uneven', 6, cache_size => '256MB',
	rates => [ 40, 5, 10, 10, 2.5, 20 ], delays => [ 10, 30, 20, 20, 25, 15 ], up_mbps => 40,
	more => [ [ 'p21', 2, 1, [ 1, 2, 5 ] ], [ 'p33', 3, 3, [ 1, 2, 3, 4, 5, 6 ] ] ]);
my ($node, $base, $wanh) = @$rig{qw(node base wan)};
my @s3 = @{ $rig->{s3} };

my $M = 1024 * 1024;
my %blob;
for my $pool (qw(p21 p42 p33))
{
	$blob{$pool} = DestorTest::import_random_blob($node, $pool, 18 * $M + int(rand(20 * $M)));
	note("$pool: " . join(' ', map { "$_:s$blob{$pool}{on}{$_}" } sort keys %{ $blob{$pool}{on} }));
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
	for (1 .. (DestorTest::cases([12], [3]))[0])
	{
		my $len = 1 + int(rand(600_000));
		my $off = int(rand($x->{size} - $len));
		read_ok($node, $pool, 'small', $off, $len);
	}
	# then big reads over the cached holes
	for (1 .. (DestorTest::cases([4], [2]))[0])
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
for my $pool (DestorTest::cases([qw(p21 p42 p33)], ['p33']))
{
	export($standby, $pool, 'standby first');
	export($standby, $pool, 'standby measured');
	my $x = $blob{$pool};
	for (1 .. (DestorTest::cases([3], [1]))[0])
	{
		my $len = 3 * $M + int(rand(20 * $M));
		$len = $x->{size} if $len > $x->{size};
		my $off = int(rand($x->{size} - $len + 1));
		read_ok($standby, $pool, 'standby bulk', $off, $len);
	}
}
$standby->stop;
DestorTest::stop_wan_proxy($wanh);
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
