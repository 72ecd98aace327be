//! The HTTP client settings Prometheus shares between scraping and HTTP-based service
//! discovery (its `HTTPClientConfig`): `basic_auth`, `authorization`, `bearer_token[_file]`,
//! `tls_config`, `follow_redirects` and `proxy_url`. Scrape jobs and `http_sd_configs` entries
//! both declare these keys (flat, as in Prometheus' YAML) and hand them here, so checking them,
//! building the client and computing the `Authorization` header is one piece of code for both.

use std::time::Duration;

use super::config::{Authorization, BasicAuth, HttpUrl, TlsConfig};

/// One client's settings, taken from a scrape job or an `http_sd_configs` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpClientConfig {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub tls_config: TlsConfig,
    /// Follow HTTP 3xx redirects (at most 10, like Go's client); Prometheus' default is true.
    pub follow_redirects: bool,
    /// Send requests through this HTTP proxy instead of connecting directly.
    pub proxy_url: Option<HttpUrl>,
}

impl HttpClientConfig {
    /// Checks what cannot be checked field by field, with Prometheus' messages.
    pub fn validate(&self) -> Result<(), String> {
        let bearer = self.bearer_token.is_some() as u8 + self.bearer_token_file.is_some() as u8;
        if bearer > 1 {
            return Err(
                "at most one of bearer_token & bearer_token_file must be configured".into(),
            );
        }
        if self.basic_auth.is_some() as u8 + bearer + self.authorization.is_some() as u8 > 1 {
            return Err(
                "at most one of basic_auth, bearer_token & bearer_token_file, authorization must be configured"
                    .into(),
            );
        }
        if let Some(b) = &self.basic_auth {
            if b.password.is_some() && b.password_file.is_some() {
                return Err(
                    "basic_auth: at most one of password & password_file must be configured".into(),
                );
            }
        }
        if let Some(a) = &self.authorization {
            if a.kind
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("basic"))
            {
                return Err(
                    "authorization: authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                        .into(),
                );
            }
            if a.credentials.is_some() && a.credentials_file.is_some() {
                return Err(
                    "authorization: at most one of credentials & credentials_file must be configured"
                        .into(),
                );
            }
        }
        let tls = &self.tls_config;
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(
                "tls_config: cert_file and key_file must both be set for a client certificate"
                    .into(),
            );
        }
        Ok(())
    }

    /// Checks that the secret files read at request time exist and are readable, as
    /// `promtool check config` does (they are re-read at every request, so this is advice for
    /// `check config`, not a startup requirement).
    pub fn check_files(&self) -> Result<(), String> {
        let mut files: Vec<(&str, &str)> = Vec::new();
        if let Some(f) = &self.bearer_token_file {
            files.push(("bearer_token_file", f));
        }
        if let Some(f) = self
            .basic_auth
            .as_ref()
            .and_then(|b| b.password_file.as_deref())
        {
            files.push(("basic_auth.password_file", f));
        }
        if let Some(f) = self
            .authorization
            .as_ref()
            .and_then(|a| a.credentials_file.as_deref())
        {
            files.push(("authorization.credentials_file", f));
        }
        for (field, f) in files {
            std::fs::File::open(f).map_err(|e| format!("{field}: cannot read {f:?}: {e}"))?;
        }
        Ok(())
    }

    /// The `Authorization` header of a request. Secret files are read each time, so a
    /// rotated token is picked up without a reload (as in Prometheus).
    pub fn auth_header(&self) -> Result<Option<String>, String> {
        if let Some(b) = &self.basic_auth {
            let pw = match (&b.password, &b.password_file) {
                (Some(p), _) => p.clone(),
                (None, Some(f)) => read_secret(f)?,
                (None, None) => String::new(),
            };
            return Ok(Some(format!(
                "Basic {}",
                base64(format!("{}:{}", b.username, pw).as_bytes())
            )));
        }
        if let Some(a) = &self.authorization {
            let kind = a.kind.clone().unwrap_or_else(|| "Bearer".into());
            let cred = match (&a.credentials, &a.credentials_file) {
                (Some(c), _) => c.clone(),
                (None, Some(f)) => read_secret(f)?,
                (None, None) => String::new(),
            };
            return Ok(Some(format!("{kind} {cred}")));
        }
        if let Some(t) = &self.bearer_token {
            return Ok(Some(format!("Bearer {t}")));
        }
        if let Some(f) = &self.bearer_token_file {
            return Ok(Some(format!("Bearer {}", read_secret(f)?)));
        }
        Ok(None)
    }

    /// A client builder with the TLS, redirect and proxy settings (reads the TLS files).
    pub fn builder(&self) -> Result<reqwest::ClientBuilder, String> {
        let mut b = reqwest::Client::builder()
            .user_agent(format!("Sextant/{}", env!("CARGO_PKG_VERSION")))
            .no_proxy();
        if let Some(p) = &self.proxy_url {
            let proxy =
                reqwest::Proxy::all(&p.0).map_err(|e| format!("proxy_url {:?}: {e}", p.0))?;
            b = b.proxy(proxy);
        }
        b = b.redirect(if self.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        });
        let tls = &self.tls_config;
        if let Some(ca) = &tls.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("tls_config.ca_file: {ca}: {e}"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls_config.ca_file: {ca}: {e}"))?;
            if certs.is_empty() {
                return Err(format!(
                    "tls_config.ca_file: {ca}: no PEM certificates found"
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            let mut pem =
                std::fs::read(cert).map_err(|e| format!("tls_config.cert_file: {cert}: {e}"))?;
            pem.push(b'\n');
            pem.extend(std::fs::read(key).map_err(|e| format!("tls_config.key_file: {key}: {e}"))?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("tls_config: client certificate {cert} / {key}: {e}"))?;
            b = b.identity(id);
        }
        if tls.insecure_skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        Ok(b)
    }

    /// Builds the client (reads the TLS files).
    pub fn build(&self) -> Result<reqwest::Client, String> {
        self.builder()?
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))
    }

    /// The client and URL for a request to `url`. With `tls_config.server_name`, the URL names
    /// the server name (for SNI and certificate checks) and a client made for the request
    /// resolves it to `url`'s address; otherwise `client` (built by [`build`](Self::build)).
    pub async fn client_for(
        &self,
        client: &reqwest::Client,
        url: &reqwest::Url,
    ) -> Result<(reqwest::Client, reqwest::Url), String> {
        let Some(sn) = &self.tls_config.server_name else {
            return Ok((client.clone(), url.clone()));
        };
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("resolving {host}: {e}"))?
            .collect();
        let client = self
            .builder()?
            .resolve_to_addrs(sn, &addrs)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let mut url = url.clone();
        url.set_host(Some(sn))
            .map_err(|e| format!("tls_config.server_name {sn:?}: {e}"))?;
        Ok((client, url))
    }

    /// A GET of `url` with the `Authorization` header, through [`client_for`](Self::client_for).
    pub async fn get(
        &self,
        client: &reqwest::Client,
        url: &reqwest::Url,
        timeout: Option<Duration>,
    ) -> Result<reqwest::RequestBuilder, String> {
        let (client, url) = self.client_for(client, url).await?;
        let mut req = client.get(url);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(h) = self.auth_header()? {
            req = req.header(reqwest::header::AUTHORIZATION, h);
        }
        Ok(req)
    }
}

/// Reads an auth secret file like Prometheus (surrounding whitespace trimmed).
fn read_secret(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("unable to read {path}: {e}"))
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }
}
