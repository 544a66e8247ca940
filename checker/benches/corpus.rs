//! Criterion benchmarks over the shared corpus (parsing excluded): all 102
//! etcd logs, and porcupine's c50-ok split by key.

use std::path::Path;

use checker::{check_history, formats, CheckOptions, History};
use criterion::{criterion_group, criterion_main, Criterion};

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
                p.display().to_string(),
                formats::read_file(&p, None).expect("corpus file parses"),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let etcd = load("jepsen-etcd");
    assert_eq!(etcd.len(), 102);
    let opts = CheckOptions::default();
    c.bench_function("etcd-102-logs", |b| {
        b.iter(|| {
            for (_, h) in &etcd {
                check_history(h, &opts).expect("checks");
            }
        })
    });
    let kv = load("porcupine-kv");
    let c50 = &kv
        .iter()
        .find(|(p, _)| p.ends_with("c50-ok.txt"))
        .expect("c50-ok")
        .1;
    c.bench_function("kv-c50-ok", |b| {
        b.iter(|| check_history(c50, &opts).expect("checks"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
