//! `minority`: the lost-majority scenario of DCF's manual. `minority`
//! kills a majority of the members (the current leader survives, with
//! the fewest others that leave a strict minority), waits until the
//! survivors have noticed, then switches every survivor to minority mode
//! with `vote_num` = the number of survivors, so they elect a leader and
//! keep serving. `normal` brings the killed majority back, waits until it
//! follows the minority leader, returns the survivors to normal mode and
//! records whether the leader then confirmed its log with a normal
//! quorum (guarantee N2 of `dcf_core::minority`).
//!
//! The events carry what a checker needs to find the phases: the start's
//! `invoke` is when the majority is lost, its `info` when the survivors
//! are in minority mode; the stop's `invoke` is when the majority comes
//! back, its `info` when every survivor is in normal mode again.

use super::{FaultContext, FaultStyle, FaultType, Outcome};
use crate::control::{Capability, FaultError, NodeId};
use crate::members::MemberAck;
use crate::topology::majority;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Lost-majority and minority mode.
pub struct Minority;

/// What is in effect: the survivors in minority mode and the killed
/// majority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MinorityState {
    pub survivors: BTreeSet<NodeId>,
    pub lost: BTreeSet<NodeId>,
}

/// How long the survivors get to notice the lost majority before the
/// switch (more than twice the harness's default election timeout, so a
/// surviving leader has stepped down).
const NOTICE: Duration = Duration::from_secs(3);
/// How long to wait for a leader or for the majority to catch up.
const SETTLE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(200);

/// Polls `f` until it returns `Some` or `within` passes.
fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// The survivors: the leader (a random node if none is known) and random
/// others, ⌊(n-1)/2⌋ in all (at least 1), from the running members.
fn choose_survivors(
    members: &[NodeId],
    leader: Option<NodeId>,
    down: &BTreeSet<NodeId>,
    rng: &mut StdRng,
) -> Vec<NodeId> {
    let count = (members.len() - majority(members.len()).min(members.len())).max(1);
    let mut up: Vec<NodeId> = members
        .iter()
        .copied()
        .filter(|n| !down.contains(n))
        .collect();
    up.shuffle(rng);
    if let Some(l) = leader.filter(|l| up.contains(l)) {
        up.retain(|n| *n != l);
        up.insert(0, l);
    }
    let mut out: Vec<NodeId> = up.into_iter().take(count).collect();
    out.sort_unstable();
    out
}

/// The node among `nodes` that reports itself leader, with its term.
fn leader_among(ctx: &FaultContext, nodes: &BTreeSet<NodeId>) -> Option<(NodeId, u64, Value)> {
    nodes.iter().find_map(|&n| {
        let s = ctx.control().node_status(n)?;
        (s["role"] == "LEADER").then(|| (n, s["term"].as_u64().unwrap_or(0), s))
    })
}

fn status_json(ctx: &FaultContext, nodes: &BTreeSet<NodeId>) -> Value {
    let mut out = serde_json::Map::new();
    for &n in nodes {
        let s = ctx.control().node_status(n).map_or(Value::Null, |s| {
            json!({
                "role": s["role"], "term": s["term"], "work_mode": s["work_mode"],
                "commit_index": s["commit_index"], "last_index": s["last_index"],
            })
        });
        out.insert(n.to_string(), s);
    }
    Value::Object(out)
}

impl FaultType for Minority {
    type Arg = ();
    type State = MinorityState;
    const NAME: &'static str = "minority";
    const ABOUT: &'static str =
        "kill a majority, switch the survivors to minority mode, then bring the majority back and return to normal";
    const STOP_VERB: Option<&'static str> = Some("normal");
    const ARG: Option<super::ArgGrammar> = None;
    const NEEDS: &'static [Capability] =
        &[Capability::Kill, Capability::Start, Capability::WorkMode];
    /// With the killed nodes: after the network is whole.
    const HEAL_ORDER: u8 = 2;
    const STYLE: FaultStyle = FaultStyle {
        colour: (150, 80, 180),
        label: "minority mode",
    };

    fn parse_arg(s: &str) -> Result<(), String> {
        if s.is_empty() {
            Ok(())
        } else {
            Err(format!("minority takes no argument, got {s:?}"))
        }
    }
    fn arg_name(_: ()) -> String {
        String::new()
    }
    fn random_arg(_: &mut StdRng) {}
    fn is_active(st: &MinorityState) -> bool {
        !st.survivors.is_empty() || !st.lost.is_empty()
    }

    fn start(ctx: &FaultContext, _: ()) -> Outcome {
        let control = ctx.control();
        let members = control.node_ids();
        let leader = control.leader();
        let (survivors, lost) = {
            let mut st = ctx.state();
            if Self::is_active(&st.active.minority) {
                return Outcome::new(
                    json!({"skipped": "minority mode is already in effect"}),
                    &[],
                );
            }
            let mut down = st.active.killed.clone();
            down.extend(st.active.paused.iter().copied());
            let survivors: BTreeSet<NodeId> =
                choose_survivors(&members, leader, &down, &mut st.rng)
                    .into_iter()
                    .collect();
            let lost: BTreeSet<NodeId> = members
                .iter()
                .copied()
                .filter(|n| !survivors.contains(n))
                .collect();
            // The lost majority is this fault's to bring back, not the
            // kill or pause fault's.
            for n in &lost {
                st.active.killed.remove(n);
                st.active.paused.remove(n);
            }
            st.active.minority = MinorityState {
                survivors: survivors.clone(),
                lost: lost.clone(),
            };
            (survivors, lost)
        };
        let mut errors = Vec::new();
        for &n in &lost {
            if let Err(e) = control.kill(n) {
                errors.push(format!("kill node {n}: {e}"));
            }
        }
        std::thread::sleep(NOTICE);
        // Each survivor's role and term just before the switch, which M2
        // relates to the minority leader's term.
        let before = status_json(ctx, &survivors);
        let vote_num = survivors.len() as u64;
        let mut acks = serde_json::Map::new();
        for &n in &survivors {
            match control.set_work_mode(n, Some(vote_num)) {
                Ok(r) => {
                    acks.insert(n.to_string(), r.describe());
                }
                Err(FaultError::Unsupported(why)) => {
                    // Undo the kills: without the switch this is no scenario.
                    for &l in &lost {
                        let _ = control.start(l);
                    }
                    ctx.state().active.minority = MinorityState::default();
                    ctx.mark_unsupported(&why);
                    let e = FaultError::Unsupported(why).to_string();
                    return Outcome::new(json!({"survivors": survivors, "lost": lost}), &[e]);
                }
                Err(e) => errors.push(format!("set-work-mode on node {n}: {e}")),
            }
        }
        let elected = wait_for(SETTLE, || leader_among(ctx, &survivors));
        let value = json!({
            "survivors": survivors,
            "lost": lost,
            "leader_before": leader,
            "vote_num": vote_num,
            "acks": acks,
            "minority_leader": elected.as_ref().map(|e| e.0),
            "minority_term": elected.as_ref().map(|e| e.1),
            "before": before,
            "status": status_json(ctx, &survivors),
        });
        Outcome::new(value, &errors)
    }

    fn stop(ctx: &FaultContext) -> Outcome {
        let control = ctx.control();
        let MinorityState { survivors, lost } = ctx.state().active.minority.clone();
        let mut errors = Vec::new();
        let mut restarted = Vec::new();
        for &n in &lost {
            match control.start(n) {
                Ok(()) => restarted.push(n),
                Err(e) => errors.push(format!("restart node {n}: {e}")),
            }
        }
        // The majority first follows the minority leader (guarantee M5).
        let leader = leader_among(ctx, &survivors);
        let caught_up = leader.as_ref().and_then(|(l, _, s)| {
            let target = s["last_index"].as_u64().unwrap_or(0);
            wait_for(SETTLE, || {
                lost.iter()
                    .all(|&n| {
                        control.node_status(n).is_some_and(|s| {
                            s["leader_id"].as_u64() == Some(*l as u64)
                                && s["last_index"].as_u64().unwrap_or(0) >= target
                        })
                    })
                    .then_some(())
            })
        });
        let mut acks = serde_json::Map::new();
        let mut normal = true;
        for &n in &survivors {
            match control.set_work_mode(n, None) {
                Ok(r) => {
                    normal &= r.ack == MemberAck::Ok;
                    acks.insert(n.to_string(), r.describe());
                }
                // Nothing can switch it back: do not retry for ever.
                Err(e @ FaultError::Unsupported(_)) => {
                    errors.push(format!("set-work-mode normal on node {n}: {e}"));
                }
                Err(e) => {
                    normal = false;
                    errors.push(format!("set-work-mode normal on node {n}: {e}"));
                }
            }
        }
        // N2: the minority leader, still leading in the same term, commits
        // past its minority-mode log with a normal quorum.
        let confirmed = leader.as_ref().and_then(|(l, term, s)| {
            let last = s["last_index"].as_u64().unwrap_or(0);
            wait_for(SETTLE, || {
                let now = control.node_status(*l)?;
                (now["role"] == "LEADER"
                    && now["term"].as_u64() == Some(*term)
                    && now["commit_index"].as_u64().unwrap_or(0) >= last)
                    .then_some(())
            })
        });
        {
            let mut st = ctx.state();
            st.active.minority.lost.retain(|n| !restarted.contains(n));
            if normal {
                st.active.minority.survivors.clear();
            }
        }
        let value = json!({
            "restarted": restarted,
            "survivors": survivors,
            "minority_leader": leader.as_ref().map(|l| l.0),
            "minority_term": leader.as_ref().map(|l| l.1),
            "majority_caught_up": caught_up.is_some(),
            "acks": acks,
            "confirmed": confirmed.is_some(),
            "status": status_json(ctx, &lost.union(&survivors).copied().collect()),
        });
        Outcome::new(value, &errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The leader survives with the fewest others that leave a strict
    /// minority; downed nodes never survive.
    #[test]
    fn survivors_are_the_leader_and_a_minority() {
        let mut rng = StdRng::seed_from_u64(3);
        let none = BTreeSet::new();
        assert_eq!(
            choose_survivors(&[1, 2, 3], Some(2), &none, &mut rng),
            vec![2]
        );
        for _ in 0..20 {
            let s = choose_survivors(&[1, 2, 3, 4, 5], Some(4), &none, &mut rng);
            assert_eq!(s.len(), 2);
            assert!(s.contains(&4));
            let down: BTreeSet<NodeId> = [1, 2].into();
            let s = choose_survivors(&[1, 2, 3, 4, 5], None, &down, &mut rng);
            assert!(s.iter().all(|n| !down.contains(n)), "{s:?}");
        }
    }
}
