#!/usr/bin/env bash
# The union-mount benchmark: stratafs against the kernel's overlayfs (the reference) and
# fuse-overlayfs over one synthetic three-layer image, in one run. Needs root (mounts,
# drop_caches, whiteouts); fuse-overlayfs is reported as skipped when it is not installed.
# Arguments go to dist/bench/union.js: --repeat N --big-mib N --json FILE
# --drivers overlay,stratafs,fuse-overlayfs --workloads cold-walk,warm-walk,...
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/bench/union.js ] || npm run --silent build
exec node dist/bench/union.js "$@"
