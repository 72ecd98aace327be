//! JUnit ingestion end to end: a real `pytest --junitxml` run over a small test file with a
//! deliberately flaky test (it fails on every other run, via a counter file), run several
//! times at the same commit and uploaded to `POST /api/v1/junit` → the flaky series and the
//! flaky table show it; a broken run drives the shipped P1 pass-rate alert (and the
//! new-failures alert) to fire and a fixed run resolves it; every query of the built-in
//! *Test-suite quality* dashboard returns data; the state is the same after a restart; and
//! hostile or malformed uploads get a 400 naming the line/field with nothing stored.
//!
//! Needs `python3 -m pytest`; without it the test is skipped with a message, unless
//! `SEXTANT_REQUIRE_PEERS=1` (CI), where it fails.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const JOB: &str = "app-ci";

const TEST_FILE: &str = r#"
import os
import pytest

def test_stable():
    assert True

def test_flaky():
    # Fails on every other run: a test that cannot make up its mind.
    path = os.environ["FLAKY_COUNTER"]
    n = int(open(path).read()) if os.path.exists(path) else 0
    open(path, "w").write(str(n + 1))
    assert n % 2 == 0, f"attempt {n} lost the race"

def test_unit_math(record_property):
    record_property("category", "unit")
    assert 2 * 2 == 4

@pytest.mark.parametrize("i", range(8))
def test_feature(i):
    assert not os.environ.get("BREAK"), f"feature {i} broken by the change"

@pytest.mark.skip(reason="needs a GPU")
def test_gpu():
    pass
"#;

fn have_pytest() -> bool {
    let ok = Command::new("python3")
        .args(["-m", "pytest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("pytest is required (SEXTANT_REQUIRE_PEERS=1): python3 -m pip install pytest");
        }
        eprintln!("SKIPPED: pytest is not installed (python3 -m pip install pytest); the JUnit e2e test did not run");
    }
    ok
}

/// Runs pytest over the test file and returns its JUnit XML.
fn pytest(dir: &Path, broken: bool) -> Vec<u8> {
    let xml = dir.join("report.xml");
    let _ = std::fs::remove_file(&xml);
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "test_app.py",
    ])
    .arg(format!("--junitxml={}", xml.display()))
    .args(["-o", "junit_suite_name=app", "-o", "junit_family=xunit1"])
    .current_dir(dir)
    .env("FLAKY_COUNTER", dir.join("counter"))
    .env_remove("BREAK");
    if broken {
        cmd.env("BREAK", "1");
    }
    let out = cmd.output().expect("run pytest");
    // pytest exits 1 when tests fail; anything else is a broken setup.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "pytest: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&xml).expect("pytest wrote no JUnit XML")
}

fn upload(s: &Server, query: &str, body: Vec<u8>, gzip: bool) -> (u16, Value) {
    let mut req = client()
        .post(s.url(&format!("/api/v1/junit?{query}")))
        .header("Content-Type", "application/xml");
    let body = if gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&body).unwrap();
        req = req.header("Content-Encoding", "gzip");
        e.finish().unwrap()
    } else {
        body
    };
    let r = req.body(body).send().expect("upload");
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

fn get(s: &Server, path: &str) -> Value {
    client()
        .get(s.url(path))
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn query(s: &Server, expr: &str) -> Vec<Value> {
    let r: Value = client()
        .post(s.url("/api/v1/query"))
        .form(&[("query", expr)])
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null);
    assert_eq!(r["status"], "success", "{expr}: {r}");
    r["data"]["result"].as_array().cloned().unwrap_or_default()
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

fn firing(s: &Server, name: &str) -> Vec<Value> {
    get(s, "/api/v1/alerts")["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
        .collect()
}

fn start(data: &Path) -> Server {
    let mut s = Server::start(
        data,
        &["--evaluation-interval", "1s", "--push-interval", "1s"],
    );
    s.wait_ready(Duration::from_secs(60));
    s
}

fn bad_uploads_are_refused(s: &Server) {
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "job=x",
            r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<testsuite name="&lol2;"><testcase name="a"/></testsuite>"#
                .to_string(),
            400,
            "line 2, column 1: a <!DOCTYPE> is not accepted",
        ),
        (
            "job=x",
            format!(
                "<testsuite name=\"s\">\n<testcase name=\"{}\"/></testsuite>",
                "a".repeat(100_000)
            ),
            400,
            "line 2, column 1: <testcase> attribute name is 100000 bytes long",
        ),
        (
            "job=x",
            "<testsuites>\n<testsuite name=\"s\">\n<testcase name=\"a\" time=\"0.1\">".to_string(),
            400,
            "truncated",
        ),
        (
            "job=x",
            "<testsuite name=\"s\"><testcase name=\"a\" time=\"soon\"/></testsuite>".to_string(),
            400,
            "line 1, column 21: testcase time \"soon\"",
        ),
        (
            "commit=abc",
            "<testsuite name=\"s\"><testcase name=\"a\"/></testsuite>".to_string(),
            400,
            "parameter job is required",
        ),
        (
            "job=x&label=suite=oops",
            "<testsuite name=\"s\"><testcase name=\"a\"/></testsuite>".to_string(),
            400,
            "the label \"suite\" is set by Sextant",
        ),
        (
            "job=x&label=novalue",
            "<testsuite name=\"s\"><testcase name=\"a\"/></testsuite>".to_string(),
            400,
            "parameter label=\"novalue\": expected name=value",
        ),
    ];
    for (q, body, code, want) in cases {
        let (got, j) = upload(s, q, body.into_bytes(), false);
        assert_eq!(got, code, "{q}: {j}");
        assert_eq!(j["errorType"], "bad_data", "{j}");
        let msg = j["error"].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{q}: want {want:?} in {msg:?}");
    }
    let r = client()
        .post(s.url("/api/v1/junit?job=x"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // Nothing of any of them was stored.
    assert!(query(s, r#"{__name__=~"sextant_test_.*"}"#).is_empty());
    assert_eq!(
        get(s, "/api/sextant/tests/slowest")["data"],
        Value::Array(vec![])
    );
}

#[test]
fn pytest_reports_flaky_tests_alerts_and_dashboard() {
    if !have_pytest() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("test_app.py"), TEST_FILE).unwrap();
    let data = tmp.path().join("data");
    let mut s = start(&data);

    bad_uploads_are_refused(&s);

    // Four runs at one commit: the flaky test passes, fails, passes, fails.
    for i in 0..4 {
        let xml = pytest(&work, false);
        let (code, j) = upload(
            &s,
            &format!("job={JOB}&commit=c0ffee1&label=branch=main"),
            xml,
            i % 2 == 1,
        );
        assert_eq!(code, 200, "{j}");
        assert_eq!(j["data"]["tests"], 12, "{j}");
        assert_eq!(j["data"]["skipped"], 1, "{j}");
        assert_eq!(j["data"]["failed"], if i % 2 == 1 { 1 } else { 0 }, "{j}");
    }
    let flaky = wait_for("the flaky series", Duration::from_secs(30), || {
        let r = query(&s, &format!("sextant_test_flaky{{job=\"{JOB}\"}}"));
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(flaky.len(), 1, "{flaky:?}");
    let m = &flaky[0]["metric"];
    assert_eq!(
        (&m["suite"], &m["classname"], &m["test"], &m["branch"]),
        (
            &Value::from("app"),
            &Value::from("test_app"),
            &Value::from("test_flaky"),
            &Value::from("main")
        )
    );
    let n = query(
        &s,
        &format!("sextant_test_flaky_tests{{job=\"{JOB}\",suite=\"app\"}}"),
    );
    assert_eq!(n[0]["value"][1], "1");
    let table = get(&s, &format!("/api/sextant/tests/flaky?job={JOB}"));
    let rows = table["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{table}");
    assert_eq!(rows[0]["test"], "test_flaky");
    assert_eq!(rows[0]["reason"], "same_commit,flips", "{table}");
    assert_eq!(rows[0]["commits"], serde_json::json!(["c0ffee1"]));
    assert_eq!(
        (rows[0]["passes"].as_u64(), rows[0]["failures"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(rows[0]["last_failure_message"]
        .as_str()
        .unwrap_or_default()
        .contains("attempt 3 lost the race"));
    assert!(firing(&s, "TestPassRateLow").is_empty());

    // Coverage as `sextant run --coverage` pushes it.
    let r = client()
        .put(s.url(&format!("/metrics/job/{JOB}")))
        .body("sextant_coverage_ratio{kind=\"line\"} 0.83\nsextant_coverage_ratio{kind=\"branch\"} 0.61\n")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A change breaks 8 of the 11 tests that ran: P1 pass-rate alert and new failures.
    let (code, j) = upload(
        &s,
        &format!("job={JOB}&commit=bad0bad&label=branch=main"),
        pytest(&work, true),
        false,
    );
    assert_eq!(code, 200, "{j}");
    assert_eq!(j["data"]["failed"], 8, "{j}");
    assert_eq!(
        j["data"]["new_failures"].as_array().map(Vec::len),
        Some(8),
        "{j}"
    );
    let new = wait_for("TestNewFailures", Duration::from_secs(30), || {
        let f = firing(&s, "TestNewFailures");
        (!f.is_empty()).then_some(f)
    });
    assert_eq!(new[0]["labels"]["severity"], "P2");
    let failures = get(&s, &format!("/api/sextant/tests/failures?job={JOB}"));
    let rows = failures["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 8, "{failures}");
    assert!(
        rows.iter()
            .all(|r| r["new"] == true && r["failing_runs"] == 1),
        "{failures}"
    );
    assert!(rows[0]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("broken by the change"));

    // Every query of the built-in dashboard returns data now.
    wait_for("recording rules", Duration::from_secs(30), || {
        (!query(&s, "job_category:test_pass:ratio").is_empty()
            && !query(&s, "job_suite:test_pass:ratio").is_empty())
        .then_some(())
    });
    let dash = sextant_dashboards::builtin()
        .unwrap()
        .into_iter()
        .find(|d| d.uid == "tests")
        .expect("built-in dashboard tests");
    let mut checked = 0;
    for p in &dash.panels {
        for t in &p.targets {
            let expr = t.expr.replace("$job", ".*");
            let r = query(&s, &expr);
            assert!(!r.is_empty(), "tests/{}: {expr} returned nothing", p.title);
            checked += 1;
        }
    }
    assert_eq!(checked, 14);
    let pass = query(
        &s,
        "sum(sextant_test_cases{result=\"passed\"}) / sum(sextant_test_cases{result!=\"skipped\"})",
    );
    assert_eq!(pass[0]["value"][1], (3.0f64 / 11.0).to_string());

    let fired = wait_for(
        "TestPassRateLow firing (for: 1m)",
        Duration::from_secs(150),
        || {
            let f = firing(&s, "TestPassRateLow");
            (!f.is_empty()).then_some(f)
        },
    );
    assert_eq!(fired[0]["labels"]["severity"], "P1");
    assert_eq!(fired[0]["labels"]["suite"], "app");
    assert_eq!(fired[0]["labels"]["job"], JOB);

    // The fix: the alerts resolve (the flaky test is made to pass, so nothing is new).
    std::fs::write(work.join("counter"), "6").unwrap();
    let (code, j) = upload(
        &s,
        &format!("job={JOB}&commit=f1xed00&run=build-7&label=branch=main"),
        pytest(&work, false),
        false,
    );
    assert_eq!(code, 200, "{j}");
    // A second file of the same run (`run=` matches) joins it instead of replacing it.
    let (code, j) = upload(
        &s,
        &format!("job={JOB}&commit=f1xed00&run=build-7&label=branch=main"),
        br#"<testsuite name="docs"><testcase classname="docs" name="test_links" time="0.5"/></testsuite>"#.to_vec(),
        false,
    );
    assert_eq!(code, 200, "{j}");
    assert_eq!(
        (j["data"]["suites"].as_u64(), j["data"]["tests"].as_u64()),
        (Some(2), Some(13)),
        "{j}"
    );
    assert_eq!(
        query(
            &s,
            &format!("sextant_test_cases{{job=\"{JOB}\",suite=\"app\",result=\"passed\"}}")
        )[0]["value"][1],
        "11"
    );
    assert_eq!(
        query(
            &s,
            &format!("sextant_test_cases{{job=\"{JOB}\",suite=\"docs\",result=\"passed\"}}")
        )[0]["value"][1],
        "1"
    );
    wait_for(
        "TestPassRateLow and TestNewFailures resolved",
        Duration::from_secs(30),
        || {
            (firing(&s, "TestPassRateLow").is_empty() && firing(&s, "TestNewFailures").is_empty())
                .then_some(())
        },
    );

    // The same state after a restart.
    let before_flaky = get(&s, &format!("/api/sextant/tests/flaky?job={JOB}"));
    let before_slow = get(&s, "/api/sextant/tests/slowest?limit=5");
    assert_eq!(before_slow["data"].as_array().map(Vec::len), Some(5));
    let before_cases = query(&s, "sort(sextant_test_cases)");
    let status = s.terminate();
    assert!(status.success(), "{status}");
    drop(s);
    let s = start(&data);
    assert_eq!(
        get(&s, &format!("/api/sextant/tests/flaky?job={JOB}")),
        before_flaky
    );
    assert_eq!(get(&s, "/api/sextant/tests/slowest?limit=5"), before_slow);
    let labels = |v: &[Value]| -> Vec<(Value, Value)> {
        v.iter()
            .map(|r| (r["metric"].clone(), r["value"][1].clone()))
            .collect()
    };
    wait_for(
        "the test series after the restart",
        Duration::from_secs(30),
        || {
            let after = query(&s, "sort(sextant_test_cases)");
            (labels(&after) == labels(&before_cases)).then_some(())
        },
    );
    assert_eq!(
        query(&s, &format!("sextant_test_flaky{{job=\"{JOB}\"}}")).len(),
        1
    );
}

/// The path a CI job takes: `sextant run --junit` around real pytest runs at one commit. The
/// command's exit code comes through unchanged, every run's report arrives as one run, and the
/// test that passes and fails on the same commit is reported as flaky.
#[test]
fn sextant_run_around_pytest_reports_the_flaky_test() {
    if !have_pytest() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("test_app.py"), TEST_FILE).unwrap();
    let s = start(&tmp.path().join("data"));
    for i in 0..4 {
        let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["run", "--server", &s.url(""), "--job", "agent-ci"])
            .arg("--spool-dir")
            .arg(tmp.path().join("spool"))
            .args(["--junit", "report.xml", "--", "python3", "-m", "pytest"])
            .args(["-q", "-p", "no:cacheprovider", "--junitxml=report.xml"])
            .args(["-o", "junit_suite_name=app", "test_app.py"])
            .current_dir(&work)
            .env("FLAKY_COUNTER", work.join("counter"))
            .env("GITHUB_SHA", "c0ffee2")
            .env_remove("BREAK")
            .output()
            .expect("run sextant run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // pytest's own exit code: 1 on the runs where the flaky test lost.
        assert_eq!(out.status.code(), Some(i % 2), "run {i}: {stderr}");
        assert!(!stderr.contains("sextant run:"), "run {i}: {stderr}");
    }
    let rows = wait_for("the flaky table", Duration::from_secs(30), || {
        let t = get(&s, "/api/sextant/tests/flaky?job=agent-ci");
        let rows = t["data"].as_array().cloned().unwrap_or_default();
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["test"], "test_flaky");
    assert_eq!(rows[0]["commits"], serde_json::json!(["c0ffee2"]));
    assert_eq!(
        (rows[0]["passes"].as_u64(), rows[0]["failures"].as_u64()),
        (Some(2), Some(2))
    );
    let flaky = query(&s, "sextant_test_flaky{job=\"agent-ci\"}");
    assert_eq!(flaky.len(), 1, "{flaky:?}");
    // The last run (the flaky test lost) as `sextant run` pushed it.
    let exit = query(&s, "sextant_job_exit_code{job=\"agent-ci\"}");
    assert_eq!(exit[0]["value"][1], "1", "{exit:?}");
    let failed = query(
        &s,
        "sum(sextant_test_cases{job=\"agent-ci\",result=\"failed\"})",
    );
    assert_eq!(failed[0]["value"][1], "1", "{failed:?}");
}
