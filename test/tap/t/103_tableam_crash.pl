# Issue 14, stage 2: an index entry of a table USING destor never names a row
# that does not exist after a crash, and a physical replica reads the same
# rows through the same indexes.  Index entries name (segment number, row);
# the number comes from the relation's metapage, taken before the entries
# are written and WAL-logged with them.  A transaction that inserted and
# indexed rows dies in a crash: its entries stay in the index, its segment
# never became visible, so they are skipped, and the segment numbers given
# after recovery are new ones, so the stale entries never name a new row.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('tableam_crash', conf => "autovacuum = off\n");
my ($pool_sql, @dirs) = DestorTest::file_pool_sql($node->basedir, 'archive', 3, 2, 1);
$node->safe_psql('postgres', $pool_sql);
$node->safe_psql('postgres', q{
SET destor.default_pool = 'archive';
CREATE TABLE t (id int PRIMARY KEY, v text) USING destor;
CREATE INDEX t_v ON t (v);
INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 1000) i;
});

my $by_index = 'SET enable_seqscan = off; SET enable_bitmapscan = off; ';

# a transaction inserts and indexes rows (its statement ended: the segment's
# catalog row is written, not committed), another commits (the WAL up to
# there is flushed), then the server crashes
my $dying = $node->background_psql('postgres', on_error_stop => 0);
$dying->query_safe(q{BEGIN; INSERT INTO t SELECT i, 'dying ' || i FROM generate_series(2001, 2100) i;});
$node->safe_psql('postgres', q{CREATE TABLE flush_wal (x int); INSERT INTO flush_wal VALUES (1);});
$node->stop('immediate');
$dying->quit;
$node->start;

is($node->safe_psql('postgres', $by_index . 'SELECT count(*) FROM t WHERE id BETWEEN 2001 AND 2100'),
	'0', 'the crashed transaction\'s index entries name no row');
# the crashed transaction's segment number is not given again: a new
# statement's rows sit where the stale entries point if it were
is($node->safe_psql('postgres', q{
SET destor.default_pool = 'archive';
INSERT INTO t SELECT i, 'after ' || i FROM generate_series(5001, 5100) i;
SELECT max(segment_no) FROM destor.segments s JOIN destor.am_tables a USING (table_id)
  JOIN pg_class c ON c.relfilenode = a.relfilenode WHERE c.oid = 't'::regclass}),
	'3', 'the segment numbers after recovery are new (the metapage was replayed)');
is($node->safe_psql('postgres', $by_index . q{SELECT string_agg(id::text, ',') FROM t WHERE id IN (2050, 5050)}),
	'5050', 'a stale entry does not return a row of the new segment');
is($node->safe_psql('postgres', $by_index . q{SELECT count(*) FROM t WHERE v LIKE 'dying%' OR v = 'v7'}),
	'1', 'the other index skips them too');
# the keys are free again, and taken ones still conflict
$node->safe_psql('postgres', q{INSERT INTO t VALUES (2050, 'again')});
my ($rc, $out, $err) = $node->psql('postgres', q{INSERT INTO t VALUES (2050, 'twice')});
like($err, qr/duplicate key value violates unique constraint "t_pkey"/, 'a committed key still conflicts');

# --- a physical replica: the same rows through the same indexes ---------------
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('tableam_standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
$node->safe_psql('postgres', q{
SET destor.default_pool = 'archive';
INSERT INTO t SELECT i, 'replicated ' || i FROM generate_series(6001, 6050) i;});
$node->wait_for_catchup($standby);
my $q = $by_index . q{SELECT count(*) || '/' || sum(id) FROM t WHERE id BETWEEN 990 AND 6050};
is($standby->safe_psql('postgres', $q), $node->safe_psql('postgres', $q),
	'the replica reads the same rows through the index, also rows written after the backup');
is($standby->safe_psql('postgres', $by_index . q{SELECT v FROM t WHERE id = 6025}), 'replicated 6025',
	'a point lookup on the replica');

# VACUUM on the primary rewrites partly deleted segments (new objects, same
# tids): the replica follows and reads the same rows
my $objects = q{SELECT string_agg(g.object_id::text, ',' ORDER BY g.segment_no) FROM destor.segments g
  JOIN destor.am_tables a ON a.table_id = g.table_id WHERE a.relfilenode = pg_relation_filenode('t')};
my $before = $node->safe_psql('postgres', $objects);
$node->safe_psql('postgres', q{DELETE FROM t WHERE id % 2 = 0});
$node->safe_psql('postgres', q{VACUUM t});
isnt($node->safe_psql('postgres', $objects), $before, 'VACUUM gave segments new objects');
$node->wait_for_catchup($standby);
my $all = q{SELECT count(*) || '/' || sum(id) || '/' || sum(length(v)) FROM t};
is($standby->safe_psql('postgres', $all), $node->safe_psql('postgres', $all),
	'after VACUUM\'s rewrite the replica reads the same rows');
is($standby->safe_psql('postgres', $by_index . q{SELECT v FROM t WHERE id = 6025}), 'replicated 6025',
	'and the same row through the index');
$standby->stop;
$node->stop;
done_testing();
