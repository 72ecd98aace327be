#!/usr/bin/env bash
# Sextant vs Prometheus vs VictoriaMetrics: one run, one workload, side by side.
#
# For each target: start it on 127.0.0.1 with a fresh data dir, send the same deterministic
# remote_write 1.0 workload with bench/loadgen, then measure ingest rate, peak RSS (VmHWM),
# server CPU, query latency of a fixed dashboard-like query set (`loadgen query`, right after
# ingest), series count via the query API, bytes on disk per sample (all data as blocks, and
# everything on disk including the WAL), and restart time after kill -9. Writes a markdown
# section with Sextant/peer ratios. See bench/RESULTS.md for how to read it.
#
#   bench/run.sh [--targets sextant,prometheus,victoria-metrics] [--series 100000] [--steps 960]
#                [--senders 4] [--seed 1] [--start-ms MS] [--block-wait 240] [--out FILE]
#                [--query-runs 5] [--query-warmup 1] [--no-query] [--keep] [--no-build]
#                [--sextant-protocol remote-write|otlp]
#
# --sextant-protocol otlp sends Sextant the same samples as OTLP/HTTP gauges on /v1/metrics
# (the peers keep remote_write: Debian's Prometheus 2.42 has no OTLP receiver).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGETS=sextant,prometheus,victoria-metrics
SERIES=100000
STEPS=960
SENDERS=4
SEED=1
START_MS=
BLOCK_WAIT=240
OUT=
KEEP=0
BUILD=1
QUERY_RUNS=5
QUERY_WARMUP=1
QUERY=1
SEXTANT_PROTOCOL=remote-write
CMDLINE="bench/run.sh $*"

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --targets) TARGETS=$2; shift 2 ;;
    --series) SERIES=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --senders) SENDERS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --start-ms) START_MS=$2; shift 2 ;;
    --block-wait) BLOCK_WAIT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --query-runs) QUERY_RUNS=$2; shift 2 ;;
    --query-warmup) QUERY_WARMUP=$2; shift 2 ;;
    --no-query) QUERY=0; shift ;;
    --keep) KEEP=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --sextant-protocol) SEXTANT_PROTOCOL=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown flag $1 (see --help)" ;;
  esac
done

for t in ${TARGETS//,/ }; do
  case "$t" in sextant|prometheus|victoria-metrics) ;; *) die "unknown target $t" ;; esac
done
case "$SEXTANT_PROTOCOL" in remote-write|otlp) ;; *) die "--sextant-protocol: remote-write or otlp" ;; esac
has_target() { [[ ",$TARGETS," == *",$1,"* ]]; }
for tool in curl jq python3 du; do command -v "$tool" >/dev/null || die "$tool is required"; done
has_target prometheus && { command -v prometheus >/dev/null || die "prometheus not found (apt-get install -y prometheus)"; }
has_target victoria-metrics && { command -v victoria-metrics >/dev/null || die "victoria-metrics not found (apt-get install -y victoria-metrics)"; }

if [ "$BUILD" = 1 ]; then
  pkgs=(-p loadgen)
  has_target sextant && pkgs+=(-p sextant)
  log "cargo build --release ${pkgs[*]}"
  (cd "$ROOT" && cargo build --release "${pkgs[@]}") >&2 \
    || die "build failed (drop sextant with --targets prometheus,victoria-metrics if it does not build yet)"
fi
LOADGEN=$ROOT/target/release/loadgen
SEXTANT=$ROOT/target/release/sextant
[ -x "$LOADGEN" ] || die "$LOADGEN missing"
has_target sextant && { [ -x "$SEXTANT" ] || die "$SEXTANT missing"; }

INTERVAL_MS=15000
# One start time for every target, so each receives byte-identical requests.
# Floored to 2 h so that block boundaries fall at the same place for all of them.
if [ -z "$START_MS" ]; then
  START_MS=$(( ( $(date +%s) * 1000 - STEPS * INTERVAL_MS - 60000 ) / 7200000 * 7200000 ))
fi
END_S=$(( (START_MS + (STEPS - 1) * INTERVAL_MS) / 1000 + 1 ))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sextant-bench.XXXXXX")
OUT=${OUT:-$WORK/results.md}
RESULTS=$WORK/raw.jsonl
: > "$RESULTS"
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -9 "$PID" 2>/dev/null || true; fi
  if [ "$KEEP" = 0 ]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT
log "work dir $WORK; start_ms=$START_MS; $SERIES series x $STEPS steps, $SENDERS senders"

# Single-core memcpy bandwidth: the bound for decoding samples (reported at 16 bytes/sample).
MEMBW='{}'
if [ "$QUERY" = 1 ]; then
  MEMBW=$("$LOADGEN" membw) || MEMBW='{}'
  log "memcpy bandwidth: $(echo "$MEMBW" | jq -r '(.membw_bytes_per_s // 0) / 1e9 | tostring | .[0:5]') GB/s"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true; }
status_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); split($0, f, " "); printf "%.2f", (f[12]+f[13])/t }' "/proc/$1/stat"; }
# Allocated bytes (what the disk really holds), of the given paths together.
disk_bytes() { local p=(); for x in "$@"; do [ -e "$x" ] && p+=("$x"); done; [ ${#p[@]} -gt 0 ] && du -s -B1 -c "${p[@]}" | awk 'END {print $1}' || echo 0; }

# start_target NAME DIR PORT: starts it in the background, sets PID.
start_target() {
  local name=$1 dir=$2 port=$3
  case "$name" in
    prometheus)
      printf 'global:\n  scrape_interval: 15s\n' > "$WORK/prometheus.yml"
      prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$dir" \
        --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver \
        --web.enable-admin-api >> "$WORK/$name.log" 2>&1 &
      ;;
    victoria-metrics)
      victoria-metrics -storageDataPath="$dir" -httpListenAddr="127.0.0.1:$port" \
        >> "$WORK/$name.log" 2>&1 &
      ;;
    sextant)
      # No self-monitoring, no host collector and no built-in rules (like the peers, which
      # scrape and evaluate nothing here): their samples at "now" (the built-in SLO rules
      # record constant objectives) would make the head reject the back-dated workload as out
      # of bounds, and add series.
      "$SEXTANT" serve --listen "127.0.0.1:$port" --data-dir "$dir" --self-monitor-interval 0 --no-host-metrics \
        --no-default-rules \
        >> "$WORK/$name.log" 2>&1 &
      ;;
  esac
  PID=$!
}

ready_path() { [ "$1" = victoria-metrics ] && echo /health || echo /-/ready; }

# wait_ready NAME PORT TIMEOUT: prints seconds until the readiness endpoint answered 200.
wait_ready() {
  local t0 deadline; t0=$(now); deadline=$(( $(date +%s) + $3 ))
  while [ "$(http_code "http://127.0.0.1:$2$(ready_path "$1")")" != 200 ]; do
    kill -0 "$PID" 2>/dev/null || { tail -20 "$WORK/$1.log" >&2; die "$1 exited during start-up"; }
    [ "$(date +%s)" -lt "$deadline" ] || die "$1 not ready after $3 s"
    sleep 0.02
  done
  awk -v a="$(now)" -v b="$t0" 'BEGIN {printf "%.3f", a - b}'
}

stop_target() {
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=
}

# count_series NAME PORT: count({__name__=~".+"}) at the last sample's time, or "n/a".
count_series() {
  local body
  body=$(curl -s --max-time 120 "http://127.0.0.1:$2/api/v1/query" \
    --data-urlencode 'query=count({__name__=~".+"})' --data-urlencode "time=$END_S" || true)
  echo "$body" | jq -r '.data.result[0].value[1] // "n/a"' 2>/dev/null || echo n/a
}

blocks_dir() { [ "$1" = sextant ] && echo "$2/blocks" || echo "$2"; }
count_blocks() { find "$1" -mindepth 2 -maxdepth 2 -name meta.json 2>/dev/null | grep -vc '\.tmp' || true; }

# wait_blocks NAME DIR: Prometheus-style TSDBs cut a 2 h block once the head spans > 3 h;
# wait (up to --block-wait s) until one exists and the count is stable, so the disk and
# peak-RSS figures include that compaction.
wait_blocks() {
  [ "$1" = victoria-metrics ] && return 0
  [ $(( STEPS * INTERVAL_MS )) -gt 10800000 ] || return 0
  local bdir blocks waited=0 last=-1 stable=0; bdir=$(blocks_dir "$1" "$2")
  while [ "$waited" -lt "$BLOCK_WAIT" ]; do
    blocks=$(count_blocks "$bdir")
    if [ "$blocks" -gt 0 ] && [ "$blocks" = "$last" ] && ! ls -d "$bdir"/*.tmp* >/dev/null 2>&1; then
      stable=$((stable + 1)); [ "$stable" -ge 5 ] && break
    else stable=0; fi
    last=$blocks; sleep 1; waited=$((waited + 1))
  done
  log "$1: $blocks block(s) on disk after ${waited}s"
}

# stored_samples NAME PORT: sum of count_over_time over the whole run, per metric name and job
# (count_over_time drops __name__, and Prometheus' default --query.max-samples is 50M), so a
# lost or dropped sample shows. The names are the ones bench/loadgen sends.
METRICS="agent_tool_calls_total agent_tokens_total agent_inflight_calls agent_context_fill_percent
  agent_tool_duration_seconds_bucket agent_tool_duration_seconds_sum agent_tool_duration_seconds_count"
stored_samples() {
  local total=0 j m v range=$(( STEPS * INTERVAL_MS / 1000 + 60 ))
  for m in $METRICS; do
    for j in 0 1 2 3; do
      v=$(curl -s --max-time 600 "http://127.0.0.1:$2/api/v1/query" \
        --data-urlencode "query=sum(count_over_time($m{job=\"agents-$j\"}[${range}s]))" \
        --data-urlencode "time=$END_S" | jq -r '.data.result[0].value[1] // empty' 2>/dev/null || true)
      [ -n "$v" ] || { echo n/a; return; }
      total=$((total + v))
    done
  done
  echo "$total"
}

# flush_and_measure NAME PORT DIR: prints JSON with on-disk figures.
flush_and_measure() {
  local name=$1 port=$2 dir=$3 blocks=0 total wal head blocks_b snap_b=null snap bdir
  case "$name" in
    prometheus|sextant)
      bdir=$(blocks_dir "$name" "$dir")
      blocks=$(count_blocks "$bdir")
      total=$(disk_bytes "$dir")
      wal=$(disk_bytes "$dir/wal")
      head=$(disk_bytes "$dir/chunks_head")
      blocks_b=$(find "$bdir" -mindepth 1 -maxdepth 1 -type d -name '01*' -print0 2>/dev/null \
        | xargs -0 -r du -s -B1 -c | awk 'END {print $1+0}')
      # Snapshot writes the head as blocks too: all data in block format, WAL excluded.
      snap=$(curl -s --max-time 600 -X POST "http://127.0.0.1:$port/api/v1/admin/tsdb/snapshot" \
        | jq -r '.data.name // empty' 2>/dev/null || true)
      if [ -n "$snap" ] && [ -d "$dir/snapshots/$snap" ]; then
        snap_b=$(disk_bytes "$dir/snapshots/$snap")
        rm -rf "$dir/snapshots"
      else
        log "$name: snapshot API failed; no all-blocks figure"
      fi
      ;;
    victoria-metrics)
      # /internal/force_flush only makes fresh rows searchable: VictoriaMetrics 1.79 keeps
      # recent parts in memory (lost on kill -9). Creating a snapshot writes them out, like the
      # head-to-block snapshot above. It has no WAL, so both figures are the same.
      curl -s --max-time 600 "http://127.0.0.1:$port/snapshot/create" >/dev/null || log "$name: snapshot failed"
      local parts=(); for x in "$dir"/*; do [ "${x##*/}" = snapshots ] || parts+=("$x"); done
      total=$(disk_bytes "${parts[@]}"); wal=0; head=0; blocks_b=$(disk_bytes "$dir/data"); snap_b=$total
      curl -s "http://127.0.0.1:$port/snapshot/delete_all" >/dev/null || true
      ;;
  esac
  jq -nc --argjson total "$total" --argjson wal "$wal" --argjson head "$head" \
    --argjson blocks "${blocks_b:-0}" --argjson nblocks "${blocks:-0}" --argjson snap "$snap_b" \
    '{disk_total:$total, disk_wal:$wal, disk_chunks_head:$head, disk_blocks:$blocks, blocks:$nblocks, disk_all_as_blocks:$snap}'
}

for name in ${TARGETS//,/ }; do
  dir=$WORK/$name-data; port=$(free_port); mkdir -p "$dir"
  log "== $name on 127.0.0.1:$port, data in $dir"
  start_target "$name" "$dir" "$port"
  cold=$(wait_ready "$name" "$port" 120)
  cpu0=$(cpu_s "$PID")
  set +e
  url="http://127.0.0.1:$port/api/v1/write"; proto=remote-write
  if [ "$name" = sextant ] && [ "$SEXTANT_PROTOCOL" = otlp ]; then
    url="http://127.0.0.1:$port/v1/metrics"; proto=otlp
  fi
  "$LOADGEN" --url "$url" --protocol "$proto" --name "$name" --series "$SERIES" \
    --steps "$STEPS" --senders "$SENDERS" --seed "$SEED" --start-ms "$START_MS" \
    > "$WORK/$name.loadgen.json"
  lg_rc=$?
  set -e
  [ -s "$WORK/$name.loadgen.json" ] || die "loadgen produced no result for $name"
  [ "$lg_rc" = 0 ] || log "$name: loadgen reported unacknowledged samples (rc $lg_rc)"
  cpu1=$(cpu_s "$PID")
  loadavg=$(cut -d' ' -f1 /proc/loadavg)
  wait_blocks "$name" "$dir"
  hwm=$(status_kb "$PID" VmHWM); rss=$(status_kb "$PID" VmRSS)
  [ "$name" = victoria-metrics ] && curl -s "http://127.0.0.1:$port/internal/force_flush" >/dev/null && sleep 2
  # Query benchmark, sequential, before anything else queries the server; peak RSS after it.
  qjson='null'; hwm_query=null; cpu_query=null
  if [ "$QUERY" = 1 ]; then
    log "$name: query benchmark ($QUERY_WARMUP warm-up + $QUERY_RUNS timed runs per query)"
    lg_start=$(jq -r .start_ms "$WORK/$name.loadgen.json"); lg_end=$(jq -r .end_ms "$WORK/$name.loadgen.json")
    qc0=$(cpu_s "$PID")
    set +e
    "$LOADGEN" query --url "http://127.0.0.1:$port" --name "$name" --start-ms "$lg_start" \
      --end-ms "$lg_end" --runs "$QUERY_RUNS" --warmup "$QUERY_WARMUP" --pid "$PID" \
      > "$WORK/$name.query.json"
    q_rc=$?
    set -e
    [ "$q_rc" = 0 ] || log "$name: some queries failed (rc $q_rc; see the report)"
    kill -0 "$PID" 2>/dev/null || { tail -20 "$WORK/$name.log" >&2; die "$name died during the query benchmark"; }
    [ -s "$WORK/$name.query.json" ] && qjson=$(cat "$WORK/$name.query.json")
    hwm_query=$(status_kb "$PID" VmHWM)
    cpu_query=$(awk -v a="$(cpu_s "$PID")" -v b="$qc0" 'BEGIN {printf "%.2f", a - b}')
  fi
  count=$(count_series "$name" "$port")
  stored=$(stored_samples "$name" "$port")
  log "$name: $(jq -r '"\(.samples_acked) samples acked, \(.samples_per_s) samples/s"' "$WORK/$name.loadgen.json"); VmHWM ${hwm} kB; count=$count; stored samples=$stored"
  disk=$(flush_and_measure "$name" "$port" "$dir")
  # Crash: kill -9, restart on the same data, time until ready.
  kill -9 "$PID"; wait "$PID" 2>/dev/null || true
  start_target "$name" "$dir" "$port"
  replay=$(wait_ready "$name" "$port" 1800)
  hwm_replay=$(status_kb "$PID" VmHWM)
  count_after=$(count_series "$name" "$port")
  stored_after=$(stored_samples "$name" "$port")
  log "$name: ready ${replay}s after kill -9; count after restart=$count_after; stored samples=$stored_after"
  stop_target
  jq -c --argjson query "$qjson" --argjson hwm_query "$hwm_query" --argjson cpu_query "$cpu_query" \
    --argjson membw "$MEMBW" --argjson cold "$cold" --argjson replay "$replay" --argjson hwm "$hwm" --argjson rss "$rss" \
    --argjson hwm_replay "$hwm_replay" --argjson loadavg "$loadavg" --argjson cpu "$(awk -v a="$cpu1" -v b="$cpu0" 'BEGIN {printf "%.2f", a - b}')" \
    --arg count "$count" --arg stored "$stored" --arg count_after "$count_after" --arg stored_after "$stored_after" --argjson disk "$disk" \
    '. + {cold_start_s:$cold, replay_s:$replay, vmhwm_kb:$hwm, vmrss_kb:$rss, vmhwm_after_replay_kb:$hwm_replay,
          server_cpu_s:$cpu, loadavg_end:$loadavg, count_series:$count, stored_samples:$stored, count_series_after_restart:$count_after, stored_samples_after_restart:$stored_after,
          query:$query, vmhwm_after_query_kb:$hwm_query, server_cpu_query_s:$cpu_query} + $membw + $disk' \
    "$WORK/$name.loadgen.json" >> "$RESULTS"
done

python3 "$ROOT/bench/report.py" "$RESULTS" "$CMDLINE" > "$OUT"
cp "$RESULTS" "${OUT%.md}.jsonl"
cat "$OUT"
log "wrote $OUT and ${OUT%.md}.jsonl"
