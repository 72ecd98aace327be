//! `telegram_configs`: sends the message through the Telegram Bot API
//! (`POST {api_url}/bot{token}/sendMessage`, JSON body), with Alertmanager's defaults: HTML
//! parse mode (alert data is HTML-escaped then, as Alertmanager's html/template does), the
//! `telegram.default.message` template, and messages cut to Telegram's 4096 characters.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::http::{self, Client, HttpConfig};
use super::template::data;
use super::webhook::parse_timeout;
use super::{
    check_tmpl, default_true, render, render_html, truncate_chars, BuildContext, Secret, Templates,
};
use crate::{BoxFuture, Notification, NotifyError, Receiver};

fn d_message() -> String {
    r#"{{ template "telegram.default.message" . }}"#.into()
}
fn d_parse_mode() -> String {
    "HTML".into()
}

/// One `telegram_configs` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Default true.
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    /// Default `global.telegram_api_url`, else `https://api.telegram.org`.
    pub api_url: Option<String>,
    pub bot_token: Option<String>,
    pub bot_token_file: Option<PathBuf>,
    pub chat_id: i64,
    pub message_thread_id: Option<i64>,
    #[serde(default = "d_message")]
    pub message: String,
    #[serde(default)]
    pub disable_notifications: bool,
    /// `HTML` (default), `Markdown`, `MarkdownV2`, or empty for plain text.
    #[serde(default = "d_parse_mode")]
    pub parse_mode: String,
    pub timeout: Option<String>,
}

/// The Telegram integration.
pub struct Telegram {
    cfg: TelegramConfig,
    api_url: String,
    token: Secret,
    client: Client,
    templates: Arc<Templates>,
}

/// Telegram's limit on a message's text.
const MAX_MESSAGE: usize = 4096;

impl Telegram {
    pub fn new(c: &TelegramConfig, ctx: &BuildContext) -> Result<Self, String> {
        let token = Secret::from_fields(
            c.bot_token.as_deref(),
            c.bot_token_file.as_ref(),
            "bot_token",
        )?
        .ok_or("one of bot_token or bot_token_file must be configured")?;
        token.check()?;
        if c.chat_id == 0 {
            return Err("missing chat_id".into());
        }
        if !matches!(
            c.parse_mode.as_str(),
            "" | "HTML" | "Markdown" | "MarkdownV2"
        ) {
            return Err(format!(
                "unknown parse_mode {:?} (HTML, Markdown, MarkdownV2)",
                c.parse_mode
            ));
        }
        check_tmpl(&ctx.templates, &c.message, "message")?;
        let api_url = c
            .api_url
            .clone()
            .or(ctx.global.telegram_api_url.clone())
            .unwrap_or_else(|| "https://api.telegram.org".into())
            .trim_end_matches('/')
            .to_string();
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(format!("api_url {api_url:?} must be an http(s) URL"));
        }
        let client = Client::new(
            c.http_config.as_ref().or(ctx.global.http_config.as_ref()),
            parse_timeout(c.timeout.as_deref())?,
        )?;
        Ok(Telegram {
            cfg: c.clone(),
            api_url,
            token,
            client,
            templates: ctx.templates.clone(),
        })
    }

    /// The `sendMessage` body for a notification.
    pub fn payload(&self, n: &Notification) -> Result<Json, NotifyError> {
        let html = self.cfg.parse_mode == "HTML";
        let d = data(n);
        let text = if html {
            render_html(&self.templates, &self.cfg.message, &d, "message")?
        } else {
            render(&self.templates, &self.cfg.message, &d, "message")?
        };
        let (text, cut) = truncate_chars(&text, MAX_MESSAGE);
        if cut {
            tracing::warn!(receiver = %n.receiver, "telegram message truncated to {MAX_MESSAGE} characters");
        }
        let mut p = json!({"chat_id": self.cfg.chat_id, "text": text});
        if !self.cfg.parse_mode.is_empty() {
            p["parse_mode"] = Json::String(self.cfg.parse_mode.clone());
        }
        if self.cfg.disable_notifications {
            p["disable_notification"] = Json::Bool(true);
        }
        if let Some(t) = self.cfg.message_thread_id {
            p["message_thread_id"] = json!(t);
        }
        Ok(p)
    }
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of debug output.
        f.debug_struct("Telegram").finish_non_exhaustive()
    }
}

impl Receiver for Telegram {
    fn integration(&self) -> &'static str {
        "telegram"
    }
    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }
    fn notify<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let payload = self.payload(n)?;
            let token = self.token.get()?;
            let url = format!("{}/bot{}/sendMessage", self.api_url, token.trim());
            let rb = self
                .client
                .request(reqwest::Method::POST, &url)?
                .json(&payload);
            let body = match http::send(rb, "telegram").await {
                Ok(b) => b,
                Err(mut e) => {
                    // Never echo the token, even if an error page quotes the URL.
                    e.msg = e.msg.replace(token.trim(), "<secret>");
                    return Err(e);
                }
            };
            let j: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
            if j.get("ok") != Some(&Json::Bool(true)) {
                let d = j
                    .get("description")
                    .and_then(Json::as_str)
                    .unwrap_or("no ok:true in response");
                return Err(NotifyError {
                    retryable: false,
                    msg: format!("telegram: {}", d.replace(token.trim(), "<secret>")),
                });
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receivers::template::tests::sample;

    #[test]
    fn defaults_and_validation() {
        let c: TelegramConfig =
            serde_json::from_str(r#"{"bot_token":"123:abc","chat_id":-100}"#).unwrap();
        assert!(c.send_resolved);
        assert_eq!(c.parse_mode, "HTML");
        assert!(!c.disable_notifications);
        let t = Telegram::new(&c, &BuildContext::default()).unwrap();
        assert_eq!(t.api_url, "https://api.telegram.org");
        let mut n = sample();
        n.common_annotations.insert("x".into(), "a<b".into());
        n.alerts[0]
            .annotations
            .insert("summary".into(), "<script>".into());
        let p = t.payload(&n).unwrap();
        assert_eq!(p["chat_id"], -100);
        assert_eq!(p["parse_mode"], "HTML");
        let text = p["text"].as_str().unwrap();
        assert!(
            text.contains("Alerts Firing:") && text.contains(" - summary = &lt;script&gt;"),
            "{text}"
        );
        assert!(p.get("disable_notification").is_none() && p.get("message_thread_id").is_none());

        let e = serde_json::from_str::<TelegramConfig>(r#"{"bot_token":"x","chat_id":1,"chat":2}"#)
            .unwrap_err();
        assert!(e.to_string().contains("chat"), "{e}");
        let no_chat: TelegramConfig =
            serde_json::from_str(r#"{"bot_token":"x","chat_id":0}"#).unwrap();
        assert!(Telegram::new(&no_chat, &BuildContext::default())
            .unwrap_err()
            .contains("chat_id"));
        let no_tok: TelegramConfig = serde_json::from_str(r#"{"chat_id":1}"#).unwrap();
        assert!(Telegram::new(&no_tok, &BuildContext::default())
            .unwrap_err()
            .contains("bot_token"));
        let pm: TelegramConfig =
            serde_json::from_str(r#"{"bot_token":"x","chat_id":1,"parse_mode":"BBCode"}"#).unwrap();
        assert!(Telegram::new(&pm, &BuildContext::default()).is_err());
    }

    #[test]
    fn long_messages_are_cut() {
        let c: TelegramConfig = serde_json::from_str(r#"{"bot_token":"x","chat_id":1,"message":"{{ range .Alerts }}{{ .GeneratorURL }}{{ end }}","parse_mode":""}"#).unwrap();
        let t = Telegram::new(&c, &BuildContext::default()).unwrap();
        let mut n = sample();
        n.alerts[0].generator_url = "x".repeat(5000);
        let p = t.payload(&n).unwrap();
        assert_eq!(p["text"].as_str().unwrap().chars().count(), 4096);
        assert!(p.get("parse_mode").is_none());
    }
}
