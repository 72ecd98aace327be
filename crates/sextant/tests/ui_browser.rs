//! The web UI in a real browser: starts `sextant serve` (temp data dir, free port) with a scrape
//! of itself and an always-firing rule, writes known series over remote write, then runs the
//! Chromium scenarios in ui/e2e (playwright-core) against it and checks every scenario passed.
//! A second test runs the UI's unit tests (vitest). Both skip with a plain message when the UI is
//! not built, its node_modules or /usr/bin/chromium are missing, unless SEXTANT_REQUIRE_PEERS=1
//! (then they fail).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{client, free_port, remote_write_v1, Server};
use sextant_model::{Labels, Sample};

const CHROMIUM: &str = "/usr/bin/chromium";

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui")
}

/// Returns false (after printing why) when a prerequisite is missing and peers are optional.
fn prerequisites(need_browser: bool) -> bool {
    let ui = ui_dir();
    let mut missing = Vec::new();
    if Command::new("node")
        .arg("--version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        missing.push("node (apt-get install nodejs npm)".to_string());
    }
    if !ui.join("node_modules/vitest").is_dir() {
        missing.push("ui/node_modules (cd ui && npm ci)".to_string());
    }
    if need_browser {
        if !ui.join("dist/index.html").is_file() {
            missing.push("ui/dist (cd ui && npm run build, then rebuild sextant)".to_string());
        }
        if !ui.join("node_modules/playwright-core").is_dir() {
            missing.push("ui/node_modules/playwright-core (cd ui && npm ci)".to_string());
        }
        if !Path::new(CHROMIUM).exists() {
            missing.push(format!("{CHROMIUM} (apt-get install chromium)"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("missing {}", missing.join(", "));
    if std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{msg} (required because SEXTANT_REQUIRE_PEERS=1)");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

const COUNTER: &str = "ui_test_requests_total";
const COUNTER_SERIES: usize = 3;
const GAUGE: &str = "ui_test_temperature";
const GAUGE_VALUES: [(&str, f64, &str); 2] =
    [("kitchen", 21.5, "21.5"), ("office", 19.25, "19.25")];
const ALERT: &str = "UiE2EAlwaysFiring";

/// Writes 3 counter series and 2 gauge series, one sample every 15 s over the last 30 minutes.
fn write_fixture(base: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let times: Vec<i64> = (0..=120).map(|i| now - 30 * 60_000 + i * 15_000).collect();
    let mut series = Vec::new();
    for i in 0..COUNTER_SERIES {
        let labels = Labels::from_pairs([
            ("__name__", COUNTER.to_string()),
            ("job", "ui".to_string()),
            ("instance", format!("web-{}", i + 1)),
        ]);
        let samples = times
            .iter()
            .enumerate()
            .map(|(k, &t)| Sample::new(t, (k * (i + 1) * 10) as f64))
            .collect();
        series.push((labels, samples));
    }
    for (room, v, _) in GAUGE_VALUES {
        let labels = Labels::from_pairs([("__name__", GAUGE), ("job", "ui"), ("room", room)]);
        series.push((labels, times.iter().map(|&t| Sample::new(t, v)).collect()));
    }
    let status =
        remote_write_v1(&client(), &format!("{base}/api/v1/write"), &series).expect("remote write");
    assert_eq!(status, 204, "remote write answered {status}");
}

#[test]
fn browser_scenarios() {
    if !prerequisites(true) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("ui.yml"),
        format!(
            "groups:\n  - name: ui-e2e\n    interval: 1s\n    rules:\n      - alert: {ALERT}\n        expr: vector(1)\n        labels: {{severity: info}}\n        annotations: {{summary: Always firing for the browser test}}\n"
        ),
    )
    .expect("rule file");
    let config = dir.path().join("sextant.yml");
    std::fs::write(
        &config,
        // Two scrape jobs, so a dashboard variable over `label_values(up, job)` has a choice.
        format!(
            "scrape_configs:\n  - job_name: sextant\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n  - job_name: sextant-again\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("config");
    let data = dir.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .arg("--rules")
        .arg(&rules)
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
    let mut server = Server { child, port };
    server.wait_ready(Duration::from_secs(60));
    let base = server.url("");

    let index = client()
        .get(server.url("/"))
        .send()
        .expect("GET /")
        .text()
        .expect("body");
    assert!(
        index.contains("<div id=\"app\">"),
        "the sextant binary was built without the UI (ui/dist appeared later?); rebuild it: {index}"
    );
    write_fixture(&base);

    let fixture = serde_json::json!({
        "counter": {"name": COUNTER, "series": COUNTER_SERIES},
        "gauge": {
            "name": GAUGE,
            "label": "room",
            "values": GAUGE_VALUES.iter().map(|(r, _, s)| (r.to_string(), serde_json::Value::from(*s))).collect::<serde_json::Map<_, _>>(),
        },
        "alert": ALERT,
    });
    let mut cmd = Command::new("node");
    cmd.arg("e2e/run.mjs")
        .current_dir(ui_dir())
        .env("SEXTANT_URL", &base)
        .env("SEXTANT_E2E_FIXTURE", fixture.to_string())
        .env("CHROMIUM", CHROMIUM);
    if let Ok(only) = std::env::var("SEXTANT_E2E_ONLY") {
        cmd.arg(only);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node e2e/run.mjs");
    // A hung browser must not hang the test suite: kill the runner after 10 minutes.
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(600)).is_err() {
            eprintln!("e2e runner still running after 10 minutes; killing it");
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    // Echo scenario results as they come.
    let mut stdout = String::new();
    if let Some(out) = child.stdout.take() {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            stdout.push_str(&line);
            stdout.push('\n');
        }
    }
    let status = child.wait().expect("wait for the e2e runner");
    let _ = done_tx.send(());
    let _ = watchdog.join();
    assert!(
        status.success(),
        "browser scenarios failed ({status}):\n{stdout}"
    );
    if std::env::var("SEXTANT_E2E_ONLY").is_ok() {
        return;
    }
    assert!(
        stdout.contains("ok explore graph, time range and query stats"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok create and expire a silence"),
        "{stdout}"
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}

#[test]
fn ui_unit_tests() {
    if !prerequisites(false) {
        return;
    }
    let out = Command::new("node")
        .args(["node_modules/vitest/vitest.mjs", "run"])
        .current_dir(ui_dir())
        .env("CI", "1")
        .output()
        .expect("run vitest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vitest failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("passed"), "{stdout}");
}
