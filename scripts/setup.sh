#!/usr/bin/env bash
# Sets up stratafs on a fresh Debian 12 machine: the Debian packages it needs, the npm
# dependencies, the native addon and the TypeScript build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# command -> Debian package that provides it
declare -A want=(
  [fusermount3]=fuse3        # podman-style unmounts (fusermount3 -u) and /etc/fuse.conf
  [make]=make
  [g++]=g++
  [python3]=python3          # node-gyp
  [setpriv]=util-linux       # tests act as other users
  [mount]=mount
  [skopeo]=skopeo            # image interop tests (skopeo inspect/copy)
  [umoci]=umoci              # image interop tests and scripts/bench-load.sh
  [fuse-overlayfs]=fuse-overlayfs  # a peer in strata bench and the index benchmark
  [mkfs.ext4]=e2fsprogs      # benchmarks run on a RAM-backed ext4
  [tar]=tar                  # strata bench's untar workload
  [podman]=podman            # the test that has podman drive bin/strata-overlay as its mount_program
)
missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
# The built-in demo image needs the static busybox; a dynamic one would pass `command -v`.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -e /dev/fuse ]; then
  $SUDO modprobe fuse 2>/dev/null || echo "setup: warning: /dev/fuse is missing; mounts will fail" >&2
fi

# `npm install`, not `npm ci`: the registry this project can reach does not serve the
# other platforms' optional packages of rollup (vitest's bundler), so no lockfile can list
# them and `npm ci` refuses the lockfile. `npm install` follows the lockfile for everything
# it lists. better-sqlite3 compiles from source (allowScripts in package.json lets it).
echo "setup: npm install"
npm install --no-audit --no-fund --loglevel=error
echo "setup: building the native addon and the TypeScript sources"
npm run --silent build >/dev/null
echo "setup: done (bin/strata is ready)"
