//! `remote_engines:` — reading raw samples from any engine that speaks the Prometheus HTTP API
//! (VictoriaMetrics single node or cluster `vmselect`, Mimir, Thanos Query, Prometheus), for
//! engines without a remote-read endpoint. With `api: query` (default) a selection becomes an
//! instant query of the range selector `{matchers}[range]` at the range's end, which every
//! Prometheus-compatible engine answers with the raw samples; with `api: export` it uses
//! VictoriaMetrics' `/api/v1/export` (raw samples as JSON lines, no query limits on series
//! fetched). Native histograms in a query reply are recovered from their bucket bounds
//! ([`crate::apihist`]). Series lists use `/api/v1/series`; label names and values use
//! `/api/v1/labels` and `/api/v1/label/<name>/values` (with or without `match[]`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use sextant_ingest::scrape::config::PromDuration;
use sextant_model::{HistogramValue, Labels, Matcher, Sample};
use sextant_promql::SeriesData;

use crate::http::{excerpt, BlockingHttp, HttpFields};
use crate::read::redact;
use crate::{has_required, selector, RemoteEngine, Selected};

/// How samples are fetched from a Prometheus-API engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `/api/v1/query` with a range selector (any Prometheus-compatible engine).
    #[default]
    Query,
    /// VictoriaMetrics' `/api/v1/export`.
    Export,
}

/// One `remote_engines` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEngineConfig {
    /// Name in warnings and logs.
    pub name: String,
    /// Base URL of the Prometheus API (the part before `/api/v1/...`), e.g.
    /// `http://vmselect:8481/select/0/prometheus` or `http://mimir:8080/prometheus`.
    pub url: String,
    #[serde(default)]
    pub api: Api,
    /// Default 1m.
    pub remote_timeout: Option<PromDuration>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Equality matchers a selection must carry to be sent to this engine.
    #[serde(default)]
    pub required_matchers: BTreeMap<String, String>,
    pub basic_auth: Option<sextant_alert::receivers::http::BasicAuth>,
    pub authorization: Option<sextant_alert::receivers::http::Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<std::path::PathBuf>,
    pub tls_config: Option<sextant_alert::receivers::http::TlsConfig>,
    pub proxy_url: Option<String>,
    pub follow_redirects: Option<bool>,
    pub enable_http2: Option<bool>,
}

impl RemoteEngineConfig {
    /// Checks the entry without building a client (for config validation).
    pub fn check(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        let u = reqwest::Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        if u.scheme() != "http" && u.scheme() != "https" {
            return Err(format!("url: scheme {:?} is not http or https", u.scheme()));
        }
        for k in self.required_matchers.keys() {
            if !sextant_model::labels::is_valid_label_name(k) {
                return Err(format!(
                    "required_matchers: {k:?} is not a valid label name"
                ));
            }
        }
        Ok(())
    }
}

/// A Prometheus-API engine as a [`RemoteEngine`].
pub struct PromApiEngine {
    name: String,
    base: String,
    api: Api,
    http: BlockingHttp,
    required: BTreeMap<String, String>,
}

/// Seconds with millisecond fraction, as the Prometheus API takes timestamps.
fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

#[derive(Deserialize)]
struct ApiReply {
    status: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct MatrixData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<MatrixSeries>,
}

#[derive(Deserialize)]
struct MatrixSeries {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
    #[serde(default)]
    histograms: Vec<(f64, serde_json::Value)>,
}

#[derive(Deserialize)]
struct ExportLine {
    metric: BTreeMap<String, String>,
    values: Vec<serde_json::Value>,
    timestamps: Vec<i64>,
}

/// A sample value as the API writes it (a string such as `"1.5"`, `"NaN"`, `"+Inf"`).
fn parse_value(v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .map_err(|_| format!("invalid sample value {v:?}"))
}

impl PromApiEngine {
    pub fn new(cfg: &RemoteEngineConfig, rt: tokio::runtime::Handle) -> Result<Self, String> {
        cfg.check()?;
        let timeout = cfg
            .remote_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(60));
        let fields = HttpFields {
            basic_auth: cfg.basic_auth.clone(),
            authorization: cfg.authorization.clone(),
            bearer_token: cfg.bearer_token.clone(),
            bearer_token_file: cfg.bearer_token_file.clone(),
            tls_config: cfg.tls_config.clone(),
            proxy_url: cfg.proxy_url.clone(),
            follow_redirects: cfg.follow_redirects,
            enable_http2: cfg.enable_http2,
        };
        Ok(PromApiEngine {
            name: cfg.name.clone(),
            base: cfg.url.trim_end_matches('/').to_string(),
            api: cfg.api,
            http: BlockingHttp::new(&fields, &cfg.headers, timeout, rt)?,
            required: cfg.required_matchers.clone(),
        })
    }

    /// POSTs a form to `path` and returns the `data` of a successful reply, plus its warnings.
    fn call(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<(serde_json::Value, Vec<String>), String> {
        let url = format!("{}{path}", self.base);
        let body: String = form_urlencoded(form);
        let r = self.http.send(reqwest::Method::POST, &url, |rb| {
            rb.header("Content-Type", "application/x-www-form-urlencoded")
                .header("Accept", "application/json")
                .body(body)
        })?;
        self.reply(&url, path, r)
    }

    /// Like [`PromApiEngine::call`] with a GET and the parameters in the query string.
    fn call_get(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<(serde_json::Value, Vec<String>), String> {
        let url = format!("{}{path}?{}", self.base, form_urlencoded(params));
        let r = self.http.send(reqwest::Method::GET, &url, |rb| {
            rb.header("Accept", "application/json")
        })?;
        self.reply(&url, path, r)
    }

    fn reply(
        &self,
        url: &str,
        path: &str,
        r: crate::http::Reply,
    ) -> Result<(serde_json::Value, Vec<String>), String> {
        let reply: ApiReply = serde_json::from_slice(&r.body).map_err(|e| {
            format!(
                "{} {}: HTTP {}, not a Prometheus API reply ({e}): {}",
                redact(url),
                path,
                r.status,
                excerpt(&r.body)
            )
        })?;
        if reply.status != "success" {
            return Err(format!(
                "{}: {}",
                reply.error_type.as_deref().unwrap_or("error"),
                reply.error.as_deref().unwrap_or("request failed")
            ));
        }
        Ok((
            reply.data.unwrap_or(serde_json::Value::Null),
            reply.warnings,
        ))
    }

    fn select_query(&self, sel: &str, mint: i64, maxt: i64) -> Result<Selected, String> {
        // Prometheus 2 includes both ends of a range, 3 and VictoriaMetrics exclude the start:
        // ask for one millisecond more and cut to [mint, maxt] here.
        let range = maxt.saturating_sub(mint).saturating_add(1).max(1);
        let (data, warnings) = self.call(
            "/api/v1/query",
            &[("query", format!("{sel}[{range}ms]")), ("time", secs(maxt))],
        )?;
        let m: MatrixData =
            serde_json::from_value(data).map_err(|e| format!("unexpected query result: {e}"))?;
        if m.result_type != "matrix" {
            return Err(format!(
                "unexpected result type {:?} for a range selector",
                m.result_type
            ));
        }
        let mut series = Vec::with_capacity(m.result.len());
        for s in m.result {
            let mut floats = Vec::with_capacity(s.values.len());
            for (t, v) in &s.values {
                let t = (t * 1000.0).round() as i64;
                if t >= mint && t <= maxt {
                    floats.push(Sample::new(t, parse_value(v)?));
                }
            }
            let mut histograms = Vec::with_capacity(s.histograms.len());
            for (t, h) in &s.histograms {
                let t = (t * 1000.0).round() as i64;
                if t >= mint && t <= maxt {
                    let h = crate::apihist::from_api(h)?;
                    histograms.push((t, HistogramValue::Float(h)));
                }
            }
            floats.sort_by_key(|p| p.t);
            histograms.sort_by_key(|p| p.0);
            if floats.is_empty() && histograms.is_empty() {
                continue;
            }
            series.push(SeriesData {
                labels: Labels::from_pairs(s.metric),
                floats,
                histograms,
                ..Default::default()
            });
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Selected { series, warnings })
    }

    fn select_export(&self, sel: &str, mint: i64, maxt: i64) -> Result<Selected, String> {
        let url = format!("{}/api/v1/export", self.base);
        let body = form_urlencoded(&[
            ("match[]", sel.to_string()),
            ("start", secs(mint)),
            ("end", secs(maxt)),
        ]);
        let r = self.http.send(reqwest::Method::POST, &url, |rb| {
            rb.header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
        })?;
        if r.status / 100 != 2 {
            return Err(format!(
                "export: HTTP status {}: {}",
                r.status,
                excerpt(&r.body)
            ));
        }
        let mut series = Vec::new();
        for (i, line) in r.body.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let l: ExportLine =
                serde_json::from_slice(line).map_err(|e| format!("export: line {}: {e}", i + 1))?;
            if l.values.len() != l.timestamps.len() {
                return Err(format!(
                    "export: line {}: {} values but {} timestamps",
                    i + 1,
                    l.values.len(),
                    l.timestamps.len()
                ));
            }
            let mut floats = Vec::with_capacity(l.values.len());
            for (v, t) in l.values.iter().zip(&l.timestamps) {
                if *t < mint || *t > maxt {
                    continue;
                }
                let v = match v {
                    serde_json::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                    serde_json::Value::String(s) => parse_value(s)?,
                    serde_json::Value::Null => f64::NAN,
                    other => return Err(format!("export: line {}: invalid value {other}", i + 1)),
                };
                floats.push(Sample::new(*t, v));
            }
            floats.sort_by_key(|p| p.t);
            if !floats.is_empty() {
                series.push(SeriesData {
                    labels: Labels::from_pairs(l.metric),
                    floats,
                    ..Default::default()
                });
            }
        }
        // One series may come in several lines.
        Ok(Selected {
            series: crate::merge(series, Vec::new()),
            warnings: Vec::new(),
        })
    }
}

impl PromApiEngine {
    /// A string list (`/api/v1/labels`, `/api/v1/label/<name>/values`) for `matchers` (all
    /// series when empty) in `[mint, maxt]`.
    fn list(
        &self,
        path: String,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, String> {
        if !has_required(matchers, &self.required)
            || (!matchers.is_empty() && matchers.iter().all(Matcher::matches_empty))
        {
            return Ok(Vec::new());
        }
        let mut form = vec![("start", secs(mint)), ("end", secs(maxt))];
        if !matchers.is_empty() {
            form.push(("match[]", selector(matchers)));
        }
        // GET: Prometheus serves `/api/v1/label/<name>/values` for GET only.
        let (data, _) = self.call_get(&path, &form)?;
        let mut list: Vec<String> =
            serde_json::from_value(data).map_err(|e| format!("unexpected {path} result: {e}"))?;
        list.sort();
        list.dedup();
        Ok(list)
    }
}

fn form_urlencoded(pairs: &[(&str, String)]) -> String {
    let mut u = reqwest::Url::parse("http://x/").expect("static URL parses");
    u.query_pairs_mut()
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    u.query().unwrap_or("").to_string()
}

impl RemoteEngine for PromApiEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Selected, String> {
        if !has_required(matchers, &self.required) || matchers.iter().all(Matcher::matches_empty) {
            return Ok(Selected::default());
        }
        let sel = selector(matchers);
        match self.api {
            Api::Query => self.select_query(&sel, mint, maxt),
            Api::Export => self.select_export(&sel, mint, maxt),
        }
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, String> {
        self.list("/api/v1/labels".into(), matchers, mint, maxt)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, String> {
        let mut path = String::from("/api/v1/label/");
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || b == b'_' {
                path.push(b as char);
            } else {
                path.push_str(&format!("%{b:02X}"));
            }
        }
        path.push_str("/values");
        self.list(path, matchers, mint, maxt)
    }

    fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>, String> {
        if !has_required(matchers, &self.required) || matchers.iter().all(Matcher::matches_empty) {
            return Ok(Vec::new());
        }
        let (data, _) = self.call(
            "/api/v1/series",
            &[
                ("match[]", selector(matchers)),
                ("start", secs(mint)),
                ("end", secs(maxt)),
            ],
        )?;
        let list: Vec<BTreeMap<String, String>> =
            serde_json::from_value(data).map_err(|e| format!("unexpected series result: {e}"))?;
        Ok(list.into_iter().map(Labels::from_pairs).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_values() {
        assert_eq!(secs(1_500), "1.500");
        assert_eq!(secs(-1), "-0.001");
        assert_eq!(secs(0), "0.000");
        assert!(parse_value("+Inf").unwrap().is_infinite());
        assert!(parse_value("NaN").unwrap().is_nan());
        assert!(parse_value("x").is_err());
        assert_eq!(
            form_urlencoded(&[("query", "{a=\"b c\"}[5ms]".into())]),
            "query=%7Ba%3D%22b+c%22%7D%5B5ms%5D"
        );
    }

    #[test]
    fn config_is_checked() {
        let c: RemoteEngineConfig =
            serde_json::from_str(r#"{"name":"vm","url":"ftp://x","api":"export"}"#).unwrap();
        assert!(c.check().unwrap_err().contains("scheme"));
        assert!(serde_json::from_str::<RemoteEngineConfig>(
            r#"{"name":"vm","url":"http://x","bogus":1}"#
        )
        .is_err());
    }
}
