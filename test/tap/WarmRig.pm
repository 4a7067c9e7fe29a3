# The rig of the warm-connection files (t/182_*, t/184_*): six s3rver behind
# the WAN emulator (20 ms each way, 50 MB/s), a 4+2 pool p42, a 3 MB blob
# imported from a file; a new session's reads of it, and which of them
# went out on connections made before the session (destor.warm_connections,
# conn_keeper.c).
package WarmRig;

use strict;
use warnings;
use DestorTest;
use Test::More;

# Returns { node, wan, base, names, blob, file }; a file that moves the
# providers to another proxy sets {wan} to it.
sub start
{
	my ($name) = @_;
	my $rig = DestorTest::wan_rig($name, 6, delays => [ (20) x 6 ], mbps => 50, pool => [ 'p42', 4, 2 ]);
	my $w = { %$rig, names => [ map { $_->{name} } @{ $rig->{s3} } ] };
	$w->{file} = "$w->{base}/in.bin";
	DestorTest::write_random_file($w->{file}, 3 * 1024 * 1024 + 777);
	$w->{blob} = $w->{node}->safe_psql('postgres', "SELECT destor.blob_import('p42', '$w->{file}')");
	return $w;
}

# A new session's reads (cache off: every read goes to the providers),
# each compared with the file; then, per provider asked, whether its first
# GET went out on a connection accepted before the session (the proxy
# numbers each provider's connections in order).  Returns (warm, cold):
# providers first asked on such a connection, and on one of its own.
sub session_reads
{
	my ($w, $name) = @_;
	my ($node, $wan, $base, $blob, $file) = @$w{qw(node wan base blob file)};
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

# Connections each provider's proxy accepted between two stats, the most
# of any provider (of @which, default all), and how many it closed for
# idleness.
sub accepted_between
{
	my ($w, $a, $b, @which) = @_;
	my ($most, $idle) = (0, 0);
	for my $p (@which ? @which : @{ $w->{names} })
	{
		my $d = $b->{$p}{connections} - $a->{$p}{connections};
		$most = $d if $d > $most;
		$idle += ($b->{$p}{idle_closed} // 0) - ($a->{$p}{idle_closed} // 0);
	}
	return ($most, $idle);
}

# Every provider's errors + retries, in the order of names.
sub errors
{
	my ($w) = @_;
	return [ map { $w->{node}->safe_psql('postgres', "SELECT errors + retries FROM destor.provider_status WHERE provider = '$_'") }
		  @{ $w->{names} } ];
}

# The providers moved to a new WAN proxy with %opts (the old one left up:
# what it holds is the keeper's to let go).
sub move_to_proxy
{
	my ($w, %opts) = @_;
	$w->{wan} = DestorTest::start_wan_proxy($w->{base}, $w->{s3}, delays => [ (20) x 6 ], mbps => 50, %opts);
	$w->{node}->safe_psql('postgres', join('', map {
		"ALTER SERVER $w->{names}[$_] OPTIONS (SET endpoint 'http://127.0.0.1:$w->{wan}{ports}[$_]');\n" }
		  0 .. $#{ $w->{names} }));
}

1;
