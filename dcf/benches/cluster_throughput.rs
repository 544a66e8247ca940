//! Throughput of a 3-node `dcf-node` cluster on loopback with fsync on:
//! 256-byte values written by 1 and by 64 concurrent clients. Prints the
//! setup, ops/s and p50/p99 latency.
//!
//! `cargo bench -p dcf --bench cluster_throughput [-- SECONDS]`

mod common;

use common::{cores, pct, start_cluster, wait_leader};
use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn run(endpoints: &[String], clients: usize, secs: u64) -> (u64, Vec<u64>) {
    let value = Value::String("x".repeat(256));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..clients {
        let endpoints = endpoints.to_vec();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = KvClient::new(endpoints, Duration::from_secs(5));
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = c
                    .call(
                        RequestBody::Put {
                            key: format!("w{w}-{}", i % 1000),
                            value: value.clone(),
                        },
                        true,
                    )
                    .await;
                if r.outcome == Outcome::Ok {
                    lat.push(t.elapsed().as_micros() as u64);
                }
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    (all.len() as u64, all)
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_cluster(3, dir.path(), &[]);
    let clients = nodes.clients.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "setup: 3 dcf-node processes on 127.0.0.1, data in {} (fsync on every batch),",
        dir.path().display()
    );
    println!(
        "       values of 256 bytes, puts through the leader, {secs} s per run, {} cores",
        cores()
    );
    assert!(rt.block_on(wait_leader(&clients)), "no leader within 10 s");
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>10}",
        "clients", "ops", "ops/s", "p50 ms", "p99 ms"
    );
    for c in [1usize, 64] {
        let (n, lat) = rt.block_on(run(&clients, c, secs));
        println!(
            "{:>8} {:>10} {:>10.0} {:>10.2} {:>10.2}",
            c,
            n,
            n as f64 / secs as f64,
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }
    drop(nodes);
}
