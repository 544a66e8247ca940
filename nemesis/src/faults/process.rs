//! What the process faults (kill, pause) share: acting on the nodes a
//! [`Target`] selects, and undoing it on every node still affected.

use super::{ActiveFaults, FaultContext, Outcome};
use crate::control::{ClusterControl, FaultError, NodeId};
use crate::target::{self, Target};
use serde_json::json;

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
    let nodes = control.node_ids();
    let leader = (target == Target::Leader)
        .then(|| control.leader())
        .flatten();
    let mut st = ctx.state();
    let targets = target::select(target, &nodes, leader, &mut st.rng);
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
    if target == Target::Leader {
        value["leader"] = json!(leader);
        if leader.is_none() {
            value["note"] = json!("no leader known; chose a random node");
        }
    }
    Outcome::new(value, &errors)
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
