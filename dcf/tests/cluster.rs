//! Process-level tests: real `dcf-node` processes on 127.0.0.1.

mod common;

use common::*;
use dcf::kv::protocol::{Outcome, RequestBody};
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant};

async fn last_index(c: &Cluster, id: u32) -> Option<u64> {
    c.status(id).await.and_then(|s| s["last_index"].as_u64())
}

async fn wait_caught_up(c: &Cluster, id: u32, leader: u32, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let (Some(a), Some(b)) = (last_index(c, id).await, last_index(c, leader).await) {
            if a == b {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The acceptance scenario: election within 5 s; 200 values through
/// dcfctl; SIGKILL of the leader; a new leader; the old one restarts and
/// catches up; every value reads back.
#[test]
fn writes_survive_leader_kill_and_restart() {
    leader_kill_scenario(Cluster::start(3));
}

/// The same scenario with LZ4-compressed frames between nodes.
#[test]
fn writes_survive_leader_kill_and_restart_with_lz4() {
    leader_kill_scenario(Cluster::start_with(3, lz4_params));
}

/// The same scenario over mutually authenticated TLS (with LZ4).
#[test]
fn writes_survive_leader_kill_and_restart_over_tls() {
    leader_kill_scenario(Cluster::start_with(3, tls_params));
}

fn leader_kill_scenario(c: Cluster) {
    let mut c = c;
    rt().block_on(async {
        let t0 = Instant::now();
        let leader = c
            .wait_leader(Duration::from_secs(5), None)
            .await
            .expect("leader within 5 s");
        eprintln!("leader {leader} elected after {:?}", t0.elapsed());
        c.assert_transport_options(leader);
        let mut client = c.client();
        for i in 0..200 {
            if i % 50 == 0 {
                // Some of the writes go through the dcfctl binary itself.
                let (code, out, err) = c.dcfctl(&["put", &format!("k{i}"), &format!("v{i}")]);
                assert_eq!(code, 0, "dcfctl put failed: {out} {err}");
            } else {
                let r = put_until_ok(&mut client, &format!("k{i}"), &format!("v{i}")).await;
                assert_eq!(r.outcome, Outcome::Ok, "put k{i}: {r:?}");
            }
        }
        c.kill(leader);
        let new_leader = c
            .wait_leader(Duration::from_secs(10), Some(leader))
            .await
            .expect("a new leader after the old one was killed");
        assert_ne!(new_leader, leader);
        c.start_node(leader);
        assert!(
            wait_caught_up(&c, leader, new_leader, Duration::from_secs(15)).await,
            "restarted node {leader} caught up with leader {new_leader}"
        );
        for i in 0..200 {
            let (code, out, err) = c.dcfctl(&["get", &format!("k{i}")]);
            assert_eq!(code, 0, "get k{i}: {err}");
            assert_eq!(out.trim_end(), format!("v{i}"));
        }
    });
}

/// Followers killed and restarted catch up; writes go on with a majority.
#[test]
fn follower_kill_restart_and_catch_up() {
    rt().block_on(async {
        let mut c = Cluster::start(5);
        let leader = c
            .wait_leader(Duration::from_secs(5), None)
            .await
            .expect("leader");
        let followers: Vec<u32> = (1..=5).filter(|i| *i != leader).take(2).collect();
        let mut client = c.client();
        for f in &followers {
            c.kill(*f);
        }
        for i in 0..50 {
            let r = put_until_ok(&mut client, &format!("f{i}"), "x").await;
            assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        }
        for f in &followers {
            c.start_node(*f);
        }
        let leader = c
            .wait_leader(Duration::from_secs(5), None)
            .await
            .expect("leader");
        for f in &followers {
            assert!(
                wait_caught_up(&c, *f, leader, Duration::from_secs(15)).await,
                "node {f} caught up"
            );
        }
    });
}

/// A node whose last log segment lost its tail (torn write) restarts,
/// says how much it dropped, and catches up from the leader.
#[test]
fn restart_from_torn_log_tail() {
    rt().block_on(async {
        let mut c = Cluster::start(3);
        let leader = c
            .wait_leader(Duration::from_secs(5), None)
            .await
            .expect("leader");
        let mut client = c.client();
        for i in 0..100 {
            let r = put_until_ok(&mut client, &format!("t{i}"), "0123456789").await;
            assert_eq!(r.outcome, Outcome::Ok);
        }
        let victim = (1..=3).find(|i| *i != leader).unwrap();
        assert!(wait_caught_up(&c, victim, leader, Duration::from_secs(10)).await);
        c.kill(victim);
        let segs = segment_files(&c.node(victim).data_dir);
        let last = segs.last().expect("a log segment").clone();
        let len = std::fs::metadata(&last).unwrap().len();
        // Cut into the middle of the last entry and add garbage.
        let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
        f.set_len(len - 7).unwrap();
        drop(f);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap();
        f.write_all(&[0xAB; 13]).unwrap();
        drop(f);
        c.start_node(victim);
        let leader = c
            .wait_leader(Duration::from_secs(5), None)
            .await
            .expect("leader");
        let caught_up = wait_caught_up(&c, victim, leader, Duration::from_secs(15)).await;
        assert!(
            caught_up,
            "victim caught up; its log:\n{}",
            c.stderr_of(victim)
        );
        assert!(c.is_running(victim));
        let log = c.stderr_of(victim);
        assert!(
            log.contains("dropped_bytes"),
            "the restart reports how much of the tail was dropped:\n{log}"
        );
        for i in (0..100).step_by(9) {
            let r = client
                .call(
                    RequestBody::Get {
                        key: format!("t{i}"),
                    },
                    true,
                )
                .await;
            assert_eq!(r.value, Value::String("0123456789".into()));
        }
    });
}

/// Random bytes on the peer port and on the client port leave the node
/// running and serving.
#[test]
fn random_bytes_do_not_hurt() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("DCF_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("random_bytes_do_not_hurt seed {seed} (replay with DCF_FUZZ_SEED={seed})");
    rt().block_on(async {
        let mut c = Cluster::start(3);
        let leader = c
            .wait_leader(Duration::from_secs(5), None)
            .await
            .expect("leader");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for round in 0..40 {
            let node = c.node(leader);
            let port = if round % 2 == 0 {
                node.peer_port
            } else {
                node.client_addr
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let n = rng.gen_range(1..4096);
                let mut buf = vec![0u8; n];
                rng.fill(&mut buf[..]);
                if round % 4 == 1 {
                    // a plausible length prefix followed by junk JSON
                    buf[..4].copy_from_slice(&((n as u32 - 4).to_be_bytes()));
                }
                let _ = s.write_all(&buf);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(c.is_running(leader), "node survived random bytes");
        let mut client = c.client();
        let r = put_until_ok(&mut client, "after-fuzz", "ok").await;
        assert_eq!(r.outcome, Outcome::Ok);
        let r = client
            .call(
                RequestBody::Get {
                    key: "after-fuzz".into(),
                },
                true,
            )
            .await;
        assert_eq!(r.value, Value::String("ok".into()));
    });
}

/// dcfctl: one-line errors and the documented exit codes.
#[test]
fn dcfctl_usage_and_errors() {
    let out = std::process::Command::new(CTL_BIN)
        .args(["--endpoints", "127.0.0.1:1", "frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    let port = free_port();
    let out = std::process::Command::new(CTL_BIN)
        .args(["--endpoints", &format!("127.0.0.1:{port}"), "get", "k"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert!(err.contains("reachable"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(NODE_BIN)
        .args([
            "--node-id",
            "1",
            "--config",
            "[{\"stream_id\":1,",
            "--client-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--config"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}
