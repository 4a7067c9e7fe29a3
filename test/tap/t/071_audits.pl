# Audits (issue 13, item 5): destor.audit() spot-checks random chunks on
# every provider, and the maintenance worker runs it every round.  Nine file
# providers in three geos and three operators; one of them silently loses
# its data (its shard files deleted, its directory left): it fails its
# audits, destor.provider_status shows it, the others pass theirs, and a
# provider that cannot be asked at all is unavailable, not failing.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Path qw(remove_tree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('audits',
	conf => "autovacuum = off\ndestor.provider_down_interval = '1h'\n");
my $base = $node->basedir;
my ($sql, @dirs) = DestorTest::file_pool_sql($base, 'archive', 9, 4, 2);
$node->safe_psql('postgres', $sql);
my @geo = qw(EU US CH);
for my $i (1 .. 9)
{
	my $g = $geo[($i - 1) % 3];
	my $op = 'op' . int(($i - 1) / 3);
	$node->safe_psql('postgres', "ALTER SERVER f$i OPTIONS (ADD geo '$g', ADD operator '$op')");
}
$node->safe_psql('postgres', q{
CREATE TABLE docs AS
  SELECT g, md5(repeat('doc ' || g, 30000)) AS sum,
         destor.blob_put('archive', convert_to(repeat('doc ' || g, 30000), 'UTF8')) AS b
    FROM generate_series(1, 30) g;
SELECT destor.provider_stats_reset();
});

sub sq { return $node->safe_psql('postgres', $_[0]); }

sub audit_counts
{
	my ($prov) = @_;
	return sq(qq{SELECT audits_passed || '/' || audits_failed || '/' || audits_unavailable
	              || '/' || (last_audit IS NOT NULL) || '/' || audit_failing
	              FROM destor.provider_status WHERE provider = '$prov'});
}

is(audit_counts('f5'), '0/0/0/false/false', 'before any audit a provider has none');
is(sq(q{SELECT count(*) FROM destor.shards WHERE provider = 'f5'}) > 0 ? 1 : 0, 1,
	'f5 holds shards');

# --- all providers healthy: every audit passes, the budget is kept
my $rows = sq(q{SELECT count(*), count(*) FILTER (WHERE ok), count(DISTINCT provider)
                 FROM destor.audit('archive', 36)});
is($rows, '18|18|9', 'audit(max_requests 36): 18 checks of two requests, all passed, on all 9 providers');
is(sq(q{SELECT count(*) FROM destor.audit('archive', 1)}), '0', 'a budget below one check checks nothing');
like(audit_counts('f1'), qr{^2/0/0/true/false$}, 'provider_status counts the passed audits of f1');

# --- f5 silently loses its data (directory kept: it still answers)
my @lost = DestorTest::files_under($dirs[4]);
ok(@lost > 0, 'f5 has shard files on disk');
unlink(@lost) == scalar(@lost) or die "cannot delete shards of f5";
$rows = sq(q{SELECT provider, bool_and(ok), count(*) FILTER (WHERE ok IS NULL),
                   min(detail) FILTER (WHERE NOT ok)
              FROM destor.audit('archive', 90) GROUP BY provider ORDER BY provider});
my %res = map { my @c = split /\|/; ($c[0] => [@c[1 .. 3]]) } split /\n/, $rows;
is($res{f5}[0], 'f', 'f5 fails its audits');
like($res{f5}[2] // '', qr/not found/, 'and the detail says its shard is not found');
is(scalar(grep { $_ ne 'f5' && $res{$_}[0] eq 't' } keys %res), 8, 'the 8 other providers pass theirs');
sq(q{SELECT count(*) FROM destor.audit('archive', 90)}) for 1 .. 2;
like(audit_counts('f5'), qr{^2/15/0/true/true$},
	'after three audits provider_status shows f5 with 15 failed audits (and its 2 passed before), failing');
is(sq(q{SELECT string_agg(provider, ',') FROM destor.provider_status
        WHERE audits_failed > 0 OR audit_failing}), 'f5', 'no other provider failed any audit');
is(sq(q{SELECT count(*) FROM destor.provider_status WHERE provider <> 'f5' AND audits_passed >= 15}), '8',
	'the others passed all of theirs');

# --- new objects avoid a failing provider
my $on_f5 = sq(q{SELECT count(*) FROM destor.shards WHERE provider = 'f5'});
sq(q{CREATE TABLE newdocs AS
       SELECT g, md5(repeat('new ' || g, 20000)) AS sum,
              destor.blob_put('archive', convert_to(repeat('new ' || g, 20000), 'UTF8')) AS b
         FROM generate_series(1, 20) g});
is(sq(q{SELECT count(*) FROM destor.shards WHERE provider = 'f5'}), $on_f5,
	'20 new blobs (120 shards on 8 of 9 providers): none on failing f5');
is(scalar(DestorTest::files_under($dirs[4])), 0, 'and nothing was written to its folder');

# --- a provider that cannot be asked is unavailable, not failing; the
# time it could not be asked joins its reputation once it answers again
rename($dirs[6], "$dirs[6].away") or die "cannot move $dirs[6]: $!";
$rows = sq(q{SELECT count(*), count(*) FILTER (WHERE ok IS NULL)
              FROM destor.audit('archive', 90) WHERE provider = 'f7'});
is(sq(q{SELECT state FROM destor.provider_status WHERE provider = 'f7'}), 'down', 'f7 shows as down');
sleep 2;
sq(q{SELECT count(*) FROM destor.audit('archive', 90)});
rename("$dirs[6].away", $dirs[6]) or die "cannot move back $dirs[6]: $!";
is($rows, '5|5', 'f7 with its directory gone: its checks are unavailable (ok NULL)');
like(audit_counts('f7'), qr{^17/0/10/true/false$}, 'counted as unavailable, not as failed audits');
sq(q{SELECT count(*) FROM destor.audit('archive', 90)});
is(sq(q{SELECT state <> 'down' AND unavailable_time >= '2s' AND unavailable_time < '1 min'
         FROM destor.provider_status WHERE provider = 'f7'}), 't',
	'f7 answers again; provider_status keeps its outage (2 s between its first and last failure) in unavailable_time');
is(sq(q{SELECT string_agg(provider, ',') FROM destor.provider_status WHERE unavailable_time > '0'}), 'f7',
	'no other provider has unavailable time');

# --- the budget in bytes: a round reads at most max_bytes from the providers
sub bytes_read { return sq(q{SELECT sum(bytes_read) FROM destor.provider_status}); }
my $b0 = bytes_read();
my $unlimited = sq(q{SELECT count(*) FROM destor.audit('archive', 90) WHERE provider <> 'f5'});
my $spent = bytes_read() - $b0;
cmp_ok($unlimited, '>=', 30, 'without a byte budget, a check per provider and more are made');
my $budget = int($spent / 4);
$b0 = bytes_read();
my $limited = sq(qq{SELECT count(*) FROM destor.audit('archive', 90, $budget)});
my $spent_limited = bytes_read() - $b0;
cmp_ok($spent_limited, '<=', $budget, "with max_bytes $budget, no more is read ($spent_limited bytes)");
ok($limited > 0 && $limited < 45, "and fewer checks are made ($limited)");
is(sq(q{SELECT count(*) FROM destor.audit('archive', 90, 10)}), '0', 'a byte budget below one check checks nothing');
my ($ret_b, $out_b, $err_b) = $node->psql('postgres', q{SELECT * FROM destor.audit('archive', 90, -1)});
like($err_b, qr/max_bytes must not be negative/, 'a negative byte budget is refused');

# --- only superusers may audit
sq(q{CREATE ROLE auditor LOGIN});
my ($ret, $out, $err) = $node->psql('postgres', q{SELECT * FROM destor.audit()},
	extra_params => [ '-U', 'auditor' ]);
like($err, qr/permission denied for function audit/, 'a plain role may not run destor.audit()');

# --- every blob still reads back exactly
is(sq(q{SELECT count(*) FROM docs WHERE md5(convert_from(destor.blob_get(b), 'UTF8')) = sum}), '30',
	'every blob reads back exactly');

# --- the pool option that evacuates failing providers
($ret, $out, $err) = $node->psql('postgres', q{ALTER SERVER archive OPTIONS (ADD evacuate_failing 'maybe')});
like($err, qr/invalid value for option "evacuate_failing"/, 'evacuate_failing takes a boolean');

# --- the maintenance worker audits every round (before repairing), and
# with evacuate_failing moves the shards of a failing provider away
sq(q{SELECT count(*) FROM destor.repair('archive')});
sq(q{SELECT destor.provider_stats_reset()});
@lost = DestorTest::files_under($dirs[4]);
ok(@lost > 0, 'repair put f5 shards back');
unlink(@lost) == scalar(@lost) or die "cannot delete shards of f5";
sq(q{ALTER SERVER archive OPTIONS (ADD evacuate_failing 'on')});
sq(q{ALTER SYSTEM SET destor.audit_requests_per_round = 90;
    ALTER SYSTEM SET destor.maintenance_naptime = '1s'; SELECT pg_reload_conf()});
ok($node->poll_query_until('postgres',
		q{SELECT audits_failed > 0 FROM destor.provider_status WHERE provider = 'f5'}),
	'the maintenance worker audits f5 and finds it failing its audits');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 8 FROM destor.provider_status WHERE provider <> 'f5' AND audits_passed > 0}),
	'and audits the other providers too');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM destor.shards WHERE provider = 'f5'}),
	'the worker moves every shard off failing f5');
sq(q{ALTER SYSTEM SET destor.maintenance_naptime = 0; SELECT pg_reload_conf()});
is(sq(q{SELECT count(*) FROM destor.shards WHERE provider = 'f5'}), '0', 'f5 holds no shard any more');
is(sq(q{SELECT count(*) FROM (SELECT object_id FROM destor.shards GROUP BY 1 HAVING count(DISTINCT provider) = 6) x}),
	sq(q{SELECT count(*) FROM destor.objects}), 'every object still has its 6 shards on 6 providers');
is(sq(q{SELECT count(*) FROM docs WHERE md5(convert_from(destor.blob_get(b), 'UTF8')) = sum}) . '/'
	. sq(q{SELECT count(*) FROM newdocs WHERE md5(convert_from(destor.blob_get(b), 'UTF8')) = sum}),
	'30/20', 'every blob reads back exactly');
is(sq(q{SELECT count(*) FROM destor.repair('archive', verify => true, dry_run => true)}), '0',
	'and a verifying repair finds every shard good');

$node->stop;
done_testing();
