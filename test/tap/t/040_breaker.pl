# Adversarial review (issue 9): lies of a file provider that
# 022_hostile_providers.pl does not tell.  A chunk moved within its shard
# (with its own tag), a forged parity chunk (the healthy path never reads
# parity: only a scrub or a degraded read meets it), bytes appended to a
# shard, a forged chunk of a table segment, and a shard moved off a lying
# provider by move_shards (the forgery must not travel to an honest one).
# Reads return the right bytes or fail; scrub names the liar; repair and
# move_shards never carry a forgery onward.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use HostileProvider;
use HostileFixture;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $fx = HostileFixture->new('breaker', 7);
my $node = $fx->{node};
sub put_blob { $fx->put_blob(@_) }
sub object_file { $fx->object_file(@_) }
sub shard { $fx->shard(@_) }
sub read_back { $fx->read_back(@_) }
put_blob($_, 1_600_000) for qw(moved parity appended mover);

sub scrub
{
	my ($name) = @_;
	return $node->safe_psql('postgres', qq{SELECT string_agg(shard_index || ' ' || provider || ' ' || problem, ', ' ORDER BY shard_index)
		FROM destor.repair(verify => true, dry_run => true) r JOIN docs ON b::uuid = r.object_id WHERE name = '$name'});
}

# take shards away (rename), run a block, put them back
sub without
{
	my ($paths, $fn) = @_;
	rename($_, "$_.gone") or die "rename $_: $!" for @$paths;
	my @r = $fn->();
	rename("$_.gone", $_) for @$paths;
	return @r;
}

my ($path, $prov, $ok, $err);

# --- a chunk moved within its shard, with its own tag: stripes 1 and 3 of
# shard 0 trade places (chunks and trailer tags both)
($path, $prov) = shard('moved', 0);
{
	my $c = HostileProvider::slurp($path);
	my $l = HostileProvider::layout($c);
	my $cs = $l->{chunk_size};
	my $tl = $l->{tag_len};
	my $t0 = $l->{shard_data_len};
	my ($c1, $c3) = (substr($c, 1 * $cs, $cs), substr($c, 3 * $cs, $cs));
	substr($c, 1 * $cs, $cs) = $c3;
	substr($c, 3 * $cs, $cs) = $c1;
	my ($g1, $g3) = (substr($c, $t0 + 1 * $tl, $tl), substr($c, $t0 + 3 * $tl, $tl));
	substr($c, $t0 + 1 * $tl, $tl) = $g3;
	substr($c, $t0 + 3 * $tl, $tl) = $g1;
	HostileProvider::spew($path, $c);
	cmp_ok($l->{nstripes}, '>', 3, 'the blob has more than 3 stripes');
}
($ok, $err) = read_back('moved');
ok($ok, 'two chunks of one shard swapped with their tags: the blob reads back exactly') or diag($err);
is(scrub('moved'), "0 $prov corrupt", 'scrub finds the swapped chunks and names the provider');

# --- a forged parity chunk: unseen by healthy reads, found by scrub,
# rebuilt by repair; then a read without two data shards is exact
($path, $prov) = shard('parity', 5);
HostileProvider::forge_chunk($path, 2);
($ok, $err) = read_back('parity');
ok($ok, 'a forged parity chunk: the blob reads back exactly') or diag($err);
is(scrub('parity'), "5 $prov corrupt", 'scrub finds the forged parity chunk');
{
	my ($p0) = shard('parity', 0);
	my ($p1) = shard('parity', 1);
	# two shards gone and one forged leave 3 good of 6 where 4 are needed:
	# the right outcome is an error that names the forger, never bytes
	($ok, $err) = without([ $p0, $p1 ], sub { read_back('parity') });
	ok(!$ok && $err =~ /could not read object/ && $err =~ /\Q$prov\E": its chunk of stripe 2 failed authentication/,
		'without data shards 0 and 1 the read fails, naming the forged parity chunk, rather than return wrong bytes')
	  or diag($err);
	$node->safe_psql('postgres', 'SELECT count(*) FROM destor.repair(verify => true)');
	is(scrub('parity'), '', 'after repair(verify) the forged parity chunk is rebuilt');
	($ok, $err) = without([ $p0, $p1 ], sub { read_back('parity') });
	ok($ok, 'after repair(verify) the blob reads from shards 2, 3, 4, 5 alone') or diag($err);
}

# --- bytes appended to a shard: still the right bytes, the liar named by scrub
($path, $prov) = shard('appended', 2);
{
	open(my $fh, '>>:raw', $path) or die;
	print $fh 'x' x 1000;
	close $fh;
}
($ok, $err) = read_back('appended');
ok($ok, 'a shard with bytes appended: the blob reads back exactly') or diag($err);
like(scrub('appended'), qr/^(|2 \Q$prov\E corrupt)$/, 'scrub reports it against its own provider if at all');

# --- a forged chunk in a table segment: rows exact, scrub names the liar;
# three liars: an error, never wrong rows
$node->safe_psql('postgres', q{CREATE FOREIGN TABLE t (id int, s text) SERVER archive OPTIONS (row_group_rows '1000');
	INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 20000) i});
my $t_expected = $node->safe_psql('postgres', q{SELECT count(*), sum(i), max(md5(i::text)) FROM generate_series(1, 20000) i});
my $t_query = q{SELECT count(*), sum(id), max(s) FROM t};
my ($seg_id) = $node->safe_psql('postgres', q{SELECT object_id FROM destor.segments LIMIT 1});
my %seg_prov = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
	"SELECT shard_index, provider FROM destor.shards WHERE object_id = '$seg_id'");
HostileProvider::forge_chunk(object_file($seg_id, $seg_prov{1}, 1), 0);
is($node->safe_psql('postgres', $t_query), $t_expected, 'a table segment with a forged chunk: the rows are exact');
is($node->safe_psql('postgres', qq{SELECT string_agg(shard_index || ' ' || provider || ' ' || problem, ', ')
	FROM destor.repair(verify => true, dry_run => true) WHERE object_id = '$seg_id'}),
	"1 $seg_prov{1} corrupt", 'scrub names the provider of the forged segment chunk');
HostileProvider::forge_chunk(object_file($seg_id, $seg_prov{$_}, $_), 0) for (0, 2);
my ($rc, $out, $stderr) = $node->psql('postgres', $t_query);
ok($rc != 0 || $out eq $t_expected, 'three liars on a segment: the query fails or is exact, never wrong rows')
  or diag("got $out");

# --- move_shards off a lying provider: the forged chunk is not carried to
# the honest provider that receives the shard
($path, $prov) = shard('mover', 3);
HostileProvider::forge_chunk($path, 1);
$node->safe_psql('postgres', "SELECT count(*) FROM destor.move_shards('$prov', 'f7')");
my ($newpath, $newprov) = shard('mover', 3);
is($newprov, 'f7', 'the shard went to f7');
is(scrub('mover'), '', 'the moved shard holds no forged chunk: move_shards rebuilt it rather than copy it');
{
	my ($p0) = shard('mover', 0);
	my ($p1) = shard('mover', 1);
	($ok, $err) = without([ $p0, $p1 ], sub { read_back('mover') });
	ok($ok, 'after the move the blob reads from shards 2, 3, 4, 5 alone') or diag($err);
}

$node->stop;
done_testing();
