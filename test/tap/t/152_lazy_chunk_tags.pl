# A hedged read (a backend's first reads, every shard asked at once, the
# first k answers used) no longer fetches each shard's chunk tags: that
# was a second request per shard and batch, half of all requests, for a
# check only a provider's fault needs.  The blocks' authentication catches
# a bad byte, rebuilt or not, and the window is then read again with every
# chunk checked against its tag, which names the liar.  Here:
#   - a cold scan and a cold blob export over six s3rver behind the WAN
#     proxy ask no tag range (the trace: no GET reaches into a shard's
#     trailer), and read parity shards (they were hedged);
#   - with two providers inverting a byte of every GET answer (FaultProxy
#     'flip'), the same reads return every byte exactly, no honest
#     provider is blamed, and the liars did serve forged bytes;
#   - with one provider lying and two down, the read fails with an error
#     (three good shards of the four needed), never with wrong bytes.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('lazy_tags', cache_size => '0');
my $base = $node->basedir;
my $rig = DestorTest::start_liar_rig($node, 'wan');
my ($wan, $blob, $file_sha, $diff_sql) = @$rig{qw(wan blob file_sha diff_sql)};
my @s3 = @{ $rig->{s3} };
my @faults = @{ $rig->{faults} };

# the size of an object as its s3rver stores it
sub object_size
{
	my ($provider, $key) = @_;
	my ($i) = $provider =~ /(\d+)$/;
	return -s "$s3[$i - 1]{dir}/destor/$key._S3rver_object";
}

# GETs since $t0 that start in a shard's trailer (its tags and footer, the
# object's last 1.2 KB here; a read of chunks starts at a window's or a
# run's first stripe, megabytes before) — and the parity shards (4 and 5)
# read
sub trailer_and_parity_reads
{
	my ($t0) = @_;
	my ($trailer, $parity) = (0, 0);
	for my $r (DestorTest::wan_requests_since($wan, $t0, 1))
	{
		my ($key) = $r->{line} =~ m{^GET_/destor/(\S+)$} or next;
		my $size = object_size($r->{provider}, $key);
		next unless $size;
		$trailer++ if $r->{from} >= $size - 16384;
		$parity++ if $key =~ /\.[45]$/;
	}
	return ($trailer, $parity);
}

# a backend whose providers were never measured by reads: every shard is
# asked at once and the first four answers win
sub cold_reads
{
	my ($what) = @_;
	$node->restart;
	my $t0 = DestorTest::wan_mark($wan);
	is($node->safe_psql('postgres', $diff_sql), '0', "$what: the cold scan returns every row exactly");
	unlink "$base/out.bin";
	$node->restart;
	$node->safe_psql('postgres', "SELECT destor.blob_export('$blob', '$base/out.bin')");
	is(DestorTest::sha256_file("$base/out.bin"), $file_sha, "$what: the cold export writes every byte");
	return $t0;
}

my $t0 = cold_reads('honest providers');
my ($trailer, $parity) = trailer_and_parity_reads($t0);
is($trailer, 0, 'hedged reads ask for no chunk tags');
cmp_ok($parity, '>', 0, 'the reads were hedged: parity shards were asked');

# two liars: four honest shards remain, exactly k
FaultProxy::set_faults($faults[$_]{control}, "flip 100000 GET\n") for 0, 1;
cold_reads('two providers inverting a byte of every answer');
cmp_ok(FaultProxy::injected($faults[0]{control}, 'flip') + FaultProxy::injected($faults[1]{control}, 'flip'),
	'>', 0, 'the liars served forged bytes');
is($node->safe_psql('postgres',
		"SELECT coalesce(string_agg(provider, ' '), 'none') FROM destor.provider_status WHERE bad_chunks > 0 AND provider NOT IN ('s1', 's2')"),
	'none', 'no honest provider is blamed for a bad chunk');

# one liar and two providers down: three good shards, four needed
FaultProxy::set_faults($faults[$_]{control}, '') for 1;
DestorTest::stop_s3($s3[4]);
DestorTest::stop_s3($s3[5]);
$node->restart;
my ($rc, $out, $err) = $node->psql('postgres', "SET destor.provider_down_interval = 0; $diff_sql");
isnt($rc, 0, 'a liar and two providers down: the scan fails');
like($err, qr/could not read object/, 'with an error that says the object cannot be read');
unlike($out, qr/^\d+$/m, 'and returns no rows');

DestorTest::stop_wan_proxy($wan);
FaultProxy::stop($_) for @faults;
$node->stop;
done_testing();
