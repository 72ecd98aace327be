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
