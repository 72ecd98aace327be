//! A small client for S3-compatible object storage (AWS S3, MinIO, Ceph, R2, moto, …).
//!
//! Sextant needs only a handful of S3 operations — the archive uploads blocks and reads them
//! back, exports write files — so rather than pulling in an SDK this crate speaks the REST API
//! directly over `reqwest` (rustls), signing every request with AWS Signature Version 4
//! ([`sigv4`]). It supports path-style (`endpoint/bucket/key`) and virtual-host style
//! (`bucket.endpoint/key`) addressing, multipart uploads for large objects, ranged reads,
//! paginated ListObjectsV2, HEAD and DELETE. Transient failures (connection errors, 5xx, 429)
//! are retried a few times with backoff.

pub mod sigv4;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Access keys used to sign requests.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// For temporary credentials (`x-amz-security-token`).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<secret>")
            .finish()
    }
}

impl Credentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Option<Credentials> {
        let id = std::env::var("AWS_ACCESS_KEY_ID").ok()?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok()?;
        Some(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: std::env::var("AWS_SESSION_TOKEN")
                .ok()
                .filter(|s| !s.is_empty()),
        })
    }
}

/// Where the bucket is and how to reach it.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    /// Base URL such as `http://127.0.0.1:9000`; `None` means AWS (`https://s3.<region>.amazonaws.com`).
    pub endpoint: Option<String>,
    pub region: String,
    pub credentials: Credentials,
    /// Address the bucket in the path instead of the host name (MinIO, moto, most self-hosted).
    pub force_path_style: bool,
}

/// One stored object as listed or HEADed.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: String,
    /// As the server sent it (ISO 8601 in listings, RFC 1123 in HEAD).
    pub last_modified: String,
}

/// Why an object storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid object storage config: {0}")]
    Config(String),
    #[error("{op} {target}: {source}")]
    Http {
        op: &'static str,
        target: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status; `code` is S3's error code (`AccessDenied`,
    /// `NoSuchKey`, `SignatureDoesNotMatch`, `InvalidAccessKeyId`, …) when it sent one.
    #[error("{op} {target}: HTTP {status}: {code}: {message}")]
    Status {
        op: &'static str,
        target: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{op} {target}: malformed response: {what}")]
    Response {
        op: &'static str,
        target: String,
        what: String,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the object (or bucket) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Status { status: 404, .. })
    }
}

/// Objects at most this large are uploaded with one PUT; larger ones in parts of this size.
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;
/// S3's minimum part size (except for the last part).
pub const MIN_PART_SIZE: u64 = 5 << 20;
const ATTEMPTS: u32 = 4;
/// Upper bound on a body read into memory from an error or listing response.
const MAX_SMALL_BODY: usize = 16 << 20;

/// An S3 client bound to one bucket.
#[derive(Clone, Debug)]
pub struct Client {
    cfg: S3Config,
    http: reqwest::Client,
    /// Scheme + authority to send to, and the path prefix (`/bucket` in path style).
    base: Url,
    host: String,
    path_prefix: String,
    part_size: u64,
    /// `max-keys` of each ListObjectsV2 page (server default 1000 when unset).
    list_page: Option<u32>,
}

impl Client {
    /// Builds a client; fails on an unusable endpoint or bucket name.
    pub fn new(cfg: S3Config) -> Result<Client, Error> {
        if cfg.bucket.is_empty() || cfg.bucket.contains('/') {
            return Err(Error::Config(format!(
                "invalid bucket name {:?}",
                cfg.bucket
            )));
        }
        if cfg.region.is_empty() {
            return Err(Error::Config("region is empty".into()));
        }
        let endpoint = cfg
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", cfg.region));
        let ep = Url::parse(&endpoint)
            .map_err(|e| Error::Config(format!("endpoint {endpoint:?}: {e}")))?;
        if ep.scheme() != "http" && ep.scheme() != "https" {
            return Err(Error::Config(format!(
                "endpoint {endpoint:?}: scheme must be http or https"
            )));
        }
        let ep_host = ep
            .host_str()
            .ok_or_else(|| Error::Config(format!("endpoint {endpoint:?} has no host")))?;
        let authority = match ep.port() {
            Some(p) => format!("{ep_host}:{p}"),
            None => ep_host.to_string(),
        };
        let (host, path_prefix) = if cfg.force_path_style {
            (
                authority,
                format!("/{}", sigv4::uri_encode(&cfg.bucket, false)),
            )
        } else {
            (format!("{}.{authority}", cfg.bucket), String::new())
        };
        let base = Url::parse(&format!("{}://{host}/", ep.scheme()))
            .map_err(|e| Error::Config(format!("endpoint {endpoint:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            cfg,
            http,
            base,
            host,
            path_prefix,
            part_size: DEFAULT_PART_SIZE,
            list_page: None,
        })
    }

    /// Sets the multipart threshold and part size (at least [`MIN_PART_SIZE`]).
    pub fn with_part_size(mut self, bytes: u64) -> Client {
        self.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    /// Sets how many keys each listing page asks for (pagination is followed either way).
    pub fn with_list_page_size(mut self, keys: u32) -> Client {
        self.list_page = Some(keys.max(1));
        self
    }

    pub fn bucket(&self) -> &str {
        &self.cfg.bucket
    }

    fn target(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.cfg.bucket)
    }

    /// Sends one signed request, retrying transient failures; returns the successful response.
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        key: &str,
        query: &[(String, String)],
        extra_headers: &[(String, String)],
        body: &[u8],
    ) -> Result<reqwest::Response, Error> {
        let encoded_path = if key.is_empty() {
            if self.path_prefix.is_empty() {
                "/".to_string()
            } else {
                self.path_prefix.clone()
            }
        } else {
            format!("{}/{}", self.path_prefix, sigv4::uri_encode(key, true))
        };
        let cq = sigv4::canonical_query(query);
        let mut url = self.base.clone();
        url.set_path(&encoded_path);
        url.set_query(if cq.is_empty() { None } else { Some(&cq) });
        let payload = sigv4::sha256_hex(body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let date = sigv4::amz_date(now);
            let mut headers: Vec<(String, String)> = vec![
                ("host".into(), self.host.clone()),
                ("x-amz-content-sha256".into(), payload.clone()),
                ("x-amz-date".into(), date.clone()),
            ];
            if let Some(t) = &self.cfg.credentials.session_token {
                headers.push(("x-amz-security-token".into(), t.clone()));
            }
            headers.extend(extra_headers.iter().cloned());
            let auth = sigv4::authorization(
                &sigv4::SignInput {
                    method: method.as_str(),
                    encoded_path: &encoded_path,
                    query,
                    headers: &headers,
                    payload_sha256: &payload,
                    amz_date: &date,
                    region: &self.cfg.region,
                },
                &self.cfg.credentials.access_key_id,
                &self.cfg.credentials.secret_access_key,
            );
            let mut rb = self.http.request(method.clone(), url.clone());
            for (k, v) in &headers {
                if k != "host" {
                    rb = rb.header(k.as_str(), v.as_str());
                }
            }
            rb = rb.header("authorization", auth);
            if !body.is_empty() || method == Method::PUT || method == Method::POST {
                rb = rb.body(body.to_vec());
            }
            let transient = match rb.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    let err = self.status_error(op, key, resp).await;
                    let retry = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                    if !retry || attempt >= ATTEMPTS {
                        return Err(err);
                    }
                    err
                }
                Err(e) => {
                    let err = Error::Http {
                        op,
                        target: self.target(key),
                        source: e,
                    };
                    if attempt >= ATTEMPTS {
                        return Err(err);
                    }
                    err
                }
            };
            tracing::debug!(error = %transient, attempt, "object storage request failed; retrying");
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
    }

    async fn status_error(&self, op: &'static str, key: &str, resp: reqwest::Response) -> Error {
        let status = resp.status().as_u16();
        let text = read_small(resp).await.unwrap_or_default();
        let code = xml_tag(&text, "Code")
            .map(xml_unescape)
            .unwrap_or_else(|| match status {
                404 => "NotFound".to_string(),
                403 => "Forbidden".to_string(),
                _ => "Error".to_string(),
            });
        let message = xml_tag(&text, "Message")
            .map(xml_unescape)
            .unwrap_or_default();
        Error::Status {
            op,
            target: self.target(key),
            status,
            code,
            message,
        }
    }

    /// Creates the bucket (mostly for tests and first-time setup).
    pub async fn create_bucket(&self) -> Result<(), Error> {
        self.send("create bucket", Method::PUT, "", &[], &[], b"")
            .await
            .map(|_| ())
    }

    /// Stores `body` under `key` with one PUT, or a multipart upload when larger than the part size.
    pub async fn put(&self, key: &str, body: &[u8]) -> Result<(), Error> {
        if (body.len() as u64) <= self.part_size {
            self.send("put", Method::PUT, key, &[], &[], body).await?;
            return Ok(());
        }
        let parts = body.chunks(self.part_size as usize);
        self.multipart(key, parts.map(|p| Ok::<_, Error>(p.to_vec())))
            .await
    }

    /// Uploads a local file (multipart when larger than the part size, never holding more than
    /// one part in memory); returns its size.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<u64, Error> {
        let io = |op: &'static str| {
            let path = path.to_path_buf();
            move |source| Error::Io { op, path, source }
        };
        let mut f = tokio::fs::File::open(path).await.map_err(io("opening"))?;
        let size = f.metadata().await.map_err(io("reading"))?.len();
        if size <= self.part_size {
            let mut buf = Vec::with_capacity(size as usize);
            f.read_to_end(&mut buf).await.map_err(io("reading"))?;
            self.send("put", Method::PUT, key, &[], &[], &buf).await?;
            return Ok(size);
        }
        let upload_id = self.create_multipart(key).await?;
        let res = async {
            let mut etags = Vec::new();
            let mut n = 0u32;
            loop {
                let mut buf = Vec::with_capacity(self.part_size as usize);
                (&mut f)
                    .take(self.part_size)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(io("reading"))?;
                if buf.is_empty() {
                    break;
                }
                n += 1;
                etags.push(self.upload_part(key, &upload_id, n, &buf).await?);
            }
            self.complete_multipart(key, &upload_id, &etags).await
        }
        .await;
        if res.is_err() {
            self.abort_multipart(key, &upload_id).await;
        }
        res.map(|_| size)
    }

    /// Starts an object written piece by piece (see [`Upload`]).
    pub fn upload(&self, key: &str) -> Upload {
        Upload {
            client: self.clone(),
            key: key.to_string(),
            buf: Vec::new(),
            id: None,
            etags: Vec::new(),
            size: 0,
        }
    }

    async fn multipart(
        &self,
        key: &str,
        parts: impl Iterator<Item = Result<Vec<u8>, Error>>,
    ) -> Result<(), Error> {
        let upload_id = self.create_multipart(key).await?;
        let res = async {
            let mut etags = Vec::new();
            for (i, p) in parts.enumerate() {
                let p = p?;
                etags.push(self.upload_part(key, &upload_id, i as u32 + 1, &p).await?);
            }
            self.complete_multipart(key, &upload_id, &etags).await
        }
        .await;
        if res.is_err() {
            self.abort_multipart(key, &upload_id).await;
        }
        res
    }

    async fn create_multipart(&self, key: &str) -> Result<String, Error> {
        let q = [("uploads".to_string(), String::new())];
        let resp = self
            .send("create multipart upload", Method::POST, key, &q, &[], b"")
            .await?;
        let text = read_small(resp)
            .await
            .map_err(|e| self.http_err("create multipart upload", key, e))?;
        xml_tag(&text, "UploadId")
            .map(xml_unescape)
            .ok_or_else(|| Error::Response {
                op: "create multipart upload",
                target: self.target(key),
                what: "no UploadId".into(),
            })
    }

    async fn upload_part(&self, key: &str, id: &str, n: u32, body: &[u8]) -> Result<String, Error> {
        let q = [
            ("partNumber".to_string(), n.to_string()),
            ("uploadId".to_string(), id.to_string()),
        ];
        let resp = self
            .send("upload part", Method::PUT, key, &q, &[], body)
            .await?;
        resp.headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| Error::Response {
                op: "upload part",
                target: self.target(key),
                what: format!("part {n} has no ETag"),
            })
    }

    async fn complete_multipart(&self, key: &str, id: &str, etags: &[String]) -> Result<(), Error> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, e) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                xml_escape(e)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let q = [("uploadId".to_string(), id.to_string())];
        let resp = self
            .send(
                "complete multipart upload",
                Method::POST,
                key,
                &q,
                &[("content-type".into(), "application/xml".into())],
                xml.as_bytes(),
            )
            .await?;
        // S3 may answer 200 with an error document when completion fails late.
        let text = read_small(resp)
            .await
            .map_err(|e| self.http_err("complete multipart upload", key, e))?;
        if text.contains("<Error>") {
            return Err(Error::Status {
                op: "complete multipart upload",
                target: self.target(key),
                status: 200,
                code: xml_tag(&text, "Code").map(xml_unescape).unwrap_or_default(),
                message: xml_tag(&text, "Message")
                    .map(xml_unescape)
                    .unwrap_or_default(),
            });
        }
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, id: &str) {
        let q = [("uploadId".to_string(), id.to_string())];
        if let Err(e) = self
            .send("abort multipart upload", Method::DELETE, key, &q, &[], b"")
            .await
        {
            tracing::warn!(error = %e, "aborting a failed multipart upload failed");
        }
    }

    fn http_err(&self, op: &'static str, key: &str, e: reqwest::Error) -> Error {
        Error::Http {
            op,
            target: self.target(key),
            source: e,
        }
    }

    /// Reads an object, or the byte range `[start, end)` of it.
    pub async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>, Error> {
        let mut hs = Vec::new();
        if let Some((s, e)) = range {
            if e <= s {
                return Ok(Vec::new());
            }
            hs.push(("range".to_string(), format!("bytes={s}-{}", e - 1)));
        }
        let resp = self.send("get", Method::GET, key, &[], &hs, b"").await?;
        let b = resp
            .bytes()
            .await
            .map_err(|e| self.http_err("get", key, e))?;
        Ok(b.to_vec())
    }

    /// Streams an object into a local file (written whole, then renamed into place); returns its size.
    pub async fn get_to_file(&self, key: &str, path: &Path) -> Result<u64, Error> {
        let tmp = path.with_extension("part");
        let io = |op: &'static str, p: &Path| {
            let path = p.to_path_buf();
            move |source| Error::Io { op, path, source }
        };
        let mut resp = self.send("get", Method::GET, key, &[], &[], b"").await?;
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(io("creating", &tmp))?;
        let mut n = 0u64;
        while let Some(c) = resp
            .chunk()
            .await
            .map_err(|e| self.http_err("get", key, e))?
        {
            n += c.len() as u64;
            f.write_all(&c).await.map_err(io("writing", &tmp))?;
        }
        f.sync_all().await.map_err(io("syncing", &tmp))?;
        drop(f);
        tokio::fs::rename(&tmp, path)
            .await
            .map_err(io("renaming", path))?;
        Ok(n)
    }

    /// Size and ETag of an object, `None` if it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, Error> {
        match self.send("head", Method::HEAD, key, &[], &[], b"").await {
            Ok(resp) => {
                let h = resp.headers();
                let get = |n: &str| {
                    h.get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                Ok(Some(ObjectInfo {
                    key: key.to_string(),
                    size: get("content-length").parse().unwrap_or(0),
                    etag: get("etag"),
                    last_modified: get("last-modified"),
                }))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object; deleting a missing object is not an error (as in S3).
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        match self
            .send("delete", Method::DELETE, key, &[], &[], b"")
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// All objects whose key starts with `prefix` (ListObjectsV2, following continuation tokens).
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![
                ("list-type".to_string(), "2".to_string()),
                ("prefix".to_string(), prefix.to_string()),
            ];
            if let Some(n) = self.list_page {
                q.push(("max-keys".to_string(), n.to_string()));
            }
            if let Some(t) = &token {
                q.push(("continuation-token".to_string(), t.clone()));
            }
            let resp = self.send("list", Method::GET, "", &q, &[], b"").await?;
            let text = read_small(resp)
                .await
                .map_err(|e| self.http_err("list", prefix, e))?;
            for c in xml_all(&text, "Contents") {
                let key = xml_tag(c, "Key")
                    .map(xml_unescape)
                    .ok_or_else(|| Error::Response {
                        op: "list",
                        target: self.target(prefix),
                        what: "<Contents> without <Key>".into(),
                    })?;
                out.push(ObjectInfo {
                    key,
                    size: xml_tag(c, "Size")
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0),
                    etag: xml_tag(c, "ETag").map(xml_unescape).unwrap_or_default(),
                    last_modified: xml_tag(c, "LastModified").unwrap_or_default().to_string(),
                });
            }
            let truncated = xml_tag(&text, "IsTruncated").map(str::trim) == Some("true");
            match xml_tag(&text, "NextContinuationToken").map(xml_unescape) {
                Some(t) if truncated && !t.is_empty() => token = Some(t),
                _ if truncated => {
                    return Err(Error::Response {
                        op: "list",
                        target: self.target(prefix),
                        what: "truncated listing without NextContinuationToken".into(),
                    })
                }
                _ => return Ok(out),
            }
        }
    }
}

async fn read_small(mut resp: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(c) = resp.chunk().await? {
        if buf.len() + c.len() > MAX_SMALL_BODY {
            break;
        }
        buf.extend_from_slice(&c);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Text of the first `<name>…</name>` element (S3's documents have no attributes on these).
fn xml_tag<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let i = s.find(&open)? + open.len();
    let j = s[i..].find(&close)? + i;
    Some(&s[i..j])
}

fn xml_all<'a>(s: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(&open) {
        let body = &rest[i + open.len()..];
        let Some(j) = body.find(&close) else { break };
        out.push(&body[..j]);
        rest = &body[j + close.len()..];
    }
    out
}

fn xml_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(semi) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let ent = &tail[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let num = ent
                    .strip_prefix("#x")
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()));
                num.and_then(char::from_u32)
            }
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_helpers() {
        let doc = "<R><IsTruncated>true</IsTruncated><Contents><Key>a&amp;b</Key><Size>3</Size></Contents><Contents><Key>c&#x20;d</Key></Contents></R>";
        let cs = xml_all(doc, "Contents");
        assert_eq!(cs.len(), 2);
        assert_eq!(
            xml_tag(cs[0], "Key").map(xml_unescape).as_deref(),
            Some("a&b")
        );
        assert_eq!(
            xml_tag(cs[1], "Key").map(xml_unescape).as_deref(),
            Some("c d")
        );
        assert_eq!(xml_tag(doc, "IsTruncated"), Some("true"));
        assert_eq!(xml_unescape("x&bogus"), "x&bogus");
    }

    fn cfg(path_style: bool) -> S3Config {
        S3Config {
            bucket: "bkt".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: "us-east-1".into(),
            credentials: Credentials {
                access_key_id: "a".into(),
                secret_access_key: "b".into(),
                session_token: None,
            },
            force_path_style: path_style,
        }
    }

    #[test]
    fn addressing_styles() {
        let c = Client::new(cfg(true)).unwrap();
        assert_eq!(c.host, "127.0.0.1:9000");
        assert_eq!(c.path_prefix, "/bkt");
        let mut v = cfg(false);
        v.endpoint = Some("http://minio.local:9000".into());
        let c = Client::new(v).unwrap();
        assert_eq!(c.host, "bkt.minio.local:9000");
        assert_eq!(c.path_prefix, "");
        let mut bad = cfg(true);
        bad.endpoint = Some("ftp://x".into());
        assert!(Client::new(bad).is_err());
        let mut aws = cfg(false);
        aws.endpoint = None;
        aws.region = "eu-west-1".into();
        assert_eq!(
            Client::new(aws).unwrap().host,
            "bkt.s3.eu-west-1.amazonaws.com"
        );
    }
}

/// An object written piece by piece, for output whose size is not known up front (a streamed
/// export): parts of the client's part size are sent as they fill, so memory stays at one part
/// however large the object grows; an object smaller than one part is a single PUT. Nothing is
/// visible under the key before [`Upload::finish`]; a failed upload is aborted.
pub struct Upload {
    client: Client,
    key: String,
    buf: Vec<u8>,
    /// The multipart upload, once the first full part was sent.
    id: Option<String>,
    etags: Vec<String>,
    size: u64,
}

impl Upload {
    /// Appends bytes, sending every part that is full.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.buf.extend_from_slice(data);
        self.size += data.len() as u64;
        let part = self.client.part_size as usize;
        while self.buf.len() >= part {
            let rest = self.buf.split_off(part);
            let body = std::mem::replace(&mut self.buf, rest);
            if let Err(e) = self.send_part(&body).await {
                self.abort().await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn send_part(&mut self, body: &[u8]) -> Result<(), Error> {
        let id = match &self.id {
            Some(id) => id.clone(),
            None => {
                let id = self.client.create_multipart(&self.key).await?;
                self.id = Some(id.clone());
                id
            }
        };
        let n = self.etags.len() as u32 + 1;
        let etag = self.client.upload_part(&self.key, &id, n, body).await?;
        self.etags.push(etag);
        Ok(())
    }

    /// Sends what is left and makes the object visible; returns its size in bytes.
    pub async fn finish(mut self) -> Result<u64, Error> {
        if self.id.is_none() {
            self.client.put(&self.key, &self.buf).await?;
            return Ok(self.size);
        }
        let last = std::mem::take(&mut self.buf);
        let res = async {
            if !last.is_empty() {
                self.send_part(&last).await?;
            }
            let id = self.id.clone().unwrap_or_default();
            self.client
                .complete_multipart(&self.key, &id, &self.etags)
                .await
        }
        .await;
        if let Err(e) = res {
            self.abort().await;
            return Err(e);
        }
        Ok(self.size)
    }

    /// Drops the parts sent so far (S3 keeps them, billed, until aborted).
    pub async fn abort(&mut self) {
        if let Some(id) = self.id.take() {
            self.client.abort_multipart(&self.key, &id).await;
        }
    }
}
