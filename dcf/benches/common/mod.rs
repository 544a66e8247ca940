//! Starting a local `dcf-node` cluster for the benches.

#![allow(dead_code)]

use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody};
use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NODE_BIN: &str = env!("CARGO_BIN_EXE_dcf-node");

/// Running nodes, killed when dropped.
pub struct Nodes {
    pub children: Vec<Child>,
    pub clients: Vec<String>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `n` nodes on loopback with data under `dir` (node `i` in
/// `dir/n<i>`), each with `extra` arguments.
pub fn start_cluster(n: usize, dir: &Path, extra: &[&str]) -> Nodes {
    let peers: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let clients: Vec<String> = (0..n)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let config = format!(
        "[{}]",
        (0..n)
            .map(|i| format!(
                r#"{{"stream_id":1,"node_id":{},"ip":"127.0.0.1","port":{},"role":"{}"}}"#,
                i + 1,
                peers[i],
                if i == 0 { "LEADER" } else { "FOLLOWER" }
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut children = Vec::new();
    for (i, client_addr) in clients.iter().enumerate() {
        children.push(
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
                .arg(dir.join(format!("n{}", i + 1)))
                .args(extra)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn dcf-node"),
        );
    }
    Nodes { children, clients }
}

/// Waits until a put through `endpoints` succeeds.
pub async fn wait_leader(endpoints: &[String]) -> bool {
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

/// The `p` quantile of sorted microseconds, in milliseconds.
pub fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
}
