#!/bin/bash
# make test, as root: build the Debian package, install it with dpkg in place
# of the `make install` files, and check that it works on its own: its file
# list, then CREATE EXTENSION and a blob round trip on a throwaway cluster.
# Afterwards the package is removed and `make install` put back, so the other
# suites test this checkout's build.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pgenv.sh
user=${DESTOR_TEST_USER:-destor_test}
pass=0; fail=0
check() { if eval "$2"; then echo "ok - $1"; pass=$((pass+1)); else echo "not ok - $1"; fail=$((fail+1)); fi; }

bash scripts/deb_build.sh >/dev/null
deb=$(ls -1 dist/postgresql-15-destor_*.deb | tail -1)

# what make install put there goes, so only the package can satisfy the test
pkglib=$("$PG_CONFIG" --pkglibdir); share=$("$PG_CONFIG" --sharedir)
rm -f "$pkglib/destor.so" "$share"/extension/destor.control "$share"/extension/destor--*.sql
rm -rf "$pkglib/bitcode/destor" "$pkglib/bitcode/destor.index.bc"
dpkg -i "$deb" >/dev/null
check "package installs the library" "dpkg -L postgresql-15-destor | grep -q '/destor.so$'"
check "package installs the control file" "dpkg -L postgresql-15-destor | grep -q '/extension/destor.control$'"
check "package files are intact" "dpkg --verify postgresql-15-destor"

work=$(mktemp -d /tmp/destor-deb-test.XXXXXX)
chown "$user" "$work"
cleanup() {
  runuser -u "$user" -- "$PG_BINDIR/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
runuser -u "$user" -- bash -c "
  set -e
  cd '$work'
  umask 077; openssl rand -hex 32 > master.key; umask 022
  '$PG_BINDIR/initdb' -D data -A trust >/dev/null
  cat >> data/postgresql.conf <<CONF
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'destor'
destor.master_key_file = '$work/master.key'
CONF
  mkdir p1 p2 p3
  '$PG_BINDIR/pg_ctl' -D data -l log -w start >/dev/null"
out=$(runuser -u "$user" -- "$PG_BINDIR/psql" -h "$work" -d postgres -X -qAt -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION destor;
CREATE SERVER p1 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$work/p1');
CREATE SERVER p2 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$work/p2');
CREATE SERVER p3 FOREIGN DATA WRAPPER destor_provider OPTIONS (type 'file', path '$work/p3');
CREATE SERVER pool FOREIGN DATA WRAPPER destor
  OPTIONS (providers 'p1,p2,p3', data_shards '2', parity_shards '1');
CREATE TEMP TABLE src AS SELECT convert_to(repeat(md5(g::text), 20000), 'UTF8') AS b
  FROM generate_series(1, 3) g;
SELECT bool_and(destor.blob_get(destor.blob_put('pool', b)) = b) FROM src;
SELECT extversion FROM pg_extension WHERE extname = 'destor';
SQL
) || true
roundtrip=$(echo "$out" | head -1); version=$(echo "$out" | tail -1)
want=$(sed -n "s/^default_version = '\(.*\)'/\1/p" destor.control)
check "CREATE EXTENSION and a blob round trip from the package" '[ "$roundtrip" = t ]'
check "the package's extension version ($version) is the control file's ($want)" '[ "$version" = "$want" ]'

dpkg -r postgresql-15-destor >/dev/null
# back to the build installed before (test.sh's flags, if it ran this)
make -s PG_CONFIG="$PG_CONFIG" ${DESTOR_BUILD_FLAGS:-} install >/dev/null
echo "deb: $pass passed, $fail failed"
[ "$fail" = 0 ]
