//! Alert label and annotation templates, expanded like Prometheus' `template.Expander`: Go
//! text/template syntax (via `gotmpl`), the `$labels`/`$externalLabels`/`$externalURL`/`$value`
//! variables, and Prometheus' function set (`humanize*`, `query`, `first`, `label`, `value`,
//! `reReplaceAll`, `title`, ...). Output formats follow Go's `fmt` so messages read the same as
//! they would from Prometheus.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{Template, TemplateError, Value};
use sextant_model::time::format_rfc3339_ms;
use sextant_model::Labels;

/// Runs a PromQL instant query for the `query` template function: returns (labels, value) pairs.
pub type QueryFn = Arc<dyn Fn(&str) -> Result<Vec<(Labels, f64)>, String> + Send + Sync>;

/// Everything a template can see.
#[derive(Clone, Default)]
pub struct TemplateData {
    pub labels: Labels,
    pub external_labels: Labels,
    pub external_url: String,
    pub value: f64,
}

const PREFIX: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

fn labels_value(l: &Labels) -> Value {
    let m: BTreeMap<Arc<str>, Value> = l
        .iter()
        .map(|x| {
            (
                Arc::from(x.name.as_str()),
                Value::String(Arc::from(x.value.as_str())),
            )
        })
        .collect();
    Value::Map(Arc::new(m))
}

fn sample_value(l: &Labels, v: f64) -> Value {
    let mut m = BTreeMap::new();
    m.insert(Arc::from("Labels"), labels_value(l));
    m.insert(Arc::from("Value"), Value::Float(v));
    Value::Map(Arc::new(m))
}

fn err(msg: impl Into<String>) -> TemplateError {
    TemplateError::Exec(msg.into())
}

fn to_float(v: &Value) -> gotmpl::Result<f64> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        Value::String(s) => crate::template::parse_go_float(s)
            .ok_or_else(|| err(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))),
        other => Err(err(format!("can't convert {other:?} to float"))),
    }
}

/// Go's `strconv.ParseFloat` for the spellings templates see.
pub fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => t.parse().ok(),
    }
}

fn arg<'a>(args: &'a [Value], i: usize, f: &str) -> gotmpl::Result<&'a Value> {
    args.get(i)
        .ok_or_else(|| err(format!("wrong number of args for {f}")))
}

fn str_arg(args: &[Value], i: usize, f: &str) -> gotmpl::Result<String> {
    match arg(args, i, f)? {
        Value::String(s) => Ok(s.to_string()),
        Value::Nil => Ok(String::new()),
        other => Ok(format!("{other}")),
    }
}

/// Go's `fmt.Sprintf("%.<prec>g", v)`.
pub fn go_g(v: f64, prec: usize) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let prec = prec.max(1);
    let sci = format!("{:.*e}", prec - 1, v);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return go_g(v, 4);
    }
    if v.abs() >= 1.0 {
        let mut prefix = "";
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
        return format!("{}{prefix}", go_g(v, 4));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}", go_g(v, 4))
}

/// Prometheus' `humanize1024`: binary prefixes.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return go_g(v, 4);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_g(v, 4))
}

/// Prometheus' `humanizeDuration` (seconds in, `1d 2h 3m 4s` out).
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return go_g(v, 4);
    }
    if v == 0.0 {
        return format!("{}s", go_g(v, 4));
    }
    if v.abs() >= 1.0 {
        let mut sign = "";
        if v < 0.0 {
            sign = "-";
            v = -v;
        }
        let d = v as i64;
        let (secs, mins, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {mins}m {secs}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {mins}m {secs}s")
        } else if mins != 0 {
            format!("{sign}{mins}m {secs}s")
        } else {
            format!("{sign}{}s", go_g(v, 4))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_g(v, 4))
}

/// Go's `time.Time.String()` of a UTC time given in seconds: `2006-01-02 15:04:05.5 +0000 UTC`.
pub fn go_time_string(secs: f64) -> String {
    let ms = (secs * 1000.0).round() as i64;
    let r = format_rfc3339_ms(ms); // 2006-01-02T15:04:05.000Z
    let (date, rest) = r.split_once('T').unwrap_or((&r, ""));
    let rest = rest.trim_end_matches('Z');
    let rest = trim_zeros(rest);
    format!("{date} {rest} +0000 UTC")
}

/// Go's RFC 3339 with nanoseconds, as Prometheus' API writes times: `2006-01-02T15:04:05.5Z`.
pub fn go_rfc3339(ms: i64) -> String {
    let r = format_rfc3339_ms(ms);
    let body = r.trim_end_matches('Z');
    format!("{}Z", trim_zeros(body))
}

/// Go's deprecated `strings.Title`: upper-cases the first letter of every word.
pub fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

/// Go regexp replacement syntax (`$1`, `${name}`) is what the `regex` crate uses as well.
fn re_replace_all(pattern: &str, repl: &str, text: &str) -> gotmpl::Result<String> {
    let re = regex::Regex::new(pattern).map_err(|e| err(format!("regexp: {e}")))?;
    Ok(re.replace_all(text, repl).into_owned())
}

fn sample_field<'a>(v: &'a Value, field: &str) -> Option<&'a Value> {
    match v {
        Value::Map(m) => m.get(field),
        _ => None,
    }
}

fn with_funcs(t: Template, query: Option<QueryFn>, data: &TemplateData) -> Template {
    let ext_url = data.external_url.clone();
    let t = t
        .func("humanize", |a| {
            Ok(Value::String(
                humanize(to_float(arg(a, 0, "humanize")?)?).into(),
            ))
        })
        .func("humanize1024", |a| {
            Ok(Value::String(
                humanize1024(to_float(arg(a, 0, "humanize1024")?)?).into(),
            ))
        })
        .func("humanizeDuration", |a| {
            Ok(Value::String(
                humanize_duration(to_float(arg(a, 0, "humanizeDuration")?)?).into(),
            ))
        })
        .func("humanizePercentage", |a| {
            let v = to_float(arg(a, 0, "humanizePercentage")?)?;
            Ok(Value::String(format!("{}%", go_g(v * 100.0, 4)).into()))
        })
        .func("humanizeTimestamp", |a| {
            let v = to_float(arg(a, 0, "humanizeTimestamp")?)?;
            if v.is_nan() || v.is_infinite() {
                return Ok(Value::String(go_g(v, 4).into()));
            }
            Ok(Value::String(go_time_string(v).into()))
        })
        .func("toTime", |a| {
            let v = to_float(arg(a, 0, "toTime")?)?;
            Ok(Value::String(go_time_string(v).into()))
        })
        .func("toDuration", |a| {
            let v = to_float(arg(a, 0, "toDuration")?)?;
            Ok(Value::String(go_duration(v).into()))
        })
        .func("parseDuration", |a| {
            let s = str_arg(a, 0, "parseDuration")?;
            let d = sextant_model::time::parse_duration(&s).map_err(|e| err(e.to_string()))?;
            Ok(Value::Float(d.as_secs_f64()))
        })
        .func("title", |a| {
            Ok(Value::String(title(&str_arg(a, 0, "title")?).into()))
        })
        .func("toUpper", |a| {
            Ok(Value::String(
                str_arg(a, 0, "toUpper")?.to_uppercase().into(),
            ))
        })
        .func("toLower", |a| {
            Ok(Value::String(
                str_arg(a, 0, "toLower")?.to_lowercase().into(),
            ))
        })
        .func("match", |a| {
            let re = regex::Regex::new(&str_arg(a, 0, "match")?).map_err(|e| err(e.to_string()))?;
            Ok(Value::Bool(re.is_match(&str_arg(a, 1, "match")?)))
        })
        .func("reReplaceAll", |a| {
            Ok(Value::String(
                re_replace_all(
                    &str_arg(a, 0, "reReplaceAll")?,
                    &str_arg(a, 1, "reReplaceAll")?,
                    &str_arg(a, 2, "reReplaceAll")?,
                )?
                .into(),
            ))
        })
        .func("safeHtml", |a| {
            Ok(Value::String(str_arg(a, 0, "safeHtml")?.into()))
        })
        .func("stripPort", |a| {
            let s = str_arg(a, 0, "stripPort")?;
            Ok(Value::String(strip_port(&s).into()))
        })
        .func("stripDomain", |a| {
            let s = str_arg(a, 0, "stripDomain")?;
            Ok(Value::String(strip_domain(&s).into()))
        })
        .func("urlUnescape", |a| {
            let s = str_arg(a, 0, "urlUnescape")?;
            Ok(Value::String(
                url_unescape(&s)
                    .ok_or_else(|| err("invalid URL escape"))?
                    .into(),
            ))
        })
        .func("pathPrefix", |_| Ok(Value::String("".into())))
        .func("externalURL", move |_| {
            Ok(Value::String(ext_url.as_str().into()))
        })
        .func("now", |_| {
            Ok(Value::Float(sextant_model::time::now_ms() as f64 / 1000.0))
        })
        .func("args", |a| {
            let m: BTreeMap<Arc<str>, Value> = a
                .iter()
                .enumerate()
                .map(|(i, v)| (Arc::from(format!("arg{i}").as_str()), v.clone()))
                .collect();
            Ok(Value::Map(Arc::new(m)))
        })
        .func("first", |a| match arg(a, 0, "first")? {
            Value::List(l) if !l.is_empty() => Ok(l[0].clone()),
            _ => Err(err("first() called on vector with no elements")),
        })
        .func("label", |a| {
            let name = str_arg(a, 0, "label")?;
            let v = sample_field(arg(a, 1, "label")?, "Labels")
                .and_then(|l| sample_field(l, &name))
                .cloned()
                .unwrap_or(Value::String("".into()));
            Ok(v)
        })
        .func("value", |a| {
            Ok(sample_field(arg(a, 0, "value")?, "Value")
                .cloned()
                .unwrap_or(Value::Nil))
        })
        .func("strvalue", |a| {
            Ok(sample_field(arg(a, 0, "strvalue")?, "Labels")
                .and_then(|l| sample_field(l, "__value__"))
                .cloned()
                .unwrap_or(Value::String("".into())))
        })
        .func("sortByLabel", |a| {
            let name = str_arg(a, 0, "sortByLabel")?;
            let Value::List(l) = arg(a, 1, "sortByLabel")? else {
                return Err(err("sortByLabel: not a query result"));
            };
            let key =
                |v: &Value| match sample_field(v, "Labels").and_then(|l| sample_field(l, &name)) {
                    Some(Value::String(s)) => s.to_string(),
                    _ => String::new(),
                };
            let mut v: Vec<Value> = l.to_vec();
            v.sort_by_key(key);
            Ok(Value::List(v.into()))
        })
        .func("graphLink", |a| {
            let e = str_arg(a, 0, "graphLink")?;
            Ok(Value::String(
                format!("/graph?g0.expr={}&g0.tab=0", gotmpl::url_encode(&e)).into(),
            ))
        })
        .func("tableLink", |a| {
            let e = str_arg(a, 0, "tableLink")?;
            Ok(Value::String(
                format!("/graph?g0.expr={}&g0.tab=1", gotmpl::url_encode(&e)).into(),
            ))
        });
    match query {
        Some(q) => t.func("query", move |a| {
            let e = str_arg(a, 0, "query")?;
            let res = q(&e).map_err(|m| err(format!("error executing query: {m}")))?;
            Ok(Value::List(
                res.iter()
                    .map(|(l, v)| sample_value(l, *v))
                    .collect::<Vec<_>>()
                    .into(),
            ))
        }),
        None => t.func("query", |_| Err(err("query is not available here"))),
    }
}

/// Go's `time.Duration.String()` of seconds (`1h2m3.5s`).
pub fn go_duration(secs: f64) -> String {
    if secs == 0.0 {
        return "0s".into();
    }
    let neg = secs < 0.0;
    let total_ns = (secs.abs() * 1e9).round() as u128;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if total_ns < 1_000_000_000 {
        let (unit, div) = if total_ns < 1_000 {
            ("ns", 1.0)
        } else if total_ns < 1_000_000 {
            ("µs", 1e3)
        } else {
            ("ms", 1e6)
        };
        out.push_str(&format!(
            "{}{unit}",
            trim_zeros(&format!("{:.9}", total_ns as f64 / div))
        ));
        return out;
    }
    let h = total_ns / 3_600_000_000_000;
    let m = (total_ns / 60_000_000_000) % 60;
    let s_ns = total_ns % 60_000_000_000;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    let s = trim_zeros(&format!("{:.9}", s_ns as f64 / 1e9)).to_string();
    out.push_str(&format!("{s}s"));
    out
}

fn strip_port(s: &str) -> String {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return rest[..end].to_string();
        }
    }
    match s.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h.to_string(),
        _ => s.to_string(),
    }
}

fn strip_domain(s: &str) -> String {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return s.to_string();
    }
    let short = host.split('.').next().unwrap_or(host);
    match port {
        Some(p) => format!("{short}:{p}"),
        None => short.to_string(),
    }
}

/// Go's `url.QueryUnescape`.
pub fn url_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn data_value(d: &TemplateData) -> Value {
    let mut m = BTreeMap::new();
    m.insert(Arc::from("Labels"), labels_value(&d.labels));
    m.insert(
        Arc::from("ExternalLabels"),
        labels_value(&d.external_labels),
    );
    m.insert(
        Arc::from("ExternalURL"),
        Value::String(d.external_url.as_str().into()),
    );
    m.insert(Arc::from("Value"), Value::Float(d.value));
    Value::Map(Arc::new(m))
}

/// Expands `text`; like Prometheus, a failure becomes the text
/// `<error expanding template: ...>` instead of an error, so an alert is never lost to a typo.
pub fn expand(name: &str, text: &str, data: &TemplateData, query: Option<QueryFn>) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    match try_expand(name, text, data, query) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(template = name, error = %e, "expanding alert template failed");
            format!("<error expanding template: {e}>")
        }
    }
}

/// Expands `text`, returning errors.
pub fn try_expand(
    name: &str,
    text: &str,
    data: &TemplateData,
    query: Option<QueryFn>,
) -> Result<String, String> {
    let src = format!("{PREFIX}{text}");
    let t = crate::gofmt::parse(
        with_funcs(Template::new(name), query, data).missing_key(gotmpl::MissingKey::ZeroValue),
        &src,
    )
    .map_err(|e| e.to_string())?;
    t.execute_to_string(&data_value(data))
        .map_err(|e| e.to_string())
}

/// Checks that a template parses (used when loading rule files).
pub fn check_template(text: &str) -> Result<(), String> {
    if !text.contains("{{") {
        return Ok(());
    }
    let src = format!("{PREFIX}{text}");
    crate::gofmt::parse(
        with_funcs(Template::new("check"), None, &TemplateData::default()),
        &src,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: f64) -> TemplateData {
        TemplateData {
            labels: Labels::from_pairs([("instance", "host-1:9100"), ("job", "node")]),
            external_labels: Labels::from_pairs([("cluster", "eu")]),
            external_url: "http://sextant:9595".into(),
            value: v,
        }
    }

    #[test]
    fn go_g_matches_go() {
        // Values checked against Go's fmt.Sprintf("%.4g", v).
        for (v, want) in [
            (1234.5, "1234"),
            (12345.0, "1.234e+04"),
            (0.5, "0.5"),
            (0.00001234, "1.234e-05"),
            (100.0, "100"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.0001, "0.0001"),
            (999.95, "1000"),
        ] {
            assert_eq!(go_g(v, 4), want, "{v}");
        }
    }

    #[test]
    fn humanize_family() {
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.001234), "1.234m");
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(12.0), "12");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize1024(1.0), "1");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(3661.0), "1h 1m 1s");
        assert_eq!(humanize_duration(61.0), "1m 1s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(0.0015), "1.5ms");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(go_time_string(1.5), "1970-01-01 00:00:01.5 +0000 UTC");
        assert_eq!(go_time_string(0.0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_rfc3339(1_500), "1970-01-01T00:00:01.5Z");
        assert_eq!(go_duration(3723.5), "1h2m3.5s");
        assert_eq!(go_duration(0.25), "250ms");
    }

    #[test]
    fn expands_prometheus_variables_and_functions() {
        let d = data(0.8765);
        let out = expand(
            "t",
            "{{ $labels.instance }} of {{ .Labels.job }} is {{ $value | humanizePercentage }} in {{ $externalLabels.cluster }} ({{ $externalURL }}) {{ $labels.instance | reReplaceAll \":.*\" \"\" | toUpper }} {{ title \"hello world\" }}",
            &d,
            None,
        );
        assert_eq!(
            out,
            "host-1:9100 of node is 87.65% in eu (http://sextant:9595) HOST-1 Hello World"
        );
        // Floats print with Go's %v, like Prometheus.
        assert_eq!(expand("t", "{{ $value }}", &data(123456.0), None), "123456");
        assert_eq!(expand("t", "{{ $value }}", &data(1e6), None), "1e+06");
        assert_eq!(expand("t", "{{ .Value }}", &data(1e-5), None), "1e-05");
        assert_eq!(
            expand(
                "t",
                "{{ printf \"%v %.1f\" $value $value }}",
                &data(1234567.0),
                None
            ),
            "1.234567e+06 1234567.0"
        );
        assert_eq!(
            expand("t", "{{ $value | humanize }}", &data(1e6), None),
            "1M"
        );
        assert_eq!(expand("t", "{{ $value }}", &data(2.5), None), "2.5");
        assert_eq!(expand("t", "plain", &d, None), "plain");
    }

    #[test]
    fn query_first_value_label() {
        let q: QueryFn = Arc::new(|e: &str| {
            assert_eq!(e, "up");
            Ok(vec![(
                Labels::from_pairs([("__name__", "up"), ("job", "a")]),
                1.0,
            )])
        });
        let out = expand(
            "t",
            "{{ with query \"up\" }}{{ . | first | value }} {{ . | first | label \"job\" }}{{ end }}",
            &data(0.0),
            Some(q),
        );
        assert_eq!(out, "1 a");
        let q: QueryFn = Arc::new(|_: &str| Ok(vec![(Labels::from_pairs([("job", "a")]), 1e21)]));
        let out = expand(
            "t",
            "{{ range query \"x\" }}{{ .Value }} {{ . | value }}{{ end }}",
            &data(0.0),
            Some(q),
        );
        assert_eq!(out, "1e+21 1e+21");
    }

    #[test]
    fn broken_template_is_reported_in_the_text() {
        let out = expand("t", "{{ humanize \"x\" }}", &data(0.0), None);
        assert!(out.starts_with("<error expanding template:"), "{out}");
        assert!(check_template("{{ .Foo ").is_err());
        assert!(check_template("{{ humanize $value }}").is_ok());
    }
}
