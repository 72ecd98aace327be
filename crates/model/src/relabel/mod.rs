//! Prometheus relabeling: the rules (`relabel_configs`, `metric_relabel_configs`, and later
//! `alert_relabel_configs` / `write_relabel_configs`) that rewrite, keep or drop label sets.
//! It lives in the model crate because it is pure and shared by scraping, alerting and remote
//! write. Semantics follow Prometheus exactly: defaults (separator `;`, regex `(.*)` fully
//! anchored, replacement `$1`, action `replace`), Go-style `$1`/`${name}` expansion, the same
//! configuration checks and error messages, and `hashmod` over MD5 like Prometheus.

use std::fmt;

use serde::Deserialize;

use crate::labels::{is_valid_label_name, Label, Labels};

/// The defaults Prometheus applies to an omitted field.
pub const DEFAULT_SEPARATOR: &str = ";";
pub const DEFAULT_REGEX: &str = "(.*)";
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// What a relabel rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    /// Parses an action name; like Prometheus, case does not matter.
    pub fn parse(s: &str) -> Result<Action, RelabelError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            "" => return Err(RelabelError("relabel action cannot be empty".into())),
            other => return Err(RelabelError(format!("unknown relabel action {other:?}"))),
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An invalid relabel rule, with Prometheus' wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RelabelError(pub String);

/// A regex as written in a relabel rule, compiled fully anchored (`^(?:re)$`).
#[derive(Clone)]
pub struct RelabelRegex {
    source: String,
    re: regex::Regex,
}

impl RelabelRegex {
    pub fn new(source: &str) -> Result<Self, RelabelError> {
        let re = regex::Regex::new(&format!("^(?:{source})$")).map_err(|e| {
            // regex's message spans lines (pattern, caret, reason); keep the reason.
            let full = e.to_string();
            let reason = full
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            RelabelError(format!("invalid regex {source:?}: {reason}"))
        })?;
        Ok(RelabelRegex {
            source: source.to_string(),
            re,
        })
    }

    /// The expression as written (without the anchors).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

impl fmt::Debug for RelabelRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, o: &Self) -> bool {
        self.source == o.source
    }
}

/// One checked relabel rule. Deserializes from Prometheus' YAML (`source_labels`, `separator`,
/// `regex`, `modulus`, `target_label`, `replacement`, `action`), applying the defaults and
/// rejecting what Prometheus rejects.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawRelabelConfig")]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub regex: RelabelRegex,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: Action,
}

/// The rule as written, before defaults and checks.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelabelConfig {
    pub source_labels: Option<Vec<String>>,
    pub separator: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

/// `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`: a label name that may contain `$1`/`${name}`.
fn is_valid_relabel_target(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").expect("static regex")
    })
    .is_match(s)
}

impl TryFrom<RawRelabelConfig> for RelabelConfig {
    type Error = RelabelError;

    fn try_from(raw: RawRelabelConfig) -> Result<Self, RelabelError> {
        let action = match &raw.action {
            None => Action::Replace,
            Some(a) => Action::parse(a)?,
        };
        let regex_src = raw.regex.as_deref().unwrap_or(DEFAULT_REGEX);
        let regex = RelabelRegex::new(regex_src)?;
        let separator = raw
            .separator
            .clone()
            .unwrap_or_else(|| DEFAULT_SEPARATOR.into());
        let replacement = raw
            .replacement
            .clone()
            .unwrap_or_else(|| DEFAULT_REPLACEMENT.into());
        let target_label = raw.target_label.clone().unwrap_or_default();
        let modulus = raw.modulus.unwrap_or(0);
        for l in raw.source_labels.iter().flatten() {
            if !is_valid_label_name(l) {
                return Err(RelabelError(format!(
                    "{l:?} is not a valid label name in 'source_labels'"
                )));
            }
        }
        let err = |m: String| Err(RelabelError(m));
        use Action::*;
        if modulus == 0 && action == HashMod {
            return err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && target_label.is_empty()
        {
            return err(format!(
                "relabel configuration for {action} action requires 'target_label' value"
            ));
        }
        if matches!(
            action,
            Replace | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && !is_valid_relabel_target(&target_label)
        {
            return err(format!(
                "{target_label:?} is invalid 'target_label' for {action} action"
            ));
        }
        if matches!(
            action,
            Lowercase | Uppercase | KeepEqual | DropEqual | HashMod
        ) && !is_valid_label_name(&target_label)
        {
            return err(format!(
                "{target_label:?} is invalid 'target_label' for {action} action"
            ));
        }
        if matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual)
            && replacement != DEFAULT_REPLACEMENT
        {
            return err(format!("'replacement' can not be set for {action} action"));
        }
        if action == LabelMap && !is_valid_relabel_target(&replacement) {
            return err(format!(
                "{replacement:?} is invalid 'replacement' for {action} action"
            ));
        }
        if matches!(action, KeepEqual | DropEqual)
            && (regex_src != DEFAULT_REGEX
                || modulus != 0
                || separator != DEFAULT_SEPARATOR
                || replacement != DEFAULT_REPLACEMENT)
        {
            return err(format!(
                "{action} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (raw.source_labels.is_some()
                || !target_label.is_empty()
                || modulus != 0
                || separator != DEFAULT_SEPARATOR
                || replacement != DEFAULT_REPLACEMENT)
        {
            return err(format!(
                "{action} action requires only 'regex', and no other fields"
            ));
        }
        Ok(RelabelConfig {
            source_labels: raw.source_labels.unwrap_or_default(),
            separator,
            regex,
            modulus,
            target_label,
            replacement,
            action,
        })
    }
}

impl RelabelConfig {
    /// A rule from its fields as written (None = omitted), checked like the YAML form.
    pub fn from_raw(raw: RawRelabelConfig) -> Result<Self, RelabelError> {
        RelabelConfig::try_from(raw)
    }
}

/// Applies `rules` in order. Returns `None` when a rule drops the label set, else the result
/// (which may be empty; callers decide what an empty set means).
pub fn process(labels: &Labels, rules: &[RelabelConfig]) -> Option<Labels> {
    let mut lb = labels.clone();
    for r in rules {
        if !apply(r, &mut lb) {
            return None;
        }
    }
    Some(lb)
}

fn apply(r: &RelabelConfig, lb: &mut Labels) -> bool {
    let mut val = String::new();
    for (i, name) in r.source_labels.iter().enumerate() {
        if i > 0 {
            val.push_str(&r.separator);
        }
        val.push_str(lb.get(name).unwrap_or(""));
    }
    match r.action {
        Action::Drop => {
            if r.regex.is_match(&val) {
                return false;
            }
        }
        Action::Keep => {
            if !r.regex.is_match(&val) {
                return false;
            }
        }
        Action::DropEqual => {
            if lb.get(&r.target_label).unwrap_or("") == val {
                return false;
            }
        }
        Action::KeepEqual => {
            if lb.get(&r.target_label).unwrap_or("") != val {
                return false;
            }
        }
        Action::Replace => {
            // No match: no replacement.
            if let Some(caps) = r.regex.re.captures(&val) {
                let mut target = String::new();
                caps.expand(&r.target_label, &mut target);
                if is_valid_label_name(&target) {
                    let mut res = String::new();
                    caps.expand(&r.replacement, &mut res);
                    lb.set(&target, &res);
                }
            }
        }
        Action::Lowercase => lb.set(&r.target_label, &val.to_lowercase()),
        Action::Uppercase => lb.set(&r.target_label, &val.to_uppercase()),
        Action::HashMod => {
            let digest = md5(val.as_bytes());
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&digest[8..]);
            let m = u64::from_be_bytes(tail) % r.modulus.max(1);
            lb.set(&r.target_label, &m.to_string());
        }
        Action::LabelMap => {
            let snapshot: Vec<Label> = lb.as_slice().to_vec();
            for l in snapshot {
                if r.regex.is_match(&l.name) {
                    let res = r.regex.re.replace_all(&l.name, r.replacement.as_str());
                    lb.set(&res, &l.value);
                }
            }
        }
        Action::LabelDrop | Action::LabelKeep => {
            let keep_matching = r.action == Action::LabelKeep;
            let kept: Vec<Label> = lb
                .iter()
                .filter(|l| r.regex.is_match(&l.name) == keep_matching)
                .cloned()
                .collect();
            if kept.len() != lb.len() {
                *lb = kept.into_iter().collect();
            }
        }
    }
    true
}

/// MD5 (RFC 1321), needed only because `hashmod` must shard exactly like Prometheus does.
pub fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: [u32; 64] =
        std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32);
    let (mut a0, mut b0, mut c0, mut d0) = (
        0x6745_2301u32,
        0xefcd_ab89u32,
        0x98ba_dcfeu32,
        0x1032_5476u32,
    );
    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    for chunk in msg.chunks_exact(64) {
        let m: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ])
        });
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a0.to_le_bytes());
    out[4..8].copy_from_slice(&b0.to_le_bytes());
    out[8..12].copy_from_slice(&c0.to_le_bytes());
    out[12..].copy_from_slice(&d0.to_le_bytes());
    out
}

#[cfg(test)]
mod tests;
