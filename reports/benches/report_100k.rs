//! Times `report.html` generation for a synthetic 100,000-operation run
//! (partitions and kills, register workload): setup once, then the median
//! of several generations. `cargo bench -p reports --bench report_100k`;
//! set `REPORT_BENCH_OPS` to change the size, `REPORT_BENCH_KEEP` to keep
//! the run folder and print its path (to open the report in a browser).

use std::time::Instant;

use reports::synthetic::{write_run, SyntheticOptions};

fn main() {
    let ops: usize = std::env::var("REPORT_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let run = dir.path().join("synthetic").join("20260101T000000.000Z");
    let t = Instant::now();
    let opts = SyntheticOptions {
        ops,
        check: false,
        ..SyntheticOptions::default()
    };
    write_run(&run, &opts).expect("write synthetic run");
    let history_bytes = std::fs::metadata(run.join("history.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "setup: {ops} client ops ({} history lines, {:.1} MiB) written in {:.2} s",
        ops * 2,
        history_bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let report = reports::write_run_report(&run).expect("report");
        times.push(t.elapsed().as_secs_f64());
        let _ = report;
    }
    times.sort_by(f64::total_cmp);
    let size = std::fs::metadata(run.join("report.html"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "report.html generation (read history + render + write): median {:.3} s, min {:.3} s, max {:.3} s over {} runs; report size {:.1} MiB",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len(),
        size as f64 / (1 << 20) as f64
    );
    if std::env::var_os("REPORT_BENCH_KEEP").is_some() {
        let kept = dir.keep();
        println!(
            "kept: {}",
            kept.join("synthetic/20260101T000000.000Z/report.html")
                .display()
        );
    }
}
