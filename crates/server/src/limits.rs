//! One place that knows every limit a client can drive: their names, the single counter
//! `sextant_limit_hits_total{limit="<name>"}` that every refusal increments, and the limits
//! that can change at runtime (reload). Refusals elsewhere in the code name their limit with a
//! `(limit <name>)` tag in the message, so decoders in other crates need no dependency on this
//! module: [`limit_in`] finds the tag and the server counts it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Every limit, by its counter label; order is [`Limit`]'s.
pub const LIMIT_NAMES: [&str; 17] = [
    "body_size",
    "decompressed_size",
    "series_per_request",
    "samples_per_request",
    "labels_per_series",
    "label_name_length",
    "label_value_length",
    "series",
    "series_per_metric",
    "series_per_tenant",
    "query_timeout",
    "query_samples",
    "query_concurrency",
    "write_concurrency",
    "rule_count",
    "push_groups",
    "silences",
];

/// A limit, for [`LimitHits::hit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    BodySize,
    DecompressedSize,
    SeriesPerRequest,
    SamplesPerRequest,
    LabelsPerSeries,
    LabelNameLength,
    LabelValueLength,
    Series,
    SeriesPerMetric,
    SeriesPerTenant,
    QueryTimeout,
    QuerySamples,
    QueryConcurrency,
    WriteConcurrency,
    RuleCount,
    PushGroups,
    Silences,
}

const ALL: [Limit; 17] = [
    Limit::BodySize,
    Limit::DecompressedSize,
    Limit::SeriesPerRequest,
    Limit::SamplesPerRequest,
    Limit::LabelsPerSeries,
    Limit::LabelNameLength,
    Limit::LabelValueLength,
    Limit::Series,
    Limit::SeriesPerMetric,
    Limit::SeriesPerTenant,
    Limit::QueryTimeout,
    Limit::QuerySamples,
    Limit::QueryConcurrency,
    Limit::WriteConcurrency,
    Limit::RuleCount,
    Limit::PushGroups,
    Limit::Silences,
];

impl Limit {
    /// The counter label.
    pub fn name(self) -> &'static str {
        LIMIT_NAMES[self as usize]
    }

    /// The limit of a counter label.
    pub fn from_name(s: &str) -> Option<Limit> {
        LIMIT_NAMES.iter().position(|n| *n == s).map(|i| ALL[i])
    }
}

/// The limit named by a `(limit <name>)` tag in an error message, if any.
pub fn limit_in(msg: &str) -> Option<Limit> {
    let i = msg.rfind("(limit ")?;
    let rest = &msg[i + "(limit ".len()..];
    let end = rest.find([')', ':', ' '])?;
    Limit::from_name(&rest[..end])
}

/// Header naming the limit that refused a request (set on every refusal answer).
pub const LIMIT_HEADER: &str = "X-Sextant-Limit";

/// Counts refusals per limit.
#[derive(Default)]
pub struct LimitHits {
    hits: [AtomicU64; 17],
    /// Refusals counted elsewhere and added at render time (the TSDB's series caps, the
    /// alert manager's silences), keyed by limit.
    pub(crate) external: std::sync::Mutex<Vec<(Limit, ExternalCount)>>,
}

/// A counter kept by another component.
pub type ExternalCount = std::sync::Arc<dyn Fn() -> u64 + Send + Sync>;

impl LimitHits {
    /// Counts one refusal by `l`.
    pub fn hit(&self, l: Limit) {
        self.add(l, 1);
    }

    /// Counts `n` refusals by `l`.
    pub fn add(&self, l: Limit, n: u64) {
        self.hits[l as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a refusal whose message carries a `(limit <name>)` tag; true if it had one.
    pub fn hit_tagged(&self, msg: &str) -> bool {
        match limit_in(msg) {
            Some(l) => {
                self.hit(l);
                true
            }
            None => false,
        }
    }

    /// Adds a counter kept by another component to `l`'s series.
    pub fn add_external(&self, l: Limit, f: ExternalCount) {
        self.external
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((l, f));
    }

    /// The current count of `l`.
    pub fn get(&self, l: Limit) -> u64 {
        let ext: u64 = self
            .external
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(x, _)| *x == l)
            .map(|(_, f)| f())
            .sum();
        self.hits[l as usize].load(Ordering::Relaxed) + ext
    }

    /// Appends `sextant_limit_hits_total` with every limit (zeros included).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP sextant_limit_hits_total Requests, series or objects refused because they exceeded a configured limit (see docs/limits.md).\n");
        out.push_str("# TYPE sextant_limit_hits_total counter\n");
        for l in ALL {
            let _ = writeln!(
                out,
                "sextant_limit_hits_total{{limit=\"{}\"}} {}",
                l.name(),
                self.get(l)
            );
        }
    }
}

/// Limits that `/-/reload` can change while running (0 = unlimited).
#[derive(Default)]
pub struct RuntimeLimits {
    pub max_series_per_request: AtomicUsize,
    pub max_samples_per_request: AtomicUsize,
}

impl RuntimeLimits {
    pub fn new(series: usize, samples: usize) -> Self {
        let r = RuntimeLimits::default();
        r.set(series, samples);
        r
    }

    pub fn set(&self, series: usize, samples: usize) {
        self.max_series_per_request.store(series, Ordering::Relaxed);
        self.max_samples_per_request
            .store(samples, Ordering::Relaxed);
    }

    /// Refuses a request with more series or samples than allowed: the limit and a message.
    pub fn check(&self, series: usize, samples: usize) -> Result<(), (Limit, String)> {
        let max = self.max_series_per_request.load(Ordering::Relaxed);
        if max > 0 && series > max {
            return Err((
                Limit::SeriesPerRequest,
                format!(
                    "request has {series} series, over the limit of {max} series per request (limit series_per_request); split it into smaller requests"
                ),
            ));
        }
        let max = self.max_samples_per_request.load(Ordering::Relaxed);
        if max > 0 && samples > max {
            return Err((
                Limit::SamplesPerRequest,
                format!(
                    "request has {samples} samples, over the limit of {max} samples per request (limit samples_per_request); split it into smaller requests"
                ),
            ));
        }
        Ok(())
    }
}

/// Sets [`LIMIT_HEADER`] on `resp` when `msg` names a limit (so the body-limit fallback in
/// the router knows the refusal was already counted).
pub fn tag_response(mut resp: Response, msg: &str) -> Response {
    if let Some(l) = limit_in(msg) {
        resp.headers_mut()
            .insert(LIMIT_HEADER, HeaderValue::from_static(l.name()));
    }
    resp
}

/// A plain-text refusal by `l` with the limit header; counts it.
pub fn refuse(hits: &LimitHits, l: Limit, status: StatusCode, msg: impl Into<String>) -> Response {
    hits.hit(l);
    let mut r = (status, msg.into() + "\n").into_response();
    r.headers_mut()
        .insert(LIMIT_HEADER, HeaderValue::from_static(l.name()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags() {
        for l in ALL {
            assert_eq!(Limit::from_name(l.name()), Some(l));
        }
        assert_eq!(
            limit_in("value of tag \"x\" is longer than 3 bytes (limit label_value_length)"),
            Some(Limit::LabelValueLength)
        );
        assert_eq!(limit_in("no tag"), None);
        assert_eq!(limit_in("(limit nonsense)"), None);
    }

    #[test]
    fn renders_every_limit_at_zero() {
        let h = LimitHits::default();
        h.hit(Limit::Silences);
        h.add_external(Limit::Series, std::sync::Arc::new(|| 5));
        let mut s = String::new();
        h.render(&mut s);
        for n in LIMIT_NAMES {
            assert!(s.contains(&format!("limit=\"{n}\"")), "{n} missing");
        }
        assert!(s.contains("sextant_limit_hits_total{limit=\"silences\"} 1\n"));
        assert!(s.contains("sextant_limit_hits_total{limit=\"series\"} 5\n"));
        assert!(s.contains("sextant_limit_hits_total{limit=\"body_size\"} 0\n"));
    }

    #[test]
    fn per_request_checks() {
        let r = RuntimeLimits::new(2, 3);
        assert!(r.check(2, 3).is_ok());
        assert_eq!(r.check(3, 1).unwrap_err().0, Limit::SeriesPerRequest);
        assert_eq!(r.check(1, 4).unwrap_err().0, Limit::SamplesPerRequest);
        r.set(0, 0);
        assert!(r.check(1000, 1000).is_ok());
    }
}

/// The limits that need a held slot or an expired deadline, driven through the router.
#[cfg(test)]
mod router_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::Limit;
    use crate::{router, AppState, BuildInfo, QueryLimits, WriteLimits};

    fn state(w: WriteLimits, q: QueryLimits) -> (tempfile::TempDir, Arc<AppState>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db =
            Arc::new(sextant_tsdb::db::Db::open(dir.path(), Default::default()).expect("open db"));
        let st = AppState::with_query_limits(
            db,
            w,
            q,
            BuildInfo {
                version: "0".into(),
                revision: "t".into(),
            },
        );
        (dir, st)
    }

    async fn call(st: &Arc<AppState>, req: Request<Body>) -> (StatusCode, String) {
        let resp = router(st.clone()).oneshot(req).await.expect("response");
        let s = resp.status();
        let b = resp.into_body().collect().await.expect("body").to_bytes();
        (s, String::from_utf8_lossy(&b).to_string())
    }

    #[tokio::test]
    async fn write_concurrency_answers_429_and_counts() {
        let (_d, st) = state(
            WriteLimits {
                max_concurrent: 1,
                queue_wait: Duration::from_millis(50),
                ..Default::default()
            },
            QueryLimits::default(),
        );
        let held = st.write_slots.acquire().await.expect("slot");
        let req = Request::post("/api/v1/import/prometheus")
            .body(Body::from("m 1\n"))
            .expect("req");
        let (s, b) = call(&st, req).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
        assert!(b.contains("limit write_concurrency: 1"), "{b}");
        let req = Request::put("/metrics/job/x")
            .body(Body::from("m 1\n"))
            .expect("req");
        let (s, _) = call(&st, req).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(st.limit_hits.get(Limit::WriteConcurrency), 2);
        drop(held);
        let req = Request::post("/api/v1/import/prometheus")
            .body(Body::from("m 1\n"))
            .expect("req");
        assert_eq!(call(&st, req).await.0, StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn query_concurrency_answers_429_and_counts() {
        let (_d, st) = state(
            WriteLimits::default(),
            QueryLimits {
                max_concurrent: 1,
                timeout: Duration::from_millis(50),
                ..Default::default()
            },
        );
        let held = st.query_slots.clone().acquire_owned().await.expect("slot");
        let req = Request::get("/api/v1/query?query=1")
            .body(Body::empty())
            .expect("req");
        let (s, b) = call(&st, req).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).expect("json");
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "unavailable");
        assert!(
            v["error"]
                .as_str()
                .unwrap_or("")
                .contains("limit query_concurrency: 1"),
            "{b}"
        );
        assert_eq!(st.limit_hits.get(Limit::QueryConcurrency), 1);
        drop(held);
    }

    #[tokio::test]
    async fn query_timeout_in_prometheus_shape_and_counted() {
        let (_d, st) = state(
            WriteLimits::default(),
            QueryLimits {
                timeout: Duration::ZERO,
                ..Default::default()
            },
        );
        let req = Request::get("/api/v1/query_range?query=vector(1)&start=0&end=600&step=1")
            .body(Body::empty())
            .expect("req");
        let (s, b) = call(&st, req).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).expect("json");
        assert_eq!(v["errorType"], "timeout");
        assert!(
            v["error"]
                .as_str()
                .unwrap_or("")
                .contains("(limit query_timeout: 0s)"),
            "{b}"
        );
        assert_eq!(st.limit_hits.get(Limit::QueryTimeout), 1);
    }
}
