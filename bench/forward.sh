#!/usr/bin/env bash
# remote_write forwarding: Sextant vs Prometheus' own remote_write, to the same VictoriaMetrics.
#
# Both systems scrape the same targets (one Python server on --targets ports, each serving
# --series gauges) every --interval and forward with remote_write (Prometheus' default
# queue_config for both) to one VictoriaMetrics. They run one after the other on the same
# machine. For each: steady state over --duration seconds (forwarded samples/s from
# prometheus_remote_storage_samples_total, lag = prometheus_remote_storage_highest_timestamp_in_seconds
# - prometheus_remote_storage_queue_highest_sent_timestamp_seconds sampled every second, CPU
# seconds of the process), then a --outage seconds receiver outage and the drain rate: samples/s
# forwarded from VictoriaMetrics' restart until the lag is back under 2 s.
#
#   bench/forward.sh [--targets 20] [--series 2000] [--interval 1s] [--duration 60] [--outage 30]
#                    [--out FILE] [--no-build]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGETS=20; SERIES=2000; INTERVAL=1s; DURATION=60; OUTAGE=30; OUT=; BUILD=1
CMDLINE="bench/forward.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) TARGETS=$2; shift 2;;
    --series) SERIES=$2; shift 2;;
    --interval) INTERVAL=$2; shift 2;;
    --duration) DURATION=$2; shift 2;;
    --outage) OUTAGE=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    --no-build) BUILD=0; shift;;
    *) echo "forward.sh: unknown argument $1" >&2; exit 2;;
  esac
done
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if [ "$BUILD" = 1 ]; then (cd "$ROOT" && cargo build --release -p sextant >&2); fi
SEXTANT="$ROOT/target/release/sextant"
WORK=$(mktemp -d /tmp/forward-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1; rm -rf "$WORK"; }
trap cleanup EXIT

# Targets: one process, $TARGETS ports, $SERIES gauges each (values change every scrape).
PORTS=()
for _ in $(seq "$TARGETS"); do PORTS+=("$(free_port)"); done
python3 - "$SERIES" "${PORTS[@]}" > /dev/null 2>&1 <<'PY' &
import sys, threading, random
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
n = int(sys.argv[1])
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        r = random.random()
        body = "".join(f'bench_gauge{{k="{i}"}} {i + r:.3f}\n' for i in range(n)).encode()
        self.send_response(200); self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
for p in sys.argv[2:]:
    s = ThreadingHTTPServer(("127.0.0.1", int(p)), H)
    threading.Thread(target=s.serve_forever, daemon=True).start()
threading.Event().wait()
PY
PIDS+=($!)
TARGET_LIST=$(printf "'127.0.0.1:%s'," "${PORTS[@]}"); TARGET_LIST="[${TARGET_LIST%,}]"

VM_PORT=$(free_port)
start_vm() {
  victoria-metrics -storageDataPath="$WORK/vm" -httpListenAddr=127.0.0.1:$VM_PORT -retentionPeriod=100y -loggerLevel=ERROR >/dev/null 2>&1 &
  VM_PID=$!; PIDS+=($VM_PID)
  for _ in $(seq 300); do curl -fs "http://127.0.0.1:$VM_PORT/health" >/dev/null && return; sleep 0.1; done
  echo "victoria-metrics did not start" >&2; exit 1
}
start_vm

metric() { # url name -> sum of values
  curl -fs "$1" | awk -v n="$2" '$1 ~ "^"n"({|$)" {s+=$NF} END {printf "%.3f\n", s+0}'
}
cpu_s() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }

run_one() { # name
  local name=$1 port; port=$(free_port)
  local d="$WORK/$name"; mkdir -p "$d"
  local cfg="$d/config.yml"
  cat > "$cfg" <<YML
global:
  scrape_interval: $INTERVAL
  external_labels: {sender: $name}
scrape_configs:
  - job_name: bench
    static_configs:
      - targets: $TARGET_LIST
remote_write:
  - url: http://127.0.0.1:$VM_PORT/api/v1/write
YML
  if [ "$name" = sextant ]; then
    "$SEXTANT" serve --agent --config "$cfg" --listen 127.0.0.1:$port --data-dir "$d/data" --no-host-metrics --self-monitor-interval 0 --log-level error >/dev/null 2>&1 &
  else
    prometheus --enable-feature=agent --config.file="$cfg" --storage.agent.path="$d/data" --web.listen-address=127.0.0.1:$port --log.level=error >/dev/null 2>&1 &
  fi
  local pid=$!; PIDS+=($pid)
  local m="http://127.0.0.1:$port/metrics"
  for _ in $(seq 300); do curl -fs "$m" >/dev/null && break; sleep 0.1; done
  log "$name: warming up 15 s"; sleep 15
  local s0 c0 lags=() t0; s0=$(metric "$m" prometheus_remote_storage_samples_total); c0=$(cpu_s $pid); t0=$(date +%s.%N)
  for _ in $(seq "$DURATION"); do
    sleep 1
    local hi sent; hi=$(metric "$m" prometheus_remote_storage_highest_timestamp_in_seconds)
    sent=$(metric "$m" prometheus_remote_storage_queue_highest_sent_timestamp_seconds)
    lags+=("$(python3 -c "print(max(0.0, $hi - $sent))")")
  done
  local s1 c1 t1; s1=$(metric "$m" prometheus_remote_storage_samples_total); c1=$(cpu_s $pid); t1=$(date +%s.%N)
  local rate cpu lagavg lagmax
  rate=$(python3 -c "print(round(($s1-$s0)/($t1-$t0)))"); cpu=$(python3 -c "print(round($c1-$c0,1))")
  lagavg=$(printf '%s\n' "${lags[@]}" | awk '{s+=$1} END {printf "%.2f", s/NR}')
  lagmax=$(printf '%s\n' "${lags[@]}" | sort -g | tail -1)
  log "$name: steady ${rate} samples/s, lag avg ${lagavg}s max ${lagmax}s, cpu ${cpu}s"
  # Outage and drain.
  kill "$VM_PID" 2>/dev/null || true
  for _ in $(seq 600); do kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.1; done
  log "$name: receiver down for $OUTAGE s"; sleep "$OUTAGE"
  local d0 dt0; d0=$(metric "$m" prometheus_remote_storage_samples_total)
  start_vm; dt0=$(date +%s.%N)
  local drain=timeout
  for _ in $(seq 600); do
    sleep 0.5
    local hi sent; hi=$(metric "$m" prometheus_remote_storage_highest_timestamp_in_seconds)
    sent=$(metric "$m" prometheus_remote_storage_queue_highest_sent_timestamp_seconds)
    if python3 -c "import sys; sys.exit(0 if $hi - $sent < 2 else 1)"; then
      local d1 dt1; d1=$(metric "$m" prometheus_remote_storage_samples_total); dt1=$(date +%s.%N)
      drain=$(python3 -c "print(round(($d1-$d0)/($dt1-$dt0)))"); break
    fi
  done
  log "$name: drain ${drain} samples/s"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  echo "$name $rate $lagavg $lagmax $cpu $drain" > "$WORK/result-$name"
}

run_one sextant
run_one prometheus
RES_S=$(cat "$WORK/result-sextant")
RES_P=$(cat "$WORK/result-prometheus")
read -r _ sr sla slm sc sd <<<"$RES_S"
read -r _ pr pla plm pc pd <<<"$RES_P"
ratio() { python3 -c "a,b='$1','$2'
print(f'{float(a)/float(b):.2f}x' if b not in ('0','timeout') and a!='timeout' else 'n/a')"; }
REPORT=$(cat <<MD
## remote_write forwarding, $(date -u +%Y-%m-%d) ($TARGETS targets × $SERIES series every $INTERVAL, agent mode, to one VictoriaMetrics)

Command: \`$CMDLINE\` on $(nproc) cores. Prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') \`--enable-feature=agent\`
vs \`sextant serve --agent\`, both with the default queue_config, run one after the other.

| | Sextant | Prometheus | Sextant/Prometheus |
| --- | --- | --- | --- |
| steady forwarded samples/s | $sr | $pr | $(ratio "$sr" "$pr") |
| lag avg (s) | $sla | $pla | |
| lag max (s) | $slm | $plm | |
| CPU seconds over ${DURATION}s | $sc | $pc | $(ratio "$sc" "$pc") |
| drain samples/s after a ${OUTAGE}s outage | $sd | $pd | $(ratio "$sd" "$pd") |
MD
)
echo "$REPORT"
if [ -n "$OUT" ]; then echo "$REPORT" > "$OUT"; fi
