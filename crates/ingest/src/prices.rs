//! LLM list prices, so token usage can be turned into money with plain PromQL. A versioned
//! table ships in the repository (`prices/llm.yml`, embedded here) and `prices:` in
//! sextant.yml overrides and extends it. Model names in telemetry rarely equal a table entry
//! (`gpt-4o-2024-08-06`, `openai/gpt-4o`, `us.anthropic.claude-3-5-haiku-20241022-v1:0`), so
//! [`PriceTable::resolve`] strips provider prefixes and version or date suffixes step by step
//! until an entry (or one of its aliases) matches. [`price_batch`] then writes, for each
//! provider/model pair seen in the data, `sextant_llm_price_usd_per_token` series carrying
//! exactly the label values of the usage series (so `* on (provider, model, token_type)`
//! joins), and `sextant_llm_unpriced_model` for pairs no entry matches — an unknown model is
//! reported, never priced as zero.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;
use sextant_model::{Labels, Metadata, MetricType, Sample, METRIC_NAME};

use crate::remote_write::{SeriesSamples, WriteBatch};

/// The price table shipped with Sextant.
pub const BUILTIN_PRICES: &str = include_str!("../../../prices/llm.yml");

/// Price per token, by provider, model and token type.
pub const PRICE_SERIES: &str = "sextant_llm_price_usd_per_token";
/// 1 for each provider/model pair seen in token usage that no price entry matches.
pub const UNPRICED_SERIES: &str = "sextant_llm_unpriced_model";
/// The configured daily budget in USD.
pub const BUDGET_SERIES: &str = "sextant_llm_budget_usd_per_day";
/// The token types priced: the values of `token_type` on the price series.
pub const TOKEN_TYPES: [&str; 4] = ["input", "output", "cache_read", "cache_write"];

/// One price entry: USD per million tokens of a provider's model from a date on.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Provider as in `gen_ai.provider.name` (`openai`, `anthropic`, `gcp.gemini`, ...).
    pub provider: String,
    pub model: String,
    /// Other names of the same model (matched after the same normalisation).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// First day (UTC, `YYYY-MM-DD`) the price applies; unset means always.
    #[serde(default)]
    pub from: Option<String>,
    /// USD per million input (prompt) tokens.
    pub input: f64,
    /// USD per million output (completion) tokens.
    pub output: f64,
    /// USD per million input tokens read from the prompt cache; unset: the input price.
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// USD per million input tokens written to the prompt cache; unset: the input price.
    #[serde(default)]
    pub cache_write: Option<f64>,
}

/// The shipped file: a version, where the prices come from, and the entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFile {
    pub version: String,
    #[serde(default)]
    pub sources: Vec<String>,
    pub models: Vec<Spanned<ModelPrice>>,
}

/// `prices:` in sextant.yml.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricesConfig {
    /// Daily spending budget in USD, written as `sextant_llm_budget_usd_per_day` for the
    /// budget alert.
    #[serde(default)]
    pub budget_usd_per_day: Option<f64>,
    /// Entries that replace every shipped entry of the same provider and model, or add models.
    #[serde(default)]
    pub models: Vec<Spanned<ModelPrice>>,
}

/// A price entry that failed validation: the line and what is wrong with which field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {msg}")]
pub struct PriceError {
    /// 1-based line of the entry; 0 when unknown.
    pub line: u64,
    pub field: String,
    pub msg: String,
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` → Unix milliseconds at 00:00 UTC.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let dim = [
        31,
        28 + i64::from(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > dim[(m - 1) as usize] {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400_000)
}

/// An entry of the table, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceEntry {
    pub price: ModelPrice,
    /// `from` in Unix ms (`i64::MIN` when unset).
    pub from_ms: i64,
    /// `builtin` or `config`.
    pub origin: &'static str,
}

impl PriceEntry {
    /// USD per token of a token type (cache prices fall back to the input price).
    pub fn per_token(&self, token_type: &str) -> Option<f64> {
        let p = &self.price;
        let per_million = match token_type {
            "input" => p.input,
            "output" => p.output,
            "cache_read" => p.cache_read.unwrap_or(p.input),
            "cache_write" => p.cache_write.unwrap_or(p.input),
            _ => return None,
        };
        Some(per_million / 1e6)
    }
}

fn check(p: &ModelPrice, line: u64, origin: &'static str) -> Result<PriceEntry, PriceError> {
    let e = |field: &str, msg: String| PriceError {
        line,
        field: field.to_string(),
        msg,
    };
    if p.provider.trim().is_empty() {
        return Err(e("provider", "must not be empty".into()));
    }
    if p.model.trim().is_empty() {
        return Err(e("model", "must not be empty".into()));
    }
    for (field, v) in [
        ("input", Some(p.input)),
        ("output", Some(p.output)),
        ("cache_read", p.cache_read),
        ("cache_write", p.cache_write),
    ] {
        if let Some(v) = v {
            if !v.is_finite() || v < 0.0 {
                return Err(e(
                    field,
                    format!(
                        "{v} is not a price: want a non-negative number of USD per million tokens"
                    ),
                ));
            }
        }
    }
    let from_ms = match &p.from {
        None => i64::MIN,
        Some(d) => parse_date(d)
            .ok_or_else(|| e("from", format!("{d:?} is not a date (want YYYY-MM-DD)")))?,
    };
    Ok(PriceEntry {
        price: p.clone(),
        from_ms,
        origin,
    })
}

/// The effective price table: shipped entries with the configuration's applied.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    /// Version of the shipped table.
    pub version: String,
    /// Where the shipped prices come from.
    pub sources: Vec<String>,
    pub entries: Vec<PriceEntry>,
    pub budget_usd_per_day: Option<f64>,
}

/// How an observed model name found its entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved<'a> {
    pub entry: &'a PriceEntry,
    /// The normalised name that matched (the model or an alias of the entry).
    pub matched: String,
}

/// Region and vendor prefixes of AWS Bedrock model ids (`us.anthropic.claude-...`).
const BEDROCK_REGIONS: &[&str] = &["us.", "eu.", "apac.", "global.", "us-gov."];
const BEDROCK_VENDORS: &[&str] = &[
    "anthropic.",
    "meta.",
    "amazon.",
    "mistral.",
    "cohere.",
    "ai21.",
    "deepseek.",
    "openai.",
];

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// One normalisation step (None when nothing more can be stripped), in the order tried.
fn strip_once(m: &str) -> Option<String> {
    // `provider/model` (LiteLLM, OpenRouter), `models/gemini-...` (Google).
    if let Some((_, rest)) = m.rsplit_once('/') {
        return Some(rest.to_string());
    }
    // Vertex AI: `claude-3-5-haiku@20241022`.
    if let Some((base, _)) = m.split_once('@') {
        return Some(base.to_string());
    }
    for r in BEDROCK_REGIONS {
        if let Some(rest) = m.strip_prefix(r) {
            if BEDROCK_VENDORS.iter().any(|v| rest.starts_with(v)) {
                return Some(rest.to_string());
            }
        }
    }
    for v in BEDROCK_VENDORS {
        if let Some(rest) = m.strip_prefix(v) {
            return Some(rest.to_string());
        }
    }
    // Bedrock version suffix `-v1:0`.
    if let Some((base, v)) = m.rsplit_once("-v") {
        let num = v.contains(':') && v.split(':').all(all_digits);
        if num && !base.is_empty() {
            return Some(base.to_string());
        }
    }
    if let Some(base) = m.strip_suffix("-latest") {
        return Some(base.to_string());
    }
    // Dated snapshots: -2024-08-06, -20241022, -0613; Gemini revisions -001.
    let b = m.as_bytes();
    if b.len() > 11 && b[b.len() - 11] == b'-' {
        let tail = &m[m.len() - 10..];
        if parse_date(tail).is_some() {
            return Some(m[..m.len() - 11].to_string());
        }
    }
    if let Some((base, tail)) = m.rsplit_once('-') {
        if all_digits(tail) && matches!(tail.len(), 3 | 4 | 8) && !base.is_empty() {
            return Some(base.to_string());
        }
    }
    None
}

/// The normalised forms of an observed model name, most specific first.
pub fn candidates(model: &str) -> Vec<String> {
    let mut out = vec![model.trim().to_ascii_lowercase()];
    while out.len() < 12 {
        let last = out.last().map(String::as_str).unwrap_or_default();
        match strip_once(last) {
            Some(next) if !next.is_empty() && next != last => out.push(next),
            _ => break,
        }
    }
    out
}

impl PriceTable {
    /// The shipped table.
    pub fn builtin() -> Result<PriceTable, PriceError> {
        let file: PriceFile = serde_saphyr::from_str(BUILTIN_PRICES).map_err(|e| PriceError {
            line: e.location().map(|l| l.line()).unwrap_or(0),
            field: "prices/llm.yml".into(),
            msg: e.to_string(),
        })?;
        let mut entries = Vec::with_capacity(file.models.len());
        for m in &file.models {
            entries.push(check(&m.value, m.referenced.line(), "builtin")?);
        }
        Ok(PriceTable {
            version: file.version,
            sources: file.sources,
            entries,
            budget_usd_per_day: None,
        })
    }

    /// Applies `prices:` from sextant.yml: its entries replace every entry of the same
    /// provider and model (case-insensitive) or add new models; the budget is set.
    pub fn with_config(mut self, cfg: &PricesConfig) -> Result<PriceTable, PriceError> {
        if let Some(b) = cfg.budget_usd_per_day {
            if !b.is_finite() || b < 0.0 {
                return Err(PriceError {
                    line: 0,
                    field: "budget_usd_per_day".into(),
                    msg: format!("{b} is not a budget: want a non-negative number of USD"),
                });
            }
        }
        self.budget_usd_per_day = cfg.budget_usd_per_day;
        let mut added = Vec::with_capacity(cfg.models.len());
        for m in &cfg.models {
            added.push(check(&m.value, m.referenced.line(), "config")?);
        }
        let key = |e: &PriceEntry| {
            (
                e.price.provider.to_ascii_lowercase(),
                e.price.model.to_ascii_lowercase(),
            )
        };
        let replaced: std::collections::HashSet<_> = added.iter().map(key).collect();
        self.entries.retain(|e| !replaced.contains(&key(e)));
        self.entries.extend(added);
        Ok(self)
    }

    /// The entry that prices `model` (as seen in telemetry) from `provider` at `now_ms`: the
    /// first normalised form of the name that equals an entry's model or alias, an entry of
    /// the same provider preferred over another provider's; among entries of one provider and
    /// model, the one with the latest `from` not after `now_ms`.
    pub fn resolve(&self, provider: &str, model: &str, now_ms: i64) -> Option<Resolved<'_>> {
        let provider = crate::otlp::genai::provider_value(provider);
        for cand in candidates(model) {
            let mut best: Option<&PriceEntry> = None;
            let mut best_rank = (false, i64::MIN);
            for e in &self.entries {
                if e.from_ms > now_ms {
                    continue;
                }
                let names = std::iter::once(&e.price.model).chain(&e.price.aliases);
                if !names.into_iter().any(|n| n.eq_ignore_ascii_case(&cand)) {
                    continue;
                }
                let same = crate::otlp::genai::provider_value(&e.price.provider) == provider;
                let rank = (same, e.from_ms);
                if best.is_none() || rank > best_rank {
                    best = Some(e);
                    best_rank = rank;
                }
            }
            if let Some(entry) = best {
                return Some(Resolved {
                    entry,
                    matched: cand,
                });
            }
        }
        None
    }

    /// The entries in force at `now_ms`, one per provider and model.
    pub fn current(&self, now_ms: i64) -> Vec<&PriceEntry> {
        let mut by: BTreeMap<(String, String), &PriceEntry> = BTreeMap::new();
        for e in &self.entries {
            if e.from_ms > now_ms {
                continue;
            }
            let k = (e.price.provider.clone(), e.price.model.clone());
            match by.get(&k) {
                Some(old) if old.from_ms > e.from_ms => {}
                _ => {
                    by.insert(k, e);
                }
            }
        }
        by.into_values().collect()
    }
}

/// What [`price_batch`] found for the observed pairs.
#[derive(Debug, Default)]
pub struct PriceReport {
    /// Observed (provider, model) pairs without a price.
    pub unpriced: Vec<(String, String)>,
}

fn series(labels: Labels, t: i64, v: f64) -> SeriesSamples {
    SeriesSamples {
        labels,
        samples: vec![Sample::new(t, v)],
        histograms: Vec::new(),
        exemplars: Vec::new(),
    }
}

fn price_labels(provider: &str, model: &str, token_type: &str) -> Labels {
    Labels::from_pairs([
        (METRIC_NAME.to_string(), PRICE_SERIES.to_string()),
        ("provider".to_string(), provider.to_string()),
        ("model".to_string(), model.to_string()),
        ("token_type".to_string(), token_type.to_string()),
    ])
}

/// The price, unpriced-model and budget samples at `now_ms`: once any usage is observed, one
/// price series per token type for every entry in force (labelled with the entry's own provider and model) and for every
/// observed (provider, model) pair that resolves (labelled with the observed values, so joins
/// with the usage series match); `sextant_llm_unpriced_model` 1 for observed pairs that do
/// not resolve, and a staleness marker for `no_longer_unpriced` pairs.
pub fn price_batch(
    table: &PriceTable,
    observed: &[(String, String)],
    no_longer_unpriced: &[(String, String)],
    now_ms: i64,
) -> (WriteBatch, PriceReport) {
    let mut batch = WriteBatch::default();
    let mut report = PriceReport::default();
    let mut seen = std::collections::HashSet::new();
    let mut push = |batch: &mut WriteBatch, provider: &str, model: &str, e: &PriceEntry| {
        if !seen.insert((provider.to_string(), model.to_string())) {
            return;
        }
        for tt in TOKEN_TYPES {
            if let Some(v) = e.per_token(tt) {
                batch
                    .series
                    .push(series(price_labels(provider, model, tt), now_ms, v));
            }
        }
    };
    // The whole table only once there is LLM usage: a server without any writes nothing at
    // "now", so bulk imports of older data into a fresh server still fit the head's window.
    if !observed.is_empty() {
        for e in table.current(now_ms) {
            push(&mut batch, &e.price.provider, &e.price.model, e);
        }
    }
    for (provider, model) in observed {
        match table.resolve(provider, model, now_ms) {
            Some(r) => push(&mut batch, provider, model, r.entry),
            None => {
                report.unpriced.push((provider.clone(), model.clone()));
                batch.series.push(series(
                    Labels::from_pairs([
                        (METRIC_NAME.to_string(), UNPRICED_SERIES.to_string()),
                        ("provider".to_string(), provider.clone()),
                        ("model".to_string(), model.clone()),
                    ]),
                    now_ms,
                    1.0,
                ));
            }
        }
    }
    for (provider, model) in no_longer_unpriced {
        batch.series.push(series(
            Labels::from_pairs([
                (METRIC_NAME.to_string(), UNPRICED_SERIES.to_string()),
                ("provider".to_string(), provider.clone()),
                ("model".to_string(), model.clone()),
            ]),
            now_ms,
            sextant_model::STALE_NAN,
        ));
    }
    if let Some(b) = table.budget_usd_per_day {
        batch.series.push(series(
            Labels::from_pairs([(METRIC_NAME.to_string(), BUDGET_SERIES.to_string())]),
            now_ms,
            b,
        ));
    }
    for (family, kind, help) in [
        (PRICE_SERIES, MetricType::Gauge, "List price in USD per token, by provider, model and token type (input, output, cache_read, cache_write)."),
        (UNPRICED_SERIES, MetricType::Gauge, "1 for each provider/model seen in token usage that no price entry matches."),
        (BUDGET_SERIES, MetricType::Gauge, "Configured LLM spending budget in USD per day (prices.budget_usd_per_day)."),
    ] {
        batch.metadata.push(Metadata {
            metric_family: family.to_string(),
            kind,
            help: help.to_string(),
            unit: String::new(),
        });
    }
    (batch, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::builtin().expect("shipped price table parses")
    }

    const NOW: i64 = 1_790_000_000_000; // 2026-09

    #[test]
    fn shipped_table_is_valid_and_versioned() {
        let t = table();
        assert!(!t.version.is_empty());
        assert!(!t.sources.is_empty());
        assert!(t.entries.len() >= 20, "{} entries", t.entries.len());
        for p in ["openai", "anthropic", "gcp.gemini"] {
            assert!(t.entries.iter().any(|e| e.price.provider == p), "{p}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-08-06"), Some(1_722_902_400_000));
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_date("2024-8-6"), None);
        assert_eq!(parse_date("+024-08-06"), None);
    }

    #[test]
    fn observed_names_resolve_to_entries() {
        let t = table();
        let cases = [
            ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
            ("openai", "gpt-4o", "gpt-4o"),
            ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("", "openai/gpt-4o-mini", "gpt-4o-mini"),
            ("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku"),
            (
                "aws.bedrock",
                "us.anthropic.claude-3-5-haiku-20241022-v1:0",
                "claude-3-5-haiku",
            ),
            (
                "gcp.vertex_ai",
                "claude-3-5-haiku@20241022",
                "claude-3-5-haiku",
            ),
            (
                "gcp.gemini",
                "models/gemini-1.5-flash-002",
                "gemini-1.5-flash",
            ),
            ("anthropic", "claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ];
        for (p, m, want) in cases {
            let r = t.resolve(p, m, NOW);
            assert_eq!(
                r.map(|r| r.entry.price.model.as_str()),
                Some(want),
                "{p}/{m}"
            );
        }
        assert!(t.resolve("openai", "my-finetune-xyz", NOW).is_none());
        // gpt-4o-mini must not be priced as gpt-4o, nor o1-mini as o1.
        assert_eq!(
            t.resolve("openai", "gpt-4o-mini", NOW)
                .map(|r| r.entry.price.model.clone()),
            Some("gpt-4o-mini".into())
        );
    }

    #[test]
    fn config_overrides_and_dates() {
        let cfg: PricesConfig = serde_saphyr::from_str(
            "budget_usd_per_day: 5\nmodels:\n  - {provider: openai, model: gpt-4o, input: 1, output: 2}\n  - {provider: acme, model: house-model, input: 0.5, output: 1, from: 2026-01-01}\n  - {provider: acme, model: house-model, input: 0.25, output: 0.5, from: 2026-06-01}\n",
        )
        .expect("parses");
        let t = table().with_config(&cfg).expect("valid");
        assert_eq!(t.budget_usd_per_day, Some(5.0));
        let r = t
            .resolve("openai", "gpt-4o-2024-11-20", NOW)
            .expect("priced");
        assert_eq!(r.entry.origin, "config");
        assert_eq!(r.entry.per_token("input"), Some(1e-6));
        assert_eq!(r.entry.per_token("cache_read"), Some(1e-6));
        let early = parse_date("2026-03-01").expect("date");
        assert_eq!(
            t.resolve("acme", "house-model", early)
                .map(|r| r.entry.price.input),
            Some(0.5)
        );
        assert_eq!(
            t.resolve("acme", "house-model", NOW)
                .map(|r| r.entry.price.input),
            Some(0.25)
        );
        assert!(t
            .resolve("acme", "house-model", parse_date("2025-01-01").unwrap_or(0))
            .is_none());
    }

    #[test]
    fn bad_entries_name_the_field() {
        for (yaml, field) in [
            (
                "models:\n  - {provider: a, model: b, input: -1, output: 1}\n",
                "input",
            ),
            (
                "models:\n  - {provider: a, model: b, input: 1, output: 1, from: 2024-13-01}\n",
                "from",
            ),
            (
                "models:\n  - {provider: '', model: b, input: 1, output: 1}\n",
                "provider",
            ),
        ] {
            let cfg: PricesConfig = serde_saphyr::from_str(yaml).expect("parses");
            let err = table().with_config(&cfg).expect_err(yaml);
            assert_eq!(err.field, field);
            assert_eq!(err.line, 2);
        }
        assert!(serde_saphyr::from_str::<PricesConfig>(
            "models:\n  - {provider: a, model: b, input: 1, output: 1, cached: 2}\n"
        )
        .is_err());
    }

    #[test]
    fn batch_carries_observed_labels_and_reports_unpriced() {
        let t = table();
        let observed = vec![
            ("openai".to_string(), "gpt-4o-2024-08-06".to_string()),
            ("acme".to_string(), "mystery-1".to_string()),
        ];
        let (b, rep) = price_batch(&t, &observed, &[], NOW);
        assert_eq!(
            rep.unpriced,
            vec![("acme".to_string(), "mystery-1".to_string())]
        );
        let find = |l: &str| {
            b.series
                .iter()
                .find(|s| s.labels.to_string() == l)
                .map(|s| s.samples[0].v)
        };
        let gpt4o = t.resolve("openai", "gpt-4o", NOW).expect("gpt-4o priced");
        assert_eq!(
            find(
                r#"sextant_llm_price_usd_per_token{model="gpt-4o-2024-08-06", provider="openai", token_type="output"}"#
            ),
            gpt4o.entry.per_token("output")
        );
        assert_eq!(
            find(r#"sextant_llm_unpriced_model{model="mystery-1", provider="acme"}"#),
            Some(1.0)
        );
    }
}
