//! One rule's evaluation: recording rules turn a query result into new series; alerting rules
//! keep the state machine of their alerts (inactive → pending → firing → resolved), exactly as
//! Prometheus' `rules/alerting.go` does, including `for`, `keep_firing_for`, `limit` and the
//! `ALERTS` / `ALERTS_FOR_STATE` series.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sextant_model::{FloatHistogram, Labels, METRIC_NAME};
use sextant_promql::{Engine, Querier, Value};

use crate::file::{RuleDef, RuleKind};
use crate::template::{expand, QueryFn, TemplateData};

/// How long a resolved alert is kept (and re-sent) after it resolved.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Storage as rules see it: a fresh querier per rule (so a rule sees what the previous rule of
/// its group wrote) and a way to append results.
pub trait RuleStorage: Send + Sync {
    fn querier(&self) -> Box<dyn Querier + '_>;
    /// Appends and commits samples; returns once they are visible to queries.
    fn append(&self, samples: &[OutSample]) -> Result<(), String>;
}

/// A sample a rule produced.
#[derive(Clone, Debug, PartialEq)]
pub struct OutSample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
    pub h: Option<FloatHistogram>,
}

/// What rule evaluation needs besides the rule.
#[derive(Clone)]
pub struct EvalCtx {
    pub engine: Arc<Engine>,
    pub storage: Arc<dyn RuleStorage>,
    pub external_labels: Labels,
    pub external_url: String,
}

impl EvalCtx {
    /// Instant query returning a vector (a scalar becomes one sample without labels).
    pub fn query_vector(
        &self,
        expr: &sextant_promql::Expr,
        t: i64,
    ) -> Result<Vec<OutSample>, String> {
        let q = self.storage.querier();
        let res = self
            .engine
            .instant_expr(&*q, expr, None, t)
            .map_err(|e| e.to_string())?;
        match res.value {
            Value::Vector(vs) => Ok(vs
                .into_iter()
                .map(|s| OutSample {
                    labels: s.labels,
                    t,
                    v: s.f,
                    h: s.h.map(|h| *h),
                })
                .collect()),
            Value::Scalar { v, .. } => Ok(vec![OutSample {
                labels: Labels::empty(),
                t,
                v,
                h: None,
            }]),
            other => Err(format!(
                "rule result is not a vector or scalar: {}",
                other.type_name()
            )),
        }
    }

    fn query_fn(&self, t: i64) -> QueryFn {
        let ctx = self.clone();
        Arc::new(move |q: &str| {
            let e = sextant_promql::parse(q).map_err(|e| e.to_string())?;
            Ok(ctx
                .query_vector(&e, t)?
                .into_iter()
                .map(|s| (s.labels, s.v))
                .collect())
        })
    }
}

/// Rule health as the API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// State of an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule. Times are ms since the epoch; 0 = unset.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: i64,
    pub resolved_at: i64,
    pub last_sent_at: i64,
    pub valid_until: i64,
    pub keep_firing_since: i64,
}

impl Alert {
    fn needs_sending(&self, ts: i64, resend_delay: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if self.resolved_at > self.last_sent_at {
            return true;
        }
        self.last_sent_at + resend_delay < ts
    }
}

/// An alert as handed to a notifier (Alertmanager's API shape).
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyAlert {
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub starts_at: i64,
    /// When the alert resolved, or until when it is valid if still firing.
    pub ends_at: i64,
    pub generator_url: String,
}

/// Runtime of one rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub def: RuleDef,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_eval: i64,
    pub eval_seconds: f64,
    /// Alerting rules: active alerts by label-set hash.
    pub active: HashMap<u64, Alert>,
    /// Alerting rules: `ALERTS` samples are written only once the `for` state was restored.
    pub restored: bool,
}

impl Rule {
    pub fn new(def: RuleDef) -> Self {
        Rule {
            def,
            health: Health::Unknown,
            last_error: None,
            last_eval: 0,
            eval_seconds: 0.0,
            active: HashMap::new(),
            restored: false,
        }
    }

    pub fn is_alerting(&self) -> bool {
        self.def.kind == RuleKind::Alerting
    }

    /// Evaluates the rule at `ts` (querying at `ts - offset`); returns the samples to write.
    pub fn eval(
        &mut self,
        ctx: &EvalCtx,
        ts: i64,
        offset: i64,
        limit: usize,
    ) -> Result<Vec<OutSample>, String> {
        match self.def.kind {
            RuleKind::Recording => self.eval_recording(ctx, ts - offset, limit),
            RuleKind::Alerting => self.eval_alerting(ctx, ts, offset, limit),
        }
    }

    fn eval_recording(
        &mut self,
        ctx: &EvalCtx,
        t: i64,
        limit: usize,
    ) -> Result<Vec<OutSample>, String> {
        let mut out = ctx.query_vector(&self.def.expr, t)?;
        let mut seen = HashSet::with_capacity(out.len());
        for s in &mut out {
            s.labels.set(METRIC_NAME, &self.def.name);
            for (k, v) in &self.def.labels {
                s.labels.set(k, v);
            }
            if !seen.insert(s.labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
        }
        if limit > 0 && out.len() > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                out.len()
            ));
        }
        Ok(out)
    }

    fn eval_alerting(
        &mut self,
        ctx: &EvalCtx,
        ts: i64,
        offset: i64,
        limit: usize,
    ) -> Result<Vec<OutSample>, String> {
        let qt = ts - offset;
        let res = ctx.query_vector(&self.def.expr, qt)?;
        let qf = ctx.query_fn(qt);
        let mut fresh: HashMap<u64, Alert> = HashMap::with_capacity(res.len());
        for s in res {
            let data = TemplateData {
                labels: s.labels.clone(),
                external_labels: ctx.external_labels.clone(),
                external_url: ctx.external_url.clone(),
                value: s.v,
            };
            let mut labels = s.labels.clone();
            labels.set(METRIC_NAME, "");
            for (k, v) in &self.def.labels {
                let name = format!("__alert_{}", self.def.name);
                labels.set(k, &expand(&name, v, &data, Some(qf.clone())));
            }
            labels.set("alertname", &self.def.name);
            let annotations = self
                .def
                .annotations
                .iter()
                .map(|(k, v)| {
                    let name = format!("__alert_{}", self.def.name);
                    (k.clone(), expand(&name, v, &data, Some(qf.clone())))
                })
                .collect();
            let h = labels.stable_hash();
            if fresh.contains_key(&h) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
            fresh.insert(
                h,
                Alert {
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    value: s.v,
                    active_at: ts,
                    fired_at: 0,
                    resolved_at: 0,
                    last_sent_at: 0,
                    valid_until: 0,
                    keep_firing_since: 0,
                },
            );
        }
        let present: HashSet<u64> = fresh.keys().copied().collect();
        for (h, a) in fresh {
            match self.active.get_mut(&h) {
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(h, a);
                }
            }
        }
        let hold = self.def.hold;
        let kff = self.def.keep_firing_for;
        let mut out = Vec::new();
        let mut active_pending = 0usize;
        let mut remove = Vec::new();
        for (h, a) in self.active.iter_mut() {
            if !present.contains(h) {
                let mut keep = false;
                if a.state == AlertState::Firing && kff > 0 {
                    if a.keep_firing_since == 0 {
                        a.keep_firing_since = ts;
                    }
                    if ts - a.keep_firing_since < kff {
                        keep = true;
                    }
                }
                if a.state == AlertState::Pending
                    || (a.resolved_at != 0 && ts - a.resolved_at > RESOLVED_RETENTION_MS)
                {
                    remove.push(*h);
                }
                if a.state != AlertState::Inactive && !keep {
                    a.state = AlertState::Inactive;
                    a.resolved_at = ts;
                }
                if !keep {
                    continue;
                }
            } else {
                a.keep_firing_since = 0;
            }
            active_pending += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = ts;
            }
            if self.restored {
                out.push(alerts_sample(a, qt));
                out.push(for_state_sample(a, qt));
            }
        }
        for h in remove {
            self.active.remove(&h);
        }
        if limit > 0 && active_pending > limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {limit} with {active_pending} alerts"
            ));
        }
        Ok(out)
    }

    /// Alerts that must go to the notifier now (Prometheus' `sendAlerts`).
    pub fn alerts_to_send(
        &mut self,
        ts: i64,
        resend_delay: i64,
        interval: i64,
        generator_url: &str,
    ) -> Vec<NotifyAlert> {
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if !a.needs_sending(ts, resend_delay) {
                continue;
            }
            a.last_sent_at = ts;
            a.valid_until = ts + 4 * resend_delay.max(interval);
            out.push(NotifyAlert {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.fired_at,
                ends_at: if a.resolved_at != 0 {
                    a.resolved_at
                } else {
                    a.valid_until
                },
                generator_url: generator_url.to_string(),
            });
        }
        out
    }

    /// Active (pending or firing) alerts, sorted by labels.
    pub fn active_alerts(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self
            .active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// The rule's state for the API: the highest state of its alerts.
    pub fn state(&self) -> AlertState {
        self.active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }
}

fn alerts_sample(a: &Alert, t: i64) -> OutSample {
    let mut l = a.labels.clone();
    l.set(METRIC_NAME, "ALERTS");
    l.set("alertstate", a.state.as_str());
    OutSample {
        labels: l,
        t,
        v: 1.0,
        h: None,
    }
}

fn for_state_sample(a: &Alert, t: i64) -> OutSample {
    let mut l = a.labels.clone();
    l.set(METRIC_NAME, "ALERTS_FOR_STATE");
    OutSample {
        labels: l,
        t,
        v: (a.active_at.div_euclid(1000)) as f64,
        h: None,
    }
}
