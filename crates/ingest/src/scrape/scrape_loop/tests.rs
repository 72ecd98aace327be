use std::time::Duration;

use super::*;
use crate::scrape::discovery::TargetGroup;
use crate::scrape::target::{populate, Populated};

fn cfg(yaml: &str) -> ScrapeConfig {
    let mut c: ScrapeConfig = serde_saphyr::from_str(yaml).expect("config");
    c.resolve(Duration::from_secs(15), Duration::from_secs(10))
        .expect("resolve");
    c
}

fn target(c: &ScrapeConfig) -> Target {
    match populate(c, &TargetGroup::default(), "127.0.0.1:9") {
        Populated::Active(t) => *t,
        other => panic!("{other:?}"),
    }
}

fn values(batch: &WriteBatch, name: &str) -> Vec<(Labels, Vec<f64>)> {
    batch
        .series
        .iter()
        .filter(|s| s.labels.metric_name() == Some(name))
        .map(|s| (s.labels.clone(), s.samples.iter().map(|x| x.v).collect()))
        .collect()
}

#[test]
fn samples_get_target_labels_and_report_series() {
    let c = cfg("job_name: app\n");
    let t = target(&c);
    let body = b"# TYPE a counter\na_total 3\nb{x=\"1\"} 2 1700000000000\n";
    let mut st = LoopState::default();
    let p = process_body(body, "text/plain", 1_000, &t, &c).unwrap();
    let (batch, err) = assemble(Ok(p), 1_000, 0.25, &t, &mut st);
    assert!(err.is_none());
    let a = values(&batch, "a_total");
    assert_eq!(a[0].0.get("job"), Some("app"));
    assert_eq!(a[0].0.get("instance"), Some("127.0.0.1:9"));
    assert_eq!(a[0].1, vec![3.0]);
    // Explicit timestamps are honored by default.
    let b = batch
        .series
        .iter()
        .find(|s| s.labels.metric_name() == Some("b"))
        .unwrap();
    assert_eq!(b.samples[0].t, 1_700_000_000_000);
    assert_eq!(values(&batch, "up")[0].1, vec![1.0]);
    assert_eq!(values(&batch, "scrape_duration_seconds")[0].1, vec![0.25]);
    assert_eq!(values(&batch, "scrape_samples_scraped")[0].1, vec![2.0]);
    assert_eq!(
        values(&batch, "scrape_samples_post_metric_relabeling")[0].1,
        vec![2.0]
    );
    // Only the series without explicit timestamp is tracked (and counted as added).
    assert_eq!(values(&batch, "scrape_series_added")[0].1, vec![1.0]);
}

#[test]
fn vanished_series_and_failures_get_stale_markers() {
    let c = cfg("job_name: app\n");
    let t = target(&c);
    let mut st = LoopState::default();
    let p = process_body(b"a 1\nb 2\n", "", 1_000, &t, &c).unwrap();
    let _ = assemble(Ok(p), 1_000, 0.1, &t, &mut st);
    let p = process_body(b"a 1\n", "", 2_000, &t, &c).unwrap();
    let (batch, _) = assemble(Ok(p), 2_000, 0.1, &t, &mut st);
    let b = values(&batch, "b");
    assert_eq!(b.len(), 1);
    assert!(sextant_model::is_stale_nan(b[0].1[0]));
    assert_eq!(values(&batch, "scrape_series_added")[0].1, vec![0.0]);
    // A failed scrape: up 0 and every remaining series stale.
    let (batch, err) = assemble(Err(("boom".into(), 0)), 3_000, 0.1, &t, &mut st);
    assert_eq!(err.as_deref(), Some("boom"));
    assert_eq!(values(&batch, "up")[0].1, vec![0.0]);
    assert!(sextant_model::is_stale_nan(values(&batch, "a")[0].1[0]));
    assert!(st.prev.is_empty());
    // End of run: report series stale too.
    let end = end_of_run_batch(&t, &mut st, 4_000);
    assert!(sextant_model::is_stale_nan(values(&end, "up")[0].1[0]));
}

#[test]
fn limits_and_garbage_fail_the_scrape() {
    let c = cfg("job_name: app\nsample_limit: 2\n");
    let t = target(&c);
    let err = process_body(b"a 1\nb 2\nc 3\n", "", 1, &t, &c).unwrap_err();
    assert_eq!(err.0, "sample limit exceeded (limit 2)");
    // Dropped by metric relabeling before the limit counts.
    let c = cfg(
        "job_name: app\nsample_limit: 2\nmetric_relabel_configs:\n  - source_labels: [__name__]\n    regex: c\n    action: drop\n",
    );
    let p = process_body(b"a 1\nb 2\nc 3\n", "", 1, &t, &c).unwrap();
    assert_eq!((p.scraped, p.samples.len()), (3, 2));
    let c = cfg("job_name: app\nlabel_limit: 3\n");
    let err = process_body(b"a{x=\"1\",y=\"2\"} 1\n", "", 1, &t, &c).unwrap_err();
    assert!(
        err.0
            .starts_with("label_limit exceeded (metric: a, number of labels: 5, limit: 3)"),
        "{}",
        err.0
    );
    let c = cfg("job_name: app\nlabel_value_length_limit: 3\n");
    let err = process_body(b"a{x=\"long\"} 1\n", "", 1, &t, &c).unwrap_err();
    assert!(
        err.0.starts_with("label_value_length_limit exceeded"),
        "{}",
        err.0
    );
    assert!(process_body(b"\xff\xfe", "", 1, &t, &c).is_err());
    assert!(process_body(b"<html>not metrics</html>", "", 1, &t, &c).is_err());
}

#[test]
fn honor_timestamps_false_uses_scrape_time() {
    let c = cfg("job_name: app\nhonor_timestamps: false\n");
    let t = target(&c);
    let p = process_body(b"b 2 1700000000000\n", "", 5_000, &t, &c).unwrap();
    assert_eq!(p.samples[0].1.t, 5_000);
    assert_eq!(p.seen.len(), 1);
}

#[test]
fn jitter_is_deterministic_and_within_interval() {
    for now in [0i64, 1, 14_999, 15_000, 1_700_000_000_123] {
        let n = first_scrape_ms(now, 15_000, 12_345);
        assert!(n >= now && n < now + 15_000);
        assert_eq!(n.rem_euclid(15_000), 12_345);
    }
}

#[test]
fn openmetrics_created_series_are_not_samples() {
    let body =
        "# TYPE a counter\na_total 7.0\na_created 1.7e9\n# TYPE g gauge\ng_created 1\n# EOF\n";
    let b = parse_exposition(
        body,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        1,
    )
    .unwrap();
    let names: Vec<_> = b
        .samples
        .iter()
        .map(|(l, _)| l.metric_name().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["a_total", "g_created"]);
    // The text format keeps whatever it is given.
    let b = parse_exposition(body, "text/plain; version=0.0.4", 1).unwrap();
    assert_eq!(b.samples.len(), 3);
}

/// CPU cost of the scrape hot path without HTTP and storage: parse, target labels, limits,
/// staleness tracking and batching. Run with
/// `cargo test --release -p sextant-ingest scrape_cpu_per_sample -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; run explicitly in release mode"]
fn scrape_cpu_per_sample() {
    let c = cfg("job_name: bench\n");
    let t = target(&c);
    // 10k series shaped like an agent exporter: counters and a histogram with 5 labels.
    let mut body = String::new();
    body.push_str(
        "# HELP agent_tool_calls_total Tool calls.\n# TYPE agent_tool_calls_total counter\n",
    );
    for i in 0..10_000 {
        body.push_str(&format!(
            "agent_tool_calls_total{{model=\"m{}\",tool=\"t{}\",status=\"ok\",le=\"{}\"}} {}\n",
            i % 5,
            i % 10,
            i,
            i * 3
        ));
    }
    let mut st = LoopState::default();
    let rounds = 20;
    let t0 = std::time::Instant::now();
    for r in 0..rounds {
        let ts = 1_000 + r * 15_000;
        let p = process_body(body.as_bytes(), "text/plain; version=0.0.4", ts, &t, &c).unwrap();
        let (batch, err) = assemble(Ok(p), ts, 0.01, &t, &mut st);
        assert!(err.is_none());
        assert_eq!(batch.series.len(), 10_005);
    }
    let per_sample = t0.elapsed().as_nanos() as f64 / (rounds as f64 * 10_000.0);
    println!(
        "scrape hot path: {per_sample:.0} ns/sample → {:.2} cores per 1M samples/s{}",
        per_sample * 1e6 / 1e9,
        if cfg!(debug_assertions) {
            " (debug build: not representative, use --release)"
        } else {
            ""
        }
    );
}

#[test]
fn openmetrics_exemplars_follow_their_samples() {
    let c = cfg(
        "job_name: app\nmetric_relabel_configs:\n  - source_labels: [__name__]\n    regex: dropped_total\n    action: drop\n",
    );
    let t = target(&c);
    let mut st = LoopState::default();
    let body = b"# TYPE a counter\na_total 3 # {trace_id=\"x\"} 1.5 1700000000.25\n# TYPE dropped counter\ndropped_total 1 # {trace_id=\"gone\"} 1\n# TYPE h histogram\nh_bucket{le=\"1.0\"} 1 # {trace_id=\"y\"} 0.5\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0.5\n# EOF\n";
    let p = process_body(
        body,
        "application/openmetrics-text; version=1.0.0",
        9_000,
        &t,
        &c,
    )
    .unwrap();
    // The dropped sample's exemplar goes with it.
    assert_eq!(p.exemplars.len(), 2);
    let (batch, err) = assemble(Ok(p), 9_000, 0.1, &t, &mut st);
    assert!(err.is_none());
    let ex = |name: &str, le: Option<&str>| {
        batch
            .series
            .iter()
            .find(|s| s.labels.metric_name() == Some(name) && s.labels.get("le") == le)
            .map(|s| s.exemplars.clone())
            .unwrap_or_default()
    };
    let a = ex("a_total", None);
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].value, a[0].ts), (1.5, 1_700_000_000_250));
    assert_eq!(a[0].labels.get("trace_id"), Some("x"));
    // Without its own timestamp an exemplar takes the scrape's.
    let h = ex("h_bucket", Some("1.0"));
    assert_eq!((h[0].value, h[0].ts), (0.5, 9_000));
    assert!(ex("h_bucket", Some("+Inf")).is_empty());
    assert!(ex("up", None).is_empty());
}
