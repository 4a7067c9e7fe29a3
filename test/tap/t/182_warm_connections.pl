# Connections made before they are needed (destor.warm_connections,
# conn_keeper.c).  Every backend and every parallel worker opens its own
# connections to the providers, a round trip each over a WAN before its
# first request can go out.  With the setting on, a background worker keeps
# connected sockets ready for the provider addresses backends used lately
# and hands them over: a new session's first requests go out on
# connections the proxy accepted before the session began.
#
# Six real s3rver processes behind the WAN emulator (20 ms each way); a
# 4+2 pool; every byte read compared with the file (test/tap/WarmRig.pm).
# Also: a parallel scan's workers, the keeper stopped (reads connect
# themselves meanwhile, and it comes back), a provider's server restarted
# under the kept sockets (they are dropped, not handed over dead), and the
# setting at 0 (no keeper: new connections, the control).  The sockets'
# lifetime against idle servers: t/184_warm_connections_idle.pl.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use WarmRig;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# the setting left at its default: on
my $w = WarmRig::start('warm');
my ($node, $wan, $base, $blob) = @$w{qw(node wan base blob)};
my @names = @{ $w->{names} };
is($node->safe_psql('postgres', 'SHOW destor.warm_connections'), '4', 'on by default: four sockets per address');
sub session_reads { return WarmRig::session_reads($w, @_); }

# the first session tells the keeper which addresses are wanted
my ($warm, $cold) = session_reads('first session');
usleep(1_000_000);

# the next ones find connections ready
for my $i (1 .. 2)
{
	($warm, $cold) = session_reads("session $i after");
	cmp_ok($warm, '>=', 4, "session $i after: its first requests went out on connections made before it");
	is($cold, 0, "session $i after: no provider asked on a connection of its own first");
	usleep(300_000);
}

# a parallel scan's workers get them too (each is a new process)
$node->safe_psql('postgres', "
	CREATE FOREIGN TABLE ft (id bigint, v text) SERVER p42;
	INSERT INTO ft SELECT i, md5(i::text) FROM generate_series(1, 200000) i;");
usleep(1_000_000);
my $before = DestorTest::wan_stats($wan, $base);
my $t0 = DestorTest::wan_mark($wan);
is($node->safe_psql('postgres', "
	SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
	SELECT count(*), sum(id), md5(string_agg(v, ',' ORDER BY id)) FROM ft"),
	$node->safe_psql('postgres', "SELECT count(*), sum(i), md5(string_agg(md5(i::text), ',' ORDER BY i)) FROM generate_series(1, 200000) i"),
	'a scan of the table: every row');
my $conns_after = DestorTest::wan_stats($wan, $base);
my $new_conns = 0;
$new_conns += $conns_after->{$_}{connections} - $before->{$_}{connections} for @names;
my @gets = grep { $_->{line} =~ /^GET/ } DestorTest::wan_requests_since($wan, $t0, 1);
note("scan: " . scalar(@gets) . " GETs, $new_conns connections accepted meanwhile (the keeper's refills included)");
cmp_ok(scalar(@gets), '>', 0, 'the scan read from the providers');

# the keeper stopped: reads connect themselves, and it comes back
sub keeper_pid
{
	my $pid = `pgrep -P $node->{_pid} -f 'destor connection keeper'`;
	$pid =~ s/\s+//g;
	return $pid;
}
my $keeper = keeper_pid();
ok($keeper =~ /^\d+$/, "the keeper runs (pid $keeper)");
# its socket is a file in the data directory, which only the server's user
# may enter (an abstract name, any local user could have taken first)
my $pgdata = $node->data_dir;
ok(-S "$pgdata/pg_stat_tmp/destor_keeper.sock", "the keeper's socket is in the data directory");
is(sprintf('%o', (stat $pgdata)[2] & 0777), '700', 'which only the server user may enter');
kill 'TERM', $keeper;
usleep(100_000);
($warm, $cold) = session_reads('keeper stopped');
my $again;
for (1 .. 50)
{
	$again = keeper_pid();
	last if $again =~ /^\d+$/ && $again ne $keeper;
	usleep(100_000);
}
ok($again =~ /^\d+$/ && $again ne $keeper, "the keeper came back (pid $again)");
session_reads('keeper back, learning');
usleep(1_000_000);
($warm, $cold) = session_reads('keeper back');
cmp_ok($warm, '>=', 4, 'keeper back: connections ready again');

# a provider's server restarted under the kept sockets: they die with it
# and are not handed over
DestorTest::stop_s3($w->{s3}[0]);
DestorTest::start_s3($w->{s3}[0]);
usleep(1_500_000);
my $errors0 = $node->safe_psql('postgres', "SELECT errors FROM destor.provider_status WHERE provider = '$names[0]'");
($warm, $cold) = session_reads('a server restarted');
is($node->safe_psql('postgres', "SELECT errors FROM destor.provider_status WHERE provider = '$names[0]'"),
	$errors0, 'a server restarted: no request to it failed (no dead socket handed over)');

# the setting at 0: no keeper, every session connects itself (the control)
$node->safe_psql('postgres', 'ALTER SYSTEM SET destor.warm_connections = 0');
$node->restart;
session_reads('setting 0, learning');
usleep(1_000_000);
($warm, $cold) = session_reads('setting 0');
is($warm, 0, 'setting 0: no request on a connection made before the session');
cmp_ok($cold, '>=', 4, 'setting 0: each provider asked on a new connection');
is(keeper_pid(), '', 'setting 0: no keeper');

done_testing();
