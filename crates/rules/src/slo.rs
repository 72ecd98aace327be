//! SLOs as code: an objective over an SLI (bad/total or good/total events, as PromQL rates with a
//! `{{.window}}` placeholder) compiled into plain Prometheus recording rules and multi-window,
//! multi-burn-rate alerts (Google SRE workbook, chapter 5). The output is an ordinary rule file,
//! so `sextant slo generate` can feed Prometheus too.
//!
//! Burn factors are capped at 1/(1−objective) — a 90% objective cannot burn faster than 10×,
//! because then every request fails — and each alert also needs a minimum number of events in its
//! long window, so an idle service with one failed request does not page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use sextant_model::time::parse_duration;

/// A file (or `sextant.yml` section) of SLOs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    #[serde(default)]
    pub slos: Vec<SloSpec>,
}

/// One SLO.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Identifier, used as the `slo` label (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Optional `service` label.
    #[serde(default)]
    pub service: Option<String>,
    /// Target, as a percentage (99.9) or a ratio (0.999).
    pub objective: f64,
    /// Compliance period, e.g. `30d` (default 30d).
    #[serde(default)]
    pub window: Option<String>,
    pub sli: SliSpec,
    /// Extra labels on every generated series and alert.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub alerting: AlertingSpec,
    #[serde(default)]
    pub description: Option<String>,
}

/// The SLI: per-second event rates; `{{.window}}` is replaced by each evaluation window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliSpec {
    #[serde(default)]
    pub bad: Option<String>,
    #[serde(default)]
    pub good: Option<String>,
    pub total: String,
}

/// Alert settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Alert name prefix (default: the SLO name in CamelCase + `ErrorBudgetBurn`).
    #[serde(default)]
    pub name: Option<String>,
    /// Fewest events in the long window before an alert may fire (default 10).
    #[serde(default = "min_events")]
    pub min_events: f64,
    #[serde(default = "page_default")]
    pub page: BurnAlert,
    #[serde(default = "ticket_default")]
    pub ticket: BurnAlert,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Default for AlertingSpec {
    fn default() -> Self {
        AlertingSpec {
            enabled: true,
            name: None,
            min_events: min_events(),
            page: page_default(),
            ticket: ticket_default(),
            annotations: BTreeMap::new(),
        }
    }
}

/// One alert severity: labels and its (factor, long window, short window) conditions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnAlert {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub windows: Vec<BurnWindow>,
}

/// Fire when the error rate over both `long` and `short` exceeds `factor` × the budget rate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnWindow {
    pub factor: f64,
    pub long: String,
    pub short: String,
}

fn yes() -> bool {
    true
}
fn min_events() -> f64 {
    10.0
}
fn bw(factor: f64, long: &str, short: &str) -> BurnWindow {
    BurnWindow {
        factor,
        long: long.into(),
        short: short.into(),
    }
}
fn page_default() -> BurnAlert {
    BurnAlert {
        labels: BTreeMap::from([("severity".to_string(), "page".to_string())]),
        windows: vec![bw(14.4, "1h", "5m"), bw(2.0, "6h", "30m")],
    }
}
fn ticket_default() -> BurnAlert {
    BurnAlert {
        labels: BTreeMap::from([("severity".to_string(), "ticket".to_string())]),
        windows: vec![bw(1.0, "3d", "6h")],
    }
}

/// A problem in an SLO definition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("slo {slo:?}: {msg}")]
pub struct SloError {
    pub slo: String,
    pub msg: String,
}

fn q(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A number for PromQL with 12 significant digits, so 1 − 0.999 reads `0.001`.
fn num(x: f64) -> String {
    crate::template::go_g(x, 12)
}

fn camel(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn secs(w: &str) -> Result<u64, String> {
    parse_duration(w)
        .map(|d| d.as_secs())
        .map_err(|e| e.to_string())
        .and_then(|s| {
            if s == 0 {
                Err("window must be positive".into())
            } else {
                Ok(s)
            }
        })
}

/// The label matcher list of the recorded series of one SLO.
fn selector(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", q(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Compiles SLOs into the text of a Prometheus rule file (one group per SLO).
pub fn generate(slos: &[SloSpec]) -> Result<String, SloError> {
    let mut out = String::from("# Generated by `sextant slo generate`: recording rules and multi-window, multi-burn-rate alerts.\ngroups:\n");
    for s in slos {
        compile_one(s, &mut out).map_err(|msg| SloError {
            slo: s.name.clone(),
            msg,
        })?;
    }
    Ok(out)
}

fn compile_one(s: &SloSpec, out: &mut String) -> Result<(), String> {
    if s.name.is_empty()
        || !s
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err("name must be non-empty letters, digits, '_', '-' or '.'".into());
    }
    let objective = if s.objective > 1.0 {
        s.objective / 100.0
    } else {
        s.objective
    };
    if !(objective > 0.0 && objective < 1.0) {
        return Err(format!(
            "objective {} must be between 0 and 100%",
            s.objective
        ));
    }
    let budget = (1.0 - objective).max(f64::MIN_POSITIVE);
    let period = s.window.clone().unwrap_or_else(|| "30d".into());
    let period_s = secs(&period).map_err(|e| format!("window: {e}"))?;
    let (err_num, negate) = match (&s.sli.bad, &s.sli.good) {
        (Some(b), None) => (b.clone(), false),
        (None, Some(g)) => (g.clone(), true),
        _ => return Err("sli needs exactly one of 'bad' and 'good' (plus 'total')".into()),
    };
    for (what, e) in [("sli", &err_num), ("total", &s.sli.total)] {
        if !e.contains("{{.window}}") {
            return Err(format!(
                "{what} query must contain {{{{.window}}}} in its range selector"
            ));
        }
    }
    let mut labels = s.labels.clone();
    labels.insert("slo".into(), s.name.clone());
    if let Some(svc) = &s.service {
        labels.insert("service".into(), svc.clone());
    }
    let label_yaml = |extra: &BTreeMap<String, String>, indent: &str| -> String {
        let mut all = labels.clone();
        all.extend(extra.clone());
        let mut o = String::new();
        for (k, v) in &all {
            let _ = writeln!(o, "{indent}  {k}: {}", q(v));
        }
        o
    };
    // Windows that need a recorded error ratio.
    let mut windows: Vec<String> = vec![
        "5m".into(),
        "30m".into(),
        "1h".into(),
        "2h".into(),
        "6h".into(),
        "1d".into(),
        "3d".into(),
    ];
    let a = &s.alerting;
    for w in a.page.windows.iter().chain(&a.ticket.windows) {
        for x in [&w.long, &w.short] {
            secs(x).map_err(|e| format!("burn window {x:?}: {e}"))?;
            if !windows.contains(x) {
                windows.push(x.clone());
            }
        }
    }
    let _ = writeln!(out, "  - name: {}", q(&format!("slo-{}", s.name)));
    let _ = writeln!(out, "    rules:");
    for w in &windows {
        let num = err_num.replace("{{.window}}", w);
        let tot = s.sli.total.replace("{{.window}}", w);
        let expr = if negate {
            format!("1 - (({num}) / ({tot}))")
        } else {
            format!("({num}) / ({tot})")
        };
        let _ = writeln!(out, "      - record: slo:sli_error:ratio_rate{w}");
        let _ = writeln!(out, "        expr: {}", q(&expr));
        let _ = writeln!(
            out,
            "        labels:\n{}",
            label_yaml(&BTreeMap::new(), "        ").trim_end()
        );
        let w_s = secs(w)?;
        let _ = writeln!(out, "      - record: slo:sli_events:count{w}");
        let _ = writeln!(out, "        expr: {}", q(&format!("({tot}) * {w_s}")));
        let _ = writeln!(
            out,
            "        labels:\n{}",
            label_yaml(&BTreeMap::new(), "        ").trim_end()
        );
    }
    let sel = selector(&labels);
    let _ = writeln!(out, "      - record: slo:sli_error:ratio_rate{period}");
    let _ = writeln!(
        out,
        "        expr: {}",
        q(&format!(
            "sum_over_time(slo:sli_error:ratio_rate5m{sel}[{period}]) / count_over_time(slo:sli_error:ratio_rate5m{sel}[{period}])"
        ))
    );
    let _ = writeln!(
        out,
        "        labels:\n{}",
        label_yaml(&BTreeMap::new(), "        ").trim_end()
    );
    for (name, v) in [
        ("slo:objective:ratio", num(objective)),
        ("slo:error_budget:ratio", num(budget)),
        (
            "slo:time_period:days",
            format!("{}", period_s as f64 / 86400.0),
        ),
    ] {
        let _ = writeln!(out, "      - record: {name}");
        let _ = writeln!(out, "        expr: {}", q(&format!("vector({v})")));
        let _ = writeln!(
            out,
            "        labels:\n{}",
            label_yaml(&BTreeMap::new(), "        ").trim_end()
        );
    }
    let _ = writeln!(out, "      - record: slo:error_budget_remaining:ratio");
    let _ = writeln!(
        out,
        "        expr: {}",
        q(&format!(
            "1 - (slo:sli_error:ratio_rate{period}{sel} / {})",
            num(budget)
        ))
    );
    let _ = writeln!(
        out,
        "        labels:\n{}",
        label_yaml(&BTreeMap::new(), "        ").trim_end()
    );
    if !a.enabled {
        return Ok(());
    }
    let cap = 1.0 / budget;
    let prefix = a
        .name
        .clone()
        .unwrap_or_else(|| format!("{}ErrorBudgetBurn", camel(&s.name)));
    for (kind, alert) in [("Page", &a.page), ("Ticket", &a.ticket)] {
        if alert.windows.is_empty() {
            continue;
        }
        let conds: Vec<String> = alert
            .windows
            .iter()
            .map(|w| {
                let f = w.factor.min(cap);
                let thr = num(f * budget);
                format!(
                    "(slo:sli_error:ratio_rate{l}{sel} > {thr} and slo:sli_error:ratio_rate{sh}{sel} > {thr} and slo:sli_events:count{l}{sel} >= {me})",
                    l = w.long,
                    sh = w.short,
                    me = num(a.min_events),
                )
            })
            .collect();
        let _ = writeln!(out, "      - alert: {}", q(&format!("{prefix}{kind}")));
        let _ = writeln!(out, "        expr: {}", q(&conds.join(" or ")));
        let _ = writeln!(
            out,
            "        labels:\n{}",
            label_yaml(&alert.labels, "        ").trim_end()
        );
        let mut ann = a.annotations.clone();
        ann.entry("summary".into()).or_insert_with(|| {
            format!(
                "SLO {} is burning its error budget too fast ({} objective {}% over {period})",
                s.name,
                kind.to_lowercase(),
                objective * 100.0
            )
        });
        ann.entry("description".into()).or_insert_with(|| {
            s.description.clone().unwrap_or_else(|| {
                "Error rate {{ $value | humanizePercentage }} of requests over the alert window; the error budget runs out early at this rate.".into()
            })
        });
        let _ = writeln!(out, "        annotations:");
        for (k, v) in &ann {
            let _ = writeln!(out, "          {k}: {}", q(v));
        }
    }
    Ok(())
}

/// Parses an SLO file.
pub fn parse_slo_file(name: &str, text: &str) -> Result<Vec<SloSpec>, String> {
    let f: SloFile = serde_saphyr::from_str(text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        format!(
            "{name}{loc}: {}",
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    Ok(f.slos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(objective: f64) -> SloSpec {
        parse_slo_file(
            "t",
            &format!(
                r#"
slos:
  - name: api-availability
    service: api
    objective: {objective}
    sli:
      bad: sum(rate(http_requests_total{{code=~"5.."}}[{{{{.window}}}}]))
      total: sum(rate(http_requests_total[{{{{.window}}}}]))
"#
            ),
        )
        .unwrap()
        .remove(0)
    }

    #[test]
    fn generated_rules_are_valid_and_capped() {
        let text = generate(&[spec(99.9)]).unwrap();
        let groups = crate::file::parse_rules("gen", &text).unwrap();
        let names: Vec<&str> = groups[0].rules.iter().map(|r| r.name.as_str()).collect();
        assert!(names.contains(&"slo:sli_error:ratio_rate1h"));
        assert!(names.contains(&"slo:error_budget_remaining:ratio"));
        assert!(names.contains(&"ApiAvailabilityErrorBudgetBurnPage"));
        assert!(text.contains("> 0.0144 and"), "{text}");
        assert!(text.contains("> 0.001 and"), "{text}");
        // 90%: 14.4× would need more than 100% errors; capped at 10× = 1.0.
        let text = generate(&[spec(90.0)]).unwrap();
        assert!(text.contains("> 1 and"), "{text}");
        assert!(!text.contains("> 1.44"), "{text}");
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut s = spec(99.9);
        s.objective = 100.0;
        assert!(generate(&[s]).is_err());
        let mut s = spec(99.9);
        s.sli.total = "sum(rate(x[5m]))".into();
        assert!(generate(&[s]).unwrap_err().msg.contains("{{.window}}"));
        let mut s = spec(99.9);
        s.sli.good = Some("x[{{.window}}]".into());
        assert!(generate(&[s]).is_err());
    }
}
