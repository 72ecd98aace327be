#!/usr/bin/env bash
# OTLP ingest rate: the same deterministic workload (bench/loadgen) sent to Sextant as OTLP/HTTP
# gauges on /v1/metrics and as remote_write 1.0, and to Prometheus as remote_write 1.0 (Debian's
# Prometheus 2.42 has no OTLP receiver: `--enable-feature=otlp-write-receiver` arrived in 2.47,
# so its remote_write receiver is the baseline). Ingest only: no block wait, queries or restarts
# (bench/run.sh --sextant-protocol otlp does the whole comparison). Prints a markdown table.
#
#   bench/otlp.sh [--series 20000] [--steps 60] [--senders 4] [--no-build]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERIES=20000
STEPS=60
SENDERS=4
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --series) SERIES=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --senders) SENDERS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "otlp.sh: unknown flag $1" >&2; exit 2 ;;
  esac
done
for tool in curl jq python3; do command -v "$tool" >/dev/null || { echo "otlp.sh: $tool is required" >&2; exit 1; }; done
if [ "$BUILD" = 1 ]; then (cd "$ROOT" && cargo build --release -p sextant -p loadgen) >&2; fi
LOADGEN=$ROOT/target/release/loadgen
SEXTANT=$ROOT/target/release/sextant
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }

# run NAME TARGET PROTOCOL
run() {
  local name=$1 target=$2 proto=$3 port dir path cpu0 cpu1
  port=$(free_port); dir=$WORK/$name; mkdir -p "$dir"
  case "$target" in
    sextant) "$SEXTANT" serve --listen "127.0.0.1:$port" --data-dir "$dir" --self-monitor-interval 0 \
               --log-level warn >> "$WORK/$name.log" 2>&1 & ;;
    prometheus)
      printf 'global:\n  scrape_interval: 15s\n' > "$WORK/prometheus.yml"
      prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$dir" \
        --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver >> "$WORK/$name.log" 2>&1 & ;;
  esac
  PID=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/-/ready")" = 200 ]; do
    kill -0 "$PID" 2>/dev/null || { tail "$WORK/$name.log" >&2; exit 1; }
    sleep 0.05
  done
  path=/api/v1/write; [ "$proto" = otlp ] && path=/v1/metrics
  cpu0=$(cpu_s "$PID")
  "$LOADGEN" --url "http://127.0.0.1:$port$path" --protocol "$proto" --name "$name" \
    --series "$SERIES" --steps "$STEPS" --senders "$SENDERS" 2>/dev/null > "$WORK/$name.json" || true
  cpu1=$(cpu_s "$PID")
  jq -r --arg cpu "$(awk -v a="$cpu1" -v b="$cpu0" 'BEGIN {printf "%.2f", a - b}')" \
    --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
    '"| \(.name) | \(.samples_acked) / \(.samples_sent) | \(.bytes_sent / .samples_sent | . * 10 | round / 10) | \(.wall_s) | \(.samples_per_s) | \($cpu) | \(if .samples_acked > 0 then ((($cpu | tonumber) / .samples_acked * 1e6) | . * 100 | round / 100) else "-" end) | \($load) |"' \
    "$WORK/$name.json"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

echo "$SERIES series x $STEPS steps, $SENDERS senders, $(nproc) cores; $(date -u +%FT%TZ)"
echo
echo "| target | samples acked / sent | request bytes/sample | wall s | samples/s | server CPU s | server CPU µs/sample | load avg |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
run "sextant OTLP" sextant otlp
run "sextant remote_write" sextant remote-write
command -v prometheus >/dev/null && run "prometheus 2.42 remote_write" prometheus remote-write
