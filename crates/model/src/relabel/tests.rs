//! Cases from Prometheus' relabel_test.go and documentation, plus properties.

use super::*;
use proptest::prelude::*;

fn ls(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn rule(
    source: Option<&[&str]>,
    regex: Option<&str>,
    target: Option<&str>,
    replacement: Option<&str>,
    action: Option<&str>,
) -> Result<RelabelConfig, RelabelError> {
    RelabelConfig::from_raw(RawRelabelConfig {
        source_labels: source.map(|s| s.iter().map(|x| x.to_string()).collect()),
        regex: regex.map(String::from),
        target_label: target.map(String::from),
        replacement: replacement.map(String::from),
        action: action.map(String::from),
        ..Default::default()
    })
}

fn ok(
    source: Option<&[&str]>,
    regex: Option<&str>,
    target: Option<&str>,
    replacement: Option<&str>,
    action: Option<&str>,
) -> RelabelConfig {
    rule(source, regex, target, replacement, action).expect("valid rule")
}

#[test]
fn md5_vectors() {
    let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(hex(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(
        hex(md5(b"The quick brown fox jumps over the lazy dog")),
        "9e107d9d372bb6826bd81d3542a419d6"
    );
    // Exactly one block after padding boundary (56 bytes) and longer than one block.
    assert_eq!(hex(md5(&[b'a'; 56])), "3b0c8ac703f828b04c6c197006d17218");
    assert_eq!(hex(md5(&[b'a'; 100])), "36a92cc94a9e0fa21f625f8bfb007adf");
}

#[test]
fn replace_with_template() {
    let input = ls(&[("a", "foo"), ("b", "bar"), ("c", "baz")]);
    let r = ok(
        Some(&["a"]),
        Some("f(.*)"),
        Some("d"),
        Some("ch${1}-ch${1}"),
        None,
    );
    assert_eq!(
        process(&input, &[r]),
        Some(ls(&[
            ("a", "foo"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "choo-choo")
        ]))
    );
}

#[test]
fn replace_multiple_sources_and_chained_rules() {
    let input = ls(&[("a", "foo"), ("b", "bar"), ("c", "baz")]);
    let r1 = ok(
        Some(&["a", "b"]),
        Some("f(.*);(.*)r"),
        Some("a"),
        Some("b${1}${2}m"),
        None,
    );
    let r2 = ok(
        Some(&["c", "a"]),
        Some("(b).*b(.*)ba(.*)"),
        Some("d"),
        Some("$1$2$2$3"),
        Some("replace"),
    );
    assert_eq!(
        process(&input, &[r1, r2]),
        Some(ls(&[
            ("a", "boobam"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "boooom")
        ]))
    );
}

#[test]
fn regex_is_anchored_and_no_match_changes_nothing() {
    let input = ls(&[("a", "foo")]);
    let r = ok(Some(&["a"]), Some("f"), Some("b"), Some("x"), None);
    assert_eq!(process(&input, &[r]), Some(input.clone()));
    let r = ok(Some(&["a"]), Some("o+"), Some("b"), Some("x"), None);
    assert_eq!(process(&input, &[r]), Some(input));
}

#[test]
fn empty_replacement_deletes_target() {
    let input = ls(&[("a", "foo"), ("b", "bar")]);
    let r = ok(Some(&["a"]), Some("f(.*)"), Some("b"), Some(""), None);
    assert_eq!(process(&input, &[r]), Some(ls(&[("a", "foo")])));
}

#[test]
fn templated_target_label() {
    let input = ls(&[("a", "some-name-value")]);
    let r = ok(
        Some(&["a"]),
        Some("some-([^-]+)-([^,]+)"),
        Some("${1}"),
        Some("${2}"),
        None,
    );
    assert_eq!(
        process(&input, &[r]),
        Some(ls(&[("a", "some-name-value"), ("name", "value")]))
    );
    // A target that expands to an invalid label name is ignored.
    let input = ls(&[("a", "some-0-value")]);
    let r = ok(
        Some(&["a"]),
        Some("some-([^-]+)-([^,]+)"),
        Some("${1}"),
        Some("${2}"),
        None,
    );
    assert_eq!(process(&input, &[r]), Some(input));
}

#[test]
fn default_rule_copies_source() {
    // Only source_labels and target_label: regex (.*), replacement $1.
    let input = ls(&[("__address__", "h:9100")]);
    let r = ok(Some(&["__address__"]), None, Some("instance"), None, None);
    assert_eq!(
        process(&input, &[r]),
        Some(ls(&[("__address__", "h:9100"), ("instance", "h:9100")]))
    );
}

#[test]
fn keep_and_drop() {
    let input = ls(&[("a", "foo"), ("b", "bar")]);
    let drop = ok(Some(&["a"]), Some(".*o.*"), None, None, Some("drop"));
    assert_eq!(process(&input, &[drop]), None);
    let drop_nomatch = ok(Some(&["a"]), Some("f"), None, None, Some("drop"));
    assert_eq!(process(&input, &[drop_nomatch]), Some(input.clone()));
    let keep = ok(Some(&["a"]), Some("no-match"), None, None, Some("Keep"));
    assert_eq!(process(&input, &[keep]), None);
    let keep = ok(Some(&["a"]), Some("f.*"), None, None, Some("keep"));
    assert_eq!(process(&input, &[keep]), Some(input.clone()));
    // A missing source label is the empty string.
    let keep_empty = ok(Some(&["missing"]), Some(""), None, None, Some("keep"));
    assert_eq!(process(&input, &[keep_empty]), Some(input));
}

#[test]
fn hashmod_matches_prometheus() {
    let input = ls(&[("a", "foo"), ("b", "bar"), ("c", "baz")]);
    let mut raw = RawRelabelConfig {
        source_labels: Some(vec!["c".into()]),
        target_label: Some("d".into()),
        modulus: Some(1000),
        action: Some("hashmod".into()),
        ..Default::default()
    };
    let r = RelabelConfig::from_raw(raw.clone()).unwrap();
    assert_eq!(
        process(&input, &[r]),
        Some(ls(&[
            ("a", "foo"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "976")
        ]))
    );
    raw.modulus = None;
    assert_eq!(
        RelabelConfig::from_raw(raw).unwrap_err().0,
        "relabel configuration for hashmod requires non-zero modulus"
    );
}

#[test]
fn labelmap_labeldrop_labelkeep() {
    let input = ls(&[("a", "foo"), ("b1", "bar"), ("b2", "baz")]);
    let map = ok(
        None,
        Some("(b.*)"),
        None,
        Some("bar_${1}"),
        Some("labelmap"),
    );
    assert_eq!(
        process(&input, &[map]),
        Some(ls(&[
            ("a", "foo"),
            ("b1", "bar"),
            ("b2", "baz"),
            ("bar_b1", "bar"),
            ("bar_b2", "baz")
        ]))
    );
    let meta = ls(&[
        ("__meta_my_bar", "aaa"),
        ("__meta_my_baz", "bbb"),
        ("__meta_other", "ccc"),
    ]);
    let map = ok(
        None,
        Some("__meta_(my.*)"),
        None,
        Some("${1}"),
        Some("labelmap"),
    );
    assert_eq!(
        process(&meta, &[map]),
        Some(ls(&[
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
            ("my_bar", "aaa"),
            ("my_baz", "bbb")
        ]))
    );
    let drop = ok(None, Some("(b.*)"), None, None, Some("labeldrop"));
    assert_eq!(process(&input, &[drop]), Some(ls(&[("a", "foo")])));
    let keep = ok(None, Some("(b.*)"), None, None, Some("labelkeep"));
    assert_eq!(
        process(&input, &[keep]),
        Some(ls(&[("b1", "bar"), ("b2", "baz")]))
    );
}

#[test]
fn lowercase_uppercase() {
    let input = ls(&[("foo", "BAR"), ("x", "MiXeD")]);
    let lo = ok(
        Some(&["foo"]),
        None,
        Some("foo_lower"),
        None,
        Some("lowercase"),
    );
    let up = ok(Some(&["x"]), None, Some("x_upper"), None, Some("uppercase"));
    assert_eq!(
        process(&input, &[lo, up]),
        Some(ls(&[
            ("foo", "BAR"),
            ("foo_lower", "bar"),
            ("x", "MiXeD"),
            ("x_upper", "MIXED")
        ]))
    );
}

#[test]
fn keepequal_dropequal() {
    let input = ls(&[
        ("__tmp_port", "1234"),
        ("__port1", "1234"),
        ("__port2", "5678"),
    ]);
    let keep1 = ok(
        Some(&["__tmp_port"]),
        None,
        Some("__port1"),
        None,
        Some("keepequal"),
    );
    assert_eq!(process(&input, &[keep1]), Some(input.clone()));
    let keep2 = ok(
        Some(&["__tmp_port"]),
        None,
        Some("__port2"),
        None,
        Some("keepequal"),
    );
    assert_eq!(process(&input, &[keep2]), None);
    let drop1 = ok(
        Some(&["__tmp_port"]),
        None,
        Some("__port1"),
        None,
        Some("dropequal"),
    );
    assert_eq!(process(&input, &[drop1]), None);
    let drop2 = ok(
        Some(&["__tmp_port"]),
        None,
        Some("__port2"),
        None,
        Some("dropequal"),
    );
    assert_eq!(process(&input, &[drop2]), Some(input));
}

#[test]
fn config_errors_like_prometheus() {
    let e = |r: Result<RelabelConfig, RelabelError>| r.unwrap_err().0;
    assert_eq!(
        e(rule(Some(&["a"]), None, None, None, Some("replace"))),
        "relabel configuration for replace action requires 'target_label' value"
    );
    assert_eq!(
        e(rule(Some(&["a"]), None, Some("0bad"), None, None)),
        "\"0bad\" is invalid 'target_label' for replace action"
    );
    assert_eq!(
        e(rule(
            Some(&["a"]),
            None,
            Some("${1}x"),
            None,
            Some("lowercase")
        )),
        "\"${1}x\" is invalid 'target_label' for lowercase action"
    );
    assert_eq!(
        e(rule(
            Some(&["a"]),
            None,
            Some("b"),
            Some("x"),
            Some("uppercase")
        )),
        "'replacement' can not be set for uppercase action"
    );
    assert_eq!(
        e(rule(
            Some(&["a"]),
            Some("x"),
            Some("b"),
            None,
            Some("keepequal")
        )),
        "keepequal action requires only 'source_labels' and `target_label`, and no other fields"
    );
    assert_eq!(
        e(rule(Some(&["a"]), Some("x"), None, None, Some("labeldrop"))),
        "labeldrop action requires only 'regex', and no other fields"
    );
    assert_eq!(
        e(rule(None, None, None, Some("0-x"), Some("labelmap"))),
        "\"0-x\" is invalid 'replacement' for labelmap action"
    );
    assert_eq!(
        e(rule(None, None, None, None, Some("explode"))),
        "unknown relabel action \"explode\""
    );
    assert_eq!(
        e(rule(None, None, None, None, Some(""))),
        "relabel action cannot be empty"
    );
    assert!(
        e(rule(Some(&["a"]), Some("(unclosed"), Some("b"), None, None))
            .starts_with("invalid regex \"(unclosed\"")
    );
    assert_eq!(
        e(rule(Some(&["a-b"]), None, Some("b"), None, None)),
        "\"a-b\" is not a valid label name in 'source_labels'"
    );
}

fn label_set() -> impl Strategy<Value = Labels> {
    proptest::collection::btree_map("[a-c][a-c0-9_]{0,3}", "[a-zA-Z0-9;]{0,6}", 0..6)
        .prop_map(Labels::from_pairs)
}

proptest! {
    #[test]
    fn prop_replace_copies_value(input in label_set(), src in "[a-c][a-c0-9_]{0,3}") {
        let r = ok(Some(&[src.as_str()]), None, Some("zz"), None, None);
        let out = process(&input, &[r]).expect("replace never drops");
        prop_assert_eq!(out.get("zz"), input.get(&src));
        // Everything else is untouched.
        for l in input.iter() {
            prop_assert_eq!(out.get(&l.name), Some(l.value.as_str()));
        }
    }

    #[test]
    fn prop_keep_xor_drop(input in label_set(), src in "[a-c]", re in "[a-zA-Z0-9]{0,2}(\\.\\*)?") {
        let keep = ok(Some(&[src.as_str()]), Some(&re), None, None, Some("keep"));
        let drop = ok(Some(&[src.as_str()]), Some(&re), None, None, Some("drop"));
        let k = process(&input, &[keep]).is_some();
        let d = process(&input, &[drop]).is_some();
        prop_assert!(k != d);
    }

    #[test]
    fn prop_labeldrop_then_labelkeep_partition(input in label_set(), re in "[a-c](\\.\\*)?") {
        let drop = ok(None, Some(&re), None, None, Some("labeldrop"));
        let keep = ok(None, Some(&re), None, None, Some("labelkeep"));
        let dropped = process(&input, &[drop]).unwrap();
        let kept = process(&input, std::slice::from_ref(&keep)).unwrap();
        prop_assert_eq!(dropped.len() + kept.len(), input.len());
        prop_assert_eq!(process(&kept, &[keep]).unwrap(), kept);
    }

    #[test]
    fn prop_hashmod_in_range(input in label_set(), m in 1u64..10_000) {
        let r = RelabelConfig::from_raw(RawRelabelConfig {
            source_labels: Some(vec!["a".into(), "b".into()]),
            target_label: Some("shard".into()),
            modulus: Some(m),
            action: Some("hashmod".into()),
            ..Default::default()
        }).unwrap();
        let out = process(&input, std::slice::from_ref(&r)).unwrap();
        let v: u64 = out.get("shard").unwrap().parse().unwrap();
        prop_assert!(v < m);
        // Deterministic.
        prop_assert_eq!(process(&input, &[r]).unwrap(), out);
    }

    #[test]
    fn prop_labelmap_preserves_originals(input in label_set()) {
        let map = ok(None, Some("([a-c])(.*)"), None, Some("m_${1}${2}"), Some("labelmap"));
        let out = process(&input, &[map]).unwrap();
        for l in input.iter() {
            prop_assert_eq!(out.get(&l.name), Some(l.value.as_str()));
            let mapped = format!("m_{}", l.name);
            prop_assert_eq!(out.get(&mapped), Some(l.value.as_str()));
        }
    }
}
