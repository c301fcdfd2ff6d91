#!/usr/bin/env bash
# Container benchmark (issue 6): `strata diff` (the path index's journal) and `strata
# commit` of a container with CHANGES changes over a FILES-file image, against a naive
# walk-and-compare of the image's and the container's trees, in one run. Needs root
# (mounts, a RAM-backed ext4 on a loop device unless --dir). Arguments go to
# dist/bench/containers.js: --files N (15000) --changes N (10000) --repeat N (5)
# --json FILE --dir DIR
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/bench/containers.js ] || npm run --silent build:ts
exec node dist/bench/containers.js "$@"
