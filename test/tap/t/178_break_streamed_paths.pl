# Second break review of the streamed batches (object_reader_read_multi_begin
# / _need / _end / _discard; a scan opens a batch's row groups as their
# bytes come in): the paths other than a plain SELECT that go through
# next_rowgroup / scan_unit_chunks, concurrency, crashes, memory and
# provider trouble the first review (t/177_*) did not take.
#
# The rig: test/tap/StreamRig.pm (six s3rver behind FaultProxies behind the
# WAN emulator, a 4+2 pool p42, a foreign table ft of three segments and
# its heap copy h).  Every result is compared with the heap's.
#  1. CREATE TABLE AS, INSERT INTO heap SELECT, COPY (SELECT) TO a file;
#  2. a cursor WITH HOLD (the rest of a streamed batch run at COMMIT), a
#     SCROLL cursor (a Material over the scan: backward fetches), two
#     cursors on ft interleaved in one transaction;
#  3. a procedure's FOR loop over ft with COMMIT / ROLLBACK every few
#     thousand rows (the loop's portal made holdable mid-batch);
#  4. a scan nested in its own scan (a PL/pgSQL function per row scans ft);
#  5. ANALYZE ft (row groups in random order, stopped early with a small
#     statistics target: the reader closed mid-batch);
#  6. memory: a dozen full scans and 30 LIMIT 1 (each dropping a batch) in
#     one session: its RssAnon must not keep growing (DESTOR_TEST_LONG=1);
#  7. providers: a provider's s3rver stopped (SIGSTOP) for 3 s mid-body
#     while a scan streams; a scan cancelled while a provider is stopped
#     (the wait for the stream's bytes answers the cancel at once); the
#     second half of every shard one provider holds zeroed on its disk
#     (stripes rebuilt from parity mid-stream);
#  8. writes while a REPEATABLE READ cursor sits mid-batch: DELETE and
#     UPDATE of ft (their scans streamed), INSERT, destor.compact(); the
#     cursor gives the rows of its snapshot, a new scan the new rows;
#  9. a table USING destor: index scans probing in random order, bitmap
#     scans, a SCROLL cursor, UPDATE / DELETE, then every row
#     (DESTOR_TEST_LONG=1);
# 10. the shared cache on: three sessions scanning cold ft at once, one of
#     them cancelled mid-batch; then warm;
# 11. kill -9 of a backend in the middle of a streamed batch: after the
#     restart every query right, the cache not poisoned;
# and at the end: no crash but the one we caused, no unexpected ERROR.
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
use IPC::Run;

# Runs with DESTOR_TEST_LONG=1: make test keeps its 20-minute budget.  This
# review found nothing broken; every scan of make test streams its batches,
# and 177_streamed_limit checks what a LIMIT moves.
DestorTest::skip_long();

my $T0 = time;
# (each s3rver its own process: one is stopped with SIGSTOP below)
my $rig = StreamRig::start('brk_paths', separate => 1);
END { local $?; StreamRig::stop($rig); }
my $node = $rig->{node};
my $base = $node->basedir;
my @s3 = @{ $rig->{s3} };
my @faults = @{ $rig->{faults} };

sub elapsed { return sprintf('%.1f s', time - $T0); }
note('loaded at ' . elapsed());

# --- helpers --------------------------------------------------------------------------------
sub run { return StreamRig::run($node, @_); }
my $all_rows = $StreamRig::ALL_ROWS;
# (the heap copy changes in section 8: its results are not kept)
sub same { return StreamRig::same($node, undef, @_); }

sub set_faults { my ($i, $spec) = @_; FaultProxy::set_faults($faults[$i]{control}, $spec); }

# a psql of its own, started now, waited for later: { h, out, err }
sub psql_start
{
	my ($app, $sql) = @_;
	my %p = (out => '', err => '');
	my $cs = $node->connstr('postgres') . " application_name=$app";
	# the SQL as an argument: IPC::Run feeds a stdin only when pumped
	$p{h} = IPC::Run::start([ 'psql', '-XAtq', '-d', $cs, '-c', $sql ],
		'<', \undef, '>', \$p{out}, '2>', \$p{err}, IPC::Run::timeout(180));
	return \%p;
}
sub psql_wait
{
	my ($p) = @_;
	eval { $p->{h}->finish; };
	$p->{err} .= "\n(harness: $@)" if $@;
	chomp $p->{out};
	return $p;
}
sub pid_of
{
	my ($app) = @_;
	for (1 .. 200)
	{
		my $pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE application_name = '$app' AND state = 'active' LIMIT 1");
		return $pid if $pid ne '';
		usleep(20_000);
	}
	return undef;
}
sub sorted_md5 { my ($text) = @_; return md5_hex(join("\n", sort grep { $_ ne '' } split /\n/, $text)); }

# --- warm up: the links measured --------------------------------------------------------------
same('full scan, first (measures the providers)', $all_rows);
note('warm at ' . elapsed());

# --- 1. CREATE TABLE AS, INSERT ... SELECT, COPY (SELECT) TO ----------------------------------
$node->safe_psql('postgres', 'CREATE TABLE c_ctas AS SELECT * FROM ft');
same('CREATE TABLE AS SELECT FROM ft', $all_rows, '', 'c_ctas', 'h');
$node->safe_psql('postgres', 'CREATE TABLE c_ins (LIKE h); INSERT INTO c_ins SELECT * FROM ft WHERE id % 2 = 0');
same('INSERT INTO heap SELECT FROM ft WHERE ...', $all_rows, '', 'c_ins', '(SELECT * FROM h WHERE id % 2 = 0)');
{
	my ($rc, $out, $err) = run("COPY (SELECT * FROM ft) TO '$base/copy_ft.txt'; COPY (SELECT * FROM h) TO '$base/copy_h.txt'");
	is($rc, 0, 'COPY (SELECT * FROM ft) TO a file: no error') or diag($err);
	is(sorted_md5(slurp_file("$base/copy_ft.txt")), sorted_md5(slurp_file("$base/copy_h.txt")),
		'COPY (SELECT * FROM ft) TO: the heap\'s rows');
	unlink "$base/copy_ft.txt", "$base/copy_h.txt";
}
{
	# destor to destor: segments written (PUT batches) while the read's
	# batches stream on the same providers
	my ($rc, $out, $err) = run(q{
CREATE FOREIGN TABLE ft2 (id int, payload text, extra text, n int)
  SERVER p42 OPTIONS (segment_rows '30000', row_group_rows '5000');
INSERT INTO ft2 SELECT * FROM ft;
});
	is($rc, 0, 'INSERT INTO ft2 SELECT * FROM ft: no error') or diag($err);
	same('INSERT INTO ft2 SELECT * FROM ft: ft2 holds the rows', $all_rows, '', 'ft2', 'h');
}
note('copies done at ' . elapsed());

# --- 2. cursors: WITH HOLD, SCROLL, two interleaved -------------------------------------------
for my $c ([ 'WITH HOLD, 10 rows then COMMIT', "BEGIN;\nDECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT id, payload, extra, n FROM {T};\nFETCH 10 FROM c;\nCOMMIT;\nFETCH 20000 FROM c;\nFETCH ALL FROM c;\nCLOSE c;" ],
	[ 'two cursors interleaved', "BEGIN;\nDECLARE a NO SCROLL CURSOR FOR SELECT id, payload, extra, n FROM {T};\nDECLARE b NO SCROLL CURSOR FOR SELECT id, n, extra, payload FROM {T};\n"
	  . "FETCH 3000 FROM a;\nFETCH 7 FROM b;\nFETCH 60000 FROM a;\nFETCH 70000 FROM b;\nFETCH ALL FROM a;\nFETCH ALL FROM b;\nCOMMIT;" ])
{
	my ($what, $tmpl) = @$c;
	(my $qf = $tmpl) =~ s/\{T\}/ft/g;
	(my $qh = $tmpl) =~ s/\{T\}/h/g;
	my ($rc, $out, $err, $to) = run($qf);
	my (undef, $hout) = run($qh);
	ok(!$to && $rc == 0, "cursor $what: no hang, no error") or diag($err);
	my @l = grep { /^\d+\|/ } split /\n/, $out;
	my @hl = grep { /^\d+\|/ } split /\n/, $hout;
	is(scalar(@l), scalar(@hl), "cursor $what: as many rows as the heap's");
	is(sorted_md5(join("\n", @l)), sorted_md5(join("\n", @hl)), "cursor $what: the heap's rows");
}
{
	# SCROLL: the plan puts a Material over the foreign scan; the moves
	# backward are served from it (rows in id order on both sides)
	my $tmpl = "BEGIN;\nDECLARE c SCROLL CURSOR FOR SELECT id, n, extra FROM {T};\nFETCH 6000 FROM c;\nFETCH BACKWARD 2500 FROM c;\n"
	  . "FETCH ABSOLUTE 3 FROM c;\nFETCH RELATIVE 50000 FROM c;\nFETCH 70000 FROM c;\nFETCH BACKWARD 10 FROM c;\nFETCH ALL FROM c;\nFETCH PRIOR FROM c;\nCOMMIT;";
	(my $qf = $tmpl) =~ s/\{T\}/ft/g;
	(my $qh = $tmpl) =~ s/\{T\}/h/g;
	my ($rc, $out, $err, $to) = run($qf);
	my (undef, $hout) = run($qh);
	ok(!$to && $rc == 0, 'SCROLL cursor, backward fetches: no hang, no error') or diag($err);
	is(md5_hex($out), md5_hex($hout), 'SCROLL cursor, backward fetches: the heap\'s rows in the heap\'s order')
	  or diag('ft: ' . substr($out, 0, 200) . "\nh:  " . substr($hout, 0, 200));
}
{
	# a cursor declared in a savepoint, left in the middle of a batch: the
	# savepoint rolled back (the portal dropped, no error), then one whose
	# transaction fails in the same savepoint (the portal failed: its
	# reader goes with its memory); the transaction scans on
	my ($rc, $out, $err) = run(q{
BEGIN;
SAVEPOINT a;
DECLARE c1 NO SCROLL CURSOR FOR SELECT * FROM ft;
FETCH 4000 FROM c1 \g /dev/null
ROLLBACK TO SAVEPOINT a;
SELECT 'x1', count(*), sum(length(payload)) FROM ft;
SAVEPOINT b;
DECLARE c2 NO SCROLL CURSOR FOR SELECT * FROM ft;
FETCH 6000 FROM c2 \g /dev/null
SELECT 1 / (id - id) FROM ft LIMIT 1;
ROLLBACK TO SAVEPOINT b;
SELECT 'x2', count(*), sum(length(payload)) FROM ft;
COMMIT;
SELECT 'x3', count(*), sum(length(payload)) FROM ft;
});
	my $want = $node->safe_psql('postgres', 'SELECT count(*) || \'|\' || sum(length(payload)) FROM h');
	my %got = map { /^(x\d)\|(.*)$/ ? ($1 => $2) : () } split /\n/, $out;
	is($got{$_} // '', $want, "cursors dropped mid-batch by ROLLBACK TO SAVEPOINT: scan $_ right") or diag($err) for qw(x1 x2 x3);
}
note('cursors done at ' . elapsed());

# --- 3. a procedure's FOR loop with COMMIT / ROLLBACK -------------------------------------
$node->safe_psql('postgres', q{
CREATE TABLE pl_out (LIKE h);
CREATE PROCEDURE loop_copy(every int, rb bool) LANGUAGE plpgsql AS $$
DECLARE r record; i int := 0;
BEGIN
  FOR r IN SELECT id, payload, extra, n FROM ft LOOP
    INSERT INTO pl_out VALUES (r.id, r.payload, r.extra, r.n);
    i := i + 1;
    IF i % every = 0 THEN
      IF rb THEN ROLLBACK; ELSE COMMIT; END IF;
    END IF;
  END LOOP;
  COMMIT;
END $$;
});
{
	my ($rc, $out, $err) = run('CALL loop_copy(7000, false)');
	is($rc, 0, 'FOR loop over ft, COMMIT every 7000 rows: no error') or diag($err);
	same('FOR loop over ft, COMMIT every 7000 rows: the rows copied', $all_rows, '', 'pl_out', 'h');
	$node->safe_psql('postgres', 'TRUNCATE pl_out');
	($rc, $out, $err) = run('CALL loop_copy(50000, true)');
	is($rc, 0, 'FOR loop over ft, ROLLBACK every 50000 rows: no error') or diag($err);
	# rows 1..100000 rolled back (ft is read in id order), the rest committed
	same('FOR loop over ft, ROLLBACK every 50000 rows: the rows after the last ROLLBACK', $all_rows, '', 'pl_out',
		'(SELECT * FROM h WHERE id > 100000)');
}
note('procedures done at ' . elapsed());

# --- 4. a scan nested in its own scan -------------------------------------------------------
for my $t ('ft', 'h')
{
	$node->safe_psql('postgres', qq{
CREATE FUNCTION probe_$t(i int) RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE r text;
BEGIN
  SELECT count(*) || ':' || coalesce(sum(n), 0) || ':' || coalesce(max(length(payload)), 0) INTO r
    FROM $t WHERE id BETWEEN i AND i + 5 OR id = 140000 - i;
  RETURN r;
END \$\$;
});
}
same('a scan nested in its own scan (a function per row)',
	'SELECT id, probe_{T}(id) FROM {T} WHERE id % 28000 = 17 ORDER BY id');
same('a nested scan stopped by LIMIT, per row of a LIMIT',
	'SELECT id, (SELECT probe_{T}(id)) FROM (SELECT id FROM {T} WHERE id % 9000 = 1 LIMIT 3) s ORDER BY id');
note('nested done at ' . elapsed());

# --- 5. ANALYZE ------------------------------------------------------------------------------
for my $target (1, 100)
{
	my ($rc, $out, $err) = run("SET default_statistics_target = $target; ANALYZE VERBOSE ft");
	is($rc, 0, "ANALYZE ft (statistics target $target): no error") or diag($err);
	note(join(' ', grep { /sampled/ } split /\n/, $err));
	is($node->safe_psql('postgres', "SELECT reltuples::bigint FROM pg_class WHERE relname = 'ft'"), '140000',
		"ANALYZE ft (statistics target $target): reltuples");
	my $nd = $node->safe_psql('postgres', "SELECT n_distinct, null_frac > 0.1 AND null_frac < 0.3 FROM pg_stats WHERE tablename = 'ft' AND attname = 'n'");
	like($nd, qr/\|t$/, "ANALYZE ft (statistics target $target): n's null fraction about a fifth ($nd)");
}
same('a scan after ANALYZE', $all_rows);
note('analyze done at ' . elapsed());

if (DestorTest::long())
{
	# --- 6. memory: many scans and many LIMIT 1 in one session ------------------------------------
	{
		my $bg = $node->background_psql('postgres', on_error_stop => 0);
		my $sq = sub { return DestorTest::bg_query($bg, @_); };
		my ($pid) = $sq->('SELECT pg_backend_pid()');
		my $rss = sub {
			open(my $fh, '<', "/proc/$pid/status") or return -1;
			my ($kb) = map { /^RssAnon:\s+(\d+)/ ? $1 : () } <$fh>;
			close $fh;
			return ($kb // -1) / 1024;
		};
		my $q = 'SELECT count(*), sum(n), sum(length(extra)), sum(length(payload)) FROM ';
		my $want = $node->safe_psql('postgres', $q . 'h');
		my $first = $node->safe_psql('postgres', 'SELECT (h.*)::text FROM h WHERE id = 1');
		my ($bad, @marks) = (0);
		for my $i (1 .. 8)
		{
			my ($out, $ret, $err) = $sq->($q . 'ft');
			$bad++, diag("scan $i: $out $err") if $out ne $want;
			for my $j (1 .. 3)
			{
				# (ft is read in id order: its first row is id 1)
				($out, $ret, $err) = $sq->('SELECT (t.*)::text FROM ft t LIMIT 1');
				$bad++, diag("LIMIT 1 ($i.$j): $out $err") if $out ne $first;
			}
			push @marks, $rss->() if $i == 2 || $i == 8;
		}
		is($bad, 0, '8 full scans and 24 LIMIT 1 in one session: every result right');
		note(sprintf('RssAnon after 2 rounds %.1f MB, after 8 %.1f MB', @marks));
		cmp_ok($marks[1] - $marks[0], '<', 24, 'RssAnon does not grow with the scans and dropped batches');
		$bg->quit;
	}
	note('memory done at ' . elapsed());
}
else
{
	note('section 6 (memory over many scans and dropped batches) runs with DESTOR_TEST_LONG=1');
}

# --- 7. providers: a stall mid-body; half of every shard on a provider zeroed --------------------
{
	my $want = (run('SELECT count(*), sum(hashtext((t.*)::text)::numeric) FROM h t'))[1];
	for my $v (1)
	{
		my $p = psql_start('stall', 'SELECT count(*), sum(hashtext((t.*)::text)::numeric) FROM ft t');
		usleep(350_000);
		$s3[$v]{handle}->signal('STOP');
		sleep 3;
		$s3[$v]{handle}->signal('CONT');
		psql_wait($p);
		is($p->{out}, $want, "s" . ($v + 1) . " stalled 3 s in the middle of a streamed scan: the heap's result")
		  or diag($p->{err});
	}
	# cancelled while a provider is stalled mid-body: the wait for the
	# stream's bytes (provider_wait_until) must answer the cancel at once
	{
		my $p = psql_start('stallcancel', 'SELECT count(*), sum(hashtext((t.*)::text)::numeric) FROM ft t');
		my $pid = pid_of('stallcancel');
		usleep(250_000);
		$s3[2]{handle}->signal('STOP');
		usleep(400_000);
		my $t0 = time;
		$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)") if $pid;
		while ($p->{h}->pumpable && time - $t0 < 8)
		{
			$p->{h}->pump_nb;
			usleep(20_000);
		}
		my $dt = time - $t0;
		$s3[2]{handle}->signal('CONT');
		psql_wait($p);
		my $how = $p->{err} =~ /canceling statement/ ? 'cancelled' : ($p->{out} eq $want ? 'done' : "wrong: $p->{out} $p->{err}");
		note(sprintf('cancel while s3 stalled: %s after %.2f s', $how, $dt));
		ok($how eq 'cancelled' || $how eq 'done', 'cancel while a provider is stalled: cancelled (or done right)') or diag($how);
		cmp_ok($dt, '<', 3, 'cancel while a provider is stalled: the backend answers within 3 s');
		is((run('SELECT count(*), sum(hashtext((t.*)::text)::numeric) FROM ft t'))[1], $want,
			'after the cancel during a stall: the same scan right');
	}
}
sub zero_half
{
	my ($path) = @_;
	my $c = slurp_file($path);
	return 0 if length($c) < 64 || substr($c, -64, 6) ne 'DESTOR';
	my $f = substr($c, -64);
	my $dlen = unpack('Q<', substr($f, 48, 8));
	return 0 if $dlen < 4096 || $dlen > length($c);
	my $from = int($dlen / 2);
	substr($c, $from, $dlen - $from) = "\0" x ($dlen - $from);
	open(my $fh, '>:raw', $path) or die "$path: $!";
	print $fh $c;
	close $fh;
	return 1;
}
StreamRig::with_shards_changed($rig, 0, \&zero_half, sub {
	my ($n) = @_;
	note("s1: the second half of $n shards zeroed");
	same('half of every shard of s1 zeroed', $all_rows);
	same('half of every shard of s1 zeroed, LIMIT deep in the segment',
		'SELECT sum(id), count(*) FROM (SELECT id FROM (SELECT * FROM {T} LIMIT 104000) a) b');
	same('half of every shard of s1 zeroed, a cursor', 'SELECT count(*) FROM {T}',
		"BEGIN; DECLARE c NO SCROLL CURSOR FOR SELECT * FROM ft; FETCH 3 FROM c \\g /dev/null\nFETCH 80000 FROM c \\g /dev/null\nCOMMIT;\n");
});
note('providers done at ' . elapsed());

# --- 8. writes while a REPEATABLE READ cursor sits mid-batch ---------------------------------
{
	$node->safe_psql('postgres', 'CREATE TABLE h_snap AS SELECT * FROM h');
	my $file = "$base/rr_cursor.txt";
	unlink "$file.1", "$file.2";
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	$bg->query_safe('DECLARE c NO SCROLL CURSOR FOR SELECT id, payload, extra, n FROM ft');
	$bg->query_safe("FETCH 3000 FROM c \\g $file.1");
	my @dml = ('DELETE FROM {T} WHERE id % 3 = 0 AND id <= 80000',
		'UPDATE {T} SET n = -n, extra = \'u\' || id WHERE id % 10 = 7',
		'INSERT INTO {T} SELECT i, md5(i::text), NULL, i % 7 FROM generate_series(140001, 150000) i');
	for my $d (@dml)
	{
		(my $qf = $d) =~ s/\{T\}/ft/g;
		(my $qh = $d) =~ s/\{T\}/h/g;
		my ($rc, $out, $err) = run($qf);
		is($rc, 0, "$qf: no error") or diag($err);
		$node->safe_psql('postgres', $qh);
	}
	same('after DELETE, UPDATE, INSERT on ft', $all_rows);
	my ($rc, $out, $err) = run("SELECT * FROM destor.compact('ft')");
	is($rc, 0, 'destor.compact(ft) while a cursor sits mid-batch: no error') or diag($err);
	note("compact: $out");
	same('after compact', $all_rows);
	$bg->{stderr} = '';
	$bg->query("FETCH ALL FROM c \\g $file.2");
	my $cerr = $bg->{stderr};
	$bg->query('COMMIT');
	$bg->quit;
	is($cerr, '', 'the REPEATABLE READ cursor read on after the writes and the compaction') or diag($cerr);
	my @got = grep { /^\d/ } map { -e $_ ? split(/\n/, slurp_file($_)) : () } "$file.1", "$file.2";
	my (undef, $hs) = run('SELECT id, payload, extra, n FROM h_snap');
	is(scalar(@got), 140000, 'the cursor: every row of its snapshot');
	is(sorted_md5(join("\n", @got)), sorted_md5($hs), 'the cursor: the rows of its snapshot');
	same('a nested scan after the writes', 'SELECT id, probe_{T}(id) FROM {T} WHERE id % 28000 = 17 ORDER BY id');
}
note('writes done at ' . elapsed());

if (DestorTest::long())
{
	# --- 9. a table USING destor ------------------------------------------------------------------------
	{
		$node->safe_psql('postgres', q{
	SET destor.default_pool = 'p42';
	SET max_parallel_workers_per_gather = 0;
	CREATE TABLE ta USING destor AS SELECT * FROM h WHERE id <= 40000 ORDER BY id;
	CREATE INDEX ON ta (id);
	CREATE TABLE hta AS SELECT * FROM h WHERE id <= 40000 ORDER BY id;
	CREATE INDEX ON hta (id);
	ANALYZE ta; ANALYZE hta;
	});
		my $nl = "SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_material = off;\n";
		my $probe = 'SELECT v.i, t.n, length(t.payload), t.extra FROM (SELECT (g * 7919) % 40000 + 1 AS i FROM generate_series(1, 60) g) v '
		  . 'JOIN {T} t ON t.id = v.i ORDER BY 1';
		note($node->safe_psql('postgres', $nl . "EXPLAIN (COSTS OFF) " . ($probe =~ s/\{T\}/ta/gr)));
		same('USING destor: index scans probing in random order', $probe, $nl, 'ta', 'hta');
		my $bm = "SET enable_seqscan = off; SET enable_indexscan = off;\n";
		same('USING destor: bitmap scan of three ranges',
			'SELECT count(*), sum(length(payload)), sum(n) FROM {T} WHERE id < 3000 OR id BETWEEN 20000 AND 26000 OR id > 39000',
			$bm, 'ta', 'hta');
		my $tmpl = "BEGIN;\nDECLARE c SCROLL CURSOR FOR SELECT id, n, extra FROM {T};\nFETCH 6000 FROM c;\nFETCH BACKWARD 2500 FROM c;\nFETCH ABSOLUTE 9 FROM c;\nFETCH ALL FROM c;\nFETCH BACKWARD 5 FROM c;\nCOMMIT;";
		my ($rc, $out, $err) = run("SET enable_indexscan = off; SET enable_bitmapscan = off;\n" . ($tmpl =~ s/\{T\}/ta/gr));
		my (undef, $hout) = run("SET enable_indexscan = off; SET enable_bitmapscan = off;\n" . ($tmpl =~ s/\{T\}/hta/gr));
		note($node->safe_psql('postgres', "EXPLAIN (COSTS OFF) SELECT id, n, extra FROM ta"));
		if ($rc != 0 && $err =~ /backward scans of destor tables are not supported/)
		{
			pass('USING destor: SCROLL cursor, backward fetches: a clear error');
		}
		else
		{
			is($rc, 0, 'USING destor: SCROLL cursor, backward fetches: no error') or diag($err);
			is(md5_hex($out), md5_hex($hout), 'USING destor: SCROLL cursor: the heap\'s rows in its order')
			  or diag('ta: ' . substr($out, 0, 200) . "\nh:  " . substr($hout, 0, 200));
		}
		for my $d ('UPDATE {T} SET n = coalesce(n, 0) + 1000, extra = NULL WHERE id % 9 = 4',
			'DELETE FROM {T} WHERE id BETWEEN 10000 AND 15000 OR id % 13 = 0',
			'UPDATE {T} SET payload = md5(payload) WHERE id IN (SELECT (g * 7919) % 40000 + 1 FROM generate_series(1, 60) g)')
		{
			for my $t ('ta', 'hta')
			{
				my ($rc, $out, $err) = run($d =~ s/\{T\}/$t/gr);
				is($rc, 0, ($d =~ s/\{T\}/$t/gr) . ': no error') or diag($err);
			}
		}
		same('USING destor after UPDATE / DELETE: every row', $all_rows, '', 'ta', 'hta');
		same('USING destor after UPDATE / DELETE: index probes', $probe, $nl, 'ta', 'hta');
		same('USING destor after UPDATE / DELETE: bitmap scan',
			'SELECT count(*), sum(length(payload)), sum(n) FROM {T} WHERE id < 3000 OR id BETWEEN 20000 AND 26000 OR id > 39000',
			$bm, 'ta', 'hta');
	}
	note('USING destor done at ' . elapsed());
}
else
{
	note('section 9 (a table USING destor) runs with DESTOR_TEST_LONG=1');
}

# --- 10. the shared cache on: three cold scans at once, one cancelled ---------------------------
# (restart_after_crash for section 11: the test clusters have it off)
$node->append_conf('postgresql.conf', "destor.cache_size = '64MB'\nrestart_after_crash = on\n");
$node->restart;
my $q3 = 'SELECT count(*), sum(hashtext((t.*)::text)::numeric) FROM ft t';
my $want3 = (run($q3 =~ s/ft t/h t/r))[1];
{
	my @p = map { psql_start("conc$_", $q3) } 0 .. 2;
	my $pid = pid_of('conc1');
	usleep(400_000);
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)") if $pid;
	psql_wait($_) for @p;
	note('the cancelled one: ' . ($p[1]{err} =~ /canceling statement/ ? 'cancelled' : "not cancelled ($p[1]{out})"));
	is($p[0]{out}, $want3, 'cache on, three cold scans at once: the first\'s result') or diag($p[0]{err});
	is($p[2]{out}, $want3, 'cache on, three cold scans at once: the third\'s result') or diag($p[2]{err});
	same('cache on, warm after the concurrent scans', $all_rows);
	$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
	same('cache on, emptied', $all_rows);
}
note('cache done at ' . elapsed());

# --- 11. kill -9 of a backend mid-batch --------------------------------------------------------
my $log_before_kill = slurp_file($node->logfile);
{
	$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
	my @p = (psql_start('victim', $q3), psql_start('bystander', "SELECT pg_sleep(0.1); $q3"));
	my $pid = pid_of('victim');
	usleep(500_000);
	kill 'KILL', $pid if $pid;
	psql_wait($_) for @p;
	note("killed $pid; the bystander: " . substr($p[1]{err}, 0, 200));
	$node->poll_query_until('postgres', 'SELECT 1', '1') or die 'no restart';
	is((run($q3))[1], $want3, 'after kill -9 mid-batch: a cold scan right');
	is((run($q3))[1], $want3, 'after kill -9 mid-batch: warm, right (the cache not poisoned)');
	same('after kill -9 mid-batch: every row', $all_rows);
	same('after kill -9 mid-batch: USING destor', $all_rows, '', 'ta', 'hta') if DestorTest::long();
}
note('kill done at ' . elapsed());

my $log = slurp_file($node->logfile);
unlike($log_before_kill, qr/TRAP|was terminated by signal|PANIC|server process .* exited with exit code/,
	'no crash in the server log before the kill');
my @crash = grep { !/terminated by signal 9: Killed/ } $log =~ /^.*(?:TRAP|was terminated by signal|PANIC|server process .* exited with exit code).*$/mg;
is(join("\n", @crash), '', 'no crash but the kill -9 in the server log');
my @errors = StreamRig::unexpected_errors($log,
	qr/canceling statement due to user request|ERROR:  division by zero|backward scans of destor tables are not supported/);
is(join("\n", @errors), '', 'no unexpected ERROR in the server log');
my @warn = grep { !/terminating connection because of crash/ } $log =~ /^.*WARNING:.*$/mg;
note('server log WARNING lines: ' . scalar(@warn));
note($_) for @warn[0 .. ($#warn < 30 ? $#warn : 30)];

$node->stop;
StreamRig::stop($rig);
done_testing();
