//! Tests of the WAL: record round trips, replay, recovery from torn and corrupt data,
//! checkpoints and segment rotation.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use sextant_model::{
    CounterResetHint, Exemplar, FloatHistogram, Histogram, Labels, Metadata, MetricType, Span,
    STALE_NAN_BITS,
};

use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Bit-exact comparison: floats (NaN payloads included) compare by their encoding.
fn same(a: &[Record], b: &[Record]) -> bool {
    let enc = |rs: &[Record]| {
        rs.iter()
            .map(|r| {
                let mut v = Vec::new();
                encode(r, &mut v);
                v
            })
            .collect::<Vec<_>>()
    };
    a.len() == b.len() && enc(a) == enc(b) && format!("{a:?}") == format!("{b:?}")
}

fn enc(r: &Record) -> Vec<u8> {
    let mut v = Vec::new();
    encode(r, &mut v);
    v
}

fn samples(r0: u64, t0: i64, n: usize) -> Record {
    Record::Samples(
        (0..n)
            .map(|i| RefSample {
                r: r0 + i as u64,
                t: t0 + 15_000 * i as i64,
                v: i as f64 * 0.5,
            })
            .collect(),
    )
}

fn series(r: u64) -> Record {
    Record::Series(vec![RefSeries {
        r,
        labels: Labels::from_pairs([("__name__", "up"), ("job", "node"), ("i", &r.to_string())]),
    }])
}

fn opts(segment_size: u64) -> WalOptions {
    WalOptions {
        segment_size,
        fsync_on_log: false,
    }
}

fn open(dir: &Path, o: WalOptions) -> (Wal, ReplayStats, Vec<Record>) {
    let mut got = Vec::new();
    let (wal, stats) = Wal::open(dir, o, |r| got.push(r)).expect("open WAL");
    (wal, stats, got)
}

fn segment_files(dir: &Path) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let i = parse_segment_name(e.file_name().to_str()?)?;
            Some((i, e.metadata().unwrap().len()))
        })
        .collect();
    v.sort_unstable();
    v
}

/// End offsets of the frames in a segment file.
fn frame_ends(path: &Path) -> Vec<u64> {
    let b = fs::read(path).unwrap();
    let mut ends = Vec::new();
    let mut off = 0usize;
    while off + HEADER_LEN <= b.len() {
        let len = u32::from_le_bytes(b[off + 1..off + 5].try_into().unwrap()) as usize;
        off += HEADER_LEN + len;
        ends.push(off as u64);
    }
    ends
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A subscriber that counts WARN events and remembers their fields.
struct WarnCounter {
    warns: Arc<AtomicUsize>,
    text: Arc<std::sync::Mutex<String>>,
}

struct Collect<'a>(&'a mut String);

impl tracing::field::Visit for Collect<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        if *e.metadata().level() == tracing::Level::WARN {
            self.warns.fetch_add(1, Ordering::SeqCst);
            let mut t = self.text.lock().unwrap();
            e.record(&mut Collect(&mut t));
            t.push('\n');
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Runs `f` and returns its result, the number of warnings and their text.
fn with_warnings<T>(f: impl FnOnce() -> T) -> (T, usize, String) {
    let warns = Arc::new(AtomicUsize::new(0));
    let text = Arc::new(std::sync::Mutex::new(String::new()));
    let sub = WarnCounter {
        warns: warns.clone(),
        text: text.clone(),
    };
    let out = tracing::subscriber::with_default(sub, f);
    let t = text.lock().unwrap().clone();
    (out, warns.load(Ordering::SeqCst), t)
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn f64_bits() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::from_bits(STALE_NAN_BITS)),
        any::<f64>(),
    ]
}

fn labels() -> impl Strategy<Value = Labels> {
    prop::collection::vec(("[a-zA-Z_]{1,6}", "\\PC{0,6}"), 0..6).prop_map(Labels::from_pairs)
}

fn spans() -> impl Strategy<Value = Vec<Span>> {
    prop::collection::vec(
        (any::<i32>(), any::<u32>()).prop_map(|(offset, length)| Span { offset, length }),
        0..5,
    )
}

fn hint() -> impl Strategy<Value = CounterResetHint> {
    (0u8..4).prop_map(CounterResetHint::from_u8)
}

fn histogram() -> impl Strategy<Value = Histogram> {
    (
        (
            hint(),
            any::<i32>(),
            f64_bits(),
            any::<u64>(),
            any::<u64>(),
            f64_bits(),
        ),
        (spans(), spans()),
        (
            prop::collection::vec(any::<i64>(), 0..8),
            prop::collection::vec(any::<i64>(), 0..8),
            prop::collection::vec(f64_bits(), 0..5),
        ),
    )
        .prop_map(
            |((hint, schema, zt, zc, count, sum), (ps, ns), (pb, nb, cv))| Histogram {
                counter_reset_hint: hint,
                schema,
                zero_threshold: zt,
                zero_count: zc,
                count,
                sum,
                positive_spans: ps,
                negative_spans: ns,
                positive_buckets: pb,
                negative_buckets: nb,
                custom_values: cv,
            },
        )
}

fn float_histogram() -> impl Strategy<Value = FloatHistogram> {
    (
        (
            hint(),
            any::<i32>(),
            f64_bits(),
            f64_bits(),
            f64_bits(),
            f64_bits(),
        ),
        (spans(), spans()),
        (
            prop::collection::vec(f64_bits(), 0..8),
            prop::collection::vec(f64_bits(), 0..8),
            prop::collection::vec(f64_bits(), 0..5),
        ),
    )
        .prop_map(
            |((hint, schema, zt, zc, count, sum), (ps, ns), (pb, nb, cv))| FloatHistogram {
                counter_reset_hint: hint,
                schema,
                zero_threshold: zt,
                zero_count: zc,
                count,
                sum,
                positive_spans: ps,
                negative_spans: ns,
                positive_buckets: pb,
                negative_buckets: nb,
                custom_values: cv,
            },
        )
}

fn metric_type() -> impl Strategy<Value = MetricType> {
    (0u8..8).prop_map(MetricType::from_u8)
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        prop::collection::vec(
            (any::<u64>(), labels()).prop_map(|(r, labels)| RefSeries { r, labels }),
            0..6
        )
        .prop_map(Record::Series),
        prop::collection::vec(
            (any::<u64>(), any::<i64>(), f64_bits()).prop_map(|(r, t, v)| RefSample { r, t, v }),
            0..20
        )
        .prop_map(Record::Samples),
        prop::collection::vec(
            (any::<u64>(), any::<i64>(), histogram()).prop_map(|(r, t, h)| RefHistogram {
                r,
                t,
                h
            }),
            0..4
        )
        .prop_map(Record::Histograms),
        prop::collection::vec(
            (any::<u64>(), any::<i64>(), float_histogram())
                .prop_map(|(r, t, h)| RefFloatHistogram { r, t, h }),
            0..4
        )
        .prop_map(Record::FloatHistograms),
        prop::collection::vec(
            ("\\PC{0,8}", metric_type(), "\\PC{0,12}", "\\PC{0,4}").prop_map(
                |(metric_family, kind, help, unit)| Metadata {
                    metric_family,
                    kind,
                    help,
                    unit
                }
            ),
            0..4
        )
        .prop_map(Record::Metadata),
        prop::collection::vec(
            (any::<u64>(), any::<i64>(), f64_bits(), labels()).prop_map(
                |(r, ts, value, labels)| {
                    RefExemplar {
                        r,
                        e: Exemplar { labels, value, ts },
                    }
                }
            ),
            0..6
        )
        .prop_map(Record::Exemplars),
    ]
}

// ---------------------------------------------------------------------------------------------
// Record encoding

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn records_round_trip(rec in record()) {
        let buf = enc(&rec);
        let back = decode(&buf).expect("decode what encode wrote");
        prop_assert!(same(std::slice::from_ref(&rec), std::slice::from_ref(&back)),
            "{rec:?} != {back:?}");
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(buf in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&buf);
    }

    #[test]
    fn decode_never_panics_on_damaged_records(
        rec in record(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let buf = enc(&rec);
        let _ = decode(&buf[..cut.index(buf.len() + 1)]);
        let mut b = buf.clone();
        let i = flip.index(b.len());
        b[i] ^= 1 << bit;
        let _ = decode(&b);
        // A shorter payload is never mistaken for the whole record.
        if buf.len() > 1 {
            prop_assert!(decode(&buf[..buf.len() - 1]).is_err());
        }
    }
}

#[test]
fn staleness_marker_survives_bit_exact() {
    let rec = Record::Samples(vec![
        RefSample {
            r: 7,
            t: 1000,
            v: f64::from_bits(STALE_NAN_BITS),
        },
        RefSample {
            r: 3,
            t: -5,
            v: f64::NAN,
        },
    ]);
    let Ok(Record::Samples(s)) = decode(&enc(&rec)) else {
        panic!("not samples")
    };
    assert_eq!(s[0].v.to_bits(), STALE_NAN_BITS);
    assert_eq!(s[1].v.to_bits(), f64::NAN.to_bits());
    assert_eq!((s[1].r, s[1].t), (3, -5));
}

#[test]
fn decode_rejects_corrupt_counts_without_allocating() {
    // Samples record announcing u64::MAX entries.
    let mut b = vec![record::TYPE_SAMPLES];
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert!(matches!(decode(&b), Err(WalError::Decode { .. })));
    assert!(matches!(
        decode(&[99]),
        Err(WalError::UnknownRecordType(99))
    ));
    assert!(decode(&[]).is_err());
}

// ---------------------------------------------------------------------------------------------
// Segments and replay

#[test]
fn replay_returns_what_was_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut want = Vec::new();
    {
        let (mut wal, stats, got) = open(&dir, WalOptions::default());
        assert!(got.is_empty());
        assert_eq!(stats.records, 0);
        for b in 0..50u64 {
            let batch = vec![series(b), samples(b, b as i64 * 1000, 1 + b as usize % 7)];
            wal.log(&batch.iter().map(enc).collect::<Vec<_>>()).unwrap();
            want.extend(batch);
        }
        wal.log(&[]).unwrap();
        assert_eq!(wal.dir(), dir);
    }
    let (mut wal, stats, got) = open(&dir, WalOptions::default());
    assert!(same(&got, &want));
    assert_eq!(stats.records, 100);
    assert!(!stats.corrupt);
    assert_eq!(stats.truncated_bytes, 0);
    // A second session appends behind the first.
    let more = samples(1, 1, 3);
    wal.log(&[enc(&more)]).unwrap();
    drop(wal);
    want.push(more);
    let (_wal, stats, got) = open(&dir, WalOptions::default());
    assert!(same(&got, &want));
    assert_eq!(stats.segments, 2);
}

#[test]
fn log_rejects_what_replay_could_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = open(tmp.path(), opts(1 << 20));
    assert!(matches!(wal.log(&[vec![]]), Err(WalError::EmptyRecord)));
    assert!(matches!(
        wal.log(&[vec![0, 1, 2]]),
        Err(WalError::UnknownRecordType(0))
    ));
    assert_eq!(wal.size_bytes(), 0);
}

#[test]
fn segments_rotate_by_size_and_large_records_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let seg = 512u64;
    let mut want = Vec::new();
    {
        let (mut wal, _, _) = open(dir, opts(seg));
        for b in 0..40u64 {
            let r = samples(b, 0, 10);
            wal.log(&[enc(&r)]).unwrap();
            want.push(r);
        }
        // One record larger than a segment.
        let big = samples(0, 0, 200);
        assert!(enc(&big).len() as u64 > seg);
        wal.log(&[enc(&big)]).unwrap();
        want.push(big);
        wal.log(&[enc(&series(1))]).unwrap();
        want.push(series(1));
        let on_disk: u64 = segment_files(dir).iter().map(|s| s.1).sum();
        assert_eq!(wal.size_bytes(), on_disk);
    }
    let files = segment_files(dir);
    assert!(files.len() > 5, "{files:?}");
    let ends: Vec<usize> = files
        .iter()
        .map(|(i, _)| frame_ends(&dir.join(segment_name(*i))).len())
        .collect();
    for ((_, len), frames) in files.iter().zip(&ends) {
        assert!(
            *len <= seg || *frames == 1,
            "oversized segment with {frames} frames"
        );
    }
    let (_wal, stats, got) = open(dir, opts(seg));
    assert!(same(&got, &want));
    assert_eq!(stats.segments, files.len());
}

#[test]
fn torn_tail_at_every_offset_keeps_complete_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let mut before = Vec::new();
    {
        let (mut wal, _, _) = open(&base, opts(1 << 20));
        for b in 0..3u64 {
            let batch = vec![series(b), samples(b, 0, 2)];
            wal.log(&batch.iter().map(enc).collect::<Vec<_>>()).unwrap();
            before.extend(batch);
        }
    }
    // The last segment holds the batch that will be torn: two frames written together.
    let last_batch = [samples(10, 5, 3), series(11)];
    let seg = {
        let (mut wal, _, _) = open(&base, opts(1 << 20));
        wal.log(&last_batch.iter().map(enc).collect::<Vec<_>>())
            .unwrap();
        wal.seg_index
    };
    let seg_path = base.join(segment_name(seg));
    let ends = frame_ends(&seg_path);
    assert_eq!(ends.len(), 2);
    let full = fs::read(&seg_path).unwrap();
    let after = samples(20, 0, 1);
    for cut in 0..full.len() as u64 {
        let dir = tmp.path().join(format!("cut{cut}"));
        copy_dir(&base, &dir);
        let p = dir.join(segment_name(seg));
        fs::write(&p, &full[..cut as usize]).unwrap();
        let complete = ends.iter().filter(|e| **e <= cut).count();
        let mut want = before.clone();
        want.extend(last_batch[..complete].iter().cloned());

        let ((mut wal, stats, got), warns, text) = with_warnings(|| open(&dir, opts(1 << 20)));
        assert!(same(&got, &want), "cut {cut}: {got:?}");
        assert!(!stats.corrupt, "cut {cut}");
        let good = if complete == 0 { 0 } else { ends[complete - 1] };
        assert_eq!(stats.truncated_bytes, cut - good, "cut {cut}");
        assert_eq!(warns > 0, cut != good, "cut {cut}");
        if cut != good {
            assert!(text.contains(&segment_name(seg)) && text.contains("offset="));
        }
        assert_eq!(fs::metadata(&p).unwrap().len(), good);

        wal.log(&[enc(&after)]).unwrap();
        drop(wal);
        want.push(after.clone());
        let (_wal, stats, got) = open(&dir, opts(1 << 20));
        assert!(same(&got, &want), "cut {cut} after reopen");
        assert_eq!(stats.truncated_bytes, 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn zero_filled_tail_is_torn_not_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rec = samples(1, 1, 4);
    let seg = {
        let (mut wal, _, _) = open(dir, opts(1 << 20));
        wal.log(&[enc(&rec)]).unwrap();
        wal.seg_index
    };
    let p = dir.join(segment_name(seg));
    let mut b = fs::read(&p).unwrap();
    let len = b.len() as u64;
    b.extend_from_slice(&[0u8; 4096]);
    fs::write(&p, &b).unwrap();
    let (_wal, stats, got) = open(dir, opts(1 << 20));
    assert!(same(&got, &[rec]));
    assert!(!stats.corrupt);
    assert_eq!(stats.truncated_bytes, 4096);
    assert_eq!(fs::metadata(&p).unwrap().len(), len);
}

#[test]
fn flipped_byte_in_last_segment_keeps_records_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let recs: Vec<Record> = (0..10).map(|i| samples(i, i as i64, 8)).collect();
    let seg = {
        let (mut wal, _, _) = open(dir, opts(1 << 20));
        for r in &recs {
            wal.log(&[enc(r)]).unwrap();
        }
        wal.seg_index
    };
    let p = dir.join(segment_name(seg));
    let ends = frame_ends(&p);
    let mut b = fs::read(&p).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    fs::write(&p, &b).unwrap();
    let hit = ends.iter().position(|e| *e as usize > mid).unwrap();
    let good = if hit == 0 { 0 } else { ends[hit - 1] };

    let ((mut wal, stats, got), warns, text) = with_warnings(|| open(dir, opts(1 << 20)));
    assert!(same(&got, &recs[..hit]), "{got:?}");
    assert!(stats.corrupt);
    assert!(warns >= 1);
    assert!(text.contains(&segment_name(seg)), "{text}");
    assert_eq!(stats.truncated_bytes, b.len() as u64 - good);
    wal.log(&[enc(&recs[0])]).unwrap();
    drop(wal);
    let (_wal, stats, got) = open(dir, opts(1 << 20));
    assert!(!stats.corrupt);
    assert_eq!(got.len(), hit + 1);
}

#[test]
fn corrupt_earlier_segment_sets_aside_later_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let recs: Vec<Record> = (0..12).map(|i| samples(i, 0, 8)).collect();
    {
        let (mut wal, _, _) = open(dir, opts(1 << 20));
        for (i, r) in recs.iter().enumerate() {
            wal.log(&[enc(r)]).unwrap();
            if i % 4 == 3 {
                wal.cut_segment().unwrap();
            }
        }
    }
    // Segments 0, 1, 2 hold four records each (3 is empty).
    let p0 = dir.join(segment_name(0));
    let ends = frame_ends(&p0);
    assert_eq!(ends.len(), 4);
    let mut b = fs::read(&p0).unwrap();
    b[ends[1] as usize + 12] ^= 0xff; // payload of the third frame
    fs::write(&p0, &b).unwrap();

    let ((mut wal, stats, got), warns, _) = with_warnings(|| open(dir, opts(1 << 20)));
    assert!(same(&got, &recs[..2]));
    assert!(stats.corrupt);
    assert!(warns >= 1);
    assert!(dir.join("00000001.corrupt").exists());
    assert!(dir.join("00000002.corrupt").exists());
    assert!(dir.join("00000003.corrupt").exists());
    assert_eq!(
        segment_files(dir).iter().map(|s| s.0).collect::<Vec<_>>(),
        [0, 1]
    );
    wal.log(&[enc(&recs[5])]).unwrap();
    drop(wal);
    let (_wal, stats, got) = open(dir, opts(1 << 20));
    assert!(!stats.corrupt);
    assert!(same(
        &got,
        &[recs[0].clone(), recs[1].clone(), recs[5].clone()]
    ));
}

#[test]
fn undecodable_record_with_valid_checksum_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = samples(1, 1, 1);
    let seg = {
        let (mut wal, _, _) = open(dir, opts(1 << 20));
        // A known kind byte followed by garbage passes `log`'s checks but not `decode`.
        wal.log(&[enc(&a), vec![record::TYPE_SAMPLES, 0xff], enc(&a)])
            .unwrap();
        wal.seg_index
    };
    let (_wal, stats, got) = open(dir, opts(1 << 20));
    assert!(same(&got, &[a.clone(), a]));
    assert!(stats.corrupt);
    assert_eq!(stats.truncated_bytes, 0);
    assert!(dir.join(segment_name(seg)).exists());
}

#[test]
fn checkpoint_then_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut later = Vec::new();
    let kept = vec![series(1), series(2), samples(1, 100, 2)];
    {
        let (mut wal, _, _) = open(dir, opts(300));
        for b in 0..20u64 {
            wal.log(&[enc(&series(b)), enc(&samples(b, 0, 5))]).unwrap();
        }
        let upto = wal.cut_segment().unwrap();
        assert!(upto >= 2);
        assert!(matches!(
            wal.checkpoint(upto + 1, std::iter::empty()),
            Err(WalError::InvalidCheckpoint { .. })
        ));
        wal.checkpoint(upto, kept.clone().into_iter()).unwrap();
        assert!(dir.join(checkpoint_name(upto)).is_dir());
        assert_eq!(
            segment_files(dir).iter().map(|s| s.0).collect::<Vec<_>>(),
            [upto + 1]
        );
        for b in 0..5u64 {
            let r = samples(b, 1000, 3);
            wal.log(&[enc(&r)]).unwrap();
            later.push(r);
        }
        // A second checkpoint replaces the first.
        let upto2 = wal.cut_segment().unwrap();
        let kept2: Vec<Record> = kept.iter().cloned().chain(later.iter().cloned()).collect();
        wal.checkpoint(upto2, kept2.into_iter()).unwrap();
        assert!(!dir.join(checkpoint_name(upto)).exists());
        assert!(matches!(
            wal.checkpoint(upto, std::iter::empty()),
            Err(WalError::InvalidCheckpoint { .. })
        ));
        let r = samples(9, 9, 9);
        wal.log(&[enc(&r)]).unwrap();
        later.push(r);
        let on_disk: u64 = segment_files(dir).iter().map(|s| s.1).sum::<u64>()
            + segment_files(&dir.join(checkpoint_name(upto2)))
                .iter()
                .map(|s| s.1)
                .sum::<u64>();
        assert_eq!(wal.size_bytes(), on_disk);
    }
    let (wal, stats, got) = open(dir, opts(300));
    let want: Vec<Record> = kept.into_iter().chain(later).collect();
    assert!(same(&got, &want), "{got:?}");
    assert!(!stats.corrupt);
    assert_eq!(stats.records, want.len() as u64);
    assert!(wal.size_bytes() > 0);
}

#[test]
fn leftovers_of_interrupted_checkpoint_are_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let r = samples(1, 1, 1);
    {
        let (mut wal, _, _) = open(dir, opts(1 << 20));
        wal.log(&[enc(&r)]).unwrap();
        wal.cut_segment().unwrap();
    }
    // A half-written checkpoint and a finished one whose segments were not deleted yet.
    fs::create_dir(dir.join("checkpoint.00000005.tmp")).unwrap();
    fs::write(dir.join("checkpoint.00000005.tmp/00000000"), b"junk").unwrap();
    fs::create_dir(dir.join(checkpoint_name(0))).unwrap();
    let (_wal, stats, got) = open(dir, opts(1 << 20));
    assert!(
        got.is_empty(),
        "segment 0 is covered by checkpoint.00000000"
    );
    assert!(!stats.corrupt);
    assert!(!dir.join("checkpoint.00000005.tmp").exists());
    assert!(!dir.join(segment_name(0)).exists());
}

#[test]
fn fsync_on_log_and_sync_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = WalOptions {
        segment_size: 1 << 20,
        fsync_on_log: true,
    };
    let r = samples(1, 2, 3);
    {
        let (mut wal, _, _) = open(dir, o.clone());
        wal.log(&[enc(&r)]).unwrap();
        wal.sync().unwrap();
        assert_eq!(wal.cut_segment().unwrap(), 0);
    }
    let (_wal, _, got) = open(dir, o);
    assert!(same(&got, &[r]));
}

#[test]
fn errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let err = Wal::open(&file.join("wal"), WalOptions::default(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}
