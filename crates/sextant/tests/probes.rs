//! Service probes end to end: `sextant serve` with a `probes:` section probes local HTTP, HTTPS
//! (a generated certificate), TCP and DNS servers; the blackbox_exporter series land in storage
//! with exact values, the shipped alerts (ProbeFailing, ProbeCertExpiringSoon) fire and resolve
//! when a TCP service goes down and comes back, every query of the built-in "Fleet health"
//! dashboard returns data, `/api/sextant/probes` lists the results, a probe removed on reload
//! goes stale, and bad config is refused naming the line and field. A second test compares the
//! series with the real blackbox_exporter on the same targets when it is installed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn get_json(url: &str) -> Value {
    client()
        .get(url)
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Instant query: the result vector.
fn query(s: &Server, q: &str) -> Vec<Value> {
    let r = client()
        .get(s.url("/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .and_then(|r| r.json::<Value>())
        .unwrap_or(Value::Null);
    assert_eq!(r["status"], "success", "{q}: {r}");
    r["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The single value of an instant query, if there is exactly one series.
fn value(s: &Server, q: &str) -> Option<f64> {
    let r = query(s, q);
    if r.len() != 1 {
        return None;
    }
    r[0]["value"][1].as_str()?.parse().ok()
}

fn read_request(conn: &mut std::net::TcpStream) -> String {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut r = BufReader::new(conn);
    let mut first = String::new();
    let _ = r.read_line(&mut first);
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
            break;
        }
    }
    first.split(' ').nth(1).unwrap_or("/").to_string()
}

/// A plain HTTP server: `/health` 200 "healthy", `/metrics` a tiny exposition, else 500.
fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let path = read_request(&mut conn);
                let (status, body) = match path.as_str() {
                    "/health" => ("200 OK", "healthy\n"),
                    "/metrics" => ("200 OK", "agent_info{agent=\"coder\"} 1\n"),
                    "/degraded" => ("200 OK", "status: degraded\n"),
                    _ => ("500 Internal Server Error", "oops\n"),
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// Days since the epoch → (year, month, day) (Howard Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y as i32, m as u8, d as u8)
}

/// A CA file in `dir` and an HTTPS server whose certificate (for 127.0.0.1 and localhost)
/// expires at midnight UTC `days` days from today; returns (port, ca path, expiry unix s).
fn https_server(dir: &Path, days: i64) -> (u16, String, i64) {
    use tokio_rustls::rustls;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let today = sextant_model::time::now_ms() / 86_400_000;
    let (y, m, d) = civil_from_days(today + days);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    p.not_after = rcgen::date_time_ymd(y, m, d);
    let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![rustls_pki_types::CertificateDer::from(cert.der().to_vec())],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut tcp) = conn else { continue };
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(mut tls) = rustls::ServerConnection::new(cfg) else {
                    return;
                };
                let mut s = rustls::Stream::new(&mut tls, &mut tcp);
                let mut buf = [0u8; 4096];
                let mut req = Vec::new();
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
                );
                let _ = s.flush();
                tls.send_close_notify();
                let _ = tls.write_tls(&mut tcp);
            });
        }
    });
    let expiry = (today + days) * 86400;
    (port, ca_path.to_string_lossy().into_owned(), expiry)
}

/// A TCP service on a fixed port that can be taken down and brought back.
struct Toggle {
    port: u16,
    up: Arc<AtomicBool>,
}

impl Toggle {
    fn start() -> Toggle {
        let port = free_port();
        let t = Toggle {
            port,
            up: Arc::new(AtomicBool::new(false)),
        };
        t.set(true);
        t
    }

    /// Up: a listener accepts and greets; down: the listener is closed (connection refused).
    fn set(&self, up: bool) {
        if up == self.up.swap(up, Ordering::SeqCst) {
            return;
        }
        if !up {
            // Wake the accept loop so it sees the flag and drops the listener.
            let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
            wait_for("the TCP service to stop", Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", self.port))
                    .is_err()
                    .then_some(())
            });
            return;
        }
        let l = wait_for("binding the TCP service", Duration::from_secs(10), || {
            TcpListener::bind(("127.0.0.1", self.port)).ok()
        });
        let flag = self.up.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if !flag.load(Ordering::SeqCst) {
                    return; // drops the listener
                }
                if let Ok(mut c) = conn {
                    let _ = c.write_all(b"+OK gateway ready\r\n");
                }
            }
        });
    }
}

/// A DNS server over UDP answering every A query with 192.0.2.7 (TTL 300).
fn dns_server() -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            let mut end = 12;
            while end < n && q[end] != 0 {
                end += q[end] as usize + 1;
            }
            if end + 5 > n {
                continue;
            }
            let mut r = q[..2].to_vec();
            r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..end + 5]);
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 192, 0, 2, 7]);
            let _ = sock.send_to(&r, from);
        }
    });
    port
}

struct Targets {
    http: u16,
    https: u16,
    ca: String,
    tcp: u16,
    dns: u16,
}

fn config(t: &Targets, with_dns: bool) -> String {
    let dns_target = if with_dns {
        format!(
            "    - job_name: dns\n      module: dns_a\n      interval: 1s\n      targets: ['127.0.0.1:{}']\n",
            t.dns
        )
    } else {
        String::new()
    };
    format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: agents
    static_configs:
      - targets: ['127.0.0.1:{http}']
probes:
  modules:
    http_2xx:
      prober: http
      timeout: 5s
      http:
        preferred_ip_protocol: ip4
    http_healthy_body:
      prober: http
      http:
        fail_if_body_not_matches_regexp: ['^healthy']
    https_ca:
      prober: http
      http:
        preferred_ip_protocol: ip4
        fail_if_not_ssl: true
        tls_config:
          ca_file: {ca}
    tcp_connect:
      prober: tcp
      tcp:
        query_response:
          - expect: '^\+OK'
    dns_a:
      prober: dns
      dns:
        query_name: agents.example.
        query_type: A
        validate_answer_rrs:
          fail_if_not_matches_regexp: ['IN\tA\t192\.0\.2\.7$']
  targets:
    - job_name: web
      module: http_2xx
      interval: 1s
      targets: ['http://127.0.0.1:{http}/health', 'http://127.0.0.1:{http}/missing']
      labels: {{team: platform}}
    - job_name: web-body
      module: http_healthy_body
      interval: 1s
      targets: ['http://127.0.0.1:{http}/health', 'http://127.0.0.1:{http}/degraded']
    - job_name: tls
      module: https_ca
      interval: 1s
      targets: ['https://localhost:{https}/']
    - job_name: gateway
      module: tcp_connect
      interval: 1s
      targets: ['127.0.0.1:{tcp}']
{dns_target}"#,
        http = t.http,
        https = t.https,
        ca = t.ca,
        tcp = t.tcp,
    )
}

/// The built-in rules with short `for:` so the test can watch them fire and resolve:
/// ProbeFailing (sextant-policy.yml, 5m) → 2s, ProbeCertExpiringSoon (probes.yml, 10m) → 1s.
fn short_rules(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let policy = std::fs::read_to_string(root.join("rules/sextant-policy.yml")).unwrap();
    let marker = "      - alert: ProbeFailing\n        expr: probe_success == 0\n        for: 5m\n";
    assert!(
        policy.contains(marker),
        "ProbeFailing changed in sextant-policy.yml"
    );
    let policy = policy.replace(
        marker,
        "      - alert: ProbeFailing\n        expr: probe_success == 0\n        for: 2s\n",
    );
    std::fs::write(dir.join("sextant-policy.yml"), policy).unwrap();
    let probes = std::fs::read_to_string(root.join("rules/probes.yml")).unwrap();
    let marker = "        expr: 0 < probe_ssl_earliest_cert_expiry - time() < 14 * 86400\n        for: 10m\n";
    assert!(
        probes.contains(marker),
        "ProbeCertExpiringSoon changed in probes.yml"
    );
    let probes = probes.replace(
        marker,
        "        expr: 0 < probe_ssl_earliest_cert_expiry - time() < 14 * 86400\n        for: 1s\n",
    );
    std::fs::write(dir.join("probes.yml"), probes).unwrap();
}

fn alerts(s: &Server) -> Vec<Value> {
    get_json(&s.url("/api/v1/alerts"))["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn firing(s: &Server, name: &str, instance: &str) -> bool {
    alerts(s).iter().any(|a| {
        a["labels"]["alertname"] == name
            && a["labels"]["instance"] == instance
            && a["state"] == "firing"
    })
}

#[test]
fn probes_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let (https, ca, expiry) = https_server(tmp.path(), 7);
    let tcp = Toggle::start();
    let t = Targets {
        http: http_server(),
        https,
        ca,
        tcp: tcp.port,
        dns: dns_server(),
    };
    let cfg = tmp.path().join("sextant.yml");
    std::fs::write(&cfg, config(&t, true)).unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    short_rules(&rules);
    let data = tmp.path().join("data");
    let mut s = Server::start(
        &data,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--no-default-rules",
            "--rules",
            rules.to_str().unwrap(),
            "--evaluation-interval",
            "500ms",
        ],
    );
    s.wait_ready(Duration::from_secs(60));
    let long = Duration::from_secs(60);
    let health = format!("http://127.0.0.1:{}/health", t.http);
    let missing = format!("http://127.0.0.1:{}/missing", t.http);
    let degraded = format!("http://127.0.0.1:{}/degraded", t.http);
    let tls = format!("https://localhost:{}/", t.https);
    let gw = format!("127.0.0.1:{}", t.tcp);
    let dns = format!("127.0.0.1:{}", t.dns);

    let probe = |metric: &str, job: &str, instance: &str| {
        format!(r#"{metric}{{job="{job}",instance="{instance}"}}"#)
    };
    // HTTP: status and body-regex cases, with the target's labels.
    let ok = |q: &str, want: f64| {
        let q = q.to_string();
        wait_for(&q.clone(), long, || {
            (value(&s, &q) == Some(want)).then_some(())
        });
    };
    for (q, want) in [
        (
            format!(r#"probe_success{{job="web",instance="{health}",team="platform"}}"#),
            1.0,
        ),
        (probe("probe_http_status_code", "web", &health), 200.0),
        (probe("probe_http_content_length", "web", &health), 8.0),
        (probe("probe_http_version", "web", &health), 1.1),
        (probe("probe_ip_protocol", "web", &health), 4.0),
        (probe("probe_success", "web", &missing), 0.0),
        (probe("probe_http_status_code", "web", &missing), 500.0),
        (probe("probe_success", "web-body", &health), 1.0),
        (probe("probe_success", "web-body", &degraded), 0.0),
        (
            probe("probe_failed_due_to_regex", "web-body", &degraded),
            1.0,
        ),
        (probe("probe_failed_due_to_regex", "web-body", &health), 0.0),
    ] {
        ok(&q, want);
    }
    let phases = query(
        &s,
        &format!(r#"probe_http_duration_seconds{{job="web",instance="{health}"}}"#),
    );
    let mut names: Vec<&str> = phases
        .iter()
        .filter_map(|p| p["metric"]["phase"].as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["connect", "processing", "resolve", "tls", "transfer"]
    );

    // HTTPS: the certificate's notAfter exactly, TLS version, and the expiry alert.
    for (q, want) in [
        (probe("probe_success", "tls", &tls), 1.0),
        (probe("probe_http_ssl", "tls", &tls), 1.0),
        (
            probe("probe_ssl_earliest_cert_expiry", "tls", &tls),
            expiry as f64,
        ),
        (
            format!(r#"probe_tls_version_info{{job="tls",instance="{tls}",version="TLS 1.3"}}"#),
            1.0,
        ),
    ] {
        ok(&q, want);
    }
    wait_for("ProbeCertExpiringSoon to fire", long, || {
        firing(&s, "ProbeCertExpiringSoon", &tls).then_some(())
    });

    // DNS against the local UDP responder.
    for (q, want) in [
        (probe("probe_success", "dns", &dns), 1.0),
        (probe("probe_dns_answer_rrs", "dns", &dns), 1.0),
        (probe("probe_dns_query_succeeded", "dns", &dns), 1.0),
    ] {
        ok(&q, want);
    }

    // TCP service up → down → up: probe_success 1 → 0 → 1, ProbeFailing fires and resolves.
    ok(&probe("probe_success", "gateway", &gw), 1.0);
    tcp.set(false);
    ok(&probe("probe_success", "gateway", &gw), 0.0);
    wait_for("ProbeFailing to fire", long, || {
        firing(&s, "ProbeFailing", &gw).then_some(())
    });
    let a = alerts(&s)
        .into_iter()
        .find(|a| {
            a["labels"]["alertname"] == "ProbeFailing" && a["labels"]["instance"] == gw.as_str()
        })
        .unwrap();
    assert_eq!(a["labels"]["severity"], "P0");
    assert_eq!(a["labels"]["job"], "gateway");
    tcp.set(true);
    ok(&probe("probe_success", "gateway", &gw), 1.0);
    wait_for("ProbeFailing to resolve", long, || {
        (!alerts(&s).iter().any(|a| {
            a["labels"]["alertname"] == "ProbeFailing" && a["labels"]["instance"] == gw.as_str()
        }))
        .then_some(())
    });

    // Fleet health: a pushed job run and the scrape of the agents job, then every query of
    // the built-in dashboard returns data.
    let r = client()
        .put(s.url("/metrics/job/nightly"))
        .body("sextant_job_success 1\n")
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    ok(r#"up{job="agents"}"#, 1.0);
    ok(r#"sextant_job_success{job="nightly"}"#, 1.0);
    let fleet = sextant_dashboards::builtin()
        .unwrap()
        .into_iter()
        .find(|d| d.uid == "fleet")
        .expect("the fleet dashboard is built in");
    let mut checked = 0;
    for p in &fleet.panels {
        for tg in &p.targets {
            let expr = tg
                .expr
                .replace("$__rate_interval", "1m")
                .replace("$job", ".*");
            let n = wait_for(&format!("{}: {expr}", p.title), long, || {
                let n = query(&s, &expr).len();
                (n > 0).then_some(n)
            });
            assert!(n > 0);
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked}");
    // Probes failing right now: the two broken HTTP targets.
    assert_eq!(
        value(&s, r#"count(probe_success == 0) or vector(0)"#),
        Some(2.0)
    );

    // The probes API.
    let api = get_json(&s.url("/api/sextant/probes"));
    assert_eq!(api["status"], "success");
    let list = api["data"].as_array().unwrap();
    assert_eq!(list.len(), 7, "{api}");
    let m = list
        .iter()
        .find(|p| p["job"] == "web" && p["instance"] == missing.as_str())
        .unwrap();
    assert_eq!(m["success"], false);
    assert_eq!(m["prober"], "http");
    assert!(m["error"].as_str().unwrap().contains("500"), "{m}");
    assert_eq!(m["labels"]["team"], "platform");
    assert_eq!(m["samples"]["probe_http_status_code"], 500.0);

    // Reload without the DNS probe: its series go stale.
    std::fs::write(&cfg, config(&t, false)).unwrap();
    let r = client().post(s.url("/-/reload")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    wait_for("the removed probe to go stale", long, || {
        query(&s, &format!(r#"{{__name__=~"probe_.*",instance="{dns}"}}"#))
            .is_empty()
            .then_some(())
    });
    assert_eq!(
        get_json(&s.url("/api/sextant/probes"))["data"]
            .as_array()
            .unwrap()
            .len(),
        6
    );

    // Bad config: reload refuses it naming line and field, the probes keep running.
    let mut bad = config(&t, true);
    bad = bad.replace(
        "        preferred_ip_protocol: ip4\n",
        "        preferred_ip_protocol: ip4\n        fail_if_body_matches: [x]\n",
    );
    std::fs::write(&cfg, &bad).unwrap();
    let r = client().post(s.url("/-/reload")).send().unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let body = r.text().unwrap();
    let line = bad
        .lines()
        .position(|l| l.contains("fail_if_body_matches:"))
        .unwrap()
        + 1;
    assert!(
        body.contains(&format!(
            "sextant.yml:{line}: unknown field `fail_if_body_matches`"
        )),
        "{body}"
    );
    ok(&probe("probe_success", "web", &health), 1.0);
}

#[test]
fn check_config_names_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "probes:\n  modules:\n    m:\n      prober: http\n      http:\n        valid_status_code: [200]\n",
            "s.yml:6: unknown field `valid_status_code`",
        ),
        (
            "probes:\n  modules:\n    m: {prober: tcp}\n  targets:\n    - job_name: gw\n      module: tcp_connect\n      targets: ['h:1']\n",
            "s.yml:5: probes.targets[0].module: unknown module \"tcp_connect\"",
        ),
        (
            "probes:\n  modules:\n    d:\n      prober: dns\n      dns: {query_name: x, query_type: AXFRR}\n",
            "s.yml:4: probes.modules.d.dns.query_type: query type \"AXFRR\" is not valid",
        ),
        (
            "probes:\n  modules:\n    m:\n      prober: icmp\n",
            "s.yml:4: ",
        ),
    ];
    for (text, want) in cases {
        let f = tmp.path().join("s.yml");
        std::fs::write(&f, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
            .current_dir(tmp.path())
            .args(["check", "config", "s.yml"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "want {want:?} in {err}");
    }
}

/// Parses a text exposition into `name{labels}` → value (no HELP/TYPE), labels sorted.
fn parse_exposition(text: &str) -> std::collections::BTreeMap<String, f64> {
    let batch = sextant_ingest::text::parse_text(text, 0).expect("valid exposition");
    let mut out = std::collections::BTreeMap::new();
    for s in batch.into_write_batch().series {
        let mut key = String::new();
        for l in s.labels.iter() {
            key.push_str(&format!("{}={:?},", l.name, l.value));
        }
        out.insert(key, s.samples[0].v);
    }
    out
}

#[test]
fn same_series_as_blackbox_exporter() {
    if !peer("prometheus-blackbox-exporter") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let http = http_server();
    let dns = dns_server();
    let tcp = Toggle::start();
    let closed = free_port();
    let (https, ca, _) = https_server(tmp.path(), 30);
    let modules = format!("modules:\n  https:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n      tls_config:\n        ca_file: {ca}\n");
    let modules = modules + "  http_2xx:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n  body:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n      fail_if_body_not_matches_regexp: ['^healthy']\n  tcp:\n    prober: tcp\n    tcp:\n      preferred_ip_protocol: ip4\n  dns_a:\n    prober: dns\n    dns:\n      preferred_ip_protocol: ip4\n      query_name: agents.example.\n      query_type: A\n";
    std::fs::write(tmp.path().join("blackbox.yml"), &modules).unwrap();
    let bb_port = free_port();
    let _bb = Peer(
        std::process::Command::new("prometheus-blackbox-exporter")
            .arg(format!(
                "--config.file={}",
                tmp.path().join("blackbox.yml").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{bb_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start blackbox_exporter"),
    );
    let cases = [
        ("http_2xx", format!("http://127.0.0.1:{http}/health")),
        ("http_2xx", format!("http://127.0.0.1:{http}/missing")),
        ("http_2xx", format!("http://127.0.0.1:{closed}/")),
        ("body", format!("http://127.0.0.1:{http}/degraded")),
        ("tcp", format!("127.0.0.1:{}", tcp.port)),
        ("tcp", format!("127.0.0.1:{closed}")),
        ("dns_a", format!("127.0.0.1:{dns}")),
        ("https", format!("https://localhost:{https}/")),
    ];
    // The same modules under `probes:` (indented), each case its own job.
    let mut cfg = String::from("probes:\n");
    for l in modules.lines() {
        cfg.push_str(&format!("  {l}\n"));
    }
    cfg.push_str("  targets:\n");
    for (i, (m, target)) in cases.iter().enumerate() {
        cfg.push_str(&format!(
            "    - job_name: case{i}\n      module: {m}\n      interval: 1s\n      timeout: 3s\n      targets: ['{target}']\n"
        ));
    }
    let cfg_path = tmp.path().join("sextant.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut s = Server::start(
        &tmp.path().join("data"),
        &["--config", cfg_path.to_str().unwrap()],
    );
    s.wait_ready(Duration::from_secs(60));
    let bb = wait_for(
        "blackbox_exporter to start",
        Duration::from_secs(30),
        || {
            client()
                .get(format!("http://127.0.0.1:{bb_port}/-/healthy"))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        },
    );
    drop(bb);
    // Durations differ run to run; every other value must be identical.
    let timing = |k: &str| k.contains("duration_seconds") || k.contains("lookup_time_seconds");
    // Not written by Sextant (docs/probes.md, "Differences").
    let unsupported = |k: &str| k.contains("\"probe_ssl_last_chain_info\"");
    for (i, (module, target)) in cases.iter().enumerate() {
        let text = client()
            .get(format!("http://127.0.0.1:{bb_port}/probe"))
            .query(&[("module", *module), ("target", target.as_str())])
            .send()
            .and_then(|r| r.text())
            .unwrap();
        let mut want = parse_exposition(&text);
        want.retain(|k, _| !unsupported(k));
        let job = format!("case{i}");
        let got = wait_for(
            &format!("probe series of {job}"),
            Duration::from_secs(60),
            || {
                let r = query(&s, &format!(r#"{{__name__=~"probe_.*",job="{job}"}}"#));
                if r.len() < want.len() {
                    return None;
                }
                let mut m = std::collections::BTreeMap::new();
                for x in r {
                    let mut labels: Vec<(String, String)> = x["metric"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .filter(|(k, _)| *k != "job" && *k != "instance")
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect();
                    labels.sort();
                    let key: String = labels.iter().map(|(k, v)| format!("{k}={v:?},")).collect();
                    let v: f64 = x["value"][1].as_str().unwrap().parse().unwrap();
                    m.insert(key, v);
                }
                // Added in blackbox_exporter 0.24, after Debian's 0.23.
                m.retain(|k, _| !k.contains("\"probe_tls_cipher_info\""));
                Some(m)
            },
        );
        let names = |m: &std::collections::BTreeMap<String, f64>| -> Vec<String> {
            m.keys().cloned().collect()
        };
        eprintln!("{module} {target}: {} series match", want.len());
        assert_eq!(
            names(&got),
            names(&want),
            "{module} {target}: series differ\nblackbox:\n{text}"
        );
        for (k, v) in &want {
            if timing(k) {
                continue;
            }
            assert_eq!(
                got.get(k),
                Some(v),
                "{module} {target}: {k}\nblackbox:\n{text}"
            );
        }
    }
}
