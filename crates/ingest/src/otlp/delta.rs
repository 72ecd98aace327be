//! Delta → cumulative conversion. Prometheus stores cumulative counters and histograms (its
//! `rate()` expects a running total), while OTel SDKs may export deltas: each point carries
//! only what happened since the previous export. Like the OpenTelemetry Collector's
//! `deltatocumulative` processor, we keep a running total per stream (metric + labels) in
//! memory and emit the total.
//!
//! Rules per stream:
//! - a point whose time is not after the last one seen is refused (a retried request must not
//!   count twice);
//! - a point whose start time lies before the last point's time overlaps what was already
//!   counted, which means the producer restarted: the total restarts from this point (PromQL
//!   sees a counter reset);
//! - otherwise (contiguous or with a gap) the point is added to the total.
//!
//! Memory is bounded: at most `max_streams` streams are kept; streams not updated for `idle_ms`
//! are dropped when room is needed, and if that is not enough the least recently updated tenth
//! is evicted. An evicted stream restarts from its next point, which PromQL reads as a counter
//! reset. Explicit-bucket histograms keep at most [`MAX_DELTA_BOUNDS`] bounds; exponential ones
//! are merged to coarser scales to stay within [`MAX_DELTA_EXP_BUCKETS`] buckets per side.

use std::collections::HashMap;

use sextant_model::Labels;

use super::exphist::{downscale, SparseBuckets, MIN_SCHEMA};

/// Explicit bounds of a delta histogram we are willing to keep a running total for.
pub const MAX_DELTA_BOUNDS: usize = 256;
/// Buckets per side of a delta exponential histogram's running total before it is merged to
/// a coarser scale (OTel SDKs default to 160).
pub const MAX_DELTA_EXP_BUCKETS: usize = 320;

/// Bounds of the delta → cumulative state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaLimits {
    /// Streams tracked at most.
    pub max_streams: usize,
    /// Streams idle for longer than this (ms) are dropped first when the table is full.
    pub idle_ms: i64,
}

impl Default for DeltaLimits {
    fn default() -> Self {
        DeltaLimits {
            max_streams: 100_000,
            idle_ms: 60 * 60 * 1000,
        }
    }
}

/// An exponential histogram total in native bucket indices.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ExpTotal {
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    pub count: u64,
    pub sum: f64,
    pub positive: SparseBuckets,
    pub negative: SparseBuckets,
}

impl ExpTotal {
    fn rescale(&mut self, schema: i32) {
        if schema < self.schema {
            let down = (self.schema - schema) as u32;
            self.positive = downscale(&self.positive, down);
            self.negative = downscale(&self.negative, down);
            self.schema = schema;
        }
    }

    /// Merges to coarser scales until both sides fit the bucket budget.
    pub fn shrink(&mut self) {
        while self.schema > MIN_SCHEMA
            && (self.positive.len() > MAX_DELTA_EXP_BUCKETS
                || self.negative.len() > MAX_DELTA_EXP_BUCKETS)
        {
            self.rescale(self.schema - 1);
        }
    }

    fn add(&mut self, mut d: ExpTotal) {
        let schema = self.schema.min(d.schema);
        self.rescale(schema);
        d.rescale(schema);
        self.zero_threshold = self.zero_threshold.max(d.zero_threshold);
        self.zero_count = self.zero_count.saturating_add(d.zero_count);
        self.count = self.count.saturating_add(d.count);
        self.sum += d.sum;
        for (side, other) in [
            (&mut self.positive, d.positive),
            (&mut self.negative, d.negative),
        ] {
            for (i, c) in other {
                let e = side.entry(i).or_insert(0);
                *e = e.saturating_add(c);
            }
        }
        self.shrink();
    }
}

/// The value of one delta point, and after accumulation the running total.
#[derive(Clone, Debug, PartialEq)]
pub enum Total {
    Number(f64),
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        count: u64,
        sum: f64,
    },
    Exponential(ExpTotal),
}

impl Total {
    /// Adds `d` in place; false when the shapes differ (other kind or other bounds).
    fn add(&mut self, d: Total) -> Result<(), Total> {
        match (self, d) {
            (Total::Number(a), Total::Number(b)) => *a += b,
            (
                Total::Histogram {
                    bounds,
                    counts,
                    count,
                    sum,
                },
                Total::Histogram {
                    bounds: b2,
                    counts: c2,
                    count: n2,
                    sum: s2,
                },
            ) if *bounds == b2 && counts.len() == c2.len() => {
                for (a, b) in counts.iter_mut().zip(c2) {
                    *a = a.saturating_add(b);
                }
                *count = count.saturating_add(n2);
                *sum += s2;
            }
            (Total::Exponential(a), Total::Exponential(b)) => a.add(b),
            (_, d) => return Err(d),
        }
        Ok(())
    }
}

struct Stream {
    last_time_ns: u64,
    touched_ms: i64,
    total: Total,
}

/// Running totals of delta streams.
pub struct DeltaState {
    limits: DeltaLimits,
    streams: HashMap<Labels, Stream>,
}

impl DeltaState {
    pub fn new(limits: DeltaLimits) -> Self {
        DeltaState {
            limits,
            streams: HashMap::new(),
        }
    }

    /// Streams currently tracked.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// Adds one delta point of stream `key` and returns the cumulative total, or why the point
    /// was refused. For a stream not in memory, `stored` is asked for the stream's last stored
    /// total and its time (ms); the stream continues from it under the same rules as from a
    /// point in memory, so a restart of Sextant (or an evicted stream) is not a counter reset.
    pub fn accumulate(
        &mut self,
        key: &Labels,
        start_ns: u64,
        time_ns: u64,
        delta: Total,
        now_ms: i64,
        stored: impl FnOnce() -> Option<(i64, Total)>,
    ) -> Result<Total, String> {
        if let Some(s) = self.streams.get_mut(key) {
            if time_ns <= s.last_time_ns {
                return Err(format!(
                    "delta point at {time_ns}ns is not after the previous point of the stream ({}ns); already counted",
                    s.last_time_ns
                ));
            }
            let restarted = start_ns != 0 && start_ns < s.last_time_ns;
            s.last_time_ns = time_ns;
            s.touched_ms = now_ms;
            if restarted {
                s.total = delta;
            } else if let Err(d) = s.total.add(delta) {
                s.total = d;
            }
            return Ok(s.total.clone());
        }
        let total = match stored() {
            None => delta,
            Some((t_ms, mut total)) => {
                let point_ms = i64::try_from(time_ns / 1_000_000).unwrap_or(i64::MAX);
                if point_ms <= t_ms {
                    return Err(format!(
                        "delta point at {time_ns}ns is not after the last stored sample of the stream ({t_ms}ms); already counted"
                    ));
                }
                let stored_ns = u64::try_from(t_ms).unwrap_or(0).saturating_mul(1_000_000);
                if start_ns != 0 && start_ns < stored_ns {
                    delta // the producer restarted
                } else {
                    match total.add(delta) {
                        Ok(()) => total,
                        Err(d) => d,
                    }
                }
            }
        };
        if self.streams.len() >= self.limits.max_streams {
            self.make_room(now_ms);
        }
        if self.limits.max_streams == 0 {
            return Ok(total);
        }
        self.streams.insert(
            key.clone(),
            Stream {
                last_time_ns: time_ns,
                touched_ms: now_ms,
                total: total.clone(),
            },
        );
        Ok(total)
    }

    /// Forgets a stream (the producer said it has no value any more).
    pub fn forget(&mut self, key: &Labels) {
        self.streams.remove(key);
    }

    fn make_room(&mut self, now_ms: i64) {
        let idle = self.limits.idle_ms;
        self.streams
            .retain(|_, s| now_ms.saturating_sub(s.touched_ms) <= idle);
        if self.streams.len() < self.limits.max_streams {
            return;
        }
        let mut ages: Vec<(i64, Labels)> = self
            .streams
            .iter()
            .map(|(k, s)| (s.touched_ms, k.clone()))
            .collect();
        ages.sort_unstable_by_key(|a| a.0);
        for (_, k) in ages.iter().take((ages.len() / 10).max(1)) {
            self.streams.remove(k);
        }
        tracing::debug!(
            streams = self.streams.len(),
            "OTLP delta→cumulative table full; evicted the least recently updated streams"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> Labels {
        Labels::from_pairs([("__name__", n)])
    }

    impl DeltaState {
        /// `accumulate` with nothing stored.
        fn acc(&mut self, k: &Labels, s: u64, t: u64, d: Total, now: i64) -> Result<Total, String> {
            self.accumulate(k, s, t, d, now, || None)
        }
    }

    #[test]
    fn continues_from_the_stored_total() {
        let mut st = DeltaState::new(DeltaLimits::default());
        let k = key("a");
        let stored = || Some((20, Total::Number(7.0)));
        // Point before or at the stored sample: already counted.
        assert!(st
            .accumulate(&k, 10_000_000, 20_000_000, Total::Number(4.0), 0, stored)
            .is_err());
        assert_eq!(st.streams(), 0);
        // Contiguous with the stored sample: continues.
        assert_eq!(
            num(&st.accumulate(&k, 20_000_000, 30_000_000, Total::Number(1.0), 0, stored)),
            8.0
        );
        // In memory now: not asked again.
        assert_eq!(
            num(&st.accumulate(
                &k,
                30_000_000,
                40_000_000,
                Total::Number(1.0),
                0,
                || panic!()
            )),
            9.0
        );
        // Start before the stored sample: the producer restarted meanwhile.
        let mut st = DeltaState::new(DeltaLimits::default());
        assert_eq!(
            num(&st.accumulate(&k, 5_000_000, 30_000_000, Total::Number(1.0), 0, stored)),
            1.0
        );
        // Another shape stored (e.g. a gauge of the same name): starts from the point.
        let mut st = DeltaState::new(DeltaLimits::default());
        let h = Total::Histogram {
            bounds: vec![1.0],
            counts: vec![1, 0],
            count: 1,
            sum: 0.5,
        };
        assert_eq!(
            st.accumulate(&k, 20_000_000, 30_000_000, h.clone(), 0, stored),
            Ok(h)
        );
    }

    fn num(t: &Result<Total, String>) -> f64 {
        match t {
            Ok(Total::Number(v)) => *v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn running_total() {
        let mut st = DeltaState::new(DeltaLimits::default());
        let k = key("a");
        assert_eq!(num(&st.acc(&k, 0, 10, Total::Number(3.0), 0)), 3.0);
        assert_eq!(num(&st.acc(&k, 10, 20, Total::Number(4.0), 0)), 7.0);
        // Gap: keeps counting.
        assert_eq!(num(&st.acc(&k, 30, 40, Total::Number(1.0), 0)), 8.0);
        // Retry of an already counted point is refused and changes nothing.
        assert!(st.acc(&k, 30, 40, Total::Number(1.0), 0).is_err());
        assert_eq!(num(&st.acc(&k, 40, 50, Total::Number(2.0), 0)), 10.0);
        // Start time before the last point: the producer restarted.
        assert_eq!(num(&st.acc(&k, 5, 60, Total::Number(2.0), 0)), 2.0);
    }

    #[test]
    fn histogram_totals_and_shape_change() {
        let mut st = DeltaState::new(DeltaLimits::default());
        let k = key("h");
        let h = |counts: Vec<u64>, bounds: Vec<f64>| Total::Histogram {
            count: counts.iter().sum(),
            sum: 1.5,
            counts,
            bounds,
        };
        st.acc(&k, 0, 1, h(vec![1, 2, 0], vec![1.0, 2.0]), 0)
            .unwrap();
        let t = st
            .acc(&k, 1, 2, h(vec![0, 1, 1], vec![1.0, 2.0]), 0)
            .unwrap();
        assert_eq!(t, h(vec![1, 3, 1], vec![1.0, 2.0]).with_sum(3.0));
        // New bounds: the total restarts.
        let t = st.acc(&k, 2, 3, h(vec![4, 0], vec![5.0]), 0).unwrap();
        assert_eq!(t, h(vec![4, 0], vec![5.0]));
    }

    impl Total {
        fn with_sum(mut self, s: f64) -> Self {
            if let Total::Histogram { sum, .. } = &mut self {
                *sum = s;
            }
            self
        }
    }

    #[test]
    fn exponential_totals_rescale() {
        let mut st = DeltaState::new(DeltaLimits::default());
        let k = key("e");
        let e = |schema: i32, b: &[(i64, u64)]| {
            Total::Exponential(ExpTotal {
                schema,
                zero_threshold: 0.0,
                zero_count: 1,
                count: 1 + b.iter().map(|x| x.1).sum::<u64>(),
                sum: 1.0,
                positive: b.iter().copied().collect(),
                negative: SparseBuckets::new(),
            })
        };
        st.acc(&k, 0, 1, e(2, &[(1, 1), (2, 1)]), 0).unwrap();
        // Coarser point: the total is merged down to schema 1 first (1,2 → 1).
        let t = st.acc(&k, 1, 2, e(1, &[(1, 2)]), 0).unwrap();
        let Total::Exponential(t) = t else { panic!() };
        assert_eq!(t.schema, 1);
        assert_eq!(t.zero_count, 2);
        assert_eq!(t.count, 6);
        assert_eq!(t.positive.into_iter().collect::<Vec<_>>(), vec![(1, 4)]);
    }

    #[test]
    fn bounded_table_evicts() {
        let mut st = DeltaState::new(DeltaLimits {
            max_streams: 10,
            idle_ms: 1000,
        });
        for i in 0..10 {
            st.acc(&key(&format!("s{i}")), 0, 1, Total::Number(1.0), i)
                .unwrap();
        }
        assert_eq!(st.streams(), 10);
        // None idle yet: the oldest tenth (s0) goes.
        st.acc(&key("new"), 0, 1, Total::Number(1.0), 20).unwrap();
        assert_eq!(st.streams(), 10);
        // s0 was evicted, so it restarts from its next point.
        assert_eq!(num(&st.acc(&key("s0"), 1, 2, Total::Number(5.0), 21)), 5.0);
        assert_eq!(st.streams(), 10);
        // Much later everything is idle and is dropped at once.
        st.acc(&key("late"), 0, 1, Total::Number(1.0), 1_000_000)
            .unwrap();
        assert_eq!(st.streams(), 1);
    }
}
