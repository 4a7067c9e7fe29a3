# Partitions tiered to six real s3rver providers while another session keeps
# querying the parent: every one of its queries returns the full, right
# answer (the copy does not block readers; the swap only makes them wait).
# Then a provider stops and the tiered partitions still read; a partition is
# recalled with that provider down; and pg_dump/pg_restore of the database
# brings back a parent with tiered partitions that read the same rows.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('tiering', cache_size => '16MB');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @s3));

$node->safe_psql('postgres', q{
CREATE TABLE events (at date NOT NULL, kind text, amount numeric(10,2)) PARTITION BY RANGE (at);
CREATE INDEX ON events (at);
CREATE TABLE events_q1 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2024-04-01');
CREATE TABLE events_q2 PARTITION OF events FOR VALUES FROM ('2024-04-01') TO ('2024-07-01');
CREATE TABLE events_q3 PARTITION OF events FOR VALUES FROM ('2024-07-01') TO ('2024-10-01');
CREATE TABLE events_q4 PARTITION OF events FOR VALUES FROM ('2024-10-01') TO ('2025-01-01');
INSERT INTO events
  SELECT date '2024-01-01' + (i % 366), (ARRAY['sale', 'refund', 'fee'])[1 + i % 3], (i % 10000) / 100.0
    FROM generate_series(1, 200000) i;
});
my $agg = q{SELECT count(*), sum(amount), count(DISTINCT kind), min(at), max(at) FROM events};
my $expected = $node->safe_psql('postgres', $agg);

# a reader querying the parent over and over while the partitions move
my $reader_sql = "$base/reader.sql";
open(my $fh, '>', $reader_sql) or die;
print $fh "$agg;\n" x 40;
close $fh;
my $reader_out = '';
my $reader = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-f', $reader_sql ],
	'>', \$reader_out, '2>&1', IPC::Run::timeout(600));

is($node->safe_psql('postgres', q{SELECT string_agg(p::text, ',' ORDER BY p::text)
	FROM destor.tier_partitions('events', 'archive', keep_local => 1) p}),
	'events_q1,events_q2,events_q3', 'three quarters tiered, the newest kept local');
ok($reader->finish, 'the concurrent reader finished without error');
my @answers = grep { length } split /\n/, $reader_out;
is(scalar(@answers), 40, 'it got 40 answers');
is(scalar(grep { $_ eq $expected } @answers), 40, 'every one of them complete and right')
  or diag($reader_out);

is($node->safe_psql('postgres', $agg), $expected, 'the parent reads the same rows after tiering');
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.tiered_partitions WHERE parent = 'events'::regclass}),
	'3', 'destor.tiered_partitions lists them');
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT storage, ',') FROM destor.tiered_partitions
	WHERE parent = 'events'::regclass}), 'table using destor', 'as tables USING destor: the parent has an index');
like($node->safe_psql('postgres', q{EXPLAIN (COSTS OFF) SELECT count(*) FROM events WHERE at >= '2024-11-01'}),
	qr/^(?!.*Foreign Scan).*events_q4/s, 'a query on recent days does not touch the tiered partitions');

# the objects are on the providers, none of them holds plaintext
my @shards = grep { /\._S3rver_object$/ } map { DestorTest::files_under($_->{dir}) } @s3;
cmp_ok(scalar(@shards), '>=', 3 * 6, 'every tiered partition has shards on all six providers');
is(scalar(map { DestorTest::files_containing($_->{dir}, 'refund') } @s3), 0,
	'no file of any provider contains a plaintext value');

# an UPDATE through the parent that waits for the partition being tiered
# (it holds the parent) is not the one a deadlock kills: the tiering gives
# way (it fails and can be tried again), the UPDATE goes through.  A
# generated column waits on an advisory lock, so the copy can be held in
# the middle while the UPDATE comes in.
$node->safe_psql('postgres', q{
CREATE FUNCTION gate(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM pg_advisory_lock_shared(42);
  PERFORM pg_advisory_unlock_shared(42);
  RETURN $1;
END $$;
CREATE TABLE busy (at date NOT NULL, n int, g int GENERATED ALWAYS AS (gate(n)) STORED)
  PARTITION BY RANGE (at);
CREATE TABLE busy_old PARTITION OF busy FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE busy_new PARTITION OF busy FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
INSERT INTO busy (at, n) SELECT date '2020-01-01' + i % 366, i FROM generate_series(1, 2000) i;
});
my $gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(42)');
my ($tier_out, $tier_err, $upd_out, $upd_err) = ('', '', '', '');
my $tierer = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'), '-c',
	  "SELECT destor.tier_partition('busy_old', 'archive')" ],
	'>', \$tier_out, '2>', \$tier_err, IPC::Run::timeout(300));
$node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted})
  or die 'the tiering did not reach its copy';
my $updater = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c',
	  "UPDATE busy SET n = -n WHERE n = 7" ],
	'>', \$upd_out, '2>', \$upd_err, IPC::Run::timeout(300));
$node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
	WHERE c.relname = 'busy_old' AND NOT l.granted})
  or die 'the UPDATE did not come to wait for the partition';
$gate->query_safe('SELECT pg_advisory_unlock(42)');
ok($updater->finish, 'the UPDATE through the parent went through') or diag($upd_err);
$tierer->finish;
$gate->quit;
like($upd_out, qr/UPDATE 1/, 'it updated its row');
like($tier_err, qr/deadlock detected/, 'the tiering gave way with a deadlock error');
is($node->safe_psql('postgres', q{SELECT relkind FROM pg_class WHERE relname = 'busy_old'}), 'r',
	'and left the partition as it was');
is($node->safe_psql('postgres', 'SELECT count(*), sum(n) FROM busy'),
	$node->safe_psql('postgres', 'SELECT 2000, sum(i) - 14 FROM generate_series(1, 2000) i'),
	'the table holds every row, with the update');
is($node->safe_psql('postgres', q{SELECT destor.tier_partition('busy_old', 'archive')}), 'busy_old',
	'tried again, the tiering succeeds');
$node->safe_psql('postgres', 'DROP TABLE busy; DROP FUNCTION gate(int)');

# a provider stops: tiered data still reads (4 + 2), and a recall works
DestorTest::stop_s3($s3[1]);
$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
is($node->safe_psql('postgres', $agg), $expected, 'with a provider down the parent reads the same rows');
is($node->safe_psql('postgres', q{SELECT destor.recall_partition('events_q3')}), 'events_q3',
	'a partition is recalled with a provider down');
is($node->safe_psql('postgres', q{SELECT relkind FROM pg_class WHERE relname = 'events_q3'}), 'r',
	'it is a heap table again');
DestorTest::start_s3($s3[1]);

# dump and restore into a fresh database of the same cluster (same key); the
# parent's index made the tiered quarters tables USING destor, whose CREATE
# TABLE takes its pool from destor.default_pool
my $dump = "$base/events.dump";
command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump of the database');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
{
	local $ENV{PGOPTIONS} = '-c destor.default_pool=archive';
	command_ok([ 'pg_restore', '-d', $node->connstr('restored'), $dump ], 'pg_restore into a fresh database');
}
is($node->safe_psql('restored', $agg), $expected, 'the restored parent reads the same rows');
is($node->safe_psql('restored', q{SELECT string_agg(partition::text, ',' ORDER BY partition::text)
	FROM destor.tiered_partitions}), 'events_q1,events_q2', 'with the same partitions tiered');

DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
