//! The nemesis runner against a recording fake `ClusterControl` (a test
//! double for the nemesis logic; real faults are tested in the harness's
//! deployment tests).

use nemesis::*;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Kill(NodeId),
    Start(NodeId),
    Pause(NodeId),
    Resume(NodeId),
    Partition(Grudge),
    Heal,
    Compact(NodeId),
    PowerCut(Vec<NodeId>),
    Corrupt(NodeId),
    Repair(NodeId),
    Clock(NodeId, ClockSkew),
    Shape(Vec<(Link, LinkDelay)>),
    Loss(Vec<(Link, u32)>),
}

struct Fake {
    n: u32,
    leader: Option<NodeId>,
    partitions: Result<(), String>,
    calls: Mutex<Vec<Call>>,
}

impl Fake {
    fn new(n: u32) -> Arc<Fake> {
        Arc::new(Fake {
            n,
            leader: Some(2),
            partitions: Ok(()),
            calls: Mutex::new(vec![]),
        })
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    fn record(&self, c: Call) -> Result<(), FaultError> {
        self.calls.lock().unwrap().push(c);
        Ok(())
    }
}

impl ClusterControl for Fake {
    fn node_ids(&self) -> Vec<NodeId> {
        (1..=self.n).collect()
    }
    fn kill(&self, node: NodeId) -> Result<(), FaultError> {
        self.record(Call::Kill(node))
    }
    fn start(&self, node: NodeId) -> Result<(), FaultError> {
        self.record(Call::Start(node))
    }
    fn pause(&self, node: NodeId) -> Result<(), FaultError> {
        self.record(Call::Pause(node))
    }
    fn resume(&self, node: NodeId) -> Result<(), FaultError> {
        self.record(Call::Resume(node))
    }
    fn partition(&self, grudge: &Grudge) -> Result<(), FaultError> {
        self.partitions.clone().map_err(FaultError::Unsupported)?;
        self.record(Call::Partition(grudge.clone()))
    }
    fn heal(&self) -> Result<(), FaultError> {
        self.record(Call::Heal)
    }
    fn supports(&self, capability: Capability) -> Result<(), String> {
        match capability {
            Capability::Partition => self.partitions.clone(),
            _ => Ok(()),
        }
    }
    fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    fn compact(&self, node: NodeId) -> Result<u64, FaultError> {
        self.record(Call::Compact(node))?;
        Ok(100 + node as u64)
    }
    fn set_clock(&self, node: NodeId, skew: ClockSkew) -> Result<(), FaultError> {
        self.record(Call::Clock(node, skew))
    }
    fn shape_links(&self, shapes: &[(Link, LinkDelay)]) -> Result<(), FaultError> {
        self.record(Call::Shape(shapes.to_vec()))
    }
    fn drop_packets(&self, losses: &[(Link, u32)]) -> Result<(), FaultError> {
        self.record(Call::Loss(losses.to_vec()))
    }
    fn power_cut(&self, nodes: &[NodeId]) -> Result<serde_json::Value, FaultError> {
        self.record(Call::PowerCut(nodes.to_vec()))?;
        Ok(serde_json::json!({}))
    }
    /// Every other node refuses to start (odd ids).
    fn corrupt(&self, node: NodeId, _how: u64) -> Result<serde_json::Value, FaultError> {
        self.record(Call::Corrupt(node))?;
        Ok(serde_json::json!({ "refused": node % 2 == 1 }))
    }
    fn repair(&self, node: NodeId) -> Result<serde_json::Value, FaultError> {
        self.record(Call::Repair(node))?;
        Ok(serde_json::json!({}))
    }
}

/// The kinds whose every need the fake implements (the others are
/// refused as unsupported, which ends their periods early).
fn fake_kinds() -> Vec<FaultKind> {
    use Capability::*;
    let can = [
        Kill, Start, Pause, Resume, Partition, Compact, PowerCut, Corrupt, Clock, SlowNet, LossyNet,
    ];
    FaultKind::ALL
        .into_iter()
        .filter(|k| k.needs().iter().all(|c| can.contains(c)))
        .collect()
}

fn run_explicit(fake: &Arc<Fake>, schedule: &str) -> (Nemesis, Vec<NemesisEvent>) {
    let steps = parse_schedule(schedule).unwrap();
    let nem = Nemesis::new(
        fake.clone(),
        FaultKind::ALL.to_vec(),
        Schedule::Explicit(steps),
        1,
    );
    let mut events = vec![];
    nem.run(
        Instant::now() + Duration::from_secs(10),
        &AtomicBool::new(false),
        &mut |e| events.push(e),
    );
    (nem, events)
}

#[test]
fn explicit_schedule_runs_each_fault_and_undoes_it() {
    let fake = Fake::new(5);
    let (nem, events) = run_explicit(
        &fake,
        "0:partition:leader,0.05:heal,0.1:kill:leader,0.15:restart,0.2:pause:minority,0.25:resume",
    );
    let fs: Vec<(Phase, &str)> = events.iter().map(|e| (e.phase, e.f.as_str())).collect();
    let mut expected = vec![];
    for f in [
        "start-partition",
        "stop-partition",
        "start-kill",
        "stop-kill",
        "start-pause",
        "stop-pause",
    ] {
        expected.push((Phase::Invoke, f));
        expected.push((Phase::Info, f));
    }
    assert_eq!(fs, expected);
    assert!(events.iter().all(|e| e.error.is_none()), "{events:?}");
    assert_eq!(events[1].value["topology"], "leader");
    assert_eq!(
        events[1].value["grudge"]["2"],
        serde_json::json!([1, 3, 4, 5])
    );
    assert_eq!(events[1].value["grudge"]["1"], serde_json::json!([2]));
    assert_eq!(events[5].value["targets"], serde_json::json!([2]));
    let paused: Vec<NodeId> = serde_json::from_value(events[9].value["targets"].clone()).unwrap();
    assert_eq!(paused.len(), 2);
    let calls = fake.calls();
    assert!(matches!(calls[0], Call::Partition(_)));
    assert_eq!(calls[1], Call::Heal);
    assert_eq!(calls[2..4], [Call::Kill(2), Call::Start(2)]);
    assert_eq!(
        calls[4..],
        [
            Call::Pause(paused[0]),
            Call::Pause(paused[1]),
            Call::Resume(paused[0]),
            Call::Resume(paused[1])
        ]
    );
    assert!(nem.active().is_empty());
}

/// `compact` asks the running target nodes to compact (a killed node is
/// skipped) and reports each one's new first index; it leaves nothing to
/// undo.
#[test]
fn compact_hits_running_targets_and_leaves_nothing_active() {
    let fake = Fake::new(3);
    let (nem, events) = run_explicit(&fake, "0:kill:leader,0.05:compact:all,0.1:restart");
    let fs: Vec<&str> = events.iter().map(|e| e.f.as_str()).collect();
    assert_eq!(
        fs,
        [
            "start-kill",
            "start-kill",
            "start-compact",
            "start-compact",
            "stop-kill",
            "stop-kill"
        ]
    );
    assert_eq!(
        events[3].value["first_index"],
        serde_json::json!({"1": 101, "3": 103})
    );
    assert!(fake.calls().contains(&Call::Compact(1)));
    assert!(!fake.calls().contains(&Call::Compact(2)), "node 2 was down");
    assert!(nem.active().is_empty());
}

#[test]
fn heal_all_undoes_everything_that_is_active() {
    let fake = Fake::new(5);
    let (nem, _) = run_explicit(&fake, "0:partition:bridge,0:kill:minority,0:pause:one");
    let active = nem.active();
    assert!(active.partition.is_some());
    assert_eq!(active.killed.len(), 2);
    assert_eq!(active.paused.len(), 1);
    let before = fake.calls().len();
    let mut events = vec![];
    nem.heal_all(&mut |e| events.push(e));
    assert!(nem.active().is_empty());
    let undo = &fake.calls()[before..];
    assert_eq!(undo[0], Call::Heal);
    let restarted: BTreeSet<NodeId> = undo
        .iter()
        .filter_map(|c| {
            if let Call::Start(n) = c {
                Some(*n)
            } else {
                None
            }
        })
        .collect();
    let resumed: BTreeSet<NodeId> = undo
        .iter()
        .filter_map(|c| {
            if let Call::Resume(n) = c {
                Some(*n)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(restarted, active.killed);
    // A node killed after being paused needs no resume; every other paused one does.
    assert_eq!(resumed, active.paused);
    let fs: Vec<&str> = events.iter().map(|e| e.f.as_str()).collect();
    assert_eq!(
        fs,
        [
            "stop-partition",
            "stop-partition",
            "stop-pause",
            "stop-pause",
            "stop-kill",
            "stop-kill"
        ]
    );
    // Nothing active: heal_all does nothing and says nothing.
    let mut more = vec![];
    nem.heal_all(&mut |e| more.push(e));
    assert!(more.is_empty());
    assert_eq!(fake.calls().len(), before + undo.len());
}

#[test]
fn unsupported_partitions_are_reported_once_then_skipped() {
    let fake = Arc::new(Fake {
        n: 3,
        leader: None,
        partitions: Err("partitions need root".into()),
        calls: Mutex::new(vec![]),
    });
    let (nem, events) = run_explicit(
        &fake,
        "0:partition:halves,0:heal,0:partition:one,0:heal,0:kill:leader",
    );
    let fs: Vec<&str> = events.iter().map(|e| e.f.as_str()).collect();
    assert_eq!(
        fs,
        [
            "start-partition",
            "start-partition",
            "start-kill",
            "start-kill"
        ]
    );
    let err = events[1].error.as_deref().unwrap();
    assert!(
        err.contains("unsupported") && err.contains("partitions need root"),
        "{err}"
    );
    assert!(nem.unsupported().contains_key(&FaultKind::Partition));
    // The leader target falls back to a random node and says so.
    assert!(events[3].value["note"]
        .as_str()
        .unwrap()
        .contains("no leader"));
    assert_eq!(events[3].value["targets"].as_array().unwrap().len(), 1);
    assert!(fake.calls().iter().all(|c| matches!(c, Call::Kill(_))));
}

#[test]
fn randomised_schedules_are_seed_deterministic_and_serial_alternates() {
    let fast = DefaultTiming {
        healthy: (Duration::from_millis(5), Duration::from_millis(15)),
        hold: (Duration::from_millis(5), Duration::from_millis(15)),
    };
    let run = |seed, schedule: &Schedule| {
        let fake = Fake::new(5);
        let nem = Nemesis::new(fake.clone(), fake_kinds(), schedule.clone(), seed);
        let mut events = vec![];
        nem.run(
            Instant::now() + Duration::from_millis(400),
            &AtomicBool::new(false),
            &mut |e| events.push(e),
        );
        // Compare the first events only: how many fit in the time varies.
        let fs: Vec<String> = events.iter().take(24).map(|e| e.f.clone()).collect();
        let values: Vec<serde_json::Value> =
            events.iter().take(24).map(|e| e.value.clone()).collect();
        nem.heal_all(&mut |_| {});
        assert!(nem.active().is_empty());
        (fs, values)
    };
    let (a, va) = run(42, &Schedule::Serial(fast));
    let (b, vb) = run(42, &Schedule::Serial(fast));
    assert!(a.len() >= 12, "too few events: {a:?}");
    assert_eq!(a, b);
    assert_eq!(va, vb);
    let (c, vc) = run(42, &Schedule::Default(fast));
    let (d, vd) = run(42, &Schedule::Default(fast));
    assert!(c.len() >= 12, "too few events: {c:?}");
    assert_eq!((c, vc), (d, vd), "the composed default is reproducible too");
    for quad in a.chunks_exact(4) {
        let kind = quad[0].strip_prefix("start-").expect("starts first");
        assert_eq!(quad[1], quad[0]);
        assert_eq!(quad[2], format!("stop-{kind}"));
        assert_eq!(quad[3], quad[2]);
    }
}

/// A power loss cuts every target's power in one call (one instant) and
/// power-on starts each again.
#[test]
fn power_loss_cuts_targets_at_once_and_power_on_starts_them() {
    let fake = Fake::new(5);
    let (nem, events) = run_explicit(&fake, "0:power-loss:majority,0.05:power-on");
    let calls = fake.calls.lock().unwrap().clone();
    let Call::PowerCut(cut) = &calls[0] else {
        panic!("{calls:?}")
    };
    assert_eq!(cut.len(), 3, "{calls:?}");
    let started: Vec<NodeId> = calls[1..]
        .iter()
        .map(|c| match c {
            Call::Start(n) => *n,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(&started, cut);
    assert!(nem.active().is_empty());
    let fs: Vec<&str> = events.iter().map(|e| e.f.as_str()).collect();
    assert_eq!(
        fs,
        [
            "start-power-loss",
            "start-power-loss",
            "stop-power-loss",
            "stop-power-loss"
        ]
    );
    assert_eq!(events[1].value["targets"].as_array().unwrap().len(), 3);
}

/// Only the nodes that refused to start on their damaged files are
/// repaired.
#[test]
fn corrupt_repairs_only_the_nodes_that_refused() {
    let fake = Fake::new(5);
    let (nem, events) = run_explicit(&fake, "0:corrupt:all,0.05:repair");
    let calls = fake.calls.lock().unwrap().clone();
    let corrupted: Vec<NodeId> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Corrupt(n) => Some(*n),
            _ => None,
        })
        .collect();
    let repaired: Vec<NodeId> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Repair(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(corrupted, [1, 2, 3, 4, 5]);
    assert_eq!(repaired, [1, 3, 5]);
    assert!(nem.active().is_empty());
    assert_eq!(events[1].f, "start-corrupt");
    assert_eq!(events[1].value["nodes"]["1"]["refused"], true);
    assert_eq!(events[3].f, "stop-corrupt");
}

#[test]
fn stop_flag_ends_the_run_promptly() {
    let fake = Fake::new(3);
    let nem = Nemesis::new(fake, FaultKind::ALL.to_vec(), Schedule::default(), 3);
    let flag = AtomicBool::new(true);
    let t = Instant::now();
    nem.run(Instant::now() + Duration::from_secs(60), &flag, &mut |_| {});
    assert!(t.elapsed() < Duration::from_secs(1));
}

/// Overlapping process faults leave each other's nodes alone: a pause or
/// power cut of nodes a kill holds down acts on none of them (no error),
/// and each undo touches only its own nodes.
#[test]
fn process_faults_skip_nodes_another_fault_holds() {
    let fake = Fake::new(3);
    let (nem, events) = run_explicit(
        &fake,
        "0:kill:all,0.05:pause:majority,0.1:power-loss:one,0.15:resume,0.2:restart,0.25:pause:all,0.3:resume",
    );
    let info = |f: &str| {
        events
            .iter()
            .find(|e| e.phase == Phase::Info && e.f == f)
            .unwrap_or_else(|| panic!("no {f}: {events:?}"))
            .clone()
    };
    let pause = info("start-pause");
    assert_eq!(pause.error, None, "{pause:?}");
    assert_eq!(pause.value["targets"], serde_json::json!([]));
    assert_eq!(pause.value["already_down"].as_array().unwrap().len(), 2);
    let cut = info("start-power-loss");
    assert_eq!(cut.error, None, "{cut:?}");
    assert_eq!(cut.value["targets"], serde_json::json!([]));
    let calls = fake.calls();
    assert_eq!(
        calls.iter().filter(|c| matches!(c, Call::Pause(_))).count(),
        3,
        "only the last pause, of all three restarted nodes: {calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::PowerCut(v) if !v.is_empty())),
        "no power cut of a killed node: {calls:?}"
    );
    assert!(nem.active().is_empty());
}
