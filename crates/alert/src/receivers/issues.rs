//! `gitea_configs` / `github_configs` (Sextant's own): an alert group becomes an issue in a
//! repository. When the group fires, an issue is opened whose body ends with a hidden marker
//! `<!-- sextant:group=<hash> -->` (FNV-1a 64 of the group key, hex); later notifications of the
//! still-firing group add a comment; the resolved notification adds a comment and closes the
//! issue. The open issue is always looked up on the forge by its marker (listing open issues,
//! filtered by the receiver's static labels), so a restarted Sextant — or a second instance —
//! finds the issue again instead of opening a duplicate, and an issue closed by hand is not
//! commented on again.
//!
//! Both forges use the same REST shapes (Gitea's API is GitHub-like under `/api/v1`); the
//! differences handled here are authentication headers, page sizes, and Gitea's labels, which
//! are referenced by id (looked up by name and created when missing).

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::http::{self, Client, HttpConfig};
use super::template::data;
use super::webhook::parse_timeout;
use super::{check_tmpl, default_true, render, truncate_chars, BuildContext, Secret, Templates};
use crate::{BoxFuture, Notification, NotifyError, Receiver};

/// Which forge an [`IssueTracker`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    Gitea,
}

fn d_title() -> String {
    r#"{{ template "issue.default.title" . }}"#.into()
}
fn d_body() -> String {
    r#"{{ template "issue.default.body" . }}"#.into()
}
fn d_comment() -> String {
    r#"{{ template "issue.default.comment" . }}"#.into()
}

/// One `gitea_configs` / `github_configs` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueConfig {
    /// Default true (resolving closes the issue).
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    /// API base: GitHub default `https://api.github.com`; Gitea required, e.g.
    /// `https://gitea.example.org` (`/api/v1` is appended when missing).
    pub api_url: Option<String>,
    /// `owner/name`.
    pub repo: String,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// Labels of new issues; templated (e.g. `severity/{{ .CommonLabels.severity }}`), empty
    /// results are dropped. Labels without `{{` also narrow the search for the open issue.
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default = "d_title")]
    pub title: String,
    #[serde(default = "d_body")]
    pub body: String,
    /// Comment added on repeat and resolved notifications.
    #[serde(default = "d_comment")]
    pub comment: String,
    pub timeout: Option<String>,
}

/// The issue-tracker integration for one repository.
pub struct IssueTracker {
    forge: Forge,
    cfg: IssueConfig,
    api: String,
    owner: String,
    name: String,
    token: Option<Secret>,
    client: Client,
    templates: Arc<Templates>,
    /// Serialises lookups and writes so two notifications never open two issues.
    lock: tokio::sync::Mutex<()>,
}

/// FNV-1a 64-bit hash of the group key, as 16 hex digits: stable across restarts and versions.
pub fn group_hash(group_key: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in group_key.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// The hidden marker carried in the body of a group's issue.
pub fn marker(group_key: &str) -> String {
    format!("<!-- sextant:group={} -->", group_hash(group_key))
}

/// Most pages of open issues scanned for the marker.
const MAX_PAGES: u32 = 20;
/// GitHub's limit on issue titles.
const MAX_TITLE: usize = 256;

fn nerr(retryable: bool, msg: String) -> NotifyError {
    NotifyError { retryable, msg }
}

impl IssueTracker {
    pub fn new(forge: Forge, c: &IssueConfig, ctx: &BuildContext) -> Result<Self, String> {
        let (owner, name) = c
            .repo
            .split_once('/')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| format!("repo {:?} must be owner/name", c.repo))?;
        let api = match (forge, &c.api_url) {
            (_, Some(u)) => u.trim_end_matches('/').to_string(),
            (Forge::GitHub, None) => "https://api.github.com".to_string(),
            (Forge::Gitea, None) => return Err("api_url is required for Gitea".into()),
        };
        if !(api.starts_with("http://") || api.starts_with("https://")) {
            return Err(format!("api_url {api:?} must be an http(s) URL"));
        }
        let api = if forge == Forge::Gitea && !api.ends_with("/api/v1") {
            format!("{api}/api/v1")
        } else {
            api
        };
        let token = Secret::from_fields(c.token.as_deref(), c.token_file.as_ref(), "token")?;
        if let Some(t) = &token {
            t.check()?;
        }
        let http_cfg = c.http_config.as_ref().or(ctx.global.http_config.as_ref());
        let http_auth = http_cfg.is_some_and(|h| {
            h.basic_auth.is_some()
                || h.authorization.is_some()
                || h.bearer_token.is_some()
                || h.bearer_token_file.is_some()
        });
        if token.is_none() && !http_auth {
            return Err("one of token or token_file must be configured".into());
        }
        if token.is_some() && http_auth {
            return Err("token and http_config authentication are mutually exclusive".into());
        }
        let t = &ctx.templates;
        check_tmpl(t, &c.title, "title")?;
        check_tmpl(t, &c.body, "body")?;
        check_tmpl(t, &c.comment, "comment")?;
        for l in &c.labels {
            check_tmpl(t, l, "labels")?;
        }
        let client = Client::new(http_cfg, parse_timeout(c.timeout.as_deref())?)?;
        Ok(IssueTracker {
            forge,
            cfg: c.clone(),
            api,
            owner: owner.to_string(),
            name: name.to_string(),
            token,
            client,
            templates: ctx.templates.clone(),
            lock: tokio::sync::Mutex::new(()),
        })
    }

    fn what(&self) -> &'static str {
        match self.forge {
            Forge::GitHub => "github",
            Forge::Gitea => "gitea",
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/repos/{}/{}{path}", self.api, self.owner, self.name)
    }

    fn req(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, NotifyError> {
        let mut rb = self.client.request(method, url)?;
        rb = match self.forge {
            Forge::GitHub => rb
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28"),
            Forge::Gitea => rb.header("Accept", "application/json"),
        };
        if let Some(t) = &self.token {
            let t = t.get()?;
            let scheme = match self.forge {
                Forge::GitHub => "Bearer",
                Forge::Gitea => "token",
            };
            rb = rb.header(
                reqwest::header::AUTHORIZATION,
                format!("{scheme} {}", t.trim()),
            );
        }
        Ok(rb)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Json>,
    ) -> Result<Json, NotifyError> {
        let mut rb = self.req(method, url)?;
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let bytes = http::send(rb, self.what()).await?;
        if bytes.is_empty() {
            return Ok(Json::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            nerr(
                true,
                format!(
                    "{}: response is not JSON: {e}: {}",
                    self.what(),
                    http::excerpt(&bytes)
                ),
            )
        })
    }

    fn static_labels(&self) -> Vec<&str> {
        self.cfg
            .labels
            .iter()
            .filter(|l| !l.contains("{{") && !l.trim().is_empty())
            .map(|l| l.trim())
            .collect()
    }

    /// The number of the open issue carrying `marker`, if any.
    pub async fn find_open(&self, marker: &str) -> Result<Option<u64>, NotifyError> {
        let labels = self.static_labels().join(",");
        let per_page = match self.forge {
            Forge::GitHub => 100,
            Forge::Gitea => 50,
        };
        for page in 1..=MAX_PAGES {
            let mut q: Vec<(&str, String)> =
                vec![("state", "open".into()), ("page", page.to_string())];
            match self.forge {
                Forge::GitHub => q.push(("per_page", per_page.to_string())),
                Forge::Gitea => {
                    q.push(("type", "issues".into()));
                    q.push(("limit", per_page.to_string()));
                }
            }
            if !labels.is_empty() {
                q.push(("labels", labels.clone()));
            }
            let rb = self
                .req(reqwest::Method::GET, &self.url("/issues"))?
                .query(&q);
            let bytes = http::send(rb, self.what()).await?;
            let items: Vec<Json> = serde_json::from_slice(&bytes).map_err(|e| {
                nerr(
                    true,
                    format!(
                        "{}: listing issues: {e}: {}",
                        self.what(),
                        http::excerpt(&bytes)
                    ),
                )
            })?;
            for it in &items {
                if it.get("pull_request").is_some_and(|p| !p.is_null()) {
                    continue;
                }
                if it
                    .get("body")
                    .and_then(Json::as_str)
                    .is_some_and(|b| b.contains(marker))
                {
                    if let Some(n) = it.get("number").and_then(Json::as_u64) {
                        return Ok(Some(n));
                    }
                }
            }
            if items.len() < per_page {
                return Ok(None);
            }
        }
        tracing::warn!(repo = %self.cfg.repo, "more than {MAX_PAGES} pages of open issues; group issue not found");
        Ok(None)
    }

    /// Gitea wants label ids: look names up, creating the missing ones.
    async fn gitea_label_ids(&self, names: &[String]) -> Result<Vec<u64>, NotifyError> {
        let mut known: Vec<(String, u64)> = Vec::new();
        for page in 1..=MAX_PAGES {
            let rb = self
                .req(reqwest::Method::GET, &self.url("/labels"))?
                .query(&[("page", page.to_string()), ("limit", "50".into())]);
            let bytes = http::send(rb, "gitea").await?;
            let items: Vec<Json> = serde_json::from_slice(&bytes)
                .map_err(|e| nerr(true, format!("gitea: listing labels: {e}")))?;
            for it in &items {
                if let (Some(n), Some(id)) = (
                    it.get("name").and_then(Json::as_str),
                    it.get("id").and_then(Json::as_u64),
                ) {
                    known.push((n.to_string(), id));
                }
            }
            if items.len() < 50 {
                break;
            }
        }
        let mut ids = Vec::new();
        for name in names {
            if let Some((_, id)) = known.iter().find(|(n, _)| n == name) {
                ids.push(*id);
                continue;
            }
            let created = self
                .call(
                    reqwest::Method::POST,
                    &self.url("/labels"),
                    Some(&json!({"name": name, "color": "#d73a4a"})),
                )
                .await?;
            let id = created
                .get("id")
                .and_then(Json::as_u64)
                .ok_or_else(|| nerr(true, "gitea: created label has no id".into()))?;
            ids.push(id);
        }
        Ok(ids)
    }

    async fn run(&self, n: &Notification) -> Result<(), NotifyError> {
        let _guard = self.lock.lock().await;
        let d = data(n);
        let t = &self.templates;
        let marker = marker(&n.group_key);
        let existing = self.find_open(&marker).await?;
        let firing = n.status == "firing";
        match (existing, firing) {
            (Some(num), _) => {
                let body = render(t, &self.cfg.comment, &d, "comment")?;
                self.call(
                    reqwest::Method::POST,
                    &self.url(&format!("/issues/{num}/comments")),
                    Some(&json!({"body": body})),
                )
                .await?;
                if !firing {
                    let mut patch = json!({"state": "closed"});
                    if self.forge == Forge::GitHub {
                        patch["state_reason"] = json!("completed");
                    }
                    self.call(
                        reqwest::Method::PATCH,
                        &self.url(&format!("/issues/{num}")),
                        Some(&patch),
                    )
                    .await?;
                    tracing::info!(repo = %self.cfg.repo, issue = num, "closed issue of resolved alert group");
                }
            }
            (None, true) => {
                let title =
                    truncate_chars(render(t, &self.cfg.title, &d, "title")?.trim(), MAX_TITLE).0;
                let body = format!(
                    "{}\n\n{marker}\n",
                    render(t, &self.cfg.body, &d, "body")?.trim_end()
                );
                let mut labels: Vec<String> = Vec::new();
                for l in &self.cfg.labels {
                    let r = render(t, l, &d, "labels")?.trim().to_string();
                    if !r.is_empty() && !labels.contains(&r) {
                        labels.push(r);
                    }
                }
                let mut issue = json!({"title": title, "body": body});
                if !labels.is_empty() {
                    issue["labels"] = match self.forge {
                        Forge::GitHub => json!(labels),
                        Forge::Gitea => json!(self.gitea_label_ids(&labels).await?),
                    };
                }
                let created = self
                    .call(reqwest::Method::POST, &self.url("/issues"), Some(&issue))
                    .await?;
                tracing::info!(repo = %self.cfg.repo, issue = ?created.get("number"), "opened issue for alert group");
            }
            (None, false) => {
                tracing::debug!(repo = %self.cfg.repo, "resolved group has no open issue; nothing to do");
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for IssueTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of debug output.
        f.debug_struct("IssueTracker").finish_non_exhaustive()
    }
}

impl Receiver for IssueTracker {
    fn integration(&self) -> &'static str {
        self.what()
    }
    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }
    fn notify<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(self.run(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c: IssueConfig = serde_json::from_str(r#"{"repo":"acme/ops","token":"t"}"#).unwrap();
        assert!(c.send_resolved);
        let gh = IssueTracker::new(Forge::GitHub, &c, &BuildContext::default()).unwrap();
        assert_eq!(gh.api, "https://api.github.com");
        assert_eq!(
            gh.url("/issues"),
            "https://api.github.com/repos/acme/ops/issues"
        );
        assert!(
            IssueTracker::new(Forge::Gitea, &c, &BuildContext::default())
                .unwrap_err()
                .contains("api_url")
        );
        let g: IssueConfig = serde_json::from_str(
            r#"{"repo":"acme/ops","token":"t","api_url":"https://git.example.org/"}"#,
        )
        .unwrap();
        assert_eq!(
            IssueTracker::new(Forge::Gitea, &g, &BuildContext::default())
                .unwrap()
                .api,
            "https://git.example.org/api/v1"
        );
        for bad in ["acme", "acme/", "/ops", "a/b/c"] {
            let c: IssueConfig =
                serde_json::from_str(&format!(r#"{{"repo":"{bad}","token":"t"}}"#)).unwrap();
            assert!(
                IssueTracker::new(Forge::GitHub, &c, &BuildContext::default())
                    .unwrap_err()
                    .contains("owner/name"),
                "{bad}"
            );
        }
        let c: IssueConfig = serde_json::from_str(r#"{"repo":"a/b"}"#).unwrap();
        assert!(
            IssueTracker::new(Forge::GitHub, &c, &BuildContext::default())
                .unwrap_err()
                .contains("token")
        );
        let e =
            serde_json::from_str::<IssueConfig>(r#"{"repo":"a/b","assignee":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("assignee"), "{e}");
    }

    #[test]
    fn marker_is_stable() {
        assert_eq!(group_hash(""), "cbf29ce484222325");
        assert_eq!(group_hash("a"), "af63dc4c8601ec8c");
        assert_eq!(
            marker("{}:{alertname=\"X\"}"),
            marker("{}:{alertname=\"X\"}")
        );
        assert_ne!(marker("a"), marker("b"));
    }
}
