# Break review of the re-read after bad bytes (e457854, abaf41b): the flag
# that plans it (r->bytes_lied) was still up while the re-read's
# reader_runs_complete polled the read-ahead, so windows read ahead then
# were planned as if they had lied too (every shard at once, thin and far
# ones included); and a liar once named (SUSPECT) was ranked like any other
# shard by plan_hedge, asked by every later window, which failed and was
# read again.  Now the flag holds for the re-read's own plan only, and a
# suspect shard is a spare of last resort.
#
# Six s3rver behind the WAN emulator, five at 50 MB/s and one at 2 MB/s
# (thin) holding a parity shard; a 4+2 pool, spreading off; a 56 MiB blob
# (four windows) exported, every byte compared.  Data shard 0 lies in the
# first window only, then in every window.
#
# Runs with DESTOR_TEST_LONG=1 (185 covers the re-read in make test).
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

DestorTest::skip_long();
use Time::HiRes qw(time);

my $rig = DestorTest::wan_rig('leak_ahead', 6, delay_ms => 2, mbps => 50, rates => [ 50, 50, 50, 50, 50, 2 ],
	pool => [ 'p42', 4, 2 ]);
my ($node, $wan, $base) = ($rig->{node}, $rig->{wan}, $rig->{base});
my @s3 = @{ $rig->{s3} };
my $thin = $s3[5]{name};

my $size = 56 * 1024 * 1024 + int(rand(1024 * 1024));
my $file = "$base/in.bin";
DestorTest::write_random_file($file, $size);
my $sum = DestorTest::sha256_file($file);
my ($blob, $id);
for (1 .. 30)
{
	$blob = $node->safe_psql('postgres', "SELECT destor.blob_import('p42', '$file')");
	last if $node->safe_psql('postgres',
		"SELECT kind FROM destor.blob_shards WHERE blob_id = destor.blob_id('$blob') AND provider = '$thin'") eq 'parity';
}
$id = $node->safe_psql('postgres', "SELECT destor.blob_id('$blob')");
(my $hex = $id) =~ s/-//g;
my %on = map { my ($i, $p) = split /\|/; ($i => ($p =~ /(\d+)$/)[0]) } split /\n/, $node->safe_psql('postgres',
	"SELECT shard_index, provider FROM destor.blob_shards WHERE blob_id = '$id'");
note('placement: ' . join(', ', map { "shard $_ on s$on{$_}" } sort keys %on));
my $chunk = $node->safe_psql('postgres', "SELECT chunk_size FROM destor.objects WHERE object_id = '$id'");

sub export
{
	my ($what) = @_;
	return DestorTest::export_exact($node, $blob, "$base/out.bin", $sum, $what,
		'SET destor.spread_reads = off; ');
}

sub sent_by_provider
{
	my ($t0) = @_;
	my %sent;
	$sent{ $_->{provider} } += $_->{bytes} // 0 for DestorTest::wan_requests_since($wan, $t0, 1);
	return %sent;
}

# one byte flipped in each of chunks $s0..$s1 of the shard object $file
sub flip_chunks
{
	my ($file, $s0, $s1) = @_;
	open(my $fh, '+<', $file) or die "$file: $!";
	binmode $fh;
	for my $s ($s0 .. $s1)
	{
		my $at = $s * $chunk + 1000 + int(rand(30000));
		seek($fh, $at, 0);
		read($fh, my $c, 1);
		seek($fh, $at, 0);
		print $fh chr(ord($c) ^ 0x5a);
	}
	close $fh;
}

# warm: the first export measures every link, the thin one included
export('cold');
export('warm');
my $t0 = DestorTest::wan_mark($wan);
my $dt = export('healthy');
my %sent = sent_by_provider($t0);
note(sprintf('healthy export %.2f s; sent: %s', $dt, join(', ', map { "$_ " . ($sent{$_} // 0) } map { $_->{name} } @s3)));

# data shard 0 lies in the first window (stripes 0..63) only
my @f = grep { /\Q$hex\E\.0\._S3rver_object$/ } DestorTest::files_under($s3[ $on{0} - 1 ]{dir});
is(scalar(@f), 1, "shard 0 is one object on s$on{0}");
flip_chunks($f[0], 0, 63);

my $log_at = -s $node->logfile;
$t0 = DestorTest::wan_mark($wan);
$dt = export('data shard 0 lying in window 1');
%sent = sent_by_provider($t0);
my $share = 64 * $chunk;
note(sprintf('export with a liar: %.2f s; sent: %s (a window\'s share: %d)', $dt,
	join(', ', map { "$_ " . ($sent{$_} // 0) } map { $_->{name} } @s3), $share));
my $liar = "s$on{0}";
like(slurp_file($node->logfile, $log_at), qr/shard 0 of object \S+ on provider "\Q$liar\E" is corrupt/,
	'the liar is named');
cmp_ok($sent{$thin} // 0, '<', 1.5 * $share,
	"the thin provider $thin serves the lying window's re-read only, not a window read ahead meanwhile");
# which windows every shard was asked for (the k fastest would do but for
# window 1's re-read): by the ranges of the GETs after the mark
my %askers;
for my $r (DestorTest::wan_requests_since($wan, $t0, 1))
{
	next unless $r->{line} =~ /\.(\d+)$/ || 1;
	next if $r->{to} - $r->{from} + 1 < $chunk;    # tags
	my $w = int($r->{from} / $share) + 1;
	$askers{$w}{ $r->{provider} } = 1;
}
note('shards asked per window: ' . join(', ', map { "w$_: " . join(' ', sort keys %{ $askers{$_} }) } sort { $a <=> $b } keys %askers));
my @every = grep { $_ > 1 && scalar(keys %{ $askers{$_} }) == 6 } keys %askers;
is(scalar(@every), 0, 'only the lying window is asked of every shard (not the windows read ahead during its re-read)')
  or diag('windows asked of all six: ' . join(' ', sort @every));

# 2. the liar lies in every window now.  Once named (SUSPECT, "not used
#    again by this reader", note_corrupt_chunk), is its shard still asked
#    by the later windows' hedged plans (plan_hedge ranks a SUSPECT shard
#    like any other)?  Then every window fails and is read again from
#    every shard.  A corrupt stripe logged in window 4 (stripes >= 192)
#    says its plan used the named liar again.
my $stripes = $node->safe_psql('postgres', "SELECT ceil(stream_size::numeric / (4 * $chunk))::int FROM destor.objects WHERE object_id = '$id'");
flip_chunks($f[0], 64, $stripes - 2);
$log_at = -s $node->logfile;
$t0 = DestorTest::wan_mark($wan);
$dt = export('data shard 0 lying in every window');
%sent = sent_by_provider($t0);
my $total = 0;
$total += $_ for values %sent;
my %bad_windows;
my $log2 = slurp_file($node->logfile, $log_at);
$bad_windows{ int($1 / 64) + 1 }++ while $log2 =~ /shard 0 of object \S+ on provider "\Q$liar\E" is corrupt at stripe (\d+)/g;
note(sprintf('liar everywhere: %.2f s, %.2f times the blob moved; sent: %s; windows re-read (corrupt stripes logged): %s', $dt,
	$total / $size, join(', ', map { "$_ " . ($sent{$_} // 0) } map { $_->{name} } @s3),
	join(', ', map { "w$_ ($bad_windows{$_})" } sort { $a <=> $b } keys %bad_windows)));
ok(!$bad_windows{4}, 'the named liar is not asked again by window 4 (planned after it was named)');

DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
