#!/bin/bash
# destor tables against heap tables on time-series data.
#
# Starts a throwaway cluster with six `file` providers and a 4+2 pool in a
# temporary folder, writes BENCH_ROWS rows of sensor readings (default
# 10,000,000: a year of timestamps in order) into one text file, loads that
# file with COPY into a heap table and into a destor foreign table, and
# compares ingest, a full-scan aggregate, a one-day query, the bytes stored
# and the backend's peak memory during COPY.  Every query's result must be
# the same on both tables.
#
#   BENCH_ROWS=1000000  rows to load (default 10000000)
#   BENCH_QUICK=1       one run per measurement instead of best of two
#   BENCH_PERF=0|1|auto profile destor with perf: never, always, or only the
#                       stages whose target was missed (default auto)
#   BENCH_SHARED_BUFFERS_MB=n  shared_buffers of the cluster (default: room
#                       for the whole heap table, so its scans run warm)
#   BENCH_USER=name     unprivileged user to run as when started by root
#                       (default destor_bench, created if missing)
#   BENCH_PORT=n        port of the throwaway cluster (default 54339)
#   TMPDIR              where the temporary folder goes (needs about
#                       300 bytes a row: input file, heap, WAL, providers)
#
# It is a benchmark, not a test: a missed target is printed as MISSED and the
# exit status stays 0.  It fails only when something breaks, e.g. a query
# whose result on the destor table differs from the heap table's.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# ---------------------------------------------------------------------------
# Outer part: find PostgreSQL, make the temporary folder, and - as root -
# hand the run to an unprivileged user, because initdb refuses root.
# ---------------------------------------------------------------------------
if [ -z "${BENCH_WORKER_DIR:-}" ]; then
	. "$here/common.sh"
	bench_find_postgres table_bench

	bench_positive BENCH_ROWS 10000000
	bench_positive BENCH_SHARED_BUFFERS_MB 1
	bench_perf_mode

	bench_hand_off table_bench
fi

# ---------------------------------------------------------------------------
# Worker: everything below runs as the cluster's owner.
# ---------------------------------------------------------------------------
. "$(dirname "$0")/common.sh"
bench_worker table_bench 54339
rows=${BENCH_ROWS:-10000000}
runs=2
[ "${BENCH_QUICK:-0}" = 1 ] && runs=1
perf_mode=${BENCH_PERF:-auto}
# room for the heap table (about 70 bytes a row) and some more: the heap's
# queries then read shared_buffers only
sb_mb=${BENCH_SHARED_BUFFERS_MB:-$((rows / 10000 + 256))}

in=$dir/input.txt

# the library the server loads; a reinstall during the run is reported
lib=$("${PG_CONFIG:-pg_config}" --pkglibdir)/destor.so
lib_sum=$(md5sum < "$lib")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== destor table benchmark: $rows rows, best of $runs, destor $BENCH_REV"
echo "   $(uname -srm), $(nproc) CPUs, $(psql --version | head -1), shared_buffers ${sb_mb}MB"
echo "   load average at start: $load_start"

# --- cluster, providers, pool, tables -------------------------------------------
bench_start_cluster <<CONF
shared_buffers = ${sb_mb}MB
timezone = 'UTC'
max_wal_size = 4GB
CONF

sql="CREATE EXTENSION destor; CREATE EXTENSION pg_prewarm;"
sql+=$(bench_file_pool_sql)
cols="ts timestamptz, device_id int, temperature float8, humidity float8, status text, note text"
# destor's defaults, spelled out so the output says what was measured
topts="segment_rows '1000000', row_group_rows '10000', compression_level '3'"
sql+="CREATE TABLE heap_ts ($cols);
      CREATE FOREIGN TABLE destor_ts ($cols) SERVER archive OPTIONS ($topts);"
# EXPLAIN (ANALYZE) as JSON, for the figures of a scan
sql+="CREATE FUNCTION explain_json(q text) RETURNS jsonb LANGUAGE plpgsql AS \$\$
      DECLARE r json;
      BEGIN EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ' || q INTO r; RETURN r::jsonb; END \$\$;"
psql_q -c "$sql"
echo "   destor table: 4+2 pool of six file providers, $topts"

# --- the data ---------------------------------------------------------------------
# A year (2024, 366 days) of readings in time order, round robin over 200
# devices: temperature with two decimals (a daily and a yearly cycle plus
# noise), humidity with one decimal, a status of four values (mostly 'ok'),
# and a free-text note on about 3% of the rows.  Seeded, so every run loads
# the same rows.
echo -n "   writing the input file ($rows rows) ..."
t0=$(now)
psql_q <<SQL
SELECT setseed(0.5) \g /dev/null
COPY (
  SELECT ts, device_id, temperature, humidity,
         CASE WHEN r3 < 0.95 THEN 'ok' WHEN r3 < 0.99 THEN 'warning'
              WHEN r3 < 0.998 THEN 'error' ELSE 'offline' END AS status,
         CASE WHEN r3 >= 0.99 THEN 'device ' || device_id || ': ' ||
                   (ARRAY['sensor not responding', 'battery low', 'restarted after power loss',
                          'reading out of range', 'firmware update failed'])[1 + (i % 5)]
              WHEN r3 < 0.02 THEN 'maintenance round ' || (i / 100000) || ', checked by tech ' || (1 + i % 17)
         END AS note
    FROM (SELECT i,
                 '2024-01-01 00:00:00+00'::timestamptz
                   + (i * (31622400.0 / $rows)) * interval '1 second' AS ts,
                 1 + i % 200 AS device_id,
                 round((12 + 10 * sin(2 * pi() * (i::float8 / $rows - 0.3))
                          + 4 * sin(2 * pi() * (i * 366.0 / $rows - 0.35))
                          + 3 * random()) * 100) / 100 AS temperature,
                 round((45 + 35 * random()) * 10) / 10 AS humidity,
                 random() AS r3
            FROM generate_series(0, $rows - 1) i) g
) TO $(lit "$in");
SQL
t1=$(now)
in_bytes=$(stat -c %s "$in")
awk -v a="$t0" -v b="$t1" -v s="$in_bytes" 'BEGIN { printf " %.1fs, %.1f MiB\n", b - a, s / 1048576 }'

# --- measuring ----------------------------------------------------------------

# measure SQL: runs one statement in a fresh connection (so VmHWM covers only
# this statement) and sets
#   m_secs    wall time of the statement, commit included
#   m_result  rows it processed (psql's ROW_COUNT)
#   m_hwm     VmHWM of the backend after it, in kB (peak RSS, shared memory
#             pages the backend touched included)
#   m_anon    the peak of RssAnon (private memory) sampled from outside every
#             50 ms while it ran, in kB
#   m_user, m_sys  CPU seconds the backend (its helper threads included)
#             spent in user space and in the kernel while it ran
# utime and stime of the backend, in clock ticks: fields 14 and 15 of
# /proc/self/stat, counted after the ")" that closes the command name
cpu_sql="(SELECT string_to_array(substring(pg_read_file('/proc/self/stat') FROM '\\) (.*)\$'), ' ') AS f) c"
clk_tck=$(getconf CLK_TCK)
measure() {
	local stmt=$1 pidfile=$dir/backend.pid resfile=$dir/measure.out
	local psql_pid bpid="" k v _ rc=0
	rm -f "$pidfile" "$resfile"
	psql_q > "$resfile" <<SQL &
SELECT pg_backend_pid() \g '$pidfile'
-- give the sampler time to find the backend
SELECT pg_sleep(0.2) \g /dev/null
SELECT clock_timestamp() AS t0, f[12] AS u0, f[13] AS s0 FROM $cpu_sql \gset
$stmt;
\set result :ROW_COUNT
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) || '|' || :'result' || '|' ||
       (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1] || '|' ||
       round((f[12]::bigint - :u0) / $clk_tck::numeric, 2) || '|' || round((f[13]::bigint - :s0) / $clk_tck::numeric, 2)
  FROM $cpu_sql;
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
	IFS='|' read -r m_secs m_result m_hwm m_user m_sys < "$resfile"
}

# time_query SETUP QUERY SAME: runs QUERY $runs times in one connection
# (after SETUP, e.g. a SET), prints each wall time and sets
#   q_secs    the fastest
#   q_result  the result row as text; every run must return the same as
#             the function SAME (same_exact or same_close) tells
time_query() {
	local setup=$1 query=$2 same=$3 script="" secs res
	q_secs=""; q_result=""
	script+="$setup"$'\n'
	for ((r = 1; r <= runs; r++)); do
		script+="SELECT clock_timestamp() AS t0 \\gset
SELECT q::text AS result FROM ($query) q \\gset
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) || '|' || :'result';
"
	done
	while IFS='|' read -r secs res; do
		[ "$secs" != ERROR ] || fail "query failed: $query"
		printf " %7.3fs" "$secs"
		if [ -z "$q_secs" ] || awk -v a="$secs" -v b="$q_secs" 'BEGIN { exit !(a < b) }'; then
			q_secs=$secs
		fi
		if [ -n "$q_result" ] && ! "$same" "$res" "$q_result"; then
			fail "two runs of the same query returned different results: $q_result and $res: $query"
		fi
		q_result=$res
	done < <(psql_q <<< "$script" || echo "ERROR|")
	[ -n "$q_result" ] || fail "query returned nothing: $query"
	return 0
}

# checkpoint between measurements: no run pays for the dirty buffers of the one
# before it
settle() { psql_q -c "CHECKPOINT" >/dev/null; }

# best SECS: keeps the fastest time of the runs (best_secs), and the largest
# memory figures over all runs (best_hwm, best_anon), and the CPU seconds of
# the fastest run (best_cpu: "user sys")
best_reset() { best_secs=""; best_hwm=0; best_anon=0; best_cpu="- -"; }
best_add() { # secs hwm anon user sys
	if [ -z "$best_secs" ] || awk -v a="$1" -v b="$best_secs" 'BEGIN { exit !(a < b) }'; then
		best_secs=$1
		best_cpu="${4:--} ${5:--}"
	fi
	printf " %7.2fs" "$1"
	[ "${2:-0}" -gt "$best_hwm" ] && best_hwm=$2
	[ "${3:-0}" -gt "$best_anon" ] && best_anon=$3
	return 0
}
# same results: exactly, or - for a parallel plan, whose sums add up in
# another order - numbers equal to 12 significant digits
same_exact() { [ "$1" = "$2" ]; }
same_close() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		gsub(/[()]/, "", a); gsub(/[()]/, "", b)
		n = split(a, x, ","); if (n != split(b, y, ",")) exit 1
		num = "^-?[0-9]+(\\.[0-9]+)?(e[-+]?[0-9]+)?$"
		for (i = 1; i <= n; i++) {
			if (x[i] == y[i]) continue
			if (x[i] !~ num || y[i] !~ num) exit 1
			d = x[i] - y[i]; if (d < 0) d = -d
			s = x[i] < 0 ? -x[i] : x[i]
			if (d > 1e-12 * s) exit 1
		}
	}'
}
declare -A secs hwm anon cpu result

# an idle fresh backend, to read the memory figures against
measure "SELECT 1"
hwm[idle]=$m_hwm; anon[idle]=$m_anon

# --- COPY FROM ------------------------------------------------------------------
copy_runs() { # key table
	printf "   %-34s" "COPY FROM into $2"
	best_reset
	for ((r = 1; r <= runs; r++)); do
		# each run starts from an empty table
		if [ "$r" -gt 1 ]; then psql_q -c "TRUNCATE $2" >/dev/null; fi
		settle
		measure "COPY $2 FROM $(lit "$in")"
		[ "$m_result" = "$rows" ] || fail "COPY into $2 loaded $m_result rows, expected $rows"
		best_add "$m_secs" "$m_hwm" "$m_anon" "$m_user" "$m_sys"
	done
	echo
	secs[$1]=$best_secs; hwm[$1]=$best_hwm; anon[$1]=$best_anon; cpu[$1]=$best_cpu
}
copy_runs copy_heap heap_ts
copy_runs copy_destor destor_ts
settle

# every row arrived, the same in both (an order-independent hash of each
# row's text; not timed)
echo -n "   checking the tables hold the same rows ..."
content_heap=$(psql_q -c "SELECT count(*) || '/' || sum(hashtext(t::text)) FROM heap_ts t")
content_destor=$(psql_q -c "SELECT count(*) || '/' || sum(hashtext(t::text)) FROM destor_ts t")
[ "$content_heap" = "$content_destor" ] ||
	fail "the tables differ after COPY: heap count/hash $content_heap, destor $content_destor"
echo " yes ($content_heap)"

# both tables as loaded tables would be: analyzed (and the heap vacuumed: hint
# bits, visibility map), and the heap read into shared_buffers
psql_q -c "VACUUM (ANALYZE) heap_ts" -c "CHECKPOINT" >/dev/null
if psql_q -c "ANALYZE destor_ts" >/dev/null 2>"$dir/analyze.err"; then
	destor_analyzed=yes
else
	destor_analyzed="no ($(head -1 "$dir/analyze.err"))"
fi
heap_blocks=$(psql_q -c "SELECT pg_relation_size('heap_ts') / current_setting('block_size')::int")
prewarmed=$(psql_q -c "SELECT pg_prewarm('heap_ts')")
sb_blocks=$(psql_q -c "SELECT setting FROM pg_settings WHERE name = 'shared_buffers'")
echo "   heap_ts: $heap_blocks blocks, $prewarmed prewarmed into shared_buffers ($sb_blocks buffers)"
echo "   ANALYZE destor_ts: $destor_analyzed"

# --- queries --------------------------------------------------------------------
q_scan="SELECT avg(temperature) AS avg_temperature, max(humidity) AS max_humidity FROM %s"
day_lo="2024-06-15 00:00:00+00"
day_hi="2024-06-16 00:00:00+00"
q_day="SELECT count(*) AS n, avg(temperature) AS avg_temperature
         FROM %s WHERE ts >= '$day_lo' AND ts < '$day_hi'"
serial="SET max_parallel_workers_per_gather = 0; SET synchronize_seqscans = off;"

# Each query on each table twice: with PostgreSQL's default plan (parallel
# workers if the planner wants them) and in one backend.  The answers must
# agree: in one backend both tables are read in the order the rows were
# loaded, so even float sums agree to the last bit; a parallel plan adds up
# in another order, so there numbers must agree to 12 significant digits.
query_runs() { # key label query-format
	local q t
	for t in heap destor; do
		q=$(printf "$3" "${t}_ts")
		printf "   %-34s" "$2: $t"
		time_query "" "$q" same_close
		echo " (default plan)"
		secs[$1_$t]=$q_secs; result[$1_$t]=$q_result
		printf "   %-34s" "$2: $t"
		time_query "$serial" "$q" same_exact
		echo " (no parallel workers)"
		secs[$1_${t}1]=$q_secs; result[$1_${t}1]=$q_result
		same_close "${result[$1_$t]}" "${result[$1_${t}1]}" ||
			fail "$2: $t returned ${result[$1_$t]} with its default plan, ${result[$1_${t}1]} without parallel workers"
	done
	same_exact "${result[$1_heap1]}" "${result[$1_destor1]}" ||
		fail "$2: destor returned ${result[$1_destor1]}, heap ${result[$1_heap1]} (no parallel workers)"
	same_close "${result[$1_heap]}" "${result[$1_destor]}" ||
		fail "$2: destor returned ${result[$1_destor]}, heap ${result[$1_heap]} (default plans)"
}
query_runs scan "avg+max, full scan" "$q_scan"
query_runs day "one day of the year" "$q_day"

# the scans' own figures, in one backend: a parallel worker's reads would not
# be in the leader's EXPLAIN figures
explain_fields() { # query-format table -> exec_ms|...scan fields...
	local q
	q=$(printf "$1" "$2")
	psql_q -c "$serial" -c "WITH e AS (SELECT explain_json($(lit "$q")) AS j),
	  s AS (SELECT j, jsonb_path_query_first(j, 'strict \$.** ? (exists (@.\"Bytes Fetched\"))') AS n FROM e)
	SELECT array_to_string(ARRAY[round((j->0->>'Execution Time')::numeric, 1)::text,
	       j->0->'Plan'->>'Shared Hit Blocks', j->0->'Plan'->>'Shared Read Blocks',
	       n->>'Segments', n->>'Segments Pruned', n->>'Row Groups', n->>'Row Groups Pruned',
	       n->>'Row Groups Read', n->>'Provider Requests', n->>'Bytes Fetched', n->>'Columns Fetched'], '|', '')
	  FROM s"
}
# the plan of a query with default settings, in short: "Parallel Foreign
# Scan, 2 workers" or "Seq Scan"
plan_of() { # query-format table
	local q
	q=$(printf "$1" "$2")
	psql_q -c "WITH e AS (SELECT explain_json($(lit "$q")) AS j)
	SELECT concat_ws(', ', (SELECT string_agg(DISTINCT CASE WHEN (n->>'Parallel Aware')::bool THEN 'Parallel ' ELSE '' END
	                                          || (n->>'Node Type'), ', ')
	                          FROM jsonb_path_query(j, 'strict \$.** ? (exists (@.\"Relation Name\"))') n),
	                  (SELECT (n->>'Workers Launched') || ' workers'
	                     FROM jsonb_path_query(j, 'strict \$.** ? (exists (@.\"Workers Launched\"))') n LIMIT 1))
	  FROM e"
}
declare -A ex plan
for k in scan day; do
	f=q_$k
	for t in heap destor; do
		ex[${k}_$t]=$(explain_fields "${!f}" "${t}_ts")
		plan[${k}_$t]=$(plan_of "${!f}" "${t}_ts")
	done
done

# --- storage ----------------------------------------------------------------------
IFS='|' read -r stored stored_data nobjects nshards dir_bytes < <(psql_q -c "
  SELECT sum(sh.size) || '|' || coalesce(sum(sh.size) FILTER (WHERE sh.shard_index < o.data_shards), 0) || '|' ||
         count(DISTINCT o.object_id) || '|' || count(*) || '|' ||
         (SELECT sum(pg_column_size(s2.directory)) FROM destor.segments s2 JOIN destor.tables t2 USING (table_id)
           WHERE t2.relid = 'destor_ts'::regclass)
    FROM destor.segments s JOIN destor.tables t USING (table_id)
    JOIN destor.objects o USING (object_id) JOIN destor.shards sh USING (object_id)
   WHERE t.relid = 'destor_ts'::regclass")
heap_stored=$(psql_q -c "SELECT pg_total_relation_size('heap_ts')")
du_total=$(du -sb "$dir/providers" | cut -f1)

# --- report ---------------------------------------------------------------------
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
krows() { awk -v s="$1" -v n="$rows" 'BEGIN { printf "%.0f", n / s / 1000 }'; }
# speed ratio: how many times faster the first time is than the second
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
field() { echo "$1" | cut -d'|' -f"$2"; }

echo
echo "== results: $rows rows, best of $runs (wall time; COPY with its commit)"
printf "  %-54s %8s %8s %13s %9s %9s\n" operation seconds "krows/s" "CPU user+sys" "RSS MiB" "anon MiB"
printf "  %-54s %8s %8s %13s %9s %9s\n" "(idle fresh backend)" - - - "$(mb "${hwm[idle]}")" "$(mb "${anon[idle]}")"
for k in copy_heap copy_destor; do
	read -r u sy <<< "${cpu[$k]}"
	printf "  %-54s %8.2f %8s %13s %9s %9s\n" "COPY FROM: ${k#copy_}" "${secs[$k]}" "$(krows "${secs[$k]}")" \
		"$u+$sy" "$(mb "${hwm[$k]}")" "$(mb "${anon[$k]}")"
done
for k in scan day; do
	label="avg(temperature), max(humidity)"; [ "$k" = day ] && label="one day: count(*), avg(temperature)"
	for t in heap "heap1|heap, no parallel" destor "destor1|destor, no parallel"; do
		kr=-; [ "$k" = scan ] && kr=$(krows "${secs[${k}_${t%%|*}]}")
		printf "  %-54s %8.3f %8s\n" "$label: ${t##*|}" "${secs[${k}_${t%%|*}]}" "$kr"
	done
done

echo
echo "== results of the queries (identical on both tables)"
printf "  %-14s %s\n" "full scan" "${result[scan_destor]}"
printf "  %-14s %s   (ts in [$day_lo, $day_hi))\n" "one day" "${result[day_destor]}"
printf "  %-14s %s   (count/sum of hashtext(row::text))\n" "every row" "$content_destor"

echo
echo "== destor scans (EXPLAIN ANALYZE, no parallel workers)"
printf "  %-10s %9s %9s %11s %9s %9s %9s %14s %9s\n" query "exec ms" segments "seg pruned" "row groups" "rg pruned" \
	"rg read" "bytes fetched" requests
for k in scan day; do
	e=${ex[${k}_destor]}
	printf "  %-10s %9s %9s %11s %9s %9s %9s %14s %9s\n" "$k" "$(field "$e" 1)" "$(field "$e" 4)" "$(field "$e" 5)" \
		"$(field "$e" 6)" "$(field "$e" 7)" "$(field "$e" 8)" "$(field "$e" 10)" "$(field "$e" 9)"
done
printf "  columns fetched: full scan %s; one day %s\n" "$(field "${ex[scan_destor]}" 11)" "$(field "${ex[day_destor]}" 11)"
for k in scan day; do
	printf "  default plans, %-9s heap: %s; destor: %s\n" "$k:" "${plan[${k}_heap]}" "${plan[${k}_destor]}"
done
printf "  heap under EXPLAIN ANALYZE: full scan %s ms, one day %s ms; shared buffers hit %s, read %s (warm)\n" \
	"$(field "${ex[scan_heap]}" 1)" "$(field "${ex[day_heap]}" 1)" "$(field "${ex[scan_heap]}" 2)" \
	"$(field "${ex[scan_heap]}" 3)"

echo
echo "== storage"
printf "  %-44s %14d bytes  %8s MiB\n" "heap: pg_total_relation_size" "$heap_stored" "$(mib "$heap_stored")"
printf "  %-44s %14d bytes  %8s MiB\n" "destor: shards on providers, parity included" "$stored" "$(mib "$stored")"
printf "  %-44s %14d bytes  %8s MiB\n" "  of which data shards" "$stored_data" "$(mib "$stored_data")"
printf "  %-44s %14d bytes  %8s MiB\n" "  provider folders (du, with file overhead)" "$du_total" "$(mib "$du_total")"
printf "  %-44s %14d bytes  %8s MiB\n" "destor: segment directories in the catalog" "$dir_bytes" "$(mib "$dir_bytes")"
printf "  %-44s %14d bytes  %8s MiB\n" "input text file" "$in_bytes" "$(mib "$in_bytes")"
printf "  destor: %d segments (objects), %d shard files\n" "$nobjects" "$nshards"

r_copy=$(ratio "${secs[copy_destor]}" "${secs[copy_heap]}")
r_scan=$(ratio "${secs[scan_destor]}" "${secs[scan_heap]}")
r_scan1=$(ratio "${secs[scan_destor1]}" "${secs[scan_heap1]}")
r_day=$(ratio "${secs[day_destor]}" "${secs[day_heap]}")
r_day1=$(ratio "${secs[day_destor1]}" "${secs[day_heap1]}")
day_fetched=$(field "${ex[day_destor]}" 10)
p_day=$(awk -v a="$day_fetched" -v b="$stored" 'BEGIN { printf "%.3f", 100 * a / b }')
r_store=$(awk -v a="$stored" -v b="$heap_stored" 'BEGIN { printf "%.3f", a / b }')

verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }
v_copy=$(verdict "$r_copy >= 1")
v_scan=$(verdict "$r_scan >= 1")
v_day=$(verdict "$r_day >= 10")
v_bytes=$(verdict "$p_day < 2")
v_store=$(verdict "$r_store <= 0.5")
echo
echo "== ratios (> 1: destor is faster) and targets"
printf "  %-66s %s\n" "COPY FROM throughput destor/heap >= 1.0x (${r_copy}x)" "$v_copy"
printf "  %-66s %s\n" "full-scan aggregate destor/heap >= 1.0x (${r_scan}x)" "$v_scan"
printf "  %-66s %s\n" "one-day query destor/heap >= 10x (${r_day}x)" "$v_day"
printf "  %-66s %s\n" "one-day query fetches < 2% of destor's stored bytes (${p_day}%)" "$v_bytes"
printf "  %-66s %s\n" "stored bytes destor/heap <= 0.5x (${r_store}x)" "$v_store"
printf "  %-66s %s\n" "(both in one backend: full scan ${r_scan1}x, one day ${r_day1}x)" "(no target)"
printf "  %-66s %s\n" "peak backend memory in COPY: heap $(mb "${hwm[copy_heap]}") MiB, destor $(mb "${hwm[copy_destor]}") MiB" "(no target)"

# --- where destor's time goes -------------------------------------------------------
# perf record of the backend (and the codec's helper threads) in one more run
# of a statement; user space only when perf_event_paranoid is 2.
perf_ok() {
	command -v perf >/dev/null 2>&1 && perf record -q -o "$dir/perf.check" -- true >/dev/null 2>&1
}
# which stage a shared object stands for
stage_of() {
	case $1 in
		*libzstd*) echo "zstd (compress/decompress)" ;;
		*libcrypto*) echo "OpenSSL (encrypt/decrypt, checksums)" ;;
		*libisal*) echo "ISA-L (erasure coding)" ;;
		destor.so) echo "destor (value encoding, segments)" ;;
		postgres) echo "PostgreSQL (input functions, executor, aggregates)" ;;
		libc.so*) echo "libc (memcpy, malloc, string)" ;;
		llvmjit*|*LLVM*) echo "JIT" ;;
		'[kernel.kallsyms]') echo "kernel" ;;
		*) echo "other ($1)" ;;
	esac
}
profile() { # label setup statement
	local label=$1 setup=$2 stmt=$3 pidfile=$dir/profile.pid data=$dir/perf.$1.data psql_pid perf_pid bpid rc=0
	rm -f "$pidfile"
	psql_q > /dev/null <<SQL &
SELECT pg_backend_pid() \g '$pidfile'
SELECT pg_sleep(1) \g /dev/null
$setup
$stmt;
SQL
	psql_pid=$!
	while [ ! -s "$pidfile" ] && kill -0 "$psql_pid" 2>/dev/null; do sleep 0.05; done
	bpid=$(< "$pidfile")
	# the build-id cache goes into the temporary folder: symbols resolve even
	# if destor.so is reinstalled meanwhile
	HOME=$dir perf record -q -F 1999 -g -o "$data" -p "$bpid" >/dev/null 2>&1 &
	perf_pid=$!
	wait "$psql_pid" || rc=$?
	kill -INT "$perf_pid" 2>/dev/null || true
	wait "$perf_pid" 2>/dev/null || true
	[ "$rc" = 0 ] || fail "statement failed under perf: $stmt"
	echo
	echo "  -- $label: time by stage (self time, by shared object)"
	HOME=$dir perf report -i "$data" --no-children -g none --sort dso --stdio 2>/dev/null |
		awk 'n < 12 && /^ *[0-9.]+%/ { print $1 "\t" $2; n++ }' |
		while IFS=$'\t' read -r pct so; do printf "  %8s  %s\n" "$pct" "$(stage_of "$so")"; done
	echo "  -- $label: top functions (self time)"
	HOME=$dir perf report -i "$data" --no-children -g none --sort dso,sym --stdio 2>/dev/null |
		awk 'n < 15 && /^ *[0-9.]+%/ { pct = $1; so = $2; $1 = $2 = $3 = ""; sub(/^ +/, "")
			printf "  %8s  %-22s %s\n", pct, so, $0; n++ }'
}

want_perf() { # verdict
	[ "$perf_mode" = 1 ] || { [ "$perf_mode" = auto ] && [ "$1" = MISSED ]; }
}
if want_perf "$v_copy" || want_perf "$v_scan" || want_perf "$v_day"; then
	echo
	if perf_ok; then
		echo "== profiles of destor (perf, one more run each; user space only unless perf_event_paranoid < 2)"
		if want_perf "$v_copy"; then
			# the heap's, to tell what destor adds
			for t in heap destor; do
				psql_q -c "TRUNCATE ${t}_ts" >/dev/null
				settle
				profile "COPY FROM into $t" "" "COPY ${t}_ts FROM $(lit "$in")"
			done
		fi
		if want_perf "$v_scan"; then
			profile "full-scan aggregate on destor, no parallel workers" "$serial" "$(printf "$q_scan" destor_ts)"
		fi
		if want_perf "$v_day"; then
			profile "one-day query on destor, no parallel workers" "$serial" "$(printf "$q_day" destor_ts)"
		fi
	else
		echo "== no profile: perf is missing or may not profile this user's processes"
	fi
fi

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "== machine: load average $load_start at start, $load_end at the end ($(nproc) CPUs)"
if awk -v a="${load_start%% *}" -v b="${load_end%% *}" -v n="$(nproc)" 'BEGIN { exit !(a > n / 2 || b > n / 2) }'; then
	echo "   WARNING: other work was running; the times are noisy (CPU seconds less so)"
fi
if [ "$(md5sum < "$lib")" != "$lib_sum" ]; then
	echo "   WARNING: $lib was reinstalled during the run; the server kept the one it"
	echo "   loaded at start, and perf may not name destor's functions"
fi

cat <<NOTE

== notes
  - Same input for both: one text-format COPY file of $rows rows (a year of
    readings in time order), read from the page cache.  COPY into the heap
    is WAL-logged and its commit waits for the WAL flush (fsync = on), but
    its data pages are written later, by checkpoints (one runs between
    measurements, not timed); COPY into destor fsyncs every shard file
    before it commits.
  - The heap was VACUUMed and ANALYZEd after loading and pg_prewarm read it
    into shared_buffers, so its queries run warm (see "shared buffers hit /
    read" above).  ANALYZE destor_ts: $destor_analyzed.  destor's shard files
    are read from the page cache (just written; the cache is not dropped).
  - Queries run with PostgreSQL's default plan (parallel workers when the
    planner picks them; the plans are listed above) and again in one
    backend (max_parallel_workers_per_gather = 0).  The targets compare the
    default plans.  Neither table has an index.
  - Query times are the best of $runs runs in one connection; COPY times are
    fresh connections, best of $runs, with the table emptied before each.
  - Stored bytes for destor are what the providers hold (data and parity
    shards, sum of destor.shards.size); the segment directories kept in the
    catalog are listed apart.  The heap figure has no index and no WAL.
  - RSS is the peak: VmHWM of the backend (fresh connection per COPY,
    maximum over the runs), shared memory pages it touched included; anon
    is the peak of RssAnon (private memory) sampled every 50 ms from
    outside.  CPU is the backend's user and kernel seconds in the fastest
    run (destor's codec threads included; the WAL writer and checkpointer,
    which work for the heap, are not).
NOTE
