# cleanup_orphans and transactions still running: shards written by a
# transaction held open longer than the grace period are not orphans (its
# COMMIT must not succeed over nothing), while real orphans still go.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('orphans');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(3, $base);
# no server outlives the test, also when it fails
END { DestorTest::stop_s3($_) for @s3 }
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 2, 1, @s3));
$node->safe_psql('postgres', q{
CREATE TABLE docs (name text, b destor.blob);
CREATE FUNCTION noise(n int, seed int) RETURNS bytea LANGUAGE sql AS $$
  SELECT substring(decode(string_agg(md5((i + seed * 1000003)::text), '' ORDER BY i), 'hex') FROM 1 FOR n)
    FROM generate_series(0, n / 16) i $$;
CREATE TABLE src AS SELECT noise(300000, 1) AS data;
});

sub shard_count
{
	return scalar(grep { m{/ds/.*_S3rver_object$} } map { DestorTest::files_under($_->{dir}) } @s3);
}

# a real orphan: a committed blob whose catalog rows are gone (as after a
# crash between upload and commit)
$node->safe_psql('postgres', q{
CREATE TABLE lost AS SELECT destor.blob_put('archive', 'orphan me')::uuid AS id;
DELETE FROM destor.shards WHERE object_id = (SELECT id FROM lost);
DELETE FROM destor.blobs WHERE blob_id = (SELECT id FROM lost);
DELETE FROM destor.objects WHERE object_id = (SELECT id FROM lost);
});
my $orphans = shard_count();
is($orphans, 3, 'the orphan has three shards on the providers');

# a writer that stays open past the grace period
my $writer = $node->background_psql('postgres');
$writer->query_safe('BEGIN');
$writer->query_safe(q{INSERT INTO docs SELECT 'long', destor.blob_put('archive', data) FROM src});
sleep 3;
is($node->safe_psql('postgres', "SELECT destor.cleanup_orphans('archive', '1 second')"), '0',
	'cleanup_orphans leaves the shards of a transaction still running, older than the grace period');
is(shard_count(), $orphans + 3, 'its shards are all still on the providers');
$writer->query_safe('COMMIT');
is($node->safe_psql('postgres', q{SELECT destor.blob_get(b) = data FROM docs, src WHERE name = 'long'}),
	't', 'the transaction commits and its blob reads back whole');

# the writer is gone: the real orphan is taken, committed data is not
is($node->safe_psql('postgres', "SELECT destor.cleanup_orphans('archive', '0')"), '3',
	'once no writer runs, cleanup_orphans removes exactly the orphan\'s three shards');
is($node->safe_psql('postgres', q{SELECT destor.blob_get(b) = data FROM docs, src WHERE name = 'long'}),
	't', 'the committed blob still reads back after cleanup');

# a writer that aborts: its leftovers are garbage, not protected forever
$writer->query_safe('BEGIN');
$writer->query_safe(q{SELECT destor.blob_put('archive', 'rolled back')});
$writer->query_safe('ROLLBACK');
is($node->safe_psql('postgres', "SELECT destor.cleanup_orphans('archive', '0')"), '0',
	'a rolled-back writer left nothing behind');
is(shard_count(), 3, 'only the committed blob\'s shards remain');

# under REPEATABLE READ, objects committed after the snapshot would look orphaned
my ($ret, $out, $err) = $node->psql('postgres',
	"BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT destor.cleanup_orphans('archive', '0'); COMMIT");
like($err, qr/must run in a READ COMMITTED transaction/, 'cleanup_orphans refuses an older snapshot');

$writer->quit;
DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
