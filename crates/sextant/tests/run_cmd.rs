//! `sextant run` end to end: the real binary wraps real commands (exit 0, exit 3, killed by a
//! signal, not found, cancelled with SIGTERM) and reports them to a real `sextant serve`;
//! exit codes pass through, the pushed series arrive with exact values, the built-in
//! dashboard's queries see them, results spool while the server is down and are flushed in
//! order later, and the shipped alerts (missed run after the TTL, benchmark regression) fire
//! and resolve. The JUnit upload contract is checked against a recording HTTP server.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, free_port, Server};
use serde_json::Value;

const SEXTANT: &str = env!("CARGO_BIN_EXE_sextant");

fn testdata(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ingest/testdata")
        .join(p)
}

/// `sextant serve` with rule evaluation and push re-writes every second.
fn server(dir: &Path) -> Server {
    let mut s = Server::start(
        dir,
        &["--evaluation-interval", "1s", "--push-interval", "1s"],
    );
    s.wait_ready(Duration::from_secs(60));
    s
}

/// Runs `sextant run --server URL --spool-dir SPOOL ARGS`; stdio captured.
fn run(url: &str, spool: &Path, args: &[&str]) -> Output {
    Command::new(SEXTANT)
        .args(["run", "--server", url, "--spool-dir"])
        .arg(spool)
        .args(args)
        .env("GITHUB_SHA", "c0ffee")
        .stdin(Stdio::null())
        .output()
        .expect("run sextant run")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Instant query → {labels without __name__ as "k=v,…" : value}.
fn query(base: &str, q: &str) -> BTreeMap<String, f64> {
    let r: Value = client()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .expect("query")
        .json()
        .expect("json");
    assert_eq!(r["status"], "success", "{q}: {r}");
    let mut out = BTreeMap::new();
    for s in r["data"]["result"].as_array().cloned().unwrap_or_default() {
        let labels = s["metric"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| *k != "__name__")
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let v: f64 = s["value"][1]
            .as_str()
            .unwrap_or("NaN")
            .parse()
            .unwrap_or(f64::NAN);
        out.insert(labels, v);
    }
    out
}

/// The one value of a query that must return exactly one series.
fn one(base: &str, q: &str) -> f64 {
    let r = query(base, q);
    assert_eq!(r.len(), 1, "{q}: {r:?}");
    *r.values().next().unwrap()
}

/// Firing alerts: (alertname, labels).
fn firing(base: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let r: Value = client()
        .get(format!("{base}/api/v1/alerts"))
        .send()
        .expect("alerts")
        .json()
        .expect("json");
    r["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| {
            let labels: BTreeMap<String, String> = a["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            (labels.get("alertname").cloned().unwrap_or_default(), labels)
        })
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn alert_firing(base: &str, name: &str, job: &str) -> bool {
    firing(base)
        .iter()
        .any(|(n, l)| n == name && l.get("job").map(String::as_str) == Some(job))
}

#[test]
fn exit_codes_pass_through_and_runs_arrive_with_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let s = server(&dir.path().join("data"));
    let base = s.url("");

    // exit 0, with coverage and benchmark files (real tool output, see crates/ingest tests).
    let cov = testdata("coverage/lcov.info");
    let bench = testdata("bench/hyperfine.json");
    let crit = testdata("bench/criterion");
    let o = run(
        &base,
        &spool,
        &[
            "--job",
            "ok",
            "--label",
            "branch=main",
            "--ttl",
            "1h",
            "--coverage",
            cov.to_str().unwrap(),
            "--bench",
            bench.to_str().unwrap(),
            "--bench",
            crit.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "sleep 0.3; echo out; echo err >&2",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "out\n",
        "stdout is the command's"
    );
    assert_eq!(
        stderr(&o),
        "err\n",
        "nothing but the command's stderr when all is well"
    );
    // exit 3
    let o = run(
        &base,
        &spool,
        &["--job", "three", "--", "sh", "-c", "exit 3"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // killed by SIGKILL → 137
    let o = run(
        &base,
        &spool,
        &["--job", "killed", "--", "sh", "-c", "kill -9 $$"],
    );
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    // not found → 127, still reported
    let o = run(
        &base,
        &spool,
        &["--job", "missing", "--", "/nonexistent/command-xyz"],
    );
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("command not found"), "{}", stderr(&o));
    // not executable → 126
    let o = run(&base, &spool, &["--job", "noexec", "--", "/dev/null"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    // the default job name is the command's file name; a second run counts up
    for _ in 0..2 {
        let o = run(&base, &spool, &["--", "true"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }

    // SIGTERM to `sextant run` reaches the command: 128+15.
    let mark = dir.path().join("started");
    let mut child = Command::new(SEXTANT)
        .args(["run", "--server", &base, "--spool-dir"])
        .arg(&spool)
        .args(["--job", "cancelled", "--", "sh", "-c"])
        .arg(format!("touch {}; exec sleep 60", mark.display()))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the wrapped command to start",
        Duration::from_secs(30),
        || mark.exists(),
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "SIGTERM was not forwarded"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(143));

    // Exact values.
    let j = r#"job="ok",branch="main""#;
    assert_eq!(one(&base, &format!("sextant_job_success{{{j}}}")), 1.0);
    assert_eq!(one(&base, &format!("sextant_job_exit_code{{{j}}}")), 0.0);
    assert_eq!(
        one(&base, &format!("sextant_job_ttl_seconds{{{j}}}")),
        3600.0
    );
    let d = one(&base, &format!("sextant_job_duration_seconds{{{j}}}"));
    assert!((0.3..30.0).contains(&d), "duration {d}");
    let start = one(
        &base,
        &format!("sextant_job_start_timestamp_seconds{{{j}}}"),
    );
    let end = one(
        &base,
        &format!("sextant_job_last_run_timestamp_seconds{{{j}}}"),
    );
    assert!((end - start - d).abs() < 1e-3, "end - start = duration");
    assert_eq!(
        one(
            &base,
            &format!("sextant_job_last_success_timestamp_seconds{{{j}}}")
        ),
        end
    );
    assert!(one(&base, &format!("sextant_job_peak_rss_bytes{{{j}}}")) > 100_000.0);
    assert_eq!(
        query(&base, &format!("sextant_job_cpu_seconds{{{j}}}")).len(),
        2
    );
    let info = query(&base, &format!("sextant_job_info{{{j}}}"));
    let k = info.keys().next().unwrap();
    assert!(
        k.contains("commit=c0ffee") && k.contains("command=sh") && k.contains("host="),
        "{k}"
    );
    assert_eq!(
        one(
            &base,
            &format!("sextant_coverage_ratio{{{j},kind=\"line\"}}")
        ),
        0.875
    );
    assert_eq!(
        one(
            &base,
            &format!("sextant_coverage_covered{{{j},kind=\"branch\"}}")
        ),
        4.0
    );
    assert_eq!(
        one(
            &base,
            &format!("sextant_coverage_valid{{{j},kind=\"function\"}}")
        ),
        3.0
    );
    assert_eq!(
        one(&base, &format!("sextant_bench_seconds{{{j},benchmark=\"sleep 0.01\",stat=\"mean\",tool=\"hyperfine\"}}")),
        0.013012973520000002
    );
    assert_eq!(
        one(&base, &format!("sextant_bench_seconds{{{j},benchmark=\"parse/small\",stat=\"median\",tool=\"criterion\"}}")),
        279.62686982984013 / 1e9
    );
    assert_eq!(one(&base, r#"sextant_job_exit_code{job="three"}"#), 3.0);
    assert_eq!(one(&base, r#"sextant_job_success{job="three"}"#), 0.0);
    assert_eq!(
        one(
            &base,
            r#"sextant_job_runs_total{job="three",result="failure"}"#
        ),
        1.0
    );
    assert_eq!(one(&base, r#"sextant_job_exit_code{job="killed"}"#), 137.0);
    assert_eq!(one(&base, r#"sextant_job_exit_code{job="missing"}"#), 127.0);
    assert_eq!(
        one(&base, r#"sextant_job_peak_rss_bytes{job="missing"}"#),
        0.0
    );
    assert_eq!(one(&base, r#"sextant_job_exit_code{job="noexec"}"#), 126.0);
    assert_eq!(
        one(&base, r#"sextant_job_exit_code{job="cancelled"}"#),
        143.0
    );
    assert_eq!(
        one(
            &base,
            r#"sextant_job_runs_total{job="true",result="success"}"#
        ),
        2.0
    );
    assert_eq!(
        one(
            &base,
            r#"sextant_job_runs_total{job="true",result="failure"}"#
        ),
        0.0
    );
    // A job that never succeeded has no last-success time.
    assert!(query(
        &base,
        r#"sextant_job_last_success_timestamp_seconds{job="three"}"#
    )
    .is_empty());

    // The built-in dashboard's queries see the jobs.
    let dash: Value = client()
        .get(s.url("/api/sextant/dashboards/jobs"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        dash["data"]["dashboard"]["title"], "Jobs and benchmarks",
        "{dash}"
    );
    let mut exprs = Vec::new();
    for p in dash["data"]["dashboard"]["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().cloned().unwrap_or_default() {
            exprs.push(t["expr"].as_str().unwrap().replace("$job", ".*"));
        }
    }
    let jobs = query(
        &base,
        r#"count(sextant_job_last_run_timestamp_seconds{job=~".*"}) or vector(0)"#,
    );
    assert_eq!(jobs.values().next(), Some(&7.0), "{jobs:?}");
    assert!(exprs
        .iter()
        .any(|e| e.starts_with("count(sextant_job_last_run_timestamp_seconds")));
    for e in &exprs {
        let r: Value = client()
            .get(format!("{base}/api/v1/query"))
            .query(&[("query", e.as_str())])
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(r["status"], "success", "dashboard query {e}: {r}");
    }
    let failed = query(
        &base,
        r#"count(sextant_job_success{job=~".*"} == 0) or vector(0)"#,
    );
    assert_eq!(
        failed.values().next(),
        Some(&5.0),
        "three, killed, missing, noexec, cancelled"
    );
    // The benchmark table joins in the commit.
    let by_commit = query(
        &base,
        r#"sextant_bench_seconds{job=~".*",stat="mean"} * on (job) group_left (commit) sextant_job_info{job=~".*"}"#,
    );
    assert_eq!(by_commit.len(), 3, "{by_commit:?}");
    assert!(
        by_commit.keys().all(|k| k.contains("commit=c0ffee")),
        "{by_commit:?}"
    );
    assert_eq!(
        by_commit
            .get("benchmark=sleep 0.01,branch=main,commit=c0ffee,job=ok,stat=mean,tool=hyperfine"),
        Some(&0.013012973520000002),
        "{by_commit:?}"
    );
    let cov_panel = query(&base, r#"sextant_coverage_ratio{job=~".*"}"#);
    assert_eq!(cov_panel.len(), 3, "line, branch, function: {cov_panel:?}");

    // The failed runs fire JobFailed (built-in rules, evaluated every second).
    wait_for("JobFailed for job three", Duration::from_secs(60), || {
        alert_firing(&base, "JobFailed", "three")
    });
}

#[test]
fn bad_files_and_options_only_warn() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let s = server(&dir.path().join("data"));
    let base = s.url("");
    let bad_bench = dir.path().join("bench.json");
    std::fs::write(&bad_bench, r#"{"results":[{"command":"a","mean":-1}]}"#).unwrap();
    let bad_cov = dir.path().join("cov.info");
    std::fs::write(&bad_cov, "SF:a.c\nDA:x,1\nend_of_record\n").unwrap();
    let not_xml = dir.path().join("junit.xml");
    std::fs::write(&not_xml, "PASS all tests").unwrap();
    let o = run(
        &base,
        &spool,
        &[
            "--job",
            "warned",
            "--bench",
            bad_bench.to_str().unwrap(),
            "--coverage",
            bad_cov.to_str().unwrap(),
            "--junit",
            not_xml.to_str().unwrap(),
            "--junit",
            &format!("{}/nothing-*.xml", dir.path().display()),
            "--",
            "sh",
            "-c",
            "exit 4",
        ],
    );
    assert_eq!(o.status.code(), Some(4));
    let e = stderr(&o);
    assert!(
        e.contains(r#"hyperfine: benchmark "a": field "mean" is -1"#),
        "{e}"
    );
    assert!(e.contains("LCOV line 2: DA:x,1"), "{e}");
    assert!(e.contains("not JUnit XML"), "{e}");
    assert!(e.contains("no file matches"), "{e}");
    // The run itself is still reported.
    assert_eq!(one(&base, r#"sextant_job_exit_code{job="warned"}"#), 4.0);
    assert!(query(&base, r#"sextant_bench_seconds{job="warned"}"#).is_empty());

    // A bad option: the command still runs with its exit code, the run is not reported.
    let o = run(
        &base,
        &spool,
        &[
            "--job", "badlabel", "--label", "__x=1", "--", "sh", "-c", "exit 6",
        ],
    );
    assert_eq!(o.status.code(), Some(6));
    assert!(
        stderr(&o).contains("not a valid label name"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &base,
        &spool,
        &["--job", "badttl", "--ttl", "soon", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("--ttl \"soon\""), "{}", stderr(&o));
}

/// Starts `sextant serve` on a given port (the spooled results name it).
fn server_on(port: u16, dir: &Path) -> Server {
    let child = Command::new(SEXTANT)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .args([
            "--no-host-metrics",
            "--self-monitor-interval",
            "0",
            "--log-level",
            "warn",
            "--evaluation-interval",
            "1s",
            "--push-interval",
            "1s",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut s = Server { child, port };
    s.wait_ready(Duration::from_secs(60));
    s
}

fn pending(spool: &Path) -> usize {
    std::fs::read_dir(spool.join("pending"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn server_down_spools_and_flushes_later_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // Server down: exit codes unchanged, a warning, results kept.
    let o = run(
        &url,
        &spool,
        &["--job", "spooled", "--", "sh", "-c", "exit 0"],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("not reachable"), "{}", stderr(&o));
    let o = run(
        &url,
        &spool,
        &["--job", "spooled", "--", "sh", "-c", "exit 5"],
    );
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(pending(&spool), 2);
    let o = run(&url, &spool, &["--flush"]);
    assert_eq!(o.status.code(), Some(1), "flush with the server down fails");

    // An older result from a second runner that will reach the server after a newer one.
    let spool_b = dir.path().join("spool-b");
    let o = run(
        &url,
        &spool_b,
        &["--job", "other", "--", "sh", "-c", "exit 7"],
    );
    assert_eq!(o.status.code(), Some(7));

    let s = server_on(port, &dir.path().join("data"));
    let base = s.url("");
    // A newer run of "other" reaches the server directly.
    let spool_c = dir.path().join("spool-c");
    let o = run(
        &base,
        &spool_c,
        &["--job", "other", "--", "sh", "-c", "exit 0"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let o = run(&url, &spool, &["--flush"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(pending(&spool), 0);
    // Oldest first: the group ends with the newer run (exit 5), both runs were stored.
    assert_eq!(one(&base, r#"sextant_job_exit_code{job="spooled"}"#), 5.0);
    assert_eq!(
        one(
            &base,
            r#"sextant_job_runs_total{job="spooled",result="success"}"#
        ),
        1.0
    );
    assert_eq!(
        one(
            &base,
            r#"sextant_job_runs_total{job="spooled",result="failure"}"#
        ),
        1.0
    );
    let hist = common::export(&client(), &base, r#"sextant_job_exit_code{job="spooled"}"#);
    let vals: Vec<f64> = hist[0]
        .1
        .iter()
        .map(|s| s.1)
        .filter(|v| !v.is_nan())
        .collect();
    assert_eq!(vals.first(), Some(&0.0), "{vals:?}");
    assert_eq!(vals.last(), Some(&5.0), "{vals:?}");
    // The success time of the first spooled run survived the failed second one.
    let ok_end = one(
        &base,
        r#"sextant_job_last_success_timestamp_seconds{job="spooled"}"#,
    );
    assert!(
        ok_end
            < one(
                &base,
                r#"sextant_job_last_run_timestamp_seconds{job="spooled"}"#
            )
    );

    // The second runner's older result does not replace the newer one (sent by a later run).
    let o = run(&base, &spool_b, &["--job", "unrelated", "--", "true"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("already has a newer run"),
        "{}",
        stderr(&o)
    );
    assert_eq!(pending(&spool_b), 0);
    assert_eq!(one(&base, r#"sextant_job_exit_code{job="other"}"#), 0.0);
}

#[test]
fn missed_run_alert_fires_after_the_ttl_and_resolves_on_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let s = server(&dir.path().join("data"));
    let base = s.url("");
    let o = run(
        &base,
        &spool,
        &[
            "--job", "cron", "--label", "env=prod", "--ttl", "2s", "--", "true",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        one(&base, r#"sextant_job_success{job="cron",env="prod"}"#),
        1.0
    );
    wait_for("JobMissedRun to fire", Duration::from_secs(90), || {
        alert_firing(&base, "JobMissedRun", "cron")
    });
    let (_, labels) = firing(&base)
        .into_iter()
        .find(|(n, _)| n == "JobMissedRun")
        .unwrap();
    assert_eq!(labels.get("env").map(String::as_str), Some("prod"));
    assert_eq!(labels.get("severity").map(String::as_str), Some("P2"));
    let o = run(
        &base,
        &spool,
        &[
            "--job", "cron", "--label", "env=prod", "--ttl", "1h", "--", "true",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    wait_for("JobMissedRun to resolve", Duration::from_secs(90), || {
        !alert_firing(&base, "JobMissedRun", "cron")
    });
    assert_eq!(
        one(
            &base,
            r#"sextant_job_runs_total{job="cron",env="prod",result="success"}"#
        ),
        2.0
    );
}

#[test]
fn benchmark_regression_alert_fires() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let s = server(&dir.path().join("data"));
    let base = s.url("");
    let bench = dir.path().join("hyperfine.json");
    let write = |mean: f64| {
        std::fs::write(
            &bench,
            format!(r#"{{"results":[{{"command":"make bench","mean":{mean},"stddev":0.001,"median":{mean},"min":{mean},"max":{mean},"times":[{mean}]}}]}}"#),
        )
        .unwrap();
    };
    write(0.1);
    let args = [
        "--job",
        "perf",
        "--bench",
        bench.to_str().unwrap(),
        "--",
        "true",
    ];
    assert_eq!(run(&base, &spool, &args).status.code(), Some(0));
    let sel =
        r#"sextant_bench_seconds{job="perf",benchmark="make bench",stat="mean",tool="hyperfine"}"#;
    assert_eq!(one(&base, sel), 0.1);
    // Let the baseline build up (the push store re-writes the value every second).
    wait_for("30 baseline samples", Duration::from_secs(120), || {
        let h = common::export(&client(), &base, sel);
        h.first().is_some_and(|(_, s)| s.len() >= 30)
    });
    assert!(!alert_firing(&base, "BenchmarkRegression", "perf"));
    write(0.5);
    assert_eq!(run(&base, &spool, &args).status.code(), Some(0));
    assert_eq!(one(&base, sel), 0.5);
    wait_for(
        "BenchmarkRegression to fire",
        Duration::from_secs(25),
        || {
            firing(&base).iter().any(|(n, l)| {
                n == "BenchmarkRegression"
                    && l.get("benchmark").map(String::as_str) == Some("make bench")
            })
        },
    );
    // Fast again: resolved.
    write(0.1);
    assert_eq!(run(&base, &spool, &args).status.code(), Some(0));
    wait_for(
        "BenchmarkRegression to resolve",
        Duration::from_secs(30),
        || !alert_firing(&base, "BenchmarkRegression", "perf"),
    );
}

/// A recording HTTP server: answers 200 to everything and keeps (request line, headers, body).
type Recorded = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

fn recording_server() -> (u16, Recorded) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let rec: Recorded = Arc::default();
    let r2 = rec.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                match c.read(&mut chunk) {
                    Ok(0) | Err(_) => break usize::MAX,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            if head_end == usize::MAX {
                continue;
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < head_end + len {
                match c.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let (line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
            r2.lock().unwrap().push((
                line.to_string(),
                headers.to_ascii_lowercase(),
                buf[head_end..].to_vec(),
            ));
            let body = if line.starts_with("GET /api/v1/metrics") {
                r#"{"status":"success","data":[]}"#
            } else {
                ""
            };
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, rec)
}

#[test]
fn junit_files_are_uploaded_unparsed_with_job_commit_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (port, rec) = recording_server();
    let url = format!("http://127.0.0.1:{port}");
    let reports = dir.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let a = "<?xml version=\"1.0\"?>\n<testsuites><testsuite name=\"a\" tests=\"1\"><testcase name=\"t\"/></testsuite></testsuites>\n";
    let b = "<testsuite name=\"b\" tests=\"1\" failures=\"1\"><testcase name=\"u\"><failure message=\"x\"/></testcase></testsuite>";
    std::fs::write(reports.join("a.xml"), a).unwrap();
    std::fs::write(reports.join("b.xml"), b).unwrap();
    std::fs::write(reports.join("notes.txt"), "x").unwrap();
    let glob = format!("{}/*.xml", reports.display());
    let o = run(
        &url,
        &dir.path().join("spool"),
        &[
            "--job",
            "ci",
            "--label",
            "branch=feat/x",
            "--ttl",
            "90m",
            "--junit",
            &glob,
            "--",
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let rec = rec.lock().unwrap();
    let lines: Vec<&str> = rec.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[0],
        "POST /metrics/job/ci/branch@base64/ZmVhdC94?ttl=5400000ms HTTP/1.1"
    );
    for l in &lines[1..] {
        let run = l
            .strip_prefix("POST /api/v1/junit?job=ci&commit=c0ffee&run=")
            .and_then(|r| r.strip_suffix("&label=branch%3Dfeat%2Fx HTTP/1.1"))
            .unwrap_or_else(|| panic!("{l}"));
        assert!(run.parse::<f64>().is_ok_and(|t| t > 1.7e9), "run id {run}");
    }
    assert_eq!(lines[1], lines[2], "both files of the run carry one run id");
    assert!(
        rec[0].1.contains("content-type: text/plain; version=0.0.4"),
        "{}",
        rec[0].1
    );
    assert!(
        rec[1].1.contains("content-type: application/xml"),
        "{}",
        rec[1].1
    );
    assert_eq!(rec[1].2, a.as_bytes(), "uploaded as it is");
    assert_eq!(rec[2].2, b.as_bytes());
}

#[test]
fn parallel_runs_count_every_run_and_upload_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let (port, rec) = recording_server();
    let url = format!("http://127.0.0.1:{port}");
    let spool = dir.path().join("spool");
    let xml = dir.path().join("t.xml");
    std::fs::write(&xml, "<testsuite name=\"p\" tests=\"0\"/>").unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(SEXTANT)
                .args(["run", "--server", &url, "--spool-dir"])
                .arg(&spool)
                .args([
                    "--job",
                    "par",
                    "--junit",
                    xml.to_str().unwrap(),
                    "--",
                    "sh",
                    "-c",
                    "exit 0",
                ])
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let rec = rec.lock().unwrap();
    let pushes: Vec<&(String, String, Vec<u8>)> = rec
        .iter()
        .filter(|r| r.0.starts_with("POST /metrics/job/par "))
        .collect();
    let uploads = rec
        .iter()
        .filter(|r| r.0.starts_with("POST /api/v1/junit"))
        .count();
    assert_eq!(
        pushes.len(),
        4,
        "{:?}",
        rec.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    assert_eq!(uploads, 4, "each run's JUnit file exactly once");
    let counts: Vec<String> = pushes
        .iter()
        .filter_map(|p| {
            String::from_utf8_lossy(&p.2)
                .lines()
                .find(|l| l.starts_with("sextant_job_runs_total{result=\"success\"}"))
                .map(String::from)
        })
        .collect();
    // Sent in the order the runs were counted, so the counter never goes backwards.
    assert_eq!(
        counts,
        (1..=4)
            .map(|i| format!("sextant_job_runs_total{{result=\"success\"}} {i}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(pending(&spool), 0);
}
