//! The alert stage: alerts from rule evaluation (or from Prometheus / any client via the
//! Alertmanager v2 API) are routed, grouped, inhibited and silenced, then delivered by
//! receivers, with a persistent notification log so a restart neither duplicates nor loses a
//! notification. Configuration is Alertmanager's own format (`route`, `receivers`,
//! `inhibit_rules`, `templates`, `time_intervals`).
//!
//! The seam between the dispatcher and delivery is [`Receiver`]: one integration (a webhook,
//! Slack, Telegram, email, a Gitea/GitHub issue tracker) that is handed one [`Notification`].

pub mod alert;
pub mod config;
pub mod dispatch;
pub mod matchers;
pub mod receivers;
pub mod silence;
pub mod store;
pub mod timeinterval;
pub mod tz;

pub use alert::Alert;
pub use config::{load_config, parse_config, Config, ConfigError};
pub use dispatch::{
    AlertManager, AlertView, FlushJob, GroupView, IntegrationBuilder, ManagerError,
    NotificationRecord, Options, ReceiverStats,
};
pub use silence::{Silence, SilenceMatcher, SilenceState};
pub use store::Store;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

/// One alert inside a notification, in Alertmanager's webhook shape (times RFC 3339).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifiedAlert {
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    /// `0001-01-01T00:00:00Z` while firing.
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// What a receiver is handed: one notification for one alert group — exactly the data of
/// Alertmanager's webhook payload, version 4.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    pub group_key: String,
    pub truncated_alerts: u64,
    /// `firing` if any alert fires, else `resolved`.
    pub status: String,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<NotifiedAlert>,
}

/// Why a delivery failed; `retryable` failures are retried with backoff.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{msg}")]
pub struct NotifyError {
    pub retryable: bool,
    pub msg: String,
}

/// A boxed future, so receivers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One configured integration of a receiver (one entry of `webhook_configs`, `slack_configs`, ...).
pub trait Receiver: Send + Sync {
    /// Integration name for metrics and logs, e.g. `webhook`, `slack`, `github`.
    fn integration(&self) -> &'static str;
    /// Whether resolved notifications go out (`send_resolved`).
    fn send_resolved(&self) -> bool;
    /// Delivers one notification.
    fn notify<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>>;
}
