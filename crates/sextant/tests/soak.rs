//! The short form of the soak (bench/soak.py; the long form is bench/soak.sh): the real binary
//! with its embedded defaults (built-in rules and dashboards, self-monitoring, host metrics)
//! takes steady remote_write ingest and every built-in dashboard query for two minutes, is
//! killed with SIGKILL at 1/3 and stopped with SIGTERM at 2/3, and must keep every acknowledged
//! sample, answer every query and fail no rule evaluation.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn short_soak_loses_nothing_across_kill_and_restart() {
    if !common::have("python3", Command::new("python3").arg("--version")) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("soak.json");
    let status = Command::new("python3")
        .arg(root.join("bench/soak.py"))
        .args(["--binary", env!("CARGO_BIN_EXE_sextant")])
        .args(["--minutes", "2", "--series", "500", "--interval-s", "1"])
        .args(["--rss-every-s", "2", "--query-pause-s", "0.2"])
        .arg("--out")
        .arg(&json)
        .status()
        .expect("run bench/soak.py");
    let text = std::fs::read_to_string(&json).expect("soak result");
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    eprintln!("{text}");
    assert!(r["fatal"].as_array().unwrap().is_empty(), "{}", r["fatal"]);
    // On a loaded machine a round may be late, but most of two minutes of writes must land.
    let acked = r["samples_acked"].as_u64().unwrap();
    assert!(acked >= 500 * 60, "only {acked} samples acknowledged");
    assert_eq!(
        r["samples_lost"], 0,
        "acknowledged samples missing after restarts"
    );
    assert_eq!(r["stored_never_sent"], 0);
    assert_eq!(r["restarts"].as_array().unwrap().len(), 2);
    assert_eq!(
        r["queries"]["errors"], 0,
        "{}",
        r["queries"]["first_errors"]
    );
    assert!(r["queries"]["ok"].as_u64().unwrap() >= 100);
    assert_eq!(r["rule_evaluation_failures"], 0.0);
    // Two minutes cannot show a leak; this only catches runaway growth after the last restart.
    let growth = r["rss_mb"]["growth_after_stable"].as_f64().unwrap();
    assert!(
        growth < 1.0,
        "RSS doubled after the head was stable: {growth}"
    );
    assert!(status.success(), "bench/soak.py failed: {text}");
}
