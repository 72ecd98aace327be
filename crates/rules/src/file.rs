//! Prometheus rule files (`groups:` → `rules:`), read with line numbers so every problem names
//! the file, line and rule, like `promtool check rules`. Loading validates everything Prometheus
//! validates at load time: PromQL parses, names are valid, templates parse, `for` only on alerts.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;
use sextant_model::labels::{is_valid_label_name, is_valid_metric_name};
use sextant_model::time::parse_duration;
use sextant_promql::Expr;

use crate::template::check_template;

/// What a rule file holds, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFileSpec {
    #[serde(default)]
    pub groups: Vec<Spanned<GroupSpec>>,
}

/// One `groups:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub query_offset: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RuleSpec>>,
}

/// One `rules:` entry: either `record` or `alert`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    #[serde(default)]
    pub record: Option<String>,
    #[serde(default)]
    pub alert: Option<String>,
    pub expr: Scalar,
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    #[serde(default)]
    pub keep_firing_for: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A YAML scalar read as text (`expr: 1` is as valid as `expr: "1"`).
#[derive(Debug, Clone, Default)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a PromQL expression")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A validated group, ready to become a running [`crate::Group`].
#[derive(Debug, Clone)]
pub struct GroupDef {
    pub name: String,
    pub file: String,
    /// Evaluation interval in ms; `None` means the global evaluation interval.
    pub interval: Option<i64>,
    pub query_offset: Option<i64>,
    pub limit: usize,
    pub labels: Vec<(String, String)>,
    pub rules: Vec<RuleDef>,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct RuleDef {
    pub kind: RuleKind,
    /// The record name or the alert name.
    pub name: String,
    pub expr: Expr,
    /// The expression as written (shown by the API).
    pub expr_text: String,
    /// `for`, ms.
    pub hold: i64,
    pub keep_firing_for: i64,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// Line of the rule in its file.
    pub line: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Recording,
    Alerting,
}

/// A problem in a rule file, with its place.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: {msg}")]
pub struct RuleFileError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub msg: String,
}

fn dur(s: &Option<String>) -> Result<Option<i64>, String> {
    match s {
        None => Ok(None),
        Some(s) => parse_duration(s)
            .map(|d| Some(d.as_millis() as i64))
            .map_err(|e| e.to_string()),
    }
}

/// Reads and validates one rule file.
pub fn load_file(path: &Path) -> Result<Vec<GroupDef>, Vec<RuleFileError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![RuleFileError {
            file: file.clone(),
            line: 0,
            column: 0,
            msg: format!("cannot read: {e}"),
        }]
    })?;
    parse_rules(&file, &text)
}

/// Parses and validates rule file text; `file` names it in errors.
pub fn parse_rules(file: &str, text: &str) -> Result<Vec<GroupDef>, Vec<RuleFileError>> {
    let err_at = |line: u64, column: u64, msg: String| RuleFileError {
        file: file.to_string(),
        line,
        column,
        msg,
    };
    let spec: RuleFileSpec = if text.trim().is_empty() {
        RuleFileSpec { groups: Vec::new() }
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            vec![err_at(line, column, yaml_message(&e))]
        })?
    };
    let mut errs = Vec::new();
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for g in spec.groups {
        let (gl, gc) = (g.referenced.line(), g.referenced.column());
        let g = g.value;
        let mut gerr =
            |msg: String| errs.push(err_at(gl, gc, format!("group {:?}: {msg}", g.name)));
        if g.name.is_empty() {
            gerr("group name must not be empty".into());
        }
        if !names.insert(g.name.clone()) {
            gerr("groupname must be unique within a file".into());
        }
        let interval = dur(&g.interval).unwrap_or_else(|e| {
            gerr(format!("invalid interval: {e}"));
            None
        });
        if interval == Some(0) {
            gerr("interval must be greater than zero".into());
        }
        let query_offset = dur(&g.query_offset).unwrap_or_else(|e| {
            gerr(format!("invalid query_offset: {e}"));
            None
        });
        let mut labels = Vec::new();
        for (k, v) in g.labels.iter().flatten() {
            if !is_valid_label_name(k) {
                gerr(format!("invalid label name {k:?}"));
            }
            labels.push((k.clone(), v.clone()));
        }
        let mut rules = Vec::new();
        for (i, r) in g.rules.into_iter().enumerate() {
            let (line, col) = (r.referenced.line(), r.referenced.column());
            let r = r.value;
            let what = r.record.as_deref().or(r.alert.as_deref()).unwrap_or("");
            let mut rerr = |msg: String| {
                errs.push(err_at(
                    line,
                    col,
                    format!("group {:?}, rule {}, {what:?}: {msg}", g.name, i + 1),
                ))
            };
            let kind = match (&r.record, &r.alert) {
                (Some(_), Some(_)) => {
                    rerr("only one of 'record' and 'alert' must be set".into());
                    continue;
                }
                (None, None) => {
                    rerr("one of 'record' or 'alert' must be set".into());
                    continue;
                }
                (Some(n), None) => {
                    if !is_valid_metric_name(n) {
                        rerr(format!("invalid recording rule name: {n}"));
                    }
                    if r.for_.is_some() {
                        rerr("invalid field 'for' in recording rule".into());
                    }
                    if r.keep_firing_for.is_some() {
                        rerr("invalid field 'keep_firing_for' in recording rule".into());
                    }
                    if r.annotations.is_some() {
                        rerr("invalid field 'annotations' in recording rule".into());
                    }
                    RuleKind::Recording
                }
                (None, Some(n)) => {
                    if n.is_empty() {
                        rerr("invalid alert name: empty".into());
                    }
                    RuleKind::Alerting
                }
            };
            let expr_text = r.expr.0.trim().to_string();
            let expr = if expr_text.is_empty() {
                rerr("field 'expr' must be set in rule".into());
                continue;
            } else {
                match sextant_promql::parse(&expr_text) {
                    Ok(e) => e,
                    Err(e) => {
                        rerr(format!("could not parse expression: {e}"));
                        continue;
                    }
                }
            };
            let hold = dur(&r.for_).unwrap_or_else(|e| {
                rerr(format!("invalid 'for': {e}"));
                None
            });
            let kff = dur(&r.keep_firing_for).unwrap_or_else(|e| {
                rerr(format!("invalid 'keep_firing_for': {e}"));
                None
            });
            let mut rlabels = Vec::new();
            for (k, v) in r.labels.iter().flatten() {
                if k == "__name__" {
                    rerr("invalid label name: __name__".into());
                } else if !is_valid_label_name(k) {
                    rerr(format!("invalid label name: {k}"));
                }
                if kind == RuleKind::Alerting {
                    if let Err(e) = check_template(v) {
                        rerr(format!("label {k:?}: {e}"));
                    }
                }
                rlabels.push((k.clone(), v.clone()));
            }
            let mut annotations = Vec::new();
            for (k, v) in r.annotations.iter().flatten() {
                if !is_valid_label_name(k) {
                    rerr(format!("invalid annotation name: {k}"));
                }
                if let Err(e) = check_template(v) {
                    rerr(format!("annotation {k:?}: {e}"));
                }
                annotations.push((k.clone(), v.clone()));
            }
            // Group labels apply to every rule; the rule's own labels win.
            for (k, v) in &labels {
                if !rlabels.iter().any(|(rk, _)| rk == k) {
                    rlabels.push((k.clone(), v.clone()));
                }
            }
            rules.push(RuleDef {
                kind,
                name: what.to_string(),
                expr,
                expr_text,
                hold: hold.unwrap_or(0),
                keep_firing_for: kff.unwrap_or(0),
                labels: rlabels,
                annotations,
                line,
            });
        }
        out.push(GroupDef {
            name: g.name,
            file: file.to_string(),
            interval,
            query_offset,
            limit: g.limit.unwrap_or(0),
            labels,
            rules,
        });
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// serde-saphyr's message without its own location suffix (we print file:line:col first).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or("invalid YAML").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_file_loads() {
        let g = parse_rules(
            "r.yml",
            r#"
groups:
  - name: g
    interval: 30s
    labels: {team: a}
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Down
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.instance }} down ({{ $value }})"
"#,
        )
        .unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].interval, Some(30_000));
        assert_eq!(g[0].rules.len(), 2);
        let a = &g[0].rules[1];
        assert_eq!(a.kind, RuleKind::Alerting);
        assert_eq!(a.hold, 300_000);
        assert_eq!(a.keep_firing_for, 60_000);
        assert!(a.labels.contains(&("team".into(), "a".into())));
        assert_eq!(a.line, 9);
    }

    #[test]
    fn errors_name_line_and_rule() {
        let e = parse_rules(
            "r.yml",
            "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum(\n      - alert: A\n        record: b\n        expr: up\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].line, 4);
        assert!(e[0].to_string().starts_with("r.yml:4:"), "{}", e[0]);
        assert!(e[0].msg.contains("could not parse expression"), "{}", e[0]);
        assert_eq!(e[1].line, 6);
        assert!(e[1].msg.contains("only one of"), "{}", e[1]);
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_place() {
        let e = parse_rules(
            "r.yml",
            "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: up\n        bogus: 1\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 6, "{}", e[0]);
        assert!(e[0].msg.contains("bogus"), "{}", e[0]);
    }

    #[test]
    fn bad_template_and_names() {
        let e = parse_rules(
            "r.yml",
            "groups:\n  - name: g\n    rules:\n      - record: 'bad name'\n        expr: up\n      - alert: A\n        expr: up\n        annotations:\n          s: '{{ .Foo '\n      - record: y\n        expr: up\n        for: 5m\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].msg.contains("invalid recording rule name"));
        assert!(e[1].msg.contains("annotation \"s\""));
        assert!(e[2].msg.contains("'for'"));
    }

    #[test]
    fn duplicate_groups_and_numbers_as_expr() {
        let e = parse_rules(
            "r.yml",
            "groups:\n  - name: g\n    rules: []\n  - name: g\n    rules: []\n",
        )
        .unwrap_err();
        assert!(e[0].msg.contains("unique"));
        let g = parse_rules(
            "r.yml",
            "groups:\n  - name: g\n    rules:\n      - record: one\n        expr: 1\n",
        )
        .unwrap();
        assert_eq!(g[0].rules[0].expr_text, "1");
    }
}
