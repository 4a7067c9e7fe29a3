# Temporary destor tables: dropped at the end of their session or by DISCARD
# TEMP, no event trigger fires, so their binding, segments and objects stayed
# behind forever.  cleanup_orphans() must forget such tables and remove
# their shards, and never touch a table that still exists (another
# session's temporary table, a permanent table) or one a transaction still
# running is dropping or writing.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('lost_tables', conf => "autovacuum = off\n");
my $base = $node->basedir;
my ($sql, @dirs) = DestorTest::file_pool_sql($base, 'archive', 3, 2, 1);
$node->safe_psql('postgres', $sql);
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE keep (id int, v text) SERVER archive OPTIONS (row_group_rows '1000', segment_rows '1000');
INSERT INTO keep SELECT i, md5(i::text) FROM generate_series(1, 3000) i;
DELETE FROM keep WHERE id % 10 = 0;
});
my $keep_sum = q{SELECT count(*) || '/' || sum(id) || '/' || md5(string_agg(v, ',' ORDER BY id)) FROM keep};
my $keep_before = $node->safe_psql('postgres', $keep_sum);

# a temporary destor table with rows in two segments and a deletion,
# created in the given session; returns its table_id
my $temp_sql = q{
CREATE FOREIGN TABLE pg_temp.scratch (id int, v text) SERVER archive OPTIONS (row_group_rows '1000', segment_rows '100000');
INSERT INTO scratch SELECT i, repeat(md5(i::text), 4) FROM generate_series(1, 1500) i;
INSERT INTO scratch SELECT i, 'second' FROM generate_series(1, 500) i;
DELETE FROM scratch WHERE id = 7;
SELECT substr(o, 10) FROM pg_foreign_table ft, unnest(ft.ftoptions) o
 WHERE ft.ftrelid = 'scratch'::regclass AND o LIKE 'table_id=%';
};

# shard files on the providers of a table's objects, and its catalog rows
sub object_hexes
{
	my ($tid) = @_;
	return split /\n/, $node->safe_psql('postgres',
		"SELECT replace(object_id::text, '-', '') FROM destor.segments WHERE table_id = '$tid' ORDER BY 1");
}

sub shard_files
{
	my (@hex) = @_;
	my %want = map { $_ => 1 } @hex;
	return scalar(grep { m{/([0-9a-f]{32})\.\d+$} && $want{$1} } map { DestorTest::files_under($_) } @dirs);
}

sub catalog_rows
{
	my ($tid, @hex) = @_;
	my $ids = join(',', map { "'$_'::uuid" } @hex) || 'NULL::uuid';
	return $node->safe_psql('postgres', qq{
SELECT (SELECT count(*) FROM destor.tables WHERE table_id = '$tid') || '/' ||
       (SELECT count(*) FROM destor.segments WHERE table_id = '$tid') || '/' ||
       (SELECT count(*) FROM destor.deletions WHERE table_id = '$tid') || '/' ||
       (SELECT count(*) FROM destor.objects WHERE object_id IN ($ids)) || '/' ||
       (SELECT count(*) FROM destor.shards WHERE object_id IN ($ids))});
}

# wait until the backend that held a temporary table has dropped it (a
# session's temporary tables go while it exits, after the client left)
sub wait_relation_gone
{
	my ($tid) = @_;
	$node->poll_query_until('postgres', qq{
SELECT NOT EXISTS (SELECT FROM pg_foreign_table ft, unnest(ft.ftoptions) o WHERE o = 'table_id=$tid')})
	  or die "the temporary table of $tid was not dropped";
}

# --- 1. a temporary table dropped at the end of its session
my $tid1 = $node->safe_psql('postgres', $temp_sql);
like($tid1, qr/^[0-9a-f-]{36}$/, 'a temporary destor table was created and filled');
my @hex1 = object_hexes($tid1);
is(scalar(@hex1), 2, 'its rows are in two segments');
is(catalog_rows($tid1, @hex1), '1/2/2/2/6', 'it has a binding, two segments, two deletion bitmaps, two objects of three shards');
is(shard_files(@hex1), 6, 'its six shards are on the providers');
wait_relation_gone($tid1);

is($node->safe_psql('postgres', "SELECT destor.cleanup_orphans('archive', '0')"), '6',
	'cleanup_orphans removes the six shards of the table its session dropped');
is(catalog_rows($tid1, @hex1), '0/0/0/0/0', 'its binding, segments, deletions, objects and shards rows are gone');
is(shard_files(@hex1), 0, 'its shard files are gone from the providers');

# --- 2. a temporary table of a session that lives on: not lost
my $live = $node->background_psql('postgres');
my $tid_live = $live->query_safe($temp_sql);
my @hex_live = object_hexes($tid_live);

# --- 3. a temporary table whose DISCARD TEMP is not committed yet
my $discarding = $node->background_psql('postgres');
my $tid_pending = $discarding->query_safe($temp_sql);
my @hex_pending = object_hexes($tid_pending);
$discarding->query_safe('BEGIN; DISCARD TEMP;');

# --- 4. a temporary table created by a transaction still running
my $creating = $node->background_psql('postgres');
$creating->query_safe('BEGIN');
my $tid_new = $creating->query_safe($temp_sql);

is($node->safe_psql('postgres', "SELECT destor.cleanup_orphans('archive', '0')"), '0',
	'cleanup_orphans finds nothing to remove while those tables live or may live on');
is(catalog_rows($tid_live, @hex_live), '1/2/2/2/6', 'another session\'s live temporary table is untouched');
is($live->query_safe(q{SELECT count(*) || '/' || sum(id) FROM scratch}), '1998/1250986',
	'and reads back whole');
is(catalog_rows($tid_pending, @hex_pending), '1/2/2/2/6',
	'a temporary table whose DISCARD TEMP has not committed is untouched');
$discarding->query_safe('ROLLBACK');
is($discarding->query_safe(q{SELECT count(*) || '/' || sum(id) FROM scratch}), '1998/1250986',
	'after ROLLBACK it reads back whole');
$creating->query_safe('COMMIT');
is($creating->query_safe(q{SELECT count(*) || '/' || sum(id) FROM scratch}), '1998/1250986',
	'a temporary table filled by a transaction running during the cleanup reads back whole after COMMIT');
my @hex_new = object_hexes($tid_new);
is(shard_files(@hex_new), 6, 'its six shards are on the providers');
is($node->safe_psql('postgres', $keep_sum), $keep_before, 'the permanent table is untouched');

# --- 5. DISCARD TEMP, committed, in a session that goes on
$discarding->query_safe('DISCARD TEMP');
is(shard_files(@hex_pending), 6, 'DISCARD TEMP left the shards on the providers');
is($node->safe_psql('postgres', "SELECT destor.cleanup_orphans('archive', '1 day')"), '0',
	'within the grace period the discarded table stays');
is(catalog_rows($tid_pending, @hex_pending), '1/2/2/2/6', 'its rows are all still there');
is($node->safe_psql('postgres', "SELECT destor.cleanup_orphans('archive', '0')"), '6',
	'after it, cleanup_orphans removes the discarded table\'s six shards');
is(catalog_rows($tid_pending, @hex_pending), '0/0/0/0/0', 'its catalog rows are gone');
is(shard_files(@hex_pending), 0, 'its shard files are gone');
is(catalog_rows($tid_live, @hex_live), '1/2/2/2/6', 'the live temporary table is still untouched');

# --- 6. the sessions end: their tables go too; the permanent one stays
$live->quit;
$creating->quit;
$discarding->quit;
wait_relation_gone($_) for ($tid_live, $tid_new);
is($node->safe_psql('postgres', "SELECT destor.cleanup_orphans('archive', '0')"), '12',
	'once their sessions ended, the other two temporary tables\' shards go');
is(catalog_rows($tid_live, @hex_live) . ' ' . catalog_rows($tid_new, @hex_new), '0/0/0/0/0 0/0/0/0/0',
	'and their rows');
is(shard_files(@hex_live, @hex_new), 0, 'and their shard files');
is($node->safe_psql('postgres', $keep_sum), $keep_before, 'the permanent table still reads back exactly');
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.tables}), '1', 'only its binding is left');
my $keep_objects = $node->safe_psql('postgres', q{SELECT count(*) * 3 FROM destor.segments});
is(scalar(grep { m{/ds/} } map { DestorTest::files_under($_) } @dirs), $keep_objects,
	'the providers hold exactly the permanent table\'s shards');
is($node->safe_psql('postgres', "SELECT destor.cleanup_orphans('archive', '0')"), '0',
	'a second cleanup finds nothing more');

$node->stop;
done_testing();
