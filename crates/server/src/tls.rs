//! HTTPS on the server's one port. `tls_server_config` takes the fields of Prometheus'
//! web-config (`cert_file`, `key_file`, `client_ca_file`, `client_auth_type`) so a Prometheus
//! user can paste theirs; Sextant adds `client_cert_required_for` to demand a verified client
//! certificate for some scopes only (mTLS for ingest, say, while people use the UI with a
//! password). Handshakes run in their own tasks so a slow or silent client cannot hold up
//! others; the accepted stream carries whether the peer presented a verified certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

use crate::auth::Scope;

/// `tls_server_config:` in sextant.yml.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA bundle that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// Prometheus' values: NoClientCert (default), RequestClientCert, VerifyClientCertIfGiven,
    /// RequireAndVerifyClientCert. RequireAnyClientCert (unverified) is refused.
    #[serde(default = "no_client_cert")]
    pub client_auth_type: String,
    /// Scopes whose routes need a verified client certificate (e.g. `[write]`: mTLS for
    /// ingest only); needs `client_ca_file`.
    #[serde(default)]
    pub client_cert_required_for: Vec<Scope>,
}

fn no_client_cert() -> String {
    "NoClientCert".into()
}

/// A TLS setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{field}: cannot read {path}: {err}")]
    Read {
        field: &'static str,
        path: String,
        err: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn read(field: &'static str, p: &PathBuf) -> Result<Vec<u8>, TlsError> {
    std::fs::read(p).map_err(|err| TlsError::Read {
        field,
        path: p.display().to_string(),
        err,
    })
}

fn certs(
    field: &'static str,
    p: &PathBuf,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    let pem = read(field, p)?;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid(format!("{field}: {}: {e}", p.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!(
            "{field}: {}: no PEM certificate in it",
            p.display()
        )));
    }
    Ok(certs)
}

impl TlsServerConfig {
    /// Reads the files and builds the rustls configuration.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        use rustls_pki_types::pem::PemObject;
        let chain = certs("cert_file", &self.cert_file)?;
        let key_pem = read("key_file", &self.key_file)?;
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            TlsError::Invalid(format!("key_file: {}: {e}", self.key_file.display()))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid(e.to_string()))?;
        let optional = match self.client_auth_type.as_str() {
            "NoClientCert" => None,
            "RequestClientCert" | "VerifyClientCertIfGiven" => Some(true),
            "RequireAndVerifyClientCert" => Some(false),
            "RequireAnyClientCert" => {
                return Err(TlsError::Invalid(
                    "client_auth_type: RequireAnyClientCert (accepting unverified certificates) is not supported; use RequireAndVerifyClientCert with client_ca_file".into(),
                ))
            }
            other => {
                return Err(TlsError::Invalid(format!(
                    "client_auth_type: unknown value {other:?} (NoClientCert, RequestClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
                )))
            }
        };
        // Scopes that need a certificate imply asking for one.
        let optional = match optional {
            None if !self.client_cert_required_for.is_empty() => Some(true),
            o => o,
        };
        let builder = match optional {
            None => builder.with_no_client_auth(),
            Some(optional) => {
                let ca = self.client_ca_file.as_ref().ok_or_else(|| {
                    TlsError::Invalid("client_ca_file: needed to verify client certificates".into())
                })?;
                let mut roots = rustls::RootCertStore::empty();
                for c in certs("client_ca_file", ca)? {
                    roots.add(c).map_err(|e| {
                        TlsError::Invalid(format!("client_ca_file: {}: {e}", ca.display()))
                    })?;
                }
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                );
                let v = if optional {
                    v.allow_unauthenticated()
                } else {
                    v
                };
                let v = v
                    .build()
                    .map_err(|e| TlsError::Invalid(format!("client_ca_file: {e}")))?;
                builder.with_client_cert_verifier(v)
            }
        };
        let mut cfg = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Invalid(format!("cert_file/key_file: {e}")))?;
        // HTTP/1.1 only: the server is built without axum's http2 feature, so offering h2
        // would make Go clients (Prometheus) negotiate it and then read garbage.
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Who is on the other end of a connection (axum `ConnectInfo`).
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    /// The client presented a certificate that chains to `client_ca_file`.
    pub client_cert: bool,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for ConnInfo
{
    fn connect_info(s: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        *s.remote_addr()
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for ConnInfo
{
    fn connect_info(s: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        ConnInfo {
            remote: *s.remote_addr(),
            client_cert: false,
        }
    }
}

/// Handshakes allowed to be in flight at once; more connections wait in the TCP backlog.
const MAX_HANDSHAKES: usize = 256;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP listener that yields TLS streams after their handshake.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, ConnInfo)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` (must be called inside the runtime).
    pub fn new(tcp: TcpListener, cfg: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, remote) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    drop(permit);
                    match hs {
                        Ok(Ok(tls)) => {
                            let client_cert = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .is_some_and(|c| !c.is_empty());
                            let _ = tx
                                .send((
                                    tls,
                                    ConnInfo {
                                        remote,
                                        client_cert,
                                    },
                                ))
                                .await;
                        }
                        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = ConnInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task ended (runtime shutting down): never yield again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ConnInfo {
            remote: self.local,
            client_cert: false,
        })
    }
}
