use super::*;
use serde_json::json;

fn testdata(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/grafana")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn count(d: &Dashboard, k: PanelType) -> usize {
    d.panels.iter().filter(|p| p.kind == k).count()
}

fn problems(r: &[PanelReport]) -> Vec<String> {
    r.iter()
        .flat_map(|p| p.problems.iter().map(move |m| format!("{}: {m}", p.title)))
        .collect()
}

/// Every query of an imported dashboard parses with Sextant's PromQL parser once its
/// variables are substituted (except ones the report already names).
fn queries_parse(d: &Dashboard) -> usize {
    let mut n = 0;
    for p in &d.panels {
        for t in &p.targets {
            let e = crate::expand_for_check(&t.expr, &d.variables);
            sextant_promql::parse(&e)
                .unwrap_or_else(|err| panic!("{} / {}: {e}: {err}", d.title, p.title));
            n += 1;
        }
    }
    n
}

#[test]
fn node_exporter_full_current_schema() {
    let out = import_str(&testdata("rfmoz-node-exporter-full.json")).unwrap();
    assert_eq!(out.len(), 1);
    let Imported {
        dashboard: d,
        report,
    } = &out[0];
    assert_eq!(d.uid, "rYdddlPWk");
    assert_eq!(d.title, "Node Exporter Full");
    // 141 panels in the file: 16 rows (collapsed ones hold their children) and 125 others.
    assert_eq!(d.panels.len(), 141);
    assert_eq!(count(d, PanelType::Row), 16);
    assert_eq!(count(d, PanelType::Timeseries), 111);
    assert_eq!(count(d, PanelType::Gauge), 5);
    assert_eq!(count(d, PanelType::Stat), 5);
    assert_eq!(count(d, PanelType::Bargauge), 4);
    // The data source variable is dropped with a note; the others stay.
    let names: Vec<&str> = d.variables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, vec!["job", "nodename", "node"]);
    let dash_report = &report[0];
    assert_eq!(dash_report.kind, "dashboard");
    assert!(
        dash_report
            .problems
            .iter()
            .any(|p| p.contains("\"ds_prometheus\" (data source) dropped")),
        "{:?}",
        dash_report
    );
    // A specific stat: CPU cores, instant, lastNotNull → last, no sparkline.
    let cores = d.panels.iter().find(|p| p.title == "CPU Cores").unwrap();
    assert_eq!(cores.kind, PanelType::Stat);
    assert_eq!(cores.reduce, Some(Reduce::Last));
    assert_eq!(cores.sparkline, Some(false));
    assert!(cores.targets[0].instant);
    assert_eq!(cores.targets[0].legend, "");
    assert_eq!(cores.unit.as_deref(), Some("short"));
    // Units, stacking, legend and $__rate_interval survive.
    let cpu = d.panels.iter().find(|p| p.title == "CPU Basic").unwrap();
    assert_eq!(cpu.unit.as_deref(), Some("percentunit"));
    assert!(cpu.stack);
    assert!(cpu
        .targets
        .iter()
        .all(|t| t.expr.contains("$__rate_interval")));
    // Overrides become ours.
    assert!(d.panels.iter().any(|p| !p.overrides.is_empty()));
    assert!(d
        .panels
        .iter()
        .flat_map(|p| &p.overrides)
        .any(|o| o.color.is_some()));
    // Every query (275 visible ones in the file) converts and parses.
    assert_eq!(queries_parse(d), 275);
    // Collapsed rows keep their panels after them; sections do not overlap.
    let mut bottom = 0;
    for p in &d.panels {
        let g = p.grid.unwrap();
        if p.kind == PanelType::Row {
            assert!(g.y >= bottom, "{} at {} < {bottom}", p.title, g.y);
        }
        bottom = bottom.max(g.y + g.h);
    }
}

#[test]
fn node_exporter_full_old_rows_schema() {
    let out = import_str(&testdata("rfmoz-node-exporter-full-old.json")).unwrap();
    let Imported {
        dashboard: d,
        report,
    } = &out[0];
    assert_eq!(d.uid, "node-exporter-full-old");
    // 19 old-style rows, 172 panels (160 graph, 12 singlestat).
    assert_eq!(count(d, PanelType::Row), 19);
    assert_eq!(d.panels.len(), 19 + 172);
    assert_eq!(count(d, PanelType::Timeseries), 160);
    assert_eq!(count(d, PanelType::Stat) + count(d, PanelType::Gauge), 12);
    assert!(
        count(d, PanelType::Gauge) > 0,
        "singlestat with gauge.show becomes a gauge"
    );
    // Old graph options: yaxes format, legend values, stacking.
    let g = d
        .panels
        .iter()
        .find(|p| p.kind == PanelType::Timeseries && p.unit.as_deref() == Some("bytes"))
        .unwrap();
    assert!(g.legend.is_some());
    assert!(d.panels.iter().any(|p| p.stack));
    // spans → widths on the 24 grid, rows laid out without overlap.
    for p in &d.panels {
        let g = p.grid.unwrap();
        assert!(g.x + g.w <= 24);
    }
    // Singlestat thresholds "a,b" with three colours become three steps.
    let st = d
        .panels
        .iter()
        .find(|p| matches!(p.kind, PanelType::Stat | PanelType::Gauge) && p.thresholds.len() == 3)
        .unwrap();
    assert_eq!(st.thresholds[0].value, None);
    assert!(st.thresholds[1].value < st.thresholds[2].value);
    // [[var]] became ${var} wherever used.
    assert!(d
        .panels
        .iter()
        .flat_map(|p| &p.targets)
        .all(|t| !t.expr.contains("[[")));
    // All 463 visible queries convert and parse.
    assert_eq!(queries_parse(d), 463);
    let _ = report;
}

#[test]
fn kube_prometheus_dashboards() {
    let out = import_str(&testdata("kube-prometheus-nodes.json")).unwrap();
    let d = &out[0].dashboard;
    assert_eq!(d.title, "Node Exporter / Nodes");
    assert_eq!(d.panels.len(), 12);
    assert_eq!(count(d, PanelType::Row), 4);
    assert_eq!(count(d, PanelType::Table), 1);
    assert_eq!(count(d, PanelType::Gauge), 1);
    queries_parse(d);

    let out = import_str(&testdata("kube-prometheus-k8s-resources-cluster.json")).unwrap();
    let Imported {
        dashboard: d,
        report,
    } = &out[0];
    assert_eq!(d.panels.len(), 22);
    assert_eq!(count(d, PanelType::Stat), 6);
    assert_eq!(count(d, PanelType::Table), 4);
    // Its tables use transformations, which the report names.
    let probs = problems(report);
    assert!(
        probs
            .iter()
            .any(|p| p.contains("transformations are not supported")),
        "{probs:#?}"
    );
    queries_parse(d);
}

#[test]
fn several_dashboards_in_one_file_with_the_api_wrapper() {
    let out = import_str(&testdata("kube-prometheus-several.json")).unwrap();
    let titles: Vec<&str> = out.iter().map(|i| i.dashboard.title.as_str()).collect();
    assert_eq!(
        titles,
        vec!["Alertmanager / Overview", "Prometheus / Overview"]
    );
    assert_eq!(out[0].dashboard.panels.len(), 6);
    assert_eq!(out[1].dashboard.panels.len(), 15);
    assert_eq!(out[0].dashboard.uid, "alertmanager-overview");
    // "9fa0d141-d019-4ad7-8bc5-42196ee308bd" is a valid uid and kept.
    assert_eq!(out[1].dashboard.uid, "9fa0d141-d019-4ad7-8bc5-42196ee308bd");
}

#[test]
fn handmade_legacy_and_edge_cases() {
    let g = json!({
        "title": "Legacy",
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": [
            {"name": "ds", "type": "datasource", "query": "prometheus"},
            {"name": "job", "type": "query", "datasource": "$ds", "query": "label_values(up, job)", "multi": true, "includeAll": true, "allValue": ".+", "current": {"value": ["$__all"]}, "regex": "/(.*)/"},
            {"name": "env", "type": "custom", "query": "prod,staging , dev", "current": {"value": "prod"}},
            {"name": "res", "type": "interval", "query": "1m,5m,1h", "auto": true},
            {"name": "k", "type": "constant", "query": "5"},
            {"name": "q", "type": "textbox", "query": "abc"},
            {"name": "f", "type": "adhoc"},
            {"name": "names", "type": "query", "query": {"query": "label_names()", "refId": "x"}},
            {"name": "logs", "type": "query", "datasource": {"type": "loki", "uid": "l"}, "query": "x"}
        ]},
        "annotations": {"list": [{"builtIn": 1, "name": "Annotations & Alerts"}, {"name": "deploys", "expr": "changes(x[5m])"}]},
        "rows": [
            {"title": "First", "height": "300px", "panels": [
                {"id": 1, "type": "graph", "title": "Req [[job]]", "span": 6,
                 "targets": [{"expr": "sum(rate(http_requests_total{job=~\"[[job]]\"}[$__interval])) by (code)", "legendFormat": "{{code}}", "refId": "A", "step": 30},
                             {"expr": "up{env=\"${env:regex}\"}", "refId": "B", "hide": true}],
                 "yaxes": [{"format": "reqps", "logBase": 2, "min": 0, "decimals": 2}, {"show": false}],
                 "legend": {"show": true, "rightSide": true, "avg": true, "current": true},
                 "stack": true,
                 "thresholds": [{"value": 100, "op": "gt", "colorMode": "critical"}, {"value": 50, "op": "gt", "colorMode": "warning"}],
                 "seriesOverrides": [{"alias": "/5../", "color": "#FF0000"}, {"alias": "200", "yaxis": 2}]},
                {"id": 2, "type": "singlestat", "title": "Up", "span": 3, "format": "percent", "valueName": "avg",
                 "thresholds": "50,80", "colors": ["red", "orange", "green"], "sparkline": {"show": true},
                 "targets": [{"expr": "avg(up)", "instant": true}]},
                {"id": 3, "type": "grafana-worldmap-panel", "title": "Map", "span": 3}
            ]},
            {"title": "Second", "collapse": true, "panels": [
                {"id": 4, "type": "table-old", "title": "T", "span": 12, "styles": [{"type": "number", "unit": "bytes", "pattern": "Value"}],
                 "targets": [{"expr": "node_memory_MemTotal_bytes", "format": "table", "instant": true}]},
                {"id": 5, "type": "text", "title": "Help", "mode": "html", "content": "<b>hi</b>"},
                {"id": 6, "type": "graph", "title": "Logs", "datasource": "Loki", "targets": [{"expr": "{job=\"x\"}"}]},
                {"id": 7, "type": "graph", "title": "Graphite", "targets": [{"target": "a.b.c"}]}
            ]}
        ]
    });
    let out = import_value(&g).unwrap();
    let Imported {
        dashboard: d,
        report,
    } = &out[0];
    assert_eq!(d.uid, "legacy");
    assert_eq!(d.refresh, "1m");
    let vars: Vec<(&str, crate::model::VariableType)> = d
        .variables
        .iter()
        .map(|v| (v.name.as_str(), v.kind))
        .collect();
    use crate::model::VariableType::*;
    assert_eq!(
        vars,
        vec![
            ("job", Query),
            ("env", Custom),
            ("res", Interval),
            ("k", Constant),
            ("q", Textbox),
            ("names", Query)
        ]
    );
    assert_eq!(d.variables[0].all_value.as_deref(), Some(".+"));
    assert_eq!(d.variables[0].current, vec!["$__all"]);
    assert_eq!(d.variables[1].options, vec!["prod", "staging", "dev"]);
    assert_eq!(d.variables[2].options, vec!["1m", "5m", "1h"]);
    let probs = problems(report);
    for want in [
        "variable \"ds\" (data source) dropped",
        "variable \"f\" (ad hoc filters) is not supported",
        "variable \"names\": label_names() is not supported",
        "variable \"logs\": data source type \"loki\" is not Prometheus; dropped",
        "variable \"res\": the auto interval option is not supported",
        "1 annotation queries dropped",
        "Req [[job]]: query B: hidden query dropped",
        "Req [[job]]: series override \"200\": yaxis is not supported",
        "Map: panel type \"grafana-worldmap-panel\" is not supported; panel dropped",
        "Help: HTML content is shown as markdown",
        "Logs: query 1: data source \"Loki\" is not Prometheus; dropped",
        "Graphite: query 1: not a Prometheus query; dropped",
    ] {
        assert!(
            probs.iter().any(|p| p.contains(want)),
            "missing {want:?} in {probs:#?}"
        );
    }
    // Rows: two rows (the second collapsed), panels sized from span and height.
    let kinds: Vec<&str> = d.panels.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "row",
            "timeseries",
            "stat",
            "row",
            "table",
            "text",
            "timeseries",
            "timeseries"
        ]
    );
    assert!(d.panels[3].collapsed);
    let graph = &d.panels[1];
    assert_eq!(graph.title, "Req ${job}");
    assert_eq!(
        graph.grid,
        Some(Grid {
            x: 0,
            y: 1,
            w: 12,
            h: 10
        })
    );
    assert_eq!(graph.targets.len(), 1);
    assert_eq!(
        graph.targets[0].expr,
        "sum(rate(http_requests_total{job=~\"${job}\"}[$__interval])) by (code)"
    );
    assert_eq!(graph.targets[0].legend, "{{code}}");
    assert_eq!(graph.targets[0].interval, "30s");
    assert_eq!(
        (graph.unit.as_deref(), graph.decimals, graph.min, graph.log),
        (Some("reqps"), Some(2), Some(0.0), 2)
    );
    let legend = graph.legend.as_ref().unwrap();
    assert_eq!(
        (legend.placement, legend.calcs.clone()),
        (Placement::Right, vec![Reduce::Last, Reduce::Mean])
    );
    assert!(graph.stack);
    let th: Vec<(Option<f64>, &str)> = graph
        .thresholds
        .iter()
        .map(|t| (t.value, t.color.as_str()))
        .collect();
    assert_eq!(
        th,
        vec![
            (None, "green"),
            (Some(50.0), "orange"),
            (Some(100.0), "red")
        ]
    );
    assert_eq!(graph.overrides.len(), 1);
    assert_eq!(
        (
            graph.overrides[0].matcher.name.as_str(),
            graph.overrides[0].color.as_deref()
        ),
        ("/5../", Some("#FF0000"))
    );
    let stat = &d.panels[2];
    assert_eq!(
        (stat.unit.as_deref(), stat.reduce, stat.sparkline),
        (Some("percent"), Some(Reduce::Mean), Some(true))
    );
    let th: Vec<(Option<f64>, &str)> = stat
        .thresholds
        .iter()
        .map(|t| (t.value, t.color.as_str()))
        .collect();
    assert_eq!(
        th,
        vec![(None, "red"), (Some(50.0), "orange"), (Some(80.0), "green")]
    );
    assert!(stat.targets[0].instant);
    let table = &d.panels[4];
    assert_eq!(
        (table.unit.as_deref(), table.targets[0].format),
        (Some("bytes"), TargetFormat::Table)
    );
    assert_eq!(d.panels[5].text, "<b>hi</b>");
    assert!(d.panels[6].targets.is_empty());
    // The result is a valid Sextant dashboard and survives a round trip.
    let text = crate::export(d, crate::Format::Yaml);
    assert_eq!(
        &crate::parse(&text, "x.yml", crate::Format::Yaml).unwrap(),
        d
    );
}

#[test]
fn current_schema_details() {
    let g = json!({"dashboard": {
        "title": "New",
        "uid": "bad uid!",
        "panels": [
            {"type": "row", "title": "R", "collapsed": true, "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}, "panels": [
                {"id": 10, "type": "timeseries", "title": "A", "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8},
                 "targets": [{"expr": "rate(x[$__rate_interval])", "legendFormat": "{{instance}}", "refId": "A"}],
                 "fieldConfig": {"defaults": {"unit": "s", "decimals": 3, "min": 0, "max": 10,
                    "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": null}, {"color": "red", "value": 5}]},
                    "custom": {"stacking": {"mode": "normal"}, "scaleDistribution": {"type": "log", "log": 10}},
                    "mappings": [{"type": "value", "options": {"1": {"text": "one"}}}]},
                  "overrides": [
                    {"matcher": {"id": "byName", "options": "errors"}, "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}, {"id": "unit", "value": "ops"}, {"id": "custom.fillOpacity", "value": 10}]},
                    {"matcher": {"id": "byRegexp", "options": "/p9.*/"}, "properties": [{"id": "displayName", "value": "p99"}, {"id": "custom.hideFrom", "value": {"viz": true, "legend": false, "tooltip": false}}]},
                    {"matcher": {"id": "byFrameRefID", "options": "B"}, "properties": []}
                  ]},
                 "options": {"legend": {"showLegend": true, "displayMode": "table", "placement": "right", "calcs": ["mean", "lastNotNull", "p95"]}},
                 "transformations": [{"id": "organize"}]}
            ]},
            {"type": "row", "title": "S", "collapsed": false, "gridPos": {"x": 0, "y": 1, "w": 24, "h": 1}, "panels": []},
            {"id": 11, "type": "piechart", "title": "Pie", "gridPos": {"x": 0, "y": 2, "w": 8, "h": 8},
             "targets": [{"expr": "sum by (x) (y)", "instant": true, "range": false}],
             "options": {"reduceOptions": {"calcs": ["sum"]}, "legend": {"showLegend": false}}},
            {"id": 12, "type": "heatmap", "title": "H", "gridPos": {"x": 8, "y": 2, "w": 8, "h": 8},
             "targets": [{"expr": "sum by (le) (rate(h_bucket[$__rate_interval]))"}]},
            {"id": 13, "type": "bargauge", "title": "B", "gridPos": {"x": 16, "y": 2, "w": 8, "h": 8},
             "options": {"orientation": "horizontal", "reduceOptions": {"calcs": ["max"]}},
             "targets": [{"expr": "x", "datasource": {"type": "prometheus", "uid": "p"}}], "repeat": "instance"},
            {"id": 14, "type": "barchart", "title": "BC", "gridPos": {"x": 0, "y": 10, "w": 8, "h": 8},
             "targets": [{"expr": "x", "datasource": {"type": "elasticsearch", "uid": "e"}}]},
            {"id": 15, "type": "text", "title": "T", "gridPos": {"x": 8, "y": 10, "w": 8, "h": 8}, "options": {"mode": "markdown", "content": "# Hi"}},
            {"id": 16, "type": "stat", "title": "S1", "gridPos": {"x": 16, "y": 10, "w": 8, "h": 8},
             "options": {"graphMode": "area", "reduceOptions": {"calcs": ["lastNotNull"]}},
             "targets": [{"expr": "up", "legendFormat": "__auto"}]}
        ]
    }, "meta": {"slug": "new"}});
    let out = import_value(&g).unwrap();
    let Imported {
        dashboard: d,
        report,
    } = &out[0];
    assert_eq!(d.uid, "new");
    let kinds: Vec<&str> = d.panels.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "row",
            "timeseries",
            "row",
            "pie",
            "heatmap",
            "bargauge",
            "barchart",
            "text",
            "stat"
        ]
    );
    let a = &d.panels[1];
    assert_eq!(
        a.grid,
        Some(Grid {
            x: 0,
            y: 1,
            w: 12,
            h: 8
        })
    );
    assert_eq!(
        (a.unit.as_deref(), a.decimals, a.min, a.max, a.stack, a.log),
        (Some("s"), Some(3), Some(0.0), Some(10.0), true, 10)
    );
    assert_eq!(
        a.thresholds,
        vec![
            Threshold {
                value: None,
                color: "green".into()
            },
            Threshold {
                value: Some(5.0),
                color: "red".into()
            }
        ]
    );
    assert_eq!(a.overrides.len(), 2);
    assert_eq!(
        a.overrides[0],
        Override {
            matcher: OverrideMatch {
                name: "errors".into()
            },
            unit: Some("ops".into()),
            color: Some("red".into()),
            display_name: None,
            hide: false
        }
    );
    assert_eq!(
        a.overrides[1],
        Override {
            matcher: OverrideMatch {
                name: "/p9.*/".into()
            },
            unit: None,
            color: None,
            display_name: Some("p99".into()),
            hide: true
        }
    );
    let l = a.legend.as_ref().unwrap();
    assert_eq!(
        (l.show, l.placement, l.calcs.clone()),
        (true, Placement::Right, vec![Reduce::Mean, Reduce::Last])
    );
    // The second row follows the collapsed one's children.
    assert_eq!(d.panels[2].grid.unwrap().y, 9);
    assert_eq!(d.panels[3].grid.unwrap().y, 10);
    assert_eq!(
        (
            d.panels[3].reduce,
            d.panels[3].legend.as_ref().unwrap().show
        ),
        (Some(Reduce::Sum), false)
    );
    assert!(d.panels[3].targets[0].instant);
    assert_eq!(d.panels[4].targets[0].format, TargetFormat::Heatmap);
    assert_eq!(
        (d.panels[5].orientation, d.panels[5].reduce),
        (Some(Orientation::Horizontal), Some(Reduce::Max))
    );
    assert!(d.panels[6].targets.is_empty());
    assert_eq!(d.panels[7].text, "# Hi");
    assert_eq!(
        (
            d.panels[8].sparkline,
            d.panels[8].targets[0].legend.as_str()
        ),
        (Some(true), "")
    );
    let probs = problems(report);
    for want in [
        "A: value mappings are not supported",
        "A: transformations are not supported: organize",
        "A: override \"errors\": property \"custom.fillOpacity\" is not supported",
        "A: override matcher \"byFrameRefID\" is not supported",
        "A: legend value \"p95\" is not supported",
        "B: repeat by $instance is not supported",
        "BC: query 1: data source type \"elasticsearch\" is not Prometheus; dropped",
    ] {
        assert!(
            probs.iter().any(|p| p.contains(want)),
            "missing {want:?} in {probs:#?}"
        );
    }
    assert_eq!(
        report.iter().find(|r| r.title == "A").unwrap().panel_id,
        Some(10)
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    for bad in [
        "",
        "[",
        "42",
        "\"x\"",
        "[1]",
        "{\"foo\": 1}",
        "[[[[[{\"title\": \"x\"}]]]]]",
    ] {
        assert!(import_str(bad).is_err(), "{bad}");
    }
    assert!(import_str("[]")
        .unwrap_err()
        .0
        .contains("no Grafana dashboard"));
    // Garbage of the right shape converts without panicking.
    let g = json!({"title": "x", "panels": [{"type": "graph", "gridPos": {"x": 99, "y": -1, "w": 0, "h": 100000}, "targets": "nope", "yaxes": [{"min": "abc", "max": "1", "decimals": 99}], "thresholds": [{"value": "x"}], "seriesOverrides": [1, {"alias": "/[/", "color": "red"}]}, 5, null], "templating": {"list": [{"name": "1bad", "type": "custom", "query": "a"}, {"type": "query"}]}, "rows": 3, "time": {"from": 1}});
    let out = import_value(&g).unwrap();
    let p = &out[0].dashboard.panels[0];
    assert_eq!(
        p.grid,
        Some(Grid {
            x: 23,
            y: 0,
            w: 1,
            h: 500
        })
    );
    assert!(p.overrides.is_empty());
    assert!(out[0].dashboard.variables.is_empty());
}
