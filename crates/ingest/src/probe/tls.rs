//! TLS for the HTTP and TCP probers: a rustls client built from a module's `tls_config`, the
//! handshake, and what blackbox_exporter reports about the session (version, cipher, the
//! certificates' expiry). Certificate expiry comes from a minimal DER walk to `notAfter`
//! instead of a full X.509 library: that one field is all the probe needs.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

use crate::scrape::config::TlsConfig;

/// What a handshake revealed.
#[derive(Clone, Debug, Default)]
pub struct TlsState {
    /// `TLS 1.2`, `TLS 1.3` (Go's names).
    pub version: String,
    /// Go's cipher suite name.
    pub cipher: String,
    /// notAfter of each presented certificate (unix seconds), leaf first.
    pub expiries: Vec<f64>,
}

impl TlsState {
    /// The samples blackbox_exporter writes for a TLS connection.
    pub fn samples(&self, out: &mut super::Samples) {
        if let Some(min) = self.expiries.iter().copied().reduce(f64::min) {
            out.push("probe_ssl_earliest_cert_expiry", &[], min);
            // Without the verified chains rustls keeps to itself, the presented chain is the
            // one chain there is: its earliest expiry is also the last chain's expiry.
            out.push("probe_ssl_last_chain_expiry_timestamp_seconds", &[], min);
        }
        out.push("probe_tls_version_info", &[("version", &self.version)], 1.0);
        out.push("probe_tls_cipher_info", &[("cipher", &self.cipher)], 1.0);
    }
}

/// Builds the rustls client configuration for `tls_config` (reads its files).
pub fn client_config(t: &TlsConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls_config: {e}"))?;
    let builder = if t.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &t.ca_file {
            Some(ca) => {
                let mut n = 0;
                for c in CertificateDer::pem_file_iter(ca)
                    .map_err(|e| format!("tls_config.ca_file: {ca}: {e}"))?
                {
                    let c = c.map_err(|e| format!("tls_config.ca_file: {ca}: {e}"))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("tls_config.ca_file: {ca}: {e}"))?;
                    n += 1;
                }
                if n == 0 {
                    return Err(format!(
                        "tls_config.ca_file: {ca}: no PEM certificates found"
                    ));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };
    let cfg = match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(key)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("tls_config.cert_file: {cert}: {e}"))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("tls_config.cert_file: {cert}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("tls_config.key_file: {key}: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("tls_config: client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// Runs the handshake over `tcp`; `host` is the SNI / verification name unless
/// `tls_config.server_name` overrides it.
pub async fn handshake(
    cfg: Arc<rustls::ClientConfig>,
    t: &TlsConfig,
    host: &str,
    tcp: TcpStream,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, TlsState), String> {
    let name = t.server_name.as_deref().unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let sn = ServerName::try_from(name.to_string())
        .map_err(|e| format!("invalid TLS server name {name:?}: {e}"))?;
    let stream = TlsConnector::from(cfg)
        .connect(sn, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let state = state_of(stream.get_ref().1);
    Ok((stream, state))
}

fn state_of(c: &rustls::ClientConnection) -> TlsState {
    let version = match c.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "unknown".into(),
    };
    let cipher = c
        .negotiated_cipher_suite()
        .map(|s| {
            let n = format!("{:?}", s.suite());
            match n.strip_prefix("TLS13_") {
                Some(rest) => format!("TLS_{rest}"),
                None => n,
            }
        })
        .unwrap_or_default();
    let expiries = c
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .filter_map(|d| not_after(d.as_ref()))
        .map(|s| s as f64)
        .collect();
    TlsState {
        version,
        cipher,
        expiries,
    }
}

/// Accepts any certificate (`insecure_skip_verify`) but still checks handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One DER element: (tag, content, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&l0, mut rest) = rest.split_first()?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | b as usize;
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// A certificate's `notAfter` as unix seconds, or `None` if the DER is not a certificate.
pub fn not_after(cert: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = der(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = der(cert)? else {
        return None;
    };
    let (mut tag, _, mut rest) = der(tbs)?;
    if tag == 0xa0 {
        // [0] version; then the serial number.
        let (t, _, r) = der(rest)?;
        tag = t;
        rest = r;
    }
    if tag != 0x02 {
        return None;
    }
    let (_sig_alg, _, rest) = der(rest)?;
    let (_issuer, _, rest) = der(rest)?;
    let (0x30, validity, _) = der(rest)? else {
        return None;
    };
    let (_, _, after) = der(validity)?;
    let (tag, time, _) = der(after)?;
    parse_asn1_time(tag, time)
}

fn parse_asn1_time(tag: u8, s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?;
    let s = s.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if s.len() == 12 => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        0x18 if s.len() == 14 => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let (mo, d, h, mi, se) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(year, mo, d) * 86400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_times() {
        assert_eq!(parse_asn1_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_asn1_time(0x17, b"491231235959Z"), Some(2524607999));
        assert_eq!(parse_asn1_time(0x18, b"20380119031408Z"), Some(2147483648));
        assert_eq!(parse_asn1_time(0x18, b"2038011903140Z"), None);
        assert_eq!(parse_asn1_time(0x17, b"70130100000Z"), None);
    }

    #[test]
    fn not_after_of_generated_cert() {
        let mut p = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        p.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        assert_eq!(
            not_after(cert.der()),
            Some(days_from_civil(2031, 7, 9) * 86400)
        );
        assert_eq!(days_from_civil(2031, 7, 9) * 86400, 1941321600);
        assert_eq!(not_after(&cert.der()[..40]), None);
        assert_eq!(not_after(b""), None);
    }
}
