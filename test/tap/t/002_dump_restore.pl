# The catalog is ordinary PostgreSQL data: pg_dump of a database with blobs,
# restored into a fresh database that has the same master key and providers,
# reads every blob back.  Providers here are local directories.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('dump');
my $base = $node->basedir;
my @dirs = map { "$base/prov$_" } 1 .. 3;
mkdir $_ for @dirs;
$node->safe_psql('postgres', join("\n",
	(map { "CREATE SERVER f$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs[$_ - 1]');" } 1 .. 3),
	"CREATE SERVER pool FOREIGN DATA WRAPPER destor OPTIONS (providers 'f1,f2,f3', data_shards '2', parity_shards '1');",
	"CREATE TABLE docs (id int PRIMARY KEY, body bytea, b destor.blob);",
	"INSERT INTO docs SELECT i, convert_to(repeat(md5(i::text), i * 100), 'UTF8'), NULL FROM generate_series(1, 20) i;",
	"UPDATE docs SET b = destor.blob_put('pool', body);"));

my $dump = "$base/dump.sql";
command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump of a database with destor blobs');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'the dump restores into a fresh database');

is($node->safe_psql('restored', 'SELECT count(*) FROM destor.objects'), '20', 'catalog rows came along');
is($node->safe_psql('restored', 'SELECT bool_and(destor.blob_get(b) = body) FROM docs'), 't',
	'every blob reads back in the restored database');
is($node->safe_psql('restored', "SELECT count(*) FROM destor.blob_shards"), '60',
	'shard placements came along');

done_testing();
