//! A local stand-in for the GitHub and Gitea REST APIs, shared by the forge poller's unit tests
//! (crates/ingest/src/forge/tests.rs) and the end-to-end test (crates/sextant/tests/forge.rs).
//! It serves the recorded JSON under `testdata/forge/` the way the documented APIs do:
//! `Link: <…page=N+1>; rel="next"` pagination, strong `ETag`s answered with `304 Not
//! Modified` on a matching `If-None-Match`, GitHub's `X-RateLimit-*` headers (a 304 does not
//! use up the limit), and scripted one-off answers (a 403 with `X-RateLimit-Remaining: 0`, a
//! 429 with `Retry-After`). Every request is logged with its headers so tests can check what
//! the poller sent.
//!
//! Paths: `/github/repos/{owner}/{repo}/{issues|pulls|actions/runs}` serve
//! `github/{owner}_{repo}/{issues|pulls|runs}.{page}.json`; `/gitea/api/v1/repos/{owner}/{repo}/
//! {issues|pulls|actions/tasks}` serve `gitea/{owner}_{repo}/{issues|pulls|tasks}.{page}.json`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// One request as received, and the status it got.
#[derive(Clone, Debug)]
pub struct Logged {
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub status: u16,
}

impl Logged {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// A canned answer served once to the first request whose path ends with `path_suffix`.
pub struct Once {
    pub path_suffix: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Default)]
struct Shared {
    log: Vec<Logged>,
    once: VecDeque<Once>,
    github_remaining: i64,
}

/// The running fixture server; it lives as long as the test process.
#[derive(Clone)]
pub struct FixtureServer {
    pub port: u16,
    dir: PathBuf,
    shared: Arc<Mutex<Shared>>,
}

impl FixtureServer {
    /// Starts serving `dir` (the `testdata/forge` directory) on a free port.
    pub fn start(dir: PathBuf) -> FixtureServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fixture server");
        let port = listener.local_addr().expect("addr").port();
        let s = FixtureServer {
            port,
            dir,
            shared: Arc::new(Mutex::new(Shared {
                github_remaining: 5000,
                ..Shared::default()
            })),
        };
        let srv = s.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let srv = srv.clone();
                std::thread::spawn(move || srv.handle(conn));
            }
        });
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Queues a one-off answer.
    pub fn once(&self, o: Once) {
        self.shared.lock().unwrap().once.push_back(o);
    }

    /// Requests received so far.
    pub fn log(&self) -> Vec<Logged> {
        self.shared.lock().unwrap().log.clone()
    }

    fn handle(&self, conn: TcpStream) {
        let mut reader = BufReader::new(match conn.try_clone() {
            Ok(c) => c,
            Err(_) => return,
        });
        let mut out = conn;
        loop {
            let mut first = String::new();
            if reader.read_line(&mut first).unwrap_or(0) == 0 {
                return;
            }
            let target = first.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut headers = Vec::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 {
                    return;
                }
                let l = l.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((n, v)) = l.split_once(':') {
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let mut logged = Logged {
                target,
                headers,
                status: 0,
            };
            let (status, hdrs, body) = self.answer(&logged);
            logged.status = status;
            self.shared.lock().unwrap().log.push(logged);
            let mut resp = format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nContent-Type: application/json; charset=utf-8\r\n",
                reason(status),
                body.len()
            );
            for (n, v) in hdrs {
                resp.push_str(&format!("{n}: {v}\r\n"));
            }
            resp.push_str("\r\n");
            if out.write_all(resp.as_bytes()).is_err() || out.write_all(body.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn answer(&self, req: &Logged) -> (u16, Vec<(String, String)>, String) {
        let path = req.path().to_string();
        let github = path.starts_with("/github/");
        {
            let mut sh = self.shared.lock().unwrap();
            if let Some(i) = sh.once.iter().position(|o| path.ends_with(&o.path_suffix)) {
                let o = sh.once.remove(i).expect("queued answer");
                return (o.status, o.headers, o.body);
            }
        }
        let query = req.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let page: u32 = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("page="))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let Some(file) = fixture_file(&path) else {
            return (404, vec![], r#"{"message":"Not Found"}"#.into());
        };
        let read = |p: u32| std::fs::read_to_string(self.dir.join(format!("{file}.{p}.json"))).ok();
        let Some(body) = read(page) else {
            if page == 1 {
                return (404, vec![], r#"{"message":"Not Found"}"#.into());
            }
            return (200, vec![], "[]".into());
        };
        let mut hdrs = Vec::new();
        if read(page + 1).is_some() {
            let mut q: Vec<String> = query
                .split('&')
                .filter(|kv| !kv.is_empty() && !kv.starts_with("page="))
                .map(String::from)
                .collect();
            q.push(format!("page={}", page + 1));
            hdrs.push((
                "Link".to_string(),
                format!(
                    "<{}>; rel=\"next\", <{}>; rel=\"first\"",
                    self.url(&format!("{path}?{}", q.join("&"))),
                    self.url(&path)
                ),
            ));
        }
        let etag = format!("\"{:016x}\"", fnv(body.as_bytes()));
        let not_modified = req.header("if-none-match") == Some(etag.as_str());
        if github {
            let mut sh = self.shared.lock().unwrap();
            if !not_modified {
                sh.github_remaining -= 1;
            }
            hdrs.push(("X-RateLimit-Limit".into(), "5000".into()));
            hdrs.push((
                "X-RateLimit-Remaining".into(),
                sh.github_remaining.to_string(),
            ));
            hdrs.push(("X-RateLimit-Reset".into(), "4102444800".into()));
            hdrs.push(("X-RateLimit-Resource".into(), "core".into()));
        }
        hdrs.push(("ETag".into(), etag));
        if not_modified {
            return (304, hdrs, String::new());
        }
        (200, hdrs, body)
    }
}

/// The fixture file stem for an API path, e.g. `github/acme_widgets/issues`.
fn fixture_file(path: &str) -> Option<String> {
    let (forge, rest) = if let Some(r) = path.strip_prefix("/github/repos/") {
        ("github", r)
    } else if let Some(r) = path.strip_prefix("/gitea/api/v1/repos/") {
        ("gitea", r)
    } else {
        return None;
    };
    let mut parts = rest.splitn(3, '/');
    let (owner, repo, what) = (parts.next()?, parts.next()?, parts.next()?);
    let what = match what {
        "issues" => "issues",
        "pulls" => "pulls",
        "actions/runs" if forge == "github" => "runs",
        "actions/tasks" if forge == "gitea" => "tasks",
        _ => return None,
    };
    Some(format!("{forge}/{owner}_{repo}/{what}"))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Status",
    }
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for x in b {
        h ^= *x as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
