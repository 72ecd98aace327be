//! Runs rule groups on their schedules: one task per group, evaluation times aligned like
//! Prometheus (a per-group offset from the group's hash, so many groups do not all run at the
//! same instant), missed iterations skipped, `for` state restored after the first evaluation,
//! and a reload that keeps the state of unchanged rules and marks series of removed groups stale.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_model::time::now_ms;
use sextant_model::Labels;

use crate::file::{load_file, GroupDef, RuleFileError};
use crate::group::Group;
use crate::rule::{EvalCtx, NotifyAlert};

/// Receives alerts to deliver (the built-in alert manager or an external Alertmanager).
pub trait Notifier: Send + Sync {
    fn notify(&self, alerts: Vec<NotifyAlert>);
}

/// Settings shared by all groups.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// Default evaluation interval (ms) of groups that set none (`global.evaluation_interval`).
    pub evaluation_interval: i64,
    /// Default `query_offset` (ms) (`global.rule_query_offset`).
    pub query_offset: i64,
    /// Minimum time between re-sends of a still-firing alert (ms).
    pub resend_delay: i64,
    /// How far back `for` state is restored from after a restart (ms).
    pub outage_tolerance: i64,
    /// Minimum `for` time left to an alert restored after a restart (ms).
    pub for_grace_period: i64,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            evaluation_interval: 60_000,
            query_offset: 0,
            resend_delay: 60_000,
            outage_tolerance: crate::group::OUTAGE_TOLERANCE_MS,
            for_grace_period: crate::group::FOR_GRACE_PERIOD_MS,
        }
    }
}

/// The rule manager.
pub struct Manager {
    ctx: EvalCtx,
    opts: ManagerOptions,
    groups: Mutex<Vec<Arc<Mutex<Group>>>>,
    notifier: Mutex<Option<Arc<dyn Notifier>>>,
    generation: tokio::sync::watch::Sender<u64>,
    files: Mutex<Vec<String>>,
}

/// Expands rule-file patterns (`rules/*.yml`; `*`, `?` and `[...]` in the last path element)
/// into existing files, sorted; a pattern without wildcards is returned as is.
pub fn expand_globs(patterns: &[String], base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in patterns {
        let path = if Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            base.join(p)
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !name.contains(['*', '?', '[']) {
            out.push(path);
            continue;
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| glob_match(&name, &e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        found.sort();
        out.extend(found);
    }
    out
}

/// Shell-style match of one path element.
pub fn glob_match(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = s.chars().collect();
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|&c| c == ']') else {
                    return !t.is_empty() && t[0] == '[' && go(&p[1..], &t[1..]);
                };
                let Some(&c) = t.first() else { return false };
                let set = &p[1..end];
                let (neg, set) = match set.first() {
                    Some('!') | Some('^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[end + 1..], &t[1..])
            }
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    go(&p, &t)
}

/// Loads and validates rule files (after glob expansion); all errors of all files together.
pub fn load_files(files: &[PathBuf]) -> Result<Vec<GroupDef>, Vec<RuleFileError>> {
    let mut defs = Vec::new();
    let mut errs = Vec::new();
    for f in files {
        match load_file(f) {
            Ok(g) => defs.extend(g),
            Err(e) => errs.extend(e),
        }
    }
    if errs.is_empty() {
        Ok(defs)
    } else {
        Err(errs)
    }
}

fn group_hash(g: &Group) -> u64 {
    Labels::from_pairs([("name", g.name.as_str()), ("file", g.file.as_str())]).stable_hash()
}

/// The first evaluation time after `now`, aligned like Prometheus' `EvalTimestamp`.
pub fn first_eval_time(now: i64, interval: i64, hash: u64) -> i64 {
    let offset = (hash % interval as u64) as i64;
    let adj = now - offset;
    let base = adj - adj.rem_euclid(interval);
    base + offset + interval
}

impl Manager {
    pub fn new(ctx: EvalCtx, opts: ManagerOptions) -> Arc<Self> {
        let (tx, _rx) = tokio::sync::watch::channel(0u64);
        Arc::new(Manager {
            ctx,
            opts,
            groups: Mutex::new(Vec::new()),
            notifier: Mutex::new(None),
            generation: tx,
            files: Mutex::new(Vec::new()),
        })
    }

    /// Where firing and resolved alerts go.
    pub fn set_notifier(&self, n: Option<Arc<dyn Notifier>>) {
        *self.notifier.lock().unwrap_or_else(|e| e.into_inner()) = n;
    }

    /// The groups, for the API.
    pub fn groups(&self) -> Vec<Arc<Mutex<Group>>> {
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Rule files currently loaded.
    pub fn files(&self) -> Vec<String> {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the running groups with `defs` (must be called inside a tokio runtime). State of
    /// rules that stay is kept; series of groups that disappear are marked stale.
    pub fn update(self: &Arc<Self>, defs: Vec<GroupDef>, files: Vec<String>) {
        let mut new: Vec<Group> = defs
            .into_iter()
            .map(|d| Group::new(d, self.opts.evaluation_interval, self.opts.query_offset))
            .collect();
        let old = std::mem::take(&mut *self.groups.lock().unwrap_or_else(|e| e.into_inner()));
        let mut old_by_key: HashMap<(String, String), Arc<Mutex<Group>>> = old
            .into_iter()
            .map(|g| {
                let k = g.lock().unwrap_or_else(|e| e.into_inner()).key();
                (k, g)
            })
            .collect();
        // Stop the old tasks before touching their state.
        let gen = *self.generation.borrow() + 1;
        self.generation.send_replace(gen);
        for g in new.iter_mut() {
            if let Some(o) = old_by_key.remove(&g.key()) {
                g.copy_state(&mut o.lock().unwrap_or_else(|e| e.into_inner()));
            }
        }
        let now = now_ms();
        for (_, o) in old_by_key {
            let stale = o.lock().unwrap_or_else(|e| e.into_inner()).stale_all(now);
            if !stale.is_empty() {
                if let Err(e) = self.ctx.storage.append(&stale) {
                    tracing::warn!(error = %e, "writing staleness markers of removed rule groups failed");
                }
            }
        }
        let new: Vec<Arc<Mutex<Group>>> =
            new.into_iter().map(|g| Arc::new(Mutex::new(g))).collect();
        *self.groups.lock().unwrap_or_else(|e| e.into_inner()) = new.clone();
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = files;
        for g in new {
            let me = self.clone();
            let rx = self.generation.subscribe();
            tokio::spawn(async move { me.run_group(g, gen, rx).await });
        }
    }

    /// Stops all groups.
    pub fn stop(&self) {
        let gen = *self.generation.borrow() + 1;
        self.generation.send_replace(gen);
    }

    async fn run_group(
        self: Arc<Self>,
        g: Arc<Mutex<Group>>,
        gen: u64,
        mut rx: tokio::sync::watch::Receiver<u64>,
    ) {
        let (interval, hash) = {
            let gg = g.lock().unwrap_or_else(|e| e.into_inner());
            (gg.interval, group_hash(&gg))
        };
        let mut next = first_eval_time(now_ms(), interval, hash);
        loop {
            let wait = (next - now_ms()).max(0) as u64;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = rx.changed() => {}
            }
            if *rx.borrow() != gen {
                return;
            }
            if now_ms() < next {
                continue;
            }
            let ts = next;
            let me = self.clone();
            let g2 = g.clone();
            let r = tokio::task::spawn_blocking(move || me.eval_once(&g2, ts)).await;
            if let Err(e) = r {
                tracing::error!(error = %e, "rule group evaluation panicked");
            }
            next += interval;
            let now = now_ms();
            if next <= now {
                let missed = (now - next) / interval + 1;
                tracing::warn!(
                    missed,
                    "rule group evaluation is behind; skipping iterations"
                );
                next += missed * interval;
            }
        }
    }

    /// One evaluation of a group at `ts`, plus restore and notification.
    pub fn eval_once(&self, g: &Mutex<Group>, ts: i64) {
        let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
        g.eval(&self.ctx, ts);
        if g.should_restore {
            g.restore_for_state(
                &self.ctx,
                now_ms(),
                self.opts.outage_tolerance,
                self.opts.for_grace_period,
            );
        }
        let notifier = self
            .notifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(n) = notifier {
            let interval = g.interval;
            let mut all = Vec::new();
            for r in g.rules.iter_mut().filter(|r| r.is_alerting()) {
                let url = format!(
                    "{}/graph?g0.expr={}&g0.tab=1",
                    self.ctx.external_url.trim_end_matches('/'),
                    gotmpl::url_encode(&r.def.expr_text)
                );
                let mut alerts = r.alerts_to_send(ts, self.opts.resend_delay, interval, &url);
                for a in alerts.iter_mut() {
                    for l in self.ctx.external_labels.iter() {
                        if a.labels.get(&l.name).is_none() {
                            a.labels.set(&l.name, &l.value);
                        }
                    }
                }
                all.extend(alerts);
            }
            if !all.is_empty() {
                n.notify(all);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.yml", "a.yml"));
        assert!(!glob_match("*.yml", "a.yaml"));
        assert!(glob_match("r?.y[am]l", "r1.yml"));
        assert!(glob_match("[!a]*", "b"));
        assert!(!glob_match("[!a]*", "a"));
    }

    #[test]
    fn eval_times_are_aligned_and_in_the_future() {
        let t = first_eval_time(1_000_000, 15_000, 7);
        assert!(t > 1_000_000 && t <= 1_015_000);
        assert_eq!((t - 7) % 15_000, 0);
    }
}
