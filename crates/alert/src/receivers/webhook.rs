//! `webhook_configs`: POSTs Alertmanager's webhook payload (version 4) as JSON, exactly the
//! [`crate::Notification`] shape, optionally truncated to `max_alerts` with the number of dropped
//! alerts in `truncatedAlerts`.

use std::path::PathBuf;

use serde::Deserialize;

use super::http::{self, Client, HttpConfig};
use super::{default_true, BuildContext, Secret};
use crate::{BoxFuture, Notification, NotifyError, Receiver};

/// One `webhook_configs` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Default true.
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub url: Option<String>,
    pub url_file: Option<PathBuf>,
    pub http_config: Option<HttpConfig>,
    /// 0 = all alerts.
    #[serde(default)]
    pub max_alerts: u64,
    /// Per-request timeout (Go duration, e.g. `10s`); default 30s.
    pub timeout: Option<String>,
}

pub(crate) fn parse_timeout(t: Option<&str>) -> Result<Option<std::time::Duration>, String> {
    t.map(|s| sextant_model::time::parse_duration(s).map_err(|e| format!("timeout: {e}")))
        .transpose()
}

/// The webhook integration.
pub struct Webhook {
    url: Secret,
    send_resolved: bool,
    max_alerts: u64,
    client: Client,
}

impl Webhook {
    pub fn new(c: &WebhookConfig, ctx: &BuildContext) -> Result<Self, String> {
        let url = Secret::from_fields(c.url.as_deref(), c.url_file.as_ref(), "url")?
            .ok_or("one of url or url_file must be configured")?;
        if let Secret::Inline(u) = &url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(format!("url {u:?} must be an http:// or https:// URL"));
            }
        }
        url.check()?;
        let client = Client::new(
            c.http_config.as_ref().or(ctx.global.http_config.as_ref()),
            parse_timeout(c.timeout.as_deref())?,
        )?;
        Ok(Webhook {
            url,
            send_resolved: c.send_resolved,
            max_alerts: c.max_alerts,
            client,
        })
    }
}

/// The payload with at most `max` alerts (0 = unlimited).
pub fn truncate(n: &Notification, max: u64) -> Notification {
    let mut out = n.clone();
    if max > 0 && out.alerts.len() as u64 > max {
        let dropped = out.alerts.len() as u64 - max;
        out.alerts.truncate(max as usize);
        out.truncated_alerts = dropped;
    }
    out
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of debug output.
        f.debug_struct("Webhook").finish_non_exhaustive()
    }
}

impl Receiver for Webhook {
    fn integration(&self) -> &'static str {
        "webhook"
    }
    fn send_resolved(&self) -> bool {
        self.send_resolved
    }
    fn notify<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let url = self.url.get()?;
            let body =
                serde_json::to_vec(&truncate(n, self.max_alerts)).map_err(|e| NotifyError {
                    retryable: false,
                    msg: format!("encoding webhook payload: {e}"),
                })?;
            let rb = self
                .client
                .request(reqwest::Method::POST, url.trim())?
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
            http::send(rb, "webhook").await.map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: WebhookConfig = serde_json::from_str(r#"{"url":"http://x/hook"}"#).unwrap();
        assert!(c.send_resolved);
        assert_eq!(c.max_alerts, 0);
        assert!(Webhook::new(&c, &BuildContext::default()).is_ok());
        let e =
            serde_json::from_str::<WebhookConfig>(r#"{"url":"http://x","urls":[]}"#).unwrap_err();
        assert!(e.to_string().contains("urls"), "{e}");
        let none: WebhookConfig = serde_json::from_str(r#"{}"#).unwrap();
        assert!(Webhook::new(&none, &BuildContext::default())
            .unwrap_err()
            .contains("url"));
        let bad: WebhookConfig = serde_json::from_str(r#"{"url":"ftp://x"}"#).unwrap();
        assert!(Webhook::new(&bad, &BuildContext::default()).is_err());
        let to: WebhookConfig =
            serde_json::from_str(r#"{"url":"http://x","timeout":"soon"}"#).unwrap();
        assert!(Webhook::new(&to, &BuildContext::default())
            .unwrap_err()
            .contains("timeout"));
    }

    #[test]
    fn truncation_counts_dropped_alerts() {
        let n = super::super::template::tests::sample();
        let t = truncate(&n, 1);
        assert_eq!(t.alerts.len(), 1);
        assert_eq!(t.truncated_alerts, 1);
        assert_eq!(truncate(&n, 0).alerts.len(), 2);
        assert_eq!(truncate(&n, 5).truncated_alerts, 0);
    }
}
