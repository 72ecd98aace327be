//! JUnit uploads as a running service: each upload is parsed, stored in the [`History`], and
//! the stream's series are recomputed from the history and written through a [`Sink`]. A
//! run's results are the state until the next run, so like a push group the current series
//! are re-appended at an interval (and stay queryable between uploads), series that leave
//! (a suite removed, a test no longer flaky) get staleness markers, and after a restart the
//! series are recomputed from the history, so they are the same as before it.
//!
//! Series (every one carries `job` and the upload's extra labels):
//! - `sextant_test_cases{suite,result}`: test cases of the latest run per result
//!   (`passed`, `failed`, `errored`, `skipped`; zeros included);
//! - `sextant_test_category_cases{category,result}`: the same per category;
//! - `sextant_test_suite_duration_seconds{suite}`;
//! - `sextant_test_case_duration_seconds{suite,classname,test}`: the slowest
//!   [`SLOWEST_PER_SUITE`] tests per suite, and `sextant_test_case_durations_omitted{suite}`
//!   the number of tests left out;
//! - `sextant_test_new_failures{suite}` and `sextant_test_new_failure{suite,classname,test}`;
//! - `sextant_test_flaky_tests{suite}` and `sextant_test_flaky{suite,classname,test}`;
//! - `sextant_test_last_run_timestamp_seconds`, `sextant_test_runs_total`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sextant_model::{Labels, Metadata, MetricType, Sample, STALE_NAN};

use super::history::{self, Analysis, Failure, Flaky, History, HistoryError, Slow, StreamKey};
use super::{Outcome, Report};
use crate::remote_write::{SeriesSamples, WriteBatch};
use crate::Sink;

/// Per-test duration series per suite (the slowest ones).
pub const SLOWEST_PER_SUITE: usize = 20;
/// Per-test new-failure and flaky series per stream; the per-suite counts are exact.
pub const MAX_TEST_SERIES: usize = 200;

/// Current time in ms since the epoch (injectable for tests).
pub type Clock = Box<dyn Fn() -> i64 + Send + Sync>;

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    /// The upload's parameters are invalid (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// Storing failed; the upload may be retried (HTTP 500).
    #[error("{0}")]
    Storage(String),
}

impl From<HistoryError> for JunitError {
    fn from(e: HistoryError) -> Self {
        JunitError::Storage(e.to_string())
    }
}

/// What an upload stored, for the response.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UploadSummary {
    pub job: String,
    pub run_id: i64,
    pub suites: usize,
    pub tests: usize,
    pub passed: usize,
    pub failed: usize,
    pub errored: usize,
    pub skipped: usize,
    pub new_failures: Vec<String>,
    pub flaky: Vec<String>,
}

/// One current series value.
type SeriesSet = BTreeMap<Labels, f64>;

struct Inner {
    /// Current series per stream.
    current: BTreeMap<StreamKey, SeriesSet>,
    last_ts: i64,
    last_reappend: i64,
}

/// The JUnit history wired to storage.
pub struct JunitRuns {
    history: History,
    inner: Mutex<Inner>,
    sink: Arc<dyn Sink>,
    clock: Clock,
    reappend_ms: i64,
}

impl JunitRuns {
    /// Opens the history at `path` (in memory without one) and recomputes every stream's
    /// series; `reappend_every` is how often [`tick`](Self::tick) re-writes them.
    pub fn open(
        sink: Arc<dyn Sink>,
        path: Option<&Path>,
        reappend_every: Duration,
        clock: Clock,
    ) -> Result<JunitRuns, JunitError> {
        let history = match path {
            Some(p) => History::open(p)?,
            None => History::in_memory()?,
        };
        let mut current = BTreeMap::new();
        for key in history.streams()? {
            let a = history.analyse(&key)?;
            current.insert(key.clone(), series(&key, &a));
        }
        Ok(JunitRuns {
            history,
            inner: Mutex::new(Inner {
                current,
                last_ts: i64::MIN,
                last_reappend: i64::MIN,
            }),
            sink,
            clock,
            reappend_ms: (reappend_every.as_millis() as i64).max(1),
        })
    }

    /// The system clock.
    pub fn system_clock() -> Clock {
        Box::new(sextant_model::time::now_ms)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a parsed report as the newest run of `key` at `commit` (or, with the `run_key`
    /// of the newest run, adds it to that run) and updates the series. The summary counts
    /// the whole run.
    pub fn upload(
        &self,
        key: StreamKey,
        run_key: &str,
        commit: &str,
        report: &Report,
    ) -> Result<UploadSummary, JunitError> {
        let (suites, rows) = history::rows(report);
        let mut inner = self.lock();
        let now = (self.clock)();
        let run_id = self
            .history
            .insert(&key, run_key, commit, now, &suites, &rows)?;
        let a = self.history.analyse(&key)?;
        let new = series(&key, &a);
        let t = next_ts(&mut inner, now);
        let mut batch = WriteBatch::default();
        if let Some(old) = inner.current.get(&key) {
            stale(&mut batch, old.keys().filter(|l| !new.contains_key(*l)), t);
        }
        append(&mut batch, &new, t);
        inner.current.insert(key.clone(), new);
        // Written under the lock, so samples reach storage in timestamp order.
        let stored = self.write(batch);
        drop(inner);
        stored?;
        let run = a.latest.as_ref();
        let rows = run.map(|r| r.cases.as_slice()).unwrap_or_default();
        let count = |o: Outcome| rows.iter().filter(|c| c.outcome == o).count();
        let fmt = |suite: &str, class: &str, name: &str| {
            if class.is_empty() {
                format!("{suite}: {name}")
            } else {
                format!("{suite}: {class}::{name}")
            }
        };
        Ok(UploadSummary {
            job: key.job.clone(),
            run_id,
            suites: run.map_or(suites.len(), |r| r.suites.len()),
            tests: rows.len(),
            passed: count(Outcome::Passed),
            failed: count(Outcome::Failed),
            errored: count(Outcome::Errored),
            skipped: count(Outcome::Skipped),
            new_failures: a
                .new_failures
                .iter()
                .map(|t| fmt(&t.suite, &t.classname, &t.name))
                .collect(),
            flaky: a
                .flaky
                .iter()
                .map(|f| fmt(&f.suite, &f.classname, &f.test))
                .collect(),
        })
    }

    /// Re-appends every stream's current series once per re-append interval. Call it about
    /// every second.
    pub fn tick(&self) {
        let mut inner = self.lock();
        let now = (self.clock)();
        if now.saturating_sub(inner.last_reappend) < self.reappend_ms {
            return;
        }
        inner.last_reappend = now;
        let t = next_ts(&mut inner, now);
        let mut batch = WriteBatch::default();
        for set in inner.current.values() {
            append(&mut batch, set, t);
        }
        // Logged by `write`; the next tick writes the values again.
        let _ = self.write(batch);
        drop(inner);
    }

    fn streams_of(&self, job: Option<&str>) -> Result<Vec<StreamKey>, JunitError> {
        Ok(self
            .history
            .streams()?
            .into_iter()
            .filter(|k| job.is_none_or(|j| k.job == j))
            .collect())
    }

    /// Flaky tests of every stream (of `job`, if given).
    pub fn flaky(&self, job: Option<&str>) -> Result<Vec<(StreamKey, Flaky)>, JunitError> {
        let mut out = Vec::new();
        for key in self.streams_of(job)? {
            let a = self.history.analyse(&key)?;
            out.extend(a.flaky.into_iter().map(|f| (key.clone(), f)));
        }
        Ok(out)
    }

    /// The `limit` slowest tests of each stream's latest run.
    pub fn slowest(
        &self,
        job: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(StreamKey, Slow)>, JunitError> {
        let mut out = Vec::new();
        for key in self.streams_of(job)? {
            if let Some(run) = self.history.recent(&key, 1)?.first() {
                out.extend(
                    history::slowest(run, limit)
                        .into_iter()
                        .map(|s| (key.clone(), s)),
                );
            }
        }
        out.sort_by(|a, b| b.1.duration_seconds.total_cmp(&a.1.duration_seconds));
        out.truncate(limit);
        Ok(out)
    }

    /// Failing tests of each stream's latest run.
    pub fn failures(&self, job: Option<&str>) -> Result<Vec<(StreamKey, Failure)>, JunitError> {
        let mut out = Vec::new();
        for key in self.streams_of(job)? {
            let runs = self.history.recent(&key, history::KEEP_RUNS)?;
            let a = history::analyse_runs(&runs);
            out.extend(
                history::failures(&runs, &a.new_failures)
                    .into_iter()
                    .map(|f| (key.clone(), f)),
            );
        }
        Ok(out)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), JunitError> {
        if batch.series.is_empty() {
            return Ok(());
        }
        match self.sink.store(batch) {
            Ok(s) => {
                if let Some(p) = s.first_problem {
                    tracing::warn!(problems = s.problems, first = %p, "storage refused some JUnit samples");
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "storing JUnit samples failed");
                Err(JunitError::Storage(format!("storing test series: {e}")))
            }
        }
    }
}

fn next_ts(inner: &mut Inner, now: i64) -> i64 {
    let t = now.max(inner.last_ts.saturating_add(1));
    inner.last_ts = t;
    t
}

fn stale<'a>(batch: &mut WriteBatch, series: impl Iterator<Item = &'a Labels>, t: i64) {
    for l in series {
        batch.series.push(SeriesSamples {
            labels: l.clone(),
            samples: vec![Sample::new(t, STALE_NAN)],
            histograms: Vec::new(),
            exemplars: Vec::new(),
        });
    }
}

/// (name, type, help) of every family this module writes.
const FAMILIES: &[(&str, MetricType, &str)] = &[
    (
        "sextant_test_cases",
        MetricType::Gauge,
        "Test cases of the latest JUnit run, by suite and result.",
    ),
    (
        "sextant_test_category_cases",
        MetricType::Gauge,
        "Test cases of the latest JUnit run, by category and result.",
    ),
    (
        "sextant_test_suite_duration_seconds",
        MetricType::Gauge,
        "Duration of each suite in the latest JUnit run.",
    ),
    (
        "sextant_test_case_duration_seconds",
        MetricType::Gauge,
        "Duration of the slowest tests of each suite in the latest JUnit run.",
    ),
    (
        "sextant_test_case_durations_omitted",
        MetricType::Gauge,
        "Tests of a suite whose duration is not exported as a series (only the slowest are).",
    ),
    (
        "sextant_test_new_failures",
        MetricType::Gauge,
        "Tests failing in the latest run that passed in the previous one, by suite.",
    ),
    (
        "sextant_test_new_failure",
        MetricType::Gauge,
        "1 for each test failing in the latest run that passed in the previous one.",
    ),
    (
        "sextant_test_flaky_tests",
        MetricType::Gauge,
        "Flaky tests in the recent runs, by suite.",
    ),
    (
        "sextant_test_flaky",
        MetricType::Gauge,
        "1 for each flaky test in the recent runs.",
    ),
    (
        "sextant_test_last_run_timestamp_seconds",
        MetricType::Gauge,
        "Time of the latest JUnit upload.",
    ),
    (
        "sextant_test_runs_total",
        MetricType::Counter,
        "JUnit runs uploaded.",
    ),
];

fn append(batch: &mut WriteBatch, set: &SeriesSet, t: i64) {
    if set.is_empty() {
        return;
    }
    for (name, kind, help) in FAMILIES {
        batch.metadata.push(Metadata {
            metric_family: (*name).to_string(),
            kind: *kind,
            help: (*help).to_string(),
            unit: String::new(),
        });
    }
    for (labels, v) in set {
        batch.series.push(SeriesSamples {
            labels: labels.clone(),
            samples: vec![Sample::new(t, *v)],
            histograms: Vec::new(),
            exemplars: Vec::new(),
        });
    }
}

/// The series of a stream from its analysis.
pub fn series(key: &StreamKey, a: &Analysis) -> SeriesSet {
    let mut out = SeriesSet::new();
    let Some(run) = &a.latest else {
        return out;
    };
    let base = |name: &str, extra: &[(&str, &str)]| -> Labels {
        let mut pairs: Vec<(&str, &str)> = vec![("__name__", name), ("job", key.job.as_str())];
        pairs.extend(key.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        pairs.extend_from_slice(extra);
        Labels::from_pairs(pairs)
    };
    // Suites: counts per result, durations, slowest tests.
    let mut suites: BTreeSet<&str> = run.suites.keys().map(String::as_str).collect();
    suites.extend(run.cases.iter().map(|c| c.suite.as_str()));
    for &suite in &suites {
        let cases: Vec<&history::CaseRow> = run.cases.iter().filter(|c| c.suite == suite).collect();
        for o in Outcome::ALL {
            let n = cases.iter().filter(|c| c.outcome == o).count();
            out.insert(
                base(
                    "sextant_test_cases",
                    &[("suite", suite), ("result", o.as_str())],
                ),
                n as f64,
            );
        }
        let d = run.suites.get(suite).copied().unwrap_or(0.0);
        out.insert(
            base("sextant_test_suite_duration_seconds", &[("suite", suite)]),
            d,
        );
        let mut by_time = cases.clone();
        by_time.sort_by(|a, b| b.duration.total_cmp(&a.duration));
        for c in by_time.iter().take(SLOWEST_PER_SUITE) {
            out.insert(
                base(
                    "sextant_test_case_duration_seconds",
                    &[
                        ("suite", suite),
                        ("classname", c.classname.as_str()),
                        ("test", c.name.as_str()),
                    ],
                ),
                c.duration,
            );
        }
        out.insert(
            base("sextant_test_case_durations_omitted", &[("suite", suite)]),
            by_time.len().saturating_sub(SLOWEST_PER_SUITE) as f64,
        );
        let new = a.new_failures.iter().filter(|t| t.suite == suite).count();
        out.insert(
            base("sextant_test_new_failures", &[("suite", suite)]),
            new as f64,
        );
        let flaky = a.flaky.iter().filter(|f| f.suite == suite).count();
        out.insert(
            base("sextant_test_flaky_tests", &[("suite", suite)]),
            flaky as f64,
        );
    }
    // Categories.
    let mut cats: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for c in &run.cases {
        let i = Outcome::ALL
            .iter()
            .position(|o| *o == c.outcome)
            .unwrap_or(0);
        cats.entry(c.category.as_str()).or_default()[i] += 1;
    }
    for (cat, counts) in cats {
        for (o, n) in Outcome::ALL.iter().zip(counts) {
            out.insert(
                base(
                    "sextant_test_category_cases",
                    &[("category", cat), ("result", o.as_str())],
                ),
                n as f64,
            );
        }
    }
    // Flaky tests of suites no longer in the latest run still count.
    for f in &a.flaky {
        if !suites.contains(f.suite.as_str()) {
            let l = base("sextant_test_flaky_tests", &[("suite", f.suite.as_str())]);
            *out.entry(l).or_insert(0.0) += 1.0;
        }
    }
    for t in a.new_failures.iter().take(MAX_TEST_SERIES) {
        out.insert(
            base(
                "sextant_test_new_failure",
                &[
                    ("suite", t.suite.as_str()),
                    ("classname", t.classname.as_str()),
                    ("test", t.name.as_str()),
                ],
            ),
            1.0,
        );
    }
    for f in a.flaky.iter().take(MAX_TEST_SERIES) {
        out.insert(
            base(
                "sextant_test_flaky",
                &[
                    ("suite", f.suite.as_str()),
                    ("classname", f.classname.as_str()),
                    ("test", f.test.as_str()),
                ],
            ),
            1.0,
        );
    }
    out.insert(
        base("sextant_test_last_run_timestamp_seconds", &[]),
        run.ts as f64 / 1000.0,
    );
    out.insert(base("sextant_test_runs_total", &[]), a.runs_total as f64);
    out
}
