# Break file for small reads around a distant provider (07a7cec).
#
# Six s3rver processes behind the WAN emulator (10 ms each way, 50 MB/s);
# s4, s5 and s6 also sit behind a delay proxy (between the emulator and
# the server) whose delay this file changes as it goes: a provider that
# becomes distant, a second distant one, a near one that stalls once, a
# distant one that becomes near.  Pools 4+2, 3+3, 5+1 over all six and
# 2+1 over s1, s2, s6.  Every byte read is compared with the file it came
# from; what each provider was asked is counted from the emulator's trace.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Runs with DESTOR_TEST_LONG=1 (the longest file of make test, 150-180 s
# beside two others): 180 (run alone) tests small reads around a distant
# provider, 172 its spare, 021 and 107 exact reads under faults.
DestorTest::skip_long();

my ($node) = DestorTest::start_cluster('brkdistant', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my %dfile;
my @behind = map { { %$_ } } @s3;
for my $i (3, 4, 5)
{
	$dfile{ $s3[$i]{name} } = "$base/delay_$s3[$i]{name}";
	DestorTest::set_delay($dfile{ $s3[$i]{name} }, 0);
	my $p = DestorTest::start_delay_proxy($s3[$i]{port}, $dfile{ $s3[$i]{name} });
	$behind[$i]{port} = $p->{port};
	$behind[$i]{proxy} = $p;
}
my $wan = DestorTest::start_wan_proxy($base, \@behind, delay_ms => 10, mbps => 50);
my @prov = map { { %{ $s3[$_] }, port => $wan->{ports}[$_] } } 0 .. 5;
my $sql = DestorTest::providers_sql('p42', 4, 2, @prov);
$sql .= "CREATE SERVER p33 FOREIGN DATA WRAPPER destor OPTIONS (providers 's1,s2,s3,s4,s5,s6', data_shards '3', parity_shards '3');\n";
$sql .= "CREATE SERVER p51 FOREIGN DATA WRAPPER destor OPTIONS (providers 's1,s2,s3,s4,s5,s6', data_shards '5', parity_shards '1');\n";
$sql .= "CREATE SERVER p21 FOREIGN DATA WRAPPER destor OPTIONS (providers 's1,s2,s6', data_shards '2', parity_shards '1');\n";
$node->safe_psql('postgres', $sql);

sub delay { DestorTest::set_delay($dfile{ $_[0] }, $_[1]) }

END { local $?; for (@behind) { DestorTest::stop_delay_proxy($_->{proxy}) if $_->{proxy} } }

# blobs: 24 blocks of 64 KiB and a short last one of 1000 bytes, with a
# data shard on the provider named
my $nblocks = 24;
my $size = $nblocks * 65536 + 1000;
my %blob;

sub import_with_shard0_on
{
	my ($pool, $file, $on) = @_;
	for (1 .. 40)
	{
		my $b = $node->safe_psql('postgres', "SELECT destor.blob_import('$pool', '$file')");
		return $b
		  if $node->safe_psql('postgres',
			"SELECT shard_index FROM destor.blob_shards WHERE blob_id = destor.blob_id('$b') AND provider = '$on'")
		  eq '0';
	}
	return undef;
}
for my $c ([ 'p42', 's6' ], [ 'p42', 's5' ], [ 'p42', 's4' ], [ 'p33', 's6' ], [ 'p51', 's6' ], [ 'p21', 's6' ])
{
	my ($pool, $on) = @$c;
	my $file = "$base/in_${pool}_$on.bin";
	DestorTest::write_random_file($file, $size);
	# p33: s6 holds shard 0, so that a spare started in shard order is s6
	my $b = $pool eq 'p33' ? import_with_shard0_on($pool, $file, $on)
	  : DestorTest::import_blob_with_data_on($node, $pool, $file, $on);
	ok(defined $b, "$pool: a blob with a data shard on $on");
	$blob{"$pool/$on"} = { blob => $b, file => $file, pool => $pool };
}

# the ranges read: 8 KiB at the start of every block, and some odd ones
my @ranges = map { [ $_ * 65536, 8192 ] } 0 .. $nblocks - 1;
push @ranges, [ $nblocks * 65536, 1000 ],    # the last, short block
  [ $nblocks * 65536 + 999, 1 ],             # its last byte
  [ $size - 1, 1 ],
  [ 3 * 65536 - 100, 300 ],                  # across a block boundary
  [ 5 * 65536 + 7, 300000 ],                 # over several blocks / stripes
  [ 65536 * 7, 0 ],                          # nothing
  [ $size, 0 ],                              # nothing, at the end
  [ 65536 * 11 + 12345, 65536 ],             # a block's worth, unaligned
  [ 0, $size ];                              # everything

# The providers' states, for the notes: a near one found slow under load
# is gone around too, and then the distant one is among the k fastest
sub states
{
	return $node->safe_psql('postgres',
		"SELECT coalesce(string_agg(provider || ' ' || state, ', ' ORDER BY provider), 'all up') FROM destor.provider_status WHERE state <> 'up'");
}

# Reads every range of blob $key in one statement, each compared with the
# file; returns { wrong, n, asked => {provider => GETs} }
sub reads
{
	my ($name, $key, %o) = @_;
	my $b = $blob{$key};
	$node->safe_psql('postgres', 'SELECT destor.cache_reset()') unless $o{warm};
	my $t0 = DestorTest::wan_mark($wan);
	my $values = join(',', map { "($_->[0], $_->[1])" } @ranges);
	my ($rc, $out, $err) = $node->psql(
		'postgres', "
		SELECT count(*), count(*) FILTER (WHERE destor.blob_read('$b->{blob}', o, l)
		       IS NOT DISTINCT FROM pg_read_binary_file('$b->{file}', o, l))
		  FROM (VALUES $values) v(o, l)");
	my ($n, $same) = split /\|/, ($out // '');
	is($rc, 0, "$name ($key): no error") or diag($err);
	is($same, $n, "$name ($key): every range exact ($n ranges)") if $rc == 0;
	my %n;
	$n{ $_->{provider} }++ for grep { $_->{line} =~ /^GET/ } DestorTest::wan_requests_since($wan, $t0, 1);
	note("$name ($key): " . join(', ', map { "$_: $n{$_}" } sort keys %n) . '; ' . states());
	return \%n;
}

# How much longer a distant provider's requests take.  Distant is more
# than twice the k-th fastest's read time and 100 ms more: at 150 ms, a
# busy machine (the k-th fastest's reads at 70 ms) made s6 near.
my $FAR_MS = 250;

# What a distant provider may be asked as a spare over one reads(): a near
# one late under load starts it, at worst once a read (3 seen alone, more
# with two files beside it in CI); read as if near, it is asked for every
# block of its shard (~9 and more)
my $SPARES = 5;

# --- 1. s6 distant ($FAR_MS more per request) -----------------------------------------------
delay('s6', $FAR_MS);
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
reads('measuring', 'p42/s6');
reads('measuring again', 'p42/s6');
my $st = $node->safe_psql('postgres', "SELECT string_agg(provider || ':' || state, ' ' ORDER BY provider) FROM destor.provider_status");
note("status: $st");
for my $key ('p42/s6', 'p33/s6', 'p21/s6')
{
	my $a = reads('s6 distant', $key);
	# (at most a spare's worth: a near one late under load may start it;
	# read as if near, s6 was asked for every block of its shard, ~9)
	cmp_ok($a->{s6} // 0, '<=', $SPARES, "s6 distant, $key: nothing asked of s6 beyond a spare");
}
# 5+1: the 5th fastest is near, s6 distant; its blocks need all five others
{
	my $a = reads('s6 distant', 'p51/s6');
	# (s6 is the set's only spare: a near one late under load starts it —
	# a spare's worth, not a read of every block of its shard, ~9 here)
	cmp_ok($a->{s6} // 0, '<=', $SPARES, 's6 distant, p51/s6: s6 asked at most as a spare');
}

# --- 2. a USING destor table and a foreign table, look-ups ----------------------------------
# (written while s6 is near: the delay proxy holds every chunk a client
# sends, so a shard's upload to s6 took ~1.5 s, the write gave it up and
# recorded it missing, and every read then probed it: 2 requests a window)
delay('s6', 0);
$node->safe_psql('postgres', q{
SET destor.default_pool = 'p42';
CREATE TABLE h AS SELECT i AS id, md5(i::text) || repeat(md5((i*7)::text), 3) AS t FROM generate_series(1, 40000) i;
CREATE TABLE a USING destor AS SELECT * FROM h;
CREATE UNIQUE INDEX ON a (id);
ANALYZE a;
CREATE FOREIGN TABLE f (id int, t text) SERVER p42 OPTIONS (segment_rows '100000', row_group_rows '500');
INSERT INTO f SELECT * FROM h ORDER BY id;
});
delay('s6', $FAR_MS);
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.shards WHERE state <> 'ok'"), '0',
	'the tables are written whole (no shard missing to probe)');
my $keys = 'SELECT (i * 7919) % 40000 + 1 AS k FROM generate_series(1, 150) i';
for my $round (1 .. 2)
{
	$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
	my $t0 = DestorTest::wan_mark($wan);
	my $r = $node->safe_psql('postgres', "SET enable_seqscan = off; SET enable_bitmapscan = off;
	  SELECT count(*), count(*) FILTER (WHERE (SELECT t FROM a WHERE a.id = k) IS NOT DISTINCT FROM (SELECT t FROM h WHERE h.id = k)) FROM ($keys) ks");
	my ($n, $same) = split /\|/, $r;
	is($same, $n, "USING destor look-ups, round $round: every row the heap's ($n)");
	my $r2 = $node->safe_psql('postgres', "
	  SELECT count(*), count(*) FILTER (WHERE (SELECT t FROM f WHERE f.id = k) IS NOT DISTINCT FROM (SELECT t FROM h WHERE h.id = k)) FROM (SELECT * FROM ($keys) x LIMIT 10) ks");
	($n, $same) = split /\|/, $r2;
	is($same, $n, "foreign table small scans, round $round: every row the heap's ($n)");
	my %n;
	$n{ $_->{provider} }++ for grep { $_->{line} =~ /^GET/ } DestorTest::wan_requests_since($wan, $t0, 1);
	note("tables round $round: " . join(', ', map { "$_: $n{$_}" } sort keys %n) . '; ' . states());
	# (one reader may ask it again once destor.provider_down_interval has
	# passed without a measurement: provider_claim_probe)
	cmp_ok($n{s6} // 0, '<=', 5, "tables round $round: s6 asked at most a probe's worth") if $round == 2;
}

# --- 2b. a shard recorded missing on the distant provider: probed once an interval -----------
# Written while s6 holds each chunk a client sends for a second, the
# write gives its shard up and records it missing.  Reads probe such a
# shard (the record may be stale), without waiting for it; a probe that
# found nothing (cancelled unanswered here) is not made again for
# destor.provider_down_interval: every scan window probed it, two
# requests each, until a repair.
# (a data shard: reads that find the others ask no parity, and probe
# none; the placement is the writer's, so g is written again until so)
delay('s6', 1000);
my $g_missing = 0;
for (1 .. 8)
{
	$node->safe_psql('postgres', q{
	DROP FOREIGN TABLE IF EXISTS g;
	CREATE FOREIGN TABLE g (id int, t text) SERVER p42 OPTIONS (segment_rows '100000', row_group_rows '500');
	INSERT INTO g SELECT * FROM h ORDER BY id;
	});
	$g_missing = $node->safe_psql('postgres', q{
	  SELECT count(*) FROM destor.shards s JOIN destor.segments g ON g.object_id = s.object_id
	    JOIN destor.tables t ON t.table_id = g.table_id
	   WHERE t.relid = 'g'::regclass AND s.provider = 's6' AND s.state = 'missing' AND s.shard_index < 4});
	last if $g_missing > 0;
}
delay('s6', $FAR_MS);
cmp_ok($g_missing, '>=', 1, "g written with its data shard on s6 recorded missing ($g_missing)");
my $gscans = "SELECT count(*), count(*) FILTER (WHERE (SELECT t FROM g WHERE g.id = k) IS NOT DISTINCT FROM (SELECT t FROM h WHERE h.id = k)) FROM (SELECT * FROM ($keys) x LIMIT 10) ks";
{
	$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
	my $t0 = DestorTest::wan_mark($wan);
	my ($n, $same) = split /\|/, $node->safe_psql('postgres', $gscans);
	is($same, $n, "ten scans of g: every row the heap's ($n)");
	my @s6 = grep { $_->{provider} eq 's6' && $_->{line} =~ /^GET/ } DestorTest::wan_requests_since($wan, $t0, 1);
	note('ten scans of g: ' . scalar(@s6) . ' requests of s6');
	# (a probe is its chunks and their tags: two requests; once probed
	# unanswered, each window of the ten scans asked two more)
	cmp_ok(scalar(@s6), '<=', 4, 'ten scans of g: the missing shard on s6 probed once, not every window');
	cmp_ok(scalar(@s6), '>=', 1, 'ten scans of g: the missing shard on s6 probed');
}
{
	$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
	my $t0 = DestorTest::wan_mark($wan);
	my $out = $node->safe_psql('postgres',
		"SET destor.provider_down_interval = '2s'; SELECT pg_sleep(2.5); $gscans");
	my ($n, $same) = split /\|/, (split /\n/, $out)[-1];
	is($same, $n, "ten scans of g after the interval: every row the heap's ($n)");
	my @s6 = grep { $_->{provider} eq 's6' && $_->{line} =~ /^GET/ } DestorTest::wan_requests_since($wan, $t0, 1);
	cmp_ok(scalar(@s6), '>=', 1, 'after destor.provider_down_interval the missing shard on s6 is probed again');
}

# And a shard recorded missing that is not there, on a near provider: its
# probe is answered "not found", and that is noted as well (every read
# probed it before).
{
	my ($nb, $key);
	my $nf = "$base/in_notfound.bin";
	DestorTest::write_random_file($nf, 6 * 65536 + 5);
	for (1 .. 30)
	{
		my %before = map { $_ => 1 } grep { m{/ds/} && /\._S3rver_object$/ } DestorTest::files_under($s3[3]{dir});
		my $b = $node->safe_psql('postgres', "SELECT destor.blob_import('p42', '$nf')");
		my ($new) = grep { m{/ds/} && /\._S3rver_object$/ && !$before{$_} } DestorTest::files_under($s3[3]{dir});
		next unless defined $new && $node->safe_psql('postgres',
			"SELECT kind FROM destor.blob_shards WHERE blob_id = destor.blob_id('$b') AND provider = 's4'") eq 'data';
		($nb, $key) = ($b, $new =~ s{^\Q$s3[3]{dir}\E/destor/}{}r =~ s{\._S3rver_object$}{}r);
		unlink glob("$s3[3]{dir}/destor/$key._S3rver_*");
		last;
	}
	ok(defined $nb, "a blob whose data shard on s4 ($key) is gone");
	$node->safe_psql('postgres', "UPDATE destor.shards s SET state = 'missing' FROM destor.blob_shards b
	  WHERE b.blob_id = destor.blob_id('$nb') AND b.provider = 's4' AND s.object_id = b.blob_id AND s.shard_index = b.shard_index");
	my $read = "SELECT count(*) FILTER (WHERE destor.blob_read('$nb', o, 8192) IS NOT DISTINCT FROM pg_read_binary_file('$nf', o, 8192))
	  FROM generate_series(0, 6) i, LATERAL (SELECT i * 65536 AS o) x";
	# A probe that loses the race (cancelled before its answer, on a
	# provider as near as the others) notes nothing, by design, and the
	# next read probes again: read until a probe has had its "not found"
	# (the proxy delivered the answer), then the next reads must not ask.
	my ($first, $answered, $tries) = (0, 0, 0);
	while (!$answered && $tries++ < 6)
	{
		$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
		my $t0 = DestorTest::wan_mark($wan);
		is($node->safe_psql('postgres', $read), '7', "the blob reads exact around its missing shard ($tries)");
		my @asked = grep { $_->{line} =~ /\Q$key\E/ } DestorTest::wan_requests_since($wan, $t0, 1);
		$first += @asked;
		$answered = grep { defined $_->{first} && $_->{bytes} > 0 } @asked;
	}
	ok($answered, "a probe of the gone shard had its answer (after $tries reads)");
	$node->safe_psql('postgres', 'SELECT destor.cache_reset()');
	my $t0 = DestorTest::wan_mark($wan);
	is($node->safe_psql('postgres', $read . ' UNION ALL ' . $read), "7\n7", 'and again, twice');
	my $later = grep { $_->{line} =~ /\Q$key\E/ } DestorTest::wan_requests_since($wan, $t0, 1);
	note("the gone shard asked $first times by the first reads, $later by the next two");
	cmp_ok($first, '>=', 1, 'the first read probes the gone shard');
	cmp_ok($later, '==', 0, 'answered "not found", it is not probed again within the interval');
}

# --- 3. two distant: s5 too -----------------------------------------------------------------
delay('s5', $FAR_MS);
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
reads('measuring two', 'p42/s5');
reads('measuring two again', 'p42/s6');
for my $key ('p42/s5', 'p42/s6', 'p33/s6')
{
	my $a = reads('s5, s6 distant', $key);
	# (the sets' last spares: a near one late under load may start one)
	cmp_ok(($a->{s5} // 0) + ($a->{s6} // 0), '<=', $SPARES,
		"s5, s6 distant, $key: nothing asked of either, beyond a spare");
}
# 5+1: the 5th fastest is s5 or s6 itself: neither is distant, s6's blocks come from s6
{
	my $a = reads('s5, s6 slow, 5+1', 'p51/s6');
	cmp_ok($a->{s6} // 0, '>=', 1, '5+1 with the k-th fastest slow: s6 asked for its blocks');
}

# --- 4. a near provider that stalls once (s4: 300 ms for a while, then near again) ---------
delay('s5', 0);
delay('s6', 0);
delay('s4', 300);
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
reads('s4 stalling', 'p42/s4');
reads('s4 stalling again', 'p42/s4');
delay('s4', 0);
# s4 answers in 20 ms again; judged distant from the stall, it is gone
# around by small reads until its read times are forgotten, after
# destor.provider_down_interval (2 s here), and then asked again
$node->safe_psql('postgres', "ALTER SYSTEM SET destor.provider_down_interval = '2s'");
$node->reload;
reads('s4 near again, within the interval', 'p42/s4');
sleep(3);
{
	my $a = reads('s4 near again, after the interval', 'p42/s4');
	cmp_ok($a->{s4} // 0, '>=', 1, 's4 near again: after destor.provider_down_interval its data shard is read from it again');
}
$node->safe_psql('postgres', 'ALTER SYSTEM RESET destor.provider_down_interval');
$node->reload;

# --- 5. providers gone while s6 is distant --------------------------------------------------
delay('s6', $FAR_MS);
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
reads('measuring s6 before stops', 'p42/s6');
reads('measuring s6 before stops again', 'p42/s6');
{
	my $a = reads('s6 distant (again)', 'p42/s6');
	cmp_ok($a->{s6} // 0, '<=', $SPARES, 's6 distant again: nothing asked of it beyond a spare');
}
DestorTest::stop_s3($s3[0]);
for my $key ('p42/s6', 'p33/s6', 'p51/s6', 'p21/s6')
{
	my $a = reads('s1 gone, s6 distant', $key);
	cmp_ok($a->{s6} // 0, '>=', 1, "s1 gone, $key: s6 asked") if $key =~ /p51|p21/;
}
DestorTest::stop_s3($s3[1]);
{
	my $a = reads('s1, s2 gone, s6 distant', 'p42/s6');
	cmp_ok($a->{s6} // 0, '>=', 1, "s1, s2 gone, p42/s6: s6 asked (only four left)");
}
# Once s1's down mark has run out (destor.provider_down_interval after its
# last failure), a read that asks it again among its first k fails at once.
# The spare started in its place must be a near one (s3, s4, s5 are enough
# for 3+3): spares went in shard order (hedge_unit = shard + 1), not
# plan_hedge's ranking, and s6 holds shard 0.  And that failure must mark
# s1 down again (the mark was not renewed by later failures: it stayed
# "degraded", and every read asked it and waited for a spare).
sub s1_errors { $node->safe_psql('postgres', "SELECT errors FROM destor.provider_status WHERE provider = 's1'") }
$node->poll_query_until('postgres', "SELECT state <> 'down' FROM destor.provider_status WHERE provider = 's1'")
  or die "s1's down mark did not run out";
{
	my ($errors, $st) = (s1_errors());
	# (3+3 asks s1 among its first k or as the spare, by its shard's
	# place; 4+2 needs four of s1, s3, s4, s5 and s6: s1 among them)
	for my $key ('p33/s6', 'p42/s6', 'p42/s6')
	{
		my $a = reads("s1's mark run out, s2 gone, s6 distant", $key);
		# (spares by shard asked it 21-31 times; a late near one may start it once or so)
		cmp_ok($a->{s6} // 0, '<=', $SPARES, "s1's mark run out, s2 gone, p33/s6: three near providers left, distant s6 asked at most as a spare")
		  if $key eq 'p33/s6';
		$st = $node->safe_psql('postgres', "SELECT state FROM destor.provider_status WHERE provider = 's1'");
		last if s1_errors() > $errors;
	}
	cmp_ok(s1_errors(), '>', $errors, 's1 asked again once its down mark ran out (and failed)');
	is($st, 'down', 's1, failing again after its down mark ran out: shown down (and skipped by reads)');
}
DestorTest::start_s3($s3[0]);
DestorTest::start_s3($s3[1]);

# --- 6. the cache on ------------------------------------------------------------------------
$node->append_conf('postgresql.conf', "destor.cache_size = '32MB'\n");
$node->restart;
reads('cache on, measuring', 'p42/s6');
reads('cache on, measuring again', 'p42/s6');
{
	my $a = reads('cache on, s6 distant', 'p42/s6');
	cmp_ok($a->{s6} // 0, '<=', $SPARES, 'cache on: nothing asked of s6 beyond a spare');
	my $w = reads('cache on, warm', 'p42/s6', warm => 1);
	is($w->{s6} // 0, 0, 'cache on, warm: nothing asked of s6');
}

$node->stop;
done_testing();
