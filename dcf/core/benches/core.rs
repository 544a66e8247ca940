//! Benchmarks of the pure core: a leader appending batches of proposals
//! (propose + take_actions, peers acknowledging) and the quorum commit
//! computation.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use dcf_core::quorum::{quorum_index, VoterMatch};
use dcf_core::testing::{fixtures, Net, Storage};

/// A 3-node stream whose node 1 is a ready leader; the two followers are
/// real cores, and every message and durability report is delivered at
/// once (nothing is kept on the disks, so long runs use no memory).
fn cluster() -> Net {
    let mut net = Net::new(3, 1, |i| fixtures::options(i, 1_000_000, 1_000_000));
    net.storage = Storage::Discard;
    net.record_applied = false;
    net.now = 200_000;
    net.tick(1);
    net.settle();
    assert!(net.nodes[&1].is_leader_ready(), "node 1 leads");
    net
}

fn leader_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("leader_append");
    for n in [1usize, 10, 100] {
        let mut net = cluster();
        let data = vec![7u8; 64];
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                let now = net.now;
                for k in 0..n {
                    net.core(1)
                        .propose(now, k as u64, data.clone())
                        .expect("leader accepts");
                }
                net.settle();
                black_box(net.nodes[&1].commit_index())
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
