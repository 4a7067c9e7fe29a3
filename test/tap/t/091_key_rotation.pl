# Master key rotation (issue 12 item 4) on s3rver providers: blobs and a
# table written under one key; the server reconfigured (new key wraps,
# previous key unwraps); destor.rotate_master_key() committed in part with
# max_keys, then killed with kill -9 in the middle of a batch and resumed;
# after the previous key is unset and its file deleted, every blob and row
# reads byte-identical, and the old key reads nothing re-wrapped or written
# since.  No key's bytes reach the server log.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use CrashPoints;
use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $oldkey) = DestorTest::start_cluster('rotate', conf => "restart_after_crash = on\n");
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
# no server outlives the test, also when it fails
END { local $?; DestorTest::stop_s3($_) for @s3 }
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @s3));
# many small objects, so that the rotation has batches to be killed in
my ($fsql) = DestorTest::file_pool_sql($base, 'tiny', 2, 1, 1);
$node->safe_psql('postgres', $fsql);
# an exclusive pool: its writer lease is signed with the master key too
$node->safe_psql('postgres', "ALTER SERVER tiny OPTIONS (ADD mode 'exclusive')");

my $old_hex = do { local (@ARGV, $/) = ($oldkey); my $h = <>; $h =~ s/\s+//g; $h };
copy($oldkey, "$base/old_copy.key") or die;
chmod 0600, "$base/old_copy.key";

# --- data under the old key ----------------------------------------------------------------
$node->safe_psql('postgres', q{
CREATE FUNCTION noise(n int, seed int) RETURNS bytea LANGUAGE sql AS $$
  SELECT substring(decode(string_agg(md5((i + seed * 1000003)::text), '' ORDER BY i), 'hex') FROM 1 FOR n)
    FROM generate_series(0, n / 16) i $$;
CREATE TABLE src (name text PRIMARY KEY, data bytea);
INSERT INTO src VALUES ('0 B', ''), ('1 B', '\x01'), ('70 kB', noise(70000, 1)),
  ('3 MB', noise(3000000, 2)), ('text', convert_to(repeat('compressible ', 50000), 'UTF8'));
CREATE TABLE stored AS SELECT name, destor.blob_put('archive', data) AS b FROM src;
CREATE FOREIGN TABLE m (id int, v text, x float8) SERVER archive OPTIONS (segment_rows '5000', row_group_rows '1000');
INSERT INTO m SELECT i, md5(i::text), i / 7.0 FROM generate_series(1, 20000) i;
CREATE TABLE h AS SELECT * FROM m;
CREATE TABLE tinies AS SELECT i, destor.blob_put('tiny', int4send(i)) AS b FROM generate_series(1, 2500) i;
});
my $old_id = $node->safe_psql('postgres', 'SELECT DISTINCT key_id FROM destor.objects');
like($old_id, qr/^\\x[0-9a-f]+$/, 'every object is wrapped by one master key before the rotation');
my $nobjects = $node->safe_psql('postgres', 'SELECT count(*) FROM destor.objects');
cmp_ok($nobjects, '>', 2505, "$nobjects objects to rotate");

sub everything_reads
{
	my ($what) = @_;
	is($node->safe_psql('postgres', q{
SELECT count(*) FILTER (WHERE destor.blob_get(b) = data) = count(*) FROM src JOIN stored USING (name)}),
		't', "blobs read byte-identical $what");
	is($node->safe_psql('postgres', q{
SELECT (SELECT count(*) FROM (SELECT * FROM m EXCEPT ALL SELECT * FROM h) d) + (SELECT count(*) FROM (SELECT * FROM h EXCEPT ALL SELECT * FROM m) d)
       || ':' || ((SELECT count(*) FROM m) = (SELECT count(*) FROM h))}),
		'0:true', "the table reads exactly as its heap copy $what");
	is($node->safe_psql('postgres', q{
SELECT count(*) FILTER (WHERE destor.blob_get(b) = int4send(i)) FROM tinies}),
		'2500', "2500 small blobs read $what");
}

# --- the server configured for the rotation --------------------------------------------------
my $newkey = "$base/new.key";
my $new_hex = DestorTest::new_master_key($newkey);
sub set_keys
{
	my ($master, $previous) = @_;
	$node->append_conf('postgresql.conf',
		"destor.master_key_file = '$master'\ndestor.previous_master_key_file = '$previous'\n");
	$node->reload;
	$node->poll_query_until('postgres',
		"SELECT current_setting('destor.master_key_file') = '$master' AND "
		  . "current_setting('destor.previous_master_key_file') = '$previous'")
	  or die 'the configuration was not reloaded';
}

# rotating to a new key before the server knows it is refused
my ($rc, $out, $err) = $node->psql('postgres', "SELECT destor.rotate_master_key('$newkey')");
like($err, qr/the server is not configured for a rotation to master key file/,
	'a rotation to a key the server does not use yet is refused');

set_keys($newkey, $oldkey);
everything_reads('with the new key configured and the old one as previous');

# a new object is wrapped by the new key at once
$node->safe_psql('postgres', q{
INSERT INTO src VALUES ('during', noise(200000, 3));
INSERT INTO stored SELECT name, destor.blob_put('archive', data) FROM src WHERE name = 'during';
INSERT INTO m SELECT i, md5(i::text), i / 7.0 FROM generate_series(20001, 21000) i;
INSERT INTO h SELECT i, md5(i::text), i / 7.0 FROM generate_series(20001, 21000) i;
});
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.objects WHERE key_id <> '$old_id'"),
	'2', 'objects written during the rotation are wrapped by the new key');

# the same key as the previous one is refused
($rc, $out, $err) = $node->psql('postgres', "SELECT destor.rotate_master_key('$oldkey')");
like($err, qr/the new master key is the same as the previous master key/,
	'rotating to the key being retired is refused');
# a key the server does not use as its master key is refused
my $third = "$base/third.key";
DestorTest::new_master_key($third);
($rc, $out, $err) = $node->psql('postgres', "SELECT destor.rotate_master_key('$third')");
like($err, qr/does not hold the key of destor.master_key_file/,
	'rotating to a key other than destor.master_key_file is refused');

# --- a first piece, committed ---------------------------------------------------------------
is($node->safe_psql('postgres', "SELECT destor.rotate_master_key('$newkey', 1500)"),
	'1500', 'a rotation bounded by max_keys re-wraps that many data keys');
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.objects WHERE key_id <> '$old_id'"),
	'1502', 'and commits them');
everything_reads('half-way through the rotation');

# --- kill -9 in the middle of a batch ---------------------------------------------------------
# a session holds the row of the last object still wrapped by the old key, so
# the rotation, having re-wrapped the batches before it, waits in its last batch
my $locker = $node->background_psql('postgres');
$locker->query_safe("BEGIN; SELECT 1 FROM destor.objects WHERE key_id = '$old_id' "
	  . "ORDER BY object_id DESC LIMIT 1 FOR UPDATE;");
my $w = CrashPoints::start_workload($node, 'rotator',
	"SELECT destor.rotate_master_key('$newkey');\n", $base);
ok($node->poll_query_until('postgres',
	"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE application_name = 'rotator'"),
	'the rotation waits for the locked row');
cmp_ok($node->safe_psql('postgres',
	"SELECT objects_done FROM destor.progress WHERE command = 'rotate_master_key'"),
	'>=', 1000, 'destor.progress shows the rotation half-way through the rest');
my $pid = CrashPoints::backend_pid($node, $w);
ok(CrashPoints::crash($node, $pid), 'the rotating backend is killed with kill -9');
CrashPoints::finish_workload($w, 60);
eval { $locker->quit };
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.objects WHERE key_id <> '$old_id'"),
	'1502', 'the killed rotation left nothing half-done: its transaction rolled back');
everything_reads('after the crash, keys of both generations');

# --- resumed ---------------------------------------------------------------------------------
my $rest = $nobjects - 1500;
is($node->safe_psql('postgres', "SELECT destor.rotate_master_key('$newkey')"),
	$rest, "the resumed rotation re-wraps the $rest data keys left");
is($node->safe_psql('postgres', "SELECT destor.rotate_master_key('$newkey')"),
	'0', 'a rotation run again finds nothing left');
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.objects WHERE key_id = '$old_id'"),
	'0', 'no object is wrapped by the old key');

# --- the old key retired ------------------------------------------------------------------------
set_keys($newkey, '');
unlink($oldkey) or die;
everything_reads('with the new key alone and the old key file deleted');
is($node->safe_psql('postgres', q{SELECT destor.blob_get(b) = data FROM src JOIN stored USING (name) WHERE name = 'during'}),
	't', 'the blob written during the rotation reads');
is($node->safe_psql('postgres', q{SELECT destor.blob_size(destor.blob_put('tiny', '\x0102'))}),
	'2', 'the exclusive pool is written: the rotation signed its writer lease under the new key');

# the old key reads nothing: configured alone, it is refused by fingerprint ...
set_keys("$base/old_copy.key", '');
($rc, $out, $err) = $node->psql('postgres',
	q{SELECT destor.blob_get(b) FROM stored WHERE name = '70 kB'});
like($err, qr/written with a different master key/, 'the old key does not read a re-wrapped blob');
($rc, $out, $err) = $node->psql('postgres',
	q{SELECT destor.blob_get(b) FROM stored WHERE name = 'during'});
like($err, qr/written with a different master key/, 'nor one written during the rotation');
($rc, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM m WHERE v IS NOT NULL');
like($err, qr/written with a different master key/, 'nor the table');
# ... and cryptographically: with the row claiming the old fingerprint, the
# wrapped key does not authenticate under the old key
($rc, $out, $err) = $node->psql('postgres', qq{
BEGIN;
UPDATE destor.objects SET key_id = '$old_id' WHERE object_id = (SELECT b::uuid FROM stored WHERE name = '70 kB');
SELECT destor.blob_get(b) FROM stored WHERE name = '70 kB';
ROLLBACK;});
like($err, qr/could not unwrap the data key of object/,
	'the re-wrapped data key does not unwrap under the old key');

set_keys($newkey, '');
everything_reads('back on the new key');

# the new key's bytes and the old key's never reach the server log
my $log = slurp_file($node->logfile);
ok(index($log, $old_hex) < 0 && index($log, $new_hex) < 0, 'no key bytes in the server log');

$node->stop;
done_testing();
