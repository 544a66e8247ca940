//! What the process faults (kill, pause) share: acting on the nodes a
//! [`Target`] selects, and undoing it on every node still affected.

use super::{ActiveFaults, FaultContext, Outcome};
use crate::control::{ClusterControl, FaultError, NodeId};
use crate::runner::State;
use crate::target::{self, Target};
use serde_json::json;
use std::collections::BTreeSet;

/// Selects `target`'s nodes and applies `act` to each; `mark` records a
/// node it succeeded on. An unsupported answer stops the fault and marks
/// its kind unsupported.
pub(crate) fn start(
    ctx: &FaultContext,
    target: Target,
    act: impl Fn(&dyn ClusterControl, NodeId) -> Result<(), FaultError>,
    mark: impl Fn(&mut ActiveFaults, NodeId),
) -> Outcome {
    let control = ctx.control();
    let mut st = ctx.state();
    let Selection {
        leader,
        targets,
        already_down,
    } = select_free(control, target, &mut st);
    let mut done = Vec::new();
    let mut errors = Vec::new();
    let mut unsupported = None;
    for &n in &targets {
        match act(control, n) {
            Ok(()) => {
                done.push(n);
                mark(&mut st.active, n);
            }
            Err(FaultError::Unsupported(why)) => {
                errors.push(format!("node {n}: unsupported: {why}"));
                unsupported = Some(why);
                break;
            }
            Err(e) => errors.push(format!("node {n}: {e}")),
        }
    }
    drop(st);
    if let Some(why) = unsupported {
        ctx.mark_unsupported(&why);
    }
    let mut value = json!({ "target": target.name(), "targets": done });
    if !already_down.is_empty() {
        value["already_down"] = json!(already_down);
    }
    if target == Target::Leader {
        value["leader"] = json!(leader);
        if leader.is_none() {
            value["note"] = json!("no leader known; chose a random node");
        }
    }
    Outcome::new(value, &errors)
}

/// The nodes a process fault acts on.
pub(crate) struct Selection {
    /// The leader, when the target is the leader and one is known.
    pub leader: Option<NodeId>,
    /// The selected nodes no other fault holds.
    pub targets: Vec<NodeId>,
    /// The selected nodes another fault holds already.
    pub already_down: Vec<NodeId>,
}

/// Selects `target`'s nodes among the current ones. A node another fault
/// holds down or stopped already is as the target wants it (killed,
/// paused, without power): acting on it again would only fail, and one
/// fault's undo must not fight the other's, so it is left out.
pub(crate) fn select_free(
    control: &dyn ClusterControl,
    target: Target,
    st: &mut State,
) -> Selection {
    let nodes = control.node_ids();
    let leader = (target == Target::Leader)
        .then(|| control.leader())
        .flatten();
    let selected = target::select(target, &nodes, leader, &mut st.rng);
    let held = held_nodes(&st.active);
    let (already_down, targets) = selected.into_iter().partition(|n| held.contains(n));
    Selection {
        leader,
        targets,
        already_down,
    }
}

/// Nodes a process-level fault holds: killed, paused, without power,
/// refused to start on a corrupted file, or lost to minority mode.
pub(crate) fn held_nodes(active: &ActiveFaults) -> BTreeSet<NodeId> {
    let mut held: BTreeSet<NodeId> = BTreeSet::new();
    held.extend(&active.killed);
    held.extend(&active.paused);
    held.extend(&active.power_lost);
    held.extend(&active.corrupt);
    held.extend(&active.minority.lost);
    held
}

/// Applies `undo` to every node `affected` lists; `unmark` forgets a node
/// it succeeded on. A node that fails stays recorded, so a later
/// `heal_all` retries it.
pub(crate) fn stop(
    ctx: &FaultContext,
    affected: impl Fn(&ActiveFaults) -> Vec<NodeId>,
    undo: impl Fn(&dyn ClusterControl, NodeId) -> Result<(), FaultError>,
    unmark: impl Fn(&mut ActiveFaults, NodeId),
) -> Outcome {
    let mut st = ctx.state();
    let targets = affected(&st.active);
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for n in targets {
        match undo(ctx.control(), n) {
            Ok(()) => {
                done.push(n);
                unmark(&mut st.active, n);
            }
            Err(e) => errors.push(format!("node {n}: {e}")),
        }
    }
    drop(st);
    Outcome::new(json!({ "targets": done }), &errors)
}
