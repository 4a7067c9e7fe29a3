#!/bin/bash
# Packs under concurrency (issue 15, breaker15d F8/F9): clients insert small
# (packed) blobs, delete and replace rows whose blobs blob_manage deletes,
# read random rows comparing every byte, while others run compact_packs; a
# stress run, not a benchmark.  Prints each distinct error the clients met
# and checks at the end that every row's blob reads back as stored and that
# no blob is left without a row (apart from those EvalPlanQual re-evaluation
# of an UPDATE's blob_put leaves, as lo_from_bytea would: counted apart).
#
#   BENCH_RACE_SECONDS=30   how long pgbench runs
#   BENCH_RACE_CLIENTS=6    pgbench clients
#   BENCH_USER, BENCH_PORT (default 54346), TMPDIR: as blob_bench.sh
#
# Expected: no client error at all.  Found (breaker15d): "object <pack> does
# not exist" from blob_manage's deletion (and blob_delete / blob_get) when a
# compaction commits between the blob row and the pack row being read (two
# fresh snapshots), and "deadlock detected" between compact_packs and a
# DELETE whose blob_manage deletes a packed blob.  The exit status is 1 when
# any client failed or a check did not hold.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${BENCH_WORKER_DIR:-}" ]; then
	. "$here/common.sh"
	bench_find_postgres blob_pack_race
	bench_positive BENCH_RACE_SECONDS 30
	bench_positive BENCH_RACE_CLIENTS 6
	bench_hand_off blob_pack_race
fi

. "$(dirname "$0")/common.sh"
bench_worker blob_pack_race 54346
seconds=${BENCH_RACE_SECONDS:-30}
clients=${BENCH_RACE_CLIENTS:-6}

bench_start_cluster <<CONF
destor.blob_pack_threshold = '64kB'
destor.cache_size = '0'
autovacuum = off
CONF
psql_q -c "CREATE EXTENSION destor; $(bench_file_pool_sql)"
psql_q -c "CREATE TABLE docs (id bigserial PRIMARY KEY, b destor.blob, body bytea);
           CREATE TRIGGER m BEFORE UPDATE OR DELETE ON docs
             FOR EACH ROW EXECUTE FUNCTION destor.blob_manage(b);"

cat > "$dir/ins.sql" <<'SQL'
\set n random(1, 8)
BEGIN;
INSERT INTO docs (b, body) SELECT destor.blob_put('archive', x), x
  FROM (SELECT (SELECT decode(string_agg(md5(random()::text), ''), 'hex')
                  FROM generate_series(1, 50 + g)) AS x FROM generate_series(1, :n) g) s;
COMMIT;
SQL
cat > "$dir/del.sql" <<'SQL'
DELETE FROM docs WHERE id = (SELECT id FROM docs ORDER BY random() LIMIT 1);
SQL
cat > "$dir/upd.sql" <<'SQL'
UPDATE docs SET b = destor.blob_put('archive', body || '\x00'::bytea), body = body || '\x00'::bytea
 WHERE id = (SELECT id FROM docs ORDER BY random() LIMIT 1);
SQL
cat > "$dir/rd.sql" <<'SQL'
SELECT 1 / (destor.blob_get(b) = body)::int FROM docs WHERE id = (SELECT id FROM docs ORDER BY random() LIMIT 1);
SQL
cat > "$dir/cmp.sql" <<'SQL'
SELECT destor.compact_packs('archive', 0.2);
SQL

echo "== destor pack race: $clients clients for $seconds s, destor $BENCH_REV"
status=0
# each client runs until its first error (pgbench -n aborts that client)
pgbench -n -h "$dir" -p "$port" -U postgres -d postgres -T "$seconds" -c "$clients" -j 1 \
	-f "$dir/ins.sql@5" -f "$dir/del.sql@3" -f "$dir/upd.sql@2" -f "$dir/rd.sql@5" -f "$dir/cmp.sql@1" \
	> "$dir/pgbench.out" 2>&1 || true
errors=$(grep -E 'ERROR:' "$dir/pgbench.out" | sed -E 's/.*ERROR: +//; s/[0-9a-f]{8}-[0-9a-f-]{27}/<id>/g' | sort | uniq -c || true)
if [ -n "$errors" ]; then
	echo "client errors:"
	echo "$errors"
	status=1
fi
grep -E 'number of transactions actually processed' "$dir/pgbench.out" || true
rows=$(psql_q -c "SELECT count(*) || ' rows, ' || count(*) FILTER (WHERE destor.blob_get(b) = body) || ' read back' FROM docs")
echo "$rows"
case $rows in "$(psql_q -c "SELECT count(*) FROM docs") rows, $(psql_q -c "SELECT count(*) FROM docs") read back") ;; *) status=1 ;; esac
echo "blobs without a row: $(psql_q -c "SELECT count(*) FROM destor.blobs b WHERE NOT EXISTS (SELECT FROM docs d WHERE d.b::uuid = b.blob_id)")"
echo "deadlocks in the server log: $(grep -c "deadlock detected" "$dir/server.log" || true)"
[ "$status" = 0 ] && echo "OK" || echo "FAILED"
exit "$status"
