//! End-to-end tests of dashboards against the real binary: `sextant dashboards import` on real
//! community Grafana dashboards (files and `--server`), `dashboards check`, and `serve` with a
//! user dashboards directory that is re-read on change and on `/-/reload`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dashboards/testdata/grafana")
        .join(name)
}

fn sextant(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .output()
        .expect("run sextant");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn get_json(url: &str) -> serde_json::Value {
    let r = client().get(url).send().expect("GET");
    r.json().expect("json")
}

#[test]
fn import_files_then_serve_them_and_post_to_a_server() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dash");
    let out_s = out.to_str().unwrap();
    let full = testdata("rfmoz-node-exporter-full.json");
    let several = testdata("kube-prometheus-several.json");
    let (ok, stdout, stderr) = sextant(&[
        "dashboards",
        "import",
        full.to_str().unwrap(),
        several.to_str().unwrap(),
        "--out",
        out_s,
    ]);
    assert!(ok, "{stderr}");
    // One file per dashboard, named by uid; the per-dashboard report on stderr.
    for uid in [
        "rYdddlPWk",
        "alertmanager-overview",
        "9fa0d141-d019-4ad7-8bc5-42196ee308bd",
    ] {
        assert!(out.join(format!("{uid}.yml")).is_file(), "{uid}: {stdout}");
    }
    assert!(
        stderr.contains("\"Node Exporter Full\" → uid rYdddlPWk, 141 panels"),
        "{stderr}"
    );
    assert!(
        stderr.contains("variable \"ds_prometheus\" (data source) dropped"),
        "{stderr}"
    );
    // The written files are valid Sextant dashboards.
    let (ok, stdout, stderr) = sextant(&["dashboards", "check", &format!("{out_s}/rYdddlPWk.yml")]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("uid rYdddlPWk, 141 panels"), "{stdout}");
    // Without --out: YAML on stdout.
    let (ok, stdout, _) = sextant(&[
        "dashboards",
        "import",
        testdata("kube-prometheus-nodes.json").to_str().unwrap(),
    ]);
    assert!(ok);
    assert!(stdout.starts_with("uid: "), "{stdout}");
    assert!(stdout.contains("title: Node Exporter / Nodes"));
    // Bad input fails with the file named.
    std::fs::write(tmp.path().join("bad.json"), "{\"nothing\": true}").unwrap();
    let (ok, _, stderr) = sextant(&[
        "dashboards",
        "import",
        tmp.path().join("bad.json").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("bad.json: an object that is neither a Grafana dashboard"),
        "{stderr}"
    );

    // Serve the directory.
    let data = tmp.path().join("data");
    let mut s = Server::start(&data, &["--dashboards", out_s]);
    s.wait_ready(Duration::from_secs(60));
    let list = get_json(&s.url("/api/sextant/dashboards"));
    let items = list["data"].as_array().unwrap();
    let source = |uid: &str| {
        items
            .iter()
            .find(|d| d["uid"] == uid)
            .map(|d| d["source"].as_str().unwrap().to_string())
    };
    assert_eq!(source("rYdddlPWk").as_deref(), Some("file"));
    assert_eq!(source("host").as_deref(), Some("builtin"));
    let d = get_json(&s.url("/api/sextant/dashboards/rYdddlPWk"));
    assert_eq!(
        d["data"]["dashboard"]["panels"].as_array().unwrap().len(),
        141
    );

    // A new file appears after /-/reload (and after the poll).
    std::fs::write(
        out.join("extra.yml"),
        "title: Extra\npanels:\n  - targets: [{expr: up}]\n",
    )
    .unwrap();
    let r = client().post(s.url("/-/reload")).send().unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    assert_eq!(
        get_json(&s.url("/api/sextant/dashboards/extra"))["data"]["meta"]["source"],
        "file"
    );
    std::fs::write(out.join("extra2.yml"), "title: Extra 2\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client()
            .get(s.url("/api/sextant/dashboards/extra2"))
            .send()
            .unwrap();
        if r.status().is_success() {
            break;
        }
        assert!(Instant::now() < deadline, "extra2 not picked up by polling");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A broken file makes /-/reload fail with file:line, and the dashboards stay.
    std::fs::write(
        out.join("broken.yml"),
        "title: B\npanels:\n  - type: nope\n",
    )
    .unwrap();
    let r = client().post(s.url("/-/reload")).send().unwrap();
    assert!(!r.status().is_success());
    let msg = r.text().unwrap();
    assert!(msg.contains("broken.yml:3:"), "{msg}");
    assert_eq!(
        get_json(&s.url("/api/sextant/dashboards/extra"))["status"],
        "success"
    );
    std::fs::remove_file(out.join("broken.yml")).unwrap();

    // --server: the running server converts and stores.
    let url = s.url("");
    let k8s = testdata("kube-prometheus-k8s-resources-cluster.json");
    let (ok, stdout, stderr) = sextant(&[
        "dashboards",
        "import",
        k8s.to_str().unwrap(),
        "--server",
        &url,
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("saved efa86fd1d0c121a26444b636a3f509a8"),
        "{stdout}"
    );
    assert!(
        stderr.contains("transformations are not supported"),
        "{stderr}"
    );
    let d = get_json(&s.url("/api/sextant/dashboards/efa86fd1d0c121a26444b636a3f509a8"));
    assert_eq!(d["data"]["meta"]["source"], "db");
    assert_eq!(
        d["data"]["dashboard"]["panels"].as_array().unwrap().len(),
        22
    );
    // The store survives a restart.
    assert!(s.terminate().success());
    let mut s = Server::start(&data, &["--dashboards", out_s]);
    s.wait_ready(Duration::from_secs(60));
    let d = get_json(&s.url("/api/sextant/dashboards/efa86fd1d0c121a26444b636a3f509a8/versions"));
    assert_eq!(d["data"][0]["message"], "imported from Grafana");
    assert!(data.join("dashboards.db").is_file());
}

#[test]
fn serve_refuses_a_broken_dashboards_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dash");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.yml"), "title: A\nrefresh: often\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "serve",
            "--no-host-metrics",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .arg("--dashboards")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a.yml:2: refresh: invalid duration \"often\""),
        "{err}"
    );
    // The same directory from sextant.yml (relative to it), and `check config` reads it too.
    std::fs::write(
        tmp.path().join("sextant.yml"),
        "dashboards:\n  path: dash\n",
    )
    .unwrap();
    let cfg = tmp.path().join("sextant.yml");
    let (ok, _, stderr) = sextant(&["check", "config", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("a.yml:2: dashboards: refresh: invalid duration"),
        "{stderr}"
    );
    std::fs::write(dir.join("a.yml"), "title: A\nrefresh: 1m\n").unwrap();
    let (ok, _, stderr) = sextant(&["check", "config", cfg.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let mut s = Server::start(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    s.wait_ready(Duration::from_secs(60));
    let d = get_json(&s.url("/api/sextant/dashboards/a"));
    assert_eq!(d["data"]["meta"]["source"], "file");
    assert_eq!(d["data"]["dashboard"]["refresh"], "1m");
}

/// Every query of the built-in dashboards runs against a real `serve` (host collector and
/// self-monitoring on); each returns series except the panels whose data needs something this
/// test does not set up (alerts, process groups, scrape targets, failures, notifications).
#[test]
fn builtin_dashboards_query_real_data() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .args([
            "--self-monitor-interval",
            "1s",
            "--host-metrics-interval",
            "1s",
            "--log-level",
            "warn",
        ])
        .spawn()
        .unwrap();
    let mut s = Server { child, port };
    s.wait_ready(Duration::from_secs(60));
    let c = client();
    let run = |expr: &str| -> serde_json::Value {
        c.post(s.url("/api/v1/query"))
            .form(&[("query", expr)])
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    // Wait for two rounds of host metrics and self-monitoring, and a few query requests.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = run("count(rate(node_cpu_seconds_total[1m])) and count(rate(sextant_http_requests_total{handler=\"/api/v1/query\"}[1m]) > 0)");
        if r["data"]["result"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        assert!(Instant::now() < deadline, "no host/self metrics: {r}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let may_be_empty = [
        "alerts/Firing by severity",
        "alerts/Firing alerts by severity",
        "alerts/Alerts by name",
        "alerts/Currently firing",
        "host/CPU by process group",
        "host/Memory by process group",
        "host/Process groups",
        "sextant/HTTP errors",
        "sextant/Rule evaluations",
        "sextant/Notifications",
        "sextant/Compactions and WAL problems",
        "sextant/Rejected writes",
        "targets/",
        // Needs LLM telemetry; tests/genai.rs checks every query of it with real data.
        "llm/",
        // Needs `sextant run` results; tests/run_cmd.rs checks every query of it with real data.
        "jobs/",
        // Needs a forge; tests/forge.rs checks every query of it against the fixture server.
        "forge/",
        // Probes, job runs and alerts: proven with real data by tests/probes.rs.
        "fleet/",
        // Needs agent events; crates/sextant/tests/agent_events.rs checks every panel with data.
        "agents/",
        // JUnit results and coverage: crates/sextant/tests/junit.rs checks them with data.
        "tests/",
    ];
    let mut checked = 0;
    for d in sextant_dashboards::builtin().unwrap() {
        for p in &d.panels {
            for t in &p.targets {
                let expr = t
                    .expr
                    .replace("$__rate_interval", "1m")
                    .replace("$instance", ".*")
                    .replace("$groupname", ".*")
                    .replace("$severity", ".*")
                    .replace("$job", ".*")
                    .replace("$repo", ".*")
                    .replace("$agent", ".*")
                    .replace("$role", ".*");
                let r = run(&expr);
                assert_eq!(r["status"], "success", "{}/{}: {expr}: {r}", d.uid, p.title);
                let key = format!("{}/{}", d.uid, p.title);
                if !may_be_empty.iter().any(|m| key.starts_with(m)) {
                    let n = r["data"]["result"].as_array().map(Vec::len).unwrap_or(0);
                    assert!(n > 0, "{key}: {expr} returned nothing");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 60, "{checked}");
}
