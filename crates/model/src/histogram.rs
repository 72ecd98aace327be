//! Native histograms, shaped like Prometheus' `model/histogram`: sparse exponential buckets
//! described by spans (or custom bucket bounds when `schema == -53`), integer counts stored as
//! deltas between consecutive buckets, float counts stored as absolute values.

/// Schema value of histograms with custom bucket boundaries (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A run of `length` consecutive buckets starting `offset` buckets after the end of the
/// previous span (or at index `offset` for the first span).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// What the producer knows about counter resets, as carried by remote write and OTLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    #[default]
    Unknown = 0,
    CounterReset = 1,
    NotCounterReset = 2,
    Gauge = 3,
}

impl CounterResetHint {
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => CounterResetHint::CounterReset,
            2 => CounterResetHint::NotCounterReset,
            3 => CounterResetHint::Gauge,
            _ => CounterResetHint::Unknown,
        }
    }
}

/// Why a histogram is not internally consistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    #[error("schema {0} out of range (-4..=8, or -53 for custom buckets)")]
    Schema(i32),
    #[error("{side} spans describe {spans} buckets but {buckets} bucket counts were given")]
    SpanBucketMismatch {
        side: &'static str,
        spans: usize,
        buckets: usize,
    },
    #[error("negative bucket count")]
    NegativeCount,
    #[error("span with negative offset after the first span")]
    NegativeOffset,
    #[error(
        "custom-bucket histogram needs custom_values in increasing order and no negative buckets"
    )]
    CustomBuckets,
}

/// An integer-count native histogram.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Histogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    pub count: u64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    /// Delta-encoded: the first is an absolute count, each next is the difference to the previous.
    pub positive_buckets: Vec<i64>,
    pub negative_buckets: Vec<i64>,
    /// Upper bounds of custom buckets (only when `schema == CUSTOM_BUCKETS_SCHEMA`).
    pub custom_values: Vec<f64>,
}

/// A float-count native histogram.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    /// Absolute counts.
    pub positive_buckets: Vec<f64>,
    pub negative_buckets: Vec<f64>,
    pub custom_values: Vec<f64>,
}

fn span_buckets(spans: &[Span]) -> Result<usize, HistogramError> {
    let mut n = 0usize;
    for (i, s) in spans.iter().enumerate() {
        if i > 0 && s.offset < 0 {
            return Err(HistogramError::NegativeOffset);
        }
        n += s.length as usize;
    }
    Ok(n)
}

fn check_common(
    schema: i32,
    pos_spans: &[Span],
    pos_len: usize,
    neg_spans: &[Span],
    neg_len: usize,
    custom: &[f64],
) -> Result<(), HistogramError> {
    if schema == CUSTOM_BUCKETS_SCHEMA {
        if !neg_spans.is_empty()
            || neg_len > 0
            || custom
                .windows(2)
                .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
        {
            return Err(HistogramError::CustomBuckets);
        }
    } else if !(-4..=8).contains(&schema) {
        return Err(HistogramError::Schema(schema));
    }
    let p = span_buckets(pos_spans)?;
    if p != pos_len {
        return Err(HistogramError::SpanBucketMismatch {
            side: "positive",
            spans: p,
            buckets: pos_len,
        });
    }
    let n = span_buckets(neg_spans)?;
    if n != neg_len {
        return Err(HistogramError::SpanBucketMismatch {
            side: "negative",
            spans: n,
            buckets: neg_len,
        });
    }
    Ok(())
}

impl Histogram {
    /// Checks that spans and buckets agree and that no absolute count is negative.
    pub fn validate(&self) -> Result<(), HistogramError> {
        check_common(
            self.schema,
            &self.positive_spans,
            self.positive_buckets.len(),
            &self.negative_spans,
            self.negative_buckets.len(),
            &self.custom_values,
        )?;
        for deltas in [&self.positive_buckets, &self.negative_buckets] {
            let mut abs: i64 = 0;
            for d in deltas.iter() {
                abs = abs.wrapping_add(*d);
                if abs < 0 {
                    return Err(HistogramError::NegativeCount);
                }
            }
        }
        Ok(())
    }

    /// Converts to float counts (absolute bucket values).
    pub fn to_float(&self) -> FloatHistogram {
        let abs = |deltas: &[i64]| {
            let mut cur: i64 = 0;
            deltas
                .iter()
                .map(|d| {
                    cur = cur.wrapping_add(*d);
                    cur as f64
                })
                .collect::<Vec<f64>>()
        };
        FloatHistogram {
            counter_reset_hint: self.counter_reset_hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count as f64,
            count: self.count as f64,
            sum: self.sum,
            positive_spans: self.positive_spans.clone(),
            negative_spans: self.negative_spans.clone(),
            positive_buckets: abs(&self.positive_buckets),
            negative_buckets: abs(&self.negative_buckets),
            custom_values: self.custom_values.clone(),
        }
    }
}

impl FloatHistogram {
    /// Checks that spans and buckets agree.
    pub fn validate(&self) -> Result<(), HistogramError> {
        check_common(
            self.schema,
            &self.positive_spans,
            self.positive_buckets.len(),
            &self.negative_spans,
            self.negative_buckets.len(),
            &self.custom_values,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_float_decodes_deltas() {
        let h = Histogram {
            schema: 0,
            count: 6,
            positive_spans: vec![Span {
                offset: 0,
                length: 3,
            }],
            positive_buckets: vec![1, 2, -1],
            ..Default::default()
        };
        h.validate().unwrap();
        assert_eq!(h.to_float().positive_buckets, vec![1.0, 3.0, 2.0]);
        let bad = Histogram {
            positive_buckets: vec![1, -3],
            ..h.clone()
        };
        assert!(bad.validate().is_err());
    }
}

/// A native histogram sample value, integer or float.
#[derive(Clone, Debug, PartialEq)]
pub enum HistogramValue {
    Int(Histogram),
    Float(FloatHistogram),
}

impl HistogramValue {
    pub fn to_float(&self) -> FloatHistogram {
        match self {
            HistogramValue::Int(h) => h.to_float(),
            HistogramValue::Float(f) => f.clone(),
        }
    }
}
