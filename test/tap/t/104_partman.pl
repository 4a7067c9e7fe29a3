# pg_partman and destor tiering on one partition set (issue 14 item 3): a
# partman-managed monthly set with PRIMARY KEY (id, ts) and an index on
# (device, ts), and a destor policy that tiers all but the newest four
# partitions (the current month, partman's two premade ones and the month
# before).  Seven months of maintenance are simulated, every fifteen days of
# the data's "now": rows for those days (and a few late ones for a tiered
# month), partman's run_maintenance (new partitions ahead of the data,
# retention dropping months older than five months), then
# apply_tiering_policies().  After every step the parent answers every
# query as a heap copy does (sequential and index plans), the tiered months
# are tables USING destor, and nothing warns or fails; at the end a month
# partman dropped after it was tiered has left no segment and, after
# cleanup_orphans, no shard.
#
# pg_partman is a test dependency (scripts/deps.sh --test): without it the
# test fails, it does not skip.
#
# Partman's retention compares with the real clock (CURRENT_TIMESTAMP), so
# the data lives in 2040 and the retention setting is shifted by the
# distance between the real and the simulated now before each run: it drops
# exactly what it would drop on that day.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my ($node) = DestorTest::start_cluster('partman', conf => "timezone = 'UTC'\n");
my ($pool_sql, @dirs) = DestorTest::file_pool_sql($node->basedir, 'archive', 6, 4, 2);
$node->safe_psql('postgres', $pool_sql);

# Runs SQL; passes when it neither fails nor warns.
sub quietly
{
	my ($sql, $name) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $sql, on_error_stop => 1);
	ok($rc == 0 && $err !~ /WARNING|ERROR/, $name) or diag($err);
	return $out;
}

$node->safe_psql('postgres', q{
CREATE SCHEMA partman;
CREATE EXTENSION pg_partman SCHEMA partman;
CREATE TABLE public.metrics (id bigint NOT NULL, ts timestamptz NOT NULL, device int NOT NULL, value numeric,
                             PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
CREATE INDEX metrics_device_ts ON public.metrics (device, ts);
SELECT partman.create_parent('public.metrics', 'ts', 'native', 'monthly', p_premake := 2,
                             p_start_partition := '2040-01-01');
UPDATE partman.part_config SET retention_keep_table = false WHERE parent_table = 'public.metrics';
INSERT INTO destor.tiering_policies VALUES ('public.metrics', 'archive', 4, NULL);
CREATE TABLE metrics_heap (LIKE metrics INCLUDING ALL);

-- One step of the simulation: the data's now is sim_now.
CREATE PROCEDURE sim_step(sim_now timestamptz, step int) LANGUAGE plpgsql AS $$
BEGIN
  -- fifteen days of readings, and two late ones for the month before last
  INSERT INTO metrics SELECT 1000 * step + i, sim_now - i * interval '6 hours', i % 9, i / 8.0
    FROM generate_series(0, 59) i;
  INSERT INTO metrics SELECT 1000 * step + 900 + i, date_trunc('month', sim_now) - interval '40 days' + i * interval '1 day', 3, 1
    FROM generate_series(0, 1) i WHERE date_trunc('month', sim_now) - interval '40 days' >= '2040-01-01';
  -- partman's retention as it would be on sim_now: five months
  UPDATE partman.part_config SET retention = (now() - (sim_now - interval '5 months'))::text
   WHERE parent_table = 'public.metrics';
  PERFORM partman.run_maintenance('public.metrics');
  PERFORM destor.apply_tiering_policies();
END $$;

-- The heap copy: the same rows, and what the retention drops.
CREATE PROCEDURE heap_step(sim_now timestamptz, step int) LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO metrics_heap SELECT 1000 * step + i, sim_now - i * interval '6 hours', i % 9, i / 8.0
    FROM generate_series(0, 59) i;
  INSERT INTO metrics_heap SELECT 1000 * step + 900 + i, date_trunc('month', sim_now) - interval '40 days' + i * interval '1 day', 3, 1
    FROM generate_series(0, 1) i WHERE date_trunc('month', sim_now) - interval '40 days' >= '2040-01-01';
  DELETE FROM metrics_heap WHERE date_trunc('month', ts) + interval '1 month' < sim_now - interval '5 months';
END $$;

-- Rows the two answers to a query (%s: the table) do not share.
CREATE FUNCTION differing(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM ((%s EXCEPT ALL %s) UNION ALL (%s EXCEPT ALL %s)) d',
                 format(q, 'metrics'), format(q, 'metrics_heap'),
                 format(q, 'metrics_heap'), format(q, 'metrics')) INTO n;
  RETURN n;
END $$;

-- Partitions not stored as they should be: the newest four heap, older ones USING destor.
CREATE VIEW misplaced AS
  SELECT c.relname, am.amname, rank FROM (
    SELECT i.inhrelid, rank() OVER (ORDER BY pg_get_expr(c.relpartbound, c.oid) DESC) AS rank
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'metrics'::regclass AND c.relname <> 'metrics_default') p
  JOIN pg_class c ON c.oid = p.inhrelid JOIN pg_am am ON am.oid = c.relam
  WHERE (rank <= 4) <> (am.amname = 'heap');
});

# every row and aggregates: sequential plans; keys and device + days: also index plans
my $lookups = q{
       differing('SELECT * FROM %s WHERE id IN (1003, 2011, 3020, 4059, 5001, 9002) AND ts > ''2040-01-01''')
     + differing('SELECT id, value FROM %s WHERE device = 4 AND ts >= ''2040-02-03'' AND ts < ''2040-03-20''')
};
my $queries = $lookups . q{
     + differing('SELECT * FROM %s')
     + differing('SELECT date_trunc(''month'', ts), device, count(*), sum(value) FROM %s GROUP BY 1, 2')
};
# The whole simulation in one session (a psql start costs more than a step):
# each step's statements run in their own transactions, as partman's and
# destor's maintenance runs would, and report what they found.
my $script = "\\set ON_ERROR_STOP 1\n";
for my $step (1 .. 14)
{
	$script .= qq{
CALL sim_step(timestamptz '2040-01-02' + interval '15 days' * $step, $step);
CALL heap_step(timestamptz '2040-01-02' + interval '15 days' * $step, $step);
SET enable_seqscan = off;
SELECT 'index', $step, $lookups;
SET enable_seqscan = on; SET enable_indexscan = off; SET enable_bitmapscan = off;
SELECT 'seq', $step, $queries;
RESET ALL;
SELECT 'misplaced', $step, relname, amname FROM misplaced;
SELECT 'tiered', c.relname, s.object_id FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  JOIN destor.am_tables a ON a.relfilenode = c.relfilenode JOIN destor.segments s ON s.table_id = a.table_id
 WHERE i.inhparent = 'metrics'::regclass;
};
}
my $t0 = time;
my $out = quietly($script, 'seven months of maintenance, every fifteen days: nothing fails or warns');
note('simulation: ' . (time - $t0) . ' s');
my (%tiered_objects, %steps, $diffs, @misplaced);
$diffs = 0;
for my $line (split /\n/, $out)
{
	my @f = split /\|/, $line;
	if ($f[0] eq 'index' || $f[0] eq 'seq')
	{
		$steps{ $f[1] } = 1;
		$diffs += $f[2];
		diag("step $f[1]: $f[2] rows differ in $f[0] plans") if $f[2];
	}
	push @misplaced, "step $f[1]: $f[2] is $f[3]" if $f[0] eq 'misplaced';
	$tiered_objects{ $f[1] }{ $f[2] } = 1 if $f[0] eq 'tiered';
}
is(scalar(keys %steps), 14, 'seven months of maintenance, every fifteen days');
is($diffs, 0, 'after every step the parent answers every query as the heap copy does');
is(scalar(@misplaced), 0, 'after every step the months older than the newest four are tables USING destor')
  or diag(join("\n", @misplaced));

my $parts = $node->safe_psql('postgres', q{
	SELECT string_agg(c.relname || ':' || am.amname, ' ' ORDER BY c.relname)
	  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_am am ON am.oid = c.relam
	 WHERE i.inhparent = 'metrics'::regclass});
is($parts, 'metrics_default:heap metrics_p2040_02:destor metrics_p2040_03:destor metrics_p2040_04:destor '
	. 'metrics_p2040_05:destor metrics_p2040_06:heap metrics_p2040_07:heap metrics_p2040_08:heap metrics_p2040_09:heap',
	'partman created the months ahead and dropped the old one; destor tiered all but the newest four');
is($node->safe_psql('postgres', q{SELECT count(*) FROM ONLY metrics_default}), '0',
	'no row went to the default partition');

# the keys and indexes of a tiered month are there and used
like($node->safe_psql('postgres', q{SET enable_seqscan = off;
	EXPLAIN (COSTS OFF) SELECT * FROM metrics WHERE id = 3006 AND ts = '2040-02-14 12:00+00'}),
	qr/Index Scan using metrics_p2040_02_pkey on metrics_p2040_02/, 'a key lookup uses the tiered month\'s primary key');
like($node->safe_psql('postgres', q{SET enable_seqscan = off;
	EXPLAIN (COSTS OFF) SELECT id FROM metrics WHERE device = 3 AND ts >= '2040-03-01' AND ts < '2040-03-05'}),
	qr/metrics_p2040_03_device_ts_idx/, 'a device and day query uses the tiered month\'s (device, ts) index');
my (undef, undef, $err) = $node->psql('postgres',
	q{\set VERBOSITY verbose
	  INSERT INTO metrics SELECT * FROM metrics WHERE ts >= '2040-02-01' AND ts < '2040-03-01' LIMIT 1});
like($err, qr/ERROR:  23505: duplicate key value violates unique constraint "metrics_p2040_02_pkey"/,
	'a duplicate key in a tiered month is the unique_violation heap gives');

# partman's retention dropped tiered months: their segments and shards are gone
my @dropped = grep { $node->safe_psql('postgres', "SELECT to_regclass('public.$_') IS NULL") eq 't' }
  sort keys %tiered_objects;
cmp_ok(scalar(@dropped), '>=', 1, 'partman dropped months that destor had tiered: ' . join(', ', @dropped));
my @gone = map { keys %{ $tiered_objects{$_} } } @dropped;
is($node->safe_psql('postgres', 'SELECT count(*) FROM destor.segments WHERE object_id IN ('
	  . join(', ', map { "'$_'" } @gone) . ')'), '0', 'the dropped months have no segments left');
$node->safe_psql('postgres', "SELECT destor.cleanup_orphans('archive', '0')");
my %gone_hex = map { (my $h = $_) =~ s/-//g; $h => 1 } @gone;
my @shards = grep { m{/ds/} } map { DestorTest::files_under($_) } @dirs;
my @left = grep { m{/([0-9a-f]{32})\.\d+$} && $gone_hex{$1} } @shards;
is(scalar(@left), 0, 'after cleanup_orphans no shard of a dropped month is left on the providers')
  or diag(join("\n", @left[0 .. ($#left > 9 ? 9 : $#left)]));
my %live = map { (my $h = $_) =~ s/-//g; $h => 1 }
  split /\n/, $node->safe_psql('postgres', 'SELECT object_id FROM destor.objects');
cmp_ok(scalar(grep { m{/([0-9a-f]{32})\.\d+$} && $live{$1} } @shards), '>', 0,
	'the shards of the months still tiered are there');

$node->stop;
done_testing();
