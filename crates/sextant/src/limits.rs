//! The `limits:` section of sextant.yml: every limit a client can drive (request and
//! decompressed sizes, series and samples per request, label sizes, series caps globally, per
//! metric and per tenant label, query time/samples/concurrency, rule count, push groups,
//! silences) in one place, with safe defaults when it is absent. `sextant serve`'s older flags
//! (`--max-series`, `--max-request-size`, ...) still work and win over the file when given;
//! [`resolve`] applies that precedence, and reload re-resolves it with the same flags.

use std::time::Duration;

use serde::Deserialize;
use sextant_ingest::scrape::config::PromDuration;

/// A byte size: a number of bytes or a string with a unit (`32MB`, base 1024).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Size(n)),
            Raw::S(s) => sextant_model::time::parse_size(&s)
                .map(Size)
                .map_err(|e| serde::de::Error::custom(format!("{e} (use e.g. 32MB or bytes)"))),
        }
    }
}

/// `limits:` as written; unset keys take the CLI flag, then the default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body, compressed (413, `body_size`).
    pub max_request_size: Option<Size>,
    /// Largest body after gzip/snappy decompression (413, `decompressed_size`).
    pub max_decompressed_size: Option<Size>,
    pub max_series_per_request: Option<usize>,
    pub max_samples_per_request: Option<usize>,
    pub max_labels_per_series: Option<usize>,
    pub max_label_name_length: Option<usize>,
    pub max_label_value_length: Option<usize>,
    /// Active series in the head (0 = unlimited).
    pub max_series: Option<usize>,
    pub max_series_per_metric: Option<usize>,
    /// Label whose values are tenants, e.g. `team` (fixed at start).
    pub tenant_label: Option<String>,
    pub max_series_per_tenant: Option<usize>,
    pub query_timeout: Option<PromDuration>,
    pub query_max_samples: Option<usize>,
    pub query_max_concurrency: Option<usize>,
    pub write_max_concurrency: Option<usize>,
    /// How long a write waits for a free slot before 429.
    pub write_queue_wait: Option<PromDuration>,
    /// Rules across all rule files, built-in packs and SLOs.
    pub max_rules: Option<usize>,
    pub max_push_groups: Option<usize>,
    /// Active + pending silences (Alertmanager's `--silences.max-silences`).
    pub max_silences: Option<usize>,
}

impl LimitsConfig {
    /// Checks values that are wrong whatever the flags say.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(l) = &self.tenant_label {
            if !sextant_model::labels::is_valid_label_name(l) || l == "__name__" {
                return Err(format!("tenant_label: {l:?} is not a valid label name"));
            }
        }
        if self.max_series_per_tenant.unwrap_or(0) > 0 && self.tenant_label.is_none() {
            return Err(
                "max_series_per_tenant needs tenant_label (the label naming tenants, e.g. team)"
                    .into(),
            );
        }
        for (k, v) in [
            ("query_max_concurrency", self.query_max_concurrency),
            ("write_max_concurrency", self.write_max_concurrency),
        ] {
            if v == Some(0) {
                return Err(format!("{k}: must be at least 1"));
            }
        }
        if let Some(Size(0)) = self.max_request_size {
            return Err("max_request_size: must be greater than 0".into());
        }
        if let Some(Size(0)) = self.max_decompressed_size {
            return Err("max_decompressed_size: must be greater than 0".into());
        }
        Ok(())
    }
}

/// Limits given explicitly on the command line (they win over the file).
#[derive(Clone, Debug, Default)]
pub struct CliLimits {
    pub max_request_size: Option<u64>,
    pub max_decompressed_size: Option<u64>,
    pub max_labels_per_series: Option<usize>,
    pub max_label_name_length: Option<usize>,
    pub max_label_value_length: Option<usize>,
    pub max_series: Option<usize>,
    pub max_series_per_metric: Option<usize>,
    pub query_timeout: Option<Duration>,
    pub query_max_samples: Option<usize>,
    pub query_max_concurrency: Option<usize>,
}

/// Every limit resolved: flag, else file, else default.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective {
    pub max_request_size: u64,
    pub max_decompressed_size: u64,
    pub max_series_per_request: usize,
    pub max_samples_per_request: usize,
    pub max_labels_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    pub max_series: usize,
    pub max_series_per_metric: usize,
    pub tenant_label: Option<String>,
    pub max_series_per_tenant: usize,
    pub query_timeout: Duration,
    pub query_max_samples: usize,
    pub query_max_concurrency: usize,
    pub write_max_concurrency: usize,
    pub write_queue_wait: Duration,
    pub max_rules: usize,
    pub max_push_groups: usize,
    pub max_silences: usize,
}

/// Defaults without config: generous for real use, but every client-driven resource bounded.
pub const DEFAULT_MAX_RULES: usize = 10_000;
pub const DEFAULT_MAX_SILENCES: usize = 10_000;

/// Applies the precedence flag > file > default.
pub fn resolve(cli: &CliLimits, file: &LimitsConfig) -> Effective {
    let w = sextant_server::WriteLimits::default();
    let q = sextant_server::QueryLimits::default();
    Effective {
        max_request_size: cli
            .max_request_size
            .or(file.max_request_size.map(|s| s.0))
            .unwrap_or(w.max_body as u64),
        max_decompressed_size: cli
            .max_decompressed_size
            .or(file.max_decompressed_size.map(|s| s.0))
            .unwrap_or(w.max_decoded as u64),
        max_series_per_request: file
            .max_series_per_request
            .unwrap_or(w.max_series_per_request),
        max_samples_per_request: file
            .max_samples_per_request
            .unwrap_or(w.max_samples_per_request),
        max_labels_per_series: cli
            .max_labels_per_series
            .or(file.max_labels_per_series)
            .unwrap_or(w.max_labels_per_series),
        max_label_name_length: cli
            .max_label_name_length
            .or(file.max_label_name_length)
            .unwrap_or(w.max_label_name_len),
        max_label_value_length: cli
            .max_label_value_length
            .or(file.max_label_value_length)
            .unwrap_or(w.max_label_value_len),
        max_series: cli.max_series.or(file.max_series).unwrap_or(0),
        max_series_per_metric: cli
            .max_series_per_metric
            .or(file.max_series_per_metric)
            .unwrap_or(0),
        tenant_label: file.tenant_label.clone(),
        max_series_per_tenant: file.max_series_per_tenant.unwrap_or(0),
        query_timeout: cli
            .query_timeout
            .or(file.query_timeout.map(|d| d.0))
            .unwrap_or(q.timeout),
        query_max_samples: cli
            .query_max_samples
            .or(file.query_max_samples)
            .unwrap_or(q.max_samples),
        query_max_concurrency: cli
            .query_max_concurrency
            .or(file.query_max_concurrency)
            .unwrap_or(q.max_concurrent),
        write_max_concurrency: file.write_max_concurrency.unwrap_or(w.max_concurrent),
        write_queue_wait: file.write_queue_wait.map(|d| d.0).unwrap_or(w.queue_wait),
        max_rules: file.max_rules.unwrap_or(DEFAULT_MAX_RULES),
        max_push_groups: file.max_push_groups.unwrap_or(w.max_push_groups),
        max_silences: file.max_silences.unwrap_or(DEFAULT_MAX_SILENCES),
    }
}

impl Effective {
    /// The server's write limits.
    pub fn write_limits(&self) -> sextant_server::WriteLimits {
        sextant_server::WriteLimits {
            max_body: usize::try_from(self.max_request_size).unwrap_or(usize::MAX),
            max_decoded: usize::try_from(self.max_decompressed_size).unwrap_or(usize::MAX),
            max_labels_per_series: self.max_labels_per_series,
            max_label_name_len: self.max_label_name_length,
            max_label_value_len: self.max_label_value_length,
            max_concurrent: self.write_max_concurrency,
            queue_wait: self.write_queue_wait,
            max_series_per_request: self.max_series_per_request,
            max_samples_per_request: self.max_samples_per_request,
            max_push_groups: self.max_push_groups,
        }
    }

    /// The server's query limits.
    pub fn query_limits(&self) -> sextant_server::QueryLimits {
        sextant_server::QueryLimits {
            timeout: self.query_timeout,
            max_samples: self.query_max_samples,
            max_concurrent: self.query_max_concurrency,
            ..Default::default()
        }
    }

    /// Names of the limits that differ from `old` but only take effect after a restart.
    pub fn restart_only_changes(&self, old: &Effective) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut d = |changed: bool, name: &'static str| {
            if changed {
                v.push(name)
            }
        };
        d(
            old.max_request_size != self.max_request_size,
            "max_request_size",
        );
        d(
            old.max_decompressed_size != self.max_decompressed_size,
            "max_decompressed_size",
        );
        d(
            old.max_labels_per_series != self.max_labels_per_series
                || old.max_label_name_length != self.max_label_name_length
                || old.max_label_value_length != self.max_label_value_length,
            "max_labels_per_series/max_label_name_length/max_label_value_length",
        );
        d(old.tenant_label != self.tenant_label, "tenant_label");
        d(
            old.query_timeout != self.query_timeout
                || old.query_max_samples != self.query_max_samples
                || old.query_max_concurrency != self.query_max_concurrency,
            "query_timeout/query_max_samples/query_max_concurrency",
        );
        d(
            old.write_max_concurrency != self.write_max_concurrency
                || old.write_queue_wait != self.write_queue_wait,
            "write_max_concurrency/write_queue_wait",
        );
        v
    }
}

/// Refuses rule groups with more than `max` rules in total (0 = unlimited), naming the file
/// whose rules cross the limit.
pub fn check_rule_count(defs: &[sextant_rules::GroupDef], max: usize) -> Result<(), String> {
    if max == 0 {
        return Ok(());
    }
    let mut n = 0usize;
    for g in defs {
        n += g.rules.len();
        if n > max {
            let total: usize = defs.iter().map(|g| g.rules.len()).sum();
            return Err(format!(
                "rule file {}: group {:?} brings the rule count over the limit of {max} rules (limit rule_count); {total} rules are loaded in all",
                g.file, g.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_apply() {
        let file: LimitsConfig = serde_saphyr::from_str(
            "max_request_size: 1MB\nmax_series: 10\nmax_push_groups: 3\nquery_timeout: 5s\n",
        )
        .unwrap();
        let cli = CliLimits {
            max_series: Some(20),
            ..Default::default()
        };
        let e = resolve(&cli, &file);
        assert_eq!(e.max_request_size, 1 << 20);
        assert_eq!(e.max_series, 20);
        assert_eq!(e.max_push_groups, 3);
        assert_eq!(e.query_timeout, Duration::from_secs(5));
        assert_eq!(e.max_silences, DEFAULT_MAX_SILENCES);
        assert_eq!(e.max_decompressed_size, 128 << 20);
    }

    #[test]
    fn validation() {
        let bad: LimitsConfig = serde_saphyr::from_str("max_series_per_tenant: 5\n").unwrap();
        assert!(bad.validate().unwrap_err().contains("tenant_label"));
        let bad: LimitsConfig = serde_saphyr::from_str("tenant_label: 1x\n").unwrap();
        assert!(bad.validate().is_err());
        assert!(serde_saphyr::from_str::<LimitsConfig>("max_sillences: 5\n").is_err());
        assert!(serde_saphyr::from_str::<LimitsConfig>("max_request_size: lots\n").is_err());
    }
}
