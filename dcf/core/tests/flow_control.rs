//! Flow control in the leader's send path: PASSIVE peers get smaller
//! batches while the host reports overload (voters never do), and
//! commit-latency pacing spaces out appends to one peer without ever
//! delaying heartbeats.

use dcf_core::testing::{fixtures, Net};
use dcf_core::*;
use std::collections::BTreeMap;

/// Nodes 1..=n (1..=3 vote, node 4 if any is PASSIVE; node 1 the
/// configured LEADER) on a lossless network with a fixed one-way delay
/// and instant storage, stepped 1 ms at a time, recording every append.
fn cluster(n: u32, delay_ms: u64, tune: impl Fn(&mut CoreOptions) + 'static) -> Net {
    let kind = |i| {
        if i == 4 {
            MemberKind::Passive
        } else {
            MemberKind::Voter
        }
    };
    let mut net = Net::with_members(fixtures::members_with(n, 1, kind), 1, move |i| {
        let mut o = fixtures::options(i, 300, 50);
        tune(&mut o);
        o
    });
    net.set_delay(delay_ms, delay_ms);
    net.record_appends = true;
    net.record_applied = false;
    net
}

/// Steps until node 1 is a ready leader.
fn ready_leader(net: &mut Net) {
    assert!(
        net.run_until(5000, |n| n.nodes[&1].is_leader_ready()),
        "node 1 never became a ready leader"
    );
}

/// The most entries one append sent to `to` since `since` carried.
fn largest_batch_to(net: &Net, to: NodeId, since: u64) -> usize {
    net.appends
        .iter()
        .filter(|a| a.to == to && a.at >= since)
        .map(|a| a.entries)
        .max()
        .unwrap_or(0)
}

fn overloaded() -> LoadSample {
    LoadSample {
        cpu_percent: 250,
        disk_rawait_us: 0,
        net_queue: 0,
    }
}

#[test]
fn passive_peer_gets_smaller_batches_under_load_voters_do_not() {
    let mut net = cluster(4, 1, |o| {
        o.max_batch_entries = 20;
        o.latency_pacing = false;
    });
    ready_leader(&mut net);
    net.run(100);

    // Unloaded: everyone gets full batches.
    let since = net.now;
    for i in 0..100u64 {
        net.core(1).propose(since, i, vec![1]).unwrap();
    }
    net.drain(1);
    assert_eq!(largest_batch_to(&net, 2, since), 20);
    assert_eq!(largest_batch_to(&net, 4, since), 20);
    net.run(100);

    // Three overloaded samples: 20 × 0.8³ = 10.24 -> 10 for the PASSIVE node.
    for _ in 0..3 {
        let now = net.now;
        net.core(1).report_load(now, overloaded());
    }
    let st = net.core(1).status();
    assert!((st.passive_batch_factor - 0.512).abs() < 1e-9, "{st:?}");
    let since = net.now + 1;
    net.step();
    for i in 0..100u64 {
        net.core(1).propose(since, i, vec![2]).unwrap();
    }
    net.drain(1);
    assert_eq!(largest_batch_to(&net, 4, since), 10);
    assert_eq!(
        largest_batch_to(&net, 2, since),
        20,
        "voters are not throttled"
    );
    assert_eq!(
        largest_batch_to(&net, 3, since),
        20,
        "voters are not throttled"
    );
    net.run(200);
    // The PASSIVE node still receives and applies everything.
    let last = net.core(1).last_index();
    assert_eq!(net.core(4).applied_index(), last);

    // Throttled to the floor: one entry per message, still progressing.
    for _ in 0..50 {
        let now = net.now;
        net.core(1).report_load(
            now,
            LoadSample {
                net_queue: 1_000_000,
                ..LoadSample::default()
            },
        );
    }
    let since = net.now + 1;
    net.step();
    for i in 0..30u64 {
        net.core(1).propose(since, i, vec![3]).unwrap();
    }
    net.drain(1);
    assert_eq!(largest_batch_to(&net, 4, since), 1);
    net.run(300);
    let last = net.core(1).last_index();
    assert_eq!(net.core(4).applied_index(), last);

    // Load gone: batches grow back step by step.
    for _ in 0..60 {
        let now = net.now;
        net.core(1).report_load(now, LoadSample::default());
    }
    assert_eq!(net.core(1).status().passive_batch_factor, 1.0);
    let since = net.now + 1;
    net.step();
    for i in 0..100u64 {
        net.core(1).propose(since, i, vec![4]).unwrap();
    }
    net.drain(1);
    assert_eq!(largest_batch_to(&net, 4, since), 20);
}

#[test]
fn thresholds_come_from_the_options() {
    let mut net = cluster(4, 1, |o| {
        o.max_batch_entries = 10;
        o.load_thresholds = LoadThresholds {
            cpu_percent: 300,
            disk_rawait_us: 100_000,
            net_queue: 1024,
        };
    });
    ready_leader(&mut net);
    // 250 % is below this threshold: no throttling.
    let now = net.now;
    net.core(1).report_load(now, overloaded());
    assert_eq!(net.core(1).status().passive_batch_factor, 1.0);
    // Lowered at run time (FLOW_CONTROL_CPU_THRESHOLD changed).
    net.core(1).set_flow_params(
        10,
        true,
        LoadThresholds {
            cpu_percent: 100,
            ..LoadThresholds::default()
        },
    );
    net.core(1).report_load(now, overloaded());
    assert!((net.core(1).status().passive_batch_factor - 0.8).abs() < 1e-9);
}

/// Proposes `per_ms` entries every millisecond (each in its own message
/// unless pacing holds them back) for `ms` milliseconds; returns the
/// milliseconds during which the pacing value was non-zero throughout.
fn load(net: &mut Net, ms: u64, per_ms: u64) -> Vec<u64> {
    let mut paced = vec![];
    for _ in 0..ms {
        let before = net.core(1).status().pacing_value;
        net.step();
        for k in 0..per_ms {
            let now = net.now;
            net.core(1).propose(now, k, vec![0; 8]).unwrap();
            net.drain(1);
        }
        if before > 0 && net.core(1).status().pacing_value > 0 {
            paced.push(net.now);
        }
    }
    paced
}

#[test]
fn slow_commits_turn_on_pacing_which_spaces_appends_but_not_heartbeats() {
    // 5 ms each way: commits take about 10 ms, well over the 4 ms target.
    let mut net = cluster(3, 5, |o| o.heartbeat_interval_ms = 20);
    ready_leader(&mut net);
    assert_eq!(net.core(1).status().pacing_value, 0);
    let since = net.now + 1;
    let paced = load(&mut net, 30_000, 3);
    // The controller hill-climbs (and turns back when the gap made commits
    // slower), so it is on for a good part of the run.
    assert!(paced.len() > 1000, "paced for {} ms", paced.len());

    // While the gap is non-zero, two appends carrying entries to one peer
    // are never sent in the same millisecond (the clock's resolution);
    // without pacing three would be (one per proposal).
    for peer in [2, 3] {
        let mut per_ms: BTreeMap<u64, usize> = BTreeMap::new();
        for a in &net.appends {
            if a.at >= since && a.to == peer && a.entries > 0 {
                *per_ms.entry(a.at).or_default() += 1;
            }
        }
        for t in &paced {
            let sent = per_ms.get(t).copied().unwrap_or(0);
            assert!(sent <= 1, "{sent} entry appends to {peer} at {t} ms");
        }
        // Every heartbeat round reached the peer on time (a round held
        // back by pacing would be missing).
        let mut rounds: Vec<(u64, u64)> = net
            .appends
            .iter()
            .filter(|a| a.at >= since && a.to == peer)
            .map(|a| (a.seq, a.at))
            .collect();
        rounds.sort();
        rounds.dedup_by_key(|r| r.0);
        assert!(rounds.len() >= 30_000 / 20 - 2, "rounds: {}", rounds.len());
        for w in rounds.windows(2) {
            assert!(w[1].1 - w[0].1 <= 20, "heartbeat late: {w:?}");
        }
    }
    // Everything proposed is committed and replicated.
    net.run(500);
    let last = net.core(1).last_index();
    assert_eq!(net.core(1).commit_index(), last);
    assert_eq!(net.core(2).applied_index(), last);

    // The same traffic without pacing (MEC_BATCH_SIZE > 0) sends several
    // appends to one peer in the same millisecond.
    let mut net = cluster(3, 5, |o| {
        o.heartbeat_interval_ms = 20;
        o.latency_pacing = false;
    });
    ready_leader(&mut net);
    let since = net.now + 1;
    let paced = load(&mut net, 12_000, 3);
    assert!(paced.is_empty());
    let times: Vec<u64> = net
        .appends
        .iter()
        .filter(|a| a.at >= since && a.to == 2 && a.entries > 0)
        .map(|a| a.at)
        .collect();
    assert!(times.windows(2).filter(|w| w[0] == w[1]).count() > 1000);
}

#[test]
fn fast_commits_keep_pacing_off() {
    // 1 ms each way: commits take about 2 ms.
    let mut net = cluster(3, 1, |_| {});
    ready_leader(&mut net);
    let paced = load(&mut net, 8000, 2);
    assert!(paced.is_empty());
}
