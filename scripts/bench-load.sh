#!/usr/bin/env bash
# Load benchmark (issue 5): `strata load` of an OCI layout holding one gzip layer of
# FILES files (default 15000, ~MIB MiB of content) against `umoci unpack` of the same
# image, in one run, alternating, REPEAT times each; prints MB/s (uncompressed file
# content) and files/s, median of the runs. Each run starts from an empty store / bundle
# and the page cache is dropped before it (root), so both read the image from disk.
#   scripts/bench-load.sh [--files N] [--mib N] [--repeat N] [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=15000 MIB=60 REPEAT=3 DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --mib) MIB=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    *) echo "usage: $0 [--files N] [--mib N] [--repeat N] [--dir DIR]" >&2; exit 2 ;;
  esac
done
command -v umoci >/dev/null || { echo "bench-load: umoci is missing (scripts/setup.sh installs it)" >&2; exit 1; }
[ -f dist/cli/images.js ] || npm run --silent build:ts
STRATA="$PWD/bin/strata"
WORK=$(mktemp -d "${DIR:-${TMPDIR:-/tmp}}/strata-bench-load-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "bench-load: building a ${FILES}-file image (~${MIB} MiB) with umoci in $WORK" >&2
umoci init --layout "$WORK/layout" >/dev/null
umoci new --image "$WORK/layout:bench" >/dev/null
umoci unpack --image "$WORK/layout:bench" "$WORK/build" >/dev/null
# Files of varied sizes (mean MIB*2^20/FILES bytes) in 100 files per directory, random content
# (so gzip has real work) taken from one pool.
node -e '
  const fs = require("fs"), crypto = require("crypto");
  const [root, files, mib] = [process.argv[1], +process.argv[2], +process.argv[3]];
  const mean = Math.max(1, Math.floor(mib * 1048576 / files));
  const pool = crypto.randomBytes(4 * mean + 65536);
  let seed = 1;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < files; i++) {
    const dir = `${root}/d${Math.floor(i / 100)}`;
    if (i % 100 === 0) fs.mkdirSync(dir, { recursive: true });
    const size = Math.floor(rnd() * 2 * mean);
    const off = Math.floor(rnd() * (pool.length - size));
    fs.writeFileSync(`${dir}/f${i}`, pool.subarray(off, off + size));
  }' "$WORK/build/rootfs" "$FILES" "$MIB"
umoci repack --image "$WORK/layout:bench" "$WORK/build" >/dev/null
rm -rf "$WORK/build"
BYTES=$(du -sb --apparent-size "$WORK/layout" | cut -f1)

drop() { sync; [ "$(id -u)" -eq 0 ] && echo 3 >/proc/sys/vm/drop_caches || true; }
now() { date +%s%N; }
declare -a T_STRATA T_UMOCI
for i in $(seq 1 "$REPEAT"); do
  drop; t0=$(now)
  "$STRATA" load -q -i "$WORK/layout" --root "$WORK/store" >/dev/null
  t1=$(now); T_STRATA+=($(( (t1 - t0) / 1000000 )))
  CONTENT=$(node -e '
    const D = require(process.argv[1] + "/node_modules/better-sqlite3");
    const db = new D(process.argv[2], { readonly: true });
    const r = db.prepare("SELECT SUM(size) s, SUM(files) f FROM layers").get();
    console.log(r.s + " " + r.f);' "$PWD" "$WORK/store/store.db")
  rm -rf "$WORK/store"
  drop; t0=$(now)
  umoci unpack --image "$WORK/layout:bench" "$WORK/bundle" >/dev/null
  t1=$(now); T_UMOCI+=($(( (t1 - t0) / 1000000 )))
  rm -rf "$WORK/bundle"
done

read -r CBYTES CFILES <<<"$CONTENT"
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
MS=$(median "${T_STRATA[@]}")
MU=$(median "${T_UMOCI[@]}")
report() { # name ms
  awk -v n="$1" -v ms="$2" -v b="$CBYTES" -v f="$CFILES" 'BEGIN { s = ms / 1000; printf "%-14s %8.2f s %9.1f MB/s %10.0f files/s\n", n, s, b / 1e6 / s, f / s }'
}
echo "image: $CFILES entries, $(awk -v b="$CBYTES" 'BEGIN{printf "%.1f", b/1e6}') MB of file content, layout $(awk -v b="$BYTES" 'BEGIN{printf "%.1f", b/1e6}') MB; median of $REPEAT runs"
echo "runs (ms): strata ${T_STRATA[*]} | umoci ${T_UMOCI[*]}"
report "strata load" "$MS"
report "umoci unpack" "$MU"
awk -v a="$MS" -v b="$MU" 'BEGIN { printf "strata / umoci time: %.2f (%s)\n", a / b, a <= b ? "at least as fast: target met" : "slower: target missed" }'
