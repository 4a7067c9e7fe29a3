# Breaking self-describing pools (issue 12) from the outside: what the docs
# promise, attacked as a hostile DBA, a second server and a lying provider.
#
# Writer A logs blobs and tables (one renamed, one dropped, rows deleted) to a
# pool of three file providers (2 + 1).  Reader B, with A's master key:
#  - recover_catalog twice gives the same catalog (idempotent replay), and a
#    recovery after log compaction gives the same catalog as before it;
#  - a provider serving an old copy of the log (its meta/ replaced by an
#    earlier snapshot) does not resurrect anything the writer deleted;
#  - a log object truncated on every provider is counted unreadable, not
#    replayed into wrong rows;
#  - destor-export lists a renamed table under its new name and exports it
#    as COPY does; a pool name the providers do not hold is refused.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use File::Copy qw(copy);
use File::Path qw(remove_tree make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($a, $akey) = DestorTest::start_cluster('brk_writer', conf => "timezone = 'UTC'\n");
my ($b, $bkey) = DestorTest::start_cluster('brk_reader', conf => "timezone = 'UTC'\n");
copy($akey, $bkey) or die;
chmod 0600, $bkey;
$b->reload;
my ($sql, @dirs) = DestorTest::file_pool_sql($a->basedir, 'p', 3, 2, 1);
$a->safe_psql('postgres', $sql);

# a catalog fingerprint: every row of every catalog table the log rebuilds
# (updated_at of table_definitions is the local time of the replay, by design)
my %cat = (objects => 't', shards => 't',
	blobs => '(t.blob_id, t.owner, t.created_at, t.pack_id, t.pack_offset, t.pack_length, t.sha256)', segments => 't', deletions => 't',
	table_definitions => '(t.table_id, t.pool, t.definition)');
my $cat_query = join(" UNION ALL ", map {
	"SELECT '$_', count(*), md5(coalesce(string_agg($cat{$_}::text, ',' ORDER BY $cat{$_}::text), '')) FROM destor.$_ t"
} sort keys %cat);
sub catalog { my ($node, $db) = @_; return $node->safe_psql($db, $cat_query); }

$a->safe_psql('postgres', q{
CREATE SCHEMA app;
CREATE TABLE handles (name text PRIMARY KEY, b destor.blob);
CREATE FOREIGN TABLE app.t (id int, v text) SERVER p;
INSERT INTO app.t SELECT i, CASE WHEN i % 4 = 0 THEN NULL ELSE 'say "hi",' || E'\n' || i END FROM generate_series(1, 200) i;
CREATE FOREIGN TABLE app.old_name (k int, v text) SERVER p;
INSERT INTO app.old_name VALUES (1, 'one'), (2, NULL), (3, '');
CREATE FOREIGN TABLE app.dropped (x int) SERVER p;
INSERT INTO app.dropped VALUES (1);
INSERT INTO handles SELECT 'keep', destor.blob_put('p', 'kept');
INSERT INTO handles SELECT 'doomed', destor.blob_put('p', 'to be deleted');
CREATE ROLE analyst;
SELECT destor.blob_grant(b, 'analyst', 'SELECT') FROM handles WHERE name = 'keep';
});

# a lying provider's material: p1's log as it is now, before the deletions
my $stale = $a->basedir . '/stale_meta';
sub copy_tree
{
	my ($from, $to) = @_;
	for my $f (DestorTest::files_under($from))
	{
		(my $rel = $f) =~ s{^\Q$from\E}{};
		(my $dir = "$to$rel") =~ s{/[^/]+$}{};
		make_path($dir);
		copy($f, "$to$rel") or die "copy $f: $!";
	}
}
copy_tree("$dirs[0]/meta", $stale);

$a->safe_psql('postgres', q{
DELETE FROM app.t WHERE id % 3 = 0;
SELECT destor.blob_delete(b) FROM handles WHERE name = 'doomed';
DELETE FROM handles WHERE name = 'doomed';
DROP FOREIGN TABLE app.dropped;
ALTER FOREIGN TABLE app.old_name RENAME TO renamed;
});
my $t_query = q{SELECT count(*) || ':' || md5(string_agg(id || ':' || coalesce(v, '<null>'), ',' ORDER BY id)) FROM app.t};
my $t_expect = $a->safe_psql('postgres', $t_query);
my $catalog_a = catalog($a, 'postgres');

# ------------------------------------------------ recover twice: same catalog
$b->safe_psql('postgres', $sql);
my $r1 = $b->safe_psql('postgres', q{SELECT kind, count(*) FROM destor.recover_catalog('p', adopt => false) GROUP BY 1 ORDER BY 1});
my $cat1 = catalog($b, 'postgres');
my $r2 = $b->safe_psql('postgres', q{SELECT kind, count(*) FROM destor.recover_catalog('p', adopt => false) GROUP BY 1 ORDER BY 1});
is($cat1, $catalog_a, 'the recovered catalog is the writer\'s');
is($b->safe_psql('postgres', 'SELECT blob_id, sha256 FROM destor.blobs ORDER BY 1'),
		$a->safe_psql('postgres', 'SELECT blob_id, sha256 FROM destor.blobs ORDER BY 1'),
		'a recovered blob keeps its SHA-256 (blob_sha256, blob_verify)');
$b->safe_psql('postgres', 'CREATE ROLE analyst');
TODO: {
	local $TODO = 'blob grants are not in the log (breaker12 finding 3)';
	my $acl_query = q{SELECT string_agg(blob_id || ' ' || coalesce(acl::text, '-'), ',') FROM destor.blobs};
	is($b->safe_psql('postgres', $acl_query), $a->safe_psql('postgres', $acl_query), 'a recovered blob keeps its grants');
}
is($r2, $r1, 'a second recover_catalog reports what the first did');
is(catalog($b, 'postgres'), $cat1, '... and leaves the same catalog rows (idempotent replay)');
$b->safe_psql('postgres', q{CREATE SCHEMA app; IMPORT FOREIGN SCHEMA app FROM SERVER p INTO app});
is($b->safe_psql('postgres', $t_query), $t_expect, 'the recovered table returns the writer\'s rows');
is($b->safe_psql('postgres', q{SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'app'::regnamespace}),
	'renamed,t', 'the renamed table comes back under its new name; the dropped one does not');
my ($rc, $out, $err) = $b->psql('postgres', q{IMPORT FOREIGN SCHEMA app LIMIT TO (t) FROM SERVER p INTO app});
like($err, qr/already exists/, 'importing a table twice is a clear error');

# ------------------------- a provider serves an old copy of the pool's log
sub recover_fresh
{
	my ($db) = @_;
	$b->safe_psql('postgres', "DROP DATABASE IF EXISTS $db");
	$b->safe_psql('postgres', "CREATE DATABASE $db");
	$b->safe_psql($db, 'CREATE EXTENSION destor');
	$b->safe_psql($db, $sql);
	return $b->psql($db, q{SELECT kind, coalesce(name, ''), detail FROM destor.recover_catalog('p', adopt => false) ORDER BY 1, 2});
}
rename("$dirs[0]/meta", "$dirs[0]/meta.real") or die;
copy_tree($stale, "$dirs[0]/meta");
($rc, $out, $err) = recover_fresh('stale');
is($rc, 0, 'recovery with one provider serving an old log succeeds') or diag($err);
is(catalog($b, 'stale'), $cat1, '... and gives the same catalog: nothing deleted comes back');
remove_tree("$dirs[0]/meta");
rename("$dirs[0]/meta.real", "$dirs[0]/meta") or die;

# ------------------------------- a log object truncated on every provider
my @log_files = grep { m{/meta/[0-9a-f-]{36}/[0-9a-f]{16}-[0-9a-f]{32}\.\d+$} } map { DestorTest::files_under($_) } @dirs;
my ($last_seq) = reverse sort map { m{/([0-9a-f]{16})-[0-9a-f]{32}\.\d+$} } @log_files;
my @victims = grep { m{/\Q$last_seq\E-[0-9a-f]{32}\.\d+$} } @log_files;
my %saved;
for my $f (@victims)
{
	$saved{$f} = slurp_file($f);
	open(my $fh, '+<:raw', $f) or die;
	truncate($fh, int(length($saved{$f}) / 2));
	close $fh;
}
is(scalar(@victims), 3, 'the newest log object has a shard on each provider, each cut in half');
($rc, $out, $err) = recover_fresh('trunc');
note("rc $rc\n$out\n$err");
if ($rc == 0)
{
	like($out, qr/^log\|[0-9a-f-]{36}\|.*[1-9]\d* unreadable/m, 'a truncated log object is counted unreadable');
}
else
{
	like($err, qr/log object|truncated|unreadable|corrupt/i, 'a truncated log object is a clear error');
}
for my $f (@victims)
{
	open(my $fh, '>:raw', $f) or die;
	print $fh $saved{$f};
	close $fh;
}

# ------------------- a commit marker without its log object (a lying provider)
my @markers = grep { m{/\Q$last_seq\E-[0-9a-f]{32}\.commit$} } map { DestorTest::files_under($_) } @dirs;
my $next_seq = sprintf('%016x', hex($last_seq) + 1);
my @forged;
for my $m (@markers)
{
	(my $f = $m) =~ s{/\Q$last_seq\E-[0-9a-f]{32}\.commit$}{/$next_seq-0123456789abcdef0123456789abcdef.commit};
	copy($m, $f) or die;
	push @forged, $f;
}
ok(@forged > 0, 'markers of a log object that does not exist are planted');
($rc, $out, $err) = recover_fresh('marker');
is($rc, 0, 'recovery with a marker but no log object succeeds') or diag($err);
is(catalog($b, 'marker'), $cat1, '... and recovers exactly the writer\'s catalog');
note($out);
unlink @forged;

# ------------------------------------- compaction, then the same catalog
$a->safe_psql('postgres', q{SELECT destor.log_snapshot('p')});
$a->safe_psql('postgres', q{SELECT destor.compact_log('p')});
($rc, $out, $err) = recover_fresh('compacted');
is($rc, 0, 'recovery after compaction succeeds') or diag($err);
my $cat_c = catalog($b, 'compacted');
is($cat_c, catalog($a, 'postgres'), 'after compaction, recovery gives exactly the writer\'s catalog');

# --------------------------------------------------------------- export
$a->safe_psql('postgres', "COPY (SELECT * FROM app.renamed) TO '" . $a->basedir . "/renamed.csv' (FORMAT csv, HEADER)");
my @export = ('destor-export', "--master-key=$akey", (map { "--provider=file:$_" } @dirs), '--pool=p');
my ($stdout, $stderr);
IPC::Run::run([@export, 'ls'], '>', \$stdout, '2>', \$stderr);
is($? >> 8, 0, 'export ls exits 0') or diag($stderr);
like($stdout, qr/^table app\.renamed \(k integer, v text\) rows 3 /m, 'export lists a renamed table under its new name');
unlike($stdout, qr/old_name|app\.dropped/, '... and neither its old name nor a dropped table');
IPC::Run::run([@export, 'table', 'app.renamed'], '>', \$stdout, '2>', \$stderr);
is($stdout, slurp_file($a->basedir . '/renamed.csv'), 'the renamed table exports as COPY wrote it (NULL vs empty)');
IPC::Run::run([@export, 'table', 'app.old_name'], '>', \$stdout, '2>', \$stderr);
isnt($? >> 8, 0, 'the old name of a renamed table is not exported');

$a->stop;
$b->stop;
done_testing();
