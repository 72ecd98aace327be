//! In-memory exemplar storage, with the semantics of Prometheus' `CircularExemplarStorage`
//! (`--enable-feature=exemplar-storage`): one ring buffer of `max_exemplars` entries shared by
//! all series, so memory is bounded however many series send exemplars; each series threads a
//! linked list through the ring from its oldest to its newest exemplar. When the ring is full the
//! oldest exemplar overall is overwritten. An exemplar equal to the newest one of its series is a
//! duplicate and silently dropped; one older than that newest one is refused as out of order.
//!
//! Durability is the database's job: [`crate::db::Db`] logs every stored exemplar to the WAL
//! (record type 4) and replays it on open.

use std::collections::HashMap;

use sextant_model::{Exemplar, ExemplarError, Labels, Matcher};

use crate::head::Head;

/// Why an exemplar was not stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExemplarAppendError {
    /// Equal to the newest exemplar of its series; callers treat this as a no-op.
    #[error("duplicate exemplar")]
    Duplicate,
    #[error("out of order exemplar")]
    OutOfOrder,
    /// `max_exemplars` is 0; callers treat this as a no-op.
    #[error("exemplar storage is disabled or max exemplars is less than or equal to 0")]
    Disabled,
    #[error("{0}")]
    Invalid(#[from] ExemplarError),
    /// The exemplar's series could not be created (series limit, ...).
    #[error("exemplar's series refused: {0}")]
    Series(String),
}

struct Entry {
    series: Labels,
    ex: Exemplar,
    /// Ring index of the next newer exemplar of the same series.
    next: Option<usize>,
}

#[derive(Clone, Copy)]
struct IndexEntry {
    oldest: usize,
    newest: usize,
}

/// The ring buffer and its per-series index.
pub struct ExemplarStorage {
    max: usize,
    /// Grows up to `max` entries, then wraps around.
    ring: Vec<Entry>,
    /// Where the next exemplar goes once the ring is full.
    next: usize,
    index: HashMap<Labels, IndexEntry>,
    /// Timestamp (ms) of the newest exemplar stored, for the self-metric.
    last_ts: i64,
}

/// Exemplars of one series, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesExemplars {
    pub series: Labels,
    pub exemplars: Vec<Exemplar>,
}

impl ExemplarStorage {
    /// A storage holding at most `max` exemplars in total (0 disables it).
    pub fn new(max: usize) -> Self {
        ExemplarStorage {
            max,
            ring: Vec::new(),
            next: 0,
            index: HashMap::new(),
            last_ts: 0,
        }
    }

    pub fn max_exemplars(&self) -> usize {
        self.max
    }

    /// Exemplars currently stored.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Series with at least one exemplar stored.
    pub fn num_series(&self) -> usize {
        self.index.len()
    }

    /// Timestamp (ms) of the newest exemplar appended, 0 before the first.
    pub fn last_timestamp(&self) -> i64 {
        self.last_ts
    }

    /// Checks `e` for `series` without storing it.
    pub fn validate(&self, series: &Labels, e: &Exemplar) -> Result<(), ExemplarAppendError> {
        if self.max == 0 {
            return Err(ExemplarAppendError::Disabled);
        }
        e.validate()?;
        let Some(idx) = self.index.get(series) else {
            return Ok(());
        };
        let newest = &self.ring[idx.newest].ex;
        if newest.same_as(e) {
            return Err(ExemplarAppendError::Duplicate);
        }
        // Several exemplars may share a timestamp (the buckets of a native histogram) as long
        // as they sort after the newest one by value, then labels; like Prometheus, anything
        // else that is not newer is out of order.
        let older = match e.ts.cmp(&newest.ts) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => {
                e.value < newest.value || (e.value == newest.value && e.labels <= newest.labels)
            }
        };
        if older {
            return Err(ExemplarAppendError::OutOfOrder);
        }
        Ok(())
    }

    /// Validates and stores `e` as the newest exemplar of `series`.
    pub fn add(&mut self, series: &Labels, e: Exemplar) -> Result<(), ExemplarAppendError> {
        self.validate(series, &e)?;
        let slot = if self.ring.len() < self.max {
            self.ring.len()
        } else {
            let slot = self.next;
            self.evict(slot);
            self.next = (slot + 1) % self.max;
            slot
        };
        self.last_ts = e.ts;
        let entry = Entry {
            series: series.clone(),
            ex: e,
            next: None,
        };
        if slot == self.ring.len() {
            self.ring.push(entry);
        } else {
            self.ring[slot] = entry;
        }
        match self.index.get_mut(series) {
            Some(idx) => {
                let prev = idx.newest;
                idx.newest = slot;
                self.ring[prev].next = Some(slot);
            }
            None => {
                self.index.insert(
                    series.clone(),
                    IndexEntry {
                        oldest: slot,
                        newest: slot,
                    },
                );
            }
        }
        Ok(())
    }

    /// Forgets the exemplar in `slot` (the oldest of its series, as the ring is in append
    /// order) before it is overwritten.
    fn evict(&mut self, slot: usize) {
        let (series, next) = {
            let e = &self.ring[slot];
            (e.series.clone(), e.next)
        };
        match next {
            None => {
                self.index.remove(&series);
            }
            Some(n) => {
                if let Some(idx) = self.index.get_mut(&series) {
                    idx.oldest = n;
                }
            }
        }
    }

    /// Exemplars with timestamps in `[start, end]` of every series matching any of the
    /// matcher sets, series sorted by labels, exemplars oldest first.
    pub fn select(
        &self,
        start: i64,
        end: i64,
        matcher_sets: &[Vec<Matcher>],
    ) -> Vec<SeriesExemplars> {
        let mut out = Vec::new();
        for (series, idx) in &self.index {
            if self.ring[idx.newest].ex.ts < start || self.ring[idx.oldest].ex.ts > end {
                continue;
            }
            if !matcher_sets.iter().any(|ms| Head::matches(series, ms)) {
                continue;
            }
            let exemplars: Vec<Exemplar> = self
                .chain(idx.oldest)
                .filter(|e| e.ts >= start && e.ts <= end)
                .cloned()
                .collect();
            if !exemplars.is_empty() {
                out.push(SeriesExemplars {
                    series: series.clone(),
                    exemplars,
                });
            }
        }
        out.sort_by(|a, b| a.series.cmp(&b.series));
        out
    }

    /// The exemplars of the series whose oldest entry is at `from`, oldest first.
    fn chain(&self, from: usize) -> impl Iterator<Item = &Exemplar> {
        let mut at = Some(from);
        std::iter::from_fn(move || {
            let i = at?;
            let e = self.ring.get(i)?;
            at = e.next;
            Some(&e.ex)
        })
    }

    /// Every stored exemplar with its series, in append order (oldest first), for WAL
    /// checkpoints.
    pub fn all_in_order(&self) -> impl Iterator<Item = (&Labels, &Exemplar)> {
        let split = if self.ring.len() < self.max {
            0
        } else {
            self.next
        };
        self.ring[split..]
            .iter()
            .chain(self.ring[..split].iter())
            .map(|e| (&e.series, &e.ex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::MatchOp;

    fn series(name: &str) -> Labels {
        Labels::from_pairs([("__name__", name)])
    }

    fn ex(trace: &str, v: f64, ts: i64) -> Exemplar {
        Exemplar {
            labels: Labels::from_pairs([("trace_id", trace)]),
            value: v,
            ts,
        }
    }

    fn all(st: &ExemplarStorage) -> Vec<SeriesExemplars> {
        let m = Matcher::new(MatchOp::Regex, "__name__", ".+").expect("matcher");
        st.select(i64::MIN, i64::MAX, &[vec![m]])
    }

    #[test]
    fn limit_overwrites_oldest_across_series() {
        let mut st = ExemplarStorage::new(3);
        let (a, b) = (series("a"), series("b"));
        st.add(&a, ex("1", 1.0, 10)).expect("a1");
        st.add(&b, ex("2", 2.0, 11)).expect("b1");
        st.add(&a, ex("3", 3.0, 12)).expect("a2");
        assert_eq!(st.len(), 3);
        // Full: the next one overwrites a's first, then b's only exemplar.
        st.add(&b, ex("4", 4.0, 13)).expect("b2");
        st.add(&a, ex("5", 5.0, 14)).expect("a3");
        assert_eq!(st.len(), 3);
        let got = all(&st);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].series, a);
        assert_eq!(got[0].exemplars, vec![ex("3", 3.0, 12), ex("5", 5.0, 14)]);
        assert_eq!(got[1].exemplars, vec![ex("4", 4.0, 13)]);
        // Overwriting b's last exemplar drops b from the index.
        st.add(&a, ex("6", 6.0, 15)).expect("a4");
        st.add(&a, ex("7", 7.0, 16)).expect("a5");
        let got = all(&st);
        assert_eq!(got.len(), 1);
        assert_eq!(st.num_series(), 1);
        assert_eq!(
            got[0].exemplars,
            vec![ex("5", 5.0, 14), ex("6", 6.0, 15), ex("7", 7.0, 16)]
        );
        let order: Vec<i64> = st.all_in_order().map(|(_, e)| e.ts).collect();
        assert_eq!(order, vec![14, 15, 16]);
    }

    #[test]
    fn duplicates_and_out_of_order() {
        let mut st = ExemplarStorage::new(10);
        let a = series("a");
        st.add(&a, ex("1", 1.0, 100)).expect("first");
        assert_eq!(
            st.add(&a, ex("1", 1.0, 100)),
            Err(ExemplarAppendError::Duplicate)
        );
        assert_eq!(
            st.add(&a, ex("0", 9.0, 99)),
            Err(ExemplarAppendError::OutOfOrder)
        );
        // Same timestamp: allowed only when it sorts after the newest by value, then labels.
        assert_eq!(
            st.add(&a, ex("9", 0.5, 100)),
            Err(ExemplarAppendError::OutOfOrder)
        );
        st.add(&a, ex("2", 1.0, 100))
            .expect("same ts, later labels");
        st.add(&a, ex("0", 2.0, 100))
            .expect("same ts, bigger value");
        st.add(&a, ex("0", 0.0, 101)).expect("newer");
        assert_eq!(all(&st)[0].exemplars.len(), 4);
        // Another series is independent.
        st.add(&series("b"), ex("0", 0.0, 1)).expect("other series");
        assert_eq!(st.len(), 5);
    }

    #[test]
    fn disabled_and_invalid() {
        let mut st = ExemplarStorage::new(0);
        assert_eq!(
            st.add(&series("a"), ex("1", 1.0, 1)),
            Err(ExemplarAppendError::Disabled)
        );
        let mut st = ExemplarStorage::new(5);
        let long = ex(&"x".repeat(121), 1.0, 1);
        assert!(matches!(
            st.add(&series("a"), long),
            Err(ExemplarAppendError::Invalid(
                ExemplarError::LabelSetTooLong(129)
            ))
        ));
        assert!(st.is_empty());
    }

    #[test]
    fn select_by_time_and_matcher_sets() {
        let mut st = ExemplarStorage::new(10);
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            st.add(&series(n), ex("t", 1.0, 10 * i as i64))
                .expect("add");
            st.add(&series(n), ex("t", 1.0, 10 * i as i64 + 5))
                .expect("add");
        }
        let eq = |v: &str| vec![Matcher::new(MatchOp::Equal, "__name__", v).expect("m")];
        let got = st.select(5, 12, &[eq("a"), eq("b"), eq("nope")]);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].exemplars.iter().map(|e| e.ts).collect::<Vec<_>>(),
            vec![5]
        );
        assert_eq!(
            got[1].exemplars.iter().map(|e| e.ts).collect::<Vec<_>>(),
            vec![10]
        );
        assert!(st.select(100, 200, &[eq("a")]).is_empty());
    }
}
