//! Parser tests over reports written by the real tools (pytest xunit1/xunit2, cargo-nextest)
//! and hand-written ones in the documented formats of surefire, Gradle, jest-junit,
//! go-junit-report and PHPUnit (testdata/junit/), plus hostile input; and the analyses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::history::{self, Run, StreamKey};
use super::service::JunitRuns;
use super::*;
use crate::remote_write::WriteBatch;
use crate::{Sink, SinkError, Stored};

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/junit")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn outcomes(r: &Report) -> Vec<(String, String, Outcome, u32)> {
    r.suites
        .iter()
        .flat_map(|s| {
            s.cases
                .iter()
                .map(|c| (s.name.clone(), c.name.clone(), c.outcome, c.flaky_reruns))
        })
        .collect()
}

#[test]
fn pytest_xunit1_and_xunit2() {
    for f in ["pytest-xunit1.xml", "pytest-xunit2.xml"] {
        let r = parse(&fixture(f)).unwrap();
        assert_eq!(r.suites.len(), 1, "{f}");
        let s = &r.suites[0];
        assert_eq!(s.name, "pytest");
        let got: Vec<(&str, Outcome)> = s
            .cases
            .iter()
            .map(|c| (c.name.as_str(), c.outcome))
            .collect();
        assert_eq!(
            got,
            vec![
                ("test_ok", Outcome::Passed),
                ("test_fails", Outcome::Failed),
                ("test_skipped", Outcome::Skipped),
                ("test_error", Outcome::Errored),
                ("test_xfail", Outcome::Skipped),
                ("test_property", Outcome::Passed),
                ("test_in_class", Outcome::Passed),
            ],
            "{f}"
        );
        assert!(s.cases[1]
            .message
            .starts_with("AssertionError: strings <differ> & \"quoted\"\nassert"));
        assert_eq!(
            s.cases[3].message,
            "failed on setup with \"RuntimeError: setup exploded\""
        );
        assert_eq!(
            s.cases[5].properties,
            vec![("category".to_string(), "integration".to_string())]
        );
        assert_eq!(s.cases[6].classname, "test_sample.TestGroup");
        assert!(s.time.is_some());
    }
}

#[test]
fn nextest_flaky_and_rerun_failures() {
    let r = parse(&fixture("nextest.xml")).unwrap();
    assert_eq!(
        outcomes(&r),
        vec![
            ("nx".into(), "tests::flaky".into(), Outcome::Passed, 1),
            ("nx".into(), "tests::passes".into(), Outcome::Passed, 0),
            ("nx".into(), "tests::fails".into(), Outcome::Failed, 1),
        ]
    );
    let fails = &r.suites[0].cases[2];
    assert_eq!(fails.classname, "nx");
    assert_eq!(
        fails.message,
        "thread 'tests::fails' (2691) panicked at src/lib.rs:6:18"
    );
    assert!((fails.time - 0.315).abs() < 1e-9);
}

#[test]
fn surefire_flaky_rerun_and_properties() {
    let r = parse(&fixture("surefire.xml")).unwrap();
    let s = &r.suites[0];
    assert_eq!(s.name, "com.example.OrderServiceTest");
    assert_eq!(s.time, Some(1234.5));
    assert!(s
        .properties
        .contains(&("category".to_string(), "unit".to_string())));
    assert_eq!(
        outcomes(&r)
            .into_iter()
            .map(|(_, n, o, f)| (n, o, f))
            .collect::<Vec<_>>(),
        vec![
            ("createsOrder".into(), Outcome::Passed, 0),
            ("retriesPayment".into(), Outcome::Passed, 1),
            ("rejectsEmptyCart".into(), Outcome::Failed, 2),
            ("loadsConfig".into(), Outcome::Errored, 0),
            ("slowPath".into(), Outcome::Skipped, 0),
        ]
    );
    assert_eq!(
        s.cases[2].message,
        "cart must not be empty ==> expected: <true> but was: <false>"
    );
}

#[test]
fn jest_go_gradle_nested() {
    let r = parse(&fixture("jest-junit.xml")).unwrap();
    assert_eq!(r.suites[0].name, "src/cart.test.ts");
    let c = &r.suites[0].cases[1];
    assert_eq!(c.outcome, Outcome::Failed);
    // No message attribute: the element's text is the message.
    assert!(c
        .message
        .starts_with("Error: expect(received).toBe(expected)"));
    assert!(c.message.contains("Object.<anonymous>"));
    assert_eq!(r.suites[0].cases[2].outcome, Outcome::Skipped);

    let r = parse(&fixture("go-junit-report.xml")).unwrap();
    assert_eq!(r.suites[0].name, "example.com/shop/cart");
    assert_eq!(r.suites[0].properties[0].0, "go.version");
    assert_eq!(r.suites[0].cases[1].name, "TestTotal/with_tax");
    assert_eq!(r.suites[0].cases[1].outcome, Outcome::Failed);

    let r = parse(&fixture("gradle.xml")).unwrap();
    assert_eq!(r.cases(), 3);
    let (_, rows) = history::rows(&r);
    // The retried test is one row: passed on the retry, one failed attempt.
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].name, "releasesStock()");
    assert_eq!(rows[1].outcome, Outcome::Passed);
    assert_eq!(rows[1].reruns, 1);
    assert_eq!(rows[1].category, "integration");

    let r = parse(&fixture("nested.xml")).unwrap();
    let names: Vec<&str> = r.suites.iter().map(|s| s.name.as_str()).collect();
    // The innermost suite's name; an unnamed suite takes its parent's.
    assert_eq!(names, vec!["Tests\\Unit\\MathTest", "All"]);
}

fn err(input: &str) -> ParseError {
    parse(input.as_bytes()).expect_err(input)
}

#[test]
fn hostile_and_malformed_input_is_refused_with_a_position() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<testsuite name="&lol3;"><testcase name="x"/></testsuite>"#;
    let e = err(laughs);
    assert_eq!((e.line, e.column), (2, 1), "{e}");
    assert!(e.msg.contains("DOCTYPE"), "{e}");

    let e = err("<testsuite name=\"s\"><testcase name=\"&lol;\"/></testsuite>");
    assert!(e.to_string().contains("line 1"), "{e}");
    assert!(e.msg.contains("lol"), "{e}");

    let e = err("<testsuite name=\"s\">\n  <testcase name=\"a\">\n    <failure>x &xxe; y</failure></testcase></testsuite>");
    assert_eq!(e.line, 3, "{e}");
    assert!(e.msg.contains("undefined entity &xxe;"), "{e}");

    let e = err("<testsuites>\n<testsuite name=\"s\">\n<testcase name=\"a\" time=\"0.1\">");
    assert!(e.msg.contains("truncated"), "{e}");

    let e = err("<testsuites><testsuite name=\"s\"><testcase name=\"a\"></testsuite></testsuites>");
    assert!(e.msg.contains("malformed"), "{e}");

    let huge = format!(
        "<testsuite name=\"s\">\n<testcase name=\"a\" classname=\"{}\"/></testsuite>",
        "x".repeat(200_000)
    );
    let e = err(&huge);
    assert_eq!(e.line, 2, "{e}");
    assert!(e.msg.contains("classname"), "{e}");

    let e = err("<testsuite name=\"s\"><testcase name=\"a\" time=\"-1\"/></testsuite>");
    assert!(e.msg.contains("testcase time"), "{e}");
    let e = err("<testsuite name=\"s\"><testcase name=\"a\" time=\"NaN\"/></testsuite>");
    assert!(e.msg.contains("testcase time"), "{e}");
    let e = err("<testsuite name=\"s\"><testcase classname=\"c\"/></testsuite>");
    assert!(e.msg.contains("without a name"), "{e}");
    let e = err("<html><body/></html>");
    assert!(e.msg.contains("root element is <html>"), "{e}");
    let e = err("");
    assert!(e.msg.contains("no <testsuites>"), "{e}");
    let e = err("{\"tests\": 1}");
    assert!(
        e.msg.contains("no <testsuites>") || e.msg.contains("text outside"),
        "{e}"
    );
    let e = parse(b"<testsuite name=\"\xff\"/>").unwrap_err();
    assert!(e.msg.contains("UTF-8"), "{e}");

    let deep = "<testsuite>".repeat(100) + &"</testsuite>".repeat(100);
    assert!(err(&deep).msg.contains("nest deeper"));

    let limits = Limits {
        max_cases: 3,
        ..Limits::default()
    };
    let many = format!(
        "<testsuite name=\"s\">{}</testsuite>",
        "<testcase name=\"a\"/>".repeat(4)
    );
    let e = parse_with(many.as_bytes(), &limits).unwrap_err();
    assert!(e.msg.contains("more than 3 test cases"), "{e}");
}

#[test]
fn long_messages_are_cut_not_refused() {
    let doc = format!(
        "<testsuite name=\"s\"><testcase name=\"a\"><failure>{}é</failure></testcase></testsuite>",
        "y".repeat(10_000)
    );
    let r = parse(doc.as_bytes()).unwrap();
    assert_eq!(r.suites[0].cases[0].message.len(), 4096);
}

#[test]
fn categories() {
    let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    assert_eq!(
        history::category(&p("category", "slow"), &[], "x", "s"),
        "slow"
    );
    assert_eq!(history::category(&[], &p("category", "db"), "x", "s"), "db");
    assert_eq!(
        history::category(&[], &[], "tests.integration.test_db", "pytest"),
        "integration"
    );
    assert_eq!(
        history::category(&[], &[], "Cart", "e2e/checkout.spec.ts"),
        "e2e"
    );
    assert_eq!(
        history::category(&[], &[], "test_math", "pytest"),
        "uncategorized"
    );
}

fn run(id: i64, commit: &str, cases: &[(&str, Outcome)]) -> Run {
    Run {
        id,
        commit: commit.to_string(),
        ts: id * 1000,
        suites: BTreeMap::new(),
        cases: cases
            .iter()
            .map(|(n, o)| history::CaseRow {
                suite: "s".into(),
                classname: "c".into(),
                name: n.to_string(),
                category: "uncategorized".into(),
                outcome: *o,
                duration: 0.1,
                reruns: 0,
                message: if o.is_failure() {
                    format!("{n} broke")
                } else {
                    String::new()
                },
            })
            .collect(),
    }
}

#[test]
fn flaky_new_failures_and_streaks() {
    use Outcome::*;
    // Newest first. "same" fails then passes on commit b (one flip); "flip" alternates;
    // "broke" is a regression (one flip), "steady" always passes.
    let runs = vec![
        run(
            5,
            "e",
            &[
                ("same", Passed),
                ("flip", Failed),
                ("broke", Failed),
                ("steady", Passed),
            ],
        ),
        run(
            4,
            "d",
            &[
                ("same", Passed),
                ("flip", Passed),
                ("broke", Failed),
                ("steady", Passed),
            ],
        ),
        run(
            3,
            "b",
            &[
                ("same", Passed),
                ("flip", Failed),
                ("broke", Passed),
                ("steady", Passed),
            ],
        ),
        run(
            2,
            "b",
            &[
                ("same", Failed),
                ("flip", Passed),
                ("broke", Passed),
                ("steady", Passed),
            ],
        ),
    ];
    let f = history::flaky(&runs);
    let names: Vec<(&str, &str)> = f
        .iter()
        .map(|f| (f.test.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![("flip", "same_commit,flips"), ("same", "same_commit")]
    );
    assert_eq!(f[0].flips, 3);
    assert_eq!(f[1].commits, vec!["b".to_string()]);
    assert_eq!(f[0].last_failure_message, "flip broke");

    let a = history::analyse_runs(&runs);
    let new: Vec<&str> = a.new_failures.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(new, vec!["flip"]);
    let fails = history::failures(&runs, &a.new_failures);
    let got: Vec<(&str, bool, usize)> = fails
        .iter()
        .map(|f| (f.test.as_str(), f.new, f.failing_runs))
        .collect();
    assert_eq!(got, vec![("flip", true, 1), ("broke", false, 2)]);
}

/// A sink that keeps every batch.
#[derive(Default)]
struct VecSink(Mutex<Vec<WriteBatch>>);

impl Sink for VecSink {
    fn store(&self, batch: WriteBatch) -> Result<Stored, SinkError> {
        self.0.lock().unwrap().push(batch);
        Ok(Stored::default())
    }
}

fn values(batch: &WriteBatch, name: &str) -> Vec<(String, f64)> {
    batch
        .series
        .iter()
        .filter(|s| s.labels.metric_name() == Some(name))
        .map(|s| (s.labels.to_string(), s.samples[0].v))
        .collect()
}

#[test]
fn service_series_restart_and_staleness() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("junit.db");
    let sink = Arc::new(VecSink::default());
    let clock = || -> super::service::Clock { Box::new(|| 1_000_000) };
    let key = StreamKey {
        job: "ci".into(),
        labels: vec![("branch".into(), "main".into())],
    };
    let svc = JunitRuns::open(sink.clone(), Some(&db), Duration::from_secs(15), clock()).unwrap();
    let r1 = parse(&fixture("surefire.xml")).unwrap();
    let sum = svc.upload(key.clone(), "", "abc", &r1).unwrap();
    assert_eq!(
        (sum.passed, sum.failed, sum.errored, sum.skipped),
        (2, 1, 1, 1)
    );
    assert_eq!(
        sum.flaky,
        vec!["com.example.OrderServiceTest: com.example.OrderServiceTest::retriesPayment"]
    );
    let first = sink.0.lock().unwrap().last().unwrap().clone();
    let cases = values(&first, "sextant_test_cases");
    assert!(cases.contains(&(
        r#"sextant_test_cases{branch="main", job="ci", result="passed", suite="com.example.OrderServiceTest"}"#.to_string(),
        2.0
    )), "{cases:?}");
    assert_eq!(values(&first, "sextant_test_flaky").len(), 1);
    assert_eq!(values(&first, "sextant_test_category_cases").len(), 4);
    assert_eq!(
        values(&first, "sextant_test_suite_duration_seconds")[0].1,
        1234.5
    );

    // A second run without the flaky test's rerun: the per-test flaky series stays (the
    // window remembers), the suite's counts change.
    let r2 = parse(&fixture("jest-junit.xml")).unwrap();
    svc.upload(key.clone(), "", "def", &r2).unwrap();
    let second = sink.0.lock().unwrap().last().unwrap().clone();
    // The surefire suite left the latest run: its per-suite series are marked stale.
    let stale: Vec<String> = second
        .series
        .iter()
        .filter(|s| sextant_model::is_stale_nan(s.samples[0].v))
        .map(|s| s.labels.to_string())
        .collect();
    assert!(
        stale
            .iter()
            .any(|l| l.contains("sextant_test_cases{") && l.contains("OrderServiceTest")),
        "{stale:?}"
    );
    assert_eq!(values(&second, "sextant_test_flaky").len(), 1);
    let before: BTreeMap<String, f64> = second
        .series
        .iter()
        .filter(|s| !sextant_model::is_stale_nan(s.samples[0].v))
        .map(|s| (s.labels.to_string(), s.samples[0].v))
        .collect();
    drop(svc);

    // After a restart the same series are re-appended.
    let sink2 = Arc::new(VecSink::default());
    let svc = JunitRuns::open(sink2.clone(), Some(&db), Duration::from_secs(15), clock()).unwrap();
    svc.tick();
    let again = sink2.0.lock().unwrap().last().unwrap().clone();
    let after: BTreeMap<String, f64> = again
        .series
        .iter()
        .map(|s| (s.labels.to_string(), s.samples[0].v))
        .collect();
    assert_eq!(before, after);
    assert_eq!(svc.failures(Some("ci")).unwrap().len(), 1);
    assert_eq!(svc.flaky(Some("ci")).unwrap().len(), 1);
    assert_eq!(svc.flaky(Some("other")).unwrap().len(), 0);
    let slow = svc.slowest(None, 2).unwrap();
    assert_eq!(slow.len(), 2);
    assert_eq!(slow[0].1.test, "Cart totals with tax");
}

#[test]
fn one_run_in_several_files() {
    let sink = Arc::new(VecSink::default());
    let svc = JunitRuns::open(sink, None, Duration::from_secs(15), Box::new(|| 5_000)).unwrap();
    let key = StreamKey {
        job: "ci".into(),
        labels: vec![],
    };
    let part = |name: &str, outcome: &str| {
        parse(format!("<testsuite name=\"{name}\" time=\"2\"><testcase classname=\"c\" name=\"t\">{outcome}</testcase><testcase name=\"u\"/></testsuite>").as_bytes()).unwrap()
    };
    let s1 = svc
        .upload(key.clone(), "run-1", "abc", &part("a", ""))
        .unwrap();
    let s2 = svc
        .upload(key.clone(), "run-1", "abc", &part("b", "<failure/>"))
        .unwrap();
    // The second file joined the first file's run.
    assert_eq!(s1.run_id, s2.run_id);
    assert_eq!((s2.suites, s2.tests, s2.passed, s2.failed), (2, 4, 3, 1));
    // Another run key starts a new run, whose result is compared with the merged one.
    let s3 = svc
        .upload(key.clone(), "run-2", "def", &part("a", "<failure/>"))
        .unwrap();
    assert_ne!(s3.run_id, s1.run_id);
    assert_eq!((s3.suites, s3.tests), (1, 2));
    assert_eq!(s3.new_failures, vec!["a: c::t"]);
    // Without a run key every upload is a run.
    let s4 = svc.upload(key.clone(), "", "def", &part("a", "")).unwrap();
    let s5 = svc.upload(key, "", "def", &part("a", "")).unwrap();
    assert!(s4.run_id != s3.run_id && s5.run_id != s4.run_id);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Arbitrary bytes, and real reports with bytes overwritten or cut, never panic the parser.
    #[test]
    fn parser_never_panics(
        junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        file in 0usize..4,
        edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..8),
        cut in proptest::prelude::any::<usize>(),
    ) {
        let _ = parse(&junk);
        let name = ["pytest-xunit1.xml", "nextest.xml", "surefire.xml", "nested.xml"][file];
        let mut doc = fixture(name);
        for (at, b) in edits {
            let i = at % doc.len();
            doc[i] = b;
        }
        let _ = parse(&doc);
        doc.truncate(cut % (doc.len() + 1));
        if let Ok(r) = parse(&doc) {
            let _ = history::rows(&r);
        }
    }
}
