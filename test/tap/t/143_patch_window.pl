# A window whose healthy fetch loses data shards is patched (issue 11): the
# lost shards' part is rebuilt from as many parity shards and the data
# shards already fetched, instead of the whole window being read again from
# k shards.  File providers, shard files deleted under a 4+2 pool: exports
# stay exact with one and with two data shards gone, read less than the
# whole first window again would, and with three shards gone the read fails
# cleanly, the server still up.  Bytes counted as the providers sent them,
# read-aheads dropped included (since c8928a2).  The export reads the blob
# once, with one data shard gone as with two: before, with one gone it read
# 1.5 times the blob (the second window's read-ahead, fetched before the
# first window's shard was found missing, was dropped and the window read
# degraded; and a file pool's patch read both parity shards, where one was
# needed), and 1.17 times with two gone.  Reading the first window again
# instead of patching it read 2.0 and 1.5 times.
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
	my $bytes = $read->() - $before;
	note(sprintf('export to %s read %.3f times the blob', $out, $bytes / $size));
	return (DestorTest::sha256_file($out), $bytes);
};

my ($got, $bytes) = $export->("$base/out0.bin");
is($got, $sum, 'a healthy export is exact');

drop_shard(0);
($got, $bytes) = $export->("$base/out1.bin");
is($got, $sum, 'with data shard 0 gone: exact');
cmp_ok($bytes, '<', 1.1 * $size, 'and the blob read once: windows patched, the read-ahead kept');

drop_shard(1);
($got, $bytes) = $export->("$base/out2.bin");
is($got, $sum, 'with data shards 0 and 1 gone: exact, from both parity shards');
cmp_ok($bytes, '<', 1.1 * $size, 'and the blob read once: windows patched, the read-ahead kept');

drop_shard(4);
my ($rc, $out, $err) = $node->psql('postgres', "SELECT destor.blob_export('$blob', '$base/out3.bin')");
isnt($rc, 0, 'with three shards gone the export fails');
like($err, qr/ERROR/, 'with an error');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'and the server is still up');

# The same over S3 (six s3rver): shard 0's object deleted on its server,
# a 404 like a file gone.  (This read the blob once before the change too:
# on loopback the 404 is back before the next window is asked for.)
my @s3 = DestorTest::start_s3_servers(6, $base);
$node->safe_psql('postgres', DestorTest::providers_sql('spool', 4, 2, @s3));
my $sblob = $node->safe_psql('postgres', "SELECT destor.blob_import('spool', '$file')");
my $sid = $node->safe_psql('postgres', "SELECT destor.blob_id('$sblob')");
(my $shex = $sid) =~ s/-//g;
my ($s0) = $node->safe_psql('postgres',
	"SELECT provider FROM destor.blob_shards WHERE blob_id = '$sid' AND shard_index = 0") =~ /(\d+)$/;
my @sfiles = grep { /\Q$shex\E\.0\._S3rver/ } DestorTest::files_under($s3[ $s0 - 1 ]{dir});
# read times known (while none is, every shard is asked: TAP 107)
$node->safe_psql('postgres', "SELECT destor.blob_export('$sblob', '$base/s3warm.bin')");
is(DestorTest::sha256_file("$base/s3warm.bin"), $sum, 'over S3, healthy: exact');
ok(scalar(@sfiles) >= 1, 'shard 0 is an object on its s3rver');
unlink @sfiles;
my $before = $read->();
$node->safe_psql('postgres', "SELECT destor.blob_export('$sblob', '$base/s3out.bin')");
my $sbytes = $read->() - $before;
note(sprintf('export over S3 with shard 0 gone read %.3f times the blob', $sbytes / $size));
is(DestorTest::sha256_file("$base/s3out.bin"), $sum, 'over S3 with data shard 0 gone: exact');
cmp_ok($sbytes, '<', 1.1 * $size, 'and the blob read once');

DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
