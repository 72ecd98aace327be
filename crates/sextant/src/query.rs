//! `sextant query`: runs PromQL against a server's `/api/v1/query(_range)` and prints the
//! result as a table (like `promtool query`) or as the server's JSON.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{Output, QueryArgs};

pub fn run(a: QueryArgs) -> Result<()> {
    let base = a.server.trim_end_matches('/');
    let client = crate::client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .context("building the HTTP client")?;
    let mut form: Vec<(&str, String)> = vec![("query", a.expr.clone())];
    let path = match (&a.start, &a.end) {
        (Some(s), Some(e)) => {
            form.push(("start", s.clone()));
            form.push(("end", e.clone()));
            let step = match &a.step {
                Some(st) => st.clone(),
                None => default_step(s, e)?,
            };
            form.push(("step", step));
            "/api/v1/query_range"
        }
        _ => {
            if let Some(t) = &a.time {
                form.push(("time", t.clone()));
            }
            "/api/v1/query"
        }
    };
    let url = format!("{base}{path}");
    let resp = client
        .post(&url)
        .form(&form)
        .send()
        .with_context(|| format!("querying {url}"))?;
    let status = resp.status();
    let body = resp.text().context("reading the response")?;
    let j: Value = serde_json::from_str(&body)
        .with_context(|| format!("{url} answered {status} with non-JSON: {body}"))?;
    if j["status"] != "success" {
        bail!(
            "{} ({}): {}",
            j["errorType"].as_str().unwrap_or("error"),
            status,
            j["error"].as_str().unwrap_or(&body)
        );
    }
    for w in j["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", w.as_str().unwrap_or_default());
    }
    match a.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&j["data"])?),
        Output::Table => print!("{}", table(&j["data"])),
    }
    Ok(())
}

fn default_step(start: &str, end: &str) -> Result<String> {
    let s = sextant_model::time::parse_timestamp_ms(start)
        .map_err(|e| anyhow::anyhow!("--start: {e}"))?;
    let e =
        sextant_model::time::parse_timestamp_ms(end).map_err(|e| anyhow::anyhow!("--end: {e}"))?;
    Ok(format!("{}", ((e - s) as f64 / 250.0 / 1000.0).max(1.0)))
}

fn metric(m: &Value) -> String {
    let obj = m.as_object().cloned().unwrap_or_default();
    let name = obj
        .get("__name__")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let rest: Vec<String> = obj
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| {
            format!(
                "{k}={}",
                serde_json::to_string(v.as_str().unwrap_or("")).unwrap_or_default()
            )
        })
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

fn point(p: &Value) -> String {
    let v = &p[1];
    let val = v
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string());
    format!("{val} @[{}]", p[0])
}

/// Text rendering of a query result, like `promtool query`.
pub fn table(data: &Value) -> String {
    let mut out = String::new();
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => out.push_str(&format!("{}\n", point(result))),
        Some("vector") => {
            for s in result.as_array().into_iter().flatten() {
                let p = if s.get("histogram").is_some() {
                    &s["histogram"]
                } else {
                    &s["value"]
                };
                out.push_str(&format!("{} => {}\n", metric(&s["metric"]), point(p)));
            }
        }
        Some("matrix") => {
            for s in result.as_array().into_iter().flatten() {
                out.push_str(&format!("{} =>\n", metric(&s["metric"])));
                for p in s["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(s["histograms"].as_array().into_iter().flatten())
                {
                    out.push_str(&format!("{}\n", point(p)));
                }
            }
        }
        _ => out.push_str(&format!("{data}\n")),
    }
    out
}
