//! The LLM layer end to end: the real OpenTelemetry Python SDK emits GenAI metrics in the
//! current conventions (cumulative) and in the older / counter forms (delta) to a running
//! `sextant serve`; the normalised series, the price series written from the shipped price
//! table, the cost recording rules of rules/llm-cost.yml (checked against the same arithmetic
//! done here on independently queried rates), the unpriced-model series and API, every query
//! of the built-in "LLM performance and cost" dashboard, and the daily budget alert (firing
//! with a tiny budget, resolving after the budget is raised and the configuration reloaded)
//! must all work. A `prices:` section with a bad entry is refused, naming the field.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const ROUNDS: u32 = 4;

/// Are `python3` and the OpenTelemetry SDK + OTLP/HTTP exporter installed? Skips with a
/// message when not, or fails when `SEXTANT_REQUIRE_PEERS=1`.
fn python_otel() -> bool {
    have(
        "python3 with opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http",
        Command::new("python3").args([
            "-c",
            "import opentelemetry.sdk.metrics, opentelemetry.exporter.otlp.proto.http.metric_exporter",
        ]),
    )
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Instant query at `time` (now when None): (labels, value) per series.
fn query_at(
    c: &reqwest::blocking::Client,
    base: &str,
    q: &str,
    time: Option<f64>,
) -> Vec<(Value, f64)> {
    let mut params = vec![("query".to_string(), q.to_string())];
    if let Some(t) = time {
        params.push(("time".into(), format!("{t:.3}")));
    }
    let r: Value = c
        .get(format!("{base}/api/v1/query"))
        .query(&params)
        .send()
        .expect("query")
        .json()
        .expect("query JSON");
    assert_eq!(r["status"], "success", "{q}: {r}");
    r["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let v = s["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{q}: no value in {s}"));
            (s["metric"].clone(), v)
        })
        .collect()
}

fn one_at(c: &reqwest::blocking::Client, base: &str, q: &str, time: Option<f64>) -> f64 {
    let r = query_at(c, base, q, time);
    assert_eq!(r.len(), 1, "{q} should select exactly one series: {r:?}");
    r[0].1
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn write_config(path: &Path, budget: &str, extra: &str) {
    std::fs::write(
        path,
        format!(
            "global:\n  evaluation_interval: 1s\nprices:\n  budget_usd_per_day: {budget}\n{extra}"
        ),
    )
    .expect("write config");
}

fn firing(c: &reqwest::blocking::Client, base: &str, name: &str) -> bool {
    let v: Value = c
        .get(format!("{base}/api/v1/alerts"))
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null);
    v["data"]["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .any(|x| x["labels"]["alertname"] == name && x["state"] == "firing")
        })
        .unwrap_or(false)
}

/// PromQL's `sum`: Kahan-Neumaier compensated, as Prometheus sums.
fn kahan(v: &[f64]) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for &x in v {
        let t = s + x;
        if t.is_infinite() {
            c = 0.0;
        } else if s.abs() >= x.abs() {
            c += (s - t) + x;
        } else {
            c += (x - t) + s;
        }
        s = t;
    }
    s + c
}

/// `sum` of three numbers in every order the series may come in (PromQL fixes none).
fn sums3(a: f64, b: f64, c: f64) -> [f64; 6] {
    [
        kahan(&[a, b, c]),
        kahan(&[a, c, b]),
        kahan(&[b, a, c]),
        kahan(&[b, c, a]),
        kahan(&[c, a, b]),
        kahan(&[c, b, a]),
    ]
}

#[test]
fn genai_metrics_prices_cost_dashboard_and_budget_alert() {
    if !python_otel() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("sextant.yml");
    write_config(&cfg, "0.000001", "");
    let cfg_s = cfg.to_str().expect("utf-8 path");
    let mut server = Server::start(&dir.path().join("data"), &["--config", cfg_s]);
    server.wait_ready(Duration::from_secs(60));
    let base = server.url("");
    let c = client();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/genai/emit.py");
    let mut py = Child(
        Command::new("python3")
            .arg(script)
            .arg(server.url("/v1/metrics"))
            .arg(ROUNDS.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3"),
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = py.0.try_wait().expect("wait python") {
            break s;
        }
        assert!(Instant::now() < deadline, "emit.py did not finish in 180s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    if let Some(mut e) = py.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "emit.py failed: {err}");
    assert!(
        !err.contains("partial") && !err.contains("Failed"),
        "exporter reported problems: {err}"
    );
    let data_done = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let r = f64::from(ROUNDS);

    // --- 1. Normalised series: both generations land on the same names and labels. ---
    let planner = r#"job="planner-agent", gen_ai_provider_name="openai", gen_ai_request_model="gpt-4o", gen_ai_response_model="gpt-4o-2024-08-06", gen_ai_agent_name="planner", gen_ai_operation_name="chat""#;
    let coder = r#"job="coder-agent", gen_ai_provider_name="anthropic", gen_ai_request_model="claude-3-5-haiku-20241022", gen_ai_response_model="claude-3-5-haiku-20241022", gen_ai_agent_name="coder", gen_ai_operation_name="chat""#;
    for (sel, tt, want) in [
        (planner, "input", 1000.0 * r),
        (planner, "output", 200.0 * r),
        // gen_ai.system "Anthropic" + token type "prompt"/"completion", delta temporality.
        (coder, "input", 3000.0 * r),
        (coder, "output", 500.0 * r),
        // The newer counter form, onto the same `_sum` series name.
        (coder, "cache_read", 1200.0 * r),
    ] {
        let q = format!(r#"gen_ai_client_token_usage_sum{{{sel}, gen_ai_token_type="{tt}"}}"#);
        assert_eq!(one_at(&c, &base, &q, None), want, "{q}");
    }
    assert!(
        query_at(&c, &base, "{gen_ai_system!=\"\"}", None).is_empty(),
        "gen_ai.system must be renamed to gen_ai.provider.name"
    );
    assert_eq!(
        one_at(
            &c,
            &base,
            r#"gen_ai_client_token_usage_sum{gen_ai_provider_name="acme", gen_ai_request_model="house-7b", gen_ai_token_type="input"}"#,
            None
        ),
        50.0 * r
    );
    assert_eq!(
        one_at(
            &c,
            &base,
            r#"gen_ai_client_operation_duration_seconds_count{job="planner-agent", gen_ai_operation_name="invoke_agent", gen_ai_agent_name="planner"}"#,
            None
        ),
        r
    );
    assert_eq!(
        one_at(
            &c,
            &base,
            r#"gen_ai_client_operation_duration_seconds_count{job="planner-agent", gen_ai_operation_name="execute_tool", gen_ai_tool_name="search"}"#,
            None
        ),
        r
    );
    assert_eq!(
        one_at(
            &c,
            &base,
            r#"gen_ai_client_operation_duration_seconds_count{job="planner-agent", error_type="429"}"#,
            None
        ),
        r
    );

    // --- 2. Price series with the observed label values, from the shipped table. ---
    let prices = |provider: &str, model: &str, tt: &str| -> f64 {
        wait_for(
            &format!("price of {provider}/{model} {tt}"),
            Duration::from_secs(60),
            || {
                let q = format!(
                    r#"sextant_llm_price_usd_per_token{{provider="{provider}", model="{model}", token_type="{tt}"}}"#
                );
                query_at(&c, &base, &q, None).first().map(|x| x.1)
            },
        )
    };
    // prices/llm.yml: gpt-4o 2.50/10.00, claude-3-5-haiku 0.80/4.00, cache read 0.08 (USD/M).
    let p_in = prices("openai", "gpt-4o-2024-08-06", "input");
    let p_out = prices("openai", "gpt-4o-2024-08-06", "output");
    assert_eq!(p_in, 2.5 / 1e6);
    assert_eq!(p_out, 10.0 / 1e6);
    let h_in = prices("anthropic", "claude-3-5-haiku-20241022", "input");
    let h_out = prices("anthropic", "claude-3-5-haiku-20241022", "output");
    let h_cr = prices("anthropic", "claude-3-5-haiku-20241022", "cache_read");
    assert_eq!((h_in, h_out, h_cr), (0.8 / 1e6, 4.0 / 1e6, 0.08 / 1e6));
    // The request model (alias) is priced too, so either label joins.
    assert_eq!(prices("openai", "gpt-4o", "input"), 2.5 / 1e6);

    // --- 3. Unknown models: a series and the API, never a zero price. ---
    wait_for("unpriced house-7b", Duration::from_secs(60), || {
        let v = query_at(
            &c,
            &base,
            r#"sextant_llm_unpriced_model{provider="acme", model="house-7b"}"#,
            None,
        );
        (v.first().map(|x| x.1) == Some(1.0)).then_some(())
    });
    assert!(query_at(
        &c,
        &base,
        r#"sextant_llm_price_usd_per_token{model="house-7b"}"#,
        None
    )
    .is_empty());
    let api: Value = c
        .get(format!("{base}/api/sextant/prices"))
        .send()
        .and_then(|r| r.json())
        .expect("prices API");
    assert_eq!(api["status"], "success");
    assert_eq!(
        api["data"]["unpriced"],
        serde_json::json!([{"provider": "acme", "model": "house-7b"}])
    );
    assert_eq!(api["data"]["budget_usd_per_day"], 0.000001);
    let observed = api["data"]["observed"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let snap = observed
        .iter()
        .find(|o| o["model"] == "gpt-4o-2024-08-06")
        .expect("gpt-4o snapshot observed");
    assert_eq!(snap["priced_as"]["model"], "gpt-4o");
    assert!(api["data"]["models"].as_array().map_or(0, Vec::len) > 20);

    // --- 4. Cost recording rules: the same arithmetic on independently queried rates. ---
    // The cost group reads the token group's latest results; each of those must equal the
    // raw rate()/increase() at its own evaluation time, and the cost must equal their sum
    // of products with the prices. Wait for an evaluation after all data arrived.
    let cost_q = r#"sextant_llm_cost_usd:rate5m{job="planner-agent", source="otel"}"#;
    let t = wait_for("cost rule after the data", Duration::from_secs(60), || {
        let ts = query_at(&c, &base, &format!("timestamp({cost_q})"), None);
        ts.first().map(|x| x.1).filter(|t| *t > data_done + 1.0)
    });
    const P: &str = r#"job="planner-agent", model="gpt-4o-2024-08-06""#;
    const C: &str = r#"job="coder-agent", model="claude-3-5-haiku-20241022""#;
    // The token group's value for (job and model, token type) seen at `t`, checked against `func`
    // of the raw series at the token group's evaluation time.
    let tokens = |record: &str, func: &str, range: &str, sel: &str, rec_sel: &str, tt: &str| {
        let rec = format!(r#"{record}{{{rec_sel}, token_type="{tt}", source="otel"}}"#);
        let v = one_at(&c, &base, &rec, Some(t));
        let at = one_at(&c, &base, &format!("timestamp({rec})"), Some(t));
        let raw = one_at(
            &c,
            &base,
            &format!(
                r#"{func}(gen_ai_client_token_usage_sum{{{sel}, gen_ai_token_type="{tt}"}}[{range}])"#
            ),
            Some(at),
        );
        assert_eq!(v, raw, "{rec} at {at}");
        assert!(v > 0.0, "{rec}");
        v
    };
    let rate = |sel: &str, rec_sel: &str, tt: &str| {
        tokens("sextant_llm_tokens:rate5m", "rate", "5m", sel, rec_sel, tt)
    };
    let (r_in, r_out) = (rate(planner, P, "input"), rate(planner, P, "output"));
    let got = one_at(&c, &base, cost_q, Some(t));
    assert_eq!(
        got,
        kahan(&[r_in * p_in, r_out * p_out]),
        "planner cost rate"
    );
    // Coder: the conventions count cache reads inside input, so input is priced net of them.
    let (c_in, c_out, c_cr) = (
        rate(coder, C, "input"),
        rate(coder, C, "output"),
        rate(coder, C, "cache_read"),
    );
    let got = one_at(
        &c,
        &base,
        r#"sextant_llm_cost_usd:rate5m{job="coder-agent", model="claude-3-5-haiku-20241022"}"#,
        Some(t),
    );
    let want = sums3((c_in - c_cr) * h_in, c_out * h_out, c_cr * h_cr);
    assert!(
        want.contains(&got),
        "coder cost rate {got}, want one of {want:?}"
    );
    // Per day: the increase over 1d priced the same way.
    let inc = |tt: &str| {
        tokens(
            "sextant_llm_tokens:increase1d",
            "increase",
            "1d",
            planner,
            P,
            tt,
        )
    };
    let got = one_at(
        &c,
        &base,
        r#"job:sextant_llm_cost_usd:increase1d{job="planner-agent"}"#,
        Some(t),
    );
    assert_eq!(got, kahan(&[inc("input") * p_in, inc("output") * p_out]));

    // --- 5. Every query of the built-in dashboard returns data. ---
    let dash: Value = c
        .get(format!("{base}/api/sextant/dashboards/llm"))
        .send()
        .and_then(|r| r.json())
        .expect("dashboard");
    let panels = dash["data"]["dashboard"]["panels"]
        .as_array()
        .or_else(|| dash["dashboard"]["panels"].as_array())
        .cloned()
        .unwrap_or_else(|| panic!("llm dashboard panels: {dash}"));
    let mut checked = 0;
    for p in &panels {
        for target in p["targets"].as_array().cloned().unwrap_or_default() {
            let expr = target["expr"].as_str().unwrap_or_default();
            let q = expr.replace("$__rate_interval", "5m").replace("$job", ".*");
            let res = wait_for(
                &format!("data for panel {:?}: {q}", p["title"]),
                Duration::from_secs(30),
                || {
                    let v = query_at(&c, &base, &q, None);
                    (!v.is_empty()).then_some(v)
                },
            );
            assert!(
                res.iter().all(|x| x.1.is_finite()),
                "panel {:?}: {q} gave {res:?}",
                p["title"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} dashboard queries");

    // --- 6. Budget alert: fires with the tiny budget, resolves after raising it. ---
    wait_for(
        "LLMDailyBudgetExceeded firing",
        Duration::from_secs(60),
        || firing(&c, &base, "LLMDailyBudgetExceeded").then_some(()),
    );
    // A bad price entry is refused with the field named; nothing changes.
    write_config(
        &cfg,
        "1000000",
        "  models:\n    - {provider: acme, model: house-7b, input: -2, output: 1}\n",
    );
    let resp = c.post(format!("{base}/-/reload")).send().expect("reload");
    assert_eq!(resp.status().as_u16(), 500);
    let text = resp.text().unwrap_or_default();
    assert!(
        text.contains("sextant.yml:6: prices.models[].input"),
        "reload error should name the line and field: {text}"
    );
    // Raise the budget and price the unknown model.
    write_config(
        &cfg,
        "1000000",
        "  models:\n    - {provider: acme, model: house-7b, input: 2, output: 1}\n",
    );
    let resp = c.post(format!("{base}/-/reload")).send().expect("reload");
    assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text());
    wait_for(
        "LLMDailyBudgetExceeded resolved",
        Duration::from_secs(60),
        || (!firing(&c, &base, "LLMDailyBudgetExceeded")).then_some(()),
    );
    wait_for(
        "house-7b priced after reload",
        Duration::from_secs(60),
        || {
            let v = query_at(
                &c,
                &base,
                r#"sextant_llm_price_usd_per_token{provider="acme", model="house-7b", token_type="input"}"#,
                None,
            );
            (v.first().map(|x| x.1) == Some(2.0 / 1e6)).then_some(())
        },
    );
    assert!(query_at(&c, &base, "sextant_llm_unpriced_model == 1", None).is_empty());
}

#[test]
fn bad_prices_section_stops_start_up_with_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("sextant.yml");
    std::fs::write(
        &cfg,
        "prices:\n  models:\n    - {provider: openai, model: gpt-4o, input: 2.5, output: 10, from: 2024-02-30}\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .expect("run sextant check config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("sextant.yml:3: prices.models[].from: \"2024-02-30\" is not a date"),
        "{text}"
    );
}
