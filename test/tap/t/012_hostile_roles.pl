# Hostile roles, the parts pg_regress cannot show: a master key file that
# others may read is refused; a role that may not tier or compact a table
# fails at once instead of queueing for its lock; blob owners survive a
# dump restored into another cluster, where the role has another oid.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('hostile');
my $base = $node->basedir;
my @dirs = map { "$base/prov$_" } 1 .. 3;
mkdir $_ for @dirs;
$node->safe_psql('postgres', join("\n",
	(map { "CREATE SERVER f$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs[$_ - 1]');" } 1 .. 3),
	"CREATE SERVER pool FOREIGN DATA WRAPPER destor OPTIONS (providers 'f1,f2,f3', data_shards '2', parity_shards '1');"));

# --- the master key file --------------------------------------------------------------------
for my $mode (0640, 0604, 0644)
{
	chmod $mode, $keyfile or die;
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT destor.blob_put('pool', 'x')");
	my $octal = sprintf('%04o', $mode);
	like($err, qr/master key file "\Q$keyfile\E" has group or world access.*mode $octal/s,
		"a key file of mode $octal is refused, naming the file and the mode");
}
chmod 0600, $keyfile or die;
my $blob = $node->safe_psql('postgres', "SELECT destor.blob_put('pool', 'x')");
like($blob, qr/^[0-9a-f-]{36}$/, 'a key file of mode 0600 is used');
# the key cached by a session is not used once the file's mode has changed
my $session = $node->background_psql('postgres', on_error_stop => 0);
$session->query_safe("SELECT destor.blob_size('$blob')");
chmod 0644, $keyfile or die;
$session->query("SELECT destor.blob_get('$blob')");
like($session->{stderr}, qr/has group or world access/, 'a session that read the key notices the change of mode');
chmod 0600, $keyfile or die;
$session->quit;

# --- ownership before locks -----------------------------------------------------------------
$node->safe_psql('postgres', q{
CREATE ROLE nobody LOGIN;
CREATE TABLE events (at date, what text) PARTITION BY RANGE (at);
CREATE TABLE events_2020 PARTITION OF events FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE events_2021 PARTITION OF events FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
CREATE FOREIGN TABLE ft (a int) SERVER pool;
INSERT INTO ft VALUES (1);
});
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
# (LOCK TABLE does not take foreign tables; an ALTER locks it just as well)
$holder->query_safe("ALTER FOREIGN TABLE ft OPTIONS (ADD segment_rows '50000')");
my ($ret, $out, $err) = $node->psql('postgres',
	"SET lock_timeout = '3s'; SELECT destor.tier_partitions('events', 'pool', keep_local => 0)",
	extra_params => [ '-U', 'nobody' ]);
like($err, qr/must be owner of table events/, 'tier_partitions() checks ownership before it locks the table');
($ret, $out, $err) = $node->psql('postgres',
	"SET lock_timeout = '3s'; SELECT destor.tier_partitions('events', 'pool', older_than => '1 day')",
	extra_params => [ '-U', 'nobody' ]);
like($err, qr/must be owner of table events/, 'so does its older_than form');
($ret, $out, $err) = $node->psql('postgres', "SET lock_timeout = '3s'; SELECT destor.compact('ft')",
	extra_params => [ '-U', 'nobody' ]);
like($err, qr/must be owner of foreign table ft/, 'compact() checks ownership before it locks the table');
$holder->query_safe('COMMIT');
$holder->quit;

# --- blob owners across clusters ------------------------------------------------------------
$node->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
GRANT USAGE ON FOREIGN SERVER pool, f1, f2, f3 TO alice;
});
my $alices = $node->safe_psql('postgres', "SELECT destor.blob_put('pool', 'alice''s')", extra_params => [ '-U', 'alice' ]);
my $dump = "$base/blobs.dump";
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump -Fc');
my ($other, $other_key) = DestorTest::start_cluster('other');
system("cp '$keyfile' '$other_key'") == 0 or die;
# alice gets another oid here; a role of her old oid may exist
$other->safe_psql('postgres', join("\n", map { "CREATE ROLE filler$_;" } 1 .. 5), );
$other->safe_psql('postgres', 'CREATE ROLE alice LOGIN; CREATE ROLE nobody LOGIN; CREATE DATABASE restored');
isnt($other->safe_psql('postgres', "SELECT oid FROM pg_roles WHERE rolname = 'alice'"),
	$node->safe_psql('postgres', "SELECT oid FROM pg_roles WHERE rolname = 'alice'"),
	'alice has another oid in the other cluster');
command_ok([ 'pg_restore', '-d', $other->connstr('restored'), $dump ], 'pg_restore into the other cluster');
is($other->safe_psql('restored', "SELECT convert_from(destor.blob_get('$alices'), 'UTF8')", extra_params => [ '-U', 'alice' ]),
	"alice's", 'alice still owns and reads her blob in the other cluster');
($ret, $out, $err) = $other->psql('restored', "SELECT destor.blob_get('$alices')", extra_params => [ '-U', 'nobody' ]);
like($err, qr/does not exist or you may not read it/, 'and another role does not');
$other->stop;

done_testing();
