# One writer per pool (issue 12 item 3): two clusters on the same file
# providers.  The first, declaring the pool mode 'exclusive', writes and
# holds the writer lease; the second is refused with the holder named; a
# pool declared mode 'read_only' refuses every write, and its repair and
# orphan cleanup change nothing on the providers; a lease forged by a
# provider is ignored; take_over_pool() fences the old writer: its open
# transaction cannot commit and its next write fails.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Copy qw(copy);
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($a, $akey) = DestorTest::start_cluster('writer_a');
my ($b, $bkey) = DestorTest::start_cluster('writer_b');
# the same master key: both read and authenticate the same pool
copy($akey, $bkey) or die;
chmod 0600, $bkey;
my $base = $a->basedir;
my @dirs = map { "$base/shared$_" } 1 .. 3;
make_path($_) for @dirs;
sub pool_sql
{
	my ($mode) = @_;
	return join('', map {
		"CREATE SERVER f$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs[$_ - 1]');\n"
	} 1 .. 3)
	  . "CREATE SERVER shared FOREIGN DATA WRAPPER destor OPTIONS (providers 'f1,f2,f3', "
	  . "data_shards '2', parity_shards '1'" . ($mode ? ", mode '$mode'" : '') . ");\n";
}
sub shard_files
{
	return scalar(grep { m{/ds/} } map { DestorTest::files_under($_) } @dirs);
}
$a->safe_psql('postgres', pool_sql('exclusive'));
$b->safe_psql('postgres', pool_sql(undef));
my $a_instance = $a->safe_psql('postgres',
	"SELECT substr(o, 10) FROM pg_foreign_data_wrapper, unnest(fdwoptions) o WHERE fdwname = 'destor_provider' AND o LIKE 'instance=%'");
like($a_instance, qr/^[0-9a-f-]{36}$/, 'the first cluster has an instance id');

# bad option values are refused
my ($rc, $out, $err) = $a->psql('postgres', "ALTER SERVER shared OPTIONS (SET mode 'sometimes')");
like($err, qr/invalid value for option "mode": "sometimes".*Valid values are: read_write, exclusive, read_only/s,
	'an unknown mode is refused, listing the valid ones');

# --- the first writer ------------------------------------------------------------------------
$a->safe_psql('postgres', q{
CREATE TABLE docs AS SELECT i, destor.blob_put('shared', convert_to('doc ' || i, 'UTF8')) AS b FROM generate_series(1, 3) i;
CREATE FOREIGN TABLE t (id int, v text) SERVER shared;
INSERT INTO t SELECT i, 'row ' || i FROM generate_series(1, 100) i;
});
is($a->safe_psql('postgres', q{SELECT string_agg(convert_from(destor.blob_get(b), 'UTF8'), ',' ORDER BY i) FROM docs}),
	'doc 1,doc 2,doc 3', 'the exclusive writer writes and reads blobs');
ok(-f "$_/meta/lease/shared", "a lease object is on provider $_") for @dirs;
my $lease = slurp_file("$dirs[0]/meta/lease/shared");
like($lease, qr/^destor-lease-v1\npool shared\ninstance \Q$a_instance\E\nepoch 1\n/,
	'the lease names the writer and epoch 1');
like($lease, qr/\nmac [0-9a-f]{64}\n$/, 'and carries a MAC');

# --- a second writer is refused ---------------------------------------------------------------------
$b->safe_psql('postgres', "ALTER SERVER shared OPTIONS (ADD mode 'exclusive')");
($rc, $out, $err) = $b->psql('postgres', "SELECT destor.blob_put('shared', 'second writer')");
like($err, qr/pool "shared" is held by another writer/, 'a second exclusive writer is refused');
like($err, qr/names instance \Q$a_instance\E \(system \d+ database postgres\), epoch 1/,
	'the refusal names the holder and its epoch');
like($err, qr/destor\.take_over_pool\('shared'\)/, 'and says how to take over');
is(shard_files(), 9 + 3, 'the refused write left nothing on the providers');

# a provider forging a lease (another epoch, the old MAC) is not believed
my $forged = $lease;
$forged =~ s/epoch 1/epoch 99/;
for my $d (@dirs[0, 1])
{
	open(my $fh, '>', "$d/meta/lease/shared") or die;
	print $fh $forged;
	close $fh;
}
sleep(6);	# past the lease cache
is($a->safe_psql('postgres', "SELECT destor.blob_size(destor.blob_put('shared', 'after forgery'))"),
	'13', 'leases with a bad MAC are ignored: the writer still holds the pool');
($rc, $out, $err) = $b->psql('postgres', "SELECT destor.blob_put('shared', 'second writer')");
like($err, qr/held by another writer.*epoch 1\b/s, 'and the second writer is still refused');

# --- a read-only attach refuses every write ----------------------------------------------------------
# (first some objects of the second cluster's own, written before it became a reader:
# a shard lost, and an orphan)
$b->safe_psql('postgres', "ALTER SERVER shared OPTIONS (SET mode 'read_write')");
$b->safe_psql('postgres', q{
CREATE TABLE mine AS SELECT destor.blob_put('shared', 'b''s own blob') AS b;
CREATE TABLE orphan AS SELECT destor.blob_put('shared', 'soon an orphan') AS b;
DELETE FROM destor.shards WHERE object_id = (SELECT b::uuid FROM orphan);
DELETE FROM destor.blobs WHERE blob_id = (SELECT b::uuid FROM orphan);
DELETE FROM destor.objects WHERE object_id = (SELECT b::uuid FROM orphan);
});
my $lost = $b->safe_psql('postgres', q{
SELECT provider || ' ' || object_id FROM destor.shards WHERE object_id = (SELECT b::uuid FROM mine) AND shard_index = 0});
my ($lost_provider, $lost_id) = split / /, $lost;
(my $hex = $lost_id) =~ s/-//g;
my ($lost_file) = grep { m{/\Q$hex\E\.0$} } map { DestorTest::files_under($_) } @dirs;
ok(defined $lost_file && unlink($lost_file), 'a shard of the reader\'s own blob is lost');
$b->safe_psql('postgres', "ALTER SERVER shared OPTIONS (SET mode 'read_only')");
my $files = shard_files();

for my $write (
	[ "SELECT destor.blob_put('shared', 'x')", 'blob_put' ],
	[ "SELECT destor.blob_import('shared', '$bkey')", 'blob_import' ],
	[ "CREATE FOREIGN TABLE rt (id int) SERVER shared; INSERT INTO rt VALUES (1)", 'INSERT into its table' ],
	[ "CREATE FOREIGN TABLE rt2 (id int) SERVER shared; COPY rt2 FROM PROGRAM 'echo 1'", 'COPY into its table' ],
	[ "SELECT * FROM destor.rebalance('shared')", 'rebalance' ],
	[ "SELECT destor.take_over_pool('shared')", 'take_over_pool' ])
{
	($rc, $out, $err) = $b->psql('postgres', $write->[0]);
	like($err, qr/cannot (write to|rebalance|take over) pool "shared": it is declared read-only/,
		"a read-only pool refuses $write->[1]");
}
($rc, $out, $err) = $b->psql('postgres', "SELECT destor.cleanup_orphans('shared', '0')");
is($out, '0', 'cleanup_orphans on a read-only pool removes nothing');
like($err, qr/pool "shared" is declared read-only: nothing is removed/, 'and says why');
is($b->safe_psql('postgres', "SELECT problem || ' ' || repaired FROM destor.repair('shared')"),
	'missing false', 'repair on a read-only pool reports the lost shard and rebuilds nothing');
is($b->safe_psql('postgres', "SELECT count(*) FROM destor.move_shards('$lost_provider') WHERE detail LIKE '%read-only%'"),
	$b->safe_psql('postgres', "SELECT count(*) FROM destor.shards WHERE provider = '$lost_provider'"),
	'move_shards moves no shard of a read-only pool');
is(shard_files(), $files, 'no provider file was written or removed');
is($b->safe_psql('postgres', q{SELECT convert_from(destor.blob_get(b), 'UTF8') FROM mine}),
	"b's own blob", 'the read-only pool still reads');
# the same calls, read-write, do change the providers (so the checks above are not vacuous)
$b->safe_psql('postgres', "ALTER SERVER shared OPTIONS (SET mode 'read_write')");
is($b->safe_psql('postgres', "SELECT destor.cleanup_orphans('shared', '0')"), '3',
	'read-write, cleanup_orphans removes the orphan\'s 3 shards');
is($b->safe_psql('postgres', "SELECT count(*) FROM destor.repair('shared') WHERE repaired"), '1',
	'and repair rebuilds the lost shard');

# --- take_over_pool fences the old writer -------------------------------------------------------------
$b->safe_psql('postgres', "ALTER SERVER shared OPTIONS (SET mode 'exclusive')");
my $old = $a->background_psql('postgres', on_error_stop => 0);
$old->query_safe("BEGIN; CREATE TABLE late AS SELECT destor.blob_put('shared', 'written before the take-over') AS b;");
my $t0 = time;
is($b->safe_psql('postgres', "SELECT destor.take_over_pool('shared')"), '2',
	'take_over_pool moves the lease to the second cluster with epoch 2');
cmp_ok(time - $t0, '>=', 5, 'take_over_pool waits until cached leases have expired');
like(slurp_file("$dirs[2]/meta/lease/shared"), qr/epoch 2\n/, 'the providers hold the new lease');
my $commit = $old->query('COMMIT');
like($old->{stderr}, qr/pool "shared" was taken over by another writer/,
	'the old writer\'s open transaction cannot commit');
$old->quit;
is($a->safe_psql('postgres', "SELECT count(*) FROM pg_class WHERE relname = 'late'"), '0',
	'its write was rolled back');
($rc, $out, $err) = $a->psql('postgres', "SELECT destor.blob_put('shared', 'after the take-over')");
like($err, qr/pool "shared" is held by another writer.*epoch 2/s, 'the old writer\'s next write is refused');
($rc, $out, $err) = $a->psql('postgres', "INSERT INTO t VALUES (101, 'late row')");
like($err, qr/held by another writer/, 'as is an INSERT into its table');
is($b->safe_psql('postgres', "SELECT destor.blob_size(destor.blob_put('shared', 'new writer'))"), '10',
	'the new writer writes');
# and the old one reads what it wrote
is($a->safe_psql('postgres', 'SELECT count(*) FROM t'), '100', 'the old writer still reads its table');

# leases that verify under no key of this database are not taken silently
for my $d (@dirs)
{
	open(my $fh, '>', "$d/meta/lease/shared") or die;
	print $fh $forged;
	close $fh;
}
sleep(6);	# past the lease cache
($rc, $out, $err) = $b->psql('postgres', "SELECT destor.blob_put('shared', 'x')");
like($err, qr/the writer lease of pool "shared" does not verify.*3 provider\(s\) hold a lease that is not authentic/s,
	'a pool whose leases all fail their MAC is not acquired by a write');
is($b->safe_psql('postgres', "SELECT destor.take_over_pool('shared')"), '1',
	'take_over_pool writes a new lease over them');
is($b->safe_psql('postgres', "SELECT destor.blob_size(destor.blob_put('shared', 'new writer'))"), '10',
	'and the writer writes again');

$a->stop;
$b->stop;
done_testing();
