#!/usr/bin/env bash
# Export throughput: Sextant's /api/v1/export vs VictoriaMetrics' /api/v1/export, same data,
# same run, same machine.
#
# Both systems get the same deterministic data through their VictoriaMetrics-compatible
# `/api/v1/import` (JSON lines): SERIES series x SAMPLES samples at 3 s spacing (span under the head's 1h append window) ending an hour
# ago, values a mix of counters and gauges. Then each export is read with curl into /dev/null,
# RUNS times, the best run counted; samples/s = samples exported / wall time of the request.
# The JSON-lines export is the like-for-like comparison (VictoriaMetrics' default format);
# Sextant's other formats are measured too, for reference.
#
#   bench/export.sh [--series 10000] [--samples 1000] [--runs 3] [--no-build] [--out FILE]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERIES=10000
SAMPLES=1000
RUNS=3
BUILD=1
OUT=
CMDLINE="bench/export.sh $*"

die() { echo "export.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --series) SERIES=$2; shift 2 ;;
    --samples) SAMPLES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown flag $1 (see --help)" ;;
  esac
done

command -v victoria-metrics >/dev/null || die "victoria-metrics is not installed (apt-get install victoria-metrics)"
command -v curl >/dev/null || die "curl is needed"
if [ "$BUILD" = 1 ]; then
  log "building sextant (release)"
  (cd "$ROOT" && cargo build --release -q -p sextant)
fi
SEXTANT="$ROOT/target/release/sextant"
[ -x "$SEXTANT" ] || die "$SEXTANT missing (build it or drop --no-build)"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url
  for _ in $(seq 1 600); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  die "$1 did not come up"
}

log "generating $SERIES series x $SAMPLES samples"
python3 - "$WORK/data" "$SERIES" "$SAMPLES" <<'EOF'
import json, os, sys, time
out, series, samples = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out)
end = (int(time.time()) - 3600) * 1000
start = end - (samples - 1) * 3000
ts = [start + i * 3000 for i in range(samples)]
per_file = max(1, 8_000_000 // (samples * 22))
f = None
for s in range(series):
    if s % per_file == 0:
        if f: f.close()
        f = open(os.path.join(out, "%06d.jsonl" % s), "w")
    kind = s % 3
    name = ["bench_requests_total", "bench_latency_seconds", "bench_tokens_total"][kind]
    metric = {"__name__": name, "job": "agents", "instance": "host-%d" % (s // 50),
              "model": "model-%d" % (s % 7), "id": str(s)}
    if kind == 1:
        vals = [round(0.05 + ((s * 31 + i * 17) % 1000) / 4000, 4) for i in range(samples)]
    else:
        vals = [float(i * (1 + s % 5)) for i in range(samples)]
    f.write(json.dumps({"metric": metric, "values": vals, "timestamps": ts}) + "\n")
f.close()
EOF
TOTAL=$((SERIES * SAMPLES))

SP=$(free_port); VP=$(free_port)
"$SEXTANT" serve --listen "127.0.0.1:$SP" --data-dir "$WORK/sextant" --no-host-metrics \
  --no-default-rules --self-monitor-interval 0 --log-level warn >"$WORK/sextant.log" 2>&1 &
PIDS+=($!)
victoria-metrics -storageDataPath="$WORK/vm" -httpListenAddr="127.0.0.1:$VP" -retentionPeriod=100y \
  -search.latencyOffset=0s -loggerLevel=ERROR >"$WORK/vm.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$SP/-/ready"
wait_http "http://127.0.0.1:$VP/health"

log "importing into both"
for f in "$WORK"/data/*.jsonl; do
  curl -fsS -o /dev/null --data-binary "@$f" "http://127.0.0.1:$SP/api/v1/import" || die "sextant import of $f failed"
  curl -fsS -o /dev/null --data-binary "@$f" "http://127.0.0.1:$VP/api/v1/import" || die "vm import of $f failed"
done
curl -fs -o /dev/null "http://127.0.0.1:$VP/internal/force_flush" || true

MATCH='match[]={__name__=~"bench_.*"}'
count_samples() { # url -> samples in a JSON-lines export
  curl -fsS --get --data-urlencode "$MATCH" "$1" | python3 -c '
import json, sys
print(sum(len(json.loads(l)["timestamps"]) for l in sys.stdin if l.strip()))'
}
for _ in $(seq 1 300); do
  [ "$(count_samples "http://127.0.0.1:$VP/api/v1/export")" = "$TOTAL" ] && break
  sleep 1
done
VM_N=$(count_samples "http://127.0.0.1:$VP/api/v1/export")
SX_N=$(count_samples "http://127.0.0.1:$SP/api/v1/export")
[ "$VM_N" = "$TOTAL" ] || die "VictoriaMetrics exports $VM_N samples, expected $TOTAL"
[ "$SX_N" = "$TOTAL" ] || die "Sextant exports $SX_N samples, expected $TOTAL"

best() { # url [extra curl args] -> "seconds bytes" of the fastest of RUNS runs
  local b="" bytes=""
  for _ in $(seq 1 "$RUNS"); do
    read -r t n < <(curl -fsS -o /dev/null -w '%{time_total} %{size_download}\n' --get \
      --data-urlencode "$MATCH" "$@")
    if [ -z "$b" ] || python3 -c "import sys; sys.exit(0 if $t < $b else 1)"; then b=$t; bytes=$n; fi
  done
  echo "$b $bytes"
}
rate() { python3 -c "print(f'{$TOTAL / $1 / 1e6:.2f}')"; }

log "measuring ($RUNS runs each)"
read -r VM_T VM_B < <(best "http://127.0.0.1:$VP/api/v1/export")
read -r SX_T SX_B < <(best "http://127.0.0.1:$SP/api/v1/export")
ROWS=""
for fmt in json csv openmetrics influx; do
  read -r t b < <(best "http://127.0.0.1:$SP/api/v1/export" --data-urlencode "format=$fmt")
  ROWS+="| Sextant \`format=$fmt\` | $t | $((b / 1000000)) | $(rate "$t") | |"$'\n'
done
RATIO=$(python3 -c "print(f'{$VM_T / $SX_T:.2f}')")
REPORT=$(cat <<EOF
## Export throughput: Sextant vs VictoriaMetrics ($(date -u +%Y-%m-%d), \`$CMDLINE\`)

$SERIES series x $SAMPLES samples = $TOTAL samples, the same data imported into both through
\`/api/v1/import\`; best of $RUNS runs of \`curl\` reading the whole export into /dev/null; machine:
$(nproc) cores, shared. Sextant release build.

| export | seconds | MB | M samples/s | Sextant / VM |
| --- | --- | --- | --- | --- |
| VictoriaMetrics \`/api/v1/export\` (JSON lines) | $VM_T | $((VM_B / 1000000)) | $(rate "$VM_T") | |
| Sextant \`/api/v1/export\` (JSON lines) | $SX_T | $((SX_B / 1000000)) | $(rate "$SX_T") | ${RATIO}x |
$ROWS
EOF
)
echo "$REPORT"
[ -n "$OUT" ] && echo "$REPORT" >"$OUT"
exit 0
