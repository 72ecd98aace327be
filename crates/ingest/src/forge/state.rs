//! What the forge poller knows between polls, and the series built from it. Issues and pull
//! requests are kept by number (their current state gives the gauges); merged/closed pull
//! requests and finished CI runs are counted once each, remembered by number or run id (all
//! bounded), so re-reading a page (a 304, an overlapping `since`) never counts twice. The
//! state is saved to the data directory after each poll; without a saved file, counters
//! continue from the newest stored sample ([`Sink::last_sample`]) and what the first poll sees
//! is taken as already counted, so totals stay monotonic across restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sextant_model::{Labels, Metadata, MetricType, Sample};

use super::api::{Issue, Pull, Run};
use crate::remote_write::{SeriesSamples, WriteBatch};
use crate::Sink;

/// Issues or pull requests remembered per repository (the oldest numbers go first).
const MAX_ITEMS: usize = 100_000;
/// Finished runs remembered as counted per repository (the oldest ids go first).
const MAX_COUNTED_RUNS: usize = 20_000;
/// Unfinished runs followed per repository.
const MAX_PENDING_RUNS: usize = 5_000;
/// Distinct issue labels given their own series per repository.
const MAX_ISSUE_LABELS: usize = 200;
/// Longest label value taken from the API (issue labels, workflow names).
const MAX_VALUE_LEN: usize = 128;

/// Buckets of `sextant_forge_pull_request_time_to_merge_seconds`: 10m to 30d.
pub const TTM_BUCKETS: [f64; 11] = [
    600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0, 604800.0, 1209600.0,
    2592000.0,
];
/// Buckets of `sextant_forge_ci_run_duration_seconds`: 10s to 2h.
pub const RUN_BUCKETS: [f64; 11] = [
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 5400.0, 7200.0,
];

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct IssueRec {
    open: bool,
    labels: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct PullRec {
    open: bool,
    #[serde(default)]
    created_ms: i64,
    merged: bool,
    /// Counted in `..._closed_total` (closed without merge; once per pull request).
    closed_counted: bool,
}

/// One repository's remembered state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RepoState {
    issues: BTreeMap<u64, IssueRec>,
    /// Newest `updated_at` read from the issue list, as written by the API (next `since`).
    pub issues_since: Option<String>,
    issues_since_ms: Option<i64>,
    pulls: BTreeMap<u64, PullRec>,
    /// Newest `updated_at` of a pull request read; paging stops below it.
    pub pulls_since_ms: Option<i64>,
    runs_counted: BTreeSet<(u64, u32)>,
    /// Unfinished runs: (id, attempt, created ms).
    runs_pending: Vec<(u64, u32, i64)>,
    runs_newest_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    /// Sections whose first read after a restart without saved state only sets the baseline.
    #[serde(skip)]
    baseline_pulls: bool,
    #[serde(skip)]
    baseline_runs: bool,
}

impl RepoState {
    /// Runs created before this were finished when last seen; paging stops below it.
    pub fn runs_low_water(&self) -> Option<i64> {
        self.runs_pending
            .iter()
            .map(|r| r.2)
            .min()
            .or(self.runs_newest_ms)
    }
}

/// One forge's state: its repositories and its counters.
#[derive(Default)]
pub struct ForgeState {
    pub repos: BTreeMap<String, RepoState>,
    /// Counter values by full label set (including `__name__`).
    counters: BTreeMap<Vec<(String, String)>, f64>,
    /// No saved state was found: new counters start from storage's newest sample.
    fresh: bool,
    /// The configured `labels`, added to every series written (not part of counter keys).
    pub extra: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    repos: BTreeMap<String, RepoState>,
    counters: Vec<(Vec<(String, String)>, f64)>,
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_VALUE_LEN {
        return s.to_string();
    }
    let mut end = MAX_VALUE_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn fmt_le(b: f64) -> String {
    if b.fract() == 0.0 && b.abs() < 1e15 {
        format!("{}", b as i64)
    } else {
        format!("{b}")
    }
}

impl ForgeState {
    /// Reads the saved state; a missing or unreadable file gives a fresh state.
    pub fn load(path: Option<&Path>) -> ForgeState {
        let Some(path) = path else {
            return ForgeState {
                fresh: true,
                ..ForgeState::default()
            };
        };
        match std::fs::read(path) {
            Ok(b) => match serde_json::from_slice::<Saved>(&b) {
                Ok(s) => ForgeState {
                    repos: s.repos,
                    counters: s.counters.into_iter().collect(),
                    fresh: false,
                    extra: Vec::new(),
                },
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "forge state unreadable; starting over");
                    ForgeState {
                        fresh: true,
                        ..ForgeState::default()
                    }
                }
            },
            Err(_) => ForgeState {
                fresh: true,
                ..ForgeState::default()
            },
        }
    }

    /// Forgets repositories no longer configured.
    pub fn retain_repos(&mut self, repos: &[String]) {
        self.repos.retain(|r, _| repos.contains(r));
        self.counters.retain(|k, _| {
            k.iter()
                .find(|(n, _)| n == "repo")
                .is_none_or(|(_, r)| repos.contains(r))
        });
    }

    /// Writes the state (to a temporary file, then renamed).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let saved = Saved {
            repos: self.repos.clone(),
            counters: self.counters.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        };
        let body = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, path)
    }

    /// The repository's state, created on first use. In a fresh state, a repository that
    /// storage already has a poll of starts in baseline mode.
    pub fn repo(
        &mut self,
        sink: &dyn Sink,
        base: &[(String, String)],
        repo: &str,
    ) -> &mut RepoState {
        if !self.repos.contains_key(repo) {
            let mut st = RepoState::default();
            if self.fresh {
                let l = with_extra(
                    labels(
                        "sextant_forge_last_poll_success_timestamp_seconds",
                        base,
                        &[("repo", repo)],
                    ),
                    &self.extra,
                );
                if sink.last_sample(&l).is_some() {
                    st.baseline_pulls = true;
                    st.baseline_runs = true;
                }
            }
            self.repos.insert(repo.to_string(), st);
            for name in [
                "sextant_forge_pull_requests_opened_total",
                "sextant_forge_pull_requests_merged_total",
                "sextant_forge_pull_requests_closed_total",
                "sextant_forge_poll_errors_total",
            ] {
                self.add(sink, name, base, &[("repo", repo)], 0.0);
            }
        }
        self.repos.get_mut(repo).expect("inserted above")
    }

    /// Adds `delta` to a counter; a new counter in a fresh state starts from storage.
    pub fn add(
        &mut self,
        sink: &dyn Sink,
        name: &str,
        base: &[(String, String)],
        extra: &[(&str, &str)],
        delta: f64,
    ) {
        let key = key(name, base, extra);
        let fresh = self.fresh;
        let extra = &self.extra;
        let v = self.counters.entry(key).or_insert_with_key(|k| {
            if !fresh {
                return 0.0;
            }
            let l = Labels::from_pairs(
                k.iter()
                    .chain(extra.iter())
                    .map(|(a, b)| (a.as_str(), b.as_str())),
            );
            match sink.last_sample(&l) {
                Some((_, Ok(v))) if v.is_finite() && v >= 0.0 => v,
                _ => 0.0,
            }
        });
        *v += delta;
    }

    /// Observes `v` in the classic histogram `(name, buckets)` (counted only with `count`).
    fn observe(
        &mut self,
        sink: &dyn Sink,
        (name, buckets): (&str, &[f64]),
        base: &[(String, String)],
        extra: &[(&str, &str)],
        v: f64,
        count: bool,
    ) {
        let d = if count { 1.0 } else { 0.0 };
        let bucket = format!("{name}_bucket");
        for b in buckets {
            let le = fmt_le(*b);
            let mut e = extra.to_vec();
            e.push(("le", &le));
            self.add(sink, &bucket, base, &e, if v <= *b { d } else { 0.0 });
        }
        let mut e = extra.to_vec();
        e.push(("le", "+Inf"));
        self.add(sink, &bucket, base, &e, d);
        self.add(
            sink,
            &format!("{name}_sum"),
            base,
            extra,
            if count { v } else { 0.0 },
        );
        self.add(sink, &format!("{name}_count"), base, extra, d);
    }

    /// Takes a page set of issues into the repository's state; `advance` moves the `since`
    /// cursor to the newest update read (not when a list in no useful order was cut short).
    pub fn apply_issues(&mut self, repo: &str, issues: &[Issue], advance: bool) {
        let Some(st) = self.repos.get_mut(repo) else {
            return;
        };
        for i in issues {
            st.issues.insert(
                i.number,
                IssueRec {
                    open: i.open,
                    labels: i.labels.iter().map(|l| cut(l)).collect(),
                },
            );
            if advance && st.issues_since_ms.is_none_or(|s| i.updated_ms > s) {
                st.issues_since_ms = Some(i.updated_ms);
                st.issues_since = Some(i.updated_at.clone());
            }
        }
        while st.issues.len() > MAX_ITEMS {
            st.issues.pop_first();
        }
    }

    /// Takes pull requests in: counts each one opened, merged (with its time to merge) and
    /// closed without merge once. `complete`: the list was read down to what was seen before
    /// (only then does the cursor move, so a cut-short read leaves no gap).
    pub fn apply_pulls(
        &mut self,
        sink: &dyn Sink,
        base: &[(String, String)],
        repo: &str,
        pulls: &[Pull],
        complete: bool,
    ) {
        let Some(st) = self.repos.get_mut(repo) else {
            return;
        };
        let count = !st.baseline_pulls;
        st.baseline_pulls = false;
        let mut opened = 0.0;
        let mut merged = Vec::new();
        let mut closed = 0.0;
        for p in pulls {
            let rec = st.pulls.entry(p.number).or_insert_with(|| {
                opened += 1.0;
                PullRec::default()
            });
            rec.open = p.open;
            rec.created_ms = p.created_ms;
            if let Some(m) = p.merged_ms {
                if !rec.merged {
                    rec.merged = true;
                    merged.push(((m - p.created_ms).max(0) as f64) / 1000.0);
                }
            } else if !p.open && !rec.closed_counted {
                rec.closed_counted = true;
                closed += 1.0;
            }
            if complete && st.pulls_since_ms.is_none_or(|s| p.updated_ms > s) {
                st.pulls_since_ms = Some(p.updated_ms);
            }
        }
        while st.pulls.len() > MAX_ITEMS {
            st.pulls.pop_first();
        }
        let c = |v: f64| if count { v } else { 0.0 };
        let r = [("repo", repo)];
        self.add(
            sink,
            "sextant_forge_pull_requests_opened_total",
            base,
            &r,
            c(opened),
        );
        self.add(
            sink,
            "sextant_forge_pull_requests_closed_total",
            base,
            &r,
            c(closed),
        );
        self.add(
            sink,
            "sextant_forge_pull_requests_merged_total",
            base,
            &r,
            c(merged.len() as f64),
        );
        for secs in merged {
            self.observe(
                sink,
                (
                    "sextant_forge_pull_request_time_to_merge_seconds",
                    &TTM_BUCKETS,
                ),
                base,
                &r,
                secs,
                count,
            );
        }
    }

    /// Takes CI runs in: each finished run (id and attempt) is counted once. `complete` as for
    /// [`ForgeState::apply_pulls`].
    pub fn apply_runs(
        &mut self,
        sink: &dyn Sink,
        base: &[(String, String)],
        repo: &str,
        runs: &[Run],
        complete: bool,
    ) {
        let Some(st) = self.repos.get_mut(repo) else {
            return;
        };
        let count = !st.baseline_runs;
        st.baseline_runs = false;
        let mut finished = Vec::new();
        for r in runs {
            let k = (r.id, r.attempt);
            st.runs_pending.retain(|p| (p.0, p.1) != k);
            match &r.conclusion {
                Some(c) => {
                    if st.runs_counted.insert(k) {
                        finished.push((cut(&r.workflow), cut(c), r.duration_s));
                    }
                }
                None => {
                    if !st.runs_counted.contains(&k) {
                        st.runs_pending.push((r.id, r.attempt, r.created_ms));
                    }
                }
            }
            if complete && st.runs_newest_ms.is_none_or(|s| r.created_ms > s) {
                st.runs_newest_ms = Some(r.created_ms);
            }
        }
        while st.runs_counted.len() > MAX_COUNTED_RUNS {
            st.runs_counted.pop_first();
        }
        if st.runs_pending.len() > MAX_PENDING_RUNS {
            st.runs_pending.sort_by_key(|p| std::cmp::Reverse(p.2));
            st.runs_pending.truncate(MAX_PENDING_RUNS);
        }
        for (wf, concl, dur) in finished {
            let d = if count { 1.0 } else { 0.0 };
            self.add(
                sink,
                "sextant_forge_ci_runs_total",
                base,
                &[("repo", repo), ("workflow", &wf), ("conclusion", &concl)],
                d,
            );
            if let Some(secs) = dur {
                self.observe(
                    sink,
                    ("sextant_forge_ci_run_duration_seconds", &RUN_BUCKETS),
                    base,
                    &[("repo", repo), ("workflow", &wf)],
                    secs,
                    count,
                );
            }
        }
    }

    /// The series of this forge at `now_ms`: current gauges and all counters.
    pub fn batch(
        &self,
        base: &[(String, String)],
        now_ms: i64,
        rate_remaining: Option<f64>,
    ) -> WriteBatch {
        let mut series = Vec::new();
        let extra = &self.extra;
        let mut push = |l: Labels, v: f64| {
            series.push(SeriesSamples {
                labels: with_extra(l, extra),
                samples: vec![Sample { t: now_ms, v }],
                histograms: Vec::new(),
                exemplars: Vec::new(),
            })
        };
        for (repo, st) in &self.repos {
            let r = repo.as_str();
            if st.last_success_ms.is_none() {
                continue;
            }
            let mut by_state = [0u64; 2];
            let mut by_label: BTreeMap<(&str, bool), u64> = BTreeMap::new();
            for i in st.issues.values() {
                by_state[i.open as usize] += 1;
                for l in &i.labels {
                    *by_label.entry((l.as_str(), i.open)).or_default() += 1;
                }
            }
            for (idx, state) in ["closed", "open"].iter().enumerate() {
                push(
                    labels(
                        "sextant_forge_issues",
                        base,
                        &[("repo", r), ("state", state)],
                    ),
                    by_state[idx] as f64,
                );
            }
            let names: BTreeSet<&str> = by_label.keys().map(|k| k.0).collect();
            for name in names.into_iter().take(MAX_ISSUE_LABELS) {
                for (open, state) in [(false, "closed"), (true, "open")] {
                    let n = by_label.get(&(name, open)).copied().unwrap_or(0);
                    push(
                        labels(
                            "sextant_forge_issues",
                            base,
                            &[("repo", r), ("state", state), ("label", name)],
                        ),
                        n as f64,
                    );
                }
            }
            let mut pr = [0u64; 3];
            for p in st.pulls.values() {
                pr[if p.merged {
                    2
                } else if p.open {
                    1
                } else {
                    0
                }] += 1;
            }
            if let Some(oldest) = st
                .pulls
                .values()
                .filter(|p| p.open && !p.merged)
                .map(|p| p.created_ms)
                .min()
            {
                push(
                    labels(
                        "sextant_forge_oldest_open_pull_request_created_timestamp_seconds",
                        base,
                        &[("repo", r)],
                    ),
                    oldest as f64 / 1000.0,
                );
            }
            for (idx, state) in ["closed", "open", "merged"].iter().enumerate() {
                push(
                    labels(
                        "sextant_forge_pull_requests",
                        base,
                        &[("repo", r), ("state", state)],
                    ),
                    pr[idx] as f64,
                );
            }
            push(
                labels("sextant_forge_ci_runs_in_progress", base, &[("repo", r)]),
                st.runs_pending.len() as f64,
            );
            if let Some(t) = st.last_success_ms {
                push(
                    labels(
                        "sextant_forge_last_poll_success_timestamp_seconds",
                        base,
                        &[("repo", r)],
                    ),
                    t as f64 / 1000.0,
                );
            }
        }
        if let Some(v) = rate_remaining {
            push(labels("sextant_forge_rate_limit_remaining", base, &[]), v);
        }
        for (k, v) in &self.counters {
            push(
                Labels::from_pairs(k.iter().map(|(a, b)| (a.as_str(), b.as_str()))),
                *v,
            );
        }
        WriteBatch {
            series,
            metadata: metadata(),
            rejected: Vec::new(),
        }
    }
}

fn key(name: &str, base: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut k: Vec<(String, String)> = Vec::with_capacity(base.len() + extra.len() + 1);
    k.push(("__name__".into(), name.into()));
    k.extend(base.iter().cloned());
    k.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    k.sort();
    k.dedup_by(|a, b| a.0 == b.0);
    k
}

/// `l` with the configured labels added (the series' own labels win).
fn with_extra(l: Labels, extra: &[(String, String)]) -> Labels {
    if extra.is_empty() {
        return l;
    }
    Labels::from_pairs(
        extra
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .chain(l.iter().map(|x| (x.name.as_str(), x.value.as_str()))),
    )
}

/// Labels of a series: name, the forge's base labels, then `extra`.
pub fn labels(name: &str, base: &[(String, String)], extra: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(
        std::iter::once(("__name__", name))
            .chain(base.iter().map(|(a, b)| (a.as_str(), b.as_str())))
            .chain(extra.iter().copied()),
    )
}

fn metadata() -> Vec<Metadata> {
    use MetricType::*;
    let m = |n: &str, kind: MetricType, help: &str, unit: &str| Metadata {
        metric_family: n.into(),
        kind,
        help: help.into(),
        unit: unit.into(),
    };
    vec![
        m("sextant_forge_issues", Gauge, "Issues of the repository by state; with a label label, the issues carrying that label.", ""),
        m("sextant_forge_pull_requests", Gauge, "Pull requests of the repository by state (open, closed without merge, merged).", ""),
        m("sextant_forge_oldest_open_pull_request_created_timestamp_seconds", Gauge, "When the oldest open pull request of the repository was opened.", "seconds"),
        m("sextant_forge_pull_requests_opened_total", Counter, "Pull requests seen opened.", ""),
        m("sextant_forge_pull_requests_merged_total", Counter, "Pull requests seen merged.", ""),
        m("sextant_forge_pull_requests_closed_total", Counter, "Pull requests seen closed without merge.", ""),
        m("sextant_forge_pull_request_time_to_merge_seconds", Histogram, "Time from opening to merge of merged pull requests.", "seconds"),
        m("sextant_forge_ci_runs_total", Counter, "Finished CI runs by workflow and conclusion.", ""),
        m("sextant_forge_ci_run_duration_seconds", Histogram, "Run time of finished CI runs (started to last update).", "seconds"),
        m("sextant_forge_ci_runs_in_progress", Gauge, "CI runs queued or running.", ""),
        m("sextant_forge_api_requests_total", Counter, "Forge API requests by HTTP status code.", ""),
        m("sextant_forge_rate_limit_remaining", Gauge, "Requests left in the forge's rate-limit window (X-RateLimit-Remaining).", ""),
        m("sextant_forge_last_poll_success_timestamp_seconds", Gauge, "When the repository was last polled completely.", "seconds"),
        m("sextant_forge_poll_errors_total", Counter, "Polls of the repository that failed.", ""),
    ]
}
