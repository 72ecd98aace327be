//! The HTTP side shared by the integrations: Prometheus' `http_config` (basic auth,
//! `authorization`, TLS, proxy), one reqwest client per integration, and the classification of
//! failures into retryable (network errors, 5xx, 429) and permanent (other 4xx) with messages
//! that carry the status and a short body excerpt but never a URL (URLs hold Slack webhook
//! secrets and Telegram bot tokens).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Secret;
use crate::NotifyError;

/// Prometheus' `http_config`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    /// Deprecated spelling of `authorization: {credentials: ...}`.
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    pub proxy_url: Option<String>,
    /// Default true.
    pub follow_redirects: Option<bool>,
    /// Accepted for compatibility; reqwest negotiates HTTP/2 itself.
    pub enable_http2: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Default `Bearer`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<PathBuf>,
}

/// Prometheus' `tls_config`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    pub min_version: Option<String>,
}

/// The request-time auth header of an `http_config`.
#[derive(Clone, Debug)]
enum Auth {
    None,
    Basic(String, Option<Secret>),
    Header(String, Secret),
}

/// A configured HTTP client.
#[derive(Clone, Debug)]
pub struct Client {
    inner: reqwest::Client,
    auth: Auth,
}

const USER_AGENT: &str = concat!("Sextant/", env!("CARGO_PKG_VERSION"));
/// Largest response body read from any integration endpoint.
pub(crate) const MAX_RESPONSE: usize = 8 << 20;

fn read_file(p: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("tls_config.{what} {}: {e}", p.display()))
}

impl Client {
    /// Builds a client from an `http_config` (`None` = defaults), with an overall `timeout`.
    pub fn new(cfg: Option<&HttpConfig>, timeout: Option<Duration>) -> Result<Client, String> {
        let default = HttpConfig::default();
        let cfg = cfg.unwrap_or(&default);
        let mut b = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout.unwrap_or(Duration::from_secs(30)))
            .connect_timeout(Duration::from_secs(10));
        if !cfg.follow_redirects.unwrap_or(true) {
            b = b.redirect(reqwest::redirect::Policy::none());
        }
        let tls = &cfg.tls_config;
        if tls.insecure_skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(ca) = &tls.ca_file {
            let pem = read_file(ca, "ca_file")?;
            for c in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls_config.ca_file: {e}"))?
            {
                b = b.add_root_certificate(c);
            }
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(c), Some(k)) => {
                let mut pem = read_file(c, "cert_file")?;
                pem.push(b'\n');
                pem.extend(read_file(k, "key_file")?);
                let id = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| format!("tls_config: client certificate: {e}"))?;
                b = b.identity(id);
            }
            (None, None) => {}
            _ => return Err("tls_config: cert_file and key_file must be set together".into()),
        }
        if let Some(sn) = tls
            .server_name
            .as_deref()
            .filter(|_| !tls.insecure_skip_verify)
        {
            // reqwest checks the certificate against the URL's host; with server_name the
            // whole TLS setup (roots, client certificate, name) moves into a rustls config.
            b = b.use_preconfigured_tls(named_tls_config(tls, sn)?);
        }
        match tls.min_version.as_deref() {
            None => {}
            Some("TLS12") => b = b.min_tls_version(reqwest::tls::Version::TLS_1_2),
            Some("TLS13") => b = b.min_tls_version(reqwest::tls::Version::TLS_1_3),
            Some(v) => {
                return Err(format!(
                    "tls_config.min_version: unsupported {v:?} (TLS12 or TLS13)"
                ))
            }
        }
        if let Some(p) = &cfg.proxy_url {
            b = b.proxy(
                reqwest::Proxy::all(p).map_err(|e| format!("proxy_url: {}", e.without_url()))?,
            );
        }
        let inner = b.build().map_err(|e| format!("http client: {e}"))?;

        let bearer = Secret::from_fields(
            cfg.bearer_token.as_deref(),
            cfg.bearer_token_file.as_ref(),
            "bearer_token",
        )?;
        let set = [
            cfg.basic_auth.is_some(),
            cfg.authorization.is_some(),
            bearer.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if set > 1 {
            return Err("at most one of basic_auth, authorization and bearer_token(_file) must be configured".into());
        }
        let auth = if let Some(ba) = &cfg.basic_auth {
            let pw = Secret::from_fields(
                ba.password.as_deref(),
                ba.password_file.as_ref(),
                "basic_auth.password",
            )?;
            if let Some(p) = &pw {
                p.check()?;
            }
            Auth::Basic(ba.username.clone(), pw)
        } else if let Some(a) = &cfg.authorization {
            let kind = a.kind.clone().unwrap_or_else(|| "Bearer".into());
            if kind.eq_ignore_ascii_case("basic") {
                return Err("authorization.type Basic is not allowed; use basic_auth".into());
            }
            let cred = Secret::from_fields(
                a.credentials.as_deref(),
                a.credentials_file.as_ref(),
                "authorization.credentials",
            )?
            .ok_or("authorization: credentials or credentials_file is required")?;
            cred.check()?;
            Auth::Header(kind, cred)
        } else if let Some(b) = bearer {
            b.check()?;
            Auth::Header("Bearer".into(), b)
        } else {
            Auth::None
        };
        Ok(Client { inner, auth })
    }

    /// Starts a request with the configured auth applied.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, NotifyError> {
        let rb = self.inner.request(method, url);
        Ok(match &self.auth {
            Auth::None => rb,
            Auth::Basic(u, p) => rb.basic_auth(u, p.as_ref().map(|s| s.get()).transpose()?),
            Auth::Header(kind, s) => rb.header(
                reqwest::header::AUTHORIZATION,
                format!("{kind} {}", s.get()?),
            ),
        })
    }
}

/// A rustls client configuration for `tls_config` with `server_name`: the system's web roots
/// plus `ca_file`, the client certificate, and certificates verified against `server_name`
/// instead of the URL's host (the SNI sent is still the URL's host).
fn named_tls_config(
    tls: &TlsConfig,
    server_name: &str,
) -> Result<tokio_rustls::rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::sync::Arc;
    use tokio_rustls::rustls;
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("tls_config.server_name {server_name:?}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(ca) = &tls.ca_file {
        for c in CertificateDer::pem_slice_iter(&read_file(ca, "ca_file")?) {
            let c = c.map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
        }
    }
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("tls_config: {e}"))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version.as_deref() {
        Some("TLS13") => &[&rustls::version::TLS13],
        _ => rustls::DEFAULT_VERSIONS,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls_config: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, name }));
    match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => {
            let chain = CertificateDer::pem_slice_iter(&read_file(c, "cert_file")?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("tls_config.cert_file {}: {e}", c.display()))?;
            let key = PrivateKeyDer::from_pem_slice(&read_file(k, "key_file")?)
                .map_err(|e| format!("tls_config.key_file {}: {e}", k.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls_config: client certificate: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Verifies the server's certificate for a fixed name (`tls_config.server_name`).
#[derive(Debug)]
struct NamedVerifier {
    inner: std::sync::Arc<tokio_rustls::rustls::client::WebPkiServerVerifier>,
    name: rustls_pki_types::ServerName<'static>,
}

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error>
    {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Network-level failure: always retryable; the URL is stripped from the message.
pub(crate) fn net_error(what: &str, e: reqwest::Error) -> NotifyError {
    let e = e.without_url();
    let mut msg = format!("{what}: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    NotifyError {
        retryable: true,
        msg,
    }
}

/// Whether an HTTP status is worth retrying (5xx and 429).
pub fn retryable_status(code: u16) -> bool {
    code >= 500 || code == 429
}

/// Reads at most `limit` bytes of a response body.
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, NotifyError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| net_error(what, e))? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// A short, single-line excerpt of a response body for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(512)]);
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let s = s.trim();
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Sends a request and returns (status, body) for 2xx; any other status becomes an error
/// classified by [`retryable_status`].
pub(crate) async fn send(rb: reqwest::RequestBuilder, what: &str) -> Result<Vec<u8>, NotifyError> {
    let resp = rb.send().await.map_err(|e| net_error(what, e))?;
    let status = resp.status();
    let body = read_limited(resp, MAX_RESPONSE, what).await?;
    if status.is_success() {
        return Ok(body);
    }
    Err(NotifyError {
        retryable: retryable_status(status.as_u16()),
        msg: format!(
            "{what}: unexpected status code {}: {}",
            status.as_u16(),
            excerpt(&body)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTPS server whose certificate names only `alerts.internal`, reached at 127.0.0.1:
    /// the request succeeds only when `server_name` says which name to check.
    #[tokio::test]
    async fn server_name_is_the_name_checked() {
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls;
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["alerts.internal".to_string()])
            .unwrap()
            .signed_by(&key, &ca_cert, &ca_key)
            .unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls_pki_types::CertificateDer::from(cert.der().to_vec())],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = vec![0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = s.shutdown().await;
                });
            }
        });
        let url = format!("https://127.0.0.1:{port}/hook");
        let with = |server_name: Option<&str>| {
            let c: HttpConfig = serde_json::from_value(serde_json::json!({
                "tls_config": {"ca_file": ca_path, "server_name": server_name}
            }))
            .unwrap();
            Client::new(Some(&c), Some(Duration::from_secs(10))).unwrap()
        };
        let ok = with(Some("alerts.internal"))
            .request(reqwest::Method::POST, &url)
            .unwrap()
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        assert!(with(None)
            .request(reqwest::Method::POST, &url)
            .unwrap()
            .send()
            .await
            .is_err());
        assert!(with(Some("other.internal"))
            .request(reqwest::Method::POST, &url)
            .unwrap()
            .send()
            .await
            .is_err());
    }

    #[test]
    fn http_config_fields() {
        let c: HttpConfig = serde_json::from_str(
            r#"{"basic_auth":{"username":"u","password":"p"},"tls_config":{"insecure_skip_verify":true},"follow_redirects":false}"#,
        )
        .unwrap();
        assert!(c.tls_config.insecure_skip_verify);
        assert!(Client::new(Some(&c), None).is_ok());
        let e = serde_json::from_str::<HttpConfig>(r#"{"oauth3":{}}"#).unwrap_err();
        assert!(e.to_string().contains("oauth3"), "{e}");
        let two: HttpConfig =
            serde_json::from_str(r#"{"basic_auth":{"username":"u"},"bearer_token":"x"}"#).unwrap();
        assert!(Client::new(Some(&two), None)
            .unwrap_err()
            .contains("at most one"));
        let a: HttpConfig =
            serde_json::from_str(r#"{"authorization":{"credentials":"t"}}"#).unwrap();
        assert!(Client::new(Some(&a), None).is_ok());
    }

    #[test]
    fn classification() {
        assert!(retryable_status(500) && retryable_status(503) && retryable_status(429));
        assert!(!retryable_status(400) && !retryable_status(404) && !retryable_status(401));
        assert_eq!(excerpt(b"bad\nthing"), "bad thing");
        assert_eq!(excerpt(&[b'x'; 1000]).chars().count(), 201);
    }
}
