//! `sextant test rules`: promtool's rule unit-test format (`rule_files`, `evaluation_interval`,
//! `group_eval_order`, `tests` with `input_series` in the expanding notation, `alert_rule_test`,
//! `promql_expr_test`, `external_labels`, `external_url`), evaluated the way promtool does it:
//! a fresh in-memory store per test group, every group evaluated at every evaluation interval
//! from 0 to the last `eval_time`, alerts compared (firing ones only) at the last evaluation at
//! or before each `eval_time`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use sextant_model::time::parse_duration;
use sextant_model::{HistogramValue, Labels, Matcher};
use sextant_promql::promqltest::{parse_labels, parse_series_values, Item};
use sextant_promql::{Engine, EngineOptions, MemQuerier, Querier, QueryError, SeriesData};

use crate::file::Scalar;
use crate::group::Group;
use crate::manager::{expand_globs, load_files};
use crate::rule::{AlertState, EvalCtx, OutSample, RuleStorage};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
    #[serde(default)]
    fuzzy_compare: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: Scalar,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: Scalar,
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    histogram: Option<String>,
}

/// A `MemQuerier` shared between the evaluator (reads) and rule output (writes).
struct SharedMem(Mutex<MemQuerier>);

impl Querier for SharedMem {
    fn select(&self, m: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesData>, QueryError> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .select(m, mint, maxt)
    }
}

struct Borrowed<'a>(&'a SharedMem);

impl Querier for Borrowed<'_> {
    fn select(&self, m: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesData>, QueryError> {
        self.0.select(m, mint, maxt)
    }
}

impl RuleStorage for SharedMem {
    fn querier(&self) -> Box<dyn Querier + '_> {
        Box::new(Borrowed(self))
    }

    fn append(&self, samples: &[OutSample]) -> Result<(), String> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for s in samples {
            match &s.h {
                Some(h) => m.add_histogram(&s.labels, s.t, HistogramValue::Float(h.clone())),
                None => m.add_float(&s.labels, s.t, s.v),
            }
        }
        Ok(())
    }
}

fn dur_ms(s: &str, what: &str) -> Result<i64, String> {
    parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| format!("{what}: {e}"))
}

fn fmt_duration(ms: i64) -> String {
    sextant_model::time::format_duration(std::time::Duration::from_millis(ms.max(0) as u64))
}

/// Runs every test file; writes promtool-style output to `out`; returns whether all passed.
pub fn run_files(files: &[std::path::PathBuf], out: &mut dyn std::io::Write) -> bool {
    let mut ok = true;
    for f in files {
        let _ = writeln!(out, "Unit Testing:  {}", f.display());
        match run_file(f) {
            Ok(failures) if failures.is_empty() => {
                let _ = writeln!(out, "  SUCCESS\n");
            }
            Ok(failures) => {
                ok = false;
                let _ = writeln!(out, "  FAILED:");
                for e in failures {
                    let _ = writeln!(out, "{e}");
                }
                let _ = writeln!(out);
            }
            Err(e) => {
                ok = false;
                let _ = writeln!(out, "  FAILED:\n    {e}\n");
            }
        }
    }
    ok
}

/// Runs one test file; returns the failures (empty = passed) or an error that stopped it.
pub fn run_file(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tf: TestFile = serde_saphyr::from_str(&text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        format!(
            "{}{loc}: {}",
            path.display(),
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    let eval_interval = match &tf.evaluation_interval {
        Some(s) => dur_ms(s, "evaluation_interval")?,
        None => 60_000,
    };
    if eval_interval <= 0 {
        return Err("evaluation_interval must be positive".into());
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let files = expand_globs(&tf.rule_files, base);
    let defs = load_files(&files).map_err(|errs| {
        errs.iter()
            .map(|e| format!("    {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let _ = tf.fuzzy_compare;
    let mut failures = Vec::new();
    for tg in &tf.tests {
        let mut defs = defs.clone();
        if !tf.group_eval_order.is_empty() {
            let pos: HashMap<&str, usize> = tf
                .group_eval_order
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i))
                .collect();
            for d in &defs {
                if !pos.contains_key(d.name.as_str()) {
                    return Err(format!(
                        "group {:?} is missing from group_eval_order",
                        d.name
                    ));
                }
            }
            defs.sort_by_key(|d| pos[d.name.as_str()]);
        }
        match run_group(tg, defs, eval_interval) {
            Ok(f) => failures.extend(f),
            Err(e) => failures.push(e),
        }
    }
    Ok(failures)
}

fn run_group(
    tg: &TestGroup,
    defs: Vec<crate::file::GroupDef>,
    eval_interval: i64,
) -> Result<Vec<String>, String> {
    let interval = match &tg.interval {
        Some(s) => dur_ms(s, "interval")?,
        None => eval_interval,
    };
    let name = if tg.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", tg.name)
    };
    let mem = Arc::new(SharedMem(Mutex::new(MemQuerier::new())));
    {
        let mut m = mem.0.lock().unwrap_or_else(|e| e.into_inner());
        for s in &tg.input_series {
            let labels =
                parse_labels(&s.series).map_err(|e| format!("series {:?}: {e}", s.series))?;
            let items = parse_series_values(&s.values.0)
                .map_err(|e| format!("series {:?}: values: {e}", s.series))?;
            for (k, it) in items.into_iter().enumerate() {
                let t = k as i64 * interval;
                match it {
                    Item::None => {}
                    Item::Float(v) => m.add_float(&labels, t, v),
                    Item::Hist(h) => m.add_histogram(&labels, t, HistogramValue::Float(h)),
                }
            }
        }
    }
    let ext = Labels::from_pairs(
        tg.external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let ctx = EvalCtx {
        engine: Arc::new(Engine::new(EngineOptions::default())),
        storage: mem.clone(),
        external_labels: ext,
        external_url: tg.external_url.clone(),
    };
    let mut groups: Vec<Group> = defs
        .into_iter()
        .map(|d| {
            let mut g = Group::new(d, eval_interval, 0);
            g.should_restore = false;
            for r in g.rules.iter_mut() {
                r.restored = true;
            }
            g
        })
        .collect();
    // Alert tests by eval time.
    let mut alert_tests: Vec<(i64, &AlertTest)> = Vec::new();
    for at in &tg.alert_rule_test {
        alert_tests.push((dur_ms(&at.eval_time, "eval_time")?, at));
    }
    alert_tests.sort_by_key(|a| a.0);
    let mut max_t = alert_tests.last().map(|a| a.0).unwrap_or(0);
    for et in &tg.promql_expr_test {
        max_t = max_t.max(dur_ms(&et.eval_time, "eval_time")?);
    }
    let mut failures = Vec::new();
    let mut next_alert = 0;
    let mut ts = 0;
    while ts <= max_t {
        let mut errs = Vec::new();
        for g in groups.iter_mut() {
            g.eval(&ctx, ts);
            for r in &g.rules {
                if let Some(e) = &r.last_error {
                    errs.push(format!(
                        "    rule: {}, time: {}, err: {e}",
                        r.def.name,
                        fmt_duration(ts)
                    ));
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs.join("\n"));
        }
        while next_alert < alert_tests.len()
            && ts <= alert_tests[next_alert].0
            && alert_tests[next_alert].0 < ts + eval_interval
        {
            let (t, at) = alert_tests[next_alert];
            next_alert += 1;
            let mut got: Vec<(Labels, Labels)> = Vec::new();
            for g in &groups {
                for r in g
                    .rules
                    .iter()
                    .filter(|r| r.is_alerting() && r.def.name == at.alertname)
                {
                    for a in r.active.values().filter(|a| a.state == AlertState::Firing) {
                        got.push((
                            a.labels.clone(),
                            Labels::from_pairs(a.annotations.iter().cloned()),
                        ));
                    }
                }
            }
            let mut exp: Vec<(Labels, Labels)> = at
                .exp_alerts
                .iter()
                .map(|e| {
                    let mut l = Labels::from_pairs(
                        e.exp_labels.iter().map(|(k, v)| (k.clone(), v.clone())),
                    );
                    l.set("alertname", &at.alertname);
                    (
                        l,
                        Labels::from_pairs(
                            e.exp_annotations
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone())),
                        ),
                    )
                })
                .collect();
            got.sort();
            exp.sort();
            if got != exp {
                failures.push(format!(
                    "{name}    alertname: {}, time: {}, \n        exp:{},\n        got:{}",
                    at.alertname,
                    fmt_duration(t),
                    fmt_alerts(&exp),
                    fmt_alerts(&got)
                ));
            }
        }
        ts += eval_interval;
    }
    for et in &tg.promql_expr_test {
        let t = dur_ms(&et.eval_time, "eval_time")?;
        let expr = match sextant_promql::parse(&et.expr.0) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!(
                    "{name}    expr: {:?}, time: {}, err: {e}",
                    et.expr.0,
                    fmt_duration(t)
                ));
                continue;
            }
        };
        let got = match ctx.query_vector(&expr, t) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!(
                    "{name}    expr: {:?}, time: {}, err: {e}",
                    et.expr.0,
                    fmt_duration(t)
                ));
                continue;
            }
        };
        let mut exp = Vec::new();
        for s in &et.exp_samples {
            let l = if s.labels.trim().is_empty() {
                Labels::empty()
            } else {
                parse_labels(&s.labels).map_err(|e| format!("labels {:?}: {e}", s.labels))?
            };
            let h = match &s.histogram {
                Some(h) => match parse_series_values(h)?.into_iter().next() {
                    Some(Item::Hist(h)) => Some(h),
                    _ => return Err(format!("histogram {h:?}: not a histogram")),
                },
                None => None,
            };
            exp.push((l, s.value.unwrap_or(0.0), h));
        }
        let mut got: Vec<(Labels, f64, Option<sextant_model::FloatHistogram>)> =
            got.into_iter().map(|s| (s.labels, s.v, s.h)).collect();
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let same = exp.len() == got.len()
            && exp.iter().zip(&got).all(|(e, g)| {
                e.0 == g.0
                    && match (&e.2, &g.2) {
                        (Some(a), Some(b)) => a == b,
                        (None, None) => float_eq(e.1, g.1),
                        _ => false,
                    }
            });
        if !same {
            failures.push(format!(
                "{name}    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
                et.expr.0,
                fmt_duration(t),
                fmt_samples(&exp),
                fmt_samples(&got)
            ));
        }
    }
    Ok(failures)
}

fn float_eq(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let tol = 1e-12 * a.abs().max(b.abs());
    (a - b).abs() <= tol
}

fn fmt_alerts(v: &[(Labels, Labels)]) -> String {
    if v.is_empty() {
        return "[]".into();
    }
    let parts: Vec<String> = v
        .iter()
        .enumerate()
        .map(|(i, (l, a))| {
            format!("\n        {i}:\n          Labels:{l}\n          Annotations:{a}")
        })
        .collect();
    parts.join("")
}

fn fmt_samples(v: &[(Labels, f64, Option<sextant_model::FloatHistogram>)]) -> String {
    let parts: Vec<String> = v
        .iter()
        .map(|(l, f, h)| match h {
            Some(h) => format!("{l} {h:?}"),
            None => format!("{l} {f}"),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}
