# Providers that lie: no provider can make destor return wrong data, and up
# to m of them cannot make it fail.  A lying provider (test/tap/
# HostileProvider.pm edits what a file provider serves) flips bytes and
# recomputes the chunk's CRC-64, serves another object's shard, replays
# another shard of the same object under the right name, or truncates it.
# Reads stay exact with up to m = 2 liars and name the liars in the log and
# in the error when there are more; repair(verify) finds every forged chunk
# and names the provider; repair never rebuilds from a forged chunk.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use HostileProvider;
use HostileFixture;
use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $fx = HostileFixture->new('hostile', 6);
my ($node, $base) = ($fx->{node}, $fx->{base});
my $src = $fx->{src};
sub put_blob { $fx->put_blob(@_) }
sub shard { $fx->shard(@_) }
sub read_back { $fx->read_back(@_) }

# incompressible blobs of 6 stripes and a bit, one file each
my $size = 1_600_000;
put_blob($_, $size) for qw(victim other replay swap scrub rebuild toomany);

my ($path, $prov, $ok, $err);

# --- one liar: a chunk flipped, its CRC recomputed
($path, $prov) = shard('victim', 0);
my $log_pos = -s $node->logfile;
my $l = HostileProvider::forge_chunk($path, 2);
is($l->{magic}, 'DESTOR02', 'new objects are written in format 2 (keyed chunk tags)');
($ok, $err) = read_back('victim');
ok($ok, 'a chunk forged with a recomputed CRC by one provider: the blob reads back exactly') or diag($err);
like(slurp_file($node->logfile, $log_pos), qr/shard 0 of object \S+ on provider "$prov" is corrupt at stripe 2: its chunk failed authentication/,
	'the read names the lying provider in the log');
# read in a fresh session: the providers' counts are shared, not per backend
is($node->safe_psql('postgres', qq{SELECT string_agg(provider || '=' || bad_chunks, ' ' ORDER BY provider)
	FROM destor.provider_status WHERE bad_chunks > 0}), "$prov=1",
	'provider_status counts the bad chunk against the lying provider, and only against it');

# --- two liars at once (m = 2): another object's shard under the right
# name, and another shard of the same object replayed
my ($p_other) = shard('other', 1);
my ($p_swap, $prov_swap) = shard('swap', 1);
HostileProvider::substitute($p_swap, $p_other);
my ($p_replay_src) = shard('swap', 2);
my ($p_replay, $prov_replay) = shard('swap', 3);
HostileProvider::substitute($p_replay, $p_replay_src);
($ok, $err) = read_back('swap');
ok($ok, "another object's shard and a replayed shard (two liars): the blob reads back exactly")
  or diag($err);

# --- a forged chunk and a truncated shard (two liars), on one stripe
($path) = shard('replay', 1);
HostileProvider::forge_chunk($path, 0);
($path) = shard('replay', 4);
HostileProvider::truncate_shard($path, 70000);
($ok, $err) = read_back('replay');
ok($ok, 'a forged chunk and a truncated shard: the blob reads back exactly') or diag($err);

# --- three liars (more than m): an error naming them, never wrong data
my @liars;
for my $i (0, 1, 5)
{
	my ($pth, $pv) = shard('toomany', $i);
	HostileProvider::forge_chunk($pth, 1);
	push @liars, $pv;
}
($ok, $err) = read_back('toomany');
ok(!$ok && $err =~ /could not read object/, 'three liars: the read fails rather than return wrong data')
  or diag($err);
like($err, qr/Unavailable or corrupt: \Q@{[join(', ', sort @liars)]}\E\./, 'and the error names the three lying providers');
like($err, qr/failed authentication/, 'and says their chunks failed authentication');
my $counted = $node->safe_psql('postgres', qq{SELECT count(*) FROM destor.provider_status
	WHERE provider IN (@{[join(', ', map { "'$_'" } @liars)]}) AND bad_chunks > 0});
is($counted, scalar(@liars), 'provider_status shows bad chunks for each of the three liars');

# --- scrub: repair(verify) finds a forged chunk whose trailer is intact
($path, $prov) = shard('scrub', 2);
HostileProvider::forge_chunk($path, 4);
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.repair(dry_run => true) r
	JOIN docs ON b::uuid = r.object_id WHERE name = 'scrub'}), '0',
	'without verify the forged chunk is not seen (its trailer looks right)');
is($node->safe_psql('postgres', q{SELECT shard_index || ' ' || provider || ' ' || problem || ' ' || detail
	FROM destor.repair(verify => true, dry_run => true) r JOIN docs ON b::uuid = r.object_id WHERE name = 'scrub'}),
	"2 $prov corrupt chunk of stripe 4 failed authentication",
	'repair(verify) finds the forged chunk and names its provider');

# --- repair never rebuilds from a forged chunk: shard 0 forged (its trailer
# intact), shard 5 lost; repair without verify rebuilds shard 5 from data
# shards first, meets the forgery on the way and rebuilds shard 0 too.
my ($p0) = shard('rebuild', 0);
my ($p5) = shard('rebuild', 5);
HostileProvider::forge_chunk($p0, 3);
unlink $p5 or die;
$node->safe_psql('postgres', 'SELECT count(*) FROM destor.repair()');
# now read with two other shards gone: only a correct rebuild of 0 and 5 helps
my ($p1) = shard('rebuild', 1);
my ($p2) = shard('rebuild', 2);
rename($p1, "$p1.gone") or die;
rename($p2, "$p2.gone") or die;
($ok, $err) = read_back('rebuild');
ok($ok, 'after repair, shards 0 and 5 are rebuilt right: the blob reads from 0, 3, 4, 5 alone')
  or diag($err);
rename("$p1.gone", $p1);
rename("$p2.gone", $p2);

# --- objects of format 1 (CRC-64 trailers, written before keyed tags)
# stay readable, and a chunk forged with its CRC is found by leaving shards
# out in turn: the read is exact and names the liar
$node->safe_psql('postgres', q{SET destor.object_format = 1;
	INSERT INTO docs VALUES ('v1', destor.blob_put('archive', (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 40000) i)::bytea));
	INSERT INTO docs VALUES ('v1forged', destor.blob_put('archive', (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 40000) i)::bytea));});
{
	my $f = "$base/v1src.bin";
	open(my $fh, '>:raw', $f) or die;
	print $fh join('', map { md5_hex($_) } 1 .. 40000);
	close $fh;
	$src->{v1} = $src->{v1forged} = DestorTest::sha256_file($f);
}
($ok, $err) = read_back('v1');
ok($ok, 'a format 1 object reads back exactly') or diag($err);
($path, $prov) = shard('v1forged', 1);
$log_pos = -s $node->logfile;
$l = HostileProvider::forge_chunk($path, 0, 100);
is($l->{magic}, 'DESTOR01', 'destor.object_format = 1 writes the CRC format');
($ok, $err) = read_back('v1forged');
ok($ok, 'format 1: a chunk forged with its CRC by one provider: the blob still reads back exactly')
  or diag($err);
like(slurp_file($node->logfile, $log_pos),
	qr/shard 1 of object \S+ on provider "$prov" served a chunk that matches its checksum but not the data written/,
	'and the lying provider is named');
($path, $prov) = shard('v1', 2);
HostileProvider::corrupt_chunk($path, 0, 10);
like($node->safe_psql('postgres', q{SELECT shard_index || ' ' || provider || ' ' || detail
	FROM destor.repair(verify => true, dry_run => true) r JOIN docs ON b::uuid = r.object_id WHERE name = 'v1'}),
	qr/^2 $prov chunk of stripe 0 does not match its checksum$/,
	'format 1: repair(verify) finds a corrupt chunk by its CRC');

done_testing();
