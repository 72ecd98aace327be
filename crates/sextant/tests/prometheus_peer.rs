//! A real Debian `prometheus` scrapes itself and remote-writes to Sextant; what Sextant stores
//! must equal what Prometheus stored, sample for sample, and its metadata must arrive.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn prometheus_remote_write_lands_sample_for_sample() {
    if !peer("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(&dir.path().join("sextant"), &[]);
    server.wait_ready(Duration::from_secs(60));

    let pport = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:{pport}']
remote_write:
  - url: http://127.0.0.1:{}/api/v1/write
    queue_config:
      batch_send_deadline: 500ms
      max_samples_per_send: 1000
    metadata_config:
      send_interval: 1s
"#,
            server.port
        ),
    )
    .expect("write prometheus config");
    let _prom = start_prometheus(&cfg, &dir.path().join("prom-data"), pport, &[]);
    let c = client();
    let prom = format!("http://127.0.0.1:{pport}");
    let ours = server.url("");

    // Wait until Sextant has received several scrapes worth of data.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let up = export(&c, &ours, r#"up{job="prometheus"}"#);
        if up.first().is_some_and(|(_, s)| s.len() >= 8) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no remote-written data from prometheus arrived in Sextant"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Compare a window that both have: ends at the newest `up` sample Sextant holds.
    let up = export(&c, &ours, r#"up{job="prometheus"}"#);
    let t_end = up[0].1.last().map(|s| s.0).expect("samples");
    let selector = r#"{job="prometheus",__name__=~"up|scrape_samples_scraped|prometheus_tsdb_head_samples_appended_total|process_cpu_seconds_total|go_memstats_alloc_bytes"}"#;
    let r: serde_json::Value = c
        .get(format!("{prom}/api/v1/query"))
        .query(&[
            ("query", format!("{selector}[6s]")),
            ("time", format!("{:.3}", t_end as f64 / 1000.0)),
        ])
        .send()
        .expect("query prometheus")
        .json()
        .expect("prometheus JSON");
    assert_eq!(r["status"], "success", "prometheus query failed: {r}");
    let theirs = r["data"]["result"].as_array().cloned().unwrap_or_default();
    assert!(theirs.len() >= 4, "prometheus returned too few series: {r}");
    let mine = export(&c, &ours, selector);
    let mut compared = 0;
    for s in &theirs {
        let metric = &s["metric"];
        let (_, my_samples) = mine
            .iter()
            .find(|(m, _)| m == metric)
            .unwrap_or_else(|| panic!("series {metric} is in prometheus but not in Sextant"));
        for pair in s["values"].as_array().cloned().unwrap_or_default() {
            let t = (pair[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            let v: f64 = pair[1]
                .as_str()
                .unwrap_or("")
                .parse()
                .expect("prometheus value");
            let got = my_samples
                .iter()
                .find(|(mt, _)| *mt == t)
                .unwrap_or_else(|| panic!("{metric} @ {t} missing in Sextant"));
            assert_eq!(
                got.1.to_bits(),
                v.to_bits(),
                "{metric} @ {t}: prometheus has {v}, Sextant {}",
                got.1
            );
            compared += 1;
        }
    }
    assert!(compared >= 20, "compared only {compared} samples");

    // Metadata is forwarded by Prometheus' remote-write metadata sender.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md: serde_json::Value = c
            .get(format!("{ours}/api/v1/metadata"))
            .query(&[("metric", "prometheus_tsdb_head_samples_appended_total")])
            .send()
            .expect("metadata")
            .json()
            .expect("metadata JSON");
        if let Some(entry) = md["data"]["prometheus_tsdb_head_samples_appended_total"].get(0) {
            assert_eq!(entry["type"], "counter");
            assert!(
                entry["help"].as_str().unwrap_or("").contains("samples"),
                "help text: {entry}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "metadata never arrived: {md}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
