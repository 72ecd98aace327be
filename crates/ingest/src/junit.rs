//! JUnit XML test reports, the lingua franca of CI test results: Maven surefire, Gradle, pytest
//! (`--junitxml`, xunit1 and xunit2), cargo-nextest, jest-junit and go-junit-report all write
//! it, each a little differently. This module reads any of them into one [`Report`] — a flat
//! list of suites with their test cases, outcomes, durations, properties and rerun
//! information — so the test-quality analyses ([`history`]) and the `/api/v1/junit` endpoint
//! never look at XML.
//!
//! The input is hostile until proven otherwise: a `<!DOCTYPE>` is refused outright (so no
//! entity can ever be defined, let alone expanded — billion laughs is a 400, not an OOM),
//! only the five predefined entities and character references are resolved, nesting depth,
//! names, attribute values, messages and the number of test cases are bounded, and every
//! error names the line and column where it was found.
//!
//! Mapping of the dialects:
//! - the root is `<testsuites>` (any attributes) or a bare `<testsuite>`; suites may nest
//!   (`<testsuite>` inside `<testsuite>`, as PHPUnit and some Jest/Gradle setups do), and
//!   each suite that holds test cases becomes one [`Suite`] named by its own `name` (or the
//!   nearest named ancestor's);
//! - a `<testcase>` with `<failure>` is failed, with `<error>` errored, with `<skipped>`
//!   skipped (pytest xfail included), otherwise passed;
//! - surefire's and nextest's `<flakyFailure>`/`<flakyError>` on a case without a failure
//!   mean it failed and then passed on a rerun: the case passed, and [`Case::flaky_reruns`]
//!   counts the failed attempts; `<rerunFailure>`/`<rerunError>` next to a failure are
//!   further failed attempts of a case that failed for good;
//! - `<properties>` of suites and cases (pytest's `record_property`, go-junit-report's
//!   `go.version`, …) are kept as name/value pairs;
//! - `<system-out>`, `<system-err>` and unknown elements are skipped.

pub mod history;
pub mod service;

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Bounds on what one report may contain.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Test cases in one report.
    pub max_cases: usize,
    /// Bytes of a suite, class or test name.
    pub max_name_len: usize,
    /// Bytes of any attribute value.
    pub max_attr_len: usize,
    /// Element nesting depth.
    pub max_depth: usize,
    /// Properties per suite or case.
    pub max_properties: usize,
    /// Failure messages are cut to this many bytes (not an error).
    pub max_message_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_cases: 100_000,
            max_name_len: 1024,
            max_attr_len: 64 * 1024,
            max_depth: 64,
            max_properties: 256,
            max_message_len: 4096,
        }
    }
}

/// Outcome of one test case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Passed,
    Failed,
    Errored,
    Skipped,
}

impl Outcome {
    /// All outcomes, in label order.
    pub const ALL: [Outcome; 4] = [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::Errored,
        Outcome::Skipped,
    ];

    /// The value of the `result` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Errored => "errored",
            Outcome::Skipped => "skipped",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s spelling.
    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Failed or errored.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Errored)
    }
}

/// One test case.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub classname: String,
    pub name: String,
    /// Seconds (0 when the report has no `time`).
    pub time: f64,
    pub outcome: Outcome,
    /// The failure/error/skip message (attribute `message`, else the element's text), cut to
    /// [`Limits::max_message_len`].
    pub message: String,
    /// Failed attempts before the final outcome (`flakyFailure`/`flakyError`,
    /// `rerunFailure`/`rerunError`).
    pub flaky_reruns: u32,
    pub properties: Vec<(String, String)>,
}

/// One suite with its cases (nested suites are flattened).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Suite {
    pub name: String,
    /// The suite's `time` attribute in seconds, if it has one.
    pub time: Option<f64>,
    pub properties: Vec<(String, String)>,
    pub cases: Vec<Case>,
}

impl Suite {
    /// The suite's duration: its `time`, else the sum of its cases' times.
    pub fn duration(&self) -> f64 {
        self.time
            .unwrap_or_else(|| self.cases.iter().map(|c| c.time).sum())
    }
}

/// A parsed report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub suites: Vec<Suite>,
}

impl Report {
    /// Number of test cases in all suites.
    pub fn cases(&self) -> usize {
        self.suites.iter().map(|s| s.cases.len()).sum()
    }
}

/// Why a report was refused; `line`/`column` are 1-based (column in bytes).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("JUnit XML line {line}, column {column}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub msg: String,
}

/// Parses a JUnit XML document with the default [`Limits`].
pub fn parse(input: &[u8]) -> Result<Report, ParseError> {
    parse_with(input, &Limits::default())
}

/// Parses a JUnit XML document.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<Report, ParseError> {
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            return Err(at(
                input,
                e.valid_up_to(),
                "the report is not valid UTF-8".to_string(),
            ))
        }
    };
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    Parser {
        input: text,
        base: bom,
        reader: Reader::from_str(&text[bom..]),
        limits,
        report: Report::default(),
        ncases: 0,
    }
    .run()
}

/// An error at byte offset `pos` of `input`.
fn at(input: &[u8], pos: usize, msg: String) -> ParseError {
    let pos = pos.min(input.len());
    let before = &input[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    ParseError {
        line,
        column: pos - line_start + 1,
        msg,
    }
}

/// What an open element is, for the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Root,
    /// A suite: index into `suite_stack`.
    Suite,
    Case,
    /// `<properties>` of a suite or case.
    Properties,
    /// `failure`/`error`/`skipped`/flaky elements whose text is the message.
    Message,
    Other,
}

/// A suite being read: its name and collected cases.
struct PendingSuite {
    suite: Suite,
}

struct Parser<'a, 'l> {
    input: &'a str,
    base: usize,
    reader: Reader<&'a [u8]>,
    limits: &'l Limits,
    report: Report,
    ncases: usize,
}

impl<'a> Parser<'a, '_> {
    fn err(&self, pos: u64, msg: impl Into<String>) -> ParseError {
        at(self.input.as_bytes(), self.base + pos as usize, msg.into())
    }

    fn run(mut self) -> Result<Report, ParseError> {
        let mut stack: Vec<Open> = Vec::new();
        let mut suites: Vec<PendingSuite> = Vec::new();
        let mut case: Option<Case> = None;
        // Where the current message text goes: the case's message, if not set from an
        // attribute.
        let mut message_from_text = false;
        let mut seen_root = false;
        loop {
            let pos = self.reader.buffer_position();
            let ev = self.reader.read_event().map_err(|e| {
                let p = self.reader.error_position();
                self.err(p, format!("malformed XML: {e}"))
            })?;
            match ev {
                Event::DocType(_) => {
                    return Err(self.err(
                        pos,
                        "a <!DOCTYPE> is not accepted in JUnit reports (no DTDs, no entity definitions)",
                    ))
                }
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => {
                    if !seen_root {
                        return Err(self.err(
                            pos,
                            "no <testsuites> or <testsuite> element: the body is empty or not a JUnit report",
                        ));
                    }
                    if !stack.is_empty() {
                        return Err(self.err(
                            pos,
                            "the document ends before all elements are closed (truncated report?)",
                        ));
                    }
                    return Ok(self.report);
                }
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let empty = matches!(ev, Event::Empty(_));
                    if stack.len() >= self.limits.max_depth {
                        return Err(self.err(
                            pos,
                            format!(
                                "elements nest deeper than the limit of {}",
                                self.limits.max_depth
                            ),
                        ));
                    }
                    let name = e.local_name();
                    let name = name.as_ref();
                    let parent = stack.last().copied();
                    let kind = match (parent, name) {
                        (None, b"testsuites") => {
                            seen_root = true;
                            Open::Root
                        }
                        (None, b"testsuite") | (Some(Open::Root | Open::Suite), b"testsuite") => {
                            seen_root = true;
                            let attrs = self.attrs(e, pos)?;
                            let own = get(&attrs, "name").unwrap_or_default();
                            self.check_name(&own, "testsuite name", pos)?;
                            let name = if own.is_empty() {
                                suites
                                    .last()
                                    .map(|s| s.suite.name.clone())
                                    .unwrap_or_default()
                            } else {
                                own
                            };
                            let time = match get(&attrs, "time") {
                                Some(t) => Some(self.seconds(&t, "testsuite time", pos)?),
                                None => None,
                            };
                            suites.push(PendingSuite {
                                suite: Suite {
                                    name,
                                    time,
                                    properties: Vec::new(),
                                    cases: Vec::new(),
                                },
                            });
                            Open::Suite
                        }
                        (None, other) => {
                            return Err(self.err(
                                pos,
                                format!(
                                    "the root element is <{}>, expected <testsuites> or <testsuite>",
                                    String::from_utf8_lossy(other)
                                ),
                            ))
                        }
                        (Some(Open::Suite), b"testcase") => {
                            self.ncases += 1;
                            if self.ncases > self.limits.max_cases {
                                return Err(self.err(
                                    pos,
                                    format!(
                                        "more than {} test cases in one report",
                                        self.limits.max_cases
                                    ),
                                ));
                            }
                            let attrs = self.attrs(e, pos)?;
                            let name = get(&attrs, "name").unwrap_or_default();
                            if name.is_empty() {
                                return Err(self.err(pos, "testcase without a name attribute"));
                            }
                            self.check_name(&name, "testcase name", pos)?;
                            let classname = get(&attrs, "classname").unwrap_or_default();
                            self.check_name(&classname, "testcase classname", pos)?;
                            let time = match get(&attrs, "time") {
                                Some(t) => self.seconds(&t, "testcase time", pos)?,
                                None => 0.0,
                            };
                            case = Some(Case {
                                classname,
                                name,
                                time,
                                outcome: Outcome::Passed,
                                message: String::new(),
                                flaky_reruns: 0,
                                properties: Vec::new(),
                            });
                            Open::Case
                        }
                        (Some(Open::Suite | Open::Case), b"properties") => Open::Properties,
                        (Some(Open::Properties), b"property") => {
                            let attrs = self.attrs(e, pos)?;
                            let Some(pname) = get(&attrs, "name") else {
                                return Err(self.err(pos, "property without a name attribute"));
                            };
                            let value = get(&attrs, "value").unwrap_or_default();
                            let props = match (stack.len() >= 2)
                                .then(|| stack[stack.len() - 2])
                            {
                                Some(Open::Case) => case.as_mut().map(|c| &mut c.properties),
                                _ => suites.last_mut().map(|s| &mut s.suite.properties),
                            };
                            if let Some(props) = props {
                                if props.len() >= self.limits.max_properties {
                                    return Err(self.err(
                                        pos,
                                        format!(
                                            "more than {} properties",
                                            self.limits.max_properties
                                        ),
                                    ));
                                }
                                props.push((pname, value));
                            }
                            Open::Other
                        }
                        (Some(Open::Case), kind) => {
                            let Some(c) = case.as_mut() else {
                                return Err(self.err(pos, "internal: case state lost"));
                            };
                            let outcome = match kind {
                                b"failure" => Some(Outcome::Failed),
                                b"error" => Some(Outcome::Errored),
                                b"skipped" => Some(Outcome::Skipped),
                                b"flakyFailure" | b"flakyError" | b"rerunFailure"
                                | b"rerunError" => {
                                    c.flaky_reruns = c.flaky_reruns.saturating_add(1);
                                    None
                                }
                                _ => {
                                    // system-out, system-err and unknown elements.
                                    if !empty {
                                        stack.push(Open::Other);
                                        self.skip_to_end(pos)?;
                                        stack.pop();
                                    }
                                    continue;
                                }
                            };
                            if let Some(o) = outcome {
                                // A failure or error wins over a skip; the first of equals
                                // keeps its message.
                                let rank = |o: Outcome| match o {
                                    Outcome::Passed => 0,
                                    Outcome::Skipped => 1,
                                    Outcome::Failed => 2,
                                    Outcome::Errored => 3,
                                };
                                if rank(o) > rank(c.outcome) {
                                    c.outcome = o;
                                    let attrs = self.attrs(e, pos)?;
                                    let msg = get(&attrs, "message").unwrap_or_default();
                                    c.message = cut(&msg, self.limits.max_message_len);
                                    message_from_text = c.message.is_empty();
                                } else {
                                    message_from_text = false;
                                }
                            } else {
                                message_from_text = false;
                            }
                            Open::Message
                        }
                        (Some(_), _) => {
                            // Anything else (system-out of a suite, unknown elements): skip.
                            if !empty {
                                stack.push(Open::Other);
                                self.skip_to_end(pos)?;
                                stack.pop();
                            }
                            continue;
                        }
                    };
                    if empty {
                        self.close(kind, &mut suites, &mut case);
                    } else {
                        stack.push(kind);
                    }
                }
                Event::End(_) => {
                    // quick-xml checks that end names match their start.
                    let Some(kind) = stack.pop() else {
                        return Err(self.err(pos, "closing tag without an open element"));
                    };
                    if kind == Open::Message {
                        message_from_text = false;
                    }
                    self.close(kind, &mut suites, &mut case);
                }
                Event::Text(t) => {
                    if stack.last() == Some(&Open::Message) && message_from_text {
                        let s = t.decode().map_err(|e| self.err(pos, e.to_string()))?;
                        self.append_message(&mut case, &s);
                    } else if stack.is_empty() && !t.decode().is_ok_and(|s| s.trim().is_empty()) {
                        return Err(self.err(pos, "text outside of the root element"));
                    }
                }
                Event::CData(t) => {
                    if stack.last() == Some(&Open::Message) && message_from_text {
                        let s = String::from_utf8_lossy(&t);
                        self.append_message(&mut case, &s);
                    }
                }
                Event::GeneralRef(r) => {
                    let ch = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => {
                            let name = r.decode().map_err(|e| self.err(pos, e.to_string()))?;
                            match predefined(&name) {
                                Some(s) => s.to_string(),
                                None => {
                                    return Err(self.err(
                                        pos,
                                        format!("undefined entity &{name}; (only &lt; &gt; &amp; &quot; &apos; and character references are accepted)"),
                                    ))
                                }
                            }
                        }
                        Err(e) => return Err(self.err(pos, format!("bad character reference: {e}"))),
                    };
                    if stack.last() == Some(&Open::Message) && message_from_text {
                        self.append_message(&mut case, &ch);
                    }
                }
            }
        }
    }

    fn append_message(&self, case: &mut Option<Case>, s: &str) {
        if let Some(c) = case.as_mut() {
            let room = self.limits.max_message_len.saturating_sub(c.message.len());
            if room > 0 {
                c.message.push_str(&cut(s, room));
            }
        }
    }

    /// Finishes an element.
    fn close(&mut self, kind: Open, suites: &mut Vec<PendingSuite>, case: &mut Option<Case>) {
        match kind {
            Open::Case => {
                if let (Some(c), Some(s)) = (case.take(), suites.last_mut()) {
                    s.suite.cases.push(c);
                }
            }
            Open::Suite => {
                if let Some(p) = suites.pop() {
                    if !p.suite.cases.is_empty() {
                        self.report.suites.push(p.suite);
                    }
                }
            }
            _ => {}
        }
    }

    /// Skips the content of the element just opened (its End included), still checking
    /// that it is well-formed and refusing DTDs and unknown entities on the way.
    fn skip_to_end(&mut self, start: u64) -> Result<(), ParseError> {
        let mut depth = 1usize;
        loop {
            let pos = self.reader.buffer_position();
            let ev = self.reader.read_event().map_err(|e| {
                let p = self.reader.error_position();
                self.err(p, format!("malformed XML: {e}"))
            })?;
            match ev {
                Event::Start(_) => {
                    depth += 1;
                    if depth > self.limits.max_depth {
                        return Err(self.err(
                            pos,
                            format!(
                                "elements nest deeper than the limit of {}",
                                self.limits.max_depth
                            ),
                        ));
                    }
                }
                Event::End(_) => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Event::GeneralRef(r) if !matches!(r.resolve_char_ref(), Ok(Some(_))) => {
                    let name = r.decode().map_err(|e| self.err(pos, e.to_string()))?;
                    if predefined(&name).is_none() {
                        return Err(self.err(pos, format!("undefined entity &{name};")));
                    }
                }
                Event::DocType(_) => {
                    return Err(self.err(pos, "a <!DOCTYPE> is not accepted in JUnit reports"))
                }
                Event::Eof => {
                    return Err(self.err(start, "this element is never closed (truncated report?)"))
                }
                _ => {}
            }
        }
    }

    /// The element's attributes, unescaped, with bounded values.
    fn attrs(&self, e: &BytesStart<'_>, pos: u64) -> Result<Vec<(String, String)>, ParseError> {
        let mut out = Vec::new();
        let elem = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        for a in e.attributes() {
            let a = a.map_err(|err| self.err(pos, format!("<{elem}>: bad attribute: {err}")))?;
            let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
            if a.value.len() > self.limits.max_attr_len {
                return Err(self.err(
                    pos,
                    format!(
                        "<{elem}> attribute {key} is {} bytes long, more than the limit of {}",
                        a.value.len(),
                        self.limits.max_attr_len
                    ),
                ));
            }
            let v: Cow<'_, str> = a.unescape_value().map_err(|err| {
                self.err(pos, format!("<{elem}> attribute {key}: {err} (only predefined entities and character references are accepted)"))
            })?;
            out.push((key, v.into_owned()));
        }
        Ok(out)
    }

    fn check_name(&self, v: &str, what: &str, pos: u64) -> Result<(), ParseError> {
        if v.len() > self.limits.max_name_len {
            return Err(self.err(
                pos,
                format!(
                    "{what} is {} bytes long, more than the limit of {}",
                    v.len(),
                    self.limits.max_name_len
                ),
            ));
        }
        Ok(())
    }

    /// A `time` attribute: seconds, finite, not negative. Surefire writes thousands
    /// separators for long suites (`time="1,234.5"`), so commas are dropped.
    fn seconds(&self, v: &str, what: &str, pos: u64) -> Result<f64, ParseError> {
        let t = v.trim().replace(',', "");
        match t.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(self.err(
                pos,
                format!("{what} {v:?} is not a non-negative number of seconds"),
            )),
        }
    }
}

fn get(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn predefined(name: &str) -> Option<&'static str> {
    Some(match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "quot" => "\"",
        "apos" => "'",
        _ => return None,
    })
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests;
