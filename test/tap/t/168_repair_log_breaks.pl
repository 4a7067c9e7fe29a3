# Regression tests from the break review of 45946bd (repair_log):
# 1. repair_log looked the providers up as the catalog's user, so it signed
#    with the bootstrap superuser's (or PUBLIC's) user mapping, not the
#    caller's as the commit and repair() do: with per-role mappings the
#    kept shards were never put, silently.
# 2. repair_log put a shard with no lock against compact_log: a PUT that
#    landed after compaction had listed and deleted its log object stayed
#    on the provider for good (and was counted as put).
# Six s3rver, s6 behind a delay proxy whose delay changes at run time;
# PUBLIC's user mappings carry a wrong key, role admin's the right one.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

my ($node) = DestorTest::start_cluster('repair_log_breaks');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $dfile = "$base/s6_delay";
sub delay { open(my $fh, '>', $dfile) or die; print $fh "$_[0]\n"; close $fh; }
delay(0);
my $px = DestorTest::start_delay_proxy($s3[5]{port}, $dfile);
my @providers = map { { %{ $s3[$_] } } } 0 .. 5;
$providers[5]{port} = $px->{port};
$node->safe_psql('postgres', DestorTest::providers_sql('wan', 4, 2, @providers));
$node->safe_psql('postgres', 'CREATE ROLE admin SUPERUSER');
for my $s (@s3)
{
	$node->safe_psql('postgres', "ALTER USER MAPPING FOR PUBLIC SERVER $s->{name} OPTIONS (SET access_key_id 'NOBODY', SET secret_access_key 'wrong');"
		  . "CREATE USER MAPPING FOR admin SERVER $s->{name} OPTIONS "
		  . "(access_key_id '$DestorTest::ACCESS_KEY', secret_access_key '$DestorTest::SECRET_KEY')");
}
sub admin { return $node->safe_psql('postgres', "SET ROLE admin; $_[0]"); }
sub kept { return $node->safe_psql('postgres', 'SELECT count(*) FROM destor.meta_log_unstored'); }

# commits whose s6 log shard is given up: s6 holds every request 3 s
sub commits_around_s6
{
	delay(3000);
	admin("SELECT destor.blob_put('wan', 'commit $_')") for 1 .. 2;
	delay(0);
	sleep 4;	# what the proxy still held has reached s6 by now
}

# --- 1. the caller's user mapping ------------------------------------------
commits_around_s6();
my $rows = kept();
cmp_ok($rows, '>', 0, "s6's log shards kept ($rows)");
is(admin('SELECT destor.repair_log()'), $rows, "repair_log as admin puts them with admin's user mapping");
is(kept(), 0, 'and none is left');

# --- 2. not beside compact_log --------------------------------------------
commits_around_s6();
cmp_ok(kept(), '>', 0, 'kept again');
admin("SELECT destor.log_snapshot('wan')");
sub s6_log_seqs
{
	my %seen;
	for my $f (DestorTest::files_under($s3[5]{dir}))
	{
		$seen{ hex($1) } = 1 if $f =~ m{/meta/[0-9a-f-]{36}/([0-9a-f]{16})-[0-9a-f]{32}\.\d+\._S3rver_object$};
	}
	return \%seen;
}
# repair_log's PUTs to s6 held 4 s; compact_log meanwhile, in another session
delay(4000);
my ($aout, $aerr) = ('', '');
my $h = IPC::Run::start([ 'psql', '-X', '-q', '-At', '-d', $node->connstr('postgres'), '-c',
		'SET ROLE admin; SELECT destor.repair_log()' ], '>', \$aout, '2>', \$aerr);
usleep(1_000_000);
delay(0);
my ($rc, $out, $err) = $node->psql('postgres', "SET ROLE admin; SELECT destor.compact_log('wan')");
is($rc, 0, 'compact_log succeeds') or diag($err);
$h->finish;
like($aout, qr/^\d+$/, "repair_log succeeds ($aout)") or diag($aerr);
is(kept(), 0, 'no kept shard is left');
my $live = { map { $_ => 1 } split /\n/, $node->safe_psql('postgres', 'SELECT seq FROM destor.meta_log') };
my @orphans = grep { !$live->{$_} } sort { $a <=> $b } keys %{ s6_log_seqs() };
is("@orphans", '', 'no shard of a compacted log object is left on s6');

DestorTest::stop_delay_proxy($px);
$node->stop;
done_testing();
