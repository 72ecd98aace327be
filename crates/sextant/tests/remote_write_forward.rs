//! End-to-end tests of remote_write forwarding (`remote_write:` in sextant.yml) against real
//! receivers: Debian's `victoria-metrics` and `prometheus --web.enable-remote-write-receiver`,
//! and a second Sextant for protocol 2.0 (Prometheus 2.42 does not accept 2.0). Every test
//! writes a known stream into Sextant, lets it forward, and reads the receiver's raw samples
//! back to check that each sample arrived exactly once. `receiver_outage_of_a_minute_loses_nothing`
//! keeps VictoriaMetrics down for 60 s on purpose (the issue asks for a real outage), so this
//! file takes a little over a minute.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, free_port, peer, remote_write_v1, Peer, Server};
use sextant_model::{Labels, Sample};

const SERIES: usize = 5;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Samples `from..to` (one per second from `base`, value = index) of `SERIES` series named
/// `metric`.
fn stream(metric: &str, base: i64, from: usize, to: usize) -> Vec<(Labels, Vec<Sample>)> {
    (0..SERIES)
        .map(|i| {
            (
                Labels::from_pairs([("__name__", metric.to_string()), ("i", i.to_string())]),
                (from..to)
                    .map(|n| Sample {
                        t: base + n as i64 * 1000,
                        v: n as f64,
                    })
                    .collect(),
            )
        })
        .collect()
}

fn write(s: &Server, series: &[(Labels, Vec<Sample>)]) {
    let st = remote_write_v1(&client(), &s.url("/api/v1/write"), series).expect("write");
    assert_eq!(st, 204, "sextant refused the write");
}

fn start_vm(dir: &Path, port: u16) -> Peer {
    let peer = Peer(
        Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-retentionPeriod=100y")
            .arg("-search.disableCache")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn victoria-metrics"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let c = client();
    while Instant::now() < deadline {
        if c.get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return peer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("victoria-metrics did not become healthy");
}

/// Stops VictoriaMetrics with SIGTERM (it flushes what it received) and waits for it.
fn stop_gracefully(p: &mut Peer) {
    let _ = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = p.0.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = p.0.kill();
    let _ = p.0.wait();
}

/// VictoriaMetrics' raw samples of `metric`, per `i` label: timestamps in arrival order.
fn vm_samples(port: u16, metric: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    let c = client();
    let _ = c
        .get(format!("http://127.0.0.1:{port}/internal/force_flush"))
        .send();
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let r = match c
        .get(format!("http://127.0.0.1:{port}/api/v1/export"))
        .query(&[("match[]", metric), ("start", "0")])
        .send()
    {
        Ok(r) if r.status().is_success() => r,
        _ => return out,
    };
    for line in r.text().unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("export line is JSON");
        let i = v["metric"]["i"].as_str().unwrap_or("?").to_string();
        let ts = v["timestamps"].as_array().cloned().unwrap_or_default();
        let vals = v["values"].as_array().cloned().unwrap_or_default();
        let e = out.entry(i).or_default();
        for (t, v) in ts.iter().zip(vals.iter()) {
            e.push((t.as_i64().unwrap_or(0), v.as_f64().unwrap_or(f64::NAN)));
        }
    }
    out
}

/// Waits until `get` returns `want` samples in total (or the deadline passes), then returns
/// the last answer.
fn wait_for_total(
    want: usize,
    timeout: Duration,
    mut get: impl FnMut() -> BTreeMap<String, Vec<(i64, f64)>>,
) -> BTreeMap<String, Vec<(i64, f64)>> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = get();
        let n: usize = got.values().map(|v| v.len()).sum();
        if n >= want || Instant::now() > deadline {
            // Give duplicates a moment to show up if any were sent.
            if n >= want {
                std::thread::sleep(Duration::from_millis(1500));
                return get();
            }
            return got;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every series `0..SERIES` has exactly the samples `0..n` (value = index), once each.
fn assert_exactly_once(
    got: &BTreeMap<String, Vec<(i64, f64)>>,
    base: i64,
    n: usize,
    skip: &[usize],
) {
    for i in 0..SERIES {
        let key = i.to_string();
        if skip.contains(&i) {
            assert!(
                !got.contains_key(&key),
                "series i={i} should have been dropped"
            );
            continue;
        }
        let mut s = got.get(&key).cloned().unwrap_or_default();
        s.sort_by_key(|x| x.0);
        let want: Vec<(i64, f64)> = (0..n).map(|k| (base + k as i64 * 1000, k as f64)).collect();
        if s != want {
            let mut seen = BTreeMap::new();
            for (t, _) in &s {
                *seen.entry(*t).or_insert(0) += 1;
            }
            let dups = seen.values().filter(|c| **c > 1).count();
            let missing = want.iter().filter(|(t, _)| !seen.contains_key(t)).count();
            panic!(
                "series i={i}: got {} samples, want {n} ({dups} timestamps duplicated, {missing} missing)",
                s.len()
            );
        }
    }
}

fn metric_value(s: &Server, name_and_labels_prefix: &str) -> f64 {
    let text = client()
        .get(s.url("/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name_and_labels_prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn config(dir: &Path, body: &str) -> String {
    let p = dir.join("sextant.yml");
    std::fs::write(&p, body).expect("write config");
    p.display().to_string()
}

fn rw_config(url: &str, extra: &str) -> String {
    format!(
        "remote_write:\n  - url: {url}\n    name: test\n    queue_config:\n      batch_send_deadline: 200ms\n      min_backoff: 50ms\n      max_backoff: 1s\n{extra}"
    )
}

#[test]
fn receiver_outage_of_a_minute_loses_nothing() {
    if !peer("victoria-metrics") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let vm_port = free_port();
    let mut vm = start_vm(&tmp.path().join("vm"), vm_port);
    let cfg = config(
        tmp.path(),
        &rw_config(&format!("http://127.0.0.1:{vm_port}/api/v1/write"), ""),
    );
    let mut s = Server::start(
        &tmp.path().join("sx"),
        &["--config", &cfg, "--no-default-rules"],
    );
    s.wait_ready(Duration::from_secs(60));
    let base = now_ms() - 600_000;
    write(&s, &stream("fwd_outage", base, 0, 100));
    let got = wait_for_total(SERIES * 100, Duration::from_secs(60), || {
        vm_samples(vm_port, "fwd_outage")
    });
    assert_exactly_once(&got, base, 100, &[]);

    // A real outage: VictoriaMetrics is down for 60 s while the stream goes on.
    stop_gracefully(&mut vm);
    let down = Instant::now();
    for k in 0..6 {
        write(&s, &stream("fwd_outage", base, 100 + k * 30, 130 + k * 30));
        std::thread::sleep(Duration::from_secs(5));
    }
    assert!(metric_value(&s, "prometheus_remote_storage_samples_retried_total{") > 0.0);
    assert!(metric_value(&s, "prometheus_remote_storage_samples_pending{") > 0.0);
    while down.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let vm2 = start_vm(&tmp.path().join("vm"), vm_port);
    write(&s, &stream("fwd_outage", base, 280, 300));
    let got = wait_for_total(SERIES * 300, Duration::from_secs(90), || {
        vm_samples(vm_port, "fwd_outage")
    });
    assert_exactly_once(&got, base, 300, &[]);
    assert_eq!(
        metric_value(&s, "prometheus_remote_storage_samples_failed_total{"),
        0.0
    );
    assert!(metric_value(&s, "prometheus_remote_storage_samples_total{") >= (SERIES * 300) as f64);
    drop(vm2);
}

#[test]
fn kill9_mid_stream_resumes_without_loss_or_duplicates() {
    if !peer("victoria-metrics") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let vm_port = free_port();
    let _vm = start_vm(&tmp.path().join("vm"), vm_port);
    // A long batch deadline so the kill lands while samples are read but not yet sent.
    let cfg = config(
        tmp.path(),
        &format!(
            "remote_write:\n  - url: http://127.0.0.1:{vm_port}/api/v1/write\n    queue_config:\n      batch_send_deadline: 2s\n      max_samples_per_send: 50\n"
        ),
    );
    let data = tmp.path().join("sx");
    let mut s = Server::start(&data, &["--config", &cfg, "--no-default-rules"]);
    s.wait_ready(Duration::from_secs(60));
    let base = now_ms() - 600_000;
    for k in 0..10 {
        write(&s, &stream("fwd_kill", base, k * 10, k * 10 + 10));
        // Half-way, let a round go out, so the kill lands after some sends.
        let pause = if k == 4 { 3000 } else { 100 };
        std::thread::sleep(Duration::from_millis(pause));
    }
    // Some of it has gone out, the rest is in the WAL only.
    s.kill9();
    let mut s = Server::start(&data, &["--config", &cfg, "--no-default-rules"]);
    s.wait_ready(Duration::from_secs(60));
    write(&s, &stream("fwd_kill", base, 100, 150));
    let got = wait_for_total(SERIES * 150, Duration::from_secs(60), || {
        vm_samples(vm_port, "fwd_kill")
    });
    assert_exactly_once(&got, base, 150, &[]);
}

#[test]
fn prometheus_receiver_gets_every_sample_and_relabel_drops() {
    if !peer("prometheus") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let p_port = free_port();
    let pcfg = tmp.path().join("prometheus.yml");
    std::fs::write(&pcfg, "global:\n  scrape_interval: 1h\n").expect("write");
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", pcfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("prom").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{p_port}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--log.level=error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn prometheus");
    let _prom = Peer(prom);
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !c
        .get(format!("http://127.0.0.1:{p_port}/-/ready"))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "prometheus not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cfg = config(
        tmp.path(),
        &rw_config(
            &format!("http://127.0.0.1:{p_port}/api/v1/write"),
            "    write_relabel_configs:\n      - source_labels: [i]\n        regex: \"3\"\n        action: drop\n",
        ),
    );
    let mut s = Server::start(
        &tmp.path().join("sx"),
        &["--config", &cfg, "--no-default-rules"],
    );
    s.wait_ready(Duration::from_secs(60));
    let base = now_ms() - 300_000;
    write(&s, &stream("fwd_prom", base, 0, 120));
    let query = || {
        let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        let Ok(r) = client()
            .get(format!("http://127.0.0.1:{p_port}/api/v1/query"))
            .query(&[("query", "fwd_prom[10m]")])
            .send()
        else {
            return out;
        };
        let v: serde_json::Value = r.json().unwrap_or_default();
        for series in v["data"]["result"].as_array().cloned().unwrap_or_default() {
            let i = series["metric"]["i"].as_str().unwrap_or("?").to_string();
            for pair in series["values"].as_array().cloned().unwrap_or_default() {
                let t = (pair[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
                let v: f64 = pair[1]
                    .as_str()
                    .unwrap_or("NaN")
                    .parse()
                    .unwrap_or(f64::NAN);
                out.entry(i.clone()).or_default().push((t, v));
            }
        }
        out
    };
    let got = wait_for_total((SERIES - 1) * 120, Duration::from_secs(60), query);
    assert_exactly_once(&got, base, 120, &[3]);
    assert_eq!(
        metric_value(&s, "prometheus_remote_storage_samples_dropped_total{"),
        120.0
    );
}

#[test]
fn protocol_2_0_to_a_sextant_receiver() {
    // Prometheus 2.42 does not accept remote write 2.0, so the receiver is a second Sextant.
    let tmp = tempfile::tempdir().expect("tmp");
    let mut rx = Server::start(&tmp.path().join("rx"), &["--no-default-rules"]);
    rx.wait_ready(Duration::from_secs(60));
    let cfg = config(
        tmp.path(),
        &rw_config(
            &rx.url("/api/v1/write"),
            "    protobuf_message: io.prometheus.write.v2.Request\n",
        ),
    );
    let mut s = Server::start(
        &tmp.path().join("sx"),
        &["--config", &cfg, "--no-default-rules"],
    );
    s.wait_ready(Duration::from_secs(60));
    let base = now_ms() - 300_000;
    write(&s, &stream("fwd_v2", base, 0, 200));
    let get = || {
        let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        for (m, samples) in common::export(&client(), &rx.url(""), "fwd_v2") {
            let i = m["i"].as_str().unwrap_or("?").to_string();
            out.entry(i).or_default().extend(samples);
        }
        out
    };
    let got = wait_for_total(SERIES * 200, Duration::from_secs(60), get);
    assert_exactly_once(&got, base, 200, &[]);
}

#[test]
fn agent_mode_forwards_and_refuses_queries() {
    if !peer("victoria-metrics") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let vm_port = free_port();
    let _vm = start_vm(&tmp.path().join("vm"), vm_port);
    let cfg = config(
        tmp.path(),
        &rw_config(&format!("http://127.0.0.1:{vm_port}/api/v1/write"), ""),
    );
    let mut s = Server::start(&tmp.path().join("sx"), &["--config", &cfg, "--agent"]);
    s.wait_ready(Duration::from_secs(60));
    let r = client()
        .get(s.url("/api/v1/query"))
        .query(&[("query", "up")])
        .send()
        .expect("query");
    assert_eq!(r.status().as_u16(), 422);
    let v: serde_json::Value = r.json().expect("json");
    assert_eq!(v["status"], "error");
    assert!(v["error"].as_str().unwrap_or("").contains("agent mode"));
    let base = now_ms() - 60_000;
    write(&s, &stream("fwd_agent", base, 0, 50));
    let got = wait_for_total(SERIES * 50, Duration::from_secs(60), || {
        vm_samples(vm_port, "fwd_agent")
    });
    assert_exactly_once(&got, base, 50, &[]);
    // Nothing long-term: no blocks are ever written in agent mode.
    let blocks = std::fs::read_dir(tmp.path().join("sx").join("blocks"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(blocks, 0);
}

/// A receiver that answers the first `fail` requests with `status`, then 204, and records
/// each request's head (lower-cased) and body.
type Requests = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

fn scripted_receiver(status: u16, fail: usize) -> (u16, Requests) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let head_end = loop {
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break buf.len(),
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + len {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            let body = buf[head_end..].to_vec();
            seen2.lock().expect("lock").push((head, body));
            let code = if n < fail { status } else { 204 };
            let _ = conn.write_all(
                format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (port, seen)
}

fn wait_metric(s: &Server, name: &str, want: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = metric_value(s, name);
        if v >= want || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn retries_5xx_with_backoff_sends_headers_and_auth() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (port, seen) = scripted_receiver(503, 3);
    let cfg = config(
        tmp.path(),
        &rw_config(
            &format!("http://127.0.0.1:{port}/receive"),
            "    headers: {X-Scope-OrgID: team-a}\n    basic_auth: {username: u, password: p}\n",
        ),
    );
    let mut s = Server::start(
        &tmp.path().join("sx"),
        &["--config", &cfg, "--no-default-rules"],
    );
    s.wait_ready(Duration::from_secs(60));
    write(&s, &stream("fwd_retry", now_ms() - 60_000, 0, 10));
    assert_eq!(
        wait_metric(&s, "prometheus_remote_storage_samples_total{", 50.0),
        50.0
    );
    // Three refused attempts of the same 50 samples, then success.
    assert_eq!(
        metric_value(&s, "prometheus_remote_storage_samples_retried_total{"),
        150.0
    );
    assert_eq!(
        metric_value(&s, "prometheus_remote_storage_samples_failed_total{"),
        0.0
    );
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 4);
    // Every attempt carried the same body, with Prometheus' remote-write 1.0 headers.
    for (head, body) in seen.iter() {
        assert!(head.starts_with("post /receive "), "{head}");
        assert!(head.contains("content-encoding: snappy"), "{head}");
        assert!(
            head.contains("content-type: application/x-protobuf"),
            "{head}"
        );
        assert!(
            head.contains("x-prometheus-remote-write-version: 0.1.0"),
            "{head}"
        );
        assert!(head.contains("x-scope-orgid: team-a"), "{head}");
        assert!(head.contains("authorization: basic dtpw"), "{head}");
        assert_eq!(body, &seen[0].1);
    }
    use sextant_ingest::remote_write as rw;
    let raw = rw::decompress_snappy(&seen[0].1, 1 << 20).expect("snappy body");
    let batch =
        rw::decode_v1(&raw, &rw::DecodeLimits::default()).expect("a prometheus.WriteRequest");
    assert_eq!(batch.sample_count(), 50);
}

#[test]
fn a_4xx_answer_drops_the_batch_and_counts_it_failed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (port, seen) = scripted_receiver(400, 1);
    let cfg = config(
        tmp.path(),
        &rw_config(&format!("http://127.0.0.1:{port}/receive"), ""),
    );
    let mut s = Server::start(
        &tmp.path().join("sx"),
        &["--config", &cfg, "--no-default-rules"],
    );
    s.wait_ready(Duration::from_secs(60));
    let base = now_ms() - 60_000;
    write(&s, &stream("fwd_bad", base, 0, 10));
    assert_eq!(
        wait_metric(&s, "prometheus_remote_storage_samples_failed_total{", 50.0),
        50.0
    );
    // Later data still flows; the refused batch is not retried.
    write(&s, &stream("fwd_bad", base, 10, 20));
    assert_eq!(
        wait_metric(&s, "prometheus_remote_storage_samples_total{", 50.0),
        50.0
    );
    assert_eq!(
        metric_value(&s, "prometheus_remote_storage_samples_retried_total{"),
        0.0
    );
    assert_eq!(seen.lock().expect("lock").len(), 2);
}
