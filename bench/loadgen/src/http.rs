//! Minimal HTTP/1.1 client: keep-alive POST over `std::net::TcpStream`.
//!
//! Enough for remote_write: send a body with Content-Length, read the status and the body
//! (Content-Length, chunked, or until close) so the connection can be reused. `get` (for the
//! query benchmark) keeps the whole body.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A parsed `http://host:port/path` URL.
#[derive(Clone, Debug)]
pub struct Url {
    pub host_port: String,
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| format!("only http:// URLs are supported: {s}"))?;
        let (host_port, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host_port.is_empty() {
            return Err(format!("no host in URL {s}"));
        }
        Ok(Url {
            host_port: host_port.to_string(),
            path: path.to_string(),
        })
    }
}

/// One keep-alive connection, re-opened on demand.
pub struct Client {
    url: Url,
    conn: Option<BufReader<TcpStream>>,
    head: Vec<u8>,
    /// Send OTLP/HTTP protobuf (uncompressed) instead of snappy remote_write.
    otlp: bool,
}

/// Status code and (truncated) body of a response.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Client {
    pub fn new(url: Url) -> Client {
        Client {
            url,
            conn: None,
            head: Vec::with_capacity(512),
            otlp: false,
        }
    }

    /// A client whose POSTs are OTLP/HTTP protobuf `ExportMetricsServiceRequest`s.
    pub fn new_otlp(url: Url) -> Client {
        Client {
            otlp: true,
            ..Client::new(url)
        }
    }

    /// POSTs a snappy-compressed remote_write 1.0 body (or an OTLP body for [`Client::new_otlp`]).
    /// I/O errors drop the connection.
    pub fn post_remote_write(&mut self, body: &[u8]) -> io::Result<Response> {
        let r = self.try_post(body);
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    /// GETs `path_and_query` (already percent-encoded) and returns the whole body.
    /// I/O errors drop the connection.
    pub fn get(&mut self, path_and_query: &str, timeout: Duration) -> io::Result<Response> {
        let r = self.try_get(path_and_query, timeout);
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    fn try_get(&mut self, path_and_query: &str, timeout: Duration) -> io::Result<Response> {
        self.connect()?;
        let conn = self.conn.as_mut().expect("connected above");
        conn.get_ref().set_read_timeout(Some(timeout))?;
        self.head.clear();
        write!(
            self.head,
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sextant-loadgen\r\nAccept: application/json\r\n\r\n",
            path_and_query, self.url.host_port
        )?;
        conn.get_mut().write_all(&self.head)?;
        let resp = read_response(conn, usize::MAX)?;
        if resp.1 {
            self.conn = None;
        }
        Ok(resp.0)
    }

    fn connect(&mut self) -> io::Result<()> {
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.url.host_port)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(120)))?;
            s.set_write_timeout(Some(Duration::from_secs(120)))?;
            self.conn = Some(BufReader::with_capacity(64 * 1024, s));
        }
        Ok(())
    }

    fn try_post(&mut self, body: &[u8]) -> io::Result<Response> {
        self.connect()?;
        let conn = self.conn.as_mut().expect("connected above");
        conn.get_ref()
            .set_read_timeout(Some(Duration::from_secs(120)))?;
        self.head.clear();
        let proto_headers = if self.otlp {
            ""
        } else {
            "Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n"
        };
        write!(
            self.head,
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sextant-loadgen\r\n\
             Content-Type: application/x-protobuf\r\n{proto_headers}Content-Length: {}\r\n\r\n",
            self.url.path,
            self.url.host_port,
            body.len()
        )?;
        let s = conn.get_mut();
        s.write_all(&self.head)?;
        s.write_all(body)?;
        let resp = read_response(conn, 512)?;
        if resp.1 {
            self.conn = None;
        }
        Ok(resp.0)
    }
}

/// Reads one response, keeping at most `keep` bytes of the body; the bool says whether the
/// connection must be closed afterwards.
fn read_response(r: &mut BufReader<TcpStream>, keep: usize) -> io::Result<(Response, bool)> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before status line",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let (mut len, mut chunked, mut close) = (None, false, line.starts_with("HTTP/1.0"));
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("EOF in headers".into()));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "content-length" => {
                    len = Some(
                        v.parse::<usize>()
                            .map_err(|e| bad(format!("content-length {v:?}: {e}")))?,
                    )
                }
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if status == 204 || status == 304 || (100..200).contains(&status) {
        // no body
    } else if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size_hex = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|e| bad(format!("chunk size {line:?}: {e}")))?;
            if size == 0 {
                // trailers until the empty line
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = len {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
        close = true;
    }
    body.truncate(keep);
    Ok((Response { status, body }, close))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn url() {
        let u = Url::parse("http://127.0.0.1:9090/api/v1/write").unwrap();
        assert_eq!(u.host_port, "127.0.0.1:9090");
        assert_eq!(u.path, "/api/v1/write");
        assert!(Url::parse("https://x/").is_err());
    }

    /// A fake server answering 204, then a chunked 400, on one keep-alive connection.
    #[test]
    fn keep_alive_and_chunked() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let srv = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s);
            for reply in [
                "HTTP/1.1 204 No Content\r\n\r\n".to_string(),
                "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nout\r\n0\r\n\r\n".to_string(),
            ] {
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                r.get_mut().write_all(reply.as_bytes()).unwrap();
            }
        });
        let mut c = Client::new(Url::parse(&format!("http://{addr}/api/v1/write")).unwrap());
        assert_eq!(c.post_remote_write(b"abc").unwrap().status, 204);
        let r = c.post_remote_write(b"defg").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, &b"out"[..]));
        srv.join().unwrap();
    }
}
