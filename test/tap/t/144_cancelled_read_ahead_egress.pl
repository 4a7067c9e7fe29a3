# What a provider sends is what destor counts (provider_status.bytes_read,
# the egress of destor.cost_report), also for a read-ahead nobody used: a
# scan stopped early (a cursor closed) cancels the batches it read ahead
# (provider_cancel), and those had moved their bytes all the same.  Before,
# a cancelled batch was left out of the providers' statistics altogether,
# so the bytes of every batch a LIMIT or a closed cursor threw away were
# missing from bytes_read (found by the pipelining review).
#
# Six s3rver processes behind the WAN proxy, whose trace says what each
# request was sent.  The cursor reads most of its first batch of row
# groups; meanwhile the next batch, read ahead, comes in whole; closing the
# cursor cancels it.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('cancel_egress', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $wan = DestorTest::start_wan_proxy($base, \@s3, delay_ms => 2, mbps => 400);
my @providers = map { { %{ $s3[$_] }, port => $wan->{ports}[$_] } } 0 .. $#s3;
$node->safe_psql('postgres', DestorTest::providers_sql('wan', 4, 2, @providers));

# some 12 MiB stored: two batches of row groups
DestorTest::create_wide_table($node, 'wan');
# every provider measured, so that batches are read the usual way (k
# shards asked, the others held as spares)
$node->safe_psql('postgres', 'SELECT sum(length(payload)) FROM wide');

my $stat_sql = 'SELECT sum(bytes_read) FROM destor.provider_status';
my $read0 = $node->safe_psql('postgres', $stat_sql);
my $t0 = DestorTest::wan_mark($wan);
my ($rc, $out, $err) = $node->psql('postgres', q{
BEGIN;
DECLARE c NO SCROLL CURSOR FOR SELECT id, payload FROM wide;
FETCH 100000 FROM c \g /dev/null
CLOSE c;
COMMIT;
SELECT 'closed';
}, on_error_stop => 0);
is($err, '', 'a cursor read in part and closed');
like($out, qr/closed/, 'the session goes on');
my $read1 = $node->safe_psql('postgres', $stat_sql);

my @reqs = DestorTest::wan_requests_since($wan, $t0, 1);
my ($asked, $sent) = DestorTest::wan_bytes(@reqs);
my $whole = $node->safe_psql('postgres',
	q{SELECT sum(s.size) FROM destor.shards s JOIN destor.objects o USING (object_id)
	   WHERE s.shard_index < o.data_shards});
note(sprintf('%d requests, %.1f MiB asked, %.1f MiB sent; bytes_read grew by %.1f MiB; data shards %.1f MiB',
	scalar(@reqs), $asked / 1048576, $sent / 1048576, ($read1 - $read0) / 1048576, $whole / 1048576));
# the scenario: the batch read ahead was asked for (more than the first
# batch's bytes went out), so that closing the cursor had one to cancel
cmp_ok($asked, '>', 0.6 * $whole, 'the cursor read ahead past its first batch');
cmp_ok($read1 - $read0, '>=', 0.9 * $sent,
	'bytes_read counts what the providers sent, the cancelled read-ahead included');
cmp_ok($read1 - $read0, '<=', $sent, 'and no more');

DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
