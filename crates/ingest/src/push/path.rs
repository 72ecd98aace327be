//! The grouping key of a push from its URL path, as the Pushgateway reads it:
//! `/metrics/job/<job>{/<label>/<value>}`, where `job@base64` or `<label>@base64` marks the
//! following value as base64url (RFC 4648 §5, `=` padding optional; a lone `=` is the empty
//! value). The path is percent-decoded before it is split at `/`, like Go's router does, so a
//! `/` inside a value needs base64.

use std::collections::BTreeMap;

use super::PushError;

/// Label name → value, `job` included; empty values are allowed (and mean "absent" on the
/// stored series) but still distinguish groups, as in the Pushgateway.
pub type GroupingKey = BTreeMap<String, String>;

const BASE64_SUFFIX: &str = "@base64";
const PREFIX: &str = "/metrics/job";

/// Parses a raw (still percent-encoded) request path starting with `/metrics/job`.
pub fn parse_grouping_path(raw_path: &str) -> Result<GroupingKey, PushError> {
    let path = percent_decode(raw_path)?;
    let rest = path
        .strip_prefix(PREFIX)
        .ok_or_else(|| PushError::Path(format!("push path {path:?} must start with {PREFIX}/")))?;
    let (job_b64, rest) = match rest.strip_prefix(BASE64_SUFFIX) {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest
        .strip_prefix('/')
        .ok_or_else(|| PushError::Path("job name is required".to_string()))?;
    let (job_raw, labels) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let job = if job_b64 {
        decode_base64(job_raw).map_err(|e| {
            PushError::Path(format!(
                "invalid base64 encoding in job name {job_raw:?}: {e}"
            ))
        })?
    } else {
        job_raw.to_string()
    };
    if job.is_empty() {
        return Err(PushError::Path("job name is required".to_string()));
    }
    let mut key = split_labels(labels)?;
    key.insert("job".to_string(), job);
    Ok(key)
}

/// `"/a/1/b@base64/Mg"` → `{a: 1, b: 2}`; `""` and `"/"` are empty.
fn split_labels(labels: &str) -> Result<GroupingKey, PushError> {
    let mut out = GroupingKey::new();
    if labels.len() <= 1 {
        return Ok(out);
    }
    let components: Vec<&str> = labels[1..].split('/').collect();
    if components.len() & 1 == 1 {
        return Err(PushError::Path(format!(
            "odd number of components in label string {labels:?}"
        )));
    }
    for pair in components.chunks(2) {
        let (name, value) = (pair[0], pair[1]);
        let (trimmed, b64) = match name.strip_suffix(BASE64_SUFFIX) {
            Some(t) => (t, true),
            None => (name, false),
        };
        if !sextant_model::labels::is_valid_label_name(trimmed) || trimmed.starts_with("__") {
            return Err(PushError::Path(format!("improper label name {trimmed:?}")));
        }
        let value = if b64 {
            decode_base64(value).map_err(|e| {
                PushError::Path(format!(
                    "invalid base64 encoding for label {trimmed}={value:?}: {e}"
                ))
            })?
        } else if value.is_empty() {
            return Err(PushError::Path(format!(
                "empty value for label {trimmed:?} in the path: encode an empty value as {trimmed}@base64/="
            )));
        } else {
            value.to_string()
        };
        out.insert(trimmed.to_string(), value);
    }
    Ok(out)
}

/// Base64url without padding; trailing `=` are ignored (Go's `RawURLEncoding` after trimming
/// `=`, as the Pushgateway decodes). The result must be UTF-8.
pub fn decode_base64(s: &str) -> Result<String, String> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, b) in s.bytes().enumerate() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return Err(format!("illegal base64 data at input byte {i}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Like Go's (non-strict) decoder: a dangling 6-bit group is an error, unused low bits of
    // the last character are ignored.
    if bits >= 6 {
        return Err(format!("illegal base64 data at input byte {}", s.len()));
    }
    String::from_utf8(out).map_err(|_| "decoded value is not valid UTF-8".to_string())
}

/// Base64url without padding (what `sextant push` and tests put into paths).
pub fn encode_base64(s: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(s.len().div_ceil(3) * 4);
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn percent_decode(s: &str) -> Result<String, PushError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PushError::Path(format!("invalid URL escape in path {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| PushError::Path(format!("path {s:?} is not valid UTF-8 after decoding")))
}
