//! The rule stage wired to the server: [`DbRuleStorage`] lets rules read the TSDB and write
//! their results through the same path as every other ingest; `/api/v1/rules` and
//! `/api/v1/alerts` answer in Prometheus' shapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sextant_ingest::remote_write::{SeriesSamples, WriteBatch};
use sextant_ingest::Sink;
use sextant_model::{HistogramValue, Labels, Sample};
use sextant_promql::Querier;
use sextant_rules::{Alert, Group, OutSample, RuleKind, RuleStorage};
use sextant_tsdb::db::Db;

use crate::params::Params;
use crate::query::TsdbSource;
use crate::write::DbSink;
use crate::AppState;

/// Rules read and write the local TSDB.
pub struct DbRuleStorage {
    db: Arc<Db>,
    sink: DbSink,
    /// Remote engines rules read besides (or instead of) local storage.
    remote: Option<Arc<sextant_remote::Engines>>,
}

impl DbRuleStorage {
    pub fn new(db: Arc<Db>) -> Self {
        DbRuleStorage {
            sink: DbSink(db.clone()),
            db,
            remote: None,
        }
    }

    /// Rules also (or only, see `Engines::local`) read these remote engines; their warnings are
    /// logged.
    pub fn with_remote(mut self, e: Option<Arc<sextant_remote::Engines>>) -> Self {
        self.remote = e.filter(|e| !e.is_local_only());
        self
    }
}

impl RuleStorage for DbRuleStorage {
    fn querier(&self) -> Box<dyn Querier + '_> {
        let local = Box::new(TsdbSource(self.db.querier()));
        match &self.remote {
            None => local,
            // Fanout logs each remote engine's warning when it occurs.
            Some(e) => Box::new(sextant_remote::Fanout::new(local, e)),
        }
    }

    fn append(&self, samples: &[OutSample]) -> Result<(), String> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut index: HashMap<&Labels, usize> = HashMap::new();
        let mut series: Vec<SeriesSamples> = Vec::new();
        for s in samples {
            let i = *index.entry(&s.labels).or_insert_with(|| {
                series.push(SeriesSamples {
                    labels: s.labels.clone(),
                    samples: Vec::new(),
                    histograms: Vec::new(),
                    exemplars: Vec::new(),
                });
                series.len() - 1
            });
            match &s.h {
                Some(h) => series[i]
                    .histograms
                    .push((s.t, HistogramValue::Float(h.clone()))),
                None => series[i].samples.push(Sample::new(s.t, s.v)),
            }
        }
        let stored = self
            .sink
            .store(WriteBatch {
                series,
                metadata: Vec::new(),
                rejected: Vec::new(),
            })
            .map_err(|e| e.to_string())?;
        match stored.first_problem {
            Some(p) => Err(format!("{} samples refused: {p}", stored.problems)),
            None => Ok(()),
        }
    }
}

fn labels_json(l: &Labels) -> Value {
    let mut m = Map::new();
    for x in l.iter() {
        m.insert(x.name.clone(), Value::String(x.value.clone()));
    }
    Value::Object(m)
}

fn pairs_json(p: &[(String, String)]) -> Value {
    let mut v: Vec<&(String, String)> = p.iter().collect();
    v.sort();
    let mut m = Map::new();
    for (k, val) in v {
        m.insert(k.clone(), Value::String(val.clone()));
    }
    Value::Object(m)
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: `1e+00`, `2.5e+01`.
pub fn go_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// Go's zero `time.Time` for never-evaluated rules, else RFC 3339 with fraction.
fn time_json(ms: i64) -> Value {
    if ms == 0 {
        return Value::String("0001-01-01T00:00:00Z".into());
    }
    Value::String(sextant_rules::template::go_rfc3339(ms))
}

fn alert_json(a: &Alert) -> Value {
    let mut m = Map::new();
    m.insert("labels".into(), labels_json(&a.labels));
    m.insert("annotations".into(), pairs_json(&a.annotations));
    m.insert("state".into(), a.state.as_str().into());
    m.insert("activeAt".into(), time_json(a.active_at));
    if a.keep_firing_since != 0 {
        m.insert("keepFiringSince".into(), time_json(a.keep_firing_since));
    }
    m.insert("value".into(), go_e(a.value).into());
    Value::Object(m)
}

struct Filter {
    kind: Option<RuleKind>,
    names: Vec<String>,
    groups: Vec<String>,
    files: Vec<String>,
    exclude_alerts: bool,
}

fn group_json(g: &Group, f: &Filter) -> Option<Value> {
    if !f.groups.is_empty() && !f.groups.contains(&g.name) {
        return None;
    }
    if !f.files.is_empty() && !f.files.contains(&g.file) {
        return None;
    }
    let mut rules = Vec::new();
    for r in &g.rules {
        if f.kind.is_some_and(|k| k != r.def.kind) {
            continue;
        }
        if !f.names.is_empty() && !f.names.contains(&r.def.name) {
            continue;
        }
        let mut m = Map::new();
        if r.def.kind == RuleKind::Alerting {
            m.insert("state".into(), r.state().as_str().into());
        }
        m.insert("name".into(), r.def.name.clone().into());
        m.insert("query".into(), r.def.expr.to_string().into());
        let labels = pairs_json(&r.def.labels);
        if r.def.kind == RuleKind::Alerting {
            m.insert("duration".into(), json!(r.def.hold as f64 / 1000.0));
            m.insert(
                "keepFiringFor".into(),
                json!(r.def.keep_firing_for as f64 / 1000.0),
            );
            m.insert("labels".into(), labels);
            m.insert("annotations".into(), pairs_json(&r.def.annotations));
            if !f.exclude_alerts {
                let alerts: Vec<Value> = r.active_alerts().into_iter().map(alert_json).collect();
                m.insert("alerts".into(), Value::Array(alerts));
            }
        } else if !r.def.labels.is_empty() {
            m.insert("labels".into(), labels);
        }
        m.insert("health".into(), r.health.as_str().into());
        if let Some(e) = &r.last_error {
            m.insert("lastError".into(), e.clone().into());
        }
        m.insert("evaluationTime".into(), json!(r.eval_seconds));
        m.insert("lastEvaluation".into(), time_json(r.last_eval));
        m.insert(
            "type".into(),
            if r.def.kind == RuleKind::Alerting {
                "alerting"
            } else {
                "recording"
            }
            .into(),
        );
        rules.push(Value::Object(m));
    }
    if rules.is_empty() && (f.kind.is_some() || !f.names.is_empty()) {
        return None;
    }
    Some(json!({
        "name": g.name,
        "file": g.file,
        "rules": rules,
        "interval": g.interval as f64 / 1000.0,
        "limit": g.limit,
        "evaluationTime": g.eval_seconds,
        "lastEvaluation": time_json(g.last_eval),
    }))
}

fn bad_data(msg: String) -> Response {
    crate::api::ApiError::bad_data(msg).into_response()
}

/// `GET /api/v1/rules`.
pub async fn rules(State(st): State<Arc<AppState>>, p: Params) -> Response {
    let kind = match p.get("type").unwrap_or("") {
        "" => None,
        "alert" => Some(RuleKind::Alerting),
        "record" => Some(RuleKind::Recording),
        other => return bad_data(format!("invalid rule type {other:?}")),
    };
    let f = Filter {
        kind,
        names: p
            .all("rule_name[]")
            .into_iter()
            .map(str::to_string)
            .collect(),
        groups: p
            .all("rule_group[]")
            .into_iter()
            .map(str::to_string)
            .collect(),
        files: p.all("file[]").into_iter().map(str::to_string).collect(),
        exclude_alerts: p.get("exclude_alerts") == Some("true"),
    };
    let groups: Vec<Value> = st
        .rules()
        .map(|m| m.groups())
        .unwrap_or_default()
        .iter()
        .filter_map(|g| group_json(&g.lock().unwrap_or_else(|e| e.into_inner()), &f))
        .collect();
    axum::Json(json!({"status": "success", "data": {"groups": groups}})).into_response()
}

/// `GET /api/v1/alerts`.
pub async fn alerts(State(st): State<Arc<AppState>>) -> Response {
    let mut out = Vec::new();
    for g in st.rules().map(|m| m.groups()).unwrap_or_default() {
        let g = g.lock().unwrap_or_else(|e| e.into_inner());
        for r in g.rules.iter().filter(|r| r.is_alerting()) {
            out.extend(r.active_alerts().into_iter().map(alert_json));
        }
    }
    axum::Json(json!({"status": "success", "data": {"alerts": out}})).into_response()
}

#[cfg(test)]
mod tests {
    use super::go_e;

    #[test]
    fn go_e_format() {
        assert_eq!(go_e(1.0), "1e+00");
        assert_eq!(go_e(25.0), "2.5e+01");
        assert_eq!(go_e(0.001), "1e-03");
        assert_eq!(go_e(0.0), "0e+00");
    }
}
