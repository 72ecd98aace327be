//! Grafana dashboard import. Grafana's JSON has grown over ten years of schema versions: old
//! `rows:` with `span`-sized panels, `graph`/`singlestat`/`table-old` panels with their own
//! axis, threshold and style options, and the current `panels:` list with `gridPos`,
//! `fieldConfig` and collapsed row panels that hold their children. This module reads all of
//! them into the Sextant model and records, per panel, whatever it could not carry over
//! (other data sources, transformations, value mappings, unknown plugins, ...), so a user
//! knows what to check. Input is any JSON value: a dashboard, the `{dashboard, meta}` wrapper
//! of Grafana's HTTP API, or an array of either.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::*;

/// What could not be converted in one panel (or, with `panel_id` None and type `dashboard`,
/// in the dashboard itself: variables, annotations, links).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PanelReport {
    pub panel_id: Option<i64>,
    pub title: String,
    /// The Grafana panel type.
    #[serde(rename = "type")]
    pub kind: String,
    pub problems: Vec<String>,
}

/// One converted dashboard and its report (only entries with problems).
#[derive(Clone, Debug)]
pub struct Imported {
    pub dashboard: Dashboard,
    pub report: Vec<PanelReport>,
}

/// Input that is not a Grafana dashboard at all.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// Most dashboards accepted from one input.
pub const MAX_DASHBOARDS: usize = 500;
/// Most panels accepted per dashboard (including nested ones).
pub const MAX_PANELS: usize = 5000;

/// Parses JSON text and converts every dashboard in it.
pub fn import_str(text: &str) -> Result<Vec<Imported>, ImportError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| ImportError(format!("not valid JSON: {e}")))?;
    import_value(&v)
}

/// Converts every dashboard in a JSON value (a dashboard, a `{dashboard: …}` wrapper, or an
/// array of them).
pub fn import_value(v: &Value) -> Result<Vec<Imported>, ImportError> {
    let mut dashboards = Vec::new();
    collect(v, &mut dashboards, 0)?;
    if dashboards.is_empty() {
        return Err(ImportError(
            "no Grafana dashboard found in the input".into(),
        ));
    }
    dashboards
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            convert(d).map_err(|e| {
                let title = d.get("title").and_then(Value::as_str).unwrap_or("");
                ImportError(format!("dashboard {} ({title:?}): {}", i + 1, e.0))
            })
        })
        .collect()
}

fn collect<'a>(
    v: &'a Value,
    out: &mut Vec<&'a Map<String, Value>>,
    depth: u32,
) -> Result<(), ImportError> {
    if depth > 3 {
        return Err(ImportError("dashboards nested too deeply".into()));
    }
    match v {
        Value::Array(items) => {
            for it in items {
                collect(it, out, depth + 1)?;
            }
        }
        Value::Object(o) => {
            if let Some(inner @ Value::Object(_)) = o.get("dashboard") {
                collect(inner, out, depth + 1)?;
            } else if o.contains_key("panels") || o.contains_key("rows") || o.contains_key("title")
            {
                out.push(o);
            } else {
                return Err(ImportError(
                    "an object that is neither a Grafana dashboard (no title, panels or rows) nor a {\"dashboard\": …} wrapper".into(),
                ));
            }
        }
        _ => {
            return Err(ImportError(
                "expected a dashboard object or an array of dashboards".into(),
            ))
        }
    }
    if out.len() > MAX_DASHBOARDS {
        return Err(ImportError(format!(
            "more than {MAX_DASHBOARDS} dashboards"
        )));
    }
    Ok(())
}

fn s<'a>(o: &'a Map<String, Value>, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or("")
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true)))
}

fn obj<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a Map<String, Value>> {
    o.get(k).and_then(Value::as_object)
}

fn arr<'a>(o: &'a Map<String, Value>, k: &str) -> &'a [Value] {
    o.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A uid from a title: lower case, dashes.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_end_matches('-').chars().take(40).collect();
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "imported".into()
    } else {
        out
    }
}

/// Rewrites Grafana variable syntax to Sextant's: `[[var]]` → `${var}`, `${var:format}` →
/// `${var}` (noted); reports built-ins Sextant does not substitute.
fn convert_expr(e: &str, problems: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(e.len());
    let mut rest = e;
    while let Some(i) = rest.find("[[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("]]") {
            Some(j)
                if after[..j]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') =>
            {
                let name = after[..j].split(':').next().unwrap_or_default();
                out.push_str("${");
                out.push_str(name);
                out.push('}');
                rest = &after[j + 2..];
            }
            _ => {
                out.push_str("[[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    // ${var:format}
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("${") {
        result.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                let inner = &after[..j];
                match inner.split_once(':') {
                    Some((name, fmt)) => {
                        problems.push(format!(
                            "variable format ${{{name}:{fmt}}} is not supported; used ${{{name}}}"
                        ));
                        result.push_str("${");
                        result.push_str(name);
                        result.push('}');
                    }
                    None => {
                        result.push_str("${");
                        result.push_str(inner);
                        result.push('}');
                    }
                }
                rest = &after[j + 1..];
            }
            None => {
                result.push_str("${");
                rest = after;
            }
        }
    }
    result.push_str(rest);
    for b in [
        "$__interval_ms",
        "$__range_s",
        "$__range_ms",
        "$__from",
        "$__to",
        "$__org",
        "$__user",
        "$__dashboard",
        "$__name",
        "$timeFilter",
        "$__timeFilter",
    ] {
        if result.contains(b) {
            problems.push(format!("{b} is not substituted by Sextant"));
        }
    }
    result
}

fn reducer(name: &str) -> Option<Reduce> {
    Some(match name {
        "last" | "lastNotNull" | "current" => Reduce::Last,
        "mean" | "avg" => Reduce::Mean,
        "max" => Reduce::Max,
        "min" => Reduce::Min,
        "sum" | "total" => Reduce::Sum,
        "first" | "firstNotNull" => Reduce::First,
        "count" => Reduce::Count,
        _ => return None,
    })
}

/// Whether a data source reference is (or may be) Prometheus.
fn datasource_problem(ds: Option<&Value>) -> Option<String> {
    match ds? {
        Value::Object(o) => {
            let t = s(o, "type");
            if t.is_empty()
                || t == "prometheus"
                || t == "datasource" && s(o, "uid") == "-- Mixed --"
            {
                None
            } else if t == "datasource" {
                // "-- Grafana --" or "-- Dashboard --" built-in sources.
                Some(format!("data source {:?} is not Prometheus", s(o, "uid")))
            } else {
                Some(format!("data source type {t:?} is not Prometheus"))
            }
        }
        Value::String(name) => {
            let l = name.to_lowercase();
            let others = [
                "loki",
                "elasticsearch",
                "influx",
                "graphite",
                "mysql",
                "postgres",
                "cloudwatch",
                "-- grafana --",
                "tempo",
                "jaeger",
                "testdata",
            ];
            others
                .iter()
                .any(|o| l.contains(o))
                .then(|| format!("data source {name:?} is not Prometheus"))
        }
        _ => None,
    }
}

struct Ctx {
    problems: Vec<String>,
}

impl Ctx {
    fn note(&mut self, p: impl Into<String>) {
        self.problems.push(p.into());
    }
}

/// Converts one Grafana dashboard object.
pub fn convert(g: &Map<String, Value>) -> Result<Imported, ImportError> {
    let mut report = Vec::new();
    let mut dash_problems = Vec::new();
    let title = s(g, "title").trim().to_string();
    let title = if title.is_empty() {
        dash_problems.push("no title; named \"Imported\"".to_string());
        "Imported".to_string()
    } else {
        title
    };
    let uid = s(g, "uid");
    let uid = if valid_uid(uid) {
        uid.to_string()
    } else {
        slug(&title)
    };
    let mut d = Dashboard {
        uid,
        title,
        description: s(g, "description").to_string(),
        tags: arr(g, "tags")
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        ..Dashboard::default()
    };
    match g.get("refresh") {
        Some(Value::String(r)) if valid_duration(r) => d.refresh = r.clone(),
        Some(Value::String(r)) if !r.is_empty() => {
            dash_problems.push(format!("refresh {r:?} is not a duration; auto-refresh off"))
        }
        _ => {}
    }
    if let Some(t) = obj(g, "time") {
        let (from, to) = (s(t, "from"), s(t, "to"));
        if valid_time(from) && valid_time(to) {
            d.time = Some(TimeRange {
                from: from.into(),
                to: to.into(),
            });
        } else {
            dash_problems.push(format!(
                "time range {from:?} to {to:?} not understood; default used"
            ));
        }
    }
    // Variables.
    if let Some(t) = obj(g, "templating") {
        for v in arr(t, "list") {
            if let Some(v) = v.as_object() {
                if let Some(var) = convert_variable(v, &mut dash_problems) {
                    if d.variables.iter().any(|x| x.name == var.name) {
                        dash_problems.push(format!(
                            "variable {:?} defined twice; second dropped",
                            var.name
                        ));
                    } else {
                        d.variables.push(var);
                    }
                }
            }
        }
    }
    if let Some(a) = obj(g, "annotations") {
        let custom = arr(a, "list")
            .iter()
            .filter_map(Value::as_object)
            .filter(|a| {
                !boolean(a.get("builtIn")) && a.get("builtIn").and_then(Value::as_i64) != Some(1)
            })
            .count();
        if custom > 0 {
            dash_problems.push(format!(
                "{custom} annotation queries dropped (Sextant annotates alert state changes itself)"
            ));
        }
    }
    if !arr(g, "links").is_empty() {
        dash_problems.push(format!("{} dashboard links dropped", arr(g, "links").len()));
    }
    // Panels.
    let mut count = 0usize;
    if let Some(Value::Array(rows)) = g.get("rows") {
        convert_old_rows(rows, &mut d, &mut report, &mut count)?;
    }
    if let Some(Value::Array(panels)) = g.get("panels") {
        let base = d
            .panels
            .iter()
            .filter_map(|p| p.grid)
            .map(|g| g.y + g.h)
            .max()
            .unwrap_or(0);
        let mut sections: Vec<Vec<(Panel, u32)>> = vec![Vec::new()];
        let mut top: Vec<&Map<String, Value>> =
            panels.iter().filter_map(Value::as_object).collect();
        // Grafana orders by position; files do not always.
        top.sort_by_key(|p| {
            let gp = obj(p, "gridPos");
            let y = gp
                .and_then(|g| g.get("y"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let x = gp
                .and_then(|g| g.get("x"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            (y, x)
        });
        for p in top {
            let kind = s(p, "type");
            if kind == "row" {
                let mut row = Panel {
                    kind: PanelType::Row,
                    title: s(p, "title").to_string(),
                    collapsed: boolean(p.get("collapsed")),
                    ..Panel::default()
                };
                let mut ctx = Ctx {
                    problems: Vec::new(),
                };
                if p.get("repeat")
                    .and_then(Value::as_str)
                    .is_some_and(|r| !r.is_empty())
                {
                    ctx.note("row repeat is not supported; the row appears once");
                }
                row.title = convert_expr(&row.title, &mut ctx.problems);
                push_report(&mut report, p, ctx);
                count += 1;
                sections.push(vec![(row, 0)]);
                for child in arr(p, "panels").iter().filter_map(Value::as_object) {
                    count += 1;
                    if let Some(c) = convert_panel(child, &mut report) {
                        let y = grid_y(child);
                        if let Some(last) = sections.last_mut() {
                            last.push((c, y));
                        }
                    }
                }
            } else {
                count += 1;
                if let Some(c) = convert_panel(p, &mut report) {
                    let y = grid_y(p);
                    if let Some(last) = sections.last_mut() {
                        last.push((c, y));
                    }
                }
            }
            if count > MAX_PANELS {
                return Err(ImportError(format!("more than {MAX_PANELS} panels")));
            }
        }
        // Lay sections out one below the other so collapsed rows' children do not overlap.
        let mut bottom = base;
        for sec in sections {
            let mut it = sec.into_iter().peekable();
            if let Some((p, _)) = it.peek() {
                if p.kind == PanelType::Row {
                    if let Some((mut row, _)) = it.next() {
                        row.grid = Some(Grid {
                            x: 0,
                            y: bottom,
                            w: GRID_COLUMNS,
                            h: 1,
                        });
                        bottom += 1;
                        d.panels.push(row);
                    }
                }
            }
            let rest: Vec<(Panel, u32)> = it.collect();
            let min_y = rest.iter().map(|(_, y)| *y).min().unwrap_or(0);
            let mut sec_bottom = bottom;
            for (mut p, y) in rest {
                if let Some(g) = p.grid.as_mut() {
                    g.y = bottom + (y - min_y);
                    sec_bottom = sec_bottom.max(g.y + g.h);
                }
                d.panels.push(p);
            }
            bottom = sec_bottom;
        }
    }
    if !dash_problems.is_empty() {
        report.insert(
            0,
            PanelReport {
                panel_id: None,
                title: d.title.clone(),
                kind: "dashboard".into(),
                problems: dash_problems,
            },
        );
    }
    d.normalize();
    d.validate()
        .map_err(|e| ImportError(format!("the converted dashboard is invalid: {e}")))?;
    Ok(Imported {
        dashboard: d,
        report,
    })
}

fn grid_y(p: &Map<String, Value>) -> u32 {
    obj(p, "gridPos")
        .and_then(|g| g.get("y"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(100_000) as u32
}

fn push_report(report: &mut Vec<PanelReport>, p: &Map<String, Value>, ctx: Ctx) {
    if ctx.problems.is_empty() {
        return;
    }
    report.push(PanelReport {
        panel_id: p.get("id").and_then(Value::as_i64),
        title: s(p, "title").to_string(),
        kind: s(p, "type").to_string(),
        problems: ctx.problems,
    });
}

/// Old schema (before Grafana 5): `rows: [{title, collapse, height, panels: [{span}]}]`.
fn convert_old_rows(
    rows: &[Value],
    d: &mut Dashboard,
    report: &mut Vec<PanelReport>,
    count: &mut usize,
) -> Result<(), ImportError> {
    let mut y = 0u32;
    for row in rows.iter().filter_map(Value::as_object) {
        let collapsed = boolean(row.get("collapse"));
        let show = boolean(row.get("showTitle")) || collapsed || rows.len() > 1;
        if show {
            let mut problems = Vec::new();
            let title = convert_expr(s(row, "title"), &mut problems);
            d.panels.push(Panel {
                kind: PanelType::Row,
                title: if title.is_empty() || title == "New row" || title == "Dashboard Row" {
                    String::new()
                } else {
                    title
                },
                collapsed,
                grid: Some(Grid {
                    x: 0,
                    y,
                    w: GRID_COLUMNS,
                    h: 1,
                }),
                ..Panel::default()
            });
            y += 1;
        }
        let height_px = match row.get("height") {
            Some(Value::String(h)) => h.trim_end_matches("px").trim().parse::<f64>().ok(),
            Some(v) => num(Some(v)),
            None => None,
        }
        .unwrap_or(250.0);
        let h = ((height_px / 30.0).ceil() as u32).clamp(1, 500);
        let mut x = 0u32;
        let mut line_bottom = y;
        for p in arr(row, "panels").iter().filter_map(Value::as_object) {
            *count += 1;
            if *count > MAX_PANELS {
                return Err(ImportError(format!("more than {MAX_PANELS} panels")));
            }
            let span = num(p.get("span")).unwrap_or(12.0).clamp(1.0, 12.0);
            let w = ((span * 2.0).round() as u32).clamp(1, GRID_COLUMNS);
            if x + w > GRID_COLUMNS {
                x = 0;
                y = line_bottom;
            }
            if let Some(mut c) = convert_panel(p, report) {
                c.grid = Some(Grid { x, y, w, h });
                line_bottom = line_bottom.max(y + h);
                d.panels.push(c);
            }
            x += w;
        }
        y = line_bottom;
    }
    Ok(())
}

fn convert_variable(v: &Map<String, Value>, problems: &mut Vec<String>) -> Option<Variable> {
    let name = s(v, "name").to_string();
    let kind = s(v, "type");
    let mut out = Variable {
        name: name.clone(),
        label: s(v, "label").to_string(),
        multi: boolean(v.get("multi")),
        include_all: boolean(v.get("includeAll")),
        all_value: v
            .get("allValue")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        hide: v.get("hide").and_then(Value::as_i64) == Some(2),
        ..Variable::default()
    };
    // current: {value: "x" | ["a","b"]}
    if let Some(c) = obj(v, "current") {
        match c.get("value") {
            Some(Value::String(x)) if !x.is_empty() => out.current = vec![x.clone()],
            Some(Value::Array(xs)) => {
                out.current = xs
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            }
            _ => {}
        }
    }
    let query = match v.get("query") {
        Some(Value::String(q)) => q.clone(),
        Some(Value::Object(q)) => s(q, "query").to_string(),
        _ => String::new(),
    };
    let mut var_problems = Vec::new();
    let options_from = |v: &Map<String, Value>, query: &str| -> Vec<String> {
        let from_opts: Vec<String> = arr(v, "options")
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|o| o.get("value").and_then(Value::as_str))
            .filter(|x| *x != "$__all")
            .map(str::to_string)
            .collect();
        if !query.trim().is_empty() {
            // "a,b,c" and "label : value" entries (the value is what queries see).
            query
                .split(',')
                .map(|x| {
                    let x = x.trim();
                    match x.split_once(" : ") {
                        Some((_, val)) => val.trim().to_string(),
                        None => x.to_string(),
                    }
                })
                .filter(|x| !x.is_empty())
                .collect()
        } else {
            from_opts
        }
    };
    match kind {
        "query" => {
            if let Some(p) = datasource_problem(v.get("datasource")) {
                problems.push(format!("variable {name:?}: {p}; dropped"));
                return None;
            }
            out.kind = VariableType::Query;
            let q = query.trim();
            if q.starts_with("label_names(") {
                var_problems
                    .push("label_names() is not supported by Sextant's variables".to_string());
            } else if !(q.starts_with("label_values(")
                || q.starts_with("query_result(")
                || q.starts_with("metrics("))
            {
                var_problems.push(format!(
                    "query {q:?} is not label_values(), query_result() or metrics()"
                ));
            }
            out.query = convert_expr(q, &mut var_problems);
            out.regex = s(v, "regex").to_string();
            if !out.regex.is_empty() {
                let re = out
                    .regex
                    .strip_prefix('/')
                    .and_then(|r| r.rfind('/').map(|e| &r[..e]))
                    .unwrap_or(&out.regex);
                if regex::Regex::new(re).is_err() {
                    var_problems.push(format!("regex {:?} is not valid here; dropped", out.regex));
                    out.regex.clear();
                }
            }
            if out.query.is_empty() {
                problems.push(format!("variable {name:?}: empty query; dropped"));
                return None;
            }
        }
        "custom" => {
            out.kind = VariableType::Custom;
            out.options = options_from(v, &query);
            if out.options.is_empty() {
                problems.push(format!(
                    "variable {name:?}: custom variable without values; dropped"
                ));
                return None;
            }
        }
        "interval" => {
            out.kind = VariableType::Interval;
            let opts = options_from(v, &query);
            if boolean(v.get("auto")) {
                var_problems.push("the auto interval option is not supported".into());
            }
            out.options = opts.into_iter().filter(|o| valid_duration(o)).collect();
            out.current.retain(|c| valid_duration(c));
            if out.options.is_empty() {
                problems.push(format!(
                    "variable {name:?}: interval variable without valid durations; dropped"
                ));
                return None;
            }
        }
        "constant" => {
            out.kind = VariableType::Constant;
            out.query = query;
            out.hide = true;
        }
        "textbox" => {
            out.kind = VariableType::Textbox;
            out.query = query;
        }
        "datasource" => {
            problems.push(format!(
                "variable {name:?} (data source) dropped: Sextant is the only data source"
            ));
            return None;
        }
        "adhoc" => {
            problems.push(format!(
                "variable {name:?} (ad hoc filters) is not supported; dropped"
            ));
            return None;
        }
        other => {
            problems.push(format!(
                "variable {name:?} of type {other:?} is not supported; dropped"
            ));
            return None;
        }
    }
    let valid_name = !name.is_empty()
        && !name.starts_with("__")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !valid_name {
        problems.push(format!(
            "variable {name:?}: not a valid variable name; dropped"
        ));
        return None;
    }
    for p in var_problems {
        problems.push(format!("variable {name:?}: {p}"));
    }
    Some(out)
}

fn color_ok(c: &str) -> Option<String> {
    valid_color(c).then(|| c.to_string())
}

fn convert_panel(p: &Map<String, Value>, report: &mut Vec<PanelReport>) -> Option<Panel> {
    let mut ctx = Ctx {
        problems: Vec::new(),
    };
    let gkind = s(p, "type");
    let kind = match gkind {
        "graph" | "timeseries" => PanelType::Timeseries,
        "state-timeline" | "status-history" | "trend" => {
            ctx.note(format!("{gkind} panels are shown as time series"));
            PanelType::Timeseries
        }
        "stat" => PanelType::Stat,
        "singlestat" => {
            if obj(p, "gauge").is_some_and(|g| boolean(g.get("show"))) {
                PanelType::Gauge
            } else {
                PanelType::Stat
            }
        }
        "gauge" => PanelType::Gauge,
        "bargauge" => PanelType::Bargauge,
        "barchart" => PanelType::Barchart,
        "piechart" | "grafana-piechart-panel" => PanelType::Pie,
        "heatmap" => PanelType::Heatmap,
        "table" | "table-old" => PanelType::Table,
        "text" => PanelType::Text,
        other => {
            ctx.note(format!(
                "panel type {other:?} is not supported; panel dropped"
            ));
            push_report(report, p, ctx);
            return None;
        }
    };
    let mut title = convert_expr(s(p, "title"), &mut ctx.problems);
    if title.len() > 500 {
        title.truncate(500);
    }
    let mut out = Panel {
        kind,
        title,
        description: s(p, "description").to_string(),
        ..Panel::default()
    };
    if let Some(gp) = obj(p, "gridPos") {
        let get = |k: &str| gp.get(k).and_then(Value::as_u64).unwrap_or(0).min(100_000) as u32;
        let w = get("w").clamp(1, GRID_COLUMNS);
        let x = get("x").min(GRID_COLUMNS - w);
        out.grid = Some(Grid {
            x,
            y: get("y"),
            w,
            h: get("h").clamp(1, 500),
        });
    }
    if p.get("repeat")
        .and_then(Value::as_str)
        .is_some_and(|r| !r.is_empty())
    {
        ctx.note(format!(
            "repeat by ${} is not supported; the panel appears once",
            s(p, "repeat")
        ));
    }
    if !arr(p, "transformations").is_empty() {
        let ids: Vec<&str> = arr(p, "transformations")
            .iter()
            .filter_map(|t| t.get("id").and_then(Value::as_str))
            .collect();
        ctx.note(format!(
            "transformations are not supported: {}",
            ids.join(", ")
        ));
    }
    if p.get("alert").is_some() {
        ctx.note("legacy panel alert dropped; write a Prometheus alerting rule instead");
    }
    if p.get("timeFrom")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
        || p.get("timeShift")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
    {
        ctx.note("relative time / time shift of the panel is not supported");
    }
    if !arr(p, "links").is_empty() {
        ctx.note("panel links dropped");
    }
    let panel_ds = p.get("datasource");
    let panel_ds_problem = datasource_problem(panel_ds);
    let panel_interval = p
        .get("interval")
        .and_then(Value::as_str)
        .map(|i| i.trim_start_matches('>').to_string())
        .filter(|i| valid_duration(i) || i.starts_with('$'))
        .unwrap_or_default();
    // Targets.
    if kind != PanelType::Text {
        for (i, t) in arr(p, "targets")
            .iter()
            .filter_map(Value::as_object)
            .enumerate()
        {
            let ref_id = s(t, "refId").to_string();
            let label = if ref_id.is_empty() {
                format!("query {}", i + 1)
            } else {
                format!("query {ref_id}")
            };
            let ds_problem = match t.get("datasource") {
                Some(ds) if !ds.is_null() => datasource_problem(Some(ds)),
                _ => panel_ds_problem.clone(),
            };
            if let Some(pr) = ds_problem {
                ctx.note(format!("{label}: {pr}; dropped"));
                continue;
            }
            let Some(expr) = t.get("expr").and_then(Value::as_str) else {
                if t.keys().any(|k| {
                    ["query", "rawSql", "target", "rawQuery", "queryText"].contains(&k.as_str())
                }) {
                    ctx.note(format!("{label}: not a Prometheus query; dropped"));
                }
                continue;
            };
            if expr.trim().is_empty() {
                continue;
            }
            if boolean(t.get("hide")) {
                ctx.note(format!("{label}: hidden query dropped"));
                continue;
            }
            let mut legend = s(t, "legendFormat").to_string();
            if legend == "__auto" {
                legend.clear();
            }
            let legend = convert_expr(&legend, &mut ctx.problems);
            let format = match s(t, "format") {
                "table" => TargetFormat::Table,
                "heatmap" => TargetFormat::Heatmap,
                _ if kind == PanelType::Heatmap => TargetFormat::Heatmap,
                _ => TargetFormat::TimeSeries,
            };
            let instant = boolean(t.get("instant")) && !boolean(t.get("range"))
                || s(t, "queryType") == "instant";
            let interval = match t.get("interval").and_then(Value::as_str) {
                Some(i) if !i.is_empty() => {
                    let i = i.trim_start_matches('>');
                    if valid_duration(i) || i.starts_with('$') {
                        i.to_string()
                    } else {
                        ctx.note(format!("{label}: interval {i:?} dropped"));
                        String::new()
                    }
                }
                _ => match t.get("step") {
                    Some(v) if num(Some(v)).is_some_and(|n| n >= 1.0) => {
                        format!("{}s", num(Some(v)).unwrap_or(1.0).round() as i64)
                    }
                    _ => panel_interval.clone(),
                },
            };
            let interval =
                if interval.is_empty() || valid_duration(&interval) || interval.starts_with('$') {
                    interval
                } else {
                    String::new()
                };
            if num(t.get("intervalFactor")).is_some_and(|f| f > 1.0) {
                ctx.note(format!("{label}: intervalFactor is not supported"));
            }
            out.targets.push(Target {
                expr: convert_expr(expr, &mut ctx.problems),
                legend,
                instant,
                format,
                interval,
                ref_id,
            });
        }
    }
    let fc = obj(p, "fieldConfig");
    let defaults = fc.and_then(|f| obj(f, "defaults"));
    let opts = obj(p, "options");
    // Units, decimals, min/max, thresholds: fieldConfig first, old-style panel options second.
    if let Some(dfl) = defaults {
        if let Some(u) = dfl
            .get("unit")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
        {
            out.unit = Some(u.to_string());
        }
        out.decimals = num(dfl.get("decimals"))
            .filter(|d| (0.0..=20.0).contains(d))
            .map(|d| d as u32);
        out.min = num(dfl.get("min"));
        out.max = num(dfl.get("max"));
        if let Some(th) = obj(dfl, "thresholds") {
            if s(th, "mode") == "percentage" {
                ctx.note("percentage thresholds are not supported; the steps are used as absolute values");
            }
            out.thresholds = steps(arr(th, "steps"), &mut ctx);
        }
        // The common "null → N/A" mapping matches how Sextant shows missing values anyway.
        let real_mapping = |m: &Value| {
            m.as_object().is_some_and(|m| {
                !(s(m, "type") == "special"
                    && obj(m, "options").is_some_and(|o| s(o, "match") == "null"))
            })
        };
        if arr(dfl, "mappings").iter().any(real_mapping) {
            ctx.note("value mappings are not supported");
        }
        if let Some(custom) = obj(dfl, "custom") {
            if let Some(st) = obj(custom, "stacking") {
                match s(st, "mode") {
                    "normal" => out.stack = true,
                    "percent" => {
                        out.stack = true;
                        ctx.note("100% stacking is drawn as normal stacking");
                    }
                    _ => {}
                }
            }
            if let Some(sd) = obj(custom, "scaleDistribution") {
                if s(sd, "type") == "log" {
                    out.log = if num(sd.get("log")) == Some(2.0) {
                        2
                    } else {
                        10
                    };
                }
            }
            if s(custom, "drawStyle") == "bars" && kind == PanelType::Timeseries {
                ctx.note("bars are drawn as lines");
            }
        }
    }
    // Old graph panel: yaxes, legend, stack, seriesOverrides, thresholds.
    if gkind == "graph" {
        if let Some(y) = arr(p, "yaxes").first().and_then(Value::as_object) {
            if out.unit.is_none() {
                out.unit = y.get("format").and_then(Value::as_str).map(str::to_string);
            }
            out.decimals = out.decimals.or(num(y.get("decimals"))
                .filter(|d| (0.0..=20.0).contains(d))
                .map(|d| d as u32));
            out.min = out.min.or(num(y.get("min")));
            out.max = out.max.or(num(y.get("max")));
            match num(y.get("logBase")) {
                Some(b) if b > 2.0 => out.log = 10,
                Some(b) if b > 1.0 => out.log = 2,
                _ => {}
            }
        }
        if arr(p, "yaxes")
            .get(1)
            .and_then(Value::as_object)
            .is_some_and(|y| boolean(y.get("show")))
            && arr(p, "seriesOverrides")
                .iter()
                .any(|o| num(o.get("yaxis")) == Some(2.0))
        {
            ctx.note("a second y axis is not supported; all series use the left axis");
        }
        out.stack = out.stack || boolean(p.get("stack"));
        if boolean(p.get("percentage")) {
            ctx.note("percentage stacking is drawn as normal stacking");
        }
        if boolean(p.get("bars")) && !boolean(p.get("lines")) {
            ctx.note("bars are drawn as lines");
        }
        if let Some(l) = obj(p, "legend") {
            let mut calcs = Vec::new();
            for (k, r) in [
                ("current", Reduce::Last),
                ("avg", Reduce::Mean),
                ("min", Reduce::Min),
                ("max", Reduce::Max),
                ("total", Reduce::Sum),
            ] {
                if boolean(l.get(k)) {
                    calcs.push(r);
                }
            }
            out.legend = Some(Legend {
                show: l.get("show").and_then(Value::as_bool).unwrap_or(true),
                placement: if boolean(l.get("rightSide")) {
                    Placement::Right
                } else {
                    Placement::Bottom
                },
                calcs,
            });
        }
        // Old thresholds: [{value, op: gt|lt, colorMode, fillColor, line}]
        let th = arr(p, "thresholds");
        if !th.is_empty() && out.thresholds.is_empty() {
            let mut steps = vec![Threshold {
                value: None,
                color: "green".into(),
            }];
            let mut vals: Vec<(f64, String)> = Vec::new();
            for t in th.iter().filter_map(Value::as_object) {
                let Some(v) = num(t.get("value")) else {
                    continue;
                };
                if s(t, "op") == "lt" {
                    ctx.note("\"lt\" thresholds are converted as \"gt\"");
                }
                let color = match s(t, "colorMode") {
                    "critical" => "red".to_string(),
                    "warning" => "orange".to_string(),
                    "ok" => "green".to_string(),
                    _ => color_ok(s(t, "lineColor"))
                        .or_else(|| color_ok(s(t, "fillColor")))
                        .unwrap_or_else(|| "red".into()),
                };
                vals.push((v, color));
            }
            vals.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (v, c) in vals {
                steps.push(Threshold {
                    value: Some(v),
                    color: c,
                });
            }
            if steps.len() > 1 {
                out.thresholds = steps;
            }
        }
        for o in arr(p, "seriesOverrides")
            .iter()
            .filter_map(Value::as_object)
        {
            let alias = s(o, "alias");
            if alias.is_empty() {
                continue;
            }
            let mut ov = Override {
                matcher: OverrideMatch {
                    name: alias.to_string(),
                },
                ..Override::default()
            };
            let mut used = false;
            for (k, v) in o {
                match k.as_str() {
                    "alias" => {}
                    "color" => {
                        if let Some(c) = v.as_str().and_then(color_ok) {
                            ov.color = Some(c);
                            used = true;
                        }
                    }
                    "hiddenSeries" => {
                        if v == &Value::Bool(true) {
                            ov.hide = true;
                            used = true;
                        }
                    }
                    // Presentation details that do not change what is drawn.
                    "linewidth" | "fill" | "fillGradient" | "dashes" | "zindex"
                    | "nullPointMode" => {}
                    other => ctx.note(format!(
                        "series override {alias:?}: {other} is not supported"
                    )),
                }
            }
            if used {
                out.overrides.push(ov);
            }
        }
    }
    // Old singlestat and table-old.
    if gkind == "singlestat" {
        out.unit = out
            .unit
            .or(p.get("format").and_then(Value::as_str).map(str::to_string));
        out.decimals = out.decimals.or(num(p.get("decimals"))
            .filter(|d| (0.0..=20.0).contains(d))
            .map(|d| d as u32));
        out.reduce = reducer(s(p, "valueName")).or(Some(Reduce::Mean));
        out.sparkline = Some(obj(p, "sparkline").is_some_and(|sp| boolean(sp.get("show"))));
        if let Some(g) = obj(p, "gauge") {
            if kind == PanelType::Gauge {
                out.min = out.min.or(num(g.get("minValue")));
                out.max = out.max.or(num(g.get("maxValue")));
            }
        }
        let th: Vec<f64> = s(p, "thresholds")
            .split(',')
            .filter_map(|x| x.trim().parse().ok())
            .collect();
        let colors: Vec<String> = arr(p, "colors")
            .iter()
            .filter_map(|c| c.as_str().and_then(color_ok))
            .collect();
        if !th.is_empty() && out.thresholds.is_empty() {
            let color = |i: usize| {
                colors
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| ["green", "orange", "red"][i.min(2)].to_string())
            };
            out.thresholds.push(Threshold {
                value: None,
                color: color(0),
            });
            for (i, v) in th.iter().enumerate() {
                out.thresholds.push(Threshold {
                    value: Some(*v),
                    color: color(i + 1),
                });
            }
            if out
                .thresholds
                .windows(2)
                .skip(1)
                .any(|w| w[1].value < w[0].value)
            {
                ctx.note("thresholds not ascending; dropped");
                out.thresholds.clear();
            }
        }
        let real_map = |m: &Value| m.as_object().is_some_and(|m| s(m, "text") != "N/A");
        if arr(p, "valueMaps").iter().any(real_map)
            || (p.get("mappingType").and_then(Value::as_i64) == Some(2)
                && arr(p, "rangeMaps").iter().any(real_map))
        {
            ctx.note("value mappings are not supported");
        }
    }
    if gkind == "table-old" || (gkind == "table" && p.get("styles").is_some()) {
        let styles = arr(p, "styles");
        let units: Vec<&str> = styles
            .iter()
            .filter_map(Value::as_object)
            .filter(|st| s(st, "type") == "number")
            .map(|st| s(st, "unit"))
            .filter(|u| !u.is_empty() && *u != "short")
            .collect();
        if let Some(u) = units.first() {
            out.unit = out.unit.or(Some(u.to_string()));
        }
        if styles.len() > 1 {
            ctx.note("per-column table styles are not supported (first number unit used)");
        }
    }
    // Current panels' options.
    if let Some(o) = opts {
        if let Some(r) = obj(o, "reduceOptions") {
            let calc = arr(r, "calcs")
                .first()
                .and_then(Value::as_str)
                .unwrap_or("lastNotNull");
            match reducer(calc) {
                Some(red)
                    if matches!(
                        kind,
                        PanelType::Stat | PanelType::Gauge | PanelType::Bargauge | PanelType::Pie
                    ) =>
                {
                    out.reduce = Some(red)
                }
                None if matches!(
                    kind,
                    PanelType::Stat | PanelType::Gauge | PanelType::Bargauge | PanelType::Pie
                ) =>
                {
                    ctx.note(format!("reducer {calc:?} is not supported; last used"));
                    out.reduce = Some(Reduce::Last);
                }
                _ => {}
            }
            if boolean(r.get("values")) {
                ctx.note("\"all values\" mode is not supported; series are reduced");
            }
        }
        if kind == PanelType::Stat && gkind == "stat" {
            out.sparkline = Some(s(o, "graphMode") != "none");
        }
        match s(o, "orientation") {
            "horizontal"
                if matches!(
                    kind,
                    PanelType::Bargauge | PanelType::Barchart | PanelType::Stat | PanelType::Gauge
                ) =>
            {
                out.orientation = Some(Orientation::Horizontal)
            }
            "vertical"
                if matches!(
                    kind,
                    PanelType::Bargauge | PanelType::Barchart | PanelType::Stat | PanelType::Gauge
                ) =>
            {
                out.orientation = Some(Orientation::Vertical)
            }
            _ => {}
        }
        if let Some(l) = obj(o, "legend") {
            let show = l.get("showLegend").and_then(Value::as_bool).unwrap_or(true)
                && s(l, "displayMode") != "hidden";
            let mut calcs = Vec::new();
            for c in arr(l, "calcs").iter().filter_map(Value::as_str) {
                match reducer(c) {
                    Some(r) if !calcs.contains(&r) => calcs.push(r),
                    Some(_) => {}
                    None => ctx.note(format!("legend value {c:?} is not supported")),
                }
            }
            if matches!(
                kind,
                PanelType::Timeseries | PanelType::Barchart | PanelType::Pie | PanelType::Heatmap
            ) {
                out.legend = Some(Legend {
                    show,
                    placement: if s(l, "placement") == "right" {
                        Placement::Right
                    } else {
                        Placement::Bottom
                    },
                    calcs,
                });
            }
        }
        if kind == PanelType::Text {
            out.text = s(o, "content").to_string();
            if s(o, "mode") == "html" {
                ctx.note("HTML content is shown as markdown");
            }
        }
    }
    if kind == PanelType::Text && out.text.is_empty() {
        out.text = s(p, "content").to_string();
        if s(p, "mode") == "html" {
            ctx.note("HTML content is shown as markdown");
        }
    }
    // fieldConfig overrides.
    if let Some(ovs) = fc.map(|f| arr(f, "overrides")) {
        for o in ovs.iter().filter_map(Value::as_object) {
            let m = obj(o, "matcher");
            let (mid, mopt) = (
                m.map(|m| s(m, "id")).unwrap_or(""),
                m.and_then(|m| m.get("options"))
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            );
            let name = match mid {
                "byName" => mopt.to_string(),
                "byRegexp" => {
                    if mopt.starts_with('/') && mopt.len() > 1 && mopt.ends_with('/') {
                        mopt.to_string()
                    } else {
                        format!("/{mopt}/")
                    }
                }
                other => {
                    ctx.note(format!(
                        "override matcher {other:?} is not supported; override dropped"
                    ));
                    continue;
                }
            };
            if name.is_empty() || name == "//" {
                continue;
            }
            let mut ov = Override {
                matcher: OverrideMatch { name: name.clone() },
                ..Override::default()
            };
            for prop in arr(o, "properties").iter().filter_map(Value::as_object) {
                let v = prop.get("value");
                match s(prop, "id") {
                    "unit" => ov.unit = v.and_then(Value::as_str).map(str::to_string),
                    "displayName" => {
                        ov.display_name = v.and_then(Value::as_str).map(str::to_string)
                    }
                    "color" => {
                        let c = v
                            .and_then(Value::as_object)
                            .map(|c| s(c, "fixedColor"))
                            .unwrap_or("");
                        match color_ok(c) {
                            Some(c) => ov.color = Some(c),
                            None => ctx.note(format!(
                                "override {name:?}: colour mode other than fixed is not supported"
                            )),
                        }
                    }
                    "custom.hideFrom" => {
                        ov.hide = v
                            .and_then(Value::as_object)
                            .is_some_and(|h| boolean(h.get("viz")));
                    }
                    other => ctx.note(format!(
                        "override {name:?}: property {other:?} is not supported"
                    )),
                }
            }
            if ov.unit.is_some() || ov.color.is_some() || ov.display_name.is_some() || ov.hide {
                if let Some(c) = &ov.color {
                    if !valid_color(c) {
                        ov.color = None;
                    }
                }
                out.overrides.push(ov);
            }
        }
    }
    // Make the panel valid.
    if let (Some(lo), Some(hi)) = (out.min, out.max) {
        if lo > hi {
            ctx.note(format!("min {lo} is above max {hi}; both dropped"));
            out.min = None;
            out.max = None;
        }
    }
    if let Some(r) = &out.overrides.iter().find(|o| {
        let n = &o.matcher.name;
        n.len() > 2
            && n.starts_with('/')
            && n.ends_with('/')
            && regex::Regex::new(&n[1..n.len() - 1]).is_err()
    }) {
        ctx.note(format!(
            "override {:?}: regex not valid here; dropped",
            r.matcher.name
        ));
        out.overrides.retain(|o| {
            let n = &o.matcher.name;
            !(n.len() > 2
                && n.starts_with('/')
                && n.ends_with('/')
                && regex::Regex::new(&n[1..n.len() - 1]).is_err())
        });
    }
    if out.targets.is_empty()
        && !matches!(kind, PanelType::Text)
        && !arr(p, "targets").is_empty()
        && ctx.problems.is_empty()
    {
        ctx.note("no Prometheus query left");
    }
    push_report(report, p, ctx);
    Some(out)
}

fn steps(raw: &[Value], ctx: &mut Ctx) -> Vec<Threshold> {
    let mut out: Vec<Threshold> = Vec::new();
    for st in raw.iter().filter_map(Value::as_object) {
        let color = s(st, "color");
        let Some(color) = color_ok(color) else {
            ctx.note(format!(
                "threshold colour {color:?} not understood; step dropped"
            ));
            continue;
        };
        let value = num(st.get("value"));
        if out.is_empty() {
            out.push(Threshold { value: None, color });
            if value.is_some() {
                // Grafana's base step is -Infinity; a first step with a value is still the base.
            }
            continue;
        }
        match value {
            Some(v) if out.last().and_then(|l| l.value).is_none_or(|l| v >= l) => {
                out.push(Threshold {
                    value: Some(v),
                    color,
                })
            }
            _ => ctx.note("threshold steps not ascending; step dropped"),
        }
    }
    out
}

#[cfg(test)]
mod tests;
