//! Helpers for end-to-end tests: start the real `sextant` binary (and real peers), talk to it
//! over HTTP.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sextant_model::{Labels, Sample};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// A running `sextant serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Starts `sextant serve` with self-monitoring and host metrics off, so a test sees only
    /// the data it writes.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--no-host-metrics"];
        args.extend_from_slice(extra);
        Server::start_with_host_metrics(data_dir, &args)
    }

    /// Like [`Server::start`] but with the built-in host collector on (its default).
    pub fn start_with_host_metrics(data_dir: &Path, extra: &[&str]) -> Server {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .args(["--self-monitor-interval", "0", "--log-level", "warn"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sextant");
        Server { child, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Waits until `/-/ready` answers 200; panics if the process exits or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let c = client();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sextant exited during start-up with {status}");
            }
            if let Ok(r) = c.get(self.url("/-/ready")).send() {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "sextant not ready after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "sextant did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one remote-write 1.0 request; returns the HTTP status.
pub fn remote_write_v1(
    c: &reqwest::blocking::Client,
    url: &str,
    series: &[(Labels, Vec<Sample>)],
) -> reqwest::Result<u16> {
    let body = sextant_ingest::remote_write::compress_snappy(
        &sextant_ingest::remote_write::encode_v1(series),
    );
    c.post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .map(|r| r.status().as_u16())
}

/// Reads `/api/v1/export` for a selector: (labels as JSON object string, samples).
pub fn export(
    c: &reqwest::blocking::Client,
    base: &str,
    selector: &str,
) -> Vec<(serde_json::Value, Vec<(i64, f64)>)> {
    let r = c
        .get(format!("{base}/api/v1/export"))
        .query(&[("match[]", selector)])
        .send()
        .expect("export request");
    assert!(r.status().is_success(), "export failed: {}", r.status());
    let text = r.text().expect("export body");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("export line is JSON");
            let ts = v["timestamps"].as_array().cloned().unwrap_or_default();
            let vals = v["values"].as_array().cloned().unwrap_or_default();
            let samples = ts
                .iter()
                .zip(vals.iter())
                .map(|(t, v)| (t.as_i64().unwrap_or(0), v.as_f64().unwrap_or(f64::NAN)))
                .collect();
            (v["metric"].clone(), samples)
        })
        .collect()
}

/// Is a peer binary on the PATH? When not: skip the test with a message, or fail when
/// `SEXTANT_REQUIRE_PEERS=1` (CI).
pub fn peer(bin: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("peer {bin} is required (SEXTANT_REQUIRE_PEERS=1) but not on the PATH");
        }
        eprintln!(
            "SKIPPED: {bin} is not installed (apt-get install {bin}); this peer test did not run"
        );
    }
    found
}

/// A peer process (Prometheus, Pushgateway, …) killed and reaped when the test ends.
pub struct Peer(pub Child);
impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `body` as OpenMetrics to every request, on a thread, until the test ends.
pub fn serve_openmetrics(body: &'static str) -> u16 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 8192];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body.as_bytes());
        }
    });
    port
}

/// A required tool or module is missing: skip with a message, or fail under
/// `SEXTANT_REQUIRE_PEERS=1` (CI).
pub fn have(what: &str, check: &mut Command) -> bool {
    let ok = check
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{what} is required (SEXTANT_REQUIRE_PEERS=1) but not installed");
        }
        eprintln!("SKIPPED: {what} is not installed; this test did not run");
    }
    ok
}

/// A webhook sink: a std TcpListener thread that answers 200 to every request and keeps each
/// JSON body (receivers, scheduled reports).
pub fn webhook_sink() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let port = l.local_addr().expect("addr").port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let g = g.clone();
            std::thread::spawn(move || {
                let Ok(mut w) = conn.try_clone() else { return };
                let mut r = BufReader::new(conn);
                loop {
                    let mut len = 0usize;
                    let mut first = true;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" && !first {
                            break;
                        }
                        first = false;
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(v) = serde_json::from_slice(&body) {
                        g.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                    }
                    if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, got)
}

/// Starts Debian's `prometheus` with `config`, its data in `data`, on `127.0.0.1:port`, plus
/// `extra` flags; killed when the returned [`Peer`] drops.
pub fn start_prometheus(config: &Path, data: &Path, port: u16, extra: &[&str]) -> Peer {
    Peer(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    )
}
