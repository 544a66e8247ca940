//! Throughput of a 3-node `dcf-node` cluster on loopback with fsync on:
//! 256-byte values written by 1 and by 64 concurrent clients. Prints the
//! setup, ops/s and p50/p99 latency.
//!
//! `cargo bench -p dcf --bench cluster_throughput [-- SECONDS]`

use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody};
use serde_json::Value;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODE_BIN: &str = env!("CARGO_BIN_EXE_dcf-node");

struct Nodes(Vec<Child>);
impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_leader(endpoints: &[String]) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let mut c = KvClient::new(endpoints.to_vec(), Duration::from_secs(2));
        let r = c
            .call(
                RequestBody::Put {
                    key: "warmup".into(),
                    value: Value::Null,
                },
                true,
            )
            .await;
        if r.outcome == Outcome::Ok {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

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

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let clients: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let config = format!(
        "[{}]",
        (0..3)
            .map(|i| format!(
                r#"{{"stream_id":1,"node_id":{},"ip":"127.0.0.1","port":{},"role":"{}"}}"#,
                i + 1,
                peers[i],
                if i == 0 { "LEADER" } else { "FOLLOWER" }
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut nodes = Nodes(Vec::new());
    for (i, client_addr) in clients.iter().enumerate() {
        nodes.0.push(
            Command::new(NODE_BIN)
                .args([
                    "--node-id",
                    &(i + 1).to_string(),
                    "--config",
                    &config,
                    "--client-addr",
                    client_addr,
                ])
                .arg("--data-dir")
                .arg(dir.path().join(format!("n{}", i + 1)))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn dcf-node"),
        );
    }
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
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
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
