#!/bin/bash
# destor's shared-memory cache of decrypted pages against PostgreSQL's own
# buffers: warm reads of a destor table and of a blob, cold and warm.
#
# Starts a throwaway cluster (destor preloaded, destor.cache_size large
# enough for the data, shared_buffers large enough for the heap copies) with
# six `file` providers and a 4+2 pool in a temporary folder, and measures in
# one run:
#   1. a full-scan aggregate over all columns of BENCH_ROWS rows (default
#      3,000,000) in a destor foreign table, cold (right after
#      destor.cache_reset()) and warm (the second and third run), with the
#      default plan and with max_parallel_workers_per_gather = 0, against the
#      same rows in a heap table read into shared_buffers by pg_prewarm;
#   2. reading a BENCH_BLOB_MB MiB random blob (default 64) as ranges of
#      BENCH_RANGE_KB KiB (default 1024) with destor.blob_read() in one SQL
#      statement, cold and warm, against lo_get() of a large object with the
#      same bytes, pg_largeobject read into shared_buffers by pg_prewarm;
#   3. the cold/warm ratio of both.
# The provider requests (destor.provider_status) and the cache's counters
# (destor.cache_stats) are read before and after every run: a warm run
# should send no request at all.
#
#   BENCH_ROWS=1000000  rows of the table (default 3000000)
#   BENCH_BLOB_MB=n     size of the blob and of the large object in MiB
#                       (default 64)
#   BENCH_RANGE_KB=n    bytes per blob_read()/lo_get() call in KiB (default
#                       1024; below 4096, since reads of 64 blocks (4 MiB) or
#                       more are bulk reads, which do not fill the cache; at
#                       most 3968 if not a multiple of the 64 KiB block)
#   BENCH_CACHE_MB=n    destor.cache_size (default 1024); "default" leaves it
#                       unset: destor's own default (-1, sized like
#                       shared_buffers)
#   BENCH_QUICK=1       one warm run instead of two
#   BENCH_PERF=0|1|auto profile the warm destor reads with perf: never,
#                       always, or only those whose target was missed
#                       (default auto)
#   BENCH_SHARED_BUFFERS_MB=n  shared_buffers of the cluster (default: room
#                       for the heap table and the large object)
#   BENCH_USER=name     unprivileged user to run as when started by root
#                       (default destor_bench, created if missing)
#   BENCH_PORT=n        port of the throwaway cluster (default 54340)
#   TMPDIR              where the temporary folder goes (needs about 150
#                       bytes a row plus 4x the blob: heap, WAL, providers)
#
# It is a benchmark, not a test: a missed target is printed as MISSED and the
# exit status stays 0.  It fails only when something breaks, e.g. a scan or
# a range read whose result differs between destor and PostgreSQL, or
# between a cold and a warm run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# ---------------------------------------------------------------------------
# Outer part: find PostgreSQL, make the temporary folder, and - as root -
# hand the run to an unprivileged user, because initdb refuses root.
# ---------------------------------------------------------------------------
if [ -z "${BENCH_WORKER_DIR:-}" ]; then
	. "$here/common.sh"
	bench_find_postgres cache_bench

	bench_positive BENCH_ROWS 3000000
	bench_positive BENCH_BLOB_MB 64
	bench_positive BENCH_RANGE_KB 1024
	[ "${BENCH_CACHE_MB:-}" = default ] || bench_positive BENCH_CACHE_MB 1024
	bench_positive BENCH_SHARED_BUFFERS_MB 1
	bench_positive BENCH_PORT 54340
	# reads of 64 blocks (4 MiB) or more do not fill the cache: a range must
	# span fewer, wherever it starts
	if [ "${BENCH_RANGE_KB:-1024}" -ge 4096 ] ||
		{ [ $((${BENCH_RANGE_KB:-1024} % 64)) != 0 ] && [ "${BENCH_RANGE_KB:-1024}" -gt 3968 ]; }; then
		echo "cache_bench: BENCH_RANGE_KB must be below 4096 if a multiple of 64, else at most 3968" \
			"(reads of 64 blocks of 64 KiB or more do not fill the cache)" >&2
		exit 1
	fi
	bench_perf_mode

	bench_hand_off cache_bench
fi

# ---------------------------------------------------------------------------
# Worker: everything below runs as the cluster's owner.
# ---------------------------------------------------------------------------
. "$(dirname "$0")/common.sh"
bench_worker cache_bench 54340
rows=${BENCH_ROWS:-3000000}
blob_mb=${BENCH_BLOB_MB:-64}
range_kb=${BENCH_RANGE_KB:-1024}
cache_mb=${BENCH_CACHE_MB:-1024}
warm_runs=2
[ "${BENCH_QUICK:-0}" = 1 ] && warm_runs=1
perf_mode=${BENCH_PERF:-auto}
# room for the heap table (about 80 bytes a row), the large object (about
# 1.4x its bytes with its index) and some more: their reads then hit
# shared_buffers only
sb_mb=${BENCH_SHARED_BUFFERS_MB:-$((rows / 10000 + blob_mb * 2 + 256))}
blob_bytes=$((blob_mb * 1048576))
range_bytes=$((range_kb * 1024))
nranges=$(((blob_bytes + range_bytes - 1) / range_bytes))
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# the library the server loads; a reinstall during the run is reported
lib=$("${PG_CONFIG:-pg_config}" --pkglibdir)/destor.so
lib_sum=$(md5sum < "$lib")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== destor cache benchmark: $rows rows, a $blob_mb MiB blob in $range_kb KiB ranges, destor $BENCH_REV"
echo "   $(uname -srm), $(nproc) CPUs, $(psql --version | head -1)"
echo "   destor.cache_size $([ "$cache_mb" = default ] && echo "unset (destor's default)" || echo "${cache_mb}MB"), shared_buffers ${sb_mb}MB; cold: 1 run after destor.cache_reset(), warm: $warm_runs more"
echo "   load average at start: $load_start"

# --- cluster, providers, pool, tables -------------------------------------------
bench_start_cluster <<CONF
shared_buffers = ${sb_mb}MB
timezone = 'UTC'
max_wal_size = 4GB
$([ "$cache_mb" = default ] || echo "destor.cache_size = '${cache_mb}MB'")
CONF

cache_bytes=$(psql_q -c "CREATE EXTENSION destor; SELECT size_bytes FROM destor.cache_stats")
[ "$cache_bytes" -gt 0 ] || fail "destor.cache_stats reports no cache (size_bytes $cache_bytes)"

sql="CREATE EXTENSION pg_prewarm;"
sql+=$(bench_file_pool_sql)
cols="id bigint, qty int, amount numeric(12,2), ratio float8, label text"
# destor's defaults, spelled out so the output says what was measured
topts="segment_rows '1000000', row_group_rows '10000', compression_level '3'"
sql+="CREATE TABLE heap_t ($cols);
      CREATE FOREIGN TABLE destor_t ($cols) SERVER archive OPTIONS ($topts);"
# a plan in short: its parallel workers, its cost and whether it is JIT-compiled
sql+="CREATE FUNCTION plan_summary(q text) RETURNS text LANGUAGE plpgsql AS \$\$
      DECLARE j jsonb; w text; c float8;
      BEGIN
        EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j;
        c := (j->0->'Plan'->>'Total Cost')::float8;
        SELECT n->>'Workers Planned' INTO w
          FROM jsonb_path_query(j, 'strict \$.** ? (exists (@.\"Workers Planned\"))') n LIMIT 1;
        RETURN coalesce(w || ' workers', 'no workers') || ', cost ' || round(c) ||
               CASE WHEN current_setting('jit')::bool AND c >= current_setting('jit_above_cost')::float8
                    THEN ', JIT' ELSE '' END;
      END \$\$;"
psql_q -c "$sql"
echo "   destor table: 4+2 pool of six file providers, $topts"

# --- the data ---------------------------------------------------------------------
# Orders: a serial id, a quantity, an amount with two decimals, a ratio and
# a label of five words and a number.  Seeded, so every run loads the same
# rows.  The destor table gets the heap's rows in the heap's order, so a
# scan in one backend adds the floats up in the same order in both.
echo -n "   loading $rows rows into heap_t ..."
t0=$(now)
psql_q <<SQL
SELECT setseed(0.5) \g /dev/null
INSERT INTO heap_t
  SELECT i, (random() * 1000)::int, round((random() * 100000)::numeric, 2), random(),
         (ARRAY['north', 'south', 'east', 'west', 'central'])[1 + i % 5] || ' ' || (random() * 10000)::int
    FROM generate_series(1, $rows) i;
SQL
echo " $(since "$t0")"
echo -n "   copying them into destor_t ..."
t0=$(now)
psql_q -c "SET synchronize_seqscans = off" -c "INSERT INTO destor_t SELECT * FROM heap_t" >/dev/null
echo " $(since "$t0")"

echo -n "   writing a $blob_mb MiB random file, importing it as a blob and as a large object ..."
t0=$(now)
in=$dir/blob.bin
head -c "$blob_bytes" /dev/urandom > "$in"
in_md5=$(md5sum < "$in" | cut -d' ' -f1)
blob=$(psql_q -c "SELECT destor.blob_import('archive', $(lit "$in"))")
lo=$(psql_q -c "SELECT lo_import($(lit "$in"))")
echo " $(since "$t0")"

# both copies hold the input's bytes (not timed; blob_get reads in bulk,
# around the cache)
blob_md5=$(psql_q -c "SELECT md5(destor.blob_get($(lit "$blob")::destor.blob))")
lo_md5=$(psql_q -c "SELECT md5(lo_get($lo))")
[ "$blob_md5" = "$in_md5" ] || fail "blob_get returned bytes with md5 $blob_md5, the input file has $in_md5"
[ "$lo_md5" = "$in_md5" ] || fail "lo_get returned bytes with md5 $lo_md5, the input file has $in_md5"

# as loaded data would be: analyzed (and the heap vacuumed: hint bits,
# visibility map), and the heap and the large object read into
# shared_buffers
psql_q -c "VACUUM (ANALYZE) heap_t" -c "VACUUM (ANALYZE) pg_largeobject" -c "CHECKPOINT" >/dev/null
if psql_q -c "ANALYZE destor_t" >/dev/null 2>"$dir/analyze.err"; then
	destor_analyzed=yes
else
	destor_analyzed="no ($(head -1 "$dir/analyze.err"))"
fi
prewarmed=$(psql_q -c "SELECT pg_prewarm('heap_t') || '|' || pg_prewarm('pg_largeobject') + pg_prewarm('pg_largeobject_loid_pn_index')")
IFS='|' read -r heap_blocks lo_blocks <<< "$prewarmed"
IFS='|' read -r heap_bytes lo_rel_bytes t_logical t_segments <<< "$(psql_q -c "
  SELECT pg_relation_size('heap_t') || '|' ||
         pg_relation_size('pg_largeobject') + pg_relation_size('pg_largeobject_loid_pn_index') || '|' ||
         coalesce(sum(o.size), 0) || '|' || count(*)
    FROM destor.segments s JOIN destor.tables t USING (table_id) JOIN destor.objects o USING (object_id)
   WHERE t.relid = 'destor_t'::regclass")"
sb_blocks=$(psql_q -c "SELECT setting FROM pg_settings WHERE name = 'shared_buffers'")
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
echo "   heap_t: $(mib "$heap_bytes") MiB, pg_largeobject and its index: $(mib "$lo_rel_bytes") MiB;" \
	"$((heap_blocks + lo_blocks)) blocks prewarmed into shared_buffers ($sb_blocks buffers)"
echo "   destor_t: $t_segments segments, $(mib "$t_logical") MiB of objects (plaintext, before erasure" \
	"coding); the blob: $blob_mb MiB; cache: $(mib "$cache_bytes") MiB"
echo "   ANALYZE destor_t: $destor_analyzed"
if [ "$t_logical" -gt "$cache_bytes" ] || [ "$blob_bytes" -gt "$cache_bytes" ]; then
	echo "   WARNING: the data does not fit the cache; warm runs will read from the providers"
fi

# --- measuring ----------------------------------------------------------------

# the counters of the providers and of the cache, as one row "a|b|c|..."
counters_sql="(SELECT coalesce(sum(requests), 0) AS req, coalesce(sum(bytes_read), 0) AS rd
                 FROM destor.provider_status) p, destor.cache_stats c"

# runs COLD WARM SETUP QUERY: in one connection, after SETUP (e.g. a SET),
# runs QUERY COLD times right after destor.cache_reset() and then WARM times
# as it is, and prints one line a run:
#   kind|seconds|provider requests|bytes read by providers|cache hits|
#   cache misses|bytes from cache|result
# with the counters as differences over the run (provider_status and
# cache_stats are shared: parallel workers' reads are counted too).
runs() {
	local ncold=$1 nwarm=$2 setup=$3 query=$4 script="" kind r
	script+="$setup"$'\n'
	for ((r = 1; r <= ncold + nwarm; r++)); do
		kind=warm
		if [ "$r" -le "$ncold" ]; then
			kind=cold
			script+="SELECT destor.cache_reset() \\g /dev/null"$'\n'
		fi
		script+="SELECT p.req AS r0, p.rd AS rd0, c.hits AS h0, c.misses AS m0, c.bytes_from_cache AS bc0 FROM $counters_sql \\gset
SELECT clock_timestamp() AS t0 \\gset
SELECT q::text AS result FROM ($query) q \\gset
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS secs \\gset
SELECT '$kind|' || :'secs' || '|' || (p.req - :r0) || '|' || (p.rd - :rd0) || '|' || (c.hits - :h0) || '|' ||
       (c.misses - :m0) || '|' || (c.bytes_from_cache - :bc0) || '|' || :'result' FROM $counters_sql;
"
	done
	psql_q <<< "$script" || echo "ERROR"
}

# same results: exactly, or - for a parallel plan, whose sums add up in
# another order - numbers equal to 12 significant digits
same_exact() { [ "$1" = "$2" ]; }
same_close() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		gsub(/[()"]/, "", a); gsub(/[()"]/, "", b)
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
faster() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# measure KEY LABEL COLD WARM SETUP QUERY SAME: prints the runs' times on
# one line and sets, for KEY,
#   cold[KEY]   the time of the cold run (if any)
#   secs[KEY]   the fastest warm run
#   req[KEY] rd[KEY] hits[KEY] miss[KEY] bfc[KEY]   the counters of that run
#   creq[KEY] crd[KEY] chits[KEY] cmiss[KEY]        those of the cold run
#   wreq[KEY]   provider requests over all warm runs
#   result[KEY] the result; every run must return the same, as SAME tells
declare -A cold secs req rd hits miss bfc creq crd chits cmiss wreq result
measure() {
	local key=$1 label=$2 ncold=$3 nwarm=$4 setup=$5 query=$6 same=$7
	local kind s q_req q_rd q_hits q_miss q_bfc res first=1
	printf "   %-44s" "$label"
	secs[$key]=""; wreq[$key]=0; result[$key]=""
	while IFS='|' read -r kind s q_req q_rd q_hits q_miss q_bfc res; do
		[ "$kind" != ERROR ] || fail "query failed: $query"
		if [ "$kind" = cold ]; then
			printf " cold %7.3fs |" "$s"
			cold[$key]=$s; creq[$key]=$q_req; crd[$key]=$q_rd; chits[$key]=$q_hits; cmiss[$key]=$q_miss
		else
			[ "$first" = 1 ] && [ "$ncold" -gt 0 ] && printf " warm"
			first=0
			printf " %7.3fs" "$s"
			wreq[$key]=$((wreq[$key] + q_req))
			if [ -z "${secs[$key]}" ] || faster "$s" "${secs[$key]}"; then
				secs[$key]=$s; req[$key]=$q_req; rd[$key]=$q_rd; hits[$key]=$q_hits; miss[$key]=$q_miss
				bfc[$key]=$q_bfc
			fi
		fi
		if [ -n "${result[$key]}" ] && ! "$same" "$res" "${result[$key]}"; then
			fail "$label: two runs of the same query returned different results (a cold and a warm run?):" \
				"${result[$key]} and $res: $query"
		fi
		result[$key]=$res
	done < <(runs "$ncold" "$nwarm" "$setup" "$query")
	[ -n "${result[$key]}" ] || fail "query returned nothing: $query"
	echo
}

serial="SET max_parallel_workers_per_gather = 0; SET synchronize_seqscans = off;"
plain="SET synchronize_seqscans = off;"

# --- 1. full scans ---------------------------------------------------------------
# every column, so the scan decodes every column chunk
q_scan="SELECT count(*) AS n, sum(id) AS sum_id, sum(qty) AS sum_qty, sum(amount) AS sum_amount,
               avg(ratio) AS avg_ratio, max(label) AS max_label FROM %s"
echo
echo "-- 1. full-scan aggregate over every column (times: wall, in the backend)"
measure heap "heap_t (shared_buffers), default plan" 0 $((warm_runs + 1)) "$plain" "$(printf "$q_scan" heap_t)" same_close
measure heap1 "heap_t (shared_buffers), no parallel" 0 $((warm_runs + 1)) "$serial" "$(printf "$q_scan" heap_t)" same_exact
measure scan "destor_t, default plan" 1 "$warm_runs" "$plain" "$(printf "$q_scan" destor_t)" same_close
measure scan1 "destor_t, no parallel" 1 "$warm_runs" "$serial" "$(printf "$q_scan" destor_t)" same_exact
same_close "${result[heap]}" "${result[heap1]}" ||
	fail "heap_t returned ${result[heap]} with its default plan, ${result[heap1]} without parallel workers"
same_exact "${result[heap1]}" "${result[scan1]}" ||
	fail "full scan: destor returned ${result[scan1]}, heap ${result[heap1]} (no parallel workers)"
same_close "${result[heap]}" "${result[scan]}" ||
	fail "full scan: destor returned ${result[scan]}, heap ${result[heap]} (default plans)"

# the plans, in short
declare -A plan
for t in heap destor; do
	plan[$t]=$(psql_q -c "$plain" -c "SELECT plan_summary($(lit "$(printf "$q_scan" "${t}_t")"))")
	plan[${t}1]=$(psql_q -c "$serial" -c "SELECT plan_summary($(lit "$(printf "$q_scan" "${t}_t")"))")
done

# --- 2. range reads of the blob and the large object -----------------------------------
# one statement reads the whole object as nranges ranges of range_bytes; the
# timed statements only add up the lengths, the bytes are compared apart
q_blob="SELECT sum(length(destor.blob_read($(lit "$blob")::destor.blob, i * $range_bytes::bigint, $range_bytes)))
          FROM generate_series(0, $nranges - 1) i"
q_lo="SELECT sum(length(lo_get($lo, i * $range_bytes::bigint, $range_bytes)))
        FROM generate_series(0, $nranges - 1) i"
echo
echo "-- 2. $blob_mb MiB read as $nranges ranges of $range_kb KiB in one statement"
# every range equal to the large object's, and all of them together the
# input file (not timed): once cold, once warm
q_check="SELECT count(*) FILTER (WHERE d IS DISTINCT FROM l) AS differ, md5(string_agg(d, ''::bytea ORDER BY i)) AS md5
           FROM (SELECT i, destor.blob_read($(lit "$blob")::destor.blob, i * $range_bytes::bigint, $range_bytes) AS d,
                        lo_get($lo, i * $range_bytes::bigint, $range_bytes) AS l
                   FROM generate_series(0, $nranges - 1) i) s"
while IFS='|' read -r kind s _ _ _ _ _ res; do
	[ "$kind" != ERROR ] || fail "the comparison of the ranges failed: $q_check"
	[ "$res" = "(0,$in_md5)" ] ||
		fail "blob_read ranges ($kind) differ from lo_get's or from the input (differing ranges, md5): $res, input md5 $in_md5"
done < <(runs 1 1 "" "$q_check")
echo "   every range equals lo_get's and the input's (cold and warm; md5 $in_md5)"
measure lo "lo_get (shared_buffers)" 0 $((warm_runs + 1)) "" "$q_lo" same_exact
measure blob "destor.blob_read" 1 "$warm_runs" "" "$q_blob" same_exact
[ "${result[lo]}" = "($blob_bytes)" ] || fail "lo_get ranges added up to ${result[lo]} bytes, expected $blob_bytes"
[ "${result[blob]}" = "($blob_bytes)" ] || fail "blob_read ranges added up to ${result[blob]} bytes, expected $blob_bytes"
# what a call costs apart from its bytes: reads of 1 byte, one in each range
ncalls=2000
q_blob1="SELECT sum(length(destor.blob_read($(lit "$blob")::destor.blob, (i % $nranges) * $range_bytes::bigint, 1)))
           FROM generate_series(1, $ncalls) i"
q_lo1="SELECT sum(length(lo_get($lo, (i % $nranges) * $range_bytes::bigint, 1))) FROM generate_series(1, $ncalls) i"
measure lo1 "lo_get, $ncalls reads of 1 byte" 0 $((warm_runs + 1)) "" "$q_lo1" same_exact
measure blob1 "destor.blob_read, $ncalls reads of 1 byte" 0 $((warm_runs + 1)) "" "$q_blob1" same_exact
[ "${result[blob1]}" = "($ncalls)" ] && [ "${result[lo1]}" = "($ncalls)" ] ||
	fail "$ncalls reads of 1 byte returned ${result[blob1]} bytes (blob_read), ${result[lo1]} (lo_get)"
cache_used=$(psql_q -c "SELECT used_bytes || '|' || evictions || '|' || pinned_pages FROM destor.cache_stats")
IFS='|' read -r used_bytes evictions pinned <<< "$cache_used"

# --- report ---------------------------------------------------------------------
krows() { awk -v s="$1" -v n="$rows" 'BEGIN { printf "%.0f", n / s / 1000 }'; }
mbps() { awk -v s="$1" -v mb="$blob_mb" 'BEGIN { printf "%.0f", mb / s }'; }
# speed ratio: how many times faster the first time is than the second
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
usec() { awk -v s="$1" -v n="$ncalls" 'BEGIN { printf "%.1f", s / n * 1e6 }'; }

echo
echo "== results: warm = best of $warm_runs warm runs (heap and large object: best of $((warm_runs + 1)), all warm)"
printf "  %-44s %8s %9s %9s %9s %9s %11s\n" operation seconds "rate" "requests" "MiB read" "cache hit" "cache miss"
trow() { # label seconds rate requests bytes hits misses
	printf "  %-44s %8.3f %9s %9s %9s %9s %11s\n" "$1" "$2" "$3" "$4" "$([ "$5" = - ] && echo - || mib "$5")" "$6" "$7"
}
for k in heap heap1; do
	l="full scan: heap_t"; [ "$k" = heap1 ] && l+=", no parallel"
	trow "$l" "${secs[$k]}" "$(krows "${secs[$k]}")k/s" - - - -
done
for k in scan scan1; do
	l="full scan: destor_t"; [ "$k" = scan1 ] && l+=", no parallel"
	trow "$l, cold" "${cold[$k]}" "$(krows "${cold[$k]}")k/s" "${creq[$k]}" "${crd[$k]}" "${chits[$k]}" "${cmiss[$k]}"
	trow "$l, warm" "${secs[$k]}" "$(krows "${secs[$k]}")k/s" "${req[$k]}" "${rd[$k]}" "${hits[$k]}" "${miss[$k]}"
done
trow "range reads: lo_get" "${secs[lo]}" "$(mbps "${secs[lo]}")MiB/s" - - - -
trow "range reads: destor.blob_read, cold" "${cold[blob]}" "$(mbps "${cold[blob]}")MiB/s" "${creq[blob]}" \
	"${crd[blob]}" "${chits[blob]}" "${cmiss[blob]}"
trow "range reads: destor.blob_read, warm" "${secs[blob]}" "$(mbps "${secs[blob]}")MiB/s" "${req[blob]}" \
	"${rd[blob]}" "${hits[blob]}" "${miss[blob]}"
echo "  (requests, MiB read: provider requests and the bytes they returned during the run; cache hit/miss:"
echo "   pages found and not found in the cache, decompressed column chunks included (a warm scan"
echo "   copies those instead of the pages they came from); all counted over every backend)"

echo
echo "== details"
printf "  %-14s %s\n" "full scan" "${result[scan1]}   (identical on both tables)"
printf "  %-14s %s\n" "range reads" "${result[blob]} bytes, every range equal to lo_get's"
printf "  %-14s heap_t: %s; destor_t: %s\n" "default plans" "${plan[heap]}" "${plan[destor]}"
printf "  %-14s heap_t: %s; destor_t: %s\n" "no parallel" "${plan[heap1]}" "${plan[destor1]}"
printf "  %-14s blob_read %s us, lo_get %s us a call (warm, $ncalls reads of 1 byte)\n" "per call" \
	"$(usec "${secs[blob1]}")" "$(usec "${secs[lo1]}")"
printf "  %-14s %s MiB used of %s MiB, %s evictions, %s pages pinned (after the last run)\n" "cache" \
	"$(mib "$used_bytes")" "$(mib "$cache_bytes")" "$evictions" "$pinned"
printf "  %-14s %s MiB from the cache in the best warm full scan (no parallel), %s MiB in the best warm range read\n" \
	"" "$(mib "${bfc[scan1]}")" "$(mib "${bfc[blob]}")"

r_scan=$(ratio "${secs[scan]}" "${secs[heap]}")
r_scan1=$(ratio "${secs[scan1]}" "${secs[heap1]}")
r_blob=$(ratio "${secs[blob]}" "${secs[lo]}")
c_scan=$(ratio "${secs[scan]}" "${cold[scan]}")
c_scan1=$(ratio "${secs[scan1]}" "${cold[scan1]}")
c_blob=$(ratio "${secs[blob]}" "${cold[blob]}")
cold_scan=$(ratio "${cold[scan]}" "${secs[heap]}")
cold_blob=$(ratio "${cold[blob]}" "${secs[lo]}")
scan_wreq=$((wreq[scan] + wreq[scan1]))

verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }
v_scan=$(verdict "$r_scan >= 1")
v_scan1=$(verdict "$r_scan1 >= 1")
v_scan_req=$(verdict "$scan_wreq == 0")
v_blob=$(verdict "$r_blob >= 2")
v_blob_req=$(verdict "${wreq[blob]} == 0")
echo
echo "== ratios (> 1: the first is faster) and targets"
printf "  %-72s %s\n" "1. warm full scan destor/heap >= 1.0x, default plans (${r_scan}x)" "$v_scan"
printf "  %-72s %s\n" "   warm full scan destor/heap >= 1.0x, no parallel workers (${r_scan1}x)" "$v_scan1"
printf "  %-72s %s\n" "   provider requests in the $((2 * warm_runs)) warm full scans = 0 ($scan_wreq)" "$v_scan_req"
printf "  %-72s %s\n" "2. warm range reads blob_read/lo_get >= 2x (${r_blob}x)" "$v_blob"
printf "  %-72s %s\n" "   provider requests in the $warm_runs warm range reads = 0 (${wreq[blob]})" "$v_blob_req"
printf "  %-72s %s\n" "3. warm/cold, destor full scan: default plan ${c_scan}x, no parallel ${c_scan1}x" "(no target)"
printf "  %-72s %s\n" "   warm/cold, destor range reads: ${c_blob}x" "(no target)"
printf "  %-72s %s\n" "   cold destor against warm PostgreSQL: full scan ${cold_scan}x, range reads ${cold_blob}x" "(no target)"

# --- where destor's time goes -------------------------------------------------------
# perf record of the backend (and the codec's helper threads) in one more
# warm run of a statement; user space only when perf_event_paranoid is 2.
perf_ok() {
	command -v perf >/dev/null 2>&1 && perf record -q -o "$dir/perf.check" -- true >/dev/null 2>&1
}
# which stage a shared object stands for
stage_of() {
	case $1 in
		*libzstd*) echo "zstd (decompress)" ;;
		*libcrypto*) echo "OpenSSL (decrypt, checksums)" ;;
		*libisal*) echo "ISA-L (erasure coding)" ;;
		destor.so) echo "destor (cache, value decoding, segments)" ;;
		postgres) echo "PostgreSQL (executor, aggregates, catalog)" ;;
		libc.so*) echo "libc (memcpy, malloc, string)" ;;
		llvmjit*|*LLVM*) echo "JIT compiler" ;;
		'[JIT]') echo "JIT-compiled expressions and tuple deforming" ;;
		'[kernel.kallsyms]') echo "kernel" ;;
		*) echo "other ($1)" ;;
	esac
}
profile() { # key label setup statement seconds
	local key=$1 label=$2 setup=$3 stmt=$4 pidfile=$dir/profile.pid data=$dir/perf.$1.data psql_pid perf_pid bpid rc=0
	local reps i script
	# short statements run again and again, for about a second of samples
	reps=$(awk -v s="$5" 'BEGIN { n = int(1 / s) + 1; print (n > 200 ? 200 : n) }')
	script="SELECT pg_backend_pid() \\g '$pidfile'
SELECT pg_sleep(1) \\g /dev/null
$setup"$'\n'
	for ((i = 0; i < reps; i++)); do script+="$stmt \\g /dev/null"$'\n'; done
	rm -f "$pidfile"
	psql_q > /dev/null <<< "$script" &
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
	echo "  -- $label ($reps runs): time by stage (self time, by shared object)"
	HOME=$dir perf report -i "$data" --no-children -g none --sort dso --stdio 2>/dev/null |
		awk 'n < 12 && /^ *[0-9.]+%/ { print $1 "\t" $2; n++ }' |
		while IFS=$'\t' read -r pct so; do printf "  %8s  %s\n" "$pct" "$(stage_of "$so")"; done
	echo "  -- $label: top functions (self time)"
	HOME=$dir perf report -i "$data" --no-children -g none --sort dso,sym --stdio 2>/dev/null |
		awk 'n < 15 && /^ *[0-9.]+%/ { pct = $1; so = $2; $1 = $2 = $3 = ""; sub(/^ +/, "")
			printf "  %8s  %-22s %s\n", pct, so, $0; n++ }'
}

want_perf() { # verdict...
	[ "$perf_mode" = 1 ] && return 0
	[ "$perf_mode" = auto ] || return 1
	local v
	for v in "$@"; do [ "$v" = MISSED ] && return 0; done
	return 1
}
if want_perf "$v_scan" "$v_scan1" "$v_scan_req" || want_perf "$v_blob" "$v_blob_req"; then
	echo
	if perf_ok; then
		echo "== profiles of warm runs (perf, one more run each; user space only unless perf_event_paranoid < 2)"
		if want_perf "$v_scan" "$v_scan1" "$v_scan_req"; then
			profile scan "warm full scan of destor_t, no parallel workers" "$serial" "$(printf "$q_scan" destor_t)" \
				"${secs[scan1]}"
			profile heap "warm full scan of heap_t, no parallel workers (for comparison)" "$serial" \
				"$(printf "$q_scan" heap_t)" "${secs[heap1]}"
		fi
		if want_perf "$v_blob" "$v_blob_req"; then
			profile blob "warm range reads with destor.blob_read" "" "$q_blob" "${secs[blob]}"
			profile lo "range reads with lo_get (for comparison)" "" "$q_lo" "${secs[lo]}"
		fi
	else
		echo "== no profile: perf is missing or may not profile this user's processes"
	fi
fi

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "== machine: load average $load_start at start, $load_end at the end ($(nproc) CPUs)"
if awk -v a="${load_start%% *}" -v b="${load_end%% *}" -v n="$(nproc)" 'BEGIN { exit !(a > n / 2 || b > n / 2) }'; then
	echo "   WARNING: other work was running; the times are noisy"
fi
if [ "$(md5sum < "$lib")" != "$lib_sum" ]; then
	echo "   WARNING: $lib was reinstalled during the run; the server kept the one it"
	echo "   loaded at start, and perf may not name destor's functions"
fi

cat <<NOTE

== notes
  - Cold runs follow destor.cache_reset(): every page comes from the
    providers.  The page cache is not dropped (that needs root), so shard
    bytes may still come from memory; file providers read with direct I/O
    where they can, so part of them may come from the disk.  Warm runs come
    right after the cold one, in the same connection.
  - The heap table and the large object were read into shared_buffers by
    pg_prewarm (heap_t VACUUMed first); every run of theirs is warm.
  - Full scans aggregate every column (count, sums of bigint, int and
    numeric, avg of float8, max of text), with PostgreSQL's default plan
    (parallel workers when the planner picks them) and in one backend
    (max_parallel_workers_per_gather = 0); the plans are listed above.  JIT
    is left at PostgreSQL's default.  Results must match: exactly in one
    backend, to 12 significant digits with a parallel plan (float sums in
    another order), and the same in cold and warm runs.
  - "per call" is what a read costs apart from its bytes: $ncalls reads of
    1 byte, one statement, warm.
  - Range reads: one statement, sum(length(...)) over generate_series, so
    no bytes go to the client; ranges of $range_kb KiB stay below the bulk
    threshold (64 blocks, 4 MiB), so destor's cold run fills the cache.
    The bytes were compared apart (per range against lo_get, and md5 of
    all of them against the input file), cold and warm.
  - Provider requests and cache counters are read from destor.provider_status
    and destor.cache_stats before and after each run (shared: parallel
    workers included).
NOTE
