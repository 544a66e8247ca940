//! Checkpoints of `dcf-node` on real processes: acknowledged writes and
//! committed membership survive `dcfctl truncate` followed by a SIGKILL of
//! every node; a node that needs compacted entries gets the leader's
//! checkpoint; automatic checkpoints keep the log short.

mod common;

use common::*;
use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn index_of(c: &Cluster, id: u32, field: &str) -> Option<u64> {
    c.status(id).await?[field].as_u64()
}

/// Waits until every listed node has applied what the leader committed.
async fn wait_applied(c: &Cluster, leader: u32, ids: &[u32]) {
    let want = index_of(c, leader, "commit_index")
        .await
        .expect("leader answers");
    for &id in ids {
        let done = until(Duration::from_secs(20), async || {
            (index_of(c, id, "applied_index").await? >= want).then_some(())
        })
        .await;
        assert!(done.is_some(), "node {id} did not apply up to {want}");
    }
}

fn members_of(status: &Value) -> Vec<u64> {
    let mut v: Vec<u64> = status["nodes"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n["node_id"].as_u64()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Reads every key `k0..k{n}` through `endpoint` and checks its value.
async fn all_read_back(endpoint: &str, n: u32, value: &str) {
    let mut client = KvClient::new(vec![endpoint.to_string()], Duration::from_secs(5));
    for i in 0..n {
        let key = format!("k{i}");
        let r = until(Duration::from_secs(20), async || {
            let r = client
                .call(RequestBody::Get { key: key.clone() }, true)
                .await;
            (r.outcome == Outcome::Ok).then_some(r)
        })
        .await
        .unwrap_or_else(|| panic!("get {key} through {endpoint} never succeeded"));
        assert_eq!(r.value, Value::String(value.into()), "{key}");
    }
}

/// The scenario that once lost 44 acknowledged writes: puts, `dcfctl
/// truncate` on every node, SIGKILL of every node, restart. Every key
/// reads back, and a membership change committed before the truncation
/// (node 4 removed) is what every restarted node uses, although the
/// restart passes the first-start configuration that still lists node 4.
#[test]
fn acknowledged_writes_and_membership_survive_truncate_and_a_full_kill() {
    let mut c = Cluster::start(4);
    rt().block_on(async {
        let leader = c
            .wait_leader(Duration::from_secs(20), None)
            .await
            .expect("a leader");
        let leader = if leader == 4 {
            let (code, out, err) = c.dcfctl_on(4, &["demote"]);
            assert_eq!(code, 0, "demote: {out} {err}");
            c.wait_leader(Duration::from_secs(20), Some(4))
                .await
                .expect("a leader other than node 4")
        } else {
            leader
        };
        let (code, out, err) = c.dcfctl_on(leader, &["member", "remove", "--node-id", "4"]);
        assert_eq!(code, 0, "member remove: {out} {err}");
        c.kill(4);

        let mut client = c.client();
        for i in 0..50 {
            let r = put_until_ok(&mut client, &format!("k{i}"), "v").await;
            assert_eq!(r.outcome, Outcome::Ok, "put k{i}: {r:?}");
        }
        wait_applied(&c, leader, &[1, 2, 3]).await;
        for id in 1..=3 {
            let (code, out, err) = c.dcfctl_on(id, &["truncate", "--first-kept", "45"]);
            assert_eq!(code, 0, "truncate on {id}: {out} {err}");
            let first = index_of(&c, id, "first_index").await.unwrap();
            assert!(first >= 45, "node {id} first index {first} after truncate");
        }
        for id in 1..=3 {
            c.kill(id);
        }
        for id in 1..=3 {
            c.start_node(id);
        }
        let leader = c
            .wait_leader(Duration::from_secs(20), Some(4))
            .await
            .expect("a leader after the restart");
        all_read_back(&c.node(leader).client_addr, 50, "v").await;
        for id in 1..=3 {
            let st = c.status(id).await.expect("node answers");
            assert_eq!(members_of(&st), vec![1, 2, 3], "node {id}: {st}");
            assert!(st["first_index"].as_u64().unwrap() >= 45, "node {id}: {st}");
        }
        // Through dcfctl, as a user would check it.
        let (code, out, err) = c.dcfctl(&["get", "k0"]);
        assert_eq!((code, out.trim()), (0, "v"), "{err}");
    });
}

/// A node added after the leader compacted its log catches up by
/// checkpoint transfer, can lead, and serves every key.
#[test]
fn a_node_added_after_compaction_catches_up_by_checkpoint_and_leads() {
    let mut c = Cluster::start(3);
    rt().block_on(async {
        let leader = c
            .wait_leader(Duration::from_secs(20), None)
            .await
            .expect("a leader");
        let mut client = c.client();
        for i in 0..200 {
            let r = put_until_ok(&mut client, &format!("k{i}"), "w").await;
            assert_eq!(r.outcome, Outcome::Ok, "put k{i}: {r:?}");
        }
        wait_applied(&c, leader, &[1, 2, 3]).await;
        for id in 1..=3 {
            let (code, out, err) = c.dcfctl_on(id, &["truncate", "--first-kept", "150"]);
            assert_eq!(code, 0, "truncate on {id}: {out} {err}");
        }
        let n4 = c.start_extra_node();
        let port4 = c.node(n4).peer_port.to_string();
        let (code, out, err) = c.dcfctl_on(
            leader,
            &[
                "member",
                "add",
                "--node-id",
                "4",
                "--ip",
                "127.0.0.1",
                "--port",
                &port4,
                "--role",
                "FOLLOWER",
            ],
        );
        assert_eq!(code, 0, "member add: {out} {err}\n{}", c.stderr_of(n4));
        let log4 = c.stderr_of(n4);
        assert!(
            log4.contains("installed a checkpoint"),
            "node 4 did not get a checkpoint:\n{log4}"
        );
        assert!(!log4.contains("MISSING_LOG"), "{log4}");
        let (code, out, err) = c.dcfctl_on(
            leader,
            &["promote", "--node-id", "4", "--timeout-ms", "10000"],
        );
        assert_eq!(code, 0, "promote: {out} {err}");
        let st = c.status(n4).await.expect("node 4 answers");
        assert_eq!(st["role"], "LEADER", "{st}");
        all_read_back(&c.node(n4).client_addr, 200, "w").await;
    });
}

/// A follower down while the others compacted gets the leader's
/// checkpoint when it comes back, instead of raising MISSING_LOG.
#[test]
fn a_follower_behind_the_first_index_catches_up_by_checkpoint() {
    let mut c = Cluster::start(3);
    rt().block_on(async {
        let leader = c
            .wait_leader(Duration::from_secs(20), None)
            .await
            .expect("a leader");
        let lagging = (1..=3).find(|i| *i != leader).unwrap();
        c.kill(lagging);
        let mut client = c.client();
        for i in 0..100 {
            let r = put_until_ok(&mut client, &format!("k{i}"), "x").await;
            assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        }
        let others: Vec<u32> = (1..=3).filter(|i| *i != lagging).collect();
        wait_applied(&c, leader, &others).await;
        for &id in &others {
            let (code, out, err) = c.dcfctl_on(id, &["truncate", "--first-kept", "90"]);
            assert_eq!(code, 0, "truncate on {id}: {out} {err}");
        }
        // The leader's transport still queues messages for the dead
        // follower that carry the entries it misses; restart the leader so
        // that only the compacted log is left to catch up from.
        c.kill(leader);
        c.start_node(leader);
        let leader = c
            .wait_leader(Duration::from_secs(20), Some(lagging))
            .await
            .expect("a leader among the two up-to-date nodes");
        assert_eq!(
            put_until_ok(&mut client, "after-restart", "x")
                .await
                .outcome,
            Outcome::Ok
        );
        c.start_node(lagging);
        let leader_last = index_of(&c, leader, "last_index").await.unwrap();
        let caught = until(Duration::from_secs(20), async || {
            (index_of(&c, lagging, "applied_index").await? >= leader_last).then_some(())
        })
        .await;
        assert!(
            caught.is_some(),
            "node {lagging} did not catch up:\n{}",
            c.stderr_of(lagging)
        );
        let log = c.stderr_of(lagging);
        assert!(log.contains("installed a checkpoint"), "{log}");
        assert!(!log.contains("MISSING_LOG"), "{log}");
        // Its own state serves the keys once it leads.
        let (code, out, err) = c.dcfctl_on(
            leader,
            &[
                "promote",
                "--node-id",
                &lagging.to_string(),
                "--timeout-ms",
                "10000",
            ],
        );
        assert_eq!(code, 0, "promote: {out} {err}");
        all_read_back(&c.node(lagging).client_addr, 100, "x").await;
    });
}

/// `--snapshot-interval 1000` with 20,000 puts of 1 KiB: every node
/// checkpoints and compacts on its own.
#[test]
fn automatic_checkpoints_compact_every_nodes_log() {
    let mut c = Cluster::start_with_args(3, |_| Vec::new(), &["--snapshot-interval", "1000"]);
    rt().block_on(async {
        c.wait_leader(Duration::from_secs(20), None)
            .await
            .expect("a leader");
        let value = "x".repeat(1024);
        let started = Instant::now();
        let writers: Vec<_> = (0..32)
            .map(|w| {
                let mut client = c.client();
                let value = value.clone();
                tokio::spawn(async move {
                    for i in 0..625 {
                        let key = format!("k{}", (w * 625 + i) % 500);
                        let r = put_until_ok(&mut client, &key, &value).await;
                        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.expect("writer");
        }
        eprintln!("20,000 puts of 1 KiB in {:?}", started.elapsed());
        let compacted = until(Duration::from_secs(20), async || {
            let mut firsts = Vec::new();
            for id in 1..=3 {
                firsts.push(index_of(&c, id, "first_index").await?);
            }
            firsts.iter().all(|f| *f > 1).then_some(firsts)
        })
        .await;
        assert!(compacted.is_some(), "some node never compacted its log");
        eprintln!("first indexes: {compacted:?}");
        for id in 1..=3 {
            // Finished checkpoints (one may be being written right now).
            let files = std::fs::read_dir(c.node(id).data_dir.join("kv"))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ckpt"))
                })
                .count();
            assert!(
                (1..=2).contains(&files),
                "node {id} keeps {files} checkpoints"
            );
        }
    });
    let _ = &mut c;
}
