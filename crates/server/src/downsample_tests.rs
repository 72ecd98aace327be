//! Downsampled reads through the real PromQL engine and TSDB: the same range queries over a
//! database whose raw blocks retention dropped (answered from 5m aggregates) and over a copy
//! that kept raw data.

use sextant_model::{Labels, Sample};
use sextant_tsdb::db::{Db, DbOptions};
use sextant_tsdb::head::HeadOptions;

/// Range queries over a time whose raw blocks retention dropped answer from the 5m
/// aggregates, compared with the same queries over a copy that kept raw data: exact for
/// `*_over_time` over the window-aligned range `[t - range, t)`, and rate within 5% inside one
/// downsampled block (edge extrapolation over at most one window at each end).
#[test]
fn downsampled_queries_match_raw() {
    use sextant_model::Matcher;
    const H: i64 = 3600 * 1000;
    let opts = |retention| DbOptions {
        head: HeadOptions {
            chunk_range: 2 * H,
            ..HeadOptions::default()
        },
        retention,
        ..DbOptions::default()
    };
    let (d1, d2) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let raw_db = Db::open(d1.path(), opts(0)).expect("open");
    let ds_db = Db::open(d2.path(), opts(20 * H)).expect("open");
    let c = Labels::from_pairs([("__name__", "c_total"), ("job", "t")]);
    let g = Labels::from_pairs([("__name__", "g"), ("job", "t")]);
    let mut counter = 0.0;
    let mut gauge = Vec::new();
    for i in 0..60 * 60i64 {
        let t = i * 60_000;
        counter = if i % 420 == 0 {
            0.0
        } else {
            counter + 1.0 + (i % 3) as f64
        };
        let gv = ((i * 37) % 101) as f64 - 50.0;
        gauge.push(Sample { t, v: gv });
        for db in [&raw_db, &ds_db] {
            let mut app = db.appender();
            app.append(&c, t, counter).expect("append");
            app.append(&g, t, gv).expect("append");
            app.commit().expect("commit");
        }
    }
    raw_db.maintain();
    ds_db.maintain();
    assert!(!ds_db.downsampled_blocks().is_empty());
    let raw_min = ds_db
        .blocks()
        .iter()
        .map(|b| b.meta().min_time)
        .min()
        .expect("blocks");
    assert!(raw_min >= 30 * H);
    // Raw data is gone in ds_db before raw_min.
    let gone = sextant_tsdb::querier::Querier::select(
        &ds_db.querier(),
        &[Matcher::equal("__name__", "g")],
        0,
        raw_min - 1,
    )
    .expect("select");
    assert!(gone.is_empty());
    let engine = crate::query::QueryLimits::default().engine();
    let run = |db: &Db, q: &str| -> Vec<Sample> {
        let src = crate::query::TsdbSource(db.querier());
        let r = engine.range(&src, q, 2 * H, 28 * H, H).expect("query");
        match r.value {
            sextant_promql::Value::Matrix(m) => {
                assert_eq!(m.len(), 1, "{q}: {m:?}");
                m[0].floats.clone()
            }
            v => panic!("{q}: {v:?}"),
        }
    };
    let in_range = |t: i64| gauge.iter().filter(move |s| s.t >= t - H && s.t < t);
    type Want<'a> = Box<dyn Fn(i64) -> f64 + 'a>;
    let cases: Vec<(&str, Want)> = vec![
        (
            "max_over_time(g[1h])",
            Box::new(move |t| in_range(t).map(|s| s.v).fold(f64::MIN, f64::max)),
        ),
        (
            "min_over_time(g[1h])",
            Box::new(move |t| in_range(t).map(|s| s.v).fold(f64::MAX, f64::min)),
        ),
        (
            "sum_over_time(g[1h])",
            Box::new(move |t| in_range(t).map(|s| s.v).sum()),
        ),
        (
            "avg_over_time(g[1h])",
            Box::new(move |t| in_range(t).map(|s| s.v).sum::<f64>() / 60.0),
        ),
    ];
    for (q, want) in &cases {
        let got = run(&ds_db, q);
        assert_eq!(got.len(), 27, "{q}");
        for s in &got {
            let w = want(s.t);
            assert!(
                (s.v - w).abs() <= 1e-9 * w.abs().max(1.0),
                "{q} at {}: {} vs {w}",
                s.t,
                s.v
            );
        }
        // Over the raw copy the same query reads (t - 1h, t]: it differs by one sample at each
        // end, so it stays within the raw extremes of [t - 1h, t].
        assert_eq!(run(&raw_db, q).len(), 27, "{q}");
    }
    for q in ["rate(c_total[1h])", "increase(c_total[1h])"] {
        let (got, want) = (run(&ds_db, q), run(&raw_db, q));
        assert_eq!(got.len(), want.len(), "{q}");
        for (a, b) in got.iter().zip(&want) {
            assert_eq!(a.t, b.t);
            // (t - 1h, t] inside one 2h block (t an odd hour) and no reset in the range.
            let no_reset = (a.t - H) / (420 * 60_000) == a.t / (420 * 60_000);
            if (a.t / H) % 2 == 1 && no_reset {
                assert!(
                    (a.v - b.v).abs() <= 0.05 * b.v.abs(),
                    "{q} at {}: downsampled {} vs raw {}",
                    a.t,
                    a.v,
                    b.v
                );
            }
        }
    }
    // A plain selector with a 1h step reads the per-window average.
    let got = run(&ds_db, "g");
    assert!(!got.is_empty());
}
