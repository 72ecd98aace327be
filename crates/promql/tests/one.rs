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
