//! Pull-based ingest: Prometheus-style scraping. A [`ScrapeManager`] runs one pool per
//! `scrape_configs` entry; a pool runs its service discovery providers, turns the discovered
//! groups into targets (relabeling), and keeps exactly one scrape loop per target, starting and
//! stopping loops as targets come and go. Applying a new configuration touches only the pools
//! whose configuration changed, so a reload adds and removes targets without a restart.
//! Samples leave through the [`Sink`] seam.

pub mod config;
pub mod discovery;
pub mod http_client;
pub mod scrape_loop;
pub mod target;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use sextant_model::{Labels, Metadata};
use tokio::sync::{mpsc, oneshot, watch};

pub use config::ScrapeConfig;
pub use scrape_loop::{Health, TargetHealth};
pub use target::Target;

use discovery::{Provider, TargetGroup};
use scrape_loop::PoolContext;
use target::Populated;

use crate::Sink;

/// Default `refresh_interval` of `file_sd_configs`.
const FILE_SD_REFRESH: std::time::Duration = std::time::Duration::from_secs(300);
/// Default `refresh_interval` of `http_sd_configs`.
const HTTP_SD_REFRESH: std::time::Duration = std::time::Duration::from_secs(60);

struct ActiveTarget {
    target: Target,
    health: Arc<Mutex<TargetHealth>>,
    metadata: Arc<Mutex<Arc<Vec<Metadata>>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for ActiveTarget {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[derive(Default)]
struct PoolState {
    active: BTreeMap<String, ActiveTarget>,
    dropped: Vec<Labels>,
}

struct PoolHandle {
    cfg: ScrapeConfig,
    stop: watch::Sender<bool>,
    state: Arc<Mutex<PoolState>>,
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A target as `/api/v1/targets` shows it.
#[derive(Clone, Debug)]
pub struct ActiveTargetInfo {
    pub target: Target,
    pub health: TargetHealth,
    /// Metric metadata (`# HELP`/`# TYPE`/`# UNIT`) of the last successful scrape.
    pub metadata: Arc<Vec<Metadata>>,
}

/// One pool (job) as `/api/v1/targets` shows it.
#[derive(Clone, Debug)]
pub struct PoolInfo {
    pub job: String,
    pub active: Vec<ActiveTargetInfo>,
    /// Discovered labels of targets that relabeling dropped.
    pub dropped: Vec<Labels>,
}

/// Runs all scrape pools.
pub struct ScrapeManager {
    sink: Arc<dyn Sink>,
    rt: tokio::runtime::Handle,
    pools: Mutex<BTreeMap<String, PoolHandle>>,
}

impl ScrapeManager {
    /// Must be called inside a Tokio runtime; pools run on it.
    pub fn new(sink: Arc<dyn Sink>) -> Arc<ScrapeManager> {
        Arc::new(ScrapeManager {
            sink,
            rt: tokio::runtime::Handle::current(),
            pools: Mutex::new(BTreeMap::new()),
        })
    }

    /// Applies resolved scrape configs (see [`ScrapeConfig::resolve`]): pools of removed jobs
    /// stop (their series get staleness markers), changed jobs restart, unchanged jobs keep
    /// running untouched. Nothing changes if any config cannot be set up.
    pub fn apply(&self, configs: Vec<ScrapeConfig>) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for c in &configs {
            if !seen.insert(c.job_name.clone()) {
                return Err(format!(
                    "found multiple scrape configs with job name {:?}",
                    c.job_name
                ));
            }
        }
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh: Vec<(ScrapeConfig, scrape_loop::PoolClients)> = Vec::new();
        for c in configs {
            if pools.get(&c.job_name).is_some_and(|p| p.cfg == c) {
                continue;
            }
            let clients = scrape_loop::build_clients(&c)
                .map_err(|e| format!("scrape config {:?}: {e}", c.job_name))?;
            fresh.push((c, clients));
        }
        pools.retain(|job, _| seen.contains(job));
        for (cfg, client) in fresh {
            tracing::info!(job = %cfg.job_name, "starting scrape pool");
            let handle = self.start_pool(cfg.clone(), client);
            pools.insert(cfg.job_name.clone(), handle);
        }
        Ok(())
    }

    /// Stops every pool (used at shutdown).
    pub fn stop_all(&self) {
        self.pools.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Current targets of every pool, by job name.
    pub fn snapshot(&self) -> Vec<PoolInfo> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .iter()
            .map(|(job, p)| {
                let st = p.state.lock().unwrap_or_else(|e| e.into_inner());
                PoolInfo {
                    job: job.clone(),
                    active: st
                        .active
                        .values()
                        .map(|a| ActiveTargetInfo {
                            target: a.target.clone(),
                            health: a.health.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                            metadata: a.metadata.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                        })
                        .collect(),
                    dropped: st.dropped.clone(),
                }
            })
            .collect()
    }

    fn start_pool(&self, cfg: ScrapeConfig, clients: scrape_loop::PoolClients) -> PoolHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut providers: Vec<Provider> = Vec::new();
        let statics: Vec<TargetGroup> = cfg
            .static_configs
            .iter()
            .map(|s| TargetGroup {
                targets: s.targets.clone(),
                labels: s.labels.clone(),
            })
            .collect();
        providers.push(Provider::Static(statics));
        for f in &cfg.file_sd_configs {
            providers.push(Provider::File {
                patterns: f.files.clone(),
                refresh: f.refresh_interval.map(|d| d.0).unwrap_or(FILE_SD_REFRESH),
            });
        }
        // Discovery has its own clients: the job's TLS identity and credentials are for its
        // targets, not for the discovery endpoint.
        for (h, client) in cfg.http_sd_configs.iter().zip(clients.http_sd) {
            providers.push(Provider::Http {
                url: h.url.0.clone(),
                refresh: h.refresh_interval.map(|d| d.0).unwrap_or(HTTP_SD_REFRESH),
                http: Box::new(h.http_client()),
                client,
            });
        }
        for (i, p) in providers.into_iter().enumerate() {
            self.rt.spawn(discovery::run_provider(
                i,
                p,
                cfg.job_name.clone(),
                tx.clone(),
                stop_rx.clone(),
            ));
        }
        drop(tx);
        let state = Arc::new(Mutex::new(PoolState::default()));
        let ctx = Arc::new(PoolContext {
            http: cfg.http_client(),
            cfg: Arc::new(cfg.clone()),
            client: clients.scrape,
            sink: self.sink.clone(),
        });
        self.rt
            .spawn(run_pool(ctx, rx, stop_rx, state.clone(), self.rt.clone()));
        PoolHandle {
            cfg,
            stop: stop_tx,
            state,
        }
    }
}

async fn run_pool(
    ctx: Arc<PoolContext>,
    mut rx: mpsc::UnboundedReceiver<(usize, Vec<TargetGroup>)>,
    mut stop: watch::Receiver<bool>,
    state: Arc<Mutex<PoolState>>,
    rt: tokio::runtime::Handle,
) {
    let mut groups: HashMap<usize, Vec<TargetGroup>> = HashMap::new();
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some((i, g)) = msg else {
                    // All providers ended (static only): keep the targets until stopped.
                    let _ = stop.wait_for(|s| *s).await;
                    break;
                };
                groups.insert(i, g);
                while let Ok((i, g)) = rx.try_recv() {
                    groups.insert(i, g);
                }
                sync_targets(&ctx, &groups, &state, &rt);
            }
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
    // Dropping the active targets stops their loops (which write staleness markers).
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    st.active.clear();
}

/// Reconciles running loops with the discovered groups.
fn sync_targets(
    ctx: &Arc<PoolContext>,
    groups: &HashMap<usize, Vec<TargetGroup>>,
    state: &Arc<Mutex<PoolState>>,
    rt: &tokio::runtime::Handle,
) {
    let mut wanted: BTreeMap<String, Target> = BTreeMap::new();
    let mut dropped: Vec<Labels> = Vec::new();
    let mut keys: Vec<&usize> = groups.keys().collect();
    keys.sort();
    for k in keys {
        for g in &groups[k] {
            for addr in &g.targets {
                match target::populate(&ctx.cfg, g, addr) {
                    Populated::Active(t) => {
                        wanted.entry(t.key()).or_insert(*t);
                    }
                    Populated::Dropped(l) => dropped.push(l),
                    Populated::Invalid(e) => {
                        tracing::warn!(job = %ctx.cfg.job_name, address = %addr, error = %e, "skipping invalid target");
                    }
                }
            }
        }
    }
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    st.dropped = dropped;
    st.active.retain(|k, _| wanted.contains_key(k));
    for (k, t) in wanted {
        if st.active.contains_key(&k) {
            continue;
        }
        let health = Arc::new(Mutex::new(TargetHealth::default()));
        let metadata = Arc::new(Mutex::new(Arc::new(Vec::new())));
        let (stop_tx, stop_rx) = oneshot::channel();
        rt.spawn(scrape_loop::run(
            ctx.clone(),
            t.clone(),
            health.clone(),
            metadata.clone(),
            stop_rx,
        ));
        st.active.insert(
            k,
            ActiveTarget {
                target: t,
                health,
                metadata,
                stop: Some(stop_tx),
            },
        );
    }
}

#[cfg(test)]
mod tests;
