# Blobs attacked by other sessions (issue 15): what one session's descriptor
# or read may rely on while another session deletes, revokes or changes the
# blob.  A 2+1 file pool, small blobs, no sleeps.
#
# - A read descriptor (blob_open) is valid to the end of its transaction, as
#   a large-object descriptor is: another session deleting the blob and
#   committing must not pull the shards from under it (the descriptor holds
#   a snapshot, as lo_open(INV_READ) does), so later reads still return the
#   blob's bytes; once the reader's transaction ends the shards go at the
#   next cleanup and the blob is gone for everyone.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('blobbreaker', conf => "autovacuum = off\n");
my ($sql, @dirs) = DestorTest::file_pool_sql($node->basedir, 'pool', 3, 2, 1);
$node->safe_psql('postgres', $sql);

# shard files only (the metadata log lives under meta/)
sub shard_files
{
	return scalar(grep { m{/ds/} } map { DestorTest::files_under($_) } @dirs);
}

# --- a read descriptor outlives a concurrent delete -------------------------------------
# 3 MB of incompressible bytes: the reads after the delete go to the
# providers (the first read does not buffer the whole blob).
$node->safe_psql('postgres', q{
CREATE TABLE docs (b destor.blob);
INSERT INTO docs SELECT destor.blob_put('pool',
  (SELECT string_agg(decode(md5(i::text), 'hex'), '' ORDER BY i) FROM generate_series(1, 196608) i));
});
my $want = $node->safe_psql('postgres',
	'SELECT md5(destor.blob_read(b, 2000000, 1000)) FROM docs');
my $files0 = shard_files();

my $r = $node->background_psql('postgres');
$r->query_safe('BEGIN');    # READ COMMITTED: no snapshot between statements
my $fd = $r->query_safe('SELECT destor.blob_open(b) FROM docs');
is($r->query_safe("SELECT length(destor.blob_read($fd, 10))"), '10', 'the descriptor reads');

$node->safe_psql('postgres', 'SELECT destor.blob_delete(b) FROM docs');
is(shard_files(), $files0,
	'a delete committed while a read descriptor is open keeps the shards');
is($r->query_safe("SELECT destor.blob_seek($fd, 2000000, 0)"), '2000000', 'seek');
my ($got, $err) = ('', '');
eval { $got = $r->query_safe("SELECT md5(destor.blob_read($fd, 1000))"); 1 } or $err = $@;
is($err, '', 'reading through the descriptor after the concurrent delete does not fail');
is($got, $want, 'and returns the blob\'s bytes');
$r->query_safe('COMMIT');
$r->quit;

like(($node->psql('postgres', 'SELECT destor.blob_open(b) FROM docs'))[2], qr/does not exist/,
	'after the reader\'s commit the blob is gone');
$node->safe_psql('postgres', q{SELECT destor.cleanup_orphans('pool', '0')});
is(shard_files(), $files0 - 3, 'and its shards go at the next cleanup');

$node->stop;
done_testing();
