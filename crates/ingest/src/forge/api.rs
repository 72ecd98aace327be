//! The documented JSON of GitHub REST v3 and Gitea API v1 for the three lists the poller reads,
//! normalised to one shape: issues (`GET /repos/{o}/{r}/issues`, pull requests filtered out),
//! pull requests (`GET /repos/{o}/{r}/pulls`) and CI runs (GitHub `GET
//! /repos/{o}/{r}/actions/runs`, Gitea `GET /repos/{o}/{r}/actions/tasks`). Fields the poller
//! does not need are ignored; a missing required field is an error naming it.

use serde::Deserialize;
use sextant_model::time::parse_timestamp_ms;

use super::ForgeKind;

/// Page size asked for: GitHub allows 100, Gitea's default maximum is 50.
pub fn page_size(kind: ForgeKind) -> u32 {
    match kind {
        ForgeKind::Github => 100,
        ForgeKind::Gitea => 50,
    }
}

/// Path and query of the first page of the issue list, updated since `since` (RFC 3339).
pub fn issues_path(kind: ForgeKind, owner: &str, repo: &str, since: Option<&str>) -> String {
    let mut p = match kind {
        ForgeKind::Github => format!(
            "repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&per_page={}",
            page_size(kind)
        ),
        ForgeKind::Gitea => format!(
            "repos/{owner}/{repo}/issues?state=all&type=issues&limit={}&page=1",
            page_size(kind)
        ),
    };
    if let Some(s) = since {
        p.push_str("&since=");
        p.push_str(&encode(s));
    }
    p
}

/// Path of the first page of pull requests, most recently updated first.
pub fn pulls_path(kind: ForgeKind, owner: &str, repo: &str) -> String {
    match kind {
        ForgeKind::Github => format!(
            "repos/{owner}/{repo}/pulls?state=all&sort=updated&direction=desc&per_page={}",
            page_size(kind)
        ),
        ForgeKind::Gitea => format!(
            "repos/{owner}/{repo}/pulls?state=all&sort=recentupdate&limit={}&page=1",
            page_size(kind)
        ),
    }
}

/// Path of the first page of CI runs, newest first.
pub fn runs_path(kind: ForgeKind, owner: &str, repo: &str) -> String {
    match kind {
        ForgeKind::Github => format!(
            "repos/{owner}/{repo}/actions/runs?per_page={}",
            page_size(kind)
        ),
        ForgeKind::Gitea => format!(
            "repos/{owner}/{repo}/actions/tasks?limit={}&page=1",
            page_size(kind)
        ),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An issue (not a pull request).
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    pub number: u64,
    pub open: bool,
    pub labels: Vec<String>,
    pub updated_ms: i64,
    /// `updated_at` as the API wrote it (the next `since`).
    pub updated_at: String,
}

/// A pull request.
#[derive(Clone, Debug, PartialEq)]
pub struct Pull {
    pub number: u64,
    pub open: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// When merged (`merged_at`), if it was.
    pub merged_ms: Option<i64>,
}

/// A CI run (GitHub workflow run attempt, Gitea actions task).
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub id: u64,
    pub attempt: u32,
    pub workflow: String,
    /// `None` while queued or running.
    pub conclusion: Option<String>,
    pub created_ms: i64,
    /// Run time of a finished run: `updated_at - run_started_at`.
    pub duration_s: Option<f64>,
}

#[derive(Deserialize)]
struct LabelJson {
    name: String,
}

#[derive(Deserialize)]
struct IssueJson {
    number: u64,
    state: String,
    #[serde(default)]
    labels: Option<Vec<LabelJson>>,
    #[serde(default)]
    pull_request: Option<serde_json::Value>,
    updated_at: String,
}

#[derive(Deserialize)]
struct PullJson {
    number: u64,
    state: String,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    merged_at: Option<String>,
}

#[derive(Deserialize)]
struct RunsJson<T> {
    workflow_runs: Option<Vec<T>>,
}

#[derive(Deserialize)]
struct GithubRunJson {
    id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    workflow_id: Option<u64>,
    status: Option<String>,
    conclusion: Option<String>,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    run_started_at: Option<String>,
    #[serde(default)]
    run_attempt: Option<u32>,
}

#[derive(Deserialize)]
struct GiteaTaskJson {
    id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    workflow_id: Option<String>,
    status: String,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    run_started_at: Option<String>,
}

fn ts(field: &str, s: &str) -> Result<i64, String> {
    parse_timestamp_ms(s).map_err(|_| format!("{field}: invalid timestamp {s:?}"))
}

/// Gitea and GitHub write "never" as the zero time or null.
fn opt_ts(field: &str, s: &Option<String>) -> Result<Option<i64>, String> {
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(s) if s.starts_with("0001-01-01") => Ok(None),
        Some(s) => ts(field, s).map(Some),
    }
}

fn json_err(e: serde_json::Error) -> String {
    format!("line {} column {}: {e}", e.line(), e.column())
}

/// A page of issues; pull requests (which GitHub lists as issues) are left out.
pub fn parse_issues(body: &[u8]) -> Result<Vec<Issue>, String> {
    let items: Vec<IssueJson> = serde_json::from_slice(body).map_err(json_err)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, it) in items.into_iter().enumerate() {
        if it.pull_request.as_ref().is_some_and(|v| !v.is_null()) {
            continue;
        }
        let mut labels: Vec<String> = it
            .labels
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.name)
            .filter(|n| !n.is_empty())
            .collect();
        labels.sort();
        labels.dedup();
        out.push(Issue {
            number: it.number,
            open: it.state == "open",
            labels,
            updated_ms: ts(&format!("[{i}].updated_at"), &it.updated_at)?,
            updated_at: it.updated_at,
        });
    }
    Ok(out)
}

/// A page of pull requests.
pub fn parse_pulls(body: &[u8]) -> Result<Vec<Pull>, String> {
    let items: Vec<PullJson> = serde_json::from_slice(body).map_err(json_err)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(Pull {
                number: p.number,
                open: p.state == "open",
                created_ms: ts(&format!("[{i}].created_at"), &p.created_at)?,
                updated_ms: ts(&format!("[{i}].updated_at"), &p.updated_at)?,
                merged_ms: opt_ts(&format!("[{i}].merged_at"), &p.merged_at)?,
            })
        })
        .collect()
}

/// A page of CI runs.
pub fn parse_runs(kind: ForgeKind, body: &[u8]) -> Result<Vec<Run>, String> {
    let duration =
        |i: usize, started: &Option<String>, updated: i64| -> Result<Option<f64>, String> {
            Ok(
                opt_ts(&format!("workflow_runs[{i}].run_started_at"), started)?
                    .map(|s| ((updated - s).max(0) as f64) / 1000.0),
            )
        };
    match kind {
        ForgeKind::Github => {
            let r: RunsJson<GithubRunJson> = serde_json::from_slice(body).map_err(json_err)?;
            let mut out = Vec::new();
            for (i, x) in r.workflow_runs.unwrap_or_default().into_iter().enumerate() {
                let updated = ts(&format!("workflow_runs[{i}].updated_at"), &x.updated_at)?;
                let done = x.status.as_deref() == Some("completed");
                out.push(Run {
                    id: x.id,
                    attempt: x.run_attempt.unwrap_or(1),
                    workflow: x
                        .name
                        .filter(|n| !n.is_empty())
                        .or(x.workflow_id.map(|w| w.to_string()))
                        .unwrap_or_else(|| "unknown".into()),
                    conclusion: done.then(|| x.conclusion.unwrap_or_else(|| "unknown".into())),
                    created_ms: ts(&format!("workflow_runs[{i}].created_at"), &x.created_at)?,
                    duration_s: if done {
                        duration(i, &x.run_started_at, updated)?
                    } else {
                        None
                    },
                });
            }
            Ok(out)
        }
        ForgeKind::Gitea => {
            let r: RunsJson<GiteaTaskJson> = serde_json::from_slice(body).map_err(json_err)?;
            let mut out = Vec::new();
            for (i, x) in r.workflow_runs.unwrap_or_default().into_iter().enumerate() {
                let updated = ts(&format!("workflow_runs[{i}].updated_at"), &x.updated_at)?;
                // Gitea's actions status names; the first four are final.
                let done = matches!(
                    x.status.as_str(),
                    "success" | "failure" | "cancelled" | "skipped"
                );
                out.push(Run {
                    id: x.id,
                    attempt: 1,
                    workflow: x
                        .workflow_id
                        .filter(|n| !n.is_empty())
                        .or(x.name)
                        .unwrap_or_else(|| "unknown".into()),
                    conclusion: done.then(|| x.status.clone()),
                    created_ms: ts(&format!("workflow_runs[{i}].created_at"), &x.created_at)?,
                    duration_s: if done {
                        duration(i, &x.run_started_at, updated)?
                    } else {
                        None
                    },
                });
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_api_json_names_the_field() {
        let e =
            parse_issues(br#"[{"number":1,"state":"open","updated_at":"yesterday"}]"#).unwrap_err();
        assert_eq!(e, "[0].updated_at: invalid timestamp \"yesterday\"");
        let e =
            parse_pulls(br#"[{"number":1,"state":"open","created_at":"2024-01-01T00:00:00Z"}]"#)
                .unwrap_err();
        assert!(e.contains("missing field `updated_at`"), "{e}");
        let e = parse_runs(ForgeKind::Github, br#"{"workflow_runs":[{"id":"x"}]}"#).unwrap_err();
        assert!(e.starts_with("line 1 column"), "{e}");
        let e = parse_issues(br#"{"message":"Not Found"}"#).unwrap_err();
        assert!(e.contains("expected a sequence"), "{e}");
    }

    #[test]
    fn never_merged_and_zero_times() {
        // Gitea writes unset times as the zero time; GitHub as null.
        let p = parse_pulls(br#"[{"number":2,"state":"open","created_at":"2024-04-01T07:00:00+02:00","updated_at":"2024-04-01T07:00:00+02:00","merged_at":"0001-01-01T00:00:00Z"},{"number":3,"state":"closed","created_at":"2024-04-01T07:00:00Z","updated_at":"2024-04-01T07:00:00Z","merged_at":null}]"#)
            .unwrap();
        assert_eq!(p[0].merged_ms, None);
        assert_eq!(p[0].created_ms, 1711947600000);
        assert_eq!(p[1].merged_ms, None);
        assert!(!p[1].open);
        assert_eq!(
            issues_path(ForgeKind::Github, "a", "b", Some("2024-01-01T00:00:00Z")),
            "repos/a/b/issues?state=all&sort=updated&direction=asc&per_page=100&since=2024-01-01T00%3A00%3A00Z"
        );
    }
}
