//! The alert manager end to end: Debian's `amtool` talks to Sextant's Alertmanager v2 API
//! (alerts, silences, config check), Debian's `prometheus` uses Sextant as its Alertmanager,
//! and Sextant's rule alerts reach a real Debian `prometheus-alertmanager` through
//! `alerting.alertmanagers` (alongside the built-in one, or alone with
//! `--no-builtin-alertmanager`). Missing peers skip with a message unless SEXTANT_REQUIRE_PEERS=1.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Peer(Child);
impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../alert/testdata/alertmanager.yml"
);

fn amtool(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("amtool")
        .arg(format!("--alertmanager.url={url}"))
        .args(args)
        .output()
        .expect("run amtool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn amtool_against_the_v2_api() {
    if !peer("amtool") {
        return;
    }
    // Our example configuration is valid for Alertmanager's own checker.
    let out = Command::new("amtool")
        .args(["check-config", EXAMPLE])
        .output()
        .expect("amtool check-config");
    assert!(
        out.status.success(),
        "amtool check-config: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--alertmanager-config", EXAMPLE],
    );
    server.wait_ready(Duration::from_secs(60));
    let url = server.url("");

    let (ok, _, err) = amtool(
        &url,
        &[
            "alert",
            "add",
            "alertname=DiskFull",
            "severity=P2",
            "service=db",
            "--annotation=summary=disk is full",
        ],
    );
    assert!(ok, "amtool alert add: {err}");
    let (ok, _, err) = amtool(
        &url,
        &[
            "alert",
            "add",
            "alertname=ServiceDown",
            "severity=P0",
            "service=db",
        ],
    );
    assert!(ok, "amtool alert add: {err}");

    // Both alerts are there; DiskFull is inhibited by ServiceDown (same service).
    let (ok, out, err) = amtool(&url, &["alert", "query", "-o", "json"]);
    assert!(ok, "amtool alert query: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("amtool json");
    let names: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    assert_eq!(
        names,
        ["ServiceDown"],
        "inhibited alerts are hidden by default: {out}"
    );
    let (ok, out, _) = amtool(&url, &["alert", "query", "-i", "-o", "json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("amtool json");
    let disk = v
        .as_array()
        .expect("array")
        .iter()
        .find(|a| a["labels"]["alertname"] == "DiskFull")
        .unwrap_or_else(|| panic!("DiskFull with -i: {out}"));
    assert_eq!(disk["status"]["state"], "suppressed");
    assert_eq!(disk["annotations"]["summary"], "disk is full");
    assert_eq!(disk["receivers"][0]["name"], "tickets");
    assert_eq!(
        disk["status"]["inhibitedBy"].as_array().map(Vec::len),
        Some(1)
    );

    // Silences: add, query, expire.
    let (ok, id, err) = amtool(
        &url,
        &[
            "silence",
            "add",
            "alertname=ServiceDown",
            "--comment=maintenance",
            "--author=tester",
            "--duration=1h",
        ],
    );
    assert!(ok, "amtool silence add: {err}");
    let id = id.trim().to_string();
    assert_eq!(id.len(), 36, "silence id: {id:?}");
    let (ok, out, _) = amtool(&url, &["silence", "query", "-q"]);
    assert!(ok);
    assert_eq!(out.trim(), id);
    let (ok, out, _) = amtool(&url, &["silence", "query", "-o", "json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["createdBy"], "tester");
    assert_eq!(v[0]["comment"], "maintenance");
    assert_eq!(v[0]["status"]["state"], "active");
    // The silenced alert is now hidden from the default query.
    let (ok, out, _) = amtool(&url, &["alert", "query", "-o", "json"]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        "[]",
        "silenced and inhibited alerts hidden: {out}"
    );
    let (ok, out, _) = amtool(&url, &["alert", "query", "-s", "-o", "json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["status"]["silencedBy"][0], id.as_str());

    let (ok, _, err) = amtool(&url, &["silence", "expire", &id]);
    assert!(ok, "amtool silence expire: {err}");
    let (ok, out, _) = amtool(&url, &["silence", "query", "-q"]);
    assert!(ok);
    assert_eq!(out.trim(), "", "expired silences are not listed");
    let (ok, out, _) = amtool(&url, &["silence", "query", "--expired", "-q"]);
    assert!(ok);
    assert_eq!(out.trim(), id);

    // Status and receivers in Alertmanager's shapes.
    let c = client();
    let st: serde_json::Value = c
        .get(server.url("/api/v2/status"))
        .send()
        .and_then(|r| r.json())
        .expect("status");
    assert_eq!(st["cluster"]["status"], "disabled");
    assert!(st["config"]["original"]
        .as_str()
        .unwrap_or("")
        .contains("office-hours"));
    let (ok, out, err) = amtool(&url, &["config", "show"]);
    assert!(ok, "amtool config show: {err}");
    assert!(out.contains("receivers"), "{out}");
    let rs: serde_json::Value = c
        .get(server.url("/api/v2/receivers"))
        .send()
        .and_then(|r| r.json())
        .expect("receivers");
    assert_eq!(rs.as_array().map(Vec::len), Some(3));

    // Bad input is a 400 naming the problem.
    let r = c
        .post(server.url("/api/v2/alerts"))
        .body(r#"[{"labels":{}}]"#)
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap_or_default().contains("label"));
    let r = c
        .post(server.url("/api/v2/silences"))
        .body(r#"{"matchers":[{"name":"a","value":".*","isRegex":true}],"startsAt":"2030-01-01T00:00:00Z","endsAt":"2030-01-02T00:00:00Z","createdBy":"x","comment":"y"}"#)
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);

    // Silences and alerts survive a restart.
    let (ok, id2, _) = amtool(
        &url,
        &["silence", "add", "service=db", "--comment=c", "--author=a"],
    );
    assert!(ok);
    server.terminate();
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--alertmanager-config", EXAMPLE],
    );
    server.wait_ready(Duration::from_secs(60));
    let url = server.url("");
    let (ok, out, _) = amtool(&url, &["silence", "query", "-q"]);
    assert!(ok);
    assert_eq!(out.trim(), id2.trim());
    let (ok, out, _) = amtool(&url, &["alert", "query", "-s", "-i", "-o", "json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{out}");
    server.terminate();
}

#[test]
fn prometheus_sends_alerts_to_sextant() {
    if !peer("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(&dir.path().join("data"), &[]);
    server.wait_ready(Duration::from_secs(60));
    let pport = free_port();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n        labels: {severity: P3}\n        annotations: {summary: 'from prometheus'}\n",
    )
    .expect("rules");
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs:\n        - targets: ['127.0.0.1:{}']\n",
            dir.path().join("rules.yml").display(),
            server.port
        ),
    )
    .expect("config");
    let _prom = Peer(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            // Prometheus' first send happens before its Alertmanager discovery settles (and is
            // dropped); resend soon instead of after the default minute.
            .arg("--rules.alert.resend-delay=1s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let c = client();
    let got = poll(Duration::from_secs(60), || {
        let v: serde_json::Value = c
            .get(server.url("/api/v2/alerts"))
            .send()
            .ok()?
            .json()
            .ok()?;
        let a = v.as_array()?.first()?.clone();
        Some(a)
    })
    .expect("Prometheus' alert reached Sextant's /api/v2/alerts");
    assert_eq!(got["labels"]["alertname"], "AlwaysFiring");
    assert_eq!(got["labels"]["severity"], "P3");
    assert_eq!(got["annotations"]["summary"], "from prometheus");
    assert!(got["generatorURL"]
        .as_str()
        .unwrap_or("")
        .contains("/graph"));
    let groups: serde_json::Value = c
        .get(server.url("/api/v2/alerts/groups"))
        .send()
        .and_then(|r| r.json())
        .expect("groups");
    assert_eq!(groups[0]["receiver"]["name"], "default");
    server.terminate();
}

#[test]
fn rule_alerts_reach_an_external_alertmanager() {
    if !peer("prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let amport = free_port();
    let amcfg = dir.path().join("am.yml");
    std::fs::write(
        &amcfg,
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    )
    .expect("am config");
    let _am = Peer(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", amcfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{amport}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    let alerting = dir.path().join("alerting.yml");
    std::fs::write(
        &alerting,
        format!("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{amport}']\n      timeout: 5s\n"),
    )
    .expect("alerting config");
    let c = client();
    let external_alert = |run: &str| {
        poll(Duration::from_secs(60), || {
            let v: serde_json::Value = c
                .get(format!("http://127.0.0.1:{amport}/api/v2/alerts"))
                .send()
                .ok()?
                .json()
                .ok()?;
            v.as_array()?
                .iter()
                .find(|a| a["labels"]["run"] == run)
                .cloned()
        })
    };
    let start = |run: &str, extra: &[&str]| {
        // $value is printed with Go's %v, as Prometheus does: 1e+06, not 1000000.
        let rules = dir.path().join(format!("rules-{run}.yml"));
        std::fs::write(
            &rules,
            format!("groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: SextantSays\n        expr: vector(1e6)\n        labels: {{severity: P1, run: '{run}'}}\n        annotations: {{summary: 'value {{{{ $value }}}}'}}\n"),
        )
        .expect("rules");
        let mut args = vec![
            "--rules".to_string(),
            rules.to_str().expect("utf-8 path").to_string(),
            "--alerting-config".to_string(),
            alerting.to_str().expect("utf-8 path").to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut server = Server::start(&dir.path().join(format!("data-{run}")), &args);
        server.wait_ready(Duration::from_secs(60));
        server
    };

    // 1. Like Prometheus, alerts go to every Alertmanager: the external one and the built-in one.
    let mut server = start("both", &[]);
    let got = external_alert("both").expect("Sextant's alert reached the external Alertmanager");
    assert_eq!(got["labels"]["alertname"], "SextantSays");
    assert_eq!(got["labels"]["severity"], "P1");
    assert_eq!(got["annotations"]["summary"], "value 1e+06");
    assert_eq!(got["status"]["state"], "active");
    let ours = poll(Duration::from_secs(60), || {
        let v: serde_json::Value = c
            .get(server.url("/api/v2/alerts"))
            .send()
            .ok()?
            .json()
            .ok()?;
        v.as_array()?.first().cloned()
    })
    .expect("the built-in alert manager got the alert too");
    assert_eq!(ours["labels"]["run"], "both");
    assert_eq!(ours["annotations"]["summary"], "value 1e+06");
    server.terminate();

    // 2. With --no-builtin-alertmanager only the external one gets alerts; ours is off.
    let mut server = start("external-only", &["--no-builtin-alertmanager"]);
    let got = external_alert("external-only").expect("alert reached the external Alertmanager");
    assert_eq!(got["labels"]["alertname"], "SextantSays");
    let r = c.get(server.url("/api/v2/alerts")).send().expect("v2 API");
    assert_eq!(
        r.status().as_u16(),
        503,
        "the built-in alert manager is off"
    );
    assert!(
        !dir.path().join("data-external-only/alerts.db").exists(),
        "no alert manager state without the built-in alert manager"
    );
    server.terminate();
}

#[test]
fn config_reload_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("am.yml");
    std::fs::write(&cfg, "route: {receiver: a}\nreceivers: [{name: a}]\n").expect("config");
    let cfg_s = cfg.to_str().expect("utf-8 path").to_string();
    let mut server = Server::start(&dir.path().join("data"), &["--alertmanager-config", &cfg_s]);
    server.wait_ready(Duration::from_secs(60));
    let c = client();
    let names = |c: &reqwest::blocking::Client| -> serde_json::Value {
        c.get(server.url("/api/v2/receivers"))
            .send()
            .and_then(|r| r.json())
            .expect("receivers")
    };
    assert_eq!(names(&c), serde_json::json!([{"name": "a"}]));
    let r = c
        .post(server.url("/api/v2/alerts"))
        .body(r#"[{"labels":{"alertname":"X","team":"b"}}]"#)
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);

    // A broken file is refused and the old configuration stays.
    std::fs::write(&cfg, "route: {receiver: nope}\nreceivers: [{name: a}]\n").expect("config");
    let r = c.post(server.url("/-/reload")).send().expect("reload");
    assert_ne!(r.status().as_u16(), 200);
    assert!(r.text().unwrap_or_default().contains("undefined receiver"));
    assert_eq!(names(&c), serde_json::json!([{"name": "a"}]));

    std::fs::write(
        &cfg,
        "route:\n  receiver: a\n  routes: [{receiver: b, matchers: ['team=\"b\"']}]\nreceivers: [{name: a}, {name: b}]\n",
    )
    .expect("config");
    let r = c.post(server.url("/-/reload")).send().expect("reload");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(names(&c), serde_json::json!([{"name": "a"}, {"name": "b"}]));
    let groups: serde_json::Value = c
        .get(server.url("/api/v2/alerts/groups"))
        .send()
        .and_then(|r| r.json())
        .expect("groups");
    assert_eq!(
        groups[0]["receiver"]["name"], "b",
        "existing alerts are re-routed: {groups}"
    );

    let m = c
        .get(server.url("/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    assert!(m.contains("alertmanager_alerts{state=\"active\"} 1"), "{m}");
    assert!(
        m.contains("alertmanager_alerts_received_total{status=\"firing\"} 1"),
        "{m}"
    );
    server.terminate();
}

#[test]
fn restart_in_group_wait_loses_nothing_and_duplicates_nothing() {
    let (sink, got) = webhook_sink();
    let count = || got.lock().unwrap_or_else(|e| e.into_inner()).len();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("am.yml");
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 4s\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{sink}/hook\n"
        ),
    )
    .expect("config");
    let cfg_s = cfg.to_str().expect("utf-8 path").to_string();
    let data = dir.path().join("data");
    let start = || {
        let mut s = Server::start(&data, &["--alertmanager-config", &cfg_s]);
        s.wait_ready(Duration::from_secs(60));
        s
    };
    let c = client();
    let mut server = start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let post = |s: &Server, ends: &str| {
        let body = format!(
            r#"[{{"labels":{{"alertname":"Down","job":"api"}},"startsAt":"{}","endsAt":"{ends}"}}]"#,
            iso(now)
        );
        let r = c
            .post(s.url("/api/v2/alerts"))
            .body(body)
            .send()
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
    };
    post(&server, &iso(now + 3600));
    // kill -9 in the middle of group_wait.
    std::thread::sleep(Duration::from_secs(1));
    server.kill9();
    assert_eq!(count(), 0);
    let mut server = start();
    assert!(
        poll(Duration::from_secs(30), || (count() >= 1).then_some(())).is_some(),
        "the pending notification was delivered after the restart"
    );
    // Several group intervals later, and across another restart: still exactly one.
    std::thread::sleep(Duration::from_secs(5));
    server.kill9();
    let server = start();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(count(), 1, "no duplicate notification");
    {
        let g = got.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(g[0]["version"], "4");
        assert_eq!(g[0]["status"], "firing");
        assert_eq!(g[0]["groupKey"], "{}:{alertname=\"Down\"}");
        assert_eq!(g[0]["alerts"][0]["labels"]["job"], "api");
    }
    // Resolving sends exactly one resolved notification.
    post(&server, &iso(now + 1));
    assert!(poll(Duration::from_secs(30), || (count() >= 2).then_some(())).is_some());
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(count(), 2);
    assert_eq!(
        got.lock().unwrap_or_else(|e| e.into_inner())[1]["status"],
        "resolved"
    );
}

/// Unix seconds as RFC 3339.
fn iso(secs: u64) -> String {
    sextant_model::time::format_rfc3339_ms(secs as i64 * 1000)
}

#[test]
fn time_interval_locations_agree_with_amtool() {
    if !peer("amtool") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("am.yml");
    // Alertmanager resolves `location` with Go's time.LoadLocation; so must we.
    for (loc, valid) in [
        ("Europe/Berlin", true),
        ("America/New_York", true),
        ("Australia/Lord_Howe", true),
        ("Etc/GMT-2", true),
        ("Local", true),
        ("UTC", true),
        ("", true),
        ("+02:00", false),
        ("Europe/Atlantis", false),
        ("../etc/passwd", false),
    ] {
        std::fs::write(
            &file,
            format!(
                "route:\n  receiver: x\n  routes:\n    - receiver: x\n      mute_time_intervals: [t]\nreceivers:\n  - name: x\ntime_intervals:\n  - name: t\n    time_intervals:\n      - times: [{{start_time: '09:00', end_time: '17:00'}}]\n        location: '{loc}'\n"
            ),
        )
        .expect("write config");
        let theirs = Command::new("amtool")
            .arg("check-config")
            .arg(&file)
            .output()
            .expect("amtool check-config");
        let ours = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["check", "config"])
            .arg(&file)
            .output()
            .expect("sextant check config");
        assert_eq!(
            theirs.status.success(),
            valid,
            "amtool on {loc:?}: {}",
            String::from_utf8_lossy(&theirs.stdout)
        );
        assert_eq!(
            ours.status.success(),
            valid,
            "sextant on {loc:?}: {}{}",
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&ours.stderr)
        );
    }
}
