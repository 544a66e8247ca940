//! `compact`: the target nodes that are running truncate their logs below
//! everything they applied (each takes a checkpoint first), so restarts
//! and lagging followers must go through checkpoints. Nothing to undo.

use super::kill::{random_target, TARGET};
use super::{ArgGrammar, FaultContext, FaultStyle, FaultType, Outcome};
use crate::control::Capability;
use crate::target::{self, Target};
use rand::rngs::StdRng;
use serde_json::{json, Value};

/// Log compaction on running nodes.
pub struct Compact;

impl FaultType for Compact {
    type Arg = Target;
    type State = ();
    const NAME: &'static str = "compact";
    const ABOUT: &'static str =
        "log truncation after a checkpoint on running nodes (nothing to undo)";
    const STOP_VERB: Option<&'static str> = None;
    const ARG: Option<ArgGrammar> = Some(TARGET);
    const NEEDS: &'static [Capability] = &[Capability::Compact];
    const HEAL_ORDER: u8 = 3;
    const STYLE: FaultStyle = FaultStyle {
        colour: (190, 140, 40),
        label: "compact",
    };

    fn parse_arg(s: &str) -> Result<Target, String> {
        s.parse()
    }
    fn arg_name(arg: Target) -> String {
        arg.name().into()
    }
    fn random_arg(rng: &mut StdRng) -> Target {
        random_target(rng)
    }
    fn is_active(_: &()) -> bool {
        false
    }

    /// Compacts the logs of the target nodes that are running.
    fn start(ctx: &FaultContext, target: Target) -> Outcome {
        let control = ctx.control();
        let nodes = control.node_ids();
        let leader = (target == Target::Leader)
            .then(|| control.leader())
            .flatten();
        let (targets, down) = {
            let mut st = ctx.state();
            let targets = target::select(target, &nodes, leader, &mut st.rng);
            (targets, st.active.killed.clone())
        };
        let mut first_index = serde_json::Map::new();
        let mut errors = Vec::new();
        for n in targets.into_iter().filter(|n| !down.contains(n)) {
            match control.compact(n) {
                Ok(first) => {
                    first_index.insert(n.to_string(), json!(first));
                }
                Err(e) => errors.push(format!("node {n}: {e}")),
            }
        }
        Outcome::new(
            json!({ "target": target.name(), "first_index": first_index }),
            &errors,
        )
    }

    /// The event only closes its period.
    fn stop(_: &FaultContext) -> Outcome {
        Outcome {
            value: Value::Null,
            error: None,
        }
    }
}
