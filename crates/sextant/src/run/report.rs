//! The metrics one `sextant run` pushes, in the text exposition format (what every
//! Pushgateway accepts). Kept apart from process and network handling so the exact series
//! are easy to see and to test.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sextant_ingest::bench::{BenchFormat, BenchResult};
use sextant_ingest::coverage::{CoverageNumbers, CoverageReport};

use super::child::Outcome;

/// Everything known about one finished run.
pub struct RunReport<'a> {
    pub start: f64,
    pub end: f64,
    pub outcome: &'a Outcome,
    pub commit: &'a str,
    pub host: &'a str,
    pub command: &'a str,
    /// Runs so far, this one included: (successful, failed).
    pub runs: (u64, u64),
    /// End time of the last successful run known locally (this one if it succeeded).
    pub last_success: Option<f64>,
    pub ttl_seconds: Option<f64>,
    pub coverage: &'a [CoverageReport],
    pub bench: &'a [(BenchFormat, Vec<BenchResult>)],
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, typ: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {typ}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", fmt_f64(v));
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Shortest round-tripping float text (`1`, `0.25`, `1.7e+09` style is not needed: Rust's
/// `Display` already round-trips and the text format accepts it).
fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

impl RunReport<'_> {
    /// The push body. Families that this run has nothing for (no successful run known, no
    /// coverage, no benchmarks) are left out, so a POST keeps the group's earlier values.
    pub fn body(&self) -> String {
        let mut o = Out(String::new());
        let oc = self.outcome;
        let success = oc.exit_code == 0;
        o.family(
            "sextant_job_last_run_timestamp_seconds",
            "gauge",
            "Unix time the last run of the job ended.",
        );
        o.sample("sextant_job_last_run_timestamp_seconds", &[], self.end);
        o.family(
            "sextant_job_start_timestamp_seconds",
            "gauge",
            "Unix time the last run started.",
        );
        o.sample("sextant_job_start_timestamp_seconds", &[], self.start);
        if let Some(t) = self.last_success {
            o.family(
                "sextant_job_last_success_timestamp_seconds",
                "gauge",
                "Unix time the last successful run (exit code 0) ended.",
            );
            o.sample("sextant_job_last_success_timestamp_seconds", &[], t);
        }
        o.family(
            "sextant_job_duration_seconds",
            "gauge",
            "Wall-clock duration of the last run.",
        );
        o.sample(
            "sextant_job_duration_seconds",
            &[],
            (self.end - self.start).max(0.0),
        );
        o.family(
            "sextant_job_exit_code",
            "gauge",
            "Exit code of the last run (128+N if killed by signal N, 127/126 if the command could not be started).",
        );
        o.sample("sextant_job_exit_code", &[], oc.exit_code as f64);
        o.family(
            "sextant_job_success",
            "gauge",
            "1 if the last run exited with 0, else 0.",
        );
        o.sample("sextant_job_success", &[], if success { 1.0 } else { 0.0 });
        o.family(
            "sextant_job_peak_rss_bytes",
            "gauge",
            "Peak resident set size of the last run's process (largest of it and its waited-for descendants).",
        );
        o.sample("sextant_job_peak_rss_bytes", &[], oc.peak_rss_bytes as f64);
        o.family(
            "sextant_job_cpu_seconds",
            "gauge",
            "CPU time of the last run by mode.",
        );
        o.sample(
            "sextant_job_cpu_seconds",
            &[("mode", "user")],
            oc.cpu_user_seconds,
        );
        o.sample(
            "sextant_job_cpu_seconds",
            &[("mode", "system")],
            oc.cpu_system_seconds,
        );
        o.family(
            "sextant_job_runs_total",
            "counter",
            "Runs of the job reported from this spool directory, by result.",
        );
        o.sample(
            "sextant_job_runs_total",
            &[("result", "success")],
            self.runs.0 as f64,
        );
        o.sample(
            "sextant_job_runs_total",
            &[("result", "failure")],
            self.runs.1 as f64,
        );
        if let Some(ttl) = self.ttl_seconds {
            o.family(
                "sextant_job_ttl_seconds",
                "gauge",
                "The push TTL: the group expires (a missed run) when no run reports within it.",
            );
            o.sample("sextant_job_ttl_seconds", &[], ttl);
        }
        o.family(
            "sextant_job_info",
            "gauge",
            "Commit, host and command of the last run (value 1).",
        );
        o.sample(
            "sextant_job_info",
            &[
                ("commit", self.commit),
                ("host", self.host),
                ("command", self.command),
            ],
            1.0,
        );
        self.coverage_families(&mut o);
        self.bench_families(&mut o);
        o.0
    }

    fn coverage_families(&self, o: &mut Out) {
        if self.coverage.is_empty() {
            return;
        }
        let total = merge(self.coverage.iter().map(|r| &r.total));
        let mut packages: BTreeMap<&str, Vec<&CoverageNumbers>> = BTreeMap::new();
        for r in self.coverage {
            for (name, n) in &r.packages {
                packages.entry(name.as_str()).or_default().push(n);
            }
        }
        let kinds = |n: &CoverageNumbers| {
            let mut v = vec![("line", Some(n.lines), n.line_ratio())];
            if n.branches.is_some() || n.branch_rate.is_some() {
                v.push(("branch", n.branches, n.branch_ratio()));
            }
            if let Some(f) = n.functions {
                v.push(("function", Some(f), f.ratio()));
            }
            v
        };
        o.family(
            "sextant_coverage_ratio",
            "gauge",
            "Covered share of lines, branches or functions (0..1).",
        );
        for (kind, _, r) in kinds(&total) {
            if let Some(r) = r {
                o.sample("sextant_coverage_ratio", &[("kind", kind)], r);
            }
        }
        o.family(
            "sextant_coverage_covered",
            "gauge",
            "Covered lines, branches or functions.",
        );
        for (kind, c, _) in kinds(&total) {
            if let Some(c) = c.filter(|c| c.total > 0) {
                o.sample(
                    "sextant_coverage_covered",
                    &[("kind", kind)],
                    c.covered as f64,
                );
            }
        }
        o.family(
            "sextant_coverage_valid",
            "gauge",
            "Coverable lines, branches or functions.",
        );
        for (kind, c, _) in kinds(&total) {
            if let Some(c) = c.filter(|c| c.total > 0) {
                o.sample("sextant_coverage_valid", &[("kind", kind)], c.total as f64);
            }
        }
        if !packages.is_empty() {
            o.family(
                "sextant_coverage_package_ratio",
                "gauge",
                "Covered share per package (Cobertura package, LCOV directory), at most 100 packages.",
            );
            for (name, ns) in packages.iter().take(sextant_ingest::coverage::MAX_PACKAGES) {
                let n = merge(ns.iter().copied());
                for (kind, _, r) in kinds(&n) {
                    if let Some(r) = r {
                        o.sample(
                            "sextant_coverage_package_ratio",
                            &[("package", name), ("kind", kind)],
                            r,
                        );
                    }
                }
            }
        }
    }

    fn bench_families(&self, o: &mut Out) {
        if self.bench.is_empty() {
            return;
        }
        o.family(
            "sextant_bench_seconds",
            "gauge",
            "Benchmark timing statistics of the last run, in seconds.",
        );
        let mut seen = std::collections::HashSet::new();
        for (fmt, results) in self.bench {
            for r in results {
                for (stat, v) in &r.stats {
                    // The same benchmark in two files: the first one wins (a push must not
                    // carry duplicate series).
                    if seen.insert((fmt.name(), r.benchmark.as_str(), *stat)) {
                        o.sample(
                            "sextant_bench_seconds",
                            &[
                                ("benchmark", &r.benchmark),
                                ("stat", stat),
                                ("tool", fmt.name()),
                            ],
                            *v,
                        );
                    }
                }
            }
        }
    }
}

/// Sums the counts of several reports; a report without counts contributes only when it is
/// the only one (its rates are kept).
fn merge<'a>(it: impl Iterator<Item = &'a CoverageNumbers>) -> CoverageNumbers {
    let all: Vec<&CoverageNumbers> = it.collect();
    if all.len() == 1 {
        return all[0].clone();
    }
    let mut out = CoverageNumbers::default();
    for n in all {
        out.lines.covered += n.lines.covered;
        out.lines.total += n.lines.total;
        if let Some(b) = n.branches {
            let ob = out.branches.get_or_insert_with(Default::default);
            ob.covered += b.covered;
            ob.total += b.total;
        }
        if let Some(f) = n.functions {
            let of = out.functions.get_or_insert_with(Default::default);
            of.covered += f.covered;
            of.total += f.total;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_parses_as_a_push() {
        let oc = Outcome {
            exit_code: 3,
            signal: None,
            peak_rss_bytes: 2048,
            cpu_user_seconds: 0.5,
            cpu_system_seconds: 0.25,
            spawn_error: None,
        };
        let cov =
            sextant_ingest::coverage::parse("SF:a/x.c\nDA:1,1\nDA:2,0\nend_of_record\n").unwrap();
        let bench = sextant_ingest::bench::parse(
            r#"{"results":[{"command":"sleep \"1\"","mean":1.5,"stddev":null}]}"#,
            None,
        )
        .unwrap();
        let r = RunReport {
            start: 100.0,
            end: 102.5,
            outcome: &oc,
            commit: "abc",
            host: "h1",
            command: "make",
            runs: (4, 2),
            last_success: Some(90.0),
            ttl_seconds: Some(3600.0),
            coverage: &[cov],
            bench: &[bench],
        };
        let body = r.body();
        let parsed = sextant_ingest::push::parse_body(body.as_bytes(), None)
            .unwrap_or_else(|e| panic!("{e}\n{body}"));
        let _ = parsed;
        for line in [
            "sextant_job_last_run_timestamp_seconds 102.5\n",
            "sextant_job_duration_seconds 2.5\n",
            "sextant_job_exit_code 3\n",
            "sextant_job_success 0\n",
            "sextant_job_last_success_timestamp_seconds 90\n",
            "sextant_job_runs_total{result=\"failure\"} 2\n",
            "sextant_job_cpu_seconds{mode=\"system\"} 0.25\n",
            "sextant_coverage_ratio{kind=\"line\"} 0.5\n",
            "sextant_coverage_valid{kind=\"line\"} 2\n",
            "sextant_coverage_package_ratio{package=\"a\",kind=\"line\"} 0.5\n",
            "sextant_bench_seconds{benchmark=\"sleep \\\"1\\\"\",stat=\"mean\",tool=\"hyperfine\"} 1.5\n",
            "sextant_job_info{commit=\"abc\",host=\"h1\",command=\"make\"} 1\n",
        ] {
            assert!(body.contains(line), "missing {line:?} in\n{body}");
        }
    }
}
