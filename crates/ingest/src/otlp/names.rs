//! OpenTelemetry → Prometheus names. OTel metric names allow dots, dashes and units in a separate
//! field; Prometheus names are `[a-zA-Z_:][a-zA-Z0-9_:]*` with the unit and `_total` as
//! suffixes. This follows the OpenTelemetry "Prometheus and OpenMetrics compatibility" spec as
//! Prometheus' own OTLP receiver implements it (`otlptranslator`, default strategy
//! `UnderscoreEscapingWithSuffixes`), so a dashboard written against Prometheus finds the same
//! series names here.

/// What kind of Prometheus metric an OTel metric becomes; decides `_total` and `_ratio`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// OTel Gauge: unit `1` becomes `_ratio`.
    Gauge,
    /// Monotonic Sum: gets `_total`.
    MonotonicCounter,
    /// Non-monotonic Sum (up-down counter): a gauge in Prometheus, but no `_ratio`.
    NonMonotonicCounter,
    /// Histogram, exponential histogram or summary (suffixes added per series elsewhere).
    Other,
}

/// UCUM units (as OTel semantic conventions use them) to Prometheus' plural words. Units not in
/// the table are used as written (after sanitising); `1` means "dimensionless" and adds nothing.
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The unit after `/` in a rate unit (`By/s` → `per_second`).
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Replaces every character outside `[a-zA-Z0-9:]` by `_`, collapses runs of `_` and trims a
/// leading `_` (Prometheus' `cleanUpUnit`).
fn clean_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_char(c) { c } else { '_' };
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
    }
    out
}

/// Splits an OTel unit into (main, per) Prometheus words, e.g. `By/s` → (`bytes`, `second`).
/// Annotations in braces (`{request}`) contribute nothing.
pub fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let per = parts.next().unwrap_or("").trim();
    let main = if main.is_empty() || main.contains(['{', '}']) {
        String::new()
    } else {
        clean_unit(unit_word(main))
    };
    let per = if per.is_empty() || per.contains(['{', '}']) {
        String::new()
    } else {
        clean_unit(per_unit_word(per))
    };
    (main, per)
}

/// The Prometheus unit for metadata: `seconds`, `bytes_per_second`, or empty.
pub fn prometheus_unit(unit: &str) -> String {
    match unit_suffixes(unit) {
        (m, p) if p.is_empty() => m,
        (m, p) if m.is_empty() => format!("per_{p}"),
        (m, p) => format!("{m}_per_{p}"),
    }
}

/// Builds the Prometheus metric family name of an OTel metric: name tokens split on anything
/// outside `[a-zA-Z0-9:]`, the unit (unless a token already equals it), `per_<unit>`, then
/// `total` for monotonic counters and `ratio` for gauges with unit `1`, each moved to the end
/// without doubling; joined by `_`; a leading digit gets a `_` prefix.
pub fn metric_name(name: &str, unit: &str, kind: NameKind) -> String {
    let mut tokens: Vec<&str> = name
        .split(|c: char| !is_metric_char(c))
        .filter(|t| !t.is_empty())
        .collect();
    let (main, per) = unit_suffixes(unit);
    let main_suffix = (!main.is_empty() && !tokens.contains(&main.as_str())).then_some(main);
    let per_suffix =
        (!per.is_empty() && !tokens.contains(&per.as_str())).then(|| format!("per_{per}"));
    if let Some(m) = &main_suffix {
        tokens.push(m);
    }
    if let Some(p) = &per_suffix {
        tokens.push(p);
    }
    if kind == NameKind::MonotonicCounter {
        tokens.retain(|t| *t != "total");
        tokens.push("total");
    }
    if unit == "1" && kind == NameKind::Gauge {
        tokens.retain(|t| *t != "ratio");
        tokens.push("ratio");
    }
    let joined = tokens.join("_");
    if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{joined}")
    } else {
        joined
    }
}

/// Builds a Prometheus label name from an attribute key: characters outside `[a-zA-Z0-9_]`
/// become `_`; a leading digit gets `key_`, a single leading `_` gets `key` (names starting
/// with `__` are kept as they are). `None` when nothing but underscores would remain.
pub fn label_name(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut out: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    if out.bytes().all(|b| b == b'_') {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use NameKind::*;

    /// Cases from the OTel compatibility spec and Prometheus' otlptranslator tests.
    #[test]
    fn metric_names() {
        let cases: &[(&str, &str, NameKind, &str)] = &[
            (
                "system.filesystem.usage",
                "By",
                Gauge,
                "system_filesystem_usage_bytes",
            ),
            (
                "http.server.duration",
                "ms",
                Other,
                "http_server_duration_milliseconds",
            ),
            (
                "http.server.request.duration",
                "s",
                Other,
                "http_server_request_duration_seconds",
            ),
            (
                "system.cpu.time",
                "s",
                MonotonicCounter,
                "system_cpu_time_seconds_total",
            ),
            ("requests", "{request}", MonotonicCounter, "requests_total"),
            (
                "requests_total",
                "{request}",
                MonotonicCounter,
                "requests_total",
            ),
            ("total.requests", "", MonotonicCounter, "requests_total"),
            (
                "system.network.io",
                "By/s",
                Gauge,
                "system_network_io_bytes_per_second",
            ),
            (
                "throughput",
                "By/s",
                MonotonicCounter,
                "throughput_bytes_per_second_total",
            ),
            ("cpu.utilization", "1", Gauge, "cpu_utilization_ratio"),
            ("cpu.utilization_ratio", "1", Gauge, "cpu_utilization_ratio"),
            ("queue.size", "1", NonMonotonicCounter, "queue_size"),
            ("events", "1", MonotonicCounter, "events_total"),
            ("rate", "1/s", Gauge, "rate_per_second"),
            ("speed", "m/s", Gauge, "speed_meters_per_second"),
            ("speed_meters", "m/s", Gauge, "speed_meters_per_second"),
            ("memory", "MiBy", Gauge, "memory_mebibytes"),
            ("temperature", "Cel", Gauge, "temperature_celsius"),
            ("disk.usage", "%", Gauge, "disk_usage_percent"),
            ("latency_seconds", "s", Other, "latency_seconds"),
            ("foo--bar__baz", "", Gauge, "foo_bar_baz"),
            (
                "2xx.responses",
                "",
                MonotonicCounter,
                "_2xx_responses_total",
            ),
            ("name:with:colons", "", Gauge, "name:with:colons"),
            ("custom", "widgets", Gauge, "custom_widgets"),
            ("custom", "foo bar", Gauge, "custom_foo_bar"),
            (
                "gen_ai.client.token.usage",
                "{token}",
                Other,
                "gen_ai_client_token_usage",
            ),
            ("unicode.métrique", "", Gauge, "unicode_m_trique"),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(
                metric_name(name, unit, *kind),
                *want,
                "{name} [{unit}] {kind:?}"
            );
        }
    }

    #[test]
    fn units_for_metadata() {
        assert_eq!(prometheus_unit("s"), "seconds");
        assert_eq!(prometheus_unit("By/s"), "bytes_per_second");
        assert_eq!(prometheus_unit("1/s"), "per_second");
        assert_eq!(prometheus_unit("{request}"), "");
        assert_eq!(prometheus_unit("1"), "");
    }

    #[test]
    fn label_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("service.name", Some("service_name")),
            (
                "http.response.status_code",
                Some("http_response_status_code"),
            ),
            ("0abc", Some("key_0abc")),
            ("_private", Some("key_private")),
            ("__reserved__", Some("__reserved__")),
            ("a-b/c", Some("a_b_c")),
            ("héllo", Some("h_llo")),
            ("...", None),
            ("", None),
        ];
        for (key, want) in cases {
            assert_eq!(label_name(key).as_deref(), *want, "{key}");
        }
    }
}
