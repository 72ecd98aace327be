//! `loadgen` sends a deterministic agent-fleet workload to a Prometheus remote_write 1.0
//! endpoint (protobuf + snappy), or with `--protocol otlp` as OTLP/HTTP gauges to `/v1/metrics`,
//! and prints one JSON line of results on stdout.
//!
//! Senders own disjoint sets of series (like Prometheus' remote-write shards), send each
//! series' samples in time order in batches of `--batch` samples, and wait for each other at
//! every scrape step, so all series advance together as they would when scraped. 429 and 5xx
//! answers and I/O errors are retried with exponential backoff; other 4xx answers are counted
//! as rejected (remote_write senders drop those too). See bench/run.sh for the whole harness.
//!
//! `loadgen query …` runs the query benchmark over the loaded data, `loadgen membw`
//! measures memcpy bandwidth (see query.rs), and `loadgen serve-targets` serves scrape
//! targets for bench/scrape.sh (see targets.rs).

mod http;
mod proto;
mod query;
mod rng;
mod targets;
mod workload;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use workload::{
    instance_of, timestamp, unit_labels, unit_otlp_series, units_for, Unit, SERIES_PER_UNIT,
};

const USAGE: &str = "usage: loadgen --url http://HOST:PORT/api/v1/write [--series N] [--steps N]
  [--senders N] [--batch N] [--interval-ms N] [--jitter-ms N] [--seed N] [--start-ms MS]
  [--max-retries N] [--name LABEL] [--protocol remote-write|otlp] [--dry-run]

  --series      active series (rounded up to whole units of 17)      default 100000
  --steps       scrapes per series (samples per series)              default 960 (4 h at 15 s)
  --senders     concurrent connections                               default 4
  --batch       samples per request (Prometheus max_samples_per_send) default 2000
  --interval-ms scrape interval                                      default 15000
  --jitter-ms   max per-scrape timestamp jitter                      default 5
  --seed        PRNG seed                                            default 1
  --start-ms    first timestamp; default: now - span, floored to 2 h
  --protocol    remote-write (snappy protobuf) or otlp (OTLP/HTTP protobuf gauges, one data
                point per metric, uncompressed; --url .../v1/metrics)  default remote-write
  --dry-run     generate and encode only (measures the generator)

       loadgen query --help    query benchmark over the loaded data
       loadgen membw           single-core memcpy bandwidth
       loadgen serve-targets --help   scrape targets for bench/scrape.sh";

#[derive(Clone, Debug)]
struct Config {
    url: Option<http::Url>,
    url_text: String,
    name: String,
    series: usize,
    steps: usize,
    senders: usize,
    batch: usize,
    interval_ms: i64,
    jitter_ms: u64,
    seed: u64,
    start_ms: i64,
    max_retries: u32,
    otlp: bool,
}

fn parse_args() -> Result<Config, String> {
    let mut args = std::env::args().skip(1);
    let mut c = Config {
        url: None,
        url_text: String::new(),
        name: "target".into(),
        series: 100_000,
        steps: 960,
        senders: 4,
        batch: 2000,
        interval_ms: 15_000,
        jitter_ms: 5,
        seed: 1,
        start_ms: -1,
        max_retries: 12,
        otlp: false,
    };
    let mut dry = false;
    while let Some(a) = args.next() {
        if a == "--dry-run" {
            dry = true;
            continue;
        }
        if a == "-h" || a == "--help" {
            return Err(USAGE.into());
        }
        let v = args
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{a} {v:?}: {e}"));
        match a.as_str() {
            "--url" => c.url_text = v,
            "--name" => c.name = v,
            "--series" => c.series = num(&v)? as usize,
            "--steps" => c.steps = num(&v)? as usize,
            "--senders" => c.senders = num(&v)?.max(1) as usize,
            "--batch" => c.batch = num(&v)?.max(1) as usize,
            "--interval-ms" => c.interval_ms = num(&v)? as i64,
            "--jitter-ms" => c.jitter_ms = num(&v)?,
            "--seed" => c.seed = num(&v)?,
            "--start-ms" => c.start_ms = num(&v)? as i64,
            "--max-retries" => c.max_retries = num(&v)? as u32,
            "--protocol" => {
                c.otlp = match v.as_str() {
                    "remote-write" => false,
                    "otlp" => true,
                    _ => return Err(format!("--protocol {v:?}: remote-write or otlp\n{USAGE}")),
                }
            }
            _ => return Err(format!("unknown flag {a}\n{USAGE}")),
        }
    }
    if !dry {
        if c.url_text.is_empty() {
            return Err(format!("--url is required (or --dry-run)\n{USAGE}"));
        }
        c.url = Some(http::Url::parse(&c.url_text)?);
    }
    if c.start_ms < 0 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis() as i64;
        let span = c.steps as i64 * c.interval_ms;
        c.start_ms = (now - span - c.jitter_ms as i64) / 7_200_000 * 7_200_000;
    }
    Ok(c)
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    acked: AtomicU64,
    rejected: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Stats {
    fn note_error(&self, e: String) {
        let mut f = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            eprintln!("loadgen: {e}");
            *f = Some(e);
        }
    }
}

/// Sends one batch, retrying 429/5xx/I/O errors. Returns nothing: outcomes go to `stats`.
fn send(c: &Config, client: Option<&mut http::Client>, body: &[u8], samples: u64, stats: &Stats) {
    stats.sent.fetch_add(samples, Relaxed);
    stats.bytes.fetch_add(body.len() as u64, Relaxed);
    let Some(client) = client else { return };
    let mut backoff = Duration::from_millis(50);
    for attempt in 0..=c.max_retries {
        if attempt > 0 {
            stats.retries.fetch_add(1, Relaxed);
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        stats.requests.fetch_add(1, Relaxed);
        match client.post_remote_write(body) {
            // An OTLP answer with a body carries `partial_success`: some points were refused.
            Ok(r) if (200..300).contains(&r.status) && c.otlp && !r.body.is_empty() => {
                stats.note_error(format!(
                    "HTTP {} with partial_success (some points rejected): {}",
                    r.status,
                    String::from_utf8_lossy(&r.body).trim()
                ));
                stats.rejected.fetch_add(samples, Relaxed);
                return;
            }
            Ok(r) if (200..300).contains(&r.status) => {
                stats.acked.fetch_add(samples, Relaxed);
                return;
            }
            Ok(r) if r.status == 429 || r.status >= 500 => {
                stats.note_error(format!(
                    "HTTP {} (retrying): {}",
                    r.status,
                    String::from_utf8_lossy(&r.body).trim()
                ));
            }
            Ok(r) => {
                stats.note_error(format!(
                    "HTTP {} (rejected): {}",
                    r.status,
                    String::from_utf8_lossy(&r.body).trim()
                ));
                stats.rejected.fetch_add(samples, Relaxed);
                return;
            }
            Err(e) => stats.note_error(format!("I/O error (retrying): {e}")),
        }
    }
    stats.failed.fetch_add(samples, Relaxed);
}

fn sender(c: &Config, id: usize, n_units: usize, barrier: &Barrier, stats: &Stats) {
    let mut units: Vec<(usize, Unit, Vec<Vec<u8>>)> = (id..n_units)
        .step_by(c.senders)
        .map(|u| {
            let series = if c.otlp {
                unit_otlp_series(u)
            } else {
                unit_labels(u)
            };
            (u, Unit::new(c.seed, u), series)
        })
        .collect();
    let mut client = c.url.clone().map(if c.otlp {
        http::Client::new_otlp
    } else {
        http::Client::new
    });
    let mut enc = snap::raw::Encoder::new();
    let mut raw = Vec::with_capacity(c.batch * 200);
    let mut packed = Vec::new();
    let mut in_batch = 0u64;
    let mut vals = [0.0; SERIES_PER_UNIT];
    let mut flush = |raw: &mut Vec<u8>, in_batch: &mut u64| {
        if c.otlp {
            proto::wrap_otlp_request(raw, &mut packed);
            send(c, client.as_mut(), &packed, *in_batch, stats);
            raw.clear();
            *in_batch = 0;
            return;
        }
        packed.resize(snap::raw::max_compress_len(raw.len()), 0);
        match enc.compress(raw, &mut packed) {
            Ok(n) => send(c, client.as_mut(), &packed[..n], *in_batch, stats),
            Err(e) => stats.note_error(format!("snappy: {e}")),
        }
        raw.clear();
        *in_batch = 0;
    };
    let progress_every = (c.steps / 10).max(1);
    for step in 0..c.steps {
        for (u, unit, labels) in &mut units {
            let ts = timestamp(
                c.seed,
                c.start_ms,
                c.interval_ms,
                c.jitter_ms,
                instance_of(*u),
                step,
            );
            unit.step(&mut vals);
            for (l, v) in labels.iter().zip(vals) {
                if c.otlp {
                    proto::put_otlp_sample(&mut raw, l, v, ts);
                } else {
                    proto::put_series_sample(&mut raw, l, v, ts);
                }
                in_batch += 1;
                if in_batch as usize >= c.batch {
                    flush(&mut raw, &mut in_batch);
                }
            }
        }
        if in_batch > 0 {
            flush(&mut raw, &mut in_batch);
        }
        barrier.wait();
        if id == 0 && (step + 1) % progress_every == 0 {
            eprintln!(
                "loadgen[{}]: step {}/{} acked {}",
                c.name,
                step + 1,
                c.steps,
                stats.acked.load(Relaxed)
            );
        }
    }
}

/// User+system CPU seconds of this process so far (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = s.rsplit_once(')').map(|x| x.1) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")" the fields start at 3 (state); utime is field 14, stime 15.
    let t = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (t(14) + t(15)) / 100.0
}

pub(crate) fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("query") => std::process::exit(query::main(&args[1..])),
        Some("membw") => std::process::exit(query::membw(&args[1..])),
        Some("serve-targets") => std::process::exit(targets::main(&args[1..])),
        _ => {}
    }
    let c = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let n_units = units_for(c.series);
    let series = n_units * SERIES_PER_UNIT;
    let stats = Stats::default();
    let barrier = Barrier::new(c.senders);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for id in 0..c.senders {
            let (c, stats, barrier) = (&c, &stats, &barrier);
            s.spawn(move || sender(c, id, n_units, barrier, stats));
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let acked = stats.acked.load(Relaxed);
    let sent = stats.sent.load(Relaxed);
    let end_ms =
        c.start_ms + (c.steps.saturating_sub(1)) as i64 * c.interval_ms + c.jitter_ms as i64;
    let first_error = stats
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    println!(
        "{{\"name\":{},\"url\":{},\"series\":{},\"steps\":{},\"senders\":{},\"batch\":{},\"seed\":{},\
         \"start_ms\":{},\"end_ms\":{},\"samples_sent\":{},\"samples_acked\":{},\"samples_rejected\":{},\
         \"samples_failed\":{},\"requests\":{},\"retries\":{},\"bytes_sent\":{},\"wall_s\":{:.3},\
         \"samples_per_s\":{:.0},\"loadgen_cpu_s\":{:.2},\"first_error\":{}}}",
        json_str(&c.name),
        json_str(&c.url_text),
        series,
        c.steps,
        c.senders,
        c.batch,
        c.seed,
        c.start_ms,
        end_ms,
        sent,
        acked,
        stats.rejected.load(Relaxed),
        stats.failed.load(Relaxed),
        stats.requests.load(Relaxed),
        stats.retries.load(Relaxed),
        stats.bytes.load(Relaxed),
        wall,
        if c.url.is_some() { acked as f64 } else { sent as f64 } / wall.max(1e-9),
        cpu_seconds(),
        first_error.as_deref().map(json_str).unwrap_or_else(|| "null".into()),
    );
    if acked < sent && c.url.is_some() {
        std::process::exit(1);
    }
}
