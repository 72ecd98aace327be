//! End-to-end tests of the `limits:` section: the real binary starts with a sextant.yml that
//! sets small limits; each test drives one family of limits over HTTP and checks the status,
//! the message naming the limit, and `sextant_limit_hits_total{limit=...}` on `/metrics`.
//! Decompression bombs (gzip and snappy) are sent to every path that decompresses.

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use common::Server;
use sextant_model::{Labels, Sample};

const CONFIG: &str = r#"
rule_files: [rules.yml]
limits:
  max_request_size: 4MB
  max_decompressed_size: 1MB
  max_series_per_request: 5
  max_samples_per_request: 50
  max_labels_per_series: 6
  max_label_name_length: 20
  max_label_value_length: 30
  max_series: 40
  max_series_per_metric: 8
  tenant_label: team
  max_series_per_tenant: 3
  query_max_samples: 100
  max_rules: 3
  max_push_groups: 2
  max_silences: 2
"#;

const TWO_RULES: &str = "groups:\n- name: g\n  rules:\n  - record: a:r\n    expr: vector(1)\n  - record: b:r\n    expr: vector(2)\n";

struct Env {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    s: Server,
    c: reqwest::blocking::Client,
}

fn start() -> Env {
    start_with(&[])
}

fn start_with(flags: &[&str]) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    std::fs::write(path.join("sextant.yml"), CONFIG).unwrap();
    std::fs::write(path.join("rules.yml"), TWO_RULES).unwrap();
    let cfg = path.join("sextant.yml");
    let data = path.join("data");
    let mut args = vec!["--config", cfg.to_str().unwrap(), "--no-default-rules"];
    args.extend_from_slice(flags);
    let mut s = Server::start(&data, &args);
    s.wait_ready(Duration::from_secs(60));
    Env {
        _dir: dir,
        dir: path,
        s,
        // No connection reuse: a server that refuses a body before reading it all closes
        // the connection, and a pooled one would then fail the next request.
        c: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client"),
    }
}

/// `sextant_limit_hits_total{limit="<name>"}` from `/metrics` (panics when missing).
fn hits(e: &Env, name: &str) -> u64 {
    let text = e.c.get(e.s.url("/metrics")).send().unwrap().text().unwrap();
    let key = format!("sextant_limit_hits_total{{limit=\"{name}\"}} ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&key))
        .unwrap_or_else(|| panic!("no {key} in /metrics"));
    line[key.len()..].trim().parse().expect("counter value")
}

fn ls(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn now() -> i64 {
    sextant_model::time::now_ms()
}

/// Sends a remote-write 1.0 request; returns status and body.
fn rw(e: &Env, series: &[(Labels, Vec<Sample>)]) -> (u16, String) {
    let body = sextant_ingest::remote_write::compress_snappy(
        &sextant_ingest::remote_write::encode_v1(series),
    );
    rw_raw(e, body)
}

fn rw_raw(e: &Env, body: Vec<u8>) -> (u16, String) {
    let r =
        e.c.post(e.s.url("/api/v1/write"))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn one(labels: Labels, t: i64, v: f64) -> (Labels, Vec<Sample>) {
    (labels, vec![Sample::new(t, v)])
}

/// 10 MB of zeros, gzipped (about 10 KB).
fn small_gzip_bomb() -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..10 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap()
}

/// A gzip member that expands to 1 GiB of zeros, about 1 MB on the wire. Built by streaming:
/// one MiB of zeros is deflated once with a full flush (an independent, byte-aligned piece),
/// and that piece is repeated 1024 times before the final block. The CRC in the trailer is
/// not computed (a decoder that honours the limit never gets there).
fn gigabyte_gzip_bomb() -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let zeros = vec![0u8; 1 << 20];
    let mut piece = Vec::with_capacity(8 << 10);
    let mut c = Compress::new(Compression::best(), false);
    c.compress_vec(&zeros, &mut piece, FlushCompress::Full)
        .unwrap();
    assert_eq!(c.total_in(), 1 << 20, "piece holds all of the input");
    let mut tail = Vec::with_capacity(64);
    Compress::new(Compression::best(), false)
        .compress_vec(&[], &mut tail, FlushCompress::Finish)
        .unwrap();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..1024 {
        out.extend_from_slice(&piece);
    }
    out.extend_from_slice(&tail);
    out.extend_from_slice(&[0; 8]);
    out
}

/// A snappy block whose header claims `claimed` bytes (the rest is a few literal bytes).
fn snappy_claiming(claimed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut v = claimed;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    // A literal of 4 bytes.
    out.extend_from_slice(&[3 << 2, 0, 0, 0, 0]);
    out
}

#[test]
fn every_limit_counter_starts_at_zero() {
    let e = start();
    for name in [
        "body_size",
        "decompressed_size",
        "series_per_request",
        "samples_per_request",
        "labels_per_series",
        "label_name_length",
        "label_value_length",
        "series",
        "series_per_metric",
        "series_per_tenant",
        "query_timeout",
        "query_samples",
        "query_concurrency",
        "write_concurrency",
        "rule_count",
        "push_groups",
        "silences",
    ] {
        assert_eq!(hits(&e, name), 0, "{name}");
    }
}

#[test]
fn request_size_and_decompression_bombs_on_every_path() {
    let e = start();
    // Body over max_request_size: 413 before any handler.
    let big = vec![b'#'; 5 << 20];
    let r =
        e.c.post(e.s.url("/api/v1/import/prometheus"))
            .body(big)
            .send()
            .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let msg = r.text().unwrap();
    assert!(
        msg.contains("limit body_size") && msg.contains("4194304"),
        "{msg}"
    );
    assert_eq!(hits(&e, "body_size"), 1);

    // Gzip bombs: 10 MB of zeros and 1 GiB of zeros, against a 1 MB limit.
    let small = small_gzip_bomb();
    assert!(
        small.len() < 64 << 10,
        "small bomb is {} bytes",
        small.len()
    );
    let huge = gigabyte_gzip_bomb();
    assert!(huge.len() < 4 << 20, "huge bomb is {} bytes", huge.len());
    {
        // It really is a bomb: the first 2 MiB decode to zeros.
        use std::io::Read;
        let mut first = Vec::new();
        flate2::read::GzDecoder::new(&huge[..])
            .take(2 << 20)
            .read_to_end(&mut first)
            .unwrap();
        assert_eq!(first.len(), 2 << 20);
        assert!(first.iter().all(|b| *b == 0));
    }
    let gz_paths: [(&str, &str, &str); 8] = [
        ("POST", "/api/v1/import", "application/json"),
        ("POST", "/api/v1/import/csv", "text/csv"),
        ("POST", "/write?db=x", "text/plain"),
        ("POST", "/api/v2/write?bucket=x", "text/plain"),
        ("POST", "/v1/metrics", "application/x-protobuf"),
        ("PUT", "/metrics/job/bomb", "text/plain"),
        ("POST", "/api/v1/junit?job=bomb", "application/xml"),
        ("POST", "/api/v1/agent/events", "application/json"),
    ];
    let mut expected = 0;
    for bomb in [&small, &huge] {
        for (method, path, ct) in gz_paths {
            let t0 = Instant::now();
            let req = if method == "PUT" {
                e.c.put(e.s.url(path))
            } else {
                e.c.post(e.s.url(path))
            };
            let r = req
                .header("Content-Type", ct)
                .header("Content-Encoding", "gzip")
                .body(bomb.clone())
                .send()
                .unwrap();
            let status = r.status().as_u16();
            let msg = r.text().unwrap();
            assert_eq!(status, 413, "{method} {path}: {msg}");
            assert!(
                msg.contains("decompressed_size") && msg.contains("1048576"),
                "{method} {path}: {msg}"
            );
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{method} {path} took {:?}",
                t0.elapsed()
            );
            expected += 1;
        }
    }
    // Snappy blocks whose header claims 2 MiB and 4 GiB - 1 (snappy's largest): refused
    // from the header, before anything is allocated.
    for claimed in [2u64 << 20, (4u64 << 30) - 1] {
        let (status, msg) = rw_raw(&e, snappy_claiming(claimed));
        assert_eq!(status, 413, "{msg}");
        assert!(msg.contains("decompressed_size"), "{msg}");
        let r =
            e.c.post(e.s.url("/api/v1/read"))
                .header("Content-Type", "application/x-protobuf")
                .header("Content-Encoding", "snappy")
                .body(snappy_claiming(claimed))
                .send()
                .unwrap();
        assert_eq!(r.status().as_u16(), 413);
        assert!(r.text().unwrap().contains("decompressed_size"));
        expected += 2;
    }
    assert_eq!(hits(&e, "decompressed_size"), expected);
    // Nothing allocated the claimed sizes.
    let text = e.c.get(e.s.url("/metrics")).send().unwrap().text().unwrap();
    let rss: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .expect("process_resident_memory_bytes")
        .trim()
        .parse()
        .unwrap();
    assert!(rss < 512.0 * 1024.0 * 1024.0, "RSS {rss} bytes");
}

#[test]
fn series_and_samples_per_request_on_write_paths() {
    let e = start();
    let t = now();
    let six: Vec<_> = (0..6)
        .map(|i| one(ls(&[("__name__", "rq"), ("i", &i.to_string())]), t, 1.0))
        .collect();
    let (status, msg) = rw(&e, &six);
    assert_eq!(status, 400, "{msg}");
    assert!(
        msg.contains("limit series_per_request") && msg.contains("limit of 5"),
        "{msg}"
    );
    let samples: Vec<Sample> = (0..60)
        .map(|i| Sample::new(t - 60_000 + i * 1000, 1.0))
        .collect();
    let (status, msg) = rw(&e, &[(ls(&[("__name__", "rq_s")]), samples)]);
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("limit samples_per_request"), "{msg}");
    let mut series_hits = 1;

    // Text import, Influx, push: six series each.
    let text: String = (0..6).map(|i| format!("imp{{i=\"{i}\"}} 1\n")).collect();
    let r =
        e.c.post(e.s.url("/api/v1/import/prometheus"))
            .body(text.clone())
            .send()
            .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("limit series_per_request"));
    series_hits += 1;
    let lines: String = (0..6).map(|i| format!("infl,i={i} v=1\n")).collect();
    let r = e.c.post(e.s.url("/write?db=x")).body(lines).send().unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("limit series_per_request"));
    series_hits += 1;
    let r =
        e.c.put(e.s.url("/metrics/job/rq"))
            .body(text)
            .send()
            .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("limit series_per_request"));
    series_hits += 1;
    // Remote write 2.0.
    let body = sextant_ingest::remote_write::compress_snappy(
        &sextant_ingest::remote_write::encode_v2(&six),
    );
    let r =
        e.c.post(e.s.url("/api/v1/write"))
            .header(
                "Content-Type",
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            )
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "2.0.0")
            .body(body)
            .send()
            .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("limit series_per_request"));
    series_hits += 1;
    // OTLP (JSON): six data points of one gauge with different attributes.
    let points: Vec<serde_json::Value> = (0..6)
        .map(|i| {
            serde_json::json!({
                "attributes": [{"key": "i", "value": {"stringValue": i.to_string()}}],
                "timeUnixNano": format!("{}", t * 1_000_000),
                "asDouble": 1.0,
            })
        })
        .collect();
    let otlp = serde_json::json!({"resourceMetrics": [{"resource": {"attributes": []},
        "scopeMetrics": [{"metrics": [{"name": "og", "gauge": {"dataPoints": points}}]}]}]});
    let r =
        e.c.post(e.s.url("/v1/metrics"))
            .header("Content-Type", "application/json")
            .body(otlp.to_string())
            .send()
            .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("limit series_per_request"));
    series_hits += 1;
    // JUnit: every test case is a series of its own.
    let cases: String = (0..6)
        .map(|i| format!("<testcase classname=\"c\" name=\"t{i}\" time=\"0.1\"/>"))
        .collect();
    let r =
        e.c.post(e.s.url("/api/v1/junit?job=rq"))
            .header("Content-Type", "application/xml")
            .body(format!(
                "<testsuite name=\"s\" tests=\"6\">{cases}</testsuite>"
            ))
            .send()
            .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("limit series_per_request"));
    series_hits += 1;
    assert_eq!(hits(&e, "series_per_request"), series_hits);
    assert_eq!(hits(&e, "samples_per_request"), 1);

    // Nothing of the refused requests was stored; a request within the limits is.
    let (status, msg) = rw(&e, &six[..5]);
    assert_eq!(status, 204, "{msg}");
    let got = common::export(&e.c, &e.s.url(""), "{__name__=~\"rq|rq_s|imp|infl_v|og\"}");
    assert_eq!(got.len(), 5, "{got:?}");
}

#[test]
fn label_limits_name_the_limit() {
    let e = start();
    let t = now();
    let many: Vec<(String, String)> = (0..7).map(|i| (format!("l{i}"), "v".into())).collect();
    let mut pairs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    pairs.push(("__name__", "lab"));
    let long_name = "n".repeat(21);
    let long_value = "v".repeat(31);
    let (status, msg) = rw(
        &e,
        &[
            one(ls(&pairs), t, 1.0),
            one(ls(&[("__name__", "lab"), (&long_name, "x")]), t, 1.0),
            one(ls(&[("__name__", "lab"), ("k", &long_value)]), t, 1.0),
            one(ls(&[("__name__", "lab"), ("k", "fine")]), t, 1.0),
        ],
    );
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("(limit labels_per_series)"), "{msg}");
    assert_eq!(hits(&e, "labels_per_series"), 1);
    assert_eq!(hits(&e, "label_name_length"), 1);
    assert_eq!(hits(&e, "label_value_length"), 1);
    // The valid series of the request was stored (Prometheus' partial-write behaviour).
    assert_eq!(common::export(&e.c, &e.s.url(""), "lab").len(), 1);
    // Influx counts its refusals too.
    let r =
        e.c.post(e.s.url("/write?db=x"))
            .body(format!("m,k={long_value} v=1\n"))
            .send()
            .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("(limit label_value_length)"));
    assert_eq!(hits(&e, "label_value_length"), 2);
}

#[test]
fn command_line_flags_win_over_the_file() {
    // The file says 6 labels per series; the flag says 10.
    let e = start_with(&["--max-labels-per-series", "10"]);
    let many: Vec<(String, String)> = (0..8).map(|i| (format!("l{i}"), "v".into())).collect();
    let mut pairs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    pairs.push(("__name__", "flagged"));
    let (status, msg) = rw(&e, &[one(ls(&pairs), now(), 1.0)]);
    assert_eq!(status, 204, "{msg}");
    assert_eq!(hits(&e, "labels_per_series"), 0);
}

#[test]
fn series_caps_per_tenant_per_metric_and_global() {
    let e = start();
    let t = now();
    // Tenant "a" may have 3 series; the 4th new one is refused, the first three keep taking
    // samples, and tenant "b" is unaffected.
    let tenant =
        |team: &str, i: usize| ls(&[("__name__", "ten"), ("team", team), ("i", &i.to_string())]);
    let (status, msg) = rw(
        &e,
        &(0..3)
            .map(|i| one(tenant("a", i), t, 1.0))
            .collect::<Vec<_>>(),
    );
    assert_eq!(status, 204, "{msg}");
    let (status, msg) = rw(&e, &[one(tenant("a", 3), t, 1.0)]);
    assert_eq!(status, 400, "{msg}");
    assert!(
        msg.contains("team=\"a\"") && msg.contains("limit series_per_tenant") && msg.contains("3"),
        "{msg}"
    );
    let (status, msg) = rw(
        &e,
        &(0..3)
            .map(|i| one(tenant("a", i), t + 1000, 2.0))
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        status, 204,
        "existing tenant series keep being written: {msg}"
    );
    let (status, msg) = rw(&e, &[one(tenant("b", 0), t, 1.0)]);
    assert_eq!(status, 204, "{msg}");
    assert_eq!(hits(&e, "series_per_tenant"), 1);

    // Per metric: 8 series of one metric.
    for chunk in 0..2 {
        let batch: Vec<_> = (0..4)
            .map(|i| {
                one(
                    ls(&[("__name__", "pm"), ("i", &(chunk * 4 + i).to_string())]),
                    t,
                    1.0,
                )
            })
            .collect();
        let (status, msg) = rw(&e, &batch);
        assert_eq!(status, 204, "{msg}");
    }
    let (status, msg) = rw(&e, &[one(ls(&[("__name__", "pm"), ("i", "8")]), t, 1.0)]);
    assert_eq!(status, 400, "{msg}");
    assert!(
        msg.contains("limit series_per_metric") && msg.contains("\"pm\""),
        "{msg}"
    );
    assert_eq!(hits(&e, "series_per_metric"), 1);

    // Global: new metrics until the head holds 40 series.
    let mut refused = None;
    for i in 0..60 {
        let (status, msg) = rw(&e, &[one(ls(&[("__name__", &format!("g{i}"))]), t, 1.0)]);
        if status == 400 {
            refused = Some(msg);
            break;
        }
        assert_eq!(status, 204, "{msg}");
    }
    let msg = refused.expect("the global series cap refused a series");
    assert!(msg.contains("limit series)") && msg.contains("40"), "{msg}");
    assert!(hits(&e, "series") >= 1);
}

#[test]
fn query_samples_limit_in_prometheus_error_shape() {
    let e = start();
    let t = now() - 300_000;
    for part in 0..3 {
        let samples: Vec<Sample> = (0..50)
            .map(|i| Sample::new(t + (part * 50 + i) * 1000, 1.0))
            .collect();
        let (status, msg) = rw(&e, &[(ls(&[("__name__", "qs")]), samples)]);
        assert_eq!(status, 204, "{msg}");
    }
    let r =
        e.c.get(e.s.url("/api/v1/query"))
            .query(&[
                ("query", "count_over_time(qs[10m])"),
                ("time", &format!("{}", (t + 160_000) / 1000)),
            ])
            .send()
            .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "execution");
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains("too many samples") && err.contains("limit query_samples: 100"),
        "{err}"
    );
    assert_eq!(hits(&e, "query_samples"), 1);
}

#[test]
fn push_groups_and_silences() {
    let e = start();
    for job in ["a", "b"] {
        let r =
            e.c.put(e.s.url(&format!("/metrics/job/{job}")))
                .body("m 1\n")
                .send()
                .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{job}");
    }
    let r =
        e.c.put(e.s.url("/metrics/job/c"))
            .body("m 1\n")
            .send()
            .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let msg = r.text().unwrap();
    assert!(
        msg.contains("limit push_groups") && msg.contains("the limit is 2"),
        "{msg}"
    );
    let r =
        e.c.put(e.s.url("/metrics/job/a"))
            .body("m 2\n")
            .send()
            .unwrap();
    assert_eq!(r.status().as_u16(), 200, "existing groups can be replaced");
    assert_eq!(hits(&e, "push_groups"), 1);

    let silence = |v: &str| {
        serde_json::json!({
            "matchers": [{"name": "alertname", "value": v, "isRegex": false, "isEqual": true}],
            "startsAt": "2020-01-01T00:00:00Z",
            "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "test",
            "comment": "limits",
        })
    };
    for v in ["x", "y"] {
        let r =
            e.c.post(e.s.url("/api/v2/silences"))
                .json(&silence(v))
                .send()
                .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let r =
        e.c.post(e.s.url("/api/v2/silences"))
            .json(&silence("z"))
            .send()
            .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body, "exceeded maximum number of silences: 2 (limit: 2)");
    assert_eq!(hits(&e, "silences"), 1);
}

#[test]
fn rule_count_on_reload_keeps_old_rules() {
    let e = start();
    let rules = |c: &reqwest::blocking::Client| -> usize {
        let v: serde_json::Value = c
            .get(e.s.url("/api/v1/rules"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["rules"].as_array().unwrap().len())
            .sum()
    };
    assert_eq!(rules(&e.c), 2);
    let four = format!(
        "{TWO_RULES}  - record: c:r\n    expr: vector(3)\n  - record: d:r\n    expr: vector(4)\n"
    );
    std::fs::write(e.dir.join("rules.yml"), four).unwrap();
    let r = e.c.post(e.s.url("/-/reload")).send().unwrap();
    assert!(!r.status().is_success());
    let msg = r.text().unwrap();
    assert!(
        msg.contains("rules.yml") && msg.contains("limit rule_count") && msg.contains("limit of 3"),
        "{msg}"
    );
    assert_eq!(rules(&e.c), 2, "the old rules keep running");
    assert_eq!(hits(&e, "rule_count"), 1);
    // Raising the limit in the file and reloading loads them (the limit is reloadable).
    let cfg = CONFIG
        .replace("max_rules: 3", "max_rules: 4")
        .replace("max_series_per_request: 5", "max_series_per_request: 10");
    std::fs::write(e.dir.join("sextant.yml"), cfg).unwrap();
    let r = e.c.post(e.s.url("/-/reload")).send().unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    assert_eq!(rules(&e.c), 4);
    // The per-request series limit changed with the same reload.
    let six: Vec<_> = (0..6)
        .map(|i| one(ls(&[("__name__", "rl"), ("i", &i.to_string())]), now(), 1.0))
        .collect();
    let (status, msg) = rw(&e, &six);
    assert_eq!(status, 204, "{msg}");
}

#[test]
fn bad_limits_config_names_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sextant.yml");
    std::fs::write(
        &cfg,
        "global:\n  scrape_interval: 15s\nlimits:\n  max_series_per_tenant: 5\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        all.contains("sextant.yml:4:") && all.contains("limits.max_series_per_tenant"),
        "{all}"
    );
    std::fs::write(&cfg, "limits:\n  max_sillences: 5\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(all.contains("max_sillences"), "{all}");
}
