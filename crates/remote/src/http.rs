//! The HTTP side of the remote engines: Prometheus' `http_config` fields as they appear inline
//! in a `remote_read` entry, turned into the same client the Alertmanager integrations use, and
//! a blocking call for the PromQL engine (which evaluates on the blocking pool): the request
//! runs on the server's runtime and the caller waits for it, with the body size bounded.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sextant_alert::receivers::http::{Authorization, BasicAuth, Client, HttpConfig, TlsConfig};

/// Largest response body read from a remote engine (decoded size for snappy bodies).
pub const MAX_RESPONSE_BYTES: usize = 512 << 20;

/// The `http_config` fields Prometheus accepts inline in `remote_read` entries.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFields {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub tls_config: Option<TlsConfig>,
    pub proxy_url: Option<String>,
    pub follow_redirects: Option<bool>,
    pub enable_http2: Option<bool>,
}

impl HttpFields {
    fn to_config(&self) -> HttpConfig {
        HttpConfig {
            basic_auth: self.basic_auth.clone(),
            authorization: self.authorization.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls_config: self.tls_config.clone().unwrap_or_default(),
            proxy_url: self.proxy_url.clone(),
            follow_redirects: self.follow_redirects,
            enable_http2: self.enable_http2,
        }
    }
}

/// Headers Prometheus refuses to let a `remote_read`/`remote_write` config set.
const RESERVED_HEADERS: [&str; 6] = [
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
];

/// A configured client that can be called from a blocking thread.
pub(crate) struct BlockingHttp {
    client: Client,
    headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    rt: tokio::runtime::Handle,
    timeout: Duration,
}

/// A response: status, content type, body (at most [`MAX_RESPONSE_BYTES`]).
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl BlockingHttp {
    pub fn new(
        fields: &HttpFields,
        headers: &BTreeMap<String, String>,
        timeout: Duration,
        rt: tokio::runtime::Handle,
    ) -> Result<Self, String> {
        let client = Client::new(Some(&fields.to_config()), Some(timeout))?;
        let mut hs = Vec::new();
        for (k, v) in headers {
            if RESERVED_HEADERS.contains(&k.to_ascii_lowercase().as_str())
                || k.to_ascii_lowercase().starts_with("x-prometheus-remote-")
            {
                return Err(format!(
                    "headers: {k:?} is a reserved header and cannot be set"
                ));
            }
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| format!("headers: invalid header name {k:?}: {e}"))?;
            let value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|e| format!("headers: invalid value for {k:?}: {e}"))?;
            hs.push((name, value));
        }
        Ok(BlockingHttp {
            client,
            headers: hs,
            rt,
            timeout,
        })
    }

    /// Sends a request built by `build` and waits for the reply (on a blocking thread).
    pub fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Reply, String> {
        let mut rb = self
            .client
            .request(method, url)
            .map_err(|e| e.msg.clone())?;
        for (k, v) in &self.headers {
            rb = rb.header(k.clone(), v.clone());
        }
        let rb = build(rb);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let r = async {
                let mut resp = rb.send().await.map_err(err_text)?;
                let status = resp.status().as_u16();
                let content_type = resp
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(err_text)? {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(format!("response larger than {MAX_RESPONSE_BYTES} bytes"));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Reply {
                    status,
                    content_type,
                    body,
                })
            }
            .await;
            let _ = tx.send(r);
        });
        // The client's own timeout ends the request; the margin only guards against a stuck runtime.
        rx.recv_timeout(self.timeout + Duration::from_secs(5))
            .map_err(|_| format!("no response within {:?}", self.timeout))?
    }
}

/// A reqwest error with its causes, without the URL (it may carry credentials).
fn err_text(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// A short single-line excerpt of a body, for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(512)]);
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.trim().chars().take(200).collect()
}
