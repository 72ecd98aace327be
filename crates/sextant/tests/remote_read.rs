//! Remote engines end to end, against a real Debian `prometheus` (remote-write receiver and
//! remote-read server/client) and a real `victoria-metrics`:
//! - Sextant A (`remote_read:` → Prometheus, `remote_engines:` → VictoriaMetrics export API and
//!   Prometheus' query API, plus one engine that is down) answers PromQL instant and range
//!   queries, `/api/v1/series` and recording rules over data that lives only in the remote
//!   engines, merged with its local data, equal to what Prometheus answers itself, and reports
//!   the engine that is down as a warning.
//! - Sextant B with `query_local_storage: false` reads the remote engines only.
//! - Prometheus with `remote_read:` → Sextant's `/api/v1/read` answers queries over data only
//!   Sextant holds, equal to Sextant's own answers; and both response types of Sextant's
//!   `/api/v1/read` decode to the same series as Prometheus' own `/api/v1/read` over the same
//!   data.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use prost::Message;
use serde_json::Value;
use sextant_ingest::remote_write::proto::v1;
use sextant_model::{Labels, Matcher, Sample};

const STEP: i64 = 5_000;
const N: i64 = 100;

fn series(
    name: &str,
    src: &str,
    t0: i64,
    from: i64,
    to: i64,
    f: impl Fn(i64) -> f64,
) -> (Labels, Vec<Sample>) {
    (
        Labels::from_pairs([("__name__", name), ("src", src)]),
        (from..to)
            .map(|i| Sample::new(t0 + i * STEP, f(i)))
            .collect(),
    )
}

fn write(c: &reqwest::blocking::Client, url: &str, data: &[(Labels, Vec<Sample>)]) {
    let status = remote_write_v1(c, url, data).expect("remote write");
    assert!(
        (200..300).contains(&status),
        "remote write to {url}: {status}"
    );
}

/// Writes `N` integer native histograms of a growing (counter) series `name` to `url`: schema
/// 1, a zero bucket, negative and positive buckets with a gap between spans.
fn write_histograms(c: &reqwest::blocking::Client, url: &str, name: &str, t0: i64) {
    use v1::histogram::{Count, ZeroCount};
    let span = |offset, length| v1::BucketSpan { offset, length };
    let histograms = (0..N)
        .map(|i| {
            let k = i as u64 + 1;
            // Absolute counts k, 2k, 3k (positive), k (negative); deltas between them.
            let pos = [k as i64, k as i64, k as i64];
            v1::Histogram {
                count: Some(Count::CountInt(2 * k + 6 * k + k)),
                sum: 3.5 * k as f64,
                schema: 1,
                zero_threshold: 0.001,
                zero_count: Some(ZeroCount::ZeroCountInt(2 * k)),
                negative_spans: vec![span(1, 1)],
                negative_deltas: vec![k as i64],
                positive_spans: vec![span(-2, 2), span(3, 1)],
                positive_deltas: vec![pos[0], pos[1], pos[2]],
                timestamp: t0 + i * STEP,
                ..Default::default()
            }
        })
        .collect();
    let req = v1::WriteRequest {
        timeseries: vec![v1::TimeSeries {
            labels: vec![
                v1::Label {
                    name: "__name__".into(),
                    value: name.into(),
                },
                v1::Label {
                    name: "src".into(),
                    value: "hist".into(),
                },
            ],
            histograms,
            ..Default::default()
        }],
        metadata: vec![],
    };
    let r = c
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(sextant_ingest::remote_write::compress_snappy(
            &req.encode_to_vec(),
        ))
        .send()
        .expect("remote write histograms");
    let status = r.status();
    assert!(
        status.is_success(),
        "histograms to {url}: {status} {}",
        r.text().unwrap_or_default()
    );
}

fn get(c: &reqwest::blocking::Client, url: &str, q: &[(&str, String)]) -> Value {
    let r = c.get(url).query(q).send().expect("request");
    let status = r.status();
    let v: Value = r.json().expect("JSON reply");
    assert!(status.is_success(), "{url} {q:?}: {status} {v}");
    assert_eq!(v["status"], "success", "{url} {q:?}: {v}");
    v
}

fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// Waits until `f` holds, polling.
fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn start_prometheus(dir: &Path, port: u16, extra_config: &str) -> Peer {
    std::fs::create_dir_all(dir).expect("prometheus dir");
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!("global:\n  scrape_interval: 15s\n{extra_config}"),
    )
    .expect("prometheus config");
    Peer(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--enable-feature=native-histograms")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    )
}

fn wait_http(c: &reqwest::blocking::Client, url: &str) {
    wait_for(url, Duration::from_secs(60), || {
        c.get(url).send().is_ok_and(|r| r.status().is_success())
    });
}

/// Asserts two API results are equal, numbers written as strings equal to 1e-12 relative:
/// Prometheus takes native histogram bucket bounds of schemas > 0 from a table, we compute
/// them, and the two may differ in the last bit.
fn assert_json_close(a: &Value, b: &Value, what: &str) {
    fn close(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
            }
            (Value::String(x), Value::String(y)) if x != y => {
                match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(p), Ok(q)) => (p - q).abs() <= 1e-12 * p.abs().max(q.abs()),
                    _ => false,
                }
            }
            _ => a == b,
        }
    }
    assert!(close(a, b), "{what}:\nours   {a}\ntheirs {b}");
}

/// The `data.result` of a query, for comparing two engines' answers.
fn result(v: &Value) -> Value {
    v["data"]["result"].clone()
}

/// POSTs a remote-read request; returns the decoded series per query, sorted.
fn remote_read(
    c: &reqwest::blocking::Client,
    url: &str,
    mint: i64,
    maxt: i64,
    ms: &[Matcher],
    streamed: bool,
) -> Vec<sextant_promql::SeriesData> {
    use v1::read_request::ResponseType;
    let req = v1::ReadRequest {
        queries: vec![v1::Query {
            start_timestamp_ms: mint,
            end_timestamp_ms: maxt,
            matchers: sextant_remote::wire::matchers_to_proto(ms),
            hints: None,
        }],
        accepted_response_types: vec![if streamed {
            ResponseType::StreamedXorChunks
        } else {
            ResponseType::Samples
        } as i32],
    };
    let r = c
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .body(sextant_ingest::remote_write::compress_snappy(
            &req.encode_to_vec(),
        ))
        .send()
        .expect("remote read");
    assert!(r.status().is_success(), "remote read {url}: {}", r.status());
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if streamed {
        assert!(
            ct.starts_with("application/x-streamed-protobuf"),
            "{url}: {ct}"
        );
    }
    let body = r.bytes().expect("body");
    sextant_remote::read::decode_response(&ct, &body, mint, maxt).expect("decodes")
}

#[test]
fn remote_engines_prometheus_and_victoriametrics() {
    if !peer("prometheus") || !peer("victoria-metrics") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let c = client();
    let now = sextant_model::time::now_ms() / 1000 * 1000;
    // 100 samples 5 s apart, ending 10 s ago: recent enough for every engine's head.
    let t0 = now - N * STEP - 10_000;
    let tend = t0 + (N - 1) * STEP;

    // Sextant B holds data only it has; Prometheus reads it back through remote_read.
    let mut sx_b = Server::start(&dir.path().join("sextant-b"), &["--no-default-rules"]);
    sx_b.wait_ready(Duration::from_secs(60));

    let pport = free_port();
    let _prom = start_prometheus(
        &dir.path().join("prom"),
        pport,
        &format!(
            "remote_read:\n  - url: http://127.0.0.1:{}/api/v1/read\n    read_recent: true\n",
            sx_b.port
        ),
    );
    let prom = format!("http://127.0.0.1:{pport}");
    let vport = free_port();
    let _vm = Peer(
        Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{vport}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("vm").display()
            ))
            .arg("-retentionPeriod=10y")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics"),
    );
    let vm = format!("http://127.0.0.1:{vport}");
    wait_http(&c, &format!("{prom}/-/ready"));
    wait_http(&c, &format!("{vm}/health"));

    // Data: only in Prometheus, only in VictoriaMetrics, split between Sextant A's local
    // storage (first half) and Prometheus (second half, overlapping by 10 samples), identical
    // in Prometheus and Sextant B, and only in Sextant B.
    let counter = |i: i64| (i * 3 + i * i % 7) as f64;
    write(
        &c,
        &format!("{prom}/api/v1/write"),
        &[
            series("rr_prom", "prom", t0, 0, N, counter),
            series("rr_shared", "split", t0, N / 2 - 10, N, |i| i as f64),
            series("rr_same", "both", t0, 0, N, |i| (i as f64).sin()),
        ],
    );
    write_histograms(&c, &format!("{prom}/api/v1/write"), "rr_hist", t0);
    write_histograms(&c, &sx_b.url("/api/v1/write"), "rr_hist_b", t0);
    write(
        &c,
        &format!("{vm}/api/v1/write"),
        &[series("rr_vm", "vm", t0, 0, N, |i| i as f64 * 0.25)],
    );
    write(
        &c,
        &sx_b.url("/api/v1/write"),
        &[
            series("rr_same", "both", t0, 0, N, |i| (i as f64).sin()),
            series("rr_sx", "sextant", t0, 0, N, counter),
        ],
    );

    // Sextant A: local rr_local and the first half of rr_shared; remote engines for the rest.
    let down = free_port();
    let cfg = dir.path().join("sextant-a.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"global:
  evaluation_interval: 1s
rule_files: [rules.yml]
remote_read:
  - url: {prom}/api/v1/read
    name: prom
    read_recent: true
remote_engines:
  - name: vm
    url: {vm}
    api: export
  - name: down
    url: http://127.0.0.1:{down}
    remote_timeout: 5s
"#
        ),
    )
    .expect("sextant config");
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: remote\n    interval: 1s\n    rules:\n      - record: rr_vm_total\n        expr: sum(last_over_time(rr_vm[10m]))\n",
    )
    .expect("rules");
    let mut sx_a = Server::start(
        &dir.path().join("sextant-a"),
        &[
            "--no-default-rules",
            "--config",
            cfg.to_str().expect("utf-8 path"),
        ],
    );
    sx_a.wait_ready(Duration::from_secs(60));
    write(
        &c,
        &sx_a.url("/api/v1/write"),
        &[
            series("rr_local", "local", t0, 0, N, |i| i as f64),
            series("rr_shared", "split", t0, 0, N / 2, |i| i as f64),
        ],
    );

    // VictoriaMetrics makes fresh data searchable after a moment.
    wait_for("rr_vm in victoria-metrics", Duration::from_secs(60), || {
        export(&c, &vm, "rr_vm")
            .first()
            .is_some_and(|s| s.1.len() == N as usize)
    });

    let a = sx_a.url("/api/v1");
    // PromQL over Prometheus-only data: Sextant's answer equals Prometheus' own.
    for q in ["rr_prom", "rate(rr_prom[1m])", "sum by (src) (rr_prom)"] {
        // Evaluation times fall between samples: Prometheus 2 (left-closed ranges) and Sextant
        // (left-open, as Prometheus 3) then select the same samples.
        let at = secs(tend - 17_500);
        let theirs = get(
            &c,
            &format!("{prom}/api/v1/query"),
            &[("query", q.into()), ("time", at.clone())],
        );
        let ours = get(
            &c,
            &format!("{a}/query"),
            &[("query", q.into()), ("time", at)],
        );
        assert!(
            !result(&theirs).as_array().unwrap().is_empty(),
            "{q}: {theirs}"
        );
        assert_eq!(result(&ours), result(&theirs), "instant {q}");
        let w = ours["warnings"].to_string();
        assert!(
            w.contains("remote engine \\\"down\\\""),
            "no warning for the engine that is down: {ours}"
        );
        let range = [
            ("query", q.to_string()),
            ("start", secs(t0 + 62_500)),
            ("end", secs(tend)),
            ("step", "15".to_string()),
        ];
        let theirs = get(&c, &format!("{prom}/api/v1/query_range"), &range);
        let ours = get(&c, &format!("{a}/query_range"), &range);
        assert_eq!(result(&ours), result(&theirs), "range {q}");
    }

    // VictoriaMetrics-only data, read raw through its export API.
    let v = get(
        &c,
        &format!("{a}/query_range"),
        &[
            ("query", "rr_vm".into()),
            ("start", secs(t0)),
            ("end", secs(tend)),
            ("step", "5".into()),
        ],
    );
    let vals = result(&v)[0]["values"]
        .as_array()
        .cloned()
        .expect("rr_vm values");
    assert_eq!(vals.len(), N as usize, "{v}");
    for (i, p) in vals.iter().enumerate() {
        assert_eq!(
            p[1].as_str().expect("value").parse::<f64>().expect("float"),
            i as f64 * 0.25
        );
    }

    // Local + remote halves of one series merge into one, each timestamp once.
    let v = get(
        &c,
        &format!("{a}/query"),
        &[
            ("query", "count_over_time(rr_shared[1h])".into()),
            ("time", secs(tend)),
        ],
    );
    assert_eq!(result(&v).as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(result(&v)[0]["value"][1], N.to_string(), "{v}");
    let v = get(
        &c,
        &format!("{a}/query"),
        &[
            ("query", "sum(rr_local) + sum(rr_prom) + sum(rr_vm)".into()),
            ("time", secs(tend)),
        ],
    );
    let want = (N - 1) as f64 + counter(N - 1) + (N - 1) as f64 * 0.25;
    assert_eq!(result(&v)[0]["value"][1], want.to_string(), "{v}");

    // Series API lists local and remote series.
    let v = get(
        &c,
        &format!("{a}/series"),
        &[
            (
                "match[]",
                r#"{__name__=~"rr_(local|prom|vm|shared)"}"#.into(),
            ),
            ("start", secs(t0)),
            ("end", secs(tend)),
        ],
    );
    let names: Vec<String> = v["data"]
        .as_array()
        .expect("series")
        .iter()
        .map(|s| s["__name__"].as_str().unwrap_or("").to_string())
        .collect();
    for n in ["rr_local", "rr_prom", "rr_vm", "rr_shared"] {
        assert_eq!(names.iter().filter(|x| *x == n).count(), 1, "{n} in {v}");
    }

    // Label values of matching series come from every source.
    let v = get(
        &c,
        &format!("{a}/label/src/values"),
        &[
            ("match[]", r#"{__name__=~"rr_(local|prom|vm)"}"#.into()),
            ("start", secs(t0)),
            ("end", secs(tend)),
        ],
    );
    assert_eq!(v["data"], serde_json::json!(["local", "prom", "vm"]), "{v}");

    // Without match[]: local names, VictoriaMetrics' through its label API; the remote-read
    // endpoint cannot list (a warning, as Prometheus gives), the down engine warns.
    let v = get(
        &c,
        &format!("{a}/label/__name__/values"),
        &[("start", secs(t0)), ("end", secs(tend))],
    );
    let names: Vec<&str> = v["data"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for n in ["rr_local", "rr_shared", "rr_vm"] {
        assert!(names.contains(&n), "{n} missing: {v}");
    }
    assert!(!names.contains(&"rr_prom"), "{v}");
    let w = v["warnings"].to_string();
    assert!(
        w.contains("not implemented by the remote-read protocol"),
        "{v}"
    );
    assert!(w.contains("remote engine \\\"down\\\""), "{v}");
    let v = get(
        &c,
        &format!("{a}/labels"),
        &[("start", secs(t0)), ("end", secs(tend))],
    );
    for l in ["__name__", "src"] {
        assert!(
            v["data"]
                .as_array()
                .is_some_and(|a| a.contains(&Value::from(l))),
            "{l}: {v}"
        );
    }

    // Export reads through the remote engines: the split series whole, each timestamp once,
    // VictoriaMetrics' series too, and the down engine named in a header.
    let r = c
        .get(format!("{a}/export"))
        .query(&[
            ("match[]", r#"{__name__=~"rr_(shared|vm)"}"#.to_string()),
            ("start", secs(t0)),
            ("end", secs(tend)),
        ])
        .send()
        .expect("export");
    assert!(r.status().is_success(), "export: {}", r.status());
    let warn: Vec<String> = r
        .headers()
        .get_all("x-sextant-warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    assert!(warn.iter().any(|w| w.contains("\"down\"")), "{warn:?}");
    let body = r.text().expect("export body");
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{body}");
    for l in &lines {
        assert_eq!(
            l["timestamps"].as_array().map(Vec::len),
            Some(N as usize),
            "{l}"
        );
        let ts: Vec<i64> = l["timestamps"]
            .as_array()
            .expect("timestamps")
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{l}");
    }

    // A recording rule evaluated by Sextant A over VictoriaMetrics-only data.
    wait_for("rule rr_vm_total", Duration::from_secs(60), || {
        let v = get(
            &c,
            &format!("{a}/query"),
            &[("query", "rr_vm_total".into())],
        );
        result(&v)[0]["value"][1].as_str() == Some(((N - 1) as f64 * 0.25).to_string().as_str())
    });

    // Sextant C reads the remote engines only: no local series, remote ones visible.
    let cfg_c = dir.path().join("sextant-c.yml");
    std::fs::write(
        &cfg_c,
        format!(
            "query_local_storage: false\nremote_engines:\n  - name: prom-api\n    url: {prom}\n"
        ),
    )
    .expect("config c");
    let mut sx_c = Server::start(
        &dir.path().join("sextant-c"),
        &[
            "--no-default-rules",
            "--config",
            cfg_c.to_str().expect("utf-8 path"),
        ],
    );
    sx_c.wait_ready(Duration::from_secs(60));
    write(
        &c,
        &sx_c.url("/api/v1/write"),
        &[series("rr_prom", "c-local", t0, 0, N, |i| i as f64)],
    );
    let range = [
        ("query", "rr_prom".to_string()),
        ("start", secs(t0)),
        ("end", secs(tend)),
        ("step", "10".to_string()),
    ];
    let ours = get(&c, &sx_c.url("/api/v1/query_range"), &range);
    let theirs = get(&c, &format!("{prom}/api/v1/query_range"), &range);
    assert_eq!(
        result(&ours),
        result(&theirs),
        "remote-only range query through the query API"
    );

    // Native histograms through the query API: raw samples and functions over them equal
    // Prometheus' own answers.
    for q in [
        "rr_hist",
        "histogram_count(rate(rr_hist[1m]))",
        "histogram_sum(rr_hist)",
        "sum(rate(rr_hist[1m]))",
        "histogram_count(increase(rr_hist[2m]))",
    ] {
        let range = [
            ("query", q.to_string()),
            ("start", secs(t0 + 62_500)),
            ("end", secs(tend)),
            ("step", "15".to_string()),
        ];
        let theirs = get(&c, &format!("{prom}/api/v1/query_range"), &range);
        let ours = get(&c, &sx_c.url("/api/v1/query_range"), &range);
        assert!(
            !result(&theirs).as_array().unwrap().is_empty(),
            "{q}: {theirs}"
        );
        assert_json_close(&result(&ours), &result(&theirs), q);
        assert!(ours["warnings"].is_null(), "{q}: {ours}");
    }
    // Quantiles: Prometheus 2.42 interpolates linearly inside exponential buckets, Sextant
    // exponentially as Prometheus 3 does; so compare with Sextant B holding the same
    // histograms locally.
    for q in [
        "histogram_quantile(0.9, rate(HIST[1m]))",
        "histogram_quantile(0.5, HIST)",
        "histogram_fraction(0, 2, HIST)",
    ] {
        let range = |name: &str| {
            [
                ("query", q.replace("HIST", name)),
                ("start", secs(t0 + 62_500)),
                ("end", secs(tend)),
                ("step", "15".to_string()),
            ]
        };
        let local = get(&c, &sx_b.url("/api/v1/query_range"), &range("rr_hist_b"));
        let ours = get(&c, &sx_c.url("/api/v1/query_range"), &range("rr_hist"));
        assert!(
            !result(&local).as_array().unwrap().is_empty(),
            "{q}: {local}"
        );
        assert_eq!(result(&ours), result(&local), "native histograms: {q}");
    }
    let v = get(
        &c,
        &sx_c.url("/api/v1/query"),
        // Between samples: Prometheus 2 includes a range's start, Sextant (as 3) does not.
        &[
            ("query", "rr_hist[30s]".into()),
            ("time", secs(tend - 2_500)),
        ],
    );
    let w = get(
        &c,
        &format!("{prom}/api/v1/query"),
        // Between samples: Prometheus 2 includes a range's start, Sextant (as 3) does not.
        &[
            ("query", "rr_hist[30s]".into()),
            ("time", secs(tend - 2_500)),
        ],
    );
    assert_json_close(&result(&v), &result(&w), "raw histogram samples");

    // Label names and values without match[] come from the engine's own label API.
    for path in ["/api/v1/labels", "/api/v1/label/__name__/values"] {
        let q = [("start", secs(t0)), ("end", secs(tend))];
        let ours = get(&c, &sx_c.url(path), &q);
        let theirs = get(&c, &format!("{prom}{path}"), &q);
        assert_eq!(ours["data"], theirs["data"], "{path}");
        assert!(
            ours["data"].as_array().is_some_and(|a| a.len() >= 2),
            "{path}: {ours}"
        );
    }

    // Prometheus reads Sextant B through remote_read: data only Sextant holds.
    for q in ["rr_sx", "rate(rr_sx[1m])"] {
        let range = [
            ("query", q.to_string()),
            ("start", secs(t0 + 62_500)),
            ("end", secs(tend)),
            ("step", "15".to_string()),
        ];
        let theirs = get(&c, &format!("{prom}/api/v1/query_range"), &range);
        let ours = get(&c, &sx_b.url("/api/v1/query_range"), &range);
        assert!(!result(&ours).as_array().unwrap().is_empty(), "{ours}");
        assert_eq!(
            result(&theirs),
            result(&ours),
            "prometheus remote_read of {q}"
        );
    }

    // Both response types of Sextant's /api/v1/read decode to what Prometheus' own endpoint
    // returns for identical data.
    let ms = [Matcher::equal("__name__", "rr_same")];
    let mut reference = remote_read(&c, &format!("{prom}/api/v1/read"), t0, tend, &ms, true);
    // Prometheus' fanout also returns Sextant B's copy through its own remote_read: identical.
    reference = sextant_remote::merge(reference, Vec::new());
    assert_eq!(reference.len(), 1);
    assert_eq!(reference[0].floats.len(), N as usize);
    for streamed in [false, true] {
        let ours = remote_read(&c, &sx_b.url("/api/v1/read"), t0, tend, &ms, streamed);
        assert_eq!(ours, reference, "streamed={streamed}");
    }
}
