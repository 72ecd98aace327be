//! Notification templates rendered by Sextant and by Alertmanager's own `amtool template render`
//! (Debian's alertmanager, with its shipped default.tmpl) over the same data must be identical:
//! default templates, Alertmanager's methods (`.SortedPairs`, `.Remove`, `.Alerts.Firing`, …),
//! functions, time printing, user `define`s and HTML escaping. Skipped with a message when
//! amtool is missing unless `SEXTANT_REQUIRE_PEERS=1`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use sextant_alert::receivers::template::{data, Templates};
use sextant_alert::{Notification, NotifiedAlert};

const AM_DEFAULT: &str = "/usr/share/prometheus/alertmanager/default.tmpl";

fn labels(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn notification() -> Notification {
    let alert = |status: &str, instance: &str, ends: &str| NotifiedAlert {
        status: status.into(),
        labels: labels(&[
            ("alertname", "DiskFull"),
            ("instance", instance),
            ("job", "node"),
            ("severity", "P2"),
            ("mount", "/var"),
        ]),
        annotations: labels(&[
            ("summary", "disk > 85% on <host> & co"),
            ("runbook_url", "https://runbooks/disk?a=1+2"),
        ]),
        starts_at: "2026-11-23T10:00:00.25Z".into(),
        ends_at: ends.into(),
        generator_url: "http://sextant:9595/graph?g0.expr=disk".into(),
        fingerprint: format!("fp{instance}"),
    };
    Notification {
        version: "4".into(),
        group_key: "{}:{alertname=\"DiskFull\", job=\"node\"}".into(),
        truncated_alerts: 0,
        status: "firing".into(),
        receiver: "ops team".into(),
        group_labels: labels(&[("alertname", "DiskFull"), ("job", "node")]),
        common_labels: labels(&[
            ("alertname", "DiskFull"),
            ("job", "node"),
            ("severity", "P2"),
            ("mount", "/var"),
        ]),
        common_annotations: labels(&[("runbook_url", "https://runbooks/disk?a=1+2")]),
        external_url: "http://sextant.example:9595".into(),
        alerts: vec![
            alert("firing", "a:9100", "0001-01-01T00:00:00Z"),
            alert("firing", "b:9100", "0001-01-01T00:00:00Z"),
            alert("resolved", "c:9100", "2026-11-23T10:07:30Z"),
        ],
    }
}

const USER_TMPL: &str = r#"{{ define "custom.title" }}{{ .CommonLabels.severity | toUpper }} {{ .GroupLabels.alertname }} on {{ range .Alerts.Firing }}{{ .Labels.instance | reReplaceAll ":.*" "" }} {{ end }}{{ end }}
{{ define "custom.list" }}{{ range $i, $a := .Alerts }}{{ $i }}:{{ $a.Status | title }} {{ $a.Labels.SortedPairs.Names | join "," }} {{ $a.StartsAt }} {{ $a.EndsAt }}
{{ end }}{{ end }}
"#;

/// (type, template text) pairs rendered by both.
const CASES: &[(&str, &str)] = &[
    ("text", r#"{{ template "__subject" . }}"#),
    ("text", r#"{{ template "slack.default.title" . }}"#),
    ("text", r#"{{ template "slack.default.fallback" . }}"#),
    ("text", r#"{{ template "slack.default.titlelink" . }}"#),
    ("text", r#"{{ template "telegram.default.message" . }}"#),
    (
        "text",
        r#"{{ template "__text_alert_list" .Alerts.Resolved }}"#,
    ),
    (
        "text",
        r#"{{ template "custom.title" . }}|{{ template "custom.list" . }}"#,
    ),
    (
        "text",
        r#"{{ .CommonLabels.Remove .GroupLabels.Names | len }} {{ with .CommonLabels.Remove (stringSlice "mount" "job") }}{{ .SortedPairs.Values | join "/" }}{{ end }}"#,
    ),
    (
        "text",
        r#"{{ len .Alerts.Firing }} {{ len .Alerts.Resolved }} {{ .Status }} {{ .Receiver }} [{{ .CommonLabels.absent }}] {{ .ExternalURL }}"#,
    ),
    (
        "text",
        r#"{{ if match "^Disk" .GroupLabels.alertname }}m{{ end }} {{ toLower "ABC" }} {{ title "disk full" }} {{ stringSlice "x" "y" | join ", " }} {{ safeHtml "<b>" }}"#,
    ),
    (
        "text",
        r#"{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }};{{ end }} {{ range .GroupLabels.SortedPairs.Values }}{{ . }};{{ end }}"#,
    ),
    (
        "html",
        r#"{{ range .Alerts }}{{ .Annotations.summary }}|{{ end }}{{ .CommonLabels.mount }}"#,
    ),
    (
        "html",
        r#"{{ range .Alerts }}<a href="{{ .GeneratorURL }}" title='{{ .Labels.instance }}'>{{ .Annotations.summary }}</a>{{ end }}"#,
    ),
    (
        "html",
        r#"<a href="{{ .CommonAnnotations.runbook_url }}">{{ .Receiver }}</a> {{ .CommonAnnotations.runbook_url | safeHtml }} [{{ .CommonLabels.absent }}]"#,
    ),
    (
        "html",
        r#"<p>{{ template "__text_alert_list" .Alerts.Firing }}</p><title>{{ template "__subject" . }}</title>"#,
    ),
];

fn require_peers() -> bool {
    std::env::var("SEXTANT_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

fn amtool_render(dir: &Path, kind: &str, text: &str) -> String {
    let out = Command::new("amtool")
        .arg("template")
        .arg("render")
        .arg(format!("--template.glob={AM_DEFAULT}"))
        .arg(format!(
            "--template.glob={}",
            dir.join("user.tmpl").display()
        ))
        .arg(format!(
            "--template.data={}",
            dir.join("data.json").display()
        ))
        .arg(format!("--template.type={kind}"))
        .arg(format!("--template.text={text}"))
        .output()
        .expect("run amtool");
    assert!(
        out.status.success(),
        "amtool failed on {text}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn templates_render_like_alertmanager() {
    let have = Command::new("amtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have || !Path::new(AM_DEFAULT).exists() {
        assert!(
            !require_peers(),
            "amtool and {AM_DEFAULT} are required (SEXTANT_REQUIRE_PEERS=1)"
        );
        eprintln!(
            "skipping templates_render_like_alertmanager: amtool or {AM_DEFAULT} not installed"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let n = notification();
    std::fs::write(
        dir.path().join("data.json"),
        serde_json::to_vec(&n).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("user.tmpl"), USER_TMPL).unwrap();
    let ours = Templates::load(&["user.tmpl".to_string()], dir.path()).unwrap();
    for (kind, text) in CASES {
        let want = amtool_render(dir.path(), kind, text);
        let got = if *kind == "html" {
            ours.execute_html(text, &data(&n)).unwrap()
        } else {
            ours.execute(text, &data(&n)).unwrap()
        };
        assert_eq!(got, want, "template {text:?} ({kind})");
    }
}
