# Reads started ahead of need keep running while the backend works (issue
# 11): a scan's next batch of row groups is on the network while the rows
# of this one go up the plan.  What happens to such a batch when the
# backend stops looking — a cursor left idle longer than the request
# timeout, an ERROR or a cancel while it is in flight, a subtransaction
# rolled back in the middle of a scan, two scans in flight at once — must
# change no row and blame no provider.  Six real s3rver processes, s1
# behind a delay proxy; every answer is compared with a heap table.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('read_ahead', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
# s1 behind a delay proxy of its own, the others behind delay proxies that
# share another delay
my $delay_file = "$base/s1_delay";
my $others_file = "$base/others_delay";
my @delays = map { DestorTest::start_delay_proxy($s3[$_]{port}, $_ == 0 ? $delay_file : $others_file) }
  0 .. $#s3;
my @providers = map { { %{ $s3[$_] }, port => $delays[$_]{port} } } 0 .. $#s3;
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @providers));

sub set_delay
{
	my ($ms, $file) = @_;
	open(my $fh, '>', $file // $delay_file) or die;
	print $fh "$ms\n";
	close $fh;
}
set_delay(0);
set_delay(0, $others_file);

# Hex text compresses about 2:1: 260,000 rows of 96 characters are some
# 12 MiB stored, more than one scan batch (8 MiB), so a scan reads its
# second batch ahead.  Two tables, for two scans in flight at once.
$node->safe_psql('postgres', q{
CREATE TABLE wide_heap (id int, payload text, extra text);
INSERT INTO wide_heap
  SELECT i, md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text), md5((i * 3)::text)
    FROM generate_series(1, 260000) i;
CREATE FOREIGN TABLE wide (id int, payload text, extra text)
  SERVER archive OPTIONS (segment_rows '1000000', row_group_rows '10000');
CREATE FOREIGN TABLE wide2 (id int, payload text, extra text)
  SERVER archive OPTIONS (segment_rows '1000000', row_group_rows '10000');
INSERT INTO wide SELECT * FROM wide_heap;
INSERT INTO wide2 SELECT * FROM wide_heap;

-- Reads rel with a cursor, row by row: after "pause_after" rows it sleeps
-- "pause" seconds, and (fail) rolls back a subtransaction that failed;
-- returns the count and an order-independent sum of the rows' hashes.
CREATE FUNCTION scan_paused(rel regclass, pause_after int, pause float8, fail bool)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  c refcursor;
  r record;
  n bigint := 0;
  h numeric := 0;
BEGIN
  OPEN c FOR EXECUTE format('SELECT id, payload FROM %s', rel);
  LOOP
    FETCH c INTO r;
    EXIT WHEN NOT FOUND;
    n := n + 1;
    h := h + hashtextextended(r.id::text || r.payload, 0);
    IF n = pause_after THEN
      PERFORM pg_sleep(pause);
      IF fail THEN
        BEGIN
          PERFORM 1 / 0;
        EXCEPTION WHEN division_by_zero THEN
          NULL;
        END;
      END IF;
    END IF;
  END LOOP;
  CLOSE c;
  RETURN n || ':' || h;
END $$;

-- Two scans at once, a row of each in turn.
CREATE FUNCTION scan_two(a regclass, b regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  ca refcursor;
  cb refcursor;
  ra record;
  rb record;
  na bigint := 0;
  nb bigint := 0;
  ha numeric := 0;
  hb numeric := 0;
  more_a bool := true;
  more_b bool := true;
BEGIN
  OPEN ca FOR EXECUTE format('SELECT id, payload FROM %s', a);
  OPEN cb FOR EXECUTE format('SELECT id, payload FROM %s', b);
  WHILE more_a OR more_b LOOP
    IF more_a THEN
      FETCH ca INTO ra;
      more_a := FOUND;
      IF more_a THEN
        na := na + 1;
        ha := ha + hashtextextended(ra.id::text || ra.payload, 0);
      END IF;
    END IF;
    IF more_b THEN
      FETCH cb INTO rb;
      more_b := FOUND;
      IF more_b THEN
        nb := nb + 1;
        hb := hb + hashtextextended(rb.id::text || rb.payload, 0);
      END IF;
    END IF;
  END LOOP;
  RETURN na || ':' || ha || ' ' || nb || ':' || hb;
END $$;
});

# s1 (behind the delay proxy) must hold a data shard of wide's object, so
# that the scans read from it: placement is by object, so write it anew
# until it does.
my $s1_data = q{
SELECT count(*) FROM destor.shards s JOIN destor.objects o USING (object_id)
  JOIN destor.segments g USING (object_id) JOIN destor.tables t USING (table_id)
 WHERE t.relid = 'wide'::regclass AND s.provider = 's1' AND s.shard_index < o.data_shards};
for (my $try = 0; $try < 20 && $node->safe_psql('postgres', $s1_data) == 0; $try++)
{
	$node->safe_psql('postgres', 'TRUNCATE wide; INSERT INTO wide SELECT * FROM wide_heap');
}
cmp_ok($node->safe_psql('postgres', $s1_data), '>', 0, 's1 holds a data shard of the table');

my $expect = $node->safe_psql('postgres', q{SELECT scan_paused('wide_heap', 0, 0, false)});
like($expect, qr/^260000:/, 'the heap table has every row');
my $batches = $node->safe_psql('postgres', q{
SELECT sum(o.stream_size) > 8 * 1024 * 1024 FROM destor.objects o
  JOIN destor.segments s USING (object_id) JOIN destor.tables t USING (table_id)
 WHERE t.relid = 'wide'::regclass});
is($batches, 't', 'the table is more than one scan batch');

sub provider_marks
{
	return $node->safe_psql('postgres', q{
SELECT string_agg(provider || ' ' || state || ' errors ' || errors || ' retries ' || retries, ', '
                  ORDER BY provider)
  FROM destor.provider_status});
}

# Measure the providers first (a cold backend hedges its reads), so that
# the scans below take the ordinary path, and learn what "no mark" looks like.
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
is($node->safe_psql('postgres', q{SELECT scan_paused('wide', 0, 0, false)}), $expect,
	'a cold scan of the table reads every row');
my $clean = provider_marks();
unlike($clean, qr/errors [1-9]|retries [1-9]|slow|down/, "the providers are clean: $clean");

# --- 0. batches of several ranges go as hedged runs ----------------------
# Every provider is measured now, every shard healthy.  A batch of several
# ranges (the query leaves the column "extra" out, so the row groups'
# chunks are ranges with gaps) is still read as runs of stripes with
# spares, not a request per range and data shard; s1, holding a data
# shard, answers every request a second and a half late, and the rows are
# exact.
my $runs_plan = q{EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT count(*), sum(hashtextextended(payload, 0)) FROM wide};
my $plan = $node->safe_psql('postgres', "SET max_parallel_workers_per_gather = 0; $runs_plan");
# A provider that lost every race of the cold scan above has no rate yet,
# and a bulk batch goes around it as a degraded run (spares all the same):
# on a loaded machine that happens, so both kinds of run count here.  The
# healthy path's request per range and data shard is neither.
my ($hedged) = $plan =~ /Hedged Reads: (\d+)/;
my ($degraded) = $plan =~ /Degraded Reads: (\d+)/;
cmp_ok(($hedged // 0) + ($degraded // 0), '>', 0, 'a measured scan reads its batches as runs of stripes')
  or diag($plan . "\n" . $node->safe_psql('postgres', q{
SELECT string_agg(provider || ' p50 ' || round(latency_p50_ms::numeric, 1) || ' p99 '
                  || round(latency_p99_ms::numeric, 1) || ' ms, read ' || bytes_read, ', ' ORDER BY provider)
  FROM destor.provider_status}));
set_delay(1500);
is($node->safe_psql('postgres', q{SELECT count(*), sum(hashtextextended(payload, 0)) FROM wide}),
	$node->safe_psql('postgres', q{SELECT count(*), sum(hashtextextended(payload, 0)) FROM wide_heap}),
	'with s1 late on every request, the scan is exact');
set_delay(0);
# a single small range (one row group's column) stays on the healthy path
$plan = $node->safe_psql('postgres', q{EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT id FROM wide WHERE id BETWEEN 1 AND 100});
($hedged) = $plan =~ /Hedged Reads: (\d+)/;
is($hedged // 0, 0, 'a one-range read is not hedged') or diag($plan);
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
$node->safe_psql('postgres', q{SELECT scan_paused('wide', 0, 0, false)});

# --- 1. a cursor idle for longer than the request timeout ----------------
# The batch read ahead sits unread in the sockets while the cursor waits
# (every provider answers a second late, so that nothing of it can have
# come in before the wait began; within the timeout, even for a small
# request); libcurl's clock runs on past the timeout.  When the cursor
# moves again, that is the backend's doing, not the providers': tried
# again, not counted.  (Not spread over every shard: on a loaded machine
# the delay proxies look slow enough for that, and every provider then
# gets a request or two with half a second to spare before the timeout,
# which the load can use up — a real timeout, rightly counted, that this
# test is not about.  Spread reads and cursors: TAP 170_break_spread_scans.)
set_delay(1000);
set_delay(1000, $others_file);
is($node->safe_psql('postgres', q{
SET destor.request_timeout = '1500ms';
SET destor.spread_reads = off;
SELECT scan_paused('wide', 1, 5, false)}), $expect,
	'a cursor idle past the request timeout reads every row');
set_delay(0);
set_delay(0, $others_file);
# (a provider may be found slow — they are, by a second — but not failing)
my $marks = provider_marks();
unlike($marks, qr/errors [1-9]|retries [1-9]|down/, "the idle cursor blamed no provider: $marks");
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
$node->safe_psql('postgres', q{SELECT scan_paused('wide', 0, 0, false)});

# --- 2. a subtransaction rolled back while a batch is in flight ----------
is($node->safe_psql('postgres', q{SELECT scan_paused('wide', 15000, 0.2, true)}), $expect,
	'a scan goes on after a subtransaction rolled back with a batch in flight');

# --- 3. an ERROR with a batch in flight, then the same session reads -----
my ($rc, $out, $err) = $node->psql('postgres', q{
BEGIN;
DECLARE c NO SCROLL CURSOR FOR SELECT id, payload FROM wide;
MOVE 15000 IN c;
SELECT 1 / 0;
ROLLBACK;
SELECT scan_paused('wide', 0, 0, false);
}, on_error_stop => 0);
like($err, qr/division by zero/, 'the transaction failed with a batch in flight');
like($out, qr/\Q$expect\E\s*$/, 'the next scan of the same session reads every row');

# --- 3b. read-aheads dropped unread: a LIMIT, a cursor closed early ------
# The batch read ahead is stopped, not waited for; nothing of it may reach
# the next read.
is($node->safe_psql('postgres', q{
SELECT string_agg(id::text, ',') FROM (SELECT id FROM wide LIMIT 3) s;
BEGIN;
DECLARE c NO SCROLL CURSOR FOR SELECT id, payload FROM wide;
MOVE 25000 IN c;
CLOSE c;
COMMIT;
SELECT scan_paused('wide', 0, 0, false);}), "1,2,3\n$expect",
	'after a LIMIT and a cursor closed with a batch in flight, a scan reads every row');

# --- 4. two scans in flight at once -----------------------------------------
is($node->safe_psql('postgres', q{SELECT scan_two('wide', 'wide2')}), "$expect $expect",
	'two scans read ahead at once, each reads its own rows');

# --- 5. a statement cancelled while waiting for a batch ---------------------
# s1 holds every request for 3 s; the timeout cancels the scan while it
# waits for the first batch (reading around s1 takes longer).  Then the same session reads everything, s1 back to normal.
set_delay(3000);
($rc, $out, $err) = $node->psql('postgres', q{
SET statement_timeout = '300ms';
SELECT scan_paused('wide', 0, 0, false);
RESET statement_timeout;
SELECT 'after', count(*) FROM wide_heap;
}, on_error_stop => 0);
set_delay(0);
like($err, qr/statement timeout/, 'a scan waiting for a provider is cancelled by statement_timeout');
like($out, qr/after\|260000/, 'the session goes on');
is($node->safe_psql('postgres', q{SELECT scan_paused('wide', 0, 0, false)}), $expect,
	'after the cancel a scan reads every row');

# --- 6. a cancel while the backend decodes, in a loop ------------------------
# statement_timeout at random points of a scan (during a poll, a wait, or
# the decoding in between); the backend must stay sound each time.
for my $ms (150, 260, 370, 480, 590)
{
	($rc, $out, $err) = $node->psql('postgres', qq{
SET statement_timeout = '${ms}ms';
SELECT scan_two('wide', 'wide2');
}, on_error_stop => 0);
}
is($node->safe_psql('postgres', q{SELECT scan_two('wide', 'wide2')}), "$expect $expect",
	'after scans cancelled at random points, two scans read every row');
# --- 7. a blob's windows read ahead while read times are unknown ----------
# Windows of a cold reader ask every shard, and the next window is asked
# for while this one is waited for and opened: a whole export, a
# descriptor that reads on, jumps back (the window read ahead is dropped)
# and reads on again, each with the read times forgotten.
my $file = "$base/blob.bin";
DestorTest::write_random_file($file, 20 * 1024 * 1024);
my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('archive', '$file')");
my $mib = 1024 * 1024;
sub file_md5
{
	my ($off, $len) = @_;
	return $node->safe_psql('postgres',
		"SELECT md5(substring(pg_read_binary_file('$file') from $off + 1 for $len))");
}
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
is($node->safe_psql('postgres', "SELECT md5(destor.blob_get('$blob'))"),
	$node->safe_psql('postgres', "SELECT md5(pg_read_binary_file('$file'))"),
	'a cold read of a 20 MiB blob (two windows) is exact');
my @pieces = ([0, 16 * $mib], [16 * $mib, 2 * $mib], [$mib, 2 * $mib], [3 * $mib, 17 * $mib]);
my $script = "SELECT destor.provider_stats_reset() \\g /dev/null\nBEGIN;\nSELECT destor.blob_open('$blob') AS fd \\gset\n";
for my $p (@pieces)
{
	$script .= "SELECT destor.blob_seek(:fd, $p->[0], 0) \\g /dev/null\n"
	  . "SELECT md5(destor.blob_read(:fd, $p->[1]));\n";
}
$script .= "COMMIT;\n";
is($node->safe_psql('postgres', $script),
	join("\n", map { file_md5(@$_) } @pieces),
	'a cold descriptor reading on, jumping back and reading on is exact');

my $log = slurp_file($node->logfile);
unlike($log, qr/TRAP|server process .* was terminated|leaked|still attached/,
	'no assertion, crash or leak reported in the server log');

$node->stop;
DestorTest::stop_delay_proxy($_) for @delays;
DestorTest::stop_s3($_) for @s3;
done_testing();
