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
# - The same for a small (packed) blob whose pack another session compacts
#   away after deleting the pack's other blob: the descriptor still reads
#   the blob's own bytes, never a neighbour's.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('blobbreaker', conf => "autovacuum = off\n", blob_pack_threshold => '64kB');
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

# --- a read descriptor on a packed blob outlives a concurrent compaction ------------------
$node->safe_psql('postgres', q{
CREATE TABLE small (n text, b destor.blob);
INSERT INTO small VALUES ('x', destor.blob_put('pool', 'XXXXXXXXXXXXXXXXXXXX')),
                         ('y', destor.blob_put('pool', repeat('Y', 1000)::bytea));
});
is($node->safe_psql('postgres', 'SELECT count(DISTINCT pack_id) FROM destor.blobs b JOIN small s ON s.b::uuid = b.blob_id'),
	'1', 'both small blobs share one pack');
$r = $node->background_psql('postgres');
$r->query_safe('BEGIN');
$fd = $r->query_safe(q{SELECT destor.blob_open(b) FROM small WHERE n = 'x'});
$node->safe_psql('postgres', q{SELECT destor.blob_delete(b) FROM small WHERE n = 'y'});
is($node->safe_psql('postgres', q{SELECT destor.compact_packs('pool')}), '1',
	'the pack is compacted while the descriptor is open');
($got, $err) = ('', '');
eval {
	$got = $r->query_safe("SELECT encode(destor.blob_read($fd, 5), 'escape') || encode(destor.blob_read($fd, 100), 'escape')");
	1;
} or $err = $@;
is($err, '', 'reading the packed blob after the compaction does not fail');
is($got, 'X' x 20, 'and returns exactly its own bytes');
$r->query_safe('COMMIT');
$r->quit;

$node->stop;
done_testing();
