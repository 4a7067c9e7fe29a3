# Large objects tiered offsite under their own OIDs, through real clients:
# stored with psql's \lo_import (libpq's client API, the fast path), tiered,
# no page left in pg_largeobject and only ciphertext on the providers, read
# back byte-identical with lo_get and lo_open/loread in SQL and with psql's
# \lo_export, as the owner and as a role granted SELECT, refused to a role
# without it; two sessions recalling one large object fetch it once;
# vacuumlo's lo_unlink removes the shards; a pg_dump round trip restores.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('lotier');
my $base = $node->basedir;
my ($sql, @dirs) = DestorTest::file_pool_sql($base, 'archive', 4, 2, 2);
$node->safe_psql('postgres', $sql);
$node->safe_psql('postgres', q{
CREATE ROLE lo_reader LOGIN;
CREATE ROLE lo_stranger LOGIN;
});

my $marker = 'LOTIER-TAP-MARKER';
my %files = (text => "$base/text.in", random => "$base/random.in");
{
	open(my $fh, '>:raw', $files{text}) or die;
	print $fh "$marker line $_\n" for 1 .. 20000;
	close $fh;
	DestorTest::write_random_file("$base/random.tail", 3 * 1024 * 1024 + 11);
	system("printf '%s' '$marker' | cat - '$base/random.tail' > '$files{random}'") == 0 or die;
}
my (%oid, %sha);
for my $name (sort keys %files)
{
	my $out = $node->safe_psql('postgres', "\\lo_import '$files{$name}'\nSELECT :LASTOID");
	($oid{$name}) = $out =~ /^(\d+)$/ or die "no oid in: $out";
	$sha{$name} = DestorTest::sha256_file($files{$name});
}
my $oids = join(',', values %oid);

sub sql_sha
{
	my ($oid, %params) = @_;
	return $node->safe_psql('postgres', "SELECT encode(sha256(lo_get($oid)), 'hex')", %params);
}

sub offsite
{
	my ($oid) = @_;
	return $node->safe_psql('postgres', "SELECT recalled_at IS NULL FROM destor.lo_tiers WHERE loid = $oid");
}

sub tier_all_again
{
	for my $name (sort keys %oid)
	{
		$node->safe_psql('postgres', "SELECT destor.lo_tier($oid{$name}, 'archive')");
		is(offsite($oid{$name}), 't', "$name is offsite");
	}
}

# --- tiering --------------------------------------------------------------------------------
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_largeobject WHERE loid IN ($oids)") > 0, 1,
	'the imported large objects have pages');
tier_all_again();
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_largeobject WHERE loid IN ($oids)"), '0',
	'pg_largeobject holds no page of a tiered large object');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_largeobject_metadata WHERE oid IN ($oids)"), '2',
	'the large objects themselves stay');
my @plain = map { DestorTest::files_containing($_, $marker) } @dirs;
is(scalar(@plain), 0, 'no provider file contains the plaintext marker') or diag("@plain");
cmp_ok(scalar(map { DestorTest::files_under($_) } @dirs), '>=', 8, 'the providers hold the shards');

# --- the fast path cannot recall (PostgreSQL 15 has no hook for it) -------------------------
TODO:
{
	local $TODO = 'fast-path calls of built-in functions pass no hook that sees their arguments';
	my $out = "$base/offsite.out";
	$node->safe_psql('postgres', "\\lo_export $oid{text} '$out'");
	is(DestorTest::sha256_file($out), $sha{text}, 'psql \lo_export of an offsite large object');
}
is(offsite($oid{text}), 't', 'the fast path left it offsite');

# --- reads in SQL recall: lo_get, lo_open/loread ------------------------------------------
is(sql_sha($oid{text}), $sha{text}, 'lo_get reads the text back byte-identical');
is(offsite($oid{text}), 'f', 'and recalled it');
is($node->safe_psql('postgres', "BEGIN; SELECT encode(sha256(loread(lo_open($oid{random}, 262144), 16 * 1024 * 1024)), 'hex'); COMMIT;"),
	$sha{random}, 'lo_open/loread reads the random bytes back byte-identical');
for my $name (sort keys %oid)
{
	my $out = "$base/$name.out";
	$node->safe_psql('postgres', "\\lo_export $oid{$name} '$out'");
	is(DestorTest::sha256_file($out), $sha{$name}, "psql \\lo_export (fast path) of the recalled $name");
}

# --- privileges: a role granted SELECT reads, a role without is refused --------------------
tier_all_again();
$node->safe_psql('postgres', "GRANT SELECT ON LARGE OBJECT $oid{random} TO lo_reader");
is(sql_sha($oid{random}, extra_params => [ '-U', 'lo_reader' ]), $sha{random},
	'a role granted SELECT reads the offsite large object');
my $out = "$base/reader.out";
$node->safe_psql('postgres', "\\lo_export $oid{random} '$out'", extra_params => [ '-U', 'lo_reader' ]);
is(DestorTest::sha256_file($out), $sha{random}, 'and exports it with psql \lo_export');
my ($ret, $stdout, $stderr) = $node->psql('postgres', "SELECT length(lo_get($oid{text}))",
	extra_params => [ '-U', 'lo_stranger' ]);
like($stderr, qr/permission denied for large object $oid{text}/, 'a role without SELECT is refused');
is(offsite($oid{text}), 't', 'and its attempt recalled nothing');
($ret, $stdout, $stderr) = $node->psql('postgres', "SELECT destor.lo_tier($oid{random}, 'archive')",
	extra_params => [ '-U', 'lo_reader' ]);
like($stderr, qr/permission denied/, 'a role without UPDATE cannot tier');

# --- two sessions recall one large object: one fetches, the other waits ---------------------
tier_all_again();
my $first = $node->background_psql('postgres');
$first->query_safe('BEGIN');
is($first->query_safe("SELECT length(lo_get($oid{random}))"), -s $files{random}, 'a first session recalls');
my ($second_out, $second_err) = ('', '');
my $second = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c',
	  "SELECT encode(sha256(lo_get($oid{random})), 'hex')" ],
	'>', \$second_out, '2>', \$second_err, IPC::Run::timeout(300));
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_locks WHERE NOT granted}),
	'a second session waits for the first one\'s recall');
$first->query_safe('COMMIT');
ok($second->finish, 'the second session finished') or diag($second_err);
chomp $second_out;
is($second_out, $sha{random}, 'and read the bytes the first one recalled');
is($node->safe_psql('postgres', "SELECT count(*) = count(DISTINCT pageno) FROM pg_largeobject WHERE loid = $oid{random}"),
	't', 'every page is there once');
# under REPEATABLE READ, a recall committed after the snapshot is a serialization failure
$node->safe_psql('postgres', "SELECT destor.lo_tier($oid{random}, 'archive')");
my $rr = $node->background_psql('postgres', on_error_stop => 0);
$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$rr->query_safe('SELECT 1');
is(sql_sha($oid{random}), $sha{random}, 'another session recalls meanwhile');
$rr->query("SELECT length(lo_get($oid{random}))");
like($rr->{stderr}, qr/could not serialize access/, 'the repeatable-read reader gets a serialization failure');
$rr->query('ROLLBACK');
$rr->{stderr} = '';		# BackgroundPsql keeps the failed query's
is($rr->query_safe("SELECT encode(sha256(lo_get($oid{random})), 'hex')"), $sha{random},
	'and reads the bytes when it tries again');
$rr->quit;
$first->quit;

# --- pg_dump: the dump carries the reference; the restored copy reads the original's objects
tier_all_again();
is(sql_sha($oid{text}), $sha{text}, 'text recalled before the dump');
my $dump = "$base/dump.sql";
command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump of a database with tiered large objects');
is(offsite($oid{random}), 't', 'pg_dump left the offsite large object offsite');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'the dump restores into a fresh database');
for my $name (sort keys %oid)
{
	is($node->safe_psql('restored', "SELECT encode(sha256(lo_get($oid{$name})), 'hex')"), $sha{$name},
		"the restored $name is byte-identical");
}
$node->safe_psql('restored', "SELECT lo_unlink($oid{random})");
is(sql_sha($oid{random}), $sha{random}, 'unlinking in the copy leaves the original\'s shards');

# --- vacuumlo unlinks an unreferenced tiered large object: its shards go ------------------
tier_all_again();
$node->safe_psql('postgres', "CREATE TABLE refs (doc oid); INSERT INTO refs VALUES ($oid{text})");
my $files_before = scalar(grep { m{/ds/} } map { DestorTest::files_under($_) } @dirs);
command_ok([ 'vacuumlo', '-v', $node->connstr('postgres') ], 'vacuumlo runs');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = $oid{random}"), '0',
	'vacuumlo unlinked the unreferenced large object');
is(scalar(grep { m{/ds/} } map { DestorTest::files_under($_) } @dirs), $files_before - 4, 'and its four shards are gone');
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.lo_tiers"), '1', 'its row too');
is(sql_sha($oid{text}), $sha{text}, 'the referenced one still reads back');

# --- many large objects in one transaction: no heavyweight lock each (a
# transaction reading ten thousand would fill the shared lock table) --------------------
$node->safe_psql('postgres', q{
CREATE TABLE many AS SELECT lo_from_bytea(0, convert_to('small ' || i, 'UTF8')) AS lo FROM generate_series(1, 100) i;
});
my $object_locks = q{SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'object'};
is($node->safe_psql('postgres', "BEGIN; SELECT destor.lo_tier_all('archive', 6); $object_locks; COMMIT;"), "101\n0",
	'lo_tier_all tiers 100 large objects (and the recalled text) holding no lock for each');
is($node->safe_psql('postgres', q{SELECT count(*) FROM many m JOIN destor.lo_tiers t ON t.loid = m.lo WHERE t.recalled_at IS NULL}),
	'100', 'all of them are offsite');
is($node->safe_psql('postgres', "BEGIN; SELECT count(*) FILTER (WHERE convert_from(lo_get(lo), 'UTF8') LIKE 'small %') FROM many; $object_locks; COMMIT;"),
	"100\n0", 'one statement recalls all 100, holding no lock for each');

# --- the maintenance worker applies the rule every round ---------------------------------
$node->safe_psql('postgres', q{CREATE TABLE keep AS SELECT lo_from_bytea(0, convert_to(repeat('policy ', 1000), 'UTF8')) AS lo});
my $kept = $node->safe_psql('postgres', 'SELECT lo FROM keep');
$node->safe_psql('postgres', q{INSERT INTO destor.lo_tiering_policies VALUES ('archive', 5000, '1 day')});
$node->safe_psql('postgres', "ALTER SYSTEM SET destor.maintenance_naptime = '1s'; SELECT pg_reload_conf()");
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM destor.lo_tiers WHERE loid = $kept AND recalled_at IS NULL"),
	'the maintenance worker tiers a large object by the rule');
$node->safe_psql('postgres', "ALTER SYSTEM RESET destor.maintenance_naptime; SELECT pg_reload_conf()");
ok($node->log_contains(qr/maintenance round in database "postgres": \d+ large objects tiered/), 'and logs it');
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.lo_tiers WHERE recalled_at IS NULL AND loid NOT IN ($kept, $oid{text})"),
	'0', 'only the one the rule picks (the others are small or were recalled within a day)');
is($node->safe_psql('postgres', "SELECT lo_get($kept) = convert_to(repeat('policy ', 1000), 'UTF8')"), 't',
	'it reads back');

# --- a database without the extension: a look-alike schema destor redirects nothing ------
# (destor is preloaded for the whole cluster; a role that may create schemas must not be
# able to stand in for destor's wrappers or catalog and run code as another role)
$node->safe_psql('postgres', q{
CREATE DATABASE noext;
CREATE ROLE mallory LOGIN;
GRANT CREATE ON DATABASE noext TO mallory;
});
$node->safe_psql('noext', q{
CREATE SCHEMA destor AUTHORIZATION mallory;
SELECT lo_from_bytea(4242, 'genuine');
}, extra_params => []);
$node->safe_psql('noext', q{
CREATE TABLE destor.lo_tiers (loid bigint, object_id uuid, recalled_at timestamptz);
CREATE FUNCTION destor.lo_get_tiered(oid) RETURNS bytea LANGUAGE sql AS $$ SELECT 'forged'::bytea $$;
GRANT USAGE ON SCHEMA destor TO PUBLIC;
}, extra_params => [ '-U', 'mallory' ]);
is($node->safe_psql('noext', q{SELECT convert_from(lo_get(4242), 'UTF8')}), 'genuine',
	'lo_get is not redirected to a function of a look-alike schema destor');
is($node->safe_psql('noext', q{SELECT lo_unlink(4242)}), '1', 'and lo_unlink works there');

$node->stop;
done_testing();
