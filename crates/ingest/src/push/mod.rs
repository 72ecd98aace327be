//! Pushgateway-compatible push groups. Short-lived jobs (CI runs, agent batches, cron scripts)
//! cannot be scraped, so they push their metrics to a *group* named by a grouping key
//! (`job` plus optional labels from the URL path `/metrics/job/<job>{/<label>/<value>}`).
//! This module keeps those groups with the Pushgateway's exact semantics — PUT replaces a
//! group, POST replaces only the metric families it carries, DELETE removes the group,
//! grouping labels override pushed labels, timestamps and inconsistent pushes are refused,
//! `push_time_seconds` / `push_failure_time_seconds` per group — and adds what a Pushgateway
//! user has to build around it: the samples go straight into storage (re-appended at an
//! interval so the last pushed value stays queryable, with staleness markers once a group is
//! deleted), groups survive restarts, and a group can carry a TTL after which it expires.
//!
//! - [`path`]: the grouping key from the URL path (`@base64` values included).
//! - [`store`]: the groups themselves, the push/delete/expire rules (pure, clock passed in)
//!   and the text-format body parser with the Pushgateway's extra rules.
//! - [`protobuf`]: bodies in the protobuf delimited format (Go's client default).
//! - [`persist`]: the groups on disk.
//! - [`service`]: the store wired to a [`crate::Sink`], a persistence file and a clock.
//!
//! User documentation: `docs/push.md`.

pub mod path;
pub mod persist;
pub mod protobuf;
pub mod service;
pub mod store;

pub use path::{parse_grouping_path, GroupingKey};
pub use protobuf::format_go_float;
pub use service::{PushGroups, PushLimits, PushOutcome};
pub use store::{parse_body, Family, Group, GroupStore, ParsedBody};

/// Name of the per-group gauge with the time of the last successful push.
pub const PUSH_TIME_METRIC: &str = "push_time_seconds";
/// Name of the per-group gauge with the time of the last failed push.
pub const PUSH_FAILURE_TIME_METRIC: &str = "push_failure_time_seconds";

/// Why a push or delete was refused. Every variant but [`PushError::Storage`] is the client's
/// fault (HTTP 400) and leaves the group's metrics unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The URL path does not name a valid grouping key.
    #[error("{0}")]
    Path(String),
    /// The body could not be parsed.
    #[error("{0}")]
    Body(String),
    /// The pushed metrics are invalid or clash with metrics already stored (the group's
    /// `push_failure_time_seconds` was updated).
    #[error("pushed metrics are invalid or inconsistent with existing metrics: {0}")]
    Inconsistent(String),
    /// A `Content-Encoding` that is not supported (HTTP 415).
    #[error("{0}")]
    Encoding(String),
    /// A bad `ttl` parameter or header.
    #[error("{0}")]
    Ttl(String),
    /// Storage or the persistence file failed; the push may be retried.
    #[error("{0}")]
    Storage(String),
}

#[cfg(test)]
mod tests;

/// Undoes a push body's `Content-Encoding` (`gzip`, or `snappy` in the framed stream format,
/// as the Pushgateway accepts), refusing output larger than `max_decoded` bytes.
pub fn decode_content_encoding<'a>(
    encoding: Option<&str>,
    body: &'a [u8],
    max_decoded: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, PushError> {
    use std::io::Read;
    let enc = encoding.map(|e| e.trim().to_ascii_lowercase());
    let reader: Box<dyn Read + 'a> = match enc.as_deref() {
        None | Some("") | Some("identity") => return Ok(std::borrow::Cow::Borrowed(body)),
        Some("gzip") => Box::new(flate2::read::GzDecoder::new(body)),
        Some("snappy") => Box::new(snap::read::FrameDecoder::new(body)),
        Some(other) => {
            return Err(PushError::Encoding(format!(
                "unsupported Content-Encoding {other:?}: use gzip, snappy or none"
            )))
        }
    };
    let mut out = Vec::new();
    reader
        .take(max_decoded as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            PushError::Body(format!(
                "cannot decode the {} body: {e}",
                enc.as_deref().unwrap_or_default()
            ))
        })?;
    if out.len() > max_decoded {
        return Err(PushError::Body(format!(
            "decoded body exceeds the limit of {max_decoded} bytes (limit decompressed_size)"
        )));
    }
    Ok(std::borrow::Cow::Owned(out))
}
