//! A small lossless cluster driven step by step: election, replication,
//! commit and linearizable reads on a healthy network.

use dcf_core::testing::Net;
use dcf_core::*;

/// Nodes with a 300 ms election timeout, stepped 10 ms at a time.
fn net(n: u32, mode: RunMode) -> Net {
    Net::new(n, 10, move |i| {
        let mut o = CoreOptions::new(i, 1);
        o.run_mode = mode;
        o.election_timeout_ms = 300;
        o.heartbeat_interval_ms = 100;
        o
    })
}

/// Runs `ms` with `node` cut off from everyone.
fn run_isolating(net: &mut Net, node: NodeId, ms: u64) {
    net.isolated.insert(node);
    net.run(ms);
    net.isolated.remove(&node);
}

#[test]
fn three_nodes_elect_replicate_and_read() {
    let mut net = net(3, RunMode::Auto);
    net.run(200);
    let leader = net.leader().expect("a leader within 200 ms");
    assert_eq!(leader, 1, "the configured LEADER campaigns first");
    net.run(200);
    for i in 0..100u64 {
        let now = net.now;
        net.nodes
            .get_mut(&leader)
            .unwrap()
            .propose(now, i, i.to_le_bytes().to_vec())
            .unwrap();
        net.drain(leader);
    }
    net.run(300);
    for id in 1..=3 {
        let data: Vec<&Entry> = net.applied[&id]
            .iter()
            .filter(|e| e.kind == EntryKind::Data)
            .collect();
        assert_eq!(data.len(), 100, "node {id} applied all writes");
    }
    net.nodes
        .get_mut(&leader)
        .unwrap()
        .read_index(net.now, 7)
        .unwrap();
    net.drain(leader);
    net.run(100);
    assert_eq!(net.reads.len(), 1);
    assert!(net.reads[0].2 >= 101);
}

#[test]
fn new_leader_after_leader_isolated() {
    let mut net = net(5, RunMode::Auto);
    net.run(500);
    let old = net.leader().unwrap();
    run_isolating(&mut net, old, 3000);
    let leaders: Vec<NodeId> = net
        .nodes
        .values()
        .filter(|n| n.role() == Role::Leader)
        .map(|n| n.node_id())
        .collect();
    assert!(
        !leaders.contains(&old),
        "isolated leader stepped down: {leaders:?}"
    );
    assert_eq!(leaders.len(), 1);
}

/// MANUAL: the configured LEADER campaigns once at start-up, but losing it
/// starts no election (leadership changes only by promote).
#[test]
fn manual_run_mode_elects_at_start_only() {
    let mut net = net(3, RunMode::Manual);
    net.run(300);
    assert_eq!(
        net.leader(),
        Some(1),
        "configured LEADER leads in MANUAL mode"
    );
    run_isolating(&mut net, 1, 3000);
    let others: Vec<Role> = net
        .nodes
        .values()
        .filter(|n| n.node_id() != 1)
        .map(|n| n.role())
        .collect();
    assert!(
        others.iter().all(|r| *r == Role::Follower),
        "no timeout elections: {others:?}"
    );
}

/// DISABLE: no elections at all.
#[test]
fn disable_run_mode_never_elects() {
    let mut net = net(3, RunMode::Disable);
    net.run(3000);
    assert_eq!(net.leader(), None);
    assert!(net.nodes.values().all(|n| n.term() == 0));
}
