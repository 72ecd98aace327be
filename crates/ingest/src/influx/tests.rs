use super::*;
use proptest::prelude::*;

fn opts() -> InfluxOptions {
    InfluxOptions {
        now_ms: 777,
        ..Default::default()
    }
}

fn rows(b: &InfluxBatch) -> Vec<(String, i64, f64)> {
    b.batch
        .samples
        .iter()
        .map(|(l, s)| (l.to_string(), s.t, s.v))
        .collect()
}

fn one(line: &str) -> Vec<(String, i64, f64)> {
    let b = parse_influx(line.as_bytes(), &opts());
    assert_eq!(b.first_error, None, "{line}");
    rows(&b)
}

#[test]
fn documented_example_and_mapping() {
    // The InfluxDB line protocol reference's example point.
    assert_eq!(
        one("weather,location=us-midwest temperature=82 1465839830100400200"),
        vec![(
            r#"weather_temperature{location="us-midwest"}"#.to_string(),
            1465839830100,
            82.0
        )]
    );
    // Several fields: one series each, `value` included (VictoriaMetrics names it
    // <measurement>_value too); missing timestamp = now.
    assert_eq!(
        one("cpu,host=a,region=eu usage_user=1.5,value=2"),
        vec![
            (
                r#"cpu_usage_user{host="a", region="eu"}"#.to_string(),
                777,
                1.5
            ),
            (r#"cpu_value{host="a", region="eu"}"#.to_string(), 777, 2.0),
        ]
    );
}

#[test]
fn field_types() {
    let got = one(
        "m f=-1.234456e+78,i=-82i,u=82u,t=t,t2=T,t3=true,t4=True,t5=TRUE,f1=f,f2=F,f3=false,f4=False,f5=FALSE,s=\"a, b=c \\\"d\\\"\",g=1. 1",
    );
    let v: Vec<(String, f64)> = got.into_iter().map(|(l, _, v)| (l, v)).collect();
    let expect: Vec<(&str, f64)> = vec![
        ("m_f", -1.234456e+78),
        ("m_i", -82.0),
        ("m_u", 82.0),
        ("m_t", 1.0),
        ("m_t2", 1.0),
        ("m_t3", 1.0),
        ("m_t4", 1.0),
        ("m_t5", 1.0),
        ("m_f1", 0.0),
        ("m_f2", 0.0),
        ("m_f3", 0.0),
        ("m_f4", 0.0),
        ("m_f5", 0.0),
        ("m_g", 1.0),
    ];
    let expect: Vec<(String, f64)> = expect
        .into_iter()
        .map(|(a, b)| (a.to_string(), b))
        .collect();
    assert_eq!(v, expect);
    let b = parse_influx(b"m s=\"x\",n=1\n", &opts());
    assert_eq!(b.skipped_string_fields, 1);
    assert_eq!(b.batch.samples.len(), 1);
}

#[test]
fn escaping_rules() {
    // Examples from the line protocol reference's "special characters" section.
    assert_eq!(
        one("weather,location=us\\,midwest temperature=82 1465839830100400200")[0].0,
        r#"weather_temperature{location="us,midwest"}"#
    );
    assert_eq!(
        one("weather,location=us-midwest temp\\=rature=82 1465839830100400200")[0].0,
        r#"weather_temp_rature{location="us-midwest"}"#
    );
    assert_eq!(
        one("weather,location\\ place=us-midwest temperature=82 1465839830100400200")[0].0,
        r#"weather_temperature{location_place="us-midwest"}"#
    );
    assert_eq!(
        one("wea\\,ther,location=us-midwest temperature=82 1465839830100400200")[0].0,
        r#"wea_ther_temperature{location="us-midwest"}"#
    );
    assert_eq!(
        one("wea\\ ther,location=us-midwest temperature=82 1465839830100400200")[0].0,
        r#"wea_ther_temperature{location="us-midwest"}"#
    );
    // Tag values keep spaces, '=' and quotes; a string field with a space and comma inside
    // does not end the field set.
    let b = parse_influx(
        "\"measurement\\ with\\ quotes\",tag\\ key\\ with\\ spaces=tag\\,value\\,with\"commas\",eq=a\\=b field_key\\\\=\"string field value, only \\\" need be escaped\",n=3 10"
            .as_bytes(),
        &InfluxOptions { precision: Precision::Seconds, ..opts() },
    );
    assert_eq!(b.first_error, None);
    assert_eq!(b.skipped_string_fields, 1);
    assert_eq!(
        rows(&b),
        vec![(
            r#"_measurement_with_quotes__n{eq="a=b", tag_key_with_spaces="tag,value,with\"commas\""}"#
                .to_string(),
            10_000,
            3.0
        )]
    );
    // Other backslashes stay; UTF-8 tag values are kept, names sanitised.
    assert_eq!(
        one("m,path=C:\\dir,ü=ö x=1")[0].0,
        r#"m_x{_="ö", path="C:\\dir"}"#
    );
    assert_eq!(one("9m,1a=b x=1")[0].0, r#"_9m_x{_1a="b"}"#);
}

#[test]
fn precisions() {
    let cases: &[(&str, i64, i64)] = &[
        ("ns", 1_465_839_830_100_400_200, 1_465_839_830_100),
        ("n", 1_465_839_830_100_400_200, 1_465_839_830_100),
        ("us", 1_465_839_830_100_400, 1_465_839_830_100),
        ("u", 1_465_839_830_100_400, 1_465_839_830_100),
        ("ms", 1_465_839_830_100, 1_465_839_830_100),
        ("s", 1_465_839_830, 1_465_839_830_000),
        ("m", 24_430_663, 1_465_839_780_000),
        ("h", 407_177, 1_465_837_200_000),
    ];
    for (p, raw, ms) in cases {
        let o = InfluxOptions {
            precision: Precision::parse(p).unwrap(),
            ..opts()
        };
        let b = parse_influx(format!("m v=1 {raw}").as_bytes(), &o);
        assert_eq!(b.batch.samples[0].1.t, *ms, "precision {p}");
    }
    assert_eq!(Precision::parse("x"), None);
    assert_eq!(Precision::Hours.to_ms(i64::MAX), None);
}

#[test]
fn db_label() {
    let o = InfluxOptions {
        db: Some("telegraf".to_string()),
        ..opts()
    };
    let b = parse_influx(b"m v=1\nm,db=own v=2\n", &o);
    let r = rows(&b);
    assert_eq!(r[0].0, r#"m_v{db="telegraf"}"#);
    assert_eq!(r[1].0, r#"m_v{db="own"}"#);
}

#[test]
fn blank_lines_comments_crlf_and_spaces() {
    let b = parse_influx(
        b"\n# comment\r\n  m v=1  5\r\n\n",
        &InfluxOptions {
            precision: Precision::Milliseconds,
            ..opts()
        },
    );
    assert_eq!(b.first_error, None);
    assert_eq!(rows(&b), vec![("m_v".to_string(), 5, 1.0)]);
    assert_eq!(b.lines, 1);
}

#[test]
fn bad_lines_name_line_and_field_and_keep_the_rest() {
    let cases: &[(&str, &str)] = &[
        ("m", "expected a space and the field set"),
        ("m ", "missing fields"),
        (",t=1 v=1", "missing measurement"),
        ("m,t v=1", "tag \"t\" has no '='"),
        ("m,t= v=1", "tag \"t\" has an empty value"),
        ("m,=x v=1", "empty key"),
        ("m,__name__=x v=1", "reserved"),
        ("m,a.b=1,a-b=2 v=1", "same label name \"a_b\""),
        ("m v", "field \"v\" has no '='"),
        ("m =1", "empty key"),
        ("m v=", "field \"v\": missing value"),
        ("m v=abc", "field \"v\": invalid value \"abc\""),
        ("m v=NaN", "field \"v\": invalid value"),
        ("m v=1.5i", "field \"v\": invalid integer"),
        ("m v=99999999999999999999i", "field \"v\": invalid integer"),
        ("m v=-1u", "field \"v\": invalid unsigned"),
        ("m v=1e999", "out of range"),
        ("m v=\"abc", "field \"v\": unterminated string"),
        ("m v=\"a\"x", "after the value of field \"v\""),
        ("m v=1 abc", "invalid timestamp \"abc\""),
        ("m v=1 1 2", "invalid timestamp"),
        ("m v=1,w=tru", "field \"w\": invalid value \"tru\""),
    ];
    for (bad, msg) in cases {
        let body = format!("ok v=1 1\n{bad}\nok2 v=2 2\n");
        let b = parse_influx(body.as_bytes(), &opts());
        let e = b
            .first_error
            .as_ref()
            .unwrap_or_else(|| panic!("{bad:?} accepted: {b:?}"));
        assert_eq!(e.line, 2, "{bad:?}: {e}");
        assert!(e.msg.contains(msg), "{bad:?}: {e} should mention {msg:?}");
        assert_eq!(b.invalid_lines, 1);
        let names: Vec<_> = b
            .batch
            .samples
            .iter()
            .map(|(l, _)| l.metric_name().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            names,
            vec!["ok_v", "ok2_v"],
            "{bad:?}: valid lines are kept"
        );
    }
    // Invalid UTF-8 spoils only its line.
    let b = parse_influx(b"a v=1\nb,t=\xff v=1\n", &opts());
    assert_eq!(b.first_error.as_ref().map(|e| e.line), Some(2));
    assert!(b.first_error.unwrap().msg.contains("UTF-8"));
    assert_eq!(b.batch.samples.len(), 1);
}

#[test]
fn limits_apply() {
    let o = InfluxOptions {
        limits: DecodeLimits {
            max_labels_per_series: 2,
            max_label_name_len: 4,
            max_label_value_len: 8,
        },
        ..opts()
    };
    let b = parse_influx(
        b"m,a=1,b=2 v=1\nm,abcde=1 v=1\nm,a=123456789 v=1\nm,a=1 v=1\n",
        &o,
    );
    assert_eq!(b.invalid_lines, 3);
    assert_eq!(b.batch.samples.len(), 1);
}

/// Renders points in line protocol with the escaping the protocol requires.
fn render(m: &str, tags: &[(String, String)], fields: &[(String, f64)], ts: i64) -> String {
    let esc = |s: &str, extra: bool| {
        let mut o = String::new();
        for c in s.chars() {
            if c == ',' || c == ' ' || (extra && c == '=') {
                o.push('\\');
            }
            o.push(c);
        }
        o
    };
    let mut line = esc(m, false);
    for (k, v) in tags {
        line.push_str(&format!(",{}={}", esc(k, true), esc(v, true)));
    }
    line.push(' ');
    let fs: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={v:?}", esc(k, true)))
        .collect();
    line.push_str(&fs.join(","));
    line.push_str(&format!(" {ts}"));
    line
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_influx(&data, &opts());
    }

    #[test]
    fn line_alphabet_never_panics(s in "[a-z,= \"\\\\0-9.\\-iuTtf\\n#é]{0,120}") {
        let _ = parse_influx(s.as_bytes(), &opts());
    }

    #[test]
    fn render_parse_round_trip(
        m in "[a-z][a-z0-9 ,=]{0,8}",
        tags in proptest::collection::btree_map("[a-z][a-z0-9]{0,5}", "[a-zA-Z0-9 ,=\"é]{1,8}", 0..4),
        fields in proptest::collection::btree_map("[a-z][a-z0-9]{0,5}", -1e12f64..1e12, 1..4),
        ts in 0i64..4_000_000_000_000_000_000,
    ) {
        let tags: Vec<(String, String)> = tags.into_iter().collect();
        let fields: Vec<(String, f64)> = fields.into_iter().collect();
        let line = render(&m, &tags, &fields, ts);
        let b = parse_influx(line.as_bytes(), &opts());
        prop_assert_eq!(b.first_error.clone(), None, "{}", line);
        prop_assert_eq!(b.batch.samples.len(), fields.len());
        for ((labels, s), (k, v)) in b.batch.samples.iter().zip(&fields) {
            let name = sanitize(&format!("{m}_{k}"), true);
            prop_assert_eq!(labels.metric_name(), Some(name.as_str()));
            for (tk, tv) in &tags {
                prop_assert_eq!(labels.get(tk), Some(tv.as_str()));
            }
            prop_assert_eq!(s.v, *v);
            prop_assert_eq!(s.t, ts / 1_000_000);
        }
    }
}
