# Regression of aeea89e, the same root cause as 140 in another caller:
# compact_packs (pack_rewrite, blob_pack.c) reads a pack's live blobs one
# object_reader_read each, in pack order: consecutive blobs continue each
# other (offset == r->last_read_end), so each read counts as sequential
# and starts a read-ahead of the window after it, up to 16 MiB (here the
# rest of the 4 MiB pack); the next blob's read asks for a window of a
# block or two and drops it.  With a data shard's provider lost this
# read-ahead is now a hedged one (reader_next_start ->
# reader_hedged_start(degraded)), where before a degraded window had none:
# compacting a 4 MiB pack asks the providers for many times the pack.
# Every blob's bytes are checked after the compaction.
# (Found by the pipelining review; fixed by reading ahead past a read's end
# only after a whole window, and by reading whole blobs window by window.)
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('pack_ahead', cache_size => '0', blob_pack_threshold => '64kB');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $wan = DestorTest::start_wan_proxy($base, \@s3, delay_ms => 5, mbps => 40);
my @providers = map { { %{ $s3[$_] }, port => $wan->{ports}[$_] } } 0 .. $#s3;
$node->safe_psql('postgres', DestorTest::providers_sql('wan', 4, 2, @providers));

# 64 blobs of 60000 bytes, packed together; every 8th deleted
$node->safe_psql('postgres', q{
CREATE TABLE hs (i int, b destor.blob, md5 text);
BEGIN;
INSERT INTO hs
  SELECT i, destor.blob_put('wan', d), md5(d)
    FROM (SELECT i, convert_to((SELECT string_agg(md5(random()::text || i || j), '')
                                 FROM generate_series(1, 1875) j), 'UTF8') AS d
            FROM generate_series(1, 64) i) s;
COMMIT;
SELECT destor.blob_delete(b) FROM hs WHERE i % 8 = 0;
DELETE FROM hs WHERE i % 8 = 0;
});
my $pack = $node->safe_psql('postgres',
	q{SELECT DISTINCT pack_id FROM destor.blobs b JOIN hs ON b.blob_id = destor.blob_id(hs.b)});
like($pack, qr/^[0-9a-f-]{36}$/, 'the blobs share one pack')
  or diag($node->safe_psql('postgres', 'SELECT count(*), count(pack_id), count(DISTINCT pack_id) FROM destor.blobs; SELECT count(*), count(b) FROM hs; SELECT b FROM hs LIMIT 2'));
my $prov = $node->safe_psql('postgres',
	"SELECT provider FROM destor.shards WHERE object_id = '$pack' AND shard_index = 0");
my ($idx) = $prov =~ /^s(\d)$/;
ok(defined $idx, "data shard 0 of the pack is on $prov");

# the pack's data shard lost; a read marks its provider down
DestorTest::stop_s3($s3[ $idx - 1 ]);
is($node->safe_psql('postgres', 'SELECT count(*) FROM hs WHERE md5(destor.blob_get(b)) = md5'), '56',
	'every live blob reads right with a data shard lost');

my $t0 = DestorTest::wan_mark($wan);
cmp_ok($node->safe_psql('postgres', "SELECT destor.compact_packs('wan', 0.1)"), '>=', 1, 'the pack is compacted');
my @reqs = DestorTest::wan_requests_since($wan, $t0);
my ($asked, $sent) = DestorTest::wan_bytes(@reqs);
note(sprintf('compact_packs: %d ranged GETs, %.1f MiB asked, %.1f MiB sent, pack 3.8 MB',
	scalar(@reqs), $asked / 1048576, $sent / 1048576));
# before the change: 11.8 MiB asked (degraded stripes of small windows); now over 45 MiB
cmp_ok($asked, '<=', 5 * 64 * 60000, 'compact_packs asks the providers for no more than before');
is($node->safe_psql('postgres', 'SELECT count(*) FROM hs WHERE md5(destor.blob_get(b)) = md5'), '56',
	'every live blob reads right after the compaction');

DestorTest::stop_wan_proxy($wan);
$node->stop;
done_testing();
