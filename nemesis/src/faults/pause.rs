//! `pause`: SIGSTOP the target nodes' processes; `resume` continues them.

use super::kill::{random_target, TARGET};
use super::{process, ArgGrammar, FaultContext, FaultStyle, FaultType, Outcome};
use crate::control::{Capability, NodeId};
use crate::target::Target;
use rand::rngs::StdRng;
use std::collections::BTreeSet;

/// Process pauses.
pub struct Pause;

impl FaultType for Pause {
    type Arg = Target;
    type State = BTreeSet<NodeId>;
    const NAME: &'static str = "pause";
    const ABOUT: &'static str = "SIGSTOP nodes, then resume them";
    const STOP_VERB: Option<&'static str> = Some("resume");
    const ARG: Option<ArgGrammar> = Some(TARGET);
    const NEEDS: &'static [Capability] = &[Capability::Pause, Capability::Resume];
    /// After the network heals, before killed nodes restart.
    const HEAL_ORDER: u8 = 1;
    const STYLE: FaultStyle = FaultStyle {
        colour: (150, 90, 180),
        label: "pause",
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
    fn is_active(paused: &BTreeSet<NodeId>) -> bool {
        !paused.is_empty()
    }

    fn start(ctx: &FaultContext, target: Target) -> Outcome {
        process::start(
            ctx,
            target,
            |c, n| c.pause(n),
            |active, n| {
                active.paused.insert(n);
            },
        )
    }

    fn stop(ctx: &FaultContext) -> Outcome {
        process::stop(
            ctx,
            |active| active.paused.iter().copied().collect(),
            |c, n| c.resume(n),
            |active, n| {
                active.paused.remove(&n);
            },
        )
    }
}
