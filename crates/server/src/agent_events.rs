//! `POST /api/v1/agent/events`: agent run events (JSON, a JSON array, `{"events": [...]}` or
//! JSON Lines) validated against the published schema and counted by
//! [`sextant_ingest::events::AgentEvents`]; `GET /api/v1/agent/events/schema` serves that
//! schema. Answers use the Prometheus API envelope: `{"status":"success","data":{...}}`, or
//! `{"status":"error","errorType":"bad_data","error":...,"pointer":...}` with 400 naming the
//! field as a JSON pointer (and the line of a JSON Lines body).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sextant_ingest::events::{parse_events, EventsError, SCHEMA_JSON};

use crate::AppState;

fn error(status: StatusCode, kind: &str, msg: String, extra: serde_json::Value) -> Response {
    let mut body = json!({"status": "error", "errorType": kind, "error": msg});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    crate::limits::tag_response((status, axum::Json(body)).into_response(), &msg)
}

/// `GET /api/v1/agent/events/schema`: the JSON Schema of request bodies.
pub async fn schema() -> Response {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        SCHEMA_JSON,
    )
        .into_response()
}

/// `POST /api/v1/agent/events`.
pub async fn post(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ndjson = match ct.as_str() {
        // curl -d sends application/x-www-form-urlencoded unless told otherwise: the body is
        // JSON all the same.
        "" | "application/json" | "application/x-www-form-urlencoded" => false,
        "application/x-ndjson"
        | "application/jsonl"
        | "application/json-lines"
        | "application/jsonlines" => true,
        other => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_data",
                format!(
                "unsupported Content-Type {other:?}: use application/json or application/x-ndjson"
            ),
                json!({}),
            )
        }
    };
    let enc = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Ok(Ok(_permit)) =
        tokio::time::timeout(st.limits.queue_wait, st.write_slots.acquire()).await
    else {
        st.limit_hits.hit(crate::limits::Limit::WriteConcurrency);
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "unavailable",
            format!(
                "too many concurrent write requests (limit write_concurrency: {}); retry later",
                st.limits.max_concurrent
            ),
            json!({}),
        );
    };
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || {
        let body = match sextant_ingest::push::decode_content_encoding(
            enc.as_deref(),
            &body,
            st2.limits.max_decoded,
        ) {
            Ok(b) => b,
            Err(e) => {
                let msg = e.to_string();
                let status = if st2.limit_hits.hit_tagged(&msg) {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else if matches!(e, sextant_ingest::push::PushError::Encoding(_)) {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                } else {
                    StatusCode::BAD_REQUEST
                };
                return error(status, "bad_data", msg, json!({}));
            }
        };
        let events = match parse_events(&body, ndjson, sextant_model::time::now_ms()) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "agent events refused");
                st2.agent_events().note_rejected(1);
                let mut extra = json!({"pointer": e.pointer});
                if let Some(l) = e.line {
                    extra["line"] = json!(l);
                }
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_data",
                    format!("invalid agent event: {e}"),
                    extra,
                );
            }
        };
        // Each event becomes a handful of samples: the per-request samples limit counts events.
        if let Err((l, msg)) = st2.runtime_limits.check(0, events.len()) {
            st2.limit_hits.hit(l);
            return error(StatusCode::BAD_REQUEST, "bad_data", msg, json!({}));
        }
        match st2.agent_events().ingest(&events) {
            Ok(out) => axum::Json(json!({"status": "success", "data": out})).into_response(),
            Err(e @ EventsError::Limit(_)) => error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                e.to_string(),
                json!({}),
            ),
            Err(e @ EventsError::Storage(_)) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
                json!({}),
            ),
        }
    })
    .await;
    res.unwrap_or_else(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("agent events failed: {e}"),
            json!({}),
        )
    })
}

/// Re-writes agent event series and saves their state every second (see
/// [`sextant_ingest::events::AgentEvents::tick`]).
pub fn start_agent_events_maintenance(st: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let st = st.clone();
            let _ = tokio::task::spawn_blocking(move || st.agent_events().tick()).await;
        }
    })
}
