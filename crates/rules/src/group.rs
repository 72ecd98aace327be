//! A rule group: rules evaluated in order at one timestamp, each seeing what the previous ones
//! wrote; series a rule stops producing get a staleness marker; alert `for` state is restored
//! from `ALERTS_FOR_STATE` after a restart (Prometheus' `RestoreForState`).

use std::collections::HashSet;
use std::time::Instant;

use sextant_model::{is_stale_nan, Labels, Matcher, STALE_NAN};

use crate::file::GroupDef;
use crate::rule::{EvalCtx, Health, OutSample, Rule};

/// How far back `ALERTS_FOR_STATE` is searched when restoring (`--rules.alert.for-outage-tolerance`).
pub const OUTAGE_TOLERANCE_MS: i64 = 3600 * 1000;
/// Minimum `for` left after a restore (`--rules.alert.for-grace-period`).
pub const FOR_GRACE_PERIOD_MS: i64 = 10 * 60 * 1000;

/// One group with its rules' runtime state.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub file: String,
    pub interval: i64,
    pub query_offset: i64,
    pub limit: usize,
    pub rules: Vec<Rule>,
    /// Series each rule wrote at the previous evaluation.
    seen: Vec<HashSet<Labels>>,
    pub last_eval: i64,
    pub eval_seconds: f64,
    /// Rule evaluations run (all rules of all cycles) and how many of them failed.
    pub evaluations: u64,
    pub failures: u64,
    pub(crate) should_restore: bool,
}

impl Group {
    /// Builds a group; `interval`/`offset` are the defaults for groups that set none.
    pub fn new(def: GroupDef, default_interval: i64, default_offset: i64) -> Self {
        let n = def.rules.len();
        Group {
            name: def.name,
            file: def.file,
            interval: def.interval.unwrap_or(default_interval).max(1),
            query_offset: def.query_offset.unwrap_or(default_offset),
            limit: def.limit,
            rules: def.rules.into_iter().map(Rule::new).collect(),
            seen: vec![HashSet::new(); n],
            last_eval: 0,
            eval_seconds: 0.0,
            evaluations: 0,
            failures: 0,
            should_restore: true,
        }
    }

    /// Identity across reloads.
    pub fn key(&self) -> (String, String) {
        (self.file.clone(), self.name.clone())
    }

    /// Takes over the state of the same rules from the group this one replaces on reload, so
    /// pending alerts keep their `for` progress and no spurious stale markers are written.
    pub fn copy_state(&mut self, old: &mut Group) {
        self.last_eval = old.last_eval;
        self.eval_seconds = old.eval_seconds;
        self.evaluations = old.evaluations;
        self.failures = old.failures;
        self.should_restore = old.should_restore;
        let mut used = vec![false; old.rules.len()];
        for (i, r) in self.rules.iter_mut().enumerate() {
            let found = old.rules.iter().enumerate().position(|(j, o)| {
                !used[j]
                    && o.def.kind == r.def.kind
                    && o.def.name == r.def.name
                    && o.def.labels == r.def.labels
            });
            let Some(j) = found else { continue };
            used[j] = true;
            let o = &mut old.rules[j];
            r.health = o.health;
            r.last_error = o.last_error.clone();
            r.last_eval = o.last_eval;
            r.eval_seconds = o.eval_seconds;
            r.restored = o.restored;
            r.active = std::mem::take(&mut o.active);
            self.seen[i] = std::mem::take(&mut old.seen[j]);
        }
    }

    /// Staleness markers for everything the group wrote last (when it is removed on reload).
    pub fn stale_all(&mut self, ts: i64) -> Vec<OutSample> {
        self.seen
            .iter_mut()
            .flat_map(|s| s.drain())
            .map(|labels| OutSample {
                labels,
                t: ts,
                v: STALE_NAN,
                h: None,
            })
            .collect()
    }

    /// Evaluates every rule at `ts` and writes the results through `ctx.storage`.
    pub fn eval(&mut self, ctx: &EvalCtx, ts: i64) {
        let t0 = Instant::now();
        let qt = ts - self.query_offset;
        for (i, rule) in self.rules.iter_mut().enumerate() {
            let r0 = Instant::now();
            rule.last_eval = ts;
            let res = rule.eval(ctx, ts, self.query_offset, self.limit);
            let out = match res {
                Ok(out) => out,
                Err(e) => {
                    tracing::warn!(group = %self.name, rule = %rule.def.name, error = %e, "rule evaluation failed");
                    rule.health = Health::Err;
                    rule.last_error = Some(e);
                    rule.eval_seconds = r0.elapsed().as_secs_f64();
                    continue;
                }
            };
            let mut now: HashSet<Labels> = HashSet::with_capacity(out.len());
            for s in &out {
                if !is_stale_nan(s.v) {
                    now.insert(s.labels.clone());
                }
            }
            let mut batch = out;
            for l in self.seen[i].iter() {
                if !now.contains(l) {
                    batch.push(OutSample {
                        labels: l.clone(),
                        t: qt,
                        v: STALE_NAN,
                        h: None,
                    });
                }
            }
            self.seen[i] = now;
            match ctx.storage.append(&batch) {
                Ok(()) => {
                    rule.health = Health::Ok;
                    rule.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(group = %self.name, rule = %rule.def.name, error = %e, "writing rule results failed");
                    rule.health = Health::Err;
                    rule.last_error = Some(e);
                }
            }
            rule.eval_seconds = r0.elapsed().as_secs_f64();
        }
        self.evaluations += self.rules.len() as u64;
        self.failures += self
            .rules
            .iter()
            .filter(|r| r.last_eval == ts && r.health == Health::Err)
            .count() as u64;
        self.last_eval = ts;
        self.eval_seconds = t0.elapsed().as_secs_f64();
    }

    /// Restores `for` state of pending/firing alerts from `ALERTS_FOR_STATE` and marks every
    /// alerting rule restored (so `ALERTS` series are written from now on).
    pub fn restore_for_state(&mut self, ctx: &EvalCtx, ts: i64, outage_tolerance: i64, grace: i64) {
        let mint = ts - outage_tolerance;
        for rule in self.rules.iter_mut().filter(|r| r.is_alerting()) {
            if rule.def.hold > 0 && !rule.active.is_empty() {
                let mut ms = vec![
                    Matcher::equal("__name__", "ALERTS_FOR_STATE"),
                    Matcher::equal("alertname", rule.def.name.as_str()),
                ];
                for (k, v) in &rule.def.labels {
                    if !v.contains("{{") {
                        ms.push(Matcher::equal(k.as_str(), v.as_str()));
                    }
                }
                let q = ctx.storage.querier();
                match q.select(&ms, mint, ts) {
                    Ok(series) => {
                        for a in rule.active.values_mut() {
                            let Some(s) = series.iter().find(|s| {
                                let mut l = s.labels.clone();
                                l.set("__name__", "");
                                l == a.labels
                            }) else {
                                continue;
                            };
                            let Some(last) = s.floats.iter().rev().find(|p| !is_stale_nan(p.v))
                            else {
                                continue;
                            };
                            let down_at = last.t;
                            let mut restored = (last.v * 1000.0) as i64;
                            let remaining = rule.def.hold - (down_at - restored);
                            if remaining <= 0 {
                                // It had already fired before the outage.
                            } else if remaining < grace {
                                restored = ts + grace - rule.def.hold;
                            } else {
                                restored += ts - down_at;
                            }
                            a.active_at = restored;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(rule = %rule.def.name, error = %e, "restoring alert state failed")
                    }
                }
            }
            rule.restored = true;
        }
        self.should_restore = false;
    }
}
