#!/bin/bash
# make deb: build the Debian package postgresql-15-destor into ./dist/ with
# postgresql-common's tooling (debian/), from a copy of the tree so the
# checkout's own build is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

bash scripts/deps.sh --deb

work=$(mktemp -d /tmp/destor-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/destor"
tar -C "$top" --exclude=.git --exclude='tmp_*' --exclude=results --exclude=node_modules \
    --exclude='*.o' --exclude='*.so' --exclude='*.bc' --exclude=dist --exclude=demo \
    --exclude=test-logs -cf - . | tar -C "$work/destor" -xf -
(cd "$work/destor" && dpkg-buildpackage -us -uc -b -Jauto >"$work/build.log" 2>&1) ||
  { tail -40 "$work/build.log"; exit 1; }
mkdir -p dist
cp "$work"/postgresql-15-destor_*.deb dist/
ls -1 dist/*.deb
