//! Forge activity: polls the REST APIs of GitHub (v3) and Gitea (v1) for issues, pull requests
//! and CI runs of configured repositories and turns them into series (`sextant_forge_*`), so a
//! team sees issue load, merge rate, time to merge and CI health next to its agents' metrics
//! without running an exporter. The poller is a good API citizen: it pages with `Link`
//! headers, revalidates with `ETag`/`If-None-Match` (a 304 reuses the cached page and, on
//! GitHub, does not use up the rate limit), honours `X-RateLimit-*`, `Retry-After` and
//! secondary limits by backing off, and polls incrementally (`since` / updated order) so a
//! large repository is not refetched every interval.
//!
//! - [`ForgeConfig`]: one `forges:` entry of sextant.yml.
//! - `client`: HTTP with ETag cache, pagination and rate-limit bookkeeping.
//! - `api`: the documented JSON shapes of both forges, normalised.
//! - `state`: what was seen and counted (persisted, bounded) and the series built from it.
//! - [`spawn`]: one polling task per forge.

mod api;
mod client;
mod poller;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::scrape::config::{HttpUrl, PromDuration, TlsConfig};

pub use poller::{spawn, ForgeHandle};

/// Which API a forge speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    Gitea,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitea => "gitea",
        }
    }
}

/// One `forges:` entry.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeConfig {
    #[serde(rename = "type")]
    pub kind: ForgeKind,
    /// Value of the `forge` label; defaults to the type (`github`, `gitea`).
    pub name: Option<String>,
    /// API base URL: GitHub defaults to `https://api.github.com`; Gitea's is
    /// `https://HOST/api/v1` and must be given.
    pub url: Option<HttpUrl>,
    /// API token (GitHub: sent as `Authorization: Bearer`, Gitea: `Authorization: token`).
    pub token: Option<String>,
    /// File holding the token, re-read at every poll (rotation without reload).
    pub token_file: Option<String>,
    /// Repositories as `owner/name`.
    pub repos: Vec<String>,
    #[serde(default = "default_interval")]
    pub interval: PromDuration,
    /// Timeout of one API request.
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    /// At most this many pages per list and poll (the rest follows at the next poll).
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// Extra labels on every series of this forge.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    pub proxy_url: Option<HttpUrl>,
}

fn default_interval() -> PromDuration {
    PromDuration(Duration::from_secs(300))
}
fn default_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}
fn default_max_pages() -> u32 {
    20
}

/// Labels the forge series set themselves; `labels:` may not override them.
const RESERVED: [&str; 8] = [
    "__name__",
    "forge",
    "repo",
    "state",
    "label",
    "workflow",
    "conclusion",
    "code",
];

impl fmt::Debug for ForgeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token.
        f.debug_struct("ForgeConfig")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("token_file", &self.token_file)
            .field("repos", &self.repos)
            .field("interval", &self.interval)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl ForgeConfig {
    /// The `forge` label value.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind.as_str())
    }

    /// The API base URL, ending in `/`.
    pub fn base_url(&self) -> Result<reqwest::Url, String> {
        let s = match (&self.url, self.kind) {
            (Some(u), _) => u.0.clone(),
            (None, ForgeKind::Github) => "https://api.github.com".to_string(),
            (None, ForgeKind::Gitea) => {
                return Err(
                    "url: required for type gitea (e.g. https://gitea.example.com/api/v1)".into(),
                )
            }
        };
        let s = if s.ends_with('/') { s } else { s + "/" };
        reqwest::Url::parse(&s).map_err(|e| format!("url: invalid URL {s:?}: {e}"))
    }

    /// Checks what serde cannot; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name();
        if name.is_empty() || name.len() > 128 {
            return Err("name: must be 1 to 128 characters".into());
        }
        self.base_url()?;
        if self.token.is_some() && self.token_file.is_some() {
            return Err("at most one of token & token_file must be configured".into());
        }
        if self.repos.is_empty() {
            return Err("repos: at least one owner/name is required".into());
        }
        for r in &self.repos {
            if split_repo(r).is_none() {
                return Err(format!("repos: {r:?} is not of the form owner/name"));
            }
        }
        if self.interval.0 < Duration::from_secs(1) {
            return Err("interval: must be at least 1s".into());
        }
        if self.timeout.0.is_zero() {
            return Err("timeout: must be greater than 0".into());
        }
        if self.max_pages == 0 || self.max_pages > 1000 {
            return Err("max_pages: must be between 1 and 1000".into());
        }
        for k in self.labels.keys() {
            if !sextant_model::labels::is_valid_label_name(k) {
                return Err(format!("labels: {k:?} is not a valid label name"));
            }
            if RESERVED.contains(&k.as_str()) {
                return Err(format!("labels: {k:?} is set by the forge poller itself"));
            }
        }
        self.http_client().validate()
    }

    /// Checks the token file is readable (for `sextant check config`).
    pub fn check_files(&self) -> Result<(), String> {
        if let Some(f) = &self.token_file {
            std::fs::File::open(f).map_err(|e| format!("token_file: cannot read {f:?}: {e}"))?;
        }
        self.http_client().check_files()
    }

    /// The shared HTTP client settings (TLS, proxy); the token is sent by the poller itself
    /// since the two forges spell the header differently.
    pub(crate) fn http_client(&self) -> crate::scrape::http_client::HttpClientConfig {
        crate::scrape::http_client::HttpClientConfig {
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: self.tls_config.clone(),
            follow_redirects: true,
            proxy_url: self.proxy_url.clone(),
        }
    }

    /// The token, read from `token_file` if given (whitespace trimmed).
    pub(crate) fn read_token(&self) -> Result<Option<String>, String> {
        match (&self.token, &self.token_file) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map(|s| Some(s.trim().to_string()))
                .map_err(|e| format!("token_file: cannot read {f:?}: {e}")),
            (None, None) => Ok(None),
        }
    }
}

/// `owner/name` → (owner, name), each a plausible path segment.
pub(crate) fn split_repo(r: &str) -> Option<(&str, &str)> {
    let (o, n) = r.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    (ok(o) && ok(n)).then_some((o, n))
}

/// Checks a whole `forges:` list: each entry, and that `forge` names are unique.
pub fn validate_all(forges: &[ForgeConfig]) -> Result<(), (usize, String)> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, f) in forges.iter().enumerate() {
        f.validate().map_err(|e| (i, e))?;
        if !seen.insert(f.name()) {
            return Err((
                i,
                format!(
                    "name: two forges named {:?} (set `name:` to tell them apart)",
                    f.name()
                ),
            ));
        }
    }
    Ok(())
}
