//! `slack_configs`: posts to a Slack incoming webhook (or `chat.postMessage` with a bearer
//! token in `http_config`) with Alertmanager's attachment payload and defaults. Sextant adds
//! `blocks: true`, which sends a Block Kit message instead (header = title, a section with the
//! text — or one line per alert when `text` is empty — the fields, and a context line with the
//! footer and a link to `title_link`); `fallback` becomes the top-level notification `text`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::http::{self, Client, HttpConfig};
use super::template::data;
use super::webhook::parse_timeout;
use super::{check_tmpl, render, truncate_chars, BuildContext, Secret, Templates};
use crate::{BoxFuture, Notification, NotifyError, Receiver};
use std::sync::Arc;

/// One `fields` entry of an attachment.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackField {
    pub title: String,
    pub value: String,
    pub short: Option<bool>,
}

/// A legacy interactive `actions` button.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAction {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub style: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
    pub confirm: Option<SlackConfirm>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfirm {
    pub text: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub ok_text: String,
    #[serde(default)]
    pub dismiss_text: String,
}

fn d_username() -> String {
    r#"{{ template "slack.default.username" . }}"#.into()
}
fn d_color() -> String {
    r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#.into()
}
fn d_title() -> String {
    r#"{{ template "slack.default.title" . }}"#.into()
}
fn d_title_link() -> String {
    r#"{{ template "slack.default.titlelink" . }}"#.into()
}
fn d_pretext() -> String {
    r#"{{ template "slack.default.pretext" . }}"#.into()
}
fn d_text() -> String {
    r#"{{ template "slack.default.text" . }}"#.into()
}
fn d_fallback() -> String {
    r#"{{ template "slack.default.fallback" . }}"#.into()
}
fn d_callback_id() -> String {
    r#"{{ template "slack.default.callbackid" . }}"#.into()
}
fn d_icon_emoji() -> String {
    r#"{{ template "slack.default.iconemoji" . }}"#.into()
}
fn d_icon_url() -> String {
    r#"{{ template "slack.default.iconurl" . }}"#.into()
}
fn d_footer() -> String {
    r#"{{ template "slack.default.footer" . }}"#.into()
}
fn d_mrkdwn_in() -> Vec<String> {
    vec!["fallback".into(), "pretext".into(), "text".into()]
}

/// One `slack_configs` entry (Alertmanager's fields and defaults; `blocks` is Sextant's).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Default false.
    #[serde(default)]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    /// Incoming webhook URL; falls back to `global.slack_api_url`.
    pub api_url: Option<String>,
    pub api_url_file: Option<PathBuf>,
    #[serde(default)]
    pub channel: String,
    #[serde(default = "d_username")]
    pub username: String,
    #[serde(default = "d_color")]
    pub color: String,
    #[serde(default = "d_title")]
    pub title: String,
    #[serde(default = "d_title_link")]
    pub title_link: String,
    #[serde(default = "d_pretext")]
    pub pretext: String,
    #[serde(default = "d_text")]
    pub text: String,
    #[serde(default)]
    pub fields: Vec<SlackField>,
    #[serde(default)]
    pub short_fields: bool,
    #[serde(default = "d_footer")]
    pub footer: String,
    #[serde(default = "d_fallback")]
    pub fallback: String,
    #[serde(default = "d_callback_id")]
    pub callback_id: String,
    #[serde(default = "d_icon_emoji")]
    pub icon_emoji: String,
    #[serde(default = "d_icon_url")]
    pub icon_url: String,
    #[serde(default)]
    pub image_url: String,
    #[serde(default)]
    pub thumb_url: String,
    #[serde(default)]
    pub link_names: bool,
    #[serde(default = "d_mrkdwn_in")]
    pub mrkdwn_in: Vec<String>,
    #[serde(default)]
    pub actions: Vec<SlackAction>,
    /// Sextant: send a Block Kit layout instead of a legacy attachment.
    #[serde(default)]
    pub blocks: bool,
    pub timeout: Option<String>,
}

/// The Slack integration.
pub struct Slack {
    cfg: SlackConfig,
    url: Secret,
    client: Client,
    templates: Arc<Templates>,
}

/// Alertmanager truncates attachment titles to this many characters.
const MAX_TITLE: usize = 1024;

impl Slack {
    pub fn new(c: &SlackConfig, ctx: &BuildContext) -> Result<Self, String> {
        let url =
            match Secret::from_fields(c.api_url.as_deref(), c.api_url_file.as_ref(), "api_url")? {
                Some(u) => u,
                None => Secret::from_fields(
                    ctx.global.slack_api_url.as_deref(),
                    ctx.global.slack_api_url_file.as_ref(),
                    "global.slack_api_url",
                )?
                .ok_or("no api_url or api_url_file and no global slack_api_url")?,
            };
        url.check()?;
        let t = &ctx.templates;
        for (f, v) in [
            ("username", &c.username),
            ("color", &c.color),
            ("title", &c.title),
            ("title_link", &c.title_link),
            ("pretext", &c.pretext),
            ("text", &c.text),
            ("footer", &c.footer),
            ("fallback", &c.fallback),
            ("callback_id", &c.callback_id),
            ("icon_emoji", &c.icon_emoji),
            ("icon_url", &c.icon_url),
            ("channel", &c.channel),
            ("image_url", &c.image_url),
            ("thumb_url", &c.thumb_url),
        ] {
            check_tmpl(t, v, f)?;
        }
        for f in &c.fields {
            check_tmpl(t, &f.title, "fields.title")?;
            check_tmpl(t, &f.value, "fields.value")?;
        }
        for a in &c.actions {
            if a.kind.is_empty() || a.text.is_empty() || (a.url.is_empty() && a.name.is_empty()) {
                return Err("actions: type, text and either url or name are required".into());
            }
        }
        let client = Client::new(
            c.http_config.as_ref().or(ctx.global.http_config.as_ref()),
            parse_timeout(c.timeout.as_deref())?,
        )?;
        Ok(Slack {
            cfg: c.clone(),
            url,
            client,
            templates: ctx.templates.clone(),
        })
    }

    /// The JSON payload for a notification.
    pub fn payload(&self, n: &Notification) -> Result<Json, NotifyError> {
        let c = &self.cfg;
        let d = data(n);
        let r = |text: &str, f: &str| render(&self.templates, text, &d, f);
        let (title, cut) = truncate_chars(&r(&c.title, "title")?, MAX_TITLE);
        if cut {
            tracing::warn!(receiver = %n.receiver, "slack title truncated to {MAX_TITLE} characters");
        }
        let mut fields = Vec::new();
        for f in &c.fields {
            fields.push(json!({
                "title": r(&f.title, "fields.title")?,
                "value": r(&f.value, "fields.value")?,
                "short": f.short.unwrap_or(c.short_fields),
            }));
        }
        let mut msg = serde_json::Map::new();
        let put = |m: &mut serde_json::Map<String, Json>, k: &str, v: String| {
            if !v.is_empty() {
                m.insert(k.into(), Json::String(v));
            }
        };
        put(&mut msg, "channel", r(&c.channel, "channel")?);
        put(&mut msg, "username", r(&c.username, "username")?);
        put(&mut msg, "icon_emoji", r(&c.icon_emoji, "icon_emoji")?);
        put(&mut msg, "icon_url", r(&c.icon_url, "icon_url")?);
        if c.link_names {
            msg.insert("link_names".into(), Json::Bool(true));
        }
        let text = r(&c.text, "text")?;
        let title_link = r(&c.title_link, "title_link")?;
        let footer = r(&c.footer, "footer")?;
        let fallback = r(&c.fallback, "fallback")?;
        if c.blocks {
            msg.insert("text".into(), Json::String(fallback));
            msg.insert(
                "blocks".into(),
                Json::Array(blocks(n, &title, &text, &title_link, &footer, &fields)),
            );
            return Ok(Json::Object(msg));
        }
        let mut att = serde_json::Map::new();
        put(&mut att, "title", title);
        put(&mut att, "title_link", title_link);
        put(&mut att, "pretext", r(&c.pretext, "pretext")?);
        att.insert("text".into(), Json::String(text));
        att.insert("fallback".into(), Json::String(fallback));
        att.insert(
            "callback_id".into(),
            Json::String(r(&c.callback_id, "callback_id")?),
        );
        if !fields.is_empty() {
            att.insert("fields".into(), Json::Array(fields));
        }
        if !c.actions.is_empty() {
            let mut acts = Vec::new();
            for a in &c.actions {
                let mut m = serde_json::Map::new();
                m.insert("type".into(), Json::String(r(&a.kind, "actions.type")?));
                m.insert("text".into(), Json::String(r(&a.text, "actions.text")?));
                put(&mut m, "url", r(&a.url, "actions.url")?);
                put(&mut m, "style", r(&a.style, "actions.style")?);
                put(&mut m, "name", r(&a.name, "actions.name")?);
                put(&mut m, "value", r(&a.value, "actions.value")?);
                if let Some(cf) = &a.confirm {
                    m.insert(
                        "confirm".into(),
                        json!({
                            "text": r(&cf.text, "actions.confirm.text")?,
                            "title": r(&cf.title, "actions.confirm.title")?,
                            "ok_text": r(&cf.ok_text, "actions.confirm.ok_text")?,
                            "dismiss_text": r(&cf.dismiss_text, "actions.confirm.dismiss_text")?,
                        }),
                    );
                }
                acts.push(Json::Object(m));
            }
            att.insert("actions".into(), Json::Array(acts));
        }
        put(&mut att, "image_url", r(&c.image_url, "image_url")?);
        put(&mut att, "thumb_url", r(&c.thumb_url, "thumb_url")?);
        att.insert("footer".into(), Json::String(footer));
        put(&mut att, "color", r(&c.color, "color")?);
        if !c.mrkdwn_in.is_empty() {
            att.insert("mrkdwn_in".into(), json!(c.mrkdwn_in));
        }
        msg.insert("attachments".into(), Json::Array(vec![Json::Object(att)]));
        Ok(Json::Object(msg))
    }
}

/// Block Kit layout: header, text section (or one line per alert), fields, context.
fn blocks(
    n: &Notification,
    title: &str,
    text: &str,
    link: &str,
    footer: &str,
    fields: &[Json],
) -> Vec<Json> {
    let mut out = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate_chars(title, 150).0, "emoji": true}}),
    ];
    let body = if text.trim().is_empty() {
        n.alerts
            .iter()
            .take(20)
            .map(|a| {
                let name = a.labels.get("alertname").map(String::as_str).unwrap_or("");
                let rest: Vec<String> = a
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "alertname")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let summary = a
                    .annotations
                    .get("summary")
                    .or(a.annotations.get("description"))
                    .map(|s| format!(" — {s}"))
                    .unwrap_or_default();
                let icon = if a.status == "firing" {
                    ":red_circle:"
                } else {
                    ":large_green_circle:"
                };
                format!("{icon} *{name}* `{}`{summary}", rest.join(" "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        text.to_string()
    };
    if !body.is_empty() {
        out.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate_chars(&body, 3000).0}}));
    }
    if !fields.is_empty() {
        let f: Vec<Json> = fields
            .iter()
            .take(10)
            .map(|f| {
                let t = f.get("title").and_then(Json::as_str).unwrap_or("");
                let v = f.get("value").and_then(Json::as_str).unwrap_or("");
                json!({"type": "mrkdwn", "text": truncate_chars(&format!("*{t}*\n{v}"), 2000).0})
            })
            .collect();
        out.push(json!({"type": "section", "fields": f}));
    }
    let mut ctx = Vec::new();
    if !link.is_empty() {
        ctx.push(json!({"type": "mrkdwn", "text": format!("<{link}|View in Sextant>")}));
    }
    if !footer.is_empty() {
        ctx.push(json!({"type": "mrkdwn", "text": footer}));
    }
    if !ctx.is_empty() {
        out.push(json!({"type": "context", "elements": ctx}));
    }
    out
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of debug output.
        f.debug_struct("Slack").finish_non_exhaustive()
    }
}

impl Receiver for Slack {
    fn integration(&self) -> &'static str {
        "slack"
    }
    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }
    fn notify<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let payload = self.payload(n)?;
            let url = self.url.get()?;
            let rb = self
                .client
                .request(reqwest::Method::POST, url.trim())?
                .json(&payload);
            let body = http::send(rb, "slack").await?;
            // chat.postMessage answers 200 with {"ok":false,"error":...}; webhooks answer "ok".
            if let Ok(j) = serde_json::from_slice::<Json>(&body) {
                if j.get("ok") == Some(&Json::Bool(false)) {
                    let e = j
                        .get("error")
                        .and_then(Json::as_str)
                        .unwrap_or("unknown error");
                    return Err(NotifyError {
                        retryable: false,
                        msg: format!("slack: error response: {e}"),
                    });
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receivers::template::tests::sample;

    fn ctx() -> BuildContext {
        BuildContext {
            external_url: "http://sextant:9595".into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults() {
        let c: SlackConfig = serde_json::from_str(r#"{"api_url":"http://hooks/x"}"#).unwrap();
        assert!(!c.send_resolved);
        assert_eq!(c.mrkdwn_in, ["fallback", "pretext", "text"]);
        assert!(!c.blocks && !c.short_fields && !c.link_names);
        let s = Slack::new(&c, &ctx()).unwrap();
        let p = s.payload(&sample()).unwrap();
        assert_eq!(p["username"], "Sextant");
        assert!(p.get("channel").is_none());
        let a = &p["attachments"][0];
        assert_eq!(a["title"], "[FIRING:1] HostDown (node P0)");
        assert_eq!(
            a["title_link"],
            "http://sextant:9595/#/alerts?receiver=team"
        );
        assert_eq!(a["color"], "danger");
        assert_eq!(a["text"], "");
        assert_eq!(
            a["fallback"],
            "[FIRING:1] HostDown (node P0) | http://sextant:9595/#/alerts?receiver=team"
        );
        assert!(a.get("pretext").is_none());
    }

    #[test]
    fn unknown_fields_and_missing_url() {
        let e =
            serde_json::from_str::<SlackConfig>(r#"{"api_url":"x","colour":"red"}"#).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let c: SlackConfig = serde_json::from_str(r#"{}"#).unwrap();
        assert!(Slack::new(&c, &ctx())
            .unwrap_err()
            .contains("slack_api_url"));
        let mut g = ctx();
        g.global.slack_api_url = Some("http://global/hook".into());
        assert!(Slack::new(&c, &g).is_ok());
        let bad: SlackConfig =
            serde_json::from_str(r#"{"api_url":"x","title":"{{ .Foo "}"#).unwrap();
        assert!(Slack::new(&bad, &ctx()).unwrap_err().contains("title"));
    }

    #[test]
    fn blocks_layout() {
        let c: SlackConfig = serde_json::from_str(r#"{"api_url":"http://h","blocks":true,"fields":[{"title":"sev","value":"{{ .CommonLabels.severity }}"}]}"#).unwrap();
        let p = Slack::new(&c, &ctx()).unwrap().payload(&sample()).unwrap();
        assert!(p.get("attachments").is_none());
        assert_eq!(p["blocks"][0]["type"], "header");
        assert_eq!(
            p["blocks"][0]["text"]["text"],
            "[FIRING:1] HostDown (node P0)"
        );
        assert!(p["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("*HostDown* `instance=a:9100"));
        assert_eq!(p["blocks"][2]["fields"][0]["text"], "*sev*\nP0");
        assert_eq!(p["blocks"][3]["type"], "context");
        assert_eq!(
            p["text"],
            "[FIRING:1] HostDown (node P0) | http://sextant:9595/#/alerts?receiver=team"
        );
    }
}
