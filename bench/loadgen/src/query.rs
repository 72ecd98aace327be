//! `loadgen query`: the query benchmark. Runs a fixed set of dashboard-like PromQL queries over
//! the data set `loadgen` loaded (same metric names, see workload.rs) against one server's
//! `/api/v1/query` and `/api/v1/query_range`, sequentially, and prints one JSON line.
//!
//! Every expression runs as an instant query at the end of the data, as a range query over the
//! last hour (step 60 s) and as a range query over the whole loaded span (step 5 m); all times
//! lie inside the loaded range, on a grid of the step starting 7 s after the first scrape, so
//! that no sample lies exactly on the edge of a `[5m]` window. Each query
//! runs `--warmup` times untimed, then `--runs` times timed (wall clock from sending the request
//! to reading the last byte of the response). With `--pid`, the server's user+system CPU time
//! over the timed runs is read from /proc. `stats=all` asks for totalQueryableSamples (Sextant,
//! Prometheus); `nocache=1` turns off VictoriaMetrics' rollup result cache (others ignore it).
//!
//! `loadgen membw` measures single-core memcpy bandwidth, the bound for decoding samples.

use std::time::{Duration, Instant};

use crate::http;

const USAGE: &str = "usage: loadgen query --url http://HOST:PORT --start-ms MS --end-ms MS
  [--runs N] [--warmup N] [--pid PID] [--timeout-s N] [--name LABEL] [--only ID,ID]

  --url       server base URL (the query API is under /api/v1/)
  --start-ms  first sample's timestamp of the loaded data (loadgen's start_ms)
  --end-ms    last sample's timestamp (loadgen's end_ms)
  --runs      timed runs per query                                  default 5
  --warmup    untimed runs before them                              default 1
  --pid       server process, for its CPU time per query (/proc/PID/stat)
  --timeout-s per-request timeout                                   default 600
  --only      run only these expression ids (comma-separated)
  --list      print the query set and exit

usage: loadgen membw [--mib N] [--iters N]   single-core memcpy bandwidth";

/// The query set: (id, expression, what it touches at the default 100,011 series).
/// Series counts: 5,883 units × 17 series; per job a quarter of the units.
pub const QUERIES: [(&str, &str, &str); 9] = [
    (
        "selector",
        r#"agent_tool_duration_seconds_bucket{job="agents-0"}"#,
        "plain selector, ~13k series",
    ),
    (
        "selector_regex",
        r#"{__name__=~"agent_tool_calls_total|agent_tokens_total",model=~"claude-.*"}"#,
        "regex selector on name and label, ~9.4k series",
    ),
    (
        "rate",
        r#"rate(agent_tool_calls_total[5m])"#,
        "rate, ~17.6k series in and out",
    ),
    (
        "sum_rate",
        r#"sum by (job, model) (rate(agent_tool_duration_seconds_bucket[5m]))"#,
        "sum by (rate), ~53k series in, 20 out",
    ),
    (
        "hist_quantile",
        r#"histogram_quantile(0.9, sum by (le, model) (rate(agent_tool_duration_seconds_bucket[5m])))"#,
        "histogram_quantile over ~53k bucket series, 5 out",
    ),
    (
        "topk",
        r#"topk(10, rate(agent_tokens_total[5m]))"#,
        "topk over ~5.9k series",
    ),
    (
        "count_all",
        r#"count by (job) ({__name__=~"agent_.+"})"#,
        "count over all ~100k series",
    ),
    (
        "sum_rate_all",
        r#"sum by (job) (rate({__name__=~"agent_tool_calls_total|agent_tool_duration_seconds_bucket|agent_tokens_total"}[5m]))"#,
        "rate over all ~76k counter series (label sets stay distinct without __name__), 4 out",
    ),
    (
        "avg_over_time",
        r#"avg by (model) (avg_over_time(agent_context_fill_percent[5m]))"#,
        "avg_over_time over ~5.9k series, 5 out",
    ),
];

struct Config {
    url: http::Url,
    name: String,
    start_ms: i64,
    end_ms: i64,
    runs: usize,
    warmup: usize,
    pid: Option<u32>,
    timeout: Duration,
    only: Option<Vec<String>>,
}

fn parse_args(args: &[String]) -> Result<Config, String> {
    let mut url = None;
    let mut c = Config {
        url: http::Url::parse("http://127.0.0.1:1/")?,
        name: "target".into(),
        start_ms: -1,
        end_ms: -1,
        runs: 5,
        warmup: 1,
        pid: None,
        timeout: Duration::from_secs(600),
        only: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            return Err(USAGE.into());
        }
        if a == "--list" {
            for (id, q, what) in QUERIES {
                println!("{id}\t{q}\t{what}");
            }
            std::process::exit(0);
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{a} {v:?}: {e}"));
        match a.as_str() {
            "--url" => url = Some(http::Url::parse(v.trim_end_matches('/'))?),
            "--name" => c.name = v.clone(),
            "--start-ms" => c.start_ms = num(v)? as i64,
            "--end-ms" => c.end_ms = num(v)? as i64,
            "--runs" => c.runs = num(v)?.max(1) as usize,
            "--warmup" => c.warmup = num(v)? as usize,
            "--pid" => c.pid = Some(num(v)? as u32),
            "--timeout-s" => c.timeout = Duration::from_secs(num(v)?.max(1)),
            "--only" => c.only = Some(v.split(',').map(str::to_string).collect()),
            _ => return Err(format!("unknown flag {a}\n{USAGE}")),
        }
    }
    c.url = url.ok_or_else(|| format!("--url is required\n{USAGE}"))?;
    if c.start_ms < 0 || c.end_ms <= c.start_ms {
        return Err(format!(
            "--start-ms and --end-ms (> start) are required\n{USAGE}"
        ));
    }
    Ok(c)
}

/// Percent-encodes a query-string value.
fn enc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

/// User+system CPU seconds of `pid` (Linux /proc, USER_HZ = 100).
fn proc_cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    Some((t(14)? + t(15)?) / 100.0)
}

/// What we need from a query response, found without a JSON library.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    pub result_type: Option<String>,
    /// Elements of `data.result` (series for vector/matrix results).
    pub series: Option<u64>,
    /// `data.stats.samples.totalQueryableSamples` (wherever it appears).
    pub samples: Option<u64>,
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn find(b: &[u8], pat: &[u8]) -> Option<usize> {
    b.windows(pat.len()).position(|w| w == pat)
}

/// Position just after `"key"` and the following `:`.
fn after_key(b: &[u8], key: &str) -> Option<usize> {
    let pat = format!("\"{key}\"");
    let mut from = 0;
    while let Some(p) = find(&b[from..], pat.as_bytes()) {
        let i = skip_ws(b, from + p + pat.len());
        if b.get(i) == Some(&b':') {
            return Some(skip_ws(b, i + 1));
        }
        from += p + 1;
    }
    None
}

/// Counts the top-level elements of the JSON array starting at `b[i] == '['`.
fn count_array(b: &[u8], i: usize) -> Option<u64> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let (mut depth, mut n, mut in_str, mut esc, mut empty) = (0i32, 0u64, false, false, true);
    for &c in &b[i..] {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => {
                in_str = true;
                if depth == 1 {
                    empty = false;
                }
            }
            b'[' | b'{' => {
                if depth == 1 {
                    empty = false;
                }
                depth += 1;
            }
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(if empty { 0 } else { n + 1 });
                }
            }
            b',' if depth == 1 => n += 1,
            c if depth == 1 && !c.is_ascii_whitespace() => empty = false,
            _ => {}
        }
    }
    None
}

pub fn summarize(body: &[u8]) -> Summary {
    let mut s = Summary::default();
    if let Some(i) = after_key(body, "resultType") {
        if body.get(i) == Some(&b'"') {
            let end = body[i + 1..]
                .iter()
                .position(|&c| c == b'"')
                .map(|e| i + 1 + e);
            s.result_type = end.map(|e| String::from_utf8_lossy(&body[i + 1..e]).into_owned());
        }
    }
    if let Some(i) = after_key(body, "result") {
        let vec_like = matches!(s.result_type.as_deref(), Some("vector" | "matrix"));
        s.series = if vec_like {
            count_array(body, i)
        } else {
            Some(1)
        };
    }
    if let Some(i) = after_key(body, "totalQueryableSamples") {
        let end = body[i..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .map_or(body.len(), |e| i + e);
        s.samples = std::str::from_utf8(&body[i..end])
            .ok()
            .and_then(|v| v.parse().ok());
    }
    s
}

fn json_str(s: &str) -> String {
    crate::json_str(s)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let k = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

pub fn main(args: &[String]) -> i32 {
    let c = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let mut client = http::Client::new(c.url.clone());
    // Whole seconds, inside [start, end] of the data, on a grid start + k·step + 7 s: 7 s off the
    // scrape grid (15 s, jitter ≤ 5 ms), so no sample sits exactly on a window's edge, where
    // Prometheus 2.42 (left-closed windows) and 3.x semantics (left-open) would differ.
    const OFF: i64 = 7;
    let start_s = (c.start_ms + 999) / 1000 + OFF;
    let end_s = c.end_ms / 1000;
    let last = |step: i64| start_s + (end_s - start_s).max(0) / step * step;
    let (full_step, short_step) = (300, 60);
    let (full_start, full_end) = (start_s, last(full_step));
    let short_end = last(short_step);
    let short_start = (short_end - 3600).max(start_s);
    let instant = short_end;
    // (kind, path-and-params) for each expression.
    let kinds: [(&str, String); 3] = [
        ("instant", format!("/api/v1/query?time={instant}")),
        (
            "range_1h",
            format!("/api/v1/query_range?start={short_start}&end={short_end}&step={short_step}"),
        ),
        (
            "range_full",
            format!("/api/v1/query_range?start={full_start}&end={full_end}&step={full_step}"),
        ),
    ];
    let mut out = Vec::new();
    let mut errors = 0;
    for (id, q, _) in QUERIES {
        if let Some(only) = &c.only {
            if !only.iter().any(|o| o == id) {
                continue;
            }
        }
        for (kind, base) in &kinds {
            let path = format!("{base}&query={}&stats=all&nocache=1", enc(q));
            let mut lat_ms = Vec::with_capacity(c.runs);
            let (mut cpu, mut cpu_ok) = (0.0, c.pid.is_some());
            let mut last = Summary::default();
            let mut series_seen: Vec<Option<u64>> = Vec::new();
            let mut error: Option<String> = None;
            let (mut status, mut bytes) = (0u16, 0usize);
            for run in 0..c.warmup + c.runs {
                let timed = run >= c.warmup;
                let c0 = c.pid.and_then(proc_cpu_s);
                let t0 = Instant::now();
                let r = client.get(&path, c.timeout);
                let dt = t0.elapsed().as_secs_f64() * 1e3;
                let c1 = c.pid.and_then(proc_cpu_s);
                match r {
                    Ok(r) => {
                        status = r.status;
                        bytes = r.body.len();
                        if r.status != 200 {
                            error.get_or_insert_with(|| {
                                format!(
                                    "HTTP {}: {}",
                                    r.status,
                                    String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                                )
                            });
                        }
                        last = summarize(&r.body);
                        series_seen.push(last.series);
                    }
                    Err(e) => {
                        error.get_or_insert_with(|| format!("I/O error: {e}"));
                    }
                }
                if timed {
                    lat_ms.push(dt);
                    match (c0, c1) {
                        (Some(a), Some(b)) => cpu += b - a,
                        _ => cpu_ok = false,
                    }
                }
            }
            if error.is_some() {
                errors += 1;
            }
            let stable = series_seen.windows(2).all(|w| w[0] == w[1]);
            lat_ms.sort_by(|a, b| a.total_cmp(b));
            let p50 = pct(&lat_ms, 0.5);
            let p99 = pct(&lat_ms, 0.99);
            eprintln!(
                "query[{}]: {id:<15} {kind:<10} p50 {p50:9.1} ms  p99 {p99:9.1} ms  series {}  samples {}{}",
                c.name,
                opt(last.series),
                opt(last.samples),
                error.as_deref().map(|e| format!("  ERROR {e}")).unwrap_or_default()
            );
            let lat_list: Vec<String> = lat_ms.iter().map(|v| format!("{v:.3}")).collect();
            out.push(format!(
                "{{\"id\":{},\"kind\":{},\"query\":{},\"status\":{},\"error\":{},\"series\":{},\
                 \"series_stable\":{},\"samples\":{},\"bytes\":{},\"runs\":{},\"lat_ms\":[{}],\
                 \"p50_ms\":{:.3},\"p99_ms\":{:.3},\"server_cpu_s\":{}}}",
                json_str(id),
                json_str(kind),
                json_str(q),
                status,
                error
                    .as_deref()
                    .map(json_str)
                    .unwrap_or_else(|| "null".into()),
                opt(last.series),
                stable,
                opt(last.samples),
                bytes,
                lat_ms.len(),
                lat_list.join(","),
                p50,
                p99,
                if cpu_ok {
                    format!("{cpu:.2}")
                } else {
                    "null".into()
                },
            ));
        }
    }
    println!(
        "{{\"name\":{},\"runs\":{},\"warmup\":{},\"instant_time\":{instant},\
         \"range_1h\":[{short_start},{short_end},{short_step}],\
         \"range_full\":[{full_start},{full_end},{full_step}],\"queries\":[{}]}}",
        json_str(&c.name),
        c.runs,
        c.warmup,
        out.join(",")
    );
    if errors > 0 {
        1
    } else {
        0
    }
}

/// `loadgen membw`: best single-thread memcpy bandwidth over `iters` copies of `mib` MiB,
/// bytes copied per second (each byte read once and written once).
pub fn membw(args: &[String]) -> i32 {
    let (mut mib, mut iters) = (256usize, 10usize);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().and_then(|v| v.parse::<usize>().ok());
        match (a.as_str(), v) {
            ("--mib", Some(v)) => mib = v.max(1),
            ("--iters", Some(v)) => iters = v.max(1),
            _ => {
                eprintln!("{USAGE}");
                return 2;
            }
        }
    }
    let n = mib << 20;
    let src: Vec<u8> = (0..n).map(|i| (i * 31) as u8).collect();
    let mut dst = vec![0u8; n];
    dst.copy_from_slice(&src); // fault the pages in
    let mut best = f64::INFINITY;
    for i in 0..iters {
        let t0 = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        best = best.min(t0.elapsed().as_secs_f64());
        dst[i % n] ^= 1;
    }
    let bps = n as f64 / best;
    println!(
        "{{\"membw_bytes_per_s\":{bps:.0},\"membw_mib\":{mib},\"membw_iters\":{iters},\
         \"membw_samples_per_s_at_16b\":{:.0}}}",
        bps / 16.0
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        let m = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"[,{"},"values":[[1,"2"],[2,"3"]]},{"metric":{},"values":[[1,"1"]]}],"stats":{"timings":{},"samples":{"totalQueryableSamples":1234,"peakSamples":3}}}}"#;
        assert_eq!(
            summarize(m),
            Summary {
                result_type: Some("matrix".into()),
                series: Some(2),
                samples: Some(1234)
            }
        );
        let v = br#"{"status":"success","data":{"resultType" : "vector", "result" : [ ]}}"#;
        assert_eq!(
            summarize(v),
            Summary {
                result_type: Some("vector".into()),
                series: Some(0),
                samples: None
            }
        );
        let s = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#;
        assert_eq!(summarize(s).series, Some(1));
    }

    #[test]
    fn percentiles_and_encoding() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!((pct(&v, 0.5), pct(&v, 0.99)), (3.0, 5.0));
        assert_eq!(enc(r#"a{b=~"c.*"}[5m]"#), "a%7Bb%3D~%22c.%2A%22%7D%5B5m%5D");
    }
}
