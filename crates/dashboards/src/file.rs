//! Reading and writing dashboard files. YAML and JSON hold the same structure; errors name the
//! file, the line and the field (`host.yml:12: panels[3].grid.w: must be 1 to 24, got 30`),
//! like sextant.yml's. Export writes the canonical form that [`parse`] reads back unchanged.

use std::fmt;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::model::Dashboard;

/// File formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// By file extension: `.json` is JSON, everything else YAML.
    pub fn of_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Yaml,
        }
    }

    /// From a `format=` parameter.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// A dashboard file error: `file:line: message` (line 0 = unknown).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub file: String,
    pub line: u64,
    pub msg: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.msg)
        } else {
            write!(f, "{}: {}", self.file, self.msg)
        }
    }
}

/// Just the positions of a dashboard's parts, to point validation errors at a line.
#[derive(Deserialize, Default)]
struct Shadow {
    uid: Option<Spanned<IgnoredAny>>,
    title: Option<Spanned<IgnoredAny>>,
    refresh: Option<Spanned<IgnoredAny>>,
    time: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    variables: Vec<Spanned<IgnoredAny>>,
    #[serde(default)]
    panels: Vec<Spanned<IgnoredAny>>,
}

/// Largest dashboard file accepted (bytes).
pub const MAX_FILE_SIZE: usize = 16 << 20;

/// Parses one dashboard; `file` names it in errors and its stem is the default uid.
/// The dashboard is validated and normalized (grid positions filled in).
pub fn parse(text: &str, file: &str, format: Format) -> Result<Dashboard, LoadError> {
    let err = |line: u64, msg: String| LoadError {
        file: file.to_string(),
        line,
        msg,
    };
    if text.len() > MAX_FILE_SIZE {
        return Err(err(0, format!("larger than {MAX_FILE_SIZE} bytes")));
    }
    let mut d: Dashboard = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| {
            let msg = e.to_string();
            // serde_json appends " at line L column C".
            let msg = msg
                .rfind(" at line ")
                .map(|i| msg[..i].to_string())
                .unwrap_or(msg);
            err(e.line() as u64, msg)
        })?,
        Format::Yaml => serde_saphyr::from_str::<Option<Dashboard>>(text)
            .map_err(|e| {
                let line = e.location().map(|l| l.line()).unwrap_or(0);
                err(line, yaml_message(&e))
            })?
            .ok_or_else(|| err(0, "empty file".into()))?,
    };
    if d.uid.is_empty() {
        d.uid = std::path::Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
    }
    d.normalize();
    d.validate().map_err(|fe| {
        let line = field_line(text, &fe.field);
        err(line, fe.to_string())
    })?;
    Ok(d)
}

/// The line of the part of the dashboard a field path points into (0 if unknown).
fn field_line(text: &str, field: &str) -> u64 {
    let Ok(Some(s)) = serde_saphyr::from_str::<Option<Shadow>>(text) else {
        return 0;
    };
    let index = |prefix: &str| -> Option<usize> {
        let rest = field.strip_prefix(prefix)?.strip_prefix('[')?;
        rest[..rest.find(']')?].parse().ok()
    };
    let line = if let Some(i) = index("panels") {
        s.panels.get(i).map(|p| p.referenced.line())
    } else if let Some(i) = index("variables") {
        s.variables.get(i).map(|p| p.referenced.line())
    } else {
        let top = field.split(['.', '[']).next().unwrap_or_default();
        match top {
            "uid" => s.uid.map(|x| x.referenced.line()),
            "title" => s.title.map(|x| x.referenced.line()),
            "refresh" => s.refresh.map(|x| x.referenced.line()),
            "time" => s.time.map(|x| x.referenced.line()),
            _ => None,
        }
    };
    line.unwrap_or(0)
}

/// serde-saphyr's message without its location prefix and snippet.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let mut msg = first.strip_prefix("error: ").unwrap_or(first);
    if let Some(rest) = msg.strip_prefix("line ") {
        if let Some(i) = rest.find(": ") {
            msg = &rest[i + 2..];
        }
    }
    msg.to_string()
}

/// The file text of a dashboard.
pub fn export(d: &Dashboard, format: Format) -> String {
    match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(d).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Yaml => serde_saphyr::to_string(d).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    const SAMPLE: &str = r#"uid: host
title: Host
description: optional
tags: [host, node]
refresh: 30s
time: {from: now-6h, to: now}
variables:
  - name: instance
    label: Instance
    type: query
    query: label_values(node_uname_info, instance)
    regex: ""
    multi: true
    include_all: true
    all_value: ".*"
    current: [ ]
  - name: step
    type: interval
    options: [1m, 5m, 1h]
panels:
  - type: row
    title: CPU
    collapsed: false
  - type: timeseries
    title: CPU busy
    description: optional
    grid: {x: 0, y: 1, w: 12, h: 8}
    targets:
      - expr: 'sum by (instance) (rate(node_cpu_seconds_total{mode!="idle",instance=~"$instance"}[$__rate_interval]))'
        legend: '{{instance}}'
        instant: false
        format: time_series
        interval: ""
        ref: A
    unit: percentunit
    decimals: 1
    min: 0
    max: 1
    thresholds: [{value: null, color: green}, {value: 0.8, color: red}]
    stack: false
    log: 0
    legend: {show: true, placement: bottom, calcs: [mean, max, last]}
    overrides: [{match: {name: "/idle.*/"}, unit: s, color: red, display_name: x, hide: false}]
  - type: stat
    title: Up
    targets: [{expr: up}]
    reduce: last
    sparkline: true
    orientation: horizontal
  - type: text
    title: Notes
    text: |
      # Hello
      *markdown* with "quotes" and: colons
"#;

    #[test]
    fn parses_the_contract_example() {
        let d = parse(SAMPLE, "dashboards/host.yml", Format::Yaml).unwrap();
        assert_eq!(d.uid, "host");
        assert_eq!(d.variables.len(), 2);
        assert_eq!(d.variables[0].all_value.as_deref(), Some(".*"));
        assert_eq!(d.variables[1].kind, VariableType::Interval);
        assert_eq!(d.panels.len(), 4);
        assert_eq!(
            d.panels[0].grid,
            Some(Grid {
                x: 0,
                y: 0,
                w: 24,
                h: 1
            })
        );
        let p = &d.panels[1];
        assert_eq!(p.targets[0].ref_id, "A");
        assert_eq!(p.thresholds[0].value, None);
        assert_eq!(p.thresholds[1].value, Some(0.8));
        assert_eq!(
            p.legend.as_ref().unwrap().calcs,
            vec![Reduce::Mean, Reduce::Max, Reduce::Last]
        );
        assert_eq!(p.overrides[0].matcher.name, "/idle.*/");
        // Panels without a grid are placed below the others.
        assert_eq!(
            d.panels[2].grid,
            Some(Grid {
                x: 0,
                y: 9,
                w: 12,
                h: 8
            })
        );
        assert!(d.panels[3].text.contains("colons"));
    }

    #[test]
    fn round_trip_yaml_and_json() {
        let d = parse(SAMPLE, "host.yml", Format::Yaml).unwrap();
        for f in [Format::Yaml, Format::Json] {
            let text = export(&d, f);
            let back = parse(&text, "x.any", f).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, d, "{f:?}:\n{text}");
            // Exporting again gives the same text.
            assert_eq!(export(&back, f), text);
        }
        // The uid defaults to the file stem.
        let d = parse("title: T\n", "dir/my-board.yml", Format::Yaml).unwrap();
        assert_eq!(d.uid, "my-board");
        let d = parse("{\"title\": \"T\"}", "b.json", Format::Json).unwrap();
        assert_eq!(d.uid, "b");
    }

    fn e(text: &str) -> String {
        parse(text, "d.yml", Format::Yaml).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let m = e("title: T\npanels:\n  - type: timeseries\n    titel: x\n");
        assert!(m.starts_with("d.yml:4: unknown field `titel`"), "{m}");
        let m = e("title: T\npanels:\n  - type: graph\n");
        assert!(m.starts_with("d.yml:3: "), "{m}");
        assert!(m.contains("graph"), "{m}");
        let m = e(
            "title: T\npanels:\n  - title: a\n  - title: b\n    grid: {x: 20, y: 0, w: 12, h: 8}\n",
        );
        assert_eq!(
            m,
            "d.yml:4: panels[1].grid.x: x + w = 32 is beyond the 24 columns"
        );
        let m = e("title: T\nvariables:\n  - name: a\n    type: custom\n");
        assert_eq!(
            m,
            "d.yml:3: variables[0].options: a custom variable needs options"
        );
        let m = e("uid: 'a b'\ntitle: T\n");
        assert!(
            m.starts_with("d.yml:1: uid: \"a b\" is not a valid uid"),
            "{m}"
        );
        let m = e("title: T\nrefresh: 5 minutes\n");
        assert_eq!(m, "d.yml:2: refresh: invalid duration \"5 minutes\"");
        let m = e("title: T\npanels:\n  - targets: [{expr: up, legnd: x}]\n");
        assert!(m.starts_with("d.yml:3: unknown field `legnd`"), "{m}");
        let m = e("title: T\npanels:\n  - thresholds: [{value: null, color: green}, {value: null, color: red}]\n");
        assert!(
            m.contains("panels[0].thresholds[1].value: only the first step"),
            "{m}"
        );
        let m = e("title: T\npanels:\n  - type: text\n    targets: [{expr: up}]\n");
        assert!(m.contains("text panels have no queries"), "{m}");
        let m = e("title: ''\n");
        assert_eq!(m, "d.yml:1: title: must not be empty");
        let m = parse("{\"title\": \"T\", \"panelz\": []}", "d.json", Format::Json)
            .unwrap_err()
            .to_string();
        assert!(m.starts_with("d.json:1: unknown field `panelz`"), "{m}");
        let m = e("");
        assert_eq!(m, "d.yml: empty file");
    }
}
