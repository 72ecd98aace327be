//! Remote engines for queries. Sextant scales out by shipping samples to an existing distributed
//! engine (VictoriaMetrics cluster, Mimir, Thanos, Prometheus) and querying it back, not by
//! becoming a cluster itself. This crate is the query half: a [`RemoteEngine`] reads raw series
//! from another engine — through Prometheus' `remote_read` protocol ([`read`]) or through the
//! Prometheus HTTP query API ([`promapi`]) — and [`Fanout`] puts local storage and all remote
//! engines behind the PromQL engine's `Querier` seam, merging their answers the way Prometheus'
//! fanout/merge querier does: series with the same labels become one series, samples with the
//! same timestamp are kept once (local first), and a failing remote engine turns into a
//! warning on a partial result instead of failing the query.

pub mod apihist;
pub mod http;
pub mod promapi;
pub mod read;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sextant_model::{Labels, Matcher};
use sextant_promql::{Querier, QueryError, SelectHints, SeriesData, SeriesSet};

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
    /// Label names of the series matching `matchers` in `[mint, maxt]`; of all series when
    /// `matchers` is empty. The default lists the matching series (and cannot list all).
    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, String> {
        strings_of_series(self, matchers, mint, maxt, |l| {
            l.iter().map(|l| l.name.clone()).collect()
        })
    }
    /// Values of label `name` like [`RemoteEngine::label_names`].
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, String> {
        strings_of_series(self, matchers, mint, maxt, |l| {
            l.get(name).map(str::to_string).into_iter().collect()
        })
    }
}

/// Label names or values taken from the series matching `matchers` (which must not be empty:
/// listing every series of a remote engine is not done).
pub fn strings_of_series<E: RemoteEngine + ?Sized>(
    e: &E,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
    of: impl Fn(&Labels) -> Vec<String>,
) -> Result<Vec<String>, String> {
    if matchers.is_empty() {
        return Err(NO_SELECTOR_FREE_LISTING.into());
    }
    let mut v: Vec<String> = e
        .series(matchers, mint, maxt)?
        .iter()
        .flat_map(of)
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

/// The warning of an engine that cannot list label names or values without a selector, like
/// Prometheus' remote-read querier ("not implemented", prometheus/prometheus#3351).
pub const NO_SELECTOR_FREE_LISTING: &str =
    "label names and values without match[] are not implemented by the remote-read protocol; pass match[] to include this engine";

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

impl<'a> Fanout<'a> {
    /// A string list (label names or values) from every remote engine, merged, sorted and
    /// deduplicated; a failing engine becomes a warning. Local storage is the caller's part.
    pub fn remote_strings(
        &self,
        f: impl Fn(&dyn RemoteEngine) -> Result<Vec<String>, String> + Sync,
    ) -> Vec<String> {
        let mut all: Vec<String> = self
            .each_remote(f)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Whether local storage is read (false with `query_local_storage: false`).
    pub fn reads_local(&self) -> bool {
        self.local.is_some()
    }

    /// The series of the remote engines only, merged (for callers that read local storage
    /// their own way, such as the streaming export).
    pub fn select_remote(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesData> {
        let mut merged = Vec::new();
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
        merged
    }

    /// Local storage's lazy set (with `hints` when given) merged with the remote engines'
    /// series, which are fetched now.
    fn merged_set(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        hints: Option<&SelectHints>,
    ) -> Result<Box<dyn SeriesSet + '_>, QueryError> {
        let local = match (&self.local, hints) {
            (None, _) => None,
            (Some(l), None) => Some(l.select_lazy(matchers, mint, maxt)?),
            (Some(l), Some(h)) => Some(l.select_hinted(matchers, mint, maxt, h)?),
        };
        let remote = self.select_remote(matchers, mint, maxt);
        let local_wins_span = hints.is_some_and(may_downsample);
        Ok(Box::new(MergedSet::new(local, remote, local_wins_span)))
    }
}

/// Replaces `out`'s samples (not its labels) with those of `s` in `[mint, maxt]`.
fn read_range(s: &SeriesData, mint: i64, maxt: i64, out: &mut SeriesData) {
    let (fa, fb) = (
        s.floats.partition_point(|p| p.t < mint),
        s.floats.partition_point(|p| p.t <= maxt),
    );
    let (ha, hb) = (
        s.histograms.partition_point(|p| p.0 < mint),
        s.histograms.partition_point(|p| p.0 <= maxt),
    );
    out.floats.clear();
    out.histograms.clear();
    out.float_st.clear();
    out.hist_st.clear();
    if fa < fb {
        out.floats.extend_from_slice(&s.floats[fa..fb]);
        if s.float_st.len() == s.floats.len() {
            out.float_st.extend_from_slice(&s.float_st[fa..fb]);
        }
    }
    if ha < hb {
        out.histograms.extend_from_slice(&s.histograms[ha..hb]);
        if s.hist_st.len() == s.histograms.len() {
            out.hist_st.extend_from_slice(&s.hist_st[ha..hb]);
        }
    }
}

/// Whether local storage may answer a selection with these hints from downsampled aggregates
/// (the finest resolution's rule; coarser ones are stricter).
fn may_downsample(h: &SelectHints) -> bool {
    let th = sextant_tsdb::querier::SelectHints {
        func: h.func.map(str::to_string),
        range: h.range,
        step: h.step,
    };
    sextant_tsdb::downsample::aggr_for(&th, sextant_tsdb::downsample::RES_5M).is_some()
}

/// Local storage's lazily read series merged with remote series already fetched: the local
/// fast paths (chunk-by-chunk decoding, downsampled aggregates) stay in use behind the fanout.
/// Samples merge as in [`merge`] (local first on equal timestamps). When local storage may
/// have answered from downsampled aggregates (`local_wins_span`), local samples are
/// authoritative between the first and last local sample of each read: raw remote samples
/// there are dropped instead of being mixed into per-window aggregates (a `sum` or a
/// reset-adjusted `counter` would be wrong with them); remote samples outside that span (older
/// data only the remote engine holds) are kept.
struct MergedSet<'a> {
    local: Option<Box<dyn SeriesSet + 'a>>,
    remote: Vec<SeriesData>,
    /// Per output series: its index in `local` and in `remote`, sorted by labels.
    index: Vec<(Option<usize>, Option<usize>)>,
    local_wins_span: bool,
    empty: Labels,
}

impl<'a> MergedSet<'a> {
    fn new(
        local: Option<Box<dyn SeriesSet + 'a>>,
        remote: Vec<SeriesData>,
        local_wins_span: bool,
    ) -> Self {
        let nl = local.as_ref().map_or(0, |l| l.len());
        let mut index = Vec::with_capacity(nl.max(remote.len()));
        let (mut i, mut j) = (0usize, 0usize);
        while i < nl || j < remote.len() {
            let ord = match (&local, i < nl, j < remote.len()) {
                (Some(l), true, true) => l.labels(i).cmp(&remote[j].labels),
                (_, true, false) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match ord {
                std::cmp::Ordering::Less => {
                    index.push((Some(i), None));
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    index.push((None, Some(j)));
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    index.push((Some(i), Some(j)));
                    i += 1;
                    j += 1;
                }
            }
        }
        MergedSet {
            local,
            remote,
            index,
            local_wins_span,
            empty: Labels::empty(),
        }
    }
}

impl SeriesSet for MergedSet<'_> {
    fn len(&self) -> usize {
        self.index.len()
    }
    fn labels(&self, i: usize) -> &Labels {
        match (self.index[i], &self.local) {
            ((Some(l), _), Some(set)) => set.labels(l),
            ((_, Some(r)), _) => &self.remote[r].labels,
            // Not reached: every entry has a local or a remote index.
            _ => &self.empty,
        }
    }
    fn max_samples(&self, i: usize) -> usize {
        let (l, r) = self.index[i];
        let ln = match (l, &self.local) {
            (Some(l), Some(set)) => set.max_samples(l),
            _ => 0,
        };
        let rn = r.map_or(0, |r| {
            self.remote[r].floats.len() + self.remote[r].histograms.len()
        });
        ln + rn
    }
    fn may_have_histograms(&self, i: usize) -> bool {
        let (l, r) = self.index[i];
        matches!((l, &self.local), (Some(l), Some(set)) if set.may_have_histograms(l))
            || r.is_some_and(|r| !self.remote[r].histograms.is_empty())
    }
    fn may_have_start_timestamps(&self, i: usize) -> bool {
        let (l, r) = self.index[i];
        matches!((l, &self.local), (Some(l), Some(set)) if set.may_have_start_timestamps(l))
            || r.is_some_and(|r| {
                !self.remote[r].float_st.is_empty() || !self.remote[r].hist_st.is_empty()
            })
    }
    fn read(&self, i: usize, mint: i64, maxt: i64, out: &mut SeriesData) -> Result<(), QueryError> {
        let (l, r) = self.index[i];
        match (l, &self.local) {
            (Some(l), Some(set)) => set.read(l, mint, maxt, out)?,
            _ => {
                out.floats.clear();
                out.histograms.clear();
                out.float_st.clear();
                out.hist_st.clear();
            }
        }
        let Some(r) = r else { return Ok(()) };
        let rs = &self.remote[r];
        if out.floats.is_empty() && out.histograms.is_empty() {
            read_range(rs, mint, maxt, out);
            return Ok(());
        }
        let floats = rs.floats.iter().filter(|p| p.t >= mint && p.t <= maxt);
        let hists = rs.histograms.iter().filter(|p| p.0 >= mint && p.0 <= maxt);
        let span = if self.local_wins_span {
            let first = out
                .floats
                .first()
                .map(|p| p.t)
                .into_iter()
                .chain(out.histograms.first().map(|p| p.0))
                .min();
            let last = out
                .floats
                .last()
                .map(|p| p.t)
                .into_iter()
                .chain(out.histograms.last().map(|p| p.0))
                .max();
            first.zip(last)
        } else {
            None
        };
        let outside = |t: i64| span.is_none_or(|(a, b)| t < a || t > b);
        let mut mf = std::mem::take(&mut out.floats);
        mf.extend(floats.filter(|p| outside(p.t)).copied());
        mf.sort_by_key(|p| p.t); // stable: local first on equal timestamps
        mf.dedup_by_key(|p| p.t);
        let mut mh = std::mem::take(&mut out.histograms);
        mh.extend(hists.filter(|p| outside(p.0)).cloned());
        mh.sort_by_key(|p| p.0);
        mh.dedup_by_key(|p| p.0);
        out.floats = mf;
        out.histograms = mh;
        // Start timestamps no longer line up with the merged samples.
        out.float_st.clear();
        out.hist_st.clear();
        Ok(())
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
            _ => self.merged_set(matchers, mint, maxt, None),
        }
    }

    /// Local storage gets the hints (and may answer from downsampled aggregates where raw
    /// data is gone); remote engines' raw series are merged in (see [`MergedSet`]).
    fn select_hinted(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        hints: &SelectHints,
    ) -> Result<Box<dyn SeriesSet + '_>, QueryError> {
        match &self.local {
            Some(l) if self.engines.is_empty() => l.select_hinted(matchers, mint, maxt, hints),
            _ => self.merged_set(matchers, mint, maxt, Some(hints)),
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

    /// A local store whose eager `select` fails: the fanout must use its lazy paths. Hinted
    /// selections record their hints.
    struct LazyOnly(MemQuerier, Arc<Mutex<Vec<SelectHints>>>);
    impl Querier for LazyOnly {
        fn select(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<SeriesData>, QueryError> {
            Err(QueryError("eager select used".into()))
        }
        fn select_lazy(
            &self,
            ms: &[Matcher],
            mint: i64,
            maxt: i64,
        ) -> Result<Box<dyn SeriesSet + '_>, QueryError> {
            self.0.select_lazy(ms, mint, maxt)
        }
        fn select_hinted(
            &self,
            ms: &[Matcher],
            mint: i64,
            maxt: i64,
            hints: &SelectHints,
        ) -> Result<Box<dyn SeriesSet + '_>, QueryError> {
            self.1.lock().unwrap().push(hints.clone());
            self.0.select_lazy(ms, mint, maxt)
        }
    }

    fn read_all(set: &dyn SeriesSet) -> Vec<(Labels, Vec<i64>)> {
        (0..set.len())
            .map(|i| {
                let mut out = SeriesData::default();
                set.read(i, i64::MIN, i64::MAX, &mut out).unwrap();
                (
                    set.labels(i).clone(),
                    out.floats.iter().map(|p| p.t).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn lazy_and_hinted_paths_stay_local_behind_the_fanout() {
        let mut mem = MemQuerier::new();
        for t in [300_000, 600_000] {
            mem.add_float(&ls("a"), t, 1.0);
        }
        mem.add_float(&ls("c"), 1000, 1.0);
        let raw: Vec<Sample> = (1..=7).map(|k| Sample::new(k * 100_000, 0.5)).collect();
        let remote = vec![
            SeriesData {
                labels: ls("a"),
                floats: raw.clone(),
                ..Default::default()
            },
            SeriesData {
                labels: ls("b"),
                floats: raw,
                ..Default::default()
            },
        ];
        let engines = Engines {
            engines: vec![Arc::new(Fixed("r", Ok(remote)))],
            local: true,
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let local = LazyOnly(mem, seen.clone());
        let f = Fanout::new(Box::new(local), &engines);
        let m = [Matcher::new(MatchOp::Equal, "__name__", "m").unwrap()];
        // Lazy: plain merge, every timestamp once.
        let set = f.select_lazy(&m, 0, 1_000_000).unwrap();
        let all = read_all(set.as_ref());
        assert_eq!(all.len(), 3);
        assert_eq!(
            all[0].1,
            vec![100_000, 200_000, 300_000, 400_000, 500_000, 600_000, 700_000]
        );
        assert_eq!(all[1].1.len(), 7);
        assert_eq!(all[2].1, vec![1000]);
        assert_eq!(set.max_samples(0), 9);
        drop(set);
        // Hinted with a function downsampled data answers: the hints reach local storage, and
        // within the span local storage answered, its (aggregate) samples are not mixed with
        // raw remote ones.
        let hints = SelectHints {
            func: Some("max_over_time"),
            range: 600_000,
            step: 600_000,
        };
        let set = f.select_hinted(&m, 0, 1_000_000, &hints).unwrap();
        let all = read_all(set.as_ref());
        assert_eq!(all[0].1, vec![100_000, 200_000, 300_000, 600_000, 700_000]);
        assert_eq!(all[1].1.len(), 7, "remote-only series untouched");
        drop(set);
        // Hints no aggregate serves (a short range): the plain merge.
        let short = SelectHints {
            func: Some("rate"),
            range: 60_000,
            step: 60_000,
        };
        let set = f.select_hinted(&m, 0, 1_000_000, &short).unwrap();
        assert_eq!(read_all(set.as_ref())[0].1.len(), 7);
        drop(set);
        assert!(f.take_warnings().is_empty());
        assert_eq!(*seen.lock().unwrap(), vec![hints, short]);
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
