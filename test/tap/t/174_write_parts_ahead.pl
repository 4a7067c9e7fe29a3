# Parts sent while the next is encoded (issue 11, item 5).  Six real s3rver
# processes in a 4+2 pool, each behind its own delay proxy.
#
# 1. A blob_write call that fills a part returns while every provider still
#    holds that part (each proxy passes 64 KiB a second: a part would take
#    two minutes); once they let it through, the stream ends with every shard
#    stored and the blob reads back byte for byte.
# 2. A part in flight is not given up for the backend's own absence: a
#    client pauses between blob_write calls after the other providers have
#    stored their part; the last one, stalled until then, answers again
#    when the stream is closed, and its shard is stored.
# 3. Objects of several parts written in one call, on every provider and
#    then with one stopped, read back byte for byte.
# 4. Uploads begun before the first part is full (blob_import and blob_put
#    know the size): a blob that compresses to less than a part is stored
#    whole and leaves no upload open; one provider stalled at the begin is given up for
#    repair; a statement cancelled while the begins are in flight leaves
#    the session usable; a file pool takes the same path.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use File::Path qw(make_path);

my $MB = 1024 * 1024;
my ($node, $keyfile) = DestorTest::start_cluster('parts_ahead', cache_size => '0');
my $base = $node->basedir;
my ($s3, $set_stall) = DestorTest::start_delay_pool($node, 'archive');
my @s3 = @$s3;
sub set_stall { $set_stall->(@_) }

my $file = "$base/input.bin";
DestorTest::write_random_file($file, 100 * $MB);
my $digest = DestorTest::sha256_file($file);

sub digest_of
{
	my ($from, $len) = @_;
	return $node->safe_psql('postgres',
		"SELECT encode(sha256(pg_read_binary_file('$file', $from, $len)), 'hex')");
}

sub shards_not_ok
{
	my ($blob) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM destor.blob_shards WHERE blob_id = '$blob' AND state <> 'ok'");
}

# --- 1. the part goes out while the call returns ------------------------------------------
my $s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe("SET statement_timeout = '60s'");
$s->query_safe('BEGIN');
my $fd = $s->query_safe("SELECT destor.blob_create('archive')");
set_stall($_, 1000) for 0 .. 5;    # 64 KiB a second per connection
# 36 MiB: 9 MiB of each shard, one part of 8 MiB full
my $t0 = time;
my $out = $s->query_safe("SELECT destor.blob_write($fd, pg_read_binary_file('$file', 0, " . 36 * $MB . "))");
my $took = time - $t0;
is($out, 36 * $MB, 'a blob_write that fills a part writes all its bytes');
# the upload's start, one small request each, passes in about a second; the
# parts would take more than two minutes
cmp_ok($took, '<', 30, 'and returns while every provider still holds the part');
diag(sprintf('the call took %.1f s', $took));
set_stall($_, 0) for 0 .. 5;
my $blob = $s->query_safe("SELECT destor.blob_close($fd)");
$s->query_safe('COMMIT');
like($blob, qr/^[0-9a-f-]{36}$/, 'the stream ends once the providers let the part through');
is(shards_not_ok($blob), '0', 'with every shard stored');
is($node->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$blob')), 'hex')"),
	digest_of(0, 36 * $MB), 'and the blob reads back byte for byte');

# --- 2. the backend's absence is not a stalled provider -----------------------------------
# d0 holds each 64 KiB its client sends for half a second (the upload's
# start passes within the second a hedged write waits for it) while the stream's
# first part goes out; the others store theirs while the client reads a
# small blob (its reader waits on the sockets, where the write moves too).
# Then the client pauses five seconds; d0 recovers just before
# the stream is closed.  A hedged write gives up the last shard once it has
# waited as long again as the others took (a second at least), counted
# while the backend looked after the transfers: counted in wall time, the
# client's pause made it run out, and the shard of a provider answering
# again was given up.
my $small = $node->safe_psql('postgres',
	"SELECT destor.blob_put('archive', pg_read_binary_file('$file', 0, " . 4 * $MB . "))");
my $rounds = (DestorTest::cases([2], [1]))[0];    # two with DESTOR_TEST_LONG=1
my $all_ok = 1;
for my $round (1 .. $rounds)
{
	set_stall(0, 500);
	$s->query_safe('BEGIN');
	$fd = $s->query_safe("SELECT destor.blob_create('archive')");
	# a part filled (32 MiB) and a little more
	$s->query_safe("SELECT destor.blob_write($fd, pg_read_binary_file('$file', 0, " . 33 * $MB . "))");
	# a pause, then a read: its reader waits on the sockets, where the
	# write's transfers move too, and the others' parts are stored
	$s->query_safe('SELECT pg_sleep(3)');
	$s->query_safe("SELECT length(destor.blob_get('$small'))");
	$s->query_safe('SELECT pg_sleep(5)');
	set_stall(0, 0);
	# a shard given up is a WARNING: query, not query_safe
	$blob = $s->query("SELECT destor.blob_close($fd)");
	my $warned = $s->{stderr};
	$s->query('COMMIT');
	$s->{stderr} = '';
	my $bad = shards_not_ok($blob);
	$all_ok = 0 if $bad ne '0';
	diag("round $round: $bad shards not stored: $warned") if $bad ne '0';
	is($node->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$blob')), 'hex')"),
		digest_of(0, 33 * $MB), "round $round: the paused stream reads back byte for byte");
}
ok($all_ok, 'a client pausing between calls does not get a recovered provider\'s shard given up');
$s->quit;

# --- 3. several parts in one call ---------------------------------------------------------
my $big = $node->safe_psql('postgres', "SELECT destor.blob_import('archive', '$file')");
is(shards_not_ok($big), '0', 'a 100 MiB import (four parts a shard) stores every shard');
is($node->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$big')), 'hex')"),
	$digest, 'and reads back byte for byte');

# --- 4. uploads begun ahead ----------------------------------------------------------------
# 40 MiB: 10 MiB a shard, more than a part
my $file40 = "$base/input40.bin";
DestorTest::write_random_file($file40, 40 * $MB);
my $digest40 = DestorTest::sha256_file($file40);
sub open_uploads
{
	return scalar(grep { m{/\._S3rver_uploads/} } map { DestorTest::files_under($_->{dir}) } @s3);
}
# 48 MiB that compress to a few KiB: more than a part a shard before
# compression, but its first blocks compress, so it is not begun ahead
# and keeps its single PUT a shard
my $open0 = open_uploads();
my $md5 = $node->safe_psql('postgres', "SELECT md5(repeat('destor', 8 * 1024 * 1024))");
my $packed = $node->safe_psql('postgres',
	"SELECT destor.blob_put('archive', convert_to(repeat('destor', 8 * 1024 * 1024), 'UTF8'))");
is(shards_not_ok($packed), '0', 'a 48 MiB blob that compresses to less than a part stores every shard');
is($node->safe_psql('postgres',
	"SELECT md5(convert_from(destor.blob_get('$packed'), 'UTF8')) = '$md5' AND destor.blob_size('$packed') = 50331648"),
	't', 'and reads back whole');
is(open_uploads(), $open0, 'and leaves no multipart upload open');

# d5 holds what it is sent for a minute: its begin does not answer; the
# others' parts are stored, and d5's shard is given up for repair
set_stall(5, 60_000);
my $stalled = $node->safe_psql('postgres', "SET client_min_messages = error; SELECT destor.blob_import('archive', '$file40')");
set_stall(5, 0);
is(shards_not_ok($stalled), '1', 'a provider stalled at the begin: its shard alone is given up');
is($node->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$stalled')), 'hex')"),
	$digest40, 'and the blob reads back byte for byte');

# every provider stalled: the statement times out while the begins are
# in flight; the session goes on, and the next import is whole
set_stall($_, 60_000) for 0 .. 5;
my ($rc, $o, $err) = $node->psql('postgres', qq{
SET statement_timeout = '1500ms';
SELECT destor.blob_import('archive', '$file40');
RESET statement_timeout;
SELECT 'after';}, on_error_stop => 0);
set_stall($_, 0) for 0 .. 5;
like($err, qr/canceling statement due to statement timeout/, 'begins stalled: the import times out');
is($o, 'after', 'and the session goes on');
my $again = $node->safe_psql('postgres', "SELECT destor.blob_import('archive', '$file40')");
is(shards_not_ok($again), '0', 'the next import stores every shard');
is($node->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$again')), 'hex')"),
	$digest40, 'and reads back byte for byte');

# a file pool (uploads one part at a time): begun ahead too
my $fdir = "$base/files";
make_path("$fdir/$_") for 0 .. 5;
$node->safe_psql('postgres', join('', map {
	"CREATE SERVER fp$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$fdir/$_');\n" } 0 .. 5)
	  . "CREATE SERVER fpool FOREIGN DATA WRAPPER destor OPTIONS (providers '"
	  . join(',', map { "fp$_" } 0 .. 5) . "', data_shards '4', parity_shards '2');");
my $fblob = $node->safe_psql('postgres', "SELECT destor.blob_import('fpool', '$file40')");
is(shards_not_ok($fblob), '0', 'on file providers, an import begun ahead stores every shard');
is($node->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$fblob')), 'hex')"),
	$digest40, 'and reads back byte for byte');
my $fpacked = $node->safe_psql('postgres',
	"SELECT destor.blob_put('fpool', convert_to(repeat('destor', 8 * 1024 * 1024), 'UTF8'))");
is($node->safe_psql('postgres', "SELECT md5(convert_from(destor.blob_get('$fpacked'), 'UTF8'))"),
	$md5, 'and one that ends as a single part reads back whole');

DestorTest::stop_s3($s3[2]);
is($node->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$big')), 'hex')"),
	$digest, 'a provider stopped: the import reads back byte for byte');

done_testing();
