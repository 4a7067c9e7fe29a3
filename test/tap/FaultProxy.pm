# FaultProxy — an HTTP proxy in front of an S3 server (s3rver) that injects
# faults into its answers, for destor's TAP suites.
#
# Every connection carries one request: each answer is sent with
# "Connection: close".  The faults to inject are lines of a control file,
# "<kind> <count> <method>" (method: GET, PUT, ... or *), used up in order;
# each connection whose request matches takes one:
#   truncate  a GET answer (200/206) loses its Content-Length and is cut
#             after half its body (the connection is closed): only the
#             client's own length checks can notice
#   reset     the connection is reset (RST) before any answer
#   503       the server's answer is replaced by 503 SlowDown
#   slow      the body is sent in 16 KiB pieces, 50 ms apart
#   flip      a GET answer (200/206) arrives whole, with its byte in the
#             middle of the body inverted: a provider that lies (or rots),
#             which no length or transport check can notice
#   hdrstall  a GET answer's status line and headers are sent, then nothing
#             for 15 s (the rest follows): a stall after the answer began
#   midstall  the same after the first 8 KiB of the body
#   pass      nothing: a request let through (to fault a later one)
#   notfound  the server's answer is replaced by 404 NoSuchKey
# Every fault injected is appended to "<control>.log" (one line each), so a
# test can compare what was injected with what destor counted.
#
# s3rver implements neither ListMultipartUploads nor AbortMultipartUpload;
# given s3rver's data directory, the proxy answers both itself from the
# uploads s3rver keeps there (<dir>/<bucket>/._S3rver_uploads/<id>/key).
# s3rver also takes a part of any upload id, creating its folder; S3
# answers NoSuchUpload.  The proxy does too, and a part whose request was
# already under way when its upload was aborted is removed when it ends
# (S3: such a part "might succeed or fail"; here it fails), so that an
# abort racing a part in flight leaves nothing, as on S3.
package FaultProxy;

use strict;
use warnings;
use Fcntl qw(:flock SEEK_SET);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes qw(usleep);

# Start a proxy to 127.0.0.1:$target; returns { port, pid, control }.
sub start
{
	my ($target, $control, $s3dir) = @_;
	set_faults($control, '');
	my $listener = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1', LocalPort => 0,
		Proto => 'tcp', ReuseAddr => 1) or die "cannot listen: $!";
	my $port = $listener->sockport;
	my $pid = fork() // die "cannot fork: $!";
	if ($pid == 0)
	{
		setpgrp(0, 0);
		$SIG{CHLD} = 'IGNORE';
		# do not hold the test's output open: prove waits for its end
		open(STDOUT, '>', '/dev/null');
		open(STDERR, '>', '/dev/null');
		# and do not outlive the test
		my $parent = getppid();
		$listener->timeout(1);
		while (1)
		{
			POSIX::_exit(0) if getppid() != $parent;
			my $client = $listener->accept or next;
			my $child = fork();
			if (defined $child && $child == 0)
			{
				close $listener;
				handle($client, $target, $control, $s3dir);
				POSIX::_exit(0);
			}
			close $client;
		}
	}
	close $listener;
	return { port => $port, pid => $pid, control => $control };
}

sub stop
{
	my ($proxy) = @_;
	my $pid = delete $proxy->{pid} or return;
	kill 'TERM', -$pid;
	waitpid($pid, 0);
}

# Replace the fault list ("truncate 3 GET\n503 1 *\n"); clears the log.
sub set_faults
{
	my ($control, $spec) = @_;
	open(my $fh, '>', $control) or die "cannot write $control: $!";
	print $fh $spec;
	close $fh;
	unlink "$control.log";
}

# How many faults of a kind were injected (all kinds without one).
sub injected
{
	my ($control, $kind) = @_;
	open(my $fh, '<', "$control.log") or return 0;
	my @lines = <$fh>;
	close $fh;
	return scalar(grep { !defined $kind || /^\Q$kind\E / } @lines);
}

# Take the first fault that matches and applies; '' when none.
sub take_fault
{
	my ($control, $method, $applies) = @_;
	open(my $fh, '+<', $control) or return '';
	flock($fh, LOCK_EX);
	my @lines = <$fh>;
	my $taken = '';
	for my $line (@lines)
	{
		my ($kind, $count, $m) = split(' ', $line);
		next unless defined $m && $count > 0;
		next unless $m eq '*' || $m eq $method;
		next unless $applies->($kind);
		$taken = $kind;
		$line = "$kind " . ($count - 1) . " $m\n";
		last;
	}
	if ($taken ne '')
	{
		seek($fh, 0, SEEK_SET);
		truncate($fh, 0);
		print $fh @lines;
		if (open(my $log, '>>', "$control.log"))
		{
			print $log "$taken $method\n";
			close $log;
		}
	}
	close $fh;    # releases the lock
	return $taken;
}

# An S3 error answer in place of the server's.
sub error_answer
{
	my ($client, $status, $code, $message) = @_;
	my $body = '<?xml version="1.0" encoding="UTF-8"?>'
	  . "<Error><Code>$code</Code><Message>$message</Message></Error>";
	write_all($client, "HTTP/1.1 $status\r\nContent-Type: application/xml\r\n"
		  . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body");
}

sub write_all
{
	my ($sock, $data) = @_;
	for (my $off = 0; $off < length($data);)
	{
		my $w = syswrite($sock, $data, length($data) - $off, $off);
		return 0 unless defined $w;
		$off += $w;
	}
	return 1;
}

sub uri_unescape
{
	my ($s) = @_;
	$s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
	return $s;
}

sub xml_escape
{
	my ($s) = @_;
	$s =~ s/&/&amp;/g;
	$s =~ s/</&lt;/g;
	$s =~ s/>/&gt;/g;
	return $s;
}

# ListMultipartUploads and AbortMultipartUpload on s3rver's own upload
# folders; true when the request was one of them (and is answered).
sub answer_uploads
{
	my ($client, $reqline, $s3dir) = @_;
	return 0 unless defined $s3dir;
	my ($method, $target) = $reqline =~ /^([A-Z]+) (\S+) HTTP/ or return 0;
	my ($path, $query) = split(/\?/, $target, 2);
	$query //= '';
	my %q = map { my ($k, $v) = split(/=/, $_, 2); (uri_unescape($k) => uri_unescape($v // '')) }
	  split(/&/, $query);
	my @seg = split(m{/}, $path, 3);    # '', bucket, key
	$seg[2] = undef if defined $seg[2] && $seg[2] eq '';
	my $bucket = uri_unescape($seg[1] // '');
	my $updir = "$s3dir/$bucket/._S3rver_uploads";
	if ($method eq 'GET' && exists $q{uploads} && !defined $seg[2])
	{
		my $prefix = $q{prefix} // '';
		my $xml = '<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult>'
		  . '<Bucket>' . xml_escape($bucket) . '</Bucket><IsTruncated>false</IsTruncated>';
		for my $d (sort glob("$updir/*"))
		{
			open(my $fh, '<', "$d/key") or next;
			my $key = <$fh> // '';
			close $fh;
			next unless index($key, $prefix) == 0;
			my $id = (split(m{/}, $d))[-1];
			my @t = gmtime((stat("$d/key"))[9]);
			my $when = sprintf('%04d-%02d-%02dT%02d:%02d:%02d.000Z',
				$t[5] + 1900, $t[4] + 1, $t[3], $t[2], $t[1], $t[0]);
			$xml .= '<Upload><Key>' . xml_escape($key) . '</Key><UploadId>' . xml_escape($id)
			  . "</UploadId><Initiated>$when</Initiated></Upload>";
		}
		$xml .= '</ListMultipartUploadsResult>';
		write_all($client, "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
			  . 'Content-Length: ' . length($xml) . "\r\nConnection: close\r\n\r\n$xml");
		return 1;
	}
	if ($method eq 'PUT' && defined $q{uploadId} && defined $seg[2] && !-e "$updir/$q{uploadId}/key")
	{
		write_all($client, no_such_upload());
		return 1;
	}
	if ($method eq 'DELETE' && defined $q{uploadId} && defined $seg[2])
	{
		my $id = $q{uploadId};
		if ($id =~ /^[\w.-]+$/ && -d "$updir/$id")
		{
			mkdir("$s3dir.aborted");
			if (open(my $fh, '>', "$s3dir.aborted/$id")) { close $fh; }
			system('rm', '-rf', "$updir/$id");
			write_all($client, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
		}
		else
		{
			write_all($client, no_such_upload());
		}
		return 1;
	}
	return 0;
}

# The upload folder of a part's request line (PUT ...?partNumber=&uploadId=)
sub part_folder
{
	my ($reqline, $s3dir) = @_;
	return undef unless defined $s3dir;
	my ($target) = $reqline =~ /^PUT (\S+) HTTP/ or return undef;
	my ($path, $query) = split(/\?/, $target, 2);
	return undef unless defined $query && $query =~ /(?:^|&)uploadId=([\w.-]+)/;
	my $id = $1;
	my @seg = split(m{/}, $path, 3);
	return "$s3dir/" . uri_unescape($seg[1] // '') . "/._S3rver_uploads/$id";
}

sub no_such_upload
{
	my $body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code>'
	  . '<Message>The specified upload does not exist.</Message></Error>';
	return "HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n"
	  . 'Content-Length: ' . length($body) . "\r\nConnection: close\r\n\r\n$body";
}

# One connection; a part of an upload aborted while it was under way is
# removed at its end (s3rver recreated the upload's folder for it).
sub handle
{
	my ($client, $target, $control, $s3dir) = @_;
	my $part_of;
	handle_request($client, $target, $control, $s3dir, \$part_of);
	return unless defined $part_of && $part_of =~ m{/([\w.-]+)$};
	return unless -e "$s3dir.aborted/$1";
	usleep(200_000);    # s3rver may still be writing it
	system('rm', '-rf', $part_of);
}

sub handle_request
{
	my ($client, $target, $control, $s3dir, $part_of) = @_;
	my $server = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $target, Proto => 'tcp')
	  or return;
	my $select = IO::Select->new($client, $server);
	my $reqhead = '';
	my $method;
	my $resp = '';
	my $state = 'headers';
	my ($remaining, $fault, $until_close) = (0, '', 0);
	my ($flip_at, $sent) = (-1, 0);		# 'flip': body offset of the byte to invert

	while (1)
	{
		for my $from ($select->can_read)
		{
			my $n = sysread($from, my $buf, 65536);
			if (!$n)
			{
				# a body delimited by the close ends here too
				return;
			}
			if ($from == $client)
			{
				if (!defined $method)
				{
					# hold the request back until its headers are in
					$reqhead .= $buf;
					next if index($reqhead, "\r\n\r\n") < 0;
					my ($line) = $reqhead =~ /^([^\r\n]*)/;
					return if answer_uploads($client, $line, $s3dir);
					$$part_of = part_folder($line, $s3dir);
					$method = $1 if $line =~ /^([A-Z]+) /;
					$method //= '';
					write_all($server, $reqhead) or return;
					next;
				}
				write_all($server, $buf) or return;
				next;
			}
			$resp .= $buf;
			while (length($resp) > 0)
			{
				if ($state eq 'headers')
				{
					my $end = index($resp, "\r\n\r\n");
					last if $end < 0;
					my $head = substr($resp, 0, $end + 4, '');
					my ($status) = $head =~ m{^HTTP/\S+ (\d+)};
					if ($status >= 100 && $status < 200)
					{
						write_all($client, $head) or return;
						next;
					}
					my ($len) = $head =~ /\r\ncontent-length:\s*(\d+)/i;
					my $chunked = $head =~ /\r\ntransfer-encoding:\s*chunked/i;
					my $m = $method // '';
					my $bodyless = $m eq 'HEAD' || $status == 204 || $status == 304;
					$fault = take_fault($control, $m, sub {
						my ($kind) = @_;
						return $m eq 'GET' && ($status == 200 || $status == 206)
						  && defined $len && $len > 1 if $kind eq 'truncate';
						return !$bodyless && defined $len && $len > 0 if $kind eq 'slow';
						return $m eq 'GET' && ($status == 200 || $status == 206)
						  && defined $len && $len > 0 if $kind eq 'flip';
						return $m eq 'GET' && ($status == 200 || $status == 206)
						  && defined $len && $len > 8192
						  if $kind eq 'hdrstall' || $kind eq 'midstall';
						return 1;
					});
					if ($fault eq 'reset')
					{
						setsockopt($client, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
						close $client;
						return;
					}
					if ($fault eq 'notfound' || $fault eq '503')
					{
						error_answer($client, $fault eq '503'
							? ('503 Service Unavailable', 'SlowDown', 'Please reduce your request rate.')
							: ('404 Not Found', 'NoSuchKey', 'The specified key does not exist.'));
						return;
					}
					$head =~ s/\r\nconnection:[^\r]*//ig;
					if ($fault eq 'truncate')
					{
						$head =~ s/\r\ncontent-length:[^\r]*//ig;
						$remaining = int($len / 2);
					}
					else
					{
						$remaining = $bodyless ? 0 : ($len // 0);
						$until_close = !$bodyless && !defined $len;
					}
					$flip_at = $fault eq 'flip' ? int($len / 2) : -1;
					$head =~ s/\r\n\r\n$/\r\nConnection: close\r\n\r\n/;
					write_all($client, $head) or return;
					sleep(15) if $fault eq 'hdrstall';
					$state = 'body';
					return if $remaining == 0 && !$until_close;
					next;
				}
				# body
				my $take = $until_close ? length($resp) : ($remaining < length($resp) ? $remaining : length($resp));
				my $piece = substr($resp, 0, $take, '');
				if ($flip_at >= $sent && $flip_at < $sent + length($piece))
				{
					my $i = $flip_at - $sent;
					substr($piece, $i, 1) = chr(ord(substr($piece, $i, 1)) ^ 0xff);
				}
				$sent += length($piece);
				if ($fault eq 'slow')
				{
					for (my $off = 0; $off < length($piece); $off += 16384)
					{
						write_all($client, substr($piece, $off, 16384)) or return;
						usleep(50_000);
					}
				}
				elsif ($fault eq 'midstall' && $sent - length($piece) < 8192 && $sent >= 8192)
				{
					my $cut = 8192 - ($sent - length($piece));
					write_all($client, substr($piece, 0, $cut)) or return;
					sleep(15);
					write_all($client, substr($piece, $cut)) or return;
				}
				else
				{
					write_all($client, $piece) or return;
				}
				$remaining -= $take unless $until_close;
				return if !$until_close && $remaining <= 0;
				last if $until_close;
			}
		}
	}
}

1;
