//! Crash safety: writes through remote write, `kill -9` at random moments, restarts, and checks
//! that every acknowledged sample is there, bit-exact, and that the server starts every time.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sextant_model::{Labels, Sample};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn finite_f64(&mut self) -> f64 {
        loop {
            let v = f64::from_bits(self.next());
            if v.is_finite() {
                return v;
            }
        }
    }
}

type Acked = BTreeMap<String, BTreeMap<i64, u64>>;

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", format!("crash_test_{}", i % 3)),
        ("job", "crash".into()),
        ("idx", i.to_string()),
    ])
}

fn verify(server: &Server, acked: &Acked) -> usize {
    let got = export(&client(), &server.url(""), r#"{job="crash"}"#);
    let mut have: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
    for (metric, samples) in got {
        let m = metric.as_object().expect("metric object");
        let ls = Labels::from_pairs(
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())),
        );
        have.entry(ls.to_string())
            .or_default()
            .extend(samples.into_iter().map(|(t, v)| (t, v.to_bits())));
    }
    let mut checked = 0;
    for (series, samples) in acked {
        let h = have
            .get(series)
            .unwrap_or_else(|| panic!("acknowledged series {series} is missing after restart"));
        for (t, bits) in samples {
            match h.get(t) {
                Some(b) => assert_eq!(
                    b,
                    bits,
                    "{series} @ {t}: value differs (got {}, want {})",
                    f64::from_bits(*b),
                    f64::from_bits(*bits)
                ),
                None => panic!("acknowledged sample {series} @ {t} is missing after restart"),
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn kill9_loses_no_acknowledged_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let acked: Arc<Mutex<Acked>> = Arc::new(Mutex::new(BTreeMap::new()));
    let clock = Arc::new(Mutex::new(sextant_model::time::now_ms()));
    let started = Instant::now();
    let rounds = 20;
    for round in 0..rounds {
        if round % 4 == 3 {
            // Also crash during start-up (WAL replay, torn-tail repair) now and then.
            let mut early = Server::start(dir.path(), &[]);
            std::thread::sleep(Duration::from_millis(rng.next() % 60));
            early.kill9();
        }
        let mut server = Server::start(dir.path(), &[]);
        server.wait_ready(Duration::from_secs(60));
        let n = verify(&server, &acked.lock().unwrap());
        eprintln!("round {round}: server up, {n} acknowledged samples verified");
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..2 {
            let (stop, acked, clock) = (stop.clone(), acked.clone(), clock.clone());
            let url = server.url("/api/v1/write");
            let mut wrng = Rng(rng.next() | 1);
            writers.push(std::thread::spawn(move || {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    let t0 = {
                        let mut c = clock.lock().unwrap();
                        *c += 10;
                        *c
                    };
                    let batch: Vec<(Labels, Vec<Sample>)> = (0..30)
                        .map(|i| {
                            let ls = series_labels(w * 1000 + i);
                            (
                                ls,
                                (0..5)
                                    .map(|k| Sample::new(t0 + k, wrng.finite_f64()))
                                    .collect(),
                            )
                        })
                        .collect();
                    match remote_write_v1(&c, &url, &batch) {
                        Ok(204) => {
                            let mut a = acked.lock().unwrap();
                            for (ls, ss) in &batch {
                                let e = a.entry(ls.to_string()).or_default();
                                for s in ss {
                                    e.insert(s.t, s.v.to_bits());
                                }
                            }
                        }
                        Ok(code) => panic!("unexpected status {code} from remote write"),
                        Err(_) => break, // server gone: the request was not acknowledged
                    }
                }
            }));
        }
        let wait = 30 + rng.next() % 400;
        std::thread::sleep(Duration::from_millis(wait));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer thread");
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "crash test exceeded its time bound"
        );
    }
    let mut server = Server::start(dir.path(), &[]);
    server.wait_ready(Duration::from_secs(60));
    let n = verify(&server, &acked.lock().unwrap());
    assert!(
        n > 1000,
        "too few samples were acknowledged to make the test meaningful: {n}"
    );
    eprintln!("final: {n} acknowledged samples verified after {rounds} kill -9 rounds");
    let status = server.terminate();
    assert!(
        status.success(),
        "clean shutdown after SIGTERM, got {status}"
    );
}
