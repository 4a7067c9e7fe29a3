# The maintenance worker: off by default; turned on with a reload, it
# rebuilds a shard lost from a provider, removes an orphaned provider object
# and applies a tiering policy without anyone calling a function, and says
# so in the server log.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my ($node, $keyfile) = DestorTest::start_cluster('maint', conf => "destor.maintenance_orphan_age = 0\n");
my $base = $node->basedir;
my $sql = '';
for my $i (1 .. 6)
{
	make_path("$base/p$i");
	$sql .= "CREATE SERVER p$i FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$base/p$i');\n";
}
$sql .= "CREATE SERVER archive FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2,p3,p4,p5,p6', data_shards '4', parity_shards '2');\n";
$node->safe_psql('postgres', $sql);

my $blob = $node->safe_psql('postgres', "SELECT destor.blob_put('archive', convert_to(repeat('keep me ', 50000), 'UTF8'))");
my ($provider, $index) = split /\|/, $node->safe_psql('postgres',
	"SELECT provider, shard_index FROM destor.blob_shards WHERE blob_id = '$blob' AND kind = 'data' LIMIT 1");
(my $hex = $blob) =~ s/-//g;
my $shard = "$base/$provider/ds/" . substr($hex, 0, 2) . "/$hex.$index";
ok(-f $shard, 'the shard file is where it should be');
my $size = -s $shard;
unlink $shard or die;

# an orphan: a shard-like object no catalog row names, in this database's
# namespace (every id it writes ends with the same 6 bytes)
my $orphan_hex = ('ab' x 10) . substr($hex, 20, 12);
my $orphan = "$base/p1/ds/ab/$orphan_hex.0";
make_path("$base/p1/ds/ab");
open(my $fh, '>', $orphan) or die;
print $fh 'left behind by a crash';
close $fh;
utime(time - 60, time - 60, $orphan);

sleep 2;
ok(!-f $shard && -f $orphan, 'with destor.maintenance_naptime = 0 (the default) nothing happens');

# a tiering policy: keep the newest month local
$node->safe_psql('postgres', q{
CREATE TABLE m (at date NOT NULL, v int) PARTITION BY RANGE (at);
CREATE TABLE m_01 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE m_02 PARTITION OF m FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE m_03 PARTITION OF m FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
INSERT INTO m SELECT date '2024-01-01' + i % 91, i FROM generate_series(1, 9100) i;
INSERT INTO destor.tiering_policies (parent, pool, keep_local) VALUES ('m', 'archive', 1);
});
my $m_sum = $node->safe_psql('postgres', 'SELECT count(*), sum(v) FROM m');

$node->safe_psql('postgres', "ALTER SYSTEM SET destor.maintenance_naptime = '1s'; SELECT pg_reload_conf()");
my $done = 0;
for (1 .. 600)
{
	if (-f $shard && !-f $orphan)
	{
		$done = 1;
		last;
	}
	usleep(100_000);
}
ok($done, 'after a reload the worker rebuilt the lost shard and removed the orphan');
# from here on, writes happen while the worker runs: give them the default grace
$node->safe_psql('postgres', "ALTER SYSTEM SET destor.maintenance_orphan_age = '1d'; SELECT pg_reload_conf()");
is(-s $shard, $size, 'the rebuilt shard has its size');
is($node->safe_psql('postgres', "SELECT convert_from(destor.blob_get('$blob'), 'UTF8') = repeat('keep me ', 50000)"),
	't', 'the blob reads');
my $found = 0;
for (1 .. 100)
{
	if (slurp_file($node->logfile) =~ /maintenance round in database "postgres": 1 shard problems found, 1 shards rebuilt, 1 orphaned provider objects removed, 2 partitions tiered/)
	{
		$found = 1;
		last;
	}
	usleep(100_000);
}
ok($found, 'the round is reported in the server log');
is($node->safe_psql('postgres', q{SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname)
	FROM pg_class WHERE relname LIKE 'm\_0_'}), 'm_01:f,m_02:f,m_03:r', 'and it applied the tiering policy');
is($node->safe_psql('postgres', 'SELECT count(*), sum(v) FROM m'), $m_sum, 'the partitioned table reads the same rows');
like(slurp_file($node->logfile), qr/LOG:  rebuilt shard $index of object $blob on provider "$provider" \(it was missing\)/,
	'and the shard it rebuilt');

is($node->safe_psql('postgres', q{SELECT enabled, naptime_s, rounds > 0, shards_rebuilt, orphans_removed,
	partitions_tiered, failed_rounds, last_error IS NULL FROM destor.maintenance_status}),
	't|1|t|1|1|2|0|t', 'destor.maintenance_status shows the rounds and what they did');

# scrubbing: with destor.maintenance_verify on, a chunk corrupted in place
# (the trailer intact, so only reading every chunk finds it) is rewritten
my $noisy = $node->safe_psql('postgres', q{SELECT destor.blob_put('archive',
	(SELECT decode(string_agg(md5(i::text), '' ORDER BY i), 'hex') FROM generate_series(1, 20000) i))});
my ($nprov, $nindex) = split /\|/, $node->safe_psql('postgres',
	"SELECT provider, shard_index FROM destor.blob_shards WHERE blob_id = '$noisy' AND kind = 'data' LIMIT 1");
(my $nhex = $noisy) =~ s/-//g;
my $nshard = "$base/$nprov/ds/" . substr($nhex, 0, 2) . "/$nhex.$nindex";
open(my $sf, '<:raw', $nshard) or die;
my $good = do { local $/; <$sf> };
close $sf;
cmp_ok(length($good), '>', 50000, 'the shard holds a chunk of incompressible data');
open($sf, '+<:raw', $nshard) or die;
seek($sf, 1000, 0);
print $sf 'XXXXXXXX';
close $sf;
sleep 3;
my $still_bad = do { open(my $f, '<:raw', $nshard) or die; local $/; my $c = <$f>; close $f; $c ne $good };
ok($still_bad, 'without verify the rounds do not notice it (its trailer is intact)');
$node->safe_psql('postgres', "ALTER SYSTEM SET destor.maintenance_verify = on; SELECT pg_reload_conf()");
my $scrubbed = 0;
for (1 .. 600)
{
	open($sf, '<:raw', $nshard) or die;
	my $now = do { local $/; <$sf> };
	close $sf;
	if ($now eq $good)
	{
		$scrubbed = 1;
		last;
	}
	usleep(100_000);
}
ok($scrubbed, 'with destor.maintenance_verify the worker found the corrupt chunk and rewrote the shard');
$node->safe_psql('postgres', "ALTER SYSTEM SET destor.maintenance_verify = off; SELECT pg_reload_conf()");

# a round that fails is recorded, and the worker goes on: run it as a role
# that may not call destor.repair()
$node->safe_psql('postgres', "CREATE ROLE maint_nobody LOGIN");
$node->append_conf('postgresql.conf', "destor.maintenance_role = 'maint_nobody'\n");
$node->restart;
ok($node->poll_query_until('postgres', 'SELECT failed_rounds >= 2 FROM destor.maintenance_status'),
	'rounds fail as the role without privileges, one after the other');
like($node->safe_psql('postgres', 'SELECT last_error FROM destor.maintenance_status'),
	qr/permission denied for function repair/, 'and the status says why');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'destor maintenance'}),
	'1', 'the worker is still there');

$node->stop;
done_testing();
