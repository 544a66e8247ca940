//! Benchmarks of the pure core: a leader appending batches of proposals
//! (propose + take_actions, peers acknowledging) and the quorum commit
//! computation.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use dcf_core::quorum::{quorum_index, VoterMatch};
use dcf_core::*;

fn members(n: u32) -> StreamMembers {
    let mut m = StreamMembers::default();
    for i in 1..=n {
        m.members.push(Member {
            node_id: i,
            ip: "127.0.0.1".into(),
            port: 1700 + i as u16,
            kind: MemberKind::Voter,
            initial_leader: i == 1,
            weight: 1,
            group: 0,
            priority: 0,
        });
    }
    m
}

/// A 3-node stream whose node 1 is a ready leader; the two followers are
/// real cores, and every message and durability report is delivered at
/// once.
struct Cluster {
    nodes: Vec<StreamCore>,
    now: u64,
    queue: Vec<Envelope>,
}

impl Cluster {
    fn new() -> Cluster {
        let m = members(3);
        let nodes = (1..=3)
            .map(|i| {
                let mut o = CoreOptions::new(i, 1);
                o.election_timeout_ms = 1_000_000;
                o.heartbeat_interval_ms = 1_000_000;
                StreamCore::new(o, m.clone(), Restored::default(), 0)
            })
            .collect();
        let mut c = Cluster {
            nodes,
            now: 0,
            queue: Vec::new(),
        };
        c.now = 200_000;
        c.nodes[0].tick(c.now);
        c.settle();
        assert!(c.nodes[0].is_leader_ready(), "node 1 leads");
        c
    }

    fn handle(&mut self, i: usize) {
        loop {
            let actions = self.nodes[i].take_actions();
            if actions.is_empty() {
                return;
            }
            for a in actions {
                match a {
                    Action::Send(env) => self.queue.push(env),
                    Action::AppendLog(es) => {
                        let l = es.last().unwrap();
                        let (idx, t) = (l.index, l.term);
                        self.nodes[i].on_persisted(self.now, idx, t);
                    }
                    Action::Apply(es) => {
                        let l = es.last().unwrap().index;
                        self.nodes[i].on_applied(l);
                    }
                    _ => {}
                }
            }
        }
    }

    fn settle(&mut self) {
        for i in 0..3 {
            self.handle(i);
        }
        while let Some(env) = self.queue.pop() {
            let to = (env.to - 1) as usize;
            self.nodes[to].step(self.now, env.from, env.msg);
            self.handle(to);
        }
    }
}

fn leader_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("leader_append");
    for n in [1usize, 10, 100] {
        let mut cl = Cluster::new();
        let data = vec![7u8; 64];
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                for k in 0..n {
                    cl.nodes[0]
                        .propose(cl.now, k as u64, data.clone())
                        .expect("leader accepts");
                }
                cl.settle();
                black_box(cl.nodes[0].commit_index())
            })
        });
    }
    g.finish();
}

fn voters(n: u32, groups: u32) -> Vec<VoterMatch> {
    (1..=n)
        .map(|i| VoterMatch {
            node_id: i,
            weight: 1 + (i as u64 % 3),
            group: if groups == 0 { 0 } else { 1 + i % groups },
            matched: 1000 + (i as u64 * 7919) % 97,
        })
        .collect()
}

fn quorum(c: &mut Criterion) {
    let mut g = c.benchmark_group("quorum_index");
    for n in [3u32, 5, 7] {
        let vs = voters(n, 0);
        let q = vs.iter().map(|v| v.weight).sum::<u64>() / 2 + 1;
        g.bench_with_input(BenchmarkId::new("plain", n), &vs, |b, vs| {
            b.iter(|| quorum_index(black_box(vs), q, &[]))
        });
        let vs = voters(n, 3);
        g.bench_with_input(BenchmarkId::new("groups", n), &vs, |b, vs| {
            b.iter(|| quorum_index(black_box(vs), q, &[1, 2, 3]))
        });
    }
    g.finish();
}

criterion_group!(benches, leader_append, quorum);
criterion_main!(benches);
