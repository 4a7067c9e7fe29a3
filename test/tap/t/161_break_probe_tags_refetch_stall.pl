# Break review of c0737ab ("tags that were cancelled after its chunks came
# in are asked alone").  A probe of a shard recorded missing (HINTED) has
# two requests, its chunks and its tags.  When the chunks came in but the
# tags were still running at the end of the probe's grace, the tags are
# cancelled and then asked again alone by reader_runs_complete
# (tags_late), with provider_execute: an ordinary request, not hedged, not
# no_retry — it waits for destor.request_timeout and is retried
# destor.max_retries times.  A provider that stalls on that request (here:
# on every small range, as a provider whose objects' tails sit on a failing
# disk would) holds the read for (max_retries + 1) * request_timeout, where
# before c0737ab the probe was cancelled with the set and the read went on.
#
# Fixed: the tags are not asked again; a probe whose tags did not come in
# gives no verdict this read, and the next read probes again.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use IO::Select;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my ($node) = DestorTest::start_cluster('probe_tags_stall', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);

# a relay that, while "$base/stall_small_<port>" exists, holds a GET of a small range (< 16 KiB:
# a shard's tags, never a window's chunks) for 60 s
sub stall_small_relay
{
	my ($client, $target) = @_;
	my $flag = "$base/stall_small_$target";
	my $server = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $target, Proto => 'tcp')
	  or return;
	my $select = IO::Select->new($client, $server);
	while (1)
	{
		for my $from ($select->can_read)
		{
			my $n = sysread($from, my $buf, 65536);
			return unless $n;
			my $to = $from == $client ? $server : $client;
			if ($from == $client && -e $flag && $buf =~ /^GET / &&
				$buf =~ /\r\nRange: bytes=(\d+)-(\d+)/i && $2 - $1 + 1 < 16384)
			{
				sleep 60;
			}
			for (my $off = 0; $off < $n;)
			{
				my $w = syswrite($to, $buf, $n - $off, $off);
				return unless defined $w;
				$off += $w;
			}
		}
	}
}
my @relay;
my @providers;
for my $i (0 .. $#s3)
{
	my $target = $s3[$i]{port};
	my $r = DestorTest::start_relay_proxy(sub { stall_small_relay($_[0], $target) });
	push @relay, $r;
	push @providers, { %{ $s3[$i] }, port => $r->{port} };
}
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @providers));

my $file = "$base/input.bin";
DestorTest::write_random_file($file, 12 * 1024 * 1024);
my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('archive', '$file')");
my $md5 = $node->safe_psql('postgres', "SELECT md5(pg_read_binary_file('$file'))");
is($node->safe_psql('postgres', "SELECT md5(destor.blob_get('$blob'))"), $md5, 'the blob reads');

# shard 0 recorded missing, though its provider has it (a stale record)
my $p0 = $node->safe_psql('postgres',
	"SELECT provider FROM destor.shards WHERE object_id = destor.blob_id('$blob') AND shard_index = 0");
note("shard 0 on $p0");
$node->safe_psql('postgres',
	"UPDATE destor.shards SET state = 'missing' WHERE object_id = destor.blob_id('$blob') AND shard_index = 0");

# that provider now stalls on small ranges (its shard's tags); the others
# are fine
my ($pi) = $p0 =~ /(\d+)$/;
my $flag = "$base/stall_small_$s3[$pi - 1]{port}";
open(my $fh, '>', $flag) or die; close $fh;
my $worst = 0;
for my $try (1 .. 3)
{
	$node->restart;
	my $t0 = time;
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET destor.request_timeout = '3s'; SELECT md5(destor.blob_get('$blob'))");
	my $secs = time - $t0;
	is($out, $md5, "read $try with shard 0 recorded missing is exact") or diag($err);
	note(sprintf('read %d: %.2f s', $try, $secs));
	$worst = $secs if $secs > $worst;
}
cmp_ok($worst, '<', 3,
	'no read waits for the stalled tags of a probe (request_timeout 3 s, retried)');

unlink $flag;
DestorTest::stop_delay_proxy($_) for @relay;
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
