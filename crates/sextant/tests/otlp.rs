//! The real OpenTelemetry Python SDK and OTLP/HTTP exporter push counters, up-down counters,
//! observable gauges, explicit and exponential histograms, with cumulative and (gzipped) delta
//! temporality, to a running `sextant serve`; PromQL must see the names, labels and values
//! Prometheus' OTLP receiver would produce. OTLP/JSON encoded by the SDK's own encoder is
//! posted plain and gzipped.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Are `python3` and the OpenTelemetry SDK + OTLP/HTTP exporter installed? Skips with a
/// message when not, or fails when `SEXTANT_REQUIRE_PEERS=1`.
fn python_otel() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.sdk.metrics, opentelemetry.exporter.otlp.proto.http.metric_exporter",
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
        eprintln!("SKIPPED: python3 with opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http is not installed (pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http); the OTLP peer test did not run");
    }
    ok
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Instant query; returns (labels, value) per series.
fn query(c: &reqwest::blocking::Client, base: &str, q: &str) -> Vec<(serde_json::Value, f64)> {
    let r: serde_json::Value = c
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .expect("query")
        .json()
        .expect("query JSON");
    assert_eq!(r["status"], "success", "{q}: {r}");
    r["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let v = s["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{q}: no value in {s}"));
            (s["metric"].clone(), v)
        })
        .collect()
}

/// The value of the one series `q` selects.
fn one(c: &reqwest::blocking::Client, base: &str, q: &str) -> f64 {
    let r = query(c, base, q);
    assert_eq!(r.len(), 1, "{q} should select exactly one series: {r:?}");
    r[0].1
}

#[test]
fn python_sdk_exports_land_with_prometheus_names_and_values() {
    if !python_otel() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(&dir.path().join("sextant"), &[]);
    server.wait_ready(Duration::from_secs(60));
    let base = server.url("");
    let c = client();

    let json_path = dir.path().join("sdk.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp/export.py");
    let mut py = Child(
        Command::new("python3")
            .arg(script)
            .arg(server.url("/v1/metrics"))
            .arg(&json_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3"),
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = py.0.try_wait().expect("wait python") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "export.py did not finish in 180s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut e) = py.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "export.py failed: {err}");
    // The SDK logs partial-success answers and export failures on stderr.
    assert!(
        !err.contains("partial") && !err.contains("Failed"),
        "exporter reported problems: {err}"
    );

    for (job, inst) in [("e2e/otlp-cum", "inst-1"), ("otlp-delta", "inst-2")] {
        let sel = format!(r#"job="{job}",instance="{inst}",route="/a""#);
        // Counter: 3 + 4, with `_total`; `{request}` adds no unit suffix.
        assert_eq!(
            one(&c, &base, &format!("e2e_requests_total{{{sel}}}")),
            7.0,
            "{job}"
        );
        // Up-down counter: +5 - 2, a gauge without `_total`.
        assert_eq!(
            one(&c, &base, &format!("e2e_queue_depth{{{sel}}}")),
            3.0,
            "{job}"
        );
        // Observable gauges: `Cel` → `_celsius`, unit `1` → `_ratio`.
        let g = format!(r#"job="{job}",instance="{inst}",sensor="s1""#);
        assert_eq!(
            one(&c, &base, &format!("e2e_temperature_celsius{{{g}}}")),
            21.5
        );
        assert_eq!(
            one(&c, &base, &format!("e2e_cpu_utilization_ratio{{{g}}}")),
            0.5
        );
        // Explicit-bucket histogram, unit `s`: 0.25, 0.5 | 0.5, 4, 64 with bounds 0.3, 1, 10.
        for (le, want) in [("0.3", 1.0), ("1", 3.0), ("10", 4.0), ("+Inf", 5.0)] {
            assert_eq!(
                one(
                    &c,
                    &base,
                    &format!(r#"e2e_latency_seconds_bucket{{{sel},le="{le}"}}"#)
                ),
                want,
                "{job} le={le}"
            );
        }
        assert_eq!(
            one(&c, &base, &format!("e2e_latency_seconds_count{{{sel}}}")),
            5.0
        );
        assert_eq!(
            one(&c, &base, &format!("e2e_latency_seconds_sum{{{sel}}}")),
            69.25
        );
        // Exponential histogram → native histogram: 1, 2 | 4, 1024, 0.
        assert_eq!(
            one(
                &c,
                &base,
                &format!("histogram_count(e2e_size_bytes{{{sel}}})")
            ),
            5.0
        );
        assert_eq!(
            one(
                &c,
                &base,
                &format!("histogram_sum(e2e_size_bytes{{{sel}}})")
            ),
            1031.0
        );
        // Three observations of 1.5 stay at the SDK's scale 20, merged down to schema 8:
        // the median lies in the schema-8 bucket (2^(149/256), 2^(150/256)] that holds 1.5.
        assert_eq!(
            one(
                &c,
                &base,
                &format!("histogram_count(e2e_fine_seconds{{{sel}}})")
            ),
            3.0
        );
        let q = one(
            &c,
            &base,
            &format!("histogram_quantile(0.5, e2e_fine_seconds{{{sel}}})"),
        );
        let (lo, hi) = (2f64.powf(149.0 / 256.0), 2f64.powf(150.0 / 256.0));
        assert!(lo < q && q <= hi, "{job}: median {q} outside ({lo}, {hi}]");
    }

    // Resource attributes other than service.* land on target_info only.
    let ti = query(&c, &base, r#"target_info{job="e2e/otlp-cum"}"#);
    assert_eq!(ti.len(), 1, "{ti:?}");
    let m = &ti[0].0;
    assert_eq!(m["instance"], "inst-1");
    assert_eq!(m["deployment_environment"], "test");
    assert_eq!(m["telemetry_sdk_language"], "python");
    assert!(m.get("service_name").is_none(), "{m}");
    assert_eq!(ti[0].1, 1.0);
    assert!(
        query(
            &c,
            &base,
            r#"e2e_requests_total{deployment_environment!=""}"#
        )
        .is_empty(),
        "resource attributes must not be copied onto every series"
    );

    // Metadata from the OTel description and unit.
    let md: serde_json::Value = c
        .get(format!("{base}/api/v1/metadata"))
        .query(&[("metric", "e2e_requests_total")])
        .send()
        .expect("metadata")
        .json()
        .expect("metadata JSON");
    assert_eq!(
        md["data"]["e2e_requests_total"][0]["type"], "counter",
        "{md}"
    );
    assert_eq!(
        md["data"]["e2e_requests_total"][0]["help"], "Requests served",
        "{md}"
    );

    // OTLP/JSON as the SDK's encoder writes it, plain and gzipped (as another service).
    let json = std::fs::read_to_string(&json_path).expect("sdk.json");
    let r = c
        .post(server.url("/v1/metrics"))
        .header("Content-Type", "application/json")
        .body(json.clone())
        .send()
        .expect("post json");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(r.text().expect("body"), "{}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.replace("otlp-json", "otlp-json-gz").as_bytes())
        .expect("gzip");
    let r = c
        .post(server.url("/v1/metrics"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(gz.finish().expect("gzip"))
        .send()
        .expect("post gzip json");
    assert_eq!(r.status(), 200, "{:?}", r.text());
    for job in ["otlp-json", "otlp-json-gz"] {
        assert_eq!(
            one(
                &c,
                &base,
                &format!(r#"e2e_json_events_total{{job="{job}",kind="x"}}"#)
            ),
            11.0
        );
    }

    // Undecodable JSON: 400 with a google.rpc.Status-shaped body.
    let r = c
        .post(server.url("/v1/metrics"))
        .header("Content-Type", "application/json")
        .body(r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[{"asInt":"seven"}]}}]}]}]}"#)
        .send()
        .expect("post bad json");
    assert_eq!(r.status(), 400);
    let st: serde_json::Value = r.json().expect("status JSON");
    assert_eq!(st["code"], 3);
    assert!(
        st["message"].as_str().unwrap_or("").contains("seven"),
        "{st}"
    );

    // Self-metrics count the receiver's work.
    let m = c
        .get(server.url("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("metrics text");
    assert!(m.contains("sextant_otlp_requests_total "), "{m}");
    assert!(
        m.contains("sextant_otlp_rejected_data_points_total 0"),
        "{m}"
    );
}

/// One OTLP/JSON request with a delta sum, a delta histogram and a delta exponential histogram
/// point covering (start_ns, time_ns].
fn delta_request(start_ns: u128, time_ns: u128, n: u64) -> String {
    // Per point n: sum n+2; histogram buckets (≤0.5, ≤1, +Inf) = [n%2, 1, 0]; exponential
    // positive buckets at offset 0 = [1, n%2].
    let hist = [n % 2, 1, 0];
    let hcount: u64 = hist.iter().sum();
    let exp = [1, n % 2];
    let ecount: u64 = exp.iter().sum();
    format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"deltas"}}}}]}},
  "scopeMetrics":[{{"metrics":[
    {{"name":"reqs","sum":{{"aggregationTemporality":1,"isMonotonic":true,"dataPoints":[
      {{"startTimeUnixNano":"{start_ns}","timeUnixNano":"{time_ns}","asDouble":{sum}}}]}}}},
    {{"name":"lat","unit":"s","histogram":{{"aggregationTemporality":1,"dataPoints":[
      {{"startTimeUnixNano":"{start_ns}","timeUnixNano":"{time_ns}","count":"{hcount}","sum":{hsum},
        "bucketCounts":["{h0}","{h1}","{h2}"],"explicitBounds":[0.5,1]}}]}}}},
    {{"name":"sz","exponentialHistogram":{{"aggregationTemporality":1,"dataPoints":[
      {{"startTimeUnixNano":"{start_ns}","timeUnixNano":"{time_ns}","count":"{ecount}","sum":{esum},
        "scale":0,"zeroCount":"0","positive":{{"offset":0,"bucketCounts":["{e0}","{e1}"]}}}}]}}}}
  ]}}]}}]}}"#,
        sum = n + 2,
        hsum = 0.25 * n as f64,
        h0 = hist[0],
        h1 = hist[1],
        h2 = hist[2],
        esum = n as f64,
        e0 = exp[0],
        e1 = exp[1],
    )
}

/// Delta → cumulative continues across a restart (even a `kill -9`): the first delta point of
/// a stream after the restart adds to the last stored total instead of starting from 0, and a
/// retried point that was stored before the restart is refused, not counted twice.
#[test]
fn delta_totals_continue_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("sextant");
    let mut server = Server::start(&data, &[]);
    server.wait_ready(Duration::from_secs(60));
    let c = client();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let t = |s: u128| now_ns - 90_000_000_000 + s * 1_000_000_000;
    let post = |server: &Server, body: String| -> serde_json::Value {
        let r = c
            .post(server.url("/v1/metrics"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .expect("post");
        assert_eq!(r.status(), 200);
        let text = r.text().expect("body");
        if text.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_str(&text).expect("response JSON")
        }
    };
    // Points 1 (0s..30s) and 2 (30s..60s).
    assert_eq!(
        post(&server, delta_request(t(0), t(30), 1)),
        serde_json::json!({})
    );
    assert_eq!(
        post(&server, delta_request(t(30), t(60), 2)),
        serde_json::json!({})
    );
    let base = server.url("");
    assert_eq!(one(&c, &base, "reqs_total"), 3.0 + 4.0);
    server.kill9();

    let mut server = Server::start(&data, &[]);
    server.wait_ready(Duration::from_secs(60));
    let base = server.url("");
    // A retry of point 2: already stored, refused (all three points), totals unchanged.
    let r = post(&server, delta_request(t(30), t(60), 2));
    assert_eq!(
        r["partialSuccess"]["rejectedDataPoints"]
            .to_string()
            .trim_matches('"'),
        "3",
        "{r}"
    );
    assert!(
        r["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("already counted"),
        "{r}"
    );
    assert_eq!(one(&c, &base, "reqs_total"), 7.0);
    // Point 3 (60s..90s) continues from the stored totals.
    assert_eq!(
        post(&server, delta_request(t(60), t(90), 3)),
        serde_json::json!({})
    );
    assert_eq!(one(&c, &base, "reqs_total"), 3.0 + 4.0 + 5.0);
    // Histogram buckets per point: [1,1,0], [0,1,0], [1,1,0] → cumulative le=0.5: 2, le=1: 5.
    assert_eq!(one(&c, &base, "lat_seconds_bucket{le=\"0.5\"}"), 2.0);
    assert_eq!(one(&c, &base, "lat_seconds_bucket{le=\"1\"}"), 5.0);
    assert_eq!(one(&c, &base, "lat_seconds_bucket{le=\"+Inf\"}"), 5.0);
    assert_eq!(one(&c, &base, "lat_seconds_count"), 5.0);
    assert_eq!(one(&c, &base, "lat_seconds_sum"), 0.25 + 0.5 + 0.75);
    // Exponential: counts 2 + 1 + 2, sums 1 + 2 + 3.
    assert_eq!(one(&c, &base, "histogram_count(sz)"), 5.0);
    assert_eq!(one(&c, &base, "histogram_sum(sz)"), 6.0);
    // No counter reset anywhere: the increase over the whole run is the sum of the deltas.
    assert_eq!(one(&c, &base, "resets(reqs_total[10m])"), 0.0);
    assert_eq!(one(&c, &base, "resets(lat_seconds_count[10m])"), 0.0);
}
