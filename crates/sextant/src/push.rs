//! `sextant push`: sends the metrics on stdin to a push group of a running Sextant (or any
//! Pushgateway), so shell scripts and CI steps need no client library. The grouping key goes
//! into the URL path like the Prometheus client libraries put it there: values that are empty
//! or contain `/` as `@base64`, others percent-encoded.

use std::io::Read as _;

use anyhow::{bail, Context, Result};
use sextant_ingest::push::path::encode_base64;

use crate::{PushArgs, PushMethod};

pub fn run(a: PushArgs) -> Result<()> {
    let url = push_url(&a)?;
    let client = crate::client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let req = match a.method {
        PushMethod::Delete => client.delete(&url),
        m => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading metrics from stdin")?;
            let req = if matches!(m, PushMethod::Put) {
                client.put(&url)
            } else {
                client.post(&url)
            };
            req.header("Content-Type", "text/plain; version=0.0.4")
                .body(body)
        }
    };
    let resp = req.send().with_context(|| format!("sending to {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let msg = resp.text().unwrap_or_default();
        bail!("{url} answered {status}: {}", msg.trim());
    }
    Ok(())
}

/// `<server>/metrics/job/<job>/<label>/<value>...[?ttl=<ttl>]`.
fn push_url(a: &PushArgs) -> Result<String> {
    if a.job.is_empty() {
        bail!("--job must not be empty");
    }
    let mut url = a.server.trim_end_matches('/').to_string() + "/metrics";
    url.push_str(&segment("job", &a.job));
    for l in &a.labels {
        let Some((k, v)) = l.split_once('=') else {
            bail!("--label {l:?}: expected NAME=VALUE");
        };
        if !sextant_model::labels::is_valid_label_name(k) || k.starts_with("__") {
            bail!("--label {l:?}: {k:?} is not a valid label name");
        }
        if k == "job" {
            bail!("--label {l:?}: give the job with --job");
        }
        url.push_str(&segment(k, v));
    }
    if let Some(ttl) = &a.ttl {
        sextant_model::time::parse_duration(ttl)
            .map_err(|e| anyhow::anyhow!("--ttl {ttl:?}: {e}"))?;
        url.push_str("?ttl=");
        url.push_str(&percent_encode(ttl));
    }
    Ok(url)
}

pub(crate) fn segment(name: &str, value: &str) -> String {
    if value.is_empty() {
        format!("/{name}@base64/=")
    } else if value.contains('/') {
        format!("/{name}@base64/{}", encode_base64(value))
    } else {
        format!("/{name}/{}", percent_encode(value))
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(job: &str, labels: &[&str], ttl: Option<&str>) -> PushArgs {
        PushArgs {
            job: job.into(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            ttl: ttl.map(String::from),
            server: "http://h:1/".into(),
            method: PushMethod::Put,
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            push_url(&args(
                "ci",
                &["run=7", "path=/var/tmp", "e=", "n=a b"],
                Some("1h")
            ))
            .unwrap(),
            "http://h:1/metrics/job/ci/run/7/path@base64/L3Zhci90bXA/e@base64/=/n/a%20b?ttl=1h"
        );
        assert!(push_url(&args("ci", &["bad"], None)).is_err());
        assert!(push_url(&args("ci", &["__x=1"], None)).is_err());
        assert!(push_url(&args("ci", &[], Some("soon"))).is_err());
        assert!(push_url(&args("", &[], None)).is_err());
    }
}
