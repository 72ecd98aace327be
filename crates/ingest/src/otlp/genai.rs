//! OpenTelemetry GenAI metrics, normalised. Instrumentation libraries emit LLM metrics in
//! several generations of the GenAI semantic conventions (`gen_ai.system` before
//! `gen_ai.provider.name`, token types `prompt`/`completion` before `input`/`output`, token
//! usage as a histogram or as the newer `gen_ai.client.inference.usage.*` counters, agent and
//! tool durations as their own metrics) and in vendor forms such as OpenLLMetry's
//! `llm.openai.chat_completions.tokens`. Dashboards and cost rules should need one query per
//! question, so before translation every recognised GenAI metric is rewritten onto one set of
//! names and attributes (documented in docs/genai.md): the standard, Prometheus-compatible
//! names of the current conventions (`gen_ai_client_token_usage_sum`,
//! `gen_ai_client_operation_duration_seconds_bucket`, ...) with the attributes
//! `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
//! `gen_ai.agent.name`, `gen_ai.tool.name`, `gen_ai.operation.name`, `gen_ai.token.type` and
//! `error.type`. Metrics that are not GenAI metrics are never touched.

use super::proto::common::v1::{any_value, AnyValue, KeyValue};
use super::proto::metrics::v1 as m;

/// Family of the counter form of token usage: a running total of tokens is exactly what
/// the histogram's `_sum` series holds, so both forms answer the same query.
pub const TOKEN_USAGE_SUM: &str = "gen_ai_client_token_usage_sum";

const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
const OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
const TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";

const PROVIDER: &str = "gen_ai.provider.name";
const REQUEST_MODEL: &str = "gen_ai.request.model";
const RESPONSE_MODEL: &str = "gen_ai.response.model";
const OPERATION: &str = "gen_ai.operation.name";
const TOKEN_TYPE: &str = "gen_ai.token.type";

/// Older or vendor attribute keys and the standard key they are renamed to. When both are
/// present the standard one wins and the old one is dropped.
const ATTRIBUTE_ALIASES: &[(&str, &str)] = &[
    ("gen_ai.system", PROVIDER),
    ("llm.system", PROVIDER),
    ("llm.provider", PROVIDER),
    ("llm.vendor", PROVIDER),
    ("llm.request.model", REQUEST_MODEL),
    ("llm.model_name", REQUEST_MODEL),
    ("llm.response.model", RESPONSE_MODEL),
    ("llm.usage.token_type", TOKEN_TYPE),
    ("llm.token.type", TOKEN_TYPE),
    ("llm.request.type", OPERATION),
    ("gen_ai.agent", "gen_ai.agent.name"),
    ("gen_ai.tool", "gen_ai.tool.name"),
];

/// Durations whose unit may be missing in some emitters; they are in seconds by convention.
const SECONDS_METRICS: &[&str] = &[
    OPERATION_DURATION,
    TIME_TO_FIRST_CHUNK,
    "gen_ai.client.operation.time_per_output_chunk",
    "gen_ai.server.request.duration",
    "gen_ai.server.time_to_first_token",
    "gen_ai.server.time_per_output_token",
];

/// What a recognised metric becomes.
struct Rule {
    /// New OTel metric name (translated by the usual rules), if renamed.
    rename: Option<&'static str>,
    /// Unit to use when the metric has none.
    default_unit: Option<&'static str>,
    /// Attributes set on every point unless already present.
    defaults: Vec<(&'static str, String)>,
    /// Prometheus family to use instead of the translated name (the counter form of token
    /// usage, when it is a monotonic sum).
    counter_family: Option<&'static str>,
}

impl Rule {
    fn attrs_only() -> Rule {
        Rule {
            rename: None,
            default_unit: None,
            defaults: Vec::new(),
            counter_family: None,
        }
    }
}

/// `gen_ai.client.inference.usage.<kind>` counters of the newer conventions → token type.
fn inference_usage_type(name: &str) -> Option<&'static str> {
    let kind = name.strip_prefix("gen_ai.client.inference.usage.")?;
    Some(match kind {
        "input_tokens" => "input",
        "output_tokens" => "output",
        "cache_read.input_tokens" => "cache_read",
        "cache_write.input_tokens" | "cache_creation.input_tokens" => "cache_write",
        "reasoning.output_tokens" => "reasoning",
        _ => return None,
    })
}

/// OpenLLMetry's operation words in `llm.<vendor>.<operation>.<what>` → `gen_ai.operation.name`.
fn openllmetry_operation(op: &str) -> &str {
    match op {
        "chat_completions" | "chat" => "chat",
        "completions" | "completion" => "text_completion",
        "embeddings" | "embedding" => "embeddings",
        other => other,
    }
}

fn rule_for(name: &str) -> Option<Rule> {
    if let Some(tt) = inference_usage_type(name) {
        return Some(Rule {
            rename: Some(TOKEN_USAGE),
            default_unit: None,
            defaults: vec![(TOKEN_TYPE, tt.to_string())],
            counter_family: Some(TOKEN_USAGE_SUM),
        });
    }
    match name {
        TOKEN_USAGE => {
            return Some(Rule {
                counter_family: Some(TOKEN_USAGE_SUM),
                ..Rule::attrs_only()
            })
        }
        "gen_ai.invoke_agent.duration" | "gen_ai.execute_tool.duration" => {
            let op = name
                .strip_prefix("gen_ai.")
                .and_then(|s| s.strip_suffix(".duration"))
                .unwrap_or_default();
            return Some(Rule {
                rename: Some(OPERATION_DURATION),
                default_unit: Some("s"),
                defaults: vec![(OPERATION, op.to_string())],
                counter_family: None,
            });
        }
        _ => {}
    }
    if SECONDS_METRICS.contains(&name) {
        return Some(Rule {
            default_unit: Some("s"),
            ..Rule::attrs_only()
        });
    }
    // OpenLLMetry: llm.<vendor>.<operation>.<what>, e.g. llm.openai.chat_completions.tokens.
    if let Some(rest) = name.strip_prefix("llm.") {
        let parts: Vec<&str> = rest.split('.').collect();
        if let [vendor, op, what] = parts[..] {
            let provider = vendor.to_string();
            let operation = openllmetry_operation(op).to_string();
            let defaults = vec![(PROVIDER, provider), (OPERATION, operation)];
            return Some(match what {
                "tokens" => Rule {
                    rename: Some(TOKEN_USAGE),
                    default_unit: None,
                    defaults,
                    counter_family: Some(TOKEN_USAGE_SUM),
                },
                "duration" => Rule {
                    rename: Some(OPERATION_DURATION),
                    default_unit: Some("s"),
                    defaults,
                    counter_family: None,
                },
                "streaming_time_to_first_token" => Rule {
                    rename: Some(TIME_TO_FIRST_CHUNK),
                    default_unit: Some("s"),
                    defaults,
                    counter_family: None,
                },
                _ => Rule {
                    defaults,
                    ..Rule::attrs_only()
                },
            });
        }
        return Some(Rule::attrs_only());
    }
    if name.starts_with("gen_ai.") {
        return Some(Rule::attrs_only());
    }
    None
}

/// Standard spelling of a provider name: lowercase, older `gen_ai.system` values mapped to
/// their `gen_ai.provider.name` successors.
pub fn provider_value(v: &str) -> String {
    let v = v.trim().to_ascii_lowercase();
    match v.as_str() {
        "az.ai.inference" | "azure_ai_inference" => "azure.ai.inference".into(),
        "az.ai.openai" | "azure_openai" | "azure" => "azure.ai.openai".into(),
        "xai" => "x_ai".into(),
        "bedrock" | "aws_bedrock" => "aws.bedrock".into(),
        "mistralai" | "mistral" => "mistral_ai".into(),
        "vertex_ai" | "vertexai" => "gcp.vertex_ai".into(),
        "gemini" | "google_ai_studio" => "gcp.gemini".into(),
        "google" | "google_genai" => "gcp.gen_ai".into(),
        "watsonx" => "ibm.watsonx.ai".into(),
        _ => v,
    }
}

/// Standard token type: `prompt` → `input`, `completion` → `output`, cache kinds spelled
/// `cache_read` / `cache_write`.
pub fn token_type_value(v: &str) -> String {
    let v = v.trim().to_ascii_lowercase();
    match v.as_str() {
        "prompt" | "prompt_tokens" | "input_tokens" => "input".into(),
        "completion" | "completion_tokens" | "output_tokens" => "output".into(),
        "cache_read_input" | "cache_read_input_tokens" | "cached" | "cache_read_tokens" => {
            "cache_read".into()
        }
        "cache_creation"
        | "cache_creation_input"
        | "cache_creation_input_tokens"
        | "cache_write_input"
        | "cache_write_tokens" => "cache_write".into(),
        _ => v,
    }
}

/// Standard operation name (OpenLLMetry's `llm.request.type` values included).
fn operation_value(v: &str) -> String {
    match v.trim() {
        "completion" => "text_completion".into(),
        "embedding" => "embeddings".into(),
        other => other.to_string(),
    }
}

fn string_value(kv: &KeyValue) -> Option<&str> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn string_attr(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        key_strindex: 0,
    }
}

/// Renames aliases, normalises values and adds the rule's defaults, in place.
fn normalise_attributes(attrs: &mut Vec<KeyValue>, defaults: &[(&'static str, String)]) {
    for (old, new) in ATTRIBUTE_ALIASES {
        let Some(i) = attrs.iter().position(|kv| kv.key == *old) else {
            continue;
        };
        if attrs.iter().any(|kv| kv.key == *new) {
            attrs.remove(i);
        } else {
            attrs[i].key = (*new).to_string();
        }
    }
    for kv in attrs.iter_mut() {
        let fix: fn(&str) -> String = match kv.key.as_str() {
            PROVIDER => provider_value,
            TOKEN_TYPE => token_type_value,
            OPERATION => operation_value,
            _ => continue,
        };
        if let Some(s) = string_value(kv) {
            let v = fix(s);
            *kv = string_attr(&kv.key, v);
        }
    }
    for (k, v) in defaults {
        if !attrs.iter().any(|kv| kv.key == *k) {
            let v = match *k {
                PROVIDER => provider_value(v),
                _ => v.clone(),
            };
            attrs.push(string_attr(k, v));
        }
    }
}

/// Rewrites a GenAI metric onto the standard names and attributes. Returns the Prometheus
/// family to use instead of the translated name, when the standard translation would not
/// give the normalised one (the counter form of token usage).
pub(super) fn normalise(metric: &mut m::Metric) -> Option<&'static str> {
    let rule = rule_for(&metric.name)?;
    if let Some(n) = rule.rename {
        metric.name = n.to_string();
    }
    if metric.unit.is_empty() {
        if let Some(u) = rule.default_unit {
            metric.unit = u.to_string();
        }
    }
    use m::metric::Data;
    let mut family = None;
    match metric.data.as_mut() {
        None => {}
        Some(Data::Gauge(g)) => {
            for p in &mut g.data_points {
                normalise_attributes(&mut p.attributes, &rule.defaults);
            }
        }
        Some(Data::Sum(s)) => {
            if s.is_monotonic {
                family = rule.counter_family;
            }
            for p in &mut s.data_points {
                normalise_attributes(&mut p.attributes, &rule.defaults);
            }
        }
        Some(Data::Histogram(h)) => {
            for p in &mut h.data_points {
                normalise_attributes(&mut p.attributes, &rule.defaults);
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            for p in &mut h.data_points {
                normalise_attributes(&mut p.attributes, &rule.defaults);
            }
        }
        Some(Data::Summary(s)) => {
            for p in &mut s.data_points {
                normalise_attributes(&mut p.attributes, &rule.defaults);
            }
        }
    }
    family
}
