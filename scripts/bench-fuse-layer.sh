#!/usr/bin/env bash
# The FUSE-layer benchmark (issue: our own FUSE layer): loopback with passthrough on and off
# against direct ext4 in one run. Needs root (mounts, drop_caches). Arguments go to
# dist/bench/fuse-layer.js: --files N --mib N --creates N --repeat N --json FILE --dir DIR
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/bench/fuse-layer.js ] || npm run --silent build
exec node dist/bench/fuse-layer.js "$@"
