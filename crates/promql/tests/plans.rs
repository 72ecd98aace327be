//! The compiled range plans must give exactly the step-by-step evaluator's answers: values
//! (bit for bit, in the same summation order), series, annotations and sample statistics, for
//! instant and range queries, over data with counter resets, gaps, staleness markers, NaN,
//! jittered scrapes, `offset`/`@`, and the sample limit.

use sextant_model::{Labels, Matcher, STALE_NAN};
use sextant_promql::{
    Engine, EngineOptions, MemQuerier, Querier, QueryError, SeriesData, SeriesSet,
};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn store(seed: u64) -> MemQuerier {
    let mut r = Rng(seed);
    let mut q = MemQuerier::new();
    for name in ["req_total", "lat_bucket", "temp"] {
        for job in 0..3 {
            for inst in 0..4 {
                for le in ["0.1", "1", "+Inf"] {
                    if name != "lat_bucket" && le != "+Inf" {
                        continue;
                    }
                    let mut pairs = vec![
                        ("__name__", name.to_string()),
                        ("job", format!("j{job}")),
                        ("instance", format!("i{inst}")),
                    ];
                    if name == "lat_bucket" {
                        pairs.push(("le", le.to_string()));
                    }
                    let l = Labels::from_pairs(pairs);
                    let (mut t, mut v) = (r.below(15_000) as i64, 0.0f64);
                    // Some series start late or stop early.
                    let end = 3_600_000 - r.below(4) as i64 * 600_000;
                    if r.below(5) == 0 {
                        t += 1_200_000;
                    }
                    while t <= end {
                        match r.below(100) {
                            0 => v = 0.0, // counter reset
                            1 => {
                                q.add_float(&l, t, STALE_NAN);
                                t += 15_000 * (1 + r.below(30) as i64);
                                continue;
                            }
                            2 if name == "temp" => {
                                q.add_float(&l, t, f64::NAN);
                                t += 15_000;
                                continue;
                            }
                            _ => {}
                        }
                        v += if name == "temp" {
                            (r.below(2001) as f64 - 1000.0) / 7.0
                        } else {
                            r.below(50) as f64 * 0.1 + 1e12 * (r.below(200) == 0) as u64 as f64
                        };
                        q.add_float(&l, t, v);
                        t += 15_000 + r.below(5) as i64 - 2;
                    }
                }
            }
        }
    }
    q
}

const QUERIES: &[&str] = &[
    "req_total",
    "{__name__=~\"req_total|temp\"}",
    "temp offset 2m",
    "rate(req_total[5m])",
    "increase(req_total[90s])",
    "delta(temp[10m])",
    "irate(req_total[5m])",
    "idelta(temp[5m])",
    "changes(temp[15m])",
    "resets(req_total[15m])",
    "deriv(temp[5m])",
    "rate(req_total[5m] offset 7m)",
    "rate(req_total[5m] @ 1800)",
    "sum_over_time(temp[5m])",
    "avg_over_time(temp[5m])",
    "min_over_time(temp[3m])",
    "max_over_time(temp[3m])",
    "count_over_time(temp[5m])",
    "last_over_time(temp[5m])",
    "first_over_time(temp[5m])",
    "present_over_time(temp[5m])",
    "stddev_over_time(temp[5m])",
    "stdvar_over_time(temp[5m])",
    "mad_over_time(temp[5m])",
    "ts_of_max_over_time(temp[5m])",
    "ts_of_last_over_time(temp[5m])",
    "sum(rate(req_total[5m]))",
    "sum by (job) (rate(lat_bucket[5m]))",
    "sum without (instance) (rate(lat_bucket[5m]))",
    "avg by (job) (temp)",
    "count by (job) ({__name__=~\".+\"})",
    "count without (le) (lat_bucket)",
    "group by (instance) (req_total)",
    "min by (job) (temp)",
    "max by (job) (avg_over_time(temp[5m]))",
    "stddev(temp)",
    "stdvar by (job) (temp)",
    "quantile by (job) (0.9, temp)",
    "topk(3, rate(req_total[5m]))",
    "bottomk by (job) (2, temp)",
    "topk(2, sum by (job, instance) (rate(lat_bucket[5m])))",
    // Many equal values: ties must keep the input order (a stable sort's choice).
    "topk(2, changes(req_total[1m]))",
    "bottomk(3, present_over_time(temp[5m]))",
    "topk by (job) (2, count_over_time(req_total[2m]))",
    "topk(100, temp)",
    "sum(sum by (job, instance) (rate(req_total[5m])))",
    "avg(max by (instance) (temp))",
    "histogram_quantile(0.9, sum by (le, job) (rate(lat_bucket[5m])))",
    "sum by (job) (rate(req_total[5m])) / sum by (job) (rate(lat_bucket{le=\"+Inf\"}[5m]))",
    "rate(req_total[5m]) > 0.2",
    "abs(sum(delta(temp[5m])))",
    "timestamp(temp)",
    "max_over_time(sum(rate(req_total[2m]))[10m:1m])",
    // A name collision once `__name__` is dropped: an error at steps where both exist.
    "rate({__name__=~\"req_total|temp\", instance=\"i0\", job=\"j0\"}[5m])",
    "last_over_time({__name__=~\"req_total|temp\"}[5m])",
];

fn engine(plans: bool, max_samples: usize) -> Engine {
    Engine::new(EngineOptions {
        plans,
        max_samples,
        ..Default::default()
    })
}

/// A store that selects like the TSDB: every matching series whose data could overlap the
/// range (here: every matching series, also those without a sample in it), read lazily, with
/// an upper bound of samples that is exact (`loose: false`) or the whole series (`true`).
struct Lazy<'a> {
    q: &'a MemQuerier,
    loose: bool,
}

struct LazySet {
    series: Vec<SeriesData>,
    mint: i64,
    maxt: i64,
    loose: bool,
}

impl Querier for Lazy<'_> {
    fn select(&self, m: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesData>, QueryError> {
        self.q.select(m, mint, maxt)
    }
    fn select_lazy(
        &self,
        m: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Box<dyn SeriesSet + '_>, QueryError> {
        Ok(Box::new(LazySet {
            series: self.q.select(m, i64::MIN, i64::MAX)?,
            mint,
            maxt,
            loose: self.loose,
        }))
    }
}

impl SeriesSet for LazySet {
    fn len(&self) -> usize {
        self.series.len()
    }
    fn labels(&self, i: usize) -> &Labels {
        &self.series[i].labels
    }
    fn max_samples(&self, i: usize) -> usize {
        let s = &self.series[i];
        if self.loose {
            return s.floats.len() + s.histograms.len();
        }
        let n = |ts: &mut dyn Iterator<Item = i64>| {
            ts.filter(|t| *t >= self.mint && *t <= self.maxt).count()
        };
        n(&mut s.floats.iter().map(|p| p.t)) + n(&mut s.histograms.iter().map(|p| p.0))
    }
    fn may_have_histograms(&self, i: usize) -> bool {
        !self.series[i].histograms.is_empty()
    }
    fn may_have_start_timestamps(&self, i: usize) -> bool {
        !self.series[i].float_st.is_empty() || !self.series[i].hist_st.is_empty()
    }
    fn read(&self, i: usize, mint: i64, maxt: i64, out: &mut SeriesData) -> Result<(), QueryError> {
        assert!(
            mint >= self.mint && maxt <= self.maxt,
            "read outside the selected range"
        );
        let s = &self.series[i];
        out.floats.clear();
        out.floats
            .extend(s.floats.iter().filter(|p| p.t >= mint && p.t <= maxt));
        out.histograms.clear();
        out.histograms.extend(
            s.histograms
                .iter()
                .filter(|p| p.0 >= mint && p.0 <= maxt)
                .cloned(),
        );
        out.float_st.clear();
        out.hist_st.clear();
        Ok(())
    }
}

fn check(q: &MemQuerier, max_samples: usize) {
    check_with(q, q, max_samples);
    check_with(&Lazy { q, loose: false }, q, max_samples);
    check_with(&Lazy { q, loose: true }, q, max_samples);
}

/// Plans reading `lazy` against step-by-step evaluation reading `q`.
fn check_with(lazy: &dyn Querier, q: &MemQuerier, max_samples: usize) {
    let (on, off) = (engine(true, max_samples), engine(false, max_samples));
    for expr in QUERIES {
        for (start, end, step) in [
            (0, 3_600_000, 60_000),
            (123_457, 3_600_000, 300_000),
            (1_000_000, 1_000_000, 1000),
            (600_007, 2_000_000, 15_000),
        ] {
            let a = format!("{:?}", on.range(lazy, expr, start, end, step));
            let b = format!("{:?}", off.range(q, expr, start, end, step));
            assert_eq!(a, b, "range {expr} {start}..{end}/{step}");
        }
        for t in [0, 300_000, 1_234_567, 3_600_000, 4_000_000] {
            let a = format!("{:?}", on.instant(lazy, expr, t));
            let b = format!("{:?}", off.instant(q, expr, t));
            assert_eq!(a, b, "instant {expr} @ {t}");
        }
    }
}

#[test]
fn plans_match_step_by_step_evaluation() {
    for seed in [1, 7, 42] {
        check(&store(seed), 50_000_000);
    }
}

#[test]
fn plans_match_step_by_step_evaluation_at_the_sample_limit() {
    let q = store(3);
    for limit in [50, 700, 5000, 40_000] {
        check(&q, limit);
    }
}
