# destor.repair() against real s3rver providers: a provider that comes back
# empty (its disk replaced) gets every shard it held rebuilt — large ones
# through multipart uploads — byte for byte; two other providers can then be
# lost and everything still reads.  A provider that is down is reported as
# unreachable and left alone.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Path qw(remove_tree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('repair', conf => "destor.provider_down_interval = '1s'\n");
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @s3));

# a 40 MiB blob (10 MiB shards: more than one 8 MiB upload part) and a table
my $file = "$base/big.bin";
DestorTest::write_random_file($file, 40 * 1024 * 1024);
my $sha = DestorTest::sha256_file($file);
$node->safe_psql('postgres', qq{
CREATE TABLE docs AS SELECT destor.blob_import('archive', '$file') AS b;
CREATE FOREIGN TABLE t (id int, s text) SERVER archive OPTIONS (segment_rows '20000');
INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 50000) i;
});
my $tsum = q{SELECT count(*), sum(id), md5(string_agg(s, '' ORDER BY id)) FROM t};
my $texpected = $node->safe_psql('postgres', $tsum);
my $nobjects = $node->safe_psql('postgres', 'SELECT count(*) FROM destor.objects');
is($node->safe_psql('postgres', 'SELECT count(*) FROM destor.repair()'), '0', 'healthy: nothing to report');

# s2 loses its disk: stopped, emptied, started again with an empty bucket
my %files_before = map { $_ => -s $_ } grep { m{/ds/} && /\._S3rver_object$/ } DestorTest::files_under($s3[1]->{dir});
DestorTest::stop_s3($s3[1]);
remove_tree($s3[1]->{dir});
DestorTest::start_s3($s3[1]);
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE problem = 'missing' AND repaired), count(*)
	FROM destor.repair()}), "$nobjects|$nobjects", 'every object had its s2 shard rebuilt');
my %files_after = map { $_ => -s $_ } grep { m{/ds/} && /\._S3rver_object$/ } DestorTest::files_under($s3[1]->{dir});
is_deeply(\%files_after, \%files_before, 's2 holds the same shard objects, of the same sizes, again');
is($node->safe_psql('postgres', 'SELECT count(*) FROM destor.repair(verify => true)'), '0',
	'a verifying pass finds every chunk of every shard good');

# with two other providers gone, the rebuilt shards carry the data
DestorTest::stop_s3($s3[3]);
DestorTest::stop_s3($s3[4]);
$node->safe_psql('postgres', "SELECT destor.blob_export(b, '$base/out.bin') FROM docs");
is(DestorTest::sha256_file("$base/out.bin"), $sha, 'the blob reads back byte-identical without s4 and s5');
is($node->safe_psql('postgres', $tsum), $texpected, 'the table reads the same rows');

# providers down: reported as unreachable, nothing recorded against them
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT provider || ':' || problem || ':' || repaired, ',')
	FROM destor.repair()}), 's4:unreachable:false,s5:unreachable:false', 'down providers are reported as unreachable');
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.shards WHERE state <> 'ok'}), '0',
	'and their shards are not marked bad');
DestorTest::start_s3($s3[3]);
DestorTest::start_s3($s3[4]);
sleep 1;
is($node->safe_psql('postgres', 'SELECT count(*) FROM destor.repair()'), '0', 'back up: nothing to repair');

DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
