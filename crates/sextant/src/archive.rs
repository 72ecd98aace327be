//! The archive: completed TSDB blocks copied to S3-compatible object storage, and read back
//! from there once local retention has deleted them.
//!
//! Local disk holds recent data; the bucket holds everything. Every maintenance round's blocks
//! are uploaded (`<prefix><ulid>/index`, `chunks/…`, and `meta.json` last, so a block whose
//! upload was interrupted is never seen: readers only consider blocks with a `meta.json`).
//! Uploads are idempotent — a block whose `meta.json` already exists is not sent again — and
//! the set of uploaded blocks is kept in `<data>/archive/uploaded.json`, so a restart re-uploads
//! nothing. Queries reach archived blocks through the TSDB's [`ExternalBlocks`] seam: archived
//! blocks whose data no local block holds are downloaded whole into a bounded local cache
//! (`<data>/archive/cache`, least recently used evicted) and merged with local data by the
//! ordinary block querier. Blocks that compaction merged are recognised by their `sources`, so
//! the same samples are never read twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sextant_ingest::scrape::config::PromDuration;
use sextant_objstore::{Client, Credentials, S3Config};
use sextant_tsdb::block::{Block, BlockMeta};
use sextant_tsdb::db::{Db, ExternalBlocks};
use sextant_tsdb::querier::QueryError;

/// `archive:` in sextant.yml.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    pub bucket: String,
    /// Key prefix for all objects (e.g. `sextant/node-1/`).
    #[serde(default)]
    pub prefix: String,
    /// S3 endpoint URL; unset means AWS S3 in `region`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Unset: `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Unset: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from the environment.
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// File holding the secret access key (trailing newline ignored).
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by MinIO, moto and most self-hosted stores.
    #[serde(default)]
    pub force_path_style: bool,
    /// How often completed blocks are looked for and uploaded.
    #[serde(default = "default_interval")]
    pub upload_interval: PromDuration,
    /// Bytes of downloaded blocks kept in the local cache.
    #[serde(default = "default_cache")]
    pub cache_max_bytes: u64,
}

fn default_interval() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}

fn default_cache() -> u64 {
    1 << 30
}

impl ArchiveConfig {
    /// Checks the section; `base` resolves a relative `secret_access_key_file`.
    pub fn validate(&self) -> Result<(), String> {
        if self.bucket.is_empty() || self.bucket.contains('/') {
            return Err(format!(
                "archive.bucket: invalid bucket name {:?}",
                self.bucket
            ));
        }
        if self.secret_access_key.is_some() && self.secret_access_key_file.is_some() {
            return Err(
                "archive: at most one of secret_access_key and secret_access_key_file".into(),
            );
        }
        if self.access_key_id.is_some()
            != (self.secret_access_key.is_some() || self.secret_access_key_file.is_some())
        {
            return Err(
                "archive: access_key_id and secret_access_key(_file) must be given together".into(),
            );
        }
        if self.upload_interval.0.is_zero() {
            return Err("archive.upload_interval: must be greater than 0".into());
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(format!("archive.endpoint: {e:?} is not an http(s) URL"));
            }
        }
        Ok(())
    }

    fn s3_config(&self, base: Option<&Path>) -> Result<S3Config, String> {
        let credentials = match &self.access_key_id {
            Some(id) => {
                let secret = match (&self.secret_access_key, &self.secret_access_key_file) {
                    (Some(s), _) => s.clone(),
                    (None, Some(f)) => {
                        let p = match base {
                            Some(b) if f.is_relative() => b.join(f),
                            _ => f.clone(),
                        };
                        std::fs::read_to_string(&p)
                            .map_err(|e| {
                                format!("archive.secret_access_key_file {}: {e}", p.display())
                            })?
                            .trim_end_matches(['\n', '\r'])
                            .to_string()
                    }
                    (None, None) => String::new(),
                };
                Credentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret,
                    session_token: None,
                }
            }
            None => Credentials::from_env().ok_or(
                "archive: no credentials: set access_key_id and secret_access_key(_file), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            )?,
        };
        let region = self
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".into());
        Ok(S3Config {
            bucket: self.bucket.clone(),
            endpoint: self.endpoint.clone(),
            region,
            credentials,
            force_path_style: self.force_path_style,
        })
    }
}

/// Counters exported on `/metrics`.
#[derive(Default)]
struct Metrics {
    uploaded_blocks: AtomicU64,
    uploaded_bytes: AtomicU64,
    upload_failures: AtomicU64,
    last_success_ms: AtomicU64,
    downloads: AtomicU64,
    download_bytes: AtomicU64,
    download_failures: AtomicU64,
}

struct Cached {
    block: Arc<Block>,
    size: u64,
    used: Instant,
}

/// The running archive (uploader + reader of archived blocks).
pub struct Archive {
    client: Client,
    prefix: String,
    db: Arc<Db>,
    state_path: PathBuf,
    cache_dir: PathBuf,
    cache_max: u64,
    interval: Duration,
    /// Own runtime: queries call in from synchronous code on any thread.
    rt: Option<tokio::runtime::Runtime>,
    /// Local block ulids known to be in the bucket.
    uploaded: Mutex<BTreeSet<String>>,
    /// Every archived block's meta, by ulid; `None` until the bucket was listed once.
    remote: RwLock<Option<BTreeMap<String, BlockMeta>>>,
    /// Archived downsampled blocks' metas by resolution (ms), then ulid.
    remote_ds: RwLock<BTreeMap<i64, BTreeMap<String, BlockMeta>>>,
    cache: Mutex<HashMap<String, Cached>>,
    /// Serialises downloads (one block fetched at a time, never twice).
    download: Mutex<()>,
    metrics: Metrics,
}

impl Drop for Archive {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[derive(serde::Serialize, Deserialize)]
struct State {
    bucket: String,
    prefix: String,
    uploaded: BTreeSet<String>,
}

fn now_ms() -> u64 {
    sextant_model::time::now_ms().max(0) as u64
}

impl Archive {
    /// Sets up the archive for `db` (nothing is contacted yet; see [`Archive::start`]).
    pub fn new(
        cfg: &ArchiveConfig,
        config_dir: Option<&Path>,
        db: Arc<Db>,
        data_dir: &Path,
    ) -> anyhow::Result<Arc<Archive>> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        let s3 = cfg.s3_config(config_dir).map_err(anyhow::Error::msg)?;
        let client = Client::new(s3)?;
        let mut prefix = cfg.prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let dir = data_dir.join("archive");
        let cache_dir = dir.join("cache");
        // Cached blocks are only a copy; start clean so the cache's size is known.
        let _ = std::fs::remove_dir_all(&cache_dir);
        std::fs::create_dir_all(&cache_dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", cache_dir.display()))?;
        let state_path = dir.join("uploaded.json");
        let uploaded = match std::fs::read(&state_path) {
            Ok(b) => match serde_json::from_slice::<State>(&b) {
                Ok(s) if s.bucket == cfg.bucket && s.prefix == prefix => s.uploaded,
                Ok(_) => {
                    tracing::info!("archive bucket or prefix changed: blocks will be uploaded to the new destination");
                    BTreeSet::new()
                }
                Err(e) => {
                    tracing::warn!(file = %state_path.display(), error = %e, "archive state unreadable; checking the bucket instead");
                    BTreeSet::new()
                }
            },
            Err(_) => BTreeSet::new(),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("archive")
            .enable_all()
            .build()?;
        Ok(Arc::new(Archive {
            client,
            prefix,
            db,
            state_path,
            cache_dir,
            cache_max: cfg.cache_max_bytes,
            interval: cfg.upload_interval.0,
            rt: Some(rt),
            uploaded: Mutex::new(uploaded),
            remote: RwLock::new(None),
            remote_ds: RwLock::new(BTreeMap::new()),
            cache: Mutex::new(HashMap::new()),
            download: Mutex::new(()),
            metrics: Metrics::default(),
        }))
    }

    /// Lets queries read archived blocks and starts the upload loop.
    pub fn start(self: &Arc<Self>) {
        self.db.set_external_blocks(self.clone());
        let me = Arc::downgrade(self);
        let interval = self.interval;
        if let Some(rt) = &self.rt {
            rt.spawn(async move {
                loop {
                    let Some(a) = me.upgrade() else { return };
                    a.sync_once().await;
                    drop(a);
                    tokio::time::sleep(interval).await;
                }
            });
        }
    }

    fn key(&self, ulid: &str, rel: &str) -> String {
        format!("{}{ulid}/{rel}", self.prefix)
    }

    /// Where a block lives in the bucket: `<prefix><ulid>/` for raw blocks,
    /// `<prefix>downsampled/<5m|1h>/<ulid>/` for downsampled ones.
    fn block_prefix(&self, res: Option<i64>, ulid: &str) -> String {
        match res {
            None => self.key(ulid, ""),
            Some(r) => format!(
                "{}downsampled/{}/{ulid}/",
                self.prefix,
                sextant_tsdb::downsample::res_dir(r)
            ),
        }
    }

    /// Lists the bucket's archived blocks (reading each new `meta.json`).
    async fn refresh_remote(&self) -> Result<(), sextant_objstore::Error> {
        let objs = self.client.list(&self.prefix).await?;
        let known: BTreeSet<String> = self
            .remote
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let known_ds: BTreeSet<String> = self
            .remote_ds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flat_map(|m| m.keys().cloned())
            .collect();
        let mut found = BTreeMap::new();
        let mut found_ds: Vec<(i64, BlockMeta)> = Vec::new();
        for o in objs {
            let Some(rest) = o.key.strip_prefix(&self.prefix) else {
                continue;
            };
            let Some(mut ulid) = rest.strip_suffix("/meta.json") else {
                continue;
            };
            let mut res = None;
            if let Some(ds) = ulid.strip_prefix("downsampled/") {
                let parsed = [
                    sextant_tsdb::downsample::RES_5M,
                    sextant_tsdb::downsample::RES_1H,
                ]
                .into_iter()
                .find_map(|r| {
                    ds.strip_prefix(sextant_tsdb::downsample::res_dir(r))
                        .and_then(|x| x.strip_prefix('/'))
                        .map(|u| (r, u))
                });
                let Some((r, u)) = parsed else { continue };
                res = Some(r);
                ulid = u;
            }
            // ULIDs only: the name becomes a directory in the cache.
            if ulid.is_empty()
                || ulid.len() > 64
                || !ulid.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                continue;
            }
            if known.contains(ulid) || known_ds.contains(ulid) {
                continue;
            }
            let body = self.client.get(&o.key, None).await?;
            match serde_json::from_slice::<BlockMeta>(&body) {
                Ok(m) if m.ulid == ulid => match res {
                    None => {
                        found.insert(ulid.to_string(), m);
                    }
                    Some(r) => found_ds.push((r, m)),
                },
                Ok(_) | Err(_) => {
                    tracing::warn!(key = %o.key, "archived block meta.json is not valid; ignoring the block")
                }
            }
        }
        {
            let mut ds = self.remote_ds.write().unwrap_or_else(|e| e.into_inner());
            for (r, m) in found_ds {
                ds.entry(r).or_default().insert(m.ulid.clone(), m);
            }
        }
        let mut g = self.remote.write().unwrap_or_else(|e| e.into_inner());
        g.get_or_insert_with(BTreeMap::new).extend(found);
        Ok(())
    }

    /// One upload round: every local block not yet in the bucket is uploaded.
    async fn sync_once(&self) {
        let listed = self
            .remote
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if !listed {
            if let Err(e) = self.refresh_remote().await {
                self.metrics.upload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, bucket = self.client.bucket(), "archive: listing the bucket failed");
                return;
            }
        }
        let mut ok = true;
        let raw = self.db.blocks().into_iter().map(|b| (None, b));
        let ds = self
            .db
            .downsampled_blocks()
            .into_iter()
            .map(|(r, b)| (Some(r), b));
        for (res, b) in raw.chain(ds) {
            let ulid = b.meta().ulid.clone();
            if self
                .uploaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&ulid)
            {
                continue;
            }
            match self.upload_block(res, &b).await {
                Ok(()) => {
                    self.uploaded
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(ulid.clone());
                    match res {
                        None => {
                            self.remote
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert_with(BTreeMap::new)
                                .insert(ulid, b.meta().clone());
                        }
                        Some(r) => {
                            self.remote_ds
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .entry(r)
                                .or_default()
                                .insert(ulid, b.meta().clone());
                        }
                    }
                    if let Err(e) = self.save_state() {
                        tracing::warn!(error = %e, "archive: saving the upload state failed");
                    }
                }
                Err(e) => {
                    if b.dir().join("meta.json").exists() {
                        ok = false;
                        self.metrics.upload_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(block = %ulid, error = %e, "archive: uploading a block failed; will retry");
                    } else {
                        // Compaction merged it into a new block, which is uploaded instead.
                        tracing::debug!(block = %ulid, error = %e, "archive: block deleted locally during upload");
                    }
                }
            }
        }
        if ok {
            self.metrics
                .last_success_ms
                .store(now_ms(), Ordering::Relaxed);
        }
    }

    async fn upload_block(&self, res: Option<i64>, b: &Block) -> Result<(), anyhow::Error> {
        let ulid = &b.meta().ulid;
        let base = self.block_prefix(res, ulid);
        let meta_key = format!("{base}meta.json");
        if self.client.head(&meta_key).await?.is_some() {
            tracing::info!(block = %ulid, "archive: block already in the bucket");
            return Ok(());
        }
        let mut files = Vec::new();
        walk(b.dir(), "", &mut files)?;
        let t0 = Instant::now();
        let mut bytes = 0;
        // meta.json last: a block is visible in the bucket only once everything else is there.
        for rel in files.iter().filter(|r| *r != "meta.json") {
            bytes += self
                .client
                .put_file(&format!("{base}{rel}"), &b.dir().join(rel))
                .await?;
        }
        bytes += self
            .client
            .put_file(&meta_key, &b.dir().join("meta.json"))
            .await?;
        self.metrics.uploaded_blocks.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .uploaded_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        tracing::info!(block = %ulid, resolution = res.map(sextant_tsdb::downsample::res_dir).unwrap_or("raw"), bytes, ms = t0.elapsed().as_millis() as u64, "archive: block uploaded");
        Ok(())
    }

    fn save_state(&self) -> std::io::Result<()> {
        let st = State {
            bucket: self.client.bucket().to_string(),
            prefix: self.prefix.clone(),
            uploaded: self
                .uploaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        };
        let body = serde_json::to_vec(&st).map_err(std::io::Error::other)?;
        if let Some(p) = self.state_path.parent() {
            std::fs::create_dir_all(p)?;
        }
        let tmp = self.state_path.with_extension("json.tmp");
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, &self.state_path)
    }

    /// Runs `fut` on the archive's runtime from synchronous code on any thread.
    fn block_on<T: Send>(&self, fut: impl std::future::Future<Output = T> + Send) -> Option<T> {
        let rt = self.rt.as_ref()?;
        std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join().ok())
    }

    /// The cached block, or downloads it (`res`: its resolution when downsampled).
    fn open_cached(&self, res: Option<i64>, ulid: &str) -> Result<Arc<Block>, QueryError> {
        let err = |msg: String| QueryError::Block {
            block: ulid.to_string(),
            msg,
        };
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(ulid)
        {
            c.used = Instant::now();
            return Ok(c.block.clone());
        }
        let _g = self.download.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(ulid)
        {
            return Ok(c.block.clone());
        }
        let tmp = self.cache_dir.join(format!("{ulid}.tmp"));
        let dst = self.cache_dir.join(ulid);
        let _ = std::fs::remove_dir_all(&tmp);
        let prefix = self.block_prefix(res, ulid);
        let res = self.block_on(async {
            let objs = self.client.list(&prefix).await?;
            let mut n = 0;
            for o in objs {
                let Some(rel) = o.key.strip_prefix(&prefix) else {
                    continue;
                };
                if rel.is_empty() || rel.split('/').any(|p| p.is_empty() || p == "..") {
                    continue;
                }
                let path = tmp.join(rel);
                if let Some(p) = path.parent() {
                    tokio::fs::create_dir_all(p)
                        .await
                        .map_err(|e| anyhow::anyhow!("creating {}: {e}", p.display()))?;
                }
                n += self.client.get_to_file(&o.key, &path).await?;
            }
            anyhow::Ok(n)
        });
        let bytes = match res {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                self.metrics
                    .download_failures
                    .fetch_add(1, Ordering::Relaxed);
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(err(format!("fetching the archived block: {e:#}")));
            }
            None => return Err(err("archive runtime stopped".into())),
        };
        let _ = std::fs::remove_dir_all(&dst);
        std::fs::rename(&tmp, &dst).map_err(|e| err(format!("caching the block: {e}")))?;
        let block = Arc::new(Block::open(&dst).map_err(|e| err(e.to_string()))?);
        self.metrics.downloads.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .download_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        tracing::info!(block = %ulid, bytes, "archive: block downloaded for a query");
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(
            ulid.to_string(),
            Cached {
                block: block.clone(),
                size: bytes,
                used: Instant::now(),
            },
        );
        // Evict least recently used blocks beyond the budget (never the one just fetched).
        // Open readers keep their memory maps valid after the files are removed.
        loop {
            let total: u64 = cache.values().map(|c| c.size).sum();
            if total <= self.cache_max || cache.len() <= 1 {
                break;
            }
            let Some(victim) = cache
                .iter()
                .filter(|(k, _)| k.as_str() != ulid)
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            cache.remove(&victim);
            let _ = std::fs::remove_dir_all(self.cache_dir.join(&victim));
        }
        Ok(block)
    }

    /// Appends the archive's metrics in the text exposition format.
    pub fn render_metrics(&self, o: &mut String) {
        use std::fmt::Write;
        let m = &self.metrics;
        let mut fam = |name: &str, kind: &str, help: &str, v: f64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        fam(
            "sextant_archive_uploaded_blocks_total",
            "counter",
            "Blocks uploaded to the archive bucket.",
            ld(&m.uploaded_blocks),
        );
        fam(
            "sextant_archive_uploaded_bytes_total",
            "counter",
            "Bytes of blocks uploaded to the archive bucket.",
            ld(&m.uploaded_bytes),
        );
        fam(
            "sextant_archive_upload_failures_total",
            "counter",
            "Failed block uploads and bucket listings.",
            ld(&m.upload_failures),
        );
        fam(
            "sextant_archive_last_upload_success_timestamp_seconds",
            "gauge",
            "When an upload round last completed without error.",
            ld(&m.last_success_ms) / 1000.0,
        );
        let archived = self
            .remote
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|r| r.len())
            .unwrap_or(0)
            + self
                .remote_ds
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .map(BTreeMap::len)
                .sum::<usize>();
        fam(
            "sextant_archive_blocks",
            "gauge",
            "Blocks known to be in the archive bucket (raw and downsampled).",
            archived as f64,
        );
        fam(
            "sextant_archive_downloads_total",
            "counter",
            "Archived blocks downloaded into the local cache for queries.",
            ld(&m.downloads),
        );
        fam(
            "sextant_archive_download_bytes_total",
            "counter",
            "Bytes downloaded from the archive bucket.",
            ld(&m.download_bytes),
        );
        fam(
            "sextant_archive_download_failures_total",
            "counter",
            "Failed downloads of archived blocks.",
            ld(&m.download_failures),
        );
        let cached: u64 = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|c| c.size)
            .sum();
        fam(
            "sextant_archive_cache_bytes",
            "gauge",
            "Bytes of archived blocks in the local cache.",
            cached as f64,
        );
    }
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type()?.is_dir() {
            walk(&e.path(), &r, out)?;
        } else {
            out.push(r);
        }
    }
    out.sort();
    Ok(())
}

/// Which archived blocks a query needs: those overlapping the range whose source blocks are not
/// all held locally, minus those whose sources another chosen archived block covers.
fn needed(
    remote: &BTreeMap<String, BlockMeta>,
    mint: i64,
    maxt: i64,
    local: &[Arc<Block>],
) -> Vec<String> {
    let local_ulids: BTreeSet<&str> = local.iter().map(|b| b.meta().ulid.as_str()).collect();
    let local_sources: BTreeSet<&str> = local.iter().flat_map(|b| sources(b.meta())).collect();
    let cands: Vec<&BlockMeta> = remote
        .values()
        .filter(|m| m.max_time > mint && m.min_time <= maxt)
        .filter(|m| !local_ulids.contains(m.ulid.as_str()))
        .filter(|m| !sources(m).all(|s| local_sources.contains(s)))
        .collect();
    let mut out = Vec::new();
    for m in &cands {
        let mine: BTreeSet<&str> = sources(m).collect();
        let covered = cands.iter().any(|o| {
            if o.ulid == m.ulid {
                return false;
            }
            let theirs: BTreeSet<&str> = sources(o).collect();
            mine.is_subset(&theirs) && (mine.len() < theirs.len() || o.ulid > m.ulid)
        });
        if !covered {
            out.push(m.ulid.clone());
        }
    }
    out
}

/// The head-cut blocks a block holds (itself when it was cut from the head).
fn sources(m: &BlockMeta) -> impl Iterator<Item = &str> {
    let own = m.compaction.sources.is_empty().then_some(m.ulid.as_str());
    m.compaction.sources.iter().map(String::as_str).chain(own)
}

impl ExternalBlocks for Archive {
    fn blocks(
        &self,
        mint: i64,
        maxt: i64,
        local: &[Arc<Block>],
    ) -> Result<Vec<Arc<Block>>, QueryError> {
        let want = {
            let g = self.remote.read().unwrap_or_else(|e| e.into_inner());
            match g.as_ref() {
                Some(r) => needed(r, mint, maxt, local),
                None => return Ok(Vec::new()),
            }
        };
        let mut out = Vec::with_capacity(want.len());
        for u in want {
            out.push(self.open_cached(None, &u)?);
        }
        Ok(out)
    }

    /// Archived aggregates of resolution `res` whose raw source no local downsampled block of
    /// that resolution covers: those local retention dropped (or never had, after a move to a
    /// new disk). Downloaded into the same cache as raw blocks.
    fn downsampled(
        &self,
        res: i64,
        mint: i64,
        maxt: i64,
        local: &[Arc<Block>],
    ) -> Result<Vec<Arc<Block>>, QueryError> {
        let want = {
            let g = self.remote_ds.read().unwrap_or_else(|e| e.into_inner());
            match g.get(&res) {
                Some(r) => needed(r, mint, maxt, local),
                None => return Ok(Vec::new()),
            }
        };
        let mut out = Vec::with_capacity(want.len());
        for u in want {
            out.push(self.open_cached(Some(res), &u)?);
        }
        Ok(out)
    }

    fn holds(&self, ulid: &str) -> bool {
        self.uploaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(ulid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(ulid: &str, min: i64, max: i64, sources: &[&str]) -> BlockMeta {
        serde_json::from_value(serde_json::json!({
            "ulid": ulid, "minTime": min, "maxTime": max,
            "stats": {"numSamples": 1, "numSeries": 1, "numChunks": 1},
            "compaction": {"level": if sources.is_empty() {1} else {2}, "sources": sources},
            "version": 1
        }))
        .unwrap()
    }

    #[test]
    fn compacted_blocks_replace_their_sources() {
        let mut r = BTreeMap::new();
        for m in [
            meta("A", 0, 10, &[]),
            meta("B", 10, 20, &[]),
            meta("C", 0, 20, &["A", "B"]),
            meta("D", 20, 30, &[]),
        ] {
            r.insert(m.ulid.clone(), m);
        }
        assert_eq!(needed(&r, 0, 100, &[]), vec!["C", "D"]);
        assert_eq!(needed(&r, 21, 100, &[]), vec!["D"]);
        // C holds A's data too: one block is read, never both.
        assert_eq!(needed(&r, 0, 5, &[]), vec!["C"]);
    }

    #[test]
    fn config_checks() {
        let c: ArchiveConfig = serde_saphyr::from_str(
            "bucket: b\naccess_key_id: x\nendpoint: http://127.0.0.1:1\nforce_path_style: true\n",
        )
        .unwrap();
        assert!(c.validate().unwrap_err().contains("together"));
        assert!(serde_saphyr::from_str::<ArchiveConfig>("bucket: b\nbogus: 1\n").is_err());
        let ok: ArchiveConfig =
            serde_saphyr::from_str("bucket: b\nprefix: p\nupload_interval: 5s\n").unwrap();
        assert!(ok.validate().is_ok());
        assert_eq!(ok.upload_interval.0, Duration::from_secs(5));
    }
}
