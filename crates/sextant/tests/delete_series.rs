//! `/api/v1/admin/tsdb/delete_series` and `/clean_tombstones` against a real Prometheus 2.42:
//! the same samples are remote-written to both, the same delete calls are made on both
//! (a partial time range, whole series, a regex matcher), and then the same queries (instant and
//! range, series, label values) must give the same answers — before and after
//! `clean_tombstones`, and on Sextant also after a kill -9 restart. Malformed delete calls get
//! the same status codes and error types as Prometheus'.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use sextant_model::{Labels, Sample};

const STEP_MS: i64 = 15_000;
const POINTS: i64 = 120;

fn series_data(end_ms: i64) -> Vec<(Labels, Vec<Sample>)> {
    // Off the query steps' grid by 7.5 s, so no step is exactly 5 minutes after a sample: the
    // lookback window is closed on the left in Prometheus 2.42 and open in 3.x (and Sextant).
    let start = end_ms - (POINTS - 1) * STEP_MS - 7_500;
    let mut out = Vec::new();
    for (name, jobs) in [("del_a_total", 2), ("del_b", 3), ("del_keep", 2)] {
        for j in 0..jobs {
            let labels = Labels::from_pairs([
                ("__name__".to_string(), name.to_string()),
                ("job".to_string(), format!("j{j}")),
                ("instance".to_string(), format!("host{}", j % 2)),
            ]);
            let samples = (0..POINTS)
                .map(|i| Sample {
                    t: start + i * STEP_MS,
                    v: (i * (j + 1)) as f64,
                })
                .collect();
            out.push((labels, samples));
        }
    }
    out
}

struct Target {
    base: String,
}

impl Target {
    fn post(&self, path: &str, form: &[(&str, String)]) -> (u16, Value) {
        let r = client()
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .expect("request");
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The `data` of a successful query API answer, with result order normalised.
    fn data(&self, path: &str, form: &[(&str, String)]) -> Value {
        let r = client()
            .get(format!("{}{path}", self.base))
            .query(form)
            .send()
            .expect("request");
        let status = r.status().as_u16();
        let v: Value = serde_json::from_str(&r.text().unwrap_or_default()).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{} {path} {form:?}: {v}", self.base);
        assert_eq!(v["status"], "success", "{v}");
        let mut d = v["data"].clone();
        let list = if d.is_array() {
            d.as_array_mut()
        } else {
            d["result"].as_array_mut()
        };
        if let Some(list) = list {
            list.sort_by_key(|x| x.to_string());
        }
        d
    }
}

/// Every comparison query, as (path, form) pairs.
fn probes(end_s: f64) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let start_s = end_s - (POINTS * STEP_MS) as f64 / 1000.0;
    let mut v = Vec::new();
    for sel in [
        "del_a_total",
        "del_b",
        "del_keep",
        r#"{__name__=~"del_.*"}"#,
    ] {
        v.push((
            "/api/v1/query_range",
            vec![
                ("query", sel.to_string()),
                ("start", format!("{start_s}")),
                ("end", format!("{end_s}")),
                ("step", "15".to_string()),
            ],
        ));
        if sel.starts_with('{') {
            continue; // the *_over_time functions drop names: would be duplicate label sets
        }
        v.push((
            "/api/v1/query",
            vec![
                ("query", format!("count_over_time({sel}[1h])")),
                ("time", format!("{end_s}")),
            ],
        ));
        v.push((
            "/api/v1/query",
            vec![
                ("query", format!("sum_over_time({sel}[1h])")),
                ("time", format!("{end_s}")),
            ],
        ));
    }
    v.push((
        "/api/v1/label/job/values",
        vec![("match[]", "del_b".to_string())],
    ));
    v
}

fn assert_same(ours: &Target, theirs: &Target, end_s: f64, when: &str) {
    for (path, form) in probes(end_s) {
        let a = ours.data(path, &form);
        let b = theirs.data(path, &form);
        assert_eq!(
            a, b,
            "{when}: {path} {form:?} differs (left Sextant, right Prometheus)"
        );
    }
}

#[test]
fn delete_series_matches_prometheus() {
    if !peer("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("sextant"), &["--no-default-rules"]);
    server.wait_ready(Duration::from_secs(60));
    let pport = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
    let _prom = start_prometheus(
        &cfg,
        &dir.path().join("prom-data"),
        pport,
        &[
            "--web.enable-remote-write-receiver",
            "--web.enable-admin-api",
        ],
    );
    let c = client();
    let prom = format!("http://127.0.0.1:{pport}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !c
        .get(format!("{prom}/-/ready"))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "prometheus not ready");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Whole seconds, so range steps land on the samples in both.
    let end_ms = sextant_model::time::now_ms() / 1000 * 1000;
    let end_s = end_ms as f64 / 1000.0;
    let data = series_data(end_ms);
    for base in [server.url(""), prom.clone()] {
        let st = remote_write_v1(&c, &format!("{base}/api/v1/write"), &data).unwrap();
        assert!(
            (200..300).contains(&st),
            "{base}: remote_write answered {st}"
        );
    }
    let ours = Target {
        base: server.url(""),
    };
    let theirs = Target { base: prom };
    assert_same(&ours, &theirs, end_s, "before deleting");

    // Malformed calls: same status and error type.
    let bad: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("match[]", "del_b{".to_string())],
        vec![
            ("match[]", "del_b".to_string()),
            ("start", "yesterday".to_string()),
        ],
        vec![
            ("match[]", "del_b".to_string()),
            ("end", "not-a-time".to_string()),
        ],
    ];
    for form in &bad {
        let (sa, a) = ours.post("/api/v1/admin/tsdb/delete_series", form);
        let (sb, b) = theirs.post("/api/v1/admin/tsdb/delete_series", form);
        assert_eq!(sa, sb, "status for {form:?}: Sextant {a}, Prometheus {b}");
        assert_eq!(a["errorType"], b["errorType"], "{form:?}: {a} vs {b}");
    }

    // A partial range of one series, a whole series, and a regex over a metric.
    let mid = end_s - 600.0;
    let deletes: Vec<Vec<(&str, String)>> = vec![
        vec![
            ("match[]", r#"del_a_total{job="j0"}"#.to_string()),
            ("start", format!("{}", mid - 300.0)),
            ("end", format!("{mid}")),
        ],
        vec![("match[]", r#"del_b{job="j2"}"#.to_string())],
        vec![
            ("match[]", r#"del_b{instance=~"host0"}"#.to_string()),
            ("end", format!("{}", end_s - 1200.0)),
        ],
    ];
    for form in &deletes {
        let (sa, a) = ours.post("/api/v1/admin/tsdb/delete_series", form);
        let (sb, b) = theirs.post("/api/v1/admin/tsdb/delete_series", form);
        assert_eq!((sa, sb), (204, 204), "{form:?}: {a} / {b}");
    }
    assert_same(&ours, &theirs, end_s, "after deleting");

    // Tombstones survive a crash.
    server.kill9();
    let mut server = Server::start(&dir.path().join("sextant"), &["--no-default-rules"]);
    server.wait_ready(Duration::from_secs(60));
    let ours = Target {
        base: server.url(""),
    };
    assert_same(&ours, &theirs, end_s, "after kill -9 and restart");

    for t in [&ours, &theirs] {
        let (st, v) = t.post("/api/v1/admin/tsdb/clean_tombstones", &[]);
        assert_eq!(st, 204, "{}: {v}", t.base);
    }
    assert_same(&ours, &theirs, end_s, "after clean_tombstones");
}
