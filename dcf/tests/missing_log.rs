//! With checkpoint transfer off (`--no-snapshot-transfer`, DCF's own
//! behaviour), a follower that falls behind the leader's first index (the
//! entries it needs were truncated away with `dcf_truncate`) reports DCF's
//! MISSING_LOG exception, keeps reporting it once a second, stays up, and
//! does not hold up the rest of the cluster.

mod common;

use common::*;
use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// `dcfctl truncate` against one node only (truncation is node-local).
fn truncate_on(c: &Cluster, id: u32, first_kept: u64) -> (i32, String, String) {
    let out = Command::new(CTL_BIN)
        .arg("--endpoints")
        .arg(&c.node(id).client_addr)
        .arg("truncate")
        .arg("--first-kept")
        .arg(first_kept.to_string())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn count_missing_log(c: &Cluster, id: u32) -> usize {
    c.stderr_of(id)
        .lines()
        .filter(|l| l.contains("MISSING_LOG"))
        .count()
}

async fn index_of(c: &Cluster, id: u32, field: &str) -> u64 {
    c.status(id).await.expect("node answers")[field]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_behind_the_leaders_first_index_reports_missing_log() {
    let mut c = Cluster::start_with_args(3, |_| Vec::new(), &["--no-snapshot-transfer"]);
    let leader = c
        .wait_leader(Duration::from_secs(20), None)
        .await
        .expect("a leader");
    let mut client = c.client();
    assert_eq!(
        put_until_ok(&mut client, "k0", "v0").await.outcome,
        Outcome::Ok
    );
    let lagging = (1..=3).find(|i| *i != leader).unwrap();
    let other = (1..=3).find(|i| *i != leader && *i != lagging).unwrap();
    c.kill(lagging);

    // Writes continue on the remaining two.
    for i in 1..=40 {
        let r = put_until_ok(&mut client, &format!("k{i}"), "v").await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    }

    // Truncate the prefix on both live nodes, up to what each applied.
    for id in [leader, other] {
        let end = Instant::now() + Duration::from_secs(10);
        let want = index_of(&c, leader, "commit_index").await;
        while index_of(&c, id, "applied_index").await < want && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let applied = index_of(&c, id, "applied_index").await;
        let (code, out, err) = truncate_on(&c, id, applied);
        assert_eq!(code, 0, "truncate on {id}: {out} {err}");
        let first = index_of(&c, id, "first_index").await;
        assert!(first > 20, "node {id} first index {first} after truncate");
    }
    // The leader's transport still queues (up to 4096) messages for the
    // dead follower, built before the truncation and carrying the entries
    // it misses; a follower down long enough would find them dropped.
    // Restart the leader to get there quickly (its queue goes with it).
    c.kill(leader);
    c.start_node(leader);
    let leader = c
        .wait_leader(Duration::from_secs(20), Some(lagging))
        .await
        .expect("a leader among the two up-to-date nodes");
    let other = (1..=3).find(|i| *i != leader && *i != lagging).unwrap();
    assert_eq!(
        put_until_ok(&mut client, "after-restart", "x")
            .await
            .outcome,
        Outcome::Ok
    );

    c.start_node(lagging);
    // MISSING_LOG shows up in the restarted follower's log...
    let end = Instant::now() + Duration::from_secs(20);
    while count_missing_log(&c, lagging) == 0 {
        assert!(
            Instant::now() < end,
            "no MISSING_LOG from node {lagging}:\n{}",
            c.stderr_of(lagging)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_seen = count_missing_log(&c, lagging);

    // ...and keeps coming (about once a second) while the other two keep
    // serving writes, and the follower neither crashes nor catches up.
    let mut ok = 0;
    let until = Instant::now() + Duration::from_secs(4);
    let mut n = 100;
    while Instant::now() < until {
        n += 1;
        let r = put_until_ok(&mut client, &format!("k{n}"), "w").await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        ok += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok >= 10, "only {ok} writes in 4 s");
    let later = count_missing_log(&c, lagging);
    assert!(
        later >= first_seen + 2,
        "MISSING_LOG not repeated: {first_seen} then {later}"
    );
    assert!(c.is_running(lagging), "node {lagging} crashed");
    let st = c.status(lagging).await.expect("the lagging node answers");
    let leader_first = index_of(&c, leader, "first_index").await;
    assert!(
        st["last_index"].as_u64().unwrap() + 1 < leader_first,
        "{st}"
    );

    // The cluster still reads and writes linearizably through the others.
    let mut reader = KvClient::new(
        vec![
            c.node(leader).client_addr.clone(),
            c.node(other).client_addr.clone(),
        ],
        Duration::from_secs(5),
    );
    let r = reader
        .call(RequestBody::Get { key: "k40".into() }, true)
        .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(r.value, Value::String("v".into()));
    assert!(c.is_running(leader) && c.is_running(other));
}
