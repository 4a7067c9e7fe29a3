#!/bin/bash
# The suites that need a PostgreSQL cluster; run as an unprivileged user.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
. scripts/pgenv.sh
# the expected outputs assume UTF-8 and C.UTF-8 collation (the clusters'
# initdb, pg_regress's databases and psql's column widths follow this)
export LC_ALL=C.UTF-8

# A fresh master key and a temp-instance configuration for pg_regress.
mkdir -p tmp_keys
umask 077
openssl rand -hex 32 > tmp_keys/master.key
umask 022
mkdir -p test/regress
# autovacuum off: its snapshots would (rightly) defer the deletion of
# shards after commit, which the suite counts
cat > test/regress/destor.conf <<CONF
shared_preload_libraries = 'destor'
autovacuum = off
# the failure-model tests must reach the providers; test/tap/t/005_cache.pl tests the cache
destor.cache_size = 0
destor.master_key_file = '$top/tmp_keys/master.key'
CONF

# file providers for the regression suite
rm -rf tmp_providers
mkdir -p tmp_providers
export DESTOR_REGRESS_DIR="$top/tmp_providers"

# DESTOR_SUITES (default "regress tap pgregress") picks suites; REGRESS and
# PROVE_TESTS pick files within them, for a quicker run while developing.
suites=" ${DESTOR_SUITES:-regress tap pgregress} "

pgregress() {
  # PostgreSQL's own regression SQL, heap vs destor tables (PGREGRESS_LIST:
  # subset.txt in make test, full.txt in make check-pgregress)
  bash test/pgregress/run.sh "${PGREGRESS_LIST:-subset.txt}"
}
pg_list=${PGREGRESS_LIST:-subset.txt}

# The differential runs beside pg_regress: each keeps about one CPU busy,
# while the TAP files after them run three at a time and use both (beside
# those, it made them slower by more than its own time).
pg_pid=""
if [[ $suites == *" regress "* && $suites == *" tap "* && $suites == *" pgregress "* && -z ${PROVE_TESTS:-} ]]; then
  echo "== PostgreSQL regression SQL, heap vs destor ($pg_list), beside pg_regress ($(date +%T))"
  pgregress > pgregress.log 2>&1 &
  pg_pid=$!
fi
pgregress_wait() {
  [ -n "$pg_pid" ] || return 0
  local pg_rc=0
  wait "$pg_pid" || pg_rc=$?
  pg_pid=""
  echo "== PostgreSQL regression SQL, heap vs destor ($pg_list): ended ($(date +%T)), rc $pg_rc"
  cat pgregress.log
  return $pg_rc
}

# installcheck on a temporary instance of its own: pg_regress, then the
# isolation specs (ISOLATION="" skips them); $1 names the instance, its
# output folder tmp_regress_$1 and its file providers tmp_providers_$1.
regress_instance() {
  local n=$1
  shift
  rm -rf "tmp_regress_$n" "tmp_providers_$n"
  mkdir -p "tmp_regress_$n" "tmp_providers_$n"
  DESTOR_REGRESS_DIR="$top/tmp_providers_$n" make -s PG_CONFIG="$PG_CONFIG" "$@" \
    EXTRA_REGRESS_OPTS="--temp-instance=tmp_check_$n --temp-config=test/regress/destor.conf --outputdir=tmp_regress_$n" \
    installcheck
}
regress_failed() {
  cat tmp_regress_*/regression.diffs 2>/dev/null | head -300
  pgregress_wait || true
  exit 1
}

if [[ $suites == *" regress "* ]]; then
  if [ -n "${REGRESS+set}${ISOLATION+set}" ]; then
    echo "== pg_regress ($(date +%T))"
    regress_instance 1 ${REGRESS:+REGRESS="$REGRESS"} ${ISOLATION+ISOLATION="$ISOLATION"} || regress_failed
  else
    # Two instances at once, each about half of the time (every file runs
    # alone or after any others): the table files and the isolation specs,
    # and the rest.  pg_regress keeps about one core busy, and the second
    # core was idle once the differential beside it ended.
    echo "== pg_regress and the isolation specs, two instances ($(date +%T))"
    all=$(make -s -f Makefile PG_CONFIG="$PG_CONFIG" print-regress)
    tables=$(tr ' ' '\n' <<<"$all" | grep -E '^table' | xargs)
    rest=$(tr ' ' '\n' <<<"$all" | grep -vE '^table' | xargs)
    regress_instance 1 REGRESS="$tables" > tmp_regress_1.log 2>&1 &
    tables_pid=$!
    regress_instance 2 REGRESS="$rest" ISOLATION= > tmp_regress_2.log 2>&1 &
    rest_pid=$!
    rc=0
    wait "$tables_pid" || rc=1
    wait "$rest_pid" || rc=1
    cat tmp_regress_1.log tmp_regress_2.log
    [ $rc = 0 ] || regress_failed
  fi
fi

if [ -n "$pg_pid" ]; then
  rc=0
  pgregress_wait || rc=1
  echo "== TAP, three files at a time ($(date +%T))"
  make -s PG_CONFIG="$PG_CONFIG" TAP_GROUP=parallel tapcheck || rc=1
  echo "== TAP, the timing-sensitive files alone ($(date +%T))"
  make -s PG_CONFIG="$PG_CONFIG" TAP_GROUP=serial tapcheck || rc=1
  exit $rc
fi

if [[ $suites == *" tap "* ]]; then
  echo "== TAP ($(date +%T))"
  make -s PG_CONFIG="$PG_CONFIG" ${PROVE_TESTS:+PROVE_TESTS="$PROVE_TESTS"} tapcheck
fi

if [[ $suites == *" pgregress "* ]]; then
  echo "== PostgreSQL regression SQL, heap vs destor ($pg_list) ($(date +%T))"
  pgregress
fi
