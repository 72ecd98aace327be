//! Fleet reports end to end: real data goes into a real `sextant serve` (a scraped target and a
//! dead one, a rule alert, agent events with tokens, JUnit uploads with a flaky test, a push
//! group with probe results); `sextant report` then renders every format, and each number of
//! the JSON report equals what the server's PromQL API returns for the same query at the same
//! times (and, for the headline figures, what simpler independent queries or the known input
//! give). A `reports:` entry in sextant.yml delivers the report to a local webhook receiver.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A webhook sink: answers 200 and keeps every JSON body.

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Instant query at `time` (Unix seconds): key (the `key_labels` values joined like the
/// report does) → value.
fn query_at(s: &Server, expr: &str, time: f64, key_labels: &[String]) -> BTreeMap<String, f64> {
    let r: Value = client()
        .post(s.url("/api/v1/query"))
        .form(&[("query", expr), ("time", &format!("{time:.3}"))])
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null);
    assert_eq!(r["status"], "success", "{expr}: {r}");
    let mut out = BTreeMap::new();
    for x in r["data"]["result"].as_array().cloned().unwrap_or_default() {
        let Some(v) = x["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if !v.is_finite() {
            continue;
        }
        let parts: Vec<&str> = key_labels
            .iter()
            .map(|l| x["metric"][l.as_str()].as_str().unwrap_or(""))
            .collect();
        let key = if parts.iter().all(|p| p.is_empty()) {
            "(none)".to_string()
        } else {
            parts.join(" / ")
        };
        out.insert(key, v);
    }
    out
}

fn report(s: &Server, end: i64, format: &str, out: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["report", "--server", &s.url(""), "--range", "1h"])
        .args(["--end", &end.to_string(), "--format", format, "--output"])
        .arg(out)
        .output()
        .expect("run sextant report");
    assert!(
        o.status.success(),
        "sextant report --format {format}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(out).expect("report file")
}

fn section<'a>(j: &'a Value, id: &str) -> &'a Value {
    j["sections"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no section {id} in {j}"))
}

/// This period's value of the row with `key`.
fn row_value(j: &Value, id: &str, key: &str) -> f64 {
    let s = section(j, id);
    s["rows"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["key"] == key))
        .and_then(|r| r["value"].as_f64())
        .unwrap_or_else(|| panic!("no row {key:?} with a value in {id}: {s}"))
}

const JUNIT_PASS: &str = r#"<testsuite name="unit" tests="3"><testcase classname="pkg" name="a" time="0.1"/><testcase classname="pkg" name="b" time="0.2"/><testcase classname="pkg" name="c" time="0.1"/></testsuite>"#;
const JUNIT_FAIL: &str = r#"<testsuite name="unit" tests="3" failures="1"><testcase classname="pkg" name="a" time="0.1"/><testcase classname="pkg" name="b" time="0.2"><failure message="boom">boom</failure></testcase><testcase classname="pkg" name="c" time="0.1"/></testsuite>"#;

#[test]
fn report_numbers_match_promql_in_every_format_and_scheduled_report_arrives() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (sink, got) = webhook_sink();
    let app = serve_openmetrics("# TYPE app_info gauge\napp_info 1\n# EOF\n");
    let dead = free_port();
    std::fs::write(
        tmp.path().join("alerts.yml"),
        "groups:\n  - name: report-test\n    rules:\n      - alert: ReportTargetDown\n        expr: up{job=\"gone\"} == 0\n        labels:\n          severity: warning\n",
    )
    .unwrap();
    let cfg = tmp.path().join("sextant.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: app
    static_configs: [{{targets: ["127.0.0.1:{app}"]}}]
  - job_name: gone
    static_configs: [{{targets: ["127.0.0.1:{dead}"]}}]
rule_files: [alerts.yml]
route:
  receiver: blackhole
receivers:
  - name: blackhole
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:{sink}/report
reports:
  - name: minutely
    every: 3s
    range: 1h
    format: md
    receiver: hook
"#
        ),
    )
    .unwrap();
    let cfg_s = cfg.display().to_string();
    let mut s = Server::start(
        &tmp.path().join("data"),
        &[
            "--config",
            &cfg_s,
            "--push-interval",
            "1s",
            "--evaluation-interval",
            "1s",
            "--ooo-window",
            "3h",
        ],
    );
    s.wait_ready(Duration::from_secs(60));

    // Agent events with tokens and durations, in two batches so the counters grow between
    // stored samples (events are re-appended every --push-interval).
    let events = json!([
        {"agent": "coder", "model": "claude-sonnet-4", "provider": "anthropic", "outcome": "success",
         "duration_seconds": 30, "tokens": {"input": 1000, "output": 200}, "self_eval": "pass"},
        {"agent": "reviewer", "model": "claude-sonnet-4", "provider": "anthropic", "outcome": "failure",
         "duration_seconds": 300, "tokens": {"input": 500, "output": 50}, "self_eval": "fail"}
    ]);
    let post_events = || {
        let r = client()
            .post(s.url("/api/v1/agent/events"))
            .json(&events)
            .send()
            .expect("post events");
        assert_eq!(r.status().as_u16(), 200, "{:?}", r.text());
    };
    post_events();
    // JUnit: the same commit passes, then fails test b → b is flaky, pass rate 2/3.
    for body in [JUNIT_PASS, JUNIT_FAIL] {
        let r = client()
            .post(s.url("/api/v1/junit?job=ci&commit=c0ffee1"))
            .header("Content-Type", "application/xml")
            .body(body)
            .send()
            .expect("junit upload");
        assert_eq!(r.status().as_u16(), 200, "{:?}", r.text());
    }
    // Probe results through the Pushgateway API.
    let r = client()
        .put(s.url("/metrics/job/blackbox/instance/example"))
        .body("probe_success 1\nprobe_duration_seconds 0.25\n")
        .send()
        .expect("push");
    assert!(r.status().is_success(), "{:?}", r.text());
    // Two back-dated probe results, 62 and 61 minutes ago: they fall in the previous period
    // (the report's end is later than now) and give the trend something to compare.
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let old = format!(
        "probe_success{{job=\"blackbox\",instance=\"example\"}} 0 {}\nprobe_success{{job=\"blackbox\",instance=\"example\"}} 1 {}\n",
        t0 - 3_720_000,
        t0 - 3_660_000
    );
    let r = client()
        .post(s.url("/api/v1/import/prometheus"))
        .body(old)
        .send()
        .expect("import");
    assert!(r.status().is_success(), "{:?}", r.text());
    std::thread::sleep(Duration::from_millis(2500));
    post_events();

    let keys = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    wait_for(
        "the rule alert and the second event batch",
        Duration::from_secs(60),
        || {
            let t = now();
            let alert = query_at(
                &s,
                r#"ALERTS{alertname="ReportTargetDown",alertstate="firing"}"#,
                t,
                &[],
            );
            let tokens = query_at(&s, "sum(increase(sextant_agent_tokens_total[1h]))", t, &[]);
            let flaky = query_at(&s, "sextant_test_flaky", t, &[]);
            // Prices are written for the models seen in usage series, every 10 s.
            let price = query_at(
                &s,
                r#"sextant_llm_price_usd_per_token{model="claude-sonnet-4"}"#,
                t,
                &[],
            );
            (!alert.is_empty()
                && tokens.values().any(|v| *v > 0.0)
                && !flaky.is_empty()
                && !price.is_empty())
            .then_some(())
        },
    );
    // Pin the period's end after the samples seen above and in the past, so no sample lands
    // inside the period after the report runs.
    std::thread::sleep(Duration::from_secs(1));
    let end = now() as i64;
    std::thread::sleep(Duration::from_secs(2));

    let j: Value = serde_json::from_str(&report(&s, end, "json", &tmp.path().join("r.json")))
        .expect("JSON report");
    assert_eq!(j["schema"], 1);
    assert_eq!(j["range"], "1h");
    assert_eq!(j["end_unix"].as_f64(), Some(end as f64));
    assert_eq!(j["previous_end_unix"].as_f64(), Some((end - 3600) as f64));

    // Every row of every section equals the server's answer to the section's query at both
    // times, and every series of those answers is a row.
    for sec in j["sections"].as_array().expect("sections") {
        let q = sec["query"].as_str().expect("query");
        let kl: Vec<String> = sec["key_labels"]
            .as_array()
            .expect("key_labels")
            .iter()
            .map(|k| k.as_str().unwrap_or_default().to_string())
            .collect();
        let now_v = query_at(&s, q, end as f64, &kl);
        let prev_v = query_at(&s, q, (end - 3600) as f64, &kl);
        let rows = sec["rows"].as_array().expect("rows");
        let mut seen = 0;
        for r in rows {
            let key = r["key"].as_str().expect("key");
            assert_eq!(
                r["value"].as_f64(),
                now_v.get(key).copied(),
                "{} {key}",
                sec["id"]
            );
            assert_eq!(
                r["previous"].as_f64(),
                prev_v.get(key).copied(),
                "{} {key}",
                sec["id"]
            );
            seen += 1;
        }
        let expected: std::collections::BTreeSet<&String> =
            now_v.keys().chain(prev_v.keys()).collect();
        assert_eq!(
            seen,
            expected.len(),
            "{}: rows {rows:?} vs {now_v:?} / {prev_v:?}",
            sec["id"]
        );
        if expected.is_empty() {
            assert_eq!(sec["note"], "no data for this period", "{sec}");
        }
    }

    // Headline figures against the known input and simpler independent queries.
    assert_eq!(row_value(&j, "availability", "app"), 1.0);
    assert_eq!(row_value(&j, "availability", "gone"), 0.0);
    assert_eq!(row_value(&j, "probes", "example"), 1.0);
    assert_eq!(row_value(&j, "alerts", "ReportTargetDown / warning"), 1.0);
    assert!(
        (row_value(&j, "tests", "ci") - 2.0 / 3.0).abs() < 1e-12,
        "{j}"
    );
    assert_eq!(row_value(&j, "flaky_tests", "ci / unit / pkg / b"), 1.0);
    assert_eq!(section(&j, "flaky_tests")["total"], 1.0);
    let tokens = query_at(
        &s,
        "sum by (model) (increase(sextant_agent_tokens_total[1h]))",
        end as f64,
        &keys(&["model"]),
    );
    let t = row_value(&j, "tokens_by_model", "claude-sonnet-4");
    assert!(t > 0.0, "{j}");
    assert!(
        (t - tokens["claude-sonnet-4"]).abs() < 1e-6 * t,
        "{t} vs {tokens:?}"
    );
    let by_agent = query_at(
        &s,
        "sum by (agent) (increase(sextant_agent_tokens_total[1h]))",
        end as f64,
        &keys(&["agent"]),
    );
    for a in ["coder", "reviewer"] {
        let v = row_value(&j, "tokens_by_agent", a);
        assert!(
            v > 0.0 && (v - by_agent[a]).abs() < 1e-6 * v,
            "{a}: {v} vs {by_agent:?}"
        );
    }
    let cost = query_at(
        &s,
        r#"sum by (model) (increase(sextant_agent_tokens_total[1h]) * on (provider, model, direction) group_left label_replace(sextant_llm_price_usd_per_token, "direction", "$1", "token_type", "(.*)"))"#,
        end as f64,
        &keys(&["model"]),
    );
    let c = row_value(&j, "cost_by_model", "claude-sonnet-4");
    assert!(
        c > 0.0 && (c - cost["claude-sonnet-4"]).abs() < 1e-9 + 1e-6 * c,
        "{c} vs {cost:?}"
    );
    row_value(&j, "latency_agents", "reviewer");
    row_value(&j, "latency_agents", "coder");
    row_value(&j, "latency_probes", "example");
    assert_eq!(
        section(&j, "latency_genai")["note"],
        "no data for this period"
    );
    // The previous period holds only the two back-dated probe results.
    for sec in j["sections"].as_array().unwrap() {
        for r in sec["rows"].as_array().unwrap() {
            if sec["id"] == "probes" {
                continue;
            }
            assert!(r["previous"].is_null(), "{sec}");
        }
    }
    let probes = &section(&j, "probes")["rows"][0];
    assert_eq!(probes["key"], "example");
    assert_eq!(probes["previous"].as_f64(), Some(0.5), "{probes}");

    // CSV: exactly the JSON's figures, one row per (section, key).
    let csv = report(&s, end, "csv", &tmp.path().join("r.csv"));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("section,key,value,previous"));
    let csv_rows: Vec<&str> = lines.collect();
    let mut expected_rows = Vec::new();
    for sec in j["sections"].as_array().unwrap() {
        let rows = sec["rows"].as_array().unwrap();
        if rows.is_empty() {
            continue;
        }
        let num = |v: &Value| v.as_f64().map(|f| f.to_string()).unwrap_or_default();
        if !sec["total"].is_null() || !sec["previous_total"].is_null() {
            expected_rows.push(format!(
                "{},total,{},{}",
                sec["id"].as_str().unwrap(),
                num(&sec["total"]),
                num(&sec["previous_total"])
            ));
        }
        for r in rows {
            let key = r["key"].as_str().unwrap();
            let key = if key.contains(',') {
                format!("\"{key}\"")
            } else {
                key.to_string()
            };
            expected_rows.push(format!(
                "{},{key},{},{}",
                sec["id"].as_str().unwrap(),
                num(&r["value"]),
                num(&r["previous"])
            ));
        }
    }
    assert_eq!(csv_rows, expected_rows);
    assert!(csv_rows.contains(&"availability,gone,0,"), "{csv}");
    assert!(csv_rows.contains(&"probes,example,1,0.5"), "{csv}");
    assert!(
        csv_rows.contains(&"alerts,ReportTargetDown / warning,1,"),
        "{csv}"
    );

    let md = report(&s, end, "md", &tmp.path().join("r.md"));
    assert!(md.starts_with("# Sextant fleet report"), "{md}");
    assert!(md.contains("| app | 100.00% | – | new |"), "{md}");
    assert!(md.contains("| gone | 0.00% | – | new |"), "{md}");
    assert!(
        md.contains("| example | 100.00% | 50.00% | ▲ +50.00 pp |"),
        "{md}"
    );
    assert!(
        md.contains("| ReportTargetDown / warning | 1 | – | new |"),
        "{md}"
    );
    assert!(md.contains("| ci | 66.67% | – | new |"), "{md}");
    assert!(
        md.contains("## Slowest GenAI operations (p95 duration)\n\n_no data for this period._"),
        "{md}"
    );

    let html = report(&s, end, "html", &tmp.path().join("r.html"));
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.matches("<svg").count() >= 8,
        "one chart per section with data"
    );
    for external in ["<script", "<link", "src=", "href=", "url("] {
        assert!(
            !html.contains(external),
            "HTML must be self-contained: found {external}"
        );
    }
    assert!(
        html.contains("<td>ReportTargetDown / warning</td><td>1</td>"),
        "{html}"
    );

    let text = report(&s, end, "text", &tmp.path().join("r.txt"));
    assert!(text.lines().count() <= 15, "{text}");
    // The built-in test-quality alerts (FlakyTests, TestNewFailures) fire too.
    let fired = section(&j, "alerts")["total"]
        .as_f64()
        .expect("alerts total");
    assert!(fired >= 1.0, "{j}");
    assert!(
        text.contains(&format!("Alerts fired: {fired} (new); most: ")),
        "{text}"
    );
    assert!(
        text.contains("Services up: 2 — worst gone 0.00% (new)"),
        "{text}"
    );
    assert!(
        text.contains("Flaky tests: 1 (new); e.g. ci / unit / pkg / b"),
        "{text}"
    );
    assert!(text.contains("No data: latency_genai"), "{text}");
    assert!(
        text.contains("Probes: 1 — worst example 100.00% (▲ +50.00 pp)"),
        "{text}"
    );

    // The scheduled report arrives at the webhook receiver as a one-alert notification.
    let n = wait_for(
        "the scheduled report at the webhook",
        Duration::from_secs(60),
        || {
            got.lock()
                .unwrap_or_else(|e| e.into_inner())
                .first()
                .cloned()
        },
    );
    assert_eq!(n["receiver"], "hook", "{n}");
    assert_eq!(
        n["alerts"][0]["labels"]["alertname"], "SextantReport",
        "{n}"
    );
    assert_eq!(n["alerts"][0]["labels"]["report"], "minutely", "{n}");
    let body = n["commonAnnotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(body.starts_with("# Sextant report: minutely"), "{body}");
    assert!(
        body.contains("| ReportTargetDown / warning | 1 |"),
        "{body}"
    );
    let summary = n["commonAnnotations"]["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(summary.contains("Alerts fired: "), "{summary}");
    assert_eq!(n["commonAnnotations"]["format"], "md");
    s.terminate();
}

#[test]
fn bad_arguments_and_config_are_refused_with_the_field_named() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(args)
            .output()
            .expect("run sextant")
    };
    let o = run(&["report", "--range", "soon"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--range"),
        "{o:?}"
    );
    let dead = format!("http://127.0.0.1:{}", free_port());
    let o = run(&["report", "--server", &dead]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&dead), "{o:?}");

    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("sextant.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: a\nreceivers:\n  - name: a\nreports:\n  - name: daily\n    at: \"08:00\"\n    time_zone: Europe/Berlin\n    receiver: chat\n",
    )
    .unwrap();
    let o = run(&["check", "config", &cfg.display().to_string()]);
    assert!(!o.status.success());
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("line 6") || out.contains(":6"), "{out}");
    assert!(
        out.contains("reports[0]") && out.contains("receiver"),
        "{out}"
    );
}
