use super::*;
use crate::text::{parse_exposition, parse_text, ExpositionFormat, SCRAPE_ACCEPT_HEADER};
use proptest::prelude::*;

fn samples(b: &TextBatch) -> Vec<(String, i64, f64)> {
    b.samples
        .iter()
        .map(|(l, s)| (l.to_string(), s.t, s.v))
        .collect()
}

/// The example exposition of the OpenMetrics 1.0 specification (OpenMetrics.md, "Overall
/// structure"), with its counter, gauge, histogram, summary, info and stateset families.
const SPEC_EXAMPLE: &str = r#"# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32
acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0
acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0
acme_http_router_request_seconds_sum{path="/api/v2",method="POST"} 479.3
acme_http_router_request_seconds_count{path="/api/v2",method="POST"} 34.0
acme_http_router_request_seconds_created{path="/api/v2",method="POST"} 1605281325.0
# TYPE go_goroutines gauge
# HELP go_goroutines Number of goroutines that currently exist.
go_goroutines 69
# TYPE process_cpu_seconds counter
# UNIT process_cpu_seconds seconds
# HELP process_cpu_seconds Total user and system CPU time spent in seconds.
process_cpu_seconds_total 4.20072246e+06
# TYPE acme_build info
acme_build_info{version="1.2.3",revision="abc"} 1
# TYPE feature stateset
feature{feature="a"} 1
feature{feature="b"} 0
# TYPE foo histogram
foo_bucket{le="0.0"} 0
foo_bucket{le="1e-05"} 0
foo_bucket{le="0.1"} 8 # {id="abc"} 0.054
foo_bucket{le="+Inf"} 17 # {trace_id="KOO5S4vxi0o"} 0.67 1600000000.123
foo_count 17
foo_sum 324789.3
foo_created 1520430000.123
# TYPE queue gaugehistogram
queue_bucket{le="1"} 2
queue_bucket{le="+Inf"} 3
queue_gcount 3
queue_gsum 4.5
# TYPE mystery unknown
mystery 7 1620000000.5
# EOF
"#;

#[test]
fn parses_the_spec_example() {
    let b = parse_openmetrics(SPEC_EXAMPLE, 42).unwrap();
    let got = samples(&b);
    let d = 42;
    let expect: Vec<(&str, i64, f64)> = vec![
        (
            r#"acme_http_router_request_seconds_sum{method="GET", path="/api/v1"}"#,
            d,
            9036.32,
        ),
        (
            r#"acme_http_router_request_seconds_count{method="GET", path="/api/v1"}"#,
            d,
            807283.0,
        ),
        (
            r#"acme_http_router_request_seconds_created{method="GET", path="/api/v1"}"#,
            d,
            1605281325.0,
        ),
        (
            r#"acme_http_router_request_seconds_sum{method="POST", path="/api/v2"}"#,
            d,
            479.3,
        ),
        (
            r#"acme_http_router_request_seconds_count{method="POST", path="/api/v2"}"#,
            d,
            34.0,
        ),
        (
            r#"acme_http_router_request_seconds_created{method="POST", path="/api/v2"}"#,
            d,
            1605281325.0,
        ),
        ("go_goroutines", d, 69.0),
        ("process_cpu_seconds_total", d, 4.20072246e+06),
        (
            r#"acme_build_info{revision="abc", version="1.2.3"}"#,
            d,
            1.0,
        ),
        (r#"feature{feature="a"}"#, d, 1.0),
        (r#"feature{feature="b"}"#, d, 0.0),
        (r#"foo_bucket{le="0.0"}"#, d, 0.0),
        (r#"foo_bucket{le="1e-05"}"#, d, 0.0),
        (r#"foo_bucket{le="0.1"}"#, d, 8.0),
        (r#"foo_bucket{le="+Inf"}"#, d, 17.0),
        ("foo_count", d, 17.0),
        ("foo_sum", d, 324789.3),
        ("foo_created", d, 1520430000.123),
        (r#"queue_bucket{le="1"}"#, d, 2.0),
        (r#"queue_bucket{le="+Inf"}"#, d, 3.0),
        ("queue_gcount", d, 3.0),
        ("queue_gsum", d, 4.5),
        // Seconds become milliseconds.
        ("mystery", 1620000000500, 7.0),
    ];
    let expect: Vec<(String, i64, f64)> = expect
        .into_iter()
        .map(|(l, t, v)| (l.to_string(), t, v))
        .collect();
    assert_eq!(got, expect);

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
                "acme_http_router_request_seconds",
                MetricType::Summary,
                "Latency though all of ACME's HTTP request router.",
                "seconds"
            ),
            (
                "go_goroutines",
                MetricType::Gauge,
                "Number of goroutines that currently exist.",
                ""
            ),
            (
                "process_cpu_seconds",
                MetricType::Counter,
                "Total user and system CPU time spent in seconds.",
                "seconds"
            ),
            ("acme_build", MetricType::Info, "", ""),
            ("feature", MetricType::StateSet, "", ""),
            ("foo", MetricType::Histogram, "", ""),
            ("queue", MetricType::GaugeHistogram, "", ""),
            ("mystery", MetricType::Unknown, "", ""),
        ]
    );

    // Exemplars, attached to the right samples, with ms timestamps when given.
    assert_eq!(b.exemplars.len(), 2);
    assert_eq!(b.exemplars[0].sample, 13);
    assert_eq!(b.exemplars[0].labels.to_string(), r#"{id="abc"}"#);
    assert_eq!(b.exemplars[0].value, 0.054);
    assert_eq!(b.exemplars[0].timestamp, None);
    assert_eq!(b.exemplars[1].sample, 14);
    assert_eq!(b.exemplars[1].labels.get("trace_id"), Some("KOO5S4vxi0o"));
    assert_eq!(b.exemplars[1].value, 0.67);
    assert_eq!(b.exemplars[1].timestamp, Some(1600000000123));

    // _created samples stay samples and are also reported as start times.
    let created: Vec<(&str, String, i64)> = b
        .created
        .iter()
        .map(|c| (c.family.as_str(), c.labels.to_string(), c.created_ms))
        .collect();
    assert_eq!(
        created,
        vec![
            (
                "acme_http_router_request_seconds",
                r#"{method="GET", path="/api/v1"}"#.to_string(),
                1605281325000
            ),
            (
                "acme_http_router_request_seconds",
                r#"{method="POST", path="/api/v2"}"#.to_string(),
                1605281325000
            ),
            ("foo", "{}".to_string(), 1520430000123),
        ]
    );

    // Exemplars go with their sample's series; one without a timestamp takes the sample's.
    let wb = b.into_write_batch();
    let ex: usize = wb.series.iter().map(|s| s.exemplars.len()).sum();
    assert_eq!(ex, 2);
    let inf = wb
        .series
        .iter()
        .find(|s| {
            s.labels.get("le") == Some("+Inf") && s.labels.metric_name() == Some("foo_bucket")
        })
        .unwrap();
    assert_eq!(inf.exemplars.len(), 1);
    assert_eq!(inf.exemplars[0].ts, 1600000000123);
    assert_eq!(inf.exemplars[0].value, 0.67);
    let first = wb
        .series
        .iter()
        .find(|s| {
            s.exemplars
                .iter()
                .any(|e| e.labels.get("id") == Some("abc"))
        })
        .unwrap();
    assert_eq!(first.exemplars[0].ts, first.samples[0].t);
}

#[test]
fn spec_counter_with_created_and_exemplar() {
    let input = "# TYPE foo counter\n# HELP foo A counter.\nfoo_total 17.0 1520879607.789 # {id=\"counter-test\"} 5\nfoo_created 1520872607.123 1520879607.789\n# EOF";
    let b = parse_openmetrics(input, 0).unwrap();
    assert_eq!(
        samples(&b),
        vec![
            ("foo_total".to_string(), 1520879607789, 17.0),
            ("foo_created".to_string(), 1520879607789, 1520872607.123),
        ]
    );
    assert_eq!(b.exemplars[0].timestamp, None);
    assert_eq!(b.exemplars[0].value, 5.0);
    assert_eq!(b.created[0].created_ms, 1520872607123);
    assert_eq!(b.metadata[0].help, "A counter.");
}

#[test]
fn escapes_and_quoted_names() {
    let input = "# HELP m A \\\"quoted\\\" help\\nwith \\\\ backslash.\nm{a=\"x\\\\y\\\"z\\nw\",b=\"ü\",} 1\n{\"my.metric\",\"l.x\"=\"v\"} 2\n# EOF\n";
    let b = parse_openmetrics(input, 0).unwrap();
    assert_eq!(b.metadata[0].help, "A \"quoted\" help\nwith \\ backslash.");
    assert_eq!(b.samples[0].0.get("a"), Some("x\\y\"z\nw"));
    assert_eq!(b.samples[0].0.get("b"), Some("ü"));
    assert_eq!(b.samples[1].0.metric_name(), Some("my.metric"));
    assert_eq!(b.samples[1].0.get("l.x"), Some("v"));
}

#[test]
fn timestamps_are_seconds() {
    let b = parse_openmetrics("a 1 0\nb 1 -1.5\nc 1 1e3\nd 1 1620000000.0001\n# EOF\n", 0).unwrap();
    let ts: Vec<i64> = b.samples.iter().map(|s| s.1.t).collect();
    assert_eq!(ts, vec![0, -1500, 1_000_000, 1_620_000_000_000]);
}

#[test]
fn malformed_lines_report_line_and_expectation() {
    let cases: &[(&str, usize, &str)] = &[
        ("a 1\n", 2, "missing \"# EOF\""),
        ("a 1", 1, "missing \"# EOF\""),
        ("", 1, "missing \"# EOF\""),
        (
            "a 1\n# EOF\nb 2\n",
            3,
            "unexpected data after \"# EOF\" on line 2",
        ),
        ("a 1\n# EOF\n\n", 3, "unexpected data after \"# EOF\""),
        ("a 1\n\nb 1\n# EOF\n", 2, "empty line"),
        ("a 1\r\n# EOF\n", 1, "carriage return"),
        ("# a comment\n# EOF\n", 1, "invalid comment"),
        ("#TYPE a gauge\n# EOF\n", 1, "invalid comment"),
        (
            "# TYPE a untyped\n# EOF\n",
            1,
            "invalid metric type \"untyped\"",
        ),
        ("# TYPE a\n# EOF\n", 1, "expected a metric type"),
        (
            "# TYPE a gauge\n# TYPE a gauge\n# EOF\n",
            2,
            "second \"# TYPE\"",
        ),
        (
            "# TYPE a gauge\na 1\n# HELP a x\n# EOF\n",
            3,
            "after its samples",
        ),
        (
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# TYPE a gauge\n# EOF\n",
            5,
            "already appeared",
        ),
        ("a 1\nb 1\na 2\n# EOF\n", 3, "interleaved"),
        (
            "# TYPE c counter\nc_total 1\n# TYPE d gauge\nd 1\nc_total 2\n# EOF\n",
            5,
            "interleaved",
        ),
        (
            "# TYPE c counter\nc 1\n# EOF\n",
            2,
            "expected c_total, c_created",
        ),
        (
            "# TYPE c counter\nc_total -1\n# EOF\n",
            2,
            "must not be negative",
        ),
        (
            "# TYPE h histogram\nh_bucket 1\n# EOF\n",
            2,
            "needs an \"le\" label",
        ),
        (
            "# TYPE s summary\ns 1\n# EOF\n",
            2,
            "needs a \"quantile\" label",
        ),
        ("# TYPE i info\ni_info 2\n# EOF\n", 2, "value 1"),
        (
            "# TYPE s stateset\ns{s=\"a\"} 2\n# EOF\n",
            2,
            "value 0 or 1",
        ),
        (
            "# TYPE s stateset\ns{x=\"a\"} 1\n# EOF\n",
            2,
            "label named after the family",
        ),
        (
            "# TYPE m_seconds gauge\n# UNIT m_seconds bytes\n# EOF\n",
            2,
            "not a suffix",
        ),
        ("m  1\n# EOF\n", 1, "exactly one space"),
        ("m\t1\n# EOF\n", 1, "expected a space and a value"),
        ("m 1 \n# EOF\n", 1, "exactly one space"),
        ("m{a=\"1\" } 1\n# EOF\n", 1, "no blanks inside braces"),
        ("m{a=\"\\t\"} 1\n# EOF\n", 1, "invalid escape \"\\t\""),
        (
            "m{a=\"1\",a=\"2\"} 1\n# EOF\n",
            1,
            "duplicate label name \"a\"",
        ),
        ("m abc\n# EOF\n", 1, "invalid value \"abc\""),
        ("m 1 abc\n# EOF\n", 1, "invalid timestamp \"abc\""),
        ("m 1 NaN\n# EOF\n", 1, "finite number of seconds"),
        ("m 1 2 3\n# EOF\n", 1, "after the timestamp"),
        (
            "m 1 # {a=\"b\"} 1\n# EOF\n",
            1,
            "exemplars only on counter _total",
        ),
        (
            "# TYPE c counter\nc_total 1 # a\n# EOF\n",
            2,
            "expected '{'",
        ),
        (
            "# TYPE c counter\nc_total 1 # {a=\"b\"}\n# EOF\n",
            2,
            "exemplar's value",
        ),
        (
            "# TYPE c counter\nc_total 1 # {a=\"b\"} x\n# EOF\n",
            2,
            "invalid exemplar value",
        ),
        (
            "# TYPE c counter\nc_total 1 # {a=\"b\"} 1 x\n# EOF\n",
            2,
            "exemplar: invalid timestamp",
        ),
        (
            &format!(
                "# TYPE c counter\nc_total 1 # {{a=\"{}\"}} 1\n# EOF\n",
                "x".repeat(128)
            ),
            2,
            "at most 128",
        ),
        ("{a=\"b\"} 1\n# EOF\n", 1, "missing metric name"),
        ("m{\"x\"} 1\n# EOF\n", 1, "metric name given twice"),
        ("m{a=\"1\"\n# EOF\n", 1, "unterminated label set"),
        ("1m 1\n# EOF\n", 1, "expected a metric name"),
    ];
    for (input, line, msg) in cases {
        match parse_openmetrics(input, 0) {
            Ok(b) => panic!("{input:?} parsed: {b:?}"),
            Err(e) => {
                assert_eq!(e.line, *line, "{input:?}: {e}");
                assert!(e.msg.contains(msg), "{input:?}: {e} should mention {msg:?}");
            }
        }
    }
}

#[test]
fn exposition_picks_the_parser_from_content_type() {
    let om = b"m 1 1.5\n# EOF\n";
    // OpenMetrics: timestamps in seconds.
    for ct in [
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        "application/openmetrics-text;version=0.0.1",
        "Application/OpenMetrics-Text",
    ] {
        let b = parse_exposition(om, Some(ct), 0).unwrap();
        assert_eq!(b.samples[0].1.t, 1500, "{ct}");
    }
    // Text 0.0.4 for text/plain, a missing or an unknown type: the float timestamp is an error
    // there, an integer one is milliseconds.
    for ct in [
        Some("text/plain; version=0.0.4; charset=utf-8"),
        None,
        Some("application/json"),
        Some(";;"),
    ] {
        assert!(parse_exposition(om, ct, 0).is_err(), "{ct:?}");
        let b = parse_exposition(b"m 1 1500\n", ct, 0).unwrap();
        assert_eq!(b.samples[0].1.t, 1500);
    }
    assert!(parse_exposition(b"m 1\n", Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"), 0)
        .unwrap_err()
        .msg
        .contains("protobuf"));
    assert_eq!(
        crate::text::exposition_format(Some("application/openmetrics-text")).unwrap(),
        ExpositionFormat::OpenMetrics
    );
    // Non-UTF-8 names its line.
    let e = parse_exposition(b"a 1\nb{x=\"\xff\"} 1\n", None, 0).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.msg.contains("UTF-8"), "{e}");
    assert!(SCRAPE_ACCEPT_HEADER.starts_with("application/openmetrics-text;version=1.0.0"));
}

#[test]
fn parse_text_is_unchanged_for_its_callers() {
    let b = parse_text("a 1 10\n", 0).unwrap();
    assert!(b.exemplars.is_empty() && b.created.is_empty());
}

/// One rendered sample: name, labels, value, timestamp (ms).
type Row = (String, Vec<(String, String)>, f64, i64);

/// Renders a batch as OpenMetrics (one untyped family per metric name).
fn render(samples: &[Row]) -> String {
    let mut out = String::new();
    for (name, labels, v, t) in samples {
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            let parts: Vec<String> = labels
                .iter()
                .map(|(n, v)| {
                    let esc = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    format!("{n}=\"{esc}\"")
                })
                .collect();
            out.push_str(&parts.join(","));
            out.push('}');
        }
        out.push_str(&format!(
            " {v:?} {}.{:03}\n",
            t.div_euclid(1000),
            t.rem_euclid(1000)
        ));
    }
    out.push_str("# EOF\n");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = parse_openmetrics(&s, 0);
    }

    #[test]
    fn exposition_alphabet_never_panics(s in "[a-z_{}=\",#\\\\ \\n0-9.+\\-éü\"]{0,120}(\n# EOF)?") {
        let _ = parse_openmetrics(&s, 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_exposition(&data, Some("application/openmetrics-text"), 0);
        let _ = parse_exposition(&data, None, 0);
    }

    #[test]
    fn render_parse_round_trip(
        series in proptest::collection::btree_map(
            "[a-z][a-z0-9_]{0,8}",
            (
                proptest::collection::btree_map("[a-z][a-z0-9_]{0,5}", "\\PC{1,10}", 0..4),
                -1e12f64..1e12,
                0i64..4_000_000_000_000,
            ),
            1..6,
        )
    ) {
        let rows: Vec<Row> = series
            .into_iter()
            .map(|(n, (l, v, t))| (n, l.into_iter().collect(), v, t))
            .collect();
        let text = render(&rows);
        let b = parse_openmetrics(&text, 0).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(b.samples.len(), rows.len());
        for ((labels, s), (name, l, v, t)) in b.samples.iter().zip(&rows) {
            prop_assert_eq!(labels.metric_name(), Some(name.as_str()));
            for (ln, lv) in l {
                prop_assert_eq!(labels.get(ln), Some(lv.as_str()));
            }
            prop_assert_eq!(s.v, *v);
            prop_assert_eq!(s.t, *t);
        }
    }
}
