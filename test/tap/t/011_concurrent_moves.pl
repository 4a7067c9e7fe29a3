# Two sessions moving shards at once (two providers leaving a pool
# together) take turns per object: no object ends up with two shards on one
# provider, nothing is lost, and every shard is where the catalog says.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('moves');
my $base = $node->basedir;
my $sql = '';
for my $i (1 .. 8)
{
	make_path("$base/p$i");
	$sql .= "CREATE SERVER p$i FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$base/p$i');\n";
}
# six shards an object over eight providers: two are free for each object
$sql .= "CREATE SERVER eight FOREIGN DATA WRAPPER destor OPTIONS (providers 'p1,p2,p3,p4,p5,p6,p7,p8', data_shards '4', parity_shards '2');\n";
$node->safe_psql('postgres', $sql);
$node->safe_psql('postgres', q{
CREATE TABLE docs AS SELECT i, destor.blob_put('eight', convert_to(repeat('doc ' || i, 30000), 'UTF8')) AS b
  FROM generate_series(1, 30) i;
CREATE TABLE sums AS SELECT i, md5(destor.blob_get(b)) AS h FROM docs;
});

# p1 and p2 leave together; each session moves one of them and holds its
# transaction open a moment, so the two overlap
$node->safe_psql('postgres', "ALTER SERVER eight OPTIONS (SET providers 'p3,p4,p5,p6,p7,p8')");
my @runs;
for my $p ('p1', 'p2')
{
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c',
		  "BEGIN; SELECT count(*) FILTER (WHERE moved) || '/' || count(*) FROM destor.move_shards('$p');"
		  . " SELECT pg_sleep(1); COMMIT;" ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(300));
	push @runs, [ $h, \$out, \$err ];
}
for my $r (@runs)
{
	ok($r->[0]->finish, 'a mover finished') or diag(${ $r->[2] });
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.shards WHERE provider IN ('p1', 'p2')}), '0',
	'every shard left p1 and p2');
is($node->safe_psql('postgres', q{SELECT count(*) FROM (SELECT object_id, provider FROM destor.shards
	GROUP BY 1, 2 HAVING count(*) > 1) x}), '0', 'no object has two shards on one provider');
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.repair('eight')}), '0',
	'every shard is whole where the catalog places it');
is($node->safe_psql('postgres', q{SELECT bool_and(md5(destor.blob_get(b)) = h) FROM docs JOIN sums USING (i)}),
	't', 'every blob reads back the same');

$node->stop;
done_testing();
