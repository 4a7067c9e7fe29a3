# A master key rotation must not cost the pool its disaster recovery
# (issue 12, items 1 and 4): the metadata log a pool keeps on its providers
# was written under the old key, so once the old key file is deleted, as
# the rotation procedure says, a fresh server with only the new key must
# still rebuild everything.  rotate_master_key() logs every pool's catalog
# again under the new key at the end of a full run.
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
my @dirs = map { "$base/p$_" } 1 .. 4;
make_path($_) for @dirs;
my $servers = join('', map { "CREATE SERVER p$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs[$_ - 1]');\n" } 1 .. 4)
  . "CREATE SERVER archive FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2,p3,p4', data_shards '2', parity_shards '2');\n";

# --- cluster A writes under its first key, then rotates to a second one
my ($a, $oldkey) = DestorTest::start_cluster('rotating');
$a->safe_psql('postgres', $servers);
$a->safe_psql('postgres', q{
CREATE TABLE handles (name text PRIMARY KEY, b destor.blob);
INSERT INTO handles SELECT 'b' || i, destor.blob_put('archive', convert_to(repeat('blob ' || i, 500 * i), 'UTF8'))
  FROM generate_series(1, 5) i;
SELECT destor.blob_delete(b) FROM handles WHERE name = 'b5';
DELETE FROM handles WHERE name = 'b5';
CREATE SCHEMA app;
CREATE FOREIGN TABLE app.t (id int, v text) SERVER archive OPTIONS (segment_rows '1000', row_group_rows '500');
INSERT INTO app.t SELECT i, md5(i::text) FROM generate_series(1, 3000) i;
DELETE FROM app.t WHERE id % 7 = 0;
});
my %sha = map { split /\|/ } split /\n/, $a->safe_psql('postgres',
	q{SELECT name || '|' || b::text || ':' || encode(sha256(destor.blob_get(b)), 'hex') FROM handles ORDER BY 1});
my $table_sum = $a->safe_psql('postgres', q{SELECT count(*) || '/' || sum(id) || '/' || md5(string_agg(v, ',' ORDER BY id)) FROM app.t});

my $newkey = "$base/new.key";
DestorTest::new_master_key($newkey);
$a->append_conf('postgresql.conf', "destor.master_key_file = '$newkey'\ndestor.previous_master_key_file = '$oldkey'\n");
$a->reload;
$a->poll_query_until('postgres', "SELECT current_setting('destor.previous_master_key_file') = '$oldkey'")
  or die 'not reloaded';
cmp_ok($a->safe_psql('postgres', "SELECT destor.rotate_master_key('$newkey')"), '>', 0, 'the data keys are re-wrapped');
$a->append_conf('postgresql.conf', "destor.previous_master_key_file = ''\n");
$a->reload;
$a->poll_query_until('postgres', "SELECT current_setting('destor.previous_master_key_file') = ''") or die 'not reloaded';
unlink($oldkey) or die "cannot delete the old key: $!";
is($a->safe_psql('postgres', q{SELECT count(*) FROM handles WHERE destor.blob_get(b) IS NOT NULL}), '4',
	'A reads every blob with the new key alone');

# --- A is lost; B has the providers and the new key only
$a->stop;
remove_tree($a->data_dir);
my ($b, $bkey) = DestorTest::start_cluster('recovering');
copy($newkey, $bkey) or die "cannot copy the key: $!";
chmod 0600, $bkey;
$b->safe_psql('postgres', $servers);
my $report = $b->safe_psql('postgres', q{SELECT kind || ':' || coalesce(detail, '') FROM destor.recover_catalog('archive') ORDER BY 1});
note($report);
foreach my $name (sort keys %sha)
{
	my ($id, $hash) = split /:/, $sha{$name};
	is($b->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$id')), 'hex')"), $hash,
		"blob $name recovered byte-identical with the new key only");
}
$b->safe_psql('postgres', 'CREATE SCHEMA app; IMPORT FOREIGN SCHEMA app FROM SERVER archive INTO app');
is($b->safe_psql('postgres', q{SELECT count(*) || '/' || sum(id) || '/' || md5(string_agg(v, ',' ORDER BY id)) FROM app.t}),
	$table_sum, 'the table, deletions included, reads as on A');
is($b->safe_psql('postgres', q{SELECT count(*) FROM destor.blobs}), '4', 'the deleted blob stays deleted');

$b->stop;
done_testing();
