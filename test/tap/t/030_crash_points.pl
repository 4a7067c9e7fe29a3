# Crash points: kill -9 the backend (and sometimes the whole cluster) at
# random points of every kind of write destor does — COPY, INSERT,
# UPDATE/DELETE into a destor table, blob_put, blob_import, blob_delete,
# tier_partition/recall_partition, compact, move_shards, repair — and check
# after each restart that
#   - every committed row and blob is intact and nothing uncommitted shows:
#     each workload writes a heap mirror in the same transaction (rows), or
#     records the md5 of each blob in the row that holds it;
#   - the catalog holds no object that nothing references;
#   - cleanup_orphans(pool, '0') leaves exactly the shard files the catalog
#     places (and no temp file), and on S3 no multipart upload: the S3
#     providers sit behind FaultProxy, which answers ListMultipartUploads and
#     AbortMultipartUpload (s3rver has neither), and one point of the S3 phase
#     always kills a blob_import while its multipart uploads are open;
#   - repair(dry_run) finds nothing wrong.
# The points are random but seeded: the seed is printed, DESTOR_CRASH_SEED
# replays a run, DESTOR_CRASH_POINTS sets how many kills must land while a
# workload runs on file providers (default 4, 6 with DESTOR_TEST_LONG=1),
# DESTOR_CRASH_S3_POINTS on S3 providers (default 2, or 4), besides the
# kill that always lands mid-upload.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use CrashPoints;
use FaultProxy;
use Digest::MD5;
use File::Path qw(make_path remove_tree);
use List::Util qw(shuffle max);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $seed = $ENV{DESTOR_CRASH_SEED} // (time() ^ $$) % 1_000_000;
my $points = $ENV{DESTOR_CRASH_POINTS} // (DestorTest::cases([6], [4]))[0];
srand($seed);
diag("crash points: seed $seed (replay with DESTOR_CRASH_SEED=$seed), $points points");

# the maintenance worker stays off (its rounds would race the checks)
my ($node, $keyfile) = DestorTest::start_cluster('crash', conf => "autovacuum = off\nrestart_after_crash = on\n");
my $base = $node->basedir;
my $work = "$base/work";
make_path($work);

# seven file providers, objects of 4+2 shards: one is free for each object
my %dirs = map { ("p$_" => "$base/prov/p$_") } 1 .. 7;
make_path(values %dirs);
$node->safe_psql('postgres', join('', map {
	"CREATE SERVER $_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs{$_}');\n"
} sort keys %dirs) . q{
CREATE SERVER archive FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'p1,p2,p3,p4,p5,p6,p7', data_shards '4', parity_shards '2');

CREATE FUNCTION noise(n int, seed int) RETURNS bytea LANGUAGE sql AS $$
  SELECT substring(decode(string_agg(md5(seed || ':' || i), '' ORDER BY i), 'hex') FROM 1 FOR n)
    FROM generate_series(0, n / 16) i $$;

-- a destor table and its heap mirror, written in the same transactions
CREATE FOREIGN TABLE ft (id bigint, grp int, val float8, note text)
  SERVER archive OPTIONS (segment_rows '4000', row_group_rows '1000');
CREATE TABLE ft_heap (id bigint, grp int, val float8, note text);

-- blobs with the md5 of what was stored, recorded in the same row
CREATE TABLE docs (name text, b destor.blob, h text);

-- a partitioned table whose partitions go offsite and come back
CREATE TABLE readings (ts timestamptz NOT NULL, device int, reading float8, note text)
  PARTITION BY RANGE (ts);
CREATE TABLE r2024_01 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE r2024_02 PARTITION OF readings FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE r2024_03 PARTITION OF readings FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
CREATE TABLE r2024_04 PARTITION OF readings FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');
INSERT INTO readings
  SELECT timestamptz '2024-01-01 00:00+00' + i * interval '5 minutes', i % 23, (i % 1000) / 10.0,
         CASE WHEN i % 5 = 0 THEN NULL ELSE 'n' || (i % 97) END
    FROM generate_series(0, 4 * 30 * 288 - 1) i;
CREATE TABLE readings_heap AS SELECT * FROM readings;

-- one row per workload transaction that committed
CREATE TABLE committed (point int PRIMARY KEY, workload text);
});

my $sql_ft_same = q{SELECT (SELECT count(*) FROM (SELECT * FROM ft EXCEPT ALL SELECT * FROM ft_heap) a)
  + (SELECT count(*) FROM (SELECT * FROM ft_heap EXCEPT ALL SELECT * FROM ft) b)};
my $sql_readings_same = q{SELECT (SELECT count(*) FROM (SELECT * FROM readings EXCEPT ALL SELECT * FROM readings_heap) a)
  + (SELECT count(*) FROM (SELECT * FROM readings_heap EXCEPT ALL SELECT * FROM readings) b)};
# the catalog places shard s of object o on provider p as p:ds/<hex 2>/<hex>.<s>
my $sql_placed = q{SELECT s.provider || ':ds/' || left(h, 2) || '/' || h || '.' || s.shard_index
  FROM destor.shards s JOIN destor.objects o USING (object_id),
       LATERAL replace(s.object_id::text, '-', '') h
 WHERE o.pool = $1 ORDER BY 1};

# --- workloads -------------------------------------------------------------------
# Each returns the SQL of one transaction for crash point $n (and may prepare
# files); the transaction records itself in "committed".
sub wrap
{
	my ($n, $name, $body) = @_;
	return "BEGIN;\nINSERT INTO committed VALUES ($n, '$name');\n$body\nCOMMIT;\n";
}

my %workloads = (
	copy => sub {
		my ($n) = @_;
		my $csv = "$work/copy_$n.csv";
		open(my $fh, '>', $csv) or die;
		my $first = $n * 1_000_000;
		for my $i (0 .. 14_999)
		{
			my $id = $first + $i;
			printf $fh "%d,%d,%.3f,%s\n", $id, $id % 13, ($id % 9973) / 7.0, ($i % 3 ? "copy $n/$i" : '');
		}
		close $fh;
		return wrap($n, 'copy', "COPY ft FROM '$csv' (FORMAT csv);\nCOPY ft_heap FROM '$csv' (FORMAT csv);");
	},
	insert => sub {
		my ($n) = @_;
		my $rows = qq{SELECT $n * 1000000 + g, g % 13, g / 3.0, CASE WHEN g % 4 > 0 THEN 'ins $n ' || g END
  FROM generate_series(1, 12000) g};
		return wrap($n, 'insert', "INSERT INTO ft $rows;\nINSERT INTO ft_heap $rows;");
	},
	update_delete => sub {
		my ($n) = @_;
		my ($g, $d) = (int(rand(13)), 2 + int(rand(5)));
		return wrap($n, 'update_delete', join("\n",
			map { ($_, s/\bft\b/ft_heap/r) } (
				"UPDATE ft SET val = val + $n, note = 'upd $n' WHERE grp = $g;",
				"DELETE FROM ft WHERE id % 17 = $d AND grp <> $g;")));
	},
	blob_put => sub {
		my ($n) = @_;
		return wrap($n, 'blob_put', qq{INSERT INTO docs
  SELECT 'put $n/' || g, destor.blob_put('archive', d), md5(d)
    FROM (SELECT g, CASE WHEN g % 2 = 0 THEN noise(100000 + g * 37000, $n * 100 + g)
                         ELSE convert_to(repeat('compressible $n ', 20000 + g * 999), 'UTF8') END AS d
            FROM generate_series(1, 8) g) s;});
	},
	blob_import => sub {
		my ($n) = @_;
		my $path = "$work/import_$n.bin";
		DestorTest::write_random_file($path, (4 + int(rand(20))) * 1024 * 1024);
		open(my $fh, '<:raw', $path) or die;
		my $md5 = Digest::MD5->new->addfile($fh)->hexdigest;
		close $fh;
		return wrap($n, 'blob_import', "INSERT INTO docs VALUES ('import $n', destor.blob_import('archive', '$path'), '$md5');");
	},
	blob_delete => sub {
		my ($n) = @_;
		my $cond = sprintf("abs(hashtext(name || '%d')) %% 3 = 0", $n);
		return wrap($n, 'blob_delete', "SELECT count(destor.blob_delete(b)) FROM docs WHERE $cond;\nDELETE FROM docs WHERE $cond;");
	},
	tier => sub {
		my ($n) = @_;
		my $part = sprintf('r2024_%02d', 1 + int(rand(4)));
		my $foreign = $node->safe_psql('postgres', "SELECT relkind = 'f' FROM pg_class WHERE relname = '$part'");
		return wrap($n, 'tier', $foreign eq 't'
			? "SELECT destor.recall_partition('$part');"
			: "SELECT destor.tier_partition('$part', 'archive');");
	},
	compact => sub {
		my ($n) = @_;
		return wrap($n, 'compact', "SELECT * FROM destor.compact('ft');");
	},
	move_shards => sub {
		my ($n) = @_;
		my $from = 'p' . (1 + int(rand(7)));
		return wrap($n, 'move_shards', "SELECT count(*) FROM destor.move_shards('$from');");
	},
	repair => sub {
		my ($n) = @_;
		# a provider loses every shard it held; repair rebuilds them
		my $lost = 'p' . (1 + int(rand(7)));
		remove_tree("$dirs{$lost}/ds");
		return wrap($n, 'repair', "SELECT count(*) FROM destor.repair('archive');");
	},
);
my @names = sort keys %workloads;

# on the S3 pool: small blobs, an import large enough for multipart uploads
# (shards of 16-24 MiB), deletes
$workloads{s3_put} = sub {
	my ($n) = @_;
	return wrap($n, 's3_put', qq{INSERT INTO docs
  SELECT 's3 put $n/' || g, destor.blob_put('s3pool', noise(50000 + g * 20000, $n * 100 + g)), md5(noise(50000 + g * 20000, $n * 100 + g))
    FROM generate_series(1, 6) g;});
};
$workloads{s3_import} = sub {
	my ($n) = @_;
	my $path = "$work/import_$n.bin";
	DestorTest::write_random_file($path, (32 + int(rand(16))) * 1024 * 1024);
	open(my $fh, '<:raw', $path) or die;
	my $md5 = Digest::MD5->new->addfile($fh)->hexdigest;
	close $fh;
	return wrap($n, 's3_import', "INSERT INTO docs VALUES ('s3 import $n', destor.blob_import('s3pool', '$path'), '$md5');");
};
$workloads{s3_delete} = sub {
	my ($n) = @_;
	my $cond = sprintf("name LIKE 's3 %%' AND abs(hashtext(name || '%d')) %% 2 = 0", $n);
	return wrap($n, 's3_delete', "SELECT count(destor.blob_delete(b)) FROM docs WHERE $cond;\nDELETE FROM docs WHERE $cond;");
};

# the workload running now: no psql outlives the test, even when it dies
my ($current, @s3, @proxies);
END
{
	local $?;    # waiting for them must not change the test's exit status
	CrashPoints::stop_workload($current) if $current;
	FaultProxy::stop($_) for @proxies;
	DestorTest::stop_s3($_) for @s3;
}

# the pools checked after each point, and how to list their providers' files:
# (shard keys as "provider:key", temp files, multipart uploads or undef)
my @pools = ('archive');
my %pool_files = (archive => sub {
	my @files = CrashPoints::provider_files(%dirs);
	return ([ grep { !/\.tmp\./ } @files ], [ grep { /\.tmp\./ } @files ], undef);
});

# --- the checks after each point ---------------------------------------------------
sub check_state
{
	my ($label, $workload) = @_;
	is($node->safe_psql('postgres', $sql_ft_same), '0',
		"$label: the destor table holds exactly the committed rows of its heap mirror");
	is($node->safe_psql('postgres', $sql_readings_same), '0',
		"$label: the partitioned table holds exactly its rows");
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass"), '4',
		"$label: the partitioned table still has its four partitions");
	is($node->safe_psql('postgres',
		'SELECT count(*) FROM docs WHERE md5(destor.blob_get(b)) IS DISTINCT FROM h'), '0',
		"$label: every committed blob reads back whole");
	is($node->safe_psql('postgres', q{
SELECT (SELECT count(*) FROM destor.blobs WHERE blob_id NOT IN (SELECT b::uuid FROM docs))
     + (SELECT count(*) FROM destor.objects o
         WHERE NOT EXISTS (SELECT 1 FROM destor.blobs b WHERE b.blob_id = o.object_id)
           AND NOT EXISTS (SELECT 1 FROM destor.segments s WHERE s.object_id = o.object_id))}), '0',
		"$label: the catalog holds no blob or object that nothing committed references");

	# a killed repair is finished by the next one
	$node->safe_psql('postgres', "SELECT count(*) FROM destor.repair('archive')")
	  if $workload eq 'repair';
	check_pool($label, $_) for @pools;
}

# check_pool — after cleanup_orphans(pool, '0') the pool's providers hold
# exactly the shards the catalog places there, and nothing else of ours.
sub check_pool
{
	my ($label, $pool) = @_;
	my $removed = $node->safe_psql('postgres', "SELECT destor.cleanup_orphans('$pool', '0')");
	my ($shards, $tmp, $uploads) = $pool_files{$pool}->();
	(my $sql = $sql_placed) =~ s/\$1/'$pool'/;
	my @placed = split /\n/, $node->safe_psql('postgres', $sql);
	my %on_disk = map { $_ => 1 } @$shards;
	my %in_catalog = map { $_ => 1 } @placed;
	my @extra = grep { !$in_catalog{$_} } @$shards;
	my @missing = grep { !$on_disk{$_} } @placed;
	ok(!@extra && !@missing && !@$tmp,
		"$label: after cleanup_orphans (removed $removed) the providers of $pool hold exactly the "
		  . scalar(@placed) . ' shards the catalog places')
	  or diag('not in the catalog: ' . join(' ', @extra[0 .. min(9, $#extra)]) . "\n"
		  . 'missing on disk: ' . join(' ', @missing[0 .. min(9, $#missing)]) . "\n"
		  . 'temp files: ' . join(' ', @$tmp[0 .. min(9, $#$tmp)]));
	if ($uploads)
	{
		is(scalar(@$uploads), 0, "$label: no multipart upload is left on the providers of $pool")
		  or diag('uploads: ' . join(' ', @$uploads[0 .. min(9, $#$uploads)]));
	}
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM destor.repair('$pool', dry_run => true)"), '0',
		"$label: repair(dry_run) finds nothing wrong in $pool");
}

sub min { return $_[0] < $_[1] ? $_[0] : $_[1] }

my $n = 0;
my (%duration, %delta);

# run_points — calibrate the workloads (each once, to completion), then kill
# them at random points until $points kills landed while one was running.
# $count_files counts the files of the providers they write to.
sub run_points
{
	my ($phase, $points, $count_files, @names) = @_;
	for my $name (@names)
	{
		$n++;
		my $before = $count_files->();
		my $w = $current = CrashPoints::start_workload($node, "crash_$n", $workloads{$name}->($n), $work);
		my $peak = 0;
		while (CrashPoints::workload_running($w))
		{
			$peak = max($peak, abs($count_files->() - $before));
			usleep(20_000);
		}
		my ($rc, $out, $secs) = CrashPoints::finish_workload($w);
		is($rc, 0, sprintf('calibration: %s runs to completion (%.2f s)', $name, $secs)) or diag($out);
		$duration{$name} = $secs;
		$delta{$name} = max(1, $peak, abs($count_files->() - $before));
	}
	check_state("$phase calibration", 'repair');

	# every workload at least twice, the rest drawn at random
	my @plan = shuffle((@names) x 2, map { $names[int(rand(@names))] } 1 .. max(0, $points - 2 * @names));
	my ($landed, $attempts) = (0, 0);
	my (%landed_by, %outcome);
	while ($landed < $points && $attempts < 4 * $points)
	{
		my $name = $plan[$attempts % @plan];
		$attempts++;
		$n++;
		my $whole = rand() < 0.3;
		my $by_files = rand() < 0.5;
		my $before = $count_files->();
		my $target = 1 + int(rand($delta{$name}));
		# kills after the workload ended teach nothing: aim inside it
		my $delay = rand(0.8 * $duration{$name});
		my $w = $current = CrashPoints::start_workload($node, "crash_$n", $workloads{$name}->($n), $work);
		my $pid = CrashPoints::backend_pid($node, $w);
		my $t0 = time();
		# the point: a random delay, or a random number of shard files written
		# or removed (with a cap, should the workload stall)
		while (CrashPoints::workload_running($w))
		{
			if ($by_files)
			{
				last if abs($count_files->() - $before) >= $target;
				last if time() - $t0 > 2 * $duration{$name} + 1;
			}
			else
			{
				last if time() - $t0 >= $delay;
			}
			usleep(2_000);
		}
		my $mid = CrashPoints::workload_running($w);
		my $point = sprintf('point %d (%s, %s, kill -9 %s%s)', $n, $name,
			$by_files ? "after $target files" : sprintf('after %.0f ms', 1000 * $delay),
			$whole ? 'cluster' : 'backend', $mid ? '' : ', it had ended');
		my $hit = defined $pid && CrashPoints::crash($node, $pid, $whole);
		my ($rc, $out, $secs) = CrashPoints::finish_workload($w);
		# a workload that ended before its kill ran faster than calibrated
		# (the machine's load changed): aim the next ones by this run
		$duration{$name} = $secs if !$mid && defined $secs && $secs > 0;
		my $committed = $node->safe_psql('postgres', "SELECT count(*) FROM committed WHERE point = $n");
		note("$point: psql exit $rc, " . ($committed ? 'committed' : 'rolled back'));
		# a workload that was not killed must have committed: errors are bugs
		if (!$hit)
		{
			is($rc, 0, "$point: the workload ran to completion") or diag($out);
		}
		if ($mid && $hit)
		{
			$landed++;
			$landed_by{$name}++;
			$outcome{$committed ? 'committed' : 'rolled back'}++;
			$outcome{'cluster kills'}++ if $whole;
		}
		check_state($point, $name);
		unlink(glob("$work/copy_$n.csv"), glob("$work/import_$n.bin"));
	}
	diag(sprintf('%s: crash points landed mid-workload: %s; %s', $phase,
		join(', ', map { "$_ $landed_by{$_}" } sort keys %landed_by),
		join(', ', map { "$_ $outcome{$_}" } sort keys %outcome)));
	cmp_ok($landed, '>=', $points, "$phase: $landed kills landed while a workload was running ($attempts tried)");
}

run_points('file providers', $points, sub { CrashPoints::file_count(%dirs) }, @names);

# --- the same on S3 providers (s3rver): multipart uploads, deletes over HTTP -------
my $s3_points = $ENV{DESTOR_CRASH_S3_POINTS} // (DestorTest::cases([4], [2]))[0];
if ($s3_points > 0)
{
	@s3 = DestorTest::start_s3_servers(3, "$base/s3");
	# destor talks to a FaultProxy (no faults injected), the proxy to
	# s3rver, answering the multipart listing and aborts itself
	my @behind;
	for my $s3 (@s3)
	{
		my $proxy = FaultProxy::start($s3->{port}, "$s3->{dir}.faults", $s3->{dir});
		push @proxies, $proxy;
		push @behind, { %$s3, port => $proxy->{port} };
	}
	my $sql = DestorTest::providers_sql('s3pool', 2, 1, @behind);
	$node->safe_psql('postgres', $sql);
	push @pools, 's3pool';
	# s3rver keeps object k as <bucket>/<k>._S3rver_object, and a multipart
	# upload's parts under <bucket>/._S3rver_uploads/<upload id>/
	my $s3_files = sub {
		my %s3dirs = map { ($_->{name} => "$_->{dir}/$_->{bucket}") } @s3;
		my @files = CrashPoints::provider_files(%s3dirs);
		my @uploads = grep { /_S3rver_uploads/ } @files;
		my @objects = map { s/\._S3rver_object$//r } grep { /\._S3rver_object$/ && !/_S3rver_uploads/ } @files;
		return (\@objects, [], \@uploads);
	};
	$pool_files{s3pool} = $s3_files;
	run_points('s3 providers', $s3_points, sub { scalar(@{ ($s3_files->())[0] }) + scalar(@{ ($s3_files->())[2] }) },
		qw(s3_put s3_import s3_delete));

	# one kill that always lands while a blob_import's multipart uploads are
	# open (a part stored, the upload not completed): they must not survive
	# cleanup_orphans
	$n++;
	my $w = $current = CrashPoints::start_workload($node, "crash_$n", $workloads{s3_import}->($n), $work);
	my $pid = CrashPoints::backend_pid($node, $w);
	my $t0 = time();
	my $open = sub { scalar(grep { m{/\d+$} } @{ ($s3_files->())[2] }) };
	usleep(5_000) while CrashPoints::workload_running($w) && $open->() == 0 && time() - $t0 < 60;
	my $parts = $open->();
	my $hit = defined $pid && CrashPoints::crash($node, $pid, 0);
	my ($rc) = CrashPoints::finish_workload($w);
	ok($hit && $parts > 0, "point $n (s3_import, kill -9 backend with $parts parts uploaded): it landed mid-upload");
	cmp_ok(scalar(@{ ($s3_files->())[2] }), '>', 0, "point $n: the killed import left its multipart uploads behind");
	is($node->safe_psql('postgres', "SELECT count(*) FROM committed WHERE point = $n"), '0',
		"point $n: the killed import did not commit");
	check_state("point $n (s3_import killed mid-upload)", 's3_import');
	unlink(glob("$work/import_$n.bin"));

	FaultProxy::stop($_) for @proxies;
	DestorTest::stop_s3($_) for @s3;
}

$node->stop;
done_testing();
