#!/bin/bash
# make bench: destor blobs against PostgreSQL large objects and plain cp.
#
# Starts a throwaway cluster with six `file` providers and a 4+2 pool in a
# temporary folder, imports and exports a random file of BENCH_SIZE_MB MiB
# (default 1024) with cp+sync, lo_import/lo_export and
# destor.blob_import/blob_export, and prints wall times, throughput, ratios,
# peak backend memory and the bytes stored on the providers.
#
#   BENCH_SIZE_MB=256   size of the input file in MiB (default 1024)
#   BENCH_QUICK=1       one run per measurement instead of best of two
#   BENCH_USER=name     unprivileged user to run as when started by root
#                       (default destor_bench, created if missing)
#   BENCH_PORT=n        port of the throwaway cluster (default 54338)
#   TMPDIR              where the temporary folder goes (needs ~6x the size)
#
# It is a benchmark, not a test: a missed target is printed as MISSED and the
# exit status stays 0.  It fails only when something breaks, e.g. an export
# that is not byte-identical to the input.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# ---------------------------------------------------------------------------
# Outer part: find PostgreSQL, make the temporary folder, and - as root -
# hand the run to an unprivileged user, because initdb refuses root.
# ---------------------------------------------------------------------------
if [ -z "${BENCH_WORKER_DIR:-}" ]; then
	. "$here/common.sh"
	bench_find_postgres blob_bench

	bench_positive BENCH_SIZE_MB 1024

	bench_hand_off blob_bench
fi

# ---------------------------------------------------------------------------
# Worker: everything below runs as the cluster's owner.
# ---------------------------------------------------------------------------
. "$(dirname "$0")/common.sh"
bench_worker blob_bench 54338
size_mb=${BENCH_SIZE_MB:-1024}
runs=2
[ "${BENCH_QUICK:-0}" = 1 ] && runs=1

in=$dir/input.bin
out=$dir/output.bin
bytes=$((size_mb * 1048576))

echo "== destor blob benchmark: $size_mb MiB, best of $runs, destor $BENCH_REV"
echo "   $(uname -srm), $(nproc) CPUs, $(psql --version | head -1)"

# --- cluster, providers, pool -----------------------------------------------
bench_start_cluster <<CONF
shared_buffers = 256MB
CONF
psql_q -c "CREATE EXTENSION destor; $(bench_file_pool_sql)"

echo "   making a $size_mb MiB random input file"
head -c "$bytes" /dev/urandom > "$in"

# --- measuring ----------------------------------------------------------------

# measure SQL: runs one statement in a fresh connection (so VmHWM covers only
# this statement) and sets
#   m_secs    wall time of the statement, commit included
#   m_result  the value it returned
#   m_hwm     VmHWM of the backend after it, in kB (peak RSS, shared memory
#             pages the backend touched included)
#   m_anon    the peak of RssAnon (private memory) sampled from outside every
#             50 ms while it ran, in kB
# The statement's value is captured with \gset so a large result is not printed.
measure() {
	local stmt=$1 pidfile=$dir/backend.pid resfile=$dir/measure.out
	local psql_pid bpid="" k v _ rc=0
	rm -f "$pidfile" "$resfile"
	psql_q > "$resfile" <<SQL &
SELECT pg_backend_pid() \g '$pidfile'
-- give the sampler time to find the backend
SELECT pg_sleep(0.2) \g /dev/null
SELECT clock_timestamp() AS t0 \gset
$stmt AS result \gset
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) || '|' || :'result' || '|' ||
       (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1];
SQL
	psql_pid=$!
	m_anon=0
	while kill -0 "$psql_pid" 2>/dev/null; do
		if [ -z "$bpid" ] && [ -s "$pidfile" ]; then bpid=$(< "$pidfile"); fi
		if [ -n "$bpid" ]; then
			while read -r k v _; do
				if [ "$k" = RssAnon: ] && [ "$v" -gt "$m_anon" ]; then m_anon=$v; fi
			done < "/proc/$bpid/status" 2>/dev/null || true
		fi
		sleep 0.05
	done
	wait "$psql_pid" || rc=$?
	[ "$rc" = 0 ] || fail "statement failed: $stmt"
	IFS='|' read -r m_secs m_result m_hwm < "$resfile"
}

# checkpoint between measurements: no run pays for the dirty buffers of the one
# before it
settle() { psql_q -c "CHECKPOINT" >/dev/null; }

# best SECS: keeps the fastest time of the runs (best_secs), and the largest
# memory figures over all runs (best_hwm, best_anon)
best_reset() { best_secs=""; best_hwm=0; best_anon=0; }
best_add() {
	if [ -z "$best_secs" ] || awk -v a="$1" -v b="$best_secs" 'BEGIN { exit !(a < b) }'; then
		best_secs=$1
	fi
	printf " %6.2fs" "$1"
	[ "${2:-0}" -gt "$best_hwm" ] && best_hwm=$2
	[ "${3:-0}" -gt "$best_anon" ] && best_anon=$3
	return 0
}
check_output() {
	cmp -s "$in" "$out" || fail "$1 wrote a file that differs from the input"
	rm -f "$out"
}
declare -A secs hwm anon

# an idle fresh backend, to read the memory figures against
measure "SELECT 1"
hwm[idle]=$m_hwm; anon[idle]=$m_anon

printf "   %-20s" "cp + sync"
best_reset
for ((r = 1; r <= runs; r++)); do
	rm -f "$out"; sync "$dir"
	t0=$(now)
	cp "$in" "$out"
	sync "$out"
	t1=$(now)
	best_add "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
	check_output cp
done
echo
secs[cp]=$best_secs

printf "   %-20s" "lo_import"
best_reset; lo=""
for ((r = 1; r <= runs; r++)); do
	# each run starts from an empty pg_largeobject
	if [ -n "$lo" ]; then psql_q -c "SELECT lo_unlink($lo)" -c "VACUUM pg_largeobject" >/dev/null; fi
	settle
	measure "SELECT lo_import($(lit "$in"))"
	lo=$m_result
	best_add "$m_secs" "$m_hwm" "$m_anon"
done
echo
secs[lo_import]=$best_secs; hwm[lo_import]=$best_hwm; anon[lo_import]=$best_anon

printf "   %-20s" "lo_export"
best_reset
for ((r = 1; r <= runs; r++)); do
	settle
	measure "SELECT lo_export($lo, $(lit "$out"))"
	best_add "$m_secs" "$m_hwm" "$m_anon"
	check_output lo_export
done
echo
secs[lo_export]=$best_secs; hwm[lo_export]=$best_hwm; anon[lo_export]=$best_anon
lo_stored=$(psql_q -c "SELECT pg_relation_size('pg_largeobject')")

printf "   %-20s" "destor.blob_import"
best_reset; blob=""
for ((r = 1; r <= runs; r++)); do
	# keep one blob on the providers, so the du below counts exactly one
	if [ -n "$blob" ]; then psql_q -c "SELECT destor.blob_delete($(lit "$blob")::destor.blob)" >/dev/null; fi
	settle
	measure "SELECT destor.blob_import('archive', $(lit "$in"))"
	blob=$m_result
	best_add "$m_secs" "$m_hwm" "$m_anon"
done
echo
secs[blob_import]=$best_secs; hwm[blob_import]=$best_hwm; anon[blob_import]=$best_anon

printf "   %-20s" "destor.blob_export"
best_reset
for ((r = 1; r <= runs; r++)); do
	settle
	measure "SELECT destor.blob_export($(lit "$blob")::destor.blob, $(lit "$out"))"
	[ "$m_result" = "$bytes" ] || fail "blob_export returned $m_result, expected $bytes"
	best_add "$m_secs" "$m_hwm" "$m_anon"
	check_output blob_export
done
echo
secs[blob_export]=$best_secs; hwm[blob_export]=$best_hwm; anon[blob_export]=$best_anon

# The same exports into /dev/null: what reading costs without writing a
# 1 GiB output file into the page cache, which both exports pay alike and
# which, on a VM that hands freed memory back to the host, can dominate.
printf "   %-20s" "lo_export null"
best_reset
for ((r = 1; r <= runs; r++)); do
	settle
	measure "SELECT lo_export($lo, '/dev/null')"
	best_add "$m_secs" "$m_hwm" "$m_anon"
done
echo
secs[lo_null]=$best_secs; hwm[lo_null]=$best_hwm; anon[lo_null]=$best_anon

printf "   %-20s" "blob_export null"
best_reset
for ((r = 1; r <= runs; r++)); do
	settle
	measure "SELECT destor.blob_export($(lit "$blob")::destor.blob, '/dev/null')"
	best_add "$m_secs" "$m_hwm" "$m_anon"
done
echo
secs[blob_null]=$best_secs; hwm[blob_null]=$best_hwm; anon[blob_null]=$best_anon

# --- report ---------------------------------------------------------------------
mbps() { awk -v s="$1" -v mb="$size_mb" 'BEGIN { printf "%.1f", mb / s }'; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
# speed ratio: how many times faster the first time is than the second
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
row() { # label key
	local h="-" a="-"
	if [ -n "${hwm[$2]:-}" ]; then h=$(mb "${hwm[$2]}"); a=$(mb "${anon[$2]}"); fi
	printf "  %-30s %9.2f %9s %14s %16s\n" "$1" "${secs[$2]}" "$(mbps "${secs[$2]}")" "$h" "$a"
}

echo
echo "== results: $size_mb MiB random data, best of $runs (wall time, commit included)"
printf "  %-30s %9s %9s %14s %16s\n" operation seconds "MiB/s" "peak RSS MiB" "peak anon MiB"
printf "  %-30s %9s %9s %14s %16s\n" "(idle fresh backend)" - - "$(mb "${hwm[idle]}")" "$(mb "${anon[idle]}")"
row "cp + sync (baseline)" cp
row "write: lo_import" lo_import
row "write: destor.blob_import" blob_import
row "read:  lo_export" lo_export
row "read:  destor.blob_export" blob_export
row "read:  lo_export > /dev/null" lo_null
row "read:  blob_export > /dev/null" blob_null

w_lo=$(ratio "${secs[blob_import]}" "${secs[lo_import]}")
r_lo=$(ratio "${secs[blob_export]}" "${secs[lo_export]}")
w_cp=$(ratio "${secs[blob_import]}" "${secs[cp]}")
r_cp=$(ratio "${secs[blob_export]}" "${secs[cp]}")
echo
echo "== throughput ratios (> 1: destor is faster)"
printf "  %-8s destor/LO %6sx   destor/cp %6sx\n" write "$w_lo" "$w_cp"
printf "  %-8s destor/LO %6sx   destor/cp %6sx\n" read "$r_lo" "$r_cp"
printf "  %-8s destor/LO %6sx   (export to /dev/null: no output file)\n" read "$(ratio "${secs[blob_null]}" "${secs[lo_null]}")"

verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }
echo
echo "== targets"
printf "  %-58s %s\n" "destor write >= 2x large objects (${w_lo}x)" "$(verdict "$w_lo >= 2")"
printf "  %-58s %s\n" "destor read  >= 2x large objects (${r_lo}x)" "$(verdict "$r_lo >= 2")"
printf "  %-58s %s\n" "destor import peak backend memory < 256 MiB ($(mb "${hwm[blob_import]}") MiB)" \
	"$(verdict "${hwm[blob_import]} < 256 * 1024")"
printf "  %-58s %s\n" "destor export peak backend memory < 256 MiB ($(mb "${hwm[blob_export]}") MiB)" \
	"$(verdict "${hwm[blob_export]} < 256 * 1024")"

echo
echo "== storage (one blob of $bytes bytes on the providers)"
total=0
for i in 1 2 3 4 5 6; do
	b=$(du -sb "$dir/providers/p$i" | cut -f1)
	total=$((total + b))
	printf "  p%d %14d bytes\n" "$i" "$b"
done
printf "  %-16s %14d bytes = %.3fx the input (4+2 erasure coding: 1.5x)\n" "providers total" "$total" \
	"$(awk -v a="$total" -v b="$bytes" 'BEGIN { print a / b }')"
printf "  %-16s %14d bytes = %.3fx the input (one copy; WAL not counted)\n" "pg_largeobject" "$lo_stored" \
	"$(awk -v a="$lo_stored" -v b="$bytes" 'BEGIN { print a / b }')"

cat <<NOTE

== notes
  - The page cache is not dropped (that needs root); the input file and the
    stored data are read from memory, so reads measure CPU and copying, not
    the disk.  Writes include fsync: cp is followed by sync of the copy,
    lo_import by the WAL flush at commit (fsync = on), blob_import by the
    fsync of each shard file.  Exports are not fsynced, neither lo_export
    nor blob_export.
  - Writing into page cache memory the kernel has not used lately can be
    several times slower on a VM that hands freed memory back to the host
    (virtio-balloon free page reporting); first runs then look slower, and
    the best of two runs hides part of it.  The exports to /dev/null show
    the read path without the output file.
  - The input is random, hence incompressible: destor's compression gains
    nothing here and costs what trying it costs.
  - Peak RSS is VmHWM of the backend (fresh connection per statement, the
    maximum over the runs).  It counts shared memory pages the backend
    touched: lo_import/lo_export go through shared_buffers (256MB), so
    their RSS grows with it even though that memory is not theirs.  Peak
    anon is RssAnon (private memory: palloc, malloc) sampled every 50 ms
    from outside, so short spikes may be missed.
NOTE
