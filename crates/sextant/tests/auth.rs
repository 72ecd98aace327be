//! End-to-end: `auth:` in sextant.yml enforced by the real binary — scopes for tokens and
//! users, 401/403, the login page's session cookie with CSRF checks, CORS, the Influx and
//! Pushgateway/OTLP client conventions (real Python clients), the non-loopback refusal, and
//! secrets that must never appear in logs or API answers.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, have};
use sextant_model::{Labels, Sample};

const READ: &str = "sxt_read_token_for_e2e_0001";
const WRITE: &str = "sxt_write_token_for_e2e_0002";
const ADMIN: &str = "sxt_admin_token_for_e2e_0003";
const ALICE_PW: &str = "alice-pass-e2e-0004";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sextant")
}

/// Runs `sextant auth <sub>` with `input` on stdin.
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
        .expect("write stdin");
    let out = c.wait_with_output().expect("wait");
    assert!(out.status.success(), "sextant auth {sub} failed");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

struct Srv {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Srv {
    fn url(&self, p: &str) -> String {
        format!("http://127.0.0.1:{}{p}", self.port)
    }
}

fn start(dir: &Path, config: &str, extra: &[&str], env: &[(&str, &str)]) -> Srv {
    let cfg = dir.join("sextant.yml");
    std::fs::write(&cfg, config).expect("write config");
    let port = free_port();
    let log = dir.join("server.log");
    let logf = std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::new(bin());
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir.join("data"))
    .arg("--config")
    .arg(&cfg)
    .args(["--no-host-metrics", "--self-monitor-interval", "0"])
    .args(extra)
    .stdout(Stdio::null())
    .stderr(logf);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn sextant");
    let c = common::client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            panic!(
                "sextant exited with {s}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if c.get(format!("http://127.0.0.1:{port}/-/ready"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(Instant::now() < deadline, "sextant not ready");
        std::thread::sleep(Duration::from_millis(25));
    }
    Srv { child, port, log }
}

fn auth_config(alice_hash: &str) -> String {
    format!(
        r#"auth:
  tokens:
    - name: grafana
      hash: {r}
      scopes: [read]
    - name: agents
      hash: {w}
      scopes: [write]
    - name: ops
      hash: {a}
      scopes: [admin]
  users:
    - name: alice
      password_hash: "{alice_hash}"
      scopes: [read, admin]
cors:
  allowed_origins: ["https://grafana.example.com"]
"#,
        r = auth_cli("hash-token", &format!("{READ}\n")),
        w = auth_cli("hash-token", &format!("{WRITE}\n")),
        a = auth_cli("hash-token", &format!("{ADMIN}\n")),
    )
}

fn rw_body(name: &str, v: f64) -> Vec<u8> {
    let series = vec![(
        Labels::from_pairs([("__name__".to_string(), name.to_string())]),
        vec![Sample {
            t: sextant_model::time::now_ms(),
            v,
        }],
    )];
    sextant_ingest::remote_write::compress_snappy(&sextant_ingest::remote_write::encode_v1(&series))
}

fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[test]
fn scopes_tokens_users_sessions_csrf_cors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = auth_cli("hash-password", &format!("{ALICE_PW}\n"));
    assert!(hash.starts_with("$2"), "{hash}");
    let s = start(dir.path(), &auth_config(&hash), &[], &[]);
    let c = no_redirects();
    let q = s.url("/api/v1/query?query=up");

    // Health stays open; everything else needs credentials.
    assert_eq!(c.get(s.url("/-/healthy")).send().unwrap().status(), 200);
    let r = c.get(&q).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"sextant\"");
    assert_eq!(c.get(&q).bearer_auth("nope").send().unwrap().status(), 401);

    // Scopes: read queries, write ingests, admin does both and administers.
    assert_eq!(c.get(&q).bearer_auth(READ).send().unwrap().status(), 200);
    assert_eq!(c.get(&q).bearer_auth(WRITE).send().unwrap().status(), 403);
    assert_eq!(c.get(&q).bearer_auth(ADMIN).send().unwrap().status(), 200);
    let rw = |tok: &str| {
        c.post(s.url("/api/v1/write"))
            .bearer_auth(tok)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .body(rw_body("auth_e2e_total", 1.0))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(rw(WRITE), 204);
    assert_eq!(rw(READ), 403);
    let silence = serde_json::json!({
        "matchers": [{"name": "alertname", "value": "X", "isRegex": false}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "e2e", "comment": "auth test"
    });
    let post_silence = |tok: &str| {
        c.post(s.url("/api/v2/silences"))
            .bearer_auth(tok)
            .json(&silence)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(post_silence(READ), 403);
    assert_eq!(post_silence(WRITE), 403);
    assert_eq!(post_silence(ADMIN), 200);
    let snap = |tok: &str| {
        c.post(s.url("/api/v1/admin/tsdb/snapshot"))
            .bearer_auth(tok)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(snap(READ), 403);
    assert_eq!(snap(ADMIN), 200);

    // Basic auth users (bcrypt).
    assert_eq!(
        c.get(&q)
            .basic_auth("alice", Some(ALICE_PW))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(&q)
            .basic_auth("alice", Some("wrong"))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.post(s.url("/api/v1/write"))
            .basic_auth("alice", Some(ALICE_PW))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .body(rw_body("auth_alice_total", 1.0))
            .send()
            .unwrap()
            .status(),
        204,
        "alice has admin, which implies write"
    );

    // Influx clients: `Token` scheme (v2), u/p query parameters and basic auth (v1).
    let line = "auth_influx,host=a value=1\n";
    let influx = |req: reqwest::blocking::RequestBuilder| req.body(line).send().unwrap().status();
    assert_eq!(
        influx(
            c.post(s.url("/api/v2/write?bucket=b"))
                .header("Authorization", format!("Token {WRITE}"))
        ),
        204
    );
    assert_eq!(
        influx(c.post(s.url(&format!("/write?db=x&u=ci&p={WRITE}")))),
        204
    );
    assert_eq!(influx(c.post(s.url("/write?db=x&u=ci&p=wrong"))), 401);
    assert_eq!(
        influx(c.post(s.url("/write?db=x")).basic_auth("ci", Some(WRITE))),
        204
    );
    assert_eq!(influx(c.post(s.url("/write?db=x"))), 401);
    assert_eq!(c.get(s.url("/ping")).send().unwrap().status(), 204);

    // The UI: a browser is sent to the login page; logging in sets a strict session cookie.
    let r = c
        .get(s.url("/"))
        .header("Accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=%2F");
    let page = c.get(s.url("/login")).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("name=\"password\""));
    let origin = format!("http://127.0.0.1:{}", s.port);
    let bad = c
        .post(s.url("/login"))
        .header("Origin", &origin)
        .form(&[("username", "alice"), ("password", "nope"), ("next", "/")])
        .send()
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad.headers().get("set-cookie").is_none());
    let evil = c
        .post(s.url("/login"))
        .header("Origin", "https://evil.example")
        .form(&[("username", "alice"), ("password", ALICE_PW)])
        .send()
        .unwrap();
    assert_eq!(evil.status(), 403, "login CSRF");
    let ok = c
        .post(s.url("/login"))
        .header("Origin", &origin)
        .form(&[
            ("username", "alice"),
            ("password", ALICE_PW),
            ("next", "/#/explore"),
        ])
        .send()
        .unwrap();
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()["location"], "/#/explore");
    let set = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("sextant_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(!set.contains("Secure"), "no Secure without TLS: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    assert_eq!(
        c.get(&q).header("Cookie", &cookie).send().unwrap().status(),
        200
    );
    // CSRF: a state-changing call with the cookie needs a same-origin Origin (or Referer).
    let dash = serde_json::json!({"title": "csrf", "panels": []});
    let post_dash = |hdr: Option<(&str, &str)>| {
        let mut r = c
            .post(s.url("/api/sextant/dashboards"))
            .header("Cookie", &cookie)
            .json(&dash);
        if let Some((k, v)) = hdr {
            r = r.header(k, v);
        }
        r.send().unwrap()
    };
    assert_eq!(post_dash(None).status(), 403);
    assert_eq!(
        post_dash(Some(("Origin", "https://evil.example"))).status(),
        403
    );
    let same = post_dash(Some(("Origin", &origin)));
    assert!(
        same.status() != 403 && same.status() != 401,
        "same-origin cookie call refused: {}",
        same.status()
    );
    let referer = format!("{origin}/#/dashboards");
    let same = post_dash(Some(("Referer", &referer)));
    assert!(same.status() != 403 && same.status() != 401);
    // Logout ends the session.
    let out = c
        .post(s.url("/logout"))
        .header("Cookie", &cookie)
        .header("Origin", &origin)
        .send()
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        c.get(&q).header("Cookie", &cookie).send().unwrap().status(),
        401
    );

    // CORS: only allow-listed origins get Access-Control headers.
    let pre = |o: &str| {
        c.request(reqwest::Method::OPTIONS, s.url("/api/v1/query"))
            .header("Origin", o)
            .header("Access-Control-Request-Method", "GET")
            .send()
            .unwrap()
    };
    let r = pre("https://grafana.example.com");
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://grafana.example.com"
    );
    let r = pre("https://evil.example");
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = c
        .get(&q)
        .bearer_auth(READ)
        .header("Origin", "https://evil.example")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // A cross-site POST is refused even with valid credentials.
    let r = c
        .post(s.url("/api/v1/write"))
        .bearer_auth(WRITE)
        .header("Origin", "https://evil.example")
        .body(rw_body("x", 1.0))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);

    // The CLI clients send SEXTANT_TOKEN.
    let server = s.url("");
    let push = |tok: Option<&str>| {
        let mut cmd = Command::new(bin());
        cmd.args(["push", "--job", "cli", "--server", &server])
            .env_remove("SEXTANT_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(t) = tok {
            cmd.env("SEXTANT_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("spawn push");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"auth_cli_pushed 5\n")
            .expect("stdin");
        child.wait_with_output().expect("push").status.success()
    };
    assert!(!push(None), "push without a token must fail");
    assert!(push(Some(WRITE)), "push with SEXTANT_TOKEN");
    let query = |tok: Option<&str>| {
        let mut cmd = Command::new(bin());
        cmd.args(["query", "--server", &server, "auth_cli_pushed"])
            .env_remove("SEXTANT_TOKEN");
        if let Some(t) = tok {
            cmd.env("SEXTANT_TOKEN", t);
        }
        let out = cmd.output().expect("query");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    assert!(!query(None).0, "query without a token must fail");
    let (ok, out) = query(Some(READ));
    assert!(
        ok && out.contains("auth_cli_pushed") && out.contains('5'),
        "{out}"
    );

    // Nothing secret in the log.
    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
    for secret in [
        READ,
        WRITE,
        ADMIN,
        ALICE_PW,
        cookie.trim_start_matches("sextant_session="),
    ] {
        assert!(!log.contains(secret), "log contains a secret: {log}");
    }
}

/// The Pushgateway client of prometheus_client and the OTLP/HTTP exporter of the
/// OpenTelemetry SDK, configured the way their docs say, against a server with auth.
#[test]
fn python_clients_send_credentials() {
    if !have(
        "python3 with prometheus_client and opentelemetry-exporter-otlp-proto-http",
        Command::new("python3").args([
            "-c",
            "import prometheus_client, opentelemetry.exporter.otlp.proto.http.metric_exporter",
        ]),
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = auth_cli("hash-password", &format!("{ALICE_PW}\n"));
    let s = start(dir.path(), &auth_config(&hash), &[], &[]);
    let script = format!(
        r#"
import sys
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

gw = "127.0.0.1:{port}"

def bearer(url, method, timeout, headers, data):
    return default_handler(url, method, timeout, headers + [("Authorization", "Bearer {w}")], data)

def basic(url, method, timeout, headers, data):
    return basic_auth_handler(url, method, timeout, headers, data, "alice", "{pw}")

r = CollectorRegistry()
Gauge("auth_py_bearer", "pushed with a bearer token", registry=r).set(7)
push_to_gateway(gw, job="pyauth", registry=r, handler=bearer)
r2 = CollectorRegistry()
Gauge("auth_py_basic", "pushed with basic auth", registry=r2).set(8)
push_to_gateway(gw, job="pyauth2", registry=r2, handler=basic)
try:
    push_to_gateway(gw, job="pyauth3", registry=r2)
    print("unauthenticated push accepted")
    sys.exit(1)
except Exception as e:
    assert "401" in str(e), e

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import MetricExportResult
import math

def export(headers):
    exp = OTLPMetricExporter(endpoint="http://127.0.0.1:{port}/v1/metrics", headers=headers, timeout=20)
    reader = PeriodicExportingMetricReader(exp, export_interval_millis=math.inf)
    mp = MeterProvider(metric_readers=[reader])
    mp.get_meter("auth").create_counter("auth.otel.requests").add(3)
    ok = reader.force_flush()
    mp.shutdown()
    return ok

assert export({{"Authorization": "Bearer {w}"}}), "OTLP export with a token failed"
print("ok")
"#,
        port = s.port,
        w = WRITE,
        pw = ALICE_PW
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python clients failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The pushed and exported values are stored (read back with the read token).
    let c = common::client();
    let deadline = Instant::now() + Duration::from_secs(30);
    for m in [
        "auth_py_bearer",
        "auth_py_basic",
        "auth_otel_requests_total",
    ] {
        loop {
            let r: serde_json::Value = c
                .get(s.url("/api/v1/query"))
                .query(&[("query", m)])
                .bearer_auth(READ)
                .send()
                .unwrap()
                .json()
                .unwrap();
            if r["data"]["result"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                break;
            }
            assert!(Instant::now() < deadline, "{m} not stored: {r}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn non_loopback_needs_auth_or_an_explicit_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let out = Command::new(bin())
        .args([
            "serve",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .args(["--no-host-metrics", "--no-default-rules"])
        .current_dir(dir.path())
        .output()
        .expect("run sextant");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    // With the flag it serves.
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .args([
            "--no-host-metrics",
            "--insecure-no-auth",
            "--log-level",
            "warn",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let c = common::client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break false;
        }
        if c.get(format!("http://127.0.0.1:{port}/-/ready"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "--insecure-no-auth on 0.0.0.0 did not serve");
}

/// Secrets of receivers (inline, `${VAR}`, `_file`) and of `auth:` appear neither in the log
/// (at debug level) nor in any API answer that shows configuration or receiver state.
#[test]
fn secrets_stay_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slack_secret = "T000/B000/slacksecretpath0005";
    let hook_pw = "webhookpassword0006";
    let env_pw = "smtppasswordfromenv0007";
    let file_tok = "bearerfromfile0008";
    let scrape_pw = "scrapepassword0009";
    let scrape_tok = "scrapebearer0010";
    std::fs::write(dir.path().join("tok"), file_tok).unwrap();
    // A port nobody listens on: deliveries fail, so errors are recorded and shown.
    let dead = free_port();
    let hash = auth_cli("hash-password", &format!("{ALICE_PW}\n"));
    let cfg = format!(
        r##"{auth}
scrape_configs:
  - job_name: secret-basic
    scrape_interval: 1s
    basic_auth:
      username: scraper
      password: {scrape_pw}
    static_configs:
      - targets: ["127.0.0.1:{dead}"]
  - job_name: secret-bearer
    scrape_interval: 1s
    authorization:
      credentials: {scrape_tok}
    static_configs:
      - targets: ["127.0.0.1:{dead}"]
route:
  receiver: all
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: all
    slack_configs:
      - api_url: http://127.0.0.1:{dead}/services/{slack_secret}
        channel: "#ops"
        send_resolved: false
    webhook_configs:
      - url: http://127.0.0.1:{dead}/hook
        http_config:
          basic_auth:
            username: am
            password: {hook_pw}
      - url: http://127.0.0.1:{dead}/hook2
        http_config:
          authorization:
            credentials_file: {tokfile}
    email_configs:
      - to: ops@example.com
        from: am@example.com
        smarthost: 127.0.0.1:{dead}
        auth_username: am
        auth_password: ${{SX_E2E_SMTP_PW}}
        require_tls: false
"##,
        auth = auth_config(&hash),
        tokfile = dir.path().join("tok").display(),
    );
    let s = start(
        dir.path(),
        &cfg,
        &["--log-level", "debug"],
        &[("SX_E2E_SMTP_PW", env_pw)],
    );
    let c = common::client();
    // Fire an alert so every integration tries (and fails) to deliver.
    let alert = serde_json::json!([{"labels": {"alertname": "SecretTest"}, "startsAt": "2020-01-01T00:00:00Z"}]);
    let r = c
        .post(s.url("/api/v2/alerts"))
        .bearer_auth(WRITE)
        .json(&alert)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // Wait until receiver failures are visible.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: serde_json::Value = c
            .get(s.url("/api/sextant/receivers"))
            .bearer_auth(READ)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let failed = v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| r["failures"].as_u64() > Some(0))
                    .count()
            })
            .unwrap_or(0);
        if failed >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "receivers did not fail yet: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let secrets = [
        slack_secret,
        hook_pw,
        env_pw,
        file_tok,
        READ,
        WRITE,
        ADMIN,
        ALICE_PW,
    ];
    let mut answers = String::new();
    for p in [
        "/api/v2/status",
        "/api/v2/receivers",
        "/api/sextant/receivers",
        "/api/sextant/notifications",
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/buildinfo",
        "/api/v2/alerts",
        "/api/v1/targets",
        "/api/v1/status/tsdb",
        "/metrics",
        "/",
    ] {
        let r = c.get(s.url(p)).bearer_auth(ADMIN).send().unwrap();
        assert!(r.status().is_success(), "{p}: {}", r.status());
        answers.push_str(&r.text().unwrap());
    }
    assert!(
        answers.contains("secret-basic") && answers.contains("secret-bearer"),
        "the scrape targets should be listed"
    );
    assert!(
        answers.contains("<secret>"),
        "the status config should show redacted values"
    );
    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
    for secret in secrets {
        assert!(
            !answers.contains(secret),
            "an API answer contains {secret:?}"
        );
        assert!(!log.contains(secret), "the log contains {secret:?}:\n{log}");
    }
}

/// Failed passwords lock the user name out with a doubling delay (429 + Retry-After, for basic
/// auth and the login form alike), counted in `sextant_auth_failures_total`; once the lock runs
/// out the right password works again and clears the count.
#[test]
fn failed_passwords_lock_the_user_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = auth_cli("hash-password", &format!("{ALICE_PW}\n"));
    let s = start(dir.path(), &auth_config(&hash), &[], &[]);
    let c = no_redirects();
    let q = s.url("/api/v1/query?query=up");
    let basic = |pw: &str| c.get(&q).basic_auth("alice", Some(pw)).send().unwrap();
    for i in 0..5 {
        assert_eq!(basic("wrong").status(), 401, "attempt {i}");
    }
    // Locked: even the right password waits; the answer says how long.
    let r = basic(ALICE_PW);
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert!(r.text().unwrap().contains("too many failed logins"));
    // The login form refuses the locked name too; other users and tokens are unaffected.
    let form = c
        .post(s.url("/login"))
        .form(&[("username", "alice"), ("password", ALICE_PW), ("next", "/")])
        .send()
        .unwrap();
    assert_eq!(form.status(), 429);
    assert!(form.headers().contains_key("retry-after"));
    assert_eq!(c.get(&q).bearer_auth(READ).send().unwrap().status(), 200);
    // After the lock: the right password works and resets the count.
    let deadline = Instant::now() + Duration::from_secs(20);
    while basic(ALICE_PW).status() != 200 {
        assert!(Instant::now() < deadline, "lock never ran out");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(basic("wrong").status(), 401, "count was reset");
    let m = c
        .get(s.url("/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let val = |reason: &str| -> f64 {
        let key = format!("sextant_auth_failures_total{{reason=\"{reason}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("{key} missing"))
            .parse()
            .unwrap()
    };
    assert!(val("bad_password") >= 6.0);
    assert!(val("locked_out") >= 2.0);
    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
    assert!(!log.contains(ALICE_PW), "password in the log");
}

/// `/-/reload` re-reads `auth:`: a removed token is refused at once, a new one works, and the
/// login session of a user that still exists survives.
#[test]
fn reload_changes_credentials_and_keeps_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = auth_cli("hash-password", &format!("{ALICE_PW}\n"));
    let s = start(dir.path(), &auth_config(&hash), &[], &[]);
    let c = no_redirects();
    let q = s.url("/api/v1/query?query=up");
    let login = c
        .post(s.url("/login"))
        .form(&[("username", "alice"), ("password", ALICE_PW), ("next", "/")])
        .send()
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(c.get(&q).bearer_auth(READ).send().unwrap().status(), 200);
    // The read token is replaced by a new one.
    const NEW: &str = "sxt_new_read_token_e2e_0009";
    let new_cfg = auth_config(&hash).replace(
        &auth_cli("hash-token", &format!("{READ}\n")),
        &auth_cli("hash-token", &format!("{NEW}\n")),
    );
    std::fs::write(dir.path().join("sextant.yml"), new_cfg).unwrap();
    let r = c
        .post(s.url("/-/reload"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    assert_eq!(c.get(&q).bearer_auth(READ).send().unwrap().status(), 401);
    assert_eq!(c.get(&q).bearer_auth(NEW).send().unwrap().status(), 200);
    assert_eq!(
        c.get(&q).header("Cookie", &cookie).send().unwrap().status(),
        200,
        "alice's session survives the reload"
    );
    // A broken auth section is refused and the running credentials stay.
    std::fs::write(
        dir.path().join("sextant.yml"),
        "auth:\n  tokens:\n    - name: x\n      hash: nothex\n      scopes: [read]\n",
    )
    .unwrap();
    let r = c
        .post(s.url("/-/reload"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert!(!r.status().is_success());
    assert_eq!(c.get(&q).bearer_auth(NEW).send().unwrap().status(), 200);
}
