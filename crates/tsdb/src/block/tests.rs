//! Tests of writing, reading, compacting and planning blocks.

use super::*;
use crate::chunkenc::HistogramChunk;
use sextant_model::Histogram;

fn ls(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value).expect("valid matcher")
}

fn float_series(
    labels: Labels,
    ts: impl Iterator<Item = i64>,
    f: impl Fn(i64) -> f64,
) -> BlockSeries {
    BlockSeries {
        labels,
        floats: ts.map(|t| Sample::new(t, f(t))).collect(),
        hist_chunks: Vec::new(),
    }
}

fn hist_chunk(ts: &[i64]) -> RawChunk {
    let mut c = HistogramChunk::new();
    for &t in ts {
        let h = Histogram {
            count: t as u64,
            zero_count: t as u64,
            ..Default::default()
        };
        c.append(t, &h).expect("append histogram");
    }
    RawChunk {
        encoding: 2,
        min_t: ts[0],
        max_t: ts[ts.len() - 1],
        data: c.bytes().to_vec(),
    }
}

/// Three series in job a/b and one histogram series, samples every 10 over [0, 1000).
fn sample_block(parent: &Path) -> Block {
    let series = vec![
        float_series(
            ls(&[("__name__", "up"), ("job", "b"), ("instance", "x")]),
            (0..1000).step_by(10),
            |t| t as f64,
        ),
        float_series(
            ls(&[("__name__", "up"), ("job", "a"), ("instance", "x")]),
            (0..1000).step_by(10),
            |t| (t / 10) as f64 * 0.5,
        ),
        float_series(
            ls(&[("__name__", "requests"), ("job", "a")]),
            (500..1000).step_by(10),
            |_| f64::from_bits(sextant_model::STALE_NAN_BITS),
        ),
        BlockSeries {
            labels: ls(&[("__name__", "latency"), ("job", "c")]),
            floats: Vec::new(),
            hist_chunks: vec![hist_chunk(&[100, 200, 300])],
        },
        // No data: left out of the block.
        float_series(ls(&[("__name__", "empty")]), 0..0, |_| 0.0),
    ];
    let meta = write_block(parent, series, 0, 1000, 1, vec![]).expect("write block");
    assert_eq!(meta.compaction.sources, vec![meta.ulid.clone()]);
    assert_eq!(meta.stats.num_series, 4);
    assert_eq!(meta.stats.num_samples, 100 + 100 + 50 + 3);
    let b = Block::open(&parent.join(&meta.ulid)).expect("open block");
    assert_eq!(b.meta(), &meta);
    b
}

fn names(series: &[BlockSeries]) -> Vec<String> {
    series.iter().map(|s| s.labels.to_string()).collect()
}

#[test]
fn write_open_select() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample_block(dir.path());
    assert!(!dir.path().join(format!("{}.tmp", b.meta().ulid)).exists());
    assert!(b.size_bytes() > 0);

    let all = b.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].labels < w[1].labels));

    let up_a = b
        .select(
            &[
                m(MatchOp::Equal, "__name__", "up"),
                m(MatchOp::Equal, "job", "a"),
            ],
            0,
            2000,
        )
        .unwrap();
    assert_eq!(up_a.len(), 1);
    assert_eq!(up_a[0].floats.len(), 100);
    assert_eq!(up_a[0].floats[3], Sample::new(30, 1.5));

    // Time filtering is inclusive on both ends.
    let s = b
        .select(&[m(MatchOp::Equal, "job", "b")], 100, 200)
        .unwrap();
    assert_eq!(s[0].floats.first().map(|s| s.t), Some(100));
    assert_eq!(s[0].floats.last().map(|s| s.t), Some(200));
    assert_eq!(s[0].floats.len(), 11);
    // Series without data in range are dropped.
    let s = b.select(&[m(MatchOp::Equal, "job", "a")], 0, 400).unwrap();
    assert_eq!(names(&s), vec![r#"up{instance="x", job="a"}"#]);
    assert!(b.select(&[], 5000, 6000).unwrap().is_empty());

    // Staleness markers survive bit for bit.
    let s = b
        .select(&[m(MatchOp::Equal, "__name__", "requests")], 0, 2000)
        .unwrap();
    assert!(s[0]
        .floats
        .iter()
        .all(|x| x.v.to_bits() == sextant_model::STALE_NAN_BITS));

    // != also matches series without the label (here: all but job="b").
    let s = b
        .select(&[m(MatchOp::NotEqual, "job", "b")], 0, 2000)
        .unwrap();
    assert_eq!(s.len(), 3);
    let s = b
        .select(&[m(MatchOp::NotEqual, "instance", "x")], 0, 2000)
        .unwrap();
    assert_eq!(s.len(), 2);
    let s = b
        .select(&[m(MatchOp::Regex, "job", "a|b")], 0, 2000)
        .unwrap();
    assert_eq!(s.len(), 3);
    let s = b
        .select(&[m(MatchOp::Regex, "__name__", "up|lat.*")], 0, 2000)
        .unwrap();
    assert_eq!(s.len(), 3);
    let s = b
        .select(&[m(MatchOp::NotRegex, "job", "a|c")], 0, 2000)
        .unwrap();
    assert_eq!(names(&s), vec![r#"up{instance="x", job="b"}"#]);
    let s = b
        .select(&[m(MatchOp::Regex, "instance", ".*")], 0, 2000)
        .unwrap();
    assert_eq!(s.len(), 4);
    let s = b
        .select(&[m(MatchOp::Regex, "instance", ".+")], 0, 2000)
        .unwrap();
    assert_eq!(s.len(), 2);
    let s = b
        .select(&[m(MatchOp::Equal, "instance", "")], 0, 2000)
        .unwrap();
    assert_eq!(s.len(), 2);
    let s = b
        .select(&[m(MatchOp::Equal, "nope", "x")], 0, 2000)
        .unwrap();
    assert!(s.is_empty());

    // Histogram chunks come back raw when they overlap the range.
    let h = b
        .select(&[m(MatchOp::Equal, "job", "c")], 250, 260)
        .unwrap();
    assert_eq!(h[0].hist_chunks, vec![hist_chunk(&[100, 200, 300])]);
    assert!(h[0].floats.is_empty());
    assert!(b
        .select(&[m(MatchOp::Equal, "job", "c")], 301, 400)
        .unwrap()
        .is_empty());

    assert_eq!(b.series(&[m(MatchOp::Equal, "job", "a")]).unwrap().len(), 2);
}

#[test]
fn label_names_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample_block(dir.path());
    assert_eq!(
        b.label_names(&[]).unwrap(),
        vec!["__name__", "instance", "job"]
    );
    assert_eq!(
        b.label_names(&[m(MatchOp::Equal, "job", "a")]).unwrap(),
        vec!["__name__", "instance", "job"]
    );
    assert_eq!(
        b.label_names(&[m(MatchOp::Equal, "job", "c")]).unwrap(),
        vec!["__name__", "job"]
    );
    assert_eq!(b.label_values("job", &[]).unwrap(), vec!["a", "b", "c"]);
    assert_eq!(
        b.label_values("__name__", &[]).unwrap(),
        vec!["latency", "requests", "up"]
    );
    assert_eq!(
        b.label_values("job", &[m(MatchOp::Equal, "__name__", "up")])
            .unwrap(),
        vec!["a", "b"]
    );
    assert!(b.label_values("nope", &[]).unwrap().is_empty());
}

#[test]
fn write_rejects_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let s = float_series(ls(&[("__name__", "x")]), 0..3, |t| t as f64);
    let err = write_block(dir.path(), vec![s.clone(), s], 0, 10, 1, vec![]);
    assert!(matches!(err, Err(BlockError::Invalid(_))));
    // Nothing left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn compact_overlapping_first_block_wins() {
    let dir = tempfile::tempdir().unwrap();
    let x = ls(&[("__name__", "x")]);
    let y = ls(&[("__name__", "y")]);
    let a = write_block(
        dir.path(),
        vec![float_series(x.clone(), (0..100).step_by(10), |_| 1.0)],
        0,
        100,
        1,
        vec![],
    )
    .unwrap();
    let b = write_block(
        dir.path(),
        vec![
            float_series(x.clone(), (50..150).step_by(5), |_| 2.0),
            float_series(y.clone(), 60..70, |t| t as f64),
        ],
        50,
        150,
        2,
        vec![],
    )
    .unwrap();
    let ba = Block::open(&dir.path().join(&a.ulid)).unwrap();
    let bb = Block::open(&dir.path().join(&b.ulid)).unwrap();
    let c = compact(dir.path(), &[&ba, &bb]).unwrap();
    assert_eq!((c.min_time, c.max_time, c.compaction.level), (0, 150, 3));
    let mut sources = vec![a.ulid.clone(), b.ulid.clone()];
    sources.sort();
    assert_eq!(c.compaction.sources, sources);
    let bc = Block::open(&dir.path().join(&c.ulid)).unwrap();
    let s = bc.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(s.len(), 2);
    let xs = &s[0].floats;
    // 0..100 step 10 from a (10 samples), plus 50..150 step 5 from b minus the shared 50..=90.
    assert!(xs.windows(2).all(|w| w[0].t < w[1].t));
    for smp in xs {
        let want = if smp.t < 100 && smp.t % 10 == 0 {
            1.0
        } else {
            2.0
        };
        assert_eq!(smp.v, want, "at {}", smp.t);
    }
    assert_eq!(xs.len(), 10 + 20 - 5);
    assert_eq!(s[1].labels, y);
    assert_eq!(s[1].floats.len(), 10);
    assert_eq!(c.stats.num_samples, 35);

    // Reversed order: b wins.
    let c2 = compact(dir.path(), &[&bb, &ba]).unwrap();
    let bc2 = Block::open(&dir.path().join(&c2.ulid)).unwrap();
    let s = bc2
        .select(&[m(MatchOp::Equal, "__name__", "x")], 60, 60)
        .unwrap();
    assert_eq!(s[0].floats, vec![Sample::new(60, 2.0)]);
}

#[test]
fn compact_adjacent() {
    let dir = tempfile::tempdir().unwrap();
    let x = ls(&[("__name__", "x"), ("job", "j")]);
    let h = ls(&[("__name__", "h")]);
    let a = write_block(
        dir.path(),
        vec![
            float_series(x.clone(), 0..100, |t| t as f64),
            BlockSeries {
                labels: h.clone(),
                floats: vec![],
                hist_chunks: vec![hist_chunk(&[10, 20])],
            },
        ],
        0,
        100,
        1,
        vec![],
    )
    .unwrap();
    let b = write_block(
        dir.path(),
        vec![float_series(x.clone(), 100..200, |t| t as f64)],
        100,
        200,
        1,
        vec![],
    )
    .unwrap();
    let ba = Block::open(&dir.path().join(&a.ulid)).unwrap();
    let bb = Block::open(&dir.path().join(&b.ulid)).unwrap();
    let c = compact(dir.path(), &[&ba, &bb]).unwrap();
    assert_eq!((c.min_time, c.max_time, c.compaction.level), (0, 200, 2));
    assert_eq!(c.stats.num_series, 2);
    let bc = Block::open(&dir.path().join(&c.ulid)).unwrap();
    let s = bc
        .select(&[m(MatchOp::Equal, "job", "j")], 0, 1000)
        .unwrap();
    assert_eq!(
        s[0].floats,
        (0..200)
            .map(|t| Sample::new(t, t as f64))
            .collect::<Vec<_>>()
    );
    let s = bc
        .select(&[m(MatchOp::Equal, "__name__", "h")], 0, 1000)
        .unwrap();
    assert_eq!(s[0].hist_chunks, vec![hist_chunk(&[10, 20])]);
    assert!(compact(dir.path(), &[]).is_err());
}

fn meta(ulid: &str, min_time: i64, max_time: i64) -> BlockMeta {
    BlockMeta {
        ulid: ulid.into(),
        min_time,
        max_time,
        stats: BlockStats::default(),
        compaction: BlockCompaction {
            level: 1,
            sources: vec![ulid.into()],
        },
        version: BLOCK_VERSION,
    }
}

#[test]
fn plan() {
    const H: i64 = 3_600_000;
    let ranges = [2 * H, 6 * H, 18 * H];
    assert_eq!(plan_compaction(&[], &ranges), None);
    assert_eq!(plan_compaction(&[meta("a", 0, 2 * H)], &ranges), None);
    // Three 2h blocks filling [0, 6h) plus a newer one: merge the three.
    let metas = vec![
        meta("d", 6 * H, 8 * H),
        meta("a", 0, 2 * H),
        meta("b", 2 * H, 4 * H),
        meta("c", 4 * H, 6 * H),
    ];
    assert_eq!(
        plan_compaction(&metas, &ranges),
        Some(vec!["a".into(), "b".into(), "c".into()])
    );
    // Window [0, 6h) not complete yet: the newest block is still inside it.
    let metas = vec![meta("a", 0, 2 * H), meta("b", 2 * H, 4 * H)];
    assert_eq!(plan_compaction(&metas, &ranges), None);
    // Complete because a newer block starts past the window.
    let metas = vec![
        meta("a", 0, 2 * H),
        meta("b", 2 * H, 4 * H),
        meta("e", 8 * H, 10 * H),
    ];
    assert_eq!(
        plan_compaction(&metas, &ranges),
        Some(vec!["a".into(), "b".into()])
    );
    // A single block in its window is left alone; the next window's pair is chosen.
    let metas = vec![
        meta("a", 0, 2 * H),
        meta("f", 6 * H, 8 * H),
        meta("g", 8 * H, 10 * H),
        meta("z", 12 * H, 14 * H),
    ];
    assert_eq!(
        plan_compaction(&metas, &ranges),
        Some(vec!["f".into(), "g".into()])
    );
    // Overlapping blocks come first.
    let metas = vec![
        meta("a", 0, 2 * H),
        meta("b", 2 * H, 4 * H),
        meta("c", 10 * H, 12 * H),
        meta("o", 11 * H, 13 * H),
        meta("z", 20 * H, 22 * H),
    ];
    assert_eq!(
        plan_compaction(&metas, &ranges),
        Some(vec!["c".into(), "o".into()])
    );
    // An already compacted 6h block plus two more 6h blocks in [0, 18h) with a newer block.
    let metas = vec![
        meta("p", 0, 6 * H),
        meta("q", 6 * H, 12 * H),
        meta("r", 12 * H, 18 * H),
        meta("s", 18 * H, 20 * H),
    ];
    assert_eq!(
        plan_compaction(&metas, &ranges),
        Some(vec!["p".into(), "q".into(), "r".into()])
    );
    // Negative times align down.
    let metas = vec![
        meta("m1", -6 * H, -4 * H),
        meta("m2", -4 * H, -2 * H),
        meta("now", 0, 2 * H),
    ];
    assert_eq!(
        plan_compaction(&metas, &ranges),
        Some(vec!["m1".into(), "m2".into()])
    );
}

#[test]
fn corrupt_index_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample_block(dir.path());
    let bdir = b.dir().to_path_buf();
    drop(b);
    let path = bdir.join("index");
    let orig = fs::read(&path).unwrap();
    for i in 0..orig.len() {
        let mut c = orig.clone();
        c[i] ^= 0x10;
        fs::write(&path, &c).unwrap();
        assert!(
            Block::open(&bdir).is_err(),
            "flipped byte {i} went unnoticed"
        );
    }
    for cut in [0, 3, 8, orig.len() / 2, orig.len() - 1] {
        fs::write(&path, &orig[..cut]).unwrap();
        assert!(Block::open(&bdir).is_err());
    }
    fs::write(&path, &orig).unwrap();
    assert!(Block::open(&bdir).is_ok());
    fs::write(bdir.join("meta.json"), b"{not json").unwrap();
    assert!(matches!(Block::open(&bdir), Err(BlockError::Meta { .. })));
}

#[test]
fn damaged_chunks_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample_block(dir.path());
    let bdir = b.dir().to_path_buf();
    drop(b);
    let seg = bdir.join("chunks").join("000001");
    let orig = fs::read(&seg).unwrap();
    // Truncated segment: open works (the index is intact) but reading chunks fails.
    for cut in [orig.len() - 1, orig.len() / 2, 20] {
        fs::write(&seg, &orig[..cut]).unwrap();
        let b = Block::open(&bdir).unwrap();
        assert!(b.select(&[], i64::MIN, i64::MAX).is_err(), "cut at {cut}");
    }
    // Flipped bytes are caught by the chunk checksum.
    for i in (8..orig.len()).step_by(7) {
        let mut c = orig.clone();
        c[i] ^= 0x01;
        fs::write(&seg, &c).unwrap();
        let b = Block::open(&bdir).unwrap();
        assert!(b.select(&[], i64::MIN, i64::MAX).is_err(), "flip at {i}");
    }
    fs::write(&seg, &orig[..4]).unwrap();
    assert!(Block::open(&bdir).is_err());
}

#[test]
fn bytes_per_sample_counters() {
    let dir = tempfile::tempdir().unwrap();
    // Deterministic xorshift for jitter and increments.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (n_series, n_samples) = (100, 5000);
    let start = 1_700_000_000_000i64;
    let mut series = Vec::with_capacity(n_series);
    for i in 0..n_series {
        let mut v = (rnd() % 1_000_000) as f64;
        let floats = (0..n_samples)
            .map(|k| {
                let jitter = (rnd() % 11) as i64 - 5;
                v += (rnd() % 10) as f64;
                Sample::new(start + k * 15_000 + jitter, v)
            })
            .collect();
        series.push(BlockSeries {
            labels: ls(&[
                ("__name__", "http_requests_total"),
                ("instance", &format!("host-{i}:9100")),
                ("job", "node"),
            ]),
            floats,
            hist_chunks: vec![],
        });
    }
    let mut expected = series.clone();
    expected.sort_by(|a, b| a.labels.cmp(&b.labels));
    let maxt = start + n_samples * 15_000 + 10;
    let meta = write_block(dir.path(), series, start - 10, maxt, 1, vec![]).unwrap();
    let b = Block::open(&dir.path().join(&meta.ulid)).unwrap();
    let total = (n_series as i64 * n_samples) as f64;
    let chunk_bytes: u64 = fs::read_dir(b.dir().join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let per_sample = b.size_bytes() as f64 / total;
    println!(
        "block size {} bytes ({} in chunks) for {} samples: {:.3} bytes/sample ({:.3} chunks only)",
        b.size_bytes(),
        chunk_bytes,
        total,
        per_sample,
        chunk_bytes as f64 / total
    );
    assert!(per_sample < 2.0, "{per_sample} bytes/sample");
    assert_eq!(b.select(&[], i64::MIN, i64::MAX).unwrap(), expected);
}

#[test]
fn block_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Block>();
}
