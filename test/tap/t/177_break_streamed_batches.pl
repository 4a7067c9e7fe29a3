# Break review of the streamed batches: a scan opens a batch's first row
# groups as soon as their data shards' bytes are in, while the rest of the
# batch still comes in (object_reader_read_multi_begin / _need / _end,
# provider_wait_received), falls back to waiting for the whole batch and
# reading around bad shards when a range cannot be served so, and drops
# the rest of the batch on a LIMIT, a rescan or the end of the scan.
#
# The rig (test/tap/StreamRig.pm): six s3rver, each behind a FaultProxy
# (503s, resets, truncated bodies, forged bytes, slow bodies), all behind
# the WAN emulator (slow links); a 4+2 pool; a foreign table of three
# segments (the first one two batches of row groups) with a heap copy.
# Every result is compared with the heap copy's.
#  1. (t/177_streamed_limit.pl: SELECT * ... LIMIT 1 moves far less than
#     the batch it asked for, and what moved is counted as egress);
#  2. LIMIT / OFFSET at several depths (inside the first row group, at row
#     group, batch and segment boundaries);
#  3. a cursor fetched slowly, idle longer than destor.request_timeout in
#     the middle of a streamed batch; no provider blamed for the idle time;
#  4. rescans: a correlated subquery with LIMIT, a nested loop semi join
#     (the inner scan stopped mid-batch and rescanned), LATERAL;
#  5. parallel scans, with and without LIMIT;
#  6. statement_timeout and pg_cancel_backend during a streamed batch, then
#     the same query in the same session; an ERROR of the query itself
#     mid-batch caught by a savepoint or an exception block;
#  7. faults per provider while batches stream: 503, reset, truncated
#     bodies (once: retried; always: read around), a liar (forged byte in
#     every answer), two liars (exactly k honest shards), valid chunks
#     served at the wrong place; only the faulty provider blamed;
#  8. faults injected after the scan began consuming a batch (a cursor
#     between FETCHes): a liar, a provider stopped mid-answer (also, with
#     DESTOR_TEST_LONG=1, one stopped between FETCHes, truncated answers);
#  9. concurrent scans of the table from three sessions;
# 10. providers lost (two of six: exactly k left);
# 11. column chunks of many blocks; 12. a table USING destor (bitmap scan,
#     rescans, idle cursor) — 9 to 12 with DESTOR_TEST_LONG=1 only;
# 13. cold (providers not measured) with a liar;
# 14. the shared cache on: a cursor's batch streaming while another
#     session scans, warm and partly warm scans;
# and at the end: no crash, no unexpected ERROR in the server log.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use StreamRig;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(time usleep);

# Runs with DESTOR_TEST_LONG=1: make test keeps its 20-minute budget.  Every
# scan reads its batches streamed: there 177_streamed_limit checks what a
# LIMIT moves, and 107, 163, 169 and 170_break_spread_faults scan through
# resets, truncated bodies, liars and stopped providers against heap copies.
DestorTest::skip_long();

my $T0 = time;
my $rig = StreamRig::start('brk_stream');
END { local $?; StreamRig::stop($rig); }
my $node = $rig->{node};
my $base = $node->basedir;
my @s3 = @{ $rig->{s3} };
my @faults = @{ $rig->{faults} };
my $wan = $rig->{wan};

sub elapsed { return sprintf('%.1f s', time - $T0); }

# --- the table (StreamRig: ft and its heap copy h) ---------------------------------------
note('loaded at ' . elapsed());
my $plan = $node->safe_psql('postgres',
	'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM ft');
note($plan);
my ($segs) = $plan =~ /Segments: (\d+)/;
cmp_ok($segs // 0, '>=', 2, 'the table has several segments');

# --- helpers --------------------------------------------------------------------------------
sub run { return StreamRig::run($node, @_); }
my $all_rows = $StreamRig::ALL_ROWS;
my %heap_result;
sub same { return StreamRig::same($node, \%heap_result, @_); }

sub blame { return StreamRig::blame($node); }
sub blamed_since { my ($b0, @allowed) = @_; return StreamRig::blamed_since($node, $b0, @allowed); }

sub set_faults { my ($i, $spec) = @_; FaultProxy::set_faults($faults[$i]{control}, $spec); }
sub clear_faults { set_faults($_, '') for 0 .. $#faults; }

# --- warm up: the links measured ------------------------------------------------------------
same('full scan, first', $all_rows);
my $tfull = same('full scan, measured', $all_rows);
note(sprintf('a full scan takes %.2f s (%s)', $tfull, elapsed()));

# --- 1. streaming happens: t/177_streamed_limit.pl (run alone: it reads what moved while) ---

# --- 2. LIMIT and OFFSET at several depths ----------------------------------------------
# the rows a LIMIT returns must be rows of the table, and as many
# (every depth with DESTOR_TEST_LONG=1; make test keeps its time budget)
for my $c (DestorTest::cases([ [ 1, 0 ], [ 4999, 0 ], [ 5001, 0 ], [ 3, 54998 ], [ 2, 109999 ], [ 50, 125000 ], [ 10, 139995 ] ],
	[ [ 1, 0 ], [ 5001, 0 ], [ 2, 109999 ], [ 10, 139995 ] ]))
{
	my ($lim, $off) = @$c;
	my $want = $lim;
	$want = 140000 - $off if $off + $lim > 140000;
	my ($rc, $out, $err, $to) = run(qq{
WITH x AS MATERIALIZED (SELECT * FROM ft LIMIT $lim OFFSET $off)
SELECT count(*), count(*) FILTER (WHERE (x.*)::text = (h.*)::text) FROM x LEFT JOIN h USING (id)});
	ok(!$to, "LIMIT $lim OFFSET $off: no hang");
	is($out, "$want|$want", "LIMIT $lim OFFSET $off: $want rows, each the heap's") or diag($err);
}
same('ORDER BY id LIMIT 20 OFFSET 109990', 'SELECT * FROM {T} ORDER BY id LIMIT 20 OFFSET 109990');
note('limits done at ' . elapsed());

# --- 3. a cursor fetched slowly, idle in the middle of a streamed batch -------------------
{
	my $b0 = blame();
	my $sql = q{
SET destor.request_timeout = '1500ms';
BEGIN;
DECLARE c NO SCROLL CURSOR FOR SELECT id, payload, extra, n FROM ft;
FETCH 7 FROM c;
SELECT pg_sleep(0.3);
FETCH 4000 FROM c;
SELECT pg_sleep(2.2);
FETCH 2000 FROM c;
FETCH 100000 FROM c;
SELECT pg_sleep(1);
FETCH ALL FROM c;
COMMIT;
};
	my ($rc, $out, $err, $to) = run($sql, 120);
	ok(!$to, 'slow cursor: no hang');
	is($rc, 0, 'slow cursor: no error') or diag($err);
	my @got = sort grep { /^\d+\|/ } split /\n/, $out;
	my (undef, $hout) = run('SELECT id, payload, extra, n FROM h');
	my @want = sort split /\n/, $hout;
	is(scalar(@got), scalar(@want), 'slow cursor: every row');
	is(md5_hex(join("\n", @got)), md5_hex(join("\n", @want)), 'slow cursor: the heap\'s rows');
	is(blamed_since($b0), '', 'slow cursor, idle longer than request_timeout: no provider blamed');
}
note('cursor done at ' . elapsed());

# --- 4. rescans ---------------------------------------------------------------------------
same('correlated subquery with LIMIT (a rescan each)',
	'SELECT g, (SELECT sum(id) FROM (SELECT id FROM {T} WHERE id BETWEEN g * 9000 AND g * 9000 + 2 LIMIT 3) s) '
	  . 'FROM generate_series(1, 6) g ORDER BY g');
same('nested loop semi join (the inner scan stopped mid-batch)',
	'SELECT g FROM generate_series(1, 5) g WHERE EXISTS (SELECT 1 FROM {T} WHERE {T}.id = g * 1777 + 3) ORDER BY g',
	"SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off;\n");
same('LATERAL with LIMIT',
	'SELECT g, s.id, s.n FROM generate_series(0, 4) g, LATERAL (SELECT id, n FROM {T} '
	  . 'WHERE id > g * 30000 AND id <= g * 30000 + 4 LIMIT 4) s ORDER BY 1, 2');
same('nested loop, the inner scan read whole twice',
	'SELECT v.k, count(*), sum(length(payload)) FROM (VALUES (0), (1)) v(k) JOIN {T} ON {T}.id % 2 = v.k GROUP BY v.k ORDER BY 1',
	"SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off;\n");
note('rescans done at ' . elapsed());

# --- 5. parallel scans ------------------------------------------------------------------
{
	my $par = "SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;\n"
	  . "SET min_parallel_table_scan_size = 0; SET parallel_leader_participation = on;\n";
	note($node->safe_psql('postgres', $par . 'EXPLAIN (COSTS OFF) SELECT count(*), sum(length(payload)) FROM ft'));
	same('parallel scan, aggregates', 'SELECT count(*), sum(length(payload)), sum(n), count(extra) FROM {T}', $par);
	same('parallel scan, every row', $all_rows, $par);
	my ($rc, $out, $err, $to) = run($par . q{
WITH x AS MATERIALIZED (SELECT * FROM ft LIMIT 3000)
SELECT count(*), count(*) FILTER (WHERE (x.*)::text = (h.*)::text) FROM x LEFT JOIN h USING (id)});
	ok(!$to, 'parallel LIMIT: no hang');
	is($out, '3000|3000', 'parallel LIMIT 3000: each row the heap\'s') or diag($err);
}
note('parallel done at ' . elapsed());

# --- 6. statement_timeout and cancel during a streamed batch ----------------------------
{
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $sq = sub { return DestorTest::bg_query($bg, @_); };
	my ($pid) = $sq->('SELECT pg_backend_pid()');
	my $q = 'SELECT count(*), sum(length(payload)), sum(n), count(extra) FROM ';
	my $want = $node->safe_psql('postgres', $q . 'h');
	# (0.05 and 0.7 with DESTOR_TEST_LONG=1)
	for my $frac (DestorTest::cases([ 0.05, 0.3, 0.7 ], [0.3]))
	{
		my $ms = int($tfull * 1000 * $frac) + 1;
		my ($out, $ret, $err) = $sq->("SET statement_timeout = $ms;\n${q}ft;");
		$sq->('RESET statement_timeout');
		note("timeout $ms ms: " . ($err =~ /statement timeout/ ? 'cancelled' : "not cancelled ($err)"));
		($out, $ret, $err) = $sq->("${q}ft");
		is($out, $want, "after a timeout at $ms ms, the same query in the same session") or diag($err);
	}
	# pg_cancel_backend from another session while a batch streams
	for my $delay (0.3)
	{
		$bg->{stderr} = '';
		$bg->{stdout} = '';
		$bg->{stdin} .= "${q}ft;\n\\echo __done\n\\warn __done\n";
		$bg->{run}->pump_nb;
		usleep(int($delay * 1e6));
		$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
		$bg->{run}->pump() until $bg->{stdout} =~ /__done/ && $bg->{stderr} =~ /__done/;
		note("cancel after $delay s: " . ($bg->{stderr} =~ /canceling statement/ ? 'cancelled' : 'not cancelled'));
		$bg->{stdout} = '';
		$bg->{stderr} = '';
		my ($out, $ret, $err) = $sq->("${q}ft");
		is($out, $want, "after pg_cancel_backend at $delay s, the same query in the same session") or diag($err);
	}
	# a cursor cancelled in the middle of a batch, in a savepoint; the
	# transaction goes on with another scan
	my ($out, $ret, $err) = $sq->(qq{BEGIN;
DECLARE c NO SCROLL CURSOR FOR SELECT * FROM ft;
FETCH 10 FROM c \\g /dev/null
SAVEPOINT s;
SET LOCAL statement_timeout = 50;
SELECT count(*) FROM ft, pg_sleep(0.2);
});
	note("cursor, then a timeout in a savepoint: $err");
	($out, $ret, $err) = $sq->("ROLLBACK TO SAVEPOINT s;\nFETCH 10 FROM c \\g /dev/null\n${q}ft;");
	is($out, $want, 'a cursor in the middle of a batch, a timeout in a savepoint: another scan after it') or diag($err);
	($out, $ret, $err) = $sq->("FETCH ALL FROM c \\g /dev/null\nCOMMIT;\n${q}ft");
	is($out, $want, 'and the cursor read on, committed, the same session scans again') or diag($err);
	$bg->quit;
}
# an ERROR of the query itself (not of a provider) in the middle of a
# streamed batch, caught by a savepoint / an exception block, and the same
# transaction scanning again
{
	my $want = $node->safe_psql('postgres', "SELECT count(*) || '|' || sum(length(payload)) FROM h");
	my ($rc, $out, $err) = run(q{
BEGIN;
SAVEPOINT a;
SELECT sum(1 / (id - 3000)) FROM ft;
ROLLBACK TO SAVEPOINT a;
SELECT count(*) || '|' || sum(length(payload)) FROM ft;
COMMIT;
});
	my @l = grep { /\|/ } split /\n/, $out;
	is($l[-1] // '', $want, 'an ERROR mid-batch rolled back to a savepoint: the transaction scans again') or diag($err);
	$node->safe_psql('postgres', q{
CREATE FUNCTION try_then_scan() RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  BEGIN
    PERFORM sum(1 / (id - 3000)) FROM ft;
  EXCEPTION WHEN division_by_zero THEN NULL;
  END;
  BEGIN
    PERFORM sum(1 / (id - 100500)) FROM ft;
  EXCEPTION WHEN division_by_zero THEN NULL;
  END;
  SELECT count(*) || '|' || sum(length(payload)) INTO r FROM ft;
  RETURN r;
END $$;
});
	($rc, $out, $err) = run('SELECT try_then_scan()');
	is($out, $want, 'ERRORs mid-batch caught in PL/pgSQL, then a scan in the same function') or diag($err);
}
note('cancels done at ' . elapsed());

# --- 7. faults per provider while batches stream --------------------------------------
# (one liar and two truncated bodies with DESTOR_TEST_LONG=1: two liars and
# every body truncated are the harder cases)
my @fault_cases = ([ "503 2 GET\nreset 2 GET", [ 1, 2 ], '503s and resets', 0 ],
	[ 'truncate 2 GET', [0], 'two truncated bodies (retried)', 1 ],
	[ 'truncate 1000 GET', [3], 'every body truncated', 1 ],
	[ 'flip 1000 GET', [1], 'a liar', 1 ],
	[ 'flip 1000 GET', [ 0, 4 ], 'two liars', 1 ]);
for my $c (DestorTest::cases(\@fault_cases, [ @fault_cases[ 0, 2, 4 ] ]))
{
	my ($spec, $who, $what, $limit) = @$c;
	my $b0 = blame();
	set_faults($_, "$spec\n") for @$who;
	same("$what (s" . join(',s', map { $_ + 1 } @$who) . ')', $all_rows);
	same("$what, LIMIT in the second batch",
		'SELECT sum(id), count(*) FROM (SELECT id FROM (SELECT * FROM {T} LIMIT 95000) a) b') if $limit;
	my $injected = 0;
	$injected += FaultProxy::injected($faults[$_]{control}) for @$who;
	note("$what: $injected faults injected");
	clear_faults();
	is(blamed_since($b0, map { $_ + 1 } @$who), '', "$what: no other provider blamed");
}
# a provider that serves valid chunks (and their tags) at the wrong place:
# chunks 1 and 2 of every shard it holds swapped on its disk
sub swap_chunks
{
	my ($path) = @_;
	my $c = slurp_file($path);
	return 0 if length($c) < 64 || substr($c, -64, 6) ne 'DESTOR';
	my $f = substr($c, -64);
	my $cs = unpack('V', substr($f, 28, 4));
	my $nstripes = unpack('Q<', substr($f, 32, 8));
	my $dlen = unpack('Q<', substr($f, 48, 8));
	my $tl = substr($f, 0, 8) eq 'DESTOR01' ? 8 : 16;
	return 0 if $nstripes < 4 || 3 * $cs > $dlen;
	my ($a, $b) = (substr($c, $cs, $cs), substr($c, 2 * $cs, $cs));
	substr($c, $cs, $cs) = $b;
	substr($c, 2 * $cs, $cs) = $a;
	my ($ta, $tb) = (substr($c, $dlen + $tl, $tl), substr($c, $dlen + 2 * $tl, $tl));
	substr($c, $dlen + $tl, $tl) = $tb;
	substr($c, $dlen + 2 * $tl, $tl) = $ta;
	open(my $fh, '>:raw', $path) or die "$path: $!";
	print $fh $c;
	close $fh;
	return 1;
}
StreamRig::with_shards_changed($rig, 2, \&swap_chunks, sub {
	my ($n) = @_;
	note("s3: chunks 1 and 2 swapped in $n shards");
	my $b0 = blame();
	same('chunks swapped on a provider', $all_rows);
	same('chunks swapped on a provider, LIMIT', 'SELECT sum(id), count(*) FROM (SELECT id FROM (SELECT * FROM {T} LIMIT 12000) a) b');
	is(blamed_since($b0, 3), '', 'chunks swapped: no other provider blamed');
});
note('faults done at ' . elapsed());

# --- 8. faults injected after the scan began consuming a batch ----------------------------
my (undef, $heap_rows) = run('SELECT id, payload, extra, n FROM h');
my $heap_digest = md5_hex(join("\n", sort split /\n/, $heap_rows));
my $heap_count = () = $heap_rows =~ /\n/g;
$heap_count++;
undef $heap_rows;
sub cursor_with
{
	my ($what, $during, $after) = @_;
	my $file = "$base/cursor_rows.txt";
	unlink $file;
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe('BEGIN');
	$bg->query_safe('DECLARE c NO SCROLL CURSOR FOR SELECT id, payload, extra, n FROM ft');
	$bg->query_safe("FETCH 6000 FROM c \\g $file.1");
	$during->();
	$bg->{stderr} = '';
	$bg->query("FETCH ALL FROM c \\g $file.2");
	my $err = $bg->{stderr};
	$bg->query('COMMIT');
	$bg->quit;
	$after->() if $after;
	is($err, '', "$what: no error") or diag($err);
	my @got = sort grep { /^\d/ } map { -e $_ ? split(/\n/, slurp_file($_)) : () } "$file.1", "$file.2";
	is(scalar(@got), $heap_count, "$what: every row");
	is(md5_hex(join("\n", @got)), $heap_digest, "$what: the heap's rows");
}
# (a provider stopped and truncated bodies with DESTOR_TEST_LONG=1: a liar
# and a provider stopped mid-answer are the harder cases)
{
	my $b0;
	if (DestorTest::long())
	{
		cursor_with('a data provider stopped between FETCHes', sub { DestorTest::stop_s3($s3[1]) },
			sub { DestorTest::start_s3($s3[1]) });
	}
	$b0 = blame();
	cursor_with('a liar from the second FETCH on', sub { set_faults(2, "flip 1000 GET\n") }, \&clear_faults);
	is(blamed_since($b0, 3), '', 'a liar mid-cursor: no other provider blamed');
	if (DestorTest::long())
	{
		$b0 = blame();
		cursor_with('truncated bodies from the second FETCH on', sub { set_faults(0, "truncate 1000 GET\n") },
			\&clear_faults);
		is(blamed_since($b0, 1), '', 'truncated bodies mid-cursor: no other provider blamed');
	}
	# a provider stopped while it sends a slow answer (the batch is cut mid-body)
	set_faults(3, "slow 1000 GET\n");
	cursor_with('a slow provider stopped in the middle of its answers',
		sub { usleep(300_000); DestorTest::stop_s3($s3[3]) },
		sub { clear_faults(); DestorTest::start_s3($s3[3]) });
}
note('mid-cursor faults done at ' . elapsed());

# Sections 9 to 12 run with DESTOR_TEST_LONG=1 (some 15 s more): the
# paths they take are the ones above, through other doors.
if ($ENV{DESTOR_TEST_LONG})
{
	# --- 9. concurrent scans -----------------------------------------------------------------
	{
		my $want = $node->safe_psql('postgres', 'SELECT count(*), sum(length(payload)), sum(n) FROM h');
		my @bgs = map { $node->background_psql('postgres', on_error_stop => 0) } 1 .. 2;
		for my $i (0 .. 1)
		{
			my $sql = $i == 0 ? 'SELECT count(*), sum(length(payload)), sum(n) FROM ft'
			  : 'SELECT count(*), sum(length(payload)), sum(n) FROM (SELECT * FROM ft LIMIT 140000) s';
			$bgs[$i]{stdin} .= "$sql;\n\\echo __done\n";
			$bgs[$i]{run}->pump_nb;
		}
		same('a scan while two others run', $all_rows);
		for my $bg (@bgs)
		{
			$bg->{run}->pump() until $bg->{stdout} =~ /__done/;
			my ($out) = $bg->{stdout} =~ /^(.*)\n__done/m;
			is($out, $want, 'a concurrent scan: the heap\'s result');
			$bg->quit;
		}
	}

	# --- 10. providers lost ------------------------------------------------------------------
	{
		DestorTest::stop_s3($s3[0]);
		DestorTest::stop_s3($s3[4]);
		same('two providers stopped (exactly k left)', $all_rows);
		same('two providers stopped, LIMIT', 'SELECT sum(id), count(*) FROM (SELECT id, payload FROM {T} LIMIT 7000) s');
		DestorTest::start_s3($s3[0]);
		DestorTest::start_s3($s3[4]);
	}
	same('all back', $all_rows);

	# --- 11. a column chunk of many blocks ------------------------------------------------------
	$node->safe_psql('postgres', q{
	CREATE TABLE hb (id int, v text);
	INSERT INTO hb SELECT i, (SELECT string_agg(md5((i * 1000 + j)::text), '') FROM generate_series(1, 100) j)
	  FROM generate_series(1, 1200) i;
	CREATE FOREIGN TABLE fb (id int, v text) SERVER p42 OPTIONS (segment_rows '100000', row_group_rows '500');
	INSERT INTO fb SELECT * FROM hb ORDER BY id;
	});
	same('chunks of many blocks, every row', $all_rows, '', 'fb', 'hb');
	same('chunks of many blocks, LIMIT', 'SELECT sum(id), sum(length(v)) FROM (SELECT * FROM {T} LIMIT 501) s', '', 'fb', 'hb');
	{
		my $b0 = blame();
		set_faults(3, "flip 1000 GET\n");
		same('chunks of many blocks, a liar', $all_rows, '', 'fb', 'hb');
		set_faults(3, "truncate 1000 GET\n");
		same('chunks of many blocks, truncated bodies', $all_rows, '', 'fb', 'hb');
		clear_faults();
		is(blamed_since($b0, 4), '', 'chunks of many blocks: no other provider blamed');
	}

	# --- 12. a table USING destor -------------------------------------------------------------
	$node->safe_psql('postgres', q{
	SET destor.default_pool = 'p42';
	SET max_parallel_workers_per_gather = 0;
	CREATE TABLE ta USING destor AS SELECT * FROM h WHERE id <= 40000 ORDER BY id;
	CREATE INDEX ON ta (id);
	CREATE VIEW ha AS SELECT * FROM h WHERE id <= 40000;
	ANALYZE ta;
	});
	same('USING destor, every row', $all_rows, '', 'ta', 'ha');
	same('USING destor, LIMIT', 'SELECT sum(id), count(*) FROM (SELECT id FROM (SELECT * FROM {T} LIMIT 7001) a) b', '', 'ta', 'ha');
	same('USING destor, bitmap scan', 'SELECT count(*), sum(length(payload)) FROM {T} WHERE id BETWEEN 3000 AND 23000',
		"SET enable_seqscan = off; SET enable_indexscan = off;\n", 'ta', 'ha');
	same('USING destor, nested loop semi join (rescans)',
		'SELECT g FROM generate_series(1, 4) g WHERE EXISTS (SELECT 1 FROM {T} WHERE {T}.n = g) ORDER BY g',
		"SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off; SET enable_indexscan = off; SET enable_bitmapscan = off;\n",
		'ta', 'ha');
	{
		my ($rc, $out, $err, $to) = run(q{
	SET destor.request_timeout = '1500ms';
	BEGIN;
	DECLARE c NO SCROLL CURSOR FOR SELECT id, payload FROM ta;
	FETCH 3 FROM c;
	SELECT pg_sleep(2.5);
	FETCH ALL FROM c;
	COMMIT;
	});
		ok(!$to && $rc == 0, 'USING destor, idle cursor: no hang, no error') or diag($err);
		my @got = sort grep { /^\d+\|/ } split /\n/, $out;
		my (undef, $hout) = run('SELECT id, payload FROM ha');
		is(md5_hex(join("\n", @got)), md5_hex(join("\n", sort split /\n/, $hout)), 'USING destor, idle cursor: the heap\'s rows');
	}
	note('large chunks and USING destor done at ' . elapsed());
}
else
{
	note('sections 9 to 12 (concurrent scans, providers lost, large chunks, USING destor) run with DESTOR_TEST_LONG=1');
}

# --- 13. cold: after a restart (no provider measured), a liar --------------------------------
{
	$node->restart;
	my $b0 = blame();
	set_faults(1, "flip 1000 GET\n");
	same('cold, a liar', $all_rows);
	same('cold, a liar, LIMIT', 'SELECT sum(id), count(*) FROM (SELECT id FROM (SELECT * FROM {T} LIMIT 15000) a) b');
	clear_faults();
	is(blamed_since($b0, 2), '', 'cold, a liar: no other provider blamed');
}

# --- 14. the shared cache on: a cursor's batch streams while another session scans ------------
{
	$node->append_conf('postgresql.conf', "destor.cache_size = '64MB'\n");
	$node->restart;
	my $file = "$base/cache_cursor.txt";
	unlink "$file.1", "$file.2";
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe('BEGIN');
	$bg->query_safe('DECLARE c NO SCROLL CURSOR FOR SELECT id, payload, extra, n FROM ft');
	$bg->query_safe("FETCH 2000 FROM c \\g $file.1");
	same('cache on: a scan while a cursor sits in the middle of a batch', $all_rows);
	$bg->{stderr} = '';
	$bg->query("FETCH ALL FROM c \\g $file.2");
	my $err = $bg->{stderr};
	$bg->query('COMMIT');
	$bg->quit;
	is($err, '', 'cache on: the cursor read on without error');
	my @got = sort grep { /^\d/ } map { -e $_ ? split(/\n/, slurp_file($_)) : () } "$file.1", "$file.2";
	is(md5_hex(join("\n", @got)), $heap_digest, 'cache on: the cursor\'s rows are the heap\'s');
	same('cache on, warm', $all_rows);
	$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
	set_faults(4, "flip 1000 GET\n");
	same('cache on, emptied, a liar', $all_rows);
	same('cache on, a liar, LIMIT', 'SELECT sum(id), count(*) FROM (SELECT id FROM (SELECT * FROM {T} LIMIT 95000) a) b');
	clear_faults();
	same('cache on, partly warm, LIMIT', 'SELECT sum(id), count(*) FROM (SELECT id FROM (SELECT * FROM {T} LIMIT 130000) a) b');
}
note('all done at ' . elapsed());

my $log = slurp_file($node->logfile);
unlike($log, qr/TRAP|was terminated by signal|PANIC|server process .* exited with exit code/,
	'no crash in the server log');
my @errors = StreamRig::unexpected_errors($log,
	qr/canceling statement due to (statement timeout|user request)|ERROR:  division by zero/);
is(join("\n", @errors), '', 'no unexpected ERROR in the server log');
my @warn = $log =~ /^.*WARNING:.*$/mg;
note('server log WARNING lines: ' . scalar(@warn));
note($_) for @warn[0 .. ($#warn < 40 ? $#warn : 40)];

$node->stop;
StreamRig::stop($rig);
done_testing();
