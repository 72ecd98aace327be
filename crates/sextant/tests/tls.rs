//! End-to-end: HTTPS on the server's port from `tls_server_config` (certificates made in the
//! test with rcgen), client certificates required for the `write` scope only or for every
//! connection, Secure session cookies, and a real Prometheus scraping Sextant over HTTPS with
//! a bearer token.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;
use sextant_model::{Labels, Sample};

const READ: &str = "sxt_tls_read_token_0001";
const WRITE: &str = "sxt_tls_write_token_0002";
const PW: &str = "tls-user-password-0003";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sextant")
}

fn auth_cli(sub: &str, input: &str) -> String {
    let mut c = Command::new(bin())
        .args(["auth", sub])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sextant auth");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("stdin");
    let out = c.wait_with_output().expect("wait");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

/// PEM files of a CA, a server certificate for 127.0.0.1/localhost and a client certificate.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// Client certificate followed by its key (what reqwest's Identity::from_pem takes).
    client: Vec<u8>,
    ca_pem: Vec<u8>,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "sextant test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let ckey = rcgen::KeyPair::generate().unwrap();
    let mut cp = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    cp.distinguished_name
        .push(rcgen::DnType::CommonName, "agent-1");
    cp.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let ccert = cp.signed_by(&ckey, &ca_cert, &ca_key).unwrap();
    let w = |name: &str, body: String| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    Pki {
        ca: w("ca.pem", ca_cert.pem()),
        cert: w("server.pem", cert.pem()),
        key: w("server.key", key.serialize_pem()),
        client: format!("{}{}", ccert.pem(), ckey.serialize_pem()).into_bytes(),
        ca_pem: ca_cert.pem().into_bytes(),
        client_cert: w("client.pem", ccert.pem()),
        client_key: w("client.key", ckey.serialize_pem()),
    }
}

fn client(pki: &Pki, with_cert: bool) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(&pki.ca_pem).unwrap());
    if with_cert {
        b = b.identity(reqwest::Identity::from_pem(&pki.client).unwrap());
    }
    b.build().unwrap()
}

struct Srv {
    child: Child,
    port: u16,
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Srv {
    fn url(&self, p: &str) -> String {
        format!("https://127.0.0.1:{}{p}", self.port)
    }
}

fn start(dir: &Path, config: &str, ready: &reqwest::blocking::Client) -> Srv {
    let cfg = dir.join("sextant.yml");
    std::fs::write(&cfg, config).unwrap();
    let port = free_port();
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&cfg)
        .args([
            "--no-host-metrics",
            "--self-monitor-interval",
            "0",
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sextant");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("sextant exited with {s}");
        }
        if ready
            .get(format!("https://127.0.0.1:{port}/-/ready"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(Instant::now() < deadline, "sextant (https) not ready");
        std::thread::sleep(Duration::from_millis(25));
    }
    Srv { child, port }
}

fn config(p: &Pki, tls_extra: &str) -> String {
    format!(
        r#"auth:
  tokens:
    - name: reader
      hash: {r}
      scopes: [read]
    - name: agents
      hash: {w}
      scopes: [write]
  users:
    - name: bob
      password_hash: "{h}"
      scopes: [read]
tls_server_config:
  cert_file: {cert}
  key_file: {key}
  client_ca_file: {ca}
{tls_extra}
"#,
        r = auth_cli("hash-token", &format!("{READ}\n")),
        w = auth_cli("hash-token", &format!("{WRITE}\n")),
        h = auth_cli("hash-password", &format!("{PW}\n")),
        cert = p.cert.display(),
        key = p.key.display(),
        ca = p.ca.display(),
    )
}

fn rw(c: &reqwest::blocking::Client, s: &Srv) -> Result<u16, reqwest::Error> {
    let series = vec![(
        Labels::from_pairs([("__name__".to_string(), "tls_e2e_total".to_string())]),
        vec![Sample {
            t: sextant_model::time::now_ms(),
            v: 1.0,
        }],
    )];
    let body = sextant_ingest::remote_write::compress_snappy(
        &sextant_ingest::remote_write::encode_v1(&series),
    );
    c.post(s.url("/api/v1/write"))
        .bearer_auth(WRITE)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(body)
        .send()
        .map(|r| r.status().as_u16())
}

#[test]
fn https_with_client_certificates_for_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let anon = client(&p, false);
    let s = start(
        dir.path(),
        &config(&p, "  client_cert_required_for: [write]"),
        &anon,
    );
    let q = s.url("/api/v1/query?query=tls_e2e_total");
    // Queries need only the token; ingest needs the token and a client certificate.
    assert_eq!(anon.get(&q).bearer_auth(READ).send().unwrap().status(), 200);
    assert_eq!(rw(&anon, &s).unwrap(), 403);
    let with_cert = client(&p, true);
    assert_eq!(rw(&with_cert, &s).unwrap(), 204);
    // The certificate is not a credential by itself.
    assert_eq!(with_cert.get(&q).send().unwrap().status(), 401);
    let v: serde_json::Value = anon
        .get(&q)
        .bearer_auth(READ)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
    // Plain HTTP on the TLS port gets nowhere.
    let plain = common::client()
        .get(format!("http://127.0.0.1:{}/api/v1/query?query=up", s.port))
        .bearer_auth(READ)
        .send();
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    // Session cookies are Secure under TLS.
    let login = anon
        .post(s.url("/login"))
        .header("Origin", format!("https://127.0.0.1:{}", s.port))
        .form(&[("username", "bob"), ("password", PW)])
        .send()
        .unwrap();
    assert_eq!(login.status(), 303);
    let set = login.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("; Secure") && set.contains("HttpOnly"),
        "{set}"
    );
    // A client that does not trust the CA cannot connect.
    let untrusting = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(untrusting.get(s.url("/-/healthy")).send().is_err());
}

#[test]
fn require_and_verify_client_cert_for_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let with_cert = client(&p, true);
    let s = start(
        dir.path(),
        &config(&p, "  client_auth_type: RequireAndVerifyClientCert"),
        &with_cert,
    );
    assert_eq!(
        with_cert.get(s.url("/-/healthy")).send().unwrap().status(),
        200
    );
    assert_eq!(rw(&with_cert, &s).unwrap(), 204);
    // Without a certificate the handshake fails: no HTTP answer at all.
    let anon = client(&p, false);
    assert!(anon.get(s.url("/-/healthy")).send().is_err());
    assert!(rw(&anon, &s).is_err());
}

#[test]
fn bad_tls_config_is_refused_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let cfg = dir.path().join("sextant.yml");
    std::fs::write(&cfg, config(&p, "  client_auth_type: RequireAnyClientCert")).unwrap();
    let out = Command::new(bin())
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls_server_config.client_auth_type"), "{err}");
    std::fs::write(
        &cfg,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: /nonexistent/key.pem\n",
            p.cert.display()
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&cfg)
        .args(["--no-host-metrics"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tls_server_config.key_file") && err.contains("/nonexistent/key.pem"),
        "{err}"
    );
}

/// A real Prometheus scrapes Sextant's /metrics over HTTPS, trusting the test CA and sending
/// the read token the way its `authorization:` block does.
#[test]
fn prometheus_scrapes_sextant_over_https_with_a_token() {
    if !common::peer("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let anon = client(&p, false);
    let s = start(dir.path(), &config(&p, ""), &anon);
    let prom_port = free_port();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: sextant
    scheme: https
    authorization:
      credentials: {READ}
    tls_config:
      ca_file: {ca}
      server_name: localhost
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"#,
            ca = p.ca.display(),
            port = s.port
        ),
    )
    .unwrap();
    let _prom = common::Peer(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus"),
    );
    let c = common::client();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let v: Option<serde_json::Value> = c
            .get(format!("http://127.0.0.1:{prom_port}/api/v1/targets"))
            .send()
            .ok()
            .and_then(|r| r.json().ok());
        let health = v.as_ref().and_then(|v| {
            v["data"]["activeTargets"][0]["health"]
                .as_str()
                .map(str::to_string)
        });
        if health.as_deref() == Some("up") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape Sextant over HTTPS: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Rule alerts reach a real Alertmanager that serves HTTPS and requires client certificates,
/// through `--alerting-config`'s `tls_config` (CA, client certificate, server_name).
#[test]
fn rule_alerts_reach_an_alertmanager_over_mtls() {
    if !common::peer("prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let amport = free_port();
    let amcfg = dir.path().join("am.yml");
    std::fs::write(
        &amcfg,
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    )
    .unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n",
            p.cert.display(),
            p.key.display(),
            p.ca.display()
        ),
    )
    .unwrap();
    let _am = common::Peer(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", amcfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{amport}"))
            .arg(format!("--web.config.file={}", web.display()))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    let alerting = dir.path().join("alerting.yml");
    std::fs::write(
        &alerting,
        format!(
            "alerting:\n  alertmanagers:\n    - scheme: https\n      tls_config:\n        ca_file: {}\n        cert_file: {}\n        key_file: {}\n        server_name: localhost\n      static_configs:\n        - targets: ['127.0.0.1:{amport}']\n",
            p.ca.display(),
            p.client_cert.display(),
            p.client_key.display()
        ),
    )
    .unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: OverMtls\n        expr: vector(1)\n",
    )
    .unwrap();
    let mut server = common::Server::start(
        &dir.path().join("data"),
        &[
            "--rules",
            rules.to_str().unwrap(),
            "--alerting-config",
            alerting.to_str().unwrap(),
            "--no-default-rules",
        ],
    );
    server.wait_ready(Duration::from_secs(60));
    let am = client(&p, true);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = am
            .get(format!("https://localhost:{amport}/api/v2/alerts"))
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .is_some_and(|v| {
                v.as_array()
                    .is_some_and(|a| a.iter().any(|x| x["labels"]["alertname"] == "OverMtls"))
            });
        if got {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the alert did not reach the Alertmanager over mTLS"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Scheduled reports query the server's own engine in-process, so they work when every
/// connection needs a client certificate and every query a token.
#[test]
fn scheduled_report_is_delivered_under_mtls_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let with_cert = client(&p, true);
    let (sink, got) = common::webhook_sink();
    let cfg = format!(
        "{}route:\n  receiver: hook\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{sink}/report\nreports:\n  - name: every2s\n    every: 2s\n    range: 1h\n    format: md\n    receiver: hook\n",
        config(&p, "  client_auth_type: RequireAndVerifyClientCert")
    );
    let s = start(dir.path(), &cfg, &with_cert);
    assert_eq!(rw(&with_cert, &s).unwrap(), 204);
    let deadline = Instant::now() + Duration::from_secs(90);
    let n = loop {
        if let Some(n) = got.lock().unwrap_or_else(|e| e.into_inner()).first() {
            break n.clone();
        }
        assert!(Instant::now() < deadline, "no scheduled report arrived");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        n["alerts"][0]["labels"]["alertname"], "SextantReport",
        "{n}"
    );
    assert_eq!(n["alerts"][0]["labels"]["report"], "every2s", "{n}");
    let body = n["commonAnnotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(body.starts_with("# Sextant report: every2s"), "{body}");
}
