//! Request parameters the way Prometheus reads them: URL query and, for POST, an
//! `application/x-www-form-urlencoded` body, merged; repeated keys such as `match[]` kept.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use sextant_model::time::parse_timestamp_ms;
use sextant_model::Matcher;

use crate::api::ApiError;

/// Handlers take `Params` as their last argument: query string and form body, read the same way
/// for every endpoint.
impl<S: Send + Sync> axum::extract::FromRequest<S> for Params {
    type Rejection = axum::response::Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let (parts, body) = req.into_parts();
        let method = parts.method.clone();
        let query = parts.uri.query().map(str::to_string);
        let headers = parts.headers.clone();
        let bytes = Bytes::from_request(axum::extract::Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Params::parse(&method, query.as_deref(), &headers, &bytes))
    }
}

/// All parameters of one request.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(method: &Method, query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Self {
        let mut v: Vec<(String, String)> = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_form = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if method == Method::POST && is_form {
            v.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(v)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A time parameter in ms, or `default` when absent.
    pub fn time(&self, k: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(default),
            Some(s) => parse_timestamp_ms(s).map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter \"{k}\": cannot parse {s:?} to a valid timestamp"
                ))
            }),
        }
    }

    /// `start`/`end` with Prometheus' defaults (the whole time range).
    pub fn range(&self) -> Result<(i64, i64), ApiError> {
        let start = self.time("start", i64::MIN)?;
        let end = self.time("end", i64::MAX)?;
        if end < start {
            return Err(ApiError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        Ok((start, end))
    }

    /// `limit` (0 or absent = none).
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None | Some("") => Ok(0),
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    ApiError::bad_data(format!(
                        "invalid parameter \"limit\": cannot parse {s:?} to a non-negative integer"
                    ))
                }),
        }
    }

    /// Every `match[]` parsed into matcher lists.
    pub fn matchers(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        self.all("match[]")
            .into_iter()
            .map(|s| {
                sextant_model::selector::parse_selector(s)
                    .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))
            })
            .collect()
    }

    /// Like [`Params::matchers`], but at least one `match[]` is required.
    pub fn required_matchers(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        let sets = self.matchers()?;
        if sets.is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        Ok(sets)
    }
}
