# HostileProvider — a storage provider that lies, for destor's TAP suites.
#
# A `file` provider serves what its directory holds, so lying is editing
# that directory: each function below turns an honest shard file into what
# a malicious or broken provider could hand back under the shard's name.
# Shard layout (see docs/ARCHITECTURE.md, "Object format"): chunk s of a
# shard at s * chunk_size, then the trailer (one tag per stripe: an 8-byte
# CRC-64 for format 1, footer magic DESTOR01; a 16-byte keyed tag for
# format 2, DESTOR02) and a 64-byte footer.
package HostileProvider;

use strict;
use warnings;
no warnings 'portable';	# 64-bit constants of CRC-64
use File::Copy qw(copy);

# CRC-64/XZ (ISA-L crc64_ecma_refl), what format 1 trailers hold
my @crc_table;
for my $i (0 .. 255)
{
	my $c = $i;
	for (1 .. 8)
	{
		$c = ($c & 1) ? (($c >> 1) ^ 0xC96C5795D7870F42) : ($c >> 1);
	}
	$crc_table[$i] = $c;
}

sub crc64
{
	my ($data) = @_;
	my $c = 0xFFFFFFFFFFFFFFFF;
	for my $byte (unpack('C*', $data))
	{
		$c = $crc_table[($c ^ $byte) & 0xFF] ^ ($c >> 8);
	}
	return $c ^ 0xFFFFFFFFFFFFFFFF;
}

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<:raw', $path) or die "cannot read $path: $!";
	local $/;
	my $c = <$fh>;
	close $fh;
	return $c;
}

sub spew
{
	my ($path, $content) = @_;
	open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
	print $fh $content;
	close $fh;
}

# What the footer of a shard file says: { magic, shard, k, m, chunk_size,
# nstripes, stream_size, shard_data_len, tag_len }
sub layout
{
	my ($content) = @_;
	my $f = substr($content, -64);
	my %l;
	$l{magic} = substr($f, 0, 8);
	$l{shard} = ord(substr($f, 24, 1));
	$l{k} = ord(substr($f, 26, 1));
	$l{m} = ord(substr($f, 27, 1));
	$l{chunk_size} = unpack('V', substr($f, 28, 4));
	$l{nstripes} = unpack('Q<', substr($f, 32, 8));
	$l{stream_size} = unpack('Q<', substr($f, 40, 8));
	$l{shard_data_len} = unpack('Q<', substr($f, 48, 8));
	$l{tag_len} = $l{magic} eq 'DESTOR01' ? 8 : 16;
	return \%l;
}

# Flip a byte of the chunk of stripe $stripe and put the chunk's recomputed
# CRC-64 where the trailer keeps its tag: all a provider can do without the
# data key.  Format 1 cannot tell this chunk from a good one; format 2 can.
sub forge_chunk
{
	my ($path, $stripe, $at) = @_;
	my $c = slurp($path);
	my $l = layout($c);
	my $start = $stripe * $l->{chunk_size};
	my $len = $stripe == $l->{nstripes} - 1 ? $l->{shard_data_len} - $start : $l->{chunk_size};
	$at //= int($len / 2);
	substr($c, $start + $at, 1) = chr(ord(substr($c, $start + $at, 1)) ^ 0x5A);
	my $crc = pack('Q<', crc64(substr($c, $start, $len)));
	substr($c, $l->{shard_data_len} + $stripe * $l->{tag_len}, 8) = $crc;
	spew($path, $c);
	return $l;
}

# Flip a byte of a chunk and leave its tag alone: bit rot.
sub corrupt_chunk
{
	my ($path, $stripe, $at) = @_;
	my $c = slurp($path);
	my $l = layout($c);
	my $pos = $stripe * $l->{chunk_size} + $at;
	substr($c, $pos, 1) = chr(ord(substr($c, $pos, 1)) ^ 0xFF);
	spew($path, $c);
	return $l;
}

# Serve another file's bytes under this name: another object's shard, or
# another shard of the same object (a replayed or misplaced shard).
sub substitute
{
	my ($path, $other) = @_;
	copy($other, $path) or die "cannot copy $other: $!";
}

# Cut the body short.
sub truncate_shard
{
	my ($path, $len) = @_;
	truncate($path, $len) or die "cannot truncate $path: $!";
}

1;
