//! `member`: membership changes through the leader's admin API while the
//! workload runs: add a spare node (started with a fresh data directory),
//! remove a node (stopped once removed), switch a node FOLLOWER <-> PASSIVE,
//! hand leadership to a follower, change a priority. Each start is one
//! change; its `info` event records the change and whether the cluster
//! acknowledged it (`ack`: ok, fail or info). A refusal is the cluster's
//! answer, not a fault that could not be injected. `restore-roles` (and
//! healing) makes the nodes this fault made PASSIVE followers again.

use super::{ArgGrammar, FaultContext, FaultStyle, FaultType, Outcome};
use crate::control::{Capability, FaultError, NodeId};
use crate::members::{MemberAck, MemberChange};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Membership changes.
pub struct Member;

/// The fewest members a removal leaves: DCF wants more than 3 voters for
/// a PASSIVE switch, and fewer than 3 nodes cannot lose one.
const MIN_MEMBERS: usize = 3;

/// Which change a `member` start makes; the nodes are chosen when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberOp {
    /// Add a spare node.
    Add,
    /// Remove a follower (an added one first).
    Remove,
    /// Switch a follower to PASSIVE, or a PASSIVE node back.
    Role,
    /// Hand leadership to a follower.
    Promote,
    /// Give a follower a new election priority.
    Priority,
    /// Several changes at once, sent concurrently: remove the followers
    /// the leader cannot reach (cut off by an active partition), as an
    /// operator removing dead nodes would; with none, add two spares. A
    /// correct leader takes one change at a time and commits it only with
    /// a quorum of the old and the new configuration.
    Burst,
}

impl MemberOp {
    pub const ALL: [MemberOp; 6] = [
        MemberOp::Add,
        MemberOp::Remove,
        MemberOp::Role,
        MemberOp::Promote,
        MemberOp::Priority,
        MemberOp::Burst,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MemberOp::Add => "add",
            MemberOp::Remove => "remove",
            MemberOp::Role => "role",
            MemberOp::Promote => "promote",
            MemberOp::Priority => "priority",
            MemberOp::Burst => "burst",
        }
    }
}

impl fmt::Display for MemberOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MemberOp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MemberOp::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = MemberOp::ALL.iter().map(|o| o.name()).collect();
                format!(
                    "unknown member change {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// What the cluster looks like to a change: members, leader, the nodes
/// another fault has down, the spares.
struct View {
    members: Vec<NodeId>,
    leader: Option<NodeId>,
    down: BTreeSet<NodeId>,
    passive: BTreeSet<NodeId>,
    spares: Vec<NodeId>,
    /// Members the leader cannot reach (an active partition).
    unreachable: BTreeSet<NodeId>,
}

impl View {
    /// Running followers that are neither down nor PASSIVE.
    fn followers(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .copied()
            .filter(|n| Some(*n) != self.leader && !self.down.contains(n))
            .filter(|n| !self.passive.contains(n))
            .collect()
    }
}

/// The nodes `leader` cannot exchange packets with under `grudge`.
fn unreachable_from(leader: Option<NodeId>, grudge: Option<&crate::Grudge>) -> BTreeSet<NodeId> {
    let (Some(l), Some(g)) = (leader, grudge) else {
        return BTreeSet::new();
    };
    let mut out: BTreeSet<NodeId> = g.get(&l).cloned().unwrap_or_default();
    out.extend(g.iter().filter(|(_, d)| d.contains(&l)).map(|(n, _)| *n));
    out.remove(&l);
    out
}

/// The concrete changes for `op` (several for a burst), or why none can
/// be made now.
fn choose_all(op: MemberOp, v: &View, rng: &mut StdRng) -> Result<Vec<MemberChange>, String> {
    if op != MemberOp::Burst {
        return choose(op, v, rng).map(|c| vec![c]);
    }
    let cut_off: Vec<NodeId> = v
        .members
        .iter()
        .copied()
        .filter(|n| Some(*n) != v.leader && v.unreachable.contains(n))
        .collect();
    if !cut_off.is_empty() {
        return Ok(cut_off
            .into_iter()
            .map(|node| MemberChange::Remove { node })
            .collect());
    }
    if v.spares.len() >= 2 {
        return Ok(v.spares[..2]
            .iter()
            .map(|&node| MemberChange::Add { node })
            .collect());
    }
    Err("neither two followers to remove nor two spares to add".into())
}

/// The concrete change for `op`, or why none can be made now.
fn choose(op: MemberOp, v: &View, rng: &mut StdRng) -> Result<MemberChange, String> {
    let pick = |nodes: &[NodeId], rng: &mut StdRng| nodes.choose(rng).copied();
    let no_follower = || "no running follower to change".to_string();
    match op {
        MemberOp::Add => v
            .spares
            .first()
            .map(|&node| MemberChange::Add { node })
            .ok_or_else(|| "no spare node left to add".into()),
        MemberOp::Remove => {
            if v.members.len() <= MIN_MEMBERS {
                return Err(format!(
                    "{} members: removing one would leave fewer than {MIN_MEMBERS}",
                    v.members.len()
                ));
            }
            // The highest id: added nodes (spares have the highest ids)
            // go first, so the workload's endpoints stay members.
            v.members
                .iter()
                .copied()
                .filter(|n| Some(*n) != v.leader && !v.down.contains(n))
                .max()
                .map(|node| MemberChange::Remove { node })
                .ok_or_else(no_follower)
        }
        MemberOp::Role => {
            let back: Vec<NodeId> = v
                .passive
                .iter()
                .copied()
                .filter(|n| v.members.contains(n) && !v.down.contains(n))
                .collect();
            if let Some(node) = pick(&back, rng) {
                return Ok(MemberChange::Role {
                    node,
                    passive: false,
                });
            }
            pick(&v.followers(), rng)
                .map(|node| MemberChange::Role {
                    node,
                    passive: true,
                })
                .ok_or_else(no_follower)
        }
        MemberOp::Promote => pick(&v.followers(), rng)
            .map(|node| MemberChange::Promote { node })
            .ok_or_else(no_follower),
        MemberOp::Priority => pick(&v.followers(), rng)
            .map(|node| MemberChange::Priority {
                node,
                priority: rng.gen_range(1..=10),
            })
            .ok_or_else(no_follower),
        MemberOp::Burst => Err("a burst is two changes".into()),
    }
}

/// Sends `change` and records its answer: the event's value and error,
/// and the PASSIVE nodes in `passive`.
fn apply(ctx: &FaultContext, change: MemberChange) -> (Value, Option<String>) {
    let mut value = change.describe();
    match ctx.control().change_members(change) {
        Ok(reply) => {
            if let Value::Object(m) = reply.describe() {
                value.as_object_mut().expect("an object").extend(m);
            }
            let took = match reply.ack {
                MemberAck::Ok => true,
                MemberAck::Fail => false,
                MemberAck::Info => reply.member_after.unwrap_or(true),
            };
            let mut st = ctx.state();
            match change {
                MemberChange::Role { node, passive } if took || reply.ack == MemberAck::Info => {
                    // An unknown outcome stays recorded as PASSIVE, so the
                    // heal sets it back to FOLLOWER in any case.
                    if passive {
                        st.active.member_passive.insert(node);
                    } else if took {
                        st.active.member_passive.remove(&node);
                    }
                }
                MemberChange::Remove { node } if took => {
                    st.active.member_passive.remove(&node);
                }
                _ => {}
            }
            (value, None)
        }
        Err(FaultError::Unsupported(why)) => {
            ctx.mark_unsupported(&why);
            (value, Some(FaultError::Unsupported(why).to_string()))
        }
        Err(e) => (value, Some(e.to_string())),
    }
}

impl FaultType for Member {
    type Arg = MemberOp;
    type State = BTreeSet<NodeId>;
    const NAME: &'static str = "member";
    const ABOUT: &'static str =
        "membership changes: add a spare node, remove one, FOLLOWER<->PASSIVE, promote, priority, several at once";
    const STOP_VERB: Option<&'static str> = Some("restore-roles");
    const ARG: Option<ArgGrammar> = Some(ArgGrammar {
        what: "change",
        example: "add",
    });
    const NEEDS: &'static [Capability] = &[Capability::Membership];
    /// After killed nodes are back: the change needs a leader.
    const HEAL_ORDER: u8 = 4;
    const STYLE: FaultStyle = FaultStyle {
        colour: (60, 150, 150),
        label: "member change",
    };

    fn parse_arg(s: &str) -> Result<MemberOp, String> {
        s.parse()
    }
    fn arg_name(arg: MemberOp) -> String {
        arg.name().into()
    }
    fn random_arg(rng: &mut StdRng) -> MemberOp {
        MemberOp::ALL[rng.gen_range(0..MemberOp::ALL.len())]
    }
    fn is_active(passive: &BTreeSet<NodeId>) -> bool {
        !passive.is_empty()
    }

    fn start(ctx: &FaultContext, op: MemberOp) -> Outcome {
        let control = ctx.control();
        let members = control.node_ids();
        let leader = control.leader();
        let spares = control.spare_nodes();
        let chosen = {
            let mut st = ctx.state();
            let mut down = st.active.killed.clone();
            down.extend(st.active.paused.iter().copied());
            let view = View {
                members,
                leader,
                down,
                passive: st.active.member_passive.clone(),
                spares,
                unreachable: unreachable_from(leader, st.active.partition.as_ref()),
            };
            choose_all(op, &view, &mut st.rng)
        };
        match chosen {
            Ok(changes) if changes.len() == 1 => {
                let (mut value, error) = apply(ctx, changes[0]);
                value["op"] = json!(op.name());
                value["leader_before"] = json!(leader);
                Outcome { value, error }
            }
            Ok(changes) => {
                // Concurrently, so that both reach the leader at once.
                let results: Vec<(Value, Option<String>)> = std::thread::scope(|s| {
                    let handles: Vec<_> = changes
                        .iter()
                        .map(|&c| s.spawn(move || apply(ctx, c)))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join()
                                .unwrap_or((Value::Null, Some("change panicked".into())))
                        })
                        .collect()
                });
                let errors: Vec<String> = results.iter().filter_map(|r| r.1.clone()).collect();
                let values: Vec<Value> = results.into_iter().map(|r| r.0).collect();
                Outcome::new(
                    json!({ "op": op.name(), "leader_before": leader, "changes": values }),
                    &errors,
                )
            }
            // Nothing to change now (e.g. no spare left): a skipped step,
            // not a fault that failed to be injected.
            Err(why) => Outcome {
                value: json!({ "op": op.name(), "skipped": why }),
                error: None,
            },
        }
    }

    /// Makes every node this fault left PASSIVE a FOLLOWER again.
    fn stop(ctx: &FaultContext) -> Outcome {
        let passive: Vec<NodeId> = ctx.state().active.member_passive.iter().copied().collect();
        let members = ctx.control().node_ids();
        let mut changes = Vec::new();
        let mut errors = Vec::new();
        for node in passive {
            if !members.contains(&node) {
                ctx.state().active.member_passive.remove(&node);
                continue;
            }
            let (value, error) = apply(
                ctx,
                MemberChange::Role {
                    node,
                    passive: false,
                },
            );
            changes.push(value);
            errors.extend(error);
        }
        Outcome::new(json!({ "changes": changes }), &errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn view(members: &[NodeId], leader: NodeId) -> View {
        View {
            members: members.to_vec(),
            leader: Some(leader),
            down: BTreeSet::new(),
            passive: BTreeSet::new(),
            spares: vec![7, 8],
            unreachable: BTreeSet::new(),
        }
    }

    /// Changes leave the leader and downed nodes alone, removals prefer
    /// added nodes and never go below three members, roles toggle back.
    #[test]
    fn changes_pick_safe_targets() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut v = view(&[1, 2, 3, 4, 5, 6], 1);
        v.down.insert(2);
        for _ in 0..20 {
            assert_eq!(
                choose(MemberOp::Remove, &v, &mut rng),
                Ok(MemberChange::Remove { node: 6 })
            );
            let p = choose(MemberOp::Promote, &v, &mut rng).unwrap();
            assert!(![1, 2].contains(&p.node()), "{p:?}");
        }
        assert_eq!(
            choose(MemberOp::Add, &v, &mut rng),
            Ok(MemberChange::Add { node: 7 })
        );
        let small = view(&[1, 2, 3], 1);
        assert!(choose(MemberOp::Remove, &small, &mut rng)
            .unwrap_err()
            .contains("fewer than 3"));
        let mut v = view(&[1, 2, 3, 4], 1);
        v.passive.insert(3);
        assert_eq!(
            choose(MemberOp::Role, &v, &mut rng),
            Ok(MemberChange::Role {
                node: 3,
                passive: false
            })
        );
        v.spares.clear();
        assert!(choose(MemberOp::Add, &v, &mut rng).is_err());
        let mut v = view(&[1, 2, 3], 1);
        let grudge = crate::topology::isolate(&[1, 2, 3], 1);
        v.unreachable = unreachable_from(Some(1), Some(&grudge));
        assert_eq!(
            choose_all(MemberOp::Burst, &v, &mut rng),
            Ok(vec![
                MemberChange::Remove { node: 2 },
                MemberChange::Remove { node: 3 }
            ])
        );
        assert!(unreachable_from(None, Some(&grudge)).is_empty());
        let v = view(&[1, 2, 3], 1);
        assert_eq!(
            choose_all(MemberOp::Burst, &v, &mut rng),
            Ok(vec![
                MemberChange::Add { node: 7 },
                MemberChange::Add { node: 8 }
            ])
        );
    }

    #[test]
    fn ops_parse_back() {
        for o in MemberOp::ALL {
            assert_eq!(o.name().parse::<MemberOp>(), Ok(o));
        }
        assert!("join".parse::<MemberOp>().unwrap_err().contains("add"));
    }
}
