//! The HTTP client of the commands that talk to a running Sextant (`query`, `push`, `run`,
//! `import`, `dashboards`). When the server has `auth:`, they need a token: `SEXTANT_TOKEN`
//! (or `SEXTANT_TOKEN_FILE`) is sent as `Authorization: Bearer`, and `SEXTANT_CA_FILE` adds a
//! private CA for a server with `tls_server_config`.

/// A client builder with the token and CA from the environment applied.
pub fn builder() -> reqwest::blocking::ClientBuilder {
    let mut b = reqwest::blocking::Client::builder();
    let token = std::env::var("SEXTANT_TOKEN").ok().or_else(|| {
        let f = std::env::var("SEXTANT_TOKEN_FILE").ok()?;
        match std::fs::read_to_string(&f) {
            Ok(t) => Some(t.trim().to_string()),
            Err(e) => {
                eprintln!("warning: SEXTANT_TOKEN_FILE {f}: {e}");
                None
            }
        }
    });
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        if let Ok(mut v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")) {
            v.set_sensitive(true);
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::AUTHORIZATION, v);
            b = b.default_headers(h);
        } else {
            eprintln!("warning: SEXTANT_TOKEN is not a valid header value; not sent");
        }
    }
    if let Ok(ca) = std::env::var("SEXTANT_CA_FILE") {
        match std::fs::read(&ca)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()))
        {
            Ok(certs) => {
                for c in certs {
                    b = b.add_root_certificate(c);
                }
            }
            Err(e) => eprintln!("warning: SEXTANT_CA_FILE {ca}: {e}"),
        }
    }
    b
}
