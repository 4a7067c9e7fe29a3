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
use Test::More;

# The folder holding the shared test data (the one with pgregress/ in it):
# $ENV{DESTOR_TESTDATA} if set (either that folder or its pgregress/), else
# ../shared/testdata beside the repository root, where the root is found
# from the given test file's location (test/tap/t/NAME.pl).  Returns the
# folder that holds the named files, or undef when none has them all.
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
# Returns an array of { out => text, err => message or undef }.
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
		my @body = @lines;
		my @errs = grep { /^\@\@ERROR/ } @body;
		@body = grep { !/^\@\@ERROR/ } @body;
		$res[$cur]{out} = join('', map { "$_\n" } @body);
		$res[$cur]{err} = join("; ", map { s/^\@\@ERROR\s*//r } @errs) if @errs;
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

# The result text as compared: rows sorted unless the query's order is total.
sub canonical
{
	my ($text, $ordered) = @_;
	return $text if $ordered;
	my @rows = split(/\n/, $text, -1);
	pop @rows if @rows && $rows[-1] eq '';
	return join('', sort map { "$_\n" } @rows);
}

sub shorten
{
	my ($text, $max) = @_;
	$max //= 2000;
	return $text if length($text) <= $max;
	return substr($text, 0, $max) . sprintf("\n... (%d more characters)", length($text) - $max);
}

1;
