//! OpenMetrics 1.0 text format, what targets answer when Prometheus' scraper asks for
//! `application/openmetrics-text`. It differs from the 0.0.4 text format in ways that change
//! the data, not just the syntax: timestamps are seconds (floats), counters are exposed as
//! `<family>_total` with an optional `<family>_created` start time, samples may carry an
//! exemplar (`# {trace_id="..."} 1.0 1620000000.123`), there are more metric types (`info`,
//! `stateset`, `gaugehistogram`, `unknown`) and a `# UNIT` line, and the exposition must end
//! with `# EOF`.
//!
//! The grammar is strict and so is this parser: single spaces between tokens, no blank lines,
//! no free-form comments, only the `\\`, `\"` and `\n` escapes, metric families neither
//! interleaved nor repeated, sample names that fit their family's type, and the value rules of
//! the spec (counters and buckets not negative, `info` samples 1, `stateset` samples 0 or 1).
//! Each error names the line and what was expected there.

use std::collections::HashMap;

use sextant_model::{Labels, Metadata, MetricType, Sample, METRIC_NAME};

use super::Cursor as Cur;
use super::{parse_value, Created, Exemplar, ParseError, TextBatch};

/// Longest exemplar label set (names plus values, in characters) the spec allows.
const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

/// Parses an OpenMetrics exposition. `default_ts` (ms) applies to samples without a timestamp.
pub fn parse_openmetrics(input: &str, default_ts: i64) -> Result<TextBatch, ParseError> {
    let mut p = Parser {
        batch: TextBatch::default(),
        family: None,
        families: HashMap::new(),
        sample_names: HashMap::new(),
        default_ts,
    };
    let lines: Vec<&str> = input.split('\n').collect();
    for (i, &line) in lines.iter().enumerate() {
        let line_no = i + 1;
        let err = |msg: String| ParseError { line: line_no, msg };
        if line == "# EOF" {
            // Only an optional final newline may follow.
            let rest = &lines[i + 1..];
            if !(rest.is_empty() || rest == [""]) {
                return Err(ParseError {
                    line: line_no + 1,
                    msg: format!("unexpected data after \"# EOF\" on line {line_no}"),
                });
            }
            p.close_family();
            return Ok(p.batch);
        }
        if i + 1 == lines.len() {
            // The last piece: either empty (the input ended with a newline) or a line without
            // one; either way "# EOF" never came.
            return Err(err(
                "missing \"# EOF\": an OpenMetrics exposition must end with a \"# EOF\" line"
                    .to_string(),
            ));
        }
        if line.is_empty() {
            return Err(err(
                "empty line: OpenMetrics does not allow blank lines".to_string()
            ));
        }
        if line.contains('\r') {
            return Err(err(
                "carriage return: OpenMetrics lines end with \\n only".to_string()
            ));
        }
        if line.starts_with('#') {
            p.meta_line(line, line_no).map_err(err)?;
        } else {
            p.sample_line(line, line_no).map_err(err)?;
        }
    }
    // `split` always yields at least one piece, so the loop returned.
    Err(ParseError {
        line: 1,
        msg: "missing \"# EOF\"".to_string(),
    })
}

/// The family whose lines are being read.
struct Family {
    name: String,
    kind: MetricType,
    /// Index into `batch.metadata` once a HELP, TYPE or UNIT line was seen.
    meta: Option<usize>,
    has_help: bool,
    has_type: bool,
    has_unit: bool,
    has_samples: bool,
}

struct Parser {
    batch: TextBatch,
    family: Option<Family>,
    /// Every family seen so far and the line it started on (to reject repeats).
    families: HashMap<String, usize>,
    /// Sample names seen so far and the family they belonged to (to reject interleaving).
    sample_names: HashMap<String, String>,
    default_ts: i64,
}

impl Parser {
    fn close_family(&mut self) {
        self.family = None;
    }

    /// Makes `name` the current family, starting it if needed.
    fn enter_family(&mut self, name: &str, line_no: usize) -> Result<&mut Family, String> {
        if self.family.as_ref().is_some_and(|f| f.name == name) {
            return self
                .family
                .as_mut()
                .ok_or_else(|| "internal: no family".to_string());
        }
        if let Some(first) = self.families.get(name) {
            return Err(format!(
                "metric family {name:?} already appeared (from line {first}); OpenMetrics does \
                 not allow a family to be repeated or interleaved with others"
            ));
        }
        self.families.insert(name.to_string(), line_no);
        Ok(self.family.insert(Family {
            name: name.to_string(),
            kind: MetricType::Unknown,
            meta: None,
            has_help: false,
            has_type: false,
            has_unit: false,
            has_samples: false,
        }))
    }

    /// `# HELP name text`, `# TYPE name type`, `# UNIT name unit`.
    fn meta_line(&mut self, line: &str, line_no: usize) -> Result<(), String> {
        let (keyword, rest) = if let Some(r) = line.strip_prefix("# HELP ") {
            ("HELP", r)
        } else if let Some(r) = line.strip_prefix("# TYPE ") {
            ("TYPE", r)
        } else if let Some(r) = line.strip_prefix("# UNIT ") {
            ("UNIT", r)
        } else {
            return Err(format!(
                "invalid comment {:?}: OpenMetrics only allows \"# HELP\", \"# TYPE\", \"# UNIT\" \
                 and \"# EOF\" lines (with single spaces)",
                shorten(line)
            ));
        };
        let mut c = Cur::new(rest);
        let name = match c.peek() {
            Some(b'"') => c.quoted()?,
            Some(b) if is_metric_start(b) => c.take_while(is_metric_char).to_string(),
            _ => return Err(format!("expected a metric name after \"# {keyword} \"")),
        };
        if name.is_empty() {
            return Err(format!("empty metric name in \"# {keyword}\""));
        }
        let text = match c.peek() {
            None => "",
            Some(b' ') => c.rest().get(1..).unwrap_or_default(),
            Some(_) => {
                return Err(format!(
                    "expected a space after the metric name {name:?} in \"# {keyword}\""
                ))
            }
        };
        let fam = self.enter_family(&name, line_no)?;
        if fam.has_samples {
            return Err(format!(
                "\"# {keyword}\" for {name:?} after its samples: metadata must come first"
            ));
        }
        let dup = match keyword {
            "HELP" => std::mem::replace(&mut fam.has_help, true),
            "TYPE" => std::mem::replace(&mut fam.has_type, true),
            _ => std::mem::replace(&mut fam.has_unit, true),
        };
        if dup {
            return Err(format!("second \"# {keyword}\" line for {name:?}"));
        }
        let idx = match fam.meta {
            Some(i) => i,
            None => {
                self.batch.metadata.push(Metadata {
                    metric_family: name.clone(),
                    ..Default::default()
                });
                let i = self.batch.metadata.len() - 1;
                if let Some(f) = self.family.as_mut() {
                    f.meta = Some(i);
                }
                i
            }
        };
        match keyword {
            "HELP" => {
                let help = unescape(text).map_err(|e| format!("in HELP text: {e}"))?;
                self.batch.metadata[idx].help = help;
            }
            "TYPE" => {
                let kind = match text {
                    "counter" => MetricType::Counter,
                    "gauge" => MetricType::Gauge,
                    "histogram" => MetricType::Histogram,
                    "gaugehistogram" => MetricType::GaugeHistogram,
                    "summary" => MetricType::Summary,
                    "info" => MetricType::Info,
                    "stateset" => MetricType::StateSet,
                    "unknown" => MetricType::Unknown,
                    "" => return Err(format!("expected a metric type after \"# TYPE {name}\"")),
                    other => {
                        return Err(format!(
                            "invalid metric type {other:?}: expected counter, gauge, histogram, \
                             gaugehistogram, summary, info, stateset or unknown"
                        ))
                    }
                };
                self.batch.metadata[idx].kind = kind;
                if let Some(f) = self.family.as_mut() {
                    f.kind = kind;
                }
            }
            _ => {
                let unit = text;
                if !unit.is_empty() {
                    let ok = name
                        .strip_suffix(unit)
                        .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('_'));
                    if !ok {
                        return Err(format!(
                            "unit {unit:?} is not a suffix of the metric name {name:?}: \
                             expected a name ending in \"_{unit}\""
                        ));
                    }
                }
                self.batch.metadata[idx].unit = unit.to_string();
            }
        }
        Ok(())
    }

    /// `name{labels} value [timestamp] [# {exemplar labels} value [timestamp]]`.
    fn sample_line(&mut self, line: &str, line_no: usize) -> Result<(), String> {
        let mut c = Cur::new(line);
        let mut name: Option<String> = None;
        let mut labels: Vec<(String, String)> = Vec::new();
        match c.peek() {
            Some(b'{') => {}
            Some(b) if is_metric_start(b) => {
                name = Some(c.take_while(is_metric_char).to_string());
            }
            _ => {
                return Err(format!(
                    "expected a metric name, '{{' or '#' at the start of the line, got {:?}",
                    c.peek_char().unwrap_or('?')
                ))
            }
        }
        if c.peek() == Some(b'{') {
            c.bump();
            parse_labels(&mut c, Some(&mut name), &mut labels)?;
        }
        let Some(name) = name else {
            return Err(
                "missing metric name: expected a name before '{' or a quoted name first inside"
                    .to_string(),
            );
        };
        if name.is_empty() {
            return Err("empty metric name".to_string());
        }
        let value = space_token(&mut c, || format!("a space and a value after {name:?}"))?;
        let v = parse_value(value).ok_or_else(|| {
            format!("invalid value {value:?}: expected a float, NaN, +Inf or -Inf")
        })?;
        let mut t = self.default_ts;
        let mut exemplar = None;
        if c.peek() == Some(b' ') {
            if c.rest().starts_with(" # ") {
                exemplar = Some(c.rest().get(3..).unwrap_or_default());
            } else {
                let tok = space_token(&mut c, || "a timestamp".to_string())?;
                t = parse_timestamp(tok)?;
                if c.rest().starts_with(" # ") {
                    exemplar = Some(c.rest().get(3..).unwrap_or_default());
                } else if !c.at_end() {
                    return Err(format!(
                        "unexpected {:?} after the timestamp: expected end of line or \" # {{\" \
                         and an exemplar",
                        shorten(c.rest())
                    ));
                }
            }
        } else if !c.at_end() {
            return Err(format!(
                "unexpected {:?} after the value: expected a space",
                shorten(c.rest())
            ));
        }

        // Which family does the sample belong to?
        let current = self
            .family
            .as_ref()
            .and_then(|f| suffix_in(&f.name, f.kind, &name).map(|s| (f.name.clone(), f.kind, s)));
        let (family, kind, suffix) = match current {
            Some(x) => x,
            None => {
                if let Some(f) = self
                    .family
                    .as_ref()
                    .filter(|f| f.has_type && f.name == name)
                {
                    return Err(format!(
                        "sample {name:?} does not fit its {} family: expected {}",
                        f.kind.as_str(),
                        expected_names(&f.name, f.kind)
                    ));
                }
                // A sample without metadata is a family of type unknown on its own.
                (name.clone(), MetricType::Unknown, "")
            }
        };
        if let Some(prev) = self.sample_names.get(&name) {
            if self.family.as_ref().is_none_or(|f| &f.name != prev) {
                return Err(format!(
                    "samples of {name:?} are interleaved with other families: OpenMetrics \
                     requires all samples of a family to be together"
                ));
            }
        } else {
            self.sample_names.insert(name.clone(), family.clone());
        }
        self.enter_family(&family, line_no)?.has_samples = true;

        check_sample(&family, kind, suffix, &name, &labels, v)?;

        if suffix == "_created" {
            if !v.is_finite() {
                return Err(format!(
                    "{name:?}: a _created value must be a finite number of seconds"
                ));
            }
            self.batch.created.push(Created {
                family: family.clone(),
                labels: Labels::from_pairs(labels.iter().cloned()),
                created_ms: match decimal_seconds_to_ms(value) {
                    Some(ms) => ms,
                    None => seconds_to_ms(v)?,
                },
            });
        }
        labels.push((METRIC_NAME.to_string(), name));
        labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("duplicate label name {:?}", w[0].0));
        }
        let sample_idx = self.batch.samples.len();
        self.batch
            .samples
            .push((Labels::from_pairs(labels), Sample::new(t, v)));

        if let Some(ex) = exemplar {
            let allowed = matches!(
                (kind, suffix),
                (MetricType::Counter, "_total")
                    | (
                        MetricType::Histogram | MetricType::GaugeHistogram,
                        "_bucket"
                    )
            );
            if !allowed {
                return Err(format!(
                    "exemplar on {:?}: OpenMetrics allows exemplars only on counter _total and \
                     histogram _bucket samples",
                    self.batch.samples[sample_idx]
                        .0
                        .metric_name()
                        .unwrap_or_default()
                ));
            }
            let mut e = parse_exemplar(ex)?;
            e.sample = sample_idx;
            self.batch.exemplars.push(e);
        }
        Ok(())
    }
}

/// Parses `{labels} value [timestamp]` after `" # "`.
fn parse_exemplar(s: &str) -> Result<Exemplar, String> {
    let mut c = Cur::new(s);
    if c.peek() != Some(b'{') {
        return Err("expected '{' to start the exemplar's labels after \" # \"".to_string());
    }
    c.bump();
    let mut labels = Vec::new();
    parse_labels(&mut c, None, &mut labels)?;
    let chars: usize = labels
        .iter()
        .map(|(n, v)| n.chars().count() + v.chars().count())
        .sum();
    if chars > MAX_EXEMPLAR_LABEL_CHARS {
        return Err(format!(
            "exemplar labels are {chars} characters long; OpenMetrics allows at most \
             {MAX_EXEMPLAR_LABEL_CHARS}"
        ));
    }
    let mut sorted = labels.clone();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("duplicate exemplar label name {:?}", w[0].0));
    }
    let value = space_token(&mut c, || "a space and the exemplar's value".to_string())?;
    let v = parse_value(value).ok_or_else(|| {
        format!("invalid exemplar value {value:?}: expected a float, NaN, +Inf or -Inf")
    })?;
    let timestamp = if c.at_end() {
        None
    } else {
        let tok = space_token(&mut c, || {
            "a space and the exemplar's timestamp".to_string()
        })?;
        let t = parse_timestamp(tok).map_err(|e| format!("exemplar: {e}"))?;
        if !c.at_end() {
            return Err(format!(
                "unexpected {:?} after the exemplar's timestamp: expected end of line",
                shorten(c.rest())
            ));
        }
        Some(t)
    };
    Ok(Exemplar {
        sample: 0,
        labels: Labels::from_pairs(labels),
        value: v,
        timestamp,
    })
}

/// The suffixes a sample name may add to its family name for each type.
fn suffixes(kind: MetricType) -> &'static [&'static str] {
    match kind {
        MetricType::Counter => &["_total", "_created"],
        MetricType::Histogram => &["_bucket", "_count", "_sum", "_created"],
        MetricType::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
        MetricType::Summary => &["", "_count", "_sum", "_created"],
        MetricType::Info => &["_info"],
        MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => &[""],
    }
}

/// If `sample` belongs to family `family` of type `kind`, the suffix it uses.
fn suffix_in(family: &str, kind: MetricType, sample: &str) -> Option<&'static str> {
    let rest = sample.strip_prefix(family)?;
    suffixes(kind).iter().copied().find(|s| *s == rest)
}

fn expected_names(family: &str, kind: MetricType) -> String {
    suffixes(kind)
        .iter()
        .map(|s| format!("{family}{s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The spec's per-type rules on labels and values.
fn check_sample(
    family: &str,
    kind: MetricType,
    suffix: &str,
    name: &str,
    labels: &[(String, String)],
    v: f64,
) -> Result<(), String> {
    let has = |l: &str| labels.iter().any(|(n, _)| n == l);
    let non_negative = |what: &str| {
        if v < 0.0 || v.is_nan() {
            Err(format!(
                "{name:?}: {what} must not be negative or NaN, got {v}"
            ))
        } else {
            Ok(())
        }
    };
    match (kind, suffix) {
        (MetricType::Counter, "_total") => non_negative("a counter")?,
        (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => {
            if !has("le") {
                return Err(format!(
                    "{name:?}: a histogram bucket needs an \"le\" label"
                ));
            }
            non_negative("a bucket count")?;
        }
        (MetricType::Histogram | MetricType::Summary, "_count")
        | (MetricType::GaugeHistogram, "_gcount") => non_negative("a count")?,
        (MetricType::Summary, "") if !has("quantile") => {
            return Err(format!(
                "{name:?}: a summary quantile sample needs a \"quantile\" label"
            ));
        }
        (MetricType::Info, _) if v != 1.0 => {
            return Err(format!(
                "{name:?}: an info sample must have the value 1, got {v}"
            ));
        }
        (MetricType::StateSet, _) => {
            if !has(family) {
                return Err(format!(
                    "{name:?}: a stateset sample needs a label named after the family ({family:?})"
                ));
            }
            if v != 0.0 && v != 1.0 {
                return Err(format!(
                    "{name:?}: a stateset sample must have the value 0 or 1, got {v}"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Parses the inside of `{...}` after `{` up to and including `}`: `name="value"` pairs
/// separated by commas (a trailing comma allowed), no blanks. With `metric_name`, a lone quoted
/// string is the metric name (UTF-8 names, as Prometheus 3 writes them).
fn parse_labels(
    c: &mut Cur<'_>,
    mut metric_name: Option<&mut Option<String>>,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let mut first = true;
    loop {
        match c.peek() {
            Some(b'}') => {
                c.bump();
                return Ok(());
            }
            None => return Err("unterminated label set: expected '}'".to_string()),
            _ => {}
        }
        let (lname, quoted) = match c.peek() {
            Some(b'"') => (c.quoted()?, true),
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => (
                c.take_while(|b| b.is_ascii_alphanumeric() || b == b'_')
                    .to_string(),
                false,
            ),
            _ => {
                return Err(format!(
                    "expected a label name or '}}', got {:?}",
                    c.peek_char().unwrap_or('?')
                ))
            }
        };
        match c.peek() {
            Some(b'=') => {
                c.bump();
                if c.peek() != Some(b'"') {
                    return Err(format!(
                        "expected a quoted value right after '{lname}=', like {lname}=\"value\""
                    ));
                }
                let value = c.quoted()?;
                if lname.is_empty() {
                    return Err("empty label name".to_string());
                }
                out.push((lname, value));
            }
            Some(b',' | b'}') if quoted && first => match metric_name.as_deref_mut() {
                Some(slot @ None) => {
                    if lname.is_empty() {
                        return Err("empty metric name".to_string());
                    }
                    *slot = Some(lname);
                }
                Some(Some(before)) => {
                    return Err(format!(
                        "metric name given twice: {before:?} before the braces and {lname:?} inside"
                    ))
                }
                None => return Err(format!("expected '=' after label name {lname:?}")),
            },
            _ => return Err(format!("expected '=' after label name {lname:?}")),
        }
        first = false;
        match c.peek() {
            Some(b',') => c.bump(),
            Some(b'}') => {}
            None => return Err("unterminated label set: expected ',' or '}'".to_string()),
            Some(_) => {
                return Err(format!(
                    "expected ',' or '}}' after {:?}, got {:?} (OpenMetrics allows no blanks \
                     inside braces)",
                    out.last()
                        .map(|l| l.0.as_str())
                        .unwrap_or(lname_or_name(&metric_name)),
                    c.peek_char().unwrap_or('?')
                ))
            }
        }
    }
}

fn lname_or_name<'a>(n: &'a Option<&mut Option<String>>) -> &'a str {
    n.as_ref()
        .and_then(|n| n.as_deref())
        .unwrap_or("the metric name")
}

/// Expects one space followed by a token that runs to the next space or the end of the line.
fn space_token<'a>(c: &mut Cur<'a>, what: impl Fn() -> String) -> Result<&'a str, String> {
    if c.peek() != Some(b' ') {
        return Err(format!("expected {}", what()));
    }
    c.bump();
    let tok = c.take_while(|b| b != b' ');
    if tok.is_empty() {
        return Err(format!(
            "expected {} (OpenMetrics separates tokens with exactly one space)",
            what()
        ));
    }
    Ok(tok)
}

/// An OpenMetrics timestamp: seconds since the epoch as a float, converted to milliseconds the
/// way Prometheus does (truncating sub-millisecond digits). Plain decimals are converted
/// digit by digit, so `1075471842.1` is exactly 1075471842100 ms rather than the float
/// product's ...099.
fn parse_timestamp(tok: &str) -> Result<i64, String> {
    if let Some(ms) = decimal_seconds_to_ms(tok) {
        return Ok(ms);
    }
    let secs = parse_value(tok).ok_or_else(|| {
        format!("invalid timestamp {tok:?}: expected seconds since the epoch, like 1620000000.123")
    })?;
    seconds_to_ms(secs).map_err(|_| {
        format!("invalid timestamp {tok:?}: expected a finite number of seconds since the epoch")
    })
}

/// `[+-]digits[.digits]` as milliseconds (truncated toward zero), if it is that shape and fits.
fn decimal_seconds_to_ms(tok: &str) -> Option<i64> {
    let (neg, unsigned) = match tok.as_bytes().first()? {
        b'-' => (true, &tok[1..]),
        b'+' => (false, &tok[1..]),
        _ => (false, tok),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ms = int.parse::<i64>().ok()?.checked_mul(1000)?;
    let mut scale = 100;
    for b in frac.bytes().take(3) {
        ms = ms.checked_add(i64::from(b - b'0') * scale)?;
        scale /= 10;
    }
    Some(if neg { -ms } else { ms })
}

fn seconds_to_ms(secs: f64) -> Result<i64, String> {
    let ms = secs * 1000.0;
    // i64::MAX as f64 rounds up to 2^63, so the bound is exclusive.
    if !ms.is_finite() || ms >= i64::MAX as f64 || ms < i64::MIN as f64 {
        return Err(format!("{secs} seconds is out of range"));
    }
    Ok(ms as i64)
}

/// The escapes OpenMetrics defines: `\\`, `\"` and `\n`; anything else is an error.
fn unescape(s: &str) -> Result<String, String> {
    if !s.contains('\\') {
        return Ok(s.to_string());
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
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            Some(other) => {
                return Err(format!(
                    "invalid escape \"\\{other}\": OpenMetrics allows only \\\\, \\\" and \\n"
                ))
            }
            None => return Err("dangling backslash at the end".to_string()),
        }
    }
    Ok(out)
}

fn is_metric_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_metric_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// At most 40 characters of `s`, for error messages.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// OpenMetrics' strict string rules on top of the text parser's cursor.
impl Cur<'_> {
    /// A double-quoted string at the cursor, unescaped strictly.
    fn quoted(&mut self) -> Result<String, String> {
        self.bump(); // opening quote
        let start = self.pos;
        let bytes = self.s.as_bytes();
        loop {
            match bytes.get(self.pos) {
                None => return Err("unterminated quoted string: expected '\"'".to_string()),
                Some(b'"') => break,
                Some(b'\\') => self.pos = (self.pos + 2).min(bytes.len()),
                Some(_) => self.pos += 1,
            }
        }
        // A backslash may have skipped into the middle of a multi-byte char; `get` then fails
        // and the string is reported as malformed rather than sliced wrongly.
        let raw = self
            .s
            .get(start..self.pos)
            .ok_or_else(|| "invalid escape inside a quoted string".to_string())?;
        self.pos += 1; // closing quote
        unescape(raw)
    }
}

#[cfg(test)]
mod tests;
