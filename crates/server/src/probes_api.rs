//! `/api/sextant/probes`: the configured service probes and their last results, for the UI
//! and for scripts that want "what is failing and why" without reading series.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

/// `GET /api/sextant/probes`: `{"status":"success","data":[{job, instance, module, prober,
/// success, error, last_probe, duration_seconds, samples, …}]}`, sorted by job and instance.
pub async fn list(State(st): State<Arc<AppState>>) -> Response {
    let probes = st.probes.get().map(|m| m.statuses()).unwrap_or_default();
    let data: Vec<serde_json::Value> = probes
        .into_iter()
        .map(|p| {
            json!({
                "job": p.job,
                "instance": p.instance,
                "module": p.module,
                "prober": p.prober,
                "labels": p.labels,
                "interval_seconds": p.interval_seconds,
                "last_probe": p.last_probe_ms.map(sextant_model::time::format_rfc3339_ms),
                "success": p.success,
                "duration_seconds": p.duration_seconds,
                "error": p.error,
                "samples": p.samples,
            })
        })
        .collect();
    axum::Json(json!({"status": "success", "data": data})).into_response()
}
