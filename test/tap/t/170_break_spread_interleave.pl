# Spread windows read by callers that interleave: two blobs read piece by
# piece in one session (each reader's window read ahead in flight while the
# other reads), pieces of odd sizes (1 MiB, a window less one byte, a
# window and a half), a read cancelled by statement_timeout in the middle
# of a spread window and the session reading on, and a transaction that
# reads, errors out, and reads again.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
DestorTest::skip_long();
use Digest::SHA;

my $rig = DestorTest::wan_rig('spread_interleave', 6, delay_ms => 20, mbps => 10,
	more => [ [ 'p33', 3, 3, [ 1, 2, 3, 4, 5, 6 ] ] ]);
my ($node, $base, $wan) = @$rig{qw(node base wan)};
my @s3 = @{ $rig->{s3} };
my $M = 1024 * 1024;
my %b = map { ($_ => DestorTest::import_random_blob($node, $_, 36 * $M + int(rand(12 * $M)))) } qw(p42 p33);
# measure the links
$node->safe_psql('postgres', "SELECT length(destor.blob_read('$b{$_}{blob}', 0, $b{$_}{size}))") for qw(p42 p33);

$node->safe_psql('postgres', q{
CREATE TABLE pieces (who text, n int, off bigint, len bigint, h text);
CREATE FUNCTION interleave(a destor.blob, asz bigint, b destor.blob, bsz bigint, piece bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  oa bigint := 0; ob bigint := 0; n int := 0; l bigint; fd int;
BEGIN
  fd := destor.blob_open(a);
  WHILE oa < asz OR ob < bsz LOOP
    IF oa < asz THEN
      l := least(piece, asz - oa);
      INSERT INTO pieces VALUES ('a', n, oa, l, encode(sha256(destor.blob_read(fd, l::int)), 'hex'));
      oa := oa + l;
    END IF;
    IF ob < bsz THEN
      l := least(piece, bsz - ob);
      INSERT INTO pieces VALUES ('b', n, ob, l, encode(sha256(destor.blob_read(b, ob, l::int)), 'hex'));
      ob := ob + l;
    END IF;
    n := n + 1;
  END LOOP;
END $$;
});
for my $piece (DestorTest::cases([ 1 * $M, 16 * $M - 1, 16 * $M, 24 * $M + 7 ], [ 16 * $M - 1 ]))
{
	$node->safe_psql('postgres', 'TRUNCATE pieces');
	my ($rc, $o, $err) = $node->psql('postgres',
		"SELECT interleave('$b{p42}{blob}', $b{p42}{size}, '$b{p33}{blob}', $b{p33}{size}, $piece)");
	is($rc, 0, "interleaved pieces of $piece ok") or diag($err);
	my $bad = 0;
	my $count = 0;
	for my $row (split /\n/, $node->safe_psql('postgres', 'SELECT who, off, len, h FROM pieces'))
	{
		my ($who, $off, $len, $h) = split /\|/, $row;
		my $x = $b{ $who eq 'a' ? 'p42' : 'p33' };
		$count++;
		$bad++ if $h ne Digest::SHA::sha256_hex(substr($x->{data}, $off, $len));
	}
	ok($count > 0, "pieces of $piece: $count read");
	is($bad, 0, "pieces of $piece: every piece exact");
}

# cancelled in the middle, then the same session reads on
for my $ms (DestorTest::cases([ 150, 400, 700 ], [400]))
{
	my $x = $b{p42};
	my $len = $x->{size} - 1000;
	my ($rc, $o, $err) = $node->psql('postgres', qq{
SET statement_timeout = '${ms}ms';
SELECT length(destor.blob_read('$x->{blob}', 500, $len));
RESET statement_timeout;
SELECT encode(sha256(destor.blob_read('$x->{blob}', 500, $len)), 'hex');
SELECT encode(sha256(destor.blob_read('$x->{blob}', 16777216, 16777216)), 'hex');
BEGIN;
SELECT length(destor.blob_read('$x->{blob}', 0, 20000000));
SELECT 1/0;
ROLLBACK;
SELECT encode(sha256(destor.blob_read('$x->{blob}', 0, 20000000)), 'hex');
}, on_error_stop => 0);
	like($err, qr/canceling statement due to statement timeout|^$/, "timeout $ms: only the timeout (or nothing) went wrong") ;
	my @h = grep { /^[0-9a-f]{64}$/ } split /\n/, $o;
	is(scalar(@h), 3, "timeout $ms: three reads after it");
	is($h[0], Digest::SHA::sha256_hex(substr($x->{data}, 500, $len)), "timeout $ms: the read after the cancel exact");
	is($h[1], Digest::SHA::sha256_hex(substr($x->{data}, 16777216, 16777216)), "timeout $ms: the window after exact");
	is($h[2], Digest::SHA::sha256_hex(substr($x->{data}, 0, 20000000)), "timeout $ms: after an error exact");
	note("timeout $ms: err $err");
}
DestorTest::stop_wan_proxy($wan);
$node->stop;
DestorTest::stop_s3($_) for @s3;
done_testing();
