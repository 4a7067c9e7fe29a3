# destor.progress shows long commands while they run, to their own role
# (and pg_read_all_stats) in full and to others as command and pid only,
# and forgets a command the moment it ends — by success, by an ERROR, or by
# the rollback of the savepoint it ran under.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my ($node) = DestorTest::start_cluster('progress');
my $base = $node->basedir;
my ($pool_sql) = DestorTest::file_pool_sql($base, 'pool', 3, 2, 1);
$node->safe_psql('postgres', join("\n", $pool_sql,
	"CREATE TABLE readings (day date, v int) PARTITION BY RANGE (day);",
	"CREATE TABLE readings_2024 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');",
	"INSERT INTO readings SELECT '2024-01-01'::date + g % 300, g FROM generate_series(1, 50000) g;",
	"ANALYZE readings;",
	"CREATE ROLE stranger LOGIN;",
	"CREATE FOREIGN TABLE t (a int, s text) SERVER pool;"));

# Wait until destor.progress (as $role) shows a row that $check accepts.
sub wait_progress
{
	my ($sql, $want, $role) = @_;
	my $got = '';
	for (1 .. 600)
	{
		$got = $node->safe_psql('postgres', ($role ? "SET ROLE $role; " : '') . $sql);
		return $got if $got =~ $want;
		usleep(100_000);
	}
	return $got;
}

# --- tier_partition, held up before its swap by a reader of the parent -------
my $reader = $node->background_psql('postgres');
$reader->query_safe('BEGIN');
$reader->query_safe('LOCK readings IN ACCESS SHARE MODE');
my $tier = $node->background_psql('postgres');
$tier->query_until(qr/started/, "\\echo started\nSELECT destor.tier_partition('readings_2024', 'pool');\n");

my $row = wait_progress(
	"SELECT command, relid::regclass, phase, objects_done, objects_total FROM destor.progress",
	qr/swapping/);
is($row, 'tier_partition|readings_2024|swapping partitions|50000|50000',
	'a tier_partition waiting for its swap shows its command, partition, phase and rows copied');
is(wait_progress("SELECT command || ' ' || coalesce(phase, 'hidden') || ' ' || coalesce(relid::text, 'hidden')"
		. " FROM destor.progress", qr/tier_partition/, 'stranger'),
	'tier_partition hidden hidden', "another role sees that a command runs, not what it works on");
$reader->query_safe('COMMIT');
$reader->quit;
$tier->quit;
is(wait_progress("SELECT count(*) FROM destor.progress", qr/^0$/), '0',
	'the finished tier_partition is gone from destor.progress');
is($node->safe_psql('postgres', "SELECT count(*) FROM readings"), '50000', 'and its rows are all there');

# --- COPY into a destor table, rows counted as they are written -------------
# A row trigger holds the COPY at row 15000 on an advisory lock the test owns.
$node->safe_psql('postgres', q{
CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.a = 15000 THEN PERFORM pg_advisory_lock(42); PERFORM pg_advisory_unlock(42); END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER hold BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION hold();});
my $locker = $node->background_psql('postgres');
$locker->query_safe('SELECT pg_advisory_lock(42)');
my $copy = $node->background_psql('postgres');
$copy->query_until(qr/started/, "\\echo started\nCOPY t FROM STDIN;\n"
	  . join('', map { "$_\trow $_\n" } 1 .. 20000) . "\\.\n");
$row = wait_progress("SELECT command || ' ' || relid::regclass || ' ' || phase || ' ' || objects_done"
	  . " FROM destor.progress WHERE command = 'copy'", qr/14999/);
is($row, 'copy t writing 14999', 'a COPY FROM into a destor table shows the rows written so far');
$locker->query_safe('SELECT pg_advisory_unlock(42)');
$locker->quit;
$copy->quit;
is($node->safe_psql('postgres', "SELECT count(*), sum(a) FROM t"), '20000|200010000', 'the COPY completed');
is(wait_progress("SELECT count(*) FROM destor.progress", qr/^0$/), '0', 'and left destor.progress');
$node->safe_psql('postgres', 'DROP TRIGGER hold ON t');

# --- an ERROR, and a rolled-back savepoint, leave nothing behind -------------
my ($ret, $out, $err) = $node->psql('postgres', "SELECT destor.blob_import('pool', '$base')");
like($err, qr/could not read server file/, 'blob_import of a directory fails while importing');
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.progress"), '0',
	'a command ended by an ERROR is not shown');
is($node->safe_psql('postgres', qq{
BEGIN;
SAVEPOINT s;
DO \$\$BEGIN PERFORM destor.blob_import('pool', '$base'); EXCEPTION WHEN OTHERS THEN NULL; END\$\$;
ROLLBACK TO s;
SELECT count(*) FROM destor.progress WHERE pid = pg_backend_pid();
COMMIT;}), '0', 'nor one whose subtransaction was rolled back, in its own transaction');

# --- repair and compact report their objects ---------------------------------
$node->safe_psql('postgres', "DELETE FROM t WHERE a % 2 = 0");
is($node->safe_psql('postgres', "SELECT rows_kept FROM destor.compact('t')"), '10000', 'compact rewrites the table');
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.progress"), '0', 'and is not shown once done');

$node->stop;
done_testing();
