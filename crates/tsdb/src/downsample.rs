//! Downsampling aggregates (as in Thanos): one float series reduced to six series per fixed
//! window — `count`, `sum`, `min`, `max`, a reset-adjusted `counter` and the `last` raw value —
//! so that long-range queries can read 5m or 1h resolution instead of every raw sample.
//!
//! Aggregated blocks are ordinary blocks kept apart from raw ones (`<data>/downsampled/5m/`,
//! `<data>/downsampled/1h/`) so they can never be mixed into raw query results: each raw float
//! series becomes six series carrying an extra label [`AGGR_LABEL`] (`count`, `sum`, `min`,
//! `max`, `counter`, `last`), and `meta.json`'s `compaction.sources` names the raw block it came from.
//! Queries read them (local, or archived ones through [`crate::db::ExternalBlocks`]) only
//! through [`crate::db::DbQuerier::select_lazy_hinted`], only for the
//! time before the oldest local raw data (archived raw data is not downloaded where aggregates
//! answer), and only for functions whose result they preserve.
//!
//! Semantics: windows are `[k·res, (k+1)·res)`; each aggregate sample carries the timestamp of
//! the last raw sample of its window. The `counter` series starts with the first raw sample
//! unchanged and then, per window, the counter value with every reset (a value lower than its
//! predecessor) added back, so it never decreases: the difference of two of its samples is the
//! raw series' increase between their timestamps, which is what `rate` and `increase` need.
//! Across blocks the `counter` series are joined by [`stitch_counter`], judging resets on raw
//! values (each block's first `counter` sample and its final `last` sample).
//! NaN samples (including staleness markers) are skipped, like Thanos does.

use std::path::Path;

use sextant_model::matcher::{MatchOp, Matcher};
use sextant_model::{Labels, Sample};

use crate::block::{write_block, Block, BlockError, BlockMeta, BlockSeries};

/// The label naming which aggregate a series of a downsampled block holds.
pub const AGGR_LABEL: &str = "__aggr__";

/// Which aggregate series a query reads, chosen from the enclosing function (Thanos' rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggrKind {
    Count,
    Sum,
    Min,
    Max,
    Counter,
    /// The last raw value per window (joins `counter` across blocks).
    Last,
    /// `sum / count` per window (plain selectors, `avg_over_time`).
    Avg,
}

impl AggrKind {
    pub fn label(self) -> &'static str {
        match self {
            AggrKind::Count => "count",
            AggrKind::Sum => "sum",
            AggrKind::Min => "min",
            AggrKind::Max => "max",
            AggrKind::Counter => "counter",
            AggrKind::Last => "last",
            AggrKind::Avg => "avg",
        }
    }
}

/// Which aggregate answers a selection at resolution `res`, or `None` when aggregates would
/// change the result (then only raw data is read). Thanos' rules, restricted to the cases
/// whose error is bounded (see docs/archive.md, "Downsampling"):
/// `rate`/`increase` → `counter` (range ≥ 2 windows), `max_over_time` → `max`,
/// `min_over_time` → `min`, `sum_over_time` → `sum`, `avg_over_time` → `sum / count`
/// (range ≥ 1 window), a plain instant selector → `sum / count` when step ≥ 1 window.
pub fn aggr_for(hints: &crate::querier::SelectHints, res: i64) -> Option<AggrKind> {
    match (hints.func.as_deref(), hints.range > 0) {
        (Some("rate" | "increase"), true) if hints.range >= 2 * res => Some(AggrKind::Counter),
        (Some("max_over_time"), true) if hints.range >= res => Some(AggrKind::Max),
        (Some("min_over_time"), true) if hints.range >= res => Some(AggrKind::Min),
        (Some("sum_over_time"), true) if hints.range >= res => Some(AggrKind::Sum),
        (Some("avg_over_time"), true) if hints.range >= res => Some(AggrKind::Avg),
        (None, false) if hints.step >= res => Some(AggrKind::Avg),
        _ => None,
    }
}

/// Reads aggregate `kind` of the series matching `matchers` from downsampled block `b` in
/// `[mint, maxt]`, keyed by the raw series' labels.
pub fn read_aggregate(
    b: &Block,
    matchers: &[Matcher],
    kind: AggrKind,
    mint: i64,
    maxt: i64,
) -> Result<Vec<(Labels, Vec<Sample>)>, BlockError> {
    let strip = |l: &Labels| {
        Labels::from_pairs(
            l.iter()
                .filter(|x| x.name != AGGR_LABEL)
                .map(|x| (x.name.clone(), x.value.clone())),
        )
    };
    let sel = |k: &str| -> Result<Vec<(Labels, Vec<Sample>)>, BlockError> {
        let mut m = matchers.to_vec();
        m.push(Matcher::equal(AGGR_LABEL, k));
        Ok(b.select(&m, mint, maxt)?
            .into_iter()
            .map(|s| (strip(&s.labels), s.floats))
            .collect())
    };
    if kind != AggrKind::Avg {
        return sel(kind.label());
    }
    let counts: std::collections::HashMap<Labels, Vec<Sample>> =
        sel("count")?.into_iter().collect();
    let mut out = Vec::new();
    for (l, sums) in sel("sum")? {
        let Some(c) = counts.get(&l) else { continue };
        // Both series have one sample per window, at the same timestamps.
        let avg: Vec<Sample> = sums
            .iter()
            .zip(c)
            .filter(|(s, c)| s.t == c.t && c.v > 0.0)
            .map(|(s, c)| Sample {
                t: s.t,
                v: s.v / c.v,
            })
            .collect();
        out.push((l, avg));
    }
    Ok(out)
}

/// The `counter` aggregate of one series from one downsampled block, cut to the part of the
/// query it serves, with the block's last raw value.
#[derive(Clone, Debug, PartialEq)]
pub struct CounterPiece {
    /// `counter` samples in `[window.0, window.1]`, sorted by time.
    pub samples: Vec<Sample>,
    /// The final `last` sample of the block: its last raw value and when it was taken.
    /// `None` for blocks written before `last` existed.
    pub last_raw: Option<Sample>,
}

/// Joins the `counter` aggregates of one series from consecutive downsampled blocks into one
/// non-decreasing series, carrying counter resets across block boundaries as Thanos does.
///
/// Each block's `counter` starts from that block's first raw value and adds its resets back,
/// so across a boundary it may drop (which `rate` would take for a reset and count wrongly).
/// Like Thanos' counter-reset iterator, the boundary is judged on raw values: the next block's
/// first raw value against this block's last raw value (kept as the final `last` sample); a
/// lower value is a reset. The next block's samples are then offset to continue the series.
/// Finally the whole series is shifted so that its newest sample equals the newest raw value:
/// raw samples that follow (local data after the aggregated range) then continue it without a
/// spurious reset. Blocks without `last` fall back to comparing against the adjusted value.
pub fn stitch_counter(mut pieces: Vec<CounterPiece>) -> Vec<Sample> {
    pieces.retain(|p| !p.samples.is_empty());
    pieces.sort_by_key(|p| p.samples.first().map(|s| s.t));
    let mut offs = Vec::with_capacity(pieces.len());
    let mut off = 0.0;
    // Adjusted and raw value at the end of the previous piece.
    let mut prev: Option<(f64, f64)> = None;
    for p in &pieces {
        let (Some(first), Some(last)) = (p.samples.first(), p.samples.last()) else {
            continue;
        };
        if let Some((a_last, r_last)) = prev {
            // A piece's first sample is its block's first raw value (pieces after the first
            // are never cut at their start).
            let inc = if first.v >= r_last {
                first.v - r_last
            } else {
                first.v
            };
            off = a_last + inc - first.v;
        }
        offs.push(off);
        let r_last = match p.last_raw {
            Some(r) if r.t == last.t => r.v,
            _ => last.v,
        };
        prev = Some((last.v + off, r_last));
    }
    let shift = prev.map_or(0.0, |(a, r)| r - a);
    let mut out: Vec<Sample> = pieces
        .iter()
        .zip(offs)
        .flat_map(|(p, o)| {
            p.samples.iter().map(move |s| Sample {
                t: s.t,
                v: s.v + o + shift,
            })
        })
        .collect();
    out.sort_by_key(|s| s.t);
    out.dedup_by_key(|s| s.t);
    out
}

/// The counter pieces of the series matching `matchers` in downsampled block `b`, cut to
/// `[mint, maxt]`, keyed by the raw series' labels (see [`stitch_counter`]).
pub fn read_counter_pieces(
    b: &Block,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Result<Vec<(Labels, CounterPiece)>, BlockError> {
    let last: std::collections::HashMap<Labels, Sample> = read_aggregate(
        b,
        matchers,
        AggrKind::Last,
        b.meta().min_time,
        b.meta().max_time,
    )?
    .into_iter()
    .filter_map(|(l, v)| v.last().copied().map(|s| (l, s)))
    .collect();
    Ok(read_aggregate(b, matchers, AggrKind::Counter, mint, maxt)?
        .into_iter()
        .map(|(l, samples)| {
            let last_raw = last.get(&l).copied();
            (l, CounterPiece { samples, last_raw })
        })
        .collect())
}

/// The directory name of a resolution (`5m`, `1h`).
pub fn res_dir(res: i64) -> &'static str {
    if res == RES_1H {
        "1h"
    } else {
        "5m"
    }
}

/// Writes the `res` aggregates of every float series of `raw` as a new block under `parent`.
/// Histogram series are not downsampled (Thanos does not either for native histograms).
pub fn write_downsampled(parent: &Path, raw: &Block, res: i64) -> Result<BlockMeta, BlockError> {
    let all = Matcher::new(MatchOp::Regex, "__name__", ".*")
        .map_err(|e| BlockError::Invalid(e.to_string()))?;
    let (mint, maxt) = (raw.meta().min_time, raw.meta().max_time);
    let mut out = Vec::new();
    for s in raw.select(&[all], mint, maxt)? {
        if s.floats.is_empty() {
            continue;
        }
        let a = downsample(&s.floats, res);
        for (kind, samples) in [
            ("count", a.count),
            ("sum", a.sum),
            ("min", a.min),
            ("max", a.max),
            ("counter", a.counter),
            ("last", a.last),
        ] {
            let labels = Labels::from_pairs(
                s.labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .chain(std::iter::once((AGGR_LABEL.to_string(), kind.to_string()))),
            );
            out.push(BlockSeries {
                labels,
                floats: samples,
                hist_chunks: Vec::new(),
            });
        }
    }
    write_block(parent, out, mint, maxt, 1, vec![raw.meta().ulid.clone()])
}

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
    /// The last raw sample of each window. Its final sample is the block's last raw value,
    /// which stitching needs to carry counter resets across blocks ([`stitch_counter`]).
    pub last: Vec<Sample>,
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
        out.last.push(Sample {
            t: t_last,
            v: last_raw,
        });
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
        assert_eq!(
            a.last,
            vec![s(290_000, 30.0), s(420_000, 15.0), s(900_000, 16.0)]
        );
        assert_eq!(downsample(&[], RES_5M), Aggregates::default());
        let nan = downsample(&[s(0, f64::NAN), s(1, 2.0)], RES_5M);
        assert_eq!(nan.count, vec![s(1, 1.0)]);
        assert_eq!(nan.counter, vec![s(1, 2.0)]);
    }

    /// Downsamples `raw` cut into blocks at `cuts` and stitches the counter pieces.
    fn stitched(raw: &[Sample], cuts: &[i64], res: i64) -> Vec<Sample> {
        let mut bounds = vec![i64::MIN];
        bounds.extend_from_slice(cuts);
        bounds.push(i64::MAX);
        let pieces = bounds
            .windows(2)
            .filter_map(|w| {
                let part: Vec<Sample> = raw
                    .iter()
                    .filter(|x| x.t >= w[0] && x.t < w[1])
                    .copied()
                    .collect();
                let a = downsample(&part, res);
                (!a.counter.is_empty()).then(|| CounterPiece {
                    samples: a.counter,
                    last_raw: a.last.last().copied(),
                })
            })
            .collect();
        stitch_counter(pieces)
    }

    #[test]
    fn counter_resets_carry_across_blocks() {
        // Block 1 has a reset inside (30 → 5); block 2 continues without one (15 → 18); block 3
        // starts with a reset (18 → 2).
        let raw = [
            s(0, 10.0),
            s(100_000, 30.0),
            s(200_000, 5.0),
            s(300_000, 15.0),
            s(700_000, 18.0),
            s(800_000, 20.0),
            s(1_300_000, 2.0),
            s(1_400_000, 4.0),
        ];
        let st = stitched(&raw, &[600_000, 1_200_000], RES_5M);
        for i in 0..st.len() {
            for j in i + 1..st.len() {
                assert_eq!(
                    st[j].v - st[i].v,
                    raw_increase(&raw, st[i].t, st[j].t),
                    "{:?} → {:?} in {st:?}",
                    st[i],
                    st[j]
                );
            }
        }
        // The newest value is the raw one, so raw samples can follow.
        assert_eq!(st.last(), Some(&s(1_400_000, 4.0)));
        // Without the stitch, block 2's counter (restarting at raw 18) would drop below block
        // 1's adjusted end (40), which rate() would take for a reset.
        assert!(st.windows(2).all(|w| w[1].v >= w[0].v), "{st:?}");
    }

    proptest! {
        /// Counters cut into blocks anywhere and stitched keep every increase.
        #[test]
        fn stitched_counters_match_raw(
            steps in prop::collection::vec((1i64..200_000, 0.0f64..100.0, prop::bool::weighted(0.1)), 1..200),
            cuts in prop::collection::vec(1_000_000i64..20_000_000, 0..4),
            res in prop::sample::select(vec![RES_5M, RES_1H]),
        ) {
            let mut raw = Vec::new();
            let (mut t, mut v) = (1_000_000i64, 0.0f64);
            for (dt, dv, reset) in steps {
                t += dt;
                v = if reset { dv / 10.0 } else { v + dv };
                raw.push(s(t, v));
            }
            let mut cuts = cuts;
            cuts.sort();
            let st = stitched(&raw, &cuts, res);
            let (got, want) = (st.last().map_or(0.0, |x| x.v), raw.last().map_or(0.0, |x| x.v));
            prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{} vs {}", got, want);
            for i in 0..st.len() {
                for j in i + 1..st.len() {
                    let want = raw_increase(&raw, st[i].t, st[j].t);
                    let got = st[j].v - st[i].v;
                    prop_assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{} vs {}", got, want);
                }
            }
        }
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
