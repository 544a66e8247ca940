//! Criterion benchmarks over the shared corpus (parsing excluded): all 102
//! etcd logs, and each of porcupine's key-value histories, by verdict alone
//! (as porcupine's `CheckOperations` answers) and, for c50-bad, with the
//! explanation too. It ends with a table of medians next to the figures
//! porcupine's authors and the corpus publish for the same machine class.

use std::path::Path;
use std::time::{Duration, Instant};

use checker::{check_history, formats, CheckOptions, History, Validity};
use criterion::Criterion;

/// Medians published for porcupine on a 2-core machine like CI's: the
/// corpus README (etcd, c50-ok) and the issue that set the goal (c50-bad).
const PORCUPINE_MS: &[(&str, f64)] = &[
    ("etcd-102-logs", 400.0),
    ("kv-c50-ok", 130.0),
    ("kv-c50-bad", 20.0),
];

fn load(dir: &str) -> Vec<(String, History)> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus missing at {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log" || x == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_stem().unwrap_or_default().to_string_lossy().into(),
                formats::read_file(&p, None).expect("corpus file parses"),
            )
        })
        .collect()
}

/// One timed case: a name and what it checks.
struct Case<'a> {
    name: String,
    histories: Vec<&'a History>,
    options: CheckOptions,
}

impl Case<'_> {
    fn run(&self) -> Validity {
        let mut v = Validity::Valid;
        for h in &self.histories {
            v = v.and(check_history(h, &self.options).expect("checks").valid);
        }
        v
    }

    /// Median wall time of `n` runs, in ms.
    fn median_ms(&self, n: usize) -> f64 {
        let mut t: Vec<f64> = (0..n)
            .map(|_| {
                let s = Instant::now();
                self.run();
                s.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t[n / 2]
    }
}

fn cases<'a>(etcd: &'a [(String, History)], kv: &'a [(String, History)]) -> Vec<Case<'a>> {
    let verdict = CheckOptions {
        explain: false,
        ..CheckOptions::default()
    };
    let mut out = vec![Case {
        name: "etcd-102-logs".into(),
        histories: etcd.iter().map(|(_, h)| h).collect(),
        options: CheckOptions::default(),
    }];
    for (name, h) in kv {
        out.push(Case {
            name: format!("kv-{name}"),
            histories: vec![h],
            options: verdict.clone(),
        });
    }
    let c50_bad = &kv.iter().find(|(n, _)| n == "c50-bad").expect("c50-bad").1;
    out.push(Case {
        name: "kv-c50-bad-explained".into(),
        histories: vec![c50_bad],
        options: CheckOptions::default(),
    });
    out
}

fn main() {
    let etcd = load("jepsen-etcd");
    assert_eq!(etcd.len(), 102);
    let kv = load("porcupine-kv");
    let cases = cases(&etcd, &kv);
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for case in &cases {
        c.bench_function(&case.name, |b| b.iter(|| case.run()));
    }
    c.final_summary();

    println!("\nMedians of 21 runs (verdict only unless explained), against porcupine's published figures:");
    println!(
        "{:<24} {:>8} {:>12} {:>14} {:>8}",
        "history", "verdict", "ours (ms)", "porcupine (ms)", "ratio"
    );
    for case in &cases {
        let verdict = case.run();
        let ours = case.median_ms(21);
        let theirs = PORCUPINE_MS
            .iter()
            .find(|(n, _)| *n == case.name)
            .map(|p| p.1);
        println!(
            "{:<24} {:>8} {:>12.2} {:>14} {:>8}",
            case.name,
            verdict.as_str(),
            ours,
            theirs.map_or("—".into(), |t| format!("{t:.0}")),
            theirs.map_or("—".into(), |t| format!("{:.2}x", ours / t)),
        );
    }
}
