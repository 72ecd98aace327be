//! End-to-end test of downsampling: 58 hours of samples are written beforehand into the WAL
//! with the TSDB library, then the real binary, with a 20h retention, downsamples the old blocks to 5m
//! aggregates before retention deletes them, and long-range queries with a 1h step still
//! answer over the deleted time from the aggregates — also with a remote engine configured
//! (local storage keeps its aggregates behind the query fanout).

mod common;

use std::time::{Duration, Instant};

use common::{client, Server};
use sextant_model::Labels;
use sextant_tsdb::db::{Db, DbOptions};

const H: i64 = 3_600_000;

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn query_range(s: &Server, q: &str, start: i64, end: i64) -> Vec<(i64, f64)> {
    let r: serde_json::Value = client()
        .get(s.url("/api/v1/query_range"))
        .query(&[
            ("query", q.to_string()),
            ("start", (start / 1000).to_string()),
            ("end", (end / 1000).to_string()),
            ("step", "3600".to_string()),
        ])
        .send()
        .expect("query")
        .json()
        .expect("json");
    assert_eq!(r["status"], "success", "{q}: {r}");
    let res = r["data"]["result"].as_array().expect("result");
    assert_eq!(res.len(), 1, "{q}: {r}");
    res[0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|p| {
            (
                (p[0].as_f64().expect("t") * 1000.0) as i64,
                p[1].as_str().expect("v").parse().expect("float"),
            )
        })
        .collect()
}

#[test]
fn long_range_queries_answer_from_aggregates_after_retention() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let now = sextant_model::time::now_ms();
    let start = (now - 60 * H) / (2 * H) * (2 * H);
    let end = start + 58 * H;
    let g = Labels::from_pairs([("__name__", "ds_temp"), ("job", "e2e")]);
    let c = Labels::from_pairs([("__name__", "ds_requests_total"), ("job", "e2e")]);
    let mut gauge = Vec::new();
    {
        let db = Db::open(&data, DbOptions::default()).expect("open db");
        let (mut t, mut n) = (start, 0i64);
        while t < end {
            let gv = ((n * 37) % 101) as f64 - 50.0;
            gauge.push((t, gv));
            let mut app = db.appender();
            app.append(&g, t, gv).expect("append");
            app.append(&c, t, (n * 2) as f64).expect("append");
            app.commit().expect("commit");
            t += 60_000;
            n += 1;
        }
        // Left in the WAL: the server cuts it into blocks, downsamples and applies retention.
        db.close().expect("close");
    }
    let mut s = Server::start(
        &data,
        &["--retention", "20h", "--maintenance-interval", "1s"],
    );
    s.wait_ready(Duration::from_secs(60));
    let count = |res: &str| {
        std::fs::read_dir(data.join("downsampled").join(res))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().join("meta.json").exists())
                    .count()
            })
            .unwrap_or(0)
    };
    let oldest_raw = || {
        std::fs::read_dir(data.join("blocks"))
            .expect("blocks dir")
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("meta.json")).ok())
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .filter_map(|m| m["minTime"].as_i64())
            .min()
            .unwrap_or(i64::MAX)
    };
    wait("downsampling and retention", 120, || {
        count("5m") > 0 && oldest_raw() >= start + 30 * H
    });
    let (qs, qe) = (start + 2 * H, start + 28 * H);
    // Raw data there is gone: a function aggregates cannot answer returns nothing.
    let r: serde_json::Value = client()
        .get(s.url("/api/v1/query_range"))
        .query(&[
            ("query", "count_over_time(ds_temp[1h])".to_string()),
            ("start", (qs / 1000).to_string()),
            ("end", (qe / 1000).to_string()),
            ("step", "3600".to_string()),
        ])
        .send()
        .expect("query")
        .json()
        .expect("json");
    assert_eq!(r["data"]["result"], serde_json::json!([]), "{r}");
    // max_over_time over the 5m aggregates equals the raw maximum over [t - 1h, t).
    let got = query_range(&s, "max_over_time(ds_temp[1h])", qs, qe);
    assert_eq!(got.len(), 27);
    for (t, v) in got {
        let want = gauge
            .iter()
            .filter(|(ts, _)| *ts >= t - H && *ts < t)
            .map(|(_, v)| *v)
            .fold(f64::MIN, f64::max);
        assert_eq!(v, want, "at {t}");
    }
    // The counter grows by 2 a minute: rate from the counter aggregate stays within 5%.
    let got = query_range(&s, "rate(ds_requests_total[1h])", qs, qe);
    assert_eq!(got.len(), 27);
    for (t, v) in got {
        assert!(
            (v - 2.0 / 60.0).abs() <= 0.05 * 2.0 / 60.0,
            "rate at {t}: {v}"
        );
    }
    let max_local = query_range(&s, "max_over_time(ds_temp[1h])", qs, qe);
    let rate_local = query_range(&s, "rate(ds_requests_total[1h])", qs, qe);
    s.terminate();

    // With a remote engine configured (here one that is down), local storage still answers
    // from its aggregates behind the fanout: the same values, plus the engine's warning.
    let down = common::free_port();
    let cfg = tmp.path().join("sextant.yml");
    std::fs::write(
        &cfg,
        format!(
            "remote_engines:\n  - name: down\n    url: http://127.0.0.1:{down}\n    remote_timeout: 5s\n"
        ),
    )
    .expect("config");
    let mut s = Server::start(
        &data,
        &[
            "--retention",
            "20h",
            "--maintenance-interval",
            "1s",
            "--config",
            cfg.to_str().expect("utf-8 path"),
        ],
    );
    s.wait_ready(Duration::from_secs(60));
    assert_eq!(
        query_range(&s, "max_over_time(ds_temp[1h])", qs, qe),
        max_local
    );
    assert_eq!(
        query_range(&s, "rate(ds_requests_total[1h])", qs, qe),
        rate_local
    );
    let r: serde_json::Value = client()
        .get(s.url("/api/v1/query_range"))
        .query(&[
            ("query", "max_over_time(ds_temp[1h])".to_string()),
            ("start", (qs / 1000).to_string()),
            ("end", (qe / 1000).to_string()),
            ("step", "3600".to_string()),
        ])
        .send()
        .expect("query")
        .json()
        .expect("json");
    assert!(
        r["warnings"]
            .to_string()
            .contains("remote engine \\\"down\\\""),
        "{r}"
    );
    s.terminate();
}
