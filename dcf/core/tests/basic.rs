//! A small lossless cluster driven step by step: election, replication,
//! commit and linearizable reads on a healthy network.

use dcf_core::*;
use std::collections::{BTreeMap, VecDeque};

struct Net {
    nodes: BTreeMap<NodeId, StreamCore>,
    queue: VecDeque<Envelope>,
    applied: BTreeMap<NodeId, Vec<Entry>>,
    reads: Vec<(NodeId, u64, Index)>,
    now: u64,
}

fn members(n: u32) -> StreamMembers {
    let json: Vec<String> = (1..=n)
        .map(|i| {
            format!(
                r#"{{"stream_id":1,"node_id":{i},"ip":"127.0.0.1","port":{},"role":"{}"}}"#,
                1700 + i,
                if i == 1 { "LEADER" } else { "FOLLOWER" }
            )
        })
        .collect();
    ClusterConfig::parse(&format!("[{}]", json.join(",")))
        .unwrap()
        .streams[&1]
        .clone()
}

impl Net {
    fn new(n: u32) -> Net {
        Net::with_mode(n, RunMode::Auto)
    }

    fn with_mode(n: u32, mode: RunMode) -> Net {
        let m = members(n);
        let nodes = (1..=n)
            .map(|i| {
                let mut o = CoreOptions::new(i, 1);
                o.run_mode = mode;
                o.election_timeout_ms = 300;
                o.heartbeat_interval_ms = 100;
                (i, StreamCore::new(o, m.clone(), Restored::default(), 0))
            })
            .collect();
        Net {
            nodes,
            queue: VecDeque::new(),
            applied: BTreeMap::new(),
            reads: vec![],
            now: 0,
        }
    }

    fn drain(&mut self, id: NodeId) {
        let actions = self.nodes.get_mut(&id).unwrap().take_actions();
        for a in actions {
            match a {
                Action::Send(env) => self.queue.push_back(env),
                Action::AppendLog(es) => {
                    let last = es.last().unwrap();
                    let (i, t) = (last.index, last.term);
                    self.nodes
                        .get_mut(&id)
                        .unwrap()
                        .on_persisted(self.now, i, t);
                }
                Action::Apply(es) => {
                    let last = es.last().unwrap().index;
                    self.applied.entry(id).or_default().extend(es);
                    self.nodes.get_mut(&id).unwrap().on_applied(last);
                }
                Action::ReadReady { ctx, index } => self.reads.push((id, ctx, index)),
                _ => {}
            }
        }
    }

    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 10;
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in &ids {
                let now = self.now;
                self.nodes.get_mut(id).unwrap().tick(now);
                self.drain(*id);
            }
            for _ in 0..10_000 {
                let Some(env) = self.queue.pop_front() else {
                    break;
                };
                let now = self.now;
                self.nodes
                    .get_mut(&env.to)
                    .unwrap()
                    .step(now, env.from, env.msg);
                self.drain(env.to);
            }
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .find(|n| n.role() == Role::Leader)
            .map(|n| n.node_id())
    }
}

#[test]
fn three_nodes_elect_replicate_and_read() {
    let mut net = Net::new(3);
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
    let mut net = Net::new(5);
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

fn run_isolating(net: &mut Net, old: NodeId, ms: u64) {
    let end = net.now + ms;
    while net.now < end {
        net.now += 10;
        let ids: Vec<NodeId> = net.nodes.keys().copied().collect();
        for id in &ids {
            let now = net.now;
            net.nodes.get_mut(id).unwrap().tick(now);
            net.drain(*id);
        }
        while let Some(env) = net.queue.pop_front() {
            if env.from == old || env.to == old {
                continue;
            }
            let now = net.now;
            net.nodes
                .get_mut(&env.to)
                .unwrap()
                .step(now, env.from, env.msg);
            net.drain(env.to);
        }
    }
}

/// MANUAL: the configured LEADER campaigns once at start-up, but losing it
/// starts no election (leadership changes only by promote).
#[test]
fn manual_run_mode_elects_at_start_only() {
    let mut net = Net::with_mode(3, RunMode::Manual);
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
    let mut net = Net::with_mode(3, RunMode::Disable);
    net.run(3000);
    assert_eq!(net.leader(), None);
    assert!(net.nodes.values().all(|n| n.term() == 0));
}
