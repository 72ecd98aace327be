//! Agent run events end to end: events posted to a real `sextant serve` become series with
//! exact values, every query of the built-in "Agent runs" dashboard returns data, the shipped
//! self-evaluation SLO burn alert fires and resolves, bad events get a 400 naming the field (and
//! Python's `jsonschema` agrees with the server on the same fixtures, so the published schema
//! is the real contract), counters stay monotonic across a kill -9 and a clean restart, and
//! `sextant import agent-events` round-trips files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agent_events")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start(dir: &Path) -> Server {
    let mut s = Server::start(
        dir,
        &["--push-interval", "1s", "--evaluation-interval", "1s"],
    );
    s.wait_ready(Duration::from_secs(60));
    s
}

/// POSTs a body; returns (status, JSON answer).
fn post(s: &Server, content_type: &str, body: &str) -> (u16, Value) {
    let r = client()
        .post(s.url("/api/v1/agent/events"))
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .expect("post events");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn post_events(s: &Server, events: &Value) -> Value {
    let (status, v) = post(s, "application/json", &events.to_string());
    assert_eq!(status, 200, "{v}");
    v
}

fn query(s: &Server, q: &str) -> Vec<Value> {
    let v: Value = client()
        .get(s.url("/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null);
    assert_eq!(v["status"], "success", "query {q}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The value of a query that returns one series.
fn value(s: &Server, q: &str) -> Option<f64> {
    let r = query(s, q);
    assert!(r.len() <= 1, "{q} returned {} series: {r:?}", r.len());
    r.first()
        .and_then(|x| x["value"][1].as_str())
        .and_then(|v| v.parse().ok())
}

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

fn firing(s: &Server, name: &str, agent: &str) -> bool {
    let v: Value = client()
        .get(s.url("/api/v1/alerts"))
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null);
    v["data"]["alerts"].as_array().is_some_and(|a| {
        a.iter().any(|x| {
            x["labels"]["alertname"] == name
                && x["labels"]["agent"] == agent
                && x["state"] == "firing"
        })
    })
}

fn run(ev: Value, n: usize) -> Value {
    Value::Array(vec![ev; n])
}

#[test]
fn events_become_series_the_dashboard_shows_and_the_slo_alert_fires_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());

    // Exact values from a known set of events.
    let coder = json!({"agent": "coder", "role": "developer", "phase": "implement", "model": "claude-sonnet-4",
        "provider": "anthropic", "outcome": "success", "duration_seconds": 90,
        "tokens": {"input": 1000, "output": 200, "cache_read": 500, "cache_write": 50},
        "self_eval": "pass", "revisions": 2, "escalations": {"advisor": 1},
        "tool_calls": [{"name": "bash", "count": 5, "errors": 1, "duration_seconds": 2.5}],
        "labels": {"team": "core"}});
    let mut failed = coder.clone();
    failed["outcome"] = json!("failure");
    failed["self_eval"] = json!("fail");
    failed["duration_seconds"] = json!(4000);
    failed["event_id"] = json!("run-7");
    failed["session_id"] = json!("s-1");
    let out = post_events(
        &s,
        &json!({"events": [coder, coder, coder, failed, failed]}),
    );
    assert_eq!(out["data"]["accepted"], 4, "{out}");
    assert_eq!(out["data"]["duplicates"], 1, "{out}");
    let sel =
        r#"agent="coder",role="developer",phase="implement",model="claude-sonnet-4",team="core""#;
    assert_eq!(
        value(
            &s,
            &format!(r#"sextant_agent_sessions_total{{{sel},outcome="success"}}"#)
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &s,
            &format!(r#"sextant_agent_sessions_total{{{sel},outcome="failure"}}"#)
        ),
        Some(1.0)
    );
    let tok = r#"sextant_agent_tokens_total{agent="coder",role="developer",phase="implement",provider="anthropic",model="claude-sonnet-4",team="core""#;
    assert_eq!(
        value(&s, &format!(r#"{tok},direction="input"}}"#)),
        Some(4000.0)
    );
    assert_eq!(
        value(&s, &format!(r#"{tok},direction="output"}}"#)),
        Some(800.0)
    );
    assert_eq!(
        value(&s, &format!(r#"{tok},direction="cache_read"}}"#)),
        Some(2000.0)
    );
    assert_eq!(
        value(&s, &format!(r#"{tok},direction="cache_write"}}"#)),
        Some(200.0)
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_self_eval_total{agent="coder",role="developer",result="pass"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_self_eval_total{agent="coder",role="developer",result="fail"}"#
        ),
        Some(1.0)
    );
    let dur = r#"agent="coder",role="developer",phase="implement""#;
    assert_eq!(
        value(
            &s,
            &format!(r#"sextant_agent_session_duration_seconds_bucket{{{dur},le="60"}}"#)
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            &format!(r#"sextant_agent_session_duration_seconds_bucket{{{dur},le="120"}}"#)
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &s,
            &format!(r#"sextant_agent_session_duration_seconds_bucket{{{dur},le="3600"}}"#)
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &s,
            &format!(r#"sextant_agent_session_duration_seconds_bucket{{{dur},le="7200"}}"#)
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &s,
            &format!(r#"sextant_agent_session_duration_seconds_bucket{{{dur},le="+Inf"}}"#)
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &s,
            &format!(r#"sextant_agent_session_duration_seconds_count{{{dur}}}"#)
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &s,
            &format!(r#"sextant_agent_session_duration_seconds_sum{{{dur}}}"#)
        ),
        Some(4270.0)
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_tool_calls_total{agent="coder",tool="bash",result="success"}"#
        ),
        Some(16.0)
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_tool_calls_total{agent="coder",tool="bash",result="error"}"#
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_tool_call_duration_seconds_total{agent="coder",tool="bash"}"#
        ),
        Some(10.0)
    );
    assert_eq!(
        value(&s, &format!("sextant_agent_revisions_total{{{dur}}}")),
        Some(8.0)
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_escalations_total{agent="coder",role="developer",kind="advisor"}"#
        ),
        Some(4.0)
    );
    // The event timestamp does not move samples; it is kept as the agent's last event time.
    post_events(
        &s,
        &json!([{"agent": "old", "outcome": "success", "timestamp": "2025-06-01T12:00:00Z"},
                {"agent": "old", "outcome": "success", "timestamp": 1748779000}]),
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_last_event_timestamp_seconds{agent="old"}"#
        ),
        Some(1748779200.0)
    );
    // Its samples carry the receive time (now), not 2025-06-01.
    let now = sextant_model::time::now_ms();
    let samples = export(
        &client(),
        &s.url(""),
        r#"sextant_agent_sessions_total{agent="old"}"#,
    );
    let first = samples[0].1[0].0;
    assert!(
        (first - now).abs() < 60_000,
        "first sample at {first}, now {now}"
    );
    // The same event id again is not counted.
    let again = post_events(&s, &json!([failed]));
    assert_eq!(again["data"]["duplicates"], 1, "{again}");
    assert_eq!(
        value(
            &s,
            &format!(r#"sextant_agent_sessions_total{{{sel},outcome="failure"}}"#)
        ),
        Some(1.0)
    );
    // Metadata of the families is stored.
    let meta: Value = client()
        .get(s.url("/api/v1/metadata"))
        .query(&[("metric", "sextant_agent_session_duration_seconds")])
        .send()
        .and_then(|r| r.json())
        .unwrap();
    assert_eq!(
        meta["data"]["sextant_agent_session_duration_seconds"][0]["type"], "histogram",
        "{meta}"
    );

    // Series stay queryable between events: re-written while no event arrives.
    let sel_pass = r#"sextant_agent_self_eval_total{agent="coder",result="pass"}"#;
    let before = export(&client(), &s.url(""), sel_pass)[0].1.len();
    let after = wait_for("re-written samples", Duration::from_secs(30), || {
        let e = export(&client(), &s.url(""), sel_pass);
        (e[0].1.len() > before).then(|| e[0].1.clone())
    });
    assert!(after.iter().all(|(_, v)| *v == 3.0), "{after:?}");

    // The self-evaluation SLO: a reviewer whose self-evaluations fail burns the budget.
    let pass = json!({"agent": "reviewer", "role": "reviewer", "phase": "review", "outcome": "success", "self_eval": "pass", "duration_seconds": 30});
    let mut fail = pass.clone();
    fail["self_eval"] = json!("fail");
    fail["outcome"] = json!("failure");
    post_events(&s, &json!([pass, fail]));
    std::thread::sleep(Duration::from_millis(2500));
    post_events(&s, &run(fail.clone(), 20));
    wait_for(
        "AgentSelfEvalBudgetBurnPage firing",
        Duration::from_secs(60),
        || firing(&s, "AgentSelfEvalBudgetBurnPage", "reviewer").then_some(()),
    );
    assert!(!firing(&s, "AgentSelfEvalBudgetBurnPage", "coder"));

    // Every query of the built-in dashboard returns data now.
    let dash = sextant_dashboards::builtin()
        .expect("built-in dashboards")
        .into_iter()
        .find(|d| d.uid == "agents")
        .expect("the agents dashboard is built in");
    let mut exprs = 0;
    for p in &dash.panels {
        for t in &p.targets {
            let q = t
                .expr
                .replace("$__rate_interval", "5m")
                .replace("$agent", ".*")
                .replace("$role", ".*");
            exprs += 1;
            wait_for(
                &format!("data for panel {:?}: {q}", p.title),
                Duration::from_secs(30),
                || (!query(&s, &q).is_empty()).then_some(()),
            );
        }
    }
    assert!(exprs >= 14, "{exprs}");
    for v in &dash.variables {
        let q = v
            .query
            .trim_start_matches("label_values(")
            .trim_end_matches(')');
        let (metric, label) = q.split_once(',').unwrap();
        let vals: Value = client()
            .get(s.url(&format!("/api/v1/label/{}/values", label.trim())))
            .query(&[("match[]", metric.trim())])
            .send()
            .and_then(|r| r.json())
            .unwrap();
        assert!(
            !vals["data"].as_array().unwrap().is_empty(),
            "variable {}: {vals}",
            v.name
        );
    }

    // Many passing self-evaluations bring the ratio under every burn threshold: resolved.
    post_events(&s, &run(pass.clone(), 400));
    wait_for(
        "AgentSelfEvalBudgetBurnPage resolved",
        Duration::from_secs(60),
        || (!firing(&s, "AgentSelfEvalBudgetBurnPage", "reviewer")).then_some(()),
    );
}

#[derive(Debug)]
struct Case {
    name: String,
    content_type: String,
    body: String,
    pointer: Option<String>,
    line: Option<u64>,
}

fn cases(file: &str) -> Vec<Case> {
    std::fs::read_to_string(fixtures().join(file))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let body = match (&v["content_type"], &v["body"]) {
                (ct, Value::String(s)) if ct == "ndjson" => s.clone(),
                (_, b) => b.to_string(),
            };
            Case {
                name: v["name"].as_str().unwrap().to_string(),
                content_type: if v["content_type"] == "ndjson" {
                    "application/x-ndjson".into()
                } else {
                    "application/json".into()
                },
                body,
                pointer: v["pointer"].as_str().map(str::to_string),
                line: v["line"].as_u64(),
            }
        })
        .collect()
}

/// Is `python3` with `jsonschema` installed? Skips with a message, or fails when
/// `SEXTANT_REQUIRE_PEERS=1` (CI).
fn python_jsonschema() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "python3 with jsonschema is required (SEXTANT_REQUIRE_PEERS=1) but not installed"
            );
        }
        eprintln!("SKIPPED: python3 with jsonschema is not installed (pip install jsonschema); the schema agreement check did not run");
    }
    ok
}

#[test]
fn bad_events_get_400_naming_the_field_and_python_jsonschema_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let valid = cases("valid.jsonl");
    let invalid = cases("invalid.jsonl");
    let server_only = cases("server_only_invalid.jsonl");
    assert!(valid.len() >= 5 && invalid.len() >= 20 && !server_only.is_empty());
    for c in &valid {
        let (status, v) = post(&s, &c.content_type, &c.body);
        assert_eq!(status, 200, "valid case {}: {v}", c.name);
    }
    for c in invalid.iter().chain(&server_only) {
        let (status, v) = post(&s, &c.content_type, &c.body);
        assert_eq!(status, 400, "invalid case {}: {v}", c.name);
        assert_eq!(v["status"], "error", "{}: {v}", c.name);
        assert_eq!(v["errorType"], "bad_data", "{}: {v}", c.name);
        let want = c.pointer.as_deref().unwrap();
        assert_eq!(v["pointer"], want, "case {}: {v}", c.name);
        let msg = v["error"].as_str().unwrap();
        if !want.is_empty() {
            assert!(
                msg.contains(want),
                "case {}: message does not name {want}: {msg}",
                c.name
            );
        }
        if let Some(l) = c.line {
            assert_eq!(v["line"], l, "case {}: {v}", c.name);
            assert!(msg.contains(&format!("line {l}:")), "{}: {msg}", c.name);
        }
    }
    // Nothing of a refused request was counted.
    let q = query(&s, "sum(sextant_agent_sessions_total)");
    let total: f64 = q[0]["value"][1].as_str().unwrap().parse().unwrap();
    let want: usize = valid
        .iter()
        .map(|c| {
            if c.content_type.ends_with("ndjson") {
                c.body.lines().filter(|l| !l.trim().is_empty()).count()
            } else {
                let v: Value = serde_json::from_str(&c.body).unwrap();
                match v {
                    Value::Array(a) => a.len(),
                    Value::Object(m) if m.contains_key("events") => {
                        m["events"].as_array().unwrap().len()
                    }
                    _ => 1,
                }
            }
        })
        .sum();
    assert_eq!(total, want as f64);
    // Unsupported content type, and the schema served over HTTP is the published file.
    let (status, _) = post(&s, "text/plain", "{}");
    assert_eq!(status, 415);
    // Self-monitoring counts them.
    let metrics = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let line = format!(
        "sextant_agent_events_received_total{{result=\"rejected\"}} {}",
        invalid.len() + server_only.len()
    );
    assert!(
        metrics.lines().any(|l| l == line),
        "no {line:?} in /metrics"
    );
    let line = format!("sextant_agent_events_received_total{{result=\"accepted\"}} {want}");
    assert!(
        metrics.lines().any(|l| l == line),
        "no {line:?} in /metrics"
    );
    // curl -d without -H sends application/x-www-form-urlencoded: still JSON.
    let (status, v) = post(
        &s,
        "application/x-www-form-urlencoded",
        r#"{"agent":"curl","outcome":"success"}"#,
    );
    assert_eq!(status, 200, "{v}");
    let served = client()
        .get(s.url("/api/v1/agent/events/schema"))
        .send()
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);
    let published =
        std::fs::read_to_string(root().join("docs/schemas/agent-event.schema.json")).unwrap();
    assert_eq!(served.text().unwrap(), published);

    if !python_jsonschema() {
        return;
    }
    let out = Command::new("python3")
        .arg(fixtures().join("check_schema.py"))
        .arg(root().join("docs/schemas/agent-event.schema.json"))
        .args(
            ["valid.jsonl", "invalid.jsonl", "server_only_invalid.jsonl"]
                .map(|f| fixtures().join(f)),
        )
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        verdicts.len(),
        valid.len() + invalid.len() + server_only.len()
    );
    let verdict = |name: &str| {
        verdicts
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no verdict for {name}"))
    };
    for c in &valid {
        assert_eq!(
            verdict(&c.name)["valid"],
            true,
            "jsonschema refuses valid case {}: {}",
            c.name,
            verdict(&c.name)
        );
    }
    for c in &invalid {
        assert_eq!(
            verdict(&c.name)["valid"],
            false,
            "jsonschema accepts invalid case {}",
            c.name
        );
    }
    // What a static schema cannot say (a timestamp relative to now, errors <= count, real
    // calendar dates) is documented in the schema's descriptions and checked by the server only.
    for c in &server_only {
        assert_eq!(
            verdict(&c.name)["valid"],
            true,
            "server-only case {} is refused by the schema too: move it to invalid.jsonl",
            c.name
        );
    }
}

#[test]
fn counters_stay_monotonic_across_kill9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let q = r#"sextant_agent_sessions_total{agent="a",outcome="success"}"#;
    let ev = json!({"agent": "a", "outcome": "success", "tokens": {"input": 10}});
    let mut s = start(dir.path());
    post_events(&s, &run(ev.clone(), 3));
    // kill -9 right away: the state file may not be saved yet; the WAL has the samples.
    s.kill9();
    let mut s = start(dir.path());
    assert_eq!(value(&s, q), Some(3.0));
    post_events(&s, &run(ev.clone(), 2));
    assert_eq!(value(&s, q), Some(5.0));
    post_events(
        &s,
        &json!({"agent": "a", "outcome": "success", "event_id": "x", "session_id": "s"}),
    );
    std::thread::sleep(Duration::from_millis(1500)); // one maintenance tick saves the state
    assert!(s.terminate().success());
    let s = start(dir.path());
    // Restored from the state file: re-written at once, and the event id is remembered.
    assert_eq!(value(&s, q), Some(6.0));
    let dup = post_events(
        &s,
        &json!({"agent": "a", "outcome": "success", "event_id": "x", "session_id": "s"}),
    );
    assert_eq!(dup["data"]["duplicates"], 1, "{dup}");
    post_events(&s, &ev);
    assert_eq!(value(&s, q), Some(7.0));
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_tokens_total{agent="a",direction="input"}"#
        ),
        Some(60.0)
    );
    // No sample of the counter ever went down.
    let series = export(&client(), &s.url(""), q);
    assert_eq!(series.len(), 1);
    let vals: Vec<f64> = series[0].1.iter().map(|(_, v)| *v).collect();
    assert!(vals.windows(2).all(|w| w[1] >= w[0]), "{vals:?}");
}

#[test]
fn import_agent_events_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("data"));
    let jsonl = dir.path().join("runs.jsonl");
    let mut text = String::new();
    for i in 0..1200 {
        text.push_str(&json!({"event_id": format!("r{i}"), "session_id": "night", "agent": "bulk", "outcome": if i % 4 == 0 { "failure" } else { "success" }, "tokens": {"output": 3}}).to_string());
        text.push('\n');
        if i % 100 == 0 {
            text.push('\n');
        }
    }
    std::fs::write(&jsonl, text).unwrap();
    let array = dir.path().join("runs.json");
    std::fs::write(&array, json!([{"agent": "bulk", "outcome": "error", "event_id": "a1"}, {"agent": "bulk", "outcome": "error", "event_id": "a2"}]).to_string()).unwrap();
    let import = |files: &[&Path]| {
        Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args([
                "import",
                "agent-events",
                "--server",
                &s.url(""),
                "--batch",
                "250",
            ])
            .args(files)
            .output()
            .expect("run sextant import")
    };
    let out = import(&[&jsonl, &array]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 1202 events"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_sessions_total{agent="bulk",outcome="success"}"#
        ),
        Some(900.0)
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_sessions_total{agent="bulk",outcome="failure"}"#
        ),
        Some(300.0)
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_sessions_total{agent="bulk",outcome="error"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_tokens_total{agent="bulk",direction="output"}"#
        ),
        Some(3600.0)
    );
    // Importing the same files again counts nothing twice.
    let out = import(&[&jsonl, &array]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 0 events (1202 already seen)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        value(
            &s,
            r#"sextant_agent_sessions_total{agent="bulk",outcome="success"}"#
        ),
        Some(900.0)
    );
    // A bad line is reported as file:line with the field, and nothing of the file is sent.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"agent\":\"late\",\"outcome\":\"success\"}\n{\"agent\":\"late\",\"outcome\":\"success\",\"tokens\":{\"input\":-1}}\n").unwrap();
    let out = import(&[&bad]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2: /tokens/input", bad.display())),
        "{err}"
    );
    assert_eq!(
        value(&s, r#"sextant_agent_sessions_total{agent="late"}"#),
        None
    );
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(
        &broken,
        "{\"agent\":\"late\",\"outcome\":\"success\"}\n{not json\n",
    )
    .unwrap();
    let out = import(&[&broken]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2: invalid JSON", broken.display())),
        "{err}"
    );
}

#[test]
fn shipped_slo_rules_are_what_the_slo_compiler_generates() {
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["slo", "generate"])
        .arg(root().join("rules/slo/agents.yml"))
        .output()
        .expect("run sextant slo generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8_lossy(&out.stdout);
    // Without its first line (a comment), the output is the start of the shipped file's groups.
    let body = generated.split_once('\n').map(|x| x.1).unwrap_or_default();
    let shipped = std::fs::read_to_string(root().join("rules/agents.yml")).unwrap();
    assert!(
        shipped.contains(body),
        "rules/agents.yml is stale: regenerate its slo-agent-self-eval group with `sextant slo generate rules/slo/agents.yml`"
    );
}
