//! From a discovered address to a scrape target, and from a scraped series to a stored one:
//! Prometheus' `PopulateLabels` (defaults `job`, `__scheme__`, `__metrics_path__`,
//! `__scrape_interval__`, `__scrape_timeout__`, `__param_*`; `relabel_configs`; `__meta_*`
//! removed; `instance` defaulting to `__address__`) and its sample label mutation
//! (`honor_labels`, `exported_*` on conflicts, `metric_relabel_configs`).

use std::time::Duration;

use sextant_model::relabel::{process, RelabelConfig};
use sextant_model::time::parse_duration;
use sextant_model::{Label, Labels, METRIC_NAME};

use super::config::ScrapeConfig;
use super::discovery::TargetGroup;

/// The URL type of scrape targets.
pub use reqwest::Url;

/// A target ready to scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Labels before relabeling (discovered labels plus defaults), as `/api/v1/targets` shows.
    pub discovered: Labels,
    /// Labels after relabeling, `__meta_*` removed; still holds `__address__` & co.
    pub labels: Labels,
    /// The labels every series of this target gets: `labels` without `__`-prefixed names.
    pub public: Labels,
    pub url: reqwest::Url,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// Identity of the target inside its pool: labels (including `__address__`,
    /// `__scrape_interval__`, ...) and URL, like Prometheus' target hash.
    pub fn key(&self) -> String {
        format!("{}|{}", self.labels, self.url)
    }

    /// Stable hash used for the scrape offset (jitter) within the interval.
    pub fn offset_hash(&self) -> u64 {
        let mut h = self.public.stable_hash();
        for b in self.url.as_str().bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

/// What relabeling made of a discovered address.
#[derive(Clone, Debug, PartialEq)]
pub enum Populated {
    Active(Box<Target>),
    /// Dropped by relabeling (or left without an address); carries the discovered labels.
    Dropped(Labels),
    /// Unusable (bad address, bad interval label, ...); logged, shown nowhere, like Prometheus.
    Invalid(String),
}

/// Builds the target for one address of a group.
pub fn populate(cfg: &ScrapeConfig, group: &TargetGroup, address: &str) -> Populated {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(group.labels.len() + 8);
    for (k, v) in &group.labels {
        pairs.push((k.clone(), v.clone()));
    }
    pairs.push(("__address__".into(), address.to_string()));
    let mut lb = Labels::from_pairs(pairs);
    let defaults = [
        ("job", cfg.job_name.clone()),
        ("__scrape_interval__", cfg.interval_string()),
        ("__scrape_timeout__", cfg.timeout_string()),
        ("__metrics_path__", cfg.metrics_path.clone()),
        ("__scheme__", cfg.scheme.as_str().to_string()),
    ];
    for (k, v) in defaults {
        if lb.get(k).is_none_or(str::is_empty) {
            lb.set(k, &v);
        }
    }
    for (k, v) in &cfg.params {
        if let Some(first) = v.first() {
            lb.set(&format!("__param_{k}"), first);
        }
    }
    let discovered = lb.clone();
    let Some(lb) = process(&lb, &cfg.relabel_configs) else {
        return Populated::Dropped(discovered);
    };
    let addr = lb.get("__address__").unwrap_or("").to_string();
    if addr.is_empty() {
        return Populated::Dropped(discovered);
    }
    if addr.contains('/') {
        return Populated::Invalid(format!("{addr:?} is not a valid hostname"));
    }
    let parse = |name: &str, what: &str| -> Result<Duration, String> {
        let v = lb.get(name).unwrap_or("");
        let d = parse_duration(v).map_err(|e| format!("error parsing scrape {what}: {e}"))?;
        if d.is_zero() {
            return Err(format!("scrape {what} cannot be 0"));
        }
        Ok(d)
    };
    let interval = match parse("__scrape_interval__", "interval") {
        Ok(d) => d,
        Err(e) => return Populated::Invalid(e),
    };
    let timeout = match parse("__scrape_timeout__", "timeout") {
        Ok(d) => d,
        Err(e) => return Populated::Invalid(e),
    };
    if timeout > interval {
        return Populated::Invalid(format!(
            "scrape timeout cannot be greater than scrape interval ({:?} > {:?})",
            lb.get("__scrape_timeout__").unwrap_or(""),
            lb.get("__scrape_interval__").unwrap_or("")
        ));
    }
    let scheme = lb.get("__scheme__").unwrap_or("http");
    if scheme != "http" && scheme != "https" {
        return Populated::Invalid(format!("unsupported scheme {scheme:?}"));
    }
    let mut url = match reqwest::Url::parse(&format!("{scheme}://{addr}")) {
        Ok(u) if u.host_str().is_some() => u,
        _ => return Populated::Invalid(format!("{addr:?} is not a valid hostname")),
    };
    url.set_path(lb.get("__metrics_path__").unwrap_or("/metrics"));
    // Query: configured params, with `__param_<name>` labels replacing the first value.
    let mut params: std::collections::BTreeMap<String, Vec<String>> = cfg.params.clone();
    for l in lb.iter() {
        if let Some(name) = l.name.strip_prefix("__param_") {
            let vals = params.entry(name.to_string()).or_default();
            if vals.is_empty() {
                vals.push(l.value.clone());
            } else {
                vals[0] = l.value.clone();
            }
        }
    }
    if !params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, vs) in &params {
            for v in vs {
                q.append_pair(k, v);
            }
        }
    }
    let mut kept: Vec<Label> = lb
        .iter()
        .filter(|l| !l.name.starts_with("__meta_"))
        .cloned()
        .collect();
    if !kept.iter().any(|l| l.name == "instance") {
        kept.push(Label::new("instance", addr.clone()));
    }
    let labels: Labels = kept.into_iter().collect();
    let public: Labels = labels
        .iter()
        .filter(|l| !l.name.starts_with("__"))
        .cloned()
        .collect();
    Populated::Active(Box::new(Target {
        discovered,
        labels,
        public,
        url,
        interval,
        timeout,
    }))
}

impl ScrapeConfig {
    fn interval_string(&self) -> String {
        sextant_model::time::format_duration(self.interval())
    }
    fn timeout_string(&self) -> String {
        sextant_model::time::format_duration(self.timeout())
    }
}

/// Attaches the target's labels to a scraped series and applies `metric_relabel_configs`.
/// `None` means the series is dropped.
pub fn mutate_sample_labels(
    scraped: Labels,
    target: &Labels,
    honor_labels: bool,
    metric_relabel: &[RelabelConfig],
) -> Option<Labels> {
    // Owned, so `set` edits in place instead of copying the label vector.
    let mut lb = scraped;
    if honor_labels {
        for l in target.iter() {
            if lb.get(&l.name).is_none() {
                lb.set(&l.name, &l.value);
            }
        }
    } else {
        let mut conflicts: Vec<Label> = Vec::new();
        for l in target.iter() {
            // Target label names are distinct, so `lb` still holds the scraped value here.
            if let Some(v) = lb.get(&l.name) {
                conflicts.push(Label::new(l.name.clone(), v));
            }
            lb.set(&l.name, &l.value);
        }
        // Shorter names first, then `exported_` prefixes until the name is free.
        conflicts.sort_by_key(|l| l.name.len());
        for c in conflicts {
            let mut name = c.name;
            loop {
                name = format!("exported_{name}");
                if lb.get(&name).is_none() {
                    lb.set(&name, &c.value);
                    break;
                }
            }
        }
    }
    if metric_relabel.is_empty() {
        return Some(lb);
    }
    process(&lb, metric_relabel).filter(|l| !l.is_empty())
}

/// Labels of a synthetic series (`up`, `scrape_duration_seconds`, ...) of a target.
pub fn report_labels(name: &str, target: &Labels) -> Labels {
    let mut l = target.clone();
    l.set(METRIC_NAME, name);
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::relabel::{RawRelabelConfig, RelabelConfig};

    fn cfg(yaml_job: &str) -> ScrapeConfig {
        let mut c: ScrapeConfig = serde_saphyr::from_str(yaml_job).expect("config");
        c.resolve(Duration::from_secs(60), Duration::from_secs(10))
            .expect("resolve");
        c
    }

    fn group(labels: &[(&str, &str)]) -> TargetGroup {
        TargetGroup {
            targets: vec![],
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn defaults_and_instance() {
        let c = cfg("job_name: node\nscrape_interval: 15s\n");
        let Populated::Active(t) = populate(&c, &group(&[("env", "prod")]), "h:9100") else {
            panic!("active")
        };
        assert_eq!(
            t.public,
            Labels::from_pairs([("env", "prod"), ("instance", "h:9100"), ("job", "node")])
        );
        assert_eq!(t.discovered.get("__scrape_interval__"), Some("15s"));
        assert_eq!(t.discovered.get("__scrape_timeout__"), Some("10s"));
        assert_eq!(t.discovered.get("__metrics_path__"), Some("/metrics"));
        assert_eq!(t.discovered.get("__scheme__"), Some("http"));
        assert_eq!(t.url.as_str(), "http://h:9100/metrics");
        assert_eq!(t.interval, Duration::from_secs(15));
    }

    #[test]
    fn relabel_params_meta_and_drop() {
        let c = cfg(r#"
job_name: blackbox
metrics_path: /probe
params:
  module: [http_2xx]
relabel_configs:
  - source_labels: [__address__]
    target_label: __param_target
  - source_labels: [__param_target]
    target_label: instance
  - target_label: __address__
    replacement: 127.0.0.1:9115
  - source_labels: [__meta_filepath]
    regex: .*skip.*
    action: drop
"#);
        let g = group(&[("__meta_filepath", "/sd/a.json")]);
        let Populated::Active(t) = populate(&c, &g, "example.com") else {
            panic!("active")
        };
        assert_eq!(
            t.url.as_str(),
            "http://127.0.0.1:9115/probe?module=http_2xx&target=example.com"
        );
        assert_eq!(t.public.get("instance"), Some("example.com"));
        assert_eq!(t.labels.get("__meta_filepath"), None);
        assert_eq!(t.discovered.get("__meta_filepath"), Some("/sd/a.json"));
        let g = group(&[("__meta_filepath", "/sd/skip.json")]);
        assert!(matches!(populate(&c, &g, "x"), Populated::Dropped(_)));
        assert!(matches!(
            populate(&cfg("job_name: j\n"), &group(&[]), "a/b"),
            Populated::Invalid(_)
        ));
    }

    #[test]
    fn honor_labels_and_exported_conflicts() {
        let target = Labels::from_pairs([("instance", "h:1"), ("job", "j")]);
        let scraped = Labels::from_pairs([
            ("__name__", "m"),
            ("job", "inner"),
            ("exported_job", "taken"),
        ]);
        let out = mutate_sample_labels(scraped.clone(), &target, false, &[]).unwrap();
        assert_eq!(
            out,
            Labels::from_pairs([
                ("__name__", "m"),
                ("exported_exported_job", "inner"),
                ("exported_job", "taken"),
                ("instance", "h:1"),
                ("job", "j"),
            ])
        );
        let out = mutate_sample_labels(scraped.clone(), &target, true, &[]).unwrap();
        assert_eq!(out.get("job"), Some("inner"));
        assert_eq!(out.get("instance"), Some("h:1"));
        let drop = RelabelConfig::from_raw(RawRelabelConfig {
            source_labels: Some(vec!["__name__".into()]),
            regex: Some("m".into()),
            action: Some("drop".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(mutate_sample_labels(scraped, &target, true, &[drop]), None);
    }
}
