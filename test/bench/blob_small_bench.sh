#!/bin/bash
# Small blobs (issue 15 item 5): BENCH_SMALL_N blobs of 4 KiB written and read
# back with destor (packed into shared objects) and, in the same run, with
# PostgreSQL large objects (lo_from_bytea + lo_get); prints ops/s of each,
# the ratio, and the provider objects (shard files) per 100 blobs.
#
# Starts a throwaway cluster with six `file` providers and a 4+2 pool in a
# temporary folder.  Writes go in transactions of BENCH_SMALL_BATCH blobs
# (default 1000), one statement each; reads are one statement over all.
# The content is incompressible (SHA-256 output), made before timing.
#
#   BENCH_SMALL_N=10000     number of blobs
#   BENCH_SMALL_BATCH=1000  blobs per transaction
#   BENCH_QUICK=1           one run per measurement instead of best of three
#   BENCH_USER, BENCH_PORT (default 54344), TMPDIR: as blob_bench.sh
#
# Targets: destor >= 1.0x large objects ops/s; <= 1 provider object per 100
# blobs.  A missed target is printed as MISSED; the exit status stays 0.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${BENCH_WORKER_DIR:-}" ]; then
	. "$here/common.sh"
	bench_find_postgres blob_small_bench
	bench_positive BENCH_SMALL_N 10000
	bench_positive BENCH_SMALL_BATCH 1000
	bench_hand_off blob_small_bench
fi

. "$(dirname "$0")/common.sh"
bench_worker blob_small_bench 54344
n=${BENCH_SMALL_N:-10000}
batch=${BENCH_SMALL_BATCH:-1000}
runs=3
[ "${BENCH_QUICK:-0}" = 1 ] && runs=1

echo "== destor small blob benchmark: $n blobs of 4 KiB, $batch per transaction, best of $runs, destor $BENCH_REV"
echo "   $(uname -srm), $(nproc) CPUs, $(psql --version | head -1)"

bench_start_cluster <<CONF
shared_buffers = 256MB
CONF
psql_q -c "CREATE EXTENSION destor; $(bench_file_pool_sql)"
psql_q -c "CREATE TABLE src AS SELECT i, (SELECT string_agg(sha256((i * 1000 + j)::text::bytea), '')
        FROM generate_series(1, 128) j) AS d FROM generate_series(1, $n) i;
      CREATE TABLE b (i int, h destor.blob); CREATE TABLE l (i int, o oid);"

# the write script: transactions of $batch statements, one blob each
writes() {
	local what=$1 i
	for ((i = 1; i <= n; i++)); do
		if (( (i - 1) % batch == 0 )); then echo "BEGIN;"; fi
		if [ "$what" = blob ]; then
			echo "INSERT INTO b SELECT i, destor.blob_put('archive', d) FROM src WHERE i = $i;"
		else
			echo "INSERT INTO l SELECT i, lo_from_bytea(0, d) FROM src WHERE i = $i;"
		fi
		if (( i % batch == 0 || i == n )); then echo "COMMIT;"; fi
	done
}
writes blob > "$dir/w_blob.sql"
writes lo > "$dir/w_lo.sql"
psql_q -c "CREATE INDEX ON src (i)"

timed() { local t0 t1; t0=$(now); "$@" > /dev/null; t1=$(now); echo "$t1 - $t0" | bc; }
best() { printf '%s\n' "$@" | sort -g | head -1; }
shard_files() { find "$dir/providers" -path '*/ds/*' -type f | wc -l; }

bw=(); br=(); lw=(); lr=()
for ((r = 1; r <= runs; r++)); do
	psql_q -c "SELECT count(destor.blob_delete(h)) FROM b; TRUNCATE b;
	           SELECT count(lo_unlink(o)) FROM l; TRUNCATE l; CHECKPOINT" > /dev/null
	lw+=("$(timed psql_q -f "$dir/w_lo.sql")")
	lr+=("$(timed psql_q -c "SELECT sum(length(lo_get(o))) FROM l")")
	psql_q -c "CHECKPOINT" > /dev/null
	bw+=("$(timed psql_q -f "$dir/w_blob.sql")")
	br+=("$(timed psql_q -c "SELECT sum(length(destor.blob_get(h))) FROM b")")
done

ok=$(psql_q -c "SELECT count(*) FROM b JOIN src USING (i) WHERE destor.blob_get(h) = d")
[ "$ok" = "$n" ] || fail "only $ok of $n blobs read back exactly"
ok=$(psql_q -c "SELECT count(*) FROM l JOIN src USING (i) WHERE lo_get(o) = d")
[ "$ok" = "$n" ] || fail "only $ok of $n large objects read back exactly"
files=$(shard_files)
packs=$(psql_q -c "SELECT count(DISTINCT pack_id) FROM destor.blobs")

bwb=$(best "${bw[@]}"); brb=$(best "${br[@]}"); lwb=$(best "${lw[@]}"); lrb=$(best "${lr[@]}")
ops() { echo "scale=0; $1 / $2" | bc; }
b_ops=$(ops "2 * $n" "($bwb + $brb)"); l_ops=$(ops "2 * $n" "($lwb + $lrb)")
ratio=$(echo "scale=2; $b_ops / $l_ops" | bc)
per100=$(echo "scale=2; $files * 100 / $n" | bc)
printf '   %-22s %10s %10s %14s\n' "" "write s" "read s" "write+read/s"
printf '   %-22s %10.2f %10.2f %14s\n' "large objects" "$lwb" "$lrb" "$l_ops"
printf '   %-22s %10.2f %10.2f %14s\n' "destor packed blobs" "$bwb" "$brb" "$b_ops"
echo "   ops/s ratio destor / large objects: ${ratio}x (target >= 1.0)"
echo "   provider objects (shard files): $files for $n blobs in $packs packs: $per100 per 100 blobs (target <= 1)"
if [ "$(echo "$ratio >= 1.0" | bc)" = 1 ]; then echo "   ops/s target: met"; else echo "   ops/s target: MISSED"; fi
if [ "$(echo "$per100 <= 1" | bc)" = 1 ]; then echo "   objects target: met"; else echo "   objects target: MISSED"; fi
