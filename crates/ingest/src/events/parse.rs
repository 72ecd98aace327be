//! Strict validation of agent event bodies against the published JSON Schema
//! (`docs/schemas/agent-event.schema.json`, embedded as [`SCHEMA_JSON`]). The schema is the
//! contract; this module implements exactly its rules by hand (no schema engine at run time) so
//! every error names the offending field as a JSON pointer, and adds the checks a static schema
//! cannot express (timestamps in the future, more tool errors than calls). An e2e test runs
//! Python's `jsonschema` over the same fixtures to keep the two in agreement.

use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The published JSON Schema of a request body.
pub const SCHEMA_JSON: &str = include_str!("../../../../docs/schemas/agent-event.schema.json");

/// Most events in one request (array, `events` envelope or JSON Lines).
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;
/// Longest label-like string (agent, role, phase, model, provider, tool, label value).
pub const MAX_NAME_CHARS: usize = 128;
/// Longest identifier (session and event ids).
pub const MAX_ID_CHARS: usize = 256;
/// Largest count per event (revisions, tool calls, escalations).
pub const MAX_COUNT: u64 = 1_000_000;
/// Largest token count per event and direction.
pub const MAX_TOKENS: u64 = 100_000_000_000;
/// Longest duration: 7 days.
pub const MAX_SECONDS: f64 = 604_800.0;
/// Most tool entries per event.
pub const MAX_TOOLS: usize = 256;
/// Most escalation kinds per event.
pub const MAX_ESCALATION_KINDS: usize = 16;
/// Most free labels per event.
pub const MAX_LABELS: usize = 8;
/// Earliest accepted timestamp: 2000-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_MS: i64 = 946_684_800_000;
/// How far in the future a timestamp may be (clock skew).
pub const MAX_FUTURE_MS: i64 = 10 * 60 * 1000;
/// Label names an event's free labels may not use (the series' own labels).
pub const RESERVED_LABELS: &[&str] = &[
    "agent",
    "role",
    "phase",
    "model",
    "provider",
    "outcome",
    "result",
    "direction",
    "tool",
    "kind",
    "le",
    "job",
    "instance",
];
/// Accepted outcomes.
pub const OUTCOMES: &[&str] = &["success", "failure", "error", "cancelled", "timeout"];

const FIELDS: &[&str] = &[
    "event_id",
    "session_id",
    "timestamp",
    "agent",
    "role",
    "phase",
    "model",
    "provider",
    "outcome",
    "duration_seconds",
    "tokens",
    "self_eval",
    "revisions",
    "escalations",
    "tool_calls",
    "labels",
];
const TOKEN_FIELDS: &[&str] = &["input", "output", "cache_read", "cache_write"];
const TOOL_FIELDS: &[&str] = &["name", "count", "errors", "duration_seconds"];

/// Token counts of one event by direction (`input`, `output`, `cache_read`, `cache_write`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_write: Option<u64>,
}

impl Tokens {
    /// The given directions with their label value.
    pub fn directions(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        [
            ("input", self.input),
            ("output", self.output),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
        ]
        .into_iter()
        .filter_map(|(d, v)| Some((d, v?)))
    }
}

/// Calls of one tool during the run.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub name: String,
    /// Calls (default 1).
    pub count: u64,
    /// Calls that failed (at most `count`).
    pub errors: u64,
    /// Total time spent in the tool.
    pub duration_seconds: Option<f64>,
}

/// One validated agent run or session.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub event_id: Option<String>,
    pub session_id: Option<String>,
    /// When the run ended, ms since the epoch.
    pub timestamp_ms: Option<i64>,
    pub agent: String,
    pub role: Option<String>,
    pub phase: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub outcome: &'static str,
    pub duration_seconds: Option<f64>,
    pub tokens: Tokens,
    /// `Some(true)` for a passed self-evaluation.
    pub self_eval: Option<bool>,
    pub revisions: Option<u64>,
    /// Escalation or advisor calls by kind, sorted by kind.
    pub escalations: Vec<(String, u64)>,
    pub tool_calls: Vec<ToolCall>,
    /// Free labels, sorted by name.
    pub labels: Vec<(String, String)>,
}

/// Why a body was refused: where (JSON Lines line, JSON pointer) and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", line.map(|l| format!("line {l}: ")).unwrap_or_default(), if pointer.is_empty() { "(document)" } else { pointer.as_str() })]
pub struct EventError {
    /// 1-based line of a JSON Lines body.
    pub line: Option<usize>,
    /// RFC 6901 JSON pointer of the offending value ("" for the whole document or line).
    pub pointer: String,
    pub message: String,
}

struct Ctx {
    line: Option<usize>,
    now_ms: i64,
}

impl Ctx {
    fn err(&self, pointer: &str, message: impl Into<String>) -> EventError {
        EventError {
            line: self.line,
            pointer: pointer.to_string(),
            message: message.into(),
        }
    }
}

/// Escapes a key for use in a JSON pointer (RFC 6901).
fn esc(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn child(ptr: &str, key: &str) -> String {
    format!("{ptr}/{}", esc(key))
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(40).collect();
        format!("{head}…")
    } else {
        s.to_string()
    }
}

/// Parses and validates a request body. `ndjson` selects JSON Lines (one event per non-empty
/// line); otherwise the body is one event, an array of events or `{"events": [...]}`.
/// `now_ms` bounds timestamps. The whole body is refused at the first error.
pub fn parse_events(body: &[u8], ndjson: bool, now_ms: i64) -> Result<Vec<Event>, EventError> {
    let top = Ctx { line: None, now_ms };
    let text = std::str::from_utf8(body)
        .map_err(|e| top.err("", format!("body is not UTF-8 (byte {})", e.valid_up_to())))?;
    if ndjson {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let cx = Ctx {
                line: Some(i + 1),
                now_ms,
            };
            if out.len() == MAX_EVENTS_PER_REQUEST {
                return Err(cx.err(
                    "",
                    format!("more than {MAX_EVENTS_PER_REQUEST} events in one request; send smaller batches"),
                ));
            }
            let v: Value = serde_json::from_str(line)
                .map_err(|e| cx.err("", format!("invalid JSON at column {}: {e}", e.column())))?;
            out.push(event(&cx, &v, "")?);
        }
        if out.is_empty() {
            return Err(top.err("", "no events: the body has no non-empty line"));
        }
        return Ok(out);
    }
    let v: Value = serde_json::from_str(text).map_err(|e| {
        top.err(
            "",
            format!(
                "invalid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    match &v {
        Value::Array(items) => list(&top, items, ""),
        Value::Object(m) if m.contains_key("events") => {
            if let Some(k) = m.keys().find(|k| *k != "events") {
                return Err(top.err(
                    &child("", k),
                    format!("unknown field {:?} next to \"events\"", shorten(k)),
                ));
            }
            match &m["events"] {
                Value::Array(items) => list(&top, items, "/events"),
                _ => Err(top.err("/events", "must be an array of events")),
            }
        }
        Value::Object(_) => Ok(vec![event(&top, &v, "")?]),
        _ => Err(top.err(
            "",
            "must be an event object, an array of events or {\"events\": [...]}",
        )),
    }
}

fn list(cx: &Ctx, items: &[Value], ptr: &str) -> Result<Vec<Event>, EventError> {
    if items.is_empty() {
        return Err(cx.err(ptr, "must contain at least one event"));
    }
    if items.len() > MAX_EVENTS_PER_REQUEST {
        return Err(cx.err(
            ptr,
            format!(
                "{} events, more than {MAX_EVENTS_PER_REQUEST} in one request; send smaller batches",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| event(cx, v, &format!("{ptr}/{i}")))
        .collect()
}

fn object<'a>(
    cx: &Ctx,
    v: &'a Value,
    ptr: &str,
    what: &str,
) -> Result<&'a Map<String, Value>, EventError> {
    v.as_object()
        .ok_or_else(|| cx.err(ptr, format!("must be {what}")))
}

fn no_unknown(
    cx: &Ctx,
    m: &Map<String, Value>,
    ptr: &str,
    known: &[&str],
) -> Result<(), EventError> {
    for k in m.keys() {
        if !known.contains(&k.as_str()) {
            return Err(cx.err(
                &child(ptr, k),
                format!(
                    "unknown field {:?}; known fields: {}",
                    shorten(k),
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn string(cx: &Ctx, v: &Value, ptr: &str, max: usize) -> Result<String, EventError> {
    let s = v.as_str().ok_or_else(|| cx.err(ptr, "must be a string"))?;
    let n = s.chars().count();
    if n == 0 {
        return Err(cx.err(ptr, "must not be empty"));
    }
    if n > max {
        return Err(cx.err(ptr, format!("is {n} characters long, more than {max}")));
    }
    Ok(s.to_string())
}

fn opt_string(
    cx: &Ctx,
    m: &Map<String, Value>,
    ptr: &str,
    key: &str,
    max: usize,
) -> Result<Option<String>, EventError> {
    m.get(key)
        .map(|v| string(cx, v, &child(ptr, key), max))
        .transpose()
}

/// A JSON Schema `integer` (a number with no fraction, `1.0` included) in `0..=max`.
fn integer(cx: &Ctx, v: &Value, ptr: &str, max: u64) -> Result<u64, EventError> {
    let f = match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u as f64
            } else {
                n.as_f64().unwrap_or(f64::NAN)
            }
        }
        _ => return Err(cx.err(ptr, "must be an integer")),
    };
    if !f.is_finite() || f.fract() != 0.0 {
        return Err(cx.err(ptr, format!("must be an integer, got {v}")));
    }
    if f < 0.0 {
        return Err(cx.err(ptr, format!("must not be negative, got {v}")));
    }
    if f > max as f64 {
        return Err(cx.err(ptr, format!("{v} is more than the maximum of {max}")));
    }
    Ok(f as u64)
}

fn seconds(cx: &Ctx, v: &Value, ptr: &str) -> Result<f64, EventError> {
    let f = match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        _ => return Err(cx.err(ptr, "must be a number of seconds")),
    };
    if !f.is_finite() {
        return Err(cx.err(ptr, "must be a finite number of seconds"));
    }
    if f < 0.0 {
        return Err(cx.err(ptr, format!("must not be negative, got {v}")));
    }
    if f > MAX_SECONDS {
        return Err(cx.err(
            ptr,
            format!("{v} seconds is more than the maximum of {MAX_SECONDS} (7 days)"),
        ));
    }
    Ok(f)
}

fn rfc3339() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$",
        )
        .expect("static regex")
    })
}

fn label_name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn kind_name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fn timestamp(cx: &Ctx, v: &Value, ptr: &str) -> Result<i64, EventError> {
    let ms = match v {
        Value::String(s) => {
            if s.len() > 64 || !rfc3339().is_match(s) {
                return Err(cx.err(
                    ptr,
                    format!(
                        "{:?} is not an RFC 3339 timestamp like 2025-01-31T12:00:00Z",
                        shorten(s)
                    ),
                ));
            }
            sextant_model::time::parse_timestamp_ms(s)
                .map_err(|_| cx.err(ptr, format!("{s:?} is not a valid date and time")))?
        }
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if !f.is_finite() || f < MIN_TIMESTAMP_MS as f64 / 1000.0 {
                return Err(cx.err(
                    ptr,
                    format!("{v} is before 2000-01-01 (Unix seconds expected)"),
                ));
            }
            if f > 1e11 {
                return Err(cx.err(
                    ptr,
                    format!("{v} is too far in the future (Unix seconds expected, not ms)"),
                ));
            }
            (f * 1000.0).round() as i64
        }
        _ => {
            return Err(cx.err(
                ptr,
                "must be an RFC 3339 string or a number of Unix seconds",
            ))
        }
    };
    if ms < MIN_TIMESTAMP_MS {
        return Err(cx.err(ptr, format!("{v} is before 2000-01-01")));
    }
    if ms > cx.now_ms.saturating_add(MAX_FUTURE_MS) {
        return Err(cx.err(
            ptr,
            format!(
                "{v} is more than 10 minutes in the future (server time {})",
                sextant_model::time::format_rfc3339_ms(cx.now_ms)
            ),
        ));
    }
    Ok(ms)
}

fn event(cx: &Ctx, v: &Value, ptr: &str) -> Result<Event, EventError> {
    let m = object(cx, v, ptr, "an event object")?;
    no_unknown(cx, m, ptr, FIELDS)?;
    for req in ["agent", "outcome"] {
        if !m.contains_key(req) {
            return Err(cx.err(&child(ptr, req), "required field is missing"));
        }
    }
    let agent = string(cx, &m["agent"], &child(ptr, "agent"), MAX_NAME_CHARS)?;
    let outcome_ptr = child(ptr, "outcome");
    let outcome = match m["outcome"].as_str() {
        Some(s) => OUTCOMES.iter().copied().find(|o| *o == s),
        None => None,
    }
    .ok_or_else(|| {
        cx.err(
            &outcome_ptr,
            format!(
                "must be one of {}, got {}",
                OUTCOMES.join(", "),
                m["outcome"]
            ),
        )
    })?;
    let timestamp_ms = m
        .get("timestamp")
        .map(|v| timestamp(cx, v, &child(ptr, "timestamp")))
        .transpose()?;
    let duration_seconds = m
        .get("duration_seconds")
        .map(|v| seconds(cx, v, &child(ptr, "duration_seconds")))
        .transpose()?;
    let mut tokens = Tokens::default();
    if let Some(t) = m.get("tokens") {
        let tp = child(ptr, "tokens");
        let tm = object(
            cx,
            t,
            &tp,
            "an object with input, output, cache_read, cache_write",
        )?;
        no_unknown(cx, tm, &tp, TOKEN_FIELDS)?;
        let get = |k: &str| {
            tm.get(k)
                .map(|v| integer(cx, v, &child(&tp, k), MAX_TOKENS))
                .transpose()
        };
        tokens = Tokens {
            input: get("input")?,
            output: get("output")?,
            cache_read: get("cache_read")?,
            cache_write: get("cache_write")?,
        };
    }
    let self_eval = match m.get("self_eval") {
        None => None,
        Some(Value::String(s)) if s == "pass" => Some(true),
        Some(Value::String(s)) if s == "fail" => Some(false),
        Some(other) => {
            return Err(cx.err(
                &child(ptr, "self_eval"),
                format!("must be \"pass\" or \"fail\", got {other}"),
            ))
        }
    };
    let revisions = m
        .get("revisions")
        .map(|v| integer(cx, v, &child(ptr, "revisions"), MAX_COUNT))
        .transpose()?;
    let mut escalations = Vec::new();
    if let Some(e) = m.get("escalations") {
        let ep = child(ptr, "escalations");
        let em = object(
            cx,
            e,
            &ep,
            "an object of counts by kind, like {\"advisor\": 2}",
        )?;
        if em.len() > MAX_ESCALATION_KINDS {
            return Err(cx.err(
                &ep,
                format!("{} kinds, more than {MAX_ESCALATION_KINDS}", em.len()),
            ));
        }
        for (k, v) in em {
            let kp = child(&ep, k);
            if !kind_name_ok(k) {
                return Err(cx.err(
                    &kp,
                    format!("kind {:?} must match ^[a-z][a-z0-9_]{{0,63}}$", shorten(k)),
                ));
            }
            escalations.push((k.clone(), integer(cx, v, &kp, MAX_COUNT)?));
        }
        escalations.sort();
    }
    let mut tool_calls = Vec::new();
    if let Some(t) = m.get("tool_calls") {
        let tp = child(ptr, "tool_calls");
        let items = t.as_array().ok_or_else(|| {
            cx.err(
                &tp,
                "must be an array of {name, count, errors, duration_seconds}",
            )
        })?;
        if items.len() > MAX_TOOLS {
            return Err(cx.err(
                &tp,
                format!("{} entries, more than {MAX_TOOLS}", items.len()),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            let ip = format!("{tp}/{i}");
            let im = object(
                cx,
                item,
                &ip,
                "an object {name, count, errors, duration_seconds}",
            )?;
            no_unknown(cx, im, &ip, TOOL_FIELDS)?;
            let name = match im.get("name") {
                Some(v) => string(cx, v, &child(&ip, "name"), MAX_NAME_CHARS)?,
                None => return Err(cx.err(&child(&ip, "name"), "required field is missing")),
            };
            let count = im
                .get("count")
                .map(|v| integer(cx, v, &child(&ip, "count"), MAX_COUNT))
                .transpose()?
                .unwrap_or(1);
            let errors = im
                .get("errors")
                .map(|v| integer(cx, v, &child(&ip, "errors"), MAX_COUNT))
                .transpose()?
                .unwrap_or(0);
            if errors > count {
                return Err(cx.err(
                    &child(&ip, "errors"),
                    format!("{errors} errors is more than the {count} calls"),
                ));
            }
            let duration_seconds = im
                .get("duration_seconds")
                .map(|v| seconds(cx, v, &child(&ip, "duration_seconds")))
                .transpose()?;
            tool_calls.push(ToolCall {
                name,
                count,
                errors,
                duration_seconds,
            });
        }
    }
    let mut labels = Vec::new();
    if let Some(l) = m.get("labels") {
        let lp = child(ptr, "labels");
        let lm = object(cx, l, &lp, "an object of string values")?;
        if lm.len() > MAX_LABELS {
            return Err(cx.err(&lp, format!("{} labels, more than {MAX_LABELS}", lm.len())));
        }
        for (k, v) in lm {
            let kp = child(&lp, k);
            if !label_name_ok(k) {
                return Err(cx.err(
                    &kp,
                    format!(
                        "label name {:?} must match ^[a-zA-Z][a-zA-Z0-9_]{{0,63}}$",
                        shorten(k)
                    ),
                ));
            }
            if RESERVED_LABELS.contains(&k.as_str()) {
                return Err(cx.err(
                    &kp,
                    format!(
                        "label name {k:?} is reserved (it is set from the event's own fields); reserved: {}",
                        RESERVED_LABELS.join(", ")
                    ),
                ));
            }
            labels.push((k.clone(), string(cx, v, &kp, MAX_NAME_CHARS)?));
        }
        labels.sort();
    }
    Ok(Event {
        event_id: opt_string(cx, m, ptr, "event_id", MAX_ID_CHARS)?,
        session_id: opt_string(cx, m, ptr, "session_id", MAX_ID_CHARS)?,
        timestamp_ms,
        agent,
        role: opt_string(cx, m, ptr, "role", MAX_NAME_CHARS)?,
        phase: opt_string(cx, m, ptr, "phase", MAX_NAME_CHARS)?,
        model: opt_string(cx, m, ptr, "model", MAX_NAME_CHARS)?,
        provider: opt_string(cx, m, ptr, "provider", MAX_NAME_CHARS)?,
        outcome,
        duration_seconds,
        tokens,
        self_eval,
        revisions,
        escalations,
        tool_calls,
        labels,
    })
}
