use super::*;
use proptest::prelude::*;

const NODE_EXPORTER: &str = r#"# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.1e-05
go_gc_duration_seconds{quantile="1"} 0.000291
go_gc_duration_seconds_sum 0.0123
go_gc_duration_seconds_count 42
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 12345.67
node_cpu_seconds_total{cpu="0",mode="user",} 89.1 1700000000000
# HELP node_filesystem_avail_bytes Filesystem space available.\nSecond line with a \\ backslash.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="C:\\data \"quoted\"\nnext"} 1.5e+10
# A free-form comment that is ignored.
# HELP http_request_duration_seconds Request latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1"} 10
http_request_duration_seconds_bucket{le="+Inf"} 12
http_request_duration_seconds_sum	3.5	-1000
http_request_duration_seconds_count 12
weird_values{kind="nan"} NaN
weird_values{kind="pinf"} +Inf
weird_values{kind="ninf"} -Inf
	indented_metric 7   
node_empty_label{empty=""} 1
{"my.utf8.metric", "label.with.dots"="ü", plain="x"} 3
# TYPE "my.utf8.metric" gauge
# UNIT http_request_duration_seconds seconds
# EOF
"#;

#[test]
fn parses_node_exporter_like_exposition() {
    let b = parse_text(NODE_EXPORTER, 5555).unwrap();
    let got: Vec<(String, i64, f64)> = b
        .samples
        .iter()
        .map(|(l, s)| (l.to_string(), s.t, s.v))
        .collect();
    let d = 5555;
    let expect: Vec<(&str, i64, f64)> = vec![
        (r#"go_gc_duration_seconds{quantile="0"}"#, d, 2.1e-05),
        (r#"go_gc_duration_seconds{quantile="1"}"#, d, 0.000291),
        ("go_gc_duration_seconds_sum", d, 0.0123),
        ("go_gc_duration_seconds_count", d, 42.0),
        (
            r#"node_cpu_seconds_total{cpu="0", mode="idle"}"#,
            d,
            12345.67,
        ),
        (
            r#"node_cpu_seconds_total{cpu="0", mode="user"}"#,
            1700000000000,
            89.1,
        ),
        (
            r#"node_filesystem_avail_bytes{device="/dev/sda1", fstype="ext4", mountpoint="C:\\data \"quoted\"\nnext"}"#,
            d,
            1.5e10,
        ),
        (r#"http_request_duration_seconds_bucket{le="0.1"}"#, d, 10.0),
        (
            r#"http_request_duration_seconds_bucket{le="+Inf"}"#,
            d,
            12.0,
        ),
        ("http_request_duration_seconds_sum", -1000, 3.5),
        ("http_request_duration_seconds_count", d, 12.0),
        (r#"weird_values{kind="nan"}"#, d, f64::NAN),
        (r#"weird_values{kind="pinf"}"#, d, f64::INFINITY),
        (r#"weird_values{kind="ninf"}"#, d, f64::NEG_INFINITY),
        ("indented_metric", d, 7.0),
        ("node_empty_label", d, 1.0),
        (r#"my.utf8.metric{label.with.dots="ü", plain="x"}"#, d, 3.0),
    ];
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for ((gl, gt, gv), (el, et, ev)) in got.iter().zip(&expect) {
        assert_eq!(gl, el);
        assert_eq!(gt, et, "{gl}");
        assert!(
            gv.to_bits() == ev.to_bits() || gv == ev,
            "{gl}: {gv} vs {ev}"
        );
    }
    // The escaped label value is unescaped.
    assert_eq!(
        b.samples[6].0.get("mountpoint"),
        Some("C:\\data \"quoted\"\nnext")
    );

    let meta: Vec<(&str, MetricType, &str, &str)> = b
        .metadata
        .iter()
        .map(|m| {
            (
                m.metric_family.as_str(),
                m.kind,
                m.help.as_str(),
                m.unit.as_str(),
            )
        })
        .collect();
    assert_eq!(
        meta,
        vec![
            (
                "go_gc_duration_seconds",
                MetricType::Summary,
                "A summary of the pause duration of garbage collection cycles.",
                ""
            ),
            (
                "node_cpu_seconds_total",
                MetricType::Counter,
                "Seconds the CPUs spent in each mode.",
                ""
            ),
            (
                "node_filesystem_avail_bytes",
                MetricType::Gauge,
                "Filesystem space available.\nSecond line with a \\ backslash.",
                ""
            ),
            (
                "http_request_duration_seconds",
                MetricType::Histogram,
                "Request latency.",
                "seconds"
            ),
            ("my.utf8.metric", MetricType::Gauge, "", ""),
        ]
    );
}

#[test]
fn into_write_batch_groups_by_series() {
    let input = "a 1 10\nb 2 10\na 3 20\n# TYPE a counter\n";
    let wb = parse_text(input, 0).unwrap().into_write_batch();
    assert_eq!(wb.series.len(), 2);
    assert_eq!(wb.series[0].labels.metric_name(), Some("a"));
    assert_eq!(
        wb.series[0].samples,
        vec![Sample::new(10, 1.0), Sample::new(20, 3.0)]
    );
    assert_eq!(wb.series[1].samples, vec![Sample::new(10, 2.0)]);
    assert_eq!(wb.metadata.len(), 1);
    assert!(wb.rejected.is_empty());
}

#[test]
fn empty_input_and_comments_only() {
    assert_eq!(parse_text("", 0).unwrap(), TextBatch::default());
    assert_eq!(
        parse_text("\n\n# hello\n#\n", 0).unwrap(),
        TextBatch::default()
    );
    assert_eq!(parse_text("a 1\r\nb 2\r\n", 0).unwrap().samples.len(), 2);
    assert_eq!(parse_text("a 1\n# EOF \n\n", 0).unwrap().samples.len(), 1);
}

#[test]
fn malformed_lines_report_line_and_expectation() {
    let cases: &[(&str, usize, &str)] = &[
        ("ok 1\nbad{a=\"1\" 2\n", 2, "expected ',' or '}'"),
        ("ok 1\n\nmetric\n", 3, "expected a value"),
        ("m{a=1} 2\n", 1, "expected a quoted value"),
        ("m{a=\"1} 2\n", 1, "unterminated quoted string"),
        ("m{a} 2\n", 1, "expected '=' after label name \"a\""),
        ("m{-a=\"x\"} 2\n", 1, "expected a label name"),
        ("m abc\n", 1, "invalid sample value \"abc\""),
        ("m 1 1.5\n", 1, "invalid timestamp \"1.5\""),
        ("m 1 2 3\n", 1, "after the timestamp"),
        ("m{a=\"1\",a=\"2\"} 1\n", 1, "duplicate label name \"a\""),
        (
            "m{__name__=\"x\"} 1\n",
            1,
            "duplicate label name \"__name__\"",
        ),
        ("{a=\"b\"} 1\n", 1, "missing metric name"),
        ("m{} \n", 1, "expected a sample value"),
        ("1m 2\n", 1, "expected a metric name"),
        ("m-x 2\n", 1, "invalid character '-' in metric name"),
        (
            "\"m\" 2\n",
            1,
            "quoted metric name must be inside the braces",
        ),
        ("# TYPE m nonsense\n", 1, "unknown metric type \"nonsense\""),
        ("# TYPE m\n", 1, "expected a metric type"),
        ("# HELP\n", 1, "expected a metric name after \"# HELP\""),
        ("# HELP \"unterminated\n", 1, "unterminated quoted string"),
        ("a 1\n# EOF\nb 2\n", 3, "after \"# EOF\" on line 2"),
        ("m{\"x\"=\"1\"} 1\nm{\"\"=\"1\"} 1\n", 2, "empty label name"),
        ("{\"\"} 1\n", 1, "empty metric name"),
        ("m{\"other\"} 1\n", 1, "metric name given twice"),
        ("m 1\nm{a=\"1\"\n", 2, "unterminated label set"),
        ("m infinit\n", 1, "invalid sample value"),
    ];
    for (input, line, msg) in cases {
        match parse_text(input, 0) {
            Ok(b) => panic!("{input:?} parsed: {b:?}"),
            Err(e) => {
                assert_eq!(e.line, *line, "{input:?}: {e}");
                assert!(e.msg.contains(msg), "{input:?}: {e} should mention {msg:?}");
                assert_eq!(e.to_string(), format!("line {}: {}", e.line, e.msg));
            }
        }
    }
}

#[test]
fn accepted_spellings() {
    let b = parse_text(
        "m{a=\"x\\ty\"} 1e3\nm2 { a = \"1\" , } -2.5E-1 -7\nm3 inf\nm4 nan\nm5 +1\n",
        9,
    )
    .unwrap();
    // Unknown escapes stay as written.
    assert_eq!(b.samples[0].0.get("a"), Some("x\\ty"));
    assert_eq!(b.samples[0].1, Sample::new(9, 1000.0));
    assert_eq!(b.samples[1].1, Sample::new(-7, -0.25));
    assert_eq!(b.samples[2].1.v, f64::INFINITY);
    assert!(b.samples[3].1.v.is_nan());
    assert_eq!(b.samples[4].1.v, 1.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = parse_text(&s, 0);
    }

    #[test]
    fn exposition_alphabet_never_panics(s in "[a-z_{}=\",#\\\\ \\t\\n0-9.+\\-éü\"]{0,120}") {
        let _ = parse_text(&s, 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let s = String::from_utf8_lossy(&data);
        let _ = parse_text(&s, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Rendering samples in the text format (escaping label values) and parsing them back gives
    /// the same names, labels, values and millisecond timestamps.
    #[test]
    fn render_parse_round_trip(
        series in proptest::collection::btree_map(
            "[a-zA-Z_:][a-zA-Z0-9_:]{0,8}",
            (
                proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,5}", "\\PC{1,10}", 0..4),
                any::<f64>(),
                any::<i64>(),
            ),
            1..6,
        )
    ) {
        let mut text = String::new();
        for (name, (labels, v, t)) in &series {
            text.push_str(name);
            let parts: Vec<String> = labels
                .iter()
                .map(|(n, val)| {
                    let esc = val.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                    format!("{n}=\"{esc}\"")
                })
                .collect();
            text.push_str(&format!("{{{}}} {v:?} {t}\n", parts.join(",")));
        }
        let b = parse_text(&text, 0).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(b.samples.len(), series.len());
        for ((labels, s), (name, (l, v, t))) in b.samples.iter().zip(&series) {
            prop_assert_eq!(labels.metric_name(), Some(name.as_str()));
            for (ln, lv) in l {
                prop_assert_eq!(labels.get(ln), Some(lv.as_str()));
            }
            prop_assert!(s.v.to_bits() == v.to_bits() || (s.v.is_nan() && v.is_nan()));
            prop_assert_eq!(s.t, *t);
        }
    }
}
