//! Targeted regression tests for core bugs found while building the
//! simulator (`tests/sim.rs`), each driven step by step on a small,
//! lossless network with controllable partitions.

use dcf_core::testing::{fixtures, Net};
use dcf_core::*;

fn opts(i: NodeId) -> CoreOptions {
    let mut o = CoreOptions::new(i, 1);
    o.election_timeout_ms = 100;
    o.heartbeat_interval_ms = 20;
    o
}

/// A follower used to echo, in the acknowledgements it sends when storage
/// reports durability, the highest heartbeat round it had ever seen, from
/// any leader. A new leader with a smaller round counter then counted that
/// follower as having confirmed reads it never saw, and served a stale read
/// after another leader had already committed a newer write.
#[test]
fn stale_heartbeat_rounds_from_an_old_leader_do_not_confirm_reads() {
    let mut net = Net::new(3, 1, opts);
    // Node 1 leads for a long time: its heartbeat round counter grows large.
    net.run(2000);
    assert_eq!(net.leaders(), vec![(1, 1)]);
    // Node 1 is cut off; 2 or 3 takes over with a fresh, small counter.
    net.isolated.insert(1);
    net.run(400);
    let b = net.newest_leader().unwrap();
    assert_ne!(b, 1);
    // Some writes at b, so the follower acknowledges durability.
    for k in 0..3 {
        let now = net.now;
        net.nodes
            .get_mut(&b)
            .unwrap()
            .propose(now, k, vec![k as u8])
            .unwrap();
        net.drain(b);
    }
    net.run(50);
    // Now b is cut off and the other two elect a leader of a newer term,
    // which commits a write.
    net.isolated.clear();
    net.isolated.insert(b);
    let mut c = None;
    for _ in 0..150 {
        net.run(1);
        c = net
            .leaders()
            .into_iter()
            .find(|(n, _)| *n != b && net.nodes[n].is_leader_ready())
            .map(|(n, _)| n);
        if c.is_some() {
            break;
        }
    }
    let c = c.expect("a new leader within 150 ms");
    let now = net.now;
    let (_, x) = net
        .nodes
        .get_mut(&c)
        .unwrap()
        .propose(now, 99, vec![99])
        .unwrap();
    net.drain(c);
    net.run(2);
    assert!(net.nodes[&c].commit_index() >= x, "the new write committed");
    // b still believes it leads (its 2 x election timeout lease has not run
    // out); a read it serves must not miss the committed write.
    assert_eq!(net.nodes[&b].role(), Role::Leader);
    let now = net.now;
    net.nodes.get_mut(&b).unwrap().read_index(now, 7).unwrap();
    net.drain(b);
    net.run(150);
    assert_eq!(
        net.reads.len() + net.failed_reads.len(),
        1,
        "the read was answered"
    );
    for (node, ctx, index) in &net.reads {
        assert!(
            *index >= x,
            "n{node} served read {ctx} at index {index}, but {x} was committed before the read began"
        );
    }
}

/// A follower may apply entries that are committed but not yet durable on
/// it; after a crash its durable log is shorter than the host's applied
/// index. The core used to clamp the applied index to the log and hand the
/// already-applied entries out again.
#[test]
fn restart_with_applied_index_beyond_the_durable_log_applies_nothing_twice() {
    let m = fixtures::members(3, 0);
    let entry = |index: Index| fixtures::entry(index, 1);
    let restored = Restored {
        hard_state: HardState {
            term: 1,
            voted_for: Some(2),
        },
        ..fixtures::restored(1, (1..=3).map(entry).collect(), 5)
    };
    let mut core = StreamCore::new(opts(1), m, restored, 0);
    assert_eq!(core.applied_index(), 5, "the host's applied index is kept");
    assert!(core.commit_index() <= core.last_index());
    core.step(
        10,
        2,
        Message::Append(AppendRequest {
            term: 1,
            prev_index: 3,
            prev_term: 1,
            entries: (4..=6).map(entry).collect(),
            commit: 6,
            first_index: 1,
            min_applied: 0,
            seq: 1,
            minority: false,
        }),
    );
    let applied: Vec<Index> = core
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Apply(es) => Some(es),
            _ => None,
        })
        .flatten()
        .map(|e| e.index)
        .collect();
    assert_eq!(
        applied,
        vec![6],
        "only the entry past the host's applied index"
    );
    assert_eq!(core.commit_index(), 6);
}
