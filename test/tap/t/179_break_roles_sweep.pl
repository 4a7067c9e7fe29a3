# Break review: hostile roles against every SQL-callable function and view of
# the destor schema.  Three roles: owner_r owns the data (tables, blobs, large
# objects, a tiered partition), usage_r has USAGE on the pool and its
# providers (nothing on owner_r's objects), nobody_r has what PUBLIC has.
# Each attack is written as an assertion of the CORRECT behaviour (what
# PostgreSQL does for heap tables and large objects with lo_compat_privileges
# off): a failing assertion here is a hole in destor.
use strict;
use warnings;
use lib $ENV{DESTOR_TAP_LIB} // '.';
use DestorTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $keyfile) = DestorTest::start_cluster('break_roles_sweep');
my $base = $node->basedir;
my ($pool_sql) = DestorTest::file_pool_sql($base, 'pool', 3, 2, 1);
open(my $kf, '<', $keyfile) or die;
my $master_key = <$kf>;
close $kf;
chomp $master_key;

# what must never come out of any output, error or log line seen by the hostile roles
my @secrets = ('TOPSECRETROW', 'AMSECRETROW', 'EVSECRET2020', 'RLSHIDDEN', 'BLOBSECRET',
	'LOSECRET', 'PACKNEIGHBOUR', 'SUPERSECRETKEYVALUE123', 'AKIAHRSECRETID', $master_key);

sub leaks
{
	my ($text) = @_;
	for my $s (@secrets)
	{
		my $hex = unpack('H*', $s);
		return $s if index($text, $s) >= 0 || index(lc $text, $hex) >= 0;
	}
	return undef;
}

# one statement as a role, in a transaction that is rolled back
sub as_role
{
	my ($role, $sql, %o) = @_;
	my $body = $o{commit} ? $sql : "BEGIN;\n$sql;\nROLLBACK;";
	my ($ret, $out, $err) = $node->psql('postgres', $body,
		extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ]);
	return ($ret, $out // '', $err // '');
}

# an attack that must fail with $re and leak nothing
sub denied
{
	my ($role, $sql, $re, $what) = @_;
	my ($ret, $out, $err) = as_role($role, $sql);
	like($err, $re, "$role: $what is refused");
	my $l = leaks("$out\n$err");
	ok(!defined $l, "$role: $what leaks nothing" . (defined $l ? " (leaked $l)" : ''));
}

# a call that may succeed but must show nothing of the owner's
sub nothing_seen
{
	my ($role, $sql, $what) = @_;
	my ($ret, $out, $err) = as_role($role, $sql);
	my $l = leaks("$out\n$err");
	ok(!defined $l, "$role: $what leaks nothing" . (defined $l ? " (leaked $l)" : ''));
	return ($ret, $out, $err);
}

my $NOREAD = qr/blob does not exist or you may not read it/;
my $NOPRIV = qr/permission denied/;

# ---------------------------------------------------------------------------------------------
# Setup: providers, a pool, an s3 provider whose user mapping holds a secret, the roles, and
# owner_r's data.
# ---------------------------------------------------------------------------------------------
$node->safe_psql('postgres', $pool_sql . q{
CREATE SERVER s3p FOREIGN DATA WRAPPER destor_provider
  OPTIONS (type 's3', endpoint 'http://127.0.0.1:1', bucket 'bkt');
CREATE USER MAPPING FOR PUBLIC SERVER s3p
  OPTIONS (access_key_id 'AKIAHRSECRETID', secret_access_key 'SUPERSECRETKEYVALUE123');
CREATE SERVER mixpool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 's3p,f1,f2,f3', data_shards '2', parity_shards '2', write_quorum '3');
CREATE ROLE owner_r LOGIN;
CREATE ROLE usage_r LOGIN;
CREATE ROLE nobody_r LOGIN;
GRANT USAGE ON FOREIGN SERVER pool, mixpool, f1, f2, f3, s3p TO owner_r, usage_r;
CREATE SCHEMA shared;
GRANT USAGE, CREATE ON SCHEMA shared TO owner_r, usage_r, nobody_r;
});
$node->safe_psql('postgres', q{
SET ROLE owner_r;
CREATE FOREIGN TABLE shared.secret (id int, v text) SERVER pool;
INSERT INTO shared.secret VALUES (1, 'TOPSECRETROW'), (2, 'another');
SET destor.default_pool = 'pool';
CREATE TABLE shared.amsecret (id int, v text) USING destor;
INSERT INTO shared.amsecret VALUES (1, 'AMSECRETROW');
CREATE TABLE shared.rls (id int, v text) USING destor;
INSERT INTO shared.rls SELECT i, CASE WHEN i = 1 THEN 'visible' ELSE 'RLSHIDDEN' || i END
  FROM generate_series(1, 20) i;
ALTER TABLE shared.rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_one ON shared.rls FOR SELECT USING (id = 1);
GRANT SELECT ON shared.rls TO usage_r;
CREATE TABLE shared.ob (b destor.blob);
INSERT INTO shared.ob SELECT destor.blob_put('pool', convert_to('BLOBSECRET', 'UTF8'));
GRANT SELECT ON shared.ob TO PUBLIC;
CREATE TABLE shared.lo (lo oid);
INSERT INTO shared.lo SELECT lo_from_bytea(0, 'LOSECRET');
INSERT INTO shared.lo SELECT lo_from_bytea(0, 'LOSECRET tiered');
GRANT SELECT ON shared.lo TO PUBLIC;
CREATE TABLE shared.ev (at date, what text) PARTITION BY RANGE (at);
CREATE TABLE shared.ev_2020 PARTITION OF shared.ev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE shared.ev_2021 PARTITION OF shared.ev FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
INSERT INTO shared.ev VALUES ('2020-06-01', 'EVSECRET2020'), ('2021-06-01', 'EVSECRET2020 too');
SELECT destor.tier_partition('shared.ev_2020', 'pool');
});
$node->safe_psql('postgres', q{
SET ROLE owner_r;
SELECT destor.lo_tier(max(lo), 'pool') FROM shared.lo;
});
my $blob = $node->safe_psql('postgres', 'SELECT b FROM shared.ob');
my ($lo, $lo_tiered) = split /\n/, $node->safe_psql('postgres', 'SELECT lo FROM shared.lo ORDER BY lo');
my $seg_object = $node->safe_psql('postgres', q{
SELECT s.object_id FROM destor.segments s JOIN destor.tables t USING (table_id)
 WHERE t.relid = 'shared.secret'::regclass LIMIT 1});
my $lo_object = $node->safe_psql('postgres', "SELECT object_id FROM destor.lo_tiers WHERE loid = $lo_tiered");
my $table_id = $node->safe_psql('postgres', "SELECT table_id FROM destor.tables WHERE relid = 'shared.secret'::regclass");
ok($blob =~ /^[0-9a-f-]{36}$/ && $seg_object && $lo_object && $table_id, 'setup: owner_r has a blob, tables, a tiered partition and large objects');

# positive controls: the leak detector and the peek function do see the owner's data when
# the owner reads it (so that "leaks nothing" below is not vacuous)
{
	my ($r, $o, $e) = as_role('owner_r', "SELECT destor.blob_get('$blob'); SELECT v FROM shared.secret; SELECT v FROM shared.amsecret");
	is(leaks($o), 'TOPSECRETROW', 'control: the leak detector sees what owner_r reads');
	($r, $o, $e) = as_role('owner_r', q{CREATE TEMP TABLE seen (t text);
CREATE FUNCTION pg_temp.peek(text) RETURNS bool LANGUAGE plpgsql COST 0.0000001
  AS $$ BEGIN INSERT INTO seen VALUES ($1); RETURN true; END $$;
SELECT count(*) FROM destor.blob_shards x WHERE pg_temp.peek(x::text);
SELECT string_agg(t, ' ') FROM seen});
	like($o, qr/\Q$blob\E/, 'control: the peek function sees owner_r\'s own blob_shards rows');
	($r, $o, $e) = as_role('owner_r', "SELECT convert_from(destor.blob_get('$blob'), 'UTF8')");
	ok(defined leaks($o), 'control: the leak detector sees a blob read as text');
}

# ---------------------------------------------------------------------------------------------
# 0. Every function of the schema is in this sweep: a function added later fails here until
#    it is attacked below too.
# ---------------------------------------------------------------------------------------------
my %swept = map { $_ => 1 } (
	'destor.destor_provider_validator(text[],oid)', 'destor.destor_pool_validator(text[],oid)',
	'destor.destor_fdw_handler()', 'destor.blob_in(cstring)', 'destor.blob_out(destor.blob)',
	'destor.blob_recv(internal)', 'destor.blob_send(destor.blob)', 'destor.blob_id(destor.blob)',
	'destor.blob_put(name,bytea,bytea)', 'destor.blob_get(destor.blob)',
	'destor.blob_read(destor.blob,bigint,integer)', 'destor.blob_size(destor.blob)',
	'destor.blob_delete(destor.blob)', 'destor.blob_import(name,text,bytea)',
	'destor.blob_export(destor.blob,text)', 'destor.blob_from_lo(name,oid,boolean)',
	'destor.blob_to_lo(destor.blob,oid,boolean)', 'destor.compact(regclass)',
	'destor.bind_table(regclass)', 'destor.maintenance_status_raw()', 'destor.forget_table(uuid)',
	'destor.cleanup_orphans(name,interval)', 'destor.lo_get_tiered(oid,bigint,integer)',
	'destor.lo_export_tiered(oid,text)', 'destor.lo_put_tiered(oid,bigint,bytea)',
	'destor.apply_lo_tiering()', 'destor.meta_capture()', 'destor.meta_note_table(regclass)',
	'destor.repair_log(name)', 'destor.on_create_foreign_table()', 'destor.on_drop_foreign_table()',
	'destor.tier_partition(regclass,name)', 'destor.recall_partition(regclass)',
	'destor.tier_partitions(regclass,name,integer)', 'destor.tier_partitions(regclass,name,interval)',
	'destor.check_provider(name)', 'destor.cache_stats_raw()', 'destor.cache_reset()',
	'destor.provider_stats()', 'destor.provider_stats_reset()', 'destor.provider_health()',
	'destor.apply_tiering_policies()', 'destor.repair(name,boolean,boolean)',
	'destor.move_shards(name,name)', 'destor.rebalance(name,integer)', 'destor.progress_report()',
	'destor.placement_violation(name,name[])', 'destor.provider_tag(name,text)',
	'destor.blob_meta_invalidate()', 'destor.placement_mode_cost(name,text)',
	'destor.placement_cost(name)', 'destor.audit(name,integer,bigint)', 'destor.provider_audits()',
	'destor.blob_grant(destor.blob,regrole,text)', 'destor.blob_revoke(destor.blob,regrole,text)',
	'destor.blob_set_owner(destor.blob,regrole)', 'destor.blob_sha256(destor.blob)',
	'destor.blob_verify(destor.blob)', 'destor.blob_manage()', 'destor.vacuum_blobs(name,boolean)',
	'destor.blob_create(name)', 'destor.blob_write(integer,bytea)', 'destor.blob_close(integer)',
	'destor.blob_open(destor.blob)', 'destor.blob_read(integer,integer)',
	'destor.blob_seek(integer,bigint,integer)', 'destor.blob_tell(integer)', 'destor.lo_tier(oid,name)',
	'destor.lo_tier_all(name,bigint)', 'destor.lo_recall(oid)', 'destor.lo_readable(oid)',
	'destor.lo_open_tiered(oid,integer)', 'destor.lo_get_tiered(oid)', 'destor.on_meta_table_ddl()',
	'destor.recover_catalog(name,boolean,uuid)', 'destor.rotate_master_key(text,bigint)',
	'destor.take_over_pool(name)', 'destor.follow_pool(name)', 'destor.log_snapshot(name)',
	'destor.compact_log(name)', 'destor.compact_packs(name,double precision)',
	'destor.tableam_handler(internal)', 'destor.blob_record_role_dependencies()',
	'destor.blob_eq(destor.blob,destor.blob)', 'destor.blob_ne(destor.blob,destor.blob)',
	'destor.blob_lt(destor.blob,destor.blob)', 'destor.blob_le(destor.blob,destor.blob)',
	'destor.blob_gt(destor.blob,destor.blob)', 'destor.blob_ge(destor.blob,destor.blob)',
	'destor.blob_cmp(destor.blob,destor.blob)', 'destor.blob_hash(destor.blob)',
	'destor.blob_hash_extended(destor.blob,bigint)', 'destor.restorable_role_in(cstring)',
	'destor.restorable_role_out(destor.restorable_role)', 'destor.restorable_acl_in(cstring)',
	'destor.restorable_acl_out(destor.restorable_acl)', 'destor.aclitems(destor.restorable_acl)',
	'destor.restorable_acl(aclitem[])');
my @unswept = grep { !$swept{$_} } split /\n/, $node->safe_psql('postgres',
	"SELECT oid::regprocedure FROM pg_proc WHERE pronamespace = 'destor'::regnamespace ORDER BY 1::text");
is_deeply(\@unswept, [], 'every function of the destor schema is swept by this test');
my %views = map { $_ => 1 } qw(blob_acl blob_shards cache_stats cost_report maintenance_status
  placement_report placement_summary progress provider_status storage_report tiered_large_objects
  tiered_partitions);
my @unswept_views = grep { !$views{$_} } split /\n/, $node->safe_psql('postgres',
	"SELECT relname FROM pg_class WHERE relnamespace = 'destor'::regnamespace AND relkind = 'v' ORDER BY 1");
is_deeply(\@unswept_views, [], 'every view of the destor schema is swept by this test');
# SECURITY DEFINER is only the drop event trigger, which only names schema-qualified objects
is($node->safe_psql('postgres',
	"SELECT string_agg(proname, ',') FROM pg_proc WHERE pronamespace = 'destor'::regnamespace AND prosecdef"),
	'on_drop_foreign_table', 'the only SECURITY DEFINER function is the drop event trigger');
denied('usage_r', 'SELECT destor.on_drop_foreign_table()', qr/trigger functions can only be called|can only be called/,
	'calling the SECURITY DEFINER event trigger function directly');

for my $role ('usage_r', 'nobody_r')
{
	# -----------------------------------------------------------------------------------------
	# 1. Blobs: holding another role's handle gives nothing, and no error says whether it exists
	# -----------------------------------------------------------------------------------------
	for my $h ([ $blob, "owner_r's blob" ], [ $seg_object, "a table segment's object id" ],
		[ $lo_object, "a tiered large object's object id" ])
	{
		my ($id, $what) = @$h;
		denied($role, "SELECT destor.blob_get('$id')", $NOREAD, "blob_get of $what");
		denied($role, "SELECT destor.blob_read('$id', 0, 100)", $NOREAD, "blob_read of $what");
		denied($role, "SELECT destor.blob_size('$id')", $NOREAD, "blob_size of $what");
		denied($role, "SELECT destor.blob_sha256('$id')", $NOREAD, "blob_sha256 of $what");
		denied($role, "SELECT destor.blob_verify('$id')", $NOREAD, "blob_verify of $what");
		denied($role, "SELECT destor.blob_open('$id')", $NOREAD, "blob_open of $what");
		denied($role, "SELECT destor.blob_to_lo('$id')", $NOREAD, "blob_to_lo of $what");
		denied($role, "SELECT destor.blob_delete('$id')", qr/may not delete it/, "blob_delete of $what");
		denied($role, "SELECT destor.blob_grant('$id', current_user::regrole, 'SELECT')",
			qr/may not grant/, "blob_grant to itself on $what");
		denied($role, "SELECT destor.blob_revoke('$id', 'owner_r', 'SELECT')", qr/may not revoke/,
			"blob_revoke on $what");
		denied($role, "SELECT destor.blob_set_owner('$id', current_user::regrole)",
			qr/may not change its owner/, "blob_set_owner to itself on $what");
	}
	# the same answer for a blob that exists and one that does not
	my (undef, undef, $e1) = as_role($role, "SELECT destor.blob_get('$blob')");
	my (undef, undef, $e2) = as_role($role, "SELECT destor.blob_get('00000000-0000-4000-8000-000000000000')");
	s/[0-9a-f]{8}-[0-9a-f-]{27}//g for $e1, $e2;
	s/LOCATION:.*//g for $e1, $e2;
	is($e1, $e2, "$role: another role's blob and no blob give the same error");
	denied($role, "SELECT destor.blob_export('$blob', '$base/x_$role')", $NOPRIV, 'blob_export');
	denied($role, "SELECT destor.blob_import('pool', '$keyfile')", $NOPRIV, 'blob_import of the master key file');
	ok(!-e "$base/x_$role", "$role: blob_export wrote no file");

	# -----------------------------------------------------------------------------------------
	# 2. Large objects, tiered or not
	# -----------------------------------------------------------------------------------------
	denied($role, "SELECT destor.lo_tier($lo, 'pool')", $NOPRIV, "lo_tier of owner_r's large object");
	my ($r, $o, $e) = nothing_seen($role, "SELECT destor.lo_tier_all('pool')", 'lo_tier_all');
	is($node->safe_psql('postgres', "SELECT count(*) FROM destor.lo_tiers WHERE loid = $lo"), '0',
		"$role: lo_tier_all did not tier owner_r's large object");
	denied($role, "SELECT destor.lo_recall($lo_tiered)", $NOPRIV, 'lo_recall of a tiered large object');
	denied($role, "SELECT lo_get($lo_tiered)", $NOPRIV, 'lo_get of a tiered large object');
	denied($role, "SELECT destor.lo_get_tiered($lo_tiered)", $NOPRIV, 'lo_get_tiered');
	denied($role, "SELECT destor.lo_get_tiered($lo_tiered, 0, 4)", $NOPRIV, 'lo_get_tiered (fragment)');
	denied($role, "SELECT destor.lo_open_tiered($lo_tiered, 262144)", $NOPRIV, 'lo_open_tiered');
	denied($role, "SELECT destor.lo_put_tiered($lo_tiered, 0, 'x')", $NOPRIV, 'lo_put_tiered');
	denied($role, "SELECT destor.lo_export_tiered($lo_tiered, '$base/lo_$role')", $NOPRIV, 'lo_export_tiered');
	denied($role, "SELECT destor.blob_from_lo('pool', $lo)", $NOPRIV, "blob_from_lo of owner_r's large object");
	($r, $o, $e) = nothing_seen($role, "SELECT destor.lo_readable($lo), destor.lo_readable($lo_tiered)", 'lo_readable');
	is($o, 'f|f', "$role: lo_readable says no");
	is($node->safe_psql('postgres', "SELECT recalled_at IS NULL FROM destor.lo_tiers WHERE loid = $lo_tiered"), 't',
		"$role: the tiered large object was not recalled");

	# -----------------------------------------------------------------------------------------
	# 3. Tables: rows, EXPLAIN, DDL, destor's table functions
	# -----------------------------------------------------------------------------------------
	for my $t ('shared.secret', 'shared.amsecret', 'shared.ev_2020', 'shared.ev')
	{
		denied($role, "SELECT * FROM $t", $NOPRIV, "SELECT from $t");
		denied($role, "EXPLAIN (VERBOSE) SELECT * FROM $t", $NOPRIV, "EXPLAIN of $t");
		denied($role, "TRUNCATE $t", $NOPRIV, "TRUNCATE of $t");
		denied($role, "DELETE FROM $t", $NOPRIV, "DELETE from $t");
		denied($role, "COPY (SELECT * FROM $t) TO STDOUT", $NOPRIV, "COPY of $t");
	}
	denied($role, "SELECT destor.compact('shared.secret')", qr/must be owner/, 'compact of a foreign table');
	denied($role, "SELECT destor.compact('shared.amsecret')", qr/must be owner/, 'compact of a table USING destor');
	denied($role, "SELECT destor.compact('shared.ev_2020')", qr/must be owner/, 'compact of a tiered partition');
	denied($role, "SELECT destor.bind_table('shared.secret')", qr/must be owner/, 'bind_table');
	denied($role, "SELECT destor.tier_partition('shared.ev_2021', 'pool')", qr/must be owner/, 'tier_partition');
	denied($role, "SELECT destor.recall_partition('shared.ev_2020')", qr/must be owner/, 'recall_partition');
	denied($role, "SELECT destor.tier_partitions('shared.ev', 'pool', 0)", qr/must be owner/, 'tier_partitions (keep_local)');
	denied($role, "SELECT destor.tier_partitions('shared.ev', 'pool', interval '1 day')", qr/must be owner/,
		'tier_partitions (older_than)');
	denied($role, "ALTER FOREIGN TABLE shared.secret OPTIONS (ADD segment_rows '10')", qr/must be owner/,
		'ALTER FOREIGN TABLE OPTIONS');
	denied($role, 'DROP FOREIGN TABLE shared.secret', qr/must be owner/, 'DROP FOREIGN TABLE');
	denied($role, 'ALTER TABLE shared.amsecret SET ACCESS METHOD heap', qr/must be owner/, 'ALTER TABLE SET ACCESS METHOD');
	# meta_note_table is callable by PUBLIC but only notes tables the caller owns
	my $log_before = $node->safe_psql('postgres', 'SELECT count(*) FROM destor.meta_log');
	as_role($role, "SELECT destor.meta_note_table('shared.secret')", commit => 1);
	is($node->safe_psql('postgres', 'SELECT count(*) FROM destor.meta_log'), $log_before,
		"$role: meta_note_table on owner_r's table writes no log object");

	# a leaky function of the caller sees no row it may not read (RLS on a table USING destor;
	# the same table without SELECT)
	($r, $o, $e) = as_role($role, q{
CREATE FUNCTION pg_temp.leak(text) RETURNS bool LANGUAGE plpgsql COST 0.0000001
  AS $$ BEGIN RAISE NOTICE 'leak %', $1; RETURN true; END $$;
SELECT count(*) FROM shared.rls WHERE pg_temp.leak(v);
SELECT count(*) FROM shared.amsecret WHERE pg_temp.leak(v)});
	ok(!defined leaks("$o\n$e"), "$role: a leaky WHERE function sees no row hidden by RLS or privileges");

	# -----------------------------------------------------------------------------------------
	# 4. Views and reports: only what the caller may see; no secret, no other role's error text
	# -----------------------------------------------------------------------------------------
	($r, $o, $e) = as_role($role, q{
CREATE TEMP TABLE seen (t text);
CREATE FUNCTION pg_temp.peek(text) RETURNS bool LANGUAGE plpgsql COST 0.0000001
  AS $$ BEGIN INSERT INTO seen VALUES ($1); RETURN true; END $$;
SELECT count(*) FROM destor.blob_shards x WHERE pg_temp.peek(x::text);
SELECT count(*) FROM destor.blob_acl x WHERE pg_temp.peek(x::text);
SELECT count(*) FROM destor.placement_report x WHERE pg_temp.peek(x::text);
SELECT count(*) FROM destor.tiered_partitions x WHERE pg_temp.peek(x::text);
SELECT count(*) FROM destor.tiered_large_objects x WHERE pg_temp.peek(x::text);
SELECT count(*) FROM destor.tiering_policies x WHERE pg_temp.peek(x::text);
SELECT string_agg(t, ' ') FROM seen});
	unlike($o, qr/\Q$blob\E|\Q$seg_object\E|\Q$lo_object\E|ev_2020|\b$lo_tiered\b/,
		"$role: security_barrier views pass no owner_r row to a caller's function");
	for my $v (qw(blob_shards blob_acl placement_report placement_summary tiered_partitions
		tiered_large_objects tiering_policies))
	{
		($r, $o, $e) = nothing_seen($role, "SELECT * FROM destor.$v", "view $v");
		unlike($o, qr/\Q$blob\E|\Q$seg_object\E|\Q$lo_object\E|ev_2020|secret|\b$lo_tiered\b/,
			"$role: view $v shows none of owner_r's objects");
	}
	denied($role, 'SELECT * FROM destor.storage_report', $NOPRIV, 'storage_report');
	denied($role, 'SELECT * FROM destor.cost_report', $NOPRIV, 'cost_report');
	for my $v ('destor.cache_stats', 'destor.cache_stats_raw()', 'destor.provider_stats()',
		'destor.provider_health()', 'destor.provider_audits()', 'destor.provider_status',
		'destor.maintenance_status', 'destor.maintenance_status_raw()', 'destor.progress',
		'destor.progress_report()')
	{
		nothing_seen($role, "SELECT * FROM $v", $v);
	}
	($r, $o, $e) = as_role($role, 'SELECT count(*) FROM destor.provider_stats() WHERE last_error IS NOT NULL');
	is($o, '0', "$role: provider_stats() hides last_error");
	nothing_seen($role, "SELECT destor.placement_violation('pool', ARRAY['f1','f1','f1']::name[])", 'placement_violation');
	nothing_seen($role, "SELECT destor.provider_tag('s3p', o) FROM unnest(ARRAY['endpoint','secret_access_key','access_key_id']) o",
		'provider_tag on the s3 provider');
	# user mapping options: PostgreSQL's pg_user_mappings hides them; destor must not show them elsewhere
	nothing_seen($role, "SELECT umoptions FROM pg_user_mappings WHERE srvname = 's3p'", 'pg_user_mappings');

	# -----------------------------------------------------------------------------------------
	# 5. Superuser-only and admin functions
	# -----------------------------------------------------------------------------------------
	for my $f ("destor.cache_reset()", "destor.provider_stats_reset()", "destor.forget_table('$table_id')",
		"destor.cleanup_orphans('pool', '0')", "destor.repair('pool')", "destor.repair(NULL, true, true)",
		"destor.move_shards('f1', 'f2')", "destor.rebalance('pool')", "destor.audit('pool')",
		"destor.placement_cost('pool')", "destor.placement_mode_cost('pool', 'spread')",
		"destor.apply_tiering_policies()", "destor.apply_lo_tiering()", "destor.vacuum_blobs('pool')",
		"destor.vacuum_blobs('pool', false)", "destor.recover_catalog('pool')",
		"destor.rotate_master_key('$keyfile')", "destor.take_over_pool('pool')", "destor.follow_pool('pool')",
		"destor.log_snapshot('pool')", "destor.compact_log('pool')", "destor.repair_log('pool')",
		"destor.compact_packs('pool', 0)", "destor.blob_record_role_dependencies()")
	{
		denied($role, "SELECT $f", $NOPRIV, $f);
	}
	denied($role, "SET destor.max_active_blob_descriptors = 1000", $NOPRIV, 'setting max_active_blob_descriptors');
	# a timed-out request counts against its provider for every session: a role
	# with 100 ms timeouts would mark a healthy WAN provider down for everyone
	denied($role, "SET destor.request_timeout = 100", $NOPRIV, 'setting request_timeout');
	denied($role, "SET destor.connect_timeout = 100", $NOPRIV, 'setting connect_timeout');
	denied($role, 'SHOW destor.master_key_file', qr/must be superuser|privileges of pg_read_all_settings/,
		'SHOW destor.master_key_file');
	denied($role, "SET destor.master_key_file = '/tmp/x'", qr/cannot be changed now/, 'SET destor.master_key_file');
	denied($role, "INSERT INTO destor.tiering_policies VALUES ('shared.ev', 'pool', 0, NULL)", $NOPRIV,
		'a tiering policy for owner_r\'s table');
	for my $t (qw(objects shards blobs segments deletions retired tables am_tables lo_tiers
		lo_tiering_policies meta_log table_definitions followed_log meta_snapshots meta_superseded
		meta_log_unstored))
	{
		denied($role, "SELECT * FROM destor.$t", $NOPRIV, "reading destor.$t");
	}
	denied($role, "SELECT nextval('destor.segment_no_seq')", $NOPRIV, 'segment_no_seq');
	denied($role, "SELECT nextval('destor.meta_seq')", $NOPRIV, 'meta_seq');
	denied($role, 'DROP OWNED BY owner_r', $NOPRIV, 'DROP OWNED BY owner_r');
	denied($role, "REASSIGN OWNED BY owner_r TO $role", $NOPRIV, 'REASSIGN OWNED BY owner_r');

	# validators and type functions called directly
	denied($role, "SELECT destor.destor_provider_validator(ARRAY['type=file','path=$base/evil'], 'pg_foreign_server'::regclass)",
		$NOPRIV, 'the provider validator declaring a file provider');
	nothing_seen($role, "SELECT destor.destor_pool_validator(ARRAY['providers=f1,f2,f3','data_shards=2','parity_shards=1'], 'pg_foreign_server'::regclass)",
		'the pool validator');
	nothing_seen($role, 'SELECT destor.destor_fdw_handler()', 'destor_fdw_handler()');
	nothing_seen($role, "SELECT destor.blob_out(destor.blob_in('$blob')), destor.blob_send('$blob'), destor.blob_id('$blob')",
		'blob_in/out/send/id');
	nothing_seen($role, "SELECT destor.blob_eq('$blob', '$blob'), destor.blob_ne('$blob', '$blob'), destor.blob_lt('$blob', '$blob'),"
		. " destor.blob_le('$blob', '$blob'), destor.blob_gt('$blob', '$blob'), destor.blob_ge('$blob', '$blob'),"
		. " destor.blob_cmp('$blob', '$blob'), destor.blob_hash('$blob'), destor.blob_hash_extended('$blob', 0)",
		'blob comparison and hash functions');
	nothing_seen($role, "SELECT '10'::destor.restorable_role, destor.restorable_acl_in('{owner_r=r/owner_r}'),"
		. " destor.aclitems(destor.restorable_acl('{owner_r=r/owner_r}'::aclitem[]))", 'restorable types');
	denied($role, "SELECT destor.blob_manage()", qr/trigger/, 'blob_manage called directly');
	denied($role, "SELECT destor.meta_capture()", qr/trigger/, 'meta_capture called directly');
	denied($role, "SELECT destor.blob_meta_invalidate()", qr/trigger/, 'blob_meta_invalidate called directly');
	denied($role, "SELECT destor.on_create_foreign_table()", qr/trigger/, 'on_create_foreign_table called directly');
	denied($role, "SELECT destor.on_meta_table_ddl()", qr/trigger/, 'on_meta_table_ddl called directly');
}

# ---------------------------------------------------------------------------------------------
# 6. nobody_r: no pool USAGE, so no writes, no provider probes, no tables on the pool
# ---------------------------------------------------------------------------------------------
denied('nobody_r', "SELECT destor.blob_put('pool', 'x')", $NOPRIV, 'blob_put without USAGE');
denied('nobody_r', "SELECT destor.blob_create('pool')", $NOPRIV, 'blob_create without USAGE');
denied('nobody_r', "SELECT destor.check_provider('f1')", $NOPRIV, 'check_provider without USAGE');
denied('nobody_r', "SELECT destor.check_provider('s3p')", $NOPRIV, 'check_provider of the s3 provider without USAGE');
denied('nobody_r', 'CREATE FOREIGN TABLE shared.nft (a int) SERVER pool', $NOPRIV, 'a foreign table on the pool');
denied('nobody_r', "SET destor.default_pool = 'pool'; CREATE TABLE shared.nam (a int) USING destor", $NOPRIV,
	'a table USING destor on the pool');
denied('nobody_r', "SET destor.default_pool = 'pool'; CREATE TABLE shared.nh (a int); ALTER TABLE shared.nh SET ACCESS METHOD destor",
	$NOPRIV, 'ALTER TABLE SET ACCESS METHOD destor on the pool');
denied('nobody_r', "SET destor.default_pool = 'pool'; CREATE TABLE shared.nl (LIKE shared.amsecret) USING destor; INSERT INTO shared.nl SELECT * FROM shared.amsecret",
	$NOPRIV, 'copying owner_r\'s table into its own');

# ---------------------------------------------------------------------------------------------
# 7. usage_r: what USAGE allows, and nothing more
# ---------------------------------------------------------------------------------------------
# check_provider on the s3 provider: the error names no credential
my ($r, $o, $e) = nothing_seen('usage_r', "SELECT * FROM destor.check_provider('s3p')", 'check_provider on the s3 provider');
like($o, qr/^f\|/, 'usage_r: check_provider reports the unreachable s3 provider');
# writes through a pool with an s3 provider: warnings name no credential
nothing_seen('usage_r', "SET destor.max_retries = 0; SELECT length(destor.blob_get(destor.blob_put('mixpool', 'x')))",
	'a blob written through a pool with the s3 provider');
nothing_seen('usage_r', q{SET destor.max_retries = 0;
CREATE FOREIGN TABLE shared.umix (a int) SERVER mixpool; INSERT INTO shared.umix VALUES (1);
EXPLAIN (ANALYZE, VERBOSE) SELECT * FROM shared.umix}, 'EXPLAIN of a table on the s3 pool');
($r, $o, $e) = as_role('usage_r', 'SELECT count(*) FROM destor.provider_status WHERE last_error IS NOT NULL');
is($o, '0', 'usage_r: provider_status hides last_error');

# column privileges: a grant of one column reads that column only, on both kinds of table
$node->safe_psql('postgres', 'GRANT SELECT (id) ON shared.secret, shared.amsecret TO usage_r');
($r, $o, $e) = nothing_seen('usage_r', 'SELECT id FROM shared.secret ORDER BY id', 'a granted column of the foreign table');
is($o, "1\n2", 'usage_r: reads the granted column of the foreign table');
($r, $o, $e) = nothing_seen('usage_r', 'SELECT id FROM shared.amsecret', 'a granted column of the table USING destor');
is($o, '1', 'usage_r: reads the granted column of the table USING destor');
denied('usage_r', 'SELECT v FROM shared.secret', $NOPRIV, 'a column not granted (foreign table)');
denied('usage_r', 'SELECT v FROM shared.amsecret', $NOPRIV, 'a column not granted (table USING destor)');
denied('usage_r', "SELECT id FROM shared.secret WHERE v = 'TOPSECRETROW'", $NOPRIV, 'a WHERE on a column not granted');
denied('usage_r', "SELECT id FROM shared.amsecret WHERE v LIKE 'AM%'", $NOPRIV, 'a WHERE on a column not granted (AM)');
$node->safe_psql('postgres', 'REVOKE SELECT (id) ON shared.secret, shared.amsecret FROM usage_r');

# a table's identity cannot be taken: by naming its table_id, by IMPORT FOREIGN SCHEMA
$node->safe_psql('postgres', 'GRANT CREATE ON DATABASE postgres TO usage_r');
denied('usage_r', "CREATE FOREIGN TABLE shared.thief (id int, v text) SERVER pool OPTIONS (table_id '$table_id'); SELECT * FROM shared.thief",
	qr/in use by another table/, 'a foreign table naming owner_r\'s table_id');
denied('usage_r', "CREATE SCHEMA imp; IMPORT FOREIGN SCHEMA shared LIMIT TO (secret) FROM SERVER pool INTO imp; SELECT * FROM imp.secret",
	qr/in use by another table/, 'IMPORT FOREIGN SCHEMA of owner_r\'s table');
# a temporary table named like the catalog the event trigger reads
# (pg_foreign_table) does not stand in for it (pg_temp is last in the
# trigger's search_path): the table gets its own table_id, and one naming
# owner_r's table_id is refused as without the temporary table
{
	my ($ret, $out, $err) = as_role('usage_r', q{CREATE TEMP TABLE pg_foreign_table (ftrelid oid, ftserver oid, ftoptions text[]);
CREATE FOREIGN TABLE shared.noid (id int, v text) SERVER pool;
DROP TABLE pg_temp.pg_foreign_table;
SELECT count(*) FROM shared.noid;
SELECT count(*) FROM pg_catalog.pg_foreign_table ft, unnest(ft.ftoptions) o
 WHERE ft.ftrelid = 'shared.noid'::regclass AND o LIKE 'table_id=%'}, commit => 0);
	is($out, "0
1", 'usage_r: a temporary pg_foreign_table does not keep a new table from its table_id')
	  or diag($err);
}
denied('usage_r', q{CREATE TEMP TABLE pg_foreign_table (ftrelid oid, ftserver oid, ftoptions text[]);
CREATE FOREIGN TABLE shared.noid2 (id int, v text) SERVER pool OPTIONS (table_id '} . $table_id . q{');
DROP TABLE pg_temp.pg_foreign_table;
SELECT * FROM shared.noid2}, qr/in use by another table/,
	'a foreign table naming owner_r\'s table_id behind a temporary pg_foreign_table');

# blobs granted SELECT: read, but no owner's rights
my $granted = $node->safe_psql('postgres', q{
SET ROLE owner_r;
SELECT destor.blob_put('pool', convert_to('granted', 'UTF8')) AS b \gset
SELECT destor.blob_grant(:'b', 'usage_r', 'SELECT');
SELECT :'b'});
$granted = (split /\n/, $granted)[-1];
($r, $o, $e) = as_role('usage_r', "SELECT convert_from(destor.blob_get('$granted'), 'UTF8')");
is($o, 'granted', 'usage_r: reads a blob granted SELECT');
denied('usage_r', "SELECT destor.blob_delete('$granted')", qr/may not delete/, 'blob_delete of a granted blob');
denied('usage_r', "SELECT destor.blob_to_lo('$granted', 0, true)", qr/may not delete/, 'blob_to_lo(delete) of a granted blob');
denied('usage_r', "SELECT destor.blob_grant('$granted', 'nobody_r', 'SELECT')", qr/may not grant/, 're-granting a granted blob');
denied('usage_r', "SELECT destor.blob_grant('$granted', 'usage_r', 'UPDATE')", qr/may not grant/, 'granting itself UPDATE');
denied('usage_r', "SELECT destor.blob_revoke('$granted', 'owner_r', 'SELECT')", qr/may not revoke/, 'revoking on a granted blob');
denied('usage_r', "SELECT destor.blob_set_owner('$granted', 'usage_r')", qr/may not change its owner/, 'taking a granted blob');
denied('owner_r', "SELECT destor.blob_set_owner('$granted', 'usage_r')", qr/must be member of role/,
	'owner_r giving a blob to a role it is not a member of');
# the grant is taken back: a session that read the blob (and cached its metadata) reads no more
my $sess = $node->background_psql('postgres', extra_params => [ '-U', 'usage_r' ], on_error_stop => 0);
$sess->query_safe("SELECT destor.blob_read('$granted', 0, 3)");
$node->safe_psql('postgres', "SET ROLE owner_r; SELECT destor.blob_revoke('$granted', 'usage_r', 'SELECT')");
$sess->query("SELECT destor.blob_read('$granted', 0, 3)");
like($sess->{stderr}, $NOREAD, 'usage_r: a revoked grant is seen at once by a session that cached the blob');
$sess->quit;

# a blob_manage trigger of usage_r's own table does not delete owner_r's blob
as_role('usage_r', q{CREATE TABLE shared.trap (b destor.blob);
CREATE TRIGGER trap_b AFTER UPDATE OR DELETE ON shared.trap FOR EACH ROW EXECUTE FUNCTION destor.blob_manage('b');
INSERT INTO shared.trap SELECT b FROM shared.ob;
DELETE FROM shared.trap;}, commit => 1);
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.blobs WHERE blob_id = '$blob'"), '1',
	'usage_r: a blob_manage trigger does not delete owner_r\'s blob');
# blob_to_lo into owner_r's existing large object
denied('usage_r', "SELECT destor.blob_to_lo(destor.blob_put('pool', 'OVERWRITE'), $lo)", qr/already exists|permission denied/,
	'blob_to_lo over owner_r\'s large object');

# a large object granted SELECT: copied, not moved, not tiered
$node->safe_psql('postgres', "SET ROLE owner_r; GRANT SELECT ON LARGE OBJECT $lo TO usage_r");
denied('usage_r', "SELECT destor.blob_from_lo('pool', $lo, true)", qr/must be owner/, 'blob_from_lo(unlink) of a granted large object');
denied('usage_r', "SELECT destor.lo_tier($lo, 'pool')", $NOPRIV, 'lo_tier of a large object granted SELECT only');
$node->safe_psql('postgres', "SET ROLE owner_r; REVOKE SELECT ON LARGE OBJECT $lo FROM usage_r");

# writes need USAGE on the pool and on every provider, also into a table made before a REVOKE
$node->safe_psql('postgres', q{SET ROLE usage_r; SET destor.default_pool = 'pool';
CREATE FOREIGN TABLE shared.uft (a int) SERVER pool; CREATE TABLE shared.uam (a int) USING destor;});
$node->safe_psql('postgres', 'REVOKE USAGE ON FOREIGN SERVER pool FROM usage_r');
denied('usage_r', 'INSERT INTO shared.uft VALUES (1)', $NOPRIV, 'INSERT into its foreign table after USAGE is revoked');
denied('usage_r', 'INSERT INTO shared.uam VALUES (1)', $NOPRIV, 'INSERT into its table USING destor after USAGE is revoked');
denied('usage_r', "SELECT destor.blob_put('pool', 'x')", $NOPRIV, 'blob_put after USAGE is revoked');
$node->safe_psql('postgres', 'GRANT USAGE ON FOREIGN SERVER pool TO usage_r; REVOKE USAGE ON FOREIGN SERVER f3 FROM usage_r');
denied('usage_r', 'INSERT INTO shared.uft VALUES (1)', $NOPRIV, 'INSERT with a provider\'s USAGE revoked');
denied('usage_r', "SELECT destor.blob_create('pool')", $NOPRIV, 'blob_create with a provider\'s USAGE revoked');
$node->safe_psql('postgres', 'GRANT USAGE ON FOREIGN SERVER f3 TO usage_r');

# packed small blobs of two roles in one pack: a read of one's never reaches the other's bytes
my $packed = $node->safe_psql('postgres', q{
SET destor.blob_pack_threshold = 65536;
BEGIN;
SET LOCAL ROLE owner_r;
SELECT destor.blob_put('pool', convert_to('PACKNEIGHBOUR before', 'UTF8')) \gset
SET LOCAL ROLE usage_r;
SELECT destor.blob_put('pool', convert_to('mine', 'UTF8')) AS m \gset
SET LOCAL ROLE owner_r;
SELECT destor.blob_put('pool', convert_to('PACKNEIGHBOUR after', 'UTF8')) \gset
COMMIT;
SELECT :'m'});
$packed = (split /\n/, $packed)[-1];
is($node->safe_psql('postgres', "SELECT count(DISTINCT pack_id) FROM destor.blobs WHERE pack_id IS NOT NULL AND created_at > now() - interval '1 hour'"),
	'1', 'setup: the three small blobs share a pack');
for my $sql ("SELECT destor.blob_read('$packed', 0, 1000)", "SELECT destor.blob_read('$packed', 3, 1000)",
	"SELECT destor.blob_read('$packed', 4, 1000)", "SELECT destor.blob_read('$packed', 100, 10)",
	"SELECT destor.blob_read('$packed', -16, 100)", "SELECT destor.blob_get('$packed')",
	"SELECT destor.blob_open('$packed') AS fd \\gset\nSELECT destor.blob_seek(:fd, -2, 2), destor.blob_read(:fd, 1000)",
	"SELECT destor.blob_open('$packed') AS fd \\gset\nSELECT destor.blob_seek(:fd, 4, 0), destor.blob_read(:fd, 1000)",
	"SELECT destor.blob_open('$packed') AS fd \\gset\nSELECT destor.blob_seek(:fd, -16, 0), destor.blob_read(:fd, 1000)",
	"SELECT destor.blob_open('$packed') AS fd \\gset\nSELECT destor.blob_seek(:fd, 9223372036854775800, 0); SELECT destor.blob_read(:fd, 1000)",
	"SELECT destor.blob_size('$packed'), destor.blob_verify('$packed')",
	"SELECT * FROM destor.blob_shards", "SELECT * FROM destor.placement_report")
{
	nothing_seen('usage_r', $sql, "packed blob: $sql");
}
# a descriptor of another transaction (or never opened) is refused
denied('usage_r', 'SELECT destor.blob_read(0, 10)', qr/descriptor/, 'a descriptor it never opened');

# tier_partition of its own table attached to owner_r's parent
denied('usage_r', "CREATE TABLE shared.myev (at date, what text); ALTER TABLE shared.ev ATTACH PARTITION shared.myev FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')",
	qr/must be owner/, 'attaching its table to owner_r\'s parent');

# ---------------------------------------------------------------------------------------------
# 8. The master key and credentials appear nowhere: not in the server log either
# ---------------------------------------------------------------------------------------------
my $log = slurp_file($node->logfile);
unlike($log, qr/SUPERSECRETKEYVALUE123/, 'the server log holds no secret_access_key');
unlike($log, qr/\Q$master_key\E/, 'the server log holds no master key');

# ---------------------------------------------------------------------------------------------
# 9. owner_r's data is intact after all of it
# ---------------------------------------------------------------------------------------------
is($node->safe_psql('postgres', 'SET ROLE owner_r; SELECT string_agg(v, \',\' ORDER BY id) FROM shared.secret'),
	'TOPSECRETROW,another', 'owner_r: the foreign table is intact');
is($node->safe_psql('postgres', 'SET ROLE owner_r; SELECT v FROM shared.amsecret'), 'AMSECRETROW',
	'owner_r: the table USING destor is intact');
is($node->safe_psql('postgres', 'SET ROLE owner_r; SELECT what FROM shared.ev_2020'), 'EVSECRET2020',
	'owner_r: the tiered partition is intact');
is($node->safe_psql('postgres', 'SET ROLE owner_r; SELECT convert_from(destor.blob_get(b), \'UTF8\') FROM shared.ob'),
	'BLOBSECRET', 'owner_r: the blob is intact');
is($node->safe_psql('postgres', "SET ROLE owner_r; SELECT convert_from(lo_get($lo), 'UTF8'), convert_from(lo_get($lo_tiered), 'UTF8')"),
	'LOSECRET|LOSECRET tiered', 'owner_r: the large objects are intact');
is($node->safe_psql('postgres', "SELECT count(*) FROM destor.tables WHERE table_id = '$table_id' AND relid = 'shared.secret'::regclass"),
	'1', 'owner_r\'s table keeps its binding');

# what a superuser hands over with GRANT SET ON PARAMETER, the role may set
$node->safe_psql('postgres', 'GRANT SET ON PARAMETER destor.request_timeout TO usage_r');
{
	my ($ret, $out, $err) = as_role('usage_r', "SET destor.request_timeout = '2s'; SHOW destor.request_timeout");
	is($out, '2s', 'usage_r: request_timeout granted with GRANT SET ON PARAMETER can be set') or diag($err);
	($ret, $out, $err) = as_role('usage_r', "SET destor.connect_timeout = 100");
	like($err, $NOPRIV, 'usage_r: and only that parameter');
}
$node->safe_psql('postgres', 'REVOKE SET ON PARAMETER destor.request_timeout FROM usage_r');

$node->stop;
done_testing();
