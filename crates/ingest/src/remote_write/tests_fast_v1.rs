//! Equivalence of the zero-copy 1.0 reader (`decode_v1`) with the prost-based reference
//! (`decode_v1_prost`): same batches for valid requests, same errors (down to the text) for
//! malformed ones.

use super::decode::decode_v1_prost;
use super::proto::v1;
use super::*;
use proptest::prelude::*;
use prost::Message;

/// Bit-exact comparison (NaN samples with equal bits are equal).
fn same(a: &WriteBatch, b: &WriteBatch) -> Result<(), String> {
    if a.series.len() != b.series.len() {
        return Err(format!(
            "series count {} vs {}",
            a.series.len(),
            b.series.len()
        ));
    }
    for (x, y) in a.series.iter().zip(&b.series) {
        let samples_eq = x.samples.len() == y.samples.len()
            && x.samples.iter().zip(&y.samples).all(|(p, q)| p.bit_eq(q));
        if x.labels != y.labels
            || !samples_eq
            || format!("{:?}", x.histograms) != format!("{:?}", y.histograms)
            || format!("{:?}", x.exemplars) != format!("{:?}", y.exemplars)
        {
            return Err(format!("series differ:\n{x:?}\n{y:?}"));
        }
    }
    if a.metadata != b.metadata {
        return Err(format!("metadata {:?} vs {:?}", a.metadata, b.metadata));
    }
    if a.rejected != b.rejected {
        return Err(format!("rejected {:?} vs {:?}", a.rejected, b.rejected));
    }
    Ok(())
}

/// Decodes with both decoders and requires the same outcome: equal batches, or equal error text.
fn check(raw: &[u8], limits: &DecodeLimits) -> Result<(), TestCaseError> {
    match (decode_v1(raw, limits), decode_v1_prost(raw, limits)) {
        (Ok(a), Ok(b)) => same(&a, &b).map_err(TestCaseError::fail),
        (Err(a), Err(b)) => {
            prop_assert_eq!(a.to_string(), b.to_string());
            Ok(())
        }
        (a, b) => Err(TestCaseError::fail(format!(
            "outcomes differ for {raw:02x?}:\nnew: {a:?}\nold: {b:?}"
        ))),
    }
}

fn limits() -> impl Strategy<Value = DecodeLimits> {
    prop_oneof![
        Just(DecodeLimits::default()),
        (0usize..5, 0usize..6, 0usize..6).prop_map(|(a, b, c)| DecodeLimits {
            max_labels_per_series: a,
            max_label_name_len: b,
            max_label_value_len: c,
        }),
    ]
}

fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("__name__".to_string()),
        6 => "[a-c_][a-c0-9_]{0,3}",
        1 => "",
        1 => any::<String>(),
    ]
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z_:][a-z0-9_:]{0,4}",
        1 => "",
        2 => any::<String>(),
    ]
}

fn labels() -> impl Strategy<Value = Vec<v1::Label>> {
    (
        proptest::collection::vec((label_name(), label_value()), 0..6),
        any::<bool>(),
    )
        .prop_map(|(pairs, sort)| {
            let mut v: Vec<v1::Label> = pairs
                .into_iter()
                .map(|(name, value)| v1::Label { name, value })
                .collect();
            if sort {
                v.sort_by(|a, b| a.name.cmp(&b.name));
                v.dedup_by(|a, b| a.name == b.name);
            }
            v
        })
}

fn f64_bits() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::NAN),
        Just(f64::from_bits(0x7ff0_0000_0000_0002)), // Prometheus' stale marker
        Just(-0.0),
        any::<f64>(),
    ]
}

fn spans() -> impl Strategy<Value = Vec<v1::BucketSpan>> {
    proptest::collection::vec(
        (-3i32..3, 0u32..3).prop_map(|(offset, length)| v1::BucketSpan { offset, length }),
        0..3,
    )
}

fn histogram() -> impl Strategy<Value = v1::Histogram> {
    use v1::histogram::{Count, ZeroCount};
    let count = prop_oneof![
        Just(None),
        (0u64..10).prop_map(|c| Some(Count::CountInt(c))),
        (0.0f64..10.0).prop_map(|c| Some(Count::CountFloat(c))),
    ];
    let zero = prop_oneof![
        Just(None),
        (0u64..3).prop_map(|c| Some(ZeroCount::ZeroCountInt(c))),
        (0.0f64..3.0).prop_map(|c| Some(ZeroCount::ZeroCountFloat(c))),
    ];
    (
        (count, zero, -5i32..9, any::<i64>(), 0i32..5),
        (spans(), spans()),
        (
            proptest::collection::vec(-2i64..3, 0..4),
            proptest::collection::vec(-2i64..3, 0..4),
            proptest::collection::vec(0.0f64..5.0, 0..4),
            proptest::collection::vec(0.0f64..5.0, 0..4),
        ),
    )
        .prop_map(
            |((count, zero_count, schema, timestamp, reset_hint), (ps, ns), (pd, nd, pc, nc))| {
                v1::Histogram {
                    count,
                    zero_count,
                    sum: 1.5,
                    schema,
                    zero_threshold: 0.001,
                    negative_spans: ns,
                    negative_deltas: nd,
                    negative_counts: nc,
                    positive_spans: ps,
                    positive_deltas: pd,
                    positive_counts: pc,
                    reset_hint,
                    timestamp,
                    custom_values: vec![],
                }
            },
        )
}

fn time_series() -> impl Strategy<Value = v1::TimeSeries> {
    (
        labels(),
        proptest::collection::vec(
            (f64_bits(), any::<i64>())
                .prop_map(|(value, timestamp)| v1::Sample { value, timestamp }),
            0..12,
        ),
        proptest::collection::vec(
            (labels(), f64_bits(), any::<i64>()).prop_map(|(labels, value, timestamp)| {
                v1::Exemplar {
                    labels,
                    value,
                    timestamp,
                }
            }),
            0..2,
        ),
        proptest::collection::vec(histogram(), 0..3),
    )
        .prop_map(|(labels, samples, exemplars, histograms)| v1::TimeSeries {
            labels,
            samples,
            exemplars,
            histograms,
        })
}

fn metadata() -> impl Strategy<Value = v1::MetricMetadata> {
    (-1i32..9, label_value(), label_value(), label_value()).prop_map(
        |(r#type, metric_family_name, help, unit)| v1::MetricMetadata {
            r#type,
            metric_family_name,
            help,
            unit,
        },
    )
}

fn write_request() -> impl Strategy<Value = v1::WriteRequest> {
    (
        proptest::collection::vec(time_series(), 0..8),
        proptest::collection::vec(metadata(), 0..3),
    )
        .prop_map(|(timeseries, metadata)| v1::WriteRequest {
            timeseries,
            metadata,
        })
}

/// A protobuf field tree for hand-made encodings: unknown fields of every wire type, groups,
/// repeated scalars (last one wins), wrong wire types, fields in any order.
#[derive(Clone, Debug)]
enum W {
    Varint(u32, u64),
    F64(u32, u64),
    F32(u32, u32),
    Bytes(u32, Vec<u8>),
    Msg(u32, Vec<W>),
    Group(u32, Vec<W>),
}

fn key(tag: u32, wt: u8, out: &mut Vec<u8>) {
    prost::encoding::encode_varint(u64::from(tag << 3 | u32::from(wt)), out);
}

fn enc(fields: &[W], out: &mut Vec<u8>) {
    for f in fields {
        match f {
            W::Varint(t, v) => {
                key(*t, 0, out);
                prost::encoding::encode_varint(*v, out);
            }
            W::F64(t, v) => {
                key(*t, 1, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            W::F32(t, v) => {
                key(*t, 5, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            W::Bytes(t, b) => {
                key(*t, 2, out);
                prost::encoding::encode_varint(b.len() as u64, out);
                out.extend_from_slice(b);
            }
            W::Msg(t, inner) => {
                let mut b = Vec::new();
                enc(inner, &mut b);
                key(*t, 2, out);
                prost::encoding::encode_varint(b.len() as u64, out);
                out.extend_from_slice(&b);
            }
            W::Group(t, inner) => {
                key(*t, 3, out);
                enc(inner, out);
                key(*t, 4, out);
            }
        }
    }
}

/// Unknown fields with tags from `first_unknown` up.
fn unknown(first_unknown: u32) -> impl Strategy<Value = W> {
    let tag = first_unknown..first_unknown + 20;
    let leaf = prop_oneof![
        (tag.clone(), any::<u64>()).prop_map(|(t, v)| W::Varint(t, v)),
        (tag.clone(), any::<u64>()).prop_map(|(t, v)| W::F64(t, v)),
        (tag.clone(), any::<u32>()).prop_map(|(t, v)| W::F32(t, v)),
        (tag.clone(), proptest::collection::vec(any::<u8>(), 0..6))
            .prop_map(|(t, v)| W::Bytes(t, v)),
    ];
    leaf.prop_recursive(2, 8, 3, move |inner| {
        (
            first_unknown..first_unknown + 20,
            proptest::collection::vec(inner, 0..3),
        )
            .prop_map(|(t, v)| W::Group(t, v))
    })
}

fn str_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => label_name().prop_map(String::into_bytes),
        4 => label_value().prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..5),
    ]
}

fn w_label() -> impl Strategy<Value = W> {
    let field = prop_oneof![
        6 => str_bytes().prop_map(|b| W::Bytes(1, b)),
        6 => str_bytes().prop_map(|b| W::Bytes(2, b)),
        2 => unknown(3),
        1 => any::<u64>().prop_map(|v| W::Varint(1, v)),
        1 => any::<u32>().prop_map(|v| W::F32(2, v)),
    ];
    proptest::collection::vec(field, 0..4).prop_map(|f| W::Msg(1, f))
}

fn w_sample() -> impl Strategy<Value = W> {
    let field = prop_oneof![
        6 => any::<u64>().prop_map(|v| W::F64(1, v)),
        6 => any::<u64>().prop_map(|v| W::Varint(2, v)),
        2 => unknown(3),
        1 => any::<u64>().prop_map(|v| W::Varint(1, v)),
        1 => any::<u64>().prop_map(|v| W::F64(2, v)),
        1 => proptest::collection::vec(any::<u8>(), 0..9).prop_map(|b| W::Bytes(1, b)),
    ];
    proptest::collection::vec(field, 0..4).prop_map(|f| W::Msg(2, f))
}

fn w_series() -> impl Strategy<Value = W> {
    let field = prop_oneof![
        8 => w_label(),
        8 => w_sample(),
        1 => histogram().prop_map(|h| W::Bytes(4, h.encode_to_vec())),
        1 => (labels(), any::<i64>()).prop_map(|(labels, timestamp)| W::Bytes(
            3,
            v1::Exemplar { labels, value: 1.0, timestamp }.encode_to_vec()
        )),
        2 => unknown(5),
        1 => any::<u64>().prop_map(|v| W::Varint(1, v)),
        1 => any::<u64>().prop_map(|v| W::F64(2, v)),
    ];
    proptest::collection::vec(field, 0..10).prop_map(|f| W::Msg(1, f))
}

fn w_request() -> impl Strategy<Value = Vec<W>> {
    let field = prop_oneof![
        8 => w_series(),
        1 => metadata().prop_map(|m| W::Bytes(3, m.encode_to_vec())),
        1 => unknown(4),
        1 => unknown(2).prop_map(|w| match w {
            W::Varint(_, v) => W::Varint(2, v),
            other => other,
        }),
    ];
    proptest::collection::vec(field, 0..6)
}

#[derive(Clone, Debug)]
enum Mutation {
    None,
    Truncate(proptest::sample::Index),
    Set(proptest::sample::Index, u8),
    Insert(proptest::sample::Index, u8),
    Remove(proptest::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::None),
        1 => any::<proptest::sample::Index>().prop_map(Mutation::Truncate),
        2 => (any::<proptest::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<proptest::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<proptest::sample::Index>().prop_map(Mutation::Remove),
    ]
}

fn mutate(mut raw: Vec<u8>, m: &Mutation) -> Vec<u8> {
    if raw.is_empty() {
        return raw;
    }
    match m {
        Mutation::None => {}
        Mutation::Truncate(i) => raw.truncate(i.index(raw.len())),
        Mutation::Set(i, b) => {
            let i = i.index(raw.len());
            raw[i] = *b;
        }
        Mutation::Insert(i, b) => {
            let i = i.index(raw.len() + 1);
            raw.insert(i, *b);
        }
        Mutation::Remove(i) => {
            raw.remove(i.index(raw.len()));
        }
    }
    raw
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_requests_decode_the_same(req in write_request(), limits in limits(), m in mutation()) {
        let raw = req.encode_to_vec();
        check(&raw, &limits)?;
        check(&mutate(raw, &m), &limits)?;
    }

    #[test]
    fn hand_made_encodings_decode_the_same(fields in w_request(), limits in limits(), m in mutation()) {
        let mut raw = Vec::new();
        enc(&fields, &mut raw);
        check(&raw, &limits)?;
        check(&mutate(raw, &m), &limits)?;
    }

    #[test]
    fn arbitrary_bytes_decode_the_same(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&data, &DecodeLimits::default())?;
    }

    #[test]
    fn arbitrary_bytes_after_a_series_prefix_decode_the_same(
        data in proptest::collection::vec(any::<u8>(), 0..64),
        cut in 0usize..40,
    ) {
        // Start inside a plausible series so the random tail reaches the nested readers.
        let mut raw = vec![0x0a, 0x40, 0x0a, 0x0c, 0x0a, 0x08];
        raw.extend_from_slice(b"__name__");
        raw.extend_from_slice(&[0x12, 0x00]);
        raw.extend_from_slice(&data);
        raw.truncate(raw.len().saturating_sub(cut % (raw.len() + 1)).max(6));
        check(&raw, &DecodeLimits::default())?;
    }
}

/// Unknown groups nested around prost's recursion limit, at every message level the new reader
/// handles itself: both decoders must accept and reject at the same depth, with the same text.
#[test]
fn deeply_nested_unknown_groups_hit_the_same_recursion_limit() {
    fn nested(depth: usize) -> W {
        let mut w = W::Varint(9, 1);
        for _ in 0..depth {
            w = W::Group(9, vec![w]);
        }
        w
    }
    let name = W::Bytes(1, b"__name__".to_vec());
    let value = W::Bytes(2, b"up".to_vec());
    for depth in 90..=102 {
        let cases = [
            vec![nested(depth)],
            vec![W::Msg(1, vec![nested(depth)])],
            vec![W::Msg(
                1,
                vec![W::Msg(1, vec![name.clone(), value.clone(), nested(depth)])],
            )],
            vec![W::Msg(1, vec![W::Msg(2, vec![nested(depth)])])],
        ];
        for fields in cases {
            let mut raw = Vec::new();
            enc(&fields, &mut raw);
            let (a, b) = (
                decode_v1(&raw, &DecodeLimits::default()),
                decode_v1_prost(&raw, &DecodeLimits::default()),
            );
            match (&a, &b) {
                (Ok(a), Ok(b)) => same(a, b).unwrap(),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                _ => panic!("depth {depth}: {a:?} vs {b:?}"),
            }
        }
    }
}

/// Error text keeps prost's location stack for the parts the new reader decodes itself.
#[test]
fn error_text_names_the_field() {
    let mut raw = Vec::new();
    enc(
        &[W::Msg(1, vec![W::Msg(1, vec![W::Bytes(1, vec![0xff])])])],
        &mut raw,
    );
    let e = decode_v1(&raw, &DecodeLimits::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "malformed protobuf: cannot decode prometheus.WriteRequest: failed to decode Protobuf \
         message: Label.name: TimeSeries.labels: WriteRequest.timeseries: invalid string value: \
         data is not UTF-8 encoded"
    );
    assert_eq!(
        e,
        decode_v1_prost(&raw, &DecodeLimits::default())
            .unwrap_err()
            .to_string()
    );
}

/// Release-mode micro benchmark: `cargo test -p sextant-ingest --release -- --ignored
/// --nocapture decode_v1_speed`. A 2000-sample request (200 series × 10 samples, 6 labels each,
/// like node_exporter series) decoded 10k times by each decoder.
#[test]
#[ignore]
fn decode_v1_speed() {
    use std::time::Instant;
    let series: Vec<v1::TimeSeries> = (0..200)
        .map(|i| v1::TimeSeries {
            labels: [
                ("__name__", format!("node_cpu_seconds_total_{}", i % 20)),
                ("cpu", format!("{}", i % 16)),
                ("instance", format!("host-{}.example.com:9100", i / 20)),
                ("job", "node".to_string()),
                (
                    "mode",
                    ["idle", "user", "system", "iowait"][i % 4].to_string(),
                ),
                ("region", "eu-west-1".to_string()),
            ]
            .into_iter()
            .map(|(n, v)| v1::Label {
                name: n.to_string(),
                value: v,
            })
            .collect(),
            samples: (0..10)
                .map(|j| v1::Sample {
                    value: (i * 10 + j) as f64 * 1.25,
                    timestamp: 1_700_000_000_000 + j as i64 * 15_000,
                })
                .collect(),
            exemplars: vec![],
            histograms: vec![],
        })
        .collect();
    let raw = v1::WriteRequest {
        timeseries: series,
        metadata: vec![],
    }
    .encode_to_vec();
    let limits = DecodeLimits::default();
    assert_eq!(decode_v1(&raw, &limits).unwrap().sample_count(), 2000);
    same(
        &decode_v1(&raw, &limits).unwrap(),
        &decode_v1_prost(&raw, &limits).unwrap(),
    )
    .unwrap();
    const N: u32 = 10_000;
    type Decoder = fn(&[u8], &DecodeLimits) -> Result<WriteBatch, DecodeError>;
    let decoders: [(&str, Decoder); 2] = [
        ("prost (old)", decode_v1_prost),
        ("zero-copy (new)", decode_v1),
    ];
    // Alternate the decoders over a few rounds and keep each one's best round, so a noisy
    // neighbour does not decide the comparison.
    let mut best = [f64::INFINITY; 2];
    for _round in 0..3 {
        for (k, (_, f)) in decoders.iter().enumerate() {
            for _ in 0..200 {
                std::hint::black_box(f(std::hint::black_box(&raw), &limits).unwrap());
            }
            let start = Instant::now();
            for _ in 0..N {
                std::hint::black_box(f(std::hint::black_box(&raw), &limits).unwrap());
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(N) / 2000.0;
            best[k] = best[k].min(ns);
        }
    }
    for (k, (name, _)) in decoders.iter().enumerate() {
        println!(
            "{name}: {:.1} ns/sample ({} bytes/request)",
            best[k],
            raw.len()
        );
    }
    println!("speed-up: {:.2}x", best[0] / best[1]);
}
