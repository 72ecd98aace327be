//! The binary's lifecycle: `--version`, health and readiness, clean shutdown on SIGTERM and
//! SIGINT with the WAL flushed, and data surviving the restart.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use sextant_model::{Labels, Sample};

#[test]
fn version_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .arg("--version")
        .output()
        .expect("run sextant");
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("sextant "), "unexpected version output: {s}");
}

#[test]
fn health_ready_and_clean_shutdown_keep_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Server::start(dir.path(), &[]);
    s.wait_ready(Duration::from_secs(60));
    let c = client();
    let h = c.get(s.url("/-/healthy")).send().expect("healthy");
    assert_eq!(h.status().as_u16(), 200);
    let now = sextant_model::time::now_ms();
    let ls = Labels::from_pairs([("__name__", "lifecycle_metric"), ("job", "t")]);
    let code = remote_write_v1(
        &c,
        &s.url("/api/v1/write"),
        &[(ls, vec![Sample::new(now, 42.5)])],
    )
    .expect("write");
    assert_eq!(code, 204);
    let status = s.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");

    let mut s = Server::start(dir.path(), &[]);
    s.wait_ready(Duration::from_secs(60));
    let got = export(&c, &s.url(""), "lifecycle_metric");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, vec![(now, 42.5)]);
    let _ = Command::new("kill")
        .args(["-INT", &s.child.id().to_string()])
        .status();
    let st = s.child.wait().expect("wait");
    assert!(st.success(), "exit status after SIGINT: {st}");
}

#[test]
fn query_cli_prints_results_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path(), &[]);
    server.wait_ready(Duration::from_secs(30));
    let t = sextant_model::time::now_ms();
    let series = vec![(
        sextant_model::Labels::from_pairs([("__name__", "cli_test"), ("job", "cli")]),
        vec![sextant_model::Sample::new(t - 1000, 42.5)],
    )];
    assert_eq!(
        remote_write_v1(&client(), &server.url("/api/v1/write"), &series).expect("write"),
        204
    );
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
            .arg("query")
            .args(args)
            .args(["--server", &server.url("")])
            .output()
            .expect("run sextant query")
    };
    let out = run(&["cli_test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("cli_test{job=\"cli\"} => 42.5 @["),
        "{text}"
    );
    let out = run(&["sum(cli_test)", "-o", "json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(j["result"][0]["value"][1], "42.5");
    let out = run(&["sum(", "-o", "json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad_data"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
