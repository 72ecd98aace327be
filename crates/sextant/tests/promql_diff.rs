//! Differential PromQL test: Sextant vs. Prometheus 2.42.
//!
//! One deterministic data set (see `generate`) is
//!   * written as OpenMetrics and backfilled into a Prometheus TSDB with
//!     `promtool tsdb create-blocks-from openmetrics`, then served by `prometheus`;
//!   * imported into a fresh Sextant via `POST /api/v1/import/prometheus`, in
//!     timestamp order (the head refuses samples older than newest - 1h).
//!
//! Every query of `promql_diff/queries.txt` is evaluated as instant queries at
//! several times and as range queries against both servers over the Prometheus
//! HTTP API, and the JSON results are compared. All mismatches are collected
//! and reported; the number of mismatching queries must not exceed the
//! baseline in `promql_diff/known_mismatches.txt` (which may only go down), and
//! every mismatching query must be listed there with its reason.
//!
//! If `prometheus`/`promtool` are not installed the test is skipped (prints
//! "SKIPPED: prometheus not installed") unless `SEXTANT_REQUIRE_PEERS=1`.
//!
//! `cargo test -p sextant --test promql_diff -- --ignored` runs
//! `prometheus_side_only`, which checks the data and queries against
//! Prometheus alone (every query succeeds unless marked `!` = expected error,
//! or `~` = instant only).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------------------
// Data set
// ---------------------------------------------------------------------------

/// 2026-01-01T00:00:00Z, in seconds.
const T0: i64 = 1_767_225_600;
/// Scrape interval, seconds.
const STEP_S: i64 = 15;
/// Samples sit 3 s after each 15 s mark, so no evaluation step, subquery step (whole
/// multiples of the step since the epoch), lookback or range boundary used by the queries
/// (multiples of 5 s away from a step) ever falls on a sample: 2.42 closes ranges on the left,
/// 3.x does not, and a boundary sample would make the two disagree by design.
const PHASE_S: i64 = 3;
/// Number of sample timestamps: T0+3s, T0+18s, ..., T0+2h+3s (inclusive).
const POINTS: usize = 481;
/// Last sample timestamp (seconds).
const T_END: i64 = T0 + PHASE_S + STEP_S * (POINTS as i64 - 1);

struct Series {
    /// OpenMetrics family name and type (`# TYPE` line).
    family: &'static str,
    kind: &'static str,
    name: String,
    labels: Vec<(String, String)>,
    /// (timestamp seconds, value); strictly increasing timestamps.
    samples: Vec<(i64, f64)>,
}

impl Series {
    fn new(family: &'static str, kind: &'static str, name: &str, labels: &[(&str, &str)]) -> Self {
        Series {
            family,
            kind,
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            samples: Vec::with_capacity(POINTS),
        }
    }

    fn series_text(&self) -> String {
        let mut s = self.name.clone();
        if !self.labels.is_empty() {
            s.push('{');
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(s, "{k}=\"{v}\"");
            }
            s.push('}');
        }
        s
    }
}

/// xorshift64* — deterministic, no external crate.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Gauges used by topk/bottomk get 6 decimals so that no two series tie
/// (tie-breaking in topk/bottomk is unspecified).
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn ts(i: usize) -> i64 {
    T0 + PHASE_S + STEP_S * i as i64
}

/// ~61 series over 2h at 15s.
fn generate() -> Vec<Series> {
    let mut rng = Rng(0x5EC7_A17_D1FF_u64);
    let mut out = Vec::new();

    // Counters with resets: http_requests_total{job,instance,status}.
    let api_instances = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"];
    for (ii, inst) in api_instances.iter().enumerate() {
        for status in ["200", "500"] {
            let mut s = Series::new(
                "http_requests",
                "counter",
                "http_requests_total",
                &[("job", "api"), ("instance", inst), ("status", status)],
            );
            let max_inc = if status == "200" { 20 } else { 3 };
            // Counters start far from zero: 2.42 and 3.x order the zero-point and half-interval
            // caps of rate()'s extrapolation differently, which only shows when a window's first
            // sample is close to zero.
            let mut v = 1000.0 + rng.below(1000) as f64;
            for i in 0..POINTS {
                let reset = (ii == 1 && i == 200)
                    || (ii == 2 && (i == 350 || (status == "500" && i == 90)));
                if reset {
                    v = rng.below(3) as f64;
                } else if i > 0 {
                    v += rng.below(max_inc + 1) as f64;
                }
                s.samples.push((ts(i), v));
            }
            out.push(s);
        }
    }

    // Counters: tool_calls_total{job,model,tool}, one reset.
    for model in ["alpha", "beta"] {
        for tool in ["search", "calc", "fetch"] {
            let mut s = Series::new(
                "tool_calls",
                "counter",
                "tool_calls_total",
                &[("job", "agent"), ("model", model), ("tool", tool)],
            );
            let mut v = 500.0;
            for i in 0..POINTS {
                if model == "alpha" && tool == "fetch" && i == 300 {
                    v = 0.0;
                } else if i > 0 {
                    v += rng.below(6) as f64;
                }
                s.samples.push((ts(i), v));
            }
            out.push(s);
        }
    }

    // Sparse counters: errors_total{job,instance}; instance 1 never increases.
    for (ii, inst) in api_instances.iter().enumerate() {
        let mut s = Series::new(
            "errors",
            "counter",
            "errors_total",
            &[("job", "api"), ("instance", inst)],
        );
        let mut v = 0.0;
        for i in 0..POINTS {
            if ii > 0 && i > 0 && rng.below(10) == 0 {
                v += (1 + rng.below(ii as u64 * 2)) as f64;
            }
            s.samples.push((ts(i), v));
        }
        out.push(s);
    }

    // Gauges: gpu_temp_celsius (40..90 random walk), memory_bytes (large integers).
    let gpus = ["gpu-0", "gpu-1", "gpu-2", "gpu-3"];
    for inst in gpus {
        let mut s = Series::new(
            "gpu_temp_celsius",
            "gauge",
            "gpu_temp_celsius",
            &[("job", "node"), ("instance", inst)],
        );
        let mut v = 40.0 + rng.unit() * 50.0;
        for i in 0..POINTS {
            // Random walk reflected at 40 and 90 (no clamping: avoids ties).
            v += (rng.unit() - 0.5) * 4.0;
            if v > 90.0 {
                v = 180.0 - v;
            } else if v < 40.0 {
                v = 80.0 - v;
            }
            s.samples.push((ts(i), round6(v)));
        }
        out.push(s);
    }
    for inst in gpus {
        let mut s = Series::new(
            "memory_bytes",
            "gauge",
            "memory_bytes",
            &[("job", "node"), ("instance", inst)],
        );
        let mut v = 1.0e9 + (rng.below(1_000_000_000)) as f64;
        for i in 0..POINTS {
            v += rng.below(20_000_001) as f64 - 10_000_000.0;
            s.samples.push((ts(i), v));
        }
        out.push(s);
    }

    // Gauges around zero (negative values): balance_delta.
    for inst in ["b1", "b2", "b3"] {
        let mut s = Series::new(
            "balance_delta",
            "gauge",
            "balance_delta",
            &[("job", "bank"), ("instance", inst)],
        );
        let mut v = (rng.unit() - 0.5) * 20.0;
        for i in 0..POINTS {
            v += (rng.unit() - 0.5) * 3.0;
            s.samples.push((ts(i), round6(v)));
        }
        out.push(s);
    }

    // Integer gauges: queue_depth.
    for inst in ["w1", "w2", "w3"] {
        let mut s = Series::new(
            "queue_depth",
            "gauge",
            "queue_depth",
            &[("job", "worker"), ("instance", inst)],
        );
        let mut v = rng.below(30) as i64;
        for i in 0..POINTS {
            v = (v + rng.below(7) as i64 - 3).clamp(0, 50);
            s.samples.push((ts(i), v as f64));
        }
        out.push(s);
    }

    // Gauges in [-1, 1] (for acos, asin, atanh ...): unit_gauge.
    for (k, inst) in ["u1", "u2"].iter().enumerate() {
        let mut s = Series::new(
            "unit_gauge",
            "gauge",
            "unit_gauge",
            &[("job", "trig"), ("instance", inst)],
        );
        for i in 0..POINTS {
            let v = ((i as f64) * 0.05 + k as f64 * 1.3).sin() * 0.98 + (rng.unit() - 0.5) * 0.02;
            s.samples.push((ts(i), round3(v)));
        }
        out.push(s);
    }

    // Classic histogram: request_duration_seconds{job,instance,le}; instance 2 resets.
    let les = ["0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "+Inf"];
    let bounds = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, f64::INFINITY];
    for (ii, inst) in api_instances[..2].iter().enumerate() {
        let mut buckets = [0u64; 7];
        let mut sum = 0.0f64;
        let mut count = 0u64;
        let mut bucket_series: Vec<Series> = les
            .iter()
            .map(|le| {
                Series::new(
                    "request_duration_seconds",
                    "histogram",
                    "request_duration_seconds_bucket",
                    &[("job", "api"), ("instance", inst), ("le", le)],
                )
            })
            .collect();
        let mut sum_s = Series::new(
            "request_duration_seconds",
            "histogram",
            "request_duration_seconds_sum",
            &[("job", "api"), ("instance", inst)],
        );
        let mut count_s = Series::new(
            "request_duration_seconds",
            "histogram",
            "request_duration_seconds_count",
            &[("job", "api"), ("instance", inst)],
        );
        for i in 0..POINTS {
            if ii == 1 && i == 250 {
                buckets = [0; 7];
                sum = 0.0;
                count = 0;
            }
            if i > 0 {
                let n = rng.below(25);
                for _ in 0..n {
                    // Roughly log-uniform between 10ms and ~4s, in ms resolution.
                    let d = round3(0.01 * (400f64).powf(rng.unit()) * (1.0 + ii as f64 * 0.3));
                    sum += d;
                    count += 1;
                    for (b, ub) in bounds.iter().enumerate() {
                        if d <= *ub {
                            buckets[b] += 1;
                        }
                    }
                }
            }
            for (b, bs) in bucket_series.iter_mut().enumerate() {
                bs.samples.push((ts(i), buckets[b] as f64));
            }
            sum_s.samples.push((ts(i), round3(sum)));
            count_s.samples.push((ts(i), count as f64));
        }
        out.extend(bucket_series);
        out.push(sum_s);
        out.push(count_s);
    }

    // Series with gaps longer than the 5m lookback: flaky_up.
    for (inst, gaps) in [
        ("p1", vec![(100usize, 131usize)]),
        ("p2", vec![(200, 241), (400, 431)]),
    ] {
        let mut s = Series::new(
            "flaky_up",
            "gauge",
            "flaky_up",
            &[("job", "probe"), ("instance", inst)],
        );
        for i in 0..POINTS {
            if gaps.iter().any(|(a, b)| i >= *a && i < *b) {
                continue;
            }
            s.samples.push((ts(i), (i % 7 + 1) as f64));
        }
        out.push(s);
    }

    // A series that ends early (last sample at T0+50m).
    {
        let mut s = Series::new(
            "short_lived",
            "gauge",
            "short_lived",
            &[("job", "batch"), ("instance", "x")],
        );
        for i in 0..=200 {
            s.samples.push((ts(i), (i * 2) as f64));
        }
        out.push(s);
    }

    // up{job,instance}: flips for changes()/resets().
    for (job, inst) in api_instances
        .iter()
        .map(|i| ("api", *i))
        .chain(gpus.iter().map(|i| ("node", *i)))
    {
        let mut s = Series::new("up", "gauge", "up", &[("job", job), ("instance", inst)]);
        let flappy = inst == "10.0.0.3:8080" || inst == "gpu-2";
        for i in 0..POINTS {
            let v = if flappy && rng.below(12) == 0 {
                0.0
            } else {
                1.0
            };
            s.samples.push((ts(i), v));
        }
        out.push(s);
    }

    // Info-style series for group_left joins.
    for (model, version) in [("alpha", "v1"), ("beta", "v2")] {
        let mut s = Series::new(
            "model_info",
            "gauge",
            "model_info",
            &[("model", model), ("version", version)],
        );
        for i in 0..POINTS {
            s.samples.push((ts(i), 1.0));
        }
        out.push(s);
    }

    out
}

/// OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`
/// (timestamps in seconds; families contiguous; `# EOF`).
fn openmetrics(series: &[Series]) -> String {
    let mut out = String::new();
    let mut last_family = "";
    for s in series {
        if s.family != last_family {
            let _ = writeln!(out, "# TYPE {} {}", s.family, s.kind);
            last_family = s.family;
        }
        let st = s.series_text();
        for (t, v) in &s.samples {
            let _ = writeln!(out, "{st} {v} {t}");
        }
    }
    out.push_str("# EOF\n");
    out
}

/// Prometheus text format 0.0.4 lines (timestamps in ms), in timestamp order,
/// split into batches of at most `batch_lines` lines.
fn import_batches(series: &[Series], batch_lines: usize) -> Vec<String> {
    let texts: Vec<String> = series.iter().map(|s| s.series_text()).collect();
    let mut idx = vec![0usize; series.len()];
    let mut batches = Vec::new();
    let mut cur = String::new();
    let mut lines = 0;
    for i in 0..POINTS {
        let t = ts(i);
        for (k, s) in series.iter().enumerate() {
            if let Some((st, v)) = s.samples.get(idx[k]) {
                if *st == t {
                    let _ = writeln!(cur, "{} {} {}", texts[k], v, t * 1000);
                    idx[k] += 1;
                    lines += 1;
                }
            }
        }
        if lines >= batch_lines {
            batches.push(std::mem::take(&mut cur));
            lines = 0;
        }
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// Kills the child (by pid) when dropped, also on panic.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
    base: String,
}

impl Proc {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Waits until `GET /-/ready` answers 200, the process exits, or `timeout`.
fn wait_ready(
    p: &mut Proc,
    http: &reqwest::blocking::Client,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = p.child.try_wait() {
            return Err(format!(
                "{} exited with {status} before becoming ready; log tail:\n{}",
                p.name,
                p.log_tail()
            ));
        }
        if let Ok(r) = http
            .get(format!("{}/-/ready", p.base))
            .timeout(Duration::from_secs(2))
            .send()
        {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} not ready within {timeout:?}; log tail:\n{}",
                p.name,
                p.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf, port: u16) -> Proc {
    let f = std::fs::File::create(&log).unwrap();
    let f2 = f.try_clone().unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(f))
        .stderr(Stdio::from(f2))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
    Proc {
        name,
        child,
        log,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// Backfills the data set into a fresh TSDB and starts Prometheus on it.
fn start_prometheus(dir: &Path, series: &[Series], http: &reqwest::blocking::Client) -> Proc {
    let om = dir.join("data.om.txt");
    std::fs::write(&om, openmetrics(series)).unwrap();
    let tsdb = dir.join("prom-tsdb");
    std::fs::create_dir_all(&tsdb).unwrap();
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(&om)
        .arg(&tsdb)
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool create-blocks-from openmetrics failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
    )
    .unwrap();
    let port = free_port();
    let mut p = spawn(
        "prometheus",
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir),
        dir.join("prometheus.log"),
        port,
    );
    if let Err(e) = wait_ready(&mut p, http, Duration::from_secs(30)) {
        panic!("{e}");
    }
    p
}

/// Starts Sextant on an empty data dir and imports the data set in timestamp order.
fn start_sextant(dir: &Path, series: &[Series], http: &reqwest::blocking::Client) -> Proc {
    let data = dir.join("sextant-data");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let mut p = spawn(
        "sextant",
        Command::new(env!("CARGO_BIN_EXE_sextant"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--self-monitor-interval")
            .arg("0")
            .arg("--no-host-metrics")
            // The built-in SLO rules record constants at "now", which would put the head's
            // window past the back-dated data set.
            .arg("--no-default-rules")
            .current_dir(dir),
        dir.join("sextant.log"),
        port,
    );
    if let Err(e) = wait_ready(&mut p, http, Duration::from_secs(5)) {
        panic!("sextant side unavailable (the differential test requires a working sextant binary): {e}");
    }
    for (n, batch) in import_batches(series, 3000).into_iter().enumerate() {
        let r = http
            .post(format!("{}/api/v1/import/prometheus", p.base))
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(batch)
            .send()
            .unwrap_or_else(|e| panic!("sextant import batch {n}: {e}"));
        let status = r.status();
        let body = r.text().unwrap_or_default();
        assert!(
            status.is_success(),
            "sextant import batch {n}: HTTP {status}: {body}"
        );
    }
    p
}

// ---------------------------------------------------------------------------
// Queries and evaluations
// ---------------------------------------------------------------------------

struct QuerySpec {
    line: usize,
    query: String,
    /// Marked with a leading `!`: Prometheus is expected to return an error.
    expect_error: bool,
    /// Marked with a leading `~`: range-vector/string result; Prometheus
    /// answers instant queries but rejects range queries.
    instant_only: bool,
}

fn test_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/promql_diff")
}

fn load_queries() -> Vec<QuerySpec> {
    let text = std::fs::read_to_string(test_dir().join("queries.txt")).unwrap();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (expect_error, instant_only, q) = if let Some(rest) = line.strip_prefix('!') {
            (true, false, rest.trim())
        } else if let Some(rest) = line.strip_prefix('~') {
            (false, true, rest.trim())
        } else {
            (false, false, line)
        };
        assert!(
            seen.insert(q.to_string()),
            "queries.txt:{}: duplicate query {q}",
            n + 1
        );
        out.push(QuerySpec {
            line: n + 1,
            query: q.to_string(),
            expect_error,
            instant_only,
        });
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Eval {
    Instant(f64),
    Range { start: f64, end: f64, step: f64 },
}

impl std::fmt::Display for Eval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rel = |t: f64| {
            let d = t - T0 as f64;
            format!("T0{:+}s", d)
        };
        match *self {
            Eval::Instant(t) => write!(f, "instant time={t:.3} ({})", rel(t)),
            Eval::Range { start, end, step } => {
                write!(
                    f,
                    "range start={start:.3} ({}) end={end:.3} ({}) step={step}s",
                    rel(start),
                    rel(end)
                )
            }
        }
    }
}

/// Evaluation times never fall on a sample timestamp (all end in .5 s), so
/// range-boundary semantics (left-closed in 2.42, left-open in 3.x) do not matter.
fn evaluations() -> Vec<Eval> {
    let t0 = T0 as f64;
    vec![
        Eval::Instant(t0 + 1807.5),          // 30m07.5s
        Eval::Instant(t0 + 3307.5),          // 55m07.5s: short_lived just gone (last sample 50m)
        Eval::Instant(t0 + 5407.5),          // 1h30m07.5s
        Eval::Instant(T_END as f64 + 157.5), // 2m37.5s after the last sample
        Eval::Range {
            start: t0 + 1807.5,
            end: T_END as f64 - 592.5,
            step: 60.0,
        },
        Eval::Range {
            start: t0 + 7.5,
            end: T_END as f64 + 607.5,
            step: 37.0,
        },
    ]
}

fn fmt_time(t: f64) -> String {
    format!("{t:.3}")
}

/// Runs one evaluation; returns the parsed JSON body (also for HTTP errors).
fn run_query(http: &reqwest::blocking::Client, base: &str, q: &str, ev: Eval) -> Value {
    let req = match ev {
        Eval::Instant(t) => http
            .get(format!("{base}/api/v1/query"))
            .query(&[("query", q), ("time", &fmt_time(t))]),
        Eval::Range { start, end, step } => {
            http.get(format!("{base}/api/v1/query_range")).query(&[
                ("query", q),
                ("start", &fmt_time(start)),
                ("end", &fmt_time(end)),
                ("step", &format!("{step}")),
            ])
        }
    };
    match req.send() {
        Err(e) => serde_json::json!({"status": "transport_error", "error": e.to_string()}),
        Ok(r) => {
            let status = r.status();
            let mut body = String::new();
            let _ = r.take(64 << 20).read_to_string(&mut body);
            serde_json::from_str(&body).unwrap_or_else(|e| {
                serde_json::json!({"status": "bad_json", "error": format!("HTTP {status}: {e}: {}", truncate(&body, 300))})
            })
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

fn is_success(v: &Value) -> bool {
    v["status"] == "success"
}

fn error_summary(v: &Value) -> String {
    format!(
        "status={} errorType={} error={}",
        v["status"],
        v["errorType"],
        truncate(v["error"].as_str().unwrap_or(""), 200)
    )
}

fn values_equal(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => {
            if x.is_nan() || y.is_nan() || x.is_infinite() || y.is_infinite() {
                // "NaN", "+Inf", "-Inf" must match exactly (same class and sign).
                return (x.is_nan() && y.is_nan()) || x == y;
            }
            let diff = (x - y).abs();
            diff <= 1e-12 || diff <= 1e-9 * x.abs().max(y.abs())
        }
        _ => false,
    }
}

fn ts_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x * 1000.0).round() == (y * 1000.0).round(),
        _ => false,
    }
}

/// `[t, "v"]` pair comparison.
fn point_diff(p: &Value, s: &Value) -> Option<String> {
    let (pt, pv) = (&p[0], p[1].as_str().unwrap_or("?"));
    let (st, sv) = (&s[0], s[1].as_str().unwrap_or("?"));
    if !ts_equal(pt, st) {
        return Some(format!("timestamp: prometheus {pt} vs sextant {st}"));
    }
    if !values_equal(pv, sv) {
        return Some(format!("value at {pt}: prometheus {pv} vs sextant {sv}"));
    }
    None
}

fn labels_key(m: &Value) -> String {
    let map: BTreeMap<String, String> = m
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let inner: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn series_by_labels(result: &Value) -> Result<BTreeMap<String, &Value>, String> {
    let mut out = BTreeMap::new();
    for s in result.as_array().ok_or("result is not an array")? {
        let k = labels_key(&s["metric"]);
        if out.insert(k.clone(), s).is_some() {
            return Err(format!("duplicate series {k}"));
        }
    }
    Ok(out)
}

/// Compares two successful responses; returns the first difference.
fn compare_success(p: &Value, s: &Value, ordered: bool) -> Option<String> {
    let (pd, sd) = (&p["data"], &s["data"]);
    let rt = pd["resultType"].as_str().unwrap_or("?");
    if pd["resultType"] != sd["resultType"] {
        return Some(format!(
            "resultType: prometheus {} vs sextant {}",
            pd["resultType"], sd["resultType"]
        ));
    }
    let (pr, sr) = (&pd["result"], &sd["result"]);
    match rt {
        "scalar" | "string" => point_diff(pr, sr),
        "vector" | "matrix" => {
            let pm = match series_by_labels(pr) {
                Ok(m) => m,
                Err(e) => return Some(format!("prometheus result: {e}")),
            };
            let sm = match series_by_labels(sr) {
                Ok(m) => m,
                Err(e) => return Some(format!("sextant result: {e}")),
            };
            let pk: BTreeSet<&String> = pm.keys().collect();
            let sk: BTreeSet<&String> = sm.keys().collect();
            if pk != sk {
                let only_p: Vec<_> = pk.difference(&sk).take(3).collect();
                let only_s: Vec<_> = sk.difference(&pk).take(3).collect();
                return Some(format!(
                    "series sets differ ({} vs {}): only in prometheus {:?}; only in sextant {:?}",
                    pk.len(),
                    sk.len(),
                    only_p,
                    only_s
                ));
            }
            for (k, ps) in &pm {
                let ss = sm[k];
                if rt == "vector" {
                    if let Some(d) = point_diff(&ps["value"], &ss["value"]) {
                        return Some(format!("series {k}: {d}"));
                    }
                } else {
                    let pv = ps["values"].as_array().map(|a| a.as_slice()).unwrap_or(&[]);
                    let sv = ss["values"].as_array().map(|a| a.as_slice()).unwrap_or(&[]);
                    for (i, (a, b)) in pv.iter().zip(sv).enumerate() {
                        if let Some(d) = point_diff(a, b) {
                            return Some(format!("series {k}: point {i}: {d}"));
                        }
                    }
                    if pv.len() != sv.len() {
                        let extra = if pv.len() > sv.len() {
                            &pv[sv.len()]
                        } else {
                            &sv[pv.len()]
                        };
                        return Some(format!(
                            "series {k}: {} points in prometheus vs {} in sextant (first extra: {extra})",
                            pv.len(),
                            sv.len()
                        ));
                    }
                }
            }
            if ordered && rt == "vector" {
                // sort()/sort_desc(): the order of values must agree (labels of
                // equal values may legitimately come in any order).
                let pv: Vec<&str> = pr
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["value"][1].as_str().unwrap_or(""))
                    .collect();
                let sv: Vec<&str> = sr
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["value"][1].as_str().unwrap_or(""))
                    .collect();
                for (i, (a, b)) in pv.iter().zip(&sv).enumerate() {
                    if !values_equal(a, b) {
                        return Some(format!(
                            "result order differs at position {i}: prometheus {a} vs sextant {b}"
                        ));
                    }
                }
            }
            None
        }
        other => Some(format!("unknown resultType {other}")),
    }
}

/// Compares a Prometheus response with a Sextant response.
fn compare(p: &Value, s: &Value, ordered: bool) -> Option<String> {
    match (is_success(p), is_success(s)) {
        (true, true) => compare_success(p, s, ordered),
        (true, false) => Some(format!(
            "prometheus succeeded, sextant failed: {}",
            error_summary(s)
        )),
        (false, true) => Some(format!(
            "prometheus failed ({}), sextant succeeded",
            error_summary(p)
        )),
        (false, false) => {
            if p["errorType"] != s["errorType"] {
                Some(format!(
                    "errorType differs: prometheus {} vs sextant {} ({})",
                    p["errorType"],
                    s["errorType"],
                    truncate(s["error"].as_str().unwrap_or(""), 200)
                ))
            } else {
                None
            }
        }
    }
}

/// Top-level sort()/sort_desc() queries get their instant result order checked.
fn is_ordered_query(q: &str) -> bool {
    let q = q.trim_start();
    q.starts_with("sort(") || q.starts_with("sort_desc(")
}

// ---------------------------------------------------------------------------
// Baseline of known mismatches
// ---------------------------------------------------------------------------

struct Baseline {
    max: usize,
    /// query -> reason
    entries: BTreeMap<String, String>,
}

/// Format:
///   max_mismatched_queries = N
///   <query> ## <reason>
fn load_baseline() -> Baseline {
    let text = std::fs::read_to_string(test_dir().join("known_mismatches.txt")).unwrap();
    let mut max = None;
    let mut entries = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("max_mismatched_queries") {
            let v = rest.trim().trim_start_matches('=').trim();
            max = Some(
                v.parse()
                    .unwrap_or_else(|_| panic!("known_mismatches.txt:{}: bad number", n + 1)),
            );
            continue;
        }
        let (q, reason) = line.split_once(" ## ").unwrap_or_else(|| {
            panic!(
                "known_mismatches.txt:{}: expected `<query> ## <reason>`",
                n + 1
            )
        });
        assert!(
            !reason.trim().is_empty(),
            "known_mismatches.txt:{}: empty reason",
            n + 1
        );
        entries.insert(q.trim().to_string(), reason.trim().to_string());
    }
    let max = max.expect("known_mismatches.txt: missing `max_mismatched_queries = N`");
    assert!(
        entries.len() <= max,
        "known_mismatches.txt lists {} queries but max_mismatched_queries = {max}",
        entries.len()
    );
    Baseline { max, entries }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Returns false (after printing the skip note) if Prometheus is unavailable
/// and peers are not required.
fn prometheus_available() -> bool {
    if on_path("prometheus") && on_path("promtool") {
        return true;
    }
    if std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("prometheus/promtool not on PATH and SEXTANT_REQUIRE_PEERS=1");
    }
    println!("SKIPPED: prometheus not installed (prometheus and promtool must be on PATH)");
    false
}

#[test]
fn promql_differential() {
    if !prometheus_available() {
        return;
    }
    let started = Instant::now();
    let queries = load_queries();
    let baseline = load_baseline();
    let series = generate();
    let dir = tempfile::tempdir().unwrap();
    let http = client();

    let prom = start_prometheus(dir.path(), &series, &http);
    let sextant = start_sextant(dir.path(), &series, &http);
    println!(
        "loaded {} series / {} samples into prometheus and sextant in {:.1?}",
        series.len(),
        series.iter().map(|s| s.samples.len()).sum::<usize>(),
        started.elapsed()
    );

    let evals = evaluations();
    let mut n_evals = 0;
    let mut skipped_hw = 0;
    // query -> list of (eval, difference)
    let mut mismatches: BTreeMap<String, Vec<(Eval, String)>> = BTreeMap::new();
    let mut query_order: Vec<&str> = Vec::new();
    for spec in &queries {
        let q = spec.query.as_str();
        let ordered = is_ordered_query(q);
        for &ev in &evals {
            n_evals += 1;
            let p = run_query(&http, &prom.base, q, ev);
            let mut s = run_query(&http, &sextant.base, q, ev);
            if q.contains("holt_winters") && is_success(&p) && !is_success(&s) {
                // 3.x renamed holt_winters to double_exponential_smoothing;
                // accept either name, and skip if Sextant knows neither.
                let alt = q.replace("holt_winters", "double_exponential_smoothing");
                s = run_query(&http, &sextant.base, &alt, ev);
                if !is_success(&s) {
                    skipped_hw += 1;
                    continue;
                }
            }
            if let Some(d) = compare(&p, &s, ordered && matches!(ev, Eval::Instant(_))) {
                if !mismatches.contains_key(q) {
                    query_order.push(q);
                }
                mismatches.entry(q.to_string()).or_default().push((ev, d));
            }
        }
    }

    // Report.
    let mut report = String::new();
    for q in &query_order {
        let list = &mismatches[*q];
        let known = baseline.entries.get(*q);
        let _ = writeln!(
            report,
            "MISMATCH{} ({} of {} evaluations): {q}",
            if known.is_some() {
                " [known]"
            } else {
                " [NEW]"
            },
            list.len(),
            evals.len()
        );
        if let Some(reason) = known {
            let _ = writeln!(report, "    known reason: {reason}");
        }
        for (ev, d) in list.iter().take(2) {
            let _ = writeln!(report, "    at {ev}: {d}");
        }
    }
    let unlisted: Vec<&str> = query_order
        .iter()
        .copied()
        .filter(|q| !baseline.entries.contains_key(*q))
        .collect();
    let fixed: Vec<&String> = baseline
        .entries
        .keys()
        .filter(|q| !mismatches.contains_key(*q))
        .collect();
    for q in &fixed {
        let _ = writeln!(
            report,
            "FIXED (remove from known_mismatches.txt and lower the baseline): {q}"
        );
    }
    if skipped_hw > 0 {
        let _ = writeln!(
            report,
            "NOTE: {skipped_hw} holt_winters evaluations skipped: sextant knows neither holt_winters nor double_exponential_smoothing"
        );
    }
    println!("{report}");
    println!(
        "promql_diff: {} queries, {} evaluations ({} per query), {} mismatching queries ({} evaluations), baseline {}, {} new; took {:.1?}",
        queries.len(),
        n_evals,
        evals.len(),
        mismatches.len(),
        mismatches.values().map(|v| v.len()).sum::<usize>(),
        baseline.max,
        unlisted.len(),
        started.elapsed()
    );
    drop(sextant);
    drop(prom);
    assert!(
        mismatches.len() <= baseline.max,
        "{} queries mismatch, baseline allows {} (see report above)",
        mismatches.len(),
        baseline.max
    );
    assert!(
        unlisted.is_empty(),
        "{} mismatching queries are not listed in known_mismatches.txt: {:#?}",
        unlisted.len(),
        unlisted
    );
}

/// Development aid: exercises the Prometheus half only, validating the data
/// set and the query list (every query succeeds unless marked `!`).
#[test]
#[ignore]
fn prometheus_side_only() {
    if !prometheus_available() {
        return;
    }
    let started = Instant::now();
    let queries = load_queries();
    let series = generate();
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let prom = start_prometheus(dir.path(), &series, &http);
    println!("prometheus ready in {:.1?}", started.elapsed());

    let evals = evaluations();
    let mut problems = Vec::new();
    let mut all_empty = Vec::new();
    let mut n_evals = 0;
    let mut n_err = 0;
    let mut n_nonempty = 0;
    for spec in &queries {
        let mut any_data = false;
        for &ev in &evals {
            n_evals += 1;
            let p = run_query(&http, &prom.base, &spec.query, ev);
            let ok = is_success(&p);
            if !ok {
                n_err += 1;
            }
            let expect_error =
                spec.expect_error || (spec.instant_only && matches!(ev, Eval::Range { .. }));
            if ok == expect_error {
                problems.push(format!(
                    "queries.txt:{}: {} at {ev}: expected {}, got {}",
                    spec.line,
                    spec.query,
                    if expect_error { "an error" } else { "success" },
                    if ok {
                        "success".to_string()
                    } else {
                        error_summary(&p)
                    }
                ));
            }
            let r = &p["data"]["result"];
            if ok && (r.as_array().map(|a| !a.is_empty()).unwrap_or(true)) {
                any_data = true;
                n_nonempty += 1;
            }
        }
        if !any_data && !spec.expect_error {
            all_empty.push(format!("queries.txt:{}: {}", spec.line, spec.query));
        }
    }
    for p in &problems {
        println!("PROBLEM {p}");
    }
    for e in &all_empty {
        println!("NOTE empty at every evaluation: {e}");
    }
    println!(
        "prometheus_side_only: {} queries, {} evaluations, {} errors, {} non-empty results, {} queries empty everywhere, {} problems; took {:.1?}",
        queries.len(),
        n_evals,
        n_err,
        n_nonempty,
        all_empty.len(),
        problems.len(),
        started.elapsed()
    );
    drop(prom);
    assert!(
        problems.is_empty(),
        "{} problems (see above)",
        problems.len()
    );
}

#[test]
fn generator_is_deterministic_and_sane() {
    let a = generate();
    let b = generate();
    assert_eq!(openmetrics(&a), openmetrics(&b));
    assert!((55..=70).contains(&a.len()), "{} series", a.len());
    let mut names = BTreeSet::new();
    for s in &a {
        assert!(
            names.insert(s.series_text()),
            "duplicate series {}",
            s.series_text()
        );
        assert!(s.samples.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(s.samples.iter().all(|(_, v)| v.is_finite()));
    }
    let lines: usize = import_batches(&a, 3000)
        .iter()
        .map(|b| b.lines().count())
        .sum();
    assert_eq!(lines, a.iter().map(|s| s.samples.len()).sum::<usize>());
}

#[test]
fn comparison_logic() {
    use serde_json::json;
    let vec = |pairs: &[(&str, &str)]| {
        json!({"status": "success", "data": {"resultType": "vector", "result":
            pairs.iter().map(|(inst, v)| json!({"metric": {"instance": inst}, "value": [1767227407.5, v]})).collect::<Vec<_>>()}})
    };
    // Series order does not matter unless ordered; tolerance; NaN/Inf exact.
    assert_eq!(
        compare(
            &vec(&[("a", "1"), ("b", "2")]),
            &vec(&[("b", "2"), ("a", "1")]),
            false
        ),
        None
    );
    assert!(compare(
        &vec(&[("a", "1"), ("b", "2")]),
        &vec(&[("b", "2"), ("a", "1")]),
        true
    )
    .is_some());
    assert_eq!(
        compare(
            &vec(&[("a", "1")]),
            &vec(&[("a", "1.0000000000001")]),
            false
        ),
        None
    );
    assert!(compare(&vec(&[("a", "1")]), &vec(&[("a", "1.00001")]), false).is_some());
    assert_eq!(
        compare(&vec(&[("a", "1e-15")]), &vec(&[("a", "0")]), false),
        None
    );
    assert_eq!(
        compare(&vec(&[("a", "NaN")]), &vec(&[("a", "NaN")]), false),
        None
    );
    assert!(compare(&vec(&[("a", "NaN")]), &vec(&[("a", "+Inf")]), false).is_some());
    assert!(compare(&vec(&[("a", "+Inf")]), &vec(&[("a", "-Inf")]), false).is_some());
    assert!(compare(&vec(&[("a", "1")]), &vec(&[("a", "1"), ("b", "1")]), false).is_some());
    assert!(compare(&vec(&[("a", "1")]), &vec(&[("c", "1")]), false).is_some());
    // Timestamps compared to the millisecond.
    let mut other_ts = vec(&[("a", "1")]);
    other_ts["data"]["result"][0]["value"][0] = json!(1767227408.5);
    assert!(compare(&vec(&[("a", "1")]), &other_ts, false).is_some());
    // Matrix: point counts.
    let mat = |vals: &[&str]| {
        json!({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values":
            vals.iter().enumerate().map(|(i, v)| json!([1767227407.5 + 60.0 * i as f64, v])).collect::<Vec<_>>()}]}})
    };
    assert_eq!(compare(&mat(&["1", "2"]), &mat(&["1", "2"]), false), None);
    assert!(compare(&mat(&["1", "2"]), &mat(&["1"]), false).is_some());
    assert!(compare(&mat(&["1", "2"]), &mat(&["1", "3"]), false).is_some());
    assert!(compare(&mat(&["1"]), &vec(&[("a", "1")]), false).is_some());
    // Errors: same errorType required; success vs error is a mismatch.
    let err = |t: &str| json!({"status": "error", "errorType": t, "error": "x"});
    assert_eq!(compare(&err("bad_data"), &err("bad_data"), false), None);
    assert!(compare(&err("bad_data"), &err("execution"), false).is_some());
    assert!(compare(&err("bad_data"), &vec(&[]), false).is_some());
    assert!(compare(&vec(&[]), &err("bad_data"), false).is_some());
    // Scalars.
    let sc = |v: &str| json!({"status": "success", "data": {"resultType": "scalar", "result": [1767227407.5, v]}});
    assert_eq!(compare(&sc("3"), &sc("3"), false), None);
    assert!(compare(&sc("3"), &sc("4"), false).is_some());
}

/// Every PromQL function, aggregation and operator of Prometheus 2.42 must
/// appear in queries.txt.
#[test]
fn queries_cover_promql_2_42() {
    let text: String = load_queries()
        .iter()
        .map(|q| format!("{}\n", q.query))
        .collect();
    let functions = [
        "abs",
        "absent",
        "absent_over_time",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "avg_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "count_over_time",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "deg",
        "delta",
        "deriv",
        "exp",
        "floor",
        "histogram_quantile",
        "holt_winters",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "max_over_time",
        "min_over_time",
        "minute",
        "month",
        "pi",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "rad",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sin",
        "sinh",
        "sort",
        "sort_desc",
        "sqrt",
        "stddev_over_time",
        "stdvar_over_time",
        "sum_over_time",
        "tan",
        "tanh",
        "time",
        "timestamp",
        "vector",
        "year",
        // aggregations
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    let missing: Vec<&str> = functions
        .iter()
        .copied()
        .filter(|f| !text.contains(&format!("{f}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "functions/aggregations not covered: {missing:?}"
    );
    let constructs = [
        " + ",
        " - ",
        " * ",
        " / ",
        " % ",
        " ^ ",
        " atan2 ",
        " == ",
        " != ",
        " > ",
        " < ",
        " >= ",
        " <= ",
        " == bool ",
        " != bool ",
        " > bool ",
        " < bool ",
        " >= bool ",
        " <= bool ",
        " and ",
        " or ",
        " unless ",
        " on(",
        " ignoring(",
        " group_left",
        " group_right",
        " by (",
        " without (",
        " offset ",
        " @ ",
        "@ start()",
        "@ end()",
        ":1m]",
    ];
    let missing: Vec<&str> = constructs
        .iter()
        .copied()
        .filter(|c| !text.contains(c))
        .collect();
    assert!(missing.is_empty(), "constructs not covered: {missing:?}");
    assert!(load_queries().len() >= 220);
}
