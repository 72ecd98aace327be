//! LLM prices in the TSDB and on the API. Cost is computed by recording rules that join token
//! usage with `sextant_llm_price_usd_per_token`, so the price series must always be within
//! the lookback window and must carry the provider/model values the usage series carry. This
//! module keeps the effective [`PriceTable`], finds the provider/model pairs seen in token
//! usage over the last day (OTel GenAI `gen_ai_client_token_usage_sum` and agent events'
//! `sextant_agent_tokens_total`), writes their prices (and `sextant_llm_unpriced_model` for
//! pairs without one) through the storage sink every few seconds, and answers
//! `GET /api/sextant/prices` with the table and the unpriced models for the UI.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sextant_ingest::prices::{price_batch, PriceTable};
use sextant_ingest::Sink;
use sextant_model::Matcher;
use sextant_tsdb::querier::Querier;

use crate::{AppState, DbSink};

/// How far back token usage counts as "seen" (a day, so daily cost always has a price).
const OBSERVE_WINDOW_MS: i64 = 25 * 3_600_000;
/// Most provider/model pairs priced per round; more are left out (and logged).
const MAX_OBSERVED: usize = 10_000;

/// Where observed model names come from: (metric, provider label, model labels).
const USAGE_SOURCES: &[(&str, &str, &[&str])] = &[
    (
        "gen_ai_client_token_usage_sum",
        "gen_ai_provider_name",
        &["gen_ai_request_model", "gen_ai_response_model"],
    ),
    ("sextant_agent_tokens_total", "provider", &["model"]),
];

/// The effective price table and what the last round found.
pub struct Prices {
    table: RwLock<Arc<PriceTable>>,
    last: Mutex<Round>,
}

#[derive(Default, Clone)]
struct Round {
    observed: Vec<(String, String)>,
    unpriced: BTreeSet<(String, String)>,
}

impl Prices {
    pub fn new(table: PriceTable) -> Arc<Prices> {
        Arc::new(Prices {
            table: RwLock::new(Arc::new(table)),
            last: Mutex::new(Round::default()),
        })
    }

    /// Replaces the table (configuration reload); the next round writes the new prices.
    pub fn set_table(&self, table: PriceTable) {
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
    }

    pub fn table(&self) -> Arc<PriceTable> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Provider/model pairs with token usage between `now_ms - 25h` and `now_ms`.
    /// Local storage only: a background tick must not download archived blocks.
    fn observe(db: &sextant_tsdb::db::Db, now_ms: i64) -> Vec<(String, String)> {
        let q = db.local_querier();
        let mut pairs = BTreeSet::new();
        for (metric, provider_label, model_labels) in USAGE_SOURCES {
            let ms = [Matcher::equal(sextant_model::METRIC_NAME, *metric)];
            let series = match q.series(&ms, now_ms - OBSERVE_WINDOW_MS, now_ms) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, metric, "listing token usage series for pricing");
                    continue;
                }
            };
            for l in series {
                let provider = l.get(provider_label).unwrap_or_default().to_string();
                for ml in *model_labels {
                    let model = l.get(ml).unwrap_or_default();
                    if !model.is_empty() && pairs.len() < MAX_OBSERVED {
                        pairs.insert((provider.clone(), model.to_string()));
                    }
                }
            }
        }
        if pairs.len() >= MAX_OBSERVED {
            tracing::warn!(
                limit = MAX_OBSERVED,
                "too many provider/model pairs in token usage; some are not priced"
            );
        }
        pairs.into_iter().collect()
    }

    /// One round: observe, resolve, write.
    pub fn tick(&self, db: &Arc<sextant_tsdb::db::Db>, now_ms: i64) {
        let observed = Self::observe(db, now_ms);
        let table = self.table();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let mut gone = Vec::new();
        let unpriced_now: BTreeSet<(String, String)> = observed
            .iter()
            .filter(|(p, m)| table.resolve(p, m, now_ms).is_none())
            .cloned()
            .collect();
        for pair in &last.unpriced {
            if !unpriced_now.contains(pair) {
                gone.push(pair.clone());
            }
        }
        let (batch, report) = price_batch(&table, &observed, &gone, now_ms);
        if let Err(e) = DbSink(db.clone()).store(batch) {
            tracing::warn!(error = %e, "writing LLM price series");
        }
        last.observed = observed;
        last.unpriced = report.unpriced.into_iter().collect();
    }

    /// The answer of `GET /api/sextant/prices`.
    pub fn to_json(&self, now_ms: i64) -> Value {
        let table = self.table();
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let models: Vec<Value> = table
            .entries
            .iter()
            .map(|e| {
                let p = &e.price;
                json!({
                    "provider": p.provider,
                    "model": p.model,
                    "aliases": p.aliases,
                    "from": p.from,
                    "input": p.input,
                    "output": p.output,
                    "cache_read": p.cache_read,
                    "cache_write": p.cache_write,
                    "origin": e.origin,
                    "in_force": table.current(now_ms).iter().any(|c| std::ptr::eq(*c, e)),
                })
            })
            .collect();
        let observed: Vec<Value> = last
            .observed
            .iter()
            .map(|(provider, model)| {
                let r = table.resolve(provider, model, now_ms);
                json!({
                    "provider": provider,
                    "model": model,
                    "priced_as": r.map(|r| json!({
                        "provider": r.entry.price.provider,
                        "model": r.entry.price.model,
                        "from": r.entry.price.from,
                        "matched": r.matched,
                    })),
                })
            })
            .collect();
        let unpriced: Vec<Value> = last
            .unpriced
            .iter()
            .map(|(provider, model)| json!({"provider": provider, "model": model}))
            .collect();
        json!({
            "status": "success",
            "data": {
                "version": table.version,
                "sources": table.sources,
                "unit": "USD per million tokens",
                "budget_usd_per_day": table.budget_usd_per_day,
                "models": models,
                "observed": observed,
                "unpriced": unpriced,
            }
        })
    }
}

/// Starts the rounds that keep the price series current (every `interval`).
pub fn start_price_series(
    st: Arc<AppState>,
    interval: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    let prices = st.prices()?.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let prices = prices.clone();
            let db = st.db.clone();
            let _ = tokio::task::spawn_blocking(move || {
                prices.tick(&db, sextant_model::time::now_ms())
            })
            .await;
        }
    }))
}

/// `GET /api/sextant/prices`: the price table in force, the models seen in token usage and
/// how each was priced, and the unpriced ones.
pub async fn get(State(st): State<Arc<AppState>>) -> Response {
    match st.prices() {
        Some(p) => axum::Json(p.to_json(sextant_model::time::now_ms())).into_response(),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(json!({"status": "error", "errorType": "not_found", "error": "LLM prices are not enabled"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_ingest::remote_write::{SeriesSamples, WriteBatch};
    use sextant_model::{Labels, Sample};
    use sextant_tsdb::db::DbOptions;
    use sextant_tsdb::querier::Querier;

    fn usage(provider: &str, model: &str, t: i64) -> SeriesSamples {
        SeriesSamples {
            labels: Labels::from_pairs([
                ("__name__", "gen_ai_client_token_usage_sum"),
                ("gen_ai_provider_name", provider),
                ("gen_ai_request_model", model),
                ("gen_ai_token_type", "input"),
            ]),
            samples: vec![Sample::new(t, 100.0)],
            histograms: vec![],
            exemplars: vec![],
        }
    }

    fn values(db: &sextant_tsdb::db::Db, name: &str, t: i64) -> Vec<(Labels, f64)> {
        let ms = [Matcher::equal(sextant_model::METRIC_NAME, name)];
        db.querier()
            .select(&ms, t, t)
            .expect("select")
            .into_iter()
            .filter_map(|s| s.floats.last().map(|x| (s.labels.clone(), x.v)))
            .collect()
    }

    #[test]
    fn observed_models_get_prices_and_unknown_ones_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db =
            Arc::new(sextant_tsdb::db::Db::open(dir.path(), DbOptions::default()).expect("db"));
        let now = sextant_model::time::now_ms();
        DbSink(db.clone())
            .store(WriteBatch {
                series: vec![
                    usage("openai", "gpt-4o-mini-2024-07-18", now - 1000),
                    usage("acme", "house-7b", now - 1000),
                ],
                ..WriteBatch::default()
            })
            .expect("store");
        let prices = Prices::new(PriceTable::builtin().expect("table"));
        prices.tick(&db, now);
        let p = values(&db, "sextant_llm_price_usd_per_token", now);
        let find = |model: &str, tt: &str| {
            p.iter()
                .find(|(l, _)| l.get("model") == Some(model) && l.get("token_type") == Some(tt))
                .map(|x| x.1)
        };
        assert_eq!(find("gpt-4o-mini-2024-07-18", "input"), Some(0.15 / 1e6));
        assert_eq!(find("gpt-4o-mini-2024-07-18", "output"), Some(0.60 / 1e6));
        assert_eq!(find("house-7b", "input"), None);
        let u = values(&db, "sextant_llm_unpriced_model", now);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].0.get("model"), Some("house-7b"));
        let j = prices.to_json(now);
        assert_eq!(
            j["data"]["unpriced"],
            json!([{"provider": "acme", "model": "house-7b"}])
        );

        // Priced after a reload: its unpriced series ends with a staleness marker.
        let mut table = PriceTable::builtin().expect("table");
        table.entries.push(sextant_ingest::prices::PriceEntry {
            price: sextant_ingest::prices::ModelPrice {
                provider: "acme".into(),
                model: "house-7b".into(),
                aliases: vec![],
                from: None,
                input: 1.0,
                output: 2.0,
                cache_read: None,
                cache_write: None,
            },
            from_ms: i64::MIN,
            origin: "config",
        });
        prices.set_table(table);
        prices.tick(&db, now + 10_000);
        let q = db.querier();
        let ms = [
            Matcher::equal(sextant_model::METRIC_NAME, "sextant_llm_unpriced_model"),
            Matcher::equal("model", "house-7b"),
        ];
        let s = q.select(&ms, now, now + 10_000).expect("select");
        let last = s[0].floats.last().expect("a sample").v;
        assert!(sextant_model::sample::is_stale_nan(last));
        assert_eq!(prices.to_json(now + 10_000)["data"]["unpriced"], json!([]));
    }
}
