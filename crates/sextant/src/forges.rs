//! Wiring of the forge pollers (`forges:` in sextant.yml) into `serve`: started with the
//! server, restarted on `/-/reload` / SIGHUP when the section changed. A poller's state lives
//! in `DATA_DIR/forges/`, so a restarted poller continues its counters where the old one was.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sextant_ingest::forge::{ForgeConfig, ForgeHandle};
use sextant_ingest::Sink;

use crate::rules_cmd::ExtraReload;

/// The running pollers and the configuration they run with.
pub struct Forges {
    running: Mutex<(Vec<ForgeConfig>, Vec<ForgeHandle>)>,
    sink: Arc<dyn Sink>,
    state_dir: PathBuf,
    runtime: tokio::runtime::Handle,
}

impl Forges {
    /// Starts the pollers on the current runtime.
    pub fn start(
        configs: Vec<ForgeConfig>,
        sink: Arc<dyn Sink>,
        state_dir: PathBuf,
    ) -> Result<Arc<Forges>, String> {
        let handles =
            sextant_ingest::forge::spawn(configs.clone(), sink.clone(), Some(state_dir.clone()))?;
        Ok(Arc::new(Forges {
            running: Mutex::new((configs, handles)),
            sink,
            state_dir,
            runtime: tokio::runtime::Handle::current(),
        }))
    }

    /// Applies a new `forges:` section: when it differs, the old pollers stop and new ones start.
    pub fn apply(&self, configs: Vec<ForgeConfig>) -> Result<(), String> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.0 == configs {
            return Ok(());
        }
        // Stop the old pollers first, so old and new never write the same state file at once.
        running.1.clear();
        let _g = self.runtime.enter();
        let handles = sextant_ingest::forge::spawn(
            configs.clone(),
            self.sink.clone(),
            Some(self.state_dir.clone()),
        )?;
        tracing::info!(forges = configs.len(), "forge pollers restarted");
        *running = (configs, handles);
        Ok(())
    }
}

/// Chains a reload of the `forges:` section (re-read from `config`) before `next`.
pub fn with_reload(
    forges: Arc<Forges>,
    config: Option<PathBuf>,
    next: Option<ExtraReload>,
) -> Option<ExtraReload> {
    Some(Box::new(move || {
        let loaded = crate::config::load(config.as_deref()).map_err(|e| e.to_string())?;
        if let Some(f) = &next {
            f()?;
        }
        forges.apply(loaded.forges)
    }))
}
