//! `sextant report`: builds a fleet report from a running Sextant's HTTP API and writes it to
//! stdout or a file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::render::{render, Format};
use super::{generate, HttpSource, Options};

#[derive(Args)]
pub struct ReportArgs {
    /// Server to ask.
    #[arg(long, default_value = "http://127.0.0.1:9595")]
    server: String,
    /// Length of the period (Prometheus duration: 24h, 7d, 2w); compared with the period of the
    /// same length before it.
    #[arg(long, default_value = "24h")]
    range: String,
    /// End of the period (RFC 3339 or Unix seconds); default now.
    #[arg(long)]
    end: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Md)]
    format: Format,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Title of the report.
    #[arg(long, default_value = "Sextant fleet report")]
    title: String,
}

pub fn run(a: ReportArgs) -> Result<()> {
    let range = sextant_model::time::parse_duration(&a.range)
        .map_err(|e| anyhow::anyhow!("--range: {e}"))?;
    if range.as_secs() < 1 {
        anyhow::bail!("--range: must be at least 1s");
    }
    let end_ms = match &a.end {
        Some(e) => sextant_model::time::parse_timestamp_ms(e)
            .map_err(|err| anyhow::anyhow!("--end: {err}"))?,
        None => sextant_model::time::now_ms(),
    };
    let src = HttpSource::new(&a.server)?;
    let report = generate(
        &src,
        &Options {
            range,
            range_text: a.range.clone(),
            end_ms,
            title: a.title.clone(),
            server: a.server.trim_end_matches('/').to_string(),
        },
    )?;
    let out = render(&report, a.format);
    match &a.output {
        Some(p) => std::fs::write(p, out).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{out}"),
    }
    Ok(())
}
