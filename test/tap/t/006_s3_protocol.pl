# The S3 protocol details that the blob and table suites do not reach:
# virtual-hosted addressing, ListObjectsV2 pagination (more than 1000 keys),
# and a provider that accepts connections but never answers: the statement
# is cancelled by statement_timeout, promptly, and the backend is fine.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my ($node, $keyfile) = DestorTest::start_cluster('s3proto');
my $base = $node->basedir;

# --- virtual-hosted addressing ------------------------------------------------------
my $vh = { port => PostgreSQL::Test::Cluster::get_free_port(), dir => "$base/s3_vhost",
	bucket => 'destor', name => 'vh', vhost => 1 };
DestorTest::start_s3($vh);
$node->safe_psql('postgres', qq{
CREATE SERVER vh FOREIGN DATA WRAPPER destor_provider
  OPTIONS (type 's3', endpoint 'http://s3.localhost:$vh->{port}', bucket 'destor', addressing 'virtual');
CREATE USER MAPPING FOR PUBLIC SERVER vh OPTIONS (access_key_id 'S3RVER', secret_access_key 'S3RVER');
CREATE SERVER vhpool FOREIGN DATA WRAPPER destor OPTIONS (providers 'vh', data_shards '1', parity_shards '0');
});
is($node->safe_psql('postgres', "SELECT ok FROM destor.check_provider('vh')"), 't',
	'a provider with virtual-hosted addressing passes check_provider');
is($node->safe_psql('postgres',
	"SELECT convert_from(destor.blob_get(destor.blob_put('vhpool', 'virtual host')), 'UTF8')"),
	'virtual host', 'a blob round-trips with virtual-hosted addressing');
ok(scalar(grep { m{/destor/} } DestorTest::files_under($vh->{dir})) > 0,
	'the objects are in the bucket named by the host');

# --- listing beyond one page ---------------------------------------------------------
my $s3 = { port => PostgreSQL::Test::Cluster::get_free_port(), dir => "$base/s3_list",
	bucket => 'destor', name => 'ls' };
DestorTest::start_s3($s3);
$node->safe_psql('postgres', qq{
CREATE SERVER ls FOREIGN DATA WRAPPER destor_provider
  OPTIONS (type 's3', endpoint 'http://127.0.0.1:$s3->{port}', bucket 'destor');
CREATE USER MAPPING FOR PUBLIC SERVER ls OPTIONS (access_key_id 'S3RVER', secret_access_key 'S3RVER');
CREATE SERVER lspool FOREIGN DATA WRAPPER destor OPTIONS (providers 'ls', data_shards '1', parity_shards '0');
CREATE TABLE handles AS SELECT destor.blob_put('lspool', i::text::bytea) AS b FROM generate_series(1, 1100) i;
-- make them orphans: shards without catalog rows
DELETE FROM destor.blobs; DELETE FROM destor.objects WHERE pool = 'lspool';
});
is($node->safe_psql('postgres', "SELECT destor.cleanup_orphans('lspool', '0')"), '1100',
	'cleanup_orphans lists all 1100 keys across ListObjectsV2 pages and removes them');
# (the pool's metadata log, under meta/, is no orphan)
is(scalar(grep { m{/ds/} && /\._S3rver_object$/ } DestorTest::files_under($s3->{dir})), 0, 'none is left');

# --- a provider that never answers ------------------------------------------------------
my $hang_port = PostgreSQL::Test::Cluster::get_free_port();
my $listener = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1', LocalPort => $hang_port,
	Proto => 'tcp', ReuseAddr => 1) or die "cannot listen: $!";
$node->safe_psql('postgres', qq{
CREATE SERVER mute FOREIGN DATA WRAPPER destor_provider
  OPTIONS (type 's3', endpoint 'http://127.0.0.1:$hang_port', bucket 'destor');
CREATE SERVER mutepool FOREIGN DATA WRAPPER destor OPTIONS (providers 'mute', data_shards '1', parity_shards '0');
});
my $t = time;
my ($ret, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '1s'; SELECT destor.blob_put('mutepool', 'never stored')");
my $elapsed = time - $t;
like($err, qr/canceling statement due to statement timeout/,
	'statement_timeout cancels a transfer to a provider that never answers');
cmp_ok($elapsed, '<', 20, 'and the cancel is prompt, not after the request timeout');
note("cancelled after ${elapsed}s");
is($node->safe_psql('postgres', "SELECT convert_from(destor.blob_get(destor.blob_put('vhpool', 'still fine')), 'UTF8')"),
	'still fine', 'the server works normally afterwards');
close $listener;

DestorTest::stop_s3($_) for ($vh, $s3);
done_testing();
