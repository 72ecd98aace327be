//! Each prober against a local server (HTTP, HTTPS with a generated CA, TCP dialogue, DNS over
//! UDP and TCP), the config checks, and the manager's staleness markers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

use super::config::*;
use super::*;
use crate::remote_write::WriteBatch;
use crate::{Sink, SinkError, Stored};

fn module(yaml: &str) -> Module {
    let m: Module = serde_saphyr::from_str(yaml).expect("module parses");
    m.validate().expect("module is valid");
    m
}

const T: Duration = Duration::from_secs(5);

/// An HTTP/1.1 server answering by path.
async fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                let mut first = String::new();
                if r.read_line(&mut first).await.is_err() {
                    return;
                }
                let mut headers = Vec::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).await.unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                    headers.push(l);
                }
                let path = first.split(' ').nth(1).unwrap_or("/").to_string();
                let method = first.split(' ').next().unwrap_or("").to_string();
                let resp: String = match path.as_str() {
                    "/ok" => "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Env: prod\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\nhello world".into(),
                    "/chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".into(),
                    "/redirect" => "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n".into(),
                    "/loop" => "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n".into(),
                    "/old" => "HTTP/1.0 200 OK\r\n\r\nold style".into(),
                    "/echo" => {
                        let body = format!("{method} {}", headers.concat().replace("\r\n", "|"));
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                    }
                    _ => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops".into(),
                };
                let mut s = r.into_inner();
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn http_status_body_redirects() {
    let port = http_server().await;
    let m = module("prober: http\n");
    let o = run_probe(&m, &format!("http://127.0.0.1:{port}/ok"), T).await;
    assert!(o.success, "{}", o.error);
    let s = &o.samples;
    assert_eq!(s.get("probe_success"), Some(1.0));
    assert_eq!(s.get("probe_http_status_code"), Some(200.0));
    assert_eq!(s.get("probe_http_content_length"), Some(11.0));
    assert_eq!(s.get("probe_http_uncompressed_body_length"), Some(11.0));
    assert_eq!(s.get("probe_http_redirects"), Some(0.0));
    assert_eq!(s.get("probe_http_ssl"), Some(0.0));
    assert_eq!(s.get("probe_http_version"), Some(1.1));
    assert_eq!(s.get("probe_ip_protocol"), Some(4.0));
    // The value blackbox_exporter 0.23 reports for 127.0.0.1.
    assert_eq!(s.get("probe_ip_addr_hash"), Some(3668918509.0));
    assert_eq!(s.get("probe_failed_due_to_regex"), Some(0.0));
    for p in PHASES_HTTP {
        assert!(
            s.get_with("probe_http_duration_seconds", ("phase", p))
                .is_some(),
            "{p}"
        );
    }
    assert!(s.get("probe_ssl_earliest_cert_expiry").is_none());
    assert_eq!(
        s.get("probe_http_last_modified_timestamp_seconds"),
        Some(784111777.0)
    );

    // No scheme: http:// is assumed. Chunked body.
    let o = run_probe(&m, &format!("127.0.0.1:{port}/chunked"), T).await;
    assert!(o.success, "{}", o.error);
    assert_eq!(o.samples.get("probe_http_content_length"), Some(-1.0));
    assert_eq!(
        o.samples.get("probe_http_uncompressed_body_length"),
        Some(11.0)
    );

    let o = run_probe(&m, &format!("http://127.0.0.1:{port}/redirect"), T).await;
    assert!(o.success, "{}", o.error);
    assert_eq!(o.samples.get("probe_http_redirects"), Some(1.0));
    assert_eq!(o.samples.get("probe_http_status_code"), Some(200.0));
    let o = run_probe(&m, &format!("http://127.0.0.1:{port}/loop"), T).await;
    assert!(!o.success);
    assert!(o.error.contains("redirects"), "{}", o.error);
    let nf =
        module("prober: http\nhttp:\n  no_follow_redirects: true\n  valid_status_codes: [302]\n");
    let o = run_probe(&nf, &format!("http://127.0.0.1:{port}/redirect"), T).await;
    assert!(o.success, "{}", o.error);
    assert_eq!(o.samples.get("probe_http_status_code"), Some(302.0));

    // 500 fails by default, passes when listed.
    let o = run_probe(&m, &format!("http://127.0.0.1:{port}/broken"), T).await;
    assert!(!o.success);
    assert_eq!(o.samples.get("probe_http_status_code"), Some(500.0));
    assert_eq!(o.samples.get("probe_success"), Some(0.0));
    let m500 = module("prober: http\nhttp:\n  valid_status_codes: [500, 503]\n");
    assert!(
        run_probe(&m500, &format!("http://127.0.0.1:{port}/broken"), T)
            .await
            .success
    );

    // Body regexes.
    let bad = module("prober: http\nhttp:\n  fail_if_body_matches_regexp: ['wor.d']\n");
    let o = run_probe(&bad, &format!("http://127.0.0.1:{port}/ok"), T).await;
    assert!(!o.success);
    assert_eq!(o.samples.get("probe_failed_due_to_regex"), Some(1.0));
    let need = module("prober: http\nhttp:\n  fail_if_body_not_matches_regexp: ['^hello']\n");
    assert!(
        run_probe(&need, &format!("http://127.0.0.1:{port}/ok"), T)
            .await
            .success
    );
    let o = run_probe(&need, &format!("http://127.0.0.1:{port}/chunked"), T).await;
    assert!(o.success, "{}", o.error);
    let need2 = module("prober: http\nhttp:\n  fail_if_body_not_matches_regexp: ['goodbye']\n");
    let o = run_probe(&need2, &format!("http://127.0.0.1:{port}/ok"), T).await;
    assert!(!o.success);
    assert_eq!(o.samples.get("probe_failed_due_to_regex"), Some(1.0));

    // Headers, versions, SSL requirements.
    let hdr = module("prober: http\nhttp:\n  fail_if_header_not_matches:\n    - header: X-Env\n      regexp: '^prod$'\n");
    assert!(
        run_probe(&hdr, &format!("http://127.0.0.1:{port}/ok"), T)
            .await
            .success
    );
    assert!(
        !run_probe(&hdr, &format!("http://127.0.0.1:{port}/chunked"), T)
            .await
            .success
    );
    let v11 = module("prober: http\nhttp:\n  valid_http_versions: [HTTP/1.1]\n");
    let o = run_probe(&v11, &format!("http://127.0.0.1:{port}/old"), T).await;
    assert!(!o.success);
    assert_eq!(o.samples.get("probe_http_version"), Some(1.0));
    assert_eq!(
        o.samples.get("probe_http_uncompressed_body_length"),
        Some(9.0)
    );
    let ssl = module("prober: http\nhttp:\n  fail_if_not_ssl: true\n");
    let o = run_probe(&ssl, &format!("http://127.0.0.1:{port}/ok"), T).await;
    assert!(!o.success);
    assert!(o.error.contains("not over SSL"), "{}", o.error);

    // Method, headers, body and basic auth reach the server.
    let post = module("prober: http\nhttp:\n  method: POST\n  headers: {X-Probe: yes}\n  body: '{}'\n  basic_auth: {username: u, password: p}\n");
    let o = run_probe(&post, &format!("http://127.0.0.1:{port}/echo"), T).await;
    assert!(o.success, "{}", o.error);

    // Connection refused: every HTTP series still there, status 0.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = run_probe(&m, &format!("http://127.0.0.1:{closed}/"), T).await;
    assert!(!o.success);
    assert_eq!(o.samples.get("probe_http_status_code"), Some(0.0));
    assert!(o.error.contains("connecting"), "{}", o.error);
}

const PHASES_HTTP: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

/// A CA and a server certificate for 127.0.0.1/localhost that expires at `not_after`.
fn certs(dir: &std::path::Path, not_after: (i32, u8, u8)) -> (String, Vec<u8>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.not_after = rcgen::date_time_ymd(2040, 1, 1);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    (
        ca_path.to_string_lossy().into_owned(),
        cert.der().to_vec(),
        key.serialize_der(),
    )
}

async fn tls_server(cert: Vec<u8>, key: Vec<u8>, http: bool) -> u16 {
    use tokio_rustls::rustls;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls_pki_types::CertificateDer::from(cert)],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                if http {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                } else {
                    let _ = s.write_all(b"+READY\n").await;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn https_and_tcp_tls_report_cert_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certs(dir.path(), (2031, 7, 9));
    let expiry = 1941321600.0; // 2031-07-09T00:00:00Z
    let port = tls_server(cert.clone(), key.clone(), true).await;
    let m = module(&format!(
        "prober: http\nhttp:\n  preferred_ip_protocol: ip4\n  fail_if_not_ssl: true\n  tls_config:\n    ca_file: {ca}\n"
    ));
    let o = run_probe(&m, &format!("https://localhost:{port}/"), T).await;
    assert!(o.success, "{}", o.error);
    let s = &o.samples;
    assert_eq!(s.get("probe_http_ssl"), Some(1.0));
    assert_eq!(s.get("probe_ssl_earliest_cert_expiry"), Some(expiry));
    assert_eq!(
        s.get_with("probe_tls_version_info", ("version", "TLS 1.3")),
        Some(1.0)
    );
    assert!(s.get("probe_tls_cipher_info").is_some());
    assert!(
        s.get_with("probe_http_duration_seconds", ("phase", "tls"))
            .unwrap()
            > 0.0
    );

    // Without the CA the certificate is refused; insecure_skip_verify still reports expiry.
    let plain = module("prober: http\n");
    let o = run_probe(&plain, &format!("https://127.0.0.1:{port}/"), T).await;
    assert!(!o.success);
    assert!(o.error.contains("TLS handshake"), "{}", o.error);
    let skip = module("prober: http\nhttp:\n  tls_config: {insecure_skip_verify: true}\n");
    let o = run_probe(&skip, &format!("https://127.0.0.1:{port}/"), T).await;
    assert!(o.success, "{}", o.error);
    assert_eq!(
        o.samples.get("probe_ssl_earliest_cert_expiry"),
        Some(expiry)
    );

    // TCP with TLS and an expect.
    let tport = tls_server(cert, key, false).await;
    let t = module(&format!("prober: tcp\ntcp:\n  tls: true\n  tls_config:\n    ca_file: {ca}\n    server_name: localhost\n  query_response:\n    - expect: '^\\+READY'\n"));
    let o = run_probe(&t, &format!("127.0.0.1:{tport}"), T).await;
    assert!(o.success, "{}", o.error);
    assert_eq!(
        o.samples.get("probe_ssl_earliest_cert_expiry"),
        Some(expiry)
    );
    assert_eq!(o.samples.get("probe_failed_due_to_regex"), Some(0.0));
}

#[tokio::test]
async fn tcp_connect_and_dialogue() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                let _ = r.get_mut().write_all(b"220 mail ESMTP\r\n").await;
                let mut line = String::new();
                let _ = r.read_line(&mut line).await;
                let reply = if line.trim() == "EHLO prober" {
                    "250 ok\r\n"
                } else {
                    "500 what\r\n"
                };
                let _ = r.get_mut().write_all(reply.as_bytes()).await;
            });
        }
    });
    let connect = module("prober: tcp\n");
    let o = run_probe(&connect, &format!("127.0.0.1:{port}"), T).await;
    assert!(o.success, "{}", o.error);
    assert_eq!(o.samples.get("probe_ip_protocol"), Some(4.0));
    let smtp = module("prober: tcp\ntcp:\n  query_response:\n    - expect: '^220 (\\w+)'\n      send: 'EHLO prober'\n    - expect: '^250'\n");
    let o = run_probe(&smtp, &format!("127.0.0.1:{port}"), T).await;
    assert!(o.success, "{}", o.error);
    let wrong = module("prober: tcp\ntcp:\n  query_response:\n    - expect: '^220'\n      send: 'HELO x'\n    - expect: '^250'\n");
    let o = run_probe(&wrong, &format!("127.0.0.1:{port}"), T).await;
    assert!(!o.success);
    assert_eq!(o.samples.get("probe_failed_due_to_regex"), Some(1.0));
    let o = run_probe(&connect, "127.0.0.1", T).await;
    assert!(!o.success);
    assert!(o.error.contains("missing port"), "{}", o.error);
    drop(connect);
}

/// Answers A queries with 192.0.2.1 (twice for "two.example."), NXDOMAIN for "missing.example.".
fn dns_answer(q: &[u8]) -> Vec<u8> {
    let mut end = 12;
    while end < q.len() && q[end] != 0 {
        end += q[end] as usize + 1;
    }
    let qname = &q[12..=end.min(q.len() - 1)];
    let name = String::from_utf8_lossy(qname).to_string();
    let question = &q[12..(end + 5).min(q.len())];
    let nx = name.contains("missing");
    let n = if nx {
        0
    } else if name.contains("two") {
        2
    } else {
        1
    };
    let mut r = Vec::new();
    r.extend_from_slice(&q[..2]);
    r.extend_from_slice(&[0x81, if nx { 0x83 } else { 0x80 }]);
    r.extend_from_slice(&[0, 1, 0, n, 0, 0, 0, 0]);
    r.extend_from_slice(question);
    for i in 0..n {
        r.extend_from_slice(&[
            0xc0,
            12,
            0,
            1,
            0,
            1,
            0,
            0,
            0x0e,
            0x10,
            0,
            4,
            192,
            0,
            2,
            1 + i,
        ]);
    }
    r
}

#[tokio::test]
async fn dns_udp_and_tcp() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(&dns_answer(&buf[..n]), from).await;
        }
    });
    let tl = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tport = tl.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tl.accept().await {
            let Ok(len) = s.read_u16().await else {
                continue;
            };
            let mut q = vec![0u8; len as usize];
            if s.read_exact(&mut q).await.is_err() {
                continue;
            }
            let a = dns_answer(&q);
            let _ = s.write_all(&(a.len() as u16).to_be_bytes()).await;
            let _ = s.write_all(&a).await;
        }
    });
    let m = module("prober: dns\ndns:\n  query_name: two.example\n  query_type: A\n  validate_answer_rrs:\n    fail_if_not_matches_regexp: ['two\\.example\\.\\t3600\\tIN\\tA\\t192\\.0\\.2\\.[12]']\n");
    let o = run_probe(&m, &format!("127.0.0.1:{port}"), T).await;
    assert!(o.success, "{}", o.error);
    let s = &o.samples;
    assert_eq!(s.get("probe_dns_answer_rrs"), Some(2.0));
    assert_eq!(s.get("probe_dns_authority_rrs"), Some(0.0));
    assert_eq!(s.get("probe_dns_query_succeeded"), Some(1.0));
    assert!(s
        .get_with("probe_dns_duration_seconds", ("phase", "request"))
        .is_some());

    let tcp = module("prober: dns\ndns:\n  query_name: one.example.\n  query_type: A\n  transport_protocol: tcp\n  validate_answer_rrs:\n    fail_if_none_matches_regexp: ['192\\.0\\.2\\.1$']\n");
    let o = run_probe(&tcp, &format!("127.0.0.1:{tport}"), T).await;
    assert!(o.success, "{}", o.error);
    assert_eq!(o.samples.get("probe_dns_answer_rrs"), Some(1.0));

    let reject = module("prober: dns\ndns:\n  query_name: one.example\n  validate_answer_rrs:\n    fail_if_matches_regexp: ['192\\.0\\.2\\.1']\n");
    let o = run_probe(&reject, &format!("127.0.0.1:{port}"), T).await;
    assert!(!o.success);
    assert!(o.error.contains("fail_if_matches_regexp"), "{}", o.error);

    let nx = module("prober: dns\ndns:\n  query_name: missing.example\n  query_type: A\n");
    let o = run_probe(&nx, &format!("127.0.0.1:{port}"), T).await;
    assert!(!o.success);
    assert!(o.error.contains("NXDOMAIN"), "{}", o.error);
    assert_eq!(o.samples.get("probe_dns_query_succeeded"), Some(1.0));
    let nx_ok =
        module("prober: dns\ndns:\n  query_name: missing.example\n  valid_rcodes: [NXDOMAIN]\n");
    assert!(
        run_probe(&nx_ok, &format!("127.0.0.1:{port}"), T)
            .await
            .success
    );

    // A server that never answers: the timeout, query not succeeded.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sport = silent.local_addr().unwrap().port();
    let o = run_probe(
        &m,
        &format!("127.0.0.1:{sport}"),
        Duration::from_millis(300),
    )
    .await;
    assert!(!o.success);
    assert!(o.error.contains("timeout"), "{}", o.error);
    drop(silent);
}

#[test]
fn dns_messages() {
    let q = dns::encode_query(0x1234, "example.com", 1, 1, true).unwrap();
    assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
    assert_eq!(&q[12..25], b"\x07example\x03com\x00");
    assert!(dns::encode_query(1, "a..b", 1, 1, true).is_err());
    assert!(dns::encode_query(1, &"x".repeat(64), 1, 1, true).is_err());
    let m = dns::parse_message(&dns_answer(&q)).unwrap();
    assert_eq!(m.answer, vec!["example.com.\t3600\tIN\tA\t192.0.2.1"]);
    // Truncated and looping messages are errors, not panics.
    let full = dns_answer(&q);
    for n in 0..full.len() {
        let _ = dns::parse_message(&full[..n]);
    }
    let mut looped = full.clone();
    let at = looped.len() - 16;
    looped[at + 1] = at as u8; // pointer to itself
    assert!(dns::parse_message(&looped).is_err());
}

#[test]
fn config_checks_name_the_field() {
    let parse = |y: &str| -> Result<ProbesConfig, String> {
        let c: ProbesConfig = serde_saphyr::from_str(y).map_err(|e| e.to_string())?;
        c.validate().map_err(|(l, m)| format!("{l}: {m}"))?;
        Ok(c)
    };
    let ok = parse("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      valid_status_codes: []\n      method: GET\n      preferred_ip_protocol: ip4\n      fail_if_ssl: false\n      tls_config:\n        insecure_skip_verify: false\ntargets:\n  - job_name: web\n    module: http_2xx\n    interval: 15s\n    targets: [http://a, http://b]\n    labels: {team: infra}\n").unwrap();
    let specs = ProbeSpec::all(&ok, Duration::from_secs(60));
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].interval, Duration::from_secs(15));
    assert_eq!(specs[0].timeout, Duration::from_secs(5));
    let e = parse(
        "modules:\n  m:\n    prober: http\n    http:\n      fail_if_body_matche_regexp: [x]\n",
    )
    .unwrap_err();
    assert!(
        e.contains("unknown field `fail_if_body_matche_regexp`"),
        "{e}"
    );
    assert!(e.contains("line 5") || e.starts_with("5"), "{e}");
    let e = parse("modules:\n  m:\n    prober: icmp\n").unwrap_err();
    assert!(e.contains("icmp"), "{e}");
    let e = parse("modules:\n  m: {prober: tcp}\ntargets:\n  - job_name: j\n    module: nope\n    targets: [a:1]\n").unwrap_err();
    assert_eq!(
        e,
        "4: probes.targets[0].module: unknown module \"nope\" (not in probes.modules)"
    );
    let e = parse("modules:\n  m:\n    prober: dns\n").unwrap_err();
    assert!(e.contains("probes.modules.m.dns.query_name"), "{e}");
    let e = parse("modules:\n  m:\n    prober: dns\n    dns: {query_name: x, query_type: BOGUS}\n")
        .unwrap_err();
    assert!(e.contains("dns.query_type"), "{e}");
    let e =
        parse("modules:\n  m:\n    prober: http\n    http: {fail_if_body_matches_regexp: ['(']}\n")
            .unwrap_err();
    assert!(e.contains("invalid regex"), "{e}");
    let e = parse("modules:\n  m: {prober: tcp}\ntargets:\n  - job_name: j\n    module: m\n    targets: [a:1]\n    labels: {instance: x}\n").unwrap_err();
    assert!(e.contains("labels: \"instance\""), "{e}");
    let e = parse("modules:\n  m: {prober: tcp}\ntargets:\n  - job_name: j\n    module: m\n    targets: [a:1, a:1]\n").unwrap_err();
    assert!(e.contains("probed twice"), "{e}");
}

#[derive(Default)]
struct VecSink(Mutex<Vec<WriteBatch>>);

impl Sink for VecSink {
    fn store(&self, batch: WriteBatch) -> Result<Stored, SinkError> {
        self.0.lock().unwrap().push(batch);
        Ok(Stored::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_writes_series_and_stale_markers_on_removal() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { while l.accept().await.is_ok() {} });
    let sink = Arc::new(VecSink::default());
    let mgr = ProbeManager::new(sink.clone());
    let cfg: ProbesConfig = serde_saphyr::from_str(&format!(
        "modules:\n  c: {{prober: tcp}}\ntargets:\n  - job_name: gw\n    module: c\n    interval: 100ms\n    targets: ['127.0.0.1:{port}']\n    labels: {{team: infra}}\n"
    ))
    .unwrap();
    mgr.apply(ProbeSpec::all(&cfg, Duration::from_secs(60)));
    let found_team = |team: &str, want_stale: bool| {
        sink.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b.series.clone())
            .any(|s| {
                s.labels.get("__name__") == Some("probe_success")
                    && s.labels.get("job") == Some("gw")
                    && s.labels.get("instance") == Some(&format!("127.0.0.1:{port}"))
                    && s.labels.get("team") == Some(team)
                    && s.samples.iter().any(|x| {
                        if want_stale {
                            sextant_model::is_stale_nan(x.v)
                        } else {
                            x.v == 1.0
                        }
                    })
            })
    };
    let found = |want_stale: bool| found_team("infra", want_stale);
    for _ in 0..100 {
        if found(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found(false), "no probe_success 1 written");
    let st = mgr.statuses();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].success, Some(true));
    // A changed probe (same job, module and target, other labels) restarts; its first run
    // marks the series it no longer writes.
    let changed: ProbesConfig = serde_saphyr::from_str(&format!(
        "modules:\n  c: {{prober: tcp}}\ntargets:\n  - job_name: gw\n    module: c\n    interval: 100ms\n    targets: ['127.0.0.1:{port}']\n    labels: {{team: ops}}\n"
    ))
    .unwrap();
    mgr.apply(ProbeSpec::all(&changed, Duration::from_secs(60)));
    for _ in 0..100 {
        if found(true) && found_team("ops", false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found(true), "no staleness marker for the old labels");
    assert!(
        found_team("ops", false),
        "no probe_success with the new labels"
    );
    assert!(!found_team("ops", true));
    mgr.apply(Vec::new());
    for _ in 0..100 {
        if found_team("ops", true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found_team("ops", true), "no staleness marker after removal");
    assert!(mgr.statuses().is_empty());
}
