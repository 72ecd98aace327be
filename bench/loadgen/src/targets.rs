//! `loadgen serve-targets`: scrape targets for the scrape benchmark (bench/scrape.sh).
//!
//! A scrape benchmark needs many exporters that cost little and answer identically to every
//! scraper, so the figures measure the scraper and not the exporter. This serves N targets,
//! each on its own 127.0.0.1 port (so each has its own `instance`, as real exporters do), each
//! with M series shaped like an agent runner's `/metrics` (counters, gauges and a classic
//! histogram with `model`/`tool`/`status`/`le` labels, HELP and TYPE lines). Label text is
//! rendered once; only values are formatted per request. Values are a function of the series
//! and of the current 15 s window (`now / interval`), so they change every scrape cycle and two
//! scrapers scraping in the same window read the same numbers. Plain HTTP/1.1 with keep-alive,
//! one thread per connection, no compression (`Accept-Encoding` is ignored, for both scrapers).
//!
//! Prints `{"ports":[...]}` on stdout once every port listens, then serves until killed.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::rng::splitmix64;
use crate::workload::{LE, MODELS, STATUSES, TOOLS};

const USAGE: &str = "usage: loadgen serve-targets [--targets N] [--series M] [--interval-ms MS]

  --targets      number of targets, one 127.0.0.1 port each         default 100
  --series       series per target (rounded up to whole units of 17) default 1000
  --interval-ms  values change once per this window                 default 15000

Prints {\"ports\":[...]} on stdout when listening; serves /metrics until killed.";

/// What a series is, for its value.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    /// Cumulative bucket `k` of a histogram (0-based; the last is `+Inf`).
    Bucket(u64),
    HistSum,
    HistCount,
}

/// One target's exposition: fixed text before each value, and what the value is.
struct Exposition {
    /// Text up to and including the space before the value, then the series' kind and seed;
    /// `None` for a HELP/TYPE block.
    lines: Vec<(String, Option<(Kind, u64)>)>,
}

impl Exposition {
    fn new(target: usize, series: usize) -> Exposition {
        let units = series.div_ceil(17).max(1);
        let mut lines = Vec::with_capacity(units * 17 + 16);
        let fam = |name: &str, kind: &str, help: &str, lines: &mut Vec<_>| {
            lines.push((
                format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"),
                None,
            ));
        };
        let unit_labels = |u: usize| {
            let model = MODELS[(u / TOOLS.len()) % MODELS.len()];
            let tool = TOOLS[u % TOOLS.len()];
            let shard = u / (MODELS.len() * TOOLS.len());
            format!("model=\"{model}\",shard=\"{shard}\",tool=\"{tool}\"")
        };
        let seed =
            |u: usize, i: usize| splitmix64(((target as u64) << 32) ^ ((u as u64) << 8) ^ i as u64);
        fam(
            "agent_tool_calls_total",
            "counter",
            "Tool calls by outcome.",
            &mut lines,
        );
        for u in 0..units {
            for (i, st) in STATUSES.iter().enumerate() {
                let l = format!(
                    "agent_tool_calls_total{{{},status=\"{st}\"}} ",
                    unit_labels(u)
                );
                lines.push((l, Some((Kind::Counter, seed(u, i)))));
            }
        }
        fam("agent_tokens_total", "counter", "Tokens used.", &mut lines);
        for u in 0..units {
            let l = format!("agent_tokens_total{{{}}} ", unit_labels(u));
            lines.push((l, Some((Kind::Counter, seed(u, 3)))));
        }
        fam(
            "agent_inflight_calls",
            "gauge",
            "Calls in flight.",
            &mut lines,
        );
        for u in 0..units {
            let l = format!("agent_inflight_calls{{{}}} ", unit_labels(u));
            lines.push((l, Some((Kind::Gauge, seed(u, 4)))));
        }
        fam(
            "agent_context_fill_percent",
            "gauge",
            "Context window fill.",
            &mut lines,
        );
        for u in 0..units {
            let l = format!("agent_context_fill_percent{{{}}} ", unit_labels(u));
            lines.push((l, Some((Kind::Gauge, seed(u, 5)))));
        }
        fam(
            "agent_tool_duration_seconds",
            "histogram",
            "Tool call latency.",
            &mut lines,
        );
        for u in 0..units {
            let ul = unit_labels(u);
            for (k, le) in LE.iter().enumerate() {
                let l = format!("agent_tool_duration_seconds_bucket{{{ul},le=\"{le}\"}} ");
                lines.push((l, Some((Kind::Bucket(k as u64), seed(u, 6)))));
            }
            let s = Some((Kind::HistSum, seed(u, 6)));
            lines.push((format!("agent_tool_duration_seconds_sum{{{ul}}} "), s));
            let c = Some((Kind::HistCount, seed(u, 6)));
            lines.push((format!("agent_tool_duration_seconds_count{{{ul}}} "), c));
        }
        Exposition { lines }
    }

    /// The body for window `w` (values depend on the series seed and `w` only).
    fn render(&self, w: u64, out: &mut Vec<u8>) {
        out.clear();
        let mut buf = ryu_free::Buf::default();
        for (text, series) in &self.lines {
            out.extend_from_slice(text.as_bytes());
            let Some((kind, seed)) = series else { continue };
            let rate = 1 + seed % 7;
            match kind {
                Kind::Counter => buf.int(out, w * rate + seed % 1000),
                Kind::Gauge => buf.cents(out, splitmix64(seed ^ w) % 10_000),
                Kind::Bucket(k) => buf.int(out, w * rate * (k + 1)),
                Kind::HistCount => buf.int(out, w * rate * LE.len() as u64),
                Kind::HistSum => buf.cents(out, w * rate * 137),
            }
            out.push(b'\n');
        }
    }
}

/// Integer formatting without allocation (the server must stay cheap).
mod ryu_free {
    #[derive(Default)]
    pub struct Buf([u8; 24]);

    impl Buf {
        pub fn int(&mut self, out: &mut Vec<u8>, mut n: u64) {
            let mut i = self.0.len();
            loop {
                i -= 1;
                self.0[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            out.extend_from_slice(&self.0[i..]);
        }

        /// `n / 100` with two decimals.
        pub fn cents(&mut self, out: &mut Vec<u8>, n: u64) {
            self.int(out, n / 100);
            out.push(b'.');
            out.push(b'0' + (n / 10 % 10) as u8);
            out.push(b'0' + (n % 10) as u8);
        }
    }
}

fn window(interval_ms: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    now / interval_ms.max(1)
}

/// Serves one keep-alive connection until the peer closes it.
fn serve_conn(stream: TcpStream, expo: &Exposition, interval_ms: u64) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        // Request line and headers; bodies of GETs are not expected.
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let get = line.starts_with("GET ");
        let mut close = line.ends_with("HTTP/1.0\r\n");
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if line.to_ascii_lowercase().starts_with("connection: close") {
                close = true;
            }
        }
        let head = if get {
            expo.render(window(interval_ms), &mut body);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
        } else {
            body.clear();
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n".to_string()
        };
        if w.write_all(head.as_bytes()).is_err() || w.write_all(&body).is_err() {
            return;
        }
        if close {
            return;
        }
    }
}

pub fn main(args: &[String]) -> i32 {
    let (mut targets, mut series, mut interval_ms) = (100usize, 1000usize, 15_000u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            eprintln!("{USAGE}");
            return 0;
        }
        let Some(v) = it.next() else {
            eprintln!("{a} needs a value\n{USAGE}");
            return 2;
        };
        let Ok(n) = v.parse::<u64>() else {
            eprintln!("{a} {v:?}: not a number\n{USAGE}");
            return 2;
        };
        match a.as_str() {
            "--targets" => targets = n.max(1) as usize,
            "--series" => series = n.max(1) as usize,
            "--interval-ms" => interval_ms = n.max(1),
            _ => {
                eprintln!("unknown flag {a}\n{USAGE}");
                return 2;
            }
        }
    }
    let mut ports = Vec::with_capacity(targets);
    let mut listeners = Vec::with_capacity(targets);
    for _ in 0..targets {
        match TcpListener::bind("127.0.0.1:0").and_then(|l| Ok((l.local_addr()?.port(), l))) {
            Ok((p, l)) => {
                ports.push(p);
                listeners.push(l);
            }
            Err(e) => {
                eprintln!("serve-targets: bind: {e}");
                return 1;
            }
        }
    }
    for (t, l) in listeners.into_iter().enumerate() {
        let expo = Arc::new(Exposition::new(t, series));
        let spawned = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                for s in l.incoming().flatten() {
                    let expo = Arc::clone(&expo);
                    let _ = std::thread::Builder::new()
                        .stack_size(128 << 10)
                        .spawn(move || serve_conn(s, &expo, interval_ms));
                }
            });
        if let Err(e) = spawned {
            eprintln!("serve-targets: spawn: {e}");
            return 1;
        }
    }
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    println!("{{\"ports\":[{}]}}", list.join(","));
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_asked_series_and_moves() {
        let e = Exposition::new(3, 1000);
        let n = e.lines.iter().filter(|l| l.1.is_some()).count();
        assert_eq!(n, 1000usize.div_ceil(17) * 17);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        e.render(10, &mut a);
        e.render(11, &mut b);
        assert_ne!(a, b);
        let text = String::from_utf8(a).unwrap();
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), n);
        assert!(text.contains("# TYPE agent_tool_duration_seconds histogram\n"));
        assert!(text.contains("agent_tool_duration_seconds_bucket{model=\"claude-sonnet\",shard=\"0\",tool=\"bash\",le=\"+Inf\"} "));
    }
}
