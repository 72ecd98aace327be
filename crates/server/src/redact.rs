//! Secrets must not leave the server through its APIs. Alertmanager's `/api/v2/status` shows
//! the configuration; like Alertmanager (which marshals secret fields as `<secret>`), Sextant
//! blanks the values of every secret-bearing key in the text it returns, and error messages
//! of receivers have secret URLs cut out before they are shown.

/// Keys whose values are secrets in Alertmanager / Prometheus / Sextant configuration.
const SECRET_KEYS: &[&str] = &[
    "password",
    "auth_password",
    "smtp_auth_password",
    "auth_secret",
    "smtp_auth_secret",
    "credentials",
    "bearer_token",
    "token",
    "bot_token",
    "api_key",
    "api_secret",
    "api_url",
    "slack_api_url",
    "webhook_url",
    "opsgenie_api_key",
    "victorops_api_key",
    "wechat_api_secret",
    "routing_key",
    "service_key",
    "client_secret",
    "secret",
    "url",
];

/// `text` (YAML) with the value of every secret key replaced by `<secret>`. References that
/// are not secrets themselves (`${VAR}`, `*_file` paths) are kept.
pub fn redact_yaml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Indentation of a block scalar (`key: |`) being skipped.
    let mut skip_deeper_than: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(d) = skip_deeper_than {
            if line.trim().is_empty() || indent > d {
                continue;
            }
            skip_deeper_than = None;
        }
        let body = line.trim_start();
        let item = body.strip_prefix("- ").unwrap_or(body);
        let key_indent = indent + (body.len() - item.len());
        if let Some((key, value)) = item.split_once(':') {
            let key_clean = key.trim().trim_matches(|c| c == '"' || c == '\'');
            let v = value.trim();
            if SECRET_KEYS.contains(&key_clean) && !v.is_empty() && !is_reference(v) {
                out.push_str(&line[..line.len() - item.len()]);
                out.push_str(key);
                out.push_str(": <secret>\n");
                if v.starts_with('|') || v.starts_with('>') {
                    skip_deeper_than = Some(key_indent);
                }
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn is_reference(v: &str) -> bool {
    let v = v.trim_matches(|c| c == '"' || c == '\'');
    v.starts_with("${") && v.ends_with('}') && !v[2..v.len() - 1].contains(['$', '{', '}'])
}

/// An error message with URLs' paths, queries and userinfo cut (Slack / Teams / Discord
/// webhook URLs carry their secret in the path).
pub fn redact_urls(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>'))
            .unwrap_or(tail.len());
        let url = &tail[..end];
        let authority = url.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or(authority);
        out.push_str(host);
        if url.len() > authority.len() {
            out.push_str("/<secret>");
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_secret_values_only() {
        let y = "receivers:\n- name: s\n  slack_configs:\n  - api_url: https://hooks.slack.com/services/T/B/XYZ\n    channel: '#a'\n  webhook_configs:\n  - url: http://h/x\n    http_config:\n      basic_auth:\n        username: u\n        password: hunter2\n      authorization:\n        credentials_file: /run/s\n  email_configs:\n  - auth_password: ${SMTP_PW}\n    text: |\n      hi\n    auth_secret: |\n      line1\n      line2\n    to: a@b\n";
        let r = redact_yaml(y);
        for s in ["XYZ", "hunter2", "line1", "line2", "http://h/x"] {
            assert!(!r.contains(s), "{s} in {r}");
        }
        for s in [
            "channel: '#a'",
            "username: u",
            "credentials_file: /run/s",
            "${SMTP_PW}",
            "to: a@b",
            "      hi",
        ] {
            assert!(r.contains(s), "{s} missing in {r}");
        }
        assert!(r.contains("  - api_url: <secret>\n"), "{r}");
    }

    #[test]
    fn urls_in_messages() {
        assert_eq!(
            redact_urls("error sending request for url (https://hooks.slack.com/services/T/B/XYZ)"),
            "error sending request for url (https://hooks.slack.com/<secret>)"
        );
        assert_eq!(redact_urls("http://u:p@h:1"), "http://h:1");
        assert_eq!(redact_urls("no url"), "no url");
    }
}
