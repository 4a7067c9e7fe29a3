# Hedged writes on a thin uplink (issue 11, item 5): a provider whose link
# takes our bytes slowly but steadily no longer sets the pace of every write.
# Once the write quorum (5 of 6) is stored, the last upload is waited for as
# long again as the quorum took (at least a second) and then given up, its
# shard recorded missing for repair, although it was still sending — or at
# once, when its pace shows that it cannot end by then.  Six
# real s3rver processes; s1 sits behind a proxy that passes requests at
# 512 kB/s, so its 6 MiB shard of a 24 MiB blob would take twelve seconds.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('thin_uplink', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $proxy = DestorTest::start_thin_proxy($s3[0]->{port}, 512 * 1024, upstream => 1);
my @providers = ({ %{ $s3[0] }, port => $proxy->{port}, name => 's1t' }, @s3[1 .. 5]);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @providers));

# a small write fits in the second the tail allows: every shard stored
my $small = $node->safe_psql('postgres',
	"SELECT destor.blob_put('archive', convert_to(repeat('thin ', 2000), 'UTF8'))");
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.blob_shards WHERE blob_id = '$small' AND state <> 'ok'"),
	'0', 'a small write waits for the thin provider and stores every shard');

my $file = "$base/input.bin";
DestorTest::write_random_file($file, 24 * 1024 * 1024);
open(my $fh, '<', $file) or die;
binmode $fh;
my $content = do { local $/; <$fh> };
close $fh;

my ($rc, $blob, $err) = $node->psql('postgres', "SELECT destor.blob_put('archive', pg_read_binary_file('$file'))");
is($rc, 0, 'a large write finishes') or diag($err);
like($err, qr/a shard of a new object could not be written to provider "s1t"/,
	'with a warning naming the thin provider');
# given up once its pace showed that it could not end in the tail, not at
# the tail's end: a thin link's part held every write a second longer
like($err, qr/provider "s1t": given up after \d+ ms, once 5 other shards were stored, its bytes going out too slowly to end in time/,
	'given up for its pace, before the tail ran out');
is($node->safe_psql('postgres',
		"SELECT string_agg(provider || ' ' || state, ',') FROM destor.blob_shards WHERE blob_id = '$blob' AND state <> 'ok'"),
	's1t missing', 'the thin provider\'s shard, given up while it was still sending, is recorded missing');
is($node->safe_psql('postgres', "SELECT md5(destor.blob_get('$blob'))"), md5_hex($content),
	'the blob reads back exactly from the other shards');

# A link slower than the others, but fast enough to end within the tail,
# is waited for: judged by its pace, it is not given up (8 MB/s: its 6 MiB
# shard takes most of a second).
my $near = DestorTest::start_thin_proxy($s3[0]->{port}, 8 * 1024 * 1024, upstream => 1);
$node->safe_psql('postgres',
	DestorTest::providers_sql('near', 4, 2, { %{ $s3[0] }, port => $near->{port}, name => 's1n' },
		map { { %$_, name => "$_->{name}n" } } @s3[1 .. 5]));
(my $nrc, my $nblob, $err) = $node->psql('postgres', "SELECT destor.blob_put('near', pg_read_binary_file('$file'))");
is($nrc, 0, 'a large write to a pool with a slower link finishes') or diag($err);
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.blob_shards WHERE blob_id = '$nblob' AND state <> 'ok'"),
	'0', 'the slower link that ends within the tail stores its shard') or diag($err);
is($node->safe_psql('postgres', "SELECT md5(destor.blob_get('$nblob'))"), md5_hex($content),
	'that blob reads back exactly');
DestorTest::stop_delay_proxy($near);

# repair writes the shard at the thin link's pace, off the write's path
$node->safe_psql('postgres', "SET statement_timeout = '120s'; SELECT destor.repair('archive')");
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.shards WHERE state <> 'ok'}),
	'0', 'after repair every shard is ok');
DestorTest::stop_s3($s3[1]);
DestorTest::stop_s3($s3[2]);
is($node->safe_psql('postgres', "SELECT md5(destor.blob_get('$blob'))"), md5_hex($content),
	'with two other providers down, the repaired shard on the thin provider is read');


DestorTest::stop_delay_proxy($proxy);
DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
