//! `dcf-harness bench` end to end: a short measurement of each system on
//! loopback must print its rows and write a `bench.json` whose figures
//! are consistent. etcd needs `etcd` on PATH (`apt-get install
//! etcd-server`); without it the etcd part says "skipped", except under
//! `CI=true`, where it fails. About 15 s.

mod common;

use common::HARNESS;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Runs the bench for `systems` with 1 and 4 clients for 1 s each and
/// returns its stdout and `bench.json`.
fn bench(store: &Path, systems: &str) -> (String, Value) {
    let out = Command::new(HARNESS)
        .args(["bench", "--system", systems, "--clients", "1,4"])
        .args(["--time", "1", "--warmup", "1", "--store"])
        .arg(store)
        .output()
        .expect("run dcf-harness bench");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::fs::read_dir(store)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("bench-")
        })
        .expect("a bench folder");
    let json = std::fs::read(dir.join("bench.json")).expect("bench.json");
    (stdout, serde_json::from_slice(&json).unwrap())
}

/// Every row answered requests without errors, and the table shows it.
fn assert_rows(stdout: &str, report: &Value, system: &str) {
    let rows: Vec<&Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["system"] == system)
        .collect();
    assert_eq!(rows.len(), 2, "{report}");
    for (r, clients) in rows.iter().zip([1, 4]) {
        assert_eq!(r["clients"], clients);
        assert!(r["ops"].as_u64().unwrap() > 10, "{r}");
        assert_eq!(r["errors"], 0, "{r}");
        let (p50, p99) = (r["p50_ms"].as_f64().unwrap(), r["p99_ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p50 <= p99, "{r}");
        let line = stdout
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .take(2)
                    .eq([system, &clients.to_string()])
            })
            .unwrap_or_else(|| panic!("no table row for {system} {clients}:\n{stdout}"));
        assert!(line.split_whitespace().count() == 7, "{line}");
    }
}

#[test]
fn bench_measures_our_node_and_writes_its_figures() {
    let store = tempfile::tempdir().unwrap();
    let (stdout, report) = bench(store.path(), "dcf");
    assert_rows(&stdout, &report, "dcf");
    assert_eq!(report["ratios"], serde_json::json!([]));
    assert!(stdout.contains("cores: "), "{stdout}");
    // Only logs stay: the nodes' data directories are removed.
    let data = walk(store.path())
        .into_iter()
        .filter(|p| p.ends_with("data"))
        .count();
    assert_eq!(data, 0, "data directories left behind");
}

#[test]
fn bench_puts_dcf_and_etcd_side_by_side() {
    if let Err(why) = harness::deploy::etcd::find_binary(None) {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "required under CI=true: {why}"
        );
        println!("skipped: {why}");
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let (stdout, report) = bench(store.path(), "dcf,etcd");
    assert_rows(&stdout, &report, "dcf");
    assert_rows(&stdout, &report, "etcd");
    let ratios = report["ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 2, "{report}");
    assert!(ratios[1]["throughput"].as_f64().unwrap() > 0.0);
    assert!(stdout.contains("ratio dcf/etcd at   4 clients"), "{stdout}");
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}
