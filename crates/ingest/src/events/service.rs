//! Agent events as a running service: validated [`Event`]s become counters and a classic
//! histogram kept in memory and written through a [`Sink`].
//!
//! Every touched series is written at the time the server receives the request (not at the
//! event's own timestamp: counters are cumulative, and a late or replayed event must not
//! rewrite history). [`AgentEvents::tick`] re-writes all current values at an interval so they
//! stay visible to instant queries between events (the 5 minute lookback), the way push
//! groups are re-appended. A series no event touched for the idle time (default 24 h) is no
//! longer re-written and is forgotten; its counter continues from storage if it comes back.
//!
//! Counters stay monotonic across restarts: the state is saved to a file, and when a series
//! is first touched (or restored from the file) its value is raised to the newest stored
//! sample ([`Sink::last_sample`]), so a crash between the WAL write and the file save cannot
//! move a counter backwards. Events with an `event_id` are counted once per
//! `(session_id, event_id)`; the most recent ids are remembered (and saved) up to a bound.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sextant_model::{Labels, Metadata, MetricType, Sample, METRIC_NAME};

use super::parse::Event;
use crate::remote_write::{SeriesSamples, WriteBatch};
use crate::Sink;

/// Current time in ms since the epoch (injectable for tests).
pub type Clock = Box<dyn Fn() -> i64 + Send + Sync>;

/// Upper bounds of `sextant_agent_session_duration_seconds`: 1 s to 8 h.
pub const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
    28800.0,
];

/// The metric families written, with their type and help.
pub const FAMILIES: &[(&str, MetricType, &str)] = &[
    (
        "sextant_agent_sessions_total",
        MetricType::Counter,
        "Agent runs or sessions reported, by outcome.",
    ),
    (
        "sextant_agent_self_eval_total",
        MetricType::Counter,
        "Self-evaluations of agent runs, by result (pass or fail).",
    ),
    (
        "sextant_agent_tokens_total",
        MetricType::Counter,
        "LLM tokens used by agent runs, by direction (input, output, cache_read, cache_write).",
    ),
    (
        "sextant_agent_session_duration_seconds",
        MetricType::Histogram,
        "Duration of agent runs or sessions.",
    ),
    (
        "sextant_agent_tool_calls_total",
        MetricType::Counter,
        "Tool calls made by agent runs, by result (success or error).",
    ),
    (
        "sextant_agent_tool_call_duration_seconds_total",
        MetricType::Counter,
        "Time spent in tool calls by agent runs.",
    ),
    (
        "sextant_agent_revisions_total",
        MetricType::Counter,
        "Revisions agent runs made of their own work.",
    ),
    (
        "sextant_agent_escalations_total",
        MetricType::Counter,
        "Advisor or escalation calls made by agent runs, by kind.",
    ),
    (
        "sextant_agent_last_event_timestamp_seconds",
        MetricType::Gauge,
        "Timestamp of the newest event of an agent (its own timestamp, or the receive time).",
    ),
];

/// Why events were not taken.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Accepting the request would exceed the series limit (the client's problem, 400).
    #[error("{0}")]
    Limit(String),
    /// Storage refused the write; nothing of the request was counted, it may be retried.
    #[error("storage unavailable: {0}")]
    Storage(String),
}

/// What one request did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Events counted.
    pub accepted: usize,
    /// Events skipped because their `(session_id, event_id)` was seen before.
    pub duplicates: usize,
    /// Series written.
    pub series: usize,
}

/// Settings of the service.
#[derive(Clone, Debug)]
pub struct EventsConfig {
    /// Where the state is saved (None: memory only).
    pub file: Option<PathBuf>,
    /// How often current values are re-written.
    pub reappend_every: Duration,
    /// A series untouched this long stops being re-written.
    pub idle: Duration,
    /// Most series kept.
    pub max_series: usize,
    /// Most `(session_id, event_id)` pairs remembered for dedup.
    pub max_ids: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            file: None,
            reappend_every: Duration::from_secs(30),
            idle: Duration::from_secs(24 * 3600),
            max_series: 50_000,
            max_ids: 100_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    value: f64,
    updated_ms: i64,
}

type IdKey = (String, String);

#[derive(Default)]
struct State {
    series: HashMap<Labels, Entry>,
    seen: HashSet<IdKey>,
    seen_order: VecDeque<IdKey>,
    last_ts: i64,
    last_reappend: i64,
    dirty: bool,
}

/// The saved form of the state.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    series: Vec<SavedSeries>,
    seen: Vec<IdKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedSeries {
    labels: BTreeMap<String, String>,
    value: f64,
    updated_ms: i64,
}

/// How an event changes a series.
#[derive(Clone, Copy)]
enum Change {
    Add(f64),
    Max(f64),
}

/// Agent events turned into series and written through a [`Sink`].
pub struct AgentEvents {
    state: Mutex<State>,
    sink: Arc<dyn Sink>,
    clock: Clock,
    cfg: EventsConfig,
    persisting: Mutex<()>,
    /// Events counted, skipped as duplicates, and refused (for self-monitoring).
    totals: [AtomicU64; 3],
}

/// Totals of events by what happened to them, for self-monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventTotals {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

impl AgentEvents {
    /// Opens the service, restoring the state saved in `cfg.file` (an unreadable file is moved
    /// aside to `<file>.corrupt`, logged, and the service starts empty; counters then continue
    /// from storage as series are touched).
    pub fn open(sink: Arc<dyn Sink>, cfg: EventsConfig, clock: Clock) -> Self {
        let mut state = State {
            last_ts: i64::MIN,
            last_reappend: i64::MIN,
            ..State::default()
        };
        if let Some(path) = &cfg.file {
            match std::fs::read(path) {
                Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                    Ok(saved) if saved.version == 1 => {
                        for s in saved.series {
                            let labels = Labels::from_pairs(s.labels);
                            let value = match stored_value(sink.as_ref(), &labels) {
                                Some(v) if v > s.value => v,
                                _ => s.value,
                            };
                            state.series.insert(
                                labels,
                                Entry {
                                    value,
                                    updated_ms: s.updated_ms,
                                },
                            );
                        }
                        for id in saved.seen.into_iter().take(cfg.max_ids) {
                            if state.seen.insert(id.clone()) {
                                state.seen_order.push_back(id);
                            }
                        }
                        tracing::info!(series = state.series.len(), file = %path.display(), "restored agent event counters");
                    }
                    Ok(saved) => {
                        tracing::error!(file = %path.display(), version = saved.version, "unknown agent events state version; starting empty")
                    }
                    Err(e) => {
                        let aside = path.with_extension("corrupt");
                        let _ = std::fs::rename(path, &aside);
                        tracing::error!(file = %path.display(), moved_to = %aside.display(), error = %e, "cannot read the agent events state; starting empty");
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot read the agent events state; starting empty")
                }
            }
        }
        AgentEvents {
            state: Mutex::new(state),
            sink,
            clock,
            cfg,
            persisting: Mutex::new(()),
            totals: Default::default(),
        }
    }

    /// The system clock.
    pub fn system_clock() -> Clock {
        Box::new(sextant_model::time::now_ms)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `events` (already validated) and writes every series they touch. All or
    /// nothing: on an error no event is counted or remembered.
    pub fn ingest(&self, events: &[Event]) -> Result<IngestOutcome, EventsError> {
        let mut st = self.lock();
        let now = (self.clock)();
        let mut out = IngestOutcome::default();
        let mut changes: BTreeMap<Labels, Change> = BTreeMap::new();
        let mut new_ids: Vec<IdKey> = Vec::new();
        let mut batch_ids: HashSet<IdKey> = HashSet::new();
        for ev in events {
            if let Some(eid) = &ev.event_id {
                let key = (ev.session_id.clone().unwrap_or_default(), eid.clone());
                if st.seen.contains(&key) || !batch_ids.insert(key.clone()) {
                    out.duplicates += 1;
                    continue;
                }
                new_ids.push(key);
            }
            out.accepted += 1;
            event_changes(ev, now, &mut changes);
        }
        let new_series = changes
            .keys()
            .filter(|l| !st.series.contains_key(*l))
            .count();
        if new_series > 0 && st.series.len() + new_series > self.cfg.max_series {
            self.note_rejected(events.len() as u64);
            return Err(EventsError::Limit(format!(
                "the events would create {new_series} new series, over the limit of {} agent event series (now {}); use fewer distinct label values",
                self.cfg.max_series,
                st.series.len()
            )));
        }
        let t = next_ts(&mut st, now);
        let mut updated: Vec<(Labels, f64)> = Vec::with_capacity(changes.len());
        for (labels, change) in changes {
            let base = match st.series.get(&labels) {
                Some(e) => Some(e.value),
                None => stored_value(self.sink.as_ref(), &labels),
            };
            let v = match (change, base) {
                (Change::Add(d), b) => b.unwrap_or(0.0) + d,
                (Change::Max(x), Some(b)) => b.max(x),
                (Change::Max(x), None) => x,
            };
            updated.push((labels, v));
        }
        let mut batch = WriteBatch::default();
        for (labels, v) in &updated {
            batch.series.push(series(labels.clone(), t, *v));
        }
        batch.metadata = metadata();
        out.series = updated.len();
        if !updated.is_empty() {
            self.write(batch)?;
        }
        for (labels, value) in updated {
            st.series.insert(
                labels,
                Entry {
                    value,
                    updated_ms: now,
                },
            );
        }
        for id in new_ids {
            if st.seen.insert(id.clone()) {
                st.seen_order.push_back(id);
            }
        }
        while st.seen_order.len() > self.cfg.max_ids {
            if let Some(old) = st.seen_order.pop_front() {
                st.seen.remove(&old);
            }
        }
        st.dirty = true;
        self.totals[0].fetch_add(out.accepted as u64, Ordering::Relaxed);
        self.totals[1].fetch_add(out.duplicates as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// Re-writes current values once per re-append interval (forgetting idle series) and saves
    /// the state when it changed. Call it about every second.
    pub fn tick(&self) {
        {
            let mut st = self.lock();
            let now = (self.clock)();
            if now.saturating_sub(st.last_reappend) >= self.reappend_ms() {
                st.last_reappend = now;
                let idle_before = now.saturating_sub(self.cfg.idle.as_millis() as i64);
                let before = st.series.len();
                st.series.retain(|_, e| e.updated_ms >= idle_before);
                if st.series.len() != before {
                    st.dirty = true;
                }
                if !st.series.is_empty() {
                    let t = next_ts(&mut st, now);
                    let mut batch = WriteBatch::default();
                    for (labels, e) in &st.series {
                        batch.series.push(series(labels.clone(), t, e.value));
                    }
                    // Logged in `write`; the next interval writes the values again.
                    let _ = self.write(batch);
                }
            }
        }
        let _ = self.flush();
    }

    fn reappend_ms(&self) -> i64 {
        (self.cfg.reappend_every.as_millis() as i64).max(1)
    }

    /// Counts `n` events refused before they reached [`ingest`](Self::ingest) (invalid body).
    pub fn note_rejected(&self, n: u64) {
        self.totals[2].fetch_add(n, Ordering::Relaxed);
    }

    /// Events accepted, skipped as duplicates and refused since start.
    pub fn totals(&self) -> EventTotals {
        EventTotals {
            accepted: self.totals[0].load(Ordering::Relaxed),
            duplicates: self.totals[1].load(Ordering::Relaxed),
            rejected: self.totals[2].load(Ordering::Relaxed),
        }
    }

    /// Number of series kept.
    pub fn series_count(&self) -> usize {
        self.lock().series.len()
    }

    fn write(&self, batch: WriteBatch) -> Result<(), EventsError> {
        match self.sink.store(batch) {
            Ok(s) => {
                if s.problems > 0 {
                    tracing::warn!(refused = s.problems, first = ?s.first_problem, "agent event samples refused by storage");
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "writing agent event series failed");
                Err(EventsError::Storage(e.to_string()))
            }
        }
    }

    /// Saves the state to the file if it changed (written to a temporary file, then renamed).
    pub fn flush(&self) -> std::io::Result<()> {
        let Some(path) = &self.cfg.file else {
            return Ok(());
        };
        let _order = self.persisting.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = {
            let mut st = self.lock();
            if !st.dirty {
                return Ok(());
            }
            st.dirty = false;
            let saved = Saved {
                version: 1,
                series: st
                    .series
                    .iter()
                    .map(|(l, e)| SavedSeries {
                        labels: l
                            .iter()
                            .map(|l| (l.name.to_string(), l.value.to_string()))
                            .collect(),
                        value: e.value,
                        updated_ms: e.updated_ms,
                    })
                    .collect(),
                seen: st.seen_order.iter().cloned().collect(),
            };
            serde_json::to_vec(&saved).map_err(std::io::Error::other)?
        };
        let tmp = path.with_extension("tmp");
        let res = std::fs::write(&tmp, &bytes).and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = &res {
            tracing::error!(file = %path.display(), error = %e, "saving the agent events state failed");
            self.lock().dirty = true;
        }
        res
    }
}

/// The newest stored float of a series, unless it is a staleness marker.
fn stored_value(sink: &dyn Sink, labels: &Labels) -> Option<f64> {
    match sink.last_sample(labels) {
        Some((_, Ok(v))) if !sextant_model::sample::is_stale_nan(v) && v.is_finite() => Some(v),
        _ => None,
    }
}

fn next_ts(st: &mut State, now: i64) -> i64 {
    let t = if st.last_ts == i64::MIN {
        now
    } else {
        now.max(st.last_ts + 1)
    };
    st.last_ts = t;
    t
}

fn series(labels: Labels, t: i64, v: f64) -> SeriesSamples {
    SeriesSamples {
        labels,
        samples: vec![Sample::new(t, v)],
        histograms: Vec::new(),
        exemplars: Vec::new(),
    }
}

fn metadata() -> Vec<Metadata> {
    FAMILIES
        .iter()
        .map(|(name, kind, help)| Metadata {
            metric_family: name.to_string(),
            kind: *kind,
            help: help.to_string(),
            unit: String::new(),
        })
        .collect()
}

fn add(changes: &mut BTreeMap<Labels, Change>, labels: Labels, d: f64) {
    match changes.get_mut(&labels) {
        Some(Change::Add(v)) => *v += d,
        Some(Change::Max(_)) => {}
        None => {
            changes.insert(labels, Change::Add(d));
        }
    }
}

fn set_max(changes: &mut BTreeMap<Labels, Change>, labels: Labels, x: f64) {
    match changes.get_mut(&labels) {
        Some(Change::Max(v)) => *v = v.max(x),
        Some(Change::Add(_)) => {}
        None => {
            changes.insert(labels, Change::Max(x));
        }
    }
}

/// The series changes of one event.
fn event_changes(ev: &Event, now_ms: i64, changes: &mut BTreeMap<Labels, Change>) {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    let labels = |name: &str, own: &[(&str, String)]| {
        let mut pairs: Vec<(String, String)> = ev.labels.clone();
        pairs.push((METRIC_NAME.to_string(), name.to_string()));
        pairs.extend(own.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Labels::from_pairs(pairs)
    };
    let agent = ev.agent.clone();
    let role = opt(&ev.role);
    let phase = opt(&ev.phase);
    let model = opt(&ev.model);
    let provider = opt(&ev.provider);
    add(
        changes,
        labels(
            "sextant_agent_sessions_total",
            &[
                ("agent", agent.clone()),
                ("role", role.clone()),
                ("phase", phase.clone()),
                ("model", model.clone()),
                ("outcome", ev.outcome.to_string()),
            ],
        ),
        1.0,
    );
    if let Some(pass) = ev.self_eval {
        let result = if pass { "pass" } else { "fail" };
        add(
            changes,
            labels(
                "sextant_agent_self_eval_total",
                &[
                    ("agent", agent.clone()),
                    ("role", role.clone()),
                    ("result", result.to_string()),
                ],
            ),
            1.0,
        );
    }
    for (direction, n) in ev.tokens.directions() {
        add(
            changes,
            labels(
                "sextant_agent_tokens_total",
                &[
                    ("agent", agent.clone()),
                    ("role", role.clone()),
                    ("phase", phase.clone()),
                    ("provider", provider.clone()),
                    ("model", model.clone()),
                    ("direction", direction.to_string()),
                ],
            ),
            n as f64,
        );
    }
    if let Some(d) = ev.duration_seconds {
        let base = [
            ("agent", agent.clone()),
            ("role", role.clone()),
            ("phase", phase.clone()),
        ];
        // Every bucket is written (0 for those below the duration), as a client library does.
        for b in DURATION_BUCKETS {
            let mut own = base.to_vec();
            own.push(("le", crate::push::format_go_float(*b)));
            add(
                changes,
                labels("sextant_agent_session_duration_seconds_bucket", &own),
                if d <= *b { 1.0 } else { 0.0 },
            );
        }
        let mut own = base.to_vec();
        own.push(("le", "+Inf".to_string()));
        add(
            changes,
            labels("sextant_agent_session_duration_seconds_bucket", &own),
            1.0,
        );
        add(
            changes,
            labels("sextant_agent_session_duration_seconds_count", &base),
            1.0,
        );
        add(
            changes,
            labels("sextant_agent_session_duration_seconds_sum", &base),
            d,
        );
    }
    for tc in &ev.tool_calls {
        for (result, n) in [("success", tc.count - tc.errors), ("error", tc.errors)] {
            if n == 0 && !(result == "success" && tc.errors == 0) {
                continue;
            }
            add(
                changes,
                labels(
                    "sextant_agent_tool_calls_total",
                    &[
                        ("agent", agent.clone()),
                        ("tool", tc.name.clone()),
                        ("result", result.to_string()),
                    ],
                ),
                n as f64,
            );
        }
        if let Some(d) = tc.duration_seconds {
            add(
                changes,
                labels(
                    "sextant_agent_tool_call_duration_seconds_total",
                    &[("agent", agent.clone()), ("tool", tc.name.clone())],
                ),
                d,
            );
        }
    }
    if let Some(r) = ev.revisions {
        add(
            changes,
            labels(
                "sextant_agent_revisions_total",
                &[
                    ("agent", agent.clone()),
                    ("role", role.clone()),
                    ("phase", phase.clone()),
                ],
            ),
            r as f64,
        );
    }
    for (kind, n) in &ev.escalations {
        add(
            changes,
            labels(
                "sextant_agent_escalations_total",
                &[
                    ("agent", agent.clone()),
                    ("role", role.clone()),
                    ("kind", kind.clone()),
                ],
            ),
            *n as f64,
        );
    }
    let ts = ev.timestamp_ms.unwrap_or(now_ms) as f64 / 1000.0;
    set_max(
        changes,
        labels(
            "sextant_agent_last_event_timestamp_seconds",
            &[("agent", agent)],
        ),
        ts,
    );
}
