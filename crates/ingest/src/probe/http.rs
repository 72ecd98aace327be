//! The HTTP prober. It speaks HTTP/1.1 itself over a TCP (and rustls) connection rather than
//! going through a client library, because blackbox_exporter's series need what libraries
//! hide: the time of each phase (resolve, connect, tls, processing, transfer), every
//! certificate the server presented, the redirect count and the exact status line.

use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::config::{HeaderMatch, Module, MAX_BODY};
use super::tls::{self, TlsState};
use super::{resolve, Outcome, Samples};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

const MAX_HEADER_BYTES: u64 = 64 << 10;
const MAX_REDIRECTS: u32 = 10;
const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

/// A parsed response.
#[derive(Debug, Default)]
struct Response {
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    content_length: Option<u64>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Probes `target` (a URL; `http://` is assumed when it has no scheme).
pub async fn probe(module: &Module, target: &str) -> Outcome {
    let mut out = Samples::default();
    let mut phases = [0f64; 5];
    let mut redirects = 0u32;
    let mut state = Attempt::default();
    let result = run(
        module,
        target,
        &mut out,
        &mut phases,
        &mut redirects,
        &mut state,
    )
    .await;
    for (i, p) in PHASES.iter().enumerate() {
        out.push("probe_http_duration_seconds", &[("phase", p)], phases[i]);
    }
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            finish(&mut out, None, redirects, &state, 0.0);
            return Outcome::fail(out, e);
        }
    };
    let h = &module.http;
    let mut error = String::new();
    let mut regex_failed = false;
    let status_ok = if h.valid_status_codes.is_empty() {
        (200..300).contains(&resp.status)
    } else {
        h.valid_status_codes.contains(&resp.status)
    };
    if !status_ok {
        error = format!("invalid HTTP response status code {}", resp.status);
    }
    if error.is_empty() {
        if let Some(e) = check_headers(
            &resp,
            &h.fail_if_header_matches,
            &h.fail_if_header_not_matches,
        ) {
            error = e;
        }
    }
    if error.is_empty() {
        let body = String::from_utf8_lossy(&resp.body);
        if let Some(r) = h
            .fail_if_body_matches_regexp
            .iter()
            .find(|r| r.0.is_match(&body))
        {
            error = format!("body matched regular expression {:?}", r.0.as_str());
            regex_failed = true;
        } else if let Some(r) = h
            .fail_if_body_not_matches_regexp
            .iter()
            .find(|r| !r.0.is_match(&body))
        {
            error = format!("body did not match regular expression {:?}", r.0.as_str());
            regex_failed = true;
        }
    }
    if error.is_empty()
        && !h.valid_http_versions.is_empty()
        && !h.valid_http_versions.iter().any(|v| v == &resp.version)
    {
        error = format!("invalid HTTP version number {}", resp.version);
    }
    if error.is_empty() && h.fail_if_ssl && state.tls.is_some() {
        error = "final request was over SSL".into();
    }
    if error.is_empty() && h.fail_if_not_ssl && state.tls.is_none() {
        error = "final request was not over SSL".into();
    }
    finish(
        &mut out,
        Some(&resp),
        redirects,
        &state,
        if regex_failed { 1.0 } else { 0.0 },
    );
    Outcome {
        success: error.is_empty(),
        samples: out,
        error,
    }
}

fn check_headers(resp: &Response, bad: &[HeaderMatch], good: &[HeaderMatch]) -> Option<String> {
    for m in bad {
        match resp.header(&m.header) {
            None if m.allow_missing => {}
            None => return Some(format!("missing required header {:?}", m.header)),
            Some(v) if m.regexp.0.is_match(v) => {
                return Some(format!(
                    "header {:?} matched regular expression {:?}",
                    m.header,
                    m.regexp.0.as_str()
                ))
            }
            Some(_) => {}
        }
    }
    for m in good {
        match resp.header(&m.header) {
            None if m.allow_missing => {}
            None => return Some(format!("missing required header {:?}", m.header)),
            Some(v) if !m.regexp.0.is_match(v) => {
                return Some(format!(
                    "header {:?} did not match regular expression {:?}",
                    m.header,
                    m.regexp.0.as_str()
                ))
            }
            Some(_) => {}
        }
    }
    None
}

fn finish(out: &mut Samples, resp: Option<&Response>, redirects: u32, st: &Attempt, regex: f64) {
    let (status, clen, blen, version) = match resp {
        Some(r) => (
            r.status as f64,
            r.content_length.map(|n| n as f64).unwrap_or(-1.0),
            r.body.len() as f64,
            match r.version.as_str() {
                "HTTP/1.0" => 1.0,
                _ => 1.1,
            },
        ),
        None => (0.0, 0.0, 0.0, 0.0),
    };
    out.push("probe_http_status_code", &[], status);
    out.push("probe_http_content_length", &[], clen);
    out.push("probe_http_uncompressed_body_length", &[], blen);
    out.push("probe_http_redirects", &[], redirects as f64);
    out.push(
        "probe_http_ssl",
        &[],
        if resp.is_some() && st.tls.is_some() {
            1.0
        } else {
            0.0
        },
    );
    out.push("probe_http_version", &[], version);
    out.push("probe_failed_due_to_regex", &[], regex);
    if let (Some(_), Some(t)) = (resp, &st.tls) {
        t.samples(out);
    }
    if let Some(t) = resp
        .and_then(|r| r.header("Last-Modified"))
        .and_then(http_date)
    {
        out.push("probe_http_last_modified_timestamp_seconds", &[], t as f64);
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as unix seconds.
fn http_date(s: &str) -> Option<i64> {
    let mut f = s.split_whitespace();
    let _weekday = f.next()?;
    let day: i64 = f.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = f.next()?;
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let year: i64 = f.next()?.parse().ok()?;
    let mut hms = f.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    if f.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(tls::days_from_civil(year, month, day) * 86400 + h * 3600 + mi * 60 + se)
}

#[derive(Default)]
struct Attempt {
    /// TLS state of the last connection, if it was TLS.
    tls: Option<TlsState>,
}

async fn run(
    module: &Module,
    target: &str,
    out: &mut Samples,
    phases: &mut [f64; 5],
    redirects: &mut u32,
    state: &mut Attempt,
) -> Result<Response, String> {
    let h = &module.http;
    let target = if target.starts_with("http://") || target.starts_with("https://") {
        target.to_string()
    } else {
        format!("http://{target}")
    };
    let mut url =
        reqwest::Url::parse(&target).map_err(|e| format!("invalid URL {target:?}: {e}"))?;
    let mut method = h
        .method
        .clone()
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    let mut body = h.body.clone();
    let limit = h.body_size_limit.unwrap_or(MAX_BODY).min(MAX_BODY);
    let mut tls_cfg = None;
    let mut first = true;
    loop {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            s => return Err(format!("unsupported URL scheme {s:?}")),
        };
        let host = url
            .host_str()
            .ok_or_else(|| format!("URL {url} has no host"))?
            .to_string();
        let port = url
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        let mut scratch = Samples::default();
        let (addr, took) = resolve(
            &host,
            port,
            h.preferred_ip_protocol,
            h.ip_protocol_fallback.0,
            if first { &mut *out } else { &mut scratch },
        )
        .await?;
        first = false;
        phases[0] += took.as_secs_f64();
        let t = Instant::now();
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        phases[1] += t.elapsed().as_secs_f64();
        let mut conn: Box<dyn Io> = if https {
            let cfg = match &tls_cfg {
                Some(c) => std::sync::Arc::clone(c),
                None => {
                    let c = tls::client_config(&h.tls_config)?;
                    tls_cfg = Some(c.clone());
                    c
                }
            };
            let t = Instant::now();
            let (s, st) = tls::handshake(cfg, &h.tls_config, &host, tcp).await?;
            phases[2] += t.elapsed().as_secs_f64();
            state.tls = Some(st);
            Box::new(s)
        } else {
            state.tls = None;
            Box::new(tcp)
        };
        let req = request(module, &url, &method, body.as_deref());
        conn.write_all(&req)
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        conn.flush()
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        let t = Instant::now();
        let mut reader = BufReader::new(conn);
        reader
            .fill_buf()
            .await
            .map_err(|e| format!("reading the response: {e}"))?;
        phases[3] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let resp = read_response(&mut reader, &method, limit).await;
        phases[4] += t.elapsed().as_secs_f64();
        let resp = resp?;
        let follow = module.follow_redirects();
        if follow && matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
            if let Some(loc) = resp.header("Location") {
                *redirects += 1;
                if *redirects > MAX_REDIRECTS {
                    return Err(format!("stopped after {MAX_REDIRECTS} redirects"));
                }
                url = url
                    .join(loc)
                    .map_err(|e| format!("redirect to invalid Location {loc:?}: {e}"))?;
                if matches!(resp.status, 301..=303) && method != "HEAD" {
                    method = "GET".into();
                    body = None;
                }
                continue;
            }
        }
        return Ok(resp);
    }
}

/// The request bytes: configured headers win over the defaults (Host, User-Agent).
fn request(module: &Module, url: &reqwest::Url, method: &str, body: Option<&str>) -> Vec<u8> {
    let h = &module.http;
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    };
    let mut r = format!("{method} {path} HTTP/1.1\r\n");
    let has = |n: &str| h.headers.keys().any(|k| k.eq_ignore_ascii_case(n));
    if !has("host") {
        r.push_str(&format!("Host: {host}\r\n"));
    }
    if !has("user-agent") {
        r.push_str(&format!(
            "User-Agent: Sextant/{}\r\n",
            env!("CARGO_PKG_VERSION")
        ));
    }
    for (k, v) in &h.headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has("authorization") {
        if let Some(b) = &h.basic_auth {
            let cred = base64(format!("{}:{}", b.username, b.password).as_bytes());
            r.push_str(&format!("Authorization: Basic {cred}\r\n"));
        } else if let Some(t) = &h.bearer_token {
            r.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
    }
    if let Some(b) = body {
        r.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    r.push_str("Connection: close\r\n\r\n");
    let mut bytes = r.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b.as_bytes());
    }
    bytes
}

async fn read_line<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
    budget: &mut u64,
) -> Result<String, String> {
    let mut line = Vec::new();
    let n = r
        .take(*budget)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("reading the response: {e}"))?;
    if n == 0 {
        return Err("reading the response: connection closed early".into());
    }
    *budget = budget.saturating_sub(n as u64);
    if !line.ends_with(b"\n") {
        return Err("reading the response: header too long".into());
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

async fn read_response<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
    method: &str,
    limit: u64,
) -> Result<Response, String> {
    let mut budget = MAX_HEADER_BYTES;
    let status_line = read_line(r, &mut budget).await?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_string();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("malformed HTTP response {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| format!("malformed HTTP status line {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut budget).await?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed HTTP header line {line:?}"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Response {
        version,
        status,
        headers,
        ..Response::default()
    };
    resp.content_length = match resp.header("Content-Length") {
        Some(v) => Some(
            v.parse()
                .map_err(|_| format!("invalid Content-Length {v:?}"))?,
        ),
        None => None,
    };
    if method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(resp);
    }
    let too_big = || format!("body larger than body_size_limit ({limit} bytes)");
    let chunked = resp
        .header("Transfer-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        resp.content_length = None;
        loop {
            // Each chunk-size line gets its own small budget; trailers share the header one.
            let mut line_budget = 4096;
            let line = read_line(r, &mut line_budget).await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| format!("malformed chunk size {size:?}"))?;
            if size == 0 {
                // Trailers up to the empty line.
                while !read_line(r, &mut budget).await?.is_empty() {}
                break;
            }
            if body.len() as u64 + size > limit {
                return Err(too_big());
            }
            let got = r
                .take(size)
                .read_to_end(&mut body)
                .await
                .map_err(|e| format!("reading the body: {e}"))?;
            if (got as u64) < size {
                return Err("reading the body: connection closed early".into());
            }
            let mut crlf_budget = 2;
            if !read_line(r, &mut crlf_budget).await?.is_empty() {
                return Err("malformed chunked body: data after a chunk".into());
            }
        }
    } else if let Some(n) = resp.content_length {
        if n > limit {
            return Err(too_big());
        }
        let got = r
            .take(n)
            .read_to_end(&mut body)
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
        if (got as u64) < n {
            return Err(format!(
                "reading the body: unexpected EOF after {got} of {n} bytes"
            ));
        }
    } else {
        r.take(limit + 1)
            .read_to_end(&mut body)
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
        if body.len() as u64 > limit {
            return Err(too_big());
        }
    }
    resp.body = body;
    Ok(resp)
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}
