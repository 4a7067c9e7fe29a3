# A randomized property test of the blob read path: every byte a read
# hands out equals the byte written.
#
# Each iteration writes a blob of random size (0 B .. 40 MB, most of them
# small or near block and stripe boundaries) and random content (random
# bytes, runs of zeros, text, low-entropy bytes, mixed per 64 KiB block so
# that compressed and raw blocks alternate) into a pool of random k+m
# (1 <= k <= 6, 0 <= m <= 3), loses 0..m of the providers holding its
# shards, puts the shared cache in a random state (reset, warmed by random
# partial reads, or left as the last iteration left it; the cache size
# changes between phases: none, tiny, large) and then compares random
# ranges, the whole blob and an export with the source.
#
# DESTOR_PROPERTY_SEED repeats a run; DESTOR_PROPERTY_ITERATIONS and
# DESTOR_PROPERTY_SECONDS bound it (make test: a couple of minutes; make
# bench runs it longer).
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $seed = $ENV{DESTOR_PROPERTY_SEED} // (time() * 1000 % 1_000_000_007);
my $iterations = $ENV{DESTOR_PROPERTY_ITERATIONS} // 28;
my $seconds = $ENV{DESTOR_PROPERTY_SECONDS} // 70;
srand($seed);
note("seed $seed (rerun with DESTOR_PROPERTY_SEED=$seed)");

my @phases = ('0', '1MB', '48MB');	# cache sizes, one phase each
my ($node, $keyfile) = DestorTest::start_cluster('property', cache_size => $phases[0]);
my $base = $node->basedir;
my $nprov = 8;
my @dirs = map { "$base/p$_" } 1 .. $nprov;
mkdir $_ for @dirs;
$node->safe_psql('postgres', join("\n",
	map { "CREATE SERVER f$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs[$_ - 1]');" } 1 .. $nprov));
$node->safe_psql('postgres', 'CREATE TABLE blobs (i int, b destor.blob)');

my %pools;
sub pool_for
{
	my ($k, $m) = @_;
	my $name = "p${k}_$m";
	return $name if $pools{$name};
	my $list = join(',', map { "f$_" } 1 .. $nprov);
	$node->safe_psql('postgres', "CREATE SERVER $name FOREIGN DATA WRAPPER destor "
		  . "OPTIONS (providers '$list', data_shards '$k', parity_shards '$m')");
	$pools{$name} = 1;
	return $name;
}

my $B = 65536;
sub random_size
{
	my $r = rand();
	return 0 if $r < 0.04;
	return 1 + int(rand(100)) if $r < 0.15;
	return 1 + int(rand($B * 2)) if $r < 0.35;
	# near a block or stripe boundary
	return (1 + int(rand(24))) * $B + int(rand(33)) - 16 if $r < 0.60;
	return int(rand(6 * 1024 * 1024)) if $r < 0.93;
	return int(rand(40 * 1024 * 1024));
}

open(my $urandom, '<:raw', '/dev/urandom') or die "cannot open /dev/urandom: $!";
sub random_bytes
{
	my ($n) = @_;
	my $buf = '';
	read($urandom, $buf, $n) == $n or die "short read of /dev/urandom" if $n > 0;
	return $buf;
}

# Content whose kind changes every few blocks (at an unaligned offset), so
# raw and compressed blocks alternate within one object.
sub random_content
{
	my ($size) = @_;
	my $kind = int(rand(4));	# 0 random, 1 compressible, 2 mixed, 3 low-entropy
	my $out = '';
	while (length($out) < $size)
	{
		my $piece = $kind == 2 ? 1 + int(rand(3 * $B)) : $size;
		$piece = $size - length($out) if $piece > $size - length($out);
		my $k = $kind == 2 ? int(rand(4)) : $kind;
		if ($k == 0) { $out .= random_bytes($piece); }
		elsif ($k == 1)
		{
			my $text = join(' ', map { "row $_ value " . ($_ * 7 % 13) } 1 .. 200);
			$out .= substr($text x (1 + int($piece / length($text))), 0, $piece);
		}
		elsif ($k == 3)
		{
			my $unit = join('', map { chr(65 + int(rand(4))) } 1 .. 4096);
			$out .= substr($unit x (1 + int($piece / 4096)), 0, $piece);
		}
		else { $out .= "\0" x $piece; }
		$out = substr($out, 0, $size) if length($out) > $size;
	}
	return $out;
}

# md5 of blob_read(b, off, len) for every (off, len), in one query
sub read_md5s
{
	my ($i, @ranges) = @_;
	my @sql = map { "md5(destor.blob_read(b, $_->[0], $_->[1]))" } @ranges;
	my ($out, $err) = ('', '');
	my $rc = $node->psql('postgres', 'SELECT ' . join(', ', @sql) . " FROM blobs WHERE i = $i",
		stdout => \$out, stderr => \$err, extra_params => ['-F', ' ', '-A']);
	return ($rc, [split(/ /, $out)], $err);
}

my $start = time();
my $done = 0;
my $reads = 0;
my $bytes = 0;
my $failures = 0;
my $phase = 0;
for my $it (1 .. $iterations)
{
	last if time() - $start > $seconds;
	if ($phase < $#phases && $it > ($phase + 1) * $iterations / @phases)
	{
		$phase++;
		$node->append_conf('postgresql.conf', "destor.cache_size = '$phases[$phase]'");
		$node->restart;
	}
	my $k = 1 + int(rand(6));
	my $m = int(rand(4));
	$m = $nprov - $k if $k + $m > $nprov;
	my $pool = pool_for($k, $m);
	my $size = random_size();
	my $data = random_content($size);
	my $what = sprintf('iteration %d (seed %d): %d bytes, %d+%d, cache %s', $it, $seed, $size, $k, $m,
		$phases[$phase]);

	# write: blob_put for small blobs, blob_import for the others
	if ($size < 256 * 1024 && rand() < 0.5)
	{
		$node->safe_psql('postgres',
			"INSERT INTO blobs VALUES ($it, destor.blob_put('$pool', '\\x" . unpack('H*', $data) . "'::bytea))");
	}
	else
	{
		my $file = "$base/in.bin";
		open(my $fh, '>:raw', $file) or die;
		print $fh $data;
		close $fh;
		$node->safe_psql('postgres', "INSERT INTO blobs VALUES ($it, destor.blob_import('$pool', '$file'))");
	}

	# cache state before the reads
	my $cache = rand();
	$node->safe_psql('postgres', 'SELECT destor.cache_reset()') if $cache < 0.4;
	my @warm;
	if ($size > 0 && $cache >= 0.2 && $cache < 0.8)
	{
		for (1 .. 1 + int(rand(4)))
		{
			my $off = int(rand($size));
			push @warm, [$off, 1 + int(rand(rand() < 0.5 ? $B : ($size - $off)))];
			$warm[-1][1] = $size - $off if $off + $warm[-1][1] > $size;
		}
	}

	# lose 0..m providers (of all eight: at most m of those holding shards)
	my @lost;
	my $nlose = int(rand($m + 1));
	my @prov = map { $_ } 1 .. $nprov;
	while (@lost < $nlose)
	{
		my $p = splice(@prov, int(rand(@prov)), 1);
		push @lost, $p;
	}
	# warm partly before and partly after the loss
	my ($rc, $md5s, $err);
	my @warm1 = @warm[0 .. int(@warm / 2) - 1];
	my @warm2 = @warm[int(@warm / 2) .. $#warm];
	($rc, $md5s, $err) = read_md5s($it, @warm1) if @warm1;
	rename($dirs[$_ - 1], "$dirs[$_ - 1].lost") or die "rename: $!" for @lost;
	($rc, $md5s, $err) = read_md5s($it, @warm2) if @warm2;

	# the reads checked: random ranges, the whole blob, an export
	my @ranges;
	for (1 .. 3 + int(rand(5)))
	{
		my $off = $size ? int(rand($size + 1)) : 0;
		my $maxlen = $size - $off;
		my $len = rand() < 0.3 ? int(rand(($maxlen < 300 ? $maxlen : 300) + 1))
		  : int(rand($maxlen + 1));
		push @ranges, [$off, $len];
	}
	push @ranges, [0, $size];
	($rc, $md5s, $err) = read_md5s($it, @ranges);
	my @bad;
	if ($rc != 0)
	{
		push @bad, "reads failed: $err";
	}
	else
	{
		for my $j (0 .. $#ranges)
		{
			my ($off, $len) = @{ $ranges[$j] };
			push @bad, "blob_read(b, $off, $len) differs from the source"
			  if ($md5s->[$j] // '') ne md5_hex(substr($data, $off, $len));
			$reads++;
			$bytes += $len;
		}
	}
	my $out = "$base/out.bin";
	unlink $out;
	my $erc = $node->psql('postgres', "SELECT destor.blob_export(b, '$out') FROM blobs WHERE i = $it",
		stderr => \$err);
	if ($erc != 0) { push @bad, "blob_export failed: $err"; }
	else
	{
		open(my $fh, '<:raw', $out) or die;
		local $/;
		my $got = <$fh> // '';
		close $fh;
		push @bad, 'blob_export differs from the source' if md5_hex($got) ne md5_hex($data);
	}
	rename("$dirs[$_ - 1].lost", $dirs[$_ - 1]) or die "rename back: $!" for @lost;
	$done++;

	if (@bad)
	{
		$failures++;
		fail("$what, lost providers " . join(',', map { "f$_" } @lost) . ', warmed '
			  . join(' ', map { "[$_->[0],+$_->[1]]" } @warm));
		diag($_) for @bad;
		last if $failures >= 3;
	}
	# keep the providers from filling up: drop blobs now and then
	$node->safe_psql('postgres', 'SELECT destor.blob_delete(b) FROM blobs; DELETE FROM blobs')
	  if $it % 10 == 0;
}
ok($done > 0, "$done iterations, $reads ranges read ($bytes bytes) exactly as written, seed $seed")
  if $failures == 0;
cmp_ok($done, '>=', 10, 'at least 10 iterations ran within the time budget');

done_testing();
