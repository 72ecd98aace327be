//! `sextant run [options] -- CMD ARGS...`: wraps a short-lived job (a CI step, a cron
//! script, an agent batch) so its runs are monitored without touching the job: the command
//! runs with inherited stdio and its exit code is passed through; afterwards its start/end
//! time, duration, exit code, peak RSS and CPU, commit and host, plus parsed coverage and
//! benchmark results, are pushed to a push group (with a TTL, so a job that stops running
//! raises the `JobMissedRun` alert), and JUnit XML files are uploaded to `/api/v1/junit`.
//! Monitoring never changes the exit code: every monitoring problem is a warning on stderr,
//! and results that cannot be sent wait in a spool directory for the next run.
//!
//! - [`child`]: running the command like a shell would, with resource usage.
//! - [`report`]: the pushed series.
//! - [`spool`]: results on disk, sent oldest first.
//!
//! User documentation: `docs/jobs.md`.

mod child;
mod report;
mod spool;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use clap::Args;
use sextant_ingest::bench::{BenchFormat, BenchResult};
use sextant_ingest::coverage::CoverageReport;

use spool::warn;

/// Largest JUnit, coverage or benchmark file read (bigger ones are skipped with a warning).
const MAX_FILE: u64 = 64 << 20;

#[derive(Args)]
pub struct RunArgs {
    /// Sextant (or Pushgateway) to report to.
    #[arg(long, env = "SEXTANT_SERVER", default_value = "http://127.0.0.1:9595")]
    server: String,
    /// Job name (the `job` label); default: the command's file name.
    #[arg(long)]
    job: Option<String>,
    /// Further grouping label NAME=VALUE (repeatable).
    #[arg(long = "label", value_name = "NAME=VALUE")]
    labels: Vec<String>,
    /// JUnit XML files to upload after the run (a path or a glob in the last path element;
    /// repeatable).
    #[arg(long, value_name = "GLOB")]
    junit: Vec<String>,
    /// Coverage report (Cobertura XML or LCOV, detected) to report after the run (repeatable;
    /// several are summed).
    #[arg(long, value_name = "FILE")]
    coverage: Vec<PathBuf>,
    /// Benchmark results: criterion estimates.json or a criterion directory (e.g.
    /// target/criterion), pytest-benchmark JSON, hyperfine JSON; globs allowed (repeatable).
    #[arg(long, value_name = "FILE")]
    bench: Vec<String>,
    /// Expected interval between runs: the push group expires after this long without a new
    /// run, which fires the JobMissedRun alert (Prometheus duration, e.g. 1h, 1d).
    #[arg(long)]
    ttl: Option<String>,
    /// Where unsent results and run counters are kept (default: $XDG_STATE_HOME/sextant/run or
    /// ~/.local/state/sextant/run).
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// Send spooled results; with no command, only that.
    #[arg(long)]
    flush: bool,
    /// The command and its arguments (after `--`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<String>,
}

/// What the grouping key and TTL of a valid invocation are.
struct Target {
    job: String,
    labels: Vec<(String, String)>,
    ttl_seconds: Option<f64>,
}

fn target(a: &RunArgs) -> Result<Target> {
    let job = match &a.job {
        Some(j) => j.clone(),
        None => a
            .command
            .first()
            .map(|c| {
                Path::new(c)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| c.clone())
            })
            .unwrap_or_default(),
    };
    if job.is_empty() {
        bail!("--job must not be empty");
    }
    let mut labels = Vec::new();
    for l in &a.labels {
        let Some((k, v)) = l.split_once('=') else {
            bail!("--label {l:?}: expected NAME=VALUE");
        };
        if !sextant_model::labels::is_valid_label_name(k) || k.starts_with("__") {
            bail!("--label {l:?}: {k:?} is not a valid label name");
        }
        if k == "job" {
            bail!("--label {l:?}: give the job with --job");
        }
        if labels.iter().any(|(n, _)| n == k) {
            bail!("--label {l:?}: label {k:?} given twice");
        }
        labels.push((k.to_string(), v.to_string()));
    }
    let ttl_seconds = match &a.ttl {
        None => None,
        Some(t) => {
            let d = sextant_model::time::parse_duration(t)
                .map_err(|e| anyhow::anyhow!("--ttl {t:?}: {e}"))?;
            if d.is_zero() {
                bail!("--ttl {t:?}: must be greater than zero");
            }
            Some(d.as_secs_f64())
        }
    };
    Ok(Target {
        job,
        labels,
        ttl_seconds,
    })
}

/// `<server>/metrics/job/<job>/<label>/<value>...[?ttl=<n>s]`.
pub(crate) fn push_url(
    base: &str,
    job: &str,
    labels: &[(String, String)],
    ttl: Option<f64>,
) -> Result<String> {
    let mut url = base.trim_end_matches('/').to_string() + "/metrics";
    url.push_str(&crate::push::segment("job", job));
    for (k, v) in labels {
        url.push_str(&crate::push::segment(k, v));
    }
    if let Some(t) = ttl {
        // Whole milliseconds, at least one.
        let ms = (t * 1000.0).ceil().max(1.0) as u64;
        url.push_str(&format!("?ttl={ms}ms"));
    }
    Ok(url)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn client() -> Option<reqwest::blocking::Client> {
    match crate::client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
    {
        Ok(c) => Some(c),
        Err(e) => {
            warn(&format!("cannot build an HTTP client: {e}"));
            None
        }
    }
}

pub fn main(a: RunArgs) -> ExitCode {
    let dir = a.spool_dir.clone().unwrap_or_else(spool::default_dir);
    if a.command.is_empty() {
        if !a.flush {
            eprintln!("error: no command given: sextant run [OPTIONS] -- CMD ARGS...");
            return ExitCode::from(2);
        }
        let Some(c) = client() else {
            return ExitCode::FAILURE;
        };
        return match spool::Spool::open(&dir) {
            Ok(s) => {
                let left = s.flush(&c, None);
                if left == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // A bad option must not stop the job: warn, run it, skip reporting.
    let target = match target(&a) {
        Ok(t) => Some(t),
        Err(e) => {
            warn(&format!("{e:#}; the run is not reported"));
            None
        }
    };
    let start = now();
    let outcome = child::run(&a.command);
    let end = now();
    if let Some(msg) = &outcome.spawn_error {
        eprintln!("sextant run: {msg}");
    }
    if let Some(t) = target {
        report_run(&a, &t, &dir, start, end, &outcome);
    }
    ExitCode::from(outcome.exit_code.clamp(0, 255) as u8)
}

fn report_run(a: &RunArgs, t: &Target, dir: &Path, start: f64, end: f64, outcome: &child::Outcome) {
    let spool = match spool::Spool::open(dir) {
        Ok(s) => Some(s),
        Err(e) => {
            warn(&format!("{e:#}; results are sent without spooling"));
            None
        }
    };
    let success = outcome.exit_code == 0;
    let key = std::iter::once(format!("job={}", t.job))
        .chain(t.labels.iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",");
    let commit = commit();
    let host = hostname();
    let coverage = read_coverage(&a.coverage);
    let bench = read_bench(&a.bench);
    let junit = read_junit(&a.junit);
    let command = Path::new(&a.command[0])
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Counting the run and adding its entry under one lock keeps the spool's order (the
    // order of sending) the order of the counter values, also for parallel runs.
    let guard = spool.as_ref().and_then(|s| match s.runs_lock() {
        Ok(g) => Some(g),
        Err(e) => {
            warn(&format!("run counters: {e:#}"));
            None
        }
    });
    let counted = match (&spool, &guard) {
        (Some(s), Some(_)) => match s.count_run(&key, success, end) {
            Ok(c) => Some(c),
            Err(e) => {
                warn(&format!("run counters: {e:#}"));
                None
            }
        },
        _ => None,
    };
    let (runs, last_success) = match counted {
        Some((s, f, last)) => ((s, f), last),
        None => (
            if success { (1, 0) } else { (0, 1) },
            success.then_some(end),
        ),
    };
    let body = report::RunReport {
        start,
        end,
        outcome,
        commit: &commit,
        host: &host,
        command: &command,
        runs,
        last_success,
        ttl_seconds: t.ttl_seconds,
        coverage: &coverage,
        bench: &bench,
    }
    .body();
    let entry = spool::Entry {
        server: a.server.clone(),
        job: t.job.clone(),
        labels: t.labels.clone(),
        commit,
        run_end: end,
        ttl_seconds: t.ttl_seconds,
        body: Some(body),
        junit,
    };
    let added = spool.as_ref().map(|s| s.add(&entry));
    drop(guard);
    let Some(c) = client() else { return };
    match (spool, added) {
        (Some(s), Some(Ok(path))) => {
            s.flush(&c, Some(&path));
        }
        (_, Some(Err(e))) => {
            warn(&format!("{e:#}; sending without spooling"));
            send_direct(&c, entry);
        }
        _ => send_direct(&c, entry),
    }
}

/// Sends an entry once, without a spool (the spool directory is not usable).
fn send_direct(c: &reqwest::blocking::Client, e: spool::Entry) {
    let Ok(tmp) = tempdir() else {
        warn("no temporary directory: the result is lost");
        return;
    };
    if let Ok(s) = spool::Spool::open(&tmp) {
        if let Ok(p) = s.add(&e) {
            if s.flush(c, Some(&p)) > 0 {
                warn("the result could not be sent and is lost (no spool directory)");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

fn tempdir() -> std::io::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("sextant-run-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// The commit being built: CI variables first (GitHub Actions and Gitea Actions, GitLab,
/// Gitea/Woodpecker/Drone, Buildkite, CircleCI, Jenkins), else `git rev-parse HEAD`.
fn commit() -> String {
    for var in [
        "GITHUB_SHA",
        "GITEA_SHA",
        "CI_COMMIT_SHA",
        "DRONE_COMMIT_SHA",
        "BUILDKITE_COMMIT",
        "CIRCLE_SHA1",
        "GIT_COMMIT",
    ] {
        if let Ok(v) = std::env::var(var) {
            let v = v.trim();
            if !v.is_empty() {
                return v.to_string();
            }
        }
    }
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length; gethostname NUL-terminates within it on success.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Reads a file of at most [`MAX_FILE`] bytes as text.
fn read_small(p: &Path) -> Result<String> {
    let meta = std::fs::metadata(p)?;
    if meta.len() > MAX_FILE {
        bail!("larger than {MAX_FILE} bytes");
    }
    Ok(String::from_utf8(std::fs::read(p)?)?)
}

fn read_coverage(files: &[PathBuf]) -> Vec<CoverageReport> {
    let mut out = Vec::new();
    for f in files {
        let r = read_small(f).and_then(|t| Ok(sextant_ingest::coverage::parse(&t)?));
        match r {
            Ok(r) => {
                if r.packages_dropped > 0 {
                    warn(&format!(
                        "--coverage {}: {} packages beyond the largest {} are not reported per package",
                        f.display(),
                        r.packages_dropped,
                        sextant_ingest::coverage::MAX_PACKAGES
                    ));
                }
                out.push(r)
            }
            Err(e) => warn(&format!("--coverage {}: {e:#}", f.display())),
        }
    }
    out
}

/// Expands `--bench` arguments: globs, and directories searched for criterion's
/// `*/new/estimates.json` (at most 8 levels deep).
fn bench_files(args: &[String]) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if depth > 8 {
            return;
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                if p.file_name()
                    .is_some_and(|n| n == "base" || n == "change" || n == "report")
                {
                    continue;
                }
                walk(&p, depth + 1, out);
            } else if p.file_name().is_some_and(|n| n == "estimates.json")
                && p.parent()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "new")
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for p in sextant_rules::expand_globs(args, Path::new("")) {
        if p.is_dir() {
            let before = out.len();
            walk(&p, 0, &mut out);
            if out.len() == before {
                warn(&format!(
                    "--bench {}: no criterion */new/estimates.json in it",
                    p.display()
                ));
            }
        } else {
            out.push(p);
        }
    }
    if out.is_empty() && !args.is_empty() {
        warn(&format!("--bench {}: no file matches", args.join(" ")));
    }
    out
}

fn read_bench(args: &[String]) -> Vec<(BenchFormat, Vec<BenchResult>)> {
    let mut out = Vec::new();
    for f in bench_files(args) {
        let r = read_small(&f).and_then(|t| {
            let beside = f.parent().map(|d| d.join("benchmark.json"));
            let bj = beside.and_then(|b| std::fs::read_to_string(b).ok());
            let name = sextant_ingest::bench::criterion_name(&f, bj.as_deref());
            Ok(sextant_ingest::bench::parse(&t, Some(&name))?)
        });
        match r {
            Ok(r) => out.push(r),
            Err(e) => warn(&format!("--bench {}: {e:#}", f.display())),
        }
    }
    out
}

/// JUnit files matching the globs, checked only for being readable XML with a `<testsuite`
/// (the server parses them).
fn read_junit(globs: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for g in globs {
        let files = sextant_rules::expand_globs(std::slice::from_ref(g), Path::new(""));
        let files: Vec<PathBuf> = files.into_iter().filter(|p| p.is_file()).collect();
        if files.is_empty() {
            warn(&format!("--junit {g}: no file matches"));
        }
        for f in files {
            match read_small(&f) {
                Ok(t) => {
                    let s = t.trim_start_matches('\u{feff}').trim_start();
                    if !s.starts_with('<') || !s.contains("<testsuite") {
                        warn(&format!(
                            "--junit {}: not JUnit XML (no <testsuite> element); not uploaded",
                            f.display()
                        ));
                        continue;
                    }
                    out.push((f.display().to_string(), t));
                }
                Err(e) => warn(&format!("--junit {}: {e:#}", f.display())),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_urls() {
        let l = vec![("run".to_string(), "a/b".to_string())];
        assert_eq!(
            push_url("http://h:1/", "ci", &l, Some(1.5)).unwrap(),
            "http://h:1/metrics/job/ci/run@base64/YS9i?ttl=1500ms"
        );
    }

    #[test]
    fn criterion_directory_is_searched() {
        let d = tempfile::tempdir().unwrap();
        for sub in ["g/a/new", "g/a/base", "g/a/change", "g/b/new"] {
            std::fs::create_dir_all(d.path().join(sub)).unwrap();
            std::fs::write(d.path().join(sub).join("estimates.json"), "{}").unwrap();
        }
        let files = bench_files(&[d.path().display().to_string()]);
        assert_eq!(
            files,
            vec![
                d.path().join("g/a/new/estimates.json"),
                d.path().join("g/b/new/estimates.json")
            ]
        );
    }
}
