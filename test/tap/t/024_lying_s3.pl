# A provider that lies over S3: a loopback proxy in front of one s3rver
# inverts a byte in the middle of GET answers (FaultProxy 'flip'), whole
# bodies with the right lengths, so only the chunk tags can notice.  Reads
# stay exact while up to m providers lie, the liar is counted in
# provider_status.bad_chunks (and no honest provider is), and more liars
# than m give an error, never wrong bytes.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node) = DestorTest::start_cluster('lying_s3');
my $base = $node->basedir;
my @s3 = DestorTest::start_s3_servers(4, $base);
my @proxies;
for my $i (0 .. $#s3)
{
	my $proxy = FaultProxy::start($s3[$i]{port}, "$base/faults_$i", $s3[$i]{dir});
	push @proxies, $proxy;
	$s3[$i] = { %{ $s3[$i] }, port => $proxy->{port} };
}
# 2 + 2 over four providers: every object has a shard on each
$node->safe_psql('postgres', DestorTest::providers_sql('archive', 2, 2, @s3));
$node->safe_psql('postgres', q{
SET destor.provider_down_interval = 0;
-- twelve blobs, so that every provider holds data shards of some of them
CREATE TABLE src AS SELECT g AS id, decode(string_agg(md5(i::text || g::text), ''), 'hex') AS data
  FROM generate_series(1, 12) g, generate_series(1, 5000 * g) i GROUP BY g;   -- 80 KB to 1 MB
CREATE TABLE stored AS SELECT id, destor.blob_put('archive', data) AS b FROM src;
});
my $exact = "SET destor.provider_down_interval = 0; SELECT bool_and(destor.blob_get(b) = data) FROM stored JOIN src USING (id)";

sub lie
{
	my ($count, @which) = @_;
	FaultProxy::set_faults($_->{control}, '') for @proxies;
	FaultProxy::set_faults($proxies[$_]{control}, "flip $count GET\n") for @which;
}

sub bad_chunks
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(provider || '=' || (bad_chunks > 0), ' ' ORDER BY provider) FROM destor.provider_status");
}

is(bad_chunks(), 's1=false s2=false s3=false s4=false', 'no provider has served a bad chunk yet');

# --- one data-shard provider lies on every GET ------------------------------
lie(1000, 0);
is($node->safe_psql('postgres', $exact), 't', 'one provider inverting bytes in every answer: every blob reads back exactly');
cmp_ok(FaultProxy::injected($proxies[0]{control}, 'flip'), '>', 0, 'the proxy did lie');
is(bad_chunks(), 's1=true s2=false s3=false s4=false', 'provider_status counts bad chunks against the liar only');

# --- two liars (m = 2) ------------------------------------------------------
lie(1000, 0, 1);
is($node->safe_psql('postgres', $exact), 't', 'both data-shard providers lying: every blob is rebuilt from parity, exactly');
is(bad_chunks(), 's1=true s2=true s3=false s4=false', 'and both are counted');

# --- three liars (more than m) ----------------------------------------------
lie(1000, 0, 1, 2);
my ($ret, $out, $err) = $node->psql('postgres', $exact);
isnt($ret, 0, 'three liars of four: the read fails');
isnt($out, 'f', 'and never returns wrong bytes');
like($err, qr/could not read object/, 'with an error saying the object could not be read');

# --- a scrub over S3 finds the liar -----------------------------------------
lie(1000, 3);
my $found = $node->safe_psql('postgres',
	"SELECT string_agg(DISTINCT provider || ' ' || problem, ', ') FROM destor.repair(verify => true, dry_run => true)");
is($found, 's4 corrupt', 'repair(verify) over S3 names the lying provider as corrupt, and only it');

lie(0);
is($node->safe_psql('postgres', $exact), 't', 'honest again: everything reads back');

FaultProxy::stop($_) for @proxies;
DestorTest::stop_s3($_) for @s3;
$node->stop;
done_testing();
