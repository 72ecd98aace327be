#!/usr/bin/env bash
# Bounded soak of the release build (see bench/soak.py for what it does and checks):
# steady remote_write ingest, every built-in dashboard query in a loop, built-in rules,
# kill -9 at 1/3 and SIGTERM at 2/3; RSS over time, query p50/p99, zero lost samples.
#
#   bench/soak.sh [--minutes 30] [--series 10000] [--interval-s 1] [--no-build] [--out-dir DIR]
#   bench/soak.sh --short        # 2 minutes, 500 series (what `cargo test` runs, on the debug build)
#
# Writes DIR/soak-<UTC date>.json (the summary) and DIR/soak-<UTC date>-rss.csv (default DIR: bench/).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MINUTES=30; SERIES=10000; INTERVAL=1; BUILD=1; OUT_DIR=$ROOT/bench
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES=$2; shift 2 ;;
    --series) SERIES=$2; shift 2 ;;
    --interval-s) INTERVAL=$2; shift 2 ;;
    --short) MINUTES=2; SERIES=500; shift ;;
    --no-build) BUILD=0; shift ;;
    --out-dir) OUT_DIR=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown flag $1" >&2; exit 2 ;;
  esac
done
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release -p sextant) >&2
STAMP=$(date -u +%Y-%m-%dT%H%M)
python3 "$ROOT/bench/soak.py" --binary "$ROOT/target/release/sextant" --minutes "$MINUTES" \
  --series "$SERIES" --interval-s "$INTERVAL" \
  --out "$OUT_DIR/soak-$STAMP.json" --rss-csv "$OUT_DIR/soak-$STAMP-rss.csv"
