# Break review of 82152ba (a read-ahead kept when this window's failed data
# shard failed with not_found, patched from parity).  Over six s3rver
# behind a WAN (20 ms each way: the next window's read-ahead is out before
# the 404 is back), a 4+2 blob of 48 MB exported with: data shards 0 and 1
# gone; data shard 0 and parity shard 4 gone; data shard 0 gone and the
# provider of parity shard 4 stopped.  Every export exact, no error.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Copy qw(move);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('kept_ahead_s3', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $wan = DestorTest::start_wan_proxy($base, \@s3, delay_ms => 20, mbps => 50);
my @providers = map { { %{ $s3[$_] }, port => $wan->{ports}[$_] } } 0 .. $#s3;
$node->safe_psql('postgres', DestorTest::providers_sql('spool', 4, 2, @providers));
my $size = 48 * 1024 * 1024;
my $file = "$base/input.bin";
DestorTest::write_random_file($file, $size);
my $sum = DestorTest::sha256_file($file);
my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('spool', '$file')");
my $id = $node->safe_psql('postgres', "SELECT destor.blob_id('$blob')");
(my $hex = $id) =~ s/-//g;
my %on = map { my ($i, $p) = split /\|/; ($i => ($p =~ /(\d+)$/)[0]) } split /\n/, $node->safe_psql('postgres',
	"SELECT shard_index, provider FROM destor.blob_shards WHERE blob_id = '$id'");

sub hide
{
	my ($index) = @_;
	my @f = grep { /\Q$hex\E\.$index\._S3rver/ } DestorTest::files_under($s3[ $on{$index} - 1 ]{dir});
	ok(scalar(@f) >= 1, "shard $index is an object on s$on{$index}");
	move($_, "$base/hidden_" . ($_ =~ s{.*/}{}r)) or die for @f;
	return map { [ "$base/hidden_" . ($_ =~ s{.*/}{}r), $_ ] } @f;
}
sub export
{
	my ($what) = @_;
	unlink "$base/out.bin";
	$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT destor.blob_export('$blob', '$base/out.bin')");
	is($rc, 0, "$what: the export succeeds") or diag($err);
	is(DestorTest::sha256_file("$base/out.bin"), $sum, "$what: exact");
	note(sprintf('%s: read %.3f times the blob', $what,
		$node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status') / $size));
}

export('healthy, read times learnt');
export('healthy');
my @h = (hide(0), hide(1));
export('data shards 0 and 1 gone');
move($_->[0], $_->[1]) for @h;
export('restored');
@h = (hide(0), hide(4));
export('data shard 0 and parity shard 4 gone');
move($_->[0], $_->[1]) for @h;
@h = hide(0);
DestorTest::stop_s3($s3[ $on{4} - 1 ]);
export('data shard 0 gone, the provider of parity 4 stopped');
$node->restart;
export('the same, a new backend');

DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
