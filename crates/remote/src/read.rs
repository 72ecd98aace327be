//! `remote_read:` — reading another engine through Prometheus' remote-read protocol, with
//! Prometheus' configuration format and semantics: `required_matchers` gate which selections go
//! out, `read_recent: false` (the default) only asks for data older than what local storage
//! holds, and `filter_external_labels` adds this server's external labels as equality matchers
//! and strips them from the answer. Requests are snappy-compressed `ReadRequest`s; both response
//! types (`SAMPLES` and `STREAMED_XOR_CHUNKS`) are understood.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use serde::Deserialize;
use sextant_ingest::remote_write::proto::v1;
use sextant_ingest::scrape::config::PromDuration;
use sextant_model::{Labels, Matcher};

use crate::http::{excerpt, BlockingHttp, HttpFields, MAX_RESPONSE_BYTES};
use crate::wire;
use crate::{has_required, RemoteEngine, Selected};

/// One `remote_read` entry, in Prometheus' format.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteReadConfig {
    /// The remote-read endpoint, e.g. `http://prometheus:9090/api/v1/read`.
    pub url: String,
    pub name: Option<String>,
    /// Default 1m.
    pub remote_timeout: Option<PromDuration>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Also read the time range local storage covers (default false, as in Prometheus).
    #[serde(default)]
    pub read_recent: bool,
    /// Equality matchers a selection must carry to be sent to this endpoint.
    #[serde(default)]
    pub required_matchers: BTreeMap<String, String>,
    /// Default true: add external labels as matchers and strip them from results.
    pub filter_external_labels: Option<bool>,
    #[serde(default)]
    pub basic_auth: Option<sextant_alert::receivers::http::BasicAuth>,
    #[serde(default)]
    pub authorization: Option<sextant_alert::receivers::http::Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<std::path::PathBuf>,
    pub tls_config: Option<sextant_alert::receivers::http::TlsConfig>,
    pub proxy_url: Option<String>,
    pub follow_redirects: Option<bool>,
    pub enable_http2: Option<bool>,
}

impl RemoteReadConfig {
    /// The entry's name in warnings: `name`, else the URL's host and path.
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => redact(&self.url),
        }
    }

    fn http_fields(&self) -> HttpFields {
        HttpFields {
            basic_auth: self.basic_auth.clone(),
            authorization: self.authorization.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls_config: self.tls_config.clone(),
            proxy_url: self.proxy_url.clone(),
            follow_redirects: self.follow_redirects,
            enable_http2: self.enable_http2,
        }
    }

    /// Checks the entry without building a client (for config validation).
    pub fn check(&self) -> Result<(), String> {
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

/// The URL without credentials, query or fragment.
pub(crate) fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "remote".into(),
    }
}

/// The oldest timestamp local storage holds (`i64::MAX` when empty), for `read_recent: false`.
pub type LocalStart = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A remote-read endpoint as a [`RemoteEngine`].
pub struct RemoteRead {
    name: String,
    url: String,
    http: BlockingHttp,
    read_recent: bool,
    required: BTreeMap<String, String>,
    /// External labels added as matchers (empty when `filter_external_labels: false`).
    external: Labels,
    local_start: LocalStart,
}

impl RemoteRead {
    /// Builds the client; `rt` runs its requests.
    pub fn new(
        cfg: &RemoteReadConfig,
        external_labels: &Labels,
        local_start: LocalStart,
        rt: tokio::runtime::Handle,
    ) -> Result<Self, String> {
        cfg.check()?;
        let timeout = cfg
            .remote_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(60));
        let http = BlockingHttp::new(&cfg.http_fields(), &cfg.headers, timeout, rt)?;
        Ok(RemoteRead {
            name: cfg.display_name(),
            url: cfg.url.clone(),
            http,
            read_recent: cfg.read_recent,
            required: cfg.required_matchers.clone(),
            external: if cfg.filter_external_labels.unwrap_or(true) {
                external_labels.clone()
            } else {
                Labels::empty()
            },
            local_start,
        })
    }

    /// Sends one query and returns the raw reply.
    fn read(&self, req: &v1::ReadRequest) -> Result<(String, Vec<u8>), String> {
        let body = sextant_ingest::remote_write::compress_snappy(&req.encode_to_vec());
        let r = self.http.send(reqwest::Method::POST, &self.url, |rb| {
            rb.header("Content-Type", wire::PROTOBUF)
                .header("Content-Encoding", "snappy")
                .header("X-Prometheus-Remote-Read-Version", "0.1.0")
                .body(body)
        })?;
        if r.status / 100 != 2 {
            return Err(format!(
                "server returned HTTP status {}: {}",
                r.status,
                excerpt(&r.body)
            ));
        }
        Ok((r.content_type, r.body))
    }
}

impl RemoteRead {
    /// Whether Prometheus would not ask this endpoint at all for `[mint, ..]` (its
    /// `PreferLocalStorageFilter` gives a no-op querier): `read_recent: false` and the range
    /// starts after the oldest local data.
    fn local_covers(&self, mint: i64) -> bool {
        !self.read_recent && mint > (self.local_start)()
    }
}

impl RemoteEngine for RemoteRead {
    fn name(&self) -> &str {
        &self.name
    }

    /// Remote read has no label-names call: with `match[]` the matching series are read;
    /// without, Prometheus' remote-read querier answers "not implemented" (a warning on the
    /// partial result) unless local storage covers the range — so does this.
    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, String> {
        if self.local_covers(mint) {
            return Ok(Vec::new());
        }
        crate::strings_of_series(self, matchers, mint, maxt, |l| {
            l.iter().map(|l| l.name.clone()).collect()
        })
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, String> {
        if self.local_covers(mint) {
            return Ok(Vec::new());
        }
        crate::strings_of_series(self, matchers, mint, maxt, |l| {
            l.get(name).map(str::to_string).into_iter().collect()
        })
    }

    fn select(&self, matchers: &[Matcher], mint: i64, mut maxt: i64) -> Result<Selected, String> {
        if !has_required(matchers, &self.required) {
            return Ok(Selected::default());
        }
        if !self.read_recent {
            // Only data older than local storage (Prometheus' PreferLocalStorageFilter).
            if self.local_covers(mint) {
                return Ok(Selected::default());
            }
            maxt = maxt.min((self.local_start)());
        }
        // External labels the selection does not constrain become matchers.
        let mut ms: Vec<Matcher> = matchers.to_vec();
        let mut added: Vec<String> = Vec::new();
        for l in self.external.iter() {
            if !matchers.iter().any(|m| m.name == l.name) {
                ms.push(Matcher::equal(l.name.clone(), l.value.clone()));
                added.push(l.name.clone());
            }
        }
        let req = v1::ReadRequest {
            queries: vec![v1::Query {
                start_timestamp_ms: mint,
                end_timestamp_ms: maxt,
                matchers: wire::matchers_to_proto(&ms),
                hints: None,
            }],
            // Prometheus' own client asks for samples.
            accepted_response_types: vec![v1::read_request::ResponseType::Samples as i32],
        };
        let (ct, body) = self.read(&req)?;
        let mut series = decode_response(&ct, &body, mint, maxt).map_err(|e| e.0)?;
        if !added.is_empty() {
            for s in &mut series {
                s.labels = Labels::from_sorted(
                    s.labels
                        .iter()
                        .filter(|l| !added.contains(&l.name))
                        .cloned()
                        .collect(),
                );
            }
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        Ok(Selected {
            series,
            warnings: Vec::new(),
        })
    }
}

/// Decodes a remote-read response of either type into series with samples in `[mint, maxt]`,
/// sorted by labels.
pub fn decode_response(
    content_type: &str,
    body: &[u8],
    mint: i64,
    maxt: i64,
) -> Result<Vec<sextant_promql::SeriesData>, wire::WireError> {
    let mut out = Vec::new();
    if content_type.starts_with("application/x-streamed-protobuf") {
        for frame in wire::read_frames(body)? {
            for cs in frame.chunked_series {
                let s = wire::series_from_chunks(cs, mint, maxt)?;
                out.push(s);
            }
        }
        // A series may span frames: merge the pieces.
        out = crate::merge(out, Vec::new());
    } else {
        let raw = sextant_ingest::remote_write::decompress_snappy(body, MAX_RESPONSE_BYTES)
            .map_err(|e| wire::WireError(format!("response: {e}")))?;
        let resp = v1::ReadResponse::decode(raw.as_slice())
            .map_err(|e| wire::WireError(format!("response: {e}")))?;
        for r in resp.results {
            for ts in r.timeseries {
                let mut s = wire::series_from_proto(ts)?;
                s.floats.retain(|p| p.t >= mint && p.t <= maxt);
                s.histograms.retain(|p| p.0 >= mint && p.0 <= maxt);
                out.push(s);
            }
        }
        out = crate::merge(out, Vec::new());
    }
    out.retain(|s| !s.floats.is_empty() || !s.histograms.is_empty());
    Ok(out)
}
