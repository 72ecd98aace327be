//! Runs one promqltest script given by `PROMQLTEST_FILE` and prints every outcome (a debugging aid).

#[test]
fn one_script() {
    let Ok(path) = std::env::var("PROMQLTEST_FILE") else {
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let r = sextant_promql::promqltest::run_script(&text);
    for e in &r.evals {
        println!("{}: {} -> {:?}", e.line, e.expr, e.failure);
    }
    println!("{}/{}", r.passed(), r.evals.len());
}

/// Parses each line of `PROMQL_PARSE_FILE` and prints the canonical form or the error (a
/// debugging aid for comparing with Prometheus' `/api/v1/format_query`).
#[test]
fn parse_lines() {
    let Ok(path) = std::env::var("PROMQL_PARSE_FILE") else {
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    for line in text.lines() {
        match sextant_promql::parse(line) {
            Ok(e) => println!("OK {e}"),
            Err(e) => println!("ERR {e}"),
        }
    }
}
