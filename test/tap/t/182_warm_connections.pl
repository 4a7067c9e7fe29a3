# Connections made before they are needed (destor.warm_connections,
# conn_keeper.c).  Every backend and every parallel worker opens its own
# connections to the providers, a round trip each over a WAN before its
# first request can go out.  With the setting on, a background worker keeps
# connected sockets ready for the provider addresses backends used lately
# and hands them over: a new session's first requests go out on
# connections the proxy accepted before the session began.
#
# Six real s3rver processes behind the WAN emulator (20 ms each way); a
# 4+2 pool; every byte read compared with the file.  Also: the setting at
# 0 (no keeper: new connections, the control), the keeper stopped (reads
# connect themselves meanwhile, and it comes back), a provider's server
# restarted under the kept sockets (they are dropped, not handed over
# dead), and the sockets' lifetime learned per address: longer while the
# server keeps them open, shorter than the server's idle timeout once one
# is closed (a second proxy with one).
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# the setting left at its default: on
my $rig = DestorTest::wan_rig('warm', 6, delays => [ (20) x 6 ], mbps => 50, pool => [ 'p42', 4, 2 ]);
my ($node, $wan, $base) = ($rig->{node}, $rig->{wan}, $rig->{base});
my @names = map { $_->{name} } @{ $rig->{s3} };
is($node->safe_psql('postgres', 'SHOW destor.warm_connections'), '4', 'on by default: four sockets per address');

my $file = "$base/in.bin";
DestorTest::write_random_file($file, 3 * 1024 * 1024 + 777);
my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('p42', '$file')");

# A new session's reads (cache off: every read goes to the providers),
# each compared with the file; then, per provider asked, whether its first
# GET went out on a connection accepted before the session (the proxy
# numbers each provider's connections in order).
sub session_reads
{
	my ($name) = @_;
	my $before = DestorTest::wan_stats($wan, $base);
	my $t0 = DestorTest::wan_mark($wan);
	my $wrong = $node->safe_psql(
		'postgres', "
		SELECT count(*) FROM (VALUES (0, 200000), (1048576, 65536), (2500000, 300000), (3146000, 777)) r(o, n)
		 WHERE md5(destor.blob_read('$blob', o, n))
		       IS DISTINCT FROM md5(substring(pg_read_binary_file('$file') from o + 1 for n))");
	is($wrong, 0, "$name: every read exact");
	my (%first, %n);
	for my $r (sort { $a->{arrived} <=> $b->{arrived} }
		grep { $_->{line} =~ /^GET/ } DestorTest::wan_requests_since($wan, $t0, 1))
	{
		$first{ $r->{provider} } //= $r;
		$n{ $r->{provider} }++;
	}
	# made before it was needed: accepted before the session (the keeper
	# hands over its oldest socket, and lets sockets go at random ages, so
	# that one is older than the session)
	my ($warm, $cold) = (0, 0);
	for my $p (sort keys %first)
	{
		(my $id = $first{$p}{conn}) =~ s/^c//;
		$id <= $before->{$p}{connections} ? $warm++ : $cold++;
	}
	note("$name: GETs " . join(', ', map { sprintf('%s: %d (first on %s, accepted %.3f s before it; %d before the session)',
		$_, $n{$_}, $first{$_}{conn}, $first{$_}{arrived} - $first{$_}{accepted}, $before->{$_}{connections}) } sort keys %n));
	return ($warm, $cold);
}

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
DestorTest::stop_s3($rig->{s3}[0]);
DestorTest::start_s3($rig->{s3}[0]);
usleep(1_500_000);
my $errors0 = $node->safe_psql('postgres', "SELECT errors FROM destor.provider_status WHERE provider = '$names[0]'");
($warm, $cold) = session_reads('a server restarted');
is($node->safe_psql('postgres', "SELECT errors FROM destor.provider_status WHERE provider = '$names[0]'"),
	$errors0, 'a server restarted: no request to it failed (no dead socket handed over)');

# Connections each provider's proxy accepted between two stats, the most
# of any provider (of @_[2..], default all), and how many it closed for
# idleness.
sub accepted_between
{
	my ($a, $b, @which) = @_;
	my ($most, $idle) = (0, 0);
	for my $p (@which ? @which : @names)
	{
		my $d = $b->{$p}{connections} - $a->{$p}{connections};
		$most = $d if $d > $most;
		$idle += ($b->{$p}{idle_closed} // 0) - ($a->{$p}{idle_closed} // 0);
	}
	return ($most, $idle);
}

# A server that keeps idle connections open: the kept sockets' lifetime
# grows (4 s, then 6, 9, 13.5 ...), so that an idle pool is not
# reconnected every 4 s — four sockets renewed every 4 s made 12
# connections per address in 14 s idle.
session_reads('before idling');
usleep(500_000);
my $idle0 = DestorTest::wan_stats($wan, $base);
usleep(14_000_000);
# (not s1's: its server's restart above closed kept sockets, which the
# keeper may have taken for an idle timeout)
my ($made) = accepted_between($idle0, DestorTest::wan_stats($wan, $base), @names[ 1 .. $#names ]);
note("idle 14 s: at most $made connections made to a provider");
cmp_ok($made, '<=', 7, 'idle 14 s: kept sockets live longer while the server keeps them (a fixed 4 s: 12)');
($warm, $cold) = session_reads('after idling');
cmp_ok($warm, '>=', 4, 'after idling: connections ready, old ones included');
is($cold, 0, 'after idling: no provider asked on a connection of its own first');

# A server that closes connections idle for 5 s (a second proxy with that
# timeout, the providers moved to it: addresses the keeper knows nothing
# of): once it has closed one, no socket as old is kept, and none is
# closed under the keeper again.
$wan = DestorTest::start_wan_proxy($base, $rig->{s3}, delays => [ (20) x 6 ], mbps => 50, idle_close_ms => 5000);
$node->safe_psql('postgres', join('', map {
	"ALTER SERVER $names[$_] OPTIONS (SET endpoint 'http://127.0.0.1:$wan->{ports}[$_]');\n" } 0 .. $#names));
my @errors_l = map { $node->safe_psql('postgres', "SELECT errors + retries FROM destor.provider_status WHERE provider = '$_'") } @names;
session_reads('idle timeout, learning');
usleep(12_000_000);
my $t_0 = DestorTest::wan_stats($wan, $base);
usleep(10_000_000);
my (undef, $closed) = accepted_between($t_0, DestorTest::wan_stats($wan, $base));
note("idle timeout: the proxy closed $closed idle connections in 10 s once learnt");
cmp_ok($closed, '<=', 1, 'idle timeout learnt: kept sockets are let go before the server closes them');
my @errors0 = map { $node->safe_psql('postgres', "SELECT errors + retries FROM destor.provider_status WHERE provider = '$_'") } @names;
is_deeply(\@errors0, \@errors_l, 'idle timeout, while learning: no request failed or was tried again');
for my $i (1 .. 3)
{
	($warm, $cold) = session_reads("idle timeout, session $i");
	cmp_ok($warm, '>=', 4, "idle timeout, session $i: connections ready");
	usleep(2_300_000);
}
is_deeply([ map { $node->safe_psql('postgres', "SELECT errors + retries FROM destor.provider_status WHERE provider = '$_'") } @names ],
	\@errors0, 'idle timeout: no request failed on a socket the server had closed');

# The same timeout's race: the server closed the idle connection an
# instant before the request, its FIN still on the way (a third proxy
# closes, unanswered, every request on a connection idle for 300 ms: each
# session's first request on a kept socket).  The request is tried again
# at once on a connection of its own, uncounted: no retry, no error.
$wan = DestorTest::start_wan_proxy($base, $rig->{s3}, delays => [ (20) x 6 ], mbps => 50, reset_idle_ms => 300);
$node->safe_psql('postgres', join('', map {
	"ALTER SERVER $names[$_] OPTIONS (SET endpoint 'http://127.0.0.1:$wan->{ports}[$_]');\n" } 0 .. $#names));
session_reads('race, learning');
usleep(1_000_000);
my @errors_r = map { $node->safe_psql('postgres', "SELECT errors + retries FROM destor.provider_status WHERE provider = '$_'") } @names;
my $r0 = DestorTest::wan_stats($wan, $base);
session_reads("race, session $_") for 1 .. 2;
my $r1 = DestorTest::wan_stats($wan, $base);
my $raced = 0;
$raced += $r1->{$_}{idle_reset} - $r0->{$_}{idle_reset} for @names;
note("race: $raced requests on kept sockets closed unanswered");
cmp_ok($raced, '>=', 4, 'race: requests went out on kept sockets the server had closed');
is_deeply([ map { $node->safe_psql('postgres', "SELECT errors + retries FROM destor.provider_status WHERE provider = '$_'") } @names ],
	\@errors_r, 'race: each was tried again on a new connection, not counted as a retry or an error');

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
