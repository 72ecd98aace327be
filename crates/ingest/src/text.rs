//! The exposition formats exporters serve and clients push: the Prometheus text format 0.0.4
//! (as scraped and posted to `/api/v1/import/prometheus`, plus OpenMetrics' closing `# EOF`
//! line and Prometheus 3's quoted UTF-8 names `{"my.metric", "some.label"="v"}`) and, in
//! [`openmetrics`], OpenMetrics 1.0. [`parse_exposition`] picks between them from the
//! Content-Type the way Prometheus' scraper does. The parsers are strict: any malformed line is
//! an error naming its line number and what was expected there, so a bad import fails loudly
//! instead of storing half a file.

pub mod openmetrics;

use std::collections::HashMap;

use sextant_model::{Label, Labels, Metadata, MetricType, Sample, METRIC_NAME};

use crate::remote_write::{SeriesSamples, WriteBatch};

/// Everything parsed from one exposition: samples in input order, per-family metadata and,
/// for OpenMetrics, exemplars and `_created` timestamps (always empty for text 0.0.4).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextBatch {
    pub samples: Vec<(Labels, Sample)>,
    pub metadata: Vec<Metadata>,
    /// Exemplars in input order; each names the sample it was attached to.
    pub exemplars: Vec<Exemplar>,
    /// Start times announced by OpenMetrics `_created` samples (which also stay in `samples`,
    /// as Prometheus keeps them by default).
    pub created: Vec<Created>,
}

/// An OpenMetrics exemplar, like `# {trace_id="abc"} 0.67 1620000000.123` after a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// Index into [`TextBatch::samples`] of the sample it was attached to.
    pub sample: usize,
    /// The exemplar's own labels (no metric name).
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds, if the exemplar carried a timestamp.
    pub timestamp: Option<i64>,
}

/// The creation time of a counter, histogram or summary series, from an OpenMetrics
/// `<family>_created{...} <seconds>` sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The metric family (`foo` for `foo_created`); its `foo_total` / `foo_bucket` / ... series
    /// with the same `labels` started at `created_ms`.
    pub family: String,
    /// The labels of the `_created` sample without `__name__`.
    pub labels: Labels,
    /// Creation time in milliseconds since the epoch.
    pub created_ms: i64,
}

/// What Prometheus sends as `Accept` when scraping (its default `scrape_protocols`: OpenMetrics
/// 1.0.0 and 0.0.1, then the text format 1.0.0 and 0.0.4, UTF-8 names allowed). Both parsers
/// here understand everything a target may answer with under this header.
pub const SCRAPE_ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

/// The exposition format a Content-Type selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpositionFormat {
    /// The Prometheus text format (0.0.4 / 1.0.0).
    Text,
    /// OpenMetrics 1.0 (also 0.0.1, which has the same text syntax).
    OpenMetrics,
}

/// Picks the format like Prometheus' scraper: `application/openmetrics-text` means OpenMetrics;
/// `text/plain`, a missing, unparsable or unknown Content-Type means the text format.
/// Protobuf (`application/vnd.google.protobuf`) is refused: we never ask for it.
pub fn exposition_format(content_type: Option<&str>) -> Result<ExpositionFormat, ParseError> {
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media.as_str() {
        "application/openmetrics-text" => Ok(ExpositionFormat::OpenMetrics),
        "application/vnd.google.protobuf" => Err(ParseError {
            line: 0,
            msg: "the protobuf exposition format (application/vnd.google.protobuf) is not \
                  supported; serve text/plain or application/openmetrics-text"
                .to_string(),
        }),
        _ => Ok(ExpositionFormat::Text),
    }
}

/// Parses a scraped or pushed exposition body, choosing the parser from `content_type` (see
/// [`exposition_format`]). `default_ts` (ms) applies to samples without a timestamp. A body
/// that is not UTF-8 is an error naming the line of the first invalid byte.
pub fn parse_exposition(
    body: &[u8],
    content_type: Option<&str>,
    default_ts: i64,
) -> Result<TextBatch, ParseError> {
    let format = exposition_format(content_type)?;
    let input = std::str::from_utf8(body).map_err(|e| {
        let at = e.valid_up_to();
        let line = body[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        ParseError {
            line,
            msg: format!("invalid UTF-8 at byte offset {at}: expositions must be UTF-8"),
        }
    })?;
    match format {
        ExpositionFormat::Text => parse_text(input, default_ts),
        ExpositionFormat::OpenMetrics => openmetrics::parse_openmetrics(input, default_ts),
    }
}

impl TextBatch {
    /// Groups samples by series (in order of first appearance) so the batch can take the same
    /// path into storage as a remote-write request.
    /// Each exemplar goes with the series of its sample; one without a timestamp gets the
    /// sample's timestamp, as Prometheus' scraper does.
    pub fn into_write_batch(self) -> WriteBatch {
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut series: Vec<SeriesSamples> = Vec::new();
        let mut exemplars = self.exemplars.into_iter().peekable();
        for (n, (labels, sample)) in self.samples.into_iter().enumerate() {
            let t = sample.t;
            let i = match index.get(&labels) {
                Some(&i) => {
                    series[i].samples.push(sample);
                    i
                }
                None => {
                    index.insert(labels.clone(), series.len());
                    series.push(SeriesSamples {
                        labels,
                        samples: vec![sample],
                        histograms: Vec::new(),
                        exemplars: Vec::new(),
                    });
                    series.len() - 1
                }
            };
            while let Some(e) = exemplars.next_if(|e| e.sample <= n) {
                series[i].exemplars.push(sextant_model::Exemplar {
                    labels: e.labels,
                    value: e.value,
                    ts: e.timestamp.unwrap_or(t),
                });
            }
        }
        WriteBatch {
            series,
            metadata: self.metadata,
            rejected: Vec::new(),
        }
    }
}

/// A malformed line: its 1-based number and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

/// Parses a text exposition. `default_ts` (ms) is used for samples without a timestamp.
/// Handles `# HELP` / `# TYPE` (→ Metadata, plus OpenMetrics `# UNIT`), escaping in label values
/// and HELP, NaN/+Inf/-Inf, optional int64 ms timestamps, blanks (spaces and tabs) between
/// tokens, and quoted UTF-8 metric and label names. Other `#` lines are comments. Anything after
/// `# EOF` other than blank lines is an error.
pub fn parse_text(input: &str, default_ts: i64) -> Result<TextBatch, ParseError> {
    let mut batch = TextBatch::default();
    let mut meta_index: HashMap<String, usize> = HashMap::new();
    let mut eof_line: Option<usize> = None;
    let mut labels_buf: Vec<Label> = Vec::new();

    for (i, raw_line) in input.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let err = |msg: String| ParseError { line: line_no, msg };
        if line.trim_matches([' ', '\t']).is_empty() {
            continue;
        }
        if let Some(eof) = eof_line {
            return Err(err(format!(
                "unexpected content after \"# EOF\" on line {eof}"
            )));
        }
        let mut c = Cursor::new(line);
        c.skip_blanks();
        if c.peek() == Some(b'#') {
            match parse_comment(&mut c).map_err(err)? {
                Comment::Eof => eof_line = Some(line_no),
                Comment::Ignored => {}
                Comment::Meta { name, field } => {
                    let idx = *meta_index.entry(name.clone()).or_insert_with(|| {
                        batch.metadata.push(Metadata {
                            metric_family: name,
                            ..Default::default()
                        });
                        batch.metadata.len() - 1
                    });
                    let m = &mut batch.metadata[idx];
                    match field {
                        MetaField::Help(h) => m.help = h,
                        MetaField::Type(t) => m.kind = t,
                        MetaField::Unit(u) => m.unit = u,
                    }
                }
            }
            continue;
        }
        let (labels, sample) = parse_sample(&mut c, default_ts, &mut labels_buf).map_err(err)?;
        batch.samples.push((labels, sample));
    }
    Ok(batch)
}

enum Comment {
    Eof,
    Ignored,
    Meta { name: String, field: MetaField },
}

enum MetaField {
    Help(String),
    Type(MetricType),
    Unit(String),
}

/// Parses a line starting with `#`.
fn parse_comment(c: &mut Cursor<'_>) -> Result<Comment, String> {
    c.bump(); // '#'
    let had_blank = c.skip_blanks();
    if c.rest().trim_end_matches([' ', '\t']) == "EOF" {
        return Ok(Comment::Eof);
    }
    if !had_blank {
        return Ok(Comment::Ignored);
    }
    let keyword = c.take_while(|b| b != b' ' && b != b'\t');
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return Ok(Comment::Ignored);
    }
    if !c.skip_blanks() {
        return Err(format!("expected a metric name after \"# {keyword}\""));
    }
    let name = match c.peek() {
        Some(b'"') => c.quoted_string()?,
        Some(b) if is_name_start(b, true) => c.take_while(|b| is_name_char(b, true)).to_string(),
        _ => return Err(format!("expected a metric name after \"# {keyword}\"")),
    };
    if name.is_empty() {
        return Err(format!("empty metric name in \"# {keyword}\""));
    }
    let text_follows = c.skip_blanks();
    if !c.at_end() && !text_follows {
        return Err(format!(
            "expected a blank after the metric name in \"# {keyword}\""
        ));
    }
    let field = match keyword {
        "HELP" => MetaField::Help(unescape_help(c.rest())),
        "UNIT" => MetaField::Unit(c.rest().trim_end_matches([' ', '\t']).to_string()),
        _ => {
            let t = c.rest().trim_end_matches([' ', '\t']);
            if t.is_empty() {
                return Err(format!("expected a metric type after \"# TYPE {name}\""));
            }
            MetaField::Type(MetricType::parse(t).ok_or_else(|| {
                format!(
                    "unknown metric type {t:?} in \"# TYPE\": expected counter, gauge, histogram, summary or untyped"
                )
            })?)
        }
    };
    Ok(Comment::Meta { name, field })
}

/// Parses `name{labels} value [timestamp]`, with the name possibly quoted inside the braces.
fn parse_sample(
    c: &mut Cursor<'_>,
    default_ts: i64,
    labels: &mut Vec<Label>,
) -> Result<(Labels, Sample), String> {
    labels.clear();
    let mut name: Option<String> = None;
    match c.peek() {
        Some(b'{') => {}
        Some(b'"') => {
            return Err(
                "a quoted metric name must be inside the braces, like {\"my.metric\", a=\"b\"}"
                    .to_string(),
            )
        }
        Some(b) if is_name_start(b, true) => {
            name = Some(c.take_while(|b| is_name_char(b, true)).to_string());
            match c.peek() {
                Some(b'{' | b' ' | b'\t') => {}
                Some(_) => {
                    return Err(format!(
                    "invalid character {:?} in metric name: expected '{{' or a blank after {:?}",
                    c.peek_char().unwrap_or('?'),
                    name.as_deref().unwrap_or_default()
                ))
                }
                None => {
                    return Err(format!(
                        "expected a value after metric name {:?}",
                        name.as_deref().unwrap_or_default()
                    ))
                }
            }
        }
        Some(_) => {
            return Err(format!(
                "expected a metric name, '{{' or '#' at the start of the line, got {:?}",
                c.peek_char().unwrap_or('?')
            ))
        }
        None => return Err("expected a metric name".to_string()),
    }
    c.skip_blanks();
    if c.peek() == Some(b'{') {
        c.bump();
        parse_label_set(c, &mut name, labels)?;
    }
    let Some(name) = name else {
        return Err("missing metric name: expected a name before '{' or a quoted name as the first item inside the braces".to_string());
    };
    if name.is_empty() {
        return Err("empty metric name".to_string());
    }

    // A bare name was already checked to end at '{' or a blank; after '}' a blank is optional.
    c.skip_blanks();
    let value_tok = c.take_while(|b| b != b' ' && b != b'\t');
    if value_tok.is_empty() {
        return Err(format!("expected a sample value after {name:?}"));
    }
    let v = parse_value(value_tok).ok_or_else(|| {
        format!("invalid sample value {value_tok:?}: expected a float, NaN, +Inf or -Inf")
    })?;
    c.skip_blanks();
    let t = if c.at_end() {
        default_ts
    } else {
        let ts_tok = c.take_while(|b| b != b' ' && b != b'\t');
        let t = ts_tok.parse::<i64>().map_err(|_| {
            format!("invalid timestamp {ts_tok:?}: expected an integer number of milliseconds")
        })?;
        c.skip_blanks();
        if !c.at_end() {
            return Err(format!(
                "unexpected text {:?} after the timestamp: expected end of line",
                c.rest()
            ));
        }
        t
    };

    labels.push(Label {
        name: METRIC_NAME.to_string(),
        value: name,
    });
    labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(format!("duplicate label name {:?}", w[0].name));
    }
    // Quoted UTF-8 names are valid here though not under the classic rule that
    // `Labels::from_wire` enforces, so build the (already sorted, unique) set directly.
    let owned = Labels::from_pairs(labels.drain(..).map(|l| (l.name, l.value)));
    Ok((owned, Sample::new(t, v)))
}

/// Parses the inside of `{...}` after the opening brace, up to and including `}`.
fn parse_label_set(
    c: &mut Cursor<'_>,
    name: &mut Option<String>,
    labels: &mut Vec<Label>,
) -> Result<(), String> {
    let mut first = true;
    loop {
        c.skip_blanks();
        match c.peek() {
            Some(b'}') => {
                c.bump();
                return Ok(());
            }
            None => return Err("unterminated label set: expected '}'".to_string()),
            _ => {}
        }
        let (lname, quoted) = match c.peek() {
            Some(b'"') => (c.quoted_string()?, true),
            Some(b) if is_name_start(b, false) => {
                (c.take_while(|b| is_name_char(b, false)).to_string(), false)
            }
            _ => {
                return Err(format!(
                    "expected a label name or '}}', got {:?}",
                    c.peek_char().unwrap_or('?')
                ))
            }
        };
        c.skip_blanks();
        match c.peek() {
            Some(b'=') => {
                c.bump();
                c.skip_blanks();
                if c.peek() != Some(b'"') {
                    return Err(format!(
                        "expected a quoted value after '{lname}=', like {lname}=\"value\""
                    ));
                }
                let value = c.quoted_string()?;
                if lname.is_empty() {
                    return Err("empty label name".to_string());
                }
                labels.push(Label { name: lname, value });
            }
            Some(b',' | b'}') if quoted && first && name.is_none() => {
                if lname.is_empty() {
                    return Err("empty metric name".to_string());
                }
                *name = Some(lname);
            }
            Some(b',' | b'}') if quoted && first => {
                return Err(format!(
                    "metric name given twice: {:?} before the braces and {lname:?} inside",
                    name.as_deref().unwrap_or_default()
                ));
            }
            _ => return Err(format!("expected '=' after label name {lname:?}")),
        }
        first = false;
        c.skip_blanks();
        match c.peek() {
            Some(b',') => {
                c.bump();
            }
            Some(b'}') => {}
            None => return Err("unterminated label set: expected ',' or '}'".to_string()),
            Some(_) => {
                return Err(format!(
                    "expected ',' or '}}' after the value of label {:?}, got {:?}",
                    labels.last().map(|l| l.name.as_str()).unwrap_or_default(),
                    c.peek_char().unwrap_or('?')
                ))
            }
        }
    }
}

/// Go's `strconv.ParseFloat` spellings that Prometheus accepts: decimals, exponents, and
/// NaN / Inf with optional sign in any case.
fn parse_value(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if unsigned.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    // Rust also accepts these words, but only in the spellings handled above; reject others
    // (e.g. "infinit") by requiring a digit.
    if !unsigned.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<f64>().ok()
}

/// HELP text escapes: `\\` and `\n`; other backslashes stay as they are.
fn unescape_help(s: &str) -> String {
    let s = s.trim_end_matches([' ', '\t']);
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn is_name_start(b: u8, metric: bool) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || (metric && b == b':')
}

fn is_name_char(b: u8, metric: bool) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || (metric && b == b':')
}

/// A byte cursor over one line. Only ever stops at ASCII bytes, so slicing stays on UTF-8
/// boundaries.
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn peek_char(&self) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().next())
    }

    pub(crate) fn bump(&mut self) {
        if self.pos < self.s.len() {
            self.pos += 1;
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or_default()
    }

    /// Skips spaces and tabs; true if any were skipped.
    fn skip_blanks(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Takes bytes while `f` holds. `f` must only accept ASCII or reject only ASCII so the
    /// cursor ends on a char boundary (true for every caller: they stop at ASCII delimiters).
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if !f(b) {
                break;
            }
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or_default()
    }

    /// Reads a double-quoted string starting at the current `"`, handling `\\`, `\"` and `\n`
    /// (other escapes are kept as written, like Prometheus does).
    fn quoted_string(&mut self) -> Result<String, String> {
        self.bump(); // opening quote
        let start = self.pos;
        let bytes = self.s.as_bytes();
        let mut has_escape = false;
        loop {
            match bytes.get(self.pos) {
                None => return Err("unterminated quoted string: expected '\"'".to_string()),
                Some(b'"') => break,
                Some(b'\\') => {
                    has_escape = true;
                    self.pos += 1;
                    if self.pos < bytes.len() {
                        // Skip the escaped byte; if it starts a multi-byte char the loop just
                        // walks over its continuation bytes, which are never '"' or '\\'.
                        self.pos += 1;
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
        let raw = self.s.get(start..self.pos).unwrap_or_default();
        self.pos += 1; // closing quote
        if !has_escape {
            return Ok(raw.to_string());
        }
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(ch) = chars.next() {
            if ch != '\\' {
                out.push(ch);
                continue;
            }
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
