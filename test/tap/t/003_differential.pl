# Differential test of destor tables: the PostgreSQL regression data sets
# (tenk1, onek) and a table of mixed types with many NULLs are loaded into
# heap tables and into destor tables (several segments and row groups of
# different sizes, one copy in load order, one ordered by the key so that
# pruning has much to do), and a few hundred queries made by a seeded
# random generator run against each.  Every destor result must equal the
# heap result.  EXPLAIN checks make sure pruning and projection are at
# work on selective queries.  Then the same DELETEs, UPDATEs and INSERTs go
# to every copy and the queries run again, and once more after
# destor.compact().  A last section checks rows written under other
# date/interval/float output settings (a bug found by this test, fixed).
#
# Environment: DESTOR_DIFF_SEED (the generator's seed), DESTOR_DIFF_QUERIES
# (how many queries), DESTOR_TESTDATA (the shared testdata folder; else
# ../shared/testdata beside the repository root; without it, equivalent
# data is generated with SQL), DESTOR_DIFF_SHOW=1 (print every query).
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use File::Basename qw(dirname);
use lib dirname(__FILE__) . '/..';
use DestorTest;
use Differential;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t_start = time();
my $seed = $ENV{DESTOR_DIFF_SEED} // 20261125;
my $nqueries = $ENV{DESTOR_DIFF_QUERIES} // 180;
die "DESTOR_DIFF_SEED must be an integer" unless $seed =~ /^\d+$/;
srand($seed);
diag("differential query generator: seed $seed (override with DESTOR_DIFF_SEED), $nqueries queries");

# ---------------------------------------------------------------------------
# Cluster, providers, pool
# ---------------------------------------------------------------------------
my ($node, $keyfile) = DestorTest::start_cluster('differential');
my $base = $node->basedir;
my @dirs = map { "$base/prov$_" } 1 .. 3;
mkdir $_ for @dirs;
$node->safe_psql('postgres', join("\n",
	(map { "CREATE SERVER f$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs[$_ - 1]');" } 1 .. 3),
	"CREATE SERVER pool FOREIGN DATA WRAPPER destor OPTIONS (providers 'f1,f2,f3', data_shards '2', parity_shards '1');"));

# ---------------------------------------------------------------------------
# Data: heap tables first, destor tables loaded from them
# ---------------------------------------------------------------------------
my $TENK_COLS = 'unique1 int4, unique2 int4, two int4, four int4, ten int4, twenty int4, '
  . 'hundred int4, thousand int4, twothousand int4, fivethous int4, tenthous int4, odd int4, '
  . 'even int4, stringu1 name, stringu2 name, string4 name';
# "u" has a linguistic collation (ICU where there is one): its min/max and
# comparisons in other collations must not be mixed up
my $ucoll = $node->safe_psql('postgres', q{SELECT coalesce((SELECT quote_ident(collname) FROM pg_collation
  WHERE collname IN ('en-x-icu', 'und-x-icu', 'en_US.utf8') ORDER BY collname LIMIT 1), '"default"')});
note("collation of mix.u: $ucoll");
my $MIX_COLS = "id int4, a int4, b int8, n numeric(12,3), t text, flag bool, d date, f float8, u text COLLATE $ucoll";
my $DOPTS = "SERVER pool OPTIONS (segment_rows '3000', row_group_rows '500')";

my $datadir = Differential::find_testdata(__FILE__, 'tenk.data', 'onek.data');
my $sql = "CREATE TABLE tenk_heap ($TENK_COLS);\nCREATE TABLE onek_heap ($TENK_COLS);\n"
  . "CREATE TABLE mix_heap ($MIX_COLS);\n";
if ($datadir)
{
	diag("test data from $datadir");
	$sql .= "COPY tenk_heap FROM '$datadir/tenk.data';\nCOPY onek_heap FROM '$datadir/onek.data';\n";
}
else
{
	# equivalent data: same columns, same derivations, a permutation for unique1
	diag('shared test data not found (set DESTOR_TESTDATA): generating equivalent data with SQL');
	$sql .= q{
CREATE FUNCTION pg_temp.tstr(n int) RETURNS name LANGUAGE sql IMMUTABLE AS
  $$ SELECT string_agg(chr(65 + (n / (26 ^ k)::int) % 26), '' ORDER BY k)::name FROM generate_series(0, 5) k $$;
INSERT INTO tenk_heap
SELECT u1, u2, u1 % 2, u1 % 4, u1 % 10, u1 % 20, u1 % 100, u1 % 1000, u1 % 2000, u1 % 5000, u1,
       (u1 % 100) * 2, (u1 % 100) * 2 + 1, pg_temp.tstr(u1), pg_temp.tstr(u2),
       (ARRAY['AAAAxx', 'HHHHxx', 'OOOOxx', 'VVVVxx'])[u2 % 4 + 1]
  FROM (SELECT (g * 7919 + 13) % 10000 AS u1, g AS u2 FROM generate_series(0, 9999) g) s;
INSERT INTO onek_heap
SELECT u1, u2, u1 % 2, u1 % 4, u1 % 10, u1 % 20, u1 % 100, u1 % 1000, u1 % 2000, u1 % 5000, u1,
       (u1 % 100) * 2, (u1 % 100) * 2 + 1, pg_temp.tstr(u1), pg_temp.tstr(u2),
       (ARRAY['AAAAxx', 'HHHHxx', 'OOOOxx', 'VVVVxx'])[u2 % 4 + 1]
  FROM (SELECT (g * 389 + 7) % 1000 AS u1, g AS u2 FROM generate_series(0, 999) g) s;
};
}

# Rows with NULLs (unique1/unique2 stay unique and not null): "ten" and
# "tenthous" are NULL in all of them, the other columns in patterns.
sub null_rows_sql
{
	my ($table, $first, $count) = @_;
	my $half = int($count / 2);
	return qq{INSERT INTO $table
SELECT $first + i, $first + i, CASE WHEN i % 3 = 0 THEN NULL ELSE i % 2 END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE i % 4 END, NULL, i % 20,
       CASE WHEN i % 7 = 0 THEN i % 100 END, CASE WHEN i < $half THEN NULL ELSE i + 700 END,
       i % 2000, CASE WHEN i % 2 = 1 THEN 5000 + i END, NULL,
       CASE WHEN i % 11 <> 0 THEN (i % 100) * 2 END, (i % 100) * 2 + 1,
       CASE WHEN i % 2 = 1 THEN 'N' || lpad(i::text, 5, '0') END, 'ZZ' || i,
       CASE WHEN i % 4 <> 1 THEN (ARRAY['AAAAxx', 'HHHHxx', 'OOOOxx', 'VVVVxx'])[i % 4 + 1] END
  FROM generate_series(0, $count - 1) i;
};
}
$sql .= null_rows_sql('tenk_heap', 10000, 300);
$sql .= null_rows_sql('onek_heap', 1000, 50);

# mixed types: a block of ids where "a" is always NULL (whole row groups of
# NULLs), "d" NULL at the end, float specials, empty strings beside NULLs
$sql .= q{
INSERT INTO mix_heap
SELECT id,
       CASE WHEN id BETWEEN 1001 AND 1600 OR id % 13 = 0 THEN NULL ELSE (id * 37) % 1000 - 200 END,
       CASE WHEN id % 17 = 0 THEN NULL ELSE id::int8 * 1000000007 % 9000000000000 - 4000000000000 END,
       CASE WHEN id % 19 = 0 THEN NULL ELSE round(((id * 7919) % 100000) / 1000.0 - 50, 3) END,
       CASE WHEN id % 11 = 0 THEN NULL WHEN id % 23 = 0 THEN ''
            ELSE (ARRAY['alpha', 'Beta', 'gamma', 'Delta', 'épsilon', 'zeta', 'Eta', 'theta'])[id % 8 + 1]
                 || '_' || (id % 97) END,
       CASE WHEN id % 29 = 0 THEN NULL ELSE id % 3 = 0 END,
       CASE WHEN id > 3500 THEN NULL ELSE '2020-01-01'::date + (id * 13) % 1500 END,
       CASE WHEN id % 31 = 0 THEN NULL WHEN id % 97 = 0 THEN 'NaN' WHEN id % 101 = 0 THEN 'Infinity'
            WHEN id % 103 = 0 THEN '-Infinity' ELSE ((id * 7) % 1000) / 8.0 - 60 END,
       CASE WHEN id % 37 = 0 THEN NULL
            ELSE (ARRAY['apple', 'Apple', 'APPLE', 'éclair', 'Eclair', 'eclair', 'zebra', 'Zebra', 'ábaco',
                        'abaco', 'b', 'B', 'Ölkanne', 'olive', 'ß', 'ss'])[(id * 7) % 16 + 1] || (id % 40) END
  FROM generate_series(1, 4000) id;
ANALYZE tenk_heap; ANALYZE onek_heap; ANALYZE mix_heap;
};

# destor tables: *_d in load order, in statements of different sizes (so
# segments of different sizes); *_o ordered by the key
$sql .= qq{
CREATE FOREIGN TABLE tenk_d ($TENK_COLS) $DOPTS;
CREATE FOREIGN TABLE onek_d ($TENK_COLS) $DOPTS;
CREATE FOREIGN TABLE mix_d ($MIX_COLS) $DOPTS;
CREATE FOREIGN TABLE tenk_o ($TENK_COLS) $DOPTS;
CREATE FOREIGN TABLE onek_o ($TENK_COLS) $DOPTS;
CREATE FOREIGN TABLE mix_o ($MIX_COLS) $DOPTS;
INSERT INTO tenk_d SELECT * FROM tenk_heap WHERE unique2 < 3500;
INSERT INTO tenk_d SELECT * FROM tenk_heap WHERE unique2 >= 3500 AND unique2 < 8200;
INSERT INTO tenk_d SELECT * FROM tenk_heap WHERE unique2 >= 8200 AND unique2 < 10000;
INSERT INTO tenk_d SELECT * FROM tenk_heap WHERE unique2 >= 10000;
INSERT INTO onek_d SELECT * FROM onek_heap WHERE unique2 < 600;
INSERT INTO onek_d SELECT * FROM onek_heap WHERE unique2 >= 600;
INSERT INTO mix_d SELECT * FROM mix_heap WHERE id <= 1700 ORDER BY (id * 7) % 1700;
INSERT INTO mix_d SELECT * FROM mix_heap WHERE id > 1700 AND id % 2 = 0 ORDER BY id DESC;
INSERT INTO mix_d SELECT * FROM mix_heap WHERE id > 1700 AND id % 2 = 1;
INSERT INTO tenk_o SELECT * FROM tenk_heap ORDER BY unique1;
INSERT INTO onek_o SELECT * FROM onek_heap ORDER BY unique1;
INSERT INTO mix_o SELECT * FROM mix_heap ORDER BY id;
};
$node->safe_psql('postgres', $sql);

# Every copy holds the same rows.
same_rows('as loaded');
my $segs = $node->safe_psql('postgres', q{
SELECT string_agg(c.relname || ':' || s.n || ' segments (' || s.rows || ' rows)', ', ' ORDER BY c.relname)
  FROM (SELECT table_id, count(*) AS n, string_agg(row_count::text, '+' ORDER BY segment_no) AS rows
          FROM destor.segments GROUP BY table_id) s
  JOIN destor.tables t USING (table_id) JOIN pg_class c ON c.oid = t.relid});
note("layout: $segs");
like($segs, qr/tenk_d:6 segments \(3000\+500\+3000\+1700\+1800\+300 rows\)/,
	'tenk_d has several segments of different sizes');

# ---------------------------------------------------------------------------
# What the generator knows about the tables (ranges and values from the data)
# ---------------------------------------------------------------------------
my @TENK = ((map { [ $_, 'int' ] } qw(unique1 unique2 two four ten twenty hundred thousand
		  twothousand fivethous tenthous odd even)),
	[ 'stringu1', 'name' ], [ 'stringu2', 'name' ], [ 'string4', 'name' ]);
my %TAB = (
	tenk => { key => 'unique1', cols => \@TENK,
		groups => [qw(two four ten twenty hundred string4)] },
	onek => { key => 'unique1', cols => \@TENK,
		groups => [qw(two four ten twenty hundred string4)] },
	mix => { key => 'id',
		cols => [ [ 'id', 'int' ], [ 'a', 'int' ], [ 'b', 'int8' ], [ 'n', 'numeric' ], [ 't', 'text' ],
			[ 'flag', 'bool' ], [ 'd', 'date' ], [ 'f', 'float' ], [ 'u', 'text' ] ],
		groups => [ 'flag', 'a % 5', 'extract(year FROM d)', '(n > 0)', 'left(t, 1)', 'left(u, 1)' ] },
);
for my $t (sort keys %TAB)
{
	for my $c (@{ $TAB{$t}{cols} })
	{
		my ($name, $type) = @$c;
		$TAB{$t}{type}{$name} = $type;
		if ($type =~ /^(int|int8|numeric|float)$/)
		{
			my $q = $type eq 'float' ? "WHERE $name <> 'NaN' AND $name BETWEEN -1e300 AND 1e300" : '';
			my ($lo, $hi) = split /\|/, $node->safe_psql('postgres', "SELECT min($name), max($name) FROM ${t}_heap $q");
			$TAB{$t}{range}{$name} = [ $lo, $hi ];
		}
		elsif ($type =~ /^(name|text|date)$/)
		{
			my $vals = $node->safe_psql('postgres',
				"SELECT string_agg(v, E'\\t' ORDER BY v COLLATE \"C\") FROM (SELECT DISTINCT ${name}::text AS v FROM ${t}_heap WHERE $name IS NOT NULL) s");
			utf8::decode($vals);	# generate with characters, not bytes
			$TAB{$t}{pool}{$name} = [ split /\t/, $vals ];
		}
	}
}

# ---------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------
sub rint { my ($lo, $hi) = @_; return $lo + int(rand($hi - $lo + 1)); }
sub pick { return $_[ int(rand(scalar @_)) ]; }
sub chance { return rand() < $_[0]; }
sub lit { my ($s) = @_; $s =~ s/'/''/g; return "'$s'"; }

sub shuffle_n
{
	my ($n, @items) = @_;
	my @out;
	while (@items && @out < $n)
	{
		push @out, splice(@items, int(rand(scalar @items)), 1);
	}
	return @out;
}

# a constant for a column, as SQL; mostly values that occur, sometimes not
sub cval
{
	my ($t, $c) = @_;
	my $type = $TAB{$t}{type}{$c};
	if ($type eq 'int' || $type eq 'int8')
	{
		my ($lo, $hi) = @{ $TAB{$t}{range}{$c} };
		my $span = $hi - $lo;
		my $v = chance(0.05) ? ($hi + rint(1, 50)) : chance(0.05) ? ($lo - rint(1, 50)) : $lo + int(rand($span + 1));
		return $v < 0 ? "($v)" : "$v";
	}
	if ($type eq 'numeric')
	{
		my ($lo, $hi) = @{ $TAB{$t}{range}{$c} };
		my $v = sprintf('%.3f', $lo + rand($hi - $lo));
		return $v < 0 ? "($v)" : $v;
	}
	if ($type eq 'float')
	{
		return pick("'NaN'::float8", "'Infinity'::float8", "'-Infinity'::float8") if chance(0.1);
		my ($lo, $hi) = @{ $TAB{$t}{range}{$c} };
		my $v = sprintf('%.3f', $lo + rand($hi - $lo));
		return $v < 0 ? "($v)" : $v;
	}
	if ($type eq 'bool')
	{
		return pick('true', 'false');
	}
	my @pool = @{ $TAB{$t}{pool}{$c} };
	my $v = pick(@pool);
	if ($type eq 'date')
	{
		return lit($v) . '::date';
	}
	if (chance(0.15))
	{
		# a value that may not occur
		$v = pick($v . 'A', substr($v, 0, length($v) - 1), 'Z' . $v, '', 'a', 'M');
	}
	return lit($v);
}

sub like_pattern
{
	my ($t, $c) = @_;
	my $v = pick(@{ $TAB{$t}{pool}{$c} });
	my $k = rint(1, 3);
	return pick(lit(substr($v, 0, $k) . '%'), lit('%' . substr($v, -$k)), lit('%' . substr($v, 1, 1) . '%'),
		lit('_' . substr($v, 1, 2) . '%'), lit($v));
}

my @CMP = ('=', '<', '<=', '>', '>=', '<>');

sub cols_of_type
{
	my ($t, @types) = @_;
	my %want = map { $_ => 1 } @types;
	return map { $_->[0] } grep { $want{ $_->[1] } } @{ $TAB{$t}{cols} };
}

# a predicate on table $t under alias prefix $al ('' or 'x.')
sub pred
{
	my ($t, $al, $depth) = @_;
	$depth //= 0;
	if ($depth < 2 && chance(0.3))
	{
		my $k = rand();
		return '(' . pred($t, $al, $depth + 1) . ' AND ' . pred($t, $al, $depth + 1) . ')' if $k < 0.45;
		return '(' . pred($t, $al, $depth + 1) . ' OR ' . pred($t, $al, $depth + 1) . ')' if $k < 0.85;
		return 'NOT (' . pred($t, $al, $depth + 1) . ')';
	}
	my ($c, $type) = @{ pick(@{ $TAB{$t}{cols} }) };
	my $col = "$al$c";
	my $v = sub { cval($t, $c) };
	my $isnull = sub { "$col IS " . pick('NULL', 'NOT NULL') };
	return $isnull->() if chance(0.08);

	if ($type eq 'int' || $type eq 'int8')
	{
		my $r = rint(0, 16);
		return "$col " . pick(@CMP) . ' ' . $v->() if $r <= 3;
		return $v->() . ' ' . pick(@CMP) . " $col" if $r == 4;
		if ($r == 5)
		{
			my ($x, $y) = sort { $a <=> $b } map { my $s = $v->(); $s =~ tr/()//d; $s } 1 .. 2;
			return "$col " . pick('BETWEEN', 'NOT BETWEEN', 'BETWEEN SYMMETRIC') . " ($x) AND ($y)";
		}
		if ($r == 6)
		{
			my @l = map { $v->() } 1 .. rint(1, 6);
			push @l, 'NULL' if chance(0.15);
			return "$col " . pick('IN', 'NOT IN', 'IN') . ' (' . join(', ', @l) . ')';
		}
		if ($r == 7)
		{
			my @l = map { my $s = $v->(); $s =~ tr/()//d; $s } 1 .. rint(1, 5);
			my $arr = pick("'{" . join(',', @l) . "}'::" . ($type eq 'int8' ? 'int8' : 'int4') . '[]',
				'ARRAY[' . join(', ', @l) . ']');
			return "$col " . pick('= ANY', '= ANY', '<> ALL', '< ANY', '>= ALL', '> ANY') . " ($arr)";
		}
		return "$col % " . rint(2, 13) . ' = ' . rint(0, 2) if $r == 8;
		if ($r == 9)
		{
			my ($c2) = pick(cols_of_type($t, $type));
			return pick("($col + $al$c2) " . pick(@CMP) . ' ' . $v->(), "$col * 2 " . pick(@CMP) . ' ' . $v->(),
				"abs($col - " . $v->() . ') < ' . rint(1, 500), "coalesce($col, -1) = " . $v->(),
				"$col " . pick(@CMP) . " $al$c2");
		}
		if ($r == 10)
		{
			my $s = $v->();
			$s =~ tr/()//d;
			return pick("$col = ${s}::int8", "$col < $s.5", "$col >= ${s}::numeric", "$col <> ${s}::int8",
				"$col <= " . ($s > 32000 || $s < -32000 ? $s : "${s}::int2"));
		}
		return "$col IS " . pick('DISTINCT FROM', 'NOT DISTINCT FROM') . ' ' . pick($v->(), 'NULL') if $r == 11;
		return "($col " . pick(@CMP) . ' ' . $v->() . ') IS ' . pick('NOT TRUE', 'FALSE', 'UNKNOWN', 'TRUE')
		  if $r == 12;
		return "${col}::text LIKE '" . rint(1, 9) . "%'" if $r == 13;
		return "$col " . pick(@CMP) . ' ' . $v->();
	}
	if ($type eq 'numeric' || $type eq 'float')
	{
		my $r = rint(0, 6);
		return "$col " . pick(@CMP) . ' ' . $v->() if $r <= 2;
		if ($r == 3)
		{
			my ($x, $y) = map { $v->() } 1 .. 2;
			return "$col BETWEEN $x AND $y";
		}
		return "round($col) = " . int(rand(100) - 50) if $r == 4;
		return "$col IN (" . join(', ', map { $v->() } 1 .. rint(1, 4)) . ')' if $r == 5;
		return "$col " . pick(@CMP) . ' ' . int(rand(100) - 50);
	}
	if ($type eq 'bool')
	{
		return pick($col, "NOT $col", "$col IS TRUE", "$col IS NOT FALSE", "$col IS UNKNOWN",
			"$col = true", "$col <> false", "$col IS NOT TRUE", "$col = " . $v->());
	}
	if ($type eq 'date')
	{
		my $r = rint(0, 5);
		return "$col " . pick(@CMP) . ' ' . $v->() if $r <= 2;
		return "$col BETWEEN " . join(' AND ', sort map { $v->() } 1 .. 2) if $r == 3;
		return "extract(year FROM $col) = " . rint(2019, 2024) if $r == 4;
		my $ts = $v->();
		$ts =~ s/::date$/::timestamp/;
		return "$col " . pick(@CMP) . " $ts";
	}

	# name and text
	my $r = rint(0, 14);
	return "$col " . pick(@CMP) . ' ' . $v->() if $r <= 3;
	if ($r == 4)
	{
		my ($x, $y) = sort map { $v->() } 1 .. 2;
		return "$col " . pick('BETWEEN', 'NOT BETWEEN') . " $x AND $y";
	}
	return "$col " . pick('IN', 'NOT IN') . ' (' . join(', ', map { $v->() } 1 .. rint(1, 5)) . ')' if $r == 5;
	return "$col " . pick('LIKE', 'NOT LIKE', 'LIKE') . ' ' . like_pattern($t, $c) if $r <= 7;
	return "$col ILIKE " . lc(like_pattern($t, $c)) if $r == 8;
	return "$col ~ '^[" . pick('A-F', 'a-m', 'N-Z', 'AEIOU') . "]'" if $r == 9;
	return "$col " . pick(@CMP) . ' ' . $v->() . '::text' if $r == 10;
	return pick("upper($col) = upper(" . $v->() . ')', "length($col) " . pick(@CMP) . ' ' . rint(0, 8),
		"substr($col, 2, 2) = " . lit(substr(pick(@{ $TAB{$t}{pool}{$c} }), 1, 2)),
		"$col || 'x' > " . $v->())
	  if $r == 11;
	return "$col " . pick(@CMP) . ' ' . $v->() . ' COLLATE "C"' if $r == 12;
	return "$col = ANY (ARRAY[" . join(', ', map { $v->() } 1 .. rint(1, 4)) . "]::$type\[])" if $r == 13;
	return "$col IS " . pick('DISTINCT FROM', 'NOT DISTINCT FROM') . ' ' . $v->();
}

# a select-list item of table $t
sub item
{
	my ($t, $al) = @_;
	my ($c, $type) = @{ pick(@{ $TAB{$t}{cols} }) };
	my $col = "$al$c";
	return $col if chance(0.75);
	if ($type eq 'int' || $type eq 'int8')
	{
		return pick("$col + 1", "coalesce($col, -1)", "CASE WHEN $col > " . cval($t, $c) . " THEN 'hi' ELSE 'lo' END",
			"$col % 7", "${col}::text || '!'", "greatest($col, " . cval($t, $c) . ')');
	}
	if ($type eq 'name' || $type eq 'text')
	{
		return pick("upper($col)", "$col || '-'", "length($col)", "coalesce($col, '?')", "left($col, 2)");
	}
	return "$col IS NULL" if $type eq 'bool';
	return "${col}::text";
}

sub items
{
	my ($t, $al, $max) = @_;
	my $n = rint(1, $max);
	my %seen;
	my @l;
	for (1 .. $n * 2)
	{
		my $i = item($t, $al);
		next if $seen{$i}++;
		push @l, $i;
		last if @l >= $n;
	}
	return @l;
}

# select-list items named c1, c2, ...: ORDER BY a column name then means the
# column, never an output column of the same name ("d" and "d::text")
sub aliased
{
	my @items = @_;
	return map { "$items[$_] AS c" . ($_ + 1) } 0 .. $#items;
}

sub aggregate
{
	my ($t, $al) = @_;
	my $key = "$al$TAB{$t}{key}";
	my @ints = cols_of_type($t, 'int', 'int8');
	my @any = map { $_->[0] } @{ $TAB{$t}{cols} };
	my @ordered = map { $_->[0] } grep { $_->[1] ne 'bool' } @{ $TAB{$t}{cols} };
	my @strs = cols_of_type($t, 'name', 'text');
	my $i = $al . pick(@ints);
	my $r = rint(0, 13);
	return 'count(*)' if $r == 0;
	return "count($al" . pick(@any) . ')' if $r == 1;
	return "sum($i)" if $r == 2;
	return "avg($i)" if $r == 3;
	return 'min(' . $al . pick(@ordered) . ')' if $r == 4;
	return 'max(' . $al . pick(@ordered) . ')' if $r == 5;
	return "string_agg($al" . pick(@strs) . "::text, ',' ORDER BY $key)" if $r == 6;
	return 'bool_and(' . pred($t, $al, 2) . ')' if $r == 7;
	return 'bool_or(' . pred($t, $al, 2) . ')' if $r == 8;
	return "count(DISTINCT $al" . pick(@any) . ')' if $r == 9;
	return "sum($i) FILTER (WHERE " . pred($t, $al, 2) . ')' if $r == 10;
	return "max($i + $al" . pick(@ints) . ')' if $r == 11;
	return "count(*) FILTER (WHERE " . pred($t, $al, 1) . ')' if $r == 12;
	return "array_agg($i ORDER BY $key) FILTER (WHERE $key % 97 = 3)";
}

sub aggregates
{
	my ($t, $al, $max) = @_;
	return map { aggregate($t, $al) } 1 .. rint(1, $max);
}

sub where { my ($t, $al) = @_; return chance(0.1) ? '' : ' WHERE ' . pred($t, $al); }

sub ph { return "{$_[0]}"; }

# joins: [left table, right table, condition, explosive]
my @JOINS = (
	[ 'tenk', 'onek', 'a.unique1 = b.unique1', 0 ],
	[ 'tenk', 'onek', 'a.unique2 = b.unique2', 0 ],
	[ 'tenk', 'onek', 'a.thousand = b.unique1', 0 ],
	[ 'tenk', 'onek', 'a.unique1 = b.unique2', 0 ],
	[ 'tenk', 'onek', 'a.stringu1 = b.stringu1', 0 ],
	[ 'tenk', 'onek', 'a.tenthous = b.unique1 AND a.ten = b.ten', 0 ],
	[ 'tenk', 'onek', 'a.hundred = b.unique2', 0 ],
	[ 'tenk', 'onek', 'a.hundred = b.hundred AND a.four = b.four', 1 ],
	[ 'tenk', 'tenk', 'a.unique1 = b.unique2', 0 ],
	[ 'tenk', 'tenk', 'a.unique2 = b.tenthous', 0 ],
	[ 'tenk', 'tenk', 'a.stringu2 = b.stringu1', 0 ],
	[ 'mix', 'tenk', 'a.a = b.unique1', 0 ],
	[ 'mix', 'tenk', 'a.id = b.unique2', 0 ],
	[ 'mix', 'tenk', 'a.a = b.thousand', 1 ],
	[ 'onek', 'mix', 'a.unique1 = b.a', 0 ],
	[ 'onek', 'mix', 'a.stringu1 = b.t', 0 ],
);

# a query: { sql, ordered, pre, post, kind }
sub gen_query
{
	my ($qno) = @_;
	my @tabs = ('tenk', 'tenk', 'onek', 'mix');
	my $t = pick(@tabs);
	my $key = $TAB{$t}{key};
	my $T = ph($t);
	my $k = rint(0, 99);

	if ($k < 16)
	{
		return { kind => 'count', sql => "SELECT count(*) FROM $T WHERE " . pred($t, '') };
	}
	if ($k < 26)
	{
		return { kind => 'filter', sql => 'SELECT ' . join(', ', items($t, '', 5)) . " FROM $T" . where($t, '') };
	}
	if ($k < 34)
	{
		my ($c) = pick(map { $_->[0] } @{ $TAB{$t}{cols} });
		my $ord = chance(0.5) ? "$c " . pick('', 'DESC', 'NULLS FIRST', 'DESC NULLS LAST') . ", $key" : $key;
		$ord .= ' DESC' if chance(0.3);
		my $lim = ' LIMIT ' . rint(1, 40);
		$lim .= ' OFFSET ' . rint(0, 200) if chance(0.5);
		$lim = ' OFFSET ' . rint(0, 30) . ' ROWS FETCH FIRST ' . rint(1, 9) . ' ROWS ONLY' if chance(0.1);
		return { kind => 'orderby', ordered => 1,
			sql => 'SELECT ' . join(', ', aliased(items($t, '', 4)), $key) . " FROM $T" . where($t, '') . " ORDER BY $ord$lim" };
	}
	if ($k < 42)
	{
		return { kind => 'agg', sql => 'SELECT ' . join(', ', aggregates($t, '', 5)) . " FROM $T" . where($t, '') };
	}
	if ($k < 52)
	{
		my @g = shuffle_n(rint(1, 2), @{ $TAB{$t}{groups} });
		my $sql = 'SELECT ' . join(', ', @g, aggregates($t, '', 4)) . " FROM $T" . where($t, '') . ' GROUP BY ';
		my $gb = join(', ', @g);
		$gb = pick("ROLLUP ($gb)", "CUBE ($gb)", "GROUPING SETS (($gb), ())") if chance(0.12);
		$sql .= $gb;
		$sql .= ' HAVING ' . pick('count(*) > ' . rint(1, 200), 'min(' . $TAB{$t}{key} . ') < ' . cval($t, $key),
			'sum(' . pick(cols_of_type($t, 'int')) . ') IS NOT NULL')
		  if chance(0.35);
		return { kind => 'groupby', sql => $sql };
	}
	if ($k < 57)
	{
		if (chance(0.5))
		{
			return { kind => 'distinct', sql => 'SELECT DISTINCT ' . join(', ', items($t, '', 3)) . " FROM $T" . where($t, '') };
		}
		my ($g) = pick(@{ $TAB{$t}{groups} });
		return { kind => 'distinct_on', ordered => 1,
			sql => "SELECT DISTINCT ON ($g) $g, $key, " . join(', ', aliased(items($t, '', 2))) . " FROM $T"
			  . where($t, '') . " ORDER BY $g, $key" . pick('', ' DESC') };
	}
	if ($k < 72)
	{
		# joins, destor x destor or destor x heap
		my $j = pick(@JOINS);
		my ($ta, $tb, $cond, $explosive) = @$j;
		my $A = ph($ta);
		my $B = chance(0.4) ? "${tb}_heap" : ph($tb);
		($A, $B) = ("${ta}_heap", ph($tb)) if $B =~ /_heap/ && chance(0.3);
		my $type = pick('JOIN', 'JOIN', 'LEFT JOIN', 'LEFT JOIN', 'RIGHT JOIN', 'FULL JOIN', 'SEMI', 'ANTI');
		my $pa = pred($ta, 'a.');
		my $pb = pred($tb, 'b.');
		if ($type eq 'SEMI' || $type eq 'ANTI')
		{
			my $not = $type eq 'ANTI' ? 'NOT ' : '';
			return { kind => lc($type),
				sql => 'SELECT ' . join(', ', items($ta, 'a.', 3)) . " FROM $A a WHERE ${not}EXISTS "
				  . "(SELECT 1 FROM $B b WHERE $cond AND $pb) AND $pa" };
		}
		my $from = "$A a $type $B b ON $cond";
		my ($where, $on);
		if ($type eq 'JOIN')
		{
			$where = " WHERE $pa AND $pb";
		}
		elsif ($type eq 'LEFT JOIN')
		{
			$from .= " AND $pb";
			$where = " WHERE $pa";
		}
		elsif ($type eq 'RIGHT JOIN')
		{
			$from .= " AND $pa";
			$where = " WHERE $pb";
		}
		else
		{
			$where = chance(0.5) ? " WHERE ($pa OR a.$TAB{$ta}{key} IS NULL)" : '';
		}
		if ($explosive || chance(0.4))
		{
			my @agg = (aggregates($ta, 'a.', 2), aggregates($tb, 'b.', 2));
			@agg = grep { !/string_agg|array_agg/ } @agg;
			@agg = ('count(*)') unless @agg;
			return { kind => 'join_agg', sql => 'SELECT ' . join(', ', 'count(*)', @agg) . " FROM $from$where" };
		}
		my @sel = (items($ta, 'a.', 3), items($tb, 'b.', 2));
		if (chance(0.3))
		{
			return { kind => 'join_limit', ordered => 1,
				sql => 'SELECT ' . join(', ', @sel, "a.$TAB{$ta}{key}", "b.$TAB{$tb}{key}") . " FROM $from$where"
				  . " ORDER BY a.$TAB{$ta}{key}, b.$TAB{$tb}{key} LIMIT " . rint(1, 50) };
		}
		return { kind => 'join', sql => 'SELECT ' . join(', ', @sel) . " FROM $from$where" };
	}
	if ($k < 82)
	{
		# subqueries and CTEs
		my $r = rint(0, 7);
		my $O = chance(0.7) ? ph('onek') : 'onek_heap';
		if ($r == 0)
		{
			my ($c) = pick(qw(unique1 unique2 thousand hundred tenthous));
			return { kind => 'in_subquery',
				sql => 'SELECT ' . join(', ', items('onek', 'o.', 3)) . " FROM $O o WHERE o.unique1 "
				  . pick('IN', 'NOT IN') . " (SELECT t.$c FROM {tenk} t WHERE " . pred('tenk', 't.')
				  . " AND t.$c IS NOT NULL) AND " . pred('onek', 'o.') };
		}
		if ($r == 1)
		{
			my ($c) = pick(qw(unique2 thousand twothousand fivethous));
			return { kind => 'scalar_subquery',
				sql => "SELECT count(*), min(t.unique1) FROM {tenk} t WHERE t.$c "
				  . pick(@CMP) . " (SELECT " . pick('avg', 'max', 'min') . "(o.unique2) FROM $O o WHERE "
				  . pred('onek', 'o.') . ')' };
		}
		if ($r == 2)
		{
			my $n = rint(1, 12);
			return { kind => 'correlated', ordered => 1,
				sql => "SELECT t.unique1, (SELECT count(*) FROM $O o WHERE o.ten = t.ten AND o.unique1 < t.unique1"
				  . " AND " . pred('onek', 'o.') . "), (SELECT max(o.stringu1) FROM {onek} o WHERE o.thousand = t.thousand)"
				  . " FROM {tenk} t WHERE t.unique2 < $n ORDER BY t.unique1" };
		}
		if ($r == 3)
		{
			my $mat = pick('', 'MATERIALIZED ', 'NOT MATERIALIZED ');
			return { kind => 'cte',
				sql => "WITH c AS ${mat}(SELECT unique1, unique2, ten, stringu1 FROM {tenk} WHERE " . pred('tenk', '')
				  . ") SELECT c.ten, count(*), max(c.stringu1), sum(o.unique2) FROM c JOIN $O o ON o.unique1 = c.unique2 "
				  . "GROUP BY c.ten" };
		}
		if ($r == 4)
		{
			return { kind => 'cte2',
				sql => "WITH m AS (SELECT id, a, t FROM {mix} WHERE " . pred('mix', '') . "), "
				  . "k AS (SELECT unique1, stringu1 FROM {tenk} WHERE " . pred('tenk', '') . ") "
				  . "SELECT count(*), count(m.t), sum(k.unique1) FROM m LEFT JOIN k ON k.unique1 = m.a" };
		}
		if ($r == 5)
		{
			my $n = rint(1, 6);
			return { kind => 'lateral', ordered => 1,
				sql => "SELECT o.unique1, x.unique2, x.stringu1 FROM $O o CROSS JOIN LATERAL "
				  . "(SELECT t.unique2, t.stringu1 FROM {tenk} t WHERE t.thousand = o.unique1 AND " . pred('tenk', 't.')
				  . " ORDER BY t.unique1 LIMIT 2) x WHERE o.unique2 < $n ORDER BY o.unique1, x.unique2" };
		}
		if ($r == 6)
		{
			return { kind => 'any_subquery',
				sql => "SELECT count(*) FROM {mix} m WHERE m.a " . pick('= ANY', '< ALL', '> ANY')
				  . " (SELECT o.hundred FROM $O o WHERE " . pred('onek', 'o.') . ")" };
		}
		return { kind => 'exists_uncorrelated',
			sql => "SELECT count(*) FROM {onek} WHERE " . pick('', 'NOT ') . "EXISTS (SELECT 1 FROM {tenk} WHERE "
			  . pred('tenk', '') . ') AND ' . pred('onek', '') };
	}
	if ($k < 89)
	{
		# window functions
		my ($p) = pick(@{ $TAB{$t}{groups} });
		my ($c) = pick(cols_of_type($t, 'int'));
		my @w = ("row_number() OVER (PARTITION BY $p ORDER BY $key)",
			"sum($c) OVER (PARTITION BY $p ORDER BY $key)",
			"rank() OVER (ORDER BY $c)",
			"lag($c) OVER (ORDER BY $key)",
			"count(*) OVER (PARTITION BY $p)",
			"first_value($key) OVER (PARTITION BY $p ORDER BY $key DESC)",
			"sum($c) OVER (ORDER BY $key ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)",
			"dense_rank() OVER (PARTITION BY $p ORDER BY $c)");
		my @sel = ($key, shuffle_n(rint(1, 3), @w));
		if (chance(0.4))
		{
			return { kind => 'window_topn',
				sql => "SELECT * FROM (SELECT $key, $c, row_number() OVER (PARTITION BY $p ORDER BY $c, $key) AS rn FROM $T"
				  . where($t, '') . ") s WHERE rn <= " . rint(1, 3) };
		}
		return { kind => 'window', sql => 'SELECT ' . join(', ', @sel) . " FROM $T" . where($t, '') };
	}
	if ($k < 95)
	{
		# set operations
		my $op = pick('UNION', 'UNION ALL', 'INTERSECT', 'INTERSECT ALL', 'EXCEPT', 'EXCEPT ALL');
		my ($c) = pick(qw(unique1 unique2 thousand hundred stringu1 string4 ten));
		my $l = "SELECT $c FROM {tenk} WHERE " . pred('tenk', '');
		my $r = "SELECT $c FROM " . pick('{onek}', 'onek_heap') . ' WHERE ' . pred('onek', '');
		$r = "SELECT a FROM {mix} WHERE " . pred('mix', '') if $c =~ /^(unique|thousand|hundred|ten)/ && chance(0.3);
		return { kind => 'setop', sql => "$l $op $r" };
	}
	if ($k < 98)
	{
		# whole rows
		my $tt = pick('tenk', 'onek', 'mix');
		return pick(
			{ kind => 'wholerow', sql => "SELECT x::text FROM " . ph($tt) . ' x WHERE ' . pred($tt, 'x.') },
			{ kind => 'wholerow_json', ordered => 1,
				sql => "SELECT row_to_json(x) FROM " . ph($tt) . ' x WHERE ' . pred($tt, 'x.')
				  . " ORDER BY x.$TAB{$tt}{key} LIMIT 20" },
			{ kind => 'wholerow_null', sql => "SELECT count(*) FILTER (WHERE x IS NULL), count(*) FILTER (WHERE x IS NOT NULL) FROM "
				  . ph($tt) . ' x' });
	}
	# prepared statements with generic plans (parameters in the quals)
	my ($c) = pick(cols_of_type($t, 'int'));
	my ($x, $y) = sort { $a <=> $b } map { my $s = cval($t, $c); $s =~ tr/()//d; $s } 1 .. 2;
	my $name = "p$qno";
	return { kind => 'prepared',
		pre => "SET plan_cache_mode = " . pick('force_generic_plan', 'force_custom_plan') . ";\n"
		  . "PREPARE $name(int, int) AS SELECT count(*), min($key), max($c) FROM $T WHERE $c BETWEEN \$1 AND \$2"
		  . " OR $c = \$1 + 7;",
		sql => "EXECUTE $name($x, $y)",
		post => "DEALLOCATE $name;\nRESET plan_cache_mode;" };
}

my @queries;
for my $i (1 .. $nqueries)
{
	my $q = gen_query($i);
	$q->{ordered} //= 0;
	# some queries run with other plan shapes: merge joins, sorted
	# aggregation, parallel scans
	if (!$q->{pre} && chance(0.25))
	{
		my @knobs = @{ pick([ 'enable_hashjoin = off' ], [ 'enable_hashagg = off' ],
			[ 'max_parallel_workers_per_gather = 2', 'parallel_setup_cost = 0', 'parallel_tuple_cost = 0',
				'min_parallel_table_scan_size = 0' ]) };
		$q->{pre} = join("\n", map { "SET $_;" } @knobs);
		$q->{post} = join("\n", map { 'RESET ' . (split / /)[0] . ';' } @knobs);
		$q->{kind} .= '+knobs';
	}
	utf8::encode($q->{$_}) for grep { defined $q->{$_} } qw(sql pre post);
	push @queries, $q;
}
my (%kinds, $knobbed);
for my $q (@queries)
{
	my $kind = $q->{kind};
	$knobbed++ if $kind =~ s/\+knobs$//;
	$kinds{$kind}++;
}
note('query kinds: ' . join(', ', map { "$_ $kinds{$_}" } sort keys %kinds)
	  . '; ' . ($knobbed // 0) . ' of them with other planner settings');

# ---------------------------------------------------------------------------
# Running them: one psql session per variant
# ---------------------------------------------------------------------------
my %VARIANTS = (
	heap => { tenk => 'tenk_heap', onek => 'onek_heap', mix => 'mix_heap' },
	destor => { tenk => 'tenk_d', onek => 'onek_d', mix => 'mix_d' },
	destor_ordered => { tenk => 'tenk_o', onek => 'onek_o', mix => 'mix_o' },
);

sub instantiate
{
	my ($q, $v) = @_;
	my %r = %$q;
	for my $f (qw(sql pre post))
	{
		next unless defined $r{$f};
		$r{$f} =~ s/\{(tenk|onek|mix)\}/$VARIANTS{$v}{$1}/g;
	}
	return \%r;
}

my $setup = "SET statement_timeout = '60s';";

sub run_variant
{
	my ($v, $round) = @_;
	my $t0 = time();
	my $res = Differential::run_batch($node, 'postgres', $setup, [ map { instantiate($_, $v) } @queries ],
		timeout => 600);
	note(sprintf('%s, %s: %d queries in %.1f s', $round, $v, scalar @queries, time() - $t0));
	return $res;
}

# Compare one round: every destor variant against the heap results.
sub compare_round
{
	my ($round, %results) = @_;
	my $heap = $results{heap};
	my @heap_errors = grep { defined $heap->[$_]{err} } 0 .. $#queries;
	# the generator makes only valid queries: none fails on heap tables
	is(scalar @heap_errors, 0, "$round: every generated query runs on the heap tables")
	  or diag(join("\n", map { "#$_: $queries[$_]{sql}\n  -> $heap->[$_]{err}" }
			  @heap_errors[ 0 .. ($#heap_errors < 9 ? $#heap_errors : 9) ]));
	my $nonempty = grep { $heap->[$_]{out} =~ /\S/ && $heap->[$_]{out} !~ /^0?\n$/ } 0 .. $#queries;
	note("$round: $nonempty of " . scalar(@queries) . ' queries have a non-empty, non-zero result on the heap tables');

	for my $v (qw(destor destor_ordered))
	{
		next unless $results{$v};
		my @bad;
		for my $i (0 .. $#queries)
		{
			my $h = $heap->[$i];
			my $d = $results{$v}[$i];
			my $hs = defined $h->{err} ? "ERROR: $h->{err}" : Differential::canonical($h->{out}, $queries[$i]{ordered});
			my $ds = defined $d->{err} ? "ERROR: $d->{err}" : Differential::canonical($d->{out}, $queries[$i]{ordered});
			push @bad, [ $i, $ds, $hs ] if $hs ne $ds;
		}
		my $shown = 0;
		for my $b (@bad)
		{
			last if $shown++ >= 5;
			my ($i, $ds, $hs) = @$b;
			my $q = instantiate($queries[$i], $v);
			my ($got, $expected) = Differential::excerpts($ds, $hs);
			is($got, $expected,
				"$round: query #$i on $v gives the heap result: " . ($q->{pre} ? "$q->{pre} " : '') . $q->{sql});
		}
		is(scalar @bad, 0, "$round, $v tables: all " . scalar(@queries) . ' queries give the same results as heap tables')
		  or diag("$round: mismatching queries on $v: " . join(', ', map { "#$_->[0]" } @bad));
	}
	if ($ENV{DESTOR_DIFF_SHOW})
	{
		diag("#$_ [$queries[$_]{kind}] " . ($queries[$_]{pre} // '') . " $queries[$_]{sql}") for 0 .. $#queries;
	}
}

# Every destor copy holds exactly the rows of its heap table.
sub same_rows
{
	my ($round) = @_;
	for my $t (qw(tenk onek mix))
	{
		for my $v (qw(d o))
		{
			is($node->safe_psql('postgres',
					"SELECT (SELECT count(*) FROM (SELECT x::text FROM ${t}_heap x EXCEPT ALL SELECT y::text FROM ${t}_$v y) s)"
					  . " || '/' || (SELECT count(*) FROM (SELECT y::text FROM ${t}_$v y EXCEPT ALL SELECT x::text FROM ${t}_heap x) s)"),
				'0/0', "$round: ${t}_$v holds exactly the rows of ${t}_heap");
		}
	}
}

# ANALYZE gives one destor copy statistics, so plans differ between the two
$node->safe_psql('postgres', 'ANALYZE tenk_o; ANALYZE onek_o; ANALYZE mix_o;');

my %round1 = map { $_ => run_variant($_, 'as loaded') } qw(heap destor destor_ordered);
compare_round('as loaded', %round1);

# ---------------------------------------------------------------------------
# Pruning and projection are at work
# ---------------------------------------------------------------------------
sub explain_plan
{
	my ($q, $analyze) = @_;
	my $opts = $analyze ? 'ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF' : 'COSTS OFF';
	return $node->safe_psql('postgres', "EXPLAIN ($opts) $q");
}

sub explain_field
{
	my ($plan, $field, $nth) = @_;
	my @v = ($plan =~ /^\s*\Q$field\E: (.*)$/mg);
	return $v[ $nth // 0 ];
}

my $plan = explain_plan('SELECT stringu1 FROM tenk_o WHERE unique1 = 42');
cmp_ok(explain_field($plan, 'Segments Pruned'), '>=', 3, 'unique1 = 42 prunes the segments that cannot hold it')
  or diag($plan);
cmp_ok(explain_field($plan, 'Row Groups Pruned'), '>=', explain_field($plan, 'Row Groups') - 1,
	'unique1 = 42 reads one row group') or diag($plan);
is(explain_field($plan, 'Columns Fetched'), 'unique1, stringu1', 'only the referenced columns are fetched');
is($node->safe_psql('postgres', 'SELECT stringu1 FROM tenk_o WHERE unique1 = 42'),
	$node->safe_psql('postgres', 'SELECT stringu1 FROM tenk_heap WHERE unique1 = 42'), 'and the row is found');

$plan = explain_plan('SELECT unique1 FROM tenk_o WHERE unique1 = 42', 1);
is(explain_field($plan, 'Row Groups Read'), '1', 'EXPLAIN ANALYZE: one row group read for unique1 = 42')
  or diag($plan);

$plan = explain_plan('SELECT count(*) FROM tenk_d WHERE unique2 BETWEEN 100 AND 200');
cmp_ok(explain_field($plan, 'Segments Pruned'), '>=', 5, 'a range on unique2 prunes in load order too') or diag($plan);

$plan = explain_plan('SELECT count(*) FROM tenk_o WHERE unique1 IN (3, 9998)');
is(explain_field($plan, 'Segments Pruned'), '2', 'an IN list keeps the segments of its values') or diag($plan);

$plan = explain_plan('SELECT unique1 FROM tenk_o WHERE ten IS NULL');
is(explain_field($plan, 'Segments Pruned'), '3', 'IS NULL prunes segments without NULLs') or diag($plan);
is(explain_field($plan, 'Row Groups Pruned'), explain_field($plan, 'Row Groups') - 1,
	'IS NULL: only the row group of NULL rows is read') or diag($plan);

$plan = explain_plan('SELECT count(*) FROM tenk_d WHERE ten IS NOT NULL AND unique2 >= 10000');
is(explain_field($plan, 'Segments Pruned'), explain_field($plan, 'Segments'),
	'ten IS NOT NULL prunes the all-NULL segment, unique2 >= 10000 the others') or diag($plan);

$plan = explain_plan('SELECT count(*) FROM mix_o WHERE a = 5 AND id BETWEEN 1001 AND 1500');
is(explain_field($plan, 'Row Groups Pruned'), explain_field($plan, 'Row Groups'),
	'a row group of only NULLs is pruned by a strict comparison') or diag($plan);

$plan = explain_plan('SELECT count(*) FROM tenk_d');
is(explain_field($plan, 'Columns Fetched'), '(none)', 'count(*) fetches no column') or diag($plan);
is(explain_field($plan, 'Segments Pruned'), '0', 'and prunes nothing');

$plan = explain_plan('SELECT count(*) FROM tenk_o WHERE unique1 > 100000');
is(explain_field($plan, 'Segments Pruned'), explain_field($plan, 'Segments'), 'an impossible range prunes everything')
  or diag($plan);

$plan = explain_plan('SELECT a.stringu2 FROM tenk_o a JOIN onek_o b ON a.unique1 = b.unique2 WHERE b.ten = 3');
is(join(' / ', sort(explain_field($plan, 'Columns Fetched', 0), explain_field($plan, 'Columns Fetched', 1))),
	'unique1, stringu2 / unique2, ten', 'a join fetches the join and output columns of each side')
  or diag($plan);

$plan = explain_plan('SELECT x FROM tenk_o x WHERE unique1 = 7');
is(explain_field($plan, 'Columns Fetched'),
	'unique1, unique2, two, four, ten, twenty, hundred, thousand, twothousand, fivethous, tenthous, odd, even, '
	  . 'stringu1, stringu2, string4', 'a whole-row reference fetches every column') or diag($plan);

$plan = explain_plan("SELECT id FROM mix_o WHERE t = 'alpha_1'");
is(explain_field($plan, 'Columns Fetched'), 'id, t', 'a filter column is fetched with the output column');

$plan = explain_plan('SELECT count(*) FROM tenk_o WHERE thousand BETWEEN 10 AND 20 AND unique1 < 5000');
cmp_ok(explain_field($plan, 'Row Groups Pruned'), '>', 0, 'a condition on a column correlated with the load order prunes row groups')
  or diag($plan);


$plan = $node->safe_psql('postgres', 'SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; '
	  . 'SET parallel_tuple_cost = 0; EXPLAIN (COSTS OFF) SELECT count(*) FROM tenk_d WHERE four = 2');
like($plan, qr/Parallel Foreign Scan on tenk_d/, 'the parallel planner settings give parallel scans of destor tables')
  or diag($plan);

# ---------------------------------------------------------------------------
# The same DELETEs, UPDATEs and INSERTs on every copy, then the queries
# again; then destor.compact() and the queries once more
# ---------------------------------------------------------------------------
my ($dml_rc, $dml_out, $dml_err) = $node->psql('postgres', 'DELETE FROM tenk_d WHERE false');
if ($dml_rc != 0)
{
	note("no DML on destor tables in this build ($dml_err): DML rounds skipped");
}
else
{
	my @dml = (
		'DELETE FROM {tenk} WHERE unique1 % 7 = 3',
		'DELETE FROM {tenk} WHERE unique1 BETWEEN 500 AND 900',
		"UPDATE {tenk} SET hundred = NULL, stringu1 = 'UPD' || (unique1 % 10) WHERE unique2 BETWEEN 2000 AND 2600",
		'UPDATE {tenk} SET unique2 = unique2 + 20000 WHERE four = 1 AND unique1 < 3000',
		'DELETE FROM {tenk} WHERE unique2 >= 10000 AND unique2 < 10100',
		'DELETE FROM {onek} WHERE ten = 3 OR unique1 > 1040',
		'UPDATE {onek} SET string4 = NULL WHERE unique1 % 5 = 0',
		'DELETE FROM {mix} WHERE t IS NULL OR id BETWEEN 1200 AND 1300',
		'UPDATE {mix} SET a = coalesce(a, 0) + 1, flag = NOT flag WHERE id % 4 = 0',
		'INSERT INTO {mix} SELECT id + 10000, a, b, n, t, flag, d, f, upper(u) FROM {mix} WHERE id < 700',
		'DELETE FROM {mix} WHERE id > 10000 AND id % 3 = 0',
	);
	for my $v (qw(heap destor destor_ordered))
	{
		$node->safe_psql('postgres', join(";\n", map { instantiate({ sql => $_ }, $v)->{sql} } @dml) . ';');
	}
	same_rows('after DML');
	my %round2 = map { $_ => run_variant($_, 'after DML') } qw(heap destor destor_ordered);
	compare_round('after DML', %round2);

	my $compacted = $node->safe_psql('postgres', q{
SELECT string_agg(t || ': ' || c.segments_before || ' -> ' || c.segments_after, ', ')
  FROM unnest(ARRAY['tenk_d', 'onek_d', 'mix_d', 'tenk_o', 'onek_o', 'mix_o']) t, destor.compact(t::regclass) c});
	note("compaction: $compacted");
	same_rows('after compaction');
	my %round3 = (heap => $round2{heap}, map { $_ => run_variant($_, 'after compaction') } qw(destor destor_ordered));
	compare_round('after compaction', %round3);
}

# ---------------------------------------------------------------------------
# Rows written in a session with other date, interval and float output
# settings read back the same in a default session.  (Regression: destor once
# kept min/max statistics and values of non-built-in types as text in the
# writer's DateStyle/IntervalStyle/extra_float_digits.)
# ---------------------------------------------------------------------------
{
	$node->safe_psql('postgres', q{
CREATE TYPE dpair AS (d date, x float8);
CREATE TABLE gucs_heap (id int, d date, iv interval, f float8, c dpair);
CREATE FOREIGN TABLE gucs_d (id int, d date, iv interval, f float8, c dpair) SERVER pool;
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = 0;
INSERT INTO gucs_heap
SELECT i, '2020-01-05'::date + i, make_interval(days => -1, hours => -2 - i), 0.1::float8 * 3 - i,
       ROW('2020-01-05'::date + i, 0.1::float8 * 3 - i)::dpair
  FROM generate_series(0, 5) i;
INSERT INTO gucs_d SELECT * FROM gucs_heap;
});
	for my $q ("SELECT count(*) FROM {t} WHERE d = '2020-01-07'",
		"SELECT count(*) FROM {t} WHERE iv < '-23 hours'",
		'SELECT count(*) FROM {t} WHERE f > 0.3',
		'SELECT c::text FROM {t} ORDER BY id')
	{
		my ($h, $d) = map {
			my $sql = $q =~ s/\{t\}/$_/r;
			my ($rc, $out, $err) = $node->psql('postgres', $sql);
			$rc ? "ERROR: $err" : $out;
		} qw(gucs_heap gucs_d);
		is($d, $h, "written with DateStyle 'SQL, DMY', IntervalStyle sql_standard, extra_float_digits 0: $q");
	}

	# even with the same settings for writer and reader: the Postgres
	# DateStyle prints a zone abbreviation that loses seconds of the offset
	my $tz = "SET TimeZone = 'Asia/Kolkata'; SET DateStyle = 'Postgres, MDY';";
	$node->safe_psql('postgres', qq{$tz
CREATE TABLE tz_heap (t timestamptz);
CREATE FOREIGN TABLE tz_d (t timestamptz) SERVER pool OPTIONS (row_group_rows '100');
INSERT INTO tz_heap SELECT '1890-01-01 00:00+00'::timestamptz + i * interval '1 hour' FROM generate_series(0, 999) i;
INSERT INTO tz_d SELECT * FROM tz_heap;
});
	my ($h, $d) = map { scalar $node->safe_psql('postgres', "$tz SELECT count(*) FROM $_ WHERE t >= '1890-01-05 03:00+00'") }
	  qw(tz_heap tz_d);
	is($d, $h, "written and read with TimeZone Asia/Kolkata and DateStyle Postgres: t >= '1890-01-05 03:00+00'");
}

note(sprintf('total runtime %.1f s', time() - $t_start));
done_testing();
