# The lifetime of the sockets the connection keeper holds ready
# (destor.warm_connections, conn_keeper.c; t/182_warm_connections.pl for
# the hand-over itself), learned per address: longer while the server
# keeps idle connections open, so that an idle pool is not reconnected
# every few seconds; shorter than the server's idle timeout once it has
# closed one, so that none is handed over dead; and a request on a socket
# the server closed an instant before goes out again at once.
#
# Six real s3rver processes behind the WAN emulator (20 ms each way; then
# a second proxy that closes connections idle for 5 s, and a third that
# closes, unanswered, every request on a connection idle for 300 ms); a
# 4+2 pool; every byte read compared with the file (test/tap/WarmRig.pm).
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use WarmRig;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $w = WarmRig::start('warm_idle');
my ($node, $base) = @$w{qw(node base)};
my @names = @{ $w->{names} };
sub session_reads { return WarmRig::session_reads($w, @_); }
my ($warm, $cold);

# the first session tells the keeper which addresses are wanted
session_reads('first session');
usleep(1_000_000);

# A server that keeps idle connections open: the kept sockets' lifetime
# grows (4 s, then 6, 9, 13.5 ...), so that an idle pool is not
# reconnected every 4 s — four sockets renewed every 4 s made 12
# connections per address in 14 s idle.
session_reads('before idling');
usleep(500_000);
my $idle0 = DestorTest::wan_stats($w->{wan}, $base);
usleep(14_000_000);
my ($made) = WarmRig::accepted_between($w, $idle0, DestorTest::wan_stats($w->{wan}, $base));
note("idle 14 s: at most $made connections made to a provider");
cmp_ok($made, '<=', 7, 'idle 14 s: kept sockets live longer while the server keeps them (a fixed 4 s: 12)');
($warm, $cold) = session_reads('after idling');
cmp_ok($warm, '>=', 4, 'after idling: connections ready, old ones included');
is($cold, 0, 'after idling: no provider asked on a connection of its own first');

# A server that closes connections idle for 5 s (a second proxy with that
# timeout, the providers moved to it: addresses the keeper knows nothing
# of): once it has closed one, no socket as old is kept, and none is
# closed under the keeper again.
WarmRig::move_to_proxy($w, idle_close_ms => 5000);
my $errors_l = WarmRig::errors($w);
session_reads('idle timeout, learning');
usleep(12_000_000);
my $t_0 = DestorTest::wan_stats($w->{wan}, $base);
usleep(10_000_000);
my (undef, $closed) = WarmRig::accepted_between($w, $t_0, DestorTest::wan_stats($w->{wan}, $base));
note("idle timeout: the proxy closed $closed idle connections in 10 s once learnt");
cmp_ok($closed, '<=', 1, 'idle timeout learnt: kept sockets are let go before the server closes them');
my $errors0 = WarmRig::errors($w);
is_deeply($errors0, $errors_l, 'idle timeout, while learning: no request failed or was tried again');
for my $i (1 .. 3)
{
	($warm, $cold) = session_reads("idle timeout, session $i");
	cmp_ok($warm, '>=', 4, "idle timeout, session $i: connections ready");
	usleep(2_300_000);
}
is_deeply(WarmRig::errors($w), $errors0, 'idle timeout: no request failed on a socket the server had closed');

# The same timeout's race: the server closed the idle connection an
# instant before the request, its FIN still on the way (a third proxy
# closes, unanswered, every request on a connection idle for 300 ms: each
# session's first request on a kept socket).  The request is tried again
# at once on a connection of its own, uncounted: no retry, no error.
WarmRig::move_to_proxy($w, reset_idle_ms => 300);
session_reads('race, learning');
usleep(1_000_000);
my $errors_r = WarmRig::errors($w);
my $r0 = DestorTest::wan_stats($w->{wan}, $base);
session_reads("race, session $_") for 1 .. 2;
my $r1 = DestorTest::wan_stats($w->{wan}, $base);
my $raced = 0;
$raced += $r1->{$_}{idle_reset} - $r0->{$_}{idle_reset} for @names;
note("race: $raced requests on kept sockets closed unanswered");
cmp_ok($raced, '>=', 4, 'race: requests went out on kept sockets the server had closed');
is_deeply(WarmRig::errors($w), $errors_r, 'race: each was tried again on a new connection, not counted as a retry or an error');

done_testing();
