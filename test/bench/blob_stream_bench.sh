#!/bin/bash
# Streaming from a client: destor blob descriptors against large objects.
#
# Starts a throwaway cluster with six `file` providers and a 4+2 pool in a
# temporary folder and streams BENCH_SIZE_MB MiB (default 3072: more than
# one bytea, more than 2 GB) of incompressible data from a libpq client in
# 1 MiB calls, one transaction each, commit included:
#   write  lo_creat + lo_write            vs  destor.blob_create + blob_write + blob_close
#   read   lo_open + lo_read              vs  destor.blob_open + blob_read
# (stream_client.c: lo_* through libpq's fast path, blob_* as a prepared
# statement with a binary bytea parameter or result; reads check every
# byte).  Prints wall times, throughput, the ratios and each backend's peak
# memory (VmHWM), against the targets of issue 15: blob streaming >= 2x
# lo_write, backend peak < 256 MiB.
#
#   BENCH_SIZE_MB=512   MiB streamed each way (default 3072)
#   BENCH_USER=name     unprivileged user to run as when started by root
#   BENCH_PORT=n        port of the throwaway cluster (default 54342)
#   TMPDIR              where the temporary folder goes (needs ~3x the size)
#
# A benchmark, not a test: a missed target is printed as MISSED and the exit
# status stays 0; it fails only when something breaks (a byte read back
# differs).  Not part of make test; make bench runs it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [ -z "${BENCH_WORKER_DIR:-}" ]; then
	. "$here/common.sh"
	bench_find_postgres blob_stream_bench
	bench_positive BENCH_SIZE_MB 3072
	# the worker compiles the client (as root, it runs as BENCH_USER, which
	# must be able to read this file)
	export BENCH_STREAM_SRC="$here/stream_client.c"
	bench_hand_off blob_stream_bench
fi

. "$(dirname "$0")/common.sh"
bench_worker blob_stream_bench 54342
size_mb=${BENCH_SIZE_MB:-3072}

echo "== destor blob streaming benchmark: $size_mb MiB in 1 MiB calls, destor $BENCH_REV"
echo "   $(uname -srm), $(nproc) CPUs, $(psql --version | head -1)"

[ -r "$BENCH_STREAM_SRC" ] || fail "cannot read $BENCH_STREAM_SRC (as $(id -un))"
client=$dir/stream_client
cc -O2 -I"$(pg_config --includedir)" -o "$client" "$BENCH_STREAM_SRC" -L"$(pg_config --libdir)" -lpq ||
	fail "could not compile the client"

bench_start_cluster <<CONF
shared_buffers = 256MB
max_wal_size = 8GB
CONF

sql="CREATE EXTENSION destor;"
sql+=$(bench_file_pool_sql)
psql_q -c "$sql"

conninfo="host=$dir port=$port user=postgres dbname=postgres"
declare -A secs peak
# stream KEY MODE [ARG]: runs the client, sets secs[KEY], peak[KEY] (kB), out
stream() {
	local key=$1 line
	shift
	psql_q -c "CHECKPOINT" >/dev/null
	line=$("$client" "$conninfo" "$size_mb" "$@") || fail "the client failed: $*"
	read -r secs[$key] out peak[$key] <<< "$line"
	printf "   %-28s %8.2fs\n" "$key" "${secs[$key]}"
}

stream lo_write lo-write
lo=$out
stream blob_write blob-write
blob=$out
stream lo_read lo-read "$lo"
stream blob_read blob-read "$blob"

mbps() { awk -v s="$1" -v mb="$size_mb" 'BEGIN { printf "%.1f", mb / s }'; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }

echo
echo "== results: $size_mb MiB in 1 MiB calls, one transaction each (commit included)"
printf "  %-28s %9s %9s %14s\n" operation seconds "MiB/s" "peak RSS MiB"
for k in lo_write blob_write lo_read blob_read; do
	printf "  %-28s %9.2f %9s %14s\n" "$k" "${secs[$k]}" "$(mbps "${secs[$k]}")" "$(mib "${peak[$k]}")"
done
w=$(ratio "${secs[blob_write]}" "${secs[lo_write]}")
r=$(ratio "${secs[blob_read]}" "${secs[lo_read]}")
echo
echo "== targets"
printf "  %-62s %s\n" "blob_write streaming >= 2x lo_write (${w}x)" "$(verdict "$w >= 2")"
printf "  %-62s %s\n" "blob_write backend peak memory < 256 MiB ($(mib "${peak[blob_write]}") MiB)" \
	"$(verdict "${peak[blob_write]} < 256 * 1024")"
printf "  %-62s %s\n" "blob_read backend peak memory < 256 MiB ($(mib "${peak[blob_read]}") MiB)" \
	"$(verdict "${peak[blob_read]} < 256 * 1024")"
printf "  %-62s %s\n" "(not a target) blob_read vs lo_read: ${r}x" ""

cat <<NOTE

== notes
  - Peak RSS is VmHWM of the backend at the end of its transaction: it counts
    shared memory pages the backend touched, so large objects' figures grow
    with shared_buffers (256MB) though that memory is not theirs; destor's
    include the shared blob cache pages written through (the first 64 MiB).
  - lo_write writes every byte to pg_largeobject and to the WAL (fsync at
    commit); blob_write encrypts, erasure-codes (4+2) and writes six shard
    files with direct I/O, fsynced.  The data is random, so compression is
    tried on a few blocks only and gains nothing.
NOTE
