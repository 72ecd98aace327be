//! Rules in a running `sextant serve`: recording results and `ALERTS` series in storage, the
//! `/api/v1/rules` and `/api/v1/alerts` answers, hot reload (`/-/reload`), and alert `for`
//! state surviving a kill -9 in the middle of `for`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use sextant_model::{Labels, Sample};

fn get_json(url: &str) -> Value {
    client()
        .get(url)
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn write_up(s: &Server, instance: &str, v: f64) {
    let now = sextant_model::time::now_ms();
    let ls = Labels::from_pairs([
        ("__name__", "agent_up"),
        ("job", "fleet"),
        ("instance", instance),
    ]);
    let code = remote_write_v1(
        &client(),
        &s.url("/api/v1/write"),
        &[(ls, vec![Sample::new(now, v)])],
    )
    .expect("write");
    assert_eq!(code, 204);
}

fn alerts(s: &Server) -> Vec<Value> {
    get_json(&s.url("/api/v1/alerts"))["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_rules(dir: &Path, severity: &str, hold: &str) {
    std::fs::write(
        dir.join("agents.yml"),
        format!(
            r#"groups:
  - name: e2e
    interval: 1s
    rules:
      - record: job:agent_up:sum
        expr: sum by (job) (agent_up)
      - alert: AgentDown
        expr: agent_up == 0
        for: {hold}
        labels:
          severity: {severity}
        annotations:
          summary: "{{{{ $labels.instance }}}} is down"
"#
        ),
    )
    .expect("write rules");
}

fn query_value(s: &Server, q: &str) -> Vec<Value> {
    let url = s.url(&format!("/api/v1/query?query={}", urlencode(q)));
    get_json(&url)["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn rules_record_alert_api_and_reload() {
    let data = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    write_rules(rules.path(), "P0", "2s");
    let rules_arg = rules.path().to_string_lossy().to_string();
    let mut s = Server::start(data.path(), &["--rules", &rules_arg]);
    s.wait_ready(Duration::from_secs(60));
    write_up(&s, "a", 0.0);
    write_up(&s, "b", 1.0);

    let a = wait_for("AgentDown to fire", Duration::from_secs(30), || {
        alerts(&s).into_iter().find(|a| a["state"] == "firing")
    });
    assert_eq!(a["labels"]["alertname"], "AgentDown");
    assert_eq!(a["labels"]["instance"], "a");
    assert_eq!(a["labels"]["job"], "fleet");
    assert_eq!(a["labels"]["severity"], "P0");
    assert!(a["labels"].get("__name__").is_none());
    assert_eq!(a["annotations"]["summary"], "a is down");
    assert_eq!(a["value"], "0e+00");
    assert!(a["activeAt"].as_str().unwrap().ends_with('Z'));

    let r = get_json(&s.url("/api/v1/rules"));
    assert_eq!(r["status"], "success");
    let g = &r["data"]["groups"][0];
    assert_eq!(g["name"], "e2e");
    assert_eq!(g["interval"], 1.0);
    assert!(g["file"].as_str().unwrap().ends_with("agents.yml"));
    let rec = &g["rules"][0];
    assert_eq!(rec["type"], "recording");
    assert_eq!(rec["name"], "job:agent_up:sum");
    assert_eq!(rec["query"], "sum by (job) (agent_up)");
    assert_eq!(rec["health"], "ok");
    let al = &g["rules"][1];
    assert_eq!(al["type"], "alerting");
    assert_eq!(al["state"], "firing");
    assert_eq!(al["duration"], 2.0);
    assert_eq!(al["alerts"].as_array().unwrap().len(), 1);
    let only_rec = get_json(&s.url("/api/v1/rules?type=record"));
    assert_eq!(
        only_rec["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let sum = wait_for("recording rule output", Duration::from_secs(10), || {
        let v = query_value(&s, "job:agent_up:sum");
        (!v.is_empty()).then_some(v)
    });
    assert_eq!(sum[0]["metric"]["job"], "fleet");
    assert_eq!(sum[0]["value"][1], "1");
    let firing = wait_for("ALERTS series", Duration::from_secs(10), || {
        let v = query_value(&s, r#"ALERTS{alertname="AgentDown",alertstate="firing"}"#);
        (!v.is_empty()).then_some(v)
    });
    assert_eq!(firing[0]["metric"]["instance"], "a");
    let fs = query_value(&s, r#"ALERTS_FOR_STATE{alertname="AgentDown"}"#);
    assert_eq!(fs.len(), 1);
    let metrics = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("sextant_rule_evaluations_total{") && l.contains("agents.yml;e2e"))
        .unwrap_or_else(|| panic!("no rule evaluation counter in /metrics"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2.0, "{line}");

    // A broken file is refused and the running rules stay.
    std::fs::write(
        rules.path().join("broken.yml"),
        "groups:\n  - name: x\n    rules:\n      - record: y\n        expr: sum(\n",
    )
    .unwrap();
    let resp = client().post(s.url("/-/reload")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    let body = resp.text().unwrap();
    assert!(
        body.contains("broken.yml:4:") && body.contains("could not parse expression"),
        "{body}"
    );
    std::fs::remove_file(rules.path().join("broken.yml")).unwrap();
    // A changed file is picked up.
    write_rules(rules.path(), "P1", "2s");
    let resp = client().post(s.url("/-/reload")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    wait_for("the reloaded severity", Duration::from_secs(30), || {
        alerts(&s)
            .into_iter()
            .find(|a| a["state"] == "firing" && a["labels"]["severity"] == "P1")
    });
    let status = s.terminate();
    assert!(status.success());
}

#[test]
fn pending_alert_keeps_its_for_progress_across_kill9() {
    let data = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    write_rules(rules.path(), "P0", "30s");
    let rules_arg = rules.path().to_string_lossy().to_string();
    let args = [
        "--rules",
        rules_arg.as_str(),
        "--rules-alert-for-grace-period",
        "0s",
    ];
    let mut s = Server::start(data.path(), &args);
    s.wait_ready(Duration::from_secs(60));
    write_up(&s, "a", 0.0);
    let active_at = wait_for("a pending alert 3s old", Duration::from_secs(30), || {
        let a = alerts(&s).into_iter().find(|a| a["state"] == "pending")?;
        let t = sextant_model::time::parse_timestamp_ms(a["activeAt"].as_str()?).ok()?;
        (sextant_model::time::now_ms() - t >= 3000).then_some(t)
    });
    s.kill9();
    let restarted = sextant_model::time::now_ms();
    let mut s = Server::start(data.path(), &args);
    s.wait_ready(Duration::from_secs(60));
    // Without restoring, activeAt would be the first evaluation after the restart.
    let restored = wait_for("the restored alert", Duration::from_secs(30), || {
        let a = alerts(&s).into_iter().find(|a| a["state"] == "pending")?;
        let t = sextant_model::time::parse_timestamp_ms(a["activeAt"].as_str()?).ok()?;
        (t < restarted).then_some(t)
    });
    // Prometheus' rule: the time spent down does not count towards `for`.
    assert!(
        restored >= active_at,
        "restored {restored} < original {active_at}"
    );
    let status = s.terminate();
    assert!(status.success());
}

/// Alertmanager's sections can live in sextant.yml next to Prometheus' (its `global` keys mixed
/// into the same `global:`), and `/-/reload` picks up changes to them.
#[test]
fn alertmanager_sections_in_sextant_yml() {
    let data = tempfile::tempdir().unwrap();
    let cfg = data.path().join("sextant.yml");
    let write = |receiver: &str| {
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 15s\n  resolve_timeout: 3m\nroute:\n  receiver: {receiver}\n  group_by: [alertname]\nreceivers:\n  - name: {receiver}\n    webhook_configs:\n      - url: http://127.0.0.1:9/hook\n"
            ),
        )
        .unwrap()
    };
    write("team-a");
    let cfg_arg = cfg.to_string_lossy().to_string();
    let mut s = Server::start(data.path(), &["--config", &cfg_arg]);
    s.wait_ready(Duration::from_secs(60));
    let names = |s: &Server| -> Vec<String> {
        get_json(&s.url("/api/v2/receivers"))
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(names(&s), vec!["team-a".to_string()]);
    write("team-b");
    let resp = client().post(s.url("/-/reload")).send().unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().unwrap_or_default()
    );
    assert_eq!(names(&s), vec!["team-b".to_string()]);
    // An undefined receiver is refused with its line; the running configuration stays.
    std::fs::write(
        &cfg,
        "route:\n  receiver: nobody\nreceivers:\n  - name: team-c\n",
    )
    .unwrap();
    let resp = client().post(s.url("/-/reload")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    assert!(resp.text().unwrap().contains("sextant.yml:2"));
    assert_eq!(names(&s), vec!["team-b".to_string()]);
    let status = s.terminate();
    assert!(status.success());
}
