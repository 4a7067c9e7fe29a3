# A scan that stops early (a cursor closed, a LIMIT reached) must not wait
# for the batch it read ahead and will never use: that batch is on the
# multi handle and is stopped at once (provider_cancel).  It used to be
# collected (provider_finish), so the statement that ended the scan waited
# for every byte of a batch nobody needed (found by the break-async review).
#
# Six s3rver processes behind delay proxies that hold every request four
# seconds (a far, healthy region).  The statements that end a scan run
# under a statement_timeout of two seconds: waiting for the batch read
# ahead fails them.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('close_waits', cache_size => '0');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(6, $base);
my $delay_file = "$base/delay";
my @delays = map { DestorTest::start_delay_proxy($s3[$_]{port}, $delay_file) } 0 .. $#s3;
my @providers = map { { %{ $s3[$_] }, port => $delays[$_]{port} } } 0 .. $#s3;
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 4, 2, @providers));
sub set_delay
{
	my ($ms) = @_;
	open(my $fh, '>', $delay_file) or die;
	print $fh "$ms\n";
	close $fh;
}
set_delay(0);

# some 12 MiB stored: two scan batches, the second read ahead
DestorTest::create_wide_table($node, 'archive');
$node->safe_psql('postgres', 'SELECT count(*) FROM wide');

set_delay(4000);

# --- a cursor closed after its first row ----------------------------------
my ($rc, $out, $err) = $node->psql('postgres', q{
BEGIN;
DECLARE c NO SCROLL CURSOR FOR SELECT id, payload FROM wide;
FETCH 1 FROM c;
SET LOCAL statement_timeout = '2s';
CLOSE c;
COMMIT;
SELECT 'closed';
}, on_error_stop => 0);
is($err, '', 'closing a cursor does not wait for the batch it read ahead');
like($out, qr/closed/, 'the session goes on');

# --- a LIMIT reached in the first batch -------------------------------------
# The first batch takes the four seconds; the read-ahead must not add
# four more.
($rc, $out, $err) = $node->psql('postgres', q{
SET statement_timeout = '7s';
SELECT id FROM wide LIMIT 1;
}, on_error_stop => 0);
is($err, '', 'LIMIT 1 does not wait for the batch read ahead');
like($out, qr/^1$/m, 'LIMIT 1 returns the first row');

set_delay(0);
$node->stop;
DestorTest::stop_delay_proxy($_) for @delays;
DestorTest::stop_s3($_) for @s3;
done_testing();
