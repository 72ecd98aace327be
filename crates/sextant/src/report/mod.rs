//! Fleet reports: one summary of a period (availability, alerts fired, test pass rate and flaky
//! tests, LLM tokens and cost, top latencies, SLO error budgets), each figure next to the same
//! figure for the previous period of the same length. The report is built only from PromQL
//! instant queries against a [`Source`] (a Sextant's `/api/v1/query`), so every number in it can
//! be reproduced with `sextant query`; the queries are part of the JSON output. `sextant report`
//! and the scheduled reports of `sextant serve` ([`schedule`]) share this generator.

pub mod cli;
pub mod render;
pub mod schedule;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Rows kept per section (the largest or worst first); the rest are counted in `omitted`.
pub const MAX_ROWS: usize = 50;

/// A query failed. `fatal` errors (the server cannot be reached) abort the report; others are
/// shown in the section they belong to.
#[derive(Debug)]
pub struct QueryError {
    pub fatal: bool,
    pub msg: String,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for QueryError {}

/// One series of an instant-query result.
pub type Point = (BTreeMap<String, String>, f64);

/// Where the numbers come from: PromQL instant queries at a time (Unix seconds).
pub trait Source {
    fn query(&self, expr: &str, time_s: f64) -> Result<Vec<Point>, QueryError>;
}

/// A Prometheus-compatible HTTP API (`POST /api/v1/query`).
pub struct HttpSource {
    base: String,
    client: reqwest::blocking::Client,
}

impl HttpSource {
    pub fn new(base: &str) -> Result<HttpSource, QueryError> {
        let client = crate::client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| QueryError {
                fatal: true,
                msg: format!("building the HTTP client: {e}"),
            })?;
        Ok(HttpSource {
            base: base.trim_end_matches('/').to_string(),
            client,
        })
    }
}

impl Source for HttpSource {
    fn query(&self, expr: &str, time_s: f64) -> Result<Vec<Point>, QueryError> {
        let url = format!("{}/api/v1/query", self.base);
        let resp = self
            .client
            .post(&url)
            .form(&[("query", expr), ("time", &format!("{time_s:.3}"))])
            .send()
            .map_err(|e| QueryError {
                fatal: true,
                msg: format!("querying {url}: {e}"),
            })?;
        let status = resp.status();
        let body = resp.text().map_err(|e| QueryError {
            fatal: true,
            msg: format!("reading the answer of {url}: {e}"),
        })?;
        let j: serde_json::Value = serde_json::from_str(&body).map_err(|_| QueryError {
            fatal: true,
            msg: format!(
                "{url} answered {status} with non-JSON: {}",
                body.chars().take(200).collect::<String>()
            ),
        })?;
        if j["status"] != "success" {
            return Err(QueryError {
                fatal: status.is_server_error() && j["errorType"].is_null(),
                msg: format!(
                    "{}: {}",
                    j["errorType"].as_str().unwrap_or("error"),
                    j["error"].as_str().unwrap_or("query failed")
                ),
            });
        }
        parse_result(&j["data"]).map_err(|msg| QueryError { fatal: false, msg })
    }
}

/// The server's own query engine, in-process (what scheduled reports use).
pub struct LocalSource(pub std::sync::Arc<sextant_server::AppState>);

impl Source for LocalSource {
    fn query(&self, expr: &str, time_s: f64) -> Result<Vec<Point>, QueryError> {
        let body = sextant_server::instant_json(&self.0, expr, (time_s * 1000.0).round() as i64)
            .map_err(|msg| QueryError { fatal: false, msg })?;
        let j: serde_json::Value = serde_json::from_str(&body).map_err(|e| QueryError {
            fatal: true,
            msg: format!("query answer is not JSON: {e}"),
        })?;
        parse_result(&j["data"]).map_err(|msg| QueryError { fatal: false, msg })
    }
}

/// The points of an instant-query `data` object (vector or scalar; NaN and ±Inf dropped).
pub fn parse_result(data: &serde_json::Value) -> Result<Vec<Point>, String> {
    let num = |v: &serde_json::Value| -> Option<f64> {
        v.get(1)?
            .as_str()?
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
    };
    match data["resultType"].as_str() {
        Some("vector") => Ok(data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                Some((labels, num(&s["value"])?))
            })
            .collect()),
        Some("scalar") => Ok(num(&data["result"])
            .map(|v| vec![(BTreeMap::new(), v)])
            .unwrap_or_default()),
        other => Err(format!(
            "expected an instant vector, got {}",
            other.unwrap_or("nothing")
        )),
    }
}

/// What a section's values are; decides formatting and the direction of "better".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// 0..1, shown as a percentage.
    Ratio,
    Count,
    Tokens,
    Usd,
    Seconds,
}

/// One figure of a section: the value in this period and in the previous one.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The label values that identify the row, joined with ` / ` (label order of the section).
    pub key: String,
    pub labels: BTreeMap<String, String>,
    /// `null` when the key has no value in this period (it appeared only in the previous one).
    pub value: Option<f64>,
    /// `null` when the key has no value in the previous period.
    pub previous: Option<f64>,
    /// Only in the `slo` section: `ok`, `burning` (budget below 50%) or `exhausted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One part of the report: one PromQL query, evaluated at the end of both periods.
#[derive(Clone, Debug, Serialize)]
pub struct Section {
    pub id: &'static str,
    pub title: &'static str,
    pub unit: Unit,
    /// The PromQL expression; evaluated at `end` and at `previous_end`.
    pub query: String,
    /// Labels that make up a row's key.
    pub key_labels: Vec<&'static str>,
    /// Sum of `value` over all rows (also omitted ones), for additive units (counts, tokens,
    /// USD); `null` otherwise or without data.
    pub total: Option<f64>,
    pub previous_total: Option<f64>,
    pub rows: Vec<Row>,
    /// Rows left out beyond [`MAX_ROWS`].
    pub omitted: usize,
    /// Why the section has no rows (`no data for this period`, or the query's error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Section {
    pub fn has_data(&self) -> bool {
        !self.rows.is_empty()
    }
}

/// The whole report. Times are RFC 3339 (UTC); `*_unix` are the same in Unix seconds.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Version of this JSON schema (docs/reports.md).
    pub schema: u32,
    pub title: String,
    pub server: String,
    /// The period length as given (`24h`, `7d`).
    pub range: String,
    pub range_seconds: f64,
    pub start: String,
    pub end: String,
    pub end_unix: f64,
    pub previous_start: String,
    pub previous_end: String,
    pub previous_end_unix: f64,
    pub sections: Vec<Section>,
}

/// What to report on.
#[derive(Clone, Debug)]
pub struct Options {
    /// Period length.
    pub range: Duration,
    /// The period as written by the user (kept for display).
    pub range_text: String,
    /// End of the period, Unix milliseconds.
    pub end_ms: i64,
    pub title: String,
    pub server: String,
}

/// A PromQL duration for `d` (whole seconds, in the largest exact unit).
pub fn promql_duration(d: Duration) -> String {
    let s = d.as_secs().max(1);
    for (unit, n) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// The LLM token series of the built-in cost rules (rules/llm-cost.yml), as increases over
/// `r`, with labels job, provider, model, agent, token_type, source. `otel` and `agent` are
/// extra matchers on the raw OTel (`gen_ai_token_type`) and agent-event (`direction`) series;
/// `None` leaves that source out.
fn tokens_expr(r: &str, otel: Option<&str>, agent: Option<&str>) -> String {
    let sel = |name: &str, m: &str| {
        if m.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{m}}}")
        }
    };
    let otel = otel.map(|m| format!(
        r#"sum by (job, provider, model, agent, token_type, source) (label_replace(label_replace(label_replace(label_replace(label_replace(label_replace(increase({}[{r}]), "source", "otel", "", ""), "model", "$1", "gen_ai_request_model", "(.+)"), "model", "$1", "gen_ai_response_model", "(.+)"), "provider", "$1", "gen_ai_provider_name", "(.*)"), "agent", "$1", "gen_ai_agent_name", "(.*)"), "token_type", "$1", "gen_ai_token_type", "(.*)"))"#,
        sel("gen_ai_client_token_usage_sum", m)
    ));
    let agent = agent.map(|m| format!(
        r#"sum by (job, provider, model, agent, token_type, source) (label_replace(label_replace(increase({}[{r}]), "source", "agent_events", "", ""), "token_type", "$1", "direction", "(.*)"))"#,
        sel("sextant_agent_tokens_total", m)
    ));
    match (otel, agent) {
        (Some(o), Some(a)) => format!("({o} or {a})"),
        (Some(x), None) | (None, Some(x)) => format!("({x})"),
        (None, None) => "vector(0)".to_string(),
    }
}

/// Billable tokens over `r` (OTel cache tokens taken out of `input`), as in the cost rules.
fn billable_expr(r: &str) -> String {
    let not_input = tokens_expr(
        r,
        Some(r#"gen_ai_token_type!="input""#),
        Some(r#"direction!="input""#),
    );
    let otel_input = tokens_expr(r, Some(r#"gen_ai_token_type="input""#), None);
    let otel_cache = tokens_expr(
        r,
        Some(r#"gen_ai_token_type=~"cache_read|cache_write""#),
        None,
    );
    let input = tokens_expr(
        r,
        Some(r#"gen_ai_token_type="input""#),
        Some(r#"direction="input""#),
    );
    format!(
        r#"({not_input} or label_replace(clamp_min({otel_input} - ignoring (token_type) sum without (token_type) ({otel_cache}), 0), "token_type", "input", "", "") or {input})"#
    )
}

/// The section definitions: id, title, unit, key labels, query, whether low values are worst.
fn definitions(r: &str) -> Vec<(&'static str, &'static str, Unit, Vec<&'static str>, String)> {
    let tokens = tokens_expr(r, Some(""), Some(""));
    let cost = format!(
        "({billable} * on (provider, model, token_type) group_left sextant_llm_price_usd_per_token)",
        billable = billable_expr(r)
    );
    vec![
        (
            "availability",
            "Availability by service (share of successful scrapes)",
            Unit::Ratio,
            vec!["job"],
            format!("avg by (job) (avg_over_time(up[{r}]))"),
        ),
        (
            "probes",
            "Probe success by target",
            Unit::Ratio,
            vec!["instance"],
            format!("avg by (instance) (avg_over_time(probe_success[{r}]))"),
        ),
        (
            "alerts",
            "Alerts fired (alert instances firing at some point)",
            Unit::Count,
            vec!["alertname", "severity"],
            format!(
                r#"count by (alertname, severity) (max_over_time(ALERTS{{alertstate="firing"}}[{r}]))"#
            ),
        ),
        (
            "tests",
            "Test pass rate (latest run in the period)",
            Unit::Ratio,
            vec!["job"],
            format!(
                r#"sum by (job) (last_over_time(sextant_test_cases{{result="passed"}}[{r}])) / sum by (job) (last_over_time(sextant_test_cases{{result!="skipped"}}[{r}]))"#
            ),
        ),
        (
            "flaky_tests",
            "Flaky tests",
            Unit::Count,
            vec!["job", "suite", "classname", "test"],
            format!("max by (job, suite, classname, test) (max_over_time(sextant_test_flaky[{r}]))"),
        ),
        (
            "tokens_by_model",
            "LLM tokens by model",
            Unit::Tokens,
            vec!["model"],
            format!("sum by (model) ({tokens})"),
        ),
        (
            "tokens_by_agent",
            "LLM tokens by agent",
            Unit::Tokens,
            vec!["agent"],
            format!("sum by (agent) ({tokens})"),
        ),
        (
            "cost_by_model",
            "LLM cost by model (USD, at current prices)",
            Unit::Usd,
            vec!["model"],
            format!("sum by (model) ({cost})"),
        ),
        (
            "cost_by_agent",
            "LLM cost by agent (USD, at current prices)",
            Unit::Usd,
            vec!["agent"],
            format!("sum by (agent) ({cost})"),
        ),
        (
            "latency_agents",
            "Slowest agents (p95 session duration)",
            Unit::Seconds,
            vec!["agent"],
            format!(
                "topk(10, histogram_quantile(0.95, sum by (agent, le) (rate(sextant_agent_session_duration_seconds_bucket[{r}]))))"
            ),
        ),
        (
            "latency_genai",
            "Slowest GenAI operations (p95 duration)",
            Unit::Seconds,
            vec!["gen_ai_operation_name", "gen_ai_request_model"],
            format!(
                "topk(10, histogram_quantile(0.95, sum by (gen_ai_operation_name, gen_ai_request_model, le) (rate(gen_ai_client_operation_duration_seconds_bucket[{r}]))))"
            ),
        ),
        (
            "latency_probes",
            "Slowest probes (average duration)",
            Unit::Seconds,
            vec!["instance"],
            format!("topk(10, avg by (instance) (avg_over_time(probe_duration_seconds[{r}])))"),
        ),
        (
            "slo",
            "SLO error budget remaining (end of period)",
            Unit::Ratio,
            vec!["service", "slo"],
            "max by (service, slo) (slo:error_budget_remaining:ratio)".to_string(),
        ),
    ]
}

/// Runs every section's query at the end of this period and of the previous one.
pub fn generate(src: &dyn Source, o: &Options) -> Result<Report, QueryError> {
    let r = promql_duration(o.range);
    let range_ms = o.range.as_millis() as i64;
    let end_s = o.end_ms as f64 / 1000.0;
    let prev_end_ms = o.end_ms - range_ms;
    let prev_s = prev_end_ms as f64 / 1000.0;
    let mut sections = Vec::new();
    for (id, title, unit, key_labels, query) in definitions(&r) {
        let mut s = Section {
            id,
            title,
            unit,
            query: query.clone(),
            key_labels: key_labels.clone(),
            total: None,
            previous_total: None,
            rows: Vec::new(),
            omitted: 0,
            note: None,
        };
        let now = src.query(&query, end_s);
        let prev = src.query(&query, prev_s);
        let (now, prev) = match (now, prev) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) if e.fatal => return Err(e),
            (Err(e), _) | (_, Err(e)) => {
                s.note = Some(format!("query failed: {}", e.msg));
                sections.push(s);
                continue;
            }
        };
        fill(&mut s, now, prev);
        sections.push(s);
    }
    Ok(Report {
        schema: 1,
        title: o.title.clone(),
        server: o.server.clone(),
        range: o.range_text.clone(),
        range_seconds: o.range.as_secs_f64(),
        start: sextant_model::time::format_rfc3339_ms(o.end_ms - range_ms),
        end: sextant_model::time::format_rfc3339_ms(o.end_ms),
        end_unix: end_s,
        previous_start: sextant_model::time::format_rfc3339_ms(prev_end_ms - range_ms),
        previous_end: sextant_model::time::format_rfc3339_ms(prev_end_ms),
        previous_end_unix: prev_s,
        sections,
    })
}

fn key_of(labels: &BTreeMap<String, String>, key_labels: &[&str]) -> String {
    let parts: Vec<&str> = key_labels
        .iter()
        .map(|l| labels.get(*l).map(String::as_str).unwrap_or(""))
        .collect();
    if parts.iter().all(|p| p.is_empty()) {
        "(none)".to_string()
    } else {
        parts.join(" / ")
    }
}

/// Joins this period's and the previous period's points into sorted rows.
fn fill(s: &mut Section, now: Vec<Point>, prev: Vec<Point>) {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (labels, v) in now {
        let key = key_of(&labels, &s.key_labels);
        let kept: BTreeMap<String, String> = labels
            .into_iter()
            .filter(|(k, _)| s.key_labels.contains(&k.as_str()))
            .collect();
        rows.insert(
            key.clone(),
            Row {
                key,
                labels: kept,
                value: Some(v),
                previous: None,
                status: None,
            },
        );
    }
    for (labels, v) in prev {
        let key = key_of(&labels, &s.key_labels);
        let e = rows.entry(key.clone()).or_insert_with(|| Row {
            key,
            labels: labels
                .into_iter()
                .filter(|(k, _)| s.key_labels.contains(&k.as_str()))
                .collect(),
            value: None,
            previous: None,
            status: None,
        });
        e.previous = Some(v);
    }
    let additive = matches!(s.unit, Unit::Count | Unit::Tokens | Unit::Usd);
    let sum = |f: &dyn Fn(&Row) -> Option<f64>| -> Option<f64> {
        let vals: Vec<f64> = rows.values().filter_map(f).collect();
        (!vals.is_empty()).then(|| vals.iter().sum())
    };
    if additive && s.id != "flaky_tests" {
        s.total = sum(&|r| r.value);
        s.previous_total = sum(&|r| r.previous);
    } else if s.id == "flaky_tests" {
        s.total = sum(&|r| r.value.map(|_| 1.0));
        s.previous_total = sum(&|r| r.previous.map(|_| 1.0));
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    if s.id == "slo" {
        for r in &mut rows {
            r.status = r.value.map(|v| {
                if v <= 0.0 {
                    "exhausted"
                } else if v < 0.5 {
                    "burning"
                } else {
                    "ok"
                }
                .to_string()
            });
        }
    }
    // Worst first: lowest ratios, largest everything else; rows only in the previous period last.
    let low_is_worst = s.unit == Unit::Ratio;
    rows.sort_by(|a, b| match (a.value, b.value) {
        (Some(x), Some(y)) => {
            let o = if low_is_worst {
                x.total_cmp(&y)
            } else {
                y.total_cmp(&x)
            };
            o.then_with(|| a.key.cmp(&b.key))
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.key.cmp(&b.key),
    });
    if rows.iter().all(|r| r.value.is_none()) {
        s.note = Some("no data for this period".to_string());
    }
    if rows.len() > MAX_ROWS {
        s.omitted = rows.len() - MAX_ROWS;
        rows.truncate(MAX_ROWS);
    }
    s.rows = rows;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `up` queries with fixed values per evaluation time; fails `probe_success`.
    struct Fake;
    impl Source for Fake {
        fn query(&self, expr: &str, t: f64) -> Result<Vec<Point>, QueryError> {
            let job = |j: &str| BTreeMap::from([("job".to_string(), j.to_string())]);
            if expr.contains("(up[") {
                return Ok(if t > 5000.0 {
                    vec![(job("api"), 0.5), (job("db"), 1.0)]
                } else {
                    vec![(job("api"), 0.75), (job("old"), 1.0)]
                });
            }
            if expr.contains("probe_success") {
                return Err(QueryError {
                    fatal: false,
                    msg: "bad_data: nope".into(),
                });
            }
            Ok(Vec::new())
        }
    }

    #[test]
    fn durations() {
        assert_eq!(promql_duration(Duration::from_secs(7 * 86400)), "1w");
        assert_eq!(promql_duration(Duration::from_secs(86400)), "1d");
        assert_eq!(promql_duration(Duration::from_secs(90)), "90s");
        assert_eq!(promql_duration(Duration::from_secs(5400)), "90m");
    }

    #[test]
    fn rows_join_both_periods_worst_first_and_missing_data_is_named() {
        let o = Options {
            range: Duration::from_secs(3600),
            range_text: "1h".into(),
            end_ms: 7_200_000,
            title: "t".into(),
            server: "s".into(),
        };
        let r = generate(&Fake, &o).unwrap();
        assert_eq!(r.previous_end_unix, 3600.0);
        let a = &r.sections[0];
        let rows: Vec<(&str, Option<f64>, Option<f64>)> = a
            .rows
            .iter()
            .map(|r| (r.key.as_str(), r.value, r.previous))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("api", Some(0.5), Some(0.75)),
                ("db", Some(1.0), None),
                ("old", None, Some(1.0))
            ]
        );
        assert_eq!(a.note, None);
        assert_eq!(
            r.sections[1].note.as_deref(),
            Some("query failed: bad_data: nope")
        );
        assert_eq!(
            r.sections[2].note.as_deref(),
            Some("no data for this period")
        );

        struct Down;
        impl Source for Down {
            fn query(&self, _: &str, _: f64) -> Result<Vec<Point>, QueryError> {
                Err(QueryError {
                    fatal: true,
                    msg: "connection refused".into(),
                })
            }
        }
        assert_eq!(generate(&Down, &o).unwrap_err().msg, "connection refused");
    }
}
