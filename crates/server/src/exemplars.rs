//! `GET/POST /api/v1/query_exemplars`: the exemplars of every series a PromQL expression
//! selects, in Prometheus' JSON shape, so Grafana's "exemplars" toggle works against Sextant.
//!
//! Like Prometheus, the expression is only parsed, not evaluated: each vector or matrix selector
//! in it picks series, and the exemplars stored for them in `[start, end]` are returned,
//! grouped by series. Bad parameters are `bad_data` errors.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use sextant_promql::ast::Expr;
use sextant_tsdb::exemplar::SeriesExemplars;

use crate::api::ApiError;
use crate::params::Params;
use crate::query::{push_labels, push_ts, push_value};
use crate::AppState;

/// The matcher lists of every selector in `expr`, like Prometheus' `parser.ExtractSelectors`.
fn selectors(expr: &Expr) -> Vec<Vec<sextant_model::Matcher>> {
    let mut out = Vec::new();
    expr.walk(&mut |e| match e {
        Expr::Vector(vs) => out.push(vs.matchers.clone()),
        Expr::Matrix(ms) => out.push(ms.vs.matchers.clone()),
        _ => {}
    });
    out
}

/// `{"status":"success","data":[{"seriesLabels":{…},"exemplars":[{"labels":{…},"value":"…","timestamp":…}]}]}`;
/// `data` is `null` when the expression has no selector, as in Prometheus.
pub(crate) fn exemplars_json(res: Option<&[SeriesExemplars]>) -> String {
    let mut o = String::from("{\"status\":\"success\",\"data\":");
    let Some(res) = res else {
        o.push_str("null}");
        return o;
    };
    o.push('[');
    for (i, s) in res.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"seriesLabels\":");
        push_labels(&mut o, &s.series);
        o.push_str(",\"exemplars\":[");
        for (j, e) in s.exemplars.iter().enumerate() {
            if j > 0 {
                o.push(',');
            }
            o.push_str("{\"labels\":");
            push_labels(&mut o, &e.labels);
            o.push_str(",\"value\":");
            push_value(&mut o, e.value);
            o.push_str(",\"timestamp\":");
            push_ts(&mut o, e.ts);
            o.push('}');
        }
        o.push_str("]}");
    }
    o.push_str("]}");
    o
}

pub async fn query_exemplars(State(st): State<Arc<AppState>>, p: Params) -> Response {
    let r = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let start = p.time("start", i64::MIN)?;
        let end = p.time("end", i64::MAX)?;
        if end < start {
            return Err(ApiError::bad_data(
                "end timestamp must not be before start timestamp",
            ));
        }
        let q = p.get("query").unwrap_or_default();
        let expr = sextant_promql::parse(q).map_err(|e| ApiError::bad_data(e.to_string()))?;
        let sets = selectors(&expr);
        if sets.is_empty() {
            return Ok(exemplars_json(None));
        }
        Ok(exemplars_json(Some(
            &st.db.select_exemplars(start, end, &sets),
        )))
    })
    .await;
    match r {
        Ok(Ok(body)) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(format!("handler failed: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::{Exemplar, Labels};

    #[test]
    fn json_shape_is_prometheus() {
        let res = vec![SeriesExemplars {
            series: Labels::from_pairs([("__name__", "rpc_total"), ("job", "a")]),
            exemplars: vec![Exemplar {
                labels: Labels::from_pairs([("trace_id", "abc")]),
                value: 6.0,
                ts: 1600096945479,
            }],
        }];
        assert_eq!(
            exemplars_json(Some(&res)),
            r#"{"status":"success","data":[{"seriesLabels":{"__name__":"rpc_total","job":"a"},"exemplars":[{"labels":{"trace_id":"abc"},"value":"6","timestamp":1600096945.479}]}]}"#
        );
        assert_eq!(
            exemplars_json(Some(&[])),
            r#"{"status":"success","data":[]}"#
        );
        assert_eq!(exemplars_json(None), r#"{"status":"success","data":null}"#);
    }

    #[test]
    fn selectors_of_an_expression() {
        let e = sextant_promql::parse(r#"sum(rate(a_total{x="1"}[5m])) / on() group_left b + 1"#)
            .expect("parse");
        let s = selectors(&e);
        assert_eq!(s.len(), 2);
        assert!(selectors(&sextant_promql::parse("1 + 2").expect("parse")).is_empty());
    }
}
