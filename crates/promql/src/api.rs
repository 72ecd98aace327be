//! Shapes the HTTP API needs from the engine: the bucket list of a native histogram as
//! Prometheus' JSON writes it, and the JSON syntax tree of `/api/v1/parse_query`.

use serde_json::{json, Value as Json};
use sextant_model::histogram::CUSTOM_BUCKETS_SCHEMA;
use sextant_model::FloatHistogram;

use crate::ast::{AtModifier, Card, DurExpr, Expr, VectorSelector};
use crate::hist::{bucket_bounds, buckets};

/// Buckets of a histogram as `(boundary_rule, lower, upper, count)` in Prometheus' API order:
/// negative buckets from the most negative, the zero bucket, then positive buckets. Boundary
/// rules: 0 = (lower, upper], 1 = [lower, upper), 3 = [lower, upper]. Empty buckets are left out.
pub fn api_buckets(h: &FloatHistogram) -> Vec<(u8, f64, f64, f64)> {
    let mut out = Vec::new();
    let custom = h.schema == CUSTOM_BUCKETS_SCHEMA;
    for (idx, c) in buckets(&h.negative_spans, &h.negative_buckets)
        .into_iter()
        .rev()
    {
        if c != 0.0 {
            let (lo, hi) = bucket_bounds(h.schema, idx, &h.custom_values);
            out.push((1, -hi, -lo, c));
        }
    }
    if !custom && h.zero_count != 0.0 {
        out.push((3, -h.zero_threshold, h.zero_threshold, h.zero_count));
    }
    for (idx, c) in buckets(&h.positive_spans, &h.positive_buckets) {
        if c != 0.0 {
            let (lo, hi) = bucket_bounds(h.schema, idx, &h.custom_values);
            // The first positive bucket touching the zero bucket starts at its threshold.
            let lo = if !custom && lo < h.zero_threshold && hi > h.zero_threshold {
                h.zero_threshold
            } else {
                lo
            };
            out.push((0, lo, hi, c));
        }
    }
    out
}

/// A constant duration in milliseconds (`step()`-like parts count as 0, as they are unknown
/// before evaluation).
fn dur_ms(d: &DurExpr) -> i64 {
    match d {
        DurExpr::Number(s) => (s * 1000.0) as i64,
        DurExpr::Duration(ms) => *ms,
        DurExpr::Neg(e) => -dur_ms(e),
        DurExpr::Paren(e) => dur_ms(e),
        _ => 0,
    }
}

fn at_json(at: &Option<AtModifier>) -> (Json, Json) {
    match at {
        Some(AtModifier::Time(t)) => (json!(t), Json::Null),
        Some(AtModifier::Start) => (Json::Null, json!("start")),
        Some(AtModifier::End) => (Json::Null, json!("end")),
        None => (Json::Null, Json::Null),
    }
}

fn matchers_json(vs: &VectorSelector) -> Json {
    Json::Array(
        vs.matchers
            .iter()
            .map(|m| json!({"type": m.op.as_str(), "name": m.name, "value": m.value}))
            .collect(),
    )
}

fn float_str(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// The syntax tree of `/api/v1/parse_query`, shaped like Prometheus' `translateAST`.
pub fn ast_json(e: &Expr) -> String {
    tree(e).to_string()
}

fn tree(e: &Expr) -> Json {
    match e {
        Expr::Number(v) => json!({"type": "numberLiteral", "val": float_str(*v)}),
        Expr::Str(s) => json!({"type": "stringLiteral", "val": s}),
        Expr::DurValue(d) => {
            json!({"type": "numberLiteral", "val": float_str(dur_ms(d) as f64 / 1000.0)})
        }
        Expr::Paren(x) => json!({"type": "parenExpr", "expr": tree(x)}),
        Expr::Neg(x) => json!({"type": "unaryExpr", "op": "-", "expr": tree(x)}),
        Expr::Vector(vs) => {
            let (ts, se) = at_json(&vs.at);
            json!({"type": "vectorSelector", "name": vs.name.clone().unwrap_or_default(),
                   "offset": vs.offset.as_ref().map(dur_ms).unwrap_or(0),
                   "matchers": matchers_json(vs), "timestamp": ts, "startOrEnd": se})
        }
        Expr::Matrix(m) => {
            let vs = &m.vs;
            let (ts, se) = at_json(&vs.at);
            json!({"type": "matrixSelector", "name": vs.name.clone().unwrap_or_default(),
                   "range": dur_ms(&m.range), "offset": vs.offset.as_ref().map(dur_ms).unwrap_or(0),
                   "matchers": matchers_json(vs), "timestamp": ts, "startOrEnd": se})
        }
        Expr::Subquery(s) => {
            let (ts, se) = at_json(&s.at);
            json!({"type": "subquery", "expr": tree(&s.expr), "range": dur_ms(&s.range),
                   "offset": s.offset.as_ref().map(dur_ms).unwrap_or(0),
                   "step": s.step.as_ref().map(dur_ms).unwrap_or(0), "timestamp": ts, "startOrEnd": se})
        }
        Expr::Binary {
            op,
            lhs,
            rhs,
            return_bool,
            matching,
            ..
        } => {
            let m = match matching {
                Some(m) => json!({
                    "card": match m.card {
                        Card::OneToOne => "one-to-one",
                        Card::ManyToOne => "many-to-one",
                        Card::OneToMany => "one-to-many",
                        Card::ManyToMany => "many-to-many",
                    },
                    "labels": m.labels, "on": m.on, "include": m.include}),
                None => Json::Null,
            };
            json!({"type": "binaryExpr", "op": op.as_str(), "lhs": tree(lhs), "rhs": tree(rhs),
                   "matching": m, "bool": return_bool})
        }
        Expr::Aggregate {
            op,
            expr,
            param,
            grouping,
            without,
            ..
        } => json!({
            "type": "aggregation", "op": op.as_str(), "expr": tree(expr),
            "param": param.as_ref().map(|p| tree(p)).unwrap_or(Json::Null),
            "grouping": grouping, "without": without}),
        Expr::Call { func, args, .. } => json!({
            "type": "call",
            "func": {"name": func.name,
                     "argTypes": func.args.iter().map(|a| a.name()).collect::<Vec<_>>(),
                     "variadic": func.variadic, "returnType": func.ret.name()},
            "args": args.iter().map(tree).collect::<Vec<_>>()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_query_tree_matches_prometheus_shape() {
        let e =
            crate::parse("sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m] offset 1m))")
                .unwrap();
        let j: Json = serde_json::from_str(&ast_json(&e)).unwrap();
        assert_eq!(j["type"], "aggregation");
        assert_eq!(j["op"], "sum");
        assert_eq!(j["grouping"], json!(["job"]));
        let call = &j["expr"];
        assert_eq!(call["type"], "call");
        assert_eq!(call["func"]["name"], "rate");
        let ms = &call["args"][0];
        assert_eq!(ms["type"], "matrixSelector");
        assert_eq!(ms["range"], 300000);
        assert_eq!(ms["offset"], 60000);
        assert_eq!(ms["name"], "http_requests_total");
    }

    #[test]
    fn buckets_of_an_exponential_histogram() {
        let h = FloatHistogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 2.0,
            count: 7.0,
            sum: 10.0,
            positive_spans: vec![sextant_model::Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![1.0, 3.0],
            negative_spans: vec![sextant_model::Span {
                offset: 0,
                length: 1,
            }],
            negative_buckets: vec![1.0],
            ..Default::default()
        };
        let b = api_buckets(&h);
        assert_eq!(
            b,
            vec![
                (1, -1.0, -0.5, 1.0),
                (3, -0.001, 0.001, 2.0),
                (0, 0.5, 1.0, 1.0),
                (0, 1.0, 2.0, 3.0)
            ]
        );
    }
}
