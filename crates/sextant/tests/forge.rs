//! End to end: `sextant serve` with a `forges:` section polls a local server that answers like
//! GitHub's and Gitea's REST APIs (recorded responses in crates/ingest/testdata/forge/), then
//! the series have the exact values of the fixtures, pages are revalidated with ETags (the
//! fixture server's request log shows `If-None-Match` and 304s), rate limits (a 403 with
//! `X-RateLimit-Remaining: 0`, a 429 with `Retry-After`) are backed off and resumed, the token
//! is sent as each forge documents and never logged, every query of the built-in "Forge"
//! dashboard returns data, and the shipped alert on a repository that cannot be polled goes
//! pending. Bad `forges:` entries are refused with the line and field.

mod common;

#[path = "../../ingest/testdata/forge/server.rs"]
mod fixture_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{client, free_port, Server};
use fixture_server::{FixtureServer, Once};

const GITHUB_TOKEN: &str = "ghp_e2eSECRETtoken0123";
const GITEA_TOKEN: &str = "gt_e2eSECRETtoken4567";

fn query(base: &str, expr: &str) -> Vec<(serde_json::Value, f64)> {
    let r: serde_json::Value = client()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .expect("query")
        .json()
        .expect("query JSON");
    assert_eq!(r["status"], "success", "{expr}: {r}");
    r["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let v = s["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN);
            (s["metric"].clone(), v)
        })
        .collect()
}

/// The single value of `expr`; panics when it does not have exactly one series.
fn one(base: &str, expr: &str) -> f64 {
    let r = query(base, expr);
    assert_eq!(r.len(), 1, "{expr}: {r:?}");
    r[0].1
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn fixtures() -> FixtureServer {
    FixtureServer::start(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ingest/testdata/forge"))
}

fn start(dir: &Path, config: &Path, log: &Path) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(config)
        .args([
            "--no-host-metrics",
            "--self-monitor-interval",
            "0",
            "--evaluation-interval",
            "1s",
            "--log-level",
            "debug",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn sextant");
    let mut s = Server { child, port };
    s.wait_ready(Duration::from_secs(60));
    s
}

#[test]
fn forge_polling_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let srv = fixtures();
    srv.once(Once {
        path_suffix: "/acme/limited/issues".into(),
        status: 403,
        headers: vec![
            ("X-RateLimit-Limit".into(), "5000".into()),
            ("X-RateLimit-Remaining".into(), "0".into()),
            ("X-RateLimit-Reset".into(), (now_s() + 2).to_string()),
        ],
        body: r#"{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}"#.into(),
    });
    srv.once(Once {
        path_suffix: "/org/app/actions/tasks".into(),
        status: 429,
        headers: vec![("Retry-After".into(), "1".into())],
        body: "{}".into(),
    });
    let token_file = dir.path().join("gitea-token");
    std::fs::write(&token_file, format!("{GITEA_TOKEN}\n")).unwrap();
    let config = dir.path().join("sextant.yml");
    std::fs::write(
        &config,
        format!(
            "forges:\n  - type: github\n    url: {}\n    token: {GITHUB_TOKEN}\n    repos: [acme/limited, acme/widgets, acme/typo]\n    interval: 2s\n  - type: gitea\n    name: gitea-local\n    url: {}\n    token_file: {}\n    repos: [org/app]\n    interval: 2s\n    labels: {{team: core}}\n",
            srv.url("/github"),
            srv.url("/gitea/api/v1"),
            token_file.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("sextant.log");
    let s = start(dir.path(), &config, &log);
    let base = s.url("");

    wait_for("all repositories polled", Duration::from_secs(90), || {
        query(&base, "sextant_forge_last_poll_success_timestamp_seconds").len() == 3
    });
    let w = r#"forge="github",repo="acme/widgets""#;
    let g = r#"forge="gitea-local",repo="org/app",team="core""#;
    let v = |e: &str| one(&base, e);

    // Issues: GitHub #1 #4 #5 open, #2 closed (#3 is a pull request in the issue list).
    assert_eq!(
        v(&format!(
            "sextant_forge_issues{{{w},state=\"open\",label=\"\"}}"
        )),
        3.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_issues{{{w},state=\"closed\",label=\"\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_issues{{{w},state=\"open\",label=\"bug\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_issues{{{w},state=\"closed\",label=\"ui\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_issues{{{g},state=\"open\",label=\"bug\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_issues{{{g},state=\"closed\",label=\"\"}}"
        )),
        1.0
    );
    // Pull requests.
    assert_eq!(
        v(&format!(
            "sextant_forge_pull_requests{{{w},state=\"merged\"}}"
        )),
        2.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_pull_requests{{{w},state=\"open\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_pull_requests{{{w},state=\"closed\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!("sextant_forge_pull_requests_opened_total{{{w}}}")),
        4.0
    );
    assert_eq!(
        v(&format!("sextant_forge_pull_requests_merged_total{{{w}}}")),
        2.0
    );
    assert_eq!(
        v(&format!("sextant_forge_pull_requests_merged_total{{{g}}}")),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_pull_request_time_to_merge_seconds_sum{{{w}}}"
        )),
        93600.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_pull_request_time_to_merge_seconds_count{{{w}}}"
        )),
        2.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_pull_request_time_to_merge_seconds_sum{{{g}}}"
        )),
        3600.0
    );
    // p50 of {7200, 86400}: the first bucket holding one of two, (3600, 7200].
    assert_eq!(
        v(&format!("histogram_quantile(0.5, sextant_forge_pull_request_time_to_merge_seconds_bucket{{{w}}})")),
        7200.0
    );
    // CI runs.
    assert_eq!(
        v(&format!(
            "sextant_forge_ci_runs_total{{{w},workflow=\"CI\",conclusion=\"success\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_ci_runs_total{{{w},workflow=\"CI\",conclusion=\"failure\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_ci_runs_total{{{w},workflow=\"Release\",conclusion=\"success\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_ci_run_duration_seconds_sum{{{w},workflow=\"CI\"}}"
        )),
        420.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_ci_run_duration_seconds_count{{{w},workflow=\"CI\"}}"
        )),
        2.0
    );
    assert_eq!(v(&format!("sextant_forge_ci_runs_in_progress{{{w}}}")), 1.0);
    assert_eq!(
        v(&format!(
            "sextant_forge_ci_runs_total{{{g},workflow=\"ci.yml\",conclusion=\"success\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_ci_runs_total{{{g},workflow=\"ci.yml\",conclusion=\"failure\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_ci_run_duration_seconds_sum{{{g},workflow=\"ci.yml\"}}"
        )),
        120.0
    );

    // Rate limits were met once each, backed off and resumed (the limited repository and the
    // Gitea tasks were polled successfully afterwards).
    assert_eq!(
        v(r#"sextant_forge_api_requests_total{forge="github",code="403"}"#),
        1.0
    );
    assert_eq!(
        v(r#"sextant_forge_api_requests_total{forge="gitea-local",code="429"}"#),
        1.0
    );
    assert!(v(r#"sextant_forge_rate_limit_remaining{forge="github"}"#) > 4000.0);
    let log_now = srv.log();
    let i403 = log_now
        .iter()
        .position(|r| r.status == 403)
        .expect("403 served");
    let next_limited = log_now[i403 + 1..]
        .iter()
        .position(|r| r.path() == "/github/repos/acme/limited/issues")
        .expect("limited repository asked again");
    let _ = next_limited;

    // ETags: later polls revalidate and get 304s; nothing is counted twice.
    wait_for("304 answers", Duration::from_secs(30), || {
        srv.log()
            .iter()
            .filter(|r| r.path() == "/github/repos/acme/widgets/pulls" && r.status == 304)
            .count()
            >= 2
    });
    let log_now = srv.log();
    for r in log_now.iter().filter(|r| r.status == 304) {
        assert!(r.header("if-none-match").is_some(), "{r:?}");
    }
    assert!(v(r#"sextant_forge_api_requests_total{forge="github",code="304"}"#) >= 2.0);
    assert_eq!(
        v(&format!("sextant_forge_pull_requests_merged_total{{{w}}}")),
        2.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_ci_runs_total{{{w},workflow=\"CI\",conclusion=\"success\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            "sextant_forge_issues{{{w},state=\"open\",label=\"\"}}"
        )),
        3.0
    );

    // The token, as each forge documents it, on every request.
    for r in &log_now {
        let want = if r.path().starts_with("/github/") {
            format!("Bearer {GITHUB_TOKEN}")
        } else {
            format!("token {GITEA_TOKEN}")
        };
        assert_eq!(
            r.header("authorization"),
            Some(want.as_str()),
            "{}",
            r.target
        );
    }

    // Every query of the built-in Forge dashboard returns data.
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dashboards/forge.yml"),
    )
    .unwrap();
    let d = sextant_dashboards::parse(&text, "forge.yml", sextant_dashboards::Format::Yaml)
        .expect("dashboard parses");
    let mut n = 0;
    for p in &d.panels {
        for t in &p.targets {
            let e = t.expr.replace("$repo", ".*");
            let r = query(&base, &e);
            assert!(!r.is_empty(), "panel {:?}: {e} returned nothing", p.title);
            n += 1;
        }
    }
    assert!(n >= 15, "{n} queries");

    // The shipped alert for a repository that never polls goes pending (its `for: 15m` and
    // resolution are covered by rules/tests/forge_test.yml under promtool and sextant).
    wait_for(
        "ForgePollingNeverSucceeded pending",
        Duration::from_secs(30),
        || {
            query(
            &base,
            r#"ALERTS{alertname="ForgePollingNeverSucceeded",repo="acme/typo",forge="github",severity="P2"}"#,
        )
        .len()
            == 1
        },
    );
    assert!(query(
        &base,
        r#"ALERTS{alertname="ForgePollingNeverSucceeded",repo="acme/widgets"}"#
    )
    .is_empty());

    // Counters continue across a restart without counting anything twice.
    drop(s);
    let restarted = now_s() as f64;
    let s = start(dir.path(), &config, &log.with_extension("2.log"));
    let base = s.url("");
    // Wait for samples written by the new process (the old one's are still in the lookback).
    wait_for("series after the restart", Duration::from_secs(60), || {
        query(&base, &format!("timestamp(sextant_forge_pull_requests_merged_total{{{w}}}) > {restarted} and timestamp(sextant_forge_last_poll_success_timestamp_seconds{{{w}}}) > {restarted}")).len() == 1
            && query(&base, &format!("timestamp(sextant_forge_ci_runs_total{{{g},workflow=\"ci.yml\",conclusion=\"success\"}}) > {restarted}")).len() == 1
    });
    assert_eq!(
        one(
            &base,
            &format!("sextant_forge_pull_requests_merged_total{{{w}}}")
        ),
        2.0
    );
    assert_eq!(
        one(
            &base,
            &format!("sextant_forge_pull_requests_opened_total{{{w}}}")
        ),
        4.0
    );
    assert_eq!(
        one(
            &base,
            &format!(
                "sextant_forge_ci_runs_total{{{g},workflow=\"ci.yml\",conclusion=\"success\"}}"
            )
        ),
        1.0
    );

    // A changed `forges:` section applies on /-/reload: the GitHub forge now polls one
    // repository with an extra label, and its counters continue from the saved state.
    std::fs::write(
        &config,
        format!(
            "forges:\n  - type: github\n    url: {}\n    token: {GITHUB_TOKEN}\n    repos: [acme/widgets]\n    interval: 2s\n    labels: {{env: e2e}}\n",
            srv.url("/github"),
        ),
    )
    .unwrap();
    let r = client().post(s.url("/-/reload")).send().unwrap();
    assert!(r.status().is_success(), "reload: {}", r.status());
    wait_for(
        "the reloaded forge's series",
        Duration::from_secs(30),
        || {
            !query(
                &base,
                r#"sextant_forge_pull_requests_merged_total{env="e2e"}"#,
            )
            .is_empty()
        },
    );
    assert_eq!(
        one(
            &base,
            &format!("sextant_forge_pull_requests_merged_total{{{w},env=\"e2e\"}}")
        ),
        2.0
    );
    drop(s);

    // Never in the logs.
    for f in [log.clone(), log.with_extension("2.log")] {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains("forge"), "debug log mentions the pollers");
        assert!(
            !text.contains(GITHUB_TOKEN) && !text.contains(GITEA_TOKEN),
            "token in {}",
            f.display()
        );
    }
}

#[test]
fn bad_forges_config_is_refused_with_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sextant.yml");
    for (text, want) in [
        (
            "forges:\n  - type: gitea\n    repos: [org/app]\n",
            "sextant.yml:2: forges[0] (forge \"gitea\"): url: required for type gitea",
        ),
        (
            "forges:\n  - type: github\n    repos: [acme/widgets]\n    intervall: 1m\n",
            "sextant.yml:4: unknown field `intervall`",
        ),
        (
            "forges:\n  - type: github\n    repos: [not-a-repo]\n",
            "sextant.yml:2: forges[0] (forge \"github\"): repos: \"not-a-repo\" is not of the form owner/name",
        ),
    ] {
        std::fs::write(&f, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["check", "config", "sextant.yml"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(err.contains(want), "{text}\nwant {want}\ngot {err}");
        let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["serve", "--no-host-metrics", "--listen", &format!("127.0.0.1:{}", free_port()), "--config", "sextant.yml", "--data-dir", "data"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(want));
    }
}
