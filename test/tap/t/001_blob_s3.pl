# Blobs on six real S3-protocol servers (s3rver) in a 4+2 pool: round trips,
# random ranges, provider loss, on-disk corruption, confidentiality, and
# transactional visibility across sessions.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my ($node, $keyfile) = DestorTest::start_cluster('blobs3');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @s3));

# every provider answers a probe
for my $s (@s3)
{
	is($node->safe_psql('postgres', "SELECT ok FROM destor.check_provider('$s->{name}')"),
		't', "provider $s->{name} passes check_provider");
}

# --- round trips of edge sizes ------------------------------------------------
$node->safe_psql('postgres', q{
CREATE TABLE src (name text PRIMARY KEY, data bytea);
CREATE FUNCTION noise(n int, seed int) RETURNS bytea LANGUAGE sql AS $$
  SELECT substring(decode(string_agg(md5((i + seed * 1000003)::text), '' ORDER BY i), 'hex') FROM 1 FOR n)
    FROM generate_series(0, n / 16) i $$;
INSERT INTO src VALUES ('0 B', ''), ('1 B', '\x00'),
  ('64 KiB - 1', noise(65535, 1)), ('64 KiB', noise(65536, 2)), ('64 KiB + 1', noise(65537, 3)),
  ('10 MB', noise(10000000, 4));
CREATE TABLE stored AS SELECT name, destor.blob_put('archive', data) AS b FROM src;
});
my $rows = $node->safe_psql('postgres',
	"SELECT name || ':' || (destor.blob_get(b) = data) || ':' || destor.blob_size(b)
	   FROM src JOIN stored USING (name) ORDER BY length(data)");
is($rows, "0 B:true:0\n1 B:true:1\n64 KiB - 1:true:65535\n64 KiB:true:65536\n64 KiB + 1:true:65537\n10 MB:true:10000000",
	'blobs of 0 B, 1 B, 64 KiB - 1, 64 KiB, 64 KiB + 1 and 10 MB round-trip through s3 providers');

# 200 random ranges of the 10 MB blob
$node->safe_psql('postgres', q{
SELECT setseed(0.7);
CREATE TABLE ranges AS SELECT (random() * 10000000)::bigint AS off, (random() * 300000)::int AS len
  FROM generate_series(1, 200);
});
is($node->safe_psql('postgres', q{
SELECT count(*) FILTER (WHERE destor.blob_read(b, off, len) = substring(data FROM off::int + 1 FOR len))
  FROM ranges, src JOIN stored USING (name) WHERE name = '10 MB'}),
	'200', '200 random ranges of a 10 MB blob match');

# shards: 6 distinct providers, each s3rver holds one shard of each blob
is($node->safe_psql('postgres', q{
SELECT count(DISTINCT provider) FROM destor.shards s JOIN stored ON s.object_id = b::uuid WHERE name = '10 MB'}),
	'6', 'the 6 shards of a blob are on 6 distinct providers');

# --- a 72 MiB blob through import/export: streamed, five windows -------------
# (of 16 MiB, the last one partial; larger sizes are test/bench/blob_bench.sh's)
my $big = "$base/big.bin";
DestorTest::write_random_file($big, 72 * 1024 * 1024);
my $t0 = time;
$node->safe_psql('postgres', "CREATE TABLE bigblob AS SELECT destor.blob_import('archive', '$big') AS b");
my $t1 = time;
$node->safe_psql('postgres', "SELECT destor.blob_export(b, '$base/big.out') FROM bigblob");
my $t2 = time;
is(DestorTest::sha256_file("$base/big.out"), DestorTest::sha256_file($big),
	'a 72 MiB blob imported and exported through s3 providers is byte-identical');
note(sprintf('72 MiB import %.1fs, export %.1fs', $t1 - $t0, $t2 - $t1));
unlink("$base/big.out");

# --- confidentiality ------------------------------------------------------------
my $marker = 'DESTOR-PLAINTEXT-MARKER-' . int(rand(1e9));
$node->safe_psql('postgres', qq{
CREATE TABLE secret AS SELECT destor.blob_put('archive',
  convert_to('$marker', 'UTF8') || (SELECT data FROM src WHERE name = '64 KiB')) AS b});
my @hits;
push @hits, DestorTest::files_containing($_->{dir}, $marker) for @s3;
is(scalar(@hits), 0, 'the plaintext marker appears in no provider file');

# --- provider loss ----------------------------------------------------------------
DestorTest::stop_s3($s3[1]);
DestorTest::stop_s3($s3[4]);
$rows = $node->safe_psql('postgres',
	"SELECT bool_and(destor.blob_get(b) = data) FROM src JOIN stored USING (name)");
is($rows, 't', 'with 2 of 6 providers stopped every blob reads back correctly');
$node->safe_psql('postgres', "SELECT destor.check_provider(p) FROM unnest(ARRAY['s1', 's2', 's5']::name[]) p");
is($node->safe_psql('postgres',
	"SELECT string_agg(provider || '=' || state, ',' ORDER BY provider) FROM destor.provider_status WHERE provider IN ('s2', 's5', 's1')"),
	's1=up,s2=down,s5=down', 'destor.provider_status shows the stopped providers as down');
like($node->safe_psql('postgres', "SELECT last_error FROM destor.provider_status WHERE provider = 's2'"),
	qr/s2/, 'and the last error names the provider');
is($node->safe_psql('postgres', "SELECT bool_and(requests > 0 AND bytes_written > 0 AND latency_p50_ms >= 0 AND last_success IS NOT NULL) FROM destor.provider_status WHERE provider LIKE 's_'"),
	't', 'provider_status counts requests, bytes and latencies');
is($node->safe_psql('postgres', q{
SELECT count(*) FILTER (WHERE destor.blob_read(b, off, len) = substring(data FROM off::int + 1 FOR len))
  FROM ranges, src JOIN stored USING (name) WHERE name = '10 MB'}),
	'200', 'random ranges are correct with 2 providers stopped');

DestorTest::stop_s3($s3[3]);
my $t = time;
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT destor.blob_get(b) FROM stored WHERE name = '64 KiB'");
my $elapsed = time - $t;
isnt($ret, 0, 'with 3 of 6 providers stopped a read fails');
like($err, qr/3 of 6 shards .* are usable, 4 are needed/, 'the error says how many shards are usable');
like($err, qr/Unavailable or corrupt: s2, s4, s5/, 'the error names the three stopped providers');
cmp_ok($elapsed, '<', 60, 'the failing read returns promptly');
note("failed read took ${elapsed}s");

# writes need write_quorum (5) shards: with 3 down they fail, naming providers
($ret, $out, $err) = $node->psql('postgres', "SELECT destor.blob_put('archive', 'x')");
like($err, qr/could not write enough shards to pool "archive": 3 of 6 written/,
	'a write with 3 providers down fails');
like($err, qr/Failed providers: s2, s4, s5/, 'the write error names the failed providers');

DestorTest::start_s3($_) for @s3[1, 3, 4];
is($node->safe_psql('postgres', "SELECT bool_and(destor.blob_get(b) = data) FROM src JOIN stored USING (name)"),
	't', 'after the providers return, everything reads back');

# --- corruption on a provider's disk ---------------------------------------------------
sub shard_file
{
	my ($blobexpr, $shard) = @_;
	my ($prov, $hex) = split(/\|/, $node->safe_psql('postgres', qq{
SELECT s.provider, replace(o.object_id::text, '-', '') FROM destor.shards s JOIN destor.objects o USING (object_id)
 WHERE o.object_id = ($blobexpr)::uuid AND s.shard_index = $shard}));
	my ($s3) = grep { $_->{name} eq $prov } @s3;
	my @f = grep { /\Q$hex\E\.$shard\b/ && !/metadata|\.md5$/ } DestorTest::files_under($s3->{dir});
	die "no file for shard $shard of $hex in $s3->{dir}" unless @f;
	return $f[0];
}
sub corrupt_file
{
	my ($path, $offset) = @_;
	open(my $fh, '+<:raw', $path) or die "cannot open $path: $!";
	seek($fh, $offset, 0);
	print $fh 'CORRUPTCORRUPT';
	close $fh;
}
my $tenmb = "(SELECT b FROM stored WHERE name = '10 MB')";
corrupt_file(shard_file($tenmb, 0), 1000);
corrupt_file(shard_file($tenmb, 3), 500_000);
# (providers that were down a moment ago are otherwise avoided for
# destor.provider_down_interval, and the corrupt shard might not be read)
is($node->safe_psql('postgres', "SET destor.provider_down_interval = 0; SELECT destor.blob_get(b) = data FROM src JOIN stored USING (name) WHERE name = '10 MB'"),
	't', 'a blob with two corrupted shard files on disk reads back correctly');
ok($node->log_contains(qr/shard 0 of object .* is corrupt/), 'the corrupt shard is identified in the log');

# --- transactions across sessions ---------------------------------------------------------
my $s1 = $node->background_psql('postgres');
$s1->query_safe('BEGIN');
my $handle = $s1->query_safe("SELECT destor.blob_put('archive', 'uncommitted')");
chomp $handle;
($ret, $out, $err) = $node->psql('postgres', "SELECT destor.blob_get('$handle')");
like($err, qr/does not exist/, 'a blob is invisible to other sessions before commit');
$s1->query_safe('COMMIT');
is($node->safe_psql('postgres', "SELECT convert_from(destor.blob_get('$handle'), 'UTF8')"),
	'uncommitted', 'and visible after commit');

my $objects_before = scalar(map { DestorTest::files_under($_->{dir}) } @s3);
$s1->query_safe('BEGIN');
$s1->query_safe("SELECT destor.blob_put('archive', (SELECT data FROM src WHERE name = '10 MB'))");
$s1->query_safe('ROLLBACK');
my $objects_after = scalar(map { DestorTest::files_under($_->{dir}) } @s3);
is($objects_after, $objects_before, 'a rolled-back blob leaves no objects on the s3 providers');
# a snapshot that still sees a deleted blob can still read it: its shards
# stay until no such snapshot remains, then cleanup_orphans takes them
my $reader = $node->background_psql('postgres');
$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$reader->query_safe("SELECT destor.blob_size('$handle')");
$s1->query_safe("SELECT destor.blob_delete('$handle')");
is($reader->query_safe("SELECT convert_from(destor.blob_get('$handle'), 'UTF8')"), 'uncommitted',
	'a repeatable-read reader still reads a blob deleted after its snapshot');
$reader->query_safe('COMMIT');
$reader->quit;
($ret, $out, $err) = $node->psql('postgres', "SELECT destor.blob_get('$handle')");
like($err, qr/does not exist/, 'new snapshots do not see the deleted blob');
cmp_ok($node->safe_psql('postgres', "SELECT destor.cleanup_orphans('archive', '0')"), '>=', 6,
	'cleanup_orphans removes the shards the deletion had to leave');
$s1->quit;

# --- bad credentials, missing bucket, refused connections -----------------------------------------
my $wrong_secret = 'wrong-secret-' . int(rand(1e9));
my $dead_port = PostgreSQL::Test::Cluster::get_free_port();
$node->safe_psql('postgres', qq{
CREATE SERVER badcred FOREIGN DATA WRAPPER destor_provider
  OPTIONS (type 's3', endpoint 'http://127.0.0.1:$s3[0]{port}', bucket 'destor');
CREATE USER MAPPING FOR PUBLIC SERVER badcred OPTIONS (access_key_id 'NOSUCHKEY', secret_access_key '$wrong_secret');
CREATE SERVER nobucket FOREIGN DATA WRAPPER destor_provider
  OPTIONS (type 's3', endpoint 'http://127.0.0.1:$s3[0]{port}', bucket 'no-such-bucket');
CREATE USER MAPPING FOR PUBLIC SERVER nobucket OPTIONS (access_key_id 'S3RVER', secret_access_key 'S3RVER');
CREATE SERVER refused FOREIGN DATA WRAPPER destor_provider
  OPTIONS (type 's3', endpoint 'http://127.0.0.1:$dead_port', bucket 'destor');
});
my $detail = $node->safe_psql('postgres', "SELECT ok || ' ' || detail FROM destor.check_provider('badcred')");
like($detail, qr/^false .*403 InvalidAccessKeyId/, 'wrong credentials are reported');
unlike($detail, qr/\Q$wrong_secret\E/, 'the wrong secret is not in the message');
$detail = $node->safe_psql('postgres', "SELECT ok || ' ' || detail FROM destor.check_provider('nobucket')");
like($detail, qr/^false .*NoSuchBucket/, 'a missing bucket is reported');
$t = time;
$detail = $node->safe_psql('postgres', "SELECT ok || ' ' || detail FROM destor.check_provider('refused')");
$elapsed = time - $t;
like($detail, qr/^false /, 'a refused connection is reported');
cmp_ok($elapsed, '<', 15, 'a refused connection fails in seconds');
note("refused connection took ${elapsed}s");

# --- master key -------------------------------------------------------------------------------
$node->stop;
DestorTest::new_master_key($keyfile);
$node->start;
($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT destor.blob_get(b) FROM stored WHERE name = '1 B'");
like($err, qr/written with a different master key/, 'a wrong master key is detected');
# a configuration error (as PostgreSQL's own for a key file), not corruption nor a role's password
like($err, qr/ERROR:  F0000:/, 'a wrong master key is a configuration file error');
$node->append_conf('postgresql.conf', "destor.master_key_file = ''");
$node->reload;
($ret, $out, $err) = $node->psql('postgres', "SELECT destor.blob_put('archive', 'x')");
like($err, qr/destor.master_key_file is not set/, 'a missing master key is an error');
like($err, qr/openssl rand -hex 32/, 'the hint says how to create a key');

# --- secrets never reach the server log -------------------------------------------------------
$node->stop;
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$wrong_secret\E/, 'the secret key never appears in the server log');
unlike($log, qr/Signature=|Credential=/, 'no signature or credential scope in the server log');

DestorTest::stop_s3($_) for @s3;
done_testing();
