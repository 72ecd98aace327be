#!/usr/bin/env bash
# Web UI benchmark: the JavaScript/CSS bundle size (raw and gzipped, target < 500 KB gzipped) and
# the first load of Explore over 24 h of 20 series and of a 20-panel dashboard over the same data
# (created for the run and deleted after; --dashboard UID measures another one instead:
# time until all its panels have drawn, target < 1 s) in headless Chromium, median of --runs.
#
#   bench/ui.sh [--runs 5] [--no-build] [--binary target/release/sextant] [--dashboard UID --panels 20]
#
# Needs node/npm, ui/node_modules (cd ui && npm ci) and /usr/bin/chromium.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=5
BUILD=1
BIN=$ROOT/target/release/sextant
DASH=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --binary) BIN=$2; shift 2 ;;
    --dashboard) DASH+=(--dashboard "$2"); shift 2 ;;
    --panels) DASH+=(--panels "$2"); shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "ui.sh: unknown flag $1" >&2; exit 2 ;;
  esac
done
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT/ui" && npm run build) >&2
  (cd "$ROOT" && cargo build --release -p sextant) >&2
fi

echo "## Bundle (ui/dist/assets)"
echo
echo "| file | bytes | gzip -9 bytes |"
echo "|---|---:|---:|"
total=0; total_gz=0
for f in "$ROOT"/ui/dist/assets/*.js "$ROOT"/ui/dist/assets/*.css; do
  [ -f "$f" ] || continue
  b=$(wc -c < "$f"); g=$(gzip -9 -c "$f" | wc -c)
  total=$((total + b)); total_gz=$((total_gz + g))
  echo "| $(basename "$f") | $b | $g |"
done
echo "| **total** | **$total** | **$total_gz** ($((total_gz / 1024)) KiB) |"
echo

WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --no-host-metrics --self-monitor-interval 0 --no-default-rules --log-level warn &
PID=$!
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$PORT/-/ready" >/dev/null && break; sleep 0.1; done

echo "## First load (headless Chromium, cold cache per run, median of $RUNS)"
echo
node "$ROOT/bench/ui.mjs" --url "http://127.0.0.1:$PORT" --runs "$RUNS" --write "${DASH[@]}" | tee "$WORK/out.jsonl" >&2
python3 - "$WORK/out.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "write_ms" in r:
        print(f"- data: {r['series']} series × {r['hours']} h at 1-minute resolution (written in {r['write_ms']} ms)")
    elif r["page"] == "explore":
        print(f"- Explore, `{r['query']}` over {r['range']}: median **{r['median_ms']} ms** to legend + chart drawn (runs: {r['runs']})")
    else:
        print(f"- Dashboard `{r['uid']}` ({r['panels']} panels, {r['range']}): median **{r['median_ms']} ms** to all panels drawn (runs: {r['runs']})")
PY
