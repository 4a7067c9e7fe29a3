# Attacks on uploads begun ahead (object_writer_expect) and on broken
# uploads (ProviderUpload.broken: a part of an upload another part broke
# is given up at once and does not count).  Six s3rver processes, each
# behind a FaultProxy and a delay proxy (as in 173): pools p42 (4+2), p33
# (3+3), p21 (2+1, write_quorum = n: not hedged), and a 4+2 file pool fp.
#
# 1. Sizes right at the threshold (size/k = 8 MiB, 8 MiB + 1), random and
#    compressible, on every pool: every byte compared (SHA-256).
# 2. The begins really run while the first part is encoded: stalled begins,
#    and an import's progress looked at meanwhile.
# 3. A provider's last part fails (503) while its first is in flight: the
#    shard is dropped; its WARNING says why; its upload is not left open.
# 4. The same on two providers: a clean quorum ERROR naming the cause, no
#    catalog row, no upload left open, no secret in the message.
# 5. Begins failing (503) on one provider, on two (quorum), on a 2+1 pool.
# 6. plpgsql exception blocks: a put begun ahead rolled back, a begin quorum
#    error caught; the transaction goes on and commits.
# 7. statement_timeout and pg_cancel_backend while the begins are stalled:
#    the session goes on; no batch, memory or descriptor is left; the
#    begins that landed late are found by cleanup_orphans.
# 8. A file pool: a put begun ahead rolled back leaves no temp file.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use Digest::SHA qw(sha256_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# Runs with DESTOR_TEST_LONG=1: make test keeps its 20-minute budget, and
# 173 (parts ahead), 174 (uploads begun ahead) and 101 (hedged writes)
# attack the same writer there.
DestorTest::skip_long();

my $MB = 1024 * 1024;
my $T0 = time;
my ($node, $keyfile) = DestorTest::start_cluster('break_begin');
my $base = $node->basedir;
my $rig = DestorTest::start_fault_delay_rig($node, 6);
END
{
	local $?;
	DestorTest::stop_fault_delay_rig($rig);
}
my @s3 = @{ $rig->{s3} };
my @faults = @{ $rig->{faults} };
my @providers = @{ $rig->{providers} };
my ($fsql, @fdirs) = DestorTest::file_pool_sql($base, 'fp', 6, 4, 2);
$node->safe_psql('postgres', DestorTest::providers_sql('p42', 4, 2, @providers) . $fsql
	  . "CREATE SERVER p33 FOREIGN DATA WRAPPER destor OPTIONS (providers 'd0,d1,d2,d3,d4,d5', data_shards '3', parity_shards '3');\n"
	  . "CREATE SERVER p21 FOREIGN DATA WRAPPER destor OPTIONS (providers 'd0,d1,d2', data_shards '2', parity_shards '1');\n");

sub set_stall { my ($i, $ms) = @_; DestorTest::set_delay($rig->{stall}[$i], $ms); }
sub stall_all { set_stall($_, $_[0]) for 0 .. 5; }
sub faults { my ($i, $spec) = @_; FaultProxy::set_faults($faults[$i]{control}, $spec); }
sub clear_faults { faults($_, '') for 0 .. 5; }

my $file = "$base/input.bin";
DestorTest::write_random_file($file, 48 * $MB);
my $data = PostgreSQL::Test::Utils::slurp_file($file);
sub digest_of { my ($from, $len) = @_; return sha256_hex(substr($data, $from, $len)); }

sub sq { return $node->safe_psql('postgres', $_[0]); }
sub blob_digest { return sq("SELECT encode(sha256(destor.blob_get('$_[0]')), 'hex')"); }
sub shards_not_ok
{
	my ($b) = @_;
	return join(',', split /\n/, sq("SELECT shard_index || ':' || provider || ':' || state FROM destor.blob_shards "
		  . "WHERE blob_id = destor.blob_id('$b') AND state <> 'ok' ORDER BY shard_index"));
}
sub put_sql { my ($pool, $from, $len) = @_; return "SELECT destor.blob_put('$pool', pg_read_binary_file('$file', $from, $len))"; }
sub put { my ($pool, $from, $len, $pre) = @_; return $node->psql('postgres', ($pre // '') . put_sql($pool, $from, $len)); }
sub bq
{
	my ($s, $sql) = @_;
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}
sub uploads { return scalar(map { glob("$_->{dir}/destor/._S3rver_uploads/*") } @s3); }
sub nblobs { return sq('SELECT count(*) FROM destor.blobs'); }
sub cleanup
{
	usleep(1_100_000);
	sq("SELECT destor.cleanup_orphans('$_', '0')") for ('p42', 'p21');
}
my $writer_cxt_sql = "SELECT count(*) FROM pg_backend_memory_contexts WHERE name IN "
  . "('destor object writer', 'destor s3 started batch', 'destor s3 batch')";
sub elapsed { return sprintf('%.0f s', time - $T0); }

# --- 1. sizes at the threshold -----------------------------------------------------------------
for my $case ([ 'p42', 32 * $MB + 3 ], [ 'p42', 32 * $MB + 4 ], [ 'p33', 24 * $MB + 3 ], [ 'p21', 16 * $MB + 2 ],
	[ 'fp', 32 * $MB + 4 ])
{
	my ($pool, $len) = @$case;
	my $from = 1 + $len % 5;
	my ($rc, $b, $err) = put($pool, $from, $len);
	is($rc, 0, "$pool, $len random bytes: written") or diag($err);
	next if $rc != 0;
	is(shards_not_ok($b), '', "$pool, $len random bytes: every shard stored");
	is(blob_digest($b), digest_of($from, $len), "$pool, $len random bytes: byte for byte");
}
for my $case (DestorTest::cases(
	[ [ 'p42', 32 * $MB + 4 ], [ 'p33', 24 * $MB + 3 ], [ 'p21', 16 * $MB + 2 ], [ 'fp', 32 * $MB + 4 ] ],
	[ [ 'p21', 16 * $MB + 2 ] ]))
{
	my ($pool, $len) = @$case;
	my $expr = "convert_to(repeat('ab', $len / 2) || repeat('c', $len % 2), 'UTF8')";
	my ($rc, $b, $err) = $node->psql('postgres', "SELECT destor.blob_put('$pool', $expr)");
	is($rc, 0, "$pool, $len compressible bytes (one part): written") or diag($err);
	next if $rc != 0;
	is(shards_not_ok($b), '', "$pool, $len compressible bytes: every shard stored");
	is(sq("SELECT sha256(destor.blob_get('$b')) = sha256($expr) AND destor.blob_size('$b') = $len"), 't',
		"$pool, $len compressible bytes: byte for byte");
}
is(uploads(), 0, 'no multipart upload left open by the threshold cases');
note('sizes done at ' . elapsed());

# --- 2. the begins run while the first part is encoded ----------------------------------------
# Every provider holds what it is sent for 3 s: the begins answer after 3 s.
# Begun ahead, the import reads and encodes its first part (32 MiB) while
# they are in flight; begun in line, it reads nothing until they answer.
{
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	$s->query_safe("SELECT destor.blob_size(destor.blob_put('p42', 'warm-up'))");
	stall_all(3000);
	$s->{stdin} .= "SELECT destor.blob_import('p42', '$file');\n";
	$s->{run}->pump_nb;
	usleep(2_000_000);
	my $done = sq("SELECT coalesce(max(bytes_done), -1) FROM destor.progress WHERE pid = $pid");
	stall_all(0);
	my ($out, $err) = bq($s, "SELECT 'after'");
	like($out, qr/after/, 'the import with stalled begins ends') or diag($err);
	my ($b) = $out =~ /^(\S+)\n/;
	is(blob_digest($b), digest_of(0, 48 * $MB), 'and reads back byte for byte') if defined $b;
	cmp_ok($done, '>=', 16 * $MB,
		"begun ahead: the first part is read and encoded while the begins are in flight ($done bytes read 2 s in)");
	$s->quit;
}
note('begin ahead done at ' . elapsed());

# --- 2b. what a blob that compresses to one part pays for being begun ahead ------------------
# Every request waits 300 ms at its provider.  33 MiB that compress to a few
# KiB: written as a stream (size unknown), one PUT a shard; by blob_put
# (begun ahead), a begin, a part and a completion — two round trips more.
{
	my $expr = "convert_to(repeat('destor', 5767168), 'UTF8')";
	stall_all(300);
	my $reqs_sql = 'SELECT sum(requests) FROM destor.provider_status';
	my $r0 = $node->safe_psql('postgres', $reqs_sql);
	my $t = time;
	my ($rc1, $b1, $e1) = $node->psql('postgres', "SELECT destor.blob_put('p42', $expr)");
	my $t_put = time - $t;
	my $r1 = $node->safe_psql('postgres', $reqs_sql);
	$t = time;
	my ($rc2, $b2, $e2) = $node->psql('postgres', qq{
BEGIN;
SELECT destor.blob_create('p42') AS fd \\gset
SELECT destor.blob_write(:fd, $expr) \\gset
SELECT destor.blob_close(:fd);
COMMIT;});
	my $t_stream = time - $t;
	my $r2 = $node->safe_psql('postgres', $reqs_sql);
	stall_all(0);
	is("$rc1/$rc2", '0/0', 'a compressible 33 MiB blob written by blob_put and as a stream') or diag("$e1 $e2");
	# begun ahead from its size alone, it paid a begin and a completion a
	# shard besides its part: three requests where the stream sends one PUT
	is($r1 - $r0, $r2 - $r1,
		sprintf('blob_put of a blob that ends as one part sends as many requests as the stream (%.2f s vs %.2f s)',
			$t_put, $t_stream));
	is(sq("SELECT sha256(destor.blob_get('$b1')) = sha256(destor.blob_get('$b2'))"), 't', 'both read back the same')
	  if $rc1 == 0 && $rc2 == 0;
}

# --- 3. a provider's last part fails while its first is in flight -----------------------------
# d0 holds each piece 5 ms: its 8 MiB first part takes over half a second,
# its small last part (sent while the first still goes) answers first: 503.
{
	my $u0 = uploads();
	set_stall(0, 5);
	faults(0, "503 1 PUT\n");
	my ($rc, $b, $err) = put('p42', 7, 32 * $MB + 65536, 'SET destor.max_retries = 0; ');
	set_stall(0, 0);
	clear_faults();
	is($rc, 0, 'the last part of d0 failing first: the blob is stored') or diag($err);
	if ($rc == 0)
	{
		like(shards_not_ok($b), qr/^\d+:d0:\w+$/, 'only d0\'s shard is missing') or diag(shards_not_ok($b));
		is(blob_digest($b), digest_of(7, 32 * $MB + 65536), 'the blob reads back byte for byte');
	}
	like($err, qr/could not be written to provider "d0"/, 'a WARNING names d0') or diag($err);
	like($err, qr/503|SlowDown/, 'and its detail says what failed (the 503), not only "another part"')
	  or diag($err);
	usleep(500_000);
	is(uploads() - $u0, 0, 'd0\'s multipart upload, broken by a failed part, is not left open after the commit')
	  or diag(join("\n", map { glob("$_->{dir}/destor/._S3rver_uploads/*") } @s3));
	cleanup();
	is(uploads(), 0, 'cleanup_orphans aborts what was left');
}
note('last part first done at ' . elapsed());

# --- 4. the same on two providers: the quorum is lost ------------------------------------------
{
	my $n0 = nblobs();
	set_stall($_, 5) for (0, 2);
	faults($_, "503 1 PUT\n") for (0, 2);
	my ($rc, $b, $err) = put('p42', 3, 32 * $MB + 65536, 'SET destor.max_retries = 0; ');
	set_stall($_, 0) for (0, 2);
	clear_faults();
	isnt($rc, 0, 'two providers\' last parts failing first: the put fails');
	like($err, qr/could not write enough shards to pool "p42": 4 of 6 written, write_quorum is 5/,
		'with the quorum error') or diag($err);
	like($err, qr/503|SlowDown/, 'whose detail says what failed (the 503s)') or diag($err);
	unlike($err, qr/S3RVER|secret|access_key/i, 'and no credential');
	is(nblobs(), $n0, 'no blob is recorded');
	usleep(700_000);
	is(uploads(), 0, 'the abort leaves no multipart upload open')
	  or diag(join("\n", map { glob("$_->{dir}/destor/._S3rver_uploads/*") } @s3));
	cleanup();
}
note('quorum lost done at ' . elapsed());

# --- 5. begins failing ---------------------------------------------------------------------------
{
	faults(3, "503 1 POST\n");
	my ($rc, $b, $err) = put('p42', 11, 40 * $MB, 'SET destor.max_retries = 0; ');
	clear_faults();
	is($rc, 0, 'a begin failing on d3: the put is stored') or diag($err);
	if ($rc == 0)
	{
		like(shards_not_ok($b), qr/^\d+:d3:\w+$/, 'only d3\'s shard is missing') or diag(shards_not_ok($b));
		is(blob_digest($b), digest_of(11, 40 * $MB), 'and it reads back byte for byte');
	}
	my $n0 = nblobs();
	faults($_, "503 1 POST\n") for (3, 4);
	($rc, $b, $err) = put('p42', 13, 40 * $MB, 'SET destor.max_retries = 0; ');
	clear_faults();
	isnt($rc, 0, 'begins failing on two providers: the put fails');
	like($err, qr/could not write enough shards to pool "p42": 4 of 6 written, write_quorum is 5/,
		'with the quorum error') or diag($err);
	like($err, qr/d3.*d4|d4.*d3/s, 'naming both providers') or diag($err);
	unlike($err, qr/S3RVER/, 'and no credential');
	is(nblobs(), $n0, 'no blob is recorded');

	faults(1, "503 1 POST\n");
	($rc, $b, $err) = put('p21', 5, 16 * $MB + 2, 'SET destor.max_retries = 0; ');
	clear_faults();
	like($err, qr/could not write enough shards to pool "p21": 2 of 3 written, write_quorum is 3/,
		'a 2+1 pool (write_quorum 3): a begin failing fails the put') or diag($err);
	is(nblobs(), $n0, 'no blob is recorded');
	# (a 503 in place of a begin's answer: s3rver began that upload)
	cleanup();
	is(uploads(), 0, 'cleanup_orphans aborts every upload left by the failed begins');
}
note('begins failing done at ' . elapsed());

# --- 6. plpgsql exception blocks -----------------------------------------------------------------
{
	my $n0 = nblobs();
	my ($rc, $out, $err) = $node->psql('postgres', qq{
BEGIN;
DO \$\$ BEGIN
  PERFORM destor.blob_put('p42', pg_read_binary_file('$file', 0, ${\(40 * $MB)}));
  RAISE EXCEPTION 'boom';
EXCEPTION WHEN others THEN RAISE NOTICE 'caught %', SQLERRM;
END \$\$;
SELECT destor.blob_put('p42', pg_read_binary_file('$file', 2, ${\(36 * $MB)}));
COMMIT;});
	is($rc, 0, 'a put begun ahead rolled back by an exception block; the transaction commits') or diag($err);
	like($err, qr/caught boom/, 'the exception was caught');
	is(nblobs(), $n0 + 1, 'only the second blob is recorded');
	is(blob_digest($out), digest_of(2, 36 * $MB), 'and it reads back byte for byte') if $rc == 0;

	faults($_, "503 1 POST\n") for (1, 2);
	($rc, $out, $err) = $node->psql('postgres', qq{
SET destor.max_retries = 0;
BEGIN;
DO \$\$ BEGIN
  PERFORM destor.blob_put('p42', pg_read_binary_file('$file', 0, ${\(40 * $MB)}));
EXCEPTION WHEN others THEN RAISE NOTICE 'caught %', SQLERRM;
END \$\$;
SELECT destor.blob_put('p42', pg_read_binary_file('$file', 4, ${\(36 * $MB)}));
COMMIT;});
	clear_faults();
	is($rc, 0, 'a begin quorum error caught in an exception block; the transaction goes on') or diag($err);
	like($err, qr/caught could not write enough shards/, 'the quorum error was caught') or diag($err);
	is(nblobs(), $n0 + 2, 'one more blob is recorded');
	is(blob_digest($out), digest_of(4, 36 * $MB), 'and it reads back byte for byte') if $rc == 0;
	cleanup();
	is(uploads(), 0, 'no upload is left open');
}
note('exception blocks done at ' . elapsed());

# --- 7. timeouts and cancels while the begins are stalled -------------------------------------
{
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	$s->query_safe(put_sql('p42', 0, 40 * $MB));
	my $mem_sql = 'SELECT sum(total_bytes) FROM pg_backend_memory_contexts';
	my $m0 = $s->query_safe($mem_sql);
	my $fd0 = scalar(() = glob("/proc/$pid/fd/*"));
	my $n0 = nblobs();
	for my $round (1 .. 2)
	{
		stall_all(2500);
		$s->query_safe("SET statement_timeout = '1s'");
		my $t = time;
		my (undef, $err) = bq($s, put_sql('p42', $round, 40 * $MB));
		my $took = time - $t;
		$s->query_safe('RESET statement_timeout');
		like($err, qr/statement timeout/, "round $round: the put times out while the begins are stalled");
		cmp_ok($took, '<', 5, sprintf('promptly (%.1f s)', $took));
		is($s->query_safe($writer_cxt_sql), '0', 'no writer or s3 batch is left in the session');
		stall_all(0);
		usleep(2_000_000);    # the held begins land
	}
	# cancelled from another session
	stall_all(2500);
	$s->{stdin} .= put_sql('p42', 9, 40 * $MB) . ";\n";
	$s->{run}->pump_nb;
	usleep(800_000);
	is(sq("SELECT pg_cancel_backend($pid)"), 't', 'a put waiting for its begins is cancelled');
	my (undef, $err) = bq($s, 'SELECT 1');
	like($err, qr/canceling statement due to user request/, 'and reports the cancel');
	stall_all(0);
	usleep(2_000_000);
	is($s->query_safe($writer_cxt_sql), '0', 'no writer or s3 batch is left after the cancel');
	is(nblobs(), $n0, 'nothing of them is recorded');
	my $b = $s->query_safe(put_sql('p42', 17, 40 * $MB));
	is(blob_digest($b), digest_of(17, 40 * $MB), 'the session writes again, byte for byte');
	my $m1 = $s->query_safe($mem_sql);
	my $fd1 = scalar(() = glob("/proc/$pid/fd/*"));
	cmp_ok($m1 - $m0, '<', 2 * $MB, 'the session\'s memory did not grow') or diag("grew by " . ($m1 - $m0));
	cmp_ok($fd1, '<=', $fd0 + 2, "no descriptor is left ($fd0 before, $fd1 after)");
	$s->quit;
	cleanup();
	is(uploads(), 0, 'cleanup_orphans aborts the uploads the late begins left');
}
note('timeouts done at ' . elapsed());

# --- 8. file pool: a put begun ahead rolled back ------------------------------------------------
{
	my $f0 = scalar(map { DestorTest::files_under($_) } @fdirs);
	my ($rc, $out, $err) = $node->psql('postgres', qq{
BEGIN;
SAVEPOINT a;
SELECT destor.blob_size(destor.blob_put('fp', pg_read_binary_file('$file', 0, ${\(40 * $MB)})));
ROLLBACK TO SAVEPOINT a;
SELECT destor.blob_size(destor.blob_put('fp', convert_to(repeat('x', ${\(33 * $MB)}), 'UTF8')));
ROLLBACK;});
	is($rc, 0, 'file pool: puts begun ahead, rolled back to a savepoint and with the transaction') or diag($err);
	my @tmp = grep { /\.tmp\./ } map { DestorTest::files_under($_) } @fdirs;
	is(scalar(@tmp), 0, 'no temp file is left') or diag(join("\n", @tmp));
	is(scalar(map { DestorTest::files_under($_) } @fdirs), $f0, 'nor any shard');
}
note('done at ' . elapsed());

done_testing();
