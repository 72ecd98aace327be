//! Downsampling aggregates (as in Thanos): one float series reduced to five series per fixed
//! window — `count`, `sum`, `min`, `max` and a reset-adjusted `counter` — so that long-range
//! queries can read 5m or 1h resolution instead of every raw sample.
//!
//! Only the aggregation itself lives here so far; storing aggregated blocks and choosing them
//! for range queries with large steps is not built yet (see docs/archive.md).
//!
//! Semantics: windows are `[k·res, (k+1)·res)`; each aggregate sample carries the timestamp of
//! the last raw sample of its window. The `counter` series starts with the first raw sample
//! unchanged and then, per window, the counter value with every reset (a value lower than its
//! predecessor) added back, so it never decreases: the difference of two of its samples is the
//! raw series' increase between their timestamps, which is what `rate` and `increase` need.
//! NaN samples (including staleness markers) are skipped, like Thanos does.

use sextant_model::Sample;

/// Thanos' resolutions: 5 minutes and 1 hour.
pub const RES_5M: i64 = 5 * 60 * 1000;
pub const RES_1H: i64 = 60 * 60 * 1000;

/// The aggregates of one series at one resolution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregates {
    pub count: Vec<Sample>,
    pub sum: Vec<Sample>,
    pub min: Vec<Sample>,
    pub max: Vec<Sample>,
    pub counter: Vec<Sample>,
}

/// Aggregates time-sorted raw samples into windows of `res` ms (`res` > 0).
pub fn downsample(raw: &[Sample], res: i64) -> Aggregates {
    let mut out = Aggregates::default();
    if res <= 0 {
        return out;
    }
    let mut it = raw.iter().filter(|s| !s.v.is_nan()).peekable();
    let Some(first) = it.peek().copied().copied() else {
        return out;
    };
    out.counter.push(first);
    // Reset-adjusted running counter.
    let mut adjusted = first.v;
    let mut last_raw = first.v;
    let mut started = false;
    while let Some(s0) = it.next() {
        let window = s0.t.div_euclid(res);
        let (mut n, mut sum, mut min, mut max, mut t_last) =
            (0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY, s0.t);
        let mut cur = Some(*s0);
        while let Some(s) = cur {
            if started {
                adjusted += if s.v < last_raw { s.v } else { s.v - last_raw };
            }
            started = true;
            last_raw = s.v;
            n += 1.0;
            sum += s.v;
            min = min.min(s.v);
            max = max.max(s.v);
            t_last = s.t;
            cur = it.next_if(|x| x.t.div_euclid(res) == window).copied();
        }
        out.count.push(Sample { t: t_last, v: n });
        out.sum.push(Sample { t: t_last, v: sum });
        out.min.push(Sample { t: t_last, v: min });
        out.max.push(Sample { t: t_last, v: max });
        if t_last != first.t {
            out.counter.push(Sample {
                t: t_last,
                v: adjusted,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(t: i64, v: f64) -> Sample {
        Sample { t, v }
    }

    /// The raw increase over `(a, b]` with resets handled the Prometheus way.
    fn raw_increase(raw: &[Sample], a: i64, b: i64) -> f64 {
        let mut inc = 0.0;
        let mut prev: Option<f64> = None;
        for x in raw.iter().filter(|x| x.t <= b) {
            if x.t > a {
                if let Some(p) = prev {
                    inc += if x.v < p { x.v } else { x.v - p };
                }
            }
            prev = Some(x.v);
        }
        inc
    }

    #[test]
    fn windows_and_counter_resets() {
        let raw = [
            s(0, 10.0),
            s(60_000, 20.0),
            s(290_000, 30.0),
            s(300_000, 5.0), // reset
            s(420_000, 15.0),
            s(900_000, 16.0),
        ];
        let a = downsample(&raw, RES_5M);
        assert_eq!(
            a.count,
            vec![s(290_000, 3.0), s(420_000, 2.0), s(900_000, 1.0)]
        );
        assert_eq!(
            a.sum,
            vec![s(290_000, 60.0), s(420_000, 20.0), s(900_000, 16.0)]
        );
        assert_eq!(
            a.min,
            vec![s(290_000, 10.0), s(420_000, 5.0), s(900_000, 16.0)]
        );
        assert_eq!(
            a.max,
            vec![s(290_000, 30.0), s(420_000, 15.0), s(900_000, 16.0)]
        );
        // 10 → 30 (+20), reset to 5 (+5), → 15 (+10), → 16 (+1).
        assert_eq!(
            a.counter,
            vec![
                s(0, 10.0),
                s(290_000, 30.0),
                s(420_000, 45.0),
                s(900_000, 46.0)
            ]
        );
        assert_eq!(downsample(&[], RES_5M), Aggregates::default());
        let nan = downsample(&[s(0, f64::NAN), s(1, 2.0)], RES_5M);
        assert_eq!(nan.count, vec![s(1, 1.0)]);
        assert_eq!(nan.counter, vec![s(1, 2.0)]);
    }

    proptest! {
        /// Per window the aggregates equal a brute-force computation, and the counter series'
        /// differences equal the raw increase between any two of its timestamps.
        #[test]
        fn aggregates_match_raw(
            steps in prop::collection::vec((1i64..200_000, 0.0f64..100.0, prop::bool::weighted(0.1)), 1..300),
            res in prop::sample::select(vec![RES_5M, RES_1H]),
        ) {
            let mut raw = Vec::new();
            let (mut t, mut v) = (1_000_000i64, 0.0f64);
            for (dt, dv, reset) in steps {
                t += dt;
                v = if reset { dv / 10.0 } else { v + dv };
                raw.push(s(t, v));
            }
            let a = downsample(&raw, res);
            let total: f64 = a.count.iter().map(|x| x.v).sum();
            prop_assert_eq!(total as usize, raw.len());
            for (i, c) in a.count.iter().enumerate() {
                let w = c.t.div_euclid(res);
                let in_w: Vec<f64> = raw.iter().filter(|x| x.t.div_euclid(res) == w).map(|x| x.v).collect();
                prop_assert_eq!(c.v as usize, in_w.len());
                let sum: f64 = in_w.iter().sum();
                prop_assert!((a.sum[i].v - sum).abs() <= 1e-9 * sum.abs().max(1.0));
                prop_assert_eq!(a.min[i].v, in_w.iter().cloned().fold(f64::INFINITY, f64::min));
                prop_assert_eq!(a.max[i].v, in_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
            }
            for w in a.counter.windows(2) {
                prop_assert!(w[1].v >= w[0].v, "counter aggregate decreased");
            }
            for i in 0..a.counter.len() {
                for j in i + 1..a.counter.len() {
                    let want = raw_increase(&raw, a.counter[i].t, a.counter[j].t);
                    let got = a.counter[j].v - a.counter[i].v;
                    prop_assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{} vs {}", got, want);
                }
            }
        }
    }
}
