# A shard recorded bad in destor.shards stops being skipped once a read has
# found it good.  A repair during an outage records the shard 'missing' (it
# could neither find nor rebuild it); the provider comes back; the next read
# tries the shard, verifies every chunk it reads against its tag, and notes
# it good in shared memory, so that every later reader (another session
# here) reads it on the healthy path again instead of rebuilding from parity.
# The record itself is rewritten by the next repair, which finds it ok.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Basename qw(dirname);
use File::Copy qw(move);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('cleared');
my $base = $node->basedir;
my ($pool_sql, @dirs) = DestorTest::file_pool_sql($base, 'archive', 6, 4, 2);
$node->safe_psql('postgres', $pool_sql . 'CREATE TABLE docs (name text PRIMARY KEY, b destor.blob);');
my $file = "$base/doc.bin";
DestorTest::write_random_file($file, 900_000);
my $sha = DestorTest::sha256_file($file);
$node->safe_psql('postgres', "INSERT INTO docs VALUES ('doc', destor.blob_import('archive', '$file'))");

my @prov = split(/\n/, $node->safe_psql('postgres',
	q{SELECT provider FROM destor.shards s JOIN docs ON s.object_id = b::uuid ORDER BY shard_index}));
is(scalar(@prov), 6, 'the blob has six shards');
my ($n0) = $prov[0] =~ /(\d+)$/;
my $dir0 = $dirs[$n0 - 1];

sub read_back
{
	my $out = "$base/out.bin";
	unlink $out;
	my ($rc, $stdout, $stderr) = $node->psql('postgres',
		"SELECT destor.blob_export(b, '$out') FROM docs WHERE name = 'doc'");
	return (0, $stderr) if $rc != 0;
	return (DestorTest::sha256_file($out) eq $sha ? 1 : 0, 'content differs');
}

# requests each provider has served so far (shared by all sessions)
sub requests
{
	my %r = map { split /=/ } split(/\n/, $node->safe_psql('postgres',
		q{SELECT provider || '=' || coalesce(requests, 0) FROM destor.provider_status}));
	return \%r;
}

sub state_of_shard0
{
	return $node->safe_psql('postgres',
		q{SELECT s.state FROM destor.blob_shards s JOIN docs ON s.blob_id = b::uuid WHERE s.shard_index = 0});
}

# --- the outage: shard 0 is gone from its provider, which takes no writes,
# and a repair records it missing (it cannot rebuild it there)
my ($shard0) = grep { /\.0$/ } DestorTest::files_under($dir0);
ok(defined $shard0, "shard 0 is a file under its provider's directory");
my $saved = "$base/shard0.saved";
move($shard0, $saved) or die "cannot move $shard0: $!";
chmod(0500, dirname($shard0), $dir0) or die;
is($node->safe_psql('postgres',
	q{SELECT string_agg(shard_index || ':' || problem || ':' || repaired, ' ') FROM destor.repair('archive')}),
	'0:missing:false', 'during the outage, repair finds shard 0 missing and cannot rebuild it');
is(state_of_shard0(), 'missing', 'blob_shards shows shard 0 as missing');

# --- the provider is back, whole
chmod(0700, $dir0, dirname($shard0)) or die;
move($saved, $shard0) or die "cannot restore $shard0: $!";
is(state_of_shard0(), 'missing', 'the record still says missing: nothing has read the shard yet');

my $before = requests();
my ($ok, $err) = read_back();
ok($ok, 'the blob reads back exactly') or diag($err);
my $after1 = requests();
cmp_ok($after1->{ $prov[0] } // 0, '>', $before->{ $prov[0] } // 0,
	'the first read tries the shard recorded missing, although enough others remain');

# a second session: the shard is used again, on the healthy path (data
# shards only, no parity fetched to rebuild shard 0)
($ok, $err) = read_back();
ok($ok, 'a read in another session reads back exactly') or diag($err);
my $after2 = requests();
cmp_ok($after2->{ $prov[0] } // 0, '>', $after1->{ $prov[0] } // 0,
	'another session reads shard 0 again: the record no longer keeps readers off it');
is(join(' ', map { ($after2->{$_} // 0) - ($after1->{$_} // 0) } @prov[4, 5]), '0 0',
	'and reads no parity shard: shard 0 is no longer rebuilt from parity');

# --- the record itself: rewritten by the next repair
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.repair('archive')}), '0',
	'the next repair finds nothing wrong');
is(state_of_shard0(), 'ok', 'and blob_shards shows shard 0 as ok');
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.shards WHERE state <> 'ok'}), '0',
	'no shard is recorded bad in destor.shards');

done_testing();
