# repair() asks every provider holding a shard, so it is a check of them as
# check_provider() is: destor.provider_status shows its verdict (last_check,
# last_check_ok, and down at once for a provider it could not reach; no
# longer down once it answers again), for dry runs too.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('repair_state',
	conf => "autovacuum = off\ndestor.provider_down_interval = '1h'\n");
my $base = $node->basedir;
my ($sql, @dirs) = DestorTest::file_pool_sql($base, 'archive', 3, 2, 1);
$node->safe_psql('postgres', $sql);
$node->safe_psql('postgres', q{
CREATE TABLE docs AS
  SELECT g, destor.blob_put('archive', convert_to(repeat('doc ' || g, 5000), 'UTF8')) AS b
    FROM generate_series(1, 4) g;
SELECT destor.provider_stats_reset();
});

sub status
{
	my ($prov) = @_;
	return $node->safe_psql('postgres', qq{
SELECT state || '/' || coalesce(last_check_ok::text, 'never') || '/' || (last_check IS NOT NULL)
  FROM destor.provider_status WHERE provider = '$prov'});
}

sub last_check
{
	my ($prov) = @_;
	return $node->safe_psql('postgres',
		"SELECT extract(epoch FROM last_check) FROM destor.provider_status WHERE provider = '$prov'");
}

is(status('f1'), 'up/never/false', 'before any check, no provider has a last check');

# --- a provider whose directory is gone: unreachable
rename($dirs[2], "$dirs[2].away") or die "cannot move $dirs[2]: $!";
my $rows = $node->safe_psql('postgres',
	q{SELECT string_agg(DISTINCT provider || ':' || problem, ',') FROM destor.repair('archive', dry_run => true)});
is($rows, 'f3:unreachable', 'repair(dry_run) finds the shards of f3 unreachable');
is(status('f3'), 'down/false/true', 'provider_status shows f3 down, its last check failed');
is(status('f1'), 'up/true/true', 'and f1, which answered, up with a passed check');
is(status('f2'), 'up/true/true', 'and f2 too');
is($node->safe_psql('postgres', q{SELECT bool_and(length(destor.blob_get(b)) > 0) FROM docs}), 't',
	'every blob reads back from the other two providers');

# --- it comes back: repair (a real one) sees it answer
rename("$dirs[2].away", $dirs[2]) or die "cannot move back $dirs[2]: $!";
my $before = last_check('f3');
sleep 1;
is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.repair('archive')}), '0',
	'once f3 is back, repair finds every shard fine');
isnt(status('f3') =~ /^down/ ? 'down' : 'not down', 'down', 'provider_status no longer shows f3 down');
like(status('f3'), qr{/true/true$}, 'its last check passed');
cmp_ok(last_check('f3'), '>', $before, 'and it is the check repair just made');

# --- a provider that refuses access (its directory is there, not readable):
# a failed check too
SKIP:
{
	skip 'root reads a directory whatever its mode', 3 if $> == 0;
	$node->safe_psql('postgres', 'SELECT destor.provider_stats_reset()');
	chmod(0, $dirs[1]) or die "cannot chmod $dirs[1]: $!";
	my $found = $node->safe_psql('postgres',
		q{SELECT string_agg(DISTINCT provider || ':' || problem, ',') FROM destor.repair('archive', dry_run => true)});
	chmod(0755, $dirs[1]);
	is($found, 'f2:unreachable', 'repair(dry_run) cannot read the shards of f2');
	is(status('f2'), 'down/false/true', 'provider_status shows f2 down, its last check failed');
	is($node->safe_psql('postgres', q{SELECT count(*) FROM destor.repair('archive', dry_run => true)}), '0',
		'with access back, repair(dry_run) finds all well');
}
like(status('f2'), qr{^(up|degraded)/true/true$}, 'and provider_status shows f2 answering again');

$node->stop;
done_testing();
