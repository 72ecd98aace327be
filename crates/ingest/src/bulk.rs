//! Bulk import formats that mirror `/api/v1/export`: VictoriaMetrics' JSON lines (also what
//! `vmctl` and VM's own `/api/v1/export` produce), the same objects as one JSON array, and
//! Sextant's self-describing CSV (`__name__,<label>…,__timestamp__,__value__` header). They exist
//! so that anything exported can be imported again, and so data can move in from
//! VictoriaMetrics. Errors name the line and the field.

use serde_json::Value;
use sextant_model::histogram::{CounterResetHint, FloatHistogram, Histogram, Span};
use sextant_model::labels::is_valid_label_name;
use sextant_model::{HistogramValue, Labels, Sample};

use crate::remote_write::{SeriesSamples, WriteBatch};

/// Why a bulk import body was refused; `line` counts from 1.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("line {line}: {msg}")]
    Line { line: usize, msg: String },
    #[error("{0}")]
    Body(String),
}

fn line_err(line: usize, msg: impl Into<String>) -> BulkError {
    BulkError::Line {
        line,
        msg: msg.into(),
    }
}

fn series(labels: Labels) -> SeriesSamples {
    SeriesSamples {
        labels,
        samples: Vec::new(),
        histograms: Vec::new(),
        exemplars: Vec::new(),
    }
}

/// Parses JSON lines (`{"metric":{…},"values":[…],"timestamps":[…]}` a line; Sextant's
/// `"histograms"` instead of `"values"` for native histograms) or a JSON array of such objects.
pub fn parse_json(body: &[u8]) -> Result<WriteBatch, BulkError> {
    let text = std::str::from_utf8(body).map_err(|e| BulkError::Body(format!("not UTF-8: {e}")))?;
    let mut out = WriteBatch::default();
    if text.trim_start().starts_with('[') {
        let v: Vec<Value> = serde_json::from_str(text)
            .map_err(|e| line_err(e.line(), format!("invalid JSON: {e}")))?;
        for (i, obj) in v.iter().enumerate() {
            out.series
                .push(json_series(obj).map_err(|m| BulkError::Body(format!("element {i}: {m}")))?);
        }
        return Ok(out);
    }
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| line_err(i + 1, format!("invalid JSON: {e}")))?;
        out.series
            .push(json_series(&v).map_err(|m| line_err(i + 1, m))?);
    }
    Ok(out)
}

fn json_series(v: &Value) -> Result<SeriesSamples, String> {
    let metric = v
        .get("metric")
        .and_then(Value::as_object)
        .ok_or("field \"metric\": missing or not an object")?;
    let mut pairs = Vec::with_capacity(metric.len());
    for (k, val) in metric {
        let s = val
            .as_str()
            .ok_or_else(|| format!("field \"metric\": label {k:?} is not a string"))?;
        if !is_valid_label_name(k) {
            return Err(format!("field \"metric\": invalid label name {k:?}"));
        }
        pairs.push((k.as_str(), s));
    }
    let mut s = series(Labels::from_pairs(pairs));
    let ts = v
        .get("timestamps")
        .and_then(Value::as_array)
        .ok_or("field \"timestamps\": missing or not an array")?;
    let ts: Vec<i64> = ts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_i64()
                .ok_or_else(|| format!("field \"timestamps\": element {i} is not an integer (ms)"))
        })
        .collect::<Result<_, _>>()?;
    if let Some(vals) = v.get("values") {
        let vals = vals.as_array().ok_or("field \"values\": not an array")?;
        if vals.len() != ts.len() {
            return Err(format!(
                "field \"values\": {} values but {} timestamps",
                vals.len(),
                ts.len()
            ));
        }
        for (i, (val, t)) in vals.iter().zip(&ts).enumerate() {
            let v = json_f64(val)
                .ok_or_else(|| format!("field \"values\": element {i} is not a number"))?;
            s.samples.push(Sample { t: *t, v });
        }
    } else if let Some(hs) = v.get("histograms") {
        let hs = hs.as_array().ok_or("field \"histograms\": not an array")?;
        if hs.len() != ts.len() {
            return Err(format!(
                "field \"histograms\": {} histograms but {} timestamps",
                hs.len(),
                ts.len()
            ));
        }
        for (i, (h, t)) in hs.iter().zip(&ts).enumerate() {
            let h = json_hist(h).map_err(|m| format!("field \"histograms\": element {i}: {m}"))?;
            s.histograms.push((*t, h));
        }
    } else {
        return Err("field \"values\": missing".into());
    }
    Ok(s)
}

/// A JSON number, or one of the Prometheus strings `NaN`, `+Inf`, `-Inf` (or a numeric string).
fn json_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_prom_float(s),
        _ => None,
    }
}

fn parse_prom_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn json_hist(v: &Value) -> Result<HistogramValue, String> {
    let o = v.as_object().ok_or("not an object")?;
    let f = |k: &str| -> Result<f64, String> {
        o.get(k)
            .map_or(Some(0.0), json_f64)
            .ok_or_else(|| format!("{k:?} is not a number"))
    };
    let spans = |k: &str| -> Result<Vec<Span>, String> {
        let Some(a) = o.get(k) else {
            return Ok(Vec::new());
        };
        let a = a
            .as_array()
            .ok_or_else(|| format!("{k:?} is not an array"))?;
        a.iter()
            .map(|s| {
                let off = s.get("offset").and_then(Value::as_i64);
                let len = s.get("length").and_then(Value::as_u64);
                match (off, len) {
                    (Some(o), Some(l)) => Ok(Span {
                        offset: i32::try_from(o)
                            .map_err(|_| format!("{k:?}: offset out of range"))?,
                        length: u32::try_from(l)
                            .map_err(|_| format!("{k:?}: length out of range"))?,
                    }),
                    _ => Err(format!("{k:?}: span needs integer offset and length")),
                }
            })
            .collect()
    };
    let floats = |k: &str| -> Result<Vec<f64>, String> {
        let Some(a) = o.get(k) else {
            return Ok(Vec::new());
        };
        let a = a
            .as_array()
            .ok_or_else(|| format!("{k:?} is not an array"))?;
        a.iter()
            .map(|x| json_f64(x).ok_or_else(|| format!("{k:?}: not a number")))
            .collect()
    };
    let ints = |k: &str| -> Result<Vec<i64>, String> {
        let Some(a) = o.get(k) else {
            return Ok(Vec::new());
        };
        let a = a
            .as_array()
            .ok_or_else(|| format!("{k:?} is not an array"))?;
        a.iter()
            .map(|x| x.as_i64().ok_or_else(|| format!("{k:?}: not an integer")))
            .collect()
    };
    let u = |k: &str| -> Result<u64, String> {
        o.get(k)
            .map_or(Some(0), Value::as_u64)
            .ok_or_else(|| format!("{k:?} is not a non-negative integer"))
    };
    let schema = o
        .get("schema")
        .and_then(Value::as_i64)
        .and_then(|s| i32::try_from(s).ok())
        .ok_or("\"schema\" missing or not an integer")?;
    let hint = CounterResetHint::from_u8(
        o.get("reset_hint")
            .and_then(Value::as_u64)
            .map_or(0, |v| v.min(255) as u8),
    );
    let is_float = o.contains_key("positive_counts") || o.contains_key("negative_counts");
    let h = if is_float {
        HistogramValue::Float(FloatHistogram {
            counter_reset_hint: hint,
            schema,
            zero_threshold: f("zero_threshold")?,
            zero_count: f("zero_count")?,
            count: f("count")?,
            sum: f("sum")?,
            positive_spans: spans("positive_spans")?,
            negative_spans: spans("negative_spans")?,
            positive_buckets: floats("positive_counts")?,
            negative_buckets: floats("negative_counts")?,
            custom_values: floats("custom_values")?,
        })
    } else {
        HistogramValue::Int(Histogram {
            counter_reset_hint: hint,
            schema,
            zero_threshold: f("zero_threshold")?,
            zero_count: u("zero_count")?,
            count: u("count")?,
            sum: f("sum")?,
            positive_spans: spans("positive_spans")?,
            negative_spans: spans("negative_spans")?,
            positive_buckets: ints("positive_deltas")?,
            negative_buckets: ints("negative_deltas")?,
            custom_values: floats("custom_values")?,
        })
    };
    Ok(h)
}

/// Splits one CSV record (RFC 4180 quoting; no newlines inside cells).
fn csv_record(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
            at_start = true;
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    if quoted {
        return Err("unterminated quoted cell".into());
    }
    out.push(cur);
    Ok(out)
}

/// Parses Sextant's export CSV: a header naming label columns plus `__timestamp__` (Unix ms)
/// and `__value__`; an empty cell means the label is absent. Consecutive rows of one series
/// become one series in the batch.
pub fn parse_csv(body: &[u8]) -> Result<WriteBatch, BulkError> {
    let text = std::str::from_utf8(body).map_err(|e| BulkError::Body(format!("not UTF-8: {e}")))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Ok(WriteBatch::default());
    };
    let header = csv_record(header.trim_end_matches('\r')).map_err(|m| line_err(1, m))?;
    let (mut ts_col, mut val_col) = (None, None);
    for (i, h) in header.iter().enumerate() {
        match h.as_str() {
            "__timestamp__" => ts_col = Some(i),
            "__value__" => val_col = Some(i),
            n if !is_valid_label_name(n) => {
                return Err(line_err(
                    1,
                    format!("header: invalid label name {n:?} in column {}", i + 1),
                ))
            }
            _ => {}
        }
    }
    let (Some(ts_col), Some(val_col)) = (ts_col, val_col) else {
        return Err(line_err(
            1,
            "header: needs columns \"__timestamp__\" and \"__value__\"",
        ));
    };
    let mut out = WriteBatch::default();
    for (i, line) in lines {
        let n = i + 1;
        let cells = csv_record(line.trim_end_matches('\r')).map_err(|m| line_err(n, m))?;
        if cells.len() != header.len() {
            return Err(line_err(
                n,
                format!("{} cells, but the header has {}", cells.len(), header.len()),
            ));
        }
        let t: i64 = cells[ts_col].parse().map_err(|_| {
            line_err(
                n,
                format!(
                    "column \"__timestamp__\": {:?} is not Unix ms",
                    cells[ts_col]
                ),
            )
        })?;
        let v = parse_prom_float(&cells[val_col]).ok_or_else(|| {
            line_err(
                n,
                format!("column \"__value__\": {:?} is not a number", cells[val_col]),
            )
        })?;
        let labels = Labels::from_pairs(
            header
                .iter()
                .zip(&cells)
                .enumerate()
                .filter(|(j, _)| *j != ts_col && *j != val_col)
                .map(|(_, (h, c))| (h.as_str(), c.as_str())),
        );
        match out.series.last_mut() {
            Some(s) if s.labels == labels => s.samples.push(Sample { t, v }),
            _ => {
                let mut s = series(labels);
                s.samples.push(Sample { t, v });
                out.series.push(s);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_and_errors() {
        let b = parse_json(
            br#"{"metric":{"__name__":"up","job":"a"},"values":[1,"NaN",0.5],"timestamps":[1,2,3]}
{"metric":{"__name__":"h"},"histograms":[{"count":3,"sum":1.5,"schema":0,"zero_count":1,"positive_spans":[{"offset":0,"length":2}],"positive_deltas":[1,0]}],"timestamps":[5]}
"#,
        )
        .expect("parses");
        assert_eq!(b.series.len(), 2);
        assert_eq!(b.series[0].samples.len(), 3);
        assert!(b.series[0].samples[1].v.is_nan());
        match &b.series[1].histograms[0].1 {
            HistogramValue::Int(h) => {
                assert_eq!((h.count, h.zero_count), (3, 1));
                assert_eq!(h.positive_buckets, vec![1, 0]);
            }
            other => panic!("expected int histogram, got {other:?}"),
        }
        let e = parse_json(b"{\"metric\":{},\"values\":[1],\"timestamps\":[]}\n")
            .expect_err("length mismatch");
        assert_eq!(
            e.to_string(),
            "line 1: field \"values\": 1 values but 0 timestamps"
        );
        let e = parse_json(b"\n{\"metric\":{\"a-b\":\"x\"},\"values\":[],\"timestamps\":[]}")
            .expect_err("bad name");
        assert!(e.to_string().starts_with("line 2: field \"metric\""), "{e}");
    }

    #[test]
    fn csv_round_trips_the_export_shape() {
        let b = parse_csv(
            b"__name__,job,note,__timestamp__,__value__\nup,a,\"x,\"\"y\"\"\",1000,1\nup,a,\"x,\"\"y\"\"\",2000,+Inf\nup,,,3000,2\n",
        )
        .expect("parses");
        assert_eq!(b.series.len(), 2);
        assert_eq!(b.series[0].labels.get("note"), Some("x,\"y\""));
        assert_eq!(b.series[0].samples.len(), 2);
        assert_eq!(b.series[1].labels.get("job"), None);
        let e = parse_csv(b"__name__,__timestamp__,__value__\nup,abc,1\n").expect_err("bad ts");
        assert!(
            e.to_string()
                .starts_with("line 2: column \"__timestamp__\""),
            "{e}"
        );
        let e = parse_csv(b"__name__,__value__\n").expect_err("no ts");
        assert!(e.to_string().contains("__timestamp__"), "{e}");
    }
}
