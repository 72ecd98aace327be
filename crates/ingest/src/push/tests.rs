use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_model::{is_stale_nan, Labels};

use super::path::{decode_base64, encode_base64};
use super::service::render_text;
use super::*;
use crate::remote_write::WriteBatch;
use crate::{Sink, SinkError, Stored};

fn key(pairs: &[(&str, &str)]) -> GroupingKey {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn body(s: &str) -> ParsedBody {
    parse_body(s.as_bytes(), None).expect("body parses")
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// (labels, value) of every pushed sample in a group, sorted.
fn samples(store: &GroupStore, k: &GroupingKey) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = store
        .get(k)
        .expect("group exists")
        .series()
        .map(|(l, v)| (l.to_string(), v))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn path_plain_and_base64() {
    assert_eq!(
        parse_grouping_path("/metrics/job/backup").unwrap(),
        key(&[("job", "backup")])
    );
    assert_eq!(
        parse_grouping_path("/metrics/job/backup/").unwrap(),
        key(&[("job", "backup")])
    );
    assert_eq!(
        parse_grouping_path("/metrics/job/directory_cleaner/path@base64/L3Zhci90bXA").unwrap(),
        key(&[("job", "directory_cleaner"), ("path", "/var/tmp")])
    );
    // Padding is optional; a lone '=' is the empty value.
    assert_eq!(
        parse_grouping_path("/metrics/job/example/first_label@base64/=/second_label/foobar")
            .unwrap(),
        key(&[
            ("job", "example"),
            ("first_label", ""),
            ("second_label", "foobar")
        ])
    );
    assert_eq!(
        parse_grouping_path("/metrics/job/titan/name@base64/zqDPgc6_zrzOt864zrXPjc-C").unwrap(),
        key(&[("job", "titan"), ("name", "Προμηθεύς")])
    );
    assert_eq!(
        parse_grouping_path(
            "/metrics/job/titan/name/%CE%A0%CF%81%CE%BF%CE%BC%CE%B7%CE%B8%CE%B5%CF%8D%CF%82"
        )
        .unwrap(),
        key(&[("job", "titan"), ("name", "Προμηθεύς")])
    );
    assert_eq!(
        parse_grouping_path("/metrics/job@base64/YS9i/instance/x").unwrap(),
        key(&[("job", "a/b"), ("instance", "x")])
    );
    assert_eq!(decode_base64("YQ==").unwrap(), "a");
    assert_eq!(decode_base64("YQ").unwrap(), "a");
    // Unused low bits are ignored, a dangling character is not (Go's behaviour).
    assert_eq!(decode_base64("YR").unwrap(), "a");
    assert!(decode_base64("YQA=A").is_err());
    for s in ["", "a", "ab", "abc", "/var/tmp", "Προμηθεύς"] {
        assert_eq!(decode_base64(&encode_base64(s)).unwrap(), s);
    }
}

#[test]
fn path_errors() {
    let err = |p: &str| match parse_grouping_path(p) {
        Err(PushError::Path(m)) => m,
        other => panic!("{p}: expected a path error, got {other:?}"),
    };
    assert!(err("/metrics/job/x/a").contains("odd number of components"));
    assert!(err("/metrics/job/x/a/1/b").contains("odd number"));
    assert!(err("/metrics/job/x/__a/1").contains("improper label name \"__a\""));
    assert!(err("/metrics/job/x/1a/1").contains("improper label name"));
    assert!(err("/metrics/job/x/a@base64/!!").contains("invalid base64 encoding for label a"));
    assert!(err("/metrics/job@base64/%%%").contains("invalid URL escape"));
    assert!(err("/metrics/job@base64/!").contains("invalid base64 encoding in job name"));
    assert!(err("/metrics/job@base64/=").contains("job name is required"));
    assert!(err("/metrics/job/x/a//b/c").contains("empty value for label \"a\""));
}

#[test]
fn put_replaces_group_post_replaces_families() {
    let mut s = GroupStore::new();
    let k = key(&[("job", "j"), ("instance", "i")]);
    s.push(
        k.clone(),
        body("# TYPE a counter\na 1\n# TYPE b gauge\nb{x=\"1\"} 2\nb{x=\"2\"} 3\n"),
        true,
        None,
        1000,
    )
    .unwrap();
    assert_eq!(
        samples(&s, &k),
        vec![
            ("a{instance=\"i\", job=\"j\"}".to_string(), 1.0),
            ("b{instance=\"i\", job=\"j\", x=\"1\"}".to_string(), 2.0),
            ("b{instance=\"i\", job=\"j\", x=\"2\"}".to_string(), 3.0),
        ]
    );
    // POST replaces family b entirely (x="2" goes away), keeps a, adds c.
    let ch = s
        .push(k.clone(), body("b{x=\"1\"} 20\nc 5\n"), false, None, 2000)
        .unwrap();
    assert_eq!(
        ch.removed,
        vec![labels(&[
            ("__name__", "b"),
            ("instance", "i"),
            ("job", "j"),
            ("x", "2")
        ])]
    );
    assert_eq!(
        samples(&s, &k),
        vec![
            ("a{instance=\"i\", job=\"j\"}".to_string(), 1.0),
            ("b{instance=\"i\", job=\"j\", x=\"1\"}".to_string(), 20.0),
            ("c{instance=\"i\", job=\"j\"}".to_string(), 5.0),
        ]
    );
    let g = s.get(&k).unwrap();
    assert_eq!(g.push_time_ms, Some(2000));
    assert_eq!(g.families["a"].pushed_ms, 1000);
    assert_eq!(g.families["b"].pushed_ms, 2000);
    // POST dropped b's type (the new push did not declare it), like the Pushgateway.
    assert_eq!(g.families["b"].kind, sextant_model::MetricType::Unknown);
    // PUT replaces everything.
    let ch = s.push(k.clone(), body("d 7\n"), true, None, 3000).unwrap();
    assert_eq!(ch.removed.len(), 3);
    assert_eq!(
        samples(&s, &k),
        vec![("d{instance=\"i\", job=\"j\"}".to_string(), 7.0)]
    );
    // PUT with an empty body empties the group but keeps it (with its push time).
    s.push(k.clone(), body(""), true, None, 4000).unwrap();
    assert!(samples(&s, &k).is_empty());
    assert_eq!(s.get(&k).unwrap().push_time_ms, Some(4000));
    // DELETE removes the group and reports all its series, the push gauges included.
    let gone = s.delete(&k).unwrap();
    assert_eq!(gone.len(), 2);
    assert!(s.get(&k).is_none());
    assert!(s.delete(&k).is_none());
}

#[test]
fn histogram_lines_form_one_family() {
    let mut s = GroupStore::new();
    let k = key(&[("job", "j")]);
    let h = "# HELP lat Latency.\n# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3\nlat_count 2\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\nlat_sum_other 1\n";
    s.push(k.clone(), body(h), true, None, 1).unwrap();
    let g = s.get(&k).unwrap();
    let names: Vec<&str> = g.families.keys().map(|s| s.as_str()).collect();
    assert_eq!(names, vec!["lat", "lat_sum_other", "s"]);
    assert_eq!(g.families["lat"].samples.len(), 4);
    assert_eq!(g.families["lat"].help, "Latency.");
    assert_eq!(g.families["s"].samples.len(), 3);
    // POST of `lat` replaces all four lines.
    s.push(
        k.clone(),
        body("# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 5\nlat_sum 1\nlat_count 5\n"),
        false,
        None,
        2,
    )
    .unwrap();
    assert_eq!(s.get(&k).unwrap().families["lat"].samples.len(), 3);
}

#[test]
fn grouping_labels_override_pushed_labels() {
    let mut s = GroupStore::new();
    let k = key(&[("job", "j"), ("instance", "i1"), ("dc", "")]);
    s.push(
        k.clone(),
        body("m{job=\"other\",instance=\"i2\",dc=\"x\",y=\"1\"} 1\n"),
        true,
        None,
        1,
    )
    .unwrap();
    // job and instance from the path win; an empty grouping value removes the label.
    assert_eq!(
        samples(&s, &k),
        vec![("m{instance=\"i1\", job=\"j\", y=\"1\"}".to_string(), 1.0)]
    );
    // A body `instance` is kept when the path does not set one.
    let k2 = key(&[("job", "j2")]);
    s.push(k2.clone(), body("m{instance=\"i9\"} 1\n"), true, None, 1)
        .unwrap();
    assert_eq!(
        samples(&s, &k2),
        vec![("m{instance=\"i9\", job=\"j2\"}".to_string(), 1.0)]
    );
}

#[test]
fn refused_pushes_leave_the_group_and_set_failure_time() {
    let mut s = GroupStore::new();
    let k = key(&[("job", "j")]);
    s.push(k.clone(), body("# TYPE m counter\nm 1\n"), true, None, 1000)
        .unwrap();
    let before = samples(&s, &k);
    let incons = |r: Result<_, PushError>| match r {
        Err(PushError::Inconsistent(m)) => m,
        other => panic!("expected an inconsistency, got {other:?}"),
    };
    // Timestamps are refused.
    let m = incons(s.push(k.clone(), body("m 2 12345\n"), true, None, 2000));
    assert_eq!(m, "pushed metrics must not have timestamps");
    assert_eq!(samples(&s, &k), before);
    let g = s.get(&k).unwrap();
    assert_eq!(
        (g.push_time_ms, g.failure_time_ms),
        (Some(1000), Some(2000))
    );
    assert!(!g.last_push_successful());
    // Duplicate series within a push.
    let m = incons(s.push(k.clone(), body("x 1\nx 2\n"), false, None, 3000));
    assert!(m.contains("pushed more than once"), "{m}");
    // Reserved label names.
    let m = incons(s.push(k.clone(), body("x{__y=\"1\"} 1\n"), false, None, 3000));
    assert!(m.contains("reserved name"), "{m}");
    // The same family with another type in another group.
    let m = incons(s.push(
        key(&[("job", "other")]),
        body("# TYPE m gauge\nm 1\n"),
        true,
        None,
        4000,
    ));
    assert!(
        m.contains("pushed as gauge but is counter in group {job=\"j\"}"),
        "{m}"
    );
    // The failed push created the other group, with only a failure time (like the Pushgateway).
    let other = s.get(&key(&[("job", "other")])).unwrap();
    assert!(other.families.is_empty());
    assert_eq!(
        (other.push_time_ms, other.failure_time_ms),
        (None, Some(4000))
    );
    // Untyped vs counter is a type conflict too.
    incons(s.push(key(&[("job", "other")]), body("m 1\n"), true, None, 4100));
    // The same series in two groups (body label equal to the other group's grouping label).
    s.push(
        key(&[("job", "j"), ("a", "1")]),
        body("# TYPE m counter\nm 3\n"),
        true,
        None,
        5000,
    )
    .unwrap();
    let m = incons(s.push(
        k.clone(),
        body("# TYPE m counter\nm{a=\"1\"} 4\n"),
        true,
        None,
        6000,
    ));
    assert!(m.contains("already pushed"), "{m}");
    assert_eq!(samples(&s, &k), before);
    // Different help in two groups is accepted (the Pushgateway only logs it).
    s.push(
        key(&[("job", "j"), ("a", "2")]),
        body("# HELP m other\n# TYPE m counter\nm 3\n"),
        true,
        None,
        7000,
    )
    .unwrap();
    // Parse errors are body errors and do not touch the group.
    match parse_body(b"m{ 1\n", None) {
        Err(PushError::Body(m)) => {
            assert!(m.starts_with("text format parsing error in line 1:"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // Pushed push_time_seconds is overridden.
    s.push(k.clone(), body("push_time_seconds 5\n"), true, None, 8000)
        .unwrap();
    assert!(s.get(&k).unwrap().families.is_empty());
}

#[test]
fn ttl_expiry() {
    let mut s = GroupStore::new();
    let k = key(&[("job", "j")]);
    s.push(k.clone(), body("m 1\n"), true, Some(60_000), 1000)
        .unwrap();
    assert!(s.expire(60_999).is_empty());
    // A new push restarts the TTL.
    s.push(k.clone(), body("m 2\n"), false, Some(60_000), 30_000)
        .unwrap();
    assert!(s.expire(61_000).is_empty());
    let gone = s.expire(90_000);
    assert_eq!(gone.len(), 1);
    assert!(s.get(&k).is_none());
    // Without a TTL a group never expires; a push without TTL clears an earlier one.
    s.push(k.clone(), body("m 1\n"), true, Some(1000), 0)
        .unwrap();
    s.push(k.clone(), body("m 1\n"), true, None, 10).unwrap();
    assert!(s.expire(i64::MAX).is_empty());
}

/// Records every batch.
#[derive(Default)]
struct VecSink(Mutex<Vec<WriteBatch>>);

impl Sink for VecSink {
    fn store(&self, batch: WriteBatch) -> Result<Stored, SinkError> {
        self.0.lock().unwrap().push(batch);
        Ok(Stored::default())
    }
}

impl VecSink {
    /// (labels, t, value-or-"stale") of all samples written, in order.
    fn written(&self) -> Vec<(String, i64, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b.series.iter())
            .flat_map(|s| {
                s.samples.iter().map(move |x| {
                    let v = if is_stale_nan(x.v) {
                        "stale".to_string()
                    } else {
                        x.v.to_string()
                    };
                    (s.labels.to_string(), x.t, v)
                })
            })
            .collect()
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

fn service(file: Option<std::path::PathBuf>) -> (PushGroups, Arc<VecSink>, Arc<AtomicI64>) {
    let sink = Arc::new(VecSink::default());
    let now = Arc::new(AtomicI64::new(1_000_000));
    let n2 = now.clone();
    let svc = PushGroups::open(
        sink.clone(),
        file,
        Duration::from_secs(15),
        Box::new(move || n2.load(Ordering::SeqCst)),
    );
    (svc, sink, now)
}

#[test]
fn service_writes_reappends_and_marks_stale() {
    let (svc, sink, now) = service(None);
    let k = key(&[("job", "j")]);
    svc.push(k.clone(), b"m{x=\"1\"} 1\nm{x=\"2\"} 2\n", None, true, None)
        .unwrap();
    let w = sink.written();
    assert_eq!(
        w,
        vec![
            ("m{job=\"j\", x=\"1\"}".into(), 1_000_000, "1".into()),
            ("m{job=\"j\", x=\"2\"}".into(), 1_000_000, "2".into()),
            (
                "push_time_seconds{job=\"j\"}".into(),
                1_000_000,
                "1000".into()
            ),
            (
                "push_failure_time_seconds{job=\"j\"}".into(),
                1_000_000,
                "0".into()
            ),
        ]
    );
    sink.clear();
    // First tick re-appends at once; the next only after the interval.
    now.store(1_001_000, Ordering::SeqCst);
    svc.tick();
    assert_eq!(sink.written().len(), 4);
    sink.clear();
    now.store(1_010_000, Ordering::SeqCst);
    svc.tick();
    assert!(sink.written().is_empty());
    now.store(1_016_000, Ordering::SeqCst);
    svc.tick();
    assert!(sink.written().iter().all(|(_, t, _)| *t == 1_016_000));
    assert_eq!(sink.written().len(), 4);
    sink.clear();
    // PUT without x="2": stale marker for it.
    svc.push(k.clone(), b"m{x=\"1\"} 3\n", None, true, None)
        .unwrap();
    assert!(sink
        .written()
        .contains(&("m{job=\"j\", x=\"2\"}".into(), 1_016_001, "stale".into())));
    sink.clear();
    // Same clock reading: timestamps still increase.
    svc.delete(&k).unwrap();
    let w = sink.written();
    assert_eq!(w.len(), 3);
    assert!(w.iter().all(|(_, t, v)| *t == 1_016_002 && v == "stale"));
    assert!(svc.is_empty());
}

#[test]
fn service_ttl_expiry_counts_and_marks_stale() {
    let (svc, sink, now) = service(None);
    let k = key(&[("job", "batch"), ("run", "7")]);
    svc.push(
        k.clone(),
        b"m 1\n",
        None,
        true,
        Some(Duration::from_secs(60)),
    )
    .unwrap();
    svc.tick();
    sink.clear();
    now.store(1_059_999, Ordering::SeqCst);
    svc.tick();
    assert_eq!(svc.len(), 1);
    sink.clear();
    now.store(1_060_000, Ordering::SeqCst);
    svc.tick();
    assert_eq!(svc.len(), 0);
    let w = sink.written();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w.iter().all(|(_, _, v)| v == "stale"));
    assert_eq!(svc.expired_totals().get("batch"), Some(&1));
}

/// An acknowledged push or delete is in the file when the call returns: a process killed right
/// after (no tick, no flush at shutdown; `forget` skips `Drop`) loses nothing.
#[test]
fn acknowledged_changes_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("push_groups.json");
    let (svc, _sink, _now) = service(Some(file.clone()));
    svc.push(key(&[("job", "a")]), b"x 1\n", None, true, None)
        .unwrap();
    svc.push(key(&[("job", "b")]), b"y 2\n", None, true, None)
        .unwrap();
    std::mem::forget(svc);
    let (svc, _sink, _now) = service(Some(file.clone()));
    assert_eq!(
        render_text(&svc.groups()).matches("job=\"").count(),
        6,
        "{}",
        render_text(&svc.groups())
    );
    svc.push(key(&[("job", "a")]), b"x 3\n", None, false, None)
        .unwrap();
    svc.delete(&key(&[("job", "b")])).unwrap();
    std::mem::forget(svc);
    let (svc, _sink, _now) = service(Some(file.clone()));
    let text = render_text(&svc.groups());
    assert!(text.contains("x{job=\"a\"} 3\n"), "{text}");
    assert!(!text.contains("job=\"b\""), "{text}");
}

#[test]
fn persistence_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("push_groups.json");
    let (svc, _sink, _now) = service(Some(file.clone()));
    svc.push(
        key(&[("job", "j"), ("path", "/var/tmp"), ("empty", "")]),
        "# HELP h Help \\\\ with\\nnewline.\n# TYPE h histogram\nh_bucket{le=\"+Inf\",v=\"Προμηθεύς\"} 2\nh_sum{v=\"Προμηθεύς\"} NaN\nh_count{v=\"Προμηθεύς\"} 2\nneg -Inf\n".as_bytes(),
        None,
        true,
        Some(Duration::from_secs(3600)),
    )
    .unwrap();
    let _ = svc.push(key(&[("job", "failed")]), b"x 1 5\n", None, true, None);
    let before = svc.groups();
    assert_eq!(before.len(), 2);
    // Saved by the push itself, before it returned.
    assert!(file.exists());
    svc.tick();
    drop(svc);
    let (svc2, _sink, _now) = service(Some(file.clone()));
    let after = svc2.groups();
    // NaN != NaN, so compare the rendering (bit-exact values are checked below).
    assert_eq!(render_text(&before), render_text(&after));
    assert_eq!(
        before
            .iter()
            .map(|g| (
                &g.key,
                g.push_time_ms,
                g.failure_time_ms,
                g.ttl_ms,
                g.expires_at_ms
            ))
            .collect::<Vec<_>>(),
        after
            .iter()
            .map(|g| (
                &g.key,
                g.push_time_ms,
                g.failure_time_ms,
                g.ttl_ms,
                g.expires_at_ms
            ))
            .collect::<Vec<_>>()
    );
    let bits = |gs: &[Group]| -> Vec<u64> {
        gs.iter()
            .flat_map(|g| g.series().map(|(_, v)| v.to_bits()).collect::<Vec<_>>())
            .collect()
    };
    assert_eq!(bits(&before), bits(&after));
    // A corrupt file is moved aside and the service starts empty.
    std::fs::write(&file, b"{not json").unwrap();
    let (svc3, _s, _n) = service(Some(file.clone()));
    assert!(svc3.is_empty());
    assert!(file.with_extension("corrupt").exists());
}

#[test]
fn render_text_merges_groups() {
    let mut s = GroupStore::new();
    s.push(
        key(&[("job", "a")]),
        body("# HELP m Help.\n# TYPE m counter\nm 1\n"),
        true,
        None,
        1000,
    )
    .unwrap();
    s.push(
        key(&[("job", "b")]),
        body("# TYPE m counter\nm 2\n"),
        true,
        None,
        2000,
    )
    .unwrap();
    let groups: Vec<Group> = s.groups().cloned().collect();
    let text = render_text(&groups);
    assert_eq!(
        text,
        "# HELP m Help.\n# TYPE m counter\nm{job=\"a\"} 1\nm{job=\"b\"} 2\n\
         # HELP push_failure_time_seconds Last Unix time when changing this group in the Pushgateway failed.\n\
         # TYPE push_failure_time_seconds gauge\npush_failure_time_seconds{job=\"a\"} 0\npush_failure_time_seconds{job=\"b\"} 0\n\
         # HELP push_time_seconds Last Unix time when changing this group in the Pushgateway succeeded.\n\
         # TYPE push_time_seconds gauge\npush_time_seconds{job=\"a\"} 1\npush_time_seconds{job=\"b\"} 2\n"
    );
    // It parses back.
    crate::text::parse_text(&text, 0).unwrap();
}

#[test]
fn go_float_matches_fmt_sprint() {
    for (v, want) in [
        (0.0, "0"),
        (1.0, "1"),
        (0.5, "0.5"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (1234.5, "1234.5"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5e-7, "-2.5e-07"),
        (f64::INFINITY, "+Inf"),
    ] {
        assert_eq!(format_go_float(v), want, "{v}");
    }
}

#[test]
fn text_le_and_quantile_are_canonical() {
    let b = body("# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n# TYPE s summary\ns{quantile=\"0.50\"} 1\nother{le=\"1.0\"} 1\n");
    let h: Vec<String> = b.families["h"]
        .samples
        .iter()
        .map(|(l, _)| l.to_string())
        .collect();
    assert_eq!(h[0], "h_bucket{le=\"1\"}");
    assert_eq!(h[1], "h_bucket{le=\"+Inf\"}");
    assert_eq!(b.families["s"].samples[0].0.get("quantile"), Some("0.5"));
    // Not a histogram: left alone.
    assert_eq!(b.families["other"].samples[0].0.get("le"), Some("1.0"));
    assert!(matches!(
        parse_body(b"# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", None),
        Err(PushError::Body(_))
    ));
}

const PROTO_CT: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

fn encode_families(fams: &[crate::client_model::MetricFamily]) -> Vec<u8> {
    use prost::Message;
    let mut out = Vec::new();
    for f in fams {
        f.encode_length_delimited(&mut out).unwrap();
    }
    out
}

#[test]
fn protobuf_bodies_match_text_bodies() {
    use crate::client_model as pb;
    let lp = |n: &str, v: &str| pb::LabelPair {
        name: Some(n.into()),
        value: Some(v.into()),
    };
    let fams = vec![
        pb::MetricFamily {
            name: Some("jobs_total".into()),
            help: Some("Jobs.".into()),
            r#type: Some(pb::MetricType::Counter as i32),
            metric: vec![pb::Metric {
                label: vec![lp("result", "ok")],
                counter: Some(pb::Counter {
                    value: Some(3.0),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            unit: None,
        },
        pb::MetricFamily {
            name: Some("lat".into()),
            help: None,
            r#type: Some(pb::MetricType::Histogram as i32),
            metric: vec![pb::Metric {
                histogram: Some(pb::Histogram {
                    sample_count: Some(4),
                    sample_sum: Some(2.5),
                    bucket: vec![
                        pb::Bucket {
                            cumulative_count: Some(1),
                            upper_bound: Some(0.5),
                            ..Default::default()
                        },
                        pb::Bucket {
                            cumulative_count: Some(3),
                            upper_bound: Some(1e6),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            unit: None,
        },
        pb::MetricFamily {
            name: Some("rpc".into()),
            help: None,
            r#type: Some(pb::MetricType::Summary as i32),
            metric: vec![pb::Metric {
                summary: Some(pb::Summary {
                    sample_count: Some(10),
                    sample_sum: Some(1.5),
                    quantile: vec![pb::Quantile {
                        quantile: Some(0.99),
                        value: Some(0.3),
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            unit: None,
        },
    ];
    let proto = parse_body(&encode_families(&fams), Some(PROTO_CT)).unwrap();
    let text = body("# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total{result=\"ok\"} 3\n# TYPE lat histogram\nlat_bucket{le=\"0.5\"} 1\nlat_bucket{le=\"1e+06\"} 3\nlat_bucket{le=\"+Inf\"} 4\nlat_sum 2.5\nlat_count 4\n# TYPE rpc summary\nrpc{quantile=\"0.99\"} 0.3\nrpc_sum 1.5\nrpc_count 10\n");
    assert_eq!(proto, text);

    // Timestamps and wrong value kinds are refused by the store; garbage is a body error.
    let mut ts = fams[0].clone();
    ts.metric[0].timestamp_ms = Some(5);
    assert!(
        parse_body(&encode_families(&[ts]), Some(PROTO_CT))
            .unwrap()
            .has_timestamps
    );
    let mut wrong = fams[0].clone();
    wrong.metric[0].counter = None;
    wrong.metric[0].gauge = Some(pb::Gauge { value: Some(1.0) });
    let parsed = parse_body(&encode_families(&[wrong]), Some(PROTO_CT)).unwrap();
    let mut s = GroupStore::new();
    match s.push(key(&[("job", "j")]), parsed, true, None, 1) {
        Err(PushError::Inconsistent(m)) => assert!(m.contains("has no counter value"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_body(b"\x05abc", Some(PROTO_CT)),
        Err(PushError::Body(_))
    ));
    // Without the protobuf content type the same bytes are (bad) text.
    assert!(parse_body(&encode_families(&fams), Some("text/plain")).is_err());
}

#[test]
fn content_encodings() {
    use std::io::Write;
    let raw = b"m 1\n".repeat(100);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(
        &*decode_content_encoding(Some("gzip"), &gz, 1 << 20).unwrap(),
        &raw[..]
    );
    let mut sn = snap::write::FrameEncoder::new(Vec::new());
    sn.write_all(&raw).unwrap();
    let sn = sn.into_inner().unwrap();
    assert_eq!(
        &*decode_content_encoding(Some("snappy"), &sn, 1 << 20).unwrap(),
        &raw[..]
    );
    assert_eq!(&*decode_content_encoding(None, &raw, 1).unwrap(), &raw[..]);
    assert!(matches!(
        decode_content_encoding(Some("gzip"), &gz, 10),
        Err(PushError::Body(m)) if m.contains("limit of 10 bytes")
    ));
    assert!(matches!(
        decode_content_encoding(Some("gzip"), b"not gzip", 100),
        Err(PushError::Body(_))
    ));
    assert!(matches!(
        decode_content_encoding(Some("br"), b"", 100),
        Err(PushError::Encoding(_))
    ));
}

#[test]
fn limits_refuse_the_whole_push() {
    let (svc, _sink, _now) = service(None);
    let svc = svc.with_limits(PushLimits {
        max_labels_per_series: 3,
        max_label_name_len: 10,
        max_label_value_len: 5,
        ..Default::default()
    });
    let k = key(&[("job", "j")]);
    svc.push(k.clone(), b"m{a=\"1\"} 1\n", None, true, None)
        .unwrap();
    for (b, want) in [
        ("m{a=\"1\",b=\"2\",c=\"3\"} 1\n", "more than the limit of 3"),
        (
            "m{abcdefghijk=\"1\"} 1\n",
            "longer than the limit of 10 bytes",
        ),
        ("m{a=\"123456\"} 1\n", "longer than the limit of 5 bytes"),
    ] {
        match svc.push(k.clone(), b.as_bytes(), None, true, None) {
            Err(PushError::Body(m)) => assert!(m.contains(want), "{m}"),
            other => panic!("{b}: {other:?}"),
        }
    }
    let g = &svc.groups()[0];
    assert_eq!(g.failure_time_ms, None);
    assert_eq!(g.families["m"].samples[0].0.get("a"), Some("1"));
}

#[test]
fn text_metadata_rules_of_the_pushgateway() {
    for (b, want) in [
        (
            "# TYPE a counter\n# TYPE a counter\na 1\n",
            "line 2: second TYPE line",
        ),
        (
            "a 1\n# TYPE a counter\n",
            "line 2: second TYPE line for metric name \"a\", or TYPE reported after samples",
        ),
        (
            "# HELP a x\n# HELP a y\na 1\n",
            "line 2: second HELP line for metric name \"a\"",
        ),
        (
            "# TYPE a info\na 1\n",
            "line 1: unknown metric type \"info\"",
        ),
    ] {
        match parse_body(b.as_bytes(), None) {
            Err(PushError::Body(m)) => assert!(m.contains(want), "{b:?}: {m}"),
            other => panic!("{b:?}: {other:?}"),
        }
    }
    // Allowed: TYPE of a histogram after nothing of it, interleaved families, other comments.
    body("# TYPE h histogram\n# some comment\nh_bucket{le=\"+Inf\"} 1\nb 1\nh_sum 1\nh_count 1\n# TYPE c counter\nc 1\n");
}

#[test]
fn incomplete_histograms_and_summaries_are_completed_like_the_pushgateway() {
    let lines = |b: &ParsedBody, f: &str| -> Vec<String> {
        b.families[f]
            .samples
            .iter()
            .map(|(l, v)| format!("{l} {v}"))
            .collect()
    };
    let b = body("# TYPE h histogram\nh_bucket{le=\"1\",a=\"x\"} 1\nh_count{a=\"x\"} 3.7\nh 5\nh_bucket{a=\"y\"} 2\n# TYPE s summary\ns{quantile=\"0.5\"} 0.25\ns 9\n");
    assert_eq!(
        lines(&b, "h"),
        vec![
            "h_bucket{a=\"x\", le=\"1\"} 1",
            "h_bucket{a=\"x\", le=\"+Inf\"} 3",
            "h_sum{a=\"x\"} 0",
            "h_count{a=\"x\"} 3",
            // The bare `h 5` line creates an (empty) histogram without labels.
            "h_bucket{le=\"+Inf\"} 0",
            "h_sum 0",
            "h_count 0",
            "h_bucket{a=\"y\", le=\"+Inf\"} 0",
            "h_sum{a=\"y\"} 0",
            "h_count{a=\"y\"} 0",
        ]
    );
    assert_eq!(
        lines(&b, "s"),
        vec!["s{quantile=\"0.5\"} 0.25", "s_sum 0", "s_count 0"]
    );
    // A complete histogram is unchanged.
    let full =
        "# TYPE c histogram\nc_bucket{le=\"1\"} 1\nc_bucket{le=\"+Inf\"} 2\nc_sum 1.5\nc_count 2\n";
    assert_eq!(
        lines(&body(full), "c"),
        vec![
            "c_bucket{le=\"1\"} 1",
            "c_bucket{le=\"+Inf\"} 2",
            "c_sum 1.5",
            "c_count 2"
        ]
    );
}

#[test]
fn text_strictness_of_the_pushgateway() {
    for (b, want) in [
        ("a 1", "line 1: unexpected end of input stream"),
        ("a 1\nb 2", "line 2: unexpected end of input stream"),
        ("a{x=\"\\q\"} 1\n", "line 1: invalid escape sequence '\\q'"),
        (
            "# HELP a x\\qy\na 1\n",
            "line 1: invalid escape sequence '\\q'",
        ),
    ] {
        match parse_body(b.as_bytes(), None) {
            Err(PushError::Body(m)) => assert!(m.contains(want), "{b:?}: {m}"),
            other => panic!("{b:?}: {other:?}"),
        }
    }
    body("a{x=\"\\\\ \\\" \\n\"} 1\n# trailing comment");
    body("a 1\n   ");
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever arrives, parsing, pushing and rendering never panic, and a refused push
        /// leaves the group's metrics as they were.
        #[test]
        fn arbitrary_bodies_never_panic(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("# TYPE h histogram".to_string()),
                    Just("# TYPE s summary".to_string()),
                    Just("# HELP h x\\\\y".to_string()),
                    "[a-z_]{1,3}(\\{[a-z]{1,2}=\"[a-z0-9.+\\\\]{0,3}\"\\})? [0-9.eE+-]{1,4}( [0-9]{1,3})?",
                    "h_(bucket|sum|count)(\\{le=\"[0-9.+Inf]{1,4}\"\\})? [0-9]{1,3}",
                    "s(_sum|_count)?(\\{quantile=\"0.[0-9]\"\\})? [0-9]{1,3}",
                    ".{0,12}",
                ],
                0..12,
            ),
            raw in proptest::collection::vec(any::<u8>(), 0..64),
            path in "/metrics/job(@base64)?/[A-Za-z0-9_=%@/-]{0,20}",
        ) {
            let text = lines.join("\n") + "\n";
            let mut s = GroupStore::new();
            let k = key(&[("job", "j")]);
            s.push(k.clone(), body("keep 1\n"), true, None, 1).unwrap();
            let mut before = samples(&s, &k);
            for b in [text.as_bytes(), &raw[..]] {
                for ct in [None, Some(PROTO_CT)] {
                    if let Ok(parsed) = parse_body(b, ct) {
                        match s.push(k.clone(), parsed, true, None, 2) {
                            Ok(_) => before = samples(&s, &k),
                            Err(_) => prop_assert_eq!(samples(&s, &k), before.clone()),
                        }
                    }
                }
            }
            let groups: Vec<Group> = s.groups().cloned().collect();
            let rendered = render_text(&groups);
            prop_assert!(crate::text::parse_text(&rendered, 0).is_ok(), "{}", rendered);
            let _ = parse_grouping_path(&path);
        }
    }
}

#[test]
fn openmetrics_bodies_by_content_type() {
    const OM: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let om = "# TYPE jobs counter\n# HELP jobs Jobs.\njobs_total{r=\"ok\"} 3\njobs_created{r=\"ok\"} 1700000000\n# TYPE build info\nbuild_info{v=\"1\"} 1\n# TYPE lat histogram\nlat_bucket{le=\"1.0\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 1.5\nlat_count 2\n# EOF\n";
    let b = parse_body(om.as_bytes(), Some(OM)).unwrap();
    let names: Vec<&str> = b.families.keys().map(|s| s.as_str()).collect();
    assert_eq!(names, vec!["build", "jobs", "lat"]);
    assert_eq!(b.families["jobs"].kind, sextant_model::MetricType::Counter);
    assert_eq!(b.families["jobs"].help, "Jobs.");
    assert_eq!(b.families["jobs"].samples.len(), 2);
    assert_eq!(b.families["build"].kind, sextant_model::MetricType::Info);
    assert!(!b.has_timestamps);
    // OpenMetrics timestamps (seconds) are refused like text ones.
    let ts = "# TYPE g gauge\ng 1 1700000000.5\n# EOF\n";
    assert!(parse_body(ts.as_bytes(), Some(OM)).unwrap().has_timestamps);
    // OpenMetrics syntax errors name the format.
    match parse_body(b"g 1\n", Some(OM)) {
        Err(PushError::Body(m)) => {
            assert!(m.starts_with("OpenMetrics parsing error in line"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // The same body as text/plain is held to the text format 0.0.4 (no info type).
    assert!(parse_body(om.as_bytes(), Some("text/plain; version=0.0.4")).is_err());
}

#[test]
fn push_group_limit_refuses_new_groups_only() {
    let (svc, _sink, _now) = service(None);
    let svc = svc.with_limits(PushLimits {
        max_groups: 2,
        ..Default::default()
    });
    svc.push(key(&[("job", "a")]), b"m 1\n", None, true, None)
        .unwrap();
    svc.push(key(&[("job", "b")]), b"m 1\n", None, true, None)
        .unwrap();
    let e = svc
        .push(key(&[("job", "c")]), b"m 1\n", None, true, None)
        .unwrap_err();
    assert!(e.to_string().contains("(limit push_groups)"), "{e}");
    assert!(e.to_string().contains("the limit is 2"), "{e}");
    // Existing groups can still be replaced.
    svc.push(key(&[("job", "a")]), b"m 2\n", None, true, None)
        .unwrap();
    svc.delete(&key(&[("job", "b")])).unwrap();
    svc.push(key(&[("job", "c")]), b"m 1\n", None, true, None)
        .unwrap();
}

#[test]
fn push_request_size_limits() {
    let (svc, _sink, _now) = service(None);
    let svc = svc.with_limits(PushLimits {
        max_series_per_request: 2,
        ..Default::default()
    });
    let e = svc
        .push(
            key(&[("job", "a")]),
            b"m{x=\"1\"} 1\nm{x=\"2\"} 1\nm{x=\"3\"} 1\n",
            None,
            true,
            None,
        )
        .unwrap_err();
    assert!(e.to_string().contains("(limit series_per_request)"), "{e}");
}
