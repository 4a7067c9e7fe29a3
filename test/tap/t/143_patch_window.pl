# A window whose healthy fetch loses data shards is patched (issue 11): the
# lost shards' part is rebuilt from as many parity shards and the data
# shards already fetched, instead of the whole window being read again from
# k shards.  File providers, shard files deleted under a 4+2 pool: exports
# stay exact with one and with two data shards gone, read about one
# window's worth more than the blob (not twice it), and with three shards
# gone the read fails cleanly, the server still up.  (With one shard gone,
# reading the first window again took 1.75 times the blob, patching it 1.25:
# the second window, its shard now known bad, is read degraded either way.)
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# no cache: every read goes to the providers
my ($node) = DestorTest::start_cluster('patch', cache_size => '0');
my $base = $node->basedir;
my ($sql, @dirs) = DestorTest::file_pool_sql($base, 'fpool', 6, 4, 2);
$node->safe_psql('postgres', $sql);

my $size = 24 * 1024 * 1024;
my $file = "$base/input.bin";
DestorTest::write_random_file($file, $size);
my $sum = DestorTest::sha256_file($file);
my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('fpool', '$file')");
my $id = $node->safe_psql('postgres', "SELECT destor.blob_id('$blob')");
(my $hex = $id) =~ s/-//g;

# the providers holding data shards 0 and 1, and parity shard 4
my %on = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
	"SELECT shard_index, provider FROM destor.blob_shards WHERE blob_id = '$id'");
sub drop_shard
{
	my ($index) = @_;
	my ($n) = $on{$index} =~ /^f(\d+)$/;
	my @files = grep { /\Q$hex\E/ } DestorTest::files_under($dirs[ $n - 1 ]);
	ok(scalar(@files) >= 1, "shard $index has a file on $on{$index}");
	unlink @files;
}

my $read = sub {
	return $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status');
};
my $export = sub {
	my ($out) = @_;
	my $before = $read->();
	$node->safe_psql('postgres', "SELECT destor.blob_export('$blob', '$out')");
	return (DestorTest::sha256_file($out), $read->() - $before);
};

my ($got, $bytes) = $export->("$base/out0.bin");
is($got, $sum, 'a healthy export is exact');

drop_shard(0);
($got, $bytes) = $export->("$base/out1.bin");
is($got, $sum, 'with data shard 0 gone: exact');
cmp_ok($bytes, '<', 1.5 * $size, 'and the window patched, not read twice');

drop_shard(1);
($got, $bytes) = $export->("$base/out2.bin");
is($got, $sum, 'with data shards 0 and 1 gone: exact, from both parity shards');
cmp_ok($bytes, '<', 1.5 * $size, 'and the window patched, not read twice');

drop_shard(4);
my ($rc, $out, $err) = $node->psql('postgres', "SELECT destor.blob_export('$blob', '$base/out3.bin')");
isnt($rc, 0, 'with three shards gone the export fails');
like($err, qr/ERROR/, 'with an error');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'and the server is still up');

$node->stop;
done_testing();
