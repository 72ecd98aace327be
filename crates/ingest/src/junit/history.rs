//! The bounded history of JUnit runs per job, in SQLite (`junit.db` in the data directory),
//! and the analyses that need more than one run: new failures (failing now, passed in the
//! previous run), flaky tests (passed and failed on the same commit, passed only on a rerun,
//! or flipping between pass and fail across the last [`FLAKY_WINDOW`] runs), slowest tests
//! and current failures. A *stream* is a job plus the extra labels of the upload, so
//! `job=ci,os=linux` and `job=ci,os=mac` are compared only with themselves.
//!
//! Everything the series and tables show is computed from this history, so it is the same
//! after a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};
use serde::Serialize;

use super::{Outcome, Report};

/// Runs kept per stream; older ones are deleted when a new one arrives.
pub const KEEP_RUNS: usize = 50;
/// Runs of a stream looked at for flakiness.
pub const FLAKY_WINDOW: usize = 10;
/// Flips (pass→fail or fail→pass between consecutive runs) in the window that make a test
/// flaky: one flip is a regression or a fix, two are a regression and its fix, three or more
/// are a test that cannot make up its mind.
pub const FLAKY_FLIPS: usize = 3;

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[error("JUnit history: {0}")]
pub struct HistoryError(pub String);

impl From<rusqlite::Error> for HistoryError {
    fn from(e: rusqlite::Error) -> Self {
        HistoryError(e.to_string())
    }
}

/// Who a run belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamKey {
    pub job: String,
    /// Extra labels of the upload, sorted by name, without `job`.
    pub labels: Vec<(String, String)>,
}

impl StreamKey {
    /// A canonical spelling, the key in the database.
    pub fn id(&self) -> String {
        let mut s = format!("job={:?}", self.job);
        for (k, v) in &self.labels {
            s.push_str(&format!(",{k}={v:?}"));
        }
        s
    }
}

/// One test's result in a run (duplicates within a run merged).
#[derive(Clone, Debug, PartialEq)]
pub struct CaseRow {
    pub suite: String,
    pub classname: String,
    pub name: String,
    pub category: String,
    pub outcome: Outcome,
    pub duration: f64,
    /// Failed attempts before the final outcome in this run.
    pub reruns: u32,
    pub message: String,
}

impl CaseRow {
    fn id(&self) -> TestId {
        TestId {
            suite: self.suite.clone(),
            classname: self.classname.clone(),
            name: self.name.clone(),
        }
    }
}

/// A test's identity across runs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TestId {
    pub suite: String,
    pub classname: String,
    pub name: String,
}

/// One stored run.
#[derive(Clone, Debug)]
pub struct Run {
    pub id: i64,
    pub commit: String,
    /// Unix milliseconds of the upload.
    pub ts: i64,
    /// Suite name → duration in seconds.
    pub suites: BTreeMap<String, f64>,
    pub cases: Vec<CaseRow>,
}

/// A flaky test, as the table shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Flaky {
    pub suite: String,
    pub classname: String,
    pub test: String,
    /// `same_commit` (passed and failed on one commit), `rerun` (passed only after failed
    /// attempts in one run) or `flips` (alternating across runs); several joined by `,`.
    pub reason: String,
    /// Runs in the window that ran the test (not skipped).
    pub runs: usize,
    pub passes: usize,
    pub failures: usize,
    pub flips: usize,
    /// Commits on which it both passed and failed.
    pub commits: Vec<String>,
    pub last_failure_message: String,
    /// Unix seconds of the newest failing run (or rerun) in the window.
    pub last_failed: f64,
}

/// A failing test of the latest run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Failure {
    pub suite: String,
    pub classname: String,
    pub test: String,
    pub result: &'static str,
    pub message: String,
    /// Passed in the previous run.
    pub new: bool,
    /// Consecutive runs (this one included) it has failed in.
    pub failing_runs: usize,
}

/// A test of the latest run with its duration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Slow {
    pub suite: String,
    pub classname: String,
    pub test: String,
    pub result: &'static str,
    pub duration_seconds: f64,
}

/// What the analyses say about a stream.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    pub latest: Option<Run>,
    /// Failing now, passed in the previous run.
    pub new_failures: Vec<TestId>,
    pub flaky: Vec<Flaky>,
    /// Runs uploaded for the stream ever.
    pub runs_total: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS streams (
  stream TEXT PRIMARY KEY, job TEXT NOT NULL, labels TEXT NOT NULL, runs_total INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, git_commit TEXT NOT NULL,
  ts INTEGER NOT NULL, run_key TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS runs_by_stream ON runs(stream, id);
CREATE TABLE IF NOT EXISTS suites (
  run INTEGER NOT NULL, suite TEXT NOT NULL, duration REAL NOT NULL, PRIMARY KEY (run, suite));
CREATE TABLE IF NOT EXISTS cases (
  run INTEGER NOT NULL, suite TEXT NOT NULL, classname TEXT NOT NULL, name TEXT NOT NULL,
  category TEXT NOT NULL, result TEXT NOT NULL, duration REAL NOT NULL, reruns INTEGER NOT NULL,
  message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cases_by_run ON cases(run);
";

/// Known category words in suite and class names (see [`category`]).
const CATEGORY_WORDS: &[&str] = &[
    "unit",
    "integration",
    "e2e",
    "end2end",
    "acceptance",
    "functional",
    "system",
    "smoke",
    "regression",
    "contract",
    "performance",
    "perf",
    "benchmark",
    "ui",
    "api",
];

/// The category of a test: its `category` property (pytest's
/// `record_property("category", …)`), else its suite's `category` property, else the first
/// segment of its class name or suite name (split at `.`, `/`, `:`, `_`, `-`, space) that is
/// one of the known words (`unit`, `integration`, `e2e`, `smoke`, …; `tests.integration.
/// test_db` → `integration`), else `uncategorized`.
pub fn category(
    case_props: &[(String, String)],
    suite_props: &[(String, String)],
    classname: &str,
    suite: &str,
) -> String {
    for props in [case_props, suite_props] {
        if let Some((_, v)) = props.iter().find(|(k, v)| k == "category" && !v.is_empty()) {
            return v.clone();
        }
    }
    for s in [classname, suite] {
        for seg in s.split(['.', '/', ':', '_', '-', ' ']) {
            let seg = seg.to_ascii_lowercase();
            if let Some(w) = CATEGORY_WORDS.iter().find(|w| **w == seg) {
                return (*w).to_string();
            }
        }
    }
    "uncategorized".to_string()
}

/// Merges a report into one row per test: suites of the same name are one suite (durations
/// added), and a test listed more than once (Gradle's test-retry plugin lists every attempt)
/// takes its last outcome, earlier failed attempts counting as reruns.
pub fn rows(report: &Report) -> (BTreeMap<String, f64>, Vec<CaseRow>) {
    let mut suites: BTreeMap<String, f64> = BTreeMap::new();
    let mut rows: Vec<CaseRow> = Vec::new();
    let mut new = Vec::with_capacity(report.cases());
    for s in &report.suites {
        *suites.entry(s.name.clone()).or_default() += s.duration();
        for c in &s.cases {
            new.push(CaseRow {
                suite: s.name.clone(),
                classname: c.classname.clone(),
                name: c.name.clone(),
                category: category(&c.properties, &s.properties, &c.classname, &s.name),
                outcome: c.outcome,
                duration: c.time,
                reruns: c.flaky_reruns,
                message: c.message.clone(),
            });
        }
    }
    merge_rows(&mut rows, new);
    (suites, rows)
}

/// Adds `new` rows to `rows`, one row per test: a test seen again takes its newer outcome,
/// earlier failed attempts counting as reruns and durations adding up.
pub fn merge_rows(rows: &mut Vec<CaseRow>, new: Vec<CaseRow>) {
    let mut index: HashMap<TestId, usize> =
        rows.iter().enumerate().map(|(i, r)| (r.id(), i)).collect();
    for row in new {
        let id = row.id();
        match index.get(&id).copied() {
            Some(i) => {
                let prev = &mut rows[i];
                let mut reruns = prev.reruns.saturating_add(row.reruns);
                if prev.outcome.is_failure() {
                    reruns = reruns.saturating_add(1);
                }
                let keep_msg = if row.outcome == Outcome::Passed && prev.outcome.is_failure() {
                    prev.message.clone()
                } else {
                    row.message.clone()
                };
                let duration = prev.duration + row.duration;
                *prev = CaseRow {
                    reruns,
                    duration,
                    message: keep_msg,
                    ..row
                };
            }
            None => {
                index.insert(id, rows.len());
                rows.push(row);
            }
        }
    }
}

/// The run history database.
pub struct History {
    conn: Mutex<Connection>,
}

impl History {
    /// Opens (creating) `path`.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::init(conn)
    }

    /// An in-memory history (tests, or no data directory).
    pub fn in_memory() -> Result<History, HistoryError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<History, HistoryError> {
        conn.execute_batch(SCHEMA)?;
        Ok(History {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a run and deletes the stream's runs beyond [`KEEP_RUNS`]; returns its id. With
    /// a non-empty `run_key` equal to the newest run's, the report is added to that run
    /// instead (one run uploaded as several files).
    pub fn insert(
        &self,
        key: &StreamKey,
        run_key: &str,
        commit: &str,
        ts: i64,
        suites: &BTreeMap<String, f64>,
        cases: &[CaseRow],
    ) -> Result<i64, HistoryError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let stream = key.id();
        let labels = serde_json::to_string(&key.labels).map_err(|e| HistoryError(e.to_string()))?;
        let newest: Option<(i64, String)> = if run_key.is_empty() {
            None
        } else {
            let mut q = tx.prepare(
                "SELECT id, run_key FROM runs WHERE stream = ?1 ORDER BY id DESC LIMIT 1",
            )?;
            let mut rows = q.query_map(params![stream], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.next().transpose()?
        };
        let (run, suites, cases) = match newest {
            Some((id, k)) if k == run_key => {
                let (mut old_suites, mut old_cases) = load_run(&tx, id)?;
                for (s, d) in suites {
                    *old_suites.entry(s.clone()).or_default() += d;
                }
                merge_rows(&mut old_cases, cases.to_vec());
                tx.execute("DELETE FROM cases WHERE run = ?1", params![id])?;
                tx.execute("DELETE FROM suites WHERE run = ?1", params![id])?;
                tx.execute("UPDATE runs SET ts = ?1 WHERE id = ?2", params![ts, id])?;
                (id, old_suites, old_cases)
            }
            _ => {
                tx.execute(
                    "INSERT INTO streams (stream, job, labels, runs_total) VALUES (?1, ?2, ?3, 1)
                     ON CONFLICT(stream) DO UPDATE SET runs_total = runs_total + 1",
                    params![stream, key.job, labels],
                )?;
                tx.execute(
                    "INSERT INTO runs (stream, git_commit, ts, run_key) VALUES (?1, ?2, ?3, ?4)",
                    params![stream, commit, ts, run_key],
                )?;
                (tx.last_insert_rowid(), suites.clone(), cases.to_vec())
            }
        };
        {
            let mut st =
                tx.prepare("INSERT INTO suites (run, suite, duration) VALUES (?1, ?2, ?3)")?;
            for (s, d) in &suites {
                st.execute(params![run, s, d])?;
            }
            let mut st = tx.prepare(
                "INSERT INTO cases (run, suite, classname, name, category, result, duration, reruns, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for c in &cases {
                st.execute(params![
                    run,
                    c.suite,
                    c.classname,
                    c.name,
                    c.category,
                    c.outcome.as_str(),
                    c.duration,
                    c.reruns,
                    c.message
                ])?;
            }
            let old: Vec<i64> = {
                let mut q = tx.prepare(
                    "SELECT id FROM runs WHERE stream = ?1 ORDER BY id DESC LIMIT -1 OFFSET ?2",
                )?;
                let rows = q.query_map(params![stream, KEEP_RUNS as i64], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for id in old {
                tx.execute("DELETE FROM cases WHERE run = ?1", params![id])?;
                tx.execute("DELETE FROM suites WHERE run = ?1", params![id])?;
                tx.execute("DELETE FROM runs WHERE id = ?1", params![id])?;
            }
        }
        tx.commit()?;
        Ok(run)
    }

    /// Every stream with at least one run.
    pub fn streams(&self) -> Result<Vec<StreamKey>, HistoryError> {
        let conn = self.lock();
        let mut q = conn.prepare("SELECT job, labels FROM streams ORDER BY stream")?;
        let rows = q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (job, labels) = row?;
            let labels: Vec<(String, String)> = serde_json::from_str(&labels)
                .map_err(|e| HistoryError(format!("corrupt labels of job {job}: {e}")))?;
            out.push(StreamKey { job, labels });
        }
        Ok(out)
    }

    /// The newest `n` runs of a stream, newest first.
    pub fn recent(&self, key: &StreamKey, n: usize) -> Result<Vec<Run>, HistoryError> {
        let conn = self.lock();
        let stream = key.id();
        let mut q = conn.prepare(
            "SELECT id, git_commit, ts FROM runs WHERE stream = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let heads: Vec<(i64, String, i64)> = q
            .query_map(params![stream, n as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(heads.len());
        for (id, commit, ts) in heads {
            let (suites, cases) = load_run(&conn, id)?;
            out.push(Run {
                id,
                commit,
                ts,
                suites,
                cases,
            });
        }
        Ok(out)
    }

    fn runs_total(&self, key: &StreamKey) -> Result<u64, HistoryError> {
        let conn = self.lock();
        let n: Option<i64> = conn
            .query_row(
                "SELECT runs_total FROM streams WHERE stream = ?1",
                params![key.id()],
                |r| r.get(0),
            )
            .ok();
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// Runs the analyses over a stream's recent runs.
    pub fn analyse(&self, key: &StreamKey) -> Result<Analysis, HistoryError> {
        let runs = self.recent(key, FLAKY_WINDOW)?;
        let mut a = analyse_runs(&runs);
        a.runs_total = self.runs_total(key)?;
        Ok(a)
    }
}

/// A stored run's suites and cases.
fn load_run(
    conn: &Connection,
    id: i64,
) -> Result<(BTreeMap<String, f64>, Vec<CaseRow>), HistoryError> {
    let mut qs = conn.prepare_cached("SELECT suite, duration FROM suites WHERE run = ?1")?;
    let suites = qs
        .query_map(params![id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
        })?
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let mut qc = conn.prepare_cached(
        "SELECT suite, classname, name, category, result, duration, reruns, message
         FROM cases WHERE run = ?1 ORDER BY rowid",
    )?;
    let cases = qc
        .query_map(params![id], |r| {
            let result: String = r.get(4)?;
            Ok(CaseRow {
                suite: r.get(0)?,
                classname: r.get(1)?,
                name: r.get(2)?,
                category: r.get(3)?,
                outcome: Outcome::parse(&result).unwrap_or(Outcome::Errored),
                duration: r.get(5)?,
                reruns: r.get(6)?,
                message: r.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((suites, cases))
}

/// The analyses over `runs` (newest first).
pub fn analyse_runs(runs: &[Run]) -> Analysis {
    let Some(latest) = runs.first() else {
        return Analysis::default();
    };
    let new_failures = match runs.get(1) {
        Some(prev) => {
            let passed: BTreeSet<TestId> = prev
                .cases
                .iter()
                .filter(|c| c.outcome == Outcome::Passed)
                .map(CaseRow::id)
                .collect();
            latest
                .cases
                .iter()
                .filter(|c| c.outcome.is_failure() && passed.contains(&c.id()))
                .map(CaseRow::id)
                .collect()
        }
        None => Vec::new(),
    };
    Analysis {
        latest: Some(latest.clone()),
        new_failures,
        flaky: flaky(runs),
        runs_total: 0,
    }
}

/// Flaky tests over `runs` (newest first), sorted by suite, class and name.
pub fn flaky(runs: &[Run]) -> Vec<Flaky> {
    struct Seen<'a> {
        /// Oldest first: (commit, failed?, reruns, ts, message).
        seq: Vec<(&'a str, bool, u32, i64, &'a str)>,
    }
    let mut tests: BTreeMap<TestId, Seen<'_>> = BTreeMap::new();
    for run in runs.iter().rev() {
        for c in &run.cases {
            if c.outcome == Outcome::Skipped {
                continue;
            }
            tests
                .entry(c.id())
                .or_insert_with(|| Seen { seq: Vec::new() })
                .seq
                .push((
                    run.commit.as_str(),
                    c.outcome.is_failure(),
                    c.reruns,
                    run.ts,
                    c.message.as_str(),
                ));
        }
    }
    let mut out = Vec::new();
    for (id, seen) in tests {
        let mut reasons = Vec::new();
        let rerun = seen
            .seq
            .iter()
            .any(|(_, failed, reruns, _, _)| !failed && *reruns > 0);
        let mut by_commit: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
        for (commit, failed, reruns, _, _) in &seen.seq {
            if commit.is_empty() {
                continue;
            }
            let e = by_commit.entry(commit).or_default();
            if *failed || *reruns > 0 {
                e.1 = true;
            }
            if !failed {
                e.0 = true;
            }
        }
        let commits: Vec<String> = by_commit
            .iter()
            .filter(|(_, (p, f))| *p && *f)
            .map(|(c, _)| c.to_string())
            .collect();
        let flips = seen.seq.windows(2).filter(|w| w[0].1 != w[1].1).count();
        if !commits.is_empty() {
            reasons.push("same_commit");
        }
        if rerun {
            reasons.push("rerun");
        }
        if flips >= FLAKY_FLIPS {
            reasons.push("flips");
        }
        if reasons.is_empty() {
            continue;
        }
        let failures = seen.seq.iter().filter(|s| s.1).count();
        let last_fail = seen.seq.iter().rev().find(|s| s.1 || s.2 > 0);
        out.push(Flaky {
            suite: id.suite,
            classname: id.classname,
            test: id.name,
            reason: reasons.join(","),
            runs: seen.seq.len(),
            passes: seen.seq.len() - failures,
            failures,
            flips,
            commits,
            last_failure_message: last_fail.map(|s| s.4.to_string()).unwrap_or_default(),
            last_failed: last_fail.map(|s| s.3 as f64 / 1000.0).unwrap_or(0.0),
        });
    }
    out
}

/// Failing tests of the newest run (newest first in `runs`), with streaks.
pub fn failures(runs: &[Run], new: &[TestId]) -> Vec<Failure> {
    let Some(latest) = runs.first() else {
        return Vec::new();
    };
    let new: BTreeSet<&TestId> = new.iter().collect();
    let older: Vec<HashMap<TestId, Outcome>> = runs[1..]
        .iter()
        .map(|r| r.cases.iter().map(|c| (c.id(), c.outcome)).collect())
        .collect();
    latest
        .cases
        .iter()
        .filter(|c| c.outcome.is_failure())
        .map(|c| {
            let id = c.id();
            let streak = 1 + older
                .iter()
                .take_while(|m| m.get(&id).is_some_and(|o| o.is_failure()))
                .count();
            Failure {
                suite: c.suite.clone(),
                classname: c.classname.clone(),
                test: c.name.clone(),
                result: c.outcome.as_str(),
                message: c.message.clone(),
                new: new.contains(&id),
                failing_runs: streak,
            }
        })
        .collect()
}

/// The `limit` slowest tests of a run.
pub fn slowest(run: &Run, limit: usize) -> Vec<Slow> {
    let mut v: Vec<&CaseRow> = run.cases.iter().collect();
    v.sort_by(|a, b| b.duration.total_cmp(&a.duration));
    v.into_iter()
        .take(limit)
        .map(|c| Slow {
            suite: c.suite.clone(),
            classname: c.classname.clone(),
            test: c.name.clone(),
            result: c.outcome.as_str(),
            duration_seconds: c.duration,
        })
        .collect()
}
