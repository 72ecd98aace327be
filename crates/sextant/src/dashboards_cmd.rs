//! `sextant dashboards …` and the wiring of dashboards into `serve`: the store in the data
//! directory, the user directory, reloads, and the Grafana import command (convert files to
//! Sextant YAML, or hand them to a running server).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use sextant_dashboards::grafana::{Imported, PanelReport};
use sextant_dashboards::{Dashboards, Format, Store};

#[derive(Subcommand)]
pub enum DashboardsCommand {
    /// Convert Grafana dashboard JSON (a dashboard, the API's {dashboard: …} wrapper, or an
    /// array of them) to Sextant dashboards, printing what could not be converted per panel.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write one <uid>.yml per dashboard into this directory (default: YAML on stdout).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Post the files to a running Sextant, which converts and stores them.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
    /// Validate Sextant dashboard files (YAML or JSON).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Opens the dashboards of `serve`: built-ins, the user directory, `dashboards.db`.
pub fn open(data_dir: &Path, dir: Option<PathBuf>) -> Result<Arc<Dashboards>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let db = data_dir.join("dashboards.db");
    let store = Store::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let d = Dashboards::new(store, dir.clone(), true).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(dir) = &dir {
        tracing::info!(dir = %dir.display(), "dashboards directory loaded");
    }
    Ok(Arc::new(d))
}

/// Chains a dashboards re-read before another reload step.
pub fn with_reload(
    d: Arc<Dashboards>,
    next: Option<crate::rules_cmd::ExtraReload>,
) -> Option<crate::rules_cmd::ExtraReload> {
    Some(Box::new(move || {
        d.reload().map_err(|e| e.to_string())?;
        match &next {
            Some(f) => f(),
            None => Ok(()),
        }
    }))
}

/// Largest Grafana file read (bytes).
const MAX_INPUT: u64 = 64 << 20;

pub fn run(c: DashboardsCommand) -> Result<()> {
    match c {
        DashboardsCommand::Import { files, out, server } => {
            import(&files, out.as_deref(), server.as_deref())
        }
        DashboardsCommand::Check { files } => check(&files),
    }
}

fn read(f: &Path) -> Result<String> {
    let len = std::fs::metadata(f)
        .with_context(|| format!("reading {}", f.display()))?
        .len();
    if len > MAX_INPUT {
        anyhow::bail!("{}: larger than {MAX_INPUT} bytes", f.display());
    }
    std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))
}

fn print_report(file: &Path, title: &str, uid: &str, panels: usize, report: &[PanelReport]) {
    let n: usize = report.iter().map(|r| r.problems.len()).sum();
    eprintln!(
        "{}: {title:?} → uid {uid}, {panels} panels, {n} problems",
        file.display()
    );
    for r in report {
        let what = match r.panel_id {
            Some(id) => format!("panel {id} {:?} ({})", r.title, r.kind),
            None if r.kind == "dashboard" => "dashboard".to_string(),
            None => format!("panel {:?} ({})", r.title, r.kind),
        };
        for p in &r.problems {
            eprintln!("  {what}: {p}");
        }
    }
}

fn import(files: &[PathBuf], out: Option<&Path>, server: Option<&str>) -> Result<()> {
    let mut failed = 0;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let client = match server {
        Some(_) => Some(
            crate::client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .context("building the HTTP client")?,
        ),
        None => None,
    };
    let mut first_doc = true;
    for f in files {
        let text = match read(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
                continue;
            }
        };
        if let (Some(url), Some(client)) = (server, &client) {
            match post(client, url, &text) {
                Ok(items) => {
                    for (title, uid, panels, report) in items {
                        print_report(f, &title, &uid, panels, &report);
                        println!("saved {uid} to {url}");
                    }
                }
                Err(e) => {
                    eprintln!("error: {}: {e:#}", f.display());
                    failed += 1;
                }
            }
            if out.is_none() {
                continue;
            }
        }
        let imported = match sextant_dashboards::grafana::import_str(&text) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {}: {e}", f.display());
                failed += 1;
                continue;
            }
        };
        for Imported { dashboard, report } in imported {
            if server.is_none() {
                print_report(
                    f,
                    &dashboard.title,
                    &dashboard.uid,
                    dashboard.panels.len(),
                    &report,
                );
            }
            let yaml = sextant_dashboards::export(&dashboard, Format::Yaml);
            match out {
                Some(dir) => {
                    let p = dir.join(format!("{}.yml", dashboard.uid));
                    std::fs::write(&p, yaml).with_context(|| format!("writing {}", p.display()))?;
                    println!("wrote {}", p.display());
                }
                None => {
                    if !first_doc {
                        println!("---");
                    }
                    print!("{yaml}");
                }
            }
            first_doc = false;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files could not be imported", files.len());
    }
    Ok(())
}

type Posted = Vec<(String, String, usize, Vec<PanelReport>)>;

/// Posts one file to `/api/sextant/dashboards/import?save=true`.
fn post(client: &reqwest::blocking::Client, url: &str, text: &str) -> Result<Posted> {
    let endpoint = format!(
        "{}/api/sextant/dashboards/import?save=true",
        url.trim_end_matches('/')
    );
    let resp = client
        .post(&endpoint)
        .header("content-type", "application/json")
        .body(text.to_string())
        .send()
        .with_context(|| format!("POST {endpoint}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp
        .json()
        .with_context(|| format!("reading the answer of {endpoint}"))?;
    if !status.is_success() {
        anyhow::bail!(
            "{endpoint}: {status}: {}",
            body.get("error").and_then(|e| e.as_str()).unwrap_or("")
        );
    }
    let mut out = Vec::new();
    for item in body
        .get("data")
        .and_then(|d| d.as_array())
        .cloned()
        .unwrap_or_default()
    {
        let d = &item["dashboard"];
        let report: Vec<PanelReport> = item["report"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| PanelReport {
                        panel_id: r["panel_id"].as_i64(),
                        title: r["title"].as_str().unwrap_or_default().to_string(),
                        kind: r["type"].as_str().unwrap_or_default().to_string(),
                        problems: r["problems"]
                            .as_array()
                            .map(|p| {
                                p.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push((
            d["title"].as_str().unwrap_or_default().to_string(),
            item["saved_uid"].as_str().unwrap_or_default().to_string(),
            d["panels"].as_array().map(Vec::len).unwrap_or(0),
            report,
        ));
    }
    Ok(out)
}

fn check(files: &[PathBuf]) -> Result<()> {
    let mut bad = 0;
    for f in files {
        let res = read(f).and_then(|t| {
            sextant_dashboards::parse(&t, &f.display().to_string(), Format::of_path(f))
                .map_err(|e| anyhow::anyhow!("{e}"))
        });
        match res {
            Ok(d) => println!(
                "  SUCCESS: {} is a valid dashboard (uid {}, {} panels)",
                f.display(),
                d.uid,
                d.panels.len()
            ),
            Err(e) => {
                bad += 1;
                eprintln!("  FAILED: {e:#}");
            }
        }
    }
    if bad > 0 {
        anyhow::bail!("{bad} of {} files are invalid", files.len());
    }
    Ok(())
}
