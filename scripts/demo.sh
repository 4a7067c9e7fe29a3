#!/bin/bash
# make demo: destor on its embedded default — six local `file` providers,
# a 4+2 pool, no network.  Builds and installs destor, starts a throwaway
# cluster in ./demo/, stores blobs, shows where the shards went, destroys
# two providers and reads everything back.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

bash scripts/deps.sh
. scripts/pgenv.sh
make -s all 2>&1 | (grep -E 'warning|error' || true)
if [ -w "$("$PG_CONFIG" --pkglibdir)" ]; then make -s install >/dev/null; else sudo make -s install >/dev/null; fi

if [ "$(id -u)" = 0 ]; then
  user=destor_demo
  id "$user" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash "$user"
  # the cluster lives in a folder of the checkout, owned by the demo user;
  # every folder above it must be traversable for that user
  mkdir -p "$top/demo"; chown "$user" "$top/demo"
  d="$top"; while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
  exec runuser -u "$user" -- env PATH="$PATH" PG_CONFIG="$PG_CONFIG" bash "$top/scripts/demo_run.sh" "$top/demo"
fi
exec bash scripts/demo_run.sh "$top/demo"
