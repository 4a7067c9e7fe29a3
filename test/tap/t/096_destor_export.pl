# destor-export: a way out of destor with no PostgreSQL server (issue 12
# item 5).
#
# A cluster writes tables of many types (NULLs, empty strings, quotes,
# commas, newlines, NaN and infinite floats, big numerics, BC dates, ...)
# and blobs to a pool; the server's COPY ... TO (FORMAT csv, HEADER) of each
# table and every blob's SHA-256 are kept; the cluster is stopped and its
# data directory removed, and one provider removed.  destor-export, given
# only the master key and the surviving providers, must list the pool,
# export every table byte for byte as COPY did and every blob byte for
# byte, and verify.  A wrong master key is a clear error; a corrupted shard
# is reported by verify and the data still exports; a column of a type the
# tool cannot print is a clear error.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use Digest::SHA qw(sha256_hex);
use File::Path qw(remove_tree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $base = PostgreSQL::Test::Utils::tempdir();
# objects are read a window of stripes at a time (8 MiB a shard): small
# windows make the test's objects cross window edges
$ENV{DESTOR_EXPORT_WINDOW_STRIPES} = 3;
my ($node, $key) = DestorTest::start_cluster('export', conf => "timezone = 'UTC'\n");
my ($sql, @dirs) = DestorTest::file_pool_sql($base, 'vault', 5, 3, 2);
$node->safe_psql('postgres', $sql);

# ------------------------------------------------------------------ tables
$node->safe_psql('postgres', q{
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy, "very"');
CREATE FOREIGN TABLE app.types (
  i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, b bool, t text, vc varchar(12), bc char(5),
  by bytea, d date, ts timestamp, tz timestamptz, u uuid, n numeric, n2 numeric(12,4), m app.mood,
  "odd, name" text)
  SERVER vault OPTIONS (segment_rows '1000', row_group_rows '100');
INSERT INTO app.types VALUES
  (1, 2, 3, 1.5, 2.25, true, 'plain', 'v', 'ab', '\x00ff10', '2024-02-29', '2024-01-01 12:34:56.789',
   '2024-06-01 00:00:00+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 123456789012345678901234567890.123456789,
   -12.5, 'ok', 'x'),
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (-32768, -2147483648, -9223372036854775808, 'NaN', '-Infinity', false, '', '', '', '', '4713-01-01 BC',
   '0044-03-15 00:00:00 BC', '-infinity', '00000000-0000-0000-0000-000000000000', 'NaN', 0, 'sad', ''),
  (32767, 2147483647, 9223372036854775807, 'Infinity', 'NaN', true, 'say "hi", then
leave', 'a,b', 'q"', '\x', 'infinity', 'infinity', '1999-12-31 23:59:59.999999+00',
   'ffffffff-ffff-ffff-ffff-ffffffffffff', '-0.000000000000000000001', 99999999.9999, 'happy, "very"', 'a\b'),
  (7, 8, 9, 3.4028235e38, 1e100, false, E'tab\there\r\nline', '\.', 'x', '\x5c2c22', '1970-01-01',
   '2000-01-01 00:00:00', '2000-01-01 00:00:00.5+00', 'deadbeef-0000-4000-8000-000000000001', 1e-20,
   0.0001, 'ok', '"'),
  (0, 0, 0, -0.0, 1.2345678901234567e-05, true, 'ünïcödé ✓', 'é', 'é', '\xdeadbeef', '2024-12-31',
   '2024-12-31 23:59:59', '2024-12-31 23:59:59+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 1e30,
   -1, NULL, 'z'),
  (1, 1, 123456789012, 0.1, 0.1, false, 'x', 'y', 'z', '\x01', '2001-01-01', '2001-01-01 01:01:01.000001',
   '2001-01-01 01:01:01.000001+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13', 100000000000000,
   1, 'happy, "very"', NULL),
  (2, 2, 2, 100000, 1e15, true, 'y', 'y', 'y', '\x02', '2001-01-02', '2001-01-02 00:00:00', '2001-01-02 00:00:00+00',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a14', 2, 2, 'ok', 'y'),
  (3, 3, 3, 1e6, 1e14, true, 'z', 'z', 'z', '\x03', '2001-01-03', '2001-01-03 00:00:00', '2001-01-03 00:00:00+00',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a15', -3.5, 3, 'ok', 'z');
-- a second segment written later, then rows deleted and updated
INSERT INTO app.types (i4, t, f8, n) SELECT g, 'row ' || g, g / 7.0, g * 1.1 FROM generate_series(10, 400) g;
DELETE FROM app.types WHERE i4 % 3 = 0 AND i4 >= 10;
UPDATE app.types SET t = 'updated' WHERE i4 = 11;
ALTER FOREIGN TABLE app.types DROP COLUMN i2;
CREATE FOREIGN TABLE app.solo (v text) SERVER vault;
INSERT INTO app.solo VALUES ('\.'), (''), (NULL), ('a');
CREATE FOREIGN TABLE app.times (iv interval, tt timetz, ti time) SERVER vault;
INSERT INTO app.times VALUES ('1 year 2 months 3 days 04:05:06.789', '04:05:06.5+02', '24:00:00'),
  ('-1 days +02:00:00', '23:59:59-05:30', '00:00:00.000001'), ('0', '00:00:00+00', '12:00'),
  ('-3 years -1 mon -00:00:01.25', '12:34:56.789-00:00:15', NULL), ('1 mon -1 day', NULL, '01:02:03'),
  ('-178000000 years', '00:00:00+15:59', '23:59:59.999999'), (NULL, NULL, NULL);
CREATE FOREIGN TABLE app.events (id int, doc jsonb) SERVER vault;
INSERT INTO app.events VALUES (1, '{"a": 1}');
CREATE FOREIGN TABLE app.gone (x int) SERVER vault;
INSERT INTO app.gone VALUES (1);
DROP FOREIGN TABLE app.gone;
});

my %csv;
for my $t ('app.types', 'app.solo', 'app.times')
{
	my $file = "$base/$t.server.csv";
	$node->safe_psql('postgres', "COPY (SELECT * FROM $t) TO '$file' (FORMAT csv, HEADER)");
	$csv{$t} = slurp_file($file);
}
like($csv{'app.types'}, qr/"say ""hi"", then\nleave"/, 'the server wrote quotes and newlines into the CSV');
like($csv{'app.times'}, qr/^1 year 2 mons 3 days 04:05:06\.789,04:05:06\.5\+02,24:00:00$/m, '... and intervals');

# ------------------------------------------------------------------- blobs
my %blobs;
for my $b (['small', q{'hello, exported world'::bytea}], ['empty', q{''::bytea}],
	['large', q{(SELECT string_agg(sha256(i::text::bytea), '') FROM generate_series(1, 40000) i)}],
	['random', q{(SELECT string_agg(decode(md5(random()::text), 'hex'), '') FROM generate_series(1, 9000))}])
{
	my $id = $node->safe_psql('postgres', "SELECT destor.blob_put('vault', $b->[1])");
	$blobs{$b->[0]} = {
		id => $id,
		sha => $node->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$id')), 'hex')"),
		size => $node->safe_psql('postgres', "SELECT destor.blob_size('$id')"),
	};
}
my $deleted = $node->safe_psql('postgres', q{SELECT destor.blob_put('vault', 'deleted')});
$node->safe_psql('postgres', "SELECT destor.blob_delete('$deleted')");
cmp_ok($blobs{large}{size}, '>', 1_000_000, 'a blob of several blocks and stripes');

# a second pool on three s3rver providers (2 + 1)
my @s3 = DestorTest::start_s3_servers(3, $base);
END { local $?; DestorTest::stop_s3($_) for @s3 }
$node->safe_psql('postgres', DestorTest::providers_sql('cloud', 2, 1, @s3));
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE app.remote (k int, v text) SERVER cloud;
INSERT INTO app.remote SELECT g, repeat('v' || g, g % 50) FROM generate_series(1, 3000) g;
});
my $s3_csv_file = "$base/remote.server.csv";
$node->safe_psql('postgres', "COPY (SELECT * FROM app.remote) TO '$s3_csv_file' (FORMAT csv, HEADER)");
my $s3_blob = $node->safe_psql('postgres',
	q{SELECT destor.blob_put('cloud', (SELECT string_agg(sha256(i::text::bytea), '') FROM generate_series(1, 9000) i))});
my $s3_blob_sha = $node->safe_psql('postgres', "SELECT encode(sha256(destor.blob_get('$s3_blob')), 'hex')");

# ------------------------------------------------------ the server is gone
my $datadir = $node->data_dir;
$node->stop;
remove_tree($datadir);
remove_tree($dirs[1]);			# one provider lost for good
my @providers = map { "--provider=file:$_" } @dirs[0, 2, 3, 4];

sub export
{
	my (@args) = @_;
	my ($stdout, $stderr);
	my $ok = IPC::Run::run(['destor-export', "--master-key=$key", @providers, '--pool=vault', @args],
		'>', \$stdout, '2>', \$stderr);
	return ($? >> 8, $stdout, $stderr);
}

my ($rc, $out, $err) = export('ls');
is($rc, 0, 'ls exits 0') or diag($err);
like($out, qr/^table app\.types \(i4 integer, .*"?odd, name"? text\) rows 270 segments /m,
	'ls lists the table, its live columns and its rows');
like($out, qr/^table app\.solo \(v text\) rows 4 segments 1$/m, 'ls lists a second table');
unlike($out, qr/app\.gone/, 'a dropped table is not listed');
for my $name (sort keys %blobs)
{
	like($out, qr/^blob $blobs{$name}{id} size $blobs{$name}{size} owner \S+$/m, "ls lists blob $name");
}
unlike($out, qr/$deleted/, 'a deleted blob is not listed');

for my $t ('app.types', 'app.solo', 'app.times')
{
	my $file = "$base/$t.export.csv";
	($rc, $out, $err) = export('table', $t, '-o', $file);
	is($rc, 0, "table $t exits 0") or diag($err);
	my $got = -e $file ? slurp_file($file) : '';
	ok($got eq $csv{$t}, "table $t: the CSV is byte for byte the server's COPY output")
	  or diag("server:\n$csv{$t}\nexport:\n$got");
}
($rc, $out, $err) = export('table', 'app.solo');
is($out, $csv{'app.solo'}, 'a table goes to stdout without -o');

for my $name (sort keys %blobs)
{
	my $file = "$base/blob.$name";
	($rc, $out, $err) = export('blob', $blobs{$name}{id}, '-o', $file);
	is($rc, 0, "blob $name exits 0") or diag($err);
	is(sha256_hex(-e $file ? slurp_file($file) : 'missing'), $blobs{$name}{sha}, "blob $name: every byte");
}

($rc, $out, $err) = export('table', 'app.events');
isnt($rc, 0, 'a column of a type the tool cannot print fails');
like($err, qr/column "doc" of table app\.events has type jsonb/, '... and names the column and type');
($rc, $out, $err) = export('table', 'app.nosuch');
is($rc, 2, 'an unknown table is exit status 2');
like($err, qr/no table "app\.nosuch"/, '... and says so');

($rc, $out, $err) = export('verify');
is($rc, 0, 'verify with one provider missing exits 0') or diag($out, $err);
like($out, qr/^DEGRADED  blob $blobs{large}{id}: 1 of 5 shards bad, recoverable$/m,
	'verify reports an object missing a shard as degraded');
like($out, qr/ 0 LOST$/m, 'nothing is lost');
like($out, qr/^metadata log: (\d+) log objects read, \1 degraded \(recoverable\), 0 unreadable$/m,
	'verify reports the log objects missing their shard on the lost provider');

# the s3 pool with one of its three servers stopped; credentials from the environment
DestorTest::stop_s3($s3[0]);
{
	local $ENV{AWS_ACCESS_KEY_ID} = $DestorTest::ACCESS_KEY;
	local $ENV{AWS_SECRET_ACCESS_KEY} = $DestorTest::SECRET_KEY;
	my @cloud = ("--master-key=$key", '--pool=cloud',
		map { "--provider=s3:http://127.0.0.1:$_->{port}/$_->{bucket}" } @s3[1, 2]);
	my ($stdout, $stderr);
	IPC::Run::run(['destor-export', @cloud, 'ls'], '>', \$stdout, '2>', \$stderr);
	is($? >> 8, 0, 's3: ls exits 0') or diag($stderr);
	like($stdout, qr/^table app\.remote \(k integer, v text\) rows 3000 segments 1$/m, 's3: ls lists the table');
	IPC::Run::run(['destor-export', @cloud, 'table', 'app.remote', '-o', "$base/remote.csv"],
		'>', \$stdout, '2>', \$stderr);
	is($? >> 8, 0, 's3: table exits 0') or diag($stderr);
	ok(slurp_file("$base/remote.csv") eq slurp_file($s3_csv_file), 's3: the CSV is byte for byte the server\'s');
	IPC::Run::run(['destor-export', @cloud, 'blob', $s3_blob], '>', \$stdout, '2>', \$stderr);
	is(sha256_hex($stdout), $s3_blob_sha, 's3: the blob, every byte, on stdout');
	IPC::Run::run(['destor-export', @cloud, 'verify'], '>', \$stdout, '2>', \$stderr);
	is($? >> 8, 0, 's3: verify exits 0');
	like($stdout, qr/^verified 2 objects: 0 OK, 2 degraded \(recoverable\), 0 LOST$/m, 's3: verify sees the missing server');
	local $ENV{AWS_SECRET_ACCESS_KEY};
	local $ENV{AWS_ACCESS_KEY_ID};
	IPC::Run::run(['destor-export', @cloud, 'ls'], '>', \$stdout, '2>', \$stderr);
	isnt($? >> 8, 0, 's3: no credentials is an error');
	like($stderr, qr/no S3 credentials/, '... that says how to give them');
}

# a wrong master key
my $wrong = "$base/wrong.key";
DestorTest::new_master_key($wrong);
{
	my ($stdout, $stderr);
	IPC::Run::run(['destor-export', "--master-key=$wrong", @providers, '--pool=vault', 'ls'],
		'>', \$stdout, '2>', \$stderr);
	is($? >> 8, 2, 'a wrong master key is exit status 2');
	like($stderr, qr/written under another master key \(fingerprint [0-9a-f]{16}\); the key given has fingerprint [0-9a-f]{16}/,
		'... and says which keys');
	is($stdout, '', '... and prints nothing');
}

# corrupt one more shard of the large blob: m = 2 bad shards are still recoverable
my ($shard) = grep { m{/ds/} } DestorTest::files_under($dirs[2]);
my $hex = $blobs{large}{id} =~ s/-//gr;
($shard) = grep { m{/ds/.*\Q$hex\E\.\d+$} } DestorTest::files_under($dirs[2]);
ok(defined $shard, 'a shard of the large blob on a surviving provider');
{
	open(my $fh, '+<:raw', $shard) or die "cannot open $shard: $!";
	seek($fh, 1000, 0);
	print $fh "corrupted!";
	close $fh;
}
($rc, $out, $err) = export('verify');
is($rc, 0, 'verify with a missing and a corrupt shard of an object exits 0');
like($out, qr/^DEGRADED  blob $blobs{large}{id}: 2 of 5 shards bad, recoverable$/m, 'verify counts both');
like($out, qr/^ +shard \d+ corrupt: chunk of stripe 0 fails its tag$/m, 'verify names the corrupt chunk');
($rc, $out, $err) = export('blob', $blobs{large}{id}, '-o', "$base/blob.large2");
is(sha256_hex(slurp_file("$base/blob.large2")), $blobs{large}{sha}, 'the blob still exports byte for byte');

# a third bad shard: lost
($shard) = grep { m{/ds/.*\Q$hex\E\.\d+$} } DestorTest::files_under($dirs[3]);
unlink $shard;
($rc, $out, $err) = export('verify');
is($rc, 1, 'verify exits 1 when an object is lost');
like($out, qr/^LOST      blob $blobs{large}{id}: /m, 'verify reports it LOST');
($rc, $out, $err) = export('blob', $blobs{large}{id}, '-o', "$base/blob.large3");
is($rc, 1, 'exporting a lost blob fails');
ok(!-e "$base/blob.large3", '... and leaves no partial file');

done_testing();
