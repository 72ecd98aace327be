//! The push groups on disk, so they survive a restart like the Pushgateway's
//! `--persistence.file`. One JSON document written to a temporary file, synced and renamed over
//! the old one, so a crash leaves either the old or the new state. Values are stored as their
//! IEEE-754 bits so NaN, ±Inf and every float round-trip exactly.

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sextant_model::{Labels, MetricType};

use super::store::{Family, Group};
use super::PushError;

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    groups: Vec<FileGroup>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    key: Vec<(String, String)>,
    push_time_ms: Option<i64>,
    failure_time_ms: Option<i64>,
    ttl_ms: Option<i64>,
    expires_at_ms: Option<i64>,
    families: Vec<FileFamily>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFamily {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    help: String,
    pushed_ms: i64,
    /// (labels as name/value pairs, value bits)
    samples: Vec<(Vec<(String, String)>, u64)>,
}

/// Serializes groups to the file format.
pub fn encode<'a>(groups: impl Iterator<Item = &'a Group>) -> Vec<u8> {
    let file = File {
        version: FORMAT_VERSION,
        groups: groups
            .map(|g| FileGroup {
                key: g.key.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                push_time_ms: g.push_time_ms,
                failure_time_ms: g.failure_time_ms,
                ttl_ms: g.ttl_ms,
                expires_at_ms: g.expires_at_ms,
                families: g
                    .families
                    .iter()
                    .map(|(name, f)| FileFamily {
                        name: name.clone(),
                        kind: f.kind.as_str().to_string(),
                        help: f.help.clone(),
                        pushed_ms: f.pushed_ms,
                        samples: f
                            .samples
                            .iter()
                            .map(|(l, v)| {
                                (
                                    l.iter()
                                        .map(|l| (l.name.clone(), l.value.clone()))
                                        .collect(),
                                    v.to_bits(),
                                )
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_vec(&file).unwrap_or_default()
}

/// Parses the file format.
pub fn decode(bytes: &[u8]) -> Result<Vec<Group>, String> {
    let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != FORMAT_VERSION {
        return Err(format!(
            "unsupported format version {} (expected {FORMAT_VERSION})",
            file.version
        ));
    }
    file.groups
        .into_iter()
        .map(|g| {
            let families = g
                .families
                .into_iter()
                .map(|f| {
                    let kind = MetricType::parse(&f.kind)
                        .ok_or_else(|| format!("unknown metric type {:?}", f.kind))?;
                    let fam = Family {
                        kind,
                        help: f.help,
                        samples: f
                            .samples
                            .into_iter()
                            .map(|(l, v)| (Labels::from_pairs(l), f64::from_bits(v)))
                            .collect(),
                        pushed_ms: f.pushed_ms,
                    };
                    Ok((f.name, fam))
                })
                .collect::<Result<_, String>>()?;
            Ok(Group {
                key: g.key.into_iter().collect(),
                families,
                push_time_ms: g.push_time_ms,
                failure_time_ms: g.failure_time_ms,
                ttl_ms: g.ttl_ms,
                expires_at_ms: g.expires_at_ms,
            })
        })
        .collect()
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PushError> {
    let tmp = path.with_extension("tmp");
    let io = |e: std::io::Error, what: &str| {
        PushError::Storage(format!("{what} {}: {e}", tmp.display()))
    };
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(e, "creating"))?;
    f.write_all(bytes).map_err(|e| io(e, "writing"))?;
    f.sync_all().map_err(|e| io(e, "syncing"))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        PushError::Storage(format!(
            "renaming {} to {}: {e}",
            tmp.display(),
            path.display()
        ))
    })
}
