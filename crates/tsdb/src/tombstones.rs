//! Tombstones: time ranges deleted from series by the admin API
//! (`/api/v1/admin/tsdb/delete_series`), with Prometheus' semantics.
//!
//! A delete records, for every series matching at that moment, the deleted interval
//! `[mint, maxt]` (inclusive). Queries hide samples inside a series' intervals at once, in the
//! head and in blocks alike, also samples appended later into a deleted range (like Prometheus'
//! head tombstones). The set is written to `tombstones.json` in the data directory (temp file,
//! fsync, rename) before the delete is acknowledged, so it survives restarts.
//! `clean_tombstones` rewrites the affected blocks without the deleted samples and then drops
//! the intervals no stored data needs any more.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use sextant_model::Labels;

use crate::db::DbError;

/// Deleted intervals per series: sorted, non-overlapping, inclusive `(mint, maxt)`.
pub type TombstoneMap = BTreeMap<Labels, Vec<(i64, i64)>>;

/// The persisted tombstone set of a database.
pub struct Tombstones {
    path: PathBuf,
    map: RwLock<Arc<TombstoneMap>>,
    /// Serialises writers (read-modify-persist-swap).
    write: Mutex<()>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    labels: BTreeMap<String, String>,
    intervals: Vec<(i64, i64)>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    series: Vec<Entry>,
}

const FILE: &str = "tombstones.json";

impl Tombstones {
    /// Loads `dir/tombstones.json` (an absent file is an empty set).
    pub fn open(dir: &Path) -> Result<Tombstones, DbError> {
        let path = dir.join(FILE);
        let mut map = TombstoneMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let f: File = serde_json::from_slice(&bytes).map_err(|e| DbError::Io {
                    context: format!("reading {}", path.display()),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                })?;
                for e in f.series {
                    let labels = Labels::from_pairs(e.labels);
                    let iv = map.entry(labels).or_default();
                    for (a, b) in e.intervals {
                        add_interval(iv, a, b);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DbError::Io {
                    context: format!("reading {}", path.display()),
                    source: e,
                })
            }
        }
        Ok(Tombstones {
            path,
            map: RwLock::new(Arc::new(map)),
            write: Mutex::new(()),
        })
    }

    /// The current set (a cheap snapshot; later deletes do not change it).
    pub fn snapshot(&self) -> Arc<TombstoneMap> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds `[mint, maxt]` to every series in `series` and persists the set.
    pub fn add(&self, series: &[Labels], mint: i64, maxt: i64) -> Result<(), DbError> {
        if series.is_empty() || mint > maxt {
            return Ok(());
        }
        self.update(|m| {
            for l in series {
                add_interval(m.entry(l.clone()).or_default(), mint, maxt);
            }
        })
    }

    /// Replaces the set by `f(set)` and persists it.
    pub(crate) fn update(&self, f: impl FnOnce(&mut TombstoneMap)) -> Result<(), DbError> {
        let _g = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next: TombstoneMap = (*self.snapshot()).clone();
        f(&mut next);
        next.retain(|_, v| !v.is_empty());
        self.persist(&next)?;
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(())
    }

    fn persist(&self, m: &TombstoneMap) -> Result<(), DbError> {
        let io = |what: &str, e: std::io::Error| DbError::Io {
            context: format!("{what} {}", self.path.display()),
            source: e,
        };
        if m.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", e)),
                _ => Ok(()),
            };
        }
        let f = File {
            version: 1,
            series: m
                .iter()
                .map(|(l, iv)| Entry {
                    labels: l
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                    intervals: iv.clone(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&f).map_err(|e| {
            io(
                "encoding",
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(|e| io("creating", e))?;
        file.write_all(&bytes).map_err(|e| io("writing", e))?;
        file.sync_all().map_err(|e| io("syncing", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io("renaming", e))?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// Adds `[a, b]` to sorted, disjoint intervals, merging overlapping and adjacent ones.
pub(crate) fn add_interval(iv: &mut Vec<(i64, i64)>, a: i64, b: i64) {
    iv.push((a, b));
    iv.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(iv.len());
    for &(s, e) in iv.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *iv = out;
}

/// Whether `t` lies in one of the intervals.
pub fn is_deleted(iv: &[(i64, i64)], t: i64) -> bool {
    iv.iter().any(|&(a, b)| a <= t && t <= b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge() {
        let mut v = Vec::new();
        add_interval(&mut v, 10, 20);
        add_interval(&mut v, 30, 40);
        add_interval(&mut v, 21, 25);
        assert_eq!(v, vec![(10, 25), (30, 40)]);
        add_interval(&mut v, 0, 100);
        assert_eq!(v, vec![(0, 100)]);
        assert!(is_deleted(&v, 0) && is_deleted(&v, 100) && !is_deleted(&v, 101));
    }

    #[test]
    fn persisted_across_open() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tombstones::open(dir.path()).unwrap();
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        t.add(std::slice::from_ref(&l), 5, 9).unwrap();
        let t2 = Tombstones::open(dir.path()).unwrap();
        assert_eq!(t2.snapshot().get(&l), Some(&vec![(5, 9)]));
        t2.update(|m| m.clear()).unwrap();
        assert!(!dir.path().join(FILE).exists());
    }
}
