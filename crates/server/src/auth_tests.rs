//! The scope table against the real router: every registered route has an entry for every
//! method it answers, and without credentials every non-open route answers 401.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use sextant_tsdb::db::{Db, DbOptions};
use tower::ServiceExt;

use super::*;
use crate::{router, AppState, BuildInfo, WriteLimits};

const ADMIN_TOKEN: &str = "admin-token-for-tests";
const WRITE_TOKEN: &str = "write-token-for-tests";
const READ_TOKEN: &str = "read-token-for-tests";

fn state(dir: &std::path::Path) -> Arc<AppState> {
    let db = Arc::new(Db::open(dir, DbOptions::default()).expect("open db"));
    let st = AppState::new(
        db,
        WriteLimits::default(),
        BuildInfo {
            version: "0.1.0".into(),
            revision: "test".into(),
        },
    );
    let tok = |name: &str, t: &str, s: Scope| TokenConfig {
        name: name.into(),
        hash: hash_token(t),
        scopes: vec![s],
    };
    let cfg = AuthConfig {
        tokens: vec![
            tok("admin", ADMIN_TOKEN, Scope::Admin),
            tok("writer", WRITE_TOKEN, Scope::Write),
            tok("reader", READ_TOKEN, Scope::Read),
        ],
        ..Default::default()
    };
    st.set_auth(Arc::new(
        Auth::new(&cfg, CorsConfig::default()).expect("auth"),
    ));
    st
}

/// Route templates registered in lib.rs and ui.rs (parsed from the source, so a new route
/// shows up here without anyone remembering to list it).
fn templates() -> Vec<String> {
    let re = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).expect("regex");
    let mut out: Vec<String> = [include_str!("lib.rs"), include_str!("ui.rs")]
        .iter()
        .flat_map(|src| re.captures_iter(src).map(|c| c[1].to_string()))
        .collect();
    for a in crate::ui::ASSETS {
        if a.path != "index.html" && !a.path.contains('/') {
            out.push(format!("/{}", a.path));
        }
    }
    out.sort();
    out.dedup();
    assert!(out.len() > 50, "found only {} routes: {out:?}", out.len());
    out
}

/// A concrete path the template matches.
fn concrete(t: &str) -> String {
    let re = regex::Regex::new(r"\{\*?([a-z]+)\}").expect("regex");
    re.replace_all(t, "x").into_owned()
}

async fn status(
    st: &Arc<AppState>,
    method: &Method,
    path: &str,
    token: Option<&str>,
) -> StatusCode {
    answer(st, method, path, token).await.0
}

/// Status and whether the answer carries the middleware's challenge.
async fn answer(
    st: &Arc<AppState>,
    method: &Method,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, bool) {
    let mut req = Request::builder().method(method.clone()).uri(path);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = router(st.clone())
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let s = resp.status();
    let challenge = resp.headers().contains_key("www-authenticate");
    let _ = resp.into_body().collect().await;
    (s, challenge)
}

#[tokio::test]
async fn every_route_has_a_scope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let st = state(dir.path());
    let methods = [Method::GET, Method::POST, Method::PUT, Method::DELETE];
    let mut missing = Vec::new();
    let mut checked = 0;
    for t in templates() {
        let path = concrete(&t);
        for m in &methods {
            // With an admin token the route's own answer comes back: 405 means the route does
            // not take this method, anything else means it does and must be in the table.
            let s = status(&st, m, &path, Some(ADMIN_TOKEN)).await;
            if s == StatusCode::METHOD_NOT_ALLOWED {
                continue;
            }
            checked += 1;
            let Some(access) = required(&t, m) else {
                missing.push(format!("{m} {t}"));
                continue;
            };
            let (anon, challenge) = answer(&st, m, &path, None).await;
            match access {
                Access::Open => assert!(!challenge, "{m} {t} is open but asked for credentials"),
                Access::Scope(need) => {
                    assert_eq!(
                        anon,
                        StatusCode::UNAUTHORIZED,
                        "{m} {t} without credentials"
                    );
                    let bad = status(&st, m, &path, Some("wrong")).await;
                    assert_eq!(bad, StatusCode::UNAUTHORIZED, "{m} {t} with a wrong token");
                    for (tok, has) in [(READ_TOKEN, Scope::Read), (WRITE_TOKEN, Scope::Write)] {
                        let s = status(&st, m, &path, Some(tok)).await;
                        if has == need {
                            assert_ne!(s, StatusCode::FORBIDDEN, "{m} {t} with {has:?}");
                            assert_ne!(s, StatusCode::UNAUTHORIZED, "{m} {t} with {has:?}");
                        } else {
                            assert_eq!(s, StatusCode::FORBIDDEN, "{m} {t} with {has:?}");
                        }
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes without an entry in ROUTE_SCOPES: {missing:?}"
    );
    assert!(checked > 60, "only {checked} route/method pairs answered");
}

#[tokio::test]
async fn health_is_open_and_401_carries_a_challenge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let st = state(dir.path());
    assert_eq!(
        status(&st, &Method::GET, "/-/healthy", None).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&st, &Method::GET, "/-/ready", None).await,
        StatusCode::OK
    );
    let resp = router(st.clone())
        .oneshot(
            Request::get("/api/v1/labels")
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"sextant\""
    );
    // A browser asking for the UI is sent to the login page.
    let resp = router(st.clone())
        .oneshot(
            Request::get("/")
                .header("Accept", "text/html,*/*")
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login?next=%2F");
}
