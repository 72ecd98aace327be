//! Label sets: the identity of a series. A `Labels` is always sorted by name with unique names,
//! so equality, hashing and display are canonical.

use std::fmt;

/// The label that carries the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Why a set of labels cannot identify a series.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelsError {
    #[error("empty label set")]
    Empty,
    #[error("missing metric name (label __name__)")]
    MissingMetricName,
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
    #[error("invalid label name {0:?}")]
    InvalidLabelName(String),
    #[error("empty label name")]
    EmptyLabelName,
    #[error("duplicate label name {0:?}")]
    DuplicateLabel(String),
    #[error("labels are not sorted by name: {0:?} after {1:?}")]
    Unsorted(String, String),
    #[error("label value of {0:?} is not valid UTF-8")]
    InvalidUtf8(String),
}

/// A sorted set of labels with unique names. Labels with empty values are dropped, as in
/// Prometheus, where an empty value means "label absent".
///
/// Shared behind an `Arc`: the query engine copies label sets of every selected series at every
/// step, so a clone is a reference-count increment; `set` copies on write.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(std::sync::Arc<Vec<Label>>);

impl Labels {
    pub fn empty() -> Self {
        Labels::default()
    }

    /// Builds a label set from pairs in any order; later duplicates win; empty values are dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut v: Vec<Label> = pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect();
        v.reverse();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.dedup_by(|a, b| a.name == b.name);
        v.retain(|l| !l.value.is_empty());
        Labels(v.into())
    }

    /// Wraps labels already in canonical form (sorted by name, unique names, no empty values),
    /// such as a stored series' labels, without sorting or checking them again (checked in
    /// debug builds).
    pub fn from_sorted(v: Vec<Label>) -> Self {
        debug_assert!(
            v.windows(2).all(|w| w[0].name < w[1].name) && v.iter().all(|l| !l.value.is_empty()),
            "Labels::from_sorted: not canonical: {v:?}"
        );
        Labels(v.into())
    }

    /// Takes labels as they arrived on the wire and checks them the way Prometheus' remote-write
    /// receiver does: non-empty, sorted, unique, valid names, and a valid metric name.
    pub fn from_wire(labels: Vec<Label>) -> Result<Self, LabelsError> {
        if labels.is_empty() {
            return Err(LabelsError::Empty);
        }
        for w in labels.windows(2) {
            match w[0].name.cmp(&w[1].name) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(LabelsError::DuplicateLabel(w[1].name.clone()))
                }
                std::cmp::Ordering::Greater => {
                    return Err(LabelsError::Unsorted(w[1].name.clone(), w[0].name.clone()))
                }
            }
        }
        let mut out = labels;
        out.retain(|l| !l.value.is_empty());
        let ls = Labels(out.into());
        ls.validate()?;
        Ok(ls)
    }

    /// Checks names: a metric name must be present and valid, every label name valid.
    pub fn validate(&self) -> Result<(), LabelsError> {
        if self.0.is_empty() {
            return Err(LabelsError::Empty);
        }
        let mut has_name = false;
        for l in self.0.iter() {
            if l.name.is_empty() {
                return Err(LabelsError::EmptyLabelName);
            }
            if l.name == METRIC_NAME {
                if !is_valid_metric_name(&l.value) {
                    return Err(LabelsError::InvalidMetricName(l.value.clone()));
                }
                has_name = true;
            } else if !is_valid_label_name(&l.name) {
                return Err(LabelsError::InvalidLabelName(l.name.clone()));
            }
        }
        if !has_name {
            return Err(LabelsError::MissingMetricName);
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Label> {
        std::sync::Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
    }

    /// Sets (or with an empty value removes) one label, keeping the set sorted.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                std::sync::Arc::make_mut(&mut self.0).remove(i);
            }
            Ok(i) if self.0[i].value == value => {}
            Ok(i) => std::sync::Arc::make_mut(&mut self.0)[i].value = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => std::sync::Arc::make_mut(&mut self.0).insert(i, Label::new(name, value)),
        }
    }

    /// A 64-bit hash of the names and values, stable across runs and platforms (word-at-a-time
    /// mixing: it is on the hot path of every appended sample).
    pub fn stable_hash(&self) -> u64 {
        let mut h: u64 = 0x243f_6a88_85a3_08d3;
        for l in self.0.iter() {
            h = hash_bytes(h, l.name.as_bytes());
            h = hash_bytes(h ^ 0xff, l.value.as_bytes());
        }
        // Final avalanche (murmur3's fmix64).
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    /// Approximate bytes of label strings, for limits.
    pub fn byte_size(&self) -> usize {
        self.0.iter().map(|l| l.name.len() + l.value.len()).sum()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Prometheus' notation: `name{a="1", b="2"}`.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(n) = name {
            f.write_str(n)?;
        }
        let rest: Vec<&Label> = self.0.iter().filter(|l| l.name != METRIC_NAME).collect();
        if rest.is_empty() && name.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, l) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl FromIterator<Label> for Labels {
    fn from_iter<T: IntoIterator<Item = Label>>(iter: T) -> Self {
        Labels::from_pairs(iter.into_iter().map(|l| (l.name, l.value)))
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` — the classic metric-name rule that Prometheus 2.x enforces.
pub fn is_valid_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*` — the classic label-name rule.
pub fn is_valid_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_wire_checks_order_and_names() {
        let l = |n: &str, v: &str| Label::new(n, v);
        assert!(Labels::from_wire(vec![l("__name__", "up"), l("job", "x")]).is_ok());
        assert_eq!(Labels::from_wire(vec![]), Err(LabelsError::Empty));
        assert!(matches!(
            Labels::from_wire(vec![l("job", "x"), l("__name__", "up")]),
            Err(LabelsError::Unsorted(..))
        ));
        assert!(matches!(
            Labels::from_wire(vec![l("__name__", "up"), l("a", "1"), l("a", "2")]),
            Err(LabelsError::DuplicateLabel(_))
        ));
        assert!(matches!(
            Labels::from_wire(vec![l("__name__", "1up")]),
            Err(LabelsError::InvalidMetricName(_))
        ));
        assert!(matches!(
            Labels::from_wire(vec![l("__name__", "up"), l("a-b", "1")]),
            Err(LabelsError::InvalidLabelName(_))
        ));
        assert_eq!(
            Labels::from_wire(vec![l("job", "x")]),
            Err(LabelsError::MissingMetricName)
        );
    }

    #[test]
    fn display_and_set() {
        let mut ls = Labels::from_pairs([("__name__", "up"), ("job", "a"), ("empty", "")]);
        assert_eq!(ls.to_string(), r#"up{job="a"}"#);
        ls.set("instance", "h:1");
        assert_eq!(ls.to_string(), r#"up{instance="h:1", job="a"}"#);
        ls.set("job", "");
        assert_eq!(ls.to_string(), r#"up{instance="h:1"}"#);
        assert_eq!(
            ls.stable_hash(),
            Labels::from_pairs([("__name__", "up"), ("instance", "h:1")]).stable_hash()
        );
    }
}

/// Mixes bytes into a hash eight at a time (the length is mixed in, so "ab"+"c" and "a"+"bc"
/// differ).
fn hash_bytes(mut h: u64, b: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    let rem = chunks.remainder();
    let mut w = [0u8; 8];
    w[..rem.len()].copy_from_slice(rem);
    (h ^ u64::from_le_bytes(w) ^ ((b.len() as u64) << 56))
        .wrapping_mul(K)
        .rotate_left(31)
}
