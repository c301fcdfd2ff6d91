#!/usr/bin/env bash
# The path-index benchmark: cold lookups of 10,000 paths at 1/16/64/128 layers on stratafs
# (index on and off), kernel overlayfs and fuse-overlayfs in one run; index build time and
# size and daemon memory for a 100,000-file image. Needs root (mounts, drop_caches).
# Arguments go to dist/bench/index-scaling.js: --layers 1,16,64,128 --files N --repeat N --json FILE
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/bench/index-scaling.js ] || npm run --silent build
exec node dist/bench/index-scaling.js "$@"
