# CrashPoints — helpers of the crash-point harness (t/030_crash_points.pl).
#
# A workload runs in its own psql process, tagged by application_name so that
# its backend can be found in pg_stat_activity; the harness kills that backend
# with SIGKILL (a real crash: no abort processing, no transaction callbacks,
# the postmaster reinitializes shared memory), or the postmaster and every
# process of the cluster at once (as a power cut would, less the page cache),
# and waits until the cluster accepts connections again.  Shard files are
# listed per provider folder so that what is on disk can be compared with
# what the catalog places there.
package CrashPoints;

use strict;
use warnings;
use File::Find;
use PostgreSQL::Test::Utils ();
use POSIX ();
use Time::HiRes qw(usleep time);

# start_workload — run $sql (one script, ON_ERROR_STOP) in a psql of its own
# with application_name $app; returns a handle for the other helpers.  A
# plain fork and exec: the harness must see the moment psql exits.
sub start_workload
{
	my ($node, $app, $sql, $dir) = @_;
	my $file = "$dir/$app.sql";
	open(my $fh, '>', $file) or die "cannot write $file: $!";
	print $fh $sql;
	close $fh;
	my $w = { app => $app, out => "$dir/$app.out", started => time() };
	my @cmd = ('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d',
		$node->connstr('postgres') . " application_name=$app", '-f', $file);
	my $pid = fork() // die "cannot fork: $!";
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>', $w->{out});
		open(STDERR, '>&', \*STDOUT);
		exec(@cmd) or POSIX::_exit(127);
	}
	$w->{pid} = $pid;
	return $w;
}

sub workload_running
{
	my ($w) = @_;
	return 0 if defined $w->{rc};
	my $r = waitpid($w->{pid}, POSIX::WNOHANG());
	return 1 if $r == 0;
	$w->{rc} = $r == $w->{pid} ? $? >> 8 : -1;
	$w->{ended} = time();
	return 0;
}

# finish_workload — wait for the psql to end (it ends by itself once its
# backend is gone); returns its exit code, output, and seconds it ran.
sub finish_workload
{
	my ($w, $timeout) = @_;
	my $deadline = time() + ($timeout // 120);
	while (workload_running($w))
	{
		kill('KILL', $w->{pid}) if time() > $deadline;
		usleep(10_000);
	}
	open(my $fh, '<', $w->{out});
	local $/;
	my $out = $fh ? <$fh> // '' : '';
	return ($w->{rc}, $out, $w->{ended} - $w->{started});
}

# stop_workload — for END blocks: no psql outlives the test.
sub stop_workload
{
	my ($w) = @_;
	return unless $w && $w->{pid} && !defined $w->{rc};
	kill('KILL', $w->{pid});
	waitpid($w->{pid}, 0);
	$w->{rc} = -1;
}

# backend_pid — the pid of the workload's backend, once it has connected
# (undef if the workload ended before it could be seen).
sub backend_pid
{
	my ($node, $w) = @_;
	while (1)
	{
		my $pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE application_name = '$w->{app}'");
		return $pid if $pid =~ /^\d+$/;
		return undef unless workload_running($w);
		usleep(5_000);
	}
}

# Every regular file under the provider folders: "provider:relative path".
sub provider_files
{
	my (%dirs) = @_;
	my @files;
	for my $name (sort keys %dirs)
	{
		my $dir = $dirs{$name};
		next unless -d $dir;
		find({ no_chdir => 1, wanted => sub {
			return unless -f $_;
			(my $rel = $File::Find::name) =~ s{^\Q$dir\E/}{};
			return if $rel =~ m{(^|/)meta/};	# the pool's metadata log, not data
			push @files, "$name:$rel";
		} }, $dir);
	}
	return sort @files;
}

# How many files the provider folders hold.
sub file_count
{
	my @files = provider_files(@_);
	return scalar(@files);
}

# Processes whose parent is $ppid (the postmaster's children).
sub children_of
{
	my ($ppid) = @_;
	my @kids;
	opendir(my $dh, '/proc') or return ();
	for my $pid (grep { /^\d+$/ } readdir $dh)
	{
		open(my $fh, '<', "/proc/$pid/stat") or next;
		my $stat = <$fh> // '';
		close $fh;
		# pid (comm) state ppid ...: comm may hold spaces and parentheses
		push @kids, $pid if $stat =~ /\)\s+\S+\s+(\d+)/ && $1 == $ppid;
	}
	closedir $dh;
	return @kids;
}

sub postmaster_pid
{
	my ($node) = @_;
	open(my $fh, '<', $node->data_dir . '/postmaster.pid') or return undef;
	my $pid = <$fh>;
	close $fh;
	chomp $pid;
	return $pid;
}

# crash — kill -9 the backend; with $whole, the postmaster and all its
# processes too, then start the cluster again.  Returns true if the backend
# was still there to be killed.  Waits until connections are accepted.
sub crash
{
	my ($node, $pid, $whole) = @_;
	my $offset = -s $node->logfile;
	if ($whole)
	{
		my $pm = postmaster_pid($node);
		my @procs = children_of($pm);
		my $hit = kill('KILL', $pid);
		$node->kill9;
		kill('KILL', @procs);
		# a new postmaster refuses to start while old processes still hold
		# the shared memory
		for (1 .. 1000)
		{
			last unless grep { kill(0, $_) } ($pm, @procs);
			usleep(10_000);
		}
		$node->start;
		return $hit;
	}
	kill('KILL', $pid);
	# a backend that had just exited may still be a zombie, which a signal
	# "reaches": it crashed only if the postmaster says it was killed
	my $hit = 0;
	for (1 .. 1000)
	{
		my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile, $offset);
		if ($log =~ /\(PID $pid\) was terminated by signal 9/)
		{
			$hit = 1;
			last;
		}
		last if !kill(0, $pid) && $_ > 20;
		usleep(10_000);
	}
	$node->wait_for_log(qr/database system is ready to accept connections/, $offset) if $hit;
	# the postmaster may not have answered yet; make sure it does now
	$node->poll_query_until('postgres', 'SELECT 1', '1');
	return $hit;
}

1;
