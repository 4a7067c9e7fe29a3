# A scan opens a batch's first row groups as soon as their bytes are in,
# while the rest of the batch still comes in (object_reader_read_multi_begin
# / _need / _end), and drops the rest at a LIMIT.  Over slow links (the
# rig of test/tap/StreamRig.pm), SELECT * ... LIMIT 1 needs the first row
# group of a batch of several MiB: it must move far less than the batch it
# asked for (it moved all of it before), what moved must be counted as
# egress, and no provider may be blamed.  It reads what moved while the
# query ran, so it runs alone (the serial group); the rest of the review
# of streamed batches is t/177_break_streamed_batches.pl.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use StreamRig;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $rig = StreamRig::start('stream_limit');
END { local $?; StreamRig::stop($rig); }
my $node = $rig->{node};
my $wan = $rig->{wan};

sub run
{
	my ($sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $sql, timeout => 120, on_error_stop => 0);
	return ($rc, $out // '', $err // '');
}
sub blame { return StreamRig::blame($node); }
sub blamed_since { my ($b0, @allowed) = @_; return StreamRig::blamed_since($node, $b0, @allowed); }

# the links measured, and the scan exact
my $all = 'SELECT count(*), sum(hashtext((t.*)::text)::numeric) FROM %s t';
my $want = $node->safe_psql('postgres', sprintf($all, 'h'));
is($node->safe_psql('postgres', sprintf($all, 'ft')), $want, "full scan $_: the heap's result") for 1 .. 2;

# SELECT * ... LIMIT 1 needs the first row group (a tenth of a segment)
# of a batch of several MiB.  Waiting for the whole batch, as before, the
# providers send all of it; opened as it comes in, the scan ends and the
# rest of the batch is dropped after a small part of it.  With
# destor.spread_reads off (this cluster's setting) a batch reads the data
# shards; with it on (the default) a batch of a pool with more providers
# than data shards is spread over all of them.
for my $c ([ 'off', '*' ], [ 'on', '*' ], [ 'off', 'id, n' ], [ 'on', 'id, n' ])
{
	my ($spread, $cols) = @$c;
	my $what = "spread_reads $spread, SELECT $cols LIMIT 1";
	my $b0 = blame();
	my $r0 = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status');
	my $t0 = DestorTest::wan_mark($wan);
	my ($rc, $out, $err) = run("SET destor.spread_reads = $spread; SELECT $cols FROM ft LIMIT 1");
	is($rc, 0, "$what: no error") or diag($err);
	my @reqs = DestorTest::wan_requests_since($wan, $t0, 4096);
	my ($asked, $sent) = DestorTest::wan_bytes(@reqs);
	my $counted = $node->safe_psql('postgres', 'SELECT sum(bytes_read) FROM destor.provider_status') - $r0;
	note(sprintf('%s: %d ranged GETs asked %d bytes, the providers sent %d (%.0f%%), destor counted %d',
		$what, scalar(@reqs), $asked, $sent, 100 * $sent / ($asked || 1), $counted));
	note(join("\n", map { "$_->{provider} $_->{from}-$_->{to} sent $_->{bytes}" } @reqs));
	# (a batch of many one-block ranges is all in one round trip: only
	# batches of large requests can be cut short)
	if ($cols eq '*')
	{
		cmp_ok($asked, '>', 1_000_000, "$what asked for a batch of several MB");
		cmp_ok($sent, '<', 0.5 * $asked, "$what over a slow link received far less than the batch it asked for");
	}
	# what was in flight when the batch was dropped (the proxy's 64 KiB
	# pieces, a few per connection) may be sent and never read
	cmp_ok($counted, '>=', $sent - 3 * 65536 * scalar(@reqs), "$what: what the providers sent is counted");
	is(blamed_since($b0), '', "$what: no provider blamed");
}

$node->stop;
StreamRig::stop($rig);
done_testing();
