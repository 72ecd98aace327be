//! Scheduled reports: the `reports:` section of sextant.yml. Each entry names a schedule
//! (`every: 24h`, or `at: "08:00"` in a `time_zone`), the period it covers, a format and an
//! Alertmanager receiver of the same file. `sextant serve` runs one thread that builds each
//! report when it is due (querying its own HTTP API, like `sextant report`) and hands it to the
//! receiver's integrations as a one-alert notification (`alertname="SextantReport"`), so every
//! receiver type — webhook, Slack, Telegram, email, issue trackers — can deliver it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sextant_alert::receivers::ReceiverConfig;
use sextant_alert::tz::Zone;
use sextant_alert::{Notification, NotifiedAlert, Receiver};
use sextant_model::time::{format_rfc3339_ms, now_ms, parse_duration};

use super::render::{render, Format};
use super::{generate, Options, Source};

/// One `reports:` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// Unique name; the `report` label of the notification.
    pub name: String,
    /// Send every this long (Prometheus duration), starting one interval after start-up.
    #[serde(default)]
    pub every: Option<String>,
    /// Send daily at this wall-clock time (`HH:MM`) in `time_zone`.
    #[serde(default)]
    pub at: Option<String>,
    /// IANA time zone of `at` (default UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Period the report covers (default: `every`, or 24h with `at`).
    #[serde(default)]
    pub range: Option<String>,
    /// Default `text` (chat); use `html` for email.
    #[serde(default)]
    pub format: Option<Format>,
    /// Name of a receiver in this file's `receivers:`.
    pub receiver: String,
    /// Report title (default `Sextant report: <name>`).
    #[serde(default)]
    pub title: Option<String>,
}

/// When a report is due.
#[derive(Clone, Debug)]
pub enum When {
    Every(Duration),
    /// Seconds after local midnight, in the zone.
    Daily(i64, Zone),
}

/// A validated `reports:` entry.
#[derive(Clone, Debug)]
pub struct Scheduled {
    pub name: String,
    pub when: When,
    pub range: Duration,
    pub range_text: String,
    pub format: Format,
    pub receiver: String,
    pub title: String,
}

impl ReportConfig {
    /// Checks the entry; the error names the field. `receivers` are the names defined in the
    /// configuration.
    pub fn validate(&self, receivers: &[&str]) -> Result<Scheduled, String> {
        if self.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        let when = match (&self.every, &self.at) {
            (Some(_), Some(_)) => return Err("every and at: set only one of them".into()),
            (None, None) => return Err("one of every or at is required".into()),
            (Some(e), None) => {
                if self.time_zone.is_some() {
                    return Err("time_zone: only meaningful with at".into());
                }
                let d = parse_duration(e).map_err(|e| format!("every: {e}"))?;
                if d < Duration::from_secs(1) {
                    return Err("every: must be at least 1s".into());
                }
                When::Every(d)
            }
            (None, Some(at)) => {
                let (h, m) = at
                    .split_once(':')
                    .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
                    .filter(|(h, m)| (0..24).contains(h) && (0..60).contains(m))
                    .ok_or_else(|| format!("at: {at:?} is not a time of day like \"08:00\""))?;
                let zone = match &self.time_zone {
                    Some(z) => Zone::load(z).map_err(|e| format!("time_zone: {e}"))?,
                    None => Zone::utc(),
                };
                When::Daily(h * 3600 + m * 60, zone)
            }
        };
        let range_text = match (&self.range, &when) {
            (Some(r), _) => r.clone(),
            (None, When::Every(_)) => self.every.clone().unwrap_or_default(),
            (None, When::Daily(..)) => "24h".to_string(),
        };
        let range = parse_duration(&range_text).map_err(|e| format!("range: {e}"))?;
        if range < Duration::from_secs(1) {
            return Err("range: must be at least 1s".into());
        }
        if !receivers.contains(&self.receiver.as_str()) {
            return Err(format!(
                "receiver: {:?} is not defined in receivers",
                self.receiver
            ));
        }
        Ok(Scheduled {
            name: self.name.clone(),
            when,
            range,
            range_text,
            format: self.format.unwrap_or(Format::Text),
            receiver: self.receiver.clone(),
            title: self
                .title
                .clone()
                .unwrap_or_else(|| format!("Sextant report: {}", self.name)),
        })
    }
}

impl Scheduled {
    /// The first due time strictly after `after_ms`.
    pub fn next_after(&self, after_ms: i64, started_ms: i64) -> i64 {
        match &self.when {
            When::Every(d) => {
                let step = (d.as_millis() as i64).max(1);
                let n = (after_ms - started_ms).div_euclid(step) + 1;
                started_ms + n * step
            }
            When::Daily(sec, zone) => {
                let after = after_ms.div_euclid(1000);
                let local = after + zone.offset_at(after) as i64;
                let mut due_local = local.div_euclid(86_400) * 86_400 + sec;
                if due_local <= local {
                    due_local += 86_400;
                }
                // Local wall-clock time to UTC with the offset in force then.
                let guess = due_local - zone.offset_at(after) as i64;
                let utc = due_local - zone.offset_at(guess) as i64;
                let utc = if utc <= after { utc + 86_400 } else { utc };
                utc * 1000
            }
        }
    }
}

/// Builds a receiver's integrations.
pub type BuildReceiver =
    Arc<dyn Fn(&ReceiverConfig) -> Result<Vec<Box<dyn Receiver>>, String> + Send + Sync>;

/// The notification a report is delivered as: one firing alert `SextantReport{report=<name>}`
/// whose `summary` annotation is the text summary and `description` the report in its format.
pub fn notification(
    s: &Scheduled,
    summary: &str,
    body: &str,
    external_url: &str,
    now: i64,
) -> Notification {
    let labels: BTreeMap<String, String> = [
        ("alertname".to_string(), "SextantReport".to_string()),
        ("report".to_string(), s.name.clone()),
    ]
    .into();
    let annotations: BTreeMap<String, String> = [
        ("summary".to_string(), summary.to_string()),
        ("description".to_string(), body.to_string()),
        (
            "format".to_string(),
            format!("{:?}", s.format).to_lowercase(),
        ),
        ("title".to_string(), s.title.clone()),
    ]
    .into();
    Notification {
        version: "4".into(),
        group_key: format!("{{}}:{{report=\"{}\"}}", s.name),
        truncated_alerts: 0,
        status: "firing".into(),
        receiver: s.receiver.clone(),
        group_labels: [("report".to_string(), s.name.clone())].into(),
        common_labels: labels.clone(),
        common_annotations: annotations.clone(),
        external_url: external_url.to_string(),
        alerts: vec![NotifiedAlert {
            status: "firing".into(),
            labels,
            annotations,
            starts_at: format_rfc3339_ms(now),
            ends_at: "0001-01-01T00:00:00Z".into(),
            generator_url: format!("{external_url}/"),
            fingerprint: format!("{:016x}", fnv(&s.name)),
        }],
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Builds and delivers one report now; errors are returned for logging.
pub fn run_once(
    s: &Scheduled,
    src: &dyn Source,
    external_url: &str,
    receiver: &ReceiverConfig,
    build: &BuildReceiver,
    rt: &tokio::runtime::Handle,
) -> Result<(), String> {
    let now = now_ms();
    let report = generate(
        src,
        &Options {
            range: s.range,
            range_text: s.range_text.clone(),
            end_ms: now,
            title: s.title.clone(),
            server: external_url.to_string(),
        },
    )
    .map_err(|e| e.msg)?;
    let summary = render(&report, Format::Text);
    let body = render(&report, s.format);
    let n = notification(s, &summary, &body, external_url, now);
    let integrations = build(receiver)?;
    let mut errors = Vec::new();
    for i in &integrations {
        // One retry for retryable failures; the next scheduled run is the next chance.
        let mut res = rt.block_on(i.notify(&n));
        if let Err(e) = &res {
            if e.retryable {
                std::thread::sleep(Duration::from_secs(5));
                res = rt.block_on(i.notify(&n));
            }
        }
        if let Err(e) = res {
            errors.push(format!("{}: {}", i.integration(), e.msg));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Starts the scheduler thread: `src` answers the report's queries (in the server: in-process,
/// so TLS and auth on the listener do not matter), `receivers` the configured receivers (by name).
pub fn start(
    reports: Vec<Scheduled>,
    receivers: Vec<ReceiverConfig>,
    src: Box<dyn Source + Send>,
    external_url: String,
    build: BuildReceiver,
    rt: tokio::runtime::Handle,
) -> std::io::Result<()> {
    if reports.is_empty() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("reports".into())
        .spawn(move || {
            let started = now_ms();
            let mut due: Vec<i64> = reports
                .iter()
                .map(|r| r.next_after(started, started))
                .collect();
            loop {
                let now = now_ms();
                let next = due.iter().copied().min().unwrap_or(now + 60_000);
                if next > now {
                    std::thread::sleep(Duration::from_millis((next - now).min(60_000) as u64));
                    continue;
                }
                for (i, r) in reports.iter().enumerate() {
                    if due[i] > now {
                        continue;
                    }
                    due[i] = r.next_after(now, started);
                    let Some(rc) = receivers.iter().find(|c| c.name == r.receiver) else {
                        tracing::error!(report = %r.name, receiver = %r.receiver, "report receiver not found");
                        continue;
                    };
                    match run_once(r, src.as_ref(), &external_url, rc, &build, &rt) {
                        Ok(()) => tracing::info!(report = %r.name, receiver = %r.receiver, "report sent"),
                        Err(e) => tracing::error!(report = %r.name, receiver = %r.receiver, error = %e, "report not delivered"),
                    }
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> Result<Scheduled, String> {
        let c: ReportConfig = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        c.validate(&["chat"])
    }

    #[test]
    fn validation_names_the_field() {
        assert!(cfg("name: a\nevery: 1h\nreceiver: chat\n").is_ok());
        assert!(cfg("name: a\nevery: 1h\nreceiver: nope\n")
            .unwrap_err()
            .contains("receiver"));
        assert!(cfg("name: a\nreceiver: chat\n")
            .unwrap_err()
            .contains("every or at"));
        assert!(cfg("name: a\nat: \"25:00\"\nreceiver: chat\n")
            .unwrap_err()
            .contains("at:"));
        assert!(
            cfg("name: a\nat: \"08:00\"\ntime_zone: Mars/Base\nreceiver: chat\n")
                .unwrap_err()
                .contains("time_zone")
        );
        assert!(cfg("name: a\nevery: 1h\nrange: x\nreceiver: chat\n")
            .unwrap_err()
            .contains("range"));
        assert!(cfg("name: a\nevery: 1h\nreceiver: chat\nformats: md\n")
            .unwrap_err()
            .contains("formats"));
        let s = cfg("name: a\nevery: 1h\nreceiver: chat\nformat: html\n").unwrap();
        assert_eq!(s.format, Format::Html);
        assert_eq!(s.range, Duration::from_secs(3600));
    }

    #[test]
    fn html_report_passes_the_email_template_with_safe_html() {
        use sextant_alert::receivers::template::{data, Templates};
        let s = cfg("name: a\nevery: 1h\nreceiver: chat\nformat: html\n").unwrap();
        let n = notification(&s, "summary", "<h1>x</h1>", "http://x", 0);
        assert_eq!(n.common_annotations["format"], "html");
        let t = Templates::from_sources(&[]).unwrap();
        let d = data(&n);
        assert_eq!(
            t.execute_html("{{ .CommonAnnotations.description | safeHtml }}", &d)
                .unwrap(),
            "<h1>x</h1>"
        );
        // Without safeHtml, html/template escapes it (as Alertmanager does).
        assert!(!t
            .execute_html("{{ .CommonAnnotations.description }}", &d)
            .unwrap()
            .contains("<h1>"));
    }

    #[test]
    fn next_due_times() {
        let s = cfg("name: a\nevery: 10s\nreceiver: chat\n").unwrap();
        assert_eq!(s.next_after(1_000, 1_000), 11_000);
        assert_eq!(s.next_after(11_000, 1_000), 21_000);
        let d = cfg("name: a\nat: \"08:00\"\nreceiver: chat\n").unwrap();
        // 2026-01-01T00:00:00Z = 1767225600.
        assert_eq!(
            d.next_after(1_767_225_600_000, 0),
            (1_767_225_600 + 8 * 3600) * 1000
        );
        assert_eq!(
            d.next_after((1_767_225_600 + 9 * 3600) * 1000, 0),
            (1_767_225_600 + 32 * 3600) * 1000
        );
        let fixed = Scheduled {
            when: When::Daily(8 * 3600, Zone::fixed("X", 3600)),
            ..d
        };
        // 08:00 at UTC+1 is 07:00Z.
        assert_eq!(
            fixed.next_after(1_767_225_600_000, 0),
            (1_767_225_600 + 7 * 3600) * 1000
        );
    }
}
