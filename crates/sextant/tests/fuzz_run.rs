//! A short, bounded run of every cargo-fuzz target (`fuzz/`), so CI fuzzes each decoder and
//! parser on every run from the plain `cargo test --workspace`. Needs `cargo fuzz` (installed by
//! `.ci/run`); without it the test skips with a message, or fails under
//! `SEXTANT_REQUIRE_PEERS=1` as in CI. Only the stable toolchain exists, so the targets are built
//! with `RUSTC_BOOTSTRAP=1` and `--sanitizer none` (the code is safe Rust: the fuzzer looks for
//! panics, hangs and runaway memory). Seconds per target: env `SEXTANT_FUZZ_SECONDS` (default 15).

mod common;

use std::path::PathBuf;
use std::process::Command;

const TARGETS: &[&str] = &[
    "remote_write_decode",
    "text_parse",
    "openmetrics_parse",
    "influx_parse",
    "otlp_decode",
    "promql_parse",
    "rule_file",
    "sextant_config",
    "alertmanager_config",
    "junit_parse",
    "agent_events",
    "wal_replay",
    "block_open",
    "dashboard_import",
    "remote_read",
];

/// `cargo` from the PATH with the environment `cargo test` gave this test removed, so the
/// fuzz build sees the same environment as one started from a shell and reuses its artifacts
/// in `fuzz/target` instead of rebuilding everything.
fn cargo() -> Command {
    let mut c = Command::new("cargo");
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        let inherited = (k.starts_with("CARGO") && k != "CARGO_HOME")
            || k.starts_with("RUSTUP_TOOLCHAIN")
            || k == "RUST_RECURSION_COUNT"
            || k == "LD_LIBRARY_PATH"
            || k == "OUT_DIR";
        if inherited {
            c.env_remove(&k);
        }
    }
    c.env("RUSTC_BOOTSTRAP", "1");
    c.current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    c
}

#[test]
fn every_fuzz_target_runs_clean_for_a_bounded_time() {
    if !common::have(
        "cargo-fuzz (cargo install cargo-fuzz)",
        cargo().args(["fuzz", "--version"]),
    ) {
        return;
    }
    let secs: u64 = std::env::var("SEXTANT_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let st = cargo()
        .args(["fuzz", "build", "--sanitizer", "none", "-O"])
        .status()
        .expect("cargo fuzz build");
    assert!(st.success(), "cargo fuzz build failed");
    let mut failed = Vec::new();
    for t in TARGETS {
        // A scratch corpus seeded from the committed seeds, so runs do not grow the repo.
        let corpus = tempfile::tempdir().expect("tempdir");
        for e in std::fs::read_dir(root.join("fuzz/seeds").join(t)).expect("seeds") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, corpus.path().join(p.file_name().expect("name"))).expect("copy");
        }
        let artifacts = corpus.path().join("artifacts/");
        std::fs::create_dir_all(&artifacts).expect("mkdir");
        let out = cargo()
            .args(["fuzz", "run", "--sanitizer", "none", "-O", t])
            .arg(corpus.path())
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .arg("-max_len=65536")
            .arg(format!("-artifact_prefix={}", artifacts.display()))
            .output()
            .expect("cargo fuzz run");
        let log = String::from_utf8_lossy(&out.stderr);
        let stats = log
            .lines()
            .rev()
            .find(|l| l.contains("Done "))
            .unwrap_or("");
        eprintln!("{t}: {stats}");
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let crash: Vec<String> = std::fs::read_dir(&artifacts)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path().display().to_string())
                        .collect()
                })
                .unwrap_or_default();
            for c in &crash {
                // Keep the input: copy it out of the scratch dir before it is removed.
                let keep = root.join("fuzz/artifacts").join(t);
                let _ = std::fs::create_dir_all(&keep);
                let p = PathBuf::from(c);
                let _ = std::fs::copy(&p, keep.join(p.file_name().unwrap_or_default()));
            }
            eprintln!("--- {t} failed; inputs kept in fuzz/artifacts/{t}/ ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
            failed.push(*t);
        }
    }
    assert!(failed.is_empty(), "fuzz targets found a crash: {failed:?}");
}
