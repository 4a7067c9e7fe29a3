# destor tables on six real S3-protocol servers: DML against a heap mirror,
# provider loss, concurrent writers from several sessions, consistent
# snapshots for readers, dump/restore into a fresh database, and reads on a
# physical replica.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('tables', conf => "wal_level = replica\nmax_wal_senders = 4\n");
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @s3));

$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE metrics (ts timestamptz, device int, temp float8, status text)
  SERVER archive OPTIONS (segment_rows '20000', row_group_rows '2000');
CREATE TABLE metrics_heap (ts timestamptz, device int, temp float8, status text);
INSERT INTO metrics_heap
  SELECT '2024-01-01'::timestamptz + i * interval '1 minute', i % 50, (i % 1000) / 10.0,
         (ARRAY['ok', 'warn', 'fail'])[i % 3 + 1]
    FROM generate_series(1, 60000) i;
INSERT INTO metrics SELECT * FROM metrics_heap;
});

my $same = q{SELECT (SELECT count(*) FROM (SELECT * FROM metrics EXCEPT ALL SELECT * FROM metrics_heap) a)
               + (SELECT count(*) FROM (SELECT * FROM metrics_heap EXCEPT ALL SELECT * FROM metrics) b)};
is($node->safe_psql('postgres', $same), '0', 'a destor table on s3 providers holds exactly the heap rows');

$node->safe_psql('postgres', q{
DELETE FROM metrics WHERE status = 'fail' AND device < 10;
DELETE FROM metrics_heap WHERE status = 'fail' AND device < 10;
UPDATE metrics SET temp = -1 WHERE ts < '2024-01-02';
UPDATE metrics_heap SET temp = -1 WHERE ts < '2024-01-02';
});
is($node->safe_psql('postgres', $same), '0', 'after DELETE and UPDATE the rows still match the heap');

my $plan = $node->safe_psql('postgres',
	"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT avg(temp) FROM metrics WHERE ts BETWEEN '2024-01-20' AND '2024-01-21'");
like($plan, qr/Segments Pruned: [1-9]/, 'a one-day query prunes segments on s3 providers');
like($plan, qr/Columns Fetched: ts, temp/, 'and fetches only the columns it needs');

# two providers down: still correct
DestorTest::stop_s3($s3[0]);
DestorTest::stop_s3($s3[3]);
is($node->safe_psql('postgres', $same), '0', 'with 2 of 6 providers stopped the table reads back exactly');
# three down: an INSERT fails cleanly, naming them, and leaves nothing behind
DestorTest::stop_s3($s3[1]);
my $count = $node->safe_psql('postgres', 'SELECT count(*) FROM metrics_heap');
my ($ret, $out, $err) = $node->psql('postgres',
	"INSERT INTO metrics SELECT * FROM metrics_heap LIMIT 5000");
isnt($ret, 0, 'an INSERT with 3 of 6 providers down fails');
like($err, qr/could not write enough shards to pool "archive".*\n.*Failed providers: s1, s2, s4/,
	'the error names the unreachable providers');
DestorTest::start_s3($_) for @s3[0, 1, 3];
is($node->safe_psql('postgres', $same), '0', 'nothing of the failed INSERT is visible');

# --- concurrent writers -----------------------------------------------------------
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE log (writer int, n int) SERVER archive OPTIONS (segment_rows '1000', row_group_rows '100');
});
my @sessions = map { $node->background_psql('postgres') } 1 .. 4;
for my $round (1 .. 5)
{
	for my $w (0 .. 3)
	{
		$sessions[$w]->query_safe(sprintf(
			"INSERT INTO log SELECT %d, g FROM generate_series(%d, %d) g",
			$w, $round * 1000, $round * 1000 + 249));
	}
}
# a writer that deletes concurrently with inserters, in a transaction
$sessions[0]->query_safe('BEGIN');
$sessions[0]->query_safe('DELETE FROM log WHERE writer = 3 AND n % 2 = 0');
$sessions[1]->query_safe('INSERT INTO log SELECT 9, g FROM generate_series(1, 100) g');
$sessions[0]->query_safe('COMMIT');
is($node->safe_psql('postgres', 'SELECT count(*) FROM log'), 4 * 5 * 250 - 5 * 125 + 100,
	'4 concurrent sessions: no row lost or duplicated');
is($node->safe_psql('postgres', 'SELECT count(DISTINCT (writer, n)) = count(*) FROM log'), 't',
	'no duplicates');

# a reader keeps its snapshot while others write
$sessions[2]->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
my $before = $sessions[2]->query_safe('SELECT count(*) FROM log');
$sessions[3]->query_safe('INSERT INTO log SELECT 7, g FROM generate_series(1, 500) g');
$sessions[1]->query_safe('DELETE FROM log WHERE writer = 9');
my $during = $sessions[2]->query_safe('SELECT count(*) FROM log');
$sessions[2]->query_safe('COMMIT');
is($during, $before, 'a repeatable-read reader sees a consistent snapshot during concurrent writes');
is($node->safe_psql('postgres', 'SELECT count(*) FROM log'), $before + 500 - 100,
	'and the writes are there afterwards');

# concurrent UPDATEs of one table do not duplicate rows
$sessions[0]->query_safe('BEGIN');
$sessions[0]->query_safe('UPDATE log SET n = n + 1000000 WHERE writer = 7');
my $h = $sessions[1]->query_until(qr/started/, q{
\echo started
UPDATE log SET n = n + 1 WHERE writer = 7;
\echo done
});
$sessions[0]->query_safe('COMMIT');
$sessions[1]->query_until(qr/done/, '');
is($node->safe_psql('postgres', 'SELECT count(*) FROM log WHERE writer = 7'), '500',
	'two concurrent UPDATEs of the same rows leave each row once');
$_->quit for @sessions;

# --- dump and restore -----------------------------------------------------------------
my $dump = "$base/tables.sql";
command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump of a database with destor tables');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'the dump restores into a fresh database');
is($node->safe_psql('restored', $same), '0', 'the restored destor table has the same rows');
is($node->safe_psql('restored', 'SELECT count(*) FROM log'), $node->safe_psql('postgres', 'SELECT count(*) FROM log'),
	'every restored table has its rows');

# a fresh cluster with the same master key and provider credentials, via pg_restore
my $dumpc = "$base/tables.dump";
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $dumpc ], 'pg_dump -Fc');
my ($fresh, $fresh_key) = DestorTest::start_cluster('fresh');
system("cp '$keyfile' '$fresh_key'") == 0 or die;
$fresh->restart;
$fresh->safe_psql('postgres', 'CREATE DATABASE restored');
command_ok([ 'pg_restore', '-d', $fresh->connstr('restored'), $dumpc ],
	'pg_restore into a fresh cluster with the same master key');
is($fresh->safe_psql('restored', $same), '0', 'the fresh cluster reads the same rows from the providers');
$fresh->stop;

# --- a physical replica reads the table -----------------------------------------------
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
$node->safe_psql('postgres', "INSERT INTO metrics VALUES ('2030-01-01', 1, 1, 'after backup')");
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', "SELECT count(*) FROM metrics WHERE status = 'after backup'"), '1',
	'a physical replica reads destor tables, including rows written after the backup');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM metrics'),
	$node->safe_psql('postgres', 'SELECT count(*) FROM metrics'), 'the replica sees every row');

$standby->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
