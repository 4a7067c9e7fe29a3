#!/bin/bash
# Install what destor needs to build and test, on Debian 12, if it is missing.
# Usage: scripts/deps.sh [--test|--deb]   (--test adds the test-only tools,
# --deb what building the Debian package needs; tests build it too)
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(make gcc postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev libssl-dev
      libisal-dev libzstd-dev openssl)
if [ "${1:-}" = "--deb" ] || [ "${1:-}" = "--test" ]; then
  pkgs+=(dpkg-dev debhelper postgresql-server-dev-all fakeroot)
fi
if [ "${1:-}" = "--test" ]; then
  pkgs+=(libipc-run-perl python3 python3-botocore procps bzip2 postgresql-15-partman)
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from outside Debian's packages (e.g. a preinstalled Node.js)
if [ ${#missing[@]} -gt 0 ]; then
  tmp=(); for p in "${missing[@]}"; do
    case "$p" in nodejs) command -v node >/dev/null || tmp+=("$p");; npm) command -v npm >/dev/null || tmp+=("$p");; *) tmp+=("$p");; esac
  done; missing=("${tmp[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "destor: missing packages: ${missing[*]}" >&2
    echo "hint: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "destor: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
  # S3-protocol test servers, pinned by test/tap/package-lock.json
  if [ ! -x test/tap/node_modules/.bin/s3rver ]; then
    echo "destor: installing s3rver (test/tap/package-lock.json)"
    (cd test/tap && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
