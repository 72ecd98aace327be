//! Exemplars: a sample's value and timestamp plus a small label set (usually `trace_id` and
//! `span_id`) that points from a series to one request that contributed to it. Every ingest
//! path produces this one type, storage keeps it, and `/api/v1/query_exemplars` returns it.

use crate::labels::{is_valid_label_name, Labels};

/// Longest exemplar label set allowed: names plus values, counted in UTF-8 characters (code
/// points), as OpenMetrics and Prometheus define it.
pub const EXEMPLAR_MAX_LABEL_SET_LENGTH: usize = 128;

/// One exemplar. Its labels have no metric name; they may be empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
}

/// Why an exemplar is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExemplarError {
    #[error(
        "exemplar labels are {0} UTF-8 characters long; at most {max} are allowed (names plus values)",
        max = EXEMPLAR_MAX_LABEL_SET_LENGTH
    )]
    LabelSetTooLong(usize),
    #[error("invalid exemplar label name {0:?}")]
    InvalidLabelName(String),
}

impl Exemplar {
    /// Checks the label names and the 128-character limit of the label set.
    pub fn validate(&self) -> Result<(), ExemplarError> {
        let mut chars = 0usize;
        for l in self.labels.iter() {
            if !is_valid_label_name(&l.name) {
                return Err(ExemplarError::InvalidLabelName(l.name.clone()));
            }
            chars += l.name.chars().count() + l.value.chars().count();
        }
        if chars > EXEMPLAR_MAX_LABEL_SET_LENGTH {
            return Err(ExemplarError::LabelSetTooLong(chars));
        }
        Ok(())
    }

    /// Same labels, same value bits and same timestamp.
    pub fn same_as(&self, o: &Exemplar) -> bool {
        self.ts == o.ts && self.value.to_bits() == o.value.to_bits() && self.labels == o.labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_set_limit_counts_characters_not_bytes() {
        let ok = Exemplar {
            labels: Labels::from_pairs([("trace_id", "é".repeat(120))]),
            value: 1.0,
            ts: 0,
        };
        assert_eq!(ok.validate(), Ok(()));
        let long = Exemplar {
            labels: Labels::from_pairs([("trace_id", "é".repeat(121))]),
            value: 1.0,
            ts: 0,
        };
        assert_eq!(long.validate(), Err(ExemplarError::LabelSetTooLong(129)));
        let bad = Exemplar {
            labels: Labels::from_pairs([("0x", "a")]),
            value: 1.0,
            ts: 0,
        };
        assert!(bad.validate().is_err());
    }
}
