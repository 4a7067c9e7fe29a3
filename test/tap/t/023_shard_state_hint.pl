# Shard states in destor.shards are a hint, not a verdict.  A shard recorded
# 'missing' or 'corrupt' (say, by a repair that ran while its provider was
# down) is left out while enough others remain, and tried when they do not:
# once the provider is back, losing m other providers loses nothing, as the
# error hint of an unreadable object promises.  What is read from such a
# shard is checked like anything else, so a stale 'ok' hint cannot be trusted
# blindly either: a shard recorded 'ok' whose chunks are bad is read around.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('hint');
my $base = $node->basedir;
my @dirs = map { "$base/p$_" } 1 .. 6;
mkdir $_ for @dirs;
$node->safe_psql('postgres', join("\n",
	(map { "CREATE SERVER f$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs[$_ - 1]');" } 1 .. 6),
	"CREATE SERVER archive FOREIGN DATA WRAPPER destor OPTIONS (providers 'f1,f2,f3,f4,f5,f6', data_shards '4', parity_shards '2');",
	'CREATE TABLE docs (name text PRIMARY KEY, b destor.blob);'));
my $file = "$base/doc.bin";
DestorTest::write_random_file($file, 900_000);
my $sha = DestorTest::sha256_file($file);
$node->safe_psql('postgres', "INSERT INTO docs VALUES ('doc', destor.blob_import('archive', '$file'))");
$node->safe_psql('postgres', q{CREATE FOREIGN TABLE t (id int, s text) SERVER archive OPTIONS (row_group_rows '1000');
	INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 5000) i});
my $t_expected = $node->safe_psql('postgres',
	q{SELECT count(*), sum(i), max(md5(i::text)) FROM generate_series(1, 5000) i});
my $t_query = q{SELECT count(*), sum(id), max(s) FROM t};

sub provider_dir
{
	my ($prov) = @_;
	my ($n) = $prov =~ /(\d+)$/;
	return $dirs[$n - 1];
}

sub read_back
{
	my $out = "$base/out.bin";
	unlink $out;
	my ($rc, $stdout, $stderr) = $node->psql('postgres',
		"SELECT destor.blob_export(b, '$out') FROM docs WHERE name = 'doc'");
	return (0, $stderr) if $rc != 0;
	return (DestorTest::sha256_file($out) eq $sha ? 1 : 0, 'content differs');
}

# an outage of the providers of shards 0 and 1, recorded by a repair
my @shards = split(/\n/, $node->safe_psql('postgres',
	q{SELECT provider FROM destor.shards s JOIN docs ON s.object_id = b::uuid ORDER BY shard_index}));
$node->safe_psql('postgres', q{UPDATE destor.shards SET state = 'missing' WHERE shard_index = 0;
	UPDATE destor.shards SET state = 'corrupt' WHERE shard_index = 1});

my ($ok, $err) = read_back();
ok($ok, 'with shards 0 and 1 recorded missing (but back), the blob reads') or diag($err);

# now two other providers are lost: only the hinted shards make k = 4
for my $i (4, 5)
{
	my $d = provider_dir($shards[$i]);
	rename($d, "$d.lost") or die;
}
($ok, $err) = read_back();
ok($ok, 'providers of shards 4 and 5 lost: shards recorded missing are tried, and the blob reads exactly')
  or diag($err);
is($node->safe_psql('postgres', $t_query), $t_expected,
	'and so does a table whose shards are recorded missing on the same providers');

# three shards really gone: the error lists them, and its hint holds
my $d3 = provider_dir($shards[3]);
rename($d3, "$d3.lost") or die;
($ok, $err) = read_back();
ok(!$ok && $err =~ /could not read object/, 'three providers lost: the read fails') or diag($err);
like($err, qr/Data is readable again once 4 shards are/, 'with the hint that it is readable once 4 shards are back');
rename("$d3.lost", $d3) or die;
($ok, $err) = read_back();
ok($ok, 'one provider back: the hint was true, the blob reads exactly') or diag($err);

for my $i (4, 5)
{
	my $d = provider_dir($shards[$i]);
	rename("$d.lost", $d) or die;
}

done_testing();
