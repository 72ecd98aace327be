//! Exemplars end to end: Sextant scrapes an OpenMetrics target whose samples carry exemplars
//! and receives exemplars by remote write 1.0 and 2.0; `/api/v1/query_exemplars` must return
//! them in Prometheus' shape, keep them across `kill -9`, and match what a real Prometheus
//! (`--enable-feature=exemplar-storage`) returns for the same scrape.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use prost::Message;
use serde_json::{json, Value};
use sextant_ingest::remote_write::proto::{v1, v2};

const BODY: &str = r#"# TYPE rpc counter
# HELP rpc RPCs served.
rpc_total{path="/a"} 17.0 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736",span_id="00f067aa0ba902b7"} 1.0 1700000000.123
rpc_total{path="/b"} 4
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 3 # {trace_id="t-fast"} 0.05 1700000001.5
latency_seconds_bucket{le="1.0"} 5 # {trace_id="t-slow"} 0.7
latency_seconds_bucket{le="+Inf"} 6
latency_seconds_count 6
latency_seconds_sum 3.2
# EOF
"#;

fn scrape_config(dir: &std::path::Path, target: u16) -> std::path::PathBuf {
    let cfg = dir.join("scrape.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: om\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        ),
    )
    .expect("config");
    cfg
}

/// `GET /api/v1/query_exemplars`; returns (HTTP status, body as JSON).
fn query_exemplars(base: &str, query: &str, range: Option<(&str, &str)>) -> (u16, Value) {
    let mut params = vec![("query", query)];
    if let Some((s, e)) = range {
        params.push(("start", s));
        params.push(("end", e));
    }
    let r = client()
        .get(format!("{base}/api/v1/query_exemplars"))
        .query(&params)
        .send()
        .expect("query_exemplars");
    let status = r.status().as_u16();
    (status, r.json().expect("JSON body"))
}

/// Polls until `query` returns exemplars for `series` series, then returns `data` sorted by
/// series labels.
fn wait_exemplars(base: &str, query: &str, series: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, v) = query_exemplars(base, query, None);
        let mut data = v["data"].as_array().cloned().unwrap_or_default();
        if status == 200 && data.len() >= series {
            data.sort_by_key(|s| s["seriesLabels"].to_string());
            return data;
        }
        assert!(
            Instant::now() < deadline,
            "no exemplars for {query} at {base}: {status} {v}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn post_rw(base: &str, ct: &str, raw: Vec<u8>) -> (u16, String, Option<String>) {
    let r = client()
        .post(format!("{base}/api/v1/write"))
        .header("Content-Type", ct)
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(sextant_ingest::remote_write::compress_snappy(&raw))
        .send()
        .expect("remote write");
    let status = r.status().as_u16();
    let written = r
        .headers()
        .get("X-Prometheus-Remote-Write-Exemplars-Written")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    (status, r.text().unwrap_or_default(), written)
}

fn l1(name: &str, value: &str) -> v1::Label {
    v1::Label {
        name: name.into(),
        value: value.into(),
    }
}

fn rw_v1(t: i64, exemplars: Vec<v1::Exemplar>) -> Vec<u8> {
    v1::WriteRequest {
        timeseries: vec![v1::TimeSeries {
            labels: vec![l1("__name__", "rw_requests_total"), l1("job", "rw")],
            samples: vec![v1::Sample {
                value: 10.0,
                timestamp: t,
            }],
            exemplars,
            ..Default::default()
        }],
        metadata: vec![],
    }
    .encode_to_vec()
}

fn ex1(trace: &str, value: f64, timestamp: i64) -> v1::Exemplar {
    v1::Exemplar {
        labels: vec![l1("trace_id", trace)],
        value,
        timestamp,
    }
}

#[test]
fn scraped_and_remote_written_exemplars_are_queryable_and_survive_kill9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = serve_openmetrics(BODY);
    let cfg = scrape_config(dir.path(), target);
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &["--config", cfg.to_str().expect("utf-8 path")]);
    server.wait_ready(Duration::from_secs(60));
    let base = server.url("");
    let t = now_ms();

    // Remote write 1.0: two exemplars stored, the count in the v2-style header is not sent
    // for 1.0, the sample is stored as usual.
    let (status, body, _) = post_rw(
        &base,
        "application/x-protobuf",
        rw_v1(t, vec![ex1("rw-1", 3.0, t - 1000), ex1("rw-2", 4.5, t)]),
    );
    assert_eq!(status, 204, "{body}");
    // A repeat of the newest is a duplicate (dropped silently); an older one is out of order:
    // refused but, as in Prometheus, not an error for the sender.
    let (status, body, _) = post_rw(
        &base,
        "application/x-protobuf",
        rw_v1(
            t + 1000,
            vec![ex1("rw-2", 4.5, t), ex1("rw-0", 1.0, t - 5000)],
        ),
    );
    assert_eq!(status, 204, "{body}");
    // An exemplar whose labels exceed 128 characters is a clear 400 naming it; the sample
    // of the same request is still stored.
    let long = "x".repeat(130);
    let (status, body, _) = post_rw(
        &base,
        "application/x-protobuf",
        rw_v1(t + 2000, vec![ex1(&long, 1.0, t + 2000)]),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("exemplar") && body.contains("at most 128"),
        "{body}"
    );

    // Remote write 2.0, with the exemplars-written header.
    let symbols: Vec<String> = [
        "",
        "__name__",
        "rw2_latency_seconds",
        "job",
        "rw",
        "trace_id",
        "v2-trace",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let req = v2::Request {
        symbols,
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![v2::Sample {
                value: 0.25,
                timestamp: t,
                ..Default::default()
            }],
            exemplars: vec![v2::Exemplar {
                labels_refs: vec![5, 6],
                value: 0.25,
                timestamp: t,
            }],
            ..Default::default()
        }],
    };
    let (status, body, written) = post_rw(
        &base,
        "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        req.encode_to_vec(),
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(written.as_deref(), Some("1"));

    // Both remote-written series through one query with two selectors.
    let (status, v) = query_exemplars(
        &base,
        "rate(rw_requests_total[5m]) + on() rw2_latency_seconds",
        None,
    );
    assert_eq!(status, 200, "{v}");
    let ts = |ms: i64| json!(ms as f64 / 1000.0);
    let mut got = v["data"].as_array().cloned().unwrap_or_default();
    got.sort_by_key(|s| s["seriesLabels"].to_string());
    assert_eq!(
        Value::Array(got),
        json!([
            {"seriesLabels": {"__name__": "rw2_latency_seconds", "job": "rw"},
             "exemplars": [{"labels": {"trace_id": "v2-trace"}, "value": "0.25", "timestamp": ts(t)}]},
            {"seriesLabels": {"__name__": "rw_requests_total", "job": "rw"},
             "exemplars": [
                {"labels": {"trace_id": "rw-1"}, "value": "3", "timestamp": ts(t - 1000)},
                {"labels": {"trace_id": "rw-2"}, "value": "4.5", "timestamp": ts(t)}]}
        ])
    );
    // The time range filters exemplars.
    let (s, e) = ((t - 500) as f64 / 1000.0, (t + 500) as f64 / 1000.0);
    let (status, v) = query_exemplars(
        &base,
        "rw_requests_total",
        Some((&s.to_string(), &e.to_string())),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"][0]["exemplars"].as_array().map(Vec::len), Some(1));

    // Scraped exemplars: explicit timestamps kept, the one without takes the scrape time.
    let scraped = wait_exemplars(&base, r#"{job="om"}"#, 3);
    let inst = format!("127.0.0.1:{target}");
    assert_eq!(scraped.len(), 3, "{scraped:#?}");
    assert_eq!(
        scraped[0],
        json!({"seriesLabels": {"__name__": "latency_seconds_bucket", "instance": inst, "job": "om", "le": "0.1"},
               "exemplars": [{"labels": {"trace_id": "t-fast"}, "value": "0.05", "timestamp": 1700000001.5}]})
    );
    assert_eq!(scraped[1]["seriesLabels"]["le"], "1.0");
    let slow = &scraped[1]["exemplars"][0];
    assert_eq!(slow["labels"], json!({"trace_id": "t-slow"}));
    assert_eq!(slow["value"], "0.7");
    let slow_ts = slow["timestamp"].as_f64().unwrap_or(0.0);
    assert!(
        (slow_ts * 1000.0) as i64 >= t - 60_000 && slow_ts * 1000.0 <= (now_ms() + 1000) as f64,
        "exemplar without timestamp should carry the scrape time, got {slow_ts}"
    );
    assert_eq!(
        scraped[2],
        json!({"seriesLabels": {"__name__": "rpc_total", "instance": inst, "job": "om", "path": "/a"},
               "exemplars": [{"labels": {"span_id": "00f067aa0ba902b7", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
                              "value": "1", "timestamp": 1700000000.123}]})
    );
    // The same timestamped exemplar on every scrape is stored once.
    std::thread::sleep(Duration::from_millis(2500));
    let again = wait_exemplars(&base, "rpc_total", 1);
    assert_eq!(again[0]["exemplars"].as_array().map(Vec::len), Some(1));

    // Errors are bad_data, like Prometheus.
    let (status, v) = query_exemplars(&base, "rpc_total{", None);
    assert_eq!(
        (status, v["errorType"].as_str()),
        (400, Some("bad_data")),
        "{v}"
    );
    let (status, v) = query_exemplars(&base, "rpc_total", Some(("200", "100")));
    assert_eq!(
        (status, v["errorType"].as_str()),
        (400, Some("bad_data")),
        "{v}"
    );
    assert_eq!(
        v["error"],
        "end timestamp must not be before start timestamp"
    );
    // No selector: data is null, as in Prometheus.
    let (status, v) = query_exemplars(&base, "1 + 1", None);
    assert_eq!((status, &v["data"]), (200, &Value::Null));

    // Self-metrics.
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    assert_eq!(metric("sextant_tsdb_exemplar_max_exemplars"), 100000.0);
    assert!(metric("sextant_tsdb_exemplar_exemplars_in_storage") >= 6.0);
    assert!(metric("sextant_tsdb_exemplar_exemplars_appended_total") >= 6.0);
    assert_eq!(
        metric("sextant_tsdb_exemplar_series_with_exemplars_in_storage"),
        5.0
    );
    assert!(metric("sextant_tsdb_exemplar_out_of_order_exemplars_total") >= 1.0);

    // kill -9: every exemplar acknowledged before is there after the restart.
    let all = r#"{__name__=~".+"}"#;
    let before = wait_exemplars(&base, all, 5);
    server.kill9();
    let mut server = Server::start(&data, &[]);
    server.wait_ready(Duration::from_secs(60));
    let after = wait_exemplars(&server.url(""), all, 5);
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b["seriesLabels"], a["seriesLabels"]);
        let have = a["exemplars"].as_array().cloned().unwrap_or_default();
        for e in b["exemplars"].as_array().cloned().unwrap_or_default() {
            assert!(
                have.contains(&e),
                "exemplar {e} of {} lost across kill -9",
                b["seriesLabels"]
            );
        }
    }
}

#[test]
fn exemplars_disabled_with_zero_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path(), &["--max-exemplars", "0"]);
    server.wait_ready(Duration::from_secs(60));
    let base = server.url("");
    let t = now_ms();
    let (status, body, _) = post_rw(
        &base,
        "application/x-protobuf",
        rw_v1(t, vec![ex1("rw-1", 3.0, t)]),
    );
    assert_eq!(status, 204, "{body}");
    let (status, v) = query_exemplars(&base, "rw_requests_total", None);
    assert_eq!((status, v["data"].clone()), (200, json!([])));
}

#[test]
fn prometheus_returns_the_same_exemplars() {
    if !peer("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let target = serve_openmetrics(BODY);
    let cfg = scrape_config(dir.path(), target);
    let mut server = Server::start(
        &dir.path().join("sextant"),
        &["--config", cfg.to_str().expect("utf-8 path")],
    );
    let pport = free_port();
    let _prom = start_prometheus(
        &cfg,
        &dir.path().join("prom"),
        pport,
        &["--enable-feature=exemplar-storage"],
    );
    server.wait_ready(Duration::from_secs(60));
    // Only exemplars with their own timestamps can agree; the untimestamped one carries each
    // server's own scrape time.
    for q in [
        "rpc_total",
        r#"latency_seconds_bucket{le="0.1"}"#,
        r#"sum(rate(rpc_total[5m])) / sum(rate(latency_seconds_bucket{le="0.1"}[5m]))"#,
    ] {
        let ours = wait_exemplars(&server.url(""), q, 1);
        let theirs = wait_exemplars(&format!("http://127.0.0.1:{pport}"), q, 1);
        assert_eq!(ours, theirs, "query_exemplars differ for {q}");
    }
    let (status, v) = query_exemplars(&server.url(""), "rpc_total", Some(("200", "100")));
    let (pstatus, pv) = query_exemplars(
        &format!("http://127.0.0.1:{pport}"),
        "rpc_total",
        Some(("200", "100")),
    );
    assert_eq!(
        (status, &v["errorType"], &v["error"]),
        (pstatus, &pv["errorType"], &pv["error"])
    );
}

/// Is `python3` with the OpenTelemetry SDK and OTLP/HTTP exporter installed? Skips with a
/// message when not, or fails when `SEXTANT_REQUIRE_PEERS=1`.
fn python_otel() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.sdk.metrics, opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.metric_exporter",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("python3 with opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http is required (SEXTANT_REQUIRE_PEERS=1) but not installed");
        }
        eprintln!("SKIPPED: python3 with opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http is not installed; the OTLP exemplar test did not run");
    }
    ok
}

#[test]
fn otel_sdk_exemplars_carry_trace_and_span_ids() {
    if !python_otel() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path(), &[]);
    server.wait_ready(Duration::from_secs(60));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/exemplars/otel_exemplars.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(server.url("/v1/metrics"))
        .output()
        .expect("run otel_exemplars.py");
    assert!(
        out.status.success(),
        "otel_exemplars.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Value = serde_json::from_slice(&out.stdout).expect("ids JSON");
    let want_labels = json!({"span_id": ids["span_id"], "trace_id": ids["trace_id"]});

    let calls = wait_exemplars(&server.url(""), "tool_calls_total", 1);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0]["seriesLabels"]["job"], "exemplar-test");
    let e = &calls[0]["exemplars"][0];
    assert_eq!((&e["labels"], &e["value"]), (&want_labels, &json!("3")));

    // The histogram's exemplar (7.0) is on the first bucket that holds it: le="10".
    let buckets = wait_exemplars(&server.url(""), "tool_latency_seconds_bucket", 1);
    assert_eq!(buckets.len(), 1, "{buckets:#?}");
    assert_eq!(buckets[0]["seriesLabels"]["le"], "10");
    let e = &buckets[0]["exemplars"][0];
    assert_eq!((&e["labels"], &e["value"]), (&want_labels, &json!("7")));
}
