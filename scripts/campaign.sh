#!/usr/bin/env bash
# The random differential campaign against the kernel's overlayfs (test/union/campaign.ts;
# docs/union.md, "Random campaign"). As root:
#   scripts/campaign.sh START END        seeds START..END: one line per seed, findings as JSON
#   scripts/campaign.sh --replay FILE    a finding's case run again
#   scripts/campaign.sh --minimize FILE  ddmin of its script and stack, written to FILE.min.json
# Findings go to $STRATA_CAMPAIGN_OUT (default: a new /tmp/campaign-findings-*); a minimized
# or replayed finding is written beside FILE. Runs under nice -n 10, one seed at a time
# (~1 s each); STRATA_CAMPAIGN_KEEP=1 keeps a diverging seed's layers, upper dirs and logs.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ "$(id -u)" = 0 ] || { echo "campaign.sh: needs root (it mounts overlayfs and stratafs)" >&2; exit 2; }

# The stratafs mounts run bin/strata, which runs dist/: build it when src/ is newer.
if [ ! -f dist/cli/main.js ] || [ -n "$(find src -name '*.ts' -newer dist/cli/main.js -print -quit)" ]; then
  echo "campaign.sh: dist/ is older than src/: npx tsc -p ." >&2
  npx tsc -p .
fi

# Runs the campaign's test file with the environment set by the caller, printing the lines
# the test appends to $1 (its summary) as they come; the full vitest output goes to $2.
run() {
  local summary=$1 log=$2 pid rc=0 from
  touch "$summary"
  from=$(($(stat -c %s "$summary") + 1))
  nice -n 10 npx vitest run test/union/campaign.test.ts >"$log" 2>&1 &
  pid=$!
  tail -c "+$from" --pid="$pid" -F "$summary" 2>/dev/null || true
  wait "$pid" || rc=$?
  return "$rc"
}

case "${1:-}" in
  --replay | --minimize)
    [ $# -eq 2 ] && [ -f "$2" ] || usage
    file=$(realpath "$2")
    if [ "$1" = --replay ]; then export STRATA_CAMPAIGN_REPLAY=$file; else export STRATA_CAMPAIGN_MINIMIZE=$file; fi
    log="${file%.json}.${1#--}.log"
    rc=0
    run "$(dirname "$file")/summary.txt" "$log" || rc=$?
    echo "vitest output: $log"
    exit "$rc"
    ;;
  '' | -*) usage ;;
esac

[ $# -eq 2 ] && [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] || usage
export STRATA_CAMPAIGN_SEEDS="$1-$2"
export STRATA_CAMPAIGN_OUT=${STRATA_CAMPAIGN_OUT:-$(mktemp -d /tmp/campaign-findings-XXXXXX)}
mkdir -p "$STRATA_CAMPAIGN_OUT"
echo "seeds $1-$2, findings in $STRATA_CAMPAIGN_OUT"
rc=0
run "$STRATA_CAMPAIGN_OUT/summary.txt" "$STRATA_CAMPAIGN_OUT/vitest-$1-$2.log" || rc=$?
found=$(find "$STRATA_CAMPAIGN_OUT" -maxdepth 1 -name 'seed-*.json' ! -name '*.min.json' ! -name '*.replay-*' | wc -l)
echo "seeds $1-$2: $found finding file(s) in $STRATA_CAMPAIGN_OUT (vitest output: vitest-$1-$2.log)"
exit "$rc"
