# Blobs through pg_dump when a role is missing (issue 15, breaker15c F4).
#
# destor.blobs is an extension configuration table: pg_dump writes its rows
# as one COPY, with the owner as a regrole and the ACL as aclitem[], both in
# their text form (role names).  Restored where one of those roles does not
# exist (a per-database dump restored into another cluster without
# pg_dumpall --roles-only first, or after the role was dropped), large
# objects lose only the failing ALTER LARGE OBJECT OWNER / GRANT of that one
# object; the blobs' single COPY fails as a whole, so every blob of the
# database — a superuser's too — is gone from the restored catalog.
#
# The failing checks are in TODO blocks (Test::More): they report "not ok
# # TODO" and keep the suite green until the restore keeps the rows; then
# they report "unexpectedly succeeded" and the TODO can go.
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
GRANT USAGE ON FOREIGN SERVER pool, f1, f2, f3 TO brk3_owner;
CREATE TABLE docs (name text, b destor.blob, body bytea);
INSERT INTO docs VALUES ('superuser', destor.blob_put('pool', 'a superuser''s document'),
                         'a superuser''s document');
SET ROLE brk3_owner;
CREATE TEMP TABLE mine AS SELECT destor.blob_put('pool', 'an owner''s document') AS b;
SELECT destor.blob_grant(b, 'brk3_reader', 'SELECT') FROM mine;
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
TODO:
{
	local $TODO = 'F4: one missing role fails the whole COPY of destor.blobs';
	is($node->safe_psql('restored', 'SELECT count(*) FROM destor.blobs'), '2',
		'both blob rows are restored');
	my ($rc2, $ok, $err2) = $node->psql('restored',
		"SELECT destor.blob_get(b) = body FROM docs WHERE name = 'superuser'");
	is($ok, 't', "the superuser's blob reads in the restored database");
	($rc2, $ok, $err2) = $node->psql('restored',
		"SELECT destor.blob_get(b) = body FROM docs WHERE name = 'owner'");
	is($ok, 't', "the missing role's blob reads too (restored to the restoring user, as a large object)");
}

done_testing();
