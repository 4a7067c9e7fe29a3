# Differential — helpers for differential TAP tests of destor tables: the
# same queries run against heap tables and destor tables must give the same
# results.
#
# A batch of queries runs in one psql session; each query's output (or its
# error message) is cut out of psql's output by markers, so one failing
# query neither stops the batch nor shifts the others' results.
package Differential;

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Utils;

# The folder holding the shared test data files: $ENV{DESTOR_TESTDATA} if
# set (the testdata folder or its pgregress/), else ../shared/testdata
# beside the repository root, the root found from the given test file's
# location (test/tap/t/NAME.pl).  Returns the folder that holds all the
# named files, or undef when there is none.
sub find_testdata
{
	my ($testfile, @files) = @_;
	my @bases;
	push @bases, $ENV{DESTOR_TESTDATA} if defined $ENV{DESTOR_TESTDATA} && $ENV{DESTOR_TESTDATA} ne '';
	my $here = abs_path(dirname($testfile));
	push @bases, "$here/../../../../shared/testdata" if defined $here;
	for my $base (@bases)
	{
		for my $dir ("$base/pgregress", $base)
		{
			next unless -d $dir;
			next if grep { !-r "$dir/$_" } @files;
			return abs_path($dir);
		}
	}
	return undef;
}

# Run queries in one psql session.  $queries: array of { sql, pre, post }
# where pre/post are optional commands run (silently) around the query.
# Returns an array of { out => rows, each ending in "\n"; err => message or
# undef }.  NULL shows as "(null)", so it differs from an empty string.
sub run_batch
{
	my ($node, $db, $setup, $queries, %opts) = @_;
	my $script = "\\pset null '(null)'\n\\set VERBOSITY terse\n" . ($setup // '') . "\n";
	for my $i (0 .. $#$queries)
	{
		my $q = $queries->[$i];
		$script .= "$q->{pre}\n" if $q->{pre};
		$script .= "\\echo '\@\@Q $i'\n$q->{sql};\n"
		  . "\\if :ERROR\n\\echo '\@\@ERROR' :LAST_ERROR_MESSAGE\n\\endif\n";
		$script .= "$q->{post}\n" if $q->{post};
	}
	$script .= "\\echo '\@\@END'\n";
	my ($out, $err) = ('', '');
	$node->psql($db, $script, stdout => \$out, stderr => \$err, on_error_stop => 0,
		timeout => $opts{timeout} // $PostgreSQL::Test::Utils::timeout_default);
	die "psql batch did not finish; stderr: $err" unless $out =~ /^\@\@END$/m;

	my @res = map { { out => '', err => undef } } @$queries;
	my $cur;
	my @lines;
	my $flush = sub {
		return unless defined $cur;
		my @errs = grep { /^\@\@ERROR/ } @lines;
		my @body = grep { !/^\@\@ERROR/ } @lines;
		$res[$cur]{out} = join('', map { "$_\n" } @body);
		$res[$cur]{err} = join('; ', map { s/^\@\@ERROR\s*//r } @errs) if @errs;
	};
	for my $line (split /\n/, $out, -1)
	{
		if ($line =~ /^\@\@Q (\d+)$/)
		{
			$flush->();
			$cur = $1;
			@lines = ();
		}
		elsif ($line eq '@@END')
		{
			$flush->();
			$cur = undef;
			last;
		}
		elsif (defined $cur)
		{
			push @lines, $line;
		}
	}
	return \@res;
}

sub rows
{
	my ($text) = @_;
	my @rows = split(/\n/, $text, -1);
	pop @rows if @rows && $rows[-1] eq '' && $text =~ /\n\z/;
	return @rows;
}

# The result text as compared: rows sorted unless the query's order is total.
sub canonical
{
	my ($text, $ordered) = @_;
	return $text if $ordered;
	return join('', sort map { "$_\n" } rows($text));
}

# Excerpts of two different results around their first differing row, so
# that a long result shows where it goes wrong: (got, expected).
sub excerpts
{
	my ($got, $expected, $context) = @_;
	$context //= 3;
	my @g = rows($got);
	my @e = rows($expected);
	my $i = 0;
	$i++ while $i < @g && $i < @e && $g[$i] eq $e[$i];
	my $from = $i > $context ? $i - $context : 0;
	my $cut = sub {
		my @l = @_;
		my $to = $i + $context < $#l ? $i + $context : $#l;
		my @out = map { "row $_: " . (length($l[$_]) > 300 ? substr($l[$_], 0, 300) . '...' : $l[$_]) } $from .. $to;
		push @out, '(end of result)' if $i >= @l;
		return sprintf("%d rows; first difference at row %d\n", scalar @l, $i) . join("\n", @out);
	};
	return ($cut->(@g), $cut->(@e));
}

1;
