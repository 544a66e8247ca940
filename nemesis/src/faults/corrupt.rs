//! `corrupt`: stop a node, damage one of its stored files (flip bits in
//! or truncate a log segment, a checkpoint, a control or dual file, the
//! metadata; at the tail or in the middle), and start it again. A correct
//! node repairs what it may (a torn tail of its open segment, one bad
//! copy of a dual file, a bad newest checkpoint with an older one intact)
//! or refuses to start with a clear error; it never serves wrong data.
//!
//! What was done (file, offset, bytes, mode) and whether the node refused
//! to start are in the start's `info` event. `repair` makes a node that
//! refused whole again (the deployment says how) and starts it; a node
//! that started on its damaged files has nothing to undo.
//!
//! The default schedule damages one node at a time (`one` or `leader`):
//! a repaired torn tail drops entries the node may have acknowledged, which
//! the other nodes still hold; damaging a majority's logs at once could
//! lose acknowledged writes on correct nodes.

use super::{ArgGrammar, FaultContext, FaultStyle, FaultType, Outcome};
use crate::control::{Capability, FaultError, NodeId};
use crate::target::Target;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Map};
use std::collections::BTreeSet;

/// Damaged files on stopped nodes.
pub struct Corrupt;

impl FaultType for Corrupt {
    type Arg = Target;
    /// Nodes that refused to start on their damaged files.
    type State = BTreeSet<NodeId>;
    const NAME: &'static str = "corrupt";
    const ABOUT: &'static str =
        "stop nodes, flip bits in or truncate one stored file each, start them (refusals repaired)";
    const STOP_VERB: Option<&'static str> = Some("repair");
    const ARG: Option<ArgGrammar> = Some(super::kill::TARGET);
    const NEEDS: &'static [Capability] = &[Capability::Corrupt];
    const HEAL_ORDER: u8 = 2;
    const STYLE: FaultStyle = FaultStyle {
        colour: (90, 110, 30),
        label: "corrupt",
    };

    fn parse_arg(s: &str) -> Result<Target, String> {
        s.parse()
    }
    fn arg_name(arg: Target) -> String {
        arg.name().into()
    }
    /// One node at a time (see the module docs).
    fn random_arg(rng: &mut StdRng) -> Target {
        if rng.gen_bool(0.5) {
            Target::One
        } else {
            Target::Leader
        }
    }
    fn is_active(refused: &BTreeSet<NodeId>) -> bool {
        !refused.is_empty()
    }

    /// Damages one file of each target (stopped first, started after).
    fn start(ctx: &FaultContext, target: Target) -> Outcome {
        let control = ctx.control();
        let mut done = Map::new();
        let mut errors = Vec::new();
        let (leader, plan): (Option<NodeId>, Vec<(NodeId, u64)>) = {
            let mut st = ctx.state();
            let sel = super::process::select_free(control, target, &mut st);
            let plan = sel.targets.into_iter().map(|n| (n, st.rng.gen())).collect();
            (sel.leader, plan)
        };
        for (n, how) in plan {
            match control.corrupt(n, how) {
                Ok(what) => {
                    if what["refused"] == json!(true) {
                        ctx.state().active.corrupt.insert(n);
                    }
                    done.insert(n.to_string(), what);
                }
                Err(FaultError::Unsupported(why)) => {
                    errors.push(format!("node {n}: unsupported: {why}"));
                    ctx.mark_unsupported(&why);
                    break;
                }
                Err(e) => errors.push(format!("node {n}: {e}")),
            }
        }
        let targets: Vec<&String> = done.keys().collect();
        // Refusals, for the report: a correct node refusing to start on a
        // damaged file is an outcome to show, not a failure of the run.
        let refusals: Vec<String> = done
            .values()
            .filter_map(|w| w["note"].as_str())
            .map(str::to_string)
            .collect();
        let mut value = json!({ "target": target.name(), "targets": targets, "nodes": done });
        if !refusals.is_empty() {
            value["note"] = json!(refusals.join("; "));
        }
        if target == Target::Leader {
            value["leader"] = json!(leader);
        }
        Outcome::new(value, &errors)
    }

    /// Makes every node that refused to start whole again and starts it.
    fn stop(ctx: &FaultContext) -> Outcome {
        let refused: Vec<NodeId> = ctx.state().active.corrupt.iter().copied().collect();
        let mut done = Map::new();
        let mut errors = Vec::new();
        for n in refused {
            match ctx.control().repair(n) {
                Ok(how) => {
                    ctx.state().active.corrupt.remove(&n);
                    done.insert(n.to_string(), how);
                }
                Err(e) => errors.push(format!("node {n}: {e}")),
            }
        }
        Outcome::new(json!({ "repaired": done }), &errors)
    }
}
