//! The JSON syntax tree `/api/v1/parse_query` returns, shaped like Prometheus'
//! `translateAST` (web/api/v1/translate_ast.go) so its UI tree view works unchanged. Written by
//! hand (keys sorted, HTML-safe escaping, as Go's `encoding/json` does) to keep the crate free of
//! a JSON dependency.

use std::fmt::Write;

use sextant_model::Matcher;

use crate::ast::{AtModifier, Card, DurCtx, DurExpr, Expr, VectorSelector};

impl Expr {
    /// The expression as Prometheus' `parse_query` JSON tree.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        write_expr(&mut out, self);
        out
    }
}

/// A JSON object under construction; keys must be added in sorted order.
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, k);
        self.out.push(':');
        self.out
    }

    fn str(&mut self, k: &str, v: &str) {
        write_str(self.key(k), v);
    }

    fn raw(&mut self, k: &str, v: &str) {
        self.key(k).push_str(v);
    }

    fn expr(&mut self, k: &str, e: Option<&Expr>) {
        let out = self.key(k);
        match e {
            Some(e) => write_expr(out, e),
            None => out.push_str("null"),
        }
    }

    fn list(&mut self, k: &str, l: &[String]) {
        let out = self.key(k);
        out.push('[');
        for (i, s) in l.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(out, s);
        }
        out.push(']');
    }

    fn end(self) {
        self.out.push('}');
    }
}

/// A JSON string with Go's escaping (`<`, `>`, `&` as `\u003c` etc.).
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as JSON (Go marshals non-finite `*float64` as an error; they cannot occur here
/// except in fill values, which we write as strings like Prometheus' API does for samples).
fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        format!("\"{}\"", crate::aggr::format_value(v))
    }
}

/// Milliseconds of a duration, 0 when it depends on the query (`step()` and friends).
fn ms(d: Option<&DurExpr>) -> i64 {
    match d {
        Some(d) if d.is_const() => d.eval_ms(DurCtx::default()),
        _ => 0,
    }
}

fn at_fields(o: &mut Obj, at: &Option<AtModifier>) {
    match at {
        Some(AtModifier::Start) => o.str("startOrEnd", "start"),
        Some(AtModifier::End) => o.str("startOrEnd", "end"),
        _ => o.raw("startOrEnd", "null"),
    }
}

fn timestamp(at: &Option<AtModifier>) -> String {
    match at {
        Some(AtModifier::Time(t)) => t.to_string(),
        _ => "null".into(),
    }
}

fn write_matchers(out: &mut String, ms: &[Matcher]) {
    out.push('[');
    for (i, m) in ms.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut o = Obj::new(out);
        o.str("name", &m.name);
        o.str("type", m.op.as_str());
        o.str("value", &m.value);
        o.end();
    }
    out.push(']');
}

fn selector(o: &mut Obj, vs: &VectorSelector) {
    o.raw("anchored", if vs.anchored { "true" } else { "false" });
    write_matchers(o.key("matchers"), &vs.matchers);
    o.str("name", vs.name.as_deref().unwrap_or(""));
    o.raw("offset", &ms(vs.offset.as_ref()).to_string());
}

fn write_expr(out: &mut String, e: &Expr) {
    let mut o = Obj::new(out);
    match e {
        Expr::Number(n) => {
            o.str("type", "numberLiteral");
            o.str("val", &crate::aggr::format_value(*n));
        }
        Expr::DurValue(d) => {
            o.str("type", "numberLiteral");
            o.str("val", &d.to_string());
        }
        Expr::Str(s) => {
            o.str("type", "stringLiteral");
            o.str("val", s);
        }
        Expr::Paren(x) => {
            o.expr("expr", Some(x.as_ref()));
            o.str("type", "parenExpr");
        }
        Expr::Neg(x) => {
            o.expr("expr", Some(x.as_ref()));
            o.str("op", "-");
            o.str("type", "unaryExpr");
        }
        Expr::Vector(vs) => {
            selector(&mut o, vs);
            o.raw("smoothed", if vs.smoothed { "true" } else { "false" });
            at_fields(&mut o, &vs.at);
            o.raw("timestamp", &timestamp(&vs.at));
            o.str("type", "vectorSelector");
        }
        Expr::Matrix(m) => {
            o.raw("anchored", if m.anchored { "true" } else { "false" });
            write_matchers(o.key("matchers"), &m.vs.matchers);
            o.str("name", m.vs.name.as_deref().unwrap_or(""));
            o.raw("offset", &ms(m.vs.offset.as_ref()).to_string());
            o.raw("range", &ms(Some(&m.range)).to_string());
            o.raw("smoothed", if m.smoothed { "true" } else { "false" });
            at_fields(&mut o, &m.vs.at);
            o.raw("timestamp", &timestamp(&m.vs.at));
            o.str("type", "matrixSelector");
        }
        Expr::Subquery(s) => {
            o.raw("alignEvalTime", "false");
            o.expr("expr", Some(s.expr.as_ref()));
            o.raw("offset", &ms(s.offset.as_ref()).to_string());
            o.raw("range", &ms(Some(&s.range)).to_string());
            at_fields(&mut o, &s.at);
            o.raw("step", &ms(s.step.as_ref()).to_string());
            o.raw("timestamp", &timestamp(&s.at));
            o.str("type", "subquery");
        }
        Expr::Binary {
            op,
            lhs,
            rhs,
            return_bool,
            matching,
            ..
        } => {
            o.raw("bool", if *return_bool { "true" } else { "false" });
            o.expr("lhs", Some(lhs.as_ref()));
            let mo = o.key("matching");
            match matching {
                None => mo.push_str("null"),
                Some(m) => {
                    let mut mo = Obj::new(mo);
                    mo.str(
                        "card",
                        match m.card {
                            Card::OneToOne => "one-to-one",
                            Card::ManyToOne => "many-to-one",
                            Card::OneToMany => "one-to-many",
                            Card::ManyToMany => "many-to-many",
                        },
                    );
                    let fill = format!(
                        "{{\"lhs\":{},\"rhs\":{}}}",
                        m.fill_left.map_or("null".into(), json_num),
                        m.fill_right.map_or("null".into(), json_num)
                    );
                    mo.raw("fillValues", &fill);
                    mo.list("include", &m.include);
                    mo.list("labels", &m.labels);
                    mo.raw("on", if m.on { "true" } else { "false" });
                    mo.end();
                }
            }
            o.str("op", op.as_str());
            o.expr("rhs", Some(rhs.as_ref()));
            o.str("type", "binaryExpr");
        }
        Expr::Aggregate {
            op,
            expr,
            param,
            grouping,
            without,
            ..
        } => {
            o.expr("expr", Some(expr.as_ref()));
            o.list("grouping", grouping);
            o.str("op", op.as_str());
            o.expr("param", param.as_deref());
            o.str("type", "aggregation");
            o.raw("without", if *without { "true" } else { "false" });
        }
        Expr::Call { func, args, .. } => {
            let ao = o.key("args");
            ao.push('[');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    ao.push(',');
                }
                write_expr(ao, a);
            }
            ao.push(']');
            let fo = o.key("func");
            let mut f = Obj::new(fo);
            let types: Vec<String> = func.args.iter().map(|t| t.name().to_string()).collect();
            f.list("argTypes", &types);
            f.str("name", func.name);
            f.str("returnType", func.ret.name());
            f.raw("variadic", &func.variadic.to_string());
            f.end();
            o.str("type", "call");
        }
    }
    o.end();
}

#[cfg(test)]
mod tests {
    use crate::parser::parse;

    #[test]
    fn json_tree_like_prometheus() {
        let e = parse("sum by (job) (rate(x{a=\"b\"}[5m])) > 1").unwrap();
        assert_eq!(
            e.to_json(),
            concat!(
                r#"{"bool":false,"lhs":{"expr":{"args":[{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"x"},"#,
                r#"{"name":"a","type":"=","value":"b"}],"name":"x","offset":0,"range":300000,"smoothed":false,"startOrEnd":null,"#,
                r#""timestamp":null,"type":"matrixSelector"}],"func":{"argTypes":["matrix"],"name":"rate","returnType":"vector","variadic":0},"#,
                r#""type":"call"},"grouping":["job"],"op":"sum","param":null,"type":"aggregation","without":false},"matching":null,"#,
                r#""op":"\u003e","rhs":{"type":"numberLiteral","val":"1"},"type":"binaryExpr"}"#
            )
        );
        let e = parse("-foo @ start() offset 1m").unwrap();
        assert!(e.to_json().contains(r#""offset":60000"#));
        assert!(e.to_json().contains(r#""startOrEnd":"start""#));
    }
}
