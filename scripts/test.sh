#!/bin/bash
# make test: build, install, and run every suite (unit, pg_regress, TAP).
# As root (CI), the PostgreSQL clusters run as an unprivileged user in a
# copy of the tree, since initdb refuses to run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

echo "== dependencies ($(date +%T))"
bash scripts/deps.sh --test
. scripts/pgenv.sh

echo "== build ($(date +%T))"
# without the LLVM bitcode for JIT inlining, which the tests do not need
# (the package built below has it): it was a third of the build's time
export DESTOR_BUILD_FLAGS="with_llvm=no"
make -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" $DESTOR_BUILD_FLAGS all 2>&1 | (grep -E 'warning|error' || true)
if [ -w "$("$PG_CONFIG" --pkglibdir)" ]; then
  make -s PG_CONFIG="$PG_CONFIG" $DESTOR_BUILD_FLAGS install >/dev/null
else
  sudo make -s PG_CONFIG="$PG_CONFIG" $DESTOR_BUILD_FLAGS install >/dev/null
fi

suites=" ${DESTOR_SUITES:-unit deb regress tap pgregress} "
if [[ $suites == *" unit "* ]]; then
  echo "== unit tests ($(date +%T))"
  make -s unitcheck
fi

if [ "$(id -u)" = 0 ]; then
  user=destor_test
  id "$user" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash "$user"
  if [[ $suites == *" deb "* ]]; then
    echo "== Debian package ($(date +%T))"
    DESTOR_TEST_USER=$user bash scripts/deb_test.sh
  fi
  work=$(mktemp -d /tmp/destor-test.XXXXXX)
  tar -C "$top" --exclude=.git --exclude='tmp_*' --exclude=results -cf - . | tar -C "$work" -xf -
  # the shared test data sets (../shared/testdata beside the checkout) go along
  if [ -d "$top/../shared/testdata" ]; then
    cp -r "$top/../shared/testdata" "$work/testdata"
  fi
  chown -R "$user" "$work"
  chmod 755 "$work"
  rc=0
  testdata=""
  [ -d "$work/testdata" ] && testdata="$work/testdata"
  # PostgreSQL's regression SQL (Debian source package), fetched as root once
  pgregress_src=""
  if [[ $suites == *" pgregress "* ]]; then
    pgregress_src=$(bash "$top/test/pgregress/fetch_sources.sh")
  fi
  # the suites' settings go along: DESTOR_* (seeds, sizes, suites) and the file pickers
  passed=()
  while IFS= read -r -d '' kv; do passed+=("$kv"); done < <(
    env -0 | grep -zE '^(DESTOR_[A-Z_]+|REGRESS|ISOLATION|PROVE_TESTS|PGREGRESS_LIST)=' || true)
  runuser -u "$user" -- env PG_CONFIG="$PG_CONFIG" PATH="$PATH" "${passed[@]}" DESTOR_TESTDATA="$testdata" \
    ${pgregress_src:+DESTOR_PGREGRESS_SRC="$pgregress_src"} \
    bash "$work/scripts/test_suites.sh" || rc=$?
  # keep logs of a failed run where the checkout is
  if [ $rc != 0 ]; then
    rm -rf "$top/test-logs"; mkdir -p "$top/test-logs"
    cp -r "$work"/tmp_regress_* "$work"/test/tap/tmp_check "$top/test-logs/" 2>/dev/null || true
    for d in "$work"/tmp_check_*/log; do
      n=${d%/log}
      cp -r "$d" "$top/test-logs/${n##*/}_log" 2>/dev/null || true
    done
    cp -r "$work"/pgregress.* "$work"/tmp_pgregress/postgres.log "$top/test-logs/" 2>/dev/null || true
    echo "logs of the failed run: $top/test-logs"
    # What each failed TAP check printed, last: a CI page that keeps only
    # the end of the output still says why (at most 12 lines a check).
    for log in "$work"/test/tap/tmp_check/log/regress_log_*; do
      [ -f "$log" ] || continue
      awk -v f="${log##*/regress_log_}" '
        /\) not ok [0-9]/ { n = 12; print "== " f ": " substr($0, index($0, "not ok")); next }
        /\) (ok|not ok) [0-9]/ { n = 0 }
        n > 0 { n--; sub(/^\[[^]]*\]\([^)]*\) /, ""); print "   " $0 }' "$log"
    done | head -60
  fi
  rm -rf "$work"
  echo "== done ($(date +%T)), rc $rc"
  exit $rc
else
  exec bash scripts/test_suites.sh
fi
