//! The TCP prober: connect (optionally with TLS straight away), then blackbox_exporter's
//! `query_response` dialogue — wait for a line matching `expect`, write `send`, upgrade with
//! `starttls` — so SMTP, IMAP, Redis-style "PING/PONG" or a bare port check are one module.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::config::Module;
use super::tls::{self, TlsState};
use super::{resolve, split_host_port, Outcome, Samples};

const MAX_LINE: u64 = 64 << 10;
/// Lines read while waiting for one `expect` before giving up.
const MAX_LINES: usize = 10_000;

enum Conn {
    Plain(BufReader<TcpStream>),
    Tls(Box<BufReader<TlsStream<TcpStream>>>),
}

impl Conn {
    async fn read_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt;
        match self {
            Conn::Plain(r) => r.take(MAX_LINE).read_until(b'\n', buf).await,
            Conn::Tls(r) => r.take(MAX_LINE).read_until(b'\n', buf).await,
        }
    }
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(r) => {
                r.get_mut().write_all(b).await?;
                r.get_mut().flush().await
            }
            Conn::Tls(r) => {
                r.get_mut().write_all(b).await?;
                r.get_mut().flush().await
            }
        }
    }
}

/// Probes `target` (`host:port`).
pub async fn probe(module: &Module, target: &str) -> Outcome {
    let mut out = Samples::default();
    let mut regex_failed = false;
    let mut tls_state = None;
    let r = run(module, target, &mut out, &mut regex_failed, &mut tls_state).await;
    out.push(
        "probe_failed_due_to_regex",
        &[],
        if regex_failed { 1.0 } else { 0.0 },
    );
    if let Some(t) = &tls_state {
        if r.is_ok() {
            t.samples(&mut out);
        }
    }
    match r {
        Ok(()) => Outcome {
            success: true,
            samples: out,
            error: String::new(),
        },
        Err(e) => Outcome::fail(out, e),
    }
}

async fn run(
    module: &Module,
    target: &str,
    out: &mut Samples,
    regex_failed: &mut bool,
    tls_state: &mut Option<TlsState>,
) -> Result<(), String> {
    let t = &module.tcp;
    let (host, port) = split_host_port(target, None)?;
    let (addr, _) = resolve(
        &host,
        port,
        t.preferred_ip_protocol,
        t.ip_protocol_fallback.0,
        out,
    )
    .await?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let mut conn = if t.tls {
        let cfg = tls::client_config(&t.tls_config)?;
        let (s, st) = tls::handshake(cfg, &t.tls_config, &host, tcp).await?;
        *tls_state = Some(st);
        Conn::Tls(Box::new(BufReader::new(s)))
    } else {
        Conn::Plain(BufReader::new(tcp))
    };
    for (i, qr) in t.query_response.iter().enumerate() {
        let mut send = qr.send.clone();
        if let Some(re) = &qr.expect {
            let mut matched = false;
            for _ in 0..MAX_LINES {
                let mut line = Vec::new();
                let n = conn
                    .read_line(&mut line)
                    .await
                    .map_err(|e| format!("query_response[{i}]: reading: {e}"))?;
                if n == 0 {
                    break;
                }
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                let line = String::from_utf8_lossy(&line);
                if let Some(caps) = re.0.captures(&line) {
                    if let Some(s) = &send {
                        let mut expanded = String::new();
                        caps.expand(s, &mut expanded);
                        send = Some(expanded);
                    }
                    matched = true;
                    break;
                }
            }
            if !matched {
                *regex_failed = true;
                return Err(format!(
                    "query_response[{i}]: no line matched regular expression {:?}",
                    re.0.as_str()
                ));
            }
        }
        if let Some(s) = send {
            conn.write_all(format!("{s}\n").as_bytes())
                .await
                .map_err(|e| format!("query_response[{i}]: sending: {e}"))?;
        }
        if qr.starttls {
            let Conn::Plain(r) = conn else {
                return Err(format!("query_response[{i}]: starttls on a TLS connection"));
            };
            let cfg = tls::client_config(&t.tls_config)?;
            let (s, st) = tls::handshake(cfg, &t.tls_config, &host, r.into_inner()).await?;
            *tls_state = Some(st);
            conn = Conn::Tls(Box::new(BufReader::new(s)));
        }
    }
    Ok(())
}
