//! The dashboards API through the router: every endpoint of the contract, with good and bad input.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sextant_dashboards::{Dashboards, Store};
use sextant_tsdb::db::{Db, DbOptions};
use tower::ServiceExt;

use crate::{router, AppState, BuildInfo, WriteLimits};

struct T {
    dir: tempfile::TempDir,
    state: Arc<AppState>,
}

fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(&dir.path().join("data"), DbOptions::default()).unwrap());
    let state = AppState::new(
        db,
        WriteLimits::default(),
        BuildInfo {
            version: "0".into(),
            revision: "t".into(),
        },
    );
    let files = dir.path().join("dash");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(
        files.join("mine.yml"),
        "title: Mine\ntags: [a]\npanels:\n  - title: Up\n    targets: [{expr: up}]\n",
    )
    .unwrap();
    let d = Dashboards::new(
        Store::open(&dir.path().join("dashboards.db")).unwrap(),
        Some(files),
        true,
    )
    .unwrap();
    state.set_dashboards(Arc::new(d));
    T { dir, state }
}

async fn call(t: &T, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, String) {
    let req = Request::builder().method(method).uri(uri);
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = router(t.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).to_string())
}

async fn json_call(t: &T, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let (s, b) = call(t, method, uri, body).await;
    (
        s,
        serde_json::from_str(&b).unwrap_or_else(|e| panic!("{e}: {b}")),
    )
}

#[tokio::test]
async fn list_get_create_save_delete_versions_export() {
    let t = setup();
    let (s, v) = json_call(&t, "GET", "/api/sextant/dashboards", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "success");
    let list = v["data"].as_array().unwrap();
    let uids: Vec<&str> = list.iter().map(|d| d["uid"].as_str().unwrap()).collect();
    for u in ["host", "sextant", "alerts", "targets", "mine"] {
        assert!(uids.contains(&u), "{uids:?}");
    }
    let mine = list.iter().find(|d| d["uid"] == "mine").unwrap();
    assert_eq!(mine["source"], "file");
    assert_eq!(mine["tags"], json!(["a"]));
    assert_eq!(mine["version"], 0);
    assert!(mine["path"].as_str().unwrap().ends_with("mine.yml"));
    let host = list.iter().find(|d| d["uid"] == "host").unwrap();
    assert_eq!(
        (host["source"].as_str(), host["path"].as_str()),
        (Some("builtin"), Some("dashboards/host.yml"))
    );

    // Get one: dashboard + meta.
    let (s, v) = json_call(&t, "GET", "/api/sextant/dashboards/mine", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["dashboard"]["title"], "Mine");
    assert_eq!(
        v["data"]["dashboard"]["panels"][0]["grid"],
        json!({"x": 0, "y": 0, "w": 12, "h": 8})
    );
    assert_eq!(
        v["data"]["meta"],
        json!({"source": "file", "path": mine["path"], "version": 0, "updated": mine["updated"], "provisioned": true})
    );
    let (s, v) = json_call(&t, "GET", "/api/sextant/dashboards/nope", None).await;
    assert_eq!(
        (s, v["status"].as_str(), v["errorType"].as_str()),
        (StatusCode::NOT_FOUND, Some("error"), Some("not_found"))
    );

    // Create: 409 on an existing uid, 400 naming the field on invalid input.
    let new = json!({"uid": "new", "title": "New", "panels": [{"type": "stat", "title": "S", "targets": [{"expr": "up"}]}]});
    let (s, v) = json_call(
        &t,
        "POST",
        "/api/sextant/dashboards",
        Some(json!({"dashboard": new, "message": "first"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"], json!({"uid": "new", "version": 1}));
    let (s, _) = json_call(
        &t,
        "POST",
        "/api/sextant/dashboards",
        Some(json!({"dashboard": new})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = json_call(
        &t,
        "POST",
        "/api/sextant/dashboards",
        Some(json!({"dashboard": {"uid": "host", "title": "x"}})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "a built-in's uid is taken");
    let (s, v) = json_call(&t, "POST", "/api/sextant/dashboards", Some(json!({"dashboard": {"title": "x", "panels": [{"grid": {"x": 20, "y": 0, "w": 8, "h": 2}}]}}))).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_data"))
    );
    assert_eq!(
        v["error"],
        "panels[0].grid.x: x + w = 28 is beyond the 24 columns"
    );
    let (s, v) = json_call(
        &t,
        "POST",
        "/api/sextant/dashboards",
        Some(json!({"dashboard": {"title": "x", "panels": [{"colour": "red"}]}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{v}"
    );
    let (s, _) = call(&t, "POST", "/api/sextant/dashboards", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Without a uid, one is made from the title.
    let (s, v) = json_call(
        &t,
        "POST",
        "/api/sextant/dashboards",
        Some(json!({"dashboard": {"title": "No uid here"}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["data"]["uid"]
        .as_str()
        .unwrap()
        .starts_with("no-uid-here-"));

    // Save a provisioned dashboard: version 0 → 1, then a stale version conflicts.
    let mut edited = json!({"uid": "mine", "title": "Mine, edited"});
    let (s, v) = json_call(
        &t,
        "PUT",
        "/api/sextant/dashboards/mine",
        Some(json!({"dashboard": edited, "message": "edit", "version": 0})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["version"], 1);
    let (s, v) = json_call(
        &t,
        "PUT",
        "/api/sextant/dashboards/mine",
        Some(json!({"dashboard": edited, "version": 0})),
    )
    .await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (s, _) = json_call(
        &t,
        "PUT",
        "/api/sextant/dashboards/mine",
        Some(json!({"dashboard": edited})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "version is required");
    let (s, _) = json_call(
        &t,
        "PUT",
        "/api/sextant/dashboards/other",
        Some(json!({"dashboard": edited, "version": 0})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "uid mismatch");
    let (s, _) = json_call(
        &t,
        "PUT",
        "/api/sextant/dashboards/ghost",
        Some(json!({"dashboard": {"title": "g"}, "version": 0})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    edited["title"] = json!("Mine, twice");
    let (s, v) = json_call(
        &t,
        "PUT",
        "/api/sextant/dashboards/mine",
        Some(json!({"dashboard": edited, "message": "again", "version": 1})),
    )
    .await;
    assert_eq!(
        (s, v["data"]["version"].as_i64()),
        (StatusCode::OK, Some(2))
    );
    let (_, v) = json_call(&t, "GET", "/api/sextant/dashboards/mine", None).await;
    assert_eq!(v["data"]["meta"]["source"], "db");
    assert_eq!(v["data"]["meta"]["version"], 2);
    assert_eq!(v["data"]["meta"]["provisioned"], true);
    assert!(v["data"]["meta"]["updated"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    // History.
    let (_, v) = json_call(&t, "GET", "/api/sextant/dashboards/mine/versions", None).await;
    let hist: Vec<(i64, &str)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["version"].as_i64().unwrap(),
                h["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(hist, vec![(2, "again"), (1, "edit")]);
    let (_, v) = json_call(&t, "GET", "/api/sextant/dashboards/mine/versions/1", None).await;
    assert_eq!(v["data"]["dashboard"]["title"], "Mine, edited");
    let (s, _) = json_call(&t, "GET", "/api/sextant/dashboards/mine/versions/9", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = json_call(&t, "GET", "/api/sextant/dashboards/mine/versions/x", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Export YAML and JSON; both read back as the same dashboard.
    let (s, y) = call(
        &t,
        "GET",
        "/api/sextant/dashboards/mine/export?format=yaml",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(y.contains("title: Mine, twice"), "{y}");
    let back = sextant_dashboards::parse(&y, "mine.yml", sextant_dashboards::Format::Yaml).unwrap();
    let (_, j) = call(
        &t,
        "GET",
        "/api/sextant/dashboards/mine/export?format=json",
        None,
    )
    .await;
    assert_eq!(
        sextant_dashboards::parse(&j, "mine.json", sextant_dashboards::Format::Json).unwrap(),
        back
    );
    let (s, _) = call(
        &t,
        "GET",
        "/api/sextant/dashboards/mine/export?format=xml",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Delete: the db copy goes, the file comes back; files cannot be deleted.
    let (s, v) = json_call(&t, "DELETE", "/api/sextant/dashboards/mine", None).await;
    assert_eq!(
        (s, v["data"]["reverted_to"].as_str()),
        (StatusCode::OK, Some("file"))
    );
    let (_, v) = json_call(&t, "GET", "/api/sextant/dashboards/mine", None).await;
    assert_eq!(v["data"]["dashboard"]["title"], "Mine");
    let (s, _) = json_call(&t, "DELETE", "/api/sextant/dashboards/mine", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = json_call(&t, "DELETE", "/api/sextant/dashboards/new", None).await;
    assert_eq!(
        (s, v["data"]["reverted_to"].clone()),
        (StatusCode::OK, Value::Null)
    );
    let (s, _) = json_call(&t, "DELETE", "/api/sextant/dashboards/new", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    drop(t.dir);
}

#[tokio::test]
async fn import_converts_and_optionally_saves() {
    let t = setup();
    let grafana = json!([
        {"dashboard": {"title": "Imported one", "uid": "imp1", "panels": [
            {"id": 1, "type": "graph", "title": "G", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8}, "targets": [{"expr": "rate(x[$__rate_interval])", "legendFormat": "{{job}}"}]},
            {"id": 2, "type": "worldmap", "title": "W", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 8}}
        ]}, "meta": {}},
        {"title": "Imported two", "rows": [{"panels": [{"type": "singlestat", "title": "S", "span": 6, "targets": [{"expr": "up"}]}]}]}
    ]);
    let (s, v) = json_call(
        &t,
        "POST",
        "/api/sextant/dashboards/import",
        Some(grafana.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["dashboard"]["uid"], "imp1");
    assert_eq!(data[0]["dashboard"]["panels"].as_array().unwrap().len(), 1);
    assert_eq!(
        data[0]["dashboard"]["panels"][0]["targets"][0]["legend"],
        "{{job}}"
    );
    assert_eq!(
        data[0]["report"],
        json!([{"panel_id": 2, "title": "W", "type": "worldmap", "problems": ["panel type \"worldmap\" is not supported; panel dropped"]}])
    );
    assert_eq!(data[0]["saved_uid"], Value::Null);
    assert_eq!(data[1]["dashboard"]["panels"][0]["type"], "stat");
    let (s, _) = json_call(&t, "GET", "/api/sextant/dashboards/imp1", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not saved without save=true");
    let (s, v) = json_call(
        &t,
        "POST",
        "/api/sextant/dashboards/import?save=true",
        Some(grafana.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"][0]["saved_uid"], "imp1");
    assert_eq!(v["data"][1]["saved_uid"], "imported-two");
    let (_, v) = json_call(&t, "GET", "/api/sextant/dashboards/imported-two", None).await;
    assert_eq!(v["data"]["meta"]["source"], "db");
    // Importing again stores a new version.
    json_call(
        &t,
        "POST",
        "/api/sextant/dashboards/import?save=true",
        Some(grafana),
    )
    .await;
    let (_, v) = json_call(&t, "GET", "/api/sextant/dashboards/imp1", None).await;
    assert_eq!(v["data"]["meta"]["version"], 2);
    // Bad input: 400 in the API's error shape.
    for body in ["", "not json", "{\"nothing\": 1}", "[]"] {
        let req = Request::builder()
            .method("POST")
            .uri("/api/sextant/dashboards/import")
            .body(Body::from(body))
            .unwrap();
        let resp = router(t.state.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let (s, _) = json_call(
        &t,
        "POST",
        "/api/sextant/dashboards/import?save=maybe",
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn notifications_and_receivers_without_and_with_an_alert_manager() {
    let t = setup();
    let (s, v) = json_call(&t, "GET", "/api/sextant/notifications", None).await;
    assert_eq!((s, v["data"].clone()), (StatusCode::OK, json!([])));
    let (s, _) = json_call(&t, "GET", "/api/sextant/notifications?limit=x", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let cfg = sextant_alert::parse_config("route:\n  receiver: team\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: http://127.0.0.1:9/hook\n", "am.yml").unwrap();
    struct Hook;
    impl sextant_alert::Receiver for Hook {
        fn integration(&self) -> &'static str {
            "webhook"
        }
        fn send_resolved(&self) -> bool {
            true
        }
        fn notify<'a>(
            &'a self,
            _n: &'a sextant_alert::Notification,
        ) -> sextant_alert::BoxFuture<'a, Result<(), sextant_alert::NotifyError>> {
            Box::pin(async { Ok(()) })
        }
    }
    let builder: sextant_alert::IntegrationBuilder = Arc::new(|_r, _g| {
        let h: Arc<dyn sextant_alert::Receiver> = Arc::new(Hook);
        Ok(vec![h])
    });
    let am = sextant_alert::AlertManager::new(
        cfg,
        sextant_alert::Store::in_memory().unwrap(),
        builder,
        sextant_alert::Options::default(),
        0,
    )
    .unwrap();
    t.state.set_alertmanager(am);
    let (s, v) = json_call(&t, "GET", "/api/sextant/receivers", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["data"],
        json!([{"receiver": "team", "integration": "webhook", "attempts": 0, "failures": 0, "last_attempt": null, "last_success": null, "last_error_time": null, "last_error": null, "healthy": true}])
    );
    let (_, v) = json_call(&t, "GET", "/api/sextant/notifications?limit=5", None).await;
    assert_eq!(v["data"], json!([]));
}

#[tokio::test]
async fn without_dashboards_the_api_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), DbOptions::default()).unwrap());
    let state = AppState::new(
        db,
        WriteLimits::default(),
        BuildInfo {
            version: "0".into(),
            revision: "t".into(),
        },
    );
    let resp = router(state)
        .oneshot(
            Request::builder()
                .uri("/api/sextant/dashboards")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
}
