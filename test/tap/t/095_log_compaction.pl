# Log compaction (issue 12 item 2): after log_snapshot(pool), compact_log(pool)
# deletes the log objects the snapshot supersedes (with their markers) from
# the providers.  Recovery into a fresh database from the snapshot and the
# later log gives exactly the writer's rows and blob bytes, and a read-only
# follower that had not followed the last changes before the compaction
# (its followed log objects vanished) rebuilds from the compacted log.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($a, $akey) = DestorTest::start_cluster('compact_writer');
my ($b, $bkey) = DestorTest::start_cluster('compact_reader');
copy($akey, $bkey) or die;
chmod 0600, $bkey;
my ($sql, @dirs) = DestorTest::file_pool_sql($a->basedir, 'p', 3, 2, 1);
$a->safe_psql('postgres', $sql);
$b->safe_psql('postgres', $sql . "ALTER SERVER p OPTIONS (ADD mode 'read_only');");
$b->safe_psql('postgres', 'CREATE DATABASE rec');
$b->safe_psql('rec', 'CREATE EXTENSION destor');
$b->safe_psql('rec', $sql);

sub log_objects
{
	my %ids;
	for my $f (map { DestorTest::files_under($_) } @dirs)
	{
		$ids{$1} = 1 if $f =~ m{/meta/[0-9a-f-]{36}/([0-9a-f]{16}-[0-9a-f]{32})\.};
	}
	return scalar(keys %ids);
}
my $t_query = q{SELECT count(*) || ':' || coalesce(sum(id), 0) || ':' || coalesce(md5(string_agg(id || v, ',' ORDER BY id)), '') FROM app.t};
my $blobs_query = q{SELECT string_agg(name || '=' || convert_from(destor.blob_get(b::destor.blob), 'UTF8'), ',' ORDER BY name) FROM (VALUES %s) h(name, b)};

# --- a history of many small transactions -----------------------------------------------------
$a->safe_psql('postgres', q{
CREATE SCHEMA app;
CREATE FOREIGN TABLE app.t (id int, v text) SERVER p;
CREATE FOREIGN TABLE app.u (id int) SERVER p;
CREATE TABLE handles (name text PRIMARY KEY, b destor.blob);
});
$a->safe_psql('postgres', "INSERT INTO app.t SELECT i, 'r$_ ' || i FROM generate_series($_ * 10, $_ * 10 + 9) i") for 1 .. 5;
$a->safe_psql('postgres', "INSERT INTO handles VALUES ('b$_', destor.blob_put('p', convert_to('blob $_', 'UTF8')))") for 1 .. 4;
$a->safe_psql('postgres', q{INSERT INTO app.u SELECT generate_series(1, 20)});

# the follower starts following here
$b->safe_psql('postgres', q{SELECT * FROM destor.recover_catalog('p')});
$b->safe_psql('postgres', q{CREATE SCHEMA app; IMPORT FOREIGN SCHEMA app FROM SERVER p INTO app});
is($b->safe_psql('postgres', $t_query), $a->safe_psql('postgres', $t_query), 'the follower starts in step');

# changes it does not follow before the compaction: deletions among them
$a->safe_psql('postgres', q{
DELETE FROM app.t WHERE id % 3 = 0;
SELECT destor.blob_delete(b) FROM handles WHERE name = 'b2';
DELETE FROM handles WHERE name = 'b2';
});
$a->safe_psql('postgres', q{TRUNCATE app.u});
$a->safe_psql('postgres', q{INSERT INTO app.t VALUES (1000, 'before the snapshot')});

# --- snapshot, then compaction -------------------------------------------------------------------
my $before = log_objects();
my ($rc, $out, $err) = $a->psql('postgres', q{SELECT destor.compact_log('p')});
like($err, qr/has no snapshot to compact to/, 'compact_log without a snapshot deletes nothing and says why');
is(log_objects(), $before, 'and the log is untouched');
$a->safe_psql('postgres', q{SELECT destor.log_snapshot('p')});
my $deleted = $a->safe_psql('postgres', q{SELECT destor.compact_log('p')});
cmp_ok($deleted, '>=', 10, "compact_log deletes the superseded log objects ($deleted)");
my $after = log_objects();
cmp_ok($after, '<', $before - 5, "the number of log objects on the providers drops ($before -> $after)");
is($after, $before + 1 - $deleted, 'exactly the deleted ones went');
cmp_ok(scalar(grep { m{/meta/[0-9a-f-]{36}/.*\.commit$} } map { DestorTest::files_under($_) } @dirs), '>=', 2,
	'the snapshot keeps its commit markers (m + 1)');
is($a->safe_psql('postgres', q{SELECT destor.compact_log('p')}), '0', 'a second compaction has nothing left');

# the writer goes on after the compaction
$a->safe_psql('postgres', q{
INSERT INTO app.t VALUES (2000, 'after the snapshot');
INSERT INTO handles VALUES ('b5', destor.blob_put('p', convert_to('blob 5', 'UTF8')));
});
my $handles = join(',', map { my ($n, $h) = split /\|/; "('$n', '$h')" }
	split /\n/, $a->safe_psql('postgres', q{SELECT name, b::text FROM handles ORDER BY name}));
my $bq = sprintf($blobs_query, $handles);
my $want_blobs = $a->safe_psql('postgres', $bq);
is($want_blobs, 'b1=blob 1,b3=blob 3,b4=blob 4,b5=blob 5', 'the writer\'s blobs');

# --- recovery from the compacted log -------------------------------------------------------------
my $report = $b->safe_psql('rec', q{SELECT detail FROM destor.recover_catalog('p', adopt => false) WHERE kind = 'log'});
like($report, qr/^\d+ log objects replayed/, "a fresh database recovers from the compacted log ($report)");
$b->safe_psql('rec', q{CREATE SCHEMA app; IMPORT FOREIGN SCHEMA app FROM SERVER p INTO app});
is($b->safe_psql('rec', $t_query), $a->safe_psql('postgres', $t_query), 'recovered rows are the writer\'s');
is($b->safe_psql('rec', q{SELECT count(*) FROM app.u}), '0', 'the truncate before the snapshot holds');
is($b->safe_psql('rec', $bq), $want_blobs, 'recovered blobs have the writer\'s bytes');

# --- the follower rebuilds from the compacted log -----------------------------------------------
my $applied = $b->safe_psql('postgres', q{SELECT destor.follow_pool('p')});
cmp_ok($applied, '>=', 2, "the follower replays the snapshot and what followed ($applied)");
is($b->safe_psql('postgres', $t_query), $a->safe_psql('postgres', $t_query),
	'the follower shows the writer\'s rows, deletions made before the compaction included');
is($b->safe_psql('postgres', q{SELECT count(*) FROM app.u}), '0', 'and the truncate');
is($b->safe_psql('postgres', $bq), $want_blobs, 'and the writer\'s blobs');
is($b->safe_psql('postgres', q{SELECT count(*) FROM destor.blobs}), '4', 'the blob deleted before the compaction is gone');

$a->stop;
$b->stop;
done_testing();
