//! Database-level tests: the whole path head → WAL → blocks → compaction → retention, restarts.

use std::sync::Arc;

use sextant_model::{
    FloatHistogram, Histogram, HistogramValue, Labels, MatchOp, Matcher, Sample, Span, STALE_NAN,
};

use crate::db::{Db, DbOptions};
use crate::head::HeadOptions;
use crate::querier::Querier;

const H: i64 = 3600 * 1000;

fn opts(range: i64) -> DbOptions {
    DbOptions {
        head: HeadOptions {
            chunk_range: range,
            ..HeadOptions::default()
        },
        retention: 0,
        retention_size: 0,
        wal_segment_size: 1 << 20,
        wal_fsync: false,
        max_exemplars: 100,
        agent: false,
        wal_hold_max_bytes: 0,
    }
}

fn ls(name: &str, i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", name.to_string()),
        ("job", "t".into()),
        ("i", i.to_string()),
    ])
}

fn write(db: &Db, name: &str, series: usize, from: i64, to: i64, step: i64) {
    let mut t = from;
    while t < to {
        let mut app = db.appender();
        for i in 0..series {
            app.append(&ls(name, i), t, (t / step) as f64 + i as f64)
                .expect("append");
        }
        let st = app.commit().expect("commit");
        assert_eq!(st.rejected, 0, "{:?}", st.first_error);
        t += step;
    }
}

fn all(db: &Db, name: &str) -> Vec<crate::querier::SeriesData> {
    db.querier()
        .select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX)
        .expect("select")
}

#[test]
fn append_query_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Db::open(dir.path(), opts(2 * H)).expect("open");
        write(&db, "m", 3, 0, 600_000, 15_000);
        let mut app = db.appender();
        app.append(&ls("m", 0), 600_000, STALE_NAN).expect("stale");
        app.commit().expect("commit");
        db.close().expect("close");
    }
    let db = Db::open(dir.path(), opts(2 * H)).expect("reopen");
    let got = all(&db, "m");
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].floats.len(), 41);
    assert!(
        sextant_model::is_stale_nan(got[0].floats[40].v),
        "staleness marker survives bit-exact"
    );
    assert_eq!(got[2].floats[1], Sample::new(15_000, 3.0));
    let q = db.querier();
    let m = |op, n: &str, v: &str| Matcher::new(op, n, v).expect("matcher");
    assert_eq!(
        q.select(&[m(MatchOp::Regex, "i", "0|2")], 0, i64::MAX)
            .expect("sel")
            .len(),
        2
    );
    assert_eq!(
        q.select(
            &[
                m(MatchOp::Equal, "__name__", "m"),
                m(MatchOp::NotEqual, "i", "1")
            ],
            0,
            i64::MAX
        )
        .expect("sel")
        .len(),
        2
    );
    assert_eq!(
        q.select(
            &[
                m(MatchOp::Equal, "__name__", "m"),
                m(MatchOp::NotRegex, "i", "[01]")
            ],
            0,
            i64::MAX
        )
        .expect("sel")
        .len(),
        1
    );
    assert_eq!(
        q.select(
            &[
                m(MatchOp::Equal, "__name__", "m"),
                m(MatchOp::Equal, "missing", "")
            ],
            0,
            i64::MAX
        )
        .expect("sel")
        .len(),
        3
    );
    assert_eq!(
        q.select(&[m(MatchOp::Equal, "__name__", "m")], 30_000, 45_000)
            .expect("sel")[0]
            .floats
            .len(),
        2
    );
    assert_eq!(
        q.label_values("i", &[], i64::MIN, i64::MAX)
            .expect("values"),
        vec!["0", "1", "2"]
    );
    assert_eq!(
        q.label_names(&[], i64::MIN, i64::MAX).expect("names"),
        vec!["__name__", "i", "job"]
    );
}

#[test]
fn head_is_cut_into_blocks_and_compacted_and_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let range = 60_000; // 1-minute blocks keep the test small
    {
        let db = Db::open(dir.path(), opts(range)).expect("open");
        write(&db, "c", 4, 0, 10 * range, 1_000);
        db.maintain();
        assert!(!db.blocks().is_empty(), "head was cut into blocks");
        assert!(
            db.head().min_time() >= 8 * range,
            "head truncated, min {}",
            db.head().min_time()
        );
        let got = all(&db, "c");
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[1].floats.len(),
            600,
            "every sample readable across blocks and head"
        );
        for (k, s) in got[1].floats.iter().enumerate() {
            assert_eq!(*s, Sample::new(k as i64 * 1000, k as f64 + 1.0));
        }
        // 3 blocks of one range compact into one of the next range.
        assert!(
            db.metrics()
                .compactions
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
        assert!(db.blocks().iter().any(|b| b.meta().compaction.level > 1));
    }
    // Kill-like restart: no close.
    let db = Db::open(dir.path(), opts(range)).expect("reopen");
    let got = all(&db, "c");
    assert_eq!(got[3].floats.len(), 600);
    assert_eq!(got[3].floats[599], Sample::new(599_000, 602.0));
    // Samples in ranges already in blocks are refused.
    let mut app = db.appender();
    app.append(&ls("c", 0), 1_000_000, 1.0).expect("queue");
    app.append(&ls("c", 0), 5_000, 1.0).expect("queue");
    let st = app.commit().expect("commit");
    assert_eq!(st.rejected, 1);
}

#[test]
fn retention_by_time_and_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let range = 60_000;
    let db = Db::open(
        dir.path(),
        DbOptions {
            retention: 4 * range,
            ..opts(range)
        },
    )
    .expect("open");
    write(&db, "r", 2, 0, 12 * range, 5_000);
    db.maintain();
    let oldest = db
        .blocks()
        .iter()
        .map(|b| b.meta().min_time)
        .min()
        .expect("blocks remain");
    assert!(
        oldest >= 12 * range - 6 * range,
        "old blocks deleted, oldest starts at {oldest}"
    );
    assert!(
        db.metrics()
            .blocks_deleted_by_retention
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    let first = all(&db, "r")[0].floats[0].t;
    assert!(
        first >= 6 * range,
        "data before the retention is gone, first {first}"
    );

    let dir2 = tempfile::tempdir().expect("tempdir");
    let db2 = Db::open(
        dir2.path(),
        DbOptions {
            retention_size: 1,
            ..opts(range)
        },
    )
    .expect("open");
    write(&db2, "r", 2, 0, 12 * range, 5_000);
    db2.maintain();
    assert!(
        db2.blocks().is_empty(),
        "size retention removes every block when over"
    );
}

#[test]
fn native_histograms_round_trip_through_wal_and_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let range = 60_000;
    let lbl = Labels::from_pairs([("__name__", "lat_seconds"), ("job", "h")]);
    let flbl = Labels::from_pairs([("__name__", "flat_seconds"), ("job", "h")]);
    let mk = |k: u64| Histogram {
        schema: 1,
        zero_threshold: 1e-128,
        zero_count: k,
        count: 4 * k,
        sum: 1.5 * k as f64,
        positive_spans: vec![
            Span {
                offset: 0,
                length: 2,
            },
            Span {
                offset: 1,
                length: 1,
            },
        ],
        positive_buckets: vec![k as i64, 0, k as i64],
        ..Default::default()
    };
    let mkf = |k: u64| FloatHistogram {
        schema: -53,
        count: 2.0 * k as f64,
        sum: 0.25 * k as f64,
        positive_spans: vec![Span {
            offset: 0,
            length: 2,
        }],
        positive_buckets: vec![k as f64, k as f64],
        custom_values: vec![0.1, 1.0],
        ..Default::default()
    };
    {
        let db = Db::open(dir.path(), opts(range)).expect("open");
        for k in 0..300u64 {
            let mut app = db.appender();
            app.append_histogram(&lbl, k as i64 * 1000, HistogramValue::Int(mk(k + 1)))
                .expect("hist");
            app.append_histogram(&flbl, k as i64 * 1000, HistogramValue::Float(mkf(k + 1)))
                .expect("fhist");
            app.commit().expect("commit");
        }
        db.maintain();
        assert!(!db.blocks().is_empty());
    }
    let db = Db::open(dir.path(), opts(range)).expect("reopen");
    let got = db
        .querier()
        .select(&[Matcher::equal("job", "h")], i64::MIN, i64::MAX)
        .expect("select");
    assert_eq!(got.len(), 2);
    let f = &got[0];
    let i = &got[1];
    assert_eq!(i.labels.metric_name(), Some("lat_seconds"));
    assert_eq!(i.histograms.len(), 300);
    for (k, (t, h)) in i.histograms.iter().enumerate() {
        assert_eq!(*t, k as i64 * 1000);
        match h {
            HistogramValue::Int(h) => {
                assert_eq!(h.count, 4 * (k as u64 + 1));
                assert_eq!(h.positive_buckets, mk(k as u64 + 1).positive_buckets);
            }
            other => panic!("integer histogram came back as {other:?}"),
        }
    }
    assert_eq!(f.histograms.len(), 300);
    match &f.histograms[10].1 {
        HistogramValue::Float(h) => {
            assert_eq!(h.custom_values, vec![0.1, 1.0]);
            assert_eq!(h.positive_buckets, vec![11.0, 11.0]);
        }
        other => panic!("float histogram came back as {other:?}"),
    }
}

#[test]
fn concurrent_appenders_and_readers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(Db::open(dir.path(), opts(2 * H)).expect("open"));
    let mut handles = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        handles.push(std::thread::spawn(move || {
            for k in 0..200i64 {
                let mut app = db.appender();
                for i in 0..20 {
                    app.append(&ls("conc", w * 100 + i), k * 1000, k as f64)
                        .expect("append");
                }
                app.commit().expect("commit");
                let _ = db
                    .querier()
                    .select(&[Matcher::equal("__name__", "conc")], 0, i64::MAX);
            }
        }));
    }
    for h in handles {
        h.join().expect("thread");
    }
    let got = all(&db, "conc");
    assert_eq!(got.len(), 80);
    assert!(got.iter().all(|s| s.floats.len() == 200));
}

fn ex(trace: &str, value: f64, ts: i64) -> sextant_model::Exemplar {
    sextant_model::Exemplar {
        labels: Labels::from_pairs([("trace_id", trace)]),
        value,
        ts,
    }
}

fn exemplars_of(db: &Db, name: &str) -> Vec<(String, f64, i64)> {
    db.select_exemplars(
        i64::MIN,
        i64::MAX,
        &[vec![Matcher::equal("__name__", name)]],
    )
    .into_iter()
    .flat_map(|s| s.exemplars)
    .map(|e| (e.labels.to_string(), e.value, e.ts))
    .collect()
}

#[test]
fn exemplars_are_stored_deduplicated_ordered_and_replayed_from_the_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let want = vec![
        (r#"{trace_id="a"}"#.to_string(), 1.0, 1_000),
        (r#"{trace_id="b"}"#.to_string(), 2.0, 2_000),
    ];
    {
        let db = Db::open(dir.path(), opts(2 * H)).expect("open");
        let mut app = db.appender();
        app.append(&ls("e", 0), 1_000, 1.0).expect("append");
        app.append_exemplar(&ls("e", 0), ex("a", 1.0, 1_000))
            .expect("exemplar");
        app.append_exemplar(&ls("e", 0), ex("b", 2.0, 2_000))
            .expect("exemplar");
        // Duplicate of the newest: dropped without error; older: out of order.
        app.append_exemplar(&ls("e", 0), ex("b", 2.0, 2_000))
            .expect("exemplar");
        app.append_exemplar(&ls("e", 0), ex("z", 9.0, 500))
            .expect("exemplar");
        let st = app.commit().expect("commit");
        assert_eq!((st.exemplars, st.exemplars_rejected), (2, 1));
        assert!(
            st.first_exemplar_error
                .as_deref()
                .unwrap_or("")
                .starts_with("out of order exemplar"),
            "{:?}",
            st.first_exemplar_error
        );
        // A label set over 128 characters is refused when queued.
        let mut app = db.appender();
        assert!(app
            .append_exemplar(&ls("e", 0), ex(&"x".repeat(121), 1.0, 3_000))
            .is_err());
        // An exemplar alone creates (and logs) its series.
        app.append_exemplar(&ls("only_ex", 0), ex("c", 3.0, 3_000))
            .expect("exemplar");
        app.commit().expect("commit");
        assert_eq!(exemplars_of(&db, "e"), want);
        let m = db.metrics();
        assert_eq!(
            m.exemplars_appended
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
        assert_eq!(
            m.exemplars_out_of_order
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(db.exemplar_stats(), (3, 2, 100, 3_000));
        // Like kill -9: no close, no drop.
        std::mem::forget(db);
    }
    let db = Db::open(dir.path(), opts(2 * H)).expect("reopen");
    assert_eq!(exemplars_of(&db, "e"), want);
    assert_eq!(exemplars_of(&db, "only_ex").len(), 1);
    // Order is still enforced after the replay.
    let mut app = db.appender();
    app.append_exemplar(&ls("e", 0), ex("y", 1.0, 1_500))
        .expect("queue");
    assert_eq!(app.commit().expect("commit").exemplars_rejected, 1);
}

#[test]
fn exemplar_limit_is_global_and_survives_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let range = 60_000;
    let o = DbOptions {
        max_exemplars: 5,
        ..opts(range)
    };
    {
        let db = Db::open(dir.path(), o.clone()).expect("open");
        let mut t = 0;
        while t < 10 * range {
            let mut app = db.appender();
            for i in 0..2 {
                app.append(&ls("c", i), t, t as f64).expect("append");
                if t % 10_000 == 0 {
                    app.append_exemplar(&ls("c", i), ex(&format!("{i}-{t}"), 1.0, t))
                        .expect("exemplar");
                }
            }
            app.commit().expect("commit");
            t += 1_000;
        }
        assert_eq!(db.exemplar_stats().0, 5, "ring holds at most max_exemplars");
        db.maintain();
        assert!(!db.blocks().is_empty(), "head was cut, WAL checkpointed");
        db.maintain();
    }
    let db = Db::open(dir.path(), o).expect("reopen");
    let got: Vec<i64> = db
        .select_exemplars(0, i64::MAX, &[vec![Matcher::equal("__name__", "c")]])
        .iter()
        .flat_map(|s| s.exemplars.iter().map(|e| e.ts))
        .collect();
    // The newest five (t = 580s and 590s for series 1, 570s.. for series 0) after a restart.
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.iter().all(|t| *t >= 570_000), "{got:?}");
}

#[test]
fn wal_without_exemplar_records_replays_and_disabled_storage_ignores_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // A log as written before exemplars existed: series and samples only.
        let (mut wal, _) = crate::wal::Wal::open(
            &dir.path().join("wal"),
            crate::wal::WalOptions::default(),
            |_| {},
        )
        .expect("wal");
        let recs = [
            crate::wal::Record::Series(vec![crate::wal::RefSeries {
                r: 1,
                labels: ls("old", 0),
            }]),
            crate::wal::Record::Samples(vec![crate::wal::RefSample { r: 1, t: 5, v: 2.5 }]),
        ];
        let bufs: Vec<Vec<u8>> = recs
            .iter()
            .map(|r| {
                let mut b = Vec::new();
                crate::wal::encode(r, &mut b);
                b
            })
            .collect();
        wal.log(&bufs).expect("log");
    }
    {
        let db = Db::open(dir.path(), opts(2 * H)).expect("open old WAL");
        assert_eq!(all(&db, "old")[0].floats, vec![Sample::new(5, 2.5)]);
        let mut app = db.appender();
        app.append_exemplar(&ls("old", 0), ex("a", 1.0, 6))
            .expect("exemplar");
        app.commit().expect("commit");
    }
    let db = Db::open(
        dir.path(),
        DbOptions {
            max_exemplars: 0,
            ..opts(2 * H)
        },
    )
    .expect("open with exemplars disabled");
    assert!(exemplars_of(&db, "old").is_empty());
    assert_eq!(all(&db, "old")[0].floats.len(), 1);
}

/// The lazy read path (select labels and chunk references, decode per series and window)
/// returns exactly what the eager `select` returns, across blocks and the head, for floats,
/// staleness markers and histograms, and for windows narrower than the selected range.
#[test]
fn lazy_select_reads_what_select_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let range = 60_000;
    let db = Db::open(dir.path(), opts(range)).expect("open");
    write(&db, "c", 5, 0, 10 * range, 1_000);
    let h = Labels::from_pairs([("__name__", "c"), ("job", "h")]);
    for k in 0..200u64 {
        let mut app = db.appender();
        let hv = Histogram {
            count: k,
            sum: k as f64,
            zero_count: k,
            ..Default::default()
        };
        app.append_histogram(&h, 3000 + k as i64 * 2000, HistogramValue::Int(hv))
            .expect("hist");
        app.commit().expect("commit");
    }
    let mut app = db.appender();
    app.append(&ls("c", 2), 10 * range + 500, STALE_NAN)
        .expect("stale");
    app.commit().expect("commit");
    db.maintain();
    write(&db, "c", 3, 10 * range + 1_000, 12 * range, 1_000);
    assert!(!db.blocks().is_empty(), "head was cut into blocks");
    let q = db.querier();
    let m = [Matcher::new(MatchOp::Regex, "__name__", "c").expect("matcher")];
    for (mint, maxt) in [
        (i64::MIN, i64::MAX),
        (0, 12 * range),
        (30_500, 30_500),
        (59_000, 61_000),
        (5 * range + 123, 11 * range - 7),
        (10 * range, 10 * range + 800),
        (13 * range, 14 * range),
    ] {
        let eager = q.select(&m, mint, maxt).expect("select");
        let lazy = q.select_lazy(&m, mint, maxt).expect("select_lazy");
        let mut buf = crate::querier::SeriesData {
            labels: Labels::default(),
            floats: Vec::new(),
            histograms: Vec::new(),
        };
        let mut read = Vec::new();
        for ls in &lazy {
            ls.read(mint, maxt, &mut buf).expect("read");
            assert!(ls.max_samples >= buf.floats.len() + buf.histograms.len());
            assert!(ls.may_have_histograms || buf.histograms.is_empty());
            if !buf.floats.is_empty() || !buf.histograms.is_empty() {
                read.push(crate::querier::SeriesData {
                    labels: ls.labels.clone(),
                    floats: buf.floats.clone(),
                    histograms: buf.histograms.clone(),
                });
            }
            // A narrower window reads the same samples as filtering the wider one.
            let (a, b) = (mint.max(0) + 20_000, maxt.min(11 * range));
            let want: Vec<Sample> = buf
                .floats
                .iter()
                .filter(|p| p.t >= a && p.t <= b)
                .copied()
                .collect();
            ls.read(a, b, &mut buf).expect("read window");
            // Debug strings: staleness markers are NaN.
            assert!(
                format!("{:?}", buf.floats) == format!("{want:?}"),
                "{} in [{a}, {b}]",
                ls.labels
            );
        }
        assert!(
            format!("{read:?}") == format!("{eager:?}"),
            "[{mint}, {maxt}]: {} series read lazily, {} eagerly",
            read.len(),
            eager.len()
        );
    }
}

/// The head sorts selected series on symbol ranks instead of label strings: the order must
/// be exactly the label sets' order, whatever order the strings were interned in (prefixes,
/// a string that is both a name and a value, label sets of different lengths).
#[test]
fn head_selection_is_sorted_like_label_sets() {
    use proptest::prelude::*;
    let words = [
        "a", "ab", "b", "", "zz", "job", "a\u{e9}", "B", "~", "abc", "0",
    ];
    let strategy = proptest::collection::vec(
        proptest::collection::vec((0..words.len(), 0..words.len()), 0..4),
        1..40,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(&strategy, |sets| {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Db::open(dir.path(), opts(2 * H)).expect("open");
            let mut want: Vec<Labels> = Vec::new();
            let mut app = db.appender();
            for pairs in &sets {
                // Names must be valid label names: prefix them; values may be anything.
                let l = Labels::from_pairs(
                    std::iter::once(("__name__".to_string(), "m".to_string())).chain(
                        pairs
                            .iter()
                            .map(|(n, v)| (format!("l{}", words[*n]), words[*v].to_string())),
                    ),
                );
                if l.validate().is_err() || want.contains(&l) {
                    continue;
                }
                app.append(&l, 1000, 1.0).expect("append");
                want.push(l);
            }
            app.commit().expect("commit");
            want.sort();
            let m = [Matcher::equal("__name__", "m")];
            // The head's own order (the querier would sort again).
            let got: Vec<Labels> = db
                .head()
                .select_lazy(&m, 0, 2000)
                .into_iter()
                .map(|s| s.labels)
                .collect();
            prop_assert_eq!(got, want);
            Ok(())
        })
        .expect("property");
}

/// Raw blocks past retention are downsampled first; afterwards hinted selects answer from the
/// aggregates for the time before the oldest raw sample, exactly per 5m window, while plain
/// selects never see aggregates. Aggregates survive a restart.
#[test]
fn downsampled_blocks_answer_after_retention() {
    use crate::downsample::RES_5M;
    use crate::querier::SelectHints;
    let dir = tempfile::tempdir().expect("tempdir");
    let o = DbOptions {
        retention: 20 * H,
        ..opts(2 * H)
    };
    let name = "ds_total";
    let l = Labels::from_pairs([("__name__", name), ("job", "t")]);
    // A counter with a reset every 7h, one sample a minute for 60h.
    let raw: Vec<Sample> = (0..60 * 60)
        .map(|i| {
            let t = i as i64 * 60_000;
            Sample {
                t,
                v: ((i % 420) * (1 + i % 3)) as f64,
            }
        })
        .collect();
    let m = [Matcher::equal("__name__", name)];
    let hinted = |db: &Db, func: Option<&str>, range: i64, step: i64| {
        db.querier()
            .select_lazy_hinted(
                &m,
                0,
                60 * H,
                &SelectHints {
                    func: func.map(str::to_string),
                    range,
                    step,
                },
            )
            .expect("select")
            .into_iter()
            .map(|s| {
                let mut sd = crate::querier::SeriesData {
                    labels: s.labels.clone(),
                    floats: Vec::new(),
                    histograms: Vec::new(),
                };
                s.read(0, 60 * H, &mut sd).expect("read");
                sd
            })
            .collect::<Vec<_>>()
    };
    {
        let db = Db::open(dir.path(), o.clone()).expect("open");
        for s in &raw {
            let mut app = db.appender();
            app.append(&l, s.t, s.v).expect("append");
            app.commit().expect("commit");
        }
        db.maintain();
        assert!(!db.downsampled_blocks().is_empty(), "nothing downsampled");
    }
    let db = Db::open(dir.path(), o).expect("reopen");
    let raw_min = db
        .blocks()
        .iter()
        .map(|b| b.meta().min_time)
        .min()
        .expect("raw blocks left");
    assert!(raw_min >= 30 * H, "retention kept {raw_min}");
    // Plain selects: raw only.
    let plain = all(&db, name);
    assert_eq!(plain.len(), 1);
    assert!(plain[0].floats.iter().all(|s| s.t >= raw_min));
    assert_eq!(plain[0].labels, l);
    // Per 5m window before raw_min: max, min, sum, avg equal the raw window's.
    let windows: Vec<&[Sample]> = raw
        .chunk_by(|a, b| a.t.div_euclid(RES_5M) == b.t.div_euclid(RES_5M))
        .filter(|w| w[0].t < raw_min)
        .collect();
    type Agg = fn(&[Sample]) -> f64;
    let cases: [(Option<&str>, i64, Agg); 5] = [
        (Some("max_over_time"), H, |w| {
            w.iter().map(|s| s.v).fold(f64::MIN, f64::max)
        }),
        (Some("min_over_time"), H, |w| {
            w.iter().map(|s| s.v).fold(f64::MAX, f64::min)
        }),
        (Some("sum_over_time"), H, |w| w.iter().map(|s| s.v).sum()),
        (Some("avg_over_time"), H, |w| {
            w.iter().map(|s| s.v).sum::<f64>() / w.len() as f64
        }),
        (None, 0, |w| {
            w.iter().map(|s| s.v).sum::<f64>() / w.len() as f64
        }),
    ];
    for (func, range, f) in cases {
        let got = hinted(&db, func, range, H);
        assert_eq!(got.len(), 1, "{func:?}");
        assert_eq!(got[0].labels, l);
        let old: Vec<Sample> = got[0]
            .floats
            .iter()
            .copied()
            .filter(|s| s.t < raw_min)
            .collect();
        let want: Vec<Sample> = windows
            .iter()
            .map(|w| Sample {
                t: w[w.len() - 1].t,
                v: f(w),
            })
            .collect();
        assert_eq!(old, want, "{func:?}");
        // Raw data is returned unchanged after it.
        let new: Vec<Sample> = got[0]
            .floats
            .iter()
            .copied()
            .filter(|s| s.t >= raw_min)
            .collect();
        assert_eq!(new, plain[0].floats, "{func:?}");
    }
    // rate/increase read the reset-adjusted counter: within one downsampled block, the
    // difference of two of its samples is the raw increase between their timestamps.
    let got = hinted(&db, Some("rate"), H, H);
    let counter: Vec<Sample> = got[0]
        .floats
        .iter()
        .copied()
        .filter(|s| s.t < raw_min)
        .collect();
    assert!(counter.len() > 100);
    let raw_increase = |a: i64, b: i64| {
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
    };
    // Across 2h block boundaries too: the counter aggregates of consecutive blocks are
    // stitched on raw values.
    for pair in counter.windows(2) {
        let (got, want) = (pair[1].v - pair[0].v, raw_increase(pair[0].t, pair[1].t));
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{pair:?}: {got} vs {want}"
        );
    }
    // And into the raw data after them: the newest aggregate is the raw value it stands for,
    // so rate() sees no spurious reset where raw data takes over.
    let first_raw = got[0]
        .floats
        .iter()
        .find(|s| s.t >= raw_min)
        .copied()
        .expect("raw after aggregates");
    let last_aggr = counter[counter.len() - 1];
    let at = |t: i64| raw.iter().find(|s| s.t == t).map(|s| s.v);
    assert_eq!(Some(last_aggr.v), at(last_aggr.t), "{last_aggr:?}");
    let prom_increase = if first_raw.v < last_aggr.v {
        first_raw.v
    } else {
        first_raw.v - last_aggr.v
    };
    assert_eq!(
        prom_increase,
        raw_increase(last_aggr.t, first_raw.t),
        "{last_aggr:?} → {first_raw:?}"
    );
    // Functions aggregates cannot answer, ranges shorter than the window, and small steps for
    // plain selectors read raw data only.
    for (func, range, step) in [
        (Some("count_over_time"), H, H),
        (Some("last_over_time"), H, H),
        (Some("max_over_time"), 60_000, H),
        (Some("rate"), RES_5M, H),
        (None, 0, 60_000),
    ] {
        let got = hinted(&db, func, range, step);
        assert!(
            got[0].floats.iter().all(|s| s.t >= raw_min),
            "{func:?} {range} {step}"
        );
    }
}

/// An archive stand-in: holds blocks once `held` is set, has no blocks of its own.
struct Holds(std::sync::atomic::AtomicBool);

impl crate::db::ExternalBlocks for Holds {
    fn blocks(
        &self,
        _: i64,
        _: i64,
        _: &[Arc<crate::block::Block>],
    ) -> Result<Vec<Arc<crate::block::Block>>, crate::querier::QueryError> {
        Ok(Vec::new())
    }
    fn holds(&self, _: &str) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Aggregate blocks past their retention (10 × the time retention) are deleted only once the
/// archive holds them, like raw blocks.
#[test]
fn downsampled_retention_waits_for_the_archive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = DbOptions {
        retention: 2 * H,
        ..opts(2 * H)
    };
    let db = Db::open(dir.path(), o).expect("open");
    let ext = Arc::new(Holds(std::sync::atomic::AtomicBool::new(false)));
    db.set_external_blocks(ext.clone());
    write(&db, "dsr", 1, 0, 40 * H, 60_000);
    db.maintain();
    let before = db.downsampled_blocks().len();
    assert!(before > 0, "nothing downsampled");
    // Data spans 40h: aggregates ending more than 20h before the newest sample are past their
    // retention, but the archive does not hold them yet.
    db.maintain();
    assert_eq!(db.downsampled_blocks().len(), before);
    ext.0.store(true, std::sync::atomic::Ordering::Relaxed);
    db.maintain();
    let after = db.downsampled_blocks();
    assert!(after.len() < before, "{} of {before} left", after.len());
    assert!(after
        .iter()
        .all(|(_, b)| b.meta().max_time > 40 * H - 60_000 - 20 * H));
}

fn wal_segments(dir: &std::path::Path) -> Vec<u64> {
    crate::wal::tail::listing(&dir.join("wal"))
        .expect("listing")
        .0
}

#[test]
fn remote_write_hold_keeps_wal_segments_until_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = DbOptions {
        agent: true,
        wal_segment_size: 4096,
        ..opts(2 * H)
    };
    let db = Db::open(dir.path(), o).expect("open");
    db.hold_wal_from(0);
    write(&db, "held", 20, 0, 200_000, 1000);
    let segs = wal_segments(dir.path());
    assert!(segs.len() > 3, "{segs:?}");
    db.maintain();
    // A queue still needs segment 0: nothing is checkpointed away.
    assert_eq!(wal_segments(dir.path()), segs);
    // The queue read up to the third segment: the ones before it go.
    db.hold_wal_from(segs[2]);
    db.maintain();
    assert_eq!(wal_segments(dir.path())[0], segs[2]);
    // Every queue done: all closed segments go, the one being written stays.
    db.hold_wal_from(u64::MAX);
    db.maintain();
    assert_eq!(
        wal_segments(dir.path()),
        vec![*segs.last().expect("segment")]
    );
    // Agent mode writes no blocks.
    assert!(db.blocks().is_empty());
}

#[test]
fn remote_write_hold_is_bounded_by_wal_hold_max_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = DbOptions {
        agent: true,
        wal_segment_size: 4096,
        wal_hold_max_bytes: 8192,
        ..opts(2 * H)
    };
    let db = Db::open(dir.path(), o).expect("open");
    db.hold_wal_from(0);
    write(&db, "held", 20, 0, 200_000, 1000);
    let segs = wal_segments(dir.path());
    assert!(segs.len() > 3, "{segs:?}");
    db.maintain();
    assert_eq!(
        wal_segments(dir.path()),
        vec![*segs.last().expect("segment")]
    );
}

#[test]
fn delete_series_hides_samples_in_head_and_blocks_survives_restart_and_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let step = 60_000;
    let sel_one = |db: &Db, i: usize| -> Vec<i64> {
        db.querier()
            .select(
                &[
                    Matcher::equal("__name__", "m"),
                    Matcher::equal("i", i.to_string()),
                ],
                i64::MIN,
                i64::MAX,
            )
            .expect("select")
            .into_iter()
            .flat_map(|s| s.floats.into_iter().map(|x| x.t))
            .collect()
    };
    {
        let db = Db::open(dir.path(), opts(2 * H)).expect("open");
        write(&db, "m", 3, 0, 8 * H, step);
        db.maintain();
        assert!(!db.blocks().is_empty(), "head was cut into blocks");
        let before = sel_one(&db, 1).len();
        // Delete [1h, 6h] of series i=1 only: spans blocks and the head.
        let m = [
            Matcher::equal("__name__", "m"),
            Matcher::new(MatchOp::Equal, "i", "1").expect("matcher"),
        ];
        assert_eq!(db.delete_series(&m, H, 6 * H).expect("delete"), 1);
        let after = sel_one(&db, 1);
        assert!(after.iter().all(|&t| !(H..=6 * H).contains(&t)));
        assert_eq!(after.len(), before - (5 * H / step + 1) as usize);
        assert_eq!(sel_one(&db, 0).len(), before, "other series untouched");
        // Lazy selection agrees.
        let lazy = db
            .querier()
            .select_lazy(&[Matcher::equal("i", "1")], i64::MIN, i64::MAX)
            .expect("lazy");
        let mut sd = crate::querier::SeriesData {
            labels: Labels::default(),
            floats: Vec::new(),
            histograms: Vec::new(),
        };
        lazy[0].read(i64::MIN, i64::MAX, &mut sd).expect("read");
        assert_eq!(sd.floats.iter().map(|s| s.t).collect::<Vec<_>>(), after);
        db.close().expect("close");
    }
    let db = Db::open(dir.path(), opts(2 * H)).expect("reopen");
    let after = sel_one(&db, 1);
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|&t| !(H..=6 * H).contains(&t)),
        "tombstones persisted"
    );
    // Deleting a whole series removes it from /series.
    db.delete_series(&[Matcher::equal("i", "2")], i64::MIN, i64::MAX)
        .expect("delete all");
    let listed = db
        .querier()
        .series(&[Matcher::equal("__name__", "m")], i64::MIN, i64::MAX)
        .expect("series");
    assert_eq!(listed.len(), 2);
    let rewritten = db.clean_tombstones().expect("clean");
    assert!(rewritten > 0);
    assert_eq!(sel_one(&db, 1), after, "same result after clean");
    assert!(sel_one(&db, 2).is_empty());
    // The blocks no longer hold the deleted samples: raw block reads agree.
    let raw: usize = db
        .blocks()
        .iter()
        .map(|b| {
            b.select(&[Matcher::equal("i", "1")], H, 6 * H)
                .expect("block select")
                .iter()
                .map(|s| s.floats.len())
                .sum::<usize>()
        })
        .sum();
    assert_eq!(raw, 0, "deleted samples gone from blocks");
    drop(db);
    let db = Db::open(dir.path(), opts(2 * H)).expect("reopen after clean");
    assert_eq!(sel_one(&db, 1), after);
}

/// Samples deleted while still in the head never reach a block, and compaction leaves out
/// samples deleted after they were cut (Prometheus drops tombstoned samples when it compacts).
#[test]
fn head_cut_and_compaction_drop_deleted_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let step = 60_000;
    let db = Db::open(dir.path(), opts(2 * H)).expect("open");
    let raw_in_blocks = |db: &Db, i: &str, a: i64, b: i64| -> usize {
        db.blocks()
            .iter()
            .map(|blk| {
                blk.select(&[Matcher::equal("i", i)], a, b)
                    .expect("block select")
                    .iter()
                    .map(|s| s.floats.len())
                    .sum::<usize>()
            })
            .sum()
    };
    write(&db, "m", 2, 0, 3 * H, step);
    // [30m, 90m] of i=0 is deleted while in the head: the cut block never holds it.
    db.delete_series(&[Matcher::equal("i", "0")], H / 2, 3 * H / 2)
        .expect("delete in head");
    write(&db, "m", 2, 3 * H, 12 * H, step);
    while db.cut_head_once().expect("cut") {}
    assert!(db.blocks().len() >= 3, "head was cut into 2h blocks");
    assert_eq!(raw_in_blocks(&db, "0", H / 2, 3 * H / 2), 0);
    assert!(
        raw_in_blocks(&db, "1", H / 2, 3 * H / 2) > 0,
        "other series kept"
    );
    // Delete [2h, 5h] of i=1 once it is in 2h blocks; merging blocks drops it.
    db.delete_series(&[Matcher::equal("i", "1")], 2 * H, 5 * H)
        .expect("delete in blocks");
    assert!(
        raw_in_blocks(&db, "1", 2 * H, 5 * H) > 0,
        "still stored, only hidden"
    );
    db.compact_blocks().expect("compact");
    let merged = db
        .blocks()
        .iter()
        .any(|b| b.meta().min_time <= 2 * H && b.meta().max_time >= 5 * H);
    assert!(
        merged,
        "the 2h blocks over [2h, 5h] were compacted into one"
    );
    assert_eq!(
        raw_in_blocks(&db, "1", 2 * H, 5 * H),
        0,
        "compaction dropped them"
    );
    assert!(
        raw_in_blocks(&db, "0", 2 * H, 5 * H) > 0,
        "other series kept"
    );
}

#[test]
fn series_caps_per_tenant_are_counted_changeable_and_freed() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(2 * H);
    o.head.tenant_label = Some("team".into());
    o.head.max_series_per_tenant = 2;
    o.head.max_series_per_metric = 5;
    let db = Db::open(dir.path(), o).unwrap();
    let t = |team: &str, i: usize| {
        Labels::from_pairs([
            ("__name__", "m".to_string()),
            ("team", team.to_string()),
            ("i", i.to_string()),
        ])
    };
    let mut app = db.appender();
    app.append(&t("a", 0), 1000, 1.0).unwrap();
    app.append(&t("a", 1), 1000, 1.0).unwrap();
    let e = app.append(&t("a", 2), 1000, 1.0).unwrap_err();
    assert!(e.to_string().contains("team=\"a\""), "{e}");
    assert!(e.to_string().contains("limit series_per_tenant"), "{e}");
    // Existing series of the tenant keep taking samples; other tenants are unaffected.
    app.append(&t("a", 0), 2000, 2.0).unwrap();
    app.append(&t("b", 0), 1000, 1.0).unwrap();
    // Series without the tenant label are not counted against any tenant.
    app.append(&ls("m", 9), 1000, 1.0).unwrap();
    app.commit().unwrap();
    assert_eq!(db.head().series_limit_hits(), [0, 0, 1]);
    // Per metric: "m" has 4 series, the cap is 5.
    let mut app = db.appender();
    app.append(&t("b", 1), 1000, 1.0).unwrap();
    let e = app.append(&t("c", 0), 1000, 1.0).unwrap_err();
    assert!(e.to_string().contains("limit series_per_metric"), "{e}");
    app.commit().unwrap();
    assert_eq!(db.head().series_limit_hits(), [0, 1, 1]);
    // Raised at runtime (reload).
    db.head().set_series_limits(0, 0, 3);
    let mut app = db.appender();
    app.append(&t("a", 2), 3000, 1.0).unwrap();
    let e = app.append(&t("a", 3), 3000, 1.0).unwrap_err();
    assert!(e.to_string().contains("maximum of 3"), "{e}");
    app.commit().unwrap();
    // Series dropped from the head free their tenant's slots.
    db.head().truncate(10_000);
    let mut app = db.appender();
    for i in 10..13 {
        app.append(&t("a", i), 20_000, 1.0).unwrap();
    }
    app.commit().unwrap();
    // The global cap.
    db.head()
        .set_series_limits(db.head().stats(1).num_series, 0, 0);
    let mut app = db.appender();
    let e = app.append(&ls("other", 0), 20_000, 1.0).unwrap_err();
    assert!(e.to_string().contains("(limit series)"), "{e}");
    app.commit().unwrap();
    assert_eq!(db.head().series_limit_hits()[0], 1);
}
