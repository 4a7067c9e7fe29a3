# The fixture the hostile-provider tests share (t/022_hostile_providers.pl,
# t/040_breaker.pl): a cluster with file providers f1..fN in
# <basedir>/p1..pN, the pool archive (4+2 on f1..f6), and a table docs
# (name, b destor.blob) of blobs imported from random files whose SHA-256
# it remembers, so a test can forge shards on disk (HostileProvider.pm) and
# check what a read gives back.
#
#   my $fx = HostileFixture->new('hostile', 6);   # cluster name, providers
#   $fx->put_blob('victim', 1_600_000);
#   my ($path, $provider) = $fx->shard('victim', 0);
#   my ($ok, $err) = $fx->read_back('victim');
use strict;
use warnings;

package HostileFixture;

use DestorTest;

sub new
{
	my ($class, $name, $nproviders) = @_;
	my ($node, $keyfile) = DestorTest::start_cluster($name);
	my $base = $node->basedir;
	my @dirs = map { "$base/p$_" } 1 .. $nproviders;
	mkdir $_ for @dirs;
	$node->safe_psql('postgres', join("\n",
		(map { "CREATE SERVER f$_ FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$dirs[$_ - 1]');" }
		  1 .. $nproviders),
		"CREATE SERVER archive FOREIGN DATA WRAPPER destor OPTIONS (providers 'f1,f2,f3,f4,f5,f6', data_shards '4', parity_shards '2');",
		'CREATE TABLE docs (name text PRIMARY KEY, b destor.blob);'));
	return bless { node => $node, keyfile => $keyfile, base => $base, dirs => \@dirs, src => {} }, $class;
}

# an incompressible blob of $size bytes in docs under $name, from its own file
sub put_blob
{
	my ($self, $name, $size) = @_;
	my $file = "$self->{base}/$name.bin";
	DestorTest::write_random_file($file, $size);
	$self->{src}{$name} = DestorTest::sha256_file($file);
	$self->{node}->safe_psql('postgres',
		"INSERT INTO docs VALUES ('$name', destor.blob_import('archive', '$file'))");
}

# the file holding shard $i of object $id on provider $prov (f<n>)
sub object_file
{
	my ($self, $id, $prov, $i) = @_;
	$id =~ s/-//g;
	my ($n) = $prov =~ /(\d+)$/;
	return "$self->{dirs}[$n - 1]/ds/" . substr($id, 0, 2) . "/$id.$i";
}

# the file holding shard $i of blob $name, and its provider
sub shard
{
	my ($self, $name, $i) = @_;
	my ($id, $prov) = split(/\|/, $self->{node}->safe_psql('postgres',
		"SELECT b::text, s.provider FROM docs JOIN destor.shards s ON s.object_id = b::uuid "
		  . "WHERE name = '$name' AND s.shard_index = $i"));
	return ($self->object_file($id, $prov, $i), $prov);
}

# read blob $name back through blob_export; (1, ...) when the bytes are the
# ones written, else (0, the error or 'content differs')
sub read_back
{
	my ($self, $name) = @_;
	my $out = "$self->{base}/out.bin";
	unlink $out;
	my ($rc, $stdout, $stderr) = $self->{node}->psql('postgres',
		"SELECT destor.blob_export(b, '$out') FROM docs WHERE name = '$name'");
	return (0, $stderr) if $rc != 0;
	return (DestorTest::sha256_file($out) eq $self->{src}{$name} ? 1 : 0, 'content differs');
}

1;
