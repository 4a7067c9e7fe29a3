# A cursor left idle past the request timeout while its scan's next batch
# is in flight, every provider healthy (some farther than others, none
# failing).  The timeout is the backend's doing: nobody read the sockets.
# The try is retried without counting (s3_transfer_finish); it used to keep
# the first try's start (first_start), so the hedged set judged the new try
# late at once, and a unit cancelled before its new try answered was noted
# as a read that took the whole idle time (provider_stats_note's cancelled
# and late branch).  Healthy providers then showed read times of the idle's
# length (latency_p50/p99 of ~9.5 s against ~1.5 s) and later scans marked
# them slow ("degraded", slow_time > 0).  Found by the break-async review.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('idle_blame', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
# every provider behind a delay proxy of its own: healthy, some farther than others
my @delays = map { DestorTest::start_delay_proxy($s3[$_]{port}, "$base/delay_$_") } 0 .. $#s3;
my @providers = map { { %{ $s3[$_] }, port => $delays[$_]{port} } } 0 .. $#s3;
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @providers));

# s1 300 ms away, s2 400 ms, ... s6 800 ms (0: no delay at all): within
# the request timeout below with room to spare, even for requests queued
# behind another on a connection of the delay proxy
sub set_delay
{
	my ($ms) = @_;
	for my $i (0 .. $#s3)
	{
		open(my $fh, '>', "$base/delay_$i") or die;
		print $fh ($ms ? $ms + 100 * $i : 0) . "\n";
		close $fh;
	}
}
set_delay(0);

# some 12 MiB stored: two scan batches, the second read ahead
$node->safe_psql('postgres', q{
CREATE TABLE wide_heap (id int, payload text, extra text);
INSERT INTO wide_heap
  SELECT i, md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text), md5((i * 3)::text)
    FROM generate_series(1, 260000) i;
CREATE FOREIGN TABLE wide (id int, payload text, extra text)
  SERVER archive OPTIONS (segment_rows '1000000', row_group_rows '10000');
INSERT INTO wide SELECT * FROM wide_heap;
});

sub marks
{
	return $node->safe_psql('postgres', q{
SELECT string_agg(provider || ' ' || state || ' errors ' || errors
                  || ' p50 ' || round(coalesce(latency_p50_ms, -1)) || ' p99 ' || round(coalesce(latency_p99_ms, -1))
                  || ' slow_time ' || slow_time, ', ' ORDER BY provider)
  FROM destor.provider_status});
}

my $q = q{SELECT count(*), sum(hashtextextended(id::text || payload, 0)) FROM %s};
my $expect = $node->safe_psql('postgres', sprintf($q, 'wide_heap'));
set_delay(300);
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
is($node->safe_psql('postgres', sprintf($q, 'wide')), $expect, 'scan exact');
is($node->safe_psql('postgres', sprintf($q, 'wide')), $expect, 'scan exact again');
my $before = marks();
unlike($before, qr/ (slow|degraded|down) errors|errors [1-9]|p99 ([4-9]\d\d\d|\d{5})|slow_time [^0]/,
	"attentive scans find every provider healthy, every read under 4 s: $before");

# The cursor reads its first row (the second batch goes out, every provider
# answers it within a second), then waits 8 s, past the request timeout
# (3 s plus 1 ms a KiB), then reads the rest.
for my $cols ('id, payload', '*')
{
	my ($rc, $out, $err) = $node->psql('postgres', qq{
SET destor.request_timeout = '3000ms';
SET destor.provider_down_interval = '60s';
BEGIN;
DECLARE c NO SCROLL CURSOR FOR SELECT $cols FROM wide;
MOVE 1 IN c;
SELECT pg_sleep(8);
MOVE ALL IN c;
COMMIT;
}, on_error_stop => 0);
	is($rc, 0, "idle cursor over $cols reads on") or diag($err);
}
my $after = marks();
unlike($after, qr/p99 ([4-9]\d\d\d|\d{5})|p50 ([4-9]\d\d\d|\d{5})/,
	"an idle cursor adds no read time of its idle to any provider: $after");
is($node->safe_psql('postgres', "SET destor.provider_down_interval = '60s'; " . sprintf($q, 'wide')),
	$expect, 'a scan after it is exact');
$after = marks();
unlike($after, qr/ (slow|degraded|down) errors|errors [1-9]|slow_time [^0]/,
	"and finds no provider slow: $after");

$node->stop;
DestorTest::stop_delay_proxy($_) for @delays;
DestorTest::stop_s3($_) for @s3;
done_testing();
