//! Receivers against local stand-ins of the real services: HTTP servers that check each request
//! the way Slack, Telegram, GitHub and Gitea document their APIs (method, path, headers, JSON
//! fields), a webhook sink, and a real SMTP server (PyPI `aiosmtpd`) for email — skipped with a
//! message when `aiosmtpd` is missing unless `SEXTANT_REQUIRE_PEERS=1`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value as Json};
use sextant_alert::receivers::{build, BuildContext, ReceiverConfig};
use sextant_alert::{Notification, NotifiedAlert, Receiver};

/// One request as the stand-in saw it.
#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} {}: body is not JSON: {e}", self.method, self.path))
    }
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

type Handler = Arc<dyn Fn(&Req) -> (StatusCode, String) + Send + Sync>;

/// A local HTTP server that records every request and answers through `handler`.
struct Stub {
    addr: SocketAddr,
    reqs: Arc<Mutex<Vec<Req>>>,
}

async fn stub(handler: Handler) -> Stub {
    let reqs: Arc<Mutex<Vec<Req>>> = Arc::default();
    let r2 = reqs.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let reqs = r2.clone();
            let handler = handler.clone();
            async move {
                let req = Req {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    query: uri.query().unwrap_or("").to_string(),
                    headers,
                    body,
                };
                let (code, text) = handler(&req);
                reqs.lock().unwrap().push(req);
                let resp: Response =
                    (code, [("content-type", "application/json")], text).into_response();
                resp
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Stub { addr, reqs }
}

impl Stub {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn taken(&self) -> Vec<Req> {
        std::mem::take(&mut *self.reqs.lock().unwrap())
    }
}

fn labels(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn notification(status: &str) -> Notification {
    let alert = |instance: &str| NotifiedAlert {
        status: status.into(),
        labels: labels(&[
            ("alertname", "HostDown"),
            ("instance", instance),
            ("severity", "P0"),
        ]),
        annotations: labels(&[("summary", "host <down>")]),
        starts_at: "2026-11-23T10:00:00Z".into(),
        ends_at: if status == "firing" {
            "0001-01-01T00:00:00Z".into()
        } else {
            "2026-11-23T10:10:00Z".into()
        },
        generator_url: "http://sextant:9595/graph?g0.expr=up".into(),
        fingerprint: format!("fp-{instance}"),
    };
    Notification {
        version: "4".into(),
        group_key: "{}/{severity=\"P0\"}:{alertname=\"HostDown\"}".into(),
        truncated_alerts: 0,
        status: status.into(),
        receiver: "oncall".into(),
        group_labels: labels(&[("alertname", "HostDown")]),
        common_labels: labels(&[("alertname", "HostDown"), ("severity", "P0")]),
        common_annotations: labels(&[("summary", "host <down>")]),
        external_url: "http://sextant:9595".into(),
        alerts: vec![alert("a:9100"), alert("b:9100")],
    }
}

fn ctx() -> BuildContext {
    BuildContext {
        external_url: "http://sextant:9595".into(),
        ..Default::default()
    }
}

fn one(cfg: Json) -> Box<dyn Receiver> {
    let c: ReceiverConfig = serde_json::from_value(cfg).expect("receiver config");
    let mut v = build(&c, &ctx()).expect("build");
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn ok() -> Handler {
    Arc::new(|_| (StatusCode::OK, "ok".into()))
}

#[tokio::test]
async fn webhook_posts_v4_payload_with_auth_and_truncation() {
    let s = stub(ok()).await;
    let r = one(json!({"name": "oncall", "webhook_configs": [{
        "url": format!("{}/hook", s.url()), "max_alerts": 1,
        "http_config": {"basic_auth": {"username": "am", "password": "pw"}}
    }]}));
    assert_eq!(r.integration(), "webhook");
    assert!(r.send_resolved());
    let n = notification("firing");
    r.notify(&n).await.unwrap();
    let reqs = s.taken();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!((q.method.as_str(), q.path.as_str()), ("POST", "/hook"));
    assert_eq!(q.header("content-type"), "application/json");
    assert_eq!(q.header("authorization"), "Basic YW06cHc="); // am:pw
    assert!(q.header("user-agent").starts_with("Sextant/"));
    let b = q.json();
    assert_eq!(b["version"], "4");
    assert_eq!(b["groupKey"], n.group_key);
    assert_eq!(b["truncatedAlerts"], 1);
    assert_eq!(b["status"], "firing");
    assert_eq!(b["receiver"], "oncall");
    assert_eq!(b["externalURL"], "http://sextant:9595");
    assert_eq!(b["groupLabels"]["alertname"], "HostDown");
    assert_eq!(b["commonLabels"]["severity"], "P0");
    assert_eq!(b["alerts"].as_array().unwrap().len(), 1);
    let a = &b["alerts"][0];
    for k in [
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    ] {
        assert!(a.get(k).is_some(), "alert lacks {k}: {a}");
    }
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
}

#[tokio::test]
async fn http_errors_are_classified_and_carry_status_and_excerpt() {
    let s = stub(Arc::new(|q: &Req| match q.path.as_str() {
        "/500" => (StatusCode::INTERNAL_SERVER_ERROR, "database on fire".into()),
        "/429" => (StatusCode::TOO_MANY_REQUESTS, "slow down".into()),
        _ => (StatusCode::BAD_REQUEST, "invalid_payload".into()),
    }))
    .await;
    let n = notification("firing");
    for (path, retry, text) in [
        ("/500", true, "database on fire"),
        ("/429", true, "slow down"),
        ("/400", false, "invalid_payload"),
    ] {
        let r =
            one(json!({"name": "x", "webhook_configs": [{"url": format!("{}{path}", s.url())}]}));
        let e = r.notify(&n).await.unwrap_err();
        assert_eq!(e.retryable, retry, "{path}: {e}");
        assert!(
            e.msg.contains(&path[1..]) && e.msg.contains(text),
            "{path}: {}",
            e.msg
        );
    }
    // Network failure: retryable, and the secret-bearing URL is not in the message.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let r = one(
        json!({"name": "x", "slack_configs": [{"api_url": format!("http://127.0.0.1:{port}/services/T0/B0/SECRETXYZ")}]}),
    );
    let e = r.notify(&n).await.unwrap_err();
    assert!(e.retryable, "{e}");
    assert!(!e.msg.contains("SECRETXYZ"), "{}", e.msg);
}

#[tokio::test]
async fn slack_incoming_webhook_attachment_and_blocks() {
    let s = stub(ok()).await;
    let r = one(json!({"name": "oncall", "slack_configs": [{
        "api_url": format!("{}/services/T000/B000/XXXX", s.url()),
        "channel": "#alerts", "send_resolved": true,
        "text": "{{ range .Alerts }}{{ .Labels.instance }} {{ end }}",
        "fields": [{"title": "Severity", "value": "{{ .CommonLabels.severity }}", "short": true}],
        "actions": [{"type": "button", "text": "Runbook", "url": "https://runbooks/{{ .GroupLabels.alertname }}"}]
    }]}));
    r.notify(&notification("firing")).await.unwrap();
    r.notify(&notification("resolved")).await.unwrap();
    let reqs = s.taken();
    assert_eq!(reqs.len(), 2);
    let q = &reqs[0];
    assert_eq!(
        (q.method.as_str(), q.path.as_str()),
        ("POST", "/services/T000/B000/XXXX")
    );
    assert!(q.header("content-type").starts_with("application/json"));
    let b = q.json();
    assert_eq!(b["channel"], "#alerts");
    assert_eq!(b["username"], "Sextant");
    let a = &b["attachments"][0];
    assert_eq!(a["title"], "[FIRING:2] HostDown (P0)");
    assert_eq!(
        a["title_link"],
        "http://sextant:9595/#/alerts?receiver=oncall"
    );
    assert_eq!(a["text"], "a:9100 b:9100 ");
    assert_eq!(a["color"], "danger");
    assert_eq!(
        a["fields"][0],
        json!({"title": "Severity", "value": "P0", "short": true})
    );
    assert_eq!(a["actions"][0]["url"], "https://runbooks/HostDown");
    assert_eq!(a["mrkdwn_in"], json!(["fallback", "pretext", "text"]));
    let b2 = reqs[1].json();
    assert_eq!(b2["attachments"][0]["color"], "good");
    assert_eq!(b2["attachments"][0]["title"], "[RESOLVED] HostDown (P0)");

    let r = one(
        json!({"name": "oncall", "slack_configs": [{"api_url": format!("{}/b", s.url()), "blocks": true}]}),
    );
    r.notify(&notification("firing")).await.unwrap();
    let b = s.taken()[0].json();
    let blocks = b["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[1]["type"], "section");
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    assert!(blocks[1]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("host <down>"));
    assert_eq!(blocks.last().unwrap()["type"], "context");
    assert!(b["text"].as_str().unwrap().starts_with("[FIRING:2]"));

    // chat.postMessage-style 200 {"ok":false} is an error.
    let s2 = stub(Arc::new(|_| {
        (
            StatusCode::OK,
            r#"{"ok":false,"error":"channel_not_found"}"#.into(),
        )
    }))
    .await;
    let r = one(json!({"name": "x", "slack_configs": [{"api_url": s2.url()}]}));
    let e = r.notify(&notification("firing")).await.unwrap_err();
    assert!(!e.retryable && e.msg.contains("channel_not_found"), "{e}");
}

#[tokio::test]
async fn telegram_send_message() {
    let s = stub(Arc::new(|q: &Req| {
        if q.path == "/bot123:ABC/sendMessage" {
            (
                StatusCode::OK,
                r#"{"ok":true,"result":{"message_id":1}}"#.into(),
            )
        } else {
            (
                StatusCode::NOT_FOUND,
                r#"{"ok":false,"error_code":404,"description":"Not Found"}"#.into(),
            )
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("token");
    std::fs::write(&tok, "123:ABC\n").unwrap();
    let r = one(json!({"name": "oncall", "telegram_configs": [{
        "api_url": s.url(), "bot_token_file": tok, "chat_id": -1001234567890i64,
        "message_thread_id": 7, "disable_notifications": true
    }]}));
    assert!(r.send_resolved());
    r.notify(&notification("firing")).await.unwrap();
    let reqs = s.taken();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(q.method, "POST");
    assert!(q.header("content-type").starts_with("application/json"));
    let b = q.json();
    assert_eq!(b["chat_id"], -1001234567890i64);
    assert_eq!(b["parse_mode"], "HTML");
    assert_eq!(b["disable_notification"], true);
    assert_eq!(b["message_thread_id"], 7);
    let text = b["text"].as_str().unwrap();
    assert!(
        text.contains("Alerts Firing:\nLabels:\n - alertname = HostDown\n - instance = a:9100"),
        "{text}"
    );
    assert!(
        text.contains(" - summary = host &lt;down&gt;"),
        "HTML mode escapes alert data: {text}"
    );

    // A bad token: 404, not retryable, token not in the message.
    std::env::set_var("SX_TEST_TG_TOKEN", "999:WRONGTOKEN");
    let r = one(
        json!({"name": "x", "telegram_configs": [{"api_url": s.url(), "bot_token": "${SX_TEST_TG_TOKEN}", "chat_id": 5, "message": "hi {{ .Status }}", "parse_mode": ""}]}),
    );
    let e = r.notify(&notification("firing")).await.unwrap_err();
    assert!(!e.retryable, "{e}");
    assert!(
        e.msg.contains("404") && !e.msg.contains("WRONGTOKEN"),
        "{}",
        e.msg
    );
    let q = &s.taken()[0];
    assert_eq!(q.path, "/bot999:WRONGTOKEN/sendMessage");
    assert_eq!(q.json()["text"], "hi firing");
    assert!(q.json().get("parse_mode").is_none());
}

// ---------------------------------------------------------------------------------------------
// A fake forge (GitHub or Gitea REST) that keeps issues, comments and labels in memory.

#[derive(Default)]
struct Forge {
    gitea: bool,
    issues: Vec<Json>,
    comments: Vec<(u64, String)>,
    labels: Vec<(u64, String)>,
    errors: Vec<String>,
}

fn forge_handler(state: Arc<Mutex<Forge>>) -> Handler {
    Arc::new(move |q: &Req| {
        let mut f = state.lock().unwrap();
        let prefix = if f.gitea {
            "/api/v1/repos/acme/ops"
        } else {
            "/repos/acme/ops"
        };
        // Authentication as each forge documents it.
        let auth = q.header("authorization");
        let want = if f.gitea {
            "token forge-token"
        } else {
            "Bearer forge-token"
        };
        if auth != want {
            f.errors.push(format!("bad authorization {auth:?}"));
            return (
                StatusCode::UNAUTHORIZED,
                r#"{"message":"Bad credentials"}"#.into(),
            );
        }
        if !f.gitea
            && (q.header("accept") != "application/vnd.github+json"
                || q.header("x-github-api-version").is_empty())
        {
            f.errors
                .push("missing GitHub accept/version headers".into());
        }
        let Some(rest) = q.path.strip_prefix(prefix) else {
            return (StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#.into());
        };
        let query: BTreeMap<String, String> = q
            .query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.replace("%2C", ",").replace("%2F", "/")))
            .collect();
        let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match (q.method.as_str(), parts.as_slice()) {
            ("GET", ["issues"]) => {
                if query.get("state").map(String::as_str) != Some("open") {
                    f.errors
                        .push(format!("list without state=open: {}", q.query));
                }
                let want_labels: Vec<&str> = query
                    .get("labels")
                    .map(|l| l.split(',').collect())
                    .unwrap_or_default();
                let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                let per: usize = query
                    .get(if f.gitea { "limit" } else { "per_page" })
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(30);
                let open: Vec<Json> = f
                    .issues
                    .iter()
                    .filter(|i| i["state"] == "open")
                    .filter(|i| {
                        want_labels.iter().all(|w| {
                            i["labels"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|l| l["name"] == *w)
                        })
                    })
                    .cloned()
                    .collect();
                let pageful: Vec<Json> =
                    open.into_iter().skip((page - 1) * per).take(per).collect();
                (StatusCode::OK, Json::Array(pageful).to_string())
            }
            ("POST", ["issues"]) => {
                let b = q.json();
                let names: Vec<Json> = match b.get("labels") {
                    None => vec![],
                    Some(Json::Array(a)) if f.gitea => a
                        .iter()
                        .map(|id| {
                            let id = id
                                .as_u64()
                                .unwrap_or_else(|| panic!("Gitea labels must be ids, got {id}"));
                            let name = f
                                .labels
                                .iter()
                                .find(|(i, _)| *i == id)
                                .map(|(_, n)| n.clone())
                                .expect("unknown label id");
                            json!({"id": id, "name": name})
                        })
                        .collect(),
                    Some(Json::Array(a)) => a
                        .iter()
                        .map(|n| json!({"name": n.as_str().expect("GitHub labels are names")}))
                        .collect(),
                    Some(other) => panic!("labels is not an array: {other}"),
                };
                let number = f.issues.len() as u64 + 1;
                let issue = json!({"number": number, "title": b["title"], "body": b["body"], "state": "open", "labels": names});
                f.issues.push(issue.clone());
                (StatusCode::CREATED, issue.to_string())
            }
            ("POST", ["issues", n, "comments"]) => {
                let n: u64 = n.parse().unwrap();
                let body = q.json()["body"].as_str().expect("comment body").to_string();
                f.comments.push((n, body));
                (
                    StatusCode::CREATED,
                    json!({"id": f.comments.len(), "body": "x"}).to_string(),
                )
            }
            ("PATCH", ["issues", n]) => {
                let n: usize = n.parse().unwrap();
                let b = q.json();
                let issue = &mut f.issues[n - 1];
                issue["state"] = b["state"].clone();
                (StatusCode::CREATED, issue.to_string())
            }
            ("GET", ["labels"]) if f.gitea => {
                let l: Vec<Json> = f
                    .labels
                    .iter()
                    .map(|(id, n)| json!({"id": id, "name": n, "color": "ffffff"}))
                    .collect();
                (StatusCode::OK, Json::Array(l).to_string())
            }
            ("POST", ["labels"]) if f.gitea => {
                let b = q.json();
                let name = b["name"].as_str().unwrap().to_string();
                if b["color"].as_str().is_none_or(|c| c.is_empty()) {
                    f.errors.push("label without color".into());
                }
                let id = 100 + f.labels.len() as u64;
                f.labels.push((id, name.clone()));
                (
                    StatusCode::CREATED,
                    json!({"id": id, "name": name}).to_string(),
                )
            }
            _ => {
                f.errors.push(format!("unexpected {} {}", q.method, q.path));
                (StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#.into())
            }
        }
    })
}

async fn issue_lifecycle(gitea: bool) {
    let state = Arc::new(Mutex::new(Forge {
        gitea,
        ..Default::default()
    }));
    if gitea {
        state.lock().unwrap().labels.push((7, "alert".into()));
    }
    // An unrelated open issue (and, on GitHub, a pull request) must not be mistaken for ours.
    state.lock().unwrap().issues.push(json!({"number": 1, "title": "other", "body": "hello", "state": "open", "labels": [{"name": "alert"}]}));
    let s = stub(forge_handler(state.clone())).await;
    let key = if gitea {
        "gitea_configs"
    } else {
        "github_configs"
    };
    let cfg = json!({"name": "oncall", key: [{
        "api_url": s.url(), "repo": "acme/ops", "token": "forge-token",
        "labels": ["alert", "severity/{{ .CommonLabels.severity }}", "{{ .CommonLabels.missing }}"]
    }]});
    let r = one(cfg.clone());
    assert_eq!(r.integration(), if gitea { "gitea" } else { "github" });

    // 1. Fires: a new issue with the marker and the labels.
    r.notify(&notification("firing")).await.unwrap();
    {
        let f = state.lock().unwrap();
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.issues.len(), 2);
        let i = &f.issues[1];
        assert_eq!(i["title"], "[FIRING:2] HostDown (P0)");
        let body = i["body"].as_str().unwrap();
        assert!(body.contains("<!-- sextant:group="), "{body}");
        assert!(
            body.contains("**host <down>**") && body.contains("`instance=a:9100`"),
            "{body}"
        );
        let names: Vec<&str> = i["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alert", "severity/P0"]);
        if gitea {
            assert_eq!(i["labels"][0]["id"], 7, "existing Gitea label reused by id");
        }
    }
    // 2. Repeats: a comment, no second issue.
    r.notify(&notification("firing")).await.unwrap();
    // 3. "Restart": a new receiver instance finds the issue by its marker.
    let r2 = one(cfg.clone());
    r2.notify(&notification("firing")).await.unwrap();
    {
        let f = state.lock().unwrap();
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.issues.len(), 2, "no duplicate issue");
        assert_eq!(f.comments.len(), 2);
        assert!(
            f.comments
                .iter()
                .all(|(n, b)| *n == 2 && b.starts_with("[FIRING:2] HostDown (P0)")),
            "{:?}",
            f.comments
        );
    }
    // 4. Resolves: comment + close.
    r2.notify(&notification("resolved")).await.unwrap();
    {
        let f = state.lock().unwrap();
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.issues[1]["state"], "closed");
        assert_eq!(f.issues[0]["state"], "open");
        assert_eq!(f.comments.len(), 3);
        assert!(
            f.comments[2].1.starts_with("[RESOLVED] HostDown (P0)"),
            "{}",
            f.comments[2].1
        );
    }
    // 5. Fires again later: the closed issue is not reused; a new one opens.
    r.notify(&notification("firing")).await.unwrap();
    // A resolved notification with no open issue does nothing.
    r.notify(&notification("resolved")).await.unwrap();
    r.notify(&notification("resolved")).await.unwrap();
    let f = state.lock().unwrap();
    assert!(f.errors.is_empty(), "{:?}", f.errors);
    assert_eq!(f.issues.len(), 3);
    assert_eq!(f.issues[2]["state"], "closed");
}

#[tokio::test]
async fn github_issue_lifecycle_and_dedup_after_restart() {
    issue_lifecycle(false).await;
}

#[tokio::test]
async fn gitea_issue_lifecycle_and_dedup_after_restart() {
    issue_lifecycle(true).await;
}

#[tokio::test]
async fn forge_auth_failure_is_permanent() {
    let state = Arc::new(Mutex::new(Forge::default()));
    let s = stub(forge_handler(state)).await;
    let r = one(
        json!({"name": "x", "github_configs": [{"api_url": s.url(), "repo": "acme/ops", "token": "wrong"}]}),
    );
    let e = r.notify(&notification("firing")).await.unwrap_err();
    assert!(
        !e.retryable && e.msg.contains("401") && e.msg.contains("Bad credentials"),
        "{e}"
    );
    assert!(!e.msg.contains("wrong"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Email against a real SMTP server.

fn require_peers() -> bool {
    std::env::var("SEXTANT_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

fn have_aiosmtpd() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd's own controller with AUTH (PLAIN/LOGIN) required for user `am`, password `pw`;
/// the `python3 -m aiosmtpd` command line has no way to configure an authenticator.
const SMTP_AUTH_SERVER: &str = r#"
import sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult
def check(server, session, envelope, mechanism, data):
    return AuthResult(success=(data.login == b"am" and data.password == b"pw"))
c = Controller(Mailbox(sys.argv[2]), hostname="127.0.0.1", port=int(sys.argv[1]),
               authenticator=check, auth_required=True, auth_require_tls=False)
c.start()
while True:
    time.sleep(3600)
"#;

fn start_smtp(dir: &Path, tls: Option<(&Path, &Path)>) -> Smtp {
    spawn_smtp(dir, |cmd, port, maildir| {
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        if let Some((cert, key)) = tls {
            cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        }
        cmd.args(["-c", "aiosmtpd.handlers.Mailbox"]).arg(maildir);
    })
}

fn start_smtp_auth(dir: &Path) -> Smtp {
    spawn_smtp(dir, |cmd, port, maildir| {
        cmd.args(["-c", SMTP_AUTH_SERVER, &port.to_string()])
            .arg(maildir);
    })
}

fn spawn_smtp(dir: &Path, args: impl FnOnce(&mut Command, u16, &Path)) -> Smtp {
    let maildir = dir.join("maildir");
    let port = free_port();
    let mut cmd = Command::new("python3");
    args(&mut cmd, port, &maildir);
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let smtp = Smtp {
        child,
        port,
        maildir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "aiosmtpd did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    smtp
}

fn received(maildir: &Path, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut out: Vec<String> = std::fs::read_dir(maildir.join("new"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        if out.len() >= want || Instant::now() > deadline {
            out.sort();
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Undoes quoted-printable soft line breaks and `=XX` escapes enough to search the body.
fn unqp(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn email_plain_smtp_via_aiosmtpd() {
    if !have_aiosmtpd() {
        assert!(
            !require_peers(),
            "aiosmtpd is required (SEXTANT_REQUIRE_PEERS=1)"
        );
        eprintln!("skipping email_plain_smtp_via_aiosmtpd: python3 -m aiosmtpd not available");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let smtp = start_smtp(dir.path(), None);
    let r = one(json!({"name": "oncall", "email_configs": [{
        "to": "ops@example.org, lead@example.org", "from": "Sextant <sextant@example.org>",
        "smarthost": format!("127.0.0.1:{}", smtp.port), "require_tls": false, "hello": "sextant.test",
        "headers": {"X-Sextant-Receiver": "{{ .Receiver }}"},
        "text": "{{ template \"email.default.text\" . }}"
    }]}));
    assert_eq!(r.integration(), "email");
    r.notify(&notification("firing")).await.unwrap();
    let msgs = received(&smtp.maildir, 1);
    assert_eq!(msgs.len(), 1, "one message for two recipients");
    let m = &msgs[0];
    assert!(m.contains("Subject: [FIRING:2] HostDown (P0)"), "{m}");
    assert!(m.contains("From: Sextant <sextant@example.org>"), "{m}");
    assert!(m.contains("To: ops@example.org, lead@example.org"), "{m}");
    assert!(m.contains("X-Sextant-Receiver: oncall"), "{m}");
    assert!(
        m.contains("X-RcptTo: ops@example.org, lead@example.org"),
        "envelope recipients: {m}"
    );
    assert!(m.contains("X-MailFrom: sextant@example.org"), "{m}");
    assert!(m.contains("multipart/alternative"), "{m}");
    let body = unqp(m);
    assert!(
        body.contains("Alerts Firing:") && body.contains(" - instance = a:9100"),
        "text part: {body}"
    );
    assert!(
        body.contains("<title>[FIRING:2] HostDown (P0)</title>"),
        "html part: {body}"
    );
    assert!(
        body.contains("summary = host &lt;down&gt;"),
        "html part escapes alert data: {body}"
    );

    // require_tls (the default) against a server without STARTTLS fails, not retried forever.
    let r = one(
        json!({"name": "x", "email_configs": [{"to": "a@example.org", "from": "s@example.org", "smarthost": format!("127.0.0.1:{}", smtp.port)}]}),
    );
    let e = r.notify(&notification("firing")).await.unwrap_err();
    assert!(e.msg.contains("127.0.0.1"), "{e}");
    // The error came back after the session ended, so the maildir is final.
    assert_eq!(
        received(&smtp.maildir, 1).len(),
        1,
        "nothing sent without TLS"
    );
}

/// A test CA and a server certificate for localhost/127.0.0.1 signed by it.
fn make_certs(dir: &Path) -> bool {
    let ossl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=Sextant Test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]) && ossl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
    ]) && ossl(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ])
}

#[tokio::test]
async fn email_starttls_via_aiosmtpd() {
    if !have_aiosmtpd() {
        assert!(
            !require_peers(),
            "aiosmtpd is required (SEXTANT_REQUIRE_PEERS=1)"
        );
        eprintln!("skipping email_starttls_via_aiosmtpd: python3 -m aiosmtpd not available");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    if !make_certs(dir.path()) {
        assert!(
            !require_peers(),
            "openssl is required (SEXTANT_REQUIRE_PEERS=1)"
        );
        eprintln!("skipping email_starttls_via_aiosmtpd: openssl not available");
        return;
    }
    let smtp = start_smtp(dir.path(), Some((&cert, &key)));
    // Verified against the self-signed certificate as CA.
    let r = one(json!({"name": "oncall", "email_configs": [{
        "to": "ops@example.org", "from": "sextant@example.org",
        "smarthost": format!("localhost:{}", smtp.port), "tls_config": {"ca_file": ca}
    }]}));
    r.notify(&notification("resolved")).await.unwrap();
    // And with verification off.
    let r = one(json!({"name": "oncall", "email_configs": [{
        "to": "ops@example.org", "from": "sextant@example.org", "send_resolved": true,
        "smarthost": format!("127.0.0.1:{}", smtp.port), "tls_config": {"insecure_skip_verify": true}
    }]}));
    assert!(r.send_resolved());
    r.notify(&notification("firing")).await.unwrap();
    let msgs = received(&smtp.maildir, 2);
    assert_eq!(msgs.len(), 2);
    assert!(
        msgs.iter()
            .any(|m| m.contains("Subject: [RESOLVED] HostDown (P0)")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("Subject: [FIRING:2] HostDown (P0)")),
        "{msgs:?}"
    );
    // An untrusted certificate is refused.
    let r = one(
        json!({"name": "x", "email_configs": [{"to": "a@example.org", "from": "s@example.org", "smarthost": format!("localhost:{}", smtp.port)}]}),
    );
    let e = r.notify(&notification("firing")).await.unwrap_err();
    assert!(
        e.msg.to_lowercase().contains("certificate") || e.msg.contains("tls"),
        "{e}"
    );
}

#[tokio::test]
async fn email_smtp_auth_via_aiosmtpd() {
    if !have_aiosmtpd() {
        assert!(
            !require_peers(),
            "aiosmtpd is required (SEXTANT_REQUIRE_PEERS=1)"
        );
        eprintln!("skipping email_smtp_auth_via_aiosmtpd: python3 -m aiosmtpd not available");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let smtp = start_smtp_auth(dir.path());
    let pw = dir.path().join("smtp-password");
    std::fs::write(&pw, "pw\n").unwrap();
    let r = one(json!({"name": "oncall", "email_configs": [{
        "to": "ops@example.org", "from": "sextant@example.org", "require_tls": false,
        "smarthost": format!("127.0.0.1:{}", smtp.port),
        "auth_username": "am", "auth_password_file": pw
    }]}));
    r.notify(&notification("firing")).await.unwrap();
    assert_eq!(received(&smtp.maildir, 1).len(), 1);
    // No credentials at all against a server that requires AUTH: refused, nothing delivered.
    let r = one(json!({"name": "oncall", "email_configs": [{
        "to": "ops@example.org", "from": "sextant@example.org", "require_tls": false,
        "smarthost": format!("127.0.0.1:{}", smtp.port)
    }]}));
    assert!(r.notify(&notification("firing")).await.is_err());
    assert_eq!(received(&smtp.maildir, 1).len(), 1);
}
