//! Results of `sextant run` on disk until the server takes them. Every run first writes its
//! result (push body and JUnit files) as one JSON file into the spool, then the spool is sent
//! oldest first and each entry is deleted once the server answered. So a server that is down
//! (or a network that is) loses nothing: the next `sextant run` or `sextant run --flush`
//! sends what waited, in the order the runs happened.
//!
//! Push groups are replaced by each push, so an old result must not overwrite a newer one:
//! entries from one spool go out in order, and before an entry from an earlier process is
//! pushed, the group's `sextant_job_last_run_timestamp_seconds` on the server is compared (a
//! run reported meanwhile from another machine wins; the old entry's JUnit files still go).
//! The TTL of a late entry counts from the end of its run, not from the time it is sent.
//!
//! The same directory holds `runs.json`, the per-group run counters behind
//! `sextant_job_runs_total` (a push group keeps no history, so the counter lives with the
//! runner), guarded by an advisory lock.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Entries beyond this many are dropped, oldest first, so a server that never comes back
/// cannot fill the disk.
const MAX_ENTRIES: usize = 1000;

/// One run's result, waiting to be sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub server: String,
    pub job: String,
    pub labels: Vec<(String, String)>,
    pub commit: String,
    /// End of the run (Unix seconds); orders entries and limits a late entry's TTL.
    pub run_end: f64,
    pub ttl_seconds: Option<f64>,
    /// The push body (text format); `None` once pushed.
    pub body: Option<String>,
    /// JUnit XML files still to upload: (file name for messages, content).
    pub junit: Vec<(String, String)>,
}

impl Entry {
    fn grouping(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = self.labels.iter().cloned().collect();
        m.insert("job".into(), self.job.clone());
        m
    }
}

/// The default spool directory: `$XDG_STATE_HOME/sextant/run`, else
/// `~/.local/state/sextant/run`, else a directory under the system's temp dir.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("sextant/run");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".local/state/sextant/run");
    }
    std::env::temp_dir().join("sextant-run")
}

pub struct Spool {
    dir: PathBuf,
}

/// What happened to one send attempt.
enum Sent {
    Done,
    /// The server is unreachable or failed (5xx): keep the entry, stop for now.
    Later(String),
}

impl Spool {
    pub fn open(dir: &Path) -> Result<Spool> {
        std::fs::create_dir_all(dir.join("pending"))
            .with_context(|| format!("creating the spool directory {}", dir.display()))?;
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
    }

    fn pending(&self) -> PathBuf {
        self.dir.join("pending")
    }

    /// Entry files, oldest first (names are zero-padded nanosecond times).
    fn list(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.pending())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        v.sort();
        v
    }

    /// Writes an entry durably (temp file, fsync, rename); returns its path.
    pub fn add(&self, e: &Entry) -> Result<PathBuf> {
        let existing = self.list();
        if existing.len() >= MAX_ENTRIES {
            for p in &existing[..existing.len() + 1 - MAX_ENTRIES] {
                warn(&format!(
                    "spool is full ({MAX_ENTRIES} entries): dropping {}",
                    p.display()
                ));
                let _ = std::fs::remove_file(p);
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("{nanos:024}-{}.json", std::process::id());
        let path = self.pending().join(name);
        write_atomic(&path, &serde_json::to_vec(e)?)?;
        Ok(path)
    }

    /// Sends every entry, oldest first, until one cannot be delivered. `mine` is the entry this
    /// process just added (sent without the newer-result check). Returns how many entries
    /// are left.
    pub fn flush(&self, client: &reqwest::blocking::Client, mine: Option<&Path>) -> usize {
        // One flush at a time per spool, so parallel runs do not send an entry (and its
        // JUnit files) twice; a second run waits and then finds what is left.
        let _lock = match self.lock("flush.lock") {
            Ok(l) => l,
            Err(e) => {
                warn(&format!("{e:#}"));
                return self.list().len();
            }
        };
        let files = self.list();
        let mut left = files.len();
        for path in files {
            let text = match std::fs::read(&path) {
                Ok(t) => t,
                Err(_) => {
                    left -= 1; // taken by a concurrent flush
                    continue;
                }
            };
            let mut e: Entry = match serde_json::from_slice(&text) {
                Ok(e) => e,
                Err(err) => {
                    let bad = path.with_extension("corrupt");
                    warn(&format!(
                        "unreadable spool entry {} ({err}); moved to {}",
                        path.display(),
                        bad.display()
                    ));
                    let _ = std::fs::rename(&path, &bad);
                    left -= 1;
                    continue;
                }
            };
            let late = mine != Some(path.as_path());
            match send(client, &mut e, late) {
                Sent::Done => {
                    let _ = std::fs::remove_file(&path);
                    left -= 1;
                }
                Sent::Later(why) => {
                    // Keep what was delivered already (the push, some JUnit files) out of
                    // the next attempt.
                    if let Ok(b) = serde_json::to_vec(&e) {
                        let _ = write_atomic(&path, &b);
                    }
                    warn(&format!(
                        "{why}; {left} result(s) kept in {} and sent by the next `sextant run` or `sextant run --flush`",
                        self.pending().display()
                    ));
                    return left;
                }
            }
        }
        left
    }

    /// An exclusive advisory lock on a file in the spool directory, held until dropped.
    fn lock(&self, name: &str) -> Result<std::fs::File> {
        let path = self.dir.join(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        loop {
            // SAFETY: flock on a valid open descriptor; released when `f` is closed.
            let r = unsafe {
                use std::os::fd::AsRawFd;
                libc::flock(f.as_raw_fd(), libc::LOCK_EX)
            };
            if r == 0 {
                return Ok(f);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
    }

    /// The lock the caller holds around [`Spool::count_run`] and [`Spool::add`].
    pub fn runs_lock(&self) -> Result<std::fs::File> {
        self.lock("runs.lock")
    }

    /// Counts this run in `runs.json` (the caller holds [`Spool::runs_lock`]) and returns (successful, failed, last success time).
    pub fn count_run(&self, key: &str, success: bool, end: f64) -> Result<(u64, u64, Option<f64>)> {
        #[derive(Serialize, Deserialize, Default)]
        struct Counts {
            success: u64,
            failure: u64,
            last_success: Option<f64>,
        }
        let path = self.dir.join("runs.json");
        let mut all: BTreeMap<String, Counts> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let c = all.entry(key.to_string()).or_default();
        if success {
            c.success += 1;
            c.last_success = Some(end);
        } else {
            c.failure += 1;
        }
        let out = (c.success, c.failure, c.last_success);
        write_atomic(&path, &serde_json::to_vec_pretty(&all)?)?;
        Ok(out)
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

pub fn warn(msg: &str) {
    eprintln!("sextant run: warning: {msg}");
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Network errors and 5xx answers are worth retrying later; anything else is final.
fn classify(what: &str, r: reqwest::Result<reqwest::blocking::Response>) -> Sent {
    match r {
        Err(e) => Sent::Later(format!("{what}: server not reachable ({e})")),
        Ok(resp) if resp.status().is_server_error() => {
            let s = resp.status();
            Sent::Later(format!(
                "{what}: server answered {s}: {}",
                resp.text().unwrap_or_default().trim()
            ))
        }
        Ok(resp) if !resp.status().is_success() => {
            let s = resp.status();
            warn(&format!(
                "{what}: refused with {s}: {} (not retried)",
                resp.text().unwrap_or_default().trim()
            ));
            Sent::Done
        }
        Ok(_) => Sent::Done,
    }
}

fn send(client: &reqwest::blocking::Client, e: &mut Entry, late: bool) -> Sent {
    let base = e.server.trim_end_matches('/').to_string();
    if let Some(body) = e.body.clone() {
        let mut ttl = e.ttl_seconds;
        let mut skip = false;
        if late {
            if let Some(t) = ttl {
                // The TTL counts from the end of the run; a result that arrives after it
                // passed lives one second, long enough to be stored once.
                ttl = Some((t - (now() - e.run_end)).max(1.0));
            }
            match server_last_run(client, &base, &e.grouping()) {
                Ok(Some(t)) if t > e.run_end => {
                    warn(&format!(
                        "job {:?}: the server already has a newer run (ended {t}) than this spooled one (ended {}); its metrics are not pushed",
                        e.job, e.run_end
                    ));
                    skip = true;
                }
                Ok(_) => {}
                Err(why) => return Sent::Later(why),
            }
        }
        if !skip {
            let url = match super::push_url(&base, &e.job, &e.labels, ttl) {
                Ok(u) => u,
                Err(err) => {
                    warn(&format!("job {:?}: {err}", e.job));
                    e.body = None;
                    return Sent::Done;
                }
            };
            let r = client
                .post(&url)
                .header("Content-Type", "text/plain; version=0.0.4")
                .body(body)
                .send();
            if let Sent::Later(why) = classify(&format!("pushing to {base}"), r) {
                return Sent::Later(why);
            }
        }
        e.body = None;
    }
    while let Some((name, xml)) = e.junit.first().cloned() {
        let mut q: Vec<(String, String)> = vec![
            ("job".into(), e.job.clone()),
            ("commit".into(), e.commit.clone()),
            // One run id for every file of this run, so the server keeps them as one run.
            ("run".into(), format!("{:.6}", e.run_end)),
        ];
        for (k, v) in &e.labels {
            q.push(("label".into(), format!("{k}={v}")));
        }
        let r = client
            .post(format!("{base}/api/v1/junit"))
            .query(&q)
            .header("Content-Type", "application/xml")
            .body(xml)
            .send();
        if let Sent::Later(why) = classify(&format!("uploading {name}"), r) {
            return Sent::Later(why);
        }
        e.junit.remove(0);
    }
    Sent::Done
}

/// The group's `sextant_job_last_run_timestamp_seconds` from the Pushgateway JSON API
/// (`GET /api/v1/metrics`); `Ok(None)` when the group or the API is not there.
fn server_last_run(
    client: &reqwest::blocking::Client,
    base: &str,
    grouping: &BTreeMap<String, String>,
) -> Result<Option<f64>, String> {
    let r = client
        .get(format!("{base}/api/v1/metrics"))
        .timeout(Duration::from_secs(30))
        .send()
        .map_err(|e| format!("asking {base} for its push groups: server not reachable ({e})"))?;
    if r.status().is_server_error() {
        return Err(format!("asking {base} for its push groups: {}", r.status()));
    }
    let Ok(v) = r.json::<serde_json::Value>() else {
        return Ok(None);
    };
    let groups = v["data"].as_array().cloned().unwrap_or_default();
    for g in groups {
        let labels: BTreeMap<String, String> = g["labels"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    // The Pushgateway shows an `instance=""` it adds to every group.
                    .filter(|(k, v)| !(k == "instance" && v.is_empty()))
                    .collect()
            })
            .unwrap_or_default();
        if &labels != grouping {
            continue;
        }
        let val = g["sextant_job_last_run_timestamp_seconds"]["metrics"][0]["value"].clone();
        let t = match &val {
            serde_json::Value::String(s) => s.parse::<f64>().ok(),
            other => other.as_f64(),
        };
        return Ok(t);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(server: &str) -> Entry {
        Entry {
            server: server.into(),
            job: "j".into(),
            labels: vec![("k".into(), "v".into())],
            commit: "c".into(),
            run_end: 1.0,
            ttl_seconds: None,
            body: Some("x 1\n".into()),
            junit: vec![("a.xml".into(), "<testsuite/>".into())],
        }
    }

    #[test]
    fn unreachable_server_keeps_entries_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let a = s.add(&entry(&url)).unwrap();
        let b = s.add(&entry(&url)).unwrap();
        assert!(a < b);
        let c = reqwest::blocking::Client::new();
        assert_eq!(s.flush(&c, Some(&b)), 2);
        assert_eq!(s.list(), vec![a, b]);
    }

    #[test]
    fn counters_accumulate() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let _g = s.runs_lock().unwrap();
        assert_eq!(s.count_run("job=a", true, 5.0).unwrap(), (1, 0, Some(5.0)));
        assert_eq!(s.count_run("job=a", false, 6.0).unwrap(), (1, 1, Some(5.0)));
        assert_eq!(s.count_run("job=b", false, 7.0).unwrap(), (0, 1, None));
    }
}
