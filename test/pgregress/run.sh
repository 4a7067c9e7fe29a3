#!/bin/bash
# Run the differential test.  Usage: run.sh FILES_LIST [harness options]
# Needs: destor installed in the PostgreSQL of pg_config, the regress sources
# in $DESTOR_PGREGRESS_SRC (else fetched by fetch_sources.sh), a non-root user.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
list=$1; shift
. "$top/scripts/pgenv.sh"
src=${DESTOR_PGREGRESS_SRC:-}
if [ -z "$src" ]; then
  src=$(bash "$here/fetch_sources.sh")
fi
work=${DESTOR_PGREGRESS_WORK:-$top/tmp_pgregress}
mkdir -p "$top/tmp_keys"
key="$top/tmp_keys/pgregress.key"
( umask 077; openssl rand -hex 32 > "$key" )
rc=0
python3 "$here/pgregress.py" --src "$src" --files "$here/$list" --work "$work" \
  --key-file "$key" --report "$top/pgregress.report" --write-new "$top/pgregress.new" "$@" || rc=$?
[ $rc = 0 ] && rm -rf "$work"
exit $rc
