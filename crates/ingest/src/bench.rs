//! Benchmark result files → per-benchmark timing statistics in seconds. `sextant run --bench`
//! reads what the benchmark tool left behind and pushes it as
//! `sextant_bench_seconds{benchmark, stat}`, so performance is tracked over time per
//! benchmark and commit and a regression can raise an alert, without a benchmark service.
//! Three formats, detected from the JSON's shape:
//!
//! - criterion.rs: `target/criterion/<id>/new/estimates.json` (nanoseconds; the name comes
//!   from the `benchmark.json` next to it, else from the directory path);
//! - pytest-benchmark: `--benchmark-json FILE` (seconds; one entry per `fullname`);
//! - hyperfine: `--export-json FILE` (seconds; one entry per `command`).
//!
//! Every statistic is reported in seconds. At most [`MAX_BENCHMARKS`] benchmarks are taken
//! from one file.

use serde_json::Value;

/// Largest number of benchmarks taken from one file.
pub const MAX_BENCHMARKS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchFormat {
    Criterion,
    PytestBenchmark,
    Hyperfine,
}

impl BenchFormat {
    /// The tool's name as used in the `tool` label.
    pub fn name(self) -> &'static str {
        match self {
            BenchFormat::Criterion => "criterion",
            BenchFormat::PytestBenchmark => "pytest-benchmark",
            BenchFormat::Hyperfine => "hyperfine",
        }
    }
}

/// One benchmark's statistics, in seconds: `(stat, value)` with stat one of `mean`, `median`,
/// `stddev`, `min`, `max` (those the tool reports).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    pub benchmark: String,
    pub stats: Vec<(&'static str, f64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BenchError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error(
        "not a benchmark result: expected criterion's estimates.json, pytest-benchmark's or hyperfine's JSON export"
    )]
    UnknownFormat,
    #[error("{format}: {msg}")]
    Invalid { format: &'static str, msg: String },
    #[error("{format}: more than {MAX_BENCHMARKS} benchmarks in one file")]
    TooMany { format: &'static str },
}

/// Parses one benchmark result file. `criterion_name` names a criterion estimate (which does
/// not carry its own name); the caller derives it from `benchmark.json` or the path.
pub fn parse(
    text: &str,
    criterion_name: Option<&str>,
) -> Result<(BenchFormat, Vec<BenchResult>), BenchError> {
    let v: Value = serde_json::from_str(text).map_err(|e| BenchError::Json(e.to_string()))?;
    let Some(obj) = v.as_object() else {
        return Err(BenchError::UnknownFormat);
    };
    if obj
        .get("mean")
        .and_then(|m| m.get("point_estimate"))
        .is_some()
    {
        let name = criterion_name.unwrap_or("criterion");
        return Ok((BenchFormat::Criterion, vec![criterion(&v, name)?]));
    }
    if let Some(b) = obj.get("benchmarks").and_then(Value::as_array) {
        return Ok((BenchFormat::PytestBenchmark, pytest(b)?));
    }
    if let Some(r) = obj.get("results").and_then(Value::as_array) {
        return Ok((BenchFormat::Hyperfine, hyperfine(r)?));
    }
    Err(BenchError::UnknownFormat)
}

fn invalid(format: BenchFormat, msg: String) -> BenchError {
    BenchError::Invalid {
        format: format.name(),
        msg,
    }
}

/// A finite, non-negative number at `v[key]`; `Ok(None)` when absent or null.
fn stat(
    format: BenchFormat,
    bench: &str,
    v: &Value,
    key: &str,
    divisor: f64,
) -> Result<Option<f64>, BenchError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => match x.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f / divisor)),
            _ => Err(invalid(
                format,
                format!(
                    "benchmark {bench:?}: field {key:?} is {x}, expected a non-negative number"
                ),
            )),
        },
    }
}

fn criterion(v: &Value, name: &str) -> Result<BenchResult, BenchError> {
    let f = BenchFormat::Criterion;
    let mut stats = Vec::new();
    for (key, out) in [
        ("mean", "mean"),
        ("median", "median"),
        ("std_dev", "stddev"),
    ] {
        let Some(est) = v.get(key).filter(|e| !e.is_null()) else {
            continue;
        };
        let ns = stat(f, name, est, "point_estimate", 1e9)?.ok_or_else(|| {
            invalid(
                f,
                format!("benchmark {name:?}: field \"{key}.point_estimate\" is missing"),
            )
        })?;
        stats.push((out, ns));
    }
    Ok(BenchResult {
        benchmark: name.to_string(),
        stats,
    })
}

fn pytest(list: &[Value]) -> Result<Vec<BenchResult>, BenchError> {
    let f = BenchFormat::PytestBenchmark;
    if list.len() > MAX_BENCHMARKS {
        return Err(BenchError::TooMany { format: f.name() });
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, b) in list.iter().enumerate() {
        let name = b
            .get("fullname")
            .or_else(|| b.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(f, format!("benchmarks[{i}]: field \"fullname\" is missing")))?;
        let s = b
            .get("stats")
            .ok_or_else(|| invalid(f, format!("benchmark {name:?}: field \"stats\" is missing")))?;
        let mut stats = Vec::new();
        for key in ["mean", "median", "stddev", "min", "max"] {
            if let Some(x) = stat(f, name, s, key, 1.0)? {
                stats.push((key, x));
            }
        }
        if stats.is_empty() {
            return Err(invalid(
                f,
                format!("benchmark {name:?}: field \"stats.mean\" is missing"),
            ));
        }
        out.push(BenchResult {
            benchmark: name.to_string(),
            stats,
        });
    }
    Ok(out)
}

fn hyperfine(list: &[Value]) -> Result<Vec<BenchResult>, BenchError> {
    let f = BenchFormat::Hyperfine;
    if list.len() > MAX_BENCHMARKS {
        return Err(BenchError::TooMany { format: f.name() });
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let name = r
            .get("command")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(f, format!("results[{i}]: field \"command\" is missing")))?;
        let mut stats = Vec::new();
        for key in ["mean", "median", "stddev", "min", "max"] {
            if let Some(x) = stat(f, name, r, key, 1.0)? {
                stats.push((key, x));
            }
        }
        if !stats.iter().any(|(k, _)| *k == "mean") {
            return Err(invalid(
                f,
                format!("benchmark {name:?}: field \"mean\" is missing"),
            ));
        }
        out.push(BenchResult {
            benchmark: name.to_string(),
            stats,
        });
    }
    Ok(out)
}

/// The name of a criterion benchmark from its `estimates.json` path and the text of the
/// `benchmark.json` beside it (if any): `full_id`, else the directories between `criterion/`
/// and `/new` (or the file's parent directories).
pub fn criterion_name(path: &std::path::Path, benchmark_json: Option<&str>) -> String {
    if let Some(id) = benchmark_json
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| v.get("full_id").and_then(Value::as_str).map(String::from))
    {
        return id;
    }
    let mut parts: Vec<String> = path
        .parent()
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if parts.last().is_some_and(|l| l == "new" || l == "base") {
        parts.pop();
    }
    match parts.iter().rposition(|p| p == "criterion") {
        Some(i) => parts[i + 1..].join("/"),
        None => parts.last().cloned().unwrap_or_else(|| "criterion".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn td(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/testdata/bench/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// Written by hyperfine 1.15 (`hyperfine --runs 5 --export-json F 'sleep 0.01' true`).
    #[test]
    fn hyperfine_export() {
        let (f, r) = parse(&td("hyperfine.json"), None).unwrap();
        assert_eq!(f, BenchFormat::Hyperfine);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].benchmark, "sleep 0.01");
        assert_eq!(
            r[0].stats,
            vec![
                ("mean", 0.013012973520000002),
                ("median", 0.01267399812),
                ("stddev", 0.0017348054152683226),
                ("min", 0.01144390112),
                ("max", 0.01590175012),
            ]
        );
        assert_eq!(r[1].benchmark, "true");
    }

    /// Written by pytest-benchmark 5 (`pytest --benchmark-json F`, one plain and one
    /// parametrized test).
    #[test]
    fn pytest_benchmark_export() {
        let (f, r) = parse(&td("pytest_benchmark.json"), None).unwrap();
        assert_eq!(f, BenchFormat::PytestBenchmark);
        let names: Vec<&str> = r.iter().map(|b| b.benchmark.as_str()).collect();
        assert_eq!(
            names,
            [
                "test_b.py::test_fib10",
                "test_b.py::test_fib_param[5]",
                "test_b.py::test_fib_param[8]"
            ]
        );
        assert_eq!(r[0].stats[0], ("mean", 2.3781960336375046e-05));
        assert_eq!(
            r[0].stats.iter().map(|s| s.0).collect::<Vec<_>>(),
            ["mean", "median", "stddev", "min", "max"]
        );
    }

    /// Hand-written per criterion's documented layout (no criterion build here):
    /// target/criterion/<group>/<function>/new/{estimates,benchmark}.json, nanoseconds.
    #[test]
    fn criterion_estimates() {
        let dir = "criterion/parse/small/new";
        let est = td(&format!("{dir}/estimates.json"));
        let name = criterion_name(
            std::path::Path::new(&format!("target/{dir}/estimates.json")),
            Some(&td(&format!("{dir}/benchmark.json"))),
        );
        assert_eq!(name, "parse/small");
        let (f, r) = parse(&est, Some(&name)).unwrap();
        assert_eq!(f, BenchFormat::Criterion);
        assert_eq!(r[0].benchmark, "parse/small");
        assert_eq!(
            r[0].stats,
            vec![
                ("mean", 291.614309545041 / 1e9),
                ("median", 279.62686982984013 / 1e9),
                ("stddev", 24.317104055231034 / 1e9)
            ]
        );
        // Without benchmark.json the path gives the name.
        assert_eq!(
            criterion_name(
                std::path::Path::new("target/criterion/g/f/10/new/estimates.json"),
                None
            ),
            "g/f/10"
        );
        assert_eq!(
            criterion_name(std::path::Path::new("x/estimates.json"), Some("{")),
            "x"
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        assert!(matches!(parse("{", None), Err(BenchError::Json(_))));
        assert_eq!(parse("[1]", None), Err(BenchError::UnknownFormat));
        assert_eq!(parse(r#"{"x":1}"#, None), Err(BenchError::UnknownFormat));
        let e = parse(r#"{"results":[{"command":"a","mean":-1}]}"#, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"hyperfine: benchmark "a": field "mean" is -1, expected a non-negative number"#
        );
        let e = parse(r#"{"results":[{"mean":1}]}"#, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"hyperfine: results[0]: field "command" is missing"#
        );
        let e = parse(
            r#"{"benchmarks":[{"fullname":"t","stats":{"mean":"fast"}}]}"#,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains(r#"field "mean""#), "{e}");
        let e = parse(r#"{"mean":{"point_estimate":null}}"#, Some("b")).unwrap_err();
        assert!(e.to_string().contains("mean.point_estimate"), "{e}");
        let many = format!(
            r#"{{"results":[{}]}}"#,
            vec![r#"{"command":"x","mean":1}"#; MAX_BENCHMARKS + 1].join(",")
        );
        assert!(matches!(
            parse(&many, None),
            Err(BenchError::TooMany { .. })
        ));
    }
}
