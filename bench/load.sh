#!/usr/bin/env bash
# Load test of the HTTP API: many concurrent clients on loopback, Sextant vs Prometheus.
#
# Both servers get the same data (bench/loadgen's agent-fleet workload over remote_write, the
# last 45 minutes at 15 s), then ApacheBench (`ab`, Debian apache2-utils; keep-alive) drives each
# endpoint class at 16, 64 and 256 concurrent clients for a fixed number of requests:
#   query_instant  GET /api/v1/query        sum by (job, model) (rate(..._bucket[5m]))
#   query_range    GET /api/v1/query_range  same expression, last 45 min, step 60s
#   write          POST /api/v1/write       remote_write 1.0, 100 samples per request
# and reports requests/s held, p50/p99 latency and the error count (non-2xx and failed).
# Sextant runs with its embedded defaults (rules, self-monitoring, host metrics); Prometheus
# with only its remote-write receiver.
#
#   bench/load.sh [--series 10000] [--requests 4000] [--concurrency "16 64 256"] [--no-build]
#                 [--out FILE]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERIES=10000
REQUESTS=4000
CONC="16 64 256"
BUILD=1
OUT=
CMDLINE="bench/load.sh $*"
die() { echo "load.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --series) SERIES=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown flag $1 (see --help)" ;;
  esac
done
command -v ab >/dev/null || die "ab not found (apt-get install -y apache2-utils)"
command -v prometheus >/dev/null || die "prometheus not found (apt-get install -y prometheus)"
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release -p sextant -p loadgen) >&2 || die "build failed"
fi
SEXTANT=$ROOT/target/release/sextant
LOADGEN=$ROOT/target/release/loadgen
WORK=$(mktemp -d /tmp/sextant-load.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 600); do curl -sf -o /dev/null "http://127.0.0.1:$1/-/ready" && return 0; sleep 0.2; done; die "port $1 not ready"; }

SP=$(free_port); PP=$(free_port)
"$SEXTANT" serve --listen "127.0.0.1:$SP" --data-dir "$WORK/sextant" --log-level warn > "$WORK/sextant.log" 2>&1 &
PIDS+=($!); SPID=$!
printf 'global:\n  scrape_interval: 15s\n' > "$WORK/prometheus.yml"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus" \
  --web.listen-address="127.0.0.1:$PP" --web.enable-remote-write-receiver > "$WORK/prometheus.log" 2>&1 &
PIDS+=($!); PPID_=$!
wait_ready "$SP"; wait_ready "$PP"

# The last 45 minutes of data into both (Sextant's head takes samples down to 1 h behind its newest, and its own self-monitoring writes at "now").
START_MS=$(( ($(date +%s) - 2700) * 1000 ))
for port in "$SP" "$PP"; do
  log "loading $SERIES series x 180 steps into :$port"
  "$LOADGEN" --url "http://127.0.0.1:$port/api/v1/write" --series "$SERIES" --steps 180 \
    --start-ms "$START_MS" --senders 2 > "$WORK/load-$port.json"
done

# One remote_write request of 100 samples at "now" (re-sent identical: duplicates are accepted).
ROOT_DIR=$ROOT python3 - "$WORK/write.bin" <<'EOF'
import os, sys, time
sys.path.insert(0, os.path.join(os.environ["ROOT_DIR"], "bench"))
import soak
ts = int(time.time() * 1000)
body = b"".join(soak.timeseries([("__name__", "load_value"), ("job", "load"), ("series", str(i))], 1.0, ts)
                for i in range(100))
open(sys.argv[1], "wb").write(soak.snappy_literal(body))
EOF

enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
EXPR='sum by (job, model) (rate(agent_tool_duration_seconds_bucket[5m]))'
NOW=$(date +%s)
Q_INSTANT="/api/v1/query?query=$(enc "$EXPR")&time=$NOW"
Q_RANGE="/api/v1/query_range?query=$(enc "$EXPR")&start=$((NOW - 2700))&end=$NOW&step=60"

# run_ab NAME PORT CLASS CONC: prints one result row "name class conc rps p50 p99 errors".
run_ab() {
  local name=$1 port=$2 class=$3 c=$4 out
  case "$class" in
    query_instant) out=$(ab -k -q -n "$REQUESTS" -c "$c" "http://127.0.0.1:$port$Q_INSTANT" 2>&1) ;;
    query_range) out=$(ab -k -q -n "$REQUESTS" -c "$c" "http://127.0.0.1:$port$Q_RANGE" 2>&1) ;;
    write) out=$(ab -k -q -n "$REQUESTS" -c "$c" -p "$WORK/write.bin" -T application/x-protobuf \
      -H 'Content-Encoding: snappy' -H 'X-Prometheus-Remote-Write-Version: 0.1.0' \
      "http://127.0.0.1:$port/api/v1/write" 2>&1) ;;
  esac
  echo "$out" > "$WORK/ab-$name-$class-$c.txt"
  local rps p50 p99 failed non2xx
  rps=$(awk '/^Requests per second/ {print $4}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  failed=$(awk '/^Failed requests/ {print $3}' <<<"$out")
  non2xx=$(awk '/^Non-2xx responses/ {print $3}' <<<"$out")
  echo "$name $class $c ${rps:-0} ${p50:-NA} ${p99:-NA} $(( ${failed:-0} + ${non2xx:-0} ))"
}

ROWS=()
for class in query_instant query_range write; do
  for c in $CONC; do
    for t in sextant prometheus; do
      port=$SP; [ "$t" = prometheus ] && port=$PP
      log "$t $class c=$c"
      ROWS+=("$(run_ab "$t" "$port" "$class" "$c")")
    done
  done
done
RSS_S=$(awk '/VmHWM/ {print $2}' /proc/$SPID/status)
RSS_P=$(awk '/VmHWM/ {print $2}' /proc/$PPID_/status)

{
  echo "### Load test, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Command: \`$CMDLINE\` (commit $(cd "$ROOT" && git rev-parse --short HEAD)); $SERIES series,"
  echo "$REQUESTS requests per cell, ApacheBench keep-alive on loopback, machine load at start $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| class | clients | Sextant req/s | Prometheus req/s | ratio | Sextant p50 / p99 ms | Prometheus p50 / p99 ms | errors S / P |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for ((i = 0; i < ${#ROWS[@]}; i += 2)); do
    read -r _ class c rs ps50 ps99 es <<<"${ROWS[i]}"
    read -r _ _ _ rp pp50 pp99 ep <<<"${ROWS[i+1]}"
    ratio=$(python3 -c "print(f'{float($rs)/float($rp):.2f}x' if float($rp) > 0 else 'n/a')")
    echo "| $class | $c | $rs | $rp | $ratio | $ps50 / $ps99 | $pp50 / $pp99 | $es / $ep |"
  done
  echo
  echo "Peak RSS after the run: Sextant $((RSS_S / 1024)) MB, Prometheus $((RSS_P / 1024)) MB."
} | tee "${OUT:-/dev/null}"
