# The rig of the streamed-batch files (t/177_*): six s3rver, each behind a
# FaultProxy (faults per provider), all behind the WAN emulator (10 ms each
# way, 4 MB/s per provider, a trace of what moved); a 4+2 pool p42; a
# foreign table ft of three segments (the first one two batches of row
# groups for SELECT *) and a heap copy h of the same rows.  Also the
# provider_status counters that name a provider at fault.
package StreamRig;

use strict;
use warnings;
use DestorTest;
use FaultProxy;
use Time::HiRes ();
use Test::More;

# Returns { node, s3, faults, wan }; stop it with StreamRig::stop.  With
# separate => 1 each s3rver runs in a process of its own (to be signalled).
# The server log names each line's backend type (log_line_prefix %b).
sub start
{
	my ($name, %opts) = @_;
	my ($node) = DestorTest::start_cluster($name,
		conf => "max_worker_processes = 8\nmax_parallel_workers = 4\nsynchronize_seqscans = off\n"
		  . "destor.spread_reads = off\n"
		  # the backend type names the parallel workers in the server log
		  . "log_line_prefix = '%m [%p] %b '\n");
	my $base = $node->basedir;
	my $rig = { node => $node, s3 => [ DestorTest::start_s3_servers(6, $base, separate => $opts{separate}) ], faults => [] };
	my @behind;
	for my $i (0 .. $#{ $rig->{s3} })
	{
		my $s3 = $rig->{s3}[$i];
		push @{ $rig->{faults} }, FaultProxy::start($s3->{port}, "$base/faults_$i", $s3->{dir});
		push @behind, { %$s3, port => $rig->{faults}[$i]{port} };
	}
	$rig->{wan} = DestorTest::start_wan_proxy($base, \@behind, delay_ms => 10, mbps => 4);
	my @providers = map { { %{ $behind[$_] }, port => $rig->{wan}{ports}[$_] } } 0 .. $#behind;
	$node->safe_psql('postgres', DestorTest::providers_sql('p42', 4, 2, @providers));
	# segment 1: 110,000 rows (some 10 MB stored: two batches of row groups
	# for SELECT *); segments 2 and 3 from a second INSERT
	$node->safe_psql('postgres', q{
CREATE TABLE h (id int, payload text, extra text, n int);
INSERT INTO h
  SELECT i, md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text) || md5((i * 17)::text),
         CASE WHEN i % 11 = 0 THEN NULL ELSE md5((i * 3)::text) END,
         CASE WHEN i % 5 = 0 THEN NULL ELSE i % 1000 END
    FROM generate_series(1, 140000) i;
CREATE FOREIGN TABLE ft (id int, payload text, extra text, n int)
  SERVER p42 OPTIONS (segment_rows '110000', row_group_rows '5000');
INSERT INTO ft SELECT * FROM h WHERE id <= 110000 ORDER BY id;
INSERT INTO ft SELECT * FROM h WHERE id > 110000 ORDER BY id;
});
	return $rig;
}

# Its proxies and servers stopped (also from an END block: a test that
# dies leaves no proxy behind).
sub stop
{
	my ($rig) = @_;
	return unless $rig;
	FaultProxy::stop($_) for grep { defined } @{ $rig->{faults} };
	$rig->{faults} = [];
	DestorTest::stop_wan_proxy($rig->{wan}) if $rig->{wan};
	$rig->{wan} = undef;
	DestorTest::stop_s3($_) for @{ $rig->{s3} };
	$rig->{s3} = [];
}

# provider_status counters that name a provider at fault: { name => [...] }
sub blame
{
	my ($node) = @_;
	my %b;
	for (split /\n/, $node->safe_psql('postgres', q{
SELECT provider || ' ' || errors || ' ' || retries || ' ' || short_bodies || ' ' || bad_chunks
  FROM destor.provider_status ORDER BY provider}))
	{
		my ($p, @c) = split ' ';
		$b{$p} = \@c;
	}
	return \%b;
}

# The providers whose counters grew since $b0 (blame), but for those in
# @allowed (their numbers: s1 is 1), as "s2 retries+1, ..."; '' for none.
sub blamed_since
{
	my ($node, $b0, @allowed) = @_;
	my $b1 = blame($node);
	my %ok = map { ("s$_" => 1) } @allowed;
	my @names = qw(errors retries short_bodies bad_chunks);
	my @out;
	for my $p (sort keys %$b1)
	{
		next if $ok{$p};
		for my $c (0 .. 3)
		{
			my $d = $b1->{$p}[$c] - ($b0->{$p}[$c] // 0);
			push @out, "$p $names[$c]+$d" if $d > 0;
		}
	}
	return join(', ', @out);
}

# Provider $v's shard files changed on its disk by $change (a file's path in,
# 1 if it changed it), $body run with the number changed, then its disk put
# back as it was and its s3rver started again.
sub with_shards_changed
{
	my ($rig, $v, $change, $body) = @_;
	my $s3 = $rig->{s3}[$v];
	my $saved = "$s3->{dir}.saved";
	system('cp', '-a', $s3->{dir}, $saved) == 0 or die "cp $s3->{dir}: $?";
	my $n = 0;
	$n += $change->($_) for grep { /_S3rver_object$/ } DestorTest::files_under($s3->{dir});
	$body->($n);
	DestorTest::stop_s3($s3);
	system('rm', '-rf', $s3->{dir}) == 0 or die "rm $s3->{dir}: $?";
	system('mv', $saved, $s3->{dir}) == 0 or die "mv $saved: $?";
	DestorTest::start_s3($s3);
}

# The ERROR lines of a server log but those matching $allowed.  A parallel
# worker that starts after its leader's query ended (done early, cancelled
# or failed) finds the query's shared memory released and says "could not
# map dynamic shared memory segment" or, a moment later, "could not attach
# to dynamic shared area": PostgreSQL's own race (heap scans have it too),
# not ours, so a parallel worker's line of either text is not counted.
sub unexpected_errors
{
	my ($log, $allowed) = @_;
	return grep {
		!/$allowed/
		  && !/\] parallel worker ERROR:  could not (attach to dynamic shared area|map dynamic shared memory segment)$/
	} $log =~ /^.*\bERROR:.*$/mg;
}

# SQL with a time limit: (rc, stdout, stderr, timed out)
sub run
{
	my ($node, $sql, $limit) = @_;
	my $to = 0;
	my ($rc, $out, $err) = $node->psql('postgres', $sql, timeout => $limit // 120, timed_out => \$to,
		on_error_stop => 0);
	return ($rc, $out // '', $err // '', $to);
}

# A digest of every row of a query over {T}: a sum of row hashes,
# independent of the order and cheap on two cores.
our $ALL_ROWS = 'SELECT count(*), sum(hashtext(x)::numeric), sum(hashtext(x || \'#\')::numeric), '
  . 'sum(length(x)) FROM (SELECT (t.*)::text x FROM {T} t) s';

# The query $tmpl with {T} the destor table ($ft, default ft) must give
# what it gives with {T} the heap copy ($ht, default h), after the SQL
# $pre; no hang, no error.  $cache: a hash that keeps the heap's results
# (undef when the heap changes).  Returns the destor query's seconds.
sub same
{
	my ($node, $cache, $what, $tmpl, $pre, $ft, $ht) = @_;
	$pre //= '';
	$ft //= 'ft';
	$ht //= 'h';
	(my $qf = $tmpl) =~ s/\{T\}/$ft/g;
	(my $qh = $tmpl) =~ s/\{T\}/$ht/g;
	my $t0 = Time::HiRes::time();
	my ($rc, $out, $err, $to) = run($node, "$pre$qf");
	my $dt = Time::HiRes::time() - $t0;
	my $want = $cache ? ($cache->{$qh} //= (run($node, $qh))[1]) : (run($node, $qh))[1];
	ok(!$to, "$what: no hang");
	is($rc, 0, "$what: no error") or diag($err);
	is($out, $want, "$what: the heap's result")
	  or diag("ft: " . substr($out, 0, 300) . "\nh:  " . substr($want, 0, 300));
	return $dt;
}

1;
