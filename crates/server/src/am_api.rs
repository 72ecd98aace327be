//! Alertmanager's v2 HTTP API over the built-in alert manager, with the JSON shapes of
//! Alertmanager's OpenAPI spec, so Prometheus (`alerting: alertmanagers:`) and `amtool` can use
//! Sextant as their Alertmanager: `/api/v2/alerts`, `/api/v2/alerts/groups`,
//! `/api/v2/silences`, `/api/v2/silence/{id}`, `/api/v2/status`, `/api/v2/receivers`.
//! Errors are JSON strings with status 400 (bad input) or 404, as Alertmanager sends them.

// Helpers return a ready `Response` as their error: it is the handler's answer, returned at once.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use sextant_alert::dispatch::{AlertView, ManagerError};
use sextant_alert::matchers::{fingerprint_hex, matches_labels, parse_matchers};
use sextant_alert::silence::SilenceError;
use sextant_alert::{Alert, AlertManager, Silence, SilenceMatcher};
use sextant_model::matcher::Matcher;
use sextant_model::time::{format_rfc3339_ms, now_ms, parse_timestamp_ms};

use crate::AppState;

fn reply(code: StatusCode, v: Value) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn bad(msg: impl Into<String>) -> Response {
    reply(StatusCode::BAD_REQUEST, Value::String(msg.into()))
}

fn manager(st: &AppState) -> Result<&Arc<AlertManager>, Response> {
    st.alertmanager().ok_or_else(|| {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            Value::String("the alert manager is not running".into()),
        )
    })
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<String>) -> Query {
        Query(
            q.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    fn flag(&self, k: &str) -> Result<bool, Response> {
        match self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()) {
            None => Ok(true),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(v) => Err(bad(format!("{k} in query must be of type boolean: {v:?}"))),
        }
    }

    fn filters(&self) -> Result<Vec<Matcher>, Response> {
        let mut out = Vec::new();
        for (_, v) in self.0.iter().filter(|(n, _)| n == "filter") {
            out.extend(parse_matchers(v).map_err(|e| bad(e.to_string()))?);
        }
        Ok(out)
    }

    fn receiver(&self) -> Result<Option<regex::Regex>, Response> {
        match self.0.iter().find(|(n, _)| n == "receiver") {
            None => Ok(None),
            Some((_, r)) => regex::Regex::new(&format!("^(?:{r})$"))
                .map(Some)
                .map_err(|e| bad(format!("failed to parse receiver param: {e}"))),
        }
    }
}

fn time_json(ms: i64) -> Value {
    Value::String(format_rfc3339_ms(ms))
}

fn alert_json(v: &AlertView) -> Value {
    let a = &v.alert;
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": time_json(a.starts_at),
        "endsAt": time_json(a.ends_at),
        "updatedAt": time_json(a.updated_at),
        "generatorURL": a.generator_url,
        "fingerprint": fingerprint_hex(v.fingerprint),
        "receivers": v.receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "status": {
            "state": v.state(),
            "silencedBy": v.silenced_by,
            "inhibitedBy": v.inhibited_by,
            "mutedBy": [],
        },
    })
}

struct AlertFilter {
    active: bool,
    silenced: bool,
    inhibited: bool,
    matchers: Vec<Matcher>,
    receiver: Option<regex::Regex>,
}

impl AlertFilter {
    fn from(q: &Query) -> Result<AlertFilter, Response> {
        // `unprocessed` is accepted; alerts are routed on arrival, so none is ever unprocessed.
        q.flag("unprocessed")?;
        Ok(AlertFilter {
            active: q.flag("active")?,
            silenced: q.flag("silenced")?,
            inhibited: q.flag("inhibited")?,
            matchers: q.filters()?,
            receiver: q.receiver()?,
        })
    }

    fn keep(&self, v: &AlertView) -> bool {
        if !self.active && v.state() == "active" {
            return false;
        }
        if !self.silenced && !v.silenced_by.is_empty() {
            return false;
        }
        if !self.inhibited && !v.inhibited_by.is_empty() {
            return false;
        }
        if let Some(re) = &self.receiver {
            if !v.receivers.iter().any(|r| re.is_match(r)) {
                return false;
            }
        }
        matches_labels(&self.matchers, &v.alert.labels)
    }
}

/// `GET /api/v2/alerts`
pub async fn get_alerts(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let am = match manager(&st) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let f = match AlertFilter::from(&Query::parse(q)) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let out: Vec<Value> = am
        .alerts(now_ms())
        .iter()
        .filter(|v| f.keep(v))
        .map(alert_json)
        .collect();
    reply(StatusCode::OK, Value::Array(out))
}

/// `GET /api/v2/alerts/groups`
pub async fn get_groups(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let am = match manager(&st) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let q = Query::parse(q);
    let f = match AlertFilter::from(&q) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let out: Vec<Value> = am
        .groups(now_ms())
        .into_iter()
        .filter(|g| {
            f.receiver
                .as_ref()
                .is_none_or(|re| re.is_match(&g.receiver))
        })
        .filter_map(|g| {
            let alerts: Vec<Value> = g
                .alerts
                .iter()
                .filter(|v| f.keep(v))
                .map(alert_json)
                .collect();
            (!alerts.is_empty()).then(
                || json!({"labels": g.labels, "receiver": {"name": g.receiver}, "alerts": alerts}),
            )
        })
        .collect();
    reply(StatusCode::OK, Value::Array(out))
}

/// Unknown fields are ignored, as by Alertmanager's API (clients newer than us may send more).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

/// An API time; empty or Go's zero time means "not given" (0).
fn parse_time(field: &str, s: &Option<String>) -> Result<i64, String> {
    match s.as_deref() {
        None | Some("") => Ok(0),
        Some(t) if t.starts_with("0001-01-01T00:00:00") => Ok(0),
        Some(t) => parse_timestamp_ms(t).map_err(|e| format!("{field}: {e}")),
    }
}

/// `POST /api/v2/alerts`
pub async fn post_alerts(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let am = match manager(&st) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let list: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(l) => l,
        Err(e) => return bad(format!("invalid alerts: {e}")),
    };
    let mut errs = Vec::new();
    let mut alerts = Vec::with_capacity(list.len());
    for (i, p) in list.into_iter().enumerate() {
        let t = parse_time("startsAt", &p.starts_at)
            .and_then(|s| parse_time("endsAt", &p.ends_at).map(|e| (s, e)));
        match t {
            Ok((s, e)) => alerts.push(Alert {
                labels: p.labels,
                annotations: p.annotations,
                starts_at: s,
                ends_at: e,
                updated_at: 0,
                timeout: false,
                generator_url: p.generator_url.unwrap_or_default(),
            }),
            Err(e) => errs.push(format!("alert {i}: {e}")),
        }
    }
    let am = am.clone();
    let res = tokio::task::spawn_blocking(move || am.put_alerts(alerts, now_ms())).await;
    match res {
        Ok(Ok(e)) => errs.extend(e),
        Ok(Err(e)) => {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                Value::String(e.to_string()),
            )
        }
        Err(e) => {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                Value::String(e.to_string()),
            )
        }
    }
    if !errs.is_empty() {
        return bad(errs.join("; "));
    }
    reply(StatusCode::OK, Value::Null)
}

fn silence_json(s: &Silence, now: i64) -> Value {
    json!({
        "id": s.id,
        "status": {"state": s.state(now).as_str()},
        "updatedAt": time_json(s.updated_at),
        "matchers": s.matchers,
        "startsAt": time_json(s.starts_at),
        "endsAt": time_json(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
    })
}

/// `GET /api/v2/silences`
pub async fn get_silences(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let am = match manager(&st) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let filters = match Query::parse(q).filters() {
        Ok(f) => f,
        Err(r) => return r,
    };
    let now = now_ms();
    let mut list: Vec<Silence> = am
        .silences()
        .into_iter()
        .filter(|s| {
            // Alertmanager: every filter matcher must equal one of the silence's matchers.
            filters.iter().all(|f| {
                s.matchers.iter().any(|m| {
                    let op = match (m.is_regex, m.is_equal) {
                        (false, true) => "=",
                        (false, false) => "!=",
                        (true, true) => "=~",
                        (true, false) => "!~",
                    };
                    m.name == f.name && m.value == f.value && op == f.op.as_str()
                })
            })
        })
        .collect();
    // Active first (ending soonest), then pending (starting soonest), then expired (latest).
    list.sort_by_key(|s| match s.state(now).as_str() {
        "active" => (0, s.ends_at),
        "pending" => (1, s.starts_at),
        _ => (2, -s.ends_at),
    });
    reply(
        StatusCode::OK,
        Value::Array(list.iter().map(|s| silence_json(s, now)).collect()),
    )
}

/// Unknown fields (e.g. `status` of a silence fetched and re-posted) are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<SilenceMatcher>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

fn silence_error(e: ManagerError) -> Response {
    match e {
        ManagerError::Silence(SilenceError::NotFound) => reply(
            StatusCode::NOT_FOUND,
            Value::String("silence not found".into()),
        ),
        ManagerError::Silence(e) => bad(e.to_string()),
        e => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            Value::String(e.to_string()),
        ),
    }
}

/// `POST /api/v2/silences`
pub async fn post_silences(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let am = match manager(&st) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let p: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad(format!("invalid silence: {e}")),
    };
    let (s, e) = match (
        parse_time("startsAt", &Some(p.starts_at)),
        parse_time("endsAt", &Some(p.ends_at)),
    ) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    if s >= e {
        return bad("failed to create silence: start time must be before end time");
    }
    let now = now_ms();
    if e < now {
        return bad("failed to create silence: end time can't be in the past");
    }
    let sil = Silence {
        id: p.id.unwrap_or_default(),
        matchers: p.matchers,
        starts_at: s,
        ends_at: e,
        updated_at: now,
        created_by: p.created_by,
        comment: p.comment,
    };
    let am = am.clone();
    match tokio::task::spawn_blocking(move || am.set_silence(sil, now)).await {
        Ok(Ok(id)) => reply(StatusCode::OK, json!({"silenceID": id})),
        Ok(Err(e @ ManagerError::Silence(SilenceError::TooMany { .. }))) => {
            st.limit_hits.hit(crate::limits::Limit::Silences);
            silence_error(e)
        }
        Ok(Err(e)) => silence_error(e),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            Value::String(e.to_string()),
        ),
    }
}

/// `GET /api/v2/silence/{id}`
pub async fn get_silence(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let am = match manager(&st) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match am.silence(&id) {
        Some(s) => reply(StatusCode::OK, silence_json(&s, now_ms())),
        None => reply(
            StatusCode::NOT_FOUND,
            Value::String("silence not found".into()),
        ),
    }
}

/// `DELETE /api/v2/silence/{id}`
pub async fn delete_silence(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let am = match manager(&st) {
        Ok(m) => m.clone(),
        Err(r) => return r,
    };
    match tokio::task::spawn_blocking(move || am.expire_silence(&id, now_ms())).await {
        Ok(Ok(())) => reply(StatusCode::OK, Value::Null),
        Ok(Err(e)) => silence_error(e),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            Value::String(e.to_string()),
        ),
    }
}

/// `GET /api/v2/status`
pub async fn status(State(st): State<Arc<AppState>>) -> Response {
    let am = match manager(&st) {
        Ok(m) => m,
        Err(r) => return r,
    };
    reply(
        StatusCode::OK,
        json!({
            "cluster": {"status": "disabled", "peers": []},
            "config": {"original": crate::redact::redact_yaml(&am.config().original)},
            "uptime": time_json(am.started_ms()),
            "versionInfo": {
                "version": st.build.version,
                "revision": st.build.revision,
                "branch": "",
                "buildUser": "",
                "buildDate": "",
                "goVersion": "",
            },
        }),
    )
}

/// `GET /api/v2/receivers`
pub async fn receivers(State(st): State<Arc<AppState>>) -> Response {
    let am = match manager(&st) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let v: Vec<Value> = am
        .receiver_names()
        .into_iter()
        .map(|n| json!({"name": n}))
        .collect();
    reply(StatusCode::OK, Value::Array(v))
}
