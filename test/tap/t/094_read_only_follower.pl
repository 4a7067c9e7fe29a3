# A read-only server that follows the writer (issue 12 item 3): a writer
# cluster (pool mode 'exclusive') and a follower cluster (the same pool,
# mode 'read_only') on the same file providers.  The follower recovers the
# catalog and imports the tables once, then follow_pool() — by hand, and
# from the maintenance worker with a short naptime — replays the writer's
# later commits: inserts, row deletes, a truncate, blob puts and deletes,
# a new table.  The follower shows exactly the writer's results, never reads
# wrong or short data of an object the writer deleted meanwhile, and writes
# nothing at all to the providers.  recover_catalog refuses to adopt a pool
# whose lease another database holds, and adopts after take_over_pool.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($a, $akey) = DestorTest::start_cluster('writer');
my ($b, $bkey) = DestorTest::start_cluster('follower');
copy($akey, $bkey) or die;	# one master key reads and authenticates the pool
chmod 0600, $bkey;
my ($providers_sql, @dirs) = DestorTest::file_pool_sql($a->basedir, 'shared', 3, 2, 1);
sub pool_sql
{
	my ($mode) = @_;
	return $providers_sql . "ALTER SERVER shared OPTIONS (ADD mode '$mode');\n";
}
# every file on the providers, with its size and modification time
sub provider_state
{
	return join("\n", sort map { my @s = stat($_); "$_ $s[7] $s[9]" } map { DestorTest::files_under($_) } @dirs);
}
$a->safe_psql('postgres', pool_sql('exclusive'));
$b->safe_psql('postgres', pool_sql('read_only'));

my $t_query = q{SELECT count(*) || ':' || coalesce(sum(id), 0) || ':' || coalesce(md5(string_agg(id || v, ',' ORDER BY id)), '') FROM app.t};
my $u_query = q{SELECT count(*) || ':' || coalesce(sum(id), 0) FROM app.u};

# --- the writer's first state, recovered and imported by the follower -------------------------
$a->safe_psql('postgres', q{
CREATE SCHEMA app;
CREATE FOREIGN TABLE app.t (id int, v text) SERVER shared;
CREATE FOREIGN TABLE app.u (id int) SERVER shared;
INSERT INTO app.t SELECT i, 'row ' || i FROM generate_series(1, 200) i;
INSERT INTO app.u SELECT generate_series(1, 50);
CREATE TABLE handles (name text PRIMARY KEY, b destor.blob);
INSERT INTO handles VALUES ('one', destor.blob_put('shared', convert_to('blob one', 'UTF8'))),
                           ('two', destor.blob_put('shared', convert_to('blob two', 'UTF8')));
});
my %h = map { split /\|/ } split /\n/, $a->safe_psql('postgres', q{SELECT name, b::text FROM handles});

my $before = provider_state();
my $report = $b->safe_psql('postgres', q{SELECT kind || ':' || coalesce(name, '') || ':' || detail FROM destor.recover_catalog('shared') WHERE kind = 'log'});
like($report, qr/replayed .* instance borrowed \(read-only pool/, 'the follower recovers, borrowing the writer\'s instance');
$b->safe_psql('postgres', q{CREATE SCHEMA app; IMPORT FOREIGN SCHEMA app FROM SERVER shared INTO app});
is($b->safe_psql('postgres', $t_query), $a->safe_psql('postgres', $t_query), 'the imported table reads as on the writer');
is($b->safe_psql('postgres', "SELECT convert_from(destor.blob_get('$h{one}'), 'UTF8')"), 'blob one',
	'a blob reads as on the writer');
is($b->safe_psql('postgres', q{SELECT destor.follow_pool('shared')}), '0', 'nothing new to follow yet');
is(provider_state(), $before, 'recovery, import, reads and follow wrote nothing to the providers');
my ($rc, $out, $err) = $b->psql('postgres', q{SELECT destor.follow_pool('nosuch')});
like($err, qr/server "nosuch" does not exist|pool "nosuch"/, 'follow_pool of an unknown pool fails');

# --- the writer goes on; the follower reads what it had until it follows -----------------------
$a->safe_psql('postgres', q{
INSERT INTO app.t SELECT i, 'more ' || i FROM generate_series(201, 260) i;
DELETE FROM app.t WHERE id % 7 = 0;
TRUNCATE app.u;
INSERT INTO handles VALUES ('three', destor.blob_put('shared', convert_to('blob three', 'UTF8')));
SELECT destor.blob_delete(b) FROM handles WHERE name = 'two';
DELETE FROM handles WHERE name = 'two';
CREATE FOREIGN TABLE app.t2 (k text, n bigint) SERVER shared;
INSERT INTO app.t2 SELECT 'k' || i, i * 1000 FROM generate_series(1, 30) i;
});
%h = (%h, map { split /\|/ } split /\n/, $a->safe_psql('postgres', q{SELECT name, b::text FROM handles}));
$before = provider_state();

# objects the writer deleted: an error, never wrong or short data
($rc, $out, $err) = $b->psql('postgres', "SELECT convert_from(destor.blob_get('$h{two}'), 'UTF8')");
ok($rc != 0 || $out eq 'blob two', 'a blob the writer deleted is not read as anything else before the follow')
  or diag("rc $rc out '$out' err $err");
like($err, qr/its writer may have deleted or moved this object.*destor\.follow_pool\('shared'\) and retry/s,
	'its shards are gone: the error says the writer may have deleted it, naming follow_pool');
($rc, $out, $err) = $b->psql('postgres', $u_query);
ok($rc != 0 || $out eq '50:1275', 'a table the writer truncated reads whole or fails, never short, before the follow')
  or diag("rc $rc out '$out' err $err");

my $applied = $b->safe_psql('postgres', q{SELECT destor.follow_pool('shared')});
cmp_ok($applied, '>=', 5, "follow_pool applies the writer's new log objects ($applied)");
is($b->safe_psql('postgres', $t_query), $a->safe_psql('postgres', $t_query),
	'after the follow: inserts and deletes of rows read as on the writer');
is($b->safe_psql('postgres', $u_query), '0:0', 'the truncate is followed');
is($b->safe_psql('postgres', "SELECT convert_from(destor.blob_get('$h{three}'), 'UTF8')"), 'blob three',
	'a new blob reads with the writer\'s bytes');
($rc, $out, $err) = $b->psql('postgres', "SELECT destor.blob_get('$h{two}')");
like($err, qr/does not exist/, 'a deleted blob is gone on the follower');
is($b->safe_psql('postgres', q{SELECT count(*) FROM destor.table_definitions WHERE definition->>'name' = 't2'}), '1',
	'a table created by the writer is known after the follow');
$b->safe_psql('postgres', q{IMPORT FOREIGN SCHEMA app LIMIT TO (t2) FROM SERVER shared INTO app});
is($b->safe_psql('postgres', q{SELECT count(*) || ':' || sum(n) FROM app.t2}),
	$a->safe_psql('postgres', q{SELECT count(*) || ':' || sum(n) FROM app.t2}),
	'and is read after IMPORT FOREIGN SCHEMA ... LIMIT TO it');
is($b->safe_psql('postgres', q{SELECT destor.follow_pool('shared')}), '0', 'a second follow applies nothing');
# DDL on the follower's own table is its business: not logged, and the writer's definition stays
$b->safe_psql('postgres', q{ALTER FOREIGN TABLE app.t2 RENAME COLUMN n TO n_here});
my $def_query = q{SELECT definition::text FROM destor.table_definitions WHERE definition->>'name' = 't2'};
is($b->safe_psql('postgres', $def_query), $a->safe_psql('postgres', $def_query),
	'the follower keeps the writer\'s definition of a table it altered');
is(provider_state(), $before, 'the follower\'s reads, follow and import wrote nothing to the providers');

# --- the maintenance worker follows every naptime ---------------------------------------------
$b->safe_psql('postgres', "ALTER SYSTEM SET destor.maintenance_naptime = '1s'; SELECT pg_reload_conf()");
$a->safe_psql('postgres', q{INSERT INTO app.t SELECT i, 'late ' || i FROM generate_series(1001, 1010) i});
ok($b->poll_query_until('postgres', qq{SELECT ($t_query) = '} . $a->safe_psql('postgres', $t_query) . q{'}),
	'the maintenance worker follows the writer within a few naptimes');
$b->safe_psql('postgres', "ALTER SYSTEM SET destor.maintenance_naptime = '0'; SELECT pg_reload_conf()");
is($a->safe_psql('postgres', "SELECT convert_from(destor.blob_get(destor.blob_put('shared', 'still writing')), 'UTF8')"),
	'still writing', 'the writer keeps its lease and writes next to the follower');

# --- adopting a pool another database holds is refused ----------------------------------------
$b->safe_psql('postgres', 'CREATE DATABASE other');
$b->safe_psql('other', 'CREATE EXTENSION destor');
$b->safe_psql('other', pool_sql('exclusive'));
($rc, $out, $err) = $b->psql('other', q{SELECT * FROM destor.recover_catalog('shared')});
like($err, qr/cannot adopt pool "shared": it is held by another writer/, 'recover_catalog refuses to adopt a held pool');
like($err, qr/destor\.take_over_pool\('shared'\)/, 'naming take_over_pool');
is($b->safe_psql('other', q{SELECT count(*) FROM destor.objects}), '0', 'and recovers nothing');
# the writer is gone for good: take over, then adopt
$b->safe_psql('other', q{SELECT destor.take_over_pool('shared')});
$report = $b->safe_psql('other', q{SELECT detail FROM destor.recover_catalog('shared') WHERE kind = 'log'});
like($report, qr/instance adopted/, 'after take_over_pool the pool is adopted');
is($b->safe_psql('other', "SELECT destor.blob_size(destor.blob_put('shared', 'new writer'))"), '10',
	'and the adopting database writes under the lease it took over');
($rc, $out, $err) = $a->psql('postgres', "SELECT destor.blob_put('shared', 'old writer')");
like($err, qr/held by another writer/, 'while the old writer is fenced');

# --- the same on S3-protocol servers (s3rver), small blobs packed --------------------------------
# A second pool on three s3rvers: the writer (mode exclusive) writes rows, a packed
# small blob and a large one; the follower (read_only) recovers, imports, follows
# the writer's next commits, and leaves the servers' files as they were.
my @s3 = DestorTest::start_s3_servers(3, $a->basedir);
END { DestorTest::stop_s3($_) for @s3 }
my $cloud = DestorTest::providers_sql('cloud', 2, 1, @s3);
$a->safe_psql('postgres', $cloud . "ALTER SERVER cloud OPTIONS (ADD mode 'exclusive');");
$b->safe_psql('postgres', $cloud . "ALTER SERVER cloud OPTIONS (ADD mode 'read_only');");
sub s3_state
{
	return join("\n", sort map { my @s = stat($_); "$_ $s[7] $s[9]" } map { DestorTest::files_under($_->{dir}) } @s3);
}
my $w_query = q{SELECT count(*) || ':' || coalesce(sum(id), 0) || ':' || coalesce(md5(string_agg(id || body, ',' ORDER BY id)), '') FROM web.pages};
$a->safe_psql('postgres', q{
SET destor.blob_pack_threshold = '64kB';
CREATE SCHEMA web;
CREATE FOREIGN TABLE web.pages (id int, body text) SERVER cloud OPTIONS (row_group_rows '500');
INSERT INTO web.pages SELECT i, repeat(md5(i::text), i % 7) FROM generate_series(1, 2000) i;
CREATE TABLE cloud_handles (name text PRIMARY KEY, b destor.blob);
INSERT INTO cloud_handles VALUES ('small', destor.blob_put('cloud', convert_to('a small packed blob', 'UTF8'))),
  ('large', destor.blob_put('cloud', (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 8000) i)::bytea));
});
is($a->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE b.pack_id IS NOT NULL) || '/' || count(*)
  FROM cloud_handles h JOIN destor.blobs b ON b.blob_id = h.b::uuid}), '1/2', 'on S3: one blob packed, one its own object');
my %c = map { split /\|/ } split /\n/,
  $a->safe_psql('postgres', q{SELECT name, b::text || ',' || encode(sha256(destor.blob_get(b)), 'hex') FROM cloud_handles});
my $s3_before = s3_state();
like($b->safe_psql('postgres', q{SELECT detail FROM destor.recover_catalog('cloud') WHERE kind = 'log'}),
	qr/instance borrowed/, 'on S3: the follower recovers the pool');
$b->safe_psql('postgres', q{CREATE SCHEMA web; IMPORT FOREIGN SCHEMA web FROM SERVER cloud INTO web});
is($b->safe_psql('postgres', $w_query), $a->safe_psql('postgres', $w_query), 'on S3: the imported table reads as on the writer');
for my $name (qw(small large))
{
	my ($id, $sha) = split /,/, $c{$name};
	is($b->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$id')), 'hex')"), $sha,
		"on S3: the $name blob is byte-identical on the follower");
}
is(s3_state(), $s3_before, 'on S3: recovery, import and reads wrote nothing to the servers');
$a->safe_psql('postgres', q{
SET destor.blob_pack_threshold = '64kB';
INSERT INTO web.pages SELECT i, 'later ' || i FROM generate_series(2001, 2300) i;
DELETE FROM web.pages WHERE id % 5 = 0;
INSERT INTO cloud_handles VALUES ('later', destor.blob_put('cloud', convert_to('packed after the import', 'UTF8')));
SELECT destor.blob_delete(b) FROM cloud_handles WHERE name = 'small';
DELETE FROM cloud_handles WHERE name = 'small';
});
my $later = $a->safe_psql('postgres', q{SELECT b::text FROM cloud_handles WHERE name = 'later'});
$s3_before = s3_state();
cmp_ok($b->safe_psql('postgres', q{SELECT destor.follow_pool('cloud')}), '>=', 2, 'on S3: follow_pool applies the new commits');
is($b->safe_psql('postgres', $w_query), $a->safe_psql('postgres', $w_query), 'on S3: inserts and deletes followed');
is($b->safe_psql('postgres', "SELECT convert_from(destor.blob_get('$later'), 'UTF8')"), 'packed after the import',
	'on S3: a blob packed after the import reads on the follower');
my ($small_id) = split /,/, $c{small};
($rc, $out, $err) = $b->psql('postgres', "SELECT destor.blob_get('$small_id')");
like($err, qr/does not exist/, 'on S3: the blob the writer deleted is gone on the follower');
is(s3_state(), $s3_before, 'on S3: the follow and the reads wrote nothing to the servers');

$a->stop;
$b->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
