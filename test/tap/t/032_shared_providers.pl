# Two databases sharing providers: a pg_dump of one restored into another
# (same cluster, same s3 servers) reads the original's blobs but borrows
# them: deleting one in the copy removes only the copy's reference, and
# cleanup_orphans in either database takes nothing the other committed.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('shared');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(3, $base);
# no server outlives the test, also when it fails
END { DestorTest::stop_s3($_) for @s3 }
$node->safe_psql('postgres', 'CREATE DATABASE orig');
$node->safe_psql('orig', 'CREATE EXTENSION destor');
$node->safe_psql('orig', DestorTest::providers_sql('archive', 2, 1, @s3));
$node->safe_psql('orig', q{
CREATE TABLE docs (name text PRIMARY KEY, b destor.blob, data bytea);
INSERT INTO docs SELECT 'doc' || i, destor.blob_put('archive', d), d
  FROM generate_series(1, 3) i, LATERAL (SELECT decode(repeat(md5(i::text), 5000), 'hex') AS d) x;
});

my $dump = "$base/orig.sql";
command_ok([ 'pg_dump', '-d', $node->connstr('orig'), '-f', $dump ], 'pg_dump of the original');
$node->safe_psql('postgres', 'CREATE DATABASE copy');
command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('copy'), '-f', $dump ],
	'restored into a second database of the same cluster, same providers');

isnt($node->safe_psql('copy', q{SELECT fdwoptions::text FROM pg_foreign_data_wrapper WHERE fdwname = 'destor_provider'}),
	$node->safe_psql('orig', q{SELECT fdwoptions::text FROM pg_foreign_data_wrapper WHERE fdwname = 'destor_provider'}),
	'the copy has an identity of its own');

my $intact = q{SELECT string_agg(name || '=' || (destor.blob_get(b) = data), ',' ORDER BY name) FROM docs};
my $all = 'doc1=true,doc2=true,doc3=true';
is($node->safe_psql('copy', $intact), $all, 'the copy reads the original\'s blobs');

# a delete in the copy removes the copy's reference only
$node->safe_psql('copy', q{SELECT destor.blob_delete(b) FROM docs WHERE name = 'doc1'; DELETE FROM docs WHERE name = 'doc1'});
is($node->safe_psql('orig', $intact), $all, 'blob_delete in the copy leaves the original\'s blob readable');

# blobs written after the dump, in each database
$node->safe_psql('orig', q{INSERT INTO docs SELECT 'new-orig', destor.blob_put('archive', 'written by orig'), 'written by orig'});
$node->safe_psql('copy', q{INSERT INTO docs SELECT 'new-copy', destor.blob_put('archive', 'written by copy'), 'written by copy'});

# an orphan in the copy's own namespace (its catalog rows lost)
$node->safe_psql('copy', q{
CREATE TABLE lost AS SELECT destor.blob_put('archive', 'orphan of the copy')::uuid AS id;
DELETE FROM destor.shards WHERE object_id = (SELECT id FROM lost);
DELETE FROM destor.blobs WHERE blob_id = (SELECT id FROM lost);
DELETE FROM destor.objects WHERE object_id = (SELECT id FROM lost);
});

is($node->safe_psql('copy', "SELECT destor.cleanup_orphans('archive', '0')"), '3',
	'cleanup_orphans in the copy removes its own orphan (three shards) and nothing else');
is($node->safe_psql('orig', $intact), 'doc1=true,doc2=true,doc3=true,new-orig=true',
	'the original\'s blobs, old and new, survive cleanup_orphans in the copy');
is($node->safe_psql('orig', "SELECT destor.cleanup_orphans('archive', '0')"), '0',
	'cleanup_orphans in the original finds no orphan');
is($node->safe_psql('copy', $intact), 'doc2=true,doc3=true,new-copy=true',
	'the copy\'s blobs survive cleanup_orphans in the original');

# the original still deletes its own blobs for real
my $files = sub { scalar(grep { m{/ds/.*_S3rver_object$} } map { DestorTest::files_under($_->{dir}) } @s3) };
my $before = $files->();
$node->safe_psql('orig', q{SELECT destor.blob_delete(b) FROM docs WHERE name = 'new-orig'; DELETE FROM docs WHERE name = 'new-orig'});
is($files->(), $before - 3, 'a blob the original wrote is removed from the providers when it deletes it');

DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
