#!/usr/bin/env bash
# Scrape throughput: Sextant and Prometheus scrape the same targets (`loadgen serve-targets`:
# N targets on N 127.0.0.1 ports, M agent-runner series each, values changing every 15 s) with
# the same scrape_configs at a 15 s interval, side by side. After a warm-up it measures, over a
# window of whole scrape cycles, each server's CPU (utime+stime from /proc/<pid>/stat), RSS, and
# what each stored (queried back from each server: samples and scrapes in the window), and
# prints a markdown table: samples/s ingested and CPU seconds per 1M samples/s (the cores a
# server would need to ingest a million samples per second this way).
#
#   bench/scrape.sh [--targets 200] [--series 1000] [--window 240] [--warmup 45] [--no-build]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGETS=200
SERIES=1000
WINDOW=240
WARMUP=45
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) TARGETS=$2; shift 2 ;;
    --series) SERIES=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "scrape.sh: unknown flag $1" >&2; exit 2 ;;
  esac
done
for tool in curl jq python3 prometheus; do command -v "$tool" >/dev/null || { echo "scrape.sh: $tool is required" >&2; exit 1; }; done
if [ "$BUILD" = 1 ]; then (cd "$ROOT" && cargo build --release -p sextant -p loadgen) >&2; fi
LOADGEN=$ROOT/target/release/loadgen
SEXTANT=$ROOT/target/release/sextant
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
wait_ready() {
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/-/ready")" = 200 ]; do
    kill -0 "$1" 2>/dev/null || { tail "$WORK"/*.log >&2; exit 1; }
    sleep 0.1
  done
}
# query PORT EXPR TIME -> the scalar value of a one-element vector result (0 when empty)
query() {
  curl -sf "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" --data-urlencode "time=$3" |
    jq -r '.data.result[0].value[1] // "0"'
}

"$LOADGEN" serve-targets --targets "$TARGETS" --series "$SERIES" > "$WORK/ports.json" 2> "$WORK/targets.log" &
TPID=$!; PIDS+=("$TPID")
until [ -s "$WORK/ports.json" ]; do kill -0 "$TPID" 2>/dev/null || { cat "$WORK/targets.log" >&2; exit 1; }; sleep 0.1; done
{
  printf 'global:\n  scrape_interval: 15s\n  scrape_timeout: 10s\nscrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets:\n'
  jq -r '.ports[] | "          - \"127.0.0.1:\(.)\""' "$WORK/ports.json"
} > "$WORK/scrape.yml"

SPORT=$(free_port); PPORT=$(free_port)
mkdir -p "$WORK/sextant" "$WORK/prometheus"
# Like Prometheus here, Sextant only scrapes: no host collector, self-monitoring or built-in rules.
"$SEXTANT" serve --config "$WORK/scrape.yml" --listen "127.0.0.1:$SPORT" --data-dir "$WORK/sextant" \
  --no-host-metrics --self-monitor-interval 0 --no-default-rules --log-level warn > "$WORK/sextant.log" 2>&1 &
SPID=$!; PIDS+=("$SPID")
prometheus --config.file="$WORK/scrape.yml" --storage.tsdb.path="$WORK/prometheus" \
  --web.listen-address="127.0.0.1:$PPORT" --log.level=warn > "$WORK/prometheus.log" 2>&1 &
PPID_=$!; PIDS+=("$PPID_")
wait_ready "$SPID" "$SPORT"; wait_ready "$PPID_" "$PPORT"

PER_TARGET=$(( (SERIES + 16) / 17 * 17 ))
echo "scrape.sh: $TARGETS targets x $PER_TARGET series at 15s; warm-up ${WARMUP}s, window ${WINDOW}s" >&2
sleep "$WARMUP"
T0=$(date +%s); SC0=$(cpu_s "$SPID"); PC0=$(cpu_s "$PPID_")
sleep "$WINDOW"
T1=$(date +%s); SC1=$(cpu_s "$SPID"); PC1=$(cpu_s "$PPID_")
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
D=$((T1 - T0))

echo "$TARGETS targets x $PER_TARGET series, 15 s interval, window ${D}s after ${WARMUP}s warm-up, $(nproc) cores, load avg $LOAD; $(date -u +%FT%TZ)"
echo
echo "| server | series | scrapes in window | up | samples stored in window | samples / scrape | samples/s | CPU s | CPU s per 1M samples/s | RSS MB | peak RSS MB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
# One count_over_time per metric name: over a selector of several names Prometheus 2.42 drops
# the names first and then refuses the duplicate label sets.
SAMPLES_EXPR=
for m in agent_tool_calls_total agent_tokens_total agent_inflight_calls agent_context_fill_percent \
  agent_tool_duration_seconds_bucket agent_tool_duration_seconds_sum agent_tool_duration_seconds_count; do
  SAMPLES_EXPR="${SAMPLES_EXPR:+$SAMPLES_EXPR + }sum(count_over_time($m{job=\"bench\"}[${D}s]))"
done
row() {
  local name=$1 port=$2 pid=$3 c0=$4 c1=$5 samples scrapes series up
  samples=$(query "$port" "$SAMPLES_EXPR" "$T1")
  scrapes=$(query "$port" "sum(count_over_time(up{job=\"bench\"}[${D}s]))" "$T1")
  up=$(query "$port" "sum(up{job=\"bench\"})" "$T1")
  series=$(query "$port" "count({job=\"bench\",__name__=~\"agent_.*\"})" "$T1")
  python3 - "$name" "$samples" "$scrapes" "$up" "$series" "$c0" "$c1" "$D" "$(kb "$pid" VmRSS)" "$(kb "$pid" VmHWM)" <<'EOF'
import sys
name, samples, scrapes, up, series, c0, c1, d, rss, hwm = sys.argv[1:]
samples, scrapes, d = float(samples), float(scrapes), float(d)
cpu = float(c1) - float(c0)
rate = samples / d
per_m = (cpu / d) / rate * 1e6 if rate > 0 else float("nan")
print(f"| {name} | {int(float(series))} | {int(scrapes)} | {int(float(up))} | {int(samples)} | {samples / scrapes if scrapes else 0:.1f} | {rate:,.0f} | {cpu:.2f} | {per_m:.2f} | {int(rss)/1024:.0f} | {int(hwm)/1024:.0f} |")
EOF
}
row "sextant" "$SPORT" "$SPID" "$SC0" "$SC1"
row "prometheus 2.42" "$PPORT" "$PPID_" "$PC0" "$PC1"
echo
echo "Samples / scrape must be $PER_TARGET on both: every scrape of every target stored whole."
