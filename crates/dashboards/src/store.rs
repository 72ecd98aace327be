//! The SQLite store of dashboards saved from the UI or the API (`dashboards.db` in the data
//! directory), with every saved version kept: `dashboards` holds the current version of each
//! uid, `versions` the history. Dashboards are stored as JSON of the model.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::Dashboard;

/// A store failure (I/O, SQLite, a corrupt row).
#[derive(Debug, thiserror::Error)]
#[error("dashboard store: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// One stored version.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredVersion {
    pub version: i64,
    /// Unix milliseconds.
    pub updated: i64,
    pub message: String,
}

/// A stored dashboard with its current version.
#[derive(Clone, Debug)]
pub struct Stored {
    pub dashboard: Dashboard,
    pub version: i64,
    pub updated: i64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dashboards (
  uid TEXT PRIMARY KEY, version INTEGER NOT NULL, updated INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
  uid TEXT NOT NULL, version INTEGER NOT NULL, updated INTEGER NOT NULL, message TEXT NOT NULL,
  body TEXT NOT NULL, PRIMARY KEY (uid, version));
";

/// The outcome of a conditional save.
#[derive(Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Saved as this version.
    Saved(i64),
    /// The current version is not the expected one.
    Conflict { current: i64 },
}

/// The dashboard database.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating) `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// An in-memory store (tests, or no data directory).
    pub fn in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn decode(uid: &str, body: &str) -> Result<Dashboard, StoreError> {
        serde_json::from_str(body)
            .map_err(|e| StoreError(format!("dashboard {uid:?} in the database: {e}")))
    }

    /// Every current dashboard.
    pub fn list(&self) -> Result<Vec<Stored>, StoreError> {
        let c = self.conn();
        let mut st =
            c.prepare("SELECT uid, version, updated, body FROM dashboards ORDER BY uid")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (uid, version, updated, body) = row?;
            match Self::decode(&uid, &body) {
                Ok(dashboard) => out.push(Stored {
                    dashboard,
                    version,
                    updated,
                }),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable dashboard"),
            }
        }
        Ok(out)
    }

    /// The current version of `uid`.
    pub fn get(&self, uid: &str) -> Result<Option<Stored>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT version, updated, body FROM dashboards WHERE uid = ?1",
                params![uid],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?;
        match row {
            Some((version, updated, body)) => Ok(Some(Stored {
                dashboard: Self::decode(uid, &body)?,
                version,
                updated,
            })),
            None => Ok(None),
        }
    }

    /// Saves `d` as a new version if the current version is `expected` (0 = not stored yet).
    pub fn save(
        &self,
        d: &Dashboard,
        expected: i64,
        message: &str,
        now_ms: i64,
    ) -> Result<SaveOutcome, StoreError> {
        let body = serde_json::to_string(d).map_err(|e| StoreError(e.to_string()))?;
        let mut c = self.conn();
        let tx = c.transaction()?;
        let current: i64 = tx
            .query_row(
                "SELECT version FROM dashboards WHERE uid = ?1",
                params![d.uid],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        if current != expected {
            return Ok(SaveOutcome::Conflict { current });
        }
        // History survives a delete, so numbers keep growing after a re-create.
        let last: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM versions WHERE uid = ?1",
            params![d.uid],
            |r| r.get(0),
        )?;
        let version = last.max(current) + 1;
        tx.execute(
            "INSERT INTO versions (uid, version, updated, message, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![d.uid, version, now_ms, message, body],
        )?;
        tx.execute(
            "INSERT INTO dashboards (uid, version, updated, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(uid) DO UPDATE SET version = ?2, updated = ?3, body = ?4",
            params![d.uid, version, now_ms, body],
        )?;
        tx.commit()?;
        Ok(SaveOutcome::Saved(version))
    }

    /// Removes the current copy of `uid` (its history stays); false if there was none.
    pub fn delete(&self, uid: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM dashboards WHERE uid = ?1", params![uid])?;
        Ok(n > 0)
    }

    /// The history of `uid`, newest first.
    pub fn versions(&self, uid: &str) -> Result<Vec<StoredVersion>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare(
            "SELECT version, updated, message FROM versions WHERE uid = ?1 ORDER BY version DESC",
        )?;
        let rows = st.query_map(params![uid], |r| {
            Ok(StoredVersion {
                version: r.get(0)?,
                updated: r.get(1)?,
                message: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One version of `uid`.
    pub fn version(&self, uid: &str, version: i64) -> Result<Option<Dashboard>, StoreError> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT body FROM versions WHERE uid = ?1 AND version = ?2",
                params![uid, version],
                |r| r.get(0),
            )
            .optional()?;
        body.map(|b| Self::decode(uid, &b)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dash(uid: &str, title: &str) -> Dashboard {
        Dashboard {
            uid: uid.into(),
            title: title.into(),
            ..Dashboard::default()
        }
    }

    #[test]
    fn versions_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dashboards.db");
        {
            let s = Store::open(&path).unwrap();
            assert_eq!(
                s.save(&dash("a", "one"), 0, "create", 10).unwrap(),
                SaveOutcome::Saved(1)
            );
            assert_eq!(
                s.save(&dash("a", "two"), 0, "again", 11).unwrap(),
                SaveOutcome::Conflict { current: 1 }
            );
            assert_eq!(
                s.save(&dash("a", "two"), 1, "edit", 12).unwrap(),
                SaveOutcome::Saved(2)
            );
        }
        // Reopened: everything is still there.
        let s = Store::open(&path).unwrap();
        let cur = s.get("a").unwrap().unwrap();
        assert_eq!(
            (cur.version, cur.updated, cur.dashboard.title.as_str()),
            (2, 12, "two")
        );
        let v = s.versions("a").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].version, v[0].message.as_str()), (2, "edit"));
        assert_eq!(s.version("a", 1).unwrap().unwrap().title, "one");
        assert!(s.version("a", 3).unwrap().is_none());
        assert!(s.delete("a").unwrap());
        assert!(s.get("a").unwrap().is_none());
        assert!(!s.delete("a").unwrap());
        // Re-created after a delete: numbering continues, history kept.
        assert_eq!(
            s.save(&dash("a", "three"), 0, "", 13).unwrap(),
            SaveOutcome::Saved(3)
        );
        assert_eq!(s.versions("a").unwrap().len(), 3);
        assert_eq!(s.list().unwrap().len(), 1);
    }
}
