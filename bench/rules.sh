#!/usr/bin/env bash
# Rule evaluation: Sextant's rule manager vs Prometheus' on the same rules and data.
#
# Generates 1,000 recording + 1,000 alerting rules (bench/rules/gen.py) over the bench/loadgen
# agent-fleet workload, starts each target with those rules at a 15 s evaluation interval,
# loads the same recent data (ending now, so 5m windows see it), then for --cycles evaluation
# cycles records: evaluation time per cycle (sum over groups of the last evaluation's duration:
# `prometheus_rule_group_last_duration_seconds` vs `/api/v1/rules` `evaluationTime`), CPU seconds
# per cycle of the whole process, peak RSS, and — as a sanity check that both did the same
# work — the number of recorded series and firing/pending alerts.
#
#   bench/rules.sh [--series 100000] [--steps 40] [--rules 1000] [--groups 20] [--cycles 8]
#                  [--targets sextant,prometheus] [--out FILE] [--no-build]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERIES=100000 STEPS=40 NRULES=1000 NGROUPS=20 CYCLES=8 TARGETS=sextant,prometheus OUT= BUILD=1
CMDLINE="bench/rules.sh $*"
die() { echo "rules.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --series) SERIES=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --rules) NRULES=$2; shift 2 ;;
    --groups) NGROUPS=$2; shift 2 ;;
    --cycles) CYCLES=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown flag $1" ;;
  esac
done
for t in curl jq python3; do command -v $t >/dev/null || die "$t is required"; done
if [ "$BUILD" = 1 ]; then
  log "building sextant and loadgen (release)"
  (cd "$ROOT" && cargo build --release -q -p sextant -p loadgen) || die "build failed"
fi
SEXTANT=$ROOT/target/release/sextant LOADGEN=$ROOT/target/release/loadgen
WORK=$(mktemp -d /tmp/sextant-rules-bench.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
python3 "$ROOT/bench/rules/gen.py" "$NRULES" "$NRULES" "$NGROUPS" > "$WORK/rules.yml"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); split($0, f, " "); printf "%.2f", (f[12]+f[13])/t }' "/proc/$1/stat"; }
hwm_kb() { awk '$1=="VmHWM:" {print $2}' "/proc/$1/status"; }
q() { curl -s --max-time 120 "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" | jq -r '.data.result[0].value[1] // "0"'; }
eval_sum() {
  if [ "$1" = sextant ]; then
    curl -s "http://127.0.0.1:$2/api/v1/rules" | jq '[.data.groups[].evaluationTime] | add'
  else
    curl -s "http://127.0.0.1:$2/metrics" | awk '/^prometheus_rule_group_last_duration_seconds/ {s += $2} END {print s}'
  fi
}
results=()
for name in ${TARGETS//,/ }; do
  port=$(free_port) dir=$WORK/$name-data
  mkdir -p "$dir"
  case $name in
    prometheus)
      printf 'global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nrule_files: [%s]\n' "$WORK/rules.yml" > "$WORK/prometheus.yml"
      prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$dir" \
        --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver > "$WORK/$name.log" 2>&1 & ;;
    sextant)
      "$SEXTANT" serve --listen "127.0.0.1:$port" --data-dir "$dir" --self-monitor-interval 0 \
        --no-default-rules --rules "$WORK/rules.yml" --evaluation-interval 15s > "$WORK/$name.log" 2>&1 & ;;
    *) die "unknown target $name" ;;
  esac
  PID=$!
  for _ in $(seq 1 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/-/ready" && break; sleep 0.1; done
  start_ms=$(( $(date +%s) * 1000 - STEPS * 15000 ))
  log "$name: loading $SERIES series × $STEPS samples ending now"
  "$LOADGEN" --url "http://127.0.0.1:$port/api/v1/write" --series "$SERIES" --steps "$STEPS" \
    --start-ms "$start_ms" --name "$name" > "$WORK/$name.load.json"
  log "$name: warming up for 2 cycles"
  sleep 30
  c0=$(cpu_s "$PID") t0=$(date +%s.%N) evals=()
  for i in $(seq 1 "$CYCLES"); do sleep 15; evals+=("$(eval_sum "$name" "$port")"); done
  c1=$(cpu_s "$PID") t1=$(date +%s.%N)
  median=$(printf '%s\n' "${evals[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
  cpu_cycle=$(awk -v a="$c1" -v b="$c0" -v t1="$t1" -v t0="$t0" 'BEGIN {printf "%.3f", (a-b)/((t1-t0)/15)}')
  recorded=$(q "$port" 'count({__name__=~"bench_r.*"})')
  alerts=$(q "$port" 'count(ALERTS)')
  rss=$(hwm_kb "$PID")
  log "$name: eval/cycle ${median}s cpu/cycle ${cpu_cycle}s recorded=$recorded alerts=$alerts hwm=${rss}kB"
  results+=("$name $median $cpu_cycle $recorded $alerts $rss")
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=
done
{
  echo "### Rule evaluation — $(date -u +%Y-%m-%d) ($(nproc) cores)"
  echo
  echo "Command: \`$CMDLINE\` — $((2*NRULES)) rules ($NRULES recording + $NRULES alerting) in $NGROUPS groups, 15 s interval, $SERIES series."
  echo
  echo "| target | eval time per cycle (median of $CYCLES, s) | CPU per cycle (s) | recorded series | ALERTS series | peak RSS (MiB) |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  for r in "${results[@]}"; do
    read -r n e c rec al rss <<< "$r"
    echo "| $n | $e | $c | $rec | $al | $((rss / 1024)) |"
  done
  if [ ${#results[@]} -ge 2 ]; then
    read -r _ e1 c1 _ _ m1 <<< "${results[0]}"; read -r _ e2 c2 _ _ m2 <<< "${results[1]}"
    awk -v e1="$e1" -v e2="$e2" -v c1="$c1" -v c2="$c2" -v m1="$m1" -v m2="$m2" 'BEGIN {
      printf "\nRatios sextant/prometheus: eval time %.2f×, CPU %.2f×, peak RSS %.2f×\n", e1/e2, c1/c2, m1/m2 }'
  fi
} | tee ${OUT:+"$OUT"}
