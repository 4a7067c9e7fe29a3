# A read whose window has blocks missing from the cache followed by cached
# ones returns every byte right.  The reader once opened the last missing
# block of a compressed object (stored raw: its trailing flag byte) in place
# and wrote that flag byte over the first byte of the next, already copied,
# cached block: blob_get returned one byte as 0 at every such boundary.
# Six file providers, a 4+2 pool, an 8 MiB shared cache.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('cachedtail', cache_size => '16MB');
my $base = $node->basedir;
my @dirs = map { "$base/p$_" } 1 .. 6;
mkdir $_ for @dirs;
$node->safe_psql('postgres', join("\n",
	(map { "CREATE SERVER f$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs[$_ - 1]');" } 1 .. 6),
	"CREATE SERVER archive FOREIGN DATA WRAPPER destor OPTIONS (providers 'f1,f2,f3,f4,f5,f6', data_shards '4', parity_shards '2');"));

my $file = "$base/random.bin";
DestorTest::write_random_file($file, 8 * 1024 * 1024);
my $src = slurp_file($file);
my $src_hex = unpack('H*', $src);

$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
$node->safe_psql('postgres', "CREATE TABLE b AS SELECT destor.blob_import('archive', '$file') AS b");

# hex of a whole blob, compared without printing 16 MB on failure
sub same_as_source
{
	my ($sql, $expected, $name) = @_;
	my $got = $node->safe_psql('postgres', $sql);
	$got =~ s/^\\x//;
	if ($got eq $expected)
	{
		pass($name);
		return;
	}
	my $i = 0;
	$i++ while $i < length($got) && substr($got, $i, 1) eq substr($expected, $i, 1);
	fail($name);
	diag(sprintf('first difference at byte %d (lengths %d, %d)', $i / 2, length($got) / 2,
		length($expected) / 2));
}

# the reproduction of the bug: the last 1 MiB cached, then the whole blob
$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
$node->safe_psql('postgres', 'SELECT length(destor.blob_read(b, 7340032, 1048576)) FROM b');
same_as_source('SELECT destor.blob_get(b) FROM b', $src_hex,
	'blob_get after a cached tail returns every byte (byte 7340032 included)');

# cached islands in the middle: several missing-then-cached boundaries in
# one window, for the single-threaded and the parallel opening of blocks
$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
for my $blk (3, 17, 18, 40, 90, 91, 92, 126)
{
	$node->safe_psql('postgres', 'SELECT length(destor.blob_read(b, ' . $blk * 65536 . ', 65536)) FROM b');
}
same_as_source('SELECT destor.blob_get(b) FROM b', $src_hex,
	'blob_get with cached islands returns every byte');

# a range read that ends inside the window and starts before cached blocks
$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
$node->safe_psql('postgres', 'SELECT length(destor.blob_read(b, 655360, 65536)) FROM b');
same_as_source('SELECT destor.blob_read(b, 100, 1048576) FROM b',
	substr($src_hex, 200, 2 * 1048576), 'blob_read across a cached block returns every byte');

# export goes through the same reader
$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
$node->safe_psql('postgres', 'SELECT length(destor.blob_read(b, 7340032, 1048576)) FROM b');
$node->safe_psql('postgres', "SELECT destor.blob_export(b, '$base/out.bin') FROM b");
is(DestorTest::sha256_file("$base/out.bin"), DestorTest::sha256_file($file),
	'blob_export after a cached tail writes the file exactly');

done_testing();
