//! Remote engines for queries. Sextant scales out by shipping samples to an existing distributed
//! engine (VictoriaMetrics cluster, Mimir, Thanos, Prometheus) and querying it back, not by
//! becoming a cluster itself. This crate is the query half: a [`RemoteEngine`] reads raw series
//! from another engine — through Prometheus' `remote_read` protocol ([`read`]) or through the
//! Prometheus HTTP query API ([`promapi`]) — and [`Fanout`] puts local storage and all remote
//! engines behind the PromQL engine's `Querier` seam, merging their answers the way Prometheus'
//! fanout/merge querier does: series with the same labels become one series, samples with the
//! same timestamp are kept once (local first), and a failing remote engine turns into a
//! warning on a partial result instead of failing the query.

pub mod http;
pub mod promapi;
pub mod read;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sextant_model::{Labels, Matcher};
use sextant_promql::{LoadedSet, Querier, QueryError, SelectHints, SeriesData, SeriesSet};

pub use promapi::{PromApiEngine, RemoteEngineConfig};
pub use read::{RemoteRead, RemoteReadConfig};

/// What a remote engine returned for one selection: series sorted by labels, and warnings the
/// engine reported alongside them.
#[derive(Debug, Default)]
pub struct Selected {
    pub series: Vec<SeriesData>,
    pub warnings: Vec<String>,
}

/// An engine queried over the network.
pub trait RemoteEngine: Send + Sync {
    /// Its name in warnings and logs.
    fn name(&self) -> &str;
    /// Series matching `matchers` with their samples in `[mint, maxt]` (inclusive, ms).
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Selected, String>;
    /// Label sets of the series matching `matchers` in `[mint, maxt]`.
    fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>, String> {
        self.select(matchers, mint, maxt)
            .map(|s| s.series.into_iter().map(|s| s.labels).collect())
    }
}

/// The configured remote engines and whether queries also read local storage.
pub struct Engines {
    pub engines: Vec<Arc<dyn RemoteEngine>>,
    /// False when the query API and rules read the remote engines only (`query_local_storage:
    /// false`).
    pub local: bool,
}

impl Engines {
    /// True when queries only read local storage.
    pub fn is_local_only(&self) -> bool {
        self.engines.is_empty() && self.local
    }
}

/// Local storage and the remote engines merged behind one `Querier`. Warnings of remote
/// engines (errors included) collect in [`Fanout::take_warnings`].
pub struct Fanout<'a> {
    local: Option<Box<dyn Querier + 'a>>,
    engines: &'a [Arc<dyn RemoteEngine>],
    warnings: Mutex<Vec<String>>,
}

impl<'a> Fanout<'a> {
    /// `local` is left out when `engines.local` is false.
    pub fn new(local: Box<dyn Querier + 'a>, engines: &'a Engines) -> Self {
        Fanout {
            local: engines.local.then_some(local),
            engines: &engines.engines,
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// Warnings collected so far (each once), emptied.
    pub fn take_warnings(&self) -> Vec<String> {
        let mut w = match self.warnings.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        std::mem::take(&mut *w)
    }

    fn warn(&self, msg: String) {
        let mut w = match self.warnings.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if !w.contains(&msg) {
            log_limited(&msg);
            w.push(msg);
        }
    }

    /// Runs `f` against every remote engine in parallel, in configuration order.
    fn each_remote<T: Send>(
        &self,
        f: impl Fn(&dyn RemoteEngine) -> Result<T, String> + Sync,
    ) -> Vec<Option<T>> {
        let results: Vec<(String, Result<T, String>)> = if self.engines.len() == 1 {
            let e = &self.engines[0];
            vec![(e.name().to_string(), f(e.as_ref()))]
        } else {
            std::thread::scope(|s| {
                let hs: Vec<_> = self
                    .engines
                    .iter()
                    .map(|e| {
                        let f = &f;
                        (e.name().to_string(), s.spawn(move || f(e.as_ref())))
                    })
                    .collect();
                hs.into_iter()
                    .map(|(n, h)| {
                        let r = h
                            .join()
                            .unwrap_or_else(|_| Err("remote engine request panicked".into()));
                        (n, r)
                    })
                    .collect()
            })
        };
        results
            .into_iter()
            .map(|(name, r)| match r {
                Ok(v) => Some(v),
                Err(e) => {
                    self.warn(format!("remote engine {name:?}: {e}"));
                    None
                }
            })
            .collect()
    }

    /// Label sets of matching series in local storage and all remote engines, merged. `local`
    /// lists the local ones (the caller knows its storage's series API).
    pub fn series(
        &self,
        local: impl FnOnce() -> Result<Vec<Labels>, QueryError>,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        let mut all: Vec<Labels> = if self.local.is_some() {
            local()?
        } else {
            Vec::new()
        };
        for r in self
            .each_remote(|e| e.series(matchers, mint, maxt))
            .into_iter()
            .flatten()
        {
            all.extend(r);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }
}

impl Querier for Fanout<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let mut merged = match &self.local {
            Some(l) => l.select(matchers, mint, maxt)?,
            None => Vec::new(),
        };
        for sel in self
            .each_remote(|e| e.select(matchers, mint, maxt))
            .into_iter()
            .flatten()
        {
            for w in sel.warnings {
                self.warn(w);
            }
            merged = merge(merged, sel.series);
        }
        Ok(merged)
    }

    fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Box<dyn SeriesSet + '_>, QueryError> {
        match &self.local {
            Some(l) if self.engines.is_empty() => l.select_lazy(matchers, mint, maxt),
            _ => Ok(Box::new(LoadedSet(self.select(matchers, mint, maxt)?))),
        }
    }

    /// With no remote engine, local storage gets the hints (and may answer from downsampled
    /// aggregates where raw data is gone); merged with remote engines, everything is raw.
    fn select_hinted(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        hints: &SelectHints,
    ) -> Result<Box<dyn SeriesSet + '_>, QueryError> {
        match &self.local {
            Some(l) if self.engines.is_empty() => l.select_hinted(matchers, mint, maxt, hints),
            _ => self.select_lazy(matchers, mint, maxt),
        }
    }
}

/// Logs a remote engine's warning at most once a minute per distinct message: rules evaluate
/// every few seconds, and a down engine would otherwise flood the log.
fn log_limited(msg: &str) {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};
    static LAST: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);
    let mut g = match LAST.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let map = g.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    if map
        .get(msg)
        .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60))
    {
        return;
    }
    // Bounded: forget old messages rather than grow without limit.
    if map.len() >= 1024 {
        map.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        if map.len() >= 1024 {
            map.clear();
        }
    }
    map.insert(msg.to_string(), now);
    tracing::warn!("{msg}");
}

/// Merges two series lists (each sorted by labels or not): series with equal labels become one,
/// samples sorted by time with one sample per timestamp, `a`'s kept on a tie. The result is
/// sorted by labels.
pub fn merge(a: Vec<SeriesData>, b: Vec<SeriesData>) -> Vec<SeriesData> {
    let mut by: BTreeMap<Labels, SeriesData> = BTreeMap::new();
    for s in a.into_iter().chain(b) {
        match by.get_mut(&s.labels) {
            None => {
                by.insert(s.labels.clone(), s);
            }
            Some(have) => {
                let sorted_apart = have.floats.last().map(|p| p.t) < s.floats.first().map(|p| p.t);
                have.floats.extend(s.floats);
                if !sorted_apart {
                    // Stable: on equal timestamps the earlier source stays first.
                    have.floats.sort_by_key(|p| p.t);
                }
                have.floats.dedup_by_key(|p| p.t);
                have.histograms.extend(s.histograms);
                have.histograms.sort_by_key(|p| p.0);
                have.histograms.dedup_by_key(|p| p.0);
                // Start timestamps no longer line up with the merged samples.
                have.float_st.clear();
                have.hist_st.clear();
            }
        }
    }
    by.into_values().collect()
}

/// Renders matchers as a PromQL selector body `{a="b",c=~"d"}`, strings quoted the way PromQL
/// reads them.
pub fn selector(matchers: &[Matcher]) -> String {
    let mut o = String::from("{");
    for (i, m) in matchers.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str(&m.name);
        o.push_str(m.op.as_str());
        o.push('"');
        for c in m.value.chars() {
            match c {
                '\\' => o.push_str("\\\\"),
                '"' => o.push_str("\\\""),
                '\n' => o.push_str("\\n"),
                '\r' => o.push_str("\\r"),
                '\t' => o.push_str("\\t"),
                c => o.push(c),
            }
        }
        o.push('"');
    }
    o.push('}');
    o
}

/// True when every `required` label is matched with equality to its value, Prometheus'
/// `required_matchers` rule for sending a selection to a remote engine.
pub fn has_required(matchers: &[Matcher], required: &BTreeMap<String, String>) -> bool {
    required.iter().all(|(k, v)| {
        matchers
            .iter()
            .any(|m| m.op == sextant_model::MatchOp::Equal && &m.name == k && &m.value == v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::{MatchOp, Sample};
    use sextant_promql::MemQuerier;

    struct Fixed(&'static str, Result<Vec<SeriesData>, String>);
    impl RemoteEngine for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn select(&self, _: &[Matcher], _: i64, _: i64) -> Result<Selected, String> {
            self.1.clone().map(|series| Selected {
                series,
                warnings: vec![],
            })
        }
    }

    fn ls(v: &str) -> Labels {
        Labels::from_pairs([("__name__", "m"), ("i", v)])
    }

    #[test]
    fn merges_local_and_remote_and_warns_on_failure() {
        let mut local = MemQuerier::new();
        local.add_float(&ls("a"), 1000, 1.0);
        local.add_float(&ls("a"), 3000, 3.0);
        let remote = vec![
            SeriesData {
                labels: ls("a"),
                floats: vec![Sample::new(1000, 99.0), Sample::new(2000, 2.0)],
                ..Default::default()
            },
            SeriesData {
                labels: ls("b"),
                floats: vec![Sample::new(1000, 5.0)],
                ..Default::default()
            },
        ];
        let engines = Engines {
            engines: vec![
                Arc::new(Fixed("good", Ok(remote))),
                Arc::new(Fixed("bad", Err("connection refused".into()))),
            ],
            local: true,
        };
        let f = Fanout::new(Box::new(local), &engines);
        let m = [Matcher::new(MatchOp::Equal, "__name__", "m").unwrap()];
        let got = f.select(&m, 0, 10_000).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].floats,
            vec![
                Sample::new(1000, 1.0),
                Sample::new(2000, 2.0),
                Sample::new(3000, 3.0)
            ]
        );
        assert_eq!(got[1].labels, ls("b"));
        assert_eq!(
            f.take_warnings(),
            vec!["remote engine \"bad\": connection refused".to_string()]
        );
    }

    #[test]
    fn remote_only_skips_local() {
        let mut local = MemQuerier::new();
        local.add_float(&ls("a"), 1000, 1.0);
        let engines = Engines {
            engines: vec![Arc::new(Fixed("r", Ok(vec![])))],
            local: false,
        };
        let f = Fanout::new(Box::new(local), &engines);
        assert!(f.select(&[], 0, 10_000).unwrap().is_empty());
    }

    #[test]
    fn selector_quotes_like_promql() {
        let m = [
            Matcher::new(MatchOp::Equal, "__name__", "up").unwrap(),
            Matcher::new(MatchOp::Regex, "a", "x\"y\\z|é").unwrap(),
        ];
        assert_eq!(selector(&m), r#"{__name__="up",a=~"x\"y\\z|é"}"#);
        let mut req = BTreeMap::new();
        req.insert("job".to_string(), "x".to_string());
        assert!(!has_required(&m, &req));
        let m2 = [Matcher::new(MatchOp::Equal, "job", "x").unwrap()];
        assert!(has_required(&m2, &req));
    }
}
