# Versioned upgrades: a database that installed the first release's script
# (CREATE EXTENSION destor VERSION '0.1.0') and wrote blobs and a table
# under it is brought to the current version by ALTER EXTENSION destor
# UPDATE; afterwards its catalog (functions, views, tables, types, grants,
# dumped configuration tables) is the one a fresh install of the current
# version has, and what it stored before still reads back.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('upgrade', create_extension => 0);
my $base = $node->basedir;

my $current = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'destor'");
my @versions = split /\n/, $node->safe_psql('postgres',
	"SELECT version FROM pg_available_extension_versions WHERE name = 'destor' ORDER BY string_to_array(version, '.')::int[]");
ok((grep { $_ eq '0.1.0' } @versions), 'the first release can still be installed');
isnt($current, '0.1.0', "the current version ($current) is newer than the first release");

# Everything the extension owns, described in full, in a stable order.
my $describe = q{
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'destor'),
members AS (
  SELECT d.classid, d.objid FROM pg_depend d, ext
  WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e')
SELECT 'function ' || p.oid::regprocedure || ' returns ' || pg_get_function_result(p.oid)
       || ' ' || p.provolatile::text || p.proparallel::text || p.proisstrict::text || p.prosecdef::text
       || ' src=' || p.prosrc || ' bin=' || coalesce(p.probin, '') || ' acl=' || coalesce(p.proacl::text, '')
       || ' config=' || coalesce(p.proconfig::text, '')
       || ' args=' || pg_get_function_arguments(p.oid)
  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
UNION ALL
SELECT 'relation ' || c.oid::regclass || ' kind=' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, '')
       || ' options=' || coalesce(c.reloptions::text, '')
       || coalesce(' view=' || pg_get_viewdef(c.oid), '')
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
UNION ALL
SELECT 'column ' || c.oid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
       || ' acl=' || coalesce(a.attacl::text, '')
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
UNION ALL
SELECT 'constraint ' || con.conrelid::regclass || ' ' || pg_get_constraintdef(con.oid)
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
  JOIN pg_constraint con ON con.conrelid = c.oid
UNION ALL
SELECT 'index ' || regexp_replace(pg_get_indexdef(i.indexrelid), 'INDEX \S+ ON', 'INDEX ON')
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
  JOIN pg_index i ON i.indrelid = c.oid
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
  JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal
UNION ALL
SELECT 'object ' || pg_describe_object(m.classid, m.objid, 0)
  FROM members m WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass)
UNION ALL
SELECT 'config ' || cfg::regclass
  FROM pg_extension e, unnest(e.extconfig) cfg WHERE e.extname = 'destor'
UNION ALL
SELECT 'namespace acl ' || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'destor'
ORDER BY 1
};

# Fresh install of the current version.
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION destor');
my $fresh = $node->safe_psql('fresh', $describe);

# The first release, with data written under it (by the new library, as
# happens between installing the new package and ALTER EXTENSION UPDATE),
# then updated.
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', "CREATE EXTENSION destor VERSION '0.1.0'");
is($node->safe_psql('old', "SELECT extversion FROM pg_extension WHERE extname = 'destor'"), '0.1.0',
	'installed as 0.1.0');
my ($pool_sql) = DestorTest::file_pool_sql($base, 'pool', 3, 2, 1);
$node->safe_psql('old', join("\n", $pool_sql,
	"CREATE TABLE docs (id int, body bytea, b destor.blob);",
	"INSERT INTO docs SELECT i, convert_to(repeat(md5(i::text), i * 50), 'UTF8') FROM generate_series(1, 10) i;",
	"UPDATE docs SET b = destor.blob_put('pool', body) WHERE id <= 5;",
	"CREATE FOREIGN TABLE t (a int, s text) SERVER pool;",
	"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g;"));

$node->safe_psql('old', 'ALTER EXTENSION destor UPDATE');
is($node->safe_psql('old', "SELECT extversion FROM pg_extension WHERE extname = 'destor'"), $current,
	"ALTER EXTENSION destor UPDATE brings it to $current");
my $updated = $node->safe_psql('old', $describe);
is($updated, $fresh, 'the updated catalog is the one a fresh install has');
if ($updated ne $fresh)
{
	my %f = map { $_ => 1 } split /\n/, $fresh;
	my %u = map { $_ => 1 } split /\n/, $updated;
	diag("only in the fresh install: $_") for grep { !$u{$_} } sort keys %f;
	diag("only after the update: $_") for grep { !$f{$_} } sort keys %u;
}

# What was stored before the update reads back, and the updated database
# goes on storing.
is($node->safe_psql('old', 'SELECT count(*), bool_and(destor.blob_get(b) = body) FROM docs WHERE b IS NOT NULL'),
	'5|t', 'blobs written before the update read back after it');
is($node->safe_psql('old', 'SELECT count(*), sum(a), bool_and(s = md5(a::text)) FROM t'), '500|125250|t',
	'a table written before the update reads back after it');
$node->safe_psql('old', join("\n",
	"UPDATE docs SET b = destor.blob_put('pool', body) WHERE id > 5;",
	"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(501, 1000) g;"));
is($node->safe_psql('old', 'SELECT count(*), bool_and(destor.blob_get(b) = body) FROM docs'), '10|t',
	'blobs round-trip after the update');
is($node->safe_psql('old', 'SELECT count(*), sum(a), bool_and(s = md5(a::text)) FROM t'), '1000|500500|t',
	'the table takes rows after the update');
is($node->safe_psql('old', "SELECT pg_typeof(owner)::text, bool_and(owner::text = owner::regrole::text) FROM destor.blobs GROUP BY 1"),
	'destor.restorable_role|t', 'blob owners became roles, written as a regrole is');

$node->stop;
done_testing();
