//! Silences with Alertmanager's semantics: a silence mutes every alert its matchers select
//! while it is active (`startsAt` ≤ now < `endsAt`). Updating an active silence in place is
//! allowed only for changes that do not rewrite history (same matchers and start, end not in
//! the past); anything else expires the old silence and creates a new one with a new id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sextant_model::matcher::{MatchOp, Matcher};

/// One matcher of a silence, as in the v2 API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    /// Absent in old clients; `true` then.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    fn compile(&self) -> Result<Matcher, SilenceError> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        if self.name.is_empty() {
            return Err(SilenceError::Invalid(
                "invalid label matcher: empty name".into(),
            ));
        }
        Matcher::new(op, self.name.clone(), self.value.clone())
            .map_err(|e| SilenceError::Invalid(format!("invalid label matcher: {e}")))
    }
}

/// A silence (times in Unix milliseconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub comment: String,
}

/// `pending`, `active` or `expired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    /// The state at `now`.
    pub fn state(&self, now: i64) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }
}

/// Why a silence operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SilenceError {
    #[error("silence not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("silence {0} already expired")]
    AlreadyExpired(String),
    /// Creating one more would exceed `max_silences` (Alertmanager's `--silences.max-silences`,
    /// counting active and pending silences).
    #[error("exceeded maximum number of silences: {count} (limit: {limit})")]
    TooMany { count: usize, limit: usize },
}

/// All silences, with compiled matchers.
#[derive(Default)]
pub struct Silences {
    map: BTreeMap<String, (Silence, Vec<Matcher>)>,
}

/// A random UUID (version 4), without a dependency: std's randomly keyed hasher is the entropy.
pub fn new_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut b = [0u8; 16];
    for half in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_usize(half);
        b[half * 8..half * 8 + 8].copy_from_slice(&h.finish().to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn validate(s: &Silence) -> Result<Vec<Matcher>, SilenceError> {
    if s.matchers.is_empty() {
        return Err(SilenceError::Invalid(
            "at least one matcher required".into(),
        ));
    }
    let ms = s
        .matchers
        .iter()
        .map(SilenceMatcher::compile)
        .collect::<Result<Vec<_>, _>>()?;
    if ms.iter().all(|m| m.matches_empty()) {
        return Err(SilenceError::Invalid(
            "at least one matcher must not match the empty string".into(),
        ));
    }
    if s.ends_at <= s.starts_at {
        return Err(SilenceError::Invalid(
            "start time must be before end time".into(),
        ));
    }
    Ok(ms)
}

impl Silences {
    /// Loads stored silences (invalid ones are skipped with a warning).
    pub fn from_stored(list: Vec<Silence>) -> Silences {
        let mut map = BTreeMap::new();
        for s in list {
            match validate(&s) {
                Ok(ms) => {
                    map.insert(s.id.clone(), (s, ms));
                }
                Err(e) => tracing::warn!(id = %s.id, error = %e, "skipping invalid stored silence"),
            }
        }
        Silences { map }
    }

    /// Creates or updates a silence (Alertmanager's `Set`); returns the silences that changed
    /// (to persist) — the new or updated one last.
    pub fn set(&mut self, s: Silence, now: i64) -> Result<Vec<Silence>, SilenceError> {
        self.set_limited(s, now, 0)
    }

    /// Active and pending silences.
    pub fn count_unexpired(&self, now: i64) -> usize {
        self.map
            .values()
            .filter(|(s, _)| s.state(now) != SilenceState::Expired)
            .count()
    }

    /// [`set`](Self::set) refusing to create a silence beyond `max` active and pending ones
    /// (0 = unlimited); updates in place and replacements of an unexpired silence still pass.
    pub fn set_limited(
        &mut self,
        mut s: Silence,
        now: i64,
        max: usize,
    ) -> Result<Vec<Silence>, SilenceError> {
        if s.ends_at < now {
            return Err(SilenceError::Invalid(
                "end time can't be in the past".into(),
            ));
        }
        let ms = validate(&s)?;
        let mut changed = Vec::new();
        if !s.id.is_empty() {
            let (prev, _) = self.map.get(&s.id).ok_or(SilenceError::NotFound)?;
            let can_update = prev.matchers == s.matchers
                && match prev.state(now) {
                    SilenceState::Active => s.starts_at == prev.starts_at && s.ends_at >= now,
                    SilenceState::Pending => s.starts_at >= now,
                    SilenceState::Expired => false,
                };
            if can_update {
                s.updated_at = now;
                self.map.insert(s.id.clone(), (s.clone(), ms));
                return Ok(vec![s]);
            }
            let replaces = prev.state(now) != SilenceState::Expired;
            self.check_room(now, max, replaces)?;
            if replaces {
                changed.push(self.expire(&s.id.clone(), now)?);
            }
        } else {
            self.check_room(now, max, false)?;
        }
        s.id = new_uuid();
        if s.starts_at < now {
            s.starts_at = now;
        }
        s.updated_at = now;
        self.map.insert(s.id.clone(), (s.clone(), ms));
        changed.push(s);
        Ok(changed)
    }

    fn check_room(&self, now: i64, max: usize, replaces: bool) -> Result<(), SilenceError> {
        if max == 0 {
            return Ok(());
        }
        let count = self.count_unexpired(now) - usize::from(replaces);
        if count + 1 > max {
            return Err(SilenceError::TooMany { count, limit: max });
        }
        Ok(())
    }

    /// Expires a silence now.
    pub fn expire(&mut self, id: &str, now: i64) -> Result<Silence, SilenceError> {
        let (s, _) = self.map.get_mut(id).ok_or(SilenceError::NotFound)?;
        match s.state(now) {
            SilenceState::Expired => return Err(SilenceError::AlreadyExpired(id.to_string())),
            SilenceState::Active => s.ends_at = now,
            SilenceState::Pending => {
                s.starts_at = now;
                s.ends_at = now;
            }
        }
        s.updated_at = now;
        Ok(s.clone())
    }

    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.map.get(id).map(|(s, _)| s)
    }

    pub fn list(&self) -> impl Iterator<Item = &Silence> {
        self.map.values().map(|(s, _)| s)
    }

    /// Ids of the active silences that mute a label set, sorted.
    pub fn mutes(&self, labels: &BTreeMap<String, String>, now: i64) -> Vec<String> {
        self.map
            .values()
            .filter(|(s, ms)| {
                s.state(now) == SilenceState::Active && crate::matchers::matches_labels(ms, labels)
            })
            .map(|(s, _)| s.id.clone())
            .collect()
    }

    /// Drops silences expired for longer than `retention_ms`; returns their ids.
    pub fn gc(&mut self, now: i64, retention_ms: i64) -> Vec<String> {
        let old: Vec<String> = self
            .map
            .values()
            .filter(|(s, _)| s.ends_at.saturating_add(retention_ms) < now)
            .map(|(s, _)| s.id.clone())
            .collect();
        for id in &old {
            self.map.remove(id);
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sil(name: &str, value: &str, regex: bool, start: i64, end: i64) -> Silence {
        Silence {
            id: String::new(),
            matchers: vec![SilenceMatcher {
                name: name.into(),
                value: value.into(),
                is_regex: regex,
                is_equal: true,
            }],
            starts_at: start,
            ends_at: end,
            updated_at: 0,
            created_by: "me".into(),
            comment: "c".into(),
        }
    }

    fn ls(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn max_silences_counts_active_and_pending() {
        let mut s = Silences::default();
        let a = s
            .set_limited(sil("job", "a", false, 1000, 5000), 1000, 2)
            .unwrap()[0]
            .id
            .clone();
        s.set_limited(sil("job", "b", false, 3000, 6000), 1000, 2)
            .unwrap();
        let e = s
            .set_limited(sil("job", "c", false, 1000, 5000), 1000, 2)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "exceeded maximum number of silences: 2 (limit: 2)"
        );
        // Replacing an unexpired one (different matchers) still works.
        let mut r = sil("job", "a2", false, 1000, 5000);
        r.id = a.clone();
        s.set_limited(r, 1500, 2).unwrap();
        // Once one expires there is room again.
        let b = s
            .list()
            .find(|x| x.matchers[0].value == "b")
            .unwrap()
            .id
            .clone();
        s.expire(&b, 1600).unwrap();
        s.set_limited(sil("job", "c", false, 1000, 5000), 1700, 2)
            .unwrap();
    }

    #[test]
    fn matching_states_and_expiry() {
        let mut s = Silences::default();
        let id = s
            .set(sil("job", "api|web", true, 1000, 5000), 1000)
            .unwrap()[0]
            .id
            .clone();
        assert_eq!(id.len(), 36);
        assert_eq!(s.mutes(&ls(&[("job", "api")]), 2000), vec![id.clone()]);
        assert!(s.mutes(&ls(&[("job", "db")]), 2000).is_empty());
        assert!(
            s.mutes(&ls(&[("job", "api")]), 5000).is_empty(),
            "expired at endsAt"
        );
        // Pending silences do not mute yet.
        let p = s.set(sil("job", "db", false, 3000, 4000), 1000).unwrap()[0]
            .id
            .clone();
        assert!(s.mutes(&ls(&[("job", "db")]), 2000).is_empty());
        assert_eq!(s.mutes(&ls(&[("job", "db")]), 3500), vec![p.clone()]);
        // Expiring.
        let e = s.expire(&id, 2500).unwrap();
        assert_eq!(e.ends_at, 2500);
        assert!(s.mutes(&ls(&[("job", "api")]), 2600).is_empty());
        assert!(matches!(
            s.expire(&id, 2600),
            Err(SilenceError::AlreadyExpired(_))
        ));
        assert_eq!(s.expire("nope", 1), Err(SilenceError::NotFound));
        // GC after retention.
        assert!(s.gc(2600, 1000).is_empty());
        assert_eq!(s.gc(10_000, 1000).len(), 2);
    }

    #[test]
    fn update_in_place_or_replace() {
        let mut s = Silences::default();
        let a = s
            .set(sil("a", "1", false, 1000, 5000), 1000)
            .unwrap()
            .remove(0);
        // Extending an active silence keeps its id.
        let mut b = a.clone();
        b.ends_at = 9000;
        b.comment = "longer".into();
        let r = s.set(b, 2000).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, a.id);
        assert_eq!(s.get(&a.id).unwrap().ends_at, 9000);
        // Changing matchers expires the old one and makes a new id.
        let mut c = a.clone();
        c.matchers[0].value = "2".into();
        let r = s.set(c, 3000).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].id, a.id);
        assert_eq!(r[0].ends_at, 3000);
        assert_ne!(r[1].id, a.id);
        let mut d = a.clone();
        d.id = "unknown".into();
        assert_eq!(s.set(d, 3000), Err(SilenceError::NotFound));
    }

    #[test]
    fn validation() {
        let mut s = Silences::default();
        assert!(
            s.set(sil("a", ".*", true, 1, 5), 1).is_err(),
            "matches everything"
        );
        assert!(s.set(sil("a", "1", false, 5, 5), 1).is_err());
        assert!(
            s.set(sil("a", "1", false, 1, 5), 10).is_err(),
            "end in the past"
        );
        assert!(s.set(sil("a", "(", true, 1, 50), 1).is_err());
        let mut x = sil("a", "1", false, 1, 5);
        x.matchers.clear();
        assert!(s.set(x, 1).is_err());
    }
}
