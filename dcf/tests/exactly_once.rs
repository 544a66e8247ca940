//! Exactly-once writes and the planted bugs around them, on real
//! `dcf-node` processes: a tagged write sent again is applied once,
//! before and after a full restart and a restart from checkpoints; the
//! planted `duplicate-apply` applies it twice; the planted
//! `truncate-without-checkpoint` loses writes in the automatic compaction
//! that the correct node survives.

mod common;

use common::*;
use dcf::kv::client::KvClient;
use dcf::kv::machine::WriteTag;
use dcf::kv::protocol::{Outcome, RequestBody};
use serde_json::{json, Value};
use std::time::Duration;

/// Sends the same tagged append to the leader until a node answers it.
async fn tagged_append(c: &Cluster, tag: WriteTag, value: &str) -> Value {
    let mut client = c.client();
    let r = until(Duration::from_secs(30), async || {
        let r = client
            .call_once(
                RequestBody::Append {
                    key: "l".into(),
                    value: json!(value),
                },
                Some(tag),
                true,
            )
            .await;
        (r.outcome == Outcome::Ok).then_some(r)
    })
    .await
    .expect("the append was answered");
    r.value
}

/// The list `l` as the leader reads it.
async fn read_list(c: &Cluster) -> Value {
    let mut client = c.client();
    until(Duration::from_secs(30), async || {
        let r = client
            .call(RequestBody::Get { key: "l".into() }, true)
            .await;
        (r.outcome == Outcome::Ok).then_some(r.value)
    })
    .await
    .expect("a read of l")
}

fn restart_all(c: &mut Cluster, n: u32) {
    for id in 1..=n {
        c.kill(id);
    }
    for id in 1..=n {
        c.start_node(id);
    }
}

/// The same tag sent three times (before and after a SIGKILL of every
/// node, then after a truncation and another, so the table comes from the
/// log and then from checkpoints) is applied once.
#[test]
fn a_tagged_write_sent_again_is_applied_once_across_restarts() {
    let mut c = Cluster::start(3);
    rt().block_on(async {
        c.wait_leader(Duration::from_secs(20), None)
            .await
            .expect("a leader");
        let tag = WriteTag { client: 77, seq: 1 };
        tagged_append(&c, tag, "a").await;
        tagged_append(&c, tag, "a").await;
        assert_eq!(read_list(&c).await, json!(["a"]));
    });
    restart_all(&mut c, 3);
    rt().block_on(async {
        c.wait_leader(Duration::from_secs(20), None)
            .await
            .expect("a leader after the restart");
        tagged_append(&c, tag_of(77, 1), "a").await;
        assert_eq!(read_list(&c).await, json!(["a"]), "rebuilt from the log");
        for id in 1..=3 {
            let (code, out, err) = c.dcfctl_on(id, &["truncate", "--first-kept", "1000000"]);
            assert_eq!(code, 0, "truncate on {id}: {out} {err}");
        }
    });
    restart_all(&mut c, 3);
    rt().block_on(async {
        c.wait_leader(Duration::from_secs(20), None)
            .await
            .expect("a leader after the second restart");
        tagged_append(&c, tag_of(77, 1), "a").await;
        // The next tag of the client is a new write.
        tagged_append(&c, tag_of(77, 2), "b").await;
        assert_eq!(
            read_list(&c).await,
            json!(["a", "b"]),
            "rebuilt from checkpoints"
        );
    });
}

fn tag_of(client: u64, seq: u64) -> WriteTag {
    WriteTag { client, seq }
}

/// PLANTED BUG (duplicate-apply): the same tag twice is applied twice.
#[test]
fn the_planted_duplicate_apply_applies_a_retry_again() {
    std::env::set_var(dcf::planted::ALLOW_ENV, "1");
    let c = Cluster::start_with_args(3, |_| Vec::new(), &["--planted-bug", "duplicate-apply"]);
    rt().block_on(async {
        c.wait_leader(Duration::from_secs(20), None)
            .await
            .expect("a leader");
        tagged_append(&c, tag_of(5, 1), "a").await;
        tagged_append(&c, tag_of(5, 1), "a").await;
        assert_eq!(read_list(&c).await, json!(["a", "a"]));
    });
}

/// Puts `n` keys, lets automatic compaction run on every node, kills and
/// restarts them all, and returns what `k0` reads then.
fn k0_after_compaction_and_restart(node_args: &[&str]) -> Value {
    let mut c = Cluster::start_with_args(3, |_| Vec::new(), node_args);
    rt().block_on(async {
        c.wait_leader(Duration::from_secs(20), None)
            .await
            .expect("a leader");
        let mut client = c.client();
        for i in 0..300 {
            let r = put_until_ok(&mut client, &format!("k{i}"), "v").await;
            assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        }
        let compacted = until(Duration::from_secs(30), async || {
            for id in 1..=3 {
                let first = c.status(id).await?["first_index"].as_u64()?;
                if first <= 100 {
                    return None;
                }
            }
            Some(())
        })
        .await;
        assert!(compacted.is_some(), "some node never compacted its log");
    });
    restart_all(&mut c, 3);
    rt().block_on(async {
        c.wait_leader(Duration::from_secs(20), None)
            .await
            .expect("a leader after the restart");
        let mut client = KvClient::new(c.endpoints(), Duration::from_secs(5));
        until(Duration::from_secs(30), async || {
            let r = client
                .call(RequestBody::Get { key: "k0".into() }, true)
                .await;
            (r.outcome == Outcome::Ok).then_some(r.value)
        })
        .await
        .expect("a read of k0")
    })
}

/// Automatic compaction every 50 entries: the correct node checkpoints
/// first and keeps `k0`; PLANTED BUG (truncate-without-checkpoint) loses it.
#[test]
fn automatic_compaction_without_a_checkpoint_loses_writes() {
    let args = ["--snapshot-interval", "50", "--snapshot-retention", "10"];
    assert_eq!(k0_after_compaction_and_restart(&args), json!("v"));
    std::env::set_var(dcf::planted::ALLOW_ENV, "1");
    let mut buggy = args.to_vec();
    buggy.extend(["--planted-bug", "truncate-without-checkpoint"]);
    assert_eq!(k0_after_compaction_and_restart(&buggy), Value::Null);
}
