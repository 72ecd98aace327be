//! Persistence in SQLite (`<data-dir>/alerts.db`, WAL mode): active alerts, silences and the
//! notification log. Every write is committed before the dispatcher acts on it, so after a
//! restart pending groups are rebuilt from the stored alerts and the notification log tells
//! which notifications already went out — nothing is lost and nothing is sent twice.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};

use crate::alert::Alert;
use crate::silence::Silence;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[error("alert store: {0}")]
pub struct StoreError(String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// Which integration of which receiver a notification-log entry belongs to (Alertmanager's
/// `nflogpb.Receiver`: group name, integration, index).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NflogKey {
    pub group_key: String,
    pub receiver: String,
    pub integration: String,
    pub idx: u32,
}

/// What was last notified for a group and integration.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct NflogEntry {
    pub firing: Vec<u64>,
    pub resolved: Vec<u64>,
    /// When it was sent (ms).
    pub ts: i64,
}

/// The SQLite database.
pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (fingerprint INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nflog (
    group_key TEXT NOT NULL, receiver TEXT NOT NULL, integration TEXT NOT NULL, idx INTEGER NOT NULL,
    firing TEXT NOT NULL, resolved TEXT NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (group_key, receiver, integration, idx));
";

fn hashes_to_text(v: &[u64]) -> String {
    v.iter()
        .map(|h| format!("{h:016x}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn text_to_hashes(s: &str) -> Vec<u64> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .filter_map(|x| u64::from_str_radix(x, 16).ok())
        .collect()
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

    /// An in-memory database (tests, or no data directory).
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

    /// Stores (replaces) alerts in one transaction.
    pub fn put_alerts(&self, alerts: &[(u64, &Alert)]) -> Result<(), StoreError> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO alerts (fingerprint, body) VALUES (?1, ?2)",
            )?;
            for (fp, a) in alerts {
                st.execute(params![*fp as i64, serde_json::to_string(a)?])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes alerts by fingerprint.
    pub fn delete_alerts(&self, fps: &[u64]) -> Result<(), StoreError> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached("DELETE FROM alerts WHERE fingerprint = ?1")?;
            for fp in fps {
                st.execute(params![*fp as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// All stored alerts.
    pub fn load_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare("SELECT body FROM alerts")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            match serde_json::from_str::<Alert>(&r?) {
                Ok(a) => out.push(a),
                Err(e) => tracing::warn!(error = %e, "skipping unreadable stored alert"),
            }
        }
        Ok(out)
    }

    /// Stores (replaces) a silence.
    pub fn put_silence(&self, s: &Silence) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO silences (id, body) VALUES (?1, ?2)",
            params![s.id, serde_json::to_string(s)?],
        )?;
        Ok(())
    }

    /// Deletes a silence (garbage collection).
    pub fn delete_silence(&self, id: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM silences WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// All stored silences.
    pub fn load_silences(&self) -> Result<Vec<Silence>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare("SELECT body FROM silences")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            match serde_json::from_str::<Silence>(&r?) {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!(error = %e, "skipping unreadable stored silence"),
            }
        }
        Ok(out)
    }

    /// Records a notification.
    pub fn put_nflog(&self, k: &NflogKey, e: &NflogEntry) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO nflog (group_key, receiver, integration, idx, firing, resolved, ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                k.group_key,
                k.receiver,
                k.integration,
                k.idx,
                hashes_to_text(&e.firing),
                hashes_to_text(&e.resolved),
                e.ts
            ],
        )?;
        Ok(())
    }

    /// The whole notification log.
    pub fn load_nflog(&self) -> Result<Vec<(NflogKey, NflogEntry)>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare(
            "SELECT group_key, receiver, integration, idx, firing, resolved, ts FROM nflog",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                NflogKey {
                    group_key: r.get(0)?,
                    receiver: r.get(1)?,
                    integration: r.get(2)?,
                    idx: r.get(3)?,
                },
                NflogEntry {
                    firing: text_to_hashes(&r.get::<_, String>(4)?),
                    resolved: text_to_hashes(&r.get::<_, String>(5)?),
                    ts: r.get(6)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Drops notification-log entries older than `before` (ms).
    pub fn gc_nflog(&self, before: i64) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM nflog WHERE ts < ?1", params![before])?)
    }
}
