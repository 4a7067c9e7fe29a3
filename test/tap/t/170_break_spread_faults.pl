# Break review of the spread windows: faults during spread reads.  Six
# s3rver behind the WAN emulator, a 4+2 and a 3+3 pool over them.
#  - a fifth of requests held 1.5 s (the hedge gives them up: split_patch
#    with cancelled requests), exports and random reads exact, how much moved;
#  - on 3+3, three shards gone (two data, one parity: exactly k left),
#    exports and reads exact;
#  - a provider stopped in the middle of an export.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::SHA;
use File::Copy qw(move copy);
use Time::HiRes qw(usleep);

my $rig = DestorTest::wan_rig('spread_faults', 6, delay_ms => 20, mbps => 10,
	more => [ [ 'p33', 3, 3, [ 1, 2, 3, 4, 5, 6 ] ] ]);
my ($node, $base, $wan) = @$rig{qw(node base wan)};
my @s3 = @{ $rig->{s3} };

my $M = 1024 * 1024;
my %blob = map { ($_ => DestorTest::import_random_blob($node, $_, 24 * $M + int(rand(8 * $M)))) } qw(p42 p33);

sub export
{
	my ($pool, $what) = @_;
	my $x = $blob{$pool};
	unlink "$base/out.bin";
	my $r0 = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status');
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT destor.blob_export('$x->{blob}', '$base/out.bin')");
	is($rc, 0, "$pool $what: export ok") or diag($err);
	is(DestorTest::sha256_file("$base/out.bin"), $x->{sum}, "$pool $what: export exact");
	my $moved = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status') - $r0;
	note(sprintf("%s %s: moved %.3f times the blob", $pool, $what, $moved / $x->{size}));
	return $moved / $x->{size};
}
sub reads
{
	my ($pool, $what, $n) = @_;
	my $x = $blob{$pool};
	for (1 .. $n)
	{
		my $len = 2 * $M + int(rand(18 * $M));
		$len = $x->{size} if $len > $x->{size};
		my $off = int(rand($x->{size} - $len + 1));
		my ($rc, $got, $err) = $node->psql('postgres',
			"SELECT encode(sha256(destor.blob_read('$x->{blob}', $off, $len)), 'hex')");
		is($rc, 0, "$pool $what: read $len at $off ok") or diag($err);
		is($got, Digest::SHA::sha256_hex(substr($x->{data}, $off, $len)), "$pool $what: read $len at $off exact");
	}
}
sub late
{
	my ($s) = @_;
	open(my $fh, '>', "$base/wan_late") or die;
	print $fh "$s\n";
	close $fh;
}
sub hide
{
	my ($pool, $index) = @_;
	my $x = $blob{$pool};
	my @f = grep { /\Q$x->{hex}\E\.$index\._S3rver/ } DestorTest::files_under($s3[ $x->{on}{$index} - 1 ]{dir});
	ok(scalar(@f) >= 1, "$pool shard $index is an object on s$x->{on}{$index}");
	move($_, "$base/hidden_" . ($_ =~ s{.*/}{}r)) or die for @f;
	return map { [ "$base/hidden_" . ($_ =~ s{.*/}{}r), $_ ] } @f;
}

for my $pool (qw(p42 p33))
{
	export($pool, 'first');
	export($pool, 'measured');
}

# 1. a fifth of requests held 1.5 s
late('0.2 1500');
for my $pool (qw(p42 p33))
{
	my $f = export($pool, 'late requests');
	cmp_ok($f, '<', 2.0, "$pool late requests: not much more than the blob moved");
	reads($pool, 'late requests', 2);
}
late('0 0');

# 2. exactly k shards left on 3+3
my @h = (hide('p33', 0), hide('p33', 1), hide('p33', 3));
my $f = export('p33', 'data 0, 1, parity 3 gone');
# (under load a request of one of the k left may be given up as slow and
# asked again: 1.84 times the blob in one CI run)
cmp_ok($f, '<', 2.0, 'k left: not much more than the blob moved');
reads('p33', 'three gone', 3);
export('p33', 'three gone again') for DestorTest::cases([1], []);
move($_->[0], $_->[1]) for @h;
export('p33', 'restored');

# 3. a provider stopped in the middle of an export (p42: parity 5's)
{
	my $x = $blob{'p42'};
	my $victim = $x->{on}{1};
	unlink "$base/out.bin";
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_until(qr/started/, "\\echo started\nSELECT destor.blob_export('$x->{blob}', '$base/out.bin');\n\\echo done\n");
	usleep(700_000);
	DestorTest::stop_s3($s3[ $victim - 1 ]);
	my $ok = eval { $bg->query_until(qr/done/, ''); 1 };
	$bg->quit;
	is(DestorTest::sha256_file("$base/out.bin"), $x->{sum}, "p42 data 1's provider s$victim stopped mid-export: exact");
	export('p42', "s$victim stopped");
	reads('p42', "s$victim stopped", 2);
	export('p33', "s$victim stopped");
	DestorTest::start_s3($s3[ $victim - 1 ]);
}

DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
