//! The agent-fleet workload: which series exist and how their values move.
//!
//! The fleet is a grid of *units*, one per (instance, model, tool). Each unit owns
//! [`SERIES_PER_UNIT`] series that together look like what an LLM-agent runner exports:
//! three `status` counters of tool calls, a token counter, two random-walk gauges with two
//! decimals, and a classic histogram of tool-call latency (`_bucket` with `le`, `_sum`,
//! `_count`). A unit's values depend only on the seed and the unit index, so sharding units
//! over senders does not change what is sent.

use crate::proto::encode_labels;
use crate::rng::{splitmix64, XorShift};

pub const MODELS: [&str; 5] = [
    "claude-sonnet",
    "claude-haiku",
    "gpt-4o",
    "gpt-4o-mini",
    "llama-3-70b",
];
pub const TOOLS: [&str; 10] = [
    "bash",
    "read_file",
    "write_file",
    "search",
    "fetch",
    "edit",
    "grep",
    "python",
    "git",
    "test",
];
pub const STATUSES: [&str; 3] = ["ok", "error", "timeout"];
/// Upper bounds of the latency histogram, seconds; `+Inf` is added after them.
pub const BUCKETS_MS: [u64; 8] = [50, 100, 250, 500, 1000, 2500, 5000, 10000];
pub const LE: [&str; 9] = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"];
pub const JOBS: usize = 4;
/// 3 status counters + tokens counter + 2 gauges + 9 buckets + sum + count.
pub const SERIES_PER_UNIT: usize = 3 + 1 + 2 + LE.len() + 2;

/// Number of units needed for at least `series` series.
pub fn units_for(series: usize) -> usize {
    series.div_ceil(SERIES_PER_UNIT).max(1)
}

/// Per-unit labels of instance `i`; also used for timestamp jitter (one scrape per instance).
pub fn instance_of(unit: usize) -> usize {
    unit / (MODELS.len() * TOOLS.len())
}

/// Pre-encoded label sets of a unit's series, in the order [`Unit::step`] emits values.
pub fn unit_labels(unit: usize) -> Vec<Vec<u8>> {
    unit_label_sets(unit)
        .into_iter()
        .map(|l| {
            let refs: Vec<(&str, &str)> = l.iter().map(|(n, v)| (*n, v.as_str())).collect();
            encode_labels(&refs)
        })
        .collect()
}

/// The same series as OTLP gauges (pre-encoded name and attributes, see
/// [`crate::proto::otlp_series`]); they translate back to exactly the remote_write label sets.
pub fn unit_otlp_series(unit: usize) -> Vec<Vec<u8>> {
    unit_label_sets(unit)
        .into_iter()
        .map(|l| {
            let refs: Vec<(&str, &str)> = l.iter().map(|(n, v)| (*n, v.as_str())).collect();
            crate::proto::otlp_series(&refs)
        })
        .collect()
}

/// Label sets (sorted by name) of a unit's series, in the order [`Unit::step`] emits values.
fn unit_label_sets(unit: usize) -> Vec<Vec<(&'static str, String)>> {
    let inst = instance_of(unit);
    let model = MODELS[(unit / TOOLS.len()) % MODELS.len()];
    let tool = TOOLS[unit % TOOLS.len()];
    let job = format!("agents-{}", inst % JOBS);
    let instance = format!("runner-{inst:05}:9464");
    let base = |name: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("__name__", name.to_string()),
            ("instance", instance.clone()),
            ("job", job.clone()),
            ("model", model.to_string()),
            ("tool", tool.to_string()),
        ]
    };
    let mut sets: Vec<Vec<(&'static str, String)>> = Vec::with_capacity(SERIES_PER_UNIT);
    for status in STATUSES {
        let mut l = base("agent_tool_calls_total");
        l.push(("status", status.to_string()));
        sets.push(l);
    }
    sets.push(base("agent_tokens_total"));
    sets.push(base("agent_inflight_calls"));
    sets.push(base("agent_context_fill_percent"));
    for le in LE {
        let mut l = base("agent_tool_duration_seconds_bucket");
        l.push(("le", le.to_string()));
        sets.push(l);
    }
    sets.push(base("agent_tool_duration_seconds_sum"));
    sets.push(base("agent_tool_duration_seconds_count"));
    sets.into_iter()
        .map(|mut l| {
            l.sort_by(|a, b| a.0.cmp(b.0));
            l
        })
        .collect()
}

/// Mutable state of one unit; integers throughout so values are exact and reproducible.
#[derive(Clone, Debug)]
pub struct Unit {
    rng: XorShift,
    calls: [u64; 3],
    tokens: u64,
    /// Gauges in hundredths (two decimals).
    gauges_cents: [i64; 2],
    buckets: [u64; 9],
    sum_ms: u64,
    count: u64,
}

impl Unit {
    pub fn new(seed: u64, unit: usize) -> Self {
        let mut rng = XorShift::new(seed ^ splitmix64(unit as u64));
        let calls = [rng.below(10_000), rng.below(200), rng.below(20)];
        let tokens = rng.below(5_000_000);
        let gauges_cents = [rng.below(800) as i64, rng.below(10_000) as i64];
        Unit {
            rng,
            calls,
            tokens,
            gauges_cents,
            buckets: [0; 9],
            sum_ms: 0,
            count: 0,
        }
    }

    /// Advances one scrape interval and writes the unit's [`SERIES_PER_UNIT`] values.
    pub fn step(&mut self, out: &mut [f64; SERIES_PER_UNIT]) {
        let r = &mut self.rng;
        // Counters: small integer increments; errors and timeouts are rare.
        self.calls[0] += r.below(6);
        if r.below(10) == 0 {
            self.calls[1] += 1;
        }
        if r.below(50) == 0 {
            self.calls[2] += 1;
        }
        self.tokens += r.below(4000);
        // Gauges: random walks with two decimals, kept non-negative.
        for g in &mut self.gauges_cents {
            *g = (*g + r.below(201) as i64 - 100).max(0);
        }
        // Histogram: 0..=3 observations of a latency in whole milliseconds.
        for _ in 0..r.below(4) {
            // Log-uniform between 20 ms and ~13 s.
            let ms = (20.0 * (r.unit() * 6.5).exp()) as u64;
            self.sum_ms += ms;
            self.count += 1;
            let first = BUCKETS_MS
                .iter()
                .position(|&b| ms <= b)
                .unwrap_or(BUCKETS_MS.len());
            for b in &mut self.buckets[first..] {
                *b += 1;
            }
        }
        out[0] = self.calls[0] as f64;
        out[1] = self.calls[1] as f64;
        out[2] = self.calls[2] as f64;
        out[3] = self.tokens as f64;
        out[4] = self.gauges_cents[0] as f64 / 100.0;
        out[5] = self.gauges_cents[1] as f64 / 100.0;
        for (o, b) in out[6..15].iter_mut().zip(self.buckets) {
            *o = b as f64;
        }
        out[15] = self.sum_ms as f64 / 1000.0;
        out[16] = self.count as f64;
    }
}

/// Timestamp of `step` for `instance`: a fixed interval plus a few ms of per-scrape jitter.
pub fn timestamp(
    seed: u64,
    start_ms: i64,
    interval_ms: i64,
    jitter_ms: u64,
    instance: usize,
    step: usize,
) -> i64 {
    let j = if jitter_ms == 0 {
        0
    } else {
        splitmix64(seed ^ splitmix64((instance as u64) << 32 | step as u64)) % (jitter_ms + 1)
    };
    start_ms + step as i64 * interval_ms + j as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counters_monotonic() {
        let mut u = Unit::new(42, 3);
        let mut prev = [0.0; SERIES_PER_UNIT];
        let mut out = [0.0; SERIES_PER_UNIT];
        for _ in 0..1000 {
            u.step(&mut out);
            for w in out[6..15].windows(2) {
                assert!(w[0] <= w[1], "buckets not cumulative: {:?}", &out[6..15]);
            }
            assert_eq!(out[14], out[16], "+Inf bucket == _count");
            for i in [0, 1, 2, 3, 6, 14, 15, 16] {
                assert!(out[i] >= prev[i]);
            }
            for g in [out[4], out[5]] {
                assert_eq!((g * 100.0).round() / 100.0, g, "two decimals");
            }
            prev = out;
        }
    }

    #[test]
    fn deterministic_per_unit() {
        let (mut a, mut b) = (Unit::new(1, 9), Unit::new(1, 9));
        let (mut oa, mut ob) = ([0.0; SERIES_PER_UNIT], [0.0; SERIES_PER_UNIT]);
        for _ in 0..50 {
            a.step(&mut oa);
            b.step(&mut ob);
            assert_eq!(oa, ob);
        }
    }

    #[test]
    fn label_sets_distinct() {
        let mut all = std::collections::HashSet::new();
        for u in 0..200 {
            for l in unit_labels(u) {
                assert!(all.insert(l));
            }
        }
        assert_eq!(all.len(), 200 * SERIES_PER_UNIT);
    }

    #[test]
    fn jitter_bounded() {
        for s in 0..100 {
            let t = timestamp(1, 0, 15_000, 5, 3, s);
            assert!((s as i64 * 15_000..=s as i64 * 15_000 + 5).contains(&t));
        }
    }
}
