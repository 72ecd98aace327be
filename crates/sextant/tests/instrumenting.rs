//! Every example of docs/instrumenting.md runs against a started Sextant: the fenced code
//! blocks tagged `ci:<name>` are read from the doc (so the doc cannot drift from what works),
//! executed with the real clients (Python prometheus_client and OpenTelemetry SDK, Node.js
//! prom-client, curl) with `SEXTANT_URL` set, and the series they produce are checked.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `ci:<name>` code blocks of docs/instrumenting.md, by name.
fn examples() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(root().join("docs/instrumenting.md")).unwrap();
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in doc.lines() {
        match &mut current {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    if let Some(name) = info.split_whitespace().find_map(|w| w.strip_prefix("ci:"))
                    {
                        current = Some((name.to_string(), String::new()));
                    }
                }
            }
            Some((name, body)) => {
                if line.starts_with("```") {
                    let (name, body) = (name.clone(), body.clone());
                    assert!(
                        out.insert(name.clone(), body).is_none(),
                        "two blocks named {name}"
                    );
                    current = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    out
}

fn query(s: &Server, q: &str) -> Vec<Value> {
    let v: Value = client()
        .get(s.url("/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn value(s: &Server, q: &str) -> Option<f64> {
    query(s, q)
        .first()
        .and_then(|x| x["value"][1].as_str())
        .and_then(|v| v.parse().ok())
}

fn wait_value(s: &Server, q: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = value(s, q);
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{q}: want {want}, got {got:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs `prog args` with the example on stdin and SEXTANT_URL set; panics on failure.
fn run(s: &Server, cwd: &Path, prog: &str, args: &[&str], code: &str) {
    let mut child = Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .env("SEXTANT_URL", s.url(""))
        // `sextant` itself on PATH (for `sextant run`), its spool inside the example's dir.
        .env("PATH", path_with_sextant())
        .env("XDG_STATE_HOME", cwd.join(".state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {prog}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(code.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{prog} example failed:\n{code}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// PATH with the directory of the `sextant` binary under test first.
fn path_with_sextant() -> std::ffi::OsString {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sextant"));
    let mut dirs = vec![bin.parent().unwrap().to_path_buf()];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).unwrap()
}

fn start(dir: &Path, extra: &[&str]) -> Server {
    let mut s = Server::start(dir, extra);
    s.wait_ready(Duration::from_secs(60));
    s
}

#[test]
fn every_example_is_tagged() {
    let ex = examples();
    let names: Vec<&str> = ex.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "curl-events",
            "python-otel",
            "python-push",
            "python-scrape",
            "scrape-config",
            "sextant-run",
            "typescript-push"
        ]
    );
}

#[test]
fn python_prometheus_client_push_example() {
    if !have(
        "python3 with prometheus-client",
        Command::new("python3").args(["-c", "import prometheus_client"]),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    run(
        &s,
        dir.path(),
        "python3",
        &["-"],
        &examples()["python-push"],
    );
    wait_value(
        &s,
        r#"agent_tasks_total{job="my-agent",outcome="success"}"#,
        3.0,
    );
    wait_value(
        &s,
        r#"agent_tasks_total{job="my-agent",outcome="failure"}"#,
        1.0,
    );
    wait_value(
        &s,
        r#"agent_llm_request_seconds_count{job="my-agent",model="claude-sonnet-4"}"#,
        1.0,
    );
}

#[test]
fn python_prometheus_client_scrape_example() {
    if !have(
        "python3 with prometheus-client",
        Command::new("python3").args(["-c", "import prometheus_client"]),
    ) {
        return;
    }
    let ex = examples();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("sextant.yml");
    std::fs::write(
        &cfg,
        ex["scrape-config"].replace("127.0.0.1:8000", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    // Killed and reaped when the test ends, whatever happens.
    let _agent = Peer(
        Command::new("python3")
            .args(["-c", &ex["python-scrape"]])
            .env("METRICS_PORT", port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the python agent"),
    );
    let s = start(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    wait_value(&s, r#"up{job="my-agent"}"#, 1.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = value(
            &s,
            r#"agent_llm_tokens_total{job="my-agent",direction="input"}"#,
        );
        if v.is_some_and(|v| v >= 1000.0 && v % 1000.0 == 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent_llm_tokens_total not scraped: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn typescript_prom_client_push_example() {
    let dir = root().join("tests/instrumenting");
    if !have("node", Command::new("node").arg("--version")) {
        return;
    }
    if !dir.join("node_modules/prom-client").exists() {
        if std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("prom-client is required (SEXTANT_REQUIRE_PEERS=1): run npm ci in tests/instrumenting");
        }
        eprintln!("SKIPPED: prom-client is not installed (cd tests/instrumenting && npm ci); the TypeScript example did not run");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path(), &[]);
    // The example has no type annotations: Node runs it as an ES module as it is.
    run(
        &s,
        &dir,
        "node",
        &["--input-type=module"],
        &examples()["typescript-push"],
    );
    wait_value(
        &s,
        r#"agent_ts_tasks_total{job="my-ts-agent",outcome="success"}"#,
        2.0,
    );
    wait_value(
        &s,
        r#"agent_ts_llm_tokens_total{job="my-ts-agent",direction="input"}"#,
        1200.0,
    );
    wait_value(
        &s,
        r#"agent_ts_llm_tokens_total{job="my-ts-agent",direction="output"}"#,
        300.0,
    );
}

#[test]
fn python_opentelemetry_genai_example() {
    if !have(
        "python3 with opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http",
        Command::new("python3").args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http",
        ]),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    run(
        &s,
        dir.path(),
        "python3",
        &["-"],
        &examples()["python-otel"],
    );
    let sel = r#"job="my-agent",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet-4",gen_ai_operation_name="chat""#;
    wait_value(
        &s,
        &format!(r#"gen_ai_client_token_usage_sum{{{sel},gen_ai_token_type="input"}}"#),
        1200.0,
    );
    wait_value(
        &s,
        &format!(r#"gen_ai_client_token_usage_sum{{{sel},gen_ai_token_type="output"}}"#),
        300.0,
    );
    wait_value(
        &s,
        &format!(r#"gen_ai_client_token_usage_count{{{sel},gen_ai_token_type="input"}}"#),
        1.0,
    );
    wait_value(
        &s,
        &format!(
            r#"gen_ai_client_token_usage_bucket{{{sel},gen_ai_token_type="input",le="1024"}}"#
        ),
        0.0,
    );
    wait_value(
        &s,
        &format!(
            r#"gen_ai_client_token_usage_bucket{{{sel},gen_ai_token_type="input",le="4096"}}"#
        ),
        1.0,
    );
    wait_value(
        &s,
        &format!(r#"gen_ai_client_operation_duration_seconds_sum{{{sel}}}"#),
        2.4,
    );
}

#[test]
fn curl_agent_events_example() {
    if !have("curl", Command::new("curl").arg("--version")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    run(&s, dir.path(), "sh", &["-s"], &examples()["curl-events"]);
    let sel = r#"agent="my-agent",role="developer",phase="implement""#;
    wait_value(
        &s,
        &format!(
            r#"sextant_agent_sessions_total{{{sel},model="claude-sonnet-4",outcome="success"}}"#
        ),
        1.0,
    );
    wait_value(
        &s,
        &format!(r#"sextant_agent_tokens_total{{{sel},direction="input"}}"#),
        52000.0,
    );
    wait_value(
        &s,
        r#"sextant_agent_self_eval_total{agent="my-agent",result="pass"}"#,
        1.0,
    );
    wait_value(
        &s,
        r#"sextant_agent_tool_calls_total{agent="my-agent",tool="bash",result="error"}"#,
        1.0,
    );
    // The example carries an event id: running it again counts nothing twice.
    run(&s, dir.path(), "sh", &["-s"], &examples()["curl-events"]);
    wait_value(
        &s,
        &format!(
            r#"sextant_agent_sessions_total{{{sel},model="claude-sonnet-4",outcome="success"}}"#
        ),
        1.0,
    );
}

#[test]
fn sextant_run_pytest_example() {
    if !have(
        "python3 with pytest",
        Command::new("python3").args(["-c", "import pytest"]),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    run(&s, dir.path(), "sh", &["-s"], &examples()["sextant-run"]);
    // The run itself (pushed with its TTL) ...
    wait_value(&s, r#"sextant_job_success{job="agent-tests"}"#, 1.0);
    wait_value(&s, r#"sextant_job_exit_code{job="agent-tests"}"#, 0.0);
    wait_value(
        &s,
        r#"sextant_job_ttl_seconds{job="agent-tests"}"#,
        26.0 * 3600.0,
    );
    // ... and pytest's JUnit report, one passed and one skipped test.
    wait_value(
        &s,
        r#"sum(sextant_test_cases{job="agent-tests",result="passed"})"#,
        1.0,
    );
    wait_value(
        &s,
        r#"sum(sextant_test_cases{job="agent-tests",result="skipped"})"#,
        1.0,
    );
    wait_value(
        &s,
        r#"sum(sextant_test_cases{job="agent-tests",result=~"failed|errored"})"#,
        0.0,
    );
}
