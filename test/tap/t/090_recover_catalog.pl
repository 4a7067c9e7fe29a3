# Disaster recovery from the providers alone (issue 12, items 1 and 2).
#
# Cluster A writes blobs (one deleted, one rolled back, one of a role B does
# not have) and tables (updated, deleted from, one dropped, one renamed, one
# created in a rolled-back transaction) to a pool of file providers; A is
# stopped and its data directory removed.  A fresh cluster B declares the
# same providers and pool, recovers the catalog from the metadata log with
# the master key, imports the tables with IMPORT FOREIGN SCHEMA (LIMIT TO,
# EXCEPT), and must return exactly what A returned: every blob byte, every
# row.  A wrong master key recovers nothing and says so; recovery with m
# providers gone still works.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Copy qw(copy);
use File::Path qw(remove_tree make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $base = PostgreSQL::Test::Utils::tempdir();
my @dirs = map { "$base/p$_" } 1 .. 5;
make_path($_) for @dirs;
my $servers = join('', map { "CREATE SERVER p$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs[$_ - 1]');\n" } 1 .. 5)
  . "CREATE SERVER archive FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2,p3,p4,p5', data_shards '3', parity_shards '2');\n"
  . "CREATE SERVER legacy FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2,p3', data_shards '2', parity_shards '1');\n";

# ---------------------------------------------------------------- cluster A
my ($a, $akey) = DestorTest::start_cluster('writer');
$a->safe_psql('postgres', 'CREATE ROLE alice; CREATE ROLE bob');
$a->safe_psql('postgres', $servers);
$a->safe_psql('postgres', 'CREATE TABLE handles (name text PRIMARY KEY, b destor.blob)');
# blobs: alice's, bob's (no such role on B), a large one, a deleted one
$a->safe_psql('postgres', q{
INSERT INTO handles SELECT 'small', destor.blob_put('archive', 'hello, recovered world');
INSERT INTO handles SELECT 'large', destor.blob_put('archive',
  (SELECT string_agg(sha256(i::text::bytea), '') FROM generate_series(1, 40000) i));
INSERT INTO handles SELECT 'empty', destor.blob_put('archive', '');
INSERT INTO handles SELECT 'gone', destor.blob_put('archive', 'deleted before the disaster');
});
$a->safe_psql('postgres', q{
INSERT INTO handles SELECT 'alice', destor.blob_put('archive', 'alice''s own');
UPDATE destor.blobs SET owner = 'alice' WHERE blob_id = (SELECT b::uuid FROM handles WHERE name = 'alice');
INSERT INTO handles SELECT 'bob', destor.blob_put('archive', 'bob''s own');
UPDATE destor.blobs SET owner = 'bob' WHERE blob_id = (SELECT b::uuid FROM handles WHERE name = 'bob');
SELECT destor.blob_delete(b) FROM handles WHERE name = 'gone';
});
my $rolled_back_blob = $a->safe_psql('postgres', q{
BEGIN;
SELECT destor.blob_put('archive', 'never committed');
ROLLBACK;
});
like($rolled_back_blob, qr/^[0-9a-f-]{36}$/, 'a blob written in a rolled-back transaction');
my $savepoint_blob = $a->safe_psql('postgres', q{
BEGIN;
SAVEPOINT s;
SELECT destor.blob_put('archive', 'rolled back to a savepoint');
ROLLBACK TO s;
INSERT INTO handles SELECT 'kept', destor.blob_put('archive', 'kept after the savepoint');
COMMIT;
});
like($savepoint_blob, qr/^[0-9a-f-]{36}$/, 'a blob written in a subtransaction that rolled back');

# tables
$a->safe_psql('postgres', q{
CREATE SCHEMA app;
CREATE FOREIGN TABLE app.metrics (ts timestamptz NOT NULL, device int, temp float8, status text, note varchar(20))
  SERVER archive OPTIONS (segment_rows '3000', row_group_rows '500');
INSERT INTO app.metrics SELECT '2024-01-01'::timestamptz + i * interval '1 minute', i % 17, i / 7.0,
  CASE WHEN i % 5 = 0 THEN NULL ELSE 's' || (i % 3) END, 'n' || i
  FROM generate_series(1, 10000) i;
DELETE FROM app.metrics WHERE device = 3;
UPDATE app.metrics SET status = 'fixed' WHERE device = 5 AND temp < 100;
CREATE FOREIGN TABLE app.events (id bigint, payload jsonb, tags text[]) SERVER archive;
INSERT INTO app.events SELECT i, jsonb_build_object('k', i), ARRAY['a' || i, 'b'] FROM generate_series(1, 2000) i;
CREATE FOREIGN TABLE app.scratch (x int) SERVER archive;
INSERT INTO app.scratch SELECT generate_series(1, 100);
DROP FOREIGN TABLE app.scratch;
CREATE FOREIGN TABLE app.old_name (k int, v text) SERVER archive;
INSERT INTO app.old_name VALUES (1, 'one'), (2, 'two');
ALTER FOREIGN TABLE app.old_name RENAME TO renamed;
ALTER FOREIGN TABLE app.renamed RENAME COLUMN v TO value;
});
$a->safe_psql('postgres', q{
BEGIN;
INSERT INTO app.events SELECT i, '{}', NULL FROM generate_series(5001, 6000) i;
CREATE FOREIGN TABLE app.ghost (g int) SERVER archive;
INSERT INTO app.ghost VALUES (1);
ROLLBACK;
});
# The commit markers of the newest log object, removed: a transaction that
# wrote its log at pre-commit and never committed (a crash in between).
sub drop_last_markers
{
	my @files = grep { m{/meta/[0-9a-f-]{36}/[0-9a-f]{16}-[0-9a-f]{32}\.} } map { DestorTest::files_under($_) } @dirs;
	my ($seq) = reverse sort map { m{/([0-9a-f]{16})-[0-9a-f]{32}\.[^/]+$} } @files;
	my @gone = grep { m{/$seq-[0-9a-f]{32}\.commit$} } @files;
	unlink @gone;
	return scalar @gone;
}
# one log object's markers lost, then a later transaction confirms it
$a->safe_psql('postgres', q{INSERT INTO app.events VALUES (9999, '{"late": true}', '{}')});
is(drop_last_markers(), 3, 'the commit markers of a log object are lost (m + 1 = 3 providers hold one)');
$a->safe_psql('postgres', q{INSERT INTO handles SELECT 'after', destor.blob_put('archive', 'confirms the one before')});
# the last log object never confirmed: as if A crashed between pre-commit and commit
my $unconfirmed_blob = $a->safe_psql('postgres', q{SELECT destor.blob_put('archive', 'committed, marker lost, never confirmed')});
is(drop_last_markers(), 3, 'the newest log object has no marker and no successor');

# a pool written while nothing was logged (as before an upgrade from 0.1.0),
# sharing providers with the first: destor.log_snapshot() logs its rows
my $capture = sub {
	my ($how) = @_;
	return join('', map { "ALTER TABLE destor.$_ $how TRIGGER meta_capture;\n" } qw(objects shards blobs segments deletions tables))
	  . "ALTER EVENT TRIGGER destor_meta_table_ddl $how;\n";
};
$a->safe_psql('postgres', $capture->('DISABLE') . q{
CREATE SCHEMA old;
CREATE FOREIGN TABLE old.t (a int, b text) SERVER legacy;
INSERT INTO old.t SELECT i, 'v' || i FROM generate_series(1, 3000) i;
DELETE FROM old.t WHERE a % 10 = 0;
INSERT INTO handles SELECT 'legacy', destor.blob_put('legacy', 'written before the log');
} . $capture->('ENABLE'));
cmp_ok($a->safe_psql('postgres', q{SELECT destor.log_snapshot('legacy')}), '>', 4,
	'log_snapshot logs the rows of a pool written before the log');
my $old_query = q{SELECT * FROM %s.t ORDER BY a};
my $old_expect = $a->safe_psql('postgres', sprintf($old_query, 'old'));

# a second pool on S3-protocol servers (s3rver)
my @s3 = DestorTest::start_s3_servers(3, $base);
END { DestorTest::stop_s3($_) for @s3 }
my $cloud_sql = DestorTest::providers_sql('cloud', 2, 1, @s3);
$a->safe_psql('postgres', $cloud_sql);
$a->safe_psql('postgres', q{
CREATE SCHEMA web;
CREATE FOREIGN TABLE web.pages (url text, body text, hits int) SERVER cloud OPTIONS (row_group_rows '1000');
INSERT INTO web.pages SELECT 'https://example.org/' || i, repeat(md5(i::text), i % 50), i * 3 FROM generate_series(1, 5000) i;
DELETE FROM web.pages WHERE hits % 7 = 0;
INSERT INTO handles SELECT 'cloud', destor.blob_put('cloud', (SELECT string_agg(md5(i::text), ',') FROM generate_series(1, 20000) i)::bytea);
});
my $pages_query = q{SELECT url, md5(body), hits FROM %s.pages ORDER BY url};
my $pages_expect = $a->safe_psql('postgres', sprintf($pages_query, 'web'));

my %queries = (
	metrics_dump => q{SELECT * FROM %s.metrics ORDER BY ts},
	metrics_agg => q{SELECT count(*), sum(device), round(sum(temp)::numeric, 6), count(status), count(*) FILTER (WHERE status = 'fixed') FROM %s.metrics},
	events_dump => q{SELECT * FROM %s.events ORDER BY id},
	renamed_dump => q{SELECT * FROM %s.renamed ORDER BY k},
);
my %expect;
$expect{$_} = $a->safe_psql('postgres', sprintf($queries{$_}, 'app')) for keys %queries;
my %blob_ids = map { split /\|/ } split /\n/, $a->safe_psql('postgres', q{SELECT name, b::text FROM handles});
my %blob_sha = map { split /\|/ } split /\n/,
  $a->safe_psql('postgres', q{SELECT name, encode(sha256(destor.blob_get(b)), 'hex') FROM handles WHERE name <> 'gone'});
is(scalar(keys %blob_sha), 9, 'A reads its nine live blobs');
my $cloud_sha = delete $blob_sha{cloud};
my $legacy_sha = delete $blob_sha{legacy};
cmp_ok(length($expect{metrics_dump}), '>', 100000, 'A has a table of some size');

$a->stop;
my $adata = $a->data_dir;
remove_tree($adata);
ok(!-d $adata, 'cluster A is gone: its data directory is removed');

# ---------------------------------------------------------------- cluster B
my ($b, $bkey) = DestorTest::start_cluster('recovered');
$b->safe_psql('postgres', "CREATE ROLE alice");
$b->safe_psql('postgres', $servers);

# only superusers recover
$b->safe_psql('postgres', 'CREATE ROLE mallory');
my ($rc, $out, $err) = $b->psql('postgres', q{SET ROLE mallory; SELECT * FROM destor.recover_catalog('archive')});
like($err, qr/permission denied for function recover_catalog/, 'recover_catalog is not granted to PUBLIC');
($rc, $out, $err) = $b->psql('postgres', q{SELECT * FROM destor.recover_catalog(NULL)});
like($err, qr/pool must not be NULL/, 'a NULL pool is an error');

# B still has its own key: nothing can be decoded
($rc, $out, $err) = $b->psql('postgres', q{SELECT * FROM destor.recover_catalog('archive')});
isnt($rc, 0, 'recovery under the wrong master key fails');
like($err, qr/written under another master key/, 'and says the master key is not the writer\'s');
is($b->safe_psql('postgres', q{SELECT (SELECT count(*) FROM destor.objects) + (SELECT count(*) FROM destor.table_definitions)}),
	'0', 'nothing was recovered under the wrong key');

# the writer's key
copy($akey, $bkey) or die "cannot copy the key: $!";
chmod 0600, $bkey;
$b->reload;

# first in a database that borrows, with two providers (m) lost
$b->safe_psql('postgres', 'CREATE DATABASE lossy');
$b->safe_psql('lossy', 'CREATE EXTENSION destor');
$b->safe_psql('lossy', $servers);
rename($dirs[0], "$dirs[0].away") or die;
rename($dirs[3], "$dirs[3].away") or die;
my $report = $b->safe_psql('lossy', q{SELECT kind, count(*) FROM destor.recover_catalog('archive', adopt => false) GROUP BY 1 ORDER BY 1});
is($report, "blob|7\nlog|1\ntable|3", 'with two of five providers gone, seven blobs and three tables are recovered')
  or diag($report);
is($b->safe_psql('lossy', sprintf(q{SELECT encode(sha256(destor.blob_get('%s')), 'hex')}, $blob_ids{large})),
	$blob_sha{large}, 'and the large blob reads back byte for byte from the three left');
rename("$dirs[0].away", $dirs[0]) or die;
rename("$dirs[3].away", $dirs[3]) or die;

# then for real
$report = $b->safe_psql('postgres', q{SELECT kind, coalesce(id::text, ''), coalesce(name, ''), detail FROM destor.recover_catalog('archive') ORDER BY 1, 3, 2});
note($report);
like($report, qr/^log\|\|[0-9a-f-]{36}\|\d+ log objects replayed .* 1 not committed \(ignored\), 0 unreadable/m,
	'the report counts the log objects replayed and the unconfirmed one ignored');
my ($instance) = $report =~ /^log\|\|([0-9a-f-]{36})\|/m;
like($report, qr/^blob\|$blob_ids{bob}\|\|.*owner "bob" does not exist here: given to/m,
	'a blob whose owner does not exist here goes to the caller, reported');
like($report, qr/^table\|[0-9a-f-]+\|app\.metrics\|/m, 'the table is reported');

foreach my $name (sort keys %blob_sha)
{
	is($b->safe_psql('postgres', sprintf(q{SELECT encode(sha256(destor.blob_get('%s')), 'hex')}, $blob_ids{$name})),
		$blob_sha{$name}, "blob $name is byte-identical, under the same handle");
}
is($b->safe_psql('postgres', sprintf(q{SELECT owner::text FROM destor.blobs WHERE blob_id = '%s'}, $blob_ids{alice})),
	'alice', 'a blob keeps its owner by role name');
$b->safe_psql('postgres', 'CREATE DATABASE plain');
($rc, $out, $err) = $b->psql('plain', 'DROP ROLE alice');
isnt($rc, 0, 'the owner of a recovered blob cannot be dropped from another database');
like($err, qr/cannot be dropped because some objects depend on it/,
	'recovery recorded its dependency, as PostgreSQL does for large objects');
($rc, $out, $err) = $b->psql('postgres', sprintf(q{SELECT destor.blob_get('%s')}, $blob_ids{gone}));
isnt($rc, 0, 'a blob deleted before the disaster stays deleted');
($rc, $out, $err) = $b->psql('postgres', sprintf(q{SELECT destor.blob_get('%s')}, $rolled_back_blob));
isnt($rc, 0, 'a blob of a rolled-back transaction does not exist');
is($b->safe_psql('postgres', sprintf(q{SELECT count(*) FROM destor.objects WHERE object_id = '%s'}, $savepoint_blob)),
	'0', 'a blob of a subtransaction rolled back to its savepoint left no record in the log');
($rc, $out, $err) = $b->psql('postgres', sprintf(q{SELECT destor.blob_get('%s')}, $unconfirmed_blob));
isnt($rc, 0, 'a blob whose log object was never confirmed committed is not recovered');

# tables
$b->safe_psql('postgres', 'CREATE SCHEMA restored; CREATE SCHEMA rest2');
$b->safe_psql('postgres', 'IMPORT FOREIGN SCHEMA app LIMIT TO (metrics) FROM SERVER archive INTO restored');
is($b->safe_psql('postgres', q{SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'restored'::regnamespace}),
	'metrics', 'LIMIT TO imports only the tables named');
$b->safe_psql('postgres', 'IMPORT FOREIGN SCHEMA app EXCEPT (metrics) FROM SERVER archive INTO restored');
is($b->safe_psql('postgres', q{SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'restored'::regnamespace}),
	'events,metrics,renamed', 'EXCEPT imports the others; the dropped and the rolled-back tables are not there');
foreach my $q (sort keys %queries)
{
	is($b->safe_psql('postgres', sprintf($queries{$q}, 'restored')), $expect{$q}, "$q: B returns what A returned");
}
is($b->safe_psql('postgres', q{SELECT attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END FROM pg_attribute WHERE attrelid = 'restored.metrics'::regclass AND attnum > 0 ORDER BY attnum}),
	"ts timestamp with time zone not null\ndevice integer\ntemp double precision\nstatus text\nnote character varying(20)",
	'column names, types, typmods and NOT NULL come back');
($rc, $out, $err) = $b->psql('postgres', 'IMPORT FOREIGN SCHEMA nosuch FROM SERVER archive INTO rest2');
like($err, qr/schema "nosuch" is not present on foreign server "archive"/, 'an unknown schema is an error, as in postgres_fdw');

# B is the writer now: it writes, and deletes what it drops
is($b->safe_psql('postgres', qq{SELECT fdwoptions::text LIKE '%$instance%' FROM pg_foreign_data_wrapper WHERE fdwname = 'destor_provider'}),
	't', 'the recovered database adopted the writer\'s instance');
$b->safe_psql('postgres', q{INSERT INTO restored.events VALUES (10000, '{}', NULL); DELETE FROM restored.events WHERE id <= 10});
is($b->safe_psql('postgres', q{SELECT count(*), max(id) FROM restored.events}), '1992|10000', 'B writes to a recovered table');

# the pool logged by log_snapshot, on providers it shares with the first
$report = $b->safe_psql('postgres', q{SELECT kind, count(*) FROM destor.recover_catalog('legacy') GROUP BY 1 ORDER BY 1});
is($report, "blob|1\nlog|1\ntable|1", 'the snapshot pool: its blob and its table, nothing of the other pool');
is($b->safe_psql('postgres', sprintf(q{SELECT encode(sha256(destor.blob_get('%s')), 'hex')}, $blob_ids{legacy})),
	$legacy_sha, 'the blob logged by the snapshot is byte-identical');
$b->safe_psql('postgres', 'CREATE SCHEMA old2; IMPORT FOREIGN SCHEMA old FROM SERVER legacy INTO old2');
is($b->safe_psql('postgres', sprintf($old_query, 'old2')), $old_expect,
	'the table logged by the snapshot returns what A returned, deleted rows included');

# the S3 pool, recovered the same way
$b->safe_psql('postgres', $cloud_sql);
$report = $b->safe_psql('postgres', q{SELECT kind, count(*) FROM destor.recover_catalog('cloud') GROUP BY 1 ORDER BY 1});
is($report, "blob|1\nlog|1\ntable|1", 'the S3 pool: one blob and one table recovered');
is($b->safe_psql('postgres', sprintf(q{SELECT encode(sha256(destor.blob_get('%s')), 'hex')}, $blob_ids{cloud})),
	$cloud_sha, 'the blob on S3 providers is byte-identical');
$b->safe_psql('postgres', 'CREATE SCHEMA web2; IMPORT FOREIGN SCHEMA web FROM SERVER cloud INTO web2');
is($b->safe_psql('postgres', sprintf($pages_query, 'web2')), $pages_expect,
	'the table on S3 providers returns what A returned');

$b->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
