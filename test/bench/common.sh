# Shared by the benchmark scripts, sourced by their outer part (before the
# hand-off to an unprivileged user): find PostgreSQL, refuse a missing
# install, warn about a stale one, name the revision being measured, and
# check the settings;
#
#   bench_find_postgres NAME    NAME: the calling script, for messages
#   bench_positive VAR DEFAULT  refuse a setting that is not a positive number
#   bench_perf_mode             refuse a BENCH_PERF other than 0, 1 or auto
#   bench_hand_off NAME         (below)
#
# bench_find_postgres sets and exports PG_CONFIG, PATH (PostgreSQL's bindir
# first) and BENCH_REV; expects $here, the calling script's folder.
#
# And by their worker part (bench_hand_off puts a copy beside the worker):
#
#   bench_worker NAME PORT      dir, port (BENCH_PORT or PORT), PATH, and a
#                               cleanup at exit (bench_cleanup)
#   psql_q, lit, now, fail      run SQL on the cluster, quote a literal, the
#                               time in seconds, fail with a message
#   bench_start_cluster         a master key, initdb and a started cluster
#   bench_file_pool_sql         SQL for file providers p1..p6 and pool archive
#   bench_best_sql, bench_best  best_seconds(q, n) in SQL; the best of 5 runs

bench_find_postgres() {
	local name=$1 top installed
	bench_name=$name
	if [ -f "$here/../../scripts/pgenv.sh" ]; then
		. "$here/../../scripts/pgenv.sh"
	else
		PG_CONFIG=${PG_CONFIG:-$(command -v pg_config)}
		export PG_CONFIG PATH="$("$PG_CONFIG" --bindir):$PATH"
	fi
	top=$(cd "$here/../.." && pwd)
	# a stale install would benchmark old code; say so rather than rebuild
	# behind the user's back
	installed="$("$PG_CONFIG" --pkglibdir)/destor.so"
	if [ ! -f "$installed" ]; then
		echo "$name: destor is not installed ($installed missing); run make install" >&2
		exit 1
	fi
	if [ -f "$top/destor.so" ] && ! cmp -s "$top/destor.so" "$installed"; then
		echo "$name: WARNING: $installed differs from $top/destor.so (run make install?)" >&2
	fi
	BENCH_REV=$(git -c safe.directory="$top" -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
	export BENCH_REV
}

# The settings the scripts take from the environment, checked before the
# hand-off so a typo fails at once, not after a cluster was made.
#   bench_positive BENCH_ROWS 4000000   $BENCH_ROWS, or the default when
#                                       unset or empty: a whole number above 0
bench_positive() {
	local var=$1 value=${!1:-$2}
	case $value in *[!0-9]* | "" | 0) echo "${bench_name:-bench}: $var must be a positive number" >&2; exit 1 ;; esac
}

bench_perf_mode() {
	case ${BENCH_PERF:-auto} in 0 | 1 | auto) ;; *) echo "${bench_name:-bench}: BENCH_PERF must be 0, 1 or auto" >&2; exit 1 ;; esac
}

# Hand the run to the worker part of the calling script ($0), which runs
# with BENCH_WORKER_DIR set to a fresh temporary folder: directly for an
# ordinary user; for root (initdb refuses root) as BENCH_USER (default
# destor_bench, created if missing), from a copy of the script inside that
# folder, so the checkout's parent folders need not be opened up to it.
# Every BENCH_* variable of the environment goes along.  Does not return.
#
#   bench_hand_off NAME    NAME: the calling script, e.g. blob_bench
bench_hand_off() {
	local name=$1 user rc=0 vars=()
	dir=$(mktemp -d "${TMPDIR:-/tmp}/destor-bench.XXXXXX")
	if [ "$(id -u)" != 0 ]; then
		BENCH_WORKER_DIR=$dir exec bash "$0"
	fi
	user=${BENCH_USER:-destor_bench}
	id "$user" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash "$user"
	cp "$0" "$dir/$name.sh"
	cp "$here/common.sh" "$dir/common.sh"
	chown -R "$user" "$dir"
	bench_user=$user
	cleanup_root() {
		# the worker cleans up after itself; this is for a worker that died hard
		if [ -f "$dir/pgdata/postmaster.pid" ]; then
			runuser -u "$bench_user" -- env PATH="$PATH" pg_ctl -D "$dir/pgdata" -m immediate stop >/dev/null 2>&1 || true
		fi
		rm -rf "$dir"
	}
	trap cleanup_root EXIT
	trap 'exit 130' INT TERM HUP
	while IFS= read -r v; do
		vars+=("$v=${!v}")
	done < <(compgen -e | grep '^BENCH_' | grep -v '^BENCH_WORKER_DIR$')
	runuser -u "$user" -- env PATH="$PATH" PG_CONFIG="$PG_CONFIG" "${vars[@]}" \
		BENCH_WORKER_DIR="$dir" bash "$dir/$name.sh" || rc=$?
	exit "$rc"
}

# ---------------------------------------------------------------------------
# The worker part: runs as the cluster's owner, in $BENCH_WORKER_DIR.
# ---------------------------------------------------------------------------

# Start the worker part of script NAME: sets dir (the temporary folder, in
# which the cluster lives as pgdata), port (BENCH_PORT, else PORT) and PATH,
# and stops and removes everything at exit.
#   bench_worker tier_bench 54341
bench_worker() {
	bench_name=$1
	dir=$BENCH_WORKER_DIR
	port=${BENCH_PORT:-$2}
	PATH="$("${PG_CONFIG:-pg_config}" --bindir):$PATH"
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM HUP
}

# Kill the processes in the array pids (when the script keeps one), stop the
# cluster and remove the folder.
bench_cleanup() {
	local p
	for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -f "$dir/pgdata/postmaster.pid" ]; then
		pg_ctl -D "$dir/pgdata" -m immediate stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}

psql_q() { psql -X -q -At -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
# a SQL string literal (the paths come from mktemp, but be safe anyway)
lit() { printf "'%s'" "${1//\'/\'\'}"; }
now() { date +%s.%N; }
fail() { echo "$bench_name: FAILED: $*" >&2; exit 1; }

# A fresh master key in $dir/key, a cluster in $dir/pgdata with the settings
# every benchmark shares (its own port and socket, destor preloaded with that
# key, fsync on: durability is part of what is measured) and the caller's
# own lines read from standard input, started.
#   bench_start_cluster <<CONF
#   shared_buffers = 1GB
#   CONF
bench_start_cluster() {
	umask 077
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/key"
	umask 022
	initdb -D "$dir/pgdata" -A trust -U postgres >/dev/null
	{
		cat <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
fsync = on
shared_preload_libraries = 'destor'
destor.master_key_file = '$dir/key'
CONF
		cat
	} >> "$dir/pgdata/postgresql.conf"
	pg_ctl -D "$dir/pgdata" -l "$dir/server.log" -w start >/dev/null ||
		{ cat "$dir/server.log" >&2; fail "could not start the cluster"; }
}

# SQL declaring six file providers p1..p6 in $dir/providers (created here)
# and, unless the first argument is "providers-only", the 4+2 pool archive
# on them that most benchmarks measure.
bench_file_pool_sql() {
	local sql="" i
	for i in 1 2 3 4 5 6; do
		mkdir -p "$dir/providers/p$i"
		sql+="CREATE SERVER p$i FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path $(lit "$dir/providers/p$i"));"
	done
	[ "${1:-}" = providers-only ] ||
		sql+="CREATE SERVER archive FOREIGN DATA WRAPPER destor
        OPTIONS (providers 'p1,p2,p3,p4,p5,p6', data_shards '4', parity_shards '2');"
	printf '%s' "$sql"
}

# SQL for best_seconds(q text, n int): the best of n runs of query q, timed
# in the server (no connection set-up in it), in seconds.
bench_best_sql() {
	cat <<'SQL'
CREATE FUNCTION best_seconds(q text, n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t timestamptz; b float8; d float8; r text;
BEGIN
  FOR i IN 1 .. n LOOP
    t := clock_timestamp();
    EXECUTE q INTO r;
    d := extract(epoch FROM clock_timestamp() - t);
    IF b IS NULL OR d < b THEN b := d; END IF;
  END LOOP;
  RETURN b;
END $$;
SQL
}

# The best of 5 runs of a query (bench_best_sql installed): seconds; the
# query's result goes to $dir/last.
bench_best() {
	psql_q -c "$1" > "$dir/last"
	printf '%.6f' "$(psql_q -c "SELECT best_seconds($(lit "$1"), 5)")"
}
