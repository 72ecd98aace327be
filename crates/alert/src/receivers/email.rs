//! `email_configs`: renders Alertmanager's email (headers `Subject`/`To`/`From` plus any custom
//! header, all templated; an HTML part defaulting to `email.default.html`, an optional text
//! part) and delivers it over SMTP with lettre + rustls, the way Alertmanager connects: implicit
//! TLS when the smarthost port is 465, otherwise a plain connection upgraded with STARTTLS when
//! `require_tls` (the default) — which then must be offered — and left plain when
//! `require_tls: false`. AUTH (PLAIN/LOGIN) is used when `auth_username` is set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Identity, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::http::TlsConfig;
use super::template::data;
use super::{check_tmpl, render, render_html, BuildContext, Secret, Templates};
use crate::{BoxFuture, Notification, NotifyError, Receiver};

fn d_html() -> Option<String> {
    Some(r#"{{ template "email.default.html" . }}"#.into())
}

/// One `email_configs` entry; unset fields fall back to the `global.smtp_*` settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Default false.
    #[serde(default)]
    pub send_resolved: bool,
    /// Recipient address(es), comma-separated; templated.
    pub to: String,
    pub from: Option<String>,
    /// EHLO name; default `localhost`.
    pub hello: Option<String>,
    /// `host:port`.
    pub smarthost: Option<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    pub auth_password_file: Option<PathBuf>,
    /// CRAM-MD5 secret: not supported (lettre offers PLAIN and LOGIN).
    pub auth_secret: Option<String>,
    /// Accepted for compatibility but not sent: lettre's PLAIN has no authorization identity.
    pub auth_identity: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "d_html")]
    pub html: Option<String>,
    pub text: Option<String>,
    pub require_tls: Option<bool>,
    #[serde(default)]
    pub tls_config: TlsConfig,
}

/// The email integration.
pub struct Email {
    cfg: EmailConfig,
    from: String,
    host: String,
    port: u16,
    hello: String,
    require_tls: bool,
    user: Option<String>,
    password: Option<Secret>,
    headers: BTreeMap<String, String>,
    templates: Arc<Templates>,
}

fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (h, p) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("smarthost {s:?}: missing port (host:port)"))?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = p
        .parse()
        .map_err(|_| format!("smarthost {s:?}: bad port"))?;
    if h.is_empty() {
        return Err(format!("smarthost {s:?}: missing host"));
    }
    Ok((h.to_string(), port))
}

/// Canonical MIME header capitalisation (`content-type` → `Content-Type`), as Go does.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A unique `Message-ID`: time, process id and a counter at the HELO name.
fn message_id(hello: &str) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("<{nanos}.{}.{seq}@{hello}>", std::process::id())
}

fn nerr(retryable: bool, msg: String) -> NotifyError {
    NotifyError { retryable, msg }
}

impl Email {
    pub fn new(c: &EmailConfig, ctx: &BuildContext) -> Result<Self, String> {
        let g = &ctx.global;
        if c.to.trim().is_empty() {
            return Err("missing to address".into());
        }
        let from = c
            .from
            .clone()
            .or(g.smtp_from.clone())
            .ok_or("no from address and no global smtp_from")?;
        let smarthost = c
            .smarthost
            .clone()
            .or(g.smtp_smarthost.clone())
            .ok_or("no smarthost and no global smtp_smarthost")?;
        let (host, port) = split_host_port(&smarthost)?;
        if c.auth_secret.is_some() {
            return Err("auth_secret (CRAM-MD5) is not supported; use auth_password".into());
        }
        let user = c.auth_username.clone().or(g.smtp_auth_username.clone());
        let password = match Secret::from_fields(
            c.auth_password.as_deref(),
            c.auth_password_file.as_ref(),
            "auth_password",
        )? {
            Some(p) => Some(p),
            None => Secret::from_fields(
                g.smtp_auth_password.as_deref(),
                g.smtp_auth_password_file.as_ref(),
                "global.smtp_auth_password",
            )?,
        };
        if let Some(p) = &password {
            p.check()?;
        }
        if user.is_some() && password.is_none() {
            return Err(
                "auth_username is set but neither auth_password nor auth_password_file".into(),
            );
        }
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &c.headers {
            let k = canonical(k);
            if headers.contains_key(&k) {
                return Err(format!("duplicate header {k:?}"));
            }
            HeaderName::new_from_ascii(k.clone())
                .map_err(|_| format!("invalid header name {k:?}"))?;
            headers.insert(k, v.clone());
        }
        headers
            .entry("Subject".into())
            .or_insert_with(|| r#"{{ template "email.default.subject" . }}"#.into());
        headers.entry("To".into()).or_insert_with(|| c.to.clone());
        headers.entry("From".into()).or_insert_with(|| from.clone());
        let t = &ctx.templates;
        for (k, v) in &headers {
            check_tmpl(t, v, &format!("headers.{k}"))?;
        }
        check_tmpl(t, &c.to, "to")?;
        check_tmpl(t, &from, "from")?;
        if let Some(h) = &c.html {
            check_tmpl(t, h, "html")?;
        }
        if let Some(x) = &c.text {
            check_tmpl(t, x, "text")?;
        }
        if let (Some(cf), None) | (None, Some(cf)) =
            (&c.tls_config.cert_file, &c.tls_config.key_file)
        {
            return Err(format!(
                "tls_config: cert_file and key_file must be set together ({} alone)",
                cf.display()
            ));
        }
        Ok(Email {
            cfg: c.clone(),
            from,
            host,
            port,
            hello: c
                .hello
                .clone()
                .or(g.smtp_hello.clone())
                .unwrap_or_else(|| "localhost".into()),
            require_tls: c.require_tls.or(g.smtp_require_tls).unwrap_or(true),
            user,
            password,
            headers,
            templates: ctx.templates.clone(),
        })
    }

    fn tls_params(&self) -> Result<TlsParameters, NotifyError> {
        let tc = &self.cfg.tls_config;
        let domain = tc.server_name.clone().unwrap_or_else(|| self.host.clone());
        let mut b =
            TlsParameters::builder(domain).dangerous_accept_invalid_certs(tc.insecure_skip_verify);
        if let Some(ca) = &tc.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| nerr(false, format!("tls_config.ca_file {}: {e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| nerr(false, format!("tls_config.ca_file: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        if let (Some(c), Some(k)) = (&tc.cert_file, &tc.key_file) {
            let cert = std::fs::read(c)
                .map_err(|e| nerr(false, format!("tls_config.cert_file {}: {e}", c.display())))?;
            let key = std::fs::read(k)
                .map_err(|e| nerr(false, format!("tls_config.key_file {}: {e}", k.display())))?;
            let id = Identity::from_pem(&cert, &key)
                .map_err(|e| nerr(false, format!("tls_config client certificate: {e}")))?;
            b = b.identify_with(id);
        }
        b.build_rustls()
            .map_err(|e| nerr(false, format!("tls_config: {e}")))
    }

    /// Renders the message and its envelope.
    pub fn message(&self, n: &Notification) -> Result<(Envelope, Message), NotifyError> {
        let text_data = data(n);
        let t = &self.templates;
        let rendered_headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| render(t, v, &text_data, &format!("headers.{k}")).map(|r| (k.clone(), r)))
            .collect::<Result<_, _>>()?;
        let bad = |what: &str, v: &str, e: &dyn std::fmt::Display| {
            nerr(false, format!("email: {what} {v:?}: {e}"))
        };
        let to_env = render(t, &self.cfg.to, &text_data, "to")?;
        let to_env: Mailboxes = to_env.parse().map_err(|e| bad("to", &to_env, &e))?;
        let from_env = render(t, &self.from, &text_data, "from")?;
        let from_env: Mailbox = from_env.parse().map_err(|e| bad("from", &from_env, &e))?;

        let mut b = Message::builder().message_id(Some(message_id(&self.hello)));
        for (k, v) in &rendered_headers {
            match k.as_str() {
                "From" => {
                    let m: Mailbox = v.parse().map_err(|e| bad("From header", v, &e))?;
                    b = b.from(m);
                }
                "To" => {
                    let ms: Mailboxes = v.parse().map_err(|e| bad("To header", v, &e))?;
                    for m in ms {
                        b = b.to(m);
                    }
                }
                "Subject" => b = b.subject(v.clone()),
                _ => {
                    let name = HeaderName::new_from_ascii(k.clone())
                        .map_err(|_| bad("header name", k, &"invalid"))?;
                    b = b.raw_header(HeaderValue::new(name, v.clone()));
                }
            }
        }
        let html = match &self.cfg.html {
            Some(h) if !h.is_empty() => Some(render_html(t, h, &text_data, "html")?),
            _ => None,
        };
        let text = match &self.cfg.text {
            Some(x) if !x.is_empty() => Some(render(t, x, &text_data, "text")?),
            _ => None,
        };
        let msg = match (text, html) {
            (Some(tx), Some(h)) => b.multipart(MultiPart::alternative_plain_html(tx, h)),
            (None, Some(h)) => {
                b.singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(h))
            }
            (Some(tx), None) => b.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(tx),
            ),
            (None, None) => {
                return Err(nerr(
                    false,
                    "email: neither html nor text is configured".into(),
                ))
            }
        }
        .map_err(|e| nerr(false, format!("email: building message: {e}")))?;
        let env = Envelope::new(
            Some(from_env.email),
            to_env.iter().map(|m| m.email.clone()).collect(),
        )
        .map_err(|e| nerr(false, format!("email: envelope: {e}")))?;
        Ok((env, msg))
    }
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of debug output.
        f.debug_struct("Email").finish_non_exhaustive()
    }
}

impl Receiver for Email {
    fn integration(&self) -> &'static str {
        "email"
    }
    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }
    fn notify<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let (env, msg) = self.message(n)?;
            let tls = if self.port == 465 {
                Tls::Wrapper(self.tls_params()?)
            } else if self.require_tls {
                Tls::Required(self.tls_params()?)
            } else {
                Tls::None
            };
            let mut tb = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
                .port(self.port)
                .tls(tls)
                .hello_name(ClientId::Domain(self.hello.clone()))
                .timeout(Some(Duration::from_secs(30)));
            if let (Some(u), Some(p)) = (&self.user, &self.password) {
                tb = tb.credentials(Credentials::new(u.clone(), p.get()?));
            }
            let transport = tb.build();
            match transport.send_raw(&env, &msg.formatted()).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let retryable = !e.is_permanent();
                    let mut msg = format!("email: sending to {}:{}: {e}", self.host, self.port);
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        msg.push_str(&format!(": {s}"));
                        src = s.source();
                    }
                    if let Some(Ok(p)) = self.password.as_ref().map(|p| p.resolve()) {
                        if !p.is_empty() {
                            msg = msg.replace(&p, "<secret>");
                        }
                    }
                    Err(nerr(retryable, msg))
                }
            }
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
    fn defaults_and_globals() {
        let c: EmailConfig = serde_json::from_str(r#"{"to":"ops@example.org"}"#).unwrap();
        assert!(!c.send_resolved);
        assert!(c.html.as_deref().unwrap().contains("email.default.html"));
        assert!(Email::new(&c, &ctx()).unwrap_err().contains("smtp_from"));
        let mut g = ctx();
        g.global.smtp_from = Some("sextant@example.org".into());
        g.global.smtp_smarthost = Some("mail.example.org:587".into());
        let e = Email::new(&c, &g).unwrap();
        assert!(e.require_tls);
        assert_eq!(
            (e.host.as_str(), e.port, e.hello.as_str()),
            ("mail.example.org", 587, "localhost")
        );
        let (env, msg) = e.message(&sample()).unwrap();
        assert_eq!(env.to().len(), 1);
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            raw.contains("Subject: [FIRING:1] HostDown (node P0)"),
            "{raw}"
        );
        assert!(raw.contains("To: ops@example.org"), "{raw}");
        assert!(raw.contains("Content-Type: text/html"), "{raw}");
        assert!(raw.contains("\r\nDate: "), "{raw}");
        assert!(raw.contains("Message-ID: <"), "{raw}");
    }

    #[test]
    fn validation() {
        let e = serde_json::from_str::<EmailConfig>(r#"{"to":"a@b","smtp":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("smtp"), "{e}");
        let c: EmailConfig =
            serde_json::from_str(r#"{"to":"a@b","from":"c@d","smarthost":"nohost"}"#).unwrap();
        assert!(Email::new(&c, &ctx()).unwrap_err().contains("port"));
        let c: EmailConfig = serde_json::from_str(
            r#"{"to":"a@b","from":"c@d","smarthost":"h:25","auth_secret":"s"}"#,
        )
        .unwrap();
        assert!(Email::new(&c, &ctx()).unwrap_err().contains("CRAM-MD5"));
        let c: EmailConfig = serde_json::from_str(
            r#"{"to":"a@b","from":"c@d","smarthost":"h:25","auth_username":"u"}"#,
        )
        .unwrap();
        assert!(Email::new(&c, &ctx())
            .unwrap_err()
            .contains("auth_password"));
        let c: EmailConfig = serde_json::from_str(r#"{"to":"a@b","from":"c@d","smarthost":"h:25","headers":{"subject":"x","Subject":"y"}}"#).unwrap();
        assert!(Email::new(&c, &ctx()).unwrap_err().contains("duplicate"));
    }

    #[test]
    fn custom_headers_and_text_part() {
        let c: EmailConfig = serde_json::from_str(
            r#"{"to":"a@example.org, b@example.org","from":"Sextant <s@example.org>","smarthost":"h:25","require_tls":false,
                "headers":{"subject":"{{ .CommonLabels.severity }}: {{ .CommonLabels.alertname }}","X-Team":"{{ .Receiver }}"},
                "text":"{{ template \"email.default.text\" . }}"}"#,
        )
        .unwrap();
        let e = Email::new(&c, &ctx()).unwrap();
        assert!(!e.require_tls);
        let (env, msg) = e.message(&sample()).unwrap();
        assert_eq!(env.to().len(), 2);
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(raw.contains("Subject: P0: HostDown"), "{raw}");
        assert!(raw.contains("X-Team: team"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert_eq!(canonical("x-my-HEADER"), "X-My-Header");
    }
}
