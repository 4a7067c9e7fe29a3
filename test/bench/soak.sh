#!/bin/bash
# Soak: minutes of mixed work on one pool while its providers fail and come
# back, then an exact reconciliation.  Not a test (make bench runs it):
# it prints what was done and what went wrong, and exits non-zero only if
# something committed was lost or something read was wrong.
#
# Six `file` providers, a 4+2 pool (write quorum 5).  Concurrently:
#   - 2 table writers: INSERT rows into a destor table and the same rows
#     into a heap mirror in one transaction (a third of them roll back);
#   - 1 table editor: UPDATE/DELETE the same rows in both, under one
#     snapshot (REPEATABLE READ: at READ COMMITTED a writer committing
#     between the two statements would make them differ);
#   - 1 blob writer: blob_put random bytes, their sha256 kept in a heap table
#     in the same transaction; now and then blob_delete of an old one;
#   - 2 readers: the destor table against its mirror (count, sums), and a
#     random blob's sha256 against the recorded one — any difference is
#     a wrong read (a division by zero the planner cannot fold away);
#   - maintenance: compact() and repair() in a loop;
#   - faults: one provider at a time loses its folder (renamed away) for a
#     few seconds, then comes back; or a byte of a shard file of p1 is
#     changed (only p1's: a fault on more providers than the pool has
#     parity could destroy data no software could bring back).
# At the end: the table equals its mirror row for row, every recorded blob
# reads back with its sha256, repair() rebuilds what the faults destroyed,
# repair(dry_run) then finds nothing, cleanup_orphans leaves exactly the
# shards the catalog places.
#
#   BENCH_SOAK_MINUTES=n   how long the mixed work runs (default 30)
#   BENCH_USER, BENCH_PORT (default 54351) as for the other benchmarks
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [ -z "${BENCH_WORKER_DIR:-}" ]; then
	. "$here/common.sh"
	bench_find_postgres soak
	bench_positive BENCH_SOAK_MINUTES 30
	bench_hand_off soak
fi

. "$(dirname "$0")/common.sh"
bench_worker soak 54351
minutes=${BENCH_SOAK_MINUTES:-30}
pids=()

echo "== destor soak: $minutes minutes of mixed work with provider faults, destor $BENCH_REV"
echo "   $(uname -srm), $(nproc) CPUs, $(psql --version | head -1)"

bench_start_cluster <<CONF
destor.provider_down_interval = '2s'
CONF

sql="CREATE EXTENSION destor;"
sql+=$(bench_file_pool_sql providers-only)
psql_q -c "$sql" -c "
CREATE SERVER pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'p1,p2,p3,p4,p5,p6', data_shards '4', parity_shards '2', write_quorum '5');
CREATE FOREIGN TABLE t (id bigint, v int, s text) SERVER pool
  OPTIONS (segment_rows '20000', row_group_rows '2000');
CREATE TABLE mirror (id bigint, v int, s text);
CREATE TABLE blobs (b destor.blob, sha bytea, deleted bool DEFAULT false);
CREATE SEQUENCE ids;
CREATE TABLE tally (what text, ok bool, n int DEFAULT 1);"

deadline=$(( $(date +%s) + minutes * 60 ))
# run SQL in a loop until the deadline; failures are counted, not fatal
# (a provider fault can fail a statement, which must then change nothing)
loop() {
	local name=$1 sql=$2 ok bad
	ok=0; bad=0
	while [ "$(date +%s)" -lt "$deadline" ]; do
		if printf '%s\n' "$sql" | psql_q -f - >/dev/null 2>>"$dir/$name.err"; then
			ok=$((ok + 1))
		else
			bad=$((bad + 1))
		fi
	done
	echo "$name $ok $bad" > "$dir/$name.count"
}

loop writer1 "BEGIN;
  CREATE TEMP TABLE b AS SELECT nextval('ids') AS id, (random() * 1000)::int AS v, md5(random()::text) AS s
    FROM generate_series(1, 2000);
  INSERT INTO t SELECT * FROM b; INSERT INTO mirror SELECT * FROM b;
  SELECT CASE WHEN random() < 0.33 THEN 'ROLLBACK' ELSE 'COMMIT' END \\gexec" & pids+=($!)
loop writer2 "BEGIN;
  CREATE TEMP TABLE b AS SELECT nextval('ids') AS id, (random() * 1000)::int AS v, md5(random()::text) AS s
    FROM generate_series(1, 500);
  INSERT INTO t SELECT * FROM b; INSERT INTO mirror SELECT * FROM b; COMMIT;" & pids+=($!)
loop editor "BEGIN ISOLATION LEVEL REPEATABLE READ;
  SELECT (random() * 1000)::int AS k \\gset
  UPDATE t SET v = v + 1 WHERE v = :k; UPDATE mirror SET v = v + 1 WHERE v = :k;
  DELETE FROM t WHERE v = :k + 500; DELETE FROM mirror WHERE v = :k + 500; COMMIT;" & pids+=($!)
loop blobs "BEGIN;
  CREATE TEMP TABLE x AS SELECT decode(string_agg(md5(random()::text), ''), 'hex') AS d
    FROM generate_series(1, (random() * 20000)::int + 1);
  INSERT INTO blobs (b, sha) SELECT destor.blob_put('pool', d), sha256(d) FROM x;
  WITH victim AS MATERIALIZED (SELECT ctid AS c FROM blobs WHERE NOT deleted AND random() < 0.05)
  UPDATE blobs SET deleted = true FROM victim WHERE blobs.ctid = victim.c RETURNING destor.blob_delete(blobs.b);
  COMMIT;" & pids+=($!)
loop reader_table "SELECT CASE WHEN (SELECT (count(*), sum(v), sum(id)) FROM t)
                            = (SELECT (count(*), sum(v), sum(id)) FROM mirror)
  THEN 1 ELSE 1 / (random() * 0)::int END" & pids+=($!)
loop reader_blobs "SELECT CASE WHEN sha256(destor.blob_get(b)) = sha THEN 1 ELSE 1 / (random() * 0)::int END
  FROM blobs WHERE NOT deleted ORDER BY random() LIMIT 1" & pids+=($!)
loop maintenance "SELECT count(*) FROM destor.compact('t'); SELECT count(*) FROM destor.repair('pool')" & pids+=($!)

# faults: one provider at a time
faults=0
while [ "$(date +%s)" -lt "$deadline" ]; do
	sleep $(( RANDOM % 5 + 2 ))
	p=$(( RANDOM % 6 + 1 ))
	if [ $((RANDOM % 2)) = 0 ]; then
		mv "$dir/providers/p$p" "$dir/providers/p$p.away"
		sleep $(( RANDOM % 4 + 1 ))
		mv "$dir/providers/p$p.away" "$dir/providers/p$p"
	else
		f=$(find "$dir/providers/p1" -type f -size +1k 2>/dev/null | shuf -n 1 || true)
		[ -n "$f" ] && printf '\xff' | dd of="$f" bs=1 seek=100 conv=notrunc status=none 2>/dev/null || true
	fi
	faults=$((faults + 1))
done
wait "${pids[@]}" 2>/dev/null || true
pids=()

echo "   work done in $minutes minutes (statements that succeeded / failed):"
wrong=0
for n in writer1 writer2 editor blobs reader_table reader_blobs maintenance; do
	read -r name ok bad < "$dir/$n.count"
	printf '   %-13s %7d ok %5d failed\n' "$name" "$ok" "$bad"
	case $n in reader_*) wrong=$((wrong + $(grep -c 'division by zero' "$dir/$n.err" 2>/dev/null || true))) ;; esac
done
echo "   provider faults injected: $faults"
echo "   reads that returned a wrong answer: $wrong"

# reconciliation, with every provider back
psql_q -c "SELECT count(*) FROM destor.repair('pool')" >/dev/null
rows=$(psql_q -c "SELECT count(*) FROM mirror")
diff_rows=$(psql_q -c "SELECT count(*) FROM ((SELECT * FROM t EXCEPT ALL SELECT * FROM mirror)
                                           UNION ALL (SELECT * FROM mirror EXCEPT ALL SELECT * FROM t)) d")
nblobs=$(psql_q -c "SELECT count(*) FROM blobs WHERE NOT deleted")
bad_blobs=$(psql_q -c "SELECT count(*) FROM blobs WHERE NOT deleted AND sha256(destor.blob_get(b)) <> sha")
left=$(psql_q -c "SELECT count(*) FROM destor.repair('pool', dry_run => true)")
psql_q -c "SELECT destor.cleanup_orphans('pool', '0')" >/dev/null
files=$(find "$dir/providers" -path '*/ds/*' -type f | wc -l)
placed=$(psql_q -c "SELECT count(*) FROM destor.shards")
echo "   reconciliation: $rows rows, $diff_rows differing from the heap mirror;" \
	"$nblobs blobs, $bad_blobs not matching their sha256;" \
	"$left shard problems after repair; $files shard files for $placed placed shards"
[ "$wrong" = 0 ] && [ "$diff_rows" = 0 ] && [ "$bad_blobs" = 0 ] && [ "$left" = 0 ] && [ "$files" = "$placed" ] ||
	fail "the soak lost or misread data (see above)"
echo "   soak: nothing lost, nothing read wrong"
