# Break review of c0737ab ("let probes finish").  A probe of a shard
# recorded missing (HINTED) in a hedged set now gets, once the set is
# complete, "as long again as the set took" (HEDGE_PROBE_TAIL_FACTOR *
# quorum_ms, at least 20 ms) before it is cancelled.  A shard is recorded
# missing because its provider failed; a provider that is back but stalls
# (or is still down behind a load balancer that accepts connections) then
# holds every hedged read of every object with a shard on it for as long
# again as its bytes took: on a thin link, seconds per batch.  Before
# c0737ab the probe was cancelled with the rest at once.
#
# Here a scan's first batch (about 11 MB over 1 MB/s links) is in after
# about 3 s; the cursor's first FETCH, which needs only that batch, should
# return soon after, not 3 s later.
#
# Fixed: the grace is given only to a probe whose answer has begun, and is
# at most 1 s; one that has not answered is cancelled with the set.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my ($node) = DestorTest::start_cluster('probe_grace_stall', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my @delay;
my @providers;
for my $i (0 .. $#s3)
{
	my $f = "$base/delay_$i";
	open(my $fh, '>', $f) or die; print $fh "0\n"; close $fh;
	my $p = DestorTest::start_delay_proxy($s3[$i]{port}, $f);
	push @delay, { %$p, file => $f };
	push @providers, { %{ $s3[$i] }, port => $p->{port} };
}
# a thin WAN in front (1 MB/s per provider)
my $wan = DestorTest::start_wan_proxy($base, \@providers, delay_ms => 5, mbps => 1);
@providers = map { { %{ $providers[$_] }, port => $wan->{ports}[$_] } } 0 .. $#providers;
$node->safe_psql('postgres', DestorTest::providers_sql('pool', 4, 2, @providers));
DestorTest::create_wide_table($node, 'pool');
my $sum = $node->safe_psql('postgres', 'SELECT sum(length(payload)) FROM wide');

# a provider holding a data shard of the table: its shards recorded missing
# (a stale record, they are there), and it stalls (a request waits 30 s)
my $p = $node->safe_psql('postgres',
	q{SELECT provider FROM destor.shards WHERE shard_index < 4 ORDER BY provider LIMIT 1});
my ($pi) = $p =~ /(\d+)$/;
note("stalled provider: $p");
$node->safe_psql('postgres', "UPDATE destor.shards SET state = 'missing' WHERE provider = '$p'");
open(my $fh, '>', $delay[$pi - 1]{file}) or die; print $fh "30000\n"; close $fh;
$node->restart;
my $t = time;
is($node->safe_psql('postgres', 'SELECT sum(length(payload)) FROM wide'), $sum, 'a scan with the probe stalled is exact');
note(sprintf('scan: %.2f s', time - $t));

my $m0 = DestorTest::wan_mark($wan);
my ($rc, $out, $err) = $node->psql('postgres', q{
BEGIN;
DECLARE c NO SCROLL CURSOR FOR SELECT id, payload FROM wide;
SELECT clock_timestamp() AS ta \gset
FETCH 40000 FROM c \g /dev/null
SELECT round(extract(epoch FROM clock_timestamp() - :'ta'::timestamptz) * 1000);
CLOSE c;
COMMIT;
}, on_error_stop => 1);
is($rc, 0, 'the cursor reads') or diag($err);
my $fetch_ms = $out + 0;
# the first batch: the requests sent at the cursor's start; its end, the
# last byte of the shards that answered
my @reqs = sort { $a->{arrived} <=> $b->{arrived} } DestorTest::wan_requests_since($wan, $m0, 1);
my $first = $reqs[0]{arrived};
my $in = 0;
for my $r (@reqs)
{
	note(sprintf('%s %s +%.2f last %s %d of %d', $r->{provider}, $r->{conn}, $r->{arrived} - $m0,
		defined $r->{last} ? sprintf('+%.2f', $r->{last} - $m0) : '-', $r->{bytes}, $r->{to} - $r->{from} + 1));
	$in = $r->{last} if $r->{arrived} < $first + 0.5 && defined $r->{last} && $r->{last} > $in;
}
my $in_ms = 1000 * ($in - $m0);
note(sprintf('first batch in at +%d ms; FETCH returned after %d ms', $in_ms, $fetch_ms));
cmp_ok($fetch_ms, '<', $in_ms + 1000,
	'the FETCH returns within a second of the last byte its batch needed, not after a grace as long as the batch for the stalled probe');

open($fh, '>', $delay[$pi - 1]{file}) or die; print $fh "0\n"; close $fh;
DestorTest::stop_wan_proxy($wan);
DestorTest::stop_delay_proxy($_) for @delay;
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
