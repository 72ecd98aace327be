//! Renders a [`Report`] as Markdown, JSON, CSV, self-contained HTML (inline CSS and SVG charts,
//! no external assets) or a short plain-text summary for chat channels.

use std::fmt::Write as _;

use super::{Report, Row, Section, Unit};

/// Output formats of `sextant report` and of scheduled reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Md,
    Json,
    Csv,
    Html,
    Text,
}

pub fn render(r: &Report, f: Format) -> String {
    match f {
        Format::Md => markdown(r),
        Format::Json => {
            serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        }
        Format::Csv => csv(r),
        Format::Html => html(r),
        Format::Text => text(r),
    }
}

/// A value for people: percentages for ratios, `$` for USD, `s`/`ms` for durations.
pub fn value(unit: Unit, v: Option<f64>) -> String {
    let Some(v) = v else {
        return "–".to_string();
    };
    match unit {
        Unit::Ratio => format!("{:.2}%", v * 100.0),
        Unit::Count | Unit::Tokens => {
            if v.fract() == 0.0 || v.abs() >= 100.0 {
                group_thousands(v.round())
            } else {
                format!("{v:.2}")
            }
        }
        Unit::Usd => {
            if v.abs() < 1.0 {
                format!("${v:.4}")
            } else {
                format!("${v:.2}")
            }
        }
        Unit::Seconds => {
            if v.abs() < 1.0 {
                format!("{:.0} ms", v * 1000.0)
            } else {
                format!("{v:.2} s")
            }
        }
    }
}

fn group_thousands(v: f64) -> String {
    let s = format!("{}", v.abs() as u64);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// The trend against the previous period: percentage points for ratios, relative change
/// otherwise; `new` / `gone` when one side has no value.
pub fn change(unit: Unit, v: Option<f64>, prev: Option<f64>) -> String {
    match (v, prev) {
        (Some(v), Some(p)) => {
            let d = v - p;
            let arrow = if d > 0.0 {
                "▲"
            } else if d < 0.0 {
                "▼"
            } else {
                "="
            };
            if d == 0.0 {
                return "= 0".to_string();
            }
            match unit {
                Unit::Ratio => format!("{arrow} {:+.2} pp", d * 100.0),
                _ if p != 0.0 => format!("{arrow} {:+.1}%", d / p.abs() * 100.0),
                _ => format!("{arrow} +{}", value(unit, Some(d))),
            }
        }
        (Some(_), None) => "new".to_string(),
        (None, Some(_)) => "gone".to_string(),
        (None, None) => String::new(),
    }
}

fn row_status(r: &Row) -> String {
    r.status
        .clone()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default()
}

fn period(r: &Report) -> String {
    format!(
        "{} → {} ({}), compared with {} → {}",
        r.start, r.end, r.range, r.previous_start, r.previous_end
    )
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", md_cell(&r.title));
    let _ = writeln!(o, "Period: {}. Server: {}.\n", period(r), r.server);
    for s in &r.sections {
        let _ = writeln!(o, "## {}\n", s.title);
        if let Some(n) = &s.note {
            let _ = writeln!(o, "_{}._\n", md_cell(n));
            if !s.has_data() {
                continue;
            }
        }
        if s.total.is_some() || s.previous_total.is_some() {
            let _ = writeln!(
                o,
                "Total: **{}** (previous {}, {})\n",
                value(s.unit, s.total),
                value(s.unit, s.previous_total),
                change(s.unit, s.total, s.previous_total)
            );
        }
        let _ = writeln!(
            o,
            "| {} | value | previous | change |",
            s.key_labels.join(" / ")
        );
        let _ = writeln!(o, "| --- | ---: | ---: | ---: |");
        for row in &s.rows {
            let _ = writeln!(
                o,
                "| {} | {}{} | {} | {} |",
                md_cell(&row.key),
                value(s.unit, row.value),
                row_status(row),
                value(s.unit, row.previous),
                change(s.unit, row.value, row.previous)
            );
        }
        if s.omitted > 0 {
            let _ = writeln!(o, "\n_{} more rows not shown._", s.omitted);
        }
        let _ = writeln!(o);
    }
    o
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `section,key,value,previous`: one row per figure, raw numbers (ratios as 0..1, USD, seconds);
/// a section's total has the key `total`; sections without data have no rows.
fn csv(r: &Report) -> String {
    let mut o = String::from("section,key,value,previous\n");
    for s in &r.sections {
        if !s.has_data() {
            continue;
        }
        if s.total.is_some() || s.previous_total.is_some() {
            let _ = writeln!(
                o,
                "{},total,{},{}",
                s.id,
                num(s.total),
                num(s.previous_total)
            );
        }
        for row in &s.rows {
            let _ = writeln!(
                o,
                "{},{},{},{}",
                s.id,
                csv_field(&row.key),
                num(row.value),
                num(row.previous)
            );
        }
    }
    o
}

/// The chat summary: one line per section that has data, one line naming those without.
fn text(r: &Report) -> String {
    let mut o = format!("{} — last {} (to {})\n", r.title, r.range, r.end);
    let mut empty = Vec::new();
    for s in &r.sections {
        if !s.has_data() {
            if matches!(s.id, "tokens_by_agent" | "cost_by_agent") {
                continue;
            }
            empty.push(s.id);
            continue;
        }
        let first = &s.rows[0];
        let line = match s.id {
            "availability" | "probes" | "tests" => format!(
                "{}: {} — worst {} {} ({})",
                short_title(s),
                s.rows.len(),
                first.key,
                value(s.unit, first.value),
                change(s.unit, first.value, first.previous)
            ),
            "alerts" => format!(
                "Alerts fired: {} ({}); most: {} ({})",
                value(s.unit, s.total),
                change(s.unit, s.total, s.previous_total),
                first.key,
                value(s.unit, first.value)
            ),
            "flaky_tests" => format!(
                "Flaky tests: {} ({}); e.g. {}",
                value(s.unit, s.total),
                change(s.unit, s.total, s.previous_total),
                first.key
            ),
            "tokens_by_model" => format!(
                "LLM tokens: {} ({}); top model {} {}",
                value(s.unit, s.total),
                change(s.unit, s.total, s.previous_total),
                first.key,
                value(s.unit, first.value)
            ),
            "cost_by_model" => format!(
                "LLM cost: {} ({}); top model {} {}",
                value(s.unit, s.total),
                change(s.unit, s.total, s.previous_total),
                first.key,
                value(s.unit, first.value)
            ),
            "tokens_by_agent" | "cost_by_agent" => continue,
            "slo" => {
                let count = |st: &str| {
                    s.rows
                        .iter()
                        .filter(|r| r.status.as_deref() == Some(st))
                        .count()
                };
                let lowest = s.rows.iter().find(|r| r.value.is_some()).unwrap_or(first);
                format!(
                    "SLOs: {} ok, {} burning, {} exhausted; lowest budget {} {}",
                    count("ok"),
                    count("burning"),
                    count("exhausted"),
                    lowest.key,
                    value(s.unit, lowest.value)
                )
            }
            _ => format!(
                "{}: {} {} ({})",
                short_title(s),
                first.key,
                value(s.unit, first.value),
                change(s.unit, first.value, first.previous)
            ),
        };
        o.push_str("• ");
        o.push_str(&line);
        o.push('\n');
    }
    if !empty.is_empty() {
        let _ = writeln!(o, "No data: {}", empty.join(", "));
    }
    o
}

fn short_title(s: &Section) -> &'static str {
    match s.id {
        "availability" => "Services up",
        "probes" => "Probes",
        "tests" => "Test suites",
        "latency_agents" => "Slowest agent (p95)",
        "latency_genai" => "Slowest GenAI operation (p95)",
        "latency_probes" => "Slowest probe",
        _ => s.title,
    }
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Rows drawn in a section's chart.
const CHART_ROWS: usize = 15;

/// A horizontal bar chart: this period's value (dark) over the previous period's (light).
fn chart(s: &Section) -> String {
    let rows: Vec<&Row> = s.rows.iter().take(CHART_ROWS).collect();
    let max = rows
        .iter()
        .flat_map(|r| [r.value, r.previous])
        .flatten()
        .map(f64::abs)
        .fold(0.0_f64, f64::max);
    let max = if s.unit == Unit::Ratio {
        max.max(1.0)
    } else {
        max
    };
    let (label_w, bar_w, row_h) = (220.0, 360.0, 26.0);
    let height = rows.len() as f64 * row_h + 24.0;
    let mut o = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{height}" viewBox="0 0 {w} {height}" role="img" aria-label="{title}">"#,
        w = label_w + bar_w + 110.0,
        title = esc(s.title)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = i as f64 * row_h;
        let scale = |v: Option<f64>| {
            v.map(|v| {
                if max > 0.0 {
                    v.abs() / max * bar_w
                } else {
                    0.0
                }
            })
            .unwrap_or(0.0)
        };
        let key: String = r.key.chars().take(32).collect();
        let _ = write!(
            o,
            r##"<text x="{tx}" y="{ty}" text-anchor="end" font-size="12">{key}</text><rect x="{label_w}" y="{y1}" width="{w1:.1}" height="10" fill="#3b6ea5"><title>{v}</title></rect><rect x="{label_w}" y="{y2}" width="{w2:.1}" height="6" fill="#b7c9de"><title>previous {p}</title></rect><text x="{vx:.1}" y="{ty}" font-size="11">{v}</text>"##,
            tx = label_w - 6.0,
            ty = y + 14.0,
            key = esc(&key),
            y1 = y + 4.0,
            w1 = scale(r.value),
            y2 = y + 15.0,
            w2 = scale(r.previous),
            v = esc(&value(s.unit, r.value)),
            p = esc(&value(s.unit, r.previous)),
            vx = label_w + scale(r.value).max(scale(r.previous)) + 6.0,
        );
    }
    let ly = rows.len() as f64 * row_h + 14.0;
    let _ = write!(
        o,
        r##"<rect x="{label_w}" y="{a}" width="10" height="10" fill="#3b6ea5"/><text x="{b}" y="{ly}" font-size="11">this period</text><rect x="{c}" y="{a}" width="10" height="10" fill="#b7c9de"/><text x="{d}" y="{ly}" font-size="11">previous period</text></svg>"##,
        a = ly - 9.0,
        b = label_w + 14.0,
        c = label_w + 100.0,
        d = label_w + 114.0,
    );
    o
}

fn html(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:60rem;color:#1d2733;padding:0 1rem}}
h1{{font-size:1.5rem}} h2{{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde3ea;padding-bottom:.3rem}}
table{{border-collapse:collapse;margin:.5rem 0}} td,th{{padding:.2rem .7rem;border-bottom:1px solid #eef1f4;text-align:right}}
td:first-child,th:first-child{{text-align:left}} .note{{color:#6b7785;font-style:italic}} .up{{color:#1f7a3a}} .down{{color:#b3261e}}
.meta{{color:#4a5663}} svg.chart{{display:block;margin:.5rem 0}}
</style></head><body>
<h1>{title}</h1>
<p class="meta">{period}<br>Server: {server}</p>
"#,
        title = esc(&r.title),
        period = esc(&period(r)),
        server = esc(&r.server)
    );
    for s in &r.sections {
        let _ = writeln!(o, "<section id=\"{}\"><h2>{}</h2>", s.id, esc(s.title));
        if let Some(n) = &s.note {
            let _ = writeln!(o, "<p class=\"note\">{}.</p>", esc(n));
        }
        if !s.has_data() {
            let _ = writeln!(o, "</section>");
            continue;
        }
        if s.total.is_some() || s.previous_total.is_some() {
            let _ = writeln!(
                o,
                "<p>Total: <strong>{}</strong> (previous {}, {})</p>",
                esc(&value(s.unit, s.total)),
                esc(&value(s.unit, s.previous_total)),
                esc(&change(s.unit, s.total, s.previous_total))
            );
        }
        o.push_str(&chart(s));
        let _ = writeln!(
            o,
            "\n<table><tr><th>{}</th><th>value</th><th>previous</th><th>change</th></tr>",
            esc(&s.key_labels.join(" / "))
        );
        for row in &s.rows {
            let ch = change(s.unit, row.value, row.previous);
            let class = if ch.starts_with('▲') {
                "up"
            } else if ch.starts_with('▼') {
                "down"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
                esc(&row.key),
                esc(&value(s.unit, row.value)),
                esc(&row_status(row)),
                esc(&value(s.unit, row.previous)),
                esc(&ch)
            );
        }
        let _ = writeln!(o, "</table>");
        if s.omitted > 0 {
            let _ = writeln!(
                o,
                "<p class=\"note\">{} more rows not shown.</p>",
                s.omitted
            );
        }
        let _ = writeln!(o, "</section>");
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn report() -> Report {
        let row = |k: &str, v: Option<f64>, p: Option<f64>| Row {
            key: k.to_string(),
            labels: BTreeMap::new(),
            value: v,
            previous: p,
            status: None,
        };
        Report {
            schema: 1,
            title: "Fleet <report>".into(),
            server: "http://x".into(),
            range: "24h".into(),
            range_seconds: 86400.0,
            start: "a".into(),
            end: "b".into(),
            end_unix: 0.0,
            previous_start: "c".into(),
            previous_end: "a".into(),
            previous_end_unix: 0.0,
            sections: vec![
                Section {
                    id: "availability",
                    title: "Availability",
                    unit: Unit::Ratio,
                    query: "q".into(),
                    key_labels: vec!["job"],
                    total: None,
                    previous_total: None,
                    rows: vec![
                        row("api, \"eu\"", Some(0.5), Some(0.75)),
                        row("db", Some(1.0), None),
                    ],
                    omitted: 0,
                    note: None,
                },
                Section {
                    id: "alerts",
                    title: "Alerts",
                    unit: Unit::Count,
                    query: "q".into(),
                    key_labels: vec!["alertname"],
                    total: None,
                    previous_total: None,
                    rows: vec![],
                    omitted: 0,
                    note: Some("no data for this period".into()),
                },
            ],
        }
    }

    #[test]
    fn formats() {
        assert_eq!(value(Unit::Ratio, Some(0.5)), "50.00%");
        assert_eq!(value(Unit::Tokens, Some(1234567.0)), "1,234,567");
        assert_eq!(value(Unit::Usd, Some(0.01234)), "$0.0123");
        assert_eq!(value(Unit::Seconds, Some(0.25)), "250 ms");
        assert_eq!(change(Unit::Ratio, Some(0.5), Some(0.75)), "▼ -25.00 pp");
        assert_eq!(change(Unit::Count, Some(3.0), Some(2.0)), "▲ +50.0%");
        assert_eq!(change(Unit::Count, Some(3.0), None), "new");
    }

    #[test]
    fn every_format_names_missing_data_and_escapes() {
        let r = report();
        let csv = render(&r, Format::Csv);
        assert_eq!(
            csv,
            "section,key,value,previous\navailability,\"api, \"\"eu\"\"\",0.5,0.75\navailability,db,1,\n"
        );
        let md = render(&r, Format::Md);
        assert!(md.contains("_no data for this period._"), "{md}");
        let html = render(&r, Format::Html);
        assert!(
            html.contains("Fleet &lt;report&gt;") && html.contains("<svg"),
            "{html}"
        );
        assert!(
            !html.contains("src=") && !html.contains("href="),
            "self-contained"
        );
        let text = render(&r, Format::Text);
        assert!(text.contains("No data: alerts"), "{text}");
        let j: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
        assert_eq!(j["sections"][0]["rows"][0]["previous"], 0.75);
    }
}
