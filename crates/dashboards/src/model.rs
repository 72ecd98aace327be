//! The dashboard model: what a dashboard file (`dashboards/*.yml`, YAML or JSON) holds and what
//! the HTTP API and the web UI exchange. It is the contract between the backend and the UI
//! (docs/dashboards.md), so every struct rejects unknown keys and [`Dashboard::validate`]
//! checks what serde cannot (uids, grid bounds, variable names, durations), naming the field.

use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One dashboard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    /// `[a-zA-Z0-9_-]{1,40}`; files default it to their stem.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Auto-refresh interval (`30s`); empty = off.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub refresh: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<Variable>,
    /// A flat list; a `row` panel starts a row that runs until the next row.
    #[serde(default)]
    pub panels: Vec<Panel>,
}

/// The default time range, Grafana style (`now-6h` .. `now`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    pub from: String,
    pub to: String,
}

/// Kinds of template variables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VariableType {
    #[default]
    Query,
    Custom,
    Interval,
    Constant,
    Textbox,
}

/// A template variable (`$name` in queries).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[serde(rename = "type", default)]
    pub kind: VariableType,
    /// query: `label_values(metric, label)`, `label_values(label)`, `query_result(expr)`,
    /// `metrics(regex)`; constant/textbox: the value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query: String,
    /// Grafana-style `/regex/` filter (and capture group) applied to the values.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub regex: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub multi: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_all: bool,
    /// The value "All" stands for (default: every value joined as a regex alternation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_value: Option<String>,
    /// custom: the values; interval: the durations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The default selection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub current: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hide: bool,
}

/// Panel kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanelType {
    Row,
    #[default]
    Timeseries,
    Stat,
    Gauge,
    Bargauge,
    Barchart,
    Pie,
    Heatmap,
    Table,
    Text,
}

impl PanelType {
    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            PanelType::Row => "row",
            PanelType::Timeseries => "timeseries",
            PanelType::Stat => "stat",
            PanelType::Gauge => "gauge",
            PanelType::Bargauge => "bargauge",
            PanelType::Barchart => "barchart",
            PanelType::Pie => "pie",
            PanelType::Heatmap => "heatmap",
            PanelType::Table => "table",
            PanelType::Text => "text",
        }
    }
}

/// Position on the 24-column grid; `h` in 30 px units (Grafana's gridPos).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Grid columns.
pub const GRID_COLUMNS: u32 = 24;

/// One panel (or a row header when `type: row`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    #[serde(rename = "type", default)]
    pub kind: PanelType,
    #[serde(default)]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Placed automatically when absent (filled in by [`Dashboard::normalize`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<Grid>,
    /// Rows only: folded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub collapsed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Steps; the first has `value: null` (the base colour).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Threshold>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub stack: bool,
    /// 0 = linear, 2 or 10 = logarithmic with that base.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legend: Option<Legend>,
    /// stat/gauge/bargauge/pie: how a series becomes one value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduce: Option<Reduce>,
    /// stat: draw the series behind the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparkline: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orientation: Option<Orientation>,
    /// text panels: markdown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
}

/// One PromQL query of a panel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub expr: String,
    /// Series name template, `{{label}}` placeholders.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub legend: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub instant: bool,
    #[serde(default, skip_serializing_if = "TargetFormat::is_default")]
    pub format: TargetFormat,
    /// Minimum step (`30s`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interval: String,
    #[serde(rename = "ref", default, skip_serializing_if = "String::is_empty")]
    pub ref_id: String,
}

/// How a query's result is shaped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetFormat {
    #[default]
    TimeSeries,
    Table,
    Heatmap,
}

impl TargetFormat {
    fn is_default(&self) -> bool {
        *self == TargetFormat::TimeSeries
    }
}

/// A threshold step: from `value` (null = minus infinity) on, use `color`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub value: Option<f64>,
    pub color: String,
}

/// Legend options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Legend {
    #[serde(default = "yes")]
    pub show: bool,
    #[serde(default, skip_serializing_if = "Placement::is_default")]
    pub placement: Placement,
    /// Values shown per series: last|mean|max|min|sum|first|count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calcs: Vec<Reduce>,
}

fn yes() -> bool {
    true
}

/// Where the legend goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    #[default]
    Bottom,
    Right,
}

impl Placement {
    fn is_default(&self) -> bool {
        *self == Placement::Bottom
    }
}

/// Reducers from a series to one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    Last,
    Mean,
    Max,
    Min,
    Sum,
    First,
    Count,
}

/// Bar orientation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Orientation {
    Horizontal,
    Vertical,
    Auto,
}

/// Per-series settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    #[serde(rename = "match")]
    pub matcher: OverrideMatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hide: bool,
}

/// Which series an override applies to: a series name, or `/regex/`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideMatch {
    pub name: String,
}

/// A validation error: where (`panels[3].grid.w`) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `panels[2].targets[0].expr`.
    pub field: String,
    pub msg: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.msg)
    }
}

/// Whether `uid` is a valid dashboard uid.
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 40
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `s` is a Prometheus duration (`30s`, `1h30m`, `5m`).
pub fn valid_duration(s: &str) -> bool {
    let units = ["ms", "s", "m", "h", "d", "w", "y"];
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(u) = units.iter().find(|u| rest.starts_with(**u)) else {
            return false;
        };
        rest = &rest[u.len()..];
    }
    true
}

/// Whether `s` is a time range end: `now`, `now-6h`, `now-1d/d`, `now/w`, unix milliseconds or
/// an RFC 3339 timestamp.
pub fn valid_time(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix("now") {
        let (off, round) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let off_ok = off.is_empty()
            || off
                .strip_prefix('-')
                .or_else(|| off.strip_prefix('+'))
                .is_some_and(valid_duration);
        let round_ok = round.is_none_or(|r| ["s", "m", "h", "d", "w", "M", "y"].contains(&r));
        return off_ok && round_ok;
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    // RFC 3339: 2024-01-02T03:04:05Z / +01:00 / fractional seconds.
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        && b[13] == b':'
        && b[16] == b':'
        && [0usize, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
}

fn valid_var_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with("__")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// Whether a colour is acceptable: a CSS name (letters, dashes) or `#rgb`/`#rrggbb(aa)`, or
/// `rgb(...)`/`rgba(...)`.
pub fn valid_color(c: &str) -> bool {
    if let Some(hex) = c.strip_prefix('#') {
        return matches!(hex.len(), 3 | 4 | 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if (c.starts_with("rgb(") || c.starts_with("rgba(")) && c.ends_with(')') {
        return c.len() < 64;
    }
    !c.is_empty() && c.len() <= 40 && c.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
}

impl Dashboard {
    /// Checks everything serde does not; the first problem found.
    pub fn validate(&self) -> Result<(), FieldError> {
        let err = |field: String, msg: String| Err(FieldError { field, msg });
        if !valid_uid(&self.uid) {
            return err(
                "uid".into(),
                format!(
                    "{:?} is not a valid uid ([a-zA-Z0-9_-], 1 to 40 characters)",
                    self.uid
                ),
            );
        }
        if self.title.trim().is_empty() {
            return err("title".into(), "must not be empty".into());
        }
        if !self.refresh.is_empty() && !valid_duration(&self.refresh) {
            return err(
                "refresh".into(),
                format!("invalid duration {:?}", self.refresh),
            );
        }
        if let Some(t) = &self.time {
            for (n, v) in [("from", &t.from), ("to", &t.to)] {
                if !valid_time(v) {
                    return err(
                        format!("time.{n}"),
                        format!("invalid time {v:?} (now, now-6h, now-1d/d, unix ms or RFC 3339)"),
                    );
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, v) in self.variables.iter().enumerate() {
            let f = |s: &str| format!("variables[{i}].{s}");
            if !valid_var_name(&v.name) {
                return err(
                    f("name"),
                    format!("{:?} is not a valid variable name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", v.name),
                );
            }
            if !names.insert(v.name.as_str()) {
                return err(f("name"), format!("duplicate variable {:?}", v.name));
            }
            match v.kind {
                VariableType::Query if v.query.trim().is_empty() => {
                    return err(f("query"), "a query variable needs a query".into());
                }
                VariableType::Custom if v.options.is_empty() => {
                    return err(f("options"), "a custom variable needs options".into());
                }
                VariableType::Interval => {
                    if v.options.is_empty() {
                        return err(f("options"), "an interval variable needs options".into());
                    }
                    if let Some(o) = v
                        .options
                        .iter()
                        .find(|o| !valid_duration(o) && o.as_str() != "auto")
                    {
                        return err(f("options"), format!("invalid duration {o:?}"));
                    }
                }
                _ => {}
            }
            if !v.regex.is_empty() {
                let re = v
                    .regex
                    .strip_prefix('/')
                    .and_then(|r| r.rfind('/').map(|e| &r[..e]))
                    .unwrap_or(&v.regex);
                if let Err(e) = regex::Regex::new(re) {
                    return err(f("regex"), format!("invalid regex: {e}"));
                }
            }
        }
        for (i, p) in self.panels.iter().enumerate() {
            let f = |s: &str| format!("panels[{i}].{s}");
            if let Some(g) = p.grid {
                if g.w == 0 || g.w > GRID_COLUMNS {
                    return err(
                        f("grid.w"),
                        format!("must be 1 to {GRID_COLUMNS}, got {}", g.w),
                    );
                }
                if g.x + g.w > GRID_COLUMNS {
                    return err(
                        f("grid.x"),
                        format!("x + w = {} is beyond the {GRID_COLUMNS} columns", g.x + g.w),
                    );
                }
                if g.h == 0 || g.h > 500 {
                    return err(f("grid.h"), format!("must be 1 to 500, got {}", g.h));
                }
                if g.y > 100_000 {
                    return err(f("grid.y"), format!("too large: {}", g.y));
                }
            }
            if p.kind != PanelType::Row && p.collapsed {
                return err(f("collapsed"), "only rows can be collapsed".into());
            }
            if matches!(p.kind, PanelType::Row | PanelType::Text) && !p.targets.is_empty() {
                return err(
                    f("targets"),
                    format!("{} panels have no queries", p.kind.as_str()),
                );
            }
            for (j, t) in p.targets.iter().enumerate() {
                if t.expr.trim().is_empty() {
                    return err(f(&format!("targets[{j}].expr")), "must not be empty".into());
                }
                if !t.interval.is_empty()
                    && !valid_duration(t.interval.trim_start_matches('>'))
                    && !t.interval.starts_with('$')
                {
                    return err(
                        f(&format!("targets[{j}].interval")),
                        format!("invalid duration {:?}", t.interval),
                    );
                }
            }
            if p.log != 0 && p.log != 2 && p.log != 10 {
                return err(f("log"), format!("must be 0, 2 or 10, got {}", p.log));
            }
            if let Some(d) = p.decimals {
                if d > 20 {
                    return err(f("decimals"), format!("must be 0 to 20, got {d}"));
                }
            }
            if let (Some(lo), Some(hi)) = (p.min, p.max) {
                if lo > hi {
                    return err(f("max"), format!("max {hi} is below min {lo}"));
                }
            }
            for (j, t) in p.thresholds.iter().enumerate() {
                if !valid_color(&t.color) {
                    return err(
                        f(&format!("thresholds[{j}].color")),
                        format!("invalid colour {:?}", t.color),
                    );
                }
                if j > 0 && t.value.is_none() {
                    return err(
                        f(&format!("thresholds[{j}].value")),
                        "only the first step may have value null".into(),
                    );
                }
                if j > 1 {
                    if let (Some(a), Some(b)) = (p.thresholds[j - 1].value, t.value) {
                        if b < a {
                            return err(
                                f(&format!("thresholds[{j}].value")),
                                format!("steps must be ascending ({b} after {a})"),
                            );
                        }
                    }
                }
            }
            for (j, o) in p.overrides.iter().enumerate() {
                let n = &o.matcher.name;
                if n.is_empty() {
                    return err(
                        f(&format!("overrides[{j}].match.name")),
                        "must not be empty".into(),
                    );
                }
                if n.len() > 2 && n.starts_with('/') && n.ends_with('/') {
                    if let Err(e) = regex::Regex::new(&n[1..n.len() - 1]) {
                        return err(
                            f(&format!("overrides[{j}].match.name")),
                            format!("invalid regex: {e}"),
                        );
                    }
                }
                if let Some(c) = &o.color {
                    if !valid_color(c) {
                        return err(
                            f(&format!("overrides[{j}].color")),
                            format!("invalid colour {c:?}"),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Places panels without a grid position: after the lowest panel so far, 12 columns wide
    /// and 8 high, two per line; rows span the full width.
    pub fn normalize(&mut self) {
        let mut bottom = 0u32; // first free y below everything placed
        let mut line_y = 0u32;
        let mut next_x = 0u32;
        for p in &mut self.panels {
            match p.grid {
                Some(g) => {
                    bottom = bottom.max(g.y + g.h);
                    line_y = bottom;
                    next_x = 0;
                }
                None if p.kind == PanelType::Row => {
                    p.grid = Some(Grid {
                        x: 0,
                        y: bottom,
                        w: GRID_COLUMNS,
                        h: 1,
                    });
                    bottom += 1;
                    line_y = bottom;
                    next_x = 0;
                }
                None => {
                    if next_x + 12 > GRID_COLUMNS {
                        next_x = 0;
                        line_y = bottom;
                    }
                    let g = Grid {
                        x: next_x,
                        y: line_y,
                        w: 12,
                        h: 8,
                    };
                    next_x += 12;
                    bottom = bottom.max(g.y + g.h);
                    p.grid = Some(g);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        for ok in ["30s", "1h30m", "5m", "100ms", "1d"] {
            assert!(valid_duration(ok), "{ok}");
        }
        for bad in ["", "5", "m", "5x", "1.5h", "-5m"] {
            assert!(!valid_duration(bad), "{bad}");
        }
        for ok in [
            "now",
            "now-6h",
            "now-1d/d",
            "now/w",
            "1700000000000",
            "2024-01-02T03:04:05Z",
        ] {
            assert!(valid_time(ok), "{ok}");
        }
        for bad in ["", "yesterday", "now-", "now-6x", "now/q", "2024-01-02"] {
            assert!(!valid_time(bad), "{bad}");
        }
    }

    #[test]
    fn normalize_places_panels() {
        let mut d = Dashboard {
            uid: "x".into(),
            title: "X".into(),
            panels: vec![
                Panel::default(),
                Panel::default(),
                Panel::default(),
                Panel {
                    kind: PanelType::Row,
                    ..Panel::default()
                },
                Panel::default(),
            ],
            ..Dashboard::default()
        };
        d.normalize();
        let g: Vec<_> = d.panels.iter().map(|p| p.grid.unwrap()).collect();
        assert_eq!((g[0].x, g[0].y), (0, 0));
        assert_eq!((g[1].x, g[1].y), (12, 0));
        assert_eq!((g[2].x, g[2].y), (0, 8));
        assert_eq!((g[3].y, g[3].w, g[3].h), (16, 24, 1));
        assert_eq!((g[4].x, g[4].y), (0, 17));
        d.validate().unwrap();
    }
}
