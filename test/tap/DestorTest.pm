# DestorTest — shared helpers of destor's TAP suites.
#
# Starts real S3-protocol servers (s3rver from test/tap/node_modules, pinned
# by package-lock.json) on loopback ports as independent providers, and a
# PostgreSQL cluster with destor preloaded and a generated master key.
package DestorTest;

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Find;
use File::Path qw(make_path remove_tree);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Fcntl ();

our $TAPDIR = abs_path(dirname(__FILE__));
our $S3RVER = "$TAPDIR/node_modules/.bin/s3rver";
# s3rver's built-in credentials.  s3rver checks that the access key exists,
# not the signature: the signer is verified against botocore in test/unit.
our $ACCESS_KEY = 'S3RVER';
our $SECRET_KEY = 'S3RVER';

# initdb once per run, copy for each cluster.  The suite starts about a
# hundred clusters, three files at a time on two cores; initdb's bootstrap
# costs each of them a second or more of CPU, a copy a tenth of that
# (PostgreSQL 16's Cluster.pm does the same with INITDB_TEMPLATE).  Only the
# plain call that Cluster->init makes is served from the template; any
# other initdb runs as asked.  Clusters copied from one template share a
# system identifier, which destor only prints (a lease names its holder by
# the wrapper's instance id).
{
	no warnings 'redefine';
	my $system_or_bail = \&PostgreSQL::Test::Utils::system_or_bail;
	*PostgreSQL::Test::Utils::system_or_bail = sub {
		my @cmd = @_;
		if (@cmd == 6 && $cmd[0] eq 'initdb' && $cmd[1] eq '-D' && "@cmd[3 .. 5]" eq '-A trust -N'
			&& !-e $cmd[2])
		{
			my $template = initdb_template($system_or_bail);
			return $system_or_bail->('cp', '-RPp', $template, $cmd[2]);
		}
		return $system_or_bail->(@cmd);
	};
}

sub initdb_template
{
	my ($system_or_bail) = @_;
	my $dir = "$PostgreSQL::Test::Utils::tmp_check/initdb_template";
	return $dir if -d $dir;
	# three files may ask at once: one builds it, under a lock
	open(my $lock, '>>', "$dir.lock") or die "cannot open $dir.lock: $!";
	flock($lock, Fcntl::LOCK_EX()) or die "cannot lock $dir.lock: $!";
	if (!-d $dir)
	{
		remove_tree("$dir.tmp");
		$system_or_bail->('initdb', '-D', "$dir.tmp", '-A', 'trust', '-N');
		rename("$dir.tmp", $dir) or die "cannot rename $dir.tmp: $!";
	}
	close $lock;
	return $dir;
}

sub new_master_key
{
	my ($path) = @_;
	my $hex = join('', map { sprintf('%02x', int(rand(256))) } 1 .. 32);
	open(my $fh, '>', $path) or die "cannot write $path: $!";
	print $fh "$hex\n";
	close $fh;
	chmod 0600, $path;
	return $hex;
}

# A started cluster with destor preloaded; returns ($node, $keyfile).
# Small blobs are not packed unless $opts{blob_pack_threshold} says so:
# the tests written before packing count each blob's own shards (t/082).
sub start_cluster
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 1);
	my $keyfile = $node->basedir . '/master.key';
	new_master_key($keyfile);
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'destor'
destor.master_key_file = '$keyfile'
log_min_messages = debug1
log_statement = 'none'
destor.cache_size = '} . ($opts{cache_size} // '0') . qq{'
destor.blob_pack_threshold = '} . ($opts{blob_pack_threshold} // '0') . qq{'
} . ($opts{conf} // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION destor')
	  unless defined $opts{create_extension} && !$opts{create_extension};
	return ($node, $keyfile);
}

sub port_open
{
	my ($port) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp');
	return 0 unless $s;
	close $s;
	return 1;
}

# One s3rver instance: { port, dir, bucket, handle }.
# Servers and proxies started through IPC::Run: whatever a test did not stop
# (it failed, or forgot) is killed when it exits, so that no s3rver outlives
# its test.
my @started;
END
{
	local $?;					# the test's exit status stays its own
	for my $h (@started)
	{
		eval { $h->kill_kill(grace => 2); };
	}
}

sub start_s3
{
	my ($s3) = @_;
	spawn_s3($s3);
	return wait_s3($s3);
}

# s3rver started, not waited for (start_s3_servers starts them all, then
# waits: Node's start-up, half a second each, overlaps).
sub spawn_s3
{
	my ($s3) = @_;
	make_path($s3->{dir});
	my @cmd = ($S3RVER, '-d', $s3->{dir}, '-a', '127.0.0.1', '-p', $s3->{port}, '-s',
		'--configure-bucket', $s3->{bucket});
	# virtual-hosted addressing: bucket.s3.localhost (curl resolves *.localhost itself)
	push @cmd, '--service-endpoint', 'localhost' if $s3->{vhost};
	# s3rver's continuation tokens use DES, which Node's OpenSSL 3 only
	# allows with the legacy provider (else listings beyond a page fail)
	local $ENV{NODE_OPTIONS} = '--openssl-legacy-provider';
	$s3->{handle} = IPC::Run::start(\@cmd, '<', \undef, '>', "$s3->{dir}.log", '2>&1');
	push @started, $s3->{handle};
	return $s3;
}

# Wait until a spawned s3rver listens.
sub wait_s3
{
	my ($s3) = @_;
	# 20 s: six Node processes starting at once on a loaded CI machine
	for (1 .. 800)
	{
		return $s3 if port_open($s3->{port});
		usleep(25_000);
	}
	die "s3rver on port $s3->{port} did not start";
}

sub stop_s3
{
	my ($s3) = @_;
	return unless $s3->{handle};
	if (my $ctl = delete $s3->{group})
	{
		# one of a group: the others go on
		open(my $fh, '>', "$ctl/stop_$s3->{port}") or die "cannot write $ctl/stop_$s3->{port}: $!";
		close $fh;
	}
	else
	{
		$s3->{handle}->signal('TERM');
		$s3->{handle}->finish;
	}
	$s3->{handle} = undef;
	for (1 .. 100)
	{
		last unless port_open($s3->{port});
		usleep(50_000);
	}
}

# A TCP proxy in front of 127.0.0.1:$target that holds every chunk a client
# sends for as many milliseconds as $delay_file says (missing or 0: none), so
# each request of a provider behind it waits that long: a slow provider.
# Returns { port, pid }; stop_delay_proxy() ends it and its connections.
sub start_delay_proxy
{
	my ($target, $delay_file) = @_;
	return start_relay_proxy(sub { proxy_connection($_[0], $target, $delay_file) });
}

sub proxy_connection
{
	my ($client, $target, $delay_file) = @_;
	my $server = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $target, Proto => 'tcp')
	  or return;
	my $select = IO::Select->new($client, $server);
	while (1)
	{
		for my $from ($select->can_read)
		{
			my $n = sysread($from, my $buf, 65536);
			return unless $n;
			my $to = $from == $client ? $server : $client;
			if ($from == $client && open(my $fh, '<', $delay_file))
			{
				my $ms = <$fh> // 0;
				close $fh;
				select(undef, undef, undef, $ms / 1000) if $ms > 0;
			}
			for (my $off = 0; $off < $n;)
			{
				my $w = syswrite($to, $buf, $n - $off, $off);
				return unless defined $w;
				$off += $w;
			}
		}
	}
}

sub stop_delay_proxy
{
	my ($proxy) = @_;
	kill 'TERM', -$proxy->{pid};
	waitpid($proxy->{pid}, 0);
}

# Six s3rver, each behind its own delay proxy (start_delay_proxy), declared
# as providers d0 .. d5 of a 4+2 pool named $pool on $node.  Returns
# (\@s3, $hold): $hold->($i, $ms) makes provider $i's proxy hold each chunk
# a client sends that long (0: none).  The proxies end with the test.
my @delay_proxies;
END
{
	local $?;
	stop_delay_proxy($_) for @delay_proxies;
}

sub start_delay_pool
{
	my ($node, $pool) = @_;
	my $base = $node->basedir;
	my @s3 = start_s3_servers(6, $base);
	my @files = map { "$base/hold_$_" } 0 .. 5;
	my $hold = sub {
		my ($i, $ms) = @_;
		open(my $fh, '>', $files[$i]) or die "$files[$i]: $!";
		print $fh "$ms\n";
		close $fh;
	};
	$hold->($_, 0) for 0 .. 5;
	my @proxies = map { start_delay_proxy($s3[$_]->{port}, $files[$_]) } 0 .. 5;
	push @delay_proxies, @proxies;
	my @providers = map { { %{ $s3[$_] }, port => $proxies[$_]->{port}, name => "d$_" } } 0 .. 5;
	$node->safe_psql('postgres', providers_sql($pool, 4, 2, @providers));
	return (\@s3, $hold);
}

# Start n servers, each its own provider with its own data directory: in
# one Node process (s3_group.js; stop_s3 stops each on its own, start_s3
# starts it again in a process of its own), or with separate => 1 each in
# its own process (a test that signals one: STOP, CONT).
sub start_s3_servers
{
	my ($n, $base, %opts) = @_;
	my @servers;
	for my $i (1 .. $n)
	{
		push @servers, {
			port => PostgreSQL::Test::Cluster::get_free_port(),
			dir => "$base/s3_$i",
			bucket => 'destor',
			name => "s$i",
		};
	}
	if ($opts{separate})
	{
		spawn_s3($_) for @servers;
	}
	else
	{
		spawn_s3_group($base, @servers);
	}
	wait_s3($_) for @servers;
	return @servers;
}

# s3_group.js serving @servers, not waited for; each server's handle is the
# group's, and its control folder says how to stop it alone.
sub spawn_s3_group
{
	my ($base, @servers) = @_;
	require JSON::PP;
	my $ctl = "$base/s3_group_$servers[0]{port}";
	make_path($ctl);
	make_path($_->{dir}) for @servers;
	my $spec = JSON::PP->new->canonical->encode(
		[ map { { port => $_->{port}, dir => $_->{dir}, bucket => $_->{bucket}, vhost => $_->{vhost} ? 1 : 0 } }
			  @servers ]);
	local $ENV{NODE_OPTIONS} = '--openssl-legacy-provider';
	my $h = IPC::Run::start([ 'node', "$TAPDIR/s3_group.js", $ctl, $spec ],
		'<', \undef, '>', "$ctl.log", '2>&1');
	push @started, $h;
	for my $s3 (@servers)
	{
		$s3->{handle} = $h;
		$s3->{group} = $ctl;
	}
	return @servers;
}

# SQL declaring the servers as providers (with credentials) and a pool.
sub providers_sql
{
	my ($pool, $k, $m, @servers) = @_;
	my $sql = '';
	for my $s3 (@servers)
	{
		$sql .= "CREATE SERVER $s3->{name} FOREIGN DATA WRAPPER destor_provider OPTIONS "
		  . "(type 's3', endpoint 'http://127.0.0.1:$s3->{port}', bucket '$s3->{bucket}', region 'us-east-1');\n"
		  . "CREATE USER MAPPING FOR PUBLIC SERVER $s3->{name} OPTIONS "
		  . "(access_key_id '$ACCESS_KEY', secret_access_key '$SECRET_KEY');\n";
	}
	my $list = join(',', map { $_->{name} } @servers);
	$sql .= "CREATE SERVER $pool FOREIGN DATA WRAPPER destor OPTIONS "
	  . "(providers '$list', data_shards '$k', parity_shards '$m');\n";
	return $sql;
}

# A cluster, $nservers s3rver and the WAN emulator in front of them (the
# options of start_wan_proxy, and cache_size, default 0), with the first
# pool ($opts{pool}: [name, k, m], default p42 of 4 + 2 over all of them)
# and any more pools over the same servers ($opts{more}: [name, k, m,
# [server numbers]] each).  Random sizes follow DESTOR_SPREAD_SEED (noted).
# Returns { node, base, s3 => [...], wan, providers => [...] }.
sub wan_rig
{
	my ($name, $nservers, %opts) = @_;
	my ($node) = start_cluster($name, cache_size => $opts{cache_size} // '0', conf => $opts{conf});
	my $base = $node->basedir;
	my @s3 = start_s3_servers($nservers, $base);
	my $wan = start_wan_proxy($base, \@s3, %opts);
	my @providers = map { { %{ $s3[$_] }, port => $wan->{ports}[$_] } } 0 .. $#s3;
	my ($pool, $k, $m) = @{ $opts{pool} // [ 'p42', 4, 2 ] };
	my $sql = providers_sql($pool, $k, $m, @providers);
	for my $p (@{ $opts{more} // [] })
	{
		my ($pname, $pk, $pm, $on) = @$p;
		$sql .= "CREATE SERVER $pname FOREIGN DATA WRAPPER destor OPTIONS (providers '"
		  . join(',', map { $s3[ $_ - 1 ]{name} } @$on) . "', data_shards '$pk', parity_shards '$pm');\n";
	}
	$node->safe_psql('postgres', $sql);
	my $seed = $ENV{DESTOR_SPREAD_SEED} // int(rand(1_000_000));
	Test::More::note("seed $seed (replay with DESTOR_SPREAD_SEED=$seed)");
	srand($seed);
	return { node => $node, base => $base, s3 => \@s3, wan => $wan, providers => \@providers };
}

# A blob of $size random bytes imported into $pool from "$base/in_$pool.bin":
# { blob, size, sum (SHA-256 hex), data, id, hex (id without dashes), on
# (shard index => server number) }.
sub import_random_blob
{
	my ($node, $pool, $size) = @_;
	my $file = $node->basedir . "/in_$pool.bin";
	write_random_file($file, $size);
	my $blob = $node->safe_psql('postgres', "SELECT destor.blob_import('$pool', '$file')");
	my $id = $node->safe_psql('postgres', "SELECT destor.blob_id('$blob')");
	(my $hex = $id) =~ s/-//g;
	my %on = map { my ($i, $p) = split /\|/; ($i => ($p =~ /(\d+)$/)[0]) } split /\n/, $node->safe_psql('postgres',
		"SELECT shard_index, provider FROM destor.blob_shards WHERE blob_id = '$id'");
	return { blob => $blob, size => $size, sum => sha256_file($file),
		data => PostgreSQL::Test::Utils::slurp_file($file), id => $id, hex => $hex, on => \%on };
}

# A foreign table "wide" (id, payload, extra) of 260,000 rows, some 12 MiB
# stored on pool $server: two batches of row groups for a scan, so that a
# cursor reading part of it has a batch read ahead (TAP 124, 144, 150, 151).
sub create_wide_table
{
	my ($node, $server) = @_;
	$node->safe_psql('postgres', qq{
CREATE FOREIGN TABLE wide (id int, payload text, extra text)
  SERVER $server OPTIONS (segment_rows '1000000', row_group_rows '10000');
INSERT INTO wide
  SELECT i, md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text), md5((i * 3)::text)
    FROM generate_series(1, 260000) i;
});
}

# SQL of a cursor over the wide table that reads 100,000 rows, sits idle
# $idle seconds, then is ended by $end (CLOSE c, ROLLBACK, ...) in a
# transaction: the read-ahead it left behind is cancelled then.
sub idle_cursor_sql
{
	my ($idle, $end) = @_;
	return qq{
BEGIN;
DECLARE c NO SCROLL CURSOR FOR SELECT id, payload FROM wide;
FETCH 100000 FROM c \\g /dev/null
SELECT pg_sleep($idle);
$end;
COMMIT;
};
}

# The rig of the tests of liars under hedged reads: six s3rver, each behind
# a FaultProxy (its faults set per provider), all behind the WAN proxy (its
# trace), a 4+2 pool $pool over them, the wide table with a heap copy
# (wide_heap) and a 12 MiB blob.  Returns { s3, faults, wan, blob,
# file_sha, diff_sql } (diff_sql: rows of wide missing from wide_heap or
# extra, both ways).
sub start_liar_rig
{
	my ($node, $pool) = @_;
	require FaultProxy;
	my $base = $node->basedir;
	my @s3 = start_s3_servers(6, $base);
	my (@faults, @behind);
	for my $i (0 .. $#s3)
	{
		my $proxy = FaultProxy::start($s3[$i]{port}, "$base/faults_$i", $s3[$i]{dir});
		push @faults, $proxy;
		push @behind, { %{ $s3[$i] }, port => $proxy->{port} };
	}
	my $wan = start_wan_proxy($base, \@behind, delay_ms => 2, mbps => 400);
	my @providers = map { { %{ $behind[$_] }, port => $wan->{ports}[$_] } } 0 .. $#behind;
	$node->safe_psql('postgres', providers_sql($pool, 4, 2, @providers));
	create_wide_table($node, $pool);
	$node->safe_psql('postgres', 'CREATE TABLE wide_heap AS SELECT * FROM wide');
	my $file = "$base/input.bin";
	write_random_file($file, 12 * 1024 * 1024);
	return {
		s3 => \@s3, faults => \@faults, wan => $wan,
		blob => $node->safe_psql('postgres', "SELECT destor.blob_import('$pool', '$file')"),
		file_sha => sha256_file($file),
		diff_sql => q{
SELECT (SELECT count(*) FROM (SELECT * FROM wide EXCEPT ALL SELECT * FROM wide_heap) a)
     + (SELECT count(*) FROM (SELECT * FROM wide_heap EXCEPT ALL SELECT * FROM wide) b)} };
}

# The rig of the writers' break files (173, 175): $n s3rver, each behind a
# FaultProxy (faults per provider) behind a delay proxy (chunks held per
# provider: set_delay), declared providers d0..d<n-1>.  Returns { s3,
# faults, delays, stall (the delay files), providers }; stop it with
# stop_fault_delay_rig (an END block: a test that dies leaves no proxy).
sub start_fault_delay_rig
{
	my ($node, $n) = @_;
	require FaultProxy;
	my $base = $node->basedir;
	my $rig = { s3 => [ start_s3_servers($n, $base) ], faults => [], delays => [], stall => [] };
	for my $i (0 .. $n - 1)
	{
		my $s3 = $rig->{s3}[$i];
		$rig->{stall}[$i] = "$base/stall_$i";
		set_delay($rig->{stall}[$i], 0);
		push @{ $rig->{faults} }, FaultProxy::start($s3->{port}, "$base/faults_$i", $s3->{dir});
		push @{ $rig->{delays} }, start_delay_proxy($rig->{faults}[$i]{port}, $rig->{stall}[$i]);
	}
	$rig->{providers} =
	  [ map { { %{ $rig->{s3}[$_] }, port => $rig->{delays}[$_]{port}, name => "d$_" } } 0 .. $n - 1 ];
	return $rig;
}

# A cluster named $name without a cache, six providers each behind a fault
# proxy and a delay proxy (start_fault_delay_rig), and a 4+2 pool p42 over
# them; the rig is stopped when the test exits.  Returns ($node, $rig).
my @rigs;
END
{
	local $?;
	stop_fault_delay_rig($_) for @rigs;
}

sub start_fault_delay_pool
{
	my ($name) = @_;
	my ($node) = start_cluster($name, cache_size => '0');
	my $rig = start_fault_delay_rig($node, 6);
	push @rigs, $rig;
	$node->safe_psql('postgres', providers_sql('p42', 4, 2, @{ $rig->{providers} }));
	return ($node, $rig);
}

# start_fault_delay_pool and a random blob of $size bytes on p42
# (import_random_blob), its placement noted; returns ($node, $rig, $blob).
sub start_fault_delay_blob
{
	my ($name, $size) = @_;
	my ($node, $rig) = start_fault_delay_pool($name);
	my $b = import_random_blob($node, 'p42', $size);
	Test::More::note('placement: '
		  . join(', ', map { "shard $_ on d$b->{on}{$_}" } sort keys %{ $b->{on} }));
	return ($node, $rig, $b);
}

# The faults of TAP 194 and 196 on blob $b (start_fault_delay_blob): parity
# shard 5's provider 1.5 s late and found slow (three blob_verify calls read
# it), data shard 0's server stopped, data shard 3's provider 600 ms late.
sub slow_parity_down_data
{
	my ($node, $rig, $b) = @_;
	set_delay($rig->{stall}[ $b->{on}{5} ], 1500);
	Test::More::is($node->safe_psql('postgres', "SELECT destor.blob_verify('$b->{blob}')"), 't',
		"blob_verify $_")
	  for 1 .. 3;
	stop_s3($rig->{s3}[ $b->{on}{0} ]);
	set_delay($rig->{stall}[ $b->{on}{3} ], 600);
}

# blob_read of up to 512 KiB of blob $b (import_random_blob) at $off, after
# the SQL $pre: (every byte right, seconds taken, stderr).
sub read_piece
{
	my ($node, $b, $off, $pre) = @_;
	my $len = 512 * 1024;
	$len = $b->{size} - $off if $off + $len > $b->{size};
	my $t = Time::HiRes::time();
	my ($rc, $out, $err) = $node->psql('postgres',
		($pre // '') . "SELECT encode(sha256(destor.blob_read('$b->{blob}', $off, $len)), 'hex')");
	require Digest::SHA;
	return ($rc == 0 && $out eq Digest::SHA::sha256_hex(substr($b->{data}, $off, $len)),
		Time::HiRes::time() - $t, $err);
}

sub stop_fault_delay_rig
{
	my ($rig) = @_;
	return unless $rig;
	FaultProxy::stop($_) for grep { defined } @{ $rig->{faults} };
	stop_delay_proxy($_) for grep { defined } @{ $rig->{delays} };
}

# A delay proxy's delay file: hold each chunk $ms milliseconds (0: none).
sub set_delay
{
	my ($file, $ms) = @_;
	open(my $fh, '>', $file) or die "cannot write $file: $!";
	print $fh "$ms\n";
	close $fh;
}

# SQL for $n file providers f1..fn in folders made under $base, and a
# pool over them with k data and m parity shards; returns (sql, dirs).
sub file_pool_sql
{
	my ($base, $pool, $n, $k, $m) = @_;
	my @dirs = map { "$base/prov$_" } 1 .. $n;
	make_path($_) for @dirs;
	my $sql = join('', map {
		"CREATE SERVER f$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs[$_ - 1]');\n"
	} 1 .. $n);
	$sql .= "CREATE SERVER $pool FOREIGN DATA WRAPPER destor OPTIONS (providers '"
	  . join(',', map { "f$_" } 1 .. $n) . "', data_shards '$k', parity_shards '$m');\n";
	return ($sql, @dirs);
}

# Every regular file under a directory.
sub files_under
{
	my ($dir) = @_;
	my @files;
	return () unless -d $dir;
	find({ wanted => sub { push @files, $File::Find::name if -f $_ }, no_chdir => 1 }, $dir);
	return @files;
}

# Files under dir whose contents contain the byte string.
sub files_containing
{
	my ($dir, $needle) = @_;
	my @hits;
	for my $f (files_under($dir))
	{
		open(my $fh, '<:raw', $f) or next;
		local $/;
		my $c = <$fh>;
		close $fh;
		push @hits, $f if index($c, $needle) >= 0;
	}
	return @hits;
}

sub write_random_file
{
	my ($path, $bytes) = @_;
	system("head -c $bytes /dev/urandom > '$path'") == 0 or die "cannot write $path";
}

sub sha256_file
{
	my ($path) = @_;
	my $out = `sha256sum '$path'`;
	return (split(/\s+/, $out))[0];
}

# Export blob $blob to $path with the SQL $set run first (a SET, or ''),
# and check that it succeeds and that the file's SHA-256 is $sum, naming
# both checks after $what; returns the seconds the export took.
sub export_exact
{
	my ($node, $blob, $path, $sum, $what, $set) = @_;
	unlink $path;
	my $t = Time::HiRes::time();
	my ($rc, $out, $err) = $node->psql('postgres',
		($set // '') . "SELECT destor.blob_export('$blob', '$path')");
	my $dt = Time::HiRes::time() - $t;
	Test::More::is($rc, 0, "$what: the export succeeds") or Test::More::diag($err);
	Test::More::is(sha256_file($path), $sum, "$what: exact");
	return $dt;
}

# A TCP proxy in front of 127.0.0.1:$target whose answers (server to client)
# come at most $bytes_per_sec: a provider near but on a thin link.  What the
# client sends goes through at once.  Returns { port, pid }; stop it with
# stop_delay_proxy().
# A proxy on a thin link: answers (or, with upstream => 1, requests) pass at
# $bytes_per_sec.
sub start_thin_proxy
{
	my ($target, $bytes_per_sec, %opts) = @_;
	return start_relay_proxy(
		sub { thin_connection($_[0], $target, $bytes_per_sec, $opts{upstream}) });
}

# Listens on a free port and, in a process group of its own, hands every
# connection accepted to $relay->($client) in a child process.
sub start_relay_proxy
{
	my ($relay) = @_;
	my $listener = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1', LocalPort => 0,
		Proto => 'tcp', ReuseAddr => 1) or die "cannot listen: $!";
	my $port = $listener->sockport;
	my $pid = fork() // die "cannot fork: $!";
	if ($pid == 0)
	{
		setpgrp(0, 0);
		$SIG{CHLD} = 'IGNORE';
		while (1)
		{
			my $client = $listener->accept or next;
			my $child = fork();
			if (defined $child && $child == 0)
			{
				close $listener;
				$relay->($client);
				POSIX::_exit(0);
			}
			close $client;
		}
	}
	close $listener;
	return { port => $port, pid => $pid };
}

# The bench's WAN emulator (test/bench/wan_proxy.py) in front of servers
# @$s3: a one-way delay of $opts{delay_ms} (or per provider, $opts{delays}
# [...]) and $opts{mbps} MB/s per provider and direction (or per provider
# down, $opts{rates} [...], and up, $opts{up_mbps}), connections idle for
# $opts{idle_close_ms} closed (a server's idle timeout; default never), a
# request on one idle for $opts{reset_idle_ms} closed unanswered (the same
# timeout's race: the server closed it an instant before), each
# request logged to "$base/wan_trace" (see wan_proxy.py); on $opts{ports}
# [...] (a proxy started again in another's place) or free ports.  Returns { ports => [...], trace => file, handle }; ends
# with the test (or stop_wan_proxy).
sub start_wan_proxy
{
	my ($base, $s3, %opts) = @_;
	my @ports = $opts{ports} ? @{ $opts{ports} } : map { PostgreSQL::Test::Cluster::get_free_port() } @$s3;
	my $trace = "$base/wan_trace";
	my $bps = ($opts{mbps} // 10) * 1e6;
	my $up = defined $opts{up_mbps} ? $opts{up_mbps} * 1e6 : $bps;
	my $providers = join(', ', map {
		sprintf('{"name": "%s", "listen": %d, "target": %d, "delay_ms": %d, "down_bps": %d, "up_bps": %d, "idle_close_ms": %d, "reset_idle_ms": %d}',
			$s3->[$_]{name}, $ports[$_], $s3->[$_]{port}, $opts{delays}[$_] // $opts{delay_ms} // 40,
			defined $opts{rates} ? $opts{rates}[$_] * 1e6 : $bps, $up, $opts{idle_close_ms} // 0,
			$opts{reset_idle_ms} // 0)
	} 0 .. $#$s3);
	open(my $fh, '>', "$base/wan.json") or die;
	print $fh qq({"control": "$base/wan_late", "stats": "$base/wan_stats.json", "trace": "$trace", "providers": [$providers]}\n);
	close $fh;
	my $out = '';
	my $handle = IPC::Run::start([ 'python3', "$TAPDIR/../bench/wan_proxy.py", "$base/wan.json" ],
		'<', \undef, '>', \$out, '2>', "$base/wan_proxy.log");
	push @started, $handle;
	for (1 .. 200)
	{
		$handle->pump_nb;
		last if $out =~ /ready/;
		usleep(50_000);
	}
	die "the WAN proxy did not start" unless $out =~ /ready/;
	return { ports => \@ports, trace => $trace, handle => $handle };
}

# The ranged GETs of at least $min_len bytes (default 1) that arrived after
# the proxy's mark $t0.  A request is in the trace once it has ended (its
# connection reused or closed: a session's backend is gone by then), so the
# trace is read until it stops growing.
sub wan_requests_since
{
	my ($proxy, $t0, $min_len) = @_;
	my @reqs;
	my $seen = -1;
	for (1 .. 50)
	{
		@reqs = grep {
			$_->{arrived} > $t0 && defined $_->{from} && $_->{to} - $_->{from} + 1 >= ($min_len // 1)
		} wan_trace($proxy);
		last if scalar(@reqs) == $seen;
		$seen = scalar(@reqs);
		usleep(300_000);
	}
	return @reqs;
}

# Bytes asked (Range lengths) and sent in @reqs: (asked, sent).
sub wan_bytes
{
	my ($asked, $sent) = (0, 0);
	for (@_)
	{
		$asked += $_->{to} - $_->{from} + 1;
		$sent += $_->{bytes};
	}
	return ($asked, $sent);
}

# A mark in the WAN proxy's trace: its clock now (compare with "arrived").
# Waits for a new mark line: the trace also grows by requests that end
# meanwhile, and taking its growth for the mark returned the previous mark
# (the requests of the step before then counted as this step's).
sub wan_mark
{
	my ($proxy) = @_;
	my $count_marks = sub {
		open(my $fh, '<', $proxy->{trace}) or return ();
		my @marks = grep { /^mark / } <$fh>;
		close $fh;
		return @marks;
	};
	my $before = () = $count_marks->();
	kill 'USR2', $proxy->{handle}{KIDS}[0]{PID};
	for (1 .. 250)
	{
		my @marks = $count_marks->();
		return (split ' ', $marks[-1])[1] if @marks > $before;
		usleep(20_000);
	}
	die "no mark in the WAN proxy's trace";
}

# The WAN proxy's counters per provider: { name => { connections, requests,
# late, bytes_down, bytes_up } } (written on SIGUSR1).
# What each provider sent (bytes, by provider name) for GETs that arrived
# after mark $t0 in the WAN proxy's trace.
sub wan_sent
{
	my ($proxy, $t0) = @_;
	my %sent;
	$sent{ $_->{provider} } += $_->{bytes} // 0 for wan_requests_since($proxy, $t0, 1);
	return %sent;
}

sub wan_stats
{
	my ($proxy, $base) = @_;
	my $file = "$base/wan_stats.json";
	unlink $file;
	kill 'USR1', $proxy->{handle}{KIDS}[0]{PID};
	for (1 .. 250)
	{
		if (-s $file)
		{
			open(my $fh, '<', $file) or die;
			local $/;
			my $json = <$fh>;
			close $fh;
			my %st;
			while ($json =~ /"([^"]+)":\s*\{([^}]*)\}/g)
			{
				my ($name, $body) = ($1, $2);
				$st{$name}{$1} = $2 while $body =~ /"(\w+)":\s*(\d+)/g;
			}
			return \%st;
		}
		usleep(20_000);
	}
	die "no stats from the WAN proxy";
}

sub stop_wan_proxy
{
	my ($proxy) = @_;
	$proxy->{handle}->kill_kill;
}

# The requests in a WAN proxy's trace: { provider, conn, arrived, first,
# last, bytes, line, from, to, accepted } each (from/to: the Range's, or
# undef; accepted: when its connection was).
sub wan_trace
{
	my ($proxy) = @_;
	my @reqs;
	open(my $fh, '<', $proxy->{trace}) or return ();
	while (my $l = <$fh>)
	{
		my @f = split ' ', $l;
		next unless @f == 9;
		my ($from, $to) = $f[7] =~ /^bytes=(\d+)-(\d+)$/ ? ($1, $2) : (undef, undef);
		push @reqs, { provider => $f[0], conn => $f[1], arrived => $f[2],
			first => $f[3] eq '-' ? undef : $f[3], last => $f[4] eq '-' ? undef : $f[4],
			bytes => $f[5], line => $f[6], from => $from, to => $to, accepted => $f[8] };
	}
	close $fh;
	return @reqs;
}

# Imports $file into $pool until the blob has a data shard on $provider
# (placement depends on the id); its handle, or undef after 30 tries.
sub import_blob_with_data_on
{
	my ($node, $pool, $file, $provider) = @_;
	for (1 .. 30)
	{
		my $b = $node->safe_psql('postgres', "SELECT destor.blob_import('$pool', '$file')");
		return $b
		  if $node->safe_psql('postgres',
			"SELECT kind FROM destor.blob_shards WHERE blob_id = destor.blob_id('$b') AND provider = '$provider'")
		  eq 'data';
	}
	return undef;
}

sub thin_connection
{
	my ($client, $target, $rate, $upstream) = @_;
	my $server = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $target, Proto => 'tcp')
	  or return;
	my $select = IO::Select->new($client, $server);
	while (1)
	{
		for my $from ($select->can_read)
		{
			my $n = sysread($from, my $buf, 16384);
			return unless $n;
			my $to = $from == $client ? $server : $client;
			for (my $off = 0; $off < $n;)
			{
				my $w = syswrite($to, $buf, $n - $off, $off);
				return unless defined $w;
				$off += $w;
			}
			select(undef, undef, undef, $n / $rate) if ($from == $server) != !!$upstream;
		}
	}
}

# A query in a background psql session ($node->background_psql):
# (stdout, psql's return, what it wrote to stderr meanwhile).
sub bg_query
{
	my ($bg, $sql) = @_;
	$bg->{stderr} = '';
	my ($out, $ret) = $bg->query($sql);
	my $err = $bg->{stderr};
	$bg->{stderr} = '';
	return ($out, $ret, $err);
}

# Whether DESTOR_TEST_LONG asks for the long runs: every case of the break
# files, and the files make test leaves out (skip_long).
sub long
{
	my $long = $ENV{DESTOR_TEST_LONG} // '';
	return $long ne '' && $long ne '0';
}

# A long break file that runs only with DESTOR_TEST_LONG=1 (make test keeps
# its 20-minute budget; the other break files run there, sampled).
sub skip_long
{
	Test::More::plan(skip_all => 'a long break file: runs with DESTOR_TEST_LONG=1')
	  unless long();
}

# The cases a break file runs: all of them with DESTOR_TEST_LONG=1 set,
# else the sample given (the long WAN break files repeat each attack at
# several points; make test keeps its time budget with one or two).
sub cases
{
	my ($all, $sample) = @_;
	return @{ long() ? $all : $sample };
}

1;
