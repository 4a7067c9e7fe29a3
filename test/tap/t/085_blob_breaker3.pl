# Blobs through pg_dump when a role is missing (issue 15, breaker15c F4).
#
# destor.blobs is an extension configuration table: pg_dump writes its rows
# as one COPY, owners and grantees by name.  Restored where one of those
# roles does not exist (a per-database dump restored into another cluster
# without pg_dumpall --roles-only first, or after the role was dropped),
# large objects lose only the failing ALTER LARGE OBJECT OWNER / GRANT of
# that one object.  The blobs' COPY used to fail as a whole (regrole and
# aclitem[] input), losing every blob of the database; the owner and acl
# columns are now destor.restorable_role / restorable_acl: a missing owner
# gives the blob to the restoring role, a grant naming a missing role is
# dropped, each with a WARNING, and grants of roles that exist are kept.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('blobbreaker3', conf => "autovacuum = off\n",
	blob_pack_threshold => '64kB');
my ($sql) = DestorTest::file_pool_sql($node->basedir, 'pool', 3, 2, 1);
$node->safe_psql('postgres', $sql);
$node->safe_psql('postgres', q{
CREATE ROLE brk3_owner;
CREATE ROLE brk3_reader;
CREATE ROLE brk3_keeper;
GRANT USAGE ON FOREIGN SERVER pool, f1, f2, f3 TO brk3_owner;
CREATE TABLE docs (name text, b destor.blob, body bytea);
INSERT INTO docs VALUES ('superuser', destor.blob_put('pool', 'a superuser''s document'),
                         'a superuser''s document');
SET ROLE brk3_owner;
CREATE TEMP TABLE mine AS SELECT destor.blob_put('pool', 'an owner''s document') AS b;
SELECT destor.blob_grant(b, 'brk3_reader', 'SELECT') FROM mine;
SELECT destor.blob_grant(b, 'brk3_keeper', 'SELECT') FROM mine;
RESET ROLE;
INSERT INTO docs SELECT 'owner', b, 'an owner''s document' FROM mine;
SET ROLE brk3_owner;
SELECT lo_from_bytea(4242, 'an owner''s large object');
GRANT SELECT ON LARGE OBJECT 4242 TO brk3_reader;
RESET ROLE;
});

my $dump = $node->basedir . '/dump.sql';
command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump');

# The roles go away in the source (their blob and large object kept, given
# to the superuser first), so the restore below meets a cluster without them.
$node->safe_psql('postgres', q{
REASSIGN OWNED BY brk3_owner TO CURRENT_USER;
SELECT destor.blob_revoke(b, 'brk3_reader', 'SELECT') FROM docs WHERE name = 'owner';
REVOKE SELECT ON LARGE OBJECT 4242 FROM brk3_reader;
DROP OWNED BY brk3_owner, brk3_reader;
DROP ROLE brk3_owner, brk3_reader;
});
$node->safe_psql('postgres', 'CREATE DATABASE restored');
# a restore that goes on past errors, as psql -f and pg_restore do by default
my ($rc, $out, $err) = $node->psql('restored', undef, on_error_stop => 0, extra_params => [ '-f', $dump ]);
like($err, qr/role "brk3_owner" does not exist/, 'the restore meets the missing role');

is($node->safe_psql('restored', 'SELECT lo_get(4242)'), '\x616e206f776e65722773206c61726765206f626a656374',
	'the large object of the missing role is restored (only its owner/GRANT failed)');
like($err, qr/WARNING:  role "brk3_owner" does not exist: its destor blobs go to role/,
	'the restore warns about the missing owner');
like($err, qr/WARNING:  role "brk3_reader" does not exist: destor blob privileges granted to it are not restored/,
	'and about the missing grantee');
unlike($err, qr/ERROR:.*destor/, 'no destor error in the restore');
is($node->safe_psql('restored', 'SELECT count(*) FROM destor.blobs'), '2',
	'both blob rows are restored');
my ($rc2, $ok, $err2) = $node->psql('restored',
	"SELECT destor.blob_get(b) = body FROM docs WHERE name = 'superuser'");
is($ok, 't', "the superuser's blob reads in the restored database");
($rc2, $ok, $err2) = $node->psql('restored',
	"SELECT destor.blob_get(b) = body FROM docs WHERE name = 'owner'");
is($ok, 't', "the missing role's blob reads too");
is($node->safe_psql('restored',
		"SELECT a.owner = current_user::regrole, a.acl::text FROM docs d JOIN destor.blob_acl a ON a.blob_id = d.b::uuid WHERE d.name = 'owner'"),
	't|{brk3_keeper=r/' . $node->safe_psql('restored', 'SELECT current_user') . '}',
	'it belongs to the restoring role (as a large object would); the grant of the role that exists stays, '
	  . 'granted by its new owner');
($rc2, $ok, $err2) = $node->psql('restored',
	"GRANT SELECT ON docs TO brk3_keeper; SET ROLE brk3_keeper; SELECT destor.blob_get(b) = body FROM docs WHERE name = 'owner'");
is($ok, 't', 'the kept grantee reads it');
# the restored grantee is recorded as any: DROP ROLE is refused while it holds the grant
$node->safe_psql('restored', 'SELECT destor.blob_record_role_dependencies()');
($rc2, $ok, $err2) = $node->psql('restored', 'DROP ROLE brk3_keeper');
like($err2, qr/role "brk3_keeper" cannot be dropped because some objects depend on it/,
	'DROP ROLE of the restored grantee is refused');
is($node->safe_psql('restored', q{SELECT count(*) FROM destor.blobs WHERE owner::oid = 'brk3_keeper'::regrole}),
	'0', 'no blob went to another role');

done_testing();
