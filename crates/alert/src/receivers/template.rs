//! Notification templates the way Alertmanager renders them: Go text/template syntax (via
//! `gotmpl`) over Alertmanager's template data (`.Receiver`, `.Status`, `.Alerts`, `.GroupLabels`,
//! `.CommonLabels`, `.CommonAnnotations`, `.ExternalURL`), Alertmanager's function set, the
//! user's `templates:` files with their `define`s, and default templates re-created so that a
//! receiver with no message configured reads like Alertmanager's. As in Alertmanager, every
//! source is parsed twice: as text/template, and as html/template (gotmpl's context-aware
//! auto-escaping) for email HTML bodies and Telegram's HTML parse mode.
//!
//! `gotmpl` has no Go methods, so Alertmanager's methods (`.SortedPairs`, `.Names`, `.Values`,
//! `.Remove`, `.Alerts.Firing`, `.Alerts.Resolved`) are rewritten into calls of hidden functions
//! before parsing: `.GroupLabels.SortedPairs.Values` becomes
//! `(sxValues (sxSortedPairs .GroupLabels))`. The rewrite only touches those six names after a
//! field chain, a variable or a parenthesised expression inside actions.

use sextant_rules::gofmt;
use sextant_rules::template::{go_duration, humanize_duration, title, url_unescape};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use gotmpl::html::Template as HtmlTemplate;
use gotmpl::{FuncMap, MissingKey, Template, TemplateError as GoError, Value};
use sextant_model::time::{format_rfc3339_ms, now_ms, parse_timestamp_ms};

use crate::Notification;

/// A template file or template text could not be loaded or parsed.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template file {path}: {msg}")]
    File { path: String, msg: String },
    #[error("template {name:?}: {msg}")]
    Parse { name: String, msg: String },
    #[error("executing template {name:?}: {msg}")]
    Exec { name: String, msg: String },
}

/// Alertmanager's default notification templates, re-created for Sextant.
pub const DEFAULT_TEMPLATES: &str = include_str!("default.tmpl");

/// Largest template file read from disk.
const MAX_TEMPLATE_FILE: u64 = 4 << 20;

/// The parsed template set: defaults, then the user's files (which may redefine defaults),
/// parsed twice like Alertmanager does — as text/template and as html/template (contextual
/// auto-escaping, used for email HTML bodies and Telegram's HTML parse mode).
#[derive(Clone)]
pub struct Templates {
    text: Template,
    html: HtmlTemplate,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Default for Templates {
    fn default() -> Self {
        // The embedded defaults are tested to parse; if they ever did not, an empty set beats a panic.
        Self::from_sources(&[("default.tmpl".into(), DEFAULT_TEMPLATES.into())]).unwrap_or_else(
            |e| {
                tracing::error!(error = %e, "default notification templates do not parse");
                Templates {
                    text: text_template(),
                    html: html_template(),
                }
            },
        )
    }
}

/// Every map in Alertmanager's data is a `map[string]string`, where a missing key reads as "";
/// gotmpl prints its nil as Go's `<no value>` (escaped in HTML) instead.
fn drop_no_value(out: String) -> String {
    if out.contains("<no value>") || out.contains("&lt;no value&gt;") {
        out.replace("<no value>", "")
            .replace("&lt;no value&gt;", "")
    } else {
        out
    }
}

impl Templates {
    /// Defaults plus the files matched by Alertmanager-style `templates:` globs (the last path
    /// element may contain `*`, `?` and `[...]`; relative paths are resolved against `base_dir`).
    pub fn load(patterns: &[String], base_dir: &Path) -> Result<Self, TemplateError> {
        let mut sources = vec![("default.tmpl".to_string(), DEFAULT_TEMPLATES.to_string())];
        for p in patterns {
            let full = if Path::new(p).is_absolute() {
                Path::new(p).to_path_buf()
            } else {
                base_dir.join(p)
            };
            for path in glob_files(&full)? {
                let shown = path.display().to_string();
                let ferr = |msg: String| TemplateError::File {
                    path: shown.clone(),
                    msg,
                };
                let meta = std::fs::metadata(&path).map_err(|e| ferr(e.to_string()))?;
                if meta.len() > MAX_TEMPLATE_FILE {
                    return Err(ferr(format!("larger than {MAX_TEMPLATE_FILE} bytes")));
                }
                let text = std::fs::read_to_string(&path).map_err(|e| ferr(e.to_string()))?;
                sources.push((shown, text));
            }
        }
        Self::from_sources(&sources)
    }

    /// Defaults plus in-memory template sources `(name, text)`.
    pub fn from_sources(sources: &[(String, String)]) -> Result<Self, TemplateError> {
        let mut text = text_template();
        let mut html = html_template();
        for (name, src) in sources {
            let src = rewrite_methods(src);
            let perr = |e: GoError| TemplateError::Parse {
                name: name.clone(),
                msg: go_err(e),
            };
            text = text.parse(&src).map_err(perr)?;
            html = html.parse(&src).map_err(perr)?;
        }
        // Floats print as Go's fmt prints them (`1e+06`), see sextant_rules::gofmt.
        let text = gofmt::rewrite_template(text);
        Ok(Templates { text, html })
    }

    /// Checks that `text` parses against this set (for config validation).
    pub fn check(&self, text: &str) -> Result<(), TemplateError> {
        if !text.contains("{{") {
            return Ok(());
        }
        self.text
            .clone()
            .parse(&rewrite_methods(text))
            .map(|_| ())
            .map_err(|e| TemplateError::Parse {
                name: short(text),
                msg: go_err(e),
            })
    }

    /// Renders `text` (which may call `{{ template "..." . }}`) over `data` as text/template.
    pub fn execute(&self, text: &str, data: &Value) -> Result<String, TemplateError> {
        if !text.contains("{{") {
            return Ok(text.to_string());
        }
        let perr = |e: GoError| TemplateError::Parse {
            name: short(text),
            msg: go_err(e),
        };
        let xerr = |e: GoError| TemplateError::Exec {
            name: short(text),
            msg: go_err(e),
        };
        let t = self
            .text
            .clone()
            .parse(&rewrite_methods(text))
            .map_err(perr)?;
        let t = gofmt::rewrite_template(t);
        Ok(drop_no_value(t.execute_to_string(data).map_err(xerr)?))
    }

    /// Renders `text` as html/template: values are escaped for the HTML context they land in.
    pub fn execute_html(&self, text: &str, data: &Value) -> Result<String, TemplateError> {
        let perr = |e: GoError| TemplateError::Parse {
            name: short(text),
            msg: e.to_string(),
        };
        let xerr = |e: GoError| TemplateError::Exec {
            name: short(text),
            msg: e.to_string(),
        };
        let t = self
            .html
            .clone()
            .parse(&rewrite_methods(text))
            .map_err(perr)?;
        Ok(drop_no_value(t.execute_to_string(data).map_err(xerr)?))
    }

    /// The names of all defined templates (sorted).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .text
            .templates()
            .into_iter()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }
}

fn short(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// Expands a path whose last element may hold glob metacharacters.
fn glob_files(full: &Path) -> Result<Vec<std::path::PathBuf>, TemplateError> {
    let shown = full.display().to_string();
    let name = full.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains(['*', '?', '[']) {
        return Ok(vec![full.to_path_buf()]);
    }
    let dir = full.parent().unwrap_or(Path::new("."));
    let re = glob_regex(name).map_err(|msg| TemplateError::File {
        path: shown.clone(),
        msg,
    })?;
    let rd = std::fs::read_dir(dir).map_err(|e| TemplateError::File {
        path: shown.clone(),
        msg: e.to_string(),
    })?;
    let mut out: Vec<std::path::PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| re.is_match(n)))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

fn glob_regex(pat: &str) -> Result<regex::Regex, String> {
    let mut re = String::from("^");
    let mut chars = pat.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push('[');
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    match c {
                        '^' | '!' if re.ends_with('[') => re.push('^'),
                        '\\' | '[' => {
                            re.push('\\');
                            re.push(c)
                        }
                        _ => re.push(c),
                    }
                }
                re.push(']');
            }
            _ => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| format!("bad glob {pat:?}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Data

fn s(v: &str) -> Value {
    Value::String(Arc::from(v))
}

fn kv(m: &BTreeMap<String, String>) -> Value {
    Value::Map(Arc::new(
        m.iter()
            .map(|(k, v)| (Arc::from(k.as_str()), s(v)))
            .collect(),
    ))
}

/// Alertmanager's template data for a notification.
pub fn data(n: &Notification) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            let mut m = BTreeMap::new();
            m.insert(Arc::from("Status"), s(&a.status));
            m.insert(Arc::from("Labels"), kv(&a.labels));
            m.insert(Arc::from("Annotations"), kv(&a.annotations));
            m.insert(Arc::from("StartsAt"), s(&go_time(&a.starts_at)));
            m.insert(Arc::from("EndsAt"), s(&go_time(&a.ends_at)));
            m.insert(Arc::from("GeneratorURL"), s(&a.generator_url));
            m.insert(Arc::from("Fingerprint"), s(&a.fingerprint));
            Value::Map(Arc::new(m))
        })
        .collect();
    let mut m = BTreeMap::new();
    m.insert(Arc::from("Receiver"), s(&n.receiver));
    m.insert(Arc::from("Status"), s(&n.status));
    m.insert(Arc::from("Alerts"), Value::List(alerts.into()));
    m.insert(Arc::from("GroupLabels"), kv(&n.group_labels));
    m.insert(Arc::from("CommonLabels"), kv(&n.common_labels));
    m.insert(Arc::from("CommonAnnotations"), kv(&n.common_annotations));
    m.insert(Arc::from("ExternalURL"), s(&n.external_url));
    m.insert(Arc::from("GroupKey"), s(&n.group_key));
    Value::Map(Arc::new(m))
}

/// Go's `time.Time.String()` of an RFC 3339 time: `2006-01-02 15:04:05.5 +0000 UTC`.
pub fn go_time(rfc3339: &str) -> String {
    match parse_timestamp_ms(rfc3339) {
        Ok(ms) => go_time_ms(ms),
        Err(_) => rfc3339.to_string(),
    }
}

fn go_time_ms(ms: i64) -> String {
    go_time_z(&ZTime::utc(ms))
}

/// A time as Go's `time.Time` carries it through templates: an instant plus the zone it is
/// shown in (UTC unless `tz` moved it).
#[derive(Debug, Clone, PartialEq)]
pub struct ZTime {
    /// Unix milliseconds.
    pub ms: i64,
    /// Offset east of UTC in seconds.
    pub offset: i32,
    /// Zone abbreviation (`CET`, `EDT`, `UTC`).
    pub abbr: String,
}

impl ZTime {
    fn utc(ms: i64) -> ZTime {
        ZTime {
            ms,
            offset: 0,
            abbr: "UTC".into(),
        }
    }

    /// The same instant in `zone`.
    pub fn in_zone(&self, zone: &crate::tz::Zone) -> ZTime {
        let z = zone.lookup(self.ms.div_euclid(1000));
        ZTime {
            ms: self.ms,
            offset: z.offset,
            abbr: z.abbr,
        }
    }
}

/// `+hhmm`, `+hh:mm` or `+hh` for an offset in seconds.
fn go_offset(offset: i32, colon: bool, minutes: bool) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs();
    let (h, m) = (a / 3600, a / 60 % 60);
    match (minutes, colon) {
        (false, _) => format!("{sign}{h:02}"),
        (true, true) => format!("{sign}{h:02}:{m:02}"),
        (true, false) => format!("{sign}{h:02}{m:02}"),
    }
}

/// Go's `time.Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
fn go_time_z(t: &ZTime) -> String {
    let r = format_rfc3339_ms(t.ms + i64::from(t.offset) * 1000);
    let (date, rest) = r.split_once('T').unwrap_or((&r, ""));
    let rest = rest.trim_end_matches('Z');
    let rest = if rest.contains('.') {
        rest.trim_end_matches('0').trim_end_matches('.')
    } else {
        rest
    };
    let off = go_offset(t.offset, false, true);
    let abbr = if t.abbr.is_empty() { &off } else { &t.abbr };
    format!("{date} {rest} {off} {abbr}")
}

/// Parses a time as the templates carry it (Go time string or RFC 3339).
fn parse_any_time(v: &str) -> Option<ZTime> {
    let t = v.trim();
    let parts: Vec<&str> = t.split(' ').collect();
    if let [date, time, off, abbr] = parts[..] {
        let b = off.as_bytes();
        if b.len() == 5 && (b[0] == b'+' || b[0] == b'-') && b[1..].iter().all(u8::is_ascii_digit) {
            let h: i32 = off[1..3].parse().ok()?;
            let m: i32 = off[3..5].parse().ok()?;
            let offset = if b[0] == b'-' { -1 } else { 1 } * (h * 3600 + m * 60);
            let local = parse_timestamp_ms(&format!("{date}T{time}Z")).ok()?;
            return Some(ZTime {
                ms: local - i64::from(offset) * 1000,
                offset,
                abbr: abbr.to_string(),
            });
        }
    }
    parse_timestamp_ms(t).ok().map(ZTime::utc)
}

// ---------------------------------------------------------------------------------------------
// Functions

fn err(msg: impl Into<String>) -> GoError {
    GoError::Exec(msg.into())
}

fn arg<'a>(args: &'a [Value], i: usize, f: &str) -> gotmpl::Result<&'a Value> {
    args.get(i).ok_or_else(|| {
        err(format!(
            "wrong number of args for {f}: want {}, got {}",
            i + 1,
            args.len()
        ))
    })
}

fn str_arg(args: &[Value], i: usize, f: &str) -> gotmpl::Result<String> {
    match arg(args, i, f)? {
        Value::String(s) => Ok(s.to_string()),
        Value::Nil => Ok(String::new()),
        other => Ok(format!("{other}")),
    }
}

fn pairs(v: &Value) -> Vec<(Arc<str>, Value)> {
    match v {
        Value::Map(m) => {
            // Alertmanager's KV.SortedPairs: `alertname` first, then the rest sorted.
            let mut out: Vec<(Arc<str>, Value)> = Vec::with_capacity(m.len());
            if let Some(a) = m.get("alertname") {
                out.push((Arc::from("alertname"), a.clone()));
            }
            out.extend(
                m.iter()
                    .filter(|(k, _)| &***k != "alertname")
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            out
        }
        Value::List(l) => l
            .iter()
            .filter_map(|p| match p {
                Value::Map(m) => match m.get("Name") {
                    Some(Value::String(n)) => {
                        Some((n.clone(), m.get("Value").cloned().unwrap_or(Value::Nil)))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn alerts_with_status(v: &Value, status: &str) -> gotmpl::Result<Value> {
    match v {
        Value::List(l) => Ok(Value::List(
            l.iter()
                .filter(|a| matches!(a, Value::Map(m) if matches!(m.get("Status"), Some(Value::String(s)) if &**s == status)))
                .cloned()
                .collect::<Vec<_>>()
                .into(),
        )),
        Value::Nil => Ok(Value::List(Vec::new().into())),
        _ => Err(err(format!("can't call .{} on a non-list of alerts", if status == "firing" { "Firing" } else { "Resolved" }))),
    }
}

fn string_list(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l
            .iter()
            .map(|x| match x {
                Value::String(s) => s.to_string(),
                other => format!("{other}"),
            })
            .collect(),
        Value::Nil => Vec::new(),
        Value::String(s) => vec![s.to_string()],
        other => vec![format!("{other}")],
    }
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::String(s) | Value::Safe { s, .. } => serde_json::Value::String(s.to_string()),
        Value::List(l) => serde_json::Value::Array(l.iter().map(to_json).collect()),
        Value::Map(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
        }
        _ => serde_json::Value::Null,
    }
}

fn to_float(v: &Value) -> gotmpl::Result<f64> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| err(format!("can't convert {s:?} to a number"))),
        other => Err(err(format!("can't convert {other} to a number"))),
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

/// Go's `time.Format` for UTC times and the common layout elements.
pub fn go_format(ms: i64, layout: &str) -> String {
    go_format_z(&ZTime::utc(ms), layout)
}

/// Go's `time.Format` of a time in its zone, for the common layout elements.
pub fn go_format_z(t: &ZTime, layout: &str) -> String {
    let ms = t.ms + i64::from(t.offset) * 1000;
    let r = format_rfc3339_ms(ms); // YYYY-MM-DDTHH:MM:SS.mmm (local clock)
    let num = |a: usize, b: usize| {
        r.get(a..b)
            .and_then(|x| x.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let (y, mo, d, h, mi, se) = (
        num(0, 4),
        num(5, 7),
        num(8, 10),
        num(11, 13),
        num(14, 16),
        num(17, 19),
    );
    let frac = r.get(20..23).unwrap_or("000");
    let wd = DAYS[(ms.div_euclid(86_400_000).rem_euclid(7)) as usize];
    let month = MONTHS[(mo.max(1) - 1).min(11)];
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    // Longest tokens first, as Go's layout scanner does.
    let tokens: [(&str, String); 27] = [
        ("January", month.to_string()),
        ("Jan", month[..3].to_string()),
        ("Monday", wd.to_string()),
        ("Mon", wd[..3].to_string()),
        ("2006", format!("{y:04}")),
        (
            "Z07:00",
            if t.offset == 0 {
                "Z".into()
            } else {
                go_offset(t.offset, true, true)
            },
        ),
        ("-07:00", go_offset(t.offset, true, true)),
        ("-0700", go_offset(t.offset, false, true)),
        (
            "Z0700",
            if t.offset == 0 {
                "Z".into()
            } else {
                go_offset(t.offset, false, true)
            },
        ),
        ("-07", go_offset(t.offset, false, false)),
        (
            "MST",
            if t.abbr.is_empty() {
                go_offset(t.offset, false, true)
            } else {
                t.abbr.clone()
            },
        ),
        (".000", format!(".{frac}")),
        (".999", {
            let t = frac.trim_end_matches('0');
            if t.is_empty() {
                String::new()
            } else {
                format!(".{t}")
            }
        }),
        ("01", format!("{mo:02}")),
        ("02", format!("{d:02}")),
        ("_2", format!("{d:>2}")),
        ("06", format!("{:02}", y % 100)),
        ("15", format!("{h:02}")),
        ("03", format!("{h12:02}")),
        ("04", format!("{mi:02}")),
        ("05", format!("{se:02}")),
        ("PM", if h >= 12 { "PM".into() } else { "AM".into() }),
        ("pm", if h >= 12 { "pm".into() } else { "am".into() }),
        ("1", mo.to_string()),
        ("2", d.to_string()),
        ("3", h12.to_string()),
        ("4", mi.to_string()),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (tok, val) in &tokens {
            if let Some(r2) = rest.strip_prefix(tok) {
                out.push_str(val);
                rest = r2;
                continue 'outer;
            }
        }
        if let Some(r2) = rest.strip_prefix('5') {
            out.push_str(&se.to_string());
            rest = r2;
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn time_arg(v: &Value, f: &str) -> gotmpl::Result<ZTime> {
    match v {
        Value::String(s) => {
            parse_any_time(s).ok_or_else(|| err(format!("{f}: can't parse time {s:?}")))
        }
        Value::Int(i) => Ok(ZTime::utc(i.saturating_mul(1000))),
        Value::Float(x) => Ok(ZTime::utc((*x * 1000.0) as i64)),
        other => Err(err(format!("{f}: not a time: {other}"))),
    }
}

/// Builder for a [`FuncMap`] with the same `.func(name, f)` shape as `gotmpl::Template`.
struct Funcs(FuncMap);

impl Funcs {
    fn func(
        mut self,
        name: &str,
        f: impl Fn(&[Value]) -> gotmpl::Result<Value> + Send + Sync + 'static,
    ) -> Self {
        self.0.insert(name.to_string(), Arc::new(f));
        self
    }
}

/// Alertmanager's template functions. In the HTML set, `safeHtml`/`safeUrl` mark their result
/// as trusted content, as Go's `template.HTML`/`template.URL` do.
fn func_map(html: bool) -> FuncMap {
    let f = Funcs(FuncMap::new())
        .func("toUpper", |a| {
            Ok(s(&str_arg(a, 0, "toUpper")?.to_uppercase()))
        })
        .func("toLower", |a| {
            Ok(s(&str_arg(a, 0, "toLower")?.to_lowercase()))
        })
        .func("title", |a| Ok(s(&title(&str_arg(a, 0, "title")?))))
        .func("trimSpace", |a| Ok(s(str_arg(a, 0, "trimSpace")?.trim())))
        .func("join", |a| {
            let sep = str_arg(a, 0, "join")?;
            Ok(s(&string_list(arg(a, 1, "join")?).join(&sep)))
        })
        .func("match", |a| {
            let re = regex::Regex::new(&str_arg(a, 0, "match")?)
                .map_err(|e| err(format!("match: {e}")))?;
            Ok(Value::Bool(re.is_match(&str_arg(a, 1, "match")?)))
        })
        .func("reReplaceAll", |a| {
            let re = regex::Regex::new(&str_arg(a, 0, "reReplaceAll")?)
                .map_err(|e| err(format!("reReplaceAll: {e}")))?;
            let repl = str_arg(a, 1, "reReplaceAll")?;
            Ok(s(&re.replace_all(
                &str_arg(a, 2, "reReplaceAll")?,
                repl.as_str(),
            )))
        })
        .func("safeHtml", |a| Ok(s(&str_arg(a, 0, "safeHtml")?)))
        .func("safeUrl", |a| Ok(s(&str_arg(a, 0, "safeUrl")?)))
        .func("urlUnescape", |a| {
            let v = str_arg(a, 0, "urlUnescape")?;
            url_unescape(&v)
                .map(|x| s(&x))
                .ok_or_else(|| err(format!("urlUnescape: invalid escape in {v:?}")))
        })
        .func("stringSlice", |a| {
            Ok(Value::List(
                a.iter()
                    .map(|v| {
                        s(&match v {
                            Value::String(x) => x.to_string(),
                            o => format!("{o}"),
                        })
                    })
                    .collect::<Vec<_>>()
                    .into(),
            ))
        })
        .func("list", |a| Ok(Value::List(a.to_vec().into())))
        .func("toJson", |a| {
            serde_json::to_string(&to_json(arg(a, 0, "toJson")?))
                .map(|x| s(&x))
                .map_err(|e| err(e.to_string()))
        })
        .func("humanizeDuration", |a| {
            Ok(s(&humanize_duration(to_float(arg(
                a,
                0,
                "humanizeDuration",
            )?)?)))
        })
        .func("date", |a| {
            let layout = str_arg(a, 0, "date")?;
            Ok(s(&go_format_z(
                &time_arg(arg(a, 1, "date")?, "date")?,
                &layout,
            )))
        })
        .func("tz", |a| {
            // Go's time.LoadLocation + Time.In, daylight saving included.
            let name = str_arg(a, 0, "tz")?;
            let zone = crate::tz::Zone::load(&name).map_err(|e| err(e.to_string()))?;
            let t = time_arg(arg(a, 1, "tz")?, "tz")?;
            Ok(s(&go_time_z(&t.in_zone(&zone))))
        })
        .func("since", |a| {
            let t = time_arg(arg(a, 0, "since")?, "since")?.ms;
            Ok(s(&go_duration((now_ms() - t) as f64 / 1000.0)))
        })
        // Hidden functions behind Alertmanager's methods (see `rewrite_methods`).
        .func("sxSortedPairs", |a| {
            Ok(Value::List(
                pairs(arg(a, 0, "SortedPairs")?)
                    .into_iter()
                    .map(|(k, v)| {
                        let mut m = BTreeMap::new();
                        m.insert(Arc::from("Name"), Value::String(k));
                        m.insert(Arc::from("Value"), v);
                        Value::Map(Arc::new(m))
                    })
                    .collect::<Vec<_>>()
                    .into(),
            ))
        })
        .func("sxNames", |a| {
            Ok(Value::List(
                pairs(arg(a, 0, "Names")?)
                    .into_iter()
                    .map(|(k, _)| Value::String(k))
                    .collect::<Vec<_>>()
                    .into(),
            ))
        })
        .func("sxValues", |a| {
            Ok(Value::List(
                pairs(arg(a, 0, "Values")?)
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect::<Vec<_>>()
                    .into(),
            ))
        })
        .func("sxRemove", |a| {
            let Value::Map(m) = arg(a, 0, "Remove")? else {
                return Ok(Value::Map(Arc::new(BTreeMap::new())));
            };
            let drop = string_list(arg(a, 1, "Remove")?);
            Ok(Value::Map(Arc::new(
                m.iter()
                    .filter(|(k, _)| !drop.iter().any(|d| d == &***k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )))
        })
        .func("sxFiring", |a| {
            alerts_with_status(arg(a, 0, "Firing")?, "firing")
        })
        .func("sxResolved", |a| {
            alerts_with_status(arg(a, 0, "Resolved")?, "resolved")
        });
    let f = if html {
        f.func("safeHtml", |a| {
            Ok(gotmpl::html::HTML::from(str_arg(a, 0, "safeHtml")?).into())
        })
        .func("safeUrl", |a| {
            Ok(gotmpl::html::URL::from(str_arg(a, 0, "safeUrl")?).into())
        })
    } else {
        f
    };
    f.0
}

/// Name of the text template set; named so that its top level can be rewritten for Go's float
/// printing (see `sextant_rules::gofmt`), and removed from error messages again.
const TEXT_NAME: &str = "sxText";

/// A gotmpl error's text without the internal template name.
fn go_err(e: GoError) -> String {
    e.to_string().replace(&format!("{TEXT_NAME}:"), "")
}

fn text_template() -> Template {
    gofmt::with_go_printing(
        Template::new(TEXT_NAME)
            .missing_key(MissingKey::ZeroValue)
            .funcs(func_map(false)),
    )
}

fn html_template() -> HtmlTemplate {
    HtmlTemplate::new("")
        .missing_key(MissingKey::ZeroValue)
        .funcs(func_map(true))
        .funcs(gofmt::go_printing_funcs())
}

// ---------------------------------------------------------------------------------------------
// Method rewriting

const METHODS: [(&str, &str, bool); 6] = [
    ("SortedPairs", "sxSortedPairs", false),
    ("Names", "sxNames", false),
    ("Values", "sxValues", false),
    ("Firing", "sxFiring", false),
    ("Resolved", "sxResolved", false),
    ("Remove", "sxRemove", true),
];

/// Rewrites Alertmanager's method calls inside `{{ }}` actions into function calls.
pub fn rewrite_methods(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 32);
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = action_end(after).unwrap_or(after.len());
        let action = &after[..end];
        out.push_str("{{");
        out.push_str(&rewrite_action(action));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Offset of the closing `}}` of an action, skipping string literals and comments.
fn action_end(a: &str) -> Option<usize> {
    let b = a.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                return a[i..]
                    .find("*/")
                    .and_then(|p| a[i + p..].find("}}").map(|q| i + p + q));
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn rewrite_action(action: &str) -> String {
    let mut a = action.to_string();
    // Each pass rewrites the leftmost method call; a chain needs one pass per method.
    for _ in 0..64 {
        match rewrite_one(&a) {
            Some(n) => a = n,
            None => break,
        }
    }
    a
}

fn rewrite_one(a: &str) -> Option<String> {
    let b = a.as_bytes();
    let mut i = 0;
    let mut in_str: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = in_str {
            if c == b'\\' && q == b'"' {
                i += 2;
                continue;
            }
            if c == q {
                in_str = None;
            }
            i += 1;
            continue;
        }
        if c == b'"' || c == b'`' || c == b'\'' {
            in_str = Some(c);
            i += 1;
            continue;
        }
        if c == b'.' {
            for (m, f, takes_args) in METHODS {
                let endm = i + 1 + m.len();
                if a.get(i + 1..endm) == Some(m)
                    && !b
                        .get(endm)
                        .is_some_and(|x| x.is_ascii_alphanumeric() || *x == b'_')
                {
                    let start = receiver_start(b, i);
                    let recv = a[start..i].trim();
                    let recv = if recv.is_empty() { "." } else { recv };
                    let repl = if takes_args {
                        format!("{f} {recv}")
                    } else {
                        format!("({f} {recv})")
                    };
                    return Some(format!("{}{}{}", &a[..start], repl, &a[endm..]));
                }
            }
        }
        i += 1;
    }
    None
}

/// Start of the operand that ends just before `dot` (a field chain, `$var.x`, or `(...)`).
fn receiver_start(b: &[u8], dot: usize) -> usize {
    let mut j = dot;
    loop {
        if j == 0 {
            return 0;
        }
        let c = b[j - 1];
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'$' {
            j -= 1;
        } else if c == b')' {
            let mut depth = 0usize;
            let mut k = j;
            while k > 0 {
                k -= 1;
                match b[k] {
                    b')' => depth += 1,
                    b'(' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            j = k;
        } else {
            return j;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::NotifiedAlert;

    fn alert(status: &str, labels: &[(&str, &str)], ann: &[(&str, &str)]) -> NotifiedAlert {
        NotifiedAlert {
            status: status.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: ann
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            starts_at: "2026-11-23T10:00:00Z".into(),
            ends_at: if status == "firing" {
                "0001-01-01T00:00:00Z".into()
            } else {
                "2026-11-23T10:05:00.5Z".into()
            },
            generator_url: "http://prom/graph?g0.expr=up".into(),
            fingerprint: "abc".into(),
        }
    }

    pub(crate) fn sample() -> Notification {
        let m = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        Notification {
            version: "4".into(),
            group_key: "{}:{alertname=\"HostDown\"}".into(),
            truncated_alerts: 0,
            status: "firing".into(),
            receiver: "team".into(),
            group_labels: m(&[("alertname", "HostDown")]),
            common_labels: m(&[
                ("alertname", "HostDown"),
                ("severity", "P0"),
                ("job", "node"),
            ]),
            common_annotations: m(&[("summary", "host down")]),
            external_url: "http://sextant:9595".into(),
            alerts: vec![
                alert(
                    "firing",
                    &[
                        ("alertname", "HostDown"),
                        ("instance", "a:9100"),
                        ("job", "node"),
                        ("severity", "P0"),
                    ],
                    &[("summary", "host down")],
                ),
                alert(
                    "resolved",
                    &[
                        ("alertname", "HostDown"),
                        ("instance", "b:9100"),
                        ("job", "node"),
                        ("severity", "P0"),
                    ],
                    &[("summary", "host down")],
                ),
            ],
        }
    }

    fn render(t: &str) -> String {
        Templates::default().execute(t, &data(&sample())).unwrap()
    }

    #[test]
    fn rewrites_methods() {
        assert_eq!(
            rewrite_methods("{{ .GroupLabels.SortedPairs.Values | join \" \" }}"),
            "{{ (sxValues (sxSortedPairs .GroupLabels)) | join \" \" }}"
        );
        assert_eq!(
            rewrite_methods("{{ with .CommonLabels.Remove .GroupLabels.Names }}"),
            "{{ with sxRemove .CommonLabels (sxNames .GroupLabels) }}"
        );
        assert_eq!(
            rewrite_methods("{{ range .SortedPairs }}x.Values{{ \".Values\" }}"),
            "{{ range (sxSortedPairs .) }}x.Values{{ \".Values\" }}"
        );
        assert_eq!(
            rewrite_methods("{{ len $a.Firing }}"),
            "{{ len (sxFiring $a) }}"
        );
        assert_eq!(rewrite_methods("{{ .ValuesX }}"), "{{ .ValuesX }}");
    }

    #[test]
    fn subject_matches_alertmanager() {
        // Alertmanager's __subject for this group: firing count, group label values, then the
        // common labels beyond the group labels in sorted order.
        assert_eq!(
            render("{{ template \"__subject\" . }}"),
            "[FIRING:1] HostDown (node P0)"
        );
        let mut n = sample();
        n.status = "resolved".into();
        n.common_labels = n.group_labels.clone();
        let out = Templates::default()
            .execute("{{ template \"email.default.subject\" . }}", &data(&n))
            .unwrap();
        assert_eq!(out, "[RESOLVED] HostDown ");
        assert_eq!(
            render("{{ template \"slack.default.title\" . }}"),
            "[FIRING:1] HostDown (node P0)"
        );
        assert_eq!(
            render("{{ template \"slack.default.titlelink\" . }}"),
            "http://sextant:9595/#/alerts?receiver=team"
        );
        assert_eq!(
            render("{{ template \"slack.default.fallback\" . }}"),
            "[FIRING:1] HostDown (node P0) | http://sextant:9595/#/alerts?receiver=team"
        );
    }

    #[test]
    fn telegram_default_message_matches_alertmanager() {
        let want = "\n\nAlerts Firing:\nLabels:\n - alertname = HostDown\n - instance = a:9100\n - job = node\n - severity = P0\nAnnotations:\n - summary = host down\nSource: http://prom/graph?g0.expr=up\n\n\n\nAlerts Resolved:\nLabels:\n - alertname = HostDown\n - instance = b:9100\n - job = node\n - severity = P0\nAnnotations:\n - summary = host down\nSource: http://prom/graph?g0.expr=up\n\n\n";
        assert_eq!(
            render("{{ template \"telegram.default.message\" . }}"),
            want
        );
    }

    #[test]
    fn functions() {
        assert_eq!(render("{{ .Status | toUpper }} {{ \"a b\" | title }} {{ \"ABC\" | toLower }} {{ \"  x \" | trimSpace }}"), "FIRING A B abc x");
        assert_eq!(render("{{ stringSlice \"a\" \"b\" | join \",\" }}"), "a,b");
        assert_eq!(
            render("{{ if match \"^Host\" .CommonLabels.alertname }}yes{{ end }}"),
            "yes"
        );
        assert_eq!(render("{{ reReplaceAll \":.*\" \"\" \"a:9100\" }}"), "a");
        // Floats print like Go's fmt, as in Alertmanager.
        assert_eq!(
            render("{{ 1e6 }} {{ printf \"%v\" 0.00001 }} {{ print 1234567.0 }}"),
            "1e+06 1e-05 1.234567e+06"
        );
        assert_eq!(render("{{ range .Alerts }}{{ .StartsAt }}|{{ .EndsAt }};{{ end }}"), "2026-11-23 10:00:00 +0000 UTC|0001-01-01 00:00:00 +0000 UTC;2026-11-23 10:00:00 +0000 UTC|2026-11-23 10:05:00.5 +0000 UTC;");
        assert_eq!(
            render("{{ (index .Alerts 0).StartsAt | date \"2006-01-02 15:04:05 MST Mon Jan\" }}"),
            "2026-11-23 10:00:00 UTC Mon Nov"
        );
        assert_eq!(
            render("{{ (index .Alerts 0).StartsAt | tz \"UTC\" }}"),
            "2026-11-23 10:00:00 +0000 UTC"
        );
        assert!(Templates::default()
            .execute(
                "{{ (index .Alerts 0).StartsAt | tz \"Europe/Atlantis\" }}",
                &data(&sample())
            )
            .is_err());
        if std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
            assert_eq!(
                render("{{ (index .Alerts 0).StartsAt | tz \"Europe/Berlin\" }}"),
                "2026-11-23 11:00:00 +0100 CET"
            );
            assert_eq!(
                render("{{ (index .Alerts 0).StartsAt | tz \"America/New_York\" | date \"Mon 15:04 MST -07:00 Z07:00\" }}"),
                "Mon 05:00 EST -05:00 -05:00"
            );
            assert_eq!(
                render("{{ (index .Alerts 1).EndsAt | tz \"Australia/Lord_Howe\" | date \"2006-01-02 15:04:05.000 MST -0700\" }}"),
                "2026-11-23 21:05:00.500 +11 +1100"
            );
        }
        assert_eq!(
            render(
                "{{ .CommonLabels.Names | join \",\" }} {{ .CommonLabels.Values | join \",\" }}"
            ),
            "alertname,job,severity HostDown,node,P0"
        );
        assert_eq!(
            render("{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}"),
            "alertname=HostDown job=node severity=P0 "
        );
        assert_eq!(
            render("{{ len .Alerts.Firing }}/{{ len .Alerts.Resolved }}/{{ len .Alerts }}"),
            "1/1/2"
        );
        assert_eq!(
            render("{{ .CommonAnnotations | toJson }}"),
            "{\"summary\":\"host down\"}"
        );
        assert_eq!(
            render("{{ humanizeDuration 3661 }} {{ \"a%20b\" | urlUnescape }}"),
            "1h 1m 1s a b"
        );
        assert_eq!(
            render("{{ .Receiver }} {{ .ExternalURL }}"),
            "team http://sextant:9595"
        );
        assert_eq!(render("[{{ .CommonLabels.nosuchlabel }}]"), "[]");
    }

    #[test]
    fn html_set_escapes_by_context() {
        let mut n = sample();
        n.common_annotations
            .insert("summary".into(), "<b>x</b> & y".into());
        let out = Templates::default()
            .execute_html("{{ .CommonAnnotations.summary }} {{ .CommonAnnotations.summary | safeHtml }} <a href=\"{{ .ExternalURL }}/?q={{ .Receiver }}\">", &data(&n))
            .unwrap();
        assert_eq!(
            out,
            "&lt;b&gt;x&lt;/b&gt; &amp; y <b>x</b> & y <a href=\"http://sextant:9595/?q=team\">"
        );
        // print/printf format floats the Go way here too; their result is escaped as usual.
        let out = Templates::default()
            .execute_html("{{ printf \"%v<\" 1e6 }} {{ print 0.00001 }}", &data(&n))
            .unwrap();
        // html/template escapes `+` as `&#43;`, as Go does.
        assert_eq!(out, "1e&#43;06&lt; 1e-05");
    }

    #[test]
    fn user_files_define_and_override() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.tmpl"), "{{ define \"my.title\" }}Alert {{ .CommonLabels.severity }}{{ end }}{{ define \"__alertmanager\" }}Ops{{ end }}").unwrap();
        std::fs::write(
            dir.path().join("b.txt"),
            "{{ define \"ignored\" }}{{ end }}",
        )
        .unwrap();
        let t = Templates::load(&["*.tmpl".into()], dir.path()).unwrap();
        let d = data(&sample());
        assert_eq!(
            t.execute("{{ template \"my.title\" . }}", &d).unwrap(),
            "Alert P0"
        );
        assert_eq!(
            t.execute("{{ template \"slack.default.username\" . }}", &d)
                .unwrap(),
            "Ops"
        );
        assert!(!t.names().contains(&"ignored".to_string()));
        std::fs::write(dir.path().join("bad.tmpl"), "{{ define \"x\" }}{{ .Foo ").unwrap();
        let e = Templates::load(&["bad.tmpl".into()], dir.path()).unwrap_err();
        assert!(e.to_string().contains("bad.tmpl"), "{e}");
        assert!(Templates::load(&["missing.tmpl".into()], dir.path()).is_err());
    }

    #[test]
    fn default_html_email_renders() {
        let out = render("{{ template \"email.default.html\" . }}");
        assert!(
            out.contains("<title>[FIRING:1] HostDown (node P0)</title>"),
            "{out}"
        );
        assert!(out.contains("2 alerts for alertname=HostDown"), "{out}");
        assert!(
            out.contains("[1] Firing") && out.contains("[1] Resolved"),
            "{out}"
        );
        assert!(out.contains("instance = a:9100"), "{out}");
    }

    #[test]
    fn times_in_zones_with_daylight_saving() {
        if !std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
            eprintln!("skipping: no tz database (install tzdata)");
            return;
        }
        let berlin = crate::tz::Zone::load("Europe/Berlin").unwrap();
        // 01:00Z on 2024-03-31 is the first second of CEST; one second earlier is 01:59:59 CET.
        let t = parse_any_time("2024-03-31T01:00:00Z")
            .unwrap()
            .in_zone(&berlin);
        assert_eq!(go_time_z(&t), "2024-03-31 03:00:00 +0200 CEST");
        let t = parse_any_time("2024-03-31T00:59:59Z")
            .unwrap()
            .in_zone(&berlin);
        assert_eq!(go_time_z(&t), "2024-03-31 01:59:59 +0100 CET");
        // The repeated hour in October: 02:30 happens in CEST, then again in CET.
        let a = parse_any_time("2024-10-27T00:30:00Z")
            .unwrap()
            .in_zone(&berlin);
        let b = parse_any_time("2024-10-27T01:30:00Z")
            .unwrap()
            .in_zone(&berlin);
        assert_eq!(go_format_z(&a, "15:04 MST"), "02:30 CEST");
        assert_eq!(go_format_z(&b, "15:04 MST"), "02:30 CET");
        // A zoned Go time string reads back as the same instant and zone.
        assert_eq!(parse_any_time(&go_time_z(&a)), Some(a.clone()));
        assert_eq!(a.ms, parse_timestamp_ms("2024-10-27T00:30:00Z").unwrap());
    }

    #[test]
    fn go_format_layouts() {
        // 2026-11-23T10:04:05.120Z was a Monday.
        let ms = parse_timestamp_ms("2026-11-23T15:04:05.120Z").unwrap();
        assert_eq!(
            go_format(ms, "2006-01-02T15:04:05Z07:00"),
            "2026-11-23T15:04:05Z"
        );
        assert_eq!(
            go_format(ms, "Monday, January 2 3:04PM .000"),
            "Monday, November 23 3:04PM .120"
        );
    }
}
