#!/bin/bash
# What the pool's metadata log costs writers (issue 12: "writing it must not
# slow COPY by more than 5%"): the same COPY into a destor table, and the
# same run of one-row INSERT transactions, with the log written (the
# default) and with its capture triggers disabled, in one run, alternating.
# Disabling the capture is what a pool written before 0.2.0 looked like; it
# is done here only to measure, never in use (such a pool is not
# recoverable from its providers until destor.log_snapshot()).
#
# Starts a throwaway cluster with six `file` providers and a 4+2 pool in a
# temporary folder.
#
#   BENCH_ROWS=2000000   rows per COPY
#   BENCH_TXNS=300       one-row INSERT transactions
#   BENCH_QUICK=1        one run per measurement instead of best of three
#   BENCH_USER, BENCH_PORT (default 54345), TMPDIR: as blob_bench.sh
#
# Target: COPY with the log <= 1.05x COPY without it.  A missed target is
# printed as MISSED; the exit status stays 0.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${BENCH_WORKER_DIR:-}" ]; then
	. "$here/common.sh"
	bench_find_postgres meta_log_bench
	bench_positive BENCH_ROWS 2000000
	bench_positive BENCH_TXNS 300
	bench_hand_off meta_log_bench
fi

. "$(dirname "$0")/common.sh"
bench_worker meta_log_bench 54345
rows=${BENCH_ROWS:-2000000}
txns=${BENCH_TXNS:-300}
runs=3
[ "${BENCH_QUICK:-0}" = 1 ] && runs=1

echo "== destor metadata log benchmark: COPY of $rows rows, $txns one-row transactions, best of $runs, destor $BENCH_REV"
echo "   $(uname -srm), $(nproc) CPUs, $(psql --version | head -1)"

bench_start_cluster <<CONF
shared_buffers = 256MB
max_wal_size = 4GB
CONF
psql_q -c "CREATE EXTENSION destor; $(bench_file_pool_sql)"
psql_q -c "CREATE FOREIGN TABLE t (id bigint, ts timestamptz, v float8, s text) SERVER archive;"
psql_q -c "COPY (SELECT i, timestamptz '2024-01-01' + i * interval '1 s', i * 0.5, md5(i::text)
               FROM generate_series(1, $rows) i) TO '$dir/rows.csv' (FORMAT csv)"
for ((i = 1; i <= txns; i++)); do
	echo "INSERT INTO t VALUES ($i, now(), $i, 'small write $i');"
done > "$dir/small.sql"

# the capture: row triggers on the catalog tables and the DDL event trigger
capture() {
	local how=$1 sql="" tab
	for tab in objects shards blobs segments deletions tables; do
		sql+="ALTER TABLE destor.$tab $how TRIGGER meta_capture;"
	done
	psql_q -c "$sql ALTER EVENT TRIGGER destor_meta_table_ddl $how;"
}
log_objects() { find "$dir/providers" -path '*/meta/*' -type f | wc -l; }

timed() { local t0 t1; t0=$(now); "$@" > /dev/null; t1=$(now); echo "$t1 - $t0" | bc; }
best() { printf '%s\n' "$@" | sort -g | head -1; }

declare -A copy small
for mode in on off; do copy[$mode]=""; small[$mode]=""; done
for ((r = 1; r <= runs; r++)); do
	for mode in on off; do
		[ "$mode" = on ] && capture ENABLE || capture DISABLE
		psql_q -c "TRUNCATE t; CHECKPOINT" > /dev/null
		before=$(log_objects)
		copy[$mode]+=" $(timed psql_q -c "COPY t FROM '$dir/rows.csv' (FORMAT csv)")"
		small[$mode]+=" $(timed psql_q -f "$dir/small.sql")"
		logged=$(( $(log_objects) - before ))
		if [ "$mode" = on ]; then
			[ "$logged" -gt 0 ] || fail "the log is on but nothing was logged"
		else
			[ "$logged" = 0 ] || fail "the log is off but $logged log files appeared"
		fi
	done
done
capture ENABLE
n=$(psql_q -c "SELECT count(*) FROM t")
[ "$n" = "$((rows + txns))" ] || fail "the table holds $n rows, not $((rows + txns))"

# shellcheck disable=SC2086
c_on=$(best ${copy[on]}); c_off=$(best ${copy[off]})
# shellcheck disable=SC2086
s_on=$(best ${small[on]}); s_off=$(best ${small[off]})
ratio() { echo "scale=3; $1 / $2" | bc; }
printf '   %-34s %10s %10s %8s\n' "" "log on s" "log off s" "ratio"
printf '   %-34s %10.2f %10.2f %7.3fx\n' "COPY $rows rows" "$c_on" "$c_off" "$(ratio "$c_on" "$c_off")"
printf '   %-34s %10.2f %10.2f %7.3fx\n' "$txns one-row INSERT transactions" "$s_on" "$s_off" "$(ratio "$s_on" "$s_off")"
if [ "$(echo "$c_on <= 1.05 * $c_off" | bc)" = 1 ]; then
	echo "   COPY target (log <= 1.05x): met"
else
	echo "   COPY target (log <= 1.05x): MISSED"
fi
echo "== notes"
echo "  - One log object per transaction and pool: a COPY pays for one, whatever its size; a"
echo "    one-row transaction pays for one as well (its upload to every provider and the commit"
echo "    markers), which is the small-write cost the second line shows."
