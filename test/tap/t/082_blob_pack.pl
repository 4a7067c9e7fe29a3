# Small blobs packed into shared objects (issue 15 item 5), on file providers.
#
# 1,000 small blobs written in one transaction cost at most one provider
# object per 100 blobs per shard; with m providers gone every blob still
# reads back byte for byte; after 60 % are deleted, compaction leaves fewer
# bytes on the providers and every survivor exact; a backend killed (-9)
# with a pack still open leaves nothing visible and no orphan; and after the
# database is dropped, recover_catalog in a fresh one rebuilds every packed
# blob from the providers' metadata log, byte for byte.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use CrashPoints;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $base = PostgreSQL::Test::Utils::tempdir();
my ($node) = DestorTest::start_cluster('pack', blob_pack_threshold => '64kB', conf => "restart_after_crash = on\n");
my ($pool_sql, @dirs) = DestorTest::file_pool_sql($base, 'packs', 5, 3, 2);
$node->safe_psql('postgres', q{CREATE DATABASE app});
$node->safe_psql('app', q{CREATE EXTENSION destor});
$node->safe_psql('app', $pool_sql);

# shard files (paths m{/ds/}: the metadata log lives under meta/) and their bytes
sub shard_files { return grep { m{/ds/} } map { DestorTest::files_under($_) } @dirs }
sub shard_bytes { my $n = 0; $n += -s $_ for shard_files(); return $n }

# ---------------------------------------------------------------- 1,000 in one transaction
$node->safe_psql('app', q{
CREATE TABLE h (n int PRIMARY KEY, sha bytea, b destor.blob);
BEGIN;
INSERT INTO h SELECT i, sha256(d), destor.blob_put('packs', d)
  FROM (SELECT i, (SELECT string_agg(sha256((i * 1000 + j)::text::bytea), '')
                     FROM generate_series(1, 1 + i % 100) j) AS d
          FROM generate_series(1, 1000) i) x;
COMMIT;
});
my $files = scalar(shard_files());
cmp_ok($files, '<=', 1000 / 100 * 5, "1,000 small blobs: $files shard files, at most 1 object per 100 blobs x 5 shards");
cmp_ok($files, '>', 0, 'and the packs are on the providers');
is($node->safe_psql('app', q{SELECT count(*) FROM h WHERE sha256(destor.blob_get(b)) = sha}),
	'1000', 'every blob reads back byte for byte');
is($node->safe_psql('app', q{SELECT count(*) FROM h WHERE destor.blob_sha256(b) = sha}),
	'1000', 'and each has its own recorded SHA-256');

# ---------------------------------------------------------------- m providers lost
rename($dirs[1], "$dirs[1].away") or die;
rename($dirs[4], "$dirs[4].away") or die;
is($node->safe_psql('app', q{SELECT count(*) FROM h WHERE sha256(destor.blob_get(b)) = sha}),
	'1000', 'with two of five providers gone, every blob reads back byte for byte');
is($node->safe_psql('app', q{SELECT count(*) FROM h WHERE destor.blob_read(b, 7, 20) = substr(destor.blob_get(b), 8, 20)}),
	'1000', 'and ranges of each too');
rename("$dirs[1].away", $dirs[1]) or die;
rename("$dirs[4].away", $dirs[4]) or die;

# ---------------------------------------------------------------- delete 60 %, compact
my $bytes_before = shard_bytes();
$node->safe_psql('app', q{
SELECT count(destor.blob_delete(b)) FROM h WHERE n % 5 < 3;
DELETE FROM h WHERE n % 5 < 3;
});
is(shard_bytes(), $bytes_before, 'deleting 60 % of the blobs leaves their packs in place');
cmp_ok($node->safe_psql('app', q{SELECT destor.compact_packs('packs', 0.5)}), '>=', 1,
	'compact_packs rewrites the mostly dead packs');
my $bytes_after = shard_bytes();
cmp_ok($bytes_after, '<', $bytes_before * 0.6, "fewer bytes on the providers ($bytes_before -> $bytes_after)");
is($node->safe_psql('app', q{SELECT count(*) FROM h WHERE sha256(destor.blob_get(b)) = sha}),
	'400', 'every survivor reads back byte for byte');

# ---------------------------------------------------------------- kill -9 with a pack open
my $blobs_before = $node->safe_psql('app', q{SELECT count(*) FROM destor.blobs});
my $files_before = scalar(shard_files());
my $victim = $node->background_psql('app', on_error_stop => 0);
$victim->query_safe(q{BEGIN});
$victim->query_safe(q{CREATE TABLE doomed AS SELECT destor.blob_put('packs', sha256(i::text::bytea)) AS b FROM generate_series(1, 50) i});
my $pid = $victim->query_safe(q{SELECT pg_backend_pid()});
$pid =~ s/\s+//g;
# (CrashPoints::crash waits for the postmaster's restart: polling at once
# could connect before the postmaster saw the crash, and the next query
# then found the cluster in recovery)
ok(CrashPoints::crash($node, $pid), 'the backend with an open pack is killed with kill -9');
eval { $victim->quit };
is($node->safe_psql('app', q{SELECT count(*) FROM destor.blobs}), $blobs_before,
	'a backend killed with an open pack: none of its blobs is visible');
$node->safe_psql('app', q{SELECT destor.cleanup_orphans('packs', '0')});
is(scalar(shard_files()), $files_before, 'and no shard of it is left after cleanup_orphans');
is($node->safe_psql('app', q{SELECT count(*) FROM destor.shards s JOIN destor.objects o USING (object_id) WHERE o.pool = 'packs'}),
	scalar(shard_files()), 'every shard file on the providers is one the catalog places');

# ---------------------------------------------------------------- recovery from the providers
$node->safe_psql('app', q{
INSERT INTO h SELECT 2000 + i, sha256(d), destor.blob_put('packs', d)
  FROM (SELECT i, convert_to(repeat('late ' || i, i), 'UTF8') AS d FROM generate_series(1, 30) i) x;
});
my %sha = map { split /\|/ } split /\n/,
  $node->safe_psql('app', q{SELECT b::text, encode(sha, 'hex') FROM h});
is(scalar(keys %sha), 430, '430 live blobs before the disaster');
$node->safe_psql('postgres', q{DROP DATABASE app});
$node->safe_psql('postgres', q{CREATE DATABASE fresh});
$node->safe_psql('fresh', q{CREATE EXTENSION destor});
$node->safe_psql('fresh', $pool_sql);
my $report = $node->safe_psql('fresh', q{SELECT count(*) FROM destor.recover_catalog('packs') WHERE kind = 'blob'});
is($report, '430', 'recover_catalog reports the 430 blobs');
my $ids = join(',', map { "'$_'" } sort keys %sha);
my %got = map { split /\|/ } split /\n/, $node->safe_psql('fresh',
	qq{SELECT id::text, encode(sha256(destor.blob_get(id::text::destor.blob)), 'hex') FROM unnest(ARRAY[$ids]::uuid[]) id});
is(scalar(grep { defined $got{$_} && $got{$_} eq $sha{$_} } keys %sha), 430,
	'recover_catalog in a fresh database: every packed blob, byte for byte');
is($node->safe_psql('fresh', q{SELECT count(*) FROM destor.blobs WHERE pack_id IS NOT NULL AND sha256 IS NOT NULL}),
	'430', 'recovered as packed blobs, with their SHA-256');

$node->stop;
done_testing();
