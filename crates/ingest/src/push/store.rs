//! The push groups and the Pushgateway's rules for changing them. Pure: no I/O, the current
//! time is an argument, so every rule is unit-tested with exact times.
//!
//! A group is a set of metric families. PUT replaces all of them, POST only those with the
//! names it carries; a family is everything the text format groups under one name (a
//! histogram's `_bucket`/`_sum`/`_count` lines belong to it). Before a push is applied it is
//! checked the way the Pushgateway's gatherer checks it: no timestamps, no reserved label
//! names, the same family must have the same type in every group, and no two samples may end
//! up with the same labels. A refused push changes nothing but the group's
//! `push_failure_time_seconds` (and creates the group if it did not exist, as the
//! Pushgateway does).

use std::collections::{BTreeMap, HashMap, HashSet};

use sextant_model::{Labels, MetricType, METRIC_NAME};

use super::{GroupingKey, PushError, PUSH_FAILURE_TIME_METRIC, PUSH_TIME_METRIC};

/// One metric family of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub kind: MetricType,
    pub help: String,
    /// Samples with their final labels (metric name, pushed labels, grouping labels).
    pub samples: Vec<(Labels, f64)>,
    /// When the push that last set this family happened (ms since the epoch).
    pub pushed_ms: i64,
}

/// One push group.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub key: GroupingKey,
    /// Pushed families by name (never the two `push_*` gauges; those are derived).
    pub families: BTreeMap<String, Family>,
    /// Last successful PUT/POST (ms), `None` if there was none.
    pub push_time_ms: Option<i64>,
    /// Last failed PUT/POST (ms), `None` if there was none.
    pub failure_time_ms: Option<i64>,
    /// TTL given with the last successful push (ms).
    pub ttl_ms: Option<i64>,
    /// When the group expires (ms), if it has a TTL.
    pub expires_at_ms: Option<i64>,
}

impl Group {
    fn new(key: GroupingKey) -> Self {
        Group {
            key,
            families: BTreeMap::new(),
            push_time_ms: None,
            failure_time_ms: None,
            ttl_ms: None,
            expires_at_ms: None,
        }
    }

    /// Labels of the group's own gauges: the grouping labels plus the metric name.
    pub fn gauge_labels(&self, name: &str) -> Labels {
        Labels::from_pairs(
            self.key
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain([(METRIC_NAME, name)]),
        )
    }

    /// `push_time_seconds` and `push_failure_time_seconds` (0 when never), as families.
    pub fn push_gauges(&self) -> [(&'static str, Family); 2] {
        let fam = |name: &str, help: &str, t: Option<i64>| Family {
            kind: MetricType::Gauge,
            help: help.to_string(),
            samples: vec![(
                self.gauge_labels(name),
                t.map_or(0.0, |t| t as f64 / 1000.0),
            )],
            // The Pushgateway stamps both gauges with the time of the last change.
            pushed_ms: self.push_time_ms.max(self.failure_time_ms).unwrap_or(0),
        };
        [
            (
                PUSH_TIME_METRIC,
                fam(
                    PUSH_TIME_METRIC,
                    "Last Unix time when changing this group in the Pushgateway succeeded.",
                    self.push_time_ms,
                ),
            ),
            (
                PUSH_FAILURE_TIME_METRIC,
                fam(
                    PUSH_FAILURE_TIME_METRIC,
                    "Last Unix time when changing this group in the Pushgateway failed.",
                    self.failure_time_ms,
                ),
            ),
        ]
    }

    /// True unless the last PUT/POST failed (the Pushgateway's `last_push_successful`).
    pub fn last_push_successful(&self) -> bool {
        self.failure_time_ms.unwrap_or(0) <= self.push_time_ms.unwrap_or(0)
    }

    /// Every series of the group with its current value, the `push_*` gauges included.
    pub fn series(&self) -> impl Iterator<Item = (&Labels, f64)> + '_ {
        self.families
            .values()
            .flat_map(|f| f.samples.iter().map(|(l, v)| (l, *v)))
    }

    /// Every series' labels, the `push_*` gauges included.
    pub fn all_series_labels(&self) -> Vec<Labels> {
        let mut out: Vec<Labels> = self.series().map(|(l, _)| l.clone()).collect();
        out.push(self.gauge_labels(PUSH_TIME_METRIC));
        out.push(self.gauge_labels(PUSH_FAILURE_TIME_METRIC));
        out
    }
}

/// A parsed push body: families by name, before grouping labels are applied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedBody {
    pub families: BTreeMap<String, Family>,
    /// Some sample carried its own timestamp (the Pushgateway refuses those pushes).
    pub has_timestamps: bool,
    /// The body parsed but is not valid metrics (e.g. a protobuf counter without a counter
    /// value); refused like an inconsistent push.
    pub invalid: Option<String>,
}

/// Parses a push body by its content type: the protobuf delimited format, OpenMetrics
/// (`application/openmetrics-text`, a Sextant extension: the Pushgateway reads it as the text
/// format), else the text format 0.0.4 (the Pushgateway's fallback) with the Pushgateway's
/// extra rules. Text and OpenMetrics go through [`crate::text::parse_exposition`].
pub fn parse_body(body: &[u8], content_type: Option<&str>) -> Result<ParsedBody, PushError> {
    if super::protobuf::is_protobuf(content_type) {
        return super::protobuf::parse_protobuf(body);
    }
    let openmetrics = matches!(
        crate::text::exposition_format(content_type),
        Ok(crate::text::ExpositionFormat::OpenMetrics)
    );
    // No sample may carry a timestamp; a sentinel default shows which ones did.
    const NO_TS: i64 = i64::MIN;
    let batch = crate::text::parse_exposition(body, content_type, NO_TS).map_err(|e| {
        let format = if openmetrics {
            "OpenMetrics"
        } else {
            "text format"
        };
        PushError::Body(format!("{format} parsing error in {e}"))
    })?;
    if !openmetrics {
        // parse_exposition has checked that the body is UTF-8.
        check_text_metadata(&String::from_utf8_lossy(body))?;
    }
    let meta: HashMap<&str, &sextant_model::Metadata> = batch
        .metadata
        .iter()
        .map(|m| (m.metric_family.as_str(), m))
        .collect();
    let mut out = ParsedBody::default();
    for (labels, sample) in &batch.samples {
        if sample.t != NO_TS {
            out.has_timestamps = true;
        }
        let name = labels.metric_name().unwrap_or_default();
        let family = family_of(name, &meta, openmetrics);
        let f = out.families.entry(family.to_string()).or_insert_with(|| {
            let m = meta.get(family);
            Family {
                kind: m.map(|m| m.kind).unwrap_or_default(),
                help: m.map(|m| m.help.clone()).unwrap_or_default(),
                samples: Vec::new(),
                pushed_ms: 0,
            }
        });
        let labels = canonical_bound(labels, name, family, f.kind)?;
        f.samples.push((labels, sample.v));
    }
    for (name, f) in out.families.iter_mut() {
        if !openmetrics && matches!(f.kind, MetricType::Histogram | MetricType::Summary) {
            complete_like_pushgateway(name, f);
        }
    }
    Ok(out)
}

/// One histogram or summary of a family while it is rebuilt.
struct Complex {
    /// Labels without name and `le`/`quantile`.
    base: Labels,
    /// (`le` or `quantile` value, sample value) in input order.
    points: Vec<(String, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

/// Rebuilds a histogram or summary family the way the Pushgateway stores it (parsed into one
/// structured metric per label set, then exposed again): every label set gets its `_sum` and
/// `_count` (0 when not pushed), a histogram its `le="+Inf"` bucket (the count when not
/// pushed), counts are truncated to integers, and lines that do not fit (a bucket without
/// `le`, the bare name of a histogram, a summary line without `quantile`) are dropped.
fn complete_like_pushgateway(name: &str, f: &mut Family) {
    let summary = f.kind == MetricType::Summary;
    let inner = if summary { "quantile" } else { "le" };
    let (bucket, sum, count) = (
        format!("{name}_bucket"),
        format!("{name}_sum"),
        format!("{name}_count"),
    );
    let as_count = |v: f64| if v >= 0.0 { v.trunc() } else { v };
    let mut metrics: Vec<Complex> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (labels, v) in f.samples.drain(..) {
        let n = labels.metric_name().unwrap_or_default().to_string();
        let mut base = labels.clone();
        base.set(METRIC_NAME, "");
        base.set(inner, "");
        let i = *index.entry(base.clone()).or_insert_with(|| {
            metrics.push(Complex {
                base,
                points: Vec::new(),
                sum: None,
                count: None,
            });
            metrics.len() - 1
        });
        let m = &mut metrics[i];
        if n == sum {
            m.sum = Some(v);
        } else if n == count {
            m.count = Some(as_count(v));
        } else if (summary && n == name) || (!summary && n == bucket) {
            if let Some(p) = labels.get(inner) {
                m.points
                    .push((p.to_string(), if summary { v } else { as_count(v) }));
            }
        }
    }
    let with = |base: &Labels, n: &str, extra: Option<(&str, &str)>| {
        let mut l = base.clone();
        l.set(METRIC_NAME, n);
        if let Some((k, v)) = extra {
            l.set(k, v);
        }
        l
    };
    for m in metrics {
        let point_name = if summary { name } else { bucket.as_str() };
        let mut has_inf = false;
        for (p, v) in &m.points {
            has_inf |= p == "+Inf";
            f.samples
                .push((with(&m.base, point_name, Some((inner, p))), *v));
        }
        if !summary && !has_inf {
            f.samples.push((
                with(&m.base, &bucket, Some(("le", "+Inf"))),
                m.count.unwrap_or(0.0),
            ));
        }
        f.samples
            .push((with(&m.base, &sum, None), m.sum.unwrap_or(0.0)));
        f.samples
            .push((with(&m.base, &count, None), m.count.unwrap_or(0.0)));
    }
}

/// Writes a histogram's `le` and a summary's `quantile` the way Prometheus' libraries print
/// floats (`le="1.0"` → `le="1"`), as the Pushgateway does when it re-exposes them.
fn canonical_bound(
    labels: &Labels,
    name: &str,
    family: &str,
    kind: MetricType,
) -> Result<Labels, PushError> {
    let label = match kind {
        MetricType::Histogram | MetricType::GaugeHistogram
            if name.len() == family.len() + 7 && name.ends_with("_bucket") =>
        {
            "le"
        }
        MetricType::Summary if name == family => "quantile",
        _ => return Ok(labels.clone()),
    };
    let Some(raw) = labels.get(label) else {
        return Ok(labels.clone());
    };
    let v = raw
        .trim()
        .parse::<f64>()
        .ok()
        .or(match raw.trim() {
            "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
            "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        })
        .ok_or_else(|| {
            PushError::Body(format!(
                "text format parsing error: expected float as value for {label:?} label of {name}, got {raw:?}"
            ))
        })?;
    let mut out = labels.clone();
    out.set(label, &super::format_go_float(v));
    Ok(out)
}

/// The text format 0.0.4 rules the Pushgateway's parser enforces beyond what the shared
/// parser checks: one `# HELP` and one `# TYPE` per family, `# TYPE` before the family's
/// samples, only the five 0.0.4 types, only the `\\`, `\"` and `\n` escapes (`\\` and `\n` in
/// HELP), and a newline after the last sample.
fn check_text_metadata(text: &str) -> Result<(), PushError> {
    let mut help: HashSet<&str> = HashSet::new();
    let mut typed: HashSet<&str> = HashSet::new();
    let mut sampled: HashSet<&str> = HashSet::new();
    let n_lines = text.split('\n').count();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let err = |msg: String| {
            PushError::Body(format!(
                "text format parsing error in line {}: {msg}",
                i + 1
            ))
        };
        let line = line.trim_start_matches([' ', '\t']);
        if let Some(comment) = line.strip_prefix('#') {
            let mut tok = comment.split([' ', '\t']).filter(|t| !t.is_empty());
            let (Some(kw), Some(name)) = (tok.next(), tok.next()) else {
                continue;
            };
            if name.starts_with('"') {
                continue;
            }
            match kw {
                "HELP" if !help.insert(name) => {
                    return Err(err(format!("second HELP line for metric name {name:?}")));
                }
                "HELP" => {
                    let mut chars = comment.chars();
                    while let Some(c) = chars.next() {
                        if c == '\\' {
                            match chars.next() {
                                Some('\\' | 'n') => {}
                                Some(o) => {
                                    return Err(err(format!("invalid escape sequence '\\{o}'")))
                                }
                                None => return Err(err("invalid escape sequence '\\'".into())),
                            }
                        }
                    }
                }
                "TYPE" => {
                    if !typed.insert(name) || sampled.contains(name) {
                        return Err(err(format!(
                            "second TYPE line for metric name {name:?}, or TYPE reported after samples"
                        )));
                    }
                    let t = tok.next().unwrap_or_default();
                    if !matches!(t, "counter" | "gauge" | "histogram" | "summary" | "untyped") {
                        return Err(err(format!(
                            "unknown metric type {t:?}: the text format 0.0.4 has counter, gauge, histogram, summary and untyped"
                        )));
                    }
                }
                _ => {}
            }
        } else {
            if line.trim_end_matches([' ', '\t']).is_empty() {
                continue;
            }
            if i + 1 == n_lines {
                return Err(err(
                    "unexpected end of input stream (the last line needs a newline)".into(),
                ));
            }
            let end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
            if end > 0 {
                sampled.insert(&line[..end]);
            }
            let mut in_quotes = false;
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => in_quotes = !in_quotes,
                    '\\' if in_quotes => match chars.next() {
                        Some('\\' | '"' | 'n') => {}
                        Some(o) => return Err(err(format!("invalid escape sequence '\\{o}'"))),
                        None => return Err(err("invalid escape sequence '\\'".into())),
                    },
                    '}' if !in_quotes => break,
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// The family a sample line belongs to. In the text format, like the parser of Prometheus'
/// client library: its own name if that has a `# TYPE`, else `x` for `x_bucket`/`x_sum`/
/// `x_count` of a histogram `x` and `x_sum`/`x_count` of a summary `x`, else its own name. In
/// OpenMetrics, the family whose type allows the suffix (`x_total` of counter `x`, ...).
fn family_of<'a>(
    name: &'a str,
    meta: &HashMap<&str, &sextant_model::Metadata>,
    openmetrics: bool,
) -> &'a str {
    use MetricType as T;
    if meta.contains_key(name) {
        return name;
    }
    let rules: &[(&str, &[MetricType])] = if openmetrics {
        &[
            ("_total", &[T::Counter]),
            ("_created", &[T::Counter, T::Histogram, T::Summary]),
            ("_bucket", &[T::Histogram, T::GaugeHistogram]),
            ("_sum", &[T::Histogram, T::Summary]),
            ("_count", &[T::Histogram, T::Summary]),
            ("_gsum", &[T::GaugeHistogram]),
            ("_gcount", &[T::GaugeHistogram]),
            ("_info", &[T::Info]),
        ]
    } else {
        &[
            ("_bucket", &[T::Histogram]),
            ("_sum", &[T::Histogram, T::Summary]),
            ("_count", &[T::Histogram, T::Summary]),
        ]
    };
    for (suffix, kinds) in rules {
        if let Some(base) = name.strip_suffix(suffix) {
            if meta.get(base).is_some_and(|m| kinds.contains(&m.kind)) {
                return base;
            }
        }
    }
    name
}

/// What a successful change did to storage-visible series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Change {
    /// Series that existed before and are gone now (they get staleness markers).
    pub removed: Vec<Labels>,
}

/// All push groups.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupStore {
    groups: BTreeMap<GroupingKey, Group>,
}

impl GroupStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a store from restored groups.
    pub fn from_groups(groups: impl IntoIterator<Item = Group>) -> Self {
        GroupStore {
            groups: groups.into_iter().map(|g| (g.key.clone(), g)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn get(&self, key: &GroupingKey) -> Option<&Group> {
        self.groups.get(key)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Applies a PUT (`replace`) or POST. On success the group holds the new families,
    /// `push_time_seconds` is `now_ms` and the TTL is the request's (none: never expires).
    /// On a consistency error only `push_failure_time_seconds` changes.
    pub fn push(
        &mut self,
        key: GroupingKey,
        body: ParsedBody,
        replace: bool,
        ttl_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Change, PushError> {
        let checked = self.check(&key, body, replace, now_ms);
        let group = self.groups.entry(key.clone()).or_insert_with(|| {
            let mut g = Group::new(key);
            g.ttl_ms = ttl_ms;
            g.expires_at_ms = ttl_ms.map(|t| now_ms.saturating_add(t));
            g
        });
        let families = match checked {
            Ok(f) => f,
            Err(e) => {
                group.failure_time_ms = Some(now_ms);
                return Err(e);
            }
        };
        let before: HashSet<Labels> = group.series().map(|(l, _)| l.clone()).collect();
        group.families = families;
        group.push_time_ms = Some(now_ms);
        group.ttl_ms = ttl_ms;
        group.expires_at_ms = ttl_ms.map(|t| now_ms.saturating_add(t));
        let after: HashSet<&Labels> = group.series().map(|(l, _)| l).collect();
        let mut removed: Vec<Labels> = before.into_iter().filter(|l| !after.contains(l)).collect();
        removed.sort();
        Ok(Change { removed })
    }

    /// The group's families after the push, or why the push is refused.
    fn check(
        &self,
        key: &GroupingKey,
        body: ParsedBody,
        replace: bool,
        now_ms: i64,
    ) -> Result<BTreeMap<String, Family>, PushError> {
        if body.has_timestamps {
            return Err(PushError::Inconsistent(
                "pushed metrics must not have timestamps".to_string(),
            ));
        }
        if let Some(e) = body.invalid {
            return Err(PushError::Inconsistent(e));
        }
        let mut pushed = body.families;
        // The Pushgateway's own gauges override pushed families of that name.
        pushed.remove(PUSH_TIME_METRIC);
        pushed.remove(PUSH_FAILURE_TIME_METRIC);
        for (name, fam) in pushed.iter_mut() {
            fam.pushed_ms = now_ms;
            for (labels, _) in fam.samples.iter_mut() {
                if let Some(l) = labels
                    .iter()
                    .find(|l| l.name != METRIC_NAME && l.name.starts_with("__"))
                {
                    return Err(PushError::Inconsistent(format!(
                        "metric {labels} of family {name:?} has a label with a reserved name: {:?} (names starting with \"__\" are reserved)",
                        l.name
                    )));
                }
                for (k, v) in key {
                    labels.set(k, v);
                }
            }
        }
        let mut families = match (replace, self.groups.get(key)) {
            (false, Some(g)) => g.families.clone(),
            _ => BTreeMap::new(),
        };
        families.extend(pushed);

        // No two samples of the result may have the same labels ...
        let mut seen: HashSet<&Labels> = HashSet::new();
        for fam in families.values() {
            for (labels, _) in &fam.samples {
                if !seen.insert(labels) {
                    return Err(PushError::Inconsistent(format!(
                        "metric {labels} was pushed more than once with the same name and label values"
                    )));
                }
            }
        }
        // ... nor clash with another group's, and a family has one type everywhere.
        for other in self.groups.values().filter(|g| &g.key != key) {
            for (name, fam) in &families {
                let Some(theirs) = other.families.get(name) else {
                    continue;
                };
                if theirs.kind != fam.kind {
                    return Err(PushError::Inconsistent(format!(
                        "metric family {name:?} is pushed as {} but is {} in group {}",
                        type_name(fam.kind),
                        type_name(theirs.kind),
                        format_key(&other.key)
                    )));
                }
                if let Some((labels, _)) = theirs.samples.iter().find(|(l, _)| seen.contains(l)) {
                    return Err(PushError::Inconsistent(format!(
                        "metric {labels} is already pushed with the same name and label values in group {}",
                        format_key(&other.key)
                    )));
                }
            }
        }
        Ok(families)
    }

    /// Removes a group (DELETE); returns the series that disappear.
    pub fn delete(&mut self, key: &GroupingKey) -> Option<Vec<Labels>> {
        self.groups.remove(key).map(|g| g.all_series_labels())
    }

    /// Removes every group whose TTL has passed at `now_ms`; returns them.
    pub fn expire(&mut self, now_ms: i64) -> Vec<Group> {
        let due: Vec<GroupingKey> = self
            .groups
            .values()
            .filter(|g| g.expires_at_ms.is_some_and(|t| t <= now_ms))
            .map(|g| g.key.clone())
            .collect();
        due.iter().filter_map(|k| self.groups.remove(k)).collect()
    }
}

/// The type as the text format names it (`untyped` for unknown).
pub fn type_name(t: MetricType) -> &'static str {
    match t {
        MetricType::Unknown => "untyped",
        other => other.as_str(),
    }
}

/// `{job="x",a="b"}` for messages.
pub fn format_key(key: &GroupingKey) -> String {
    let inner: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}
