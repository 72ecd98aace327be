//! The polling task of one forge: every `interval` it reads each repository's issues, pull
//! requests and CI runs (incrementally), and every few seconds it writes the current series,
//! so gauges stay fresh between polls of a long interval. A rate limit stops all requests to
//! the forge until it lifts; the interrupted poll is resumed then.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::api::{self, Issue, Pull, Run};
use super::client::{Api, ApiError};
use super::state::ForgeState;
use super::{split_repo, ForgeConfig, ForgeKind};
use crate::remote_write::WriteBatch;
use crate::Sink;

/// How often the series are written between polls.
const EMIT_EVERY: Duration = Duration::from_secs(15);

/// A running forge poller; dropping it stops the task.
pub struct ForgeHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ForgeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts one polling task per forge on the current tokio runtime. With `state_dir`, each
/// forge's state is kept in `state_dir/<name>.json`.
pub fn spawn(
    forges: Vec<ForgeConfig>,
    sink: Arc<dyn Sink>,
    state_dir: Option<PathBuf>,
) -> Result<Vec<ForgeHandle>, String> {
    let mut out = Vec::new();
    for cfg in forges {
        cfg.validate()
            .map_err(|e| format!("forge {:?}: {e}", cfg.name()))?;
        let api = Api::new(&cfg).map_err(|e| format!("forge {:?}: {e}", cfg.name()))?;
        let path = state_dir
            .as_ref()
            .map(|d| d.join(state_file_name(cfg.name())));
        let poller = Poller::new(cfg, api, sink.clone(), path);
        out.push(ForgeHandle {
            task: tokio::spawn(poller.run()),
        });
    }
    Ok(out)
}

fn state_file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.json")
}

/// One forge's poller (public to the crate for tests, which drive [`Poller::poll`]).
pub(crate) struct Poller {
    pub cfg: ForgeConfig,
    pub api: Api,
    pub state: ForgeState,
    sink: Arc<dyn Sink>,
    path: Option<PathBuf>,
    base: Vec<(String, String)>,
}

impl Poller {
    pub fn new(cfg: ForgeConfig, api: Api, sink: Arc<dyn Sink>, path: Option<PathBuf>) -> Poller {
        // Counters are kept by `forge` and their own labels; the configured `labels` are added
        // when writing, so changing them does not restart the counters.
        let base = vec![("forge".to_string(), cfg.name().to_string())];
        let mut state = ForgeState::load(path.as_deref());
        state.retain_repos(&cfg.repos);
        state.extra = cfg
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Poller {
            state,
            cfg,
            api,
            sink,
            path,
            base,
        }
    }

    async fn run(mut self) {
        let mut next_poll = Instant::now();
        loop {
            if Instant::now() >= next_poll {
                self.poll().await;
                next_poll = Instant::now() + self.cfg.interval.0;
                if let Some(until) = self.api.blocked_until {
                    // Resume the interrupted poll as soon as the limit lifts.
                    if let Ok(d) = until.duration_since(SystemTime::now()) {
                        next_poll = Instant::now() + d;
                    }
                }
            }
            self.emit().await;
            let wake = next_poll.min(Instant::now() + EMIT_EVERY);
            tokio::time::sleep_until(wake.into()).await;
        }
    }

    /// Writes the current series.
    pub async fn emit(&self) {
        let now = sextant_model::time::now_ms();
        let batch = self.state.batch(&self.base, now, self.api.rate_remaining);
        store(self.sink.clone(), batch).await;
    }

    /// Polls every repository once (stopping early while a rate limit is in force) and saves
    /// the state.
    pub async fn poll(&mut self) {
        let forge = self.cfg.name().to_string();
        match self.cfg.read_token() {
            Ok(t) => self.api.set_token(t),
            Err(e) => {
                tracing::warn!(forge = %forge, error = %e, "forge poll skipped");
                return;
            }
        }
        let repos = self.cfg.repos.clone();
        for repo in &repos {
            if self
                .api
                .blocked_until
                .is_some_and(|u| u > SystemTime::now())
            {
                break;
            }
            let sink = self.sink.clone();
            self.state.repo(sink.as_ref(), &self.base, repo);
            let res = self.poll_repo(repo).await;
            let sink = self.sink.clone();
            match res {
                Ok(()) => {
                    if let Some(st) = self.state.repos.get_mut(repo) {
                        st.last_success_ms = Some(sextant_model::time::now_ms());
                    }
                    tracing::debug!(forge = %forge, repo = %repo, "forge repository polled");
                }
                Err(e) => {
                    self.state.add(
                        sink.as_ref(),
                        "sextant_forge_poll_errors_total",
                        &self.base,
                        &[("repo", repo)],
                        1.0,
                    );
                    match &e {
                        ApiError::RateLimited { .. } => {
                            tracing::warn!(forge = %forge, repo = %repo, error = %e, "forge rate limit: backing off")
                        }
                        _ => {
                            tracing::warn!(forge = %forge, repo = %repo, error = %e, "forge poll failed")
                        }
                    }
                }
            }
        }
        self.api.end_poll();
        let sink = self.sink.clone();
        for (code, n) in self.api.take_codes() {
            let code = code.to_string();
            self.state.add(
                sink.as_ref(),
                "sextant_forge_api_requests_total",
                &self.base,
                &[("code", &code)],
                n as f64,
            );
        }
        if let Some(p) = &self.path {
            if let Err(e) = self.state.save(p) {
                tracing::warn!(forge = %forge, file = %p.display(), error = %e, "saving forge state failed");
            }
        }
    }

    async fn poll_repo(&mut self, repo: &str) -> Result<(), ApiError> {
        let Some((owner, name)) = split_repo(repo) else {
            return Err(ApiError::Config(format!(
                "repos: {repo:?} is not owner/name"
            )));
        };
        let kind = self.cfg.kind;
        let max_pages = self.cfg.max_pages;
        let sink = self.sink.clone();

        // Issues: everything updated since the newest update seen.
        let since = self
            .state
            .repos
            .get(repo)
            .and_then(|s| s.issues_since.clone());
        let mut url = self
            .api
            .url(&api::issues_path(kind, owner, name, since.as_deref()))?;
        let mut issues: Vec<Issue> = Vec::new();
        let mut complete = false;
        for _ in 0..max_pages {
            let page = self.api.get(&url).await?;
            issues.extend(api::parse_issues(&page.body).map_err(|msg| json(&url, msg))?);
            match page.next {
                Some(n) => url = n,
                None => {
                    complete = true;
                    break;
                }
            }
        }
        // GitHub lists oldest update first, so a cut-short read continues from where it
        // stopped; Gitea's order is by creation, so its cursor moves only after a full read.
        let advance = complete || kind == ForgeKind::Github;
        self.state.apply_issues(repo, &issues, advance);

        // Pull requests, most recently updated first, down to the newest update seen.
        let stop = self.state.repos.get(repo).and_then(|s| s.pulls_since_ms);
        let mut url = self.api.url(&api::pulls_path(kind, owner, name))?;
        let mut pulls: Vec<Pull> = Vec::new();
        let mut complete = false;
        for _ in 0..max_pages {
            let page = self.api.get(&url).await?;
            let items = api::parse_pulls(&page.body).map_err(|msg| json(&url, msg))?;
            let older = stop.is_some_and(|s| items.last().is_some_and(|p| p.updated_ms < s));
            pulls.extend(items);
            match page.next {
                Some(n) if !older => url = n,
                _ => {
                    complete = true;
                    break;
                }
            }
        }
        self.state
            .apply_pulls(sink.as_ref(), &self.base, repo, &pulls, complete);

        // CI runs, newest first, down to the oldest run that was unfinished.
        let stop = self.state.repos.get(repo).and_then(|s| s.runs_low_water());
        let mut url = self.api.url(&api::runs_path(kind, owner, name))?;
        let mut runs: Vec<Run> = Vec::new();
        let mut complete = false;
        for _ in 0..max_pages {
            let page = match self.api.get(&url).await {
                Ok(p) => p,
                // Gitea without Actions (or older than 1.22) has no task list: no CI to report.
                Err(ApiError::Status { status: 404, .. }) if kind == ForgeKind::Gitea => {
                    complete = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            let items = api::parse_runs(kind, &page.body).map_err(|msg| json(&url, msg))?;
            let older = stop.is_some_and(|s| items.last().is_some_and(|r| r.created_ms < s));
            runs.extend(items);
            match page.next {
                Some(n) if !older => url = n,
                _ => {
                    complete = true;
                    break;
                }
            }
        }
        self.state
            .apply_runs(sink.as_ref(), &self.base, repo, &runs, complete);
        Ok(())
    }
}

fn json(url: &reqwest::Url, msg: String) -> ApiError {
    ApiError::Json {
        url: url.to_string(),
        msg,
    }
}

async fn store(sink: Arc<dyn Sink>, batch: WriteBatch) {
    match tokio::task::spawn_blocking(move || sink.store(batch)).await {
        Ok(Ok(s)) if s.problems > 0 => {
            tracing::warn!(problems = s.problems, first = ?s.first_problem, "forge series partly refused")
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "storing forge series failed"),
        Err(e) => tracing::warn!(error = %e, "storing forge series failed"),
    }
}
