# Shared by the benchmark scripts (sourced by their outer part, before the
# hand-off to an unprivileged user): find PostgreSQL, refuse a missing
# install, warn about a stale one, and name the revision being measured.
#
#   bench_find_postgres NAME    NAME: the calling script, for messages
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
