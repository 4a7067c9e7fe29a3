# Sequential reads keep every provider's link busy (issue 11): the next
# window of an export, and the next batch of row groups of a scan, are asked
# for in the current one's last round trip, not after it has come in (which
# left each link idle for a round trip per window).  Six real s3rver
# processes behind the bench's WAN emulator (100 ms each way, 16 MB/s per
# provider and direction); its trace says when each request arrived and
# when its answer's last byte left.  Every answer is compared with the file
# imported or a heap table, also with a provider lost mid-way.
#
# The six links are alike, so once their rates are known a window is
# spread over all six (object_read_balance.c): a shard's part of a window
# is one request, or two where it wraps past the window's end (at most
# k - 1 = 3 of them a window), and a read's first two windows go out
# together (one wave), the one after them two round trips before their end.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use List::Util qw(min max);

my ($node) = DestorTest::start_cluster('pipelined', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $wan = DestorTest::start_wan_proxy($base, \@s3, delay_ms => 100, mbps => 16);
my @providers = map { { %{ $s3[$_] }, port => $wan->{ports}[$_] } } 0 .. $#s3;
$node->safe_psql('postgres', DestorTest::providers_sql('wan', 4, 2, @providers));

# The waves of data requests (ranges of 256 KiB or more) that arrived
# after the proxy's mark $t0: requests that arrived within 30 ms of a
# wave's first make up the wave.  A wave that only asks again for ranges
# asked before (a straggler's window rebuilt from parity, a spare for a
# late shard: every shard object of a stripe range has the same offsets)
# is no new window and is left out.
sub waves
{
	my ($t0) = @_;
	my @reqs = DestorTest::wan_requests_since($wan, $t0, 262144);
	my @waves;
	for my $r (sort { $a->{arrived} <=> $b->{arrived} } @reqs)
	{
		push @waves, [] if !@waves || $r->{arrived} - $waves[-1][0]{arrived} > 0.030;
		push @{ $waves[-1] }, $r;
	}
	my (@asked, @new);
	for my $w (@waves)
	{
		my $again = !grep {
			my $r = $_;
			!grep { $_->{from} <= $r->{from} && $r->{to} <= $_->{to} } @asked
		} @$w;
		if ($again)
		{
			note(sprintf('a wave of %d requests at %.3f asks again for ranges asked before', scalar(@$w), $w->[0]{arrived}));
		}
		else
		{
			push @new, $w;
		}
		push @asked, @$w;
	}
	return @new;
}

# For each wave after the first: whether it arrived before the wave before
# it had sent its answers' last bytes (answers cut short by a cancel left
# out); returns (pipelined transitions, transitions).  A transition that is
# not is shown with both waves' requests.
sub pipelined
{
	my @waves = @_;
	my ($ok, $n) = (0, 0);
	for my $w (1 .. $#waves)
	{
		my @ends = map { $_->{last} } grep { defined $_->{last} && $_->{bytes} > 0 } @{ $waves[ $w - 1 ] };
		next unless @ends;
		$n++;
		my $asked = min(map { $_->{arrived} } @{ $waves[$w] });
		my $early = $asked < max(@ends) - 0.010;
		$ok++ if $early;
		note(sprintf('wave %d asked %.3f s before wave %d ended', $w + 1, max(@ends) - $asked, $w));
		next if $early;
		for my $v ($w - 1, $w)
		{
			diag(sprintf('wave %d: %s %s-%s arrived %.3f last %s bytes %d', $v + 1, $_->{provider}, $_->{from},
					$_->{to}, $_->{arrived}, $_->{last} // '-', $_->{bytes}))
			  for @{ $waves[$v] };
		}
	}
	return ($ok, $n);
}

# --- 1. an export: 64 MiB, four windows of 16 MiB ---------------------------
# Four: the first two go out together and end together, and the fourth
# must be asked for while the backend opens them, before the third has
# come in (asked once the first had been opened, it left every link idle
# for a round trip).
my $file = "$base/input.bin";
DestorTest::write_random_file($file, 64 * 1024 * 1024);
my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('wan', '$file')");
my $file_sha = DestorTest::sha256_file($file);

for my $round ('read times unknown', 'read times known')
{
	$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()') if $round eq 'read times unknown';
	my $t0 = DestorTest::wan_mark($wan);
	$node->safe_psql('postgres', "SELECT destor.blob_export('$blob', '$base/out.bin')");
	is(DestorTest::sha256_file("$base/out.bin"), $file_sha, "export ($round): every byte as imported");
	my @waves = waves($t0);
	cmp_ok(scalar(@waves), '>=', 2, "export ($round): a wave of requests per window (the first two together)");
	my ($ok, $n) = pipelined(@waves);
	is($ok, $n, "export ($round): each window asked for before the one before it had come in");
	unlink "$base/out.bin";
}

# --- 1b. whole-blob readers read window by window, ahead ----------------------
# blob_verify (after its shards' checks, small reads) and blob_to_lo read
# the whole blob in order: a window at a time, the next one read ahead
# from the first call on.  (They used to read 4 MiB and 1 MiB at a time,
# and each call after the first started a 16 MiB read-ahead that the next
# call, asking for a part of it, dropped: two requests per shard per call.)
# blob_sha256 reads nothing: the hash is recorded at import.
my $windows = 4;
my $file_md5 = $node->safe_psql('postgres', "SELECT md5(pg_read_binary_file('$file'))");
for my $reader (
	[ 'blob_verify', "SELECT destor.blob_verify('$blob')", sub { $_[0] eq 't' } ],
	[ 'blob_to_lo', "SELECT destor.blob_to_lo('$blob')",
		sub { $node->safe_psql('postgres', "SELECT md5(lo_get($_[0]))") eq $file_md5 } ])
{
	my ($name, $sql, $check) = @$reader;
	my $t0 = DestorTest::wan_mark($wan);
	ok($check->($node->safe_psql('postgres', $sql)), "$name: every byte as imported");
	my @waves = waves($t0);
	my $requests = 0;
	$requests += scalar(@$_) for @waves;
	cmp_ok($requests, '<=', $windows * (6 + 3), "$name: no more than a request per shard and window, and its wraps");
	my ($ok, $n) = pipelined(@waves);
	cmp_ok($n, '>=', $windows - 2, "$name: a wave of requests per window (the first two together)");
	is($ok, $n, "$name: each window asked for before the one before it had come in");
}

# --- 2. a serial scan of two batches (12 MiB stored, batches of 8 MiB) -------
$node->safe_psql('postgres', q{
CREATE TABLE wide_heap (id int, payload text, extra text);
INSERT INTO wide_heap
  SELECT i, md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text), md5((i * 3)::text)
    FROM generate_series(1, 260000) i;
CREATE FOREIGN TABLE wide (id int, payload text, extra text)
  SERVER wan OPTIONS (segment_rows '1000000', row_group_rows '10000');
INSERT INTO wide SELECT * FROM wide_heap;
});
my $q = q{SELECT count(*), sum(id), md5(string_agg(payload || extra, ',' ORDER BY id)) FROM %s};
my $expect = $node->safe_psql('postgres', sprintf($q, 'wide_heap'));
my $t0 = DestorTest::wan_mark($wan);
is($node->safe_psql('postgres', "SET max_parallel_workers_per_gather = 0; " . sprintf($q, 'wide')),
	$expect, 'serial scan: the rows of the heap table');
my @waves = waves($t0);
cmp_ok(scalar(@waves), '>=', 2, 'serial scan: a wave of requests per batch');
my ($ok, $n) = pipelined(@waves);
is($ok, $n, 'serial scan: each batch asked for before the one before it had come in');

# --- 3. a provider lost: windows read hedged from the others, read ahead too --
DestorTest::stop_s3($s3[5]);
for (1 .. 2)
{
	$node->safe_psql('postgres', "SELECT destor.blob_export('$blob', '$base/out.bin')");
	is(DestorTest::sha256_file("$base/out.bin"), $file_sha, "export with s6 lost (try $_): every byte as imported");
	unlink "$base/out.bin";
}
is($node->safe_psql('postgres', "SET max_parallel_workers_per_gather = 0; " . sprintf($q, 'wide')),
	$expect, 'serial scan with s6 lost: the rows of the heap table');
is($node->safe_psql('postgres', sprintf($q, 'wide')), $expect,
	'parallel scan with s6 lost: the rows of the heap table');

DestorTest::stop_wan_proxy($wan);
$node->stop;
done_testing();
