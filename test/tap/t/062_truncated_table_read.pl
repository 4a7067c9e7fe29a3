# Issue 10: "a truncated S3 body without Content-Length is taken as success,
# not retried and not counted; three such events on different shards fail a
# table read".  TAP 031 proves it for blobs; table scans fetch column chunks
# through their own path (ranged reads of several chunks per row group), so
# this proves it for a destor table on S3 providers behind FaultProxy:
# bodies cut short on every provider, the scan still returns exactly the
# heap's rows, and each cut is counted and retried in provider_status.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('truncated_table', conf => "autovacuum = off\n");
my $base = $node->basedir;
my @servers = DestorTest::start_s3_servers(3, $base);
my @proxies;
END
{
	local $?;    # waiting for them must not change the test's exit status
	FaultProxy::stop($_) for @proxies;
	DestorTest::stop_s3($_) for @servers;
}
my @behind;
for my $s3 (@servers)
{
	my $proxy = FaultProxy::start($s3->{port}, "$s3->{dir}.faults", $s3->{dir});
	push @proxies, $proxy;
	push @behind, { %$s3, port => $proxy->{port} };
}
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 2, 1, @behind));
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE t (id int, grp int, v text, x float8) SERVER archive
  OPTIONS (row_group_rows '5000', segment_rows '20000');
CREATE TABLE h (id int, grp int, v text, x float8);
INSERT INTO h SELECT i, i % 7, md5(i::text) || repeat('z', i % 50), i / 3.0 FROM generate_series(1, 40000) i;
INSERT INTO t SELECT * FROM h;
});

sub faults
{
	my ($spec) = @_;
	FaultProxy::set_faults($_->{control}, $spec) for @proxies;
}

sub injected
{
	my $n = 0;
	$n += FaultProxy::injected($_->{control}, 'truncate') for @proxies;
	return $n;
}

my $same = q{SELECT (SELECT count(*) FROM (SELECT * FROM t EXCEPT ALL SELECT * FROM h) a)
  + (SELECT count(*) FROM (SELECT * FROM h EXCEPT ALL SELECT * FROM t) b)};

is($node->safe_psql('postgres', $same), '0', 'the table holds the heap\'s rows');

# every provider cuts its next eight GET answers short (no Content-Length):
# more than a scan's healthy batch and its first degraded one take, so
# without length checks and retries no stripe keeps two good shards of its
# 2+1; with them (retries raised so that no request can run out) every
# read is whole
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
faults("truncate 8 GET\n");
is($node->safe_psql('postgres', "SET destor.max_retries = 20; $same"), '0',
	'a full scan returns exactly the heap\'s rows although bodies are cut short on every provider');
my $cut = injected();
cmp_ok($cut, '>=', 3, "the proxies cut $cut bodies");
is($node->safe_psql('postgres', q{SELECT sum(short_bodies) FROM destor.provider_status WHERE provider LIKE 's_'}),
	$cut, 'provider_status counts every short body');
cmp_ok($node->safe_psql('postgres', q{SELECT sum(retries) FROM destor.provider_status WHERE provider LIKE 's_'}),
	'>', 0, 'short bodies were retried (the healthy path reads the parity instead of retrying)');

# the same for a scan that reads only some columns of some row groups
faults("truncate 3 GET\n");
is($node->safe_psql('postgres', q{SET destor.max_retries = 20; SELECT count(*) || '/' || sum(x)::numeric(20,3) FROM t WHERE grp = 3 AND id > 12345}),
	$node->safe_psql('postgres', q{SELECT count(*) || '/' || sum(x)::numeric(20,3) FROM h WHERE grp = 3 AND id > 12345}),
	'a pruned scan of two columns is exact too');
cmp_ok(injected(), '>=', 1, 'with its answers cut short');

faults('');
$node->stop;
FaultProxy::stop($_) for @proxies;
DestorTest::stop_s3($_) for @servers;
done_testing();
