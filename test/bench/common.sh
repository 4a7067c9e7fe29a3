# Shared by the benchmark scripts (sourced by their outer part, before the
# hand-off to an unprivileged user): find PostgreSQL, refuse a missing
# install, warn about a stale one, and name the revision being measured.
#
#   bench_find_postgres NAME    NAME: the calling script, for messages
#   bench_hand_off NAME         (below)
#
# Sets and exports PG_CONFIG, PATH (PostgreSQL's bindir first) and
# BENCH_REV; expects $here, the calling script's folder.

bench_find_postgres() {
	local name=$1 top installed
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
