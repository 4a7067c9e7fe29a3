#!/bin/bash
# Fetch PostgreSQL 15's regression SQL (src/test/regress/{sql,data}) from
# Debian's source package into a cache folder, once.  Run as root on a fresh
# Debian 12 machine (adds a deb-src entry if apt has none); as another user
# it works when apt already has deb-src entries.
#   fetch_sources.sh [CACHE_DIR]   prints the regress folder's path
set -euo pipefail
# pinned: the version the accepted differences were reviewed with
PIN_VERSION=15.18-0+deb12u1
PIN_UPSTREAM=15.18
PIN_SHA256=11df0df97fe3ea4ba9a791faaf39cee1d2fe571e78885b5b55d8517d27c323b4
cache=${1:-${DESTOR_PGREGRESS_CACHE:-/var/cache/destor-pgregress}}
dest="$cache/postgresql-$PIN_UPSTREAM/src/test/regress"
if [ -f "$dest/sql/test_setup.sql" ] && [ -f "$dest/data/tenk.data" ]; then
  echo "$dest"; exit 0
fi
mkdir -p "$cache"
if ! apt-cache showsrc postgresql-15 2>/dev/null | grep -q '^Version:'; then
  if [ "$(id -u)" != 0 ]; then
    echo "destor pgregress: apt has no deb-src entries; run as root once: bash $0 $cache" >&2
    exit 1
  fi
  cat > /etc/apt/sources.list.d/destor-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq >&2
fi
dl="$cache/download"
rm -rf "$dl"; mkdir -p "$dl"
if ! (cd "$dl" && apt-get source -qq --download-only "postgresql-15=$PIN_VERSION" >&2 2>/dev/null); then
  echo "destor pgregress: WARNING: postgresql-15 $PIN_VERSION is no longer in the archive; using the newest one" >&2
  (cd "$dl" && apt-get source -qq --download-only postgresql-15 >&2)
fi
orig=$(ls "$dl"/postgresql-15_*.orig.tar.* | head -1)
up=$(basename "$orig" | sed -E 's/^postgresql-15_(.*)\.orig\.tar\..*$/\1/')
if [ "$up" = "$PIN_UPSTREAM" ]; then
  echo "$PIN_SHA256  $orig" | sha256sum -c --quiet - >&2
fi
tar -C "$cache" -xaf "$orig" --wildcards "postgresql-$up/src/test/regress/sql/*" \
  "postgresql-$up/src/test/regress/data/*" "postgresql-$up/src/test/regress/parallel_schedule"
rm -rf "$dl"
dest="$cache/postgresql-$up/src/test/regress"
chmod -R a+rX "$cache"
echo "$dest"
