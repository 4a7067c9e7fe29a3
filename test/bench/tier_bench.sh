#!/bin/bash
# Partition tiering against an all-heap partitioned table, in one run:
#   1. tiering: destor.tier_partitions() moving all but the newest month of a
#      partitioned table offsite (rows a second), against copying the same
#      rows into a new heap table (INSERT ... SELECT, the plain-PostgreSQL
#      cost of rewriting them);
#   2. queries on the parent before and after: the newest month (pruned to
#      the local heap partition: should not change), one old day (now read
#      from destor segments), and an aggregate over everything;
#   3. the storage of the tiered months: heap bytes before, provider bytes
#      (parity included) after;
#   4. recall: destor.recall_partition() of one month.
# Six `file` providers and a 4+2 pool in a temporary folder; the cluster's
# destor.cache_size is the default (128MB).
#
#   BENCH_ROWS=n      rows of the table, spread over 4 months (default 4000000)
#   BENCH_USER=name   unprivileged user to run as when started by root
#                     (default destor_bench, created if missing)
#   BENCH_PORT=n      port of the throwaway cluster (default 54341)
#
# It is a benchmark, not a test: there is no target for tiering and the exit
# status is 0 unless something breaks (a query whose result changes when
# its partitions are tiered, for instance).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [ -z "${BENCH_WORKER_DIR:-}" ]; then
	. "$here/common.sh"
	bench_find_postgres tier_bench

	bench_positive BENCH_ROWS 4000000

	bench_hand_off tier_bench
fi

# ---------------------------------------------------------------------------
# Worker: everything below runs as the cluster's owner.
# ---------------------------------------------------------------------------
. "$(dirname "$0")/common.sh"
bench_worker tier_bench 54341
rows=${BENCH_ROWS:-4000000}

since() { echo "$(now) - $1" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }

echo "== destor tiering benchmark: $rows rows over 4 months, destor $BENCH_REV"
echo "   $(uname -srm), $(nproc) CPUs, $(psql --version | head -1)"

bench_start_cluster <<CONF
shared_buffers = 1GB
max_wal_size = 4GB
timezone = 'UTC'
CONF

sql="CREATE EXTENSION destor;"
sql+=$(bench_file_pool_sql)
sql+=$(bench_best_sql)
sql+="
      CREATE TABLE readings (at timestamptz NOT NULL, sensor int, temperature float8, note text)
        PARTITION BY RANGE (at);
      CREATE TABLE readings_01 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
      CREATE TABLE readings_02 PARTITION OF readings FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
      CREATE TABLE readings_03 PARTITION OF readings FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
      CREATE TABLE readings_04 PARTITION OF readings FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');
      CREATE INDEX ON readings (at);"
psql_q -c "$sql"

echo -n "   loading $rows rows ..."
t0=$(now)
psql_q <<SQL
SELECT setseed(0.25) \g /dev/null
INSERT INTO readings
  SELECT timestamptz '2024-01-01' + (i::float8 / $rows) * interval '121 days', i % 500,
         20 + 10 * random(), (ARRAY['ok', 'warm', 'check'])[1 + i % 3]
    FROM generate_series(0, $rows - 1) i;
VACUUM ANALYZE readings;
SQL
echo " $(since "$t0")s"
old_rows=$(psql_q -c "SELECT count(*) FROM readings WHERE at < '2024-04-01'")
old_bytes=$(psql_q -c "SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY['readings_01', 'readings_02', 'readings_03']::regclass[]) c")

q_recent="SELECT count(*), round(avg(temperature)::numeric, 9) FROM readings WHERE at >= '2024-04-10' AND at < '2024-04-11'"
q_oldday="SELECT count(*), round(avg(temperature)::numeric, 9) FROM readings WHERE at >= '2024-02-10' AND at < '2024-02-11'"
q_all="SELECT count(*), round(sum(temperature)::numeric, 3), count(DISTINCT note) FROM readings"

# --- before: all heap -------------------------------------------------------------
declare -A before after res
psql_q -c "SELECT count(*) FROM readings" >/dev/null	# warm
for q in recent oldday all; do
	var="q_$q"
	before[$q]=$(bench_best "${!var}")
	res[$q]=$(cat "$dir/last")
done

# --- the plain-PostgreSQL cost of rewriting the old rows -----------------------------
t0=$(now)
psql_q -c "CREATE TABLE heap_copy AS SELECT * FROM readings WHERE at < '2024-04-01'" >/dev/null
copy_s=$(since "$t0")
psql_q -c "DROP TABLE heap_copy" >/dev/null

# --- tiering ------------------------------------------------------------------------
t0=$(now)
tiered=$(psql_q -c "SELECT count(*) FROM destor.tier_partitions('readings', 'archive', keep_local => 1)")
tier_s=$(since "$t0")
[ "$tiered" = 3 ] || fail "tier_partitions tiered $tiered partitions, not 3"
stored=$(du -sb "$dir/providers" | cut -f1)

for q in recent oldday all; do
	var="q_$q"
	after[$q]=$(bench_best "${!var}")
	[ "$(cat "$dir/last")" = "${res[$q]}" ] || fail "query $q gives another result after tiering: $(cat "$dir/last") vs ${res[$q]}"
done

# --- recall -----------------------------------------------------------------------
t0=$(now)
psql_q -c "SELECT destor.recall_partition('readings_03')" >/dev/null
recall_s=$(since "$t0")
[ "$(psql_q -c "$q_all")" = "${res[all]}" ] || fail "the table reads differently after a recall"
recall_rows=$(psql_q -c "SELECT count(*) FROM readings_03")

echo
echo "== results ($old_rows rows in the 3 months tiered, $(echo "$old_bytes / 1048576" | bc) MiB of heap)"
printf '  %-54s %9s %12s\n' "operation" "seconds" "rows/s"
printf '  %-54s %9.2f %12.0f\n' "copying the old rows into a new heap table" "$copy_s" "$(echo "$old_rows / $copy_s" | bc)"
printf '  %-54s %9.2f %12.0f\n' "destor.tier_partitions (3 months)" "$tier_s" "$(echo "$old_rows / $tier_s" | bc)"
printf '  %-54s %9.2f %12.0f\n' "destor.recall_partition (1 month, $recall_rows rows)" "$recall_s" "$(echo "$recall_rows / $recall_s" | bc)"
echo
printf '  %-40s %12s %12s %10s\n' "query on the parent (best of 5)" "all heap" "3 tiered" "before/after"
printf '  %-40s %12s %12s %9sx\n' "one day of the newest month (local)" "${before[recent]}s" "${after[recent]}s" "$(ratio "${before[recent]}" "${after[recent]}")"
printf '  %-40s %12s %12s %9sx\n' "one day of an old month (tiered)" "${before[oldday]}s" "${after[oldday]}s" "$(ratio "${before[oldday]}" "${after[oldday]}")"
printf '  %-40s %12s %12s %9sx\n' "aggregate over all four months" "${before[all]}s" "${after[all]}s" "$(ratio "${before[all]}" "${after[all]}")"
echo "  (every query returned the same result before and after)"
echo
echo "== storage of the three old months"
printf '  heap, with indexes            %12d bytes\n' "$old_bytes"
printf '  providers (4+2, parity incl.) %12d bytes  (%sx the heap)\n' "$stored" "$(ratio "$stored" "$old_bytes")"
echo
echo "== notes"
echo "  - Tiering copies the rows (compressed, encrypted, erasure-coded to six providers, with"
echo "    their fsyncs), swaps the partitions and analyzes them; copying into a heap table"
echo "    is the plain-PostgreSQL cost of rewriting the same rows once, for scale."
echo "  - The newest month stays a heap partition: its query should not change (pruning keeps"
echo "    it away from the providers). The old day is read from destor segments, through the"
echo "    shared cache (128MB) that tiering filled."
