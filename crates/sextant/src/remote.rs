//! Builds the remote engines of `serve` from `remote_read:` and `remote_engines:` in
//! sextant.yml, so the query API, dashboards and rules read them through the PromQL engine's
//! `Querier` seam (see docs/scale-out.md). Changing them needs a restart.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use sextant_remote::{Engines, PromApiEngine, RemoteEngine, RemoteRead};
use sextant_tsdb::db::Db;

use crate::config::Loaded;

/// The configured engines, or `None` when queries only read local storage.
pub fn engines(
    loaded: &Loaded,
    db: Arc<Db>,
    external_labels: &sextant_model::Labels,
    rt: tokio::runtime::Handle,
) -> Result<Option<Arc<Engines>>> {
    if loaded.remote_read.is_empty() && loaded.remote_engines.is_empty() {
        return Ok(None);
    }
    // The oldest timestamp local storage holds, for `read_recent: false`.
    let local_start: sextant_remote::read::LocalStart = Arc::new(move || {
        db.blocks()
            .iter()
            .map(|b| b.meta().min_time)
            .chain(std::iter::once(db.head().min_time()))
            .min()
            .unwrap_or(i64::MAX)
    });
    let mut list: Vec<Arc<dyn RemoteEngine>> = Vec::new();
    for (i, c) in loaded.remote_read.iter().enumerate() {
        let e = RemoteRead::new(c, external_labels, local_start.clone(), rt.clone())
            .map_err(|e| anyhow!("remote_read[{i}] ({}): {e}", c.display_name()))?;
        list.push(Arc::new(e));
    }
    for (i, c) in loaded.remote_engines.iter().enumerate() {
        let e = PromApiEngine::new(c, rt.clone())
            .map_err(|e| anyhow!("remote_engines[{i}] ({}): {e}", c.name))?;
        list.push(Arc::new(e));
    }
    tracing::info!(
        remote_read = loaded.remote_read.len(),
        remote_engines = loaded.remote_engines.len(),
        local_storage = !loaded.remote_only,
        "queries read remote engines"
    );
    Ok(Some(Arc::new(Engines {
        engines: list,
        local: !loaded.remote_only,
    })))
}
