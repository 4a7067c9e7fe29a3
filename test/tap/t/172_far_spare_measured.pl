# A provider that is never measured is asked at once by a hedged read
# (plan_hedge: a ranking without its read time is a guess), so that its
# answer measures it.  A far one never answers first: it was stopped with
# the rest once k others had answered, stayed "never measured", and every
# read asked it again only to stop it — a request (and a provider's
# request fee) per read and shard for nothing.  Now a read of it that was
# still silent when every other answer of its batch had begun is a lower
# bound of its read time: the provider counts as measured (far), a spare
# asked only when one of the others fails or is late.
#
# Six real s3rver processes behind the WAN emulator, five 20 ms away and
# one 250 ms away; a 4+2 pool; exports of a 12 MiB blob with a data shard
# on the far provider, every byte compared.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $rig = DestorTest::wan_rig('farspare', 6, delays => [ 20, 20, 20, 20, 20, 250 ], mbps => 50,
	pool => [ 'p42', 4, 2 ]);
my ($node, $wan, $base) = ($rig->{node}, $rig->{wan}, $rig->{base});
my $far = $rig->{s3}[5]{name};

# a 12 MiB blob with a data shard on the far provider: a healthy read
# would wait for it, so reads go around it once it is known far
my $file = "$base/in.bin";
DestorTest::write_random_file($file, 12 * 1024 * 1024);
my $sum = DestorTest::sha256_file($file);
my $blob = DestorTest::import_blob_with_data_on($node, 'p42', $file, $far);
ok(defined $blob, "a blob with a data shard on the far provider ($far)");

# The GETs each provider was asked for after mark $t0.
sub asked
{
	my ($t0) = @_;
	my %n;
	$n{ $_->{provider} }++ for grep { $_->{line} =~ /^GET/ } DestorTest::wan_requests_since($wan, $t0, 1);
	return \%n;
}

sub export_ok
{
	my ($name) = @_;
	unlink "$base/out.bin";
	$node->safe_psql('postgres', "SELECT destor.blob_export('$blob', '$base/out.bin')");
	is(DestorTest::sha256_file("$base/out.bin"), $sum, "$name: every byte as imported");
}

# the first read: nothing is known, every shard is asked and the far one loses
$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
my $t0 = DestorTest::wan_mark($wan);
export_ok('first export');
my $first = asked($t0);
note(join(', ', map { "$_: $first->{$_}" } sort keys %$first));

# later reads: it is known far now, a spare (before, every export asked it
# again; a spare may still go out for a near provider that runs late)
my $t1 = DestorTest::wan_mark($wan);
export_ok("export $_ after") for 1 .. 4;
my $later = asked($t1);
note(join(', ', map { "$_: $later->{$_}" } sort keys %$later));
cmp_ok($later->{$far} // 0, '<', 3, 'later exports: the far provider, silent longer than every answer, is a spare');
my $near = grep { ($later->{ $rig->{s3}[$_]{name} } // 0) > 0 } 0 .. 4;
cmp_ok($near, '>=', 4, 'later exports: read from the near providers');

# it is still there when it is needed: two near providers gone, the far one serves
DestorTest::stop_s3($rig->{s3}[$_]) for 0, 1;
my $t2 = DestorTest::wan_mark($wan);
export_ok('two near providers gone');
my $gone = asked($t2);
note(join(', ', map { "$_: $gone->{$_}" } sort keys %$gone));
cmp_ok($gone->{$far} // 0, '>=', 1, 'two near providers gone: the far spare was asked');

done_testing();
