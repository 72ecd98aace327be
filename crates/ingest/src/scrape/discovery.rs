//! Where scrape targets come from: `static_configs`, `file_sd_configs` (JSON/YAML files,
//! polled) and `http_sd_configs` (Prometheus HTTP SD, polled). Every provider produces target
//! groups — addresses plus common labels plus `__meta_*` labels — in the format and with the
//! meta labels Prometheus uses, and reports only changes. A file or endpoint that turns bad
//! keeps its last good targets, as in Prometheus, and the problem is logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sextant_model::labels::is_valid_label_name;
use tokio::sync::{mpsc, watch};

use super::http_client::HttpClientConfig;

/// Addresses sharing labels, as in Prometheus' `targetgroup.Group`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

fn check_groups(raw: Vec<RawGroup>) -> Result<Vec<TargetGroup>, String> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, g) in raw.into_iter().enumerate() {
        let labels = g.labels.unwrap_or_default();
        for name in labels.keys() {
            if !is_valid_label_name(name) {
                return Err(format!("group {i}: {name:?} is not a valid label name"));
            }
        }
        let targets = g.targets.unwrap_or_default();
        for t in &targets {
            if t.is_empty() || t.contains('/') {
                return Err(format!("group {i}: {t:?} is not a valid hostname"));
            }
        }
        out.push(TargetGroup { targets, labels });
    }
    Ok(out)
}

/// Parses a file_sd file (JSON if it ends in `.json`, else YAML) and adds `__meta_filepath`.
pub fn parse_sd_file(path: &Path, contents: &str) -> Result<Vec<TargetGroup>, String> {
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let raw: Vec<RawGroup> = if is_json {
        serde_json::from_str(contents).map_err(|e| e.to_string())?
    } else if contents.trim().is_empty() {
        Vec::new()
    } else {
        let r: Option<Vec<RawGroup>> = serde_saphyr::from_str(contents)
            .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_string())?;
        r.unwrap_or_default()
    };
    let mut groups = check_groups(raw)?;
    let fp = path.display().to_string();
    for g in &mut groups {
        g.labels.insert("__meta_filepath".into(), fp.clone());
    }
    Ok(groups)
}

/// Parses a Prometheus HTTP SD response body and adds `__meta_url`.
pub fn parse_http_sd(body: &[u8], url: &str) -> Result<Vec<TargetGroup>, String> {
    let raw: Vec<Option<RawGroup>> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let raw: Vec<RawGroup> = raw
        .into_iter()
        .enumerate()
        .map(|(i, g)| g.ok_or_else(|| format!("nil group at index {i}")))
        .collect::<Result<_, _>>()?;
    let mut groups = check_groups(raw)?;
    for g in &mut groups {
        g.labels.insert("__meta_url".into(), url.to_string());
    }
    Ok(groups)
}

/// Expands a file_sd pattern: at most one `*`, in the file name (Prometheus' rule).
pub fn expand_pattern(pattern: &str) -> Vec<PathBuf> {
    let p = Path::new(pattern);
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let Some((prefix, suffix)) = name.split_once('*') else {
        return if p.is_file() {
            vec![p.to_path_buf()]
        } else {
            Vec::new()
        };
    };
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.len() >= prefix.len() + suffix.len()
                    && n.starts_with(prefix)
                    && n.ends_with(suffix)
                    // Like Go's filepath.Glob, `*` does not match a leading dot's hidden files
                    // only when the pattern itself starts with `*`; keep it simple and skip
                    // editor temporaries that start with '.'.
                    && !(prefix.is_empty() && n.starts_with('.'))
            })
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// One source of target groups inside a scrape pool.
pub(crate) enum Provider {
    Static(Vec<TargetGroup>),
    File {
        patterns: Vec<String>,
        refresh: Duration,
    },
    Http {
        url: String,
        refresh: Duration,
        /// The endpoint's auth, TLS, redirect and proxy settings.
        http: Box<HttpClientConfig>,
        client: reqwest::Client,
    },
}

/// How often file_sd checks its files for changes (size, mtime, set of matching files).
const FILE_SD_POLL: Duration = Duration::from_secs(2);

/// What tells a file changed without reading it.
type FileStamp = (PathBuf, Option<(u64, std::time::SystemTime)>);

fn file_stamp(p: &Path) -> FileStamp {
    let meta = std::fs::metadata(p)
        .ok()
        .and_then(|m| m.modified().ok().map(|t| (m.len(), t)));
    (p.to_path_buf(), meta)
}

/// Largest HTTP SD response accepted.
const HTTP_SD_MAX_BODY: usize = 64 << 20;

/// Runs a provider until `stop` turns true, sending `(index, groups)` whenever its groups
/// change (and once at start).
pub(crate) async fn run_provider(
    index: usize,
    provider: Provider,
    job: String,
    tx: mpsc::UnboundedSender<(usize, Vec<TargetGroup>)>,
    mut stop: watch::Receiver<bool>,
) {
    match provider {
        Provider::Static(groups) => {
            let _ = tx.send((index, groups));
        }
        Provider::File { patterns, refresh } => {
            // Last good groups per file, so a file caught mid-write keeps its old targets.
            let mut per_file: BTreeMap<PathBuf, Vec<TargetGroup>> = BTreeMap::new();
            let mut last: Option<Vec<TargetGroup>> = None;
            // Prometheus reacts to file changes at once (inotify) and re-reads everything every
            // refresh_interval. Polling the files' metadata often gives the first, cheaply.
            let poll = refresh.min(FILE_SD_POLL);
            let mut stamp: Option<Vec<FileStamp>> = None;
            let mut last_full = tokio::time::Instant::now();
            loop {
                let paths: Vec<PathBuf> = patterns.iter().flat_map(|p| expand_pattern(p)).collect();
                let now_stamp: Vec<FileStamp> = paths.iter().map(|p| file_stamp(p)).collect();
                let due = last_full.elapsed() >= refresh;
                if stamp.as_ref() != Some(&now_stamp) || due {
                    last_full = tokio::time::Instant::now();
                    stamp = Some(now_stamp);
                    let mut seen: BTreeMap<PathBuf, Vec<TargetGroup>> = BTreeMap::new();
                    for path in paths {
                        let parsed = tokio::fs::read_to_string(&path)
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|c| parse_sd_file(&path, &c));
                        match parsed {
                            Ok(g) => {
                                seen.insert(path, g);
                            }
                            Err(e) => {
                                tracing::error!(job = %job, file = %path.display(), error = %e, "file_sd: cannot read target groups; keeping the previous ones");
                                if let Some(old) = per_file.get(&path) {
                                    seen.insert(path, old.clone());
                                }
                            }
                        }
                    }
                    per_file = seen;
                    let all: Vec<TargetGroup> = per_file.values().flatten().cloned().collect();
                    if last.as_ref() != Some(&all) {
                        if tx.send((index, all.clone())).is_err() {
                            return;
                        }
                        last = Some(all);
                    }
                }
                if wait_or_stop(poll, &mut stop).await {
                    return;
                }
            }
        }
        Provider::Http {
            url,
            refresh,
            http,
            client,
        } => {
            let mut last: Option<Vec<TargetGroup>> = None;
            loop {
                match fetch_http_sd(&http, &client, &url, refresh).await {
                    Ok(groups) => {
                        if last.as_ref() != Some(&groups) {
                            if tx.send((index, groups.clone())).is_err() {
                                return;
                            }
                            last = Some(groups);
                        }
                    }
                    Err(e) => {
                        tracing::error!(job = %job, url = %url, error = %e, "http_sd: discovery failed; keeping the previous targets");
                    }
                }
                if wait_or_stop(refresh, &mut stop).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps for `d`; true if stopped meanwhile.
async fn wait_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}

async fn fetch_http_sd(
    http: &HttpClientConfig,
    client: &reqwest::Client,
    url: &str,
    refresh: Duration,
) -> Result<Vec<TargetGroup>, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url {url:?}: {e}"))?;
    let req = http
        .get(client, &parsed, Some(Duration::from_secs(30)))
        .await?
        .header(
            "X-Prometheus-Refresh-Interval-Seconds",
            refresh.as_secs_f64().to_string(),
        );
    let mut resp = req.send().await.map_err(|e| format!("Get {url:?}: {e}"))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("server returned HTTP status {}", resp.status()));
    }
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let media = ct.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(format!("unsupported content type {ct:?}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > HTTP_SD_MAX_BODY {
            return Err(format!(
                "response body larger than {HTTP_SD_MAX_BODY} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    parse_http_sd(&body, url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sd_json_and_yaml() {
        let g = parse_sd_file(
            Path::new("/x/t.json"),
            r#"[{"targets":["a:1","b:2"],"labels":{"env":"prod"}},{"targets":["c:3"]}]"#,
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].targets, vec!["a:1", "b:2"]);
        assert_eq!(g[0].labels.get("env").map(String::as_str), Some("prod"));
        assert_eq!(
            g[1].labels.get("__meta_filepath").map(String::as_str),
            Some("/x/t.json")
        );
        let y = parse_sd_file(
            Path::new("t.yml"),
            "- targets: ['a:1']\n  labels:\n    env: dev\n",
        )
        .unwrap();
        assert_eq!(y[0].targets, vec!["a:1"]);
        assert!(parse_sd_file(Path::new("t.yml"), "").unwrap().is_empty());
        assert!(
            parse_sd_file(Path::new("t.json"), r#"[{"targets":["a"],"bogus":1}]"#)
                .unwrap_err()
                .contains("bogus")
        );
        assert!(
            parse_sd_file(Path::new("t.json"), r#"[{"labels":{"0x":"1"}}]"#)
                .unwrap_err()
                .contains("not a valid label name")
        );
    }

    #[test]
    fn http_sd_body() {
        let g = parse_http_sd(
            br#"[{"targets":["10.0.0.1:9100"],"labels":{"__meta_datacenter":"x"}}]"#,
            "http://sd/targets",
        )
        .unwrap();
        assert_eq!(
            g[0].labels.get("__meta_url").map(String::as_str),
            Some("http://sd/targets")
        );
        assert!(parse_http_sd(b"[null]", "u")
            .unwrap_err()
            .contains("nil group"));
        assert!(parse_http_sd(b"{", "u").is_err());
    }

    #[test]
    fn patterns_expand() {
        let dir = std::env::temp_dir().join(format!("sextant-sd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in ["a.json", "b.json", "c.yml", ".hidden.json"] {
            std::fs::write(dir.join(n), "[]").unwrap();
        }
        let got = expand_pattern(&format!("{}/*.json", dir.display()));
        assert_eq!(got, vec![dir.join("a.json"), dir.join("b.json")]);
        assert_eq!(
            expand_pattern(&format!("{}/c.yml", dir.display())),
            vec![dir.join("c.yml")]
        );
        assert!(expand_pattern(&format!("{}/none.yml", dir.display())).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
