//! The poller against the fixture server (`testdata/forge/server.rs`), which serves recorded
//! responses shaped like GitHub's and Gitea's documented APIs.

#[path = "../../testdata/forge/server.rs"]
mod fixture_server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fixture_server::{FixtureServer, Once};
use sextant_model::{HistogramValue, Labels};

use super::client::Api;
use super::poller::Poller;
use super::ForgeConfig;
use crate::remote_write::WriteBatch;
use crate::{Sink, SinkError, Stored};

#[derive(Default)]
struct VecSink {
    batches: Mutex<Vec<WriteBatch>>,
    last: BTreeMap<String, f64>,
}

impl Sink for VecSink {
    fn store(&self, batch: WriteBatch) -> Result<Stored, SinkError> {
        self.batches.lock().unwrap().push(batch);
        Ok(Stored::default())
    }
    fn last_sample(&self, labels: &Labels) -> Option<(i64, Result<f64, HistogramValue>)> {
        self.last.get(&labels.to_string()).map(|v| (0, Ok(*v)))
    }
}

fn fixtures() -> FixtureServer {
    FixtureServer::start(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/forge"))
}

fn config(yaml: &str) -> ForgeConfig {
    let c: ForgeConfig = serde_saphyr::from_str(yaml).expect("config");
    c.validate().expect("valid");
    c
}

fn poller(cfg: ForgeConfig, sink: Arc<dyn Sink>, path: Option<PathBuf>) -> Poller {
    let api = Api::new(&cfg).unwrap();
    Poller::new(cfg, api, sink, path)
}

/// The series of the poller's current state, by their Prometheus notation.
fn series(p: &Poller) -> BTreeMap<String, f64> {
    let base: Vec<(String, String)> = vec![("forge".into(), p.cfg.name().into())];
    p.state
        .batch(&base, 1, p.api.rate_remaining)
        .series
        .into_iter()
        .map(|s| (s.labels.to_string(), s.samples[0].v))
        .collect()
}

fn get(m: &BTreeMap<String, f64>, k: &str) -> f64 {
    *m.get(k).unwrap_or_else(|| {
        panic!(
            "no series {k}; have:\n{}",
            m.keys().cloned().collect::<Vec<_>>().join("\n")
        )
    })
}

fn github(srv: &FixtureServer, repos: &str) -> ForgeConfig {
    config(&format!(
        "type: github\nurl: {}\ntoken: ghp_s3cret\nrepos: [{repos}]\ninterval: 1s\n",
        srv.url("/github")
    ))
}

#[tokio::test]
async fn github_issues_pulls_runs_exact() {
    let srv = fixtures();
    let sink: Arc<dyn Sink> = Arc::new(VecSink::default());
    let mut p = poller(github(&srv, "acme/widgets"), sink, None);
    p.poll().await;
    let m = series(&p);
    let w = r#"forge="github", repo="acme/widgets""#;
    // Issues #1, #4, #5 open, #2 closed; #3 is a pull request listed as an issue.
    assert_eq!(
        get(&m, &format!("sextant_forge_issues{{{w}, state=\"open\"}}")),
        3.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_issues{{{w}, state=\"closed\"}}")
        ),
        1.0
    );
    assert_eq!(get(&m, "sextant_forge_issues{forge=\"github\", label=\"bug\", repo=\"acme/widgets\", state=\"open\"}"), 1.0);
    assert_eq!(get(&m, "sextant_forge_issues{forge=\"github\", label=\"bug\", repo=\"acme/widgets\", state=\"closed\"}"), 1.0);
    assert_eq!(get(&m, "sextant_forge_issues{forge=\"github\", label=\"enhancement\", repo=\"acme/widgets\", state=\"open\"}"), 1.0);
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_pull_requests{{{w}, state=\"open\"}}")
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_pull_requests{{{w}, state=\"merged\"}}")
        ),
        2.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_pull_requests{{{w}, state=\"closed\"}}")
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_pull_requests_opened_total{{{w}}}")
        ),
        4.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_pull_requests_merged_total{{{w}}}")
        ),
        2.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_pull_requests_closed_total{{{w}}}")
        ),
        1.0
    );
    // #3 took 2 h, #8 one day.
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_pull_request_time_to_merge_seconds_sum{{{w}}}")
        ),
        93600.0
    );
    assert_eq!(get(&m, "sextant_forge_pull_request_time_to_merge_seconds_bucket{forge=\"github\", le=\"3600\", repo=\"acme/widgets\"}"), 0.0);
    assert_eq!(get(&m, "sextant_forge_pull_request_time_to_merge_seconds_bucket{forge=\"github\", le=\"7200\", repo=\"acme/widgets\"}"), 1.0);
    assert_eq!(get(&m, "sextant_forge_pull_request_time_to_merge_seconds_bucket{forge=\"github\", le=\"86400\", repo=\"acme/widgets\"}"), 2.0);
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_pull_request_time_to_merge_seconds_count{{{w}}}")
        ),
        2.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_ci_runs_total{{conclusion=\"success\", {w}, workflow=\"CI\"}}")
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_ci_runs_total{{conclusion=\"failure\", {w}, workflow=\"CI\"}}")
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            &format!(
                "sextant_forge_ci_runs_total{{conclusion=\"success\", {w}, workflow=\"Release\"}}"
            )
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_ci_run_duration_seconds_sum{{{w}, workflow=\"CI\"}}")
        ),
        420.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_ci_run_duration_seconds_count{{{w}, workflow=\"CI\"}}")
        ),
        2.0
    );
    assert_eq!(get(&m, "sextant_forge_ci_run_duration_seconds_bucket{forge=\"github\", le=\"120\", repo=\"acme/widgets\", workflow=\"CI\"}"), 1.0);
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_ci_run_duration_seconds_sum{{{w}, workflow=\"Release\"}}")
        ),
        600.0
    );
    assert_eq!(
        get(&m, &format!("sextant_forge_ci_runs_in_progress{{{w}}}")),
        1.0
    );
    // #6, opened 2024-03-04T10:00:00Z.
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_oldest_open_pull_request_created_timestamp_seconds{{{w}}}")
        ),
        1709546400.0
    );
    assert_eq!(
        get(
            &m,
            "sextant_forge_api_requests_total{code=\"200\", forge=\"github\"}"
        ),
        4.0
    );
    assert_eq!(
        get(&m, "sextant_forge_rate_limit_remaining{forge=\"github\"}"),
        4996.0
    );
    assert!(m.contains_key(&format!(
        "sextant_forge_last_poll_success_timestamp_seconds{{{w}}}"
    )));

    let log = srv.log();
    assert_eq!(log.len(), 4, "{log:?}");
    for r in &log {
        assert_eq!(r.header("authorization"), Some("Bearer ghp_s3cret"));
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
        assert!(r.header("user-agent").is_some());
    }
    assert_eq!(
        log[0].target,
        "/github/repos/acme/widgets/issues?state=all&sort=updated&direction=asc&per_page=100"
    );
    // Page 2 came from the Link header.
    assert!(log[1].target.ends_with("&page=2"), "{}", log[1].target);

    // Second poll: issues since the newest update, pages revalidated by ETag → 304, nothing
    // counted twice, and the rate limit not used.
    p.poll().await;
    let log = srv.log();
    let second = &log[4..];
    assert_eq!(
        second[0].target,
        "/github/repos/acme/widgets/issues?state=all&sort=updated&direction=asc&per_page=100&since=2024-03-04T09%3A30%3A00Z"
    );
    let pulls: Vec<_> = second
        .iter()
        .filter(|r| r.path().ends_with("/pulls"))
        .collect();
    assert_eq!(pulls.len(), 1);
    assert!(pulls[0].header("if-none-match").is_some());
    assert_eq!(pulls[0].status, 304);
    let runs: Vec<_> = second
        .iter()
        .filter(|r| r.path().ends_with("/runs"))
        .collect();
    assert_eq!(runs[0].status, 304);
    let m2 = series(&p);
    assert_eq!(
        get(
            &m2,
            &format!("sextant_forge_pull_requests_merged_total{{{w}}}")
        ),
        2.0
    );
    assert_eq!(
        get(
            &m2,
            &format!("sextant_forge_pull_requests_opened_total{{{w}}}")
        ),
        4.0
    );
    assert_eq!(
        get(
            &m2,
            &format!("sextant_forge_ci_runs_total{{conclusion=\"success\", {w}, workflow=\"CI\"}}")
        ),
        1.0
    );
    assert_eq!(
        get(&m2, &format!("sextant_forge_issues{{{w}, state=\"open\"}}")),
        3.0
    );
    assert!(
        get(
            &m2,
            "sextant_forge_api_requests_total{code=\"304\", forge=\"github\"}"
        ) >= 2.0
    );
    assert_eq!(
        get(&m2, "sextant_forge_rate_limit_remaining{forge=\"github\"}"),
        5000.0
            - second
                .iter()
                .chain(&log[..4])
                .filter(|r| r.status == 200)
                .count() as f64
    );
}

#[tokio::test]
async fn gitea_token_header_and_values() {
    let srv = fixtures();
    let cfg = config(&format!(
        "type: gitea\nname: gitea-local\nurl: {}\ntoken: gt_s3cret\nrepos: [org/app]\nlabels: {{team: core}}\n",
        srv.url("/gitea/api/v1")
    ));
    let mut p = poller(cfg, Arc::new(VecSink::default()), None);
    p.poll().await;
    let base: Vec<(String, String)> = vec![
        ("forge".into(), "gitea-local".into()),
        ("team".into(), "core".into()),
    ];
    let m: BTreeMap<String, f64> = p
        .state
        .batch(&base, 1, None)
        .series
        .into_iter()
        .map(|s| (s.labels.to_string(), s.samples[0].v))
        .collect();
    let w = r#"forge="gitea-local", repo="org/app""#;
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_issues{{{w}, state=\"open\", team=\"core\"}}")
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_issues{{{w}, state=\"closed\", team=\"core\"}}")
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_pull_requests_merged_total{{{w}, team=\"core\"}}")
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_pull_request_time_to_merge_seconds_sum{{{w}, team=\"core\"}}")
        ),
        3600.0
    );
    assert_eq!(get(&m, &format!("sextant_forge_ci_runs_total{{conclusion=\"failure\", {w}, team=\"core\", workflow=\"ci.yml\"}}")), 1.0);
    assert_eq!(get(&m, &format!("sextant_forge_ci_run_duration_seconds_sum{{{w}, team=\"core\", workflow=\"ci.yml\"}}")), 120.0);
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_ci_runs_in_progress{{{w}, team=\"core\"}}")
        ),
        1.0
    );
    let log = srv.log();
    assert_eq!(log.len(), 3);
    for r in &log {
        assert_eq!(r.header("authorization"), Some("token gt_s3cret"));
    }
    assert_eq!(
        log[0].target,
        "/gitea/api/v1/repos/org/app/issues?state=all&type=issues&limit=50&page=1"
    );
    assert_eq!(
        log[2].target,
        "/gitea/api/v1/repos/org/app/actions/tasks?limit=50&page=1"
    );
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn rate_limits_back_off_and_resume() {
    let srv = fixtures();
    srv.once(Once {
        path_suffix: "/acme/limited/issues".into(),
        status: 403,
        headers: vec![
            ("X-RateLimit-Limit".into(), "5000".into()),
            ("X-RateLimit-Remaining".into(), "0".into()),
            ("X-RateLimit-Reset".into(), (now_s() + 1).to_string()),
        ],
        body: r#"{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}"#.into(),
    });
    let mut p = poller(
        github(&srv, "acme/limited, acme/widgets"),
        Arc::new(VecSink::default()),
        None,
    );
    p.poll().await;
    // Blocked: the second repository was not asked at all.
    assert_eq!(srv.log().len(), 1);
    let until = p.api.blocked_until.expect("blocked");
    assert!(until > SystemTime::now());
    let m = series(&p);
    assert_eq!(
        get(
            &m,
            "sextant_forge_api_requests_total{code=\"403\", forge=\"github\"}"
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            "sextant_forge_poll_errors_total{forge=\"github\", repo=\"acme/limited\"}"
        ),
        1.0
    );
    assert_eq!(
        get(&m, "sextant_forge_rate_limit_remaining{forge=\"github\"}"),
        0.0
    );
    tokio::time::sleep(
        until.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(50),
    )
    .await;
    p.poll().await;
    let m = series(&p);
    assert!(m.contains_key("sextant_forge_last_poll_success_timestamp_seconds{forge=\"github\", repo=\"acme/limited\"}"));
    assert_eq!(
        get(
            &m,
            "sextant_forge_pull_requests_merged_total{forge=\"github\", repo=\"acme/widgets\"}"
        ),
        2.0
    );

    // A 429 with Retry-After (Gitea behind a proxy, or GitHub's secondary limit).
    let srv = fixtures();
    srv.once(Once {
        path_suffix: "/org/app/actions/tasks".into(),
        status: 429,
        headers: vec![("Retry-After".into(), "1".into())],
        body: "{}".into(),
    });
    let cfg = config(&format!(
        "type: gitea\nurl: {}\nrepos: [org/app]\n",
        srv.url("/gitea/api/v1")
    ));
    let mut p = poller(cfg, Arc::new(VecSink::default()), None);
    let t0 = SystemTime::now();
    p.poll().await;
    let until = p.api.blocked_until.expect("blocked");
    let wait = until.duration_since(t0).unwrap();
    assert!(
        wait >= Duration::from_secs(1) && wait < Duration::from_secs(3),
        "{wait:?}"
    );
    let m = series(&p);
    assert_eq!(
        get(
            &m,
            "sextant_forge_api_requests_total{code=\"429\", forge=\"gitea\"}"
        ),
        1.0
    );
    assert!(!m.contains_key("sextant_forge_ci_runs_in_progress{forge=\"gitea\", repo=\"org/app\"}"));
    tokio::time::sleep(
        until.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(50),
    )
    .await;
    p.poll().await;
    let m = series(&p);
    assert_eq!(get(&m, "sextant_forge_ci_runs_total{conclusion=\"success\", forge=\"gitea\", repo=\"org/app\", workflow=\"ci.yml\"}"), 1.0);
}

#[tokio::test]
async fn counters_survive_restarts() {
    let srv = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("github.json");
    let mut p = poller(
        github(&srv, "acme/widgets"),
        Arc::new(VecSink::default()),
        Some(path.clone()),
    );
    p.poll().await;
    p.poll().await;
    let before = series(&p);
    // Restart with the saved state: the same pages again count nothing.
    let mut p = poller(
        github(&srv, "acme/widgets"),
        Arc::new(VecSink::default()),
        Some(path.clone()),
    );
    p.poll().await;
    let after = series(&p);
    for k in before
        .keys()
        .filter(|k| k.contains("_total") && !k.contains("api_requests"))
    {
        assert_eq!(before[k], after[k], "{k}");
    }
    assert!(
        after["sextant_forge_api_requests_total{code=\"200\", forge=\"github\"}"]
            >= before["sextant_forge_api_requests_total{code=\"200\", forge=\"github\"}"]
    );

    // Restart without the saved state but with stored samples: counters continue from storage,
    // and what is seen now is taken as counted already.
    let w = r#"forge="github", repo="acme/widgets""#;
    let mut last = BTreeMap::new();
    last.insert(
        format!("sextant_forge_last_poll_success_timestamp_seconds{{{w}}}"),
        1.7e9,
    );
    last.insert(
        format!("sextant_forge_pull_requests_merged_total{{{w}}}"),
        10.0,
    );
    last.insert(
        format!("sextant_forge_ci_runs_total{{conclusion=\"success\", {w}, workflow=\"CI\"}}"),
        7.0,
    );
    last.insert(
        "sextant_forge_api_requests_total{code=\"200\", forge=\"github\"}".to_string(),
        100.0,
    );
    let sink = Arc::new(VecSink {
        batches: Mutex::default(),
        last,
    });
    let mut p = poller(
        github(&srv, "acme/widgets"),
        sink,
        Some(dir.path().join("other.json")),
    );
    p.poll().await;
    let m = series(&p);
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_pull_requests_merged_total{{{w}}}")
        ),
        10.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_ci_runs_total{{conclusion=\"success\", {w}, workflow=\"CI\"}}")
        ),
        7.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_ci_runs_total{{conclusion=\"failure\", {w}, workflow=\"CI\"}}")
        ),
        0.0
    );
    assert!(
        get(
            &m,
            "sextant_forge_api_requests_total{code=\"200\", forge=\"github\"}"
        ) > 100.0
    );
}

#[test]
fn config_errors_name_the_field() {
    let e = |y: &str| {
        let c: ForgeConfig = serde_saphyr::from_str(y).expect("parses");
        c.validate().unwrap_err()
    };
    assert_eq!(
        e("type: gitea\nrepos: [a/b]\n"),
        "url: required for type gitea (e.g. https://gitea.example.com/api/v1)"
    );
    assert_eq!(
        e("type: github\nrepos: [a]\n"),
        "repos: \"a\" is not of the form owner/name"
    );
    assert_eq!(
        e("type: github\nrepos: []\n"),
        "repos: at least one owner/name is required"
    );
    assert_eq!(
        e("type: github\nrepos: [a/b]\ntoken: x\ntoken_file: /f\n"),
        "at most one of token & token_file must be configured"
    );
    assert_eq!(
        e("type: github\nrepos: [a/b]\nlabels: {repo: x}\n"),
        "labels: \"repo\" is set by the forge poller itself"
    );
    assert_eq!(
        e("type: github\nrepos: [a/b]\ninterval: 100ms\n"),
        "interval: must be at least 1s"
    );
    assert!(serde_saphyr::from_str::<ForgeConfig>("type: gitlab\nrepos: [a/b]\n").is_err());
    assert!(
        serde_saphyr::from_str::<ForgeConfig>("type: github\nrepos: [a/b]\nrepo: x\n").is_err()
    );
    let c: ForgeConfig =
        serde_saphyr::from_str("type: github\nrepos: [a/b]\ntoken: hunter2\n").unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    assert_eq!(c.base_url().unwrap().as_str(), "https://api.github.com/");
}

#[tokio::test]
async fn max_pages_bounds_a_poll_and_no_token_sends_no_header() {
    let srv = fixtures();
    let cfg = config(&format!(
        "type: github\nurl: {}\nrepos: [acme/widgets]\nmax_pages: 1\n",
        srv.url("/github")
    ));
    let mut p = poller(cfg, Arc::new(VecSink::default()), None);
    p.poll().await;
    let m = series(&p);
    let w = r#"forge="github", repo="acme/widgets""#;
    // Only page 1 of the issues: #1 open, #2 closed.
    assert_eq!(
        get(&m, &format!("sextant_forge_issues{{{w}, state=\"open\"}}")),
        1.0
    );
    assert_eq!(
        get(
            &m,
            &format!("sextant_forge_issues{{{w}, state=\"closed\"}}")
        ),
        1.0
    );
    let log = srv.log();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|r| !r.target.contains("page=2")));
    assert!(log.iter().all(|r| r.header("authorization").is_none()));
    // GitHub lists issues oldest update first: the next poll continues after page 1.
    p.poll().await;
    assert!(
        srv.log()[3]
            .target
            .ends_with("&since=2024-01-10T09%3A00%3A00Z"),
        "{}",
        srv.log()[3].target
    );
}
