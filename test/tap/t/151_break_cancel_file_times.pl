# Regression test from the break review of 96e689f, with file providers:
# provider_cancel completes a file read-ahead (provider_file_finish) and
# notes it like a collected batch.  A file request's latency was taken when
# the batch was finished (now - start), so a read-ahead collected after a
# cursor sat idle — cancelled by CLOSE, or collected by a MOVE ALL — was
# noted as reads that took the whole idle time (latency_p50/p99 of
# provider_status, the recent read times that judge a provider slow),
# though the disk answered in microseconds.  A read found over at the
# collection, long after its start, is now loose: its bytes count, its
# time does not.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $idle = 5;
my ($node) = DestorTest::start_cluster('cancel_file', cache_size => '0');
my $base = $node->basedir;
my ($sql) = DestorTest::file_pool_sql($base, 'fp', 6, 4, 2);
$node->safe_psql('postgres', $sql);
DestorTest::create_wide_table($node, 'fp');

sub marks
{
	return $node->safe_psql('postgres', q{
SELECT string_agg(provider || ' ' || state || ' req ' || requests
                  || ' p50 ' || round(coalesce(latency_p50_ms, -1)) || ' p99 ' || round(coalesce(latency_p99_ms, -1)),
                  ', ' ORDER BY provider)
  FROM destor.provider_status});
}
my %p99;
for my $end ('MOVE ALL IN c', 'CLOSE c')
{
	$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
	$node->safe_psql('postgres', 'SELECT sum(length(payload)) FROM wide');
	for my $round (1, 2)
	{
		my ($rc, $out, $err) = $node->psql('postgres', DestorTest::idle_cursor_sql($idle, $end),
			on_error_stop => 0);
		is($rc, 0, "cursor ended by '$end', round $round") or diag($err);
	}
	$p99{$end} = $node->safe_psql('postgres',
		'SELECT round(coalesce(max(latency_p99_ms), -1)) FROM destor.provider_status');
	note("'$end': " . marks());
}
cmp_ok($p99{'MOVE ALL IN c'}, '<', 1000 * $idle * 0.5,
	'a file read-ahead collected after an idle is not noted as reads of the idle\'s length');
cmp_ok($p99{'CLOSE c'}, '<', 1000 * $idle * 0.5,
	'a file read-ahead cancelled after an idle is not noted as reads of the idle\'s length');

$node->stop;
done_testing();
