//! HTTP for the forge poller: one client per forge with the token header each forge documents,
//! an ETag cache (a `304 Not Modified` answer reuses the cached page), `Link: rel="next"`
//! pagination, and rate-limit bookkeeping (`X-RateLimit-Remaining`/`Reset`, `Retry-After`,
//! 403/429 limits) that tells the poller how long to stay quiet.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, ETAG, IF_NONE_MATCH, LINK, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use super::{ForgeConfig, ForgeKind};

/// Largest page body read (a page of 100 GitHub issues is well under 1 MiB).
const MAX_BODY: usize = 16 << 20;
/// Longest back-off a rate-limit answer can impose.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Back-off when a limit answer says nothing about when to retry (GitHub's advice for
/// secondary limits: at least a minute).
const DEFAULT_BACKOFF: Duration = Duration::from_secs(60);

/// Why a request did not produce a page.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request to {url} failed: {msg}")]
    Transport { url: String, msg: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: rate limited ({status}); retrying after {wait:?}")]
    RateLimited {
        url: String,
        status: u16,
        wait: Duration,
    },
    #[error("{url}: response body larger than {MAX_BODY} bytes")]
    TooLarge { url: String },
    #[error("{url}: invalid JSON: {msg}")]
    Json { url: String, msg: String },
    #[error("{0}")]
    Config(String),
}

/// One page of a list.
pub struct Page {
    pub body: Arc<Vec<u8>>,
    pub next: Option<Url>,
}

struct Cached {
    etag: String,
    body: Arc<Vec<u8>>,
    next: Option<Url>,
}

/// The forge's HTTP side; owned by its polling task.
pub struct Api {
    pub kind: ForgeKind,
    pub base: Url,
    client: reqwest::Client,
    http: crate::scrape::http_client::HttpClientConfig,
    token: Option<String>,
    timeout: Duration,
    cache: HashMap<String, Cached>,
    used: HashSet<String>,
    /// No request before this time (a rate limit is in force).
    pub blocked_until: Option<SystemTime>,
    /// `X-RateLimit-Remaining` of the newest answer that had it.
    pub rate_remaining: Option<f64>,
    /// Requests by status code since the last [`Api::take_codes`].
    codes: BTreeMap<u16, u64>,
}

impl Api {
    pub fn new(cfg: &ForgeConfig) -> Result<Api, String> {
        let http = cfg.http_client();
        Ok(Api {
            kind: cfg.kind,
            base: cfg.base_url()?,
            client: http.build()?,
            http,
            token: None,
            timeout: cfg.timeout.0,
            cache: HashMap::new(),
            used: HashSet::new(),
            blocked_until: None,
            rate_remaining: None,
            codes: BTreeMap::new(),
        })
    }

    /// Sets the token for the following requests (re-read every poll).
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    /// Starts a poll: cache entries not used since the previous [`Api::end_poll`] are dropped
    /// then, so the cache holds at most the pages of one poll.
    pub fn end_poll(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.cache.retain(|k, _| used.contains(k));
    }

    /// Counts of requests by status code since the last call.
    pub fn take_codes(&mut self) -> BTreeMap<u16, u64> {
        std::mem::take(&mut self.codes)
    }

    /// A URL under the API base.
    pub fn url(&self, path: &str) -> Result<Url, ApiError> {
        self.base
            .join(path)
            .map_err(|e| ApiError::Config(format!("bad API path {path:?}: {e}")))
    }

    /// GETs one page, revalidating a cached copy with `If-None-Match`.
    pub async fn get(&mut self, url: &Url) -> Result<Page, ApiError> {
        let key = url.as_str().to_string();
        let mut req = self
            .http
            .get(&self.client, url, Some(self.timeout))
            .await
            .map_err(|msg| transport(&key, msg))?;
        req = match self.kind {
            ForgeKind::Github => req
                .header(ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28"),
            ForgeKind::Gitea => req.header(ACCEPT, "application/json"),
        };
        if let Some(t) = &self.token {
            let v = match self.kind {
                ForgeKind::Github => format!("Bearer {t}"),
                ForgeKind::Gitea => format!("token {t}"),
            };
            let mut hv = reqwest::header::HeaderValue::from_str(&v).map_err(|_| {
                ApiError::Config("token: contains characters not allowed in an HTTP header".into())
            })?;
            hv.set_sensitive(true);
            req = req.header(AUTHORIZATION, hv);
        }
        if let Some(c) = self.cache.get(&key) {
            req = req.header(IF_NONE_MATCH, c.etag.as_str());
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| transport(&key, e.without_url().to_string()))?;
        let status = resp.status();
        *self.codes.entry(status.as_u16()).or_default() += 1;
        let headers = resp.headers().clone();
        self.note_rate_limit(&headers);
        self.used.insert(key.clone());
        if status == StatusCode::NOT_MODIFIED {
            if let Some(c) = self.cache.get(&key) {
                return Ok(Page {
                    body: c.body.clone(),
                    next: c.next.clone(),
                });
            }
            return Err(ApiError::Status {
                url: key,
                status: 304,
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::FORBIDDEN {
            let mut body = Vec::new();
            // A short look at the message tells GitHub's secondary limit from a plain 403.
            while let Ok(Some(chunk)) = resp.chunk().await {
                body.extend_from_slice(&chunk);
                if body.len() > 64 << 10 {
                    break;
                }
            }
            if let Some(wait) = limit_wait(status, &headers, &body) {
                let until = SystemTime::now() + wait;
                self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
                return Err(ApiError::RateLimited {
                    url: key,
                    status: status.as_u16(),
                    wait,
                });
            }
            return Err(ApiError::Status {
                url: key,
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(ApiError::Status {
                url: key,
                status: status.as_u16(),
            });
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(ApiError::TooLarge { url: key });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(transport(&key, e.without_url().to_string())),
            }
        }
        let body = Arc::new(body);
        let next = next_link(&headers, url);
        if let Some(etag) = headers.get(ETAG).and_then(|v| v.to_str().ok()) {
            self.cache.insert(
                key,
                Cached {
                    etag: etag.to_string(),
                    body: body.clone(),
                    next: next.clone(),
                },
            );
        }
        Ok(Page { body, next })
    }

    /// Records `X-RateLimit-Remaining`; when it reaches 0, no request before `X-RateLimit-Reset`.
    fn note_rate_limit(&mut self, h: &HeaderMap) {
        let Some(rem) = header_f64(h, "x-ratelimit-remaining") else {
            return;
        };
        self.rate_remaining = Some(rem);
        if rem <= 0.0 {
            if let Some(w) = reset_wait(h) {
                self.blocked_until = Some(SystemTime::now() + w);
            }
        }
    }
}

fn transport(url: &str, msg: String) -> ApiError {
    ApiError::Transport {
        url: url.to_string(),
        msg,
    }
}

fn header_f64(h: &HeaderMap, name: &str) -> Option<f64> {
    h.get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// Time until `X-RateLimit-Reset` (Unix seconds), clamped to [1s, 1h].
fn reset_wait(h: &HeaderMap) -> Option<Duration> {
    let reset = header_f64(h, "x-ratelimit-reset")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Some(Duration::from_secs_f64(
        (reset - now).clamp(1.0, MAX_BACKOFF.as_secs_f64()),
    ))
}

/// How long to back off after a 403/429, or `None` when it is not a rate limit: `Retry-After`
/// (seconds) first, then an exhausted `X-RateLimit-Remaining` with its reset, then GitHub's
/// secondary-limit message or any 429 (a minute).
fn limit_wait(status: StatusCode, h: &HeaderMap, body: &[u8]) -> Option<Duration> {
    if let Some(s) = h
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_secs(s.clamp(1, MAX_BACKOFF.as_secs())));
    }
    if header_f64(h, "x-ratelimit-remaining") == Some(0.0) {
        return Some(reset_wait(h).unwrap_or(DEFAULT_BACKOFF));
    }
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    if status == StatusCode::TOO_MANY_REQUESTS || text.contains("rate limit") {
        return Some(DEFAULT_BACKOFF);
    }
    None
}

/// The `rel="next"` target of a `Link` header, resolved against the request URL.
pub fn next_link(h: &HeaderMap, base: &Url) -> Option<Url> {
    for v in h.get_all(LINK) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let mut segs = part.split(';');
            let target = segs.next()?.trim();
            let target = target.strip_prefix('<')?.strip_suffix('>')?;
            let is_next = segs.any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .map(|r| r.trim_matches('"').split_whitespace().any(|r| r == "next"))
                    .unwrap_or(false)
            });
            if is_next {
                return base.join(target).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            "<https://api.github.com/repositories/1/issues?page=2>; rel=\"next\", <https://api.github.com/repositories/1/issues?page=5>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        let base = Url::parse("https://api.github.com/repos/a/b/issues").unwrap();
        assert_eq!(
            next_link(&h, &base).unwrap().as_str(),
            "https://api.github.com/repositories/1/issues?page=2"
        );
        let mut h = HeaderMap::new();
        h.insert(LINK, "<https://x/?page=1>; rel=\"prev\"".parse().unwrap());
        assert!(next_link(&h, &base).is_none());
    }

    #[test]
    fn limit_answers() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(
            limit_wait(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            Some(Duration::from_secs(30))
        );
        let h = HeaderMap::new();
        assert_eq!(
            limit_wait(
                StatusCode::FORBIDDEN,
                &h,
                b"{\"message\":\"Bad credentials\"}"
            ),
            None
        );
        assert_eq!(
            limit_wait(
                StatusCode::FORBIDDEN,
                &h,
                b"{\"message\":\"You have exceeded a secondary rate limit\"}"
            ),
            Some(DEFAULT_BACKOFF)
        );
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 120;
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let w = limit_wait(StatusCode::FORBIDDEN, &h, b"").unwrap();
        assert!(
            w > Duration::from_secs(100) && w <= Duration::from_secs(120),
            "{w:?}"
        );
    }
}
