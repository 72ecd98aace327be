//! `/api/v1/export` and `sextant export`: every format round-trips through its import endpoint
//! into a fresh server, `step` samples like PromQL, a large export streams in bounded memory,
//! the InfluxDB and Datadog destinations send what those APIs document, and data exported from
//! a real VictoriaMetrics imports unchanged.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{client, free_port, peer, remote_write_v1, Peer, Server};
use sextant_model::{Labels, Sample};

fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Server::start(dir.path(), &["--no-default-rules"]);
    s.wait_ready(Duration::from_secs(60));
    (dir, s)
}

fn get_export(s: &Server, sel: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let mut q = vec![("match[]", sel)];
    q.extend_from_slice(extra);
    let r = client()
        .get(s.url("/api/v1/export"))
        .query(&q)
        .send()
        .expect("export request");
    let status = r.status().as_u16();
    (status, r.text().expect("export body"))
}

fn export_ok(s: &Server, sel: &str, format: &str) -> String {
    let (st, body) = get_export(s, sel, &[("format", format)]);
    assert_eq!(st, 200, "export format={format}: {body}");
    body
}

fn post(s: &Server, path: &str, ct: &str, body: String) -> (u16, String) {
    let r = client()
        .post(s.url(path))
        .header("Content-Type", ct)
        .body(body)
        .send()
        .expect("import request");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// Milliseconds an hour ago, with a non-zero millisecond part to prove ms precision survives.
fn base_ms() -> i64 {
    (sextant_model::time::now_ms() / 1000 - 3600) * 1000 + 123
}

fn seed_floats(s: &Server) {
    let t0 = base_ms();
    let series = vec![
        (
            Labels::from_pairs([
                ("__name__", "rt_requests_total"),
                ("job", "api"),
                ("path", "/a b,c=d\"e\\f ü"),
            ]),
            (0..240)
                .map(|i| Sample {
                    t: t0 + i * 15_000,
                    v: (i * 3) as f64,
                })
                .collect::<Vec<_>>(),
        ),
        (
            Labels::from_pairs([("__name__", "rt_temp_celsius"), ("room", "lab")]),
            (0..240)
                .map(|i| Sample {
                    t: t0 + i * 15_000 + 7,
                    v: match i % 4 {
                        0 => -12.25,
                        1 => 1e-7,
                        2 => 1.5e21,
                        _ => 0.1 * i as f64,
                    },
                })
                .collect(),
        ),
        (
            Labels::from_pairs([("__name__", "rt_up"), ("instance", "h:9100")]),
            (0..100)
                .map(|i| Sample {
                    t: t0 + i * 30_000,
                    v: (i % 2) as f64,
                })
                .collect(),
        ),
    ];
    let st = remote_write_v1(&client(), &s.url("/api/v1/write"), &series).expect("write");
    assert_eq!(st, 204);
}

/// Where each format is imported, and as what content type.
fn import_path(format: &str) -> (&'static str, &'static str) {
    match format {
        "jsonl" | "json" => ("/api/v1/import", "application/json"),
        "csv" => ("/api/v1/import/csv", "text/csv"),
        "openmetrics" => (
            "/api/v1/import/prometheus",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "influx" => ("/write", "text/plain"),
        other => panic!("no import for {other}"),
    }
}

#[test]
fn every_format_round_trips_through_its_import_endpoint() {
    let (_da, a) = start();
    seed_floats(&a);
    let sel = r#"{__name__=~"rt_.*"}"#;
    let reference = export_ok(&a, sel, "jsonl");
    assert_eq!(reference.lines().count(), 3, "{reference}");
    for format in ["jsonl", "json", "csv", "openmetrics", "influx"] {
        let out = export_ok(&a, sel, format);
        let samples = 240 + 240 + 100;
        match format {
            "csv" => assert_eq!(out.lines().count(), samples + 1, "header + rows"),
            "openmetrics" => {
                assert_eq!(out.lines().count(), samples + 1, "rows + # EOF");
                assert!(out.ends_with("# EOF\n"));
            }
            "influx" => assert_eq!(out.lines().count(), samples),
            "json" => {
                let v: serde_json::Value =
                    serde_json::from_str(&out).expect("json is one document");
                assert_eq!(v.as_array().map(Vec::len), Some(3));
            }
            _ => {}
        }
        let (_db, b) = start();
        let (path, ct) = import_path(format);
        let (st, msg) = post(&b, path, ct, out.clone());
        assert!(
            (200..300).contains(&st),
            "import {format} into {path}: {st} {msg}"
        );
        assert_eq!(
            export_ok(&b, sel, format),
            out,
            "{format}: export -> import -> export"
        );
        assert_eq!(
            export_ok(&b, sel, "jsonl"),
            reference,
            "{format}: the re-imported samples differ"
        );
    }
}

#[test]
fn native_histograms_round_trip_in_json_formats() {
    let (_da, a) = start();
    let t = base_ms();
    let body = format!(
        concat!(
            r#"{{"metric":{{"__name__":"rt_latency_seconds","job":"x"}},"histograms":["#,
            r#"{{"count":5,"sum":1.25,"schema":1,"zero_threshold":0.001,"zero_count":1,"negative_spans":[],"negative_deltas":[],"positive_spans":[{{"offset":-1,"length":2}},{{"offset":3,"length":1}}],"positive_deltas":[1,1,-1],"reset_hint":0,"custom_values":[]}},"#,
            r#"{{"count":9,"sum":2.5,"schema":1,"zero_threshold":0.001,"zero_count":2,"negative_spans":[],"negative_deltas":[],"positive_spans":[{{"offset":-1,"length":2}},{{"offset":3,"length":1}}],"positive_deltas":[2,1,-1],"reset_hint":0,"custom_values":[]}}"#,
            r#"],"timestamps":[{},{}]}}"#,
            "\n",
            r#"{{"metric":{{"__name__":"rt_float_hist","job":"x"}},"histograms":["#,
            r#"{{"count":2.5,"sum":"NaN","schema":0,"zero_threshold":0,"zero_count":0.5,"negative_spans":[{{"offset":0,"length":1}}],"negative_counts":[1],"positive_spans":[{{"offset":0,"length":1}}],"positive_counts":[1],"reset_hint":3,"custom_values":[]}}"#,
            r#"],"timestamps":[{}]}}"#,
            "\n"
        ),
        t,
        t + 15_000,
        t
    );
    let (st, msg) = post(&a, "/api/v1/import", "application/json", body);
    assert_eq!(st, 204, "{msg}");
    let sel = r#"{job="x"}"#;
    let jsonl = export_ok(&a, sel, "jsonl");
    assert_eq!(jsonl.lines().count(), 2, "{jsonl}");
    assert!(jsonl.contains(r#""positive_deltas":[1,1,-1]"#), "{jsonl}");
    assert!(jsonl.contains(r#""sum":"NaN""#), "{jsonl}");
    for format in ["jsonl", "json"] {
        let out = export_ok(&a, sel, format);
        let (_db, b) = start();
        let (st, msg) = post(&b, "/api/v1/import", "application/json", out.clone());
        assert_eq!(st, 204, "{msg}");
        assert_eq!(export_ok(&b, sel, format), out, "{format}");
    }
    // Formats without a native-histogram spelling leave them out (docs/export.md).
    assert_eq!(
        export_ok(&a, sel, "csv"),
        "__name__,job,__timestamp__,__value__\n"
    );
    assert_eq!(export_ok(&a, sel, "openmetrics"), "# EOF\n");
    assert_eq!(export_ok(&a, sel, "influx"), "");
}

#[test]
fn step_samples_with_lookback_and_bad_input_gets_400() {
    let (_d, s) = start();
    let t = (sextant_model::time::now_ms() / 1000 - 3600) * 1000;
    let body = format!(
        "{{\"metric\":{{\"__name__\":\"rt_step\"}},\"values\":[1,2,3],\"timestamps\":[{},{},{}]}}\n",
        t,
        t + 10_000,
        t + 20 * 60_000
    );
    assert_eq!(post(&s, "/api/v1/import", "application/json", body).0, 204);
    let (start, end) = (
        (t / 1000).to_string(),
        ((t + 25 * 60_000) / 1000).to_string(),
    );
    let (st, out) = get_export(
        &s,
        "rt_step",
        &[
            ("format", "csv"),
            ("start", &start),
            ("end", &end),
            ("step", "5m"),
        ],
    );
    assert_eq!(st, 200, "{out}");
    let m = 60_000;
    // The lookback window is (t - 5m, t], left-open as in our PromQL engine (and Prometheus 3):
    // nothing at +10m and +15m, and the sample at +20m is out of reach at +25m.
    let want = format!(
        "__name__,__timestamp__,__value__\nrt_step,{},1\nrt_step,{},2\nrt_step,{},3\n",
        t,
        t + 5 * m,
        t + 20 * m,
    );
    assert_eq!(out, want, "values at steps");

    for (q, needle) in [
        (vec![("format", "xml")], "is not one of jsonl"),
        (vec![("step", "5m")], "needs both"),
        (
            vec![("start", "1"), ("end", "100000"), ("step", "1ms")],
            "more than",
        ),
    ] {
        let (st, body) = get_export(&s, "rt_step", &q);
        assert_eq!(st, 400, "{q:?}: {body}");
        assert!(body.contains(needle), "{q:?}: {body}");
    }
    let (st, body) = get_export(&s, "", &[]);
    assert_eq!(st, 400, "{body}");
    let (st, body) = post(
        &s,
        "/api/v1/import",
        "application/json",
        "{\"metric\":{},\"values\":[1],\"timestamps\":[1]}\n{\"metric\":{}}\n".into(),
    );
    assert_eq!(st, 400);
    assert!(body.starts_with("line 2: field \"timestamps\""), "{body}");
    // gzip bodies, as vmctl and other VictoriaMetrics clients send them.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(
        format!("{{\"metric\":{{\"__name__\":\"rt_gz\"}},\"values\":[4],\"timestamps\":[{t}]}}\n")
            .as_bytes(),
    )
    .expect("gzip");
    let r = client()
        .post(s.url("/api/v1/import"))
        .header("Content-Encoding", "gzip")
        .body(gz.finish().expect("gzip"))
        .send()
        .expect("gzip import");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        export_ok(&s, "rt_gz", "csv"),
        format!("__name__,__timestamp__,__value__\nrt_gz,{t},4\n")
    );
    let (st, body) = post(
        &s,
        "/api/v1/import/csv",
        "text/csv",
        "__name__,__timestamp__,__value__\nx,1,one\n".into(),
    );
    assert_eq!(st, 400);
    assert!(body.starts_with("line 2: column \"__value__\""), "{body}");
}

fn vm_hwm_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// 2 000 series x 200 samples with long labels: an export of ~70 MB must not raise the
/// server's peak memory by anything near its size (the old implementation built the whole
/// body in one String).
#[test]
fn large_export_streams_in_bounded_memory() {
    let (_d, s) = start();
    let c = client();
    let t0 = base_ms();
    let pad = "p".repeat(120);
    for batch in 0..20 {
        let series: Vec<(Labels, Vec<Sample>)> = (0..100)
            .map(|i| {
                let id = (batch * 100 + i).to_string();
                (
                    Labels::from_pairs([
                        ("__name__", "big_series_total"),
                        ("id", id.as_str()),
                        ("pad", pad.as_str()),
                    ]),
                    (0..200)
                        .map(|k| Sample {
                            t: t0 + k * 15_000,
                            v: k as f64,
                        })
                        .collect(),
                )
            })
            .collect();
        let st = remote_write_v1(&c, &s.url("/api/v1/write"), &series).expect("write");
        assert_eq!(st, 204);
    }
    // Reset the peak-RSS mark to the current RSS (Linux: `5` to clear_refs), so the check below
    // sees the export's own peak, not the ingestion's.
    std::fs::write(format!("/proc/{}/clear_refs", s.child.id()), "5").expect("reset VmHWM");
    let before = vm_hwm_kb(s.child.id());
    let long = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client");
    let mut r = long
        .get(s.url("/api/v1/export"))
        .query(&[("match[]", "big_series_total"), ("format", "openmetrics")])
        .send()
        .expect("export");
    assert_eq!(r.status().as_u16(), 200);
    // Count the body without keeping it; check the last line is `# EOF`.
    let (mut total, mut lines) = (0usize, 0usize);
    let mut buf = vec![0u8; 1 << 16];
    let mut tail = Vec::new();
    loop {
        let n = r.read(&mut buf).expect("read body");
        if n == 0 {
            break;
        }
        total += n;
        lines += buf[..n].iter().filter(|b| **b == b'\n').count();
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(16);
        tail.drain(..keep);
    }
    assert!(tail.ends_with(b"# EOF\n"));
    assert_eq!(lines, 2_000 * 200 + 1);
    assert!(total > 60_000_000, "export is {total} bytes");
    let after = vm_hwm_kb(s.child.id());
    let grew = after.saturating_sub(before) * 1024;
    eprintln!("export of {total} bytes raised the server's peak RSS by {grew} bytes ({before} kB -> {after} kB)");
    assert!(
        grew < total as u64 / 4,
        "peak RSS grew by {grew} bytes for a {total}-byte export: not streaming"
    );
}

/// One captured HTTP request.
struct Req {
    head: String,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }
}

/// A local HTTP server that records requests and answers each with `status` and `body`.
fn capture(status: &'static str, reply: &'static str) -> (u16, mpsc::Receiver<Req>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
            let mut data = Vec::new();
            let mut buf = [0u8; 65536];
            let head_end = loop {
                if let Some(p) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p;
                }
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                }
            };
            let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
            let req0 = Req {
                head,
                body: Vec::new(),
            };
            let len: usize = req0
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = data[head_end + 4..].to_vec();
            while body.len() < len {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&buf[..n]),
                }
            }
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
            let _ = conn.write_all(resp.as_bytes());
            let _ = tx.send(Req {
                head: req0.head,
                body: std::mem::take(&mut body),
            });
        }
    });
    (port, rx)
}

fn sextant_export(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sextant"));
    c.arg("export").args(args).env_remove("DD_API_KEY");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).output().expect("run sextant export")
}

#[test]
fn cli_writes_files_and_sends_to_influx_and_datadog() {
    let (dir, s) = start();
    seed_floats(&s);
    let server = s.url("");
    let sel = r#"{__name__=~"rt_.*"}"#;

    // --output with a relative start: the same bytes as the HTTP export over all data.
    let file = dir.path().join("out.csv");
    let out = sextant_export(
        &[
            "--server",
            &server,
            "--match",
            sel,
            "--start",
            "-2h",
            "--format",
            "csv",
            "--output",
            file.to_str().expect("path"),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&file).expect("output file");
    assert_eq!(written, export_ok(&s, sel, "csv"));
    // stdout, default format jsonl.
    let out = sextant_export(&["--server", &server, "--match", sel], &[]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        export_ok(&s, sel, "jsonl")
    );

    // --url: InfluxDB line protocol, gzip, to the write URL as given.
    let (port, rx) = capture("204 No Content", "");
    let url = format!("http://127.0.0.1:{port}/write?db=metrics&precision=ns");
    let out = sextant_export(
        &[
            "--server", &server, "--match", sel, "--format", "influx", "--url", &url,
        ],
        &[("INFLUX_TOKEN", "tok")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let req = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("influx request");
    assert_eq!(
        req.request_line(),
        "POST /write?db=metrics&precision=ns HTTP/1.1"
    );
    assert_eq!(req.header("content-encoding"), Some("gzip"));
    assert_eq!(req.header("authorization"), Some("Token tok"));
    let mut lp = String::new();
    flate2::read::GzDecoder::new(&req.body[..])
        .read_to_string(&mut lp)
        .expect("gzip body");
    assert_eq!(lp, export_ok(&s, sel, "influx"));
    assert!(
        lp.contains("rt_requests,job=api,path=/a\\ b\\,c\\=d\"e\\\\f\\ ü total=3 "),
        "{lp}"
    );

    // Datadog: key from the environment, v2 series JSON.
    let out = sextant_export(
        &["--server", &server, "--match", sel, "--format", "datadog"],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DD_API_KEY"));
    let (port, rx) = capture("202 Accepted", "{\"errors\":[]}");
    let out = sextant_export(
        &[
            "--server",
            &server,
            "--match",
            sel,
            "--format",
            "datadog",
            "--url",
            &format!("http://127.0.0.1:{port}"),
        ],
        &[("DD_API_KEY", "secret-key")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let req = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("datadog request");
    assert_eq!(req.request_line(), "POST /api/v2/series HTTP/1.1");
    assert_eq!(req.header("dd-api-key"), Some("secret-key"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("content-encoding"), Some("gzip"));
    let mut json_body = String::new();
    flate2::read::GzDecoder::new(&req.body[..])
        .read_to_string(&mut json_body)
        .expect("gzip body");
    assert!(
        req.body.len() <= 512_000,
        "over Datadog's 500 kB payload limit"
    );
    let v: serde_json::Value = serde_json::from_str(&json_body).expect("JSON body");
    let series = v["series"].as_array().expect("series array");
    assert_eq!(series.len(), 3);
    let req_total = series
        .iter()
        .find(|s| s["metric"] == "rt_requests_total")
        .expect("rt_requests_total");
    assert_eq!(req_total["type"], 3);
    let tags: Vec<&str> = req_total["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(tags, vec!["job:api", "path:/a b,c=d\"e\\f ü"]);
    let points = req_total["points"].as_array().expect("points");
    let line: serde_json::Value =
        serde_json::from_str(export_ok(&s, "rt_requests_total", "jsonl").trim()).expect("jsonl");
    let want: Vec<serde_json::Value> = line["timestamps"]
        .as_array()
        .expect("timestamps")
        .iter()
        .zip(line["values"].as_array().expect("values"))
        .map(|(t, v)| {
            serde_json::json!({"timestamp": t.as_i64().expect("ts").div_euclid(1000), "value": v.as_f64().expect("v")})
        })
        .collect();
    assert_eq!(points.len(), 240);
    assert_eq!(
        points, &want,
        "points are the samples, timestamps in whole seconds"
    );
}

/// Data exported from a real VictoriaMetrics imports into Sextant and exports back with the
/// same samples.
#[test]
fn victoriametrics_export_imports_unchanged() {
    if !peer("victoria-metrics") {
        return;
    }
    let vm_dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _vm = Peer(
        Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", vm_dir.path().display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .args([
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",
                "-loggerLevel=ERROR",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn victoria-metrics"),
    );
    let vm = format!("http://127.0.0.1:{port}");
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !c
        .get(format!("{vm}/health"))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "victoria-metrics did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t0 = base_ms();
    let mut lines = String::new();
    for i in 0..5 {
        let ts: Vec<String> = (0..50).map(|k| (t0 + k * 10_000).to_string()).collect();
        let vals: Vec<String> = (0..50)
            .map(|k| format!("{}", k as f64 * 1.5 + i as f64))
            .collect();
        lines.push_str(&format!(
            "{{\"metric\":{{\"__name__\":\"vm_src_total\",\"shard\":\"{i}\",\"env\":\"e 1\"}},\"values\":[{}],\"timestamps\":[{}]}}\n",
            vals.join(","),
            ts.join(",")
        ));
    }
    let r = c
        .post(format!("{vm}/api/v1/import"))
        .body(lines)
        .send()
        .expect("vm import");
    assert!(r.status().is_success(), "vm import: {}", r.status());
    let _ = c.get(format!("{vm}/internal/force_flush")).send();
    let vm_export = |deadline: Instant| loop {
        let body = c
            .get(format!("{vm}/api/v1/export"))
            .query(&[("match[]", "vm_src_total")])
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        if samples_of(&body).values().map(Vec::len).sum::<usize>() == 250 {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "VictoriaMetrics never showed all 250 samples: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let from_vm = vm_export(Instant::now() + Duration::from_secs(60));

    let (_d, s) = start();
    let (st, msg) = post(&s, "/api/v1/import", "application/json", from_vm.clone());
    assert_eq!(st, 204, "{msg}");
    let ours = export_ok(&s, "vm_src_total", "jsonl");
    assert_eq!(samples_of(&ours), samples_of(&from_vm));
    assert_eq!(samples_of(&ours).len(), 5);

    // And the other way: Sextant's export imports into VictoriaMetrics.
    let r = c
        .post(format!("{vm}/api/v1/import"))
        .body(ours.replace("vm_src_total", "vm_back_total"))
        .send()
        .expect("vm import of sextant export");
    assert!(r.status().is_success());
    let _ = c.get(format!("{vm}/internal/force_flush")).send();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let back = c
            .get(format!("{vm}/api/v1/export"))
            .query(&[("match[]", "vm_back_total")])
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        let renamed: BTreeMap<String, Vec<(i64, String)>> = samples_of(&back)
            .into_iter()
            .map(|(k, v)| (k.replace("vm_back_total", "vm_src_total"), v))
            .collect();
        if renamed == samples_of(&from_vm) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "VictoriaMetrics did not take Sextant's export: {back}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// JSON lines -> series (labels as canonical JSON) -> (timestamp, value as f64 bits string),
/// merging lines of the same series (VictoriaMetrics may split a series).
fn samples_of(jsonl: &str) -> BTreeMap<String, Vec<(i64, String)>> {
    let mut out: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for l in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
        let metric: BTreeMap<String, String> = v["metric"]
            .as_object()
            .expect("metric")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let key = serde_json::to_string(&metric).expect("key");
        let e = out.entry(key).or_default();
        let ts = v["timestamps"].as_array().expect("timestamps");
        let vals = v["values"].as_array().expect("values");
        for (t, x) in ts.iter().zip(vals) {
            let f = x
                .as_f64()
                .or_else(|| x.as_str().and_then(|s| s.parse().ok()));
            e.push((t.as_i64().expect("ts"), format!("{:?}", f)));
        }
        e.sort_by_key(|s| s.0);
    }
    out
}
