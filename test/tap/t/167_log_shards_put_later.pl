# Log shards a commit went on without are put later (break review of
# 6a4b2ef).  A log object's shards are a hedged write: once write_quorum
# of them are stored, one still stalled is given up, so that a far
# provider does not hold every commit.  Nothing wrote such a shard again:
# every log object was one provider short of what the pool promises, and
# losing m = 2 providers lost the whole catalog.  The shards are now kept
# with the transaction (destor.meta_log_unstored) and destor.repair_log()
# puts them, as the maintenance worker does each round.  Six s3rver behind
# the WAN proxy, s6 0.8 s away each way; then six file providers, one of
# which refuses the log shard (read-only), for the worker.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Copy qw(copy);
use Time::HiRes qw(usleep);

my ($node, $key) = DestorTest::start_cluster('log_later');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $wan = DestorTest::start_wan_proxy($base, \@s3, delays => [ 1, 1, 1, 1, 1, 800 ], mbps => 100);
my @providers = map { { %{ $s3[$_] }, port => $wan->{ports}[$_] } } 0 .. $#s3;
$node->safe_psql('postgres', DestorTest::providers_sql('wan', 4, 2, @providers));

my @blobs;
push @blobs, $node->safe_psql('postgres', "SELECT destor.blob_put('wan', 'commit $_')") for 1 .. 3;
my $logs = $node->safe_psql('postgres', 'SELECT count(*) FROM destor.meta_log');
my ($rows, $seqs, $where) = split /\|/, $node->safe_psql('postgres',
	"SELECT count(*), count(DISTINCT seq), string_agg(DISTINCT provider::text, ',') FROM destor.meta_log_unstored");
cmp_ok($seqs, '>=', 3, "the far provider's log shards were given up ($seqs of $logs log objects)");
is($where, 's6', 'and kept for later: they are all s6\'s');

# only a superuser sees or puts them
$node->safe_psql('postgres', 'CREATE ROLE mallory LOGIN');
my ($rc, $out, $err) = $node->psql('postgres', 'SET ROLE mallory; SELECT count(*) FROM destor.meta_log_unstored');
like($err, qr/permission denied/, 'another role cannot read the kept shards');
($rc, $out, $err) = $node->psql('postgres', 'SET ROLE mallory; SELECT destor.repair_log()');
like($err, qr/permission denied/, 'nor run repair_log');

# the shards' own objects on s6: none, or what a given-up PUT left behind
sub log_shards_on
{
	my ($s) = @_;
	my %size;
	for my $f (DestorTest::files_under($s->{dir}))
	{
		next unless $f =~ m{/meta/[0-9a-f-]{36}/([0-9a-f]{16})-[0-9a-f]{32}\.\d+\._S3rver_object$};
		$size{ hex($1) } = -s $f;
	}
	return \%size;
}
# the blobs' own shards given up on s6 are rebuilt by repair, as before
# (its commit goes on without its s6 log shard too)
$node->safe_psql('postgres', "SELECT count(*) FROM destor.repair('wan')");
$rows = $node->safe_psql('postgres', 'SELECT count(*) FROM destor.meta_log_unstored');
is($node->safe_psql('postgres', 'SELECT destor.repair_log()'), $rows, "repair_log puts the $rows kept shards");
is($node->safe_psql('postgres', 'SELECT count(*) FROM destor.meta_log_unstored'), 0, 'and forgets them');
is($node->safe_psql('postgres', 'SELECT destor.repair_log()'), 0, 'a second call has nothing to put');
my $s6 = log_shards_on($s3[5]);
my @short = grep { !($s6->{$_} // 0) } split /\n/, $node->safe_psql('postgres', 'SELECT seq FROM destor.meta_log');
is("@short", '', 's6 holds a shard of every log object');

# lose two other providers (m = 2): a fresh cluster recovers every blob
$node->stop;
DestorTest::stop_wan_proxy($wan);
DestorTest::stop_s3($_) for @s3[ 0, 1 ];
my ($fresh, $fresh_key) = DestorTest::start_cluster('log_later_fresh');
copy($key, $fresh_key) or die "cannot copy the key: $!";
$fresh->safe_psql('postgres', DestorTest::providers_sql('wan', 4, 2, @s3));
($rc, $out, $err) = $fresh->psql('postgres', "SELECT kind, count(*) FROM destor.recover_catalog('wan') GROUP BY 1 ORDER BY 1");
is($rc, 0, 'recovery with s1 and s2 gone') or diag($err);
note($out);
my $list = join(',', map { "'$_'" } @blobs);
is($fresh->safe_psql('postgres',
		"SELECT string_agg(convert_from(destor.blob_get(b), 'UTF8'), ',' ORDER BY n)
		   FROM unnest(ARRAY[$list]::destor.blob[]) WITH ORDINALITY AS t(b, n)"),
	join(',', map { "commit $_" } 1 .. 3), 'every committed blob recovered');

# --- the maintenance worker puts them every round; a failed write counts
# too.  On the fresh cluster, six file providers: f6's folder read-only
# while a blob is put.
my ($fsql, @dirs) = DestorTest::file_pool_sql($fresh->basedir, 'fp', 6, 4, 2);
$fresh->safe_psql('postgres', $fsql);
chmod(0555, $dirs[5]) or die;
my $fblob = $fresh->safe_psql('postgres', "SELECT destor.blob_put('fp', 'on files')");
chmod(0755, $dirs[5]) or die;
is($fresh->safe_psql('postgres', "SELECT string_agg(provider::text, ',') FROM destor.meta_log_unstored WHERE pool = 'fp'"),
	'f6', 'a log shard whose write failed is kept too');
# (with REPEATABLE READ as the server's default: every round failed in
# repair_log, which refuses a transaction snapshot, until the worker took
# READ COMMITTED for itself)
$fresh->safe_psql('postgres', "ALTER SYSTEM SET default_transaction_isolation = 'repeatable read'; "
	  . "ALTER SYSTEM SET destor.maintenance_naptime = '1s'; SELECT pg_reload_conf()");
my $kept;
for (1 .. 120)
{
	$kept = $fresh->safe_psql('postgres', 'SELECT count(*) FROM destor.meta_log_unstored');
	last if $kept == 0;
	usleep(500_000);
}
is($kept, 0, 'the maintenance worker put it');
$fresh->safe_psql('postgres', "ALTER SYSTEM SET destor.maintenance_naptime = 0; SELECT pg_reload_conf()");
my %f6 = map { m{/([0-9a-f]{16})-[0-9a-f]{32}\.\d+$} ? (hex($1) => -s $_) : () }
  grep { m{/meta/[0-9a-f-]{36}/} } DestorTest::files_under($dirs[5]);
@short = grep { !($f6{$_} // 0) } split /\n/, $fresh->safe_psql('postgres', "SELECT seq FROM destor.meta_log WHERE pool = 'fp'");
is("@short", '', 'f6 holds a shard of every log object of its pool');

$fresh->stop;
done_testing();
