# The commit markers of the metadata log (m + 1 of them, put after commit
# while the session waits) go to the providers that stored the log
# object's shards soonest.  They went to the first m + 1 in placement
# order, so a far provider held about every other commit for its round
# trip.  Six s3rver behind the WAN proxy, one of them 150 ms away each way
# and the others 5 ms; after a few commits the far one holds no marker,
# every log object has its m + 1, and a fresh cluster recovers the catalog
# from them.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Copy qw(copy);

my ($node) = DestorTest::start_cluster('markers_fast');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $wan = DestorTest::start_wan_proxy($base, \@s3, delays => [ 5, 5, 5, 5, 5, 150 ], mbps => 50);
my @providers = map { { %{ $s3[$_] }, port => $wan->{ports}[$_] } } 0 .. $#s3;
$node->safe_psql('postgres', DestorTest::providers_sql('wan', 4, 2, @providers));

my $commits = 8;
my @blobs;
# a commit each: a log object each, placed by its own id
push @blobs, $node->safe_psql('postgres', "SELECT destor.blob_put('wan', 'commit $_')") for 1 .. $commits;
my $logs = $node->safe_psql('postgres', 'SELECT count(*) FROM destor.meta_log');
cmp_ok($logs, '>=', $commits, "$logs log objects written");

# s3rver keeps an object as files named after its key
sub markers_on
{
	my ($s) = @_;
	return scalar(grep { m{/meta/[0-9a-f-]{36}/[0-9a-f]{16}-[0-9a-f]{32}\.commit\._S3rver_object$} } DestorTest::files_under($s->{dir}));
}
my %held = map { ($_->{name} => markers_on($_)) } @s3;
note(join(', ', map { "$_ $held{$_}" } sort keys %held));
is($held{s6}, 0, 'the far provider holds no commit marker');
my $total = 0;
$total += $held{$_} for keys %held;
is($total, 3 * $logs, 'm + 1 = 3 markers for each log object');

# and they are the proof a recovery trusts: with the writer gone, a fresh
# cluster with its master key recovers the catalog and reads every blob
my $key = $node->safe_psql('postgres', 'SHOW destor.master_key_file');
$node->stop;
my ($fresh, $fresh_key) = DestorTest::start_cluster('markers_fresh');
copy($key, $fresh_key) or die "cannot copy the key: $!";
$fresh->safe_psql('postgres', DestorTest::providers_sql('wan', 4, 2, @providers));
$fresh->safe_psql('postgres', "SELECT count(*) FROM destor.recover_catalog('wan')");
my $list = join(',', map { "'$_'" } @blobs);
is($fresh->safe_psql('postgres',
		"SELECT string_agg(convert_from(destor.blob_get(b), 'UTF8'), ',' ORDER BY n)
		   FROM unnest(ARRAY[$list]::destor.blob[]) WITH ORDINALITY AS t(b, n)"),
	join(',', map { "commit $_" } 1 .. $commits), 'a fresh cluster recovers every committed blob');

DestorTest::stop_wan_proxy($wan);
$fresh->stop;
done_testing();
