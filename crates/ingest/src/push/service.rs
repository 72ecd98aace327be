//! The push groups as a running service: the [`GroupStore`] behind a lock, wired to storage
//! (a [`Sink`]), a persistence file and a clock.
//!
//! Storage sees a group the way Prometheus sees a Pushgateway it scrapes: every change writes
//! the group's current samples (grouping labels included, plus `push_time_seconds` and
//! `push_failure_time_seconds`), [`PushGroups::tick`] re-appends all groups at a fixed
//! interval so the last pushed value stays visible to queries and `time() -
//! push_time_seconds` alerts work, and series that leave a group (PUT/POST replacing them,
//! DELETE, TTL expiry) get staleness markers so they disappear from queries at once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sextant_model::{Labels, Metadata, Sample, STALE_NAN};

use super::store::{type_name, Family, Group, GroupStore};
use super::{parse_body, persist, GroupingKey, PushError};
use crate::remote_write::{SeriesSamples, WriteBatch};
use crate::Sink;

/// Current time in ms since the epoch (injectable for tests).
pub type Clock = Box<dyn Fn() -> i64 + Send + Sync>;

/// Result of a successful push, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushOutcome {
    /// Series written to storage.
    pub series: usize,
    /// Series that left the group and were marked stale.
    pub removed: usize,
}

struct Inner {
    store: GroupStore,
    /// Timestamp of the last write to storage; the next one is strictly later.
    last_ts: i64,
    last_reappend: i64,
    /// Groups expired by TTL, by job.
    expired: BTreeMap<String, u64>,
    /// Changed since the last save to the file.
    dirty: bool,
}

/// Per-series limits on pushed samples (the server's write limits; 0 = unlimited).
#[derive(Clone, Copy, Debug, Default)]
pub struct PushLimits {
    pub max_labels_per_series: usize,
    pub max_label_name_len: usize,
    pub max_label_value_len: usize,
    /// Groups kept at once; a push creating one more is refused, existing groups can still
    /// be replaced (0 = unlimited).
    pub max_groups: usize,
    /// Series in one push (0 = unlimited).
    pub max_series_per_request: usize,
    /// Samples in one push (0 = unlimited).
    pub max_samples_per_request: usize,
}

/// Pushgateway-compatible push groups stored through a [`Sink`].
pub struct PushGroups {
    inner: Mutex<Inner>,
    sink: Arc<dyn Sink>,
    file: Option<PathBuf>,
    clock: Clock,
    reappend_ms: i64,
    limits: Mutex<PushLimits>,
    /// Serializes saves so they reach the file in the order they were taken.
    persisting: Mutex<()>,
}

impl PushGroups {
    /// Opens the service; with `file`, restores the groups saved there (a file that cannot be
    /// read is moved aside to `<file>.corrupt` and the service starts empty, with an error
    /// logged). `reappend_every` is how often [`tick`](Self::tick) re-writes current values.
    pub fn open(
        sink: Arc<dyn Sink>,
        file: Option<PathBuf>,
        reappend_every: Duration,
        clock: Clock,
    ) -> Self {
        let mut store = GroupStore::new();
        if let Some(path) = &file {
            match std::fs::read(path) {
                Ok(bytes) => match persist::decode(&bytes) {
                    Ok(groups) => {
                        store = GroupStore::from_groups(groups);
                        tracing::info!(groups = store.len(), file = %path.display(), "restored push groups");
                    }
                    Err(e) => {
                        let aside = path.with_extension("corrupt");
                        let _ = std::fs::rename(path, &aside);
                        tracing::error!(file = %path.display(), moved_to = %aside.display(), error = %e, "cannot read the push groups file; starting without groups");
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot read the push groups file; starting without groups")
                }
            }
        }
        PushGroups {
            inner: Mutex::new(Inner {
                store,
                last_ts: i64::MIN,
                last_reappend: i64::MIN,
                expired: BTreeMap::new(),
                dirty: false,
            }),
            persisting: Mutex::new(()),
            sink,
            file,
            clock,
            reappend_ms: (reappend_every.as_millis() as i64).max(1),
            limits: Mutex::new(PushLimits::default()),
        }
    }

    /// Applies per-series limits to pushes; a push with a series over a limit is refused
    /// whole (400) and changes nothing.
    pub fn with_limits(self, limits: PushLimits) -> Self {
        self.set_limits(limits);
        self
    }

    /// Changes the limits at runtime (reload); groups already kept stay.
    pub fn set_limits(&self, limits: PushLimits) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    fn limits(&self) -> PushLimits {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refusals name their limit with a `(limit <name>)` tag, which the server counts.
    fn check_limits(&self, parsed: &super::ParsedBody) -> Result<(), PushError> {
        let l = self.limits();
        let over = |n: usize, max: usize| max > 0 && n > max;
        let samples = parsed
            .families
            .values()
            .map(|f| f.samples.len())
            .sum::<usize>();
        if over(samples, l.max_series_per_request) {
            return Err(PushError::Body(format!(
                "push has {samples} series, over the limit of {} series per request (limit series_per_request)",
                l.max_series_per_request
            )));
        }
        if over(samples, l.max_samples_per_request) {
            return Err(PushError::Body(format!(
                "push has {samples} samples, over the limit of {} samples per request (limit samples_per_request)",
                l.max_samples_per_request
            )));
        }
        for (labels, _) in parsed.families.values().flat_map(|f| f.samples.iter()) {
            if over(labels.len(), l.max_labels_per_series) {
                return Err(PushError::Body(format!(
                    "series {labels} has {} labels, more than the limit of {} (limit labels_per_series)",
                    labels.len(),
                    l.max_labels_per_series
                )));
            }
            for lb in labels.iter() {
                if over(lb.name.len(), l.max_label_name_len) {
                    return Err(PushError::Body(format!(
                        "series {labels}: label name {:?} is longer than the limit of {} bytes (limit label_name_length)",
                        lb.name, l.max_label_name_len
                    )));
                }
                if over(lb.value.len(), l.max_label_value_len) {
                    return Err(PushError::Body(format!(
                        "series {labels}: value of label {:?} is longer than the limit of {} bytes (limit label_value_length)",
                        lb.name, l.max_label_value_len
                    )));
                }
            }
        }
        Ok(())
    }

    /// The system clock.
    pub fn system_clock() -> Clock {
        Box::new(sextant_model::time::now_ms)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// PUT (`replace`) or POST of a body to the group `key`.
    pub fn push(
        &self,
        key: GroupingKey,
        body: &[u8],
        content_type: Option<&str>,
        replace: bool,
        ttl: Option<Duration>,
    ) -> Result<PushOutcome, PushError> {
        let parsed = parse_body(body, content_type)?;
        self.check_limits(&parsed)?;
        let ttl_ms = ttl.map(|d| d.as_millis().min(i64::MAX as u128) as i64);
        let mut inner = self.lock();
        let max_groups = self.limits().max_groups;
        if max_groups > 0 && inner.store.get(&key).is_none() && inner.store.len() >= max_groups {
            return Err(PushError::Body(format!(
                "cannot create push group {}: {} groups exist, the limit is {max_groups} (limit push_groups); delete unused groups or push to an existing one",
                super::store::format_key(&key),
                inner.store.len()
            )));
        }
        let now = (self.clock)();
        let t = next_ts(&mut inner, now);
        let res = inner.store.push(key.clone(), parsed, replace, ttl_ms, now);
        let mut batch = WriteBatch::default();
        let removed = match &res {
            Ok(change) => {
                stale(&mut batch, &change.removed, t);
                change.removed.len()
            }
            Err(_) => 0,
        };
        let mut series = 0;
        if let Some(g) = inner.store.get(&key) {
            series = append_group(&mut batch, g, t);
        }
        let stored = self.write(batch);
        inner.dirty = true;
        drop(inner);
        // An acknowledged push must survive a crash: the group's new state reaches the file
        // before the answer goes out (the samples are in the WAL once `write` returned).
        let saved = self.flush();
        res?;
        stored?;
        saved?;
        Ok(PushOutcome { series, removed })
    }

    /// DELETE of the group `key` (a missing group is not an error, as in the Pushgateway).
    /// Like a push, the deletion is in the file when this returns `Ok`.
    pub fn delete(&self, key: &GroupingKey) -> Result<(), PushError> {
        let mut inner = self.lock();
        let now = (self.clock)();
        let Some(series) = inner.store.delete(key) else {
            return Ok(());
        };
        let t = next_ts(&mut inner, now);
        let mut batch = WriteBatch::default();
        stale(&mut batch, &series, t);
        let stored = self.write(batch);
        inner.dirty = true;
        drop(inner);
        let saved = self.flush();
        stored?;
        saved
    }

    /// Expires groups whose TTL passed (staleness markers, counted per job), once per
    /// re-append interval writes every group's current values again, and saves changed groups
    /// to the file. Call it about every second so expiry and saving are prompt.
    pub fn tick(&self) {
        self.expire_and_reappend();
        // A failure is logged by `flush` and retried at the next tick.
        let _ = self.flush();
    }

    fn expire_and_reappend(&self) {
        let mut inner = self.lock();
        let now = (self.clock)();
        let expired = inner.store.expire(now);
        let reappend = now.saturating_sub(inner.last_reappend) >= self.reappend_ms;
        if expired.is_empty() && !reappend {
            return;
        }
        let t = next_ts(&mut inner, now);
        let mut batch = WriteBatch::default();
        for g in &expired {
            stale(&mut batch, &g.all_series_labels(), t);
            let job = g.key.get("job").cloned().unwrap_or_default();
            tracing::info!(group = %super::store::format_key(&g.key), "push group expired (TTL)");
            *inner.expired.entry(job).or_default() += 1;
            inner.dirty = true;
        }
        if reappend {
            inner.last_reappend = now;
            for g in inner.store.groups() {
                append_group(&mut batch, g, t);
            }
        }
        // Failures are logged by `write`; the next re-append writes the values again.
        let _ = self.write(batch);
    }

    /// Saves the groups to the file if they changed since the last save (every push and
    /// delete does, before it returns; [`tick`](Self::tick) retries failed saves; call it at
    /// shutdown). Pushes are not blocked while the file is written, and saves commit in
    /// groups: a caller that finds its change already saved by a concurrent save (taken after
    /// the change) returns at once.
    pub fn flush(&self) -> Result<(), PushError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let _order = self.persisting.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = {
            let mut inner = self.lock();
            if !inner.dirty {
                return Ok(());
            }
            inner.dirty = false;
            persist::encode(inner.store.groups())
        };
        persist::write_atomic(path, &bytes).map_err(|e| {
            tracing::error!(error = %e, "saving push groups failed; will retry");
            self.lock().dirty = true;
            PushError::Storage(format!("saving push groups: {e}"))
        })
    }

    /// A copy of every group.
    pub fn groups(&self) -> Vec<Group> {
        self.lock().store.groups().cloned().collect()
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.lock().store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Groups expired by TTL since start, by job.
    pub fn expired_totals(&self) -> BTreeMap<String, u64> {
        self.lock().expired.clone()
    }

    /// All groups in the text exposition format, as the Pushgateway's `/metrics` shows them
    /// (families merged across groups, `push_*` gauges included).
    pub fn render_text(&self) -> String {
        render_text(&self.groups())
    }

    /// Stores a batch; an error means storage (not a sample) failed, so nothing is durable.
    fn write(&self, batch: WriteBatch) -> Result<(), PushError> {
        if batch.series.is_empty() {
            return Ok(());
        }
        match self.sink.store(batch) {
            Ok(s) => {
                if let Some(p) = s.first_problem {
                    tracing::warn!(problems = s.problems, first = %p, "storage refused some pushed samples");
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "storing pushed samples failed");
                Err(PushError::Storage(format!("storing pushed samples: {e}")))
            }
        }
    }
}

impl Drop for PushGroups {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn next_ts(inner: &mut Inner, now: i64) -> i64 {
    let t = now.max(inner.last_ts.saturating_add(1));
    inner.last_ts = t;
    t
}

fn stale(batch: &mut WriteBatch, series: &[Labels], t: i64) {
    for l in series {
        batch.series.push(SeriesSamples {
            labels: l.clone(),
            samples: vec![Sample::new(t, STALE_NAN)],
            histograms: Vec::new(),
            exemplars: Vec::new(),
        });
    }
}

/// Adds the group's current samples (and metadata) at `t`; returns the number of series.
fn append_group(batch: &mut WriteBatch, g: &Group, t: i64) -> usize {
    let gauges = g.push_gauges();
    let families = g
        .families
        .iter()
        .map(|(n, f)| (n.as_str(), f))
        .chain(gauges.iter().map(|(n, f)| (*n, f)));
    let mut n = 0;
    for (name, f) in families {
        batch.metadata.push(Metadata {
            metric_family: name.to_string(),
            kind: f.kind,
            help: f.help.clone(),
            unit: String::new(),
        });
        for (labels, v) in &f.samples {
            n += 1;
            batch.series.push(SeriesSamples {
                labels: labels.clone(),
                samples: vec![Sample::new(t, *v)],
                histograms: Vec::new(),
                exemplars: Vec::new(),
            });
        }
    }
    n
}

/// Renders groups in the text exposition format 0.0.4: one block per family name (sorted),
/// the samples of all groups in it. When groups disagree on a family's help, the first group
/// (in grouping-key order) wins, as the Pushgateway also shows only one.
pub fn render_text(groups: &[Group]) -> String {
    type Merged<'a> = BTreeMap<&'a str, (&'a Family, Vec<(&'a Labels, f64)>)>;
    let mut merged: Merged<'_> = BTreeMap::new();
    let gauges: Vec<[(&'static str, Family); 2]> = groups.iter().map(|g| g.push_gauges()).collect();
    for (g, gs) in groups.iter().zip(&gauges) {
        let fams = g
            .families
            .iter()
            .map(|(n, f)| (n.as_str(), f))
            .chain(gs.iter().map(|(n, f)| (*n, f)));
        for (name, f) in fams {
            let e = merged.entry(name).or_insert_with(|| (f, Vec::new()));
            e.1.extend(f.samples.iter().map(|(l, v)| (l, *v)));
        }
    }
    let mut out = String::new();
    for (name, (f, samples)) in merged {
        if !f.help.is_empty() {
            let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(out, "# HELP {} {help}", quote_name(name));
        }
        let _ = writeln!(out, "# TYPE {} {}", quote_name(name), type_name(f.kind));
        for (labels, v) in samples {
            write_sample(&mut out, labels, v);
        }
    }
    out
}

fn is_legacy_name(s: &str, metric: bool) -> bool {
    let mut bytes = s.bytes();
    let ok_start = |b: u8| b.is_ascii_alphabetic() || b == b'_' || (metric && b == b':');
    bytes.next().is_some_and(ok_start)
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || (metric && b == b':'))
}

fn quote_name(name: &str) -> String {
    if is_legacy_name(name, true) {
        name.to_string()
    } else {
        format!("\"{}\"", escape_value(name))
    }
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_sample(out: &mut String, labels: &Labels, v: f64) {
    let name = labels.metric_name().unwrap_or_default();
    let mut parts: Vec<String> = Vec::with_capacity(labels.len());
    let legacy = is_legacy_name(name, true);
    if !legacy {
        parts.push(format!("\"{}\"", escape_value(name)));
    }
    for l in labels
        .iter()
        .filter(|l| l.name != sextant_model::METRIC_NAME)
    {
        let n = if is_legacy_name(&l.name, false) {
            l.name.clone()
        } else {
            format!("\"{}\"", escape_value(&l.name))
        };
        parts.push(format!("{n}=\"{}\"", escape_value(&l.value)));
    }
    if legacy {
        out.push_str(name);
    }
    if !parts.is_empty() {
        let _ = write!(out, "{{{}}}", parts.join(","));
    }
    let _ = writeln!(out, " {}", format_value(v));
}

/// A float as the text format spells it.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}
