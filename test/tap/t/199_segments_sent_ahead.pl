# A table's segments are sent while the next one is encoded (issue 11,
# item 5: COPY on a WAN pool).  Six real s3rver processes in a 4+2 pool,
# each behind its own delay proxy.
#
# 1. With every provider holding each request 2 s, the rows after a
#    segment's end are produced while its shards are still on their way:
#    the statement does not stop at the segment's end for its uploads (it
#    stopped 2 s there).  The proxies' hold shows in the statement's time,
#    so the hold was real.
# 2. A COPY of many segments of random rows reads back row for row, every
#    segment recorded with six stored shards, in order.
# 3. A statement that fails with segments in flight (an error in a later
#    row; a cancel while the proxies hold a segment's shards) records
#    nothing and leaves no shard on any provider; so does a savepoint
#    rolled back, whose transaction then commits other rows.
# 4. A provider stopped under a COPY of several segments: each segment is
#    stored on the five others, its shard recorded missing, and the rows
#    read back.
# 5. A function the writing statement calls reads the table: at the
#    statement's level it sees what heap would; from a subtransaction
#    (an exception block), where the segments it made the writer record
#    went with the subtransaction's rollback, it is refused.
# 6. The same for a table USING destor read by index.
# 7. Segments in flight are bounded per backend: a COPY into five destor
#    partitions stays under 256 MB.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my ($node, $keyfile) = DestorTest::start_cluster('segments_ahead', cache_size => '0');
my $base = $node->basedir;
my ($s3, $hold) = DestorTest::start_delay_pool($node, 'archive');
my @s3 = @$s3;
sub set_hold { $hold->(@_) }

# the shard files on every s3rver (its data folders; not its upload folders)
sub shard_files
{
	return grep { m{/ds/} && /\._S3rver_object$/ } map { DestorTest::files_under($_->{dir}) } @s3;
}

# --- 1. rows after a segment's end go on while its shards are held ---------
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE timed (i int, at timestamptz) SERVER archive
  OPTIONS (segment_rows '2000', row_group_rows '500');
});
set_hold($_, 2000) for 0 .. 5;
my $t0 = time;
$node->safe_psql('postgres', q{
INSERT INTO timed SELECT i, clock_timestamp() FROM generate_series(1, 4000) i;
});
my $took = time - $t0;
set_hold($_, 0) for 0 .. 5;
# the segment's end is after row 2000: 2001 was produced while its PUTs were held
my $gap = $node->safe_psql('postgres', q{
SELECT extract(epoch FROM (SELECT at FROM timed WHERE i = 2001) - (SELECT at FROM timed WHERE i = 2000))
});
cmp_ok($gap, '<', 1.0, "the row after a segment's end came ${gap}s after it: its shards went on meanwhile");
cmp_ok($took, '>=', 4.0, "the held uploads took the statement ${took}s (each provider held them 2 s)");
is($node->safe_psql('postgres', q{
SELECT count(*) FROM destor.segments JOIN destor.tables USING (table_id) WHERE relid = 'timed'::regclass
}), '2', 'two segments recorded');
is($node->safe_psql('postgres', 'SELECT count(*), sum(i) FROM timed'), '4000|8002000', 'every row reads back');

# --- 2. many segments, row for row ------------------------------------------
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE many (id int, v text, b bytea) SERVER archive
  OPTIONS (segment_rows '3000', row_group_rows '1000');
CREATE TABLE many_heap (id int, v text, b bytea);
SELECT setseed(0.25);
INSERT INTO many_heap
  SELECT i, md5(random()::text) || repeat('x', (random() * 200)::int),
         CASE WHEN i % 7 = 0 THEN NULL ELSE decode(md5(random()::text), 'hex') END
    FROM generate_series(1, 25000) i;
COPY many_heap TO '} . "$base/many.csv" . q{' (FORMAT csv);
});
$node->safe_psql('postgres', "COPY many FROM '$base/many.csv' (FORMAT csv)");
is($node->safe_psql('postgres', q{
SELECT count(*) FROM (SELECT * FROM many EXCEPT ALL SELECT * FROM many_heap) d
}) . '/' . $node->safe_psql('postgres', q{
SELECT count(*) FROM (SELECT * FROM many_heap EXCEPT ALL SELECT * FROM many) d
}), '0/0', 'a COPY of nine segments reads back row for row');
is($node->safe_psql('postgres', q{
SELECT count(*), sum(s.row_count), bool_and(n = 6)
  FROM destor.segments s JOIN destor.tables USING (table_id)
  JOIN (SELECT object_id, count(*) FILTER (WHERE state = 'ok') AS n FROM destor.shards GROUP BY 1) sh USING (object_id)
 WHERE relid = 'many'::regclass
}), '9|25000|t', 'nine segments recorded, six stored shards each');
is($node->safe_psql('postgres', q{
SELECT array_agg(row_count ORDER BY segment_no) FROM destor.segments JOIN destor.tables USING (table_id)
 WHERE relid = 'many'::regclass
}), '{3000,3000,3000,3000,3000,3000,3000,3000,1000}', 'the segments were numbered in the order they were written');

# --- 3. failures with segments in flight leave nothing ----------------------
my @before = shard_files();
my ($ok, $out, $err) = (0, '', '');
$node->psql('postgres', q{
INSERT INTO many SELECT i, 'doomed', NULL FROM generate_series(1, 10000) i WHERE 1 / (i - 9500) IS NOT NULL;
}, stdout => \$out, stderr => \$err);
like($err, qr/division by zero/, 'a statement failing after three segments fails with its own error');
is($node->safe_psql('postgres', "SELECT count(*) FROM many WHERE v = 'doomed'"), '0', 'none of its rows are there');

# cancelled while every provider holds the second segment's shards
set_hold($_, 3000) for 0 .. 5;
$node->psql('postgres', q{
SET statement_timeout = '1500ms';
INSERT INTO many SELECT i, 'cancelled', NULL FROM generate_series(1, 7000) i;
}, stdout => \$out, stderr => \$err);
set_hold($_, 0) for 0 .. 5;
like($err, qr/statement timeout/, 'a statement cancelled with shards in flight');

# a savepoint rolled back with segments in flight, other rows committed
$node->safe_psql('postgres', q{
BEGIN;
SAVEPOINT a;
DO $$ BEGIN
  INSERT INTO many SELECT i, 'rolled back', NULL FROM generate_series(1, 7000) i;
  RAISE EXCEPTION 'undo';
EXCEPTION WHEN raise_exception THEN NULL;
END $$;
INSERT INTO many SELECT i, 'kept', NULL FROM generate_series(1, 6500) i;
COMMIT;
});
is($node->safe_psql('postgres', "SELECT v, count(*) FROM many WHERE v IN ('rolled back', 'kept', 'cancelled') GROUP BY v"),
	'kept|6500', 'the rows rolled back are gone, the others committed');
# uploads that were cut short end at their transaction's end; the proxies let
# the held ones through before the check
sleep 4;
my %had = map { $_ => 1 } @before;
my $new = $node->safe_psql('postgres', q{
SELECT string_agg(DISTINCT replace(o.object_id::text, '-', ''), ' ') FROM destor.segments s
  JOIN destor.tables USING (table_id) JOIN destor.objects o USING (object_id) WHERE relid = 'many'::regclass
});
my %live = map { $_ => 1 } split ' ', $new;
my @left = grep { my $f = $_; !$had{$f} && !grep { index($f, $_) >= 0 } keys %live } shard_files();
is(scalar(@left), 0, 'no shard of a failed, cancelled or rolled-back segment is left on a provider')
  or diag(join("\n", @left[ 0 .. ($#left < 9 ? $#left : 9) ]));
is($node->safe_psql('postgres', q{SELECT destor.cleanup_orphans('archive', '0')}), '0',
	'cleanup_orphans finds nothing either');

# --- 5. the table read in a subtransaction that rolls back, mid-statement ---
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE peeked (id int, v text) SERVER archive
  OPTIONS (segment_rows '3000', row_group_rows '1000');
CREATE FUNCTION peek() RETURNS text LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  BEGIN
    SELECT count(*) INTO n FROM peeked;
    RAISE EXCEPTION 'undo';
  EXCEPTION WHEN raise_exception THEN NULL;
  END;
  RETURN n::text;
END $$;
});
($ok, $out, $err) = (0, '', '');
$node->psql('postgres', q{
INSERT INTO peeked SELECT i, CASE WHEN i = 7000 THEN peek() ELSE 'x' END FROM generate_series(1, 9000) i;
}, stdout => \$out, stderr => \$err);
# recorded in the subtransaction, the segments before went with it (6,000
# of 9,000 rows lost, the statement committed): refused, as for tables
# USING destor
like($err, qr/cannot read destor table "peeked" in a subtransaction while its statement writes it/,
	'a read of the table in a subtransaction while segments wait to be recorded is refused');
is($node->safe_psql('postgres', 'SELECT count(*) FROM peeked'), '0', 'and the statement wrote nothing');
# read at the statement's own level, the rows so far are seen as with heap
$node->safe_psql('postgres', q{
CREATE TABLE peeked_heap (id int, v text);
CREATE FUNCTION count_peeked() RETURNS text LANGUAGE sql VOLATILE AS 'SELECT count(*)::text FROM peeked';
CREATE FUNCTION count_peeked_heap() RETURNS text LANGUAGE sql VOLATILE AS 'SELECT count(*)::text FROM peeked_heap';
INSERT INTO peeked SELECT i, CASE WHEN i = 7000 THEN count_peeked() ELSE 'x' END FROM generate_series(1, 9000) i;
INSERT INTO peeked_heap SELECT i, CASE WHEN i = 7000 THEN count_peeked_heap() ELSE 'x' END FROM generate_series(1, 9000) i;
});
is($node->safe_psql('postgres', "SELECT count(*), string_agg(v, ',') FILTER (WHERE v <> 'x') FROM peeked"),
	$node->safe_psql('postgres', "SELECT count(*), string_agg(v, ',') FILTER (WHERE v <> 'x') FROM peeked_heap"),
	'a function the statement calls sees what heap would, with segments in flight');

# --- 4. a provider stopped under a COPY of several segments -----------------
DestorTest::stop_s3($s3[2]);
my $warn = '';
$node->psql('postgres', "COPY many FROM '$base/many.csv' (FORMAT csv)", stderr => \$warn);
my $warnings = () = $warn =~ /could not be written to provider "d2"/g;
is($warnings, 9, 'each of the nine segments warns of the stopped provider');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM (SELECT * FROM many_heap EXCEPT ALL SELECT * FROM many WHERE v NOT IN ('kept')) d
}), '0', 'the second copy reads back with a provider gone');
is($node->safe_psql('postgres', q{
SELECT count(*) FILTER (WHERE sh.state = 'missing') FROM destor.segments s JOIN destor.tables USING (table_id)
  JOIN destor.shards sh USING (object_id) WHERE relid = 'many'::regclass
}), '9', "its nine segments' shards on the stopped provider are recorded missing");

# --- 6. a table USING destor: a segment in flight read from a subtransaction --
# (its segments hold a million rows; the first is in flight at row 1,000,500)
$node->safe_psql('postgres', q{
SET destor.default_pool = 'archive';
CREATE TABLE am (i int, seen int) USING destor;
CREATE INDEX am_i ON am (i);
CREATE TABLE am_heap (i int, seen int);
CREATE INDEX am_heap_i ON am_heap (i);
CREATE FUNCTION peek_am(k int) RETURNS int LANGUAGE plpgsql
  SET enable_seqscan = off SET enable_bitmapscan = off AS $$
DECLARE n int;
BEGIN
  BEGIN
    SELECT count(*) INTO n FROM am WHERE i = k;
    RAISE EXCEPTION 'peeked: %', n;
  EXCEPTION WHEN raise_exception THEN NULL;
  END;
  RETURN n;
END $$;
CREATE FUNCTION look(tbl regclass, k int) RETURNS int LANGUAGE plpgsql
  SET enable_seqscan = off SET enable_bitmapscan = off AS $$
DECLARE n int;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s WHERE i = $1', tbl) INTO n USING k;
  RETURN n;
END $$;
});
$node->psql('postgres', q{
SET destor.default_pool = 'archive';
INSERT INTO am SELECT i, CASE WHEN i = 1000500 THEN peek_am(5) END FROM generate_series(1, 1100000) i;
}, stdout => \$out, stderr => \$err);
# recorded in the subtransaction, the first million rows went with its
# rollback, the statement committed
like($err, qr/cannot read destor table "am" in a subtransaction while its statement writes it/,
	'a table USING destor: its segment in flight read by index from a subtransaction is refused');
is($node->safe_psql('postgres', 'SELECT count(*) FROM am'), '0', 'and the statement wrote nothing');
$node->safe_psql('postgres', q{
SET destor.default_pool = 'archive';
INSERT INTO am SELECT i, CASE WHEN i = 1000500 THEN look('am', 5) END FROM generate_series(1, 1100000) i;
INSERT INTO am_heap SELECT i, CASE WHEN i = 1000500 THEN look('am_heap', 5) END FROM generate_series(1, 1100000) i;
});
is($node->safe_psql('postgres', 'SELECT count(*), sum(i), max(seen) FROM am'),
	$node->safe_psql('postgres', 'SELECT count(*), sum(i), max(seen) FROM am_heap'),
	"read at the statement's level, the row of the segment in flight is found as in heap, and every row kept");

# --- 7. the memory of segments in flight is the backend's, not each writer's -
# 8 KiB incompressible rows, 1,000 a segment, into five destor partitions:
# each partition's writer kept its own three segments in flight (387 MB)
$node->safe_psql('postgres', q{
CREATE TABLE wide_src (id int, b bytea);
INSERT INTO wide_src SELECT g, (SELECT decode(string_agg(md5(random()::text || g || x), ''), 'hex')
                                 FROM generate_series(1, 512) x)
  FROM generate_series(1, 20000) g;
COPY wide_src TO '} . "$base/wide.txt" . q{';
CREATE TABLE parted (id int, b bytea) PARTITION BY LIST ((id % 5));
} . join('', map { "CREATE FOREIGN TABLE parted_$_ PARTITION OF parted FOR VALUES IN ($_) SERVER archive"
	  . " OPTIONS (segment_rows '1000', row_group_rows '250');\n" } 0 .. 4));
my $hwm = $node->safe_psql('postgres', qq{
COPY parted FROM '$base/wide.txt';
SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\\s+(\\d+)'))[1]::bigint / 1024});
cmp_ok($hwm, '<', 256, "a COPY into five partitions peaked at $hwm MB (issue 11: under 256 MB)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM (SELECT * FROM parted EXCEPT ALL SELECT * FROM wide_src) d'),
	'0', 'and its rows read back row for row');

done_testing();
