//! Translation tests on hand-built requests, decoder tests, and proptests that hostile bodies
//! never panic the decoders.

use proptest::prelude::*;
use prost::Message;
use sextant_model::{is_stale_nan, HistogramValue, Labels, Span};

use super::proto::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use super::proto::metrics::v1 as m;
use super::proto::resource::v1::Resource;
use super::*;
use crate::remote_write::DecodeLimits;

const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        key_strindex: 0,
    }
}

fn request(resource: Vec<KeyValue>, metrics: Vec<m::Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![m::ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_metrics: vec![m::ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "test.scope".into(),
                    version: "1.0".into(),
                    attributes: vec![],
                    dropped_attributes_count: 0,
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn svc() -> Vec<KeyValue> {
    vec![
        kv("service.name", "checkout"),
        kv("service.namespace", "shop"),
        kv("service.instance.id", "pod-1"),
        kv("host.name", "node-a"),
    ]
}

fn metric(name: &str, unit: &str, data: m::metric::Data) -> m::Metric {
    m::Metric {
        name: name.into(),
        description: format!("{name} help"),
        unit: unit.into(),
        metadata: vec![],
        data: Some(data),
    }
}

fn num_point(attrs: Vec<KeyValue>, start: u64, time: u64, v: f64) -> m::NumberDataPoint {
    m::NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: start,
        time_unix_nano: time,
        exemplars: vec![],
        flags: 0,
        value: Some(m::number_data_point::Value::AsDouble(v)),
    }
}

fn sum(
    points: Vec<m::NumberDataPoint>,
    temporality: m::AggregationTemporality,
    mono: bool,
) -> m::metric::Data {
    m::metric::Data::Sum(m::Sum {
        data_points: points,
        aggregation_temporality: temporality as i32,
        is_monotonic: mono,
    })
}

fn run(tr: &Translator, req: ExportMetricsServiceRequest) -> Translated {
    tr.translate(req, &DecodeLimits::default(), 0, None)
}

/// (labels as text, t, v) of every float sample.
fn floats(t: &Translated) -> Vec<(String, i64, f64)> {
    let mut v: Vec<_> = t
        .batch
        .series
        .iter()
        .flat_map(|s| {
            s.samples
                .iter()
                .map(move |x| (s.labels.to_string(), x.t, x.v))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    v
}

fn value_of(t: &Translated, labels: &str) -> f64 {
    let f = floats(t);
    let hits: Vec<_> = f.iter().filter(|x| x.0 == labels).collect();
    assert_eq!(hits.len(), 1, "want one sample of {labels}, have {f:#?}");
    hits[0].2
}

#[test]
fn cumulative_counter_with_job_instance_and_target_info() {
    let tr = Translator::default();
    let req = request(
        svc(),
        vec![metric(
            "http.server.requests",
            "{request}",
            sum(
                vec![num_point(vec![kv("http.method", "GET")], T0, T0 + SEC, 7.0)],
                m::AggregationTemporality::Cumulative,
                true,
            ),
        )],
    );
    let out = run(&tr, req);
    assert_eq!(out.rejected_points, 0, "{:?}", out.first_error);
    assert_eq!(out.points, 1);
    assert_eq!(
        value_of(
            &out,
            r#"http_server_requests_total{http_method="GET", instance="pod-1", job="shop/checkout"}"#
        ),
        7.0
    );
    // Resource attributes other than service.* go to target_info only.
    let ti = floats(&out)
        .into_iter()
        .filter(|x| x.0.starts_with("target_info"))
        .collect::<Vec<_>>();
    assert_eq!(
        ti,
        vec![(
            r#"target_info{host_name="node-a", instance="pod-1", job="shop/checkout"}"#.to_string(),
            ((T0 + SEC) / 1_000_000) as i64,
            1.0
        )]
    );
    let md = &out.batch.metadata[0];
    assert_eq!(md.metric_family, "http_server_requests_total");
    assert_eq!(md.kind, sextant_model::MetricType::Counter);
    assert_eq!(md.help, "http.server.requests help");
}

#[test]
fn no_target_info_without_job_or_extra_attributes() {
    let tr = Translator::default();
    let g = || {
        metric(
            "g",
            "",
            m::metric::Data::Gauge(m::Gauge {
                data_points: vec![num_point(vec![], 0, T0, 1.0)],
            }),
        )
    };
    let only_ids = run(&tr, request(vec![kv("service.name", "a")], vec![g()]));
    assert!(floats(&only_ids)
        .iter()
        .all(|x| !x.0.starts_with("target_info")));
    let no_ids = run(&tr, request(vec![kv("host.name", "h")], vec![g()]));
    assert!(floats(&no_ids)
        .iter()
        .all(|x| !x.0.starts_with("target_info")));
}

#[test]
fn delta_sums_become_running_totals() {
    let tr = Translator::default();
    let mk = |start, time, v| {
        request(
            svc(),
            vec![metric(
                "jobs.done",
                "",
                sum(
                    vec![num_point(vec![], start, time, v)],
                    m::AggregationTemporality::Delta,
                    true,
                ),
            )],
        )
    };
    let name = r#"jobs_done_total{instance="pod-1", job="shop/checkout"}"#;
    assert_eq!(value_of(&run(&tr, mk(T0, T0 + SEC, 3.0)), name), 3.0);
    assert_eq!(
        value_of(&run(&tr, mk(T0 + SEC, T0 + 2 * SEC, 4.0)), name),
        7.0
    );
    // The same point again (a retried request) is refused, not counted twice.
    let again = run(&tr, mk(T0 + SEC, T0 + 2 * SEC, 4.0));
    assert_eq!(again.rejected_points, 1);
    assert!(again.first_error.unwrap().contains("already counted"));
    // A restarted producer (start before the last point) starts a new total.
    assert_eq!(
        value_of(&run(&tr, mk(T0 + SEC, T0 + 5 * SEC, 2.0)), name),
        2.0
    );
}

#[test]
fn gauges_updown_counters_and_units() {
    let tr = Translator::default();
    let out = run(
        &tr,
        request(
            svc(),
            vec![
                metric(
                    "cpu.utilization",
                    "1",
                    m::metric::Data::Gauge(m::Gauge {
                        data_points: vec![num_point(vec![], 0, T0, 0.25)],
                    }),
                ),
                metric(
                    "queue.length",
                    "1",
                    sum(
                        vec![num_point(vec![], 0, T0, -3.0)],
                        m::AggregationTemporality::Cumulative,
                        false,
                    ),
                ),
                metric(
                    "memory.used",
                    "By",
                    m::metric::Data::Gauge(m::Gauge {
                        data_points: vec![m::NumberDataPoint {
                            value: Some(m::number_data_point::Value::AsInt(1 << 40)),
                            ..num_point(vec![], 0, T0, 0.0)
                        }],
                    }),
                ),
            ],
        ),
    );
    let ids = r#"instance="pod-1", job="shop/checkout""#;
    assert_eq!(
        value_of(&out, &format!("cpu_utilization_ratio{{{ids}}}")),
        0.25
    );
    assert_eq!(value_of(&out, &format!("queue_length{{{ids}}}")), -3.0);
    assert_eq!(
        value_of(&out, &format!("memory_used_bytes{{{ids}}}")),
        (1u64 << 40) as f64
    );
}

#[test]
fn colliding_and_odd_attribute_names() {
    let tr = Translator::default();
    let out = run(
        &tr,
        request(
            vec![],
            vec![metric(
                "g",
                "",
                m::metric::Data::Gauge(m::Gauge {
                    data_points: vec![num_point(
                        vec![
                            kv("a_b", "2"),
                            kv("a.b", "1"),
                            kv("9lives", "x"),
                            kv("_x", "y"),
                        ],
                        0,
                        T0,
                        1.0,
                    )],
                }),
            )],
        ),
    );
    // Sorted by original key ("a.b" < "a_b"), so the values join as "1;2".
    assert_eq!(
        value_of(&out, r#"g{a_b="1;2", key_9lives="x", key_x="y"}"#),
        1.0
    );
}

#[test]
fn attribute_values_render_like_pcommon() {
    use super::translate::any_to_string;
    let v = |x| Some(AnyValue { value: Some(x) });
    assert_eq!(
        any_to_string(v(any_value::Value::IntValue(-5)).as_ref()),
        "-5"
    );
    assert_eq!(
        any_to_string(v(any_value::Value::BoolValue(true)).as_ref()),
        "true"
    );
    assert_eq!(
        any_to_string(v(any_value::Value::DoubleValue(1.5)).as_ref()),
        "1.5"
    );
    assert_eq!(
        any_to_string(v(any_value::Value::DoubleValue(1e21)).as_ref()),
        "1e+21"
    );
    assert_eq!(
        any_to_string(v(any_value::Value::DoubleValue(1e-7)).as_ref()),
        "1e-7"
    );
    assert_eq!(
        any_to_string(v(any_value::Value::BytesValue(b"hi!".to_vec())).as_ref()),
        "aGkh"
    );
    assert_eq!(
        any_to_string(v(any_value::Value::BytesValue(b"h".to_vec())).as_ref()),
        "aA=="
    );
    let arr = any_value::Value::ArrayValue(super::proto::common::v1::ArrayValue {
        values: vec![
            AnyValue {
                value: Some(any_value::Value::StringValue("a".into())),
            },
            AnyValue {
                value: Some(any_value::Value::IntValue(1)),
            },
        ],
    });
    assert_eq!(any_to_string(v(arr).as_ref()), r#"["a",1]"#);
}

fn hist_point(
    start: u64,
    time: u64,
    counts: Vec<u64>,
    bounds: Vec<f64>,
    sum: f64,
) -> m::HistogramDataPoint {
    m::HistogramDataPoint {
        attributes: vec![],
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: counts.iter().sum(),
        sum: Some(sum),
        bucket_counts: counts,
        explicit_bounds: bounds,
        exemplars: vec![
            m::Exemplar {
                trace_id: vec![
                    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81,
                    0x3f, 0xc6, 0x0c,
                ],
                span_id: vec![0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
                time_unix_nano: time,
                value: Some(m::exemplar::Value::AsDouble(7.0)),
                filtered_attributes: vec![kv("user", "u1")],
            },
            m::Exemplar {
                time_unix_nano: time,
                value: Some(m::exemplar::Value::AsInt(500)),
                ..Default::default()
            },
        ],
        flags: 0,
        min: None,
        max: None,
    }
}

#[test]
fn classic_histograms_cumulative_and_delta() {
    let tr = Translator::default();
    let mk = |temp: m::AggregationTemporality, start, time, counts: Vec<u64>, s| {
        request(
            vec![kv("service.name", "svc")],
            vec![metric(
                "rpc.duration",
                "ms",
                m::metric::Data::Histogram(m::Histogram {
                    data_points: vec![hist_point(start, time, counts, vec![5.0, 10.0, 100.5], s)],
                    aggregation_temporality: temp as i32,
                }),
            )],
        )
    };
    let out = run(
        &tr,
        mk(
            m::AggregationTemporality::Cumulative,
            T0,
            T0 + SEC,
            vec![1, 2, 0, 4],
            300.0,
        ),
    );
    assert_eq!(out.rejected_points, 0, "{:?}", out.first_error);
    let b = |le: &str| format!(r#"rpc_duration_milliseconds_bucket{{job="svc", le="{le}"}}"#);
    assert_eq!(value_of(&out, &b("5")), 1.0);
    assert_eq!(value_of(&out, &b("10")), 3.0);
    assert_eq!(value_of(&out, &b("100.5")), 3.0);
    assert_eq!(value_of(&out, &b("+Inf")), 7.0);
    assert_eq!(
        value_of(&out, r#"rpc_duration_milliseconds_count{job="svc"}"#),
        7.0
    );
    assert_eq!(
        value_of(&out, r#"rpc_duration_milliseconds_sum{job="svc"}"#),
        300.0
    );
    // Exemplars go to the first bucket holding their value, trace and span ids as hex labels.
    let ex_of = |name: &str| {
        out.batch
            .series
            .iter()
            .find(|s| s.labels.to_string() == name)
            .map(|s| s.exemplars.clone())
            .unwrap_or_default()
    };
    let ten = ex_of(&b("10"));
    assert_eq!(ten.len(), 1);
    assert_eq!(
        ten[0].labels.to_string(),
        r#"{span_id="00f067aa0ba902b7", trace_id="5b8efff798038103d269b633813fc60c", user="u1"}"#
    );
    assert_eq!(
        (ten[0].value, ten[0].ts),
        (7.0, ((T0 + SEC) / 1_000_000) as i64)
    );
    let inf = ex_of(&b("+Inf"));
    assert_eq!(inf.len(), 1);
    assert_eq!(inf[0].value, 500.0);
    assert!(ex_of(&b("5")).is_empty() && ex_of(&b("100.5")).is_empty());
    assert_eq!(out.batch.metadata[0].unit, "milliseconds");

    // Delta: two points add up bucket by bucket.
    let d = m::AggregationTemporality::Delta;
    let _ = run(&tr, mk(d, T0, T0 + SEC, vec![1, 0, 0, 1], 10.0));
    let out = run(&tr, mk(d, T0 + SEC, T0 + 2 * SEC, vec![0, 2, 1, 0], 20.0));
    assert_eq!(value_of(&out, &b("5")), 1.0);
    assert_eq!(value_of(&out, &b("10")), 3.0);
    assert_eq!(value_of(&out, &b("100.5")), 4.0);
    assert_eq!(value_of(&out, &b("+Inf")), 5.0);
    assert_eq!(
        value_of(&out, r#"rpc_duration_milliseconds_sum{job="svc"}"#),
        30.0
    );

    // Mismatched bucket_counts are refused with a message.
    let bad = run(
        &tr,
        mk(
            m::AggregationTemporality::Cumulative,
            T0,
            T0 + 3 * SEC,
            vec![1, 2],
            1.0,
        ),
    );
    assert_eq!(bad.rejected_points, 1);
    assert!(bad.first_error.unwrap().contains("bucket_counts"));
}

fn exp_point(
    scale: i32,
    zero: u64,
    pos: (i32, Vec<u64>),
    neg: (i32, Vec<u64>),
    time: u64,
) -> m::ExponentialHistogramDataPoint {
    use m::exponential_histogram_data_point::Buckets;
    let count = pos
        .1
        .iter()
        .chain(&neg.1)
        .fold(zero, |a, b| a.saturating_add(*b));
    m::ExponentialHistogramDataPoint {
        attributes: vec![],
        start_time_unix_nano: T0,
        time_unix_nano: time,
        count,
        sum: Some(12.5),
        scale,
        zero_count: zero,
        positive: Some(Buckets {
            offset: pos.0,
            bucket_counts: pos.1,
        }),
        negative: Some(Buckets {
            offset: neg.0,
            bucket_counts: neg.1,
        }),
        flags: 0,
        exemplars: vec![],
        min: None,
        max: None,
        zero_threshold: 0.0,
    }
}

fn exp_req(
    points: Vec<m::ExponentialHistogramDataPoint>,
    temp: m::AggregationTemporality,
) -> ExportMetricsServiceRequest {
    request(
        vec![kv("service.name", "svc")],
        vec![metric(
            "latency",
            "s",
            m::metric::Data::ExponentialHistogram(m::ExponentialHistogram {
                data_points: points,
                aggregation_temporality: temp as i32,
            }),
        )],
    )
}

fn only_hist(t: &Translated) -> sextant_model::Histogram {
    let hs: Vec<_> = t
        .batch
        .series
        .iter()
        .flat_map(|s| s.histograms.iter())
        .collect();
    assert_eq!(hs.len(), 1, "{:?}", t.first_error);
    match &hs[0].1 {
        HistogramValue::Int(h) => h.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn exponential_to_native() {
    let tr = Translator::default();
    let out = run(
        &tr,
        exp_req(
            vec![exp_point(
                3,
                2,
                (-2, vec![1, 0, 3]),
                (0, vec![4, 0, 0, 0, 5]),
                T0,
            )],
            m::AggregationTemporality::Cumulative,
        ),
    );
    let s = out
        .batch
        .series
        .iter()
        .find(|s| !s.histograms.is_empty())
        .unwrap();
    assert_eq!(
        s.labels,
        Labels::from_pairs([("__name__", "latency_seconds"), ("job", "svc")])
    );
    let h = only_hist(&out);
    assert_eq!(h.schema, 3);
    assert_eq!(h.zero_count, 2);
    assert_eq!(h.zero_threshold, exphist::DEFAULT_ZERO_THRESHOLD);
    assert_eq!(h.count, 15);
    assert_eq!(h.sum, 12.5);
    // OTel -2..0 → native -1..1, one empty bucket kept inside the span.
    assert_eq!(
        h.positive_spans,
        vec![Span {
            offset: -1,
            length: 3
        }]
    );
    assert_eq!(h.positive_buckets, vec![1, -1, 3]);
    // OTel 0 and 4 → native 1 and 5: three empty buckets between start a new span.
    assert_eq!(
        h.negative_spans,
        vec![
            Span {
                offset: 1,
                length: 1
            },
            Span {
                offset: 3,
                length: 1
            }
        ]
    );
    assert_eq!(h.negative_buckets, vec![4, 1]);
}

#[test]
fn exponential_scale_above_8_is_merged_and_below_minus_4_refused() {
    let tr = Translator::default();
    // Scale 10 → 8: four buckets merge into one. OTel 0..7 → (i>>2)+1 = 1,1,1,1,2,2,2,2.
    let out = run(
        &tr,
        exp_req(
            vec![exp_point(
                10,
                0,
                (0, vec![1, 1, 1, 1, 2, 2, 2, 2]),
                (0, vec![]),
                T0,
            )],
            m::AggregationTemporality::Cumulative,
        ),
    );
    let h = only_hist(&out);
    assert_eq!(h.schema, 8);
    assert_eq!(
        h.positive_spans,
        vec![Span {
            offset: 1,
            length: 2
        }]
    );
    assert_eq!(h.positive_buckets, vec![4, 4]);
    assert_eq!(h.count, 12);

    let bad = run(
        &tr,
        exp_req(
            vec![exp_point(-5, 1, (0, vec![1]), (0, vec![]), T0)],
            m::AggregationTemporality::Cumulative,
        ),
    );
    assert_eq!(bad.rejected_points, 1);
    assert!(bad.first_error.unwrap().contains("scale -5"));
    assert!(bad.batch.series.iter().all(|s| s.histograms.is_empty()));
}

#[test]
fn exponential_delta_accumulates() {
    let tr = Translator::default();
    let d = m::AggregationTemporality::Delta;
    let mut p1 = exp_point(2, 1, (0, vec![1, 1]), (0, vec![]), T0 + SEC);
    p1.start_time_unix_nano = T0;
    let mut p2 = exp_point(2, 2, (1, vec![3]), (-1, vec![1]), T0 + 2 * SEC);
    p2.start_time_unix_nano = T0 + SEC;
    run(&tr, exp_req(vec![p1], d));
    let h = only_hist(&run(&tr, exp_req(vec![p2], d)));
    assert_eq!(h.zero_count, 3);
    assert_eq!(h.count, 3 + 2 + 3 + 1);
    assert_eq!(h.sum, 25.0);
    assert_eq!(
        h.positive_spans,
        vec![Span {
            offset: 1,
            length: 2
        }]
    );
    assert_eq!(h.positive_buckets, vec![1, 3]); // 1 and 4
    assert_eq!(
        h.negative_spans,
        vec![Span {
            offset: 0,
            length: 1
        }]
    );
    assert_eq!(h.negative_buckets, vec![1]);
}

#[test]
fn summaries() {
    let tr = Translator::default();
    let out = run(
        &tr,
        request(
            vec![],
            vec![metric(
                "rpc.latency",
                "s",
                m::metric::Data::Summary(m::Summary {
                    data_points: vec![m::SummaryDataPoint {
                        attributes: vec![],
                        start_time_unix_nano: 0,
                        time_unix_nano: T0,
                        count: 10,
                        sum: 4.5,
                        quantile_values: vec![
                            m::summary_data_point::ValueAtQuantile {
                                quantile: 0.5,
                                value: 0.3,
                            },
                            m::summary_data_point::ValueAtQuantile {
                                quantile: 0.99,
                                value: 1.2,
                            },
                        ],
                        flags: 0,
                    }],
                }),
            )],
        ),
    );
    assert_eq!(
        value_of(&out, r#"rpc_latency_seconds{quantile="0.5"}"#),
        0.3
    );
    assert_eq!(
        value_of(&out, r#"rpc_latency_seconds{quantile="0.99"}"#),
        1.2
    );
    assert_eq!(value_of(&out, "rpc_latency_seconds_sum"), 4.5);
    assert_eq!(value_of(&out, "rpc_latency_seconds_count"), 10.0);
}

#[test]
fn no_recorded_value_writes_stale_markers() {
    let tr = Translator::default();
    let mut p = num_point(vec![], 0, T0, 5.0);
    p.flags = 1;
    let mut h = hist_point(0, T0, vec![1, 1], vec![1.0], 2.0);
    h.flags = 1;
    let out = run(
        &tr,
        request(
            vec![],
            vec![
                metric(
                    "g",
                    "",
                    m::metric::Data::Gauge(m::Gauge {
                        data_points: vec![p],
                    }),
                ),
                metric(
                    "h",
                    "",
                    m::metric::Data::Histogram(m::Histogram {
                        data_points: vec![h],
                        aggregation_temporality: 2,
                    }),
                ),
            ],
        ),
    );
    let f = floats(&out);
    assert_eq!(f.len(), 5, "{f:#?}"); // g, h_sum, h_count, h_bucket{1}, h_bucket{+Inf}
    assert!(f.iter().all(|x| is_stale_nan(x.2)), "{f:#?}");
}

#[test]
fn unspecified_temporality_and_label_limits_refuse_points() {
    let tr = Translator::default();
    let out = run(
        &tr,
        request(
            vec![],
            vec![metric(
                "s",
                "",
                sum(
                    vec![num_point(vec![], 0, T0, 1.0)],
                    m::AggregationTemporality::Unspecified,
                    true,
                ),
            )],
        ),
    );
    assert_eq!(out.rejected_points, 1);
    assert!(out.first_error.unwrap().contains("temporality"));

    let limits = DecodeLimits {
        max_labels_per_series: 3,
        max_label_name_len: 0,
        max_label_value_len: 0,
    };
    let out = tr.translate(
        request(
            vec![],
            vec![metric(
                "g",
                "",
                m::metric::Data::Gauge(m::Gauge {
                    data_points: vec![
                        num_point(vec![kv("a", "1"), kv("b", "1"), kv("c", "1")], 0, T0, 1.0),
                        num_point(vec![kv("a", "1")], 0, T0, 1.0),
                    ],
                }),
            )],
        ),
        &limits,
        0,
        None,
    );
    assert_eq!(out.rejected_points, 1);
    assert!(out.first_error.as_deref().unwrap().contains("limit of 3"));
    assert_eq!(floats(&out).len(), 1);
}

#[test]
fn protobuf_json_and_gzip_decode_the_same_request() {
    let req = request(
        svc(),
        vec![metric(
            "c",
            "",
            sum(
                vec![num_point(vec![kv("k", "v")], T0, T0 + SEC, 3.0)],
                m::AggregationTemporality::Cumulative,
                true,
            ),
        )],
    );
    let pb = req.encode_to_vec();
    assert_eq!(
        decode_body(&pb, Encoding::Protobuf, None, 1 << 20).unwrap(),
        req
    );

    let json = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[
            {{"key":"service.name","value":{{"stringValue":"checkout"}}}},
            {{"key":"service.namespace","value":{{"stringValue":"shop"}}}},
            {{"key":"service.instance.id","value":{{"stringValue":"pod-1"}}}},
            {{"key":"host.name","value":{{"stringValue":"node-a"}}}}]}},
          "scopeMetrics":[{{"scope":{{"name":"test.scope","version":"1.0"}},"metrics":[
            {{"name":"c","description":"c help","unit":"","sum":{{"aggregationTemporality":2,"isMonotonic":true,
              "dataPoints":[{{"attributes":[{{"key":"k","value":{{"stringValue":"v"}}}}],
                "startTimeUnixNano":"{T0}","timeUnixNano":"{}","asDouble":3}}]}}}}]}}]}}]}}"#,
        T0 + SEC
    );
    assert_eq!(
        decode_body(json.as_bytes(), Encoding::Json, None, 1 << 20).unwrap(),
        req
    );

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &pb).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(
        decode_body(&gz, Encoding::Protobuf, Some("gzip"), 1 << 20).unwrap(),
        req
    );
    // The decompressed-size limit is enforced while inflating.
    let e = decode_body(&gz, Encoding::Protobuf, Some("gzip"), pb.len() - 1).unwrap_err();
    assert!(matches!(e, OtlpError::TooLarge { .. }), "{e}");
    assert!(matches!(
        decode_body(&pb, Encoding::Protobuf, Some("br"), 1 << 20),
        Err(OtlpError::UnsupportedEncoding(_))
    ));
    assert!(matches!(
        decode_body(
            b"\x1f\x8b garbage",
            Encoding::Protobuf,
            Some("gzip"),
            1 << 20
        ),
        Err(OtlpError::Gzip(_))
    ));
}

#[test]
fn content_types() {
    assert_eq!(
        parse_content_type(Some("application/x-protobuf")),
        Ok(Encoding::Protobuf)
    );
    assert_eq!(
        parse_content_type(Some("application/json; charset=utf-8")),
        Ok(Encoding::Json)
    );
    assert!(parse_content_type(Some("text/plain"))
        .unwrap_err()
        .contains("text/plain"));
    assert!(parse_content_type(None).is_err());
}

#[test]
fn responses() {
    use super::proto::collector::metrics::v1::ExportMetricsServiceResponse;
    let ok = encode_response(Encoding::Protobuf, 0, "");
    assert!(ok.is_empty());
    let partial =
        ExportMetricsServiceResponse::decode(&*encode_response(Encoding::Protobuf, 3, "bad"))
            .unwrap();
    let p = partial.partial_success.unwrap();
    assert_eq!(
        (p.rejected_data_points, p.error_message.as_str()),
        (3, "bad")
    );
    assert_eq!(encode_response(Encoding::Json, 0, ""), b"{}");
    let j: serde_json::Value =
        serde_json::from_slice(&encode_response(Encoding::Json, 2, "x")).unwrap();
    assert_eq!(j["partialSuccess"]["rejectedDataPoints"], "2");
    let st = Status::decode(&*encode_status(
        Encoding::Protobuf,
        CODE_INVALID_ARGUMENT,
        "nope",
    ))
    .unwrap();
    assert_eq!((st.code, st.message.as_str()), (3, "nope"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes are an error or a request, never a panic, in every decoder.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let tr = Translator::default();
        for enc in [Encoding::Protobuf, Encoding::Json] {
            for ce in [None, Some("gzip")] {
                if let Ok(req) = decode_body(&data, enc, ce, 1 << 16) {
                    let _ = tr.translate(req, &DecodeLimits::default(), 0, None);
                }
            }
        }
    }

    /// Mutating a valid protobuf request never panics decoding or translation.
    #[test]
    fn mutated_requests_never_panic(
        idx in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..8),
        scale in -30i32..30,
        offset in any::<i32>(),
    ) {
        let mut p = exp_point(scale, 1, (offset, vec![1, 0, 0, 0, 5, u64::MAX]), (offset, vec![2]), T0);
        p.zero_threshold = f64::NAN;
        let req = exp_req(vec![p], m::AggregationTemporality::Delta);
        let mut pb = req.encode_to_vec();
        let tr = Translator::default();
        let _ = tr.translate(req, &DecodeLimits::default(), 0, None);
        for (i, b) in idx {
            let n = pb.len();
            pb[i.index(n)] = b;
        }
        if let Ok(req) = decode(&pb, Encoding::Protobuf) {
            let _ = tr.translate(req, &DecodeLimits::default(), 0, None);
        }
    }

    /// Arbitrary JSON structure built from OTLP keys never panics decoding.
    #[test]
    fn json_shapes_never_panic(s in r#"\{"resourceMetrics":\[\{"scopeMetrics":\[\{"metrics":\[\{"name":"[a-z.]{0,5}","(gauge|sum|histogram|exponentialHistogram|summary)":\{"dataPoints":\[\{("(asInt|asDouble|count|scale|timeUnixNano|bucketCounts|explicitBounds|flags)":("-?[0-9]{0,22}"|-?[0-9]{0,22}|\[[0-9,]{0,10}\]|null|"NaN"),?){0,4}\}\]\}\}\]\}\]\}\]\}"#) {
        let tr = Translator::default();
        if let Ok(req) = decode(s.as_bytes(), Encoding::Json) {
            let _ = tr.translate(req, &DecodeLimits::default(), 0, None);
        }
    }
}

#[test]
fn histogram_without_bucket_counts_has_only_the_inf_bucket() {
    let tr = Translator::default();
    let mut p = hist_point(0, T0, vec![], vec![1.0, 2.0], 3.0);
    p.count = 4;
    let out = run(
        &tr,
        request(
            vec![],
            vec![metric(
                "h",
                "",
                m::metric::Data::Histogram(m::Histogram {
                    data_points: vec![p],
                    aggregation_temporality: 2,
                }),
            )],
        ),
    );
    let names: Vec<String> = floats(&out).into_iter().map(|x| x.0).collect();
    assert_eq!(names, vec![r#"h_bucket{le="+Inf"}"#, "h_count", "h_sum"]);
    assert_eq!(value_of(&out, r#"h_bucket{le="+Inf"}"#), 4.0);
}

// ---- GenAI semantic conventions: every variant lands on the same normalised series ----

fn genai_hist(name: &str, unit: &str, attrs: Vec<KeyValue>, sum: f64) -> m::Metric {
    let mut p = hist_point(T0, T0 + SEC, vec![1, 0], vec![100.0], sum);
    p.attributes = attrs;
    metric(
        name,
        unit,
        m::metric::Data::Histogram(m::Histogram {
            data_points: vec![p],
            aggregation_temporality: m::AggregationTemporality::Cumulative as i32,
        }),
    )
}

fn genai_counter(
    name: &str,
    attrs: Vec<KeyValue>,
    v: f64,
    t: m::AggregationTemporality,
) -> m::Metric {
    metric(
        name,
        "{token}",
        sum(vec![num_point(attrs, T0, T0 + SEC, v)], t, true),
    )
}

const GENAI_TOKENS: &str = r#"gen_ai_client_token_usage_sum{gen_ai_operation_name="chat", gen_ai_provider_name="openai", gen_ai_request_model="gpt-4o", gen_ai_response_model="gpt-4o-2024-08-06", gen_ai_token_type="input", job="agent"}"#;

#[test]
fn genai_token_usage_histogram_current_conventions() {
    let tr = Translator::default();
    let attrs = vec![
        kv("gen_ai.operation.name", "chat"),
        kv("gen_ai.provider.name", "openai"),
        kv("gen_ai.request.model", "gpt-4o"),
        kv("gen_ai.response.model", "gpt-4o-2024-08-06"),
        kv("gen_ai.token.type", "input"),
    ];
    let out = run(
        &tr,
        request(
            vec![kv("service.name", "agent")],
            vec![genai_hist(
                "gen_ai.client.token.usage",
                "{token}",
                attrs,
                42.0,
            )],
        ),
    );
    assert_eq!(out.rejected_points, 0, "{:?}", out.first_error);
    assert_eq!(value_of(&out, GENAI_TOKENS), 42.0);
}

#[test]
fn genai_token_usage_histogram_older_system_and_prompt() {
    let tr = Translator::default();
    // semconv ≤ 1.36: gen_ai.system and (in early instrumentations) prompt/completion.
    let attrs = vec![
        kv("gen_ai.operation.name", "chat"),
        kv("gen_ai.system", "OpenAI"),
        kv("gen_ai.request.model", "gpt-4o"),
        kv("gen_ai.response.model", "gpt-4o-2024-08-06"),
        kv("gen_ai.token.type", "prompt"),
    ];
    let out = run(
        &tr,
        request(
            vec![kv("service.name", "agent")],
            vec![genai_hist(
                "gen_ai.client.token.usage",
                "{token}",
                attrs,
                42.0,
            )],
        ),
    );
    assert_eq!(out.rejected_points, 0, "{:?}", out.first_error);
    assert_eq!(value_of(&out, GENAI_TOKENS), 42.0);
}

#[test]
fn genai_token_usage_counter_forms() {
    // The same name as a counter, the newer inference.usage counters (delta, as many SDKs
    // export them) and OpenLLMetry's llm.<vendor>.<op>.tokens all become the `_sum` series.
    let tr = Translator::default();
    let base = || {
        vec![
            kv("gen_ai.operation.name", "chat"),
            kv("gen_ai.provider.name", "openai"),
            kv("gen_ai.request.model", "gpt-4o"),
            kv("gen_ai.response.model", "gpt-4o-2024-08-06"),
        ]
    };
    let mut a = base();
    a.push(kv("gen_ai.token.type", "input"));
    let out = run(
        &tr,
        request(
            vec![kv("service.name", "agent")],
            vec![genai_counter(
                "gen_ai.client.token.usage",
                a,
                42.0,
                m::AggregationTemporality::Cumulative,
            )],
        ),
    );
    assert_eq!(value_of(&out, GENAI_TOKENS), 42.0);
    assert_eq!(
        out.batch.metadata[0].metric_family,
        "gen_ai_client_token_usage_sum"
    );

    let tr = Translator::default();
    let out = run(
        &tr,
        request(
            vec![kv("service.name", "agent")],
            vec![
                genai_counter(
                    "gen_ai.client.inference.usage.input_tokens",
                    base(),
                    42.0,
                    m::AggregationTemporality::Delta,
                ),
                genai_counter(
                    "gen_ai.client.inference.usage.cache_read.input_tokens",
                    base(),
                    5.0,
                    m::AggregationTemporality::Delta,
                ),
            ],
        ),
    );
    assert_eq!(out.rejected_points, 0, "{:?}", out.first_error);
    assert_eq!(value_of(&out, GENAI_TOKENS), 42.0);
    assert_eq!(
        value_of(&out, &GENAI_TOKENS.replace("\"input\"", "\"cache_read\"")),
        5.0
    );

    let tr = Translator::default();
    let out = run(
        &tr,
        request(
            vec![kv("service.name", "agent")],
            vec![genai_counter(
                "llm.openai.chat_completions.tokens",
                vec![
                    kv("gen_ai.system", "openai"),
                    kv("llm.request.model", "gpt-4o"),
                    kv("llm.response.model", "gpt-4o-2024-08-06"),
                    kv("llm.usage.token_type", "prompt"),
                ],
                42.0,
                m::AggregationTemporality::Cumulative,
            )],
        ),
    );
    assert_eq!(out.rejected_points, 0, "{:?}", out.first_error);
    assert_eq!(value_of(&out, GENAI_TOKENS), 42.0);
}

#[test]
fn genai_durations_agents_and_tools() {
    let tr = Translator::default();
    let out = run(
        &tr,
        request(
            vec![kv("service.name", "agent")],
            vec![
                // Newer per-kind agent metric → the operation duration with invoke_agent.
                genai_hist(
                    "gen_ai.invoke_agent.duration",
                    "s",
                    vec![
                        kv("gen_ai.agent.name", "planner"),
                        kv("gen_ai.provider.name", "anthropic"),
                    ],
                    3.0,
                ),
                genai_hist(
                    "gen_ai.client.operation.duration",
                    "s",
                    vec![
                        kv("gen_ai.operation.name", "execute_tool"),
                        kv("gen_ai.tool.name", "search"),
                        kv("error.type", "429"),
                    ],
                    0.5,
                ),
                // OpenLLMetry without a unit; TTFT onto the conventions' time_to_first_chunk.
                genai_hist(
                    "llm.openai.chat_completions.streaming_time_to_first_token",
                    "",
                    vec![kv("llm.response.model", "gpt-4o-mini")],
                    0.25,
                ),
                genai_hist("gen_ai.server.time_to_first_token", "", vec![], 0.125),
            ],
        ),
    );
    assert_eq!(out.rejected_points, 0, "{:?}", out.first_error);
    assert_eq!(
        value_of(
            &out,
            r#"gen_ai_client_operation_duration_seconds_sum{gen_ai_agent_name="planner", gen_ai_operation_name="invoke_agent", gen_ai_provider_name="anthropic", job="agent"}"#
        ),
        3.0
    );
    assert_eq!(
        value_of(
            &out,
            r#"gen_ai_client_operation_duration_seconds_sum{error_type="429", gen_ai_operation_name="execute_tool", gen_ai_tool_name="search", job="agent"}"#
        ),
        0.5
    );
    assert_eq!(
        value_of(
            &out,
            r#"gen_ai_client_operation_time_to_first_chunk_seconds_sum{gen_ai_operation_name="chat", gen_ai_provider_name="openai", gen_ai_response_model="gpt-4o-mini", job="agent"}"#
        ),
        0.25
    );
    assert_eq!(
        value_of(
            &out,
            r#"gen_ai_server_time_to_first_token_seconds_sum{job="agent"}"#
        ),
        0.125
    );
}

#[test]
fn genai_provider_and_token_type_spellings() {
    use super::genai::{provider_value, token_type_value};
    assert_eq!(provider_value("az.ai.openai"), "azure.ai.openai");
    assert_eq!(provider_value("Anthropic"), "anthropic");
    assert_eq!(provider_value("xai"), "x_ai");
    assert_eq!(provider_value("aws.bedrock"), "aws.bedrock");
    assert_eq!(token_type_value("completion"), "output");
    assert_eq!(token_type_value("Prompt"), "input");
    assert_eq!(token_type_value("cache_creation"), "cache_write");
    assert_eq!(token_type_value("output"), "output");
}

#[test]
fn non_genai_metrics_are_untouched() {
    let tr = Translator::default();
    let out = run(
        &tr,
        request(
            vec![kv("service.name", "agent")],
            vec![genai_counter(
                "app.tokens",
                vec![kv("gen_ai.system", "OpenAI")],
                1.0,
                m::AggregationTemporality::Cumulative,
            )],
        ),
    );
    assert_eq!(
        value_of(
            &out,
            r#"app_tokens_total{gen_ai_system="OpenAI", job="agent"}"#
        ),
        1.0
    );
}

#[test]
fn genai_openllmetry_durations_and_server_request_duration() {
    let tr = Translator::default();
    let out = run(
        &tr,
        request(
            vec![kv("service.name", "agent")],
            vec![
                // OpenLLMetry before the conventions: vendor and operation in the name,
                // llm.request.type and llm.request.model as attributes.
                genai_hist(
                    "llm.anthropic.completion.duration",
                    "s",
                    vec![
                        kv("llm.request.model", "claude-3-5-haiku"),
                        kv("llm.request.type", "completion"),
                    ],
                    1.5,
                ),
                genai_hist(
                    "gen_ai.server.request.duration",
                    "s",
                    vec![kv("gen_ai.system", "az.ai.inference")],
                    2.5,
                ),
            ],
        ),
    );
    assert_eq!(out.rejected_points, 0, "{:?}", out.first_error);
    assert_eq!(
        value_of(
            &out,
            r#"gen_ai_client_operation_duration_seconds_sum{gen_ai_operation_name="text_completion", gen_ai_provider_name="anthropic", gen_ai_request_model="claude-3-5-haiku", job="agent"}"#
        ),
        1.5
    );
    assert_eq!(
        value_of(
            &out,
            r#"gen_ai_server_request_duration_seconds_sum{gen_ai_provider_name="azure.ai.inference", job="agent"}"#
        ),
        2.5
    );
}
