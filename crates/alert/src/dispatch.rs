//! The dispatcher: Alertmanager's `dispatch`, `inhibit`, `notify` and `nflog` stages in one
//! place. Alerts are merged into the alert store, routed through the tree into aggregation
//! groups (one per route and group-label set), and each group is flushed on Alertmanager's
//! timers: first after `group_wait` (at once if the alert is older than that), then every
//! `group_interval`. A flush drops muted groups (time intervals), inhibited and silenced alerts,
//! then per integration applies the dedup rule of Alertmanager's `DedupStage` against the
//! notification log (send when the firing set grew, when the resolved set changed and
//! `send_resolved`, when everything resolved, or when `repeat_interval` passed), delivers with
//! retries and exponential backoff and records the result. All times are passed in, so tests
//! drive the clock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_model::time::{format_rfc3339_ms, now_ms};

use crate::alert::Alert;
use crate::config::{Config, GlobalConfig, Route};
use crate::matchers::{fingerprint_hex, labelset_string, matches_labels};
use crate::receivers::ReceiverConfig;
use crate::silence::{Silence, SilenceError, SilenceState, Silences};
use crate::store::{NflogEntry, NflogKey, Store, StoreError};
use crate::timeinterval::any_contains;
use crate::{Notification, NotifiedAlert, Receiver};

/// Builds the integrations of one receiver (the receivers module provides the real one).
pub type IntegrationBuilder = Arc<
    dyn Fn(&ReceiverConfig, &GlobalConfig) -> Result<Vec<Arc<dyn Receiver>>, String> + Send + Sync,
>;

/// Settings of the alert manager.
#[derive(Clone, Debug)]
pub struct Options {
    /// Link to Sextant, in notifications (`externalURL`).
    pub external_url: String,
    /// First retry delay; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How long expired silences and notification-log entries are kept (Alertmanager: 120h).
    pub retention: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            external_url: String::new(),
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            retention: Duration::from_secs(120 * 3600),
        }
    }
}

#[derive(Clone, Debug)]
struct RouteOpts {
    receiver: String,
    group_wait: i64,
    group_interval: i64,
    repeat_interval: i64,
    mute: Vec<String>,
    active: Vec<String>,
}

impl RouteOpts {
    fn of(r: &Route) -> RouteOpts {
        RouteOpts {
            receiver: r.receiver.clone(),
            group_wait: r.group_wait.as_millis() as i64,
            group_interval: r.group_interval.as_millis() as i64,
            repeat_interval: r.repeat_interval.as_millis() as i64,
            mute: r.mute_time_intervals.clone(),
            active: r.active_time_intervals.clone(),
        }
    }
}

struct AggrGroup {
    opts: RouteOpts,
    key: String,
    labels: BTreeMap<String, String>,
    alerts: BTreeMap<u64, Alert>,
    next_flush: i64,
    has_flushed: bool,
    flushing: bool,
}

/// One due group, handed to its receiver's integrations.
#[derive(Clone, Debug)]
pub struct FlushJob {
    id: (String, String),
    pub group_key: String,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    /// Alerts to notify about (inhibited and silenced ones removed), with `resolved` flags.
    pub alerts: Vec<(Alert, bool)>,
    /// Every alert of the group at flush time (fingerprint, update time), to drop resolved
    /// ones afterwards unless they changed meanwhile.
    snapshot: Vec<(u64, i64, bool)>,
    repeat_interval: i64,
    group_interval: i64,
    pub now: i64,
}

struct Inner {
    config: Arc<Config>,
    alerts: HashMap<u64, Alert>,
    groups: BTreeMap<(String, String), AggrGroup>,
    silences: Silences,
    nflog: HashMap<NflogKey, NflogEntry>,
    integrations: HashMap<String, Vec<Arc<dyn Receiver>>>,
}

#[derive(Default)]
struct Metrics {
    /// integration → (attempts, failures)
    notifications: BTreeMap<String, (u64, u64)>,
    received: BTreeMap<&'static str, u64>,
    invalid: u64,
    /// The most recent delivery attempts, oldest first (at most [`NOTIFICATION_LOG_SIZE`]).
    log: std::collections::VecDeque<NotificationRecord>,
    /// (receiver, integration) → delivery statistics.
    receivers: BTreeMap<(String, String), ReceiverStats>,
}

/// How many delivery attempts [`AlertManager::notification_log`] keeps (in memory).
pub const NOTIFICATION_LOG_SIZE: usize = 1000;

/// One delivery attempt of a notification to one integration.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NotificationRecord {
    /// Unix milliseconds of the attempt's end.
    pub time: i64,
    pub receiver: String,
    pub integration: String,
    pub group_key: String,
    /// `success`, `failed` (will be retried) or `gave_up`.
    pub status: &'static str,
    /// Alerts in the notification.
    pub alerts: usize,
    pub firing: usize,
    pub resolved: usize,
    pub error: Option<String>,
}

/// Delivery statistics of one integration of a receiver (its health).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ReceiverStats {
    pub receiver: String,
    pub integration: String,
    pub attempts: u64,
    pub failures: u64,
    /// Unix milliseconds; None before the first attempt.
    pub last_attempt: Option<i64>,
    pub last_success: Option<i64>,
    pub last_error_time: Option<i64>,
    pub last_error: Option<String>,
}

/// The built-in alert manager.
pub struct AlertManager {
    inner: Mutex<Inner>,
    store: Store,
    metrics: Mutex<Metrics>,
    opts: Options,
    builder: IntegrationBuilder,
    started_ms: i64,
    /// Active + pending silences allowed (0 = unlimited); changeable by reload.
    max_silences: std::sync::atomic::AtomicUsize,
}

/// An alert with its status, for the v2 API.
#[derive(Clone, Debug)]
pub struct AlertView {
    pub alert: Alert,
    pub fingerprint: u64,
    pub receivers: Vec<String>,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<String>,
}

impl AlertView {
    /// `active`, `suppressed` (or `unprocessed`, which never happens here: alerts are routed
    /// as they arrive).
    pub fn state(&self) -> &'static str {
        if self.silenced_by.is_empty() && self.inhibited_by.is_empty() {
            "active"
        } else {
            "suppressed"
        }
    }
}

/// An aggregation group, for the v2 API.
#[derive(Clone, Debug)]
pub struct GroupView {
    pub labels: BTreeMap<String, String>,
    pub receiver: String,
    pub alerts: Vec<AlertView>,
}

/// Errors of the alert manager's operations.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Silence(#[from] SilenceError),
    #[error("{0}")]
    Invalid(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Firing sources per inhibit rule, for one evaluation.
struct Inhibitor<'a> {
    rules: &'a [crate::config::InhibitRule],
    sources: Vec<Vec<(u64, &'a BTreeMap<String, String>)>>,
}

impl<'a> Inhibitor<'a> {
    fn new(config: &'a Config, alerts: &'a HashMap<u64, Alert>, now: i64) -> Inhibitor<'a> {
        let sources = config
            .inhibit_rules
            .iter()
            .map(|r| {
                alerts
                    .iter()
                    .filter(|(_, a)| {
                        !a.resolved_at(now) && matches_labels(&r.source_matchers, &a.labels)
                    })
                    .map(|(fp, a)| (*fp, &a.labels))
                    .collect()
            })
            .collect();
        Inhibitor {
            rules: &config.inhibit_rules,
            sources,
        }
    }

    /// Fingerprints (hex) of the alerts inhibiting `labels`.
    fn inhibited_by(&self, labels: &BTreeMap<String, String>) -> Vec<String> {
        let mut out = BTreeSet::new();
        for (r, srcs) in self.rules.iter().zip(&self.sources) {
            if !matches_labels(&r.target_matchers, labels) {
                continue;
            }
            // An alert matching both sides is only inhibited by sources that do not also
            // match the target side (no self-inhibition), like Alertmanager.
            let two_sided = matches_labels(&r.source_matchers, labels);
            for (fp, sl) in srcs {
                if two_sided && matches_labels(&r.target_matchers, sl) {
                    continue;
                }
                if r.equal.iter().all(|n| sl.get(n) == labels.get(n)) {
                    out.insert(fingerprint_hex(*fp));
                    break;
                }
            }
        }
        out.into_iter().collect()
    }
}

fn is_muted(config: &Config, opts: &RouteOpts, now: i64) -> bool {
    let get = |n: &String| {
        config
            .time_intervals
            .get(n)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    };
    if opts.mute.iter().any(|n| any_contains(get(n), now)) {
        return true;
    }
    !opts.active.is_empty() && !opts.active.iter().any(|n| any_contains(get(n), now))
}

/// Alertmanager's `DedupStage.needsUpdate`.
fn needs_update(
    entry: Option<&NflogEntry>,
    firing: &HashSet<u64>,
    resolved: &HashSet<u64>,
    send_resolved: bool,
    repeat: i64,
    now: i64,
) -> bool {
    let Some(e) = entry else {
        return !firing.is_empty();
    };
    let prev_firing: HashSet<u64> = e.firing.iter().copied().collect();
    if !firing.is_subset(&prev_firing) {
        return true;
    }
    if firing.is_empty() {
        return !e.firing.is_empty();
    }
    let prev_resolved: HashSet<u64> = e.resolved.iter().copied().collect();
    if send_resolved && !resolved.is_subset(&prev_resolved) {
        return true;
    }
    e.ts < now - repeat
}

impl AlertManager {
    /// Creates the manager over `store`, restoring alerts, silences and the notification log.
    pub fn new(
        config: Config,
        store: Store,
        builder: IntegrationBuilder,
        opts: Options,
        now: i64,
    ) -> Result<Arc<AlertManager>, ManagerError> {
        let integrations = build_integrations(&config, &builder)?;
        let silences = Silences::from_stored(store.load_silences()?);
        let nflog = store.load_nflog()?.into_iter().collect();
        let stored = store.load_alerts()?;
        let mut inner = Inner {
            config: Arc::new(config),
            alerts: HashMap::new(),
            groups: BTreeMap::new(),
            silences,
            nflog,
            integrations,
        };
        let n = stored.len();
        for a in stored {
            let fp = a.fingerprint();
            inner.alerts.insert(fp, a.clone());
            route_alert(&mut inner, fp, &a, now, true);
        }
        if n > 0 {
            tracing::info!(alerts = n, groups = inner.groups.len(), "restored alerts");
        }
        Ok(Arc::new(AlertManager {
            inner: Mutex::new(inner),
            store,
            metrics: Mutex::new(Metrics::default()),
            opts,
            builder,
            started_ms: now,
            max_silences: std::sync::atomic::AtomicUsize::new(0),
        }))
    }

    /// Sets the most active + pending silences (0 = unlimited); existing ones are kept.
    pub fn set_max_silences(&self, max: usize) {
        self.max_silences
            .store(max, std::sync::atomic::Ordering::Relaxed);
    }

    /// When the manager started (ms), for `/api/v2/status`.
    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    /// The running configuration.
    pub fn config(&self) -> Arc<Config> {
        lock(&self.inner).config.clone()
    }

    /// Replaces the configuration: groups are rebuilt from the stored alerts (the notification
    /// log keeps them from re-notifying what was already sent).
    pub fn update_config(&self, config: Config, now: i64) -> Result<(), ManagerError> {
        let integrations = build_integrations(&config, &self.builder)?;
        let mut inner = lock(&self.inner);
        inner.config = Arc::new(config);
        inner.integrations = integrations;
        inner.groups.clear();
        let alerts: Vec<(u64, Alert)> = inner.alerts.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (fp, a) in alerts {
            route_alert(&mut inner, fp, &a, now, true);
        }
        Ok(())
    }

    /// Accepts alerts (from rules or the API): validates, fills in times, merges with stored
    /// copies, persists, then routes them. Invalid alerts are skipped; their errors returned.
    pub fn put_alerts(&self, alerts: Vec<Alert>, now: i64) -> Result<Vec<String>, ManagerError> {
        let mut errs = Vec::new();
        let mut inner = lock(&self.inner);
        let rt = inner.config.resolve_timeout.as_millis() as i64;
        let mut merged = Vec::with_capacity(alerts.len());
        for mut a in alerts {
            if let Err(e) = a.normalize(now, rt) {
                errs.push(e.0);
                continue;
            }
            let fp = a.fingerprint();
            if let Some(old) = inner.alerts.get(&fp) {
                let overlap = (a.ends_at > old.starts_at && a.ends_at < old.ends_at)
                    || (a.starts_at > old.starts_at && a.starts_at < old.ends_at);
                if overlap {
                    a = old.merge(&a);
                }
            }
            merged.push((fp, a));
        }
        {
            let mut m = lock(&self.metrics);
            m.invalid += errs.len() as u64;
            for (_, a) in &merged {
                *m.received
                    .entry(if a.resolved_at(now) {
                        "resolved"
                    } else {
                        "firing"
                    })
                    .or_default() += 1;
            }
        }
        let refs: Vec<(u64, &Alert)> = merged.iter().map(|(fp, a)| (*fp, a)).collect();
        self.store.put_alerts(&refs)?;
        for (fp, a) in merged {
            route_alert(&mut inner, fp, &a, now, false);
            inner.alerts.insert(fp, a);
        }
        Ok(errs)
    }

    /// Groups due at `now`, marked as flushing; run each with [`AlertManager::execute`].
    pub fn due(&self, now: i64) -> Vec<FlushJob> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        if !inner
            .groups
            .values()
            .any(|g| !g.flushing && g.next_flush <= now)
        {
            return Vec::new();
        }
        let config = inner.config.clone();
        let inhibitor = Inhibitor::new(&config, &inner.alerts, now);
        let mut jobs = Vec::new();
        let mut done_empty = Vec::new();
        for (id, ag) in inner.groups.iter_mut() {
            if ag.flushing || ag.next_flush > now {
                continue;
            }
            ag.next_flush = now + ag.opts.group_interval;
            ag.has_flushed = true;
            let snapshot: Vec<(u64, i64, bool)> = ag
                .alerts
                .iter()
                .map(|(fp, a)| (*fp, a.updated_at, a.resolved_at(now)))
                .collect();
            let mut alerts = Vec::new();
            if !is_muted(&config, &ag.opts, now) {
                for a in ag.alerts.values() {
                    if !inner.silences.mutes(&a.labels, now).is_empty() {
                        continue;
                    }
                    if !inhibitor.inhibited_by(&a.labels).is_empty() {
                        continue;
                    }
                    alerts.push((a.clone(), a.resolved_at(now)));
                }
            }
            let job = FlushJob {
                id: id.clone(),
                group_key: ag.key.clone(),
                receiver: ag.opts.receiver.clone(),
                group_labels: ag.labels.clone(),
                alerts,
                snapshot,
                repeat_interval: ag.opts.repeat_interval,
                group_interval: ag.opts.group_interval,
                now,
            };
            if job.alerts.is_empty() {
                // Nothing to send (muted, all suppressed): a successful, empty flush.
                done_empty.push(job);
            } else {
                ag.flushing = true;
                jobs.push(job);
            }
        }
        for j in done_empty {
            finish(inner, &j, true);
        }
        jobs
    }

    /// Hands a due group to every integration of its receiver (in parallel), then records
    /// the outcome. Returns whether every integration succeeded.
    pub async fn execute(self: &Arc<Self>, job: FlushJob) -> bool {
        let integrations = lock(&self.inner)
            .integrations
            .get(&job.receiver)
            .cloned()
            .unwrap_or_default();
        let job = Arc::new(job);
        let mut set = tokio::task::JoinSet::new();
        for (idx, integ) in integrations.into_iter().enumerate() {
            let me = self.clone();
            let job = job.clone();
            set.spawn(async move { me.notify_integration(&job, idx as u32, integ).await });
        }
        let mut ok = true;
        while let Some(r) = set.join_next().await {
            ok &= r.unwrap_or(false);
        }
        finish(&mut lock(&self.inner), &job, ok);
        ok
    }

    async fn notify_integration(&self, job: &FlushJob, idx: u32, integ: Arc<dyn Receiver>) -> bool {
        let name = integ.integration();
        let key = NflogKey {
            group_key: job.group_key.clone(),
            receiver: job.receiver.clone(),
            integration: name.to_string(),
            idx,
        };
        let firing: HashSet<u64> = job
            .alerts
            .iter()
            .filter(|(_, r)| !r)
            .map(|(a, _)| a.fingerprint())
            .collect();
        let resolved: HashSet<u64> = job
            .alerts
            .iter()
            .filter(|(_, r)| *r)
            .map(|(a, _)| a.fingerprint())
            .collect();
        let entry = lock(&self.inner).nflog.get(&key).cloned();
        if !needs_update(
            entry.as_ref(),
            &firing,
            &resolved,
            integ.send_resolved(),
            job.repeat_interval,
            job.now,
        ) {
            return true;
        }
        let send: Vec<&(Alert, bool)> = job
            .alerts
            .iter()
            .filter(|(_, r)| !r || integ.send_resolved())
            .collect();
        if !send.is_empty() {
            let n = self.notification(job, &send);
            let deadline = tokio::time::Instant::now()
                + Duration::from_millis(job.group_interval.max(1000) as u64);
            let mut delay = self.opts.retry_initial;
            loop {
                lock(&self.metrics)
                    .notifications
                    .entry(name.to_string())
                    .or_default()
                    .0 += 1;
                match integ.notify(&n).await {
                    Ok(()) => {
                        self.record(job, name, &n, None, false);
                        break;
                    }
                    Err(e) => {
                        lock(&self.metrics)
                            .notifications
                            .entry(name.to_string())
                            .or_default()
                            .1 += 1;
                        let give_up =
                            !e.retryable || tokio::time::Instant::now() + delay > deadline;
                        self.record(job, name, &n, Some(e.msg.clone()), give_up);
                        tracing::warn!(
                            receiver = %job.receiver, integration = name, group = %job.group_key,
                            error = %e, retry = !give_up, "notify failed"
                        );
                        if give_up {
                            return false;
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(self.opts.retry_max);
                    }
                }
            }
        }
        let mut f: Vec<u64> = firing.into_iter().collect();
        let mut r: Vec<u64> = resolved.into_iter().collect();
        f.sort_unstable();
        r.sort_unstable();
        let e = NflogEntry {
            firing: f,
            resolved: r,
            ts: job.now,
        };
        if let Err(err) = self.store.put_nflog(&key, &e) {
            tracing::error!(error = %err, "cannot write the notification log");
            return false;
        }
        lock(&self.inner).nflog.insert(key, e);
        true
    }

    fn notification(&self, job: &FlushJob, alerts: &[&(Alert, bool)]) -> Notification {
        let firing = alerts.iter().any(|(_, r)| !r);
        let common = |f: fn(&Alert) -> &BTreeMap<String, String>| -> BTreeMap<String, String> {
            let mut it = alerts.iter();
            let Some((first, _)) = it.next() else {
                return BTreeMap::new();
            };
            let mut c = f(first).clone();
            for (a, _) in it {
                c.retain(|k, v| f(a).get(k) == Some(v));
            }
            c
        };
        Notification {
            version: "4".into(),
            group_key: job.group_key.clone(),
            truncated_alerts: 0,
            status: if firing { "firing" } else { "resolved" }.into(),
            receiver: job.receiver.clone(),
            group_labels: job.group_labels.clone(),
            common_labels: common(|a| &a.labels),
            common_annotations: common(|a| &a.annotations),
            external_url: self.opts.external_url.clone(),
            alerts: alerts
                .iter()
                .map(|(a, r)| NotifiedAlert {
                    status: if *r { "resolved" } else { "firing" }.into(),
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at: format_rfc3339_ms(a.starts_at),
                    ends_at: if *r {
                        format_rfc3339_ms(a.ends_at)
                    } else {
                        "0001-01-01T00:00:00Z".into()
                    },
                    generator_url: a.generator_url.clone(),
                    fingerprint: fingerprint_hex(a.fingerprint()),
                })
                .collect(),
        }
    }

    /// Housekeeping: drops resolved alerts no group holds any more, old silences and old
    /// notification-log entries.
    pub fn maintenance(&self, now: i64) {
        let ret = self.opts.retention.as_millis() as i64;
        let mut inner = lock(&self.inner);
        let held: HashSet<u64> = inner
            .groups
            .values()
            .flat_map(|g| g.alerts.keys().copied())
            .collect();
        let gone: Vec<u64> = inner
            .alerts
            .iter()
            .filter(|(fp, a)| a.resolved_at(now) && !held.contains(fp))
            .map(|(fp, _)| *fp)
            .collect();
        if !gone.is_empty() {
            if let Err(e) = self.store.delete_alerts(&gone) {
                tracing::warn!(error = %e, "cannot delete resolved alerts");
            } else {
                for fp in gone {
                    inner.alerts.remove(&fp);
                }
            }
        }
        for id in inner.silences.gc(now, ret) {
            if let Err(e) = self.store.delete_silence(&id) {
                tracing::warn!(error = %e, "cannot delete an old silence");
            }
        }
        inner.nflog.retain(|_, e| e.ts >= now - ret);
        if let Err(e) = self.store.gc_nflog(now - ret) {
            tracing::warn!(error = %e, "cannot trim the notification log");
        }
    }

    /// Runs the timers in the background (inside a tokio runtime) until the process ends.
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last_maint = 0i64;
            loop {
                let now = now_ms();
                for job in me.due(now) {
                    let m = me.clone();
                    tokio::spawn(async move {
                        m.execute(job).await;
                    });
                }
                if now - last_maint >= 30_000 {
                    me.maintenance(now);
                    last_maint = now;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    /// Alerts not yet resolved, with their status and receivers.
    pub fn alerts(&self, now: i64) -> Vec<AlertView> {
        let inner = lock(&self.inner);
        let inhibitor = Inhibitor::new(&inner.config, &inner.alerts, now);
        let mut v: Vec<AlertView> = inner
            .alerts
            .iter()
            .filter(|(_, a)| !a.resolved_at(now))
            .map(|(fp, a)| view(&inner, &inhibitor, *fp, a, now))
            .collect();
        v.sort_by_key(|a| a.fingerprint);
        v
    }

    /// Aggregation groups with their unresolved alerts.
    pub fn groups(&self, now: i64) -> Vec<GroupView> {
        let inner = lock(&self.inner);
        let inhibitor = Inhibitor::new(&inner.config, &inner.alerts, now);
        inner
            .groups
            .values()
            .map(|g| GroupView {
                labels: g.labels.clone(),
                receiver: g.opts.receiver.clone(),
                alerts: g
                    .alerts
                    .iter()
                    .filter(|(_, a)| !a.resolved_at(now))
                    .map(|(fp, a)| view(&inner, &inhibitor, *fp, a, now))
                    .collect(),
            })
            .filter(|g| !g.alerts.is_empty())
            .collect()
    }

    /// All silences.
    pub fn silences(&self) -> Vec<Silence> {
        lock(&self.inner).silences.list().cloned().collect()
    }

    pub fn silence(&self, id: &str) -> Option<Silence> {
        lock(&self.inner).silences.get(id).cloned()
    }

    /// Creates or updates a silence, persisted before it takes effect; returns its id.
    pub fn set_silence(&self, s: Silence, now: i64) -> Result<String, ManagerError> {
        let mut inner = lock(&self.inner);
        let before: Vec<Silence> = inner.silences.list().cloned().collect();
        let max = self.max_silences.load(std::sync::atomic::Ordering::Relaxed);
        let changed = inner.silences.set_limited(s, now, max)?;
        for c in &changed {
            if let Err(e) = self.store.put_silence(c) {
                // Undo: nothing is acted on unless it is stored.
                inner.silences = Silences::from_stored(before);
                return Err(e.into());
            }
        }
        Ok(changed.last().map(|s| s.id.clone()).unwrap_or_default())
    }

    /// Expires a silence now.
    pub fn expire_silence(&self, id: &str, now: i64) -> Result<(), ManagerError> {
        let mut inner = lock(&self.inner);
        let s = inner.silences.expire(id, now)?;
        self.store.put_silence(&s)?;
        Ok(())
    }

    /// Records one delivery attempt in the notification log and the receiver statistics.
    fn record(
        &self,
        job: &FlushJob,
        integration: &str,
        n: &Notification,
        error: Option<String>,
        gave_up: bool,
    ) {
        let now = now_ms();
        let firing = n.alerts.iter().filter(|a| a.status == "firing").count();
        let rec = NotificationRecord {
            time: now,
            receiver: job.receiver.clone(),
            integration: integration.to_string(),
            group_key: job.group_key.clone(),
            status: match (&error, gave_up) {
                (None, _) => "success",
                (Some(_), false) => "failed",
                (Some(_), true) => "gave_up",
            },
            alerts: n.alerts.len(),
            firing,
            resolved: n.alerts.len() - firing,
            error: error.clone(),
        };
        let mut m = lock(&self.metrics);
        let st = m
            .receivers
            .entry((job.receiver.clone(), integration.to_string()))
            .or_default();
        st.attempts += 1;
        st.last_attempt = Some(now);
        match error {
            None => st.last_success = Some(now),
            Some(e) => {
                st.failures += 1;
                st.last_error_time = Some(now);
                st.last_error = Some(e);
            }
        }
        if m.log.len() >= NOTIFICATION_LOG_SIZE {
            m.log.pop_front();
        }
        m.log.push_back(rec);
    }

    /// The most recent delivery attempts, newest first (kept in memory, not across restarts).
    pub fn notification_log(&self, limit: usize) -> Vec<NotificationRecord> {
        lock(&self.metrics)
            .log
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Statistics of every configured integration of every receiver (zero before the first
    /// attempt), plus any that attempted deliveries under an earlier configuration.
    pub fn receiver_stats(&self) -> Vec<ReceiverStats> {
        let configured: Vec<(String, String)> = {
            let inner = lock(&self.inner);
            let mut v = Vec::new();
            for r in &inner.config.receivers {
                let integs = inner.integrations.get(&r.name).cloned().unwrap_or_default();
                if integs.is_empty() {
                    v.push((r.name.clone(), String::new()));
                }
                for i in integs {
                    v.push((r.name.clone(), i.integration().to_string()));
                }
            }
            v
        };
        let m = lock(&self.metrics);
        let mut out: BTreeMap<(String, String), ReceiverStats> = m.receivers.clone();
        for (r, i) in configured {
            out.entry((r.clone(), i.clone())).or_insert(ReceiverStats {
                receiver: r,
                integration: i,
                ..ReceiverStats::default()
            });
        }
        out.into_iter()
            .map(|((r, i), mut s)| {
                s.receiver = r;
                s.integration = i;
                s
            })
            .collect()
    }

    /// Names of the configured receivers.
    pub fn receiver_names(&self) -> Vec<String> {
        lock(&self.inner)
            .config
            .receivers
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    /// The manager's metrics in Prometheus' text format, Alertmanager's names.
    pub fn metrics_text(&self, now: i64) -> String {
        use std::fmt::Write;
        let (active, suppressed, sil) = {
            let views = self.alerts(now);
            let s = views.iter().filter(|v| v.state() == "suppressed").count();
            let inner = lock(&self.inner);
            let mut sil: BTreeMap<&str, usize> =
                [("active", 0), ("pending", 0), ("expired", 0)].into();
            for s in inner.silences.list() {
                *sil.entry(s.state(now).as_str()).or_default() += 1;
            }
            let sil: Vec<(String, usize)> =
                sil.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            (views.len() - s, s, sil)
        };
        let m = lock(&self.metrics);
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP alertmanager_notifications_total The total number of attempted notifications."
        );
        let _ = writeln!(o, "# TYPE alertmanager_notifications_total counter");
        for (i, (t, _)) in &m.notifications {
            let _ = writeln!(
                o,
                "alertmanager_notifications_total{{integration=\"{i}\"}} {t}"
            );
        }
        let _ = writeln!(o, "# HELP alertmanager_notifications_failed_total The total number of failed notifications.");
        let _ = writeln!(o, "# TYPE alertmanager_notifications_failed_total counter");
        for (i, (_, f)) in &m.notifications {
            let _ = writeln!(
                o,
                "alertmanager_notifications_failed_total{{integration=\"{i}\"}} {f}"
            );
        }
        let _ = writeln!(o, "# HELP alertmanager_alerts How many alerts by state.");
        let _ = writeln!(o, "# TYPE alertmanager_alerts gauge");
        let _ = writeln!(o, "alertmanager_alerts{{state=\"active\"}} {active}");
        let _ = writeln!(
            o,
            "alertmanager_alerts{{state=\"suppressed\"}} {suppressed}"
        );
        let _ = writeln!(
            o,
            "# HELP alertmanager_alerts_received_total The total number of received alerts."
        );
        let _ = writeln!(o, "# TYPE alertmanager_alerts_received_total counter");
        for st in ["firing", "resolved"] {
            let n = m.received.get(st).copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "alertmanager_alerts_received_total{{status=\"{st}\"}} {n}"
            );
        }
        let _ = writeln!(o, "# HELP alertmanager_alerts_invalid_total The total number of received alerts that were invalid.");
        let _ = writeln!(o, "# TYPE alertmanager_alerts_invalid_total counter");
        let _ = writeln!(o, "alertmanager_alerts_invalid_total {}", m.invalid);
        let _ = writeln!(
            o,
            "# HELP alertmanager_silences How many silences by state."
        );
        let _ = writeln!(o, "# TYPE alertmanager_silences gauge");
        for (st, n) in sil {
            let _ = writeln!(o, "alertmanager_silences{{state=\"{st}\"}} {n}");
        }
        o
    }
}

fn view(inner: &Inner, inh: &Inhibitor, fp: u64, a: &Alert, now: i64) -> AlertView {
    let mut receivers: Vec<String> = Vec::new();
    for r in inner.config.route.match_labels(&a.labels) {
        if !receivers.contains(&r.receiver) {
            receivers.push(r.receiver.clone());
        }
    }
    AlertView {
        alert: a.clone(),
        fingerprint: fp,
        receivers,
        silenced_by: inner.silences.mutes(&a.labels, now),
        inhibited_by: inh.inhibited_by(&a.labels),
    }
}

fn build_integrations(
    config: &Config,
    builder: &IntegrationBuilder,
) -> Result<HashMap<String, Vec<Arc<dyn Receiver>>>, ManagerError> {
    let mut out = HashMap::new();
    for r in &config.receivers {
        let v = builder(r, &config.global)
            .map_err(|e| ManagerError::Invalid(format!("receiver {:?}: {e}", r.name)))?;
        out.insert(r.name.clone(), v);
    }
    Ok(out)
}

fn route_alert(inner: &mut Inner, fp: u64, a: &Alert, now: i64, restored: bool) {
    let config = inner.config.clone();
    for r in config.route.match_labels(&a.labels) {
        let labels = r.group_labels(&a.labels);
        let key = format!("{}:{}", r.key, labelset_string(&labels));
        let opts = RouteOpts::of(r);
        let gw = opts.group_wait;
        let ag = inner
            .groups
            .entry((r.id.clone(), key.clone()))
            .or_insert_with(|| AggrGroup {
                opts,
                key,
                labels,
                alerts: BTreeMap::new(),
                next_flush: now + gw,
                has_flushed: false,
                flushing: false,
            });
        if !ag.has_flushed {
            if a.starts_at.saturating_add(gw) < now {
                ag.next_flush = now;
            } else if restored {
                // A group rebuilt after a restart keeps its original group_wait deadline.
                ag.next_flush = ag.next_flush.min(a.starts_at.saturating_add(gw).max(now));
            }
        }
        ag.alerts.insert(fp, a.clone());
    }
}

fn finish(inner: &mut Inner, job: &FlushJob, ok: bool) {
    let Some(ag) = inner.groups.get_mut(&job.id) else {
        return;
    };
    ag.flushing = false;
    if ok {
        for (fp, updated, resolved) in &job.snapshot {
            if *resolved && ag.alerts.get(fp).is_some_and(|a| a.updated_at == *updated) {
                ag.alerts.remove(fp);
            }
        }
        if ag.alerts.is_empty() {
            inner.groups.remove(&job.id);
        }
    }
}

/// The alert manager receives the rule manager's alerts.
impl sextant_rules::Notifier for AlertManager {
    fn notify(&self, alerts: Vec<sextant_rules::NotifyAlert>) {
        let alerts = alerts.into_iter().map(from_rule_alert).collect();
        match self.put_alerts(alerts, now_ms()) {
            Ok(errs) => {
                for e in errs {
                    tracing::warn!(error = %e, "invalid alert from rules");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot store alerts"),
        }
    }
}

/// Converts an alert of the rule manager.
pub fn from_rule_alert(a: sextant_rules::NotifyAlert) -> Alert {
    Alert {
        labels: a
            .labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect(),
        annotations: a.annotations.into_iter().collect(),
        starts_at: a.starts_at,
        ends_at: a.ends_at,
        updated_at: 0,
        timeout: false,
        generator_url: a.generator_url,
    }
}

/// A silence state name.
pub fn silence_state(s: &Silence, now: i64) -> SilenceState {
    s.state(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoxFuture, NotifyError};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A receiver that records what it is handed; fails the first `fail` attempts.
    struct Fake {
        got: Arc<Mutex<Vec<Notification>>>,
        send_resolved: bool,
        fail: AtomicU32,
        retryable: bool,
    }

    impl Receiver for Fake {
        fn integration(&self) -> &'static str {
            "fake"
        }
        fn send_resolved(&self) -> bool {
            self.send_resolved
        }
        fn notify<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
            Box::pin(async move {
                if self.fail.load(Ordering::SeqCst) > 0 {
                    self.fail.fetch_sub(1, Ordering::SeqCst);
                    return Err(NotifyError {
                        retryable: self.retryable,
                        msg: "boom".into(),
                    });
                }
                lock(&self.got).push(n.clone());
                Ok(())
            })
        }
    }

    struct Rig {
        am: Arc<AlertManager>,
        got: Arc<Mutex<Vec<Notification>>>,
    }

    fn rig_with(
        yaml: &str,
        store: Store,
        send_resolved: bool,
        fail: u32,
        retryable: bool,
        now: i64,
    ) -> Rig {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let builder: IntegrationBuilder = Arc::new(move |_r, _g| {
            let f: Arc<dyn Receiver> = Arc::new(Fake {
                got: g.clone(),
                send_resolved,
                fail: AtomicU32::new(fail),
                retryable,
            });
            Ok(vec![f])
        });
        let opts = Options {
            retry_initial: Duration::from_millis(1),
            retry_max: Duration::from_millis(2),
            ..Options::default()
        };
        let am = AlertManager::new(parse_config(yaml), store, builder, opts, now).unwrap();
        Rig { am, got }
    }

    fn parse_config(y: &str) -> Config {
        crate::config::parse_config(y, "t.yml").unwrap()
    }

    const CFG: &str = "
route:
  receiver: r
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers: [{name: r}]
inhibit_rules:
  - source_matchers: ['severity=\"critical\"']
    target_matchers: ['severity=\"warning\"']
    equal: [cluster]
";

    fn alert(name: &str, extra: &[(&str, &str)], starts: i64, ends: i64) -> Alert {
        let mut labels: BTreeMap<String, String> =
            [("alertname".to_string(), name.to_string())].into();
        for (k, v) in extra {
            labels.insert(k.to_string(), v.to_string());
        }
        Alert {
            labels,
            annotations: BTreeMap::new(),
            starts_at: starts,
            ends_at: ends,
            updated_at: 0,
            timeout: false,
            generator_url: String::new(),
        }
    }

    async fn flush(r: &Rig, now: i64) -> usize {
        let jobs = r.am.due(now);
        let n = jobs.len();
        for j in jobs {
            r.am.execute(j).await;
        }
        n
    }

    fn count(r: &Rig) -> usize {
        lock(&r.got).len()
    }

    const S: i64 = 1000;
    const T0: i64 = 1_700_000_000_000;

    #[tokio::test]
    async fn group_wait_interval_and_repeat() {
        let r = rig_with(CFG, Store::in_memory().unwrap(), true, 0, true, T0);
        r.am.put_alerts(vec![alert("A", &[], T0, 0)], T0).unwrap();
        assert_eq!(flush(&r, T0 + 29 * S).await, 0, "still in group_wait");
        flush(&r, T0 + 30 * S).await;
        assert_eq!(count(&r), 1);
        {
            let g = lock(&r.got);
            assert_eq!(g[0].group_key, "{}:{alertname=\"A\"}");
            assert_eq!(g[0].status, "firing");
            assert_eq!(g[0].alerts[0].ends_at, "0001-01-01T00:00:00Z");
        }
        // A second alert joins the group: sent at the next group_interval, not before.
        r.am.put_alerts(vec![alert("A", &[("i", "2")], T0 + 60 * S, 0)], T0 + 60 * S)
            .unwrap();
        flush(&r, T0 + 61 * S).await;
        assert_eq!(count(&r), 1);
        // Alerts without endsAt need refreshing before resolve_timeout (5m); Prometheus-style
        // re-sends keep them firing.
        let refresh = |t: i64| {
            r.am.put_alerts(
                vec![
                    alert("A", &[], T0, 0),
                    alert("A", &[("i", "2")], T0 + 60 * S, 0),
                ],
                t,
            )
            .unwrap();
        };
        refresh(T0 + 300 * S);
        flush(&r, T0 + 330 * S).await;
        assert_eq!(count(&r), 2);
        assert_eq!(lock(&r.got)[1].alerts.len(), 2);
        // Nothing changed: no notification until repeat_interval (4h) has passed.
        let mut t = T0 + 330 * S;
        // Flushes every 5m; at exactly 4h after the last send the entry is not yet *older*
        // than repeat_interval (Alertmanager compares with Before), so the repeat goes out at
        // the next tick.
        for _ in 0..48 {
            t += 300 * S;
            refresh(t - 10 * S);
            flush(&r, t).await;
        }
        assert_eq!(count(&r), 2, "no repeat before 4h");
        t += 300 * S;
        refresh(t - 10 * S);
        flush(&r, t).await;
        assert_eq!(count(&r), 3, "repeat after 4h");
    }

    #[tokio::test]
    async fn resolved_with_and_without_send_resolved() {
        for send_resolved in [true, false] {
            let r = rig_with(CFG, Store::in_memory().unwrap(), send_resolved, 0, true, T0);
            r.am.put_alerts(vec![alert("A", &[], T0, T0 + 3600 * S)], T0)
                .unwrap();
            flush(&r, T0 + 30 * S).await;
            assert_eq!(count(&r), 1);
            // Resolved explicitly.
            r.am.put_alerts(vec![alert("A", &[], T0, T0 + 100 * S)], T0 + 100 * S)
                .unwrap();
            flush(&r, T0 + 330 * S).await;
            let g = lock(&r.got).clone();
            if send_resolved {
                assert_eq!(g.len(), 2);
                assert_eq!(g[1].status, "resolved");
                assert_eq!(g[1].alerts[0].status, "resolved");
            } else {
                assert_eq!(g.len(), 1, "resolved notifications are not sent");
            }
            // The group is gone afterwards, and nothing more is sent.
            flush(&r, T0 + 630 * S).await;
            assert_eq!(count(&r), if send_resolved { 2 } else { 1 });
            assert!(r.am.groups(T0 + 630 * S).is_empty());
        }
    }

    #[tokio::test]
    async fn old_alert_flushes_immediately_and_resolve_timeout() {
        let r = rig_with(CFG, Store::in_memory().unwrap(), true, 0, true, T0);
        // Started long ago (Prometheus sends alerts after `for`): no group_wait.
        r.am.put_alerts(vec![alert("A", &[], T0 - 600 * S, 0)], T0)
            .unwrap();
        flush(&r, T0).await;
        assert_eq!(count(&r), 1);
        // Not refreshed: resolved after resolve_timeout (5m).
        assert_eq!(r.am.alerts(T0 + 299 * S).len(), 1);
        assert!(r.am.alerts(T0 + 300 * S).is_empty());
        flush(&r, T0 + 300 * S).await;
        assert_eq!(count(&r), 2);
        assert_eq!(lock(&r.got)[1].status, "resolved");
    }

    #[tokio::test]
    async fn inhibition_and_silences() {
        let r = rig_with(CFG, Store::in_memory().unwrap(), true, 0, true, T0);
        let crit = alert(
            "Crit",
            &[("severity", "critical"), ("cluster", "a")],
            T0,
            T0 + 3600 * S,
        );
        let warn_a = alert(
            "Warn",
            &[("severity", "warning"), ("cluster", "a")],
            T0,
            T0 + 3600 * S,
        );
        let warn_b = alert(
            "Warn",
            &[("severity", "warning"), ("cluster", "b")],
            T0,
            T0 + 3600 * S,
        );
        r.am.put_alerts(vec![crit.clone(), warn_a.clone(), warn_b], T0)
            .unwrap();
        let views = r.am.alerts(T0 + S);
        let wa = views
            .iter()
            .find(|v| v.alert.labels == warn_a.labels)
            .unwrap();
        assert_eq!(wa.inhibited_by, vec![fingerprint_hex(crit.fingerprint())]);
        assert_eq!(wa.state(), "suppressed");
        assert_eq!(views.iter().filter(|v| v.state() == "active").count(), 2);
        flush(&r, T0 + 30 * S).await;
        {
            let g = lock(&r.got);
            let warn = g
                .iter()
                .find(|n| n.group_labels["alertname"] == "Warn")
                .unwrap();
            assert_eq!(warn.alerts.len(), 1);
            assert_eq!(warn.alerts[0].labels["cluster"], "b");
        }
        // Silence Crit: no more notifications for it while active.
        let sid =
            r.am.set_silence(
                Silence {
                    id: String::new(),
                    matchers: vec![crate::silence::SilenceMatcher {
                        name: "alertname".into(),
                        value: "Crit".into(),
                        is_regex: false,
                        is_equal: true,
                    }],
                    starts_at: T0,
                    ends_at: T0 + 1000 * S,
                    updated_at: 0,
                    created_by: "t".into(),
                    comment: "c".into(),
                },
                T0 + 40 * S,
            )
            .unwrap();
        let v = r.am.alerts(T0 + 50 * S);
        let c = v.iter().find(|v| v.alert.labels == crit.labels).unwrap();
        assert_eq!(c.silenced_by, vec![sid]);
        // A silenced source still inhibits (like Alertmanager).
        let wa = v.iter().find(|v| v.alert.labels == warn_a.labels).unwrap();
        assert_eq!(wa.inhibited_by.len(), 1);
    }

    #[tokio::test]
    async fn retries_then_counts_failures() {
        let r = rig_with(CFG, Store::in_memory().unwrap(), true, 2, true, T0);
        r.am.put_alerts(vec![alert("A", &[], T0, T0 + 3600 * S)], T0)
            .unwrap();
        flush(&r, T0 + 30 * S).await;
        assert_eq!(count(&r), 1, "delivered on the third attempt");
        let m = r.am.metrics_text(T0 + 30 * S);
        assert!(
            m.contains("alertmanager_notifications_total{integration=\"fake\"} 3"),
            "{m}"
        );
        assert!(
            m.contains("alertmanager_notifications_failed_total{integration=\"fake\"} 2"),
            "{m}"
        );
        // The notification log has every attempt, newest first; the stats sum them up.
        let log = r.am.notification_log(10);
        let st: Vec<&str> = log.iter().map(|l| l.status).collect();
        assert_eq!(st, vec!["success", "failed", "failed"]);
        assert_eq!(
            (log[1].error.as_deref(), log[0].error.as_deref()),
            (Some("boom"), None)
        );
        assert_eq!(
            (log[0].receiver.as_str(), log[0].integration.as_str()),
            ("r", "fake")
        );
        assert_eq!((log[0].alerts, log[0].firing, log[0].resolved), (1, 1, 0));
        assert_eq!(r.am.notification_log(1).len(), 1);
        let stats = r.am.receiver_stats();
        assert_eq!(stats.len(), 1);
        assert_eq!((stats[0].attempts, stats[0].failures), (3, 2));
        assert_eq!(stats[0].last_error.as_deref(), Some("boom"));
        assert!(stats[0].last_success >= stats[0].last_error_time);
        // A non-retryable error is not retried, and the group is tried again next interval.
        let r = rig_with(CFG, Store::in_memory().unwrap(), true, 1, false, T0);
        r.am.put_alerts(vec![alert("A", &[], T0, T0 + 3600 * S)], T0)
            .unwrap();
        flush(&r, T0 + 30 * S).await;
        assert_eq!(count(&r), 0);
        assert_eq!(r.am.notification_log(10)[0].status, "gave_up");
        flush(&r, T0 + 330 * S).await;
        assert_eq!(count(&r), 1);
    }

    #[tokio::test]
    async fn mute_and_active_time_intervals() {
        let cfg = "
route:
  receiver: r
  group_by: [alertname]
  routes:
    - matchers: ['team=\"night\"']
      active_time_intervals: [office]
    - matchers: ['team=\"day\"']
      mute_time_intervals: [office]
receivers: [{name: r}]
time_intervals:
  - name: office
    time_intervals: [{times: [{start_time: '09:00', end_time: '17:00'}]}]
";
        // 2024-01-01T10:00:00Z, inside office hours.
        let t = 1_704_103_200_000;
        let r = rig_with(cfg, Store::in_memory().unwrap(), true, 0, true, t);
        r.am.put_alerts(
            vec![
                alert("N", &[("team", "night")], t, t + 86_400 * S),
                alert("D", &[("team", "day")], t, t + 86_400 * S),
            ],
            t,
        )
        .unwrap();
        flush(&r, t + 30 * S).await;
        {
            let g = lock(&r.got);
            assert_eq!(g.len(), 1);
            assert_eq!(g[0].group_labels["alertname"], "N");
        }
        // 18:00: the muted one goes out, the active-only one stays quiet.
        flush(&r, t + 8 * 3600 * S).await;
        let g = lock(&r.got);
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].group_labels["alertname"], "D");
    }

    #[tokio::test]
    async fn restart_in_group_wait_and_after_send() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.db");
        let long = T0 + 3600 * S;
        {
            let r = rig_with(CFG, Store::open(&path).unwrap(), true, 0, true, T0);
            r.am.put_alerts(vec![alert("A", &[], T0, long)], T0)
                .unwrap();
            flush(&r, T0 + 10 * S).await;
            assert_eq!(count(&r), 0);
        } // "crash" in the middle of group_wait
        let r = rig_with(CFG, Store::open(&path).unwrap(), true, 0, true, T0 + 20 * S);
        assert_eq!(r.am.alerts(T0 + 20 * S).len(), 1, "alert restored");
        flush(&r, T0 + 29 * S).await;
        assert_eq!(count(&r), 0);
        flush(&r, T0 + 30 * S).await;
        assert_eq!(
            count(&r),
            1,
            "pending notification not lost, original group_wait kept"
        );
        drop(r);
        // Restart after the notification: no duplicate.
        let r = rig_with(CFG, Store::open(&path).unwrap(), true, 0, true, T0 + 40 * S);
        flush(&r, T0 + 40 * S).await;
        flush(&r, T0 + 400 * S).await;
        assert_eq!(count(&r), 0, "no duplicate after restart");
        // Silences survive a restart too.
        let sid =
            r.am.set_silence(
                Silence {
                    id: String::new(),
                    matchers: vec![crate::silence::SilenceMatcher {
                        name: "alertname".into(),
                        value: "A".into(),
                        is_regex: false,
                        is_equal: true,
                    }],
                    starts_at: T0,
                    ends_at: long,
                    updated_at: 0,
                    created_by: "t".into(),
                    comment: "c".into(),
                },
                T0 + 400 * S,
            )
            .unwrap();
        drop(r);
        let r = rig_with(
            CFG,
            Store::open(&path).unwrap(),
            true,
            0,
            true,
            T0 + 500 * S,
        );
        assert_eq!(r.am.silence(&sid).unwrap().created_by, "t");
        // Resolving after the restart sends exactly one resolved notification.
        r.am.put_alerts(vec![alert("A", &[], T0, T0 + 600 * S)], T0 + 600 * S)
            .unwrap();
        assert_eq!(r.am.silences().len(), 1);
        r.am.expire_silence(&sid, T0 + 600 * S).unwrap();
        flush(&r, T0 + 700 * S).await;
        flush(&r, T0 + 1100 * S).await;
        let g = lock(&r.got);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].status, "resolved");
    }

    #[test]
    fn dedup_rule() {
        let e = NflogEntry {
            firing: vec![1, 2],
            resolved: vec![],
            ts: 1000,
        };
        let set = |v: &[u64]| v.iter().copied().collect::<HashSet<u64>>();
        assert!(needs_update(None, &set(&[1]), &set(&[]), true, 10, 0));
        assert!(!needs_update(None, &set(&[]), &set(&[1]), true, 10, 0));
        assert!(needs_update(
            Some(&e),
            &set(&[1, 3]),
            &set(&[]),
            true,
            10_000,
            1001
        ));
        assert!(!needs_update(
            Some(&e),
            &set(&[1]),
            &set(&[]),
            false,
            10_000,
            1001
        ));
        assert!(needs_update(
            Some(&e),
            &set(&[1]),
            &set(&[2]),
            true,
            10_000,
            1001
        ));
        assert!(needs_update(
            Some(&e),
            &set(&[]),
            &set(&[1, 2]),
            false,
            10_000,
            1001
        ));
        assert!(needs_update(
            Some(&e),
            &set(&[1, 2]),
            &set(&[]),
            false,
            10,
            1011
        ));
    }
}
