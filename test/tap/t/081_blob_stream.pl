# Blob descriptors from a client, on six real S3-protocol servers (s3rver) in
# a 4+2 pool: a blob streamed in with 1 MB blob_write calls and out with 1 MB
# blob_read calls, byte for byte; the backend's peak memory stays bounded
# both ways (reading, by its windows and read-ahead; writing, by the
# writer's two sets of parts; neither by the blob's size); the new blob is invisible to other
# sessions until its transaction commits; a rolled-back stream leaves
# nothing on the providers, multipart uploads included.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use Digest::SHA;
use Digest::MD5;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $MB = 1024 * 1024;
my $size_mb = $ENV{DESTOR_STREAM_MB} // 96;

my ($node, $keyfile) = DestorTest::start_cluster('blobstream');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @s3));

# Peak resident memory of a backend, in bytes (VmHWM: the high-water mark).
sub backend_peak
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/status") or die "cannot read /proc/$pid/status: $!";
	while (<$fh>)
	{
		return $1 * 1024 if /^VmHWM:\s+(\d+) kB/;
	}
	die "no VmHWM in /proc/$pid/status";
}

# Files of finished objects on the providers.  Unfinished multipart uploads
# are left out: s3rver cannot abort them (031 checks that destor does, through
# FaultProxy).
sub provider_files
{
	return scalar(grep { !m{/\._S3rver_uploads/} } map { DestorTest::files_under($_->{dir}) } @s3);
}

open(my $rnd, '<:raw', '/dev/urandom') or die "cannot open /dev/urandom: $!";
sub random_mb
{
	my $n = read($rnd, my $buf, $MB);
	die "short read of /dev/urandom" unless $n == $MB;
	return $buf;
}

# Each 1 MB piece goes to the backend as pg_read_binary_file of a file the
# test wrote, and comes back as its md5: the writer and the reader see the
# same 1 MB calls as from a client, while psql and BackgroundPsql (which
# logs every query and result) do not carry 2 MB of hex each way (they
# wrote 590 MB of test log, and spent the CPU of two cores on it).
my $chunk_file = $node->basedir . '/chunk.bin';
sub chunk_sql
{
	my ($chunk) = @_;
	open(my $fh, '>:raw', $chunk_file) or die "cannot write $chunk_file: $!";
	print $fh $chunk;
	close $fh;
	return "pg_read_binary_file('$chunk_file')";
}

# --- streaming in ---------------------------------------------------------------------------
my $w = $node->background_psql('postgres');
my $wpid = $w->query_safe('SELECT pg_backend_pid()');
# load destor and warm the session up before taking the baseline
$w->query_safe("SELECT destor.blob_size(destor.blob_put('archive', 'warm-up'))");
my $peak0 = backend_peak($wpid);

my $sha = Digest::SHA->new(256);
my @chunk_md5;
$w->query_safe('BEGIN');
my $fd = $w->query_safe("SELECT destor.blob_create('archive')");
my $t0 = time;
my $wrote_ok = 1;
my $peak_late;
for my $i (1 .. $size_mb)
{
	my $chunk = random_mb();
	$sha->add($chunk);
	push @chunk_md5, Digest::MD5::md5_hex($chunk);
	my $n = $w->query_safe("SELECT destor.blob_write($fd, " . chunk_sql($chunk) . ")");
	$wrote_ok = 0 unless $n eq $MB;
	$peak_late = backend_peak($wpid) if $i == $size_mb * 3 / 4;
}
my $handle = $w->query_safe("SELECT destor.blob_close($fd)");
my $t1 = time;
ok($wrote_ok, "$size_mb blob_write calls of 1 MB each report 1 MB written");
like($handle, qr/^[0-9a-f-]{36}$/, 'blob_close returns the new blob\'s handle');
diag(sprintf('%d MB streamed in %.1fs (%.1f MB/s)', $size_mb, $t1 - $t0, $size_mb / ($t1 - $t0)));

my ($ret, $out, $err) = $node->psql('postgres', "SELECT destor.blob_size('$handle')");
like($err, qr/does not exist/, 'the streamed blob is invisible to other sessions before commit');
$w->query_safe('COMMIT');
is($node->safe_psql('postgres', "SELECT destor.blob_size('$handle')"), $size_mb * $MB,
	'and visible, with its full size, after commit');
my $digest = $sha->hexdigest;
is($node->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$handle')), 'hex')"),
	$digest, 'the stored blob is byte-identical to what the client sent');

# The writer holds two sets of six 8 MiB parts (one sent while the next
# is encoded) and a stripe: both sets are in use once the second part is
# encoded (64 MB in), and the rest of the stream adds nothing to them.
my $peak_end = backend_peak($wpid);
my $grew = $peak_end - $peak0;
diag(sprintf('writer backend peak grew by %.1f MB, %.1f MB of it in the last quarter',
		$grew / $MB, ($peak_end - $peak_late) / $MB));
cmp_ok($grew, '<', 128 * $MB,
	"streaming $size_mb MB in grows the backend's peak memory by less than 128 MB");
cmp_ok($peak_end - $peak_late, '<', 8 * $MB,
	"and its last quarter by less than 8 MB: the writer's memory does not grow with the blob");

# --- streaming out ----------------------------------------------------------------------------
my $r = $node->background_psql('postgres');
my $rpid = $r->query_safe('SELECT pg_backend_pid()');
$r->query_safe("SELECT destor.blob_size(destor.blob_put('archive', 'warm-up'))");
$peak0 = backend_peak($rpid);
$r->query_safe('BEGIN');
$fd = $r->query_safe("SELECT destor.blob_open('$handle')");
$t0 = time;
my $reads = 0;
my $read_ok = 1;
for (;;)
{
	my $got = $r->query_safe("SELECT length(b) || ' ' || md5(b) FROM destor.blob_read($fd, $MB) b");
	last if $got =~ /^0 /;
	$reads++;
	$read_ok = 0 unless $reads <= @chunk_md5 && $got eq "$MB $chunk_md5[$reads - 1]";
}
$t1 = time;
is($r->query_safe("SELECT destor.blob_tell($fd)"), $size_mb * $MB, 'blob_tell is at the end after reading');
$r->query_safe('COMMIT');
is($reads, $size_mb, "$size_mb blob_read calls of 1 MB read the blob");
ok($read_ok, 'what each blob_read returned is byte-identical to what was written (md5 of every MB)');
diag(sprintf('%d MB read in %.1fs (%.1f MB/s)', $size_mb, $t1 - $t0, $size_mb / ($t1 - $t0)));
$grew = backend_peak($rpid) - $peak0;
diag(sprintf('reader backend peak grew by %.1f MB', $grew / $MB));
# The reader's windows and the read-ahead two windows beyond the next, and
# the shared cache's pages it fills, which count in its resident set (57
# to 97 MB over runs): bounded, not the blob held (that and the buffers
# would be over 150 MB).
cmp_ok($grew, '<', 128 * $MB,
	"reading $size_mb MB in 1 MB pieces grows the backend's peak memory by less than 128 MB");
$r->quit;

# --- a rolled-back stream leaves nothing behind --------------------------------------------------
# 40 MB: more than one 8 MB part per data shard, so the shards are multipart
# uploads; closed, so they are finished objects by the time of the rollback
my $files_before = provider_files();
$w->query_safe('BEGIN');
$fd = $w->query_safe("SELECT destor.blob_create('archive')");
$w->query_safe("SELECT destor.blob_write($fd, " . chunk_sql(random_mb()) . ")") for 1 .. 40;
$handle = $w->query_safe("SELECT destor.blob_close($fd)");
is(provider_files(), $files_before + 6 * 3, 'a closed stream is six finished objects on the providers');
$w->query_safe('ROLLBACK');
is(provider_files(), $files_before, 'a rolled-back stream of 40 MB leaves no objects on the s3 providers');

# a session that dies while streaming: its transaction aborts like any other
$w->query_safe('BEGIN');
$fd = $w->query_safe("SELECT destor.blob_create('archive')");
$w->query_safe("SELECT destor.blob_write($fd, " . chunk_sql(random_mb()) . ")") for 1 .. 40;
$handle = $w->query_safe("SELECT destor.blob_close($fd)");
$fd = $w->query_safe("SELECT destor.blob_create('archive')");
$w->query_safe("SELECT destor.blob_write($fd, '\\x" . unpack('H*', random_mb()) . "')") for 1 .. 10;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($wpid)");
eval { $w->quit };
$node->poll_query_until('postgres', "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $wpid)")
  or die 'the terminated backend did not go away';
is(provider_files(), $files_before, 'a stream whose backend was terminated leaves no objects either');
($ret, $out, $err) = $node->psql('postgres', "SELECT destor.blob_size('$handle')");
like($err, qr/does not exist/, 'and its closed blob never existed for others');

$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
