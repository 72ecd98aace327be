//! A real Debian `prometheus` scrapes an OpenMetrics exposition (served by the test with
//! `Content-Type: application/openmetrics-text`) and Sextant imports the same body; both must
//! end up with the same series and values, `_created` samples included (Prometheus keeps them
//! as samples by default).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;

const BODY: &str = r#"# TYPE jobs counter
# HELP jobs Jobs run.
jobs_total{kind="build"} 3.0 # {trace_id="abc123"} 1.0 1700000000.5
jobs_created{kind="build"} 1.7e+09
jobs_total{kind="test",note="a \"quoted\" \\ value\nwith newline"} 4
jobs_created{kind="test",note="a \"quoted\" \\ value\nwith newline"} 1700000000.25
# TYPE queue_depth_items gauge
# UNIT queue_depth_items items
queue_depth_items 7.5
# TYPE latency_seconds histogram
# UNIT latency_seconds seconds
latency_seconds_bucket{le="0.1"} 1 # {trace_id="t1"} 0.05
latency_seconds_bucket{le="1.0"} 1
latency_seconds_bucket{le="+Inf"} 2
latency_seconds_count 2
latency_seconds_sum 3.05
latency_seconds_created 1700000000.0
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds{quantile="0.99"} 1.5
rpc_seconds_count 10
rpc_seconds_sum 4
# TYPE build info
build_info{version="1.2.3"} 1
# TYPE state stateset
state{state="starting"} 0
state{state="running"} 1
# TYPE inflight gaugehistogram
inflight_bucket{le="1.0"} 2
inflight_bucket{le="+Inf"} 5
inflight_gcount 5
inflight_gsum 6
# TYPE mystery unknown
mystery -1
# EOF
"#;

fn series_key(m: &serde_json::Value) -> String {
    let labels: BTreeMap<String, String> = m
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| *k != "job" && *k != "instance")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    format!("{labels:?}")
}

#[test]
fn prometheus_and_sextant_read_openmetrics_alike() {
    if !peer("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(&dir.path().join("sextant"), &[]);
    let target = serve_openmetrics(BODY);
    let pport = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: om\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        ),
    )
    .expect("config");
    let _prom = start_prometheus(&cfg, &dir.path().join("prom"), pport, &[]);
    server.wait_ready(Duration::from_secs(60));

    // Sextant: import the same body as OpenMetrics.
    let c = client();
    let r = c
        .post(server.url("/api/v1/import/prometheus"))
        .header(
            "Content-Type",
            "application/openmetrics-text; version=1.0.0",
        )
        .body(BODY)
        .send()
        .expect("import");
    assert_eq!(r.status().as_u16(), 204, "{:?}", r.text());

    // Prometheus: wait for a successful scrape of the target.
    let query = r#"{job="om",__name__!~"up|scrape_.*"}"#;
    let deadline = Instant::now() + Duration::from_secs(90);
    let theirs: BTreeMap<String, f64> = loop {
        let r: serde_json::Value = c
            .get(format!("http://127.0.0.1:{pport}/api/v1/query"))
            .query(&[("query", query)])
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default();
        let result = r["data"]["result"].as_array().cloned().unwrap_or_default();
        if !result.is_empty() {
            break result
                .iter()
                .map(|s| {
                    let v = s["value"][1]
                        .as_str()
                        .unwrap_or("NaN")
                        .parse()
                        .unwrap_or(f64::NAN);
                    (series_key(&s["metric"]), v)
                })
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped the target: {r}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };

    let ours: BTreeMap<String, f64> = export(&c, &server.url(""), r#"{__name__=~".+"}"#)
        .into_iter()
        .filter(|(m, _)| {
            let name = m["__name__"].as_str().unwrap_or_default();
            !name.starts_with("sextant_")
                && !name.starts_with("process_")
                && !name.starts_with("go_")
        })
        .map(|(m, s)| (series_key(&m), s.last().map(|x| x.1).unwrap_or(f64::NAN)))
        .collect();
    assert_eq!(ours.len(), 23, "{ours:#?}");
    assert_eq!(ours, theirs);
}
