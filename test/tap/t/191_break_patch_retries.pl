# Break review of 9511a5d: a liar (data shard 1, every GET flipped), a
# staller (parity shard 5, 8 s) and an honest data shard 2 whose first N
# GETs of each read fail (503, reset, truncate).  Four honest shards exist
# (0, 2, 3, 4; 2 after a retry): no read should wait out the staller.
# The rig of TAP 185 (six s3rver, FaultProxy + delay proxy each, 4+2).
# Failed before the try with every shard kept its retries: a shard failing
# twice sent the read to the last, waited try (35 s with a 30 s staller).
# Long suite (about two minutes); 185 covers the staller in make test.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use FaultProxy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

DestorTest::skip_long();

my ($node, $rig) = DestorTest::start_fault_delay_pool('patch_c');
my @faults = @{ $rig->{faults} };
my $size = 3 * 1024 * 1024 + int(rand(65536));
my %b;
$b{2} = DestorTest::import_random_blob($node, 'p42', $size);
$node->safe_psql('postgres', 'ALTER SYSTEM SET destor.object_format = 1');
$node->reload;
$b{1} = DestorTest::import_random_blob($node, 'p42', $size);
$node->safe_psql('postgres', 'ALTER SYSTEM RESET destor.object_format');
$node->reload;

sub read_at
{
	my ($f, $off) = @_;
	return DestorTest::read_piece($node, $b{$f}, $off, "SET statement_timeout = '60s'; ");
}
sub clear
{
	FaultProxy::set_faults($_->{control}, '') for @faults;
	DestorTest::set_delay($_, 0) for @{ $rig->{stall} };
}
sub warm
{
	for my $f (1, 2)
	{
		read_at($f, ($_ % 6) * 512 * 1024) for 0 .. 11;
	}
}

warm();
for my $f (2, 1)
{
	my %on = %{ $b{$f}{on} };
	my ($liar, $once, $staller) = ($on{1}, $on{2}, $on{5});
	note("format $f: liar d$liar, failing d$once, staller d$staller");
	for my $fault ("503 2 GET\n", "503 3 GET\n", "reset 2 GET\n", "truncate 2 GET\n")
	{
		(my $fname = $fault) =~ s/\n//;
		DestorTest::set_delay($rig->{stall}[$staller], 8000);
		FaultProxy::set_faults($faults[$liar]{control}, "flip 100000 GET\n");
		for my $i (0 .. 1)
		{
			FaultProxy::set_faults($faults[$once]{control}, $fault);
			my $log_at = -s $node->logfile;
			my ($ok, $dt, $err) = read_at($f, ($i * 2 + 1) * 512 * 1024);
			ok($ok, "f$f '$fname' read $i exact") or diag($err);
			cmp_ok($dt, '<', 5, "f$f '$fname' read $i: not held by the staller d$staller");
			note(sprintf('f%d %s read %d: %.2f s; faults taken on d%d: %d', $f, $fname, $i, $dt, $once,
				FaultProxy::injected($faults[$once]{control})));
		}
		clear();
		warm();
	}
}
# the same with a staller held 30 s (the request timeout is 60 s): how long
# the waited try holds the read
{
	my %on = %{ $b{2}{on} };
	my ($liar, $once, $staller) = ($on{1}, $on{2}, $on{5});
	DestorTest::set_delay($rig->{stall}[$staller], 30000);
	FaultProxy::set_faults($faults[$liar]{control}, "flip 100000 GET\n");
	for my $i (0 .. 3)
	{
		FaultProxy::set_faults($faults[$once]{control}, "503 2 GET\n");
		my $log_at = -s $node->logfile;
		my ($ok, $dt, $err) = read_at(2, ($i % 3 * 2 + 1) * 512 * 1024);
		ok($ok, "f2 30 s staller, '503 2 GET' read $i exact") or diag($err);
		cmp_ok($dt, '<', 5, "f2 30 s staller, '503 2 GET' read $i: not held by the staller d$staller");
		my $named = () = slurp_file($node->logfile, $log_at) =~ /on provider "d$liar" is corrupt/g;
		note(sprintf('f2 30 s staller read %d: %.2f s, liar named %d times', $i, $dt, $named));
	}
	clear();
}
$node->stop;
done_testing();
