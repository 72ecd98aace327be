//! Fault tests against the real binary: a full disk under the WAL (a small tmpfs as the data
//! dir), a corrupted block at startup, and an alert receiver that never answers while ingest
//! goes on. What each proves is summarised in docs/robustness.md.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{client, export, remote_write_v1, Server};
use sextant_model::{Labels, Sample};

fn now_ms() -> i64 {
    sextant_model::time::now_ms()
}

fn series(name: &str, n: usize, t: i64, pad: &str) -> Vec<(Labels, Vec<Sample>)> {
    (0..n)
        .map(|i| {
            (
                Labels::from_pairs([
                    ("__name__", name.to_string()),
                    ("i", i.to_string()),
                    ("pad", pad.to_string()),
                ]),
                vec![Sample { t, v: i as f64 }],
            )
        })
        .collect()
}

/// Mounts a tmpfs of `size` on `dir`; false (with a plain message) where mounting is not
/// permitted (not root, no CAP_SYS_ADMIN, a container without mount rights).
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); this test did not run");
    }
    ok
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

/// A WAL write that hits ENOSPC answers 503 (retryable), the server keeps serving queries,
/// nothing is corrupted, writes succeed again once space returns, and after a restart every
/// sample that was acknowledged with 2xx is there.
#[test]
fn disk_full_during_wal_write_answers_503_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    if !mount_tmpfs(&data, "3m") {
        return;
    }
    let _unmount = Unmount(&data);
    let mut s = Server::start(&data, &["--no-default-rules"]);
    s.wait_ready(Duration::from_secs(60));
    let c = client();
    let url = s.url("/api/v1/write");
    let pad = "x".repeat(200);
    let t0 = now_ms();
    let mut acked: Vec<i64> = Vec::new();
    let mut got_503 = false;
    // Each batch is 100 new series with long labels (~25 KB of WAL series records), so 3 MiB
    // fills within a few hundred batches.
    for k in 0..2000i64 {
        let status = remote_write_v1(&c, &url, &series("full", 100, t0 + k, &format!("{k}{pad}")))
            .expect("post");
        match status {
            200..=299 => acked.push(t0 + k),
            503 => {
                got_503 = true;
                break;
            }
            other => panic!("unexpected status {other} on a full disk"),
        }
    }
    assert!(got_503, "disk never filled");
    assert!(!acked.is_empty());
    // Still full: still 503, never a 500 or a crash; queries keep working.
    for k in 0..5 {
        let st =
            remote_write_v1(&c, &url, &series("full", 100, t0 + 5000 + k, &pad)).expect("post");
        assert_eq!(st, 503);
    }
    let r = c
        .get(s.url("/api/v1/query"))
        .query(&[("query", "count(full)")])
        .send()
        .expect("query");
    assert!(r.status().is_success());
    // Space returns.
    let ok = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&data)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "remount with more space");
    let later = t0 + 10_000;
    assert_eq!(
        remote_write_v1(&c, &url, &series("full", 100, later, &pad)).expect("post"),
        204,
        "writes accepted again once space returns"
    );
    acked.push(later);
    // Restart: every acknowledged sample is replayed from the WAL.
    assert!(s.terminate().success());
    let mut s = Server::start(&data, &["--no-default-rules"]);
    s.wait_ready(Duration::from_secs(60));
    let got = export(&c, &s.url(""), "{__name__=\"full\",i=\"7\"}");
    let ts: Vec<i64> = got
        .iter()
        .flat_map(|(_, s)| s.iter().map(|(t, _)| *t))
        .collect();
    for t in &acked {
        assert!(
            ts.contains(t),
            "acknowledged sample at {t} lost after restart"
        );
    }
    // The failed writes left no torn frame behind: replay found nothing corrupt.
    let m = c
        .get(s.url("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("body");
    assert!(
        m.lines()
            .any(|l| l == "sextant_tsdb_wal_corruptions_total 0"),
        "WAL replay after ENOSPC: {}",
        m.lines()
            .filter(|l| l.contains("wal_corruptions"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(s.terminate().success());
}

/// A block whose index is corrupted is moved aside at startup with a log line; startup does not
/// fail and the other blocks keep serving.
#[test]
fn corrupted_block_is_quarantined_at_startup_and_the_rest_serves() {
    use sextant_tsdb::block::{write_block, BlockSeries};
    let data = tempfile::tempdir().expect("tempdir");
    let blocks = data.path().join("blocks");
    std::fs::create_dir_all(&blocks).expect("mkdir");
    let base = (now_ms() / 7_200_000 - 4) * 7_200_000;
    let mk = |name: &str, from: i64| {
        let s = BlockSeries {
            labels: Labels::from_pairs([("__name__", name.to_string()), ("job", "b".into())]),
            floats: (0..10)
                .map(|k| Sample {
                    t: from + k * 60_000,
                    v: k as f64,
                })
                .collect(),
            hist_chunks: vec![],
        };
        write_block(&blocks, vec![s], from, from + 7_200_000, 1, vec![]).expect("write block")
    };
    let good = mk("good_metric", base);
    let bad = mk("bad_metric", base + 7_200_000);
    let idx = blocks.join(&bad.ulid).join("index");
    let mut raw = std::fs::read(&idx).expect("index");
    let mid = raw.len() / 2;
    raw[mid] ^= 0x55;
    std::fs::write(&idx, raw).expect("corrupt");

    let mut s = Server::start(data.path(), &["--no-default-rules"]);
    s.wait_ready(Duration::from_secs(60));
    let c = client();
    let got = export(&c, &s.url(""), "{job=\"b\"}");
    assert_eq!(got.len(), 1, "only the good block serves: {got:?}");
    assert_eq!(got[0].0["__name__"], "good_metric");
    assert_eq!(got[0].1.len(), 10);
    assert!(blocks.join(format!("{}.corrupted", bad.ulid)).is_dir());
    assert!(blocks.join(&good.ulid).is_dir());
    // The quarantine is visible in the TSDB's own metrics.
    let m = c
        .get(s.url("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("body");
    assert!(
        m.lines()
            .any(|l| l.starts_with("sextant_tsdb_blocks_quarantined_total") && l.ends_with(" 1")),
        "quarantine counter: {}",
        m.lines()
            .filter(|l| l.contains("quarantin"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Ingest keeps working.
    let st = remote_write_v1(
        &c,
        &s.url("/api/v1/write"),
        &series("after", 3, now_ms(), "p"),
    )
    .expect("post");
    assert_eq!(st, 204);
    assert!(s.terminate().success());
}

/// An Alertmanager webhook receiver that accepts connections and never answers does not slow
/// down ingest: remote-write requests sent while notifications hang are as fast as before.
#[test]
fn hung_alert_receiver_does_not_block_ingest() {
    let hook = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hook_port = hook.local_addr().expect("addr").port();
    // Accept and hold every connection open without answering.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hook.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut buf = [0u8; 64];
            let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = conn.read(&mut buf);
            let _ = tx.send(());
            held.push(conn);
            if held.len() > 64 {
                break;
            }
        }
    });
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = data.path().join("sextant.yml");
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: hung\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1s\nreceivers:\n  - name: hung\n    webhook_configs:\n      - url: http://127.0.0.1:{hook_port}/hook\n"
        ),
    )
    .expect("config");
    let cfg_arg = cfg.to_string_lossy().to_string();
    let mut s = Server::start(data.path(), &["--no-default-rules", "--config", &cfg_arg]);
    s.wait_ready(Duration::from_secs(60));
    let c = client();
    let url = s.url("/api/v1/write");
    let burst = |tag: &str| -> (Duration, Duration) {
        let start = Instant::now();
        let mut worst = Duration::ZERO;
        for k in 0..200 {
            let t = Instant::now();
            let st = remote_write_v1(&c, &url, &series(tag, 50, now_ms() + k, "p")).expect("post");
            assert_eq!(st, 204);
            worst = worst.max(t.elapsed());
        }
        (start.elapsed(), worst)
    };
    let (baseline, _) = burst("before");
    // Fire alerts at the receiver until it holds connections that never answer.
    for k in 0..20 {
        let alerts = serde_json::json!([{
            "labels": {"alertname": format!("Hung{k}"), "severity": "page"},
            "annotations": {"summary": "x"}
        }]);
        let r = c
            .post(s.url("/api/v2/alerts"))
            .json(&alerts)
            .send()
            .expect("post alerts");
        assert!(r.status().is_success(), "{}", r.status());
    }
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the receiver was contacted");
    let (during, worst) = burst("during");
    eprintln!(
        "200 writes: {baseline:?} before, {during:?} while the receiver hangs (worst {worst:?})"
    );
    assert!(
        worst < Duration::from_secs(2),
        "a write took {worst:?} while the receiver hung"
    );
    assert!(
        during < baseline * 4 + Duration::from_secs(2),
        "ingest slowed from {baseline:?} to {during:?} while the receiver hung"
    );
    // Everything written while the receiver hung is stored.
    let got = export(&c, &s.url(""), "{__name__=\"during\",i=\"0\"}");
    assert_eq!(got[0].1.len(), 200);
    // Shutdown is not held up by the hung receiver either.
    let t = Instant::now();
    assert!(s.terminate().success());
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "shutdown took {:?}",
        t.elapsed()
    );
}
