//! A long write run on a 3-node `dcf-node` cluster on loopback (fsync on),
//! once with automatic checkpoints and once without (the baseline, in the
//! same invocation): 64 clients put 256-byte values over a fixed set of
//! keys, so the state stays the same size and only the history grows.
//!
//! Prints, for each run: throughput over 100 ms windows while some node
//! was writing a checkpoint and while none was (medians), the longest gap
//! between two completed writes, each node's resident memory at every
//! quarter of the run and its peak, and the log's first index at the end.
//!
//! `cargo bench -p dcf --bench long_run [-- PUTS [SNAPSHOT_INTERVAL [KEYS]]]`
//! (defaults: 500,000 puts, --snapshot-interval 10,000, 1,000 keys; more
//! keys make each checkpoint bigger).

mod common;

use common::{cores, pct, start_cluster, wait_leader, Nodes};
use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: u64 = 64;
const WINDOW: Duration = Duration::from_millis(100);

/// Resident memory of a process in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// True while some node has a checkpoint being written (its temporary file).
fn checkpointing(dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| {
        std::fs::read_dir(d.join("kv")).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "tmp"))
        })
    })
}

struct Sample {
    done: u64,
    checkpointing: bool,
    rss: Vec<u64>,
}

struct Report {
    ops: u64,
    secs: f64,
    during: Vec<f64>,
    outside: Vec<f64>,
    max_gap_ms: f64,
    lat: Vec<u64>,
    rss_at: Vec<Vec<u64>>,
    rss_peak: Vec<u64>,
    first_index: Vec<u64>,
}

async fn first_index(endpoint: &str) -> u64 {
    let mut c = KvClient::new(vec![endpoint.to_string()], Duration::from_secs(2));
    let r = c.call(RequestBody::Status, false).await;
    r.value["first_index"].as_u64().unwrap_or(0)
}

async fn run(nodes: &Nodes, dir: &Path, puts: u64, keys: u64) -> Report {
    let dirs: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("n{i}"))).collect();
    let pids: Vec<u32> = nodes.children.iter().map(|c| c.id()).collect();
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let last_done_us = Arc::new(AtomicU64::new(0));
    let max_gap_us = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let value = Value::String("x".repeat(256));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (endpoints, value) = (nodes.clients.clone(), value.clone());
        let (done, next) = (done.clone(), next.clone());
        let (last_done_us, max_gap_us) = (last_done_us.clone(), max_gap_us.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = KvClient::new(endpoints, Duration::from_secs(5));
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= puts {
                    return lat;
                }
                let t = Instant::now();
                let r = c
                    .call(
                        RequestBody::Put {
                            key: format!("k{}", i % keys),
                            value: value.clone(),
                        },
                        true,
                    )
                    .await;
                if r.outcome == Outcome::Ok {
                    lat.push(t.elapsed().as_micros() as u64);
                    done.fetch_add(1, Ordering::Relaxed);
                    let now = start.elapsed().as_micros() as u64;
                    let prev = last_done_us.swap(now, Ordering::Relaxed);
                    max_gap_us.fetch_max(now.saturating_sub(prev), Ordering::Relaxed);
                }
            }
        }));
    }
    // Sample throughput, checkpoint activity and memory every window.
    let mut samples = Vec::new();
    let mut rss_peak = vec![0u64; 3];
    while tasks.iter().any(|t| !t.is_finished()) {
        tokio::time::sleep(WINDOW).await;
        let rss: Vec<u64> = pids.iter().map(|p| rss_kib(*p).unwrap_or(0)).collect();
        for (p, r) in rss_peak.iter_mut().zip(&rss) {
            *p = (*p).max(*r);
        }
        samples.push(Sample {
            done: done.load(Ordering::Relaxed),
            checkpointing: checkpointing(&dirs),
            rss,
        });
    }
    let secs = start.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    lat.sort_unstable();
    let (mut during, mut outside) = (Vec::new(), Vec::new());
    for w in samples.windows(2) {
        let rate = (w[1].done - w[0].done) as f64 / WINDOW.as_secs_f64();
        if w[0].checkpointing || w[1].checkpointing {
            during.push(rate);
        } else {
            outside.push(rate);
        }
    }
    let total = done.load(Ordering::Relaxed);
    let rss_at = [0.25, 0.5, 0.75, 1.0]
        .iter()
        .map(|q| {
            let want = (total as f64 * q) as u64;
            samples
                .iter()
                .find(|s| s.done >= want)
                .or(samples.last())
                .map(|s| s.rss.clone())
                .unwrap_or_default()
        })
        .collect();
    let mut firsts = Vec::new();
    for c in &nodes.clients {
        firsts.push(first_index(c).await);
    }
    Report {
        ops: total,
        secs,
        during,
        outside,
        max_gap_ms: max_gap_us.load(Ordering::Relaxed) as f64 / 1000.0,
        lat,
        rss_at,
        rss_peak,
        first_index: firsts,
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn print(name: &str, r: &mut Report) {
    println!("{name}:");
    println!(
        "  {} puts in {:.1} s: {:.0} ops/s; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        r.ops,
        r.secs,
        r.ops as f64 / r.secs,
        pct(&r.lat, 0.5),
        pct(&r.lat, 0.99),
        pct(&r.lat, 0.999),
        pct(&r.lat, 1.0)
    );
    println!(
        "  ops/s per 100 ms window, median: {:.0} with no checkpoint being written ({} windows), {:.0} while one was ({} windows)",
        median(&mut r.outside),
        r.outside.len(),
        median(&mut r.during),
        r.during.len()
    );
    println!(
        "  longest gap between two completed writes: {:.0} ms",
        r.max_gap_ms
    );
    for n in 0..3 {
        let at: Vec<String> = r
            .rss_at
            .iter()
            .map(|v| format!("{:.1}", v.get(n).copied().unwrap_or(0) as f64 / 1024.0))
            .collect();
        println!(
            "  n{} RSS MiB at 25/50/75/100%: {}  peak {:.1}",
            n + 1,
            at.join(" / "),
            r.rss_peak[n] as f64 / 1024.0
        );
    }
    println!("  log first index at the end: {:?}", r.first_index);
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<u64>().ok());
    let puts = args.next().unwrap_or(500_000);
    let interval = args.next().unwrap_or(10_000);
    let keys = args.next().unwrap_or(1_000).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "setup: 3 dcf-node processes on 127.0.0.1 (fsync on every batch), {CLIENTS} clients, \
         {puts} puts of 256-byte values over {keys} keys, {} cores",
        cores()
    );
    let mut reports = Vec::new();
    for (name, interval) in [
        (
            format!("with checkpoints (--snapshot-interval {interval})"),
            interval,
        ),
        (
            "baseline without checkpoints (--snapshot-interval 0)".to_string(),
            0,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let iv = interval.to_string();
        let nodes = start_cluster(3, dir.path(), &["--snapshot-interval", &iv]);
        assert!(
            rt.block_on(wait_leader(&nodes.clients)),
            "no leader within 10 s"
        );
        let mut r = rt.block_on(run(&nodes, dir.path(), puts, keys));
        print(&name, &mut r);
        reports.push(r);
        drop(nodes);
    }
    let (a, b) = (&reports[0], &reports[1]);
    println!(
        "ratio with/without checkpoints: throughput {:.2}, peak RSS of n1 {:.2}",
        (a.ops as f64 / a.secs) / (b.ops as f64 / b.secs),
        a.rss_peak[0] as f64 / b.rss_peak[0].max(1) as f64
    );
}
