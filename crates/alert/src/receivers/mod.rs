//! Receivers: Alertmanager's `receivers:` entries and the integrations they build. Each
//! integration is a config struct (Alertmanager's field names) plus a [`crate::Receiver`]
//! implementation in its own module.

use serde::Deserialize;

/// One `receivers:` entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    #[serde(default)]
    pub webhook_configs: Vec<serde_json::Value>,
    #[serde(default)]
    pub slack_configs: Vec<serde_json::Value>,
    #[serde(default)]
    pub telegram_configs: Vec<serde_json::Value>,
    #[serde(default)]
    pub email_configs: Vec<serde_json::Value>,
    /// Sextant: open/comment/close Gitea issues per alert group.
    #[serde(default)]
    pub gitea_configs: Vec<serde_json::Value>,
    /// Sextant: open/comment/close GitHub issues per alert group.
    #[serde(default)]
    pub github_configs: Vec<serde_json::Value>,
}
