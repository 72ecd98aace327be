use super::proto::{v1, v2};
use super::*;
use proptest::prelude::*;
use prost::Message;
use sextant_model::{CounterResetHint, MetricType, Span};

fn ls(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn sample_series() -> Vec<(Labels, Vec<Sample>)> {
    vec![
        (
            ls(&[("__name__", "up"), ("job", "node"), ("instance", "a:9100")]),
            vec![Sample::new(1000, 1.0), Sample::new(2000, 0.0)],
        ),
        (
            ls(&[
                ("__name__", "http_requests_total"),
                ("job", "node"),
                ("code", "200"),
            ]),
            vec![Sample::new(1000, f64::INFINITY), Sample::new(-5, -3.5)],
        ),
        (ls(&[("__name__", "empty_series")]), vec![]),
    ]
}

fn as_pairs(b: &WriteBatch) -> Vec<(Labels, Vec<Sample>)> {
    b.series
        .iter()
        .map(|s| (s.labels.clone(), s.samples.clone()))
        .collect()
}

fn l1(n: &str, v: &str) -> v1::Label {
    v1::Label {
        name: n.into(),
        value: v.into(),
    }
}

fn ts1(labels: &[(&str, &str)], samples: usize) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: labels.iter().map(|(n, v)| l1(n, v)).collect(),
        samples: (0..samples)
            .map(|i| v1::Sample {
                value: i as f64,
                timestamp: i as i64,
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn content_type_negotiation() {
    use RemoteWriteVersion::*;
    assert_eq!(parse_content_type(None), Ok(V1));
    assert_eq!(parse_content_type(Some("")), Ok(V1));
    assert_eq!(parse_content_type(Some("application/x-protobuf")), Ok(V1));
    assert_eq!(
        parse_content_type(Some("application/x-protobuf;proto=prometheus.WriteRequest")),
        Ok(V1)
    );
    assert_eq!(
        parse_content_type(Some(
            "Application/X-Protobuf; proto=\"io.prometheus.write.v2.Request\""
        )),
        Ok(V2)
    );
    assert_eq!(
        parse_content_type(Some(
            "application/x-protobuf;proto=io.prometheus.write.v2.Request"
        )),
        Ok(V2)
    );
    let e = parse_content_type(Some("application/x-protobuf;proto=foo.Bar")).unwrap_err();
    assert!(e.contains("foo.Bar"), "{e}");
    let e = parse_content_type(Some("application/json")).unwrap_err();
    assert!(e.contains("application/json"), "{e}");
    assert_eq!(parse_content_type(Some(V2.content_type())), Ok(V2));
}

#[test]
fn round_trip_v1_and_v2() {
    let series = sample_series();
    for (enc, dec) in [
        (
            encode_v1 as fn(&[(Labels, Vec<Sample>)]) -> Vec<u8>,
            decode_v1 as fn(&[u8], &DecodeLimits) -> Result<WriteBatch, DecodeError>,
        ),
        (encode_v2, decode_v2),
    ] {
        let raw = enc(&series);
        let wire = compress_snappy(&raw);
        let back = decompress_snappy(&wire, 1 << 20).unwrap();
        assert_eq!(back, raw);
        let batch = dec(&back, &DecodeLimits::default()).unwrap();
        assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
        assert_eq!(as_pairs(&batch), series);
        assert_eq!(batch.sample_count(), 4);
    }
}

#[test]
fn v2_symbols_start_empty_and_are_deduplicated() {
    let raw = encode_v2(&sample_series());
    let req = v2::Request::decode(raw.as_slice()).unwrap();
    assert_eq!(req.symbols[0], "");
    let mut sorted = req.symbols.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), req.symbols.len());
    assert_eq!(req.symbols.iter().filter(|s| *s == "job").count(), 1);
}

#[test]
fn v1_histograms_int_float_custom_and_metadata() {
    let int_h = v1::Histogram {
        count: Some(v1::histogram::Count::CountInt(6)),
        sum: 12.5,
        schema: 1,
        zero_threshold: 0.001,
        zero_count: Some(v1::histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![
            v1::BucketSpan {
                offset: -1,
                length: 2,
            },
            v1::BucketSpan {
                offset: 3,
                length: 1,
            },
        ],
        positive_deltas: vec![2, -1, 1],
        negative_spans: vec![v1::BucketSpan {
            offset: 0,
            length: 1,
        }],
        negative_deltas: vec![1],
        reset_hint: v1::histogram::ResetHint::No as i32,
        timestamp: 1234,
        ..Default::default()
    };
    let float_h = v1::Histogram {
        count: Some(v1::histogram::Count::CountFloat(4.5)),
        sum: 3.0,
        schema: -53,
        positive_spans: vec![v1::BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_counts: vec![1.5, 2.0, 1.0],
        custom_values: vec![0.1, 0.5, 1.0],
        reset_hint: v1::histogram::ResetHint::Gauge as i32,
        timestamp: 2000,
        ..Default::default()
    };
    let req = v1::WriteRequest {
        timeseries: vec![v1::TimeSeries {
            labels: vec![l1("__name__", "latency_seconds"), l1("job", "api")],
            histograms: vec![int_h, float_h],
            exemplars: vec![v1::Exemplar {
                labels: vec![l1("trace_id", "abc")],
                value: 0.3,
                timestamp: 1234,
            }],
            ..Default::default()
        }],
        metadata: vec![
            v1::MetricMetadata {
                r#type: v1::metric_metadata::MetricType::Histogram as i32,
                metric_family_name: "latency_seconds".into(),
                help: "Request latency.".into(),
                unit: "seconds".into(),
            },
            v1::MetricMetadata {
                r#type: 99,
                metric_family_name: "weird".into(),
                ..Default::default()
            },
        ],
    };
    let batch = decode_v1(&req.encode_to_vec(), &DecodeLimits::default()).unwrap();
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    let s = &batch.series[0];
    assert_eq!(
        s.exemplars,
        vec![sextant_model::Exemplar {
            labels: ls(&[("trace_id", "abc")]),
            value: 0.3,
            ts: 1234
        }]
    );
    assert_eq!(s.histograms.len(), 2);
    let (t, HistogramValue::Int(h)) = &s.histograms[0] else {
        panic!("expected int histogram")
    };
    assert_eq!(*t, 1234);
    assert_eq!(h.count, 6);
    assert_eq!(h.zero_count, 1);
    assert_eq!(h.schema, 1);
    assert_eq!(h.counter_reset_hint, CounterResetHint::NotCounterReset);
    assert_eq!(
        h.positive_spans,
        vec![
            Span {
                offset: -1,
                length: 2
            },
            Span {
                offset: 3,
                length: 1
            }
        ]
    );
    assert_eq!(h.positive_buckets, vec![2, -1, 1]);
    assert_eq!(h.negative_buckets, vec![1]);
    let (t, HistogramValue::Float(f)) = &s.histograms[1] else {
        panic!("expected float histogram")
    };
    assert_eq!(*t, 2000);
    assert_eq!(f.schema, -53);
    assert_eq!(f.count, 4.5);
    assert_eq!(f.custom_values, vec![0.1, 0.5, 1.0]);
    assert_eq!(f.positive_buckets, vec![1.5, 2.0, 1.0]);
    assert_eq!(f.counter_reset_hint, CounterResetHint::Gauge);

    assert_eq!(
        batch.metadata,
        vec![
            Metadata {
                metric_family: "latency_seconds".into(),
                kind: MetricType::Histogram,
                help: "Request latency.".into(),
                unit: "seconds".into(),
            },
            Metadata {
                metric_family: "weird".into(),
                kind: MetricType::Unknown,
                help: String::new(),
                unit: String::new(),
            }
        ]
    );
}

#[test]
fn invalid_histograms_are_rejected_per_series() {
    let bad_spans = v1::Histogram {
        count: Some(v1::histogram::Count::CountInt(1)),
        positive_spans: vec![v1::BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![1],
        timestamp: 7,
        ..Default::default()
    };
    let negative_count = v1::Histogram {
        positive_spans: vec![v1::BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![1, -2],
        ..Default::default()
    };
    let bad_schema = v1::Histogram {
        count: Some(v1::histogram::Count::CountFloat(1.0)),
        schema: 42,
        ..Default::default()
    };
    let custom_unsorted = v1::Histogram {
        count: Some(v1::histogram::Count::CountFloat(1.0)),
        schema: -53,
        custom_values: vec![2.0, 1.0],
        ..Default::default()
    };
    let mut req = v1::WriteRequest::default();
    for (i, h) in [bad_spans, negative_count, bad_schema, custom_unsorted]
        .into_iter()
        .enumerate()
    {
        let mut ts = ts1(&[("__name__", "h"), ("i", &i.to_string())], 0);
        ts.histograms.push(h);
        req.timeseries.push(ts);
    }
    req.timeseries.push(ts1(&[("__name__", "ok")], 2));
    let batch = decode_v1(&req.encode_to_vec(), &DecodeLimits::default()).unwrap();
    assert_eq!(batch.series.len(), 1);
    assert_eq!(batch.series[0].labels.metric_name(), Some("ok"));
    let reasons: Vec<&str> = batch.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(
        reasons[0].contains("timestamp 7") && reasons[0].contains("positive spans"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[1].contains("negative bucket count"),
        "{}",
        reasons[1]
    );
    assert!(reasons[2].contains("schema 42"), "{}", reasons[2]);
    assert!(reasons[3].contains("custom"), "{}", reasons[3]);
    assert_eq!(batch.rejected[0].labels, "h{i=\"0\"}");
    assert_eq!(batch.rejected[0].samples, 1);
}

#[test]
fn invalid_labels_are_rejected_while_others_pass() {
    let limits = DecodeLimits {
        max_labels_per_series: 4,
        max_label_name_len: 20,
        max_label_value_len: 30,
    };
    let long_value = "v".repeat(31);
    let long_name = "n".repeat(21);
    let req = v1::WriteRequest {
        timeseries: vec![
            ts1(&[("__name__", "good"), ("job", "a")], 3),
            ts1(&[("__name__", "bad"), ("a-b", "1")], 1),
            ts1(&[("__name__", "dup"), ("a", "1"), ("a", "2")], 1),
            ts1(&[("job", "x"), ("__name__", "unsorted")], 1),
            ts1(&[], 2),
            ts1(
                &[
                    ("__name__", "many"),
                    ("a", "1"),
                    ("b", "1"),
                    ("c", "1"),
                    ("d", "1"),
                ],
                1,
            ),
            ts1(&[("__name__", "longname"), (&long_name, "1")], 1),
            ts1(&[("__name__", "longvalue"), ("a", &long_value)], 1),
            ts1(&[("__name__", "1bad")], 1),
            ts1(&[("job", "noname")], 1),
            ts1(&[("__name__", "good2")], 1),
        ],
        metadata: vec![],
    };
    let batch = decode_v1(&req.encode_to_vec(), &limits).unwrap();
    let names: Vec<_> = batch
        .series
        .iter()
        .map(|s| s.labels.metric_name().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["good", "good2"]);
    let got: Vec<(&str, &str, usize)> = batch
        .rejected
        .iter()
        .map(|r| (r.labels.as_str(), r.reason.as_str(), r.samples))
        .collect();
    let expect: &[(&str, &str)] = &[
        ("bad{a-b=\"1\"}", "invalid label name \"a-b\""),
        ("dup{a=\"1\", a=\"2\"}", "duplicate label name \"a\""),
        ("unsorted{job=\"x\"}", "not sorted"),
        ("{}", "empty label set"),
        ("many{", "5 labels, over the limit of 4"),
        ("longname{", "is 21 bytes long, over the limit of 20"),
        (
            "longvalue{",
            "value of label \"a\" is 31 bytes long, over the limit of 30",
        ),
        ("1bad{}", "invalid metric name \"1bad\""),
        ("{job=\"noname\"}", "missing metric name"),
    ];
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for ((labels, reason, samples), (want_labels, want_reason)) in got.iter().zip(expect) {
        assert!(labels.starts_with(want_labels), "{labels} vs {want_labels}");
        assert!(
            reason.contains(want_reason),
            "{reason:?} should mention {want_reason:?}"
        );
        assert!(*samples > 0);
    }
}

fn v2_request(symbols: &[&str], series: Vec<v2::TimeSeries>) -> Vec<u8> {
    v2::Request {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        timeseries: series,
    }
    .encode_to_vec()
}

#[test]
fn v2_metadata_histograms_and_bad_refs() {
    let symbols = [
        "",
        "__name__",
        "rpc_seconds",
        "job",
        "api",
        "Time per RPC.",
        "seconds",
        "zz",
    ];
    let good = v2::TimeSeries {
        labels_refs: vec![1, 2, 3, 4],
        histograms: vec![v2::Histogram {
            count: Some(v2::histogram::Count::CountInt(3)),
            zero_count: Some(v2::histogram::ZeroCount::ZeroCountInt(0)),
            schema: -53,
            positive_spans: vec![v2::BucketSpan {
                offset: 0,
                length: 2,
            }],
            positive_deltas: vec![1, 1],
            custom_values: vec![0.5, 1.0],
            reset_hint: v2::histogram::ResetHint::Yes as i32,
            timestamp: 99,
            ..Default::default()
        }],
        metadata: Some(v2::Metadata {
            r#type: v2::metadata::MetricType::Histogram as i32,
            help_ref: 5,
            unit_ref: 6,
        }),
        exemplars: vec![
            v2::Exemplar::default(),
            v2::Exemplar {
                labels_refs: vec![3, 4],
                value: 2.5,
                timestamp: 98,
            },
        ],
        created_timestamp: 50,
        ..Default::default()
    };
    let out_of_range = v2::TimeSeries {
        labels_refs: vec![1, 2, 3, 100],
        samples: vec![v2::Sample::default()],
        ..Default::default()
    };
    let odd = v2::TimeSeries {
        labels_refs: vec![1, 2, 3],
        ..Default::default()
    };
    let bad_help = v2::TimeSeries {
        labels_refs: vec![1, 7],
        metadata: Some(v2::Metadata {
            r#type: 1,
            help_ref: 1000,
            unit_ref: 0,
        }),
        ..Default::default()
    };
    let raw = v2_request(&symbols, vec![good, out_of_range, odd, bad_help]);
    let batch = decode_v2(&raw, &DecodeLimits::default()).unwrap();
    assert_eq!(batch.series.len(), 1);
    let s = &batch.series[0];
    assert_eq!(s.labels, ls(&[("__name__", "rpc_seconds"), ("job", "api")]));
    assert_eq!(s.exemplars.len(), 2);
    assert_eq!(s.exemplars[0].labels, Labels::empty());
    assert_eq!(
        (
            s.exemplars[1].labels.clone(),
            s.exemplars[1].value,
            s.exemplars[1].ts
        ),
        (ls(&[("job", "api")]), 2.5, 98)
    );
    let (t, HistogramValue::Int(h)) = &s.histograms[0] else {
        panic!("expected int histogram")
    };
    assert_eq!(*t, 99);
    assert_eq!(h.custom_values, vec![0.5, 1.0]);
    assert_eq!(h.counter_reset_hint, CounterResetHint::CounterReset);
    assert_eq!(
        batch.metadata,
        vec![Metadata {
            metric_family: "rpc_seconds".into(),
            kind: MetricType::Histogram,
            help: "Time per RPC.".into(),
            unit: "seconds".into(),
        }]
    );
    let reasons: Vec<&str> = batch.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons[0].contains("symbol reference 100 is out of range: the request has 8 symbols"),
        "{}",
        reasons[0]
    );
    assert_eq!(batch.rejected[0].labels, "rpc_seconds{<bad ref>}");
    assert!(reasons[1].contains("odd number"), "{}", reasons[1]);
    assert!(
        reasons[2].contains("help_ref") && reasons[2].contains("1000"),
        "{}",
        reasons[2]
    );
}

#[test]
fn v2_float_histogram_and_limits() {
    let symbols = ["", "__name__", "m", "a", "toolongvalue"];
    let raw = v2_request(
        &symbols,
        vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2],
                histograms: vec![v2::Histogram {
                    count: Some(v2::histogram::Count::CountFloat(2.5)),
                    zero_count: Some(v2::histogram::ZeroCount::ZeroCountFloat(0.5)),
                    schema: 3,
                    negative_spans: vec![v2::BucketSpan {
                        offset: 2,
                        length: 1,
                    }],
                    negative_counts: vec![2.0],
                    timestamp: 5,
                    ..Default::default()
                }],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![v2::Sample::default()],
                ..Default::default()
            },
        ],
    );
    let limits = DecodeLimits {
        max_label_value_len: 5,
        ..Default::default()
    };
    let batch = decode_v2(&raw, &limits).unwrap();
    assert_eq!(batch.series.len(), 1);
    let (_, HistogramValue::Float(f)) = &batch.series[0].histograms[0] else {
        panic!("expected float histogram")
    };
    assert_eq!((f.count, f.zero_count, f.schema), (2.5, 0.5, 3));
    assert_eq!(f.negative_buckets, vec![2.0]);
    assert_eq!(batch.rejected.len(), 1);
    assert!(batch.rejected[0].reason.contains("over the limit of 5"));
}

#[test]
fn v1_request_decoded_as_v2_is_empty_not_garbage() {
    let raw = encode_v1(&sample_series());
    let batch = decode_v2(&raw, &DecodeLimits::default()).unwrap();
    assert!(batch.series.is_empty() && batch.rejected.is_empty());
}

#[test]
fn truncated_and_garbage_protobuf_is_an_error() {
    let raw = encode_v1(&sample_series());
    let truncated = &raw[..raw.len() - 3];
    let e = decode_v1(truncated, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(e, DecodeError::Protobuf(_)), "{e}");
    assert!(e.to_string().contains("prometheus.WriteRequest"), "{e}");
    let raw2 = encode_v2(&sample_series());
    let e = decode_v2(&raw2[..raw2.len() - 2], &DecodeLimits::default()).unwrap_err();
    assert!(
        e.to_string().contains("io.prometheus.write.v2.Request"),
        "{e}"
    );
    let garbage = [0xff_u8, 0xff, 0xff, 0xff, 0x0f, 0x01];
    assert!(decode_v1(&garbage, &DecodeLimits::default()).is_err());
    assert!(decode_v2(&garbage, &DecodeLimits::default()).is_err());
}

#[test]
fn snappy_errors() {
    let e = decompress_snappy(b"\xff\xff\xff\xff\xff\xff not snappy", 1 << 20).unwrap_err();
    assert!(matches!(e, DecodeError::Snappy(_)), "{e}");
    let e = decompress_snappy(&[0x05, 0x00], 1 << 20).unwrap_err();
    assert!(matches!(e, DecodeError::Snappy(_)), "{e}");

    let big = compress_snappy(&vec![0u8; 10_000]);
    let e = decompress_snappy(&big, 9_999).unwrap_err();
    match e {
        DecodeError::TooLarge { size, limit } => assert_eq!((size, limit), (10_000, 9_999)),
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(e_display_mentions_sizes());
    assert_eq!(decompress_snappy(&big, 10_000).unwrap().len(), 10_000);
    // A header claiming 4 GiB is refused before allocating.
    let lying = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    assert!(matches!(
        decompress_snappy(&lying, 1 << 20),
        Err(DecodeError::TooLarge { .. })
    ));
}

fn e_display_mentions_sizes() -> bool {
    let e = DecodeError::TooLarge { size: 10, limit: 5 };
    e.to_string()
        == "decompressed body would be 10 bytes, over the limit of 5 bytes (limit decompressed_size)"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let limits = DecodeLimits { max_labels_per_series: 3, max_label_name_len: 8, max_label_value_len: 8 };
        let _ = decompress_snappy(&data, 1 << 16);
        let _ = decode_v1(&data, &limits);
        let _ = decode_v2(&data, &limits);
        let _ = decode_v1(&data, &DecodeLimits::default());
        let _ = decode_v2(&data, &DecodeLimits::default());
    }

    #[test]
    fn mutated_valid_requests_never_panic(
        idx in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
        v2 in any::<bool>(),
    ) {
        let mut raw = if v2 { encode_v2(&sample_series()) } else { encode_v1(&sample_series()) };
        let i = idx.index(raw.len());
        raw[i] = byte;
        let _ = decode_v1(&raw, &DecodeLimits::default());
        let _ = decode_v2(&raw, &DecodeLimits::default());
    }

    #[test]
    fn round_trip_arbitrary_values(
        vals in proptest::collection::vec((any::<i64>(), any::<f64>()), 0..20),
        job in "[a-z]{1,10}",
    ) {
        let series = vec![(
            ls(&[("__name__", "m"), ("job", &job)]),
            vals.iter().map(|(t, v)| Sample::new(*t, *v)).collect::<Vec<_>>(),
        )];
        let limits = DecodeLimits::default();
        for b in [decode_v1(&encode_v1(&series), &limits), decode_v2(&encode_v2(&series), &limits)] {
            let b = b.unwrap();
            prop_assert_eq!(b.series.len(), 1);
            prop_assert_eq!(b.series[0].samples.len(), series[0].1.len());
            for (a, e) in b.series[0].samples.iter().zip(&series[0].1) {
                // proto3 (prost, and gogoproto in Prometheus) omits a -0.0 value as the
                // default, so it comes back as +0.0.
                let e = if e.v == 0.0 { Sample::new(e.t, 0.0) } else { *e };
                prop_assert!(a.bit_eq(&e), "{:?} vs {:?}", a, e);
            }
        }
    }
}
