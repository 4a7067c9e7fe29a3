#!/bin/bash
# destor over a wide-area network: every provider a real S3-protocol server
# (s3rver, from test/tap/node_modules) behind a loopback proxy
# (test/bench/wan_proxy.py) that adds a delay each way and caps each
# provider's bandwidth per direction (a token bucket shared by all of the
# provider's connections), with different settings per provider.  Issue 11.
#
# Starts the servers, the proxy and a throwaway cluster (destor preloaded)
# in a temporary folder, makes a 4+2 pool over the six providers, and
# measures in one run:
#   1. COPY of BENCH_ROWS rows (default 1,000,000) into a destor table, and
#      into a heap table; then the same rows into a table of BENCH_SEG_ROWS
#      rows a segment (default a quarter of them), whose segments go out
#      while the next is encoded, against the same COPY on the same servers
#      without the proxy;
#   2. a cold full scan of that table (right after destor.cache_reset()),
#      and the heap table's scan;
#   3. blob_import of a BENCH_BLOB_MB MiB random file (default 64) and its
#      cold blob_export, and lo_import / lo_export of the same file;
#   4. BENCH_READS (default 1000) blob_read() calls of 8 KiB at random
#      offsets, cold and then warm (same offsets), and lo_get() of the same;
#   5. the cold full scan again with BENCH_LATE_PCT percent (default 3) of
#      the providers' requests held BENCH_LATE_MS ms (default 2000) longer;
#   6. the cold full scan on the same servers without the proxy (local S3),
#      and the heap table's, each right after a restart of the cluster
#      (best of three; the OS page cache is not dropped).
# For each it prints the time, the ideal time and the ratio, and the heap
# or large-object time where one compares.
#
# The ideal, from the catalog's sizes of the shards stored (not one recorded
# missing) and the proxy's settings (not from what destor happened to send):
#   reads   an object of k data shards is read whole from any k of its
#           shards, and each stripe may pick its own k, so the providers may
#           share the work unevenly: the ideal is the smallest T for which
#             sum over providers p of min(B_p, max(0, T - rtt_p) * down_p)
#               >= (k / n) * sum B_p
#           where B_p is the bytes of the read's shards on p, rtt_p its round
#           trip (twice the one-way delay) and down_p its bandwidth.  One
#           round trip and the bytes at bandwidth, the fastest providers
#           taking more.  Serial calls (blob_read) add up one such T a call,
#           each for the whole 64 KiB blocks the call touches.
#   writes  every shard must be sent, but a write is durable once its write
#           quorum w of n shards is (what hedged writes would wait for,
#           issue 11 item 5): the same formula with up_p and w / n.
#
#   BENCH_ROWS=n        rows of the table (default 1000000)
#   BENCH_SEG_ROWS=n    segment_rows of the segmented COPY's tables (default
#                       BENCH_ROWS / 4, at least 1000)
#   BENCH_BLOB_MB=n     size of the blob in MiB (default 64)
#   BENCH_READS=n       random 8 KiB blob_read() calls (default 1000)
#   BENCH_LATE_PCT=n    percent of requests held late in run 5 (default 3;
#                       0 skips run 5)
#   BENCH_LATE_MS=n     how much longer (default 2000)
#   BENCH_WAN="d:down:up,..."  one entry per provider (six): one-way delay
#                       in ms, bandwidth down and up in MB/s (10^6 bytes);
#                       default four at 40 ms / 25 MB/s, one far one at
#                       150 ms / 25 MB/s, one slow one at 40 ms / 5 MB/s:
#                       "40:25:25,40:25:25,40:25:25,40:25:25,150:25:25,40:5:5"
#   BENCH_CACHE_MB=n    destor.cache_size (default 128: the size the issue measured)
#   BENCH_WARM=n        destor.warm_connections (default: the setting's own,
#                       4; 0: every backend and parallel worker opens its
#                       own connections, a round trip each; n: the keeper
#                       holds n ready per provider)
#   BENCH_QUICK=1       a run of a few minutes: 200,000 rows, a 16 MiB blob,
#                       200 reads (explicit BENCH_* values still win)
#   BENCH_TRACE=file    the proxy writes every request there (see
#                       wan_proxy.py), with a "label" line before each
#                       workload: where a workload's time went
#   BENCH_EXPLAIN=1     also print EXPLAIN ANALYZE of a second cold scan
#   BENCH_REPEAT=n      run the cold scan and the cold export, and curl's
#                       fetch of their shards, n times each, alternating
#                       (default 1); each run's time is printed and the
#                       results give the median (one run swings by 30%)
#   BENCH_SERVER_LOG=file  keep the cluster's server log there
#   BENCH_PORT=n        base port: the cluster on n, the servers on n+1..n+6,
#                       the proxy on n+11..n+16 (default 54360)
#   BENCH_USER=name     unprivileged user to run as when started by root
#                       (default destor_bench, created if missing)
#   TMPDIR              where the temporary folder goes
#
# It is a benchmark, not a test: it prints ratios, and fails only when
# something breaks (a query error, bytes that differ from the input).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# ---------------------------------------------------------------------------
# Outer part: find PostgreSQL, s3rver and the proxy, check the settings, and
# - as root - hand the run to an unprivileged user.
# ---------------------------------------------------------------------------
if [ -z "${BENCH_WORKER_DIR:-}" ]; then
	. "$here/common.sh"
	bench_find_postgres wan_bench

	if [ "${BENCH_QUICK:-0}" = 1 ]; then
		export BENCH_ROWS=${BENCH_ROWS:-200000} BENCH_BLOB_MB=${BENCH_BLOB_MB:-16} BENCH_READS=${BENCH_READS:-200}
	fi
	positive() { # name value
		case $2 in *[!0-9]* | "" | 0) echo "wan_bench: $1 must be a positive number" >&2; exit 1 ;; esac
	}
	positive BENCH_ROWS "${BENCH_ROWS:-1000000}"
	positive BENCH_SEG_ROWS "${BENCH_SEG_ROWS:-1000}"
	positive BENCH_BLOB_MB "${BENCH_BLOB_MB:-64}"
	positive BENCH_READS "${BENCH_READS:-1000}"
	positive BENCH_LATE_MS "${BENCH_LATE_MS:-2000}"
	positive BENCH_CACHE_MB "${BENCH_CACHE_MB:-128}"
	positive BENCH_PORT "${BENCH_PORT:-54360}"
	positive BENCH_REPEAT "${BENCH_REPEAT:-1}"
	case ${BENCH_LATE_PCT:-3} in *[!0-9]* | "") echo "wan_bench: BENCH_LATE_PCT must be a number from 0 to 100" >&2; exit 1 ;; esac
	[ "${BENCH_LATE_PCT:-3}" -le 100 ] || { echo "wan_bench: BENCH_LATE_PCT must be at most 100" >&2; exit 1; }
	case ${BENCH_WARM:-4} in *[!0-9]* | "") echo "wan_bench: BENCH_WARM must be a number from 0 to 32" >&2; exit 1 ;; esac
	[ "${BENCH_WARM:-4}" -le 32 ] || { echo "wan_bench: BENCH_WARM must be at most 32" >&2; exit 1; }
	wan=${BENCH_WAN:-40:25:25,40:25:25,40:25:25,40:25:25,150:25:25,40:5:5}
	IFS=, read -ra entries <<< "$wan"
	[ "${#entries[@]}" = 6 ] || { echo "wan_bench: BENCH_WAN needs six entries (one a provider), got ${#entries[@]}" >&2; exit 1; }
	for e in "${entries[@]}"; do
		[[ $e =~ ^[0-9]+:[0-9]+(\.[0-9]+)?:[0-9]+(\.[0-9]+)?$ ]] ||
			{ echo "wan_bench: BENCH_WAN entry '$e' is not delay_ms:down_MBps:up_MBps" >&2; exit 1; }
	done
	export BENCH_WAN=$wan

	top=$(cd "$here/../.." && pwd)
	export BENCH_S3RVER=${BENCH_S3RVER:-$top/test/tap/node_modules/.bin/s3rver}
	if [ ! -x "$BENCH_S3RVER" ]; then
		echo "wan_bench: s3rver missing ($BENCH_S3RVER); run: (cd test/tap && npm ci)" >&2
		exit 1
	fi
	command -v python3 >/dev/null || { echo "wan_bench: python3 is needed for the WAN proxy" >&2; exit 1; }
	export BENCH_WAN_PROXY=$here/wan_proxy.py
	bench_hand_off wan_bench
fi

# ---------------------------------------------------------------------------
# Worker: everything below runs as the cluster's owner.
# ---------------------------------------------------------------------------
# bench_start_cluster and the SQL helpers (its own cleanup and helpers below)
. "$(dirname "$0")/common.sh"
bench_name=wan_bench
dir=$BENCH_WORKER_DIR
rows=${BENCH_ROWS:-1000000}
seg_rows=${BENCH_SEG_ROWS:-$(( rows / 4 > 1000 ? rows / 4 : 1000 ))}
blob_mb=${BENCH_BLOB_MB:-64}
nreads=${BENCH_READS:-1000}
late_pct=${BENCH_LATE_PCT:-3}
late_ms=${BENCH_LATE_MS:-2000}
cache_mb=${BENCH_CACHE_MB:-128}
warm=${BENCH_WARM:-}
port=${BENCH_PORT:-54360}
repeat=${BENCH_REPEAT:-1}
PATH="$("${PG_CONFIG:-pg_config}" --bindir):$PATH"
IFS=, read -ra wan <<< "$BENCH_WAN"
n=6 k=4 m=2
blob_bytes=$((blob_mb * 1048576))
pids=()

cleanup() {
	local p
	if [ -f "$dir/pgdata/postmaster.pid" ]; then
		pg_ctl -D "$dir/pgdata" -m immediate stop >/dev/null 2>&1 || true
	fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -z "${BENCH_SERVER_LOG:-}" ] || cp "$dir/server.log" "$BENCH_SERVER_LOG" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

psql_q() { psql -X -q -At -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
lit() { printf "'%s'" "${1//\'/\'\'}"; }
now() { date +%s.%N; }
fail() { echo "wan_bench: FAILED: $*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

echo "== destor WAN benchmark: $rows rows, a $blob_mb MiB blob, $nreads reads of 8 KiB, destor $BENCH_REV"
echo "   $(uname -srm), $(nproc) CPUs, $(psql --version | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   destor.cache_size ${cache_mb}MB; pool: 4+2 over six s3rver servers, each behind the WAN proxy:"
for i in 1 2 3 4 5 6; do
	IFS=: read -r d dn up <<< "${wan[$((i - 1))]}"
	echo "     p$i: ${d} ms each way (RTT $((2 * d)) ms), ${dn} MB/s down, ${up} MB/s up"
done

# --- servers, proxy, cluster -------------------------------------------------------
mkdir -p "$dir/s3"
for i in 1 2 3 4 5 6; do
	mkdir -p "$dir/s3/p$i"
	NODE_OPTIONS=--openssl-legacy-provider "$BENCH_S3RVER" -d "$dir/s3/p$i" -a 127.0.0.1 -p $((port + i)) -s \
		--configure-bucket bench > "$dir/s3/p$i.log" 2>&1 &
	pids+=($!)
done
{
	printf '{"control": "%s", "stats": "%s", "trace": "%s", "seed": 11, "providers": [' \
		"$dir/late" "$dir/stats.json" "${BENCH_TRACE:-}"
	for i in 1 2 3 4 5 6; do
		IFS=: read -r d dn up <<< "${wan[$((i - 1))]}"
		[ "$i" = 1 ] || printf ', '
		printf '{"name": "p%d", "listen": %d, "target": %d, "delay_ms": %s, "down_bps": %s, "up_bps": %s}' \
			"$i" $((port + 10 + i)) $((port + i)) "$d" "$(awk -v x="$dn" 'BEGIN { print x * 1e6 }')" \
			"$(awk -v x="$up" 'BEGIN { print x * 1e6 }')"
	done
	printf ']}\n'
} > "$dir/proxy.json"
python3 "$BENCH_WAN_PROXY" "$dir/proxy.json" > "$dir/proxy.log" 2>&1 &
pids+=($!)
for i in 1 2 3 4 5 6; do
	for _ in $(seq 200); do port_open $((port + i)) && port_open $((port + 10 + i)) && break; sleep 0.1; done
	port_open $((port + i)) || { cat "$dir/s3/p$i.log" >&2; fail "s3rver p$i did not start"; }
	port_open $((port + 10 + i)) || { cat "$dir/proxy.log" >&2; fail "the WAN proxy did not start"; }
done

bench_start_cluster <<CONF
shared_buffers = 512MB
timezone = 'UTC'
max_wal_size = 4GB
destor.cache_size = '${cache_mb}MB'
${warm:+destor.warm_connections = $warm}
CONF

sql="CREATE EXTENSION destor; CREATE EXTENSION pg_prewarm;"
for i in 1 2 3 4 5 6; do
	sql+="CREATE SERVER p$i FOREIGN DATA WRAPPER destor_provider OPTIONS
	        (type 's3', endpoint 'http://127.0.0.1:$((port + 10 + i))', bucket 'bench', region 'us-east-1');
	      CREATE USER MAPPING FOR PUBLIC SERVER p$i OPTIONS (access_key_id 'S3RVER', secret_access_key 'S3RVER');"
done
# the same servers without the proxy, for the segmented COPY's comparison
for i in 1 2 3 4 5 6; do
	sql+="CREATE SERVER l$i FOREIGN DATA WRAPPER destor_provider OPTIONS
	        (type 's3', endpoint 'http://127.0.0.1:$((port + i))', bucket 'bench', region 'us-east-1');
	      CREATE USER MAPPING FOR PUBLIC SERVER l$i OPTIONS (access_key_id 'S3RVER', secret_access_key 'S3RVER');"
done
sql+="CREATE SERVER wan FOREIGN DATA WRAPPER destor
        OPTIONS (providers 'p1,p2,p3,p4,p5,p6', data_shards '$k', parity_shards '$m');
      CREATE SERVER direct FOREIGN DATA WRAPPER destor
        OPTIONS (providers 'l1,l2,l3,l4,l5,l6', data_shards '$k', parity_shards '$m');"
cols="id bigint, qty int, amount numeric(12,2), ratio float8, label text"
topts="segment_rows '1000000', row_group_rows '10000'"
sopts="segment_rows '$seg_rows', row_group_rows '10000'"
sql+="CREATE TABLE heap_t ($cols); CREATE TABLE heap_copy ($cols);
      CREATE FOREIGN TABLE destor_t ($cols) SERVER wan OPTIONS ($topts);
      CREATE FOREIGN TABLE destor_seg ($cols) SERVER wan OPTIONS ($sopts);
      CREATE FOREIGN TABLE destor_seg_local ($cols) SERVER direct OPTIONS ($sopts);"
psql_q -c "$sql" >/dev/null
wq=$(psql_q -c "SELECT coalesce((SELECT split_part(o, '=', 2) FROM pg_foreign_server s, unnest(s.srvoptions) o
                                 WHERE s.srvname = 'wan' AND o LIKE 'write_quorum=%'), '$((k + (m + 1) / 2))')")
echo "   destor_t: $topts; write quorum $wq of $n"

# --- helpers -------------------------------------------------------------------------
# timed SQL in a fresh session: prints "seconds|peak RSS kB of the backend|result";
# QUERY returns one row (its text is the result), or with KIND stmt is a
# statement (COPY) whose result is empty
timed() { # setup query [kind]
	local run="SELECT q::text AS result FROM ($2) q \\gset"
	[ "${3:-row}" = stmt ] && run="$2; SELECT '' AS result \\gset"
	psql_q <<SQL
$1
SELECT clock_timestamp() AS t0 \gset
$run
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS secs \gset
SELECT :'secs' || '|' || (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1] || '|' || :'result';
SELECT s[14]::bigint + s[15]::bigint FROM string_to_array(pg_read_file('/proc/self/stat'), ' ') s \g '$dir/backend_cpu'
SELECT 'query ' || extract(epoch FROM :'t0'::timestamptz) || ' ' || :'secs' \g '$dir/query_span'
SQL
	[ -z "${BENCH_TRACE:-}" ] || cat "$dir/query_span" >> "$BENCH_TRACE"
}
# CPU seconds the bench's peers used so far: "servers proxy" (s3rver
# processes, the WAN proxy), from /proc (clock ticks)
hz=$(getconf CLK_TCK)
peer_cpu() {
	local p srv=0 t
	for p in "${pids[@]:0:6}"; do
		t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
		srv=$((srv + t))
	done
	t=$(awk '{ print $14 + $15 }' "/proc/${pids[6]}/stat" 2>/dev/null || echo 0)
	echo "$srv $t"
}
declare -a cpu_lines
cpu_line() { # label seconds "servers proxy" before, after (backend from the last timed call)
	local b s0 p0 s1 p1
	b=$(cat "$dir/backend_cpu" 2>/dev/null || echo 0)
	read -r s0 p0 <<< "$3"
	read -r s1 p1 <<< "$4"
	cpu_lines+=("$(awk -v l="$1" -v w="$2" -v b="$b" -v s="$((s1 - s0))" -v p="$((p1 - p0))" -v hz="$hz" \
		'BEGIN { printf "  %-40s %6.2f s wall: backend %.2f s (session included), s3rver %.2f s, proxy %.2f s", l, w, b / hz, s / hz, p / hz }')")
}
# the proxy's counters, as "p1 requests late down up" lines
proxy_stats() {
	rm -f "$dir/stats.json"
	kill -USR1 "${pids[6]}"
	for _ in $(seq 100); do [ -f "$dir/stats.json" ] && break; sleep 0.05; done
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for p in sorted(d): print(p, d[p]["requests"], d[p]["late"], d[p]["bytes_down"], d[p]["bytes_up"])' "$dir/stats.json"
}
# with BENCH_TRACE, a labelled mark in the proxy's trace (its clock)
trace_mark() { # label
	[ -n "${BENCH_TRACE:-}" ] || return 0
	echo "label $1" >> "$BENCH_TRACE"
	kill -USR2 "${pids[6]}"
	sleep 0.1
}
# differences of two proxy_stats outputs: "requests late down up" summed
stats_diff() {
	paste -d' ' <(echo "$1") <(echo "$2") |
		awk '{ r += $7 - $2; l += $8 - $3; d += $9 - $4; u += $10 - $5 } END { printf "%d %d %d %d\n", r, l, d, u }'
}
# shard bytes per provider of some objects: "p1 bytes,p2 bytes,..." for ideal;
# with "stored", only the shards stored (a shard whose upload a write gave
# up, recorded missing until a repair, is no provider's to serve)
shard_bytes() { # SQL returning object ids [stored]
	local only=""
	[ "${2:-}" = stored ] && only="AND state = 'ok'"
	psql_q -c "SELECT string_agg(p || ':' || coalesce(b, 0), ',' ORDER BY p)
	             FROM (SELECT 'p' || i AS p FROM generate_series(1, 6) i) ps
	             LEFT JOIN (SELECT provider::text AS p, sum(size) AS b FROM destor.shards
	                         WHERE object_id IN ($1) $only GROUP BY provider) s USING (p)"
}
# ideal DIRECTION FRACTION BYTES [HELD]: the smallest T with (FRACTION may be "a / b")
#   sum_p min(H_p, max(0, T - rtt_p) * bw_p) >= FRACTION * sum_p B_p
# (bisection); DIRECTION down or up; BYTES "p1:b,p2:b,..." every shard's,
# HELD the same of what each provider can serve (default BYTES).
ideal() {
	awk -v dirn="$1" -v frac="$2" -v bytes="$3" -v held="${4:-$3}" -v wan="$BENCH_WAN" 'BEGIN {
		if (split(frac, q, "/") == 2) frac = q[1] / q[2]
		np = split(wan, w, ","); split(bytes, b, ","); split(held, h, ",")
		total = 0
		for (i = 1; i <= np; i++) {
			split(w[i], f, ":"); rtt[i] = 2 * f[1] / 1000
			bw[i] = (dirn == "down" ? f[2] : f[3]) * 1e6
			split(b[i], x, ":"); total += x[2]
			split(h[i], x, ":"); B[i] = x[2]
		}
		need = frac * total
		if (need <= 0) { print 0; exit }
		lo = 0; hi = 1e6
		for (it = 0; it < 200; it++) {
			t = (lo + hi) / 2; got = 0
			for (i = 1; i <= np; i++) {
				c = (t - rtt[i]) * bw[i]; if (c < 0) c = 0; if (c > B[i]) c = B[i]; got += c
			}
			if (got >= need) hi = t; else lo = t
		}
		printf "%.3f\n", hi
	}'
}
# what the same peers (proxy and s3rver) deliver to a trivial client: curl,
# on fresh connections, fetching in parallel (at most destor's 32 requests
# at once) the whole shards an ideal reader would pick — for each object the
# k on the providers quickest for the bytes they hold (round trip plus
# bytes at bandwidth); prints seconds.  Beside the ideal, it tells what of a
# ratio is the bench's own peers (a Python proxy, a Node server) and what
# is destor's.
peers() { # SQL returning object ids, BYTES "p1:b,..." of them
	local urls=$dir/peer_urls t0 t1
	psql_q -F' ' -c "SELECT replace(s.object_id::text, '-', ''), s.shard_index, s.provider
	                   FROM destor.shards s WHERE s.object_id IN ($1) AND s.state = 'ok' ORDER BY 1, 2" |
		awk -v bytes="$2" -v wan="$BENCH_WAN" -v k="$k" -v port="$port" '
			BEGIN {
				ns = 0
				np = split(wan, w, ","); split(bytes, b, ",")
				for (i = 1; i <= np; i++) {
					split(w[i], f, ":"); split(b[i], x, ":")
					cost["p" i] = 2 * f[1] / 1000 + x[2] / (f[2] * 1e6)
				}
			}
			function flush(   i, j, t, best) {
				for (j = 0; j < k && j < ns; j++) {
					best = -1
					for (i = 0; i < ns; i++)
						if (!used[i] && (best < 0 || cost[prov[i]] < cost[prov[best]])) best = i
					used[best] = 1
					printf "url = \"http://127.0.0.1:%d/bench/ds/%s/%s.%d\"\noutput = \"/dev/null\"\n",
						port + 10 + substr(prov[best], 2), substr(obj, 1, 2), obj, idx[best]
				}
				ns = 0; delete used
			}
			$1 != obj { if (ns) flush(); obj = $1 }
			{ prov[ns] = $3; idx[ns] = $2; ns++ }
			END { if (ns) flush() }' > "$urls"
	t0=$(now)
	curl -sS --no-progress-meter --parallel --parallel-max 32 -w '%{http_code} %{size_download} %{url}\n' -K "$urls" > "$urls.out" ||
		fail "curl could not fetch the shards: $(cat "$urls.out")"
	t1=$(now)
	awk '$1 != 200 { bad = bad $0 "; " } END { if (bad != "") { print bad; exit 1 } }' "$urls.out" >&2 ||
		fail "curl could not fetch the shards (above)"
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
declare -a report
row() { # label seconds ideal compare-label compare-seconds traffic
	local r="-" c="-"
	[ "$3" != - ] && r="$(ratio "$2" "$3")x"
	[ "$5" != - ] && c="$(ratio "$2" "$5")x $4"
	report+=("$(printf "  %-40s %8.2f %8s %8s  %-22s %s" "$1" "$2" "$3" "$r" "$c" "$6")")
}
# MiB down and up per provider between two proxy_stats outputs
per_provider() {
	paste -d' ' <(echo "$1") <(echo "$2") |
		awk '{ printf "%s%s %.1f/%.1f", (NR > 1 ? ", " : ""), $1, ($9 - $4) / 1048576, ($10 - $5) / 1048576 }'
}
declare -a details
detail() { # label before after
	details+=("$(printf "  %-40s %s" "$1" "$(per_provider "$2" "$3")")")
}
traffic() { # "requests late down up"
	local r l d u
	read -r r l d u <<< "$1"
	printf "%d req, %s MiB down, %s MiB up%s" "$r" "$(mib "$d")" "$(mib "$u")" "$([ "$l" -gt 0 ] && echo ", $l late")"
}

# --- 1. COPY -------------------------------------------------------------------------------
echo
echo -n "-- generating $rows rows into heap_t and a CSV file ..."
psql_q <<SQL
SELECT setseed(0.5) \g /dev/null
INSERT INTO heap_t
  SELECT i, (random() * 1000)::int, round((random() * 100000)::numeric, 2), random(),
         (ARRAY['north', 'south', 'east', 'west', 'central'])[1 + i % 5] || ' ' || (random() * 10000)::int
    FROM generate_series(1, $rows) i;
COPY heap_t TO $(lit "$dir/rows.csv") (FORMAT csv);
SQL
echo " done"

echo "-- 1. COPY of $rows rows"
s0=$(proxy_stats)
trace_mark copy
IFS='|' read -r t_copy rss_copy _ <<< "$(timed "" "COPY destor_t FROM $(lit "$dir/rows.csv") (FORMAT csv)" stmt)"
s1=$(proxy_stats)
IFS='|' read -r t_hcopy _ _ <<< "$(timed "" "COPY heap_copy FROM $(lit "$dir/rows.csv") (FORMAT csv)" stmt)"
table_objs="SELECT object_id FROM destor.segments JOIN destor.tables USING (table_id) WHERE relid = 'destor_t'::regclass"
tb=$(shard_bytes "$table_objs")
i_copy=$(ideal up "$wq / $n" "$tb")
row "COPY destor_t ($rows rows)" "$t_copy" "$i_copy" "heap COPY" "$t_hcopy" "$(traffic "$(stats_diff "$s0" "$s1")")"
detail "COPY destor_t" "$s0" "$s1"
echo "${report[-1]}"
echo "   shard bytes per provider: $tb; destor backend peak RSS $((rss_copy / 1024)) MiB"

# the same rows in segments of seg_rows: each segment's shards go out while
# the next is encoded (issue 11, item 5), against the same COPY on the same
# servers without the proxy (what encoding alone costs)
s0=$(proxy_stats)
IFS='|' read -r t_cseg rss_cseg _ <<< "$(timed "" "COPY destor_seg FROM $(lit "$dir/rows.csv") (FORMAT csv)" stmt)"
s1=$(proxy_stats)
IFS='|' read -r t_cseg_l _ _ <<< "$(timed "" "COPY destor_seg_local FROM $(lit "$dir/rows.csv") (FORMAT csv)" stmt)"
seg_objs="SELECT object_id FROM destor.segments JOIN destor.tables USING (table_id) WHERE relid = 'destor_seg'::regclass"
nseg=$(psql_q -c "SELECT count(*) FROM ($seg_objs) s")
sb=$(shard_bytes "$seg_objs")
i_cseg=$(ideal up "$wq / $n" "$sb")
row "COPY destor_seg ($nseg segments)" "$t_cseg" "$i_cseg" "same COPY, local S3" "$t_cseg_l" "$(traffic "$(stats_diff "$s0" "$s1")")"
detail "COPY destor_seg" "$s0" "$s1"
echo "${report[-1]}"
echo "   the WAN added $(awk -v a="$t_cseg" -v b="$t_cseg_l" 'BEGIN { printf "%.2f", a - b }') s to encoding's time; destor backend peak RSS $((rss_cseg / 1024)) MiB"

# --- 2. cold full scan ---------------------------------------------------------------------
q_scan="SELECT count(*) AS n, sum(id) AS sum_id, sum(qty) AS sum_qty, sum(amount) AS sum_amount,
               max(label) AS max_label FROM %s"
psql_q -c "VACUUM ANALYZE heap_t" -c "ANALYZE destor_t" >/dev/null
echo "-- 2. cold full scan"
IFS='|' read -r t_heap _ r_heap <<< "$(timed "SELECT pg_prewarm('heap_t') \\g /dev/null" "$(printf "$q_scan" heap_t)")"
tb_held=$(shard_bytes "$table_objs" stored)
i_scan=$(ideal down "$k / $n" "$tb" "$tb_held")
runs_scan=() runs_pscan=()
for rep in $(seq "$repeat"); do
	s0=$(proxy_stats)
	c0=$(peer_cpu)
	trace_mark cold_scan
	IFS='|' read -r t_scan rss_scan r_scan <<< "$(timed "SELECT destor.cache_reset() \\g /dev/null" "$(printf "$q_scan" destor_t)")"
	[ "$rep" = 1 ] && cpu_line "cold full scan" "$t_scan" "$c0" "$(peer_cpu)"
	s1=$(proxy_stats)
	[ "$r_scan" = "$r_heap" ] || fail "full scan: destor returned $r_scan, heap $r_heap"
	[ "$rep" = 1 ] && scan_traffic=$(stats_diff "$s0" "$s1") && scan_s=("$s0" "$s1")
	runs_scan+=("$t_scan")
	[ "$repeat" = 1 ] && break
	trace_mark curl_scan
	runs_pscan+=("$(peers "$table_objs" "$tb_held")")
	echo "   run $rep: destor $t_scan s, curl ${runs_pscan[-1]} s (ideal $i_scan s)"
done
t_scan=$(median "${runs_scan[@]}")
s0=${scan_s[0]} s1=${scan_s[1]}
row "cold full scan destor_t" "$t_scan" "$i_scan" "heap (shared_buffers)" "$t_heap" "$(traffic "$scan_traffic")"
detail "cold full scan" "$s0" "$s1"
echo "${report[-1]}"
if [ "${BENCH_EXPLAIN:-0}" = 1 ]; then
	psql_q -c "SELECT destor.cache_reset()" >/dev/null
	psql_q -c "EXPLAIN (ANALYZE, VERBOSE) $(printf "$q_scan" destor_t)" | sed 's/^/     /'
fi
s0=$(proxy_stats)
c0=$(peer_cpu)
trace_mark curl_scan
t_pscan=$(peers "$table_objs" "$tb_held")
[ "$repeat" = 1 ] || t_pscan=$(median "${runs_pscan[@]}" "$t_pscan")
echo 0 > "$dir/backend_cpu"
cpu_line "  the same by curl" "$t_pscan" "$c0" "$(peer_cpu)"
s1=$(proxy_stats)
row "  its shards by curl (peers' best)" "$t_pscan" "$i_scan" "destor scan" "$t_scan" "$(traffic "$(stats_diff "$s0" "$s1")")"
echo "${report[-1]}"

# --- 3. blob import and cold export -------------------------------------------------------
echo "-- 3. a $blob_mb MiB blob"
head -c "$blob_bytes" /dev/urandom > "$dir/blob.in"
in_md5=$(md5sum < "$dir/blob.in" | cut -d' ' -f1)
s0=$(proxy_stats)
IFS='|' read -r t_imp rss_imp blob <<< "$(timed "" "SELECT destor.blob_import('wan', $(lit "$dir/blob.in"))")"
s1=$(proxy_stats)
blob=${blob//[()\"]/}
IFS='|' read -r t_loimp _ lo <<< "$(timed "" "SELECT lo_import($(lit "$dir/blob.in"))")"
lo=${lo//[()]/}
bb=$(shard_bytes "SELECT $(lit "$blob")::uuid")
i_imp=$(ideal up "$wq / $n" "$bb")
row "blob_import $blob_mb MiB" "$t_imp" "$i_imp" "lo_import" "$t_loimp" "$(traffic "$(stats_diff "$s0" "$s1")")"
detail "blob_import" "$s0" "$s1"
echo "${report[-1]}"
bb_held=$(shard_bytes "SELECT $(lit "$blob")::uuid" stored)
i_exp=$(ideal down "$k / $n" "$bb" "$bb_held")
runs_exp=() runs_pexp=()
for rep in $(seq "$repeat"); do
	s0=$(proxy_stats)
	c0=$(peer_cpu)
	trace_mark cold_export
	IFS='|' read -r t_exp rss_exp _ <<< "$(timed "SELECT destor.cache_reset() \\g /dev/null" \
		"SELECT destor.blob_export($(lit "$blob")::destor.blob, $(lit "$dir/blob.out"))")"
	[ "$rep" = 1 ] && cpu_line "cold blob_export" "$t_exp" "$c0" "$(peer_cpu)"
	s1=$(proxy_stats)
	[ "$(md5sum < "$dir/blob.out" | cut -d' ' -f1)" = "$in_md5" ] || fail "blob_export wrote other bytes than the input"
	[ "$rep" = 1 ] && exp_s=("$s0" "$s1")
	runs_exp+=("$t_exp")
	[ "$repeat" = 1 ] && break
	trace_mark curl_export
	runs_pexp+=("$(peers "SELECT $(lit "$blob")::uuid" "$bb_held")")
	echo "   run $rep: destor $t_exp s, curl ${runs_pexp[-1]} s (ideal $i_exp s)"
done
t_exp=$(median "${runs_exp[@]}")
s0=${exp_s[0]} s1=${exp_s[1]}
IFS='|' read -r t_loexp _ _ <<< "$(timed "" "SELECT lo_export($lo, $(lit "$dir/lo.out"))")"
row "cold blob_export $blob_mb MiB" "$t_exp" "$i_exp" "lo_export" "$t_loexp" "$(traffic "$(stats_diff "$s0" "$s1")")"
detail "cold blob_export" "$s0" "$s1"
echo "${report[-1]}"
s0=$(proxy_stats)
c0=$(peer_cpu)
trace_mark curl_export
t_pexp=$(peers "SELECT $(lit "$blob")::uuid" "$bb_held")
[ "$repeat" = 1 ] || t_pexp=$(median "${runs_pexp[@]}" "$t_pexp")
echo 0 > "$dir/backend_cpu"
cpu_line "  the same by curl" "$t_pexp" "$c0" "$(peer_cpu)"
s1=$(proxy_stats)
row "  its shards by curl (peers' best)" "$t_pexp" "$i_exp" "destor export" "$t_exp" "$(traffic "$(stats_diff "$s0" "$s1")")"
echo "${report[-1]}"

# --- 4. random 8 KiB reads ------------------------------------------------------------------
echo "-- 4. $nreads blob_read() calls of 8 KiB at random offsets"
offs="SELECT i, (random() * ($blob_bytes - 8192))::bigint AS off FROM generate_series(1, $nreads) i"
psql_q -c "SELECT setseed(0.25)" -c "CREATE TABLE offs AS $offs" >/dev/null
# the blocks (64 KiB) each call touches; a call's ideal is one round trip
# plus the shards of the blocks no earlier call touched (those are in the
# cache by then): n1 calls bring one new block, n2 two, the rest none
read -r block_size n1 n2 <<< "$(psql_q -F' ' -c "
  WITH bs AS (SELECT block_size FROM destor.objects WHERE object_id = $(lit "$blob")::uuid),
       blk AS (SELECT i, b FROM offs, bs, generate_series(off / bs.block_size, (off + 8191) / bs.block_size) b),
       first AS (SELECT b, min(i) AS i FROM blk GROUP BY b),
       calls AS (SELECT i, count(*) AS nb FROM first GROUP BY i)
  SELECT (SELECT block_size FROM bs), count(*) FILTER (WHERE nb = 1), count(*) FILTER (WHERE nb = 2) FROM calls")"
one_block=$(awk -v bs="$block_size" -v k="$k" 'BEGIN { for (i = 1; i <= 6; i++) printf "%sp%d:%d", (i > 1 ? "," : ""), i, bs / k }')
two_block=$(awk -v bs="$block_size" -v k="$k" 'BEGIN { for (i = 1; i <= 6; i++) printf "%sp%d:%d", (i > 1 ? "," : ""), i, 2 * bs / k }')
i1=$(ideal down "$k / $n" "$one_block")
i2=$(ideal down "$k / $n" "$two_block")
i_reads=$(awk -v a="$i1" -v b="$i2" -v n1="$n1" -v n2="$n2" 'BEGIN { printf "%.3f", n1 * a + n2 * b }')
q_reads="SELECT sum(length(destor.blob_read($(lit "$blob")::destor.blob, off, 8192))) AS bytes,
                md5(string_agg(destor.blob_read($(lit "$blob")::destor.blob, off, 8192), ''::bytea ORDER BY i)) AS md5
           FROM offs"
q_lo="SELECT sum(length(lo_get($lo, off, 8192))) AS bytes, md5(string_agg(lo_get($lo, off, 8192), ''::bytea ORDER BY i)) AS md5 FROM offs"
# the timed statements only add up lengths; the bytes are compared once apart
q_rt="SELECT sum(length(destor.blob_read($(lit "$blob")::destor.blob, off, 8192))) FROM offs"
q_lt="SELECT sum(length(lo_get($lo, off, 8192))) FROM offs"
psql_q -c "SELECT pg_prewarm('pg_largeobject')" >/dev/null
s0=$(proxy_stats)
trace_mark cold_reads
IFS='|' read -r t_rcold _ _ <<< "$(timed "SELECT destor.cache_reset() \\g /dev/null" "$q_rt")"
s1=$(proxy_stats)
IFS='|' read -r t_rwarm rss_rwarm _ <<< "$(timed "" "$q_rt")"
s2=$(proxy_stats)
IFS='|' read -r t_lo _ _ <<< "$(timed "" "$q_lt")"
IFS='|' read -r t_rwarm2 _ _ <<< "$(timed "" "$q_rt")"
IFS='|' read -r t_lo2 _ _ <<< "$(timed "" "$q_lt")"
awk -v a="$t_rwarm2" -v b="$t_rwarm" 'BEGIN { exit !(a < b) }' && t_rwarm=$t_rwarm2
awk -v a="$t_lo2" -v b="$t_lo" 'BEGIN { exit !(a < b) }' && t_lo=$t_lo2
[ "$(psql_q -c "$q_reads")" = "$(psql_q -c "$q_lo")" ] || fail "blob_read returned other bytes than lo_get"
row "$nreads x 8 KiB blob_read, cold" "$t_rcold" "$i_reads" "lo_get" "$t_lo" "$(traffic "$(stats_diff "$s0" "$s1")")"
detail "blob_read, cold" "$s0" "$s1"
echo "${report[-1]}"
row "$nreads x 8 KiB blob_read, warm" "$t_rwarm" - "lo_get" "$t_lo" "$(traffic "$(stats_diff "$s1" "$s2")")"
echo "${report[-1]}"

# --- 5. cold full scan with late requests -----------------------------------------------------
if [ "$late_pct" -gt 0 ]; then
	echo "-- 5. cold full scan, $late_pct% of requests $late_ms ms late"
	awk -v p="$late_pct" -v ms="$late_ms" 'BEGIN { print p / 100, ms }' > "$dir/late"
	s0=$(proxy_stats)
	trace_mark late_scan
	IFS='|' read -r t_late _ r_late <<< "$(timed "SELECT destor.cache_reset() \\g /dev/null" "$(printf "$q_scan" destor_t)")"
	s1=$(proxy_stats)
	echo "0 0" > "$dir/late"
	[ "$r_late" = "$r_heap" ] || fail "full scan with late requests: destor returned $r_late, heap $r_heap"
	row "cold full scan, $late_pct% ${late_ms}ms late" "$t_late" "$i_scan" "healthy scan" "$t_scan" "$(traffic "$(stats_diff "$s0" "$s1")")"
	detail "cold full scan, late requests" "$s0" "$s1"
	echo "${report[-1]}"
fi

# --- 6. cold full scan on local S3, against the heap's cold scan --------------------------------
# The same six servers without the proxy (their endpoints changed), the
# cluster restarted before each scan: shared_buffers, destor's cache and
# every provider's read times empty.  The OS page cache is not dropped
# (the bench runs unprivileged): the heap's file and the servers' files
# may both be in it.
echo "-- 6. cold full scan on local S3 (no proxy) and the heap's, each after a restart"
sql=""
for i in 1 2 3 4 5 6; do
	sql+="ALTER SERVER p$i OPTIONS (SET endpoint 'http://127.0.0.1:$((port + i))');"
done
psql_q -c "$sql" >/dev/null
restart() {
	pg_ctl -D "$dir/pgdata" -l "$dir/server.log" -w restart >/dev/null ||
		{ cat "$dir/server.log" >&2; fail "could not restart the cluster"; }
}
t_hcold=""
t_lcold=""
for _ in 1 2 3; do
	restart
	IFS='|' read -r t _ r <<< "$(timed "" "$(printf "$q_scan" heap_t)")"
	[ "$r" = "$r_heap" ] || fail "cold heap scan returned $r, before $r_heap"
	{ [ -z "$t_hcold" ] || awk -v a="$t" -v b="$t_hcold" 'BEGIN { exit !(a < b) }'; } && t_hcold=$t
	restart
	IFS='|' read -r t _ r <<< "$(timed "" "$(printf "$q_scan" destor_t)")"
	[ "$r" = "$r_heap" ] || fail "cold scan on local S3: destor returned $r, heap $r_heap"
	{ [ -z "$t_lcold" ] || awk -v a="$t" -v b="$t_lcold" 'BEGIN { exit !(a < b) }'; } && t_lcold=$t
done
row "cold full scan, local S3 (best of 3)" "$t_lcold" - "heap cold (restarted)" "$t_hcold" "(no proxy)"
echo "${report[-1]}"

# --- report ------------------------------------------------------------------------------------
echo
echo "== results (seconds; ideal as in the header of test/bench/wan_bench.sh; ratio = time / ideal;"
echo "   compared = time / the other's time in this run; traffic through the proxy)"
printf "  %-40s %8s %8s %8s  %-22s %s\n" work time ideal ratio compared traffic
printf '%s\n' "${report[@]}"
echo
echo "== MiB down/up per provider (p5: far, p6: slow; the ideal reader leans on the fast ones)"
printf '%s\n' "${details[@]}"
echo
echo "== CPU while it ran (2 CPUs shared by all of these; curl's own not counted)"
printf '%s\n' "${cpu_lines[@]}"
echo
echo "   peak backend RSS (shared pages touched included): COPY $((rss_copy / 1024)) MiB, segmented COPY $((rss_cseg / 1024)) MiB, cold scan $((rss_scan / 1024)) MiB,"
echo "   blob_import $((rss_imp / 1024)) MiB, blob_export $((rss_exp / 1024)) MiB, warm reads $((rss_rwarm / 1024)) MiB"
echo "   ideal of one cold 8 KiB read: ${i1}s (one new $block_size-byte block: $n1 reads), ${i2}s (two: $n2 reads);"
echo "   the other $((nreads - n1 - n2)) reads find their blocks in the cache (ideal 0)"
echo "   load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
