use std::sync::{Arc, Mutex};

use sextant_model::{HistogramValue, Labels};

use super::*;
use crate::remote_write::WriteBatch;
use crate::{Sink, SinkError, Stored};

const NOW: i64 = 1_750_000_000_000;

#[derive(Default)]
struct VecSink(Mutex<Vec<WriteBatch>>);

impl Sink for VecSink {
    fn store(&self, batch: WriteBatch) -> Result<Stored, SinkError> {
        self.0.lock().unwrap().push(batch);
        Ok(Stored::default())
    }
    fn last_sample(&self, labels: &Labels) -> Option<(i64, Result<f64, HistogramValue>)> {
        let b = self.0.lock().unwrap();
        b.iter()
            .flat_map(|b| b.series.iter())
            .filter(|s| &s.labels == labels)
            .flat_map(|s| s.samples.iter())
            .last()
            .map(|s| (s.t, Ok(s.v)))
    }
}

impl VecSink {
    fn value(&self, sel: &str) -> Option<f64> {
        let b = self.0.lock().unwrap();
        b.iter()
            .flat_map(|b| b.series.iter())
            .filter(|s| s.labels.to_string() == sel)
            .flat_map(|s| s.samples.iter())
            .last()
            .map(|s| s.v)
    }
}

fn err(body: &str, ndjson: bool) -> EventError {
    parse_events(body.as_bytes(), ndjson, NOW).unwrap_err()
}

#[test]
fn errors_name_the_field_as_a_json_pointer() {
    let e = err(
        r#"{"events":[{"agent":"a","outcome":"success"},{"agent":"a","outcome":"success","tokens":{"input":-5}}]}"#,
        false,
    );
    assert_eq!(e.pointer, "/events/1/tokens/input");
    assert!(e.message.contains("negative"), "{e}");
    let e = err(
        r#"[{"agent":"a","outcome":"success","colour":"red"}]"#,
        false,
    );
    assert_eq!(e.pointer, "/0/colour");
    let e = err(r#"{"outcome":"success"}"#, false);
    assert_eq!(e.pointer, "/agent");
    let e = err(
        "{\"agent\":\"a\",\"outcome\":\"success\"}\n\n{\"agent\":\"a\",\"outcome\":\"won\"}\n",
        true,
    );
    assert_eq!((e.line, e.pointer.as_str()), (Some(3), "/outcome"));
    assert_eq!(e.to_string().split(':').next(), Some("line 3"));
    let e = err(
        r#"{"agent":"a","outcome":"success","duration_seconds":31536000}"#,
        false,
    );
    assert_eq!(e.pointer, "/duration_seconds");
    let e = err(
        r#"{"agent":"a","outcome":"success","timestamp":"2999-01-01T00:00:00Z"}"#,
        false,
    );
    assert_eq!(e.pointer, "/timestamp");
    assert!(e.message.contains("future"), "{e}");
    let e = err(
        r#"{"agent":"a","outcome":"success","labels":{"role":"x"}}"#,
        false,
    );
    assert_eq!(e.pointer, "/labels/role");
    let e = err(
        r#"{"agent":"a","outcome":"success","tool_calls":[{"name":"x","count":1,"errors":2}]}"#,
        false,
    );
    assert_eq!(e.pointer, "/tool_calls/0/errors");
    let long = "x".repeat(129);
    let e = err(
        &format!(r#"{{"agent":"{long}","outcome":"success"}}"#),
        false,
    );
    assert_eq!(e.pointer, "/agent");
    let e = err("{", false);
    assert!(e.message.contains("invalid JSON"), "{e}");
}

#[test]
fn events_become_counters_and_a_histogram() {
    let sink = Arc::new(VecSink::default());
    let svc = AgentEvents::open(sink.clone(), EventsConfig::default(), Box::new(|| NOW));
    let evs = parse_events(
        br#"[{"agent":"coder","role":"dev","phase":"impl","model":"m1","provider":"p","outcome":"success",
             "duration_seconds":42,"tokens":{"input":100,"output":20},"self_eval":"pass","revisions":2,
             "escalations":{"advisor":1},"tool_calls":[{"name":"bash","count":3,"errors":1}],"event_id":"e1","session_id":"s1"},
            {"agent":"coder","role":"dev","phase":"impl","model":"m1","provider":"p","outcome":"success","duration_seconds":400,"tokens":{"input":5},"event_id":"e1","session_id":"s1"},
            {"agent":"coder","role":"dev","phase":"impl","model":"m1","provider":"p","outcome":"failure","duration_seconds":400,"tokens":{"input":5},"self_eval":"fail"}]"#,
        false,
        NOW,
    )
    .unwrap();
    let out = svc.ingest(&evs).unwrap();
    assert_eq!((out.accepted, out.duplicates), (2, 1));
    let v = |s: &str| sink.value(s);
    assert_eq!(
        v(
            r#"sextant_agent_sessions_total{agent="coder", model="m1", outcome="success", phase="impl", role="dev"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            r#"sextant_agent_tokens_total{agent="coder", direction="input", model="m1", phase="impl", provider="p", role="dev"}"#
        ),
        Some(105.0)
    );
    assert_eq!(
        v(r#"sextant_agent_self_eval_total{agent="coder", result="fail", role="dev"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(
            r#"sextant_agent_session_duration_seconds_bucket{agent="coder", le="60", phase="impl", role="dev"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            r#"sextant_agent_session_duration_seconds_bucket{agent="coder", le="+Inf", phase="impl", role="dev"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        v(r#"sextant_agent_session_duration_seconds_sum{agent="coder", phase="impl", role="dev"}"#),
        Some(442.0)
    );
    assert_eq!(
        v(r#"sextant_agent_tool_calls_total{agent="coder", result="error", tool="bash"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(r#"sextant_agent_tool_calls_total{agent="coder", result="success", tool="bash"}"#),
        Some(2.0)
    );
    // Same ids again: nothing counted.
    let out = svc.ingest(&evs[..1]).unwrap();
    assert_eq!((out.accepted, out.duplicates), (0, 1));
}

#[test]
fn counters_continue_from_storage_and_file_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent_events.json");
    let sink = Arc::new(VecSink::default());
    let cfg = EventsConfig {
        file: Some(file.clone()),
        ..EventsConfig::default()
    };
    let ev = parse_events(
        br#"{"agent":"a","outcome":"success","event_id":"1"}"#,
        false,
        NOW,
    )
    .unwrap();
    let sel = r#"sextant_agent_sessions_total{agent="a", outcome="success"}"#;
    {
        let svc = AgentEvents::open(sink.clone(), cfg.clone(), Box::new(|| NOW));
        svc.ingest(&ev).unwrap();
        svc.flush().unwrap();
    }
    // Restored from the file: the id is still known, the series is re-written by tick.
    let svc = AgentEvents::open(sink.clone(), cfg, Box::new(|| NOW + 60_000));
    assert_eq!(svc.ingest(&ev).unwrap().duplicates, 1);
    assert_eq!(svc.series_count(), 2);
    // Without the file, storage still has the last value.
    let svc2 = AgentEvents::open(
        sink.clone(),
        EventsConfig::default(),
        Box::new(|| NOW + 120_000),
    );
    let ev2 = parse_events(br#"{"agent":"a","outcome":"success"}"#, false, NOW).unwrap();
    svc2.ingest(&ev2).unwrap();
    assert_eq!(sink.value(sel), Some(2.0));
}

#[test]
fn the_series_limit_refuses_the_whole_request() {
    let sink = Arc::new(VecSink::default());
    let cfg = EventsConfig {
        max_series: 3,
        ..EventsConfig::default()
    };
    let svc = AgentEvents::open(sink.clone(), cfg, Box::new(|| NOW));
    let evs = parse_events(
        br#"[{"agent":"a","outcome":"success"},{"agent":"b","outcome":"success"}]"#,
        false,
        NOW,
    )
    .unwrap();
    assert!(matches!(svc.ingest(&evs), Err(EventsError::Limit(_))));
    assert_eq!(svc.series_count(), 0);
    assert!(sink.0.lock().unwrap().is_empty());
}
