//! Receivers: Alertmanager's `receivers:` entries and the integrations they build. Each
//! integration is a config struct (Alertmanager's field names and defaults) plus a
//! [`crate::Receiver`] implementation in its own module; [`build`] turns one [`ReceiverConfig`]
//! into the list of integrations the dispatcher notifies.
//!
//! Secrets: every secret has an inline field and a `*_file` twin, as in Alertmanager. An inline
//! value written exactly as `${NAME}` (Sextant extension) is read from the environment variable
//! `NAME` instead; files and environment variables are read at each notification, so rotated
//! secrets are picked up without a reload.

pub mod email;
pub mod http;
pub mod issues;
pub mod slack;
pub mod telegram;
pub mod template;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::{NotifyError, Receiver};
pub use http::{BasicAuth, HttpConfig, TlsConfig};
pub use template::Templates;

/// One `receivers:` entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    #[serde(default)]
    pub webhook_configs: Vec<webhook::WebhookConfig>,
    #[serde(default)]
    pub slack_configs: Vec<slack::SlackConfig>,
    #[serde(default)]
    pub telegram_configs: Vec<telegram::TelegramConfig>,
    #[serde(default)]
    pub email_configs: Vec<email::EmailConfig>,
    /// Sextant: open/comment/close Gitea issues per alert group.
    #[serde(default)]
    pub gitea_configs: Vec<issues::IssueConfig>,
    /// Sextant: open/comment/close GitHub issues per alert group.
    #[serde(default)]
    pub github_configs: Vec<issues::IssueConfig>,
}

/// Alertmanager `global:` settings the integrations fall back to. The alert manager fills it
/// from its parsed `global:` section; every field is optional.
#[derive(Clone, Debug, Default)]
pub struct GlobalDefaults {
    pub smtp_from: Option<String>,
    /// Default `hello` (Alertmanager: `localhost`).
    pub smtp_hello: Option<String>,
    pub smtp_smarthost: Option<String>,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<String>,
    pub smtp_auth_password_file: Option<PathBuf>,
    pub smtp_auth_identity: Option<String>,
    /// Default `require_tls` (Alertmanager: true).
    pub smtp_require_tls: Option<bool>,
    pub slack_api_url: Option<String>,
    pub slack_api_url_file: Option<PathBuf>,
    /// Default Telegram Bot API base (Alertmanager: `https://api.telegram.org`).
    pub telegram_api_url: Option<String>,
    /// Default `http_config` of integrations that set none.
    pub http_config: Option<HttpConfig>,
}

/// What [`build`] needs besides the receiver's own config.
#[derive(Clone, Debug, Default)]
pub struct BuildContext {
    pub global: GlobalDefaults,
    /// Sextant's external URL (`.ExternalURL` in templates), without a trailing slash.
    pub external_url: String,
    /// Parsed templates: the defaults plus the config's `templates:` files.
    pub templates: Arc<Templates>,
}

/// A receiver's configuration is invalid; names the receiver, the integration and the field.
#[derive(Debug, thiserror::Error)]
#[error("receiver {receiver:?}: {integration}[{index}]: {msg}")]
pub struct ConfigError {
    pub receiver: String,
    pub integration: &'static str,
    pub index: usize,
    pub msg: String,
}

/// Builds every integration of one receiver, validating fields and templates.
pub fn build(
    cfg: &ReceiverConfig,
    ctx: &BuildContext,
) -> Result<Vec<Box<dyn Receiver>>, ConfigError> {
    let mut out: Vec<Box<dyn Receiver>> = Vec::new();
    let wrap = |integration: &'static str, index: usize| {
        let receiver = cfg.name.clone();
        move |msg: String| ConfigError {
            receiver: receiver.clone(),
            integration,
            index,
            msg,
        }
    };
    for (i, c) in cfg.webhook_configs.iter().enumerate() {
        out.push(Box::new(
            webhook::Webhook::new(c, ctx).map_err(wrap("webhook_configs", i))?,
        ));
    }
    for (i, c) in cfg.slack_configs.iter().enumerate() {
        out.push(Box::new(
            slack::Slack::new(c, ctx).map_err(wrap("slack_configs", i))?,
        ));
    }
    for (i, c) in cfg.telegram_configs.iter().enumerate() {
        out.push(Box::new(
            telegram::Telegram::new(c, ctx).map_err(wrap("telegram_configs", i))?,
        ));
    }
    for (i, c) in cfg.email_configs.iter().enumerate() {
        out.push(Box::new(
            email::Email::new(c, ctx).map_err(wrap("email_configs", i))?,
        ));
    }
    for (i, c) in cfg.gitea_configs.iter().enumerate() {
        out.push(Box::new(
            issues::IssueTracker::new(issues::Forge::Gitea, c, ctx)
                .map_err(wrap("gitea_configs", i))?,
        ));
    }
    for (i, c) in cfg.github_configs.iter().enumerate() {
        out.push(Box::new(
            issues::IssueTracker::new(issues::Forge::GitHub, c, ctx)
                .map_err(wrap("github_configs", i))?,
        ));
    }
    Ok(out)
}

/// Where a secret comes from.
#[derive(Clone)]
pub enum Secret {
    Inline(String),
    Env(String),
    File(PathBuf),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("<secret>"),
            Secret::Env(n) => write!(f, "${{{n}}}"),
            Secret::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// Largest secret file read.
const MAX_SECRET_FILE: u64 = 64 << 10;

impl Secret {
    /// From an inline value (`${NAME}` = environment variable) and/or a `*_file` path; both set
    /// is an error, as in Alertmanager.
    pub fn from_fields(
        inline: Option<&str>,
        file: Option<&PathBuf>,
        field: &str,
    ) -> Result<Option<Secret>, String> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(format!(
                "at most one of {field} and {field}_file must be configured"
            )),
            (Some(v), None) => Ok(Some(Secret::parse_inline(v))),
            (None, Some(f)) => Ok(Some(Secret::File(f.clone()))),
            (None, None) => Ok(None),
        }
    }

    fn parse_inline(v: &str) -> Secret {
        if let Some(name) = v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Secret::Env(name.to_string());
            }
        }
        Secret::Inline(v.to_string())
    }

    /// Reads the secret now (trailing newlines of files are trimmed).
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Secret::Inline(v) => Ok(v.clone()),
            Secret::Env(n) => {
                std::env::var(n).map_err(|_| format!("environment variable {n} is not set"))
            }
            Secret::File(p) => {
                let meta =
                    std::fs::metadata(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
                if meta.len() > MAX_SECRET_FILE {
                    return Err(format!(
                        "{} is larger than {MAX_SECRET_FILE} bytes",
                        p.display()
                    ));
                }
                let s = std::fs::read_to_string(p)
                    .map_err(|e| format!("reading {}: {e}", p.display()))?;
                Ok(s.trim_end_matches(['\n', '\r']).to_string())
            }
        }
    }

    /// Resolve at notification time; failures are not retryable (configuration problem).
    pub(crate) fn get(&self) -> Result<String, NotifyError> {
        self.resolve().map_err(|msg| NotifyError {
            retryable: false,
            msg,
        })
    }

    /// Checks at build time that an env/file secret is readable.
    pub(crate) fn check(&self) -> Result<(), String> {
        self.resolve().map(|_| ())
    }
}

fn default_true() -> bool {
    true
}

/// Renders `text` for a notification; template failures are configuration errors (not retryable).
pub(crate) fn render(
    t: &Templates,
    text: &str,
    data: &gotmpl::Value,
    field: &str,
) -> Result<String, NotifyError> {
    t.execute(text, data).map_err(|e| NotifyError {
        retryable: false,
        msg: format!("{field}: {e}"),
    })
}

/// Renders `text` as html/template (email HTML bodies, Telegram's HTML parse mode).
pub(crate) fn render_html(
    t: &Templates,
    text: &str,
    data: &gotmpl::Value,
    field: &str,
) -> Result<String, NotifyError> {
    t.execute_html(text, data).map_err(|e| NotifyError {
        retryable: false,
        msg: format!("{field}: {e}"),
    })
}

/// Validates a template field at build time.
pub(crate) fn check_tmpl(t: &Templates, text: &str, field: &str) -> Result<(), String> {
    t.check(text).map_err(|e| format!("{field}: {e}"))
}

/// Truncates to at most `max` characters, ending with `…` when cut (as Alertmanager does).
pub(crate) fn truncate_chars(s: &str, max: usize) -> (String, bool) {
    if s.chars().count() <= max {
        return (s.to_string(), false);
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_config_rejects_unknown_fields() {
        let e = serde_json::from_str::<ReceiverConfig>(r#"{"name":"x","pagerduty_configs":[]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("pagerduty_configs"), "{e}");
        let c: ReceiverConfig = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert!(build(&c, &BuildContext::default()).unwrap().is_empty());
    }

    #[test]
    fn alertmanager_yaml_parses() {
        // A receivers section as an Alertmanager user writes it.
        let yaml = r#"
- name: oncall
  webhook_configs:
    - url: http://hooks.example.org/alert
      max_alerts: 10
      http_config:
        authorization:
          credentials: t0ken
  slack_configs:
    - api_url: https://hooks.slack.com/services/T/B/X
      channel: '#ops'
      send_resolved: true
      fields:
        - title: Severity
          value: '{{ .CommonLabels.severity }}'
          short: true
  telegram_configs:
    - bot_token: '${TG_TOKEN}'
      chat_id: -1001234567890
      parse_mode: MarkdownV2
  email_configs:
    - to: ops@example.org
      from: am@example.org
      smarthost: smtp.example.org:587
      auth_username: am
      auth_password_file: /run/secrets/smtp
      headers:
        Subject: 'Alert: {{ .GroupLabels.alertname }}'
  github_configs:
    - repo: acme/ops
      token_file: /run/secrets/gh
      labels: [alert, 'severity/{{ .CommonLabels.severity }}']
  gitea_configs:
    - api_url: https://git.example.org
      repo: acme/ops
      token: '${GITEA_TOKEN}'
"#;
        let v: Vec<ReceiverConfig> = serde_saphyr::from_str(yaml).unwrap();
        let r = &v[0];
        assert_eq!(r.webhook_configs[0].max_alerts, 10);
        assert!(r.slack_configs[0].send_resolved);
        assert_eq!(r.slack_configs[0].fields[0].short, Some(true));
        assert_eq!(r.telegram_configs[0].chat_id, -1001234567890);
        assert_eq!(
            r.email_configs[0].headers["Subject"],
            "Alert: {{ .GroupLabels.alertname }}"
        );
        assert_eq!(r.github_configs[0].labels.len(), 2);
        assert_eq!(r.gitea_configs[0].repo, "acme/ops");
        let bad = "- name: x\n  slack_configs:\n    - api_url: http://x\n      chanel: '#typo'\n";
        let e = serde_saphyr::from_str::<Vec<ReceiverConfig>>(bad).unwrap_err();
        assert!(e.to_string().contains("chanel"), "{e}");
    }

    #[test]
    fn build_errors_name_receiver_and_integration() {
        let c: ReceiverConfig = serde_json::from_str(
            r#"{"name":"team","webhook_configs":[{"url":"http://ok"},{"url":"nope"}]}"#,
        )
        .unwrap();
        let e = build(&c, &BuildContext::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("receiver \"team\": webhook_configs[1]: url"),
            "{e}"
        );
    }

    #[test]
    fn secrets_from_env_file_inline() {
        assert!(
            matches!(Secret::parse_inline("${SX_TEST_TOKEN}"), Secret::Env(n) if n == "SX_TEST_TOKEN")
        );
        assert!(matches!(Secret::parse_inline("$abc"), Secret::Inline(_)));
        assert!(matches!(Secret::parse_inline("${a b}"), Secret::Inline(_)));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(
            Secret::from_fields(None, Some(&f), "token")
                .unwrap()
                .unwrap()
                .resolve()
                .unwrap(),
            "s3cret"
        );
        assert!(Secret::from_fields(Some("a"), Some(&f), "token")
            .unwrap_err()
            .contains("token_file"));
        assert!(Secret::Env("SX_SURELY_UNSET_VAR".into())
            .resolve()
            .unwrap_err()
            .contains("SX_SURELY_UNSET_VAR"));
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate_chars("abcdef", 4), ("abc…".to_string(), true));
        assert_eq!(truncate_chars("abc", 4), ("abc".to_string(), false));
    }
}
