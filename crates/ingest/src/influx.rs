//! InfluxDB line protocol, as sent by Telegraf, InfluxDB client libraries and many IoT agents
//! to `/write` (v1) and `/api/v2/write`. Points are mapped to Prometheus series the way
//! VictoriaMetrics does it, so dashboards and queries carry over: every numeric field becomes
//! the series `<measurement>_<field>` with the point's tags as labels, and the `db` query
//! parameter becomes a `db` label unless the line has a `db` tag. Unlike VictoriaMetrics,
//! names are made Prometheus-compatible (anything outside `[a-zA-Z0-9_:]` becomes `_`, as its
//! `-usePromCompatibleNaming` does) and string fields are skipped rather than stored as 0.
//!
//! A bad line does not spoil the request: it is counted and the first one reported with its
//! number and the offending field, while every valid line is kept.

use sextant_model::{Labels, Sample, METRIC_NAME};

use crate::remote_write::DecodeLimits;
use crate::text::TextBatch;

/// Unit of the timestamps in a write request (`precision` query parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// Accepts InfluxDB v2's `ns`, `us`, `ms`, `s` and v1's `n`, `u`, `ms`, `s`, `m`, `h`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" | "µ" | "µs" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            _ => return None,
        })
    }

    /// Converts a timestamp in this unit to milliseconds (truncating), if it fits.
    pub fn to_ms(self, t: i64) -> Option<i64> {
        match self {
            Precision::Nanoseconds => Some(t / 1_000_000),
            Precision::Microseconds => Some(t / 1_000),
            Precision::Milliseconds => Some(t),
            Precision::Seconds => t.checked_mul(1_000),
            Precision::Minutes => t.checked_mul(60_000),
            Precision::Hours => t.checked_mul(3_600_000),
        }
    }
}

/// How to read one request.
#[derive(Clone, Debug, Default)]
pub struct InfluxOptions {
    pub precision: Precision,
    /// The `db` query parameter; becomes the `db` label of lines without a `db` tag.
    pub db: Option<String>,
    /// Timestamp (ms) for lines without one: the time the request arrived.
    pub now_ms: i64,
    /// Per-series limits (0 = unlimited), as for remote write.
    pub limits: DecodeLimits,
}

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct LineError {
    pub line: usize,
    pub msg: String,
}

/// The result of parsing a request: samples from valid lines and a count of invalid ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InfluxBatch {
    /// Samples of all valid lines, in input order.
    pub batch: TextBatch,
    /// Lines that were malformed and skipped.
    pub invalid_lines: usize,
    /// The first of them.
    pub first_error: Option<LineError>,
    /// Lines that were parsed (valid or not), excluding blanks and comments.
    pub lines: usize,
    /// String fields skipped (they have no numeric value).
    pub skipped_string_fields: usize,
    /// Lines refused by a per-series limit, by the limit named in the message's
    /// `(limit <name>)` tag (a handful of keys at most).
    pub limit_errors: std::collections::BTreeMap<String, u64>,
}

/// Parses a line-protocol body. Never fails as a whole: bad lines are counted in the result.
pub fn parse_influx(body: &[u8], opts: &InfluxOptions) -> InfluxBatch {
    let mut out = InfluxBatch::default();
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line_no = i + 1;
        let start = raw
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t'))
            .unwrap_or(raw.len());
        let raw = &raw[start..];
        if raw.is_empty() || raw[0] == b'#' {
            continue;
        }
        out.lines += 1;
        let res = std::str::from_utf8(raw)
            .map_err(|e| format!("invalid UTF-8 at column {}", start + e.valid_up_to() + 1))
            .and_then(|line| parse_line(line, opts, &mut out));
        if let Err(msg) = res {
            out.invalid_lines += 1;
            if let Some(tag) = msg
                .rfind("(limit ")
                .and_then(|i| msg[i + 7..].split(')').next())
            {
                *out.limit_errors.entry(tag.to_string()).or_default() += 1;
            }
            if out.first_error.is_none() {
                out.first_error = Some(LineError { line: line_no, msg });
            }
        }
    }
    out
}

/// A parsed field value.
enum FieldValue {
    Number(f64),
    Str,
}

/// Parses one line and appends its samples; on error appends nothing.
fn parse_line(line: &str, opts: &InfluxOptions, out: &mut InfluxBatch) -> Result<(), String> {
    let b = line.as_bytes();
    // Measurement: up to an unescaped ',' or ' '.
    let m_end = find_unescaped(b, 0, |c| c == b',' || c == b' ');
    let measurement = unescape(&line[..m_end]);
    if measurement.is_empty() {
        return Err("missing measurement name at the start of the line".to_string());
    }
    let mut pos = m_end;
    let mut tags: Vec<(String, String)> = Vec::new();
    while b.get(pos) == Some(&b',') {
        let start = pos + 1;
        let end = find_unescaped(b, start, |c| c == b',' || c == b' ');
        let pair = &line[start..end];
        let eq = find_unescaped(pair.as_bytes(), 0, |c| c == b'=');
        if eq == pair.len() {
            return Err(format!(
                "tag {:?} has no '=': expected key=value",
                unescape(pair)
            ));
        }
        let key = unescape(&pair[..eq]);
        let value = unescape(&pair[eq + 1..]);
        if key.is_empty() {
            return Err(format!("tag with value {value:?} has an empty key"));
        }
        if value.is_empty() {
            return Err(format!("tag {key:?} has an empty value"));
        }
        tags.push((key, value));
        pos = end;
    }
    if b.get(pos) != Some(&b' ') {
        return Err(format!(
            "expected a space and the field set after {:?}",
            &line[..pos]
        ));
    }
    while b.get(pos) == Some(&b' ') {
        pos += 1;
    }
    if pos >= b.len() {
        return Err(format!("missing fields after measurement {measurement:?}"));
    }

    // Fields: key=value pairs up to an unescaped, unquoted space.
    let mut fields: Vec<(String, FieldValue)> = Vec::new();
    loop {
        let key_end = find_unescaped(b, pos, |c| c == b'=' || c == b' ' || c == b',');
        let key = unescape(&line[pos..key_end]);
        if b.get(key_end) != Some(&b'=') {
            return Err(format!("field {key:?} has no '=': expected key=value"));
        }
        if key.is_empty() {
            return Err("field with an empty key".to_string());
        }
        let vstart = key_end + 1;
        let (value, vend) = if b.get(vstart) == Some(&b'"') {
            let end = quoted_end(b, vstart).ok_or_else(|| {
                format!("field {key:?}: unterminated string value, expected '\"'")
            })?;
            (FieldValue::Str, end)
        } else {
            let end = b[vstart..]
                .iter()
                .position(|&c| c == b',' || c == b' ')
                .map_or(b.len(), |p| vstart + p);
            let tok = &line[vstart..end];
            let v = parse_field_value(tok).map_err(|e| format!("field {key:?}: {e}"))?;
            (FieldValue::Number(v), end)
        };
        fields.push((key, value));
        pos = vend;
        match b.get(pos) {
            Some(b',') => pos += 1,
            Some(b' ') | None => break,
            Some(_) => {
                return Err(format!(
                    "unexpected {:?} after the value of field {:?}: expected ',' or a space",
                    &line[pos..],
                    fields.last().map(|f| f.0.as_str()).unwrap_or_default()
                ))
            }
        }
    }
    while b.get(pos) == Some(&b' ') {
        pos += 1;
    }
    let t = if pos >= b.len() {
        opts.now_ms
    } else {
        let tok = &line[pos..];
        let raw: i64 = tok.parse().map_err(|_| {
            format!(
                "invalid timestamp {tok:?}: expected an integer (precision {:?})",
                opts.precision
            )
        })?;
        opts.precision
            .to_ms(raw)
            .ok_or_else(|| format!("timestamp {tok:?} is out of range"))?
    };

    // Labels shared by all fields of the line.
    let mut labels: Vec<(String, String)> = Vec::with_capacity(tags.len() + 2);
    let mut has_db = false;
    for (k, v) in tags {
        let name = sanitize(&k, false);
        if name == METRIC_NAME {
            return Err(format!("tag {k:?} is reserved for the metric name"));
        }
        has_db |= name == "db";
        labels.push((name, v));
    }
    if !has_db {
        if let Some(db) = opts.db.as_deref().filter(|d| !d.is_empty()) {
            labels.push(("db".to_string(), db.to_string()));
        }
    }
    labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!(
            "two tags map to the same label name {:?} (names are made Prometheus-compatible)",
            w[0].0
        ));
    }
    check_limits(&labels, &opts.limits)?;

    let mut staged: Vec<(Labels, Sample)> = Vec::with_capacity(fields.len());
    let mut strings = 0;
    for (key, value) in fields {
        let v = match value {
            FieldValue::Number(v) => v,
            FieldValue::Str => {
                strings += 1;
                continue;
            }
        };
        let name = sanitize(&format!("{measurement}_{key}"), true);
        if opts.limits.max_label_value_len > 0 && name.len() > opts.limits.max_label_value_len {
            return Err(format!(
                "metric name {name:?} is longer than {} bytes (limit label_value_length)",
                opts.limits.max_label_value_len
            ));
        }
        let pairs = labels
            .iter()
            .cloned()
            .chain(std::iter::once((METRIC_NAME.to_string(), name)));
        staged.push((Labels::from_pairs(pairs), Sample::new(t, v)));
    }
    out.skipped_string_fields += strings;
    out.batch.samples.extend(staged);
    Ok(())
}

fn check_limits(labels: &[(String, String)], l: &DecodeLimits) -> Result<(), String> {
    if l.max_labels_per_series > 0 && labels.len() + 1 > l.max_labels_per_series {
        return Err(format!(
            "{} labels (tags, db and the metric name) exceed the limit of {} (limit labels_per_series)",
            labels.len() + 1,
            l.max_labels_per_series
        ));
    }
    for (n, v) in labels {
        if l.max_label_name_len > 0 && n.len() > l.max_label_name_len {
            return Err(format!(
                "tag key {n:?} is longer than {} bytes (limit label_name_length)",
                l.max_label_name_len
            ));
        }
        if l.max_label_value_len > 0 && v.len() > l.max_label_value_len {
            return Err(format!(
                "value of tag {n:?} is longer than {} bytes (limit label_value_length)",
                l.max_label_value_len
            ));
        }
    }
    Ok(())
}

/// Field values: floats (`1`, `-1.5e3`), integers (`5i`), unsigned integers (`5u`) and
/// booleans (`t`, `T`, `true`, `True`, `TRUE`, `f`, ... ). Strings are handled by the caller.
fn parse_field_value(tok: &str) -> Result<f64, String> {
    if tok.is_empty() {
        return Err("missing value after '='".to_string());
    }
    match tok {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(1.0),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(0.0),
        _ => {}
    }
    if let Some(int) = tok
        .strip_suffix('i')
        .filter(|s| s.bytes().any(|c| c.is_ascii_digit()))
    {
        return int.parse::<i64>().map(|v| v as f64).map_err(|_| {
            format!("invalid integer {tok:?}: expected digits followed by 'i' (64-bit signed)")
        });
    }
    if let Some(uint) = tok
        .strip_suffix('u')
        .filter(|s| s.bytes().any(|c| c.is_ascii_digit()))
    {
        if uint.starts_with(['+', '-']) {
            return Err(format!("invalid unsigned integer {tok:?}: no sign allowed"));
        }
        return uint.parse::<u64>().map(|v| v as f64).map_err(|_| {
            format!("invalid unsigned integer {tok:?}: expected digits followed by 'u'")
        });
    }
    // Line protocol floats are plain decimals with an optional exponent: no NaN or Inf.
    let ok_chars = tok
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'e' | b'E'));
    let v = if ok_chars && tok.bytes().any(|c| c.is_ascii_digit()) {
        tok.parse::<f64>().ok()
    } else {
        None
    };
    match v {
        Some(v) if v.is_finite() => Ok(v),
        Some(_) => Err(format!("float {tok:?} is out of range")),
        None => Err(format!(
            "invalid value {tok:?}: expected a float, an integer like 5i, an unsigned like 5u, \
             a boolean (t, true, f, false) or a double-quoted string"
        )),
    }
}

/// Index of the first byte from `from` that `stop` accepts and is not escaped by a backslash,
/// or `b.len()`.
fn find_unescaped(b: &[u8], from: usize, stop: impl Fn(u8) -> bool) -> usize {
    let mut i = from;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            i += 2;
            continue;
        }
        if stop(b[i]) {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// Index just past the closing quote of a string starting at `start` (`\"` and `\\` escape).
fn quoted_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Removes the backslash of `\,`, `\ `, `\=` and `\\`; other backslashes stay (as InfluxDB and
/// VictoriaMetrics do).
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&n) = chars.peek() {
                if matches!(n, ',' | ' ' | '=' | '\\') {
                    out.push(n);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// Makes a Prometheus-compatible metric name (`metric`) or label name: every character outside
/// `[a-zA-Z0-9_]` (plus `:` for metric names) becomes `_`, and a leading digit gets a `_`
/// prefix.
pub fn sanitize(s: &str, metric: bool) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':') {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    out
}

#[cfg(test)]
mod tests;
