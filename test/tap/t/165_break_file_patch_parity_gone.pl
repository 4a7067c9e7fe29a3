# Break review of 82152ba ("on file providers a patch asks only the parity
# it needs").  File pool 4+2, 24 MB blob: data shard 0 gone and the parity
# shard the patch asks first (4) gone too; then 0 and 5 gone; then 0 and 1
# gone with 4 present; exports exact, no error, bytes noted.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Copy qw(move);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('file_patch_parity', cache_size => '0');
my $base = $node->basedir;
my ($sql, @dirs) = DestorTest::file_pool_sql($base, 'fpool', 6, 4, 2);
$node->safe_psql('postgres', $sql);
my $size = 24 * 1024 * 1024;
my $x = DestorTest::import_random_blob($node, 'fpool', $size);
my ($blob, $sum, $hex, %on) = ($x->{blob}, $x->{sum}, $x->{hex}, %{ $x->{on} });
my $file = "$base/in_fpool.bin";
my $n = 0;
sub hide
{
	my ($index) = @_;
	my @f = grep { /\Q$hex\E/ } DestorTest::files_under($dirs[ $on{$index} - 1 ]);
	ok(scalar(@f) >= 1, "shard $index has a file on f$on{$index}");
	my @moved;
	for (@f) { my $to = "$base/hidden_" . $n++; move($_, $to) or die; push @moved, [ $to, $_ ]; }
	return @moved;
}
sub export
{
	my ($what) = @_;
	unlink "$base/out.bin";
	my $r0 = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status');
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT destor.blob_export('$blob', '$base/out.bin')");
	is($rc, 0, "$what: the export succeeds") or diag($err);
	is(DestorTest::sha256_file("$base/out.bin"), $sum, "$what: exact");
	note(sprintf('%s: read %.3f times the blob', $what,
		($node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status') - $r0) / $size));
	($rc, $out, $err) = $node->psql('postgres',
		"SELECT md5(destor.blob_read('$blob', 7000000, 9000000)) = md5(substring(pg_read_binary_file('$file') FROM 7000001 FOR 9000000))");
	is($out, 't', "$what: a read of a middle range is exact") or diag($err);
}

export('healthy');
for my $set ([0, 4], [0, 5], [0, 1], [1, 4], [3, 4])
{
	my @h = map { hide($_) } @$set;
	export("shards @$set gone");
	move($_->[0], $_->[1]) for @h;
}
$node->stop;
done_testing();
