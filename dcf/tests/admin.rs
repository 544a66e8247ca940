//! Process-level tests of every dcfctl admin command against real
//! `dcf-node` processes on loopback: membership changes, promote, demote,
//! PASSIVE role, priority, pause-rep, and minority mode.

mod common;

use common::*;
use dcf::kv::protocol::{Outcome, RequestBody};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn role_of(c: &Cluster, node: u32, member: u32) -> Option<String> {
    let s = c.status(node).await?;
    s["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["node_id"] == member)
        .map(|n| n["role"].as_str().unwrap_or("").to_string())
}

async fn put_all(c: &Cluster, prefix: &str, n: usize) {
    let mut client = c.client();
    for i in 0..n {
        let r = put_until_ok(&mut client, &format!("{prefix}{i}"), &format!("v{i}")).await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    }
}

/// Every key reads back its value. A leader elected a moment ago refuses
/// reads until it applied its first entry ("not ready"): retry those.
async fn all_readable(c: &Cluster, prefix: &str, n: usize) {
    let mut client = c.client();
    for i in 0..n {
        let key = format!("{prefix}{i}");
        let mut r = client
            .call(RequestBody::Get { key: key.clone() }, true)
            .await;
        let end = Instant::now() + Duration::from_secs(10);
        while r.outcome != Outcome::Ok && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
            r = client
                .call(RequestBody::Get { key: key.clone() }, true)
                .await;
        }
        assert_eq!(
            r.value,
            Value::String(format!("v{i}")),
            "{prefix}{i}: {r:?}"
        );
    }
}

#[test]
fn membership_promote_passive_priority_and_pause() {
    admin_scenario(Cluster::start(3));
}

/// Every admin command again, over TLS with LZ4 compression.
#[test]
fn admin_commands_over_tls_with_lz4() {
    admin_scenario(Cluster::start_with(3, tls_params));
}

fn admin_scenario(c: Cluster) {
    let mut c = c;
    rt().block_on(async {
        let leader = c
            .wait_leader(Duration::from_secs(5), None)
            .await
            .expect("leader");
        c.assert_transport_options(leader);
        put_all(&c, "a", 20).await;

        // set-param / get-param on the contacted node, with DCF's names and checks.
        let (code, _, err) = c.dcfctl_on(leader, &["set-param", "ELECTION_TIMEOUT", "1500"]);
        assert_eq!(code, 0, "set-param: {err}");
        let (code, out, _) = c.dcfctl_on(leader, &["get-param", "election_timeout"]);
        assert_eq!((code, out.trim()), (0, "1500"));
        let (code, _, err) = c.dcfctl_on(leader, &["set-param", "ELECTION_TIMEOUT", "0"]);
        assert_eq!(code, 1, "out-of-range value refused");
        assert!(err.contains("ELECTION_TIMEOUT"), "{err}");
        let (code, _, _) = c.dcfctl_on(leader, &["get-param", "NO_SUCH_PARAM"]);
        assert_eq!(code, 1);

        // Add a 4th node: start it with a config listing it, then add it on the leader.
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
        assert_eq!(
            code,
            0,
            "member add: {out} {err}\nleader log:\n{}",
            c.stderr_of(leader)
        );
        let seen = until(Duration::from_secs(10), async || {
            let mut lasts = Vec::new();
            for id in 1..=4 {
                let s = c.status(id).await?;
                let has4 = s["nodes"].as_array()?.iter().any(|n| n["node_id"] == 4);
                if !has4 {
                    return None;
                }
                lasts.push(s["last_index"].as_u64()?);
            }
            lasts.windows(2).all(|w| w[0] == w[1]).then_some(lasts)
        })
        .await;
        assert!(
            seen.is_some(),
            "node 4 in every node's status with matching last_index"
        );

        // A second change while none is in progress works; an invalid one is refused.
        let (code, _, err) = c.dcfctl_on(
            leader,
            &["member", "role", "--node-id", "9", "--role", "PASSIVE"],
        );
        assert_eq!(code, 1, "unknown node refused: {err}");

        // Promote a follower: leader within 5 s, no acknowledged write lost.
        let target = (1..=4).find(|i| *i != leader).unwrap();
        let t0 = Instant::now();
        let (code, out, err) = c.dcfctl_on(
            leader,
            &[
                "promote",
                "--node-id",
                &target.to_string(),
                "--timeout-ms",
                "5000",
            ],
        );
        assert_eq!(code, 0, "promote: {out} {err}");
        let now_leader = c.wait_leader(Duration::from_secs(5), None).await;
        assert_eq!(now_leader, Some(target), "promoted node leads");
        assert!(t0.elapsed() < Duration::from_secs(5));
        all_readable(&c, "a", 20).await;
        let leader = target;

        // PASSIVE and back (4 voters, so one may become passive).
        let other = (1..=4).find(|i| *i != leader).unwrap();
        let (code, out, err) = c.dcfctl_on(
            leader,
            &[
                "member",
                "role",
                "--node-id",
                &other.to_string(),
                "--role",
                "PASSIVE",
            ],
        );
        assert_eq!(code, 0, "to PASSIVE: {out} {err}");
        assert_eq!(role_of(&c, leader, other).await.as_deref(), Some("PASSIVE"));
        put_all(&c, "b", 10).await;
        let (code, out, err) = c.dcfctl_on(
            leader,
            &[
                "member",
                "role",
                "--node-id",
                &other.to_string(),
                "--role",
                "FOLLOWER",
            ],
        );
        assert_eq!(code, 0, "back to FOLLOWER: {out} {err}");
        assert_eq!(
            role_of(&c, leader, other).await.as_deref(),
            Some("FOLLOWER")
        );

        // pause-rep: the paused follower's log stops while others advance, then catches up.
        let paused = (1..=4).find(|i| *i != leader).unwrap();
        let (code, out, err) = c.dcfctl_on(
            leader,
            &[
                "pause-rep",
                "--node-id",
                &paused.to_string(),
                "--time-us",
                "2000000",
            ],
        );
        assert_eq!(code, 0, "pause-rep: {out} {err}");
        let before = c.status(paused).await.unwrap()["last_index"]
            .as_u64()
            .unwrap();
        put_all(&c, "c", 10).await;
        let during = c.status(paused).await.unwrap()["last_index"]
            .as_u64()
            .unwrap();
        assert_eq!(before, during, "no entries while paused");
        let caught = until(Duration::from_secs(10), async || {
            let a = c.status(paused).await?["last_index"].as_u64()?;
            let b = c.status(leader).await?["last_index"].as_u64()?;
            (a == b).then_some(())
        })
        .await;
        assert!(caught.is_some(), "caught up after the pause");

        // Remove a node.
        let gone = (1..=4).find(|i| *i != leader).unwrap();
        let (code, out, err) = c.dcfctl_on(
            leader,
            &["member", "remove", "--node-id", &gone.to_string()],
        );
        assert_eq!(code, 0, "member remove: {out} {err}");
        let s = c.status(leader).await.unwrap();
        assert!(!s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node_id"] == gone));
        put_all(&c, "d", 10).await;

        // Demote: another node ends up leading.
        let (code, out, err) = c.dcfctl_on(leader, &["demote"]);
        assert_eq!(code, 0, "demote: {out} {err}");
        let next = c.wait_leader(Duration::from_secs(10), Some(leader)).await;
        assert!(next.is_some(), "someone else leads after demote");
        all_readable(&c, "d", 10).await;

        // Priority: the highest-priority healthy node ends up leader.
        let leader = c
            .wait_leader(Duration::from_secs(5), None)
            .await
            .expect("leader");
        let members: Vec<u64> = c.status(leader).await.unwrap()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node_id"].as_u64().unwrap())
            .collect();
        let favourite = *members.iter().find(|id| **id != leader as u64).unwrap() as u32;
        let (code, out, err) = c.dcfctl_on(
            leader,
            &[
                "set-priority",
                "--node-id",
                &favourite.to_string(),
                "--priority",
                "10",
            ],
        );
        assert_eq!(code, 0, "set-priority: {out} {err}");
        let s = c.status(leader).await.unwrap();
        let p = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == favourite)
            .unwrap()["priority"]
            .clone();
        assert_eq!(p, 10);
        let became = until(Duration::from_secs(15), async || {
            (c.wait_leader(Duration::from_millis(500), None).await == Some(favourite)).then_some(())
        })
        .await;
        assert!(
            became.is_some(),
            "the priority-10 node {favourite} ends up leader"
        );
        all_readable(&c, "d", 10).await;
    });
}

/// A 3-node cluster whose two other nodes are killed keeps serving after
/// `set-work-mode minority --vote-num 1` on the survivor, and returns to
/// normal when they come back.
#[test]
fn minority_mode_keeps_a_survivor_serving() {
    rt().block_on(async {
        let mut c = Cluster::start(3);
        let leader = c
            .wait_leader(Duration::from_secs(5), None)
            .await
            .expect("leader");
        put_all(&c, "m", 10).await;
        let survivor = leader;
        for id in 1..=3 {
            if id != survivor {
                c.kill(id);
            }
        }
        let (code, out, err) =
            c.dcfctl_on(survivor, &["set-work-mode", "minority", "--vote-num", "1"]);
        assert_eq!(code, 0, "set-work-mode minority: {out} {err}");
        let s = c.status(survivor).await.unwrap();
        assert_eq!(s["work_mode"], "MINORITY");
        let mut client = dcf::kv::client::KvClient::new(
            vec![c.node(survivor).client_addr.clone()],
            Duration::from_secs(5),
        );
        for i in 0..10 {
            let r = put_until_ok(&mut client, &format!("x{i}"), &format!("v{i}")).await;
            assert_eq!(r.outcome, Outcome::Ok, "write in minority mode: {r:?}");
        }
        for id in 1..=3 {
            if id != survivor {
                c.start_node(id);
            }
        }
        let (code, out, err) = c.dcfctl_on(survivor, &["set-work-mode", "normal"]);
        assert_eq!(code, 0, "back to normal: {out} {err}");
        let converged = until(Duration::from_secs(15), async || {
            let mut lasts = Vec::new();
            for id in 1..=3 {
                let s = c.status(id).await?;
                if s["work_mode"] != "NORMAL" {
                    return None;
                }
                lasts.push(s["last_index"].as_u64()?);
            }
            lasts.windows(2).all(|w| w[0] == w[1]).then_some(())
        })
        .await;
        assert!(
            converged.is_some(),
            "all nodes back in normal mode with the same log"
        );
        let leader = c
            .wait_leader(Duration::from_secs(10), None)
            .await
            .expect("a leader in normal mode");
        let _ = leader;
        all_readable(&c, "m", 10).await;
        all_readable(&c, "x", 10).await;
        // Bad usage is refused before anything is sent.
        let (code, _, _) = c.dcfctl_on(survivor, &["set-work-mode", "minority"]);
        assert_eq!(code, 64);
    });
}
