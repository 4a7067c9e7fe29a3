# Break attempts on the connection keeper (destor.warm_connections,
# conn_keeper.c): concurrent sessions writing and reading through the WAN
# emulator while the keeper is SIGTERMed again and again and a provider is
# restarted; a big (multipart) write over warm sockets; an endpoint named
# "localhost"; descriptor counts of the keeper and of a long-lived backend;
# the setting at 32; and another OS user, both asking the keeper for a
# socket and taking the keeper's name while it restarts.
#
# The other-user parts need a helper running as user "nobody" that serves
# requests dropped in /tmp/brk_agent (a break review's script, not part of
# the tree) and DESTOR_TEST_OTHER_USER=1; without them they are skipped.  They found that another user
# could bind the keeper's abstract socket name while it restarted and be
# handed backends' signed requests, and that a listener that never
# accepted held backends in a blocking connect: the keeper's socket is now
# a file in the data directory (pg_stat_tmp), each end checks the other's
# uid, and the backend connects without blocking.  The helper's squatter
# still takes the old abstract name: nothing uses it any more.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use IPC::Run;

my $rig = DestorTest::wan_rig('brkwarm', 6, delays => [ (5) x 6 ], mbps => 200,
	pool => [ 'p42', 4, 2 ], conf => "destor.warm_connections = 4\n");
my ($node, $wan, $base) = ($rig->{node}, $rig->{wan}, $rig->{base});
my @names = map { $_->{name} } @{ $rig->{s3} };
my $pm = $node->{_pid};

my $file = "$base/in.bin";
DestorTest::write_random_file($file, 2 * 1024 * 1024 + 333);
my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('p42', '$file')");
$node->safe_psql('postgres', "CREATE TABLE w (k int primary key, b destor.blob, sum text, n int)");

sub keeper_pid
{
	my $pid = `pgrep -P $pm -f 'destor connection keeper'`;
	$pid =~ s/\s+//g;
	return $pid;
}

sub wait_keeper
{
	my ($not) = @_;
	for (1 .. 100)
	{
		my $p = keeper_pid();
		return $p if $p =~ /^\d+$/ && (!defined $not || $p ne $not);
		usleep(100_000);
	}
	return '';
}

sub fds
{
	my ($pid) = @_;
	opendir(my $d, "/proc/$pid/fd") or return -1;
	my @f = grep { !/^\./ } readdir($d);
	closedir($d);
	return scalar(@f);
}

sub reads_wrong
{
	my ($n) = @_;
	return $n->safe_psql('postgres', "
		SELECT count(*) FROM (VALUES (0, 200000), (1048576, 65536), (2000000, 97152), (2097000, 1000)) r(o, n)
		 WHERE md5(destor.blob_read('$blob', o, n))
		       IS DISTINCT FROM md5(substring(pg_read_binary_file('$file') from o + 1 for n))");
}

is(reads_wrong($node), 0, 'first reads exact (addresses learnt)');
usleep(700_000);
my $k0 = wait_keeper();
ok($k0 =~ /^\d+$/, "the keeper runs ($k0)");

# ---------------------------------------------------------------------
# Another OS user asks the keeper for a socket (helper as nobody); the
# same request from the server's user is the control.
# ---------------------------------------------------------------------
# opt-in: a file left behind by a helper that no longer runs must not turn them on
my $agent = $ENV{DESTOR_TEST_OTHER_USER} && -e '/tmp/brk_agent/alive';
my $askpy = "$base/ask.py";
open(my $fh, '>', $askpy) or die;
print $fh <<'EOF';
import socket, struct, sys, json
pid, port = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(2)
out = {}
try:
    s.connect('pg_stat_tmp/destor_keeper.sock')
    sa = struct.pack('=H', socket.AF_INET) + struct.pack('!H', port) + socket.inet_aton('127.0.0.1')
    s.sendall(struct.pack('=II', 0x6b656570, 16) + sa.ljust(128, b'\0'))
    msg, anc, fl, ad = s.recvmsg(1, socket.CMSG_SPACE(4))
    out['status'] = list(msg)
    out['fds'] = sum(len(d) // 4 for l, t, d in anc if t == socket.SCM_RIGHTS)
except Exception as e:
    out['error'] = repr(e)
print(json.dumps(out))
EOF
close $fh;
my $port0 = $wan->{ports}[0];
# warm the address, then ask as the server's user: a socket comes
reads_wrong($node);
usleep(500_000);
my $own = `cd '${\ $node->data_dir}' && python3 $askpy $pm $port0`;
note("same user asks: $own");
like($own, qr/"fds": 1/, 'control: a process of the server\'s user gets a socket');

sub agent_call
{
	my ($tag, $req, $wait) = @_;
	my $res = "/tmp/brk_agent/res-$tag.json";
	unlink $res;
	open(my $q, '>', "/tmp/brk_agent/.req-$tag") or die;
	print $q $req;
	close $q;
	rename("/tmp/brk_agent/.req-$tag", "/tmp/brk_agent/req-$tag.json");
	return $res;
}

sub agent_result
{
	my ($file, $secs) = @_;
	for (1 .. $secs * 10)
	{
		if (-e $file)
		{
			open(my $r, '<', $file) or die;
			local $/;
			my $j = <$r>;
			close $r;
			return $j;
		}
		usleep(100_000);
	}
	return undef;
}

SKIP:
{
	skip 'no helper running as another user (/tmp/brk_agent)', 1 unless $agent;
	reads_wrong($node);
	usleep(500_000);
	my $tag = "c$$";
	my $r = agent_result(agent_call($tag, qq({"action": "connect", "pid": $pm, "port": $port0})), 10);
	note("nobody asks: " . ($r // 'no answer'));
	ok(defined $r && $r !~ /"fds": 1/ && $r !~ /"status": \[1\]/, 'another OS user gets no socket from the keeper');
}

# ---------------------------------------------------------------------
# A long-lived backend: its descriptors before and after many reads and
# writes (new connections, kept ones, keeper restarts meanwhile).
# ---------------------------------------------------------------------
my $bg = $node->background_psql('postgres');
my ($bpid) = DestorTest::bg_query($bg, 'SELECT pg_backend_pid()');
$bpid =~ s/\s+//g;
my ($o) = DestorTest::bg_query($bg, "SELECT " . reads_sql());
sub reads_sql
{
	return "(SELECT count(*) FROM (VALUES (0, 200000), (1048576, 65536), (2097000, 1000)) r(o, n)
		 WHERE md5(destor.blob_read('$blob', o, n))
		       IS DISTINCT FROM md5(substring(pg_read_binary_file('$file') from o + 1 for n)))";
}
my $bfd0 = fds($bpid);
note("long-lived backend $bpid: $bfd0 descriptors after its first reads");

# ---------------------------------------------------------------------
# The storm: 4 loops of new sessions writing blobs (1 KB .. 600 KB) and
# reading them back in another session, plus reads of the file's blob,
# while the keeper is SIGTERMed every ~0.7 s.
# ---------------------------------------------------------------------
sub start_loops
{
	my ($tag, $iters) = @_;
	my @h;
	for my $w (1 .. 4)
	{
		my $sh = "$base/loop_${tag}_$w.sh";
		open(my $s, '>', $sh) or die;
		print $s <<"EOF";
export PGHOST='${\ $node->host}' PGPORT=${\ $node->port} PGDATABASE=postgres
for i in \$(seq 1 $iters); do
  k=\$(( ($w * 100000) + (\$RANDOM * 3) + i ))
  rows=\$(( (\$RANDOM % 38000) + 64 ))
  psql -XAtq -v ON_ERROR_STOP=1 -c "INSERT INTO w SELECT \$k, destor.blob_put('p42', d), md5(d), length(d) FROM (SELECT decode(string_agg(md5(random()::text || g), ''), 'hex') d FROM generate_series(1, \$rows) g) s ON CONFLICT DO NOTHING" || echo "ERR write \$k"
  out=\$(psql -XAtq -c "SELECT count(*) FROM w WHERE k = \$k AND md5(destor.blob_read(b, 0, n)) IS DISTINCT FROM sum" 2>&1) ; echo "rw \$out"
  out=\$(psql -XAtq -c "SELECT ${\ reads_sql_shell()}" 2>&1) ; echo "rd \$out"
done
EOF
		close $s;
		my $out = "$base/loop_${tag}_$w.out";
		push @h, IPC::Run::start([ 'bash', $sh ], '<', \undef, '>', $out, '2>&1');
	}
	return @h;
}

sub reads_sql_shell
{
	(my $s = reads_sql()) =~ s/\n/ /g;
	return $s;
}

sub loop_results
{
	my ($tag) = @_;
	my ($ok, $bad, @bad);
	for my $w (1 .. 4)
	{
		open(my $r, '<', "$base/loop_${tag}_$w.out") or next;
		while (my $l = <$r>)
		{
			chomp $l;
			if ($l =~ /^(rw|rd) 0$/) { $ok++ }
			else { $bad++; push @bad, $l }
		}
		close $r;
	}
	return ($ok // 0, $bad // 0, @bad);
}

my $wan0 = DestorTest::wan_stats($wan, $base);
my @h = start_loops('storm', 40);
my $kills = 0;
my $last = keeper_pid();
my $big = "$base/big.bin";
DestorTest::write_random_file($big, 36 * 1024 * 1024 + 5);
my $bigblob;
my $t_start = time();
my $turn = 0;
while (grep { $_->pumpable } @h)
{
	eval { $_->pump_nb } for @h;
	my $k = keeper_pid();
	if ($k =~ /^\d+$/ && $turn++ % 2 == 0)
	{
		kill 'TERM', $k;
		$kills++;
	}
	if (!defined $bigblob && $kills == 3)
	{
		# a multipart write (shards of 9 MiB) while the keeper comes and goes
		my ($ret, $out, $err) = $node->psql('postgres', "SELECT destor.blob_import('p42', '$big')");
		$bigblob = $ret == 0 ? $out : '';
		note("big import: $err") if $ret != 0;
	}
	usleep(700_000);
	last if time() - $t_start > 20;
}
$_->kill_kill for grep { $_->pumpable } @h;
$_->finish for @h;
my ($ok, $bad, @badl) = loop_results('storm');
note("storm: $kills SIGTERMs of the keeper, $ok checks exact, $bad not: " . join(' | ', @badl[0 .. ($#badl < 5 ? $#badl : 5)]));
cmp_ok($ok, '>=', 40, 'storm: the loops ran');
is($bad, 0, 'storm: every write stored and every byte read back exact while the keeper was killed again and again');
ok(defined $bigblob && $bigblob ne '', 'storm: a multipart write succeeded');
is($node->safe_psql('postgres', "SELECT md5(destor.blob_read('$bigblob', 0, 40000000)) = md5(pg_read_binary_file('$big'))"),
	't', 'storm: the multipart blob reads back exact') if $bigblob;
my $wan1 = DestorTest::wan_stats($wan, $base);
note("storm: proxy connections accepted: " . join(', ', map { "$_ " . ($wan1->{$_}{connections} - $wan0->{$_}{connections}) } @names));

# ---------------------------------------------------------------------
# A provider's server restarted while new sessions write and read; the
# keeper left alone.
# ---------------------------------------------------------------------
my $k1 = wait_keeper();
@h = start_loops('restart', 4);
usleep(1_500_000);
DestorTest::stop_s3($rig->{s3}[2]);
usleep(800_000);
DestorTest::start_s3($rig->{s3}[2]);
$_->finish for @h;
($ok, $bad, @badl) = loop_results('restart');
note("provider restart: $ok exact, $bad not: " . join(' | ', @badl[0 .. ($#badl < 5 ? $#badl : 5)]));
is(scalar(grep { /^(rw|rd) [1-9]/ } @badl), 0, 'provider restart: no read returned wrong bytes');
# once it is back: kept sockets to it (made while it was down, through the
# proxy) must not be handed over dead
usleep(1_500_000);
my $err0 = $node->safe_psql('postgres', "SELECT errors FROM destor.provider_status WHERE provider = '$names[2]'");
is(reads_wrong($node), 0, 'after the restart: reads exact');
is(reads_wrong($node), 0, 'after the restart: reads exact (second session)');
is($node->safe_psql('postgres', "SELECT errors FROM destor.provider_status WHERE provider = '$names[2]'"),
	$err0, 'after the restart: no request to the restarted provider failed');

# ---------------------------------------------------------------------
# Descriptors: the long-lived backend, and the keeper
# ---------------------------------------------------------------------
for (1 .. 10)
{
	my ($x) = DestorTest::bg_query($bg, "SELECT " . reads_sql());
	$o .= $x;
}
($o) = DestorTest::bg_query($bg, "SELECT " . reads_sql());
is($o, '0', 'long-lived backend: reads exact');
my $bfd1 = fds($bpid);
note("long-lived backend $bpid: $bfd1 descriptors after ~30 more reads");
cmp_ok($bfd1, '<=', $bfd0 + 6, 'long-lived backend: no descriptor growth');
my $kp = keeper_pid();
my $kfd = fds($kp);
my $nsess = $node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'");
note("keeper $kp: $kfd descriptors ($nsess client backends)");
# base descriptors of a bgworker (~10) + listener + 1 per client + 4 per address (6, and ::1 at most 6 more)
cmp_ok($kfd, '<=', 12 + 1 + $nsess + 4 * 12, 'keeper: descriptors bounded');

# ---------------------------------------------------------------------
# An endpoint named "localhost" (libcurl: ::1 and 127.0.0.1; the proxy
# listens on 127.0.0.1 only)
# ---------------------------------------------------------------------
my $p1 = $rig->{providers}[1];
$node->safe_psql('postgres', "ALTER SERVER $names[1] OPTIONS (SET endpoint 'http://localhost:$p1->{port}')");
my $e1 = $node->safe_psql('postgres', "SELECT errors FROM destor.provider_status WHERE provider = '$names[1]'");
is(reads_wrong($node), 0, 'localhost: reads exact (learning)');
usleep(1_000_000);
is(reads_wrong($node), 0, 'localhost: reads exact (warm)');
my $wl = $node->safe_psql('postgres', "SELECT destor.blob_put('p42', decode(repeat('ab', 300000), 'hex'))");
is($node->safe_psql('postgres', "SELECT destor.blob_read('$wl', 0, 300000) = decode(repeat('ab', 300000), 'hex')"),
	't', 'localhost: a write reads back exact');
is($node->safe_psql('postgres', "SELECT errors FROM destor.provider_status WHERE provider = '$names[1]'"),
	$e1, 'localhost: no request failed');

# ---------------------------------------------------------------------
# Another OS user takes the keeper's name while the keeper restarts and
# hands backends sockets to its own relay: a backend must not send its
# signed requests through it.
# ---------------------------------------------------------------------
SKIP:
{
	skip 'no helper running as another user (/tmp/brk_agent)', 3 unless $agent;
	my $tag = "s$$";
	my $res = agent_call($tag, qq({"action": "squat", "pid": $pm, "seconds": 5}));
	usleep(300_000);
	my $k = keeper_pid();
	kill 'TERM', $k if $k =~ /^\d+$/;
	my $bound = agent_result("/tmp/brk_agent/res-$tag.json.bound", 10);
	note("squatter: " . ($bound // 'never bound'));
	for my $i (1 .. 2)
	{
		my ($ret, $out, $err) = $node->psql('postgres', "SELECT " . reads_sql());
		note("name taken, session $i: ret $ret, out '$out', err " . substr($err, 0, 400));
		is($out, '0', "name taken, session $i: reads exact");
	}
	my $r = agent_result($res, 15);
	note("squatter saw: " . ($r // 'nothing'));
	ok(defined $r && $r =~ /"tcp_bytes": 0\b/,
		'name taken by another user: no backend sent a request over a socket it handed over');
	my $back = wait_keeper();
	ok($back =~ /^\d+$/, "the keeper came back after the squatter left ($back)");
}

# The name taken by a listener of another user that never accepts: a
# backend's connect to it must not hold its statement (the keeper's
# answer is waited for 20 ms at most).
SKIP:
{
	skip 'no helper running as another user (/tmp/brk_agent)', 2 unless $agent;
	my $tag = "h$$";
	my $res = agent_call($tag, qq({"action": "squat", "pid": $pm, "seconds": 6, "hang": true}));
	usleep(300_000);
	my $k = keeper_pid();
	kill 'TERM', $k if $k =~ /^\d+$/;
	my $bound = agent_result("/tmp/brk_agent/res-$tag.json.bound", 10);
	note("hanging squatter: " . ($bound // 'never bound'));
	my @q;
	for my $i (1 .. 3)
	{
		my $out = '';
		push @q, [ IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c', "SELECT " . reads_sql() ],
			'<', \undef, '>', \$out, '2>&1'), \$out ];
	}
	usleep(2_000_000);
	my $stuck = $node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%blob_read%' AND pid <> pg_backend_pid()");
	note("hanging squatter: $stuck of 3 sessions still in their reads after 2 s");
	is($stuck, 0, 'name held by a listener that never accepts: no session stuck in its reads');
	$_->[0]->finish for @q;
	is(join(',', map { ${ $_->[1] } =~ s/\s+//gr } @q), '0,0,0', 'name held by a listener that never accepts: reads exact in the end');
	agent_result($res, 15);
	wait_keeper();
}

# ---------------------------------------------------------------------
# The setting at 32
# ---------------------------------------------------------------------
$node->safe_psql('postgres', 'ALTER SYSTEM SET destor.warm_connections = 32');
$node->restart;
$pm = $node->{_pid};
is(reads_wrong($node), 0, '32: reads exact (learning)');
usleep(1_000_000);
@h = start_loops('w32', 3);
$_->finish for @h;
($ok, $bad, @badl) = loop_results('w32');
note("32: $ok exact, $bad not: " . join(' | ', @badl[0 .. ($#badl < 5 ? $#badl : 5)]));
is($bad, 0, '32: every write and read exact');
$kp = wait_keeper();
$kfd = fds($kp);
note("32: keeper $kp: $kfd descriptors");
cmp_ok($kfd, '<=', 12 + 1 + 8 + 32 * 12, '32: keeper descriptors bounded');

# ---------------------------------------------------------------------
# Out of descriptors: the keeper holding its sockets at 32 a provider is
# given a limit of 64 (prlimit), below what it holds.  poll() refuses more
# descriptors than the limit, and accept() fails (EMFILE) with the backend
# left in the backlog, the listening socket readable: polled, it spins.
# The keeper must let go of what exceeds its share of the limit, not
# spin, and the sessions read exact.
# ---------------------------------------------------------------------
sub cpu_ticks
{
	my ($pid) = @_;
	open(my $f, '<', "/proc/$pid/stat") or return -1;
	my @s = split ' ', (split /\) /, <$f>, 2)[1];
	close $f;
	return $s[11] + $s[12];    # utime + stime (fields 14 and 15)
}
SKIP:
{
	skip 'prlimit not available', 4 if system('prlimit --version >/dev/null 2>&1') != 0;
	$kp = wait_keeper();
	system('prlimit', "--pid=$kp", '--nofile=64:64') == 0 or die "prlimit failed";
	note("32, limit 64: keeper $kp holds " . fds($kp) . ' descriptors');
	my $t0 = cpu_ticks($kp);
	# new sessions, each asking the keeper once per provider
	my $wrong = 0;
	for (1 .. 6)
	{
		my $n = $node->safe_psql('postgres', 'SELECT ' . reads_sql());
		$wrong++ if $n ne '0';
	}
	usleep(2_000_000);
	my $ticks = cpu_ticks($kp) - $t0;
	my $secs = $ticks / 100;
	note("32, limit 64: keeper used $ticks ticks; " . fds($kp) . ' descriptors');
	is($wrong, 0, 'limit 64: sessions read exact while the keeper is out of descriptors');
	# (poll() refuses more descriptors than the limit: holding on to its
	# sockets, the keeper failed and was restarted)
	is(keeper_pid(), $kp, 'limit 64: the keeper lives on, its sockets cut to its share');
	cmp_ok($secs, '<', 1.0, 'limit 64: the keeper does not spin on a listening socket it cannot accept from');
	# its kept sockets age out; what it keeps again stays within its share
	# (sessions keep asking, so that the address stays wanted)
	for (1 .. 40)
	{
		last if fds($kp) <= 64;
		$node->safe_psql('postgres', 'SELECT ' . reads_sql());
		usleep(1_000_000);
	}
	cmp_ok(fds($kp), '<=', 64, 'limit 64: the keeper keeps within the limit once its old sockets aged out');
}

$bg->quit;
done_testing();
