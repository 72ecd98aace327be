//! The manager end to end inside one process: HTTP SD → relabeled targets → scrape loops →
//! sink, against tiny HTTP servers that record what they were sent.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::remote_write::WriteBatch;
use crate::{SinkError, Stored};

#[derive(Default)]
struct VecSink(Mutex<Vec<WriteBatch>>);

impl Sink for VecSink {
    fn store(&self, batch: WriteBatch) -> Result<Stored, SinkError> {
        self.0.lock().unwrap().push(batch);
        Ok(Stored::default())
    }
}

impl VecSink {
    /// Last value of the first series named `name` with label `k=v`.
    fn last(&self, name: &str, k: &str, v: &str) -> Option<(Labels, f64)> {
        let b = self.0.lock().unwrap();
        b.iter()
            .flat_map(|b| b.series.iter())
            .filter(|s| s.labels.metric_name() == Some(name) && s.labels.get(k) == Some(v))
            .filter_map(|s| s.samples.last().map(|x| (s.labels.clone(), x.v)))
            .next_back()
    }
}

type Handler = Box<dyn Fn(&str) -> (String, Vec<u8>) + Send>;

/// Serves HTTP/1.0-style one-shot responses; records each request head (lowercased).
fn serve(handler: Handler) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let rec = heads.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf).to_lowercase();
            rec.lock().unwrap().push(head.clone());
            let (headers, body) = handler(&head);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    (port, heads)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn config(yaml: &str) -> ScrapeConfig {
    let mut c: ScrapeConfig = serde_saphyr::from_str(yaml).expect("config");
    c.resolve(Duration::from_secs(1), Duration::from_secs(1))
        .expect("resolve");
    c
}

async fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sd_auth_gzip_headers_and_body_limit() {
    let metrics_body = "# TYPE m gauge\nm{a=\"1\"} 5\nx 1\n".to_string();
    let mb = metrics_body.clone();
    let (mport, heads) = serve(Box::new(move |head| {
        if head.contains("accept-encoding: gzip") {
            (
                "Content-Encoding: gzip\r\nContent-Type: text/plain; version=0.0.4\r\n".into(),
                gzip(mb.as_bytes()),
            )
        } else {
            (
                "Content-Type: text/plain\r\n".into(),
                mb.clone().into_bytes(),
            )
        }
    }));
    let sd_json = format!(r#"[{{"targets":["127.0.0.1:{mport}"],"labels":{{"sd":"yes"}}}}]"#);
    let (sdport, sd_heads) = serve(Box::new(move |_| {
        (
            "Content-Type: application/json\r\n".into(),
            sd_json.clone().into_bytes(),
        )
    }));
    let sink = Arc::new(VecSink::default());
    let mgr = ScrapeManager::new(sink.clone());
    let good = config(&format!(
        "job_name: sd\nparams:\n  x: [y]\nbasic_auth:\n  username: u\n  password: p\nhttp_sd_configs:\n  - url: http://127.0.0.1:{sdport}/sd\n    refresh_interval: 1s\n"
    ));
    let small = config(&format!(
        "job_name: small\nbody_size_limit: 10\nstatic_configs:\n  - targets: ['127.0.0.1:{mport}']\n"
    ));
    mgr.apply(vec![good.clone(), small.clone()]).unwrap();

    wait("a scrape of the SD target", || {
        sink.last("m", "job", "sd").is_some()
    })
    .await;
    let (labels, v) = sink.last("m", "job", "sd").unwrap();
    assert_eq!(v, 5.0);
    assert_eq!(labels.get("sd"), Some("yes"));
    assert_eq!(labels.get("a"), Some("1"));
    assert_eq!(
        labels.get("instance").map(String::from),
        Some(format!("127.0.0.1:{mport}"))
    );
    assert_eq!(sink.last("up", "job", "sd").map(|x| x.1), Some(1.0));

    let head = heads
        .lock()
        .unwrap()
        .iter()
        .find(|h| h.starts_with("get /metrics?x=y "))
        .cloned()
        .expect("a request with the params");
    assert!(head.contains("authorization: basic dtpw"), "{head}");
    assert!(
        head.contains("accept: application/openmetrics-text;version=1.0.0,"),
        "{head}"
    );
    assert!(
        head.contains("x-prometheus-scrape-timeout-seconds: 1\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!(
            "user-agent: sextant/{}",
            env!("CARGO_PKG_VERSION")
        )),
        "{head}"
    );
    let sd_head = sd_heads.lock().unwrap()[0].clone();
    assert!(
        sd_head.contains("x-prometheus-refresh-interval-seconds: 1"),
        "{sd_head}"
    );
    assert!(
        !sd_head.contains("authorization"),
        "scrape credentials sent to SD: {sd_head}"
    );

    // The body limit applies to the decompressed body: the small job fails, the other doesn't.
    wait("the small job's failed scrape", || {
        sink.last("up", "job", "small").is_some()
    })
    .await;
    assert_eq!(sink.last("up", "job", "small").map(|x| x.1), Some(0.0));
    let snap = mgr.snapshot();
    let small_t = &snap.iter().find(|p| p.job == "small").unwrap().active[0];
    assert_eq!(small_t.health.health, Health::Down);
    assert!(
        small_t
            .health
            .last_error
            .contains("body size limit exceeded"),
        "{:?}",
        small_t.health
    );
    let sd_t = &snap.iter().find(|p| p.job == "sd").unwrap().active[0];
    assert_eq!(
        sd_t.target.discovered.get("__meta_url").map(String::from),
        Some(format!("http://127.0.0.1:{sdport}/sd"))
    );

    // Removing a job stops its loop and marks its series stale.
    mgr.apply(vec![small]).unwrap();
    wait("stale markers for the removed job", || {
        sink.last("m", "job", "sd")
            .is_some_and(|(_, v)| sextant_model::is_stale_nan(v))
    })
    .await;
    assert!(mgr.snapshot().iter().all(|p| p.job != "sd"));
    // Unchanged pools keep running; duplicate job names are refused.
    assert!(mgr
        .apply(vec![good.clone(), good])
        .unwrap_err()
        .contains("multiple scrape configs"));
    mgr.stop_all();
}

/// Picks status, headers and body for a request head.
type StatusHandler = Box<dyn Fn(&str) -> (u16, String, Vec<u8>) + Send>;

/// Serves one-shot responses with the status the handler picks; records each request head.
fn serve_status(handler: StatusHandler) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let rec = heads.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf).to_lowercase();
            rec.lock().unwrap().push(head.clone());
            let (status, headers, body) = handler(&head);
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    (port, heads)
}

/// `http_sd_configs` take the same client settings as a job (Prometheus' HTTPClientConfig):
/// credentials from a file, basic auth, redirects followed or not; the SD credentials go to
/// the SD endpoint only, the job's to its targets only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sd_client_settings_auth_and_redirects() {
    let (mport, mheads) = serve(Box::new(|_| {
        ("Content-Type: text/plain\r\n".into(), b"m 7\n".to_vec())
    }));
    let sd_json = format!(r#"[{{"targets":["127.0.0.1:{mport}"]}}]"#);
    let (sdport, sd_heads) = serve_status(Box::new(move |head| {
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let bearer = head.contains("\r\nauthorization: bearer sd-secret\r\n");
        // sd:pw (the recorded head is lowercased)
        let basic = head.contains("\r\nauthorization: basic c2q6chc=\r\n");
        if path.starts_with("/old") {
            return (302, "Location: /sd\r\n".into(), Vec::new());
        }
        if path == "/basic" && basic || path == "/sd" && bearer {
            return (
                200,
                "Content-Type: application/json\r\n".into(),
                sd_json.clone().into_bytes(),
            );
        }
        (401, String::new(), b"unauthorized".to_vec())
    }));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "sd-secret\n").unwrap();
    let sink = Arc::new(VecSink::default());
    let mgr = ScrapeManager::new(sink.clone());
    let sd = |job: &str, url: &str, extra: &str| {
        config(&format!(
            "job_name: {job}\nbearer_token: job-secret\nhttp_sd_configs:\n  - url: http://127.0.0.1:{sdport}{url}\n    refresh_interval: 1s\n{extra}"
        ))
    };
    let auth = format!(
        "    authorization:\n      credentials_file: {}\n",
        token.display()
    );
    mgr.apply(vec![
        // Redirected from /old to /sd, with the bearer token from the file.
        sd("redirected", "/old", &auth),
        sd(
            "basic",
            "/basic",
            "    basic_auth:\n      username: sd\n      password: pw\n",
        ),
        // Same endpoint but redirects not followed: no targets.
        sd(
            "noredirect",
            "/old?x",
            &format!("{auth}    follow_redirects: false\n"),
        ),
        // Wrong password: 401, no targets.
        sd(
            "wrongpw",
            "/basic?x",
            "    basic_auth:\n      username: sd\n      password: nope\n",
        ),
    ])
    .unwrap();
    for job in ["redirected", "basic"] {
        wait("a scrape of the discovered target", || {
            sink.last("m", "job", job).is_some()
        })
        .await;
        assert_eq!(sink.last("m", "job", job).map(|x| x.1), Some(7.0));
    }
    wait("the other jobs' SD requests", || {
        let h = sd_heads.lock().unwrap();
        h.iter().any(|h| h.starts_with("get /old?x "))
            && h.iter().any(|h| h.starts_with("get /basic?x "))
    })
    .await;
    // Give the refused jobs two more refreshes: still nothing discovered.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let snap = mgr.snapshot();
    for job in ["noredirect", "wrongpw"] {
        let p = snap.iter().find(|p| p.job == job).unwrap();
        assert!(p.active.is_empty(), "{job}: {:?}", p.active.len());
    }
    let heads = sd_heads.lock().unwrap().clone();
    // The redirect was followed with the credentials (same host, as Go's client does).
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("get /sd ") && h.contains("authorization: bearer sd-secret")),
        "{heads:?}"
    );
    // The job with `follow_redirects: false` never followed its redirect (a followed one
    // carries the redirecting URL as Referer).
    assert!(heads.iter().all(|h| !h.contains("/old?x\r\n")), "{heads:?}");
    assert!(
        heads
            .iter()
            .any(|h| h.contains(&format!("referer: http://127.0.0.1:{sdport}/old\r\n"))),
        "{heads:?}"
    );
    assert!(
        heads.iter().all(|h| !h.contains("job-secret")),
        "job credentials sent to SD: {heads:?}"
    );
    let target_heads = mheads.lock().unwrap().clone();
    assert!(!target_heads.is_empty());
    assert!(
        target_heads
            .iter()
            .all(|h| h.contains("authorization: bearer job-secret") && !h.contains("sd-secret")),
        "{target_heads:?}"
    );
    mgr.stop_all();
}
