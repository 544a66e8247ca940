//! A small lossless in-memory network of `StreamCore`s for scenario tests:
//! every message is delivered at the next step unless one end is isolated,
//! storage is durable at once, and applied entries and read results are
//! recorded. (The randomised simulator in `tests/sim` is the lossy one.)

#![allow(dead_code)]

use dcf_core::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub struct Net {
    pub nodes: BTreeMap<NodeId, StreamCore>,
    pub queue: VecDeque<Envelope>,
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
    pub reads: Vec<(NodeId, u64, Index)>,
    pub failed_reads: Vec<(NodeId, u64)>,
    /// Nodes whose traffic (both ways) is dropped.
    pub isolated: BTreeSet<NodeId>,
    pub now: u64,
    /// Simulated milliseconds per step.
    pub step_ms: u64,
}

/// `n` voters; `leader` is the configured LEADER (0 = none).
pub fn members(n: u32, leader: NodeId) -> StreamMembers {
    let mut m = StreamMembers::default();
    for i in 1..=n {
        m.members.push(Member {
            node_id: i,
            ip: "127.0.0.1".into(),
            port: 1700 + i as u16,
            kind: MemberKind::Voter,
            initial_leader: i == leader,
            weight: 1,
            group: 0,
            priority: 0,
        });
    }
    m
}

impl Net {
    /// `n` fresh voters (node 1 the configured LEADER) with options from
    /// `opts`, advancing `step_ms` per step.
    pub fn new(n: u32, step_ms: u64, opts: impl Fn(NodeId) -> CoreOptions) -> Net {
        let m = members(n, 1);
        let nodes = (1..=n)
            .map(|i| {
                (
                    i,
                    StreamCore::new(opts(i), m.clone(), Restored::default(), 0),
                )
            })
            .collect();
        Net {
            nodes,
            queue: VecDeque::new(),
            applied: BTreeMap::new(),
            reads: vec![],
            failed_reads: vec![],
            isolated: BTreeSet::new(),
            now: 0,
            step_ms,
        }
    }

    /// Carries out a node's actions until it has none left.
    pub fn drain(&mut self, id: NodeId) {
        loop {
            let actions = self.nodes.get_mut(&id).unwrap().take_actions();
            if actions.is_empty() {
                return;
            }
            for a in actions {
                match a {
                    Action::Send(env) => self.queue.push_back(env),
                    Action::AppendLog(es) => {
                        let last = es.last().unwrap();
                        let (i, t) = (last.index, last.term);
                        let now = self.now;
                        self.nodes.get_mut(&id).unwrap().on_persisted(now, i, t);
                    }
                    Action::Apply(es) => {
                        let last = es.last().unwrap().index;
                        self.applied.entry(id).or_default().extend(es);
                        self.nodes.get_mut(&id).unwrap().on_applied(last);
                    }
                    Action::ReadReady { ctx, index } => self.reads.push((id, ctx, index)),
                    Action::ReadFailed { ctx } => self.failed_reads.push((id, ctx)),
                    _ => {}
                }
            }
        }
    }

    /// Advances `ms` of simulated time: ticks every node each step, then
    /// delivers every queued message (dropping those of isolated nodes).
    pub fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += self.step_ms;
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in &ids {
                let now = self.now;
                self.nodes.get_mut(id).unwrap().tick(now);
                self.drain(*id);
            }
            while let Some(env) = self.queue.pop_front() {
                if self.isolated.contains(&env.from) || self.isolated.contains(&env.to) {
                    continue;
                }
                let now = self.now;
                self.nodes
                    .get_mut(&env.to)
                    .unwrap()
                    .step(now, env.from, env.msg);
                self.drain(env.to);
            }
        }
    }

    /// Appends a client entry at `id` (which must lead).
    pub fn propose(&mut self, id: NodeId, key: u64, data: Vec<u8>) -> (Term, Index) {
        let now = self.now;
        let r = self
            .nodes
            .get_mut(&id)
            .unwrap()
            .propose(now, key, data)
            .unwrap();
        self.drain(id);
        r
    }

    /// Every node that believes it leads, with its term.
    pub fn leaders(&self) -> Vec<(NodeId, Term)> {
        self.nodes
            .values()
            .filter(|n| n.role() == Role::Leader)
            .map(|n| (n.node_id(), n.term()))
            .collect()
    }

    /// The leader with the lowest id, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders().first().map(|(n, _)| *n)
    }

    /// The leader of the newest term, if any.
    pub fn newest_leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|(_, t)| *t)
            .map(|(n, _)| n)
    }
}
