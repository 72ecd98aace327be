//! Sextant scrapes real exporters configured through `sextant.yml`: Debian's
//! `prometheus-node-exporter` and a Python app using PyPI's `prometheus-client`, plus a target
//! that hangs, one that returns garbage and one over its sample limit. Checked through the
//! Prometheus API: stored values, `up`, `/api/v1/targets`, staleness when a target leaves a
//! file_sd file, and `/-/reload` adding a job. Also `sextant check config` on a broken file.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PY_APP: &str = r#"
import sys, time
from prometheus_client import start_http_server, Counter, Gauge, Histogram
c = Counter('agent_requests', 'Requests handled', ['model'])
g = Gauge('agent_queue_depth', 'Queue depth')
h = Histogram('agent_latency_seconds', 'Latency', buckets=[0.1, 0.5, 1.0])
c.labels(model='gpt').inc(7)
g.set(42)
for v in (0.05, 0.3, 0.7, 2.0):
    h.observe(v)
start_http_server(int(sys.argv[1]), addr='127.0.0.1')
while True:
    time.sleep(1)
"#;

fn python_client() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("python3 with prometheus-client is required (SEXTANT_REQUIRE_PEERS=1)");
        }
        eprintln!(
            "SKIPPED: python3 with prometheus-client is not installed (pip install prometheus-client); this peer test did not run"
        );
    }
    ok
}

/// A TCP server that accepts connections and never answers.
fn hanging_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

/// An HTTP server that answers 200 with a body that is not an exposition.
fn garbage_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "<html>this is not { metrics\n";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Instant query → [(labels, value)].
fn query(c: &reqwest::blocking::Client, base: &str, q: &str) -> Vec<(Value, f64)> {
    let r: Value = c
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .expect("query")
        .json()
        .expect("query json");
    assert_eq!(r["status"], "success", "query {q}: {r}");
    r["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let v = s["value"][1]
                .as_str()
                .unwrap_or("NaN")
                .parse()
                .unwrap_or(f64::NAN);
            (s["metric"].clone(), v)
        })
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn single(c: &reqwest::blocking::Client, base: &str, q: &str) -> Option<f64> {
    let r = query(c, base, q);
    (r.len() == 1).then(|| r[0].1)
}

#[test]
fn scrapes_node_exporter_and_python_app_with_failures_staleness_and_reload() {
    if !peer("prometheus-node-exporter") || !python_client() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let node_port = free_port();
    let _node = Peer(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            .args([
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.loadavg",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node exporter"),
    );
    let app_port = free_port();
    let _app = Peer(
        Command::new("python3")
            .args(["-c", PY_APP, &app_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python app"),
    );
    wait_port(node_port, "node exporter");
    wait_port(app_port, "python app");
    let hang_port = hanging_server();
    let garbage_port = garbage_server();

    let sd = dir.path().join("sd");
    std::fs::create_dir_all(&sd).expect("sd dir");
    std::fs::write(
        sd.join("app.json"),
        format!(r#"[{{"targets": ["127.0.0.1:{app_port}"], "labels": {{"team": "agents"}}}}]"#),
    )
    .expect("sd file");
    let cfg_path = dir.path().join("sextant.yml");
    let base_cfg = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:{node_port}']
  - job_name: app
    file_sd_configs:
      - files: ['{sd}/*.json']
  - job_name: broken
    scrape_timeout: 500ms
    static_configs:
      - targets: ['127.0.0.1:{hang_port}', '127.0.0.1:{garbage_port}']
  - job_name: limited
    sample_limit: 5
    static_configs:
      - targets: ['127.0.0.1:{app_port}']
"#,
        sd = sd.display()
    );
    std::fs::write(&cfg_path, &base_cfg).expect("config");
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--config", cfg_path.to_str().expect("utf-8 path")],
    );
    server.wait_ready(Duration::from_secs(60));
    let c = client();
    let base = server.url("");

    wait_for("node and app up==1", Duration::from_secs(60), || {
        single(&c, &base, r#"up{job="node"}"#) == Some(1.0)
            && single(&c, &base, r#"up{job="app"}"#) == Some(1.0)
    });
    // node_exporter's series are stored with the target's labels.
    let cpu = query(&c, &base, r#"node_cpu_seconds_total{job="node"}"#);
    assert!(!cpu.is_empty(), "no node_cpu_seconds_total stored");
    assert_eq!(
        cpu[0].0["instance"],
        format!("127.0.0.1:{node_port}"),
        "instance label"
    );
    // The Python app's counter, gauge and histogram, with the file_sd group label.
    let app = |q: &str| single(&c, &base, q);
    assert_eq!(
        app(r#"agent_requests_total{job="app",model="gpt",team="agents"}"#),
        Some(7.0)
    );
    assert_eq!(app(r#"agent_queue_depth{job="app"}"#), Some(42.0));
    assert_eq!(
        app(r#"agent_latency_seconds_bucket{job="app",le="0.1"}"#),
        Some(1.0)
    );
    assert_eq!(
        app(r#"agent_latency_seconds_bucket{job="app",le="+Inf"}"#),
        Some(4.0)
    );
    assert_eq!(app(r#"agent_latency_seconds_count{job="app"}"#), Some(4.0));
    assert_eq!(app(r#"agent_latency_seconds_sum{job="app"}"#), Some(3.05));
    assert!(
        query(&c, &base, r#"agent_requests_created{job="app"}"#).is_empty(),
        "OpenMetrics _created series must not be stored as samples"
    );
    assert!(app(r#"scrape_samples_scraped{job="app"}"#).is_some_and(|v| v > 10.0));
    assert!(app(r#"scrape_duration_seconds{job="app"}"#).is_some_and(|v| v > 0.0));

    // Failing targets: up==0, and the error is visible in /api/v1/targets.
    wait_for(
        "broken and limited targets scraped",
        Duration::from_secs(30),
        || {
            let up = query(&c, &base, r#"up{job=~"broken|limited"}"#);
            up.len() == 3 && up.iter().all(|(_, v)| *v == 0.0)
        },
    );
    let targets: Value = c
        .get(format!("{base}/api/v1/targets"))
        .send()
        .expect("targets")
        .json()
        .expect("targets json");
    assert_eq!(targets["status"], "success");
    let active = targets["data"]["activeTargets"]
        .as_array()
        .expect("activeTargets");
    assert_eq!(active.len(), 5, "{targets}");
    let find = |port: u16, pool: &str| {
        active
            .iter()
            .find(|t| {
                t["scrapePool"] == pool && t["labels"]["instance"] == format!("127.0.0.1:{port}")
            })
            .unwrap_or_else(|| panic!("no target {pool} :{port} in {targets}"))
            .clone()
    };
    let node = find(node_port, "node");
    assert_eq!(node["health"], "up");
    assert_eq!(node["lastError"], "");
    assert_eq!(
        node["scrapeUrl"],
        format!("http://127.0.0.1:{node_port}/metrics")
    );
    assert_eq!(node["scrapeInterval"], "1s");
    assert_eq!(
        node["discoveredLabels"]["__address__"],
        format!("127.0.0.1:{node_port}")
    );
    assert_eq!(node["labels"]["job"], "node");
    let app_t = find(app_port, "app");
    assert_eq!(app_t["health"], "up");
    assert!(app_t["discoveredLabels"]["__meta_filepath"]
        .as_str()
        .is_some_and(|p| p.ends_with("app.json")));
    let hang = find(hang_port, "broken");
    assert_eq!(hang["health"], "down");
    assert!(
        hang["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("context deadline exceeded")),
        "{hang}"
    );
    assert_eq!(hang["scrapeTimeout"], "500ms");
    let garbage = find(garbage_port, "broken");
    assert_eq!(garbage["health"], "down");
    assert!(
        garbage["lastError"].as_str().is_some_and(|e| !e.is_empty()),
        "{garbage}"
    );
    let limited = find(app_port, "limited");
    assert!(
        limited["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("sample limit exceeded")),
        "{limited}"
    );
    // The good targets were not disturbed by the failing ones.
    assert_eq!(single(&c, &base, r#"up{job="node"}"#), Some(1.0));

    // Metadata of the last scrape, per target.
    let md: Value = c
        .get(format!("{base}/api/v1/targets/metadata"))
        .query(&[
            ("match_target", r#"{job="app"}"#),
            ("metric", "agent_queue_depth"),
        ])
        .send()
        .expect("targets/metadata")
        .json()
        .expect("metadata json");
    assert_eq!(md["status"], "success", "{md}");
    assert_eq!(
        md["data"],
        serde_json::json!([{
            "target": {"instance": format!("127.0.0.1:{app_port}"), "job": "app", "team": "agents"},
            "type": "gauge",
            "help": "Queue depth",
            "unit": ""
        }])
    );
    let md: Value = c
        .get(format!("{base}/api/v1/targets/metadata"))
        .query(&[("match_target", r#"{job="node"}"#), ("limit", "2")])
        .send()
        .expect("targets/metadata")
        .json()
        .expect("metadata json");
    let entries = md["data"].as_array().expect("metadata list");
    assert_eq!(entries.len(), 2, "{md}");
    assert!(entries
        .iter()
        .all(|e| e["metric"].is_string() && e["target"]["job"] == "node"));
    let r = c
        .get(format!("{base}/api/v1/targets/metadata"))
        .query(&[("metric", "no_such_metric")])
        .send()
        .expect("targets/metadata");
    assert_eq!(r.status().as_u16(), 404);

    // Removing the target from the file_sd file (noticed within seconds, although the
    // refresh_interval is the default 5m) makes its series stale at once (not after the 5m
    // lookback), and the target leaves /api/v1/targets.
    std::fs::write(sd.join("app.json"), "[]").expect("rewrite sd file");
    wait_for("app series stale", Duration::from_secs(30), || {
        query(&c, &base, r#"agent_queue_depth{job="app"}"#).is_empty()
            && query(&c, &base, r#"up{job="app"}"#).is_empty()
    });
    let targets: Value = c
        .get(format!("{base}/api/v1/targets?state=active"))
        .send()
        .expect("targets")
        .json()
        .expect("targets json");
    assert!(targets["data"]["activeTargets"]
        .as_array()
        .expect("activeTargets")
        .iter()
        .all(|t| t["scrapePool"] != "app"));
    assert_eq!(targets["data"]["droppedTargets"], serde_json::json!([]));

    // /-/reload adds a job without a restart; a broken file is refused and changes nothing.
    std::fs::write(
        &cfg_path,
        format!(
            "{base_cfg}  - job_name: app2\n    static_configs:\n      - targets: ['127.0.0.1:{app_port}']\n"
        ),
    )
    .expect("config");
    let r = c.post(format!("{base}/-/reload")).send().expect("reload");
    assert_eq!(r.status().as_u16(), 200);
    wait_for("app2 up", Duration::from_secs(30), || {
        single(&c, &base, r#"up{job="app2"}"#) == Some(1.0)
    });
    assert_eq!(
        single(&c, &base, r#"agent_queue_depth{job="app2"}"#),
        Some(42.0)
    );
    std::fs::write(
        &cfg_path,
        "scrape_configs:\n  - job_name: x\n    bogus: 1\n",
    )
    .expect("config");
    let r = c.post(format!("{base}/-/reload")).send().expect("reload");
    assert_eq!(r.status().as_u16(), 500);
    let msg = r.text().expect("body");
    assert!(
        msg.contains("sextant.yml:3: unknown field `bogus`"),
        "{msg}"
    );
    assert_eq!(single(&c, &base, r#"up{job="node"}"#), Some(1.0));
    server.terminate();
}

#[test]
fn check_config_names_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_interval: 10s\n    scrape_timeout: 20s\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .expect("run check");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:4: scrape_configs[0] (job \"a\"): scrape_timeout: scrape timeout greater than scrape interval",
            bad.display()
        )),
        "{err}"
    );
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['h:1']\n    relabel_configs:\n      - source_labels: [__address__]\n        regex: '(.*):.*'\n        target_label: host\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["check", "config"])
        .arg(&good)
        .output()
        .expect("run check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS"));
    // Files read at scrape time are checked too, like promtool does.
    let missing = dir.path().join("missing.yml");
    std::fs::write(
        &missing,
        "scrape_configs:\n  - job_name: ok\n  - job_name: a\n    bearer_token_file: /nonexistent/token\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["check", "config"])
        .arg(&missing)
        .output()
        .expect("run check");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:3: scrape_configs[1] (job \"a\"): bearer_token_file: cannot read \"/nonexistent/token\"",
            missing.display()
        )),
        "{err}"
    );
}

const PY_TLS: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get('Authorization') != 'Bearer s3cret':
            self.send_response(401)
            self.end_headers()
            return
        body = b'tls_metric 1\n'
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain; version=0.0.4')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn scrapes_https_with_ca_file_server_name_and_credentials() {
    if !peer("openssl") || !peer("python3") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=Sextant test CA",
    ]);
    openssl(d, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=metrics.internal",
    ]);
    openssl(d, &csr);
    std::fs::write(d.join("ext.cnf"), "subjectAltName=DNS:metrics.internal\n").expect("ext");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let port = free_port();
    let _srv = Peer(
        Command::new("python3")
            .args(["-c", PY_TLS, &port.to_string()])
            .arg(d.join("srv.crt"))
            .arg(d.join("srv.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start https server"),
    );
    wait_port(port, "https server");
    std::fs::write(d.join("token"), "s3cret\n").expect("token");
    let ca = d.join("ca.crt");
    let cfg = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: tls_ok
    scheme: https
    bearer_token_file: {token}
    tls_config:
      ca_file: {ca}
      server_name: metrics.internal
    static_configs:
      - targets: ['127.0.0.1:{port}']
  - job_name: tls_wrong_name
    scheme: https
    bearer_token: s3cret
    tls_config:
      ca_file: {ca}
    static_configs:
      - targets: ['127.0.0.1:{port}']
  - job_name: tls_insecure
    scheme: https
    authorization:
      credentials: s3cret
    tls_config:
      insecure_skip_verify: true
    static_configs:
      - targets: ['127.0.0.1:{port}']
  - job_name: tls_bad_token
    scheme: https
    bearer_token: wrong
    tls_config:
      ca_file: {ca}
      server_name: metrics.internal
    static_configs:
      - targets: ['127.0.0.1:{port}']
"#,
        token = d.join("token").display(),
        ca = ca.display()
    );
    let cfg_path = d.join("sextant.yml");
    std::fs::write(&cfg_path, cfg).expect("config");
    let mut server = Server::start(
        &d.join("data"),
        &["--config", cfg_path.to_str().expect("utf-8 path")],
    );
    server.wait_ready(Duration::from_secs(60));
    let c = client();
    let base = server.url("");
    wait_for("all four TLS jobs scraped", Duration::from_secs(60), || {
        query(&c, &base, r#"up{job=~"tls_.*"}"#).len() == 4
    });
    let up = |job: &str| single(&c, &base, &format!(r#"up{{job="{job}"}}"#));
    assert_eq!(up("tls_ok"), Some(1.0));
    assert_eq!(up("tls_insecure"), Some(1.0));
    assert_eq!(up("tls_wrong_name"), Some(0.0));
    assert_eq!(up("tls_bad_token"), Some(0.0));
    assert_eq!(single(&c, &base, r#"tls_metric{job="tls_ok"}"#), Some(1.0));
    let targets: Value = c
        .get(format!("{base}/api/v1/targets"))
        .send()
        .expect("targets")
        .json()
        .expect("targets json");
    let err_of = |job: &str| {
        targets["data"]["activeTargets"]
            .as_array()
            .expect("activeTargets")
            .iter()
            .find(|t| t["scrapePool"] == job)
            .map(|t| t["lastError"].as_str().unwrap_or("").to_string())
            .expect("target")
    };
    assert!(
        err_of("tls_bad_token").contains("server returned HTTP status 401"),
        "{targets}"
    );
    assert!(
        err_of("tls_wrong_name")
            .to_lowercase()
            .contains("certificate"),
        "{targets}"
    );
    server.terminate();
}

#[test]
fn sighup_reloads_and_no_config_scrapes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Without a config file: embedded defaults, no scrape targets.
    let mut plain = Server::start(&dir.path().join("plain"), &[]);
    plain.wait_ready(Duration::from_secs(60));
    let c = client();
    let t: Value = c
        .get(plain.url("/api/v1/targets"))
        .send()
        .expect("targets")
        .json()
        .expect("json");
    assert_eq!(
        t,
        serde_json::json!({"status": "success", "data": {"activeTargets": [], "droppedTargets": []}})
    );
    plain.terminate();

    // With a config that scrapes Sextant's own /metrics; SIGHUP picks up an added job.
    let cfg_path = dir.path().join("sextant.yml");
    std::fs::write(&cfg_path, "global:\n  scrape_interval: 1s\n").expect("config");
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--config", cfg_path.to_str().expect("utf-8 path")],
    );
    server.wait_ready(Duration::from_secs(60));
    let base = server.url("");
    std::fs::write(
        &cfg_path,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            server.port
        ),
    )
    .expect("config");
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    wait_for("self-scrape after SIGHUP", Duration::from_secs(30), || {
        single(&c, &base, r#"up{job="self"}"#) == Some(1.0)
    });
    // Sextant's own metrics arrived through the scrape.
    assert!(!query(&c, &base, r#"sextant_build_info{job="self"}"#).is_empty());
    server.terminate();
}
