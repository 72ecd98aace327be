//! `sextant import agent-events FILE...`: sends agent run events that a tool already wrote to
//! local files (JSON Lines, a JSON array, one event or `{"events": [...]}`) to a running
//! Sextant. Every file is validated first with the server's own rules, so a bad event is
//! reported as `file:line: /pointer: reason` and nothing is sent; then the events go out in
//! bounded batches as JSON Lines. Events with an `event_id` are counted once by the server, so
//! importing the same file twice does not double count them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::Value;
use sextant_ingest::events::parse::MAX_EVENTS_PER_REQUEST;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import agent run events (JSON or JSON Lines files) into a running Sextant.
    AgentEvents {
        /// Files of events: JSON Lines (one event per line), a JSON array, one event, or
        /// {"events": [...]}.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Server to send to.
        #[arg(long, default_value = "http://127.0.0.1:9595")]
        server: String,
        /// Events per request (at most 1000).
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
}

pub fn run(c: ImportCommand) -> Result<()> {
    match c {
        ImportCommand::AgentEvents {
            files,
            server,
            batch,
        } => agent_events(&files, &server, batch),
    }
}

/// One event with where it came from, for error messages.
struct Located {
    line: String,
    origin: String,
}

/// Largest file read (events files are small; this bounds memory).
const MAX_FILE_BYTES: u64 = 1 << 30;

fn read_events(path: &Path, now_ms: i64, out: &mut Vec<Located>) -> Result<()> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).with_context(|| format!("{name}: cannot read"))?;
    if meta.len() > MAX_FILE_BYTES {
        bail!(
            "{name}: {} bytes, larger than the 1 GiB this command reads; split the file",
            meta.len()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{name}: cannot read as UTF-8 text"))?;
    let check = |v: &Value, origin: String| -> Result<Located> {
        // Checked as the one-event JSON Lines line it is sent as (compact JSON has no newline).
        let line = serde_json::to_string(v)?;
        if let Err(e) = sextant_ingest::events::parse_events(line.as_bytes(), true, now_ms) {
            let ptr = if e.pointer.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.pointer)
            };
            bail!("{origin}: {ptr}{}", e.message);
        }
        Ok(Located { line, origin })
    };
    // A whole-file JSON document first; otherwise JSON Lines.
    if let Ok(doc) = serde_json::from_str::<Value>(&text) {
        match doc {
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    out.push(check(v, format!("{name}: /{i}"))?);
                }
            }
            Value::Object(ref m) if m.contains_key("events") => match m.get("events") {
                Some(Value::Array(items)) if m.len() == 1 => {
                    for (i, v) in items.iter().enumerate() {
                        out.push(check(v, format!("{name}: /events/{i}"))?);
                    }
                }
                _ => bail!("{name}: expected {{\"events\": [...]}} with nothing else"),
            },
            v @ Value::Object(_) => out.push(check(&v, name.clone())?),
            _ => bail!("{name}: expected JSON Lines of events, an array of events or one event"),
        }
        return Ok(());
    }
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let origin = format!("{name}:{}", i + 1);
        let v: Value = serde_json::from_str(l)
            .map_err(|e| anyhow::anyhow!("{origin}: invalid JSON at column {}: {e}", e.column()))?;
        out.push(check(&v, origin)?);
    }
    Ok(())
}

fn agent_events(files: &[PathBuf], server: &str, batch: usize) -> Result<()> {
    if batch == 0 || batch > MAX_EVENTS_PER_REQUEST {
        bail!("--batch must be between 1 and {MAX_EVENTS_PER_REQUEST}");
    }
    let now = sextant_model::time::now_ms();
    let mut events = Vec::new();
    for f in files {
        read_events(f, now, &mut events)?;
    }
    if events.is_empty() {
        bail!(
            "no events in {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let url = server.trim_end_matches('/').to_string() + "/api/v1/agent/events";
    let client = crate::client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let (mut accepted, mut duplicates) = (0u64, 0u64);
    for chunk in events.chunks(batch) {
        let mut body = String::new();
        for e in chunk {
            body.push_str(&e.line);
            body.push('\n');
        }
        let first = &chunk[0].origin;
        let resp = client
            .post(&url)
            .header("Content-Type", "application/x-ndjson")
            .body(body)
            .send()
            .with_context(|| format!("sending events from {first} on to {url}"))?;
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        if !status.is_success() {
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or(text);
            bail!(
                "{url} answered {status} for the batch starting at {first}: {}",
                msg.trim()
            );
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        accepted += v["data"]["accepted"].as_u64().unwrap_or(0);
        duplicates += v["data"]["duplicates"].as_u64().unwrap_or(0);
    }
    println!(
        "imported {accepted} events ({duplicates} already seen) from {} file(s)",
        files.len()
    );
    Ok(())
}
