//! The alert as the alert manager keeps it, with Alertmanager's rules for filling in missing
//! times (`startsAt` = now, `endsAt` = now + `resolve_timeout`) and for merging a re-sent alert
//! into the stored one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::matchers::fingerprint;

/// One alert (times in Unix milliseconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub updated_at: i64,
    /// `endsAt` was not given and is `resolve_timeout` after the last update.
    pub timeout: bool,
    pub generator_url: String,
}

/// Why an incoming alert was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct AlertError(pub String);

impl Alert {
    /// Alertmanager's fingerprint of the labels.
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }

    /// Resolved at `now`?
    pub fn resolved_at(&self, now: i64) -> bool {
        self.ends_at <= now
    }

    /// Fills in missing times the way Alertmanager's API does (`starts_at`/`ends_at` of 0 mean
    /// "not given") and validates the alert.
    pub fn normalize(&mut self, now: i64, resolve_timeout_ms: i64) -> Result<(), AlertError> {
        if self.labels.is_empty() {
            return Err(AlertError("at least one label pair required".into()));
        }
        for (k, v) in &self.labels {
            if !sextant_model::labels::is_valid_label_name(k) {
                return Err(AlertError(format!("invalid label set: invalid name {k:?}")));
            }
            if v.is_empty() {
                return Err(AlertError(format!(
                    "invalid label set: empty value for {k:?}"
                )));
            }
        }
        for k in self.annotations.keys() {
            if !sextant_model::labels::is_valid_label_name(k) {
                return Err(AlertError(format!(
                    "invalid annotations: invalid name {k:?}"
                )));
            }
        }
        self.updated_at = now;
        if self.starts_at == 0 {
            self.starts_at = if self.ends_at == 0 { now } else { self.ends_at };
        }
        if self.ends_at == 0 {
            self.timeout = true;
            self.ends_at = now.saturating_add(resolve_timeout_ms);
        } else if self.ends_at < self.starts_at {
            return Err(AlertError("start time must be before end time".into()));
        }
        Ok(())
    }

    /// Alertmanager's `Alert.Merge`: combines the stored alert with a newer copy.
    pub fn merge(&self, o: &Alert) -> Alert {
        if o.updated_at < self.updated_at {
            return o.merge(self);
        }
        let mut res = o.clone();
        if self.starts_at < o.starts_at {
            res.starts_at = self.starts_at;
        }
        // "Now" is the update time of the newer copy.
        let now = o.updated_at;
        if o.ends_at <= now {
            let a_resolved = self.ends_at <= now;
            if a_resolved && self.ends_at > o.ends_at {
                res.ends_at = self.ends_at;
            }
        } else if self.ends_at > o.ends_at && !self.timeout {
            res.ends_at = self.ends_at;
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(starts: i64, ends: i64) -> Alert {
        Alert {
            labels: [("alertname".to_string(), "X".to_string())].into(),
            annotations: BTreeMap::new(),
            starts_at: starts,
            ends_at: ends,
            updated_at: 0,
            timeout: false,
            generator_url: String::new(),
        }
    }

    #[test]
    fn resolve_timeout_and_validation() {
        let mut a = alert(0, 0);
        a.normalize(1000, 300_000).unwrap();
        assert_eq!((a.starts_at, a.ends_at, a.timeout), (1000, 301_000, true));
        assert!(!a.resolved_at(300_999));
        assert!(a.resolved_at(301_000));
        let mut a = alert(5000, 1000);
        assert!(a.normalize(1000, 1).is_err());
        let mut a = alert(0, 0);
        a.labels.clear();
        assert!(a.normalize(1, 1).is_err());
        let mut a = alert(0, 0);
        a.labels.insert("bad-name".into(), "x".into());
        assert!(a.normalize(1, 1).is_err());
    }

    #[test]
    fn merge_keeps_earliest_start_and_explicit_end() {
        let mut old = alert(1000, 0);
        old.normalize(1000, 300_000).unwrap();
        let mut new = alert(2000, 0);
        new.normalize(2000, 300_000).unwrap();
        let m = old.merge(&new);
        assert_eq!(m.starts_at, 1000);
        assert_eq!(m.ends_at, 302_000);
        // An explicit resolve wins over a timeout.
        let mut res = alert(2000, 2500);
        res.normalize(3000, 300_000).unwrap();
        let m = old.merge(&res);
        assert_eq!(m.ends_at, 2500);
        assert_eq!(m.starts_at, 1000);
    }
}
