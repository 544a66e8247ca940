//! The clock, slow-net and lossy-net faults against a recording fake
//! `ClusterControl`: what they ask of the deployment, what their events
//! say, and that stopping (or `heal_all`) undoes them.

use nemesis::*;
use serde_json::Value;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Fake {
    clocks: Mutex<Vec<(NodeId, ClockSkew)>>,
    shapes: Mutex<Vec<Vec<(Link, LinkDelay)>>>,
    losses: Mutex<Vec<Vec<(Link, u32)>>>,
}

impl ClusterControl for Fake {
    fn node_ids(&self) -> Vec<NodeId> {
        (1..=5).collect()
    }
    fn leader(&self) -> Option<NodeId> {
        Some(3)
    }
    fn set_clock(&self, node: NodeId, skew: ClockSkew) -> Result<(), FaultError> {
        self.clocks.lock().unwrap().push((node, skew));
        Ok(())
    }
    fn shape_links(&self, shapes: &[(Link, LinkDelay)]) -> Result<(), FaultError> {
        self.shapes.lock().unwrap().push(shapes.to_vec());
        Ok(())
    }
    fn drop_packets(&self, losses: &[(Link, u32)]) -> Result<(), FaultError> {
        self.losses.lock().unwrap().push(losses.to_vec());
        Ok(())
    }
}

fn run(fake: &Arc<Fake>, schedule: &str) -> (Nemesis, Vec<NemesisEvent>) {
    let nem = Nemesis::new(
        fake.clone(),
        FaultKind::ALL.to_vec(),
        Schedule::Explicit(parse_schedule(schedule).unwrap()),
        7,
    );
    let mut events = vec![];
    nem.run(
        Instant::now() + Duration::from_secs(10),
        &AtomicBool::new(false),
        &mut |e| events.push(e),
    );
    (nem, events)
}

fn info<'a>(events: &'a [NemesisEvent], f: &str) -> &'a Value {
    &events
        .iter()
        .find(|e| e.f == f && e.phase == Phase::Info)
        .unwrap_or_else(|| panic!("no {f} in {events:?}"))
        .value
}

#[test]
fn a_slow_leader_keeps_its_offset_and_is_reset_with_the_offset_it_had() {
    let fake = Arc::new(Fake::default());
    let (nem, events) = run(
        &fake,
        "0:clock:bump-leader-1s,0:clock:slow-leader-5x,0.3:reset-clock",
    );
    assert!(nem.active().is_empty());
    let clocks = fake.clocks.lock().unwrap().clone();
    assert_eq!(clocks.len(), 3, "{clocks:?}");
    let (bumped, slowed, reset) = (clocks[0], clocks[1], clocks[2]);
    assert!(bumped.0 == 3 && slowed.0 == 3 && reset.0 == 3, "the leader");
    assert!((250..=1000).contains(&bumped.1.offset_ms.abs()));
    assert_eq!(slowed.1.rate_milli, 200);
    let drift = (slowed.1.offset_ms - bumped.1.offset_ms).abs();
    assert!(
        drift < 50,
        "slowing down does not jump the clock: {drift} ms"
    );
    assert_eq!(reset.1, ClockSkew::NONE);
    let start = info(&events, "start-clock");
    assert_eq!(start["mode"], "bump");
    assert!(start["clocks"]["3"]["offset_ms"].is_i64(), "{start}");
    let stop = info(&events, "stop-clock");
    assert_eq!(stop["clocks"]["3"]["was"]["rate"], 0.2, "{stop}");
    assert_eq!(stop["clocks"]["3"]["rate"], 1.0, "{stop}");
}

#[test]
fn heal_all_resets_every_skewed_clock() {
    let fake = Arc::new(Fake::default());
    let (nem, _) = run(&fake, "0:clock:strobe-all-300ms");
    assert_eq!(nem.active().clock.len(), 5);
    let mut events = vec![];
    nem.heal_all(&mut |e| events.push(e));
    assert!(nem.active().is_empty());
    let resets = fake
        .clocks
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, s)| *s == ClockSkew::NONE)
        .count();
    assert_eq!(resets, 5);
    assert_eq!(events[0].f, "stop-clock");
}

#[test]
fn slow_and_lossy_links_accumulate_until_healed() {
    let fake = Arc::new(Fake::default());
    let (nem, events) = run(
        &fake,
        "0:slow-net:leader-stall,0:slow-net:link-delay,0:lossy-net:node-10%,0.1:heal-slow-net,0.1:heal-lossy-net",
    );
    assert!(nem.active().is_empty());
    let shapes = fake.shapes.lock().unwrap().clone();
    assert_eq!(shapes.len(), 3);
    assert_eq!(shapes[0].len(), 8, "the leader's links");
    assert!(shapes[0]
        .iter()
        .all(|((a, b), d)| (*a == 3 || *b == 3) && d.stalled));
    assert!(
        shapes[1].len() >= 8,
        "a further link added: {:?}",
        shapes[1]
    );
    assert!(shapes[2].is_empty(), "healed");
    let losses = fake.losses.lock().unwrap().clone();
    assert_eq!(losses[0].len(), 8);
    assert!(losses[0].iter().all(|(_, p)| (25..=100).contains(p)));
    assert!(losses[1].is_empty());
    let start = info(&events, "start-slow-net");
    assert_eq!(start["shaped"].as_object().unwrap().len(), 8, "{start}");
    assert_eq!(info(&events, "start-lossy-net")["links"], "node-10%");
}
